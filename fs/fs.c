/*
 * fs.c - FUSE low-level operations over the engine's views (fs layer).
 *
 * Design notes
 *  1. Inodes are (area, transaction, path, type) tuples numbered on first lookup and
 *     freed when the kernel forgets them; numbers are never reused.  The same path in
 *     the live tree and in `.tx/A/` are different inodes, so each can be invalidated on
 *     its own.  A path that changes from file to directory gets a new inode.
 *  2. Handles own their state: a write handle buffers the whole value and commits it at
 *     flush (live tree) or stages it (transaction); control files are read from a copy
 *     made at open.  Reads of live keys need no handle: they serve the current value
 *     and the kernel keeps the pages (keep_cache) until a commit invalidates them.
 *  3. Freshness: a commit that a caller waits for (a flush, or the rename onto
 *     .commit) is completed by the notifier thread only after it has invalidated every
 *     kernel cache entry the commit made stale.  Requests during which the kernel holds
 *     a directory lock (unlink, rename in the live tree, truncate) are completed at once
 *     by the committer, because invalidating an entry takes that lock; the kernel
 *     updates its own dentries for those.
 *  4. errnos are negative below this file and flip sign exactly once, in reply_err().
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#include "config.h"
#include "log.h"
#include "render.h"

enum ikind {
	IK_ROOT = 1,
	IK_TXDIR,   /* .tx */
	IK_HEALTH,  /* .health */
	IK_VERSION, /* .version */
	IK_METRICS, /* .metrics */
	IK_STATUS,  /* .status */
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
	IK_EV,      /* below .events (txn_id 0) or .follow (txn_id 1): path inside */
};

/* The past is read-only: every change below .at and .history fails with EROFS. */
static bool is_past(enum ikind k)
{
	return k >= IK_ATDIR && k <= IK_EV;
}

#define INO_TXDIR 2
#define INO_HEALTH 3
#define INO_VERSION 4
#define INO_ATDIR 5
#define INO_HISTDIR 6
#define INO_EVDIR 7
#define INO_FOLLOWDIR 8
#define INO_METRICS 9
#define INO_STATUS 10
#define INO_FIRST_DYNAMIC 16
#define UNKNOWN_INO 0xffffffffu

struct handle;

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

struct handle {
	enum hkind kind;
	struct fs *fs;
	struct handle *all_prev, *all_next; /* fs->handles, under fs->handles_lock */
	struct iref ir;
	pthread_mutex_t lock; /* protects buf, size, dirty (flush may race a write) */
	char *buf;
	size_t size, cap;
	bool dirty;   /* holds a value not committed/staged yet */
	bool written; /* write() or ftruncate() happened: flush commits */
	bool failed;  /* a write was refused (EFBIG, ...): nothing of it commits */
	bool append;  /* O_APPEND: every write goes to the end of the buffer */
	struct blob *content;      /* H_CONTENT */
	struct txn_dirent *ents;   /* H_DIR */
	size_t nents;
	/* H_EVENTS (under lock): the stream rendered so far, up to commit last_ts */
	struct strbuf ev;
	int64_t ev_last_ts;
	char ev_filter[2 * TXN_NAME_MAX + 2];
	bool follow;
	size_t ev_pos;                   /* end of the furthest read, for poll */
	struct fuse_pollhandle *ph;      /* under fs->nq_lock */
	struct handle *poll_next;        /* fs->polled list, under fs->nq_lock */
	bool polled;
};

/* A .follow read waiting for the next commit (under fs->nq_lock). */
struct parked {
	fuse_req_t req;
	struct handle *h;
	off_t off;
	size_t size;
	bool interrupted;
	struct parked *next;
};

struct evsize {
	char *key;
	int64_t last_ts;
	size_t size;
	UT_hash_handle hh;
};

struct nq_item {
	struct txn_changes *ch; /* a batch of commits, or NULL: */
	uint64_t inval_ino;     /* an inode whose kernel size a writer changed */
	struct nq_item *next;
};

struct fs {
	struct txn_engine *eng;
	struct fuse_session *se;
	struct fs_options opt;
	uid_t uid;
	gid_t gid;
	int64_t start_ns;
	char *datadir, *mountpoint; /* owned copies, for .status */

	atomic_uint_fast64_t key_reads; /* opens of live keys for reading */

	/* Sizes of event streams as of ev_sizes[i].last_ts, so stat (which the kernel sends
	 * without a file handle, fstat included) renders only what is new.  ev_lock is
	 * held while rendering; it is a leaf. */
	pthread_mutex_t ev_lock;
	struct evsize *ev_sizes;
	unsigned n_ev_sizes;

	/* Leaf lock: protects by_ino, by_key, next_ino and inode fields. */
	pthread_mutex_t itable_lock;
	struct inode *by_ino;
	struct inode *by_key;
	uint64_t next_ino;

	/* Leaf lock: protects the list of open handles, which fs_free() frees when the
	 * kernel's releases never came (they are asynchronous and lost at unmount). */
	pthread_mutex_t handles_lock;
	struct handle *handles;

	/* Leaf lock: protects the notifier queue. */
	pthread_mutex_t nq_lock;
	pthread_cond_t nq_cond;
	struct nq_item *nq_head, **nq_tail;
	bool nq_stopping;
	pthread_t notifier;
	bool notifier_started;
	struct parked *parked;   /* .follow reads waiting for a commit */
	struct handle *polled;   /* .follow handles with a poll handle */
	bool wake;               /* something parked needs a look */
};

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void reply_err(fuse_req_t req, int err)
{
	/* The one place where a negative errno becomes the kernel's positive one. */
	if (req)
		fuse_reply_err(req, err < 0 ? -err : err);
}

static int64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- inode table --------------------------------------------------------------------- */

static char *make_key(enum ikind kind, uint64_t txn_id, enum txn_type type, const char *path,
		      size_t len, size_t *keylen)
{
	size_t n = 2 + sizeof(txn_id) + len;
	char *k = malloc(n);

	if (!k)
		return NULL;
	k[0] = (char)kind;
	k[1] = (char)type;
	memcpy(k + 2, &txn_id, sizeof(txn_id));
	memcpy(k + 2 + sizeof(txn_id), path, len);
	*keylen = n;
	return k;
}

static struct inode *ifind_key_locked(struct fs *fs, enum ikind kind, uint64_t txn_id,
				      enum txn_type type, const char *path, size_t len)
{
	struct inode *in = NULL;
	size_t kl;
	char *k = make_key(kind, txn_id, type, path, len, &kl);

	if (!k)
		return NULL;
	HASH_FIND(hh_key, fs->by_key, k, kl, in);
	free(k);
	return in;
}

/* Find or create the inode for a tuple and count one more kernel lookup. */
static int iget_tuple(struct fs *fs, enum ikind kind, uint64_t txn_id, enum txn_type type,
		      const char *path, size_t len, uint64_t *ino)
{
	struct inode *in;
	size_t kl;
	char *k = make_key(kind, txn_id, type, path, len, &kl);

	if (!k)
		return -ENOMEM;
	pthread_mutex_lock(&fs->itable_lock);
	HASH_FIND(hh_key, fs->by_key, k, kl, in);
	if (in) {
		free(k);
	} else {
		in = calloc(1, sizeof(*in));
		if (!in || !(in->path = malloc(len + 1))) {
			free(in);
			free(k);
			pthread_mutex_unlock(&fs->itable_lock);
			return -ENOMEM;
		}
		memcpy(in->path, path, len);
		in->path[len] = '\0';
		in->len = len;
		in->kind = kind;
		in->type = type;
		in->txn_id = txn_id;
		in->key = k;
		in->keylen = kl;
		in->ino = fs->next_ino++;
		in->hashed = true;
		HASH_ADD(hh_ino, fs->by_ino, ino, sizeof(in->ino), in);
		HASH_ADD_KEYPTR(hh_key, fs->by_key, in->key, in->keylen, in);
	}
	in->nlookup++;
	*ino = in->ino;
	pthread_mutex_unlock(&fs->itable_lock);
	return 0;
}

static void iref_release(struct iref *r)
{
	free(r->path);
	r->path = NULL;
}

static int iref_copy(struct iref *dst, const struct iref *src)
{
	*dst = *src;
	dst->path = malloc(src->len + 1);
	if (!dst->path)
		return -ENOMEM;
	memcpy(dst->path, src->path, src->len + 1);
	return 0;
}

/* What does ino name?  -ENOENT for an inode the kernel should not have. */
static int iget(struct fs *fs, fuse_ino_t ino, struct iref *out)
{
	struct inode *in = NULL;
	uint64_t key = ino;

	memset(out, 0, sizeof(*out));
	out->ino = ino;
	switch (ino) {
	case FUSE_ROOT_ID:
		out->kind = IK_ROOT;
		out->type = TXN_DIR;
		break;
	case INO_TXDIR:
		out->kind = IK_TXDIR;
		out->type = TXN_DIR;
		break;
	case INO_HEALTH:
		out->kind = IK_HEALTH;
		out->type = TXN_FILE;
		break;
	case INO_VERSION:
		out->kind = IK_VERSION;
		out->type = TXN_FILE;
		break;
	case INO_METRICS:
		out->kind = IK_METRICS;
		out->type = TXN_FILE;
		break;
	case INO_STATUS:
		out->kind = IK_STATUS;
		out->type = TXN_FILE;
		break;
	case INO_ATDIR:
		out->kind = IK_ATDIR;
		out->type = TXN_DIR;
		break;
	case INO_HISTDIR:
		out->kind = IK_HISTDIR;
		out->type = TXN_DIR;
		break;
	case INO_EVDIR:
	case INO_FOLLOWDIR:
		out->kind = IK_EV;
		out->type = TXN_DIR;
		out->txn_id = ino == INO_FOLLOWDIR;
		break;
	default:
		pthread_mutex_lock(&fs->itable_lock);
		HASH_FIND(hh_ino, fs->by_ino, &key, sizeof(key), in);
		if (!in || !in->hashed) {
			pthread_mutex_unlock(&fs->itable_lock);
			return -ENOENT;
		}
		out->kind = in->kind;
		out->type = in->type;
		out->txn_id = in->txn_id;
		out->len = in->len;
		out->path = strdup(in->path);
		pthread_mutex_unlock(&fs->itable_lock);
		return out->path ? 0 : -ENOMEM;
	}
	out->path = strdup("");
	return out->path ? 0 : -ENOMEM;
}

static void inode_free(struct inode *in)
{
	free(in->key);
	free(in->path);
	free(in);
}

static void iforget(struct fs *fs, uint64_t ino, uint64_t n)
{
	struct inode *in = NULL;

	if (ino < INO_FIRST_DYNAMIC)
		return;
	pthread_mutex_lock(&fs->itable_lock);
	HASH_FIND(hh_ino, fs->by_ino, &ino, sizeof(ino), in);
	if (in) {
		in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
		if (in->nlookup == 0) {
			HASH_DELETE(hh_ino, fs->by_ino, in);
			if (in->hashed)
				HASH_DELETE(hh_key, fs->by_key, in);
			inode_free(in);
		}
	}
	pthread_mutex_unlock(&fs->itable_lock);
}

/* The path stops naming this inode (unlink, rmdir, replaced by a rename). */
static void iunhash_locked(struct fs *fs, struct inode *in)
{
	if (in && in->hashed) {
		HASH_DELETE(hh_key, fs->by_key, in);
		in->hashed = false;
	}
}

static void iunhash(struct fs *fs, enum ikind kind, uint64_t txn_id, enum txn_type type,
		    const char *path, size_t len)
{
	pthread_mutex_lock(&fs->itable_lock);
	iunhash_locked(fs, ifind_key_locked(fs, kind, txn_id, type, path, len));
	pthread_mutex_unlock(&fs->itable_lock);
}

static int irekey_locked(struct fs *fs, struct inode *in, enum ikind kind, const char *path,
			 size_t len)
{
	size_t kl;
	char *np = malloc(len + 1);
	char *k = make_key(kind, in->txn_id, in->type, path, len, &kl);

	if (!np || !k) {
		free(np);
		free(k);
		iunhash_locked(fs, in);
		return -ENOMEM;
	}
	memcpy(np, path, len);
	np[len] = '\0';
	iunhash_locked(fs, ifind_key_locked(fs, kind, in->txn_id, in->type, path, len));
	iunhash_locked(fs, in);
	free(in->key);
	free(in->path);
	in->key = k;
	in->keylen = kl;
	in->path = np;
	in->len = len;
	in->kind = kind;
	in->hashed = true;
	HASH_ADD_KEYPTR(hh_key, fs->by_key, in->key, in->keylen, in);
	return 0;
}

/*
 * A successful rename moved src to dst in one view (kind/txn_id): the kernel keeps the
 * source inodes under the new names, so their tuples follow; whatever dst named before
 * is detached.
 */
static void imove(struct fs *fs, enum ikind kind, uint64_t txn_id, const char *src, size_t slen,
		  const char *dst, size_t dlen)
{
	struct inode *in, *tmp;

	pthread_mutex_lock(&fs->itable_lock);
	iunhash_locked(fs, ifind_key_locked(fs, kind, txn_id, TXN_FILE, dst, dlen));
	iunhash_locked(fs, ifind_key_locked(fs, kind, txn_id, TXN_DIR, dst, dlen));
	HASH_ITER(hh_ino, fs->by_ino, in, tmp) {
		if (!in->hashed || in->kind != kind || in->txn_id != txn_id)
			continue;
		if (in->len == slen && memcmp(in->path, src, slen) == 0) {
			irekey_locked(fs, in, kind, dst, dlen);
		} else if (in->len > slen && in->path[slen] == '/' &&
			   memcmp(in->path, src, slen) == 0) {
			size_t nl = dlen + (in->len - slen);
			char *np = malloc(nl + 1);

			if (!np) {
				iunhash_locked(fs, in);
				continue;
			}
			memcpy(np, dst, dlen);
			memcpy(np + dlen, in->path + slen, in->len - slen + 1);
			irekey_locked(fs, in, kind, np, nl);
			free(np);
		}
	}
	pthread_mutex_unlock(&fs->itable_lock);
}

static void iwriter(struct fs *fs, uint64_t ino, int delta, size_t size)
{
	struct inode *in = NULL;

	pthread_mutex_lock(&fs->itable_lock);
	HASH_FIND(hh_ino, fs->by_ino, &ino, sizeof(ino), in);
	if (in) {
		if (delta > 0)
			in->writers++;
		else if (delta < 0 && in->writers)
			in->writers--;
		in->writer_size = size;
	}
	pthread_mutex_unlock(&fs->itable_lock);
}

/* Size of a pending (not yet committed) write for a live inode, or -1. */
static ssize_t ipending_size(struct fs *fs, uint64_t ino)
{
	struct inode *in = NULL;
	ssize_t r = -1;

	pthread_mutex_lock(&fs->itable_lock);
	HASH_FIND(hh_ino, fs->by_ino, &ino, sizeof(ino), in);
	if (in && in->writers)
		r = (ssize_t)in->writer_size;
	pthread_mutex_unlock(&fs->itable_lock);
	return r;
}

/* ---- attributes and contents ------------------------------------------------------- */

static void fill_attr(struct fs *fs, struct stat *st, uint64_t ino, enum txn_type type,
		      size_t size, int64_t time_ns, mode_t perm)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	if (type == TXN_DIR) {
		st->st_mode = S_IFDIR | (perm ? perm : 0755);
		st->st_nlink = 2;
		st->st_size = 0;
	} else {
		st->st_mode = S_IFREG | (perm ? perm : 0644);
		st->st_nlink = 1;
		st->st_size = (off_t)size;
		st->st_blocks = (blkcnt_t)((size + 511) / 512);
	}
	st->st_blksize = 4096;
	if (!time_ns)
		time_ns = fs->start_ns;
	st->st_mtim.tv_sec = time_ns / 1000000000;
	st->st_mtim.tv_nsec = time_ns % 1000000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/* o as one line of compact JSON with a newline (malloc'ed; NULL on failure); drops o. */
static char *json_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER), *line = NULL;

	json_decref(o);
	if (s && asprintf(&line, "%s\n", s) < 0)
		line = NULL;
	free(s);
	return line;
}

static char *version_json(void)
{
	json_t *o = json_object();

	json_object_set_new(o, "version", json_string(STATEHOUSE_VERSION));
	json_object_set_new(o, "schema", json_integer(txn_schema_version()));
	json_object_set_new(o, "sqlite", json_string(txn_sqlite_version()));
	json_object_set_new(o, "libfuse", json_string(fuse_pkgversion()));
	return json_line(o);
}

/* .status: who serves this mount and how it is doing, for statehousectl status. */
static char *status_json(struct fs *fs)
{
	struct txn_stats st;
	json_t *o = json_object(), *rec = json_object();
	char started[32];
	time_t t = (time_t)(fs->start_ns / 1000000000);
	struct tm tm;
	int err = txn_engine_check(fs->eng);

	txn_engine_stats(fs->eng, &st);
	gmtime_r(&t, &tm);
	strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(o, "pid", json_integer(getpid()));
	json_object_set_new(o, "datadir", json_string(fs->datadir));
	json_object_set_new(o, "mountpoint", json_string(fs->mountpoint));
	json_object_set_new(o, "version", json_string(STATEHOUSE_VERSION));
	json_object_set_new(o, "health", json_string(err ? strerror(-err) : "ok"));
	json_object_set_new(o, "read_only", json_boolean(fs->opt.read_only));
	json_object_set_new(o, "head_commit_ts", json_integer(st.head_ts));
	json_object_set_new(o, "open_transactions", json_integer(st.open_txns));
	json_object_set_new(o, "starts", json_integer((json_int_t)st.starts));
	json_object_set_new(o, "unclean_starts", json_integer((json_int_t)st.unclean_starts));
	json_object_set_new(o, "started", json_string(started));
	json_object_set_new(o, "uptime_s",
			    json_integer((now_ns(CLOCK_REALTIME) - fs->start_ns) / 1000000000));
	json_object_set_new(o, "snapshot_ts", json_integer(st.snapshot_ts));
	json_object_set_new(rec, "ms", json_integer(st.last_recovery_ns / 1000000));
	json_object_set_new(rec, "replayed_events", json_integer((json_int_t)st.last_replayed));
	json_object_set_new(o, "last_recovery", rec);
	return json_line(o);
}

static struct blob *blob_from_str(char *s)
{
	struct blob *b = s ? blob_new(s, strlen(s)) : NULL;

	free(s);
	return b;
}

/* What a path below .events or .follow names. */
struct ev_path {
	enum txn_type type;
	int64_t since;                        /* first commit_ts of the stream */
	char filter[2 * TXN_NAME_MAX + 2];    /* "ns/agent", or "" for all.jsonl */
};

static int parse_u64(const char *s, size_t len, uint64_t *out);
static int events_refresh(struct fs *fs, struct handle *h);

#define EV_SIZES_MAX 4096

/* The size of an event stream now: what it had, plus what was committed since. */
static int events_size(struct fs *fs, const struct ev_path *ep, size_t *out)
{
	char key[sizeof(ep->filter) + 32];
	struct evsize *e = NULL;
	int err = 0;

	snprintf(key, sizeof(key), "%" PRId64 "|%s", ep->since, ep->filter);
	pthread_mutex_lock(&fs->ev_lock);
	HASH_FIND_STR(fs->ev_sizes, key, e);
	if (!e) {
		if (fs->n_ev_sizes >= EV_SIZES_MAX) {
			struct evsize *x, *tmp;

			HASH_ITER(hh, fs->ev_sizes, x, tmp) {
				HASH_DEL(fs->ev_sizes, x);
				free(x->key);
				free(x);
			}
			fs->n_ev_sizes = 0;
		}
		e = calloc(1, sizeof(*e));
		if (!e || !(e->key = strdup(key))) {
			free(e);
			pthread_mutex_unlock(&fs->ev_lock);
			return -ENOMEM;
		}
		e->last_ts = ep->since - 1;
		HASH_ADD_KEYPTR(hh, fs->ev_sizes, e->key, strlen(e->key), e);
		fs->n_ev_sizes++;
	}
	int64_t head = txn_engine_head(fs->eng);

	if (head > e->last_ts) {
		struct strbuf buf = STRBUF_INIT;
		int64_t last = 0;

		err = render_events(fs->eng, ep->filter, strlen(ep->filter), e->last_ts + 1,
					head, &buf, &last);
		if (!err) {
			e->size += buf.len;
			e->last_ts = head;
		}
		strbuf_release(&buf);
	}
	*out = e->size;
	pthread_mutex_unlock(&fs->ev_lock);
	return err;
}

/*
 * "" | "all.jsonl" | "<ns>" | "<ns>/<agent>.jsonl", each also below "since/<ts>/";
 * "since" itself.  Namespaces and agents are implicit, as in the live tree.
 */
static int ev_parse(const char *path, size_t len, struct ev_path *out)
{
	const char *p = path, *end = path + len, *slash;
	uint64_t ts;
	size_t n;

	memset(out, 0, sizeof(*out));
	out->since = 1;
	out->type = TXN_DIR;
	if (len >= 5 && !memcmp(p, "since", 5) && (len == 5 || p[5] == '/')) {
		if (len == 5)
			return 0;
		p += 6;
		slash = memchr(p, '/', (size_t)(end - p));
		n = slash ? (size_t)(slash - p) : (size_t)(end - p);
		if (parse_u64(p, n, &ts))
			return -EINVAL;
		out->since = ts ? (int64_t)ts : 1;
		if (!slash)
			return 0;
		p = slash + 1;
	}
	if (p == end)
		return 0;
	n = (size_t)(end - p);
	if (n == 9 && !memcmp(p, "all.jsonl", 9)) {
		out->type = TXN_FILE;
		return 0;
	}
	slash = memchr(p, '/', n);
	if (!slash)
		return txn_check_name(p, n) ? -ENOENT : 0; /* a namespace */
	if (memchr(slash + 1, '/', (size_t)(end - slash - 1)) || end - slash - 1 <= 6 ||
	    memcmp(end - 6, ".jsonl", 6) != 0)
		return -ENOENT;
	n = (size_t)(end - 6 - p);
	if (txn_check_name(p, (size_t)(slash - p)) ||
	    txn_check_name(slash + 1, (size_t)(end - 6 - slash - 1)))
		return -ENOENT;
	memcpy(out->filter, p, n);
	out->filter[n] = '\0';
	out->type = TXN_FILE;
	return 0;
}

/* Prometheus text exposition of the engine's counters and gauges. */
static char *metrics_text(struct fs *fs)
{
	struct txn_stats s;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	long pages = 0, rss = 0;
	FILE *statm = fopen("/proc/self/statm", "r");

	if (!f)
		return NULL;
	if (statm) {
		if (fscanf(statm, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(statm);
	}
	txn_engine_stats(fs->eng, &s);
#define M(type, name, help, fmt, val)                                                     \
	fprintf(f, "# HELP statehouse_" name " " help "\n# TYPE statehouse_" name " " type   \
		   "\nstatehouse_" name " " fmt "\n",                                            \
		val)
	M("counter", "transactions_begun_total", "Transactions begun (mkdir .tx/NAME).",
	  "%" PRIu64, s.begun);
	M("counter", "transactions_committed_total", "Transactions committed by rename.",
	  "%" PRIu64, s.committed);
	M("counter", "transactions_aborted_total", "Transactions aborted by rmdir.", "%" PRIu64,
	  s.aborted);
	M("counter", "transactions_expired_total", "Transactions that passed their timeout.",
	  "%" PRIu64, s.expired);
	M("counter", "transactions_conflicted_total",
	  "Transaction commits refused because another committed a key first.", "%" PRIu64,
	  s.conflicted);
	M("counter", "autocommits_total", "Direct writes, deletes and renames in the live tree.",
	  "%" PRIu64, s.autocommits);
	M("counter", "commits_failed_total", "Commit requests that failed (any reason).",
	  "%" PRIu64, s.failed);
	M("counter", "ops_written_total", "Keys written by commits.", "%" PRIu64, s.ops_written);
	M("counter", "ops_deleted_total", "Keys deleted by commits.", "%" PRIu64, s.ops_deleted);
	M("counter", "key_reads_total", "Opens of live keys for reading.", "%" PRIu64,
	  (uint64_t)fs->key_reads);
	M("counter", "recoveries_total", "Starts of the daemon on this data dir (each recovers).",
	  "%" PRIu64, s.starts);
	M("counter", "unclean_starts_total", "Starts after a run that did not stop cleanly.",
	  "%" PRIu64, s.unclean_starts);
	M("gauge", "open_transactions", "Transactions open now.", "%u", s.open_txns);
	M("gauge", "head_commit_ts", "The newest commit_ts.", "%" PRId64, s.head_ts);
	M("gauge", "database_bytes", "Size of the SQLite database file.", "%" PRIu64, s.db_bytes);
	M("gauge", "wal_bytes", "Size of the SQLite write-ahead log.", "%" PRIu64, s.wal_bytes);
	M("gauge", "commits_since_snapshot", "Commits after the newest snapshot.", "%" PRId64,
	  s.head_ts - s.snapshot_ts);
	M("gauge", "resident_memory_bytes", "Resident memory of the daemon.", "%ld",
	  rss * sysconf(_SC_PAGESIZE));
	M("gauge", "last_recovery_seconds", "Duration of the last start's recovery.", "%.6f",
	  (double)s.last_recovery_ns / 1e9);
	M("gauge", "last_recovery_replayed_events", "Events replayed by the last recovery.",
	  "%" PRIu64, s.last_replayed);
#undef M
	fprintf(f, "# HELP statehouse_commit_latency_seconds From a commit request to its "
		   "completion (durable and visible).\n"
		   "# TYPE statehouse_commit_latency_seconds histogram\n");
	for (int i = 0; i < TXN_LAT_BUCKETS; i++) {
		if (i == TXN_LAT_BUCKETS - 1)
			fprintf(f, "statehouse_commit_latency_seconds_bucket{le=\"+Inf\"} %" PRIu64
				   "\n", s.lat_bucket[i]);
		else
			fprintf(f, "statehouse_commit_latency_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
				txn_latency_bounds_s[i], s.lat_bucket[i]);
	}
	fprintf(f, "statehouse_commit_latency_seconds_sum %.6f\n"
		   "statehouse_commit_latency_seconds_count %" PRIu64 "\n",
		s.lat_sum_s, s.lat_count);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Is name one of the control files of a transaction directory? */
static bool is_ctl_name(const char *name)
{
	return !strcmp(name, ".status") || !strcmp(name, ".commit") || !strcmp(name, ".timeout_ms");
}

/* Content of a generated or note file; -ENOENT when it does not exist (now). */
static int file_content(struct fs *fs, const struct iref *r, struct blob **out)
{
	struct txn *tx;
	int err = 0;

	*out = NULL;
	switch (r->kind) {
	case IK_HEALTH:
		err = txn_engine_check(fs->eng);
		if (!err && !(*out = blob_new("ok\n", 3)))
			err = -ENOMEM;
		return err;
	case IK_VERSION:
		*out = blob_from_str(version_json());
		return *out ? 0 : -ENOMEM;
	case IK_METRICS:
		*out = blob_from_str(metrics_text(fs));
		return *out ? 0 : -ENOMEM;
	case IK_STATUS:
		*out = blob_from_str(status_json(fs));
		return *out ? 0 : -ENOMEM;
	case IK_TXNOTE:
	case IK_TXCTL:
		tx = txn_find_id(fs->eng, r->txn_id);
		if (!tx)
			return -ENOENT;
		if (r->kind == IK_TXNOTE) {
			err = txn_note_get(tx, r->path, out);
		} else if (!strcmp(r->path, ".status")) {
			*out = blob_from_str(render_status_json(fs->eng, tx));
			err = *out ? 0 : -ENOMEM;
		} else if (!strcmp(r->path, ".commit")) {
			char *s = render_commit_json(tx);

			err = s ? 0 : -ENOENT;
			*out = blob_from_str(s);
			if (s && !*out)
				err = -ENOMEM;
		} else {
			char num[32];

			snprintf(num, sizeof(num), "%" PRId64 "\n", txn_timeout_ms(tx));
			*out = blob_new(num, strlen(num));
			err = *out ? 0 : -ENOMEM;
		}
		txn_unref(tx);
		return err;
	case IK_AT: {
		struct txn_entry e;

		return txn_at_read(fs->eng, (int64_t)r->txn_id, r->path, r->len, out, &e);
	}
	case IK_HISTVER: {
		struct txn_version v;

		return txn_history_value(fs->eng, r->path, r->len, (int64_t)r->txn_id, out, &v);
	}
	case IK_HISTIDX:
		return render_history_index(fs->eng, r->path, r->len, out);
	default:
		return -EINVAL;
	}
}

/*
 * Owner, group and mode of what an inode names (st already filled with the type).
 * Namespaces and agents have their own (txn_dir_attr); keys and key directories take
 * their agent's; the past shows the same without write bits; a transaction directory
 * and its files belong to whoever began it; the rest to the daemon's user.  With
 * default_permissions the kernel checks every access against these.
 */
static void set_owner(struct fs *fs, const struct iref *r, struct stat *st)
{
	mode_t type = st->st_mode & S_IFMT, mask = S_ISDIR(st->st_mode) ? 07777 : 0666;
	const char *path = r->path;
	size_t len = r->len;
	struct txn_attr a;
	struct ev_path ep;
	struct txn *tx;

	switch (r->kind) {
	case IK_TXDIR:
		st->st_mode = type | 01777; /* anyone may begin; only the owner may remove */
		return;
	case IK_TXROOT:
	case IK_TXNOTE:
	case IK_TXCTL:
		tx = txn_find_id(fs->eng, r->txn_id);
		if (!tx)
			return;
		st->st_uid = txn_uid(tx);
		st->st_gid = txn_gid(tx);
		if (r->kind == IK_TXROOT)
			st->st_mode = type | (txn_get_state(tx) == TXN_COMMITTED ? 0500 : 0700);
		else
			st->st_mode = type | (st->st_mode & 0600);
		txn_unref(tx);
		return;
	case IK_LIVE:
	case IK_TXPATH:
		break;
	case IK_AT:
	case IK_HIST:
	case IK_HISTKEY:
	case IK_HISTVER:
	case IK_HISTIDX:
		mask &= 0555; /* the past is read-only */
		break;
	case IK_EV:
		if (!S_ISREG(st->st_mode) || ev_parse(path, len, &ep))
			return;
		if (!ep.filter[0]) {
			/* Every agent's ops: for the daemon's user (and root) only. */
			st->st_mode = type | 0400;
			return;
		}
		path = ep.filter;
		len = strlen(ep.filter);
		mask = 0444;
		break;
	default:
		return;
	}
	if (len == 0 || txn_dir_attr(fs->eng, path, len, &a))
		return;
	if (txn_path_depth(path, len) > 2)
		mask &= 0777; /* no set-id or sticky bits below an agent */
	st->st_uid = a.uid;
	st->st_gid = a.gid;
	st->st_mode = type | (a.mode & mask);
}

static int stat_iref_base(struct fs *fs, const struct iref *r, struct stat *st);

/* stat() of what an inode names. */
static int stat_iref(struct fs *fs, const struct iref *r, struct stat *st)
{
	int err = stat_iref_base(fs, r, st);

	if (!err)
		set_owner(fs, r, st);
	return err;
}

static int stat_iref_base(struct fs *fs, const struct iref *r, struct stat *st)
{
	struct txn_entry e;
	struct blob *b;
	struct txn *tx;
	ssize_t pending;
	int err;

	switch (r->kind) {
	case IK_ROOT:
	case IK_TXDIR:
		fill_attr(fs, st, r->ino, TXN_DIR, 0, 0, 0755);
		return 0;
	case IK_ATDIR:
	case IK_HISTDIR:
	case IK_HIST:
	case IK_HISTKEY:
		fill_attr(fs, st, r->ino, TXN_DIR, 0, 0, 0555);
		return 0;
	case IK_AT:
		err = txn_at_stat(fs->eng, (int64_t)r->txn_id, r->path, r->len, &e);
		if (err)
			return err;
		if (e.type != r->type)
			return -ENOENT;
		fill_attr(fs, st, r->ino, e.type, e.size, e.time_ns, e.type == TXN_DIR ? 0555 : 0444);
		return 0;
	case IK_HISTVER: {
		struct txn_version v;

		err = txn_history_value(fs->eng, r->path, r->len, (int64_t)r->txn_id, &b, &v);
		if (err)
			return err;
		fill_attr(fs, st, r->ino, TXN_FILE, b->len, v.time_ns, 0444);
		blob_unref(b);
		return 0;
	}
	case IK_HISTIDX: {
		struct txn_version *v;
		size_t n;

		err = file_content(fs, r, &b);
		if (!err)
			err = txn_history(fs->eng, r->path, r->len, &v, &n);
		if (err) {
			blob_unref(b);
			return err;
		}
		/* It changes when a version is added: its mtime is the newest version's. */
		fill_attr(fs, st, r->ino, TXN_FILE, b->len, v[n - 1].time_ns, 0444);
		blob_unref(b);
		free(v);
		return 0;
	}
	case IK_EV: {
		struct ev_path ep;

		err = ev_parse(r->path, r->len, &ep);
		if (err)
			return err;
		if (ep.type == TXN_DIR) {
			fill_attr(fs, st, r->ino, TXN_DIR, 0, 0, 0555);
			return 0;
		}
		size_t size;

		err = events_size(fs, &ep, &size);
		if (err)
			return err;
		fill_attr(fs, st, r->ino, TXN_FILE, size, 0, 0444);
		return 0;
	}
	case IK_TXROOT:
		tx = txn_find_id(fs->eng, r->txn_id);
		if (!tx)
			return -ENOENT;
		fill_attr(fs, st, r->ino, TXN_DIR, 0, 0,
			  txn_get_state(tx) == TXN_COMMITTED ? 0555 : 0755);
		txn_unref(tx);
		return 0;
	case IK_HEALTH:
	case IK_VERSION:
	case IK_METRICS:
	case IK_STATUS:
	case IK_TXCTL:
	case IK_TXNOTE:
		err = file_content(fs, r, &b);
		if (err == -EIO && r->kind == IK_HEALTH) {
			/* stat works on a sick store; reading .health reports EIO. */
			fill_attr(fs, st, r->ino, TXN_FILE, 0, 0, 0444);
			return 0;
		}
		if (err)
			return err;
		fill_attr(fs, st, r->ino, TXN_FILE, b->len, 0,
			  (r->kind == IK_TXNOTE || !strcmp(r->path, ".timeout_ms")) ? 0644 : 0444);
		blob_unref(b);
		return 0;
	case IK_LIVE:
	case IK_TXPATH:
		tx = NULL;
		if (r->kind == IK_TXPATH && !(tx = txn_find_id(fs->eng, r->txn_id)))
			return -ENOENT;
		err = txn_stat(fs->eng, tx, r->path, r->len, &e);
		txn_unref(tx);
		pending = r->type == TXN_FILE ? ipending_size(fs, r->ino) : -1;
		if (err == -ENOENT && pending >= 0) {
			/* Created and open for writing, not committed yet. */
			fill_attr(fs, st, r->ino, TXN_FILE, (size_t)pending, 0, 0);
			return 0;
		}
		if (err)
			return err;
		if (e.type != r->type)
			return -ENOENT; /* the path changed type: this inode is stale */
		/* Always the committed size: a writer's uncommitted bytes are its own. */
		fill_attr(fs, st, r->ino, e.type, e.size, e.time_ns, 0);
		return 0;
	}
	return -ENOENT;
}

static void entry_param(struct fs *fs, struct fuse_entry_param *e, uint64_t ino,
			const struct stat *st, enum ikind kind)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino;
	e->generation = 1;
	e->attr = *st;
	/* Generated files change without commits: never cache their attributes.  The
	 * state as of a commit never changes at all. */
	if (kind == IK_LIVE || kind == IK_ROOT || kind == IK_TXDIR || kind == IK_AT ||
	    kind == IK_ATDIR || kind == IK_HISTVER) {
		e->attr_timeout = fs->opt.entry_timeout_s;
		e->entry_timeout = fs->opt.entry_timeout_s;
	} else if (kind == IK_TXPATH || kind == IK_TXROOT) {
		e->attr_timeout = S_ISDIR(st->st_mode) ? fs->opt.entry_timeout_s : 0;
		e->entry_timeout = fs->opt.entry_timeout_s;
	}
}

/* Reply with an entry for a tuple; counts the lookup. */
static void reply_tuple(fuse_req_t req, enum ikind kind, uint64_t txn_id, enum txn_type type,
			const char *path, size_t len, struct fuse_file_info *create_fi)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct iref r = { .kind = kind, .type = type, .txn_id = txn_id, .path = (char *)path,
			  .len = len };
	struct stat st;
	uint64_t ino;
	int err;

	if (kind == IK_TXDIR)
		ino = INO_TXDIR;
	else if (kind == IK_ATDIR)
		ino = INO_ATDIR;
	else if (kind == IK_HISTDIR)
		ino = INO_HISTDIR;
	else if (kind == IK_EV && len == 0)
		ino = txn_id ? INO_FOLLOWDIR : INO_EVDIR;
	else if (kind == IK_HEALTH)
		ino = INO_HEALTH;
	else if (kind == IK_VERSION)
		ino = INO_VERSION;
	else if (kind == IK_METRICS)
		ino = INO_METRICS;
	else if (kind == IK_STATUS)
		ino = INO_STATUS;
	else if ((err = iget_tuple(fs, kind, txn_id, type, path, len, &ino))) {
		reply_err(req, err);
		return;
	}
	r.ino = ino;
	err = stat_iref(fs, &r, &st);
	if (err && create_fi) {
		fill_attr(fs, &st, ino, TXN_FILE, 0, 0, 0);
		err = 0;
	}
	if (err) {
		iforget(fs, ino, 1);
		reply_err(req, err);
		return;
	}
	entry_param(fs, &e, ino, &st, kind);
	if (create_fi) {
		if (fuse_reply_create(req, &e, create_fi) != 0)
			iforget(fs, ino, 1);
	} else if (fuse_reply_entry(req, &e) != 0) {
		iforget(fs, ino, 1);
	}
}

/* ---- path helpers ------------------------------------------------------------------ */

static char *child_path(const struct iref *parent, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	size_t n = parent->len + (parent->len ? 1 : 0) + nl;
	char *p = malloc(n + 1);

	if (!p)
		return NULL;
	memcpy(p, parent->path, parent->len);
	if (parent->len)
		p[parent->len] = '/';
	memcpy(p + n - nl, name, nl + 1);
	*len = n;
	return p;
}

static int check_name(const char *name)
{
	return txn_check_name(name, strlen(name));
}

/* View of a tree inode: NULL for live; a referenced txn for transaction areas. */
static int view_of(struct fs *fs, const struct iref *r, struct txn **tx, enum ikind *child_kind)
{
	*tx = NULL;
	switch (r->kind) {
	case IK_ROOT:
	case IK_LIVE:
		*child_kind = IK_LIVE;
		return 0;
	case IK_TXROOT:
	case IK_TXPATH:
		*child_kind = IK_TXPATH;
		*tx = txn_find_id(fs->eng, r->txn_id);
		return *tx ? 0 : -ENOENT;
	default:
		return -ENOTDIR;
	}
}

/* ---- lookup / forget / getattr ---------------------------------------------------- */

/* A commit_ts or version in decimal: digits only, no sign, no leading zero. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 19 || (s[0] == '0' && len > 1))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > INT64_MAX)
		return -EINVAL; /* commit_ts and versions are signed 64-bit */
	*out = v;
	return 0;
}

/* `.history` names a key by one component: '%' is written %25 and '/' %2F. */
static char *ekey_encode(const char *key, size_t len)
{
	char *out = malloc(len * 3 + 1), *w = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (key[i] == '%' || key[i] == '/') {
			*w++ = '%';
			*w++ = '2';
			*w++ = key[i] == '%' ? '5' : 'F';
		} else {
			*w++ = key[i];
		}
	}
	*w = '\0';
	return out;
}

static int ekey_decode(const char *e, char *out, size_t *len)
{
	size_t n = 0;

	for (const char *p = e; *p; p++) {
		if (*p != '%') {
			out[n++] = *p;
			continue;
		}
		if (p[1] == '2' && p[2] == '5')
			out[n++] = '%';
		else if (p[1] == '2' && p[2] == 'F') /* one spelling per key: not %2f */
			out[n++] = '/';
		else
			return -EINVAL;
		p += 2;
	}
	out[n] = '\0';
	*len = n;
	return 0;
}

static bool names_nonempty(struct fs *fs, const char *prefix, size_t len)
{
	struct txn_dirent *d;
	size_t n;

	if (txn_history_names(fs->eng, prefix, len, &d, &n))
		return false;
	txn_dirents_free(d, n);
	return n > 0;
}

static void lookup_past(fuse_req_t req, const struct iref *p, const char *name)
{
	struct fs *fs = fs_of(req);
	size_t nlen = strlen(name), len;
	struct txn_entry e;
	uint64_t num;
	char *path;
	int err;

	switch (p->kind) {
	case IK_ATDIR:
		err = parse_u64(name, nlen, &num);
		if (!err && (num < 1 || (int64_t)num > txn_engine_head(fs->eng)))
			err = -ENOENT;
		if (err)
			reply_err(req, err);
		else
			reply_tuple(req, IK_AT, num, TXN_DIR, "", 0, NULL);
		return;
	case IK_AT:
		path = child_path(p, name, &len);
		if (!path) {
			reply_err(req, -ENOMEM);
			return;
		}
		err = txn_at_stat(fs->eng, (int64_t)p->txn_id, path, len, &e);
		if (err)
			reply_err(req, err);
		else
			reply_tuple(req, IK_AT, p->txn_id, e.type, path, len, NULL);
		free(path);
		return;
	case IK_HISTDIR:
	case IK_HIST:
		if (p->kind == IK_HIST && txn_path_depth(p->path, p->len) == 2) {
			char *key = malloc(nlen + 1);
			struct txn_version *v;
			size_t n;

			err = key ? ekey_decode(name, key, &len) : -ENOMEM;
			if (!err) {
				struct iref kp = *p;
				char *kpath = child_path(&kp, key, &len);

				err = kpath ? txn_history(fs->eng, kpath, len, &v, &n) : -ENOMEM;
				if (!err) {
					free(v);
					reply_tuple(req, IK_HISTKEY, 0, TXN_DIR, kpath, len, NULL);
				}
				free(kpath);
			}
			free(key);
			if (err)
				reply_err(req, err);
			return;
		}
		path = child_path(p, name, &len);
		if (!path) {
			reply_err(req, -ENOMEM);
			return;
		}
		err = txn_check_name(name, nlen);
		if (!err && !names_nonempty(fs, path, len))
			err = -ENOENT;
		if (err)
			reply_err(req, err);
		else
			reply_tuple(req, IK_HIST, 0, TXN_DIR, path, len, NULL);
		free(path);
		return;
	case IK_EV: {
		struct ev_path ep;

		path = child_path(p, name, &len);
		if (!path) {
			reply_err(req, -ENOMEM);
			return;
		}
		err = ev_parse(path, len, &ep);
		if (err)
			reply_err(req, err);
		else
			reply_tuple(req, IK_EV, p->txn_id, ep.type, path, len, NULL);
		free(path);
		return;
	}
	case IK_HISTKEY: {
		const char *dot = strchr(name, '.');
		struct txn_version v;
		struct blob *b;

		if (!strcmp(name, "index.jsonl")) {
			reply_tuple(req, IK_HISTIDX, 0, TXN_FILE, p->path, p->len, NULL);
			return;
		}
		err = parse_u64(name, dot ? (size_t)(dot - name) : nlen, &num);
		if (err || (dot && strcmp(dot, ".deleted") != 0)) {
			reply_err(req, -ENOENT);
			return;
		}
		err = txn_history_value(fs->eng, p->path, p->len, (int64_t)num, &b, &v);
		if (!err) {
			blob_unref(b);
			if (v.deleted != (dot != NULL))
				err = -ENOENT;
		}
		if (err)
			reply_err(req, err);
		else
			reply_tuple(req, IK_HISTVER, num, TXN_FILE, p->path, p->len, NULL);
		return;
	}
	default:
		reply_err(req, -ENOTDIR);
	}
}

static void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct iref p;
	struct txn *tx = NULL;
	enum ikind ck;
	struct txn_entry e;
	size_t len;
	char *path;
	int err;

	if (strlen(name) > TXN_NAME_MAX) {
		reply_err(req, -ENAMETOOLONG);
		return;
	}
	err = iget(fs, parent, &p);
	if (err) {
		reply_err(req, err);
		return;
	}
	if (p.kind == IK_ROOT && name[0] == '.') {
		if (!strcmp(name, ".tx"))
			reply_tuple(req, IK_TXDIR, 0, TXN_DIR, "", 0, NULL);
		else if (!strcmp(name, ".health"))
			reply_tuple(req, IK_HEALTH, 0, TXN_FILE, "", 0, NULL);
		else if (!strcmp(name, ".version"))
			reply_tuple(req, IK_VERSION, 0, TXN_FILE, "", 0, NULL);
		else if (!strcmp(name, ".metrics"))
			reply_tuple(req, IK_METRICS, 0, TXN_FILE, "", 0, NULL);
		else if (!strcmp(name, ".status"))
			reply_tuple(req, IK_STATUS, 0, TXN_FILE, "", 0, NULL);
		else if (!strcmp(name, ".at"))
			reply_tuple(req, IK_ATDIR, 0, TXN_DIR, "", 0, NULL);
		else if (!strcmp(name, ".history"))
			reply_tuple(req, IK_HISTDIR, 0, TXN_DIR, "", 0, NULL);
		else if (!strcmp(name, ".events"))
			reply_tuple(req, IK_EV, 0, TXN_DIR, "", 0, NULL);
		else if (!strcmp(name, ".follow"))
			reply_tuple(req, IK_EV, 1, TXN_DIR, "", 0, NULL);
		else
			reply_err(req, -ENOENT);
		goto out;
	}
	if (is_past(p.kind)) {
		lookup_past(req, &p, name);
		goto out;
	}
	if (p.kind == IK_TXDIR) {
		tx = txn_find(fs->eng, name, strlen(name));
		if (!tx)
			reply_err(req, -ENOENT);
		else
			reply_tuple(req, IK_TXROOT, txn_id(tx), TXN_DIR, "", 0, NULL);
		goto out;
	}
	if (p.kind == IK_TXROOT) {
		struct blob *b = NULL;

		tx = txn_find_id(fs->eng, p.txn_id);
		if (!tx) {
			reply_err(req, -ENOENT);
			goto out;
		}
		if (is_ctl_name(name)) {
			if (!strcmp(name, ".commit") && txn_get_state(tx) != TXN_COMMITTED)
				reply_err(req, -ENOENT);
			else
				reply_tuple(req, IK_TXCTL, p.txn_id, TXN_FILE, name, strlen(name), NULL);
			goto out;
		}
		if (name[0] == '.') {
			/* Dot names at the top of a transaction are notes; others namespaces. */
			if (txn_note_get(tx, name, &b) == 0) {
				blob_unref(b);
				reply_tuple(req, IK_TXNOTE, p.txn_id, TXN_FILE, name, strlen(name),
					    NULL);
			} else {
				reply_err(req, -ENOENT);
			}
			goto out;
		}
		txn_unref(tx);
		tx = NULL;
	}
	err = view_of(fs, &p, &tx, &ck);
	if (err) {
		reply_err(req, err);
		goto out;
	}
	path = child_path(&p, name, &len);
	if (!path) {
		reply_err(req, -ENOMEM);
		goto out;
	}
	err = txn_stat(fs->eng, tx, path, len, &e);
	if (err)
		reply_err(req, err);
	else
		reply_tuple(req, ck, ck == IK_LIVE ? 0 : txn_id(tx), e.type, path, len, NULL);
	free(path);
out:
	txn_unref(tx);
	iref_release(&p);
}

static void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	iforget(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		iforget(fs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* A transaction's directories keep their owner and mode (a chmod invalidates them):
 * cached, the kernel's permission checks on every path through .tx/NAME cost no
 * round trip.  Its files change size with every staged write: never cached. */
static double attr_timeout(struct fs *fs, enum ikind kind, const struct stat *st)
{
	if (kind == IK_LIVE || kind == IK_ROOT || kind == IK_TXDIR)
		return fs->opt.entry_timeout_s;
	if ((kind == IK_TXPATH || kind == IK_TXROOT) && S_ISDIR(st->st_mode))
		return fs->opt.entry_timeout_s;
	return 0;
}

static void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct iref r;
	struct stat st;
	int err = iget(fs, ino, &r);

	if (!err)
		err = stat_iref(fs, &r, &st);
	if (!err && h && h->kind == H_WRITE && h->ir.kind != IK_LIVE) {
		/* A live key's size stays the committed one even for its writer: the kernel
		 * shares one inode between the writer and every reader. */
		pthread_mutex_lock(&h->lock);
		st.st_size = (off_t)h->size;
		pthread_mutex_unlock(&h->lock);
	}
	if (!err && h && h->kind == H_EVENTS) {
		/* fstat of an open stream: its size grows with commits (tail -f polls it). */
		pthread_mutex_lock(&h->lock);
		err = events_refresh(fs, h);
		st.st_size = (off_t)h->ev.len;
		pthread_mutex_unlock(&h->lock);
	}
	if (err)
		reply_err(req, err);
	else
		fuse_reply_attr(req, &st, attr_timeout(fs, r.kind, &st));
	iref_release(&r);
}

/* ---- handles ------------------------------------------------------------------------ */

static struct handle *handle_new(struct fs *fs, enum hkind kind, const struct iref *r)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->kind = kind;
	if (iref_copy(&h->ir, r)) {
		free(h);
		return NULL;
	}
	pthread_mutex_init(&h->lock, NULL);
	h->fs = fs;
	pthread_mutex_lock(&fs->handles_lock);
	h->all_next = fs->handles;
	if (fs->handles)
		fs->handles->all_prev = h;
	fs->handles = h;
	pthread_mutex_unlock(&fs->handles_lock);
	return h;
}

static void handle_free(struct handle *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->fs->handles_lock);
	if (h->all_prev)
		h->all_prev->all_next = h->all_next;
	else
		h->fs->handles = h->all_next;
	if (h->all_next)
		h->all_next->all_prev = h->all_prev;
	pthread_mutex_unlock(&h->fs->handles_lock);
	iref_release(&h->ir);
	free(h->buf);
	blob_unref(h->content);
	txn_dirents_free(h->ents, h->nents);
	strbuf_release(&h->ev);
	if (h->ph)
		fuse_pollhandle_destroy(h->ph);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static int buf_reserve(struct handle *h, size_t n)
{
	if (n <= h->cap)
		return 0;
	size_t cap = h->cap ? h->cap : 256;

	while (cap < n)
		cap *= 2;
	char *nb = realloc(h->buf, cap);

	if (!nb)
		return -ENOMEM;
	h->buf = nb;
	h->cap = cap;
	return 0;
}

/* May this inode be written?  EROFS for read-only areas and committed transactions. */
static int writable(struct fs *fs, const struct iref *r)
{
	struct txn *tx;
	int err;

	switch (r->kind) {
	case IK_LIVE:
		return 0;
	case IK_TXPATH:
	case IK_TXNOTE:
	case IK_TXROOT:
		tx = txn_find_id(fs->eng, r->txn_id);
		if (!tx)
			return -ENOENT;
		err = txn_writable(tx);
		txn_unref(tx);
		return err == -EBUSY ? -EROFS : err;
	case IK_TXCTL:
		if (strcmp(r->path, ".timeout_ms") != 0)
			return -EROFS;
		tx = txn_find_id(fs->eng, r->txn_id);
		if (!tx)
			return -ENOENT;
		err = txn_writable(tx);
		txn_unref(tx);
		return err;
	default:
		return -EROFS;
	}
}

/* Current value of a writable file, to start a handle that does not truncate. */
static int current_value(struct fs *fs, const struct iref *r, struct blob **out)
{
	struct txn *tx = NULL;
	int err;

	*out = NULL;
	if (r->kind == IK_TXNOTE || r->kind == IK_TXCTL || is_past(r->kind))
		return file_content(fs, r, out);
	if (r->kind == IK_TXPATH && !(tx = txn_find_id(fs->eng, r->txn_id)))
		return -ENOENT;
	err = txn_read(fs->eng, tx, r->path, r->len, out, NULL);
	txn_unref(tx);
	return err;
}

/* ---- .events and .follow ---------------------------------------------------------------- */

/* Render what was committed since the handle last looked.  h->lock held. */
static int events_refresh(struct fs *fs, struct handle *h)
{
	int64_t head = txn_engine_head(fs->eng), last = h->ev_last_ts;
	int err;

	if (head <= h->ev_last_ts)
		return 0;
	err = render_events(fs->eng, h->ev_filter, strlen(h->ev_filter), h->ev_last_ts + 1,
				head, &h->ev, &last);
	if (!err)
		h->ev_last_ts = head;
	return err;
}

static int events_open(struct fs *fs, const struct iref *r, struct handle **out)
{
	struct ev_path ep;
	struct handle *h;
	int err = ev_parse(r->path, r->len, &ep);

	*out = NULL;
	if (!err && ep.type != TXN_FILE)
		err = -EISDIR;
	if (err)
		return err;
	h = handle_new(fs, H_EVENTS, r);
	if (!h)
		return -ENOMEM;
	memcpy(h->ev_filter, ep.filter, sizeof(h->ev_filter));
	h->ev_last_ts = ep.since - 1;
	h->follow = r->txn_id == 1;
	err = events_refresh(fs, h); /* the stream as of the head at open */
	if (err) {
		handle_free(h);
		return err;
	}
	*out = h;
	return 0;
}

static void park_interrupt(fuse_req_t req, void *data)
{
	struct parked *p = data;
	struct fs *fs = fs_of(req);

	/* Runs under libfuse's request lock: only flag it; the notifier replies. */
	pthread_mutex_lock(&fs->nq_lock);
	p->interrupted = true;
	fs->wake = true;
	pthread_cond_signal(&fs->nq_cond);
	pthread_mutex_unlock(&fs->nq_lock);
}

/*
 * A copy of what a read of an events handle gets from the stream rendered so far, or
 * NULL when nothing is there yet.  h->lock held.  The reply goes out after the lock is
 * released: once it has, the reader may close and the release free h.
 */
static char *events_take(struct handle *h, off_t off, size_t size, size_t *n)
{
	char *copy;

	*n = 0;
	if ((size_t)off >= h->ev.len)
		return NULL;
	*n = h->ev.len - (size_t)off < size ? h->ev.len - (size_t)off : size;
	copy = malloc(*n);
	if (!copy) {
		*n = 0;
		return NULL;
	}
	memcpy(copy, h->ev.buf + off, *n);
	if ((size_t)off + *n > h->ev_pos)
		h->ev_pos = (size_t)off + *n;
	return copy;
}

static void events_read(fuse_req_t req, struct handle *h, off_t off, size_t size)
{
	struct fs *fs = fs_of(req);
	struct parked *p;
	int err = 0;

	char *data = NULL;
	size_t n = 0;
	bool follow;

	pthread_mutex_lock(&h->lock);
	if ((size_t)off + size > h->ev.len)
		err = events_refresh(fs, h);
	if (!err)
		data = events_take(h, off, size, &n);
	follow = h->follow;
	pthread_mutex_unlock(&h->lock);
	if (err || data || !follow) {
		if (err)
			reply_err(req, err);
		else
			fuse_reply_buf(req, data, n); /* n == 0: .events ends here for now */
		free(data);
		return;
	}

	/* .follow at the end: wait for the next commit without holding a thread. */
	p = calloc(1, sizeof(*p));
	if (!p) {
		reply_err(req, -ENOMEM);
		return;
	}
	p->req = req;
	p->h = h;
	p->off = off;
	p->size = size;
	fuse_req_interrupt_func(req, park_interrupt, p);
	pthread_mutex_lock(&fs->nq_lock);
	p->next = fs->parked;
	fs->parked = p;
	fs->wake = true; /* a commit may have landed since the refresh */
	pthread_cond_signal(&fs->nq_cond);
	pthread_mutex_unlock(&fs->nq_lock);
}

/* Notifier: answer parked reads that have data or were interrupted, and wake pollers. */
static void events_wake(struct fs *fs)
{
	struct parked *list, *keep = NULL, **tail = &keep;
	struct handle *h, *next;

	pthread_mutex_lock(&fs->nq_lock);
	list = fs->parked;
	fs->parked = NULL;
	pthread_mutex_unlock(&fs->nq_lock);

	for (struct parked *p = list, *pn; p; p = pn) {
		bool done;

		pn = p->next;
		pthread_mutex_lock(&fs->nq_lock);
		done = p->interrupted;
		pthread_mutex_unlock(&fs->nq_lock);
		if (done) {
			reply_err(p->req, -EINTR); /* never a partial line */
			free(p);
			continue;
		}
		char *data = NULL;
		size_t n = 0;

		pthread_mutex_lock(&p->h->lock);
		if (events_refresh(fs, p->h) == 0)
			data = events_take(p->h, p->off, p->size, &n);
		pthread_mutex_unlock(&p->h->lock);
		if (data) {
			fuse_reply_buf(p->req, data, n);
			free(data);
			free(p);
			continue;
		}
		p->next = NULL;
		*tail = p;
		tail = &p->next;
	}
	/* Pollers: wake each once per commit (a spurious wake is allowed; the kernel polls
	 * again and fs_op_poll re-arms).  Under nq_lock, so a release cannot free h. */
	pthread_mutex_lock(&fs->nq_lock);
	for (h = fs->polled; h; h = next) {
		next = h->poll_next;
		if (h->ph) {
			fuse_lowlevel_notify_poll(h->ph);
			fuse_pollhandle_destroy(h->ph);
			h->ph = NULL;
		}
		h->polled = false;
		h->poll_next = NULL;
	}
	fs->polled = NULL;
	*tail = fs->parked;
	fs->parked = keep;
	pthread_mutex_unlock(&fs->nq_lock);
}

static void fs_op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		       struct fuse_pollhandle *ph)
{
	struct fs *fs = fs_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	bool ready = true;

	if (h && h->kind == H_EVENTS && h->follow) {
		pthread_mutex_lock(&h->lock);
		ready = events_refresh(fs, h) != 0 || h->ev.len > h->ev_pos;
		pthread_mutex_unlock(&h->lock);
	}
	if (ready || !ph) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		fuse_reply_poll(req, ready ? POLLIN | POLLRDNORM : 0);
		return;
	}
	pthread_mutex_lock(&fs->nq_lock);
	if (h->ph)
		fuse_pollhandle_destroy(h->ph);
	h->ph = ph;
	if (!h->polled) {
		h->polled = true;
		h->poll_next = fs->polled;
		fs->polled = h;
	}
	pthread_mutex_unlock(&fs->nq_lock);
	fuse_reply_poll(req, 0);
}

/* Have the notifier drop the kernel's size and pages of ino (not from a handler). */
static void queue_inval(struct fs *fs, uint64_t ino)
{
	struct nq_item *it = calloc(1, sizeof(*it));

	if (!it)
		return;
	it->inval_ino = ino;
	pthread_mutex_lock(&fs->nq_lock);
	*fs->nq_tail = it;
	fs->nq_tail = &it->next;
	pthread_cond_signal(&fs->nq_cond);
	pthread_mutex_unlock(&fs->nq_lock);
}

static void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	bool trunc_live;
	struct handle *h = NULL;
	struct blob *b = NULL;
	struct iref r;
	int err = iget(fs, ino, &r);

	if (err)
		goto fail;
	if ((fi->flags & O_ACCMODE) == O_RDONLY) {
		if (r.kind == IK_LIVE) {
			/* Served by inode from the current value; pages stay cached until a
			 * commit invalidates them.  While a writer has the key open, the
			 * kernel's size and pages of the shared inode follow the writer's
			 * uncommitted bytes: then read past them, from the daemon. */
			fi->fh = 0;
			fs->key_reads++;
			if (ipending_size(fs, ino) >= 0)
				fi->direct_io = 1;
			else
				fi->keep_cache = 1;
			fi->noflush = 1;
			fuse_reply_open(req, fi);
			iref_release(&r);
			return;
		}
		if (r.kind == IK_TXPATH) {
			fi->fh = 0;
			fi->noflush = 1;
			fuse_reply_open(req, fi);
			iref_release(&r);
			return;
		}
		if (r.kind == IK_AT || r.kind == IK_HISTVER) {
			/* The past never changes: read by inode, once, then from the cache. */
			fi->fh = 0;
			fi->keep_cache = 1;
			fi->noflush = 1;
			fuse_reply_open(req, fi);
			iref_release(&r);
			return;
		}
		if (r.kind == IK_EV) {
			err = events_open(fs, &r, &h);
			if (err)
				goto fail;
			fi->direct_io = 1;
			fi->noflush = 1;
			fi->nonseekable = 0;
			fi->fh = (uintptr_t)h;
			fuse_reply_open(req, fi);
			iref_release(&r);
			return;
		}
		err = file_content(fs, &r, &b);
		if (err)
			goto fail;
		h = handle_new(fs, H_CONTENT, &r);
		if (!h) {
			err = -ENOMEM;
			goto fail;
		}
		h->content = b;
		b = NULL;
		if (r.kind == IK_AT || r.kind == IK_HISTVER)
			fi->keep_cache = 1; /* the past never changes */
		else
			fi->direct_io = 1;
		fi->noflush = 1;
		fi->fh = (uintptr_t)h;
		fuse_reply_open(req, fi);
		iref_release(&r);
		return;
	}
	err = writable(fs, &r);
	if (err)
		goto fail;
	h = handle_new(fs, H_WRITE, &r);
	if (!h) {
		err = -ENOMEM;
		goto fail;
	}
	h->append = fi->flags & O_APPEND;
	if (fi->flags & O_TRUNC) {
		h->dirty = true;
	} else {
		err = current_value(fs, &r, &b);
		if (err)
			goto fail;
		if (buf_reserve(h, b->len + 1)) {
			err = -ENOMEM;
			goto fail;
		}
		memcpy(h->buf, b->data, b->len);
		h->size = b->len;
	}
	/* A writer must not put uncommitted bytes into the page cache that readers of the
	 * live key share (keep_cache): its writes go straight to its buffer (and the
	 * kernel then skips its security.capability lookup before each write). */
	fi->direct_io = 1;
	iwriter(fs, ino, 1, h->size);
	fi->fh = (uintptr_t)h;
	trunc_live = r.kind == IK_LIVE && (fi->flags & O_TRUNC);
	fuse_reply_open(req, fi);
	if (trunc_live)
		queue_inval(fs, ino); /* the kernel set the shared size to 0 */
	blob_unref(b);
	iref_release(&r);
	return;
fail:
	blob_unref(b);
	handle_free(h);
	reply_err(req, err);
	iref_release(&r);
}

static void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct blob *b = NULL;
	struct iref r;
	int err;

	if (h && h->kind == H_EVENTS) {
		events_read(req, h, off, size);
		return;
	}
	if (h && h->kind == H_CONTENT) {
		b = blob_ref(h->content);
	} else if (h && h->kind == H_WRITE) {
		/* A copy, replied after the lock is released (see events_take). */
		pthread_mutex_lock(&h->lock);
		b = blob_new((size_t)off < h->size ? h->buf + off : "",
			     (size_t)off < h->size ? (h->size - (size_t)off < size
						      ? h->size - (size_t)off : size) : 0);
		pthread_mutex_unlock(&h->lock);
		if (!b) {
			reply_err(req, -ENOMEM);
			return;
		}
		fuse_reply_buf(req, (const char *)b->data, b->len);
		blob_unref(b);
		return;
	} else {
		err = iget(fs, ino, &r);
		if (!err)
			err = current_value(fs, &r, &b);
		iref_release(&r);
		if (err) {
			reply_err(req, err);
			return;
		}
	}
	if ((size_t)off >= b->len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, (const char *)b->data + off,
			       b->len - (size_t)off < size ? b->len - (size_t)off : size);
	blob_unref(b);
}

/* Parse a decimal number of milliseconds with an optional trailing newline. */
static int parse_ms(const char *s, size_t n, int64_t *out)
{
	int64_t v = 0;
	size_t i = 0;

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		n--;
	if (n == 0 || n > 12)
		return -EINVAL;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	size_t end;
	bool live;
	int err = 0;

	if (!h || h->kind != H_WRITE) {
		reply_err(req, -EBADF);
		return;
	}
	if (h->append) {
		/* The kernel's idea of the end is the committed size; ours is the buffer's. */
		pthread_mutex_lock(&h->lock);
		off = (off_t)h->size;
		pthread_mutex_unlock(&h->lock);
	}
	end = (size_t)off + size;
	if (end > txn_engine_options(fs->eng)->max_value_bytes) {
		pthread_mutex_lock(&h->lock);
		h->failed = true;
		pthread_mutex_unlock(&h->lock);
		reply_err(req, -EFBIG);
		return;
	}
	if (h->ir.kind != IK_LIVE) {
		/* An expired or committed transaction refuses the write itself. */
		err = writable(fs, &h->ir);
		if (err) {
			reply_err(req, err);
			return;
		}
	}
	pthread_mutex_lock(&h->lock);
	err = buf_reserve(h, end + 1);
	if (!err) {
		if ((size_t)off > h->size)
			memset(h->buf + h->size, 0, (size_t)off - h->size);
		memcpy(h->buf + off, buf, size);
		if (end > h->size)
			h->size = end;
		h->dirty = true;
		h->written = true;
	}
	if (!err && h->ir.kind == IK_TXCTL) {
		struct txn *tx = txn_find_id(fs->eng, h->ir.txn_id);
		int64_t ms;

		err = tx ? parse_ms(h->buf, h->size, &ms) : -ENOENT;
		if (!err)
			err = txn_set_timeout(fs->eng, tx, ms);
		txn_unref(tx);
		h->dirty = false;
	}
	if (!err)
		iwriter(fs, ino, 0, h->size);
	pthread_mutex_unlock(&h->lock);
	if (err) {
		reply_err(req, err);
		return;
	}
	/* After the reply the writer may close and the release free h: decide first. */
	live = h->ir.kind == IK_LIVE;
	fuse_reply_write(req, size);
	if (live) {
		/* The kernel grew the shared inode's size to the writer's: make readers ask
		 * again, or they would read zeros past the committed end. */
		queue_inval(fs, ino);
	}
}

/* ---- commits from the live tree -------------------------------------------------------- */

enum wait_kind { W_NONE = 0, W_FLUSH, W_UNLINK, W_RENAME, W_SETATTR, W_COMMIT, W_RMDIR };

struct waiter {
	struct fs *fs;
	fuse_req_t req;
	enum wait_kind kind;
	uint64_t ino;        /* W_SETATTR */
	uint64_t txn_id;     /* W_COMMIT */
	char *src, *dst;     /* W_RENAME / W_COMMIT: names to move in the inode table */
	bool is_dir;
};

static void queue_changes(struct fs *fs, struct txn_changes *ch);

/*
 * The numbers of the inodes in the table for which match(in, arg) holds, in *out
 * (malloc'ed; as many as memory allows), so that the caller can notify the kernel with
 * no lock held.
 */
static size_t inodes_where(struct fs *fs, bool (*match)(const struct inode *, const void *),
			   const void *arg, uint64_t **out)
{
	struct inode *in, *tmp;
	size_t n = 0, cap = 0;

	*out = NULL;
	pthread_mutex_lock(&fs->itable_lock);
	HASH_ITER(hh_ino, fs->by_ino, in, tmp) {
		if (!match(in, arg))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			uint64_t *ni = realloc(*out, nc * sizeof(*ni));

			if (!ni)
				break;
			*out = ni;
			cap = nc;
		}
		(*out)[n++] = in->ino;
	}
	pthread_mutex_unlock(&fs->itable_lock);
	return n;
}

/*
 * A commit ended a transaction's view (or failed it): the directory is read-only (0500)
 * and its view answers EROFS, ESTALE or ETIMEDOUT from now on, so the attributes the
 * kernel caches for its directories are stale.  The notifier drops them.
 */
static bool is_txn_dir(const struct inode *in, const void *arg)
{
	return (in->kind == IK_TXROOT || in->kind == IK_TXPATH) && in->type == TXN_DIR &&
	       in->txn_id == *(const uint64_t *)arg;
}

static void inval_txn(struct fs *fs, uint64_t txn_id, bool now)
{
	uint64_t *inos;
	size_t n = inodes_where(fs, is_txn_dir, &txn_id, &inos);

	for (size_t i = 0; i < n; i++) {
		if (now && fs->se)
			fuse_lowlevel_notify_inval_inode(fs->se, inos[i], 0, 0);
		else
			queue_inval(fs, inos[i]);
	}
	free(inos);
}

/*
 * A write's commit failed.  If its key does not exist, the kernel still holds the entry
 * the create made, and with default_permissions it would answer the next open of that
 * name with our ENOENT for the inode: have the notifier drop the entry, as after a delete.
 */
static void forget_failed_create(struct fs *fs, const char *path)
{
	struct txn_changes *ch = calloc(1, sizeof(*ch));
	struct txn_entry e;

	if (!ch)
		return;
	if (txn_stat(fs->eng, NULL, path, strlen(path), &e) != -ENOENT ||
	    !(ch->paths = malloc(sizeof(*ch->paths))) || !(ch->paths[0] = strdup(path))) {
		txn_changes_free(ch);
		return;
	}
	ch->n = 1;
	queue_changes(fs, ch);
}

static void waiter_done(struct txn_commit_req *creq, int err)
{
	struct waiter *w = creq->arg;
	struct fs *fs = w->fs;

	if (err && (w->kind == W_NONE || w->kind == W_FLUSH))
		forget_failed_create(fs, creq->path);

	switch (w->kind) {
	case W_NONE:
		if (err)
			log_warn("cannot commit '%s' on release: %s", creq->path, strerror(-err));
		break;
	case W_FLUSH:
		reply_err(w->req, err);
		break;
	case W_UNLINK:
		if (!err)
			iunhash(fs, IK_LIVE, 0, TXN_FILE, creq->path, strlen(creq->path));
		reply_err(w->req, err);
		break;
	case W_RMDIR:
		if (!err)
			iunhash(fs, IK_LIVE, 0, TXN_DIR, creq->path, strlen(creq->path));
		reply_err(w->req, err);
		break;
	case W_RENAME:
		if (!err)
			imove(fs, IK_LIVE, 0, creq->path, strlen(creq->path), creq->path2,
			      strlen(creq->path2));
		reply_err(w->req, err);
		break;
	case W_SETATTR: {
		struct iref r = { .ino = w->ino, .kind = IK_LIVE,
				  .type = w->is_dir ? TXN_DIR : TXN_FILE,
				  .path = creq->path, .len = strlen(creq->path) };
		struct stat st;

		if (!err)
			err = stat_iref(fs, &r, &st);
		if (err)
			reply_err(w->req, err);
		else
			fuse_reply_attr(w->req, &st, fs->opt.entry_timeout_s);
		break;
	}
	case W_COMMIT:
		if (!err) {
			pthread_mutex_lock(&fs->itable_lock);
			struct inode *in = ifind_key_locked(fs, IK_TXNOTE, w->txn_id, TXN_FILE,
							    w->src, strlen(w->src));
			if (in)
				irekey_locked(fs, in, IK_TXCTL, ".commit", 7);
			pthread_mutex_unlock(&fs->itable_lock);
		}
		/* A successful commit completes on the notifier thread, after the batch's
		 * invalidation: drop the view's attributes there, before the reply, so the
		 * caller's next stat sees the committed state.  (Attributes only: this
		 * takes no lock the waiting rename holds.)  A failure comes from the
		 * committer: queued. */
		inval_txn(fs, w->txn_id, err == 0);
		reply_err(w->req, err);
		break;
	}
	free(w->src);
	free(w->dst);
	free(w);
	txn_commit_req_free(creq);
}

static struct txn_commit_req *creq_new(struct fs *fs, fuse_req_t req, enum wait_kind kind,
				       bool late)
{
	struct txn_commit_req *c = calloc(1, sizeof(*c));
	struct waiter *w = calloc(1, sizeof(*w));

	if (!c || !w) {
		free(c);
		free(w);
		return NULL;
	}
	w->fs = fs;
	w->req = req;
	w->kind = kind;
	c->arg = w;
	c->done = waiter_done;
	c->late = late;
	return c;
}

static void creq_abandon(struct txn_commit_req *c)
{
	if (c)
		free(c->arg);
	txn_commit_req_free(c);
}

/*
 * Commit or stage a write handle's buffer.  Replies to req (maybe later); req NULL is
 * the release of a handle that was created or truncated and never written: its empty
 * value commits then, with nobody waiting.  (A flush cannot commit it: bash opens,
 * dup2()s and closes the first descriptor, which flushes, before it writes.)
 */
static void commit_handle(struct fs *fs, fuse_req_t req, struct handle *h)
{
	struct blob *val;
	struct txn *tx;
	int err;

	pthread_mutex_lock(&h->lock);
	if (h->failed) {
		pthread_mutex_unlock(&h->lock);
		reply_err(req, -EFBIG);
		return;
	}
	if (!h->dirty || (req && !h->written)) {
		pthread_mutex_unlock(&h->lock);
		reply_err(req, 0);
		return;
	}
	val = blob_new(h->buf ? h->buf : "", h->size);
	/* Handed over: a second flush (a dup'ed descriptor) or the release must not commit
	 * it again, and a failed commit must not come back at release either. */
	h->dirty = false;
	pthread_mutex_unlock(&h->lock);
	if (!val) {
		reply_err(req, -ENOMEM);
		return;
	}
	switch (h->ir.kind) {
	case IK_LIVE: {
		struct txn_commit_req *c = creq_new(fs, req, req ? W_FLUSH : W_NONE, true);

		if (!c || !(c->path = strdup(h->ir.path))) {
			blob_unref(val);
			creq_abandon(c);
			reply_err(req, -ENOMEM);
			return;
		}
		c->kind = TXN_AUTO_PUT;
		c->value = val;
		txn_autocommit(fs->eng, c);
		return;
	}
	case IK_TXPATH:
	case IK_TXNOTE:
		tx = txn_find_id(fs->eng, h->ir.txn_id);
		if (!tx) {
			blob_unref(val);
			err = -ENOENT;
		} else if (h->ir.kind == IK_TXPATH) {
			err = txn_stage_put(fs->eng, tx, h->ir.path, h->ir.len, val);
		} else {
			err = txn_note_put(tx, h->ir.path, val);
		}
		txn_unref(tx);
		reply_err(req, err);
		return;
	default:
		blob_unref(val);
		reply_err(req, 0);
		return;
	}
}

static void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	if (!h || h->kind != H_WRITE) {
		reply_err(req, 0);
		return;
	}
	commit_handle(fs_of(req), req, h);
}

static void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fs_op_flush(req, ino, fi);
}

static void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct fs *fs = fs_of(req);

	if (h && h->kind == H_EVENTS) {
		pthread_mutex_lock(&fs->nq_lock);
		for (struct handle **pp = &fs->polled; *pp; pp = &(*pp)->poll_next) {
			if (*pp == h) {
				*pp = h->poll_next;
				break;
			}
		}
		pthread_mutex_unlock(&fs->nq_lock);
	}

	if (h && h->kind == H_WRITE) {
		commit_handle(fs_of(req), NULL, h);
		iwriter(fs_of(req), ino, -1, 0);
	}
	handle_free(h);
	reply_err(req, 0);
}

/* ---- create / mkdir / unlink / rmdir ------------------------------------------------- */

/* The rules for a new name below parent p, in any area. */
static int check_new_name(const struct iref *p, const char *name)
{
	int err = check_name(name);

	if (err)
		return err;
	if (p->kind == IK_ROOT && name[0] == '.')
		return -EINVAL; /* reserved at the root */
	return 0;
}

static void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			 struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h = NULL;
	struct txn *tx = NULL;
	struct iref p, r = { 0 };
	enum ikind ck;
	size_t len = 0;
	char *path = NULL;
	int err = iget(fs, parent, &p);

	if (!err && is_past(p.kind))
		err = -EROFS;
	if (!err)
		err = check_new_name(&p, name);
	if (err)
		goto fail;
	switch (p.kind) {
	case IK_TXROOT:
		err = writable(fs, &p);
		if (err)
			goto fail;
		if (name[0] != '.') {
			err = -EISDIR; /* a namespace of the view */
			goto fail;
		}
		if (is_ctl_name(name)) {
			err = -EEXIST;
			goto fail;
		}
		tx = txn_find_id(fs->eng, p.txn_id);
		err = tx ? txn_note_put(tx, name, blob_new("", 0)) : -ENOENT;
		if (err)
			goto fail;
		r = (struct iref){ .kind = IK_TXNOTE, .type = TXN_FILE, .txn_id = p.txn_id,
				   .path = (char *)name, .len = strlen(name) };
		break;
	case IK_ROOT:
	case IK_LIVE:
	case IK_TXPATH:
		err = view_of(fs, &p, &tx, &ck);
		if (err)
			goto fail;
		path = child_path(&p, name, &len);
		if (!path) {
			err = -ENOMEM;
			goto fail;
		}
		if (txn_path_depth(path, len) < 3) {
			err = -EINVAL; /* a key lives below <ns>/<agent>/ */
			goto fail;
		}
		if (len - p.len > TXN_KEY_MAX) {
			err = -ENAMETOOLONG;
			goto fail;
		}
		if (tx) {
			/* Staged at once so the new name shows in the view. */
			err = txn_stage_put(fs->eng, tx, path, len, blob_new("", 0));
			if (err)
				goto fail;
		}
		r = (struct iref){ .kind = ck, .type = TXN_FILE, .txn_id = p.txn_id, .path = path,
				   .len = len };
		break;
	case IK_TXDIR:
		err = -EINVAL; /* .tx holds transactions: mkdir them */
		goto fail;
	default:
		err = -ENOTDIR;
		goto fail;
	}
	h = handle_new(fs, H_WRITE, &r);
	if (!h) {
		err = -ENOMEM;
		goto fail;
	}
	h->dirty = r.kind == IK_LIVE; /* `touch newkey` commits an empty value */
	{
		uint64_t ino;

		err = iget_tuple(fs, r.kind, r.txn_id, TXN_FILE, r.path, r.len, &ino);
		if (err)
			goto fail;
		h->ir.ino = ino;
		iwriter(fs, ino, 1, 0);
		fi->direct_io = 1;
		fi->fh = (uintptr_t)h;
		struct fuse_entry_param e;
		struct stat st;

		fill_attr(fs, &st, ino, TXN_FILE, 0, 0, 0);
		entry_param(fs, &e, ino, &st, r.kind);
		if (fuse_reply_create(req, &e, fi) != 0) {
			iwriter(fs, ino, -1, 0);
			iforget(fs, ino, 1);
			handle_free(h);
		}
	}
	txn_unref(tx);
	free(path);
	iref_release(&p);
	return;
fail:
	handle_free(h);
	txn_unref(tx);
	free(path);
	iref_release(&p);
	reply_err(req, err);
}

static void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs *fs = fs_of(req);
	struct txn *tx = NULL;
	struct iref p;
	enum ikind ck;
	size_t len;
	char *path = NULL;
	int err = iget(fs, parent, &p);

	if (!err && is_past(p.kind))
		err = -EROFS;
	if (!err)
		err = check_new_name(&p, name);
	if (err)
		goto out;
	switch (p.kind) {
	case IK_TXDIR:
		if (name[0] == '.') {
			err = -EINVAL;
			goto out;
		}
		err = txn_begin(fs->eng, name, strlen(name), fuse_req_ctx(req)->uid,
				fuse_req_ctx(req)->gid, &tx);
		if (!err)
			reply_tuple(req, IK_TXROOT, txn_id(tx), TXN_DIR, "", 0, NULL);
		goto out;
	case IK_TXROOT:
		if (name[0] == '.') {
			err = -EINVAL;
			goto out;
		}
		err = writable(fs, &p);
		if (err)
			goto out;
		__attribute__((fallthrough));
	case IK_ROOT:
	case IK_LIVE:
	case IK_TXPATH:
		err = view_of(fs, &p, &tx, &ck);
		if (err)
			goto out;
		path = child_path(&p, name, &len);
		if (!path) {
			err = -ENOMEM;
			goto out;
		}
		err = tx ? txn_stage_mkdir(fs->eng, tx, path, len)
			 : txn_live_mkdir(fs->eng, path, len);
		if (!err)
			reply_tuple(req, ck, tx ? txn_id(tx) : 0, TXN_DIR, path, len, NULL);
		goto out;
	default:
		err = -ENOTDIR;
	}
out:
	if (err)
		reply_err(req, err);
	txn_unref(tx);
	free(path);
	iref_release(&p);
}

static void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct txn *tx = NULL;
	struct txn_entry e;
	struct iref p;
	enum ikind ck;
	size_t len;
	char *path = NULL;
	int err = iget(fs, parent, &p);

	if (err)
		goto out;
	if (p.kind == IK_TXROOT) {
		tx = txn_find_id(fs->eng, p.txn_id);
		if (!tx) {
			err = -ENOENT;
			goto out;
		}
		if (is_ctl_name(name)) {
			err = -EROFS;
			goto out;
		}
		err = txn_note_remove(tx, name);
		if (err != -ENOENT)
			goto out;
		if (txn_writable(tx) == -EROFS) {
			err = -EROFS;
			goto out;
		}
		txn_unref(tx);
		tx = NULL;
	}
	if (p.kind != IK_ROOT && p.kind != IK_LIVE && p.kind != IK_TXROOT && p.kind != IK_TXPATH) {
		err = p.kind == IK_TXDIR ? -EISDIR : -EROFS;
		goto out;
	}
	err = view_of(fs, &p, &tx, &ck);
	if (err)
		goto out;
	path = child_path(&p, name, &len);
	if (!path) {
		err = -ENOMEM;
		goto out;
	}
	if (tx) {
		err = txn_writable(tx);
		if (!err)
			err = txn_stage_delete(fs->eng, tx, path, len);
		if (!err)
			iunhash(fs, IK_TXPATH, txn_id(tx), TXN_FILE, path, len);
		goto out;
	}
	err = txn_stat(fs->eng, NULL, path, len, &e);
	if (!err && e.type != TXN_FILE)
		err = -EISDIR;
	if (err)
		goto out;
	{
		struct txn_commit_req *c = creq_new(fs, req, W_UNLINK, false);

		if (!c) {
			err = -ENOMEM;
			goto out;
		}
		c->kind = TXN_AUTO_DELETE;
		c->path = path;
		path = NULL;
		txn_autocommit(fs->eng, c);
	}
out:
	if (err || tx || p.kind == IK_TXROOT)
		reply_err(req, err);
	txn_unref(tx);
	free(path);
	iref_release(&p);
}

static void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct txn *tx = NULL;
	struct iref p;
	enum ikind ck;
	size_t len;
	char *path = NULL;
	int err = iget(fs, parent, &p);

	if (err)
		goto out;
	if (is_past(p.kind)) {
		err = -EROFS;
		goto out;
	}
	if (p.kind == IK_ROOT && name[0] == '.') {
		err = -EINVAL;
		goto out;
	}
	if (p.kind == IK_TXDIR) {
		tx = txn_find(fs->eng, name, strlen(name));
		uint64_t id = tx ? txn_id(tx) : 0;

		err = txn_remove(fs->eng, name, strlen(name));
		if (!err)
			iunhash(fs, IK_TXROOT, id, TXN_DIR, "", 0);
		goto out;
	}
	if (p.kind == IK_TXROOT && name[0] == '.') {
		err = -ENOTDIR;
		goto out;
	}
	err = view_of(fs, &p, &tx, &ck);
	if (err)
		goto out;
	path = child_path(&p, name, &len);
	if (!path) {
		err = -ENOMEM;
		goto out;
	}
	if (tx) {
		err = txn_writable(tx);
		if (!err)
			err = txn_stage_rmdir(fs->eng, tx, path, len);
	} else {
		struct txn_attr a;
		int depth = txn_path_depth(path, len);

		err = txn_live_rmdir(fs->eng, path, len);
		if (!err && depth <= 2 && txn_dir_attr(fs->eng, path, len, &a) == 0 && a.own) {
			/* Its owner and mode go with it (a commit): it is implicit again. */
			struct txn_commit_req *c = creq_new(fs, req, W_RMDIR, false);

			if (!c) {
				err = -ENOMEM;
				goto out;
			}
			c->path = path;
			path = NULL;
			c->kind = TXN_AUTO_ATTR;
			c->attr.own = false;
			txn_autocommit(fs->eng, c);
			txn_unref(tx);
			iref_release(&p);
			return;
		}
	}
	if (!err)
		iunhash(fs, ck, tx ? txn_id(tx) : 0, TXN_DIR, path, len);
out:
	reply_err(req, err);
	txn_unref(tx);
	free(path);
	iref_release(&p);
}

/* ---- rename ------------------------------------------------------------------------- */

static bool same_view(const struct iref *a, const struct iref *b)
{
	bool la = a->kind == IK_ROOT || a->kind == IK_LIVE;
	bool lb = b->kind == IK_ROOT || b->kind == IK_LIVE;
	bool ta = a->kind == IK_TXROOT || a->kind == IK_TXPATH;
	bool tb = b->kind == IK_TXROOT || b->kind == IK_TXPATH;

	return (la && lb) || (ta && tb && a->txn_id == b->txn_id);
}

/* rename onto .tx/NAME/.commit: commit with the source note file as the note. */
static void commit_rename(fuse_req_t req, const struct iref *p, const char *name)
{
	struct fs *fs = fs_of(req);
	struct txn *tx = txn_find_id(fs->eng, p->txn_id);
	struct txn_commit_req *c;
	struct waiter *w;
	struct blob *b = NULL;
	int err;

	if (!tx) {
		reply_err(req, -ENOENT);
		return;
	}
	if (txn_note_get(tx, name, &b) != 0) {
		/* Only a regular file at the top of the transaction can be renamed onto
		 * .commit; anything else is not a note. */
		err = txn_writable(tx);
		reply_err(req, err ? err : -EINVAL);
		txn_unref(tx);
		return;
	}
	blob_unref(b);
	c = creq_new(fs, req, W_COMMIT, true);
	if (!c) {
		reply_err(req, -ENOMEM);
		txn_unref(tx);
		return;
	}
	w = c->arg;
	w->txn_id = p->txn_id;
	w->src = strdup(name);
	err = w->src ? txn_commit_tx(fs->eng, tx, name, c) : -ENOMEM;
	if (err) {
		free(w->src);
		creq_abandon(c);
		reply_err(req, err);
	}
	txn_unref(tx);
}

static void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	struct iref p = { 0 }, np = { 0 };
	struct txn *tx = NULL;
	enum ikind ck;
	size_t slen = 0, dlen = 0;
	char *src = NULL, *dst = NULL;
	int err;

	if (flags & RENAME_EXCHANGE) {
		reply_err(req, -EINVAL);
		return;
	}
	err = iget(fs, parent, &p);
	if (!err)
		err = iget(fs, newparent, &np);
	if (!err && strlen(newname) > TXN_NAME_MAX)
		err = -ENAMETOOLONG;
	if (!err && (is_past(p.kind) || is_past(np.kind)))
		err = -EROFS;
	if (!err && ((p.kind == IK_ROOT && (!strcmp(name, ".at") || !strcmp(name, ".history"))) ||
		     (np.kind == IK_ROOT &&
		      (!strcmp(newname, ".at") || !strcmp(newname, ".history")))))
		err = -EROFS;
	if (err)
		goto out;

	/* The top of a transaction directory: notes and the commit. */
	if (p.kind == IK_TXROOT && np.kind == IK_TXROOT && p.txn_id == np.txn_id) {
		struct blob *b = NULL;
		struct txn *t = txn_find_id(fs->eng, p.txn_id);
		bool src_note = t && txn_note_get(t, name, &b) == 0;

		blob_unref(b);
		if (!strcmp(newname, ".commit")) {
			txn_unref(t);
			if (!src_note && !is_ctl_name(name)) {
				struct txn_entry e;

				/* A directory of the view is not a note. */
				t = txn_find_id(fs->eng, p.txn_id);
				err = t && txn_stat(fs->eng, t, name, strlen(name), &e) == 0 ? -EISDIR
											 : -ENOENT;
				txn_unref(t);
				if (t)
					goto out;
			}
			if (!strcmp(name, ".commit"))
				reply_err(req, 0);
			else
				commit_rename(req, &p, name);
			iref_release(&p);
			iref_release(&np);
			return;
		}
		if (src_note || name[0] == '.' || newname[0] == '.') {
			if (is_ctl_name(name) || is_ctl_name(newname))
				err = -EROFS;
			else if (!src_note)
				err = -ENOENT;
			else if (newname[0] != '.')
				err = -EXDEV; /* a note cannot become a namespace */
			else
				err = t ? txn_note_rename(t, name, newname) : -ENOENT;
			if (!err) {
				pthread_mutex_lock(&fs->itable_lock);
				iunhash_locked(fs, ifind_key_locked(fs, IK_TXNOTE, p.txn_id, TXN_FILE,
								    newname, strlen(newname)));
				struct inode *in = ifind_key_locked(fs, IK_TXNOTE, p.txn_id, TXN_FILE,
								    name, strlen(name));
				if (in)
					irekey_locked(fs, in, IK_TXNOTE, newname, strlen(newname));
				pthread_mutex_unlock(&fs->itable_lock);
			}
			txn_unref(t);
			goto out;
		}
		txn_unref(t);
	}
	if (!same_view(&p, &np)) {
		err = -EXDEV;
		goto out;
	}
	if ((p.kind == IK_ROOT && name[0] == '.') || (np.kind == IK_ROOT && newname[0] == '.')) {
		err = -EXDEV; /* .tx, .health, ... are areas of their own */
		goto out;
	}
	err = check_name(newname);
	if (err)
		goto out;
	err = view_of(fs, &p, &tx, &ck);
	if (err)
		goto out;
	src = child_path(&p, name, &slen);
	dst = child_path(&np, newname, &dlen);
	if (!src || !dst) {
		err = -ENOMEM;
		goto out;
	}
	if (tx) {
		err = txn_stage_rename(fs->eng, tx, src, slen, dst, dlen, flags & RENAME_NOREPLACE);
		if (!err)
			imove(fs, IK_TXPATH, txn_id(tx), src, slen, dst, dlen);
		goto out;
	}
	{
		struct txn_commit_req *c = creq_new(fs, req, W_RENAME, false);

		if (!c) {
			err = -ENOMEM;
			goto out;
		}
		c->kind = TXN_AUTO_RENAME;
		c->path = src;
		c->path2 = dst;
		c->noreplace = flags & RENAME_NOREPLACE;
		src = dst = NULL;
		txn_autocommit(fs->eng, c);
		iref_release(&p);
		iref_release(&np);
		return;
	}
out:
	reply_err(req, err);
	txn_unref(tx);
	free(src);
	free(dst);
	iref_release(&p);
	iref_release(&np);
}

/* ---- setattr ----------------------------------------------------------------------- */

/*
 * chmod, chown, chgrp.  On a namespace or agent directory of the live tree a change is
 * a commit (1: queued, the reply comes when it is durable).  Everything else keeps the
 * owner and mode it derives from its agent: asking for what it already has succeeds
 * (cp -p, rsync), anything else is EPERM.  The kernel (default_permissions) has
 * already checked that the caller may ask.
 */
static int set_owner_mode(struct fs *fs, fuse_req_t req, const struct iref *r,
			  const struct stat *attr, int to_set)
{
	struct txn_commit_req *c;
	struct stat cur;
	struct txn_attr a;
	int depth, err = stat_iref(fs, r, &cur);

	if (err)
		return err;
	a.uid = (to_set & FUSE_SET_ATTR_UID) ? (uint32_t)attr->st_uid : (uint32_t)cur.st_uid;
	a.gid = (to_set & FUSE_SET_ATTR_GID) ? (uint32_t)attr->st_gid : (uint32_t)cur.st_gid;
	a.mode = (to_set & FUSE_SET_ATTR_MODE) ? (uint32_t)(attr->st_mode & 07777)
					       : (uint32_t)(cur.st_mode & 07777);
	a.own = true;
	if (a.uid == cur.st_uid && a.gid == cur.st_gid && a.mode == (cur.st_mode & 07777))
		return 0;
	depth = r->kind == IK_LIVE ? txn_path_depth(r->path, r->len) : 0;
	if (depth < 1 || depth > 2 || r->type != TXN_DIR)
		return is_past(r->kind) ? -EROFS : -EPERM;
	c = creq_new(fs, req, W_SETATTR, false);
	if (!c || !(c->path = strdup(r->path))) {
		creq_abandon(c);
		return -ENOMEM;
	}
	((struct waiter *)c->arg)->ino = r->ino;
	((struct waiter *)c->arg)->is_dir = true;
	c->kind = TXN_AUTO_ATTR;
	c->attr = a;
	txn_autocommit(fs->eng, c);
	return 1;
}

static void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			  struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct iref r;
	struct stat st;
	int err = iget(fs, ino, &r);

	if (err)
		goto fail;
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		err = set_owner_mode(fs, req, &r, attr, to_set);
		if (err == 1) {
			iref_release(&r);
			return; /* committing; the reply comes with the commit */
		}
		if (err)
			goto fail;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		size_t size = (size_t)attr->st_size;

		if (attr->st_size < 0) {
			err = -EINVAL;
			goto fail;
		}
		if (size > txn_engine_options(fs->eng)->max_value_bytes) {
			err = -EFBIG;
			goto fail;
		}
		err = writable(fs, &r);
		if (err)
			goto fail;
		if (h && h->kind == H_WRITE) {
			pthread_mutex_lock(&h->lock);
			err = buf_reserve(h, size + 1);
			if (!err) {
				if (size > h->size)
					memset(h->buf + h->size, 0, size - h->size);
				h->size = size;
				h->dirty = true;
				h->written = true;
			}
			pthread_mutex_unlock(&h->lock);
			if (err)
				goto fail;
			iwriter(fs, ino, 0, size);
		} else if (r.kind == IK_TXCTL) {
			/* `echo N > .timeout_ms` truncates first: nothing to do. */
		} else {
			struct blob *cur = NULL, *nv;
			char *buf;

			err = current_value(fs, &r, &cur);
			if (err)
				goto fail;
			buf = calloc(1, size + 1);
			if (!buf) {
				blob_unref(cur);
				err = -ENOMEM;
				goto fail;
			}
			memcpy(buf, cur->data, cur->len < size ? cur->len : size);
			nv = blob_new(buf, size);
			free(buf);
			blob_unref(cur);
			if (!nv) {
				err = -ENOMEM;
				goto fail;
			}
			if (r.kind == IK_LIVE) {
				struct txn_commit_req *c = creq_new(fs, req, W_SETATTR, false);

				if (!c || !(c->path = strdup(r.path))) {
					blob_unref(nv);
					creq_abandon(c);
					err = -ENOMEM;
					goto fail;
				}
				((struct waiter *)c->arg)->ino = ino;
				c->kind = TXN_AUTO_PUT;
				c->value = nv;
				txn_autocommit(fs->eng, c);
				iref_release(&r);
				return;
			}
			struct txn *tx = txn_find_id(fs->eng, r.txn_id);

			if (!tx) {
				blob_unref(nv);
				err = -ENOENT;
			} else if (r.kind == IK_TXPATH) {
				err = txn_stage_put(fs->eng, tx, r.path, r.len, nv);
			} else {
				err = txn_note_put(tx, r.path, nv);
			}
			txn_unref(tx);
			if (err)
				goto fail;
		}
	}
	/* Times are accepted and change nothing: mtime is the time of the commit. */
	err = stat_iref(fs, &r, &st);
	if (err)
		goto fail;
	if (h && h->kind == H_WRITE && h->ir.kind != IK_LIVE) {
		pthread_mutex_lock(&h->lock);
		st.st_size = (off_t)h->size;
		pthread_mutex_unlock(&h->lock);
	}
	fuse_reply_attr(req, &st, attr_timeout(fs, r.kind, &st));
	iref_release(&r);
	return;
fail:
	iref_release(&r);
	reply_err(req, err);
}

/* ---- directories ---------------------------------------------------------------------- */

static int dir_add(struct handle *h, size_t *cap, const char *name, enum txn_type type)
{
	if (h->nents == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct txn_dirent *nd = realloc(h->ents, nc * sizeof(*nd));

		if (!nd)
			return -ENOMEM;
		h->ents = nd;
		*cap = nc;
	}
	h->ents[h->nents].name = strdup(name);
	if (!h->ents[h->nents].name)
		return -ENOMEM;
	h->ents[h->nents].type = type;
	h->nents++;
	return 0;
}

static int dir_add_all(struct handle *h, size_t *cap, struct txn_dirent *d, size_t n)
{
	int err = 0;

	for (size_t i = 0; i < n && !err; i++)
		err = dir_add(h, cap, d[i].name, d[i].type);
	txn_dirents_free(d, n);
	return err;
}

static void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct txn_dirent *d = NULL;
	struct handle *h = NULL;
	struct txn *tx = NULL;
	size_t n = 0, cap = 0;
	struct iref r;
	enum ikind ck;
	int err = iget(fs, ino, &r);

	if (err)
		goto fail;
	h = handle_new(fs, H_DIR, &r);
	if (!h) {
		err = -ENOMEM;
		goto fail;
	}
	err = dir_add(h, &cap, ".", TXN_DIR);
	if (!err)
		err = dir_add(h, &cap, "..", TXN_DIR);
	if (err)
		goto fail;
	switch (r.kind) {
	case IK_ROOT:
		err = dir_add(h, &cap, ".at", TXN_DIR);
		if (!err)
			err = dir_add(h, &cap, ".health", TXN_FILE);
		if (!err)
			err = dir_add(h, &cap, ".events", TXN_DIR);
		if (!err)
			err = dir_add(h, &cap, ".follow", TXN_DIR);
		if (!err)
			err = dir_add(h, &cap, ".history", TXN_DIR);
		if (!err)
			err = dir_add(h, &cap, ".metrics", TXN_FILE);
		if (!err)
			err = dir_add(h, &cap, ".status", TXN_FILE);
		if (!err)
			err = dir_add(h, &cap, ".tx", TXN_DIR);
		if (!err)
			err = dir_add(h, &cap, ".version", TXN_FILE);
		if (!err)
			err = txn_list(fs->eng, NULL, "", 0, &d, &n);
		if (!err)
			err = dir_add_all(h, &cap, d, n);
		break;
	case IK_TXDIR:
		err = txn_list_names(fs->eng, &d, &n);
		if (!err)
			err = dir_add_all(h, &cap, d, n);
		break;
	case IK_TXROOT:
		tx = txn_find_id(fs->eng, r.txn_id);
		if (!tx) {
			err = -ENOENT;
			break;
		}
		if (txn_get_state(tx) == TXN_COMMITTED)
			err = dir_add(h, &cap, ".commit", TXN_FILE);
		if (!err)
			err = dir_add(h, &cap, ".status", TXN_FILE);
		if (!err)
			err = dir_add(h, &cap, ".timeout_ms", TXN_FILE);
		if (!err)
			err = txn_note_list(tx, &d, &n);
		if (!err)
			err = dir_add_all(h, &cap, d, n);
		if (!err && txn_list(fs->eng, tx, "", 0, &d, &n) == 0)
			err = dir_add_all(h, &cap, d, n);
		break;
	case IK_LIVE:
	case IK_TXPATH:
		err = view_of(fs, &r, &tx, &ck);
		if (!err)
			err = txn_list(fs->eng, tx, r.path, r.len, &d, &n);
		if (!err)
			err = dir_add_all(h, &cap, d, n);
		break;
	case IK_ATDIR:
		break; /* every commit_ts is there; listing them all would be the whole log */
	case IK_AT:
		err = txn_at_list(fs->eng, (int64_t)r.txn_id, r.path, r.len, &d, &n);
		if (!err)
			err = dir_add_all(h, &cap, d, n);
		break;
	case IK_HISTDIR:
	case IK_HIST:
		err = txn_history_names(fs->eng, r.path, r.len, &d, &n);
		if (!err && r.kind == IK_HIST && txn_path_depth(r.path, r.len) == 2) {
			/* Keys of an agent, each one component: encoded. */
			for (size_t i = 0; i < n && !err; i++) {
				char *e = ekey_encode(d[i].name, strlen(d[i].name));

				err = e ? dir_add(h, &cap, e, TXN_DIR) : -ENOMEM;
				free(e);
			}
			txn_dirents_free(d, n);
		} else if (!err) {
			err = dir_add_all(h, &cap, d, n);
		}
		break;
	case IK_EV: {
		struct ev_path ep;

		err = ev_parse(r.path, r.len, &ep);
		if (err)
			break;
		if (r.len == 0)
			err = dir_add(h, &cap, "since", TXN_DIR);
		if (err || (r.len == 5 && !memcmp(r.path, "since", 5)))
			break; /* every commit_ts is there by name */
		{
			/* The namespace part of the path, if any. */
			const char *ns = r.path;
			size_t nslen = r.len;

			if (nslen >= 6 && !memcmp(ns, "since/", 6)) {
				const char *sl = memchr(ns + 6, '/', nslen - 6);

				ns = sl ? sl + 1 : ns + nslen;
				nslen = sl ? r.len - (size_t)(ns - r.path) : 0;
			}
			if (nslen == 0) {
				err = dir_add(h, &cap, "all.jsonl", TXN_FILE);
				if (!err)
					err = txn_history_names(fs->eng, "", 0, &d, &n);
				if (!err)
					err = dir_add_all(h, &cap, d, n);
			} else {
				err = txn_history_names(fs->eng, ns, nslen, &d, &n);
				for (size_t i = 0; i < n && !err; i++) {
					char name[TXN_NAME_MAX + 8];

					snprintf(name, sizeof(name), "%s.jsonl", d[i].name);
					err = dir_add(h, &cap, name, TXN_FILE);
				}
				if (!err || n)
					txn_dirents_free(d, n);
			}
		}
		break;
	}
	case IK_HISTKEY: {
		struct txn_version *v = NULL;

		err = txn_history(fs->eng, r.path, r.len, &v, &n);
		if (!err)
			err = dir_add(h, &cap, "index.jsonl", TXN_FILE);
		for (size_t i = 0; i < n && !err; i++) {
			char name[40];

			snprintf(name, sizeof(name), "%" PRId64 "%s", v[i].version,
				 v[i].deleted ? ".deleted" : "");
			err = dir_add(h, &cap, name, TXN_FILE);
		}
		free(v);
		break;
	}
	default:
		err = -ENOTDIR;
	}
	if (err)
		goto fail;
	txn_unref(tx);
	iref_release(&r);
	fi->fh = (uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		handle_free(h);
	return;
fail:
	txn_unref(tx);
	iref_release(&r);
	handle_free(h);
	reply_err(req, err);
}

static void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	char *buf;
	size_t used = 0;

	if (!h || h->kind != H_DIR) {
		reply_err(req, -EBADF);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		reply_err(req, -ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < h->nents; i++) {
		struct stat st = { 0 };
		size_t n;

		st.st_ino = UNKNOWN_INO;
		st.st_mode = h->ents[i].type == TXN_DIR ? S_IFDIR : S_IFREG;
		n = fuse_add_direntry(req, buf + used, size - used, h->ents[i].name, &st,
				      (off_t)(i + 1));
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	handle_free((struct handle *)(uintptr_t)fi->fh);
	reply_err(req, 0);
}

/* ---- extended attributes, statfs ------------------------------------------------------- */

#define XA_VERSION "user.statehouse.version"
#define XA_COMMIT "user.statehouse.commit_ts"

static int key_entry(struct fs *fs, fuse_ino_t ino, struct txn_entry *e)
{
	struct txn *tx = NULL;
	struct iref r;
	int err = iget(fs, ino, &r);

	if (err)
		return err;
	if (r.kind != IK_LIVE && r.kind != IK_TXPATH) {
		iref_release(&r);
		return -ENODATA;
	}
	if (r.kind == IK_TXPATH && !(tx = txn_find_id(fs->eng, r.txn_id)))
		err = -ENOENT;
	if (!err)
		err = txn_stat(fs->eng, tx, r.path, r.len, e);
	if (!err && e->type != TXN_FILE)
		err = -ENODATA;
	txn_unref(tx);
	iref_release(&r);
	return err;
}

static void reply_xattr(fuse_req_t req, const char *val, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		reply_err(req, -ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

static void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct txn_entry e;
	char val[32];
	int err = key_entry(fs_of(req), ino, &e);

	if (!err && !strcmp(name, XA_VERSION))
		snprintf(val, sizeof(val), "%" PRId64, e.version);
	else if (!err && !strcmp(name, XA_COMMIT))
		snprintf(val, sizeof(val), "%" PRId64, e.commit_ts);
	else if (!err)
		err = -ENODATA;
	if (!err && e.version == 0)
		err = -ENODATA; /* staged, not committed yet */
	if (err)
		reply_err(req, err);
	else
		reply_xattr(req, val, strlen(val), size);
}

static void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char names[] = XA_VERSION "\0" XA_COMMIT;
	struct txn_entry e;
	int err = key_entry(fs_of(req), ino, &e);

	if (err == -ENODATA || (!err && e.version == 0))
		reply_xattr(req, "", 0, size);
	else if (err)
		reply_err(req, err);
	else
		reply_xattr(req, names, sizeof(names), size);
}

static void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			   size_t size, int flags)
{
	reply_err(req, -ENOTSUP);
}

static void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	reply_err(req, -ENOTSUP);
}

static void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = { 0 };

	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = TXN_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* ---- init and the notifier ----------------------------------------------------------- */

static void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* O_TRUNC arrives with open.  Without it the kernel sends the truncation as a
	 * setattr without a file handle, which cannot be told from `truncate -s 0 key`
	 * and would commit an empty value. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Keys carry no setuid bits or capabilities: without this the kernel asks for
	 * security.capability before every write. */
	if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV)
		conn->want |= FUSE_CAP_HANDLE_KILLPRIV;
	/* Small values, many files: write-back caching was measured slower here. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ & ~(unsigned)FUSE_CAP_SPLICE_WRITE &
		      ~(unsigned)FUSE_CAP_SPLICE_MOVE;
}

struct prefix {
	const char *p;
	size_t len;
};

static bool is_at_or_below(const struct inode *in, const void *arg)
{
	const struct prefix *pf = arg;

	return in->len >= pf->len && memcmp(in->path, pf->p, pf->len) == 0 &&
	       (in->len == pf->len || in->path[pf->len] == '/');
}

/* The owner or mode of a namespace or agent changed: every inode at or below it, in
 * every view, has stale attributes (keys take their agent's). */
static void invalidate_below(struct fs *fs, const char *p, size_t len)
{
	struct prefix pf = { p, len };
	uint64_t *inos;
	size_t n = inodes_where(fs, is_at_or_below, &pf, &inos);

	for (size_t i = 0; i < n; i++)
		fuse_lowlevel_notify_inval_inode(fs->se, inos[i], -1, 0);
	free(inos);
}

/* Invalidate what a batch of commits made stale in the kernel's caches. */
static void invalidate(struct fs *fs, struct txn_changes *ch)
{
	struct todo {
		uint64_t ino;
		uint64_t parent;
		char *name;
	};

	for (size_t i = 0; i < ch->n; i++) {
		const char *p = ch->paths[i];
		size_t len = strlen(p);
		struct txn_entry e;

		if (txn_path_depth(p, len) <= 2) {
			invalidate_below(fs, p, len);
			continue;
		}
		bool is_file = txn_stat(fs->eng, NULL, p, len, &e) == 0 && e.type == TXN_FILE;
		uint64_t file_ino = 0;

		/* Walk from the key up: the key's own inode, then each directory that no
		 * longer exists (or that now exists as a key). */
		pthread_mutex_lock(&fs->itable_lock);
		struct inode *in = ifind_key_locked(fs, IK_LIVE, 0, TXN_FILE, p, len);

		if (in)
			file_ino = in->ino;
		pthread_mutex_unlock(&fs->itable_lock);
		if (file_ino)
			fuse_lowlevel_notify_inval_inode(fs->se, file_ino, 0, 0);

		size_t end = len;

		for (;;) {
			const char *slash = memrchr(p, '/', end);
			size_t plen = slash ? (size_t)(slash - p) : 0;
			const char *name = slash ? slash + 1 : p;
			size_t nlen = end - (size_t)(name - p);
			uint64_t parent_ino = 0;
			bool gone;

			if (end == len) {
				gone = !is_file; /* the key itself was deleted */
			} else {
				struct txn_entry de;

				gone = !(txn_stat(fs->eng, NULL, p, end, &de) == 0 &&
					 de.type == TXN_DIR);
			}
			if (!gone)
				break;
			pthread_mutex_lock(&fs->itable_lock);
			if (plen == 0 && !slash) {
				parent_ino = FUSE_ROOT_ID;
			} else {
				struct inode *pin = ifind_key_locked(fs, IK_LIVE, 0, TXN_DIR, p, plen);

				parent_ino = pin ? pin->ino : 0;
			}
			pthread_mutex_unlock(&fs->itable_lock);
			if (parent_ino) {
				char name_buf[TXN_NAME_MAX + 1];

				memcpy(name_buf, name, nlen);
				name_buf[nlen] = '\0';
				fuse_lowlevel_notify_inval_entry(fs->se, parent_ino, name_buf, nlen);
			}
			if (!slash)
				break;
			end = plen;
		}
	}
}

static void *notifier_main(void *arg)
{
	struct fs *fs = arg;

	for (;;) {
		struct nq_item *it;

		pthread_mutex_lock(&fs->nq_lock);
		while (!fs->nq_head && !fs->wake && !fs->nq_stopping)
			pthread_cond_wait(&fs->nq_cond, &fs->nq_lock);
		it = fs->nq_head;
		if (!it && fs->wake) {
			fs->wake = false;
			pthread_mutex_unlock(&fs->nq_lock);
			events_wake(fs);
			continue;
		}
		if (!it) {
			pthread_mutex_unlock(&fs->nq_lock);
			break;
		}
		fs->nq_head = it->next;
		if (!fs->nq_head)
			fs->nq_tail = &fs->nq_head;
		if (it->ch)
			fs->wake = true; /* followers may have something new */
		pthread_mutex_unlock(&fs->nq_lock);

		if (!it->ch) {
			if (fs->se)
				fuse_lowlevel_notify_inval_inode(fs->se, it->inval_ino, 0, 0);
			free(it);
			continue;
		}
		if (fs->se)
			invalidate(fs, it->ch);
		for (struct txn_commit_req *r = it->ch->late, *next; r; r = next) {
			next = r->next;
			r->next = NULL;
			r->done(r, 0);
		}
		it->ch->late = NULL;
		txn_changes_free(it->ch);
		free(it);
	}
	return NULL;
}

/* Called by the committer: hand the batch to the notifier thread. */
static void on_commit(void *arg, struct txn_changes *ch)
{
	queue_changes(arg, ch);
}

static void queue_changes(struct fs *fs, struct txn_changes *ch)
{
	struct nq_item *it = calloc(1, sizeof(*it));

	if (!it) {
		/* Cannot queue: complete now rather than leave callers hanging. */
		for (struct txn_commit_req *r = ch->late, *next; r; r = next) {
			next = r->next;
			r->done(r, 0);
		}
		ch->late = NULL;
		txn_changes_free(ch);
		return;
	}
	it->ch = ch;
	pthread_mutex_lock(&fs->nq_lock);
	*fs->nq_tail = it;
	fs->nq_tail = &it->next;
	pthread_cond_signal(&fs->nq_cond);
	pthread_mutex_unlock(&fs->nq_lock);
}

static const struct fuse_lowlevel_ops ops = {
	.init = fs_op_init,
	.lookup = fs_op_lookup,
	.forget = fs_op_forget,
	.forget_multi = fs_op_forget_multi,
	.getattr = fs_op_getattr,
	.setattr = fs_op_setattr,
	.mkdir = fs_op_mkdir,
	.unlink = fs_op_unlink,
	.rmdir = fs_op_rmdir,
	.rename = fs_op_rename,
	.open = fs_op_open,
	.read = fs_op_read,
	.write = fs_op_write,
	.flush = fs_op_flush,
	.release = fs_op_release,
	.fsync = fs_op_fsync,
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.releasedir = fs_op_releasedir,
	.statfs = fs_op_statfs,
	.setxattr = fs_op_setxattr,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
	.removexattr = fs_op_removexattr,
	.create = fs_op_create,
	.poll = fs_op_poll,
};

const void *fs_ops(size_t *size)
{
	*size = sizeof(ops);
	return &ops;
}

int fs_new(struct txn_engine *eng, const struct fs_options *opt, struct fs **out)
{
	struct fs *fs = calloc(1, sizeof(*fs));

	*out = NULL;
	if (!fs)
		return -ENOMEM;
	fs->eng = eng;
	fs->opt = *opt;
	fs->opt.datadir = fs->datadir = strdup(opt->datadir ? opt->datadir : "");
	fs->opt.mountpoint = fs->mountpoint = strdup(opt->mountpoint ? opt->mountpoint : "");
	if (!fs->datadir || !fs->mountpoint) {
		free(fs->datadir);
		free(fs->mountpoint);
		free(fs);
		return -ENOMEM;
	}
	fs->uid = geteuid();
	fs->gid = getegid();
	fs->start_ns = now_ns(CLOCK_REALTIME);
	fs->next_ino = INO_FIRST_DYNAMIC;
	pthread_mutex_init(&fs->itable_lock, NULL);
	pthread_mutex_init(&fs->ev_lock, NULL);
	pthread_mutex_init(&fs->nq_lock, NULL);
	pthread_mutex_init(&fs->handles_lock, NULL);
	pthread_cond_init(&fs->nq_cond, NULL);
	fs->nq_tail = &fs->nq_head;
	*out = fs;
	return 0;
}

int fs_start(struct fs *fs, void *session)
{
	int rc;

	fs->se = session;
	rc = pthread_create(&fs->notifier, NULL, notifier_main, fs);
	if (rc)
		return -rc;
	fs->notifier_started = true;
	txn_engine_set_notify(fs->eng, on_commit, fs);
	return 0;
}

void fs_free(struct fs *fs)
{
	struct inode *in, *tmp;

	if (!fs)
		return;
	if (fs->notifier_started) {
		pthread_mutex_lock(&fs->nq_lock);
		fs->nq_stopping = true;
		pthread_cond_signal(&fs->nq_cond);
		pthread_mutex_unlock(&fs->nq_lock);
		pthread_join(fs->notifier, NULL);
	}
	for (struct parked *p = fs->parked, *pn; p; p = pn) {
		pn = p->next;
		reply_err(p->req, -EINTR);
		free(p);
	}
	HASH_ITER(hh_ino, fs->by_ino, in, tmp) {
		HASH_DELETE(hh_ino, fs->by_ino, in);
		if (in->hashed)
			HASH_DELETE(hh_key, fs->by_key, in);
		inode_free(in);
	}
	{
		struct evsize *x, *xtmp;

		HASH_ITER(hh, fs->ev_sizes, x, xtmp) {
			HASH_DEL(fs->ev_sizes, x);
			free(x->key);
			free(x);
		}
	}
	pthread_mutex_destroy(&fs->ev_lock);
	pthread_mutex_destroy(&fs->itable_lock);
	pthread_mutex_destroy(&fs->nq_lock);
	pthread_cond_destroy(&fs->nq_cond);
	while (fs->handles)
		handle_free(fs->handles);
	pthread_mutex_destroy(&fs->handles_lock);
	free(fs->datadir);
	free(fs->mountpoint);
	free(fs);
}
