/* SPDX-License-Identifier: MIT */
/*
 * test_txn.c - cmocka unit tests of transactions and the versioned state (txn layer).
 *
 * Each test runs an engine on a fresh scratch data directory with its committer and
 * reaper started and no notify hook, so completions run on the committer thread.  A test
 * waits for them on one process-wide mutex/condvar.  To make several requests land in one
 * batch, a test parks the committer inside a completion (a "gate") and queues behind it.
 * Nothing here measures time: expiry is polled with a generous deadline.
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

#include "testutil.h"

#include "blob.h"
#include "log.h"
#include "render.h"
#include "store.h"
#include "txn.h"

#define WAIT_S 60 /* deadline for anything the committer or reaper must do */

/* ---- completions --------------------------------------------------------------------- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* protects every struct done */
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;

struct done {
	bool done;
	int calls;
	int err;
	int64_t commit_ts;
	pthread_t thread;
	bool hold;     /* a gate: park the committer until released */
	bool released;
	bool left;     /* the gate's done() has returned its hold */
};

static void on_done(struct txn_commit_req *req, int err)
{
	struct done *d = req->arg;

	pthread_mutex_lock(&g_lock);
	d->done = true;
	d->calls++;
	d->err = err;
	d->commit_ts = req->commit_ts;
	d->thread = pthread_self();
	pthread_cond_broadcast(&g_cond);
	while (d->hold && !d->released)
		pthread_cond_wait(&g_cond, &g_lock);
	d->left = true;
	pthread_cond_broadcast(&g_cond);
	pthread_mutex_unlock(&g_lock);
}

static void deadline_in(struct timespec *ts, int secs)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += secs;
}

static void wait_done(struct done *d)
{
	struct timespec dl;
	int rc = 0;

	deadline_in(&dl, WAIT_S);
	pthread_mutex_lock(&g_lock);
	while (!d->done && rc == 0)
		rc = pthread_cond_timedwait(&g_cond, &g_lock, &dl);
	pthread_mutex_unlock(&g_lock);
	if (rc)
		fail_msg("a commit did not complete within %d s", WAIT_S);
}

/* Let a parked gate go and wait until its done() has let go of it. */
static void release(struct done *d)
{
	struct timespec dl;
	int rc = 0;

	deadline_in(&dl, WAIT_S);
	pthread_mutex_lock(&g_lock);
	d->released = true;
	pthread_cond_broadcast(&g_cond);
	while (!d->left && rc == 0)
		rc = pthread_cond_timedwait(&g_cond, &g_lock, &dl);
	pthread_mutex_unlock(&g_lock);
	if (rc)
		fail_msg("the committer did not leave the gate within %d s", WAIT_S);
}

/* ---- fixture -------------------------------------------------------------------------- */

#define MAX_TRACKED 16

struct fx {
	char *dir;
	struct txn_options opt;
	struct txn_engine *eng;
	struct done gate;                 /* see gate_close() */
	struct txn_commit_req *gate_req;  /* non-NULL while the committer is parked */
	struct txn *txs[MAX_TRACKED];     /* references from begin(), dropped in teardown */
	size_t ntxs;
};

static const struct txn_options default_opt = {
	.txn_timeout_ms = 30000,
	.max_open_txns = 8,
	.max_value_bytes = 1024 * 1024,
	.fsync = 0,
};

static int fx_start(struct fx *f)
{
	if (txn_engine_open(f->dir, &f->opt, &f->eng) != 0)
		return -1;
	if (txn_engine_start(f->eng) != 0) {
		txn_engine_close(f->eng);
		f->eng = NULL;
		return -1;
	}
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->opt = default_opt;
	f->dir = tu_mkdtemp();
	if (!f->dir || fx_start(f) != 0) {
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

	if (f->gate_req) {
		release(&f->gate);
		txn_commit_req_free(f->gate_req);
	}
	txn_engine_close(f->eng);
	for (size_t i = 0; i < f->ntxs; i++)
		txn_unref(f->txs[i]);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* Close the engine (completing queued commits) and open it again on the same log. */
static void restart(struct fx *f)
{
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_int_equal(fx_start(f), 0);
}

/* ---- autocommits ------------------------------------------------------------------------ */

static struct txn_commit_req *auto_req(enum txn_auto_kind kind, const char *path,
				       const char *path2, const void *val, size_t len,
				       struct done *d)
{
	struct txn_commit_req *req = calloc(1, sizeof(*req));

	assert_non_null(req);
	req->kind = kind;
	req->path = strdup(path);
	assert_non_null(req->path);
	if (path2) {
		req->path2 = strdup(path2);
		assert_non_null(req->path2);
	}
	if (kind == TXN_AUTO_PUT) {
		req->value = blob_new(val, len);
		assert_non_null(req->value);
	}
	req->done = on_done;
	req->arg = d;
	return req;
}

static int run_auto(struct fx *f, struct txn_commit_req *req, int64_t *ts)
{
	struct done *d = req->arg;
	int err;

	txn_autocommit(f->eng, req);
	wait_done(d);
	assert_int_equal(d->calls, 1);
	err = d->err;
	if (ts)
		*ts = d->commit_ts;
	txn_commit_req_free(req);
	return err;
}

static int put_n(struct fx *f, const char *path, const void *val, size_t len, int64_t *ts)
{
	struct done d = { 0 };

	return run_auto(f, auto_req(TXN_AUTO_PUT, path, NULL, val, len, &d), ts);
}

static int put(struct fx *f, const char *path, const char *val, int64_t *ts)
{
	return put_n(f, path, val, strlen(val), ts);
}

static int del(struct fx *f, const char *path, int64_t *ts)
{
	struct done d = { 0 };

	return run_auto(f, auto_req(TXN_AUTO_DELETE, path, NULL, NULL, 0, &d), ts);
}

static int ren(struct fx *f, const char *from, const char *to, bool noreplace, int64_t *ts)
{
	struct done d = { 0 };
	struct txn_commit_req *req = auto_req(TXN_AUTO_RENAME, from, to, NULL, 0, &d);

	req->noreplace = noreplace;
	return run_auto(f, req, ts);
}

/* Park the committer in a completion that needs no store write (a delete of a key that
 * never existed fails at validation).  Requests queued now run as one batch on release. */
static void gate_close(struct fx *f)
{
	memset(&f->gate, 0, sizeof(f->gate));
	f->gate.hold = true;
	f->gate_req = auto_req(TXN_AUTO_DELETE, "gate/gate/none", NULL, NULL, 0, &f->gate);
	txn_autocommit(f->eng, f->gate_req);
	wait_done(&f->gate);
	assert_errno(f->gate.err, -ENOENT);
}

static void gate_open(struct fx *f)
{
	release(&f->gate);
	txn_commit_req_free(f->gate_req);
	f->gate_req = NULL;
}

/* ---- transaction commits -------------------------------------------------------------- */

/* Begin a transaction; the fixture drops the reference in teardown. */
static struct txn *begin(struct fx *f, const char *name);

/* Commit tx with .commit.pending: an immediate error, or the completion's. */
static int commit(struct fx *f, struct txn *tx, int64_t *ts)
{
	struct done d = { 0 };
	struct txn_commit_req *req = calloc(1, sizeof(*req));
	int err;

	assert_non_null(req);
	req->done = on_done;
	req->arg = &d;
	err = txn_commit_tx(f->eng, tx, ".commit.pending", req);
	if (err) {
		txn_commit_req_free(req);
		return err;
	}
	wait_done(&d);
	assert_int_equal(d.calls, 1);
	if (ts)
		*ts = d.commit_ts;
	txn_commit_req_free(req);
	return d.err;
}

static struct txn *begin(struct fx *f, const char *name)
{
	struct txn *tx = NULL;

	assert_errno(txn_begin(f->eng, name, strlen(name), 1000, 1000, &tx), 0);
	assert_non_null(tx);
	assert_true(f->ntxs < MAX_TRACKED);
	f->txs[f->ntxs++] = tx;
	return tx;
}

static int stage(struct fx *f, struct txn *tx, const char *path, const char *val)
{
	return txn_stage_put(f->eng, tx, path, strlen(path), blob_new(val, strlen(val)));
}

static int unstage(struct fx *f, struct txn *tx, const char *path)
{
	return txn_stage_delete(f->eng, tx, path, strlen(path));
}

/* ---- reading ---------------------------------------------------------------------------- */

/* The value at path in a view, as a NUL-terminated copy (NULL and *err on failure). */
static char *get(struct fx *f, struct txn *tx, const char *path, int *err,
		 struct txn_entry *meta)
{
	struct blob *b = NULL;
	struct txn_entry e;
	char *s;

	*err = txn_read(f->eng, tx, path, strlen(path), &b, &e);
	if (meta)
		*meta = e;
	if (*err) {
		assert_null(b);
		return NULL;
	}
	assert_non_null(b);
	s = malloc(b->len + 1);
	assert_non_null(s);
	memcpy(s, b->data, b->len);
	s[b->len] = '\0';
	blob_unref(b);
	return s;
}

/* Compare a malloc'ed string with the expected one, freeing it before a failure. */
static void check_str(char *got, const char *want, const char *what, const char *path,
		      const char *file, int line)
{
	if (strcmp(got, want) != 0) {
		print_error("%s of '%s' is \"%s\", expected \"%s\"\n", what, path, got, want);
		free(got);
		_fail(file, line);
	}
	free(got);
}

#define assert_value(f, tx, path, expected)                                    \
	do {                                                                   \
		int e__ = 0;                                                   \
		char *v__ = get((f), (tx), (path), &e__, NULL);                \
		assert_errno(e__, 0);                                          \
		check_str(v__, (expected), "value", (path), __FILE__, __LINE__); \
	} while (0)

#define assert_absent(f, tx, path)                                             \
	do {                                                                   \
		struct txn_entry en__;                                         \
		assert_errno(txn_stat((f)->eng, (tx), (path), strlen(path), &en__), \
			     -ENOENT);                                         \
	} while (0)

static int64_t version_of(struct fx *f, struct txn *tx, const char *path)
{
	struct txn_entry e;

	assert_errno(txn_stat(f->eng, tx, path, strlen(path), &e), 0);
	assert_int_equal(e.type, TXN_FILE);
	return e.version;
}

/* Directory listing as "name/ name ..." (a slash marks directories). */
static char *listing(struct fx *f, struct txn *tx, const char *path, int *err)
{
	struct dirent_entry *d = NULL;
	size_t n = 0, len = 0;
	char *s;

	*err = txn_list(f->eng, tx, path, strlen(path), &d, &n);
	if (*err)
		return NULL;
	for (size_t i = 0; i < n; i++)
		len += strlen(d[i].name) + 2;
	s = calloc(1, len + 1);
	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(s, " ");
		strcat(s, d[i].name);
		if (d[i].type == TXN_DIR)
			strcat(s, "/");
	}
	dirents_free(d, n);
	return s;
}

#define assert_listing(f, tx, path, expected)                                  \
	do {                                                                   \
		int e__ = 0;                                                   \
		char *l__ = listing((f), (tx), (path), &e__);                  \
		assert_errno(e__, 0);                                          \
		check_str(l__, (expected), "listing", (path), __FILE__, __LINE__); \
	} while (0)

/* A field of the transaction's status JSON, as text ("" when absent). */
static char *status_field(struct fx *f, struct txn *tx, const char *key)
{
	char *js = render_status_json(f->eng, tx);
	json_error_t jerr;
	json_t *o, *v;
	char *out;

	assert_non_null(js);
	assert_int_equal(js[strlen(js) - 1], '\n');
	o = json_loads(js, 0, &jerr);
	if (!o)
		fail_msg("status is not JSON: %s (%s)", js, jerr.text);
	free(js);
	v = json_object_get(o, key);
	if (!v)
		out = strdup("");
	else if (json_is_string(v))
		out = strdup(json_string_value(v));
	else if (json_is_integer(v)) {
		char num[32];

		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		out = strdup(num);
	} else {
		out = strdup("?");
	}
	json_decref(o);
	assert_non_null(out);
	return out;
}

#define assert_status(f, tx, key, expected)                                    \
	do {                                                                   \
		char *s__ = status_field((f), (tx), (key));                    \
		check_str(s__, (expected), "status field", (key), __FILE__, __LINE__); \
	} while (0)

/* Poll (no timing assertion) until tx leaves `from`, with a generous deadline. */
static enum txn_state wait_state_change(struct txn *tx, enum txn_state from)
{
	struct timespec t0, now;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		enum txn_state s = txn_get_state(tx);

		if (s != from)
			return s;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > WAIT_S)
			fail_msg("transaction stayed in state %d for %d s", from, WAIT_S);
		usleep(2000);
	}
}

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

/* A notify hook that records the changed paths and completes late requests. */
struct hook {
	char paths[256];
	int calls, late_done;
};

static void hook_fn(void *arg, struct txn_changes *ch)
{
	struct hook *h = arg;

	pthread_mutex_lock(&g_lock);
	h->calls++;
	for (size_t i = 0; i < ch->n; i++) {
		if (h->paths[0])
			strncat(h->paths, " ", sizeof(h->paths) - strlen(h->paths) - 1);
		strncat(h->paths, ch->paths[i], sizeof(h->paths) - strlen(h->paths) - 1);
	}
	for (struct txn_commit_req *r = ch->late; r; r = r->next)
		h->late_done++;
	pthread_mutex_unlock(&g_lock);
	for (struct txn_commit_req *r = ch->late, *next; r; r = next) {
		next = r->next;
		r->next = NULL;
		r->done(r, 0);
	}
	ch->late = NULL;
	txn_changes_free(ch);
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

/* ==== transactions: commit ================================================================= */

static void a_committed_transaction_is_read_only_and_its_view_is_gone(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");
	struct txn_entry e;
	int64_t ts = -1;

	assert_errno(stage(f, tx, "ns/a/k", "v"), 0);
	assert_errno(stage(f, tx, "ns/a/j", "w"), 0);
	assert_errno(commit(f, tx, &ts), 0);
	assert_i64_equal(ts, 1);
	assert_status(f, tx, "ops", "2");
	assert_errno(stage(f, tx, "ns/a/k", "again"), -EROFS);
	assert_errno(txn_writable(tx), -EROFS);
	assert_errno(commit(f, tx, NULL), -EROFS);
	/* decisions.md 6: any path below a committed transaction answers EROFS. */
	assert_errno(txn_stat(f->eng, tx, "ns/a/k", 6, &e), -EROFS);
	assert_errno(txn_remove(f->eng, "t", 1), 0);
	assert_value(f, NULL, "ns/a/k", "v");
}

static void the_first_committer_wins_and_the_loser_names_the_key(void **state)
{
	struct fx *f = *state;
	struct txn *t1, *t2;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/k", "base", NULL), 0);
	t1 = begin(f, "t1");
	t2 = begin(f, "t2");
	assert_errno(stage(f, t1, "ns/a/k", "from t1"), 0);
	assert_errno(stage(f, t2, "ns/a/aaa", "untouched by t1"), 0);
	assert_errno(stage(f, t2, "ns/a/k", "from t2"), 0);
	assert_errno(commit(f, t1, &ts), 0);
	assert_i64_equal(ts, 2);
	assert_errno(commit(f, t2, &ts), -ESTALE);
	assert_i64_equal(ts, 0);

	assert_int_equal(txn_get_state(t2), TXN_CONFLICT);
	assert_status(f, t2, "state", "conflict");
	assert_status(f, t2, "error", "ESTALE");
	assert_status(f, t2, "key", "ns/a/k");
	assert_value(f, NULL, "ns/a/k", "from t1");
	assert_absent(f, NULL, "ns/a/aaa");
	assert_i64_equal(txn_engine_head(f->eng), 2);
	/* decisions.md 7: later writes and commits fail with ESTALE. */
	assert_errno(stage(f, t2, "ns/a/x", "v"), -ESTALE);
	assert_errno(commit(f, t2, NULL), -ESTALE);
	assert_errno(txn_writable(t2), -ESTALE);
	/* The note file is back, so the VFS's retry of the rename sees ESTALE again. */
	struct blob *note = NULL;

	assert_errno(txn_note_get(t2, ".commit.pending", &note), 0);
	blob_unref(note);
	/* The conflict unpinned the snapshot: a new transaction can take its place. */
	assert_errno(txn_remove(f->eng, "t2", 2), 0);
	t2 = begin(f, "t2");
	assert_errno(stage(f, t2, "ns/a/k", "retry"), 0);
	assert_errno(commit(f, t2, &ts), 0);
	assert_i64_equal(ts, 3);
}

static void a_delete_of_a_key_written_after_begin_conflicts(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	assert_errno(put(f, "ns/a/k", "v1", NULL), 0);
	tx = begin(f, "t");
	assert_errno(unstage(f, tx, "ns/a/k"), 0);
	assert_errno(put(f, "ns/a/k", "v2", NULL), 0);
	assert_errno(commit(f, tx, NULL), -ESTALE);
	assert_status(f, tx, "key", "ns/a/k");
	assert_value(f, NULL, "ns/a/k", "v2");
}

static void a_shape_clash_found_at_commit_is_a_conflict(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");

	assert_errno(stage(f, tx, "ns/a/k/x", "under k"), 0);
	assert_errno(put(f, "ns/a/k", "now a key", NULL), 0);
	assert_errno(commit(f, tx, NULL), -ENOTDIR);
	assert_int_equal(txn_get_state(tx), TXN_CONFLICT);
	assert_status(f, tx, "state", "conflict");
	assert_status(f, tx, "error", "ENOTDIR");
	assert_status(f, tx, "key", "ns/a/k/x");
	assert_absent(f, NULL, "ns/a/k/x");
	assert_i64_equal(txn_engine_head(f->eng), 1);
}

/* ==== timeouts ============================================================================= */

static void set_timeout_accepts_1_to_86400000_ms_before_the_first_op(void **state)
{
	struct fx *f = *state;
	struct txn *tx = begin(f, "t");

	assert_i64_equal(txn_timeout_ms(tx), 30000);
	assert_errno(txn_set_timeout(f->eng, tx, 0), -EINVAL);
	assert_errno(txn_set_timeout(f->eng, tx, -5), -EINVAL);
	assert_errno(txn_set_timeout(f->eng, tx, 86400001), -EINVAL);
	assert_i64_equal(txn_timeout_ms(tx), 30000);
	assert_errno(txn_set_timeout(f->eng, tx, 86400000), 0);
	assert_i64_equal(txn_timeout_ms(tx), 86400000);
	assert_status(f, tx, "timeout_ms", "86400000");
	assert_errno(txn_stage_mkdir(f->eng, tx, "ns/a/dir", 8), 0); /* not an op */
	assert_errno(txn_set_timeout(f->eng, tx, 600000), 0);
	assert_errno(stage(f, tx, "ns/a/k", "v"), 0);
	assert_errno(txn_set_timeout(f->eng, tx, 2000), -EBUSY);
	assert_i64_equal(txn_timeout_ms(tx), 600000);
}

static void an_expired_transaction_is_reaped_and_its_commit_fails_with_etimedout(void **state)
{
	struct fx *f = *state;
	struct txn *tx, *other = NULL;

	txn_engine_close(f->eng);
	f->eng = NULL;
	f->opt.max_open_txns = 1;
	assert_int_equal(fx_start(f), 0);
	tx = begin(f, "t");
	assert_errno(txn_begin(f->eng, "other", 5, 0, 0, &other), -EAGAIN);
	assert_errno(txn_set_timeout(f->eng, tx, 1), 0);
	/* Nobody touches the transaction: the reaper must expire it. */
	assert_int_equal(wait_state_change(tx, TXN_OPEN), TXN_EXPIRED);
	assert_status(f, tx, "state", "expired");
	assert_status(f, tx, "error", "ETIMEDOUT");
	assert_errno(stage(f, tx, "ns/a/k", "v"), -ETIMEDOUT);
	assert_errno(txn_writable(tx), -ETIMEDOUT);
	assert_errno(commit(f, tx, NULL), -ETIMEDOUT);
	struct txn_entry e;

	assert_errno(txn_stat(f->eng, tx, "ns", 2, &e), -ETIMEDOUT);
	assert_i64_equal(txn_engine_head(f->eng), 0);
	/* An expired transaction no longer counts against max_open_txns. */
	assert_errno(txn_begin(f->eng, "other", 5, 0, 0, &other), 0);
	txn_unref(other);
}

static void a_transaction_with_staged_ops_expires_and_none_of_them_commits(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	txn_engine_close(f->eng);
	f->eng = NULL;
	f->opt.txn_timeout_ms = 1; /* the engine default, so it applies from begin */
	assert_int_equal(fx_start(f), 0);
	tx = begin(f, "t");
	assert_i64_equal(txn_timeout_ms(tx), 1);
	stage(f, tx, "ns/a/k", "v"); /* may already be too late: either way */
	assert_int_equal(wait_state_change(tx, TXN_OPEN), TXN_EXPIRED);
	assert_status(f, tx, "ops", "0");
	assert_errno(commit(f, tx, NULL), -ETIMEDOUT);
	assert_absent(f, NULL, "ns/a/k");
	assert_i64_equal(txn_engine_head(f->eng), 0);
}

/* ==== storage failures ==================================================================== */

#if STATEHOUSE_FAULT_INJECTION
static void a_failed_autocommit_changes_nothing_and_a_retry_gets_the_next_ts(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/k", "v1", NULL), 0);
	txn_engine_set_fault(f->eng, 0, -ENOSPC);
	assert_errno(put(f, "ns/a/k", "v2", &ts), -ENOSPC);
	assert_i64_equal(ts, 0);
	assert_errno(put(f, "ns/a/new/deep", "x", NULL), -ENOSPC);
	assert_errno(del(f, "ns/a/k", NULL), -ENOSPC);
	assert_errno(txn_engine_check(f->eng), -EIO);
	/* Reads keep working and show the last durable state. */
	assert_value(f, NULL, "ns/a/k", "v1");
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 1);
	assert_absent(f, NULL, "ns/a/new/deep");
	assert_absent(f, NULL, "ns/a/new");
	assert_listing(f, NULL, "ns/a", "k");
	assert_i64_equal(txn_engine_head(f->eng), 1);

	txn_engine_set_fault(f->eng, 0, -EIO);
	assert_errno(put(f, "ns/a/k", "v2", NULL), -EIO);

	txn_engine_set_fault(f->eng, 0, 0);
	assert_errno(txn_engine_check(f->eng), 0);
	assert_errno(put(f, "ns/a/k", "v2", &ts), 0);
	assert_i64_equal(ts, 2);
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 2);
	restart(f);
	assert_value(f, NULL, "ns/a/k", "v2");
	assert_i64_equal(txn_engine_head(f->eng), 2);
}
#endif

#if STATEHOUSE_FAULT_INJECTION
static void a_fault_after_one_commit_lets_exactly_that_one_through(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	txn_engine_set_fault(f->eng, 1, -EIO);
	assert_errno(put(f, "ns/a/k", "1", &ts), 0);
	assert_i64_equal(ts, 1);
	assert_errno(put(f, "ns/a/k", "2", &ts), -EIO);
	assert_value(f, NULL, "ns/a/k", "1");
	txn_engine_set_fault(f->eng, 0, 0);
}
#endif

#if STATEHOUSE_FAULT_INJECTION
static void a_transaction_whose_store_write_fails_stays_open_and_can_retry(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	int64_t ts = -1;
	struct blob *note = NULL;

	assert_errno(put(f, "ns/a/k", "v1", NULL), 0);
	tx = begin(f, "t");
	assert_errno(stage(f, tx, "ns/a/k", "v2"), 0);
	assert_errno(stage(f, tx, "ns/b/new", "n"), 0);
	assert_errno(txn_note_put(tx, ".commit.pending", blob_new("why", 3)), 0);
	txn_engine_set_fault(f->eng, 0, -ENOSPC);
	assert_errno(commit(f, tx, &ts), -ENOSPC);
	assert_i64_equal(ts, 0);
	assert_int_equal(txn_get_state(tx), TXN_OPEN);
	assert_status(f, tx, "state", "open");
	assert_status(f, tx, "error", "ENOSPC");
	assert_status(f, tx, "ops", "2");
	/* Nothing changed outside; the view and the note are as before. */
	assert_value(f, NULL, "ns/a/k", "v1");
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 1);
	assert_absent(f, NULL, "ns/b/new");
	assert_listing(f, NULL, "", "ns/");
	assert_listing(f, NULL, "ns", "a/");
	assert_i64_equal(txn_engine_head(f->eng), 1);
	assert_value(f, tx, "ns/a/k", "v2");
	assert_value(f, tx, "ns/b/new", "n");
	assert_errno(txn_note_get(tx, ".commit.pending", &note), 0);
	assert_int_equal(note->len, 3);
	assert_memory_equal(note->data, "why", 3);
	blob_unref(note);

	txn_engine_set_fault(f->eng, 0, 0);
	assert_errno(commit(f, tx, &ts), 0);
	assert_i64_equal(ts, 2);
	assert_value(f, NULL, "ns/a/k", "v2");
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 2);
	assert_value(f, NULL, "ns/b/new", "n");
}
#endif

/* ==== group commit ========================================================================= */

#if STATEHOUSE_FAULT_INJECTION
static void requests_queued_together_commit_in_one_store_write(void **state)
{
	struct fx *f = *state;
	struct done d[3] = { 0 };
	struct txn_commit_req *r[3];
	static const char *const keys[] = { "ns/a/x", "ns/a/y", "ns/a/z" };

	gate_close(f);
	for (int i = 0; i < 3; i++) {
		r[i] = auto_req(TXN_AUTO_PUT, keys[i], NULL, "v", 1, &d[i]);
		txn_autocommit(f->eng, r[i]);
	}
	/* One more store write may succeed: enough for the three only if they are batched. */
	txn_engine_set_fault(f->eng, 1, -EIO);
	gate_open(f);
	for (int i = 0; i < 3; i++) {
		wait_done(&d[i]);
		assert_errno(d[i].err, 0);
		assert_i64_equal(d[i].commit_ts, i + 1);
		txn_commit_req_free(r[i]);
	}
	assert_errno(put(f, "ns/a/w", "v", NULL), -EIO);
	txn_engine_set_fault(f->eng, 0, 0);
	assert_listing(f, NULL, "ns/a", "x y z");
}
#endif

#if STATEHOUSE_FAULT_INJECTION
static void a_failed_batch_fails_every_request_in_it_and_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct done d[3] = { 0 };
	struct txn_commit_req *r[3], *treq;
	struct done td = { 0 };
	struct txn *tx;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/base", "b", NULL), 0);
	tx = begin(f, "t");
	assert_errno(stage(f, tx, "ns/t/k", "from tx"), 0);
	gate_close(f);
	r[0] = auto_req(TXN_AUTO_PUT, "ns/a/x", NULL, "1", 1, &d[0]);
	r[1] = auto_req(TXN_AUTO_DELETE, "ns/a/base", NULL, NULL, 0, &d[1]);
	r[2] = auto_req(TXN_AUTO_RENAME, "ns/a/base", "ns/a/moved", NULL, 0, &d[2]);
	treq = calloc(1, sizeof(*treq));
	assert_non_null(treq);
	treq->done = on_done;
	treq->arg = &td;
	txn_autocommit(f->eng, r[0]);
	assert_errno(txn_commit_tx(f->eng, tx, ".commit.pending", treq), 0);
	txn_autocommit(f->eng, r[1]);
	txn_autocommit(f->eng, r[2]); /* fails validation: base is deleted just before */
	txn_engine_set_fault(f->eng, 0, -ENOSPC);
	gate_open(f);
	for (int i = 0; i < 3; i++) {
		wait_done(&d[i]);
		assert_errno(d[i].err, i == 2 ? -ENOENT : -ENOSPC);
		assert_i64_equal(d[i].commit_ts, 0);
		txn_commit_req_free(r[i]);
	}
	wait_done(&td);
	assert_errno(td.err, -ENOSPC);
	txn_commit_req_free(treq);

	assert_i64_equal(txn_engine_head(f->eng), 1);
	assert_value(f, NULL, "ns/a/base", "b");
	assert_i64_equal(version_of(f, NULL, "ns/a/base"), 1);
	assert_absent(f, NULL, "ns/a/x");
	assert_absent(f, NULL, "ns/t/k");
	assert_listing(f, NULL, "ns", "a/");
	assert_int_equal(txn_get_state(tx), TXN_OPEN);

	txn_engine_set_fault(f->eng, 0, 0);
	assert_errno(commit(f, tx, &ts), 0);
	assert_i64_equal(ts, 2);
	assert_errno(del(f, "ns/a/base", &ts), 0);
	assert_i64_equal(ts, 3);
	assert_i64_equal(version_of(f, NULL, "ns/t/k"), 1);
}
#endif

static void two_transactions_in_one_batch_writing_one_key_conflict_in_queue_order(void **state)
{
	struct fx *f = *state;
	struct done d1 = { 0 }, d2 = { 0 }, d3 = { 0 };
	struct txn_commit_req *r1 = calloc(1, sizeof(*r1)), *r2 = calloc(1, sizeof(*r2));
	struct txn_commit_req *r3;
	struct txn *t1, *t2;

	assert_non_null(r1);
	assert_non_null(r2);
	t1 = begin(f, "t1");
	t2 = begin(f, "t2");
	assert_errno(stage(f, t1, "ns/a/k", "one"), 0);
	assert_errno(stage(f, t2, "ns/a/k", "two"), 0);
	gate_close(f);
	r1->done = r2->done = on_done;
	r1->arg = &d1;
	r2->arg = &d2;
	assert_errno(txn_commit_tx(f->eng, t1, ".commit.pending", r1), 0);
	assert_errno(txn_commit_tx(f->eng, t2, ".commit.pending", r2), 0);
	r3 = auto_req(TXN_AUTO_PUT, "ns/a/after", NULL, "3", 1, &d3);
	txn_autocommit(f->eng, r3);

	/* While a commit is in flight the transaction refuses everything else. */
	assert_int_equal(txn_get_state(t1), TXN_COMMITTING);
	assert_status(f, t1, "state", "committing");
	assert_errno(txn_writable(t1), -EBUSY);
	assert_errno(stage(f, t1, "ns/a/other", "x"), -EBUSY);
	assert_errno(txn_set_timeout(f->eng, t1, 100), -EBUSY);
	assert_errno(txn_remove(f->eng, "t1", 2), -EBUSY);
	struct txn_commit_req spare = { 0 };

	assert_errno(txn_commit_tx(f->eng, t1, ".commit.pending", &spare), -EBUSY);
	assert_null(spare.path);

	gate_open(f);
	wait_done(&d1);
	wait_done(&d2);
	wait_done(&d3);
	assert_errno(d1.err, 0);
	assert_i64_equal(d1.commit_ts, 1);
	assert_errno(d2.err, -ESTALE);
	assert_errno(d3.err, 0);
	assert_i64_equal(d3.commit_ts, 2);
	assert_int_equal(txn_get_state(t2), TXN_CONFLICT);
	assert_status(f, t2, "key", "ns/a/k");
	assert_value(f, NULL, "ns/a/k", "one");
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 1);
	txn_commit_req_free(r1);
	txn_commit_req_free(r2);
	txn_commit_req_free(r3);
}

/* The completion carries commit_ts as int64_t; nothing may narrow it on the way. */
static void a_commit_ts_beyond_int32_is_reported_as_success(void **state)
{
	struct fx *f = *state;
	struct store_options sopt = { .fsync = 0 };
	struct store_op op = { .path = "ns/a/k", .path_len = 6, .kind = STORE_PUT,
			       .version = 1, .value = "old", .value_len = 3 };
	struct store_event ev = { .commit_ts = INT32_MAX, .time_ns = 1, .txn = "seed",
				  .ops = &op, .n_ops = 1 };
	struct store *st = NULL;
	int64_t ts = -1;

	/* A log whose head is INT32_MAX, written directly (2^31 commits take a week). */
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(store_open(NULL, f->dir, &sopt, &st), 0);
	assert_errno(store_append(st, &ev, 1), 0);
	store_close(st);
	assert_int_equal(fx_start(f), 0);
	assert_i64_equal(txn_engine_head(f->eng), INT32_MAX);

	assert_errno(put(f, "ns/a/k", "new", &ts), 0);
	assert_i64_equal(ts, (int64_t)INT32_MAX + 1);
	assert_value(f, NULL, "ns/a/k", "new");
}

/* ==== live directories and path rules ======================================================= */

static void live_mkdir_and_rmdir_make_and_remove_empty_directories(void **state)
{
	struct fx *f = *state;
	struct txn_entry e;

	assert_errno(txn_live_mkdir(f->eng, "ns/a/dir", 8), 0);
	assert_errno(txn_stat(f->eng, NULL, "ns/a/dir", 8, &e), 0);
	assert_int_equal(e.type, TXN_DIR);
	assert_listing(f, NULL, "ns/a", "dir/");
	assert_errno(txn_live_mkdir(f->eng, "ns/a/dir", 8), -EEXIST);
	assert_errno(put(f, "ns/a/dir/k", "v", NULL), 0);
	assert_errno(txn_live_rmdir(f->eng, "ns/a/dir", 8), -ENOTEMPTY);
	assert_errno(txn_live_rmdir(f->eng, "ns/a/dir/k", 10), -ENOTDIR);
	assert_errno(txn_live_mkdir(f->eng, "ns/a/dir/k/sub", 14), -ENOTDIR);
	assert_errno(del(f, "ns/a/dir/k", NULL), 0);
	assert_listing(f, NULL, "ns/a", "dir/");
	assert_errno(txn_live_rmdir(f->eng, "ns/a/dir", 8), 0);
	assert_errno(txn_stat(f->eng, NULL, "ns/a/dir", 8, &e), -ENOENT);
	/* A directory that does not exist (implicit, or gone with its last key): nothing to do. */
	assert_errno(txn_live_rmdir(f->eng, "ns/a/nothing", 12), 0);
	/* A directory below an agent is state: mkdir and rmdir were commits too. */
	assert_i64_equal(txn_engine_head(f->eng), 4);
}

static bool is_dir(struct fx *f, struct txn *tx, const char *path)
{
	struct txn_entry e;

	return txn_stat(f->eng, tx, path, strlen(path), &e) == 0 && e.type == TXN_DIR;
}

static int64_t time_of(struct fx *f, const char *path)
{
	struct txn_entry e;

	assert_errno(txn_stat(f->eng, NULL, path, strlen(path), &e), 0);
	return e.time_ns;
}

static void directories_are_state_replayed_from_the_log_and_kept_in_snapshots(void **state)
{
	struct fx *f = *state;
	struct txn_stats st;
	int64_t t;

	assert_errno(txn_live_mkdir(f->eng, "ns/a/d", 6), 0);
	assert_errno(txn_live_mkdir(f->eng, "ns/a/d/e", 8), 0);
	assert_errno(txn_live_mkdir(f->eng, "ns/a/gone", 9), 0);
	assert_errno(txn_live_rmdir(f->eng, "ns/a/d", 6), -ENOTEMPTY);
	assert_errno(txn_live_rmdir(f->eng, "ns/a/gone", 9), 0);
	assert_errno(put(f, "ns/a/d/k", "v", NULL), 0);
	assert_errno(put(f, "ns/a/d/k", "w", NULL), 0); /* an overwrite: no entry changed */
	t = time_of(f, "ns/a/d");
	assert_true(t > 0);
	assert_true(t < time_of(f, "ns/a/d/k"));

	/* After a clean restart (the snapshot written at close, and the log). */
	restart(f);
	assert_true(is_dir(f, NULL, "ns/a/d/e"));
	assert_false(is_dir(f, NULL, "ns/a/gone"));
	assert_listing(f, NULL, "ns/a", "d/");
	assert_i64_equal(time_of(f, "ns/a/d"), t);

	/* From a snapshot alone. */
	assert_errno(txn_engine_snapshot(f->eng), 0);
	restart(f);
	txn_engine_stats(f->eng, &st);
	assert_int_equal(st.last_replayed, 0);
	assert_true(is_dir(f, NULL, "ns/a/d/e"));
	assert_false(is_dir(f, NULL, "ns/a/gone"));
	assert_i64_equal(time_of(f, "ns/a/d"), t);

	/* A rename moves the empty directory with the keys, in one commit. */
	assert_errno(ren(f, "ns/a/d", "ns/a/moved", false, NULL), 0);
	assert_true(is_dir(f, NULL, "ns/a/moved/e"));
	assert_false(is_dir(f, NULL, "ns/a/d"));
	assert_errno(txn_live_rmdir(f->eng, "ns/a/moved/e", 12), 0);
	restart(f);
	assert_false(is_dir(f, NULL, "ns/a/moved/e"));
	assert_value(f, NULL, "ns/a/moved/k", "w");
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(txn_verify(f->dir, NULL), 0);
	assert_int_equal(fx_start(f), 0);
}

static void a_transaction_commits_its_mkdir_rmdir_and_directory_rename(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	assert_errno(txn_live_mkdir(f->eng, "ns/a/old", 8), 0);
	assert_errno(txn_live_mkdir(f->eng, "ns/a/src", 8), 0);
	assert_errno(txn_live_mkdir(f->eng, "ns/a/src/empty", 14), 0);
	tx = begin(f, "t");
	assert_true(is_dir(f, tx, "ns/a/src/empty"));
	assert_errno(txn_stage_mkdir(f->eng, tx, "ns/a/new", 8), 0);
	assert_errno(txn_stage_rmdir(f->eng, tx, "ns/a/src", 8), -ENOTEMPTY);
	assert_errno(txn_stage_rmdir(f->eng, tx, "ns/a/old", 8), 0);
	assert_errno(txn_stage_rename(f->eng, tx, "ns/a/src", 8, "ns/a/dst", 8, false), 0);
	assert_listing(f, tx, "ns/a", "dst/ new/");
	assert_listing(f, tx, "ns/a/dst", "empty/");
	/* Nothing of it outside before the commit. */
	assert_listing(f, NULL, "ns/a", "old/ src/");
	assert_errno(commit(f, tx, NULL), 0);
	assert_listing(f, NULL, "ns/a", "dst/ new/");
	assert_true(is_dir(f, NULL, "ns/a/dst/empty"));
	restart(f);
	assert_listing(f, NULL, "ns/a", "dst/ new/");
	assert_true(is_dir(f, NULL, "ns/a/dst/empty"));
}

static void namespaces_and_agents_exist_implicitly_but_are_listed_only_with_keys(void **state)
{
	struct fx *f = *state;
	struct txn_entry e;
	int err = 0;
	char *l;

	assert_errno(txn_stat(f->eng, NULL, "anyns", 5, &e), 0);
	assert_int_equal(e.type, TXN_DIR);
	assert_errno(txn_stat(f->eng, NULL, "anyns/anyagent", 14, &e), 0);
	assert_int_equal(e.type, TXN_DIR);
	assert_errno(txn_stat(f->eng, NULL, "anyns/anyagent/key", 18, &e), -ENOENT);
	assert_listing(f, NULL, "", "");
	assert_errno(put(f, "b/x/k", "1", NULL), 0);
	assert_errno(put(f, "a/y/k", "2", NULL), 0);
	assert_listing(f, NULL, "", "a/ b/");
	assert_errno(del(f, "b/x/k", NULL), 0);
	assert_listing(f, NULL, "", "a/");
	assert_listing(f, NULL, "b", "");
	l = listing(f, NULL, "a/y/k", &err);
	assert_null(l);
	assert_errno(err, -ENOTDIR);
	assert_errno(txn_read(f->eng, NULL, "a/y", 3, &(struct blob *){ NULL }, NULL), -EISDIR);
}

static void check_name_rejects_empty_dot_slash_nul_and_long_names(void **state)
{
	char n255[256], n256[257];

	(void)state;
	memset(n255, 'a', 255);
	memset(n256, 'a', 256);
	assert_errno(txn_check_name("", 0), -EINVAL);
	assert_errno(txn_check_name(".", 1), -EINVAL);
	assert_errno(txn_check_name("..", 2), -EINVAL);
	assert_errno(txn_check_name("a/b", 3), -EINVAL);
	assert_errno(txn_check_name("a\0b", 3), -EINVAL);
	assert_errno(txn_check_name("...", 3), 0);
	assert_errno(txn_check_name(".hidden", 7), 0);
	assert_errno(txn_check_name("x", 1), 0);
	assert_errno(txn_check_name("caf\xc3\xa9", 5), 0);
	assert_errno(txn_check_name(n255, 255), 0);
	assert_errno(txn_check_name(n256, 256), -ENAMETOOLONG);
	n256[100] = '/';
	assert_errno(txn_check_name(n256, 256), -EINVAL);

	assert_int_equal(txn_path_depth("", 0), 0);
	assert_int_equal(txn_path_depth("ns", 2), 1);
	assert_int_equal(txn_path_depth("ns/a", 4), 2);
	assert_int_equal(txn_path_depth("ns/a/k/x/y", 10), 5);
}

static void versions_and_options_are_reported(void **state)
{
	struct fx *f = *state;

	assert_int_equal(txn_schema_version(), STORE_SCHEMA_VERSION);
	assert_memory_equal(txn_sqlite_version(), "3.", 2);
	assert_i64_equal(txn_engine_options(f->eng)->txn_timeout_ms, 30000);
	assert_int_equal(txn_engine_options(f->eng)->max_open_txns, 8);
	assert_errno(txn_engine_check(f->eng), 0);
}

/* ==== owners and modes ==================================================================== */

static int attr_commit(struct fx *f, const char *path, bool own, uint32_t uid, uint32_t gid,
		       uint32_t mode, int64_t *ts)
{
	struct done d = { 0 };
	struct txn_commit_req *req = auto_req(TXN_AUTO_ATTR, path, NULL, NULL, 0, &d);

	req->attr = (struct txn_attr){ .uid = uid, .gid = gid, .mode = mode, .own = own };
	return run_auto(f, req, ts);
}

static int chown_dir(struct fx *f, const char *path, uint32_t uid, uint32_t gid,
		     uint32_t mode, int64_t *ts)
{
	return attr_commit(f, path, true, uid, gid, mode, ts);
}

static int clear_dir(struct fx *f, const char *path, int64_t *ts)
{
	return attr_commit(f, path, false, 0, 0, 0, ts);
}

static void check_attr(struct txn_engine *eng, const char *path, uint32_t uid, uint32_t gid,
		       uint32_t mode, bool own, const char *file, int line)
{
	struct txn_attr a = { 0 };
	int err = txn_dir_attr(eng, path, strlen(path), &a);

	if (err || a.uid != uid || a.gid != gid || a.mode != mode || a.own != own) {
		print_error("attributes of '%s' are %s uid %u gid %u mode %04o%s,"
			    " expected uid %u gid %u mode %04o%s\n",
			    path, tu_errname(err), a.uid, a.gid, a.mode, a.own ? " (own)" : "",
			    uid, gid, mode, own ? " (own)" : "");
		_fail(file, line);
	}
}

/* own: recorded for this directory; otherwise inherited or the default. */
#define assert_attr(f, path, uid, gid, mode, own) \
	check_attr((f)->eng, (path), (uid), (gid), (mode), (own), __FILE__, __LINE__)

/* Restart with a daemon owner other than root, so that defaults are told apart. */
static void restart_owned_by(struct fx *f, uint32_t uid, uint32_t gid)
{
	f->opt.owner_uid = uid;
	f->opt.owner_gid = gid;
	restart(f);
}

static void a_directory_without_an_owner_record_has_the_daemon_owner_and_0755(void **state)
{
	struct fx *f = *state;
	struct txn_attr a;

	restart_owned_by(f, 4242, 4343);
	assert_attr(f, "ns", 4242, 4343, 0755, false);
	assert_attr(f, "ns/agent", 4242, 4343, 0755, false);
	assert_attr(f, "ns/agent/key/below", 4242, 4343, 0755, false);
	assert_errno(put(f, "ns/agent/key", "v", NULL), 0);
	assert_attr(f, "ns", 4242, 4343, 0755, false);
	assert_attr(f, "ns/agent/key", 4242, 4343, 0755, false);
	/* The root has no owner record of its own to ask for. */
	assert_errno(txn_dir_attr(f->eng, "", 0, &a), -EINVAL);
}

static void an_agent_inherits_its_namespace_until_it_has_an_owner_of_its_own(void **state)
{
	struct fx *f = *state;

	restart_owned_by(f, 4242, 4343);
	assert_errno(chown_dir(f, "ns", 1000, 100, 0750, NULL), 0);
	assert_attr(f, "ns", 1000, 100, 0750, true);
	assert_attr(f, "ns/a", 1000, 100, 0750, false);
	assert_attr(f, "ns/a/k/x", 1000, 100, 0750, false);

	assert_errno(chown_dir(f, "ns/a", 2000, 200, 0700, NULL), 0);
	assert_attr(f, "ns/a", 2000, 200, 0700, true);
	/* Deeper paths take their agent's, and are never its own. */
	assert_attr(f, "ns/a/k", 2000, 200, 0700, false);
	assert_attr(f, "ns/a/k/x", 2000, 200, 0700, false);
	assert_attr(f, "ns/b", 1000, 100, 0750, false);
	assert_attr(f, "ns", 1000, 100, 0750, true);
	assert_attr(f, "other", 4242, 4343, 0755, false);
	assert_attr(f, "other/a", 4242, 4343, 0755, false);

	/* An agent's own record holds whatever its namespace becomes. */
	assert_errno(chown_dir(f, "ns", 3000, 300, 0711, NULL), 0);
	assert_attr(f, "ns/a", 2000, 200, 0700, true);
	assert_attr(f, "ns/b", 3000, 300, 0711, false);
	/* An agent with an owner in a namespace without one. */
	assert_errno(chown_dir(f, "other/a", 5000, 500, 0750, NULL), 0);
	assert_attr(f, "other", 4242, 4343, 0755, false);
	assert_attr(f, "other/a/k", 5000, 500, 0750, false);
}

static void an_agent_of_a_sticky_namespace_inherits_no_write_bits_for_group_or_others(
	void **state)
{
	struct fx *f = *state;

	assert_errno(chown_dir(f, "tmp", 0, 0, 01777, NULL), 0);
	assert_attr(f, "tmp", 0, 0, 01777, true);
	assert_attr(f, "tmp/a", 0, 0, 0755, false);
	assert_attr(f, "tmp/a/k", 0, 0, 0755, false);
	assert_errno(chown_dir(f, "team", 0, 50, 01770, NULL), 0);
	assert_attr(f, "team/a", 0, 50, 0750, false);
	/* Only the sticky bit masks; other special bits are simply not inherited. */
	assert_errno(chown_dir(f, "shared", 0, 50, 02775, NULL), 0);
	assert_attr(f, "shared", 0, 50, 02775, true);
	assert_attr(f, "shared/a", 0, 50, 0775, false);
	/* An agent's own record is not masked. */
	assert_errno(chown_dir(f, "tmp/mine", 1000, 1000, 0777, NULL), 0);
	assert_attr(f, "tmp/mine", 1000, 1000, 0777, true);
	assert_attr(f, "tmp/mine/k", 1000, 1000, 0777, false);
	/* Bits above 07777 (a caller's S_IFDIR) are not part of the record. */
	assert_errno(chown_dir(f, "typed", 7, 8, 040750, NULL), 0);
	assert_attr(f, "typed", 7, 8, 0750, true);
}

/* A completion that reads the attributes back: what a caller sees once it returns. */
struct probe {
	struct done d; /* first: on_done() takes req->arg as a struct done */
	struct txn_engine *eng;
	const char *path;
	struct txn_attr seen;
	int seen_err;
};

static void on_done_probe(struct txn_commit_req *req, int err)
{
	struct probe *p = req->arg;

	p->seen_err = txn_dir_attr(p->eng, p->path, strlen(p->path), &p->seen);
	on_done(req, err);
}

static void an_owner_change_is_a_commit_visible_once_it_completes(void **state)
{
	struct fx *f = *state;
	struct probe p = { .path = "ns/a/k" };
	struct txn_commit_req *req;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/k", "v", &ts), 0);
	assert_i64_equal(ts, 1);
	p.eng = f->eng;
	gate_close(f);
	req = auto_req(TXN_AUTO_ATTR, "ns/a", NULL, NULL, 0, &p.d);
	req->attr = (struct txn_attr){ .uid = 1000, .gid = 100, .mode = 0700, .own = true };
	req->done = on_done_probe;
	txn_autocommit(f->eng, req);
	/* Queued, not committed: nothing has changed yet. */
	assert_attr(f, "ns/a", 0, 0, 0755, false);
	assert_i64_equal(txn_engine_head(f->eng), 1);
	gate_open(f);
	wait_done(&p.d);
	assert_errno(p.d.err, 0);
	assert_i64_equal(p.d.commit_ts, 2);
	assert_i64_equal(txn_engine_head(f->eng), 2);
	assert_errno(p.seen_err, 0);
	assert_int_equal(p.seen.uid, 1000);
	assert_int_equal(p.seen.gid, 100);
	assert_int_equal(p.seen.mode, 0700);
	assert_false(p.seen.own);
	txn_commit_req_free(req);
	assert_attr(f, "ns/a", 1000, 100, 0700, true);
	/* Keys are not touched by it. */
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 1);
	assert_listing(f, NULL, "ns/a", "k");
}

static void clearing_an_owner_record_reverts_to_the_inherited_one(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	restart_owned_by(f, 4242, 4343);
	assert_errno(chown_dir(f, "ns", 1000, 100, 0750, NULL), 0);
	assert_errno(chown_dir(f, "ns/a", 2000, 200, 0700, NULL), 0);
	assert_errno(clear_dir(f, "ns/a", &ts), 0);
	assert_i64_equal(ts, 3);
	assert_attr(f, "ns/a", 1000, 100, 0750, false);
	assert_attr(f, "ns", 1000, 100, 0750, true);
	assert_errno(clear_dir(f, "ns", &ts), 0);
	assert_i64_equal(ts, 4);
	assert_attr(f, "ns", 4242, 4343, 0755, false);
	assert_attr(f, "ns/a", 4242, 4343, 0755, false);
	restart(f);
	assert_attr(f, "ns", 4242, 4343, 0755, false);
	assert_attr(f, "ns/a", 4242, 4343, 0755, false);
}

static void an_owner_change_of_the_root_or_of_a_key_is_refused_with_einval(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/k", "v", NULL), 0);
	assert_errno(chown_dir(f, "", 1000, 100, 0700, &ts), -EINVAL);
	assert_i64_equal(ts, 0);
	assert_errno(chown_dir(f, "ns/a/k", 1000, 100, 0700, &ts), -EINVAL);
	assert_errno(chown_dir(f, "ns/a/dir/k", 1000, 100, 0700, &ts), -EINVAL);
	assert_errno(clear_dir(f, "ns/a/k", &ts), -EINVAL);
	assert_errno(chown_dir(f, ".tx", 1000, 100, 0700, &ts), -EINVAL);
	assert_errno(chown_dir(f, "ns/..", 1000, 100, 0700, &ts), -EINVAL);
	assert_i64_equal(txn_engine_head(f->eng), 1);
	assert_attr(f, "ns/a/k", 0, 0, 0755, false);
	assert_attr(f, "ns", 0, 0, 0755, false);
	/* The engine goes on: the next commit takes the next commit_ts. */
	assert_errno(chown_dir(f, "ns", 1000, 100, 0700, &ts), 0);
	assert_i64_equal(ts, 2);
}

#if STATEHOUSE_FAULT_INJECTION
static void a_failed_owner_change_changes_nothing(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	assert_errno(chown_dir(f, "ns", 1000, 100, 0750, NULL), 0);
	txn_engine_set_fault(f->eng, 0, -EIO);
	assert_errno(chown_dir(f, "ns", 2000, 200, 0700, &ts), -EIO);
	assert_i64_equal(ts, 0);
	assert_errno(chown_dir(f, "ns/a", 2000, 200, 0700, NULL), -EIO);
	assert_errno(clear_dir(f, "ns", NULL), -EIO);
	assert_attr(f, "ns", 1000, 100, 0750, true);
	assert_attr(f, "ns/a", 1000, 100, 0750, false);
	txn_engine_set_fault(f->eng, 0, 0);
	restart(f);
	assert_attr(f, "ns", 1000, 100, 0750, true);
	assert_attr(f, "ns/a", 1000, 100, 0750, false);
	assert_i64_equal(txn_engine_head(f->eng), 1);
}
#endif

static void owner_records_in_one_batch_apply_in_queue_order(void **state)
{
	struct fx *f = *state;
	struct done d[4] = { 0 };
	struct txn_commit_req *r[4];

	gate_close(f);
	r[0] = auto_req(TXN_AUTO_ATTR, "ns", NULL, NULL, 0, &d[0]);
	r[0]->attr = (struct txn_attr){ .uid = 1, .gid = 1, .mode = 0700, .own = true };
	r[1] = auto_req(TXN_AUTO_ATTR, "ns/a/k", NULL, NULL, 0, &d[1]); /* refused */
	r[1]->attr = (struct txn_attr){ .uid = 9, .gid = 9, .mode = 0700, .own = true };
	r[2] = auto_req(TXN_AUTO_ATTR, "ns", NULL, NULL, 0, &d[2]);
	r[2]->attr = (struct txn_attr){ .uid = 2, .gid = 2, .mode = 0750, .own = true };
	r[3] = auto_req(TXN_AUTO_PUT, "ns/a/k", NULL, "v", 1, &d[3]);
	for (int i = 0; i < 4; i++)
		txn_autocommit(f->eng, r[i]);
	gate_open(f);
	for (int i = 0; i < 4; i++)
		wait_done(&d[i]);
	assert_errno(d[0].err, 0);
	assert_i64_equal(d[0].commit_ts, 1);
	assert_errno(d[1].err, -EINVAL);
	assert_errno(d[2].err, 0);
	assert_i64_equal(d[2].commit_ts, 2);
	assert_errno(d[3].err, 0);
	assert_i64_equal(d[3].commit_ts, 3);
	for (int i = 0; i < 4; i++)
		txn_commit_req_free(r[i]);
	assert_attr(f, "ns", 2, 2, 0750, true);
	restart(f);
	assert_attr(f, "ns", 2, 2, 0750, true);
	assert_value(f, NULL, "ns/a/k", "v");
}

static void owner_records_survive_a_restart_by_replay_and_by_snapshot(void **state)
{
	struct fx *f = *state;
	struct txn_stats st;
	int64_t ts = -1;

	f->opt.snapshot_keep = 2;
	restart_owned_by(f, 4242, 4343);
	assert_errno(chown_dir(f, "ns", 1000, 100, 01777, NULL), 0);
	assert_errno(chown_dir(f, "ns/a", 2000, 200, 0700, NULL), 0);
	assert_errno(chown_dir(f, "ns/gone", 3000, 300, 0700, NULL), 0);
	assert_errno(clear_dir(f, "ns/gone", NULL), 0);
	assert_errno(put(f, "ns/b/k", "v", NULL), 0);
	assert_errno(chown_dir(f, "bare", 5000, 500, 0711, &ts), 0);
	assert_i64_equal(ts, 6);

	/* By replay of the whole log. */
	restart(f);
	txn_engine_stats(f->eng, &st);
	assert_i64_equal(st.snapshot_ts, 0);
	assert_int_equal(st.last_replayed, 6);
	assert_attr(f, "ns", 1000, 100, 01777, true);
	assert_attr(f, "ns/a", 2000, 200, 0700, true);
	assert_attr(f, "ns/b", 1000, 100, 0755, false);
	assert_attr(f, "ns/gone", 1000, 100, 0755, false);
	assert_attr(f, "bare", 5000, 500, 0711, true);

	/* From a snapshot alone: nothing is replayed after it. */
	assert_errno(txn_engine_snapshot(f->eng), 0);
	restart(f);
	txn_engine_stats(f->eng, &st);
	assert_i64_equal(st.snapshot_ts, 6);
	assert_int_equal(st.last_replayed, 0);
	assert_attr(f, "ns", 1000, 100, 01777, true);
	assert_attr(f, "ns/a", 2000, 200, 0700, true);
	assert_attr(f, "ns/b", 1000, 100, 0755, false);
	assert_attr(f, "ns/gone", 1000, 100, 0755, false);
	assert_attr(f, "bare", 5000, 500, 0711, true);
	assert_value(f, NULL, "ns/b/k", "v");

	/* A snapshot, then changes replayed on top of it. */
	assert_errno(clear_dir(f, "ns/a", NULL), 0);
	assert_errno(chown_dir(f, "bare", 6000, 600, 0700, NULL), 0);
	restart(f);
	txn_engine_stats(f->eng, &st);
	assert_i64_equal(st.snapshot_ts, 6);
	assert_int_equal(st.last_replayed, 2);
	assert_attr(f, "ns/a", 1000, 100, 0755, false);
	assert_attr(f, "bare", 6000, 600, 0700, true);
	assert_attr(f, "ns", 1000, 100, 01777, true);

	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(txn_verify(f->dir, NULL), 0);
	assert_int_equal(fx_start(f), 0);
}

/* A snapshot written by hand: attribute entries only (paths of one or two components). */
struct forged {
	const char *const *paths;
	const char *const *values;
	size_t n, next;
};

static int forged_next(void *arg, struct store_snap_entry *e)
{
	struct forged *fg = arg;

	if (fg->next == fg->n)
		return 0;
	*e = (struct store_snap_entry){ .path = fg->paths[fg->next],
					.path_len = strlen(fg->paths[fg->next]),
					.value = fg->values[fg->next],
					.value_len = strlen(fg->values[fg->next]) };
	fg->next++;
	return 1;
}

static int verify_with_snapshot(struct fx *f, const char *const *paths,
				const char *const *values, size_t n)
{
	struct forged fg = { paths, values, n, 0 };

	assert_errno(store_snapshot_write(f->dir, 1, 1, forged_next, &fg, 1), 0);
	return txn_verify(f->dir, NULL);
}

static void verify_finds_an_owner_record_the_snapshot_and_the_log_disagree_on(void **state)
{
	struct fx *f = *state;
	static const char *const ns[] = { "ns" };
	static const char *const ns_ghost[] = { "ns", "ghost" };
	static const char *const right[] = { "{\"uid\":1000,\"gid\":100,\"mode\":\"0750\"}",
					      "{\"uid\":1,\"gid\":1,\"mode\":\"0700\"}" };
	static const char *const wrong[] = { "{\"uid\":1000,\"gid\":100,\"mode\":\"0700\"}" };

	assert_errno(chown_dir(f, "ns", 1000, 100, 0750, NULL), 0);
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(verify_with_snapshot(f, ns, right, 1), 0);
	assert_errno(verify_with_snapshot(f, ns, wrong, 1), -EIO);
	assert_errno(verify_with_snapshot(f, ns, right, 0), -EIO);
	/* A record the snapshot has for a namespace the log never named. */
	assert_errno(verify_with_snapshot(f, ns_ghost, right, 2), -EIO);
}

static void the_notify_hook_gets_the_directory_whose_owner_changed(void **state)
{
	struct fx *f = *state;
	struct hook h = { 0 };

	txn_engine_set_notify(f->eng, hook_fn, &h);
	assert_errno(chown_dir(f, "ns", 1000, 100, 0750, NULL), 0);
	assert_errno(chown_dir(f, "ns/a", 1000, 100, 0750, NULL), 0);
	assert_errno(clear_dir(f, "ns/a", NULL), 0);
	txn_engine_close(f->eng); /* joins the committer: the hook has run */
	f->eng = NULL;
	assert_int_equal(h.calls, 3);
	assert_string_equal(h.paths, "ns ns/a ns/a");
}

static void an_owned_namespace_or_agent_is_listed_and_not_empty_without_keys(void **state)
{
	struct fx *f = *state;
	struct txn_entry e;

	assert_errno(chown_dir(f, "ns", 1000, 100, 0750, NULL), 0);
	assert_listing(f, NULL, "", "ns/");
	assert_errno(chown_dir(f, "ns/a", 1000, 100, 0750, NULL), 0);
	assert_listing(f, NULL, "ns", "a/");
	assert_errno(txn_stat(f->eng, NULL, "ns/a", 4, &e), 0);
	assert_int_equal(e.type, TXN_DIR);
	/* An agent with an owner of its own keeps its namespace from being removed. */
	assert_errno(txn_live_rmdir(f->eng, "ns", 2), -ENOTEMPTY);
	assert_errno(clear_dir(f, "ns/a", NULL), 0);
	assert_listing(f, NULL, "ns", "");
	assert_errno(txn_live_rmdir(f->eng, "ns", 2), 0);
	assert_errno(clear_dir(f, "ns", NULL), 0);
	assert_listing(f, NULL, "", "");
}

static void begin_records_the_uid_and_gid_of_who_began_it(void **state)
{
	struct fx *f = *state;
	struct txn *tx = NULL;

	assert_errno(txn_begin(f->eng, "mine", 4, 1234, 5678, &tx), 0);
	assert_non_null(tx);
	f->txs[f->ntxs++] = tx;
	assert_int_equal(txn_uid(tx), 1234);
	assert_int_equal(txn_gid(tx), 5678);
	tx = txn_find(f->eng, "mine", 4);
	assert_non_null(tx);
	assert_int_equal(txn_uid(tx), 1234);
	assert_int_equal(txn_gid(tx), 5678);
	txn_unref(tx);
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
		T(a_committed_transaction_is_read_only_and_its_view_is_gone),
		T(the_first_committer_wins_and_the_loser_names_the_key),
		T(a_delete_of_a_key_written_after_begin_conflicts),
		T(a_shape_clash_found_at_commit_is_a_conflict),
		T(set_timeout_accepts_1_to_86400000_ms_before_the_first_op),
		T(an_expired_transaction_is_reaped_and_its_commit_fails_with_etimedout),
		T(a_transaction_with_staged_ops_expires_and_none_of_them_commits),
		T(a_deadline_that_passes_while_the_commit_is_queued_expires_the_transaction),
#if STATEHOUSE_FAULT_INJECTION
		T(a_failed_autocommit_changes_nothing_and_a_retry_gets_the_next_ts),
#endif
#if STATEHOUSE_FAULT_INJECTION
		T(a_fault_after_one_commit_lets_exactly_that_one_through),
#endif
#if STATEHOUSE_FAULT_INJECTION
		T(a_transaction_whose_store_write_fails_stays_open_and_can_retry),
#endif
#if STATEHOUSE_FAULT_INJECTION
		T(requests_queued_together_commit_in_one_store_write),
#endif
#if STATEHOUSE_FAULT_INJECTION
		T(a_failed_batch_fails_every_request_in_it_and_changes_nothing),
#endif
		T(two_transactions_in_one_batch_writing_one_key_conflict_in_queue_order),
		T(stopping_the_engine_completes_every_queued_commit),
		T(the_notify_hook_gets_the_changed_keys_and_completes_late_requests),
		T(a_commit_ts_beyond_int32_is_reported_as_success),
		T(live_mkdir_and_rmdir_make_and_remove_empty_directories),
		T(directories_are_state_replayed_from_the_log_and_kept_in_snapshots),
		T(a_transaction_commits_its_mkdir_rmdir_and_directory_rename),
		T(namespaces_and_agents_exist_implicitly_but_are_listed_only_with_keys),
		T(check_name_rejects_empty_dot_slash_nul_and_long_names),
		T(versions_and_options_are_reported),
		T(a_directory_without_an_owner_record_has_the_daemon_owner_and_0755),
		T(an_agent_inherits_its_namespace_until_it_has_an_owner_of_its_own),
		T(an_agent_of_a_sticky_namespace_inherits_no_write_bits_for_group_or_others),
		T(an_owner_change_is_a_commit_visible_once_it_completes),
		T(clearing_an_owner_record_reverts_to_the_inherited_one),
		T(an_owner_change_of_the_root_or_of_a_key_is_refused_with_einval),
#if STATEHOUSE_FAULT_INJECTION
		T(a_failed_owner_change_changes_nothing),
#endif
		T(owner_records_in_one_batch_apply_in_queue_order),
		T(owner_records_survive_a_restart_by_replay_and_by_snapshot),
		T(verify_finds_an_owner_record_the_snapshot_and_the_log_disagree_on),
		T(the_notify_hook_gets_the_directory_whose_owner_changed),
		T(an_owned_namespace_or_agent_is_listed_and_not_empty_without_keys),
		T(begin_records_the_uid_and_gid_of_who_began_it),
	};
#undef T
	/* Injected faults and refused requests log at error level; recovery logs at info. */
	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests_name("txn", tests, NULL, NULL);
}
