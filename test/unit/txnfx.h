/* SPDX-License-Identifier: MIT */
/*
 * txnfx.h - the engine fixture the txn unit tests share (test_txn*.c): a fresh engine on a
 * scratch data dir, completions waited for on one process-wide condvar, gates that park the
 * committer, and short helpers to commit, stage and read.  See txnfx.c.
 */
#ifndef STATEHOUSE_TXNFX_H
#define STATEHOUSE_TXNFX_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "testutil.h"

#include "txn.h"

#define WAIT_S 60 /* deadline for anything the committer or reaper must do */

extern pthread_mutex_t g_lock;
extern pthread_cond_t g_cond;
struct done {
	bool done;
	int calls;
	int err;
	int64_t commit_ts;
	pthread_t thread;
	bool hold;     /* a gate: park the committer until released */
	bool released;
	bool left;     /* the gate's done() has returned its hold */
};

#define MAX_TRACKED 16

struct fx {
	char *dir;
	struct txn_options opt;
	struct txn_engine *eng;
	struct done gate;                 /* see gate_close() */
	struct txn_commit_req *gate_req;  /* non-NULL while the committer is parked */
	struct txn *txs[MAX_TRACKED];     /* references from begin(), dropped in teardown */
	size_t ntxs;
};

extern const struct txn_options default_opt;
#define assert_value(f, tx, path, expected)                                    \
	do {                                                                   \
		int e__ = 0;                                                   \
		char *v__ = get((f), (tx), (path), &e__, NULL);                \
		assert_errno(e__, 0);                                          \
		check_str(v__, (expected), "value", (path), __FILE__, __LINE__); \
	} while (0)

#define assert_absent(f, tx, path)                                             \
	do {                                                                   \
		struct txn_entry en__;                                         \
		assert_errno(txn_stat((f)->eng, (tx), (path), strlen(path), &en__), \
			     -ENOENT);                                         \
	} while (0)

#define assert_listing(f, tx, path, expected)                                  \
	do {                                                                   \
		int e__ = 0;                                                   \
		char *l__ = listing((f), (tx), (path), &e__);                  \
		assert_errno(e__, 0);                                          \
		check_str(l__, (expected), "listing", (path), __FILE__, __LINE__); \
	} while (0)

#define assert_status(f, tx, key, expected)                                    \
	do {                                                                   \
		char *s__ = status_field((f), (tx), (key));                    \
		check_str(s__, (expected), "status field", (key), __FILE__, __LINE__); \
	} while (0)


void on_done(struct txn_commit_req *req, int err);
void deadline_in(struct timespec *ts, int secs);
void wait_done(struct done *d);
void release(struct done *d);
int fx_start(struct fx *f);
int setup(void **state);
int teardown(void **state);
void restart(struct fx *f);
struct txn_commit_req *auto_req(enum txn_auto_kind kind, const char *path,
				       const char *path2, const void *val, size_t len,
				       struct done *d);
int run_auto(struct fx *f, struct txn_commit_req *req, int64_t *ts);
int put_n(struct fx *f, const char *path, const void *val, size_t len, int64_t *ts);
int put(struct fx *f, const char *path, const char *val, int64_t *ts);
int del(struct fx *f, const char *path, int64_t *ts);
int ren(struct fx *f, const char *from, const char *to, bool noreplace, int64_t *ts);
void gate_close(struct fx *f);
void gate_open(struct fx *f);
int commit(struct fx *f, struct txn *tx, int64_t *ts);
struct txn *begin(struct fx *f, const char *name);
int stage(struct fx *f, struct txn *tx, const char *path, const char *val);
int unstage(struct fx *f, struct txn *tx, const char *path);
char *get(struct fx *f, struct txn *tx, const char *path, int *err,
		 struct txn_entry *meta);
void check_str(char *got, const char *want, const char *what, const char *path,
		      const char *file, int line);
int64_t version_of(struct fx *f, struct txn *tx, const char *path);
char *listing(struct fx *f, struct txn *tx, const char *path, int *err);
char *status_field(struct fx *f, struct txn *tx, const char *key);
enum txn_state wait_state_change(struct txn *tx, enum txn_state from);

/* A notify hook that records the changed paths and completes late requests. */
struct hook {
	char paths[256];
	int calls, late_done;
};

void hook_fn(void *arg, struct txn_changes *ch);

#endif
