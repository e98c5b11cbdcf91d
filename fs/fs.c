/* SPDX-License-Identifier: MIT */
/*
 * fs.c - the life of a struct fs: created before the FUSE session, started with it,
 * freed after the engine stopped (fs layer).
 *
 * The files of this layer (fs_i.h has the map): ops.c holds the FUSE entry points (meta.c
 * those of listings, extended attributes and statfs) and dispatches each to the area of
 * the tree its inode belongs to (ctl.c, live.c, tx.c, past.c, events.c); inode.c,
 * handle.c and notify.c hold what the areas share; count.c counts the requests of each
 * operation on their way in.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "fs_i.h"

int fs_new(struct txn_engine *eng, const struct fs_options *opt, struct fs **out)
{
	struct fs *fs = calloc(1, sizeof(*fs));

	*out = NULL;
	if (!fs)
		return -ENOMEM;
	fs->eng = eng;
	fs->opt = *opt;
	fs->opt.datadir = fs->datadir = strdup(opt->datadir ? opt->datadir : "");
	fs->opt.mountpoint = fs->mountpoint = strdup(opt->mountpoint ? opt->mountpoint : "");
	if (!fs->datadir || !fs->mountpoint) {
		free(fs->datadir);
		free(fs->mountpoint);
		free(fs);
		return -ENOMEM;
	}
	fs->uid = geteuid();
	fs->gid = getegid();
	fs->start_ns = clock_now_ns(CLOCK_REALTIME);
	pthread_mutex_init(&fs->itable_lock, NULL);
	pthread_mutex_init(&fs->ev_lock, NULL);
	pthread_mutex_init(&fs->nq_lock, NULL);
	pthread_mutex_init(&fs->handles_lock, NULL);
	pthread_mutex_init(&fs->fh_lock, NULL);
	fs->next_fh = 1; /* 0 is no handle */
	pthread_mutex_init(&fs->pending_lock, NULL);
	pthread_cond_init(&fs->pending_cond, NULL);
	pthread_cond_init(&fs->nq_cond, NULL);
	fs->nq_tail = &fs->nq_head;
	*out = fs;
	return 0;
}

int fs_start(struct fs *fs, void *session)
{
	fs->se = session;
	return fs_notifier_start(fs);
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	fs_notifier_stop(fs);
	fs_worker_free(fs);
	fs_events_free(fs);
	fs_inodes_free_all(fs);
	pthread_mutex_destroy(&fs->ev_lock);
	pthread_mutex_destroy(&fs->itable_lock);
	pthread_mutex_destroy(&fs->nq_lock);
	pthread_cond_destroy(&fs->nq_cond);
	fs_handles_free_all(fs);
	pthread_mutex_destroy(&fs->handles_lock);
	pthread_mutex_destroy(&fs->fh_lock);
	pthread_mutex_destroy(&fs->pending_lock);
	pthread_cond_destroy(&fs->pending_cond);
	free(fs->datadir);
	free(fs->mountpoint);
	free(fs);
}
