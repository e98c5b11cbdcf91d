/* SPDX-License-Identifier: MIT */
/*
 * handle.c - open file and directory handles: their buffers, directory listings, and
 * the commit of a write handle at flush or release (fs layer).
 *
 * Design note 2.  Handles own their state: a write handle buffers the whole value and
 * commits it at flush (live tree) or stages it (transaction); control files are read
 * from a copy made at open.  Reads of live keys need no handle: they serve the current
 * value and the kernel keeps the pages (keep_cache) until a commit invalidates them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "grow.h"

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
	pthread_mutex_init(&h->lock, NULL);
	h->fs = fs;
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
	pthread_mutex_lock(&h->fs->handles_lock);
	if (h->all_prev)
		h->all_prev->all_next = h->all_next;
	else
		h->fs->handles = h->all_next;
	if (h->all_next)
		h->all_next->all_prev = h->all_prev;
	pthread_mutex_unlock(&h->fs->handles_lock);
	fs_iref_release(&h->ir);
	free(h->buf);
	blob_unref(h->content);
	dirents_release(&h->ents);
	fs_events_drop(h);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* At fs_free(): the handles whose releases never came. */
void fs_handles_free_all(struct fs *fs)
{
	while (fs->handles)
		fs_handle_free(fs->handles);
}

/* Room for n bytes in a write handle's buffer.  h->lock held (or h not shared yet). */
int fs_handle_reserve(struct handle *h, size_t n)
{
	return ARRAY_GROW(h->buf, n, h->cap);
}

/* The buffer cut or zero-extended to size (ftruncate).  h->lock held. */
int fs_handle_resize(struct handle *h, size_t size)
{
	int err = fs_handle_reserve(h, size + 1);

	if (err)
		return err;
	if (size > h->size)
		memset(h->buf + h->size, 0, size - h->size);
	h->size = size;
	h->dirty = true;
	h->written = true;
	return 0;
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
		fs_reply_err(req, -EFBIG);
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
	err = a->put(fs, req, &h->ir, val, true);
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
