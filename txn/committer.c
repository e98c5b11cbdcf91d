/* SPDX-License-Identifier: MIT */
/*
 * committer.c - the commit path (txn layer): txn_commit_tx() and txn_autocommit() queue
 * a request; the committer thread takes a batch (group commit), has commit.c apply each
 * request, appends the batch with one store_append(), publishes it and completes every
 * request, through the notify hook when there is one.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "grow.h"
#include "log.h"
#include "txn_i.h"

#define BATCH_MAX 512 /* requests in one group commit */

static void publish_batch(struct txn_engine *eng, struct batch *b, int64_t keep_ts)
{
	for (size_t i = 0; i < b->na; i++) {
		struct applied *ap = &b->a[i];
		bool was = ap->v->older && ap->v->older->value;
		bool now = ap->v->value != NULL;

		if (was != now)
			txn_node_adjust_desc(ap->node, false, now ? 1 : -1);
	}
	eng->published_ts = eng->head_ts;
	for (size_t i = 0; i < b->na; i++)
		txn_node_prune(b->a[i].node, keep_ts);
	for (size_t i = 0; i < b->nac; i++) {
		free(b->ac[i].node->attr);
		b->ac[i].node->attr = b->ac[i].attr;
		b->ac[i].attr = NULL;
	}
}

static int64_t pinned_min_locked(struct txn_engine *eng, int64_t upto)
{
	struct txn *tx, *tmp;
	int64_t m = upto;

	HASH_ITER(hh_name, eng->by_name, tx, tmp) {
		if ((tx->state == TXN_OPEN || tx->state == TXN_COMMITTING) && tx->begin_ts < m)
			m = tx->begin_ts;
	}
	return m;
}

static void complete(struct txn_engine *eng, struct txn_commit_req *list, struct batch *b)
{
	struct txn_changes *ch = calloc(1, sizeof(*ch));
	struct txn_commit_req *late = NULL, **late_tail = &late;

	int64_t now = clock_now_ns(CLOCK_MONOTONIC);

	pthread_mutex_lock(&eng->lat_lock);
	for (struct txn_commit_req *r = list; r; r = r->next) {
		double s = (double)(now - r->queued_ns) / 1e9;
		int i = 0;

		while (i < TXN_LAT_BUCKETS - 1 && s > txn_latency_bounds_s[i])
			i++;
		for (; i < TXN_LAT_BUCKETS; i++)
			eng->lat_bucket[i]++;
		eng->lat_count++;
		eng->lat_sum_s += s;
		if (r->commit_ts < 0)
			eng->n_failed++;
		else if (!r->tx)
			eng->n_auto++;
	}
	pthread_mutex_unlock(&eng->lat_lock);
	for (struct txn_commit_req *r = list, *next; r; r = next) {
		int err = r->commit_ts < 0 ? (int)r->commit_ts : 0;

		next = r->next;
		r->next = NULL;
		if (err)
			r->commit_ts = 0;
		if (err || !r->late || !ch) {
			r->done(r, err);
		} else {
			*late_tail = r;
			late_tail = &r->next;
		}
	}
	if (!ch) {
		for (size_t i = 0; i < b->np; i++)
			free(b->paths[i]);
		return;
	}
	ch->paths = b->paths;
	ch->n = b->np;
	ch->late = late;
	b->paths = NULL;
	b->np = 0;
	if (eng->notify) {
		eng->notify(eng->notify_arg, ch);
	} else {
		for (struct txn_commit_req *r = ch->late, *next; r; r = next) {
			next = r->next;
			r->next = NULL;
			r->done(r, 0);
		}
		ch->late = NULL;
		txn_changes_free(ch);
	}
}

/*
 * One group commit.  Results travel in req->commit_ts: the commit_ts on success, a
 * negative errno on failure (complete() turns it back before done() runs).
 */
static void run_batch(struct txn_engine *eng, struct txn_commit_req *list)
{
	struct batch b = { 0 };
	int64_t time_ns = clock_now_ns(CLOCK_REALTIME);
	struct txn_commit_req *r;
	int serr = 0;

	pthread_rwlock_wrlock(&eng->tree_lock);
	for (r = list; r; r = r->next) {
		struct ev_build eb = { 0 };
		size_t mark = b.na, pmark = b.np, amark = b.nac;
		uint64_t put_mark = b.n_put, del_mark = b.n_del;
		int64_t ts = eng->head_ts + 1;
		int err = ARRAY_GROW(b.ev, b.nev + 1, b.cap_ev);

		if (!err)
			err = r->rejected;
		if (!err)
			err = r->tx ? txn_apply_tx(eng, &b, r, ts, time_ns, &eb)
				    : txn_apply_auto(eng, &b, r, ts, time_ns, &eb);
		if (err) {
			txn_batch_undo(&b, mark);
			txn_batch_drop_attrs(&b, amark);
			while (b.np > pmark)
				free(b.paths[--b.np]);
			b.n_put = put_mark;
			b.n_del = del_mark;
			free(eb.ops);
			r->commit_ts = err;
			continue;
		}
		if (!r->tx && eb.n == 0) {
			r->commit_ts = 0; /* nothing to commit (e.g. rename onto itself) */
			free(eb.ops);
			continue;
		}
		eng->head_ts = ts;
		r->commit_ts = ts;
		b.ev[b.nev++] = (struct store_event){
			.commit_ts = ts,
			.time_ns = time_ns,
			.txn = r->tx ? r->tx->name : AUTO_TXN_NAME,
			.note = r->note ? r->note->data : NULL,
			.note_len = r->note ? r->note->len : 0,
			.ops = eb.ops,
			.n_ops = eb.n,
		};
	}
	pthread_rwlock_unlock(&eng->tree_lock);

	if (b.nev) {
		int64_t t0 = clock_now_ns(CLOCK_MONOTONIC);

		serr = store_append(eng->store, b.ev, b.nev);
		if (serr)
			log_debug("commit batch of %zu failed: %s", b.nev, strerror(-serr));
		else
			log_debug("commit batch: %zu commits (commit_ts %" PRId64 "..%" PRId64
				  "), %zu changes, stored in %" PRId64 " us",
				  b.nev, b.ev[0].commit_ts, b.ev[b.nev - 1].commit_ts, b.np,
				  (clock_now_ns(CLOCK_MONOTONIC) - t0) / 1000);
	}

	/* Point of no return: the batch is durable (serr == 0) or nothing of it is. */
	pthread_rwlock_wrlock(&eng->tree_lock);
	pthread_mutex_lock(&eng->table_lock);
	if (serr) {
		txn_batch_undo(&b, 0);
		eng->head_ts = eng->published_ts;
		for (size_t i = 0; i < b.np; i++)
			free(b.paths[i]);
		b.np = 0;
	} else {
		publish_batch(eng, &b, pinned_min_locked(eng, eng->head_ts));
		eng->n_written += b.n_put;
		eng->n_deleted += b.n_del;
	}
	for (r = list; r; r = r->next) {
		struct txn *tx = r->tx;

		if (serr && r->commit_ts > 0)
			r->commit_ts = serr;
		if (!tx)
			continue;
		pthread_mutex_lock(&tx->lock);
		if (r->commit_ts < 0 && r->note && r->path) {
			/* The note file comes back under its name: a failed commit changes
			 * nothing, and the VFS retries an ESTALE rename once by path. */
			txn_note_set(tx, r->path, r->note);
			r->note = NULL;
		}
		if (r->commit_ts > 0) {
			tx->commit_ts = r->commit_ts;
			tx->commit_time_ns = time_ns;
			tx->committed_ops = tx->n_ops;
			tx->err = 0;
			txn_unpin_locked(eng, tx, TXN_COMMITTED);
			txn_staged_free_all(tx);
		} else if (r->commit_ts == -ETIMEDOUT) {
			txn_unpin_locked(eng, tx, TXN_EXPIRED);
			txn_staged_free_all(tx);
		} else if (r->commit_ts == -ESTALE || r->commit_ts == -ENOTDIR ||
			   r->commit_ts == -EISDIR) {
			txn_unpin_locked(eng, tx, TXN_CONFLICT);
			txn_staged_free_all(tx);
		} else {
			/* Storage failure: nothing changed; the transaction may be retried. */
			tx->state = TXN_OPEN;
			tx->err = (int)r->commit_ts;
		}
		pthread_mutex_unlock(&tx->lock);
	}
	pthread_mutex_unlock(&eng->table_lock);
	pthread_rwlock_unlock(&eng->tree_lock);

	for (size_t i = 0; i < b.nev; i++)
		free((void *)b.ev[i].ops);
	free(b.ev);
	free(b.a);
	txn_batch_drop_attrs(&b, 0); /* applied ones were handed over; this frees the rest */
	free(b.ac);
	complete(eng, list, &b);
	free(b.paths);
}

void *txn_committer_main(void *arg)
{
	struct txn_engine *eng = arg;

	for (;;) {
		struct txn_commit_req *list, *r, **tail;
		size_t n = 0;

		pthread_mutex_lock(&eng->q_lock);
		while (!eng->q_head && !eng->stopping)
			pthread_cond_wait(&eng->q_cond, &eng->q_lock);
		if (!eng->q_head) {
			pthread_mutex_unlock(&eng->q_lock);
			break;
		}
		/* Take up to BATCH_MAX requests: one fsync for all of them. */
		list = eng->q_head;
		tail = &list;
		for (r = list; r && n < BATCH_MAX; r = r->next, n++)
			tail = &r->next;
		eng->q_head = *tail;
		*tail = NULL;
		if (!eng->q_head)
			eng->q_tail = &eng->q_head;
		pthread_mutex_unlock(&eng->q_lock);
		run_batch(eng, list);
	}
	return NULL;
}

static void enqueue(struct txn_engine *eng, struct txn_commit_req *req)
{
	req->next = NULL;
	req->queued_ns = clock_now_ns(CLOCK_MONOTONIC);
	pthread_mutex_lock(&eng->q_lock);
	*eng->q_tail = req;
	eng->q_tail = &req->next;
	pthread_cond_signal(&eng->q_cond);
	pthread_mutex_unlock(&eng->q_lock);
}

void txn_autocommit(struct txn_engine *eng, struct txn_commit_req *req)
{
	int err = txn_path_check(req->path, strlen(req->path));

	if (!err && req->path2)
		err = txn_path_check(req->path2, strlen(req->path2));
	if (!err && req->kind == TXN_AUTO_PUT && txn_path_depth(req->path, strlen(req->path)) < 3)
		err = -EINVAL;
	if (!err && req->kind == TXN_AUTO_PUT && req->value->len > eng->opt.max_value_bytes)
		err = -EFBIG;
	req->tx = NULL;
	/* A refused request still completes on the committer thread, like every other. */
	req->rejected = err;
	enqueue(eng, req);
}

int txn_commit_tx(struct txn_engine *eng, struct txn *tx, const char *note_name,
		  struct txn_commit_req *req)
{
	struct note *nt = NULL;
	int err;

	pthread_mutex_lock(&eng->table_lock);
	pthread_mutex_lock(&tx->lock);
	err = txn_stage_state_err(tx);
	if (err == -ETIMEDOUT && tx->state == TXN_OPEN) {
		txn_unpin_locked(eng, tx, TXN_EXPIRED);
		txn_fail_locked(tx, err, NULL, 0);
		txn_staged_free_all(tx);
	}
	if (!err) {
		HASH_FIND_STR(tx->notes, note_name, nt);
		if (!nt)
			err = -ENOENT;
	}
	if (!err) {
		req->path = strdup(note_name);
		if (!req->path)
			err = -ENOMEM;
	}
	if (!err) {
		HASH_DEL(tx->notes, nt);
		req->note = nt->content;
		free(nt->name);
		free(nt);
		req->tx = txn_ref(tx);
		tx->state = TXN_COMMITTING;
		tx->err = 0;
	}
	pthread_mutex_unlock(&tx->lock);
	pthread_mutex_unlock(&eng->table_lock);
	if (!err)
		enqueue(eng, req);
	return err;
}

void txn_commit_req_free(struct txn_commit_req *req)
{
	if (!req)
		return;
	free(req->path);
	free(req->path2);
	blob_unref(req->value);
	blob_unref(req->note);
	txn_unref(req->tx);
	free(req);
}

void txn_changes_free(struct txn_changes *ch)
{
	if (!ch)
		return;
	for (size_t i = 0; i < ch->n; i++)
		free(ch->paths[i]);
	free(ch->paths);
	free(ch);
}

void txn_engine_set_notify(struct txn_engine *eng, txn_notify_fn fn, void *arg)
{
	eng->notify = fn;
	eng->notify_arg = arg;
}
