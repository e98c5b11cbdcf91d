/* SPDX-License-Identifier: MIT */
/*
 * test_store_damage.c - cmocka unit tests of what the store layer offers for telling a
 * damaged or missing log from a good one: the marks file, opening a log that must
 * exist, the state of the log's files, the newest valid snapshot, and closing a store
 * without changing its files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "store.h"

struct fx {
	char *dir;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->dir = tu_mkdtemp();
	if (!f->dir) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static bool exists(const struct fx *f, const char *name, off_t *size)
{
	char path[4096];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	if (stat(path, &sb) != 0)
		return false;
	if (size)
		*size = sb.st_size;
	return true;
}

static void append_one(struct store *st, int64_t ts)
{
	struct store_op op = { .path = "ns/a/k", .path_len = 6, .kind = STORE_PUT,
			       .version = ts, .value = "v", .value_len = 1 };
	struct store_event ev = { .commit_ts = ts, .time_ns = ts, .txn = "unit", .ops = &op,
				  .n_ops = 1 };

	assert_errno(store_append(st, &ev, 1), 0);
}

static void marks_written_are_read_back_and_missing_marks_are_enoent(void **state)
{
	struct fx *f = *state;
	struct store_marks m = { .clean_stop_head = 41, .stopped = true, .log_head = 42,
				 .log = { .exists = true, .bytes = 8192, .mtime_ns = 1234567890123,
					  .dev = 7, .ino = 99, .wal_id = INT64_MAX,
					  .wal_bytes = 4152 } };
	struct store_marks r;

	assert_errno(store_marks_read(f->dir, &r), -ENOENT);
	assert_i64_equal(r.clean_stop_head, 0);
	assert_errno(store_marks_write(f->dir, &m), 0);
	assert_errno(store_marks_read(f->dir, &r), 0);
	assert_i64_equal(r.clean_stop_head, 41);
	assert_true(r.stopped);
	assert_i64_equal(r.log_head, 42);
	assert_true(r.log.exists);
	assert_int_equal(r.log.bytes, 8192);
	assert_i64_equal(r.log.mtime_ns, 1234567890123);
	assert_int_equal(r.log.dev, 7);
	assert_int_equal(r.log.ino, 99);
	assert_int_equal(r.log.wal_id, INT64_MAX);
	assert_int_equal(r.log.wal_bytes, 4152);
	/* Written atomically: no temporary file is left. */
	assert_false(exists(f, "statehouse.marks.tmp", NULL));
}

static void a_file_that_is_not_marks_is_refused_with_eio(void **state)
{
	struct fx *f = *state;
	struct store_marks r;
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/statehouse.marks", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("clean_stop_head 9\n", fp);
	assert_int_equal(fclose(fp), 0);
	assert_errno(store_marks_read(f->dir, &r), -EIO);
	assert_i64_equal(r.clean_stop_head, 0);
}

static void a_log_that_must_exist_is_refused_when_missing_or_empty_creating_nothing(void **state)
{
	struct fx *f = *state;
	struct store_options opt = { .fsync = 0, .must_exist = true };
	struct store *st = NULL;
	char path[4096];
	int fd;

	assert_errno(store_open(NULL, f->dir, &opt, &st), -ENODATA);
	assert_null(st);
	assert_false(exists(f, "statehouse.db", NULL));
	snprintf(path, sizeof(path), "%s/statehouse.db", f->dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_errno(store_open(NULL, f->dir, &opt, &st), -ENODATA);
	assert_false(exists(f, "statehouse.db-wal", NULL));
	assert_false(exists(f, "statehouse.db-shm", NULL));
	/* Without must_exist the empty file becomes a new log. */
	opt.must_exist = false;
	assert_errno(store_open(NULL, f->dir, &opt, &st), 0);
	store_close(st);
	/* Now it exists and holds a schema: must_exist opens it. */
	opt.must_exist = true;
	assert_errno(store_open(NULL, f->dir, &opt, &st), 0);
	store_close(st);
}

static void a_close_without_a_clean_stop_keeps_the_wal_and_one_after_it_folds_it_in(void **state)
{
	struct fx *f = *state;
	struct store_options opt = { .fsync = 0 };
	struct store_log_file lf, again;
	struct store *st = NULL;
	off_t wal = 0;

	assert_errno(store_open(NULL, f->dir, &opt, &st), 0);
	append_one(st, 1);
	store_close(st);
	assert_true(exists(f, "statehouse.db-wal", &wal));
	assert_true(wal > 32);
	assert_errno(store_log_file_state(NULL, f->dir, &lf), 0);
	assert_true(lf.exists);
	assert_int_equal(lf.wal_bytes, (uint64_t)wal);
	assert_true(lf.wal_id != 0);

	/* Only looked at: the files stay exactly as they were. */
	assert_errno(store_open(NULL, f->dir, &opt, &st), 0);
	store_close(st);
	assert_errno(store_log_file_state(NULL, f->dir, &again), 0);
	assert_int_equal(again.wal_id, lf.wal_id);
	assert_int_equal(again.wal_bytes, lf.wal_bytes);
	assert_int_equal(again.bytes, lf.bytes);

	/* A clean stop: the close folds the log in and removes it. */
	assert_errno(store_open(NULL, f->dir, &opt, &st), 0);
	assert_errno(store_record_stop(st), 0);
	store_close(st);
	assert_false(exists(f, "statehouse.db-wal", NULL));
	assert_errno(store_log_sync(NULL, f->dir), 0);
	assert_errno(store_log_file_state(NULL, f->dir, &again), 0);
	assert_int_equal(again.wal_id, 0);
	assert_int_equal(again.wal_bytes, 0);
}

static void a_store_only_opened_leaves_no_empty_wal_behind(void **state)
{
	struct fx *f = *state;
	struct store_options opt = { .fsync = 0 };
	struct store *st = NULL;

	assert_errno(store_open(NULL, f->dir, &opt, &st), 0);
	assert_errno(store_record_stop(st), 0);
	store_close(st);
	assert_false(exists(f, "statehouse.db-wal", NULL));
	assert_errno(store_open(NULL, f->dir, &opt, &st), 0);
	store_close(st);
	assert_false(exists(f, "statehouse.db-wal", NULL));
	assert_false(exists(f, "statehouse.db-shm", NULL));
}

struct one_entry {
	int given;
};

static int next_one(void *arg, struct store_snap_entry *e)
{
	struct one_entry *x = arg;

	if (x->given++)
		return 0;
	*e = (struct store_snap_entry){ .path = "ns/a/k", .path_len = 6, .version = 1,
					.commit_ts = 1, .time_ns = 1, .value = "v",
					.value_len = 1 };
	return 1;
}

static int count_entry(void *arg, const struct store_snap_entry *e)
{
	(void)e;
	(*(int *)arg)++;
	return 0;
}

static void the_newest_valid_snapshot_is_found_and_none_is_renamed_or_loaded_past_the_log(void **state)
{
	struct fx *f = *state;
	struct one_entry x = { 0 };
	char path[4096];
	int64_t ts;
	uint64_t n;
	int count = 0;

	assert_errno(store_snapshot_newest(f->dir, &ts), 0);
	assert_i64_equal(ts, 0);
	assert_errno(store_snapshot_write(f->dir, 2, 2, next_one, &x, 3), 0);
	x.given = 0;
	assert_errno(store_snapshot_write(f->dir, 5, 5, next_one, &x, 3), 0);
	assert_errno(store_snapshot_newest(f->dir, &ts), 0);
	assert_i64_equal(ts, 5);
	/* A damaged newest one does not count. */
	snprintf(path, sizeof(path), "%s/snapshots/snap-%020d.bin", f->dir, 5);
	assert_int_equal(truncate(path, 20), 0);
	assert_errno(store_snapshot_newest(f->dir, &ts), 0);
	assert_i64_equal(ts, 2);
	/* A load below both skips both and renames nothing. */
	assert_errno(store_snapshot_load(f->dir, 1, count_entry, &count, &ts, &n), 0);
	assert_i64_equal(ts, 0);
	assert_int_equal(count, 0);
	assert_true(exists(f, "snapshots/snap-00000000000000000002.bin", NULL));
	assert_true(exists(f, "snapshots/snap-00000000000000000005.bin", NULL));
	assert_false(exists(f, "snapshots/snap-00000000000000000002.bin.stale", NULL));
}

static void a_recovery_is_recorded_in_the_store(void **state)
{
	struct fx *f = *state;
	struct store_options opt = { .fsync = 0 };
	struct store_recovery r = { .time_ns = 1, .log_head = 3, .snapshot_ts = 6,
				    .acknowledged = 9, .new_head = 6 };
	struct store *st = NULL;
	int status = -1;
	char *out;

	assert_errno(store_open(NULL, f->dir, &opt, &st), 0);
	assert_errno(store_record_recovery(st, &r), 0);
	assert_errno(store_record_stop(st), 0);
	store_close(st);
	out = tu_run("command -v sqlite3 >/dev/null", &status);
	free(out);
	if (status != 0)
		skip_because("the sqlite3 shell is not installed; cannot inspect the table");
	{
		char cmd[4200];

		snprintf(cmd, sizeof(cmd),
			 "sqlite3 -readonly '%s/statehouse.db' 'SELECT log_head, snapshot_ts,"
			 " acknowledged, new_head FROM recoveries'", f->dir);
		out = tu_run(cmd, &status);
	}
	assert_non_null(out);
	assert_int_equal(status, 0);
	assert_string_equal(out, "3|6|9|6\n");
	free(out);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(marks_written_are_read_back_and_missing_marks_are_enoent),
		T(a_file_that_is_not_marks_is_refused_with_eio),
		T(a_log_that_must_exist_is_refused_when_missing_or_empty_creating_nothing),
		T(a_close_without_a_clean_stop_keeps_the_wal_and_one_after_it_folds_it_in),
		T(a_store_only_opened_leaves_no_empty_wal_behind),
		T(the_newest_valid_snapshot_is_found_and_none_is_renamed_or_loaded_past_the_log),
		T(a_recovery_is_recorded_in_the_store),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
