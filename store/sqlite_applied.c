/* SPDX-License-Identifier: MIT */
/*
 * sqlite_applied.c - the SQLite backend's applied-request records (store layer): the
 * table `applied`, one row per commit made by an identified request of the file system,
 * written in the append's own transaction, bounded and looked up (store.h says why).
 *
 * The table is made by the first claim of a serving process with an instance (or by the
 * first append of a record, should that claim have failed), not by every open: older
 * builds ignore it, as they ignore `recoveries`, so it needs no new schema version, and
 * an open that only looks (--verify) writes nothing.
 *
 *   applied(instance, request, commit_ts)  PRIMARY KEY (instance, request)
 *   applied_by_ts ON applied(commit_ts)    the trim is a range, not a scan
 *
 * instance and request are the 64-bit ids stored as SQLite's signed integers (the same
 * bits); request is the kernel's unique without bit 63.
 */
#include "store_i.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define REQUEST_MASK (~(UINT64_C(1) << 63)) /* a resent request carries bit 63 */

static const char applied_sql[] =
	"CREATE TABLE IF NOT EXISTS applied("
	"  instance INTEGER NOT NULL,"
	"  request INTEGER NOT NULL,"
	"  commit_ts INTEGER NOT NULL,"
	"  PRIMARY KEY (instance, request)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS applied_by_ts ON applied(commit_ts);";

struct store_sqlite_applied {
	sqlite3_stmt *ins, *trim;
	int64_t next_trim_ts; /* the first append whose newest commit reaches it trims */
};

static int has_table(sqlite3 *db, bool *yes)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table'"
				    " AND name = 'applied'", -1, &q, NULL);

	*yes = false;
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(q);
		*yes = rc == SQLITE_ROW;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE
		       ? 0
		       : store_sqlite_errno(db, rc, "read the schema");
}

/* One transaction of its own: make the table (when make) and remove the rows of every
 * instance but keep (0: all of them). */
static int claim_txn(sqlite3 *wdb, bool make, uint64_t keep)
{
	sqlite3_stmt *del = NULL;
	int rc;

	rc = sqlite3_exec(wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK && make)
		rc = sqlite3_exec(wdb, applied_sql, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(wdb, "DELETE FROM applied WHERE instance <> ?1", -1, &del,
					NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(del, 1, (sqlite3_int64)keep);
		rc = sqlite3_step(del);
		if (rc == SQLITE_DONE)
			rc = sqlite3_exec(wdb, "COMMIT", NULL, NULL, NULL);
	}
	/* The error first: the finalize and the rollback reset the connection's message. */
	if (rc != SQLITE_OK && rc != SQLITE_DONE) {
		int err = store_sqlite_errno(wdb, rc, "record the requests of this mount");

		sqlite3_finalize(del);
		if (!sqlite3_get_autocommit(wdb))
			sqlite3_exec(wdb, "ROLLBACK", NULL, NULL, NULL);
		return err;
	}
	sqlite3_finalize(del);
	return 0;
}

int store_sqlite_applied_claim(sqlite3 *wdb, uint64_t instance)
{
	bool exists;
	int err = has_table(wdb, &exists);

	if (err || (!exists && !instance))
		return err;
	return claim_txn(wdb, !exists, instance);
}

/* The statements of the appends, once the table exists (made here if it does not: its
 * claim failed, e.g. on a full disk). */
static int applied_open(sqlite3 *wdb, uint64_t instance, struct store_sqlite_applied **out)
{
	struct store_sqlite_applied *a;
	bool exists;
	int rc, err = has_table(wdb, &exists);

	if (!err && !exists)
		err = claim_txn(wdb, true, instance);
	if (err)
		return err;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	rc = sqlite3_prepare_v3(wdb,
				"INSERT OR REPLACE INTO applied(instance, request, commit_ts)"
				" VALUES (?1, ?2, ?3)",
				-1, SQLITE_PREPARE_PERSISTENT, &a->ins, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(wdb, "DELETE FROM applied WHERE commit_ts <= ?1", -1,
					SQLITE_PREPARE_PERSISTENT, &a->trim, NULL);
	if (rc != SQLITE_OK) {
		err = store_sqlite_errno(wdb, rc, "prepare statement");
		store_sqlite_applied_free(a);
		return err;
	}
	*out = a;
	return 0;
}

void store_sqlite_applied_free(struct store_sqlite_applied *a)
{
	if (!a)
		return;
	sqlite3_finalize(a->ins);
	sqlite3_finalize(a->trim);
	free(a);
}

int store_sqlite_applied_prepare(sqlite3 *wdb, const struct store_event *events, size_t n,
				 struct store_sqlite_applied **a)
{
	for (size_t i = 0; i < n && !*a; i++) {
		if (events[i].req.instance)
			return applied_open(wdb, events[i].req.instance, a);
	}
	return 0;
}

static int step_reset(sqlite3 *wdb, sqlite3_stmt *s, const char *action)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : store_sqlite_errno(wdb, rc, action);
}

int store_sqlite_applied_write(sqlite3 *wdb, struct store_sqlite_applied *a,
			       const struct store_event *events, size_t n)
{
	bool any = false;
	int err;

	for (size_t i = 0; i < n; i++) {
		const struct store_event *ev = &events[i];

		if (!ev->req.instance)
			continue;
		if (!a)
			BUG("an applied-request record without its statements");
		sqlite3_bind_int64(a->ins, 1, (sqlite3_int64)ev->req.instance);
		sqlite3_bind_int64(a->ins, 2, (sqlite3_int64)(ev->req.unique & REQUEST_MASK));
		sqlite3_bind_int64(a->ins, 3, ev->commit_ts);
		err = step_reset(wdb, a->ins, "record an applied request");
		if (err)
			return err;
		any = true;
	}
	if (!any || events[n - 1].commit_ts < a->next_trim_ts)
		return 0;
	/* The bound (store.h): what is this far behind the head can no longer be resent.
	 * A rolled back append leaves the rows to the next trim. */
	sqlite3_bind_int64(a->trim, 1, events[n - 1].commit_ts - STORE_APPLIED_KEEP);
	err = step_reset(wdb, a->trim, "trim the applied requests");
	if (!err)
		a->next_trim_ts = events[n - 1].commit_ts + STORE_APPLIED_TRIM_EVERY;
	return err;
}

int store_sqlite_applied_find(sqlite3 *rdb, const struct store_reqid *id,
			      struct store_applied *out)
{
	sqlite3_stmt *q = NULL;
	bool exists;
	int rc, err;

	memset(out, 0, sizeof(*out));
	err = has_table(rdb, &exists);
	if (err || !exists)
		return err ? err : -ENOENT;
	rc = sqlite3_prepare_v2(rdb,
				"SELECT a.commit_ts, e.time_ns, e.txn FROM applied a"
				" LEFT JOIN events e ON e.commit_ts = a.commit_ts"
				" WHERE a.instance = ?1 AND a.request = ?2",
				-1, &q, NULL);
	if (rc != SQLITE_OK)
		return store_sqlite_errno(rdb, rc, "prepare statement");
	sqlite3_bind_int64(q, 1, (sqlite3_int64)id->instance);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)(id->unique & REQUEST_MASK));
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		const char *txn = (const char *)sqlite3_column_text(q, 2);

		out->commit_ts = sqlite3_column_int64(q, 0);
		out->time_ns = sqlite3_column_int64(q, 1);
		if (txn && !(out->txn = strdup(txn)))
			err = -ENOMEM;
	} else if (rc == SQLITE_DONE) {
		err = -ENOENT;
	} else {
		err = store_sqlite_errno(rdb, rc, "read the applied requests");
	}
	sqlite3_finalize(q);
	return err;
}
