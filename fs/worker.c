/* SPDX-License-Identifier: MIT */
/*
 * worker.c - a worker's side of supervision (fs layer): its libfuse session on the
 * supervisor's /dev/fuse descriptor, and how it takes over from a dead one
 * (supervise.h has the whole picture; worker_handles.c journals the file handles and
 * worker_txn.c the transactions).
 *
 * The session reads and writes /dev/fuse through two hooks (fuse_session_custom_io).
 * The read hook sees every request's header first: it notes the request id (so a
 * commit can be recorded with it), notes opens, writes and flushes for the handle
 * journal, counts the requests the kernel resends after a death, answers those that a
 * record says were applied already, and answers EIO for a file handle that could not
 * be taken over.  The write hook sees every answer: an open's file handle goes to the
 * handle journal before the kernel learns it.
 *
 * Taking over: the INIT the supervisor read goes through this session's libfuse as if
 * the kernel had just sent it (so libfuse is initialised the same way); the first
 * worker's answer goes to the kernel and is kept, the next workers' answers must be
 * the same bytes (a different max_write would make the kernel refuse reads) and go
 * nowhere.  The inode table comes back from its journal (inode.c), the transactions
 * from theirs (worker_txn.c), and then the file handles (worker_handles.c).
 */
#include <errno.h>
#include <inttypes.h>
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

#include "worker_i.h"


static __thread uint64_t cur_unique;
/* This process's worker state: the session's hooks may run after fs_free() (answers to
 * requests parked until the stop), so they use this, which lives as long as the process
 * (reachable, so not a leak), and never the fs. */
struct fs_worker *the_worker;

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
	case FUSE_MKDIR: case FUSE_SETATTR: case FUSE_CREATE:
		break;
	default:
		return false; /* commits nothing, or is safe to run again */
	}
	if (fs_txj_applied(id.unique)) {
		/* it changed a transaction (begun, staged, removed) before the death: the
		 * next worker restored that change, so it is not made again */
		atomic_fetch_add(&wk->sh->replayed, 1);
		if (h->opcode == FUSE_CREATE && blen >= sizeof(struct fuse_create_in)) {
			struct fuse_create_in in;

			memcpy(&in, body, sizeof(in));
			in.flags &= ~(uint32_t)O_EXCL; /* opens the file it made */
			memcpy(body, &in, sizeof(in));
			return false;
		}
		if (h->opcode != FUSE_MKDIR && h->opcode != FUSE_SETATTR && h->opcode != FUSE_FLUSH &&
		    h->opcode != FUSE_FSYNC && h->opcode != FUSE_RELEASE) {
			answer(fd, h->unique, 0);
			return true;
		}
	} else if (h->opcode == FUSE_CREATE || txn_applied_find(fs->eng, &id, &a) != 0) {
		return false;
	} else {
		atomic_fetch_add(&wk->sh->replayed, 1);
	}
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
size_t wk_flatten(const struct iovec *iov, int count, void *out, size_t cap)
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
uint64_t wk_answer_fh(uint32_t opcode, const unsigned char *a, size_t n)
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
	wk_flatten(iov, count, a, sizeof(a));
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
	size_t n;

	if (count < 1 || iov[0].iov_len < sizeof(oh))
		return writev(fd, iov, count);
	memcpy(&oh, iov[0].iov_base, sizeof(oh));
	if (oh.unique == 0)
		return writev(fd, iov, count); /* a notification */
	if (atomic_load(&wk->init_pending) && oh.unique == wk->init_unique)
		return init_answer(wk, fd, iov, count);
	if (oh.unique & MADE_UP) {
		n = wk_flatten(iov, count, a, sizeof(a));
		pthread_mutex_lock(&wk->mlock);
		if (oh.unique == wk->m_id) {
			wk->m_err = oh.error;
			wk->m_fh = oh.error ? 0 : wk_answer_fh(wk->m_opcode, a, n);
			wk->m_done = true;
			pthread_cond_broadcast(&wk->mcond);
		}
		pthread_mutex_unlock(&wk->mlock);
		return (ssize_t)total(iov, count);
	}
	hj_answered(wk, &oh, iov, count);
	if (atomic_load_explicit(&wk->n_flushing, memory_order_relaxed))
		hj_flushed(wk, oh.unique, oh.error);
	return writev(fd, iov, count);
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

/* fs_i.h */
void fs_worker_invalidated(struct fs *fs, int64_t ts)
{
	struct fs_worker *wk = fs->worker;
	int64_t cur;

	if (!wk || ts <= 0)
		return;
	cur = atomic_load(&wk->sh->invalidated_ts);
	while (cur < ts && !atomic_compare_exchange_weak(&wk->sh->invalidated_ts, &cur, ts))
		;
}

/*
 * The kernel may cache pages and names that commits of the dead worker changed: those
 * made durable after the last batch it invalidated (their requests, resent, are
 * answered from their records and commit nothing again).  A first worker marks its head:
 * nothing committed before the mount existed is in a cache.
 */
static int invalidate_dead_workers_commits(struct fs *fs, struct fs_worker *wk)
{
	int64_t head = txn_engine_head(fs->eng);
	int64_t done = atomic_load(&wk->sh->invalidated_ts);
	int err = 0;

	if (wk->restarted && done < head) {
		err = fs_invalidate_since(fs, done, head);
		if (err)
			log_err("cannot invalidate the caches of commits %" PRId64 "..%" PRId64
				": %s", done + 1, head, strerror(-err));
		else
			log_info("invalidated the caches of commits %" PRId64 "..%" PRId64
				 " that the dead worker had not", done + 1, head);
	}
	if (!err)
		fs_worker_invalidated(fs, head);
	return err;
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
	if (!err)
		err = invalidate_dead_workers_commits(fs, wk);
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
