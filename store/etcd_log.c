/* SPDX-License-Identifier: MIT */
/*
 * etcd_log.c - the etcd backend's log (store layer): appending a batch as one etcd
 * transaction guarded by the volume's head, resolving a commit whose answer was lost,
 * copying the commits of other mounts into the replica (catch-up and pull), and the
 * watch on the head that wakes the committer.
 *
 * A batch of commits H+1..H+k is one transaction: if head is still "H", put e/H+1 ..
 * e/H+k and head "H+k"; else nothing.  The head is the one point every mount races on,
 * so the comparison proves that the replica (and the tree checked against it) was
 * exact when the batch was validated: commit_ts stays gap-free and first committer wins.
 * A lost race is STORE_BEHIND (the committer pulls and validates again).
 *
 * In doubt: a transaction sent without an answer may have been applied.  It is sent
 * again, unchanged: if head moved, e/H+1 says whether it was ours (its batch id), so a
 * batch is never committed twice, and it fails only when known not to have committed.
 */
#include "etcd_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

/* ---- what .status shows --------------------------------------------------------------- */

/* What store_stale() answers; e->lock held. */
static void set_stale_locked(struct etcd_store *e)
{
	atomic_store(&e->stale, !e->reachable || (e->wake && !e->watch_up));
}

static void note_answer(struct etcd_store *e, int err)
{
	pthread_mutex_lock(&e->lock);
	e->reachable = err != -ENOTCONN && err != -ETIMEDOUT && err != -ECANCELED &&
		       err != -EACCES;
	if (e->reachable)
		snprintf(e->health, sizeof(e->health), "ok");
	else
		snprintf(e->health, sizeof(e->health), "etcd %s",
			 err == -ENOTCONN    ? "unreachable"
			 : err == -ECANCELED ? "refused the request (no leader?)"
			 : err == -EACCES    ? "refused the credentials"
					     : "did not answer in time");
	set_stale_locked(e);
	pthread_mutex_unlock(&e->lock);
}

static void raise_remote(struct etcd_store *e, int64_t h)
{
	int64_t cur = atomic_load(&e->remote_head);

	while (cur < h && !atomic_compare_exchange_weak(&e->remote_head, &cur, h))
		;
}

/* ---- reads ------------------------------------------------------------------------- */

int etcd_read_head(struct etcd_store *e, _Atomic int64_t *out)
{
	struct etcd_range_result r;
	int64_t h;
	int err = etcd_range(e->c, e->key_head, strlen(e->key_head), NULL, 0, 0, &r);

	note_answer(e, err);
	if (err)
		return err;
	err = r.n == 1 ? etcd_parse_head(r.kvs[0].value, r.kvs[0].value_len, &h) : -EIO;
	etcd_range_free(&r);
	if (err) {
		log_err("'%s' in etcd is not a head (a commit number)", e->key_head);
		return -EIO;
	}
	raise_remote(e, h);
	if (out)
		atomic_store(out, h);
	return 0;
}

int etcd_get_event(struct etcd_store *e, int64_t ts, void **val, size_t *len)
{
	struct etcd_range_result r;
	char key[ETCD_VOLUME_MAX + 64];
	int err = etcd_key_event(e, ts, key, sizeof(key));

	*val = NULL;
	if (err < 0)
		return err;
	err = etcd_range(e->c, key, (size_t)err, NULL, 0, 0, &r);
	note_answer(e, err);
	if (err)
		return err;
	if (r.n != 1) {
		etcd_range_free(&r);
		return -ENOENT;
	}
	*val = r.kvs[0].value; /* handed over */
	*len = r.kvs[0].value_len;
	r.kvs[0].value = NULL;
	etcd_range_free(&r);
	return 0;
}

/* ---- catch-up: etcd's commits into the replica ------------------------------------ */

#define PAGE 64

int etcd_catch_up(struct etcd_store *e, int64_t deliver_after, store_event_fn fn, void *arg)
{
	for (;;) {
		struct etcd_range_result r;
		struct etcd_record recs[PAGE];
		struct store_event evs[PAGE];
		char key[ETCD_VOLUME_MAX + 64];
		int64_t from = atomic_load(&e->local_head) + 1;
		size_t n = 0;
		bool more;
		int err = etcd_key_event(e, from, key, sizeof(key));

		if (err < 0)
			return err;
		err = etcd_range(e->c, key, (size_t)err, e->key_e_end, strlen(e->key_e_end), PAGE,
				 &r);
		note_answer(e, err);
		if (err)
			return err == -ENOMEM ? err : -EIO;
		for (; n < r.n && n < PAGE; n++) {
			err = etcd_record_decode(r.kvs[n].value, r.kvs[n].value_len, &recs[n]);
			if (!err && recs[n].ev.commit_ts != from + (int64_t)n) {
				etcd_record_release(&recs[n]);
				err = -EIO;
			}
			if (err) {
				log_err("commit %" PRId64 " of the volume '%s' in etcd is %s",
					from + (int64_t)n, e->volume,
					err == -EIO ? "missing or damaged" : strerror(-err));
				break;
			}
			evs[n] = recs[n].ev;
			/* Only this mount's requests can come back (applied records). */
			if (e->instance && evs[n].req.instance != e->instance)
				evs[n].req = (struct store_reqid){ 0, 0 };
		}
		more = r.more;
		if (!err && n)
			err = store_sqlite_ops.append(e->local, evs, n);
		if (!err && n) {
			int64_t head = from + (int64_t)n - 1;

			atomic_store(&e->local_head, head);
			if (atomic_load(&e->committed_head) < head)
				atomic_store(&e->committed_head, head);
			raise_remote(e, head);
		}
		for (size_t i = 0; i < n && !err && fn; i++) {
			if (evs[i].commit_ts > deliver_after) {
				err = fn(arg, &evs[i]);
				atomic_fetch_add(&e->pulled, 1);
			}
		}
		for (size_t i = 0; i < n; i++)
			etcd_record_release(&recs[i]);
		etcd_range_free(&r);
		if (err)
			return err;
		if (!n || !more)
			return 0;
	}
}

/* ---- append --------------------------------------------------------------------- */

/* Was the commit e/ts written by the batch `batch`? 1 yes, 0 no (or none), <0 error. */
static int ours(struct etcd_store *e, int64_t ts, const uint8_t *batch)
{
	struct etcd_record rec;
	void *val;
	size_t len;
	int err = etcd_get_event(e, ts, &val, &len), same;

	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	err = etcd_record_decode(val, len, &rec);
	if (err) {
		free(val);
		return err;
	}
	same = !memcmp(rec.batch, batch, ETCD_BATCH_ID_LEN);
	etcd_record_release(&rec);
	free(val);
	return same;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* The encoded batch: n puts of records and the head. */
struct enc {
	struct etcd_op *ops;
	void **vals;
	char (*keys)[ETCD_VOLUME_MAX + 64];
	char head[24];
	size_t n;
};

static void enc_free(struct enc *x)
{
	for (size_t i = 0; x->vals && i < x->n; i++)
		free(x->vals[i]);
	free(x->vals);
	free(x->keys);
	free(x->ops);
}

static int encode_batch(struct etcd_store *e, const struct store_event *events, size_t n,
			const uint8_t *batch, struct enc *x)
{
	size_t bytes = 0;
	int err = 0;

	memset(x, 0, sizeof(*x));
	if (n + 1 > ETCD_MAX_TXN_OPS)
		return -E2BIG;
	x->ops = calloc(n + 1, sizeof(*x->ops));
	x->vals = calloc(n, sizeof(*x->vals));
	x->keys = calloc(n, sizeof(*x->keys));
	if (!x->ops || !x->vals || !x->keys) {
		enc_free(x);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && !err; i++) {
		size_t len = 0;
		int kl = etcd_key_event(e, events[i].commit_ts, x->keys[i], sizeof(x->keys[i]));

		err = kl < 0 ? kl : etcd_record_encode(&events[i], batch, &x->vals[i], &len);
		x->n = i + 1;
		if (err)
			break;
		bytes += len + (size_t)kl + 16;
		x->ops[i] = (struct etcd_op){ ETCD_OP_PUT, x->keys[i], (size_t)kl, x->vals[i], len,
					      NULL, 0, 0 };
	}
	if (!err && bytes > e->max_request)
		err = -E2BIG;
	if (err) {
		enc_free(x);
		return err;
	}
	snprintf(x->head, sizeof(x->head), "%" PRId64, events[n - 1].commit_ts);
	x->ops[n] = (struct etcd_op){ ETCD_OP_PUT, e->key_head, strlen(e->key_head), x->head,
				      strlen(x->head), NULL, 0, 0 };
	return 0;
}

static void set_doubt(struct etcd_store *e, bool on)
{
	pthread_mutex_lock(&e->lock);
	e->in_doubt = on;
	pthread_mutex_unlock(&e->lock);
}

/*
 * Whether etcd can take a write now: asked (a local answer of the member, never waiting
 * for a quorum) only when something went wrong before: the last request failed, the
 * watch is down, or this is a retry.  A member cut off in a minority knows no leader,
 * and a request sent to it would only wait and leave the commit in doubt.  0 (go
 * ahead), or -ENOTCONN / -ECANCELED: nothing is sent.
 */
static int may_send(struct etcd_store *e, bool retry)
{
	struct etcd_status s;
	bool ok;
	int err;

	pthread_mutex_lock(&e->lock);
	ok = e->reachable && (!e->wake || e->watch_up);
	pthread_mutex_unlock(&e->lock);
	if (ok && !retry)
		return 0;
	err = etcd_status(e->c, &s);
	if (!err && !s.leader)
		err = -ECANCELED;
	if (err) {
		note_answer(e, err == -ETIMEDOUT ? -ENOTCONN : err);
		return err == -ENOMEM ? err : -ECANCELED;
	}
	pthread_mutex_lock(&e->lock);
	snprintf(e->endpoint, sizeof(e->endpoint), "%s", s.endpoint);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* Send the batch until etcd says whether it committed: 0 (it did), STORE_BEHIND (head
 * moved: not ours), -E2BIG, or -EIO once the time is up and it is known not committed.
 * In doubt, it waits as long as it takes. */
static int send_batch(struct etcd_store *e, int64_t h, const struct enc *x,
		      const uint8_t *batch)
{
	char hv[24];
	int hl = snprintf(hv, sizeof(hv), "%" PRId64, h);
	struct etcd_compare cmp = { e->key_head, strlen(e->key_head), ETCD_CMP_VALUE, 0, hv,
				    (size_t)hl };
	int64_t deadline = clock_now_ns(CLOCK_MONOTONIC) + e->commit_timeout_ms * 1000000LL;
	int64_t warned = 0;
	bool doubt = false;
	long backoff = 20;

	for (unsigned tries = 0;; tries++) {
		struct etcd_txn_result res;
		int err = may_send(e, tries > 0);
		int64_t now;

		if (!err) {
			err = etcd_txn(e->c, &cmp, 1, x->ops, x->n + 1, NULL, 0, &res);
			note_answer(e, err);
		}
		if (!err) {
			bool ok = res.succeeded;

			etcd_txn_free(&res);
			if (ok)
				return 0;
			/* head moved: by us, when an earlier send was applied after all? */
			err = doubt ? ours(e, h + 1, batch) : 0;
			if (err == 1)
				return 0;
			if (err == 0) {
				etcd_read_head(e, NULL);
				return STORE_BEHIND;
			}
		}
		if (err == -E2BIG && !doubt)
			return -E2BIG;
		if (err == -ETIMEDOUT || err == -EIO)
			doubt = true;
		now = clock_now_ns(CLOCK_MONOTONIC);
		if (now > deadline && !doubt) {
			log_err("cannot commit to the volume '%s' in etcd within %ld ms (%s): "
				"nothing committed", e->volume, e->commit_timeout_ms, strerror(-err));
			return -EIO;
		}
		if (now > deadline && now - warned > 5000000000LL) {
			log_warn("a commit to the volume '%s' is in doubt (%s): waiting for etcd "
				 "to say whether it was applied", e->volume, strerror(-err));
			warned = now;
			set_doubt(e, true);
		}
		sleep_ms(backoff);
		if (backoff < 500)
			backoff *= 2;
	}
}

int etcd_append(struct store *st, const struct store_event *events, size_t n)
{
	struct etcd_store *e = (struct etcd_store *)st;
	int64_t h = atomic_load(&e->committed_head);
	uint8_t batch[ETCD_BATCH_ID_LEN];
	struct enc x;
	int err;

	if (!n)
		return 0;
	if (events[0].commit_ts != h + 1) {
		log_err("append of commit %" PRId64 " to the volume '%s' whose head is %" PRId64,
			events[0].commit_ts, e->volume, h);
		return -EIO;
	}
	memcpy(batch, &e->mount_id, 8);
	e->batch_seq++;
	memcpy(batch + 8, &e->batch_seq, 8);
	err = encode_batch(e, events, n, batch, &x);
	if (err)
		return err;
	err = send_batch(e, h, &x, batch);
	enc_free(&x);
	set_doubt(e, false);
	if (err == STORE_BEHIND)
		atomic_fetch_add(&e->behind, 1);
	if (err)
		return err;
	atomic_store(&e->committed_head, h + (int64_t)n);
	raise_remote(e, h + (int64_t)n);
	/* The replica follows; if it cannot (a full disk), a later pull copies the
	 * commits from etcd, which holds them. */
	if (atomic_load(&e->local_head) == h) {
		err = store_sqlite_ops.append(e->local, events, n);
		if (err)
			log_warn("commits %" PRId64 "..%" PRId64 " are in etcd but not yet in the "
				 "replica (%s): copying them later", h + 1, h + (int64_t)n,
				 strerror(-err));
		else
			atomic_store(&e->local_head, h + (int64_t)n);
	}
	return 0;
}

/* ---- pull, check, watch --------------------------------------------------------------- */

int etcd_pull(struct store *st, int64_t head_ts, store_event_fn fn, void *arg)
{
	struct etcd_store *e = (struct etcd_store *)st;
	int err = may_send(e, false);

	return err ? -ENOTCONN : etcd_catch_up(e, head_ts, fn, arg);
}

int etcd_check(struct store *st, int64_t *head_ts)
{
	struct etcd_store *e = (struct etcd_store *)st;
	int err = etcd_read_head(e, NULL);

	if (err)
		return -EIO;
	return store_sqlite_ops.check(e->local, head_ts);
}

static void on_watch(void *arg, bool up, int64_t revision, const struct etcd_kv *kvs, size_t n)
{
	struct etcd_store *e = arg;
	bool wake = false;

	if (!n) {
		pthread_mutex_lock(&e->lock);
		e->watch_up = up;
		set_stale_locked(e);
		pthread_mutex_unlock(&e->lock);
		wake = up; /* what came while it was down */
	}
	for (size_t i = 0; i < n; i++) {
		int64_t h;

		if (!etcd_parse_head(kvs[i].value, kvs[i].value_len, &h)) {
			raise_remote(e, h);
			wake |= h > atomic_load(&e->committed_head);
		}
	}
	if (wake && e->wake)
		e->wake(e->wake_arg);
}

void etcd_set_wake(struct store *st, store_wake_fn fn, void *arg)
{
	struct etcd_store *e = (struct etcd_store *)st;
	int err;

	pthread_mutex_lock(&e->lock);
	e->wake = fn;
	e->wake_arg = arg;
	set_stale_locked(e); /* stale until the watch is up */
	pthread_mutex_unlock(&e->lock);
	if (!fn || e->watch)
		return;
	err = etcd_watch_start(e->c, e->key_head, strlen(e->key_head), NULL, 0, 0, on_watch, e,
			       &e->watch);
	if (err)
		log_err("cannot watch the volume '%s' in etcd: %s; commits of other mounts "
			"arrive only with this mount's own", e->volume, strerror(-err));
}

void etcd_shared_state(struct store *st, struct store_shared *out)
{
	struct etcd_store *e = (struct etcd_store *)st;

	out->shared = true;
	out->remote_head = atomic_load(&e->remote_head);
	out->local_head = atomic_load(&e->local_head);
	out->behind_retries = atomic_load(&e->behind);
	out->pulled = atomic_load(&e->pulled);
	snprintf(out->volume, sizeof(out->volume), "%s", e->volume);
	pthread_mutex_lock(&e->lock);
	out->reachable = e->reachable;
	out->stale = atomic_load(&e->stale);
	if (e->in_doubt)
		snprintf(out->health, sizeof(out->health), "a commit is in doubt: %.100s", e->health);
	else
		snprintf(out->health, sizeof(out->health), "%s", e->health);
	snprintf(out->endpoint, sizeof(out->endpoint), "%s", e->endpoint);
	pthread_mutex_unlock(&e->lock);
}

bool etcd_stale(struct store *st)
{
	return atomic_load(&((struct etcd_store *)st)->stale);
}
