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

enum { JH_OPEN = 1 };

/* What the journal keeps of an open handle (the bytes of a JH_OPEN record). */
struct hopen {
	uint32_t opcode; /* FUSE_OPEN, FUSE_OPENDIR or FUSE_CREATE */
	uint32_t flags;  /* open(2) flags */
	uint32_t uid, gid, pid;
};

/* An open request on its way (by id), then a handle in the journal (by fh). */
struct hrec {
	uint64_t id;
	uint64_t nodeid;
	struct hopen o;
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
	atomic_uint n_opening;
	/* made-up opens: their answers */
	pthread_mutex_t mlock;
	pthread_cond_t mcond;
	uint64_t m_id;
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

static void hj_compact_locked(struct fs_worker *wk)
{
	struct hrec *r, *tmp;

	fs_jcompact_begin(&wk->hj);
	HASH_ITER(hh, wk->open, r, tmp) {
		if (fs_jcompact_put(&wk->hj, JH_OPEN, r->id, r->nodeid, &r->o, sizeof(r->o))) {
			fs_jlose(&wk->hj, "file handle");
			return;
		}
	}
	fs_jcompact_end(&wk->hj);
}

/* An open answered fh: journal it (before the kernel has the answer).  lock held. */
static void hj_opened_locked(struct fs_worker *wk, struct hrec *r, uint64_t fh)
{
	uint64_t high = atomic_load(&wk->sh->fh_high);

	r->id = fh;
	HASH_ADD(hh, wk->open, id, sizeof(r->id), r);
	if (!HASH_ADDED(hh, r)) {
		free(r);
		fs_jlose(&wk->hj, "file handle");
		return;
	}
	while (fh > high && !atomic_compare_exchange_weak(&wk->sh->fh_high, &high, fh))
		;
	if (fs_jput(&wk->hj, JH_OPEN, fh, r->nodeid, &r->o, sizeof(r->o)) == -ENOSPC ||
	    fs_jwants_compact(&wk->hj))
		hj_compact_locked(wk);
}

static void hj_released(struct fs_worker *wk, uint64_t fh)
{
	struct hrec *r = NULL;

	pthread_mutex_lock(&wk->lock);
	HASH_FIND(hh, wk->open, &fh, sizeof(fh), r);
	if (r) {
		HASH_DELETE(hh, wk->open, r);
		free(r);
		/* a release is a record too: the compaction drops it */
		if (fs_jput(&wk->hj, JH_OPEN, fh, 0, NULL, 0) == -ENOSPC ||
		    fs_jwants_compact(&wk->hj))
			hj_compact_locked(wk);
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

/* Note an open on its way, so its answer's handle can be journaled. */
static void note_open(struct fs_worker *wk, const struct fuse_in_header *h, size_t n)
{
	struct hrec *r;
	uint32_t flags = 0;

	if (n >= sizeof(*h) + sizeof(uint32_t))
		memcpy(&flags, h + 1, sizeof(flags)); /* fuse_open_in and fuse_create_in */
	r = calloc(1, sizeof(*r));
	if (!r) {
		fs_jlose(&wk->hj, "file handle");
		return;
	}
	*r = (struct hrec){ .id = h->unique, .nodeid = h->nodeid,
			    .o = { h->opcode, flags, h->uid, h->gid, h->pid } };
	pthread_mutex_lock(&wk->lock);
	HASH_ADD(hh, wk->opening, id, sizeof(r->id), r);
	if (!HASH_ADDED(hh, r)) {
		free(r);
		fs_jlose(&wk->hj, "file handle");
	} else {
		atomic_fetch_add(&wk->n_opening, 1);
	}
	pthread_mutex_unlock(&wk->lock);
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
			wk->m_fh = oh.error ? 0 : answer_fh(FUSE_OPEN, a, n);
			wk->m_done = true;
			pthread_cond_broadcast(&wk->mcond);
		}
		pthread_mutex_unlock(&wk->mlock);
		return (ssize_t)total(iov, count);
	}
	if (atomic_load_explicit(&wk->n_opening, memory_order_relaxed)) {
		pthread_mutex_lock(&wk->lock);
		HASH_FIND(hh, wk->opening, &oh.unique, sizeof(oh.unique), r);
		if (r) {
			HASH_DELETE(hh, wk->opening, r);
			atomic_fetch_sub(&wk->n_opening, 1);
			n = flatten(iov, count, a, sizeof(a));
			if (oh.error == 0 && answer_fh(r->o.opcode, a, n))
				hj_opened_locked(wk, r, answer_fh(r->o.opcode, a, n));
			else
				free(r);
		}
		pthread_mutex_unlock(&wk->lock);
	}
	return writev(fd, iov, count);
}

/* ---- taking over ------------------------------------------------------------------- */

/* Open nodeid again as the journal says, through the session; the new handle's fh. */
static int reopen(struct fs_worker *wk, uint64_t nodeid, const struct hopen *o, uint64_t *fh)
{
	struct {
		struct fuse_in_header h;
		struct fuse_open_in in;
	} req = { .h = { .len = sizeof(req), .opcode = o->opcode, .nodeid = nodeid,
			 .uid = o->uid, .gid = o->gid, .pid = o->pid },
		  .in = { .flags = o->flags & ~(uint32_t)(O_CREAT | O_EXCL | O_TRUNC) } };
	struct fuse_buf fb = { .size = sizeof(req), .mem = &req };
	struct timespec until;
	int err = 0;

	if (req.h.opcode == FUSE_CREATE)
		req.h.opcode = FUSE_OPEN;
	pthread_mutex_lock(&wk->mlock);
	req.h.unique = wk->m_id = MADE_UP | (wk->m_id + 1);
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
		*fh = wk->m_fh;
	} else {
		err = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&wk->mlock);
	return err;
}

struct takeover {
	struct fs_worker *wk;
	struct hrec *open; /* the journal's open handles, by fh */
};

static int collect(void *arg, const struct sup_rec *r, const void *bytes)
{
	struct takeover *t = arg;
	struct hrec *h = NULL;

	HASH_FIND(hh, t->open, &r->a, sizeof(r->a), h);
	if (h) { /* a release, or an old record of the same number */
		HASH_DELETE(hh, t->open, h);
		free(h);
	}
	if (r->n != sizeof(struct hopen))
		return 0;
	if (!(h = calloc(1, sizeof(*h))))
		return -ENOMEM;
	h->id = r->a;
	h->nodeid = r->b;
	memcpy(&h->o, bytes, sizeof(h->o));
	HASH_ADD(hh, t->open, id, sizeof(h->id), h);
	return HASH_ADDED(hh, h) ? 0 : -ENOMEM;
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

/* Open again every handle the dead worker had open for reading; the rest are lost. */
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
		uint64_t fh = 0;
		/* A handle open for writing in a transaction's view staged every write when
		 * it was made (the journal has it): it reopens on the staged value.  One of
		 * the live tree held bytes that died uncommitted: it is lost. */
		bool reading = (h->o.flags & O_ACCMODE) == O_RDONLY ||
			       fs_ikind(wk->fs, h->nodeid) == IK_TXPATH;

		HASH_DELETE(hh, t.open, h);
		if (reading && reopen(wk, h->nodeid, &h->o, &fh) == 0 && fh &&
		    fs_handle_get(wk->fs, fh) &&
		    fs_handle_adopt(wk->fs, h->id, fs_handle_get(wk->fs, fh)) == 0) {
			kept++;
			pthread_mutex_lock(&wk->lock);
			hj_opened_locked(wk, h, h->id);
			pthread_mutex_unlock(&wk->lock);
			continue;
		}
		lost++;
		mark_lost(wk, h->id);
		free(h);
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
