/* SPDX-License-Identifier: MIT */
/*
 * txn.h - transactions and the in-memory versioned state (txn layer).
 *
 * The engine owns the state derived from the store's log: a tree of path components
 * whose key nodes carry a short chain of versions (MVCC), so that the live tree (as of
 * the newest published commit) and every open transaction's snapshot (as of its begin)
 * are served from memory.  Commits go through one committer thread that validates,
 * appends a batch to the store in one durable SQLite transaction (group commit),
 * publishes the new versions and then completes every request.
 *
 * Paths handed to these functions are relative to a view's root: "" is the root,
 * "ns", "ns/agent", "ns/agent/key/with/slashes".  A view is the live tree (tx == NULL)
 * or one transaction's snapshot overlaid with its staged operations.
 *
 * The past (.at, .history, the event log) and a transaction's status are offered as
 * data; turning them into JSON is presentation, done above (fs/render.c).
 *
 * All functions return 0 or a negative errno.  Locks (rank order, take left before
 * right): engine tree lock -> engine txn-table lock -> txn lock.  No lock is held when
 * a completion callback runs.
 */
#ifndef STATEHOUSE_TXN_H
#define STATEHOUSE_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "dirents.h"
#include "config.h" /* STATEHOUSE_FAULT_INJECTION */

#define TXN_NAME_MAX 255       /* bytes of one path component / transaction name */
#define TXN_KEY_MAX 1024       /* bytes of a key below ns/agent */

struct txn_engine;
struct txn;

/*
 * The request of the file system that asks for a commit, for the applied-request records
 * (txn_applied_find()): instance is the mount's random 64-bit id, chosen once per mount
 * (txn_options.instance), unique the kernel's id of the request (bit 63, which marks a
 * resent request, is ignored).  A zero instance means no record.
 */
struct txn_reqid {
	uint64_t instance;
	uint64_t unique;
};

/* How much a transaction's commit checks (txn_set_isolation()). */
enum txn_isolation {
	TXN_ISO_SNAPSHOT = 0, /* only what it writes: first committer wins (write skew is
			       * possible) */
	TXN_ISO_SERIALIZABLE, /* also what its view read: keys read or stat'ed, the
			       * absence of keys looked for, directories listed */
};

struct txn_options {
	int64_t txn_timeout_ms;   /* default timeout of a transaction */
	unsigned max_open_txns;   /* transactions open at once */
	size_t max_value_bytes;   /* largest value */
	/* Limits on one user (uid 0 and exempt_uid have none); 0: no limit. */
	unsigned max_txns_per_user;  /* transactions in the table, open or finished */
	size_t max_user_txn_bytes;   /* bytes staged by all its transactions */
	size_t max_txn_bytes;        /* bytes staged by one transaction (everyone); 0: none */
	int64_t max_txn_timeout_ms;  /* largest timeout a transaction may ask; 0: 86400000 */
	int64_t txn_linger_ms;       /* a finished transaction leaves the table after
				      * this; 0: only at txn_remove() */
	uint32_t exempt_uid;         /* the daemon's user, exempt as root is */
	int fsync;                /* 1: every commit is durable on return; 0: may lose the
				   * last commits on power loss (SQLite synchronous=NORMAL) */
	unsigned snapshot_interval; /* commits between snapshots; 0: never write one */
	unsigned snapshot_keep;     /* snapshots kept (newest first) */
	bool full_replay;           /* recover from the whole log, ignoring snapshots */
	bool inspect_only;          /* --verify: record no start, write no snapshot */
	bool salvage;               /* --recover-from-snapshot: open a log that lacks
				     * acknowledged commits instead of refusing it */
	uint32_t owner_uid, owner_gid; /* owner of namespaces that have none of their own */
	const char *store_uri;      /* the store (store_open() in store.h lists the URIs);
				     * NULL: the default, SQLite in datadir */
	const char *store_params;   /* the store's own options (store_options.params) */
	enum txn_isolation isolation; /* of a transaction at begin (TXN_ISO_SNAPSHOT) */
	/* Retention (retain.c): the log keeps the newest keep_versions operations of each
	 * key and what the state as of any time in the last keep_ns needs; older ones
	 * are pruned in the background.  0: no such rule; both 0: keep everything. */
	uint32_t keep_versions;
	int64_t keep_ns;
	/* The mount's instance (struct txn_reqid).  An open that serves (not inspect_only)
	 * removes the applied-request records of every other instance: only a request of
	 * this mount can be resent.  0: the commits carry no request ids. */
	uint64_t instance;
	/* With pin, recovery keeps every version after commit pin_ts (0 too: the empty
	 * tree) in the version chains (it loads the newest snapshot at or before it, or
	 * replays the whole log), so transactions restored with a begin_ts at or after it
	 * (txn_restore()) read their snapshot exactly.  Without: the chains hold only the
	 * head. */
	bool pin;
	int64_t pin_ts;
};

/* What a path is in a view. */
enum txn_type { TXN_NONE = 0, TXN_FILE, TXN_DIR };

struct txn_entry {
	enum txn_type type;
	size_t size;        /* value length for files */
	int64_t version;    /* per-key version (0 when staged and not yet committed) */
	int64_t commit_ts;  /* commit that wrote this version */
	int64_t time_ns;    /* wall-clock time of that commit (of the staging when staged);
			     * of a live directory: of the last commit that added or removed
			     * one of its entries (0: none since the start of the log) */
};

/* ---- engine lifecycle ---------------------------------------------------------------- */

/*
 * Open the store (opt->store_uri) of datadir and build the in-memory state by replaying
 * its log.  Threads are not started yet.  Errors are logged; -EIO for a damaged store,
 * -EPROTONOSUPPORT or -EINVAL for a store URI this build cannot serve.
 */
int txn_engine_open(const char *datadir, const struct txn_options *opt,
		    struct txn_engine **out);
/*
 * Rebuild the state of the store store_uri (NULL: the default) of datadir twice, from
 * the whole log and from the newest snapshot plus the events after it, and compare key
 * by key.  0 when they agree; -EIO (differences are logged) or another errno.
 */
int txn_verify(const char *datadir, const char *store_uri);
/*
 * statehoused --recover-from-snapshot: complete a log that lacks acknowledged commits
 * from the newest snapshot (salvage.c says how), record the loss of every commit after
 * it in the store and in the marks, and leave a log that starts.  0 (also when nothing
 * was missing: then nothing changed), or an errno, logged.  The caller holds the data
 * dir's lock.
 */
int txn_recover_from_snapshot(const char *datadir, const char *store_uri);
/* 0 when this build can serve the store URI; else -EPROTONOSUPPORT or -EINVAL, logged
 * with the schemes it serves.  Opens nothing: for refusing an option early. */
int txn_store_uri_check(const char *store_uri);
/* Create the shared log store_uri names (store_create()): 0, -EEXIST, or an error,
 * logged; params are the store's options ("name=value,..."; NULL: none). */
int txn_store_create(const char *store_uri, const char *params);
/* Write a snapshot of the published state now (also done every snapshot_interval
 * commits by the reaper thread, and at a clean close). */
int txn_engine_snapshot(struct txn_engine *eng);

/* Why a request was refused by a limit (txn_refused_total{reason=...} in .metrics). */
enum txn_refusal {
	TXN_REFUSED_OPEN_TXNS = 0, /* max_open_txns: EAGAIN */
	TXN_REFUSED_USER_TXNS,     /* max_txns_per_user: EDQUOT */
	TXN_REFUSED_TXN_BYTES,     /* max_txn_bytes: EDQUOT */
	TXN_REFUSED_USER_BYTES,    /* max_user_txn_bytes: EDQUOT */
	TXN_REFUSED_TIMEOUT,       /* a timeout over max_txn_timeout_ms: EINVAL */
	TXN_REFUSED_N
};
extern const char *const txn_refusal_names[TXN_REFUSED_N];

/* Counters and gauges for .metrics (a consistent-enough copy; counters only grow). */
#define TXN_LAT_BUCKETS 12
extern const double txn_latency_bounds_s[TXN_LAT_BUCKETS]; /* last is +Inf */

struct txn_stats {
	uint64_t begun, committed, aborted, expired, conflicted, autocommits, failed;
	uint64_t ops_written, ops_deleted;
	uint64_t starts, unclean_starts;
	unsigned open_txns;
	unsigned finished_txns;   /* committed, expired, failed: still readable */
	uint64_t reaped;          /* finished ones removed after txn_linger_ms */
	uint64_t refused[TXN_REFUSED_N];
	int64_t head_ts, snapshot_ts;
	uint64_t db_bytes, wal_bytes;
	int64_t last_recovery_ns;
	uint64_t last_replayed;
	int64_t horizon_ts;       /* retention: the oldest commit .at serves (0: all) */
	uint64_t pruned_ops, pruned_events; /* removed from the log by this run */
	bool free_known;          /* retention on: free_bytes was measured */
	bool shrinks;             /* the store can give space back (else --vacuum once) */
	uint64_t free_bytes;      /* unused bytes inside the database file */
	uint64_t lat_bucket[TXN_LAT_BUCKETS]; /* cumulative counts, as Prometheus wants */
	uint64_t lat_count;
	double lat_sum_s;
	uint64_t batches, batched; /* store writes (one fsync each), the commits they held */
	/* A shared log (a store of several mounts: etcd); shared false for one of a
	 * single mount, and the rest zero. */
	bool shared, shared_reachable, shared_stale;
	int64_t shared_head;       /* the newest commit_ts seen in the shared log */
	uint64_t pulled;           /* commits of other mounts applied here */
	uint64_t behind;           /* batches the shared log refused: others were first */
	char shared_endpoint[128], shared_volume[128], shared_health[128];
};
void txn_engine_stats(struct txn_engine *eng, struct txn_stats *out);
/* A shared store that may be behind (store_stale()): cheap, any thread. */
bool txn_engine_stale(struct txn_engine *eng);

/* Start the committer and the reaper. */
int txn_engine_start(struct txn_engine *eng);
/* Stop the committer and the reaper after completing every queued commit. */
void txn_engine_stop(struct txn_engine *eng);
/* Stop (if still running), close the store, free all; NULL ok. */
void txn_engine_close(struct txn_engine *eng);

/* Newest published commit_ts. */
int64_t txn_engine_head(struct txn_engine *eng);
/* The horizon: the oldest commit whose state .at serves and where the event streams
 * begin (retention, txn_options.keep_*); 0 while nothing was pruned.  Never moves back. */
int64_t txn_engine_horizon(struct txn_engine *eng);
/* statehoused --vacuum: compact the store of datadir and make it able to shrink after a
 * prune (stores made before this build cannot); no daemon may serve it (the caller holds
 * the data dir's lock).  0 or an errno, logged. */
int txn_vacuum(const char *datadir, const char *store_uri);
/* A real check of the store: 0 or -EIO. */
int txn_engine_check(struct txn_engine *eng);

/*
 * A consistent copy of the whole store as of one commit_ts, taken while commits go on
 * (SQLite's online backup API): a SQLite database a daemon can start on (as
 * DATADIR/statehouse.db) with no unclean-stop warning.  *out gets its bytes, *head_ts
 * its newest commit_ts.  -ENOSPC when DATADIR has no room for the copy, -EIO otherwise.
 */
int txn_engine_backup(struct txn_engine *eng, struct blob **out, int64_t *head_ts);
/* Versions for .version: the SQLite library and the store's schema. */
const char *txn_sqlite_version(void);
int txn_schema_version(void);
#if STATEHOUSE_FAULT_INJECTION
/* Test hook (builds with -Dfault_injection=true): after `after` more commits every store
 * operation fails with code; see store_set_fault(). */
void txn_engine_set_fault(struct txn_engine *eng, long after, int code);
/* Test hook: each prune step that removes something sleeps ms before it commits, after
 * logging so (for killing the daemon in the middle of a prune).  Before the start. */
void txn_engine_set_prune_pause(struct txn_engine *eng, unsigned ms);
/* Test hook: a batch that commits a transaction sleeps ms once it is durable and before
 * its requests are answered, after logging so (for killing the serving process between
 * a durable commit and its answer).  Before the start. */
void txn_engine_set_answer_pause(struct txn_engine *eng, unsigned ms);
#endif
const struct txn_options *txn_engine_options(struct txn_engine *eng);

/* ---- path rules ---------------------------------------------------------------------- */

/* Check one name component: -EINVAL (empty, ".", "..", contains '/'), -ENAMETOOLONG. */
int txn_check_name(const char *name, size_t len);
/* Number of components of a view path ("" has 0). */
int txn_path_depth(const char *path, size_t len);

/* ---- reading a view ------------------------------------------------------------------ */

/* What path is in the view.  -ENOENT if nothing; when tx is no longer open: -ETIMEDOUT
 * (expired), -ESTALE (conflict), -EROFS (committed), -ENOENT (aborted).  A staged,
 * uncommitted file reports version 0 and commit_ts 0. */
int txn_stat(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
	     struct txn_entry *out);
/* The value of a file: *out gets a reference the caller drops with blob_unref(). */
int txn_read(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
	     struct blob **out, struct txn_entry *meta);
/* Entries directly below a directory, sorted by name; free with dirents_free(). */
int txn_list(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
	     struct dirent_entry **out, size_t *n);
void dirents_free(struct dirent_entry *d, size_t n);

/* ---- owners and modes of namespaces and agents --------------------------------------- */

/*
 * Namespace and agent directories have an owner, a group and a mode; keys (and the
 * directories of key prefixes) take their agent's.  A directory without a recorded
 * one inherits: a namespace gets the engine's owner_uid/owner_gid and 0755, an agent
 * its namespace's owner, group and mode (without the write bits of group and others
 * when the namespace is sticky, as /tmp: such an agent is for its owner to set up).
 * A key may have a mode of its own (chmod); its owner and group stay its agent's.  The
 * mode goes with the key: kept by a put, carried by a rename or an exchange, dropped
 * by a delete.  A change is a commit (TXN_AUTO_ATTR), so it is durable and in the log.
 */
struct txn_attr {
	uint32_t uid, gid;
	uint32_t mode; /* permission bits, 07777 */
	bool own;      /* recorded for this directory (or key), not inherited */
};
/* The attributes that govern path (depth >= 1): the namespace's for "ns", the agent's
 * for "ns/agent" and everything below it, with a key's own mode (own) when it has one.
 * The published state; never fails for a valid path (-EINVAL otherwise). */
int txn_dir_attr(struct txn_engine *eng, const char *path, size_t len, struct txn_attr *out);

/* ---- who may read the past ------------------------------------------------------------ */

/*
 * A value of the past (or an op in a stream) is shown to a caller only if the caller
 * may read it both under the owners and modes recorded at the commit that wrote it and
 * under the current owner and mode of that name: search on the namespace, search (and
 * read, for a directory) on the agent, read on the key.  Root may read everything.
 */
struct txn_caller {
	uint32_t uid, gid;
	const uint32_t *groups; /* supplementary groups */
	size_t ngroups;
};
/* The owner records of the namespace and agent of path ("ns/agent[/...]") and of that
 * agent's keys, over all time, read from the log.  Free with txn_owner_hist_free(). */
struct txn_owner_hist;
int txn_owner_hist_load(struct txn_engine *eng, const char *path, size_t len,
			struct txn_owner_hist **out);
void txn_owner_hist_free(struct txn_owner_hist *h);
/* Has nothing in it ever had an owner record (NULL too)? */
bool txn_owner_hist_empty(const struct txn_owner_hist *h);
/* May c have the access bits want (4 read, 2 write, 1 search) on a file of that owner,
 * group and mode, as the kernel's check decides? */
bool txn_caller_may(const struct txn_caller *c, uint32_t uid, uint32_t gid, uint32_t mode,
		    unsigned want);
/* May c read path (a key when is_key, else a directory at or below an agent) as it was
 * at ts?  0, -EACCES, or -EINVAL for a path above an agent. */
int txn_may_read_at(struct txn_engine *eng, const struct txn_owner_hist *h, const char *path,
		    size_t len, bool is_key, int64_t ts, const struct txn_caller *c);

/* ---- the live tree's directories ------------------------------------------------------ */

/*
 * mkdir in the live tree.  Below an agent (three components or more) an explicit
 * directory is state: one commit (TXN_AUTO_MKDIR), durable when this returns, which
 * blocks the caller until then (a directory is made rarely; the reply needs it).  A
 * namespace or agent exists implicitly and is marked in memory only.  -EEXIST,
 * -ENOTDIR, or a commit's error (-EIO, -ENOSPC, ...).
 */
int txn_live_mkdir(struct txn_engine *eng, const char *path, size_t len,
		   const struct txn_reqid *id);
/* rmdir in the live tree: an explicit directory below an agent is removed by a commit
 * (TXN_AUTO_RMDIR, waited for as above).  -ENOTEMPTY, -ENOTDIR; 0 also for a directory
 * that has already vanished.  Owner records of namespaces and agents are the caller's
 * (TXN_AUTO_ATTR).  Both record the commit under id when it is not NULL (the request
 * that asked; see struct txn_commit_req). */
int txn_live_rmdir(struct txn_engine *eng, const char *path, size_t len,
		   const struct txn_reqid *id);

/* ---- commits -------------------------------------------------------------------------- */

/* TXN_AUTO_PUT with attr.own gives the key that mode when the put creates it (a file
 * created with a mode of its own).
 * TXN_AUTO_ATTR sets (attr.own) or clears (!attr.own) the attributes of the namespace
 * or agent directory at path, or the mode of the key at path (-ENOENT when it has
 * none at the head; its uid and gid are not recorded).  TXN_AUTO_EXCHANGE swaps the values of the keys path and
 * path2 (rename with RENAME_EXCHANGE): a put of each other's value on both, one commit;
 * -ENOENT when either is missing, -EINVAL when either is a directory. */
enum txn_auto_kind {
	TXN_AUTO_PUT = 1,
	TXN_AUTO_DELETE,
	TXN_AUTO_RENAME,
	TXN_AUTO_ATTR,
	TXN_AUTO_EXCHANGE,
	TXN_AUTO_MKDIR, /* an explicit directory below an agent (txn_live_mkdir) */
	TXN_AUTO_RMDIR,
};

/* Paths of keys a commit wrote or deleted, for cache invalidation; a path of one or two
 * components is a namespace or agent whose attributes changed (everything below it). */
struct txn_changes {
	char **paths;
	size_t n;
	struct txn_commit_req *late; /* requests to complete after invalidation */
	int64_t upto_ts;             /* the newest commit whose paths these are */
};
void txn_changes_free(struct txn_changes *ch);

struct txn_commit_req {
	/* Set by the caller. */
	struct txn *tx;              /* a transaction commit (txn_commit_tx) */
	struct blob *note;           /* its note, consumed */
	enum txn_auto_kind kind;     /* an autocommit (txn_autocommit) */
	char *path, *path2;          /* owned; path2 is the rename target */
	struct blob *value;          /* TXN_AUTO_PUT value, consumed */
	bool noreplace;              /* rename fails with EEXIST if path2 exists; a put
				      * fails with EEXIST if its key exists */
	struct txn_attr attr;        /* TXN_AUTO_ATTR; TXN_AUTO_PUT: a new key's mode */
	bool late;                   /* complete only after the caches are invalidated */
	struct txn_reqid id;         /* the request that asked (instance 0: none): a
				      * successful commit records it, atomically with the
				      * commit (txn_applied_find()) */
	void (*done)(struct txn_commit_req *req, int err);
	void *arg;
	/* Set by the engine before done() runs. */
	int rejected;                /* private: refused before it reached the queue */
	int64_t queued_ns;           /* private: when it was queued, for the latency */
	int64_t commit_ts;
	struct txn_commit_req *next;
};

/*
 * Did request id make a commit that is durable?  A request resent by the kernel after
 * the serving process died runs again: when it finds its record it must answer as the
 * first run would have (the commit_ts, and for a transaction its name), not commit
 * twice.  0 with *out filled; -ENOENT when the request committed nothing durable (it
 * failed, made no change, never reached the store, or its record is older than the
 * bound, see store.h), -EINVAL for instance 0, -EIO, -ENOMEM.  Any thread, while the
 * committer runs: a commit is found once its batch is durable.
 */
struct txn_applied {
	int64_t commit_ts;
	int64_t time_ns;           /* of the commit (0 when retention pruned its event) */
	char txn[TXN_NAME_MAX + 1]; /* the transaction's name, "auto" for an autocommit;
				     * "" when retention pruned its event */
};
int txn_applied_find(struct txn_engine *eng, const struct txn_reqid *id,
		     struct txn_applied *out);

/* Queue an autocommit; req->done runs exactly once, from another thread. */
void txn_autocommit(struct txn_engine *eng, struct txn_commit_req *req);
/* Free a request after done() (drops its strings, blobs and transaction reference). */
void txn_commit_req_free(struct txn_commit_req *req);

/*
 * Called by the committer with the keys a batch changed, after the batch is durable and
 * published.  The callee owns ch and must complete ch->late requests (req->done) after
 * invalidating, then free ch.  Without a hook the engine completes them itself.
 */
typedef void (*txn_notify_fn)(void *arg, struct txn_changes *ch);
/* Set before the first commit is queued (it is read by the committer without a lock). */
void txn_engine_set_notify(struct txn_engine *eng, txn_notify_fn fn, void *arg);

/* Called by the reaper, without locks, with the name of each finished transaction it
 * removed from the table (after txn_linger_ms), e.g. to drop .tx/NAME from caches.  May
 * be set while the engine runs. */
typedef void (*txn_reap_fn)(void *arg, const char *name);
void txn_engine_set_reap_hook(struct txn_engine *eng, txn_reap_fn fn, void *arg);

/* ---- transactions ---------------------------------------------------------------------- */

enum txn_state {
	TXN_OPEN = 0,
	TXN_COMMITTING,
	TXN_COMMITTED,
	TXN_ABORTED,
	TXN_EXPIRED,
	TXN_CONFLICT,
};

/* Begin a transaction: -EEXIST (name taken), -EAGAIN (too many open), -EDQUOT (uid has
 * max_txns_per_user in the table, finished ones included), -EINVAL (name). */
int txn_begin(struct txn_engine *eng, const char *name, size_t len, uint32_t uid,
	      uint32_t gid, struct txn **out);
/* Find by name or id; returns a reference (txn_unref()) or NULL. */
struct txn *txn_find(struct txn_engine *eng, const char *name, size_t len);
struct txn *txn_find_id(struct txn_engine *eng, uint64_t id);
/* Transactions begun from now on get ids of first or above (ids are never reused while
 * the process lives; a process that takes over a mount from another starts above the
 * ids the kernel may still hold). */
void txn_engine_first_id(struct txn_engine *eng, uint64_t first);
struct txn *txn_ref(struct txn *tx);
void txn_unref(struct txn *tx);
/* Abort (if open) and remove from the table.  -EBUSY while a commit is in flight. */
int txn_remove(struct txn_engine *eng, const char *name, size_t len);
/* Names of every transaction in the table, sorted; free with dirents_free(). */
int txn_list_names(struct txn_engine *eng, struct dirent_entry **out, size_t *n);

uint64_t txn_id(const struct txn *tx);
const char *txn_name(const struct txn *tx);
uint32_t txn_uid(const struct txn *tx); /* who began it (owns .tx/NAME) */
uint32_t txn_gid(const struct txn *tx);
enum txn_state txn_get_state(struct txn *tx);
int64_t txn_begin_ts(const struct txn *tx);
int64_t txn_timeout_ms(struct txn *tx);
/* Milliseconds until tx's deadline while it is open or committing (>= 0); 0 otherwise. */
int64_t txn_expires_in_ms(struct txn *tx);

/* Staging; each checks the state: -ETIMEDOUT, -ESTALE, -EROFS (committed), -ENOENT;
 * -EDQUOT past max_txn_bytes or max_user_txn_bytes (staged bytes: the paths and values
 * of staged ops, renamed keys included, and the names and contents of note files). */
int txn_stage_put(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		  struct blob *value);
/*
 * A writer's staging, undone if one of its writes fails later: as txn_stage_put, and
 * *undo (NULL before the writer's first staging; then the caller's, freed with
 * txn_undo_free()) records what path held before that first staging and the value
 * staged last.  txn_stage_undo() puts that back, if what is staged at path is still the
 * writer's last value (a later writer's value, a rename or a delete since stay), and
 * frees *undo (NULL after).  Its charge is forced: those bytes were staged before.
 */
struct txn_undo;
int txn_stage_put_undo(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		       struct blob *value, struct txn_undo **undo);
/*
 * The writer of undo wrote n bytes at off of its value, now new_len bytes long (off + n
 * <= new_len; zeros where it grew and nothing was written): the staged value at path
 * changes in place when nobody else holds it, else a copy does, so that a value written
 * in small pieces costs each write its own bytes, not the whole value.  0; -EAGAIN when
 * what is staged at path is no longer the writer's last value (stage the whole value
 * with txn_stage_put_undo then); or the errors of txn_stage_put.
 */
int txn_stage_patch(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		    size_t off, const void *data, size_t n, size_t new_len, struct txn_undo *undo);
void txn_stage_undo(struct txn_engine *eng, struct txn *tx, struct txn_undo **undo);
void txn_undo_free(struct txn_undo *undo);
int txn_stage_delete(struct txn_engine *eng, struct txn *tx, const char *path, size_t len);
int txn_stage_rename(struct txn_engine *eng, struct txn *tx, const char *src, size_t slen,
		     const char *dst, size_t dlen, bool noreplace);
/* Stages a put of each other's value on the keys a and b (RENAME_EXCHANGE); -ENOENT
 * when either is missing in the view, -EINVAL when either is a directory. */
int txn_stage_exchange(struct txn_engine *eng, struct txn *tx, const char *a, size_t alen,
		       const char *b, size_t blen);
int txn_stage_mkdir(struct txn_engine *eng, struct txn *tx, const char *path, size_t len);
int txn_stage_rmdir(struct txn_engine *eng, struct txn *tx, const char *path, size_t len);
/* Would staging a value of value_len bytes at path (a note file's name when note) fit
 * the byte limits, in place of what is staged there now?  0 or -EDQUOT (counted as a
 * refusal).  For refusing a write() before its close() stages it. */
int txn_stage_room(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		   size_t value_len, bool note);
/* May tx take writes now?  0, or -ETIMEDOUT, -ESTALE, -EROFS (committed), -EBUSY
 * (commit in flight), -ENOENT (aborted). */
int txn_writable(struct txn *tx);
/* -EBUSY once an operation is staged; -EINVAL out of range (1..max_txn_timeout_ms). */
int txn_set_timeout(struct txn_engine *eng, struct txn *tx, int64_t timeout_ms);

/* ---- isolation, preconditions and the read set (readset.c) ---------------------------- */

/*
 * Isolation.  A snapshot transaction's commit checks only what it writes: two that read
 * the same keys and each write another both commit (write skew).  A serializable one
 * also records what its view read and its commit fails with -ESTALE
 * (TXN_CONFLICT_READ, .status naming the key) when any of it was committed by another
 * transaction after it began:
 *  - a key read (txn_read()) or stat'ed (txn_stat()) at depth 3 or more, or the
 *    absence of one (-ENOENT there): a change of that key, or anything below its path;
 *  - a directory listed (txn_list()): any change at or below it (a prefix range).
 * Reads of paths it staged itself (a put, a delete, a directory) are not recorded, and a
 * recorded read of a path staged at commit is not checked: its own writes are checked
 * as writes.  (A name looked up before it was staged, as a create does, counts again if
 * the transaction drops what it staged there: a key made and removed in it.)
 * Directories stat'ed are not recorded; listing one is.  A recorded read is charged to
 * the transaction's bytes (its path), so a read can fail with -EDQUOT past
 * max_txn_bytes (nothing is served that is not recorded).
 */
/* "snapshot" or "serializable", with an optional trailing newline: 0 or -EINVAL. */
int txn_isolation_parse(const char *s, size_t len, enum txn_isolation *out);
const char *txn_isolation_name(enum txn_isolation iso);
/* Set tx's isolation: -EBUSY once tx staged an operation or read from its view (a read
 * the serializable mode would record), whatever the level asked; else as
 * txn_writable(). */
int txn_set_isolation(struct txn *tx, enum txn_isolation iso);
enum txn_isolation txn_get_isolation(struct txn *tx);

/*
 * Preconditions (.tx/NAME/.expect/<ns>/<agent>/<key>): checked at commit against the
 * committed state, under the same lock and at the same point as the write conflicts; one
 * that does not hold fails the commit with -ESTALE (TXN_CONFLICT_PRECONDITION) naming
 * its key.  A transaction with preconditions and no ops is a check: it commits empty.
 */
enum txn_expect_kind {
	TXN_EXPECT_VERSION = 1, /* the key exists at exactly this version */
	TXN_EXPECT_ABSENT,      /* the key does not exist ("0" or "absent") */
	TXN_EXPECT_PRESENT,     /* the key exists, at any version */
};
struct txn_expect {
	enum txn_expect_kind kind;
	int64_t version; /* TXN_EXPECT_VERSION: >= 1 */
};
/*
 * The content of an .expect file: a decimal version ("0": absent), "absent" or
 * "present", with an optional trailing newline.  0, or -EINVAL.  With partial, the
 * bytes so far of a write not finished: 0 when more bytes could still make them
 * valid (out is then not set unless they are valid already), -EINVAL when none can.
 */
int txn_expect_parse(const void *buf, size_t len, bool partial, struct txn_expect *out);
/* The content an .expect file reads back: "7\n", "absent\n" or "present\n". */
int txn_expect_format(const struct txn_expect *e, char *buf, size_t cap);
/* Set (replace) the precondition on key path (depth >= 3): -EINVAL for a path that is
 * no key, -EDQUOT past the byte limits (its path is charged), or txn_writable()'s
 * errors. */
int txn_expect_set(struct txn *tx, const char *path, size_t len, const struct txn_expect *e);
/* -ENOENT when there is none. */
int txn_expect_get(struct txn *tx, const char *path, size_t len, struct txn_expect *out);
/* rm of an .expect file: -ENOENT when there is none. */
int txn_expect_remove(struct txn *tx, const char *path, size_t len);
/*
 * What path is below .expect: TXN_FILE when a precondition is set there; TXN_DIR for
 * "" (.expect itself), a namespace or agent (any valid name, as in the live tree), a
 * directory made there with txn_expect_mkdir(), the parent of a precondition, or a
 * directory of tx's view; else -ENOENT.  Below "", a finished transaction answers as its
 * view does (-EROFS once committed, -ESTALE, -ETIMEDOUT, -ENOENT).
 */
int txn_expect_stat(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		    enum txn_type *type);
/* The entries directly below directory path of .expect: preconditions and directories
 * holding them or made there.  Free with dirents_free(). */
int txn_expect_list(struct txn *tx, const char *path, size_t len, struct dirent_entry **out,
		    size_t *n);
/* mkdir below .expect (depth >= 3): a place to write preconditions on keys in a
 * directory that does not exist yet.  -EEXIST when path is one already. */
int txn_expect_mkdir(struct txn_engine *eng, struct txn *tx, const char *path, size_t len);
/* rmdir below .expect: -ENOTEMPTY while preconditions are set below path; 0 (the
 * directory made there goes, if one was). */
int txn_expect_rmdir(struct txn *tx, const char *path, size_t len);

/* Note files at the top of the transaction directory (.commit.pending is one). */
int txn_note_put(struct txn *tx, const char *name, struct blob *content);
int txn_note_get(struct txn *tx, const char *name, struct blob **out);
int txn_note_remove(struct txn *tx, const char *name);
int txn_note_rename(struct txn *tx, const char *from, const char *to);
int txn_note_list(struct txn *tx, struct dirent_entry **out, size_t *n);

/*
 * Commit tx with the content of note file `note_name` as its note.  Validation errors
 * are returned at once (-ETIMEDOUT, -ESTALE, -EROFS, -EBUSY); otherwise 0 is returned and
 * req->done runs later with the commit's result.
 */
int txn_commit_tx(struct txn_engine *eng, struct txn *tx, const char *note_name,
		  struct txn_commit_req *req);

/* ---- the past: state as of a commit, and every version of a key ---------------------- */

/*
 * The tree as of commit ts (inclusive), read from the log.  -ENOENT when ts is beyond
 * the head (or below 1) or nothing is at path then.  Namespaces and agents are implicit
 * directories, as in the live tree.
 */
int txn_at_stat(struct txn_engine *eng, int64_t ts, const char *path, size_t len,
		struct txn_entry *out);
int txn_at_read(struct txn_engine *eng, int64_t ts, const char *path, size_t len,
		struct blob **out, struct txn_entry *meta);
int txn_at_list(struct txn_engine *eng, int64_t ts, const char *path, size_t len,
		struct dirent_entry **out, size_t *n);

struct txn_version {
	int64_t version;
	int64_t commit_ts;
	int64_t time_ns;
	bool deleted;
	size_t size;
};

/* Names that ever held keys below prefix: namespaces (""), agents ("ns"), or the whole
 * keys of "ns/agent" (which may contain '/'). */
int txn_history_names(struct txn_engine *eng, const char *prefix, size_t len,
		      struct dirent_entry **out, size_t *n);
/* Every version of key path, oldest first, as an array the caller frees; -ENOENT if the
 * key never existed. */
int txn_history(struct txn_engine *eng, const char *path, size_t len, struct txn_version **out,
		size_t *n);
/* One version's value (empty for a delete); -ENOENT if there is no such version. */
int txn_history_value(struct txn_engine *eng, const char *path, size_t len, int64_t version,
		      struct blob **out, struct txn_version *meta);
/* One row of a key's history, with the name of the transaction that wrote it ("auto"
 * for an autocommit, "" when the log has none).  txn points into the engine's buffers:
 * valid during the callback only. */
struct txn_history_row {
	struct txn_version v;
	const char *txn;
};
/* Called once per row; a non-zero return stops the walk and is what the walk returns. */
typedef int (*txn_history_fn)(void *arg, const struct txn_history_row *row);
/* Every version of key path, oldest first, to fn; -ENOENT if the key never existed (fn
 * was not called). */
int txn_history_each(struct txn_engine *eng, const char *path, size_t len,
		     txn_history_fn fn, void *arg);

/* ---- the event log ------------------------------------------------------------------- */

/* What an operation of a committed transaction did.  TXN_OP_ATTR sets (value holds
 * {"uid":N,"gid":N,"mode":"0750"}) or clears (empty value) the owner record of the
 * namespace or agent at path.  TXN_OP_MKDIR and TXN_OP_RMDIR make and remove an
 * explicit directory below an agent (version 0, no value). */
enum txn_op_kind { TXN_OP_PUT = 1, TXN_OP_DELETE, TXN_OP_ATTR, TXN_OP_MKDIR, TXN_OP_RMDIR };

struct txn_op {
	const char *path;      /* "ns/agent/key" ("ns" or "ns/agent" for TXN_OP_ATTR) */
	size_t path_len;
	enum txn_op_kind kind;
	int64_t version;       /* the key's version this op made (0 for TXN_OP_ATTR) */
	const void *value;     /* NULL for a delete */
	size_t value_len;
};

/* One committed transaction; it and everything it points to are valid during the
 * callback only. */
struct txn_event {
	int64_t commit_ts;
	int64_t time_ns;       /* wall clock of the commit, ns since the epoch */
	const char *txn;       /* its name; "auto" for an autocommit */
	const void *note;      /* the bytes of its .commit note; note_len may be 0 */
	size_t note_len;
	const struct txn_op *ops;
	size_t n_ops;
};

/* Called once per event; a non-zero return stops the walk and is what it returns. */
typedef int (*txn_event_fn)(void *arg, const struct txn_event *ev);

/*
 * Every committed transaction with from_ts <= commit_ts <= to_ts, in commit order, to
 * fn.  With a filter "ns/agent" (filter_len > 0) only transactions that touched that
 * agent, with only its ops; with "ns/agent/p[/...]" only those with ops on the key or
 * directory p/... or below it, with only those ops (a prefix is whole components:
 * "ns/a/job" takes "job" and "job/1", not "jobs").  -EINVAL for a filter that is not a
 * valid path of two components or more.  Store errors (-EIO, -ENOMEM) may come after
 * some events were delivered.
 */
int txn_events(struct txn_engine *eng, const char *filter, size_t filter_len,
	       int64_t from_ts, int64_t to_ts, txn_event_fn fn, void *arg);

/* ---- what a transaction is, for .status and .commit ---------------------------------- */

/* Why a commit failed with -ESTALE (.status names the key): */
enum txn_conflict {
	TXN_CONFLICT_NONE = 0,
	TXN_CONFLICT_WRITE,        /* a key it writes was committed since it began (or a
				    * shape clash with such a commit) */
	TXN_CONFLICT_READ,         /* serializable: something its view read was committed
				    * since it began */
	TXN_CONFLICT_PRECONDITION, /* a precondition (.expect) did not hold at commit */
	TXN_CONFLICT_SNAPSHOT,     /* restored after the serving process died, its
				    * snapshot could not be rebuilt exactly (txn_restore()):
				    * the transaction failed and must be run again */
};

struct txn_status {
	enum txn_state state;
	bool deadline_passed;  /* TXN_OPEN, but past its deadline: the reaper has not run
				* yet and a write would find it expired */
	const char *name;      /* tx's own name: valid while the caller holds tx */
	size_t ops;            /* staged puts and deletes; the committed ones once committed */
	int64_t begin_ts;
	int64_t timeout_ms;
	int64_t expires_in_ms; /* TXN_OPEN or TXN_COMMITTING: time left, >= 0 */
	int64_t commit_ts;     /* TXN_COMMITTED: its commit, and the commit's wall clock */
	int64_t commit_time_ns;
	int err;               /* the last failure (negative errno), or 0 */
	char *err_key;         /* the key that failed, or NULL; owned by out */
	enum txn_isolation isolation;
	enum txn_conflict conflict; /* err -ESTALE: what did not hold at err_key */
};
/* A consistent copy of tx's state: 0, or -ENOMEM.  Release with txn_status_release(). */
int txn_status(struct txn *tx, struct txn_status *out);
void txn_status_release(struct txn_status *st);


/* ---- the transaction journal: open transactions outlive the process (journal.c) ------- */

/*
 * A process that takes over a mount from one that died rebuilds the transaction table
 * from records the dead one handed to its journal hook (journal.c says how it works).
 * A record is a flat buffer of bytes, self-checking (a magic, a version, a length and
 * a CRC-32): the hook stores it as it is and the next process gives it back to
 * txn_restore(), in the order they were handed out.
 *
 * Each record holds the whole scalar state of one transaction (id, name, owner,
 * begin_ts, deadline, timeout, isolation, state and outcome) and the state, after the
 * change, of every item the change touched (a staged path, a read, a precondition, a
 * note): the absolute state, never a delta, so a record applied twice, or after a
 * dump that already holds it, changes nothing.  A change too big for one record (a
 * directory renamed with many values) is a group of records, all but the last marked
 * "more": txn_restore() applies a group only once its last record came, so a process
 * that died in the middle of handing one out loses the whole change, never half of it
 * (and the kernel's resent request makes it again).  One record is at most
 * TXN_JREC_MAX(max_value_bytes) bytes unless one item alone (a value, a note's
 * content) is bigger.
 *
 * The hook is called synchronously by the call that made the change, before it
 * returns (so a reply to the kernel never runs ahead of its record), from any thread,
 * with engine locks held (tx->lock always; the tree and table locks sometimes): it
 * must not call into the engine and may take only leaf locks of its own.  rec NULL
 * (len 0) says a record could not be built (out of memory): the journal no longer
 * describes the table.  Set the hook before the engine serves requests.
 */
#define TXN_JREC_MAX(max_value_bytes) ((size_t)(max_value_bytes) + 4096 + 3 * TXN_KEY_MAX)
typedef void (*txn_journal_fn)(void *arg, const void *rec, size_t len);
void txn_engine_set_journal(struct txn_engine *eng, txn_journal_fn fn, void *arg);

/* What a record says of itself (txn_jrec_decode()). */
struct txn_jrec_info {
	uint64_t id;          /* the transaction's id */
	int64_t begin_ts;     /* its snapshot (the pin the next start needs: txn_options) */
	enum txn_state state; /* its state when the record was made */
	bool more;            /* not the last record of a group */
	bool removed;         /* the transaction left the table */
};
/* Check a record (magic, version, length, checksum, every field in range) and read its
 * head: 0, or -EBADMSG for a buffer that is no intact record of this build's kind. */
int txn_jrec_decode(const void *rec, size_t len, struct txn_jrec_info *out);

/*
 * Compaction: hand fn records that describe every transaction in the table now (open
 * ones, and finished ones still lingering, whose .status and .commit clients read), as
 * if the journal were written from scratch.  It takes the table lock only to take a
 * reference on each transaction, then each tx->lock in turn while its records are
 * made: changes go on meanwhile, and their records go to the journal hook as usual.  A
 * journal rewritten this way must hold the dump's records followed by every record the
 * hook received since the dump began (some may repeat what the dump holds, which is
 * harmless: records are absolute states).  0, or -ENOMEM (fn received a NULL record).
 */
int txn_journal_dump(struct txn_engine *eng, txn_journal_fn fn, void *arg);

/*
 * Rebuild the table from a journal, one record at a time in journal order, after
 * txn_engine_open() and before the engine serves (before txn_engine_start()).  Each
 * transaction gets back its id (transactions begun later get higher ones), its name,
 * owner, begin_ts, deadline (CLOCK_MONOTONIC, which the processes of one boot share:
 * the time the mount paused counts), staged operations, read set, preconditions and
 * notes; a finished one its outcome.  An open transaction whose begin_ts this engine
 * cannot serve exactly (below txn_options.pin_ts or the retention horizon, or without
 * a pin, below the head) becomes TXN_CONFLICT with -ESTALE and TXN_CONFLICT_SNAPSHOT
 * at txn_restore_end(), never a wrong view.  0; -EBADMSG for a damaged record (nothing applied); -EEXIST
 * when another transaction holds its name; -ENOMEM.  Limits (max_open_txns, the byte
 * quotas) are not enforced on what is restored: it was admitted once.
 */
int txn_restore(struct txn_engine *eng, const void *rec, size_t len);
/*
 * A restored transaction whose commit the store holds (txn_applied_find() found the
 * request that asked for it): it becomes TXN_COMMITTED at commit_ts (commit_time_ns
 * its wall clock, as txn_applied says), and the note file the commit took
 * (note_name, as given to txn_commit_tx(); NULL: none) goes, so .status and .commit
 * read as after a commit answered.  Journaled like any change.  0 (also when it is
 * committed at commit_ts already), -ENOENT (no such id), -EINVAL (not open, or
 * committed at another ts).
 */
int txn_restore_committed(struct txn_engine *eng, uint64_t id, int64_t commit_ts,
			  int64_t commit_time_ns, const char *note_name);
/* After the last txn_restore(), before serving: fail the open transactions whose
 * snapshot cannot be served (journaled), drop any group whose last record never came
 * and the versions the pin kept that no open transaction needs. */
void txn_restore_end(struct txn_engine *eng);

#endif
