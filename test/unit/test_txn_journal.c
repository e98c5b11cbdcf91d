/* SPDX-License-Identifier: MIT */
/*
 * test_txn_journal.c - cmocka unit tests of the transaction journal (txn layer): the
 * records the journal hook receives, encoded bytes restored into a new engine on the same
 * data dir give the same views, status, ids, begin_ts and commit results; recovery with a
 * pin keeps the versions an old snapshot needs; a dump restores as the journal does; a
 * damaged record is refused.  The fixture and helpers are in txnfx.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"

#include "txnfx.h"

/* ---- a journal kept in memory --------------------------------------------------------- */

struct cap {
	pthread_mutex_t lock;
	unsigned char **recs;
	size_t *lens;
	size_t n;
	int lost;
};

static struct cap g_cap = { PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, 0 };

static void cap_fn(void *arg, const void *rec, size_t len)
{
	struct cap *c = arg;

	pthread_mutex_lock(&c->lock);
	if (!rec) {
		c->lost++;
	} else {
		c->recs = realloc(c->recs, (c->n + 1) * sizeof(*c->recs));
		c->lens = realloc(c->lens, (c->n + 1) * sizeof(*c->lens));
		assert_non_null(c->recs);
		assert_non_null(c->lens);
		/* 8-aligned copies, as a journal in shared memory keeps them */
		c->recs[c->n] = aligned_alloc(8, (len + 7) & ~(size_t)7);
		assert_non_null(c->recs[c->n]);
		memcpy(c->recs[c->n], rec, len);
		c->lens[c->n++] = len;
	}
	pthread_mutex_unlock(&c->lock);
}

static void cap_reset(struct cap *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->recs[i]);
	free(c->recs);
	free(c->lens);
	c->recs = NULL;
	c->lens = NULL;
	c->n = 0;
	c->lost = 0;
}

static int jsetup(void **state)
{
	int err = setup(state);

	if (!err) {
		cap_reset(&g_cap);
		txn_engine_set_journal(((struct fx *)*state)->eng, cap_fn, &g_cap);
	}
	return err;
}

static int jteardown(void **state)
{
	cap_reset(&g_cap);
	return teardown(state);
}

/* The oldest begin_ts of the records (what the lead computes as the pin). */
static int64_t pin_of(const struct cap *c, size_t upto)
{
	int64_t pin = INT64_MAX;

	for (size_t i = 0; i < upto; i++) {
		struct txn_jrec_info in;

		assert_errno(txn_jrec_decode(c->recs[i], c->lens[i], &in), 0);
		if (in.begin_ts < pin)
			pin = in.begin_ts;
	}
	return pin;
}

/*
 * The worker dies and the next one takes over: close the engine (a stand-in for the
 * death: the store is the same), keep the first upto records of journal c (the rest
 * died with the worker), open a new engine on the same data dir with the pin (use_pin)
 * and the journal hook appending to c, restore the records in order, and start it.
 */
static void takeover_from(struct fx *f, struct cap *c, size_t upto, bool use_pin)
{
	size_t n;

	txn_engine_close(f->eng);
	f->eng = NULL;
	for (size_t i = upto; i < c->n; i++)
		free(c->recs[i]);
	c->n = upto;
	n = c->n;
	f->opt.pin = use_pin && n > 0;
	f->opt.pin_ts = use_pin ? pin_of(c, n) : 0;
	assert_errno(txn_engine_open(f->dir, &f->opt, &f->eng), 0);
	txn_engine_set_journal(f->eng, cap_fn, c);
	for (size_t i = 0; i < n; i++)
		assert_errno(txn_restore(f->eng, c->recs[i], c->lens[i]), 0);
	txn_restore_end(f->eng);
	assert_errno(txn_engine_start(f->eng), 0);
}

static void takeover(struct fx *f)
{
	takeover_from(f, &g_cap, g_cap.n, true);
}

/* The transaction called name in the new engine (a reference the fixture drops). */
static struct txn *find(struct fx *f, const char *name)
{
	struct txn *tx = txn_find(f->eng, name, strlen(name));

	assert_non_null(tx);
	assert_true(f->ntxs < MAX_TRACKED);
	f->txs[f->ntxs++] = tx;
	return tx;
}

/* ---- what a view reads ------------------------------------------------------------------ */

struct sb {
	char s[16384];
	size_t n;
};

static void sb_add(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(b->s + b->n, sizeof(b->s) - b->n, fmt, ap);
	va_end(ap);
	assert_true(k >= 0 && (size_t)k < sizeof(b->s) - b->n);
	b->n += (size_t)k;
}

/* Everything at and below path in a view: each entry's type, and for a file its stat
 * (size; with meta its version, commit_ts and time) and its value. */
static void describe(struct fx *f, struct txn *tx, const char *path, bool meta, struct sb *b)
{
	struct dirent_entry *d = NULL;
	struct txn_entry e;
	size_t n = 0;
	int err = txn_stat(f->eng, tx, path, strlen(path), &e);

	if (err) {
		sb_add(b, "%s: %s\n", path, tu_errname(err));
		return;
	}
	if (e.type == TXN_FILE) {
		struct blob *v = NULL;

		assert_errno(txn_read(f->eng, tx, path, strlen(path), &v, NULL), 0);
		sb_add(b, "%s: file %zu", path, e.size);
		if (meta)
			sb_add(b, " v%lld c%lld t%lld", (long long)e.version,
			       (long long)e.commit_ts, (long long)e.time_ns);
		sb_add(b, " '%.*s'\n", (int)v->len, (const char *)v->data);
		blob_unref(v);
		return;
	}
	sb_add(b, "%s: dir\n", path);
	assert_errno(txn_list(f->eng, tx, path, strlen(path), &d, &n), 0);
	for (size_t i = 0; i < n; i++) {
		char child[2048];

		snprintf(child, sizeof(child), "%s%s%s", path, *path ? "/" : "", d[i].name);
		describe(f, tx, child, meta, b);
	}
	dirents_free(d, n);
}

/* The status and the notes and preconditions of tx, as text. */
static void describe_tx(struct fx *f, struct txn *tx, struct sb *b)
{
	struct txn_status st;
	struct dirent_entry *d = NULL;
	size_t n = 0;
	char buf[64];

	(void)f;
	assert_errno(txn_status(tx, &st), 0);
	sb_add(b, "id %llu state %d ops %zu begin %lld timeout %lld commit %lld/%lld err %d "
		  "key %s iso %d conflict %d uid %u gid %u\n",
	       (unsigned long long)txn_id(tx), st.state, st.ops, (long long)st.begin_ts,
	       (long long)st.timeout_ms, (long long)st.commit_ts, (long long)st.commit_time_ns,
	       st.err, st.err_key ? st.err_key : "-", st.isolation, st.conflict, txn_uid(tx),
	       txn_gid(tx));
	txn_status_release(&st);
	assert_errno(txn_note_list(tx, &d, &n), 0);
	for (size_t i = 0; i < n; i++) {
		struct blob *c = NULL;

		assert_errno(txn_note_get(tx, d[i].name, &c), 0);
		sb_add(b, "note %s '%.*s'\n", d[i].name, (int)c->len, (const char *)c->data);
		blob_unref(c);
	}
	dirents_free(d, n);
	assert_errno(txn_expect_list(tx, "ns/a", 4, &d, &n), 0);
	for (size_t i = 0; i < n; i++) {
		struct txn_expect e;
		char p[512];

		snprintf(p, sizeof(p), "ns/a/%s", d[i].name);
		if (txn_expect_get(tx, p, strlen(p), &e) == 0) {
			assert_true(txn_expect_format(&e, buf, sizeof(buf)) > 0);
			sb_add(b, "expect %s %s", p, buf);
		} else {
			sb_add(b, "expect dir %s\n", p);
		}
	}
	dirents_free(d, n);
}

#define assert_same(a, b)                                                      \
	do {                                                                   \
		if (strcmp((a)->s, (b)->s) != 0)                               \
			fail_msg("before:\n%s\nafter:\n%s", (a)->s, (b)->s);   \
	} while (0)

static int expect_set(struct txn *tx, const char *path, const char *content)
{
	struct txn_expect e;
	int err = txn_expect_parse(content, strlen(content), false, &e);

	return err ? err : txn_expect_set(tx, path, strlen(path), &e);
}

static struct blob *bl(const char *s)
{
	struct blob *b = blob_new(s, strlen(s));

	assert_non_null(b);
	return b;
}

/* ==== every kind of change ================================================================== */

/* One transaction that went through every staging call, a timeout, preconditions and
 * notes: after the takeover it reads the same, has the same status, and commits the
 * same state. */
static void every_kind_of_change_restores_the_same_view_and_commit(void **state)
{
	struct fx *f = *state;
	struct txn_undo *u1 = NULL, *u2 = NULL;
	struct sb before = { 0 }, after = { 0 }, txb = { 0 }, txa = { 0 }, live = { 0 };
	struct txn *tx;
	uint64_t id;

	assert_errno(put(f, "ns/a/old", "o", NULL), 0);
	assert_errno(put(f, "ns/a/gone", "g", NULL), 0);
	assert_errno(put(f, "ns/a/d/x", "dx", NULL), 0);
	assert_errno(put(f, "ns/a/d/y", "dy", NULL), 0);
	assert_errno(put(f, "ns/a/p", "P", NULL), 0);
	assert_errno(put(f, "ns/a/q", "Q", NULL), 0);
	tx = begin(f, "t");
	id = txn_id(tx);
	assert_errno(txn_set_timeout(f->eng, tx, 600000), 0);
	assert_errno(stage(f, tx, "ns/a/new", "n"), 0);
	/* a writer's staging patched in pieces: the journal holds the whole value */
	assert_errno(txn_stage_put_undo(f->eng, tx, "ns/a/w", 6, bl("ab"), &u1), 0);
	assert_errno(txn_stage_patch(f->eng, tx, "ns/a/w", 6, 2, "cdef", 4, 6, u1), 0);
	txn_undo_free(u1);
	/* a writer's staging undone */
	assert_errno(txn_stage_put_undo(f->eng, tx, "ns/a/old", 8, bl("xx"), &u2), 0);
	txn_stage_undo(f->eng, tx, &u2);
	assert_errno(unstage(f, tx, "ns/a/gone"), 0);
	assert_errno(txn_stage_rename(f->eng, tx, "ns/a/new", 8, "ns/a/moved", 10, false), 0);
	assert_errno(txn_stage_rename(f->eng, tx, "ns/a/d", 6, "ns/a/e", 6, false), 0);
	assert_errno(txn_stage_exchange(f->eng, tx, "ns/a/p", 6, "ns/a/q", 6), 0);
	assert_errno(txn_stage_mkdir(f->eng, tx, "ns/a/m", 6), 0);
	assert_errno(txn_stage_mkdir(f->eng, tx, "ns/a/r", 6), 0);
	assert_errno(txn_stage_rmdir(f->eng, tx, "ns/a/r", 6), 0);
	assert_errno(expect_set(tx, "ns/a/old", "1"), 0);
	assert_errno(expect_set(tx, "ns/a/none", "absent"), 0);
	assert_errno(txn_expect_remove(tx, "ns/a/none", 9), 0);
	assert_errno(expect_set(tx, "ns/a/zz", "present"), 0);
	assert_errno(txn_expect_remove(tx, "ns/a/zz", 7), 0);
	assert_errno(txn_expect_mkdir(f->eng, tx, "ns/a/ed", 7), 0);
	assert_errno(txn_note_put(tx, "memo", bl("hello")), 0);
	assert_errno(txn_note_put(tx, "tmp", bl("t")), 0);
	assert_errno(txn_note_remove(tx, "tmp"), 0);
	assert_errno(txn_note_put(tx, "draft", bl("d")), 0);
	assert_errno(txn_note_rename(tx, "draft", "final"), 0);
	assert_errno(txn_note_put(tx, ".commit.pending", bl("why")), 0);

	describe(f, tx, "", false, &before);
	describe_tx(f, tx, &txb);
	assert_int_equal(g_cap.lost, 0);
	takeover(f);
	tx = find(f, "t");
	assert_int_equal(txn_id(tx), id);
	describe(f, tx, "", false, &after);
	describe_tx(f, tx, &txa);
	assert_same(&before, &after);
	assert_same(&txb, &txa);
	assert_true(txn_expires_in_ms(tx) > 30000); /* its own timeout, not the default */

	/* It commits what it showed. */
	assert_errno(commit(f, tx, NULL), 0);
	describe(f, NULL, "", false, &live);
	assert_same(&before, &live);
}

/* ==== ids, begin_ts, and what a takeover keeps ============================================== */

static void ids_and_begin_ts_are_kept_and_new_ids_go_above(void **state)
{
	struct fx *f = *state;
	struct txn *a, *b, *c;
	uint64_t ida, idb;
	int64_t ba, bb;

	a = begin(f, "a");
	assert_errno(put(f, "ns/a/k", "1", NULL), 0);
	b = begin(f, "b");
	ida = txn_id(a);
	idb = txn_id(b);
	ba = txn_begin_ts(a);
	bb = txn_begin_ts(b);
	assert_true(bb > ba);
	takeover(f);
	a = find(f, "a");
	b = find(f, "b");
	assert_int_equal(txn_id(a), ida);
	assert_int_equal(txn_id(b), idb);
	assert_i64_equal(txn_begin_ts(a), ba);
	assert_i64_equal(txn_begin_ts(b), bb);
	assert_int_equal(txn_get_state(a), TXN_OPEN);
	assert_ptr_equal(txn_find_id(f->eng, ida), a);
	txn_unref(a);
	c = begin(f, "c");
	assert_true(txn_id(c) > idb);
	/* a's snapshot is before the put, b's after it */
	assert_absent(f, a, "ns/a/k");
	assert_value(f, b, "ns/a/k", "1");
}

/* ==== conflicts across the takeover ========================================================== */

/* A commit made between the begin and the takeover still makes the restored transaction
 * fail its commit (first committer wins), and the view is its snapshot's, even with a
 * snapshot file written after its begin_ts. */
static void a_write_conflict_from_before_the_takeover_still_fails_the_commit(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	int64_t head;
	char snap[1024];

	f->opt.snapshot_interval = 1;
	restart(f);
	txn_engine_set_journal(f->eng, cap_fn, &g_cap);
	assert_errno(put(f, "ns/a/k", "1", NULL), 0);
	assert_errno(put(f, "ns/a/j", "old", NULL), 0);
	tx = begin(f, "t");
	assert_errno(stage(f, tx, "ns/a/k", "mine"), 0);
	assert_errno(put(f, "ns/a/k", "theirs", NULL), 0);
	assert_errno(put(f, "ns/a/j", "new", &head), 0);
	takeover(f); /* the close writes a snapshot at the head, newer than its begin_ts */
	snprintf(snap, sizeof(snap), "%s/snapshots/snap-%020lld.bin", f->dir, (long long)head);
	assert_int_equal(access(snap, F_OK), 0);
	assert_true(txn_begin_ts(tx) < head);
	tx = find(f, "t");
	assert_value(f, tx, "ns/a/j", "old");
	assert_value(f, tx, "ns/a/k", "mine");
	assert_value(f, NULL, "ns/a/j", "new");
	assert_errno(commit(f, tx, NULL), -ESTALE);
	assert_status(f, tx, "state", "conflict");
	assert_status(f, tx, "key", "ns/a/k");
	assert_value(f, NULL, "ns/a/k", "theirs");
}

/* A serializable transaction's read, changed by a commit before the takeover, fails its
 * commit after it (the replay rebuilds what the check rests on). */
static void a_serializable_read_conflict_survives_the_takeover(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	char *v;
	int err = 0;

	assert_errno(put(f, "ns/a/r", "1", NULL), 0);
	tx = begin(f, "t");
	assert_errno(txn_set_isolation(tx, TXN_ISO_SERIALIZABLE), 0);
	v = get(f, tx, "ns/a/r", &err, NULL);
	assert_errno(err, 0);
	free(v);
	assert_errno(stage(f, tx, "ns/a/w", "x"), 0);
	assert_errno(put(f, "ns/a/r", "2", NULL), 0);
	takeover(f);
	tx = find(f, "t");
	assert_int_equal(txn_get_isolation(tx), TXN_ISO_SERIALIZABLE);
	assert_errno(commit(f, tx, NULL), -ESTALE);
	assert_status(f, tx, "conflict", "read");
	assert_status(f, tx, "key", "ns/a/r");
	assert_absent(f, NULL, "ns/a/w");
}

/* Without the pin, the chains hold only the head: a transaction begun before a later
 * commit cannot be served exactly and fails with a clear status, never a wrong view. */
static void a_snapshot_the_engine_cannot_serve_fails_the_transaction(void **state)
{
	struct fx *f = *state;
	struct txn *tx, *fresh;

	assert_errno(put(f, "ns/a/j", "old", NULL), 0);
	tx = begin(f, "t");
	fresh = begin(f, "fresh");
	(void)fresh;
	assert_errno(put(f, "ns/a/j", "new", NULL), 0);
	fresh = begin(f, "late"); /* begun at the head: servable */
	takeover_from(f, &g_cap, g_cap.n, false);
	tx = find(f, "t");
	assert_int_equal(txn_get_state(tx), TXN_CONFLICT);
	assert_errno(txn_stat(f->eng, tx, "ns/a/j", 6, &(struct txn_entry){ 0 }), -ESTALE);
	assert_status(f, tx, "state", "conflict");
	assert_status(f, tx, "error", "ESTALE");
	fresh = find(f, "late");
	assert_int_equal(txn_get_state(fresh), TXN_OPEN);
	assert_value(f, fresh, "ns/a/j", "new");
	/* the failure is journaled too: a later takeover restores it as failed */
	{
		struct txn_jrec_info in;
		bool seen = false;

		for (size_t i = 0; i < g_cap.n; i++) {
			assert_errno(txn_jrec_decode(g_cap.recs[i], g_cap.lens[i], &in), 0);
			seen |= in.id == txn_id(tx) && in.state == TXN_CONFLICT;
		}
		assert_true(seen);
	}
}

/* ==== finished transactions, commits in doubt ================================================ */

static void finished_transactions_restore_with_their_outcome(void **state)
{
	struct fx *f = *state;
	struct txn *ok, *bad;
	struct sb b1 = { 0 }, b2 = { 0 }, a1 = { 0 }, a2 = { 0 };
	int64_t ts;
	char want[32];

	ok = begin(f, "ok");
	bad = begin(f, "bad");
	assert_errno(stage(f, ok, "ns/a/k", "1"), 0);
	assert_errno(stage(f, bad, "ns/a/k", "2"), 0);
	assert_errno(commit(f, ok, &ts), 0);
	assert_errno(commit(f, bad, NULL), -ESTALE);
	describe_tx(f, ok, &b1);
	describe_tx(f, bad, &b2);
	takeover(f);
	ok = find(f, "ok");
	bad = find(f, "bad");
	describe_tx(f, ok, &a1);
	describe_tx(f, bad, &a2);
	assert_same(&b1, &a1);
	assert_same(&b2, &a2);
	snprintf(want, sizeof(want), "%lld", (long long)ts);
	assert_status(f, ok, "commit_ts", want);
	assert_int_equal(txn_get_state(ok), TXN_COMMITTED);
	assert_errno(txn_stat(f->eng, ok, "ns/a/k", 6, &(struct txn_entry){ 0 }), -EROFS);
}

/* A commit the store holds but whose outcome the journal lacks (the worker died after
 * the fsync): the caller marks it committed; the transaction reads as committed. */
static void a_commit_in_doubt_is_marked_committed(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	size_t upto;
	int64_t ts;

	tx = begin(f, "t");
	assert_errno(stage(f, tx, "ns/a/k", "1"), 0);
	upto = g_cap.n; /* the journal as it was when the commit was asked for */
	assert_errno(commit(f, tx, &ts), 0);
	takeover_from(f, &g_cap, upto, true);
	tx = find(f, "t");
	assert_int_equal(txn_get_state(tx), TXN_OPEN);
	assert_errno(txn_restore_committed(f->eng, txn_id(tx) + 100, ts, 1, NULL), -ENOENT);
	assert_errno(txn_restore_committed(f->eng, txn_id(tx), ts, 12345, ".commit.pending"), 0);
	assert_int_equal(txn_get_state(tx), TXN_COMMITTED);
	assert_status(f, tx, "state", "committed");
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 1); /* committed once */
	assert_errno(txn_restore_committed(f->eng, txn_id(tx), ts, 12345, NULL), 0);
	assert_errno(txn_restore_committed(f->eng, txn_id(tx), ts + 1, 12345, NULL), -EINVAL);
	assert_errno(txn_note_get(tx, ".commit.pending", &(struct blob *){ NULL }), -ENOENT);
}

/* ==== dump, groups, damage ===================================================================== */

static void a_dump_restores_as_the_journal_does(void **state)
{
	struct fx *f = *state;
	struct cap dump = { PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, 0 };
	struct sb j = { 0 }, d = { 0 }, jt = { 0 }, dt = { 0 };
	struct txn *a, *b;

	assert_errno(put(f, "ns/a/x", "1", NULL), 0);
	a = begin(f, "a");
	b = begin(f, "b");
	assert_errno(txn_set_isolation(b, TXN_ISO_SERIALIZABLE), 0);
	assert_errno(stage(f, a, "ns/a/k", "1"), 0);
	assert_errno(stage(f, a, "ns/a/k", "2"), 0);
	assert_errno(unstage(f, a, "ns/a/x"), 0);
	assert_errno(expect_set(a, "ns/a/x", "1"), 0);
	assert_errno(txn_note_put(a, "n", bl("note")), 0);
	free(listing(f, b, "ns/a", &(int){ 0 }));
	assert_errno(stage(f, b, "ns/a/b", "B"), 0);
	assert_errno(commit(f, begin(f, "done"), NULL), 0);
	assert_errno(txn_journal_dump(f->eng, cap_fn, &dump), 0);

	/* from the journal */
	takeover(f);
	describe(f, find(f, "a"), "", true, &j);
	describe_tx(f, find(f, "a"), &jt);
	describe_tx(f, find(f, "b"), &jt);
	describe_tx(f, find(f, "done"), &jt);
	/* from the dump, into a new engine on the same log (the journal, rewritten) */
	takeover_from(f, &dump, dump.n, true);
	describe(f, find(f, "a"), "", true, &d);
	describe_tx(f, find(f, "a"), &dt);
	describe_tx(f, find(f, "b"), &dt);
	describe_tx(f, find(f, "done"), &dt);
	assert_same(&j, &d);
	assert_same(&jt, &dt);
	/* b's listing is in its read set: a change under it fails b */
	assert_errno(put(f, "ns/a/other", "o", NULL), 0);
	assert_errno(commit(f, find(f, "b"), NULL), -ESTALE);
	assert_status(f, find(f, "b"), "conflict", "read");
	cap_reset(&dump);
}

/* A commit in flight is journaled as open with the note it took: a dump made while the
 * committer holds it restores the transaction open, note and all, for the resent rename. */
static void a_dump_during_a_commit_keeps_the_note_it_took(void **state)
{
	struct fx *f = *state;
	struct cap dump = { PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, 0 };
	struct txn_commit_req *req = calloc(1, sizeof(*req));
	struct done d = { 0 };
	struct blob *note = NULL;
	struct txn *tx;

	tx = begin(f, "t");
	assert_errno(stage(f, tx, "ns/a/k", "1"), 0);
	assert_errno(txn_note_put(tx, ".commit.pending", bl("why")), 0);
	gate_close(f);
	assert_non_null(req);
	req->done = on_done;
	req->arg = &d;
	assert_errno(txn_commit_tx(f->eng, tx, ".commit.pending", req), 0);
	assert_int_equal(txn_get_state(tx), TXN_COMMITTING);
	assert_errno(txn_journal_dump(f->eng, cap_fn, &dump), 0);
	gate_open(f);
	wait_done(&d);
	assert_errno(d.err, 0);
	txn_commit_req_free(req);
	takeover_from(f, &dump, dump.n, true);
	tx = find(f, "t");
	assert_int_equal(txn_get_state(tx), TXN_OPEN);
	assert_errno(txn_note_get(tx, ".commit.pending", &note), 0);
	assert_int_equal(note->len, 3);
	assert_memory_equal(note->data, "why", 3);
	blob_unref(note);
	cap_reset(&dump);
}

/* A change too big for one record is a group; without its last record none of it is
 * restored. */
static void a_change_cut_into_records_restores_whole_or_not_at_all(void **state)
{
	struct fx *f = *state;
	struct txn_jrec_info in;
	struct txn *tx;
	char path[64], val[64];
	size_t upto;

	f->opt.max_value_bytes = 64;
	restart(f);
	txn_engine_set_journal(f->eng, cap_fn, &g_cap);
	tx = begin(f, "t");
	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	for (int i = 0; i < 200; i++) {
		snprintf(path, sizeof(path), "ns/a/d/k%03d", i);
		assert_errno(stage(f, tx, path, val), 0);
	}
	upto = g_cap.n;
	assert_errno(txn_stage_rename(f->eng, tx, "ns/a/d", 6, "ns/a/e", 6, false), 0);
	assert_true(g_cap.n > upto + 1); /* a group */
	assert_errno(txn_jrec_decode(g_cap.recs[upto], g_cap.lens[upto], &in), 0);
	assert_true(in.more);
	assert_errno(txn_jrec_decode(g_cap.recs[g_cap.n - 1], g_cap.lens[g_cap.n - 1], &in), 0);
	assert_false(in.more);
	for (size_t i = upto; i < g_cap.n; i++)
		assert_true(g_cap.lens[i] <= TXN_JREC_MAX(64));

	/* the journal ends before the group's last record */
	takeover_from(f, &g_cap, g_cap.n - 1, true);
	tx = find(f, "t");
	assert_value(f, tx, "ns/a/d/k000", val);
	assert_value(f, tx, "ns/a/d/k199", val);
	assert_absent(f, tx, "ns/a/e/k000");
	assert_errno(txn_stage_rename(f->eng, tx, "ns/a/d", 6, "ns/a/e", 6, false), 0);
	takeover(f);
	tx = find(f, "t");
	assert_absent(f, tx, "ns/a/d/k000");
	assert_value(f, tx, "ns/a/e/k000", val);
	assert_value(f, tx, "ns/a/e/k199", val);
}

static void a_damaged_record_is_refused_and_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct txn_jrec_info in;
	unsigned char *rec;
	size_t len;

	begin(f, "t");
	assert_true(g_cap.n >= 1);
	len = g_cap.lens[0];
	rec = aligned_alloc(8, (len + 7) & ~(size_t)7);
	assert_non_null(rec);
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(txn_engine_open(f->dir, &f->opt, &f->eng), 0);
	for (size_t i = 0; i < len; i++) {
		memcpy(rec, g_cap.recs[0], len);
		rec[i] ^= 0x40;
		assert_errno(txn_jrec_decode(rec, len, &in), -EBADMSG);
		assert_errno(txn_restore(f->eng, rec, len), -EBADMSG);
	}
	memcpy(rec, g_cap.recs[0], len);
	assert_errno(txn_restore(f->eng, rec, len - 1), -EBADMSG);
	assert_errno(txn_restore(f->eng, rec, 3), -EBADMSG);
	assert_errno(txn_restore(f->eng, NULL, 0), -EBADMSG);
	assert_null(txn_find(f->eng, "t", 1));
	assert_errno(txn_restore(f->eng, rec, len), 0);
	assert_non_null(f->txs[f->ntxs] = txn_find(f->eng, "t", 1));
	f->ntxs++;
	free(rec);
	assert_errno(txn_engine_start(f->eng), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			every_kind_of_change_restores_the_same_view_and_commit, jsetup,
			jteardown),
		cmocka_unit_test_setup_teardown(
			ids_and_begin_ts_are_kept_and_new_ids_go_above, jsetup, jteardown),
		cmocka_unit_test_setup_teardown(
			a_write_conflict_from_before_the_takeover_still_fails_the_commit, jsetup,
			jteardown),
		cmocka_unit_test_setup_teardown(
			a_serializable_read_conflict_survives_the_takeover, jsetup, jteardown),
		cmocka_unit_test_setup_teardown(
			a_snapshot_the_engine_cannot_serve_fails_the_transaction, jsetup,
			jteardown),
		cmocka_unit_test_setup_teardown(
			finished_transactions_restore_with_their_outcome, jsetup, jteardown),
		cmocka_unit_test_setup_teardown(a_commit_in_doubt_is_marked_committed, jsetup,
						jteardown),
		cmocka_unit_test_setup_teardown(a_dump_restores_as_the_journal_does, jsetup,
						jteardown),
		cmocka_unit_test_setup_teardown(
			a_dump_during_a_commit_keeps_the_note_it_took, jsetup, jteardown),
		cmocka_unit_test_setup_teardown(
			a_change_cut_into_records_restores_whole_or_not_at_all, jsetup, jteardown),
		cmocka_unit_test_setup_teardown(
			a_damaged_record_is_refused_and_changes_nothing, jsetup, jteardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
