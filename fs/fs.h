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
 * fuse_set_signal_handlers, fuse_session_mount, txn_engine_start, fs_start, with
 * ro_mount fs_romount_start, the session loop; then, once the loop ends: txn_engine_stop
 * (every queued commit completes, handing its batch to the notifier), fs_romount_stop,
 * fs_free (the notifier drains and stops),
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
	bool stale_eio;         /* -o stale_reads=eio: a shared store that may be behind
				 * refuses opens of live keys for reading with EIO */
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

/*
 * The read-only mount (-o ro_mount=PATH, romount.c): a second FUSE connection of the same
 * struct fs at PATH, showing the live tree alone, mounted read-only, whose file opens
 * cost no round trip; every commit invalidates its caches before it is answered, as on
 * the main mount.
 *
 * fs_romount_check, before anything is made: PATH must be an empty directory (unless
 * nonempty) and neither the mountpoint, nor inside it, nor above it (a dead mount there
 * passes: it is detached at the start).  0, or -1 after the message.
 *
 * fs_romount_start, after fs_start and before the main loop: makes the session, mounts it
 * (allow_other as the main mount) and serves it on a thread of its own.  0 and *out, or
 * -1 after the message (nothing is left mounted).
 *
 * fs_romount_stop, after txn_engine_stop and before fs_free: stops the notifier (its last
 * invalidations still reach the mount), ends the thread, unmounts, frees; NULL ok.
 */
struct fs_romount;
int fs_romount_check(const char *path, const char *mountpoint, bool nonempty);
int fs_romount_start(struct fs *fs, const char *path, bool allow_other, bool nonempty,
		     struct fs_romount **out);
void fs_romount_stop(struct fs_romount *rm);

#endif
