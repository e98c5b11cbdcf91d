/* SPDX-License-Identifier: MIT */
/*
 * worker_txn.c - the transactions of the table outlive the worker (fs layer): their
 * journal in the memory the supervisor shares, and taking them over after a death.
 *
 * The engine hands every change of a transaction in its table to a hook as a
 * self-checking record of absolute states (txn.h, "the transaction journal"); the hook
 * appends it here before the call that made the change returns, so no answer reaches
 * the kernel ahead of its record.  When the journal has grown to 4 times what its last
 * compaction wrote, the next request read starts one (no engine lock is held there):
 * the engine's dump of its table goes to the other half while changes go on, each
 * written to both halves, and the halves flip when the dump is done (records are
 * absolute states, so one that repeats the dump changes nothing).
 *
 * A commit asked by renaming onto .commit is in doubt when the worker dies before its
 * answer: the rename's request id is journaled first (JT_COMMITTING), and the next
 * worker asks the applied-request records whether that request committed.  If it did,
 * the restored transaction is marked committed at that commit_ts (.commit and .status
 * read as after the answer) and the kernel's resent rename is answered from the record;
 * if not, it stays open and the resent rename commits it.
 *
 * The next worker reads the journal twice: before it opens the store, for the oldest
 * snapshot a restored transaction reads (the engine's pin, so that recovery keeps the
 * versions since), and after, to rebuild the table.  A journal a record could not be
 * written to is not used: its transactions are lost, as when the whole daemon dies.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "log.h"
#include "supervise.h"

enum { JT_REC = 1, JT_COMMITTING };

#define COMMITTING_KEPT 1024 /* renames onto .commit remembered for a compaction */

/* What a rename onto .commit journals before it asks for the commit. */
struct committing {
	uint64_t txn_id, unique;
	char note[TXN_NAME_MAX + 1];
};

/* A request whose change of a transaction is in the journal (restored after a death). */
struct applied_req {
	uint64_t unique;
	bool commit; /* a rename onto .commit: its record in the store decides */
	UT_hash_handle hh;
};

struct fs_txj {
	struct fs_journal j;
	struct applied_req *applied; /* set at the takeover, read-only after */
	pthread_mutex_t lock;  /* a leaf: taken under the engine's locks (the hook) */
	bool compacting;       /* records go to both halves */
	atomic_bool want_compact;
	struct committing ring[COMMITTING_KEPT];
	unsigned ring_next;
};

static struct fs_txj *the_txj;

static void put_locked(struct fs_txj *t, unsigned kind, uint64_t a, uint64_t b, const void *p,
		       size_t n)
{
	if (fs_jput(&t->j, kind, a, b, p, n) || (t->compacting &&
						 fs_jcompact_put(&t->j, kind, a, b, p, n))) {
		fs_jlose(&t->j, "transaction");
		return;
	}
	if (!t->compacting && fs_jwants_compact(&t->j))
		atomic_store(&t->want_compact, true);
}

static void hook(void *arg, const void *rec, size_t len)
{
	struct fs_txj *t = arg;

	pthread_mutex_lock(&t->lock);
	if (!rec)
		fs_jlose(&t->j, "transaction");
	else /* with the request that made the change, for its resend after a death */
		put_locked(t, JT_REC, fs_request_id(), 0, rec, len);
	pthread_mutex_unlock(&t->lock);
}

static void dump_one(void *arg, const void *rec, size_t len)
{
	struct fs_txj *t = arg;

	pthread_mutex_lock(&t->lock);
	if (!rec || fs_jcompact_put(&t->j, JT_REC, 0, 0, rec, len))
		fs_jlose(&t->j, "transaction");
	pthread_mutex_unlock(&t->lock);
}

/* Rewrite the journal from the engine's table (no engine lock held by the caller). */
static void compact(struct fs *fs, struct fs_txj *t)
{
	pthread_mutex_lock(&t->lock);
	if (t->compacting || atomic_load(&t->j.r->lost)) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	atomic_store(&t->want_compact, false);
	fs_jcompact_begin(&t->j);
	t->compacting = true;
	for (unsigned i = 0; i < COMMITTING_KEPT; i++)
		if (t->ring[i].txn_id &&
		    fs_jcompact_put(&t->j, JT_COMMITTING, t->ring[i].txn_id, t->ring[i].unique,
				    t->ring[i].note, strlen(t->ring[i].note)))
			fs_jlose(&t->j, "transaction");
	pthread_mutex_unlock(&t->lock);
	if (txn_journal_dump(fs->eng, dump_one, t))
		fs_jlose(&t->j, "transaction");
	pthread_mutex_lock(&t->lock);
	t->compacting = false;
	if (!atomic_load(&t->j.r->lost))
		fs_jcompact_end(&t->j);
	pthread_mutex_unlock(&t->lock);
}

void fs_txj_maybe_compact(struct fs *fs)
{
	struct fs_txj *t = the_txj;

	if (t && atomic_load_explicit(&t->want_compact, memory_order_relaxed))
		compact(fs, t);
}

bool fs_txj_applied(uint64_t unique)
{
	struct fs_txj *t = the_txj;
	struct applied_req *q = NULL;

	if (!t || !t->applied)
		return false;
	HASH_FIND(hh, t->applied, &unique, sizeof(unique), q);
	return q && !q->commit;
}

void fs_txj_committing(struct fs *fs, uint64_t txn_id, const char *note)
{
	struct fs_txj *t = the_txj;
	struct committing *c;

	(void)fs;
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	c = &t->ring[t->ring_next++ % COMMITTING_KEPT];
	c->txn_id = txn_id;
	c->unique = fs_request_id();
	snprintf(c->note, sizeof(c->note), "%s", note);
	put_locked(t, JT_COMMITTING, c->txn_id, c->unique, c->note, strlen(c->note));
	pthread_mutex_unlock(&t->lock);
}

/* ---- taking over ------------------------------------------------------------------- */

/* The last record of each transaction, to find the pin. */
struct last {
	uint64_t id;
	struct txn_jrec_info info;
	UT_hash_handle hh;
};

static int note_last(void *arg, const struct sup_rec *r, const void *bytes)
{
	struct last **tab = arg, *l = NULL;
	struct txn_jrec_info info;

	if (r->kind != JT_REC || txn_jrec_decode(bytes, r->n, &info))
		return 0;
	HASH_FIND(hh, *tab, &info.id, sizeof(info.id), l);
	if (!l) {
		if (!(l = calloc(1, sizeof(*l))))
			return -ENOMEM;
		l->id = info.id;
		HASH_ADD(hh, *tab, id, sizeof(l->id), l);
		if (!HASH_ADDED(hh, l)) {
			free(l);
			return -ENOMEM;
		}
	}
	l->info = info;
	return 0;
}

bool fs_worker_pin_ts(const struct sup_worker *w, int64_t *ts)
{
	struct fs_journal j = { .r = &w->sh->txns, .base = w->base };
	struct last *tab = NULL, *l, *tmp;
	bool pin = false;

	*ts = 0;
	if (!w->restarted || atomic_load(&w->sh->txns.lost))
		return false;
	if (fs_jeach(&j, note_last, &tab) == 0) {
		HASH_ITER(hh, tab, l, tmp) {
			/* open, or committing: a commit in doubt may stay open */
			if (!l->info.removed && (l->info.state == TXN_OPEN ||
						 l->info.state == TXN_COMMITTING) &&
			    (!pin || l->info.begin_ts < *ts)) {
				*ts = l->info.begin_ts;
				pin = true;
			}
		}
	}
	HASH_ITER(hh, tab, l, tmp) {
		HASH_DELETE(hh, tab, l);
		free(l);
	}
	return pin;
}

struct restore {
	struct fs *fs;
	struct fs_txj *t;
	const struct sup_shared *sh;
	unsigned records, bad, committed;
};

/* Records first (pass 1), then the commits in doubt (pass 2): a rename's record comes
 * before the records of the commit it asked for. */
static int restore_rec(void *arg, const struct sup_rec *r, const void *bytes)
{
	struct restore *rs = arg;

	if (r->kind == JT_REC && r->a) {
		struct applied_req *q = NULL;

		HASH_FIND(hh, rs->t->applied, &r->a, sizeof(r->a), q);
		if (!q && (q = calloc(1, sizeof(*q)))) {
			q->unique = r->a;
			HASH_ADD(hh, rs->t->applied, unique, sizeof(q->unique), q);
			if (!HASH_ADDED(hh, q))
				free(q);
		}
	}
	if (r->kind == JT_REC) {
		int err = txn_restore(rs->fs->eng, bytes, r->n);

		rs->records++;
		if (err) {
			rs->bad++;
			log_warn("cannot take over a transaction record: %s", strerror(-err));
		}
	}
	return 0;
}

static int restore_committing(void *arg, const struct sup_rec *r, const void *bytes)
{
	struct restore *rs = arg;

	if (r->kind == JT_COMMITTING) {
		struct applied_req *q = NULL;

		HASH_FIND(hh, rs->t->applied, &r->b, sizeof(r->b), q);
		if (q)
			q->commit = true;
	}
	if (r->kind == JT_COMMITTING) {
		struct txn_reqid id = { .instance = rs->sh->instance, .unique = r->b };
		struct txn_applied a;
		char note[TXN_NAME_MAX + 1];
		size_t n = r->n < sizeof(note) - 1 ? r->n : sizeof(note) - 1;

		memcpy(note, bytes, n);
		note[n] = '\0';
		/* the rename that asked for the commit: did it commit before the death? */
		if (txn_applied_find(rs->fs->eng, &id, &a) == 0 &&
		    txn_restore_committed(rs->fs->eng, r->a, a.commit_ts, a.time_ns,
					  note[0] ? note : NULL) == 0)
			rs->committed++;
	}
	return 0;
}

int fs_txj_attach(struct fs *fs, const struct sup_worker *w)
{
	struct fs_txj *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->j = (struct fs_journal){ .r = &w->sh->txns, .base = w->base };
	pthread_mutex_init(&t->lock, NULL);
	if (w->restarted) {
		struct restore rs = { .fs = fs, .t = t, .sh = w->sh };

		if (atomic_load(&w->sh->txns.lost)) {
			log_warn("the transaction journal was incomplete: the transactions open "
				 "when the worker died are lost");
		} else {
			fs_jeach(&t->j, restore_rec, &rs);
			fs_jeach(&t->j, restore_committing, &rs);
			log_info("took over %u transaction records (%u refused); %u commits in "
				 "doubt were durable", rs.records, rs.bad, rs.committed);
		}
		txn_restore_end(fs->eng);
		atomic_store(&w->sh->txns.lost, 0);
	}
	the_txj = t;
	txn_engine_set_journal(fs->eng, hook, t);
	/* The journal now describes this engine's table, from scratch. */
	compact(fs, t);
	return 0;
}
