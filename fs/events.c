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

/* What a path below .events or .follow names. */
struct ev_path {
	enum txn_type type;
	int64_t since;                        /* first commit_ts of the stream */
	char filter[2 * TXN_NAME_MAX + 2];    /* "ns/agent", or "" for all.jsonl */
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

#define EV_SIZES_MAX 4096

/* Append the commits from_ts..to_ts that filter selects to out. */
static int events_render(struct fs *fs, const char *filter, int64_t from_ts, int64_t to_ts,
			 struct strbuf *out)
{
	int64_t last = 0;

	return render_events(fs->eng, filter, strlen(filter), from_ts, to_ts, out, &last);
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

/* The cached size of the stream key.  ev_lock held. */
static int ev_size_entry(struct fs *fs, const char *key, int64_t since, struct evsize **out)
{
	struct evsize *e = NULL;

	HASH_FIND_STR(fs->ev_sizes, key, e);
	if (!e) {
		if (fs->n_ev_sizes >= EV_SIZES_MAX)
			ev_sizes_clear(fs);
		e = calloc(1, sizeof(*e));
		if (!e || !(e->key = strdup(key))) {
			free(e);
			return -ENOMEM;
		}
		e->last_ts = since - 1;
		HASH_ADD_KEYPTR(hh, fs->ev_sizes, e->key, strlen(e->key), e);
		if (!HASH_ADDED(hh, e)) {
			free(e->key);
			free(e);
			return -ENOMEM;
		}
		fs->n_ev_sizes++;
	}
	*out = e;
	return 0;
}

/* The size of an event stream now: what it had, plus what was committed since. */
static int events_size(struct fs *fs, const struct ev_path *ep, size_t *out)
{
	char key[sizeof(ep->filter) + 32];
	struct evsize *e = NULL;
	int err;

	snprintf(key, sizeof(key), "%" PRId64 "|%s", ep->since, ep->filter);
	pthread_mutex_lock(&fs->ev_lock);
	err = ev_size_entry(fs, key, ep->since, &e);
	if (err) {
		pthread_mutex_unlock(&fs->ev_lock);
		return err;
	}
	int64_t head = txn_engine_head(fs->eng);

	if (head > e->last_ts) {
		struct strbuf buf = STRBUF_INIT;

		err = events_render(fs, ep->filter, e->last_ts + 1, head, &buf);
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

/* "since/<ts>" at the start of a path: *p moves past it (and its slash). */
static int ev_parse_since(const char **p, const char *end, struct ev_path *out, bool *done)
{
	const char *slash;
	uint64_t ts;
	size_t n;

	*done = false;
	if (end - *p == 5) {
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

/*
 * "" | "all.jsonl" | "<ns>" | "<ns>/<agent>.jsonl", each also below "since/<ts>/";
 * "since" itself.  Namespaces and agents are implicit, as in the live tree.
 */
static int ev_parse(const char *path, size_t len, struct ev_path *out)
{
	const char *p = path, *end = path + len, *slash;
	size_t n;

	memset(out, 0, sizeof(*out));
	out->since = 1;
	out->type = TXN_DIR;
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
	fs_owner_of_agent(fs, ep.filter, strlen(ep.filter), 0444, st);
}

/* Render what was committed since the handle last looked.  h->lock held. */
int fs_events_refresh(struct fs *fs, struct handle *h)
{
	int64_t head = txn_engine_head(fs->eng);
	int err;

	if (head <= h->ev_last_ts)
		return 0;
	err = events_render(fs, h->ev_filter, h->ev_last_ts + 1, head, &h->ev);
	if (!err)
		h->ev_last_ts = head;
	return err;
}

static int ev_open(struct fs *fs, const struct iref *r, struct fuse_file_info *fi)
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
	memcpy(h->ev_filter, ep.filter, sizeof(h->ev_filter));
	h->ev_last_ts = ep.since - 1;
	h->follow = r->txn_id == 1;
	err = fs_events_refresh(fs, h); /* the stream as of the head at open */
	if (err) {
		fs_handle_free(h);
		return err;
	}
	fi->direct_io = 1;
	fi->noflush = 1;
	fi->nonseekable = 0;
	fi->fh = (uintptr_t)h;
	return 0;
}

/* The files of a namespace ("<agent>.jsonl"), or at the top of a stream. */
static int ev_list_streams(struct fs *fs, struct handle *h, const char *ns, size_t nslen)
{
	struct dirent_entry *d = NULL;
	size_t n = 0;
	int err;

	if (nslen == 0) {
		err = fs_dir_add(h, "all.jsonl", TXN_FILE);
		if (!err)
			err = txn_history_names(fs->eng, "", 0, &d, &n);
		if (!err)
			err = fs_dir_add_all(h, d, n);
		return err;
	}
	err = txn_history_names(fs->eng, ns, nslen, &d, &n);
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
	const char *ns = r->path;
	size_t nslen = r->len;
	int err = ev_parse(r->path, r->len, &ep);

	if (err)
		return err;
	if (r->len == 0)
		err = fs_dir_add(h, "since", TXN_DIR);
	if (err || (r->len == 5 && !memcmp(r->path, "since", 5)))
		return err; /* every commit_ts is there by name */
	/* The namespace part of the path, if any. */
	if (nslen >= 6 && !memcmp(ns, "since/", 6)) {
		const char *sl = memchr(ns + 6, '/', nslen - 6);

		ns = sl ? sl + 1 : ns + nslen;
		nslen = sl ? r->len - (size_t)(ns - r->path) : 0;
	}
	return ev_list_streams(fs, h, ns, nslen);
}

const struct fs_area_ops fs_ev_ops = {
	.read_only = true,
	.lookup = ev_lookup,
	.stat = ev_stat,
	.owner = ev_owner,
	.value = fs_file_content,
	.open = ev_open,
	.list = ev_list,
};

/* ---- reads, parked reads, poll ------------------------------------------------------- */

/* fstat of an open stream: its size grows with commits (tail -f polls it). */
int fs_events_fstat(struct fs *fs, struct handle *h, struct stat *st)
{
	int err;

	pthread_mutex_lock(&h->lock);
	err = fs_events_refresh(fs, h);
	st->st_size = (off_t)h->ev.len;
	pthread_mutex_unlock(&h->lock);
	return err;
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

void fs_events_read(fuse_req_t req, struct handle *h, off_t off, size_t size)
{
	struct fs *fs = fs_of(req);
	struct parked *p;
	int err = 0;

	char *data = NULL;
	size_t n = 0;
	bool follow;

	pthread_mutex_lock(&h->lock);
	if ((size_t)off + size > h->ev.len)
		err = fs_events_refresh(fs, h);
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
	if (fs_events_refresh(fs, p->h) == 0)
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
		ready = fs_events_refresh(fs, h) != 0 || h->ev.len > h->ev_pos;
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
void fs_events_drop(struct handle *h)
{
	strbuf_release(&h->ev);
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
