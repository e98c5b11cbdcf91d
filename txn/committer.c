/* SPDX-License-Identifier: MIT */
/*
 * committer.c - the commit path (txn layer): txn_commit_tx() and txn_autocommit() queue
 * a request; the committer thread takes a batch (group commit), has commit.c apply each
 * request, appends the batch with one store_append(), publishes it and completes every
 * request, through the notify hook when there is one.
 *
 * Transaction state machine (edges named by the function that takes them; run_batch()
 * sets the states in settle_tx() after txn_apply_tx() (commit.c) decided and the store
 * answered)
 *   OPEN --txn_commit_tx--> COMMITTING --run_batch (durable)--> COMMITTED
 *   COMMITTING --run_batch (txn_apply_tx: conflict / shape clash)--> CONFLICT
 *   COMMITTING --run_batch (txn_apply_tx: deadline passed)--> EXPIRED
 *   COMMITTING --run_batch (store failed: ENOSPC, EIO)--> OPEN   (nothing changed; retry)
 *   OPEN --reap_expired (reaper.c) / txn_commit_tx (deadline passed)--> EXPIRED
 *   OPEN --txn_remove (table.c)--> ABORTED (and out of the table)
 * Only OPEN and COMMITTING pin a snapshot and count against max_open_txns
 * (txn_unpin_locked() in table.c keeps the count).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "grow.h"
#include "log.h"
#include "txn_i.h"

#define BATCH_MAX 512 /* requests in one group commit */
/* A batch refused this many times in a row by a shared log that others keep moving
 * fails with EIO (nothing of it committed). */
#define BEHIND_TRIES_MAX 64

/* ---- queueing a request ------------------------------------------------------------ */

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

/* A caller that waits for its autocommit (txn_autocommit_wait()). */
struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int err;
};

static void waiter_done(struct txn_commit_req *req, int err)
{
	struct waiter *w = req->arg;

	pthread_mutex_lock(&w->lock);
	w->err = err;
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Queue an autocommit of kind at path and wait until it is durable (or failed); path is
 * copied.  No lock may be held: the committer takes the tree lock. */
int txn_autocommit_wait(struct txn_engine *eng, enum txn_auto_kind kind, const char *path,
			size_t len, const struct txn_reqid *id)
{
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 };
	struct txn_commit_req *req = calloc(1, sizeof(*req));

	if (!req || !(req->path = strndup(path, len))) {
		free(req);
		return -ENOMEM;
	}
	req->kind = kind;
	if (id)
		req->id = *id;
	req->done = waiter_done;
	req->arg = &w;
	txn_autocommit(eng, req);
	pthread_mutex_lock(&w.lock);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	txn_commit_req_free(req);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return w.err;
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
		txn_jhead_locked(tx);
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
		txn_charge_locked(tx, -(long long)nt->charge, true);
		req->note = nt->content;
		free(nt->name);
		free(nt);
		req->tx = txn_ref(tx);
		tx->jnote_name = req->path;
		tx->jnote = req->note;
		tx->state = TXN_COMMITTING;
		tx->err = 0;
		tx->conflict = TXN_CONFLICT_NONE;
	}
	pthread_mutex_unlock(&tx->lock);
	pthread_mutex_unlock(&eng->table_lock);
	if (!err)
		enqueue(eng, req);
	return err;
}

int txn_applied_find(struct txn_engine *eng, const struct txn_reqid *id,
		     struct txn_applied *out)
{
	struct store_reqid sid = { id->instance, id->unique };
	struct store_applied a;
	int err;

	memset(out, 0, sizeof(*out));
	if (!id->instance)
		return -EINVAL;
	err = store_applied_find(eng->store, &sid, &a);
	if (err)
		return err;
	out->commit_ts = a.commit_ts;
	out->time_ns = a.time_ns;
	if (a.txn)
		snprintf(out->txn, sizeof(out->txn), "%s", a.txn);
	store_applied_release(&a);
	return 0;
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

/* ---- the committer thread: one batch at a time -------------------------------------- */

/* (txn_committer_main(), at the end of the file, takes up to BATCH_MAX requests off the
 * queue and hands them to run_batch().) */

/* Make a durable batch visible: published_ts moves to the head (invariant 3), versions
 * no pinned snapshot needs are pruned (invariant 4), owner records take effect. */
static void publish_batch(struct txn_engine *eng, struct batch *b, int64_t keep_ts)
{
	for (size_t i = 0; i < b->na; i++) {
		struct applied *ap = &b->a[i];
		bool was = ap->v->older && ap->v->older->value;
		bool now = ap->v->value != NULL;

		if (was != now) {
			txn_node_adjust_desc(ap->node, false, now ? 1 : -1);
			txn_node_touch_parent(ap->node, ap->v->time_ns);
		}
	}
	for (size_t i = 0; i < b->ndc; i++) {
		txn_node_set_dir(b->dc[i].node, false, b->dc[i].make);
		txn_node_touch_parent(b->dc[i].node, b->dc[i].time_ns);
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

/* txn_i.h */
int64_t txn_pinned_min_locked(struct txn_engine *eng, int64_t upto)
{
	struct txn *tx, *tmp;
	int64_t m = upto;

	HASH_ITER(hh_name, eng->by_name, tx, tmp) {
		if ((tx->state == TXN_OPEN || tx->state == TXN_COMMITTING) && tx->begin_ts < m)
			m = tx->begin_ts;
	}
	return m;
}

/* Where a batch stood before a request, to take the request back when it fails. */
struct batch_mark {
	size_t na, np, nac, ndc, nsu;
	uint64_t n_put, n_del;
};

static void batch_rewind(struct batch *b, const struct batch_mark *m)
{
	txn_batch_undo_sub(b, m->nsu);
	txn_batch_undo_dirs(b, m->ndc);
	txn_batch_undo(b, m->na);
	txn_batch_drop_attrs(b, m->nac);
	while (b->np > m->np)
		free(b->paths[--b->np]);
	b->n_put = m->n_put;
	b->n_del = m->n_del;
}

/*
 * Validate and apply one request at the head, as the next commit_ts, and add its event
 * to the batch; the tree write lock is held.  The result goes to r->commit_ts: the
 * commit_ts, 0 when there is nothing to commit, or a negative errno.
 */
static void batch_apply_one(struct txn_engine *eng, struct batch *b, struct txn_commit_req *r,
			    int64_t time_ns)
{
	struct batch_mark m = { b->na, b->np, b->nac, b->ndc, b->nsu, b->n_put, b->n_del };
	struct ev_build eb = { 0 };
	int64_t ts = eng->head_ts + 1;
	int err = ARRAY_GROW(b->ev, b->nev + 1, b->cap_ev);

	if (!err)
		err = r->rejected;
	if (!err)
		err = r->tx ? txn_apply_tx(eng, b, r, ts, time_ns, &eb)
			    : txn_apply_auto(eng, b, r, ts, time_ns, &eb);
	if (err) {
		batch_rewind(b, &m);
		free(eb.ops);
		r->commit_ts = err;
		return;
	}
	if (!r->tx && eb.n == 0) {
		r->commit_ts = 0; /* nothing to commit (e.g. rename onto itself) */
		free(eb.ops);
		return;
	}
	eng->head_ts = ts;
	r->commit_ts = ts;
	b->ev[b->nev++] = (struct store_event){
		.commit_ts = ts,
		.time_ns = time_ns,
		.txn = r->tx ? r->tx->name : AUTO_TXN_NAME,
		.note = r->note ? r->note->data : NULL,
		.note_len = r->note ? r->note->len : 0,
		.ops = eb.ops,
		.n_ops = eb.n,
		/* Recorded in the batch's store transaction: durable with the commit. */
		.req = { r->id.instance, r->id.unique },
	};
}

/* The one durable write of a batch; no lock is held. */
static int batch_store(struct txn_engine *eng, struct batch *b)
{
	int64_t t0 = clock_now_ns(CLOCK_MONOTONIC);
	int serr;

	if (!b->nev)
		return 0;
	serr = txn_recover_record_pending(eng);
	if (!serr)
		serr = store_append(eng->store, b->ev, b->nev);
	if (serr) {
		log_debug("commit batch of %zu failed: %s", b->nev, strerror(-serr));
		return serr;
	}
	pthread_mutex_lock(&eng->lat_lock);
	eng->n_batches++;
	eng->n_batched += b->nev;
	pthread_mutex_unlock(&eng->lat_lock);
	log_debug("commit batch: %zu commits (commit_ts %" PRId64 "..%" PRId64
		  "), %zu changes, stored in %" PRId64 " us",
		  b->nev, b->ev[0].commit_ts, b->ev[b->nev - 1].commit_ts, b->np,
		  (clock_now_ns(CLOCK_MONOTONIC) - t0) / 1000);
	return 0;
}

/* Take a transaction along the state machine by its request's result, once the store
 * answered.  Tree write lock and table_lock held. */
static void settle_tx(struct txn_engine *eng, struct txn_commit_req *r, int64_t time_ns)
{
	struct txn *tx = r->tx;

	pthread_mutex_lock(&tx->lock);
	tx->jnote_name = NULL;
	tx->jnote = NULL;
	if (r->commit_ts < 0 && r->note && r->path) {
		/* The note file comes back under its name: a failed commit changes
		 * nothing, and the VFS retries an ESTALE rename once by path. */
		txn_note_set(tx, r->path, r->note, true);
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
	/* The outcome (journaled as open until now: journal.c, design note 4), and the
	 * note its commit took (back, unless it committed or failed for good). */
	if (r->path)
		txn_jtouch_locked(tx, JI_NOTE, r->path, strlen(r->path));
	txn_jhead_locked(tx);
	pthread_mutex_unlock(&tx->lock);
}

/* Publish a durable batch, or take all of it back; then settle every request. */
static void batch_settle(struct txn_engine *eng, struct batch *b, struct txn_commit_req *list,
			 int serr, int64_t time_ns)
{
	pthread_rwlock_wrlock(&eng->tree_lock);
	pthread_mutex_lock(&eng->table_lock);
	if (serr) {
		txn_batch_undo_sub(b, 0);
		txn_batch_undo_dirs(b, 0);
		txn_batch_undo(b, 0);
		eng->head_ts = eng->published_ts;
		for (size_t i = 0; i < b->np; i++)
			free(b->paths[i]);
		b->np = 0;
	} else {
		publish_batch(eng, b, txn_pinned_min_locked(eng, eng->head_ts));
		eng->n_written += b->n_put;
		eng->n_deleted += b->n_del;
	}
	for (struct txn_commit_req *r = list; r; r = r->next) {
		if (serr && r->commit_ts > 0)
			r->commit_ts = serr;
		if (r->tx)
			settle_tx(eng, r, time_ns);
	}
	pthread_mutex_unlock(&eng->table_lock);
	pthread_rwlock_unlock(&eng->tree_lock);
}

/* Latencies and counters of the requests of one batch, for .metrics. */
static void count_requests(struct txn_engine *eng, struct txn_commit_req *list)
{
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
}

/*
 * Run every request's done(), except the successful ones that asked to wait for the
 * invalidation of the caches (req->late): those go with the changed paths to the notify
 * hook, which completes them after invalidating.  No lock is held.
 */
static void complete(struct txn_engine *eng, struct txn_commit_req *list, struct batch *b)
{
	struct txn_changes *ch = calloc(1, sizeof(*ch));
	struct txn_commit_req *late = NULL, **late_tail = &late;

	count_requests(eng, list);
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
		b->np = 0;
		return;
	}
	ch->paths = b->paths;
	ch->n = b->np;
	ch->late = late;
	ch->upto_ts = b->np && b->nev ? b->ev[b->nev - 1].commit_ts : 0;
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

#if STATEHOUSE_FAULT_INJECTION
void txn_engine_set_answer_pause(struct txn_engine *eng, unsigned ms)
{
	eng->answer_pause_ms = ms;
}

/* The test hook: a durable batch with a transaction commit waits before its answers. */
static void answer_pause(struct txn_engine *eng, struct txn_commit_req *list)
{
	struct timespec ts = { eng->answer_pause_ms / 1000,
			       (long)(eng->answer_pause_ms % 1000) * 1000000 };

	for (struct txn_commit_req *r = list; r; r = r->next) {
		if (r->tx && r->commit_ts > 0) {
			log_warn("test hook: pausing %u ms before answering the commit of "
				 "transaction '%s' at commit_ts %" PRId64 " (durable)",
				 eng->answer_pause_ms, r->tx->name, r->commit_ts);
			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				;
			return;
		}
	}
}
#endif

static void run_batch(struct txn_engine *eng, struct txn_commit_req *list);
static void run_halves(struct txn_engine *eng, struct txn_commit_req *list);

/* What a batch holds once its requests were completed (or taken back). */
static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->nev; i++)
		free((void *)b->ev[i].ops);
	free(b->ev);
	free(b->a);
	txn_batch_drop_attrs(b, 0); /* applied ones were handed over; this frees the rest */
	free(b->ac);
	free(b->dc);
	free(b->su);
	for (size_t i = 0; i < b->np; i++)
		free(b->paths[i]);
	free(b->paths);
}

/* A batch the shared log refused (STORE_BEHIND): every request and version taken back,
 * the batch emptied, the head where it was, so the requests can apply again. */
static void batch_take_back(struct txn_engine *eng, struct batch *b,
			    struct txn_commit_req *list)
{
	pthread_rwlock_wrlock(&eng->tree_lock);
	txn_batch_undo_sub(b, 0);
	txn_batch_undo_dirs(b, 0);
	txn_batch_undo(b, 0);
	txn_batch_drop_attrs(b, 0);
	eng->head_ts = eng->published_ts;
	pthread_rwlock_unlock(&eng->tree_lock);
	for (size_t i = 0; i < b->np; i++)
		free(b->paths[i]);
	b->np = 0;
	for (size_t i = 0; i < b->nev; i++)
		free((void *)b->ev[i].ops);
	b->nev = 0;
	b->n_put = b->n_del = 0;
	for (struct txn_commit_req *r = list; r; r = r->next)
		r->commit_ts = 0;
}

/*
 * One group commit: apply every request at the head (unpublished, invariant 3), append
 * them all with one store_append(), then publish or undo, settle and complete.  Results
 * travel in req->commit_ts: the commit_ts on success, a negative errno on failure
 * (complete() turns it back before done() runs).
 */
static void run_batch(struct txn_engine *eng, struct txn_commit_req *list)
{
	struct batch b = { 0 };
	int64_t time_ns = clock_now_ns(CLOCK_REALTIME);
	int serr;

	for (unsigned tries = 0;; tries++) {
		pthread_rwlock_wrlock(&eng->tree_lock);
		for (struct txn_commit_req *r = list; r; r = r->next)
			batch_apply_one(eng, &b, r, time_ns);
		pthread_rwlock_unlock(&eng->tree_lock);

		serr = batch_store(eng, &b);
		if (serr != STORE_BEHIND)
			break;
		/* Other mounts of a shared log committed first: take the batch back, apply
		 * theirs, and check every request again at the new head. */
		atomic_fetch_add(&eng->n_behind, 1);
		batch_take_back(eng, &b, list);
		serr = txn_remote_pull(eng);
		if (serr || tries >= BEHIND_TRIES_MAX) {
			log_warn("cannot catch up with the shared log to commit a batch of %zu "
				 "(%s)", b.nev, serr ? strerror(-serr) : "too many tries");
			serr = -EIO;
			for (struct txn_commit_req *r = list; r; r = r->next)
				r->commit_ts = serr; /* taken back: none of them committed */
			break;
		}
	}
	if (serr == -E2BIG && list->next) {
		/* Over the shared log's limit for one write: each half on its own. */
		batch_take_back(eng, &b, list);
		batch_free(&b);
		run_halves(eng, list);
		return;
	}
	if (serr == -E2BIG)
		serr = -EFBIG; /* one commit larger than the store takes at once */

	/* Point of no return: the batch is durable (serr == 0) or nothing of it is. */
	batch_settle(eng, &b, list, serr, time_ns);
#if STATEHOUSE_FAULT_INJECTION
	if (eng->answer_pause_ms && !serr)
		answer_pause(eng, list);
#endif

	complete(eng, list, &b);
	batch_free(&b);
}

static void run_halves(struct txn_engine *eng, struct txn_commit_req *list)
{
	struct txn_commit_req *second = list, **cut = &list;
	size_t n = 0;

	for (struct txn_commit_req *r = list; r; r = r->next)
		n++;
	for (size_t i = 0; i < n / 2; i++) {
		cut = &second->next;
		second = second->next;
	}
	*cut = NULL;
	run_batch(eng, list);
	run_batch(eng, second);
}

/* Pull the commits of other mounts; a pull that failed (the shared log unreachable) is
 * tried again after a while, as the store does not wake for it. */
static void remote_pull(struct txn_engine *eng)
{
	int err = txn_remote_pull(eng);

	if (err) {
		log_debug("cannot pull from the shared log (%s); trying again in 200 ms",
			  strerror(-err));
		eng->remote_retry_ns = clock_now_ns(CLOCK_MONOTONIC) + 200000000;
	} else {
		eng->remote_retry_ns = 0;
	}
}

void *txn_committer_main(void *arg)
{
	struct txn_engine *eng = arg;

	for (;;) {
		struct txn_commit_req *list, *r, **tail;
		size_t n = 0;

		pthread_mutex_lock(&eng->q_lock);
		if (eng->remote_wake) {
			/* Commits of other mounts first: a batch is checked at their head. */
			eng->remote_wake = false;
			pthread_mutex_unlock(&eng->q_lock);
			remote_pull(eng);
			continue;
		}
		while (!eng->q_head && !eng->stopping && !eng->remote_wake) {
			/* Idle: retention's steps (retain.c) while there is nothing to commit. */
			int64_t due = txn_retain_due_ns(eng), wait;
			struct timespec ts;

			if (eng->remote_retry_ns && (!due || eng->remote_retry_ns < due))
				due = eng->remote_retry_ns;

			if (!due) {
				pthread_cond_wait(&eng->q_cond, &eng->q_lock);
				continue;
			}
			wait = due - clock_now_ns(CLOCK_MONOTONIC);
			if (wait <= 0 && eng->remote_retry_ns &&
			    eng->remote_retry_ns <= clock_now_ns(CLOCK_MONOTONIC)) {
				eng->remote_wake = true;
				continue;
			}
			if (wait <= 0) {
				pthread_mutex_unlock(&eng->q_lock);
				txn_retain_step(eng);
				pthread_mutex_lock(&eng->q_lock);
				continue;
			}
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait / 1000000000;
			ts.tv_nsec += wait % 1000000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&eng->q_cond, &eng->q_lock, &ts);
		}
		if (!eng->q_head) {
			pthread_mutex_unlock(&eng->q_lock);
			if (eng->stopping)
				break;
			continue; /* woken for a pull */
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
		txn_retain_commit_seen(eng);
		run_batch(eng, list);
		/* A short step now and then, so a store that never idles is pruned too. */
		txn_retain_step(eng);
	}
	return NULL;
}
