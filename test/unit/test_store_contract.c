/* SPDX-License-Identifier: MIT */
/*
 * test_store_contract.c - cmocka tests of what store.h promises, run against both
 * backends: SQLite in a data dir, and a volume in a real etcd (etcdfx.c starts one
 * member for the whole file).  Then what only a shared log does: two stores on one
 * volume, the race on the head (STORE_BEHIND), the pull, the wake-up, and the refusals
 * at open.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#include "etcd_client.h"
#include "etcdfx.h"
#include "store.h"

static struct etcdfx etcd;
static int volumes;

struct fx {
	bool shared;
	char uri[160];
	char *dir, *dir2;
};

static int group_setup(void **state)
{
	(void)state;
	return etcdfx_single(&etcd, "contract");
}

static int group_teardown(void **state)
{
	(void)state;
	etcdfx_release(&etcd);
	return 0;
}

static int setup_with(void **state, bool shared)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->shared = shared;
	f->dir = tu_mkdtemp();
	f->dir2 = tu_mkdtemp();
	if (shared) {
		struct store_options o = { .fsync = 1 };

		snprintf(f->uri, sizeof(f->uri), "etcd://%s/contract%d", etcd.endpoint, ++volumes);
		assert_errno(store_create(f->uri, &o), 0);
	}
	*state = f;
	return 0;
}

static int setup_sqlite(void **state)
{
	return setup_with(state, false);
}

static int setup_etcd(void **state)
{
	return setup_with(state, true);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	tu_rmtree(f->dir);
	tu_rmtree(f->dir2);
	free(f->dir);
	free(f->dir2);
	free(f);
	return 0;
}

static struct store *open_on(struct fx *f, const char *dir)
{
	struct store_options o = { .fsync = 1 };
	struct store *st = NULL;

	assert_errno(store_open(f->shared ? f->uri : NULL, dir, &o, &st), 0);
	return st;
}

/* Commit ts: a put of ns/ag/k<key> = "v<ts>" at version ver, by request (9, ts). */
static int put(struct store *st, int64_t ts, int key, int64_t ver)
{
	char path[32], val[32];
	struct store_op op = { path, 0, STORE_PUT, ver, val, 0 };
	struct store_event ev = { .commit_ts = ts, .time_ns = 1000 + ts, .txn = "t",
				  .ops = &op, .n_ops = 1, .req = { 9, (uint64_t)ts } };

	op.path_len = (size_t)snprintf(path, sizeof(path), "ns/ag/k%d", key);
	op.value_len = (size_t)snprintf(val, sizeof(val), "v%lld", (long long)ts);
	return store_append(st, &ev, 1);
}

struct seen {
	int64_t ts[16];
	char val[16][16];
	int n;
};

static int collect(void *arg, const struct store_replay_op *op)
{
	struct seen *s = arg;

	if (s->n < 16) {
		s->ts[s->n] = op->commit_ts;
		snprintf(s->val[s->n], sizeof(s->val[0]), "%.*s", (int)op->value_len,
			 (const char *)op->value);
		s->n++;
	}
	return 0;
}

static int collect_event(void *arg, const struct store_event *ev)
{
	struct seen *s = arg;

	if (s->n < 16) {
		s->ts[s->n] = ev->commit_ts;
		snprintf(s->val[s->n], sizeof(s->val[0]), "%.*s", (int)ev->ops[0].value_len,
			 (const char *)ev->ops[0].value);
		s->n++;
	}
	return 0;
}

/* ---- the contract, both backends ------------------------------------------------------ */

static void appends_replay_in_order_and_survive_a_reopen(void **state)
{
	struct fx *f = *state;
	struct store *st = open_on(f, f->dir);
	struct store_replay_stats stats;
	struct seen s = { 0 };
	int64_t head = -1;

	assert_errno(put(st, 1, 1, 1), 0);
	assert_errno(put(st, 2, 2, 1), 0);
	assert_errno(put(st, 3, 1, 2), 0);
	assert_errno(store_check(st, &head), 0);
	assert_i64_equal(head, 3);
	store_close(st);
	st = open_on(f, f->dir);
	assert_errno(store_replay(st, 0, collect, &s, &stats), 0);
	assert_int_equal(s.n, 3);
	assert_i64_equal(stats.head_ts, 3);
	assert_i64_equal(s.ts[0], 1);
	assert_i64_equal(s.ts[2], 3);
	assert_string_equal(s.val[2], "v3");
	s.n = 0;
	assert_errno(store_replay(st, 2, collect, &s, &stats), 0);
	assert_int_equal(s.n, 1);
	store_close(st);
}

static void the_past_reads_what_was_appended(void **state)
{
	struct fx *f = *state;
	struct store *st = open_on(f, f->dir);
	struct store_version v;
	struct seen s = { 0 };

	assert_errno(put(st, 1, 1, 1), 0);
	assert_errno(put(st, 2, 1, 2), 0);
	assert_errno(store_get_at(st, "ns/ag/k1", 8, 1, 1, &v), 0);
	assert_i64_equal(v.version, 1);
	assert_memory_equal(v.value, "v1", 2);
	store_version_release(&v);
	assert_errno(store_get_version(st, "ns/ag/k1", 8, 2, &v), 0);
	assert_memory_equal(v.value, "v2", 2);
	store_version_release(&v);
	assert_errno(store_get_at(st, "ns/ag/nope", 10, 2, 1, &v), -ENOENT);
	assert_errno(store_events(st, 1, 2, NULL, 0, collect_event, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.val[1], "v2");
	store_close(st);
}

static void a_commit_s_request_is_found_applied(void **state)
{
	struct fx *f = *state;
	struct store *st = open_on(f, f->dir);
	struct store_reqid id = { 9, 2 }, other = { 9, 7 };
	struct store_applied a;

	assert_errno(store_applied_claim(st, 9), 0);
	assert_errno(put(st, 1, 1, 1), 0);
	assert_errno(put(st, 2, 2, 1), 0);
	assert_errno(store_applied_find(st, &id, &a), 0);
	assert_i64_equal(a.commit_ts, 2);
	store_applied_release(&a);
	assert_errno(store_applied_find(st, &other, &a), -ENOENT);
	store_close(st);
}

static void a_log_of_one_mount_is_not_shared(void **state)
{
	struct fx *f = *state;
	struct store *st = open_on(f, f->dir);
	struct store_shared sh;
	struct seen s = { 0 };

	store_shared_state(st, &sh);
	assert_int_equal(sh.shared, f->shared);
	assert_errno(store_pull(st, 0, collect_event, &s), 0);
	assert_int_equal(s.n, 0);
	if (f->shared) {
		assert_string_equal(sh.volume, strrchr(f->uri, '/') + 1);
		assert_true(sh.reachable);
	} else {
		struct store_options o = { .fsync = 1 };

		assert_errno(store_create("sqlite:", &o), -EOPNOTSUPP);
		assert_false(store_stale(st));
	}
	store_close(st);
}

/* ---- a shared log ---------------------------------------------------------------------- */

static void a_second_store_of_a_volume_is_behind_until_it_pulls(void **state)
{
	struct fx *f = *state;
	struct store *a = open_on(f, f->dir), *b = open_on(f, f->dir2);
	struct store_version v;
	struct seen s = { 0 };

	assert_errno(put(a, 1, 1, 1), 0);
	/* b validated against its own head (0): etcd's head moved, nothing appended */
	assert_errno(put(b, 1, 2, 1), STORE_BEHIND);
	assert_errno(store_pull(b, 0, collect_event, &s), 0);
	assert_int_equal(s.n, 1);
	assert_i64_equal(s.ts[0], 1);
	assert_string_equal(s.val[0], "v1");
	/* pulled into b's replica: its past has it */
	assert_errno(store_get_at(b, "ns/ag/k1", 8, 1, 1, &v), 0);
	store_version_release(&v);
	assert_errno(put(b, 2, 2, 1), 0);
	s.n = 0;
	assert_errno(store_pull(a, 1, collect_event, &s), 0);
	assert_int_equal(s.n, 1);
	assert_i64_equal(s.ts[0], 2);
	store_close(b);
	store_close(a);
	/* a reopen of b goes on from its replica; a new data dir is filled from etcd */
	b = open_on(f, f->dir2);
	s.n = 0;
	{
		struct store_replay_stats stats;

		assert_errno(store_replay(b, 0, collect, &s, &stats), 0);
	}
	assert_int_equal(s.n, 2);
	store_close(b);
}

struct waker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int woken;
};

static void wake(void *arg)
{
	struct waker *w = arg;

	pthread_mutex_lock(&w->lock);
	w->woken++;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void another_store_s_commit_wakes_the_watcher(void **state)
{
	struct fx *f = *state;
	struct store *a = open_on(f, f->dir), *b = open_on(f, f->dir2);
	struct waker w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct timespec until;
	struct store_shared sh;
	int rc = 0;

	store_set_wake(a, wake, &w);
	/* the watch comes up (a wake-up too: what came while it was down) */
	for (int i = 0; i < 1500; i++) {
		store_shared_state(a, &sh);
		if (!sh.stale)
			break;
		nanosleep(&(struct timespec){ 0, 20000000 }, NULL);
	}
	assert_false(sh.stale);
	pthread_mutex_lock(&w.lock);
	w.woken = 0;
	pthread_mutex_unlock(&w.lock);
	assert_errno(put(b, 1, 1, 1), 0);
	/* woken (the watch's own "up" may wake it too), knowing of commit 1 */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	for (;;) {
		pthread_mutex_lock(&w.lock);
		while (!w.woken && rc == 0)
			rc = pthread_cond_timedwait(&w.cond, &w.lock, &until);
		w.woken = 0;
		pthread_mutex_unlock(&w.lock);
		store_shared_state(a, &sh);
		if (sh.remote_head == 1 || rc)
			break;
	}
	assert_i64_equal(sh.remote_head, 1);
	store_close(b);
	store_close(a);
}

static void a_volume_is_made_once_and_must_exist(void **state)
{
	struct fx *f = *state;
	struct store_options o = { .fsync = 1 };
	struct store *st = NULL;
	char uri[160];

	assert_errno(store_create(f->uri, &o), -EEXIST);
	snprintf(uri, sizeof(uri), "etcd://%s/never-made", etcd.endpoint);
	assert_errno(store_open(uri, f->dir, &o, &st), -ENOENT);
	assert_null(st);
	assert_errno(store_uri_check("etcd://h:1/a/b"), -EINVAL);
	assert_errno(store_uri_check("etcd://h:1,h:2/v"), 0);
	o.params = "etcd_nonsense=1";
	assert_errno(store_open(f->uri, f->dir, &o, &st), -EINVAL);
}

/* etcd lost commits (restored from an older backup): the replica is ahead; refused. */
static void a_replica_ahead_of_etcd_is_refused(void **state)
{
	struct fx *f = *state;
	struct store *st = open_on(f, f->dir);
	const char *ep = etcd.endpoint;
	struct etcd_config cfg = { .endpoints = &ep, .n_endpoints = 1 };
	struct store_options o = { .fsync = 1 };
	struct etcd_client *c;
	char key[96];

	assert_errno(put(st, 1, 1, 1), 0);
	assert_errno(put(st, 2, 1, 2), 0);
	store_close(st);
	assert_errno(etcd_open(&cfg, &c), 0);
	snprintf(key, sizeof(key), "/statehouse/%s/head", strrchr(f->uri, '/') + 1);
	assert_errno(etcd_put(c, key, strlen(key), "1", 1), 0);
	etcd_close(c);
	st = NULL;
	assert_errno(store_open(f->uri, f->dir, &o, &st), -EIO);
	assert_null(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define BOTH(t)                                                                        \
	cmocka_unit_test_setup_teardown(t, setup_sqlite, teardown),                     \
		cmocka_unit_test_setup_teardown(t, setup_etcd, teardown)
		BOTH(appends_replay_in_order_and_survive_a_reopen),
		BOTH(the_past_reads_what_was_appended),
		BOTH(a_commit_s_request_is_found_applied),
		BOTH(a_log_of_one_mount_is_not_shared),
#undef BOTH
		cmocka_unit_test_setup_teardown(a_second_store_of_a_volume_is_behind_until_it_pulls,
						setup_etcd, teardown),
		cmocka_unit_test_setup_teardown(another_store_s_commit_wakes_the_watcher,
						setup_etcd, teardown),
		cmocka_unit_test_setup_teardown(a_volume_is_made_once_and_must_exist, setup_etcd,
						teardown),
		cmocka_unit_test_setup_teardown(a_replica_ahead_of_etcd_is_refused, setup_etcd,
						teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
