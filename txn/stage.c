/* SPDX-License-Identifier: MIT */
/*
 * stage.c - staging inside an open transaction (txn layer): put, delete, rename, mkdir,
 * rmdir and the timeout, checked against the transaction's view.  Nothing here touches
 * the tree: staged ops reach it only through commit.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "grow.h"
#include "log.h"
#include "txn_i.h"

static int staged_set(struct txn *tx, const char *path, size_t len, enum staged_kind kind,
		      struct blob *value)
{
	struct staged *s = txn_staged_find(tx, path, len);

	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s || !(s->path = strndup(path, len))) {
			free(s);
			blob_unref(value);
			return -ENOMEM;
		}
		s->len = len;
		HASH_ADD_KEYPTR(hh, tx->staged, s->path, s->len, s);
	} else {
		if (s->kind != ST_DIR)
			tx->n_ops--;
		if (s->kind == ST_DELETE)
			tx->n_deletes--;
		blob_unref(s->value);
	}
	s->kind = kind;
	s->value = value;
	if (kind != ST_DIR)
		tx->n_ops++;
	if (kind == ST_DELETE)
		tx->n_deletes++;
	return 0;
}

static void staged_drop(struct txn *tx, struct staged *s)
{
	if (s->kind != ST_DIR)
		tx->n_ops--;
	if (s->kind == ST_DELETE)
		tx->n_deletes--;
	HASH_DEL(tx->staged, s);
	blob_unref(s->value);
	free(s->path);
	free(s);
}

/* Every ancestor of path must be a directory (or nothing) in the view. */
static int view_check_ancestors(struct txn_engine *eng, struct txn *tx, const char *path,
				size_t len)
{
	struct txn_entry e;

	for (size_t i = 0; i < len; i++) {
		if (path[i] != '/')
			continue;
		if (txn_view_resolve(eng, tx, path, i, &e, NULL) == 0 && e.type == TXN_FILE)
			return -ENOTDIR;
	}
	return 0;
}

/* Put without taking locks; tree (read) and tx->lock held. */
static int stage_put_locked(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
			    struct blob *value)
{
	struct txn_entry e;
	int err = view_check_ancestors(eng, tx, path, len);

	if (!err && txn_view_resolve(eng, tx, path, len, &e, NULL) == 0 && e.type == TXN_DIR)
		err = -EISDIR;
	if (err) {
		blob_unref(value);
		return err;
	}
	/* Over a snapshot key or over nothing, a put either way: the version is assigned
	 * at commit. */
	return staged_set(tx, path, len, ST_PUT, value);
}

static int stage_delete_locked(struct txn_engine *eng, struct txn *tx, const char *path, size_t len)
{
	struct txn_entry e;
	struct staged *s;
	int err = txn_view_resolve(eng, tx, path, len, &e, NULL);

	if (err)
		return err;
	if (e.type != TXN_FILE)
		return -EISDIR;
	s = txn_staged_find(tx, path, len);
	if (s && !txn_node_live_at(txn_node_find(eng, path, len), tx->begin_ts)) {
		staged_drop(tx, s); /* the key exists only in this transaction */
		return 0;
	}
	return staged_set(tx, path, len, ST_DELETE, NULL);
}

#define STAGE_BEGIN(eng, tx)                                                      \
	do {                                                                      \
		pthread_rwlock_rdlock(&(eng)->tree_lock);                         \
		pthread_mutex_lock(&(tx)->lock);                                  \
	} while (0)
#define STAGE_END(eng, tx)                                                        \
	do {                                                                      \
		pthread_mutex_unlock(&(tx)->lock);                                \
		pthread_rwlock_unlock(&(eng)->tree_lock);                         \
	} while (0)

int txn_stage_put(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		  struct blob *value)
{
	int err = txn_path_check(path, len);

	if (!err && txn_path_depth(path, len) < 3)
		err = -EINVAL;
	if (!err && value->len > eng->opt.max_value_bytes)
		err = -EFBIG;
	if (err) {
		blob_unref(value);
		return err;
	}
	STAGE_BEGIN(eng, tx);
	err = txn_stage_state_err(tx);
	if (err)
		blob_unref(value);
	else
		err = stage_put_locked(eng, tx, path, len, value);
	STAGE_END(eng, tx);
	return err;
}

int txn_stage_delete(struct txn_engine *eng, struct txn *tx, const char *path, size_t len)
{
	int err = txn_path_check(path, len);

	if (err)
		return err;
	STAGE_BEGIN(eng, tx);
	err = txn_stage_state_err(tx);
	if (!err)
		err = stage_delete_locked(eng, tx, path, len);
	STAGE_END(eng, tx);
	return err;
}

/* Collect the paths of every file below dir in tx's view (tree read lock + tx->lock). */
static int view_files_below(struct txn_engine *eng, struct txn *tx, const char *dir, size_t dlen,
			    struct dirents *out)
{
	struct txn_entry e;
	struct dirents ds = { 0 };
	struct node *dn = txn_node_find(eng, dir, dlen);
	int err = 0;

	/* Candidates: snapshot nodes below dir and staged puts below dir. */
	if (dn) {
		struct node **stack = NULL;
		size_t sp = 0, scap = 0;
		struct node *c, *tmp;

		HASH_ITER(hh, dn->children, c, tmp) {
			if (sp == scap) {
				scap = scap ? scap * 2 : 64;
				struct node **ns = realloc(stack, scap * sizeof(*ns));

				if (!ns) {
					free(stack);
					return -ENOMEM;
				}
				stack = ns;
			}
			stack[sp++] = c;
		}
		while (sp && !err) {
			struct node *x = stack[--sp];
			size_t plen;
			char *p = txn_node_path(x, &plen);

			if (!p) {
				err = -ENOMEM;
				break;
			}
			if (txn_view_resolve(eng, tx, p, plen, &e, NULL) == 0 && e.type == TXN_FILE)
				err = txn_dirents_add(&ds, p, plen, TXN_FILE);
			free(p);
			HASH_ITER(hh, x->children, c, tmp) {
				if (sp == scap) {
					scap *= 2;
					struct node **ns = realloc(stack, scap * sizeof(*ns));

					if (!ns) {
						err = -ENOMEM;
						break;
					}
					stack = ns;
				}
				stack[sp++] = c;
			}
		}
		free(stack);
	}
	{
		struct staged *s, *tmp;

		HASH_ITER(hh, tx->staged, s, tmp) {
			if (!err && s->kind == ST_PUT && txn_path_is_under(s->path, s->len, dir, dlen))
				err = txn_dirents_add(&ds, s->path, s->len, TXN_FILE);
		}
	}
	if (err) {
		txn_dirents_free(ds.d, ds.n);
		return err;
	}
	txn_dirents_finish(&ds);
	*out = ds;
	return 0;
}

int txn_stage_rename(struct txn_engine *eng, struct txn *tx, const char *src, size_t slen,
		     const char *dst, size_t dlen, bool noreplace)
{
	struct txn_entry se, de;
	struct blob *val = NULL;
	int err = txn_path_check(src, slen);
	int derr;

	if (!err)
		err = txn_path_check(dst, dlen);
	if (err)
		return err;
	STAGE_BEGIN(eng, tx);
	err = txn_stage_state_err(tx);
	if (err)
		goto out;
	err = txn_view_resolve(eng, tx, src, slen, &se, &val);
	if (err)
		goto out;
	derr = txn_view_resolve(eng, tx, dst, dlen, &de, NULL);
	if (slen == dlen && memcmp(src, dst, slen) == 0)
		goto out; /* rename onto itself */
	if (derr == 0 && noreplace) {
		err = -EEXIST;
		goto out;
	}
	if (se.type == TXN_FILE) {
		if (txn_path_depth(dst, dlen) < 3) {
			err = -EINVAL;
			goto out;
		}
		if (derr == 0 && de.type == TXN_DIR) {
			err = -EISDIR;
			goto out;
		}
		err = view_check_ancestors(eng, tx, dst, dlen);
		if (!err)
			err = stage_delete_locked(eng, tx, src, slen);
		if (!err) {
			err = stage_put_locked(eng, tx, dst, dlen, val);
			val = NULL;
		}
		goto out;
	}
	/* A directory: move every file below it. */
	if (txn_path_is_under(dst, dlen, src, slen)) {
		err = -EINVAL;
		goto out;
	}
	if (derr == 0 && de.type == TXN_FILE) {
		err = -ENOTDIR;
		goto out;
	}
	{
		struct dirents files, dfiles;

		if (derr == 0) {
			err = view_files_below(eng, tx, dst, dlen, &dfiles);
			if (err)
				goto out;
			txn_dirents_free(dfiles.d, dfiles.n);
			if (dfiles.n) {
				err = -ENOTEMPTY;
				goto out;
			}
		}
		err = view_files_below(eng, tx, src, slen, &files);
		if (err)
			goto out;
		for (size_t i = 0; i < files.n && !err; i++) {
			const char *fp = files.d[i].name;
			size_t fl = strlen(fp), nl;
			char *np = txn_path_join(dst, dlen, fp + slen + 1, fl - slen - 1, &nl);
			struct blob *fv = NULL;
			struct txn_entry fe;

			if (!np) {
				err = -ENOMEM;
				break;
			}
			if (txn_path_depth(np, nl) < 3 || nl - (dlen) > TXN_KEY_MAX + 2 * TXN_NAME_MAX)
				err = -EINVAL;
			if (!err)
				err = txn_view_resolve(eng, tx, fp, fl, &fe, &fv);
			if (!err)
				err = stage_delete_locked(eng, tx, fp, fl);
			if (!err)
				err = stage_put_locked(eng, tx, np, nl, fv);
			else
				blob_unref(fv);
			free(np);
		}
		txn_dirents_free(files.d, files.n);
		/* Staged directory markers move along. */
		if (!err) {
			struct staged *s, *tmp;

			HASH_ITER(hh, tx->staged, s, tmp) {
				if (s->kind == ST_DIR && (txn_path_is_under(s->path, s->len, src, slen) ||
							  (s->len == slen && !memcmp(s->path, src, slen)))) {
					size_t nl;
					char *np = txn_path_join(dst, dlen, s->path + slen + (s->len > slen),
							     s->len - slen - (s->len > slen), &nl);

					if (np) {
						staged_set(tx, np, nl, ST_DIR, NULL);
						free(np);
					}
					staged_drop(tx, s);
				}
			}
		}
	}
out:
	STAGE_END(eng, tx);
	blob_unref(val);
	return err;
}

int txn_stage_mkdir(struct txn_engine *eng, struct txn *tx, const char *path, size_t len)
{
	struct txn_entry e;
	int err = txn_path_check(path, len);

	if (err)
		return err;
	STAGE_BEGIN(eng, tx);
	err = txn_stage_state_err(tx);
	if (!err && txn_view_resolve(eng, tx, path, len, &e, NULL) == 0)
		err = -EEXIST;
	if (!err)
		err = view_check_ancestors(eng, tx, path, len);
	if (!err)
		err = staged_set(tx, path, len, ST_DIR, NULL);
	STAGE_END(eng, tx);
	return err;
}

int txn_stage_rmdir(struct txn_engine *eng, struct txn *tx, const char *path, size_t len)
{
	struct txn_entry e;
	struct dirents files;
	int err = txn_path_check(path, len);

	if (err)
		return err;
	STAGE_BEGIN(eng, tx);
	err = txn_stage_state_err(tx);
	if (!err) {
		err = txn_view_resolve(eng, tx, path, len, &e, NULL);
		if (err == -ENOENT) {
			/* It vanished with its last key (rm -r removes keys first). */
			STAGE_END(eng, tx);
			return 0;
		}
	}
	if (!err && e.type != TXN_DIR)
		err = -ENOTDIR;
	if (!err)
		err = view_files_below(eng, tx, path, len, &files);
	if (!err) {
		size_t nfiles = files.n;

		txn_dirents_free(files.d, files.n);
		if (nfiles) {
			err = -ENOTEMPTY;
		} else {
			struct staged *s, *tmp;

			HASH_ITER(hh, tx->staged, s, tmp) {
				if (s->kind == ST_DIR && txn_path_is_under(s->path, s->len, path, len)) {
					err = -ENOTEMPTY;
					break;
				}
			}
			if (!err) {
				s = txn_staged_find(tx, path, len);
				if (s && s->kind == ST_DIR)
					staged_drop(tx, s);
			}
		}
	}
	STAGE_END(eng, tx);
	return err;
}

int txn_writable(struct txn *tx)
{
	int err;

	pthread_mutex_lock(&tx->lock);
	err = txn_stage_state_err(tx);
	pthread_mutex_unlock(&tx->lock);
	return err;
}

int txn_set_timeout(struct txn_engine *eng, struct txn *tx, int64_t timeout_ms)
{
	int err;

	if (timeout_ms < 1 || timeout_ms > 86400000)
		return -EINVAL;
	pthread_mutex_lock(&tx->lock);
	err = txn_stage_state_err(tx);
	if (!err && tx->n_ops > 0)
		err = -EBUSY;
	if (!err)
		tx->timeout_ms = timeout_ms;
	pthread_mutex_unlock(&tx->lock);
	if (!err) {
		pthread_mutex_lock(&eng->q_lock);
		pthread_cond_signal(&eng->reaper_cond);
		pthread_mutex_unlock(&eng->q_lock);
	}
	return err;
}
