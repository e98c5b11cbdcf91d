/* SPDX-License-Identifier: MIT */
/*
 * test_txn_serial.c - cmocka unit tests of the txn layer: isolation levels (write skew
 * in snapshot mode, read and phantom conflicts in serializable mode), preconditions, the
 * sub_ts bookkeeping they rest on (requests and batches that fail give it back), and
 * the event log filtered by a key prefix.  The fixture and helpers are in txnfx.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "log.h"

#include "txnfx.h"

static struct txn *begin_iso(struct fx *f, const char *name, enum txn_isolation iso)
{
	struct txn *tx = begin(f, name);

	assert_errno(txn_set_isolation(tx, iso), 0);
	return tx;
}

static int expect(struct txn *tx, const char *path, const char *content)
{
	struct txn_expect e;
	int err = txn_expect_parse(content, strlen(content), false, &e);

	return err ? err : txn_expect_set(tx, path, strlen(path), &e);
}

static void read_value(struct fx *f, struct txn *tx, const char *path)
{
	int err = 0;
	char *v = get(f, tx, path, &err, NULL);

	assert_errno(err, 0);
	free(v);
}

/* Queue tx's commit without waiting (to put several in one batch behind a gate). */
static struct txn_commit_req *commit_async(struct fx *f, struct txn *tx, struct done *d)
{
	struct txn_commit_req *req = calloc(1, sizeof(*req));

	assert_non_null(req);
	req->done = on_done;
	req->arg = d;
	assert_errno(txn_commit_tx(f->eng, tx, ".commit.pending", req), 0);
	return req;
}

/* ==== isolation ============================================================================ */

/* Two on-call doctors: each checks that the other is on call, then goes off.  Snapshot
 * isolation lets both commit (write skew); serializable fails the second. */
static void write_skew(struct fx *f, enum txn_isolation iso, int want_second)
{
	struct txn *t1, *t2;

	assert_errno(put(f, "ns/a/alice", "on", NULL), 0);
	assert_errno(put(f, "ns/a/bob", "on", NULL), 0);
	t1 = begin_iso(f, "t1", iso);
	t2 = begin_iso(f, "t2", iso);
	read_value(f, t1, "ns/a/alice");
	read_value(f, t1, "ns/a/bob");
	read_value(f, t2, "ns/a/alice");
	read_value(f, t2, "ns/a/bob");
	assert_errno(stage(f, t1, "ns/a/alice", "off"), 0);
	assert_errno(stage(f, t2, "ns/a/bob", "off"), 0);
	assert_errno(commit(f, t1, NULL), 0);
	assert_errno(commit(f, t2, NULL), want_second);
}

static void snapshot_isolation_lets_write_skew_commit(void **state)
{
	struct fx *f = *state;

	write_skew(f, TXN_ISO_SNAPSHOT, 0);
	assert_value(f, NULL, "ns/a/alice", "off");
	assert_value(f, NULL, "ns/a/bob", "off");
}

static void serializable_fails_the_second_of_a_write_skew_naming_the_key_read(void **state)
{
	struct fx *f = *state;

	write_skew(f, TXN_ISO_SERIALIZABLE, -ESTALE);
	assert_value(f, NULL, "ns/a/alice", "off");
	assert_value(f, NULL, "ns/a/bob", "on");
	assert_status(f, f->txs[1], "state", "conflict");
	assert_status(f, f->txs[1], "key", "ns/a/alice");
	assert_status(f, f->txs[1], "conflict", "read");
	assert_status(f, f->txs[1], "isolation", "serializable");
	assert_status(f, f->txs[0], "isolation", "serializable");
}

static void the_engine_option_sets_the_isolation_of_new_transactions(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	txn_engine_close(f->eng);
	f->opt.isolation = TXN_ISO_SERIALIZABLE;
	assert_int_equal(fx_start(f), 0);
	tx = begin(f, "t");
	assert_int_equal(txn_get_isolation(tx), TXN_ISO_SERIALIZABLE);
	assert_status(f, tx, "isolation", "serializable");
	assert_errno(txn_set_isolation(tx, TXN_ISO_SNAPSHOT), 0);
	assert_int_equal(txn_get_isolation(tx), TXN_ISO_SNAPSHOT);
}

static void a_phantom_in_a_listed_directory_fails_a_serializable_commit(void **state)
{
	struct fx *f = *state;
	struct txn *t1, *snap;

	assert_errno(put(f, "ns/a/jobs/1", "x", NULL), 0);
	t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);
	snap = begin_iso(f, "snap", TXN_ISO_SNAPSHOT);
	assert_listing(f, t1, "ns/a/jobs", "1");
	assert_listing(f, snap, "ns/a/jobs", "1");
	assert_errno(put(f, "ns/a/jobs/2", "y", NULL), 0);
	assert_errno(stage(f, t1, "ns/a/count", "1"), 0);
	assert_errno(stage(f, snap, "ns/a/count2", "1"), 0);
	assert_errno(commit(f, snap, NULL), 0);
	assert_errno(commit(f, t1, NULL), -ESTALE);
	assert_status(f, t1, "key", "ns/a/jobs/2");
	assert_status(f, t1, "conflict", "read");
	assert_absent(f, NULL, "ns/a/count");
}

static void a_change_deeper_below_a_listed_directory_is_named_at_its_key(void **state)
{
	struct fx *f = *state;
	struct txn *t1;

	assert_errno(put(f, "ns/a/d/e/old", "x", NULL), 0);
	t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);
	assert_listing(f, t1, "ns/a", "d/");
	assert_errno(del(f, "ns/a/d/e/old", NULL), 0);
	assert_errno(commit(f, t1, NULL), -ESTALE);
	assert_status(f, t1, "key", "ns/a/d/e/old");
}

static void a_directory_made_below_a_listed_one_is_a_phantom_too(void **state)
{
	struct fx *f = *state;
	struct txn *t1;
	struct done d = { 0 };

	t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);
	assert_listing(f, t1, "ns/a", "");
	assert_errno(run_auto(f, auto_req(TXN_AUTO_MKDIR, "ns/a/newdir", NULL, NULL, 0, &d),
			      NULL), 0);
	assert_errno(commit(f, t1, NULL), -ESTALE);
	assert_status(f, t1, "key", "ns/a/newdir");
}

static void a_key_found_absent_and_created_since_fails_a_serializable_commit(void **state)
{
	struct fx *f = *state;
	struct txn *t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);
	struct txn_entry e;

	assert_errno(txn_stat(f->eng, t1, "ns/a/lock", 9, &e), -ENOENT);
	assert_errno(put(f, "ns/a/lock", "held", NULL), 0);
	assert_errno(stage(f, t1, "ns/a/other", "v"), 0);
	assert_errno(commit(f, t1, NULL), -ESTALE);
	assert_status(f, t1, "key", "ns/a/lock");
}

static void a_stat_of_a_key_counts_as_a_read(void **state)
{
	struct fx *f = *state;
	struct txn *t1;
	struct txn_entry e;

	assert_errno(put(f, "ns/a/k", "1", NULL), 0);
	t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);
	assert_errno(txn_stat(f->eng, t1, "ns/a/k", 6, &e), 0);
	assert_errno(put(f, "ns/a/k", "2", NULL), 0);
	assert_errno(commit(f, t1, NULL), -ESTALE);
	assert_status(f, t1, "conflict", "read");
}

static void reads_nobody_changed_and_directories_stated_do_not_fail_a_commit(void **state)
{
	struct fx *f = *state;
	struct txn *t1;
	struct txn_entry e;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/d/k", "1", NULL), 0);
	assert_errno(put(f, "ns/b/k", "1", NULL), 0);
	t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);
	read_value(f, t1, "ns/a/d/k");
	assert_errno(txn_stat(f->eng, t1, "ns/a/d", 6, &e), 0); /* a directory */
	assert_listing(f, t1, "ns/b", "k");
	/* Commits elsewhere, and below a directory only stat'ed. */
	assert_errno(put(f, "ns/a/d/other", "x", NULL), 0);
	assert_errno(put(f, "ns/c/k", "x", NULL), 0);
	assert_errno(stage(f, t1, "ns/a/out", "v"), 0);
	assert_errno(commit(f, t1, &ts), 0);
	assert_i64_equal(ts, 5);
}

static void reads_of_its_own_writes_do_not_count(void **state)
{
	struct fx *f = *state;
	struct txn *t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);

	/* Made, read and removed in the transaction: what others do to it meanwhile is
	 * no read of the snapshot. */
	assert_errno(stage(f, t1, "ns/a/tmp", "mine"), 0);
	assert_value(f, t1, "ns/a/tmp", "mine");
	assert_errno(unstage(f, t1, "ns/a/tmp"), 0);
	assert_errno(put(f, "ns/a/tmp", "theirs", NULL), 0);
	assert_errno(stage(f, t1, "ns/a/k", "v"), 0);
	assert_errno(commit(f, t1, NULL), 0);
}

static void a_key_looked_for_then_made_and_dropped_still_counts_as_read_absent(void **state)
{
	struct fx *f = *state;
	struct txn *t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);
	struct txn_entry e;

	/* A lookup before a create, then the create, then its removal: the transaction
	 * saw "no lock" and acted on it; a lock made meanwhile fails it. */
	assert_errno(txn_stat(f->eng, t1, "ns/a/lock", 9, &e), -ENOENT);
	assert_errno(stage(f, t1, "ns/a/lock", "mine"), 0);
	assert_errno(stage(f, t1, "ns/a/work", "done"), 0);
	assert_errno(unstage(f, t1, "ns/a/lock"), 0);
	assert_errno(put(f, "ns/a/lock", "theirs", NULL), 0);
	assert_errno(commit(f, t1, NULL), -ESTALE);
	assert_status(f, t1, "key", "ns/a/lock");
	assert_status(f, t1, "conflict", "read");
}

static void a_key_read_then_written_conflicts_as_a_write(void **state)
{
	struct fx *f = *state;
	struct txn *t1;

	assert_errno(put(f, "ns/a/counter", "1", NULL), 0);
	t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);
	read_value(f, t1, "ns/a/counter");
	assert_errno(stage(f, t1, "ns/a/counter", "2"), 0);
	assert_errno(put(f, "ns/a/counter", "5", NULL), 0);
	assert_errno(commit(f, t1, NULL), -ESTALE);
	assert_status(f, t1, "conflict", "write");
	assert_status(f, t1, "key", "ns/a/counter");
}

static void a_read_only_serializable_transaction_fails_on_a_stale_read(void **state)
{
	struct fx *f = *state;
	struct txn *t1;

	assert_errno(put(f, "ns/a/k", "1", NULL), 0);
	t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);
	read_value(f, t1, "ns/a/k");
	assert_errno(put(f, "ns/a/k", "2", NULL), 0);
	assert_errno(commit(f, t1, NULL), -ESTALE);
}

static void the_isolation_is_fixed_once_the_transaction_staged_or_read(void **state)
{
	struct fx *f = *state;
	struct txn *t1 = begin(f, "t1"), *t2 = begin(f, "t2"), *t3 = begin(f, "t3");
	struct txn_entry e;

	assert_int_equal(txn_get_isolation(t1), TXN_ISO_SNAPSHOT);
	assert_errno(txn_set_isolation(t1, TXN_ISO_SERIALIZABLE), 0);
	assert_errno(txn_set_isolation(t1, TXN_ISO_SNAPSHOT), 0);
	/* Looking at namespaces and agents is no read of keys. */
	assert_errno(txn_stat(f->eng, t1, "ns/a", 4, &e), 0);
	assert_errno(txn_set_isolation(t1, TXN_ISO_SERIALIZABLE), 0);
	assert_errno(stage(f, t1, "ns/a/k", "v"), 0);
	assert_errno(txn_set_isolation(t1, TXN_ISO_SNAPSHOT), -EBUSY);
	assert_errno(txn_set_isolation(t1, TXN_ISO_SERIALIZABLE), -EBUSY);
	assert_errno(txn_stat(f->eng, t2, "ns/a/k", 6, &e), -ENOENT);
	assert_errno(txn_set_isolation(t2, TXN_ISO_SERIALIZABLE), -EBUSY);
	assert_listing(f, t3, "ns", "");
	assert_errno(txn_set_isolation(t3, TXN_ISO_SERIALIZABLE), -EBUSY);
	assert_errno(commit(f, t1, NULL), 0);
	assert_errno(txn_set_isolation(t1, TXN_ISO_SNAPSHOT), -EROFS);
	assert_errno(txn_set_isolation(t2, (enum txn_isolation)7), -EINVAL);
}

static void isolation_names_parse_with_an_optional_newline(void **state)
{
	enum txn_isolation iso = TXN_ISO_SNAPSHOT;

	(void)state;
	assert_errno(txn_isolation_parse("serializable\n", 13, &iso), 0);
	assert_int_equal(iso, TXN_ISO_SERIALIZABLE);
	assert_errno(txn_isolation_parse("snapshot", 8, &iso), 0);
	assert_int_equal(iso, TXN_ISO_SNAPSHOT);
	assert_errno(txn_isolation_parse("serial", 6, &iso), -EINVAL);
	assert_errno(txn_isolation_parse("", 0, &iso), -EINVAL);
	assert_errno(txn_isolation_parse("snapshot\n\n", 10, &iso), -EINVAL);
	assert_errno(txn_isolation_parse("Snapshot", 8, &iso), -EINVAL);
	assert_string_equal(txn_isolation_name(TXN_ISO_SERIALIZABLE), "serializable");
	assert_string_equal(txn_isolation_name(TXN_ISO_SNAPSHOT), "snapshot");
}

static void a_read_set_counts_against_max_txn_bytes(void **state)
{
	struct fx *f = *state;
	struct txn *t1;
	struct txn_entry e;
	char path[32];

	txn_engine_close(f->eng);
	f->opt.max_txn_bytes = 15 + 6 * 9 + 5; /* .commit.pending and six paths */
	assert_int_equal(fx_start(f), 0);
	t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);
	for (int i = 0; i < 6; i++) {
		snprintf(path, sizeof(path), "ns/a/key%d", i); /* 9 bytes each */
		assert_errno(txn_stat(f->eng, t1, path, strlen(path), &e), -ENOENT);
	}
	assert_errno(txn_stat(f->eng, t1, "ns/a/key6", 9, &e), -EDQUOT);
	/* A read already recorded costs nothing more. */
	assert_errno(txn_stat(f->eng, t1, "ns/a/key0", 9, &e), -ENOENT);
	/* Snapshot reads record nothing. */
	assert_errno(txn_stat(f->eng, begin(f, "t2"), "ns/a/key6", 9, &e), -ENOENT);
}

/* ==== batches: one commit's changes count for the next in the same batch ================== */

static void write_skew_in_one_batch_fails_the_second_serializable_commit(void **state)
{
	struct fx *f = *state;
	struct done d1 = { 0 }, d2 = { 0 };
	struct txn_commit_req *r1, *r2;
	struct txn *t1, *t2;

	assert_errno(put(f, "ns/a/x", "1", NULL), 0);
	assert_errno(put(f, "ns/a/y", "1", NULL), 0);
	t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);
	t2 = begin_iso(f, "t2", TXN_ISO_SERIALIZABLE);
	read_value(f, t1, "ns/a/y");
	read_value(f, t2, "ns/a/x");
	assert_errno(stage(f, t1, "ns/a/x", "0"), 0);
	assert_errno(stage(f, t2, "ns/a/y", "0"), 0);
	gate_close(f);
	r1 = commit_async(f, t1, &d1);
	r2 = commit_async(f, t2, &d2);
	gate_open(f);
	wait_done(&d1);
	wait_done(&d2);
	assert_errno(d1.err, 0);
	assert_errno(d2.err, -ESTALE);
	assert_status(f, t2, "key", "ns/a/x");
	txn_commit_req_free(r1);
	txn_commit_req_free(r2);
}

/* A request that fails halfway gives back the sub_ts it raised: a serializable commit
 * behind it in the same batch sees no change where none was committed. */
static void a_failed_request_in_a_batch_leaves_no_phantom_behind(void **state)
{
	struct fx *f = *state;
	struct done d1 = { 0 }, d3 = { 0 };
	struct txn_commit_req *r1, *r3;
	struct txn *t1, *t3;

	t1 = begin(f, "t1"); /* sees no ns/a/d/k */
	assert_errno(put(f, "ns/a/d/k", "key", NULL), 0);
	/* "d/0" applies first (sorted), then "d/k/x" finds a key above it: a shape clash. */
	assert_errno(stage(f, t1, "ns/a/d/0", "v"), 0);
	assert_errno(stage(f, t1, "ns/a/d/k/x", "v"), 0);
	t3 = begin_iso(f, "t3", TXN_ISO_SERIALIZABLE);
	assert_listing(f, t3, "ns/a/d", "k");
	assert_errno(stage(f, t3, "ns/a/e", "v"), 0);
	gate_close(f);
	r1 = commit_async(f, t1, &d1);
	r3 = commit_async(f, t3, &d3);
	gate_open(f);
	wait_done(&d1);
	wait_done(&d3);
	assert_errno(d1.err, -ENOTDIR);
	assert_errno(d3.err, 0);
	txn_commit_req_free(r1);
	txn_commit_req_free(r3);
	assert_absent(f, NULL, "ns/a/d/0");
}

#if STATEHOUSE_FAULT_INJECTION
static void a_batch_the_store_refused_leaves_no_phantom_behind(void **state)
{
	struct fx *f = *state;
	struct txn *t1;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/d/k", "1", NULL), 0);
	t1 = begin_iso(f, "t1", TXN_ISO_SERIALIZABLE);
	assert_listing(f, t1, "ns/a/d", "k");
	assert_errno(stage(f, t1, "ns/a/out", "v"), 0);
	txn_engine_set_fault(f->eng, 0, -EIO);
	assert_errno(put(f, "ns/a/d/new", "x", NULL), -EIO);
	txn_engine_set_fault(f->eng, 0, 0);
	assert_errno(commit(f, t1, &ts), 0);
	assert_i64_equal(ts, 2);
}
#endif

/* ==== preconditions ======================================================================== */

static void expect_contents_parse_and_format_back(void **state)
{
	struct txn_expect e = { 0 };
	char buf[32];

	(void)state;
	assert_errno(txn_expect_parse("7\n", 2, false, &e), 0);
	assert_int_equal(e.kind, TXN_EXPECT_VERSION);
	assert_i64_equal(e.version, 7);
	assert_int_equal(txn_expect_format(&e, buf, sizeof(buf)), 2);
	assert_string_equal(buf, "7\n");
	assert_errno(txn_expect_parse("0", 1, false, &e), 0);
	assert_int_equal(e.kind, TXN_EXPECT_ABSENT);
	assert_errno(txn_expect_parse("absent\n", 7, false, &e), 0);
	assert_int_equal(e.kind, TXN_EXPECT_ABSENT);
	txn_expect_format(&e, buf, sizeof(buf));
	assert_string_equal(buf, "absent\n");
	assert_errno(txn_expect_parse("present", 7, false, &e), 0);
	assert_int_equal(e.kind, TXN_EXPECT_PRESENT);
	txn_expect_format(&e, buf, sizeof(buf));
	assert_string_equal(buf, "present\n");
	assert_errno(txn_expect_parse("9223372036854775807", 19, false, &e), 0);
	assert_i64_equal(e.version, INT64_MAX);

	assert_errno(txn_expect_parse("9223372036854775808", 19, false, &e), -EINVAL);
	assert_errno(txn_expect_parse("", 0, false, &e), -EINVAL);
	assert_errno(txn_expect_parse("\n", 1, false, &e), -EINVAL);
	assert_errno(txn_expect_parse("-1", 2, false, &e), -EINVAL);
	assert_errno(txn_expect_parse(" 7", 2, false, &e), -EINVAL);
	assert_errno(txn_expect_parse("7 ", 2, false, &e), -EINVAL);
	assert_errno(txn_expect_parse("7\n\n", 3, false, &e), -EINVAL);
	assert_errno(txn_expect_parse("1\n2", 3, false, &e), -EINVAL);
	assert_errno(txn_expect_parse("pres", 4, false, &e), -EINVAL);
	assert_errno(txn_expect_parse("presentx", 8, false, &e), -EINVAL);
	assert_errno(txn_expect_parse("yes", 3, false, &e), -EINVAL);

	/* What a write so far may still become. */
	assert_errno(txn_expect_parse("", 0, true, NULL), 0);
	assert_errno(txn_expect_parse("pres", 4, true, NULL), 0);
	assert_errno(txn_expect_parse("ab", 2, true, NULL), 0);
	assert_errno(txn_expect_parse("12", 2, true, NULL), 0);
	assert_errno(txn_expect_parse("pres\n", 5, true, NULL), -EINVAL);
	assert_errno(txn_expect_parse("x", 1, true, NULL), -EINVAL);
	assert_errno(txn_expect_parse("1a", 2, true, NULL), -EINVAL);
	assert_errno(txn_expect_parse("7\nmore", 6, true, NULL), -EINVAL);
}

/* Each form true commits, false fails with ESTALE naming the key and applies nothing. */
static void each_precondition_form_holds_or_fails_the_commit(void **state)
{
	static const struct {
		const char *key, *content;
		int want;
	} cases[] = {
		{ "ns/a/v2", "2", 0 },        { "ns/a/v2", "1", -ESTALE },
		{ "ns/a/v2", "3", -ESTALE },  { "ns/a/gone", "2", -ESTALE },
		{ "ns/a/never", "0", 0 },     { "ns/a/never", "absent", 0 },
		{ "ns/a/gone", "absent", 0 }, { "ns/a/v2", "absent", -ESTALE },
		{ "ns/a/v2", "0", -ESTALE },  { "ns/a/v2", "present", 0 },
		{ "ns/a/gone", "present", -ESTALE }, { "ns/a/never", "present", -ESTALE },
	};
	struct fx *f = *state;
	char name[16];

	assert_errno(put(f, "ns/a/v2", "1", NULL), 0);
	assert_errno(put(f, "ns/a/v2", "2", NULL), 0);
	assert_errno(put(f, "ns/a/gone", "1", NULL), 0);
	assert_errno(del(f, "ns/a/gone", NULL), 0); /* version 2, deleted */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct txn *tx;
		int64_t head = txn_engine_head(f->eng), ts = -1;

		snprintf(name, sizeof(name), "c%zu", i);
		tx = begin(f, name);
		assert_errno(expect(tx, cases[i].key, cases[i].content), 0);
		assert_errno(stage(f, tx, "ns/a/out", name), 0);
		assert_errno(commit(f, tx, &ts), cases[i].want);
		if (cases[i].want) {
			assert_i64_equal(txn_engine_head(f->eng), head);
			assert_status(f, tx, "key", cases[i].key);
			assert_status(f, tx, "conflict", "precondition");
		} else {
			assert_i64_equal(ts, head + 1);
			assert_value(f, NULL, "ns/a/out", name);
		}
		assert_errno(txn_remove(f->eng, name, strlen(name)), 0);
		f->ntxs--;
		txn_unref(f->txs[f->ntxs]);
	}
}

static void preconditions_on_several_keys_all_hold_or_nothing_applies(void **state)
{
	struct fx *f = *state;
	struct txn *ok, *bad;
	int64_t head;

	assert_errno(put(f, "ns/a/x", "1", NULL), 0);
	assert_errno(put(f, "ns/b/y", "1", NULL), 0);
	ok = begin(f, "ok");
	assert_errno(expect(ok, "ns/a/x", "1\n"), 0);
	assert_errno(expect(ok, "ns/b/y", "present\n"), 0);
	assert_errno(expect(ok, "ns/b/z", "absent\n"), 0);
	assert_errno(stage(f, ok, "ns/a/x", "2"), 0);
	assert_errno(stage(f, ok, "ns/b/z", "new"), 0);
	assert_errno(commit(f, ok, NULL), 0);
	assert_value(f, NULL, "ns/a/x", "2");
	assert_value(f, NULL, "ns/b/z", "new");

	bad = begin(f, "bad");
	head = txn_engine_head(f->eng);
	assert_errno(expect(bad, "ns/a/x", "2"), 0);
	assert_errno(expect(bad, "ns/b/y", "1"), 0);
	assert_errno(expect(bad, "ns/b/z", "absent"), 0); /* no longer true */
	assert_errno(stage(f, bad, "ns/a/x", "3"), 0);
	assert_errno(unstage(f, bad, "ns/b/y"), 0);
	assert_errno(commit(f, bad, NULL), -ESTALE);
	assert_status(f, bad, "key", "ns/b/z");
	assert_status(f, bad, "conflict", "precondition");
	assert_i64_equal(txn_engine_head(f->eng), head);
	assert_value(f, NULL, "ns/a/x", "2");
	assert_value(f, NULL, "ns/b/y", "1");
}

static void a_precondition_sees_commits_made_after_the_transaction_began(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");

	/* The check is against the head at commit, not the snapshot. */
	assert_errno(expect(tx, "ns/a/k", "1"), 0);
	assert_errno(stage(f, tx, "ns/a/other", "v"), 0);
	assert_errno(put(f, "ns/a/k", "made later", NULL), 0);
	assert_errno(commit(f, tx, NULL), 0);
}

static void preconditions_alone_commit_an_empty_transaction(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/k", "1", NULL), 0);
	assert_errno(expect(tx, "ns/a/k", "present"), 0);
	assert_errno(commit(f, tx, &ts), 0);
	assert_i64_equal(ts, 2);
}

static void the_preconditions_of_a_transaction_read_back_list_and_go(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	struct dirent_entry *d = NULL;
	struct txn_expect e = { 0 }, seven = { TXN_EXPECT_VERSION, 7 };
	enum txn_type type;
	size_t n = 0;

	assert_errno(put(f, "ns/a/dir/k", "1", NULL), 0);
	tx = begin(f, "t");
	assert_errno(expect(tx, "ns/a/k", "7"), 0);
	assert_errno(expect(tx, "ns/a/deep/er/k", "absent"), 0);
	assert_errno(txn_expect_get(tx, "ns/a/k", 6, &e), 0);
	assert_int_equal(e.kind, TXN_EXPECT_VERSION);
	assert_i64_equal(e.version, 7);
	assert_errno(txn_expect_get(tx, "ns/a/none", 9, &e), -ENOENT);
	assert_errno(txn_expect_list(tx, "ns/a", 4, &d, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(d[0].name, "deep");
	assert_int_equal(d[0].type, TXN_DIR);
	assert_string_equal(d[1].name, "k");
	assert_int_equal(d[1].type, TXN_FILE);
	dirents_free(d, n);

	assert_errno(txn_expect_stat(f->eng, tx, "", 0, &type), 0);
	assert_int_equal(type, TXN_DIR);
	assert_errno(txn_expect_stat(f->eng, tx, "anyns/anyagent", 14, &type), 0);
	assert_int_equal(type, TXN_DIR);
	assert_errno(txn_expect_stat(f->eng, tx, "ns/a/k", 6, &type), 0);
	assert_int_equal(type, TXN_FILE);
	assert_errno(txn_expect_stat(f->eng, tx, "ns/a/deep/er", 12, &type), 0);
	assert_int_equal(type, TXN_DIR);
	/* A directory of the view is one of .expect, and stat'ing it there reads nothing. */
	assert_errno(txn_expect_stat(f->eng, tx, "ns/a/dir", 8, &type), 0);
	assert_int_equal(type, TXN_DIR);
	assert_errno(txn_expect_stat(f->eng, tx, "ns/a/nodir", 10, &type), -ENOENT);
	assert_errno(txn_expect_mkdir(f->eng, tx, "ns/a/nodir", 10), 0);
	assert_errno(txn_expect_stat(f->eng, tx, "ns/a/nodir", 10, &type), 0);
	assert_int_equal(type, TXN_DIR);
	assert_errno(txn_expect_mkdir(f->eng, tx, "ns/a/nodir", 10), -EEXIST);
	assert_errno(txn_expect_mkdir(f->eng, tx, "ns/a", 4), -EEXIST);
	assert_errno(txn_set_isolation(tx, TXN_ISO_SERIALIZABLE), 0);

	/* Shapes: a key is not a directory of .expect, nor below a key. */
	assert_errno(txn_expect_set(tx, "ns/a/k/x", 8, &seven), -ENOTDIR);
	assert_errno(txn_expect_set(tx, "ns/a/deep/er", 12, &seven), -EISDIR);
	assert_errno(txn_expect_set(tx, "ns/a/nodir", 10, &seven), -EISDIR);
	assert_errno(txn_expect_set(tx, "ns/a", 4, &seven), -EINVAL);
	assert_errno(txn_expect_set(tx, ".x/a/k", 6, &seven), -EINVAL);
	e = (struct txn_expect){ TXN_EXPECT_VERSION, 0 };
	assert_errno(txn_expect_set(tx, "ns/a/j", 6, &e), -EINVAL);

	assert_errno(txn_expect_rmdir(tx, "ns/a/deep", 9), -ENOTEMPTY);
	assert_errno(txn_expect_rmdir(tx, "ns/a/k", 6), -ENOTDIR);
	assert_errno(txn_expect_remove(tx, "ns/a/deep/er/k", 14), 0);
	assert_errno(txn_expect_remove(tx, "ns/a/deep/er/k", 14), -ENOENT);
	assert_errno(txn_expect_remove(tx, "ns/a/nodir", 10), -EISDIR);
	assert_errno(txn_expect_rmdir(tx, "ns/a/deep", 9), 0);
	assert_errno(txn_expect_rmdir(tx, "ns/a/nodir", 10), 0);
	assert_errno(txn_expect_stat(f->eng, tx, "ns/a/nodir", 10, &type), -ENOENT);
	/* Setting one again replaces it. */
	assert_errno(expect(tx, "ns/a/k", "present"), 0);
	assert_errno(txn_expect_get(tx, "ns/a/k", 6, &e), 0);
	assert_int_equal(e.kind, TXN_EXPECT_PRESENT);
	assert_errno(commit(f, tx, NULL), -ESTALE);
	assert_status(f, tx, "key", "ns/a/k");
	/* Finished: nothing is left to set or read. */
	assert_errno(expect(tx, "ns/a/k", "1"), -ESTALE);
	assert_errno(txn_expect_get(tx, "ns/a/k", 6, &e), -ENOENT);
}

static void a_precondition_checked_before_the_write_conflict_names_itself(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	assert_errno(put(f, "ns/a/k", "1", NULL), 0);
	tx = begin(f, "t");
	assert_errno(expect(tx, "ns/a/k", "1"), 0);
	assert_errno(stage(f, tx, "ns/a/k", "mine"), 0);
	assert_errno(put(f, "ns/a/k", "theirs", NULL), 0);
	assert_errno(commit(f, tx, NULL), -ESTALE);
	assert_status(f, tx, "conflict", "precondition");
}

/* ==== the event log by key prefix ========================================================== */

/* Every event as "ts:path,path;" into a string. */
static int collect_event(void *arg, const struct txn_event *ev)
{
	char *out = arg;
	size_t n = strlen(out);

	n += (size_t)snprintf(out + n, 512 - n, "%lld:", (long long)ev->commit_ts);
	for (size_t i = 0; i < ev->n_ops; i++)
		n += (size_t)snprintf(out + n, 512 - n, "%s%.*s", i ? "," : "",
				      (int)ev->ops[i].path_len, ev->ops[i].path);
	snprintf(out + n, 512 - n, ";");
	return 0;
}

static void events_by_prefix(struct fx *f, const char *filter, int64_t from, char *out)
{
	out[0] = '\0';
	assert_errno(txn_events(f->eng, filter, strlen(filter), from, INT64_MAX, collect_event,
				out), 0);
}

static void the_event_log_filtered_by_a_prefix_keeps_the_ops_at_or_below_it(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	char got[512];

	assert_errno(put(f, "ns/a/jobs/1", "x", NULL), 0);   /* 1 */
	assert_errno(put(f, "ns/a/jobs2/1", "x", NULL), 0);  /* 2: a string prefix only */
	assert_errno(put(f, "ns/a/job", "x", NULL), 0);      /* 3 */
	assert_errno(put(f, "ns/b/jobs/1", "x", NULL), 0);   /* 4: another agent */
	tx = begin(f, "t");
	assert_errno(stage(f, tx, "ns/a/jobs/2", "y"), 0);
	assert_errno(stage(f, tx, "ns/a/other", "y"), 0);
	assert_errno(unstage(f, tx, "ns/a/jobs/1"), 0);
	assert_errno(commit(f, tx, NULL), 0);               /* 5 */
	assert_errno(del(f, "ns/a/job", NULL), 0);           /* 6 */

	events_by_prefix(f, "ns/a/jobs", 1, got);
	assert_string_equal(got, "1:ns/a/jobs/1;5:ns/a/jobs/1,ns/a/jobs/2;");
	events_by_prefix(f, "ns/a/job", 1, got);
	assert_string_equal(got, "3:ns/a/job;6:ns/a/job;");
	events_by_prefix(f, "ns/a/jobs/2", 1, got);
	assert_string_equal(got, "5:ns/a/jobs/2;");
	events_by_prefix(f, "ns/a/jobs", 2, got);
	assert_string_equal(got, "5:ns/a/jobs/1,ns/a/jobs/2;");
	events_by_prefix(f, "ns/a/none", 1, got);
	assert_string_equal(got, "");
	events_by_prefix(f, "ns/a", 5, got);
	assert_string_equal(got, "5:ns/a/jobs/1,ns/a/jobs/2,ns/a/other;6:ns/a/job;");
	assert_errno(txn_events(f->eng, "ns", 2, 1, 9, collect_event, got), -EINVAL);
	assert_errno(txn_events(f->eng, "ns/a/../x", 9, 1, 9, collect_event, got), -EINVAL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(snapshot_isolation_lets_write_skew_commit),
		T(serializable_fails_the_second_of_a_write_skew_naming_the_key_read),
		T(the_engine_option_sets_the_isolation_of_new_transactions),
		T(a_phantom_in_a_listed_directory_fails_a_serializable_commit),
		T(a_change_deeper_below_a_listed_directory_is_named_at_its_key),
		T(a_directory_made_below_a_listed_one_is_a_phantom_too),
		T(a_key_found_absent_and_created_since_fails_a_serializable_commit),
		T(a_stat_of_a_key_counts_as_a_read),
		T(reads_nobody_changed_and_directories_stated_do_not_fail_a_commit),
		T(reads_of_its_own_writes_do_not_count),
		T(a_key_looked_for_then_made_and_dropped_still_counts_as_read_absent),
		T(a_key_read_then_written_conflicts_as_a_write),
		T(a_read_only_serializable_transaction_fails_on_a_stale_read),
		T(the_isolation_is_fixed_once_the_transaction_staged_or_read),
		T(isolation_names_parse_with_an_optional_newline),
		T(a_read_set_counts_against_max_txn_bytes),
		T(write_skew_in_one_batch_fails_the_second_serializable_commit),
		T(a_failed_request_in_a_batch_leaves_no_phantom_behind),
#if STATEHOUSE_FAULT_INJECTION
		T(a_batch_the_store_refused_leaves_no_phantom_behind),
#endif
		T(expect_contents_parse_and_format_back),
		T(each_precondition_form_holds_or_fails_the_commit),
		T(preconditions_on_several_keys_all_hold_or_nothing_applies),
		T(a_precondition_sees_commits_made_after_the_transaction_began),
		T(preconditions_alone_commit_an_empty_transaction),
		T(the_preconditions_of_a_transaction_read_back_list_and_go),
		T(a_precondition_checked_before_the_write_conflict_names_itself),
		T(the_event_log_filtered_by_a_prefix_keeps_the_ops_at_or_below_it),
	};
#undef T
	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests_name("txn-serial", tests, NULL, NULL);
}
