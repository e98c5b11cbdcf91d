/* SPDX-License-Identifier: MIT */
/*
 * test_txn_applied.c - cmocka unit tests of the applied-request records in the txn layer:
 * every kind of commit made with a request id is found under it (txn_applied_find())
 * with its commit_ts, a commit that fails or changes nothing leaves none, the records of
 * a batch are each its own, and they last across a restart of the same mount but not
 * into another one.  The fixture and helpers are in txnfx.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "log.h"

#include "txnfx.h"

#define INST UINT64_C(0x8badf00ddeadbeef)
#define RESENT (UINT64_C(1) << 63)

static int setup_mount(void **state)
{
	int err = setup(state);

	if (err)
		return err;
	/* The fixture's engine runs without an instance: start it again as a mount's. */
	struct fx *f = *state;

	f->opt.instance = INST;
	txn_engine_close(f->eng);
	f->eng = NULL;
	return fx_start(f);
}

static int64_t found_ts(struct fx *f, uint64_t unique)
{
	struct txn_reqid id = { INST, unique };
	struct txn_applied a;
	int err = txn_applied_find(f->eng, &id, &a);

	return err ? err : a.commit_ts;
}

static int put_as(struct fx *f, const char *path, const char *val, uint64_t unique,
		  int64_t *ts)
{
	struct done d = { 0 };
	struct txn_commit_req *req = auto_req(TXN_AUTO_PUT, path, NULL, val, strlen(val), &d);

	req->id = (struct txn_reqid){ INST, unique };
	return run_auto(f, req, ts);
}

static int commit_as(struct fx *f, struct txn *tx, uint64_t unique, int64_t *ts)
{
	struct done d = { 0 };
	struct txn_commit_req *req = calloc(1, sizeof(*req));
	int err;

	assert_non_null(req);
	req->done = on_done;
	req->arg = &d;
	req->id = (struct txn_reqid){ INST, unique };
	err = txn_commit_tx(f->eng, tx, ".commit.pending", req);
	if (!err) {
		wait_done(&d);
		err = d.err;
		if (ts)
			*ts = d.commit_ts;
	}
	txn_commit_req_free(req);
	return err;
}

/* ---- found ------------------------------------------------------------------------------- */

static void a_transaction_commit_is_found_with_its_commit_ts_and_name(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "deploy");
	struct txn_reqid id = { INST, 100 | RESENT };
	struct txn_applied a;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/first", "1", NULL), 0);
	assert_errno(stage(f, tx, "ns/a/k", "v"), 0);
	assert_errno(commit_as(f, tx, 100, &ts), 0);
	assert_i64_equal(ts, 2);
	/* As the kernel resends it: bit 63 set. */
	assert_errno(txn_applied_find(f->eng, &id, &a), 0);
	assert_i64_equal(a.commit_ts, 2);
	assert_true(a.time_ns > 0);
	assert_string_equal(a.txn, "deploy");
	id.unique = 101;
	assert_errno(txn_applied_find(f->eng, &id, &a), -ENOENT);
	id.instance = INST + 1;
	id.unique = 100;
	assert_errno(txn_applied_find(f->eng, &id, &a), -ENOENT);
	id.instance = 0;
	assert_errno(txn_applied_find(f->eng, &id, &a), -EINVAL);
}

static void autocommits_and_live_directories_are_found(void **state)
{
	struct fx *f = *state;
	struct txn_reqid mk = { INST, 12 }, rm = { INST, 13 };
	struct txn_applied a;
	int64_t ts = -1;

	assert_errno(put_as(f, "ns/a/k", "v", 10, &ts), 0);
	assert_i64_equal(ts, 1);
	assert_errno(txn_applied_find(f->eng, &(struct txn_reqid){ INST, 10 }, &a), 0);
	assert_i64_equal(a.commit_ts, 1);
	assert_string_equal(a.txn, "auto");
	assert_errno(txn_live_mkdir(f->eng, "ns/a/d", 6, &mk), 0);
	assert_errno(txn_live_rmdir(f->eng, "ns/a/d", 6, &rm), 0);
	assert_i64_equal(found_ts(f, 12), 2);
	assert_i64_equal(found_ts(f, 13), 3);
}

static void a_commit_without_an_id_is_not_recorded(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/k", "v", &ts), 0);
	assert_errno(put_as(f, "ns/a/j", "v", 1, NULL), 0);
	/* The put without an id took commit 1; the only record is of the second. */
	assert_i64_equal(ts, 1);
	assert_i64_equal(found_ts(f, 1), 2);
	assert_i64_equal(found_ts(f, 0), -ENOENT);
}

static void each_commit_of_a_batch_is_found_with_its_own_commit_ts(void **state)
{
	struct fx *f = *state;
	struct done d[3] = { 0 }, td = { 0 };
	struct txn_commit_req *r[3], *treq = calloc(1, sizeof(*treq));
	static const char *const keys[] = { "ns/a/x", "ns/a/y", "ns/a/z" };
	struct txn *tx = begin(f, "t");

	assert_non_null(treq);
	assert_errno(stage(f, tx, "ns/t/k", "from tx"), 0);
	gate_close(f);
	for (int i = 0; i < 3; i++) {
		r[i] = auto_req(TXN_AUTO_PUT, keys[i], NULL, "v", 1, &d[i]);
		r[i]->id = (struct txn_reqid){ INST, 20 + (uint64_t)i };
	}
	treq->done = on_done;
	treq->arg = &td;
	treq->id = (struct txn_reqid){ INST, 30 };
	txn_autocommit(f->eng, r[0]);
	assert_errno(txn_commit_tx(f->eng, tx, ".commit.pending", treq), 0);
	txn_autocommit(f->eng, r[1]);
	txn_autocommit(f->eng, r[2]);
	gate_open(f);
	for (int i = 0; i < 3; i++) {
		wait_done(&d[i]);
		assert_errno(d[i].err, 0);
		txn_commit_req_free(r[i]);
	}
	wait_done(&td);
	assert_errno(td.err, 0);
	txn_commit_req_free(treq);
	assert_i64_equal(found_ts(f, 20), 1);
	assert_i64_equal(found_ts(f, 30), 2);
	assert_i64_equal(found_ts(f, 21), 3);
	assert_i64_equal(found_ts(f, 22), 4);
}

/* ---- not found ----------------------------------------------------------------------------- */

static void a_commit_that_fails_or_changes_nothing_is_not_recorded(void **state)
{
	struct fx *f = *state;
	struct txn *t1 = begin(f, "t1"), *t2 = begin(f, "t2");
	struct done d = { 0 };
	struct txn_commit_req *req;

	assert_errno(stage(f, t1, "ns/a/k", "one"), 0);
	assert_errno(stage(f, t2, "ns/a/k", "two"), 0);
	assert_errno(commit_as(f, t1, 1, NULL), 0);
	assert_errno(commit_as(f, t2, 2, NULL), -ESTALE);
	/* A rename onto itself commits nothing. */
	req = auto_req(TXN_AUTO_RENAME, "ns/a/k", "ns/a/k", NULL, 0, &d);
	req->id = (struct txn_reqid){ INST, 3 };
	assert_errno(run_auto(f, req, NULL), 0);
	/* A delete of a key that is not there fails. */
	memset(&d, 0, sizeof(d));
	req = auto_req(TXN_AUTO_DELETE, "ns/a/none", NULL, NULL, 0, &d);
	req->id = (struct txn_reqid){ INST, 4 };
	assert_errno(run_auto(f, req, NULL), -ENOENT);
	assert_i64_equal(txn_engine_head(f->eng), 1);
	assert_i64_equal(found_ts(f, 1), 1);
	assert_i64_equal(found_ts(f, 2), -ENOENT);
	assert_i64_equal(found_ts(f, 3), -ENOENT);
	assert_i64_equal(found_ts(f, 4), -ENOENT);
}

#if STATEHOUSE_FAULT_INJECTION
static void a_commit_the_store_fails_is_not_recorded(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");
	int64_t ts = -1;

	assert_errno(stage(f, tx, "ns/a/k", "v"), 0);
	txn_engine_set_fault(f->eng, 0, -EIO);
	assert_errno(put_as(f, "ns/a/j", "v", 1, NULL), -EIO);
	assert_errno(commit_as(f, tx, 2, NULL), -EIO);
	txn_engine_set_fault(f->eng, 0, 0);
	assert_i64_equal(found_ts(f, 1), -ENOENT);
	assert_i64_equal(found_ts(f, 2), -ENOENT);
	/* Retried under the same ids (the transaction is open again), they are. */
	assert_errno(commit_as(f, tx, 2, &ts), 0);
	assert_i64_equal(found_ts(f, 2), ts);
	assert_errno(put_as(f, "ns/a/j", "v", 1, &ts), 0);
	assert_i64_equal(found_ts(f, 1), ts);
}
#endif

/* ---- across restarts ----------------------------------------------------------------------- */

static void a_restart_of_the_same_mount_finds_the_record_and_another_mount_does_not(
	void **state)
{
	struct fx *f = *state;
	struct txn_reqid id = { INST, 5 };
	struct txn_applied a;

	assert_errno(put_as(f, "ns/a/k", "v", 5, NULL), 0);
	/* A new serving process of the same mount (the kernel resends its requests). */
	restart(f);
	assert_i64_equal(found_ts(f, 5), 1);
	/* --verify reads the store with the table and finds nothing amiss. */
	assert_errno(txn_verify(f->dir, NULL), 0);
	/* Another mount: the record is gone, even asked for with the old instance. */
	f->opt.instance = INST + 1;
	restart(f);
	assert_errno(txn_applied_find(f->eng, &id, &a), -ENOENT);
	f->opt.instance = INST;
	restart(f);
	assert_i64_equal(found_ts(f, 5), -ENOENT);
}

static void an_inspecting_open_removes_no_record(void **state)
{
	struct fx *f = *state;
	struct txn_engine *other = NULL;
	struct txn_options o = f->opt;

	assert_errno(put_as(f, "ns/a/k", "v", 5, NULL), 0);
	txn_engine_close(f->eng);
	f->eng = NULL;
	o.instance = 0;
	o.inspect_only = true;
	assert_errno(txn_engine_open(f->dir, &o, &other), 0);
	txn_engine_close(other);
	assert_int_equal(fx_start(f), 0);
	assert_i64_equal(found_ts(f, 5), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			a_transaction_commit_is_found_with_its_commit_ts_and_name, setup_mount,
			teardown),
		cmocka_unit_test_setup_teardown(autocommits_and_live_directories_are_found,
						setup_mount, teardown),
		cmocka_unit_test_setup_teardown(a_commit_without_an_id_is_not_recorded,
						setup_mount, teardown),
		cmocka_unit_test_setup_teardown(
			each_commit_of_a_batch_is_found_with_its_own_commit_ts, setup_mount,
			teardown),
		cmocka_unit_test_setup_teardown(
			a_commit_that_fails_or_changes_nothing_is_not_recorded, setup_mount,
			teardown),
#if STATEHOUSE_FAULT_INJECTION
		cmocka_unit_test_setup_teardown(a_commit_the_store_fails_is_not_recorded,
						setup_mount, teardown),
#endif
		cmocka_unit_test_setup_teardown(
			a_restart_of_the_same_mount_finds_the_record_and_another_mount_does_not,
			setup_mount, teardown),
		cmocka_unit_test_setup_teardown(an_inspecting_open_removes_no_record,
						setup_mount, teardown),
	};

	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
