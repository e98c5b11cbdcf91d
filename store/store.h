/* SPDX-License-Identifier: MIT */
/*
 * store.h - the durable log of committed transactions (store layer), the manual.
 *
 * The store keeps every committed transaction (an event) with its operations; the log is
 * the source of truth and everything else (the in-memory state of txn/) is derived by
 * replaying it.  A store is a handle on one backend, chosen by URI at store_open():
 * each backend is one table of operations (struct store_ops, at the end of this file)
 * in its own file, e.g. store/sqlite.c, the only file of the project that includes
 * sqlite3.h.  Functions return 0 or a negative errno; a backend's own error codes never
 * leave it (sqlite.c maps SQLite's in store_errno(), and logs them there, once).
 *
 * Calling sequence: store_open() -> store_replay() (before any append) ->
 * store_record_start() -> store_append() / store_check() / the past ... ->
 * store_record_stop() -> store_close().
 *
 * Threads: store_append() and store_record_*() belong to one thread at a time (the
 * committer); store_check(), the past (store_get_at() ... store_events()) and
 * store_starts() may be called from any thread, concurrently with appends.
 * store_replay() must not run concurrently with appends.  A pruner (retention, below)
 * belongs to one thread at a time; the daemon's committer runs its steps between
 * batches, so appends and prunes never wait for each other's write lock.
 */
#ifndef STATEHOUSE_STORE_H
#define STATEHOUSE_STORE_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h" /* STATEHOUSE_FAULT_INJECTION */

#if STATEHOUSE_FAULT_INJECTION
#include <pthread.h>
#endif

/* The newest schema this build reads and writes.  A store of schema 3 is served as it
 * is; its first prune (store_prune_step()) turns it into schema 4 in place (the pruned
 * table, the horizon), which older builds refuse, as they would misread a pruned log. */
#define STORE_SCHEMA_VERSION 4

/* STORE_ATTR records the owner, group and mode of a namespace ("ns") or an agent
 * directory ("ns/agent"), with the value {"uid":N,"gid":N,"mode":"0750"}, or the mode
 * of a key ("ns/agent/key"), with the value {"mode":"0600"}; an empty value clears it.
 * Its version is 0, so a key's versions (1, 2, ...) never count attribute rows, and a
 * key's value at a time or a listing never takes an attribute row for a put or delete.
 * STORE_MKDIR and STORE_RMDIR (schema 3) make and remove an explicit directory below an
 * agent ("ns/agent/dir..."), with version 0 and no value; a path is a key or a
 * directory at any one time, never both, and a key's versions (1, 2, ...) never count
 * directory rows. */
enum store_op_kind {
	STORE_PUT = 1,
	STORE_DELETE = 2,
	STORE_ATTR = 3,
	STORE_MKDIR = 4,
	STORE_RMDIR = 5,
	/* Only in a replay, never in the log: what the pruned, oldest operations of one
	 * path left behind (struct store_replay_op says what it carries). */
	STORE_PRUNED = 6,
};

struct store;
struct store_ops;

struct store_options {
	int fsync; /* 1: synchronous=FULL (durable on return); 0: NORMAL */
	/* A backend's own options, "name=value,name=value" (etcd: store/etcd.c lists
	 * them); NULL: none.  A backend refuses a name it does not know (-EINVAL). */
	const char *params;
	/* Refuse (-ENODATA, nothing created or written) a log that is missing or empty:
	 * the caller knows that one existed (a snapshot or a clean stop says so). */
	bool must_exist;
	/* Leave out the backend's full integrity check at open (for SQLite PRAGMA
	 * quick_check, which reads the whole file): the caller knows that nothing but a
	 * crash has happened to the log since it was last checked or cleanly closed. */
	bool skip_full_check;
	/* The largest value a commit may carry (0: not said).  A shared log whose server
	 * cannot take a commit of one such value in one request refuses to open
	 * (-EFBIG), naming the server's limit to raise. */
	size_t max_value_bytes;
};

/*
 * One operation of a committed transaction.  path is "ns/agent/key" (the key may hold
 * more '/'); value is ignored for deletes.  The store copies everything it keeps.
 */
struct store_op {
	const char *path;
	size_t path_len;
	enum store_op_kind kind;
	int64_t version;
	const void *value;
	size_t value_len;
};

/*
 * A request of the file system that made a commit (the applied-request records, below):
 * the mount's instance (a random id chosen once per mount; 0: no record) and the
 * kernel's id of the request, whose bit 63 (set on a request the kernel resends) is
 * ignored.
 */
struct store_reqid {
	uint64_t instance;
	uint64_t unique;
};

struct store_event {
	int64_t commit_ts;
	int64_t time_ns; /* wall clock, ns since the epoch */
	const char *txn;
	const void *note;
	size_t note_len;
	const struct store_op *ops;
	size_t n_ops;
	/* The request that made the commit (instance 0: none): store_append() records it in
	 * the same transaction as the event (see store_applied_find()). */
	struct store_reqid req;
};

/*
 * Open (creating if needed) the store that uri names, for the daemon of datadir.
 *
 * uri selects the backend by its scheme:
 *   NULL, "", "sqlite", "sqlite:", "sqlite://"
 *           SQLite (the default): DATADIR/statehouse.db in WAL mode.  It takes no
 *           location: anything after "sqlite:" or "sqlite://" is refused (-EINVAL).
 * Schemes are compared without regard to case.  Snapshots (below) are files in datadir
 * whatever the backend.
 *
 * On success *out is the caller's, to store_close().  On failure *out is NULL and the
 * reason has been logged (but for -ENODATA, which the caller explains).  Errors:
 *   -EPROTONOSUPPORT  this build has no backend for the URI's scheme (the log line
 *                     names the URI and the schemes that are supported)
 *   -EINVAL           the URI is malformed for its backend
 *   -EIO              the store is damaged, not a store, or of another schema version
 *   -ENODATA          opt->must_exist and the log is missing or empty (nothing touched)
 *   -ENOSPC, -EACCES, -EROFS, -ENOMEM
 *
 * The files stay as they are at store_close() (for SQLite: the write-ahead log is not
 * folded into the database) unless store_record_stop() succeeded before it: a store that
 * was only looked at, or refused, is left exactly as it was found.
 */
int store_open(const char *uri, const char *datadir, const struct store_options *opt,
	       struct store **out);
/*
 * What store_open() would say of uri, without opening anything: 0, or -EPROTONOSUPPORT
 * or -EINVAL, logged as store_open() logs them.  For refusing a bad option before any
 * file is made.
 */
int store_uri_check(const char *uri);
/*
 * Create the shared log that uri names (statehousectl init): 0, -EEXIST (it exists:
 * nothing changed), -EOPNOTSUPP (a backend whose log the first mount creates: SQLite),
 * or an error of the backend; logged.  opt->params as for store_open().
 */
int store_create(const char *uri, const struct store_options *opt);
/* Close the store and free the handle; NULL is a no-op. */
void store_close(struct store *st);

/*
 * Append events in one SQLite transaction: all of them are durable on return (with
 * fsync=1), or none is (the transaction is rolled back).  Events must carry consecutive
 * commit_ts after the head.  An event with a request id (req.instance != 0) gets its
 * applied-request record in the same transaction.  Errors: -ENOSPC (disk full), -EIO,
 * -ENOMEM, -EAGAIN.
 */
int store_append(struct store *st, const struct store_event *events, size_t n);

/* ---- a shared log (store/etcd.c) ------------------------------------------------------ */

/*
 * A shared log is appended to by several mounts (on several hosts); this store keeps a
 * local copy of it (for etcd: a SQLite replica in the data dir), and every read of the
 * past reads that copy.  Commits of other mounts reach this one through store_pull(),
 * which the appending thread calls; the backend calls the wake function (on a thread of
 * its own, any time) when it learns that the shared log moved on.  For a log of one
 * mount (SQLite) there is nothing to pull and nothing wakes.
 *
 * store_append() of a shared log returns STORE_BEHIND when other mounts appended first:
 * nothing of the batch was appended, and the events after the caller's head are
 * waiting for store_pull().  The caller applies them, checks its batch again at the new
 * head (its own rules: first committer wins), and appends it with the new commit_ts.
 */
#define STORE_BEHIND (-EREMCHG)

typedef void (*store_wake_fn)(void *arg);
/* Set once, before the first append (NULL: none). */
void store_set_wake(struct store *st, store_wake_fn fn, void *arg);

/* Called once per event with its operations; the event and everything it points to are
 * valid during the call only. */
typedef int (*store_event_fn)(void *arg, const struct store_event *ev);
/*
 * Deliver, in commit order, every event of the shared log after head_ts (the caller's
 * head, the local copy's newest commit) that other mounts appended, each already in the
 * local copy when fn gets it; a non-zero return of fn stops the pull and is returned.
 * The appending thread only.  0 with nothing delivered when there is nothing new (and
 * always for SQLite); -EIO, -ENOTCONN (the shared log cannot be reached: try later),
 * -ENOSPC.
 */
int store_pull(struct store *st, int64_t head_ts, store_event_fn fn, void *arg);

/* What a shared log's backend says of itself, for .status (any thread). */
struct store_shared {
	bool shared;          /* false: a log of one mount (SQLite); the rest is zero */
	bool reachable;       /* the last request to the shared log was answered */
	bool stale;           /* reads may be behind: the log cannot be reached, or the
			       * stream of its news is broken */
	int64_t remote_head;  /* the newest commit_ts the shared log was seen to hold */
	int64_t local_head;   /* the newest commit_ts of the local copy */
	char endpoint[128];   /* the server that answered last */
	char volume[128];     /* the shared log's name */
	char health[128];     /* "ok" or why not, in words */
	uint64_t behind_retries; /* appends refused with STORE_BEHIND */
	uint64_t pulled;      /* events of other mounts pulled into the local copy */
};
void store_shared_state(struct store *st, struct store_shared *out);
/* store_shared_state()'s stale alone, cheap enough for every read (any thread); false
 * for a log of one mount. */
bool store_stale(struct store *st);

/* ---- applied requests (store/sqlite_applied.c for SQLite) ---------------------------- */

/*
 * The applied-request records answer "did this request of the file system commit, and
 * as which commit?" for a request the kernel resends after the process serving the
 * mount died: a commit made durable but not answered must not be made twice.  A record
 * (instance, unique, commit_ts) is written by store_append() in the transaction of its
 * event, so it is durable exactly when the commit is.  A request that made several
 * commits keeps the newest.
 *
 * Bounds: store_applied_claim() at the start of a mount's serving process removes the
 * records of every other instance (the kernel never resends a request of another
 * mount), and an append removes, at least every STORE_APPLIED_TRIM_EVERY commits, the
 * records of commits more than STORE_APPLIED_KEEP below its newest one.  That is safe
 * because the kernel resends only requests that were in flight when the process died:
 * a request is answered as soon as the batch holding its commit is durable (or, for one
 * that waits for the invalidation of the caches, right after it), so for its record to
 * go, 65536 later commits must have become durable while its answer was still pending;
 * at the highest commit rates measured on this kind of machine (~10k/s) that is seconds
 * of a stalled answer while everything else commits.
 */
#define STORE_APPLIED_KEEP 65536
#define STORE_APPLIED_TRIM_EVERY 1024

struct store_applied {
	int64_t commit_ts;
	int64_t time_ns; /* of the commit's event; 0 when the event was pruned */
	char *txn;       /* the event's transaction name (malloc'ed); NULL when pruned */
};

/*
 * Make the records ready for the requests of instance and remove those of every other
 * instance, in a transaction of its own (instance 0: only remove them all, making
 * nothing when there are none).  Called once when a process starts serving, before any
 * append; the writer's thread.  -ENOSPC, -EIO.
 */
int store_applied_claim(struct store *st, uint64_t instance);
/*
 * The record of request id (any thread, concurrently with appends): 0 and *out filled
 * (release it with store_applied_release()), or -ENOENT when the request made no commit
 * that is durable (or its record went, see above), -EIO, -ENOMEM.  A commit being
 * appended is found only once its transaction committed.
 */
int store_applied_find(struct store *st, const struct store_reqid *id, struct store_applied *out);
void store_applied_release(struct store_applied *a);

/* A replayed operation; pointers are valid only during the callback. */
struct store_replay_op {
	int64_t commit_ts;
	int64_t time_ns;
	const char *path;
	size_t path_len;
	enum store_op_kind kind;
	int64_t version;
	const void *value;
	size_t value_len;
	/*
	 * STORE_PRUNED: the state the path's pruned operations (the oldest ones, up to
	 * commit end_ts) left, delivered before any operation of the log.  version,
	 * commit_ts and time_ns are of its last pruned put or delete (version 0: none);
	 * live says whether the key held a value then (its value is gone: the log's next
	 * operation on the path replaces it), dir whether the path was an explicit
	 * directory; entries_ns is the latest commit time at which one of them added or
	 * removed an entry of the path's directory (0: none).  A replay after after_ts
	 * delivers only those with end_ts > after_ts.
	 */
	int64_t end_ts;
	bool live, dir;
	int64_t entries_ns;
};

typedef int (*store_replay_fn)(void *arg, const struct store_replay_op *op);

struct store_replay_stats {
	int64_t head_ts;     /* newest commit_ts in the log (0 when empty) */
	int64_t head_time_ns;
	uint64_t events;     /* events after after_ts */
	uint64_t ops;        /* operations delivered */
};

/*
 * Call fn for every operation of every event with commit_ts > after_ts, in commit order,
 * after one STORE_PRUNED record per path whose pruned operations reach past after_ts
 * (a pruned log, see the retention section).  A non-zero return from fn stops the
 * replay and is returned.
 */
int store_replay(struct store *st, int64_t after_ts, store_replay_fn fn, void *arg,
		 struct store_replay_stats *stats);

/* A real round trip to the durable log (for SQLite, through its reader connection);
 * *head_ts gets the newest commit_ts.  -EIO when the store does not answer, whatever
 * the reason. */
int store_check(struct store *st, int64_t *head_ts);

/* ---- the past (any thread) ----------------------------------------------------------- */

/* One version of a key as the log holds it.  txn and value are malloc'ed (or NULL) and
 * freed by store_version_release(). */
struct store_version {
	char *path;          /* "ns/agent/key" */
	size_t path_len;
	enum store_op_kind kind;
	int64_t version;
	int64_t commit_ts;
	int64_t time_ns;
	size_t size;         /* value length (0 for deletes) */
	char *txn;
	void *value;
};
void store_version_release(struct store_version *v);

/* Called for each row; a non-zero return stops the walk and is returned.  v and its
 * strings are valid during the call only. */
typedef int (*store_version_fn)(void *arg, const struct store_version *v);

/*
 * The newest operation on key `path` with commit_ts <= ts (with its value when
 * with_value): a put or delete of a key, or a mkdir or rmdir of a directory there.
 * -ENOENT when the path had no operation by then.
 */
int store_get_at(struct store *st, const char *path, size_t len, int64_t ts, int with_value,
		 struct store_version *out);
/* One version of a key, with its value and transaction name.  -ENOENT if none. */
int store_get_version(struct store *st, const char *path, size_t len, int64_t version,
		      struct store_version *out);
/*
 * Every key live (last operation a put) and every explicit directory (last operation a
 * mkdir: v->kind is STORE_MKDIR) as of ts whose path lies below prefix ("" for all,
 * "ns", "ns/agent", "ns/agent/dir"), without values, in path order.
 */
int store_list_at(struct store *st, const char *prefix, size_t plen, int64_t ts,
		  store_version_fn fn, void *arg);
/* Every version of one key (puts and deletes), oldest first, with transaction names,
 * without values. */
int store_history(struct store *st, const char *path, size_t len, store_version_fn fn,
		  void *arg);
/*
 * Every owner record (STORE_ATTR) ever committed for namespace ns, for its agent
 * `agent` and for that agent's keys, oldest first: fn gets the path ("ns",
 * "ns/agent" or "ns/agent/key"), commit_ts, time_ns and the value (size 0: cleared).
 */
int store_owner_records(struct store *st, const char *ns, size_t nslen, const char *agent,
			size_t alen, store_version_fn fn, void *arg);
/* Names that ever held keys: namespaces (prefix ""), agents of "ns", or the keys of
 * "ns/agent" (whole keys, which may contain '/'), sorted; fn gets them in v->path. */
int store_names(struct store *st, const char *prefix, size_t plen, store_version_fn fn,
		void *arg);

/* (store_event_fn, above: called once per event with its operations, only those of the
 * filter if any; the event and everything it points to are valid during the call.) */

/*
 * Events with from_ts <= commit_ts <= to_ts in commit order, with their operations and
 * values.  With a filter "ns/agent" only events that touched that agent are delivered,
 * with only that agent's operations; both cases start with an index seek at from_ts.
 */
int store_events(struct store *st, int64_t from_ts, int64_t to_ts, const char *filter,
		 size_t filter_len, store_event_fn fn, void *arg);

/* ---- snapshots (store/snapshot.c) --------------------------------------------------- */

/*
 * A snapshot is the whole state as of one commit_ts, derived from the log, in a file
 * DATADIR/snapshots/snap-<commit_ts>.bin written atomically (temporary file, fsync,
 * rename, fsync of the directory) and sealed with a CRC-32, so a damaged or half-written
 * one is recognised and skipped.  Deleted keys are kept, so versions continue.  An
 * explicit directory below an agent is an entry with dir set (version 0, no value).
 */
enum { STORE_SNAP_DIR = 1, STORE_SNAP_DIR_TIME = 2 };
struct store_snap_entry {
	const char *path;
	size_t path_len;
	int64_t version;
	int64_t commit_ts;
	int64_t time_ns;
	int deleted;
	int dir; /* 0: a key (or an owner record); STORE_SNAP_DIR: an explicit directory,
		  * STORE_SNAP_DIR_TIME: only a directory's time; both: time_ns is when its
		  * entries last changed */
	const void *value;
	size_t value_len;
};

/* Writer side: fills *e and returns 1, or returns 0 at the end, or a negative errno. */
typedef int (*store_snap_next_fn)(void *arg, struct store_snap_entry *e);

/*
 * Write the snapshot of commit ts, then remove all but the newest `keep`.  On failure
 * (-ENOSPC, -EIO) the older snapshots are left as they were.
 */
int store_snapshot_write(const char *datadir, int64_t ts, int64_t time_ns,
			 store_snap_next_fn next, void *arg, unsigned keep);

/*
 * Write a consistent copy of the SQLite store of datadir to dest (a new file), made with
 * SQLite's online backup API in one read transaction while commits go on, marked as
 * stopped cleanly; *head_ts gets its newest commit_ts.  dest is removed on failure.
 */
int store_backup(const char *datadir, const char *dest, int64_t *head_ts);

typedef int (*store_snap_fn)(void *arg, const struct store_snap_entry *e);

/*
 * Load the newest valid snapshot whose commit_ts <= max_ts, calling fn per entry after
 * its checksum has been verified.  Damaged ones are logged and skipped, newer ones
 * skipped; no file is renamed or removed.  *ts_out is 0
 * (and nothing is loaded) when there is none; *n_out gets the number of its entries
 * that are not directories (keys and owner records).
 */
int store_snapshot_load(const char *datadir, int64_t max_ts, store_snap_fn fn, void *arg,
			int64_t *ts_out, uint64_t *n_out);
/* The commit_ts of the newest snapshot that validates (checksum and length), 0 when there
 * is none; nothing is applied, changed or logged (damaged ones are skipped). */
int store_snapshot_newest(const char *datadir, int64_t *ts_out);

/* ---- starts ------------------------------------------------------------------------- */

struct store_start {
	int64_t time_ns;
	int64_t recovery_ns;
	int64_t snapshot_ts;       /* 0: none was used */
	uint64_t events_replayed;
	int64_t head_ts;
};

/* Record a start and mark the store running; *clean_prev says whether the previous run
 * ended with store_record_stop().  -ENOSPC on a full disk: nothing is recorded, and the
 * store still serves reads (the caller may retry later). */
int store_record_start(struct store *st, const struct store_start *start, int *clean_prev);
/* Mark a clean stop; store_close() then tidies the files (SQLite: folds the write-ahead
 * log into the database and removes it). */
int store_record_stop(struct store *st);
/* A log rebuilt from a snapshot after it lost acknowledged commits (statehoused
 * --recover-from-snapshot): one row of the recoveries table, kept for good. */
struct store_recovery {
	int64_t time_ns;
	int64_t log_head;      /* where the log ended when found */
	int64_t snapshot_ts;   /* the snapshot it was rebuilt from (0: none was used) */
	int64_t acknowledged;  /* the newest commit known acknowledged: after new_head, lost */
	int64_t new_head;      /* where the rebuilt log ends */
};
int store_record_recovery(struct store *st, const struct store_recovery *r);
/* Bytes of the database file and of its write-ahead log (0 when absent). */
void store_file_sizes(struct store *st, uint64_t *db, uint64_t *wal);
/* How many starts, and how many of them followed an unclean stop. */
int store_starts(struct store *st, uint64_t *count, uint64_t *unclean);

/* ---- the log's files, without opening the store --------------------------------------- */

/*
 * What a backend's files look like on disk, read without opening them as a store (no
 * file is created or changed): whether the log exists and holds anything, and what
 * identifies its state, so a later look can tell whether anything else touched it.
 */
struct store_log_file {
	bool exists;        /* the log's file exists and is not empty */
	uint64_t bytes;     /* of the main file */
	int64_t mtime_ns;
	uint64_t dev, ino;
	/* SQLite: the write-ahead log.  wal_id names one generation of it (its salts; a
	 * checkpoint that restarts the log changes it), 0 when there is no log or no
	 * complete header.  Within one generation the file only grows. */
	uint64_t wal_id;
	uint64_t wal_bytes;
};
int store_log_file_state(const char *uri, const char *datadir, struct store_log_file *out);
/* Make every write to the log's files so far durable (fdatasync), whatever the fsync
 * option: a snapshot must never be durable while the commits it holds are not.  Missing
 * files are no error.  Writes made during the call may or may not be covered: take a
 * store_log_file_state() meant to be durable before it. */
int store_log_sync(const char *uri, const char *datadir);

/*
 * The marks (store/marks.c): a small file DATADIR/statehouse.marks, written atomically
 * (temporary file, fsync, rename, fsync of the directory) at every clean stop, start and
 * snapshot, and once a second while commits come.  It lives beside the log, not in it,
 * so it survives the loss of the log: what it records is what a log found at the next
 * start must hold at least.
 */
struct store_marks {
	int64_t clean_stop_head; /* the head at the newest clean stop (0: none yet) */
	bool stopped;            /* written at a clean stop: log is the log's state then */
	int64_t log_head;        /* the head when log was taken */
	struct store_log_file log; /* at the clean stop, or at the newest snapshot */
};
/* 0, -ENOENT (no marks yet: *m is all zero), -EIO (unreadable: logged), -ENOMEM. */
int store_marks_read(const char *datadir, struct store_marks *m);
/* 0 or a negative errno (-ENOSPC ...), logged; the previous marks stay on failure. */
int store_marks_write(const char *datadir, const struct store_marks *m);

/* ---- retention: pruning the log (store/prune.c for SQLite) ---------------------------- */

/*
 * A pruned log keeps, for every path, its newest operations; the older ones go, and one
 * row per path sums up what they left (the STORE_PRUNED record of a replay), so a
 * replay of what is kept rebuilds exactly the state the whole log would have: every
 * key's version and value, explicit directories and the times of directories' entries.
 * Owner records (STORE_ATTR) are never pruned.  The newest operation of every path is
 * always kept (a deleted key keeps its delete; a key whose path is a directory now
 * may be summed up whole, its last version kept in the sum), so versions and commit_ts
 * are never reused.
 *
 * The horizon is the oldest commit whose state the kept log still holds whole: the
 * state as of any commit_ts >= horizon, and every event with commit_ts >= horizon, is
 * exactly what it was before the prune.  store_get_at() and store_list_at() answer
 * -ENOENT for a ts below it, store_events() starts at it; it never moves back.  0 while
 * nothing was pruned.
 */
struct store_retention {
	uint32_t keep_versions; /* keep the newest N operations of each path; 0: no rule */
	int64_t keep_ns;        /* keep what the state as of any time in the last keep_ns
				 * needs; 0: no rule.  With both rules, an operation goes
				 * only when both let it go. */
};

/* What one prune step did. */
struct store_prune_result {
	uint64_t ops;     /* operations removed */
	uint64_t events;  /* events removed (none of their operations was left) */
	int64_t horizon;  /* the horizon after the step */
	bool more;        /* work is left: call again */
};

/* What one vacuum step did. */
struct store_vacuum_result {
	uint64_t free_bytes; /* unused bytes left inside the database file */
	bool shrinks;        /* the file can shrink (SQLite: auto_vacuum=INCREMENTAL) */
	bool more;           /* free pages are left to give back: call again */
};

struct store_pruner;

/* The horizon (see above); any thread. */
int64_t store_horizon(struct store *st);

/*
 * A pruner of st's log, for datadir: a write connection of its own, used by one thread
 * at a time; its steps write with synchronous=NORMAL (a prune lost in a power cut is
 * only done again; the next durable commit makes it durable).  *out is the caller's, to
 * store_pruner_close().  Nothing is written until the first step.
 */
int store_pruner_open(struct store *st, const char *datadir, struct store_pruner **out);
void store_pruner_close(struct store_pruner *p);
/*
 * One small step of pruning by the rules r, with now_ns the wall clock (the keep_ns
 * rule): at most max_ops operations removed (at most STORE_PRUNE_OPS_MAX), and work of
 * about 12 us for each, in one transaction of its own, so a commit waits at most that
 * long for the write lock.  Where the last step stopped is kept in the log, so work
 * goes on after a restart; a change of the rules starts over from the oldest commit.
 * -EAGAIN when the store was busy (nothing changed), -ENOSPC, -EIO.
 */
#define STORE_PRUNE_OPS_MAX 256
int store_prune_step(struct store_pruner *p, const struct store_retention *r, int64_t now_ns,
		     unsigned max_ops, struct store_prune_result *out);
/* Give at most max_pages free pages back to the file system (the file shrinks once the
 * write-ahead log is checkpointed); only for a store that can shrink. */
int store_vacuum_step(struct store_pruner *p, unsigned max_pages, struct store_vacuum_result *out);
/* Fold the write-ahead log into the database if no reader stands in the way, never
 * waiting for one (the step after vacuum steps that lets the file shrink). */
int store_checkpoint(struct store_pruner *p);

/*
 * statehoused --vacuum: make the store of datadir one that can shrink (SQLite: a VACUUM
 * into auto_vacuum=INCREMENTAL, which stores made before this build lack) and compact
 * it.  Needs free space about the size of the store; no daemon may be serving it.
 * *before and *after get the database file's bytes.
 */
int store_vacuum(const char *uri, const char *datadir, uint64_t *before, uint64_t *after);

#if STATEHOUSE_FAULT_INJECTION
/* Test hook: every prune step that removes something sleeps ms milliseconds before its
 * commit, after logging that it does (for killing a daemon in the middle of a prune). */
void store_set_prune_pause(struct store_pruner *p, unsigned ms);
#endif

/* Version string of the SQLite library this build links (static storage). */
const char *store_sqlite_version(void);

#if STATEHOUSE_FAULT_INJECTION
/*
 * Fault injection for tests (SQLite's SimulateIOError idea), only in builds configured
 * with -Dfault_injection=true: after `after` more calls of store_append(), every append
 * fails with code (-EIO or -ENOSPC), every store_check() with -EIO and every read of the
 * past with -EIO, without reaching the backend.  code 0 turns it off.  It sits in the
 * dispatcher (store.c), so every backend fails the same way.
 */
void store_set_fault(struct store *st, long after, int code);
#endif

/* ---- backends ----------------------------------------------------------------------- */

/*
 * One backend: the operations behind the store_* functions above, each with the same
 * contract as the function of the same name.  open() gets the location, what follows
 * "scheme:" or "scheme://" in the URI ("" when none; only a backend with
 * takes_location gets a non-empty one), and returns a handle whose first member is the
 * struct store below, with ops pointing at its own table.  Everything else about a
 * backend stays in its file; store_i.h lists the backends of the build.
 */
struct store_ops {
	const char *scheme; /* "sqlite": what the URI says before ':' */
	bool takes_location;
	int (*open)(const char *location, const char *datadir, const struct store_options *opt,
		    struct store **out);
	void (*close)(struct store *st);
	int (*append)(struct store *st, const struct store_event *events, size_t n);
	int (*applied_claim)(struct store *st, uint64_t instance);
	int (*applied_find)(struct store *st, const struct store_reqid *id,
			    struct store_applied *out);
	int (*replay)(struct store *st, int64_t after_ts, store_replay_fn fn, void *arg,
		      struct store_replay_stats *stats);
	int (*check)(struct store *st, int64_t *head_ts);
	int (*get_at)(struct store *st, const char *path, size_t len, int64_t ts,
		      int with_value, struct store_version *out);
	int (*get_version)(struct store *st, const char *path, size_t len, int64_t version,
			   struct store_version *out);
	int (*list_at)(struct store *st, const char *prefix, size_t plen, int64_t ts,
		       store_version_fn fn, void *arg);
	int (*history)(struct store *st, const char *path, size_t len, store_version_fn fn,
		       void *arg);
	int (*owner_records)(struct store *st, const char *ns, size_t nslen, const char *agent,
			     size_t alen, store_version_fn fn, void *arg);
	int (*names)(struct store *st, const char *prefix, size_t plen, store_version_fn fn,
		     void *arg);
	int (*events)(struct store *st, int64_t from_ts, int64_t to_ts, const char *filter,
		      size_t filter_len, store_event_fn fn, void *arg);
	int (*record_start)(struct store *st, const struct store_start *start,
			    int *clean_prev);
	int (*record_stop)(struct store *st);
	int (*record_recovery)(struct store *st, const struct store_recovery *r);
	int (*starts)(struct store *st, uint64_t *count, uint64_t *unclean);
	void (*file_sizes)(struct store *st, uint64_t *db, uint64_t *wal);
	/* Without a handle: store_log_file_state() and store_log_sync(). */
	int (*file_state)(const char *datadir, struct store_log_file *out);
	int (*sync_files)(const char *datadir);
	/* Retention: the horizon as the log records it (read once at open), the pruner, and
	 * the offline vacuum (store_vacuum(), without a handle). */
	int (*horizon)(struct store *st, int64_t *out);
	int (*pruner_open)(struct store *st, const char *datadir, struct store_pruner **out);
	void (*pruner_close)(struct store_pruner *p);
	int (*prune_step)(struct store_pruner *p, const struct store_retention *r,
			  int64_t now_ns, unsigned max_ops, struct store_prune_result *out);
	int (*vacuum_step)(struct store_pruner *p, unsigned max_pages,
			   struct store_vacuum_result *out);
	int (*checkpoint)(struct store_pruner *p);
	int (*vacuum)(const char *datadir, uint64_t *before, uint64_t *after);
	const char *(*lib_version)(void); /* the backend's client library */
	/* A shared log (NULL for a log of one mount): store_create(), store_set_wake(),
	 * store_pull(), store_shared_state(). */
	int (*create)(const char *location, const struct store_options *opt);
	/* store_uri_check() of a location, logged (NULL: any is fine). */
	int (*check_location)(const char *location);
	void (*set_wake)(struct store *st, store_wake_fn fn, void *arg);
	int (*pull)(struct store *st, int64_t head_ts, store_event_fn fn, void *arg);
	void (*shared_state)(struct store *st, struct store_shared *out);
	bool (*stale)(struct store *st);
};

/* The handle every backend's own struct begins with.  Its fields belong to store.c. */
struct store {
	const struct store_ops *ops;
	/* The horizon: raised by a pruner before its step commits (store_raise_horizon()),
	 * so a reader that checks it after reading never takes a pruned answer for a whole
	 * one. */
	_Atomic int64_t horizon;
#if STATEHOUSE_FAULT_INJECTION
	pthread_mutex_t fault_lock; /* protects fault_* (leaf lock) */
	long fault_after;
	int fault_code;
#endif
};

/* The handle every backend's pruner begins with.  Its fields belong to store.c. */
struct store_pruner {
	const struct store_ops *ops;
	struct store *st;
#if STATEHOUSE_FAULT_INJECTION
	unsigned pause_ms; /* store_set_prune_pause(); read by the backend's steps */
#endif
};

#endif
