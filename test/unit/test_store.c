/* SPDX-License-Identifier: MIT */
/*
 * test_store.c - cmocka unit tests of the durable log (store layer).
 *
 * Each test gets a fresh scratch data directory and an open store (fsync=0: durability
 * across a power loss is not what a unit test can observe; reopening after a clean close
 * is).  The SQLite command-line shell is used, when installed, only to look at or
 * damage the database from outside; the tests themselves never include sqlite3.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "log.h"
#include "store.h"

struct fx {
	char *dir;
	struct store *st;
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

static void reopen(struct fx *f, int fsync)
{
	struct store_options opt = { .fsync = fsync };

	store_close(f->st);
	f->st = NULL;
	assert_errno(store_open(NULL, f->dir, &opt, &f->st), 0);
	assert_non_null(f->st);
}

/* ---- recording a replay ------------------------------------------------------------ */

struct rec_op {
	int64_t commit_ts, time_ns, version;
	char *path;
	size_t path_len;
	enum store_op_kind kind;
	void *value;
	size_t value_len;
};

struct rec {
	struct rec_op *ops;
	size_t n;
	int stop_after; /* return -ECANCELED after this many ops (0: never) */
};

static int rec_fn(void *arg, const struct store_replay_op *op)
{
	struct rec *r = arg;
	struct rec_op *o;

	r->ops = realloc(r->ops, (r->n + 1) * sizeof(*r->ops));
	if (!r->ops)
		return -ENOMEM;
	o = &r->ops[r->n++];
	o->commit_ts = op->commit_ts;
	o->time_ns = op->time_ns;
	o->version = op->version;
	o->kind = op->kind;
	o->path_len = op->path_len;
	o->path = malloc(op->path_len + 1);
	memcpy(o->path, op->path, op->path_len);
	o->path[op->path_len] = '\0';
	o->value_len = op->value_len;
	o->value = malloc(op->value_len + 1);
	if (op->value_len)
		memcpy(o->value, op->value, op->value_len);
	if (r->stop_after && r->n == (size_t)r->stop_after)
		return -ECANCELED;
	return 0;
}

static void rec_free(struct rec *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->ops[i].path);
		free(r->ops[i].value);
	}
	free(r->ops);
	r->ops = NULL;
	r->n = 0;
}

static int replay(struct store *st, int64_t after, struct rec *r, struct store_replay_stats *s)
{
	return store_replay(st, after, rec_fn, r, s);
}

/* ---- building events ---------------------------------------------------------------- */

#define PUT(p, v, vl, ver) { .path = (p), .path_len = sizeof(p) - 1, .kind = STORE_PUT, \
			      .version = (ver), .value = (v), .value_len = (vl) }
#define DEL(p, ver) { .path = (p), .path_len = sizeof(p) - 1, .kind = STORE_DELETE, \
		      .version = (ver) }

static struct store_event event(int64_t ts, const struct store_op *ops, size_t n)
{
	return (struct store_event){
		.commit_ts = ts,
		.time_ns = 1700000000000000000LL + ts * 1000,
		.txn = "unit",
		.ops = ops,
		.n_ops = n,
	};
}

static void assert_op(const struct rec_op *o, int64_t ts, const char *path,
		      enum store_op_kind kind, int64_t version, const void *value, size_t vlen)
{
	assert_i64_equal(o->commit_ts, ts);
	assert_i64_equal(o->time_ns, 1700000000000000000LL + ts * 1000);
	assert_int_equal(o->path_len, strlen(path));
	assert_memory_equal(o->path, path, strlen(path));
	assert_int_equal(o->kind, kind);
	assert_i64_equal(o->version, version);
	assert_int_equal(o->value_len, vlen);
	if (vlen)
		assert_memory_equal(o->value, value, vlen);
}

/* Three events, five ops: binary values with NUL bytes, an empty value, a delete, a key
 * with slashes and non-ASCII bytes. */
static const char bin1[] = { 'a', '\0', 'b', '\0', '\0', (char)0xff, '\n' };
static const char bin2[] = { '\0' };
static const struct store_op ev1_ops[] = {
	PUT("ns/agent/key", bin1, sizeof(bin1), 1),
	PUT("ns/agent/step/001", "{\"step\":1}", 10, 1),
};
static const struct store_op ev2_ops[] = {
	PUT("ns/agent/key", bin2, sizeof(bin2), 2),
	PUT("n\xc3\xa9/a-1/\xe2\x9c\x93/x", "", 0, 1),
};
static const struct store_op ev3_ops[] = {
	DEL("ns/agent/key", 3),
};

static void append_three(struct store *st)
{
	struct store_event evs[] = {
		event(1, ev1_ops, 2),
		event(2, ev2_ops, 2),
	};
	struct store_event ev3 = event(3, ev3_ops, 1);

	assert_errno(store_append(st, evs, 2), 0);
	assert_errno(store_append(st, &ev3, 1), 0);
}

static void assert_three(const struct rec *r, int64_t after)
{
	static const struct {
		int64_t ts;
		const char *path;
		enum store_op_kind kind;
		int64_t version;
		const void *value;
		size_t value_len;
	} want[] = {
		{ 1, "ns/agent/key", STORE_PUT, 1, bin1, sizeof(bin1) },
		{ 1, "ns/agent/step/001", STORE_PUT, 1, "{\"step\":1}", 10 },
		{ 2, "ns/agent/key", STORE_PUT, 2, bin2, sizeof(bin2) },
		{ 2, "n\xc3\xa9/a-1/\xe2\x9c\x93/x", STORE_PUT, 1, "", 0 },
		{ 3, "ns/agent/key", STORE_DELETE, 3, NULL, 0 },
	};
	size_t j = 0;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (want[i].ts <= after)
			continue;
		assert_true(j < r->n);
		assert_op(&r->ops[j++], want[i].ts, want[i].path, want[i].kind, want[i].version,
			  want[i].value, want[i].value_len);
	}
	assert_int_equal(r->n, j);
}

/* ---- tests -------------------------------------------------------------------------- */

static bool have_sqlite_shell(void)
{
	int status = -1;
	char *out = tu_run("command -v sqlite3 2>/dev/null", &status);
	bool ok = out && status == 0 && out[0] == '/';

	free(out);
	return ok;
}

static char *sql(const char *dir, const char *query, int *status)
{
	char *cmd = NULL, *out;

	if (asprintf(&cmd, "sqlite3 '%s/statehouse.db' \"%s\" 2>&1", dir, query) < 0)
		return NULL;
	out = tu_run(cmd, status);
	free(cmd);
	return out;
}

static void opening_an_empty_directory_creates_the_database_and_its_schema(void **state)
{
	struct fx *f = *state;
	struct store_replay_stats s;
	struct rec r = { 0 };
	struct stat sb;
	char *path = NULL;
	int64_t head = -1;

	assert_true(asprintf(&path, "%s/statehouse.db", f->dir) > 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	free(path);

	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_int_equal(r.n, 0);
	assert_i64_equal(s.head_ts, 0);
	assert_i64_equal(s.head_time_ns, 0);
	assert_int_equal(s.events, 0);
	assert_int_equal(s.ops, 0);
	assert_errno(store_check(f->st, &head), 0);
	assert_i64_equal(head, 0);

	if (!have_sqlite_shell())
		skip_because("the sqlite3 shell is not installed; cannot inspect the schema");
	int status = -1;
	char *out = sql(f->dir, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name;"
				" SELECT value FROM meta WHERE name='schema';"
				" PRAGMA journal_mode;", &status);
	assert_non_null(out);
	assert_int_equal(status, 0);
	assert_string_equal(out, "events\nmeta\nops\nstarts\n3\nwal\n");
	free(out);
}

static void appended_events_replay_byte_exact_in_commit_order(void **state)
{
	struct fx *f = *state;
	struct store_replay_stats s;
	struct rec r = { 0 };

	append_three(f->st);
	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_three(&r, 0);
	assert_i64_equal(s.head_ts, 3);
	assert_i64_equal(s.head_time_ns, 1700000000000000000LL + 3000);
	assert_int_equal(s.events, 3);
	assert_int_equal(s.ops, 5);
	rec_free(&r);
}

static void replay_after_a_commit_ts_delivers_only_later_events(void **state)
{
	struct fx *f = *state;
	struct store_replay_stats s;
	struct rec r = { 0 };

	append_three(f->st);
	assert_errno(replay(f->st, 1, &r, &s), 0);
	assert_three(&r, 1);
	assert_int_equal(s.events, 2);
	assert_int_equal(s.ops, 3);
	assert_i64_equal(s.head_ts, 3);
	rec_free(&r);

	assert_errno(replay(f->st, 2, &r, &s), 0);
	assert_three(&r, 2);
	assert_int_equal(s.events, 1);
	assert_int_equal(s.ops, 1);
	assert_i64_equal(s.head_ts, 3);
	rec_free(&r);

	assert_errno(replay(f->st, 3, &r, &s), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(s.events, 0);
	assert_int_equal(s.ops, 0);
	assert_i64_equal(s.head_ts, 3);
	assert_i64_equal(s.head_time_ns, 1700000000000000000LL + 3000);
	rec_free(&r);
}

/* store.h: head_ts is "newest commit_ts in the log (0 when empty)", whatever after_ts. */
static void replay_after_a_commit_ts_beyond_the_head_reports_the_real_head(void **state)
{
	struct fx *f = *state;
	struct store_replay_stats s;
	struct rec r = { 0 };

	append_three(f->st);
	assert_errno(replay(f->st, 10, &r, &s), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(s.events, 0);
	assert_i64_equal(s.head_ts, 3);
	assert_i64_equal(s.head_time_ns, 1700000000000000000LL + 3000);
}

static void an_event_without_operations_still_moves_the_head(void **state)
{
	struct fx *f = *state;
	struct store_event e1 = event(1, ev1_ops, 2), e2 = event(2, NULL, 0);
	struct store_replay_stats s;
	struct rec r = { 0 };
	int64_t head = 0;

	e2.note = "why\0not";
	e2.note_len = 7;
	assert_errno(store_append(f->st, &e1, 1), 0);
	assert_errno(store_append(f->st, &e2, 1), 0);
	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(s.events, 2);
	assert_int_equal(s.ops, 2);
	assert_i64_equal(s.head_ts, 2);
	assert_i64_equal(s.head_time_ns, 1700000000000000000LL + 2000);
	assert_errno(store_check(f->st, &head), 0);
	assert_i64_equal(head, 2);
	rec_free(&r);
}

static void a_non_zero_return_from_the_callback_stops_the_replay_and_is_returned(void **state)
{
	struct fx *f = *state;
	struct store_replay_stats s;
	struct rec r = { .stop_after = 2 };

	append_three(f->st);
	assert_errno(replay(f->st, 0, &r, &s), -ECANCELED);
	assert_int_equal(r.n, 2);
	assert_int_equal(s.ops, 2);
	assert_op(&r.ops[1], 1, "ns/agent/step/001", STORE_PUT, 1, "{\"step\":1}", 10);
	rec_free(&r);
}

static void a_large_binary_value_round_trips_byte_exact(void **state)
{
	struct fx *f = *state;
	size_t len = 1024 * 1024 + 3;
	unsigned char *v = malloc(len);
	struct store_op op = { .path = "ns/a/big", .path_len = 8, .kind = STORE_PUT,
			       .version = 1, .value = v, .value_len = len };
	struct store_event e = event(1, &op, 1);
	struct store_replay_stats s;
	struct rec r = { 0 };

	assert_non_null(v);
	for (size_t i = 0; i < len; i++)
		v[i] = (unsigned char)(i * 7 + i / 256);
	assert_errno(store_append(f->st, &e, 1), 0);
	reopen(f, 1);
	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_int_equal(r.n, 1);
	assert_op(&r.ops[0], 1, "ns/a/big", STORE_PUT, 1, v, len);
	rec_free(&r);
	free(v);
}

static void a_batch_that_fails_part_way_leaves_nothing_of_itself_in_the_log(void **state)
{
	struct fx *f = *state;
	static const struct store_op a[] = { PUT("ns/a/x", "1", 1, 1) };
	static const struct store_op b[] = { PUT("ns/a/y", "2", 1, 1) };
	static const struct store_op c[] = { PUT("ns/a/z", "3", 1, 1) };
	struct store_event first = event(1, a, 1);
	/* The third event repeats commit_ts 2: SQLite fails inside the batch, after the
	 * second event's rows were written. */
	struct store_event batch[] = { event(2, b, 1), event(3, c, 1), event(2, c, 1) };
	struct store_replay_stats s;
	struct rec r = { 0 };
	int64_t head = 0;
	int err;

	assert_errno(store_append(f->st, &first, 1), 0);
	err = store_append(f->st, batch, 3);
	assert_errno(err, -EIO);
	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(s.events, 1);
	assert_i64_equal(s.head_ts, 1);
	assert_errno(store_check(f->st, &head), 0);
	assert_i64_equal(head, 1);
	rec_free(&r);

	/* The writer connection is usable again, and the good part can be appended. */
	assert_errno(store_append(f->st, batch, 2), 0);
	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_int_equal(r.n, 3);
	assert_i64_equal(s.head_ts, 3);
	rec_free(&r);
}

#if STATEHOUSE_FAULT_INJECTION
static void an_injected_enospc_fails_a_whole_batch_and_replay_shows_none_of_it(void **state)
{
	struct fx *f = *state;
	static const struct store_op a[] = { PUT("ns/a/x", "1", 1, 1) };
	static const struct store_op b[] = { PUT("ns/a/y", "2", 1, 1), DEL("ns/a/x", 2) };
	static const struct store_op c[] = { PUT("ns/a/z", "3", 1, 1) };
	struct store_event first = event(1, a, 1);
	struct store_event batch[] = { event(2, b, 2), event(3, c, 1) };
	struct store_replay_stats s;
	struct rec r = { 0 };

	assert_errno(store_append(f->st, &first, 1), 0);
	store_set_fault(f->st, 0, -ENOSPC);
	assert_errno(store_append(f->st, batch, 2), -ENOSPC);
	assert_errno(store_append(f->st, batch, 2), -ENOSPC);
	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_int_equal(r.n, 1);
	assert_op(&r.ops[0], 1, "ns/a/x", STORE_PUT, 1, "1", 1);
	assert_int_equal(s.events, 1);
	assert_i64_equal(s.head_ts, 1);
	rec_free(&r);

	store_set_fault(f->st, 0, 0);
	assert_errno(store_append(f->st, batch, 2), 0);
	assert_errno(replay(f->st, 1, &r, &s), 0);
	assert_int_equal(r.n, 3);
	assert_op(&r.ops[0], 2, "ns/a/y", STORE_PUT, 1, "2", 1);
	assert_op(&r.ops[1], 2, "ns/a/x", STORE_DELETE, 2, NULL, 0);
	assert_op(&r.ops[2], 3, "ns/a/z", STORE_PUT, 1, "3", 1);
	assert_i64_equal(s.head_ts, 3);
	rec_free(&r);
}
#endif

#if STATEHOUSE_FAULT_INJECTION
static void a_fault_after_n_appends_lets_exactly_n_succeed_then_fails_with_eio(void **state)
{
	struct fx *f = *state;
	struct store_op op = PUT("ns/a/k", "v", 1, 1);
	struct store_replay_stats s;
	struct rec r = { 0 };
	int64_t head = -1;

	store_set_fault(f->st, 2, -EIO);
	assert_errno(store_check(f->st, &head), 0); /* checks do not count down */
	assert_i64_equal(head, 0);
	for (int64_t ts = 1; ts <= 2; ts++) {
		struct store_event e = event(ts, &op, 1);

		op.version = ts;
		assert_errno(store_append(f->st, &e, 1), 0);
	}
	struct store_event e3 = event(3, &op, 1);

	op.version = 3;
	assert_errno(store_append(f->st, &e3, 1), -EIO);
	assert_errno(store_append(f->st, &e3, 1), -EIO);
	/* Checks fail too once the fault fires. */
	assert_errno(store_check(f->st, &head), -EIO);
	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_int_equal(r.n, 2);
	assert_i64_equal(s.head_ts, 2);
	rec_free(&r);

	store_set_fault(f->st, 0, 0);
	assert_errno(store_check(f->st, &head), 0);
	assert_i64_equal(head, 2);
	assert_errno(store_append(f->st, &e3, 1), 0);
	assert_errno(store_check(f->st, &head), 0);
	assert_i64_equal(head, 3);
}
#endif

static void check_sees_every_append_through_the_reader_connection(void **state)
{
	struct fx *f = *state;
	int64_t head = -1;

	assert_errno(store_check(f->st, &head), 0);
	assert_i64_equal(head, 0);
	append_three(f->st);
	assert_errno(store_check(f->st, &head), 0);
	assert_i64_equal(head, 3);
}

#if STATEHOUSE_FAULT_INJECTION
/* store_check's contract is "-EIO when the store does not answer", whatever the fault. */
static void check_fails_with_eio_under_an_injected_enospc(void **state)
{
	struct fx *f = *state;
	int64_t head = -1;

	store_set_fault(f->st, 0, -ENOSPC);
	assert_errno(store_check(f->st, &head), -EIO);
	store_set_fault(f->st, 0, 0);
	assert_errno(store_check(f->st, &head), 0);
}
#endif

static void reopening_after_close_keeps_every_event(void **state)
{
	struct fx *f = *state;
	struct store_replay_stats s;
	struct rec r = { 0 };
	int64_t head = -1;

	append_three(f->st);
	reopen(f, 1);
	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_three(&r, 0);
	assert_i64_equal(s.head_ts, 3);
	assert_int_equal(s.events, 3);
	assert_errno(store_check(f->st, &head), 0);
	assert_i64_equal(head, 3);
	rec_free(&r);

	/* Appends continue after the head, and survive a second reopen. */
	struct store_op op = PUT("ns/agent/key", "back", 4, 4);
	struct store_event e = event(4, &op, 1);

	assert_errno(store_append(f->st, &e, 1), 0);
	reopen(f, 0);
	assert_errno(replay(f->st, 3, &r, &s), 0);
	assert_int_equal(r.n, 1);
	assert_op(&r.ops[0], 4, "ns/agent/key", STORE_PUT, 4, "back", 4);
	assert_i64_equal(s.head_ts, 4);
	rec_free(&r);
}

static void opening_a_store_with_another_schema_version_fails_with_eio(void **state)
{
	struct fx *f = *state;
	struct store_options opt = { .fsync = 1 };
	struct store *st = (struct store *)&opt; /* must be reset to NULL */
	int status = -1;
	char *out;

	if (!have_sqlite_shell())
		skip_because("the sqlite3 shell is not installed; cannot change the schema version");
	append_three(f->st);
	store_close(f->st);
	f->st = NULL;
	out = sql(f->dir, "UPDATE meta SET value = 5 WHERE name = 'schema';", &status);
	assert_non_null(out);
	assert_int_equal(status, 0);
	free(out);

	assert_errno(store_open(NULL, f->dir, &opt, &st), -EIO);
	assert_null(st);

	/* Nothing was rewritten: with the version restored, the log is intact. */
	out = sql(f->dir, "UPDATE meta SET value = 3 WHERE name = 'schema';", &status);
	assert_non_null(out);
	assert_int_equal(status, 0);
	free(out);
	reopen(f, 1);
	struct store_replay_stats s;
	struct rec r = { 0 };

	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_three(&r, 0);
	rec_free(&r);
}

static void opening_a_file_that_is_not_a_database_fails_with_eio(void **state)
{
	struct fx *f = *state;
	struct store_options opt = { .fsync = 1 };
	struct store *st = (struct store *)&opt;
	char junk[4096];
	char *path = NULL;
	int fd;

	store_close(f->st);
	f->st = NULL;
	/* A closed store keeps its write-ahead log unless it stopped cleanly: remove it
	 * too, or its frames would stand in for the junk's pages. */
	assert_true(asprintf(&path, "%s/statehouse.db-wal", f->dir) > 0);
	unlink(path);
	path[strlen(path) - 4] = '\0';
	unlink(path);
	memset(junk, 'x', sizeof(junk));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	free(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);

	assert_errno(store_open(NULL, f->dir, &opt, &st), -EIO);
	assert_null(st);
}

static void opening_a_missing_directory_fails_and_leaves_out_null(void **state)
{
	struct fx *f = *state;
	struct store_options opt = { .fsync = 1 };
	struct store *st = (struct store *)&opt;
	char *missing = NULL;
	int err;

	assert_true(asprintf(&missing, "%s/no/such/dir", f->dir) > 0);
	err = store_open(NULL, missing, &opt, &st);
	free(missing);
	assert_true(err < 0);
	assert_null(st);
}

/* ---- choosing the store by URI ------------------------------------------------------ */

static bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

static void a_store_uri_of_another_scheme_is_refused_and_creates_nothing(void **state)
{
	static const char *const refused[] = { "redis://127.0.0.1:6379/v", "etcdx:", "sqlit:",
					       "file:///tmp/x" };
	struct store_options opt = { .fsync = 0 };
	char *dir = tu_mkdtemp();

	(void)state;
	assert_non_null(dir);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		struct store *st = (struct store *)&opt;

		assert_errno(store_uri_check(refused[i]), -EPROTONOSUPPORT);
		assert_errno(store_open(refused[i], dir, &opt, &st), -EPROTONOSUPPORT);
		assert_null(st);
	}
	assert_true(dir_is_empty(dir));
	tu_rmtree(dir);
	free(dir);
}

static void a_sqlite_uri_with_a_location_is_refused_with_einval(void **state)
{
	struct store_options opt = { .fsync = 0 };
	struct store *st = (struct store *)&opt;
	char *dir = tu_mkdtemp();

	(void)state;
	assert_non_null(dir);
	assert_errno(store_uri_check("sqlite:/var/lib/elsewhere"), -EINVAL);
	assert_errno(store_open("sqlite:///x.db", dir, &opt, &st), -EINVAL);
	assert_null(st);
	assert_true(dir_is_empty(dir));
	tu_rmtree(dir);
	free(dir);
}

static void every_spelling_of_the_sqlite_uri_opens_the_same_log(void **state)
{
	static const char *const same[] = { NULL, "", "sqlite", "sqlite:", "sqlite://",
					    "SQLite:" };
	struct fx *f = *state;
	struct store_options opt = { .fsync = 0 };

	append_three(f->st);
	store_close(f->st);
	f->st = NULL;
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		struct store *st = NULL;
		int64_t head = -1;

		assert_errno(store_uri_check(same[i]), 0);
		assert_errno(store_open(same[i], f->dir, &opt, &st), 0);
		assert_errno(store_check(st, &head), 0);
		assert_i64_equal(head, 3);
		store_close(st);
	}
}

/* ---- owner records (op 3) ------------------------------------------------------------ */

#define ATTR(p, v) { .path = (p), .path_len = sizeof(p) - 1, .kind = STORE_ATTR, \
		     .value = (v), .value_len = sizeof(v) - 1 }

static const char owner_ns[] = "{\"uid\":1000,\"gid\":100,\"mode\":\"0750\"}";
static const char owner_agent[] = "{\"uid\":2000,\"gid\":200,\"mode\":\"1777\"}";

/* Names or live keys as one string: "a b c". */
static int join_fn(void *arg, const struct store_version *v)
{
	char **s = arg;
	char *n = NULL;

	if (asprintf(&n, "%s%s%.*s", *s ? *s : "", *s ? " " : "", (int)v->path_len,
		     v->path) < 0)
		return -ENOMEM;
	free(*s);
	*s = n;
	return 0;
}

static char *names(struct store *st, const char *prefix)
{
	char *s = NULL;

	assert_errno(store_names(st, prefix, strlen(prefix), join_fn, &s), 0);
	return s ? s : strdup("");
}

static char *live_keys(struct store *st, const char *prefix, int64_t ts)
{
	char *s = NULL;

	assert_errno(store_list_at(st, prefix, strlen(prefix), ts, join_fn, &s), 0);
	return s ? s : strdup("");
}

#define assert_text(expr, expected)                                                    \
	do {                                                                           \
		char *t__ = (expr);                                                    \
		assert_non_null(t__);                                                  \
		if (strcmp(t__, (expected)) != 0) {                                    \
			print_error("%s is \"%s\", expected \"%s\"\n", #expr, t__,     \
				    (expected));                                       \
			free(t__);                                                     \
			_fail(__FILE__, __LINE__);                                     \
		}                                                                      \
		free(t__);                                                             \
	} while (0)

/* Events as text, one line each: "ts: kind path=value; ...", '-' for a NULL value. */
static int events_fn(void *arg, const struct store_event *ev)
{
	char **s = arg;
	char *line = NULL, *n;

	if (asprintf(&line, "%lld:", (long long)ev->commit_ts) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < ev->n_ops; i++) {
		const struct store_op *op = &ev->ops[i];
		const char *kind = op->kind == STORE_PUT      ? "put"
				   : op->kind == STORE_DELETE ? "del"
				   : op->kind == STORE_ATTR   ? "attr"
				   : op->kind == STORE_MKDIR  ? "mkdir"
				   : op->kind == STORE_RMDIR  ? "rmdir"
							      : "?";

		if (asprintf(&n, "%s %s %.*s=%.*s;", line, kind, (int)op->path_len, op->path,
			     op->value ? (int)op->value_len : 1,
			     op->value ? (const char *)op->value : "-") < 0) {
			free(line);
			return -ENOMEM;
		}
		free(line);
		line = n;
	}
	if (asprintf(&n, "%s%s\n", *s ? *s : "", line) < 0) {
		free(line);
		return -ENOMEM;
	}
	free(line);
	free(*s);
	*s = n;
	return 0;
}

static char *events(struct store *st, int64_t from, int64_t to, const char *filter)
{
	char *s = NULL;

	assert_errno(store_events(st, from, to, filter, filter ? strlen(filter) : 0, events_fn,
				  &s), 0);
	return s ? s : strdup("");
}

static void an_owner_record_replays_with_its_namespace_or_agent_path_and_value(void **state)
{
	struct fx *f = *state;
	static const struct store_op ops[] = {
		ATTR("ns", owner_ns),
		PUT("ns/agent/key", "v", 1, 1),
		ATTR("ns/agent", owner_agent),
	};
	static const struct store_op clear[] = { ATTR("ns/agent", "") };
	struct store_event evs[] = { event(1, ops, 3), event(2, clear, 1) };
	struct store_replay_stats s;
	struct rec r = { 0 };

	assert_errno(store_append(f->st, evs, 2), 0);
	for (int pass = 0; pass < 2; pass++) {
		assert_errno(replay(f->st, 0, &r, &s), 0);
		assert_int_equal(r.n, 4);
		assert_op(&r.ops[0], 1, "ns", STORE_ATTR, 0, owner_ns, sizeof(owner_ns) - 1);
		assert_op(&r.ops[1], 1, "ns/agent/key", STORE_PUT, 1, "v", 1);
		assert_op(&r.ops[2], 1, "ns/agent", STORE_ATTR, 0, owner_agent,
			  sizeof(owner_agent) - 1);
		/* An empty value clears the record: it comes back empty, not absent. */
		assert_op(&r.ops[3], 2, "ns/agent", STORE_ATTR, 0, NULL, 0);
		assert_int_equal(s.ops, 4);
		assert_i64_equal(s.head_ts, 2);
		rec_free(&r);
		reopen(f, 1);
	}
}

static void owner_records_are_neither_names_nor_live_keys(void **state)
{
	struct fx *f = *state;
	/* "bare" and "ns/owned" have owner records and never held a key. */
	static const struct store_op ops[] = {
		ATTR("bare", owner_ns),
		ATTR("ns", owner_ns),
		ATTR("ns/owned", owner_agent),
		ATTR("ns/a", owner_agent),
		PUT("ns/a/k", "v", 1, 1),
	};
	struct store_event e = event(1, ops, 5);

	assert_errno(store_append(f->st, &e, 1), 0);
	assert_text(names(f->st, ""), "ns");
	assert_text(names(f->st, "ns"), "a");
	assert_text(names(f->st, "ns/a"), "k");
	assert_text(names(f->st, "ns/owned"), "");
	assert_text(names(f->st, "bare"), "");
	assert_text(live_keys(f->st, "", 1), "ns/a/k");
	assert_text(live_keys(f->st, "ns", 1), "ns/a/k");
	assert_text(live_keys(f->st, "ns/owned", 1), "");
	assert_text(live_keys(f->st, "bare", 1), "");
}

static void events_of_an_agent_include_its_owner_records_and_not_its_namespaces(void **state)
{
	struct fx *f = *state;
	static const struct store_op e1[] = { PUT("ns/a/k", "1", 1, 1) };
	static const struct store_op e2[] = { ATTR("ns/a", owner_agent) };
	static const struct store_op e3[] = { ATTR("ns", owner_ns) };
	static const struct store_op e4[] = { ATTR("ns/b", owner_agent) };
	static const struct store_op e5[] = { PUT("ns/b/x", "2", 1, 1), ATTR("ns/a", "") };
	struct store_event evs[] = { event(1, e1, 1), event(2, e2, 1), event(3, e3, 1),
				     event(4, e4, 1), event(5, e5, 2) };

	assert_errno(store_append(f->st, evs, 5), 0);
	assert_text(events(f->st, 1, 5, "ns/a"),
		    "1: put ns/a/k=1;\n"
		    "2: attr ns/a={\"uid\":2000,\"gid\":200,\"mode\":\"1777\"};\n"
		    "5: attr ns/a=;\n");
	assert_text(events(f->st, 3, 5, "ns/b"),
		    "4: attr ns/b={\"uid\":2000,\"gid\":200,\"mode\":\"1777\"};\n"
		    "5: put ns/b/x=2;\n");
	assert_text(events(f->st, 2, 5, NULL),
		    "2: attr ns/a={\"uid\":2000,\"gid\":200,\"mode\":\"1777\"};\n"
		    "3: attr ns={\"uid\":1000,\"gid\":100,\"mode\":\"0750\"};\n"
		    "4: attr ns/b={\"uid\":2000,\"gid\":200,\"mode\":\"1777\"};\n"
		    "5: put ns/b/x=2; attr ns/a=;\n");
}

/* The ops table as schema 1 had it: no room for op 3. */
static const char schema_1_sql[] =
	"BEGIN;"
	" CREATE TABLE ops1(commit_ts INTEGER NOT NULL, idx INTEGER NOT NULL,"
	"  ns TEXT NOT NULL, agent TEXT NOT NULL, key TEXT NOT NULL,"
	"  op INTEGER NOT NULL CHECK (op IN (1, 2)), version INTEGER NOT NULL, value BLOB,"
	"  PRIMARY KEY (commit_ts, idx)) WITHOUT ROWID;"
	" INSERT INTO ops1 SELECT * FROM ops;"
	" DROP TABLE ops;"
	" ALTER TABLE ops1 RENAME TO ops;"
	" CREATE INDEX ops_by_key_ts ON ops(ns, agent, key, commit_ts, version);"
	" CREATE INDEX ops_by_agent_ts ON ops(ns, agent, commit_ts);"
	" UPDATE meta SET value = 1 WHERE name = 'schema';"
	" COMMIT;";

static void a_schema_1_store_is_upgraded_on_open_and_keeps_its_log(void **state)
{
	struct fx *f = *state;
	static const struct store_op attr[] = { ATTR("ns/agent", owner_agent) };
	struct store_event e4 = event(4, attr, 1);
	struct store_replay_stats s;
	struct rec r = { 0 };
	int status = -1;
	char *out;

	if (!have_sqlite_shell())
		skip_because("the sqlite3 shell is not installed; cannot make a schema 1 store");
	append_three(f->st);
	store_close(f->st);
	f->st = NULL;
	out = sql(f->dir, schema_1_sql, &status);
	assert_non_null(out);
	assert_int_equal(status, 0);
	free(out);
	/* It is a schema 1 store: op 3 is refused. */
	out = sql(f->dir, "INSERT INTO ops VALUES (9, 0, 'ns', '', '', 3, 0, '');", &status);
	assert_non_null(out);
	assert_int_not_equal(status, 0);
	assert_non_null(strstr(out, "CHECK constraint failed"));
	free(out);

	reopen(f, 1);
	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_three(&r, 0);
	assert_i64_equal(s.head_ts, 3);
	rec_free(&r);
	out = sql(f->dir, "SELECT value FROM meta WHERE name = 'schema';"
			  " SELECT name FROM sqlite_master WHERE tbl_name = 'ops'"
			  " AND name NOT LIKE 'sqlite_%' ORDER BY name;", &status);
	assert_non_null(out);
	assert_int_equal(status, 0);
	assert_string_equal(out, "3\nops\nops_by_agent_ts\nops_by_key_ts\n");
	free(out);

	assert_errno(store_append(f->st, &e4, 1), 0);
	/* A second open finds schema 3 and leaves it alone. */
	reopen(f, 1);
	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_int_equal(r.n, 6);
	assert_op(&r.ops[5], 4, "ns/agent", STORE_ATTR, 0, owner_agent,
		  sizeof(owner_agent) - 1);
	r.n = 5;
	assert_three(&r, 0);
	r.n = 6;
	rec_free(&r);
	assert_text(names(f->st, "ns"), "agent");
}

/* ---- directories (ops 4 and 5, schema 3) ---------------------------------------------- */

#define MKDIR(p) { .path = (p), .path_len = sizeof(p) - 1, .kind = STORE_MKDIR }
#define RMDIR(p) { .path = (p), .path_len = sizeof(p) - 1, .kind = STORE_RMDIR }

static int count_fn(void *arg, const struct store_version *v)
{
	(void)v;
	++*(int *)arg;
	return 0;
}

static void directory_rows_replay_and_list_as_of_their_commit_but_are_no_key(void **state)
{
	struct fx *f = *state;
	static const struct store_op e1[] = { MKDIR("ns/a/d"), MKDIR("ns/a/d/e"),
					      PUT("ns/a/k", "v", 1, 1) };
	static const struct store_op e2[] = { RMDIR("ns/a/d/e") };
	struct store_event evs[] = { event(1, e1, 3), event(2, e2, 1) };
	struct store_version v;
	struct store_replay_stats s;
	struct rec r = { 0 };
	int rows = 0;

	assert_errno(store_append(f->st, evs, 2), 0);
	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_int_equal(r.n, 4);
	assert_op(&r.ops[0], 1, "ns/a/d", STORE_MKDIR, 0, NULL, 0);
	assert_op(&r.ops[1], 1, "ns/a/d/e", STORE_MKDIR, 0, NULL, 0);
	assert_op(&r.ops[3], 2, "ns/a/d/e", STORE_RMDIR, 0, NULL, 0);
	rec_free(&r);
	/* .at: a directory is listed while its last op is a mkdir. */
	assert_text(live_keys(f->st, "ns/a", 1), "ns/a/d ns/a/d/e ns/a/k");
	assert_text(live_keys(f->st, "ns/a", 2), "ns/a/d ns/a/k");
	assert_errno(store_get_at(f->st, "ns/a/d/e", 8, 1, 0, &v), 0);
	assert_int_equal(v.kind, STORE_MKDIR);
	store_version_release(&v);
	assert_errno(store_get_at(f->st, "ns/a/d/e", 8, 2, 0, &v), 0);
	assert_int_equal(v.kind, STORE_RMDIR);
	store_version_release(&v);
	/* Neither a key's history nor a name. */
	assert_errno(store_history(f->st, "ns/a/d", 6, count_fn, &rows), 0);
	assert_int_equal(rows, 0);
	assert_text(names(f->st, "ns/a"), "k");
	assert_text(events(f->st, 2, 2, "ns/a"), "2: rmdir ns/a/d/e=-;\n");
}

/* The ops table as schema 2 had it: owner records, no directories. */
static const char schema_2_sql[] =
	"BEGIN;"
	" CREATE TABLE ops1(commit_ts INTEGER NOT NULL, idx INTEGER NOT NULL,"
	"  ns TEXT NOT NULL, agent TEXT NOT NULL, key TEXT NOT NULL,"
	"  op INTEGER NOT NULL CHECK (op IN (1, 2, 3)), version INTEGER NOT NULL, value BLOB,"
	"  PRIMARY KEY (commit_ts, idx)) WITHOUT ROWID;"
	" INSERT INTO ops1 SELECT * FROM ops;"
	" DROP TABLE ops;"
	" ALTER TABLE ops1 RENAME TO ops;"
	" CREATE INDEX ops_by_key_ts ON ops(ns, agent, key, commit_ts, version);"
	" CREATE INDEX ops_by_agent_ts ON ops(ns, agent, commit_ts);"
	" UPDATE meta SET value = 2 WHERE name = 'schema';"
	" COMMIT;";

static void a_schema_2_store_is_upgraded_on_open_and_then_takes_directories(void **state)
{
	struct fx *f = *state;
	static const struct store_op dir[] = { MKDIR("ns/agent/d") };
	struct store_event e4 = event(4, dir, 1);
	struct store_replay_stats s;
	struct rec r = { 0 };
	int status = -1;
	char *out;

	if (!have_sqlite_shell())
		skip_because("the sqlite3 shell is not installed; cannot make a schema 2 store");
	append_three(f->st);
	store_close(f->st);
	f->st = NULL;
	out = sql(f->dir, schema_2_sql, &status);
	assert_non_null(out);
	assert_int_equal(status, 0);
	free(out);
	/* It is a schema 2 store: op 4 is refused. */
	out = sql(f->dir, "INSERT INTO ops VALUES (9, 0, 'ns', 'a', 'd', 4, 0, NULL);", &status);
	assert_non_null(out);
	assert_int_not_equal(status, 0);
	assert_non_null(strstr(out, "CHECK constraint failed"));
	free(out);

	reopen(f, 1);
	out = sql(f->dir, "SELECT value FROM meta WHERE name = 'schema';", &status);
	assert_non_null(out);
	assert_string_equal(out, "3\n");
	free(out);
	assert_errno(store_append(f->st, &e4, 1), 0);
	reopen(f, 1);
	assert_errno(replay(f->st, 0, &r, &s), 0);
	assert_int_equal(r.n, 6);
	assert_op(&r.ops[5], 4, "ns/agent/d", STORE_MKDIR, 0, NULL, 0);
	r.n = 5;
	assert_three(&r, 0);
	r.n = 6;
	rec_free(&r);
}

/* Snapshot entries: a key, an explicit directory, a directory's time. */
struct snap_fx {
	struct store_snap_entry e[3];
	size_t n, next;
	int dirs[3];
	int64_t times[3];
};

static int snap_fx_next(void *arg, struct store_snap_entry *e)
{
	struct snap_fx *x = arg;

	if (x->next == x->n)
		return 0;
	*e = x->e[x->next++];
	return 1;
}

static int snap_fx_load(void *arg, const struct store_snap_entry *e)
{
	struct snap_fx *x = arg;

	x->dirs[x->next] = e->dir;
	x->times[x->next++] = e->time_ns;
	return 0;
}

static void a_snapshot_keeps_directories_and_a_version_01_snapshot_still_loads(void **state)
{
	struct fx *f = *state;
	struct snap_fx x = {
		.e = { { .path = "ns/a/k", .path_len = 6, .version = 1, .commit_ts = 1,
			 .time_ns = 10, .value = "v", .value_len = 1 },
		       { .path = "ns/a/d", .path_len = 6, .time_ns = 20, .dir = STORE_SNAP_DIR },
		       { .path = "ns/a", .path_len = 4, .time_ns = 30,
			 .dir = STORE_SNAP_DIR_TIME } },
		.n = 3,
	};
	char path[4096];
	int64_t ts;
	uint64_t n;
	FILE *fp;

	assert_errno(store_snapshot_write(f->dir, 1, 1, snap_fx_next, &x, 1), 0);
	x.next = 0;
	assert_errno(store_snapshot_load(f->dir, 1, snap_fx_load, &x, &ts, &n), 0);
	assert_i64_equal(ts, 1);
	assert_int_equal(n, 1); /* the entries that are not directories */
	assert_int_equal(x.dirs[0], 0);
	assert_int_equal(x.dirs[1], STORE_SNAP_DIR);
	assert_int_equal(x.dirs[2], STORE_SNAP_DIR_TIME);
	assert_i64_equal(x.times[2], 30);

	/* The same file under the magic of version 01 (outside the checksum) loads: the
	 * layout did not change, only the flags an entry may have. */
	snprintf(path, sizeof(path), "%s/snapshots/snap-%020d.bin", f->dir, 1);
	fp = fopen(path, "r+b");
	assert_non_null(fp);
	assert_int_equal(fwrite("SHSNAP01", 1, 8, fp), 8);
	assert_int_equal(fclose(fp), 0);
	x.next = 0;
	assert_errno(store_snapshot_load(f->dir, 1, snap_fx_load, &x, &ts, &n), 0);
	assert_i64_equal(ts, 1);
	assert_int_equal(x.dirs[1], STORE_SNAP_DIR);
}

static void close_of_null_is_a_no_op_and_the_sqlite_version_is_3(void **state)
{
	(void)state;
	store_close(NULL);
	assert_non_null(store_sqlite_version());
	assert_memory_equal(store_sqlite_version(), "3.", 2);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(opening_an_empty_directory_creates_the_database_and_its_schema),
		T(appended_events_replay_byte_exact_in_commit_order),
		T(replay_after_a_commit_ts_delivers_only_later_events),
		T(replay_after_a_commit_ts_beyond_the_head_reports_the_real_head),
		T(an_event_without_operations_still_moves_the_head),
		T(a_non_zero_return_from_the_callback_stops_the_replay_and_is_returned),
		T(a_large_binary_value_round_trips_byte_exact),
		T(a_batch_that_fails_part_way_leaves_nothing_of_itself_in_the_log),
#if STATEHOUSE_FAULT_INJECTION
		T(an_injected_enospc_fails_a_whole_batch_and_replay_shows_none_of_it),
#endif
#if STATEHOUSE_FAULT_INJECTION
		T(a_fault_after_n_appends_lets_exactly_n_succeed_then_fails_with_eio),
#endif
		T(check_sees_every_append_through_the_reader_connection),
#if STATEHOUSE_FAULT_INJECTION
		T(check_fails_with_eio_under_an_injected_enospc),
#endif
		T(reopening_after_close_keeps_every_event),
		T(opening_a_store_with_another_schema_version_fails_with_eio),
		T(opening_a_file_that_is_not_a_database_fails_with_eio),
		T(opening_a_missing_directory_fails_and_leaves_out_null),
		T(an_owner_record_replays_with_its_namespace_or_agent_path_and_value),
		T(owner_records_are_neither_names_nor_live_keys),
		T(events_of_an_agent_include_its_owner_records_and_not_its_namespaces),
		T(a_schema_1_store_is_upgraded_on_open_and_keeps_its_log),
		T(directory_rows_replay_and_list_as_of_their_commit_but_are_no_key),
		T(a_schema_2_store_is_upgraded_on_open_and_then_takes_directories),
		T(a_snapshot_keeps_directories_and_a_version_01_snapshot_still_loads),
		T(close_of_null_is_a_no_op_and_the_sqlite_version_is_3),
		T(a_store_uri_of_another_scheme_is_refused_and_creates_nothing),
		T(a_sqlite_uri_with_a_location_is_refused_with_einval),
		T(every_spelling_of_the_sqlite_uri_opens_the_same_log),
	};
#undef T
	/* Expected failures (injected faults, a damaged file) log at error level. */
	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
