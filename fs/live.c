/* SPDX-License-Identifier: MIT */
/*
 * live.c - the live tree and the operations on a view of it (the live tree itself, or
 * a transaction's view below .tx/NAME), with the commits the live tree makes: a write
 * at flush, unlink, rmdir, rename, truncate and chmod/chown each commit at once (fs
 * layer).
 *
 * A commit from the live tree goes to the committer as a txn_commit_req whose waiter
 * says which request to answer; waiter_done() answers it, on the committer thread or
 * (late requests) on the notifier after the invalidation (design note 3, notify.c).  One
 * answered on the committer thread invalidates the read-only mount first (design note
 * 5, romount.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "log.h"

/* View of a tree inode: NULL for live; a referenced txn for transaction areas. */
int fs_view_of(struct fs *fs, const struct iref *r, struct txn **tx, enum ikind *child_kind)
{
	*tx = NULL;
	switch (r->kind) {
	case IK_ROOT:
	case IK_LIVE:
		*child_kind = IK_LIVE;
		return 0;
	case IK_TXROOT:
	case IK_TXPATH:
		*child_kind = IK_TXPATH;
		*tx = txn_find_id(fs->eng, r->txn_id);
		return *tx ? 0 : -ENOENT;
	default:
		return -ENOTDIR;
	}
}

/* The transaction of a file or directory of a view (NULL for the live tree). */
static int view_txn(struct fs *fs, const struct iref *r, struct txn **tx)
{
	*tx = NULL;
	if (r->kind == IK_TXPATH && !(*tx = txn_find_id(fs->eng, r->txn_id)))
		return -ENOENT;
	return 0;
}

/* The view of p and the path of name in it (malloc'ed); on failure nothing to free. */
static int view_child(struct fs *fs, const struct iref *p, const char *name, struct txn **tx,
		      enum ikind *ck, char **path, size_t *len)
{
	int err = fs_view_of(fs, p, tx, ck);

	if (err)
		return err;
	*path = fs_child_path(p, name, len);
	if (!*path) {
		txn_unref(*tx);
		*tx = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ---- commits from the live tree -------------------------------------------------------- */

/*
 * A write's commit failed.  If its key does not exist, the kernel still holds the entry
 * the create made, and with default_permissions it would answer the next open of that
 * name with our ENOENT for the inode: have the notifier drop the entry, as after a delete.
 */
static void forget_failed_create(struct fs *fs, const char *path)
{
	struct txn_changes *ch = calloc(1, sizeof(*ch));
	struct txn_entry e;

	if (!ch)
		return;
	if (txn_stat(fs->eng, NULL, path, strlen(path), &e) != -ENOENT ||
	    !(ch->paths = malloc(sizeof(*ch->paths))) || !(ch->paths[0] = strdup(path))) {
		txn_changes_free(ch);
		return;
	}
	ch->n = 1;
	fs_queue_changes(fs, ch);
}

/* A truncate or chmod committed: answer with the inode's attributes now. */
static void setattr_done(struct fs *fs, const struct waiter *w, const char *path, int err)
{
	struct iref r = { .ino = w->ino, .kind = IK_LIVE, .type = w->is_dir ? TXN_DIR : TXN_FILE,
			  .path = (char *)path, .len = strlen(path) };
	struct stat st;

	if (!err)
		err = fs_stat_iref(fs, &r, &st);
	if (err)
		fs_reply_err(w->req, err);
	else if (!w->is_dir && fs_writer_size(w->req, w->ino, NULL, &st))
		fuse_reply_attr(w->req, &st, 0); /* a writer's fchmod: its own size */
	else
		fuse_reply_attr(w->req, &st, fs->opt.entry_timeout_s);
}

/*
 * A live key was unlinked: the path names it no more, and an inode the kernel still
 * holds (an open descriptor) keeps the value it had until the kernel forgets it.
 */
static void unlinked(struct fs *fs, const char *path, struct waiter *w)
{
	size_t len = strlen(path);
	struct inode *in;
	struct iref r = { .kind = IK_LIVE, .type = TXN_FILE, .path = (char *)path, .len = len };

	fs_pending_forget(fs, NULL, path, len);
	pthread_mutex_lock(&fs->itable_lock);
	in = fs_ifind_key_locked(fs, IK_LIVE, 0, TXN_FILE, path, len);
	r.ino = in ? in->ino : 0;
	fs_iunhash_locked(fs, in);
	pthread_mutex_unlock(&fs->itable_lock);
	if (r.ino && w->value) {
		fs_orphan_add(fs, r.ino, &r, w->value);
		w->value = NULL;
	}
}

static void waiter_done(struct txn_commit_req *creq, int err)
{
	struct waiter *w = creq->arg;
	struct fs *fs = w->fs;

	/* The empty value of a create that a later write beat: nothing to do. */
	if (err == -EEXIST && creq->kind == TXN_AUTO_PUT && creq->noreplace)
		err = 0;
	if (err && (w->kind == W_NONE || w->kind == W_FLUSH))
		forget_failed_create(fs, creq->path);
	if (w->pending) {
		/* The create is real now (or failed): the tree answers for it. */
		fs_pending_forget(fs, w->pending, NULL, 0);
		fs_pending_unref(fs, w->pending);
	}

	switch (w->kind) {
	case W_NONE:
		if (err)
			log_warn("cannot commit '%s' on release: %s", creq->path, strerror(-err));
		break;
	case W_FLUSH:
		fs_reply_err(w->req, err);
		break;
	case W_UNLINK:
		if (!err) {
			unlinked(fs, creq->path, w);
			fs_ro_invalidate_path(fs, creq->path);
		}
		fs_reply_err(w->req, err);
		break;
	case W_RMDIR:
		if (!err) {
			fs_iunhash(fs, IK_LIVE, 0, TXN_DIR, creq->path, strlen(creq->path));
			fs_ro_invalidate_path(fs, creq->path);
		}
		fs_reply_err(w->req, err);
		break;
	case W_RENAME:
		if (!err)
			fs_pending_forget(fs, NULL, creq->path, strlen(creq->path));
		if (!err && creq->kind == TXN_AUTO_EXCHANGE)
			fs_iexchange(fs, IK_LIVE, 0, creq->path, creq->path2);
		else if (!err)
			fs_imove(fs, IK_LIVE, 0, creq->path, strlen(creq->path), creq->path2,
				 strlen(creq->path2));
		if (!err) {
			fs_ro_invalidate_path(fs, creq->path);
			fs_ro_invalidate_path(fs, creq->path2);
		}
		fs_reply_err(w->req, err);
		break;
	case W_SETATTR:
		if (!err)
			fs_ro_invalidate_path(fs, creq->path);
		setattr_done(fs, w, creq->path, err);
		break;
	case W_COMMIT:
		fs_tx_commit_done(fs, w, err);
		break;
	}
	blob_unref(w->value);
	free(w->src);
	free(w->dst);
	free(w);
	txn_commit_req_free(creq);
}

struct txn_commit_req *fs_creq_new(struct fs *fs, fuse_req_t req, enum wait_kind kind, bool late)
{
	struct txn_commit_req *c = calloc(1, sizeof(*c));
	struct waiter *w = calloc(1, sizeof(*w));

	if (!c || !w) {
		free(c);
		free(w);
		return NULL;
	}
	w->fs = fs;
	w->req = req;
	w->kind = kind;
	c->arg = w;
	c->done = waiter_done;
	c->late = late;
	c->id = fs_reqid(fs);
	return c;
}

void fs_creq_abandon(struct txn_commit_req *c)
{
	if (c)
		free(c->arg);
	txn_commit_req_free(c);
}

/*
 * A whole new value for a live key: a write handle's at a flush (completed late, after
 * the invalidation; req NULL: at release, nobody waits, completed by the committer) or
 * a truncate by path (h NULL; completed by the committer).  The handle's commit makes its pending create real: the
 * empty value of a create that nothing was written to goes in only if the key is
 * still absent.  pending_lock is held when h is given (fs_commit_handle).
 */
static int live_put(struct fs *fs, fuse_req_t req, const struct iref *r, struct blob *val,
		    struct handle *h)
{
	struct txn_commit_req *c =
		h ? fs_creq_new(fs, req, req ? W_FLUSH : W_NONE, req != NULL)
		  : fs_creq_new(fs, req, W_SETATTR, false);
	struct waiter *w;

	if (!c || !(c->path = strdup(r->path))) {
		blob_unref(val);
		fs_creq_abandon(c);
		return -ENOMEM;
	}
	w = c->arg;
	if (!h)
		w->ino = r->ino;
	if (h && h->pending) {
		w->pending = fs_pending_ref_locked(h->pending);
		c->attr = fs_pending_attr_locked(h->pending);
		pthread_mutex_lock(&h->lock);
		c->noreplace = !h->written;
		pthread_mutex_unlock(&h->lock);
	}
	c->kind = TXN_AUTO_PUT;
	c->value = val;
	txn_autocommit(fs->eng, c);
	return FS_REPLIED;
}

static void make_real_locked(struct fs *fs, const char *path);

/*
 * chmod, chown, chgrp.  On a namespace or agent directory of the live tree a change is
 * a commit (FS_REPLIED: queued, the reply comes when it is durable); so is a chmod of a
 * live key (a pending create's empty value commits first, make_real_locked()), whose
 * owner and group stay its agent's.  Everything else keeps the owner and mode it
 * derives from its agent: asking for what it already has succeeds (cp -p), anything
 * else is EPERM.  The kernel (default_permissions) has already checked that the caller
 * may ask.
 */
int fs_set_owner_mode(struct fs *fs, fuse_req_t req, const struct iref *r, const struct stat *attr,
		      int to_set)
{
	struct txn_commit_req *c;
	struct stat cur;
	struct txn_attr a;
	bool key;
	int depth, err = fs_stat_iref(fs, r, &cur);

	if (err)
		return err;
	a.uid = (to_set & FUSE_SET_ATTR_UID) ? (uint32_t)attr->st_uid : (uint32_t)cur.st_uid;
	a.gid = (to_set & FUSE_SET_ATTR_GID) ? (uint32_t)attr->st_gid : (uint32_t)cur.st_gid;
	a.mode = (to_set & FUSE_SET_ATTR_MODE) ? (uint32_t)(attr->st_mode & 07777)
					       : (uint32_t)(cur.st_mode & 07777);
	a.own = true;
	if (a.uid == cur.st_uid && a.gid == cur.st_gid && a.mode == (cur.st_mode & 07777))
		return 0;
	depth = r->kind == IK_LIVE ? txn_path_depth(r->path, r->len) : 0;
	key = depth > 2 && r->type == TXN_FILE;
	if (key && (a.uid != cur.st_uid || a.gid != cur.st_gid))
		return -EPERM; /* a key's owner is its agent's */
	if (!key && (depth < 1 || depth > 2 || r->type != TXN_DIR))
		return fs_area(r->kind)->read_only ? -EROFS : -EPERM;
	c = fs_creq_new(fs, req, W_SETATTR, false);
	if (!c || !(c->path = strdup(r->path))) {
		fs_creq_abandon(c);
		return -ENOMEM;
	}
	((struct waiter *)c->arg)->ino = r->ino;
	((struct waiter *)c->arg)->is_dir = !key;
	c->kind = TXN_AUTO_ATTR;
	c->attr = a;
	pthread_mutex_lock(&fs->pending_lock);
	if (key)
		make_real_locked(fs, r->path);
	txn_autocommit(fs->eng, c);
	pthread_mutex_unlock(&fs->pending_lock);
	return FS_REPLIED;
}

/* ---- a view: the live tree, or a transaction's ----------------------------------------- */

int fs_view_lookup(struct fs *fs, const struct iref *p, const char *name, struct iref *out)
{
	struct txn *tx;
	struct txn_entry e;
	enum ikind ck;
	size_t len;
	char *path;
	int err = view_child(fs, p, name, &tx, &ck, &path, &len);

	if (err)
		return err;
	err = txn_stat(fs->eng, tx, path, len, &e);
	if (err == -ENOENT && !tx && fs_pending_time(fs, path, len, &e.time_ns)) {
		e.type = TXN_FILE; /* created, not committed yet */
		err = 0;
	}
	if (err)
		free(path);
	else
		fs_iref_take(out, ck, ck == IK_LIVE ? 0 : txn_id(tx), e.type, path, len);
	txn_unref(tx);
	return err;
}

int fs_view_stat(struct fs *fs, const struct iref *r, struct stat *st)
{
	struct txn *tx;
	struct txn_entry e;
	int64_t created_ns;
	int err = view_txn(fs, r, &tx);

	if (err)
		return err;
	err = txn_stat(fs->eng, tx, r->path, r->len, &e);
	if (err == -ENOENT && !tx && r->type == TXN_FILE &&
	    fs_pending_time(fs, r->path, r->len, &created_ns)) {
		/* Created, not committed yet: empty, its times the creation. */
		fs_fill_attr(fs, st, r->ino, TXN_FILE, 0, created_ns, 0);
		return 0;
	}
	txn_unref(tx);
	if (err)
		return err;
	if (e.type != r->type)
		return -ENOENT; /* the path changed type: this inode is stale */
	/* Always the committed size: a writer's uncommitted bytes are its own. */
	fs_fill_attr(fs, st, r->ino, e.type, e.size, e.time_ns, 0);
	return 0;
}

/* Keys and key directories take their agent's owner and mode; a key may have a mode of
 * its own, as may a live key created with one and not committed yet. */
void fs_view_owner(struct fs *fs, const struct iref *r, struct stat *st)
{
	mode_t m;

	fs_owner_of_agent(fs, r->path, r->len, S_ISDIR(st->st_mode) ? 07777 : 0666, st);
	if (r->kind == IK_LIVE && S_ISREG(st->st_mode) && fs_pending_mode(fs, r->path, r->len, &m))
		st->st_mode = S_IFREG | m;
}

int fs_view_value(struct fs *fs, const struct iref *r, struct blob **out)
{
	struct txn *tx;
	int64_t created_ns;
	int err;

	*out = NULL;
	err = view_txn(fs, r, &tx);
	if (err)
		return err;
	err = txn_read(fs->eng, tx, r->path, r->len, out, NULL);
	if (err == -ENOENT && !tx && fs_pending_time(fs, r->path, r->len, &created_ns)) {
		*out = blob_new("", 0); /* created, not committed yet */
		err = *out ? 0 : -ENOMEM;
	}
	txn_unref(tx);
	return err;
}

int fs_view_entry(struct fs *fs, const struct iref *r, struct txn_entry *e)
{
	struct txn *tx;
	int err = view_txn(fs, r, &tx);

	if (!err && !tx)
		fs_pending_wait(fs, r->path, r->len); /* `touch k; getfattr k`: its commit */
	if (!err)
		err = txn_stat(fs->eng, tx, r->path, r->len, e);
	if (!err && e->type != TXN_FILE)
		err = -ENODATA;
	if (err == -ENOENT && !tx && fs_pending_time(fs, r->path, r->len, &e->time_ns))
		err = -ENODATA; /* created, no version yet */
	txn_unref(tx);
	return err;
}

int fs_view_list(struct fs *fs, const struct iref *r, struct handle *h)
{
	struct dirent_entry *d = NULL;
	struct txn *tx;
	enum ikind ck;
	size_t n = 0;
	int err = fs_view_of(fs, r, &tx, &ck);

	if (!err)
		err = txn_list(fs->eng, tx, r->path, r->len, &d, &n);
	if (!err)
		err = fs_dir_add_all(h, d, n);
	if (!err && !tx)
		err = fs_pending_list(fs, r->path, r->len, h); /* created, not committed yet */
	txn_unref(tx);
	return err;
}

/* Bytes of the key of "ns/agent/key". */
static size_t key_len(const char *path, size_t len)
{
	const char *s1 = memchr(path, '/', len);
	const char *s2 = memchr(s1 + 1, '/', len - (size_t)(s1 + 1 - path));

	return len - (size_t)(s2 + 1 - path);
}

int fs_view_create(struct fs *fs, const struct iref *p, const char *name, struct iref *out)
{
	struct txn *tx;
	struct blob *b;
	enum ikind ck;
	size_t len;
	char *path;
	int err = view_child(fs, p, name, &tx, &ck, &path, &len);

	if (err)
		return err;
	if (txn_path_depth(path, len) < 3)
		err = -EINVAL; /* a key lives below <ns>/<agent>/ */
	else if (key_len(path, len) > TXN_KEY_MAX)
		err = -ENAMETOOLONG; /* at open, where the shell sees it, not at close */
	if (!err && tx) {
		/* Staged at once so the new name shows in the view. */
		b = blob_new("", 0);
		err = b ? txn_stage_put(fs->eng, tx, path, len, b) : -ENOMEM;
	}
	txn_unref(tx);
	if (err) {
		free(path);
		return err;
	}
	fs_iref_take(out, ck, p->txn_id, TXN_FILE, path, len);
	return 0;
}

int fs_view_mkdir(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name,
		  struct iref *out)
{
	struct txn_reqid rid = fs_reqid(fs);
	struct txn *tx;
	enum ikind ck;
	size_t len;
	char *path;
	int err = view_child(fs, p, name, &tx, &ck, &path, &len);

	if (err)
		return err;
	err = tx ? txn_stage_mkdir(fs->eng, tx, path, len)
		 : txn_live_mkdir(fs->eng, path, len, &rid);
	if (err)
		free(path);
	else
		fs_iref_take(out, ck, tx ? txn_id(tx) : 0, TXN_DIR, path, len);
	txn_unref(tx);
	return err;
}

/*
 * Unlink of a pending create whose commit is not queued: the create is cancelled (its
 * handle's value goes nowhere) and nothing commits.  pending_lock held.
 */
static bool cancel_pending_locked(struct fs *fs, const char *path, size_t len, bool *queued)
{
	struct pending *p;

	*queued = false;
	if (!fs_pending_find_locked(fs, path, len, &p))
		return false;
	*queued = fs_pending_queued_locked(p);
	if (*queued)
		return false; /* its commit lands first: the delete follows it in the queue */
	fs_iunhash(fs, IK_LIVE, 0, TXN_FILE, path, len);
	fs_pending_forget_locked(fs, p);
	return true;
}

/* unlink in the live tree: a commit, answered by the committer. */
static int live_unlink(struct fs *fs, fuse_req_t req, char *path, size_t len)
{
	struct txn_commit_req *c;
	struct txn_entry e;
	bool queued = false;
	int err;

	pthread_mutex_lock(&fs->pending_lock);
	err = txn_stat(fs->eng, NULL, path, len, &e);
	if (err == -ENOENT && cancel_pending_locked(fs, path, len, &queued)) {
		pthread_mutex_unlock(&fs->pending_lock);
		free(path);
		return 0;
	}
	if (err == -ENOENT && queued)
		err = 0;
	else if (!err && e.type != TXN_FILE)
		err = -EISDIR;
	if (!err && !(c = fs_creq_new(fs, req, W_UNLINK, false)))
		err = -ENOMEM;
	if (err) {
		pthread_mutex_unlock(&fs->pending_lock);
		free(path);
		return err;
	}
	/* What an open descriptor of the unlinked file goes on reading. */
	txn_read(fs->eng, NULL, path, len, &((struct waiter *)c->arg)->value, NULL);
	c->kind = TXN_AUTO_DELETE;
	c->path = path;
	txn_autocommit(fs->eng, c);
	pthread_mutex_unlock(&fs->pending_lock);
	return FS_REPLIED;
}

int fs_view_unlink(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name)
{
	struct txn *tx;
	enum ikind ck;
	size_t len;
	char *path;
	int err = view_child(fs, p, name, &tx, &ck, &path, &len);

	if (err)
		return err;
	if (!tx)
		return live_unlink(fs, req, path, len);
	err = txn_writable(tx);
	if (!err)
		err = txn_stage_delete(fs->eng, tx, path, len);
	if (!err)
		fs_iunhash(fs, IK_TXPATH, txn_id(tx), TXN_FILE, path, len);
	txn_unref(tx);
	free(path);
	return err;
}

/*
 * rmdir in the live tree.  A namespace or agent with an owner and mode of its own
 * loses them with it (a commit): it is implicit again.  A directory holding a created
 * file not committed yet is not empty.  *path is taken then.
 */
static int live_rmdir(struct fs *fs, fuse_req_t req, char **path, size_t len)
{
	struct txn_reqid rid = fs_reqid(fs);
	struct txn_commit_req *c;
	struct txn_attr a;
	int depth = txn_path_depth(*path, len);
	int err = fs_pending_below(fs, *path, len) ? -ENOTEMPTY
						   : txn_live_rmdir(fs->eng, *path, len, &rid);

	if (err || depth > 2 || txn_dir_attr(fs->eng, *path, len, &a) != 0 || !a.own)
		return err;
	c = fs_creq_new(fs, req, W_RMDIR, false);
	if (!c)
		return -ENOMEM;
	c->path = *path;
	*path = NULL;
	c->kind = TXN_AUTO_ATTR;
	c->attr.own = false;
	txn_autocommit(fs->eng, c);
	return FS_REPLIED;
}

int fs_view_rmdir(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name)
{
	struct txn *tx;
	enum ikind ck;
	size_t len;
	char *path;
	int err = view_child(fs, p, name, &tx, &ck, &path, &len);

	if (err)
		return err;
	if (tx) {
		err = txn_writable(tx);
		if (!err)
			err = txn_stage_rmdir(fs->eng, tx, path, len);
	} else {
		err = live_rmdir(fs, req, &path, len);
	}
	if (!err)
		fs_iunhash(fs, ck, tx ? txn_id(tx) : 0, TXN_DIR, path, len);
	txn_unref(tx);
	free(path);
	return err;
}

static bool same_view(const struct iref *a, const struct iref *b)
{
	bool la = a->kind == IK_ROOT || a->kind == IK_LIVE;
	bool lb = b->kind == IK_ROOT || b->kind == IK_LIVE;
	bool ta = a->kind == IK_TXROOT || a->kind == IK_TXPATH;
	bool tb = b->kind == IK_TXROOT || b->kind == IK_TXPATH;

	return (la && lb) || (ta && tb && a->txn_id == b->txn_id);
}

/*
 * A rename of a pending create whose commit is not queued yet: its empty value commits
 * first (if the key is still absent), so the rename queued after it finds the key; the
 * handle's own value follows the inode to the new name.  pending_lock held.
 */
static void make_real_locked(struct fs *fs, const char *path)
{
	struct txn_commit_req *c;
	struct pending *p;

	if (!fs_pending_find_locked(fs, path, strlen(path), &p) || fs_pending_queued_locked(p))
		return;
	c = fs_creq_new(fs, NULL, W_NONE, false);
	if (!c || !(c->path = strdup(path)) || !(c->value = blob_new("", 0))) {
		fs_creq_abandon(c);
		return;
	}
	fs_pending_set_queued_locked(p, true);
	((struct waiter *)c->arg)->pending = fs_pending_ref_locked(p);
	c->attr = fs_pending_attr_locked(p);
	c->kind = TXN_AUTO_PUT;
	c->noreplace = true;
	txn_autocommit(fs->eng, c);
}

/* rename in the live tree: a commit, answered by the committer; src and dst taken. */
static int live_rename(struct fs *fs, fuse_req_t req, char *src, char *dst, unsigned int flags)
{
	struct txn_commit_req *c = fs_creq_new(fs, req, W_RENAME, false);

	if (!c) {
		free(src);
		free(dst);
		return -ENOMEM;
	}
	c->kind = flags & RENAME_EXCHANGE ? TXN_AUTO_EXCHANGE : TXN_AUTO_RENAME;
	c->path = src;
	c->path2 = dst;
	c->noreplace = flags & RENAME_NOREPLACE;
	pthread_mutex_lock(&fs->pending_lock);
	make_real_locked(fs, src);
	txn_autocommit(fs->eng, c);
	pthread_mutex_unlock(&fs->pending_lock);
	return FS_REPLIED;
}

int fs_view_rename(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name,
		   const struct iref *np, const char *newname, unsigned int flags)
{
	struct txn *tx;
	enum ikind ck;
	size_t slen = 0, dlen = 0;
	char *src, *dst;
	int err;

	if (!same_view(p, np))
		return -EXDEV;
	if ((p->kind == IK_ROOT && name[0] == '.') || (np->kind == IK_ROOT && newname[0] == '.'))
		return -EXDEV; /* .tx, .health, ... are areas of their own */
	err = fs_check_name(newname);
	if (!err)
		err = fs_view_of(fs, p, &tx, &ck);
	if (err)
		return err;
	src = fs_child_path(p, name, &slen);
	dst = fs_child_path(np, newname, &dlen);
	if (!src || !dst) {
		err = -ENOMEM;
	} else if (!tx) {
		return live_rename(fs, req, src, dst, flags);
	} else if (flags & RENAME_EXCHANGE) {
		err = txn_stage_exchange(fs->eng, tx, src, slen, dst, dlen);
		if (!err)
			fs_iexchange(fs, IK_TXPATH, txn_id(tx), src, dst);
	} else {
		err = txn_stage_rename(fs->eng, tx, src, slen, dst, dlen, flags & RENAME_NOREPLACE);
		if (!err)
			fs_imove(fs, IK_TXPATH, txn_id(tx), src, slen, dst, dlen);
	}
	txn_unref(tx);
	free(src);
	free(dst);
	return err;
}

/* ---- the live tree's own ------------------------------------------------------------- */

/*
 * Served by inode from the current value; pages stay cached until a commit invalidates
 * them.  While a writer has the key open, the kernel's size and pages of the shared
 * inode follow the writer's uncommitted bytes: then read past them, from the daemon.
 */
static int live_open(struct fs *fs, fuse_req_t req, const struct iref *r,
                     struct fuse_file_info *fi)
{
	fi->fh = 0;
	if (fs->opt.stale_eio && (fi->flags & O_ACCMODE) == O_RDONLY && txn_engine_stale(fs->eng))
		return -EIO;
	fs->key_reads++;
	if (fs_ipending_size(fs, r->ino) >= 0)
		fi->direct_io = 1;
	else
		fi->keep_cache = 1;
	fi->noflush = 1;
	return 0;
}

static int live_writable(struct fs *fs, const struct iref *r)
{
	return 0;
}

const struct fs_area_ops fs_live_ops = {
	.live = true,
	.cache_lookup = CACHE_ALL,
	.cache_getattr = CACHE_ALL,
	.lookup = fs_view_lookup,
	.stat = fs_view_stat,
	.owner = fs_view_owner,
	.value = fs_view_value,
	.open = live_open,
	.writable = live_writable,
	.put = live_put,
	.list = fs_view_list,
	.create = fs_view_create,
	.mkdir = fs_view_mkdir,
	.unlink = fs_view_unlink,
	.rmdir = fs_view_rmdir,
	.rename = fs_view_rename,
	.entry = fs_view_entry,
};
