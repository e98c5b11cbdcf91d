/* SPDX-License-Identifier: MIT */
/*
 * restore.c - the transaction table rebuilt from a journal (txn layer): txn_restore()
 * applies the records journal.c made, one at a time in journal order, before the engine
 * serves; txn_restore_committed() records a commit found durable; txn_restore_end()
 * drops what the pin kept for nobody.  journal.c's banner holds the design.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "clock.h"
#include "log.h"
#include "txn_i.h"

/* Records of a group (JREC_MORE) waiting for its last one, per transaction id. */
struct jpending {
	uint64_t id;
	unsigned char **recs;
	size_t *lens;
	size_t n;
	struct jpending *next;
};

static void pending_free(struct jpending *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->recs[i]);
	free(p->recs);
	free(p->lens);
	free(p);
}

static struct jpending *pending_find(struct txn_engine *eng, uint64_t id)
{
	struct jpending *p;

	LL_FOREACH(eng->pending, p)
		if (p->id == id)
			return p;
	return NULL;
}

static int pending_add(struct txn_engine *eng, uint64_t id, const void *rec, size_t len)
{
	struct jpending *p = pending_find(eng, id);
	unsigned char **recs;
	size_t *lens;

	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return -ENOMEM;
		p->id = id;
		LL_PREPEND(eng->pending, p);
	}
	recs = realloc(p->recs, (p->n + 1) * sizeof(*recs));
	if (recs)
		p->recs = recs;
	lens = realloc(p->lens, (p->n + 1) * sizeof(*lens));
	if (lens)
		p->lens = lens;
	if (!recs || !lens || !(p->recs[p->n] = malloc(len)))
		return -ENOMEM;
	memcpy(p->recs[p->n], rec, len);
	p->lens[p->n++] = len;
	return 0;
}

/* ---- applying one record -------------------------------------------------------------------- */

static bool finished(int state)
{
	return state != TXN_OPEN && state != TXN_COMMITTING;
}

/* Forget every item of tx (a dump's record describes all of them). */
static void forget_items(struct txn *tx)
{
	struct note *nt, *tmp;

	txn_staged_free_all(tx); /* and the read set and preconditions */
	HASH_ITER(hh, tx->notes, nt, tmp)
		txn_note_drop_locked(tx, nt->name, strlen(nt->name));
}

/* One item of a record onto tx (tx->lock held). */
static int apply_item(struct txn *tx, const struct jitem *it, const char *path,
		      const unsigned char *val)
{
	struct blob *b = NULL;
	char name[TXN_NAME_MAX + 1];

	switch (it->type) {
	case JI_STAGED:
		if (finished(tx->state))
			return 0; /* its staged ops went with its end */
		if (it->what == ST_PUT && !(b = blob_new(val, it->value_len)))
			return -ENOMEM;
		return txn_staged_load_locked(tx, path, it->path_len, it->what, b, it->num);
	case JI_READ:
	case JI_RANGE:
		if (finished(tx->state))
			return 0;
		return txn_readset_load_locked(tx, it->type, path, it->path_len, it->what, NULL);
	case JI_EXPECT: {
		struct txn_expect e = { (enum txn_expect_kind)(it->what - 1), it->num };

		if (finished(tx->state))
			return 0;
		return txn_readset_load_locked(tx, JI_EXPECT, path, it->path_len, it->what,
					       it->what > 1 ? &e : NULL);
	}
	case JI_NOTE:
		memcpy(name, path, it->path_len);
		name[it->path_len] = '\0';
		if (!it->what) {
			txn_note_drop_locked(tx, name, it->path_len);
			return 0;
		}
		if (!(b = blob_new(val, it->value_len)))
			return -ENOMEM;
		return txn_note_set(tx, name, b, true);
	default:
		BUG("journal item of type %d passed the checks", it->type);
	}
}

/* Can this engine serve a view as of begin_ts exactly (journal.c, design note 5)? */
static bool servable(struct txn_engine *eng, int64_t begin_ts)
{
	return begin_ts >= eng->view_floor_ts && begin_ts <= eng->published_ts;
}

/* tx, restored open, lost its snapshot: it fails (and the journal says so). */
static void fail_snapshot_locked(struct txn_engine *eng, struct txn *tx)
{
	log_warn("transaction '%s' (begun at commit %" PRId64 ") cannot be restored: its "
		 "snapshot is older than what this start keeps (commit %" PRId64 "); it failed",
		 tx->name, tx->begin_ts, eng->view_floor_ts);
	txn_unpin_locked(eng, tx, TXN_CONFLICT);
	txn_fail_locked(tx, -ESTALE, NULL, 0);
	tx->conflict = TXN_CONFLICT_SNAPSHOT;
	txn_staged_free_all(tx);
	txn_finished_sort_locked(eng, tx);
	txn_jhead_locked(tx);
}

/* The outcome a record holds, onto tx (tx->lock and table_lock held). */
static int apply_outcome(struct txn_engine *eng, struct txn *tx, const struct jhead *h,
			 const char *err_key)
{
	if (finished(h->state) && !finished(tx->state)) {
		txn_unpin_locked(eng, tx, (enum txn_state)h->state);
		txn_staged_free_all(tx);
		tx->finished_mono_ns = h->finished_mono_ns ? h->finished_mono_ns
							   : tx->finished_mono_ns;
		txn_finished_sort_locked(eng, tx);
	}
	if (finished(tx->state) && !finished(h->state))
		return 0; /* it failed here (its snapshot); the record is of before */
	tx->commit_ts = h->commit_ts;
	tx->commit_time_ns = h->commit_time_ns;
	tx->committed_ops = h->committed_ops;
	tx->conflict = (enum txn_conflict)h->conflict;
	tx->err = h->err;
	free(tx->err_key);
	tx->err_key = NULL;
	if (h->err_key_len && !(tx->err_key = strndup(err_key, h->err_key_len)))
		return -ENOMEM;
	return 0;
}

/* Remove tx from the table, as txn_remove() does (table_lock and tx->lock held). */
static void remove_locked(struct txn_engine *eng, struct txn *tx)
{
	if (tx->state == TXN_OPEN || tx->state == TXN_COMMITTING)
		txn_unpin_locked(eng, tx, TXN_ABORTED);
	txn_staged_free_all(tx);
	txn_table_del_locked(eng, tx);
}

static int apply(struct txn_engine *eng, const unsigned char *rec, size_t len)
{
	const unsigned char *p = rec + sizeof(struct jhead), *err_key;
	struct txn *tx = NULL;
	struct jhead h;
	bool fresh = false;
	int err = txn_jrec_check(rec, len, &h);

	if (err)
		return err;
	err_key = p + h.name_len;
	pthread_rwlock_rdlock(&eng->tree_lock);
	pthread_mutex_lock(&eng->table_lock);
	HASH_FIND(hh_id, eng->by_id, &h.id, sizeof(h.id), tx);
	if (h.flags & JREC_REMOVED) {
		if (tx) {
			pthread_mutex_lock(&tx->lock);
			remove_locked(eng, tx);
			pthread_mutex_unlock(&tx->lock);
		}
		pthread_mutex_unlock(&eng->table_lock);
		pthread_rwlock_unlock(&eng->tree_lock);
		txn_unref(tx); /* the table's reference */
		return 0;
	}
	if (!tx) {
		err = txn_table_restore_locked(eng, h.id, (const char *)p, h.name_len, h.uid,
					       h.gid, &tx);
		fresh = !err;
	}
	if (err)
		goto unlock;
	pthread_mutex_lock(&tx->lock);
	if (fresh) {
		tx->begin_ts = h.begin_ts;
		tx->begin_mono_ns = h.begin_mono_ns;
	}
	if (h.flags & JREC_FULL)
		forget_items(tx);
	tx->timeout_ms = h.timeout_ms;
	tx->touched = h.touched;
	if (!finished(tx->state))
		tx->isolation = (enum txn_isolation)h.isolation;
	p = err_key + h.err_key_len;
	for (uint32_t i = 0; i < h.n_items && !err; i++) {
		struct jitem it;

		memcpy(&it, p, sizeof(it));
		p += sizeof(it);
		err = apply_item(tx, &it, (const char *)p, p + it.path_len);
		p += it.path_len + it.value_len;
	}
	if (!err)
		err = apply_outcome(eng, tx, &h, (const char *)err_key);
	txn_jdrop_locked(tx); /* what it touched is what the journal holds */
	pthread_mutex_unlock(&tx->lock);
unlock:
	pthread_mutex_unlock(&eng->table_lock);
	pthread_rwlock_unlock(&eng->tree_lock);
	return err;
}

int txn_restore(struct txn_engine *eng, const void *rec, size_t len)
{
	struct jpending *p;
	struct jhead h;
	int err = txn_jrec_check(rec, len, &h);

	if (err)
		return err;
	p = pending_find(eng, h.id);
	if (p && !(h.flags & JREC_CONT)) {
		/* A group cut short (its process died): that change never happened. */
		log_warn("the journal of transaction %" PRIu64 " holds a change cut short; "
			 "that change is dropped", h.id);
		LL_DELETE(eng->pending, p);
		pending_free(p);
		p = NULL;
	}
	if (!p && (h.flags & JREC_CONT))
		return 0; /* the rest of a group whose start was dropped */
	if (h.flags & JREC_MORE)
		return pending_add(eng, h.id, rec, len);
	if (p) {
		LL_DELETE(eng->pending, p);
		for (size_t i = 0; i < p->n && !err; i++)
			err = apply(eng, p->recs[i], p->lens[i]);
		pending_free(p);
	}
	if (!err)
		err = apply(eng, rec, len);
	return err;
}

int txn_restore_committed(struct txn_engine *eng, uint64_t id, int64_t commit_ts,
			  int64_t commit_time_ns, const char *note_name)
{
	struct txn *tx = NULL;
	int err = 0;

	pthread_mutex_lock(&eng->table_lock);
	HASH_FIND(hh_id, eng->by_id, &id, sizeof(id), tx);
	if (!tx) {
		pthread_mutex_unlock(&eng->table_lock);
		return -ENOENT;
	}
	pthread_mutex_lock(&tx->lock);
	if (tx->state == TXN_COMMITTED) {
		err = tx->commit_ts == commit_ts ? 0 : -EINVAL;
	} else if (tx->state != TXN_OPEN || commit_ts < 1) {
		err = -EINVAL;
	} else {
		/* As settle_tx() (committer.c) does for a commit answered. */
		tx->commit_ts = commit_ts;
		tx->commit_time_ns = commit_time_ns;
		tx->committed_ops = tx->n_ops;
		tx->err = 0;
		tx->conflict = TXN_CONFLICT_NONE;
		txn_unpin_locked(eng, tx, TXN_COMMITTED);
		txn_staged_free_all(tx);
		if (note_name) {
			/* The commit took it. */
			txn_note_drop_locked(tx, note_name, strlen(note_name));
			txn_jtouch_locked(tx, JI_NOTE, note_name, strlen(note_name));
		}
		txn_jhead_locked(tx);
		log_info("transaction '%s' was committed at commit %" PRId64 " by the process "
			 "that died", tx->name, commit_ts);
	}
	pthread_mutex_unlock(&tx->lock);
	pthread_mutex_unlock(&eng->table_lock);
	return err;
}

/* Prune every chain to what the oldest open transaction needs. */
static void prune_all(struct node *n, int64_t keep_ts)
{
	struct node *c, *tmp;

	txn_node_prune(n, keep_ts);
	HASH_ITER(hh, n->children, c, tmp)
		prune_all(c, keep_ts);
}

void txn_restore_end(struct txn_engine *eng)
{
	struct txn *tx, *tmp;
	int64_t keep;

	while (eng->pending) {
		struct jpending *p = eng->pending;

		log_warn("the journal of transaction %" PRIu64 " ends inside a change; that "
			 "change is dropped", p->id);
		LL_DELETE(eng->pending, p);
		pending_free(p);
	}
	pthread_rwlock_wrlock(&eng->tree_lock);
	pthread_mutex_lock(&eng->table_lock);
	DL_FOREACH_SAFE2(eng->open_txns, tx, tmp, lnext) {
		pthread_mutex_lock(&tx->lock);
		if (!servable(eng, tx->begin_ts))
			fail_snapshot_locked(eng, tx); /* moves it to eng->finished */
		pthread_mutex_unlock(&tx->lock);
	}
	keep = eng->published_ts;
	DL_FOREACH2(eng->open_txns, tx, lnext)
		if (tx->begin_ts < keep)
			keep = tx->begin_ts;
	pthread_mutex_unlock(&eng->table_lock);
	prune_all(&eng->root, keep);
	pthread_rwlock_unlock(&eng->tree_lock);
}
