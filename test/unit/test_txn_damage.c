/* SPDX-License-Identifier: MIT */
/*
 * test_txn_damage.c - cmocka unit tests of the txn layer against a log that lost
 * acknowledged commits: an engine refuses to open it and changes nothing, and
 * txn_recover_from_snapshot() completes it from the newest snapshot.
 * The fixture and helpers are in txnfx.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#include "txnfx.h"

static bool exists(const struct fx *f, const char *name)
{
	char path[4096];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	return stat(path, &sb) == 0;
}

/* Close the engine cleanly (the marks then record its head) and remove the log. */
static void stop_and_lose_the_log(struct fx *f)
{
	static const char *const files[] = { "statehouse.db", "statehouse.db-wal",
					     "statehouse.db-shm" };

	txn_engine_close(f->eng);
	f->eng = NULL;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
		unlink(path);
	}
}

static void an_engine_refuses_a_missing_log_after_a_clean_stop_and_creates_nothing(void **state)
{
	struct fx *f = *state;
	struct txn_engine *eng = NULL;

	assert_errno(put(f, "ns/a/k", "v", NULL), 0);
	stop_and_lose_the_log(f);
	assert_errno(txn_engine_open(f->dir, &f->opt, &eng), -ENODATA);
	assert_null(eng);
	assert_false(exists(f, "statehouse.db"));
	/* --verify refuses it too. */
	assert_errno(txn_verify(f->dir, NULL), -ENODATA);
	assert_false(exists(f, "statehouse.db"));

	/* No snapshot to rebuild from: recovery accepts the loss of commit 1. */
	assert_errno(txn_recover_from_snapshot(f->dir, NULL), 0);
	assert_int_equal(fx_start(f), 0);
	assert_i64_equal(txn_engine_head(f->eng), 0);
	assert_absent(f, NULL, "ns/a/k");
}

static void recovery_from_a_snapshot_keeps_versions_and_commit_ts_and_numbers_on(void **state)
{
	struct fx *f = *state;
	int64_t ts;

	assert_errno(put(f, "ns/a/x", "1", NULL), 0);   /* 1 */
	assert_errno(put(f, "ns/a/gone", "g", NULL), 0); /* 2 */
	assert_errno(put(f, "ns/a/x", "2", NULL), 0);   /* 3 */
	assert_errno(del(f, "ns/a/gone", NULL), 0);      /* 4 */
	assert_errno(txn_engine_snapshot(f->eng), 0);
	assert_errno(put(f, "ns/a/lost", "l", NULL), 0); /* 5: after the snapshot */
	stop_and_lose_the_log(f);
	assert_errno(txn_engine_open(f->dir, &f->opt, &f->eng), -ENODATA);

	assert_errno(txn_recover_from_snapshot(f->dir, NULL), 0);
	assert_int_equal(fx_start(f), 0);
	assert_i64_equal(txn_engine_head(f->eng), 4);
	assert_value(f, NULL, "ns/a/x", "2");
	assert_i64_equal(version_of(f, NULL, "ns/a/x"), 2);
	assert_absent(f, NULL, "ns/a/gone");
	assert_absent(f, NULL, "ns/a/lost");
	assert_errno(put(f, "ns/a/next", "n", &ts), 0);
	assert_i64_equal(ts, 5);
	assert_errno(put(f, "ns/a/gone", "back", NULL), 0);
	assert_i64_equal(version_of(f, NULL, "ns/a/gone"), 3);
	/* The rebuilt log and the snapshot agree. */
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(txn_verify(f->dir, NULL), 0);
	assert_int_equal(fx_start(f), 0);
}

/* Run a shell command that must succeed. */
static void sh(const char *cmd)
{
	int status = -1;
	char *out = tu_run(cmd, &status);

	free(out);
	assert_int_equal(status, 0);
}

static void recovery_refuses_a_log_of_another_history_than_the_snapshot(void **state)
{
	struct fx *f = *state;
	char *other = tu_mkdtemp(), cmd[8400];
	struct txn_engine *eng = NULL;

	assert_non_null(other);
	/* History B: z at commit 1, stopped cleanly; its log goes to the other dir. */
	assert_errno(put(f, "ns/a/z", "b", NULL), 0);
	txn_engine_close(f->eng);
	f->eng = NULL;
	snprintf(cmd, sizeof(cmd), "cp '%s/statehouse.db' '%s/' && rm '%s'/statehouse.*",
		 f->dir, other, f->dir);
	sh(cmd);
	/* History A: x and y at commits 1 and 2, and a snapshot at 2, which goes there too. */
	assert_int_equal(fx_start(f), 0);
	assert_errno(put(f, "ns/a/x", "1", NULL), 0);
	assert_errno(put(f, "ns/a/y", "2", NULL), 0);
	assert_errno(txn_engine_snapshot(f->eng), 0);
	snprintf(cmd, sizeof(cmd), "cp -r '%s/snapshots' '%s/'", f->dir, other);
	sh(cmd);
	assert_errno(txn_engine_open(other, &f->opt, &eng), -ENODATA);
	/* Commit 1 is z in the log and x in the snapshot: nothing is rebuilt. */
	assert_errno(txn_recover_from_snapshot(other, NULL), -EIO);
	assert_errno(txn_engine_open(other, &f->opt, &eng), -ENODATA);
	tu_rmtree(other);
	free(other);
}

static void recovery_changes_nothing_when_no_commit_is_missing(void **state)
{
	struct fx *f = *state;

	assert_errno(put(f, "ns/a/k", "v", NULL), 0);
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(txn_recover_from_snapshot(f->dir, NULL), 0);
	assert_int_equal(fx_start(f), 0);
	assert_i64_equal(txn_engine_head(f->eng), 1);
	assert_value(f, NULL, "ns/a/k", "v");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(an_engine_refuses_a_missing_log_after_a_clean_stop_and_creates_nothing),
		T(recovery_from_a_snapshot_keeps_versions_and_commit_ts_and_numbers_on),
		T(recovery_refuses_a_log_of_another_history_than_the_snapshot),
		T(recovery_changes_nothing_when_no_commit_is_missing),
	};
#undef T
	/* The refusals log at error level, on purpose; recovery logs at info. */
	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests_name("txn-damage", tests, NULL, NULL);
}
