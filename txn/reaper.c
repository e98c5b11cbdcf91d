/* SPDX-License-Identifier: MIT */
/*
 * reaper.c - the reaper thread (txn layer): expiry of transactions past their deadline,
 * and snapshots of the published state, written every snapshot_interval commits and at
 * a clean close (the loading side is in recover.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "clock.h"
#include "grow.h"
#include "log.h"
#include "txn_i.h"

/* ---- the reaper ------------------------------------------------------------------------ */

/* Open transactions past their deadline expire; finished ones older than txn_linger_ms
 * leave the table (their .status and .commit with them).  Only the open ones are
 * walked: the finished ones are in the order they finished, so the reaper stops at the
 * first that may stay. */
static void reap(struct txn_engine *eng)
{
	struct txn *tx, *tmp, *gone = NULL;
	txn_reap_fn reap_fn;
	void *reap_arg;
	int64_t now = clock_now_ns(CLOCK_MONOTONIC), linger_ns = eng->opt.txn_linger_ms * 1000000;

	pthread_mutex_lock(&eng->table_lock);
	DL_FOREACH_SAFE2(eng->open_txns, tx, tmp, lnext) {
		pthread_mutex_lock(&tx->lock);
		if (tx->state == TXN_OPEN && txn_deadline_passed(tx)) {
			txn_unpin_locked(eng, tx, TXN_EXPIRED);
			txn_fail_locked(tx, -ETIMEDOUT, NULL, 0);
			txn_staged_free_all(tx);
			txn_jhead_locked(tx);
		}
		pthread_mutex_unlock(&tx->lock);
	}
	while (linger_ns && (tx = eng->finished) && now - tx->finished_mono_ns >= linger_ns) {
		pthread_mutex_lock(&tx->lock);
		txn_table_del_locked(eng, tx);
		txn_jremoved_locked(tx);
		pthread_mutex_unlock(&tx->lock);
		eng->n_reaped++;
		tx->lnext = gone; /* off every list now: the link is free */
		gone = tx;
	}
	reap_fn = eng->reap_fn;
	reap_arg = eng->reap_arg;
	pthread_mutex_unlock(&eng->table_lock);
	while ((tx = gone)) {
		gone = tx->lnext;
		log_debug("finished transaction '%s' reaped", tx->name);
		if (reap_fn)
			reap_fn(reap_arg, tx->name);
		txn_unref(tx); /* the table's reference */
	}
}

void txn_engine_set_reap_hook(struct txn_engine *eng, txn_reap_fn fn, void *arg)
{
	pthread_mutex_lock(&eng->table_lock);
	eng->reap_fn = fn;
	eng->reap_arg = arg;
	pthread_mutex_unlock(&eng->table_lock);
}

/* ---- snapshots -------------------------------------------------------------------------- */

struct snap_item {
	char *path;
	size_t len;
	struct version v;   /* a copy: value referenced, older unused */
	int dir;            /* STORE_SNAP_DIR or STORE_SNAP_DIR_TIME: v.time_ns only */
};

struct snap_vec {
	struct snap_item *it;
	size_t n, cap, next;
	size_t ndirs; /* of the n items, directories */
};

static void snap_vec_free(struct snap_vec *sv)
{
	for (size_t i = 0; i < sv->n; i++) {
		free(sv->it[i].path);
		blob_unref(sv->it[i].v.value);
	}
	free(sv->it);
}

/* Every key's version as of ts below n (tree lock held). */
static int snap_collect(struct node *n, int64_t ts, struct snap_vec *sv)
{
	struct version *v = txn_node_visible(n, ts);
	struct node *c, *tmp;
	int err;

	if (n->attr) {
		/* A namespace's or agent's owner (an entry of one or two components), or a
		 * key's mode (version 0, before the key's own entry). */
		struct txn_attr a = { n->attr->uid, n->attr->gid, n->attr->mode, true };

		if (ARRAY_GROW(sv->it, sv->n + 1, sv->cap))
			return -ENOMEM;
		memset(&sv->it[sv->n], 0, sizeof(sv->it[sv->n]));
		sv->it[sv->n].path = txn_node_path(n, &sv->it[sv->n].len);
		if (sv->it[sv->n].path)
			sv->it[sv->n].v.value = txn_attr_encode(
				&a, txn_path_depth(sv->it[sv->n].path, sv->it[sv->n].len) > 2);
		if (!sv->it[sv->n].path || !sv->it[sv->n].v.value) {
			free(sv->it[sv->n].path);
			blob_unref(sv->it[sv->n].v.value);
			return -ENOMEM;
		}
		sv->n++;
	}
	if (n->explicit_dir || n->entries_ns) {
		/* A directory: explicit (below an agent), or only the time of its entries. */
		if (ARRAY_GROW(sv->it, sv->n + 1, sv->cap))
			return -ENOMEM;
		memset(&sv->it[sv->n], 0, sizeof(sv->it[sv->n]));
		sv->it[sv->n].path = txn_node_path(n, &sv->it[sv->n].len);
		if (!sv->it[sv->n].path)
			return -ENOMEM;
		sv->it[sv->n].v.time_ns = n->entries_ns;
		sv->it[sv->n].dir = n->explicit_dir && txn_path_depth(sv->it[sv->n].path,
								       sv->it[sv->n].len) > 2
					    ? STORE_SNAP_DIR : STORE_SNAP_DIR_TIME;
		sv->n++;
		sv->ndirs++;
	}
	if (v) {
		if (ARRAY_GROW(sv->it, sv->n + 1, sv->cap))
			return -ENOMEM;
		sv->it[sv->n].dir = 0;
		sv->it[sv->n].path = txn_node_path(n, &sv->it[sv->n].len);
		if (!sv->it[sv->n].path)
			return -ENOMEM;
		sv->it[sv->n].v = *v;
		blob_ref(v->value);
		sv->n++;
	}
	HASH_ITER(hh, n->children, c, tmp) {
		err = snap_collect(c, ts, sv);
		if (err)
			return err;
	}
	return 0;
}

static int snap_next(void *arg, struct store_snap_entry *e)
{
	struct snap_vec *sv = arg;
	struct snap_item *it;

	if (sv->next == sv->n)
		return 0;
	it = &sv->it[sv->next++];
	*e = (struct store_snap_entry){
		.path = it->path,
		.path_len = it->len,
		.version = it->v.version,
		.commit_ts = it->v.commit_ts,
		.time_ns = it->v.time_ns,
		.deleted = !it->dir && it->v.value == NULL,
		.dir = it->dir,
		.value = it->v.value ? it->v.value->data : NULL,
		.value_len = it->v.value ? it->v.value->len : 0,
	};
	return 1;
}

int txn_engine_snapshot(struct txn_engine *eng)
{
	struct snap_vec sv = { 0 };
	int64_t t0 = clock_now_ns(CLOCK_MONOTONIC), ts, t1;
	int err;

	/* A consistent copy under the read lock (values are shared, not copied); the file
	 * is written without any lock. */
	pthread_rwlock_rdlock(&eng->tree_lock);
	ts = eng->published_ts;
	err = snap_collect(&eng->root, ts, &sv);
	pthread_rwlock_unlock(&eng->tree_lock);
	t1 = clock_now_ns(CLOCK_MONOTONIC);
	/* The log first: with fsync=0 its last commits may not be durable yet, and a
	 * snapshot must never be ahead of the log after a power cut (that is refused at
	 * start as lost commits). */
	if (!err)
		err = store_log_sync(eng->opt.store_uri, eng->datadir);
	if (!err)
		err = store_snapshot_write(eng->datadir, ts, clock_now_ns(CLOCK_REALTIME), snap_next, &sv,
					   eng->opt.snapshot_keep);
	if (!err) {
		eng->snap_ts = ts;
		log_info("snapshot at commit %" PRId64 " written (%zu keys; %" PRId64
			 " ms under the read lock, %" PRId64 " ms in all)",
			 ts, sv.n - sv.ndirs, (t1 - t0) / 1000000, (clock_now_ns(CLOCK_MONOTONIC) - t0) / 1000000);
		txn_recover_mark(eng, ts, false);
	}
	snap_vec_free(&sv);
	return err;
}

static void maybe_snapshot(struct txn_engine *eng)
{
	if (!eng->opt.snapshot_interval || eng->opt.inspect_only ||
	    txn_engine_head(eng) - eng->snap_ts < (int64_t)eng->opt.snapshot_interval ||
	    clock_now_ns(CLOCK_MONOTONIC) < eng->snap_retry_ns)
		return;
	if (txn_engine_snapshot(eng) != 0)
		eng->snap_retry_ns = clock_now_ns(CLOCK_MONOTONIC) + 5 * (int64_t)1000000000;
}

void *txn_reaper_main(void *arg)
{
	struct txn_engine *eng = arg;

	pthread_mutex_lock(&eng->q_lock);
	while (!eng->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&eng->reaper_cond, &eng->q_lock, &ts);
		pthread_mutex_unlock(&eng->q_lock);
		reap(eng);
		maybe_snapshot(eng);
		txn_recover_mark_often(eng);
		pthread_mutex_lock(&eng->q_lock);
	}
	pthread_mutex_unlock(&eng->q_lock);
	return NULL;
}
