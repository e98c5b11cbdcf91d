/* SPDX-License-Identifier: MIT */
/*
 * expect.c - a transaction's preconditions as files: .tx/NAME/.expect/<ns>/<agent>/<key>
 * holding a version, "0" or "absent", or "present" (fs layer).  The txn layer keeps and
 * checks them at commit (txn_expect_*() in txn.h); here they are read, written, listed
 * and removed.
 *
 * A write's bytes are checked as they arrive: bytes no precondition can begin with fail
 * that write() with EINVAL (the shell sees it, unlike an error of close()), and nothing
 * is set; a complete one is set at flush, where an unfinished one ("pres") fails with
 * EINVAL too.  A new file exists for others from that flush on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

/* The transaction of an inode below .expect, referenced; NULL when it is gone. */
static struct txn *expect_txn(struct fs *fs, const struct iref *r)
{
	return txn_find_id(fs->eng, r->txn_id);
}

static int expect_lookup(struct fs *fs, const struct iref *p, const char *name,
			 struct iref *out)
{
	struct txn *tx = expect_txn(fs, p);
	enum txn_type type;
	size_t len;
	char *path;
	int err;

	if (!tx)
		return -ENOENT;
	path = fs_child_path(p, name, &len);
	err = path ? txn_expect_stat(fs->eng, tx, path, len, &type) : -ENOMEM;
	if (err)
		free(path);
	else
		fs_iref_take(out, IK_TXEXPECT, p->txn_id, type, path, len);
	txn_unref(tx);
	return err;
}

/* The content a precondition reads back ("7\n", "absent\n", "present\n"). */
static int expect_content(struct fs *fs, const struct iref *r, struct blob **out)
{
	struct txn *tx = expect_txn(fs, r);
	struct txn_expect e;
	char buf[32];
	int n, err;

	*out = NULL;
	if (!tx)
		return -ENOENT;
	err = txn_expect_get(tx, r->path, r->len, &e);
	txn_unref(tx);
	if (err)
		return err;
	n = txn_expect_format(&e, buf, sizeof(buf));
	if (n < 0)
		return n;
	*out = blob_new(buf, (size_t)n);
	return *out ? 0 : -ENOMEM;
}

static int expect_stat(struct fs *fs, const struct iref *r, struct stat *st)
{
	struct txn *tx;
	enum txn_type type;
	size_t size;
	int err;

	if (r->type == TXN_FILE) {
		err = fs_stat_content(fs, r, st, 0600);
		/* Created, its first bytes not flushed yet: its writer's. */
		if (err == -ENOENT && fs_handle_writer(fs, r->ino, 0, &size, NULL)) {
			fs_fill_attr(fs, st, r->ino, TXN_FILE, size, 0, 0600);
			err = 0;
		}
		return err;
	}
	tx = expect_txn(fs, r);
	if (!tx)
		return -ENOENT;
	err = txn_expect_stat(fs->eng, tx, r->path, r->len, &type);
	txn_unref(tx);
	if (!err && type != TXN_DIR)
		err = -ENOENT; /* the path changed type: this inode is stale */
	if (!err)
		fs_fill_attr(fs, st, r->ino, TXN_DIR, 0, 0, 0700);
	return err;
}

/* The transaction's owner, as for the rest of .tx/NAME; read-only once committed. */
static void expect_owner(struct fs *fs, const struct iref *r, struct stat *st)
{
	struct txn *tx = expect_txn(fs, r);
	mode_t type = st->st_mode & S_IFMT;

	if (!tx)
		return;
	st->st_uid = txn_uid(tx);
	st->st_gid = txn_gid(tx);
	if (txn_get_state(tx) == TXN_COMMITTED)
		st->st_mode = type | (type == S_IFDIR ? 0500 : 0400);
	txn_unref(tx);
}

/* Open while the transaction is: committing or committed, EROFS. */
/* Each write: could the bytes so far still be a precondition?  h->lock held. */
static int expect_written(struct fs *fs, struct handle *h)
{
	(void)fs;
	if (txn_expect_parse(h->buf, h->size, true, NULL) == 0)
		return 0;
	h->failed = -EINVAL; /* nothing of this file is set, at flush or release */
	return -EINVAL;
}

/* Flush (or a truncate by path): the whole content sets the precondition. */
static int expect_put(struct fs *fs, fuse_req_t req, const struct iref *r, struct blob *val,
		      struct handle *h)
{
	struct txn *tx = expect_txn(fs, r);
	struct txn_expect e;
	int err = txn_expect_parse(val->data, val->len, false, &e);

	(void)req;
	(void)h;
	blob_unref(val);
	if (!tx)
		return -ENOENT;
	if (!err)
		err = txn_expect_set(tx, r->path, r->len, &e);
	txn_unref(tx);
	return err;
}

static int expect_list(struct fs *fs, const struct iref *r, struct handle *h)
{
	struct txn *tx = expect_txn(fs, r);
	struct dirent_entry *d = NULL;
	size_t n = 0;
	int err;

	if (!tx)
		return -ENOENT;
	err = txn_expect_list(tx, r->path, r->len, &d, &n);
	txn_unref(tx);
	return err ? err : fs_dir_add_all(h, d, n);
}

/* Bytes of the key of "ns/agent/key". */
static size_t key_bytes(const char *path, size_t len)
{
	const char *s1 = memchr(path, '/', len);
	const char *s2 = memchr(s1 + 1, '/', len - (size_t)(s1 + 1 - path));

	return len - (size_t)(s2 + 1 - path);
}

/* A new file: nothing is set until its first flush (see the top of this file). */
static int expect_create(struct fs *fs, const struct iref *p, const char *name,
			 struct iref *out)
{
	size_t len;
	char *path;
	int err = fs_tx_writable(fs, p);

	if (err)
		return err;
	path = fs_child_path(p, name, &len);
	if (!path)
		return -ENOMEM;
	if (txn_path_depth(path, len) < 3 || path[0] == '.')
		err = -EINVAL; /* a key lives below <ns>/<agent>/ */
	else if (key_bytes(path, len) > TXN_KEY_MAX)
		err = -ENAMETOOLONG; /* at open, where the shell sees it */
	if (err) {
		free(path);
		return err;
	}
	fs_iref_take(out, IK_TXEXPECT, p->txn_id, TXN_FILE, path, len);
	return 0;
}

static int expect_mkdir(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name,
			struct iref *out)
{
	struct txn *tx = expect_txn(fs, p);
	size_t len;
	char *path;
	int err;

	(void)req;
	if (!tx)
		return -ENOENT;
	path = fs_child_path(p, name, &len);
	err = path ? txn_expect_mkdir(fs->eng, tx, path, len) : -ENOMEM;
	txn_unref(tx);
	if (err)
		free(path);
	else
		fs_iref_take(out, IK_TXEXPECT, p->txn_id, TXN_DIR, path, len);
	return err;
}

/* rm (file) or rmdir (dir) of a name below .expect. */
static int expect_remove(struct fs *fs, const struct iref *p, const char *name, bool dir)
{
	struct txn *tx = expect_txn(fs, p);
	size_t len;
	char *path;
	int err;

	if (!tx)
		return -ENOENT;
	path = fs_child_path(p, name, &len);
	if (!path)
		err = -ENOMEM;
	else if (dir)
		err = txn_expect_rmdir(tx, path, len);
	else
		err = txn_expect_remove(tx, path, len);
	if (err == -ENOENT && !dir && txn_writable(tx) == 0) {
		enum txn_type type;

		/* A directory of .expect (a namespace, an agent, one of the view) */
		if (txn_expect_stat(fs->eng, tx, path, len, &type) == 0 && type == TXN_DIR)
			err = -EISDIR;
	} else if (err == -EBUSY) {
		err = -EROFS; /* committing */
	}
	if (!err)
		fs_iunhash(fs, IK_TXEXPECT, p->txn_id, dir ? TXN_DIR : TXN_FILE, path, len);
	txn_unref(tx);
	free(path);
	return err;
}

static int expect_unlink(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name)
{
	(void)req;
	return expect_remove(fs, p, name, false);
}

static int expect_rmdir(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name)
{
	(void)req;
	return expect_remove(fs, p, name, true);
}

const struct fs_area_ops fs_txexpect_ops = {
	.cache_lookup = CACHE_NONE,
	.cache_getattr = CACHE_NONE,
	.lookup = expect_lookup,
	.stat = expect_stat,
	.owner = expect_owner,
	.content = expect_content,
	.value = fs_file_content,
	.writable = fs_tx_writable,
	.written = expect_written,
	.put = expect_put,
	.list = expect_list,
	.create = expect_create,
	.mkdir = expect_mkdir,
	.unlink = expect_unlink,
	.rmdir = expect_rmdir,
};
