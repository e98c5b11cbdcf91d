/* SPDX-License-Identifier: MIT */
/*
 * engine.c - the engine's lifecycle (txn layer): open (with recovery), start and stop of
 * the committer and reaper threads, close, the head, health check, versions, the
 * counters for .metrics and backups.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "txn_i.h"

/* A daemon killed while it made a backup leaves its copy (backup-PID-N.tmp) behind. */
static void remove_backup_leftovers(const char *datadir)
{
	DIR *d = opendir(datadir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		char path[PATH_MAX];

		if (strncmp(e->d_name, "backup-", 7) || n < 11 || strcmp(e->d_name + n - 4, ".tmp"))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", datadir, e->d_name) < (int)sizeof(path) &&
		    unlink(path) == 0)
			log_info("removed '%s', the copy of a backup that did not finish", path);
	}
	if (d)
		closedir(d);
}

int txn_engine_open(const char *datadir, const struct txn_options *opt,
		    struct txn_engine **out)
{
	struct txn_engine *eng;
	struct store_replay_stats stats;
	pthread_rwlockattr_t attr;
	int64_t t0 = clock_now_ns(CLOCK_MONOTONIC);
	int err;

	*out = NULL;
	eng = calloc(1, sizeof(*eng));
	if (!eng)
		return -ENOMEM;
	eng->opt = *opt;
	pthread_rwlockattr_init(&attr);
	/* Readers are many and fast; the committer must not starve behind them. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&eng->tree_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&eng->table_lock, NULL);
	pthread_mutex_init(&eng->lat_lock, NULL);
	pthread_mutex_init(&eng->marks_lock, NULL);
	pthread_mutex_init(&eng->q_lock, NULL);
	pthread_cond_init(&eng->q_cond, NULL);
	pthread_cond_init(&eng->reaper_cond, NULL);
	eng->q_tail = &eng->q_head;

	eng->datadir = strdup(datadir);
	if (!eng->datadir) {
		txn_engine_close(eng);
		return -ENOMEM;
	}
	err = txn_recover_open_store(eng);
	if (!err)
		err = txn_recover(eng, t0, &stats);
	if (!err)
		err = txn_retain_open(eng);
	if (err) {
		txn_engine_close(eng);
		return err;
	}
	/* Only this mount's requests can be resent: the records of others go.  A failure
	 * (a full disk) is no reason to refuse the start: the first commit that carries a
	 * request id makes the table, and an old record never matches this instance. */
	if (!opt->inspect_only && !opt->salvage) {
		err = store_applied_claim(eng->store, opt->instance);
		if (err)
			log_warn("cannot remove the applied-request records of earlier mounts of "
				 "'%s': %s", datadir, strerror(-err));
		err = 0;
	}
	/* Only a start that will serve tidies: --verify and a refused start change no
	 * file. */
	if (!opt->inspect_only)
		remove_backup_leftovers(datadir);
	*out = eng;
	return 0;
}

int txn_engine_start(struct txn_engine *eng)
{
	int rc;

	/* A shared log: what other mounts committed since the open is pulled first. */
	store_set_wake(eng->store, txn_remote_wake, eng);
	eng->remote_wake = true;
	rc = pthread_create(&eng->committer, NULL, txn_committer_main, eng);

	if (rc)
		return -rc;
	rc = pthread_create(&eng->reaper, NULL, txn_reaper_main, eng);
	if (rc) {
		pthread_mutex_lock(&eng->q_lock);
		eng->stopping = true;
		pthread_cond_broadcast(&eng->q_cond);
		pthread_mutex_unlock(&eng->q_lock);
		pthread_join(eng->committer, NULL);
		return -rc;
	}
	eng->started = true;
	eng->ran = true;
	return 0;
}

void txn_engine_stop(struct txn_engine *eng)
{
	if (!eng || !eng->started)
		return;
	pthread_mutex_lock(&eng->q_lock);
	eng->stopping = true;
	pthread_cond_broadcast(&eng->q_cond);
	pthread_cond_broadcast(&eng->reaper_cond);
	pthread_mutex_unlock(&eng->q_lock);
	pthread_join(eng->committer, NULL);
	pthread_join(eng->reaper, NULL);
	eng->started = false;
}

void txn_engine_close(struct txn_engine *eng)
{
	struct txn_user *u, *utmp;
	struct txn *tx, *tmp;
	bool clean = false;

	if (!eng)
		return;
	if (eng->ran)
		txn_engine_stop(eng);
	/* Before the store: its connection must be the last, for a clean stop to fold the
	 * write-ahead log in. */
	txn_retain_close(eng);
	if (eng->ran) {
		/* A clean stop: a snapshot of the final state, then the mark. */
		if (eng->opt.snapshot_interval && eng->published_ts > eng->snap_ts)
			txn_engine_snapshot(eng);
		clean = !eng->start_pending && store_record_stop(eng->store) == 0;
	}
	HASH_ITER(hh_name, eng->by_name, tx, tmp) {
		HASH_DELETE(hh_name, eng->by_name, tx);
		HASH_DELETE(hh_id, eng->by_id, tx);
		tx->in_table = false;
		txn_unref(tx);
	}
	/* A transaction still held elsewhere keeps its user entry. */
	HASH_ITER(hh, eng->users, u, utmp) {
		HASH_DEL(eng->users, u);
		txn_user_unref(u);
	}
	txn_node_free_tree(&eng->root);
	store_close(eng->store);
	if (clean)
		txn_recover_mark(eng, eng->published_ts, true);
	free(eng->datadir);
	pthread_rwlock_destroy(&eng->tree_lock);
	pthread_mutex_destroy(&eng->table_lock);
	pthread_mutex_destroy(&eng->lat_lock);
	pthread_mutex_destroy(&eng->marks_lock);
	pthread_mutex_destroy(&eng->q_lock);
	pthread_cond_destroy(&eng->q_cond);
	pthread_cond_destroy(&eng->reaper_cond);
	free(eng);
}

int64_t txn_engine_head(struct txn_engine *eng)
{
	int64_t ts;

	pthread_rwlock_rdlock(&eng->tree_lock);
	ts = eng->published_ts;
	pthread_rwlock_unlock(&eng->tree_lock);
	return ts;
}

int txn_engine_check(struct txn_engine *eng)
{
	int64_t head = 0;
	int err = store_check(eng->store, &head);

	if (err)
		return -EIO;
	if (head < txn_engine_head(eng)) {
		log_err("cannot trust the store: its head %" PRId64 " is behind commit %" PRId64,
			head, txn_engine_head(eng));
		return -EIO;
	}
	return 0;
}

const char *txn_sqlite_version(void) { return store_sqlite_version(); }
int txn_schema_version(void) { return STORE_SCHEMA_VERSION; }

int txn_store_uri_check(const char *store_uri) { return store_uri_check(store_uri); }

int txn_store_create(const char *store_uri, const char *params)
{
	struct store_options opt = { .fsync = 1, .params = params };

	return store_create(store_uri, &opt);
}

#if STATEHOUSE_FAULT_INJECTION
void txn_engine_set_fault(struct txn_engine *eng, long after, int code)
{
	store_set_fault(eng->store, after, code);
}
#endif
const struct txn_options *txn_engine_options(struct txn_engine *eng) { return &eng->opt; }

/* ---- metrics ---------------------------------------------------------------------------- */

const double txn_latency_bounds_s[TXN_LAT_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1e300,
};

bool txn_engine_stale(struct txn_engine *eng)
{
	return store_stale(eng->store);
}

void txn_engine_stats(struct txn_engine *eng, struct txn_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->begun = eng->n_begun;
	out->committed = eng->n_committed;
	out->aborted = eng->n_aborted;
	out->expired = eng->n_expired;
	out->conflicted = eng->n_conflicted;
	out->autocommits = eng->n_auto;
	out->failed = eng->n_failed;
	out->ops_written = eng->n_written;
	out->ops_deleted = eng->n_deleted;
	out->reaped = eng->n_reaped;
	for (int i = 0; i < TXN_REFUSED_N; i++)
		out->refused[i] = eng->n_refused[i];
	pthread_mutex_lock(&eng->table_lock);
	out->open_txns = eng->n_open;
	out->finished_txns = eng->n_finished;
	pthread_mutex_unlock(&eng->table_lock);
	out->head_ts = txn_engine_head(eng);
	out->snapshot_ts = eng->snap_ts;
	out->last_recovery_ns = eng->last_recovery_ns;
	out->last_replayed = eng->last_replayed;
	store_file_sizes(eng->store, &out->db_bytes, &out->wal_bytes);
	out->horizon_ts = store_horizon(eng->store);
	out->pruned_ops = eng->n_pruned_ops;
	out->pruned_events = eng->n_pruned_events;
	out->free_known = eng->free_known;
	out->shrinks = eng->shrinks;
	out->free_bytes = eng->free_bytes;
	store_starts(eng->store, &out->starts, &out->unclean_starts);
	pthread_mutex_lock(&eng->lat_lock);
	memcpy(out->lat_bucket, eng->lat_bucket, sizeof(out->lat_bucket));
	out->lat_count = eng->lat_count;
	out->batches = eng->n_batches;
	out->batched = eng->n_batched;
	out->lat_sum_s = eng->lat_sum_s;
	pthread_mutex_unlock(&eng->lat_lock);
	{
		struct store_shared sh;

		store_shared_state(eng->store, &sh);
		out->shared = sh.shared;
		out->shared_reachable = sh.reachable;
		out->shared_stale = sh.stale;
		out->shared_head = sh.remote_head;
		out->pulled = eng->n_pulled;
		out->behind = eng->n_behind;
		memcpy(out->shared_endpoint, sh.endpoint, sizeof(sh.endpoint));
		memcpy(out->shared_volume, sh.volume, sizeof(sh.volume));
		memcpy(out->shared_health, sh.health, sizeof(sh.health));
	}
}

/* The bytes of the file at path as a blob (NULL on failure). */
static struct blob *file_blob(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct blob *b = NULL;
	struct stat st;
	void *map;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && st.st_size == 0) {
		b = blob_new("", 0);
	} else if (fstat(fd, &st) == 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map != MAP_FAILED) {
			b = blob_new(map, (size_t)st.st_size);
			munmap(map, (size_t)st.st_size);
		}
	}
	close(fd);
	return b;
}

int txn_engine_backup(struct txn_engine *eng, struct blob **out, int64_t *head_ts)
{
	static atomic_uint seq;
	char tmp[PATH_MAX];
	int err;

	*out = NULL;
	/* In DATADIR: the same file system as the store, never on the mount itself. */
	if (snprintf(tmp, sizeof(tmp), "%s/backup-%ld-%u.tmp", eng->datadir, (long)getpid(),
		     atomic_fetch_add(&seq, 1)) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	err = store_backup(eng->datadir, tmp, head_ts);
	if (err)
		return err;
	*out = file_blob(tmp);
	if (!*out)
		err = -ENOMEM;
	unlink(tmp);
	if (!err)
		log_info("backup: a copy of the store at commit %" PRId64 " (%zu bytes)", *head_ts,
			 (*out)->len);
	return err;
}
