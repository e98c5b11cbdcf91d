/* SPDX-License-Identifier: MIT */
/*
 * sqlite_starts.c - the SQLite backend's record of the daemon's starts, clean stops and
 * rebuilds from a snapshot (store layer): the starts and recoveries tables and the
 * 'running' mark in meta, which tell a start after a crash from one after a clean stop.
 */
#include "store_i.h"

#include <sqlite3.h>

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, out, NULL);

	return rc == SQLITE_OK ? 0 : store_sqlite_errno(db, rc, "prepare statement");
}

/* One row per log rebuilt from a snapshot (statehoused --recover-from-snapshot): commits
 * after new_head up to acknowledged were lost.  Made by the first such rebuild, so an
 * open of any other log writes nothing; older builds ignore it. */
static const char recoveries_sql[] =
	"CREATE TABLE IF NOT EXISTS recoveries("
	"  id INTEGER PRIMARY KEY,"
	"  time_ns INTEGER NOT NULL,"
	"  log_head INTEGER NOT NULL,"
	"  snapshot_ts INTEGER NOT NULL,"
	"  acknowledged INTEGER NOT NULL,"
	"  new_head INTEGER NOT NULL);";

int store_sqlite_record_start(sqlite3 *wdb, const struct store_start *start, int *clean_prev)
{
	sqlite3_stmt *q = NULL;
	int rc, err, running = 0;

	*clean_prev = 1;
	err = prepare(wdb, "SELECT value FROM meta WHERE name = 'running'", &q);
	if (err)
		return err;
	if (sqlite3_step(q) == SQLITE_ROW)
		running = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	*clean_prev = !running;
	err = prepare(wdb,
		      "INSERT INTO starts(time_ns, clean_prev, recovery_ns, snapshot_ts,"
		      " events_replayed, head_ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
		      &q);
	if (err)
		return err;
	rc = sqlite3_exec(wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, start->time_ns);
		sqlite3_bind_int(q, 2, *clean_prev);
		sqlite3_bind_int64(q, 3, start->recovery_ns);
		sqlite3_bind_int64(q, 4, start->snapshot_ts);
		sqlite3_bind_int64(q, 5, (sqlite3_int64)start->events_replayed);
		sqlite3_bind_int64(q, 6, start->head_ts);
		rc = sqlite3_step(q);
		if (rc == SQLITE_DONE)
			rc = sqlite3_exec(wdb,
					  "INSERT OR REPLACE INTO meta(name, value) VALUES ('running', 1);"
					  "COMMIT", NULL, NULL, NULL);
	}
	/* The error first: the finalize and the rollback reset the connection's message. */
	err = rc != SQLITE_OK && rc != SQLITE_DONE ? store_sqlite_errno(wdb, rc, "record the start")
						   : 0;
	sqlite3_finalize(q);
	if (err && !sqlite3_get_autocommit(wdb))
		sqlite3_exec(wdb, "ROLLBACK", NULL, NULL, NULL);
	return err;
}

int store_sqlite_record_stop(sqlite3 *wdb)
{
	int rc = sqlite3_exec(wdb,
			      "INSERT OR REPLACE INTO meta(name, value) VALUES ('running', 0)",
			      NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return store_sqlite_errno(wdb, rc, "record a clean stop");
	/* Stopped cleanly: the close may fold the write-ahead log in and remove it. */
	sqlite3_db_config(wdb, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
	return 0;
}

int store_sqlite_record_recovery(sqlite3 *wdb, const struct store_recovery *r)
{
	sqlite3_stmt *q = NULL;
	int rc, err;

	rc = sqlite3_exec(wdb, recoveries_sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_sqlite_errno(wdb, rc, "create the recoveries table");
	err = prepare(wdb,
		      "INSERT INTO recoveries(time_ns, log_head, snapshot_ts, acknowledged, new_head)"
		      " VALUES (?1, ?2, ?3, ?4, ?5)",
		      &q);
	if (err)
		return err;
	sqlite3_bind_int64(q, 1, r->time_ns);
	sqlite3_bind_int64(q, 2, r->log_head);
	sqlite3_bind_int64(q, 3, r->snapshot_ts);
	sqlite3_bind_int64(q, 4, r->acknowledged);
	sqlite3_bind_int64(q, 5, r->new_head);
	rc = sqlite3_step(q);
	err = rc == SQLITE_DONE ? 0 : store_sqlite_errno(wdb, rc, "record the recovery");
	sqlite3_finalize(q);
	return err;
}

int store_sqlite_starts(sqlite3 *rdb, uint64_t *count, uint64_t *unclean)
{
	sqlite3_stmt *q = NULL;
	int err;

	*count = *unclean = 0;
	err = prepare(rdb, "SELECT count(*), total(clean_prev = 0) FROM starts", &q);
	if (!err && sqlite3_step(q) == SQLITE_ROW) {
		*count = (uint64_t)sqlite3_column_int64(q, 0);
		*unclean = (uint64_t)sqlite3_column_int64(q, 1);
	}
	sqlite3_finalize(q);
	return err;
}
