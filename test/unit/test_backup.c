/* SPDX-License-Identifier: MIT */
/*
 * test_backup.c - cmocka unit tests of store_backup(), the consistent copy of a live
 * store (store layer): the copy opens as a store of its own with the same log, it is
 * marked as stopped cleanly, and a failed backup leaves no file behind.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "store.h"

static const struct store_op put_a = { .path = "ns/agent/a", .path_len = 10,
				       .kind = STORE_PUT, .version = 1, .value = "1",
				       .value_len = 1 };

static struct store *open_store(const char *dir)
{
	struct store_options opt = { .fsync = 0 };
	struct store *st = NULL;

	assert_errno(store_open(NULL, dir, &opt, &st), 0);
	return st;
}

static void append(struct store *st, int64_t ts)
{
	struct store_event ev = { .commit_ts = ts, .time_ns = ts, .txn = "unit", .ops = &put_a,
				  .n_ops = 1 };

	assert_errno(store_append(st, &ev, 1), 0);
}

static int count_op(void *arg, const struct store_replay_op *op)
{
	(void)op;
	(*(int *)arg)++;
	return 0;
}

static void a_backup_of_a_running_store_opens_with_its_log_and_a_clean_stop(void **state)
{
	char *src = tu_mkdtemp(), *dst = tu_mkdtemp(), path[PATH_MAX];
	struct store *st = open_store(src), *copy;
	struct store_start start = { 0 };
	struct store_replay_stats s;
	int64_t head = -1;
	int clean = 0, n = 0;

	(void)state;
	assert_errno(store_record_start(st, &start, &clean), 0);
	for (int64_t ts = 1; ts <= 3; ts++)
		append(st, ts);
	snprintf(path, sizeof(path), "%s/statehouse.db", dst);
	/* The source store stays open and marked running, as in the daemon. */
	assert_errno(store_backup(src, path, &head), 0);
	assert_i64_equal(head, 3);
	append(st, 4); /* after the copy: not in it */
	copy = open_store(dst);
	assert_errno(store_replay(copy, 0, count_op, &n, &s), 0);
	assert_int_equal(n, 3);
	assert_i64_equal(s.head_ts, 3);
	assert_errno(store_record_start(copy, &start, &clean), 0);
	assert_int_equal(clean, 1);
	store_close(copy);
	store_close(st);
	tu_rmtree(src);
	tu_rmtree(dst);
	free(src);
	free(dst);
}

static void a_backup_that_cannot_be_written_fails_and_leaves_nothing(void **state)
{
	char *src = tu_mkdtemp(), path[PATH_MAX];
	struct store *st = open_store(src);
	int64_t head;

	(void)state;
	append(st, 1);
	snprintf(path, sizeof(path), "%s/no-such-dir/copy.db", src);
	assert_true(store_backup(src, path, &head) < 0);
	assert_int_equal(access(path, F_OK), -1);
	/* A data dir without a store: nothing to copy, nothing made. */
	snprintf(path, sizeof(path), "%s/copy.db", src);
	assert_true(store_backup("/nonexistent-statehouse-dir", path, &head) < 0);
	assert_int_equal(access(path, F_OK), -1);
	store_close(st);
	tu_rmtree(src);
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_backup_of_a_running_store_opens_with_its_log_and_a_clean_stop),
		cmocka_unit_test(a_backup_that_cannot_be_written_fails_and_leaves_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
