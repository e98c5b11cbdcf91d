/*
 * txn.c - transactions and the in-memory versioned state (txn layer).
 *
 * Design notes
 *
 * Invariants
 *  1. The store's log is the truth.  The tree here is derived from it: recover() loads
 *     the newest snapshot and replays the log after it, and a commit becomes visible
 *     only after store_append() returned success for the batch holding it
 *     (publish_batch()).
 *  2. Every key that ever existed has a node whose newest version is its current state
 *     (a delete is a version without a value), so per-key versions continue after a
 *     delete and after a restart.
 *  3. A version with commit_ts > published_ts is invisible to every reader.  The
 *     committer appends versions under the tree lock before the store write and either
 *     publishes them (raising published_ts) or undoes them, so readers never block on
 *     fsync and never see an uncommitted value.
 *  4. A version chain keeps, below its head, every version some pinned snapshot (an open
 *     or committing transaction's begin_ts) can still see; older ones are pruned when a
 *     batch publishes.
 *  5. commit_ts values are consecutive: head_ts is advanced only by the committer, and
 *     rolled back with the undo of a failed batch.
 *  6. head_desc/pub_desc count the live keys strictly below a node at the head and at
 *     published_ts; a directory exists in the live tree while pub_desc > 0 (or mkdir
 *     made it explicitly).
 *
 * Transaction state machine (edges named by the function that takes them; run_batch()
 * sets the states after apply_txn() decided and the store answered)
 *   OPEN --txn_commit_tx--> COMMITTING --run_batch (durable)--> COMMITTED
 *   COMMITTING --run_batch (apply_txn: conflict / shape clash)--> CONFLICT
 *   COMMITTING --run_batch (apply_txn: deadline passed)--> EXPIRED
 *   COMMITTING --run_batch (store failed: ENOSPC, EIO)--> OPEN   (nothing changed; retry)
 *   OPEN --reap_expired / txn_commit_tx (deadline passed)--> EXPIRED
 *   OPEN --txn_remove--> ABORTED (and out of the table)
 * Only OPEN and COMMITTING pin a snapshot and count against max_open_txns.
 */
#include "txn.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <uthash.h>

#include "log.h"
#include "store.h"

#define AUTO_TXN_NAME "auto"
#define BATCH_MAX 512

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
	bool explicit_dir;
	struct dattr *attr; /* namespace or agent: recorded owner and mode, or NULL */
};

struct dattr {
	uint32_t uid, gid, mode;
};

enum staged_kind { ST_PUT = 1, ST_DELETE, ST_DIR };

struct staged {
	char *path;
	size_t len;
	enum staged_kind kind;
	struct blob *value;
	UT_hash_handle hh;
};

struct note {
	char *name;
	struct blob *content;
	UT_hash_handle hh;
};

struct txn {
	char *name;
	uint64_t id;
	uint32_t uid, gid;
	int64_t begin_ts;
	atomic_uint refs;
	UT_hash_handle hh_name; /* engine table, under table_lock */
	UT_hash_handle hh_id;
	bool in_table;

	pthread_mutex_t lock; /* protects everything below */
	enum txn_state state;
	int64_t begin_mono_ns;
	int64_t timeout_ms;
	struct staged *staged;
	size_t n_ops;     /* staged puts and deletes */
	size_t n_deletes; /* staged deletes */
	struct note *notes;
	int err;          /* after a failure */
	char *err_key;
	int64_t commit_ts;
	int64_t commit_time_ns;
	size_t committed_ops;
};

struct txn_engine {
	struct txn_options opt;
	struct store *store;

	/* Rank 1.  Protects the tree, published_ts/time and head_ts. */
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
		n_auto, n_failed, n_written, n_deleted;
	pthread_mutex_t lat_lock; /* leaf: protects lat_* */
	uint64_t lat_bucket[TXN_LAT_BUCKETS];
	uint64_t lat_count;
	double lat_sum_s;

	char *datadir;
	int64_t last_recovery_ns;
	uint64_t last_replayed;
	/* Written by the thread taking a snapshot (the reaper, or close). */
	int64_t snap_ts;            /* commit of the newest snapshot written or loaded */
	int64_t snap_retry_ns;      /* after a failed snapshot, not before this */
};

static int64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- path helpers ------------------------------------------------------------------ */

int txn_check_name(const char *name, size_t len)
{
	if (len == 0 || memchr(name, '/', len) || memchr(name, '\0', len))
		return -EINVAL;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return -EINVAL;
	if (len > TXN_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int txn_path_depth(const char *path, size_t len)
{
	int d = len ? 1 : 0;

	for (size_t i = 0; i < len; i++)
		if (path[i] == '/')
			d++;
	return d;
}

/* Validate every component of a view path, and the key length of a key path. */
static int check_path(const char *path, size_t len)
{
	size_t start = 0;
	int depth = 0, err;

	if (len == 0)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || path[i] == '/') {
			err = txn_check_name(path + start, i - start);
			if (err)
				return err;
			depth++;
			if (depth == 2 && i < len && len - i - 1 > TXN_KEY_MAX)
				return -ENAMETOOLONG;
			start = i + 1;
		}
	}
	if (path[0] == '.')
		return -EINVAL; /* reserved at the root */
	return 0;
}

static bool path_is_under(const char *p, size_t plen, const char *dir, size_t dlen)
{
	if (dlen == 0)
		return plen > 0;
	return plen > dlen && p[dlen] == '/' && memcmp(p, dir, dlen) == 0;
}

static char *path_join(const char *a, size_t alen, const char *b, size_t blen, size_t *out_len)
{
	size_t n = alen + (alen && blen ? 1 : 0) + blen;
	char *p = malloc(n + 1);

	if (!p)
		return NULL;
	memcpy(p, a, alen);
	if (alen && blen)
		p[alen] = '/';
	memcpy(p + n - blen, b, blen);
	p[n] = '\0';
	if (out_len)
		*out_len = n;
	return p;
}

/* ---- the tree ---------------------------------------------------------------------- */

static struct node *node_child(struct node *n, const char *name, size_t len)
{
	struct node *c = NULL;

	HASH_FIND(hh, n->children, name, len, c);
	return c;
}

static struct node *node_find(struct txn_engine *eng, const char *path, size_t len)
{
	struct node *n = &eng->root;
	size_t start = 0;

	if (len == 0)
		return n;
	for (size_t i = 0; i <= len && n; i++) {
		if (i == len || path[i] == '/') {
			n = node_child(n, path + start, i - start);
			start = i + 1;
		}
	}
	return n;
}

static struct node *node_find_or_create(struct txn_engine *eng, const char *path, size_t len)
{
	struct node *n = &eng->root;
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i == len || path[i] == '/') {
			struct node *c = node_child(n, path + start, i - start);

			if (!c) {
				c = calloc(1, sizeof(*c));
				if (!c)
					return NULL;
				c->name = malloc(i - start + 1);
				if (!c->name) {
					free(c);
					return NULL;
				}
				memcpy(c->name, path + start, i - start);
				c->name[i - start] = '\0';
				c->name_len = i - start;
				c->parent = n;
				HASH_ADD_KEYPTR(hh, n->children, c->name, c->name_len, c);
			}
			n = c;
			start = i + 1;
		}
	}
	return n;
}

static void node_free_tree(struct node *n)
{
	struct node *c, *tmp;

	HASH_ITER(hh, n->children, c, tmp) {
		HASH_DEL(n->children, c);
		node_free_tree(c);
		free(c->name);
		free(c->attr);
		free(c);
	}
	for (struct version *v = n->versions, *o; v; v = o) {
		o = v->older;
		blob_unref(v->value);
		free(v);
	}
	n->versions = NULL;
}

static struct version *visible(const struct node *n, int64_t ts)
{
	struct version *v = n ? n->versions : NULL;

	while (v && v->commit_ts > ts)
		v = v->older;
	return v;
}

static bool live_at(const struct node *n, int64_t ts)
{
	struct version *v = visible(n, ts);

	return v && v->value;
}

static bool head_live(const struct node *n)
{
	return n && n->versions && n->versions->value;
}

static void adjust_desc(struct node *n, bool head, int delta)
{
	for (struct node *a = n->parent; a; a = a->parent) {
		if (head)
			a->head_desc += delta;
		else
			a->pub_desc += delta;
	}
}

/* Build "a/b/c" for node n into a malloc'ed string. */
static char *node_path(const struct node *n, size_t *out_len)
{
	size_t len = 0;
	char *p, *w;

	for (const struct node *a = n; a && a->parent; a = a->parent)
		len += a->name_len + 1;
	if (len)
		len--;
	p = malloc(len + 1);
	if (!p)
		return NULL;
	w = p + len;
	*w = '\0';
	for (const struct node *a = n; a && a->parent; a = a->parent) {
		w -= a->name_len;
		memcpy(w, a->name, a->name_len);
		if (w > p)
			*--w = '/';
	}
	*out_len = len;
	return p;
}

/* Drop versions no snapshot at or after keep_ts can see. */
static void node_prune(struct node *n, int64_t keep_ts)
{
	struct version *v = n->versions;

	while (v && v->commit_ts > keep_ts)
		v = v->older;
	if (!v)
		return;
	for (struct version *o = v->older, *next; o; o = next) {
		next = o->older;
		blob_unref(o->value);
		free(o);
	}
	v->older = NULL;
}

/* ---- views ------------------------------------------------------------------------- */

static int tx_view_state_err(struct txn *tx)
{
	switch (tx->state) {
	case TXN_OPEN:
	case TXN_COMMITTING:
		return 0;
	case TXN_EXPIRED:
		return -ETIMEDOUT;
	case TXN_CONFLICT:
		return -ESTALE;
	case TXN_COMMITTED:
		return -EROFS;
	default:
		return -ENOENT;
	}
}

static struct staged *staged_find(struct txn *tx, const char *path, size_t len)
{
	struct staged *s = NULL;

	HASH_FIND(hh, tx->staged, path, len, s);
	return s;
}

/* Is there a staged put or directory strictly below path? */
static bool staged_below(struct txn *tx, const char *path, size_t len)
{
	struct staged *s, *tmp;

	HASH_ITER(hh, tx->staged, s, tmp) {
		if (s->kind != ST_DELETE && path_is_under(s->path, s->len, path, len))
			return true;
	}
	return false;
}

/* Does some key below node n (whose path is buf[0..len)) exist in tx's view? */
static bool snapshot_below(struct txn *tx, struct node *n, char *buf, size_t len, size_t cap)
{
	struct node *c, *tmp;

	HASH_ITER(hh, n->children, c, tmp) {
		size_t l = len + (len ? 1 : 0) + c->name_len;

		if (l >= cap)
			continue;
		if (len)
			buf[len] = '/';
		memcpy(buf + l - c->name_len, c->name, c->name_len);
		if (live_at(c, tx->begin_ts)) {
			struct staged *s = tx->n_deletes ? staged_find(tx, buf, l) : NULL;

			if (!s || s->kind != ST_DELETE)
				return true;
		}
		if (c->children && snapshot_below(tx, c, buf, l, cap))
			return true;
	}
	return false;
}

#define PATH_BUF (TXN_KEY_MAX + 2 * TXN_NAME_MAX + 8)

/*
 * Namespaces and agents (depth 1 and 2) exist implicitly: no key can live there, so any
 * valid name is a directory and `echo x > ns/agent/key` works on an empty tree.
 */
static bool implicit_dir(const char *path, size_t len)
{
	int depth = txn_path_depth(path, len);

	return (depth == 1 || depth == 2) && check_path(path, len) == 0;
}

static int view_resolve_x(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
			  struct txn_entry *out, struct blob **value, bool implicit);

/* Resolve path in a view; callers hold the tree lock (read) and, for tx, tx->lock. */
static int view_resolve(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
			struct txn_entry *out, struct blob **value)
{
	return view_resolve_x(eng, tx, path, len, out, value, true);
}

/* implicit: namespaces and agents exist without keys (lookups); listings say false. */
static int view_resolve_x(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
			  struct txn_entry *out, struct blob **value, bool implicit)
{
	struct node *n = node_find(eng, path, len);
	struct version *v;

	memset(out, 0, sizeof(*out));
	if (!tx) {
		if (len == 0) {
			out->type = TXN_DIR;
			return 0;
		}
		if (!n) {
			if (!implicit_dir(path, len))
				return -ENOENT;
			out->type = TXN_DIR;
			return 0;
		}
		v = visible(n, eng->published_ts);
		if (v && v->value) {
			out->type = TXN_FILE;
			out->size = v->value->len;
			out->version = v->version;
			out->commit_ts = v->commit_ts;
			out->time_ns = v->time_ns;
			if (value)
				*value = blob_ref(v->value);
			return 0;
		}
		if (n->pub_desc > 0 || n->explicit_dir || implicit_dir(path, len)) {
			out->type = TXN_DIR;
			return 0;
		}
		return -ENOENT;
	}

	int err = tx_view_state_err(tx);

	if (err)
		return err;
	if (len == 0) {
		out->type = TXN_DIR;
		return 0;
	}
	struct staged *s = staged_find(tx, path, len);

	v = visible(n, tx->begin_ts);
	if (s && s->kind == ST_PUT) {
		/* Staged, not committed: no version, no commit yet. */
		out->type = TXN_FILE;
		out->size = s->value->len;
		if (value)
			*value = blob_ref(s->value);
		return 0;
	}
	if (!s && v && v->value) {
		out->type = TXN_FILE;
		out->size = v->value->len;
		out->version = v->version;
		out->commit_ts = v->commit_ts;
		out->time_ns = v->time_ns;
		if (value)
			*value = blob_ref(v->value);
		return 0;
	}
	if (s && s->kind == ST_DIR) {
		out->type = TXN_DIR;
		return 0;
	}
	if (staged_below(tx, path, len)) {
		out->type = TXN_DIR;
		return 0;
	}
	if (n && n->children) {
		char buf[PATH_BUF];

		if (len < sizeof(buf)) {
			memcpy(buf, path, len);
			if (snapshot_below(tx, n, buf, len, sizeof(buf))) {
				out->type = TXN_DIR;
				return 0;
			}
		}
	}
	if ((implicit || (n && n->attr)) && implicit_dir(path, len)) {
		out->type = TXN_DIR;
		return 0;
	}
	return -ENOENT;
}

int txn_stat(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
	     struct txn_entry *out)
{
	int err;

	pthread_rwlock_rdlock(&eng->tree_lock);
	if (tx)
		pthread_mutex_lock(&tx->lock);
	err = view_resolve(eng, tx, path, len, out, NULL);
	if (tx)
		pthread_mutex_unlock(&tx->lock);
	pthread_rwlock_unlock(&eng->tree_lock);
	return err;
}

int txn_read(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
	     struct blob **out, struct txn_entry *meta)
{
	struct txn_entry e;
	int err;

	*out = NULL;
	pthread_rwlock_rdlock(&eng->tree_lock);
	if (tx)
		pthread_mutex_lock(&tx->lock);
	err = view_resolve(eng, tx, path, len, &e, out);
	if (tx)
		pthread_mutex_unlock(&tx->lock);
	pthread_rwlock_unlock(&eng->tree_lock);
	if (!err && e.type != TXN_FILE)
		err = -EISDIR;
	if (meta)
		*meta = e;
	return err;
}

/* A growing array of directory entries. */
struct dirents {
	struct txn_dirent *d;
	size_t n, cap;
};

static int dirents_add(struct dirents *ds, const char *name, size_t len, enum txn_type type)
{
	if (ds->n == ds->cap) {
		size_t cap = ds->cap ? ds->cap * 2 : 16;
		struct txn_dirent *nd = realloc(ds->d, cap * sizeof(*nd));

		if (!nd)
			return -ENOMEM;
		ds->d = nd;
		ds->cap = cap;
	}
	ds->d[ds->n].name = strndup(name, len);
	if (!ds->d[ds->n].name)
		return -ENOMEM;
	ds->d[ds->n].type = type;
	ds->n++;
	return 0;
}

static int dirent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct txn_dirent *)a)->name, ((const struct txn_dirent *)b)->name);
}

void txn_dirents_free(struct txn_dirent *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(d[i].name);
	free(d);
}

/* Sort and drop duplicate names (a staged name may also be in the snapshot). */
static void dirents_finish(struct dirents *ds)
{
	size_t w = 0;

	if (ds->n == 0)
		return;
	qsort(ds->d, ds->n, sizeof(*ds->d), dirent_cmp);
	for (size_t i = 1; i < ds->n; i++) {
		if (strcmp(ds->d[i].name, ds->d[w].name) == 0) {
			free(ds->d[i].name);
			continue;
		}
		ds->d[++w] = ds->d[i];
	}
	ds->n = w + 1;
}

int txn_list(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
	     struct txn_dirent **out, size_t *n)
{
	struct dirents ds = { 0 };
	struct txn_entry e;
	struct node *dir, *c, *tmp;
	int err;

	*out = NULL;
	*n = 0;
	pthread_rwlock_rdlock(&eng->tree_lock);
	if (tx)
		pthread_mutex_lock(&tx->lock);
	err = view_resolve(eng, tx, path, len, &e, NULL);
	if (!err && e.type != TXN_DIR)
		err = -ENOTDIR;
	if (err)
		goto unlock;
	dir = node_find(eng, path, len);
	if (dir) {
		HASH_ITER(hh, dir->children, c, tmp) {
			if (!tx) {
				if (live_at(c, eng->published_ts))
					err = dirents_add(&ds, c->name, c->name_len, TXN_FILE);
				else if (c->pub_desc > 0 || c->explicit_dir || c->attr)
					err = dirents_add(&ds, c->name, c->name_len, TXN_DIR);
			} else {
				size_t cl;
				char *cp = path_join(path, len, c->name, c->name_len, &cl);
				struct txn_entry ce;

				if (!cp) {
					err = -ENOMEM;
				} else if (view_resolve_x(eng, tx, cp, cl, &ce, NULL, false) == 0) {
					err = dirents_add(&ds, c->name, c->name_len, ce.type);
				}
				free(cp);
			}
			if (err)
				goto unlock;
		}
	}
	if (tx) {
		struct staged *s, *stmp;

		HASH_ITER(hh, tx->staged, s, stmp) {
			const char *rest, *slash;
			size_t rlen;

			if (s->kind == ST_DELETE || !path_is_under(s->path, s->len, path, len))
				continue;
			rest = s->path + len + (len ? 1 : 0);
			rlen = s->len - (size_t)(rest - s->path);
			slash = memchr(rest, '/', rlen);
			if (slash)
				err = dirents_add(&ds, rest, (size_t)(slash - rest), TXN_DIR);
			else
				err = dirents_add(&ds, rest, rlen,
						  s->kind == ST_PUT ? TXN_FILE : TXN_DIR);
			if (err)
				goto unlock;
		}
	}
unlock:
	if (tx)
		pthread_mutex_unlock(&tx->lock);
	pthread_rwlock_unlock(&eng->tree_lock);
	if (err) {
		txn_dirents_free(ds.d, ds.n);
		return err;
	}
	dirents_finish(&ds);
	*out = ds.d;
	*n = ds.n;
	return 0;
}

/* ---- owners and modes ------------------------------------------------------------- */

/* Attributes of "ns" or "ns/agent" as recorded or inherited; tree lock held. */
static void dir_attr_locked(struct txn_engine *eng, const char *path, size_t len, int depth,
			    struct txn_attr *out)
{
	const char *slash = memchr(path, '/', len);
	size_t nslen = slash ? (size_t)(slash - path) : len;
	struct node *ns = node_child(&eng->root, path, nslen), *ag = NULL;

	*out = (struct txn_attr){ .uid = eng->opt.owner_uid, .gid = eng->opt.owner_gid,
				  .mode = 0755 };
	if (ns && ns->attr)
		*out = (struct txn_attr){ .uid = ns->attr->uid, .gid = ns->attr->gid,
					  .mode = ns->attr->mode, .own = depth == 1 };
	if (depth == 1)
		return;
	out->own = false;
	if (ns) {
		const char *a = slash + 1, *end = memchr(a, '/', len - nslen - 1);

		ag = node_child(ns, a, end ? (size_t)(end - a) : len - nslen - 1);
	}
	if (ag && ag->attr) {
		*out = (struct txn_attr){ .uid = ag->attr->uid, .gid = ag->attr->gid,
					  .mode = ag->attr->mode, .own = depth == 2 };
		return;
	}
	/* Inherited from the namespace.  In a sticky one (a shared space like /tmp) an
	 * agent nobody set up is not writable by group and others. */
	if (out->mode & S_ISVTX)
		out->mode &= ~(mode_t)022;
	out->mode &= 0777;
}

int txn_dir_attr(struct txn_engine *eng, const char *path, size_t len, struct txn_attr *out)
{
	int depth = txn_path_depth(path, len);

	if (depth < 1 || len == 0 || check_path(path, len))
		return -EINVAL;
	pthread_rwlock_rdlock(&eng->tree_lock);
	dir_attr_locked(eng, path, len, depth, out);
	pthread_rwlock_unlock(&eng->tree_lock);
	if (depth > 2)
		out->own = false;
	return 0;
}

/* The log's form of an attribute change: {"uid":N,"gid":N,"mode":"0750"}. */
static struct blob *attr_encode(const struct txn_attr *a)
{
	char buf[96];
	int n = snprintf(buf, sizeof(buf), "{\"uid\":%" PRIu32 ",\"gid\":%" PRIu32
			 ",\"mode\":\"%04" PRIo32 "\"}", a->uid, a->gid, a->mode & 07777);

	return blob_new(buf, (size_t)n);
}

/* Parse a value written by attr_encode(); NULL *out for an empty value (cleared). */
static int attr_decode(const void *data, size_t len, struct dattr **out)
{
	json_t *o, *u, *g, *m;
	json_error_t jerr;
	struct dattr *a;
	const char *ms;
	char *end;
	unsigned long mode;

	*out = NULL;
	if (len == 0)
		return 0;
	o = json_loadb(data, len, 0, &jerr);
	u = json_object_get(o, "uid");
	g = json_object_get(o, "gid");
	m = json_object_get(o, "mode");
	ms = json_string_value(m);
	mode = ms ? strtoul(ms, &end, 8) : 0;
	if (!json_is_integer(u) || !json_is_integer(g) || !ms || *end || mode > 07777 ||
	    json_integer_value(u) < 0 || json_integer_value(u) > UINT32_MAX ||
	    json_integer_value(g) < 0 || json_integer_value(g) > UINT32_MAX) {
		json_decref(o);
		log_err("cannot read an owner record: '%.*s'", (int)(len > 200 ? 200 : len),
			(const char *)data);
		return -EIO;
	}
	a = malloc(sizeof(*a));
	if (!a) {
		json_decref(o);
		return -ENOMEM;
	}
	a->uid = (uint32_t)json_integer_value(u);
	a->gid = (uint32_t)json_integer_value(g);
	a->mode = (uint32_t)mode;
	json_decref(o);
	*out = a;
	return 0;
}

/* ---- live directories ------------------------------------------------------------- */

int txn_live_mkdir(struct txn_engine *eng, const char *path, size_t len)
{
	struct txn_entry e;
	struct node *n;
	int err = check_path(path, len);

	if (err)
		return err;
	if (txn_path_depth(path, len) < 1)
		return -EEXIST;
	pthread_rwlock_wrlock(&eng->tree_lock);
	err = view_resolve(eng, NULL, path, len, &e, NULL);
	if (err == 0) {
		err = -EEXIST;
		goto unlock;
	}
	/* The parent must be a directory (the kernel looked it up; it may have vanished). */
	{
		const char *slash = memrchr(path, '/', len);
		size_t plen = slash ? (size_t)(slash - path) : 0;
		struct txn_entry pe;

		err = view_resolve(eng, NULL, path, plen, &pe, NULL);
		if (!err && pe.type != TXN_DIR)
			err = -ENOTDIR;
		if (err == -ENOENT) {
			/* An implicit parent vanished: recreate the chain explicitly. */
			err = 0;
		}
		if (err)
			goto unlock;
	}
	n = node_find_or_create(eng, path, len);
	if (!n) {
		err = -ENOMEM;
		goto unlock;
	}
	if (head_live(n)) {
		/* A key is being committed at this very path. */
		err = -EEXIST;
		goto unlock;
	}
	for (struct node *a = n; a && a->parent; a = a->parent)
		a->explicit_dir = true;
	err = 0;
unlock:
	pthread_rwlock_unlock(&eng->tree_lock);
	return err;
}

static bool has_explicit_child(struct node *n)
{
	struct node *c, *tmp;

	HASH_ITER(hh, n->children, c, tmp) {
		if (c->explicit_dir || c->attr)
			return true;
	}
	return false;
}

int txn_live_rmdir(struct txn_engine *eng, const char *path, size_t len)
{
	struct node *n;
	int err = 0;

	if (len == 0)
		return -EBUSY;
	pthread_rwlock_wrlock(&eng->tree_lock);
	n = node_find(eng, path, len);
	if (!n)
		err = 0; /* implicit, or vanished with its last key: nothing to remove */
	else if (live_at(n, eng->published_ts))
		err = -ENOTDIR;
	else if (n->pub_desc > 0 || n->head_desc > 0 || has_explicit_child(n))
		err = -ENOTEMPTY;
	else
		n->explicit_dir = false; /* an empty implicit directory simply vanishes */
	pthread_rwlock_unlock(&eng->tree_lock);
	return err;
}

/* ---- transactions: table ------------------------------------------------------------ */

static void staged_free_all(struct txn *tx)
{
	struct staged *s, *tmp;

	HASH_ITER(hh, tx->staged, s, tmp) {
		HASH_DEL(tx->staged, s);
		blob_unref(s->value);
		free(s->path);
		free(s);
	}
	tx->n_ops = 0;
	tx->n_deletes = 0;
}

static void notes_free_all(struct txn *tx)
{
	struct note *nt, *tmp;

	HASH_ITER(hh, tx->notes, nt, tmp) {
		HASH_DEL(tx->notes, nt);
		blob_unref(nt->content);
		free(nt->name);
		free(nt);
	}
}

struct txn *txn_ref(struct txn *tx)
{
	if (tx)
		atomic_fetch_add(&tx->refs, 1);
	return tx;
}

void txn_unref(struct txn *tx)
{
	if (!tx || atomic_fetch_sub(&tx->refs, 1) != 1)
		return;
	staged_free_all(tx);
	notes_free_all(tx);
	pthread_mutex_destroy(&tx->lock);
	free(tx->err_key);
	free(tx->name);
	free(tx);
}

uint64_t txn_id(const struct txn *tx) { return tx->id; }
const char *txn_name(const struct txn *tx) { return tx->name; }
uint32_t txn_uid(const struct txn *tx) { return tx->uid; }
uint32_t txn_gid(const struct txn *tx) { return tx->gid; }
int64_t txn_begin_ts(const struct txn *tx) { return tx->begin_ts; }

enum txn_state txn_get_state(struct txn *tx)
{
	enum txn_state s;

	pthread_mutex_lock(&tx->lock);
	s = tx->state;
	pthread_mutex_unlock(&tx->lock);
	return s;
}

int64_t txn_timeout_ms(struct txn *tx)
{
	int64_t t;

	pthread_mutex_lock(&tx->lock);
	t = tx->timeout_ms;
	pthread_mutex_unlock(&tx->lock);
	return t;
}

static int note_set(struct txn *tx, const char *name, struct blob *content)
{
	struct note *nt = NULL;

	HASH_FIND_STR(tx->notes, name, nt);
	if (nt) {
		blob_unref(nt->content);
		nt->content = content;
		return 0;
	}
	nt = calloc(1, sizeof(*nt));
	if (!nt || !(nt->name = strdup(name))) {
		free(nt);
		blob_unref(content);
		return -ENOMEM;
	}
	nt->content = content;
	HASH_ADD_KEYPTR(hh, tx->notes, nt->name, strlen(nt->name), nt);
	return 0;
}

int txn_begin(struct txn_engine *eng, const char *name, size_t len, uint32_t uid,
	      uint32_t gid, struct txn **out)
{
	struct txn *tx, *old = NULL;
	struct blob *empty;
	int err = txn_check_name(name, len);

	*out = NULL;
	if (err)
		return err;
	if (name[0] == '.')
		return -EINVAL;
	tx = calloc(1, sizeof(*tx));
	if (!tx)
		return -ENOMEM;
	tx->name = strndup(name, len);
	empty = blob_new("", 0);
	if (!tx->name || !empty) {
		free(tx->name);
		free(tx);
		blob_unref(empty);
		return -ENOMEM;
	}
	pthread_mutex_init(&tx->lock, NULL);
	atomic_init(&tx->refs, 1);
	tx->uid = uid;
	tx->gid = gid;
	tx->state = TXN_OPEN;
	tx->timeout_ms = eng->opt.txn_timeout_ms;
	tx->begin_mono_ns = now_ns(CLOCK_MONOTONIC);
	if (note_set(tx, ".commit.pending", empty)) {
		txn_unref(tx);
		return -ENOMEM;
	}

	/* Tree lock first (rank 1): begin_ts must not move while the snapshot is pinned. */
	pthread_rwlock_rdlock(&eng->tree_lock);
	pthread_mutex_lock(&eng->table_lock);
	HASH_FIND(hh_name, eng->by_name, tx->name, len, old);
	if (old) {
		err = -EEXIST;
	} else if (eng->n_open >= eng->opt.max_open_txns) {
		err = -EAGAIN;
	} else {
		tx->id = ++eng->next_id;
		tx->begin_ts = eng->published_ts;
		tx->in_table = true;
		HASH_ADD_KEYPTR(hh_name, eng->by_name, tx->name, len, tx);
		HASH_ADD(hh_id, eng->by_id, id, sizeof(tx->id), tx);
		eng->n_open++;
		eng->n_begun++;
		txn_ref(tx); /* the table's reference */
	}
	pthread_mutex_unlock(&eng->table_lock);
	pthread_rwlock_unlock(&eng->tree_lock);
	if (err) {
		txn_unref(tx);
		return err;
	}
	pthread_mutex_lock(&eng->q_lock);
	pthread_cond_signal(&eng->reaper_cond);
	pthread_mutex_unlock(&eng->q_lock);
	log_debug("transaction '%s' begun by uid %" PRIu32 " at commit %" PRId64, tx->name, uid,
		  tx->begin_ts);
	*out = tx;
	return 0;
}

struct txn *txn_find(struct txn_engine *eng, const char *name, size_t len)
{
	struct txn *tx = NULL;

	pthread_mutex_lock(&eng->table_lock);
	HASH_FIND(hh_name, eng->by_name, name, len, tx);
	txn_ref(tx);
	pthread_mutex_unlock(&eng->table_lock);
	return tx;
}

struct txn *txn_find_id(struct txn_engine *eng, uint64_t id)
{
	struct txn *tx = NULL;

	pthread_mutex_lock(&eng->table_lock);
	HASH_FIND(hh_id, eng->by_id, &id, sizeof(id), tx);
	txn_ref(tx);
	pthread_mutex_unlock(&eng->table_lock);
	return tx;
}

/* Leave the pinning states; called with table_lock and tx->lock held. */
static void unpin_locked(struct txn_engine *eng, struct txn *tx, enum txn_state to)
{
	if (tx->state == TXN_OPEN || tx->state == TXN_COMMITTING)
		eng->n_open--;
	tx->state = to;
	if (to == TXN_COMMITTED)
		eng->n_committed++;
	else if (to == TXN_ABORTED)
		eng->n_aborted++;
	else if (to == TXN_EXPIRED)
		eng->n_expired++;
	else if (to == TXN_CONFLICT)
		eng->n_conflicted++;
}

int txn_remove(struct txn_engine *eng, const char *name, size_t len)
{
	struct txn *tx = NULL;
	int err = 0;

	pthread_mutex_lock(&eng->table_lock);
	HASH_FIND(hh_name, eng->by_name, name, len, tx);
	if (!tx) {
		pthread_mutex_unlock(&eng->table_lock);
		return -ENOENT;
	}
	pthread_mutex_lock(&tx->lock);
	if (tx->state == TXN_COMMITTING) {
		err = -EBUSY;
	} else {
		if (tx->state == TXN_OPEN)
			unpin_locked(eng, tx, TXN_ABORTED);
		staged_free_all(tx);
		HASH_DELETE(hh_name, eng->by_name, tx);
		HASH_DELETE(hh_id, eng->by_id, tx);
		tx->in_table = false;
	}
	pthread_mutex_unlock(&tx->lock);
	pthread_mutex_unlock(&eng->table_lock);
	if (!err)
		txn_unref(tx);
	return err;
}

int txn_list_names(struct txn_engine *eng, struct txn_dirent **out, size_t *n)
{
	struct dirents ds = { 0 };
	struct txn *tx, *tmp;
	int err = 0;

	pthread_mutex_lock(&eng->table_lock);
	HASH_ITER(hh_name, eng->by_name, tx, tmp) {
		err = dirents_add(&ds, tx->name, strlen(tx->name), TXN_DIR);
		if (err)
			break;
	}
	pthread_mutex_unlock(&eng->table_lock);
	if (err) {
		txn_dirents_free(ds.d, ds.n);
		return err;
	}
	dirents_finish(&ds);
	*out = ds.d;
	*n = ds.n;
	return 0;
}

/* ---- transactions: staging ------------------------------------------------------- */

static bool deadline_passed(struct txn *tx)
{
	return now_ns(CLOCK_MONOTONIC) - tx->begin_mono_ns > tx->timeout_ms * 1000000;
}

/* May tx take new staged operations?  Called with tx->lock held. */
static int stage_state_err(struct txn *tx)
{
	switch (tx->state) {
	case TXN_OPEN:
		return deadline_passed(tx) ? -ETIMEDOUT : 0;
	case TXN_COMMITTING:
		return -EBUSY;
	case TXN_COMMITTED:
		return -EROFS;
	case TXN_EXPIRED:
		return -ETIMEDOUT;
	case TXN_CONFLICT:
		return -ESTALE;
	case TXN_ABORTED:
	default:
		return -ENOENT;
	}
}

static int staged_set(struct txn *tx, const char *path, size_t len, enum staged_kind kind,
		      struct blob *value)
{
	struct staged *s = staged_find(tx, path, len);

	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s || !(s->path = strndup(path, len))) {
			free(s);
			blob_unref(value);
			return -ENOMEM;
		}
		s->len = len;
		HASH_ADD_KEYPTR(hh, tx->staged, s->path, s->len, s);
	} else {
		if (s->kind != ST_DIR)
			tx->n_ops--;
		if (s->kind == ST_DELETE)
			tx->n_deletes--;
		blob_unref(s->value);
	}
	s->kind = kind;
	s->value = value;
	if (kind != ST_DIR)
		tx->n_ops++;
	if (kind == ST_DELETE)
		tx->n_deletes++;
	return 0;
}

static void staged_drop(struct txn *tx, struct staged *s)
{
	if (s->kind != ST_DIR)
		tx->n_ops--;
	if (s->kind == ST_DELETE)
		tx->n_deletes--;
	HASH_DEL(tx->staged, s);
	blob_unref(s->value);
	free(s->path);
	free(s);
}

/* Every ancestor of path must be a directory (or nothing) in the view. */
static int view_check_ancestors(struct txn_engine *eng, struct txn *tx, const char *path,
				size_t len)
{
	struct txn_entry e;

	for (size_t i = 0; i < len; i++) {
		if (path[i] != '/')
			continue;
		if (view_resolve(eng, tx, path, i, &e, NULL) == 0 && e.type == TXN_FILE)
			return -ENOTDIR;
	}
	return 0;
}

/* Put without taking locks; tree (read) and tx->lock held. */
static int stage_put_locked(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
			    struct blob *value)
{
	struct txn_entry e;
	int err = view_check_ancestors(eng, tx, path, len);

	if (!err && view_resolve(eng, tx, path, len, &e, NULL) == 0 && e.type == TXN_DIR)
		err = -EISDIR;
	if (err) {
		blob_unref(value);
		return err;
	}
	/* Over a snapshot key or over nothing, a put either way: the version is assigned
	 * at commit. */
	return staged_set(tx, path, len, ST_PUT, value);
}

static int stage_delete_locked(struct txn_engine *eng, struct txn *tx, const char *path, size_t len)
{
	struct txn_entry e;
	struct staged *s;
	int err = view_resolve(eng, tx, path, len, &e, NULL);

	if (err)
		return err;
	if (e.type != TXN_FILE)
		return -EISDIR;
	s = staged_find(tx, path, len);
	if (s && !live_at(node_find(eng, path, len), tx->begin_ts)) {
		staged_drop(tx, s); /* the key exists only in this transaction */
		return 0;
	}
	return staged_set(tx, path, len, ST_DELETE, NULL);
}

#define STAGE_BEGIN(eng, tx)                                                      \
	do {                                                                      \
		pthread_rwlock_rdlock(&(eng)->tree_lock);                         \
		pthread_mutex_lock(&(tx)->lock);                                  \
	} while (0)
#define STAGE_END(eng, tx)                                                        \
	do {                                                                      \
		pthread_mutex_unlock(&(tx)->lock);                                \
		pthread_rwlock_unlock(&(eng)->tree_lock);                         \
	} while (0)

int txn_stage_put(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		  struct blob *value)
{
	int err = check_path(path, len);

	if (!err && txn_path_depth(path, len) < 3)
		err = -EINVAL;
	if (!err && value->len > eng->opt.max_value_bytes)
		err = -EFBIG;
	if (err) {
		blob_unref(value);
		return err;
	}
	STAGE_BEGIN(eng, tx);
	err = stage_state_err(tx);
	if (err)
		blob_unref(value);
	else
		err = stage_put_locked(eng, tx, path, len, value);
	STAGE_END(eng, tx);
	return err;
}

int txn_stage_delete(struct txn_engine *eng, struct txn *tx, const char *path, size_t len)
{
	int err = check_path(path, len);

	if (err)
		return err;
	STAGE_BEGIN(eng, tx);
	err = stage_state_err(tx);
	if (!err)
		err = stage_delete_locked(eng, tx, path, len);
	STAGE_END(eng, tx);
	return err;
}

/* Collect the paths of every file below dir in tx's view (tree read lock + tx->lock). */
static int view_files_below(struct txn_engine *eng, struct txn *tx, const char *dir, size_t dlen,
			    struct dirents *out)
{
	struct txn_entry e;
	struct dirents ds = { 0 };
	struct node *dn = node_find(eng, dir, dlen);
	int err = 0;

	/* Candidates: snapshot nodes below dir and staged puts below dir. */
	if (dn) {
		struct node **stack = NULL;
		size_t sp = 0, scap = 0;
		struct node *c, *tmp;

		HASH_ITER(hh, dn->children, c, tmp) {
			if (sp == scap) {
				scap = scap ? scap * 2 : 64;
				struct node **ns = realloc(stack, scap * sizeof(*ns));

				if (!ns) {
					free(stack);
					return -ENOMEM;
				}
				stack = ns;
			}
			stack[sp++] = c;
		}
		while (sp && !err) {
			struct node *x = stack[--sp];
			size_t plen;
			char *p = node_path(x, &plen);

			if (!p) {
				err = -ENOMEM;
				break;
			}
			if (view_resolve(eng, tx, p, plen, &e, NULL) == 0 && e.type == TXN_FILE)
				err = dirents_add(&ds, p, plen, TXN_FILE);
			free(p);
			HASH_ITER(hh, x->children, c, tmp) {
				if (sp == scap) {
					scap *= 2;
					struct node **ns = realloc(stack, scap * sizeof(*ns));

					if (!ns) {
						err = -ENOMEM;
						break;
					}
					stack = ns;
				}
				stack[sp++] = c;
			}
		}
		free(stack);
	}
	{
		struct staged *s, *tmp;

		HASH_ITER(hh, tx->staged, s, tmp) {
			if (!err && s->kind == ST_PUT && path_is_under(s->path, s->len, dir, dlen))
				err = dirents_add(&ds, s->path, s->len, TXN_FILE);
		}
	}
	if (err) {
		txn_dirents_free(ds.d, ds.n);
		return err;
	}
	dirents_finish(&ds);
	*out = ds;
	return 0;
}

int txn_stage_rename(struct txn_engine *eng, struct txn *tx, const char *src, size_t slen,
		     const char *dst, size_t dlen, bool noreplace)
{
	struct txn_entry se, de;
	struct blob *val = NULL;
	int err = check_path(src, slen);
	int derr;

	if (!err)
		err = check_path(dst, dlen);
	if (err)
		return err;
	STAGE_BEGIN(eng, tx);
	err = stage_state_err(tx);
	if (err)
		goto out;
	err = view_resolve(eng, tx, src, slen, &se, &val);
	if (err)
		goto out;
	derr = view_resolve(eng, tx, dst, dlen, &de, NULL);
	if (slen == dlen && memcmp(src, dst, slen) == 0)
		goto out; /* rename onto itself */
	if (derr == 0 && noreplace) {
		err = -EEXIST;
		goto out;
	}
	if (se.type == TXN_FILE) {
		if (txn_path_depth(dst, dlen) < 3) {
			err = -EINVAL;
			goto out;
		}
		if (derr == 0 && de.type == TXN_DIR) {
			err = -EISDIR;
			goto out;
		}
		err = view_check_ancestors(eng, tx, dst, dlen);
		if (!err)
			err = stage_delete_locked(eng, tx, src, slen);
		if (!err) {
			err = stage_put_locked(eng, tx, dst, dlen, val);
			val = NULL;
		}
		goto out;
	}
	/* A directory: move every file below it. */
	if (path_is_under(dst, dlen, src, slen)) {
		err = -EINVAL;
		goto out;
	}
	if (derr == 0 && de.type == TXN_FILE) {
		err = -ENOTDIR;
		goto out;
	}
	{
		struct dirents files, dfiles;

		if (derr == 0) {
			err = view_files_below(eng, tx, dst, dlen, &dfiles);
			if (err)
				goto out;
			txn_dirents_free(dfiles.d, dfiles.n);
			if (dfiles.n) {
				err = -ENOTEMPTY;
				goto out;
			}
		}
		err = view_files_below(eng, tx, src, slen, &files);
		if (err)
			goto out;
		for (size_t i = 0; i < files.n && !err; i++) {
			const char *fp = files.d[i].name;
			size_t fl = strlen(fp), nl;
			char *np = path_join(dst, dlen, fp + slen + 1, fl - slen - 1, &nl);
			struct blob *fv = NULL;
			struct txn_entry fe;

			if (!np) {
				err = -ENOMEM;
				break;
			}
			if (txn_path_depth(np, nl) < 3 || nl - (dlen) > TXN_KEY_MAX + 2 * TXN_NAME_MAX)
				err = -EINVAL;
			if (!err)
				err = view_resolve(eng, tx, fp, fl, &fe, &fv);
			if (!err)
				err = stage_delete_locked(eng, tx, fp, fl);
			if (!err)
				err = stage_put_locked(eng, tx, np, nl, fv);
			else
				blob_unref(fv);
			free(np);
		}
		txn_dirents_free(files.d, files.n);
		/* Staged directory markers move along. */
		if (!err) {
			struct staged *s, *tmp;

			HASH_ITER(hh, tx->staged, s, tmp) {
				if (s->kind == ST_DIR && (path_is_under(s->path, s->len, src, slen) ||
							  (s->len == slen && !memcmp(s->path, src, slen)))) {
					size_t nl;
					char *np = path_join(dst, dlen, s->path + slen + (s->len > slen),
							     s->len - slen - (s->len > slen), &nl);

					if (np) {
						staged_set(tx, np, nl, ST_DIR, NULL);
						free(np);
					}
					staged_drop(tx, s);
				}
			}
		}
	}
out:
	STAGE_END(eng, tx);
	blob_unref(val);
	return err;
}

int txn_stage_mkdir(struct txn_engine *eng, struct txn *tx, const char *path, size_t len)
{
	struct txn_entry e;
	int err = check_path(path, len);

	if (err)
		return err;
	STAGE_BEGIN(eng, tx);
	err = stage_state_err(tx);
	if (!err && view_resolve(eng, tx, path, len, &e, NULL) == 0)
		err = -EEXIST;
	if (!err)
		err = view_check_ancestors(eng, tx, path, len);
	if (!err)
		err = staged_set(tx, path, len, ST_DIR, NULL);
	STAGE_END(eng, tx);
	return err;
}

int txn_stage_rmdir(struct txn_engine *eng, struct txn *tx, const char *path, size_t len)
{
	struct txn_entry e;
	struct dirents files;
	int err = check_path(path, len);

	if (err)
		return err;
	STAGE_BEGIN(eng, tx);
	err = stage_state_err(tx);
	if (!err) {
		err = view_resolve(eng, tx, path, len, &e, NULL);
		if (err == -ENOENT) {
			/* It vanished with its last key (rm -r removes keys first). */
			STAGE_END(eng, tx);
			return 0;
		}
	}
	if (!err && e.type != TXN_DIR)
		err = -ENOTDIR;
	if (!err)
		err = view_files_below(eng, tx, path, len, &files);
	if (!err) {
		size_t nfiles = files.n;

		txn_dirents_free(files.d, files.n);
		if (nfiles) {
			err = -ENOTEMPTY;
		} else {
			struct staged *s, *tmp;

			HASH_ITER(hh, tx->staged, s, tmp) {
				if (s->kind == ST_DIR && path_is_under(s->path, s->len, path, len)) {
					err = -ENOTEMPTY;
					break;
				}
			}
			if (!err) {
				s = staged_find(tx, path, len);
				if (s && s->kind == ST_DIR)
					staged_drop(tx, s);
			}
		}
	}
	STAGE_END(eng, tx);
	return err;
}

int txn_writable(struct txn *tx)
{
	int err;

	pthread_mutex_lock(&tx->lock);
	err = stage_state_err(tx);
	pthread_mutex_unlock(&tx->lock);
	return err;
}

int txn_set_timeout(struct txn_engine *eng, struct txn *tx, int64_t timeout_ms)
{
	int err;

	if (timeout_ms < 1 || timeout_ms > 86400000)
		return -EINVAL;
	pthread_mutex_lock(&tx->lock);
	err = stage_state_err(tx);
	if (!err && tx->n_ops > 0)
		err = -EBUSY;
	if (!err)
		tx->timeout_ms = timeout_ms;
	pthread_mutex_unlock(&tx->lock);
	if (!err) {
		pthread_mutex_lock(&eng->q_lock);
		pthread_cond_signal(&eng->reaper_cond);
		pthread_mutex_unlock(&eng->q_lock);
	}
	return err;
}

/* ---- notes ------------------------------------------------------------------------ */

int txn_note_put(struct txn *tx, const char *name, struct blob *content)
{
	int err;

	pthread_mutex_lock(&tx->lock);
	err = stage_state_err(tx);
	if (!err)
		err = note_set(tx, name, content);
	else
		blob_unref(content);
	pthread_mutex_unlock(&tx->lock);
	return err;
}

int txn_note_get(struct txn *tx, const char *name, struct blob **out)
{
	struct note *nt = NULL;

	pthread_mutex_lock(&tx->lock);
	HASH_FIND_STR(tx->notes, name, nt);
	*out = nt ? blob_ref(nt->content) : NULL;
	pthread_mutex_unlock(&tx->lock);
	return nt ? 0 : -ENOENT;
}

int txn_note_remove(struct txn *tx, const char *name)
{
	struct note *nt = NULL;
	int err;

	pthread_mutex_lock(&tx->lock);
	err = stage_state_err(tx);
	if (!err) {
		HASH_FIND_STR(tx->notes, name, nt);
		if (!nt) {
			err = -ENOENT;
		} else {
			HASH_DEL(tx->notes, nt);
			blob_unref(nt->content);
			free(nt->name);
			free(nt);
		}
	}
	pthread_mutex_unlock(&tx->lock);
	return err;
}

int txn_note_rename(struct txn *tx, const char *from, const char *to)
{
	struct note *nt = NULL, *old = NULL;
	char *nn;
	int err;

	pthread_mutex_lock(&tx->lock);
	err = stage_state_err(tx);
	if (err)
		goto out;
	HASH_FIND_STR(tx->notes, from, nt);
	if (!nt) {
		err = -ENOENT;
		goto out;
	}
	if (strcmp(from, to) == 0)
		goto out;
	nn = strdup(to);
	if (!nn) {
		err = -ENOMEM;
		goto out;
	}
	HASH_FIND_STR(tx->notes, to, old);
	if (old) {
		HASH_DEL(tx->notes, old);
		blob_unref(old->content);
		free(old->name);
		free(old);
	}
	HASH_DEL(tx->notes, nt);
	free(nt->name);
	nt->name = nn;
	HASH_ADD_KEYPTR(hh, tx->notes, nt->name, strlen(nt->name), nt);
out:
	pthread_mutex_unlock(&tx->lock);
	return err;
}

int txn_note_list(struct txn *tx, struct txn_dirent **out, size_t *n)
{
	struct dirents ds = { 0 };
	struct note *nt, *tmp;
	int err = 0;

	pthread_mutex_lock(&tx->lock);
	HASH_ITER(hh, tx->notes, nt, tmp) {
		err = dirents_add(&ds, nt->name, strlen(nt->name), TXN_FILE);
		if (err)
			break;
	}
	pthread_mutex_unlock(&tx->lock);
	if (err) {
		txn_dirents_free(ds.d, ds.n);
		return err;
	}
	dirents_finish(&ds);
	*out = ds.d;
	*n = ds.n;
	return 0;
}

/* ---- JSON ---------------------------------------------------------------------------- */

static const char *state_name(enum txn_state s)
{
	static const char *const names[] = { "open", "committing", "committed",
					     "aborted", "expired", "conflict" };
	return names[s];
}

static const char *errno_name(int err)
{
	switch (-err) {
	case ESTALE: return "ESTALE";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case ENOSPC: return "ENOSPC";
	case EIO: return "EIO";
	case ENOENT: return "ENOENT";
	case ENOMEM: return "ENOMEM";
	case EAGAIN: return "EAGAIN";
	case EFBIG: return "EFBIG";
	case EINVAL: return "EINVAL";
	default: return "EIO";
	}
}

static void json_set_str(json_t *o, const char *k, const char *v)
{
	json_t *s = json_string(v);

	if (!s) /* not UTF-8: keep the bytes readable rather than drop the field */
		s = json_string_nocheck(v);
	json_object_set_new(o, k, s);
}

static char *json_dump_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *line = NULL;

	json_decref(o);
	if (s && asprintf(&line, "%s\n", s) < 0)
		line = NULL;
	free(s);
	return line;
}

static void rfc3339(int64_t ns, char *buf, size_t cap)
{
	time_t secs = (time_t)(ns / 1000000000);
	struct tm tm;
	size_t n;

	gmtime_r(&secs, &tm);
	n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, cap - n, ".%06ldZ", (long)((ns / 1000) % 1000000));
}

char *txn_status_json(struct txn_engine *eng, struct txn *tx)
{
	json_t *o = json_object();

	(void)eng;
	if (!o)
		return NULL;
	pthread_mutex_lock(&tx->lock);
	if (tx->state == TXN_OPEN && deadline_passed(tx)) {
		/* The reaper has not run yet; report what a write would find. */
		json_set_str(o, "state", "expired");
	} else {
		json_set_str(o, "state", state_name(tx->state));
	}
	json_set_str(o, "txn", tx->name);
	json_object_set_new(o, "ops", json_integer((json_int_t)(tx->state == TXN_COMMITTED
							       ? tx->committed_ops : tx->n_ops)));
	json_object_set_new(o, "begin_ts", json_integer(tx->begin_ts));
	if (tx->state == TXN_OPEN || tx->state == TXN_COMMITTING) {
		int64_t left = tx->timeout_ms -
			       (now_ns(CLOCK_MONOTONIC) - tx->begin_mono_ns) / 1000000;
		json_object_set_new(o, "expires_in_ms", json_integer(left > 0 ? left : 0));
	}
	json_object_set_new(o, "timeout_ms", json_integer(tx->timeout_ms));
	if (tx->state == TXN_COMMITTED)
		json_object_set_new(o, "commit_ts", json_integer(tx->commit_ts));
	if (tx->err) {
		json_set_str(o, "error", errno_name(tx->err));
		json_set_str(o, "message", strerror(-tx->err));
		if (tx->err_key)
			json_set_str(o, "key", tx->err_key);
	}
	pthread_mutex_unlock(&tx->lock);
	return json_dump_line(o);
}

char *txn_commit_json(struct txn *tx)
{
	char when[64];
	json_t *o;

	pthread_mutex_lock(&tx->lock);
	if (tx->state != TXN_COMMITTED) {
		pthread_mutex_unlock(&tx->lock);
		return NULL;
	}
	o = json_object();
	if (o) {
		json_object_set_new(o, "commit_ts", json_integer(tx->commit_ts));
		json_set_str(o, "txn", tx->name);
		json_object_set_new(o, "ops", json_integer((json_int_t)tx->committed_ops));
		rfc3339(tx->commit_time_ns, when, sizeof(when));
		json_set_str(o, "time", when);
	}
	pthread_mutex_unlock(&tx->lock);
	return o ? json_dump_line(o) : NULL;
}

/* ---- the committer ------------------------------------------------------------------ */

struct applied {
	struct node *node;
	struct version *v;
};

struct attr_change {
	struct node *node;
	struct dattr *attr; /* owned; NULL clears */
	struct blob *val;   /* the log's form; the batch's store_op points into it */
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
	uint64_t n_put, n_del; /* ops of the requests that applied */
};

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 32;
	void *np = realloc(*p, nc * size);

	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = nc;
	return 0;
}

/* Take back the newest version of a node (a failed request or batch). */
static void undo_one(struct applied *ap)
{
	struct node *n = ap->node;
	struct version *v = n->versions;
	bool was_live, now_live;

	if (v != ap->v)
		BUG("undo out of order");
	now_live = v->value != NULL;
	n->versions = v->older;
	was_live = head_live(n);
	if (was_live != now_live)
		adjust_desc(n, true, was_live ? 1 : -1);
	blob_unref(v->value);
	free(v);
}

static void undo_to(struct batch *b, size_t mark)
{
	while (b->na > mark)
		undo_one(&b->a[--b->na]);
}

/*
 * Append one unpublished version at the head; value NULL deletes.  Checks the shape
 * rules at the head (a key may not be a prefix of another live key).
 */
static int apply_op(struct txn_engine *eng, struct batch *b, const char *path, size_t len,
		    struct blob *value, int64_t ts, int64_t time_ns, int64_t *version_out)
{
	struct node *n;
	struct version *v;
	bool was_live;

	if (grow((void **)&b->a, &b->cap_a, b->na, sizeof(*b->a)))
		return -ENOMEM;
	if (value) {
		for (size_t i = 0; i < len; i++) {
			if (path[i] == '/' && head_live(node_find(eng, path, i)))
				return -ENOTDIR;
		}
	}
	n = value ? node_find_or_create(eng, path, len) : node_find(eng, path, len);
	if (!n)
		return value ? -ENOMEM : -ENOENT;
	if (value && n->head_desc > 0)
		return -EISDIR;
	was_live = head_live(n);
	if (!value && !was_live)
		return -ENOENT;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->commit_ts = ts;
	v->time_ns = time_ns;
	v->version = (n->versions ? n->versions->version : 0) + 1;
	v->value = blob_ref(value);
	v->older = n->versions;
	n->versions = v;
	if (was_live != (value != NULL))
		adjust_desc(n, true, value ? 1 : -1);
	b->a[b->na].node = n;
	b->a[b->na].v = v;
	b->na++;
	*version_out = v->version;
	return 0;
}

/* Record an op of the event being built (ops array grows with the event). */
struct ev_build {
	struct store_op *ops;
	size_t n, cap;
};

static int ev_add_kind(struct batch *b, struct ev_build *eb, const char *path, size_t len,
		       enum store_op_kind kind, struct blob *value, int64_t version);

static int ev_add(struct batch *b, struct ev_build *eb, const char *path, size_t len,
		  struct blob *value, int64_t version)
{
	return ev_add_kind(b, eb, path, len, value ? STORE_PUT : STORE_DELETE, value, version);
}

static int ev_add_kind(struct batch *b, struct ev_build *eb, const char *path, size_t len,
		       enum store_op_kind kind, struct blob *value, int64_t version)
{
	char *p;

	if (grow((void **)&eb->ops, &eb->cap, eb->n, sizeof(*eb->ops)) ||
	    grow((void **)&b->paths, &b->cap_p, b->np, sizeof(*b->paths)))
		return -ENOMEM;
	p = strndup(path, len);
	if (!p)
		return -ENOMEM;
	b->paths[b->np++] = p;
	if (kind == STORE_PUT)
		b->n_put++;
	else if (kind == STORE_DELETE)
		b->n_del++;
	eb->ops[eb->n] = (struct store_op){
		.path = p,
		.path_len = len,
		.kind = kind,
		.version = version,
		.value = value ? value->data : NULL,
		.value_len = value ? value->len : 0,
	};
	eb->n++;
	return 0;
}

static int staged_cmp(const void *a, const void *b)
{
	const struct staged *x = *(struct staged *const *)a, *y = *(struct staged *const *)b;

	/* Deletes first, so "delete a; put a/b" applies in the right order. */
	if (x->kind != y->kind)
		return x->kind == ST_DELETE ? -1 : 1;
	if (x->len != y->len) {
		int c = memcmp(x->path, y->path, x->len < y->len ? x->len : y->len);

		return c ? c : (x->len < y->len ? -1 : 1);
	}
	return memcmp(x->path, y->path, x->len);
}

static void tx_fail_locked(struct txn *tx, int err, const char *key, size_t klen)
{
	tx->err = err;
	free(tx->err_key);
	tx->err_key = key ? strndup(key, klen) : NULL;
}

/* Validate and apply a transaction's staged ops at the head.  Tree write lock held. */
static int apply_txn(struct txn_engine *eng, struct batch *b, struct txn_commit_req *req,
		     int64_t ts, int64_t time_ns, struct ev_build *eb)
{
	struct txn *tx = req->tx;
	struct staged **ops = NULL, *s, *tmp;
	size_t n = 0;
	int err = 0;

	pthread_mutex_lock(&tx->lock);
	if (tx->state != TXN_COMMITTING)
		BUG("transaction '%s' queued in state %d", tx->name, tx->state);
	if (deadline_passed(tx)) {
		err = -ETIMEDOUT;
		tx_fail_locked(tx, err, NULL, 0);
		goto unlock;
	}
	ops = malloc((HASH_COUNT(tx->staged) + 1) * sizeof(*ops));
	if (!ops) {
		err = -ENOMEM;
		goto unlock;
	}
	HASH_ITER(hh, tx->staged, s, tmp) {
		if (s->kind != ST_DIR)
			ops[n++] = s;
	}
	qsort(ops, n, sizeof(*ops), staged_cmp);
	/* First committer wins: any key written since our snapshot is a conflict. */
	for (size_t i = 0; i < n; i++) {
		struct node *nd = node_find(eng, ops[i]->path, ops[i]->len);

		if (nd && nd->versions && nd->versions->commit_ts > tx->begin_ts) {
			err = -ESTALE;
			tx_fail_locked(tx, err, ops[i]->path, ops[i]->len);
			goto unlock;
		}
	}
	for (size_t i = 0; i < n; i++) {
		int64_t version;

		err = apply_op(eng, b, ops[i]->path, ops[i]->len, ops[i]->value, ts, time_ns,
			       &version);
		if (!err)
			err = ev_add(b, eb, ops[i]->path, ops[i]->len, ops[i]->value, version);
		if (err) {
			/* A key that vanished under a delete raced with another commit. */
			if (err == -ENOENT)
				err = -ESTALE;
			tx_fail_locked(tx, err, ops[i]->path, ops[i]->len);
			goto unlock;
		}
	}
unlock:
	pthread_mutex_unlock(&tx->lock);
	free(ops);
	return err;
}

/* Every head-live key at or below node n, as paths. */
static int collect_head_keys(struct node *n, struct dirents *out)
{
	struct node *c, *tmp;
	int err = 0;

	if (head_live(n)) {
		size_t len;
		char *p = node_path(n, &len);

		if (!p)
			return -ENOMEM;
		err = dirents_add(out, p, len, TXN_FILE);
		free(p);
		if (err)
			return err;
	}
	if (n->head_desc == 0)
		return 0;
	HASH_ITER(hh, n->children, c, tmp) {
		err = collect_head_keys(c, out);
		if (err)
			return err;
	}
	return 0;
}

/* Record path's owner record as a (NULL: cleared), in the log and, when the batch
 * publishes, in the tree. */
static int attr_record(struct txn_engine *eng, struct batch *b, struct ev_build *eb,
		       const char *path, size_t len, const struct txn_attr *ta)
{
	struct blob *val = NULL;
	struct dattr *a = NULL;
	struct node *n;
	int err;

	if (grow((void **)&b->ac, &b->cap_ac, b->nac, sizeof(*b->ac)))
		return -ENOMEM;
	n = node_find_or_create(eng, path, len);
	if (!n)
		return -ENOMEM;
	if (ta) {
		a = malloc(sizeof(*a));
		val = attr_encode(ta);
		if (!a || !val) {
			free(a);
			blob_unref(val);
			return -ENOMEM;
		}
		*a = (struct dattr){ ta->uid, ta->gid, ta->mode & 07777 };
	} else if (!(val = blob_new("", 0))) {
		return -ENOMEM;
	}
	err = ev_add_kind(b, eb, path, len, STORE_ATTR, val, 0);
	if (err) {
		free(a);
		blob_unref(val);
		return err;
	}
	b->ac[b->nac++] = (struct attr_change){ n, a, val };
	return 0;
}

/* Record a change of owner or mode; it takes effect when the batch publishes. */
static int apply_attr(struct txn_engine *eng, struct batch *b, struct txn_commit_req *req,
		      struct ev_build *eb)
{
	size_t len = strlen(req->path);
	int depth = txn_path_depth(req->path, len);
	int err = check_path(req->path, len);

	if (!err && (depth < 1 || depth > 2))
		err = -EINVAL;
	if (err)
		return err;
	return attr_record(eng, b, eb, req->path, len, req->attr.own ? &req->attr : NULL);
}

/*
 * A renamed namespace or agent takes its owner records along (its own and, for a
 * namespace, its agents'), so its keys keep their owner and mode under the new name;
 * a directory renamed to another depth leaves them behind, cleared.
 */
static int move_attrs(struct txn_engine *eng, struct batch *b, struct ev_build *eb,
		      struct node *src, const char *sp, size_t sl, const char *dp, size_t dl)
{
	int sdepth = txn_path_depth(sp, sl), same = sdepth == txn_path_depth(dp, dl);
	struct node *dst = node_find(eng, dp, dl), *c, *tmp;
	int err = 0;

	if (sdepth > 2)
		return 0;
	if (src->attr) {
		struct txn_attr a = { src->attr->uid, src->attr->gid, src->attr->mode, true };

		err = attr_record(eng, b, eb, sp, sl, NULL);
		if (!err && same)
			err = attr_record(eng, b, eb, dp, dl, &a);
	} else if (dst && dst->attr && same) {
		err = attr_record(eng, b, eb, dp, dl, NULL);
	}
	if (sdepth != 1)
		return err;
	HASH_ITER(hh, src->children, c, tmp) {
		struct txn_attr a;
		size_t cl, nl;
		char *cp, *np;

		if (err)
			break;
		if (!c->attr)
			continue;
		a = (struct txn_attr){ c->attr->uid, c->attr->gid, c->attr->mode, true };
		cp = path_join(sp, sl, c->name, c->name_len, &cl);
		np = path_join(dp, dl, c->name, c->name_len, &nl);
		if (!cp || !np)
			err = -ENOMEM;
		if (!err)
			err = attr_record(eng, b, eb, cp, cl, NULL);
		if (!err && same)
			err = attr_record(eng, b, eb, np, nl, &a);
		free(cp);
		free(np);
	}
	return err;
}

static int apply_auto(struct txn_engine *eng, struct batch *b, struct txn_commit_req *req,
		      int64_t ts, int64_t time_ns, struct ev_build *eb)
{
	size_t len = strlen(req->path);
	int64_t version;
	int err;

	if (req->kind == TXN_AUTO_PUT) {
		err = apply_op(eng, b, req->path, len, req->value, ts, time_ns, &version);
		return err ? err : ev_add(b, eb, req->path, len, req->value, version);
	}
	if (req->kind == TXN_AUTO_DELETE) {
		err = apply_op(eng, b, req->path, len, NULL, ts, time_ns, &version);
		return err ? err : ev_add(b, eb, req->path, len, NULL, version);
	}
	if (req->kind == TXN_AUTO_ATTR)
		return apply_attr(eng, b, req, eb);

	/* Rename: a key, or every key below a directory, in one transaction. */
	size_t dlen = strlen(req->path2);
	struct node *src = node_find(eng, req->path, len);
	struct node *dst = node_find(eng, req->path2, dlen);
	struct dirents keys = { 0 };

	if (!src)
		return -ENOENT;
	if (len == dlen && memcmp(req->path, req->path2, len) == 0)
		return 0;
	if (req->noreplace && dst && (head_live(dst) || dst->head_desc > 0 || dst->explicit_dir))
		return -EEXIST;
	if (head_live(src)) {
		struct blob *val = src->versions->value;

		if (txn_path_depth(req->path2, dlen) < 3)
			return -EINVAL;
		if (dst && dst->head_desc > 0)
			return -EISDIR;
		blob_ref(val);
		err = apply_op(eng, b, req->path, len, NULL, ts, time_ns, &version);
		if (!err)
			err = ev_add(b, eb, req->path, len, NULL, version);
		if (!err)
			err = apply_op(eng, b, req->path2, dlen, val, ts, time_ns, &version);
		if (!err)
			err = ev_add(b, eb, req->path2, dlen, val, version);
		blob_unref(val);
		return err;
	}
	if (src->head_desc == 0 && !src->explicit_dir && !src->attr && !has_explicit_child(src))
		return -ENOENT;
	if (path_is_under(req->path2, dlen, req->path, len))
		return -EINVAL;
	if (dst && head_live(dst))
		return -ENOTDIR;
	if (dst && (dst->head_desc > 0 || has_explicit_child(dst)))
		return -ENOTEMPTY;
	err = collect_head_keys(src, &keys);
	for (size_t i = 0; i < keys.n && !err; i++) {
		const char *kp = keys.d[i].name;
		size_t kl = strlen(kp), nl;
		char *np = path_join(req->path2, dlen, kp + len + 1, kl - len - 1, &nl);
		struct node *kn = node_find(eng, kp, kl);
		struct blob *val;

		if (!np) {
			err = -ENOMEM;
			break;
		}
		err = check_path(np, nl);
		if (!err && txn_path_depth(np, nl) < 3)
			err = -EINVAL;
		val = blob_ref(kn->versions->value);
		if (!err)
			err = apply_op(eng, b, kp, kl, NULL, ts, time_ns, &version);
		if (!err)
			err = ev_add(b, eb, kp, kl, NULL, version);
		if (!err)
			err = apply_op(eng, b, np, nl, val, ts, time_ns, &version);
		if (!err)
			err = ev_add(b, eb, np, nl, val, version);
		blob_unref(val);
		free(np);
	}
	txn_dirents_free(keys.d, keys.n);
	if (!err)
		err = move_attrs(eng, b, eb, src, req->path, len, req->path2, dlen);
	if (!err && src->explicit_dir) {
		struct node *d = node_find_or_create(eng, req->path2, dlen);

		if (d)
			d->explicit_dir = true;
		src->explicit_dir = false;
	}
	return err;
}

static void publish_batch(struct txn_engine *eng, struct batch *b, int64_t keep_ts)
{
	for (size_t i = 0; i < b->na; i++) {
		struct applied *ap = &b->a[i];
		bool was = ap->v->older && ap->v->older->value;
		bool now = ap->v->value != NULL;

		if (was != now)
			adjust_desc(ap->node, false, now ? 1 : -1);
	}
	eng->published_ts = eng->head_ts;
	for (size_t i = 0; i < b->na; i++)
		node_prune(b->a[i].node, keep_ts);
	for (size_t i = 0; i < b->nac; i++) {
		free(b->ac[i].node->attr);
		b->ac[i].node->attr = b->ac[i].attr;
		b->ac[i].attr = NULL;
	}
}

/* Drop attribute changes from index mark on (a failed request or batch). */
static void attr_changes_drop(struct batch *b, size_t mark)
{
	while (b->nac > mark) {
		b->nac--;
		free(b->ac[b->nac].attr);
		blob_unref(b->ac[b->nac].val);
	}
}

/* Oldest snapshot still pinned (open or committing transactions).  table_lock held. */
static int64_t pinned_min_locked(struct txn_engine *eng, int64_t upto)
{
	struct txn *tx, *tmp;
	int64_t m = upto;

	HASH_ITER(hh_name, eng->by_name, tx, tmp) {
		if ((tx->state == TXN_OPEN || tx->state == TXN_COMMITTING) && tx->begin_ts < m)
			m = tx->begin_ts;
	}
	return m;
}

static void complete(struct txn_engine *eng, struct txn_commit_req *list, struct batch *b)
{
	struct txn_changes *ch = calloc(1, sizeof(*ch));
	struct txn_commit_req *late = NULL, **late_tail = &late;

	int64_t now = now_ns(CLOCK_MONOTONIC);

	pthread_mutex_lock(&eng->lat_lock);
	for (struct txn_commit_req *r = list; r; r = r->next) {
		double s = (double)(now - r->queued_ns) / 1e9;
		int i = 0;

		while (i < TXN_LAT_BUCKETS - 1 && s > txn_latency_bounds_s[i])
			i++;
		for (; i < TXN_LAT_BUCKETS; i++)
			eng->lat_bucket[i]++;
		eng->lat_count++;
		eng->lat_sum_s += s;
		if (r->commit_ts < 0)
			eng->n_failed++;
		else if (!r->tx)
			eng->n_auto++;
	}
	pthread_mutex_unlock(&eng->lat_lock);
	for (struct txn_commit_req *r = list, *next; r; r = next) {
		int err = r->commit_ts < 0 ? (int)r->commit_ts : 0;

		next = r->next;
		r->next = NULL;
		if (err)
			r->commit_ts = 0;
		if (err || !r->late || !ch) {
			r->done(r, err);
		} else {
			*late_tail = r;
			late_tail = &r->next;
		}
	}
	if (!ch) {
		for (size_t i = 0; i < b->np; i++)
			free(b->paths[i]);
		return;
	}
	ch->paths = b->paths;
	ch->n = b->np;
	ch->late = late;
	b->paths = NULL;
	b->np = 0;
	if (eng->notify) {
		eng->notify(eng->notify_arg, ch);
	} else {
		for (struct txn_commit_req *r = ch->late, *next; r; r = next) {
			next = r->next;
			r->next = NULL;
			r->done(r, 0);
		}
		ch->late = NULL;
		txn_changes_free(ch);
	}
}

/*
 * One group commit.  Results travel in req->commit_ts: the commit_ts on success, a
 * negative errno on failure (complete() turns it back before done() runs).
 */
static void run_batch(struct txn_engine *eng, struct txn_commit_req *list)
{
	struct batch b = { 0 };
	int64_t time_ns = now_ns(CLOCK_REALTIME);
	struct txn_commit_req *r;
	int serr = 0;

	pthread_rwlock_wrlock(&eng->tree_lock);
	for (r = list; r; r = r->next) {
		struct ev_build eb = { 0 };
		size_t mark = b.na, pmark = b.np, amark = b.nac;
		uint64_t put_mark = b.n_put, del_mark = b.n_del;
		int64_t ts = eng->head_ts + 1;
		int err = grow((void **)&b.ev, &b.cap_ev, b.nev, sizeof(*b.ev));

		if (!err)
			err = r->rejected;
		if (!err)
			err = r->tx ? apply_txn(eng, &b, r, ts, time_ns, &eb)
				    : apply_auto(eng, &b, r, ts, time_ns, &eb);
		if (err) {
			undo_to(&b, mark);
			attr_changes_drop(&b, amark);
			while (b.np > pmark)
				free(b.paths[--b.np]);
			b.n_put = put_mark;
			b.n_del = del_mark;
			free(eb.ops);
			r->commit_ts = err;
			continue;
		}
		if (!r->tx && eb.n == 0) {
			r->commit_ts = 0; /* nothing to commit (e.g. rename onto itself) */
			free(eb.ops);
			continue;
		}
		eng->head_ts = ts;
		r->commit_ts = ts;
		b.ev[b.nev++] = (struct store_event){
			.commit_ts = ts,
			.time_ns = time_ns,
			.txn = r->tx ? r->tx->name : AUTO_TXN_NAME,
			.note = r->note ? r->note->data : NULL,
			.note_len = r->note ? r->note->len : 0,
			.ops = eb.ops,
			.n_ops = eb.n,
		};
	}
	pthread_rwlock_unlock(&eng->tree_lock);

	if (b.nev) {
		int64_t t0 = now_ns(CLOCK_MONOTONIC);

		serr = store_append(eng->store, b.ev, b.nev);
		if (serr)
			log_debug("commit batch of %zu failed: %s", b.nev, strerror(-serr));
		else
			log_debug("commit batch: %zu commits (commit_ts %" PRId64 "..%" PRId64
				  "), %zu changes, stored in %" PRId64 " us",
				  b.nev, b.ev[0].commit_ts, b.ev[b.nev - 1].commit_ts, b.np,
				  (now_ns(CLOCK_MONOTONIC) - t0) / 1000);
	}

	/* Point of no return: the batch is durable (serr == 0) or nothing of it is. */
	pthread_rwlock_wrlock(&eng->tree_lock);
	pthread_mutex_lock(&eng->table_lock);
	if (serr) {
		undo_to(&b, 0);
		eng->head_ts = eng->published_ts;
		for (size_t i = 0; i < b.np; i++)
			free(b.paths[i]);
		b.np = 0;
	} else {
		publish_batch(eng, &b, pinned_min_locked(eng, eng->head_ts));
		eng->n_written += b.n_put;
		eng->n_deleted += b.n_del;
	}
	for (r = list; r; r = r->next) {
		struct txn *tx = r->tx;

		if (serr && r->commit_ts > 0)
			r->commit_ts = serr;
		if (!tx)
			continue;
		pthread_mutex_lock(&tx->lock);
		if (r->commit_ts < 0 && r->note && r->path) {
			/* The note file comes back under its name: a failed commit changes
			 * nothing, and the VFS retries an ESTALE rename once by path. */
			note_set(tx, r->path, r->note);
			r->note = NULL;
		}
		if (r->commit_ts > 0) {
			tx->commit_ts = r->commit_ts;
			tx->commit_time_ns = time_ns;
			tx->committed_ops = tx->n_ops;
			tx->err = 0;
			unpin_locked(eng, tx, TXN_COMMITTED);
			staged_free_all(tx);
		} else if (r->commit_ts == -ETIMEDOUT) {
			unpin_locked(eng, tx, TXN_EXPIRED);
			staged_free_all(tx);
		} else if (r->commit_ts == -ESTALE || r->commit_ts == -ENOTDIR ||
			   r->commit_ts == -EISDIR) {
			unpin_locked(eng, tx, TXN_CONFLICT);
			staged_free_all(tx);
		} else {
			/* Storage failure: nothing changed; the transaction may be retried. */
			tx->state = TXN_OPEN;
			tx->err = (int)r->commit_ts;
		}
		pthread_mutex_unlock(&tx->lock);
	}
	pthread_mutex_unlock(&eng->table_lock);
	pthread_rwlock_unlock(&eng->tree_lock);

	for (size_t i = 0; i < b.nev; i++)
		free((void *)b.ev[i].ops);
	free(b.ev);
	free(b.a);
	attr_changes_drop(&b, 0); /* applied ones were handed over; this frees the rest */
	free(b.ac);
	complete(eng, list, &b);
	free(b.paths);
}

static void *committer_main(void *arg)
{
	struct txn_engine *eng = arg;

	for (;;) {
		struct txn_commit_req *list, *r, **tail;
		size_t n = 0;

		pthread_mutex_lock(&eng->q_lock);
		while (!eng->q_head && !eng->stopping)
			pthread_cond_wait(&eng->q_cond, &eng->q_lock);
		if (!eng->q_head) {
			pthread_mutex_unlock(&eng->q_lock);
			break;
		}
		/* Take up to BATCH_MAX requests: one fsync for all of them. */
		list = eng->q_head;
		tail = &list;
		for (r = list; r && n < BATCH_MAX; r = r->next, n++)
			tail = &r->next;
		eng->q_head = *tail;
		*tail = NULL;
		if (!eng->q_head)
			eng->q_tail = &eng->q_head;
		pthread_mutex_unlock(&eng->q_lock);
		run_batch(eng, list);
	}
	return NULL;
}

static void enqueue(struct txn_engine *eng, struct txn_commit_req *req)
{
	req->next = NULL;
	req->queued_ns = now_ns(CLOCK_MONOTONIC);
	pthread_mutex_lock(&eng->q_lock);
	*eng->q_tail = req;
	eng->q_tail = &req->next;
	pthread_cond_signal(&eng->q_cond);
	pthread_mutex_unlock(&eng->q_lock);
}

void txn_autocommit(struct txn_engine *eng, struct txn_commit_req *req)
{
	int err = check_path(req->path, strlen(req->path));

	if (!err && req->path2)
		err = check_path(req->path2, strlen(req->path2));
	if (!err && req->kind == TXN_AUTO_PUT && txn_path_depth(req->path, strlen(req->path)) < 3)
		err = -EINVAL;
	if (!err && req->kind == TXN_AUTO_PUT && req->value->len > eng->opt.max_value_bytes)
		err = -EFBIG;
	req->tx = NULL;
	/* A refused request still completes on the committer thread, like every other. */
	req->rejected = err;
	enqueue(eng, req);
}

int txn_commit_tx(struct txn_engine *eng, struct txn *tx, const char *note_name,
		  struct txn_commit_req *req)
{
	struct note *nt = NULL;
	int err;

	pthread_mutex_lock(&eng->table_lock);
	pthread_mutex_lock(&tx->lock);
	err = stage_state_err(tx);
	if (err == -ETIMEDOUT && tx->state == TXN_OPEN) {
		unpin_locked(eng, tx, TXN_EXPIRED);
		tx_fail_locked(tx, err, NULL, 0);
		staged_free_all(tx);
	}
	if (!err) {
		HASH_FIND_STR(tx->notes, note_name, nt);
		if (!nt)
			err = -ENOENT;
	}
	if (!err) {
		req->path = strdup(note_name);
		if (!req->path)
			err = -ENOMEM;
	}
	if (!err) {
		HASH_DEL(tx->notes, nt);
		req->note = nt->content;
		free(nt->name);
		free(nt);
		req->tx = txn_ref(tx);
		tx->state = TXN_COMMITTING;
		tx->err = 0;
	}
	pthread_mutex_unlock(&tx->lock);
	pthread_mutex_unlock(&eng->table_lock);
	if (!err)
		enqueue(eng, req);
	return err;
}

void txn_commit_req_free(struct txn_commit_req *req)
{
	if (!req)
		return;
	free(req->path);
	free(req->path2);
	blob_unref(req->value);
	blob_unref(req->note);
	txn_unref(req->tx);
	free(req);
}

void txn_changes_free(struct txn_changes *ch)
{
	if (!ch)
		return;
	for (size_t i = 0; i < ch->n; i++)
		free(ch->paths[i]);
	free(ch->paths);
	free(ch);
}

void txn_engine_set_notify(struct txn_engine *eng, txn_notify_fn fn, void *arg)
{
	eng->notify = fn;
	eng->notify_arg = arg;
}

/* ---- the reaper ------------------------------------------------------------------------ */

static void reap_expired(struct txn_engine *eng)
{
	struct txn *tx, *tmp;

	pthread_mutex_lock(&eng->table_lock);
	HASH_ITER(hh_name, eng->by_name, tx, tmp) {
		pthread_mutex_lock(&tx->lock);
		if (tx->state == TXN_OPEN && deadline_passed(tx)) {
			unpin_locked(eng, tx, TXN_EXPIRED);
			tx_fail_locked(tx, -ETIMEDOUT, NULL, 0);
			staged_free_all(tx);
		}
		pthread_mutex_unlock(&tx->lock);
	}
	pthread_mutex_unlock(&eng->table_lock);
}

/* ---- snapshots -------------------------------------------------------------------------- */

struct snap_item {
	char *path;
	size_t len;
	struct version v;   /* a copy: value referenced, older unused */
};

struct snap_vec {
	struct snap_item *it;
	size_t n, cap, next;
};

static void snap_vec_free(struct snap_vec *sv)
{
	for (size_t i = 0; i < sv->n; i++) {
		free(sv->it[i].path);
		blob_unref(sv->it[i].v.value);
	}
	free(sv->it);
}

/* Every key's version as of ts below n (tree lock held). */
static int snap_collect(struct node *n, int64_t ts, struct snap_vec *sv)
{
	struct version *v = visible(n, ts);
	struct node *c, *tmp;
	int err;

	if (n->attr) {
		/* A namespace's or agent's owner: an entry of one or two components. */
		struct txn_attr a = { n->attr->uid, n->attr->gid, n->attr->mode, true };

		if (grow((void **)&sv->it, &sv->cap, sv->n, sizeof(*sv->it)))
			return -ENOMEM;
		memset(&sv->it[sv->n], 0, sizeof(sv->it[sv->n]));
		sv->it[sv->n].path = node_path(n, &sv->it[sv->n].len);
		sv->it[sv->n].v.value = attr_encode(&a);
		if (!sv->it[sv->n].path || !sv->it[sv->n].v.value) {
			free(sv->it[sv->n].path);
			blob_unref(sv->it[sv->n].v.value);
			return -ENOMEM;
		}
		sv->n++;
	}
	if (v) {
		if (grow((void **)&sv->it, &sv->cap, sv->n, sizeof(*sv->it)))
			return -ENOMEM;
		sv->it[sv->n].path = node_path(n, &sv->it[sv->n].len);
		if (!sv->it[sv->n].path)
			return -ENOMEM;
		sv->it[sv->n].v = *v;
		blob_ref(v->value);
		sv->n++;
	}
	HASH_ITER(hh, n->children, c, tmp) {
		err = snap_collect(c, ts, sv);
		if (err)
			return err;
	}
	return 0;
}

static int snap_next(void *arg, struct store_snap_entry *e)
{
	struct snap_vec *sv = arg;
	struct snap_item *it;

	if (sv->next == sv->n)
		return 0;
	it = &sv->it[sv->next++];
	*e = (struct store_snap_entry){
		.path = it->path,
		.path_len = it->len,
		.version = it->v.version,
		.commit_ts = it->v.commit_ts,
		.time_ns = it->v.time_ns,
		.deleted = it->v.value == NULL,
		.value = it->v.value ? it->v.value->data : NULL,
		.value_len = it->v.value ? it->v.value->len : 0,
	};
	return 1;
}

int txn_engine_snapshot(struct txn_engine *eng)
{
	struct snap_vec sv = { 0 };
	int64_t t0 = now_ns(CLOCK_MONOTONIC), ts, t1;
	int err;

	/* A consistent copy under the read lock (values are shared, not copied); the file
	 * is written without any lock. */
	pthread_rwlock_rdlock(&eng->tree_lock);
	ts = eng->published_ts;
	err = snap_collect(&eng->root, ts, &sv);
	pthread_rwlock_unlock(&eng->tree_lock);
	t1 = now_ns(CLOCK_MONOTONIC);
	if (!err)
		err = store_snapshot_write(eng->datadir, ts, now_ns(CLOCK_REALTIME), snap_next, &sv,
					   eng->opt.snapshot_keep);
	if (!err) {
		eng->snap_ts = ts;
		log_info("snapshot at commit %" PRId64 " written (%zu keys; %" PRId64
			 " ms under the read lock, %" PRId64 " ms in all)",
			 ts, sv.n, (t1 - t0) / 1000000, (now_ns(CLOCK_MONOTONIC) - t0) / 1000000);
	}
	snap_vec_free(&sv);
	return err;
}

static void maybe_snapshot(struct txn_engine *eng)
{
	if (!eng->opt.snapshot_interval || eng->opt.inspect_only ||
	    txn_engine_head(eng) - eng->snap_ts < (int64_t)eng->opt.snapshot_interval ||
	    now_ns(CLOCK_MONOTONIC) < eng->snap_retry_ns)
		return;
	if (txn_engine_snapshot(eng) != 0)
		eng->snap_retry_ns = now_ns(CLOCK_MONOTONIC) + 5 * (int64_t)1000000000;
}

static void *reaper_main(void *arg)
{
	struct txn_engine *eng = arg;

	pthread_mutex_lock(&eng->q_lock);
	while (!eng->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&eng->reaper_cond, &eng->q_lock, &ts);
		pthread_mutex_unlock(&eng->q_lock);
		reap_expired(eng);
		maybe_snapshot(eng);
		pthread_mutex_lock(&eng->q_lock);
	}
	pthread_mutex_unlock(&eng->q_lock);
	return NULL;
}

/* ---- engine lifecycle -------------------------------------------------------------------- */

static int replay_one(void *arg, const struct store_replay_op *op)
{
	struct txn_engine *eng = arg;
	struct node *n = node_find_or_create(eng, op->path, op->path_len);
	struct version *v;
	bool was;

	if (!n)
		return -ENOMEM;
	if (op->kind == STORE_ATTR) {
		struct dattr *a;
		int err = attr_decode(op->value, op->value_len, &a);

		if (err)
			return err;
		free(n->attr);
		n->attr = a;
		return 0;
	}
	if (n->versions && op->version <= n->versions->version) {
		log_err("cannot replay the log: version %" PRId64 " of '%.*s' at commit %" PRId64
			" does not follow version %" PRId64, op->version, (int)op->path_len,
			op->path, op->commit_ts, n->versions->version);
		return -EIO;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (op->kind == STORE_PUT) {
		v->value = blob_new(op->value, op->value_len);
		if (!v->value) {
			free(v);
			return -ENOMEM;
		}
	}
	was = head_live(n);
	v->commit_ts = op->commit_ts;
	v->version = op->version;
	v->time_ns = op->time_ns;
	v->older = n->versions;
	n->versions = v;
	if (was != (v->value != NULL)) {
		adjust_desc(n, true, v->value ? 1 : -1);
		adjust_desc(n, false, v->value ? 1 : -1);
	}
	node_prune(n, op->commit_ts);
	return 0;
}

static int snap_load_one(void *arg, const struct store_snap_entry *e)
{
	struct txn_engine *eng = arg;
	struct node *n = node_find_or_create(eng, e->path, e->path_len);
	struct version *v;

	if (!n)
		return -ENOMEM;
	if (txn_path_depth(e->path, e->path_len) < 3) {
		if (n->attr)
			return -EIO; /* twice in one snapshot */
		return attr_decode(e->value, e->value_len, &n->attr);
	}
	if (n->versions)
		return -EIO; /* a key twice in one snapshot */
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (!e->deleted && !(v->value = blob_new(e->value, e->value_len))) {
		free(v);
		return -ENOMEM;
	}
	v->commit_ts = e->commit_ts;
	v->version = e->version;
	v->time_ns = e->time_ns;
	n->versions = v;
	if (v->value) {
		adjust_desc(n, true, 1);
		adjust_desc(n, false, 1);
	}
	return 0;
}

/* Open SQLite (its own WAL recovery ran in store_open), load the newest valid snapshot,
 * replay every event after it; record the start. */
static int recover(struct txn_engine *eng, int64_t t0, struct store_replay_stats *stats)
{
	int64_t head = 0, snap_ts = 0, t_snap, t_end;
	uint64_t nkeys = 0;
	int clean_prev = 1, err;

	err = store_check(eng->store, &head);
	if (err) {
		log_err("cannot read the log's head");
		return err;
	}
	if (!eng->opt.full_replay) {
		err = store_snapshot_load(eng->datadir, head, snap_load_one, eng, &snap_ts, &nkeys);
		if (err) {
			/* Applied in part: start over from the first event. */
			log_warn("cannot load the snapshot (%s); replaying the whole log",
				 strerror(-err));
			node_free_tree(&eng->root);
			memset(&eng->root, 0, sizeof(eng->root));
			snap_ts = 0;
			nkeys = 0;
		}
	}
	t_snap = now_ns(CLOCK_MONOTONIC);
	err = store_replay(eng->store, snap_ts, replay_one, eng, stats);
	if (err) {
		log_err("cannot recover the state from the log: %s", strerror(-err));
		return err;
	}
	t_end = now_ns(CLOCK_MONOTONIC);
	eng->published_ts = eng->head_ts = stats->head_ts;
	eng->snap_ts = snap_ts;
	if (snap_ts)
		log_info("recovery: snapshot at commit %" PRId64 " loaded (%" PRIu64 " keys) in %"
			 PRId64 " ms; replayed %" PRIu64 " events (%" PRIu64 " ops) in %" PRId64
			 " ms; ready at commit %" PRId64,
			 snap_ts, nkeys, (t_snap - t0) / 1000000, stats->events, stats->ops,
			 (t_end - t_snap) / 1000000, stats->head_ts);
	else
		log_info("recovery: no snapshot; replayed %" PRIu64 " events (%" PRIu64
			 " ops) in %" PRId64 " ms; ready at commit %" PRId64,
			 stats->events, stats->ops, (t_end - t0) / 1000000, stats->head_ts);
	if (eng->opt.inspect_only)
		return 0;
	err = store_record_start(eng->store,
				 &(struct store_start){ .time_ns = now_ns(CLOCK_REALTIME),
							.recovery_ns = t_end - t0,
							.snapshot_ts = snap_ts,
							.events_replayed = stats->events,
							.head_ts = stats->head_ts },
				 &clean_prev);
	if (err)
		return err;
	if (!clean_prev)
		log_warn("the previous run did not stop cleanly (crash or kill); recovered from "
			 "the log");
	eng->last_recovery_ns = t_end - t0;
	eng->last_replayed = stats->events;
	return 0;
}

int txn_engine_open(const char *datadir, const struct txn_options *opt,
		    struct txn_engine **out)
{
	struct store_options sopt = { .fsync = opt->fsync };
	struct txn_engine *eng;
	struct store_replay_stats stats;
	pthread_rwlockattr_t attr;
	int64_t t0 = now_ns(CLOCK_MONOTONIC);
	struct store *st;
	int err;

	*out = NULL;
	err = store_open(opt->store_uri, datadir, &sopt, &st);
	if (err)
		return err;
	eng = calloc(1, sizeof(*eng));
	if (!eng) {
		store_close(st);
		return -ENOMEM;
	}
	eng->opt = *opt;
	eng->store = st;
	pthread_rwlockattr_init(&attr);
	/* Readers are many and fast; the committer must not starve behind them. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&eng->tree_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&eng->table_lock, NULL);
	pthread_mutex_init(&eng->lat_lock, NULL);
	pthread_mutex_init(&eng->q_lock, NULL);
	pthread_cond_init(&eng->q_cond, NULL);
	pthread_cond_init(&eng->reaper_cond, NULL);
	eng->q_tail = &eng->q_head;

	eng->datadir = strdup(datadir);
	if (!eng->datadir) {
		txn_engine_close(eng);
		return -ENOMEM;
	}
	err = recover(eng, t0, &stats);
	if (err) {
		txn_engine_close(eng);
		return err;
	}
	*out = eng;
	return 0;
}

int txn_engine_start(struct txn_engine *eng)
{
	int rc = pthread_create(&eng->committer, NULL, committer_main, eng);

	if (rc)
		return -rc;
	rc = pthread_create(&eng->reaper, NULL, reaper_main, eng);
	if (rc) {
		pthread_mutex_lock(&eng->q_lock);
		eng->stopping = true;
		pthread_cond_broadcast(&eng->q_cond);
		pthread_mutex_unlock(&eng->q_lock);
		pthread_join(eng->committer, NULL);
		return -rc;
	}
	eng->started = true;
	eng->ran = true;
	return 0;
}

void txn_engine_stop(struct txn_engine *eng)
{
	if (!eng || !eng->started)
		return;
	pthread_mutex_lock(&eng->q_lock);
	eng->stopping = true;
	pthread_cond_broadcast(&eng->q_cond);
	pthread_cond_broadcast(&eng->reaper_cond);
	pthread_mutex_unlock(&eng->q_lock);
	pthread_join(eng->committer, NULL);
	pthread_join(eng->reaper, NULL);
	eng->started = false;
}

void txn_engine_close(struct txn_engine *eng)
{
	struct txn *tx, *tmp;

	if (!eng)
		return;
	if (eng->ran) {
		txn_engine_stop(eng);
		/* A clean stop: a snapshot of the final state, then the mark. */
		if (eng->opt.snapshot_interval && eng->published_ts > eng->snap_ts)
			txn_engine_snapshot(eng);
		store_record_stop(eng->store);
	}
	HASH_ITER(hh_name, eng->by_name, tx, tmp) {
		HASH_DELETE(hh_name, eng->by_name, tx);
		HASH_DELETE(hh_id, eng->by_id, tx);
		tx->in_table = false;
		txn_unref(tx);
	}
	node_free_tree(&eng->root);
	store_close(eng->store);
	free(eng->datadir);
	pthread_rwlock_destroy(&eng->tree_lock);
	pthread_mutex_destroy(&eng->table_lock);
	pthread_mutex_destroy(&eng->lat_lock);
	pthread_mutex_destroy(&eng->q_lock);
	pthread_cond_destroy(&eng->q_cond);
	pthread_cond_destroy(&eng->reaper_cond);
	free(eng);
}

int64_t txn_engine_head(struct txn_engine *eng)
{
	int64_t ts;

	pthread_rwlock_rdlock(&eng->tree_lock);
	ts = eng->published_ts;
	pthread_rwlock_unlock(&eng->tree_lock);
	return ts;
}

int txn_engine_check(struct txn_engine *eng)
{
	int64_t head = 0;
	int err = store_check(eng->store, &head);

	if (err)
		return -EIO;
	if (head < txn_engine_head(eng)) {
		log_err("cannot trust the store: its head %" PRId64 " is behind commit %" PRId64,
			head, txn_engine_head(eng));
		return -EIO;
	}
	return 0;
}

const char *txn_sqlite_version(void) { return store_sqlite_version(); }
int txn_schema_version(void) { return STORE_SCHEMA_VERSION; }

int txn_store_uri_check(const char *store_uri) { return store_uri_check(store_uri); }

#if STATEHOUSE_FAULT_INJECTION
void txn_engine_set_fault(struct txn_engine *eng, long after, int code)
{
	store_set_fault(eng->store, after, code);
}
#endif
const struct txn_options *txn_engine_options(struct txn_engine *eng) { return &eng->opt; }

/* ---- the past ------------------------------------------------------------------------- */

static int at_check_ts(struct txn_engine *eng, int64_t ts)
{
	return ts < 1 || ts > txn_engine_head(eng) ? -ENOENT : 0;
}

static void entry_from_version(struct txn_entry *e, const struct store_version *v)
{
	e->type = TXN_FILE;
	e->size = v->size;
	e->version = v->version;
	e->commit_ts = v->commit_ts;
	e->time_ns = v->time_ns;
}

struct at_probe {
	const char *dir;
	size_t dlen;
	bool found;
};

static int at_probe_one(void *arg, const struct store_version *v)
{
	struct at_probe *p = arg;

	p->found = true;
	return 1; /* one live key below is enough */
}

int txn_at_stat(struct txn_engine *eng, int64_t ts, const char *path, size_t len,
		struct txn_entry *out)
{
	struct store_version v;
	struct at_probe probe = { path, len, false };
	int err = at_check_ts(eng, ts);

	memset(out, 0, sizeof(*out));
	if (!err)
		err = check_path(path, len);
	if (err)
		return err;
	if (len == 0 || implicit_dir(path, len)) {
		out->type = TXN_DIR;
		return 0;
	}
	err = store_get_at(eng->store, path, len, ts, 0, &v);
	if (err == 0) {
		if (v.kind == STORE_PUT)
			entry_from_version(out, &v);
		store_version_release(&v);
		if (out->type == TXN_FILE)
			return 0;
	} else if (err != -ENOENT) {
		return err;
	}
	err = store_list_at(eng->store, path, len, ts, at_probe_one, &probe);
	if (err < 0)
		return err;
	if (!probe.found)
		return -ENOENT;
	out->type = TXN_DIR;
	return 0;
}

int txn_at_read(struct txn_engine *eng, int64_t ts, const char *path, size_t len,
		struct blob **out, struct txn_entry *meta)
{
	struct store_version v;
	int err = at_check_ts(eng, ts);

	*out = NULL;
	memset(meta, 0, sizeof(*meta));
	if (!err)
		err = check_path(path, len);
	if (!err && txn_path_depth(path, len) < 3)
		err = -EISDIR;
	if (err)
		return err;
	err = store_get_at(eng->store, path, len, ts, 1, &v);
	if (err)
		return err;
	if (v.kind != STORE_PUT) {
		store_version_release(&v);
		return -ENOENT;
	}
	entry_from_version(meta, &v);
	*out = blob_new(v.value ? v.value : "", v.size);
	store_version_release(&v);
	return *out ? 0 : -ENOMEM;
}

struct at_lister {
	struct dirents ds;
	size_t plen;   /* length of the listed directory's path */
	char *last;    /* last child name added (rows come in path order) */
};

static int at_list_one(void *arg, const struct store_version *v)
{
	struct at_lister *l = arg;
	const char *rest = v->path + l->plen + (l->plen ? 1 : 0);
	size_t rlen = v->path_len - (size_t)(rest - v->path);
	const char *slash = memchr(rest, '/', rlen);
	size_t nlen = slash ? (size_t)(slash - rest) : rlen;
	int err;

	if (l->last && strlen(l->last) == nlen && memcmp(l->last, rest, nlen) == 0)
		return 0;
	err = dirents_add(&l->ds, rest, nlen, slash ? TXN_DIR : TXN_FILE);
	if (!err)
		l->last = l->ds.d[l->ds.n - 1].name;
	return err;
}

int txn_at_list(struct txn_engine *eng, int64_t ts, const char *path, size_t len,
		struct txn_dirent **out, size_t *n)
{
	struct at_lister l = { .plen = len };
	struct txn_entry e;
	int err = txn_at_stat(eng, ts, path, len, &e);

	*out = NULL;
	*n = 0;
	if (!err && e.type != TXN_DIR)
		err = -ENOTDIR;
	if (!err)
		err = store_list_at(eng->store, path, len, ts, at_list_one, &l);
	if (err) {
		txn_dirents_free(l.ds.d, l.ds.n);
		return err;
	}
	dirents_finish(&l.ds);
	*out = l.ds.d;
	*n = l.ds.n;
	return 0;
}

static int names_one(void *arg, const struct store_version *v)
{
	return dirents_add(arg, v->path, v->path_len, TXN_DIR);
}

int txn_history_names(struct txn_engine *eng, const char *prefix, size_t len,
		      struct txn_dirent **out, size_t *n)
{
	struct dirents ds = { 0 };
	int err = txn_path_depth(prefix, len) > 2 ? -ENOENT : check_path(prefix, len);

	*out = NULL;
	*n = 0;
	if (!err)
		err = store_names(eng->store, prefix, len, names_one, &ds);
	if (err) {
		txn_dirents_free(ds.d, ds.n);
		return err;
	}
	dirents_finish(&ds);
	*out = ds.d;
	*n = ds.n;
	return 0;
}

struct hist {
	struct txn_version *v;
	size_t n, cap;
	json_t *lines; /* for index.jsonl, or NULL */
	char *out;
	size_t out_len, out_cap;
};

static int hist_one(void *arg, const struct store_version *sv)
{
	struct hist *h = arg;

	if (h->lines) {
		char when[64];
		json_t *o = json_object();
		char *s;
		size_t sl;

		if (!o)
			return -ENOMEM;
		rfc3339(sv->time_ns, when, sizeof(when));
		json_object_set_new(o, "version", json_integer(sv->version));
		json_object_set_new(o, "commit_ts", json_integer(sv->commit_ts));
		json_set_str(o, "txn", sv->txn ? sv->txn : "");
		json_set_str(o, "time", when);
		json_set_str(o, "op", sv->kind == STORE_PUT ? "put" : "delete");
		json_object_set_new(o, "size", json_integer((json_int_t)sv->size));
		s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(o);
		if (!s)
			return -ENOMEM;
		sl = strlen(s);
		if (h->out_len + sl + 2 > h->out_cap) {
			size_t cap = (h->out_len + sl + 2) * 2;
			char *nb = realloc(h->out, cap);

			if (!nb) {
				free(s);
				return -ENOMEM;
			}
			h->out = nb;
			h->out_cap = cap;
		}
		memcpy(h->out + h->out_len, s, sl);
		h->out_len += sl;
		h->out[h->out_len++] = '\n';
		free(s);
		h->n++;
		return 0;
	}
	if (grow((void **)&h->v, &h->cap, h->n, sizeof(*h->v)))
		return -ENOMEM;
	h->v[h->n++] = (struct txn_version){
		.version = sv->version,
		.commit_ts = sv->commit_ts,
		.time_ns = sv->time_ns,
		.deleted = sv->kind != STORE_PUT,
		.size = sv->size,
	};
	return 0;
}

static int history_key_path(const char *path, size_t len)
{
	int err = check_path(path, len);

	if (!err && txn_path_depth(path, len) < 3)
		err = -ENOENT;
	return err;
}

int txn_history(struct txn_engine *eng, const char *path, size_t len, struct txn_version **out,
		size_t *n)
{
	struct hist h = { 0 };
	int err = history_key_path(path, len);

	*out = NULL;
	*n = 0;
	if (!err)
		err = store_history(eng->store, path, len, hist_one, &h);
	if (!err && h.n == 0)
		err = -ENOENT;
	if (err) {
		free(h.v);
		return err;
	}
	*out = h.v;
	*n = h.n;
	return 0;
}

int txn_history_value(struct txn_engine *eng, const char *path, size_t len, int64_t version,
		      struct blob **out, struct txn_version *meta)
{
	struct store_version v;
	int err = history_key_path(path, len);

	*out = NULL;
	if (!err)
		err = store_get_version(eng->store, path, len, version, &v);
	if (err)
		return err;
	*meta = (struct txn_version){ .version = v.version, .commit_ts = v.commit_ts,
				      .time_ns = v.time_ns, .deleted = v.kind != STORE_PUT,
				      .size = v.size };
	*out = blob_new(v.value && v.kind == STORE_PUT ? v.value : "",
			v.kind == STORE_PUT ? v.size : 0);
	store_version_release(&v);
	return *out ? 0 : -ENOMEM;
}

int txn_history_index(struct txn_engine *eng, const char *path, size_t len, struct blob **out)
{
	struct hist h = { .lines = json_true() };
	int err = history_key_path(path, len);

	*out = NULL;
	if (!err)
		err = store_history(eng->store, path, len, hist_one, &h);
	if (!err && h.n == 0)
		err = -ENOENT;
	if (!err) {
		*out = blob_new(h.out ? h.out : "", h.out_len);
		if (!*out)
			err = -ENOMEM;
	}
	free(h.out);
	return err;
}

/* ---- the event log ------------------------------------------------------------------- */

static int buf_append(struct txn_buf *b, const char *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *nd;

		while (cap < b->len + len + 1)
			cap *= 2;
		nd = realloc(b->data, cap);
		if (!nd)
			return -ENOMEM;
		b->data = nd;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

static char *base64(const unsigned char *in, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((len + 2) / 3 * 4 + 1), *w = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*w++ = tab[(v >> 18) & 63];
		*w++ = tab[(v >> 12) & 63];
		*w++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		*w++ = i + 2 < len ? tab[v & 63] : '=';
	}
	*w = '\0';
	return out;
}

/* Set o[name] to bytes as JSON, else as text, else o[name_base64]. */
static int set_bytes(json_t *o, const char *name, const void *data, size_t len)
{
	json_error_t jerr;
	json_t *v = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	char key[32];
	char *b64;

	if (!v)
		v = json_stringn(data, len); /* NULL unless valid UTF-8 */
	if (v)
		return json_object_set_new(o, name, v) ? -ENOMEM : 0;
	snprintf(key, sizeof(key), "%s_base64", name);
	b64 = base64(data, len);
	if (!b64)
		return -ENOMEM;
	v = json_string(b64);
	free(b64);
	return !v || json_object_set_new(o, key, v) ? -ENOMEM : 0;
}

struct render {
	struct txn_buf *out;
	int64_t last_ts;
};

static int render_event(void *arg, const struct store_event *ev)
{
	struct render *r = arg;
	json_t *o = json_object(), *ops = json_array();
	char when[64];
	char *line;
	int err = 0;

	if (!o || !ops) {
		json_decref(o);
		json_decref(ops);
		return -ENOMEM;
	}
	rfc3339(ev->time_ns, when, sizeof(when));
	json_object_set_new(o, "commit_ts", json_integer(ev->commit_ts));
	json_set_str(o, "txn", ev->txn);
	json_set_str(o, "time", when);
	if (ev->note_len)
		err = set_bytes(o, "note", ev->note, ev->note_len);
	for (size_t i = 0; i < ev->n_ops && !err; i++) {
		const struct store_op *op = &ev->ops[i];
		const char *s1 = memchr(op->path, '/', op->path_len);
		const char *s2 = s1 ? memchr(s1 + 1, '/', op->path_len - (size_t)(s1 + 1 - op->path))
				    : NULL;
		json_t *jo = json_object();

		if (jo && op->kind == STORE_ATTR) {
			size_t nl = s1 ? (size_t)(s1 - op->path) : op->path_len;

			json_object_set_new(jo, "ns", json_stringn_nocheck(op->path, nl));
			if (s1)
				json_object_set_new(jo, "agent", json_stringn_nocheck(
					s1 + 1, op->path_len - nl - 1));
			json_set_str(jo, "op", "attr");
			if (op->value_len)
				err = set_bytes(jo, "value", op->value, op->value_len);
			else
				json_object_set_new(jo, "value", json_null());
			json_array_append_new(ops, jo);
			continue;
		}
		if (!jo || !s2) {
			json_decref(jo);
			err = jo ? -EIO : -ENOMEM;
			break;
		}
		json_object_set_new(jo, "ns", json_stringn_nocheck(op->path, (size_t)(s1 - op->path)));
		json_object_set_new(jo, "agent",
				    json_stringn_nocheck(s1 + 1, (size_t)(s2 - s1 - 1)));
		{
			size_t kl = op->path_len - (size_t)(s2 + 1 - op->path);
			json_t *k = json_stringn(s2 + 1, kl);

			json_object_set_new(jo, "key", k ? k : json_stringn_nocheck(s2 + 1, kl));
		}
		json_set_str(jo, "op", op->kind == STORE_PUT ? "put" : "delete");
		json_object_set_new(jo, "version", json_integer(op->version));
		if (op->kind == STORE_PUT)
			err = set_bytes(jo, "value", op->value ? op->value : "", op->value_len);
		json_array_append_new(ops, jo);
	}
	json_object_set_new(o, "ops", ops);
	if (err) {
		json_decref(o);
		return err;
	}
	line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	json_decref(o);
	if (!line)
		return -ENOMEM;
	err = buf_append(r->out, line, strlen(line));
	if (!err)
		err = buf_append(r->out, "\n", 1);
	free(line);
	if (!err)
		r->last_ts = ev->commit_ts;
	return err;
}

int txn_events_render(struct txn_engine *eng, const char *filter, size_t filter_len,
		      int64_t from_ts, int64_t to_ts, struct txn_buf *out, int64_t *last_ts)
{
	struct render r = { .out = out, .last_ts = *last_ts };
	size_t mark = out->len;
	int err;

	if (filter && filter_len) {
		err = check_path(filter, filter_len);
		if (!err && txn_path_depth(filter, filter_len) != 2)
			err = -EINVAL;
		if (err)
			return err;
	}
	err = store_events(eng->store, from_ts, to_ts, filter_len ? filter : NULL, filter_len,
			   render_event, &r);
	if (err) {
		out->len = mark; /* whole lines only */
		return err;
	}
	*last_ts = r.last_ts;
	return 0;
}

/* ---- verify --------------------------------------------------------------------------- */

struct verify {
	struct txn_engine *other;
	uint64_t keys, diffs;
};

static int verify_walk(struct txn_engine *a, struct node *n, struct verify *vf)
{
	struct node *c, *tmp;

	if (n->parent && (n->attr || n->parent == &a->root || n->parent->parent == &a->root)) {
		size_t len;
		char *path = node_path(n, &len);
		struct node *m = path ? node_find(vf->other, path, len) : NULL;
		struct dattr *x = n->attr, *y = m ? m->attr : NULL;

		if (!path)
			return -ENOMEM;
		if ((x == NULL) != (y == NULL) ||
		    (x && (x->uid != y->uid || x->gid != y->gid || x->mode != y->mode))) {
			vf->diffs++;
			log_err("verify: the owner or mode of '%s' differs", path);
		}
		free(path);
	}

	if (n->versions) {
		size_t len;
		char *path = node_path(n, &len);
		struct node *m = path ? node_find(vf->other, path, len) : NULL;
		struct version *x = n->versions, *y = m ? m->versions : NULL;

		if (!path)
			return -ENOMEM;
		vf->keys++;
		if (!y || x->version != y->version || x->commit_ts != y->commit_ts ||
		    (x->value == NULL) != (y->value == NULL) ||
		    (x->value && (x->value->len != y->value->len ||
				  memcmp(x->value->data, y->value->data, x->value->len)))) {
			vf->diffs++;
			log_err("verify: '%s' differs: full replay has version %" PRId64
				" at commit %" PRId64 "%s, snapshot + replay has %s", path,
				x->version, x->commit_ts, x->value ? "" : " (deleted)",
				y ? "another version or value" : "nothing");
		}
		free(path);
	}
	HASH_ITER(hh, n->children, c, tmp) {
		int err = verify_walk(a, c, vf);

		if (err)
			return err;
	}
	return 0;
}

static uint64_t count_attrs(struct node *n)
{
	struct node *c, *tmp;
	uint64_t k = n->attr ? 1 : 0;

	HASH_ITER(hh, n->children, c, tmp)
		k += count_attrs(c);
	return k;
}

static uint64_t count_keys(struct node *n)
{
	struct node *c, *tmp;
	uint64_t k = n->versions ? 1 : 0;

	HASH_ITER(hh, n->children, c, tmp)
		k += count_keys(c);
	return k;
}

int txn_verify(const char *datadir, const char *store_uri)
{
	struct txn_options opt = { .txn_timeout_ms = 1000, .max_open_txns = 1,
				   .max_value_bytes = SIZE_MAX, .fsync = 1, .inspect_only = true,
				   .store_uri = store_uri };
	struct txn_engine *full = NULL, *snap = NULL;
	struct verify vf = { 0 };
	int err;

	opt.full_replay = true;
	err = txn_engine_open(datadir, &opt, &full);
	if (!err) {
		opt.full_replay = false;
		err = txn_engine_open(datadir, &opt, &snap);
	}
	if (!err && full->published_ts != snap->published_ts) {
		log_err("verify: the full replay ends at commit %" PRId64 ", snapshot + replay at %"
			PRId64, full->published_ts, snap->published_ts);
		err = -EIO;
	}
	if (!err) {
		vf.other = snap;
		err = verify_walk(full, &full->root, &vf);
	}
	if (!err && count_keys(&snap->root) != vf.keys) {
		log_err("verify: snapshot + replay holds %" PRIu64 " keys, the full replay %" PRIu64,
			count_keys(&snap->root), vf.keys);
		err = -EIO;
	}
	/* Every record of the full replay was compared; equal counts leave none extra. */
	if (!err && count_attrs(&snap->root) != count_attrs(&full->root)) {
		log_err("verify: snapshot + replay holds %" PRIu64 " owner records, the full replay %"
			PRIu64, count_attrs(&snap->root), count_attrs(&full->root));
		err = -EIO;
	}
	if (!err && vf.diffs)
		err = -EIO;
	if (!err)
		log_info("verify: ok: %" PRIu64 " keys at commit %" PRId64 " agree (snapshot at commit %"
			 PRId64 " + replay vs the whole log)", vf.keys, full->published_ts,
			 snap->snap_ts);
	txn_engine_close(full);
	txn_engine_close(snap);
	return err;
}

/* ---- metrics ---------------------------------------------------------------------------- */

const double txn_latency_bounds_s[TXN_LAT_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1e300,
};

void txn_engine_stats(struct txn_engine *eng, struct txn_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->begun = eng->n_begun;
	out->committed = eng->n_committed;
	out->aborted = eng->n_aborted;
	out->expired = eng->n_expired;
	out->conflicted = eng->n_conflicted;
	out->autocommits = eng->n_auto;
	out->failed = eng->n_failed;
	out->ops_written = eng->n_written;
	out->ops_deleted = eng->n_deleted;
	pthread_mutex_lock(&eng->table_lock);
	out->open_txns = eng->n_open;
	pthread_mutex_unlock(&eng->table_lock);
	out->head_ts = txn_engine_head(eng);
	out->snapshot_ts = eng->snap_ts;
	out->last_recovery_ns = eng->last_recovery_ns;
	out->last_replayed = eng->last_replayed;
	store_file_sizes(eng->store, &out->db_bytes, &out->wal_bytes);
	store_starts(eng->store, &out->starts, &out->unclean_starts);
	pthread_mutex_lock(&eng->lat_lock);
	memcpy(out->lat_bucket, eng->lat_bucket, sizeof(out->lat_bucket));
	out->lat_count = eng->lat_count;
	out->lat_sum_s = eng->lat_sum_s;
	pthread_mutex_unlock(&eng->lat_lock);
}
