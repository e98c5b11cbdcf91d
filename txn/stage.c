/* SPDX-License-Identifier: MIT */
/*
 * stage.c - staging inside an open transaction (txn layer): put, delete, rename, mkdir,
 * rmdir and the timeout, checked against the transaction's view.  Nothing here touches
 * the tree: staged ops reach it only through commit.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "grow.h"
#include "log.h"
#include "txn_i.h"

/* Staged puts and deletes are the ops a transaction counts; directories are not. */
static bool is_key_op(enum staged_kind k)
{
	return k == ST_PUT || k == ST_DELETE;
}

/* What staging value at a path of len bytes charges (max_txn_bytes). */
static size_t staged_charge(size_t len, const struct blob *value)
{
	return len + (value ? value->len : 0);
}

/* Stage kind at path (value consumed); force: charge past the byte limits (a restore). */
static int staged_set_x(struct txn *tx, const char *path, size_t len, enum staged_kind kind,
			struct blob *value, bool force)
{
	struct staged *s = txn_staged_find(tx, path, len);
	size_t charge = staged_charge(len, value);
	int err = txn_charge_locked(tx, (long long)charge - (long long)(s ? s->charge : 0),
				    force);

	if (err) {
		blob_unref(value);
		return err;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s || !(s->path = strndup(path, len))) {
			free(s);
			blob_unref(value);
			txn_charge_locked(tx, -(long long)charge, true);
			return -ENOMEM;
		}
		s->len = len;
		HASH_ADD_KEYPTR(hh, tx->staged, s->path, s->len, s);
		if (!HASH_ADDED(hh, s)) {
			free(s->path);
			free(s);
			blob_unref(value);
			txn_charge_locked(tx, -(long long)charge, true);
			return -ENOMEM;
		}
	} else {
		if (is_key_op(s->kind))
			tx->n_ops--;
		if (s->kind == ST_DELETE)
			tx->n_deletes--;
		blob_unref(s->value);
	}
	s->charge = charge;
	s->kind = kind;
	tx->touched = true; /* the isolation is fixed from the first op on */
	s->value = value;
	s->time_ns = clock_now_ns(CLOCK_REALTIME);
	if (is_key_op(kind))
		tx->n_ops++;
	if (kind == ST_DELETE)
		tx->n_deletes++;
	txn_jtouch_locked(tx, JI_STAGED, path, len);
	return 0;
}

static int staged_set(struct txn *tx, const char *path, size_t len, enum staged_kind kind,
		      struct blob *value)
{
	return staged_set_x(tx, path, len, kind, value, false);
}

static void staged_drop(struct txn *tx, struct staged *s)
{
	txn_jtouch_locked(tx, JI_STAGED, s->path, s->len);
	if (is_key_op(s->kind))
		tx->n_ops--;
	if (s->kind == ST_DELETE)
		tx->n_deletes--;
	HASH_DEL(tx->staged, s);
	txn_charge_locked(tx, -(long long)s->charge, true);
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
/* The change's record goes to the journal before the lock is let go. */
#define STAGE_END(eng, tx)                                                        \
	do {                                                                      \
		txn_jflush_locked(tx);                                            \
		pthread_mutex_unlock(&(tx)->lock);                                \
		pthread_rwlock_unlock(&(eng)->tree_lock);                         \
	} while (0)

/* May value be staged at path?  A key's path (three components at least), no bigger than
 * max_value_bytes. */
static int check_put(struct txn_engine *eng, const char *path, size_t len,
		     const struct blob *value)
{
	int err = txn_path_check(path, len);

	if (!err && txn_path_depth(path, len) < 3)
		err = -EINVAL;
	if (!err && value->len > eng->opt.max_value_bytes)
		err = -EFBIG;
	return err;
}

int txn_stage_put(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		  struct blob *value)
{
	int err = check_put(eng, path, len, value);

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

/* ---- a writer's staging, undone when one of its writes fails ---------------------------- */

/* What a path held in a transaction before a writer's first staging there, and the value
 * that writer staged last (referenced: compared by identity, never freed under it). */
struct txn_undo {
	char *path;
	size_t len;
	bool had;              /* was anything staged at path?  (else: the snapshot's) */
	enum staged_kind kind; /* what, when had */
	struct blob *value;
	int64_t time_ns;
	struct blob *last;
};

void txn_undo_free(struct txn_undo *u)
{
	if (!u)
		return;
	blob_unref(u->value);
	blob_unref(u->last);
	free(u->path);
	free(u);
}

/* A record of what path holds now in tx; tx->lock held. */
static struct txn_undo *undo_new_locked(struct txn *tx, const char *path, size_t len)
{
	struct txn_undo *u = calloc(1, sizeof(*u));
	struct staged *s = txn_staged_find(tx, path, len);

	if (!u || !(u->path = strndup(path, len))) {
		free(u);
		return NULL;
	}
	u->len = len;
	if (s) {
		u->had = true;
		u->kind = s->kind;
		u->value = s->value ? blob_ref(s->value) : NULL;
		u->time_ns = s->time_ns;
	}
	return u;
}

int txn_stage_put_undo(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		       struct blob *value, struct txn_undo **undo)
{
	struct blob *mine = blob_ref(value);
	int err = check_put(eng, path, len, value);

	if (err) {
		blob_unref(value);
		blob_unref(mine);
		return err;
	}
	STAGE_BEGIN(eng, tx);
	err = txn_stage_state_err(tx);
	if (!err && !*undo && !(*undo = undo_new_locked(tx, path, len)))
		err = -ENOMEM;
	if (err)
		blob_unref(value);
	else
		err = stage_put_locked(eng, tx, path, len, value);
	if (!err) {
		blob_unref((*undo)->last);
		(*undo)->last = mine;
		mine = NULL;
	}
	STAGE_END(eng, tx);
	blob_unref(mine);
	return err;
}

int txn_stage_patch(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		    size_t off, const void *data, size_t n, size_t new_len, struct txn_undo *undo)
{
	struct staged *s;
	struct blob *b, *nb;
	size_t charge, room, max = eng->opt.max_value_bytes;
	int err;

	if (off + n > new_len)
		BUG("patch of %zu bytes at %zu past the value's %zu", n, off, new_len);
	if (new_len > max)
		return -EFBIG;
	STAGE_BEGIN(eng, tx);
	err = txn_stage_state_err(tx);
	s = err ? NULL : txn_staged_find(tx, path, len);
	if (!err && (!undo || !undo->last || !s || s->kind != ST_PUT || s->value != undo->last))
		err = -EAGAIN; /* not this writer's value any more */
	charge = len + new_len;
	if (!err)
		err = txn_charge_locked(tx, (long long)charge - (long long)s->charge, false);
	if (err)
		goto out;
	b = s->value;
	/* Readers take their reference under tx->lock, which this holds: two references
	 * (the staged op's and the writer's record) mean that nobody else reads it now. */
	if (atomic_load_explicit(&b->refs, memory_order_acquire) == 2 && new_len <= b->room) {
		blob_patch(b, off, data, n, new_len);
	} else {
		/* Shared, or out of room: a copy, with room to grow into (twice the value). */
		room = b->len * 2 > new_len ? b->len * 2 : new_len;
		nb = blob_new_room(b->data, b->len < new_len ? b->len : new_len,
				   room < max ? room : max);
		if (!nb) {
			txn_charge_locked(tx, (long long)s->charge - (long long)charge, true);
			err = -ENOMEM;
			goto out;
		}
		blob_patch(nb, off, data, n, new_len);
		blob_unref(s->value);
		s->value = nb;
		blob_unref(undo->last);
		undo->last = blob_ref(nb);
	}
	s->charge = charge;
	s->time_ns = clock_now_ns(CLOCK_REALTIME);
	txn_jtouch_locked(tx, JI_STAGED, path, len); /* the whole value, as it is now */
out:
	STAGE_END(eng, tx);
	return err;
}

/* Put back in s what u recorded (its charge forced: those bytes were staged before). */
static void staged_restore(struct txn *tx, struct staged *s, const struct txn_undo *u)
{
	size_t charge = staged_charge(s->len, u->value);

	txn_charge_locked(tx, (long long)charge - (long long)s->charge, true);
	if (is_key_op(s->kind))
		tx->n_ops--;
	if (s->kind == ST_DELETE)
		tx->n_deletes--;
	blob_unref(s->value);
	s->kind = u->kind;
	s->value = u->value ? blob_ref(u->value) : NULL;
	s->time_ns = u->time_ns;
	s->charge = charge;
	if (is_key_op(s->kind))
		tx->n_ops++;
	if (s->kind == ST_DELETE)
		tx->n_deletes++;
	txn_jtouch_locked(tx, JI_STAGED, s->path, s->len);
}

void txn_stage_undo(struct txn_engine *eng, struct txn *tx, struct txn_undo **undo)
{
	struct txn_undo *u = *undo;
	struct staged *s;

	if (!u)
		return;
	*undo = NULL;
	STAGE_BEGIN(eng, tx);
	s = txn_stage_state_err(tx) == 0 ? txn_staged_find(tx, u->path, u->len) : NULL;
	/* Only while what is staged there is still this writer's last value: a later
	 * writer's value, or a rename or delete since, stays. */
	if (s && s->kind == ST_PUT && s->value == u->last) {
		if (u->had)
			staged_restore(tx, s, u);
		else
			staged_drop(tx, s);
	}
	STAGE_END(eng, tx);
	txn_undo_free(u);
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

/* A stack of nodes still to visit (view_files_below() walks without recursion). */
struct node_stack {
	struct node **n;
	size_t sp, cap;
};

static int push_children(struct node_stack *st, struct node *n)
{
	struct node *c, *tmp;

	HASH_ITER(hh, n->children, c, tmp) {
		if (ARRAY_GROW(st->n, st->sp + 1, st->cap))
			return -ENOMEM;
		st->n[st->sp++] = c;
	}
	return 0;
}

/* Add the snapshot keys at and below the nodes on the stack that are files in tx's view. */
static int view_files_in_tree(struct txn_engine *eng, struct txn *tx, struct node_stack *st,
			      struct dirents *ds)
{
	struct txn_entry e;
	int err = 0;

	while (st->sp && !err) {
		struct node *x = st->n[--st->sp];
		size_t plen;
		char *p = txn_node_path(x, &plen);

		if (!p)
			return -ENOMEM;
		if (txn_view_resolve(eng, tx, p, plen, &e, NULL) == 0 && e.type == TXN_FILE)
			err = dirents_add(ds, p, plen, TXN_FILE);
		free(p);
		if (!err)
			err = push_children(st, x);
	}
	return err;
}

/* Collect the paths of every file below dir in tx's view (tree read lock + tx->lock). */
static int view_files_below(struct txn_engine *eng, struct txn *tx, const char *dir, size_t dlen,
			    struct dirents *out)
{
	struct dirents ds = DIRENTS_INIT;
	struct node *dn = txn_node_find(eng, dir, dlen);
	struct staged *s, *tmp;
	int err = 0;

	/* Candidates: snapshot nodes below dir and staged puts below dir. */
	if (dn) {
		struct node_stack st = { 0 };

		err = push_children(&st, dn);
		if (!err)
			err = view_files_in_tree(eng, tx, &st, &ds);
		free(st.n);
	}
	HASH_ITER(hh, tx->staged, s, tmp) {
		if (!err && s->kind == ST_PUT && txn_path_is_under(s->path, s->len, dir, dlen))
			err = dirents_add(&ds, s->path, s->len, TXN_FILE);
	}
	if (err) {
		dirents_release(&ds);
		return err;
	}
	dirents_sort_unique(&ds);
	*out = ds;
	return 0;
}

/* A file moves: staged delete of src, staged put of its value (consumed) at dst. */
static int stage_rename_file(struct txn_engine *eng, struct txn *tx, const char *src,
			     size_t slen, const char *dst, size_t dlen, const struct txn_entry *de,
			     struct blob *val)
{
	int err = 0;

	if (txn_path_depth(dst, dlen) < 3)
		err = -EINVAL;
	else if (de && de->type == TXN_DIR)
		err = -EISDIR;
	if (!err)
		err = view_check_ancestors(eng, tx, dst, dlen);
	if (!err)
		err = stage_delete_locked(eng, tx, src, slen);
	if (err) {
		blob_unref(val);
		return err;
	}
	return stage_put_locked(eng, tx, dst, dlen, val);
}

/* Would staging need more bytes fit the limits (txn_charge_locked() without charging)?
 * tx->lock held.  For refusing a directory rename whole rather than halfway. */
static int charge_fits(struct txn *tx, size_t need)
{
	struct txn_engine *eng = tx->eng;
	size_t max_user = tx->exempt ? 0 : eng->opt.max_user_txn_bytes;

	if (eng->opt.max_txn_bytes && tx->staged_bytes + need > eng->opt.max_txn_bytes) {
		eng->n_refused[TXN_REFUSED_TXN_BYTES]++;
		return -EDQUOT;
	}
	if (max_user && atomic_load(&tx->user->bytes) + need > max_user) {
		eng->n_refused[TXN_REFUSED_USER_BYTES]++;
		return -EDQUOT;
	}
	return 0;
}

/* Every file below src in the view moves below dst: all of them, or (EDQUOT, ENOMEM
 * aside) none when the byte limits cannot take them all. */
static int stage_move_files(struct txn_engine *eng, struct txn *tx, const char *src,
			    size_t slen, const char *dst, size_t dlen)
{
	struct dirents files = DIRENTS_INIT;
	int err = view_files_below(eng, tx, src, slen, &files);
	size_t need = 0;

	/* At most: a delete at each old path, a put of its value at each new one. */
	for (size_t i = 0; i < files.n && !err; i++) {
		size_t fl = strlen(files.v[i].name);
		struct txn_entry fe;

		if (txn_view_resolve(eng, tx, files.v[i].name, fl, &fe, NULL) == 0)
			need += 2 * fl + dlen + fe.size;
	}
	if (!err && need)
		err = charge_fits(tx, need);

	for (size_t i = 0; i < files.n && !err; i++) {
		const char *fp = files.v[i].name;
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
	dirents_release(&files);
	return err;
}

/* Staged directory markers at and below src move along to dst. */
static void stage_move_dir_markers(struct txn *tx, const char *src, size_t slen,
				   const char *dst, size_t dlen)
{
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

/* Committed explicit directories at and below src in tx's view move to dst: a staged
 * rmdir of each and a staged mkdir at its new place. */
static int stage_move_committed_dirs(struct txn_engine *eng, struct txn *tx, const char *src,
				     size_t slen, const char *dst, size_t dlen)
{
	struct node_stack st = { 0 };
	struct dirents dirs = DIRENTS_INIT;
	struct node *sn = txn_node_find(eng, src, slen);
	int err = 0;

	if (sn && !ARRAY_GROW(st.n, 1, st.cap))
		st.n[st.sp++] = sn;
	while (st.sp && !err) {
		struct node *x = st.n[--st.sp];
		size_t plen;
		char *p = txn_node_path(x, &plen);

		if (!p) {
			err = -ENOMEM;
			break;
		}
		if (txn_dir_kept_in_tx(tx, x, p, plen))
			err = dirents_add(&dirs, p, plen, TXN_DIR);
		free(p);
		if (!err)
			err = push_children(&st, x);
	}
	free(st.n);
	for (size_t i = 0; i < dirs.n && !err; i++) {
		const char *p = dirs.v[i].name;
		size_t pl = strlen(p), nl;
		char *np = txn_path_join(dst, dlen, p + slen + (pl > slen), pl - slen - (pl > slen),
					 &nl);

		err = np ? staged_set(tx, p, pl, ST_RMDIR, NULL) : -ENOMEM;
		if (!err)
			err = staged_set(tx, np, nl, ST_DIR, NULL);
		free(np);
	}
	dirents_release(&dirs);
	return err;
}

/* A directory moves: every file below it, and the staged directories. */
static int stage_rename_dir(struct txn_engine *eng, struct txn *tx, const char *src,
			    size_t slen, const char *dst, size_t dlen, const struct txn_entry *de)
{
	struct dirents dfiles;
	int err;

	if (txn_path_is_under(dst, dlen, src, slen))
		return -EINVAL;
	if (de && de->type == TXN_FILE)
		return -ENOTDIR;
	if (de) {
		size_t nfiles;

		err = view_files_below(eng, tx, dst, dlen, &dfiles);
		if (err)
			return err;
		nfiles = dfiles.n;
		dirents_release(&dfiles);
		if (nfiles)
			return -ENOTEMPTY;
	}
	err = stage_move_files(eng, tx, src, slen, dst, dlen);
	if (!err)
		stage_move_dir_markers(tx, src, slen, dst, dlen);
	if (!err)
		err = stage_move_committed_dirs(eng, tx, src, slen, dst, dlen);
	return err;
}

int txn_stage_rename(struct txn_engine *eng, struct txn *tx, const char *src, size_t slen,
		     const char *dst, size_t dlen, bool noreplace)
{
	struct txn_entry se, de;
	struct blob *val = NULL;
	int err = txn_path_check(src, slen);
	bool dst_exists;

	if (!err)
		err = txn_path_check(dst, dlen);
	if (err)
		return err;
	STAGE_BEGIN(eng, tx);
	err = txn_stage_state_err(tx);
	if (!err)
		err = txn_view_resolve(eng, tx, src, slen, &se, &val);
	if (err || (slen == dlen && memcmp(src, dst, slen) == 0))
		goto out; /* an error, or a rename onto itself */
	dst_exists = txn_view_resolve(eng, tx, dst, dlen, &de, NULL) == 0;
	if (dst_exists && noreplace) {
		err = -EEXIST;
	} else if (se.type == TXN_FILE) {
		err = stage_rename_file(eng, tx, src, slen, dst, dlen, dst_exists ? &de : NULL, val);
		val = NULL;
	} else {
		err = stage_rename_dir(eng, tx, src, slen, dst, dlen, dst_exists ? &de : NULL);
	}
out:
	STAGE_END(eng, tx);
	blob_unref(val);
	return err;
}

/* A key's value in the view for an exchange: -EINVAL for a directory. */
static int view_key_value(struct txn_engine *eng, struct txn *tx, const char *path,
			  size_t len, struct blob **out)
{
	struct txn_entry e;
	int err = txn_view_resolve(eng, tx, path, len, &e, out);

	if (!err && e.type != TXN_FILE) {
		blob_unref(*out);
		*out = NULL;
		err = -EINVAL;
	}
	return err;
}

int txn_stage_exchange(struct txn_engine *eng, struct txn *tx, const char *a, size_t alen,
		       const char *b, size_t blen)
{
	struct blob *va = NULL, *vb = NULL;
	int err = txn_path_check(a, alen);

	if (!err)
		err = txn_path_check(b, blen);
	if (err)
		return err;
	STAGE_BEGIN(eng, tx);
	err = txn_stage_state_err(tx);
	if (!err)
		err = view_key_value(eng, tx, a, alen, &va);
	if (!err)
		err = view_key_value(eng, tx, b, blen, &vb);
	if (!err && !(alen == blen && memcmp(a, b, alen) == 0)) {
		/* both are keys of the view: each put only replaces a value */
		err = stage_put_locked(eng, tx, a, alen, vb);
		vb = NULL;
		if (!err)
			err = stage_put_locked(eng, tx, b, blen, va);
		va = NULL;
	}
	STAGE_END(eng, tx);
	blob_unref(va);
	blob_unref(vb);
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
	if (!err && txn_view_has_below(eng, tx, path, len))
		err = -ENOTEMPTY;
	if (!err) {
		struct staged *s = txn_staged_find(tx, path, len);
		struct node *n = txn_node_find(eng, path, len);

		if (s && s->kind == ST_DIR)
			staged_drop(tx, s);
		if (n && n->explicit_dir && txn_path_depth(path, len) > 2)
			err = staged_set(tx, path, len, ST_RMDIR, NULL);
	}
	STAGE_END(eng, tx);
	return err;
}

int txn_stage_room(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		   size_t value_len, bool note)
{
	size_t max_user = tx->exempt ? 0 : eng->opt.max_user_txn_bytes, now = 0, need;
	size_t user_bytes = atomic_load(&tx->user->bytes);
	int err = 0;

	pthread_mutex_lock(&tx->lock);
	if (note) {
		struct note *nt = NULL;

		HASH_FIND(hh, tx->notes, path, len, nt);
		now = nt ? nt->charge : 0;
	} else {
		struct staged *s = txn_staged_find(tx, path, len);

		now = s ? s->charge : 0;
	}
	need = len + value_len;
	if (need > now) {
		if (eng->opt.max_txn_bytes && tx->staged_bytes - now + need > eng->opt.max_txn_bytes) {
			eng->n_refused[TXN_REFUSED_TXN_BYTES]++;
			err = -EDQUOT;
		} else if (max_user && user_bytes - now + need > max_user) {
			eng->n_refused[TXN_REFUSED_USER_BYTES]++;
			err = -EDQUOT;
		}
	}
	pthread_mutex_unlock(&tx->lock);
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
	int64_t max = eng->opt.max_txn_timeout_ms ? eng->opt.max_txn_timeout_ms : 86400000;
	int err;

	if (timeout_ms < 1)
		return -EINVAL;
	if (timeout_ms > max) {
		eng->n_refused[TXN_REFUSED_TIMEOUT]++;
		return -EINVAL;
	}
	pthread_mutex_lock(&tx->lock);
	err = txn_stage_state_err(tx);
	if (!err && tx->n_ops > 0)
		err = -EBUSY;
	if (!err) {
		tx->timeout_ms = timeout_ms;
		txn_jhead_locked(tx);
	}
	pthread_mutex_unlock(&tx->lock);
	if (!err) {
		pthread_mutex_lock(&eng->q_lock);
		pthread_cond_signal(&eng->reaper_cond);
		pthread_mutex_unlock(&eng->q_lock);
	}
	return err;
}

/* ---- a restore (restore.c) ------------------------------------------------------------- */

int txn_staged_load_locked(struct txn *tx, const char *path, size_t len, int kind,
			   struct blob *value, int64_t time_ns)
{
	struct staged *s = txn_staged_find(tx, path, len);
	int err;

	if (!kind) {
		if (s)
			staged_drop(tx, s);
		blob_unref(value);
		return 0;
	}
	/* As the staging recorded it: its charge was admitted then. */
	err = staged_set_x(tx, path, len, (enum staged_kind)kind, value, true);
	s = err ? NULL : txn_staged_find(tx, path, len);
	if (s)
		s->time_ns = time_ns;
	return err;
}
