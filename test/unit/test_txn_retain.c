/* SPDX-License-Identifier: MIT */
/*
 * test_txn_retain.c - cmocka unit tests of retention in the txn layer: an engine with
 * keep_versions prunes its log in the background (retain.c, on the committer thread),
 * the live state, recovery from a snapshot older than the prune, and the whole kept log
 * all agree (txn_verify()), and the past below the horizon answers ENOENT.
 * The fixture and helpers are in txnfx.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#include "txnfx.h"

/* Everything the live tree shows, recursively: each entry's type, version, commit,
 * times and value. */
static void dump_dir(struct fx *f, const char *path, FILE *out)
{
	struct dirent_entry *d = NULL;
	size_t n = 0;

	assert_errno(txn_list(f->eng, NULL, path, strlen(path), &d, &n), 0);
	for (size_t i = 0; i < n; i++) {
		char child[1024];
		struct txn_entry e;

		snprintf(child, sizeof(child), "%s%s%s", path, path[0] ? "/" : "", d[i].name);
		assert_errno(txn_stat(f->eng, NULL, child, strlen(child), &e), 0);
		fprintf(out, "%s type=%d v%" PRId64 "@%" PRId64 " t=%" PRId64, child, (int)e.type,
			e.version, e.commit_ts, e.time_ns);
		if (e.type == TXN_FILE) {
			int err = 0;
			char *v = get(f, NULL, child, &err, NULL);

			assert_errno(err, 0);
			fprintf(out, " '%s'\n", v);
			free(v);
		} else {
			fputc('\n', out);
			dump_dir(f, child, out);
		}
	}
	dirents_free(d, n);
}

static char *dump(struct fx *f)
{
	char *s = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&s, &len);

	dump_dir(f, "", out);
	fclose(out);
	return s;
}

/* Overwrites, deletes and a key made again, a directory made and removed, a rename, a
 * transaction: every kind of history a prune has to sum up. */
static void workload(struct fx *f, int rounds)
{
	char val[32];

	for (int i = 0; i < rounds; i++) {
		snprintf(val, sizeof(val), "k%d", i);
		assert_errno(put(f, "ns/a/k", val, NULL), 0);
		snprintf(val, sizeof(val), "j%d", i);
		assert_errno(put(f, "ns/b/j", val, NULL), 0);
	}
	assert_errno(put(f, "ns/a/gone", "g", NULL), 0);
	assert_errno(del(f, "ns/a/gone", NULL), 0);
	assert_errno(put(f, "ns/a/back", "b1", NULL), 0);
	assert_errno(del(f, "ns/a/back", NULL), 0);
	assert_errno(put(f, "ns/a/back", "b3", NULL), 0);
	assert_errno(put(f, "ns/a/back", "b4", NULL), 0);
	assert_errno(txn_live_mkdir(f->eng, "ns/a/d", 6, NULL), 0);
	assert_errno(put(f, "ns/a/d/x", "x1", NULL), 0);
	assert_errno(put(f, "ns/a/d/x", "x2", NULL), 0);
	assert_errno(txn_live_mkdir(f->eng, "ns/a/e", 6, NULL), 0);
	assert_errno(txn_live_rmdir(f->eng, "ns/a/e", 6, NULL), 0);
	assert_errno(ren(f, "ns/a/back", "ns/c/moved", false, NULL), 0);
	{
		char name[32];
		struct txn *tx;

		snprintf(name, sizeof(name), "t%d", rounds);
		tx = begin(f, name);
		assert_errno(stage(f, tx, "ns/a/k", "from-tx"), 0);
		assert_errno(stage(f, tx, "ns/b/t", "t"), 0);
		assert_errno(commit(f, tx, NULL), 0);
	}
}

/* More history on what workload() made: overwrites, the directory emptied and removed, a
 * moved key deleted. */
static void workload_more(struct fx *f, int rounds)
{
	char val[32];

	for (int i = 0; i < rounds; i++) {
		snprintf(val, sizeof(val), "k+%d", i);
		assert_errno(put(f, "ns/a/k", val, NULL), 0);
		assert_errno(put(f, "ns/a/d/x", val, NULL), 0);
	}
	assert_errno(del(f, "ns/a/d/x", NULL), 0);
	assert_errno(txn_live_rmdir(f->eng, "ns/a/d", 6, NULL), 0);
	assert_errno(del(f, "ns/c/moved", NULL), 0);
	assert_errno(put(f, "ns/b/j", "last", NULL), 0);
}

/* Wait until the log keeps only `versions` versions of path (the pruner runs in the
 * background, a round a second at most). */
static void wait_history(struct fx *f, const char *path, size_t versions)
{
	time_t end = time(NULL) + WAIT_S;
	struct txn_version *v = NULL;
	size_t n = 0;

	for (;;) {
		assert_errno(txn_history(f->eng, path, strlen(path), &v, &n), 0);
		free(v);
		if (n == versions)
			return;
		assert_true(time(NULL) < end);
		usleep(20000);
	}
}

static int64_t head(struct fx *f)
{
	return txn_engine_head(f->eng);
}

static void a_pruned_log_keeps_the_live_state_and_every_rebuild_agrees(void **state)
{
	struct fx *f = *state;
	char *before, *after;

	workload(f, 20);
	before = dump(f);
	f->opt.keep_versions = 1;
	restart(f);
	wait_history(f, "ns/a/k", 1);
	wait_history(f, "ns/b/j", 1);
	after = dump(f);
	assert_string_equal(after, before);
	free(after);

	/* Snapshot + replay (the normal start) and the whole kept log agree... */
	restart(f);
	after = dump(f);
	assert_string_equal(after, before);
	free(after);
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(txn_verify(f->dir, NULL), 0);
	/* ... and the whole kept log alone rebuilds the same tree. */
	f->opt.full_replay = true;
	f->opt.keep_versions = 0;
	assert_errno(fx_start(f), 0);
	after = dump(f);
	assert_string_equal(after, before);
	free(after);
	free(before);
	/* Versions go on after the last one, kept or pruned. */
	assert_errno(put(f, "ns/a/gone", "again", NULL), 0);
	assert_int_equal(version_of(f, NULL, "ns/a/gone"), 3);
	assert_int_equal(version_of(f, NULL, "ns/a/k"), 21);
}

static void a_snapshot_older_than_the_prune_still_recovers_the_same_state(void **state)
{
	struct fx *f = *state;
	char *before, *after;
	int64_t snap;

	/* A snapshot at the head, then no more snapshots: recovery will load it and replay
	 * a log pruned past it. */
	f->opt.snapshot_interval = 1000;
	f->opt.snapshot_keep = 3;
	restart(f);
	workload(f, 5);
	restart(f);
	snap = head(f);
	f->opt.snapshot_interval = 0;
	f->opt.keep_versions = 1;
	restart(f);
	workload_more(f, 10);
	wait_history(f, "ns/a/k", 1);
	assert_true(txn_engine_horizon(f->eng) > snap);
	before = dump(f);
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(txn_verify(f->dir, NULL), 0);
	assert_errno(fx_start(f), 0);
	after = dump(f);
	assert_string_equal(after, before);
	free(before);
	free(after);
}

static int first_event(void *arg, const struct txn_event *ev)
{
	int64_t *first = arg;

	if (!*first)
		*first = ev->commit_ts;
	return 0;
}

static void the_past_below_the_horizon_is_enoent_and_history_lists_what_is_kept(void **state)
{
	struct fx *f = *state;
	struct txn_version *v = NULL;
	struct txn_stats st;
	struct txn_entry e;
	struct blob *b = NULL;
	int64_t h, first = 0, ts_k;
	size_t n = 0;

	assert_errno(put(f, "ns/a/k", "1", NULL), 0);
	assert_errno(put(f, "ns/a/cold", "c", NULL), 0);
	assert_errno(put(f, "ns/a/k", "2", NULL), 0);
	assert_errno(put(f, "ns/a/k", "3", &ts_k), 0);
	assert_i64_equal(txn_engine_horizon(f->eng), 0);
	assert_errno(txn_at_stat(f->eng, 1, "ns/a/k", 6, &e), 0);
	f->opt.keep_versions = 1;
	restart(f);
	wait_history(f, "ns/a/k", 1);
	h = txn_engine_horizon(f->eng);
	assert_i64_equal(h, ts_k);

	/* .at below the horizon: gone, even its root; at it: the state as it was. */
	assert_errno(txn_at_stat(f->eng, h - 1, "", 0, &e), -ENOENT);
	assert_errno(txn_at_stat(f->eng, h - 1, "ns/a/cold", 9, &e), -ENOENT);
	assert_errno(txn_at_read(f->eng, h, "ns/a/k", 6, &b, &e), 0);
	assert_int_equal(b->len, 1);
	assert_memory_equal(b->data, "3", 1);
	blob_unref(b);
	assert_errno(txn_at_read(f->eng, h, "ns/a/cold", 9, &b, &e), 0);
	blob_unref(b);

	/* .history: what is kept; a pruned version is ENOENT by number. */
	assert_errno(txn_history(f->eng, "ns/a/k", 6, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_i64_equal(v[0].version, 3);
	free(v);
	assert_errno(txn_history(f->eng, "ns/a/cold", 9, &v, &n), 0);
	assert_int_equal(n, 1);
	free(v);
	{
		struct txn_version meta;

		assert_errno(txn_history_value(f->eng, "ns/a/k", 6, 2, &b, &meta), -ENOENT);
	}

	/* The event log starts at the horizon. */
	assert_errno(txn_events(f->eng, NULL, 0, 1, head(f), first_event, &first), 0);
	assert_i64_equal(first, h);

	txn_engine_stats(f->eng, &st);
	assert_i64_equal(st.horizon_ts, h);
	assert_i64_equal(st.pruned_ops, 2);
	assert_true(st.free_known || st.pruned_ops); /* vacuum may not have run yet */
}

static void an_engine_without_rules_keeps_the_horizon_and_prunes_nothing_more(void **state)
{
	struct fx *f = *state;
	int64_t h;

	for (int i = 0; i < 5; i++)
		assert_errno(put(f, "ns/a/k", "v", NULL), 0);
	f->opt.keep_versions = 2;
	restart(f);
	wait_history(f, "ns/a/k", 2);
	h = txn_engine_horizon(f->eng);
	assert_true(h > 0);
	/* Without rules: the horizon is the log's, nothing more goes. */
	f->opt.keep_versions = 0;
	restart(f);
	assert_i64_equal(txn_engine_horizon(f->eng), h);
	assert_errno(put(f, "ns/a/k", "w", NULL), 0);
	{
		struct txn_version *v = NULL;
		size_t n = 0;

		assert_errno(txn_history(f->eng, "ns/a/k", 6, &v, &n), 0);
		assert_int_equal(n, 3);
		free(v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			a_pruned_log_keeps_the_live_state_and_every_rebuild_agrees, setup, teardown),
		cmocka_unit_test_setup_teardown(
			a_snapshot_older_than_the_prune_still_recovers_the_same_state, setup, teardown),
		cmocka_unit_test_setup_teardown(
			the_past_below_the_horizon_is_enoent_and_history_lists_what_is_kept, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			an_engine_without_rules_keeps_the_horizon_and_prunes_nothing_more, setup,
			teardown),
	};

	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
