/* SPDX-License-Identifier: MIT */
/*
 * tree.c - the versioned tree and what is read from it (txn layer): path rules, the
 * nodes with their version chains, views (the live tree or a transaction's snapshot
 * overlaid with its staged ops: stat, read, list), owners and modes of namespaces and
 * agents, and the live tree's explicit directories.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "grow.h"
#include "log.h"
#include "txn_i.h"

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
int txn_path_check(const char *path, size_t len)
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

bool txn_path_is_under(const char *p, size_t plen, const char *dir, size_t dlen)
{
	if (dlen == 0)
		return plen > 0;
	return plen > dlen && p[dlen] == '/' && memcmp(p, dir, dlen) == 0;
}

char *txn_path_join(const char *a, size_t alen, const char *b, size_t blen, size_t *out_len)
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

struct node *txn_node_find(struct txn_engine *eng, const char *path, size_t len)
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

struct node *txn_node_find_or_create(struct txn_engine *eng, const char *path, size_t len)
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
				if (!HASH_ADDED(hh, c)) {
					free(c->name);
					free(c);
					return NULL;
				}
			}
			n = c;
			start = i + 1;
		}
	}
	return n;
}

void txn_node_free_tree(struct node *n)
{
	struct node *c, *tmp;

	HASH_ITER(hh, n->children, c, tmp) {
		HASH_DEL(n->children, c);
		txn_node_free_tree(c);
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

struct version *txn_node_visible(const struct node *n, int64_t ts)
{
	struct version *v = n ? n->versions : NULL;

	while (v && v->commit_ts > ts)
		v = v->older;
	return v;
}

bool txn_node_live_at(const struct node *n, int64_t ts)
{
	struct version *v = txn_node_visible(n, ts);

	return v && v->value;
}

bool txn_node_head_live(const struct node *n)
{
	return n && n->versions && n->versions->value;
}

void txn_node_adjust_desc(struct node *n, bool head, int delta)
{
	for (struct node *a = n->parent; a; a = a->parent) {
		if (head)
			a->head_desc += delta;
		else
			a->pub_desc += delta;
	}
}

void txn_node_set_dir(struct node *n, bool head, bool on)
{
	bool *flag = head ? &n->dir_head : &n->explicit_dir;

	if (*flag == on)
		return;
	*flag = on;
	txn_node_adjust_desc(n, head, on ? 1 : -1);
}

void txn_node_touch_parent(struct node *n, int64_t time_ns)
{
	if (n->parent && time_ns > n->parent->entries_ns)
		n->parent->entries_ns = time_ns;
}

/* Build "a/b/c" for node n into a malloc'ed string. */
char *txn_node_path(const struct node *n, size_t *out_len)
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
void txn_node_prune(struct node *n, int64_t keep_ts)
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

struct staged *txn_staged_find(struct txn *tx, const char *path, size_t len)
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
		if ((s->kind == ST_PUT || s->kind == ST_DIR) &&
		    txn_path_is_under(s->path, s->len, path, len))
			return true;
	}
	return false;
}

/* Is n a committed explicit directory (at path) still there in tx's view, not removed
 * by a staged rmdir?  Directories are not versioned: a transaction sees the published
 * ones. */
bool txn_dir_kept_in_tx(struct txn *tx, const struct node *n, const char *path, size_t len)
{
	struct staged *s;

	if (!n->explicit_dir)
		return false;
	s = txn_staged_find(tx, path, len);
	return !s || s->kind == ST_DIR;
}

/* Does some key or explicit directory below node n (whose path is buf[0..len)) exist
 * in tx's view? */
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
		if (txn_node_live_at(c, tx->begin_ts)) {
			struct staged *s = tx->n_deletes ? txn_staged_find(tx, buf, l) : NULL;

			if (!s || s->kind != ST_DELETE)
				return true;
		}
		if (txn_dir_kept_in_tx(tx, c, buf, l))
			return true;
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
bool txn_implicit_dir(const char *path, size_t len)
{
	int depth = txn_path_depth(path, len);

	return (depth == 1 || depth == 2) && txn_path_check(path, len) == 0;
}

/* A committed version as a file entry (and its value, when asked for). */
static int entry_of_version(const struct version *v, struct txn_entry *out, struct blob **value)
{
	out->type = TXN_FILE;
	out->size = v->value->len;
	out->version = v->version;
	out->commit_ts = v->commit_ts;
	out->time_ns = v->time_ns;
	if (value)
		*value = blob_ref(v->value);
	return 0;
}

static int dir_entry(struct txn_entry *out)
{
	out->type = TXN_DIR;
	return 0;
}

/* A live directory: its mtime is when its entries last changed (invariant 8). */
static int live_dir_entry(const struct node *n, struct txn_entry *out)
{
	out->type = TXN_DIR;
	out->time_ns = n ? n->entries_ns : 0;
	return 0;
}

/* The live tree: what is published. */
static int resolve_live(struct txn_engine *eng, const char *path, size_t len,
			struct txn_entry *out, struct blob **value)
{
	struct node *n = txn_node_find(eng, path, len);
	struct version *v;

	if (len == 0)
		return live_dir_entry(&eng->root, out);
	if (!n)
		return txn_implicit_dir(path, len) ? dir_entry(out) : -ENOENT;
	v = txn_node_visible(n, eng->published_ts);
	if (v && v->value)
		return entry_of_version(v, out, value);
	if (n->pub_desc > 0 || n->explicit_dir || txn_implicit_dir(path, len))
		return live_dir_entry(n, out);
	return -ENOENT;
}

/* Is path a directory in tx's view because some key below it exists there? */
static bool dir_in_tx(struct txn *tx, struct node *n, const char *path, size_t len)
{
	char buf[PATH_BUF];

	if (staged_below(tx, path, len))
		return true;
	if (!n || !n->children || len >= sizeof(buf))
		return false;
	memcpy(buf, path, len);
	return snapshot_below(tx, n, buf, len, sizeof(buf));
}

bool txn_view_has_below(struct txn_engine *eng, struct txn *tx, const char *path, size_t len)
{
	return dir_in_tx(tx, txn_node_find(eng, path, len), path, len);
}

/* A transaction's view: its snapshot at begin_ts overlaid with its staged ops.
 * implicit: namespaces and agents exist without keys (lookups); listings say false. */
static int resolve_in_tx(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
			 struct txn_entry *out, struct blob **value, bool implicit)
{
	struct node *n = txn_node_find(eng, path, len);
	struct staged *s;
	struct version *v;
	int err = tx_view_state_err(tx);

	if (err)
		return err;
	if (len == 0)
		return dir_entry(out);
	s = txn_staged_find(tx, path, len);
	v = txn_node_visible(n, tx->begin_ts);
	if (s && s->kind == ST_PUT) {
		/* Staged, not committed: no version, no commit yet. */
		out->type = TXN_FILE;
		out->size = s->value->len;
		out->time_ns = s->time_ns;
		if (value)
			*value = blob_ref(s->value);
		return 0;
	}
	if (!s && v && v->value)
		return entry_of_version(v, out, value);
	if ((s && s->kind == ST_DIR) || (n && txn_dir_kept_in_tx(tx, n, path, len)) ||
	    dir_in_tx(tx, n, path, len))
		return dir_entry(out);
	if ((implicit || (n && n->attr)) && txn_implicit_dir(path, len))
		return dir_entry(out);
	return -ENOENT;
}

static int view_resolve_x(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
			  struct txn_entry *out, struct blob **value, bool implicit)
{
	memset(out, 0, sizeof(*out));
	if (!tx)
		return resolve_live(eng, path, len, out, value);
	return resolve_in_tx(eng, tx, path, len, out, value, implicit);
}

/* Resolve path in a view; callers hold the tree lock (read) and, for tx, tx->lock. */
int txn_view_resolve(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
		     struct txn_entry *out, struct blob **value)
{
	return view_resolve_x(eng, tx, path, len, out, value, true);
}

int txn_stat(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
	     struct txn_entry *out)
{
	int err;

	pthread_rwlock_rdlock(&eng->tree_lock);
	if (tx)
		pthread_mutex_lock(&tx->lock);
	err = txn_view_resolve(eng, tx, path, len, out, NULL);
	if (tx) {
		int rerr = txn_read_record_locked(tx, path, len, err, out, false);

		err = rerr ? rerr : err;
		pthread_mutex_unlock(&tx->lock);
	}
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
	err = txn_view_resolve(eng, tx, path, len, &e, out);
	if (tx) {
		int rerr = txn_read_record_locked(tx, path, len, err, &e, false);

		if (rerr) {
			blob_unref(*out);
			*out = NULL;
			err = rerr;
		}
		pthread_mutex_unlock(&tx->lock);
	}
	pthread_rwlock_unlock(&eng->tree_lock);
	if (!err && e.type != TXN_FILE)
		err = -EISDIR;
	if (meta)
		*meta = e;
	return err;
}

int txn_list(struct txn_engine *eng, struct txn *tx, const char *path, size_t len,
	     struct dirent_entry **out, size_t *n)
{
	struct dirents ds = DIRENTS_INIT;
	struct txn_entry e;
	struct node *dir, *c, *tmp;
	int err;

	*out = NULL;
	*n = 0;
	pthread_rwlock_rdlock(&eng->tree_lock);
	if (tx)
		pthread_mutex_lock(&tx->lock);
	err = txn_view_resolve(eng, tx, path, len, &e, NULL);
	if (!err && e.type != TXN_DIR)
		err = -ENOTDIR;
	if (err)
		goto unlock;
	dir = txn_node_find(eng, path, len);
	if (dir) {
		HASH_ITER(hh, dir->children, c, tmp) {
			if (!tx) {
				if (txn_node_live_at(c, eng->published_ts))
					err = dirents_add(&ds, c->name, c->name_len, TXN_FILE);
				else if (c->pub_desc > 0 || c->explicit_dir || c->attr)
					err = dirents_add(&ds, c->name, c->name_len, TXN_DIR);
			} else {
				size_t cl;
				char *cp = txn_path_join(path, len, c->name, c->name_len, &cl);
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

			if (s->kind == ST_DELETE || s->kind == ST_RMDIR ||
			    !txn_path_is_under(s->path, s->len, path, len))
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
	if (tx) {
		if (!err)
			err = txn_read_record_locked(tx, path, len, 0, &e, true);
		pthread_mutex_unlock(&tx->lock);
	}
	pthread_rwlock_unlock(&eng->tree_lock);
	return dirents_take(&ds, err, out, n);
}

/* ---- owners and modes ------------------------------------------------------------- */

void txn_attr_compose(const struct txn_engine *eng, const struct dattr *ns,
		      const struct dattr *ag, struct txn_attr *ns_out, struct txn_attr *ag_out)
{
	*ns_out = (struct txn_attr){ .uid = eng->opt.owner_uid, .gid = eng->opt.owner_gid,
				     .mode = 0755 };
	if (ns)
		*ns_out = (struct txn_attr){ ns->uid, ns->gid, ns->mode, true };
	if (ag) {
		*ag_out = (struct txn_attr){ ag->uid, ag->gid, ag->mode, true };
		return;
	}
	/* Inherited from the namespace.  In a sticky one (a shared space like /tmp) an
	 * agent nobody set up is not writable by group and others. */
	*ag_out = *ns_out;
	ag_out->own = false;
	if (ag_out->mode & S_ISVTX)
		ag_out->mode &= ~(mode_t)022;
	ag_out->mode &= 0777;
}

/* Attributes of "ns" or "ns/agent" as recorded or inherited; tree lock held. */
static void dir_attr_locked(struct txn_engine *eng, const char *path, size_t len, int depth,
			    struct txn_attr *out)
{
	const char *slash = memchr(path, '/', len);
	size_t nslen = slash ? (size_t)(slash - path) : len;
	struct node *ns = node_child(&eng->root, path, nslen), *ag = NULL;
	struct txn_attr na, aa;

	if (ns && depth > 1) {
		const char *a = slash + 1, *end = memchr(a, '/', len - nslen - 1);

		ag = node_child(ns, a, end ? (size_t)(end - a) : len - nslen - 1);
	}
	txn_attr_compose(eng, ns ? ns->attr : NULL, ag ? ag->attr : NULL, &na, &aa);
	*out = depth == 1 ? na : aa;
	if (depth > 2)
		out->own = false;
}

int txn_dir_attr(struct txn_engine *eng, const char *path, size_t len, struct txn_attr *out)
{
	int depth = txn_path_depth(path, len);

	if (depth < 1 || len == 0 || txn_path_check(path, len))
		return -EINVAL;
	pthread_rwlock_rdlock(&eng->tree_lock);
	dir_attr_locked(eng, path, len, depth, out);
	if (depth > 2) {
		struct node *k = txn_node_find(eng, path, len);

		out->own = k && k->attr;
		if (out->own)
			out->mode = k->attr->mode; /* a key's own mode; the owner its agent's */
	}
	pthread_rwlock_unlock(&eng->tree_lock);
	return 0;
}

/* The log's form of an attribute change (txn_i.h). */
struct blob *txn_attr_encode(const struct txn_attr *a, bool key)
{
	char buf[96];
	int n = key ? snprintf(buf, sizeof(buf), "{\"mode\":\"%04" PRIo32 "\"}", a->mode & 07777)
		    : snprintf(buf, sizeof(buf), "{\"uid\":%" PRIu32 ",\"gid\":%" PRIu32
			       ",\"mode\":\"%04" PRIo32 "\"}", a->uid, a->gid, a->mode & 07777);

	return blob_new(buf, (size_t)n);
}

/*
 * An owner record is the flat JSON object txn_attr_encode() writes.  This reader takes
 * just that shape (members in any order, blanks between tokens, strings without
 * escapes), which keeps the txn layer free of a JSON library.
 */
struct attr_rec {
	long long uid, gid;
	char mode[16];
	bool has_uid, has_gid, has_mode;
};

static const char *skip_blanks(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* A string without escapes into buf; NULL if there is none or it does not fit. */
static const char *attr_str(const char *p, const char *end, char *buf, size_t cap)
{
	size_t n = 0;

	if (p >= end || *p++ != '"')
		return NULL;
	while (p < end && *p != '"') {
		if (*p == '\\' || n + 1 >= cap)
			return NULL;
		buf[n++] = *p++;
	}
	if (p >= end)
		return NULL;
	buf[n] = '\0';
	return p + 1;
}

/* A non-negative integer no larger than UINT32_MAX. */
static const char *attr_uint(const char *p, const char *end, long long *out)
{
	const char *start = p;
	long long v = 0;

	while (p < end && *p >= '0' && *p <= '9') {
		v = v * 10 + (*p++ - '0');
		if (v > UINT32_MAX)
			return NULL;
	}
	*out = v;
	return p > start ? p : NULL;
}

/* One "name":value member. */
static const char *attr_member(const char *p, const char *end, struct attr_rec *r)
{
	char key[8];

	p = attr_str(p, end, key, sizeof(key));
	if (p)
		p = skip_blanks(p, end);
	if (!p || p >= end || *p++ != ':')
		return NULL;
	p = skip_blanks(p, end);
	if (strcmp(key, "uid") == 0) {
		r->has_uid = true;
		return attr_uint(p, end, &r->uid);
	}
	if (strcmp(key, "gid") == 0) {
		r->has_gid = true;
		return attr_uint(p, end, &r->gid);
	}
	if (strcmp(key, "mode") == 0) {
		r->has_mode = true;
		return attr_str(p, end, r->mode, sizeof(r->mode));
	}
	return NULL;
}

static int attr_parse(const char *p, const char *end, bool key, struct attr_rec *r)
{
	p = skip_blanks(p, end);
	if (p >= end || *p++ != '{')
		return -1;
	do {
		p = attr_member(skip_blanks(p, end), end, r);
		if (!p)
			return -1;
		p = skip_blanks(p, end);
	} while (p < end && *p == ',' && p++);
	if (p >= end || *p++ != '}')
		return -1;
	return skip_blanks(p, end) == end && (key || (r->has_uid && r->has_gid)) && r->has_mode
		       ? 0 : -1;
}

int txn_attr_decode(const void *data, size_t len, bool key, struct dattr **out)
{
	struct attr_rec r = { 0 };
	struct dattr *a;
	unsigned long mode = 0;
	char *end = NULL;

	*out = NULL;
	if (len == 0)
		return 0;
	if (attr_parse(data, (const char *)data + len, key, &r) == 0)
		mode = strtoul(r.mode, &end, 8);
	if (!end || *end || mode > 07777) {
		log_err("cannot read an owner record: '%.*s'", (int)(len > 200 ? 200 : len),
			(const char *)data);
		return -EIO;
	}
	a = malloc(sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->uid = (uint32_t)r.uid;
	a->gid = (uint32_t)r.gid;
	a->mode = (uint32_t)mode;
	*out = a;
	return 0;
}

/* ---- live directories ------------------------------------------------------------- */

/* May path become a directory of the live tree?  Tree lock held. */
static int live_mkdir_check(struct txn_engine *eng, const char *path, size_t len)
{
	const char *slash = memrchr(path, '/', len);
	size_t plen = slash ? (size_t)(slash - path) : 0;
	struct txn_entry e;
	int err;

	if (txn_view_resolve(eng, NULL, path, len, &e, NULL) == 0)
		return -EEXIST;
	/* The parent must be a directory (the kernel looked it up; it may have vanished,
	 * and then the new directory brings it back). */
	err = txn_view_resolve(eng, NULL, path, plen, &e, NULL);
	if (!err && e.type != TXN_DIR)
		return -ENOTDIR;
	return err == -ENOENT ? 0 : err;
}

int txn_live_mkdir(struct txn_engine *eng, const char *path, size_t len,
		   const struct txn_reqid *id)
{
	struct node *n;
	int err = txn_path_check(path, len);

	if (err)
		return err;
	if (txn_path_depth(path, len) < 1)
		return -EEXIST;
	pthread_rwlock_wrlock(&eng->tree_lock);
	err = live_mkdir_check(eng, path, len);
	if (!err && txn_path_depth(path, len) <= 2) {
		/* A namespace or agent exists anyway: marked for listings, in memory. */
		n = txn_node_find_or_create(eng, path, len);
		if (!n)
			err = -ENOMEM;
		for (struct node *a = n; a && a->parent; a = a->parent)
			a->explicit_dir = true;
		pthread_rwlock_unlock(&eng->tree_lock);
		return err;
	}
	pthread_rwlock_unlock(&eng->tree_lock);
	/* Below an agent: a commit, checked again by the committer at the head. */
	return err ? err : txn_autocommit_wait(eng, TXN_AUTO_MKDIR, path, len, id);
}

bool txn_node_has_explicit_child(struct node *n)
{
	struct node *c, *tmp;

	HASH_ITER(hh, n->children, c, tmp) {
		if (c->explicit_dir || c->attr)
			return true;
	}
	return false;
}

int txn_live_rmdir(struct txn_engine *eng, const char *path, size_t len,
		   const struct txn_reqid *id)
{
	struct node *n;
	bool commit = false;
	int err = 0;

	if (len == 0)
		return -EBUSY;
	pthread_rwlock_wrlock(&eng->tree_lock);
	n = txn_node_find(eng, path, len);
	if (!n)
		err = 0; /* implicit, or vanished with its last key: nothing to remove */
	else if (txn_node_live_at(n, eng->published_ts))
		err = -ENOTDIR;
	else if (n->pub_desc > 0 || n->head_desc > 0 || txn_node_has_explicit_child(n))
		err = -ENOTEMPTY;
	else if (n->explicit_dir && txn_path_depth(path, len) > 2)
		commit = true; /* state: removed by a commit */
	else
		n->explicit_dir = false; /* an empty implicit directory simply vanishes */
	pthread_rwlock_unlock(&eng->tree_lock);
	if (commit)
		err = txn_autocommit_wait(eng, TXN_AUTO_RMDIR, path, len, id);
	return err;
}
