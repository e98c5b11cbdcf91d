/* SPDX-License-Identifier: MIT */
/*
 * sqlite.c - the SQLite backend of the store: the durable log in DATADIR/statehouse.db
 * (store layer; the only file of the project that includes sqlite3.h).  It is the table
 * store_sqlite_ops, chosen by the URIs "sqlite:" and NULL (the default) in store.c.
 *
 * Design notes
 *  1. The log is the truth: events(commit_ts, txn, time_ns, note) and
 *     ops(commit_ts, idx, ns, agent, key, op, version, value).  Nothing is ever updated
 *     in place; the current state is derived by replaying the log.  Retention (prune.c,
 *     schema 4) removes the oldest operations and sums them up in `pruned`, which a
 *     replay delivers first, so the state derived stays the same.
 *  2. One store_append() (sqlite_append()) is one BEGIN IMMEDIATE ... COMMIT, hence
 *     one fsync in WAL mode with synchronous=FULL: a batch of transactions becomes
 *     durable together (group commit) or not at all.
 *  3. SQLite result codes are turned into errnos by store_errno() and logged there, once.
 *  4. The writer connection belongs to the committer thread; the reader connection is
 *     serialised by reader_lock.
 *  5. Nothing here knows about fault injection: store.c fails a call before it reaches
 *     this table.
 *  6. applied(instance, request, commit_ts) records which request of the file system
 *     made a commit, in the append's transaction (sqlite_applied.c, which makes and
 *     bounds the table), so a request resent after a crash is not committed twice.
 */
#include "store_i.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "grow.h"
#include "log.h"

struct sqlite_store {
	struct store base; /* first: the handle store.c hands out */
	char *path;
	bool had_wal; /* the write-ahead log existed at open */
	sqlite3 *wdb;
	sqlite3_stmt *begin, *commit, *rollback; /* of every store_append(), parsed once */
	sqlite3_stmt *ins_event;
	sqlite3_stmt *ins_op;
	struct store_sqlite_applied *applied; /* the writer's, made at the first record */
	pthread_mutex_t reader_lock; /* protects rdb and its statements (leaf lock) */
	sqlite3 *rdb;
	sqlite3_stmt *chk;
	sqlite3_stmt *get_at;
	sqlite3_stmt *get_version;
	sqlite3_stmt *history;
};

static struct sqlite_store *to_sqlite(struct store *st)
{
	return (struct sqlite_store *)st;
}

/* The columns of ops; op 3 (STORE_ATTR) since schema 2, ops 4 and 5 (STORE_MKDIR,
 * STORE_RMDIR) since schema 3. */
#define OPS_COLUMNS                                                                        \
	"(commit_ts INTEGER NOT NULL,"                                                     \
	"  idx INTEGER NOT NULL,"                                                          \
	"  ns TEXT NOT NULL,"                                                              \
	"  agent TEXT NOT NULL,"                                                           \
	"  key TEXT NOT NULL,"                                                             \
	"  op INTEGER NOT NULL CHECK (op IN (1, 2, 3, 4, 5)),"                             \
	"  version INTEGER NOT NULL,"                                                      \
	"  value BLOB,"                                                                    \
	"  PRIMARY KEY (commit_ts, idx)) WITHOUT ROWID"

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS events("
	"  commit_ts INTEGER PRIMARY KEY,"
	"  txn TEXT NOT NULL,"
	"  time_ns INTEGER NOT NULL,"
	"  note BLOB);"
	"CREATE TABLE IF NOT EXISTS ops" OPS_COLUMNS ";"
	/* Versions grow with commit_ts, so this orders a key's versions and finds the
	 * one current at any commit_ts with one seek. */
	"CREATE INDEX IF NOT EXISTS ops_by_key_ts ON ops(ns, agent, key, commit_ts, version);"
	/* An agent's events from any commit_ts on, without reading the log before it. */
	"CREATE INDEX IF NOT EXISTS ops_by_agent_ts ON ops(ns, agent, commit_ts);"
	/* The owner records of a namespace, an agent and its keys, without reading its
	 * other ops (a partial index: older builds leave it alone). */
	"CREATE INDEX IF NOT EXISTS ops_owner_records ON ops(ns, agent, commit_ts) WHERE op = 3;"
	/* One row per start of the daemon: restarts and recoveries are visible in the
	 * store itself, without systemd. */
	"CREATE TABLE IF NOT EXISTS starts("
	"  id INTEGER PRIMARY KEY,"
	"  time_ns INTEGER NOT NULL,"
	"  clean_prev INTEGER NOT NULL,"
	"  recovery_ns INTEGER NOT NULL,"
	"  snapshot_ts INTEGER NOT NULL,"
	"  events_replayed INTEGER NOT NULL,"
	"  head_ts INTEGER NOT NULL);"
	"INSERT OR IGNORE INTO meta(name, value) VALUES ('schema', 3);";
/* Tables made later, by the file that owns them, not by every open: `pruned` (prune.c,
 * the first prune step, schema 4), `recoveries` (sqlite_starts.c, the first rebuild
 * from a snapshot) and `applied(instance, request, commit_ts)` with its index
 * applied_by_ts (sqlite_applied.c, the first serving start of a mount with an instance:
 * which request of the file system made which commit, written in the commit's own
 * transaction; older builds ignore it, so it changes no schema version). */

/* Schema 1 or 2 -> 3: ops may hold owner records (op 3, schema 2) and directories (ops 4
 * and 5, schema 3).  SQLite cannot change a CHECK constraint in place, so the table is
 * copied, in one transaction; the rows stay as they are. */
static const char migrate_ops_sql[] =
	"BEGIN IMMEDIATE;"
	"CREATE TABLE ops2" OPS_COLUMNS ";"
	"INSERT INTO ops2 SELECT commit_ts, idx, ns, agent, key, op, version, value FROM ops;"
	"DROP TABLE ops;"
	"ALTER TABLE ops2 RENAME TO ops;"
	"CREATE INDEX ops_by_key_ts ON ops(ns, agent, key, commit_ts, version);"
	"CREATE INDEX ops_by_agent_ts ON ops(ns, agent, commit_ts);"
	"UPDATE meta SET value = 3 WHERE name = 'schema';"
	"COMMIT;";

/* Map a SQLite result code to a negative errno, logging the failure once, here. */
static int store_errno(sqlite3 *db, int rc, const char *action)
{
	int err;

	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_FULL:
		err = -ENOSPC;
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		err = -EAGAIN;
		break;
	case SQLITE_NOMEM:
		err = -ENOMEM;
		break;
	case SQLITE_READONLY:
		err = -EROFS;
		break;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		err = -EACCES;
		break;
	case SQLITE_CANTOPEN:
	case SQLITE_CORRUPT:
	case SQLITE_IOERR:
	case SQLITE_NOTADB:
	default:
		err = -EIO;
		break;
	}
	/* The connection's message only if it is about rc: a later call (a finalize, a
	 * rollback) may have reset it, and "not an error" would be all it said. */
	if (db && (sqlite3_extended_errcode(db) & 0xff) == (rc & 0xff))
		log_err("cannot %s: %s (sqlite code %d)", action, sqlite3_errmsg(db),
			sqlite3_extended_errcode(db));
	else
		log_err("cannot %s: %s (sqlite code %d)", action, sqlite3_errstr(rc), rc);
	return err;
}

int store_sqlite_errno(struct sqlite3 *db, int rc, const char *action)
{
	return store_errno(db, rc, action);
}

static const char *sqlite_lib_version(void)
{
	return sqlite3_libversion();
}

static int open_conn(struct sqlite_store *st, int readonly, int fsync_full, sqlite3 **out)
{
	int flags = SQLITE_OPEN_NOMUTEX |
		    (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	char pragmas[256];
	sqlite3 *db = NULL;
	struct stat sb;
	/* A new store is made able to shrink after a prune: auto_vacuum must be chosen
	 * before its first write (journal_mode=WAL writes the header).  An existing store
	 * keeps its mode (statehoused --vacuum changes it): setting it again would write. */
	bool fresh = !readonly && (stat(st->path, &sb) != 0 || sb.st_size == 0);
	int rc;

	rc = sqlite3_open_v2(st->path, &db, flags, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, 5000);
	/* A store that was only looked at, or refused, keeps its files as they were found:
	 * the write-ahead log is folded in only after a clean stop (sqlite_record_stop). */
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	snprintf(pragmas, sizeof(pragmas),
		 "%sPRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=OFF;",
		 fresh ? "PRAGMA auto_vacuum=INCREMENTAL; " : "", fsync_full ? "FULL" : "NORMAL");
	if (readonly)
		snprintf(pragmas, sizeof(pragmas), "PRAGMA query_only=1;");
	rc = sqlite3_exec(db, pragmas, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	*out = db;
	return 0;
fail:
	{
		char what[PATH_MAX + 32];
		int err;

		snprintf(what, sizeof(what), "open store '%s'", st->path);
		err = store_errno(db, rc, what);
		sqlite3_close(db);
		return err;
	}
}

static int prepare(struct sqlite_store *st, sqlite3 *db, const char *sql,
		   sqlite3_stmt **out)
{
	int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);

	if (rc != SQLITE_OK)
		return store_errno(db, rc, "prepare statement");
	return 0;
}

/* Read the schema version, refuse a damaged database, upgrade an older schema. */
static int check_schema(struct sqlite_store *st, bool full_check)
{
	int64_t t0;
	int64_t schema = 0;
	sqlite3_stmt *q = NULL;
	int rc, err;

	err = prepare(st, st->wdb, "SELECT value FROM meta WHERE name = 'schema'", &q);
	if (err)
		return err;
	if (sqlite3_step(q) == SQLITE_ROW)
		schema = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	/* A damaged log must not be served: check it before anything is derived from it.
	 * This reads the whole file; the caller leaves it out when nothing but a crash can
	 * have happened to the file since it was last checked (a crash damages only the
	 * write-ahead log's tail, whose frames SQLite checks by their checksums). */
	if (!full_check)
		goto upgrade;
	t0 = clock_now_ns(CLOCK_MONOTONIC);
	err = prepare(st, st->wdb, "PRAGMA quick_check", &q);
	if (err)
		return err;
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(q, 0), "ok") != 0) {
		log_err("cannot open store '%s': integrity check failed: %s", st->path,
			rc == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0)
					 : sqlite3_errmsg(st->wdb));
		sqlite3_finalize(q);
		return -EIO;
	}
	sqlite3_finalize(q);
	log_info("checked the whole log '%s' in %" PRId64 " ms", st->path,
		 (clock_now_ns(CLOCK_MONOTONIC) - t0) / 1000000);
upgrade:
	if (schema == 1 || schema == 2) {
		rc = sqlite3_exec(st->wdb, migrate_ops_sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			err = store_errno(st->wdb, rc, "upgrade the schema to version 3");
			sqlite3_exec(st->wdb, "ROLLBACK", NULL, NULL, NULL);
			return err;
		}
		log_info("store '%s': schema upgraded from version %lld to 3", st->path,
			 (long long)schema);
		schema = 3;
	}
	/* Schema 4 is schema 3 after its first prune (prune.c); both are served. */
	if (schema != 3 && schema != STORE_SCHEMA_VERSION) {
		log_err("cannot open store '%s': schema version %lld, this build reads 3 and %d",
			st->path, (long long)schema, STORE_SCHEMA_VERSION);
		return -EIO;
	}
	return 0;
}

/* The writer's statements, the reader connection and its statements. */
static int open_reader_and_statements(struct sqlite_store *st, int fsync_full)
{
	int err;

	err = prepare(st, st->wdb, "BEGIN IMMEDIATE", &st->begin);
	if (!err)
		err = prepare(st, st->wdb, "COMMIT", &st->commit);
	if (!err)
		err = prepare(st, st->wdb, "ROLLBACK", &st->rollback);
	if (!err)
		err = prepare(st, st->wdb,
			      "INSERT INTO events(commit_ts, txn, time_ns, note) VALUES (?1, ?2, ?3, ?4)",
			      &st->ins_event);
	if (!err)
		err = prepare(st, st->wdb,
			      "INSERT INTO ops(commit_ts, idx, ns, agent, key, op, version, value)"
			      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
			      &st->ins_op);
	if (!err)
		err = open_conn(st, 1, fsync_full, &st->rdb);
	if (!err)
		err = prepare(st, st->rdb, "SELECT coalesce(max(commit_ts), 0) FROM events",
			      &st->chk);
	if (!err)
		err = prepare(st, st->rdb,
			      "SELECT o.op, o.version, o.commit_ts, e.time_ns, length(o.value),"
			      " CASE WHEN ?5 THEN o.value END, e.txn"
			      " FROM ops o JOIN events e ON e.commit_ts = o.commit_ts"
			      " WHERE o.ns = ?1 AND o.agent = ?2 AND o.key = ?3 AND o.commit_ts <= ?4"
			      " AND o.op <> 3 ORDER BY o.commit_ts DESC LIMIT 1",
			      &st->get_at);
	if (!err)
		err = prepare(st, st->rdb,
			      "SELECT o.op, o.version, o.commit_ts, e.time_ns, length(o.value),"
			      " o.value, e.txn"
			      " FROM ops o JOIN events e ON e.commit_ts = o.commit_ts"
			      " WHERE o.ns = ?1 AND o.agent = ?2 AND o.key = ?3 AND o.version = ?4",
			      &st->get_version);
	if (!err)
		err = prepare(st, st->rdb,
			      "SELECT o.op, o.version, o.commit_ts, e.time_ns, length(o.value),"
			      " NULL, e.txn"
			      " FROM ops o JOIN events e ON e.commit_ts = o.commit_ts"
			      " WHERE o.ns = ?1 AND o.agent = ?2 AND o.key = ?3 AND o.op < 3"
			      " ORDER BY o.commit_ts",
			      &st->history);
	return err;
}

static void sqlite_close(struct store *base)
{
	struct sqlite_store *st = to_sqlite(base);

	sqlite3_finalize(st->begin);
	sqlite3_finalize(st->commit);
	sqlite3_finalize(st->rollback);
	sqlite3_finalize(st->ins_event);
	sqlite3_finalize(st->ins_op);
	store_sqlite_applied_free(st->applied);
	sqlite3_finalize(st->chk);
	sqlite3_finalize(st->get_at);
	sqlite3_finalize(st->get_version);
	sqlite3_finalize(st->history);
	if (st->rdb)
		sqlite3_close(st->rdb);
	if (st->wdb)
		sqlite3_close(st->wdb);
	pthread_mutex_destroy(&st->reader_lock);
	if (st->path && !st->had_wal)
		store_sqlite_drop_empty_wal(st->path);
	free(st->path);
	free(st);
}

/* The location is always "" (store_sqlite_ops.takes_location is false). */
static int sqlite_open(const char *location, const char *datadir,
		       const struct store_options *opt, struct store **out)
{
	struct sqlite_store *st;
	int rc, err;

	(void)location;
	*out = NULL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->base.ops = &store_sqlite_ops;
	pthread_mutex_init(&st->reader_lock, NULL);
	if (asprintf(&st->path, "%s/statehouse.db", datadir) < 0) {
		st->path = NULL;
		err = -ENOMEM;
		goto close_store;
	}
	{
		char wal[PATH_MAX + 8];
		struct stat sb;

		snprintf(wal, sizeof(wal), "%s-wal", st->path);
		st->had_wal = stat(wal, &sb) == 0;
		/* Before SQLite sees the file: it would create it, or write a schema into it. */
		if (opt->must_exist && (stat(st->path, &sb) != 0 || sb.st_size == 0)) {
			st->had_wal = true; /* nothing of SQLite's to tidy */
			err = -ENODATA;
			goto close_store;
		}
	}
	err = open_conn(st, 0, opt->fsync, &st->wdb);
	if (err)
		goto close_store;
	if (opt->must_exist) {
		sqlite3_stmt *q = NULL;

		/* A file without our tables (its write-ahead log lost before any checkpoint)
		 * is an empty log too: writing a schema into it would change it. */
		err = prepare(st, st->wdb,
			      "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'", &q);
		if (err)
			goto close_store;
		rc = sqlite3_step(q);
		sqlite3_finalize(q);
		if (rc != SQLITE_ROW) {
			err = rc == SQLITE_DONE ? -ENODATA : store_errno(st->wdb, rc, "read the schema");
			goto close_store;
		}
	}
	rc = sqlite3_exec(st->wdb, schema_sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		err = store_errno(st->wdb, rc, "create schema");
		goto close_store;
	}
	err = check_schema(st, !opt->skip_full_check);
	if (!err)
		err = open_reader_and_statements(st, opt->fsync);
	if (err)
		goto close_store;
	*out = &st->base;
	return 0;

close_store:
	sqlite_close(&st->base);
	return err;
}

/*
 * The path of a row into sb: "ns/agent/key" from the columns col, col + 1 and col + 2
 * of q, or "ns/agent" / "ns" for an attribute row, whose empty parts are not joined (a
 * column past the last one counts as empty).  0 or -ENOMEM; sb->buf is never NULL after
 * success.
 */
static int row_path(sqlite3_stmt *q, int col, struct strbuf *sb)
{
	int end = sqlite3_column_count(q);

	if (end > col + 3)
		end = col + 3;
	strbuf_setlen(sb, 0);
	if (strbuf_grow(sb, 0))
		return -ENOMEM;
	for (int c = col; c < end; c++) {
		const char *t = (const char *)sqlite3_column_text(q, c);
		size_t l = (size_t)sqlite3_column_bytes(q, c);

		if (c > col && (!t || !l))
			continue;
		if ((c > col && strbuf_addch(sb, '/')) || strbuf_add(sb, t ? t : "", l))
			return -ENOMEM;
	}
	return 0;
}

static int append_one(struct sqlite_store *st, const struct store_event *ev)
{
	sqlite3_stmt *s = st->ins_event;
	int rc;

	sqlite3_bind_int64(s, 1, ev->commit_ts);
	sqlite3_bind_text(s, 2, ev->txn, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, ev->time_ns);
	if (ev->note_len)
		sqlite3_bind_blob(s, 4, ev->note, (int)ev->note_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 4);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return store_errno(st->wdb, rc, "append event");

	s = st->ins_op;
	for (size_t i = 0; i < ev->n_ops; i++) {
		const struct store_op *op = &ev->ops[i];
		size_t ns_len, agent_off, agent_len, key_off;

		if (store_split_path(op->path, op->path_len, op->kind, &ns_len, &agent_off, &agent_len,
			       &key_off))
			BUG("malformed path '%.*s' reached the store", (int)op->path_len, op->path);
		sqlite3_bind_int64(s, 1, ev->commit_ts);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
		sqlite3_bind_text(s, 3, op->path, (int)ns_len, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, op->path + agent_off, (int)agent_len, SQLITE_STATIC);
		sqlite3_bind_text(s, 5, op->path + key_off, (int)(op->path_len - key_off),
				  SQLITE_STATIC);
		sqlite3_bind_int(s, 6, op->kind);
		sqlite3_bind_int64(s, 7, op->version);
		if (op->kind == STORE_PUT || op->kind == STORE_ATTR) /* the kinds with a value */
			sqlite3_bind_blob(s, 8, op->value_len ? op->value : "", (int)op->value_len,
					  SQLITE_STATIC);
		else
			sqlite3_bind_null(s, 8);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		if (rc != SQLITE_DONE)
			return store_errno(st->wdb, rc, "append operation");
	}
	return 0;
}

/* Run a statement without results (BEGIN, COMMIT, ROLLBACK) and reset it. */
static int run_stmt(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* BEGIN and COMMIT are prepared once: the text of each was parsed at every commit. */
static int sqlite_append(struct store *base, const struct store_event *events, size_t n)
{
	struct sqlite_store *st = to_sqlite(base);
	int rc, err;

	err = store_sqlite_applied_prepare(st->wdb, events, n, &st->applied);
	if (err)
		return err;
	rc = run_stmt(st->begin);
	if (rc != SQLITE_OK)
		return store_errno(st->wdb, rc, "begin store transaction");
	for (size_t i = 0; i < n; i++) {
		err = append_one(st, &events[i]);
		if (err)
			goto rollback;
	}
	/* The requests' records: durable with their commits or not at all. */
	err = store_sqlite_applied_write(st->wdb, st->applied, events, n);
	if (err)
		goto rollback;
	rc = run_stmt(st->commit);
	if (rc != SQLITE_OK) {
		err = store_errno(st->wdb, rc, "commit store transaction");
		goto rollback;
	}
	return 0;

rollback:
	/* SQLite may already have rolled back by itself (e.g. after SQLITE_FULL). */
	if (!sqlite3_get_autocommit(st->wdb))
		run_stmt(st->rollback);
	return err;
}

static int sqlite_applied_claim(struct store *base, uint64_t instance)
{
	return store_sqlite_applied_claim(to_sqlite(base)->wdb, instance);
}

static int sqlite_applied_find(struct store *base, const struct store_reqid *id,
			       struct store_applied *out)
{
	struct sqlite_store *st = to_sqlite(base);
	int err;

	pthread_mutex_lock(&st->reader_lock);
	err = store_sqlite_applied_find(st->rdb, id, out);
	pthread_mutex_unlock(&st->reader_lock);
	return err;
}

static int sqlite_replay(struct store *base, int64_t after_ts, store_replay_fn fn,
			 void *arg, struct store_replay_stats *stats)
{
	struct sqlite_store *st = to_sqlite(base);
	sqlite3_stmt *q = NULL;
	struct strbuf path = STRBUF_INIT;
	int rc, err = 0;

	memset(stats, 0, sizeof(*stats));
	err = prepare(st, st->wdb,
		      "SELECT (SELECT count(*) FROM events WHERE commit_ts > ?1),"
		      " coalesce((SELECT max(commit_ts) FROM events), 0)",
		      &q);
	if (err)
		return err;
	sqlite3_bind_int64(q, 1, after_ts);
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW) {
		err = store_errno(st->wdb, rc, "count events");
		sqlite3_finalize(q);
		return err;
	}
	stats->events = (uint64_t)sqlite3_column_int64(q, 0);
	stats->head_ts = sqlite3_column_int64(q, 1);
	sqlite3_finalize(q);
	/* What pruned operations left comes before what is kept of the log. */
	err = store_sqlite_replay_pruned(st->wdb, after_ts, fn, arg);
	if (err)
		return err;

	err = prepare(st, st->wdb,
		      "SELECT o.commit_ts, e.time_ns, o.ns, o.agent, o.key, o.op, o.version, o.value"
		      " FROM ops o JOIN events e ON e.commit_ts = o.commit_ts"
		      " WHERE o.commit_ts > ?1 ORDER BY o.commit_ts, o.idx",
		      &q);
	if (err)
		return err;
	sqlite3_bind_int64(q, 1, after_ts);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct store_replay_op op;

		err = row_path(q, 2, &path);
		if (err)
			break;
		op.path_len = path.len;
		op.commit_ts = sqlite3_column_int64(q, 0);
		op.time_ns = sqlite3_column_int64(q, 1);
		op.path = path.buf;
		op.kind = (enum store_op_kind)sqlite3_column_int(q, 5);
		op.version = sqlite3_column_int64(q, 6);
		op.value = sqlite3_column_blob(q, 7);
		op.value_len = (size_t)sqlite3_column_bytes(q, 7);
		stats->ops++;
		err = fn(arg, &op);
		if (err)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_errno(st->wdb, rc, "replay the log");
	sqlite3_finalize(q);
	strbuf_release(&path);
	if (!err && stats->head_ts > 0) {
		if (prepare(st, st->wdb, "SELECT time_ns FROM events WHERE commit_ts = ?1", &q) == 0) {
			sqlite3_bind_int64(q, 1, stats->head_ts);
			if (sqlite3_step(q) == SQLITE_ROW)
				stats->head_time_ns = sqlite3_column_int64(q, 0);
			sqlite3_finalize(q);
		}
	}
	return err;
}

static int sqlite_check(struct store *base, int64_t *head_ts)
{
	struct sqlite_store *st = to_sqlite(base);
	int rc, err;

	pthread_mutex_lock(&st->reader_lock);
	rc = sqlite3_step(st->chk);
	if (rc == SQLITE_ROW) {
		*head_ts = sqlite3_column_int64(st->chk, 0);
		err = 0;
	} else {
		err = store_errno(st->rdb, rc, "check the store");
		err = -EIO;
	}
	sqlite3_reset(st->chk);
	pthread_mutex_unlock(&st->reader_lock);
	return err;
}

/* ---- the past ------------------------------------------------------------------------- */

/* Bind ns, agent and key of "ns/agent/key" to parameters 1..3. */
static int bind_key(sqlite3_stmt *s, const char *path, size_t len)
{
	size_t ns_len, agent_off, agent_len, key_off;

	if (store_split_path(path, len, STORE_PUT, &ns_len, &agent_off, &agent_len, &key_off))
		return -EINVAL;
	sqlite3_bind_text(s, 1, path, (int)ns_len, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, path + agent_off, (int)agent_len, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 3, path + key_off, (int)(len - key_off), SQLITE_TRANSIENT);
	return 0;
}

/* Columns: op, version, commit_ts, time_ns, size, value, txn. */
static int row_version(sqlite3_stmt *q, struct store_version *v, int copy)
{
	const void *val = sqlite3_column_blob(q, 5);
	size_t vlen = (size_t)sqlite3_column_bytes(q, 5);
	const char *txn = (const char *)sqlite3_column_text(q, 6);

	v->kind = (enum store_op_kind)sqlite3_column_int(q, 0);
	v->version = sqlite3_column_int64(q, 1);
	v->commit_ts = sqlite3_column_int64(q, 2);
	v->time_ns = sqlite3_column_int64(q, 3);
	v->size = (size_t)sqlite3_column_int64(q, 4);
	if (!copy) {
		v->value = (void *)val;
		v->txn = (char *)txn;
		return 0;
	}
	v->txn = txn ? strdup(txn) : NULL;
	if (val || sqlite3_column_type(q, 5) == SQLITE_BLOB) {
		v->value = malloc(vlen + 1);
		if (v->value) {
			if (vlen) /* an empty blob comes back as NULL */
				memcpy(v->value, val, vlen);
			((char *)v->value)[vlen] = '\0';
		}
	}
	if ((txn && !v->txn) || ((val || sqlite3_column_type(q, 5) == SQLITE_BLOB) && !v->value))
		return -ENOMEM;
	return 0;
}

static int get_one(struct sqlite_store *st, sqlite3_stmt *q, const char *path, size_t len,
		   struct store_version *out)
{
	int rc, err;

	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		err = row_version(q, out, 1);
		if (!err) {
			out->path = strndup(path, len);
			out->path_len = len;
			if (!out->path)
				err = -ENOMEM;
		}
		if (err)
			store_version_release(out);
	} else if (rc == SQLITE_DONE) {
		err = -ENOENT;
	} else {
		err = store_errno(st->rdb, rc, "read the past");
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return err;
}

/* One row of a per-key statement: ns, agent, key, then ?4 = arg4 and ?5 = arg5. */
static int get_key_row(struct sqlite_store *st, sqlite3_stmt *q, const char *path,
		       size_t len, int64_t arg4, int arg5, struct store_version *out)
{
	int err;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&st->reader_lock);
	err = bind_key(q, path, len);
	if (!err) {
		sqlite3_bind_int64(q, 4, arg4);
		if (sqlite3_bind_parameter_count(q) >= 5)
			sqlite3_bind_int(q, 5, arg5);
		err = get_one(st, q, path, len, out);
	}
	pthread_mutex_unlock(&st->reader_lock);
	return err;
}

static int sqlite_get_at(struct store *base, const char *path, size_t len, int64_t ts,
			 int with_value, struct store_version *out)
{
	struct sqlite_store *st = to_sqlite(base);
	return get_key_row(st, st->get_at, path, len, ts, with_value ? 1 : 0, out);
}

static int sqlite_get_version(struct store *base, const char *path, size_t len,
			      int64_t version, struct store_version *out)
{
	struct sqlite_store *st = to_sqlite(base);
	return get_key_row(st, st->get_version, path, len, version, 0, out);
}

/* Step q, handing each row to fn with the path built from columns (ns, agent, key) at
 * path_col.. (or no path when path_col < 0). */
static int walk_rows(struct sqlite_store *st, sqlite3_stmt *q, int path_col,
		     int version_cols, store_version_fn fn, void *arg)
{
	struct strbuf path = STRBUF_INIT;
	int rc, err = 0;

	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct store_version v = { 0 };

		if (version_cols)
			row_version(q, &v, 0);
		if (path_col >= 0) {
			err = row_path(q, path_col, &path);
			if (err)
				break;
			v.path = path.buf;
			v.path_len = path.len;
		}
		err = fn(arg, &v);
		if (err)
			break;
	}
	if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW)
		err = store_errno(st->rdb, rc, "read the past");
	strbuf_release(&path);
	return err;
}

static int sqlite_history(struct store *base, const char *path, size_t len,
			  store_version_fn fn, void *arg)
{
	struct sqlite_store *st = to_sqlite(base);
	int err;

	pthread_mutex_lock(&st->reader_lock);
	err = bind_key(st->history, path, len);
	if (!err)
		err = walk_rows(st, st->history, -1, 1, fn, arg);
	sqlite3_reset(st->history);
	sqlite3_clear_bindings(st->history);
	pthread_mutex_unlock(&st->reader_lock);
	return err;
}

static int sqlite_owner_records(struct store *base, const char *ns, size_t nslen,
				const char *agent, size_t alen, store_version_fn fn, void *arg)
{
	struct sqlite_store *st = to_sqlite(base);
	sqlite3_stmt *q = NULL;
	int err;

	pthread_mutex_lock(&st->reader_lock);
	err = prepare(st, st->rdb,
		      "SELECT o.op, o.version, o.commit_ts, e.time_ns, length(o.value), o.value,"
		      " NULL, o.ns, o.agent, o.key"
		      " FROM ops o"
		      " JOIN events e ON e.commit_ts = o.commit_ts"
		      " WHERE o.op = 3 AND o.ns = ?1 AND o.agent IN ('', ?2)"
		      " ORDER BY o.commit_ts, o.idx",
		      &q);
	if (!err) {
		sqlite3_bind_text(q, 1, ns, (int)nslen, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, agent, (int)alen, SQLITE_STATIC);
		err = walk_rows(st, q, 7, 1, fn, arg);
	}
	sqlite3_finalize(q);
	pthread_mutex_unlock(&st->reader_lock);
	return err;
}

static int sqlite_list_at(struct store *base, const char *prefix, size_t plen, int64_t ts,
			  store_version_fn fn, void *arg)
{
	struct sqlite_store *st = to_sqlite(base);
	const char *part[3];
	size_t lens[3];
	int n = store_split_prefix(prefix, plen, part, lens);
	char sql[1024];
	sqlite3_stmt *q = NULL;
	char *lo = NULL, *hi = NULL;
	int err;

	snprintf(sql, sizeof(sql),
		 "SELECT o.op, o.version, o.commit_ts, e.time_ns, length(o.value), NULL, NULL,"
		 " o.ns, o.agent, o.key"
		 " FROM ops o JOIN events e ON e.commit_ts = o.commit_ts"
		 " WHERE o.commit_ts <= ?1 AND o.op IN (1, 4) %s %s %s"
		 " AND NOT EXISTS (SELECT 1 FROM ops p WHERE p.ns = o.ns AND p.agent = o.agent"
		 "   AND p.key = o.key AND p.commit_ts > o.commit_ts AND p.commit_ts <= ?1"
		 "   AND p.op <> 3)"
		 " ORDER BY o.ns, o.agent, o.key",
		 n >= 1 ? "AND o.ns = ?2" : "", n >= 2 ? "AND o.agent = ?3" : "",
		 n >= 3 ? "AND o.key >= ?4 AND o.key < ?5" : "");
	pthread_mutex_lock(&st->reader_lock);
	err = prepare(st, st->rdb, sql, &q);
	if (err)
		goto unlock;
	sqlite3_bind_int64(q, 1, ts);
	if (n >= 1)
		sqlite3_bind_text(q, 2, part[0], (int)lens[0], SQLITE_STATIC);
	if (n >= 2)
		sqlite3_bind_text(q, 3, part[1], (int)lens[1], SQLITE_STATIC);
	if (n >= 3) {
		/* Keys below "dir": from "dir/" up to (not including) "dir0" ('0' follows '/'). */
		lo = malloc(lens[2] + 2);
		hi = malloc(lens[2] + 2);
		if (!lo || !hi) {
			err = -ENOMEM;
			goto unlock;
		}
		memcpy(lo, part[2], lens[2]);
		memcpy(hi, part[2], lens[2]);
		lo[lens[2]] = '/';
		hi[lens[2]] = '0';
		sqlite3_bind_text(q, 4, lo, (int)lens[2] + 1, SQLITE_STATIC);
		sqlite3_bind_text(q, 5, hi, (int)lens[2] + 1, SQLITE_STATIC);
	}
	err = walk_rows(st, q, 7, 1, fn, arg);
unlock:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&st->reader_lock);
	free(lo);
	free(hi);
	return err;
}

static int sqlite_names(struct store *base, const char *prefix, size_t plen,
			store_version_fn fn, void *arg)
{
	struct sqlite_store *st = to_sqlite(base);
	const char *part[3];
	size_t lens[3];
	int n = store_split_prefix(prefix, plen, part, lens);
	sqlite3_stmt *q = NULL;
	const char *sql;
	int err;

	if (n > 2)
		return -EINVAL;
	/* Attribute and directory rows (ops 3 to 5) name directories, not keys. */
	sql = n == 0 ? "SELECT DISTINCT ns FROM ops WHERE op < 3 ORDER BY 1"
	      : n == 1 ? "SELECT DISTINCT agent FROM ops WHERE ns = ?1 AND op < 3 ORDER BY 1"
		       : "SELECT DISTINCT key FROM ops WHERE ns = ?1 AND agent = ?2 AND op < 3"
			 " ORDER BY 1";
	pthread_mutex_lock(&st->reader_lock);
	err = prepare(st, st->rdb, sql, &q);
	if (!err) {
		if (n >= 1)
			sqlite3_bind_text(q, 1, part[0], (int)lens[0], SQLITE_STATIC);
		if (n >= 2)
			sqlite3_bind_text(q, 2, part[1], (int)lens[1], SQLITE_STATIC);
		err = walk_rows(st, q, 0, 0, fn, arg);
	}
	sqlite3_finalize(q);
	pthread_mutex_unlock(&st->reader_lock);
	return err;
}

/* Build events from rows (commit_ts, txn, time_ns, note, ns, agent, key, op, version,
 * value) ordered by commit_ts and idx; ns is NULL for an event without operations.
 * The accumulator owns the paths and values of ops[] and txn and note. */
struct ev_acc {
	struct store_event ev;
	struct store_op *ops;
	size_t n, cap;
	struct strbuf path; /* the next op's path, detached into ops[] */
	char *txn;
	void *note;
	int open;
};

static void ev_acc_reset(struct ev_acc *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free((void *)a->ops[i].path);
		free((void *)a->ops[i].value);
	}
	a->n = 0;
	free(a->txn);
	free(a->note);
	a->txn = NULL;
	a->note = NULL;
	a->open = 0;
}

static int ev_acc_flush(struct ev_acc *a, store_event_fn fn, void *arg)
{
	int err = 0;

	if (a->open) {
		a->ev.ops = a->ops;
		a->ev.n_ops = a->n;
		a->ev.txn = a->txn;
		a->ev.note = a->note;
		err = fn(arg, &a->ev);
	}
	ev_acc_reset(a);
	return err;
}

/* Start the event of the current row. */
static int ev_acc_begin(struct ev_acc *a, sqlite3_stmt *q, int64_t ts)
{
	const char *txn = (const char *)sqlite3_column_text(q, 1);
	const void *note = sqlite3_column_blob(q, 3);
	size_t note_len = (size_t)sqlite3_column_bytes(q, 3);

	a->open = 1;
	a->ev.commit_ts = ts;
	a->ev.time_ns = sqlite3_column_int64(q, 2);
	a->txn = strdup(txn ? txn : "");
	a->note = malloc(note_len + 1);
	if (!a->txn || !a->note)
		return -ENOMEM;
	if (note_len)
		memcpy(a->note, note, note_len);
	a->ev.note_len = note_len;
	return 0;
}

/* Add the operation of the current row, copying its path and value. */
static int ev_acc_add_op(struct ev_acc *a, sqlite3_stmt *q)
{
	const void *val = sqlite3_column_blob(q, 9);
	size_t vl = (size_t)sqlite3_column_bytes(q, 9);
	char *path, *vcopy = NULL;
	size_t plen;

	if (ARRAY_GROW(a->ops, a->n + 1, a->cap) || row_path(q, 4, &a->path))
		return -ENOMEM;
	if (sqlite3_column_type(q, 9) != SQLITE_NULL) {
		vcopy = malloc(vl + 1);
		if (!vcopy)
			return -ENOMEM;
		if (vl)
			memcpy(vcopy, val, vl);
	}
	path = strbuf_detach(&a->path, &plen);
	if (!path) {
		free(vcopy);
		return -ENOMEM;
	}
	a->ops[a->n++] = (struct store_op){
		.path = path,
		.path_len = plen,
		.kind = (enum store_op_kind)sqlite3_column_int(q, 7),
		.version = sqlite3_column_int64(q, 8),
		.value = vcopy,
		.value_len = vl,
	};
	return 0;
}

static int sqlite_events(struct store *base, int64_t from_ts, int64_t to_ts,
			 const char *filter, size_t filter_len, store_event_fn fn,
			 void *arg)
{
	struct sqlite_store *st = to_sqlite(base);
	const char *part[3];
	size_t lens[3];
	int n = filter ? store_split_prefix(filter, filter_len, part, lens) : 0;
	struct ev_acc a = { .path = STRBUF_INIT };
	sqlite3_stmt *q = NULL;
	int rc, err;

	if (n != 0 && n != 2)
		return -EINVAL;
	pthread_mutex_lock(&st->reader_lock);
	err = prepare(st, st->rdb,
		      n == 0 ? "SELECT e.commit_ts, e.txn, e.time_ns, e.note,"
			       " o.ns, o.agent, o.key, o.op, o.version, o.value"
			       " FROM events e LEFT JOIN ops o ON o.commit_ts = e.commit_ts"
			       " WHERE e.commit_ts BETWEEN ?1 AND ?2 ORDER BY e.commit_ts, o.idx"
			     : "SELECT e.commit_ts, e.txn, e.time_ns, e.note,"
			       " o.ns, o.agent, o.key, o.op, o.version, o.value"
			       " FROM ops o INDEXED BY ops_by_agent_ts"
			       " JOIN events e ON e.commit_ts = o.commit_ts"
			       " WHERE o.ns = ?3 AND o.agent = ?4 AND o.commit_ts BETWEEN ?1 AND ?2"
			       " ORDER BY o.commit_ts, o.idx",
		      &q);
	if (err)
		goto unlock;
	sqlite3_bind_int64(q, 1, from_ts);
	sqlite3_bind_int64(q, 2, to_ts);
	if (n == 2) {
		sqlite3_bind_text(q, 3, part[0], (int)lens[0], SQLITE_STATIC);
		sqlite3_bind_text(q, 4, part[1], (int)lens[1], SQLITE_STATIC);
	}
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t ts = sqlite3_column_int64(q, 0);

		if (a.open && a.ev.commit_ts != ts)
			err = ev_acc_flush(&a, fn, arg);
		if (!err && !a.open)
			err = ev_acc_begin(&a, q, ts);
		if (!err && sqlite3_column_type(q, 4) != SQLITE_NULL)
			err = ev_acc_add_op(&a, q);
		if (err)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_errno(st->rdb, rc, "read the event log");
	if (!err)
		err = ev_acc_flush(&a, fn, arg);
	ev_acc_reset(&a);
	free(a.ops);
	strbuf_release(&a.path);
unlock:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&st->reader_lock);
	return err;
}

/* ---- starts (sqlite_starts.c) ------------------------------------------------------ */

static int sqlite_record_start(struct store *base, const struct store_start *start,
			       int *clean_prev)
{
	return store_sqlite_record_start(to_sqlite(base)->wdb, start, clean_prev);
}

static int sqlite_record_stop(struct store *base)
{
	return store_sqlite_record_stop(to_sqlite(base)->wdb);
}

static int sqlite_record_recovery(struct store *base, const struct store_recovery *r)
{
	return store_sqlite_record_recovery(to_sqlite(base)->wdb, r);
}

static int sqlite_starts(struct store *base, uint64_t *count, uint64_t *unclean)
{
	struct sqlite_store *st = to_sqlite(base);
	int err;

	pthread_mutex_lock(&st->reader_lock);
	err = store_sqlite_starts(st->rdb, count, unclean);
	pthread_mutex_unlock(&st->reader_lock);
	return err;
}

static void sqlite_file_sizes(struct store *base, uint64_t *db, uint64_t *wal)
{
	struct sqlite_store *st = to_sqlite(base);
	char path[PATH_MAX + 8];
	struct stat sb;

	*db = stat(st->path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	snprintf(path, sizeof(path), "%s-wal", st->path);
	*wal = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static int sqlite_horizon(struct store *base, int64_t *out)
{
	return store_sqlite_read_horizon(to_sqlite(base)->wdb, out);
}

const struct store_ops store_sqlite_ops = {
	.scheme = "sqlite",
	.takes_location = false,
	.open = sqlite_open,
	.close = sqlite_close,
	.append = sqlite_append,
	.applied_claim = sqlite_applied_claim,
	.applied_find = sqlite_applied_find,
	.replay = sqlite_replay,
	.check = sqlite_check,
	.get_at = sqlite_get_at,
	.owner_records = sqlite_owner_records,
	.get_version = sqlite_get_version,
	.list_at = sqlite_list_at,
	.history = sqlite_history,
	.names = sqlite_names,
	.events = sqlite_events,
	.record_start = sqlite_record_start,
	.record_stop = sqlite_record_stop,
	.record_recovery = sqlite_record_recovery,
	.starts = sqlite_starts,
	.file_sizes = sqlite_file_sizes,
	.file_state = store_sqlite_file_state,
	.sync_files = store_sqlite_sync_files,
	.horizon = sqlite_horizon,
	.pruner_open = store_sqlite_pruner_open,
	.pruner_close = store_sqlite_pruner_close,
	.prune_step = store_sqlite_prune_step,
	.vacuum_step = store_sqlite_vacuum_step,
	.checkpoint = store_sqlite_checkpoint,
	.vacuum = store_sqlite_vacuum,
	.lib_version = sqlite_lib_version,
};
