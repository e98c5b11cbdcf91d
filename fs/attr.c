/* SPDX-License-Identifier: MIT */
/*
 * attr.c - what every area computes the same way: attributes, owner and mode from the
 * agent, the content and value of a file through its area, and names and numbers in
 * paths (fs layer).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

/* ---- small helpers the areas share --------------------------------------------------- */

struct blob *fs_blob_from_str(char *s)
{
	struct blob *b = s ? blob_new(s, strlen(s)) : NULL;

	free(s);
	return b;
}

char *fs_child_path(const struct iref *parent, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	size_t n = parent->len + (parent->len ? 1 : 0) + nl;
	char *p = malloc(n + 1);

	if (!p)
		return NULL;
	memcpy(p, parent->path, parent->len);
	if (parent->len)
		p[parent->len] = '/';
	memcpy(p + n - nl, name, nl + 1);
	*len = n;
	return p;
}

int fs_check_name(const char *name)
{
	return txn_check_name(name, strlen(name));
}

/* A commit_ts or version in decimal: digits only, no sign, no leading zero. */
int fs_parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 19 || (s[0] == '0' && len > 1))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > INT64_MAX)
		return -EINVAL; /* commit_ts and versions are signed 64-bit */
	*out = v;
	return 0;
}

/* ---- attributes and contents --------------------------------------------------------- */

void fs_fill_attr(struct fs *fs, struct stat *st, uint64_t ino, enum txn_type type, size_t size,
		  int64_t time_ns, mode_t perm)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	if (type == TXN_DIR) {
		st->st_mode = S_IFDIR | (perm ? perm : 0755);
		/* 1: "not counted", as on btrfs; find and fts then never take a directory
		 * for a leaf by its link count, and no stat walks the children. */
		st->st_nlink = 1;
		st->st_size = 0;
	} else {
		st->st_mode = S_IFREG | (perm ? perm : 0644);
		st->st_nlink = 1;
		st->st_size = (off_t)size;
		st->st_blocks = (blkcnt_t)((size + 511) / 512);
	}
	st->st_blksize = 4096;
	if (!time_ns)
		time_ns = fs->start_ns;
	st->st_mtim.tv_sec = time_ns / 1000000000;
	st->st_mtim.tv_nsec = time_ns % 1000000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim; /* a directory's: when its entries last changed */
}

/*
 * Owner, group and mode from the agent (or namespace) at the top of path, as far as
 * mask lets through.  Namespaces and agents have their own (txn_dir_attr); keys and key
 * directories take their agent's, and a key may have a mode of its own (chmod), whose
 * execute bits pass where mask lets reading through.  With default_permissions the kernel checks every
 * access against these.
 */
void fs_owner_of_agent(struct fs *fs, const char *path, size_t len, mode_t mask, struct stat *st)
{
	mode_t type = st->st_mode & S_IFMT;
	struct txn_attr a;

	if (len == 0 || txn_dir_attr(fs->eng, path, len, &a))
		return;
	if (txn_path_depth(path, len) > 2) {
		mask &= 0777; /* no set-id or sticky bits below an agent */
		if (a.own && type == S_IFREG)
			mask |= (mask >> 2) & 0111; /* a key's own x bits, where r passes */
	}
	st->st_uid = a.uid;
	st->st_gid = a.gid;
	st->st_mode = type | (a.mode & mask);
}

void fs_caller_of(fuse_req_t req, struct fs_caller *out)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t groups[FS_MAX_GROUPS];
	int n = fuse_req_getgroups(req, FS_MAX_GROUPS, groups);

	out->c = (struct txn_caller){ .uid = (uint32_t)ctx->uid, .gid = (uint32_t)ctx->gid,
				      .groups = out->groups };
	for (int i = 0; i < n && i < FS_MAX_GROUPS; i++)
		out->groups[out->c.ngroups++] = (uint32_t)groups[i];
}

/* stat() of what an inode names: the area's attributes, then its owner and mode (the
 * rest belongs to the daemon's user). */
int fs_stat_iref(struct fs *fs, const struct iref *r, struct stat *st)
{
	const struct fs_area_ops *a = fs_area(r->kind);
	int err = a->stat ? a->stat(fs, r, st) : -ENOENT;

	if (!err && a->owner)
		a->owner(fs, r, st);
	return err;
}

/* Content of a generated or note file; -ENOENT when it does not exist (now). */
int fs_file_content(struct fs *fs, const struct iref *r, struct blob **out)
{
	const struct fs_area_ops *a = fs_area(r->kind);

	*out = NULL;
	return a->content ? a->content(fs, r, out) : -EINVAL;
}

/* A generated file's attributes: the size of its content now. */
int fs_stat_content(struct fs *fs, const struct iref *r, struct stat *st, mode_t perm)
{
	struct blob *b;
	int err = fs_file_content(fs, r, &b);

	if (err)
		return err;
	fs_fill_attr(fs, st, r->ino, TXN_FILE, b->len, 0, perm);
	blob_unref(b);
	return 0;
}

/* Current value of a file read by inode, or to start a handle that does not truncate. */
int fs_current_value(struct fs *fs, const struct iref *r, struct blob **out)
{
	const struct fs_area_ops *a = fs_area(r->kind);

	return a->value ? a->value(fs, r, out) : fs_view_value(fs, r, out);
}

/* May this inode be written?  EROFS for read-only areas and committed transactions. */
int fs_writable(struct fs *fs, const struct iref *r)
{
	const struct fs_area_ops *a = fs_area(r->kind);

	return a->writable ? a->writable(fs, r) : -EROFS;
}
