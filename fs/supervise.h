/* SPDX-License-Identifier: MIT */
/*
 * supervise.h - what the supervisor process and the workers that serve the mount share
 * (fs layer): the shared memory page, the journals in it, and the calls of main.c.
 *
 * The supervisor (supervise.c) mounts, keeps the /dev/fuse descriptor, reads the
 * kernel's INIT and forks a worker that serves the mount (worker.c).  When a worker
 * dies, the supervisor asks the kernel to put back every request the worker had read
 * but not answered (FUSE_NOTIFY_RESEND) and forks the next worker, which recovers the
 * store and answers them: the clients see a pause.  What the kernel holds of the dead
 * worker (node ids, file handles) must mean the same in the next one, so every worker
 * writes it to journals in a shared memory file the supervisor owns (journal.c): the
 * next worker rebuilds its inode table and reopens the handles from them.
 */
#ifndef STATEHOUSE_SUPERVISE_H
#define STATEHOUSE_SUPERVISE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SUP_MAGIC 0x3176707573687473ull /* "sthsupv1" */

/* One journal: records appended to the active half; a compaction writes the whole
 * state to the other half and then makes it the active one (one store), so a worker
 * that dies at any point leaves one complete journal. */
struct sup_region {
	_Atomic uint32_t active;  /* 0 or 1 */
	_Atomic uint32_t lost;    /* a record could not be written: no restart can rebuild */
	_Atomic uint64_t len[2];  /* bytes of each half in use */
	uint64_t off;             /* offset of half 0 in the shared memory */
	uint64_t half;            /* size of each half */
	uint64_t compacted;       /* length of the active half after its compaction */
};

/* The shared page: written by the supervisor before the first fork, then by workers. */
struct sup_shared {
	uint64_t magic;
	uint64_t instance;            /* random, one per mount: keys the applied-request records */
	int32_t supervisor_pid;
	_Atomic uint32_t restarts;    /* workers started after the first */
	_Atomic int64_t death_ns;     /* CLOCK_MONOTONIC of the last worker's death */
	_Atomic int64_t last_pause_ns; /* that death -> the next worker serving */
	_Atomic uint64_t resent;      /* requests the kernel sent again after a death */
	_Atomic uint64_t replayed;    /* resent requests answered from an applied record */
	_Atomic uint64_t fh_high;     /* highest file handle value given out, ever */
	/* The newest commit whose changes reached the kernel's caches (notify.c): a next
	 * worker invalidates what the commits after it changed, which the dead one made
	 * durable but never invalidated. */
	_Atomic int64_t invalidated_ts;
	uint32_t init_len, reply_len; /* the kernel's INIT and the first worker's answer */
	unsigned char init[512], reply[512];
	struct sup_region nodes;      /* the inode table (inode.c) */
	struct sup_region handles;    /* the open file handles (worker.c) */
	struct sup_region txns;       /* the transactions in the table (worker_txn.c) */
};

/* A journal record: kind, two numbers and n bytes (the whole record is 8-aligned). */
struct sup_rec {
	uint32_t len;  /* of the whole record */
	uint32_t n;    /* bytes after the header */
	uint32_t kind;
	uint32_t pad;
	uint64_t a, b;
};

struct fs_journal {
	struct sup_region *r;
	unsigned char *base; /* the shared memory */
};

/* Append a record to the active half: 0, or -ENOSPC (the half is full). */
int fs_jput(struct fs_journal *j, unsigned kind, uint64_t a, uint64_t b, const void *bytes,
	    size_t n);
/* Is the active half big enough (4x its compacted size, at least 4 MiB) to compact? */
bool fs_jwants_compact(const struct fs_journal *j);
/* Compaction: begin, put every record of the state, end (which makes it active). */
void fs_jcompact_begin(struct fs_journal *j);
int fs_jcompact_put(struct fs_journal *j, unsigned kind, uint64_t a, uint64_t b,
		    const void *bytes, size_t n);
void fs_jcompact_end(struct fs_journal *j);
/* Call fn for each record of the active half, in order; stops at fn's first non-zero. */
int fs_jeach(const struct fs_journal *j,
	     int (*fn)(void *arg, const struct sup_rec *r, const void *bytes), void *arg);
/* Mark the journal as lost (a record could not be written) and say so once. */
void fs_jlose(struct fs_journal *j, const char *what);

/* What a worker gets from the supervisor. */
struct sup_worker {
	int fd;                 /* /dev/fuse, already mounted; INIT read into sh->init */
	struct sup_shared *sh;
	unsigned char *base;    /* the shared memory (sh is its first page) */
	bool restarted;         /* not the first worker: the kernel has its INIT answer */
	int ready_fd;           /* write one byte once serving, then close */
};

struct fuse_args;

/* How the supervisor mounts and reports. */
struct sup_config {
	struct fuse_args *args;   /* copied for the supervisor's mount */
	const char *mountpoint;
	void (*live)(void *arg);  /* the first worker serves (tell the parent) */
	void *live_arg;
};

/*
 * Mount and supervise.  Returns 0 in each worker process (with *w filled in), 1 in the
 * supervisor once it is over (*status: its exit status), -1 when the mount failed
 * before any worker started.
 */
int sup_run(const struct sup_config *sc, struct sup_worker *w, int *status);

struct fs;
int fs_worker_attach(struct fs *fs, void *session, const struct sup_worker *w);
/* The worker serves: restore the handles, tell the supervisor (after fs_start). */
int fs_worker_ready(struct fs *fs);
/* The oldest snapshot a restarted worker's engine must be able to read back to, for the
 * transactions it takes over (txn_options.pin and pin_ts): true and *ts, or false. */
bool fs_worker_pin_ts(const struct sup_worker *w, int64_t *ts);

#endif
