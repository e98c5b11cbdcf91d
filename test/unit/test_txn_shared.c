/* SPDX-License-Identifier: MIT */
/*
 * test_txn_shared.c - cmocka tests of two engines on one volume in a real etcd (txn
 * layer: remote.c and the committer's race on the shared head): what one commits the
 * other serves and hands to its notify hook; first committer wins across engines, with
 * ESTALE for the loser; autocommits of both get one gap-free commit_ts sequence.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etcdfx.h"
#include "txnfx.h"

static struct etcdfx etcd;
static int volumes;

struct pair {
	struct fx a, b;
	struct hook hb;
	char uri[160];
};

static int group_setup(void **state)
{
	(void)state;
	return etcdfx_single(&etcd, "txnshared");
}

static int group_teardown(void **state)
{
	(void)state;
	etcdfx_release(&etcd);
	return 0;
}

static int start_on(struct fx *f, const char *uri, struct hook *h)
{
	f->opt = default_opt;
	f->opt.store_uri = uri;
	f->dir = tu_mkdtemp();
	if (txn_engine_open(f->dir, &f->opt, &f->eng) != 0)
		return -1;
	if (h)
		txn_engine_set_notify(f->eng, hook_fn, h);
	return txn_engine_start(f->eng);
}

static int pair_setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));

	if (!p)
		return -1;
	snprintf(p->uri, sizeof(p->uri), "etcd://%s/txnshared%d", etcd.endpoint, ++volumes);
	if (txn_store_create(p->uri, NULL) || start_on(&p->a, p->uri, NULL) ||
	    start_on(&p->b, p->uri, &p->hb))
		return -1;
	*state = p;
	return 0;
}

static void fx_close(struct fx *f)
{
	txn_engine_close(f->eng);
	for (size_t i = 0; i < f->ntxs; i++)
		txn_unref(f->txs[i]);
	tu_rmtree(f->dir);
	free(f->dir);
}

static int pair_teardown(void **state)
{
	struct pair *p = *state;

	fx_close(&p->a);
	fx_close(&p->b);
	free(p);
	return 0;
}

/* Wait until path reads want on f (another engine's commit arrives by the watch). */
static void wait_value(struct fx *f, const char *path, const char *want)
{
	for (int i = 0; i < WAIT_S * 50; i++) {
		int err = 0;
		char *v = get(f, NULL, path, &err, NULL);
		bool same = !err && v && !strcmp(v, want);

		free(v);
		if (same)
			return;
		nanosleep(&(struct timespec){ 0, 20000000 }, NULL);
	}
	fail_msg("'%s' never read '%s'", path, want);
}

static void a_commit_on_one_engine_is_served_and_notified_on_the_other(void **state)
{
	struct pair *p = *state;
	int64_t ts = 0;

	assert_errno(put(&p->a, "ns/ag/k", "one", &ts), 0);
	assert_i64_equal(ts, 1);
	wait_value(&p->b, "ns/ag/k", "one");
	assert_i64_equal(txn_engine_head(p->b.eng), 1);
	pthread_mutex_lock(&g_lock);
	assert_non_null(strstr(p->hb.paths, "ns/ag/k"));
	pthread_mutex_unlock(&g_lock);
	assert_errno(put(&p->b, "ns/ag/k", "two", &ts), 0);
	assert_i64_equal(ts, 2);
	wait_value(&p->a, "ns/ag/k", "two");
	assert_i64_equal(version_of(&p->a, NULL, "ns/ag/k"), 2);
}

static void the_same_key_in_two_engines_transactions_commits_once(void **state)
{
	struct pair *p = *state;
	struct txn *ta = begin(&p->a, "ta"), *tb = begin(&p->b, "tb");
	int64_t ts = 0;

	assert_errno(stage(&p->a, ta, "ns/ag/k", "from-a"), 0);
	assert_errno(stage(&p->b, tb, "ns/ag/k", "from-b"), 0);
	assert_errno(commit(&p->a, ta, &ts), 0);
	assert_i64_equal(ts, 1);
	/* b has not seen a's commit yet, or has: either way its commit loses */
	assert_errno(commit(&p->b, tb, &ts), -ESTALE);
	wait_value(&p->b, "ns/ag/k", "from-a");
	assert_i64_equal(txn_engine_head(p->b.eng), 1);
}

static void autocommits_of_both_engines_get_one_gap_free_sequence(void **state)
{
	struct pair *p = *state;
	int64_t ts_a[10], ts_b[10];
	bool seen[21] = { false };

	for (int i = 0; i < 10; i++) {
		char path[32];

		snprintf(path, sizeof(path), "ns/ag/a%d", i);
		assert_errno(put(&p->a, path, "x", &ts_a[i]), 0);
		snprintf(path, sizeof(path), "ns/ag/b%d", i);
		/* b is behind a by one commit each time: its batch is refused and sent again */
		assert_errno(put(&p->b, path, "y", &ts_b[i]), 0);
	}
	for (int i = 0; i < 10; i++) {
		assert_true(ts_a[i] >= 1 && ts_a[i] <= 20 && !seen[ts_a[i]]);
		seen[ts_a[i]] = true;
		assert_true(ts_b[i] >= 1 && ts_b[i] <= 20 && !seen[ts_b[i]]);
		seen[ts_b[i]] = true;
	}
	wait_value(&p->a, "ns/ag/b9", "y");
	assert_i64_equal(txn_engine_head(p->a.eng), 20);
	assert_i64_equal(txn_engine_head(p->b.eng), 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			a_commit_on_one_engine_is_served_and_notified_on_the_other, pair_setup,
			pair_teardown),
		cmocka_unit_test_setup_teardown(
			the_same_key_in_two_engines_transactions_commits_once, pair_setup,
			pair_teardown),
		cmocka_unit_test_setup_teardown(
			autocommits_of_both_engines_get_one_gap_free_sequence, pair_setup,
			pair_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
