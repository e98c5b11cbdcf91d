/* SPDX-License-Identifier: MIT */
/*
 * txn_i.h - private declarations shared by the files of the txn layer: the versioned
 * tree, transactions, the engine, a batch being committed, and the internal functions
 * one file offers another.  Nothing outside txn/ includes it; txn.h is the manual.
 *
 * Where things are: tree.c (the tree, path rules, views, owners, live directories),
 * table.c (the transaction table, references, state, notes), stage.c (staging),
 * committer.c (the commit queue and the group-commit loop, with the state machine),
 * commit.c (validating and applying one request inside a batch), reaper.c (expiry,
 * snapshots written), recover.c (the checks of the log at open, replay, snapshot load,
 * verify), salvage.c (--recover-from-snapshot), engine.c (lifecycle, stats), past.c
 * (.at, .history and the event log, read from the store), readset.c (isolation, the
 * read set, preconditions and the checks of a commit), retain.c (pruning the log by the
 * retention rules, on the committer thread).
 *
 * Invariants of the derived state (the code that keeps each is named)
 *  1. The store's log is the truth.  The tree here is derived from it: txn_recover()
 *     (recover.c) loads the newest snapshot and replays the log after it, and a commit
 *     becomes visible only after store_append() returned success for the batch holding
 *     it (publish_batch() in committer.c).
 *  2. Every key that ever existed has a node whose newest version is its current state
 *     (a delete is a version without a value), so per-key versions continue after a
 *     delete and after a restart (apply_op() in commit.c, replay_one() in recover.c).
 *  3. A version with commit_ts > published_ts is invisible to every reader.  The
 *     committer appends versions under the tree lock before the store write and either
 *     publishes them (raising published_ts) or undoes them (txn_batch_undo()), so readers
 *     never block on fsync and never see an uncommitted value.
 *  4. A version chain keeps, below its head, every version some pinned snapshot (an open
 *     or committing transaction's begin_ts) can still see; older ones are pruned when a
 *     batch publishes (txn_node_prune() with pinned_min_locked() in committer.c).
 *  5. commit_ts values are consecutive: head_ts is advanced only by the committer
 *     (run_batch()), and rolled back with the undo of a failed batch.
 *  6. head_desc/pub_desc count the live keys and explicit directories strictly below a
 *     node at the head and at published_ts (txn_node_adjust_desc(), txn_node_set_dir());
 *     a directory exists in the live tree while pub_desc > 0 or it is explicit itself.
 *  7. An explicit directory below an agent (mkdir) is state like a key: a STORE_MKDIR
 *     op in the log and dir_head at the head when applied, explicit_dir once published
 *     (publish_batch()), gone again with STORE_RMDIR; a node is never a live key and an
 *     explicit directory at once.  Namespaces and agents made with mkdir are
 *     explicit_dir in memory only (they exist implicitly anyway).
 *  8. entries_ns of a directory node is the commit time of the last published commit
 *     that added or removed an entry of it (a key made or deleted, a directory made or
 *     removed, either end of a rename); set at publish, replay and snapshot load.
 *  9. Nothing outside the log is ever ahead of it: a snapshot or a mark is written only
 *     after the log holding its commits was synced (txn_engine_snapshot(),
 *     txn_recover_mark()), so a log found behind the newest snapshot or mark lost
 *     acknowledged commits, and is refused (txn_recover_open_store(), txn_recover()).
 * (.at, .history and the event log, read from the store), readset.c (isolation, the
 * read set, preconditions and the checks of a commit), retain.c (pruning the log by the
 * retention rules, on the committer thread).
 *
 * Locks, in rank order (take a lower rank before a higher one; a leaf lock is never
 * held while another is taken):
 *   1 eng->tree_lock  ->  2 eng->table_lock  ->  3 tx->lock;   leaves: eng->q_lock,
 *   eng->lat_lock, eng->marks_lock.  No txn lock is held across a call into the store
 *   (readers never wait for an fsync; marks_lock is the one exception, a leaf held by
 *   the thread writing the marks), nor while a completion callback or the notify hook
 *   runs.
 */
#ifndef STATEHOUSE_TXN_I_H
#define STATEHOUSE_TXN_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "hash.h"
#include "store.h"
#include "txn.h"

#define AUTO_TXN_NAME "auto"

struct version {
	struct version *older;
	int64_t commit_ts;
	int64_t version;
	int64_t time_ns;
	struct blob *value; /* NULL: a delete */
};

struct node {
	char *name;
	size_t name_len;
	struct node *parent;
	struct node *children; /* uthash head */
	UT_hash_handle hh;
	struct version *versions; /* newest first */
	uint32_t head_desc;
	uint32_t pub_desc;
	bool explicit_dir; /* a directory made with mkdir, published (invariant 7) */
	bool dir_head;     /* the same at the head (below an agent only) */
	int64_t entries_ns; /* when its entries last changed (invariant 8) */
	struct dattr *attr; /* namespace or agent: recorded owner and mode; a key: its own
			     * mode (uid and gid unused); NULL: none (published state) */
	int64_t sub_ts;     /* newest change at or below it at the head (invariant 10) */
};

struct dattr {
	uint32_t uid, gid, mode;
};

/* ST_DIR: a directory made; ST_RMDIR: a committed explicit directory removed. */
enum staged_kind { ST_PUT = 1, ST_DELETE, ST_DIR, ST_RMDIR };

struct staged {
	char *path;
	size_t len;
	enum staged_kind kind;
	struct blob *value;
	size_t charge;     /* bytes charged for it (txn_charge_locked()): path and value */
	int64_t time_ns;   /* when it was staged: a staged file's times until the commit */
	UT_hash_handle hh;
};

/* A read of a serializable transaction's view (readset.c): a key's path, or a directory
 * listed (the prefix range of everything below it). */
struct readrec {
	char *path;
	size_t len;
	UT_hash_handle hh;
};

/* A precondition below .expect, or a directory made there (dir: no condition). */
struct expectrec {
	char *path;
	size_t len;
	bool dir;
	struct txn_expect e;
	UT_hash_handle hh;
};

struct note {
	char *name;
	struct blob *content;
	size_t charge;     /* bytes charged for it: name and content */
	UT_hash_handle hh;
};

/* What one user's transactions hold (limits: max_txns_per_user, max_user_txn_bytes).
 * Entries live as long as the engine (there are as many as users who ever began one)
 * and each transaction holding one, which may outlive the engine: refs counts both. */
struct txn_user {
	uint32_t uid;
	atomic_uint refs;
	unsigned n_txns;        /* in the table, open or finished; under table_lock */
	atomic_size_t bytes;    /* staged bytes of its transactions (txn_charge_locked()) */
	UT_hash_handle hh;
};

struct txn {
	char *name;       /* immutable after txn_begin() */
	uint64_t id;
	uint32_t uid, gid;
	int64_t begin_ts;
	atomic_uint refs;
	struct txn_engine *eng;  /* immutable after txn_begin() */
	struct txn_user *user;   /* who began it; immutable after txn_begin() */
	bool exempt;             /* root or the daemon's user: no per-user limits */
	UT_hash_handle hh_name; /* engine table, under table_lock */
	UT_hash_handle hh_id;
	bool in_table;
	/* Under table_lock: on eng->open_txns while OPEN or COMMITTING, then on
	 * eng->finished (oldest first) until reaped or removed. */
	struct txn *lprev, *lnext;
	int64_t finished_mono_ns;

	/* Rank 3.  Protects everything below.  state is written with table_lock held as
	 * well (txn_unpin_locked()), so either lock is enough to read it. */
	pthread_mutex_t lock;
	enum txn_state state;
	int64_t begin_mono_ns;
	int64_t timeout_ms;
	struct staged *staged;
	size_t n_ops;     /* staged puts and deletes */
	size_t n_deletes; /* staged deletes */
	size_t staged_bytes; /* charged for staged ops and notes (max_txn_bytes) */
	struct note *notes;
	int err;          /* after a failure */
	char *err_key;
	int64_t commit_ts;
	int64_t commit_time_ns;
	size_t committed_ops;
	enum txn_isolation isolation;
	enum txn_conflict conflict; /* with err -ESTALE: which check failed */
	bool touched;               /* staged or read something: isolation is fixed */
	struct readrec *reads;      /* serializable: keys (and absences) read */
	struct readrec *ranges;     /* serializable: directories listed */
	struct expectrec *expects;  /* preconditions and the directories of .expect */
	/* The journal (journal.c): what the change being made touched, handed to the
	 * hook in one record before the lock is let go (txn_jflush_locked()). */
	struct jref *jd;
	size_t njd, cap_jd;
	bool jhead;  /* the scalar state changed */
	/* While COMMITTING: the note its commit took (the request's, borrowed until
	 * settle_tx()), still journaled as present (journal.c, design note 4). */
	const char *jnote_name;
	struct blob *jnote;
	bool jlost;  /* a touched item could not be noted: the record is lost */
};

/* An item of a transaction a change touched (journal.c). */
enum jitem_type { JI_STAGED = 1, JI_READ, JI_RANGE, JI_EXPECT, JI_NOTE };
struct jref {
	int type;
	char *path; /* a staged or read path, a precondition's, a note's name */
	size_t len;
};

struct txn_engine {
	struct txn_options opt;
	struct store *store;

	/* Rank 1.  Protects the tree, published_ts and head_ts. */
	pthread_rwlock_t tree_lock;
	struct node root;
	int64_t published_ts;
	int64_t head_ts; /* last commit_ts handed out; written by the committer only */

	/* Rank 2.  Protects the transaction table and its counters. */
	pthread_mutex_t table_lock;
	struct txn *by_name;
	struct txn *by_id;
	unsigned n_open;
	uint64_t next_id;
	struct txn *open_txns;  /* OPEN and COMMITTING ones (utlist, lprev/lnext) */
	struct txn *finished;   /* the others still in the table, oldest finish first */
	unsigned n_finished;
	struct txn_user *users; /* by uid */
	txn_reap_fn reap_fn;    /* txn_engine_set_reap_hook() */
	void *reap_arg;
	/* The journal hook (txn_engine_set_journal()): set before serving, read by any
	 * thread without a lock. */
	txn_journal_fn journal_fn;
	void *journal_arg;
	/* Restore (restore.c), before serving: the oldest begin_ts whose view the chains
	 * serve exactly (set by txn_recover()), and groups of records waiting for their
	 * last one. */
	int64_t view_floor_ts;
	struct jpending *pending;

	/* Leaf lock.  Protects the commit queue and `stopping`. */
	pthread_mutex_t q_lock;
	pthread_cond_t q_cond;
	struct txn_commit_req *q_head;
	struct txn_commit_req **q_tail;
	bool stopping;
	pthread_cond_t reaper_cond; /* with q_lock */

	pthread_t committer;
	pthread_t reaper;
	bool started;
	bool ran; /* started once: close then writes the final snapshot and the clean mark */

	txn_notify_fn notify;
	void *notify_arg;

	/* Counters for .metrics: atomics, bumped where things happen. */
	atomic_uint_fast64_t n_begun, n_committed, n_aborted, n_expired, n_conflicted,
		n_auto, n_failed, n_written, n_deleted, n_reaped;
	atomic_uint_fast64_t n_refused[TXN_REFUSED_N]; /* by enum txn_refusal */
	pthread_mutex_t lat_lock; /* leaf: protects lat_* and n_batches, n_batched */
	uint64_t lat_bucket[TXN_LAT_BUCKETS];
	uint64_t lat_count;
	uint64_t n_batches, n_batched; /* store writes (one fsync each) and their commits */
	double lat_sum_s;

	char *datadir;
	int64_t last_recovery_ns;
	uint64_t last_replayed;
	/* Written by the thread taking a snapshot (the reaper, or close). */
	int64_t snap_ts;            /* commit of the newest snapshot written or loaded */
	int64_t snap_retry_ns;      /* after a failed snapshot, not before this */

	/* Leaf lock.  Protects marks and marked_ns (recover.c): written at open, by the
	 * reaper (snapshots, and once a second while the head moves), by the committer
	 * (a start recorded late) and at close. */
	pthread_mutex_t marks_lock;
	struct store_marks marks;
	int64_t marked_ns; /* CLOCK_MONOTONIC of the last marks written */
	bool have_marks;
	int64_t found_snap_ts; /* the newest valid snapshot at open */
	/* A start not yet recorded (the disk was full at open): the committer records it
	 * before its next append.  Committer only, after open. */
	atomic_bool start_pending;
	struct store_start pending_start;

	/* Retention (retain.c): the pruner and where its round stands, the committer
	 * thread's alone (opened before it starts, closed after it stopped); the counters
	 * are read by .metrics. */
	struct store_pruner *pruner;
	int retain_phase;
	int64_t retain_next_ns;   /* CLOCK_MONOTONIC: when the next round may begin */
	int64_t retain_last_ns;   /* the last step: when it began */
	int64_t retain_step_ns;   /* ... and how long it took */
	int64_t retain_commit_ns; /* the last batch: commits come (CLOCK_MONOTONIC) */
	int64_t retain_logged_ns; /* the last summary logged */
	uint64_t round_ops, round_events, logged_ops, logged_events;
	bool warned_no_shrink;
	int retain_err;           /* the last step's failure, said once */
	atomic_uint_fast64_t n_pruned_ops, n_pruned_events, free_bytes;
	atomic_bool free_known, shrinks;
#if STATEHOUSE_FAULT_INJECTION
	unsigned answer_pause_ms; /* txn_engine_set_answer_pause(); set before the start */
#endif

	/* A shared log (remote.c): the store woke the committer (with q_lock), and the
	 * counters of what came from other mounts. */
	bool remote_wake;
	int64_t remote_retry_ns; /* CLOCK_MONOTONIC: a failed pull is tried again then */
	atomic_uint_fast64_t n_pulled, n_behind;
};

/* ---- a batch being committed (committer.c builds it, commit.c fills it) -------------- */

struct applied {
	struct node *node;
	struct version *v;
};

struct attr_change {
	struct node *node;
	struct dattr *attr; /* owned; NULL clears */
	struct blob *val;   /* the log's form; the batch's store_op points into it */
};

/* An explicit directory made or removed; published with the batch. */
struct dir_change {
	struct node *node;
	bool make;
	int64_t time_ns;
};

/* A node's sub_ts before a request raised it (invariant 10). */
struct sub_undo {
	struct node *node;
	int64_t old;
};

struct batch {
	struct applied *a;
	size_t na, cap_a;
	struct store_event *ev;
	size_t nev, cap_ev;
	char **paths; /* every op's path, owned; handed to the invalidation hook */
	size_t np, cap_p;
	struct attr_change *ac; /* attribute changes, applied when the batch publishes */
	size_t nac, cap_ac;
	struct dir_change *dc; /* directories made or removed, applied at the head */
	size_t ndc, cap_dc;
	struct sub_undo *su;   /* sub_ts raised, to take back (invariant 10) */
	size_t nsu, cap_su;
	uint64_t n_put, n_del; /* ops of the requests that applied */
};

/* The ops of the event being built for one request (the array grows with the event). */
struct ev_build {
	struct store_op *ops;
	size_t n, cap;
};

/* ---- tree.c: paths, the tree, views, owners ------------------------------------------ */

/* Validate every component of a view path, and the key length of a key path. */
int txn_path_check(const char *path, size_t len);
bool txn_path_is_under(const char *p, size_t plen, const char *dir, size_t dlen);
/* "a/b" from a and b, malloc'ed; NULL on out of memory. */
char *txn_path_join(const char *a, size_t alen, const char *b, size_t blen, size_t *out_len);
/* Namespaces and agents (depth 1 and 2) are directories without keys. */
bool txn_implicit_dir(const char *path, size_t len);

struct node *txn_node_find(struct txn_engine *eng, const char *path, size_t len);
/* NULL on out of memory (nodes made on the way stay, empty, as harmless as unused). */
struct node *txn_node_find_or_create(struct txn_engine *eng, const char *path, size_t len);
void txn_node_free_tree(struct node *n);
struct version *txn_node_visible(const struct node *n, int64_t ts);
bool txn_node_live_at(const struct node *n, int64_t ts);
bool txn_node_head_live(const struct node *n);
void txn_node_adjust_desc(struct node *n, bool head, int delta);
/* Build "a/b/c" for node n into a malloc'ed string. */
char *txn_node_path(const struct node *n, size_t *out_len);
/* Drop versions no snapshot at or after keep_ts can see. */
void txn_node_prune(struct node *n, int64_t keep_ts);
bool txn_node_has_explicit_child(struct node *n);
/* Make (on) or remove an explicit directory at the head or published, keeping the
 * ancestors' head_desc or pub_desc. */
void txn_node_set_dir(struct node *n, bool head, bool on);
/* The parent of n had an entry added or removed at time_ns (invariant 8). */
void txn_node_touch_parent(struct node *n, int64_t time_ns);

struct staged *txn_staged_find(struct txn *tx, const char *path, size_t len);
/* Is committed explicit directory n (at path) in tx's view, not removed by a staged op?
 * Directories are not versioned: a transaction sees the published ones. */
bool txn_dir_kept_in_tx(struct txn *tx, const struct node *n, const char *path, size_t len);
/* Is anything (a key, a directory) below path in tx's view? */
bool txn_view_has_below(struct txn_engine *eng, struct txn *tx, const char *path, size_t len);
/* Resolve path in a view; callers hold the tree lock (read) and, for tx, tx->lock. */
int txn_view_resolve(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		     struct txn_entry *out, struct blob **value);

/* The log's form of an owner record, and back (NULL *out: cleared). */
/* The attributes of a namespace and of an agent in it from their records (NULL: none),
 * with the inheritance txn_dir_attr() describes. */
void txn_attr_compose(const struct txn_engine *eng, const struct dattr *ns,
		      const struct dattr *ag, struct txn_attr *ns_out, struct txn_attr *ag_out);
/* The log's form of an owner record: {"uid":N,"gid":N,"mode":"0750"} for a namespace or
 * an agent, {"mode":"0600"} for a key (key true). */
struct blob *txn_attr_encode(const struct txn_attr *a, bool key);
/* Parse a value written by txn_attr_encode(); NULL *out for an empty value (cleared).
 * A key's record needs only the mode. */
int txn_attr_decode(const void *data, size_t len, bool key, struct dattr **out);

/* ---- table.c: the transaction table and a transaction's state ------------------------- */

bool txn_deadline_passed(struct txn *tx);
/* Charge delta bytes (negative: give back) to tx and its user.  Unless force, -EDQUOT
 * past max_txn_bytes or max_user_txn_bytes, and nothing is charged.  tx->lock held (or
 * tx not shared yet). */
int txn_charge_locked(struct txn *tx, long long delta, bool force);
void txn_user_unref(struct txn_user *u);
/* Out of the table (both indexes and its list), and its user's count; table_lock and
 * tx->lock held.  The caller drops the table's reference. */
void txn_table_del_locked(struct txn_engine *eng, struct txn *tx);
/* May tx take new staged operations?  tx->lock held. */
int txn_stage_state_err(struct txn *tx);
/* Leave the pinning states; table_lock and tx->lock held. */
void txn_unpin_locked(struct txn_engine *eng, struct txn *tx, enum txn_state to);
void txn_fail_locked(struct txn *tx, int err, const char *key, size_t klen);
void txn_staged_free_all(struct txn *tx);
/* Set a note file, consuming content (also on failure); -EDQUOT past a byte limit
 * unless force (txn_charge_locked()). */
int txn_note_set(struct txn *tx, const char *name, struct blob *content, bool force);

/* Restore: a transaction with this id and name back in the table, open (table_lock
 * held; no limit applies).  -EEXIST when another one holds the name, -ENOMEM. */
int txn_table_restore_locked(struct txn_engine *eng, uint64_t id, const char *name,
			     size_t len, uint32_t uid, uint32_t gid, struct txn **out);
/* Keep eng->finished in the order of finished_mono_ns after tx's was set (table_lock). */
void txn_finished_sort_locked(struct txn_engine *eng, struct txn *tx);
/* Remove note name if there is one (giving back its charge).  tx->lock held. */
void txn_note_drop_locked(struct txn *tx, const char *name, size_t len);

/* ---- stage.c, readset.c: items put back by a restore (tx->lock held) -------------------- */

/* Stage kind (value consumed, may be NULL) at path as recorded, charges forced; kind 0
 * drops what is staged there.  0 or -ENOMEM. */
int txn_staged_load_locked(struct txn *tx, const char *path, size_t len, int kind,
			   struct blob *value, int64_t time_ns);
/* A read (JI_READ), a listed directory (JI_RANGE) or a precondition (JI_EXPECT: e NULL
 * for a directory of .expect) present or not, as recorded.  0 or -ENOMEM. */
int txn_readset_load_locked(struct txn *tx, int type, const char *path, size_t len,
			    bool present, const struct txn_expect *e);

/* ---- journal.c: records of changes for the journal hook -------------------------------- */

/* Note that the change being made touched an item of tx (nothing without a hook). */
void txn_jtouch_locked(struct txn *tx, int type, const char *path, size_t len);
/* The change is made: hand its record to the hook (if anything was touched, or
 * txn_jhead_locked() was called); tx->lock held. */
void txn_jflush_locked(struct txn *tx);
/* Forget what was touched without a record (a restore puts back what is journaled). */
void txn_jdrop_locked(struct txn *tx);
/* tx's scalar state (state, outcome, timeout, isolation) changed: flush a record. */
void txn_jhead_locked(struct txn *tx);
/* tx left the table: its last record.  tx->lock held. */
void txn_jremoved_locked(struct txn *tx);
/*
 * A record's bytes (native byte order: the journal never leaves the machine): a head,
 * the transaction's name, the failing key (err_key_len bytes), then n_items items, each
 * a struct jitem followed by its path and its value.  crc is the CRC-32 of the whole
 * record with crc 0.
 */
#define JREC_MAGIC 0x4a544853u /* "SHTJ" */
#define JREC_VERSION 1
enum { JREC_FULL = 1, JREC_MORE = 2, JREC_REMOVED = 4, JREC_CONT = 8 };
struct jhead {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;    /* JREC_*: FULL (a dump: forget the items first), MORE (a group's
			    * record, not its last), CONT (a group's, not its first), REMOVED */
	uint32_t len;      /* of the whole record */
	uint32_t crc;
	uint64_t id;
	int64_t begin_ts, begin_mono_ns, timeout_ms, commit_ts, commit_time_ns;
	int64_t finished_mono_ns;
	uint64_t committed_ops;
	uint32_t uid, gid;
	int32_t err;
	uint8_t state, isolation, conflict, touched;
	uint16_t name_len, err_key_len;
	uint32_t n_items;
};
/* what: JI_STAGED the staged kind (0: nothing staged); JI_READ, JI_RANGE, JI_NOTE 1
 * (present) or 0; JI_EXPECT 0 (none), 1 (a directory of .expect), 1 + the condition's
 * kind.  num: a staged op's time_ns, a condition's version. */
struct jitem {
	uint8_t type, what;
	uint16_t path_len;
	uint32_t value_len;
	int64_t num;
};
/* Check a record (txn_jrec_decode()'s checks) and copy its head: 0 or -EBADMSG. */
int txn_jrec_check(const void *rec, size_t len, struct jhead *out);

/* ---- commit.c: one request applied inside a batch (tree write lock held) -------------- */

int txn_apply_tx(struct txn_engine *eng, struct batch *b, struct txn_commit_req *req,
		 int64_t ts, int64_t time_ns, struct ev_build *eb);
int txn_apply_auto(struct txn_engine *eng, struct batch *b, struct txn_commit_req *req,
		   int64_t ts, int64_t time_ns, struct ev_build *eb);
/* Take back the versions applied from index mark on, newest first. */
void txn_batch_undo(struct batch *b, size_t mark);
/* Drop attribute changes from index mark on. */
void txn_batch_drop_attrs(struct batch *b, size_t mark);
/* Take back directory changes from index mark on, newest first. */
void txn_batch_undo_dirs(struct batch *b, size_t mark);

/* ---- readset.c: isolation, preconditions, the read set -------------------------------- */

/* Raise sub_ts of n and its ancestors to ts, logged in b (invariant 10): 0 or -ENOMEM. */
int txn_bump_sub(struct batch *b, struct node *n, int64_t ts);
/* Take back the sub_ts raised from index mark on, newest first. */
void txn_batch_undo_sub(struct batch *b, size_t mark);
/* A read of tx's view answered err (and e): record it as the isolation asks.  0, or
 * -EDQUOT / -ENOMEM when it could not be recorded (the read must fail then).  tx->lock
 * held; list: a directory listed. */
int txn_read_record_locked(struct txn *tx, const char *path, size_t len, int err,
			   const struct txn_entry *e, bool list);
/* At commit (tree write lock and tx->lock held, at the head, before tx's own ops apply):
 * the preconditions, then the write conflicts of ops (n sorted staged ops), then, for a
 * serializable transaction, what its view read.  0, or -ESTALE with tx's failure
 * recorded (key and conflict kind). */
int txn_check_commit_locked(struct txn_engine *eng, struct txn *tx, struct staged **ops,
			    size_t n);
/* Free the read set and the preconditions (finished, or freed).  tx->lock held. */
void txn_readset_free_locked(struct txn *tx);

/* ---- threads and recovery ------------------------------------------------------------- */

void *txn_committer_main(void *arg); /* committer.c */
/* retain.c: retention, done by the committer thread between batches. */
/* Open the pruner when a rule is set (txn_engine_open); 0 or an errno, logged. */
int txn_retain_open(struct txn_engine *eng);
void txn_retain_close(struct txn_engine *eng);
/* When (CLOCK_MONOTONIC ns) the next step is due; 0: never (no rule). */
int64_t txn_retain_due_ns(struct txn_engine *eng);
/* One step if one is due (short ones, now and then, while commits come). */
void txn_retain_step(struct txn_engine *eng);
/* The committer ran a batch: commits come, pruning steps back. */
void txn_retain_commit_seen(struct txn_engine *eng);
/* Queue an autocommit of kind at path (copied), recorded under id (NULL: none), and wait
 * for its result (committer.c). */
int txn_autocommit_wait(struct txn_engine *eng, enum txn_auto_kind kind, const char *path,
			size_t len, const struct txn_reqid *id);
void *txn_reaper_main(void *arg);    /* reaper.c */
/* Load the newest snapshot, replay the log after it, record the start (recover.c). */
int txn_recover(struct txn_engine *eng, int64_t t0, struct store_replay_stats *stats);
/* Open eng->store after checking, from outside the log, what it must hold (recover.c):
 * -ENODATA (logged with what was found and what to do) when acknowledged commits are
 * missing from it; nothing is changed then. */
int txn_recover_open_store(struct txn_engine *eng);
/* The newest commit that something outside the log proves was acknowledged. */
int64_t txn_recover_must_hold(const struct txn_engine *eng);
/* Load one snapshot entry into eng's tree (a store_snap_fn). */
int txn_recover_snap_load_one(void *arg, const struct store_snap_entry *e);
/* Apply one operation of the log to the tree, at the head and published alike (replay
 * at open, and the commits of other mounts); versions below keep may be pruned.  Tree
 * write lock held, or no other thread yet.  (recover.c) */
int txn_replay_op(struct txn_engine *eng, const struct store_replay_op *op, int64_t keep);

/*
 * A shared log (remote.c): txn_remote_wake() is the store's wake function; the committer
 * calls txn_remote_pull() (no lock held, nothing of a batch at the head) to apply the
 * commits of other mounts, publish them and hand their paths to the notify hook.
 * 0, or the store's error (the commits not applied stay for the next pull).
 */
void txn_remote_wake(void *arg);
int txn_remote_pull(struct txn_engine *eng);
/* Oldest snapshot still pinned (open or committing transactions), at most upto;
 * table_lock held.  (committer.c) */
int64_t txn_pinned_min_locked(struct txn_engine *eng, int64_t upto);
/* Record a pending start (the committer, before an append): 0 once it is recorded. */
int txn_recover_record_pending(struct txn_engine *eng);
/* Write the marks after a snapshot at ts, or at a clean stop (store closed). */
void txn_recover_mark(struct txn_engine *eng, int64_t head, bool clean_stop);
/* The reaper, every round: mark the published head once a second while it moves. */
void txn_recover_mark_often(struct txn_engine *eng);

#endif
