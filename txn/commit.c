/* SPDX-License-Identifier: MIT */
/*
 * commit.c - one request inside a batch (txn layer): validation of a transaction (first
 * committer wins) or of an autocommit (put, delete, rename, owner record), its versions
 * appended unpublished at the head, its log event built, and the undo of a request that
 * fails.  Called by run_batch() (committer.c) with the tree write lock held.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "log.h"
#include "txn_i.h"

/* Take back the newest version of a node (a failed request or batch). */
static void undo_one(struct applied *ap)
{
	struct node *n = ap->node;
	struct version *v = n->versions;
	bool was_live, now_live;

	if (v != ap->v)
		BUG("undo out of order");
	now_live = v->value != NULL;
	n->versions = v->older;
	was_live = txn_node_head_live(n);
	if (was_live != now_live)
		txn_node_adjust_desc(n, true, was_live ? 1 : -1);
	blob_unref(v->value);
	free(v);
}

void txn_batch_undo(struct batch *b, size_t mark)
{
	while (b->na > mark)
		undo_one(&b->a[--b->na]);
}

/*
 * Append one unpublished version at the head; value NULL deletes.  Checks the shape
 * rules at the head (a key may not be a prefix of another live key).
 */
static int apply_op(struct txn_engine *eng, struct batch *b, const char *path, size_t len,
		    struct blob *value, int64_t ts, int64_t time_ns, int64_t *version_out)
{
	struct node *n;
	struct version *v;
	bool was_live;

	if (ARRAY_GROW(b->a, b->na + 1, b->cap_a))
		return -ENOMEM;
	if (value) {
		for (size_t i = 0; i < len; i++) {
			if (path[i] == '/' && txn_node_head_live(txn_node_find(eng, path, i)))
				return -ENOTDIR;
		}
	}
	n = value ? txn_node_find_or_create(eng, path, len) : txn_node_find(eng, path, len);
	if (!n)
		return value ? -ENOMEM : -ENOENT;
	if (value && (n->head_desc > 0 || n->dir_head))
		return -EISDIR;
	was_live = txn_node_head_live(n);
	if (!value && !was_live)
		return -ENOENT;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->commit_ts = ts;
	v->time_ns = time_ns;
	v->version = (n->versions ? n->versions->version : 0) + 1;
	v->value = blob_ref(value);
	v->older = n->versions;
	n->versions = v;
	if (was_live != (value != NULL))
		txn_node_adjust_desc(n, true, value ? 1 : -1);
	b->a[b->na].node = n;
	b->a[b->na].v = v;
	b->na++;
	*version_out = v->version;
	return txn_bump_sub(b, n, ts);
}

static int ev_add_kind(struct batch *b, struct ev_build *eb, const char *path, size_t len,
		       enum store_op_kind kind, struct blob *value, int64_t version);

static int ev_add(struct batch *b, struct ev_build *eb, const char *path, size_t len,
		  struct blob *value, int64_t version)
{
	return ev_add_kind(b, eb, path, len, value ? STORE_PUT : STORE_DELETE, value, version);
}

static int ev_add_kind(struct batch *b, struct ev_build *eb, const char *path, size_t len,
		       enum store_op_kind kind, struct blob *value, int64_t version)
{
	char *p;

	if (ARRAY_GROW(eb->ops, eb->n + 1, eb->cap) ||
	    ARRAY_GROW(b->paths, b->np + 1, b->cap_p))
		return -ENOMEM;
	p = strndup(path, len);
	if (!p)
		return -ENOMEM;
	b->paths[b->np++] = p;
	if (kind == STORE_PUT)
		b->n_put++;
	else if (kind == STORE_DELETE)
		b->n_del++;
	eb->ops[eb->n] = (struct store_op){
		.path = p,
		.path_len = len,
		.kind = kind,
		.version = version,
		.value = value ? value->data : NULL,
		.value_len = value ? value->len : 0,
	};
	eb->n++;
	return 0;
}

/* The order a transaction's ops apply in: what is removed before what is made, and a
 * directory before the keys in it, so "delete a; put a/b", "rmdir d; put d" and
 * "mkdir d; put d/k" apply (and read in the log) in the right order. */
static int staged_rank(enum staged_kind k)
{
	switch (k) {
	case ST_DELETE:
		return 0;
	case ST_RMDIR:
		return 1;
	case ST_DIR:
		return 2;
	default:
		return 3;
	}
}

static int path_cmp(const struct staged *x, const struct staged *y)
{
	if (x->len != y->len) {
		int c = memcmp(x->path, y->path, x->len < y->len ? x->len : y->len);

		return c ? c : (x->len < y->len ? -1 : 1);
	}
	return memcmp(x->path, y->path, x->len);
}

static int staged_cmp(const void *a, const void *b)
{
	const struct staged *x = *(struct staged *const *)a, *y = *(struct staged *const *)b;

	if (x->kind != y->kind)
		return staged_rank(x->kind) - staged_rank(y->kind);
	/* Directories are removed children first and made parents first. */
	return x->kind == ST_RMDIR ? path_cmp(y, x) : path_cmp(x, y);
}

/* Is some proper prefix of path a live key at the head? */
static bool key_above(struct txn_engine *eng, const char *path, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (path[i] == '/' && txn_node_head_live(txn_node_find(eng, path, i)))
			return true;
	}
	return false;
}

/*
 * Make (make) or remove an explicit directory at the head, with its log op; published
 * with the batch.  strict: a live mkdir or rmdir, which fails where the directory is
 * already there (-EEXIST) or gone (-ENOENT); otherwise (a transaction, a rename) that
 * is no change.  Namespaces and agents are no state: nothing happens there.
 */
static int apply_dir(struct txn_engine *eng, struct batch *b, struct ev_build *eb,
		     const char *path, size_t len, bool make, bool strict, int64_t ts,
		     int64_t time_ns)
{
	struct node *n = make ? txn_node_find_or_create(eng, path, len)
			      : txn_node_find(eng, path, len);

	if (txn_path_depth(path, len) < 3)
		return strict ? -EINVAL : 0;
	if (make && !n)
		return -ENOMEM;
	if (make && (key_above(eng, path, len) || txn_node_head_live(n)))
		return txn_node_head_live(n) && strict ? -EEXIST : -ENOTDIR;
	if (!n || n->dir_head == make)
		return strict ? (make ? -EEXIST : -ENOENT) : 0;
	if (!make && n->head_desc > 0)
		return -ENOTEMPTY;
	if (ARRAY_GROW(b->dc, b->ndc + 1, b->cap_dc) || txn_bump_sub(b, n, ts))
		return -ENOMEM;
	txn_node_set_dir(n, true, make);
	b->dc[b->ndc++] = (struct dir_change){ n, make, time_ns };
	return ev_add_kind(b, eb, path, len, make ? STORE_MKDIR : STORE_RMDIR, NULL, 0);
}

/* Take back directory changes from index mark on (a failed request or batch). */
void txn_batch_undo_dirs(struct batch *b, size_t mark)
{
	while (b->ndc > mark) {
		b->ndc--;
		txn_node_set_dir(b->dc[b->ndc].node, true, !b->dc[b->ndc].make);
	}
}

static int key_delete(struct txn_engine *eng, struct batch *b, struct ev_build *eb,
		      const char *path, size_t len, int64_t ts, int64_t time_ns);

/* One staged op of a transaction at the head. */
static int apply_staged(struct txn_engine *eng, struct batch *b, struct ev_build *eb,
			const struct staged *s, int64_t ts, int64_t time_ns)
{
	struct blob *val = s->value, *tight = NULL;
	int64_t version;
	int err;

	if (s->kind == ST_DIR || s->kind == ST_RMDIR)
		return apply_dir(eng, b, eb, s->path, s->len, s->kind == ST_DIR, false, ts,
				 time_ns);
	if (!s->value)
		return key_delete(eng, b, eb, s->path, s->len, ts, time_ns);
	if (val->room > val->len) {
		/* Written in pieces (txn_stage_patch): the tree keeps the bytes, not the room. */
		tight = blob_new(val->data, val->len);
		if (!tight)
			return -ENOMEM;
		val = tight;
	}
	err = apply_op(eng, b, s->path, s->len, val, ts, time_ns, &version);
	if (!err)
		err = ev_add(b, eb, s->path, s->len, val, version);
	blob_unref(tight);
	return err;
}

/* Validate and apply a transaction's staged ops at the head.  Tree write lock held. */
int txn_apply_tx(struct txn_engine *eng, struct batch *b, struct txn_commit_req *req,
		     int64_t ts, int64_t time_ns, struct ev_build *eb)
{
	struct txn *tx = req->tx;
	struct staged **ops = NULL, *s, *tmp;
	size_t n = 0;
	int err = 0;

	pthread_mutex_lock(&tx->lock);
	if (tx->state != TXN_COMMITTING)
		BUG("transaction '%s' queued in state %d", tx->name, tx->state);
	if (txn_deadline_passed(tx)) {
		err = -ETIMEDOUT;
		txn_fail_locked(tx, err, NULL, 0);
		goto unlock;
	}
	ops = malloc((HASH_COUNT(tx->staged) + 1) * sizeof(*ops));
	if (!ops) {
		err = -ENOMEM;
		goto unlock;
	}
	HASH_ITER(hh, tx->staged, s, tmp)
		ops[n++] = s;
	qsort(ops, n, sizeof(*ops), staged_cmp);
	/* Preconditions, write conflicts (first committer wins) and, serializable, what
	 * the view read: all against the head, before anything of tx applies. */
	err = txn_check_commit_locked(eng, tx, ops, n);
	if (err)
		goto unlock;
	for (size_t i = 0; i < n; i++) {
		err = apply_staged(eng, b, eb, ops[i], ts, time_ns);
		if (err) {
			/* A key that vanished under a delete, or a directory that filled
			 * under an rmdir, raced with another commit. */
			if (err == -ENOENT || err == -ENOTEMPTY)
				err = -ESTALE;
			txn_fail_locked(tx, err, ops[i]->path, ops[i]->len);
			tx->conflict = TXN_CONFLICT_WRITE;
			goto unlock;
		}
	}
unlock:
	pthread_mutex_unlock(&tx->lock);
	free(ops);
	return err;
}

/* Every head-live key (dirs false) or explicit directory (dirs true) at or below node
 * n, as paths, parents first. */
static int collect_head(struct node *n, bool dirs, struct dirents *out)
{
	struct node *c, *tmp;
	int err = 0;

	if (dirs ? n->dir_head : txn_node_head_live(n)) {
		size_t len;
		char *p = txn_node_path(n, &len);

		if (!p)
			return -ENOMEM;
		err = dirents_add(out, p, len, dirs ? TXN_DIR : TXN_FILE);
		free(p);
		if (err)
			return err;
	}
	if (n->head_desc == 0)
		return 0;
	HASH_ITER(hh, n->children, c, tmp) {
		err = collect_head(c, dirs, out);
		if (err)
			return err;
	}
	return 0;
}

/* The explicit directories at and below src (path sp) move below dp: removed
 * children first, then made parents first. */
static int move_dirs(struct txn_engine *eng, struct batch *b, struct ev_build *eb,
		     struct node *src, const char *sp, size_t sl, const char *dp, size_t dl,
		     int64_t ts, int64_t time_ns)
{
	struct dirents dirs = DIRENTS_INIT;
	int err = collect_head(src, true, &dirs);

	for (size_t i = dirs.n; i-- > 0 && !err;)
		err = apply_dir(eng, b, eb, dirs.v[i].name, strlen(dirs.v[i].name), false, false,
				ts, time_ns);
	for (size_t i = 0; i < dirs.n && !err; i++) {
		const char *p = dirs.v[i].name;
		size_t pl = strlen(p), nl;
		char *np = txn_path_join(dp, dl, p + sl + (pl > sl), pl - sl - (pl > sl), &nl);

		err = np ? txn_path_check(np, nl) : -ENOMEM;
		if (!err)
			err = apply_dir(eng, b, eb, np, nl, true, false, ts, time_ns);
		free(np);
	}
	dirents_release(&dirs);
	return err;
}

/* Record path's owner record as a (NULL: cleared), in the log and, when the batch
 * publishes, in the tree. */
static int attr_record(struct txn_engine *eng, struct batch *b, struct ev_build *eb,
		       const char *path, size_t len, const struct txn_attr *ta)
{
	struct blob *val = NULL;
	struct dattr *a = NULL;
	struct node *n;
	int err;

	if (ARRAY_GROW(b->ac, b->nac + 1, b->cap_ac))
		return -ENOMEM;
	n = txn_node_find_or_create(eng, path, len);
	if (!n)
		return -ENOMEM;
	if (ta) {
		a = malloc(sizeof(*a));
		val = txn_attr_encode(ta, txn_path_depth(path, len) > 2);
		if (!a || !val) {
			free(a);
			blob_unref(val);
			return -ENOMEM;
		}
		*a = (struct dattr){ ta->uid, ta->gid, ta->mode & 07777 };
	} else if (!(val = blob_new("", 0))) {
		return -ENOMEM;
	}
	err = ev_add_kind(b, eb, path, len, STORE_ATTR, val, 0);
	if (err) {
		free(a);
		blob_unref(val);
		return err;
	}
	b->ac[b->nac++] = (struct attr_change){ n, a, val };
	return 0;
}

/* Record a change of owner or mode; it takes effect when the batch publishes. */
static int apply_attr(struct txn_engine *eng, struct batch *b, struct txn_commit_req *req,
		      struct ev_build *eb)
{
	size_t len = strlen(req->path);
	int depth = txn_path_depth(req->path, len);
	int err = txn_path_check(req->path, len);

	if (!err && depth < 1)
		err = -EINVAL;
	if (!err && depth > 2 && !txn_node_head_live(txn_node_find(eng, req->path, len)))
		err = -ENOENT; /* a key's mode: the key must be there */
	if (err)
		return err;
	return attr_record(eng, b, eb, req->path, len, req->attr.own ? &req->attr : NULL);
}

/* The owner record node n has once the batch publishes: the batch's last change of it,
 * else the published one. */
static const struct dattr *attr_at_head(const struct batch *b, const struct node *n)
{
	for (size_t i = b->nac; i-- > 0;)
		if (b->ac[i].node == n)
			return b->ac[i].attr;
	return n ? n->attr : NULL;
}

/* A key's own mode as a request would give it (own false: none). */
static struct txn_attr key_mode(const struct batch *b, const struct node *n)
{
	const struct dattr *a = attr_at_head(b, n);

	return (struct txn_attr){ .mode = a ? a->mode : 0, .own = a != NULL };
}

/* The key at path gets mode m (m.own) or none: recorded only when that changes. */
static int key_mode_set(struct txn_engine *eng, struct batch *b, struct ev_build *eb,
			const char *path, size_t len, struct txn_attr m)
{
	struct txn_attr cur = key_mode(b, txn_node_find(eng, path, len));

	if (cur.own == m.own && (!m.own || cur.mode == m.mode))
		return 0;
	return attr_record(eng, b, eb, path, len, m.own ? &m : NULL);
}

/* A key deleted: the op, and its own mode goes with it. */
static int key_delete(struct txn_engine *eng, struct batch *b, struct ev_build *eb,
		      const char *path, size_t len, int64_t ts, int64_t time_ns)
{
	int64_t version;
	int err = apply_op(eng, b, path, len, NULL, ts, time_ns, &version);

	if (!err)
		err = ev_add(b, eb, path, len, NULL, version);
	if (!err)
		err = key_mode_set(eng, b, eb, path, len, (struct txn_attr){ 0 });
	return err;
}

/*
 * A renamed namespace or agent takes its owner records along (its own and, for a
 * namespace, its agents'), so its keys keep their owner and mode under the new name;
 * a directory renamed to another depth leaves them behind, cleared.
 */
static int move_attrs(struct txn_engine *eng, struct batch *b, struct ev_build *eb,
		      struct node *src, const char *sp, size_t sl, const char *dp, size_t dl)
{
	int sdepth = txn_path_depth(sp, sl), same = sdepth == txn_path_depth(dp, dl);
	struct node *dst = txn_node_find(eng, dp, dl), *c, *tmp;
	int err = 0;
	const struct dattr *sa = attr_at_head(b, src);

	if (sdepth > 2)
		return 0;
	if (sa) {
		struct txn_attr a = { sa->uid, sa->gid, sa->mode, true };

		err = attr_record(eng, b, eb, sp, sl, NULL);
		if (!err && same)
			err = attr_record(eng, b, eb, dp, dl, &a);
	} else if (dst && attr_at_head(b, dst) && same) {
		err = attr_record(eng, b, eb, dp, dl, NULL);
	}
	if (sdepth != 1)
		return err;
	HASH_ITER(hh, src->children, c, tmp) {
		struct txn_attr a;
		size_t cl, nl;
		char *cp, *np;

		const struct dattr *ca = attr_at_head(b, c);

		if (err)
			break;
		if (!ca)
			continue;
		a = (struct txn_attr){ ca->uid, ca->gid, ca->mode, true };
		cp = txn_path_join(sp, sl, c->name, c->name_len, &cl);
		np = txn_path_join(dp, dl, c->name, c->name_len, &nl);
		if (!cp || !np)
			err = -ENOMEM;
		if (!err)
			err = attr_record(eng, b, eb, cp, cl, NULL);
		if (!err && same)
			err = attr_record(eng, b, eb, np, nl, &a);
		free(cp);
		free(np);
	}
	return err;
}

/* A key moves: a delete of from and a put of val at to, both in this commit; its own
 * mode goes along (and to's is replaced, as a rename replaces a file). */
static int apply_move(struct txn_engine *eng, struct batch *b, struct ev_build *eb,
		      const char *from, size_t flen, const char *to, size_t tlen,
		      struct blob *val, int64_t ts, int64_t time_ns)
{
	struct txn_attr m = key_mode(b, txn_node_find(eng, from, flen));
	int64_t version;
	int err = key_delete(eng, b, eb, from, flen, ts, time_ns);

	if (!err)
		err = apply_op(eng, b, to, tlen, val, ts, time_ns, &version);
	if (!err)
		err = ev_add(b, eb, to, tlen, val, version);
	if (!err)
		err = key_mode_set(eng, b, eb, to, tlen, m);
	return err;
}

/* Every key below directory node src moves below req->path2, with the owner records. */
static int apply_rename_dir(struct txn_engine *eng, struct batch *b, struct txn_commit_req *req,
			    struct node *src, int64_t ts, int64_t time_ns, struct ev_build *eb)
{
	size_t len = strlen(req->path), dlen = strlen(req->path2);
	struct dirents keys = DIRENTS_INIT;
	int err = collect_head(src, false, &keys);

	for (size_t i = 0; i < keys.n && !err; i++) {
		const char *kp = keys.v[i].name;
		size_t kl = strlen(kp), nl;
		char *np = txn_path_join(req->path2, dlen, kp + len + 1, kl - len - 1, &nl);
		struct node *kn = txn_node_find(eng, kp, kl);
		struct blob *val;

		if (!np) {
			err = -ENOMEM;
			break;
		}
		err = txn_path_check(np, nl);
		if (!err && txn_path_depth(np, nl) < 3)
			err = -EINVAL;
		val = blob_ref(kn->versions->value);
		if (!err)
			err = apply_move(eng, b, eb, kp, kl, np, nl, val, ts, time_ns);
		blob_unref(val);
		free(np);
	}
	dirents_release(&keys);
	if (!err)
		err = move_dirs(eng, b, eb, src, req->path, len, req->path2, dlen, ts, time_ns);
	if (!err)
		err = move_attrs(eng, b, eb, src, req->path, len, req->path2, dlen);
	if (!err && src->explicit_dir && !src->dir_head && txn_path_depth(req->path, len) <= 2 &&
	    txn_path_depth(req->path2, dlen) <= 2) {
		/* A namespace or agent marked in memory only (its mark moves at once). */
		struct node *d = txn_node_find_or_create(eng, req->path2, dlen);

		if (d)
			d->explicit_dir = true;
		src->explicit_dir = false;
	}
	return err;
}

/* Rename: a key, or every key below a directory, in one transaction. */
static int apply_rename(struct txn_engine *eng, struct batch *b, struct txn_commit_req *req,
			int64_t ts, int64_t time_ns, struct ev_build *eb)
{
	size_t len = strlen(req->path), dlen = strlen(req->path2);
	struct node *src = txn_node_find(eng, req->path, len);
	struct node *dst = txn_node_find(eng, req->path2, dlen);
	int err;

	if (!src)
		return -ENOENT;
	if (len == dlen && memcmp(req->path, req->path2, len) == 0)
		return 0;
	if (req->noreplace && dst &&
	    (txn_node_head_live(dst) || dst->head_desc > 0 || dst->explicit_dir || dst->dir_head))
		return -EEXIST;
	if (txn_node_head_live(src)) {
		struct blob *val = src->versions->value;

		if (txn_path_depth(req->path2, dlen) < 3)
			return -EINVAL;
		if (dst && dst->head_desc > 0)
			return -EISDIR;
		blob_ref(val);
		err = apply_move(eng, b, eb, req->path, len, req->path2, dlen, val, ts, time_ns);
		blob_unref(val);
		return err;
	}
	if (src->head_desc == 0 && !src->explicit_dir && !src->dir_head && !src->attr &&
	    !txn_node_has_explicit_child(src))
		return -ENOENT;
	if (txn_path_is_under(req->path2, dlen, req->path, len))
		return -EINVAL;
	if (dst && txn_node_head_live(dst))
		return -ENOTDIR;
	if (dst && (dst->head_desc > 0 || txn_node_has_explicit_child(dst)))
		return -ENOTEMPTY;
	return apply_rename_dir(eng, b, req, src, ts, time_ns, eb);
}

/* A key's committed value at the head: -ENOENT for nothing, -EINVAL for a directory. */
static int head_key_value(struct txn_engine *eng, const char *path, size_t len,
			  struct blob **out)
{
	struct node *n = txn_node_find(eng, path, len);

	if (n && txn_node_head_live(n)) {
		*out = n->versions->value;
		return 0;
	}
	if (n && (n->head_desc > 0 || n->explicit_dir || txn_node_has_explicit_child(n)))
		return -EINVAL;
	return -ENOENT;
}

/* RENAME_EXCHANGE of two keys: each gets the other's value and mode, in this one commit. */
static int apply_exchange(struct txn_engine *eng, struct batch *b, struct txn_commit_req *req,
			  int64_t ts, int64_t time_ns, struct ev_build *eb)
{
	size_t alen = strlen(req->path), blen = strlen(req->path2);
	struct blob *va = NULL, *vb = NULL;
	struct txn_attr ma, mb;
	int64_t version;
	int err = head_key_value(eng, req->path, alen, &va);

	if (!err)
		err = head_key_value(eng, req->path2, blen, &vb);
	if (err || (alen == blen && memcmp(req->path, req->path2, alen) == 0))
		return err;
	ma = key_mode(b, txn_node_find(eng, req->path, alen));
	mb = key_mode(b, txn_node_find(eng, req->path2, blen));
	blob_ref(va);
	blob_ref(vb);
	err = apply_op(eng, b, req->path, alen, vb, ts, time_ns, &version);
	if (!err)
		err = ev_add(b, eb, req->path, alen, vb, version);
	if (!err)
		err = apply_op(eng, b, req->path2, blen, va, ts, time_ns, &version);
	if (!err)
		err = ev_add(b, eb, req->path2, blen, va, version);
	if (!err)
		err = key_mode_set(eng, b, eb, req->path, alen, mb);
	if (!err)
		err = key_mode_set(eng, b, eb, req->path2, blen, ma);
	blob_unref(va);
	blob_unref(vb);
	return err;
}

int txn_apply_auto(struct txn_engine *eng, struct batch *b, struct txn_commit_req *req,
		   int64_t ts, int64_t time_ns, struct ev_build *eb)
{
	size_t len = strlen(req->path);
	int64_t version;
	int err;

	if (req->kind == TXN_AUTO_PUT) {
		bool created = !txn_node_head_live(txn_node_find(eng, req->path, len));

		if (req->noreplace && !created)
			return -EEXIST;
		err = apply_op(eng, b, req->path, len, req->value, ts, time_ns, &version);
		if (!err)
			err = ev_add(b, eb, req->path, len, req->value, version);
		if (!err && created && req->attr.own)
			err = key_mode_set(eng, b, eb, req->path, len, req->attr);
		return err;
	}
	if (req->kind == TXN_AUTO_DELETE)
		return key_delete(eng, b, eb, req->path, len, ts, time_ns);
	if (req->kind == TXN_AUTO_ATTR)
		return apply_attr(eng, b, req, eb);
	if (req->kind == TXN_AUTO_EXCHANGE)
		return apply_exchange(eng, b, req, ts, time_ns, eb);
	if (req->kind == TXN_AUTO_MKDIR || req->kind == TXN_AUTO_RMDIR)
		return apply_dir(eng, b, eb, req->path, len, req->kind == TXN_AUTO_MKDIR, true,
				 ts, time_ns);
	return apply_rename(eng, b, req, ts, time_ns, eb);
}

/* Drop attribute changes from index mark on (a failed request or batch). */
void txn_batch_drop_attrs(struct batch *b, size_t mark)
{
	while (b->nac > mark) {
		b->nac--;
		free(b->ac[b->nac].attr);
		blob_unref(b->ac[b->nac].val);
	}
}
