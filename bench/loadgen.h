/* SPDX-License-Identifier: MIT */
/*
 * loadgen.h: what the two files of bench/loadgen share (private to loadgen). loadgen.c
 * defines all of it and holds main(); loadgen_stream.c holds the stream modes (replay,
 * follow-lat) and uses the options, the worker slots and the file and commit helpers.
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>

#define MAX_PROCS 256
#define PATH_LEN 4096
#define HIST_BUCKETS 512 /* log2(ns) * 8: ~9% resolution, covers 1 ns .. 2^64 ns */
#define ERR_LEN (PATH_LEN + 300)

/* Options; filled once in main() before fork, read-only afterwards. */
struct options {
	const char *mode;
	int procs;
	double secs;
	long count; /* > 0: ops per process instead of a duration */
	double warmup_secs;
	const char *mnt;
	const char *read_mnt; /* fresh: where the reader reads (-R; default mnt) */
	const char *db;
	const char *dir;
	long keys;
	int value_bytes;
	int batch;
	const char *writer; /* fresh, follow-lat: txn | direct */
	const char *at_t;   /* at-read: head | own | rand */
	long since_back;    /* replay: > 0 reads .events/since/<head-N+1>/ instead of the log */
	const char *follow_file; /* follow-lat: agent | all */
	const char *wait;   /* follow-lat: read | poll */
	const char *isolation; /* txn-read: snapshot | serializable */
	int writer_base; /* -O: writers are numbered from it (bench-w<N>), so two loadgens on
			  * two mounts of one volume write keys of their own */
};
extern struct options opt;

/* One per worker process, in a MAP_SHARED page: the parent sums them after wait(). */
struct slot {
	uint64_t ops;
	uint64_t errors;
	uint64_t conflicts; /* ESTALE on commit (should be 0: writers use disjoint keys) */
	uint64_t violations; /* fresh: read older than the last finished commit */
	uint64_t garbled; /* fresh: value that is not a number */
	double t_begin; /* when counting started */
	double t_end; /* when the last counted op finished */
	uint64_t hist[HIST_BUCKETS];
	uint64_t rhist[HIST_BUCKETS]; /* txn: the commit rename alone */
	char first_error[ERR_LEN];
};

/* The MAP_SHARED page, mapped by main() before any fork. */
struct shared {
	double start_at; /* CLOCK_MONOTONIC seconds at which workers begin (warm-up first) */
	_Atomic uint64_t committed; /* fresh: last sequence whose commit has returned */
	_Atomic int stop; /* fresh: writer finished */
	struct slot slot[MAX_PROCS];
};
extern struct shared *shared;

extern struct slot *my_slot; /* this process's slot: fail() counts into it */
extern int my_index;         /* this worker's number, 0..procs-1 */
extern double last_rename_done; /* CLOCK_MONOTONIC when sh_txn's commit rename returned */

double now_s(void); /* CLOCK_MONOTONIC in seconds */
/* Print "loadgen: <message>" on stderr and exit 2. */
noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Count an error in my_slot; remember the first one (with errno text) for the report. */
void fail(const char *what, const char *path, int err);

/*
 * Write a whole value with one open/write/close, creating missing parents below the
 * first `skip` bytes of path. 0, or -1 after fail().
 */
int put_file(const char *path, size_t skip, const char *val, size_t len, int flags);
/*
 * One statehouse transaction: mkdir .tx/NAME, write keys[i] = vals[i], commit by rename,
 * rmdir. 0 once committed, -1 after fail() (the transaction is removed).
 */
int sh_txn(const char *name, const char *const *keys, char *const *vals, const size_t *lens,
	   int n);
/* user.statehouse.commit_ts of a live key, or -1 (errno set). */
int64_t key_commit_ts(const char *path);
/* Commit a small value to default/bench-mark/<what> and return its commit_ts (the head). */
int64_t commit_mark(const char *what);

/* loadgen_stream.c: the stream modes, run by main() in the parent. */
void do_replay(void);
void do_follow(void);

#endif
