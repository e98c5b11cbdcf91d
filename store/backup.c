/* SPDX-License-Identifier: MIT */
/*
 * backup.c - a consistent copy of a live SQLite store, made with SQLite's online backup
 * API while the daemon keeps committing (store layer).
 *
 * The copy is read in one read transaction of a connection of its own, so it holds
 * exactly the commits up to one commit_ts (WAL: writers go on meanwhile).  It is marked
 * as stopped cleanly, so a daemon started on it recovers without an "unclean" warning:
 * it is a whole log, and a start replays it.
 */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

/* Log what failed; the errno for rc (or the connection's last error when rc is 0). */
static int backup_fail(sqlite3 *db, int rc, const char *what, const char *path)
{
	int code = rc ? rc : db ? sqlite3_extended_errcode(db) : SQLITE_NOMEM;
	int err = (code & 0xff) == SQLITE_FULL ? -ENOSPC
		  : (code & 0xff) == SQLITE_CANTOPEN ? -EACCES
		  : (code & 0xff) == SQLITE_NOMEM ? -ENOMEM : -EIO;

	log_err("cannot %s '%s': %s", what, path, rc ? sqlite3_errstr(rc) : db ? sqlite3_errmsg(db)
										   : "out of memory");
	return err;
}

int store_backup(const char *datadir, const char *dest, int64_t *head_ts)
{
	char src_path[PATH_MAX];
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b;
	sqlite3_stmt *q = NULL;
	int rc, err = 0;

	*head_ts = 0;
	if (snprintf(src_path, sizeof(src_path), "%s/statehouse.db", datadir) >=
	    (int)sizeof(src_path))
		return -ENAMETOOLONG;
	rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		err = backup_fail(src, rc, "open the store for a backup", src_path);
		goto out;
	}
	rc = sqlite3_open_v2(dest, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		err = backup_fail(dst, rc, "create the backup", dest);
		goto out;
	}
	sqlite3_busy_timeout(src, 10000);
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (!b) {
		err = backup_fail(dst, 0, "start the backup", dest);
		goto out;
	}
	/* All pages in one step: one read transaction, so one commit_ts. */
	rc = sqlite3_backup_step(b, -1);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		err = backup_fail(dst, rc, "write the backup", dest);
		goto out;
	}
	rc = sqlite3_exec(dst, "PRAGMA journal_mode=DELETE;"
			       "INSERT OR REPLACE INTO meta(name, value) VALUES ('running', 0);",
			  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(dst, "SELECT coalesce(max(commit_ts), 0) FROM events", -1,
					&q, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW)
		*head_ts = sqlite3_column_int64(q, 0);
	else
		err = backup_fail(dst, rc, "finish the backup", dest);
	sqlite3_finalize(q);
out:
	sqlite3_close(src);
	if (dst && sqlite3_close(dst) != SQLITE_OK && !err)
		err = -EIO;
	if (err)
		unlink(dest);
	return err;
}
