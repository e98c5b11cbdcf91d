/* SPDX-License-Identifier: MIT */
/*
 * journal.c - records of the transaction table for a journal kept outside the process
 * (txn layer): every change to an open transaction is handed, as bytes, to a hook
 * (txn_engine_set_journal()), so that a process taking over a mount after the serving one
 * died rebuilds the table exactly (restore.c).  Also the dump for a journal rewritten
 * from scratch, and the checks of a record.
 *
 * Design
 *  1. A record is a state, not an operation.  It carries the whole scalar state of one
 *     transaction (id, name, owner, begin_ts, deadline, timeout, isolation, whether
 *     it read or staged, state and outcome) and, for each item the change touched (a
 *     staged path, a read, a listed directory, a precondition, a note), what that item
 *     is after the change, or that it is gone.  Redoing an operation would need the
 *     view it ran against, a clock and the writer's undo record; a state needs none.
 *     Applying a record twice, or after a dump that already holds it, changes nothing,
 *     which is what lets a dump run while changes go on (txn_journal_dump()).
 *  2. One change, one record, made under tx->lock before the call returns: the staging
 *     functions note the paths they touch (txn_jtouch_locked(), from staged_set() and
 *     staged_drop() in stage.c) and flush one record at the end (txn_jflush_locked()),
 *     so a directory renamed in a transaction is one record, not half of one.  A
 *     record bigger than TXN_JREC_MAX is cut into a group (JREC_MORE on all but the
 *     last, JREC_CONT on all but the first), and restore applies a group only once
 *     its last record came; a group cut short by a death is dropped when the next
 *     change of that transaction begins a new one.
 *  3. Deadlines are CLOCK_MONOTONIC, stored as they are: the supervisor's journal dies
 *     with the boot, and the clock is the same for every process of one boot, so the
 *     deadline stays where it was (the pause counts) and a wall clock step moves
 *     nothing.  Staged files' times are wall clock, as shown, and kept as they are.
 *  4. A commit is not journaled as COMMITTING: the transaction stays OPEN, with the
 *     note its commit consumes, until the outcome is recorded.  A commit made durable
 *     by a process that died before the outcome was journaled is found by the caller
 *     in the applied-request records and recorded with txn_restore_committed(); one
 *     that is not durable is committed again by the kernel's resent rename.
 *  5. The views rest on the version chains: recovery with txn_options.pin_ts keeps
 *     every version after the pin (recover.c), and restore fails, as
 *     TXN_CONFLICT_SNAPSHOT, a transaction whose begin_ts is below what the chains
 *     serve (view_floor_ts), never serving a wrong snapshot.  sub_ts (invariant 10),
 *     on which serializable checks rest, is rebuilt by the replay too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "log.h"
#include "txn_i.h"

_Static_assert(sizeof(struct jhead) == 104, "the journal record head is 104 bytes");
_Static_assert(sizeof(struct jitem) == 16, "a journal item head is 16 bytes");

void txn_engine_set_journal(struct txn_engine *eng, txn_journal_fn fn, void *arg)
{
	eng->journal_arg = arg;
	eng->journal_fn = fn;
}

/* ---- building records -------------------------------------------------------------------- */

/* One item as it is now (pointers into tx, valid under tx->lock). */
struct jval {
	int type, what;
	const char *path;
	size_t len;
	const void *val;
	size_t vlen;
	int64_t num;
};

static size_t jval_size(const struct jval *v)
{
	return sizeof(struct jitem) + v->len + v->vlen;
}

/* What item r of tx is now. */
static void resolve(struct txn *tx, const struct jref *r, struct jval *v)
{
	*v = (struct jval){ .type = r->type, .path = r->path, .len = r->len };
	switch (r->type) {
	case JI_STAGED: {
		struct staged *s = txn_staged_find(tx, r->path, r->len);

		if (s) {
			v->what = s->kind;
			v->num = s->time_ns;
			if (s->value) {
				v->val = s->value->data;
				v->vlen = s->value->len;
			}
		}
		break;
	}
	case JI_READ:
	case JI_RANGE: {
		struct readrec *x = NULL;

		HASH_FIND(hh, r->type == JI_READ ? tx->reads : tx->ranges, r->path, r->len, x);
		v->what = x != NULL;
		break;
	}
	case JI_EXPECT: {
		struct expectrec *x = NULL;

		HASH_FIND(hh, tx->expects, r->path, r->len, x);
		if (x) {
			v->what = x->dir ? 1 : 1 + (int)x->e.kind;
			v->num = x->dir ? 0 : x->e.version;
		}
		break;
	}
	case JI_NOTE: {
		struct note *nt = NULL;

		HASH_FIND(hh, tx->notes, r->path, r->len, nt);
		if (nt) {
			v->what = 1;
			v->val = nt->content->data;
			v->vlen = nt->content->len;
		} else if (tx->jnote && strlen(tx->jnote_name) == r->len &&
			   !memcmp(tx->jnote_name, r->path, r->len)) {
			v->what = 1; /* taken by the commit in flight (design note 4) */
			v->val = tx->jnote->data;
			v->vlen = tx->jnote->len;
		}
		break;
	}
	default:
		BUG("journal item of type %d", r->type);
	}
}

static void jhead_fill(const struct txn *tx, unsigned flags, struct jhead *h)
{
	memset(h, 0, sizeof(*h));
	h->magic = JREC_MAGIC;
	h->version = JREC_VERSION;
	h->flags = (uint16_t)flags;
	h->id = tx->id;
	h->begin_ts = tx->begin_ts;
	h->begin_mono_ns = tx->begin_mono_ns;
	h->timeout_ms = tx->timeout_ms;
	h->commit_ts = tx->commit_ts;
	h->commit_time_ns = tx->commit_time_ns;
	h->finished_mono_ns = tx->finished_mono_ns;
	h->committed_ops = tx->committed_ops;
	h->uid = tx->uid;
	h->gid = tx->gid;
	h->err = tx->err;
	/* Journaled as open while its commit is in flight (design note 4). */
	h->state = (uint8_t)(tx->state == TXN_COMMITTING ? TXN_OPEN : tx->state);
	h->isolation = (uint8_t)tx->isolation;
	h->conflict = (uint8_t)tx->conflict;
	h->touched = tx->touched;
	h->name_len = (uint16_t)strlen(tx->name);
	h->err_key_len = (uint16_t)(tx->err && tx->err_key ? strlen(tx->err_key) : 0);
}

/* Build one record of head h with items v[0..n) and hand it to fn. */
static int emit_one(txn_journal_fn fn, void *arg, const struct txn *tx, struct jhead h,
		    const struct jval *v, size_t n)
{
	size_t len = sizeof(h) + h.name_len + h.err_key_len;
	unsigned char *buf, *p;

	for (size_t i = 0; i < n; i++)
		len += jval_size(&v[i]);
	if (len > UINT32_MAX || !(buf = malloc(len))) {
		fn(arg, NULL, 0);
		return -ENOMEM;
	}
	h.len = (uint32_t)len;
	h.n_items = (uint32_t)n;
	p = buf + sizeof(h);
	memcpy(p, tx->name, h.name_len);
	p += h.name_len;
	if (h.err_key_len)
		memcpy(p, tx->err_key, h.err_key_len);
	p += h.err_key_len;
	for (size_t i = 0; i < n; i++) {
		struct jitem it = { (uint8_t)v[i].type, (uint8_t)v[i].what, (uint16_t)v[i].len,
				    (uint32_t)v[i].vlen, v[i].num };

		memcpy(p, &it, sizeof(it));
		p += sizeof(it);
		if (v[i].len)
			memcpy(p, v[i].path, v[i].len);
		p += v[i].len;
		if (v[i].vlen)
			memcpy(p, v[i].val, v[i].vlen);
		p += v[i].vlen;
	}
	memcpy(buf, &h, sizeof(h));
	h.crc = (uint32_t)crc32(0L, buf, (uInt)len);
	memcpy(buf, &h, sizeof(h));
	fn(arg, buf, len);
	free(buf);
	return 0;
}

/* Hand fn the records of tx's state with items v[0..n): one, or a group cut where a
 * record would pass TXN_JREC_MAX (at least one item in each).  FULL marks only the
 * first record of a group (restore forgets the items once). */
static int emit(txn_journal_fn fn, void *arg, struct txn *tx, unsigned flags,
		const struct jval *v, size_t n)
{
	struct jhead h;
	size_t max = TXN_JREC_MAX(tx->eng->opt.max_value_bytes), base, start = 0, i = 0;
	int err = 0;

	jhead_fill(tx, flags, &h);
	base = sizeof(h) + h.name_len + h.err_key_len;
	do {
		size_t len = base;

		while (i < n && (i == start || len + jval_size(&v[i]) <= max))
			len += jval_size(&v[i++]);
		h.flags = (uint16_t)((start ? (flags & ~(unsigned)JREC_FULL) | JREC_CONT : flags) |
				     (i < n ? JREC_MORE : 0));
		err = emit_one(fn, arg, tx, h, v ? v + start : NULL, i - start);
		start = i;
	} while (!err && i < n);
	return err;
}

/* ---- changes as they are made ------------------------------------------------------------- */

void txn_jtouch_locked(struct txn *tx, int type, const char *path, size_t len)
{
	struct jref *r;

	if (!tx->eng->journal_fn || tx->jlost)
		return;
	if (tx->njd == tx->cap_jd) {
		size_t cap = tx->cap_jd ? tx->cap_jd * 2 : 4;
		struct jref *nd = realloc(tx->jd, cap * sizeof(*nd));

		if (!nd) {
			tx->jlost = true;
			return;
		}
		tx->jd = nd;
		tx->cap_jd = cap;
	}
	r = &tx->jd[tx->njd];
	r->path = malloc(len + 1);
	if (!r->path) {
		tx->jlost = true;
		return;
	}
	memcpy(r->path, path, len);
	r->path[len] = '\0';
	r->len = len;
	r->type = type;
	tx->njd++;
}

void txn_jdrop_locked(struct txn *tx)
{
	for (size_t i = 0; i < tx->njd; i++)
		free(tx->jd[i].path);
	free(tx->jd);
	tx->jd = NULL;
	tx->njd = tx->cap_jd = 0;
	tx->jhead = false;
	tx->jlost = false;
}

void txn_jflush_locked(struct txn *tx)
{
	txn_journal_fn fn = tx->eng->journal_fn;
	struct jval *v;
	size_t n = 0;

	if (!fn || (!tx->njd && !tx->jhead && !tx->jlost)) {
		txn_jdrop_locked(tx);
		return;
	}
	v = calloc(tx->njd + 1, sizeof(*v));
	if (tx->jlost || !v) {
		fn(tx->eng->journal_arg, NULL, 0);
		goto out;
	}
	for (size_t i = 0; i < tx->njd; i++) {
		bool dup = false;

		/* A path touched twice in one change is said once, as it is now. */
		for (size_t j = 0; j < n && !dup; j++)
			dup = v[j].type == tx->jd[i].type && v[j].len == tx->jd[i].len &&
			      !memcmp(v[j].path, tx->jd[i].path, v[j].len);
		if (!dup)
			resolve(tx, &tx->jd[i], &v[n++]);
	}
	emit(fn, tx->eng->journal_arg, tx, 0, v, n);
out:
	free(v);
	txn_jdrop_locked(tx);
}

void txn_jhead_locked(struct txn *tx)
{
	if (!tx->eng->journal_fn)
		return;
	tx->jhead = true;
	txn_jflush_locked(tx);
}

void txn_jremoved_locked(struct txn *tx)
{
	txn_journal_fn fn = tx->eng->journal_fn;

	txn_jdrop_locked(tx);
	if (fn)
		emit(fn, tx->eng->journal_arg, tx, JREC_REMOVED, NULL, 0);
}

/* ---- the dump ------------------------------------------------------------------------------- */

/* Every item of tx as it is (tx->lock held); *out is the caller's to free. */
static int collect_all(struct txn *tx, struct jval **out, size_t *n)
{
	size_t cap = HASH_CNT(hh, tx->staged) + HASH_CNT(hh, tx->reads) +
		     HASH_CNT(hh, tx->ranges) + HASH_CNT(hh, tx->expects) +
		     HASH_CNT(hh, tx->notes) + 2, k = 0;
	struct jval *v = calloc(cap, sizeof(*v));
	struct staged *s, *stmp;
	struct readrec *r, *rtmp;
	struct expectrec *x, *xtmp;
	struct note *nt, *ntmp;

	if (!v)
		return -ENOMEM;
	HASH_ITER(hh, tx->staged, s, stmp)
		resolve(tx, &(struct jref){ JI_STAGED, s->path, s->len }, &v[k++]);
	HASH_ITER(hh, tx->reads, r, rtmp)
		resolve(tx, &(struct jref){ JI_READ, r->path, r->len }, &v[k++]);
	HASH_ITER(hh, tx->ranges, r, rtmp)
		resolve(tx, &(struct jref){ JI_RANGE, r->path, r->len }, &v[k++]);
	HASH_ITER(hh, tx->expects, x, xtmp)
		resolve(tx, &(struct jref){ JI_EXPECT, x->path, x->len }, &v[k++]);
	HASH_ITER(hh, tx->notes, nt, ntmp)
		resolve(tx, &(struct jref){ JI_NOTE, nt->name, strlen(nt->name) }, &v[k++]);
	if (tx->jnote) {
		struct jref nr = { JI_NOTE, (char *)tx->jnote_name, strlen(tx->jnote_name) };

		resolve(tx, &nr, &v[k++]);
	}
	*out = v;
	*n = k;
	return 0;
}

int txn_journal_dump(struct txn_engine *eng, txn_journal_fn fn, void *arg)
{
	struct txn **all, *tx, *tmp;
	size_t n = 0, cap;
	int err = 0;

	pthread_mutex_lock(&eng->table_lock);
	cap = HASH_CNT(hh_id, eng->by_id);
	all = calloc(cap + 1, sizeof(*all));
	if (all) {
		/* In the order they entered the table. */
		HASH_ITER(hh_id, eng->by_id, tx, tmp)
			all[n++] = txn_ref(tx);
	}
	pthread_mutex_unlock(&eng->table_lock);
	if (!all) {
		fn(arg, NULL, 0);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct jval *v = NULL;
		size_t nv = 0;
		int e;

		tx = all[i];
		pthread_mutex_lock(&tx->lock);
		/* Gone from the table since (its removal record follows anyway). */
		if (tx->in_table) {
			e = collect_all(tx, &v, &nv);
			if (!e)
				e = emit(fn, arg, tx, JREC_FULL, v, nv);
			else
				fn(arg, NULL, 0);
			if (e && !err)
				err = e;
		}
		pthread_mutex_unlock(&tx->lock);
		free(v);
		txn_unref(tx);
	}
	free(all);
	return err;
}

/* ---- checking a record -------------------------------------------------------------------- */

/* Is item it (path p, value after it) one restore can take? */
static bool item_ok(const struct jitem *it, const char *p)
{
	switch (it->type) {
	case JI_STAGED:
		return it->what <= ST_RMDIR && (it->what == ST_PUT || !it->value_len) &&
		       txn_path_check(p, it->path_len) == 0 && it->path_len > 0;
	case JI_READ:
	case JI_RANGE:
		return it->what <= 1 && !it->value_len && txn_path_check(p, it->path_len) == 0;
	case JI_EXPECT:
		return it->what <= 1 + TXN_EXPECT_PRESENT && !it->value_len &&
		       (it->what != 1 + TXN_EXPECT_VERSION || it->num >= 1) &&
		       txn_path_check(p, it->path_len) == 0 && txn_path_depth(p, it->path_len) >= 3;
	case JI_NOTE:
		return it->what <= 1 && (it->what || !it->value_len) &&
		       txn_check_name(p, it->path_len) == 0 && !memchr(p, '\0', it->path_len);
	default:
		return false;
	}
}

int txn_jrec_check(const void *rec, size_t len, struct jhead *out)
{
	const unsigned char *b = rec, *p, *end;
	struct jhead h;
	uint32_t crc;

	if (!rec || len < sizeof(h))
		return -EBADMSG;
	end = b + len;
	memcpy(&h, b, sizeof(h));
	if (h.magic != JREC_MAGIC || h.version != JREC_VERSION || h.len != len || !h.id ||
	    (h.flags & ~(JREC_FULL | JREC_MORE | JREC_REMOVED | JREC_CONT)) || h.state > TXN_CONFLICT ||
	    h.state == TXN_COMMITTING || h.isolation > TXN_ISO_SERIALIZABLE ||
	    h.conflict > TXN_CONFLICT_SNAPSHOT || h.touched > 1 ||
	    h.err_key_len > TXN_KEY_MAX + 2 * TXN_NAME_MAX + 2)
		return -EBADMSG;
	crc = h.crc;
	h.crc = 0;
	if (crc != (uint32_t)crc32(crc32(0L, (const Bytef *)&h, sizeof(h)), b + sizeof(h),
				   (uInt)(len - sizeof(h))))
		return -EBADMSG;
	p = b + sizeof(h);
	if ((size_t)(end - p) < (size_t)h.name_len + h.err_key_len ||
	    txn_check_name((const char *)p, h.name_len) || p[0] == '.')
		return -EBADMSG;
	p += h.name_len + h.err_key_len;
	for (uint32_t i = 0; i < h.n_items; i++) {
		struct jitem it;

		if ((size_t)(end - p) < sizeof(it))
			return -EBADMSG;
		memcpy(&it, p, sizeof(it));
		p += sizeof(it);
		if ((size_t)(end - p) < (size_t)it.path_len + it.value_len ||
		    !item_ok(&it, (const char *)p))
			return -EBADMSG;
		p += it.path_len + it.value_len;
	}
	if (p != end)
		return -EBADMSG;
	h.crc = crc;
	*out = h;
	return 0;
}

int txn_jrec_decode(const void *rec, size_t len, struct txn_jrec_info *out)
{
	struct jhead h;
	int err = txn_jrec_check(rec, len, &h);

	memset(out, 0, sizeof(*out));
	if (err)
		return err;
	out->id = h.id;
	out->begin_ts = h.begin_ts;
	out->state = (enum txn_state)h.state;
	out->more = h.flags & JREC_MORE;
	out->removed = h.flags & JREC_REMOVED;
	return 0;
}
