/* SPDX-License-Identifier: MIT */
/*
 * fs_i.h - what the files of the fs layer share: struct fs, inodes, handles, and the
 * table of operations through which fs_op_* (ops.c) reaches each area of the tree.
 *
 * Every area of the tree (live.c, tx.c, past.c, events.c, ctl.c) has one struct
 * fs_area_ops per inode kind it serves; fs_area() picks it from one array indexed by
 * enum ikind.  An operation left NULL gives the answer written next to it below.
 */
#ifndef STATEHOUSE_FS_I_H
#define STATEHOUSE_FS_I_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "blob.h"
#include "fs.h"
#include "grow.h"
#include "hash.h"
#include "render.h"
#include "supervise.h"
#include "txn.h"

enum ikind {
	IK_ROOT = 1,
	IK_TXDIR,   /* .tx */
	IK_HEALTH,  /* .health */
	IK_VERSION, /* .version */
	IK_METRICS, /* .metrics */
	IK_STATUS,  /* .status */
	IK_BACKUP,  /* .backup */
	IK_LIVE,    /* a path of the live tree */
	IK_TXROOT,  /* .tx/NAME */
	IK_TXPATH,  /* a path of a transaction's view */
	IK_TXNOTE,  /* a note file at the top of .tx/NAME */
	IK_TXCTL,   /* .status, .commit, .timeout_ms */
	IK_ATDIR,   /* .at */
	IK_AT,      /* .at/<ts>/path: txn_id holds ts */
	IK_HISTDIR, /* .history */
	IK_HIST,    /* .history/ns or .history/ns/agent */
	IK_HISTKEY, /* .history/ns/agent/<ekey>: path is the real key path */
	IK_HISTVER, /* .../<ekey>/<version>[.deleted]: txn_id holds the version */
	IK_HISTIDX, /* .../<ekey>/index.jsonl */
	IK_HISTSEG, /* .history/ns/agent/<segment>%+[/...]: path is ns/agent/seg[/seg...] */
	IK_EV,      /* below .events (txn_id 0) or .follow (txn_id 1): path inside */
	IK_TXEXPECT, /* .tx/NAME/.expect ("") and below: a precondition's key path */
	IK_COUNT
};

/* Fixed inode numbers of the names at the root (see fs_iget, fs_reply_tuple). */
#define INO_TXDIR 2
#define INO_HEALTH 3
#define INO_VERSION 4
#define INO_ATDIR 5
#define INO_HISTDIR 6
#define INO_EVDIR 7
#define INO_FOLLOWDIR 8
#define INO_METRICS 9
#define INO_STATUS 10
#define INO_BACKUP 11
#define INO_FIRST_DYNAMIC 16
#define UNKNOWN_INO 0xffffffffu

/* The operations whose requests .metrics counts (count.c). */
enum fs_req_op {
	FS_REQ_LOOKUP,
	FS_REQ_FORGET,
	FS_REQ_BATCH_FORGET,
	FS_REQ_GETATTR,
	FS_REQ_SETATTR,
	FS_REQ_MKDIR,
	FS_REQ_UNLINK,
	FS_REQ_RMDIR,
	FS_REQ_RENAME,
	FS_REQ_OPEN,
	FS_REQ_READ,
	FS_REQ_WRITE,
	FS_REQ_FLUSH,
	FS_REQ_RELEASE,
	FS_REQ_FSYNC,
	FS_REQ_OPENDIR,
	FS_REQ_READDIR,
	FS_REQ_RELEASEDIR,
	FS_REQ_STATFS,
	FS_REQ_SETXATTR,
	FS_REQ_GETXATTR,
	FS_REQ_LISTXATTR,
	FS_REQ_REMOVEXATTR,
	FS_REQ_CREATE,
	FS_REQ_POLL,
	FS_REQ_FALLOCATE,
	FS_REQ_SYMLINK,
	FS_REQ_MKNOD,
	FS_REQ_LINK,
	FS_REQ_N
};

struct handle;
struct pending;
struct orphan;
struct parked;
struct evsize;
struct nq_item;
struct ev_mark;

struct inode {
	uint64_t ino;
	uint64_t nlookup;
	enum ikind kind;
	enum txn_type type;
	uint64_t txn_id;
	char *path;
	size_t len;
	char *key;
	size_t keylen;
	bool hashed;
	unsigned writers;   /* open write handles */
	size_t writer_size; /* size of the newest one's buffer (for a key not yet committed) */
	UT_hash_handle hh_ino;
	UT_hash_handle hh_key;
	/* The inodes of one transaction (.tx/NAME and below), from fs->by_txn. */
	struct inode *tx_prev, *tx_next;
};

/* The inodes the kernel holds of one transaction, so that what its commit or its end
 * makes stale is found without walking the whole table. */
struct txn_inodes {
	uint64_t txn_id;
	struct inode *head;
	UT_hash_handle hh;
};

/* A copy of what an inode names, taken under the table lock. */
struct iref {
	uint64_t ino;
	enum ikind kind;
	enum txn_type type;
	uint64_t txn_id;
	char *path;
	size_t len;
};

enum hkind { H_CONTENT = 1, H_WRITE, H_DIR, H_EVENTS };

#define FS_MAX_GROUPS 64 /* supplementary groups of a caller that may_read looks at */

/* Who made a request: uid, gid and supplementary groups (c.groups points into groups). */
struct fs_caller {
	struct txn_caller c;
	uint32_t groups[FS_MAX_GROUPS];
};

struct handle {
	enum hkind kind;
	struct fs *fs;
	struct handle *all_prev, *all_next; /* fs->handles, under fs->handles_lock */
	/* What the kernel holds as fi->fh (never 0, never reused while the fs lives): the
	 * key of fs->by_fh, under fs->fh_lock.  A number, not a pointer, so that a process
	 * taking over the same /dev/fuse connection can resolve the kernel's values. */
	uint64_t id;
	UT_hash_handle hh_id;
	struct iref ir;
	/* Protects buf, size, dirty, written, failed and the H_EVENTS stream (flush may
	 * race a write).  Taken before itable_lock and the engine's locks. */
	pthread_mutex_t lock;
	char *buf;
	size_t size, cap;
	bool dirty;   /* holds a value not committed/staged yet */
	bool written; /* write() or ftruncate() happened: flush commits */
	int failed;   /* a write was refused (-EFBIG, -EDQUOT): nothing of it commits, and
		       * the flush reports it */
	bool append;  /* O_APPEND: every write goes to the end of the buffer */
	pid_t pid;    /* H_WRITE: the process that opened it, which sees its own size */
	/* H_WRITE in a transaction's view: what its path held before this handle first
	 * staged there, put back when one of its writes fails (under lock); and the bytes
	 * [chg_lo, chg_hi) changed since it last staged (chg: any; the size may have
	 * changed too). */
	struct txn_undo *undo;
	size_t chg_lo, chg_hi;
	bool chg;
	struct pending *pending; /* H_WRITE: the live create it made, until it commits */
	struct blob *content;      /* H_CONTENT */
	struct dirents ents;         /* H_DIR */
	/* H_EVENTS (under lock): a window of the stream, rendered on demand (events.c):
	 * ev holds its bytes from offset ev_off on, the lines of the commits up to
	 * ev_last_ts; ev_marks are places to start again from when a read goes back. */
	struct strbuf ev;
	size_t ev_off;
	int64_t ev_last_ts;
	int64_t ev_since;
	struct ev_mark *ev_marks;
	size_t ev_nmarks, ev_capmarks;
	char *ev_filter; /* "ns/agent[/prefix]", or "" for every op; owned */
	/* A reader other than root of an agent that ever had an owner record: its ops are
	 * shown as the past is (txn_may_read_at), per op; then the stream is its own and
	 * its size is not shared.  NULL: every op. */
	struct txn_owner_hist *ev_hist;
	struct fs_caller ev_caller;
	bool follow;
	int64_t ev_horizon;              /* the log's horizon at open (retention) */
	size_t ev_pos;                   /* end of the furthest read, for poll */
	struct fuse_pollhandle *ph;      /* under fs->nq_lock */
	struct handle *poll_next;        /* fs->polled list, under fs->nq_lock */
	bool polled;
};

/*
 * Lock order (take the earlier before the later; never hold one across fuse_reply_* or
 * fuse_lowlevel_notify_*, except where fs_events_wake says so for notify_poll):
 *   pending_lock  ->  handle->lock, itable_lock, the engine's locks
 *   handles_lock  ->  handle->lock
 *   handle->lock  ->  itable_lock, ev_lock, and the engine's locks (txn's tree_lock, ...)
 *   ev_lock       ->  the engine's locks (it is held while rendering)
 *   itable_lock, handles_lock, nq_lock, fh_lock: leaves.
 * fh_lock is taken with no other lock held and nothing is taken under it (handle.c:
 * fs_handle_new, fs_handle_free, fs_handle_get, fs_handle_adopt, fs_handle_ids_start),
 * so a request resolving its fi->fh never waits behind a handle's lock or a commit.
 */
struct fs {
	struct txn_engine *eng;
	struct fuse_session *se;
	struct fs_options opt;
	uid_t uid;
	gid_t gid;
	int64_t start_ns;
	char *datadir, *mountpoint; /* owned copies, for .status */

	atomic_uint_fast64_t key_reads; /* opens of live keys for reading */
	atomic_uint_fast64_t pooled;    /* requests handed to the pool (loop.c) */
	atomic_uint_fast64_t requests[FS_REQ_N]; /* FUSE requests received (count.c) */

	/* Sizes of event streams as of ev_sizes[i].last_ts, known once a reader read that
	 * stream to its end, so stat (which the kernel sends without a file handle, fstat
	 * included) renders only what is new since, and never a whole stream.  ev_lock is
	 * held while rendering, so it ranks before the engine's locks (render_events
	 * takes the tree lock and the store's); no other lock of this layer is held with
	 * it. */
	pthread_mutex_t ev_lock;
	struct evsize *ev_sizes;
	unsigned n_ev_sizes;

	/* Leaf lock: protects by_ino, by_key, by_txn and inode fields. */
	pthread_mutex_t itable_lock;
	struct inode *by_ino;
	struct inode *by_key;
	struct txn_inodes *by_txn; /* inodes of kinds IK_TXROOT..IK_TXCTL, by txn_id */

	/* Protects the list of open handles, which fs_free() frees when the kernel's
	 * releases never came (they are asynchronous and lost at unmount).  Taken before
	 * a handle's lock (fs_handle_writer), otherwise a leaf. */
	pthread_mutex_t handles_lock;
	struct handle *handles;
	struct orphan *orphans; /* unlinked live keys still open, under handles_lock */

	/* Leaf lock: protects by_fh (every handle by its id, fi->fh) and next_fh, the
	 * next id to hand out (ids start at 1 and are never reused; 0 is "no handle"). */
	pthread_mutex_t fh_lock;
	struct handle *by_fh;
	uint64_t next_fh;

	/* Protects the live creates not committed yet (handle.c).  Held while a write
	 * handle's value is queued or staged and while an unlink or rename decides about
	 * a pending create: taken before a handle's lock, itable_lock and the engine's
	 * locks. */
	pthread_mutex_t pending_lock;
	pthread_cond_t pending_cond; /* a pending create stopped answering */
	struct pending *pending;

	/* Leaf lock: protects the notifier queue, parked, polled, wake and every
	 * handle's ph, poll_next and polled. */
	pthread_mutex_t nq_lock;
	pthread_cond_t nq_cond;
	struct nq_item *nq_head, **nq_tail;
	bool nq_stopping;
	pthread_t notifier;
	bool notifier_started;
	struct parked *parked;   /* .follow reads waiting for a commit */
	struct handle *polled;   /* .follow handles with a poll handle */
	bool wake;               /* something parked needs a look */

	struct fs_pool *pool;    /* loop.c: requests that may wait; NULL with -s */

	/* Supervision (supervise.h): this worker's hooks, and the node journal (written
	 * under itable_lock when journaled). */
	struct fs_worker *worker;
	struct fs_journal jn;
	bool journaled;

	/* romount.c: the read-only mount's connection, which every invalidation of the live
	 * tree also reaches (notify.c), and its path for .status; NULL without one.  Set
	 * before the main loop serves, cleared after it and the notifier stopped. */
	struct fuse_session *_Atomic ro_se;
	const char *ro_mountpoint;
};

/* An area operation that has replied itself, or will when a commit completes. */
#define FS_REPLIED 1

/* How long the kernel may cache what a lookup or getattr returned. */
enum fs_cache {
	CACHE_NONE = 0, /* generated files: they change without commits */
	CACHE_ALL,      /* entry_timeout_s for names and attributes */
	CACHE_DIRS,     /* names always; attributes of directories only */
};

/*
 * The operations of one kind of inode.  p is a parent directory, r the inode itself;
 * an iref filled by an operation owns its path (ops.c frees it).  Operations return 0,
 * a negative errno, or FS_REPLIED.  NULL means the answer given after each line.
 */
struct fs_area_ops {
	bool live;      /* the live tree: a writer's bytes commit at flush and stay off the
			 * page cache that the inode's readers share */
	bool read_only; /* the past: every change below it fails with EROFS */
	bool slow;      /* its requests may wait on SQLite: answered by the pool (loop.c) */
	enum fs_cache cache_lookup, cache_getattr;
	/* The longest the kernel may cache r's name and attributes, in seconds, whatever
	 * cache_lookup and cache_getattr say.  NULL: no limit. */
	double (*cache_limit_s)(struct fs *fs, const struct iref *r);
	/* A child's tuple in *out.  NULL: ENOTDIR. */
	int (*lookup)(struct fs *fs, const struct iref *p, const char *name, struct iref *out);
	/* Attributes with the type filled; owner and mode follow.  NULL: ENOENT. */
	int (*stat)(struct fs *fs, const struct iref *r, struct stat *st);
	/* Owner, group and mode (st already filled by stat).  NULL: the daemon's. */
	void (*owner)(struct fs *fs, const struct iref *r, struct stat *st);
	/* Content of a generated or note file.  NULL: EINVAL. */
	int (*content)(struct fs *fs, const struct iref *r, struct blob **out);
	/* A file's value read by inode, or to start a write handle.  NULL: the live tree's
	 * value at r->path. */
	int (*value)(struct fs *fs, const struct iref *r, struct blob **out);
	/* Open for reading, setting fi.  NULL: a handle with a copy of content. */
	int (*open)(struct fs *fs, fuse_req_t req, const struct iref *r, struct fuse_file_info *fi);
	/* May r be written?  NULL: EROFS. */
	int (*writable)(struct fs *fs, const struct iref *r);
	/* A write, truncation or fallocate changed h's buffer, or an open truncated it
	 * (h->lock held; clear h->dirty once the value is where it goes).  NULL: nothing
	 * to do. */
	int (*written)(struct fs *fs, struct handle *h);
	/* A write of h was refused (h->failed set, h->lock held): nothing of h's value may
	 * stay.  NULL: nothing was put anywhere yet. */
	void (*write_failed)(struct fs *fs, struct handle *h);
	/* Writes go where they belong at write(): the kernel need not send a flush at
	 * each close (noflush). */
	bool stage_at_write;
	/* Store a whole new value, consuming val: a write handle h's at a flush (req NULL
	 * at release), or for a truncate by path (h NULL).  NULL: the value goes nowhere,
	 * successfully. */
	int (*put)(struct fs *fs, fuse_req_t req, const struct iref *r, struct blob *val,
		   struct handle *h);
	/* Entries of a directory after "." and "..".  NULL: ENOTDIR. */
	int (*list)(struct fs *fs, const struct iref *r, struct handle *h);
	/* A new file below p: its tuple in *out.  NULL: ENOTDIR. */
	int (*create)(struct fs *fs, const struct iref *p, const char *name, struct iref *out);
	/* A new directory: its tuple in *out.  NULL: ENOTDIR. */
	int (*mkdir)(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name,
		     struct iref *out);
	/* NULL: EROFS. */
	int (*unlink)(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name);
	/* NULL: ENOTDIR. */
	int (*rmdir)(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name);
	/* Called on the source parent's area.  NULL: EXDEV. */
	int (*rename)(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name,
		      const struct iref *np, const char *newname, unsigned int flags);
	/* The committed entry of a key, for its extended attributes.  NULL: ENODATA. */
	int (*entry)(struct fs *fs, const struct iref *r, struct txn_entry *e);
	/* May caller c (not root) see r, at lookup, open and opendir?  The kernel has
	 * checked the owner and mode shown; the past checks those of its time too
	 * (txn_may_read_at).  NULL: yes. */
	int (*may_read)(struct fs *fs, const struct iref *r, const struct txn_caller *c);
};

/* Each area's tables (one per kind). */
extern const struct fs_area_ops fs_root_ops, fs_health_ops, fs_version_ops, fs_metrics_ops,
	fs_status_ops, fs_backup_ops;                                           /* ctl.c */
extern const struct fs_area_ops fs_live_ops;                                    /* live.c */
extern const struct fs_area_ops fs_txdir_ops, fs_txroot_ops, fs_txpath_ops, fs_txnote_ops,
	fs_txctl_ops;                                                           /* tx.c */
extern const struct fs_area_ops fs_atdir_ops, fs_at_ops, fs_histdir_ops, fs_hist_ops,
	fs_histseg_ops, fs_histkey_ops, fs_histver_ops, fs_histidx_ops;         /* past.c */
extern const struct fs_area_ops fs_ev_ops;                                      /* events.c */
extern const struct fs_area_ops fs_txexpect_ops;                                /* expect.c */

/* ops.c: the one array indexed by kind, replies; attr.c: what the areas compute alike.
 * fs_op_table holds ops.c's operations; count.c's table (fs_ops()) counts and calls them. */
extern const struct fuse_lowlevel_ops fs_op_table;
const struct fs_area_ops *fs_area(enum ikind kind);
struct fs *fs_of(fuse_req_t req);
void fs_reply_err(fuse_req_t req, int err);
void fs_reply_tuple(fuse_req_t req, const struct iref *t);
void fs_fill_attr(struct fs *fs, struct stat *st, uint64_t ino, enum txn_type type, size_t size,
		  int64_t time_ns, mode_t perm);
int fs_stat_iref(struct fs *fs, const struct iref *r, struct stat *st);
/* The caller of req, with its supplementary groups (as many as FS_MAX_GROUPS). */
void fs_caller_of(fuse_req_t req, struct fs_caller *out);
void fs_owner_of_agent(struct fs *fs, const char *path, size_t len, mode_t mask, struct stat *st);
int fs_stat_content(struct fs *fs, const struct iref *r, struct stat *st, mode_t perm);
int fs_file_content(struct fs *fs, const struct iref *r, struct blob **out);
int fs_current_value(struct fs *fs, const struct iref *r, struct blob **out);
int fs_writable(struct fs *fs, const struct iref *r);
struct blob *fs_blob_from_str(char *s);
char *fs_child_path(const struct iref *parent, const char *name, size_t *len);
int fs_check_name(const char *name);
int fs_parse_u64(const char *s, size_t len, uint64_t *out);

/* inode.c: the inode table (design note 1). */
int fs_iget(struct fs *fs, fuse_ino_t ino, struct iref *out);
enum ikind fs_ikind(struct fs *fs, fuse_ino_t ino); /* 0: no such inode */
int fs_iget_tuple(struct fs *fs, enum ikind kind, uint64_t txn_id, enum txn_type type,
		  const char *path, size_t len, uint64_t *ino);
void fs_iforget(struct fs *fs, uint64_t ino, uint64_t n);
struct inode *fs_ifind_key_locked(struct fs *fs, enum ikind kind, uint64_t txn_id,
				  enum txn_type type, const char *path, size_t len);
void fs_iunhash_locked(struct fs *fs, struct inode *in);
void fs_iunhash(struct fs *fs, enum ikind kind, uint64_t txn_id, enum txn_type type,
		const char *path, size_t len);
int fs_irekey_locked(struct fs *fs, struct inode *in, enum ikind kind, const char *path,
		     size_t len);
void fs_irename(struct fs *fs, enum ikind from_kind, enum ikind to_kind, uint64_t txn_id,
		const char *src, const char *dst, bool detach_dst);
void fs_imove(struct fs *fs, enum ikind kind, uint64_t txn_id, const char *src, size_t slen,
	      const char *dst, size_t dlen);
void fs_iexchange(struct fs *fs, enum ikind kind, uint64_t txn_id, const char *a,
		  const char *b);
void fs_iwriter(struct fs *fs, uint64_t ino, int delta, size_t size);
ssize_t fs_ipending_size(struct fs *fs, uint64_t ino);
/*
 * A writer sees its own size: through its handle (h) or, for fstat, stat and a chmod,
 * which the kernel sends without one, when the caller's process holds a write handle
 * on ino.  True when st now shows a size that others must not see (then the kernel must
 * not cache it).
 */
bool fs_writer_size(fuse_req_t req, uint64_t ino, struct handle *h, struct stat *st);
size_t fs_inodes_where(struct fs *fs, bool (*match)(const struct inode *, const void *),
		       const void *arg, uint64_t **out);
size_t fs_txn_inodes_where(struct fs *fs, uint64_t txn_id,
			   bool (*match)(const struct inode *, const void *), const void *arg,
			   uint64_t **out);
void fs_inodes_free_all(struct fs *fs);
void fs_iref_release(struct iref *r);
int fs_iref_copy(struct iref *dst, const struct iref *src);
int fs_iref_set(struct iref *out, enum ikind kind, uint64_t txn_id, enum txn_type type,
		const char *path, size_t len);
void fs_iref_take(struct iref *out, enum ikind kind, uint64_t txn_id, enum txn_type type,
		  char *path, size_t len);

/* handle.c: open handles (design note 2). */
/* Supervision (worker.c, inode.c). */
int fs_inodes_take_over(struct fs *fs);
void fs_worker_free(struct fs *fs);
/* The transaction journal (worker_txn.c): attach at a worker's start (after its store is
 * open, before it serves; restores the table after a death), compact when it grew (from
 * the read hook, no lock held), note a rename onto .commit before it asks to commit. */
int fs_txj_attach(struct fs *fs, const struct sup_worker *w);
void fs_txj_maybe_compact(struct fs *fs);
void fs_txj_committing(struct fs *fs, uint64_t txn_id, const char *note);
/* Did request unique (without the resend bit) change a transaction before the last
 * worker died?  Then its resend must not make the change again. */
bool fs_txj_applied(uint64_t unique);
/* What this worker shares with its supervisor; NULL when the daemon runs as one process. */
const struct sup_shared *fs_worker_shared(struct fs *fs);
/* The kernel's id of the request this thread serves (without the resend bit; 0: none). */
uint64_t fs_request_id(void);
void fs_request_id_set(uint64_t id);
/* The id an applied-request record of this thread's request gets (instance 0 when the
 * daemon runs unsupervised: no record). */
struct txn_reqid fs_reqid(struct fs *fs);
/* The request this thread read goes to another thread to be answered (worker.c). */
void fs_worker_handoff(void);

struct handle *fs_handle_new(struct fs *fs, enum hkind kind, const struct iref *r);
void fs_handle_free(struct handle *h);
/* The handle whose id the kernel sent as fi->fh, or NULL when no handle has that id
 * (fh 0, or one released or never handed out by this process).  The handle stays valid
 * until its release (the kernel sends nothing on a handle after releasing it). */
struct handle *fs_handle_get(struct fs *fs, uint64_t fh);
/* The handle of fi (which may be NULL) in *h, NULL when it names none (fh 0): 0, or
 * -EBADF when fi->fh is an id this process has no handle for (a handle of a process
 * that served the connection before it, of which no record came), as an operation on a
 * descriptor that is not open answers. */
int fs_handle_of(struct fs *fs, const struct fuse_file_info *fi, struct handle **h);
/* For a process that takes over the kernel's connection from another and rebuilds the
 * handles the kernel still holds from a record of the old process's ones: ids handed out
 * from now on are next or above (the counter only ever goes up, so no id is reused), and
 * h (from fs_handle_new) is found under id instead of the id it was given.  0, or
 * -EINVAL for id 0, -EEXIST when another handle has id (h keeps its own), or -ENOMEM
 * (h is then found under no id: free it). */
void fs_handle_ids_start(struct fs *fs, uint64_t next);
int fs_handle_adopt(struct fs *fs, uint64_t id, struct handle *h);
int fs_handle_reserve(struct handle *h, size_t n);
int fs_handle_resize(struct handle *h, size_t size);
void fs_handle_mark(struct handle *h, size_t lo, size_t hi);
void fs_commit_handle(struct fs *fs, fuse_req_t req, struct handle *h);
bool fs_handle_writer(struct fs *fs, uint64_t ino, pid_t pid, size_t *size, struct iref *r);
int fs_pending_new(struct fs *fs, const char *path, size_t len, int64_t time_ns, mode_t mode,
		   struct pending **out);
struct txn_attr fs_pending_attr_locked(const struct pending *p);
bool fs_pending_mode(struct fs *fs, const char *path, size_t len, mode_t *mode);
bool fs_pending_below(struct fs *fs, const char *dir, size_t dlen);
/* May c read path (a key, or a directory at or below an agent) as of commit ts?  Only
 * if it could then and can now (txn_may_read_at): 0 or -EACCES.  Paths above an agent:
 * 0.  (past.c) */
int fs_past_may_read(struct fs *fs, const char *path, size_t len, bool is_key, int64_t ts,
		     const struct txn_caller *c);
struct pending *fs_pending_ref_locked(struct pending *p);
void fs_pending_unref(struct fs *fs, struct pending *p);
bool fs_pending_queued_locked(const struct pending *p);
void fs_pending_set_queued_locked(struct pending *p, bool released);
void fs_pending_forget(struct fs *fs, struct pending *p, const char *path, size_t len);
void fs_pending_forget_locked(struct fs *fs, struct pending *p);
bool fs_pending_find_locked(struct fs *fs, const char *path, size_t len, struct pending **out);
bool fs_pending_time(struct fs *fs, const char *path, size_t len, int64_t *time_ns);
int fs_pending_list(struct fs *fs, const char *dir, size_t dlen, struct handle *h);
void fs_pending_wait(struct fs *fs, const char *path, size_t len);
void fs_orphan_add(struct fs *fs, uint64_t ino, const struct iref *r, struct blob *value);
bool fs_orphan_get(struct fs *fs, uint64_t ino, struct blob **value, struct iref *r);
void fs_orphan_drop(struct fs *fs, uint64_t ino);
int fs_dir_add(struct handle *h, const char *name, enum txn_type type);
int fs_dir_add_all(struct handle *h, struct dirent_entry *d, size_t n);
void fs_handles_free_all(struct fs *fs);

/* live.c: the live tree and its commits, shared with the root and the views. */
enum wait_kind { W_NONE = 0, W_FLUSH, W_UNLINK, W_RENAME, W_SETATTR, W_COMMIT, W_RMDIR };

struct waiter {
	struct fs *fs;
	fuse_req_t req;
	enum wait_kind kind;
	uint64_t ino;        /* W_SETATTR */
	uint64_t txn_id;     /* W_COMMIT */
	char *src, *dst;     /* W_RENAME / W_COMMIT: names to move in the inode table */
	bool is_dir;
	struct pending *pending; /* W_FLUSH / W_NONE: the create this commit makes real */
	struct blob *value;      /* W_UNLINK: the value an open unlinked file keeps */
};

struct txn_commit_req *fs_creq_new(struct fs *fs, fuse_req_t req, enum wait_kind kind, bool late);
void fs_creq_abandon(struct txn_commit_req *c);
int fs_set_owner_mode(struct fs *fs, fuse_req_t req, const struct iref *r, const struct stat *attr,
		      int to_set);
int fs_view_of(struct fs *fs, const struct iref *r, struct txn **tx, enum ikind *child_kind);
int fs_view_lookup(struct fs *fs, const struct iref *p, const char *name, struct iref *out);
int fs_view_list(struct fs *fs, const struct iref *r, struct handle *h);
int fs_view_create(struct fs *fs, const struct iref *p, const char *name, struct iref *out);
int fs_view_mkdir(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name,
		  struct iref *out);
int fs_view_unlink(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name);
int fs_view_rmdir(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name);
int fs_view_rename(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name,
		   const struct iref *np, const char *newname, unsigned int flags);
int fs_view_value(struct fs *fs, const struct iref *r, struct blob **out);
int fs_view_stat(struct fs *fs, const struct iref *r, struct stat *st);
void fs_view_owner(struct fs *fs, const struct iref *r, struct stat *st);
int fs_view_entry(struct fs *fs, const struct iref *r, struct txn_entry *e);

/* tx.c */
bool fs_is_ctl_name(const char *name);
void fs_tx_commit_done(struct fs *fs, const struct waiter *w, int err);
/* 0, or -EDQUOT when a value of value_len bytes at r (a transaction's key or note) is over
 * its byte limits; for refusing a write() before close() stages it. */
int fs_tx_room(struct fs *fs, const struct iref *r, size_t value_len);
int fs_tx_writable(struct fs *fs, const struct iref *r);

/* ops.c: may the caller of req see r?  0, or -EACCES from the area's may_read. */
int fs_caller_may_read(fuse_req_t req, const struct iref *r);

/* meta.c: directory listings, extended attributes and statfs (in ops.c's table). */
void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		    size_t size, int flags);
void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void fs_op_statfs(fuse_req_t req, fuse_ino_t ino);

/* count.c: the requests received, as .metrics shows them. */
extern const char *const fs_req_op_names[FS_REQ_N];
void fs_metrics_requests(struct fs *fs, FILE *f);

/* ctl.c */
int fs_stat_rw_dir(struct fs *fs, const struct iref *r, struct stat *st);

/* events.c: .events and .follow (parked reads, poll). */
void fs_events_read(fuse_req_t req, struct handle *h, off_t off, size_t size);
void fs_events_wake(struct fs *fs);
void fs_events_poll(fuse_req_t req, struct handle *h, struct fuse_pollhandle *ph);
void fs_events_release(struct fs *fs, struct handle *h);
int fs_events_fstat(struct fs *fs, struct handle *h, struct stat *st);
void fs_events_stat_for(struct fs *fs, fuse_req_t req, const struct iref *r, struct stat *st);
void fs_events_drop(struct handle *h);
void fs_events_free(struct fs *fs);

/* loop.c: a request that may wait, handed from a loop thread to the pool with a copy
 * of its arguments; fs_job_run (ops.c) runs it again there. */
enum fs_job_op {
	FJ_LOOKUP = 1, FJ_GETATTR, FJ_OPEN, FJ_READ, FJ_POLL, FJ_OPENDIR, FJ_MKDIR, FJ_RMDIR,
	FJ_GETXATTR, FJ_LISTXATTR,
};
struct fs_job {
	enum fs_job_op op;
	fuse_req_t req;
	fuse_ino_t ino;             /* the inode, or the parent of name */
	char *name;                 /* copied by fs_defer */
	struct fuse_file_info *fi;  /* points at fi_copy once deferred */
	struct fuse_file_info fi_copy;
	struct fuse_pollhandle *ph;
	size_t size;
	off_t off;
	mode_t mode;
	uint64_t unique;            /* the request's id (fs_request_id), set by fs_defer */
	struct fs_job *next;
};
/* Should a request that may wait go to the pool?  False on a pool thread and with -s. */
bool fs_defer_wanted(struct fs *fs);
/* Queue a copy of job for the pool; false when it could not (answer it in place). */
bool fs_defer(struct fs *fs, const struct fs_job *job);
void fs_job_run(struct fs_job *j);
/* ops.c: hand the request in j to the pool when cond holds (and this is a loop thread):
 * true when it went, and then the entry point returns at once. */
bool fs_defer_if(fuse_req_t req, bool cond, struct fs_job j);
/* Hand the request to the pool when the inode resolved to r lives in an area whose
 * requests may wait on SQLite; r is released when it went. */
#define DEFER_SLOW(req, r, inode, ...)                                                    \
	(fs_area((r)->kind)->slow &&                                                      \
	 fs_defer_if((req), true, (struct fs_job){ .ino = (inode), __VA_ARGS__ }) &&         \
	 (fs_iref_release(r), true))

/* notify.c: the notifier thread (design note 3). */
void fs_queue_inval(struct fs *fs, uint64_t ino);
void fs_queue_changes(struct fs *fs, struct txn_changes *ch);
void fs_inval_txn(struct fs *fs, uint64_t txn_id);
/* A commit of the live path (a key, a directory, or a namespace or agent whose owner or
 * mode changed) is about to be answered by the committer, with the inode table moved:
 * drop what the read-only mount caches of it first (design note 5, romount.c).  A no-op
 * without one. */
void fs_ro_invalidate_path(struct fs *fs, const char *path);
/* Invalidate in the main mount's caches what the commits after_ts < commit_ts <=
 * upto_ts changed (read from the log): 0 or the log's error. */
int fs_invalidate_since(struct fs *fs, int64_t after_ts, int64_t upto_ts);
/* The notifier invalidated the changes of every commit up to ts (worker.c: a next
 * worker starts from there); a no-op without a supervisor. */
void fs_worker_invalidated(struct fs *fs, int64_t ts);
void fs_queue_txn_failed(struct fs *fs, uint64_t txn_id, fuse_req_t req, int err);
int fs_notifier_start(struct fs *fs);
/* Let the notifier finish what is queued, then end it; again: a no-op. */
void fs_notifier_stop(struct fs *fs);

#endif
