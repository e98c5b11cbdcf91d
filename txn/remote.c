/* SPDX-License-Identifier: MIT */
/*
 * remote.c - the commits of other mounts of a shared log (txn layer): the store wakes
 * the committer, which pulls them (store_pull(), each already in the local copy),
 * applies them to the tree in commit order as the newest published state, and hands
 * their paths to the notify hook, as a batch of its own would.  The committer is the
 * one owner of the head, so a pull never meets a batch half applied.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "log.h"
#include "txn_i.h"

void txn_remote_wake(void *arg)
{
	struct txn_engine *eng = arg;

	pthread_mutex_lock(&eng->q_lock);
	eng->remote_wake = true;
	pthread_cond_signal(&eng->q_cond);
	pthread_mutex_unlock(&eng->q_lock);
}

/* The paths a pull changed, for the notify hook. */
struct pull {
	struct txn_engine *eng;
	char **paths;
	size_t n, cap;
	uint64_t events;
};

static int add_path(struct pull *p, const char *path, size_t len)
{
	char *c;

	if (ARRAY_GROW(p->paths, p->n + 1, p->cap))
		return -ENOMEM;
	c = strndup(path, len);
	if (!c)
		return -ENOMEM;
	p->paths[p->n++] = c;
	return 0;
}

/* One event of another mount: its operations at head_ts + 1, published at once. */
static int apply_event(void *arg, const struct store_event *ev)
{
	struct pull *p = arg;
	struct txn_engine *eng = p->eng;
	int64_t keep;
	int err = 0;

	pthread_rwlock_wrlock(&eng->tree_lock);
	if (ev->commit_ts != eng->head_ts + 1) {
		log_err("the shared log delivered commit %" PRId64 " where %" PRId64
			" was due; not applied", ev->commit_ts, eng->head_ts + 1);
		pthread_rwlock_unlock(&eng->tree_lock);
		return -EIO;
	}
	pthread_mutex_lock(&eng->table_lock);
	keep = txn_pinned_min_locked(eng, ev->commit_ts);
	pthread_mutex_unlock(&eng->table_lock);
	for (size_t i = 0; i < ev->n_ops && !err; i++) {
		const struct store_op *op = &ev->ops[i];
		struct store_replay_op r = {
			.commit_ts = ev->commit_ts,
			.time_ns = ev->time_ns,
			.path = op->path,
			.path_len = op->path_len,
			.kind = op->kind,
			.version = op->version,
			.value = op->value,
			.value_len = op->value_len,
		};

		err = txn_replay_op(eng, &r, keep);
		if (!err)
			err = add_path(p, op->path, op->path_len);
	}
	if (err) {
		/* The local copy holds the event and the tree does not: only a restart,
		 * which replays the copy, can make them one again. */
		log_err("cannot apply commit %" PRId64 " of another mount: %s; the tree is "
			"behind the log until the daemon restarts", ev->commit_ts,
			strerror(-err));
	} else {
		eng->head_ts = eng->published_ts = ev->commit_ts;
		p->events++;
	}
	pthread_rwlock_unlock(&eng->tree_lock);
	return err;
}

int txn_remote_pull(struct txn_engine *eng)
{
	struct pull p = { .eng = eng };
	int64_t head;
	int err;

	pthread_rwlock_rdlock(&eng->tree_lock);
	head = eng->head_ts;
	pthread_rwlock_unlock(&eng->tree_lock);
	err = store_pull(eng->store, head, apply_event, &p);
	if (p.events) {
		atomic_fetch_add(&eng->n_pulled, p.events);
		log_debug("applied %" PRIu64 " commits of other mounts (to commit_ts %" PRId64 ")",
			  p.events, eng->head_ts);
	}
	if (p.n && eng->notify) {
		struct txn_changes *ch = calloc(1, sizeof(*ch));

		if (ch) {
			ch->paths = p.paths;
			ch->n = p.n;
			ch->upto_ts = eng->head_ts;
			eng->notify(eng->notify_arg, ch);
			return err;
		}
	}
	for (size_t i = 0; i < p.n; i++)
		free(p.paths[i]);
	free(p.paths);
	return err;
}
