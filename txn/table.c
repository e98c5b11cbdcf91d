/* SPDX-License-Identifier: MIT */
/*
 * table.c - the transaction table (txn layer): begin, find, remove and list, references,
 * a transaction's state and deadline, and its note files (.commit.pending is one).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "clock.h"
#include "log.h"
#include "txn_i.h"

const char *const txn_refusal_names[TXN_REFUSED_N] = {
	[TXN_REFUSED_OPEN_TXNS] = "open_txns",
	[TXN_REFUSED_USER_TXNS] = "user_txns",
	[TXN_REFUSED_TXN_BYTES] = "txn_bytes",
	[TXN_REFUSED_USER_BYTES] = "user_bytes",
	[TXN_REFUSED_TIMEOUT] = "timeout",
};

/* ---- limits: staged bytes --------------------------------------------------------------- */

void txn_user_unref(struct txn_user *u)
{
	if (u && atomic_fetch_sub(&u->refs, 1) == 1)
		free(u);
}

int txn_charge_locked(struct txn *tx, long long delta, bool force)
{
	struct txn_engine *eng;
	size_t max_user;

	if (delta <= 0) {
		/* Also after the engine closed: only tx and its user are touched. */
		if (delta < 0)
			atomic_fetch_sub(&tx->user->bytes, (size_t)-delta);
		tx->staged_bytes -= (size_t)-delta;
		return 0;
	}
	eng = tx->eng;
	max_user = tx->exempt ? 0 : eng->opt.max_user_txn_bytes;
	if (!force && eng->opt.max_txn_bytes &&
	    tx->staged_bytes + (size_t)delta > eng->opt.max_txn_bytes) {
		eng->n_refused[TXN_REFUSED_TXN_BYTES]++;
		return -EDQUOT;
	}
	if (atomic_fetch_add(&tx->user->bytes, (size_t)delta) + (size_t)delta > max_user &&
	    max_user && !force) {
		atomic_fetch_sub(&tx->user->bytes, (size_t)delta);
		eng->n_refused[TXN_REFUSED_USER_BYTES]++;
		return -EDQUOT;
	}
	tx->staged_bytes += (size_t)delta;
	return 0;
}

/* ---- transactions: table ------------------------------------------------------------ */

void txn_staged_free_all(struct txn *tx)
{
	struct staged *s, *tmp;

	HASH_ITER(hh, tx->staged, s, tmp) {
		HASH_DEL(tx->staged, s);
		txn_charge_locked(tx, -(long long)s->charge, true);
		blob_unref(s->value);
		free(s->path);
		free(s);
	}
	tx->n_ops = 0;
	tx->n_deletes = 0;
	txn_readset_free_locked(tx);
}

/* Free a note that is out of tx's notes, giving back its charge. */
static void note_free(struct txn *tx, struct note *nt)
{
	txn_charge_locked(tx, -(long long)nt->charge, true);
	blob_unref(nt->content);
	free(nt->name);
	free(nt);
}

static void notes_free_all(struct txn *tx)
{
	struct note *nt, *tmp;

	HASH_ITER(hh, tx->notes, nt, tmp) {
		HASH_DEL(tx->notes, nt);
		note_free(tx, nt);
	}
}

struct txn *txn_ref(struct txn *tx)
{
	if (tx)
		atomic_fetch_add(&tx->refs, 1);
	return tx;
}

void txn_unref(struct txn *tx)
{
	if (!tx || atomic_fetch_sub(&tx->refs, 1) != 1)
		return;
	txn_staged_free_all(tx);
	notes_free_all(tx);
	for (size_t i = 0; i < tx->njd; i++)
		free(tx->jd[i].path);
	free(tx->jd);
	pthread_mutex_destroy(&tx->lock);
	txn_user_unref(tx->user);
	free(tx->err_key);
	free(tx->name);
	free(tx);
}

uint64_t txn_id(const struct txn *tx) { return tx->id; }
const char *txn_name(const struct txn *tx) { return tx->name; }
uint32_t txn_uid(const struct txn *tx) { return tx->uid; }
uint32_t txn_gid(const struct txn *tx) { return tx->gid; }
int64_t txn_begin_ts(const struct txn *tx) { return tx->begin_ts; }

enum txn_state txn_get_state(struct txn *tx)
{
	enum txn_state s;

	pthread_mutex_lock(&tx->lock);
	s = tx->state;
	pthread_mutex_unlock(&tx->lock);
	return s;
}

int64_t txn_timeout_ms(struct txn *tx)
{
	int64_t t;

	pthread_mutex_lock(&tx->lock);
	t = tx->timeout_ms;
	pthread_mutex_unlock(&tx->lock);
	return t;
}

int64_t txn_expires_in_ms(struct txn *tx)
{
	int64_t left = 0;

	pthread_mutex_lock(&tx->lock);
	if (tx->state == TXN_OPEN || tx->state == TXN_COMMITTING)
		left = tx->timeout_ms -
		       (clock_now_ns(CLOCK_MONOTONIC) - tx->begin_mono_ns) / 1000000;
	pthread_mutex_unlock(&tx->lock);
	return left > 0 ? left : 0;
}

int txn_status(struct txn *tx, struct txn_status *out)
{
	int err = 0;

	memset(out, 0, sizeof(*out));
	out->name = tx->name;
	pthread_mutex_lock(&tx->lock);
	out->state = tx->state;
	out->deadline_passed = tx->state == TXN_OPEN && txn_deadline_passed(tx);
	out->ops = tx->state == TXN_COMMITTED ? tx->committed_ops : tx->n_ops;
	out->begin_ts = tx->begin_ts;
	out->timeout_ms = tx->timeout_ms;
	if (tx->state == TXN_OPEN || tx->state == TXN_COMMITTING) {
		int64_t left = tx->timeout_ms -
			       (clock_now_ns(CLOCK_MONOTONIC) - tx->begin_mono_ns) / 1000000;

		out->expires_in_ms = left > 0 ? left : 0;
	}
	if (tx->state == TXN_COMMITTED) {
		out->commit_ts = tx->commit_ts;
		out->commit_time_ns = tx->commit_time_ns;
	}
	out->err = tx->err;
	out->isolation = tx->isolation;
	out->conflict = tx->err == -ESTALE ? tx->conflict : TXN_CONFLICT_NONE;
	if (tx->err && tx->err_key && !(out->err_key = strdup(tx->err_key)))
		err = -ENOMEM;
	pthread_mutex_unlock(&tx->lock);
	return err;
}

void txn_status_release(struct txn_status *st)
{
	free(st->err_key);
	st->err_key = NULL;
}

int txn_note_set(struct txn *tx, const char *name, struct blob *content, bool force)
{
	struct note *nt = NULL;
	size_t charge = strlen(name) + content->len;
	int err;

	HASH_FIND_STR(tx->notes, name, nt);
	err = txn_charge_locked(tx, (long long)charge - (long long)(nt ? nt->charge : 0), force);
	if (err) {
		blob_unref(content);
		return err;
	}
	if (nt) {
		blob_unref(nt->content);
		nt->content = content;
		nt->charge = charge;
		return 0;
	}
	nt = calloc(1, sizeof(*nt));
	if (!nt || !(nt->name = strdup(name))) {
		free(nt);
		blob_unref(content);
		txn_charge_locked(tx, -(long long)charge, true);
		return -ENOMEM;
	}
	nt->content = content;
	nt->charge = charge;
	HASH_ADD_KEYPTR(hh, tx->notes, nt->name, strlen(nt->name), nt);
	if (!HASH_ADDED(hh, nt)) {
		note_free(tx, nt);
		return -ENOMEM;
	}
	return 0;
}

/* The usage entry of uid, made on first use.  table_lock held. */
static int user_get_locked(struct txn_engine *eng, uint32_t uid, struct txn_user **out)
{
	struct txn_user *u = NULL;

	HASH_FIND(hh, eng->users, &uid, sizeof(uid), u);
	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return -ENOMEM;
		u->uid = uid;
		atomic_init(&u->refs, 1); /* the engine's */
		atomic_init(&u->bytes, 0);
		HASH_ADD(hh, eng->users, uid, sizeof(u->uid), u);
		if (!HASH_ADDED(hh, u)) {
			free(u);
			return -ENOMEM;
		}
	}
	atomic_fetch_add(&u->refs, 1); /* the transaction's */
	*out = u;
	return 0;
}

/* Into both indexes of the table, or neither (-ENOMEM).  table_lock held. */
static int table_add_locked(struct txn_engine *eng, struct txn *tx, size_t len)
{
	HASH_ADD_KEYPTR(hh_name, eng->by_name, tx->name, len, tx);
	if (!HASH_ADDED(hh_name, tx))
		return -ENOMEM;
	HASH_ADD(hh_id, eng->by_id, id, sizeof(tx->id), tx);
	if (!HASH_ADDED(hh_id, tx)) {
		HASH_DELETE(hh_name, eng->by_name, tx);
		return -ENOMEM;
	}
	return 0;
}

int txn_begin(struct txn_engine *eng, const char *name, size_t len, uint32_t uid,
	      uint32_t gid, struct txn **out)
{
	struct txn *tx, *old = NULL;
	struct blob *empty;
	int err = txn_check_name(name, len);

	*out = NULL;
	if (err)
		return err;
	if (name[0] == '.')
		return -EINVAL;
	tx = calloc(1, sizeof(*tx));
	if (!tx)
		return -ENOMEM;
	tx->name = strndup(name, len);
	empty = blob_new("", 0);
	if (!tx->name || !empty) {
		free(tx->name);
		free(tx);
		blob_unref(empty);
		return -ENOMEM;
	}
	pthread_mutex_init(&tx->lock, NULL);
	atomic_init(&tx->refs, 1);
	tx->eng = eng;
	tx->exempt = uid == 0 || uid == eng->opt.exempt_uid;
	tx->uid = uid;
	tx->gid = gid;
	tx->state = TXN_OPEN;
	tx->timeout_ms = eng->opt.txn_timeout_ms;
	tx->isolation = eng->opt.isolation;
	tx->begin_mono_ns = clock_now_ns(CLOCK_MONOTONIC);

	/* Tree lock first (rank 1): begin_ts must not move while the snapshot is pinned. */
	pthread_rwlock_rdlock(&eng->tree_lock);
	pthread_mutex_lock(&eng->table_lock);
	err = user_get_locked(eng, uid, &tx->user);
	HASH_FIND(hh_name, eng->by_name, tx->name, len, old);
	if (err) {
		/* out of memory */
	} else if (old) {
		err = -EEXIST;
	} else if (eng->n_open >= eng->opt.max_open_txns) {
		eng->n_refused[TXN_REFUSED_OPEN_TXNS]++;
		err = -EAGAIN;
	} else if (!tx->exempt && eng->opt.max_txns_per_user &&
		   tx->user->n_txns >= eng->opt.max_txns_per_user) {
		eng->n_refused[TXN_REFUSED_USER_TXNS]++;
		err = -EDQUOT;
	} else {
		err = txn_note_set(tx, ".commit.pending", empty, false); /* consumes empty */
		empty = NULL;
	}
	if (!err) {
		tx->id = ++eng->next_id;
		tx->begin_ts = eng->published_ts;
		err = table_add_locked(eng, tx, len);
	}
	if (!err) {
		tx->in_table = true;
		DL_APPEND2(eng->open_txns, tx, lprev, lnext);
		tx->user->n_txns++;
		eng->n_open++;
		eng->n_begun++;
		txn_ref(tx); /* the table's reference */
		/* Its first record, before anyone can find it and change it. */
		pthread_mutex_lock(&tx->lock);
		txn_jtouch_locked(tx, JI_NOTE, ".commit.pending", strlen(".commit.pending"));
		txn_jhead_locked(tx);
		pthread_mutex_unlock(&tx->lock);
	}
	pthread_mutex_unlock(&eng->table_lock);
	pthread_rwlock_unlock(&eng->tree_lock);
	blob_unref(empty);
	if (err) {
		txn_unref(tx);
		return err;
	}
	pthread_mutex_lock(&eng->q_lock);
	pthread_cond_signal(&eng->reaper_cond);
	pthread_mutex_unlock(&eng->q_lock);
	log_debug("transaction '%s' begun by uid %" PRIu32 " at commit %" PRId64, tx->name, uid,
		  tx->begin_ts);
	*out = tx;
	return 0;
}

struct txn *txn_find(struct txn_engine *eng, const char *name, size_t len)
{
	struct txn *tx = NULL;

	pthread_mutex_lock(&eng->table_lock);
	HASH_FIND(hh_name, eng->by_name, name, len, tx);
	txn_ref(tx);
	pthread_mutex_unlock(&eng->table_lock);
	return tx;
}

void txn_engine_first_id(struct txn_engine *eng, uint64_t first)
{
	pthread_mutex_lock(&eng->table_lock);
	if (first > eng->next_id + 1)
		eng->next_id = first - 1;
	pthread_mutex_unlock(&eng->table_lock);
}

struct txn *txn_find_id(struct txn_engine *eng, uint64_t id)
{
	struct txn *tx = NULL;

	pthread_mutex_lock(&eng->table_lock);
	HASH_FIND(hh_id, eng->by_id, &id, sizeof(id), tx);
	txn_ref(tx);
	pthread_mutex_unlock(&eng->table_lock);
	return tx;
}

int txn_table_restore_locked(struct txn_engine *eng, uint64_t id, const char *name,
			     size_t len, uint32_t uid, uint32_t gid, struct txn **out)
{
	struct txn *tx, *old = NULL;
	int err;

	*out = NULL;
	HASH_FIND(hh_name, eng->by_name, name, len, old);
	if (old)
		return -EEXIST;
	tx = calloc(1, sizeof(*tx));
	if (!tx || !(tx->name = strndup(name, len))) {
		free(tx);
		return -ENOMEM;
	}
	pthread_mutex_init(&tx->lock, NULL);
	atomic_init(&tx->refs, 1);
	tx->eng = eng;
	tx->id = id;
	tx->exempt = uid == 0 || uid == eng->opt.exempt_uid;
	tx->uid = uid;
	tx->gid = gid;
	tx->state = TXN_OPEN;
	err = user_get_locked(eng, uid, &tx->user);
	if (!err)
		err = table_add_locked(eng, tx, len);
	if (err) {
		txn_unref(tx);
		return err;
	}
	if (id > eng->next_id)
		eng->next_id = id; /* new ones go above every restored id */
	tx->in_table = true;
	DL_APPEND2(eng->open_txns, tx, lprev, lnext);
	tx->user->n_txns++;
	eng->n_open++;
	*out = tx; /* its one reference is the table's */
	return 0;
}

void txn_finished_sort_locked(struct txn_engine *eng, struct txn *tx)
{
	struct txn *at;

	if (!tx->in_table || !tx->finished_mono_ns)
		return;
	DL_DELETE2(eng->finished, tx, lprev, lnext);
	/* From the newest end: restored ones come nearly in order. */
	for (at = eng->finished ? eng->finished->lprev : NULL;
	     at && at->finished_mono_ns > tx->finished_mono_ns;
	     at = at == eng->finished ? NULL : at->lprev)
		;
	if (!at)
		DL_PREPEND2(eng->finished, tx, lprev, lnext);
	else if (at == eng->finished->lprev)
		DL_APPEND2(eng->finished, tx, lprev, lnext);
	else
		DL_APPEND_ELEM2(eng->finished, at, tx, lprev, lnext);
}

void txn_note_drop_locked(struct txn *tx, const char *name, size_t len)
{
	struct note *nt = NULL;

	HASH_FIND(hh, tx->notes, name, len, nt);
	if (nt) {
		HASH_DEL(tx->notes, nt);
		note_free(tx, nt);
	}
}

/* Leave the pinning states; called with table_lock and tx->lock held. */
void txn_unpin_locked(struct txn_engine *eng, struct txn *tx, enum txn_state to)
{
	if (tx->state == TXN_OPEN || tx->state == TXN_COMMITTING) {
		eng->n_open--;
		if (tx->in_table) {
			/* Finished: readable until reaped, on the list the reaper pops. */
			DL_DELETE2(eng->open_txns, tx, lprev, lnext);
			DL_APPEND2(eng->finished, tx, lprev, lnext);
			tx->finished_mono_ns = clock_now_ns(CLOCK_MONOTONIC);
			eng->n_finished++;
		}
	}
	tx->state = to;
	if (to == TXN_COMMITTED)
		eng->n_committed++;
	else if (to == TXN_ABORTED)
		eng->n_aborted++;
	else if (to == TXN_EXPIRED)
		eng->n_expired++;
	else if (to == TXN_CONFLICT)
		eng->n_conflicted++;
}

int txn_remove(struct txn_engine *eng, const char *name, size_t len)
{
	struct txn *tx = NULL;
	int err = 0;

	pthread_mutex_lock(&eng->table_lock);
	HASH_FIND(hh_name, eng->by_name, name, len, tx);
	if (!tx) {
		pthread_mutex_unlock(&eng->table_lock);
		return -ENOENT;
	}
	pthread_mutex_lock(&tx->lock);
	if (tx->state == TXN_COMMITTING) {
		err = -EBUSY;
	} else {
		if (tx->state == TXN_OPEN)
			txn_unpin_locked(eng, tx, TXN_ABORTED);
		txn_staged_free_all(tx);
		txn_table_del_locked(eng, tx);
		txn_jremoved_locked(tx);
	}
	pthread_mutex_unlock(&tx->lock);
	pthread_mutex_unlock(&eng->table_lock);
	if (!err)
		txn_unref(tx);
	return err;
}

void txn_table_del_locked(struct txn_engine *eng, struct txn *tx)
{
	HASH_DELETE(hh_name, eng->by_name, tx);
	HASH_DELETE(hh_id, eng->by_id, tx);
	if (tx->finished_mono_ns) {
		DL_DELETE2(eng->finished, tx, lprev, lnext);
		eng->n_finished--;
	} else {
		DL_DELETE2(eng->open_txns, tx, lprev, lnext);
	}
	tx->user->n_txns--;
	tx->in_table = false;
}

int txn_list_names(struct txn_engine *eng, struct dirent_entry **out, size_t *n)
{
	struct dirents ds = DIRENTS_INIT;
	struct txn *tx, *tmp;
	int err = 0;

	pthread_mutex_lock(&eng->table_lock);
	HASH_ITER(hh_name, eng->by_name, tx, tmp) {
		err = dirents_add(&ds, tx->name, strlen(tx->name), TXN_DIR);
		if (err)
			break;
	}
	pthread_mutex_unlock(&eng->table_lock);
	return dirents_take(&ds, err, out, n);
}

/* ---- a transaction's state and deadline ------------------------------------------------ */

bool txn_deadline_passed(struct txn *tx)
{
	return clock_now_ns(CLOCK_MONOTONIC) - tx->begin_mono_ns > tx->timeout_ms * 1000000;
}

/* May tx take new staged operations?  Called with tx->lock held. */
int txn_stage_state_err(struct txn *tx)
{
	switch (tx->state) {
	case TXN_OPEN:
		return txn_deadline_passed(tx) ? -ETIMEDOUT : 0;
	case TXN_COMMITTING:
		return -EBUSY;
	case TXN_COMMITTED:
		return -EROFS;
	case TXN_EXPIRED:
		return -ETIMEDOUT;
	case TXN_CONFLICT:
		return -ESTALE;
	case TXN_ABORTED:
	default:
		return -ENOENT;
	}
}


/* Record why tx failed (and at which key), for .status. */
void txn_fail_locked(struct txn *tx, int err, const char *key, size_t klen)
{
	tx->err = err;
	free(tx->err_key);
	tx->err_key = key ? strndup(key, klen) : NULL;
}

/* ---- notes ------------------------------------------------------------------------ */

int txn_note_put(struct txn *tx, const char *name, struct blob *content)
{
	int err;

	pthread_mutex_lock(&tx->lock);
	err = txn_stage_state_err(tx);
	if (!err)
		err = txn_note_set(tx, name, content, false);
	else
		blob_unref(content);
	if (!err) {
		txn_jtouch_locked(tx, JI_NOTE, name, strlen(name));
		txn_jflush_locked(tx);
	}
	pthread_mutex_unlock(&tx->lock);
	return err;
}

int txn_note_get(struct txn *tx, const char *name, struct blob **out)
{
	struct note *nt = NULL;

	pthread_mutex_lock(&tx->lock);
	HASH_FIND_STR(tx->notes, name, nt);
	*out = nt ? blob_ref(nt->content) : NULL;
	pthread_mutex_unlock(&tx->lock);
	return nt ? 0 : -ENOENT;
}

int txn_note_remove(struct txn *tx, const char *name)
{
	struct note *nt = NULL;
	int err;

	pthread_mutex_lock(&tx->lock);
	err = txn_stage_state_err(tx);
	if (!err) {
		HASH_FIND_STR(tx->notes, name, nt);
		if (!nt) {
			err = -ENOENT;
		} else {
			HASH_DEL(tx->notes, nt);
			note_free(tx, nt);
			txn_jtouch_locked(tx, JI_NOTE, name, strlen(name));
			txn_jflush_locked(tx);
		}
	}
	pthread_mutex_unlock(&tx->lock);
	return err;
}

int txn_note_rename(struct txn *tx, const char *from, const char *to)
{
	struct note *nt = NULL, *old = NULL, *moved;
	int err;

	pthread_mutex_lock(&tx->lock);
	err = txn_stage_state_err(tx);
	if (err)
		goto out;
	HASH_FIND_STR(tx->notes, from, nt);
	if (!nt) {
		err = -ENOENT;
		goto out;
	}
	if (strcmp(from, to) == 0)
		goto out;
	HASH_FIND_STR(tx->notes, to, old);
	/* The note goes in under its new name before anything leaves, so a failure
	 * changes nothing (the table is not empty: it cannot fail to be allocated). */
	moved = calloc(1, sizeof(*moved));
	if (!moved || !(moved->name = strdup(to))) {
		free(moved);
		err = -ENOMEM;
		goto out;
	}
	HASH_ADD_KEYPTR(hh, tx->notes, moved->name, strlen(moved->name), moved);
	if (!HASH_ADDED(hh, moved)) {
		free(moved->name);
		free(moved);
		err = -ENOMEM;
		goto out;
	}
	moved->content = nt->content;
	nt->content = NULL;
	moved->charge = nt->charge;
	nt->charge = 0;
	if (old) {
		HASH_DEL(tx->notes, old);
		note_free(tx, old);
	}
	HASH_DEL(tx->notes, nt);
	note_free(tx, nt);
	txn_jtouch_locked(tx, JI_NOTE, from, strlen(from));
	txn_jtouch_locked(tx, JI_NOTE, to, strlen(to));
	txn_jflush_locked(tx);
out:
	pthread_mutex_unlock(&tx->lock);
	return err;
}

int txn_note_list(struct txn *tx, struct dirent_entry **out, size_t *n)
{
	struct dirents ds = DIRENTS_INIT;
	struct note *nt, *tmp;
	int err = 0;

	pthread_mutex_lock(&tx->lock);
	HASH_ITER(hh, tx->notes, nt, tmp) {
		err = dirents_add(&ds, nt->name, strlen(nt->name), TXN_FILE);
		if (err)
			break;
	}
	pthread_mutex_unlock(&tx->lock);
	return dirents_take(&ds, err, out, n);
}
