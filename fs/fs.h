/*
 * fs.h - the FUSE face of statehouse (fs layer; the only user of the fuse headers).
 *
 * fs_session_new() builds a low-level FUSE session whose operations serve the engine's
 * views: the live tree, `.tx/NAME/` transactions and the control files.  It also owns the
 * notifier thread that invalidates the kernel's caches after every commit and then
 * completes the requests that waited for that (commit renames and flushes).
 */
#ifndef STATEHOUSE_FS_H
#define STATEHOUSE_FS_H

#include <stdbool.h>
#include <stdint.h>

#include "txn.h"

struct fs;

struct fs_options {
	double entry_timeout_s; /* kernel cache lifetime of names and attributes */
	const char *datadir;    /* for .status; copied */
	const char *mountpoint; /* for .status; copied */
	bool read_only;         /* mounted with -o ro */
};

/* Create the FUSE operation table state for eng; the engine stays owned by the caller. */
int fs_new(struct txn_engine *eng, const struct fs_options *opt, struct fs **out);
/* Attach the FUSE session (after fuse_session_new) and start the notifier. */
int fs_start(struct fs *fs, void *fuse_session);
/* Stop the notifier (completing what it holds); NULL ok.  Call after the engine closed. */
void fs_free(struct fs *fs);
/* The operations table for fuse_session_new(); its userdata is the struct fs. */
const void *fs_ops(size_t *size);

#endif
