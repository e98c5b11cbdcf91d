/* SPDX-License-Identifier: MIT */
/*
 * handle.c - open file and directory handles: their buffers, directory listings, and
 * the commit of a write handle at flush or release (fs layer).
 *
 * Design note 2.  Handles own their state: a write handle buffers the whole value and
 * commits it at flush (live tree), or stages it at each write (a transaction's view:
 * tx.c; its opens ask the kernel for no flush); control files are read from a copy made
 * at open.  Reads of live keys need no handle: they serve the current
 * value and the kernel keeps the pages (keep_cache) until a commit invalidates them.
 *
 * A write handle names its file by inode, not path: its value goes to wherever a rename
 * moved the file, and nowhere once the file was unlinked (the inode is no longer
 * hashed), as the data of an unlinked file goes with it on a local file system.
 *
 * A live create commits nothing until its handle's first commit (one key written by
 * `echo x > new` is one commit, one version).  Until then the key is *pending*: a
 * registry by path that the live tree's lookup, stat, reads, listings and xattrs
 * consult when the key is not in the tree, so the file exists for every operation from
 * the moment open(O_CREAT) returns.  Its handle's commit puts the value only if the
 * key is still absent when nothing was written (a later writer's value wins over the
 * empty one).  An unlink of a pending key whose commit is not queued yet cancels it (no
 * commit); a rename first queues the empty value (live.c).
 *
 * A live key unlinked while its inode is open becomes an *orphan* until the kernel
 * forgets the inode: its readers go on reading the value it had, and fstat answers
 * with nlink 0.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "grow.h"
#include "hash.h"

/* A live key unlinked while the kernel still held its inode (an open descriptor). */
struct orphan {
	UT_hash_handle hh; /* fs->orphans by ino, under handles_lock */
	uint64_t ino;
	struct blob *value; /* the value it had: what its readers go on reading */
	struct iref ir;
};

static void orphan_free(struct orphan *o);

struct pending {
	UT_hash_handle hh;    /* fs->pending by path, while hashed */
	char *path;
	size_t len;
	int64_t time_ns;      /* the creation: the new file's times until it commits */
	uint32_t mode;        /* own (the create asked for execute bits): the key's mode,
			       * committed with its first value */
	bool own;
	unsigned refs;        /* the creating handle's, and the commit's in flight */
	bool hashed;
	bool queued;          /* its handle's commit went to the committer */
	bool released;        /* that commit is a release's, completed by the committer */
};

struct handle *fs_handle_new(struct fs *fs, enum hkind kind, const struct iref *r)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->kind = kind;
	if (fs_iref_copy(&h->ir, r)) {
		free(h);
		return NULL;
	}
	h->fs = fs;
	pthread_mutex_lock(&fs->fh_lock);
	h->id = fs->next_fh++;
	HASH_ADD(hh_id, fs->by_fh, id, sizeof(h->id), h);
	pthread_mutex_unlock(&fs->fh_lock);
	if (!HASH_ADDED(hh_id, h)) {
		fs_iref_release(&h->ir);
		free(h);
		return NULL;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_lock(&fs->handles_lock);
	h->all_next = fs->handles;
	if (fs->handles)
		fs->handles->all_prev = h;
	fs->handles = h;
	pthread_mutex_unlock(&fs->handles_lock);
	return h;
}

void fs_handle_free(struct handle *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->fs->fh_lock);
	if (HASH_ADDED(hh_id, h)) /* not after a failed fs_handle_adopt */
		HASH_DELETE(hh_id, h->fs->by_fh, h);
	pthread_mutex_unlock(&h->fs->fh_lock);
	pthread_mutex_lock(&h->fs->handles_lock);
	if (h->all_prev)
		h->all_prev->all_next = h->all_next;
	else
		h->fs->handles = h->all_next;
	if (h->all_next)
		h->all_next->all_prev = h->all_prev;
	pthread_mutex_unlock(&h->fs->handles_lock);
	fs_pending_unref(h->fs, h->pending);
	txn_undo_free(h->undo);
	fs_iref_release(&h->ir);
	free(h->buf);
	blob_unref(h->content);
	dirents_release(&h->ents);
	fs_events_drop(h);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

struct handle *fs_handle_get(struct fs *fs, uint64_t fh)
{
	struct handle *h = NULL;

	if (fh == 0)
		return NULL; /* no handle: the reads of live keys, the past, a view's files */
	pthread_mutex_lock(&fs->fh_lock);
	HASH_FIND(hh_id, fs->by_fh, &fh, sizeof(fh), h);
	pthread_mutex_unlock(&fs->fh_lock);
	return h;
}

int fs_handle_of(struct fs *fs, const struct fuse_file_info *fi, struct handle **h)
{
	*h = fi ? fs_handle_get(fs, fi->fh) : NULL;
	return fi && fi->fh && !*h ? -EBADF : 0;
}

/* Used by a process that takes over the connection (see fs_i.h). */
void fs_handle_ids_start(struct fs *fs, uint64_t next)
{
	pthread_mutex_lock(&fs->fh_lock);
	if (next > fs->next_fh)
		fs->next_fh = next;
	pthread_mutex_unlock(&fs->fh_lock);
}

/* Used by a process that takes over the connection (see fs_i.h). */
int fs_handle_adopt(struct fs *fs, uint64_t id, struct handle *h)
{
	struct handle *other = NULL;
	int err = 0;

	if (id == 0)
		return -EINVAL;
	pthread_mutex_lock(&fs->fh_lock);
	if (id != h->id)
		HASH_FIND(hh_id, fs->by_fh, &id, sizeof(id), other);
	if (other) {
		err = -EEXIST;
	} else if (id != h->id || !HASH_ADDED(hh_id, h)) {
		if (HASH_ADDED(hh_id, h))
			HASH_DELETE(hh_id, fs->by_fh, h);
		h->id = id;
		HASH_ADD(hh_id, fs->by_fh, id, sizeof(h->id), h);
		if (!HASH_ADDED(hh_id, h))
			err = -ENOMEM; /* h was alone in the table, which went with it */
	}
	if (!err && id >= fs->next_fh)
		fs->next_fh = id + 1;
	pthread_mutex_unlock(&fs->fh_lock);
	return err;
}

/* At fs_free(): the handles whose releases never came. */
void fs_handles_free_all(struct fs *fs)
{
	struct orphan *o, *tmp;

	while (fs->handles)
		fs_handle_free(fs->handles);
	HASH_ITER(hh, fs->orphans, o, tmp) {
		HASH_DELETE(hh, fs->orphans, o);
		orphan_free(o);
	}
}

/* Room for n bytes in a write handle's buffer.  h->lock held (or h not shared yet). */
int fs_handle_reserve(struct handle *h, size_t n)
{
	return ARRAY_GROW(h->buf, n, h->cap);
}

/* Bytes [lo, hi) of h's buffer changed (h->lock held). */
void fs_handle_mark(struct handle *h, size_t lo, size_t hi)
{
	if (!h->chg || lo < h->chg_lo)
		h->chg_lo = lo;
	if (!h->chg || hi > h->chg_hi)
		h->chg_hi = hi;
	h->chg = true;
}

/* The buffer cut or zero-extended to size (ftruncate).  h->lock held. */
int fs_handle_resize(struct handle *h, size_t size)
{
	int err = fs_handle_reserve(h, size + 1);

	if (err)
		return err;
	if (size > h->size)
		memset(h->buf + h->size, 0, size - h->size);
	fs_handle_mark(h, size < h->size ? size : h->size, size);
	h->size = size;
	h->dirty = true;
	h->written = true;
	return 0;
}

/*
 * Does process pid (0: any) hold a write handle on ino?  Its buffer's size in *size and,
 * with r, a copy of what the handle names (the caller releases it).
 */
bool fs_handle_writer(struct fs *fs, uint64_t ino, pid_t pid, size_t *size, struct iref *r)
{
	bool found = false;

	pthread_mutex_lock(&fs->handles_lock);
	for (struct handle *h = fs->handles; h && !found; h = h->all_next) {
		if (h->kind != H_WRITE || h->ir.ino != ino || (pid && h->pid != pid))
			continue;
		pthread_mutex_lock(&h->lock);
		*size = h->size;
		pthread_mutex_unlock(&h->lock);
		found = !r || fs_iref_copy(r, &h->ir) == 0;
	}
	pthread_mutex_unlock(&fs->handles_lock);
	return found;
}

/* ---- orphans: unlinked live keys still open ----------------------------------------- */

/* Keep value (consumed) for ino, which the live key r names no more. */
void fs_orphan_add(struct fs *fs, uint64_t ino, const struct iref *r, struct blob *value)
{
	struct orphan *o = calloc(1, sizeof(*o)), *old = NULL;

	if (!o || fs_iref_copy(&o->ir, r)) {
		free(o);
		blob_unref(value);
		return;
	}
	o->ino = ino;
	o->value = value;
	pthread_mutex_lock(&fs->handles_lock);
	HASH_FIND(hh, fs->orphans, &ino, sizeof(ino), old);
	if (old)
		HASH_DELETE(hh, fs->orphans, old);
	HASH_ADD(hh, fs->orphans, ino, sizeof(o->ino), o);
	if (!HASH_ADDED(hh, o))
		orphan_free(o);
	pthread_mutex_unlock(&fs->handles_lock);
	if (old)
		orphan_free(old);
}

/* The value an unlinked key kept for ino (a reference in *value), and with r a copy of
 * what it named; false when ino is no orphan. */
bool fs_orphan_get(struct fs *fs, uint64_t ino, struct blob **value, struct iref *r)
{
	struct orphan *o = NULL;
	bool found = false;

	pthread_mutex_lock(&fs->handles_lock);
	HASH_FIND(hh, fs->orphans, &ino, sizeof(ino), o);
	if (o && (!r || fs_iref_copy(r, &o->ir) == 0)) {
		*value = blob_ref(o->value);
		found = true;
	}
	pthread_mutex_unlock(&fs->handles_lock);
	return found;
}

static void orphan_free(struct orphan *o)
{
	fs_iref_release(&o->ir);
	blob_unref(o->value);
	free(o);
}

/* The kernel forgot ino. */
void fs_orphan_drop(struct fs *fs, uint64_t ino)
{
	struct orphan *o = NULL;

	pthread_mutex_lock(&fs->handles_lock);
	if (fs->orphans)
		HASH_FIND(hh, fs->orphans, &ino, sizeof(ino), o);
	if (o)
		HASH_DELETE(hh, fs->orphans, o);
	pthread_mutex_unlock(&fs->handles_lock);
	if (o)
		orphan_free(o);
}

/* ---- pending creates of the live tree ------------------------------------------------ */

/* A pending create of path, made by a create (one reference, the handle's).  A new key
 * takes the mode its agent gives keys (the agent's mode governs its keys, whatever the
 * umask), plus the execute bits the create asks for where that mode lets reading: then
 * that mode is the key's own. */
int fs_pending_new(struct fs *fs, const char *path, size_t len, int64_t time_ns, mode_t mode,
		   struct pending **out)
{
	struct stat def = { .st_mode = S_IFREG };
	uint32_t x;
	struct pending *p = calloc(1, sizeof(*p));

	if (!p || !(p->path = malloc(len + 1))) {
		free(p);
		return -ENOMEM;
	}
	memcpy(p->path, path, len);
	p->path[len] = '\0';
	p->len = len;
	p->time_ns = time_ns;
	p->refs = 1;
	fs_owner_of_agent(fs, path, len, 0666, &def);
	x = (uint32_t)(mode & (def.st_mode >> 2) & 0111);
	p->mode = (uint32_t)(def.st_mode & 0777) | x;
	p->own = x != 0;
	pthread_mutex_lock(&fs->pending_lock);
	HASH_ADD_KEYPTR(hh, fs->pending, p->path, p->len, p);
	p->hashed = HASH_ADDED(hh, p);
	pthread_mutex_unlock(&fs->pending_lock);
	if (!p->hashed) {
		free(p->path);
		free(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

/* Another reference to p (NULL ok).  pending_lock held. */
struct pending *fs_pending_ref_locked(struct pending *p)
{
	if (p)
		p->refs++;
	return p;
}

/* p stops answering for its path.  pending_lock held. */
void fs_pending_forget_locked(struct fs *fs, struct pending *p)
{
	if (p && p->hashed) {
		HASH_DELETE(hh, fs->pending, p);
		p->hashed = false;
		pthread_cond_broadcast(&fs->pending_cond);
	}
}

void fs_pending_unref(struct fs *fs, struct pending *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&fs->pending_lock);
	if (--p->refs == 0) {
		fs_pending_forget_locked(fs, p);
		free(p->path);
		free(p);
	}
	pthread_mutex_unlock(&fs->pending_lock);
}

/* The key is real now, or gone: p (or the pending create of path) stops answering. */
void fs_pending_forget(struct fs *fs, struct pending *p, const char *path, size_t len)
{
	pthread_mutex_lock(&fs->pending_lock);
	if (!p && path)
		HASH_FIND(hh, fs->pending, path, len, p);
	fs_pending_forget_locked(fs, p);
	pthread_mutex_unlock(&fs->pending_lock);
}

/* The pending create of path, if any.  pending_lock held. */
bool fs_pending_find_locked(struct fs *fs, const char *path, size_t len, struct pending **out)
{
	struct pending *p = NULL;

	HASH_FIND(hh, fs->pending, path, len, p);
	*out = p;
	return p != NULL;
}

/* Has p's first commit gone to the committer?  pending_lock held. */
bool fs_pending_queued_locked(const struct pending *p)
{
	return p->queued;
}

/* p's first commit is queued; released: by a release, which nobody waits for. */
void fs_pending_set_queued_locked(struct pending *p, bool released)
{
	p->queued = true;
	p->released = released;
}

/*
 * Wait until path is no pending create whose first commit a release queued: that
 * commit lands within a group commit and completes on the committer thread, which
 * never waits for the kernel, and what it gives the key (a version, a commit_ts) is
 * then there to answer with.  A create still open, or whose commit a flush waits
 * for (completed after the kernel's caches are invalidated), is not waited for.
 */
void fs_pending_wait(struct fs *fs, const char *path, size_t len)
{
	struct pending *p;

	pthread_mutex_lock(&fs->pending_lock);
	while (fs_pending_find_locked(fs, path, len, &p) && p->queued && p->released)
		pthread_cond_wait(&fs->pending_cond, &fs->pending_lock);
	pthread_mutex_unlock(&fs->pending_lock);
}

/* The mode a pending create's first commit gives its key (own false: the default). */
struct txn_attr fs_pending_attr_locked(const struct pending *p)
{
	return (struct txn_attr){ .mode = p->mode, .own = p->own };
}

/* Is path a pending create with a mode of its own?  The mode in *mode. */
bool fs_pending_mode(struct fs *fs, const char *path, size_t len, mode_t *mode)
{
	struct pending *p;
	bool found;

	pthread_mutex_lock(&fs->pending_lock);
	found = fs_pending_find_locked(fs, path, len, &p) && p->own;
	if (found)
		*mode = p->mode;
	pthread_mutex_unlock(&fs->pending_lock);
	return found;
}

/* Is path a pending create?  Its creation time in *time_ns. */
bool fs_pending_time(struct fs *fs, const char *path, size_t len, int64_t *time_ns)
{
	struct pending *p;
	bool found;

	pthread_mutex_lock(&fs->pending_lock);
	found = fs_pending_find_locked(fs, path, len, &p);
	if (found)
		*time_ns = p->time_ns;
	pthread_mutex_unlock(&fs->pending_lock);
	return found;
}

static bool listed(const struct handle *h, const char *name)
{
	for (size_t i = 0; i < h->ents.n; i++) {
		if (!strcmp(h->ents.v[i].name, name))
			return true;
	}
	return false;
}

/* The pending creates directly below the live directory dir join h's listing. */
/* Is there a pending create below the live directory dir (at any depth)? */
bool fs_pending_below(struct fs *fs, const char *dir, size_t dlen)
{
	struct pending *p, *tmp;
	bool found = false;

	pthread_mutex_lock(&fs->pending_lock);
	HASH_ITER(hh, fs->pending, p, tmp) {
		if (p->len > dlen + 1 && p->path[dlen] == '/' && memcmp(p->path, dir, dlen) == 0) {
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&fs->pending_lock);
	return found;
}

int fs_pending_list(struct fs *fs, const char *dir, size_t dlen, struct handle *h)
{
	struct pending *p, *tmp;
	int err = 0;

	pthread_mutex_lock(&fs->pending_lock);
	HASH_ITER(hh, fs->pending, p, tmp) {
		const char *name = p->path + dlen + (dlen ? 1 : 0);

		if (p->len <= dlen + 1 || memcmp(p->path, dir, dlen) != 0 ||
		    (dlen && p->path[dlen] != '/') || strchr(name, '/') || listed(h, name))
			continue;
		err = fs_dir_add(h, name, TXN_FILE);
		if (err)
			break;
	}
	pthread_mutex_unlock(&fs->pending_lock);
	return err;
}

/* ---- the commit of a write handle ---------------------------------------------------- */

/*
 * Hand val to the area for what h's inode names now (a rename moved it along), under
 * pending_lock so that an unlink deciding about h's pending create sees it queued or
 * not at all.  An unlinked file's value goes nowhere.
 */
static int put_handle(struct fs *fs, fuse_req_t req, struct handle *h, struct blob *val)
{
	const struct fs_area_ops *a = fs_area(h->ir.kind);
	bool by_inode = h->ir.kind == IK_LIVE || h->ir.kind == IK_TXPATH;
	/* Once put() queued the commit, its completion may answer the flush, and the
	 * kernel's release may free h before put() returns here: nothing of h is read
	 * after it.  The pending create outlives h meanwhile, as h's reference to it is
	 * dropped only under pending_lock, which this holds. */
	struct pending *pending = h->pending;
	struct iref cur = { 0 };
	int err = 0;

	pthread_mutex_lock(&fs->pending_lock);
	if (by_inode) {
		err = fs_iget(fs, h->ir.ino, &cur);
		if (!err && cur.kind != h->ir.kind)
			err = -ENOENT;
	}
	if (err == -ENOENT) {
		blob_unref(val); /* unlinked (or replaced): the data goes with the file */
		err = 0;
	} else if (!err) {
		err = a->put(fs, req, by_inode ? &cur : &h->ir, val, h);
		if (pending && err == FS_REPLIED)
			fs_pending_set_queued_locked(pending, req == NULL);
	} else {
		blob_unref(val);
	}
	pthread_mutex_unlock(&fs->pending_lock);
	fs_iref_release(&cur);
	return err;
}

/*
 * Commit or stage a write handle's buffer.  Replies to req (maybe later); req NULL is
 * the release of a handle that was created or truncated and never written: its empty
 * value commits then, with nobody waiting.  (A flush cannot commit it: bash opens,
 * dup2()s and closes the first descriptor, which flushes, before it writes.)
 */
void fs_commit_handle(struct fs *fs, fuse_req_t req, struct handle *h)
{
	const struct fs_area_ops *a = fs_area(h->ir.kind);
	struct blob *val;
	int err;

	pthread_mutex_lock(&h->lock);
	if (h->failed) {
		pthread_mutex_unlock(&h->lock);
		fs_reply_err(req, h->failed);
		return;
	}
	if (!h->dirty || (req && !h->written)) {
		pthread_mutex_unlock(&h->lock);
		fs_reply_err(req, 0);
		return;
	}
	val = blob_new(h->buf ? h->buf : "", h->size);
	/* Handed over: a second flush (a dup'ed descriptor) or the release must not commit
	 * it again, and a failed commit must not come back at release either. */
	h->dirty = false;
	pthread_mutex_unlock(&h->lock);
	if (!val) {
		fs_reply_err(req, -ENOMEM);
		return;
	}
	if (!a->put) {
		blob_unref(val);
		fs_reply_err(req, 0);
		return;
	}
	err = put_handle(fs, req, h, val);
	if (err != FS_REPLIED)
		fs_reply_err(req, err);
}

/* ---- directory listings ---------------------------------------------------------------- */

int fs_dir_add(struct handle *h, const char *name, enum txn_type type)
{
	return dirents_add(&h->ents, name, strlen(name), type);
}

/* Add every entry of d and free d. */
int fs_dir_add_all(struct handle *h, struct dirent_entry *d, size_t n)
{
	int err = 0;

	for (size_t i = 0; i < n && !err; i++)
		err = fs_dir_add(h, d[i].name, d[i].type);
	dirents_free(d, n);
	return err;
}
