/* SPDX-License-Identifier: MIT */
/*
 * test_store_prune.c - cmocka unit tests of retention in the store layer: pruning the
 * log by keep_versions and keep_ns (store_prune_step()), what a replay of a pruned log
 * rebuilds, the horizon, vacuum steps and statehoused --vacuum (store_vacuum()).
 *
 * A pruned log must replay to exactly the state of the whole log.  The tests check that
 * with a model of the replay (model_apply(), the rules of txn/recover.c's replay_one):
 * the state of every path and the time of every directory's entries, rebuilt from the
 * log before and after a prune, must be the same.  The SQLite shell, when installed,
 * only looks at the database from outside.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "log.h"
#include "store.h"

#define DAY_NS (86400LL * 1000000000LL)

struct fx {
	char *dir;
	struct store *st;
	struct store_pruner *p;
	int64_t head;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store_options opt = { .fsync = 0 };

	if (!f)
		return -1;
	f->dir = tu_mkdtemp();
	if (!f->dir || store_open(NULL, f->dir, &opt, &f->st) != 0 ||
	    store_pruner_open(f->st, f->dir, &f->p) != 0) {
		store_close(f->st);
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

	store_pruner_close(f->p);
	store_close(f->st);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void reopen(struct fx *f)
{
	struct store_options opt = { .fsync = 0 };

	store_pruner_close(f->p);
	store_close(f->st);
	f->p = NULL;
	f->st = NULL;
	assert_errno(store_open(NULL, f->dir, &opt, &f->st), 0);
	assert_errno(store_pruner_open(f->st, f->dir, &f->p), 0);
}

static bool have_sqlite_shell(void)
{
	int status = -1;
	char *out = tu_run("command -v sqlite3 2>/dev/null", &status);
	bool ok = out && status == 0 && out[0] == '/';

	free(out);
	return ok;
}

static char *sql(const char *dir, const char *query)
{
	char *cmd = NULL, *out;
	int status = -1;

	if (asprintf(&cmd, "sqlite3 '%s/statehouse.db' \"%s\" 2>&1", dir, query) < 0)
		return NULL;
	out = tu_run(cmd, &status);
	free(cmd);
	assert_int_equal(status, 0);
	return out;
}

static uint64_t db_bytes(const struct fx *f)
{
	char path[4096];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/statehouse.db", f->dir);
	return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* ---- writing a log ------------------------------------------------------------------- */

/* One commit of one operation at time_ns (0: one second per commit from day 0). */
static int64_t commit1(struct fx *f, const char *path, enum store_op_kind kind,
		       int64_t version, const char *value, int64_t time_ns)
{
	struct store_op op = { path, strlen(path), kind, version, value,
			       value ? strlen(value) : 0 };
	struct store_event ev = { .commit_ts = f->head + 1, .txn = "t", .ops = &op,
				  .n_ops = 1 };

	ev.time_ns = time_ns ? time_ns : ev.commit_ts * 1000000000LL;
	assert_errno(store_append(f->st, &ev, 1), 0);
	return ++f->head;
}

/* A commit without operations (an empty transaction). */
static int64_t commit0(struct fx *f)
{
	struct store_event ev = { .commit_ts = f->head + 1, .txn = "empty",
				  .time_ns = (f->head + 1) * 1000000000LL };

	assert_errno(store_append(f->st, &ev, 1), 0);
	return ++f->head;
}

/* ---- a model of the replay ------------------------------------------------------------ */

struct mpath {
	char path[128];
	int64_t version, commit_ts, time_ns;
	bool live, dir;
	char value[64];
	int64_t entries_ns; /* of this path as a directory */
};

struct model {
	struct mpath p[64];
	size_t n;
};

static struct mpath *model_at(struct model *m, const char *path, size_t len)
{
	for (size_t i = 0; i < m->n; i++)
		if (strlen(m->p[i].path) == len && !memcmp(m->p[i].path, path, len))
			return &m->p[i];
	assert_true(m->n < 64 && len < sizeof(m->p[0].path));
	memset(&m->p[m->n], 0, sizeof(m->p[0]));
	memcpy(m->p[m->n].path, path, len);
	return &m->p[m->n++];
}

static void touch_parent(struct model *m, const char *path, size_t len, int64_t t)
{
	const char *slash = len ? memrchr(path, '/', len) : NULL;
	struct mpath *d = model_at(m, path, slash ? (size_t)(slash - path) : 0);

	if (t > d->entries_ns)
		d->entries_ns = t;
}

/* The replay's rules (txn/recover.c: replay_one() and replay_pruned()). */
static int model_apply(void *arg, const struct store_replay_op *op)
{
	struct model *m = arg;
	struct mpath *x = model_at(m, op->path, op->path_len);
	bool was = x->version && x->live;

	switch (op->kind) {
	case STORE_PRUNED:
		if (op->version > 0 && op->version > x->version) {
			x->version = op->version;
			x->commit_ts = op->commit_ts;
			x->time_ns = op->time_ns;
			x->live = op->live;
			strcpy(x->value, op->live ? "<pruned>" : "");
		}
		x->dir = op->dir;
		if (op->entries_ns)
			touch_parent(m, op->path, op->path_len, op->entries_ns);
		break;
	case STORE_PUT:
	case STORE_DELETE:
		assert_true(op->version > x->version);
		x->version = op->version;
		x->commit_ts = op->commit_ts;
		x->time_ns = op->time_ns;
		x->live = op->kind == STORE_PUT;
		snprintf(x->value, sizeof(x->value), "%.*s", (int)op->value_len,
			 op->kind == STORE_PUT ? (const char *)op->value : "");
		if (was != x->live)
			touch_parent(m, op->path, op->path_len, op->time_ns);
		break;
	case STORE_MKDIR:
	case STORE_RMDIR:
		x->dir = op->kind == STORE_MKDIR;
		touch_parent(m, op->path, op->path_len, op->time_ns);
		break;
	case STORE_ATTR:
		snprintf(x->value, sizeof(x->value), "attr:%.*s", (int)op->value_len,
			 (const char *)op->value);
		break;
	}
	return 0;
}

static int cmp_mpath(const void *a, const void *b)
{
	return strcmp(((const struct mpath *)a)->path, ((const struct mpath *)b)->path);
}

/* Every path's state after a replay after after_ts onto base (NULL: nothing), as text. */
static char *state_of(struct fx *f, int64_t after_ts, const struct model *base)
{
	struct model m = { .n = 0 };
	struct store_replay_stats s;
	char *out = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&out, &len);

	if (base)
		m = *base;
	assert_errno(store_replay(f->st, after_ts, model_apply, &m, &s), 0);
	qsort(m.p, m.n, sizeof(m.p[0]), cmp_mpath);
	for (size_t i = 0; i < m.n; i++)
		fprintf(mem, "%s v%" PRId64 "@%" PRId64 " %s '%s'%s entries@%" PRId64 "\n",
			m.p[i].path, m.p[i].version, m.p[i].commit_ts,
			m.p[i].live ? "live" : "-", m.p[i].value, m.p[i].dir ? " dir" : "",
			m.p[i].entries_ns);
	fclose(mem);
	return out;
}

static void model_of(struct fx *f, int64_t after_ts, struct model *m)
{
	struct store_replay_stats s;

	memset(m, 0, sizeof(*m));
	assert_errno(store_replay(f->st, after_ts, model_apply, m, &s), 0);
}

/* Prune until no work is left; the totals. */
static struct store_prune_result prune_all(struct fx *f, const struct store_retention *r,
					   int64_t now_ns)
{
	struct store_prune_result res, all = { 0 };
	int steps = 0;

	do {
		assert_errno(store_prune_step(f->p, r, now_ns, STORE_PRUNE_OPS_MAX, &res), 0);
		all.ops += res.ops;
		all.events += res.events;
		all.horizon = res.horizon;
		assert_true(++steps < 10000);
	} while (res.more);
	return all;
}

/* The value of path as of ts, or "ENOENT" (store_get_at). */
static char *value_at(struct fx *f, const char *path, int64_t ts)
{
	struct store_version v;
	int err = store_get_at(f->st, path, strlen(path), ts, 1, &v);
	char *s = NULL;

	if (err == -ENOENT)
		return strdup("ENOENT");
	assert_errno(err, 0);
	assert_true(asprintf(&s, "%s v%" PRId64 " %.*s", v.kind == STORE_PUT ? "put" : "other",
			     v.version, (int)v.size, v.value ? (const char *)v.value : "") > 0);
	store_version_release(&v);
	return s;
}

/* Three keys with histories, an explicit directory made and removed, a key deleted and
 * made again, and an owner record: commits 1..19. */
static void write_histories(struct fx *f)
{
	commit1(f, "ns/a/k", STORE_PUT, 1, "k1", 0);
	commit1(f, "ns/a/k", STORE_PUT, 2, "k2", 0);
	commit1(f, "ns/a/gone", STORE_PUT, 1, "g1", 0);
	commit1(f, "ns/a/k", STORE_PUT, 3, "k3", 0);
	commit1(f, "ns/a/gone", STORE_DELETE, 2, NULL, 0);
	commit1(f, "ns/a/d", STORE_MKDIR, 0, NULL, 0);
	commit1(f, "ns/a/back", STORE_PUT, 1, "b1", 0);
	commit1(f, "ns/a/back", STORE_DELETE, 2, NULL, 0);
	commit1(f, "ns/a/back", STORE_PUT, 3, "b3", 0);
	commit1(f, "ns/a", STORE_ATTR, 0, "{\"uid\":1,\"gid\":1,\"mode\":\"0750\"}", 0);
	commit1(f, "ns/a/d", STORE_RMDIR, 0, NULL, 0);
	commit1(f, "ns/a/back", STORE_PUT, 4, "b4", 0);
	commit1(f, "ns/a/k", STORE_PUT, 4, "k4", 0);
	commit1(f, "ns/a/d", STORE_MKDIR, 0, NULL, 0);
	commit1(f, "ns/a/d/x", STORE_PUT, 1, "x1", 0);
	commit1(f, "ns/a/d/x", STORE_PUT, 2, "x2", 0);
	commit1(f, "ns/a/back", STORE_PUT, 5, "b5", 0);
	commit1(f, "ns/a/k", STORE_PUT, 5, "k5", 0);
	commit1(f, "ns/a/d/x", STORE_PUT, 3, "x3", 0);
}

/* ---- the tests ------------------------------------------------------------------------ */

static void keep_versions_leaves_the_newest_n_of_each_path_and_the_same_state(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 2 };
	char *before, *after, *hist;
	struct store_prune_result res;

	write_histories(f);
	before = state_of(f, 0, NULL);
	assert_i64_equal(store_horizon(f->st), 0);
	res = prune_all(f, &r, 0);
	after = state_of(f, 0, NULL);
	assert_string_equal(after, before);
	/* k: 5 versions, 3 go; back: 5, 3 go; d: 3 ops, 1 goes; gone and x: 2 and 3. */
	assert_i64_equal(res.ops, 3 + 3 + 1 + 0 + 1);
	/* The newest commit whose state is whole: back's v4 (12), k's v4 (13), d's (14),
	 * x's v2 (16): 16. */
	assert_i64_equal(res.horizon, 16);
	assert_i64_equal(store_horizon(f->st), 16);

	/* What stays survives a reopen, and replays the same again. */
	reopen(f);
	assert_i64_equal(store_horizon(f->st), 16);
	hist = state_of(f, 0, NULL);
	assert_string_equal(hist, before);
	free(before);
	free(after);
	free(hist);
}

struct vers {
	char buf[256];
};

static int vers_one(void *arg, const struct store_version *v)
{
	struct vers *s = arg;
	size_t l = strlen(s->buf);

	snprintf(s->buf + l, sizeof(s->buf) - l, "%s%" PRId64 "%s", l ? " " : "", v->version,
		 v->kind == STORE_DELETE ? "d" : "");
	return 0;
}

static char *history(struct fx *f, const char *path)
{
	struct vers s = { "" };
	int err = store_history(f->st, path, strlen(path), vers_one, &s);

	if (err == 0 && !s.buf[0])
		return strdup("none");
	assert_errno(err, 0);
	return strdup(s.buf);
}

static void the_newest_operation_stays_so_a_deleted_key_keeps_its_delete(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 1 };
	char *h;

	write_histories(f);
	commit1(f, "ns/a/k", STORE_DELETE, 6, NULL, 0);
	prune_all(f, &r, 0);
	h = history(f, "ns/a/k");
	assert_string_equal(h, "6d"); /* versions are never reused: the next is 7 */
	free(h);
	h = history(f, "ns/a/gone");
	assert_string_equal(h, "2d");
	free(h);
	h = history(f, "ns/a/back");
	assert_string_equal(h, "5");
	free(h);
	/* A pruned version is gone from the history and by number. */
	{
		struct store_version v;

		assert_errno(store_get_version(f->st, "ns/a/back", 9, 4, &v), -ENOENT);
		assert_errno(store_get_version(f->st, "ns/a/back", 9, 5, &v), 0);
		store_version_release(&v);
	}
}

static void a_key_that_became_a_directory_keeps_its_version_in_the_pruned_record(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 1 };
	struct model m;
	char *before, *after, *h;

	commit1(f, "ns/a/p", STORE_PUT, 1, "p1", 0);
	commit1(f, "ns/a/p", STORE_PUT, 2, "p2", 0);
	commit1(f, "ns/a/p", STORE_DELETE, 3, NULL, 0);
	commit1(f, "ns/a/p", STORE_MKDIR, 0, NULL, 0);
	before = state_of(f, 0, NULL);
	prune_all(f, &r, 0);
	after = state_of(f, 0, NULL);
	assert_string_equal(after, before);
	model_of(f, 0, &m);
	for (size_t i = 0; i < m.n; i++)
		if (!strcmp(m.p[i].path, "ns/a/p"))
			assert_i64_equal(m.p[i].version, 3); /* the next put is version 4 */
	/* The key's versions are all gone, its history with them. */
	h = history(f, "ns/a/p");
	assert_string_equal(h, "none");
	free(h);
	free(before);
	free(after);
}

static void the_past_below_the_horizon_answers_enoent_and_from_it_on_is_unchanged(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 2 };
	static const char *const paths[] = { "ns/a/k", "ns/a/gone", "ns/a/back", "ns/a/d",
					     "ns/a/d/x" };
	char *was[20][5];
	int64_t h;

	write_histories(f);
	for (int64_t ts = 1; ts <= f->head; ts++)
		for (int i = 0; i < 5; i++)
			was[ts][i] = value_at(f, paths[i], ts);
	h = prune_all(f, &r, 0).horizon;
	assert_true(h > 1 && h <= f->head);
	for (int64_t ts = 1; ts <= f->head; ts++) {
		for (int i = 0; i < 5; i++) {
			char *now = value_at(f, paths[i], ts);

			assert_string_equal(now, ts < h ? "ENOENT" : was[ts][i]);
			free(now);
			free(was[ts][i]);
		}
	}
}

struct evs {
	int64_t first, n, ops;
};

static int ev_count(void *arg, const struct store_event *ev)
{
	struct evs *e = arg;

	if (!e->n++)
		e->first = ev->commit_ts;
	e->ops += (int64_t)ev->n_ops;
	return 0;
}

struct lst {
	int n;
};

static int lst_one(void *arg, const struct store_version *v)
{
	(void)v;
	((struct lst *)arg)->n++;
	return 0;
}

static void event_streams_start_at_the_horizon_and_listings_below_it_are_enoent(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 1 };
	struct evs e = { 0 }, all = { 0 };
	struct lst l = { 0 };
	int64_t h;

	write_histories(f);
	assert_errno(store_events(f->st, 1, f->head, NULL, 0, ev_count, &all), 0);
	assert_i64_equal(all.n, 19);
	h = prune_all(f, &r, 0).horizon;
	assert_errno(store_events(f->st, 1, f->head, NULL, 0, ev_count, &e), 0);
	assert_i64_equal(e.first, h);
	assert_i64_equal(e.n, f->head - h + 1); /* every commit from the horizon on, whole */
	assert_errno(store_list_at(f->st, "ns/a", 4, h - 1, lst_one, &l), -ENOENT);
	assert_errno(store_list_at(f->st, "ns/a", 4, h, lst_one, &l), 0);
	assert_true(l.n > 0);
}

static void keep_ns_keeps_what_the_state_of_the_period_needs(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_ns = 2 * DAY_NS };
	char *before, *after, *h;
	int64_t now = 10 * DAY_NS;

	/* k: versions on days 1, 3, 7 and 9; the state as of day 8 (now - 2 days) needs v3. */
	commit1(f, "ns/a/k", STORE_PUT, 1, "d1", 1 * DAY_NS);
	commit1(f, "ns/a/k", STORE_PUT, 2, "d3", 3 * DAY_NS);
	commit1(f, "ns/a/old", STORE_PUT, 1, "o", 4 * DAY_NS);
	commit1(f, "ns/a/k", STORE_PUT, 3, "d7", 7 * DAY_NS);
	commit1(f, "ns/a/k", STORE_PUT, 4, "d9", 9 * DAY_NS);
	before = state_of(f, 0, NULL);
	assert_i64_equal(prune_all(f, &r, now).horizon, 4);
	after = state_of(f, 0, NULL);
	assert_string_equal(after, before);
	h = history(f, "ns/a/k");
	assert_string_equal(h, "3 4");
	free(h);
	h = history(f, "ns/a/old");
	assert_string_equal(h, "1"); /* one version, older than the period: kept */
	free(h);
	/* Two days later the cutoff has moved past v4. */
	assert_i64_equal(prune_all(f, &r, now + 2 * DAY_NS).horizon, 5);
	h = history(f, "ns/a/k");
	assert_string_equal(h, "4");
	free(h);
	free(before);
	free(after);
}

static void with_both_rules_an_operation_goes_only_when_both_let_it_go(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 2, .keep_ns = 5 * DAY_NS / 2 };
	char *h;

	/* k on days 1..4 and 9..12, j on days 5..8; now is day 13: the state as of day
	 * 10.5 on needs k's v6 (day 10) and j's v4 (day 8). */
	for (int v = 1; v <= 4; v++)
		commit1(f, "ns/a/k", STORE_PUT, v, "k", v * DAY_NS);
	for (int v = 1; v <= 4; v++)
		commit1(f, "ns/a/j", STORE_PUT, v, "j", (v + 4) * DAY_NS);
	for (int v = 5; v <= 8; v++)
		commit1(f, "ns/a/k", STORE_PUT, v, "k", (v + 4) * DAY_NS);
	prune_all(f, &r, 13 * DAY_NS);
	h = history(f, "ns/a/k");
	assert_string_equal(h, "6 7 8"); /* keep_versions alone would keep only 7 and 8 */
	free(h);
	h = history(f, "ns/a/j");
	assert_string_equal(h, "3 4"); /* keep_ns alone would keep only 4 */
	free(h);
}

static void a_step_removes_a_few_hundred_operations_and_a_cut_prune_replays_the_same(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 1 };
	struct store_prune_result res;
	char *before, *mid, *after, *h;
	char val[16];
	int steps = 1;

	commit1(f, "ns/a/k", STORE_PUT, 1, "first", 0);
	commit1(f, "ns/a/k", STORE_DELETE, 2, NULL, 0);
	for (int v = 3; v <= 1000; v++) {
		snprintf(val, sizeof(val), "v%d", v);
		commit1(f, "ns/a/k", STORE_PUT, v, val, 0);
	}
	before = state_of(f, 0, NULL);
	assert_errno(store_prune_step(f->p, &r, 0, STORE_PRUNE_OPS_MAX, &res), 0);
	assert_true(res.more);
	assert_true(res.ops > 0 && res.ops <= 300);
	/* Cut in the middle (as a kill would leave it): the same state, fewer versions. */
	mid = state_of(f, 0, NULL);
	assert_string_equal(mid, before);
	assert_i64_equal(store_horizon(f->st), 1 + (int64_t)res.ops);
	reopen(f);
	while (res.more) {
		assert_errno(store_prune_step(f->p, &r, 0, STORE_PRUNE_OPS_MAX, &res), 0);
		assert_true(res.ops <= 300);
		assert_true(++steps < 100);
	}
	assert_true(steps >= 4);
	after = state_of(f, 0, NULL);
	assert_string_equal(after, before);
	h = history(f, "ns/a/k");
	assert_string_equal(h, "1000");
	free(h);
	free(before);
	free(mid);
	free(after);
}

static void new_rules_look_at_every_path_again(void **state)
{
	struct fx *f = *state;
	const struct store_retention five = { .keep_versions = 5 }, two = { .keep_versions = 2 };
	char *h;

	write_histories(f);
	prune_all(f, &five, 0);
	h = history(f, "ns/a/k");
	assert_string_equal(h, "1 2 3 4 5");
	free(h);
	/* The cursor is past every operation, but the rules are new. */
	reopen(f);
	prune_all(f, &two, 0);
	h = history(f, "ns/a/k");
	assert_string_equal(h, "4 5");
	free(h);
}

static void empty_events_below_the_horizon_go_and_the_head_stays(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 1 };
	struct evs e = { 0 };
	struct store_prune_result res;
	int64_t head;

	commit1(f, "ns/a/k", STORE_PUT, 1, "a", 0);
	commit0(f);
	commit1(f, "ns/a/k", STORE_PUT, 2, "b", 0);
	commit1(f, "ns/a/k", STORE_PUT, 3, "c", 0);
	commit0(f);
	res = prune_all(f, &r, 0);
	assert_i64_equal(res.horizon, 4);
	assert_i64_equal(res.ops, 2);
	assert_i64_equal(res.events, 3); /* 1 and 3 lost their ops, 2 had none */
	assert_errno(store_check(f->st, &head), 0);
	assert_i64_equal(head, 5); /* the empty head is no event below the horizon */
	assert_errno(store_events(f->st, 0, head, NULL, 0, ev_count, &e), 0);
	assert_i64_equal(e.first, 4);
	assert_i64_equal(e.n, 2);
	/* commit_ts go on from the head. */
	assert_i64_equal(commit1(f, "ns/a/k", STORE_PUT, 4, "d", 0), 6);
}

static void a_replay_after_a_snapshot_gets_the_pruned_records_that_reach_past_it(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 1 };
	struct fx g = { .dir = tu_mkdtemp() };
	struct store_options opt = { .fsync = 0 };
	struct model at5;
	char *whole, *from5;

	/* A snapshot at commit 5 holds the state the log had then: the same first five
	 * commits in a store of their own, replayed. */
	assert_errno(store_open(NULL, g.dir, &opt, &g.st), 0);
	commit1(&g, "ns/a/k", STORE_PUT, 1, "k1", 0);
	commit1(&g, "ns/a/k", STORE_PUT, 2, "k2", 0);
	commit1(&g, "ns/a/gone", STORE_PUT, 1, "g1", 0);
	commit1(&g, "ns/a/k", STORE_PUT, 3, "k3", 0);
	commit1(&g, "ns/a/gone", STORE_DELETE, 2, NULL, 0);
	model_of(&g, 0, &at5);
	store_close(g.st);
	tu_rmtree(g.dir);
	free(g.dir);

	write_histories(f);
	whole = state_of(f, 0, NULL);
	prune_all(f, &r, 0);
	assert_true(store_horizon(f->st) > 5);
	/* The snapshot + the pruned records that reach past 5 + the kept log after 5. */
	from5 = state_of(f, 5, &at5);
	assert_string_equal(from5, whole);
	free(whole);
	free(from5);
}

static void owner_records_are_never_pruned(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 1 };
	char *out;

	commit1(f, "ns/a", STORE_ATTR, 0, "{\"uid\":1,\"gid\":1,\"mode\":\"0750\"}", 0);
	commit1(f, "ns/a", STORE_ATTR, 0, "{\"uid\":2,\"gid\":2,\"mode\":\"0700\"}", 0);
	commit1(f, "ns/a/k", STORE_PUT, 1, "a", 0);
	commit1(f, "ns/a/k", STORE_PUT, 2, "b", 0);
	assert_i64_equal(prune_all(f, &r, 0).ops, 1);
	if (!have_sqlite_shell())
		skip_because("the sqlite3 shell is not installed; cannot count the records");
	out = sql(f->dir, "SELECT count(*) FROM ops WHERE op = 3");
	assert_string_equal(out, "2\n");
	free(out);
}

static void a_store_becomes_schema_4_at_its_first_prune_step(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 1 };
	struct store_prune_result res;
	char *out;

	if (!have_sqlite_shell())
		skip_because("the sqlite3 shell is not installed; cannot read the schema");
	commit1(f, "ns/a/k", STORE_PUT, 1, "a", 0);
	out = sql(f->dir, "SELECT value FROM meta WHERE name = 'schema'");
	assert_string_equal(out, "3\n");
	free(out);
	assert_errno(store_prune_step(f->p, &r, 0, STORE_PRUNE_OPS_MAX, &res), 0);
	out = sql(f->dir, "SELECT value FROM meta WHERE name = 'schema';"
			  " SELECT name FROM sqlite_master WHERE name = 'pruned'");
	assert_string_equal(out, "4\npruned\n");
	free(out);
	reopen(f); /* schema 4 opens */
}

static void an_injected_fault_fails_a_step_with_eio_and_removes_nothing(void **state)
{
#if STATEHOUSE_FAULT_INJECTION
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 1 };
	struct store_prune_result res;
	char *h;

	commit1(f, "ns/a/k", STORE_PUT, 1, "a", 0);
	commit1(f, "ns/a/k", STORE_PUT, 2, "b", 0);
	store_set_fault(f->st, 0, -EIO);
	assert_errno(store_prune_step(f->p, &r, 0, STORE_PRUNE_OPS_MAX, &res), -EIO);
	store_set_fault(f->st, 0, 0);
	assert_i64_equal(store_horizon(f->st), 0);
	h = history(f, "ns/a/k");
	assert_string_equal(h, "1 2");
	free(h);
#else
	(void)state;
	skip_because("a build without -Dfault_injection=true has no fault hook");
#endif
}

static void vacuum_steps_give_pages_back_and_the_file_shrinks(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 1 };
	struct store_vacuum_result vr;
	char big[3000];
	uint64_t full, after;
	int steps = 0;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int v = 1; v <= 600; v++)
		commit1(f, "ns/a/k", STORE_PUT, v, big, 0);
	assert_errno(store_checkpoint(f->p), 0);
	full = db_bytes(f);
	assert_true(full > 1000000);
	prune_all(f, &r, 0);
	do {
		assert_errno(store_vacuum_step(f->p, 64, &vr), 0);
		assert_true(vr.shrinks); /* a store made by this build */
		assert_true(++steps < 1000);
	} while (vr.more);
	assert_i64_equal(vr.free_bytes, 0);
	assert_errno(store_checkpoint(f->p), 0);
	after = db_bytes(f);
	assert_true(after * 10 < full);
}

static void store_vacuum_makes_an_old_store_able_to_shrink(void **state)
{
	struct fx *f = *state;
	const struct store_retention r = { .keep_versions = 1 };
	struct store_vacuum_result vr;
	uint64_t before = 0, after = 0;
	char big[3000];
	char *out;

	if (!have_sqlite_shell())
		skip_because("the sqlite3 shell is not installed; cannot make a store of before");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int v = 1; v <= 300; v++)
		commit1(f, "ns/a/k", STORE_PUT, v, big, 0);
	store_pruner_close(f->p);
	store_close(f->st);
	f->p = NULL;
	f->st = NULL;
	/* A store as builds before retention made them. */
	out = sql(f->dir, "PRAGMA auto_vacuum=NONE; VACUUM; PRAGMA auto_vacuum");
	assert_string_equal(out, "0\n");
	free(out);
	reopen(f);
	prune_all(f, &r, 0);
	assert_errno(store_vacuum_step(f->p, 64, &vr), 0);
	assert_false(vr.shrinks);
	assert_true(vr.free_bytes > 500000); /* reused, not given back */
	store_pruner_close(f->p);
	store_close(f->st);
	f->p = NULL;
	f->st = NULL;

	assert_errno(store_vacuum(NULL, f->dir, &before, &after), 0);
	assert_true(after * 10 < before);
	out = sql(f->dir, "PRAGMA auto_vacuum");
	assert_string_equal(out, "2\n");
	free(out);
	reopen(f);
	{
		char *h = history(f, "ns/a/k");

		assert_string_equal(h, "300");
		free(h);
	}
	/* A directory without a store is refused. */
	{
		char *empty = tu_mkdtemp();

		assert_errno(store_vacuum(NULL, empty, &before, &after), -ENOENT);
		tu_rmtree(empty);
		free(empty);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			keep_versions_leaves_the_newest_n_of_each_path_and_the_same_state, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			the_newest_operation_stays_so_a_deleted_key_keeps_its_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(
			a_key_that_became_a_directory_keeps_its_version_in_the_pruned_record, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			the_past_below_the_horizon_answers_enoent_and_from_it_on_is_unchanged, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			event_streams_start_at_the_horizon_and_listings_below_it_are_enoent, setup,
			teardown),
		cmocka_unit_test_setup_teardown(keep_ns_keeps_what_the_state_of_the_period_needs,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			with_both_rules_an_operation_goes_only_when_both_let_it_go, setup, teardown),
		cmocka_unit_test_setup_teardown(
			a_step_removes_a_few_hundred_operations_and_a_cut_prune_replays_the_same,
			setup, teardown),
		cmocka_unit_test_setup_teardown(new_rules_look_at_every_path_again, setup, teardown),
		cmocka_unit_test_setup_teardown(empty_events_below_the_horizon_go_and_the_head_stays,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			a_replay_after_a_snapshot_gets_the_pruned_records_that_reach_past_it, setup,
			teardown),
		cmocka_unit_test_setup_teardown(owner_records_are_never_pruned, setup, teardown),
		cmocka_unit_test_setup_teardown(a_store_becomes_schema_4_at_its_first_prune_step,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			an_injected_fault_fails_a_step_with_eio_and_removes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(vacuum_steps_give_pages_back_and_the_file_shrinks,
						setup, teardown),
		cmocka_unit_test_setup_teardown(store_vacuum_makes_an_old_store_able_to_shrink, setup,
						teardown),
	};

	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
