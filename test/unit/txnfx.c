/* SPDX-License-Identifier: MIT */
/*
 * txnfx.c - the engine fixture of the txn unit tests (txnfx.h).
 *
 * Each test runs an engine on a fresh scratch data directory with its committer and
 * reaper started and no notify hook, so completions run on the committer thread.  A test
 * waits for them on one process-wide mutex/condvar.  To make several requests land in one
 * batch, a test parks the committer inside a completion (a "gate") and queues behind it.
 * Nothing here measures time: expiry is polled with a generous deadline.
 */
#include "txnfx.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "render.h"

/* ---- completions --------------------------------------------------------------------- */

pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* protects every struct done */
pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;


void on_done(struct txn_commit_req *req, int err)
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

void deadline_in(struct timespec *ts, int secs)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += secs;
}

void wait_done(struct done *d)
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
void release(struct done *d)
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



const struct txn_options default_opt = {
	.txn_timeout_ms = 30000,
	.max_open_txns = 8,
	.max_value_bytes = 1024 * 1024,
	.fsync = 0,
};

int fx_start(struct fx *f)
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

int setup(void **state)
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

int teardown(void **state)
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
void restart(struct fx *f)
{
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_int_equal(fx_start(f), 0);
}

/* ---- autocommits ------------------------------------------------------------------------ */

struct txn_commit_req *auto_req(enum txn_auto_kind kind, const char *path,
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

int run_auto(struct fx *f, struct txn_commit_req *req, int64_t *ts)
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

int put_n(struct fx *f, const char *path, const void *val, size_t len, int64_t *ts)
{
	struct done d = { 0 };

	return run_auto(f, auto_req(TXN_AUTO_PUT, path, NULL, val, len, &d), ts);
}

int put(struct fx *f, const char *path, const char *val, int64_t *ts)
{
	return put_n(f, path, val, strlen(val), ts);
}

int del(struct fx *f, const char *path, int64_t *ts)
{
	struct done d = { 0 };

	return run_auto(f, auto_req(TXN_AUTO_DELETE, path, NULL, NULL, 0, &d), ts);
}

int ren(struct fx *f, const char *from, const char *to, bool noreplace, int64_t *ts)
{
	struct done d = { 0 };
	struct txn_commit_req *req = auto_req(TXN_AUTO_RENAME, from, to, NULL, 0, &d);

	req->noreplace = noreplace;
	return run_auto(f, req, ts);
}

/* Park the committer in a completion that needs no store write (a delete of a key that
 * never existed fails at validation).  Requests queued now run as one batch on release. */
void gate_close(struct fx *f)
{
	memset(&f->gate, 0, sizeof(f->gate));
	f->gate.hold = true;
	f->gate_req = auto_req(TXN_AUTO_DELETE, "gate/gate/none", NULL, NULL, 0, &f->gate);
	txn_autocommit(f->eng, f->gate_req);
	wait_done(&f->gate);
	assert_errno(f->gate.err, -ENOENT);
}

void gate_open(struct fx *f)
{
	release(&f->gate);
	txn_commit_req_free(f->gate_req);
	f->gate_req = NULL;
}

/* ---- transaction commits -------------------------------------------------------------- */

/* Begin a transaction; the fixture drops the reference in teardown. */

/* Commit tx with .commit.pending: an immediate error, or the completion's. */
int commit(struct fx *f, struct txn *tx, int64_t *ts)
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

struct txn *begin(struct fx *f, const char *name)
{
	struct txn *tx = NULL;

	assert_errno(txn_begin(f->eng, name, strlen(name), 1000, 1000, &tx), 0);
	assert_non_null(tx);
	assert_true(f->ntxs < MAX_TRACKED);
	f->txs[f->ntxs++] = tx;
	return tx;
}

int stage(struct fx *f, struct txn *tx, const char *path, const char *val)
{
	return txn_stage_put(f->eng, tx, path, strlen(path), blob_new(val, strlen(val)));
}

int unstage(struct fx *f, struct txn *tx, const char *path)
{
	return txn_stage_delete(f->eng, tx, path, strlen(path));
}

/* ---- reading ---------------------------------------------------------------------------- */

/* The value at path in a view, as a NUL-terminated copy (NULL and *err on failure). */
char *get(struct fx *f, struct txn *tx, const char *path, int *err,
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
void check_str(char *got, const char *want, const char *what, const char *path,
		      const char *file, int line)
{
	if (strcmp(got, want) != 0) {
		print_error("%s of '%s' is \"%s\", expected \"%s\"\n", what, path, got, want);
		free(got);
		_fail(file, line);
	}
	free(got);
}



int64_t version_of(struct fx *f, struct txn *tx, const char *path)
{
	struct txn_entry e;

	assert_errno(txn_stat(f->eng, tx, path, strlen(path), &e), 0);
	assert_int_equal(e.type, TXN_FILE);
	return e.version;
}

/* Directory listing as "name/ name ..." (a slash marks directories). */
char *listing(struct fx *f, struct txn *tx, const char *path, int *err)
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


/* A field of the transaction's status JSON, as text ("" when absent). */
char *status_field(struct fx *f, struct txn *tx, const char *key)
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


/* Poll (no timing assertion) until tx leaves `from`, with a generous deadline. */
enum txn_state wait_state_change(struct txn *tx, enum txn_state from)
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

void hook_fn(void *arg, struct txn_changes *ch)
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
