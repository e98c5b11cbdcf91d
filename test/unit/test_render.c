/* SPDX-License-Identifier: MIT */
/*
 * test_render.c - cmocka unit tests of the JSON documents of the mount (fs/render.c, fs
 * layer), on a real engine with no mount: a transaction's .commit and .status and the
 * event stream.  The fixture is the small part of test_txn.c's that these cases need.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#include "blob.h"
#include "grow.h"
#include "log.h"
#include "render.h"
#include "txn.h"

#define WAIT_S 60 /* deadline for anything the committer must do */

/* ---- completions --------------------------------------------------------------------- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* protects every struct done */
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;

struct done {
	bool done;
	int err;
	int64_t commit_ts;
};

static void on_done(struct txn_commit_req *req, int err)
{
	struct done *d = req->arg;

	pthread_mutex_lock(&g_lock);
	d->done = true;
	d->err = err;
	d->commit_ts = req->commit_ts;
	pthread_cond_broadcast(&g_cond);
	pthread_mutex_unlock(&g_lock);
}

static void wait_done(struct done *d)
{
	struct timespec dl;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += WAIT_S;
	pthread_mutex_lock(&g_lock);
	while (!d->done && rc == 0)
		rc = pthread_cond_timedwait(&g_cond, &g_lock, &dl);
	pthread_mutex_unlock(&g_lock);
	if (rc)
		fail_msg("a commit did not complete within %d s", WAIT_S);
}

/* ---- fixture -------------------------------------------------------------------------- */

#define MAX_TRACKED 4

struct fx {
	char *dir;
	struct txn_options opt;
	struct txn_engine *eng;
	struct txn *txs[MAX_TRACKED]; /* references from begin(), dropped in teardown */
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

/* Queue an autocommit and wait for it; the request is freed. */
static int run_auto(struct fx *f, struct txn_commit_req *req, int64_t *ts)
{
	struct done d = { 0 };
	int err;

	req->done = on_done;
	req->arg = &d;
	txn_autocommit(f->eng, req);
	wait_done(&d);
	err = d.err;
	if (ts)
		*ts = d.commit_ts;
	txn_commit_req_free(req);
	return err;
}

static struct txn_commit_req *auto_req(enum txn_auto_kind kind, const char *path)
{
	struct txn_commit_req *req = calloc(1, sizeof(*req));

	assert_non_null(req);
	req->kind = kind;
	req->path = strdup(path);
	assert_non_null(req->path);
	return req;
}

static int put(struct fx *f, const char *path, const char *val, int64_t *ts)
{
	struct txn_commit_req *req = auto_req(TXN_AUTO_PUT, path);

	req->value = blob_new(val, strlen(val));
	assert_non_null(req->value);
	return run_auto(f, req, ts);
}

static int attr_commit(struct fx *f, const char *path, bool own, uint32_t uid, uint32_t gid,
		       uint32_t mode, int64_t *ts)
{
	struct txn_commit_req *req = auto_req(TXN_AUTO_ATTR, path);

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

/* Begin a transaction; the fixture drops the reference in teardown. */
static struct txn *begin(struct fx *f, const char *name)
{
	struct txn *tx = NULL;

	assert_errno(txn_begin(f->eng, name, strlen(name), 1000, 1000, &tx), 0);
	assert_non_null(tx);
	assert_true(f->ntxs < MAX_TRACKED);
	f->txs[f->ntxs++] = tx;
	return tx;
}

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
	if (ts)
		*ts = d.commit_ts;
	txn_commit_req_free(req);
	return d.err;
}

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

#define assert_status(f, tx, key, expected)                                            \
	do {                                                                           \
		char *s__ = status_field((f), (tx), (key));                            \
		if (strcmp(s__, (expected)) != 0) {                                    \
			print_error("status field %s is \"%s\", expected \"%s\"\n", (key), \
				    s__, (expected));                                  \
			free(s__);                                                     \
			_fail(__FILE__, __LINE__);                                     \
		}                                                                      \
		free(s__);                                                             \
	} while (0)

/* ==== .commit and .status ================================================================ */

static void an_empty_commit_gets_a_commit_ts_and_commit_json(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	int64_t ts = -1;
	json_error_t jerr;
	char *js;
	json_t *o;

	assert_errno(put(f, "ns/a/k", "v", NULL), 0);
	tx = begin(f, "empty");
	assert_null(render_commit_json(tx));
	assert_errno(commit(f, tx, &ts), 0);
	assert_i64_equal(ts, 2);
	assert_i64_equal(txn_engine_head(f->eng), 2);
	js = render_commit_json(tx);
	assert_non_null(js);
	o = json_loads(js, 0, &jerr);
	assert_non_null(o);
	assert_i64_equal(json_integer_value(json_object_get(o, "commit_ts")), 2);
	assert_string_equal(json_string_value(json_object_get(o, "txn")), "empty");
	assert_i64_equal(json_integer_value(json_object_get(o, "ops")), 0);
	assert_true(json_is_string(json_object_get(o, "time")));
	assert_int_equal(strlen(json_string_value(json_object_get(o, "time"))), 27);
	json_decref(o);
	free(js);
	assert_status(f, tx, "state", "committed");
	assert_status(f, tx, "commit_ts", "2");

	/* The empty commit is in the log: the head survives a restart. */
	restart(f);
	assert_i64_equal(txn_engine_head(f->eng), 2);
	assert_errno(put(f, "ns/a/k", "w", &ts), 0);
	assert_i64_equal(ts, 3);
}

/* ==== the event stream ================================================================== */

/* A field of a rendered op's "value" object. */
static json_int_t value_int(json_t *op, const char *field)
{
	return json_integer_value(json_object_get(json_object_get(op, "value"), field));
}

static const char *value_str(json_t *op, const char *field)
{
	const char *s = json_string_value(json_object_get(json_object_get(op, "value"), field));

	return s ? s : "(none)";
}

static void events_render_an_owner_change_as_an_attr_op(void **state)
{
	struct fx *f = *state;
	struct strbuf buf = STRBUF_INIT;
	int64_t last = -1;
	json_t *lines[4] = { 0 }, *op;
	json_error_t jerr;
	size_t n = 0;

	assert_errno(chown_dir(f, "ns", 1000, 100, 01777, NULL), 0);
	assert_errno(chown_dir(f, "ns/a", 2000, 200, 0700, NULL), 0);
	assert_errno(clear_dir(f, "ns/a", NULL), 0);
	assert_errno(put(f, "ns/a/k", "1", NULL), 0);
	assert_errno(render_events(f->eng, NULL, 0, 1, 4, &buf, &last), 0);
	assert_i64_equal(last, 4);
	for (char *p = buf.buf, *end = buf.buf + buf.len, *nl; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		assert_non_null(nl);
		assert_true(n < 4);
		lines[n] = json_loadb(p, (size_t)(nl - p), 0, &jerr);
		if (!lines[n])
			fail_msg("event line %zu is not JSON: %s", n + 1, jerr.text);
		n++;
	}
	strbuf_release(&buf);
	assert_int_equal(n, 4);

	/* A namespace's: no agent, no key, no version. */
	assert_int_equal(json_integer_value(json_object_get(lines[0], "commit_ts")), 1);
	assert_int_equal(json_array_size(json_object_get(lines[0], "ops")), 1);
	op = json_array_get(json_object_get(lines[0], "ops"), 0);
	assert_int_equal(json_object_size(op), 3);
	assert_string_equal(json_string_value(json_object_get(op, "ns")), "ns");
	assert_string_equal(json_string_value(json_object_get(op, "op")), "attr");
	assert_int_equal(value_int(op, "uid"), 1000);
	assert_int_equal(value_int(op, "gid"), 100);
	assert_string_equal(value_str(op, "mode"), "1777");
	/* An agent's. */
	op = json_array_get(json_object_get(lines[1], "ops"), 0);
	assert_int_equal(json_object_size(op), 4);
	assert_string_equal(json_string_value(json_object_get(op, "ns")), "ns");
	assert_string_equal(json_string_value(json_object_get(op, "agent")), "a");
	assert_string_equal(json_string_value(json_object_get(op, "op")), "attr");
	assert_int_equal(value_int(op, "uid"), 2000);
	assert_int_equal(value_int(op, "gid"), 200);
	assert_string_equal(value_str(op, "mode"), "0700");
	/* Cleared: value null. */
	op = json_array_get(json_object_get(lines[2], "ops"), 0);
	assert_string_equal(json_string_value(json_object_get(op, "agent")), "a");
	assert_string_equal(json_string_value(json_object_get(op, "op")), "attr");
	assert_true(json_is_null(json_object_get(op, "value")));
	op = json_array_get(json_object_get(lines[3], "ops"), 0);
	assert_string_equal(json_string_value(json_object_get(op, "op")), "put");
	for (size_t i = 0; i < n; i++)
		json_decref(lines[i]);

	/* The agent's stream has its own records, not its namespace's. */
	memset(&buf, 0, sizeof(buf));
	last = -1;
	assert_errno(render_events(f->eng, "ns/a", 4, 1, 4, &buf, &last), 0);
	assert_i64_equal(last, 4);
	assert_non_null(buf.buf);
	n = 0;
	for (size_t i = 0; i < buf.len; i++)
		n += buf.buf[i] == '\n';
	assert_int_equal(n, 3);
	assert_memory_equal(buf.buf, "{\"commit_ts\":2,", 15);
	strbuf_release(&buf);
}

/* ==== index.jsonl ========================================================================= */

/* Line i (from 0) of s, NUL-terminated in a static buffer. */
static const char *line_of(const char *s, size_t len, int i)
{
	static char buf[256];
	const char *p = s, *end = s + len, *nl;

	for (; i > 0 && p < end; i--) {
		nl = memchr(p, '\n', (size_t)(end - p));
		assert_non_null(nl);
		p = nl + 1;
	}
	nl = memchr(p, '\n', (size_t)(end - p));
	assert_non_null(nl);
	assert_true((size_t)(nl - p) < sizeof(buf));
	memcpy(buf, p, (size_t)(nl - p));
	buf[nl - p] = '\0';
	return buf;
}

/* "{...,"time":"<27 bytes>",...}" with the time cut out, to compare whole lines. */
static void assert_line_without_time(const char *line, const char *before, const char *after)
{
	size_t bl = strlen(before);
	const char *rest = line + bl + 27;

	assert_true(strlen(line) == bl + 27 + strlen(after));
	assert_memory_equal(line, before, bl);
	assert_string_equal(rest, after);
}

static void the_history_index_has_one_line_per_version_naming_its_transaction(void **state)
{
	struct fx *f = *state;
	struct txn *tx;
	struct blob *idx = NULL;
	struct txn_commit_req *req;

	assert_errno(put(f, "ns/a/k", "v", NULL), 0);
	tx = begin(f, "t1");
	assert_errno(txn_stage_put(f->eng, tx, "ns/a/k", 6, blob_new("ww", 2)), 0);
	assert_errno(commit(f, tx, NULL), 0);
	req = auto_req(TXN_AUTO_DELETE, "ns/a/k");
	assert_errno(run_auto(f, req, NULL), 0);

	assert_errno(render_history_index(f->eng, "ns/a/k", 6, &idx), 0);
	assert_non_null(idx);
	assert_line_without_time(line_of((const char *)idx->data, idx->len, 0),
				 "{\"version\":1,\"commit_ts\":1,\"txn\":\"auto\",\"time\":\"",
				 "\",\"op\":\"put\",\"size\":1}");
	assert_line_without_time(line_of((const char *)idx->data, idx->len, 1),
				 "{\"version\":2,\"commit_ts\":2,\"txn\":\"t1\",\"time\":\"",
				 "\",\"op\":\"put\",\"size\":2}");
	assert_line_without_time(line_of((const char *)idx->data, idx->len, 2),
				 "{\"version\":3,\"commit_ts\":3,\"txn\":\"auto\",\"time\":\"",
				 "\",\"op\":\"delete\",\"size\":0}");
	assert_int_equal(idx->data[idx->len - 1], '\n');
	blob_unref(idx);

	assert_errno(render_history_index(f->eng, "ns/a/never", 10, &idx), -ENOENT);
	assert_null(idx);
}

static void events_carry_json_as_json_text_as_strings_and_other_bytes_in_base64(void **state)
{
	struct fx *f = *state;
	struct strbuf buf = STRBUF_INIT;
	int64_t last = -1;

	assert_errno(put(f, "ns/a/j", "{\"x\":1}", NULL), 0);
	assert_errno(put(f, "ns/a/t", "hi", NULL), 0);
	assert_errno(put(f, "ns/a/b", "\xff\xfe", NULL), 0);
	assert_errno(render_events(f->eng, NULL, 0, 1, 3, &buf, &last), 0);
	assert_i64_equal(last, 3);
	assert_non_null(strstr(line_of(buf.buf, buf.len, 0),
			       "\"ops\":[{\"ns\":\"ns\",\"agent\":\"a\",\"key\":\"j\","
			       "\"op\":\"put\",\"version\":1,\"value\":{\"x\":1}}]}"));
	assert_non_null(strstr(line_of(buf.buf, buf.len, 1), "\"value\":\"hi\"}]}"));
	assert_non_null(strstr(line_of(buf.buf, buf.len, 2), "\"value_base64\":\"//4=\"}]}"));

	/* A filter that is no "ns/agent" is refused and the buffer stays as it was. */
	assert_errno(render_events(f->eng, "ns", 2, 1, 3, &buf, &last), -EINVAL);
	assert_i64_equal(last, 3);
	assert_int_equal(buf.buf[buf.len - 1], '\n');
	strbuf_release(&buf);
}

/* ==== names that are not UTF-8 ============================================================= */

/* The name o[name] as rendered: the string, or "base64:<o[name_base64]>" ("(none)"). */
static const char *name_of(json_t *o, const char *name)
{
	static char out[4][64];
	static int next;
	char *buf = out[next++ % 4];
	char b64key[32];
	json_t *v = json_object_get(o, name), *b;

	snprintf(b64key, sizeof(b64key), "%s_base64", name);
	b = json_object_get(o, b64key);
	if (json_is_string(v) && !b)
		snprintf(buf, 64, "%s", json_string_value(v));
	else if (json_is_string(b) && !v)
		snprintf(buf, 64, "base64:%s", json_string_value(b));
	else
		snprintf(buf, 64, "(none)");
	return buf;
}

static json_t *parse_line(const char *line)
{
	json_error_t jerr;
	json_t *o = json_loads(line, 0, &jerr);

	if (!o)
		fail_msg("not JSON: %s (%s)", line, jerr.text);
	return o;
}

static void names_that_are_not_utf8_render_as_base64_and_read_back_exactly(void **state)
{
	struct fx *f = *state;
	struct strbuf buf = STRBUF_INIT;
	struct blob *idx = NULL;
	struct txn *tx;
	int64_t last = -1;
	json_t *o, *op;
	char *js;

	/* A transaction, a namespace, an agent and a key, each one byte away from UTF-8. */
	tx = begin(f, "t\xff");
	assert_errno(txn_stage_put(f->eng, tx, "n\xfes/a\xfdg/k\xfc/x", 12, blob_new("v", 1)),
		     0);
	assert_errno(commit(f, tx, NULL), 0);
	assert_errno(chown_dir(f, "n\xfes/a\xfdg", 1000, 100, 0750, NULL), 0);
	assert_errno(put(f, "ns/a/plain", "w", NULL), 0);

	assert_errno(render_events(f->eng, NULL, 0, 1, 3, &buf, &last), 0);
	assert_i64_equal(last, 3);
	o = parse_line(line_of(buf.buf, buf.len, 0));
	assert_string_equal(name_of(o, "txn"), "base64:dP8=");
	op = json_array_get(json_object_get(o, "ops"), 0);
	assert_string_equal(name_of(op, "ns"), "base64:bv5z");
	assert_string_equal(name_of(op, "agent"), "base64:Yf1n");
	assert_string_equal(name_of(op, "key"), "base64:a/wveA==");
	assert_string_equal(json_string_value(json_object_get(op, "value")), "v");
	json_decref(o);
	/* An owner change names its agent the same way. */
	o = parse_line(line_of(buf.buf, buf.len, 1));
	op = json_array_get(json_object_get(o, "ops"), 0);
	assert_string_equal(name_of(op, "ns"), "base64:bv5z");
	assert_string_equal(name_of(op, "agent"), "base64:Yf1n");
	json_decref(o);
	/* UTF-8 names stay plain strings. */
	o = parse_line(line_of(buf.buf, buf.len, 2));
	assert_string_equal(name_of(o, "txn"), "auto");
	op = json_array_get(json_object_get(o, "ops"), 0);
	assert_string_equal(name_of(op, "key"), "plain");
	json_decref(o);
	strbuf_release(&buf);

	/* The agent's own stream, its key's history, the transaction's .status and .commit. */
	last = -1;
	assert_errno(render_events(f->eng, "n\xfes/a\xfdg", 7, 1, 3, &buf, &last), 0);
	assert_i64_equal(last, 2);
	strbuf_release(&buf);
	assert_errno(render_history_index(f->eng, "n\xfes/a\xfdg/k\xfc/x", 12, &idx), 0);
	o = parse_line(line_of((const char *)idx->data, idx->len, 0));
	assert_string_equal(name_of(o, "txn"), "base64:dP8=");
	json_decref(o);
	blob_unref(idx);
	js = render_commit_json(tx);
	assert_non_null(js);
	o = parse_line(js);
	assert_string_equal(name_of(o, "txn"), "base64:dP8=");
	json_decref(o);
	free(js);
	assert_status(f, tx, "state", "committed");
	js = render_status_json(f->eng, tx);
	assert_non_null(js);
	o = parse_line(js);
	assert_string_equal(name_of(o, "txn"), "base64:dP8=");
	json_decref(o);
	free(js);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(an_empty_commit_gets_a_commit_ts_and_commit_json),
		T(events_render_an_owner_change_as_an_attr_op),
		T(the_history_index_has_one_line_per_version_naming_its_transaction),
		T(events_carry_json_as_json_text_as_strings_and_other_bytes_in_base64),
		T(names_that_are_not_utf8_render_as_base64_and_read_back_exactly),
	};
#undef T
	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests_name("render", tests, NULL, NULL);
}
