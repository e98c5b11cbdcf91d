/* SPDX-License-Identifier: MIT */
/*
 * worker_handles.c - the file handles the kernel holds outlive the worker (fs layer):
 * their journal in the memory the supervisor shares, and taking them over.
 *
 * An open's handle is journaled (its node, flags and caller; a create's parent and
 * name) before the kernel learns it, and so is every write and truncation through a
 * handle that writes a live key (it holds those bytes until a flush commits them; a
 * flush that succeeded makes its writes the store's).  The next worker opens every
 * handle again through its own code, from made-up requests with the original caller's
 * ids, makes the kept writes again on it, and gives it the old number: the kernel's
 * next read, write or close of that descriptor goes on as if nothing happened.  A
 * handle whose writes cannot be made again (an append, which a resent write would
 * repeat; an fallocate; more than WLOG_MAX bytes) is lost: its next call gets EIO.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "fs_i.h"
#include "log.h"
#include "supervise.h"
#include "worker_i.h"

static void hrec_free(struct hrec *r)
{
	if (r) {
		free(r->name);
		free(r->wlog);
		free(r);
	}
}

/* ---- the handle journal ------------------------------------------------------------ */

/* The bytes of r's JH_OPEN record in buf (PATH_MAX + sizeof(struct hopen)). */
static size_t open_bytes(const struct hrec *r, unsigned char *buf)
{
	memcpy(buf, &r->o, sizeof(r->o));
	if (r->o.namelen)
		memcpy(buf + sizeof(r->o), r->name, r->o.namelen);
	return sizeof(r->o) + r->o.namelen;
}

typedef int (*jput_fn)(struct fs_journal *j, unsigned kind, uint64_t a, uint64_t b,
		       const void *bytes, size_t n);

/* Every record of r: its open, then its writes (or that they cannot be made again). */
static int put_handle(struct fs_journal *j, jput_fn put, const struct hrec *r)
{
	unsigned char buf[sizeof(struct hopen) + PATH_MAX];
	int err = put(j, JH_OPEN, r->id, r->nodeid, buf, open_bytes(r, buf));

	if (!err && r->clean)
		err = put(j, JH_CLEAN, r->id, 0, NULL, 0);
	if (!err && r->noreplay)
		err = put(j, JH_NOREPLAY, r->id, 0, NULL, 0);
	for (size_t off = 0; !err && !r->noreplay && off < r->wlen;) {
		struct wentry e;

		memcpy(&e, r->wlog + off, sizeof(e));
		err = put(j, e.kind, r->id, e.off, r->wlog + off + sizeof(e), e.len);
		off += sizeof(e) + e.len;
	}
	return err;
}

static void hj_compact_locked(struct fs_worker *wk)
{
	struct hrec *r, *tmp;

	fs_jcompact_begin(&wk->hj);
	HASH_ITER(hh, wk->open, r, tmp) {
		if (put_handle(&wk->hj, fs_jcompact_put, r)) {
			fs_jlose(&wk->hj, "file handle");
			return;
		}
	}
	fs_jcompact_end(&wk->hj);
}

/* Append a record (lock held); compact when the journal is full or big. */
static void hj_put_locked(struct fs_worker *wk, unsigned kind, uint64_t a, uint64_t b,
			  const void *bytes, size_t n)
{
	int err = fs_jput(&wk->hj, kind, a, b, bytes, n);

	if (err == -ENOSPC || fs_jwants_compact(&wk->hj))
		hj_compact_locked(wk); /* the state in memory has the record already */
	else if (err)
		fs_jlose(&wk->hj, "file handle");
}

/* An open answered fh: journal it (before the kernel has the answer).  lock held. */
static void hj_opened_locked(struct fs_worker *wk, struct hrec *r, uint64_t fh)
{
	uint64_t high = atomic_load(&wk->sh->fh_high);

	r->id = fh;
	if (wk->fs && (r->o.flags & O_ACCMODE) != O_RDONLY) {
		enum ikind k = fs_ikind(wk->fs, r->nodeid);

		r->view = k == IK_TXPATH || k == IK_TXROOT;
	}
	HASH_ADD(hh, wk->open, id, sizeof(r->id), r);
	if (!HASH_ADDED(hh, r)) {
		hrec_free(r);
		fs_jlose(&wk->hj, "file handle");
		return;
	}
	while (fh > high && !atomic_compare_exchange_weak(&wk->sh->fh_high, &high, fh))
		;
	/* a record cut short by a full journal is rewritten with the rest */
	if (put_handle(&wk->hj, fs_jput, r) || fs_jwants_compact(&wk->hj))
		hj_compact_locked(wk);
}

void hj_released(struct fs_worker *wk, uint64_t fh)
{
	struct hrec *r = NULL;

	pthread_mutex_lock(&wk->lock);
	HASH_FIND(hh, wk->open, &fh, sizeof(fh), r);
	if (r) {
		HASH_DELETE(hh, wk->open, r);
		hrec_free(r);
		/* a release is a record too: the compaction drops it */
		hj_put_locked(wk, JH_OPEN, fh, 0, NULL, 0);
	}
	pthread_mutex_unlock(&wk->lock);
}

/*
 * A request that changes what a write handle holds (a write, a truncation) and that the
 * worker keeps in memory until the handle commits: kept, and journaled before it runs,
 * so that the next worker can make it again on a handle it opens again.  A write the
 * kernel resends after a death runs twice: harmless at its offset, not for an append
 * (such handles are not made again).
 */
void hj_wrote(struct fs_worker *wk, const struct fuse_in_header *h, size_t n, uint64_t fh)
{
	const char *body = (const char *)(h + 1);
	size_t blen = n - sizeof(*h);
	struct wentry e = { 0 };
	const void *data = NULL;
	struct hrec *r = NULL;

	if (h->opcode == FUSE_WRITE) {
		struct fuse_write_in in;

		if (blen < sizeof(in))
			return;
		memcpy(&in, body, sizeof(in));
		e = (struct wentry){ JH_WRITE, in.size, in.offset };
		data = body + sizeof(in);
		if (in.size > blen - sizeof(in))
			return;
	} else if (h->opcode == FUSE_SETATTR) {
		struct fuse_setattr_in in;

		if (blen < sizeof(in))
			return;
		memcpy(&in, body, sizeof(in));
		if (!(in.valid & FATTR_SIZE))
			return;
		e = (struct wentry){ JH_TRUNC, 0, in.size };
	} else if (h->opcode != FUSE_FALLOCATE) {
		return;
	}
	pthread_mutex_lock(&wk->lock);
	HASH_FIND(hh, wk->open, &fh, sizeof(fh), r);
	if (!r || r->noreplay || r->view || (r->o.flags & O_ACCMODE) == O_RDONLY) {
		pthread_mutex_unlock(&wk->lock);
		return;
	}
	if (!e.kind || (r->o.flags & O_APPEND) || r->wlen + sizeof(e) + e.len > WLOG_MAX ||
	    ARRAY_GROW(r->wlog, r->wlen + sizeof(e) + e.len, r->wcap)) {
		r->noreplay = true;
		free(r->wlog);
		r->wlog = NULL;
		r->wlen = r->wcap = 0;
		hj_put_locked(wk, JH_NOREPLAY, fh, 0, NULL, 0);
	} else {
		memcpy(r->wlog + r->wlen, &e, sizeof(e));
		if (e.len)
			memcpy(r->wlog + r->wlen + sizeof(e), data, e.len);
		r->wlen += sizeof(e) + e.len;
		hj_put_locked(wk, e.kind, fh, e.off, data, e.len);
	}
	pthread_mutex_unlock(&wk->lock);
}

/* What handle fh held is in the store (its flush committed, or the record of a resent
 * flush says so): the writes before are not made again.  lock held. */
void hj_clean_locked(struct fs_worker *wk, uint64_t fh)
{
	struct hrec *r = NULL;

	HASH_FIND(hh, wk->open, &fh, sizeof(fh), r);
	if (!r || (!r->wlen && r->clean))
		return;
	r->wlen = 0;
	r->clean = true;
	r->noreplay = false;
	hj_put_locked(wk, JH_CLEAN, fh, 0, NULL, 0);
}

/* A FLUSH or FSYNC of a handle with writes: if it succeeds, it committed them. */
void hj_flushing(struct fs_worker *wk, const struct fuse_in_header *h, uint64_t fh)
{
	struct hrec *r = NULL;
	struct flushing *f;

	if (h->opcode != FUSE_FLUSH && h->opcode != FUSE_FSYNC)
		return;
	pthread_mutex_lock(&wk->lock);
	HASH_FIND(hh, wk->open, &fh, sizeof(fh), r);
	if (r && (r->wlen || r->noreplay) && (f = calloc(1, sizeof(*f)))) {
		f->id = h->unique;
		f->fh = fh;
		HASH_ADD(hh, wk->flushing, id, sizeof(f->id), f);
		if (HASH_ADDED(hh, f))
			atomic_fetch_add(&wk->n_flushing, 1);
		else
			free(f);
	}
	pthread_mutex_unlock(&wk->lock);
}

/* The answer to request id leaves: a flush that succeeded committed its handle. */
void hj_flushed(struct fs_worker *wk, uint64_t id, int error)
{
	struct flushing *f = NULL;

	pthread_mutex_lock(&wk->lock);
	HASH_FIND(hh, wk->flushing, &id, sizeof(id), f);
	if (f) {
		HASH_DELETE(hh, wk->flushing, f);
		atomic_fetch_sub(&wk->n_flushing, 1);
		if (!error)
			hj_clean_locked(wk, f->fh);
		free(f);
	}
	pthread_mutex_unlock(&wk->lock);
}


struct pending_open {
	bool set;
	uint64_t unique, nodeid;
	struct hopen o;
	char name[NAME_MAX + 1];
};

static __thread struct pending_open slot;

static struct hrec *hrec_of(const struct pending_open *p)
{
	struct hrec *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	*r = (struct hrec){ .id = p->unique, .nodeid = p->nodeid, .o = p->o };
	if (p->o.namelen && !(r->name = strndup(p->name, p->o.namelen))) {
		free(r);
		return NULL;
	}
	return r;
}

/* The slot's open goes to the table of opens on their way. */
static void slot_to_table(struct fs_worker *wk)
{
	struct hrec *r;

	if (!slot.set)
		return;
	slot.set = false;
	if (!(r = hrec_of(&slot))) {
		fs_jlose(&wk->hj, "file handle");
		return;
	}
	pthread_mutex_lock(&wk->lock);
	HASH_ADD(hh, wk->opening, id, sizeof(r->id), r);
	if (!HASH_ADDED(hh, r)) {
		hrec_free(r);
		fs_jlose(&wk->hj, "file handle");
	} else {
		atomic_fetch_add(&wk->n_opening, 1);
	}
	pthread_mutex_unlock(&wk->lock);
}

void fs_worker_handoff(void)
{
	if (the_worker)
		slot_to_table(the_worker);
}

void note_open(struct fs_worker *wk, const struct fuse_in_header *h, size_t n)
{
	uint32_t flags = 0;

	if (n >= sizeof(*h) + sizeof(uint32_t))
		memcpy(&flags, h + 1, sizeof(flags)); /* fuse_open_in and fuse_create_in */
	slot_to_table(wk);
	slot.unique = h->unique;
	slot.nodeid = h->nodeid;
	slot.o = (struct hopen){ h->opcode, flags, h->uid, h->gid, h->pid, 0, 0, 0, 0, 0 };
	if (h->opcode == FUSE_CREATE && n > sizeof(*h) + sizeof(struct fuse_create_in)) {
		struct fuse_create_in in;
		const char *name = (const char *)(h + 1) + sizeof(in);
		size_t max = n - sizeof(*h) - sizeof(in);

		memcpy(&in, h + 1, sizeof(in));
		slot.o.mode = in.mode;
		slot.o.umask = in.umask;
		slot.o.namelen = (uint32_t)strnlen(name, max < NAME_MAX ? max : NAME_MAX);
		memcpy(slot.name, name, slot.o.namelen);
	}
	slot.set = true;
}

/* The answer to an open: journal the handle it gives (lock held; r is consumed). */
static void opened_locked(struct fs_worker *wk, struct hrec *r, const struct fuse_out_header *oh,
			  const unsigned char *a, size_t n)
{
	if (r->o.opcode == FUSE_CREATE && oh->error == 0 &&
	    n >= sizeof(*oh) + sizeof(struct fuse_entry_out)) {
		struct fuse_entry_out eo;

		memcpy(&eo, a + sizeof(*oh), sizeof(eo));
		r->o.child = eo.nodeid;
	}
	if (oh->error == 0 && wk_answer_fh(r->o.opcode, a, n))
		hj_opened_locked(wk, r, wk_answer_fh(r->o.opcode, a, n));
	else
		hrec_free(r);
}


/* ---- taking over ------------------------------------------------------------------- */

/*
 * Run a request this worker made up (header and body in req, len bytes) through its own
 * session, as if the kernel had sent it, and wait for the answer: its error, and for an
 * open or a create the new handle in *fh.  Before the session serves (no pool yet), so
 * the answer comes on this thread.
 */
static int made_up(struct fs_worker *wk, void *req, size_t len, uint64_t *fh)
{
	struct fuse_in_header *h = req;
	struct fuse_buf fb = { .size = len, .mem = req };
	struct timespec until;
	int err = 0;

	h->len = (uint32_t)len;
	pthread_mutex_lock(&wk->mlock);
	h->unique = wk->m_id = MADE_UP | ((wk->m_id & ~MADE_UP) + 1);
	wk->m_opcode = h->opcode;
	wk->m_done = false;
	pthread_mutex_unlock(&wk->mlock);
	fuse_session_process_buf(wk->se, &fb);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&wk->mlock);
	while (!wk->m_done && !err)
		err = pthread_cond_timedwait(&wk->mcond, &wk->mlock, &until);
	if (wk->m_done) {
		err = wk->m_err;
		if (fh)
			*fh = wk->m_fh;
	} else {
		err = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&wk->mlock);
	return err;
}

/* Open r's node again (an OPEN, an OPENDIR, or a CREATE of r's name in r's parent) with
 * flags; the new handle in *fh. */
static int reopen(struct fs_worker *wk, const struct hrec *r, uint32_t flags, uint64_t *fh)
{
	unsigned char buf[sizeof(struct fuse_in_header) + sizeof(struct fuse_create_in) +
			  PATH_MAX + 1] = { 0 };
	struct fuse_in_header *h = (void *)buf;
	size_t len = sizeof(*h);

	*h = (struct fuse_in_header){ .opcode = r->o.opcode, .nodeid = r->nodeid,
				      .uid = r->o.uid, .gid = r->o.gid, .pid = r->o.pid };
	if (r->o.opcode == FUSE_CREATE) {
		struct fuse_create_in in = { .flags = flags, .mode = r->o.mode,
					     .umask = r->o.umask };

		memcpy(buf + len, &in, sizeof(in));
		len += sizeof(in);
		memcpy(buf + len, r->name, r->o.namelen);
		len += r->o.namelen + 1;
	} else {
		struct fuse_open_in in = { .flags = flags };

		memcpy(buf + len, &in, sizeof(in));
		len += sizeof(in);
	}
	return made_up(wk, buf, len, fh);
}

/* Make r's journaled writes again on the new handle fh. */
static int replay_writes(struct fs_worker *wk, const struct hrec *r, uint64_t fh)
{
	for (size_t off = 0; off < r->wlen;) {
		struct wentry e;
		struct fuse_in_header h = { .nodeid = r->nodeid, .uid = r->o.uid,
					    .gid = r->o.gid, .pid = r->o.pid };
		unsigned char *req;
		size_t len;
		int err;

		memcpy(&e, r->wlog + off, sizeof(e));
		if (r->o.opcode == FUSE_CREATE)
			h.nodeid = fs_handle_get(wk->fs, fh) ? fs_handle_get(wk->fs, fh)->ir.ino : 0;
		if (e.kind == JH_WRITE) {
			struct fuse_write_in in = { .fh = fh, .offset = e.off, .size = e.len };

			h.opcode = FUSE_WRITE;
			len = sizeof(h) + sizeof(in) + e.len;
			if (!(req = malloc(len)))
				return -ENOMEM;
			memcpy(req + sizeof(h), &in, sizeof(in));
			memcpy(req + sizeof(h) + sizeof(in), r->wlog + off + sizeof(e), e.len);
		} else {
			struct fuse_setattr_in in = { .valid = FATTR_SIZE | FATTR_FH, .fh = fh,
						      .size = e.off };

			h.opcode = FUSE_SETATTR;
			len = sizeof(h) + sizeof(in);
			if (!(req = malloc(len)))
				return -ENOMEM;
			memcpy(req + sizeof(h), &in, sizeof(in));
		}
		memcpy(req, &h, sizeof(h));
		err = made_up(wk, req, len, NULL);
		free(req);
		if (err)
			return err;
		off += sizeof(e) + e.len;
	}
	return 0;
}

struct takeover {
	struct fs_worker *wk;
	struct hrec *open; /* the journal's open handles, by fh */
};

static int collect(void *arg, const struct sup_rec *r, const void *bytes)
{
	struct takeover *t = arg;
	struct hrec *h = NULL;
	struct wentry e = { .kind = r->kind, .len = r->kind == JH_WRITE ? r->n : 0, .off = r->b };

	HASH_FIND(hh, t->open, &r->a, sizeof(r->a), h);
	if (r->kind == JH_CLEAN) {
		if (h) {
			h->wlen = 0;
			h->clean = true;
			h->noreplay = false;
		}
		return 0;
	}
	if (r->kind == JH_NOREPLAY || r->kind == JH_WRITE || r->kind == JH_TRUNC) {
		if (!h || h->noreplay)
			return 0;
		if (r->kind == JH_NOREPLAY ||
		    ARRAY_GROW(h->wlog, h->wlen + sizeof(e) + e.len, h->wcap)) {
			h->noreplay = true;
			return 0;
		}
		memcpy(h->wlog + h->wlen, &e, sizeof(e));
		if (e.len)
			memcpy(h->wlog + h->wlen + sizeof(e), bytes, e.len);
		h->wlen += sizeof(e) + e.len;
		return 0;
	}
	if (h) { /* a release, or an old record of the same number */
		HASH_DELETE(hh, t->open, h);
		hrec_free(h);
	}
	if (r->kind != JH_OPEN || r->n < sizeof(struct hopen))
		return 0;
	if (!(h = calloc(1, sizeof(*h))))
		return -ENOMEM;
	h->id = r->a;
	h->nodeid = r->b;
	memcpy(&h->o, bytes, sizeof(h->o));
	if (h->o.namelen > r->n - sizeof(h->o) || h->o.namelen >= PATH_MAX ||
	    (h->o.namelen && !(h->name = strndup((const char *)bytes + sizeof(h->o),
					       h->o.namelen)))) {
		int err = h->o.namelen >= PATH_MAX || h->o.namelen > r->n - sizeof(h->o) ? -EIO
											 : -ENOMEM;

		hrec_free(h);
		return err;
	}
	HASH_ADD(hh, t->open, id, sizeof(h->id), h);
	if (HASH_ADDED(hh, h))
		return 0;
	hrec_free(h);
	return -ENOMEM;
}

static void mark_lost(struct fs_worker *wk, uint64_t fh)
{
	struct lostfh *l = calloc(1, sizeof(*l));

	if (!l)
		return; /* then it is an unknown handle: EBADF, still no half value */
	l->fh = fh;
	HASH_ADD(hh, wk->lost, fh, sizeof(l->fh), l);
	if (!HASH_ADDED(hh, l))
		free(l);
}

/*
 * Take over one handle of the dead worker: open its node again with the new worker's
 * code and give the new handle the old number.  A handle for reading opens as it did.
 * One for writing in a transaction's view staged every write as it came: it opens on
 * the staged value (without O_TRUNC).  One for writing a live key held its bytes in
 * memory: it opens as it did (a create creates again) and its journaled writes are
 * made again, unless they cannot be (an append, an fallocate, too many bytes).
 */
static bool take_over_one(struct fs_worker *wk, struct hrec *h)
{
	uint32_t flags = h->o.flags & ~(uint32_t)O_EXCL;
	enum ikind k = fs_ikind(wk->fs, h->nodeid);
	bool view = k == IK_TXPATH || k == IK_TXROOT;
	uint64_t fh = 0;
	struct handle *nh;

	struct hrec o = *h;

	if (h->o.opcode == FUSE_CREATE && h->o.child)
		view = view || fs_ikind(wk->fs, h->o.child) == IK_TXPATH;
	if ((h->o.flags & O_ACCMODE) == O_RDONLY || view)
		flags &= ~(uint32_t)(O_CREAT | O_TRUNC);
	else if (h->noreplay)
		return false;
	else if (h->clean)
		flags &= ~(uint32_t)(O_CREAT | O_TRUNC); /* its value is in the store */
	/* a file made by a create that is there now (staged, or committed) opens by its
	 * node; one whose create died with the worker is created again */
	if (o.o.opcode == FUSE_CREATE && o.o.child && !(flags & O_CREAT)) {
		o.o.opcode = FUSE_OPEN;
		o.nodeid = o.o.child;
	}
	if (reopen(wk, &o, flags, &fh) || !fh || !(nh = fs_handle_get(wk->fs, fh)))
		return false;
	if ((h->o.flags & O_ACCMODE) != O_RDONLY && !view && replay_writes(wk, h, fh)) {
		struct { struct fuse_in_header h; struct fuse_release_in in; } rel = {
			.h = { .opcode = FUSE_RELEASE, .nodeid = nh->ir.ino },
			.in = { .fh = fh } };

		made_up(wk, &rel, sizeof(rel), NULL); /* the new handle goes */
		return false;
	}
	return fs_handle_adopt(wk->fs, h->id, nh) == 0;
}

/* Take over every handle the dead worker had open; the rest are lost. */
int take_over_handles(struct fs_worker *wk)
{
	struct takeover t = { .wk = wk };
	struct hrec *h, *tmp;
	unsigned kept = 0, lost = 0;
	int err = fs_jeach(&wk->hj, collect, &t);

	if (err) {
		log_err("cannot read the file handle journal: %s", strerror(-err));
		return err;
	}
	fs_handle_ids_start(wk->fs, atomic_load(&wk->sh->fh_high) + 1);
	HASH_ITER(hh, t.open, h, tmp) {
		HASH_DELETE(hh, t.open, h);
		if (take_over_one(wk, h)) {
			kept++;
			pthread_mutex_lock(&wk->lock);
			hj_opened_locked(wk, h, h->id);
			pthread_mutex_unlock(&wk->lock);
			continue;
		}
		lost++;
		mark_lost(wk, h->id);
		/* Its bytes never committed, but the kernel wrote them through its page
		 * cache of the live key: those pages go, so no reader sees them. */
		if ((h->o.flags & O_ACCMODE) != O_RDONLY && !h->view && wk->fs->se)
			fuse_lowlevel_notify_inval_inode(wk->fs->se,
							 h->o.opcode == FUSE_CREATE && h->o.child
								 ? h->o.child : h->nodeid, 0, 0);
		hrec_free(h);
	}
	/* The journal now holds what this worker holds. */
	pthread_mutex_lock(&wk->lock);
	hj_compact_locked(wk);
	pthread_mutex_unlock(&wk->lock);
	log_info("took over %u open file handles; %u could not be (their next call fails "
		 "with EIO)", kept, lost);
	return 0;
}

/* An answer leaves: if it answers an open this worker noted, journal its handle. */
void hj_answered(struct fs_worker *wk, const struct fuse_out_header *oh, const struct iovec *iov,
		 int count)
{
	unsigned char a[sizeof(*oh) + sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out)];
	struct hrec *r = NULL;
	size_t n;

	if (slot.set && slot.unique == oh->unique) {
		slot.set = false;
		n = wk_flatten(iov, count, a, sizeof(a));
		if (oh->error == 0 && wk_answer_fh(slot.o.opcode, a, n)) {
			if (!(r = hrec_of(&slot))) {
				fs_jlose(&wk->hj, "file handle");
			} else {
				pthread_mutex_lock(&wk->lock);
				opened_locked(wk, r, oh, a, n);
				pthread_mutex_unlock(&wk->lock);
			}
		}
	} else if (atomic_load_explicit(&wk->n_opening, memory_order_relaxed)) {
		pthread_mutex_lock(&wk->lock);
		HASH_FIND(hh, wk->opening, &oh->unique, sizeof(oh->unique), r);
		if (r) {
			HASH_DELETE(hh, wk->opening, r);
			atomic_fetch_sub(&wk->n_opening, 1);
			n = wk_flatten(iov, count, a, sizeof(a));
			opened_locked(wk, r, oh, a, n);
		}
		pthread_mutex_unlock(&wk->lock);
	}
}
