/* SPDX-License-Identifier: MIT */
/*
 * tx.c - transactions as directories: `.tx`, `.tx/NAME` and its view, its notes and
 * control files (.status, .commit, .timeout_ms, .isolation), and the commit by rename
 * onto .tx/NAME/.commit (fs layer).  Its .expect directory is expect.c's.
 *
 * A transaction directory's view is the live tree as of its begin plus what it staged
 * (the view operations of live.c with a txn); the dot names at its top are its notes
 * and control files.  A write below it stages at write() (a note: at flush); nothing is
 * durable before the rename onto .commit, which completes on the notifier thread
 * (design note 3).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

/* Is name one of the control files of a transaction directory? */
bool fs_is_ctl_name(const char *name)
{
	return !strcmp(name, ".status") || !strcmp(name, ".commit") ||
	       !strcmp(name, ".timeout_ms") || !strcmp(name, ".isolation");
}

/* The directory of a transaction's preconditions (expect.c). */
#define EXPECT_DIR ".expect"

/* A name at the top of a transaction that is no note: a control file or .expect. */
static bool reserved_top_name(const char *name)
{
	return fs_is_ctl_name(name) || !strcmp(name, EXPECT_DIR);
}

static bool is_view_inode(const struct inode *in, const void *arg)
{
	return in->kind == IK_TXPATH;
}

/* Have the notifier drop what the kernel caches of a transaction's view (a timeout that
 * moved its deadline, an abort); not from the request itself: a handler must not
 * invalidate. */
static void queue_inval_view(struct fs *fs, uint64_t txn_id)
{
	uint64_t *inos;
	size_t n = fs_txn_inodes_where(fs, txn_id, is_view_inode, NULL, &inos);

	for (size_t i = 0; i < n; i++)
		fs_queue_inval(fs, inos[i]);
	free(inos);
}

/* ---- .tx -------------------------------------------------------------------------------- */

static int txdir_lookup(struct fs *fs, const struct iref *p, const char *name, struct iref *out)
{
	struct txn *tx = txn_find(fs->eng, name, strlen(name));
	int err;

	if (!tx)
		return -ENOENT;
	err = fs_iref_set(out, IK_TXROOT, txn_id(tx), TXN_DIR, "", 0);
	txn_unref(tx);
	return err;
}

static void txdir_owner(struct fs *fs, const struct iref *r, struct stat *st)
{
	st->st_mode = (st->st_mode & S_IFMT) | 01777; /* anyone may begin; only the owner
							* may remove */
}

static int txdir_list(struct fs *fs, const struct iref *r, struct handle *h)
{
	struct dirent_entry *d = NULL;
	size_t n = 0;
	int err = txn_list_names(fs->eng, &d, &n);

	return err ? err : fs_dir_add_all(h, d, n);
}

static int txdir_create(struct fs *fs, const struct iref *p, const char *name, struct iref *out)
{
	return -EINVAL; /* .tx holds transactions: mkdir them */
}

/* mkdir .tx/NAME begins a transaction owned by the caller. */
static int txdir_mkdir(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name,
		       struct iref *out)
{
	struct txn *tx = NULL;
	int err;

	if (name[0] == '.')
		return -EINVAL;
	err = txn_begin(fs->eng, name, strlen(name), fuse_req_ctx(req)->uid,
			fuse_req_ctx(req)->gid, &tx);
	if (!err)
		err = fs_iref_set(out, IK_TXROOT, txn_id(tx), TXN_DIR, "", 0);
	txn_unref(tx);
	return err;
}

static int txdir_unlink(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name)
{
	return -EISDIR;
}

/* rmdir .tx/NAME aborts it (or forgets a committed one). */
static int txdir_rmdir(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name)
{
	struct txn *tx = txn_find(fs->eng, name, strlen(name));
	uint64_t id = tx ? txn_id(tx) : 0;
	int err = txn_remove(fs->eng, name, strlen(name));

	if (!err) {
		fs_iunhash(fs, IK_TXROOT, id, TXN_DIR, "", 0);
		queue_inval_view(fs, id); /* a descriptor still open sees it gone */
	}
	txn_unref(tx);
	return err;
}

const struct fs_area_ops fs_txdir_ops = {
	.cache_lookup = CACHE_ALL,
	.cache_getattr = CACHE_ALL,
	.lookup = txdir_lookup,
	.stat = fs_stat_rw_dir,
	.owner = txdir_owner,
	.list = txdir_list,
	.create = txdir_create,
	.mkdir = txdir_mkdir,
	.unlink = txdir_unlink,
	.rmdir = txdir_rmdir,
};

/* ---- shared by the kinds below .tx/NAME ------------------------------------------------ */

/* A transaction directory and its files belong to whoever began it. */
static void tx_owner(struct fs *fs, const struct iref *r, struct stat *st)
{
	mode_t type = st->st_mode & S_IFMT;
	struct txn *tx = txn_find_id(fs->eng, r->txn_id);

	if (!tx)
		return;
	st->st_uid = txn_uid(tx);
	st->st_gid = txn_gid(tx);
	if (r->kind == IK_TXROOT)
		st->st_mode = type | (txn_get_state(tx) == TXN_COMMITTED ? 0500 : 0700);
	else
		st->st_mode = type | (st->st_mode & 0600);
	txn_unref(tx);
}

/* Writable while the transaction is open; committed or committing: EROFS (fs_i.h). */
int fs_tx_writable(struct fs *fs, const struct iref *r)
{
	struct txn *tx = txn_find_id(fs->eng, r->txn_id);
	int err;

	if (!tx)
		return -ENOENT;
	err = txn_writable(tx);
	txn_unref(tx);
	return err == -EBUSY ? -EROFS : err;
}

/* Would a value of value_len bytes at r (a key or a note of a transaction) fit its byte
 * limits?  0 or -EDQUOT; 0 for other files (.timeout_ms). */
int fs_tx_room(struct fs *fs, const struct iref *r, size_t value_len)
{
	struct txn *tx;
	int err;

	if (r->kind != IK_TXPATH && r->kind != IK_TXNOTE)
		return 0;
	tx = txn_find_id(fs->eng, r->txn_id);
	if (!tx)
		return -ENOENT;
	err = txn_stage_room(fs->eng, tx, r->path, r->len, value_len, r->kind == IK_TXNOTE);
	txn_unref(tx);
	return err;
}

/* A flushed or truncated file of the transaction: staged (a key) or kept (a note). */
static int tx_put(struct fs *fs, fuse_req_t req, const struct iref *r, struct blob *val,
		  struct handle *h)
{
	struct txn *tx = txn_find_id(fs->eng, r->txn_id);
	int err;

	if (!tx) {
		blob_unref(val);
		return -ENOENT;
	}
	if (r->kind == IK_TXPATH)
		err = txn_stage_put(fs->eng, tx, r->path, r->len, val);
	else
		err = txn_note_put(tx, r->path, val);
	txn_unref(tx);
	return err;
}

static int txctl_render(struct fs *fs, struct txn *tx, const char *name, struct blob **out);

/* Content of a note or a control file. */
static int tx_content(struct fs *fs, const struct iref *r, struct blob **out)
{
	struct txn *tx = txn_find_id(fs->eng, r->txn_id);
	int err;

	*out = NULL;
	if (!tx)
		return -ENOENT;
	if (r->kind == IK_TXNOTE)
		err = txn_note_get(tx, r->path, out);
	else
		err = txctl_render(fs, tx, r->path, out);
	txn_unref(tx);
	return err;
}

/* ---- .tx/NAME ---------------------------------------------------------------------------- */

static int txroot_lookup(struct fs *fs, const struct iref *p, const char *name,
			 struct iref *out)
{
	struct txn *tx = txn_find_id(fs->eng, p->txn_id);
	struct blob *b = NULL;
	int err;

	if (!tx)
		return -ENOENT;
	if (!strcmp(name, EXPECT_DIR)) {
		err = fs_iref_set(out, IK_TXEXPECT, p->txn_id, TXN_DIR, "", 0);
	} else if (fs_is_ctl_name(name)) {
		if (!strcmp(name, ".commit") && txn_get_state(tx) != TXN_COMMITTED)
			err = -ENOENT;
		else
			err = fs_iref_set(out, IK_TXCTL, p->txn_id, TXN_FILE, name, strlen(name));
	} else if (name[0] == '.') {
		/* Dot names at the top of a transaction are notes; others namespaces. */
		err = txn_note_get(tx, name, &b) == 0
			      ? fs_iref_set(out, IK_TXNOTE, p->txn_id, TXN_FILE, name, strlen(name))
			      : -ENOENT;
		blob_unref(b);
	} else {
		err = fs_view_lookup(fs, p, name, out);
	}
	txn_unref(tx);
	return err;
}

static int txroot_stat(struct fs *fs, const struct iref *r, struct stat *st)
{
	struct txn *tx = txn_find_id(fs->eng, r->txn_id);

	if (!tx)
		return -ENOENT;
	fs_fill_attr(fs, st, r->ino, TXN_DIR, 0, 0,
		     txn_get_state(tx) == TXN_COMMITTED ? 0555 : 0755);
	txn_unref(tx);
	return 0;
}

static int txroot_list(struct fs *fs, const struct iref *r, struct handle *h)
{
	struct dirent_entry *d = NULL;
	struct txn *tx = txn_find_id(fs->eng, r->txn_id);
	size_t n = 0;
	int err = 0;

	if (!tx)
		return -ENOENT;
	if (txn_get_state(tx) == TXN_COMMITTED)
		err = fs_dir_add(h, ".commit", TXN_FILE);
	if (!err)
		err = fs_dir_add(h, ".status", TXN_FILE);
	if (!err)
		err = fs_dir_add(h, ".timeout_ms", TXN_FILE);
	if (!err)
		err = fs_dir_add(h, ".isolation", TXN_FILE);
	if (!err)
		err = fs_dir_add(h, EXPECT_DIR, TXN_DIR);
	if (!err)
		err = txn_note_list(tx, &d, &n);
	if (!err)
		err = fs_dir_add_all(h, d, n);
	if (!err && txn_list(fs->eng, tx, "", 0, &d, &n) == 0)
		err = fs_dir_add_all(h, d, n);
	txn_unref(tx);
	return err;
}

/* A file at the top of a transaction is a note (an empty one, staged at once). */
static int txroot_create(struct fs *fs, const struct iref *p, const char *name,
			 struct iref *out)
{
	struct txn *tx;
	struct blob *b;
	int err = fs_tx_writable(fs, p);

	if (err)
		return err;
	if (name[0] != '.')
		return -EISDIR; /* a namespace of the view */
	if (reserved_top_name(name))
		return -EEXIST;
	tx = txn_find_id(fs->eng, p->txn_id);
	if (!tx)
		return -ENOENT;
	b = blob_new("", 0);
	err = b ? txn_note_put(tx, name, b) : -ENOMEM;
	txn_unref(tx);
	if (err)
		return err;
	return fs_iref_set(out, IK_TXNOTE, p->txn_id, TXN_FILE, name, strlen(name));
}

static int txroot_mkdir(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name,
			struct iref *out)
{
	int err;

	if (name[0] == '.')
		return -EINVAL;
	err = fs_tx_writable(fs, p);
	return err ? err : fs_view_mkdir(fs, req, p, name, out);
}

static int txroot_unlink(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name)
{
	struct txn *tx = txn_find_id(fs->eng, p->txn_id);
	int err;

	if (!tx)
		return -ENOENT;
	if (reserved_top_name(name)) {
		txn_unref(tx);
		return strcmp(name, EXPECT_DIR) ? -EROFS : -EISDIR;
	}
	err = txn_note_remove(tx, name);
	if (err == -ENOENT && txn_writable(tx) == -EROFS)
		err = -EROFS;
	txn_unref(tx);
	if (err != -ENOENT)
		return err;
	return fs_view_unlink(fs, req, p, name);
}

static int txroot_rmdir(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name)
{
	if (!strcmp(name, EXPECT_DIR))
		return -EBUSY; /* a fixed part of the transaction, as .commit.pending is */
	if (name[0] == '.')
		return -ENOTDIR;
	return fs_view_rmdir(fs, req, p, name);
}

/* rename onto .tx/NAME/.commit: commit with the source note file as the note. */
static int commit_rename(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name)
{
	struct txn *tx = txn_find_id(fs->eng, p->txn_id);
	struct txn_commit_req *c;
	struct waiter *w;
	struct blob *b = NULL;
	int err;

	if (!tx)
		return -ENOENT;
	if (txn_note_get(tx, name, &b) != 0) {
		/* Only a regular file at the top of the transaction can be renamed onto
		 * .commit; anything else is not a note. */
		err = txn_writable(tx);
		txn_unref(tx);
		return err ? err : -EINVAL;
	}
	blob_unref(b);
	c = fs_creq_new(fs, req, W_COMMIT, true);
	if (!c) {
		txn_unref(tx);
		return -ENOMEM;
	}
	w = c->arg;
	w->txn_id = p->txn_id;
	w->src = strdup(name);
	if (w->src)
		fs_txj_committing(fs, p->txn_id, name); /* in doubt if the worker dies */
	err = w->src ? txn_commit_tx(fs->eng, tx, name, c) : -ENOMEM;
	if (err) {
		free(w->src);
		fs_creq_abandon(c);
	}
	txn_unref(tx);
	return err ? err : FS_REPLIED;
}

/* The commit of a transaction completed (err 0), or failed. */
void fs_tx_commit_done(struct fs *fs, const struct waiter *w, int err)
{
	if (err) {
		/* A failure comes from the committer, which never waits for the kernel. */
		fs_queue_txn_failed(fs, w->txn_id, w->req, err);
		return;
	}
	fs_irename(fs, IK_TXNOTE, IK_TXCTL, w->txn_id, w->src, ".commit", false);
	/* A successful commit completes on the notifier thread, after the batch's
	 * invalidation: drop what the kernel caches of the view there, before the reply,
	 * so the caller's next stat sees the committed state. */
	fs_inval_txn(fs, w->txn_id);
	fs_reply_err(w->req, 0);
}

/* A rename onto .commit: the commit itself, unless the source is no note. */
static int rename_to_commit(struct fs *fs, fuse_req_t req, const struct iref *p,
			    const char *name, bool src_note)
{
	if (!src_note && !fs_is_ctl_name(name)) {
		struct txn *t = txn_find_id(fs->eng, p->txn_id);
		struct txn_entry e;
		int err;

		/* A directory of the view is not a note. */
		err = t && txn_stat(fs->eng, t, name, strlen(name), &e) == 0 ? -EISDIR : -ENOENT;
		txn_unref(t);
		if (t)
			return err;
	}
	if (!strcmp(name, ".commit"))
		return 0;
	return commit_rename(fs, req, p, name);
}

/*
 * A rename at the top of one transaction: notes and the commit (1 when it was one of
 * those and *err holds the answer; 0 for a rename of the view).
 */
static bool rename_top(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name,
		       const char *newname, int *err)
{
	struct blob *b = NULL;
	struct txn *t = txn_find_id(fs->eng, p->txn_id);
	bool src_note = t && txn_note_get(t, name, &b) == 0;

	blob_unref(b);
	if (!strcmp(newname, ".commit")) {
		txn_unref(t);
		*err = rename_to_commit(fs, req, p, name, src_note);
		return true;
	}
	if (!src_note && name[0] != '.' && newname[0] != '.') {
		txn_unref(t);
		return false;
	}
	if (reserved_top_name(name) || reserved_top_name(newname))
		*err = -EROFS;
	else if (!src_note)
		*err = -ENOENT;
	else if (newname[0] != '.')
		*err = -EXDEV; /* a note cannot become a namespace */
	else
		*err = t ? txn_note_rename(t, name, newname) : -ENOENT;
	if (!*err)
		fs_irename(fs, IK_TXNOTE, IK_TXNOTE, p->txn_id, name, newname, true);
	txn_unref(t);
	return true;
}

static int txroot_rename(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name,
			 const struct iref *np, const char *newname, unsigned int flags)
{
	int err;

	if ((flags & RENAME_EXCHANGE) && (name[0] == '.' || newname[0] == '.'))
		return -EINVAL; /* notes and control files are not keys to swap */
	if (np->kind == IK_TXROOT && p->txn_id == np->txn_id &&
	    rename_top(fs, req, p, name, newname, &err))
		return err;
	return fs_view_rename(fs, req, p, name, np, newname, flags);
}

const struct fs_area_ops fs_txroot_ops = {
	.cache_lookup = CACHE_DIRS,
	.cache_getattr = CACHE_DIRS,
	.lookup = txroot_lookup,
	.stat = txroot_stat,
	.owner = tx_owner,
	.writable = fs_tx_writable,
	.list = txroot_list,
	.create = txroot_create,
	.mkdir = txroot_mkdir,
	.unlink = txroot_unlink,
	.rmdir = txroot_rmdir,
	.rename = txroot_rename,
};

/* ---- the view below .tx/NAME ------------------------------------------------------------- */

/* A transaction's file is read by inode from the view, never cached: it changes with
 * every staged write. */
static int txpath_open(struct fs *fs, fuse_req_t req, const struct iref *r,
                       struct fuse_file_info *fi)
{
	fi->fh = 0;
	fi->noflush = 1;
	return 0;
}

/* A transaction's view shows the tree of its begin: what it did not stage itself is the
 * past, shown as .at shows it (fs_past_may_read). */
static int txpath_may_read(struct fs *fs, const struct iref *r, const struct txn_caller *c)
{
	struct txn *tx = txn_find_id(fs->eng, r->txn_id);
	struct txn_entry e;
	int err;

	if (!tx)
		return -ENOENT;
	err = txn_stat(fs->eng, tx, r->path, r->len, &e);
	if (!err && r->type == TXN_DIR)
		e.commit_ts = txn_begin_ts(tx);
	txn_unref(tx);
	if (err || (r->type == TXN_FILE && e.version == 0))
		return err == -EROFS ? 0 : err; /* staged by the transaction: its own */
	return fs_past_may_read(fs, r->path, r->len, r->type == TXN_FILE, e.commit_ts, c);
}

/*
 * A write handle's value stages at each write(), truncation and fallocate, and at an
 * open with O_TRUNC (h->lock held): once close() returns nothing of it is left to do, so
 * the kernel sends no flush and the commit that follows sees it whatever the kernel's
 * release does meanwhile.  The value goes to the path the handle's inode names now (a
 * rename moved it along), and nowhere once the file was unlinked.
 */
static int txpath_written(struct fs *fs, struct handle *h)
{
	struct iref cur = { 0 };
	struct txn *tx = NULL;
	struct blob *val;
	int err = fs_iget(fs, h->ir.ino, &cur);

	if (!err && cur.kind != IK_TXPATH)
		err = -ENOENT;
	if (err == -ENOENT) {
		/* Unlinked (fs_writable found the transaction): the data goes with the file. */
		fs_iref_release(&cur);
		h->dirty = false;
		return 0;
	}
	if (!err && !(tx = txn_find_id(fs->eng, cur.txn_id)))
		err = -ENOENT;
	err = err ? err : -EAGAIN;
	if (err == -EAGAIN && h->undo) {
		/* Staged before: only what changed since goes in (txn_stage_patch). */
		size_t hi = h->chg && h->chg_hi < h->size ? h->chg_hi : h->size;
		size_t lo = h->chg && h->chg_lo < hi ? h->chg_lo : hi;

		err = txn_stage_patch(fs->eng, tx, cur.path, cur.len, lo,
				      hi > lo ? h->buf + lo : NULL, hi - lo, h->size, h->undo);
	}
	if (err == -EAGAIN) {
		val = blob_new(h->buf ? h->buf : "", h->size);
		err = val ? txn_stage_put_undo(fs->eng, tx, cur.path, cur.len, val, &h->undo)
			  : -ENOMEM;
	}
	if (!err) {
		h->dirty = false;
		h->chg = false;
	}
	txn_unref(tx);
	fs_iref_release(&cur);
	return err;
}

/* A write was refused: what the handle staged goes back to what was there before it. */
static void txpath_write_failed(struct fs *fs, struct handle *h)
{
	struct txn *tx = txn_find_id(fs->eng, h->ir.txn_id);

	if (tx)
		txn_stage_undo(fs->eng, tx, &h->undo);
	txn_undo_free(h->undo);
	h->undo = NULL;
	txn_unref(tx);
}

/* The view's names and attributes may be cached until the transaction's deadline, after
 * which its view answers ETIMEDOUT; a commit invalidates them at once (notify.c). */
static double txpath_cache_limit(struct fs *fs, const struct iref *r)
{
	struct txn *tx = txn_find_id(fs->eng, r->txn_id);
	double s = tx ? (double)txn_expires_in_ms(tx) / 1000 : 0;

	txn_unref(tx);
	return s;
}

const struct fs_area_ops fs_txpath_ops = {
	.cache_lookup = CACHE_ALL,
	.cache_getattr = CACHE_ALL,
	.cache_limit_s = txpath_cache_limit,
	.lookup = fs_view_lookup,
	.stat = fs_view_stat,
	.owner = fs_view_owner,
	.value = fs_view_value,
	.open = txpath_open,
	.writable = fs_tx_writable,
	.written = txpath_written,
	.write_failed = txpath_write_failed,
	.stage_at_write = true,
	.put = tx_put,
	.list = fs_view_list,
	.create = fs_view_create,
	.mkdir = fs_view_mkdir,
	.unlink = fs_view_unlink,
	.rmdir = fs_view_rmdir,
	.rename = fs_view_rename,
	.entry = fs_view_entry,
	.may_read = txpath_may_read,
};

/* ---- notes and control files ------------------------------------------------------------- */

static int txnote_stat(struct fs *fs, const struct iref *r, struct stat *st)
{
	return fs_stat_content(fs, r, st, 0644);
}

const struct fs_area_ops fs_txnote_ops = {
	.stat = txnote_stat,
	.owner = tx_owner,
	.content = tx_content,
	.value = fs_file_content,
	.writable = fs_tx_writable,
	.put = tx_put,
};

/* The control files a write sets: .timeout_ms and .isolation. */
static bool txctl_settable(const char *name)
{
	return !strcmp(name, ".timeout_ms") || !strcmp(name, ".isolation");
}

static int txctl_stat(struct fs *fs, const struct iref *r, struct stat *st)
{
	return fs_stat_content(fs, r, st, txctl_settable(r->path) ? 0644 : 0444);
}

/* .status, .commit (once committed), .timeout_ms and .isolation, rendered from the
 * transaction. */
static int txctl_render(struct fs *fs, struct txn *tx, const char *name, struct blob **out)
{
	char num[32];
	char *s;

	if (!strcmp(name, ".status")) {
		*out = fs_blob_from_str(render_status_json(fs->eng, tx));
		return *out ? 0 : -ENOMEM;
	}
	if (!strcmp(name, ".commit")) {
		s = render_commit_json(tx);
		if (!s)
			return -ENOENT;
		*out = fs_blob_from_str(s);
		return *out ? 0 : -ENOMEM;
	}
	if (!strcmp(name, ".isolation"))
		snprintf(num, sizeof(num), "%s\n", txn_isolation_name(txn_get_isolation(tx)));
	else
		snprintf(num, sizeof(num), "%" PRId64 "\n", txn_timeout_ms(tx));
	*out = blob_new(num, strlen(num));
	return *out ? 0 : -ENOMEM;
}

/* Only .timeout_ms and .isolation, and only while the transaction is open (EBUSY while
 * committing). */
static int txctl_writable(struct fs *fs, const struct iref *r)
{
	struct txn *tx;
	int err;

	if (!txctl_settable(r->path))
		return -EROFS;
	tx = txn_find_id(fs->eng, r->txn_id);
	if (!tx)
		return -ENOENT;
	err = txn_writable(tx);
	txn_unref(tx);
	return err;
}

/* Parse a decimal number of milliseconds with an optional trailing newline. */
static int parse_ms(const char *s, size_t n, int64_t *out)
{
	int64_t v = 0;
	size_t i = 0;

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		n--;
	if (n == 0 || n > 12)
		return -EINVAL;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Every write to .timeout_ms or .isolation sets it at once (h->lock held): EINVAL for
 * what is no timeout or level, EBUSY once the transaction staged an op (or, for
 * .isolation, read from its view). */
static int txctl_written(struct fs *fs, struct handle *h)
{
	struct txn *tx = txn_find_id(fs->eng, h->ir.txn_id);
	enum txn_isolation iso;
	int64_t ms;
	int err = tx ? 0 : -ENOENT;

	if (!err && !strcmp(h->ir.path, ".isolation")) {
		err = txn_isolation_parse(h->buf, h->size, &iso);
		if (!err)
			err = txn_set_isolation(tx, iso);
	} else if (!err) {
		err = parse_ms(h->buf, h->size, &ms);
		if (!err)
			err = txn_set_timeout(fs->eng, tx, ms);
	}
	txn_unref(tx);
	h->dirty = false;
	if (!err)
		queue_inval_view(fs, h->ir.txn_id); /* cached until the old deadline */
	return err;
}

const struct fs_area_ops fs_txctl_ops = {
	.stat = txctl_stat,
	.owner = tx_owner,
	.content = tx_content,
	.value = fs_file_content,
	.writable = txctl_writable,
	.written = txctl_written,
};
