/* SPDX-License-Identifier: MIT */
/*
 * test_txn.c - cmocka unit tests of the txn layer: autocommits, the transaction table,
 * transaction views and staging.
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

/* ==== autocommit ======================================================================= */

static void an_autocommitted_put_is_readable_byte_exact_with_version_1(void **state)
{
	struct fx *f = *state;
	static const char v[] = { 'x', '\0', 'y', '\0', (char)0xff };
	struct blob *b = NULL;
	struct txn_entry e;
	int64_t ts = -1;

	assert_errno(put_n(f, "ns/agent/key", v, sizeof(v), &ts), 0);
	assert_i64_equal(ts, 1);
	assert_i64_equal(txn_engine_head(f->eng), 1);
	assert_errno(txn_read(f->eng, NULL, "ns/agent/key", 12, &b, &e), 0);
	assert_int_equal(b->len, sizeof(v));
	assert_memory_equal(b->data, v, sizeof(v));
	blob_unref(b);
	assert_int_equal(e.type, TXN_FILE);
	assert_int_equal(e.size, sizeof(v));
	assert_i64_equal(e.version, 1);
	assert_i64_equal(e.commit_ts, 1);
	assert_true(e.time_ns > 0);
}

static void commit_ts_values_are_consecutive_and_failed_requests_use_none(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/k1", "1", &ts), 0);
	assert_i64_equal(ts, 1);
	assert_errno(del(f, "ns/a/missing", &ts), -ENOENT);
	assert_i64_equal(ts, 0);
	assert_errno(put(f, "ns/a/k2", "2", &ts), 0);
	assert_i64_equal(ts, 2);
	assert_errno(del(f, "ns/a/k1", &ts), 0);
	assert_i64_equal(ts, 3);
	assert_errno(ren(f, "ns/a/k2", "ns/a/k3", false, &ts), 0);
	assert_i64_equal(ts, 4);
	assert_errno(put(f, "ns/a/k2/sub", "x", &ts), 0);
	assert_i64_equal(ts, 5);
	assert_i64_equal(txn_engine_head(f->eng), 5);
}

static void per_key_versions_grow_by_one_on_write_and_delete(void **state)
{
	struct fx *f = *state;
	struct txn_entry e;

	assert_errno(put(f, "ns/a/k", "1", NULL), 0);
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 1);
	assert_errno(put(f, "ns/a/k", "2", NULL), 0);
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 2);
	assert_errno(del(f, "ns/a/k", NULL), 0); /* version 3 is the delete */
	assert_errno(txn_stat(f->eng, NULL, "ns/a/k", 6, &e), -ENOENT);
	assert_errno(put(f, "ns/a/k", "4", NULL), 0);
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 4);
	/* Another key counts on its own. */
	assert_errno(put(f, "ns/a/other", "1", NULL), 0);
	assert_i64_equal(version_of(f, NULL, "ns/a/other"), 1);
}

static void versions_values_and_the_head_survive_a_restart(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;
	struct txn_entry e;

	assert_errno(put(f, "ns/a/k", "1", NULL), 0);
	assert_errno(put(f, "ns/a/k", "2", NULL), 0);
	assert_errno(put(f, "ns/a/gone", "x", NULL), 0);
	assert_errno(del(f, "ns/a/gone", NULL), 0);
	assert_errno(put(f, "ns/b/deep/er/key", "d", NULL), 0);
	restart(f);
	assert_i64_equal(txn_engine_head(f->eng), 5);
	assert_value(f, NULL, "ns/a/k", "2");
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 2);
	assert_value(f, NULL, "ns/b/deep/er/key", "d");
	assert_errno(txn_stat(f->eng, NULL, "ns/a/gone", 9, &e), -ENOENT);
	assert_listing(f, NULL, "ns/a", "k");
	assert_listing(f, NULL, "ns/b/deep", "er/");

	/* Versions and commit_ts continue from the log, also after a delete. */
	assert_errno(put(f, "ns/a/gone", "back", &ts), 0);
	assert_i64_equal(ts, 6);
	assert_i64_equal(version_of(f, NULL, "ns/a/gone"), 3);
	assert_errno(del(f, "ns/a/k", &ts), 0);
	assert_i64_equal(ts, 7);
	restart(f);
	assert_errno(put(f, "ns/a/k", "again", &ts), 0);
	assert_i64_equal(ts, 8);
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 4);
}

static void an_autocommit_completes_on_the_committer_thread(void **state)
{
	struct fx *f = *state;
	struct done d = { 0 };

	assert_errno(run_auto(f, auto_req(TXN_AUTO_PUT, "ns/a/k", NULL, "v", 1, &d), NULL), 0);
	assert_false(pthread_equal(d.thread, pthread_self()));
}

/* txn.h: "req->done runs exactly once, from another thread" - also for a request that
 * fails its checks (a caller may hold a lock its done() takes). */
static void an_invalid_autocommit_also_completes_from_another_thread(void **state)
{
	struct fx *f = *state;
	struct done d = { 0 };

	assert_errno(run_auto(f, auto_req(TXN_AUTO_PUT, "ns/a", NULL, "v", 1, &d), NULL),
		     -EINVAL);
	assert_false(pthread_equal(d.thread, pthread_self()));
}

static void a_put_below_a_key_fails_with_enotdir_and_over_a_directory_with_eisdir(void **state)
{
	struct fx *f = *state;

	assert_errno(put(f, "ns/a/b", "key", NULL), 0);
	assert_errno(put(f, "ns/a/b/c", "under a key", NULL), -ENOTDIR);
	assert_errno(put(f, "ns/a/b/c/d", "deeper", NULL), -ENOTDIR);
	assert_errno(put(f, "ns/a/x/y", "under x", NULL), 0);
	assert_errno(put(f, "ns/a/x", "over a dir", NULL), -EISDIR);
	assert_i64_equal(txn_engine_head(f->eng), 2);
	assert_value(f, NULL, "ns/a/b", "key");
	assert_value(f, NULL, "ns/a/x/y", "under x");
	assert_listing(f, NULL, "ns/a", "b x/");

	/* Once the prefix key is deleted the path may become a directory. */
	assert_errno(del(f, "ns/a/b", NULL), 0);
	assert_errno(put(f, "ns/a/b/c", "now fine", NULL), 0);
	assert_listing(f, NULL, "ns/a/b", "c");
}

static void autocommit_checks_names_depth_and_value_size(void **state)
{
	struct fx *f = *state;
	char name256[257], key1025[1100], key1024[1100];
	char big[65];

	assert_errno(put(f, "ns/a", "v", NULL), -EINVAL);     /* no file at agent level */
	assert_errno(put(f, "ns", "v", NULL), -EINVAL);
	assert_errno(put(f, "ns//k", "v", NULL), -EINVAL);
	assert_errno(put(f, "ns/a/./k", "v", NULL), -EINVAL);
	assert_errno(put(f, "ns/a/../k", "v", NULL), -EINVAL);
	assert_errno(put(f, ".tx/a/k", "v", NULL), -EINVAL);  /* reserved at the root */
	memset(name256, 'n', 256);
	name256[256] = '\0';
	char *p = NULL;

	assert_true(asprintf(&p, "ns/a/%s", name256) > 0);
	assert_errno(put(f, p, "v", NULL), -ENAMETOOLONG);
	free(p);
	/* A key of 1024 bytes (components of 200 joined by '/') is fine; 1025 is not. */
	memset(key1024, 'k', 1024);
	for (size_t i = 200; i < 1024; i += 201)
		key1024[i] = '/';
	key1024[1024] = '\0';
	memcpy(key1025, key1024, 1024);
	key1025[1024] = 'z';
	key1025[1025] = '\0';
	assert_true(asprintf(&p, "ns/a/%s", key1025) > 0);
	assert_errno(put(f, p, "v", NULL), -ENAMETOOLONG);
	free(p);
	assert_true(asprintf(&p, "ns/a/%s", key1024) > 0);
	assert_errno(put(f, p, "v", NULL), 0);
	free(p);

	/* max_value_bytes: exactly the limit is accepted, one more byte is EFBIG. */
	txn_engine_close(f->eng);
	f->eng = NULL;
	f->opt.max_value_bytes = 64;
	assert_int_equal(fx_start(f), 0);
	memset(big, 'b', sizeof(big));
	assert_errno(put_n(f, "ns/a/big", big, 65, NULL), -EFBIG);
	assert_absent(f, NULL, "ns/a/big");
	assert_errno(put_n(f, "ns/a/big", big, 64, NULL), 0);
	assert_i64_equal(txn_engine_head(f->eng), 2);
}

static void renaming_a_key_deletes_the_source_and_writes_the_target_in_one_commit(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/src", "payload", NULL), 0);
	assert_errno(put(f, "ns/a/dst", "old", NULL), 0);
	assert_errno(ren(f, "ns/a/src", "ns/a/dst", true, &ts), -EEXIST);
	assert_value(f, NULL, "ns/a/src", "payload");
	assert_errno(ren(f, "ns/a/src", "ns/a/dst", false, &ts), 0);
	assert_i64_equal(ts, 3);
	assert_absent(f, NULL, "ns/a/src");
	assert_value(f, NULL, "ns/a/dst", "payload");
	assert_i64_equal(version_of(f, NULL, "ns/a/dst"), 2);
	assert_errno(ren(f, "ns/a/src", "ns/a/x", false, &ts), -ENOENT);
	/* The source's version continues after the delete that the rename recorded. */
	assert_errno(put(f, "ns/a/src", "new", NULL), 0);
	assert_i64_equal(version_of(f, NULL, "ns/a/src"), 3);
}

static void renaming_a_directory_moves_every_key_below_it_at_one_commit_ts(void **state)
{
	struct fx *f = *state;
	struct txn_entry e;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/dir/x", "1", NULL), 0);
	assert_errno(put(f, "ns/a/dir/sub/y", "2", NULL), 0);
	assert_errno(ren(f, "ns/a/dir", "ns/b/moved", false, &ts), 0);
	assert_i64_equal(ts, 3);
	assert_absent(f, NULL, "ns/a/dir/x");
	assert_absent(f, NULL, "ns/a/dir");
	assert_value(f, NULL, "ns/b/moved/x", "1");
	assert_value(f, NULL, "ns/b/moved/sub/y", "2");
	assert_errno(txn_stat(f->eng, NULL, "ns/b/moved/sub/y", 16, &e), 0);
	assert_i64_equal(e.commit_ts, 3);
	assert_listing(f, NULL, "ns/b/moved", "sub/ x");
}

/* ==== transactions: table ================================================================ */

static void begin_rejects_a_taken_name_and_more_than_max_open_transactions(void **state)
{
	struct fx *f = *state;
	struct txn *a, *b, *c = NULL, *again = NULL;

	txn_engine_close(f->eng);
	f->eng = NULL;
	f->opt.max_open_txns = 2;
	assert_int_equal(fx_start(f), 0);

	a = begin(f, "a");
	assert_errno(txn_begin(f->eng, "a", 1, 0, 0, &again), -EEXIST);
	assert_null(again);
	b = begin(f, "b");
	assert_errno(txn_begin(f->eng, "c", 1, 0, 0, &c), -EAGAIN);
	assert_null(c);
	/* Removing one frees its slot; a committed one frees it too. */
	assert_errno(txn_remove(f->eng, "a", 1), 0);
	assert_int_equal(txn_get_state(a), TXN_ABORTED);
	c = begin(f, "c");
	assert_int_equal(txn_get_state(c), TXN_OPEN);
	assert_errno(commit(f, b, NULL), 0);
	assert_int_equal(txn_get_state(b), TXN_COMMITTED);
	begin(f, "d");
	/* The committed transaction keeps its name until removed. */
	assert_errno(txn_begin(f->eng, "b", 1, 0, 0, &again), -EEXIST);
}

static void begin_checks_the_transaction_name(void **state)
{
	struct fx *f = *state;
	struct txn *tx = NULL;
	char n255[256], n256[257];

	assert_errno(txn_begin(f->eng, "", 0, 0, 0, &tx), -EINVAL);
	assert_errno(txn_begin(f->eng, ".", 1, 0, 0, &tx), -EINVAL);
	assert_errno(txn_begin(f->eng, "..", 2, 0, 0, &tx), -EINVAL);
	assert_errno(txn_begin(f->eng, ".hidden", 7, 0, 0, &tx), -EINVAL);
	assert_errno(txn_begin(f->eng, "a/b", 3, 0, 0, &tx), -EINVAL);
	memset(n256, 'x', 256);
	n256[256] = '\0';
	assert_errno(txn_begin(f->eng, n256, 256, 0, 0, &tx), -ENAMETOOLONG);
	assert_null(tx);
	memset(n255, 'x', 255);
	n255[255] = '\0';
	assert_errno(txn_begin(f->eng, n255, 255, 7, 7, &tx), 0);
	assert_string_equal(txn_name(tx), n255);
	assert_int_equal(txn_uid(tx), 7);
	txn_unref(tx);
}

static void transactions_are_listed_sorted_and_found_by_name_and_id(void **state)
{
	struct fx *f = *state;
	struct txn *t[3];
	const char *names[] = { "job-42", "alpha", "Zed" };
	struct dirent_entry *d = NULL;
	size_t n = 0;

	for (int i = 0; i < 3; i++)
		t[i] = begin(f, names[i]);
	assert_true(txn_id(t[0]) != txn_id(t[1]) && txn_id(t[1]) != txn_id(t[2]));
	assert_errno(txn_list_names(f->eng, &d, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(d[0].name, "Zed");
	assert_string_equal(d[1].name, "alpha");
	assert_string_equal(d[2].name, "job-42");
	assert_int_equal(d[0].type, TXN_DIR);
	dirents_free(d, n);

	struct txn *byname = txn_find(f->eng, "alpha", 5);
	struct txn *byid = txn_find_id(f->eng, txn_id(t[1]));

	assert_ptr_equal(byname, t[1]);
	assert_ptr_equal(byid, t[1]);
	txn_unref(byname);
	txn_unref(byid);
	assert_null(txn_find(f->eng, "nope", 4));
	assert_null(txn_find_id(f->eng, 999999));
}

static void removing_a_transaction_aborts_it_and_drops_its_staged_writes(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");
	struct txn_entry e;
	struct dirent_entry *d = NULL;
	size_t n = 9;

	assert_errno(stage(f, tx, "ns/a/k", "staged"), 0);
	assert_errno(txn_remove(f->eng, "t", 1), 0);
	assert_int_equal(txn_get_state(tx), TXN_ABORTED);
	assert_null(txn_find(f->eng, "t", 1));
	assert_errno(txn_list_names(f->eng, &d, &n), 0);
	assert_int_equal(n, 0);
	dirents_free(d, n);
	assert_errno(txn_stat(f->eng, tx, "ns/a/k", 6, &e), -ENOENT);
	assert_errno(stage(f, tx, "ns/a/k", "again"), -ENOENT);
	assert_errno(txn_writable(tx), -ENOENT);
	assert_errno(commit(f, tx, NULL), -ENOENT);
	assert_errno(txn_remove(f->eng, "t", 1), -ENOENT);
	assert_absent(f, NULL, "ns/a/k");
	assert_i64_equal(txn_engine_head(f->eng), 0);
	/* The name is free again. */
	begin(f, "t");
}

/* ==== transactions: views ================================================================= */

static void a_transaction_sees_the_state_at_begin_and_not_later_commits(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	struct txn_entry e;

	assert_errno(put(f, "ns/a/k", "v1", NULL), 0);
	assert_errno(put(f, "ns/a/gone", "here", NULL), 0);
	tx = begin(f, "t");
	assert_i64_equal(txn_begin_ts(tx), 2);
	assert_errno(put(f, "ns/a/k", "v2", NULL), 0);
	assert_errno(put(f, "ns/a/k", "v3", NULL), 0);
	assert_errno(del(f, "ns/a/gone", NULL), 0);
	assert_errno(put(f, "ns/a/new", "later", NULL), 0);

	assert_value(f, tx, "ns/a/k", "v1");
	assert_errno(txn_stat(f->eng, tx, "ns/a/k", 6, &e), 0);
	assert_i64_equal(e.version, 1);
	assert_i64_equal(e.commit_ts, 1);
	assert_value(f, tx, "ns/a/gone", "here");
	assert_absent(f, tx, "ns/a/new");
	assert_listing(f, tx, "ns/a", "gone k");

	assert_value(f, NULL, "ns/a/k", "v3");
	assert_absent(f, NULL, "ns/a/gone");
	assert_listing(f, NULL, "ns/a", "k new");
}

/* decisions.md 20: a listing shows only namespaces (and agents) that hold keys; a
 * transaction's listing is that of its snapshot. */
static void a_namespace_first_written_after_begin_is_not_listed_in_the_transaction(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	assert_errno(put(f, "old/a/k", "1", NULL), 0);
	tx = begin(f, "t");
	assert_errno(put(f, "new/a/k", "2", NULL), 0);
	assert_errno(put(f, "old/b/k", "3", NULL), 0);
	assert_listing(f, NULL, "", "new/ old/");
	assert_listing(f, NULL, "old", "a/ b/");
	assert_listing(f, tx, "old", "a/");
	assert_listing(f, tx, "", "old/");
}

static void staged_writes_are_visible_inside_and_invisible_outside_until_commit(void **state)
{
	struct fx *f = *state;
	struct txn *tx, *other;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/keep", "k", NULL), 0);
	assert_errno(put(f, "ns/a/drop", "d", NULL), 0);
	tx = begin(f, "t");
	other = begin(f, "other");
	assert_errno(stage(f, tx, "ns/a/new", "n"), 0);
	assert_errno(stage(f, tx, "ns/a/keep", "k2"), 0);
	assert_errno(unstage(f, tx, "ns/a/drop"), 0);
	assert_errno(stage(f, tx, "ns2/b/deep/key", "x"), 0);

	assert_value(f, tx, "ns/a/new", "n");
	assert_value(f, tx, "ns/a/keep", "k2");
	assert_absent(f, tx, "ns/a/drop");
	assert_listing(f, tx, "ns/a", "keep new");
	assert_listing(f, tx, "ns2/b", "deep/");
	assert_status(f, tx, "ops", "4");
	assert_status(f, tx, "state", "open");

	assert_absent(f, NULL, "ns/a/new");
	assert_value(f, NULL, "ns/a/keep", "k");
	assert_value(f, NULL, "ns/a/drop", "d");
	assert_listing(f, NULL, "", "ns/");
	assert_absent(f, other, "ns/a/new");
	assert_value(f, other, "ns/a/keep", "k");
	assert_i64_equal(txn_engine_head(f->eng), 2);

	assert_errno(commit(f, tx, &ts), 0);
	assert_i64_equal(ts, 3);
	assert_int_equal(txn_get_state(tx), TXN_COMMITTED);
	assert_value(f, NULL, "ns/a/new", "n");
	assert_value(f, NULL, "ns/a/keep", "k2");
	assert_absent(f, NULL, "ns/a/drop");
	assert_value(f, NULL, "ns2/b/deep/key", "x");
	assert_i64_equal(version_of(f, NULL, "ns/a/keep"), 2);
	assert_i64_equal(version_of(f, NULL, "ns/a/new"), 1);
	struct txn_entry e;

	assert_errno(txn_stat(f->eng, NULL, "ns/a/new", 8, &e), 0);
	assert_i64_equal(e.commit_ts, 3);
	/* The other transaction's snapshot still predates the commit. */
	assert_absent(f, other, "ns/a/new");
	assert_value(f, other, "ns/a/drop", "d");
}

/* txn.h: txn_entry.version is "0 when staged and not yet committed". */
static void a_staged_overwrite_reports_version_0_until_committed(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	assert_errno(put(f, "ns/a/k", "v1", NULL), 0);
	tx = begin(f, "t");
	assert_errno(stage(f, tx, "ns/a/fresh", "new"), 0);
	assert_i64_equal(version_of(f, tx, "ns/a/fresh"), 0);
	assert_errno(stage(f, tx, "ns/a/k", "v2"), 0);
	assert_i64_equal(version_of(f, tx, "ns/a/k"), 0);
}

static void a_staged_file_has_the_time_it_was_staged(void **state)
{
	struct fx *f = *state;
	struct txn_entry e;
	struct timespec t0;
	struct txn *tx;

	clock_gettime(CLOCK_REALTIME, &t0);
	tx = begin(f, "t");
	assert_errno(stage(f, tx, "ns/a/fresh", "new"), 0);
	assert_errno(txn_stat(f->eng, tx, "ns/a/fresh", 10, &e), 0);
	assert_true(e.time_ns >= (int64_t)t0.tv_sec * 1000000000);
	assert_i64_equal(e.version, 0);
}

static void a_put_with_noreplace_writes_an_absent_key_and_leaves_an_existing_one(void **state)
{
	struct fx *f = *state;
	struct done d1 = { 0 }, d2 = { 0 };
	struct txn_commit_req *req;
	int64_t ts = 0, ts2 = 0;

	req = auto_req(TXN_AUTO_PUT, "ns/a/k", NULL, "", 0, &d1);
	req->noreplace = true;
	assert_errno(run_auto(f, req, &ts), 0);
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 1);
	assert_errno(put(f, "ns/a/k", "v", NULL), 0);
	req = auto_req(TXN_AUTO_PUT, "ns/a/k", NULL, "", 0, &d2);
	req->noreplace = true;
	assert_errno(run_auto(f, req, NULL), -EEXIST);
	assert_value(f, NULL, "ns/a/k", "v");
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 2);
	/* The refused put consumed no commit_ts. */
	assert_errno(put(f, "ns/a/k2", "w", &ts2), 0);
	assert_i64_equal(ts2, ts + 2);
}

static void a_staged_put_then_delete_of_a_new_key_stages_nothing(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");
	int64_t ts = -1;

	assert_errno(stage(f, tx, "ns/a/tmp", "x"), 0);
	assert_status(f, tx, "ops", "1");
	assert_errno(unstage(f, tx, "ns/a/tmp"), 0);
	assert_status(f, tx, "ops", "0");
	assert_absent(f, tx, "ns/a/tmp");
	assert_errno(unstage(f, tx, "ns/a/tmp"), -ENOENT);
	/* With nothing staged the timeout may still be set. */
	assert_errno(txn_set_timeout(f->eng, tx, 5000), 0);
	assert_errno(commit(f, tx, &ts), 0);
	assert_i64_equal(ts, 1);
	assert_absent(f, NULL, "ns/a/tmp");
}

static void staging_follows_the_key_versus_prefix_rules_of_the_view(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	assert_errno(put(f, "ns/a/b", "key", NULL), 0);
	assert_errno(put(f, "ns/a/d/x", "below d", NULL), 0);
	tx = begin(f, "t");
	assert_errno(stage(f, tx, "ns/a/b/c", "v"), -ENOTDIR);
	assert_errno(stage(f, tx, "ns/a/d", "v"), -EISDIR);
	assert_errno(stage(f, tx, "ns/a/s/t", "v"), 0);
	assert_errno(stage(f, tx, "ns/a/s", "v"), -EISDIR);
	assert_errno(stage(f, tx, "ns/a/s/t/u", "v"), -ENOTDIR);
	assert_errno(stage(f, tx, "ns/a", "v"), -EINVAL);
	assert_errno(unstage(f, tx, "ns/a/d"), -EISDIR);
	assert_errno(unstage(f, tx, "ns/a/nothing"), -ENOENT);

	/* In one transaction a key may become a directory and a directory a key. */
	assert_errno(unstage(f, tx, "ns/a/b"), 0);
	assert_errno(stage(f, tx, "ns/a/b/c", "now a dir"), 0);
	assert_errno(unstage(f, tx, "ns/a/d/x"), 0);
	assert_errno(stage(f, tx, "ns/a/d", "now a key"), 0);
	assert_errno(commit(f, tx, NULL), 0);
	assert_value(f, NULL, "ns/a/b/c", "now a dir");
	assert_value(f, NULL, "ns/a/d", "now a key");
	assert_value(f, NULL, "ns/a/s/t", "v");
	assert_listing(f, NULL, "ns/a", "b/ d s/");
}

/* put_undo(f, tx, path, val, undo): a writer's staging of val at path. */
static int put_undo(struct fx *f, struct txn *tx, const char *path, const char *val,
		    struct txn_undo **undo)
{
	return txn_stage_put_undo(f->eng, tx, path, strlen(path), blob_new(val, strlen(val)),
				  undo);
}

static void a_writers_failed_write_puts_back_what_was_staged_before_its_first(void **state)
{
	struct fx *f = *state;
	struct txn_undo *u = NULL, *w = NULL;
	struct txn *tx;

	assert_errno(put(f, "ns/a/base", "committed", NULL), 0);
	tx = begin(f, "t");
	/* Over a staged value: that value comes back, with the ops counted as before. */
	assert_errno(stage(f, tx, "ns/a/k", "before"), 0);
	assert_errno(put_undo(f, tx, "ns/a/k", "1", &u), 0);
	assert_non_null(u);
	assert_errno(put_undo(f, tx, "ns/a/k", "12", &u), 0);
	assert_value(f, tx, "ns/a/k", "12");
	txn_stage_undo(f->eng, tx, &u);
	assert_null(u);
	assert_value(f, tx, "ns/a/k", "before");
	assert_status(f, tx, "ops", "1");
	/* Over the snapshot's value (nothing staged): the snapshot's shows again. */
	assert_errno(put_undo(f, tx, "ns/a/base", "new", &u), 0);
	assert_status(f, tx, "ops", "2");
	txn_stage_undo(f->eng, tx, &u);
	assert_value(f, tx, "ns/a/base", "committed");
	assert_status(f, tx, "ops", "1");
	/* Over a staged delete: deleted again. */
	assert_errno(unstage(f, tx, "ns/a/base"), 0);
	assert_errno(put_undo(f, tx, "ns/a/base", "back", &u), 0);
	txn_stage_undo(f->eng, tx, &u);
	assert_absent(f, tx, "ns/a/base");
	/* Another writer staged since: its value stays. */
	assert_errno(put_undo(f, tx, "ns/a/k", "mine", &u), 0);
	assert_errno(put_undo(f, tx, "ns/a/k", "theirs", &w), 0);
	txn_stage_undo(f->eng, tx, &u);
	assert_value(f, tx, "ns/a/k", "theirs");
	txn_undo_free(w);
	/* A refused put keeps the record of what was there before it. */
	assert_errno(put_undo(f, tx, "ns/a", "v", &u), -EINVAL);
	assert_null(u);
	txn_stage_undo(f->eng, tx, &u);
	assert_errno(commit(f, tx, NULL), 0);
	assert_value(f, NULL, "ns/a/k", "theirs");
	assert_absent(f, NULL, "ns/a/base");
}

static void a_writer_patches_its_staged_value_without_changing_what_readers_hold(void **state)
{
	struct fx *f = *state;
	struct txn_undo *u = NULL, *w = NULL;
	struct blob *held = NULL;
	struct txn *tx = begin(f, "t");

	assert_errno(put_undo(f, tx, "ns/a/k", "abc", &u), 0);
	/* Grows in place or in a copy, bytes past the end zero-filled. */
	assert_errno(txn_stage_patch(f->eng, tx, "ns/a/k", 6, 3, "def", 3, 6, u), 0);
	assert_value(f, tx, "ns/a/k", "abcdef");
	assert_errno(txn_stage_patch(f->eng, tx, "ns/a/k", 6, 0, "X", 1, 6, u), 0);
	assert_value(f, tx, "ns/a/k", "Xbcdef");
	/* A reader's value stays what it read. */
	assert_errno(txn_read(f->eng, tx, "ns/a/k", 6, &held, NULL), 0);
	assert_errno(txn_stage_patch(f->eng, tx, "ns/a/k", 6, 1, "Y", 1, 2, u), 0);
	assert_value(f, tx, "ns/a/k", "XY");
	assert_int_equal(held->len, 6);
	assert_memory_equal(held->data, "Xbcdef", 7);
	blob_unref(held);
	/* A truncation and a hole. */
	assert_errno(txn_stage_patch(f->eng, tx, "ns/a/k", 6, 3, "z", 1, 4, u), 0);
	{
		struct txn_entry e;
		struct blob *b = NULL;

		assert_errno(txn_read(f->eng, tx, "ns/a/k", 6, &b, &e), 0);
		assert_int_equal(b->len, 4);
		assert_memory_equal(b->data, "XY\0z", 5);
		assert_int_equal(e.size, 4);
		blob_unref(b);
	}
	/* Another writer's value since: not this writer's to patch. */
	assert_errno(put_undo(f, tx, "ns/a/k", "theirs", &w), 0);
	assert_errno(txn_stage_patch(f->eng, tx, "ns/a/k", 6, 0, "Q", 1, 1, u), -EAGAIN);
	assert_value(f, tx, "ns/a/k", "theirs");
	txn_undo_free(u);
	txn_undo_free(w);
	assert_status(f, tx, "ops", "1");
	assert_errno(commit(f, tx, NULL), 0);
	assert_value(f, NULL, "ns/a/k", "theirs");
}

static void staging_checks_names_depth_and_max_value_bytes(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	char big[33];

	txn_engine_close(f->eng);
	f->eng = NULL;
	f->opt.max_value_bytes = 32;
	assert_int_equal(fx_start(f), 0);
	tx = begin(f, "t");
	memset(big, 'b', sizeof(big));
	assert_errno(txn_stage_put(f->eng, tx, "ns/a/k", 6, blob_new(big, 33)), -EFBIG);
	assert_absent(f, tx, "ns/a/k");
	assert_errno(txn_stage_put(f->eng, tx, "ns/a/k", 6, blob_new(big, 32)), 0);
	assert_errno(stage(f, tx, "ns/a//k", "v"), -EINVAL);
	assert_errno(stage(f, tx, "ns/a/..", "v"), -EINVAL);
	assert_errno(stage(f, tx, ".x/a/k", "v"), -EINVAL);
	assert_errno(stage(f, tx, "ns/a", "v"), -EINVAL);
	assert_status(f, tx, "ops", "1");
	/* A rejected write does not poison the transaction. */
	assert_errno(commit(f, tx, NULL), 0);
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 1);
}

static void a_staged_rename_moves_the_value_inside_the_view_only(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	assert_errno(put(f, "ns/a/src", "payload", NULL), 0);
	tx = begin(f, "t");
	assert_errno(txn_stage_rename(f->eng, tx, "ns/a/src", 8, "ns/a/dst", 8, false), 0);
	assert_absent(f, tx, "ns/a/src");
	assert_value(f, tx, "ns/a/dst", "payload");
	assert_value(f, NULL, "ns/a/src", "payload");
	assert_absent(f, NULL, "ns/a/dst");
	assert_errno(commit(f, tx, NULL), 0);
	assert_absent(f, NULL, "ns/a/src");
	assert_value(f, NULL, "ns/a/dst", "payload");
	assert_i64_equal(version_of(f, NULL, "ns/a/dst"), 1);
}

static int exchange(struct fx *f, const char *a, const char *b, int64_t *ts)
{
	struct done d = { 0 };

	return run_auto(f, auto_req(TXN_AUTO_EXCHANGE, a, b, NULL, 0, &d), ts);
}

static void an_exchange_swaps_two_values_in_one_commit(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1, before = -1;

	assert_errno(put(f, "ns/a/x", "one", NULL), 0);
	assert_errno(put(f, "ns/a/y", "second", &before), 0);
	assert_errno(exchange(f, "ns/a/x", "ns/a/y", &ts), 0);
	assert_i64_equal(ts, before + 1);
	assert_value(f, NULL, "ns/a/x", "second");
	assert_value(f, NULL, "ns/a/y", "one");
	assert_i64_equal(version_of(f, NULL, "ns/a/x"), 2);
	assert_i64_equal(version_of(f, NULL, "ns/a/y"), 2);
	assert_errno(exchange(f, "ns/a/x", "ns/a/none", NULL), -ENOENT);
	assert_errno(put(f, "ns/a/d/k", "v", NULL), 0);
	assert_errno(exchange(f, "ns/a/x", "ns/a/d", NULL), -EINVAL);
	assert_value(f, NULL, "ns/a/x", "second");
}

static void a_staged_exchange_swaps_two_values_inside_the_view_only(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	assert_errno(put(f, "ns/a/x", "one", NULL), 0);
	assert_errno(put(f, "ns/a/y", "second", NULL), 0);
	assert_errno(put(f, "ns/a/d/k", "v", NULL), 0);
	tx = begin(f, "t");
	assert_errno(txn_stage_exchange(f->eng, tx, "ns/a/x", 6, "ns/a/none", 9), -ENOENT);
	assert_errno(txn_stage_exchange(f->eng, tx, "ns/a/x", 6, "ns/a/d", 6), -EINVAL);
	assert_errno(txn_stage_exchange(f->eng, tx, "ns/a/x", 6, "ns/a/y", 6), 0);
	assert_value(f, tx, "ns/a/x", "second");
	assert_value(f, tx, "ns/a/y", "one");
	assert_value(f, NULL, "ns/a/x", "one");
	assert_errno(commit(f, tx, NULL), 0);
	assert_value(f, NULL, "ns/a/x", "second");
	assert_value(f, NULL, "ns/a/y", "one");
}

static void a_staged_directory_rename_moves_every_key_below_it(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/dir/x", "1", NULL), 0);
	assert_errno(put(f, "ns/a/dir/sub/y", "2", NULL), 0);
	assert_errno(put(f, "ns/b/full/z", "3", NULL), 0);
	tx = begin(f, "t");
	assert_errno(txn_stage_rename(f->eng, tx, "ns/a/dir", 8, "ns/b/full", 9, false),
		     -ENOTEMPTY);
	assert_errno(txn_stage_rename(f->eng, tx, "ns/a/dir", 8, "ns/a/dir/in", 11, false),
		     -EINVAL);
	assert_errno(txn_stage_rename(f->eng, tx, "ns/a/dir", 8, "ns/b/moved", 10, false), 0);
	assert_absent(f, tx, "ns/a/dir");
	assert_value(f, tx, "ns/b/moved/x", "1");
	assert_value(f, tx, "ns/b/moved/sub/y", "2");
	assert_listing(f, tx, "ns/b", "full/ moved/");
	assert_status(f, tx, "ops", "4");
	assert_value(f, NULL, "ns/a/dir/x", "1");
	assert_absent(f, NULL, "ns/b/moved");
	assert_errno(commit(f, tx, &ts), 0);
	assert_i64_equal(ts, 4);
	assert_absent(f, NULL, "ns/a/dir/sub/y");
	assert_value(f, NULL, "ns/b/moved/sub/y", "2");
	assert_listing(f, NULL, "ns/b/moved", "sub/ x");
	assert_listing(f, NULL, "ns/a", "");
}

static void note_files_can_be_written_renamed_and_committed_under_any_name(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");
	struct dirent_entry *d = NULL;
	struct blob *b = NULL;
	struct done dn = { 0 };
	struct txn_commit_req *req;
	size_t n = 0;

	assert_errno(txn_note_list(tx, &d, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].name, ".commit.pending");
	dirents_free(d, n);
	assert_errno(txn_note_get(tx, ".commit.pending", &b), 0);
	assert_int_equal(b->len, 0);
	blob_unref(b);

	assert_errno(txn_note_put(tx, "why", blob_new("{\"who\":\"me\"}", 12)), 0);
	assert_errno(txn_note_rename(tx, "why", "because"), 0);
	assert_errno(txn_note_get(tx, "why", &b), -ENOENT);
	assert_null(b);
	assert_errno(txn_note_rename(tx, "why", "other"), -ENOENT);
	assert_errno(txn_note_list(tx, &d, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(d[0].name, ".commit.pending");
	assert_string_equal(d[1].name, "because");
	dirents_free(d, n);
	assert_errno(txn_note_remove(tx, ".commit.pending"), 0);
	assert_errno(txn_note_remove(tx, ".commit.pending"), -ENOENT);

	/* Committing with a note that does not exist is refused at once. */
	assert_errno(commit(f, tx, NULL), -ENOENT);
	assert_int_equal(txn_get_state(tx), TXN_OPEN);

	assert_errno(stage(f, tx, "ns/a/k", "v"), 0);
	req = calloc(1, sizeof(*req));
	assert_non_null(req);
	req->done = on_done;
	req->arg = &dn;
	assert_errno(txn_commit_tx(f->eng, tx, "because", req), 0);
	wait_done(&dn);
	assert_errno(dn.err, 0);
	assert_i64_equal(dn.commit_ts, 1);
	assert_non_null(req->note);
	assert_int_equal(req->note->len, 12);
	assert_memory_equal(req->note->data, "{\"who\":\"me\"}", 12);
	txn_commit_req_free(req);
	assert_errno(txn_note_get(tx, "because", &b), -ENOENT);
	assert_errno(txn_note_put(tx, "late", blob_new("x", 1)), -EROFS);
	assert_value(f, NULL, "ns/a/k", "v");
}

static void a_deadline_that_passes_while_the_commit_is_queued_expires_the_transaction(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");
	struct done dn = { 0 };
	struct txn_commit_req *req = calloc(1, sizeof(*req));
	char *left;
	int err;

	assert_non_null(req);
	req->done = on_done;
	req->arg = &dn;
	assert_errno(txn_set_timeout(f->eng, tx, 200), 0);
	gate_close(f);
	err = txn_commit_tx(f->eng, tx, ".commit.pending", req);
	if (err == 0) {
		/* Queued in time (the usual case): wait until the deadline has passed. */
		assert_int_equal(txn_get_state(tx), TXN_COMMITTING);
		for (;;) {
			left = status_field(f, tx, "expires_in_ms");
			if (strcmp(left, "0") == 0)
				break;
			free(left);
			usleep(5000);
		}
		free(left);
		usleep(10000);
		gate_open(f);
		wait_done(&dn);
		err = dn.err;
	} else {
		gate_open(f); /* a slow machine: the deadline passed before the commit */
	}
	assert_errno(err, -ETIMEDOUT);
	assert_int_equal(txn_get_state(tx), TXN_EXPIRED);
	assert_status(f, tx, "state", "expired");
	assert_i64_equal(txn_engine_head(f->eng), 0);
	txn_commit_req_free(req);
}

static void stopping_the_engine_completes_every_queued_commit(void **state)
{
	struct fx *f = *state;
	struct done d[4] = { 0 };
	struct txn_commit_req *r[4];
	char key[16];

	gate_close(f);
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "ns/a/k%d", i);
		r[i] = auto_req(TXN_AUTO_PUT, key, NULL, key, strlen(key), &d[i]);
		txn_autocommit(f->eng, r[i]);
	}
	gate_open(f);
	txn_engine_close(f->eng);
	f->eng = NULL;
	for (int i = 0; i < 4; i++) {
		assert_true(d[i].done);
		assert_errno(d[i].err, 0);
		assert_i64_equal(d[i].commit_ts, i + 1);
		txn_commit_req_free(r[i]);
	}
	assert_int_equal(fx_start(f), 0);
	assert_i64_equal(txn_engine_head(f->eng), 4);
	assert_listing(f, NULL, "ns/a", "k0 k1 k2 k3");
	assert_value(f, NULL, "ns/a/k3", "ns/a/k3");
}

static void the_notify_hook_gets_the_changed_keys_and_completes_late_requests(void **state)
{
	struct fx *f = *state;
	struct hook h = { 0 }, seen;
	struct done d1 = { 0 }, d2 = { 0 };
	struct txn_commit_req *req;
	int64_t ts = -1;

	/* Set before the first request: the committer reads the hook after each batch. */
	txn_engine_set_notify(f->eng, hook_fn, &h);
	req = auto_req(TXN_AUTO_PUT, "ns/a/src", NULL, "v", 1, &d1);
	req->late = true;
	assert_errno(run_auto(f, req, &ts), 0);
	assert_i64_equal(ts, 1);
	req = auto_req(TXN_AUTO_RENAME, "ns/a/src", "ns/a/dst", NULL, 0, &d2);
	req->late = true;
	assert_errno(run_auto(f, req, &ts), 0);
	assert_i64_equal(ts, 2);
	pthread_mutex_lock(&g_lock);
	seen = h;
	pthread_mutex_unlock(&g_lock);
	assert_int_equal(seen.calls, 2);
	assert_int_equal(seen.late_done, 2);
	assert_string_equal(seen.paths, "ns/a/src ns/a/src ns/a/dst");

	/* Without the late flag the request completes before the hook runs. */
	assert_errno(put(f, "ns/a/k", "v", NULL), 0);
	txn_engine_close(f->eng); /* joins the committer: the hook has run */
	f->eng = NULL;
	assert_int_equal(h.calls, 3);
	assert_int_equal(h.late_done, 2);
	assert_string_equal(h.paths, "ns/a/src ns/a/src ns/a/dst ns/a/k");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(an_autocommitted_put_is_readable_byte_exact_with_version_1),
		T(commit_ts_values_are_consecutive_and_failed_requests_use_none),
		T(per_key_versions_grow_by_one_on_write_and_delete),
		T(versions_values_and_the_head_survive_a_restart),
		T(an_autocommit_completes_on_the_committer_thread),
		T(an_invalid_autocommit_also_completes_from_another_thread),
		T(a_put_below_a_key_fails_with_enotdir_and_over_a_directory_with_eisdir),
		T(autocommit_checks_names_depth_and_value_size),
		T(renaming_a_key_deletes_the_source_and_writes_the_target_in_one_commit),
		T(renaming_a_directory_moves_every_key_below_it_at_one_commit_ts),
		T(begin_rejects_a_taken_name_and_more_than_max_open_transactions),
		T(begin_checks_the_transaction_name),
		T(transactions_are_listed_sorted_and_found_by_name_and_id),
		T(removing_a_transaction_aborts_it_and_drops_its_staged_writes),
		T(a_transaction_sees_the_state_at_begin_and_not_later_commits),
		T(a_namespace_first_written_after_begin_is_not_listed_in_the_transaction),
		T(staged_writes_are_visible_inside_and_invisible_outside_until_commit),
		T(a_staged_overwrite_reports_version_0_until_committed),
		T(a_staged_file_has_the_time_it_was_staged),
		T(a_put_with_noreplace_writes_an_absent_key_and_leaves_an_existing_one),
		T(a_staged_put_then_delete_of_a_new_key_stages_nothing),
		T(staging_follows_the_key_versus_prefix_rules_of_the_view),
		T(staging_checks_names_depth_and_max_value_bytes),
		T(a_staged_rename_moves_the_value_inside_the_view_only),
		T(an_exchange_swaps_two_values_in_one_commit),
		T(a_staged_exchange_swaps_two_values_inside_the_view_only),
		T(a_staged_directory_rename_moves_every_key_below_it),
		T(note_files_can_be_written_renamed_and_committed_under_any_name),
		T(a_deadline_that_passes_while_the_commit_is_queued_expires_the_transaction),
		T(stopping_the_engine_completes_every_queued_commit),
		T(the_notify_hook_gets_the_changed_keys_and_completes_late_requests),
		T(a_writers_failed_write_puts_back_what_was_staged_before_its_first),
		T(a_writer_patches_its_staged_value_without_changing_what_readers_hold),
	};
#undef T
	/* Injected faults and refused requests log at error level; recovery logs at info. */
	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests_name("txn", tests, NULL, NULL);
}
