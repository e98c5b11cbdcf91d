/* SPDX-License-Identifier: MIT */
/*
 * test_txn_commit.c - cmocka unit tests of the txn layer: transaction commits and
 * conflicts, timeouts, storage failures and group commit.
 * The fixture and helpers are in txnfx.c.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "blob.h"
#include "log.h"
#include "render.h"
#include "store.h"

#include "txnfx.h"

/* ==== transactions: commit ================================================================= */

static void a_committed_transaction_is_read_only_and_its_view_is_gone(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");
	struct txn_entry e;
	int64_t ts = -1;

	assert_errno(stage(f, tx, "ns/a/k", "v"), 0);
	assert_errno(stage(f, tx, "ns/a/j", "w"), 0);
	assert_errno(commit(f, tx, &ts), 0);
	assert_i64_equal(ts, 1);
	assert_status(f, tx, "ops", "2");
	assert_errno(stage(f, tx, "ns/a/k", "again"), -EROFS);
	assert_errno(txn_writable(tx), -EROFS);
	assert_errno(commit(f, tx, NULL), -EROFS);
	/* decisions.md 6: any path below a committed transaction answers EROFS. */
	assert_errno(txn_stat(f->eng, tx, "ns/a/k", 6, &e), -EROFS);
	assert_errno(txn_remove(f->eng, "t", 1), 0);
	assert_value(f, NULL, "ns/a/k", "v");
}

static void the_first_committer_wins_and_the_loser_names_the_key(void **state)
{
	struct fx *f = *state;
	struct txn *t1, *t2;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/k", "base", NULL), 0);
	t1 = begin(f, "t1");
	t2 = begin(f, "t2");
	assert_errno(stage(f, t1, "ns/a/k", "from t1"), 0);
	assert_errno(stage(f, t2, "ns/a/aaa", "untouched by t1"), 0);
	assert_errno(stage(f, t2, "ns/a/k", "from t2"), 0);
	assert_errno(commit(f, t1, &ts), 0);
	assert_i64_equal(ts, 2);
	assert_errno(commit(f, t2, &ts), -ESTALE);
	assert_i64_equal(ts, 0);

	assert_int_equal(txn_get_state(t2), TXN_CONFLICT);
	assert_status(f, t2, "state", "conflict");
	assert_status(f, t2, "error", "ESTALE");
	assert_status(f, t2, "key", "ns/a/k");
	assert_value(f, NULL, "ns/a/k", "from t1");
	assert_absent(f, NULL, "ns/a/aaa");
	assert_i64_equal(txn_engine_head(f->eng), 2);
	/* decisions.md 7: later writes and commits fail with ESTALE. */
	assert_errno(stage(f, t2, "ns/a/x", "v"), -ESTALE);
	assert_errno(commit(f, t2, NULL), -ESTALE);
	assert_errno(txn_writable(t2), -ESTALE);
	/* The note file is back, so the VFS's retry of the rename sees ESTALE again. */
	struct blob *note = NULL;

	assert_errno(txn_note_get(t2, ".commit.pending", &note), 0);
	blob_unref(note);
	/* The conflict unpinned the snapshot: a new transaction can take its place. */
	assert_errno(txn_remove(f->eng, "t2", 2), 0);
	t2 = begin(f, "t2");
	assert_errno(stage(f, t2, "ns/a/k", "retry"), 0);
	assert_errno(commit(f, t2, &ts), 0);
	assert_i64_equal(ts, 3);
}

static void a_delete_of_a_key_written_after_begin_conflicts(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	assert_errno(put(f, "ns/a/k", "v1", NULL), 0);
	tx = begin(f, "t");
	assert_errno(unstage(f, tx, "ns/a/k"), 0);
	assert_errno(put(f, "ns/a/k", "v2", NULL), 0);
	assert_errno(commit(f, tx, NULL), -ESTALE);
	assert_status(f, tx, "key", "ns/a/k");
	assert_value(f, NULL, "ns/a/k", "v2");
}

static void a_shape_clash_found_at_commit_is_a_conflict(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");

	assert_errno(stage(f, tx, "ns/a/k/x", "under k"), 0);
	assert_errno(put(f, "ns/a/k", "now a key", NULL), 0);
	assert_errno(commit(f, tx, NULL), -ENOTDIR);
	assert_int_equal(txn_get_state(tx), TXN_CONFLICT);
	assert_status(f, tx, "state", "conflict");
	assert_status(f, tx, "error", "ENOTDIR");
	assert_status(f, tx, "key", "ns/a/k/x");
	assert_absent(f, NULL, "ns/a/k/x");
	assert_i64_equal(txn_engine_head(f->eng), 1);
}

/* ==== timeouts ============================================================================= */

static void set_timeout_accepts_1_to_86400000_ms_before_the_first_op(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");

	assert_i64_equal(txn_timeout_ms(tx), 30000);
	assert_errno(txn_set_timeout(f->eng, tx, 0), -EINVAL);
	assert_errno(txn_set_timeout(f->eng, tx, -5), -EINVAL);
	assert_errno(txn_set_timeout(f->eng, tx, 86400001), -EINVAL);
	assert_i64_equal(txn_timeout_ms(tx), 30000);
	assert_errno(txn_set_timeout(f->eng, tx, 86400000), 0);
	assert_i64_equal(txn_timeout_ms(tx), 86400000);
	assert_status(f, tx, "timeout_ms", "86400000");
	assert_errno(txn_stage_mkdir(f->eng, tx, "ns/a/dir", 8), 0); /* not an op */
	assert_errno(txn_set_timeout(f->eng, tx, 600000), 0);
	assert_errno(stage(f, tx, "ns/a/k", "v"), 0);
	assert_errno(txn_set_timeout(f->eng, tx, 2000), -EBUSY);
	assert_i64_equal(txn_timeout_ms(tx), 600000);
}

static void an_expired_transaction_is_reaped_and_its_commit_fails_with_etimedout(void **state)
{
	struct fx *f = *state;
	struct txn *tx, *other = NULL;

	txn_engine_close(f->eng);
	f->eng = NULL;
	f->opt.max_open_txns = 1;
	assert_int_equal(fx_start(f), 0);
	tx = begin(f, "t");
	assert_errno(txn_begin(f->eng, "other", 5, 0, 0, &other), -EAGAIN);
	assert_errno(txn_set_timeout(f->eng, tx, 1), 0);
	/* Nobody touches the transaction: the reaper must expire it. */
	assert_int_equal(wait_state_change(tx, TXN_OPEN), TXN_EXPIRED);
	assert_status(f, tx, "state", "expired");
	assert_status(f, tx, "error", "ETIMEDOUT");
	assert_errno(stage(f, tx, "ns/a/k", "v"), -ETIMEDOUT);
	assert_errno(txn_writable(tx), -ETIMEDOUT);
	assert_errno(commit(f, tx, NULL), -ETIMEDOUT);
	struct txn_entry e;

	assert_errno(txn_stat(f->eng, tx, "ns", 2, &e), -ETIMEDOUT);
	assert_i64_equal(txn_engine_head(f->eng), 0);
	/* An expired transaction no longer counts against max_open_txns. */
	assert_errno(txn_begin(f->eng, "other", 5, 0, 0, &other), 0);
	txn_unref(other);
}

static void a_transaction_with_staged_ops_expires_and_none_of_them_commits(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	txn_engine_close(f->eng);
	f->eng = NULL;
	f->opt.txn_timeout_ms = 1; /* the engine default, so it applies from begin */
	assert_int_equal(fx_start(f), 0);
	tx = begin(f, "t");
	assert_i64_equal(txn_timeout_ms(tx), 1);
	stage(f, tx, "ns/a/k", "v"); /* may already be too late: either way */
	assert_int_equal(wait_state_change(tx, TXN_OPEN), TXN_EXPIRED);
	assert_status(f, tx, "ops", "0");
	assert_errno(commit(f, tx, NULL), -ETIMEDOUT);
	assert_absent(f, NULL, "ns/a/k");
	assert_i64_equal(txn_engine_head(f->eng), 0);
}

/* ==== storage failures ==================================================================== */

#if STATEHOUSE_FAULT_INJECTION
static void a_failed_autocommit_changes_nothing_and_a_retry_gets_the_next_ts(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/k", "v1", NULL), 0);
	txn_engine_set_fault(f->eng, 0, -ENOSPC);
	assert_errno(put(f, "ns/a/k", "v2", &ts), -ENOSPC);
	assert_i64_equal(ts, 0);
	assert_errno(put(f, "ns/a/new/deep", "x", NULL), -ENOSPC);
	assert_errno(del(f, "ns/a/k", NULL), -ENOSPC);
	assert_errno(txn_engine_check(f->eng), -EIO);
	/* Reads keep working and show the last durable state. */
	assert_value(f, NULL, "ns/a/k", "v1");
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 1);
	assert_absent(f, NULL, "ns/a/new/deep");
	assert_absent(f, NULL, "ns/a/new");
	assert_listing(f, NULL, "ns/a", "k");
	assert_i64_equal(txn_engine_head(f->eng), 1);

	txn_engine_set_fault(f->eng, 0, -EIO);
	assert_errno(put(f, "ns/a/k", "v2", NULL), -EIO);

	txn_engine_set_fault(f->eng, 0, 0);
	assert_errno(txn_engine_check(f->eng), 0);
	assert_errno(put(f, "ns/a/k", "v2", &ts), 0);
	assert_i64_equal(ts, 2);
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 2);
	restart(f);
	assert_value(f, NULL, "ns/a/k", "v2");
	assert_i64_equal(txn_engine_head(f->eng), 2);
}
#endif

#if STATEHOUSE_FAULT_INJECTION
static void a_fault_after_one_commit_lets_exactly_that_one_through(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	txn_engine_set_fault(f->eng, 1, -EIO);
	assert_errno(put(f, "ns/a/k", "1", &ts), 0);
	assert_i64_equal(ts, 1);
	assert_errno(put(f, "ns/a/k", "2", &ts), -EIO);
	assert_value(f, NULL, "ns/a/k", "1");
	txn_engine_set_fault(f->eng, 0, 0);
}
#endif

#if STATEHOUSE_FAULT_INJECTION
static void a_transaction_whose_store_write_fails_stays_open_and_can_retry(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	int64_t ts = -1;
	struct blob *note = NULL;

	assert_errno(put(f, "ns/a/k", "v1", NULL), 0);
	tx = begin(f, "t");
	assert_errno(stage(f, tx, "ns/a/k", "v2"), 0);
	assert_errno(stage(f, tx, "ns/b/new", "n"), 0);
	assert_errno(txn_note_put(tx, ".commit.pending", blob_new("why", 3)), 0);
	txn_engine_set_fault(f->eng, 0, -ENOSPC);
	assert_errno(commit(f, tx, &ts), -ENOSPC);
	assert_i64_equal(ts, 0);
	assert_int_equal(txn_get_state(tx), TXN_OPEN);
	assert_status(f, tx, "state", "open");
	assert_status(f, tx, "error", "ENOSPC");
	assert_status(f, tx, "ops", "2");
	/* Nothing changed outside; the view and the note are as before. */
	assert_value(f, NULL, "ns/a/k", "v1");
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 1);
	assert_absent(f, NULL, "ns/b/new");
	assert_listing(f, NULL, "", "ns/");
	assert_listing(f, NULL, "ns", "a/");
	assert_i64_equal(txn_engine_head(f->eng), 1);
	assert_value(f, tx, "ns/a/k", "v2");
	assert_value(f, tx, "ns/b/new", "n");
	assert_errno(txn_note_get(tx, ".commit.pending", &note), 0);
	assert_int_equal(note->len, 3);
	assert_memory_equal(note->data, "why", 3);
	blob_unref(note);

	txn_engine_set_fault(f->eng, 0, 0);
	assert_errno(commit(f, tx, &ts), 0);
	assert_i64_equal(ts, 2);
	assert_value(f, NULL, "ns/a/k", "v2");
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 2);
	assert_value(f, NULL, "ns/b/new", "n");
}
#endif

/* ==== group commit ========================================================================= */

#if STATEHOUSE_FAULT_INJECTION
static void requests_queued_together_commit_in_one_store_write(void **state)
{
	struct fx *f = *state;
	struct done d[3] = { 0 };
	struct txn_commit_req *r[3];
	static const char *const keys[] = { "ns/a/x", "ns/a/y", "ns/a/z" };

	gate_close(f);
	for (int i = 0; i < 3; i++) {
		r[i] = auto_req(TXN_AUTO_PUT, keys[i], NULL, "v", 1, &d[i]);
		txn_autocommit(f->eng, r[i]);
	}
	/* One more store write may succeed: enough for the three only if they are batched. */
	txn_engine_set_fault(f->eng, 1, -EIO);
	gate_open(f);
	for (int i = 0; i < 3; i++) {
		wait_done(&d[i]);
		assert_errno(d[i].err, 0);
		assert_i64_equal(d[i].commit_ts, i + 1);
		txn_commit_req_free(r[i]);
	}
	assert_errno(put(f, "ns/a/w", "v", NULL), -EIO);
	txn_engine_set_fault(f->eng, 0, 0);
	assert_listing(f, NULL, "ns/a", "x y z");
}
#endif

#if STATEHOUSE_FAULT_INJECTION
static void a_failed_batch_fails_every_request_in_it_and_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct done d[3] = { 0 };
	struct txn_commit_req *r[3], *treq;
	struct done td = { 0 };
	struct txn *tx;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/base", "b", NULL), 0);
	tx = begin(f, "t");
	assert_errno(stage(f, tx, "ns/t/k", "from tx"), 0);
	gate_close(f);
	r[0] = auto_req(TXN_AUTO_PUT, "ns/a/x", NULL, "1", 1, &d[0]);
	r[1] = auto_req(TXN_AUTO_DELETE, "ns/a/base", NULL, NULL, 0, &d[1]);
	r[2] = auto_req(TXN_AUTO_RENAME, "ns/a/base", "ns/a/moved", NULL, 0, &d[2]);
	treq = calloc(1, sizeof(*treq));
	assert_non_null(treq);
	treq->done = on_done;
	treq->arg = &td;
	txn_autocommit(f->eng, r[0]);
	assert_errno(txn_commit_tx(f->eng, tx, ".commit.pending", treq), 0);
	txn_autocommit(f->eng, r[1]);
	txn_autocommit(f->eng, r[2]); /* fails validation: base is deleted just before */
	txn_engine_set_fault(f->eng, 0, -ENOSPC);
	gate_open(f);
	for (int i = 0; i < 3; i++) {
		wait_done(&d[i]);
		assert_errno(d[i].err, i == 2 ? -ENOENT : -ENOSPC);
		assert_i64_equal(d[i].commit_ts, 0);
		txn_commit_req_free(r[i]);
	}
	wait_done(&td);
	assert_errno(td.err, -ENOSPC);
	txn_commit_req_free(treq);

	assert_i64_equal(txn_engine_head(f->eng), 1);
	assert_value(f, NULL, "ns/a/base", "b");
	assert_i64_equal(version_of(f, NULL, "ns/a/base"), 1);
	assert_absent(f, NULL, "ns/a/x");
	assert_absent(f, NULL, "ns/t/k");
	assert_listing(f, NULL, "ns", "a/");
	assert_int_equal(txn_get_state(tx), TXN_OPEN);

	txn_engine_set_fault(f->eng, 0, 0);
	assert_errno(commit(f, tx, &ts), 0);
	assert_i64_equal(ts, 2);
	assert_errno(del(f, "ns/a/base", &ts), 0);
	assert_i64_equal(ts, 3);
	assert_i64_equal(version_of(f, NULL, "ns/t/k"), 1);
}
#endif

static void two_transactions_in_one_batch_writing_one_key_conflict_in_queue_order(void **state)
{
	struct fx *f = *state;
	struct done d1 = { 0 }, d2 = { 0 }, d3 = { 0 };
	struct txn_commit_req *r1 = calloc(1, sizeof(*r1)), *r2 = calloc(1, sizeof(*r2));
	struct txn_commit_req *r3;
	struct txn *t1, *t2;

	assert_non_null(r1);
	assert_non_null(r2);
	t1 = begin(f, "t1");
	t2 = begin(f, "t2");
	assert_errno(stage(f, t1, "ns/a/k", "one"), 0);
	assert_errno(stage(f, t2, "ns/a/k", "two"), 0);
	gate_close(f);
	r1->done = r2->done = on_done;
	r1->arg = &d1;
	r2->arg = &d2;
	assert_errno(txn_commit_tx(f->eng, t1, ".commit.pending", r1), 0);
	assert_errno(txn_commit_tx(f->eng, t2, ".commit.pending", r2), 0);
	r3 = auto_req(TXN_AUTO_PUT, "ns/a/after", NULL, "3", 1, &d3);
	txn_autocommit(f->eng, r3);

	/* While a commit is in flight the transaction refuses everything else. */
	assert_int_equal(txn_get_state(t1), TXN_COMMITTING);
	assert_status(f, t1, "state", "committing");
	assert_errno(txn_writable(t1), -EBUSY);
	assert_errno(stage(f, t1, "ns/a/other", "x"), -EBUSY);
	assert_errno(txn_set_timeout(f->eng, t1, 100), -EBUSY);
	assert_errno(txn_remove(f->eng, "t1", 2), -EBUSY);
	struct txn_commit_req spare = { 0 };

	assert_errno(txn_commit_tx(f->eng, t1, ".commit.pending", &spare), -EBUSY);
	assert_null(spare.path);

	gate_open(f);
	wait_done(&d1);
	wait_done(&d2);
	wait_done(&d3);
	assert_errno(d1.err, 0);
	assert_i64_equal(d1.commit_ts, 1);
	assert_errno(d2.err, -ESTALE);
	assert_errno(d3.err, 0);
	assert_i64_equal(d3.commit_ts, 2);
	assert_int_equal(txn_get_state(t2), TXN_CONFLICT);
	assert_status(f, t2, "key", "ns/a/k");
	assert_value(f, NULL, "ns/a/k", "one");
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 1);
	txn_commit_req_free(r1);
	txn_commit_req_free(r2);
	txn_commit_req_free(r3);
}

/* The completion carries commit_ts as int64_t; nothing may narrow it on the way. */
static void a_commit_ts_beyond_int32_is_reported_as_success(void **state)
{
	struct fx *f = *state;
	struct store_options sopt = { .fsync = 0 };
	struct store_op op = { .path = "ns/a/k", .path_len = 6, .kind = STORE_PUT,
			       .version = 1, .value = "old", .value_len = 3 };
	struct store_event ev = { .commit_ts = INT32_MAX, .time_ns = 1, .txn = "seed",
				  .ops = &op, .n_ops = 1 };
	struct store *st = NULL;
	int64_t ts = -1;

	/* A log whose head is INT32_MAX, written directly (2^31 commits take a week). */
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(store_open(NULL, f->dir, &sopt, &st), 0);
	assert_errno(store_append(st, &ev, 1), 0);
	store_close(st);
	assert_int_equal(fx_start(f), 0);
	assert_i64_equal(txn_engine_head(f->eng), INT32_MAX);

	assert_errno(put(f, "ns/a/k", "new", &ts), 0);
	assert_i64_equal(ts, (int64_t)INT32_MAX + 1);
	assert_value(f, NULL, "ns/a/k", "new");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(a_committed_transaction_is_read_only_and_its_view_is_gone),
		T(the_first_committer_wins_and_the_loser_names_the_key),
		T(a_delete_of_a_key_written_after_begin_conflicts),
		T(a_shape_clash_found_at_commit_is_a_conflict),
		T(set_timeout_accepts_1_to_86400000_ms_before_the_first_op),
		T(an_expired_transaction_is_reaped_and_its_commit_fails_with_etimedout),
		T(a_transaction_with_staged_ops_expires_and_none_of_them_commits),
#if STATEHOUSE_FAULT_INJECTION
		T(a_failed_autocommit_changes_nothing_and_a_retry_gets_the_next_ts),
#endif
#if STATEHOUSE_FAULT_INJECTION
		T(a_fault_after_one_commit_lets_exactly_that_one_through),
#endif
#if STATEHOUSE_FAULT_INJECTION
		T(a_transaction_whose_store_write_fails_stays_open_and_can_retry),
#endif
#if STATEHOUSE_FAULT_INJECTION
		T(requests_queued_together_commit_in_one_store_write),
#endif
#if STATEHOUSE_FAULT_INJECTION
		T(a_failed_batch_fails_every_request_in_it_and_changes_nothing),
#endif
		T(two_transactions_in_one_batch_writing_one_key_conflict_in_queue_order),
		T(a_commit_ts_beyond_int32_is_reported_as_success),
	};
#undef T
	/* Injected faults and refused requests log at error level; recovery logs at info. */
	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests_name("txn-commit", tests, NULL, NULL);
}
