/* SPDX-License-Identifier: MIT */
/*
 * prune.c - retention for the SQLite backend (store layer): a pruner, with a write
 * connection of its own, removes the oldest operations of each path in small steps and
 * sums up what they left in the `pruned` table; vacuum steps give the freed pages back
 * to the file system; statehoused --vacuum compacts a store offline.
 *
 * Design notes
 *  1. What goes: for each path (ns, agent, key), every operation older than its base,
 *     the oldest operation kept: the N-th newest (keep_versions), the newest at or
 *     before the cutoff commit C (keep_ns: C is the last commit of the oldest run of
 *     commits that are all older than now - keep_ns), or the older of the two when both
 *     rules are set.  Owner records (op 3) never go.  The newest operation of a path is
 *     always its base or after it, so it is always kept.
 *  2. What stays of them: one row of `pruned` per path, which folds every removed
 *     operation the way a replay applies it (fold_op() mirrors replay_one() of
 *     txn/recover.c): the key's last version, whether it held a value, whether the path
 *     was an explicit directory, and the latest time one of them added or removed an
 *     entry of its directory.  A replay delivers these rows first
 *     (store_sqlite_replay_pruned()), so the kept log rebuilds what the whole one did;
 *     a replay after a snapshot at S needs only the rows whose end_ts > S.
 *  3. The horizon H (meta 'horizon') is the newest commit_ts of an operation kept right
 *     after removed ones: the state as of any T >= H and every event >= H are whole.  A
 *     step raises the handle's horizon before it commits (store_raise_horizon()), and
 *     removes the events below H that have no operation left.
 *  4. Work is found through a cursor (meta 'prune_cursor_ts' and 'prune_cursor_idx')
 *     that walks the operations in commit order: when it reaches an operation x of a
 *     path, every operation of that path up to x that is older than the path's base
 *     goes.  An operation kept then (it was the base, or newer) goes when a newer one of
 *     its path reaches the cursor and moved the base.  New rules (meta 'prune_rule')
 *     start the cursor over.  Events left without operations are found by a second
 *     cursor ('prune_events_ts').
 *  5. A step is one BEGIN IMMEDIATE ... COMMIT of at most max_ops removed rows
 *     (PRUNE_ROWS_MAX at most), PRUNE_SCAN_MAX operations examined at a time and
 *     PRUNE_OP_NS of work per allowed row, with
 *     synchronous=NORMAL (no fsync of its own: a step lost in a power cut is done
 *     again; the next durable commit makes it durable).
 *  6. The first step makes the store schema 4 (the `pruned` table and its index) in a
 *     transaction of its own; schema 3 builds refuse it, as they would misread it.
 *  7. Walking in commit order keeps a step's writes on few pages: a long history (the
 *     first prune of an old store) goes page by page as the cursor passes it, not key by
 *     key across the whole file.  A step remembers the paths it met (struct chain: the
 *     base, its row of pruned), so each further operation of one costs no more reads.
 * Each path has at most one operation per commit (a commit stages one operation per
 * path), so a path's operations are ordered by commit_ts alone.
 */
#include "store_i.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clock.h"
#include "log.h"

#define PRUNE_ROWS_MAX STORE_PRUNE_OPS_MAX /* operations removed by one step, at most */
#define PRUNE_SCAN_MAX 64               /* operations read off the cursor at a time */
#define PRUNE_OP_NS 12000LL             /* work allowed per operation a step may remove */
#define PRUNE_EVENTS_SCAN 256           /* events looked at for emptiness at a time */
#define PRUNE_DAYS_SCAN 512             /* events looked at for the cutoff at a time */

static const char pruned_sql[] =
	"CREATE TABLE IF NOT EXISTS pruned("
	"  ns TEXT NOT NULL,"
	"  agent TEXT NOT NULL,"
	"  key TEXT NOT NULL,"
	"  end_ts INTEGER NOT NULL,"    /* the newest operation removed */
	"  version INTEGER NOT NULL,"   /* the last put or delete removed (0: none) */
	"  commit_ts INTEGER NOT NULL,"
	"  time_ns INTEGER NOT NULL,"
	"  live INTEGER NOT NULL,"      /* the key held a value after it */
	"  dir INTEGER NOT NULL,"       /* the path was an explicit directory */
	"  entries_ns INTEGER NOT NULL,"
	"  PRIMARY KEY (ns, agent, key)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS pruned_by_end ON pruned(end_ts);"
	"UPDATE meta SET value = 4 WHERE name = 'schema' AND value < 4;";

/* What the removed operations of one path left (a row of `pruned`). */
struct fold {
	int64_t end_ts;
	int64_t version, commit_ts, time_ns;
	bool live, dir;
	int64_t entries_ns;
};

/* An operation read off the cursor, or one of a path's operations. */
struct pop {
	int64_t commit_ts, idx;
	int op;
	int64_t version, time_ns;
};

enum {
	Q_HEAD, Q_DAYS, Q_SCAN, Q_NTH, Q_AT_OR_BEFORE, Q_PREFIX, Q_NEXT, Q_GET_FOLD, Q_PUT_FOLD,
	Q_DEL_OP, Q_DEL_EMPTY_EVENT, Q_EVENTS, Q_DEL_EVENT, Q_META_GET, Q_META_PUT, Q_N
};

static const char *const stmt_sql[Q_N] = {
	[Q_HEAD] = "SELECT coalesce(max(commit_ts), 0) FROM events",
	[Q_DAYS] = "SELECT commit_ts, time_ns FROM events WHERE commit_ts > ?1"
		   " ORDER BY commit_ts LIMIT ?2",
	[Q_SCAN] = "SELECT o.commit_ts, o.idx, o.op, o.version, e.time_ns, o.ns, o.agent, o.key"
		   " FROM ops o JOIN events e ON e.commit_ts = o.commit_ts"
		   " WHERE (o.commit_ts, o.idx) > (?1, ?2) AND o.commit_ts <= ?3 AND o.op <> 3"
		   " ORDER BY o.commit_ts, o.idx LIMIT ?4",
	[Q_NTH] = "SELECT commit_ts FROM ops WHERE ns = ?1 AND agent = ?2 AND key = ?3"
		  " AND op <> 3 ORDER BY commit_ts DESC LIMIT 1 OFFSET ?4",
	[Q_AT_OR_BEFORE] = "SELECT commit_ts FROM ops WHERE ns = ?1 AND agent = ?2 AND key = ?3"
			   " AND commit_ts <= ?4 AND op <> 3 ORDER BY commit_ts DESC LIMIT 1",
	[Q_PREFIX] = "SELECT o.commit_ts, o.idx, o.op, o.version, e.time_ns"
		     " FROM ops o JOIN events e ON e.commit_ts = o.commit_ts"
		     " WHERE o.ns = ?1 AND o.agent = ?2 AND o.key = ?3 AND o.commit_ts < ?4"
		     " AND o.op <> 3 ORDER BY o.commit_ts LIMIT ?5",
	[Q_NEXT] = "SELECT commit_ts FROM ops WHERE ns = ?1 AND agent = ?2 AND key = ?3"
		   " AND commit_ts > ?4 AND op <> 3 ORDER BY commit_ts LIMIT 1",
	[Q_GET_FOLD] = "SELECT end_ts, version, commit_ts, time_ns, live, dir, entries_ns"
		       " FROM pruned WHERE ns = ?1 AND agent = ?2 AND key = ?3",
	[Q_PUT_FOLD] = "INSERT OR REPLACE INTO pruned(ns, agent, key, end_ts, version, commit_ts,"
		       " time_ns, live, dir, entries_ns)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[Q_DEL_OP] = "DELETE FROM ops WHERE commit_ts = ?1 AND idx = ?2",
	[Q_DEL_EMPTY_EVENT] = "DELETE FROM events WHERE commit_ts = ?1"
			      " AND NOT EXISTS (SELECT 1 FROM ops WHERE commit_ts = ?1)",
	[Q_EVENTS] = "SELECT e.commit_ts, EXISTS (SELECT 1 FROM ops o WHERE o.commit_ts ="
		     " e.commit_ts) FROM events e WHERE e.commit_ts > ?1 AND e.commit_ts < ?2"
		     " ORDER BY e.commit_ts LIMIT ?3",
	[Q_DEL_EVENT] = "DELETE FROM events WHERE commit_ts = ?1",
	[Q_META_GET] = "SELECT value FROM meta WHERE name = ?1",
	[Q_META_PUT] = "INSERT OR REPLACE INTO meta(name, value) VALUES (?1, ?2)",
};

struct sqlite_pruner {
	struct store_pruner base; /* first: the handle store.c hands out */
	char *path;
	sqlite3 *db;
	sqlite3_stmt *q[Q_N];
	bool ready;            /* schema 4 made and the statements prepared */
	bool shrinks;          /* auto_vacuum=INCREMENTAL */
	int64_t horizon;       /* as the log records it */
	int64_t cur_ts, cur_idx; /* the cursor (note 4) */
	int64_t ev_ts;         /* the events cursor */
	int64_t days_ts;       /* the cutoff found so far (keep_ns) */
	int64_t days_cut_ns;   /* ... for this time */
	char rule[96];         /* the rules the cursor was made with */
};

static struct sqlite_pruner *to_pruner(struct store_pruner *p)
{
	return (struct sqlite_pruner *)p;
}

static int fail(struct sqlite_pruner *p, int rc, const char *action)
{
	return store_sqlite_errno(p->db, rc, action);
}

/* Step q (reset after) expecting it to be done: 0 or the errno, logged. */
static int run(struct sqlite_pruner *p, sqlite3_stmt *q, const char *action)
{
	int rc = sqlite3_step(q);

	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : fail(p, rc, action);
}

static int meta_get(struct sqlite_pruner *p, const char *name, int64_t *out)
{
	sqlite3_stmt *q = p->q[Q_META_GET];
	int rc;

	*out = 0;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(p, rc, "read the prune cursor");
}

static int meta_put_int(struct sqlite_pruner *p, const char *name, int64_t v)
{
	sqlite3_stmt *q = p->q[Q_META_PUT];

	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, v);
	return run(p, q, "record the prune cursor");
}

/* ---- the horizon and the replay of pruned paths (on sqlite.c's connection) ------------ */

/* Does the log have the pruned table (schema 4)?  0, or the errno, logged. */
static int has_pruned_table(sqlite3 *db, bool *yes)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table'"
				    " AND name = 'pruned'", -1, &q, NULL);

	*yes = false;
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(q);
		*yes = rc == SQLITE_ROW;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
						     : store_sqlite_errno(db, rc, "read the schema");
}

int store_sqlite_read_horizon(struct sqlite3 *db, int64_t *out)
{
	sqlite3_stmt *q = NULL;
	int rc;

	*out = 0;
	rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name = 'horizon'", -1, &q, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(q);
		if (rc == SQLITE_ROW)
			*out = sqlite3_column_int64(q, 0);
	}
	sqlite3_finalize(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sqlite_errno(db, rc, "read the horizon");
}

int store_sqlite_replay_pruned(struct sqlite3 *db, int64_t after_ts, store_replay_fn fn,
			       void *arg)
{
	sqlite3_stmt *q = NULL;
	char *path = NULL;
	size_t cap = 0;
	bool pruned;
	int rc, err = has_pruned_table(db, &pruned);

	if (err || !pruned)
		return err;
	rc = sqlite3_prepare_v2(db, "SELECT ns, agent, key, end_ts, version, commit_ts, time_ns,"
				" live, dir, entries_ns FROM pruned WHERE end_ts > ?1", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return store_sqlite_errno(db, rc, "read the pruned paths");
	sqlite3_bind_int64(q, 1, after_ts);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		size_t l[3], len;
		const char *part[3];

		for (int i = 0; i < 3; i++) {
			part[i] = (const char *)sqlite3_column_text(q, i);
			l[i] = (size_t)sqlite3_column_bytes(q, i);
		}
		len = l[0] + l[1] + l[2] + 2;
		if (len + 1 > cap) {
			char *np = realloc(path, len + 1);

			if (!np) {
				err = -ENOMEM;
				break;
			}
			path = np;
			cap = len + 1;
		}
		snprintf(path, cap, "%.*s/%.*s/%.*s", (int)l[0], part[0] ? part[0] : "",
			 (int)l[1], part[1] ? part[1] : "", (int)l[2], part[2] ? part[2] : "");
		err = fn(arg, &(struct store_replay_op){
			.kind = STORE_PRUNED,
			.path = path,
			.path_len = len,
			.end_ts = sqlite3_column_int64(q, 3),
			.version = sqlite3_column_int64(q, 4),
			.commit_ts = sqlite3_column_int64(q, 5),
			.time_ns = sqlite3_column_int64(q, 6),
			.live = sqlite3_column_int(q, 7) != 0,
			.dir = sqlite3_column_int(q, 8) != 0,
			.entries_ns = sqlite3_column_int64(q, 9),
		});
		if (err)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_sqlite_errno(db, rc, "read the pruned paths");
	sqlite3_finalize(q);
	free(path);
	return err;
}

/* ---- the pruner's connection --------------------------------------------------------- */

void store_sqlite_pruner_close(struct store_pruner *base)
{
	struct sqlite_pruner *p = to_pruner(base);

	for (int i = 0; i < Q_N; i++)
		sqlite3_finalize(p->q[i]);
	sqlite3_close(p->db);
	free(p->path);
	free(p);
}

static int open_db(const char *path, sqlite3 **out)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_extended_result_codes(db, 1);
		/* The files stay as the daemon leaves them: its own connection folds the
		 * write-ahead log in after a clean stop, not this one. */
		sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
		rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;", NULL,
				  NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		char what[PATH_MAX + 32];
		int err;

		snprintf(what, sizeof(what), "open store '%s' for pruning", path);
		err = store_sqlite_errno(db, rc, what);
		sqlite3_close(db);
		return err;
	}
	*out = db;
	return 0;
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);

	*out = 0;
	if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW)
		*out = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sqlite_errno(db, rc, sql);
}

int store_sqlite_pruner_open(struct store *st, const char *datadir, struct store_pruner **out)
{
	struct sqlite_pruner *p = calloc(1, sizeof(*p));
	int64_t av = 0;
	int err;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->base.ops = st->ops;
	p->base.st = st;
	if (asprintf(&p->path, "%s/statehouse.db", datadir) < 0) {
		free(p);
		return -ENOMEM;
	}
	err = open_db(p->path, &p->db);
	if (!err) {
		/* Only the daemon's threads write, one at a time: a wait means someone else
		 * holds the store, and the step is tried again later. */
		sqlite3_busy_timeout(p->db, 100);
		err = pragma_int(p->db, "PRAGMA auto_vacuum", &av);
	}
	if (err) {
		store_sqlite_pruner_close(&p->base);
		return err;
	}
	p->shrinks = av == 2;
	*out = &p->base;
	return 0;
}

/* The first step: schema 4 (note 6), the statements, and where the last run stopped. */
static int make_ready(struct sqlite_pruner *p, const struct store_retention *r)
{
	char rule[sizeof(p->rule)];
	const char *old = NULL;
	sqlite3_stmt *q = NULL;
	int rc, err = 0;

	rc = sqlite3_exec(p->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return (rc & 0xff) == SQLITE_BUSY ? -EAGAIN : fail(p, rc, "begin a prune");
	rc = sqlite3_exec(p->db, pruned_sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		err = fail(p, rc, "upgrade the store to schema 4");
	for (int i = 0; i < Q_N && !err; i++) {
		rc = sqlite3_prepare_v3(p->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &p->q[i],
					NULL);
		if (rc != SQLITE_OK)
			err = fail(p, rc, "prepare a prune statement");
	}
	if (!err)
		err = meta_get(p, "horizon", &p->horizon);
	if (!err)
		err = meta_get(p, "prune_cursor_ts", &p->cur_ts);
	if (!err)
		err = meta_get(p, "prune_cursor_idx", &p->cur_idx);
	if (!err)
		err = meta_get(p, "prune_events_ts", &p->ev_ts);
	/* The cursor holds for the rules it was made with: new ones look at every path. */
	snprintf(rule, sizeof(rule), "keep_versions=%" PRIu32 ",keep_ns=%" PRId64,
		 r->keep_versions, r->keep_ns);
	if (!err && sqlite3_prepare_v2(p->db, "SELECT value FROM meta WHERE name = 'prune_rule'",
				       -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW)
		old = (const char *)sqlite3_column_text(q, 0);
	if (!err && (!old || strcmp(old, rule))) {
		if (old)
			log_info("prune: the rules changed (%s, were %s); every path is looked at "
				 "again", rule, old);
		p->cur_ts = p->cur_idx = p->ev_ts = 0;
	}
	sqlite3_finalize(q);
	if (!err) {
		sqlite3_stmt *put = p->q[Q_META_PUT];

		sqlite3_bind_text(put, 1, "prune_rule", -1, SQLITE_STATIC);
		sqlite3_bind_text(put, 2, rule, -1, SQLITE_TRANSIENT);
		err = run(p, put, "record the prune rules");
	}
	if (!err) {
		rc = sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			err = fail(p, rc, "upgrade the store to schema 4");
	}
	if (err) {
		if (!sqlite3_get_autocommit(p->db))
			sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
		for (int i = 0; i < Q_N; i++) {
			sqlite3_finalize(p->q[i]);
			p->q[i] = NULL;
		}
		return err;
	}
	memcpy(p->rule, rule, sizeof(rule));
	p->days_ts = p->cur_ts;
	p->ready = true;
	return 0;
}

/* ---- one path ------------------------------------------------------------------------ */

static void bind_path(sqlite3_stmt *q, const char *const part[3], const int len[3])
{
	for (int i = 0; i < 3; i++)
		sqlite3_bind_text(q, i + 1, part[i], len[i], SQLITE_STATIC);
}

/* The commit_ts of the one row q selects, or 0 when none. */
static int one_ts(struct sqlite_pruner *p, sqlite3_stmt *q, int64_t *out)
{
	int rc = sqlite3_step(q);

	*out = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(p, rc, "find what to prune");
}

/* A path's oldest kept operation by the rules (note 1): its commit_ts, or 0 when the
 * rules keep every operation of the path. */
static int path_base(struct sqlite_pruner *p, const struct store_retention *r,
		     const char *const part[3], const int len[3], int64_t cutoff, int64_t *base)
{
	int64_t by_versions = INT64_MAX, by_time = INT64_MAX;
	int err;

	*base = 0;
	if (r->keep_versions) {
		bind_path(p->q[Q_NTH], part, len);
		sqlite3_bind_int64(p->q[Q_NTH], 4, (int64_t)r->keep_versions - 1);
		err = one_ts(p, p->q[Q_NTH], &by_versions);
		if (err || !by_versions)
			return err; /* fewer operations than keep_versions */
	}
	if (r->keep_ns) {
		bind_path(p->q[Q_AT_OR_BEFORE], part, len);
		sqlite3_bind_int64(p->q[Q_AT_OR_BEFORE], 4, cutoff);
		err = one_ts(p, p->q[Q_AT_OR_BEFORE], &by_time);
		if (err || !by_time)
			return err; /* nothing as old as the cutoff */
	}
	*base = by_versions < by_time ? by_versions : by_time;
	return 0;
}

/* Apply one removed operation to what they left, as a replay would (note 2). */
static void fold_op(struct fold *f, const struct pop *o)
{
	bool was = f->live;

	f->end_ts = o->commit_ts;
	switch (o->op) {
	case 1: /* STORE_PUT */
	case 2: /* STORE_DELETE */
		f->live = o->op == 1;
		f->version = o->version;
		f->commit_ts = o->commit_ts;
		f->time_ns = o->time_ns;
		if (was != f->live && o->time_ns > f->entries_ns)
			f->entries_ns = o->time_ns;
		break;
	case 4: /* STORE_MKDIR */
	case 5: /* STORE_RMDIR */
		f->dir = o->op == 4;
		if (o->time_ns > f->entries_ns)
			f->entries_ns = o->time_ns;
		break;
	}
}

static int fold_get(struct sqlite_pruner *p, const char *const part[3], const int len[3],
		    struct fold *f)
{
	sqlite3_stmt *q = p->q[Q_GET_FOLD];
	int rc;

	memset(f, 0, sizeof(*f));
	bind_path(q, part, len);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*f = (struct fold){
			.end_ts = sqlite3_column_int64(q, 0),
			.version = sqlite3_column_int64(q, 1),
			.commit_ts = sqlite3_column_int64(q, 2),
			.time_ns = sqlite3_column_int64(q, 3),
			.live = sqlite3_column_int(q, 4) != 0,
			.dir = sqlite3_column_int(q, 5) != 0,
			.entries_ns = sqlite3_column_int64(q, 6),
		};
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(p, rc, "read a pruned path");
}

static int fold_put(struct sqlite_pruner *p, const char *const part[3], const int len[3],
		    const struct fold *f)
{
	sqlite3_stmt *q = p->q[Q_PUT_FOLD];

	bind_path(q, part, len);
	sqlite3_bind_int64(q, 4, f->end_ts);
	sqlite3_bind_int64(q, 5, f->version);
	sqlite3_bind_int64(q, 6, f->commit_ts);
	sqlite3_bind_int64(q, 7, f->time_ns);
	sqlite3_bind_int(q, 8, f->live);
	sqlite3_bind_int(q, 9, f->dir);
	sqlite3_bind_int64(q, 10, f->entries_ns);
	return run(p, q, "record a pruned path");
}

/* A path met in this step (note 7). */
struct chain {
	char *part[3];     /* ns, agent, key (owned) */
	int len[3];
	int64_t base;      /* its oldest operation kept by the rules; 0: every one is kept */
	int64_t done;      /* its operations up to this commit are dealt with in this step */
	int64_t last;      /* the newest one removed (0: none yet) */
	bool loaded;       /* f holds its row of pruned */
	struct fold f;
};

#define PRUNE_CHAINS_MAX 256 /* paths one step deals with */

struct step {
	const struct store_retention *r;
	int64_t t0, max_ns;  /* when the step began, and the work it may do */
	int64_t cutoff;      /* keep_ns: the cutoff commit */
	unsigned budget;     /* rows this step may still remove */
	int64_t horizon;     /* raised as paths are pruned */
	uint64_t ops, events;
	struct chain c[PRUNE_CHAINS_MAX];
	size_t nc;
};

static bool step_full(const struct step *s)
{
	return !s->budget || clock_now_ns(CLOCK_MONOTONIC) - s->t0 >= s->max_ns;
}

static void chains_free(struct step *s)
{
	for (size_t i = 0; i < s->nc; i++)
		for (int j = 0; j < 3; j++)
			free(s->c[i].part[j]);
	s->nc = 0;
}

/* Remove the operations o[0..k) of path c, oldest first, folding each into its row. */
static int remove_ops(struct sqlite_pruner *p, struct step *s, struct chain *c,
		      const struct pop *o, size_t k)
{
	const char *part[3] = { c->part[0], c->part[1], c->part[2] };
	int err = 0;

	if (!c->loaded) {
		err = fold_get(p, part, c->len, &c->f);
		c->loaded = !err;
	}
	for (size_t i = 0; i < k && !err; i++) {
		fold_op(&c->f, &o[i]);
		sqlite3_bind_int64(p->q[Q_DEL_OP], 1, o[i].commit_ts);
		sqlite3_bind_int64(p->q[Q_DEL_OP], 2, o[i].idx);
		err = run(p, p->q[Q_DEL_OP], "remove an operation");
		if (err || (i && o[i].commit_ts == o[i - 1].commit_ts))
			continue;
		sqlite3_bind_int64(p->q[Q_DEL_EMPTY_EVENT], 1, o[i].commit_ts);
		err = run(p, p->q[Q_DEL_EMPTY_EVENT], "remove an event");
		if (!err)
			s->events += (uint64_t)sqlite3_changes(p->db);
	}
	if (err)
		return err;
	if (k)
		c->last = o[k - 1].commit_ts;
	s->budget -= (unsigned)k;
	s->ops += k;
	return 0;
}

/* The path of a scanned operation, met before in this step or new (its base found);
 * NULL when the step has no room for another path, or on an error (*err). */
static struct chain *chain_of(struct sqlite_pruner *p, struct step *s, sqlite3_stmt *q,
			      int *err)
{
	struct chain *c;

	*err = 0;
	for (size_t i = 0; i < s->nc; i++) {
		c = &s->c[i];
		for (int j = 0; j < 3; j++)
			if (c->len[j] != sqlite3_column_bytes(q, 5 + j) ||
			    memcmp(c->part[j], sqlite3_column_text(q, 5 + j), (size_t)c->len[j]))
				goto next;
		return c;
next:;
	}
	if (s->nc == PRUNE_CHAINS_MAX)
		return NULL;
	c = &s->c[s->nc];
	memset(c, 0, sizeof(*c));
	for (int j = 0; j < 3; j++) {
		c->len[j] = sqlite3_column_bytes(q, 5 + j);
		c->part[j] = malloc((size_t)c->len[j] + 1);
		if (!c->part[j]) {
			for (int i = 0; i < j; i++)
				free(c->part[i]);
			*err = -ENOMEM;
			return NULL;
		}
		memcpy(c->part[j], sqlite3_column_text(q, 5 + j), (size_t)c->len[j]);
		c->part[j][c->len[j]] = '\0';
	}
	s->nc++;
	{
		const char *part[3] = { c->part[0], c->part[1], c->part[2] };

		*err = path_base(p, s->r, part, c->len, s->cutoff, &c->base);
	}
	return *err ? NULL : c;
}

/*
 * Deal with the operation x of path c that the cursor reached: every operation of c up
 * to x and older than its base goes.  The first time a step meets c, what an earlier
 * step kept and the rules let go since is among them (read from the log, at most the
 * step's budget: *whole false when that ran out); after that only x itself can be, as
 * the cursor met every operation of c in between.
 */
static int prune_at(struct sqlite_pruner *p, struct step *s, struct chain *c,
		    const struct pop *x, bool *whole)
{
	struct pop o[PRUNE_ROWS_MAX + 1];
	sqlite3_stmt *q = p->q[Q_PREFIX];
	const char *part[3] = { c->part[0], c->part[1], c->part[2] };
	size_t n = 0, k;
	int rc, err;

	*whole = true;
	if (!c->base || (c->done && x->commit_ts >= c->base)) {
		c->done = x->commit_ts;
		return 0;
	}
	if (c->done) {
		err = remove_ops(p, s, c, x, 1);
		if (!err)
			c->done = x->commit_ts;
		return err;
	}
	bind_path(q, part, c->len);
	sqlite3_bind_int64(q, 4, x->commit_ts < c->base ? x->commit_ts + 1 : c->base);
	sqlite3_bind_int64(q, 5, (int64_t)s->budget + 1);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && n <= s->budget)
		o[n++] = (struct pop){ sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1),
				       sqlite3_column_int(q, 2), sqlite3_column_int64(q, 3),
				       sqlite3_column_int64(q, 4) };
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fail(p, rc, "read what to prune");
	k = n > s->budget ? s->budget : n;
	*whole = n <= s->budget;
	err = remove_ops(p, s, c, o, k);
	if (!err && *whole)
		c->done = x->commit_ts;
	return err;
}

/* The end of a step's paths: their rows of pruned written, and the horizon raised to the
 * first operation kept after the removed ones of each (note 3). */
static int chains_finish(struct sqlite_pruner *p, struct step *s)
{
	int err = 0;

	for (size_t i = 0; i < s->nc && !err; i++) {
		struct chain *c = &s->c[i];
		const char *part[3] = { c->part[0], c->part[1], c->part[2] };
		int64_t next = 0;

		if (!c->last)
			continue;
		err = fold_put(p, part, c->len, &c->f);
		if (err)
			break;
		bind_path(p->q[Q_NEXT], part, c->len);
		sqlite3_bind_int64(p->q[Q_NEXT], 4, c->last);
		err = one_ts(p, p->q[Q_NEXT], &next);
		if (!err && next > s->horizon)
			s->horizon = next;
	}
	return err;
}

/* ---- one step -------------------------------------------------------------------------- */

/* Move the cutoff (keep_ns) as far as the events allow: the last commit of the oldest run
 * of commits older than cut_ns (a clock that went back never lets newer ones go). */
static int advance_cutoff(struct sqlite_pruner *p, int64_t cut_ns, const struct step *s)
{
	sqlite3_stmt *q = p->q[Q_DAYS];
	int rc = SQLITE_DONE, n;

	if (cut_ns < p->days_cut_ns)
		return 0; /* the clock went back: keep what was found */
	p->days_cut_ns = cut_ns;
	do {
		bool stop = false;

		n = 0;
		sqlite3_bind_int64(q, 1, p->days_ts);
		sqlite3_bind_int(q, 2, PRUNE_DAYS_SCAN);
		while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
			n++;
			if (sqlite3_column_int64(q, 1) > cut_ns)
				stop = true;
			else
				p->days_ts = sqlite3_column_int64(q, 0);
		}
		sqlite3_reset(q);
		sqlite3_clear_bindings(q);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return fail(p, rc, "find the prune cutoff");
		if (stop)
			break;
	} while (n == PRUNE_DAYS_SCAN && clock_now_ns(CLOCK_MONOTONIC) - s->t0 < s->max_ns);
	return 0;
}

/* Remove the events below the horizon that no operation is left in (note 3). */
static int prune_events(struct sqlite_pruner *p, struct step *s)
{
	sqlite3_stmt *q = p->q[Q_EVENTS];
	int64_t empty[PRUNE_EVENTS_SCAN];
	size_t ne;
	int rc, n, err = 0;

	while (!err && p->ev_ts + 1 < s->horizon && s->budget &&
	       clock_now_ns(CLOCK_MONOTONIC) - s->t0 < s->max_ns) {
		n = 0;
		ne = 0;
		sqlite3_bind_int64(q, 1, p->ev_ts);
		sqlite3_bind_int64(q, 2, s->horizon);
		sqlite3_bind_int(q, 3, PRUNE_EVENTS_SCAN);
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			n++;
			p->ev_ts = sqlite3_column_int64(q, 0);
			if (!sqlite3_column_int(q, 1))
				empty[ne++] = p->ev_ts;
		}
		sqlite3_reset(q);
		sqlite3_clear_bindings(q);
		if (rc != SQLITE_DONE)
			return fail(p, rc, "find empty events");
		for (size_t i = 0; i < ne && !err; i++) {
			sqlite3_bind_int64(p->q[Q_DEL_EVENT], 1, empty[i]);
			err = run(p, p->q[Q_DEL_EVENT], "remove an event");
		}
		s->events += ne;
		s->budget = s->budget > ne ? s->budget - (unsigned)ne : 0;
		if (n < PRUNE_EVENTS_SCAN)
			p->ev_ts = s->horizon - 1; /* every event below the horizon is looked at */
	}
	return err;
}

#if STATEHOUSE_FAULT_INJECTION
static void test_pause(struct sqlite_pruner *p, const struct step *s)
{
	struct timespec ts = { p->base.pause_ms / 1000, (long)(p->base.pause_ms % 1000) * 1000000 };

	if (!p->base.pause_ms || !s->ops)
		return;
	log_info("test hook: pausing %u ms inside a prune step that removes %" PRIu64
		 " operations", p->base.pause_ms, s->ops);
	while (nanosleep(&ts, &ts) != 0)
		;
}
#else
static void test_pause(struct sqlite_pruner *p, const struct step *s)
{
	(void)p;
	(void)s;
}
#endif

/* The operations after the cursor, up to limit, in commit order, while the step has
 * room; the cursor moves past each one dealt with whole.  *more: work is left. */
static int prune_paths(struct sqlite_pruner *p, struct step *s, int64_t limit, bool *more)
{
	sqlite3_stmt *q = p->q[Q_SCAN];
	int rc = SQLITE_DONE, err = 0, n = PRUNE_SCAN_MAX;

	*more = true;
	while (!err && n == PRUNE_SCAN_MAX && !step_full(s)) {
		bool stop = false;

		n = 0;
		sqlite3_bind_int64(q, 1, p->cur_ts);
		sqlite3_bind_int64(q, 2, p->cur_idx);
		sqlite3_bind_int64(q, 3, limit);
		sqlite3_bind_int(q, 4, PRUNE_SCAN_MAX);
		while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
			struct pop x = { sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1),
					 sqlite3_column_int(q, 2), sqlite3_column_int64(q, 3),
					 sqlite3_column_int64(q, 4) };
			struct chain *c;
			bool whole;

			n++;
			c = step_full(s) ? NULL : chain_of(p, s, q, &err);
			if (c)
				err = prune_at(p, s, c, &x, &whole);
			if (!c || err || !whole) {
				stop = true;
				n = 0; /* not at the end */
				continue;
			}
			p->cur_ts = x.commit_ts;
			p->cur_idx = x.idx;
		}
		if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE)
			err = fail(p, rc, "find what to prune");
		sqlite3_reset(q);
		sqlite3_clear_bindings(q);
		if (!err && !stop && n < PRUNE_SCAN_MAX) {
			/* Every operation up to limit has been dealt with. */
			p->cur_ts = limit;
			p->cur_idx = INT64_MAX;
			*more = false;
		}
	}
	if (!err)
		err = chains_finish(p, s);
	chains_free(s);
	return err;
}

int store_sqlite_prune_step(struct store_pruner *base, const struct store_retention *r,
			    int64_t now_ns, unsigned max_ops, struct store_prune_result *out)
{
	struct sqlite_pruner *p = to_pruner(base);
	int64_t head = 0, limit, cur_ts, cur_idx, ev_ts;
	struct step *s;
	bool more = false;
	int rc, err;

	if (!r->keep_versions && !r->keep_ns)
		return 0;
	if (!p->ready) {
		err = make_ready(p, r);
		if (err)
			return err;
	}
	s = calloc(1, sizeof(*s)); /* large: the paths met */
	if (!s)
		return -ENOMEM;
	*s = (struct step){ .r = r, .budget = max_ops, .t0 = clock_now_ns(CLOCK_MONOTONIC),
			    .max_ns = PRUNE_OP_NS * max_ops, .horizon = p->horizon };
	cur_ts = p->cur_ts;
	cur_idx = p->cur_idx;
	ev_ts = p->ev_ts;
	rc = sqlite3_exec(p->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		free(s);
		return (rc & 0xff) == SQLITE_BUSY ? -EAGAIN : fail(p, rc, "begin a prune");
	}
	err = one_ts(p, p->q[Q_HEAD], &head);
	limit = head;
	if (!err && r->keep_ns) {
		err = advance_cutoff(p, now_ns - r->keep_ns, s);
		s->cutoff = p->days_ts;
		if (s->cutoff < limit)
			limit = s->cutoff;
	}
	if (!err && (cur_ts < limit || (cur_ts == limit && cur_idx != INT64_MAX)))
		err = prune_paths(p, s, limit, &more);
	if (!err)
		err = prune_events(p, s);
	if (!err && (p->cur_ts != cur_ts || p->cur_idx != cur_idx))
		err = meta_put_int(p, "prune_cursor_ts", p->cur_ts);
	if (!err && (p->cur_ts != cur_ts || p->cur_idx != cur_idx))
		err = meta_put_int(p, "prune_cursor_idx", p->cur_idx);
	if (!err && p->ev_ts != ev_ts)
		err = meta_put_int(p, "prune_events_ts", p->ev_ts);
	if (!err && s->horizon != p->horizon)
		err = meta_put_int(p, "horizon", s->horizon);
	if (!err) {
		/* Readers drop what they read below the new horizon from now on (note 3). */
		store_raise_horizon(p->base.st, s->horizon);
		test_pause(p, s);
		rc = sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			err = fail(p, rc, "commit a prune");
	}
	if (err) {
		if (!sqlite3_get_autocommit(p->db))
			sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
		p->cur_ts = cur_ts;
		p->cur_idx = cur_idx;
		p->ev_ts = ev_ts;
		free(s);
		return err;
	}
	p->horizon = s->horizon;
	*out = (struct store_prune_result){ .ops = s->ops, .events = s->events,
					    .horizon = s->horizon,
					    .more = more || p->ev_ts + 1 < s->horizon };
	free(s);
	return 0;
}

/* ---- giving space back ------------------------------------------------------------------- */

int store_sqlite_vacuum_step(struct store_pruner *base, unsigned max_pages,
			     struct store_vacuum_result *out)
{
	struct sqlite_pruner *p = to_pruner(base);
	int64_t free_pages = 0, page_size = 0;
	char sql[64];
	int err = 0;

	out->shrinks = p->shrinks;
	if (p->shrinks) {
		snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%u)", max_pages);
		int rc = sqlite3_exec(p->db, sql, NULL, NULL, NULL);

		if (rc != SQLITE_OK)
			return (rc & 0xff) == SQLITE_BUSY ? -EAGAIN : fail(p, rc, "give free pages back");
	}
	err = pragma_int(p->db, "PRAGMA freelist_count", &free_pages);
	if (!err)
		err = pragma_int(p->db, "PRAGMA page_size", &page_size);
	if (err)
		return err;
	out->free_bytes = (uint64_t)(free_pages * page_size);
	out->more = p->shrinks && free_pages > 0;
	return 0;
}

int store_sqlite_checkpoint(struct store_pruner *base)
{
	struct sqlite_pruner *p = to_pruner(base);
	int rc = sqlite3_wal_checkpoint_v2(p->db, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);

	if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY)
		return 0; /* a reader or writer in the way: the next checkpoint does it */
	return fail(p, rc, "checkpoint the write-ahead log");
}

/* ---- statehoused --vacuum ---------------------------------------------------------------- */

int store_sqlite_vacuum(const char *datadir, uint64_t *before, uint64_t *after)
{
	char path[PATH_MAX];
	sqlite3 *db = NULL;
	int64_t schema = 0, av = 0;
	struct stat sb;
	int rc, err;

	if (snprintf(path, sizeof(path), "%s/statehouse.db", datadir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (stat(path, &sb) != 0 || sb.st_size == 0) {
		log_err("cannot vacuum '%s': there is no store in it", datadir);
		return -ENOENT;
	}
	*before = (uint64_t)sb.st_size;
	err = open_db(path, &db);
	if (err)
		return err;
	sqlite3_busy_timeout(db, 5000);
	err = pragma_int(db, "SELECT value FROM meta WHERE name = 'schema'", &schema);
	if (!err && schema != 3 && schema != 4) {
		log_err("cannot vacuum '%s': its schema is version %" PRId64 "; start a daemon of "
			"this build on it once first", path, schema);
		err = -EIO;
	}
	if (!err)
		err = pragma_int(db, "PRAGMA auto_vacuum", &av);
	if (!err) {
		/* VACUUM writes the store anew, now able to give pages back; then the
		 * write-ahead log is folded in and emptied. */
		log_info("vacuum: compacting '%s'%s", path,
			 av == 2 ? "" : " and making it able to shrink after a prune");
		rc = sqlite3_exec(db, "PRAGMA auto_vacuum=INCREMENTAL; VACUUM;"
				      " PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			err = store_sqlite_errno(db, rc, "vacuum the store");
	}
	sqlite3_close(db);
	if (!err && stat(path, &sb) == 0)
		*after = (uint64_t)sb.st_size;
	return err;
}
