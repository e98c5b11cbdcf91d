/* SPDX-License-Identifier: MIT */
/*
 * readset.c - what a commit checks besides the transaction's writes (txn layer): the
 * isolation level, the read set of a serializable transaction (keys read, absences,
 * directories listed as prefix ranges), the preconditions of .expect, and the one check
 * at commit that runs them all with the write conflicts, under the tree write lock at
 * the head (txn_check_commit_locked(), called by txn_apply_tx() in commit.c).
 *
 * A change "since the transaction began" is a node whose sub_ts is past its begin_ts
 * (invariant 10 in txn_i.h): sub_ts moves with every version and directory applied at
 * the head, so a change by a request earlier in the same batch counts too, exactly as
 * for the write conflicts.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "log.h"
#include "txn_i.h"

/* ---- isolation ---------------------------------------------------------------------- */

int txn_isolation_parse(const char *s, size_t len, enum txn_isolation *out)
{
	if (len && s[len - 1] == '\n')
		len--;
	if (len == 8 && !memcmp(s, "snapshot", 8))
		*out = TXN_ISO_SNAPSHOT;
	else if (len == 12 && !memcmp(s, "serializable", 12))
		*out = TXN_ISO_SERIALIZABLE;
	else
		return -EINVAL;
	return 0;
}

const char *txn_isolation_name(enum txn_isolation iso)
{
	return iso == TXN_ISO_SERIALIZABLE ? "serializable" : "snapshot";
}

int txn_set_isolation(struct txn *tx, enum txn_isolation iso)
{
	int err;

	if (iso != TXN_ISO_SNAPSHOT && iso != TXN_ISO_SERIALIZABLE)
		return -EINVAL;
	pthread_mutex_lock(&tx->lock);
	err = txn_stage_state_err(tx);
	if (!err && tx->touched)
		err = -EBUSY; /* what it read so far was not recorded (or was) */
	if (!err && tx->isolation != iso) {
		tx->isolation = iso;
		txn_jhead_locked(tx);
	}
	pthread_mutex_unlock(&tx->lock);
	return err;
}

enum txn_isolation txn_get_isolation(struct txn *tx)
{
	enum txn_isolation iso;

	pthread_mutex_lock(&tx->lock);
	iso = tx->isolation;
	pthread_mutex_unlock(&tx->lock);
	return iso;
}

/* ---- the read set ------------------------------------------------------------------- */

static struct readrec *rec_find(struct readrec *set, const char *path, size_t len)
{
	struct readrec *r = NULL;

	HASH_FIND(hh, set, path, len, r);
	return r;
}

/* Add path to a set once, charging its bytes to tx (force: past the limits, for a
 * restore).  tx->lock held. */
static int rec_add(struct txn *tx, struct readrec **set, const char *path, size_t len,
		   bool force)
{
	struct readrec *r = rec_find(*set, path, len);
	int err;

	if (r)
		return 0;
	err = txn_charge_locked(tx, (long long)len, force);
	if (err)
		return err;
	r = calloc(1, sizeof(*r));
	if (r && !(r->path = malloc(len + 1))) {
		free(r);
		r = NULL;
	}
	if (r) {
		memcpy(r->path, path, len);
		r->path[len] = '\0';
		r->len = len;
		HASH_ADD_KEYPTR(hh, *set, r->path, r->len, r);
		if (!HASH_ADDED(hh, r)) {
			free(r->path);
			free(r);
			r = NULL;
		}
	}
	if (!r) {
		txn_charge_locked(tx, -(long long)len, true);
		return -ENOMEM;
	}
	return 0;
}

static void rec_free_all(struct txn *tx, struct readrec **set)
{
	struct readrec *r, *tmp;

	HASH_ITER(hh, *set, r, tmp) {
		HASH_DEL(*set, r);
		txn_charge_locked(tx, -(long long)r->len, true);
		free(r->path);
		free(r);
	}
}

/* Did tx stage something at path (its own value or directory, not the snapshot's)?  A
 * put or delete is checked as a write; a directory made or removed clashes at apply with
 * a key committed there meanwhile. */
static bool own_write(struct txn *tx, const char *path, size_t len)
{
	return txn_staged_find(tx, path, len) != NULL;
}

int txn_read_record_locked(struct txn *tx, const char *path, size_t len, int err,
			   const struct txn_entry *e, bool list)
{
	struct readrec **set;

	if (tx->state != TXN_OPEN)
		return 0;
	if (list) {
		if (err)
			return 0;
		set = &tx->ranges;
	} else {
		/* A key, or the absence of one; not a directory (namespaces, agents and
		 * key prefixes are looked up on every path walk). */
		if (txn_path_depth(path, len) < 3)
			return 0;
		if (!(err == 0 && e->type == TXN_FILE) && err != -ENOENT)
			return 0;
		if (own_write(tx, path, len))
			return 0;
		set = &tx->reads;
	}
	/* Journaled when it changes something: the first read, or a new path recorded. */
	if (!tx->touched) {
		tx->touched = true;
		txn_jhead_locked(tx);
	}
	if (tx->isolation != TXN_ISO_SERIALIZABLE || rec_find(*set, path, len))
		return 0;
	err = rec_add(tx, set, path, len, false);
	if (!err) {
		txn_jtouch_locked(tx, set == &tx->reads ? JI_READ : JI_RANGE, path, len);
		txn_jflush_locked(tx);
	}
	return err;
}

/* ---- raising sub_ts at the head (invariant 10) --------------------------------------- */

int txn_bump_sub(struct batch *b, struct node *n, int64_t ts)
{
	/* An ancestor is never below a descendant: stop at the first one already there. */
	for (struct node *a = n; a && a->sub_ts < ts; a = a->parent) {
		if (ARRAY_GROW(b->su, b->nsu + 1, b->cap_su))
			return -ENOMEM;
		b->su[b->nsu++] = (struct sub_undo){ a, a->sub_ts };
		a->sub_ts = ts;
	}
	return 0;
}

void txn_batch_undo_sub(struct batch *b, size_t mark)
{
	while (b->nsu > mark) {
		b->nsu--;
		b->su[b->nsu].node->sub_ts = b->su[b->nsu].old;
	}
}

/* ---- preconditions ------------------------------------------------------------------- */

static bool is_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

/* Is s (n bytes) word itself, or (partial) the start of it? */
static bool word_is(const char *s, size_t n, const char *word, bool partial)
{
	size_t wl = strlen(word);

	return (n == wl || (partial && n < wl)) && !memcmp(s, word, n);
}

int txn_expect_parse(const void *buf, size_t len, bool partial, struct txn_expect *out)
{
	const char *s = buf;
	size_t n = len;
	uint64_t v = 0;

	if (n && s[n - 1] == '\n')
		n--;
	else if (!partial && n == 0)
		return -EINVAL;
	if (memchr(s, '\n', n))
		return -EINVAL; /* one line, one condition */
	if (is_digits(s, n)) {
		if (n > 19)
			return -EINVAL;
		for (size_t i = 0; i < n; i++)
			v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > INT64_MAX)
			return -EINVAL;
		if (out)
			*out = v ? (struct txn_expect){ TXN_EXPECT_VERSION, (int64_t)v }
				 : (struct txn_expect){ TXN_EXPECT_ABSENT, 0 };
		return 0;
	}
	if (word_is(s, n, "absent", false) || word_is(s, n, "present", false)) {
		if (out)
			*out = (struct txn_expect){ s[0] == 'a' ? TXN_EXPECT_ABSENT
								: TXN_EXPECT_PRESENT, 0 };
		return 0;
	}
	/* Bytes a later write may still complete ("pres", or nothing yet). */
	if (partial && n == len && (n == 0 || word_is(s, n, "absent", true) ||
				    word_is(s, n, "present", true)))
		return 0;
	return -EINVAL;
}

int txn_expect_format(const struct txn_expect *e, char *buf, size_t cap)
{
	int n;

	if (e->kind == TXN_EXPECT_VERSION)
		n = snprintf(buf, cap, "%" PRId64 "\n", e->version);
	else
		n = snprintf(buf, cap, "%s\n", e->kind == TXN_EXPECT_ABSENT ? "absent" : "present");
	return n < 0 || (size_t)n >= cap ? -ENOMEM : n;
}

static struct expectrec *expect_find(struct txn *tx, const char *path, size_t len)
{
	struct expectrec *x = NULL;

	HASH_FIND(hh, tx->expects, path, len, x);
	return x;
}

/* Is anything of .expect (a precondition, or a directory made there) strictly below
 * path?  Only preconditions when conds_only. */
static bool expect_below(struct txn *tx, const char *path, size_t len, bool conds_only)
{
	struct expectrec *x, *tmp;

	HASH_ITER(hh, tx->expects, x, tmp) {
		if ((!conds_only || !x->dir) && txn_path_is_under(x->path, x->len, path, len))
			return true;
	}
	return false;
}

/* Is a precondition set on a proper prefix of path (then path cannot be a key)? */
static bool expect_above(struct txn *tx, const char *path, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		struct expectrec *x;

		if (path[i] == '/' && (x = expect_find(tx, path, i)) && !x->dir)
			return true;
	}
	return false;
}

static int expect_add(struct txn *tx, const char *path, size_t len, bool dir,
		      const struct txn_expect *e, bool force)
{
	struct expectrec *x = calloc(1, sizeof(*x));
	int err = txn_charge_locked(tx, (long long)len, force);

	if (err || !x || !(x->path = malloc(len + 1))) {
		free(x);
		if (!err)
			txn_charge_locked(tx, -(long long)len, true);
		return err ? err : -ENOMEM;
	}
	memcpy(x->path, path, len);
	x->path[len] = '\0';
	x->len = len;
	x->dir = dir;
	if (e)
		x->e = *e;
	HASH_ADD_KEYPTR(hh, tx->expects, x->path, x->len, x);
	if (!HASH_ADDED(hh, x)) {
		free(x->path);
		free(x);
		txn_charge_locked(tx, -(long long)len, true);
		return -ENOMEM;
	}
	return 0;
}

static void expect_drop(struct txn *tx, struct expectrec *x)
{
	HASH_DEL(tx->expects, x);
	txn_charge_locked(tx, -(long long)x->len, true);
	free(x->path);
	free(x);
}

int txn_expect_set(struct txn *tx, const char *path, size_t len, const struct txn_expect *e)
{
	struct expectrec *x;
	int err = txn_path_check(path, len);

	if (!err && txn_path_depth(path, len) < 3)
		err = -EINVAL;
	if (!err && (e->kind < TXN_EXPECT_VERSION || e->kind > TXN_EXPECT_PRESENT ||
		     (e->kind == TXN_EXPECT_VERSION && e->version < 1)))
		err = -EINVAL;
	if (err)
		return err;
	pthread_mutex_lock(&tx->lock);
	err = txn_stage_state_err(tx);
	x = err ? NULL : expect_find(tx, path, len);
	if (err) {
		/* not writable */
	} else if ((x && x->dir) || expect_below(tx, path, len, false)) {
		err = -EISDIR;
	} else if (expect_above(tx, path, len)) {
		err = -ENOTDIR;
	} else if (x) {
		x->e = *e;
	} else {
		err = expect_add(tx, path, len, false, e, false);
	}
	if (!err) {
		txn_jtouch_locked(tx, JI_EXPECT, path, len);
		txn_jflush_locked(tx);
	}
	pthread_mutex_unlock(&tx->lock);
	return err;
}

int txn_expect_get(struct txn *tx, const char *path, size_t len, struct txn_expect *out)
{
	struct expectrec *x;

	pthread_mutex_lock(&tx->lock);
	x = expect_find(tx, path, len);
	if (x && !x->dir)
		*out = x->e;
	pthread_mutex_unlock(&tx->lock);
	return x && !x->dir ? 0 : -ENOENT;
}

int txn_expect_remove(struct txn *tx, const char *path, size_t len)
{
	struct expectrec *x;
	int err;

	pthread_mutex_lock(&tx->lock);
	err = txn_stage_state_err(tx);
	x = err ? NULL : expect_find(tx, path, len);
	if (!err && (!x || x->dir))
		err = x ? -EISDIR : -ENOENT;
	if (!err) {
		expect_drop(tx, x);
		txn_jtouch_locked(tx, JI_EXPECT, path, len);
		txn_jflush_locked(tx);
	}
	pthread_mutex_unlock(&tx->lock);
	return err;
}

/* What path is below .expect; tree lock (read) and tx->lock held. */
static int expect_stat_locked(struct txn_engine *eng, struct txn *tx, const char *path,
			      size_t len, enum txn_type *type)
{
	struct expectrec *x;
	struct txn_entry e;
	int err;

	*type = TXN_DIR;
	if (len == 0)
		return 0;
	if (tx->state != TXN_OPEN && tx->state != TXN_COMMITTING)
		return txn_stage_state_err(tx); /* as its view answers: EROFS once committed */
	err = txn_path_check(path, len);
	if (err)
		return err;
	x = expect_find(tx, path, len);
	if (x) {
		*type = x->dir ? TXN_DIR : TXN_FILE;
		return 0;
	}
	if (txn_path_depth(path, len) < 3 || expect_below(tx, path, len, false))
		return 0;
	/* A directory of the view (not a read of it: nothing is recorded). */
	if (txn_view_resolve(eng, tx, path, len, &e, NULL) == 0 && e.type == TXN_DIR)
		return 0;
	return -ENOENT;
}

int txn_expect_stat(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		    enum txn_type *type)
{
	int err;

	pthread_rwlock_rdlock(&eng->tree_lock);
	pthread_mutex_lock(&tx->lock);
	err = expect_stat_locked(eng, tx, path, len, type);
	pthread_mutex_unlock(&tx->lock);
	pthread_rwlock_unlock(&eng->tree_lock);
	return err;
}

int txn_expect_list(struct txn *tx, const char *path, size_t len, struct dirent_entry **out,
		    size_t *n)
{
	struct dirents ds = DIRENTS_INIT;
	struct expectrec *x, *tmp;
	int err = 0;

	pthread_mutex_lock(&tx->lock);
	HASH_ITER(hh, tx->expects, x, tmp) {
		const char *rest, *slash;
		size_t rlen;

		if (!txn_path_is_under(x->path, x->len, path, len))
			continue;
		rest = x->path + len + (len ? 1 : 0);
		rlen = x->len - (size_t)(rest - x->path);
		slash = memchr(rest, '/', rlen);
		if (slash)
			err = dirents_add(&ds, rest, (size_t)(slash - rest), TXN_DIR);
		else
			err = dirents_add(&ds, rest, rlen, x->dir ? TXN_DIR : TXN_FILE);
		if (err)
			break;
	}
	pthread_mutex_unlock(&tx->lock);
	return dirents_take(&ds, err, out, n);
}

int txn_expect_mkdir(struct txn_engine *eng, struct txn *tx, const char *path, size_t len)
{
	enum txn_type type;
	int err = txn_path_check(path, len);

	if (err)
		return err;
	if (txn_path_depth(path, len) < 3)
		return -EEXIST; /* a namespace or agent is there anyway */
	pthread_rwlock_rdlock(&eng->tree_lock);
	pthread_mutex_lock(&tx->lock);
	err = txn_stage_state_err(tx);
	if (!err && expect_stat_locked(eng, tx, path, len, &type) == 0)
		err = -EEXIST;
	if (!err && expect_above(tx, path, len))
		err = -ENOTDIR;
	if (!err)
		err = expect_add(tx, path, len, true, NULL, false);
	if (!err) {
		txn_jtouch_locked(tx, JI_EXPECT, path, len);
		txn_jflush_locked(tx);
	}
	pthread_mutex_unlock(&tx->lock);
	pthread_rwlock_unlock(&eng->tree_lock);
	return err;
}

int txn_expect_rmdir(struct txn *tx, const char *path, size_t len)
{
	struct expectrec *x;
	int err;

	pthread_mutex_lock(&tx->lock);
	err = txn_stage_state_err(tx);
	x = err ? NULL : expect_find(tx, path, len);
	if (err) {
		/* not writable */
	} else if (x && !x->dir) {
		err = -ENOTDIR;
	} else if (expect_below(tx, path, len, false)) {
		err = -ENOTEMPTY;
	} else if (x) {
		expect_drop(tx, x);
		txn_jtouch_locked(tx, JI_EXPECT, path, len);
		txn_jflush_locked(tx);
	}
	pthread_mutex_unlock(&tx->lock);
	return err;
}

int txn_readset_load_locked(struct txn *tx, int type, const char *path, size_t len,
			    bool present, const struct txn_expect *e)
{
	struct readrec **set = type == JI_READ ? &tx->reads : &tx->ranges, *r;
	struct expectrec *x;

	if (type != JI_EXPECT) {
		r = rec_find(*set, path, len);
		if (present && !r)
			return rec_add(tx, set, path, len, true); /* admitted when it was read */
		if (!present && r) {
			HASH_DEL(*set, r);
			txn_charge_locked(tx, -(long long)r->len, true);
			free(r->path);
			free(r);
		}
		return 0;
	}
	x = expect_find(tx, path, len);
	if (x)
		expect_drop(tx, x);
	return present ? expect_add(tx, path, len, e == NULL, e, true) : 0;
}

void txn_readset_free_locked(struct txn *tx)
{
	struct expectrec *x, *tmp;

	rec_free_all(tx, &tx->reads);
	rec_free_all(tx, &tx->ranges);
	HASH_ITER(hh, tx->expects, x, tmp)
		expect_drop(tx, x);
}

/* ---- the check at commit ------------------------------------------------------------- */

/* tx fails at path for reason why. */
static int conflict(struct txn *tx, enum txn_conflict why, const char *path, size_t len)
{
	txn_fail_locked(tx, -ESTALE, path, len);
	tx->conflict = why;
	return -ESTALE;
}

static bool expect_holds(struct txn_engine *eng, const struct expectrec *x)
{
	struct node *n = txn_node_find(eng, x->path, x->len);
	bool live = txn_node_head_live(n);

	switch (x->e.kind) {
	case TXN_EXPECT_ABSENT:
		return !live;
	case TXN_EXPECT_PRESENT:
		return live;
	default:
		return live && n->versions->version == x->e.version;
	}
}

/* A node below n (or n itself) that changed after ts, to name in .status: the walk goes
 * down any child whose subtree changed, to where nothing below did. */
static struct node *changed_at_or_below(struct node *n, int64_t ts)
{
	for (;;) {
		struct node *c, *tmp, *next = NULL;

		HASH_ITER(hh, n->children, c, tmp) {
			if (c->sub_ts > ts) {
				next = c;
				break;
			}
		}
		if (!next)
			return n;
		n = next;
	}
}

/* The ranges of a serializable transaction: the first that changed since ts, failed. */
static int check_ranges(struct txn_engine *eng, struct txn *tx)
{
	struct readrec *r, *tmp;

	HASH_ITER(hh, tx->ranges, r, tmp) {
		struct node *n = txn_node_find(eng, r->path, r->len), *c;
		size_t len;
		char *p;
		int err;

		if (!n || n->sub_ts <= tx->begin_ts)
			continue;
		c = changed_at_or_below(n, tx->begin_ts);
		p = txn_node_path(c, &len);
		err = p ? conflict(tx, TXN_CONFLICT_READ, p, len)
			: conflict(tx, TXN_CONFLICT_READ, r->path, r->len);
		free(p);
		return err;
	}
	return 0;
}

int txn_check_commit_locked(struct txn_engine *eng, struct txn *tx, struct staged **ops,
			    size_t n)
{
	struct expectrec *x, *xtmp;
	struct readrec *r, *rtmp;

	HASH_ITER(hh, tx->expects, x, xtmp) {
		if (!x->dir && !expect_holds(eng, x))
			return conflict(tx, TXN_CONFLICT_PRECONDITION, x->path, x->len);
	}
	/* First committer wins: any key written since our snapshot is a conflict. */
	for (size_t i = 0; i < n; i++) {
		struct node *nd;

		if (ops[i]->kind != ST_PUT && ops[i]->kind != ST_DELETE)
			continue;
		nd = txn_node_find(eng, ops[i]->path, ops[i]->len);
		if (nd && nd->versions && nd->versions->commit_ts > tx->begin_ts)
			return conflict(tx, TXN_CONFLICT_WRITE, ops[i]->path, ops[i]->len);
	}
	if (tx->isolation != TXN_ISO_SERIALIZABLE)
		return 0;
	HASH_ITER(hh, tx->reads, r, rtmp) {
		struct node *nd;

		if (own_write(tx, r->path, r->len))
			continue; /* checked as a write above */
		nd = txn_node_find(eng, r->path, r->len);
		if (nd && nd->sub_ts > tx->begin_ts)
			return conflict(tx, TXN_CONFLICT_READ, r->path, r->len);
	}
	return check_ranges(eng, tx);
}
