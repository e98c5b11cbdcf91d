/* SPDX-License-Identifier: MIT */
/*
 * worker_i.h - what worker.c (the session's hooks, the takeover) and worker_handles.c
 * (the handle journal) share: the worker's state and the journal's records.
 */
#ifndef STATEHOUSE_WORKER_I_H
#define STATEHOUSE_WORKER_I_H

#include <linux/fuse.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "fs_i.h"
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

/* The worker of this process (worker.c). */
extern struct fs_worker *the_worker;

/* worker.c */
uint64_t wk_answer_fh(uint32_t opcode, const unsigned char *a, size_t n);
size_t wk_flatten(const struct iovec *iov, int count, void *out, size_t cap);

/* worker_handles.c: the handle journal (read hook: note_open, hj_released, hj_wrote,
 * hj_flushing; write hook: hj_answered, hj_flushed; a resent flush's record:
 * hj_clean_locked under wk->lock), and the takeover. */
void note_open(struct fs_worker *wk, const struct fuse_in_header *h, size_t n);
void hj_released(struct fs_worker *wk, uint64_t fh);
void hj_wrote(struct fs_worker *wk, const struct fuse_in_header *h, size_t n, uint64_t fh);
void hj_flushing(struct fs_worker *wk, const struct fuse_in_header *h, uint64_t fh);
void hj_answered(struct fs_worker *wk, const struct fuse_out_header *oh, const struct iovec *iov,
		 int count);
void hj_flushed(struct fs_worker *wk, uint64_t id, int error);
void hj_clean_locked(struct fs_worker *wk, uint64_t fh);
int take_over_handles(struct fs_worker *wk);

#endif
