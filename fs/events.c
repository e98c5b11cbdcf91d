/* SPDX-License-Identifier: MIT */
/*
 * events.c - `.events` and `.follow`: the event log as JSON Lines files, their sizes,
 * reads that wait for the next commit (parked) and poll (fs layer).
 *
 * A .follow read at the end of the stream does not hold a thread: it is parked on
 * fs->parked and the notifier (fs_events_wake) answers it after a commit, or with EINTR
 * when the kernel interrupts it.  Every rendering goes through events_render() below,
 * the one place that knows the engine's renderer and its buffer type.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

/*
 * What a path below .events or .follow names:
 *   ""  "since/<ts>"                      the top of a stream set (EV_TOP)
 *   "since"                               every commit_ts, by name (EV_SINCE)
 *   ".ns"                                 every namespace, none shadowed (EV_NSES)
 *   "<ns>"  ".ns/<ns>"                    a namespace: its agents' files (EV_NS)
 *   "<ns>/<agent>[/<p>...]"               where key prefixes' streams are, by name
 *                                         (EV_PREFIX)
 *   "all.jsonl"  "<ns>/<agent>.jsonl"  ".ns/<ns>/<agent>.jsonl"     a stream (EV_FILE)
 *   "<ns>/<agent>/<p>[/<p>...].jsonl"     the ops on keys at or below <p>/... (EV_FILE)
 * each also below "since/<ts>/" and ".ns/".  A namespace named "since" (at the top only)
 * or "all.jsonl" is shadowed by those names: ".ns/<ns>" reaches every namespace; an
 * agent (or a prefix component) whose name ends in ".jsonl" is shadowed by the stream of
 * the name without it.
 */
enum ev_kind { EV_TOP = 1, EV_SINCE, EV_NSES, EV_NS, EV_PREFIX, EV_FILE };

/* "ns/agent/prefix" and its NUL. */
#define EV_FILTER_MAX (2 * TXN_NAME_MAX + TXN_KEY_MAX + 3)

struct ev_path {
	enum ev_kind kind;
	enum txn_type type;
	int64_t since;                        /* first commit_ts of the stream */
	char filter[EV_FILTER_MAX];           /* "ns/agent[/prefix]", or "" for all.jsonl */
	const char *ns;                       /* EV_NS: the namespace, in the parsed path */
	size_t nslen;
};

/* Bytes of the "ns/agent" that begins a filter (all of it when there is no prefix). */
static size_t ev_agent_len(const char *filter)
{
	const char *slash = strchr(filter, '/');

	slash = slash ? strchr(slash + 1, '/') : NULL;
	return slash ? (size_t)(slash - filter) : strlen(filter);
}

/* A place in a stream: the bytes from off on are the lines of the commits after ts. */
struct ev_mark {
	size_t off;
	int64_t ts;
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
	int64_t horizon; /* the stream's start then: a prune makes the size stale */
	UT_hash_handle hh;
};

#define EV_SIZES_MAX 4096
#define EV_PAGE (64 * 1024)        /* bytes rendered ahead of a read, at most (+ a line) */
#define EV_FIRST_PAGE (16 * 1024)  /* the same for a handle's first read */
#define EV_MARK_GAP (1024 * 1024)  /* stream bytes between two marks, at first */
#define EV_MARKS_MAX 512           /* then every other mark goes and the gap doubles */

/*
 * The one place that renders commits of a stream (handles' windows and sizes alike):
 * from_ts..to_ts that filter selects, appended to out, stopping after max_bytes (0: no
 * limit).  *last_ts and *full as render_events_page() sets them.
 */
static int events_render(struct fs *fs, const char *filter, int64_t from_ts, int64_t to_ts,
			 size_t max_bytes, const struct render_filter *rf, struct strbuf *out,
			 int64_t *last_ts, bool *full)
{
	return render_events_page(fs->eng, filter, strlen(filter), from_ts, to_ts,
				  max_bytes ? max_bytes : SIZE_MAX / 2, rf, out, last_ts, full);
}

/*
 * Who sees which ops of an agent's stream.  An agent (or its namespace, or a key of
 * it) that ever had an owner record shows a reader other than root only the ops it
 * could read then and can now, as the past does (txn_may_read_at): a put or delete as
 * a key, anything else as the agent's directory.  Other streams show every op.
 */
static bool ev_visible(void *arg, const struct txn_op *op, int64_t commit_ts)
{
	struct handle *h = arg;
	bool key = op->kind == TXN_OP_PUT || op->kind == TXN_OP_DELETE;
	const char *path = key ? op->path : h->ev_filter;
	size_t len = key ? op->path_len : ev_agent_len(h->ev_filter);

	return txn_may_read_at(h->fs->eng, h->ev_hist, path, len, key, commit_ts,
			       &h->ev_caller.c) == 0;
}

/* The owner records of filter's agent, if it ever had one that a reader other than
 * root must be checked against; NULL *out otherwise. */
static int ev_hist_for(struct fs *fs, fuse_req_t req, const char *filter,
		       struct txn_owner_hist **out)
{
	int err;

	*out = NULL;
	if (!filter[0] || fuse_req_ctx(req)->uid == 0)
		return 0;
	err = txn_owner_hist_load(fs->eng, filter, strlen(filter), out);
	if (!err && txn_owner_hist_empty(*out)) {
		txn_owner_hist_free(*out);
		*out = NULL;
	}
	return err;
}

static void ev_sizes_clear(struct fs *fs)
{
	struct evsize *x, *tmp;

	HASH_ITER(hh, fs->ev_sizes, x, tmp) {
		HASH_DEL(fs->ev_sizes, x);
		free(x->key);
		free(x);
	}
	fs->n_ev_sizes = 0;
}

static void ev_size_key(char *key, size_t n, int64_t since, const char *filter)
{
	snprintf(key, n, "%" PRId64 "|%s", since, filter);
}

/* A reader reached the end of a stream that starts at horizon (a retention's prune moves
 * its start): size bytes as of commit last_ts. */
static void ev_size_learn(struct fs *fs, int64_t since, const char *filter, int64_t last_ts,
			  size_t size, int64_t horizon)
{
	char key[EV_FILTER_MAX + 32];
	struct evsize *e = NULL;

	if (horizon != txn_engine_horizon(fs->eng))
		return; /* pruned meanwhile: the reader's bytes are not the stream's now */
	ev_size_key(key, sizeof(key), since, filter);
	pthread_mutex_lock(&fs->ev_lock);
	HASH_FIND_STR(fs->ev_sizes, key, e);
	if (e && e->horizon != horizon) {
		e->last_ts = -1;
		e->size = 0;
	}
	if (!e) {
		if (fs->n_ev_sizes >= EV_SIZES_MAX)
			ev_sizes_clear(fs);
		e = calloc(1, sizeof(*e));
		if (e && !(e->key = strdup(key))) {
			free(e);
			e = NULL;
		}
		if (e) {
			HASH_ADD_KEYPTR(hh, fs->ev_sizes, e->key, strlen(e->key), e);
			if (!HASH_ADDED(hh, e)) {
				free(e->key);
				free(e);
				e = NULL;
			} else {
				fs->n_ev_sizes++;
				e->last_ts = -1;
			}
		}
	}
	if (e && e->last_ts < last_ts) {
		e->last_ts = last_ts;
		e->size = size;
		e->horizon = horizon;
	}
	pthread_mutex_unlock(&fs->ev_lock);
}

/*
 * The size of an event stream for stat: 0 until a reader has read it to its end (like a
 * file of /proc: rendering a whole stream to learn its size is what a stat must not
 * do), then what it had, plus what was committed since, counted a page at a time.
 */
static int events_size(struct fs *fs, const struct ev_path *ep, size_t *out)
{
	char key[sizeof(ep->filter) + 32];
	struct evsize *e = NULL;
	int err = 0;

	*out = 0;
	ev_size_key(key, sizeof(key), ep->since, ep->filter);
	pthread_mutex_lock(&fs->ev_lock);
	HASH_FIND_STR(fs->ev_sizes, key, e);
	if (e && e->horizon != txn_engine_horizon(fs->eng)) {
		/* A prune cut the stream's start: unknown again until a reader reads it. */
		HASH_DEL(fs->ev_sizes, e);
		fs->n_ev_sizes--;
		free(e->key);
		free(e);
		e = NULL;
	}
	if (e) {
		int64_t head = txn_engine_head(fs->eng);
		bool full = true;

		while (!err && full && e->last_ts < head) {
			struct strbuf buf = STRBUF_INIT;
			int64_t last = e->last_ts;

			err = events_render(fs, ep->filter, e->last_ts + 1, head, EV_PAGE, NULL,
					    &buf, &last, &full);
			if (!err) {
				e->size += buf.len;
				e->last_ts = full ? last : head;
			}
			strbuf_release(&buf);
		}
		*out = e->size;
	}
	pthread_mutex_unlock(&fs->ev_lock);
	return err;
}

/* "since/<ts>" at the start of a path: *p moves past it (and its slash). */
static int ev_parse_since(const char **p, const char *end, struct ev_path *out, bool *done)
{
	const char *slash;
	uint64_t ts;
	size_t n;

	*done = false;
	if (end - *p == 5) {
		out->kind = EV_SINCE;
		*done = true;
		return 0;
	}
	*p += 6;
	slash = memchr(*p, '/', (size_t)(end - *p));
	n = slash ? (size_t)(slash - *p) : (size_t)(end - *p);
	if (fs_parse_u64(*p, n, &ts))
		return -EINVAL;
	out->since = ts ? (int64_t)ts : 1;
	if (!slash) {
		*done = true;
		return 0;
	}
	*p = slash + 1;
	return 0;
}

/* Is every component of p..end a valid name? */
static bool ev_names_ok(const char *p, const char *end)
{
	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *e = slash ? slash : end;

		if (txn_check_name(p, (size_t)(e - p)))
			return false;
		p = slash ? slash + 1 : end;
	}
	return true;
}

/* "<ns>", "<ns>/<agent>.jsonl", "<ns>/<agent>[/<p>...]" or "<ns>/<agent>/<p>...jsonl"
 * from p to end (after "since/<ts>/" and ".ns/"). */
static int ev_parse_ns(const char *p, const char *end, struct ev_path *out)
{
	size_t n = (size_t)(end - p);
	const char *slash = memchr(p, '/', n), *agent_end;
	bool file;

	if (!slash) {
		if (txn_check_name(p, n))
			return -ENOENT; /* a namespace */
		out->kind = EV_NS;
		out->ns = p;
		out->nslen = n;
		return 0;
	}
	agent_end = memchr(slash + 1, '/', (size_t)(end - slash - 1));
	file = end - slash - 1 > 6 && memcmp(end - 6, ".jsonl", 6) == 0 &&
	       (!agent_end || end - agent_end - 1 > 6);
	n = (size_t)(end - p) - (file ? 6 : 0);
	if (!ev_names_ok(p, p + n))
		return -ENOENT;
	/* The key part (after "ns/agent/") of a prefix is at most a key long. */
	if (agent_end && (size_t)(p + n - agent_end - 1) > TXN_KEY_MAX)
		return -ENAMETOOLONG;
	memcpy(out->filter, p, n);
	out->filter[n] = '\0';
	out->kind = file ? EV_FILE : EV_PREFIX;
	out->type = file ? TXN_FILE : TXN_DIR;
	return 0;
}

static int ev_parse(const char *path, size_t len, struct ev_path *out)
{
	const char *p = path, *end = path + len;
	size_t n;

	memset(out, 0, sizeof(*out));
	out->since = 1;
	out->type = TXN_DIR;
	out->kind = EV_TOP;
	if (len >= 5 && !memcmp(p, "since", 5) && (len == 5 || p[5] == '/')) {
		bool done;
		int err = ev_parse_since(&p, end, out, &done);

		if (err || done)
			return err;
	}
	if (p == end)
		return 0;
	n = (size_t)(end - p);
	if (n == 9 && !memcmp(p, "all.jsonl", 9)) {
		out->kind = EV_FILE;
		out->type = TXN_FILE;
		return 0;
	}
	if (n >= 3 && !memcmp(p, ".ns", 3) && (n == 3 || p[3] == '/')) {
		if (n <= 4) {
			out->kind = EV_NSES;
			return n == 3 ? 0 : -ENOENT;
		}
		p += 4;
	}
	return ev_parse_ns(p, end, out);
}

/* ---- the area's operations ---------------------------------------------------------- */

static int ev_lookup(struct fs *fs, const struct iref *p, const char *name, struct iref *out)
{
	struct ev_path ep;
	size_t len;
	char *path = fs_child_path(p, name, &len);
	int err;

	if (!path)
		return -ENOMEM;
	err = ev_parse(path, len, &ep);
	if (err) {
		free(path);
		return err;
	}
	fs_iref_take(out, IK_EV, p->txn_id, ep.type, path, len);
	return 0;
}

static int ev_stat(struct fs *fs, const struct iref *r, struct stat *st)
{
	struct ev_path ep;
	size_t size;
	int err = ev_parse(r->path, r->len, &ep);

	if (err)
		return err;
	if (ep.type == TXN_DIR) {
		fs_fill_attr(fs, st, r->ino, TXN_DIR, 0, 0, 0555);
		return 0;
	}
	err = events_size(fs, &ep, &size);
	if (err)
		return err;
	fs_fill_attr(fs, st, r->ino, TXN_FILE, size, 0, 0444);
	return 0;
}

static void ev_owner(struct fs *fs, const struct iref *r, struct stat *st)
{
	struct ev_path ep;

	if (!S_ISREG(st->st_mode) || ev_parse(r->path, r->len, &ep))
		return;
	if (!ep.filter[0]) {
		/* Every agent's ops: for the daemon's user (and root) only. */
		st->st_mode = (st->st_mode & S_IFMT) | 0400;
		return;
	}
	fs_owner_of_agent(fs, ep.filter, ev_agent_len(ep.filter), 0444, st);
}

/* ---- a handle's window on its stream ------------------------------------------------ */

/* Remember that the stream continues after commit ts at byte off (at most EV_MARKS_MAX
 * marks: when full, every other one goes and marks are made half as often). */
static void ev_mark_add(struct handle *h, size_t off, int64_t ts)
{
	size_t gap = EV_MARK_GAP;

	if (h->ev_nmarks) {
		/* The gap now in use: twice as wide for each halving so far. */
		gap = h->ev_marks[0].off;
		if (off < h->ev_marks[h->ev_nmarks - 1].off + gap)
			return;
	} else if (off < gap) {
		return;
	}
	if (h->ev_nmarks == EV_MARKS_MAX) {
		/* Keep every second mark: the first one kept is about twice the old gap in,
		 * and tells the new gap. */
		for (size_t i = 0; i < EV_MARKS_MAX / 2; i++)
			h->ev_marks[i] = h->ev_marks[2 * i + 1];
		h->ev_nmarks = EV_MARKS_MAX / 2;
		return;
	}
	if (ARRAY_GROW(h->ev_marks, h->ev_nmarks + 1, h->ev_capmarks))
		return; /* a mark is a shortcut only */
	h->ev_marks[h->ev_nmarks++] = (struct ev_mark){ off, ts };
}

/* A read before the window: start again from the last mark at or before off. */
static void ev_rewind(struct handle *h, size_t off)
{
	struct ev_mark m = { 0, h->ev_since - 1 };

	for (size_t i = 0; i < h->ev_nmarks && h->ev_marks[i].off <= off; i++)
		m = h->ev_marks[i];
	strbuf_setlen(&h->ev, 0);
	h->ev_off = m.off;
	h->ev_last_ts = m.ts;
}

/*
 * Make the window hold the bytes off..off+size of the stream, or as many as there are up
 * to the head, rendering a page at a time from where it ends (a read gets all it asks
 * for, as from a disk file, short only at the end).  What lies before off is dropped
 * first, so a window holds one read and at most a page and a line more.  The first
 * page of a handle is small, for a quick first byte.  h->lock held.
 */
static int ev_fill(struct fs *fs, struct handle *h, size_t off, size_t size)
{
	if (off < h->ev_off)
		ev_rewind(h, off);
	while (h->ev_off + h->ev.len < off + size) {
		int64_t head = txn_engine_head(fs->eng), last = h->ev_last_ts;
		size_t drop = off - h->ev_off < h->ev.len ? off - h->ev_off : h->ev.len;
		bool full;
		int err;

		if (h->ev_last_ts >= head)
			return 0; /* the end, for now */
		if (drop) {
			memmove(h->ev.buf, h->ev.buf + drop, h->ev.len - drop);
			strbuf_setlen(&h->ev, h->ev.len - drop);
			h->ev_off += drop;
		}
		struct render_filter rf = { ev_visible, h };

		err = events_render(fs, h->ev_filter, h->ev_last_ts + 1, head,
				    h->ev_off ? EV_PAGE : EV_FIRST_PAGE, h->ev_hist ? &rf : NULL,
				    &h->ev, &last, &full);
		if (err)
			return err;
		h->ev_last_ts = full ? last : head;
		ev_mark_add(h, h->ev_off + h->ev.len, h->ev_last_ts);
		if (!full && !h->ev_hist) /* the whole stream as of head: stat may tell it */
			ev_size_learn(fs, h->ev_since, h->ev_filter, head, h->ev_off + h->ev.len,
				      h->ev_horizon);
	}
	return 0;
}

static int ev_open(struct fs *fs, fuse_req_t req, const struct iref *r,
                   struct fuse_file_info *fi)
{
	struct ev_path ep;
	struct handle *h;
	int err = ev_parse(r->path, r->len, &ep);

	if (!err && ep.type != TXN_FILE)
		err = -EISDIR;
	if (err)
		return err;
	h = fs_handle_new(fs, H_EVENTS, r);
	if (!h)
		return -ENOMEM;
	err = ev_hist_for(fs, req, ep.filter, &h->ev_hist);
	if (err) {
		fs_handle_free(h);
		return err;
	}
	if (h->ev_hist)
		fs_caller_of(req, &h->ev_caller);
	/* Nothing is rendered yet: the first read renders its first page. */
	h->ev_filter = strdup(ep.filter);
	if (!h->ev_filter) {
		fs_handle_free(h);
		return -ENOMEM;
	}
	h->ev_since = ep.since;
	h->ev_last_ts = ep.since - 1;
	h->ev_horizon = txn_engine_horizon(fs->eng);
	h->follow = r->txn_id == 1;
	fi->direct_io = 1;
	fi->noflush = 1;
	fi->nonseekable = 0;
	fi->fh = h->id;
	return 0;
}

/* Every namespace that ever held keys; at the top of a stream set (top), not those its
 * own names shadow ("all.jsonl", and "since" at the very top), which .ns/ reaches. */
static int ev_list_namespaces(struct fs *fs, struct handle *h, bool top, bool very_top)
{
	struct dirent_entry *d = NULL;
	size_t n = 0;
	int err = txn_history_names(fs->eng, "", 0, &d, &n);

	for (size_t i = 0; i < n && !err; i++) {
		if (top && (!strcmp(d[i].name, "all.jsonl") ||
			    (very_top && !strcmp(d[i].name, "since"))))
			continue;
		err = fs_dir_add(h, d[i].name, TXN_DIR);
	}
	if (!err || n)
		dirents_free(d, n);
	return err;
}

/* The files of a namespace: "<agent>.jsonl". */
static int ev_list_agents(struct fs *fs, struct handle *h, const char *ns, size_t nslen)
{
	struct dirent_entry *d = NULL;
	size_t n = 0;
	int err = txn_history_names(fs->eng, ns, nslen, &d, &n);

	for (size_t i = 0; i < n && !err; i++) {
		char name[TXN_NAME_MAX + 8];

		snprintf(name, sizeof(name), "%s.jsonl", d[i].name);
		err = fs_dir_add(h, name, TXN_FILE);
	}
	if (!err || n)
		dirents_free(d, n);
	return err;
}

static int ev_list(struct fs *fs, const struct iref *r, struct handle *h)
{
	struct ev_path ep;
	int err = ev_parse(r->path, r->len, &ep);

	if (err)
		return err;
	switch (ep.kind) {
	case EV_TOP:
		if (r->len == 0)
			err = fs_dir_add(h, "since", TXN_DIR);
		if (!err)
			err = fs_dir_add(h, ".ns", TXN_DIR);
		if (!err)
			err = fs_dir_add(h, "all.jsonl", TXN_FILE);
		return err ? err : ev_list_namespaces(fs, h, true, r->len == 0);
	case EV_NSES:
		return ev_list_namespaces(fs, h, false, false);
	case EV_NS:
		return ev_list_agents(fs, h, ep.ns, ep.nslen);
	case EV_PREFIX: /* every key prefix is there by name */
	case EV_SINCE: /* every commit_ts is there by name */
	default:
		return 0;
	}
}

const struct fs_area_ops fs_ev_ops = {
	.slow = true,
	.read_only = true,
	.lookup = ev_lookup,
	.stat = ev_stat,
	.owner = ev_owner,
	.value = fs_file_content,
	.open = ev_open,
	.list = ev_list,
};

/* ---- reads, parked reads, poll ------------------------------------------------------- */

/* fstat of an open stream: at least what the handle has seen of it (stat by path, which
 * the kernel sends for fstat too, tells the size once a reader reached the end). */
int fs_events_fstat(struct fs *fs, struct handle *h, struct stat *st)
{
	(void)fs;
	pthread_mutex_lock(&h->lock);
	if (h->ev_hist || (off_t)(h->ev_off + h->ev.len) > st->st_size)
		st->st_size = (off_t)(h->ev_off + h->ev.len); /* a filtered stream: its own */
	pthread_mutex_unlock(&h->lock);
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
	size_t o = (size_t)off;
	char *copy;

	*n = 0;
	if (o < h->ev_off || o >= h->ev_off + h->ev.len)
		return NULL;
	o -= h->ev_off;
	*n = h->ev.len - o < size ? h->ev.len - o : size;
	copy = malloc(*n);
	if (!copy) {
		*n = 0;
		return NULL;
	}
	memcpy(copy, h->ev.buf + o, *n);
	if ((size_t)off + *n > h->ev_pos)
		h->ev_pos = (size_t)off + *n;
	return copy;
}

void fs_events_read(fuse_req_t req, struct handle *h, off_t off, size_t size)
{
	struct fs *fs = fs_of(req);
	struct parked *p;
	int err = 0;

	char *data = NULL;
	size_t n = 0;
	bool follow;

	pthread_mutex_lock(&h->lock);
	err = ev_fill(fs, h, (size_t)off, size);
	if (!err)
		data = events_take(h, off, size, &n);
	follow = h->follow;
	pthread_mutex_unlock(&h->lock);
	if (err || data || !follow) {
		if (err)
			fs_reply_err(req, err);
		else
			fuse_reply_buf(req, data, n); /* n == 0: .events ends here for now */
		free(data);
		return;
	}

	/* .follow at the end: wait for the next commit without holding a thread. */
	p = calloc(1, sizeof(*p));
	if (!p) {
		fs_reply_err(req, -ENOMEM);
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

/* Answer a parked read if it was interrupted or has data now: true when answered. */
static bool parked_answer(struct fs *fs, struct parked *p)
{
	char *data = NULL;
	size_t n = 0;
	bool done;

	pthread_mutex_lock(&fs->nq_lock);
	done = p->interrupted;
	pthread_mutex_unlock(&fs->nq_lock);
	if (done) {
		fs_reply_err(p->req, -EINTR); /* never a partial line */
		free(p);
		return true;
	}
	pthread_mutex_lock(&p->h->lock);
	if (ev_fill(fs, p->h, (size_t)p->off, p->size) == 0)
		data = events_take(p->h, p->off, p->size, &n);
	pthread_mutex_unlock(&p->h->lock);
	if (!data)
		return false;
	fuse_reply_buf(p->req, data, n);
	free(data);
	free(p);
	return true;
}

/* Notifier: answer parked reads that have data or were interrupted, and wake pollers. */
void fs_events_wake(struct fs *fs)
{
	struct parked *list, *keep = NULL, **tail = &keep;
	struct handle *h, *next;

	pthread_mutex_lock(&fs->nq_lock);
	list = fs->parked;
	fs->parked = NULL;
	pthread_mutex_unlock(&fs->nq_lock);

	for (struct parked *p = list, *pn; p; p = pn) {
		pn = p->next;
		if (parked_answer(fs, p))
			continue;
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

void fs_events_poll(fuse_req_t req, struct handle *h, struct fuse_pollhandle *ph)
{
	struct fs *fs = fs_of(req);
	bool ready = true;

	if (h && h->kind == H_EVENTS && h->follow) {
		pthread_mutex_lock(&h->lock);
		ready = ev_fill(fs, h, h->ev_pos, 1) != 0 || h->ev_off + h->ev.len > h->ev_pos;
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

/* An events handle is closing: off the pollers' list before it is freed. */
void fs_events_release(struct fs *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->nq_lock);
	for (struct handle **pp = &fs->polled; *pp; pp = &(*pp)->poll_next) {
		if (*pp == h) {
			*pp = h->poll_next;
			break;
		}
	}
	pthread_mutex_unlock(&fs->nq_lock);
}

/* fs_handle_free(): what an events handle owns. */
/* stat of a stream by a caller other than root: its size only to one who may read all
 * of it (nothing to one the mode shown keeps out, or whose reads would be filtered). */
void fs_events_stat_for(struct fs *fs, fuse_req_t req, const struct iref *r, struct stat *st)
{
	struct txn_owner_hist *hist = NULL;
	struct ev_path ep;
	struct fs_caller c;
	bool shown;

	if (fuse_req_ctx(req)->uid == 0 || !S_ISREG(st->st_mode) || ev_parse(r->path, r->len, &ep))
		return;
	fs_caller_of(req, &c);
	shown = txn_caller_may(&c.c, st->st_uid, st->st_gid, st->st_mode, 4) &&
		ev_hist_for(fs, req, ep.filter, &hist) == 0 && !hist;
	txn_owner_hist_free(hist);
	if (!shown) {
		st->st_size = 0;
		st->st_blocks = 0;
	}
}

void fs_events_drop(struct handle *h)
{
	free(h->ev_filter);
	txn_owner_hist_free(h->ev_hist);
	strbuf_release(&h->ev);
	free(h->ev_marks);
	if (h->ph)
		fuse_pollhandle_destroy(h->ph);
}

/* fs_free(), after the notifier stopped: parked reads get EINTR, the size cache goes. */
void fs_events_free(struct fs *fs)
{
	for (struct parked *p = fs->parked, *pn; p; p = pn) {
		pn = p->next;
		fs_reply_err(p->req, -EINTR);
		free(p);
	}
	fs->parked = NULL;
	ev_sizes_clear(fs);
}
