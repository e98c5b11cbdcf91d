/* SPDX-License-Identifier: MIT */
/*
 * store_i.h - what the files of store/ share and nothing above them sees (store layer):
 * the list of backends this build serves and the path syntax they all share.
 */
#ifndef STATEHOUSE_STORE_I_H
#define STATEHOUSE_STORE_I_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/*
 * Split "ns/agent/key" at its first two slashes (STORE_ATTR: "ns" or "ns/agent", the
 * missing parts as empty strings at the end of path).  -EINVAL when path is not of
 * that form.
 */
int store_split_path(const char *path, size_t len, enum store_op_kind kind, size_t *ns_len,
		     size_t *agent_off, size_t *agent_len, size_t *key_off);
/* fsync a directory (its names made durable): 0 or -errno.  (snapshot.c) */
int store_fsync_dir(const char *path);
/* Split a prefix "ns[/agent[/dir...]]" into its parts; returns how many (0..3). */
int store_split_prefix(const char *p, size_t len, const char **part, size_t *plen);

/* The SQLite backend's files, without a connection (sqlite_files.c): the table's
 * file_state and sync_files, and the removal at close of an empty write-ahead log and
 * its index that an open made (db is the database's path). */
int store_sqlite_file_state(const char *datadir, struct store_log_file *out);
int store_sqlite_sync_files(const char *datadir);
void store_sqlite_drop_empty_wal(const char *db);

/* Raise st's horizon to h (never lowers it); a pruner calls it before its step commits. */
void store_raise_horizon(struct store *st, int64_t h);

/*
 * The SQLite backend's pruning (prune.c), beside sqlite.c: the table's retention
 * operations, and what sqlite.c asks of it on its own connection (struct sqlite3 is
 * SQLite's connection; this header does not include sqlite3.h).
 */
struct sqlite3;
/* SQLite's result code rc as a negative errno, logged once with action (sqlite.c). */
int store_sqlite_errno(struct sqlite3 *db, int rc, const char *action);
/* The starts and recoveries tables (sqlite_starts.c): store_ops' record_start,
 * record_stop, record_recovery and starts, on the writer or the reader connection. */
int store_sqlite_record_start(struct sqlite3 *wdb, const struct store_start *start,
			      int *clean_prev);
int store_sqlite_record_stop(struct sqlite3 *wdb);
int store_sqlite_record_recovery(struct sqlite3 *wdb, const struct store_recovery *r);
int store_sqlite_starts(struct sqlite3 *rdb, uint64_t *count, uint64_t *unclean);
/*
 * The applied-request records (sqlite_applied.c): the table's applied_claim on the
 * writer, applied_find on the reader (its lock held), and what an append does on the
 * writer: store_sqlite_applied_prepare() before its transaction (the statements, made
 * once, when an event carries a request id; *a stays NULL until then), then
 * store_sqlite_applied_write() inside it, after the events (their records and the trim).
 */
struct store_sqlite_applied;
int store_sqlite_applied_claim(struct sqlite3 *wdb, uint64_t instance);
int store_sqlite_applied_find(struct sqlite3 *rdb, const struct store_reqid *id,
			      struct store_applied *out);
int store_sqlite_applied_prepare(struct sqlite3 *wdb, const struct store_event *events,
				 size_t n, struct store_sqlite_applied **a);
int store_sqlite_applied_write(struct sqlite3 *wdb, struct store_sqlite_applied *a,
			       const struct store_event *events, size_t n);
void store_sqlite_applied_free(struct store_sqlite_applied *a);
/* The horizon the log records (0: never pruned). */
int store_sqlite_read_horizon(struct sqlite3 *db, int64_t *out);
/* The STORE_PRUNED records of a replay after after_ts (none in a log never pruned). */
int store_sqlite_replay_pruned(struct sqlite3 *db, int64_t after_ts, store_replay_fn fn,
			       void *arg);
int store_sqlite_pruner_open(struct store *st, const char *datadir, struct store_pruner **out);
void store_sqlite_pruner_close(struct store_pruner *p);
int store_sqlite_prune_step(struct store_pruner *p, const struct store_retention *r,
			    int64_t now_ns, unsigned max_ops, struct store_prune_result *out);
int store_sqlite_vacuum_step(struct store_pruner *p, unsigned max_pages,
			     struct store_vacuum_result *out);
int store_sqlite_checkpoint(struct store_pruner *p);
int store_sqlite_vacuum(const char *datadir, uint64_t *before, uint64_t *after);

/*
 * The backends of this build, the default first.  A new backend is one file defining
 * `const struct store_ops store_<name>_ops` (see struct store_ops in store.h), one
 * X(<name>) here and its file in store/meson.build; nothing above store/ changes.
 */
#define STORE_BACKENDS(X) X(sqlite) X(etcd)

#define STORE_DECLARE_BACKEND(name) extern const struct store_ops store_##name##_ops;
STORE_BACKENDS(STORE_DECLARE_BACKEND)
#undef STORE_DECLARE_BACKEND

#endif
