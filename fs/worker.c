/* SPDX-License-Identifier: MIT */
/*
 * worker.c - a worker's side of supervision (fs layer): its libfuse session on the
 * supervisor's /dev/fuse descriptor, what it writes down so the next worker can take
 * over, and how it takes over from a dead one (supervise.h has the whole picture).
 *
 * The session reads and writes /dev/fuse through two hooks (fuse_session_custom_io).
 * The read hook sees every request's header first: it notes the request id (so a
 * commit can be recorded with it), counts the requests the kernel resends after a
 * death, answers those that a record says were applied already, and answers EIO for a
 * file handle that could not be taken over (a write handle: its bytes died with the
 * worker that buffered them).  The write hook sees every answer: an open's file handle
 * goes to the handle journal before the kernel learns it; a release takes it out.
 *
 * Taking over: the INIT the supervisor read goes through this session's libfuse as if
 * the kernel had just sent it (so libfuse is initialised the same way); the first
 * worker's answer goes to the kernel and is kept, the next workers' answers must be
 * the same bytes (a different max_write would make the kernel refuse reads) and go
 * nowhere.  The inode table comes back from its journal (inode.c); then every handle
 * of the journal that was open for reading is opened again through the same code,
 * from a made-up OPEN or OPENDIR request with the original caller's ids, and keeps
 * its old number.
 */
#include <errno.h>
#include <linux/fuse.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "fs_i.h"
#include "log.h"
#include "supervise.h"

#define RESENT_BIT (1ull << 63)
#define MADE_UP (1ull << 62) /* ids of the requests a worker makes itself */

/*
 * The handle journal's records: JH_OPEN (a = fh, b = the node, or the parent of a
 * CREATE; bytes: struct hopen and a CREATE's name; no bytes: the release), JH_WRITE (a =
 * fh, b = offset; bytes: the data), JH_TRUNC (a = fh, b = the size), JH_NOREPLAY (a =
 * fh: its writes cannot be made again: an append, an fallocate, too many bytes),
 * JH_CLEAN (a = fh: a flush committed what it held; the writes before are in the store).
 */
enum { JH_OPEN = 1, JH_WRITE, JH_TRUNC, JH_NOREPLAY, JH_CLEAN };

#define WLOG_MAX (64u << 20) /* bytes of writes a handle keeps for a takeover */

/* What the journal keeps of an open handle (the bytes of a JH_OPEN record). */
struct hopen {
	uint32_t opcode; /* FUSE_OPEN, FUSE_OPENDIR or FUSE_CREATE */
	uint32_t flags;  /* open(2) flags */
	uint32_t uid, gid, pid;
	uint32_t mode, umask; /* CREATE's */
	uint32_t namelen;     /* CREATE's name follows */
	uint32_t pad;
	uint64_t child;       /* CREATE's: the node it made */
};

/* One write kept for a takeover (in hrec.wlog, data after it). */
struct wentry {
	uint32_t kind; /* JH_WRITE or JH_TRUNC */
	uint32_t len;
	uint64_t off;  /* offset, or JH_TRUNC's size */
};

/* An open request on its way (by id), then a handle in the journal (by fh). */
struct hrec {
	uint64_t id;
	uint64_t nodeid;
	struct hopen o;
	char *name;            /* CREATE's */
	unsigned char *wlog;   /* the writes since the open, to make them again */
	size_t wlen, wcap;
	bool noreplay;
	bool clean;            /* a flush committed: open again without O_TRUNC */
	bool view;             /* in a transaction's view: its writes are staged as they come
				* (and journaled by the engine), so none is kept here */
	UT_hash_handle hh;
};

static void hrec_free(struct hrec *r)
{
	if (r) {
		free(r->name);
		free(r->wlog);
		free(r);
	}
}

/* A FLUSH or FSYNC on its way (by request id), and its handle. */
struct flushing {
	uint64_t id, fh;
	UT_hash_handle hh;
};

/* A handle number that could not be taken over: its requests get EIO. */
struct lostfh {
	uint64_t fh;
	UT_hash_handle hh;
};

struct fs_worker {
	struct fs *fs;
	struct fuse_session *se;
	int fd;
	struct sup_shared *sh;
	struct fs_journal hj;
	bool restarted;
	int ready_fd;
	uint64_t init_unique;
	atomic_bool init_pending;
	int init_err;
	/* lock: the journal of handles, the opens on their way, the lost handles */
	pthread_mutex_t lock;
	struct hrec *opening, *open;
	struct lostfh *lost;
	struct flushing *flushing; /* FLUSH/FSYNC on their way, of handles with writes */
	atomic_uint n_opening, n_flushing;
	/* made-up opens: their answers */
	pthread_mutex_t mlock;
	pthread_cond_t mcond;
	uint64_t m_id;
	uint32_t m_opcode;
	bool m_done;
	int m_err;
	uint64_t m_fh;
};

static __thread uint64_t cur_unique;
/* This process's worker state: the session's hooks may run after fs_free() (answers to
 * requests parked until the stop), so they use this, which lives as long as the process
 * (reachable, so not a leak), and never the fs. */
static struct fs_worker *the_worker;

uint64_t fs_request_id(void)
{
	return cur_unique;
}

void fs_request_id_set(uint64_t id)
{
	cur_unique = id;
}

struct txn_reqid fs_reqid(struct fs *fs)
{
	return (struct txn_reqid){ .instance = fs->worker ? fs->worker->sh->instance : 0,
				   .unique = cur_unique };
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

static void hj_released(struct fs_worker *wk, uint64_t fh)
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
static void hj_wrote(struct fs_worker *wk, const struct fuse_in_header *h, size_t n, uint64_t fh)
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
static void hj_clean_locked(struct fs_worker *wk, uint64_t fh)
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
static void hj_flushing(struct fs_worker *wk, const struct fuse_in_header *h, uint64_t fh)
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
static void hj_flushed(struct fs_worker *wk, uint64_t id, int error)
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

/* ---- the read hook ----------------------------------------------------------------- */

static void answer(int fd, uint64_t unique, int err)
{
	struct fuse_out_header oh = { .len = sizeof(oh), .error = err, .unique = unique };

	if (write(fd, &oh, sizeof(oh)) != (ssize_t)sizeof(oh))
		log_debug("cannot answer request %llu: %s", (unsigned long long)unique,
			  strerror(errno));
}

/* The file handle a request names, if it names one: 0 otherwise. */
static uint64_t request_fh(const struct fuse_in_header *h, size_t n)
{
	const char *body = (const char *)(h + 1);
	size_t blen = n - sizeof(*h);
	uint64_t fh = 0;

	switch (h->opcode) {
	case FUSE_READ: case FUSE_WRITE: case FUSE_FLUSH: case FUSE_FSYNC: case FUSE_FSYNCDIR:
	case FUSE_READDIR: case FUSE_READDIRPLUS: case FUSE_LSEEK: case FUSE_POLL:
	case FUSE_RELEASE: case FUSE_RELEASEDIR: case FUSE_FALLOCATE: case FUSE_GETLK:
	case FUSE_SETLK: case FUSE_SETLKW:
		if (blen >= sizeof(fh))
			memcpy(&fh, body, sizeof(fh));
		break;
	case FUSE_SETATTR: {
		struct fuse_setattr_in in;

		if (blen >= sizeof(in)) {
			memcpy(&in, body, sizeof(in));
			if (in.valid & FATTR_FH)
				fh = in.fh;
		}
		break;
	}
	case FUSE_GETATTR: {
		struct fuse_getattr_in in;

		if (blen >= sizeof(in)) {
			memcpy(&in, body, sizeof(in));
			if (in.getattr_flags & FUSE_GETATTR_FH)
				fh = in.fh;
		}
		break;
	}
	default:
		break;
	}
	return fh;
}

/*
 * An open on its way, so that its answer's handle can be journaled.  Most opens are
 * answered on the thread that read them, and most answers carry no handle (a read of
 * a live key): the open waits in this thread's slot, with no allocation and no lock.
 * One answered elsewhere (deferred to the pool, or answered later) moves to the table
 * of opens on their way: when the request is handed over (fs_worker_handoff()), or
 * when this thread reads its next request with the slot still taken.
 */
static uint64_t answer_fh(uint32_t opcode, const unsigned char *a, size_t n);

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

static void note_open(struct fs_worker *wk, const struct fuse_in_header *h, size_t n)
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
	if (oh->error == 0 && answer_fh(r->o.opcode, a, n))
		hj_opened_locked(wk, r, answer_fh(r->o.opcode, a, n));
	else
		hrec_free(r);
}

/* A request that names a handle this worker could not take over: answered here. */
static bool lost_handle(struct fs_worker *wk, const struct fuse_in_header *h, uint64_t fh)
{
	struct lostfh *l = NULL;

	if (!wk->lost)
		return false;
	pthread_mutex_lock(&wk->lock);
	HASH_FIND(hh, wk->lost, &fh, sizeof(fh), l);
	if (l && (h->opcode == FUSE_RELEASE || h->opcode == FUSE_RELEASEDIR)) {
		HASH_DELETE(hh, wk->lost, l);
		free(l);
	}
	pthread_mutex_unlock(&wk->lock);
	if (!l)
		return false;
	/* the write's bytes died with the worker that held them: never a half value */
	answer(wk->fd, h->unique,
	       h->opcode == FUSE_RELEASE || h->opcode == FUSE_RELEASEDIR ? 0 : -EIO);
	return true;
}

/*
 * A resent request that may have made a commit before the worker that read it died:
 * when its applied-request record says it did, it must not commit again.  Answered
 * here with success (rename, unlink, rmdir, flush, fsync, release, xattrs), or turned
 * into the request that answers as the first run would have (a mkdir into a lookup of
 * the name, a setattr into a getattr).  true: answered, read the next one.
 */
static bool applied_answer(struct fs *fs, int fd, struct fuse_in_header *h, size_t *n)
{
	struct fs_worker *wk = fs->worker;
	struct txn_reqid id = { .instance = wk->sh->instance, .unique = h->unique & ~RESENT_BIT };
	struct txn_applied a;
	char *body = (char *)(h + 1);
	size_t blen = *n - sizeof(*h);

	switch (h->opcode) {
	case FUSE_RENAME: case FUSE_RENAME2: case FUSE_UNLINK: case FUSE_RMDIR: case FUSE_FLUSH:
	case FUSE_FSYNC: case FUSE_RELEASE: case FUSE_SETXATTR: case FUSE_REMOVEXATTR:
	case FUSE_MKDIR: case FUSE_SETATTR:
		break;
	default:
		return false; /* commits nothing, or is safe to run again */
	}
	if (txn_applied_find(fs->eng, &id, &a) != 0)
		return false;
	atomic_fetch_add(&wk->sh->replayed, 1);
	if ((h->opcode == FUSE_FLUSH || h->opcode == FUSE_FSYNC || h->opcode == FUSE_RELEASE) &&
	    blen >= sizeof(uint64_t)) {
		/* its commit is in the store: the handle taken over (with its writes made
		 * again) must not commit them a second time */
		uint64_t fh;
		struct handle *hd;

		memcpy(&fh, body, sizeof(fh));
		if ((hd = fs_handle_get(fs, fh))) {
			pthread_mutex_lock(&hd->lock);
			hd->dirty = false;
			hd->written = false;
			pthread_mutex_unlock(&hd->lock);
		}
		pthread_mutex_lock(&wk->lock);
		hj_clean_locked(wk, fh);
		pthread_mutex_unlock(&wk->lock);
	}
	if (h->opcode == FUSE_MKDIR && blen > sizeof(struct fuse_mkdir_in)) {
		memmove(body, body + sizeof(struct fuse_mkdir_in), blen - sizeof(struct fuse_mkdir_in));
		*n -= sizeof(struct fuse_mkdir_in);
		h->len = (uint32_t)*n;
		h->opcode = FUSE_LOOKUP;
		return false;
	}
	if (h->opcode == FUSE_SETATTR && blen >= sizeof(struct fuse_setattr_in)) {
		struct fuse_setattr_in in;
		struct fuse_getattr_in g = { 0 };

		memcpy(&in, body, sizeof(in));
		if (in.valid & FATTR_FH) {
			g.getattr_flags = FUSE_GETATTR_FH;
			g.fh = in.fh;
		}
		memcpy(body, &g, sizeof(g));
		*n = sizeof(*h) + sizeof(g);
		h->len = (uint32_t)*n;
		h->opcode = FUSE_GETATTR;
		return false;
	}
	if (h->opcode == FUSE_RELEASE && blen >= sizeof(uint64_t)) {
		uint64_t fh;

		memcpy(&fh, body, sizeof(fh));
		hj_released(wk, fh);
		/* the handle is gone with its commit; free what this worker holds of it */
		return false;
	}
	answer(fd, h->unique, 0);
	return true;
}

static ssize_t w_read(int fd, void *buf, size_t len, void *userdata)
{
	struct fs_worker *wk = the_worker;
	struct fs *fs = wk->fs;

	for (;;) {
		ssize_t n = read(fd, buf, len);
		struct fuse_in_header *h = buf;
		uint64_t fh;

		if (n < (ssize_t)sizeof(*h))
			return n;
		if (fs)
			fs_txj_maybe_compact(fs);
		cur_unique = h->unique & ~RESENT_BIT;
		if (h->unique & RESENT_BIT) {
			size_t sz = (size_t)n;

			atomic_fetch_add(&wk->sh->resent, 1);
			if (fs && applied_answer(fs, fd, buf, &sz))
				continue;
			n = (ssize_t)sz;
		}
		switch (h->opcode) {
		case FUSE_OPEN: case FUSE_OPENDIR: case FUSE_CREATE:
			note_open(wk, h, (size_t)n);
			break;
		default:
			fh = request_fh(h, (size_t)n);
			if (fh && lost_handle(wk, h, fh))
				continue;
			if (fh && (h->opcode == FUSE_RELEASE || h->opcode == FUSE_RELEASEDIR))
				hj_released(wk, fh);
			else if (fh && (h->opcode == FUSE_FLUSH || h->opcode == FUSE_FSYNC))
				hj_flushing(wk, h, fh);
			else if (fh)
				hj_wrote(wk, h, (size_t)n, fh);
			break;
		}
		return n;
	}
}

/* ---- the write hook ---------------------------------------------------------------- */

/* Copy the first cap bytes of an answer (header first) into out. */
static size_t flatten(const struct iovec *iov, int count, void *out, size_t cap)
{
	size_t n = 0;

	for (int i = 0; i < count && n < cap; i++) {
		size_t k = iov[i].iov_len < cap - n ? iov[i].iov_len : cap - n;

		memcpy((char *)out + n, iov[i].iov_base, k);
		n += k;
	}
	return n;
}

static size_t total(const struct iovec *iov, int count)
{
	size_t n = 0;

	for (int i = 0; i < count; i++)
		n += iov[i].iov_len;
	return n;
}

/* The handle an OPEN, OPENDIR or CREATE answer gives. */
static uint64_t answer_fh(uint32_t opcode, const unsigned char *a, size_t n)
{
	size_t off = sizeof(struct fuse_out_header) +
		     (opcode == FUSE_CREATE ? sizeof(struct fuse_entry_out) : 0);
	struct fuse_open_out oo;

	if (n < off + sizeof(oo))
		return 0;
	memcpy(&oo, a + off, sizeof(oo));
	return oo.fh;
}

/* The answer to INIT: the first one is kept, the next ones must be the same. */
static ssize_t init_answer(struct fs_worker *wk, int fd, struct iovec *iov, int count)
{
	struct sup_shared *sh = wk->sh;
	unsigned char a[sizeof(sh->reply)];
	size_t n = total(iov, count);

	atomic_store(&wk->init_pending, false);
	if (n > sizeof(a)) {
		wk->init_err = -EPROTO;
		return -1;
	}
	flatten(iov, count, a, sizeof(a));
	if (!wk->restarted) {
		memcpy(sh->reply, a, n);
		sh->reply_len = (uint32_t)n;
		return writev(fd, iov, count);
	}
	if (n != sh->reply_len || memcmp(a, sh->reply, n)) {
		wk->init_err = -EPROTO;
		errno = EPROTO;
		return -1;
	}
	return (ssize_t)n;
}

static ssize_t w_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct fs_worker *wk = the_worker;
	struct fuse_out_header oh;
	unsigned char a[sizeof(oh) + sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out)];
	struct hrec *r = NULL;
	size_t n;

	if (count < 1 || iov[0].iov_len < sizeof(oh))
		return writev(fd, iov, count);
	memcpy(&oh, iov[0].iov_base, sizeof(oh));
	if (oh.unique == 0)
		return writev(fd, iov, count); /* a notification */
	if (atomic_load(&wk->init_pending) && oh.unique == wk->init_unique)
		return init_answer(wk, fd, iov, count);
	if (oh.unique & MADE_UP) {
		n = flatten(iov, count, a, sizeof(a));
		pthread_mutex_lock(&wk->mlock);
		if (oh.unique == wk->m_id) {
			wk->m_err = oh.error;
			wk->m_fh = oh.error ? 0 : answer_fh(wk->m_opcode, a, n);
			wk->m_done = true;
			pthread_cond_broadcast(&wk->mcond);
		}
		pthread_mutex_unlock(&wk->mlock);
		return (ssize_t)total(iov, count);
	}
	if (slot.set && slot.unique == oh.unique) {
		slot.set = false;
		n = flatten(iov, count, a, sizeof(a));
		if (oh.error == 0 && answer_fh(slot.o.opcode, a, n)) {
			if (!(r = hrec_of(&slot))) {
				fs_jlose(&wk->hj, "file handle");
			} else {
				pthread_mutex_lock(&wk->lock);
				opened_locked(wk, r, &oh, a, n);
				pthread_mutex_unlock(&wk->lock);
			}
		}
	} else if (atomic_load_explicit(&wk->n_opening, memory_order_relaxed)) {
		pthread_mutex_lock(&wk->lock);
		HASH_FIND(hh, wk->opening, &oh.unique, sizeof(oh.unique), r);
		if (r) {
			HASH_DELETE(hh, wk->opening, r);
			atomic_fetch_sub(&wk->n_opening, 1);
			n = flatten(iov, count, a, sizeof(a));
			opened_locked(wk, r, &oh, a, n);
		}
		pthread_mutex_unlock(&wk->lock);
	}
	if (atomic_load_explicit(&wk->n_flushing, memory_order_relaxed))
		hj_flushed(wk, oh.unique, oh.error);
	return writev(fd, iov, count);
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
static int take_over_handles(struct fs_worker *wk)
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

int fs_worker_attach(struct fs *fs, void *session, const struct sup_worker *w)
{
	static const struct fuse_custom_io io = { .read = w_read, .writev = w_writev };
	struct fs_worker *wk = calloc(1, sizeof(*wk));
	struct fuse_buf fb = { .size = w->sh->init_len };
	const struct fuse_in_header *ih = (const void *)w->sh->init;
	int err;

	if (!wk)
		return -ENOMEM;
	wk->fs = fs;
	wk->se = session;
	wk->fd = w->fd;
	wk->sh = w->sh;
	wk->restarted = w->restarted;
	wk->ready_fd = w->ready_fd;
	wk->hj = (struct fs_journal){ .r = &w->sh->handles, .base = w->base };
	pthread_mutex_init(&wk->lock, NULL);
	pthread_mutex_init(&wk->mlock, NULL);
	pthread_cond_init(&wk->mcond, NULL);
	fs->worker = wk;
	the_worker = wk;
	fs->jn = (struct fs_journal){ .r = &w->sh->nodes, .base = w->base };
	fs->journaled = true;
	err = fuse_session_custom_io(session, &io, w->fd);
	if (err) {
		log_err("cannot attach to the mount's descriptor: %s", strerror(-err));
		return err;
	}
	if (w->restarted) {
		err = fs_inodes_take_over(fs);
		if (err)
			return err;
	}
	err = fs_txj_attach(fs, w);
	if (err)
		return err;
	wk->init_unique = ih->unique;
	atomic_store(&wk->init_pending, true);
	fb.mem = w->sh->init;
	fuse_session_process_buf(session, &fb);
	if (wk->init_err || atomic_load(&wk->init_pending)) {
		log_err("this worker's answer to INIT differs from the first one's; cannot take "
			"over the mount");
		return -EPROTO;
	}
	return 0;
}

int fs_worker_ready(struct fs *fs)
{
	struct fs_worker *wk = fs->worker;
	char c = 1;
	int err = 0;

	if (!wk)
		return 0;
	if (wk->restarted)
		err = take_over_handles(wk);
	if (err)
		return err;
	if (wk->restarted) {
		int64_t death = atomic_load(&wk->sh->death_ns);

		atomic_store(&wk->sh->last_pause_ns, clock_now_ns(CLOCK_MONOTONIC) - death);
		log_info("took over the mount after %.1f ms",
			 (double)(clock_now_ns(CLOCK_MONOTONIC) - death) / 1e6);
	}
	if (write(wk->ready_fd, &c, 1) != 1)
		err = -errno;
	close(wk->ready_fd);
	wk->ready_fd = -1;
	return err;
}

const struct sup_shared *fs_worker_shared(struct fs *fs)
{
	return fs->worker ? fs->worker->sh : NULL;
}

void fs_worker_free(struct fs *fs)
{
	struct fs_worker *wk = fs->worker;

	/* The hooks go on answering what the stop completes; they only lose the fs. */
	if (wk) {
		pthread_mutex_lock(&wk->lock);
		wk->fs = NULL;
		pthread_mutex_unlock(&wk->lock);
	}
	fs->worker = NULL;
}
