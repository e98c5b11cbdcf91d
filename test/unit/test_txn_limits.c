/* SPDX-License-Identifier: MIT */
/*
 * test_txn_limits.c - cmocka unit tests of the txn layer's limits on one user: transactions
 * per user, staged bytes per transaction and per user, the largest timeout, and finished
 * transactions leaving the table after txn_linger_ms.  The fixture is in txnfx.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blob.h"
#include "log.h"

#include "txnfx.h"

#define UID_A 1000
#define UID_B 1001

/* Restart the fixture's engine with the limits of opt. */
static void with_options(struct fx *f, const struct txn_options *opt)
{
	f->opt = *opt;
	restart(f);
}

static int begin_as(struct fx *f, const char *name, uint32_t uid, struct txn **out)
{
	int err = txn_begin(f->eng, name, strlen(name), uid, uid, out);

	if (!err) {
		assert_true(f->ntxs < MAX_TRACKED);
		f->txs[f->ntxs++] = *out;
	}
	return err;
}

static uint64_t refused(struct fx *f, enum txn_refusal why)
{
	struct txn_stats st;

	txn_engine_stats(f->eng, &st);
	return st.refused[why];
}

/* A value of n bytes of 'x'. */
static int stage_n(struct fx *f, struct txn *tx, const char *path, size_t n)
{
	char *v = malloc(n + 1);
	int err;

	assert_non_null(v);
	memset(v, 'x', n);
	err = txn_stage_put(f->eng, tx, path, strlen(path), blob_new(v, n));
	free(v);
	return err;
}

static void one_user_may_hold_max_txns_per_user_and_finished_ones_count(void **state)
{
	struct fx *f = *state;
	struct txn_options o = default_opt;
	struct txn *a1, *a2, *a3, *b1, *r1;

	o.max_txns_per_user = 2;
	o.exempt_uid = 4242;
	with_options(f, &o);
	assert_errno(begin_as(f, "a1", UID_A, &a1), 0);
	assert_errno(begin_as(f, "a2", UID_A, &a2), 0);
	assert_errno(begin_as(f, "a3", UID_A, &a3), -EDQUOT);
	assert_null(txn_find(f->eng, "a3", 2));
	/* Another user, root and the exempt user are not held back by it. */
	assert_errno(begin_as(f, "b1", UID_B, &b1), 0);
	assert_errno(begin_as(f, "r1", 0, &r1), 0);
	assert_errno(begin_as(f, "r2", 0, &r1), 0);
	assert_errno(begin_as(f, "x1", 4242, &r1), 0);
	assert_errno(begin_as(f, "x2", 4242, &r1), 0);
	/* A committed transaction still counts until it leaves the table. */
	assert_errno(stage(f, a1, "ns/a/k", "v"), 0);
	assert_errno(commit(f, a1, NULL), 0);
	assert_errno(begin_as(f, "a3", UID_A, &a3), -EDQUOT);
	assert_i64_equal((int64_t)refused(f, TXN_REFUSED_USER_TXNS), 2);
	assert_errno(txn_remove(f->eng, "a1", 2), 0);
	assert_errno(begin_as(f, "a3", UID_A, &a3), 0);
	assert_i64_equal((int64_t)refused(f, TXN_REFUSED_OPEN_TXNS), 0);
}

static void max_open_txns_refusals_are_counted_as_open_txns(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	char name[16];

	for (int i = 0; i < (int)default_opt.max_open_txns; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		assert_errno(begin_as(f, name, 0, &tx), 0);
	}
	assert_errno(begin_as(f, "more", 0, &tx), -EAGAIN);
	assert_i64_equal((int64_t)refused(f, TXN_REFUSED_OPEN_TXNS), 1);
}

static void a_timeout_over_max_txn_timeout_ms_fails_with_einval(void **state)
{
	struct fx *f = *state;
	struct txn_options o = default_opt;
	struct txn *tx;

	o.max_txn_timeout_ms = 40000;
	with_options(f, &o);
	tx = begin(f, "t");
	assert_errno(txn_set_timeout(f->eng, tx, 40001), -EINVAL);
	assert_i64_equal(txn_timeout_ms(tx), 30000);
	assert_errno(txn_set_timeout(f->eng, tx, 40000), 0);
	assert_i64_equal(txn_timeout_ms(tx), 40000);
	assert_i64_equal((int64_t)refused(f, TXN_REFUSED_TIMEOUT), 1);
	/* Without a bound of its own the engine keeps the old one, a day. */
	with_options(f, &default_opt);
	tx = begin(f, "u");
	assert_errno(txn_set_timeout(f->eng, tx, 86400001), -EINVAL);
	assert_errno(txn_set_timeout(f->eng, tx, 86400000), 0);
}

static void staging_past_max_txn_bytes_fails_with_edquot_and_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct txn_options o = default_opt;
	struct txn *tx, *other;
	char *v;
	int err = 0;

	o.max_txn_bytes = 100; /* ".commit.pending" (15) is charged from the start */
	with_options(f, &o);
	tx = begin(f, "t");
	assert_errno(stage_n(f, tx, "ns/a/k1", 40), 0);              /* 15 + 47 */
	assert_errno(stage_n(f, tx, "ns/a/k2", 40), -EDQUOT);        /* + 47 > 100 */
	assert_absent(f, tx, "ns/a/k2");
	assert_i64_equal((int64_t)refused(f, TXN_REFUSED_TXN_BYTES), 1);
	/* The room a write would need is checked the same way, in place of what is there. */
	assert_errno(txn_stage_room(f->eng, tx, "ns/a/k2", 7, 40, false), -EDQUOT);
	assert_errno(txn_stage_room(f->eng, tx, "ns/a/k1", 7, 78, false), 0);
	assert_errno(txn_stage_room(f->eng, tx, "ns/a/k1", 7, 79, false), -EDQUOT);
	/* Overwriting counts the new value instead of the old one. */
	assert_errno(stage_n(f, tx, "ns/a/k1", 78), 0);               /* 15 + 85 = 100 */
	assert_errno(stage_n(f, tx, "ns/a/k1", 79), -EDQUOT);
	v = get(f, tx, "ns/a/k1", &err, NULL);
	assert_non_null(v);
	assert_int_equal(strlen(v), 78);
	free(v);
	/* A note file counts too; a delete gives the room back. */
	assert_errno(txn_note_put(tx, "n", blob_new("x", 1)), -EDQUOT);
	assert_errno(txn_stage_delete(f->eng, tx, "ns/a/k1", 7), 0);
	assert_errno(txn_note_put(tx, "n", blob_new("xyz", 3)), 0);
	assert_errno(stage_n(f, tx, "ns/a/k2", 40), 0);
	/* Another transaction has its own bytes; the commit stages nothing new. */
	other = begin(f, "o");
	assert_errno(stage_n(f, other, "ns/a/k3", 70), 0);
	assert_errno(commit(f, tx, NULL), 0);
	assert_i64_equal(version_of(f, NULL, "ns/a/k2"), 1);
	assert_absent(f, NULL, "ns/a/k1");
}

static void a_directory_rename_past_max_txn_bytes_moves_nothing(void **state)
{
	struct fx *f = *state;
	struct txn_options o = default_opt;
	struct txn *tx;
	char v[41];

	memset(v, 'x', 40);
	v[40] = '\0';
	o.max_txn_bytes = 400;
	with_options(f, &o);
	assert_errno(put(f, "ns/a/d/k1", v, NULL), 0);
	assert_errno(put(f, "ns/a/d/k2", v, NULL), 0);
	assert_errno(put(f, "ns/a/d/k3", v, NULL), 0);
	tx = begin(f, "t");
	assert_errno(stage_n(f, tx, "ns/a/big", 200), 0);
	assert_errno(txn_stage_rename(f->eng, tx, "ns/a/d", 6, "ns/a/e", 6, false), -EDQUOT);
	assert_value(f, tx, "ns/a/d/k1", v);
	assert_value(f, tx, "ns/a/d/k3", v);
	assert_absent(f, tx, "ns/a/e/k1");
	assert_absent(f, tx, "ns/a/e/k2");
	/* With room, the same rename moves them all. */
	assert_errno(txn_stage_delete(f->eng, tx, "ns/a/big", 8), 0);
	assert_errno(txn_stage_rename(f->eng, tx, "ns/a/d", 6, "ns/a/e", 6, false), 0);
	assert_value(f, tx, "ns/a/e/k2", v);
	assert_absent(f, tx, "ns/a/d/k2");
}

static void a_users_transactions_share_max_user_txn_bytes(void **state)
{
	struct fx *f = *state;
	struct txn_options o = default_opt;
	struct txn *a1, *a2, *b1, *r1;

	o.max_user_txn_bytes = 300;
	o.exempt_uid = 4242;
	with_options(f, &o);
	assert_errno(begin_as(f, "a1", UID_A, &a1), 0);
	assert_errno(begin_as(f, "a2", UID_A, &a2), 0);
	assert_errno(stage_n(f, a1, "ns/a/k", 200), 0);
	assert_errno(stage_n(f, a2, "ns/a/k", 60), -EDQUOT);
	assert_errno(txn_stage_room(f->eng, a2, "ns/a/k", 6, 60, false), -EDQUOT);
	assert_i64_equal((int64_t)refused(f, TXN_REFUSED_USER_BYTES), 2);
	/* Other users and root are not held back by it. */
	assert_errno(begin_as(f, "b1", UID_B, &b1), 0);
	assert_errno(stage_n(f, b1, "ns/a/k", 250), 0);
	assert_errno(begin_as(f, "r1", 0, &r1), 0);
	assert_errno(stage_n(f, r1, "ns/a/k", 400), 0);
	/* What a finished transaction staged is given back (its .status stays readable). */
	assert_errno(commit(f, a1, NULL), 0);
	assert_errno(stage_n(f, a2, "ns/a/k", 200), 0);
	/* So is an aborted transaction's. */
	assert_errno(txn_remove(f->eng, "a2", 2), 0);
	assert_errno(begin_as(f, "a3", UID_A, &a1), 0);
	assert_errno(stage_n(f, a1, "ns/a/k", 250), 0);
}

/* Wait until name is gone from the table (the reaper runs every 50 ms). */
static bool wait_gone(struct fx *f, const char *name)
{
	struct timespec dl;

	deadline_in(&dl, WAIT_S);
	for (;;) {
		struct txn *tx = txn_find(f->eng, name, strlen(name));
		struct timespec now;

		if (!tx)
			return true;
		txn_unref(tx);
		clock_gettime(CLOCK_REALTIME, &now);
		if (now.tv_sec > dl.tv_sec)
			return false;
		usleep(10000);
	}
}

static void finished_transactions_leave_the_table_after_txn_linger_ms(void **state)
{
	struct fx *f = *state;
	struct txn_options o = default_opt;
	struct txn *c, *e, *open;
	struct txn_stats st;

	o.txn_linger_ms = 200;
	o.max_txns_per_user = 3;
	o.exempt_uid = 4242;
	with_options(f, &o);
	assert_errno(begin_as(f, "c", UID_A, &c), 0);
	assert_errno(begin_as(f, "e", UID_A, &e), 0);
	assert_errno(begin_as(f, "open", UID_A, &open), 0);
	assert_errno(txn_set_timeout(f->eng, open, 3600000), 0);
	assert_errno(stage(f, c, "ns/a/k", "v"), 0);
	assert_errno(commit(f, c, NULL), 0);
	assert_errno(txn_set_timeout(f->eng, e, 1), 0);
	assert_int_equal(wait_state_change(e, TXN_OPEN), TXN_EXPIRED);
	/* Still there right after it finished: .status and .commit are readable. */
	txn_engine_stats(f->eng, &st);
	assert_true(st.finished_txns >= 1);
	assert_true(wait_gone(f, "c"));
	assert_true(wait_gone(f, "e"));
	/* The held references still read what happened. */
	assert_int_equal(txn_get_state(c), TXN_COMMITTED);
	assert_int_equal(txn_get_state(e), TXN_EXPIRED);
	txn_engine_stats(f->eng, &st);
	assert_int_equal(st.finished_txns, 0);
	assert_i64_equal((int64_t)st.reaped, 2);
	assert_int_equal(st.open_txns, 1);
	/* The open one stays, and its user may begin again: the reaped ones no longer count. */
	open = txn_find(f->eng, "open", 4);
	assert_non_null(open);
	txn_unref(open);
	assert_errno(begin_as(f, "c", UID_A, &c), 0);
	assert_errno(begin_as(f, "e", UID_A, &e), 0);
	assert_errno(txn_remove(f->eng, "c", 1), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(one_user_may_hold_max_txns_per_user_and_finished_ones_count),
		T(max_open_txns_refusals_are_counted_as_open_txns),
		T(a_timeout_over_max_txn_timeout_ms_fails_with_einval),
		T(staging_past_max_txn_bytes_fails_with_edquot_and_changes_nothing),
		T(a_directory_rename_past_max_txn_bytes_moves_nothing),
		T(a_users_transactions_share_max_user_txn_bytes),
		T(finished_transactions_leave_the_table_after_txn_linger_ms),
	};
#undef T
	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests_name("txn-limits", tests, NULL, NULL);
}
