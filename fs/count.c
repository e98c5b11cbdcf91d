/* SPDX-License-Identifier: MIT */
/*
 * count.c - the FUSE requests the daemon's operations received, by operation: the table
 * of operations handed to libfuse adds one to the operation's counter and calls ops.c's
 * (fs layer).  .metrics shows them as statehouse_fuse_requests_total{op="..."}, so the
 * round trips a gesture costs stay visible.
 *
 * A counter is one relaxed atomic add: no lock, no order with anything else.  Requests
 * libfuse answers itself (INIT, DESTROY, INTERRUPT, and ENOSYS for operations the table
 * leaves out, such as ACCESS or READLINK) never reach these operations and are not
 * counted.
 */
#include <inttypes.h>
#include <stdio.h>

#include "fs_i.h"

const char *const fs_req_op_names[FS_REQ_N] = {
	[FS_REQ_LOOKUP] = "lookup",       [FS_REQ_FORGET] = "forget",
	[FS_REQ_BATCH_FORGET] = "batch_forget", [FS_REQ_GETATTR] = "getattr",
	[FS_REQ_SETATTR] = "setattr",     [FS_REQ_MKDIR] = "mkdir",
	[FS_REQ_UNLINK] = "unlink",       [FS_REQ_RMDIR] = "rmdir",
	[FS_REQ_RENAME] = "rename",       [FS_REQ_OPEN] = "open",
	[FS_REQ_READ] = "read",           [FS_REQ_WRITE] = "write",
	[FS_REQ_FLUSH] = "flush",         [FS_REQ_RELEASE] = "release",
	[FS_REQ_FSYNC] = "fsync",         [FS_REQ_OPENDIR] = "opendir",
	[FS_REQ_READDIR] = "readdir",     [FS_REQ_RELEASEDIR] = "releasedir",
	[FS_REQ_STATFS] = "statfs",       [FS_REQ_SETXATTR] = "setxattr",
	[FS_REQ_GETXATTR] = "getxattr",   [FS_REQ_LISTXATTR] = "listxattr",
	[FS_REQ_REMOVEXATTR] = "removexattr", [FS_REQ_CREATE] = "create",
	[FS_REQ_POLL] = "poll",           [FS_REQ_FALLOCATE] = "fallocate",
	[FS_REQ_SYMLINK] = "symlink",     [FS_REQ_MKNOD] = "mknod",
	[FS_REQ_LINK] = "link",
};

static inline void count(fuse_req_t req, enum fs_req_op op)
{
	atomic_fetch_add_explicit(&fs_of(req)->requests[op], 1, memory_order_relaxed);
}

/* One wrapper per operation: count, then ops.c's. */
#define COUNTED(name, OP, params, args)                                                   \
	static void counted_##name params                                                 \
	{                                                                                 \
		count(req, OP);                                                           \
		fs_op_table.name args;                                                    \
	}

COUNTED(lookup, FS_REQ_LOOKUP, (fuse_req_t req, fuse_ino_t p, const char *n), (req, p, n))
COUNTED(forget, FS_REQ_FORGET, (fuse_req_t req, fuse_ino_t i, uint64_t n), (req, i, n))
COUNTED(forget_multi, FS_REQ_BATCH_FORGET,
	(fuse_req_t req, size_t c, struct fuse_forget_data *f), (req, c, f))
COUNTED(getattr, FS_REQ_GETATTR, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi),
	(req, i, fi))
COUNTED(setattr, FS_REQ_SETATTR,
	(fuse_req_t req, fuse_ino_t i, struct stat *a, int s, struct fuse_file_info *fi),
	(req, i, a, s, fi))
COUNTED(mkdir, FS_REQ_MKDIR, (fuse_req_t req, fuse_ino_t p, const char *n, mode_t m),
	(req, p, n, m))
COUNTED(unlink, FS_REQ_UNLINK, (fuse_req_t req, fuse_ino_t p, const char *n), (req, p, n))
COUNTED(rmdir, FS_REQ_RMDIR, (fuse_req_t req, fuse_ino_t p, const char *n), (req, p, n))
COUNTED(rename, FS_REQ_RENAME,
	(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn,
	 unsigned int fl),
	(req, p, n, np, nn, fl))
COUNTED(open, FS_REQ_OPEN, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi),
	(req, i, fi))
COUNTED(read, FS_REQ_READ,
	(fuse_req_t req, fuse_ino_t i, size_t s, off_t o, struct fuse_file_info *fi),
	(req, i, s, o, fi))
COUNTED(write, FS_REQ_WRITE,
	(fuse_req_t req, fuse_ino_t i, const char *b, size_t s, off_t o,
	 struct fuse_file_info *fi),
	(req, i, b, s, o, fi))
COUNTED(flush, FS_REQ_FLUSH, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi),
	(req, i, fi))
COUNTED(release, FS_REQ_RELEASE, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi),
	(req, i, fi))
COUNTED(fsync, FS_REQ_FSYNC,
	(fuse_req_t req, fuse_ino_t i, int d, struct fuse_file_info *fi), (req, i, d, fi))
COUNTED(opendir, FS_REQ_OPENDIR, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi),
	(req, i, fi))
COUNTED(readdir, FS_REQ_READDIR,
	(fuse_req_t req, fuse_ino_t i, size_t s, off_t o, struct fuse_file_info *fi),
	(req, i, s, o, fi))
COUNTED(releasedir, FS_REQ_RELEASEDIR,
	(fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi), (req, i, fi))
COUNTED(statfs, FS_REQ_STATFS, (fuse_req_t req, fuse_ino_t i), (req, i))
COUNTED(setxattr, FS_REQ_SETXATTR,
	(fuse_req_t req, fuse_ino_t i, const char *n, const char *v, size_t s, int f),
	(req, i, n, v, s, f))
COUNTED(getxattr, FS_REQ_GETXATTR, (fuse_req_t req, fuse_ino_t i, const char *n, size_t s),
	(req, i, n, s))
COUNTED(listxattr, FS_REQ_LISTXATTR, (fuse_req_t req, fuse_ino_t i, size_t s), (req, i, s))
COUNTED(removexattr, FS_REQ_REMOVEXATTR, (fuse_req_t req, fuse_ino_t i, const char *n),
	(req, i, n))
COUNTED(create, FS_REQ_CREATE,
	(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, struct fuse_file_info *fi),
	(req, p, n, m, fi))
COUNTED(poll, FS_REQ_POLL,
	(fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi, struct fuse_pollhandle *ph),
	(req, i, fi, ph))
COUNTED(fallocate, FS_REQ_FALLOCATE,
	(fuse_req_t req, fuse_ino_t i, int m, off_t o, off_t l, struct fuse_file_info *fi),
	(req, i, m, o, l, fi))
COUNTED(symlink, FS_REQ_SYMLINK, (fuse_req_t req, const char *l, fuse_ino_t p, const char *n),
	(req, l, p, n))
COUNTED(mknod, FS_REQ_MKNOD,
	(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t r), (req, p, n, m, r))
COUNTED(link, FS_REQ_LINK, (fuse_req_t req, fuse_ino_t i, fuse_ino_t np, const char *nn),
	(req, i, np, nn))

static void counted_init(void *userdata, struct fuse_conn_info *conn)
{
	fs_op_table.init(userdata, conn);
}

static const struct fuse_lowlevel_ops counted_ops = {
	.init = counted_init,
	.lookup = counted_lookup,
	.forget = counted_forget,
	.forget_multi = counted_forget_multi,
	.getattr = counted_getattr,
	.setattr = counted_setattr,
	.mkdir = counted_mkdir,
	.unlink = counted_unlink,
	.rmdir = counted_rmdir,
	.rename = counted_rename,
	.open = counted_open,
	.read = counted_read,
	.write = counted_write,
	.flush = counted_flush,
	.release = counted_release,
	.fsync = counted_fsync,
	.opendir = counted_opendir,
	.readdir = counted_readdir,
	.releasedir = counted_releasedir,
	.statfs = counted_statfs,
	.setxattr = counted_setxattr,
	.getxattr = counted_getxattr,
	.listxattr = counted_listxattr,
	.removexattr = counted_removexattr,
	.create = counted_create,
	.poll = counted_poll,
	.fallocate = counted_fallocate,
	.symlink = counted_symlink,
	.mknod = counted_mknod,
	.link = counted_link,
};

const void *fs_ops(size_t *size)
{
	*size = sizeof(counted_ops);
	return &counted_ops;
}

/* .metrics: one series per operation, those never asked for included (0). */
void fs_metrics_requests(struct fs *fs, FILE *f)
{
	fprintf(f, "# HELP statehouse_fuse_requests_total FUSE requests received, by "
		   "operation (requests libfuse answers itself are not counted).\n"
		   "# TYPE statehouse_fuse_requests_total counter\n");
	for (int i = 0; i < FS_REQ_N; i++)
		fprintf(f, "statehouse_fuse_requests_total{op=\"%s\"} %" PRIu64 "\n",
			fs_req_op_names[i],
			(uint64_t)atomic_load_explicit(&fs->requests[i], memory_order_relaxed));
}
