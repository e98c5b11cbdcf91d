/* SPDX-License-Identifier: MIT */
/*
 * test_etcd_client.c - cmocka tests of store/etcd_client.h against real etcd members
 * (Debian etcd-server, started by etcdfx.c on loopback ports): bytes through base64,
 * ranges, transactions, the error table, endpoint failover, the watch and its
 * reconnection, status and authentication.
 *
 * One member serves most tests; the ones that need other flags, authentication or a
 * cluster that loses its leader start their own.  A test that stops the shared member
 * continues it in its teardown.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#include "etcd_client.h"
#include "etcdfx.h"

static struct etcdfx shared;
/* What a test starts beyond the shared member, here so that its teardown stops it even
 * after a failure (a watch thread must not outlive its test's records). */
static struct etcdfx own[3];
static struct etcd_watch *w;

/* A client of the given endpoints (NULL-terminated) with timeout_ms. */
static struct etcd_client *client_of(const char *const *eps, long timeout_ms)
{
	struct etcd_config cfg = { .endpoints = eps, .timeout_ms = timeout_ms };
	struct etcd_client *c = NULL;

	while (eps[cfg.n_endpoints])
		cfg.n_endpoints++;
	assert_int_equal(etcd_open(&cfg, &c), 0);
	return c;
}

static struct etcd_client *shared_client(long timeout_ms)
{
	const char *eps[] = { shared.endpoint, NULL };

	return client_of(eps, timeout_ms);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_str(struct etcd_client *c, const char *k, const char *v)
{
	assert_int_equal(etcd_put(c, k, strlen(k), v, strlen(v)), 0);
}

/* ---- a watch's reports, recorded ---------------------------------------------------- */

#define REC_MAX 256

struct rec {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool up;
	int ups, downs;
	char seq[REC_MAX]; /* 'U' up, 'D' down, 'E' events, in order */
	size_t n_seq, calls;
	struct {
		int64_t rev;
		size_t call;
		char key[32], val[32];
	} ev[REC_MAX];
	size_t n_ev;
	bool bad; /* a report that breaks the contract */
};

static void rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
}

static void rec_fn(void *arg, bool up, int64_t rev, const struct etcd_kv *kvs, size_t n)
{
	struct rec *r = arg;

	pthread_mutex_lock(&r->mu);
	if (n == 0) {
		if (up == r->up || rev != 0 || kvs)
			r->bad = true;
		r->up = up;
		*(up ? &r->ups : &r->downs) += 1;
	} else {
		if (!up || !r->up)
			r->bad = true;
		r->calls++;
		for (size_t i = 0; i < n && r->n_ev < REC_MAX; i++, r->n_ev++) {
			if (kvs[i].mod_revision != rev)
				r->bad = true;
			r->ev[r->n_ev].rev = rev;
			r->ev[r->n_ev].call = r->calls;
			snprintf(r->ev[r->n_ev].key, sizeof(r->ev[0].key), "%.*s",
				 (int)kvs[i].key_len, kvs[i].key);
			snprintf(r->ev[r->n_ev].val, sizeof(r->ev[0].val), "%.*s",
				 (int)kvs[i].value_len, kvs[i].value);
		}
	}
	if (r->n_seq < REC_MAX - 1)
		r->seq[r->n_seq++] = n ? 'E' : up ? 'U' : 'D';
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

enum rec_what { REC_UPS, REC_DOWNS, REC_EVENTS };

/* Wait (up to seconds: a bound against hanging, not a speed check) until the count of
 * what reaches at least k; true if it did. */
static bool rec_wait(struct rec *r, enum rec_what what, size_t k, int seconds)
{
	struct timespec until;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += seconds;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		size_t have = what == REC_UPS	? (size_t)r->ups
			      : what == REC_DOWNS ? (size_t)r->downs
						  : r->n_ev;

		if ((ok = have >= k) || pthread_cond_timedwait(&r->cv, &r->mu, &until) != 0)
			break;
	}
	pthread_mutex_unlock(&r->mu);
	if (!ok)
		print_error("waited %d s for %zu %s; seq '%.*s', %zu events\n", seconds, k,
			    what == REC_UPS ? "ups" : what == REC_DOWNS ? "downs" : "events",
			    (int)r->n_seq, r->seq, r->n_ev);
	return ok;
}

/* The recorder of the test's watch. */
static struct rec rec;

static void watch_stop(void)
{
	etcd_watch_stop(w);
	w = NULL;
}

/* ---- fixtures -------------------------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	if (!etcdfx_installed())
		return -1;
	if (etcdfx_init(&shared, "shared", 0, NULL, NULL) || etcdfx_start(&shared) ||
	    etcdfx_wait_ready(&shared, NULL, 60)) {
		etcdfx_release(&shared);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	etcdfx_release(&shared);
	return 0;
}

/* After every test, whatever happened: its watch stopped, its members gone, the shared
 * one running (a test may have stopped it). */
static int cleanup(void **state)
{
	(void)state;
	watch_stop();
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		etcdfx_release(&own[i]);
	etcdfx_signal(&shared, SIGCONT);
	return etcdfx_wait_ready(&shared, NULL, 60);
}

static void ctl(const struct etcdfx *e, const char *args)
{
	char cmd[1024], *out;
	int st = -1;

	snprintf(cmd, sizeof(cmd), "ETCDCTL_API=3 %s --endpoints=http://%s %s 2>&1", ETCDFX_CTL,
		 e->endpoint, args);
	out = tu_run(cmd, &st);
	if (st != 0)
		fail_msg("'%s' failed: %s", cmd, out ? out : "");
	free(out);
}

/* ---- range and put ----------------------------------------------------------------- */

static void binary_keys_and_values_round_trip(void **state)
{
	static const char key[] = { 'b', 'i', 'n', '/', 0, (char)0xff, (char)0xc3, 'k' };
	static const char val[] = { 0, (char)0x80, (char)0xfe, 'v', 0, (char)0xff };
	struct etcd_client *c = shared_client(0);
	struct etcd_range_result r;

	(void)state;
	assert_int_equal(etcd_put(c, key, sizeof(key), val, sizeof(val)), 0);
	assert_int_equal(etcd_range(c, key, sizeof(key), NULL, 0, 0, &r), 0);
	assert_int_equal(r.n, 1);
	assert_false(r.more);
	assert_int_equal(r.kvs[0].key_len, sizeof(key));
	assert_memory_equal(r.kvs[0].key, key, sizeof(key));
	assert_int_equal(r.kvs[0].value_len, sizeof(val));
	assert_memory_equal(r.kvs[0].value, val, sizeof(val));
	assert_int_equal(r.kvs[0].value[sizeof(val)], '\0');
	assert_i64_equal(r.kvs[0].version, 1);
	assert_i64_equal(r.kvs[0].create_revision, r.kvs[0].mod_revision);
	assert_true(r.revision >= r.kvs[0].mod_revision && r.kvs[0].mod_revision > 0);
	etcd_range_free(&r);

	/* an empty value is a value, and a second put makes version 2 */
	assert_int_equal(etcd_put(c, key, sizeof(key), "", 0), 0);
	assert_int_equal(etcd_range(c, key, sizeof(key), NULL, 0, 0, &r), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.kvs[0].value_len, 0);
	assert_non_null(r.kvs[0].value);
	assert_i64_equal(r.kvs[0].version, 2);
	etcd_range_free(&r);
	etcd_close(c);
}

static void a_prefix_range_is_ordered_limited_and_says_more(void **state)
{
	struct etcd_client *c = shared_client(0);
	struct etcd_range_result r;
	const char *keys[] = { "pfx/c", "pfx/a", "pfx/e", "pfx/b", "pfx/d" };

	(void)state;
	for (size_t i = 0; i < 5; i++)
		put_str(c, keys[i], keys[i] + 4);
	put_str(c, "pfy", "outside");
	assert_int_equal(etcd_range(c, "pfx/", 4, "pfx0", 4, 2, &r), 0);
	assert_int_equal(r.n, 2);
	assert_true(r.more);
	assert_memory_equal(r.kvs[0].key, "pfx/a", 5);
	assert_memory_equal(r.kvs[1].key, "pfx/b", 5);
	assert_memory_equal(r.kvs[1].value, "b", 2);
	etcd_range_free(&r);
	assert_int_equal(etcd_range(c, "pfx/", 4, "pfx0", 4, 5, &r), 0);
	assert_int_equal(r.n, 5);
	assert_false(r.more);
	etcd_range_free(&r);
	assert_int_equal(etcd_range(c, "pfx/", 4, "pfx0", 4, 0, &r), 0);
	assert_int_equal(r.n, 5);
	assert_false(r.more);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(r.kvs[i].key[4], 'a' + (int)i);
	etcd_range_free(&r);
	etcd_close(c);
}

static void a_missing_key_ranges_to_nothing(void **state)
{
	struct etcd_client *c = shared_client(0);
	struct etcd_range_result r;

	(void)state;
	assert_int_equal(etcd_range(c, "no/such/key", 11, NULL, 0, 0, &r), 0);
	assert_int_equal(r.n, 0);
	assert_null(r.kvs);
	assert_false(r.more);
	assert_true(r.revision > 0);
	etcd_range_free(&r);
	etcd_close(c);
}

/* ---- transactions ---------------------------------------------------------------------- */

static void a_txn_runs_the_branch_its_comparisons_choose(void **state)
{
	struct etcd_client *c = shared_client(0);
	struct etcd_range_result r;
	struct etcd_txn_result t;
	int64_t mod;

	(void)state;
	put_str(c, "txn/head", "h1");
	assert_int_equal(etcd_range(c, "txn/head", 8, NULL, 0, 0, &r), 0);
	mod = r.kvs[0].mod_revision;
	etcd_range_free(&r);

	struct etcd_compare cmp[] = {
		{ .key = "txn/head", .key_len = 8, .target = ETCD_CMP_VALUE, .value = "h1",
		  .value_len = 2 },
		{ .key = "txn/head", .key_len = 8, .target = ETCD_CMP_MOD, .num = mod },
		{ .key = "txn/head", .key_len = 8, .target = ETCD_CMP_VERSION, .num = 1 },
		{ .key = "txn/head", .key_len = 8, .target = ETCD_CMP_CREATE, .num = mod },
		{ .key = "txn/none", .key_len = 8, .target = ETCD_CMP_VERSION, .num = 0 },
	};
	struct etcd_op succ[] = {
		{ .kind = ETCD_OP_PUT, .key = "txn/head", .key_len = 8, .value = "h2", .value_len = 2 },
		{ .kind = ETCD_OP_PUT, .key = "txn/e1", .key_len = 6, .value = "x", .value_len = 1 },
		{ .kind = ETCD_OP_RANGE, .key = "txn/", .key_len = 4, .end = "txn0", .end_len = 4 },
	};
	struct etcd_op fail[] = {
		{ .kind = ETCD_OP_RANGE, .key = "txn/head", .key_len = 8 },
		{ .kind = ETCD_OP_PUT, .key = "txn/lost", .key_len = 8, .value = "l", .value_len = 1 },
		{ .kind = ETCD_OP_RANGE, .key = "txn/", .key_len = 4, .end = "txn0", .end_len = 4,
		  .limit = 1 },
	};

	assert_int_equal(etcd_txn(c, cmp, 5, succ, 3, fail, 3, &t), 0);
	assert_true(t.succeeded);
	assert_i64_equal(t.revision, mod + 1);
	assert_int_equal(t.n_ranges, 1);
	assert_int_equal(t.ranges[0].n, 2); /* sees its own puts */
	assert_memory_equal(t.ranges[0].kvs[1].key, "txn/head", 8);
	assert_memory_equal(t.ranges[0].kvs[1].value, "h2", 2);
	etcd_txn_free(&t);

	/* each of these fails now, and the failure branch runs (its put too) */
	struct etcd_compare stale[] = {
		cmp[0], cmp[1], cmp[2],
		{ .key = "txn/head", .key_len = 8, .target = ETCD_CMP_CREATE, .num = mod + 1 },
		{ .key = "txn/head", .key_len = 8, .target = ETCD_CMP_VERSION, .num = 0 },
	};
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(etcd_txn(c, &stale[i], 1, succ, 1, fail, 3, &t), 0);
		assert_false(t.succeeded);
		assert_int_equal(t.n_ranges, 2);
		assert_int_equal(t.ranges[0].n, 1);
		assert_memory_equal(t.ranges[0].kvs[0].value, "h2", 2);
		assert_i64_equal(t.ranges[0].kvs[0].version, 2);
		assert_i64_equal(t.ranges[0].kvs[0].mod_revision, mod + 1);
		assert_i64_equal(t.revision, mod + 2 + (int64_t)i);
		assert_int_equal(t.ranges[1].n, 1);
		assert_true(t.ranges[1].more);
		assert_memory_equal(t.ranges[1].kvs[0].key, "txn/e1", 6);
		etcd_txn_free(&t);
	}
	/* a transaction with no comparison runs its success branch */
	assert_int_equal(etcd_txn(c, NULL, 0, &fail[0], 1, NULL, 0, &t), 0);
	assert_true(t.succeeded);
	assert_int_equal(t.n_ranges, 1);
	assert_memory_equal(t.ranges[0].kvs[0].value, "h2", 2);
	etcd_txn_free(&t);
	etcd_close(c);
}

static void a_txn_of_too_many_operations_is_e2big_and_changes_nothing(void **state)
{
	struct etcd_client *c = shared_client(0);
	struct etcd_op ops[129];
	char keys[129][16];
	struct etcd_txn_result t;
	struct etcd_range_result r;

	(void)state;
	for (int i = 0; i < 129; i++) {
		snprintf(keys[i], sizeof(keys[i]), "many/%03d", i);
		ops[i] = (struct etcd_op){ .kind = ETCD_OP_PUT, .key = keys[i], .key_len = 8,
					   .value = "v", .value_len = 1 };
	}
	assert_errno(etcd_txn(c, NULL, 0, ops, 129, NULL, 0, &t), -E2BIG);
	assert_int_equal(t.n_ranges, 0);
	assert_int_equal(etcd_range(c, "many/", 5, "many0", 5, 0, &r), 0);
	assert_int_equal(r.n, 0);
	etcd_range_free(&r);
	/* etcd's default limit is 128 */
	assert_int_equal(etcd_txn(c, NULL, 0, ops, 128, NULL, 0, &t), 0);
	etcd_txn_free(&t);
	etcd_close(c);
}

static void a_request_over_max_request_bytes_is_e2big(void **state)
{
	static const char *const extra[] = { "--max-request-bytes", "4096", NULL };
	size_t big = 600 * 1024;
	char *val = malloc(big);
	struct etcdfx *e = &own[0];
	struct etcd_client *c;
	struct etcd_range_result r;

	(void)state;
	assert_non_null(val);
	memset(val, 'x', big);
	assert_int_equal(etcdfx_init(e, "small", 0, NULL, extra), 0);
	if (etcdfx_start(e) || etcdfx_wait_ready(e, NULL, 60)) {
		etcdfx_release(e);
		fail_msg("etcd with --max-request-bytes did not start");
	}
	{
		const char *eps[] = { e->endpoint, NULL };

		c = client_of(eps, 0);
	}
	/* over etcd's limit: "request is too large"; over gRPC's (the limit + 512 KiB):
	 * "grpc: received message larger than max" */
	assert_errno(etcd_put(c, "big", 3, val, 8000), -E2BIG);
	assert_errno(etcd_put(c, "big", 3, val, big), -E2BIG);
	assert_int_equal(etcd_range(c, "big", 3, NULL, 0, 0, &r), 0);
	assert_int_equal(r.n, 0);
	etcd_range_free(&r);
	assert_int_equal(etcd_put(c, "big", 3, val, 1000), 0);
	etcd_close(c);
	etcdfx_release(e);
	free(val);
}

/* ---- endpoints and the errors of an unreachable or silent etcd --------------------------- */

static void a_closed_endpoint_passes_requests_to_the_next(void **state)
{
	char closed[32];
	struct etcd_client *c;
	struct etcd_status s;
	struct etcd_range_result r;

	(void)state;
	snprintf(closed, sizeof(closed), "127.0.0.1:%d", etcdfx_free_port());
	{
		const char *eps[] = { closed, shared.endpoint, NULL };

		c = client_of(eps, 0);
	}
	put_str(c, "failover/k", "v");
	assert_int_equal(etcd_range(c, "failover/k", 10, NULL, 0, 0, &r), 0);
	assert_int_equal(r.n, 1);
	etcd_range_free(&r);
	assert_int_equal(etcd_status(c, &s), 0);
	assert_string_equal(s.endpoint, shared.endpoint);
	etcd_close(c);
}

static void no_live_endpoint_is_enotconn(void **state)
{
	char a[32], b[32];
	struct etcd_client *c;
	struct etcd_range_result r;
	struct etcd_txn_result t;
	struct etcd_status s;
	struct etcd_op op = { .kind = ETCD_OP_PUT, .key = "k", .key_len = 1, .value = "v",
			      .value_len = 1 };

	(void)state;
	snprintf(a, sizeof(a), "127.0.0.1:%d", etcdfx_free_port());
	snprintf(b, sizeof(b), "localhost:%d", etcdfx_free_port());
	{
		const char *eps[] = { a, b, NULL };

		c = client_of(eps, 0);
	}
	assert_errno(etcd_put(c, "k", 1, "v", 1), -ENOTCONN);
	assert_errno(etcd_range(c, "k", 1, NULL, 0, 0, &r), -ENOTCONN);
	assert_errno(etcd_txn(c, NULL, 0, &op, 1, NULL, 0, &t), -ENOTCONN);
	assert_errno(etcd_status(c, &s), -ENOTCONN);
	etcd_close(c);
}

static void a_request_a_stopped_etcd_does_not_answer_is_etimedout(void **state)
{
	struct etcd_client *c = shared_client(300);
	struct etcd_range_result r;

	(void)state;
	put_str(c, "stopped/k", "before"); /* and a connection kept alive */
	etcdfx_signal(&shared, SIGSTOP);
	assert_errno(etcd_put(c, "stopped/k", 9, "during", 6), -ETIMEDOUT);
	assert_errno(etcd_range(c, "stopped/k", 9, NULL, 0, 0, &r), -ETIMEDOUT);
	etcd_close(c);
	/* a new connection to the stopped member: accepted by the kernel, never answered */
	c = shared_client(300);
	assert_errno(etcd_put(c, "stopped/k", 9, "during", 6), -ETIMEDOUT);
	etcdfx_signal(&shared, SIGCONT);
	assert_int_equal(etcdfx_wait_ready(&shared, NULL, 60), 0);
	put_str(c, "stopped/k", "after");
	etcd_close(c);
}

struct bg_put {
	struct etcd_client *c;
	const char *key;
	int r;
};

static void *bg_put_main(void *arg)
{
	struct bg_put *b = arg;

	b->r = etcd_put(b->c, b->key, strlen(b->key), "v", 1);
	return NULL;
}

static void a_put_whose_member_died_before_answering_is_etimedout(void **state)
{
	struct etcdfx *e = &own[0];
	struct etcd_client *c;
	struct bg_put b = { .key = "died/k" };
	struct timespec pause = { 0, 500 * 1000 * 1000 };
	pthread_t t;

	(void)state;
	assert_int_equal(etcdfx_init(e, "dies", 0, NULL, NULL), 0);
	if (etcdfx_start(e) || etcdfx_wait_ready(e, NULL, 60)) {
		etcdfx_release(e);
		fail_msg("etcd did not start");
	}
	{
		const char *eps[] = { e->endpoint, NULL };

		c = client_of(eps, 30000);
	}
	put_str(c, "died/k", "0"); /* a connection to reuse */
	b.c = c;
	etcdfx_signal(e, SIGSTOP);
	assert_int_equal(pthread_create(&t, NULL, bg_put_main, &b), 0);
	nanosleep(&pause, NULL); /* the request is sent and waits in the socket */
	/* its connection dies without an answer, and no member is left to ask again:
	 * the put may have been applied, so it is in doubt, not unreached */
	etcdfx_kill(e);
	pthread_join(t, NULL);
	assert_errno(b.r, -ETIMEDOUT);
	etcd_close(c);
	etcdfx_release(e);
}

static void endpoints_that_are_not_host_port_are_einval(void **state)
{
	const char *bad[] = { "http://127.0.0.1:2379", "127.0.0.1", "127.0.0.1:0",
			      "127.0.0.1:65536", ":2379", "[::1:2379", "::1:2379",
			      "host/x:2379", "127.0.0.1:23a9", "user@host:1", "127.0.0.1:-1" };
	const char *good[] = { "127.0.0.1:2379", "[::1]:2379", "etcd-1.example:1" };
	struct etcd_client *c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct etcd_config cfg = { .endpoints = &bad[i], .n_endpoints = 1 };

		if (etcd_open(&cfg, &c) != -EINVAL)
			fail_msg("endpoint '%s' was accepted", bad[i]);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct etcd_config cfg = { .endpoints = &good[i], .n_endpoints = 1 };

		assert_int_equal(etcd_open(&cfg, &c), 0);
		etcd_close(c);
	}
	{
		struct etcd_config cfg = { .endpoints = good, .n_endpoints = 0 };

		assert_errno(etcd_open(&cfg, &c), -EINVAL);
		cfg.n_endpoints = 1;
		cfg.cert = "/x.pem"; /* a certificate without its key */
		assert_errno(etcd_open(&cfg, &c), -EINVAL);
	}
	assert_non_null(strstr(etcd_client_lib_version(), "libcurl"));
}

/* ---- status ------------------------------------------------------------------------------ */

static void status_describes_the_answering_member(void **state)
{
	struct etcd_client *c = shared_client(0);
	struct etcd_status s;

	(void)state;
	assert_int_equal(etcd_status(c, &s), 0);
	assert_int_equal(strncmp(s.version, "3.", 2), 0);
	assert_true(s.member_id != 0);
	assert_true(s.leader == s.member_id); /* alone, it leads */
	assert_true(s.raft_index > 0);
	assert_true(s.raft_term > 0);
	assert_true(s.db_size > 0);
	assert_string_equal(s.endpoint, shared.endpoint);
	etcd_close(c);
}

/* ---- the watch --------------------------------------------------------------------------- */

static void a_watch_reports_puts_in_order_one_call_per_revision(void **state)
{
	struct etcd_client *c = shared_client(0);
	struct etcd_range_result r;
	struct etcd_txn_result t;
	struct etcd_op two[] = {
		{ .kind = ETCD_OP_PUT, .key = "w1/c", .key_len = 4, .value = "3", .value_len = 1 },
		{ .kind = ETCD_OP_PUT, .key = "w1/d", .key_len = 4, .value = "4", .value_len = 1 },
	};
	int64_t first;

	(void)state;
	rec_init(&rec);
	put_str(c, "w1/before", "not reported");
	assert_int_equal(etcd_watch_start(c, "w1/", 3, "w10", 3, 0, rec_fn, &rec, &w), 0);
	assert_true(rec_wait(&rec, REC_UPS, 1, 30));
	put_str(c, "w1/a", "1");
	put_str(c, "w2/outside", "x");
	put_str(c, "w1/b", "2");
	assert_int_equal(etcd_txn(c, NULL, 0, two, 2, NULL, 0, &t), 0);
	etcd_txn_free(&t);
	assert_int_equal(etcd_range(c, "w1/a", 4, NULL, 0, 0, &r), 0);
	first = r.kvs[0].mod_revision;
	etcd_range_free(&r);
	put_str(c, "w1/a", "5");
	assert_true(rec_wait(&rec, REC_EVENTS, 5, 30));
	watch_stop();

	assert_false(rec.bad);
	assert_int_equal(rec.n_ev, 5);
	assert_string_equal(rec.seq, "UEEEE");
	assert_string_equal(rec.ev[0].key, "w1/a");
	assert_string_equal(rec.ev[0].val, "1");
	assert_i64_equal(rec.ev[0].rev, first);
	assert_string_equal(rec.ev[1].key, "w1/b");
	assert_i64_equal(rec.ev[1].rev, first + 2); /* w2/outside took first + 1 */
	assert_string_equal(rec.ev[2].key, "w1/c");
	assert_string_equal(rec.ev[3].key, "w1/d");
	assert_i64_equal(rec.ev[2].rev, first + 3);
	assert_i64_equal(rec.ev[3].rev, first + 3);
	assert_int_equal(rec.ev[2].call, rec.ev[3].call);
	assert_string_equal(rec.ev[4].val, "5");
	assert_i64_equal(rec.ev[4].rev, first + 4);
	etcd_close(c);
}

static void a_watch_from_a_past_revision_replays_it_and_skips_deletes(void **state)
{
	struct etcd_client *c = shared_client(0);
	struct etcd_range_result r;
	int64_t start;

	(void)state;
	if (!etcdfx_ctl_installed())
		fail();
	rec_init(&rec);
	put_str(c, "w3/a", "1");
	assert_int_equal(etcd_range(c, "w3/a", 4, NULL, 0, 0, &r), 0);
	start = r.kvs[0].mod_revision;
	etcd_range_free(&r);
	put_str(c, "w3/a", "2");
	put_str(c, "w3/b", "3");
	ctl(&shared, "del w3/a");
	assert_int_equal(etcd_watch_start(c, "w3/", 3, "w30", 3, start, rec_fn, &rec, &w), 0);
	assert_true(rec_wait(&rec, REC_EVENTS, 3, 30));
	put_str(c, "w3/a", "4");
	assert_true(rec_wait(&rec, REC_EVENTS, 4, 30));
	watch_stop();
	assert_false(rec.bad);
	assert_int_equal(rec.n_ev, 4);
	assert_i64_equal(rec.ev[0].rev, start);
	for (size_t i = 1; i < 4; i++) {
		assert_int_equal(rec.ev[i].val[0], '1' + (int)i);
		assert_true(rec.ev[i].call != rec.ev[i - 1].call);
	}
	assert_i64_equal(rec.ev[3].rev, rec.ev[2].rev + 2); /* the delete took one */
	etcd_close(c);
}

static void a_watch_from_a_compacted_revision_goes_on_from_the_oldest_kept(void **state)
{
	struct etcd_client *c = shared_client(0);
	struct etcd_range_result r;
	int64_t first, last;
	char cmd[64];

	(void)state;
	if (!etcdfx_ctl_installed())
		fail();
	rec_init(&rec);
	put_str(c, "w7/a", "1");
	assert_int_equal(etcd_range(c, "w7/a", 4, NULL, 0, 0, &r), 0);
	first = r.kvs[0].mod_revision;
	etcd_range_free(&r);
	put_str(c, "w7/a", "2");
	put_str(c, "w7/a", "3");
	last = first + 2;
	snprintf(cmd, sizeof(cmd), "compaction %" PRId64, last);
	ctl(&shared, cmd);
	assert_int_equal(etcd_watch_start(c, "w7/", 3, "w70", 3, first, rec_fn, &rec, &w), 0);
	assert_true(rec_wait(&rec, REC_EVENTS, 1, 30));
	put_str(c, "w7/a", "4");
	assert_true(rec_wait(&rec, REC_EVENTS, 2, 30));
	watch_stop();
	assert_false(rec.bad);
	/* etcd answers the creation, then cancels it: the stream broke, and came back */
	assert_string_equal(rec.seq, "UDUEE");
	assert_i64_equal(rec.ev[0].rev, last);
	assert_string_equal(rec.ev[0].val, "3");
	assert_string_equal(rec.ev[1].val, "4");
	etcd_close(c);
}

static void a_watch_reconnects_after_its_etcd_was_stopped_and_continued(void **state)
{
	struct etcd_client *c = shared_client(300);

	(void)state;
	rec_init(&rec);
	assert_int_equal(etcd_watch_start(c, "w4/", 3, "w40", 3, 0, rec_fn, &rec, &w), 0);
	assert_true(rec_wait(&rec, REC_UPS, 1, 30));
	put_str(c, "w4/a", "1");
	assert_true(rec_wait(&rec, REC_EVENTS, 1, 30));
	etcdfx_signal(&shared, SIGSTOP);
	assert_true(rec_wait(&rec, REC_DOWNS, 1, 30)); /* its silence was noticed */
	etcdfx_signal(&shared, SIGCONT);
	assert_true(rec_wait(&rec, REC_UPS, 2, 30));
	put_str(c, "w4/b", "2");
	assert_true(rec_wait(&rec, REC_EVENTS, 2, 30));
	watch_stop();
	assert_false(rec.bad);
	assert_string_equal(rec.seq, "UEDUE");
	assert_string_equal(rec.ev[1].val, "2");
	assert_i64_equal(rec.ev[1].rev, rec.ev[0].rev + 1);
	etcd_close(c);
}

static void a_watch_resumes_after_a_restart_with_the_puts_it_missed(void **state)
{
	struct etcdfx *e = &own[0];
	struct etcd_client *c, *side;
	int side_port = etcdfx_free_port();
	char side_ep[32];

	(void)state;
	rec_init(&rec);
	snprintf(side_ep, sizeof(side_ep), "127.0.0.1:%d", side_port);
	assert_int_equal(etcdfx_init(e, "restart", 0, NULL, NULL), 0);
	if (etcdfx_start(e) || etcdfx_wait_ready(e, NULL, 60)) {
		etcdfx_release(e);
		fail_msg("etcd did not start");
	}
	{
		const char *eps[] = { e->endpoint, NULL }, *seps[] = { side_ep, NULL };

		c = client_of(eps, 500);
		side = client_of(seps, 0);
	}
	assert_int_equal(etcd_watch_start(c, "w5/", 3, "w50", 3, 0, rec_fn, &rec, &w), 0);
	assert_true(rec_wait(&rec, REC_UPS, 1, 30));
	put_str(c, "w5/a", "1");
	assert_true(rec_wait(&rec, REC_EVENTS, 1, 30));

	/* killed, then back on another port, where the watch cannot find it: the puts made
	 * there are history when the member returns to the watch's port */
	etcdfx_kill(e);
	assert_true(rec_wait(&rec, REC_DOWNS, 1, 30));
	assert_int_equal(etcdfx_start_on(e, side_port), 0);
	assert_int_equal(etcdfx_wait_ready(e, side_ep, 60), 0);
	put_str(side, "w5/b", "2");
	put_str(side, "w5/c", "3");
	assert_int_equal(rec.n_ev, 1);
	etcdfx_kill(e);
	assert_int_equal(etcdfx_start(e), 0);
	assert_true(rec_wait(&rec, REC_UPS, 2, 60));
	assert_true(rec_wait(&rec, REC_EVENTS, 3, 30));
	put_str(c, "w5/d", "4");
	assert_true(rec_wait(&rec, REC_EVENTS, 4, 30));
	watch_stop();
	assert_false(rec.bad);
	assert_string_equal(rec.seq, "UEDUEEE");
	for (size_t i = 1; i < 4; i++) {
		assert_i64_equal(rec.ev[i].rev, rec.ev[i - 1].rev + 1);
		assert_int_equal(rec.ev[i].val[0], '1' + (int)i);
	}
	etcd_close(side);
	etcd_close(c);
	etcdfx_release(e);
}

static void stopping_a_watch_does_not_wait_for_a_silent_member(void **state)
{
	/* a request timeout far longer than the test may take: only an interrupted
	 * stream lets etcd_watch_stop() return */
	struct etcd_client *c = shared_client(600000);
	int64_t t0;

	(void)state;
	rec_init(&rec);
	assert_int_equal(etcd_watch_start(c, "w6/", 3, "w60", 3, 0, rec_fn, &rec, &w), 0);
	assert_true(rec_wait(&rec, REC_UPS, 1, 30));
	etcdfx_signal(&shared, SIGSTOP);
	/* long enough for the probe of the silent member to be under way */
	struct timespec pause = { 1, 500 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	t0 = now_ms();
	watch_stop();
	/* generous against a loaded machine, far below the 600 s a wait would take */
	assert_true(now_ms() - t0 < 30000);
	etcdfx_signal(&shared, SIGCONT);

	/* and a watch that never reached its member stops as well */
	{
		char closed[32];
		const char *eps[] = { closed, NULL };
		struct etcd_client *d;

		snprintf(closed, sizeof(closed), "127.0.0.1:%d", etcdfx_free_port());
		d = client_of(eps, 600000);
		assert_int_equal(etcd_watch_start(d, "x", 1, NULL, 0, 0, rec_fn, &rec, &w), 0);
		watch_stop();
		etcd_close(d);
	}
	etcd_watch_stop(NULL);
	etcd_close(c);
}

static void an_idle_watch_resumes_after_the_revisions_etcd_compacted(void **state)
{
	/* etcd tells an idle watch every 300 ms that it is up to date */
	static const char *const notify[] = { "--experimental-watch-progress-notify-interval",
					      "300ms", NULL };
	struct etcdfx *e = &own[0];
	struct etcd_client *c;
	struct etcd_range_result r;
	struct timespec pause = { 2, 0 };
	char cmd[64];

	(void)state;
	if (!etcdfx_ctl_installed())
		fail();
	rec_init(&rec);
	assert_int_equal(etcdfx_init(e, "idle", 0, NULL, notify), 0);
	if (etcdfx_start(e) || etcdfx_wait_ready(e, NULL, 60))
		fail_msg("etcd did not start");
	{
		const char *eps[] = { e->endpoint, NULL };

		c = client_of(eps, 500);
	}
	assert_int_equal(etcd_watch_start(c, "idle/", 5, "idle0", 5, 0, rec_fn, &rec, &w), 0);
	assert_true(rec_wait(&rec, REC_UPS, 1, 30));
	/* other keys move the revision on, and etcd compacts it all away */
	for (int i = 0; i < 5; i++)
		put_str(c, "elsewhere", "x");
	assert_int_equal(etcd_range(c, "elsewhere", 9, NULL, 0, 0, &r), 0);
	snprintf(cmd, sizeof(cmd), "compaction %" PRId64, r.revision);
	etcd_range_free(&r);
	nanosleep(&pause, NULL); /* several progress notifications */
	ctl(e, cmd);
	/* the watch resumes after the notified revision: nothing compacted, nothing lost */
	etcdfx_kill(e);
	assert_true(rec_wait(&rec, REC_DOWNS, 1, 30));
	assert_int_equal(etcdfx_start(e), 0);
	assert_true(rec_wait(&rec, REC_UPS, 2, 60));
	put_str(c, "idle/a", "1");
	assert_true(rec_wait(&rec, REC_EVENTS, 1, 30));
	watch_stop();
	assert_false(rec.bad);
	assert_string_equal(rec.seq, "UDUE");
	etcd_close(c);
	etcdfx_release(e);
}

/* ---- TLS ---------------------------------------------------------------------------- */

static void a_tls_member_answers_a_client_with_its_ca_and_certificate(void **state)
{
	struct etcdfx *e = &own[0];
	char ca[4096], other[4096], cert[4096], key[4096];
	struct etcd_client *c, *bad;
	struct etcd_range_result r;
	struct etcd_status s;

	(void)state;
	if (!etcdfx_openssl_installed())
		fail();
	rec_init(&rec);
	assert_int_equal(etcdfx_init(e, "tls", 0, NULL, NULL), 0);
	assert_int_equal(etcdfx_make_certs(e->dir), 0);
	snprintf(ca, sizeof(ca), "%s/ca.pem", e->dir);
	snprintf(other, sizeof(other), "%s/other-ca.pem", e->dir);
	snprintf(cert, sizeof(cert), "%s/client.pem", e->dir);
	snprintf(key, sizeof(key), "%s/client.key", e->dir);
	e->cacert = ca;
	e->cert = cert;
	e->key = key;
	if (etcdfx_start(e) || etcdfx_wait_ready(e, NULL, 60))
		fail_msg("etcd with TLS did not start");

	const char *eps[] = { e->endpoint };
	struct etcd_config cfg = { .endpoints = eps, .n_endpoints = 1, .cacert = ca,
				   .cert = cert, .key = key };

	assert_int_equal(etcd_open(&cfg, &c), 0);
	put_str(c, "tls/k", "v");
	assert_int_equal(etcd_range(c, "tls/k", 5, NULL, 0, 0, &r), 0);
	assert_int_equal(r.n, 1);
	etcd_range_free(&r);
	assert_int_equal(etcd_status(c, &s), 0);
	assert_int_equal(etcd_watch_start(c, "tls/", 4, "tls0", 4, 0, rec_fn, &rec, &w), 0);
	assert_true(rec_wait(&rec, REC_UPS, 1, 30));
	put_str(c, "tls/k", "w");
	assert_true(rec_wait(&rec, REC_EVENTS, 1, 30));
	watch_stop();
	assert_string_equal(rec.ev[0].val, "w");

	/* a server certificate the client's CA did not sign: nothing was sent */
	cfg.cacert = other;
	assert_int_equal(etcd_open(&cfg, &bad), 0);
	assert_errno(etcd_put(bad, "tls/k", 5, "x", 1), -ENOTCONN);
	etcd_close(bad);
	/* no client certificate: the handshake is refused */
	cfg.cacert = ca;
	cfg.cert = cfg.key = NULL;
	assert_int_equal(etcd_open(&cfg, &bad), 0);
	assert_errno(etcd_put(bad, "tls/k", 5, "x", 1), -ENOTCONN);
	etcd_close(bad);
	/* plain http to a TLS member: it reads the request and resets the connection, so
	 * for all the client knows the put is in doubt */
	cfg.cacert = NULL;
	assert_int_equal(etcd_open(&cfg, &bad), 0);
	assert_errno(etcd_put(bad, "tls/k", 5, "x", 1), -ETIMEDOUT);
	etcd_close(bad);
	assert_int_equal(etcd_range(c, "tls/k", 5, NULL, 0, 0, &r), 0);
	assert_memory_equal(r.kvs[0].value, "w", 1);
	etcd_range_free(&r);
	etcd_close(c);
	etcdfx_release(e);
}

/* ---- a member without a leader ------------------------------------------------------------ */

static void a_member_without_a_leader_refuses_with_ecanceled(void **state)
{
	static const char *const fast[] = { "--heartbeat-interval", "50", "--election-timeout",
					     "500", NULL };
	struct etcdfx *m = own;
	char cluster[512];
	int peers[3];
	struct etcd_client *c;
	struct etcd_status s;
	int64_t until;

	(void)state;
	rec_init(&rec);
	for (int i = 0; i < 3; i++)
		peers[i] = etcdfx_free_port();
	snprintf(cluster, sizeof(cluster),
		 "m0=http://127.0.0.1:%d,m1=http://127.0.0.1:%d,m2=http://127.0.0.1:%d", peers[0],
		 peers[1], peers[2]);
	for (int i = 0; i < 3; i++) {
		char name[4] = { 'm', (char)('0' + i), 0 };

		assert_int_equal(etcdfx_init(&m[i], name, peers[i], cluster, fast), 0);
		assert_int_equal(etcdfx_start(&m[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		if (etcdfx_wait_ready(&m[i], NULL, 60)) {
			for (int j = 0; j < 3; j++)
				etcdfx_release(&m[j]);
			fail_msg("the cluster did not start");
		}
	}
	{
		const char *eps[] = { m[0].endpoint, NULL };

		c = client_of(eps, 2000);
	}
	put_str(c, "nl/k", "1");
	assert_int_equal(etcd_watch_start(c, "nl/", 3, "nl0", 3, 0, rec_fn, &rec, &w), 0);
	assert_true(rec_wait(&rec, REC_UPS, 1, 30));

	etcdfx_signal(&m[1], SIGSTOP);
	etcdfx_signal(&m[2], SIGSTOP);
	until = now_ms() + 30000;
	while ((etcd_status(c, &s) != 0 || s.leader != 0) && now_ms() < until) {
		struct timespec pause = { 0, 50 * 1000 * 1000 };

		nanosleep(&pause, NULL);
	}
	assert_int_equal(etcd_status(c, &s), 0); /* a status answers without a leader */
	assert_true(s.leader == 0);
	assert_errno(etcd_put(c, "nl/k", 4, "2", 1), -ECANCELED);
	{
		struct etcd_range_result r;

		assert_errno(etcd_range(c, "nl/k", 4, NULL, 0, 0, &r), -ECANCELED);
	}
	/* etcd ends the stream of a member that stays without a leader */
	assert_true(rec_wait(&rec, REC_DOWNS, 1, 60));

	etcdfx_signal(&m[1], SIGCONT);
	etcdfx_signal(&m[2], SIGCONT);
	assert_int_equal(etcdfx_wait_ready(&m[0], NULL, 60), 0);
	assert_true(rec_wait(&rec, REC_UPS, 2, 60));
	put_str(c, "nl/k", "3");
	assert_true(rec_wait(&rec, REC_EVENTS, 1, 30));
	watch_stop();
	assert_false(rec.bad);
	assert_string_equal(rec.ev[0].val, "3");
	etcd_close(c);
	for (int i = 0; i < 3; i++)
		etcdfx_release(&m[i]);
}

/* ---- authentication -------------------------------------------------------------------- */

static struct etcd_client *user_client(const struct etcdfx *e, const char *user,
				       const char *password)
{
	const char *eps[] = { e->endpoint };
	struct etcd_config cfg = { .endpoints = eps, .n_endpoints = 1, .user = user,
				   .password = password };
	struct etcd_client *c = NULL;

	assert_int_equal(etcd_open(&cfg, &c), 0);
	return c;
}

static void a_user_with_a_password_is_let_in_and_a_wrong_one_is_eacces(void **state)
{
	struct etcdfx *e = &own[0];
	struct etcd_client *root, *before, *wrong, *none, *bob;
	struct etcd_range_result r;
	struct etcd_status s;

	(void)state;
	if (!etcdfx_ctl_installed())
		fail();
	rec_init(&rec);
	assert_int_equal(etcdfx_init(e, "auth", 0, NULL, NULL), 0);
	if (etcdfx_start(e) || etcdfx_wait_ready(e, NULL, 60)) {
		etcdfx_release(e);
		fail_msg("etcd did not start");
	}
	/* a client with a user, made before authentication was on, goes without a token */
	before = user_client(e, "root", "pw");
	put_str(before, "auth/k", "0");
	ctl(e, "user add root --new-user-password=pw");
	ctl(e, "user grant-role root root");
	ctl(e, "auth enable");
	ctl(e, "--user root:pw user add bob --new-user-password=b");

	root = user_client(e, "root", "pw");
	put_str(root, "auth/k", "1");
	assert_int_equal(etcd_range(root, "auth/k", 6, NULL, 0, 0, &r), 0);
	assert_int_equal(r.n, 1);
	etcd_range_free(&r);
	put_str(before, "auth/k", "2"); /* etcd's "user name is empty" made it authenticate */

	wrong = user_client(e, "root", "not-pw");
	assert_errno(etcd_put(wrong, "auth/k", 6, "x", 1), -EACCES);
	assert_errno(etcd_range(wrong, "auth/k", 6, NULL, 0, 0, &r), -EACCES);
	{
		const char *eps[] = { e->endpoint, NULL };

		none = client_of(eps, 0);
	}
	assert_errno(etcd_put(none, "auth/k", 6, "x", 1), -EACCES);
	bob = user_client(e, "bob", "b"); /* a user without a role */
	assert_errno(etcd_put(bob, "auth/k", 6, "x", 1), -EACCES);
	assert_int_equal(etcd_status(none, &s), 0); /* status needs no user */

	/* the watch takes a token too */
	assert_int_equal(etcd_watch_start(root, "auth/", 5, "auth0", 5, 0, rec_fn, &rec, &w), 0);
	assert_true(rec_wait(&rec, REC_UPS, 1, 30));
	put_str(root, "auth/k", "3");
	assert_true(rec_wait(&rec, REC_EVENTS, 1, 30));

	/* a restarted etcd forgot its simple tokens: the client takes a new one */
	etcdfx_kill(e);
	assert_int_equal(etcdfx_start(e), 0);
	assert_int_equal(etcdfx_wait_ready(e, NULL, 60), 0);
	put_str(root, "auth/k", "4");
	assert_true(rec_wait(&rec, REC_EVENTS, 2, 60));
	watch_stop();
	assert_false(rec.bad);
	assert_string_equal(rec.ev[1].val, "4");
	assert_int_equal(etcd_range(root, "auth/k", 6, NULL, 0, 0, &r), 0);
	assert_memory_equal(r.kvs[0].value, "4", 1);
	etcd_range_free(&r);

	etcd_close(bob);
	etcd_close(none);
	etcd_close(wrong);
	etcd_close(before);
	etcd_close(root);
	etcdfx_release(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(binary_keys_and_values_round_trip, cleanup),
		cmocka_unit_test_teardown(a_prefix_range_is_ordered_limited_and_says_more, cleanup),
		cmocka_unit_test_teardown(a_missing_key_ranges_to_nothing, cleanup),
		cmocka_unit_test_teardown(a_txn_runs_the_branch_its_comparisons_choose, cleanup),
		cmocka_unit_test_teardown(a_txn_of_too_many_operations_is_e2big_and_changes_nothing, cleanup),
		cmocka_unit_test_teardown(a_request_over_max_request_bytes_is_e2big, cleanup),
		cmocka_unit_test_teardown(a_closed_endpoint_passes_requests_to_the_next, cleanup),
		cmocka_unit_test_teardown(no_live_endpoint_is_enotconn, cleanup),
		cmocka_unit_test_teardown(a_request_a_stopped_etcd_does_not_answer_is_etimedout, cleanup),
		cmocka_unit_test_teardown(a_put_whose_member_died_before_answering_is_etimedout, cleanup),
		cmocka_unit_test_teardown(endpoints_that_are_not_host_port_are_einval, cleanup),
		cmocka_unit_test_teardown(status_describes_the_answering_member, cleanup),
		cmocka_unit_test_teardown(a_watch_reports_puts_in_order_one_call_per_revision, cleanup),
		cmocka_unit_test_teardown(a_watch_from_a_past_revision_replays_it_and_skips_deletes, cleanup),
		cmocka_unit_test_teardown(a_watch_from_a_compacted_revision_goes_on_from_the_oldest_kept,
					  cleanup),
		cmocka_unit_test_teardown(a_watch_reconnects_after_its_etcd_was_stopped_and_continued, cleanup),
		cmocka_unit_test_teardown(a_watch_resumes_after_a_restart_with_the_puts_it_missed, cleanup),
		cmocka_unit_test_teardown(stopping_a_watch_does_not_wait_for_a_silent_member, cleanup),
		cmocka_unit_test_teardown(an_idle_watch_resumes_after_the_revisions_etcd_compacted,
					  cleanup),
		cmocka_unit_test_teardown(a_tls_member_answers_a_client_with_its_ca_and_certificate,
					  cleanup),
		cmocka_unit_test_teardown(a_member_without_a_leader_refuses_with_ecanceled, cleanup),
		cmocka_unit_test_teardown(a_user_with_a_password_is_let_in_and_a_wrong_one_is_eacces, cleanup),
	};

	/* one test alone: ETCD_TEST=name (a glob) */
	if (getenv("ETCD_TEST"))
		cmocka_set_test_filter(getenv("ETCD_TEST"));
	return cmocka_run_group_tests_name("etcd_client", tests, group_setup, group_teardown);
}
