/* SPDX-License-Identifier: MIT */
/*
 * romount.c - the read-only mount (-o ro_mount=PATH): a second FUSE connection of the
 * same daemon that shows the live tree alone, mounted read-only, where opening a file
 * costs no round trip (fs layer).
 *
 * Design note 5.  A read through the main mount costs an OPEN (and a RELEASE) because
 * writes, .events, .follow, the past and the control files need file handles, and the
 * kernel's no_open holds for a whole connection.  This connection needs none: it shows
 * `<ns>/<agent>/<key>` and nothing else (no name at its root starts with a dot), it is
 * mounted MS_RDONLY, so the kernel answers EROFS to every change before it reaches the
 * daemon, and it answers the OPEN of a file with ENOSYS, after which the kernel sends no
 * OPEN, FLUSH or RELEASE on it again, opens every file with keep_cache and reads with
 * file handle 0: fs_op_read answers those from the committed value of the inode's path.
 * Directories keep their handles (a listing is taken at opendir).
 *
 * Both connections share the inode table (design note 1): a live path has one number on
 * both, and its kernel lookup count is the sum of both connections' lookups, which the
 * FORGETs of both decrement.  (A kernel sends no FORGET when it unmounts: what this
 * connection held when it is unmounted alone stays in the table until the daemon stops.)
 *
 * Freshness: the page cache of a no_open connection outlives every open, so nothing but
 * invalidation keeps it right.  Every invalidation of the live tree that follows a
 * commit (notify.c) also goes to this connection, before the commit is answered, and
 * here the entry of each changed key is dropped as well: the kernel of the main mount
 * moves its own dentries for the renames and unlinks made through it, this one sees
 * none of them, and a key's inode number changes when a rename replaces it or when it is
 * deleted and created again.  The requests that the committer answers at once (unlink,
 * rename, rmdir, truncate and chmod of the live tree: the kernel holds directory locks
 * of the main mount meanwhile) invalidate here first, after the inode table has moved
 * (fs_ro_invalidate_path from live.c): the locks this takes are this mount's, and no
 * request of this connection waits for a commit, so the committer may wait for them.
 */
#include <errno.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "log.h"
#include "start.h"

#define RO_OPTION "ro_mount"

struct fs_romount {
	struct fs *fs;
	struct fuse_session *se;
	char *path;
	pthread_t thread;
	bool thread_started;
	atomic_bool stopping; /* fs_romount_stop ends the loop: no warning */
};

/* ---- the operations of this connection ------------------------------------------------ */

/* The counted operations of the main table (count.c), for those served alike. */
static const struct fuse_lowlevel_ops *counted(void)
{
	size_t size;

	return fs_ops(&size);
}

static void count(fuse_req_t req, enum fs_req_op op)
{
	atomic_fetch_add_explicit(&fs_of(req)->requests[op], 1, memory_order_relaxed);
}

/* Only the root and the live tree are seen here. */
static bool shown(enum ikind kind)
{
	return kind == IK_ROOT || kind == IK_LIVE;
}

static void ro_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ & ~(unsigned)FUSE_CAP_SPLICE_WRITE &
		      ~(unsigned)FUSE_CAP_SPLICE_MOVE;
}

static void ro_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	enum ikind k = fs_ikind(fs_of(req), parent);

	if (!shown(k) || (k == IK_ROOT && name[0] == '.')) {
		count(req, FS_REQ_LOOKUP);
		fs_reply_err(req, -ENOENT);
		return;
	}
	counted()->lookup(req, parent, name);
}

/* The committed attributes: a process writing the key through the main mount does not
 * see its own size here (fs_writer_size). */
static void ro_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct iref r;
	struct stat st;
	int err;

	(void)fi;
	count(req, FS_REQ_GETATTR);
	err = fs_iget(fs, ino, &r);
	if (!err && !shown(r.kind))
		err = -ENOENT;
	if (!err)
		err = fs_stat_iref(fs, &r, &st);
	if (err)
		fs_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, fs->opt.entry_timeout_s);
	fs_iref_release(&r);
}

/* ENOSYS: the kernel stops sending OPEN on this connection (no_open). */
static void ro_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	count(req, FS_REQ_OPEN);
	fs_reply_err(req, -ENOSYS);
}

/* A listing of the live tree; at the root without the names that start with a dot. */
static void ro_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h = NULL;
	struct iref r = { 0 };
	int err;

	count(req, FS_REQ_OPENDIR);
	err = fs_iget(fs, ino, &r);
	if (!err && !shown(r.kind))
		err = -ENOENT;
	if (!err && !(h = fs_handle_new(fs, H_DIR, &r)))
		err = -ENOMEM;
	if (!err)
		err = fs_dir_add(h, ".", TXN_DIR);
	if (!err)
		err = fs_dir_add(h, "..", TXN_DIR);
	if (!err)
		err = fs_view_list(fs, &r, h);
	fs_iref_release(&r);
	if (err) {
		fs_handle_free(h);
		fs_reply_err(req, err);
		return;
	}
	fi->fh = h->id;
	if (fuse_reply_open(req, fi) != 0)
		fs_handle_free(h);
}

static void ro_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	/* fh 0 (no_open): fs_op_read answers from the committed value of ino's path. */
	counted()->read(req, ino, size, off, fi);
}

static void ro_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	counted()->forget(req, ino, nlookup);
}

static void ro_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	counted()->forget_multi(req, count, forgets);
}

static void ro_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	counted()->readdir(req, ino, size, off, fi);
}

static void ro_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	counted()->releasedir(req, ino, fi);
}

static void ro_statfs(fuse_req_t req, fuse_ino_t ino)
{
	counted()->statfs(req, ino);
}

/* Everything left out is answered ENOSYS by libfuse; the kernel refuses every change on
 * a read-only mount itself (EROFS), and extended attributes are the main mount's. */
static const struct fuse_lowlevel_ops ro_ops = {
	.init = ro_init,
	.lookup = ro_lookup,
	.forget = ro_forget,
	.forget_multi = ro_forget_multi,
	.getattr = ro_getattr,
	.open = ro_open,
	.read = ro_read,
	.opendir = ro_opendir,
	.readdir = ro_readdir,
	.releasedir = ro_releasedir,
	.statfs = ro_statfs,
};

/* ---- the loop, mount and unmount ------------------------------------------------------ */

static void free_buf(void *arg)
{
	free(((struct fuse_buf *)arg)->mem);
}

/* Serve the connection until it is unmounted or fs_romount_stop cancels the thread in
 * its read of /dev/fuse (a request is always answered whole). */
static void *ro_loop(void *arg)
{
	struct fs_romount *rm = arg;
	struct fuse_buf buf = { 0 };
	int r;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	pthread_cleanup_push(free_buf, &buf);
	while (!fuse_session_exited(rm->se)) {
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		r = fuse_session_receive_buf(rm->se, &buf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		fuse_session_process_buf(rm->se, &buf);
	}
	pthread_cleanup_pop(1);
	if (!atomic_load(&rm->stopping))
		log_warn("the read-only mount at '%s' was unmounted; the main mount goes on "
			 "serving", rm->path);
	return NULL;
}

/* fs.h */
int fs_romount_check(const char *path, const char *mountpoint, bool nonempty)
{
	char rp[PATH_MAX], mp[PATH_MAX];
	size_t n;

	if (fs_mount_is_dead(path))
		return 0; /* detached just before the mount (fs_romount_start) */
	if (fs_mountpoint_check(path, RO_OPTION, nonempty))
		return -1;
	if (!realpath(path, rp)) {
		log_err("cannot mount " RO_OPTION " on '%s': %s", path, strerror(errno));
		return -1;
	}
	if (!realpath(mountpoint, mp))
		snprintf(mp, sizeof(mp), "%s", mountpoint); /* a dead mount */
	if (!strcmp(rp, mp)) {
		log_err("cannot mount " RO_OPTION " on '%s': it is the mountpoint itself", path);
		return -1;
	}
	/* A path below the mount would be looked up through it before anyone serves it;
	 * a mount above it would hide it. */
	n = strlen(mp);
	if (!strncmp(rp, mp, n) && (rp[n] == '/' || n == 1)) {
		log_err("cannot mount " RO_OPTION " on '%s': it is inside the mountpoint '%s'",
			path, mountpoint);
		return -1;
	}
	n = strlen(rp);
	if (!strncmp(mp, rp, n) && (mp[n] == '/' || n == 1)) {
		log_err("cannot mount " RO_OPTION " on '%s': the mountpoint '%s' is inside it",
			path, mountpoint);
		return -1;
	}
	return 0;
}

/* The mount options of this connection: read-only, the kernel's permission checks on
 * the owners and modes shown, other users as on the main mount. */
static int ro_args(struct fuse_args *args, const char *datadir, bool allow_other)
{
	char *escaped = NULL, *o = NULL;
	int err = -ENOMEM;

	if (fuse_opt_add_arg(args, "statehoused") == 0 &&
	    fuse_opt_add_arg(args, "-oro,default_permissions,subtype=statehouse-ro") == 0 &&
	    (!allow_other || fuse_opt_add_arg(args, "-oallow_other") == 0) &&
	    fuse_opt_add_opt_escaped(&escaped, datadir) == 0 &&
	    asprintf(&o, "-ofsname=%s", escaped) >= 0 && fuse_opt_add_arg(args, o) == 0)
		err = 0;
	free(o);
	free(escaped);
	return err;
}

/* Start a thread that takes no signal: they are the main loop's. */
static int start_loop(struct fs_romount *rm)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&rm->thread, NULL, ro_loop, rm);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	rm->thread_started = err == 0;
	return -err;
}

static void ro_free(struct fs_romount *rm)
{
	if (rm->se)
		fuse_session_destroy(rm->se);
	free(rm->path);
	free(rm);
}

/* fs.h */
int fs_romount_start(struct fs *fs, const char *path, bool allow_other, bool nonempty,
		     struct fs_romount **out)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fs_romount *rm = calloc(1, sizeof(*rm));
	char rp[PATH_MAX];

	*out = NULL;
	if (!fs_mount_is_dead(path) && realpath(path, rp))
		path = rp; /* .status shows where it is, as for the main mount */
	if (!rm || !(rm->path = strdup(path)) || ro_args(&args, fs->datadir, allow_other)) {
		log_err("cannot mount " RO_OPTION " on '%s': %s", path, strerror(ENOMEM));
		goto out_free;
	}
	rm->fs = fs;
	rm->se = fuse_session_new(&args, &ro_ops, sizeof(ro_ops), fs);
	if (!rm->se) {
		log_err("cannot start the FUSE session of " RO_OPTION " (see the message above)");
		goto out_free;
	}
	if (fs_mount_is_dead(path) && (fs_mount_detach_dead(path) ||
				       fs_mountpoint_check(path, RO_OPTION, nonempty)))
		goto out_free;
	if (fuse_session_mount(rm->se, path) != 0) {
		log_err("cannot mount " RO_OPTION " on '%s'", path);
		goto out_free;
	}
	fs->ro_mountpoint = rm->path;
	atomic_store_explicit(&fs->ro_se, rm->se, memory_order_release);
	if (start_loop(rm)) {
		log_err("cannot start the thread of " RO_OPTION);
		atomic_store(&fs->ro_se, NULL);
		fs->ro_mountpoint = NULL;
		fuse_session_unmount(rm->se);
		goto out_free;
	}
	log_info("serving the live tree read-only at '%s'", path);
	fuse_opt_free_args(&args);
	*out = rm;
	return 0;

out_free:
	fuse_opt_free_args(&args);
	if (rm)
		ro_free(rm);
	return -1;
}

/* fs.h */
void fs_romount_stop(struct fs_romount *rm)
{
	if (!rm)
		return;
	/* The notifier's last invalidations reach this connection while it is served. */
	fs_notifier_stop(rm->fs);
	atomic_store(&rm->fs->ro_se, NULL);
	rm->fs->ro_mountpoint = NULL;
	atomic_store(&rm->stopping, true);
	fuse_session_exit(rm->se);
	if (rm->thread_started) {
		pthread_cancel(rm->thread);
		pthread_join(rm->thread, NULL);
	}
	fuse_session_unmount(rm->se);
	log_info("unmounted the read-only mount at '%s'", rm->path);
	ro_free(rm);
}
