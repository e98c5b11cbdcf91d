/* SPDX-License-Identifier: MIT */
/*
 * meta.c - the FUSE operations on what is not a file's content (fs layer): directory
 * listings, extended attributes and statfs.  ops.c holds the table of operations and
 * the entry points of the rest.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs_i.h"
#include "log.h"

/* ---- directories --------------------------------------------------------------------- */

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	const struct fs_area_ops *a;
	struct handle *h = NULL;
	struct iref r = { 0 };
	int err;

	err = fs_iget(fs, ino, &r);
	if (!err && DEFER_SLOW(req, &r, ino, .op = FJ_OPENDIR, .fi = fi))
		return;
	if (!err)
		err = fs_caller_may_read(req, &r);
	if (!err && !(h = fs_handle_new(fs, H_DIR, &r)))
		err = -ENOMEM;
	if (!err)
		err = fs_dir_add(h, ".", TXN_DIR);
	if (!err)
		err = fs_dir_add(h, "..", TXN_DIR);
	if (!err) {
		a = fs_area(r.kind);
		err = a->list ? a->list(fs, &r, h) : -ENOTDIR;
	}
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

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	struct handle *h = fs_handle_get(fs_of(req), fi->fh);
	char *buf;
	size_t used = 0;

	if (!h || h->kind != H_DIR) { /* no listing, or one this process never made */
		fs_reply_err(req, -EBADF);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fs_reply_err(req, -ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < h->ents.n; i++) {
		struct stat st = { 0 };
		size_t n;

		st.st_ino = UNKNOWN_INO;
		st.st_mode = h->ents.v[i].type == TXN_DIR ? S_IFDIR : S_IFREG;
		n = fuse_add_direntry(req, buf + used, size - used, h->ents.v[i].name, &st,
				      (off_t)(i + 1));
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* Unknown to this process (never made here): nothing to free. */
	fs_handle_free(fs_handle_get(fs_of(req), fi->fh));
	fs_reply_err(req, 0);
}

/* ---- extended attributes, statfs ------------------------------------------------------- */

#define XA_VERSION "user.statehouse.version"
#define XA_COMMIT "user.statehouse.commit_ts"

static int key_entry(struct fs *fs, fuse_ino_t ino, struct txn_entry *e)
{
	const struct fs_area_ops *a;
	struct iref r;
	int err = fs_iget(fs, ino, &r);

	if (err)
		return err;
	a = fs_area(r.kind);
	err = a->entry ? a->entry(fs, &r, e) : -ENODATA;
	fs_iref_release(&r);
	return err;
}

static void reply_xattr(fuse_req_t req, const char *val, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fs_reply_err(req, -ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

/*
 * The kernel asks for security.capability before every open with O_TRUNC of a file
 * that exists (it would drop the capabilities a write must kill).  Keys have none, nor
 * any attribute but the two below: such a name is answered at once, without a look at
 * the inode (which, for a live key created and not committed yet, waits for its first
 * commit).  ENOSYS would stop the kernel asking, but for every name on the mount,
 * user.statehouse.* included, and EOPNOTSUPP does not stop it (kernel 6.18: one request
 * per open either way).
 */
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct txn_entry e;
	char val[32];
	int err;

	if (strcmp(name, XA_VERSION) != 0 && strcmp(name, XA_COMMIT) != 0) {
		fs_reply_err(req, -ENODATA);
		return;
	}
	/* Ours may wait for a new key's first commit (and the past's read the log). */
	if (fs_defer_if(req, true,
		     (struct fs_job){ .op = FJ_GETXATTR, .ino = ino, .name = (char *)name,
				      .size = size }))
		return;
	err = key_entry(fs_of(req), ino, &e);
	if (!err && !strcmp(name, XA_VERSION))
		snprintf(val, sizeof(val), "%" PRId64, e.version);
	else if (!err)
		snprintf(val, sizeof(val), "%" PRId64, e.commit_ts);
	if (!err && e.version == 0)
		err = -ENODATA; /* staged, not committed yet */
	if (err)
		fs_reply_err(req, err);
	else
		reply_xattr(req, val, strlen(val), size);
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char names[] = XA_VERSION "\0" XA_COMMIT;
	struct txn_entry e;
	int err;

	if (fs_defer_if(req, true, (struct fs_job){ .op = FJ_LISTXATTR, .ino = ino, .size = size }))
		return;
	err = key_entry(fs_of(req), ino, &e);

	if (err == -ENODATA || (!err && e.version == 0))
		reply_xattr(req, "", 0, size);
	else if (err)
		fs_reply_err(req, err);
	else
		reply_xattr(req, names, sizeof(names), size);
}

void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			   size_t size, int flags)
{
	fs_reply_err(req, -ENOTSUP);
}

void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fs_reply_err(req, -ENOTSUP);
}

/* The data dir's file system holds every commit: its size and free space are the mount's,
 * so df and tools that check for room before writing see the truth. */
void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs sv = { 0 };

	if (statvfs(fs->datadir, &sv) != 0) {
		int err = -errno;

		log_warn("cannot statvfs data dir '%s': %s", fs->datadir, strerror(-err));
		fs_reply_err(req, err);
		return;
	}
	sv.f_namemax = TXN_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}
