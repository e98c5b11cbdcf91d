/* SPDX-License-Identifier: MIT */
/*
 * ops.c - the FUSE low-level operations (fs layer): each resolves its inode, calls the
 * operation of the inode's area (fs_area(), one table per kind) and replies.  Those of
 * directory listings, extended attributes and statfs are in meta.c.
 *
 * Design note 4.  errnos are negative everywhere below the replies and flip sign
 * exactly once, in fs_reply_err().  An area operation that answers later (a commit)
 * returns FS_REPLIED and the entry point replies nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fs_i.h"
#include "log.h"

static const struct fs_area_ops *const areas[IK_COUNT] = {
	[IK_ROOT] = &fs_root_ops,       [IK_TXDIR] = &fs_txdir_ops,
	[IK_HEALTH] = &fs_health_ops,   [IK_VERSION] = &fs_version_ops,
	[IK_METRICS] = &fs_metrics_ops, [IK_STATUS] = &fs_status_ops,
	[IK_LIVE] = &fs_live_ops,       [IK_TXROOT] = &fs_txroot_ops,
	[IK_TXPATH] = &fs_txpath_ops,   [IK_TXNOTE] = &fs_txnote_ops,
	[IK_TXCTL] = &fs_txctl_ops,     [IK_ATDIR] = &fs_atdir_ops,
	[IK_AT] = &fs_at_ops,           [IK_HISTDIR] = &fs_histdir_ops,
	[IK_HIST] = &fs_hist_ops,       [IK_HISTKEY] = &fs_histkey_ops,
	[IK_HISTVER] = &fs_histver_ops, [IK_HISTIDX] = &fs_histidx_ops,
	[IK_HISTSEG] = &fs_histseg_ops, [IK_EV] = &fs_ev_ops,
	[IK_BACKUP] = &fs_backup_ops,   [IK_TXEXPECT] = &fs_txexpect_ops,
};

const struct fs_area_ops *fs_area(enum ikind kind)
{
	if ((unsigned)kind >= IK_COUNT || !areas[kind])
		BUG("no area for inode kind %d", (int)kind);
	return areas[kind];
}

struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

void fs_reply_err(fuse_req_t req, int err)
{
	/* The one place where a negative errno becomes the kernel's positive one. */
	if (req)
		fuse_reply_err(req, err < 0 ? -err : err);
}

/* ---- entries and attributes as replied ----------------------------------------------- */

/* How long the kernel may keep what it caches of r: at most the area's limit (a
 * transaction's view: its deadline, after which it answers ETIMEDOUT). */
static double cache_limit(struct fs *fs, const struct iref *r, double t)
{
	const struct fs_area_ops *a = fs_area(r->kind);
	double limit;

	if (t <= 0 || !a->cache_limit_s)
		return t;
	limit = a->cache_limit_s(fs, r);
	return limit < t ? limit : t;
}

static double cache_timeout(struct fs *fs, enum fs_cache c, const struct stat *st)
{
	if (c == CACHE_ALL || (c == CACHE_DIRS && S_ISDIR(st->st_mode)))
		return fs->opt.entry_timeout_s;
	return 0;
}

/* A transaction's directories keep their owner and mode (a chmod invalidates them), and
 * its files change only through this mount, whose kernel drops their cached size and
 * times at each write and truncation it makes: both are cached, so the kernel's
 * permission checks on a path through .tx/NAME and on the open of a file cost no round
 * trip.  Its commit or failure invalidates them all (notify.c); its deadline bounds them
 * (cache_limit). */
static double attr_timeout(struct fs *fs, const struct iref *r, const struct stat *st)
{
	return cache_limit(fs, r, cache_timeout(fs, fs_area(r->kind)->cache_getattr, st));
}

/* Generated files change without commits: never cache their attributes.  The state as
 * of a commit never changes at all. */
static void entry_param(struct fs *fs, struct fuse_entry_param *e, uint64_t ino,
			const struct stat *st, const struct iref *r)
{
	enum fs_cache c = fs_area(r->kind)->cache_lookup;

	memset(e, 0, sizeof(*e));
	e->ino = ino;
	e->generation = 1;
	e->attr = *st;
	e->attr_timeout = cache_limit(fs, r, cache_timeout(fs, c, st));
	e->entry_timeout = cache_limit(fs, r, c == CACHE_NONE ? 0 : fs->opt.entry_timeout_s);
}

/* The fixed number of a name at the root, or 0. */
static uint64_t fixed_ino(const struct iref *t)
{
	switch (t->kind) {
	case IK_TXDIR:
		return INO_TXDIR;
	case IK_ATDIR:
		return INO_ATDIR;
	case IK_HISTDIR:
		return INO_HISTDIR;
	case IK_EV:
		return t->len ? 0 : t->txn_id ? INO_FOLLOWDIR : INO_EVDIR;
	case IK_HEALTH:
		return INO_HEALTH;
	case IK_VERSION:
		return INO_VERSION;
	case IK_METRICS:
		return INO_METRICS;
	case IK_STATUS:
		return INO_STATUS;
	case IK_BACKUP:
		return INO_BACKUP;
	default:
		return 0;
	}
}

/* Reply with an entry for a tuple; counts the lookup. */
void fs_reply_tuple(fuse_req_t req, const struct iref *t)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct iref r = *t;
	struct stat st;
	int err;

	r.ino = fixed_ino(t);
	if (!r.ino && (err = fs_iget_tuple(fs, t->kind, t->txn_id, t->type, t->path, t->len,
					   &r.ino))) {
		fs_reply_err(req, err);
		return;
	}
	err = fs_stat_iref(fs, &r, &st);
	if (err) {
		fs_iforget(fs, r.ino, 1);
		fs_reply_err(req, err);
		return;
	}
	entry_param(fs, &e, r.ino, &st, t);
	if (fuse_reply_entry(req, &e) != 0)
		fs_iforget(fs, r.ino, 1);
}

/* ---- requests that may wait: to the pool (loop.c) ------------------------------------- */

/* fs_i.h */
bool fs_defer_if(fuse_req_t req, bool cond, struct fs_job j)
{
	struct fs *fs = fs_of(req);

	if (!cond || !fs_defer_wanted(fs))
		return false;
	j.req = req;
	return fs_defer(fs, &j);
}

/* ---- lookup / forget / getattr ------------------------------------------------------- */

/* fs_i.h */
int fs_caller_may_read(fuse_req_t req, const struct iref *r)
{
	const struct fs_area_ops *a = fs_area(r->kind);
	struct fs_caller c;

	if (!a->may_read || fuse_req_ctx(req)->uid == 0)
		return 0;
	fs_caller_of(req, &c);
	return a->may_read(fs_of(req), r, &c.c);
}

static void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	const struct fs_area_ops *a;
	struct iref p, t = { 0 };
	int err;

	if (strlen(name) > TXN_NAME_MAX) {
		fs_reply_err(req, -ENAMETOOLONG);
		return;
	}
	err = fs_iget(fs, parent, &p);
	if (!err && DEFER_SLOW(req, &p, parent, .op = FJ_LOOKUP, .name = (char *)name))
		return;
	if (!err) {
		a = fs_area(p.kind);
		err = a->lookup ? a->lookup(fs, &p, name, &t) : -ENOTDIR;
	}
	if (!err)
		err = fs_caller_may_read(req, &t);
	if (err)
		fs_reply_err(req, err);
	else
		fs_reply_tuple(req, &t);
	fs_iref_release(&t);
	fs_iref_release(&p);
}

static void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_iforget(fs_of(req), ino, nlookup);
	fs_orphan_drop(fs_of(req), ino);
	fuse_reply_none(req);
}

static void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++) {
		fs_iforget(fs_of(req), forgets[i].ino, forgets[i].nlookup);
		fs_orphan_drop(fs_of(req), forgets[i].ino);
	}
	fuse_reply_none(req);
}

/* fs_i.h */
bool fs_writer_size(fuse_req_t req, uint64_t ino, struct handle *h, struct stat *st)
{
	struct fs *fs = fs_of(req);
	size_t size;

	if (h && h->kind == H_WRITE) {
		pthread_mutex_lock(&h->lock);
		size = h->size;
		pthread_mutex_unlock(&h->lock);
	} else if (h || fs_ipending_size(fs, ino) < 0 ||
		   !fs_handle_writer(fs, ino, fuse_req_ctx(req)->pid, &size, NULL)) {
		return false;
	}
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	return true;
}

/* fstat of a file unlinked while a descriptor holds it open: nlink 0. */
static int unlinked_attr(struct fs *fs, uint64_t ino, struct stat *st)
{
	struct blob *b;
	struct iref r;
	size_t size;

	if (fs_orphan_get(fs, ino, &b, &r)) {
		size = b->len;
		blob_unref(b);
	} else if (!fs_handle_writer(fs, ino, 0, &size, &r)) {
		return -ENOENT;
	}
	fs_fill_attr(fs, st, ino, TXN_FILE, size, clock_now_ns(CLOCK_REALTIME), 0);
	st->st_nlink = 0;
	if (r.kind == IK_LIVE || r.kind == IK_TXPATH)
		fs_view_owner(fs, &r, st);
	fs_iref_release(&r);
	return 0;
}

static void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h;
	struct iref r;
	struct stat st;
	bool own = false;
	int err = fs_handle_of(fs, fi, &h);

	if (err) {
		fs_reply_err(req, err);
		return;
	}
	err = fs_iget(fs, ino, &r);
	if (!err && DEFER_SLOW(req, &r, ino, .op = FJ_GETATTR, .fi = fi))
		return;
	if (!err)
		err = fs_stat_iref(fs, &r, &st);
	else if (err == -ENOENT && (!h || h->kind == H_WRITE))
		own = (err = unlinked_attr(fs, ino, &st)) == 0;
	if (!err && !own)
		own = fs_writer_size(req, ino, h, &st);
	if (!err && h && h->kind == H_EVENTS)
		err = fs_events_fstat(fs, h, &st);
	else if (!err && r.kind == IK_EV)
		fs_events_stat_for(fs, req, &r, &st);
	if (err)
		fs_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, own ? 0 : attr_timeout(fs, &r, &st));
	fs_iref_release(&r);
}

/* ---- open / read / write / flush / release ------------------------------------------- */

/* A generated file is read from a copy made at open (design note 2). */
static int open_content(struct fs *fs, const struct iref *r, struct fuse_file_info *fi)
{
	struct blob *b;
	struct handle *h;
	int err = fs_file_content(fs, r, &b);

	if (err)
		return err;
	h = fs_handle_new(fs, H_CONTENT, r);
	if (!h) {
		blob_unref(b);
		return -ENOMEM;
	}
	h->content = b;
	fi->direct_io = 1;
	fi->noflush = 1;
	fi->fh = h->id;
	return 0;
}

/* A write handle with the current value (or empty, for O_TRUNC), of process pid. */
static int open_write(struct fs *fs, const struct iref *r, struct fuse_file_info *fi, pid_t pid)
{
	struct blob *b = NULL;
	struct handle *h;
	int err = fs_writable(fs, r);

	if (err)
		return err;
	h = fs_handle_new(fs, H_WRITE, r);
	if (!h)
		return -ENOMEM;
	h->pid = pid;
	h->append = fi->flags & O_APPEND;
	if (fi->flags & O_TRUNC) {
		h->dirty = true;
	} else {
		err = fs_current_value(fs, r, &b);
		if (!err && fs_handle_reserve(h, b->len + 1))
			err = -ENOMEM;
		if (err) {
			blob_unref(b);
			fs_handle_free(h);
			return err;
		}
		memcpy(h->buf, b->data, b->len);
		h->size = b->len;
		blob_unref(b);
	}
	/* A writer must not put uncommitted bytes into the page cache that readers of the
	 * live key share (keep_cache): its writes go straight to its buffer (and the
	 * kernel then skips its security.capability lookup before each write). */
	fi->direct_io = 1;
	if (fs_area(r->kind)->stage_at_write) {
		/* Each write stages; the truncation too, now: nothing is left for a flush. */
		fi->noflush = 1;
		if (fi->flags & O_TRUNC) {
			pthread_mutex_lock(&h->lock);
			err = fs_area(r->kind)->written(fs, h);
			pthread_mutex_unlock(&h->lock);
			if (err) {
				fs_handle_free(h);
				return err;
			}
		}
	}
	fs_iwriter(fs, r->ino, 1, h->size);
	fi->fh = h->id;
	return 0;
}

static void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	const struct fs_area_ops *a;
	bool trunc_live;
	struct iref r = { 0 };
	int err;

	err = fs_iget(fs, ino, &r);
	if (err)
		goto out;
	if (DEFER_SLOW(req, &r, ino, .op = FJ_OPEN, .fi = fi))
		return;
	a = fs_area(r.kind);
	if ((fi->flags & O_ACCMODE) == O_RDONLY) {
		err = fs_caller_may_read(req, &r);
		if (!err)
			err = a->open ? a->open(fs, req, &r, fi) : open_content(fs, &r, fi);
		if (!err)
			fuse_reply_open(req, fi);
		goto out;
	}
	err = open_write(fs, &r, fi, fuse_req_ctx(req)->pid);
	if (err)
		goto out;
	trunc_live = a->live && (fi->flags & O_TRUNC);
	fuse_reply_open(req, fi);
	if (trunc_live)
		fs_queue_inval(fs, ino); /* the kernel set the shared size to 0 */
out:
	if (err)
		fs_reply_err(req, err);
	fs_iref_release(&r);
}

/* What a read gets from a writer's own buffer: a copy, replied after the lock is
 * released (see events_take). */
static void read_write_handle(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	struct blob *b;

	pthread_mutex_lock(&h->lock);
	b = blob_new((size_t)off < h->size ? h->buf + off : "",
		     (size_t)off < h->size ? (h->size - (size_t)off < size
					      ? h->size - (size_t)off : size) : 0);
	pthread_mutex_unlock(&h->lock);
	if (!b) {
		fs_reply_err(req, -ENOMEM);
		return;
	}
	fuse_reply_buf(req, (const char *)b->data, b->len);
	blob_unref(b);
}

static void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h;
	struct blob *b = NULL;
	struct iref r;
	int err = fs_handle_of(fs, fi, &h);

	if (err) {
		fs_reply_err(req, err);
		return;
	}
	if (h && h->kind == H_EVENTS) {
		if (!fs_defer_if(req, true, (struct fs_job){ .op = FJ_READ, .ino = ino, .fi = fi,
							   .size = size, .off = off }))
			fs_events_read(req, h, off, size);
		return;
	}
	if (h && h->kind == H_WRITE) {
		read_write_handle(req, h, size, off);
		return;
	}
	if (h && h->kind == H_CONTENT) {
		b = blob_ref(h->content);
	} else {
		err = fs_iget(fs, ino, &r);
		if (!err && DEFER_SLOW(req, &r, ino, .op = FJ_READ, .fi = fi, .size = size,
				       .off = off))
			return;
		if (!err)
			err = fs_current_value(fs, &r, &b);
		else if (err == -ENOENT && fs_orphan_get(fs, ino, &b, NULL))
			err = 0; /* unlinked, still open: the value it had */
		fs_iref_release(&r);
		if (err) {
			fs_reply_err(req, err);
			return;
		}
	}
	if ((size_t)off >= b->len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, (const char *)b->data + off,
			       b->len - (size_t)off < size ? b->len - (size_t)off : size);
	blob_unref(b);
}

/*
 * A write of h was refused: nothing of its value may commit or stay staged (the value
 * staged before its first write comes back where writes stage at write()), and a flush
 * reports err.  h->lock held.
 */
static void handle_refuse(struct fs *fs, struct handle *h, int err)
{
	const struct fs_area_ops *a = fs_area(h->ir.kind);

	h->failed = err;
	if (a->write_failed)
		a->write_failed(fs, h);
}

/* h's buffer changed: tell the area and the inode table.  h->lock held. */
static int handle_changed(struct fs *fs, struct handle *h, uint64_t ino)
{
	const struct fs_area_ops *a = fs_area(h->ir.kind);
	int err = 0;

	h->dirty = true;
	h->written = true;
	if (a->written)
		err = a->written(fs, h);
	if (!err)
		fs_iwriter(fs, ino, 0, h->size);
	return err;
}

/* Copy a write into h's buffer and tell the area.  h->lock held. */
static int handle_write(struct fs *fs, struct handle *h, const char *buf, size_t size,
			off_t off, uint64_t ino)
{
	size_t end = (size_t)off + size;
	int err = fs_handle_reserve(h, end + 1);

	if (err)
		return err;
	if ((size_t)off > h->size)
		memset(h->buf + h->size, 0, (size_t)off - h->size);
	memcpy(h->buf + off, buf, size);
	fs_handle_mark(h, (size_t)off < h->size ? (size_t)off : h->size, end);
	if (end > h->size)
		h->size = end;
	return handle_changed(fs, h, ino);
}

static void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h = fs_handle_get(fs, fi->fh);
	bool live;
	int err;

	if (!h || h->kind != H_WRITE) { /* no write handle, or one this process never made */
		fs_reply_err(req, -EBADF);
		return;
	}
	live = fs_area(h->ir.kind)->live;
	if (h->append) {
		/* The kernel's idea of the end is the committed size; ours is the buffer's. */
		pthread_mutex_lock(&h->lock);
		off = (off_t)h->size;
		pthread_mutex_unlock(&h->lock);
	}
	if ((size_t)off + size > txn_engine_options(fs->eng)->max_value_bytes) {
		pthread_mutex_lock(&h->lock);
		handle_refuse(fs, h, -EFBIG);
		pthread_mutex_unlock(&h->lock);
		fs_reply_err(req, -EFBIG);
		return;
	}
	/* An expired or committed transaction refuses the write itself, and one over its
	 * byte limits refuses it before it stages. */
	err = live ? 0 : fs_writable(fs, &h->ir);
	if (!err && !live && (err = fs_tx_room(fs, &h->ir, (size_t)off + size)) == -EDQUOT) {
		pthread_mutex_lock(&h->lock);
		handle_refuse(fs, h, -EDQUOT); /* as for EFBIG: nothing of this value stays */
		pthread_mutex_unlock(&h->lock);
	}
	if (!err) {
		const struct fs_area_ops *a = fs_area(h->ir.kind);

		pthread_mutex_lock(&h->lock);
		if (a->stage_at_write && h->failed) {
			err = h->failed; /* no flush will report it: each write after it does */
		} else {
			err = handle_write(fs, h, buf, size, off, ino);
			if (err && a->stage_at_write)
				handle_refuse(fs, h, err);
		}
		pthread_mutex_unlock(&h->lock);
	}
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	/* After the reply the writer may close and the release free h: live decided first. */
	fuse_reply_write(req, size);
	if (live) {
		/* The kernel grew the shared inode's size to the writer's: make readers ask
		 * again, or they would read zeros past the committed end. */
		fs_queue_inval(fs, ino);
	}
}

/*
 * fallocate mode 0 on a write handle: the buffer grows with zeros to off + len (it never
 * shrinks), up to max_value_bytes (EFBIG beyond, and the value stays as it was).  The
 * other modes (keep size, punch a hole, ...) have no meaning for a value: EOPNOTSUPP.
 */
static void fs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			    struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h = fs_handle_get(fs, fi->fh);
	bool live;
	int err = 0;

	if (mode != 0)
		err = -EOPNOTSUPP;
	else if (!h || h->kind != H_WRITE)
		err = -EBADF;
	else if (off < 0 || len <= 0)
		err = -EINVAL;
	else if ((uint64_t)off + (uint64_t)len > txn_engine_options(fs->eng)->max_value_bytes)
		err = -EFBIG;
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	live = fs_area(h->ir.kind)->live;
	err = live ? 0 : fs_writable(fs, &h->ir);
	pthread_mutex_lock(&h->lock);
	if (!err && (size_t)(off + len) > h->size) {
		err = fs_handle_resize(h, (size_t)(off + len));
		if (!err)
			err = handle_changed(fs, h, ino);
		if (err && fs_area(h->ir.kind)->stage_at_write)
			handle_refuse(fs, h, err);
	}
	pthread_mutex_unlock(&h->lock);
	fs_reply_err(req, err);
	if (!err && live)
		fs_queue_inval(fs, ino); /* as after a write: the kernel grew the shared size */
}

static void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h;
	int err = fs_handle_of(fs_of(req), fi, &h);

	if (err || !h || h->kind != H_WRITE) {
		fs_reply_err(req, err); /* nothing to commit, or a handle this process never made */
		return;
	}
	fs_commit_handle(fs_of(req), req, h);
}

static void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fs_op_flush(req, ino, fi);
}

static void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h = fs_handle_get(fs, fi->fh); /* NULL: none, or not ours: nothing to do */

	if (h && h->kind == H_EVENTS)
		fs_events_release(fs, h);
	if (h && h->kind == H_WRITE) {
		fs_commit_handle(fs, NULL, h);
		fs_iwriter(fs, ino, -1, 0);
	}
	fs_handle_free(h);
	fs_reply_err(req, 0);
}

static void fs_op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		       struct fuse_pollhandle *ph)
{
	struct handle *h;
	int err = fs_handle_of(fs_of(req), fi, &h);

	if (err) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		fs_reply_err(req, err);
		return;
	}
	if (fs_defer_if(req, h && h->kind == H_EVENTS,
		     (struct fs_job){ .op = FJ_POLL, .ino = ino, .fi = fi, .ph = ph }))
		return;
	fs_events_poll(req, h, ph);
}

/* ---- create / mkdir / unlink / rmdir / rename ------------------------------------------ */

/* The rules for a new name below parent p, in any area. */
static int check_new_name(const struct iref *p, const char *name)
{
	int err;

	if (fs_area(p->kind)->read_only)
		return -EROFS;
	err = fs_check_name(name);
	if (err)
		return err;
	if (p->kind == IK_ROOT && name[0] == '.')
		return -EINVAL; /* reserved at the root */
	return 0;
}

/* The reply to a create: the new file's entry and its write handle. */
static int reply_create(fuse_req_t req, const struct iref *r, mode_t mode,
			struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct handle *h;
	struct stat st;
	int64_t now_ns = clock_now_ns(CLOCK_REALTIME);
	uint64_t ino;
	int err;

	h = fs_handle_new(fs, H_WRITE, r);
	if (!h)
		return -ENOMEM;
	h->pid = fuse_req_ctx(req)->pid;
	h->dirty = fs_area(r->kind)->live; /* `touch newkey` commits an empty value */
	err = fs_iget_tuple(fs, r->kind, r->txn_id, TXN_FILE, r->path, r->len, &ino);
	if (err) {
		fs_handle_free(h);
		return err;
	}
	/* A new live key exists from now on, though its first commit comes later. */
	if (h->dirty && (err = fs_pending_new(fs, r->path, r->len, now_ns, mode, &h->pending))) {
		fs_iforget(fs, ino, 1);
		fs_handle_free(h);
		return err;
	}
	h->ir.ino = ino;
	fs_iwriter(fs, ino, 1, 0);
	fi->direct_io = 1;
	fi->noflush = fs_area(r->kind)->stage_at_write; /* the create staged its empty value */
	fi->fh = h->id;
	fs_fill_attr(fs, &st, ino, TXN_FILE, 0, now_ns, 0);
	if (fs_area(r->kind)->owner)
		fs_area(r->kind)->owner(fs, r, &st);
	entry_param(fs, &e, ino, &st, r);
	if (fuse_reply_create(req, &e, fi) != 0) {
		fs_iwriter(fs, ino, -1, 0);
		fs_iforget(fs, ino, 1);
		fs_handle_free(h);
	}
	return 0;
}

static void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			 struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	const struct fs_area_ops *a;
	struct iref p, r = { 0 };
	int err = fs_iget(fs, parent, &p);

	if (!err)
		err = check_new_name(&p, name);
	if (!err) {
		a = fs_area(p.kind);
		err = a->create ? a->create(fs, &p, name, &r) : -ENOTDIR;
	}
	if (!err)
		err = reply_create(req, &r, mode, fi);
	if (err)
		fs_reply_err(req, err);
	fs_iref_release(&r);
	fs_iref_release(&p);
}

static void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs *fs = fs_of(req);
	const struct fs_area_ops *a;
	struct iref p, r = { 0 };
	int err;

	/* A directory of the live tree is a commit the request waits for. */
	if (fs_defer_if(req, fs_defer_wanted(fs) && fs_ikind(fs, parent) == IK_LIVE,
		     (struct fs_job){ .op = FJ_MKDIR, .ino = parent, .name = (char *)name,
				      .mode = mode }))
		return;
	err = fs_iget(fs, parent, &p);

	if (!err)
		err = check_new_name(&p, name);
	if (!err) {
		a = fs_area(p.kind);
		err = a->mkdir ? a->mkdir(fs, req, &p, name, &r) : -ENOTDIR;
	}
	if (err)
		fs_reply_err(req, err);
	else
		fs_reply_tuple(req, &r);
	fs_iref_release(&r);
	fs_iref_release(&p);
}

static void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	const struct fs_area_ops *a;
	struct iref p;
	int err = fs_iget(fs, parent, &p);

	if (!err) {
		a = fs_area(p.kind);
		err = a->unlink ? a->unlink(fs, req, &p, name) : -EROFS;
	}
	if (err != FS_REPLIED)
		fs_reply_err(req, err);
	fs_iref_release(&p);
}

static void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	const struct fs_area_ops *a;
	struct iref p;
	int err;

	if (fs_defer_if(req, fs_defer_wanted(fs) && fs_ikind(fs, parent) == IK_LIVE,
		     (struct fs_job){ .op = FJ_RMDIR, .ino = parent, .name = (char *)name }))
		return;
	err = fs_iget(fs, parent, &p);

	if (!err) {
		a = fs_area(p.kind);
		if (a->read_only)
			err = -EROFS;
		else
			err = a->rmdir ? a->rmdir(fs, req, &p, name) : -ENOTDIR;
	}
	if (err != FS_REPLIED)
		fs_reply_err(req, err);
	fs_iref_release(&p);
}

static bool is_past_name(const struct iref *p, const char *name)
{
	return p->kind == IK_ROOT && (!strcmp(name, ".at") || !strcmp(name, ".history"));
}

static void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	struct iref p = { 0 }, np = { 0 };
	const struct fs_area_ops *a;
	int err;

	err = fs_iget(fs, parent, &p);
	if (!err)
		err = fs_iget(fs, newparent, &np);
	if (!err && strlen(newname) > TXN_NAME_MAX)
		err = -ENAMETOOLONG;
	if (!err && (fs_area(p.kind)->read_only || fs_area(np.kind)->read_only))
		err = -EROFS;
	if (!err && (is_past_name(&p, name) || is_past_name(&np, newname)))
		err = -EROFS;
	if (!err) {
		a = fs_area(p.kind);
		err = a->rename ? a->rename(fs, req, &p, name, &np, newname, flags) : -EXDEV;
	}
	if (err != FS_REPLIED)
		fs_reply_err(req, err);
	fs_iref_release(&p);
	fs_iref_release(&np);
}

/*
 * symlink, mknod (mkfifo) and link: the tree holds keys and directories only, so these
 * fail with EPERM, as on file systems without such files, after the checks a local
 * file system makes first: EEXIST for a name that exists (the kernel answers it for
 * names it has cached), then EROFS in a read-only area or a committed transaction.
 */
static int refuse_new_name(struct fs *fs, fuse_ino_t parent, const char *name)
{
	const struct fs_area_ops *a;
	struct iref p, t = { 0 };
	int err = fs_iget(fs, parent, &p);

	if (!err) {
		a = fs_area(p.kind);
		if (a->lookup && a->lookup(fs, &p, name, &t) == 0)
			err = -EEXIST;
		else if (a->read_only)
			err = -EROFS;
		else if (a->writable)
			err = a->writable(fs, &p);
	}
	if (!err)
		err = check_new_name(&p, name);
	fs_iref_release(&t);
	fs_iref_release(&p);
	return err ? err : -EPERM;
}

static void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fs_reply_err(req, refuse_new_name(fs_of(req), parent, name));
}

static void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			dev_t rdev)
{
	fs_reply_err(req, refuse_new_name(fs_of(req), parent, name));
}

static void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs *fs = fs_of(req);
	struct iref r;
	int err = fs_iget(fs, ino, &r);

	fs_iref_release(&r);
	fs_reply_err(req, err ? err : refuse_new_name(fs, newparent, newname));
}

/* ---- setattr ------------------------------------------------------------------------- */

/* truncate by path: the value cut or zero-extended, stored by the area. */
static int truncate_value(fuse_req_t req, const struct iref *r, size_t size)
{
	struct fs *fs = fs_of(req);
	const struct fs_area_ops *a = fs_area(r->kind);
	struct blob *cur = NULL, *nv;
	char *buf;
	int err;

	if (!a->put)
		return 0; /* `echo N > .timeout_ms` truncates first: nothing to do */
	err = fs_current_value(fs, r, &cur);
	if (err)
		return err;
	buf = calloc(1, size + 1);
	if (!buf) {
		blob_unref(cur);
		return -ENOMEM;
	}
	memcpy(buf, cur->data, cur->len < size ? cur->len : size);
	nv = blob_new(buf, size);
	free(buf);
	blob_unref(cur);
	if (!nv)
		return -ENOMEM;
	return a->put(fs, req, r, nv, false);
}

static int set_size(fuse_req_t req, const struct iref *r, struct handle *h, off_t st_size)
{
	struct fs *fs = fs_of(req);
	size_t size = (size_t)st_size;
	int err;

	if (st_size < 0)
		return -EINVAL;
	if (size > txn_engine_options(fs->eng)->max_value_bytes)
		return -EFBIG;
	err = fs_writable(fs, r);
	if (err)
		return err;
	if (!h || h->kind != H_WRITE)
		return truncate_value(req, r, size);
	pthread_mutex_lock(&h->lock);
	err = fs_handle_resize(h, size);
	if (!err && fs_area(h->ir.kind)->stage_at_write) {
		err = fs_area(h->ir.kind)->written(fs, h);
		if (err)
			handle_refuse(fs, h, err);
	}
	pthread_mutex_unlock(&h->lock);
	if (!err)
		fs_iwriter(fs, r->ino, 0, size);
	return err;
}

static void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			  struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h;
	struct iref r;
	struct stat st;
	int err = fs_handle_of(fs, fi, &h);

	if (err) {
		fs_reply_err(req, err);
		return;
	}
	err = fs_iget(fs, ino, &r);

	if (!err && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		err = fs_set_owner_mode(fs, req, &r, attr, to_set);
	if (!err && (to_set & FUSE_SET_ATTR_SIZE))
		err = set_size(req, &r, h, attr->st_size);
	/* Times are accepted and change nothing: mtime is the time of the commit. */
	if (!err)
		err = fs_stat_iref(fs, &r, &st);
	if (!err) {
		fuse_reply_attr(req, &st,
				fs_writer_size(req, ino, h, &st) ? 0 : attr_timeout(fs, &r, &st));
	} else if (err != FS_REPLIED) {
		fs_reply_err(req, err); /* FS_REPLIED: committing; the reply comes with it */
	}
	fs_iref_release(&r);
}

static void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* O_TRUNC arrives with open.  Without it the kernel sends the truncation as a
	 * setattr without a file handle, which cannot be told from `truncate -s 0 key`
	 * and would commit an empty value. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Keys carry no setuid bits or capabilities: without this the kernel asks for
	 * security.capability before every write. */
	if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV)
		conn->want |= FUSE_CAP_HANDLE_KILLPRIV;
	/* Small values, many files: write-back caching was measured slower here. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ & ~(unsigned)FUSE_CAP_SPLICE_WRITE &
		      ~(unsigned)FUSE_CAP_SPLICE_MOVE;
}

/* loop.c: a deferred request, on a pool thread (where nothing is deferred again). */
void fs_job_run(struct fs_job *j)
{
	switch (j->op) {
	case FJ_LOOKUP:
		fs_op_lookup(j->req, j->ino, j->name);
		break;
	case FJ_GETATTR:
		fs_op_getattr(j->req, j->ino, j->fi);
		break;
	case FJ_OPEN:
		fs_op_open(j->req, j->ino, j->fi);
		break;
	case FJ_READ:
		fs_op_read(j->req, j->ino, j->size, j->off, j->fi);
		break;
	case FJ_POLL:
		fs_op_poll(j->req, j->ino, j->fi, j->ph);
		break;
	case FJ_OPENDIR:
		fs_op_opendir(j->req, j->ino, j->fi);
		break;
	case FJ_MKDIR:
		fs_op_mkdir(j->req, j->ino, j->name, j->mode);
		break;
	case FJ_RMDIR:
		fs_op_rmdir(j->req, j->ino, j->name);
		break;
	case FJ_GETXATTR:
		fs_op_getxattr(j->req, j->ino, j->name, j->size);
		break;
	case FJ_LISTXATTR:
		fs_op_listxattr(j->req, j->ino, j->size);
		break;
	}
}

const struct fuse_lowlevel_ops fs_op_table = {
	.init = fs_op_init,
	.lookup = fs_op_lookup,
	.forget = fs_op_forget,
	.forget_multi = fs_op_forget_multi,
	.getattr = fs_op_getattr,
	.setattr = fs_op_setattr,
	.mkdir = fs_op_mkdir,
	.unlink = fs_op_unlink,
	.rmdir = fs_op_rmdir,
	.rename = fs_op_rename,
	.open = fs_op_open,
	.read = fs_op_read,
	.write = fs_op_write,
	.flush = fs_op_flush,
	.release = fs_op_release,
	.fsync = fs_op_fsync,
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.releasedir = fs_op_releasedir,
	.statfs = fs_op_statfs,
	.setxattr = fs_op_setxattr,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
	.removexattr = fs_op_removexattr,
	.create = fs_op_create,
	.poll = fs_op_poll,
	.fallocate = fs_op_fallocate,
	.symlink = fs_op_symlink,
	.mknod = fs_op_mknod,
	.link = fs_op_link,
};
