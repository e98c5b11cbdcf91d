/* SPDX-License-Identifier: MIT */
/*
 * ctl.c - the root directory and its control files: the reserved names at the root,
 * `.health`, `.version`, `.metrics`, `.status` and `.backup` (fs layer).
 *
 * The root is the live tree's top directory plus the reserved dot names: a name that
 * is not reserved goes to the live tree's operations (live.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "version.h"
#include "fs_i.h"

/* The reserved names at the root, in listing order. */
static const struct {
	const char *name;
	enum ikind kind;
	enum txn_type type;
	uint64_t txn_id;
} reserved[] = {
	{ ".at", IK_ATDIR, TXN_DIR, 0 },       { ".backup", IK_BACKUP, TXN_FILE, 0 },
	{ ".health", IK_HEALTH, TXN_FILE, 0 },
	{ ".events", IK_EV, TXN_DIR, 0 },      { ".follow", IK_EV, TXN_DIR, 1 },
	{ ".history", IK_HISTDIR, TXN_DIR, 0 }, { ".metrics", IK_METRICS, TXN_FILE, 0 },
	{ ".status", IK_STATUS, TXN_FILE, 0 }, { ".tx", IK_TXDIR, TXN_DIR, 0 },
	{ ".version", IK_VERSION, TXN_FILE, 0 },
};

static int root_lookup(struct fs *fs, const struct iref *p, const char *name, struct iref *out)
{
	if (name[0] != '.')
		return fs_view_lookup(fs, p, name, out);
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		if (!strcmp(name, reserved[i].name))
			return fs_iref_set(out, reserved[i].kind, reserved[i].txn_id,
					   reserved[i].type, "", 0);
	}
	return -ENOENT;
}

static int root_list(struct fs *fs, const struct iref *r, struct handle *h)
{
	int err = 0;

	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]) && !err; i++)
		err = fs_dir_add(h, reserved[i].name, reserved[i].type);
	return err ? err : fs_view_list(fs, r, h);
}

static int root_rmdir(struct fs *fs, fuse_req_t req, const struct iref *p, const char *name)
{
	if (name[0] == '.')
		return -EINVAL;
	return fs_view_rmdir(fs, req, p, name);
}

/* The root and .tx: directories of the daemon's user that everyone may enter. */
int fs_stat_rw_dir(struct fs *fs, const struct iref *r, struct stat *st)
{
	fs_fill_attr(fs, st, r->ino, TXN_DIR, 0, 0, 0755);
	return 0;
}

const struct fs_area_ops fs_root_ops = {
	.cache_lookup = CACHE_ALL,
	.cache_getattr = CACHE_ALL,
	.lookup = root_lookup,
	.stat = fs_stat_rw_dir,
	.list = root_list,
	.create = fs_view_create,
	.mkdir = fs_view_mkdir,
	.unlink = fs_view_unlink,
	.rmdir = root_rmdir,
	.rename = fs_view_rename,
};

/* ---- control files --------------------------------------------------------------------- */

/* o as one line of compact JSON with a newline (malloc'ed; NULL on failure); drops o. */
static char *json_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER), *line = NULL;

	json_decref(o);
	if (s && asprintf(&line, "%s\n", s) < 0)
		line = NULL;
	free(s);
	return line;
}

static char *version_json(void)
{
	json_t *o = json_object();

	json_object_set_new(o, "version", json_string(STATEHOUSE_VERSION));
	json_object_set_new(o, "git_sha", json_string(STATEHOUSE_GIT_SHA));
	json_object_set_new(o, "schema", json_integer(txn_schema_version()));
	json_object_set_new(o, "sqlite", json_string(txn_sqlite_version()));
	json_object_set_new(o, "libfuse", json_string(fuse_pkgversion()));
	return json_line(o);
}

/* .status's "store": the log's kind, and for a shared one (etcd) how this mount's
 * replica stands against it. */
static json_t *store_json(const struct txn_stats *st)
{
	json_t *s = json_object();

	json_object_set_new(s, "kind", json_string(st->shared ? "etcd" : "sqlite"));
	if (!st->shared)
		return s;
	json_object_set_new(s, "volume", json_string(st->shared_volume));
	json_object_set_new(s, "reachable", json_boolean(st->shared_reachable));
	json_object_set_new(s, "stale", json_boolean(st->shared_stale));
	json_object_set_new(s, "health", json_string(st->shared_health));
	json_object_set_new(s, "shared_head_ts", json_integer(st->shared_head));
	json_object_set_new(s, "replica_lag", json_integer(st->shared_head > st->head_ts
								  ? st->shared_head - st->head_ts
								  : 0));
	json_object_set_new(s, "pulled_commits", json_integer((json_int_t)st->pulled));
	json_object_set_new(s, "behind_retries", json_integer((json_int_t)st->behind));
	return s;
}

/* .status: who serves this mount and how it is doing, for statehousectl status. */
static char *status_json(struct fs *fs)
{
	struct txn_stats st;
	json_t *o = json_object(), *rec = json_object();
	char started[32];
	time_t t = (time_t)(fs->start_ns / 1000000000);
	struct tm tm;
	int err = txn_engine_check(fs->eng);

	txn_engine_stats(fs->eng, &st);
	gmtime_r(&t, &tm);
	strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(o, "pid", json_integer(getpid()));
	{
		const struct sup_shared *sh = fs_worker_shared(fs);
		uint32_t restarts = sh ? atomic_load(&sh->restarts) : 0;

		json_object_set_new(o, "supervisor_pid",
				    sh ? json_integer(sh->supervisor_pid) : json_null());
		json_object_set_new(o, "worker_restarts", json_integer(restarts));
		json_object_set_new(o, "last_restart_pause_ms",
				    restarts ? json_real((double)atomic_load(&sh->last_pause_ns) / 1e6)
					     : json_null());
	}
	json_object_set_new(o, "datadir", json_string(fs->datadir));
	json_object_set_new(o, "mountpoint", json_string(fs->mountpoint));
	json_object_set_new(o, "ro_mount", fs->ro_mountpoint ? json_string(fs->ro_mountpoint)
							     : json_null());
	json_object_set_new(o, "version", json_string(STATEHOUSE_VERSION));
	json_object_set_new(o, "health", json_string(err ? strerror(-err) : "ok"));
	json_object_set_new(o, "read_only", json_boolean(fs->opt.read_only));
	json_object_set_new(o, "head_commit_ts", json_integer(st.head_ts));
	json_object_set_new(o, "store", store_json(&st));
	json_object_set_new(o, "open_transactions", json_integer(st.open_txns));
	json_object_set_new(o, "starts", json_integer((json_int_t)st.starts));
	json_object_set_new(o, "unclean_starts", json_integer((json_int_t)st.unclean_starts));
	json_object_set_new(o, "started", json_string(started));
	json_object_set_new(o, "uptime_s", json_integer((clock_now_ns(CLOCK_REALTIME) -
							 fs->start_ns) / 1000000000));
	json_object_set_new(o, "snapshot_ts", json_integer(st.snapshot_ts));
	/* Retention: where .at and the event streams begin, and by which rules. */
	json_object_set_new(o, "horizon_ts", json_integer(st.horizon_ts));
	json_object_set_new(o, "keep_versions",
			    json_integer(txn_engine_options(fs->eng)->keep_versions));
	json_object_set_new(o, "keep_days",
			    json_real((double)txn_engine_options(fs->eng)->keep_ns / 86400e9));
	json_object_set_new(o, "pruned_ops", json_integer((json_int_t)st.pruned_ops));
	json_object_set_new(rec, "ms", json_integer(st.last_recovery_ns / 1000000));
	json_object_set_new(rec, "replayed_events", json_integer((json_int_t)st.last_replayed));
	json_object_set_new(o, "last_recovery", rec);
	return json_line(o);
}

#define M(type, name, help, fmt, val)                                                     \
	fprintf(f, "# HELP statehouse_" name " " help "\n# TYPE statehouse_" name " " type   \
		   "\nstatehouse_" name " " fmt "\n",                                            \
		val)

static void metrics_counters(FILE *f, const struct txn_stats *s, uint64_t key_reads,
			     uint64_t pooled)
{
	M("counter", "transactions_begun_total", "Transactions begun (mkdir .tx/NAME).",
	  "%" PRIu64, s->begun);
	M("counter", "transactions_committed_total", "Transactions committed by rename.",
	  "%" PRIu64, s->committed);
	M("counter", "transactions_aborted_total", "Transactions aborted by rmdir.", "%" PRIu64,
	  s->aborted);
	M("counter", "transactions_expired_total", "Transactions that passed their timeout.",
	  "%" PRIu64, s->expired);
	M("counter", "transactions_conflicted_total",
	  "Transaction commits refused because another committed a key first.", "%" PRIu64,
	  s->conflicted);
	M("counter", "autocommits_total", "Direct writes, deletes and renames in the live tree.",
	  "%" PRIu64, s->autocommits);
	M("counter", "commits_failed_total", "Commit requests that failed (any reason).",
	  "%" PRIu64, s->failed);
	M("counter", "ops_written_total", "Keys written by commits.", "%" PRIu64, s->ops_written);
	M("counter", "ops_deleted_total", "Keys deleted by commits.", "%" PRIu64, s->ops_deleted);
	M("counter", "key_reads_total", "Opens of live keys for reading.", "%" PRIu64, key_reads);
	M("counter", "commit_batches_total",
	  "Writes of the committer to the store, one fsync each (group commit).", "%" PRIu64,
	  s->batches);
	M("counter", "commit_batched_total", "Commits those writes held.", "%" PRIu64,
	  s->batched);
	M("counter", "fuse_pooled_requests_total",
	  "Requests answered by the pool because they may wait (the past, events, live mkdir).",
	  "%" PRIu64, pooled);
	M("counter", "recoveries_total", "Starts of the daemon on this data dir (each recovers).",
	  "%" PRIu64, s->starts);
	M("counter", "unclean_starts_total", "Starts after a run that did not stop cleanly.",
	  "%" PRIu64, s->unclean_starts);
	M("counter", "transactions_reaped_total",
	  "Finished transactions removed from .tx after txn_linger_ms.", "%" PRIu64, s->reaped);
	M("counter", "pruned_ops_total",
	  "Operations removed from the log by retention (keep_versions, keep_days) in this run.",
	  "%" PRIu64, s->pruned_ops);
	M("counter", "pruned_events_total",
	  "Events removed from the log by retention in this run (none of their ops was left).",
	  "%" PRIu64, s->pruned_events);
}

/* The supervisor's counters (0 when the daemon runs as one process). */
static void metrics_supervisor(FILE *f, const struct sup_shared *sh)
{
	M("counter", "worker_restarts_total",
	  "Serving processes started by the supervisor after one died (clients paused).",
	  "%u", sh ? atomic_load(&sh->restarts) : 0u);
	M("counter", "resent_requests_total",
	  "Requests the kernel sent again after the serving process died.", "%" PRIu64,
	  sh ? (uint64_t)atomic_load(&sh->resent) : (uint64_t)0);
	M("counter", "resent_requests_applied_total",
	  "Resent requests answered from their applied-request record (done once already).",
	  "%" PRIu64, sh ? (uint64_t)atomic_load(&sh->replayed) : (uint64_t)0);
}

/* Refusals by a limit, one series per reason (every reason shown, 0 included). */
static void metrics_refusals(FILE *f, const struct txn_stats *s)
{
	fprintf(f, "# HELP statehouse_txn_refused_total Requests refused by a limit: "
		   "open_txns (max_open_txns), user_txns (max_txns_per_user), txn_bytes "
		   "(max_txn_bytes), user_bytes (max_user_txn_bytes), timeout "
		   "(max_txn_timeout_ms).\n# TYPE statehouse_txn_refused_total counter\n");
	for (int i = 0; i < TXN_REFUSED_N; i++)
		fprintf(f, "statehouse_txn_refused_total{reason=\"%s\"} %" PRIu64 "\n",
			txn_refusal_names[i], s->refused[i]);
}

static void metrics_gauges(FILE *f, const struct txn_stats *s, long rss)
{
	M("gauge", "open_transactions", "Transactions open now.", "%u", s->open_txns);
	M("gauge", "finished_transactions",
	  "Committed, expired or failed transactions still in .tx.", "%u", s->finished_txns);
	M("gauge", "head_commit_ts", "The newest commit_ts.", "%" PRId64, s->head_ts);
	M("gauge", "database_bytes", "Size of the SQLite database file.", "%" PRIu64, s->db_bytes);
	M("gauge", "wal_bytes", "Size of the SQLite write-ahead log.", "%" PRIu64, s->wal_bytes);
	M("gauge", "commits_since_snapshot", "Commits after the newest snapshot.", "%" PRId64,
	  s->head_ts - s->snapshot_ts);
	M("gauge", "horizon_commit_ts",
	  "The oldest commit whose state .at serves and where event streams begin (0: all).",
	  "%" PRId64, s->horizon_ts);
	if (s->free_known)
		M("gauge", "database_free_bytes",
		  "Unused bytes inside the database file (retention gives them back, or reuses "
		  "them in a store made before stores could shrink).", "%" PRIu64, s->free_bytes);
	M("gauge", "resident_memory_bytes", "Resident memory of the daemon.", "%ld",
	  rss * sysconf(_SC_PAGESIZE));
	M("gauge", "last_recovery_seconds", "Duration of the last start's recovery.", "%.6f",
	  (double)s->last_recovery_ns / 1e9);
	M("gauge", "last_recovery_replayed_events", "Events replayed by the last recovery.",
	  "%" PRIu64, s->last_replayed);
}

#undef M

static void metrics_latency(FILE *f, const struct txn_stats *s)
{
	fprintf(f, "# HELP statehouse_commit_latency_seconds From a commit request to its "
		   "completion (durable and visible).\n"
		   "# TYPE statehouse_commit_latency_seconds histogram\n");
	for (int i = 0; i < TXN_LAT_BUCKETS; i++) {
		if (i == TXN_LAT_BUCKETS - 1)
			fprintf(f, "statehouse_commit_latency_seconds_bucket{le=\"+Inf\"} %" PRIu64
				   "\n", s->lat_bucket[i]);
		else
			fprintf(f, "statehouse_commit_latency_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
				txn_latency_bounds_s[i], s->lat_bucket[i]);
	}
	fprintf(f, "statehouse_commit_latency_seconds_sum %.6f\n"
		   "statehouse_commit_latency_seconds_count %" PRIu64 "\n",
		s->lat_sum_s, s->lat_count);
}

/* Prometheus text exposition of the engine's counters and gauges. */
static char *metrics_text(struct fs *fs)
{
	struct txn_stats s;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	long pages = 0, rss = 0;
	FILE *statm = fopen("/proc/self/statm", "r");

	if (!f)
		return NULL;
	if (statm) {
		if (fscanf(statm, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(statm);
	}
	txn_engine_stats(fs->eng, &s);
	metrics_counters(f, &s, (uint64_t)fs->key_reads, (uint64_t)fs->pooled);
	metrics_gauges(f, &s, rss);
	metrics_refusals(f, &s);
	metrics_supervisor(f, fs_worker_shared(fs));
	metrics_latency(f, &s);
	fs_metrics_requests(fs, f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int health_content(struct fs *fs, const struct iref *r, struct blob **out)
{
	int err = txn_engine_check(fs->eng);

	if (!err && !(*out = blob_new("ok\n", 3)))
		err = -ENOMEM;
	return err;
}

static int version_content(struct fs *fs, const struct iref *r, struct blob **out)
{
	*out = fs_blob_from_str(version_json());
	return *out ? 0 : -ENOMEM;
}

static int metrics_content(struct fs *fs, const struct iref *r, struct blob **out)
{
	*out = fs_blob_from_str(metrics_text(fs));
	return *out ? 0 : -ENOMEM;
}

static int status_content(struct fs *fs, const struct iref *r, struct blob **out)
{
	*out = fs_blob_from_str(status_json(fs));
	return *out ? 0 : -ENOMEM;
}

static int ctl_stat(struct fs *fs, const struct iref *r, struct stat *st)
{
	return fs_stat_content(fs, r, st, 0444);
}

static int health_stat(struct fs *fs, const struct iref *r, struct stat *st)
{
	int err = ctl_stat(fs, r, st);

	if (err == -EIO) {
		/* stat works on a sick store; reading .health reports EIO. */
		fs_fill_attr(fs, st, r->ino, TXN_FILE, 0, 0, 0444);
		return 0;
	}
	return err;
}

const struct fs_area_ops fs_health_ops = {
	.slow = true,
	.stat = health_stat,
	.content = health_content,
};

const struct fs_area_ops fs_version_ops = {
	.stat = ctl_stat,
	.content = version_content,
};

const struct fs_area_ops fs_metrics_ops = {
	.stat = ctl_stat,
	.content = metrics_content,
};

const struct fs_area_ops fs_status_ops = {
	.stat = ctl_stat,
	.content = status_content,
};

/* .backup: each open makes a consistent copy of the whole store, read from that copy. */
static int backup_content(struct fs *fs, const struct iref *r, struct blob **out)
{
	int64_t head;

	return txn_engine_backup(fs->eng, out, &head);
}

/* Its size is unknown until it is opened (reads are direct): stat makes no copy. Only
 * the daemon's user may read it: it holds every namespace, whatever their modes. */
static int backup_stat(struct fs *fs, const struct iref *r, struct stat *st)
{
	fs_fill_attr(fs, st, r->ino, TXN_FILE, 0, 0, 0400);
	return 0;
}

const struct fs_area_ops fs_backup_ops = {
	.slow = true,
	.stat = backup_stat,
	.content = backup_content,
};
