/* SPDX-License-Identifier: MIT */
/*
 * test_store_applied.c - cmocka unit tests of the applied-request records in the store
 * layer: an event appended with a request id is found under it, in the append's own
 * transaction (a failed append leaves none), claims remove other mounts' records, the
 * bound removes old ones, and statehoused --vacuum keeps the table.  The SQLite shell,
 * when installed, only looks at the database from outside.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "log.h"
#include "store.h"

#define INST UINT64_C(0xfeedface12345678) /* bit 63 set: stored as a negative integer */
#define RESENT (UINT64_C(1) << 63)

struct fx {
	char *dir;
	struct store *st;
	int64_t head;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store_options opt = { .fsync = 0 };

	if (!f)
		return -1;
	f->dir = tu_mkdtemp();
	if (!f->dir || store_open(NULL, f->dir, &opt, &f->st) != 0) {
		tu_rmtree(f->dir);
		free(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->st);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void reopen(struct fx *f)
{
	struct store_options opt = { .fsync = 0 };

	store_close(f->st);
	f->st = NULL;
	assert_errno(store_open(NULL, f->dir, &opt, &f->st), 0);
}

static bool have_sqlite_shell(void)
{
	int status = -1;
	char *out = tu_run("command -v sqlite3 2>/dev/null", &status);
	bool ok = out && status == 0 && out[0] == '/';

	free(out);
	return ok;
}

/* The shell's answer to query on the store, without its trailing newline. */
static char *sql(const char *dir, const char *query)
{
	char *cmd = NULL, *out;
	int status = -1;
	size_t n;

	if (asprintf(&cmd, "sqlite3 '%s/statehouse.db' \"%s\" 2>&1", dir, query) < 0)
		return NULL;
	out = tu_run(cmd, &status);
	free(cmd);
	assert_non_null(out);
	n = strlen(out);
	if (n && out[n - 1] == '\n')
		out[n - 1] = '\0';
	if (status != 0)
		fail_msg("sqlite3 '%s': %s", query, out);
	return out;
}

static void assert_sql(const char *dir, const char *query, const char *want)
{
	char *got = sql(dir, query);

	if (strcmp(got, want) != 0) {
		print_error("'%s' gives \"%s\", expected \"%s\"\n", query, got, want);
		free(got);
		fail();
	}
	free(got);
}

/* An event of one put at the next commit_ts, recorded under (instance, unique). */
static struct store_event event(struct fx *f, int64_t i, const struct store_op *op,
				uint64_t instance, uint64_t unique)
{
	return (struct store_event){ .commit_ts = f->head + 1 + i, .time_ns = 1000 + i,
				     .txn = "t", .ops = op, .n_ops = op ? 1 : 0,
				     .req = { instance, unique } };
}

static int find(struct fx *f, uint64_t instance, uint64_t unique, struct store_applied *out)
{
	struct store_reqid id = { instance, unique };

	return store_applied_find(f->st, &id, out);
}

static int64_t found_ts(struct fx *f, uint64_t instance, uint64_t unique)
{
	struct store_applied a;
	int err = find(f, instance, unique, &a);
	int64_t ts = err ? err : a.commit_ts;

	store_applied_release(&a);
	return ts;
}

static const struct store_op put_k = { "ns/a/k", 6, STORE_PUT, 1, "v", 1 };

/* ---- the record ------------------------------------------------------------------------ */

static void an_event_with_a_request_id_is_found_with_its_commit(void **state)
{
	struct fx *f = *state;
	struct store_event ev = event(f, 0, &put_k, INST, 42);
	struct store_applied a;

	assert_errno(store_applied_claim(f->st, INST), 0);
	assert_errno(store_append(f->st, &ev, 1), 0);
	f->head++;
	assert_errno(find(f, INST, 42, &a), 0);
	assert_i64_equal(a.commit_ts, 1);
	assert_i64_equal(a.time_ns, 1000);
	assert_non_null(a.txn);
	assert_string_equal(a.txn, "t");
	store_applied_release(&a);
	assert_null(a.txn);
	/* The kernel resends it with bit 63 set: the same request. */
	assert_i64_equal(found_ts(f, INST, 42 | RESENT), 1);
	assert_i64_equal(found_ts(f, INST, 43), -ENOENT);
	assert_i64_equal(found_ts(f, INST ^ 1, 42), -ENOENT);
}

static void every_event_of_a_batch_gets_its_own_record_and_none_without_an_id(void **state)
{
	struct fx *f = *state;
	struct store_event evs[4] = { event(f, 0, &put_k, INST, 7), event(f, 1, NULL, 0, 0),
				      event(f, 2, NULL, INST, 9), event(f, 3, NULL, INST, 8) };

	assert_errno(store_append(f->st, evs, 4), 0);
	f->head += 4;
	assert_i64_equal(found_ts(f, INST, 7), 1);
	assert_i64_equal(found_ts(f, INST, 9), 3);
	assert_i64_equal(found_ts(f, INST, 8), 4);
	assert_i64_equal(found_ts(f, INST, 0), -ENOENT);
	if (!have_sqlite_shell()) {
		skip_because("the sqlite3 shell is not installed");
		return;
	}
	assert_sql(f->dir, "SELECT group_concat(commit_ts) FROM (SELECT commit_ts FROM applied"
			   " ORDER BY 1)", "1,3,4");
}

static void events_without_ids_make_no_table(void **state)
{
	struct fx *f = *state;
	struct store_event ev = event(f, 0, &put_k, 0, 5);

	assert_errno(store_applied_claim(f->st, 0), 0);
	assert_errno(store_append(f->st, &ev, 1), 0);
	assert_i64_equal(found_ts(f, INST, 5), -ENOENT);
	if (!have_sqlite_shell()) {
		skip_because("the sqlite3 shell is not installed");
		return;
	}
	assert_sql(f->dir, "SELECT count(*) FROM sqlite_master WHERE name = 'applied'", "0");
}

static void a_request_that_commits_twice_keeps_its_newest_commit(void **state)
{
	struct fx *f = *state;
	struct store_event evs[2] = { event(f, 0, &put_k, INST, 3), event(f, 1, NULL, INST, 3) };

	assert_errno(store_append(f->st, evs, 2), 0);
	assert_i64_equal(found_ts(f, INST, 3), 2);
}

/* ---- atomic with the commit ------------------------------------------------------------- */

static void an_append_that_fails_leaves_no_record(void **state)
{
	struct fx *f = *state;
	struct store_event first = event(f, 0, &put_k, INST, 1);
	/* The second event reuses commit_ts 1: the whole append is rolled back. */
	struct store_event batch[2] = { event(f, 1, NULL, INST, 2), event(f, 0, NULL, INST, 3) };

	assert_errno(store_append(f->st, &first, 1), 0);
	assert_true(store_append(f->st, batch, 2) < 0);
	assert_i64_equal(found_ts(f, INST, 1), 1);
	assert_i64_equal(found_ts(f, INST, 2), -ENOENT);
	assert_i64_equal(found_ts(f, INST, 3), -ENOENT);
}

#if STATEHOUSE_FAULT_INJECTION
static void an_injected_store_fault_leaves_no_record(void **state)
{
	struct fx *f = *state;
	struct store_event ev = event(f, 0, &put_k, INST, 11);

	store_set_fault(f->st, 0, -ENOSPC);
	assert_errno(store_append(f->st, &ev, 1), -ENOSPC);
	assert_i64_equal(found_ts(f, INST, 11), -EIO); /* reads fail too while it lasts */
	store_set_fault(f->st, 0, 0);
	assert_i64_equal(found_ts(f, INST, 11), -ENOENT);
	assert_errno(store_append(f->st, &ev, 1), 0);
	assert_i64_equal(found_ts(f, INST, 11), 1);
}
#endif

/* ---- claims and the bound ---------------------------------------------------------------- */

static void a_claim_keeps_its_own_records_and_removes_other_mounts(void **state)
{
	struct fx *f = *state;
	struct store_event evs[2] = { event(f, 0, &put_k, INST, 1), event(f, 1, NULL, 77, 2) };

	assert_errno(store_append(f->st, evs, 2), 0);
	reopen(f);
	assert_i64_equal(found_ts(f, INST, 1), 1);
	assert_i64_equal(found_ts(f, 77, 2), 2);
	assert_errno(store_applied_claim(f->st, INST), 0);
	assert_i64_equal(found_ts(f, INST, 1), 1);
	assert_i64_equal(found_ts(f, 77, 2), -ENOENT);
	/* A serving process without an instance keeps none. */
	assert_errno(store_applied_claim(f->st, 0), 0);
	assert_i64_equal(found_ts(f, INST, 1), -ENOENT);
}

static void records_far_below_the_head_are_removed(void **state)
{
	struct fx *f = *state;
	enum { BATCH = 4096, N = STORE_APPLIED_KEEP + 2 * BATCH }; /* whole batches */
	struct store_event *evs = calloc(BATCH, sizeof(*evs));

	assert_non_null(evs);
	for (int64_t b = 0; b < N / BATCH; b++) {
		for (int64_t i = 0; i < BATCH; i++)
			evs[i] = event(f, i, NULL, INST, (uint64_t)(f->head + 1 + i));
		assert_errno(store_append(f->st, evs, BATCH), 0);
		f->head += BATCH;
	}
	free(evs);
	/* The last append (head N) removed every record at or below N - KEEP. */
	assert_i64_equal(found_ts(f, INST, 1), -ENOENT);
	assert_i64_equal(found_ts(f, INST, N - STORE_APPLIED_KEEP), -ENOENT);
	assert_i64_equal(found_ts(f, INST, N - STORE_APPLIED_KEEP + 1),
			 N - STORE_APPLIED_KEEP + 1);
	assert_i64_equal(found_ts(f, INST, N), N);
	if (!have_sqlite_shell()) {
		skip_because("the sqlite3 shell is not installed");
		return;
	}
	assert_sql(f->dir, "SELECT count(*) FROM applied", "65536");
}

static void vacuum_keeps_the_records(void **state)
{
	struct fx *f = *state;
	struct store_event ev = event(f, 0, &put_k, INST, 5);
	uint64_t before, after;

	assert_errno(store_append(f->st, &ev, 1), 0);
	store_close(f->st);
	f->st = NULL;
	assert_errno(store_vacuum(NULL, f->dir, &before, &after), 0);
	reopen(f);
	assert_i64_equal(found_ts(f, INST, 5), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(an_event_with_a_request_id_is_found_with_its_commit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			every_event_of_a_batch_gets_its_own_record_and_none_without_an_id, setup,
			teardown),
		cmocka_unit_test_setup_teardown(events_without_ids_make_no_table, setup, teardown),
		cmocka_unit_test_setup_teardown(a_request_that_commits_twice_keeps_its_newest_commit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(an_append_that_fails_leaves_no_record, setup,
						teardown),
#if STATEHOUSE_FAULT_INJECTION
		cmocka_unit_test_setup_teardown(an_injected_store_fault_leaves_no_record, setup,
						teardown),
#endif
		cmocka_unit_test_setup_teardown(
			a_claim_keeps_its_own_records_and_removes_other_mounts, setup, teardown),
		cmocka_unit_test_setup_teardown(records_far_below_the_head_are_removed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(vacuum_keeps_the_records, setup, teardown),
	};

	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
