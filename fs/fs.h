/* SPDX-License-Identifier: MIT */
/*
 * fs.h - the FUSE face of statehouse (fs layer; the only user of the fuse headers).
 *
 * fs_new() makes the state behind a low-level FUSE session whose operations (fs_ops())
 * serve the engine's views: the live tree, `.tx/NAME/` transactions, the past (.at,
 * .history), the event files (.events, .follow) and the control files.  fs_start() also
 * starts the notifier thread that invalidates the kernel's caches after every commit and
 * then completes the requests that waited for that (commit renames and flushes).
 *
 * Calling sequence (fs/main.c): txn_engine_open, fs_new, fuse_session_new(fs_ops(), fs),
 * fuse_set_signal_handlers, fuse_session_mount, txn_engine_start, fs_start, the session
 * loop; then, once the loop ends: txn_engine_stop (every queued commit completes,
 * handing its batch to the notifier), fs_free (the notifier drains and stops),
 * fuse_session_unmount, fuse_remove_signal_handlers, fuse_session_destroy, and last
 * txn_engine_close.
 */
#ifndef STATEHOUSE_FS_H
#define STATEHOUSE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "txn.h"

struct fs;

struct fs_options {
	double entry_timeout_s; /* kernel cache lifetime of names and attributes */
	const char *datadir;    /* for .status; copied */
	const char *mountpoint; /* for .status; copied */
	bool read_only;         /* mounted with -o ro */
};

/* How requests are served (loop.c). */
struct fs_loop_options {
	bool single;               /* -s: one thread answers everything */
	bool libfuse_mt;           /* -o max_threads=N given: libfuse's own loop */
	unsigned max_threads, max_idle_threads; /* for libfuse's loop (0: its default) */
	int clone_fd;
	unsigned loop_threads;     /* threads reading /dev/fuse (default 1) */
	unsigned pool_threads;     /* threads for requests that may wait (default 4) */
};

/* Create the FUSE operation table state for eng; the engine stays owned by the caller. */
int fs_new(struct txn_engine *eng, const struct fs_options *opt, struct fs **out);
/* Attach the FUSE session (after fuse_session_new) and start the notifier. */
int fs_start(struct fs *fs, void *fuse_session);
/* Stop the notifier (completing what it holds, answering parked .follow reads with
 * EINTR) and free everything; NULL ok.  Call after txn_engine_stop() and before the
 * session is destroyed: the notifier still writes to it. */
void fs_free(struct fs *fs);
/* Serve the session until it ends (unmount or a signal): libfuse's loop result. */
int fs_serve(struct fs *fs, const struct fs_loop_options *o);
/* The operations table for fuse_session_new(); its userdata is the struct fs. */
const void *fs_ops(size_t *size);

#endif
