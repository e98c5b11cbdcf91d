/* SPDX-License-Identifier: MIT */
/*
 * recover.c - rebuilding the state from the store (txn layer): the newest snapshot is
 * loaded and the log after it replayed at open; txn_verify() rebuilds it twice (whole
 * log, snapshot + log) and compares.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "txn_i.h"

/* ---- what the log must hold ----------------------------------------------------------- */

/*
 * A log found at start must hold every commit that something outside it proves was
 * acknowledged: the newest valid snapshot (a snapshot is written only from commits
 * already in the log, after syncing it), and the marks (the head at the last clean stop,
 * the head marked while running: at the start, at each snapshot and once a second while
 * commits come, and the size the write-ahead log had then).  A log that holds less lost
 * acknowledged commits (it was emptied, removed, replaced by an older copy, or its
 * write-ahead log was cut): the start is refused, changing no file, and the operator
 * chooses (a backup, or --recover-from-snapshot).
 */

/* The newest commit something outside the log proves was acknowledged. */
int64_t txn_recover_must_hold(const struct txn_engine *eng)
{
	int64_t need = eng->found_snap_ts;

	if (eng->marks.clean_stop_head > need)
		need = eng->marks.clean_stop_head;
	if (eng->marks.log_head > need)
		need = eng->marks.log_head;
	return need;
}

static void refuse(const struct txn_engine *eng, const char *log_state)
{
	int64_t need = txn_recover_must_hold(eng);

	log_err("cannot start: %s, but acknowledged commits reach commit %" PRId64
		" (newest snapshot: commit %" PRId64 ", last clean stop: commit %" PRId64
		", marked while running: commit %" PRId64 "): commits are missing from the log",
		log_state, need, eng->found_snap_ts, eng->marks.clean_stop_head,
		eng->marks.log_head);
	log_err("nothing was changed in '%s'; stop here and restore a backup into a new data dir, "
		"or accept the loss with 'statehoused --recover-from-snapshot %s' (statehoused(8))",
		eng->datadir, eng->datadir);
}

static bool same_file(const struct store_log_file *a, const struct store_log_file *b)
{
	return a->exists == b->exists && a->bytes == b->bytes && a->mtime_ns == b->mtime_ns &&
	       a->dev == b->dev && a->ino == b->ino;
}

int txn_recover_open_store(struct txn_engine *eng)
{
	struct store_options sopt = { .fsync = eng->opt.fsync, .params = eng->opt.store_params,
				      .max_value_bytes = eng->opt.inspect_only
							 ? 0 : eng->opt.max_value_bytes };
	struct store_log_file found;
	char what[256];
	int err;

	err = store_snapshot_newest(eng->datadir, &eng->found_snap_ts);
	if (!err)
		err = store_log_file_state(eng->opt.store_uri, eng->datadir, &found);
	if (err) {
		log_err("cannot look at the data dir '%s': %s", eng->datadir, strerror(-err));
		return err;
	}
	err = store_marks_read(eng->datadir, &eng->marks);
	if (err && err != -ENOENT)
		log_warn("the marks are unreadable; checking the log against the snapshots only");
	eng->have_marks = !err;
	/* Within one generation the write-ahead log only grows: shorter than at the last
	 * mark of a run that did not stop cleanly, it was cut. */
	if (!eng->opt.salvage && eng->have_marks && !eng->marks.stopped && eng->marks.log.wal_id &&
	    found.wal_id == eng->marks.log.wal_id && found.wal_bytes < eng->marks.log.wal_bytes) {
		snprintf(what, sizeof(what),
			 "the write-ahead log is %" PRIu64 " bytes, shorter than the %" PRIu64
			 " it had at commit %" PRId64, found.wal_bytes,
			 eng->marks.log.wal_bytes, eng->marks.log_head);
		refuse(eng, what);
		return -ENODATA;
	}
	sopt.must_exist = !eng->opt.salvage && txn_recover_must_hold(eng) > 0;
	/* The full check reads the whole file, which grows with the store: it runs when
	 * something other than this daemon may have written the file (no marks, or it
	 * changed after a clean stop), never after a crash (a crash damages only the
	 * write-ahead log's tail, which SQLite checks frame by frame), and for --verify. */
	sopt.skip_full_check = !eng->opt.inspect_only && eng->have_marks &&
			       (!eng->marks.stopped || same_file(&found, &eng->marks.log));
	err = store_open(eng->opt.store_uri, eng->datadir, &sopt, &eng->store);
	if (err == -ENODATA) {
		snprintf(what, sizeof(what), "the log is %s", found.ino ? "empty" : "missing");
		refuse(eng, what);
	}
	return err;
}

void txn_recover_mark(struct txn_engine *eng, int64_t head, bool clean_stop)
{
	struct store_marks m;

	if (eng->opt.inspect_only)
		return;
	pthread_mutex_lock(&eng->marks_lock);
	m = eng->marks;
	eng->marked_ns = clock_now_ns(CLOCK_MONOTONIC);
	/* What the marks promise must be durable in the log first (fsync=0): the head was
	 * read before, the files' state is taken now, then the sync covers both (the
	 * committer may append meanwhile: a size taken after the sync could count frames
	 * a power cut takes).  A later head than one already marked only (two threads
	 * may mark). */
	if (head < m.log_head ||
	    store_log_file_state(eng->opt.store_uri, eng->datadir, &m.log) ||
	    store_log_sync(eng->opt.store_uri, eng->datadir))
		goto unlock;
	m.log_head = head;
	m.stopped = clean_stop;
	if (clean_stop)
		m.clean_stop_head = head;
	if (store_marks_write(eng->datadir, &m) == 0)
		eng->marks = m;
unlock:
	pthread_mutex_unlock(&eng->marks_lock);
}

/* Marks written once a second narrow what a cut write-ahead log can lose unseen to the
 * commits of the last second (4 syncs a second at most, only while commits come). */
#define MARK_INTERVAL_NS 1000000000LL

void txn_recover_mark_often(struct txn_engine *eng)
{
	int64_t head = txn_engine_head(eng), last, marked;

	if (eng->start_pending)
		return; /* the committer marks once the start is recorded */
	pthread_mutex_lock(&eng->marks_lock);
	marked = eng->marks.log_head;
	last = eng->marked_ns;
	pthread_mutex_unlock(&eng->marks_lock);
	if (head > marked && clock_now_ns(CLOCK_MONOTONIC) - last >= MARK_INTERVAL_NS)
		txn_recover_mark(eng, head, false);
}

/* ---- recovery at open -------------------------------------------------------------------- */

/*
 * What the pruned operations of a path left (retention): delivered before the log, each
 * as newer than what a snapshot holds of the path (a replay after S gets only those that
 * reach past S).  The key's last pruned version goes in as its head, holding a value
 * (an empty stand-in: the log's next operation on the key replaces it) when the key was
 * live; the directory flag and the time of its directory's entries are set as the
 * pruned operations left them, so the log's kept operations apply to exactly the state
 * they did before.
 */
/* Where a replayed chain may be cut: below the version visible at the pin
 * (txn_options.pin_ts), so that views as of the pin and after stay exact. */
static int64_t keep_ts(const struct txn_engine *eng, int64_t commit_ts)
{
	return eng->opt.pin && eng->opt.pin_ts < commit_ts ? eng->opt.pin_ts : commit_ts;
}

/* A change at or below n at ts (invariant 10: the serializable checks of transactions
 * restored with an older begin_ts rest on it). */
static void bump_sub(struct node *n, int64_t ts)
{
	for (struct node *a = n; a && a->sub_ts < ts; a = a->parent)
		a->sub_ts = ts;
}

static int replay_pruned(struct txn_engine *eng, struct node *n,
			 const struct store_replay_op *op, int64_t keep)
{
	if (op->version > 0 && (!n->versions || n->versions->version < op->version)) {
		struct version *v = calloc(1, sizeof(*v));
		bool was = txn_node_head_live(n);

		if (!v || (op->live && !(v->value = blob_new("", 0)))) {
			free(v);
			return -ENOMEM;
		}
		v->commit_ts = op->commit_ts;
		v->version = op->version;
		v->time_ns = op->time_ns;
		v->older = n->versions;
		n->versions = v;
		if (was != op->live) {
			txn_node_adjust_desc(n, true, op->live ? 1 : -1);
			txn_node_adjust_desc(n, false, op->live ? 1 : -1);
		}
		txn_node_prune(n, keep);
		bump_sub(n, op->commit_ts);
	}
	txn_node_set_dir(n, true, op->dir);
	txn_node_set_dir(n, false, op->dir);
	if (op->entries_ns)
		txn_node_touch_parent(n, op->entries_ns);
	return 0;
}

static int replay_one(void *arg, const struct store_replay_op *op)
{
	struct txn_engine *eng = arg;

	return txn_replay_op(eng, op, keep_ts(eng, op->commit_ts));
}

/* txn_i.h */
int txn_replay_op(struct txn_engine *eng, const struct store_replay_op *op, int64_t keep)
{
	struct node *n = txn_node_find_or_create(eng, op->path, op->path_len);
	struct version *v;
	bool was;

	if (!n)
		return -ENOMEM;
	if (op->kind == STORE_PRUNED)
		return replay_pruned(eng, n, op, keep);
	if (op->kind == STORE_ATTR) {
		struct dattr *a;
		int err = txn_attr_decode(op->value, op->value_len,
					  txn_path_depth(op->path, op->path_len) > 2, &a);

		if (err)
			return err;
		free(n->attr);
		n->attr = a;
		return 0;
	}
	if (op->kind == STORE_MKDIR || op->kind == STORE_RMDIR) {
		bool on = op->kind == STORE_MKDIR;

		txn_node_set_dir(n, true, on);
		txn_node_set_dir(n, false, on);
		txn_node_touch_parent(n, op->time_ns);
		bump_sub(n, op->commit_ts);
		return 0;
	}
	if (n->versions && op->version <= n->versions->version) {
		log_err("cannot replay the log: version %" PRId64 " of '%.*s' at commit %" PRId64
			" does not follow version %" PRId64, op->version, (int)op->path_len,
			op->path, op->commit_ts, n->versions->version);
		return -EIO;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (op->kind == STORE_PUT) {
		v->value = blob_new(op->value, op->value_len);
		if (!v->value) {
			free(v);
			return -ENOMEM;
		}
	}
	was = txn_node_head_live(n);
	v->commit_ts = op->commit_ts;
	v->version = op->version;
	v->time_ns = op->time_ns;
	v->older = n->versions;
	n->versions = v;
	if (was != (v->value != NULL)) {
		txn_node_adjust_desc(n, true, v->value ? 1 : -1);
		txn_node_adjust_desc(n, false, v->value ? 1 : -1);
		txn_node_touch_parent(n, op->time_ns);
	}
	txn_node_prune(n, keep);
	bump_sub(n, op->commit_ts);
	return 0;
}

int txn_recover_snap_load_one(void *arg, const struct store_snap_entry *e)
{
	struct txn_engine *eng = arg;
	struct node *n = e->path_len ? txn_node_find_or_create(eng, e->path, e->path_len)
				     : &eng->root;
	struct version *v;

	if (!n)
		return -ENOMEM;
	if (e->dir) {
		n->entries_ns = e->time_ns;
		if (e->dir == STORE_SNAP_DIR) {
			txn_node_set_dir(n, true, true);
			txn_node_set_dir(n, false, true);
		}
		return 0;
	}
	if (txn_path_depth(e->path, e->path_len) < 3 || e->version == 0) {
		/* An owner record, or a key's mode (version 0, before the key's entry). */
		if (n->attr)
			return -EIO; /* twice in one snapshot */
		return txn_attr_decode(e->value, e->value_len,
				       txn_path_depth(e->path, e->path_len) > 2, &n->attr);
	}
	if (n->versions)
		return -EIO; /* a key twice in one snapshot */
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (!e->deleted && !(v->value = blob_new(e->value, e->value_len))) {
		free(v);
		return -ENOMEM;
	}
	v->commit_ts = e->commit_ts;
	v->version = e->version;
	v->time_ns = e->time_ns;
	n->versions = v;
	bump_sub(n, e->commit_ts);
	if (v->value) {
		txn_node_adjust_desc(n, true, 1);
		txn_node_adjust_desc(n, false, 1);
	}
	return 0;
}

/* Open SQLite (its own WAL recovery ran in store_open), load the newest valid snapshot,
 * replay every event after it; record the start. */
int txn_recover(struct txn_engine *eng, int64_t t0, struct store_replay_stats *stats)
{
	int64_t head = 0, snap_ts = 0, t_snap, t_end;
	uint64_t nkeys = 0;
	int clean_prev = 1, err;

	err = store_check(eng->store, &head);
	if (err) {
		log_err("cannot read the log's head");
		return err;
	}
	if (!eng->opt.salvage && head < txn_recover_must_hold(eng)) {
		char what[96];

		snprintf(what, sizeof(what), "the log ends at commit %" PRId64, head);
		refuse(eng, what);
		return -ENODATA;
	}
	if (!eng->opt.full_replay) {
		/* With a pin, a snapshot no newer than it: the versions after it come from
		 * the log, into the chains. */
		int64_t max_ts = eng->opt.pin && eng->opt.pin_ts < head ? eng->opt.pin_ts : head;

		err = store_snapshot_load(eng->datadir, max_ts, txn_recover_snap_load_one, eng,
					  &snap_ts, &nkeys);
		if (err) {
			/* Applied in part: start over from the first event. */
			log_warn("cannot load the snapshot (%s); replaying the whole log",
				 strerror(-err));
			txn_node_free_tree(&eng->root);
			memset(&eng->root, 0, sizeof(eng->root));
			snap_ts = 0;
			nkeys = 0;
		}
	}
	t_snap = clock_now_ns(CLOCK_MONOTONIC);
	err = store_replay(eng->store, snap_ts, replay_one, eng, stats);
	if (err) {
		log_err("cannot recover the state from the log: %s", strerror(-err));
		return err;
	}
	t_end = clock_now_ns(CLOCK_MONOTONIC);
	eng->published_ts = eng->head_ts = stats->head_ts;
	eng->snap_ts = snap_ts;
	/* The oldest snapshot a restored transaction may read (restore.c): the chains hold
	 * every version after the pin, and the log the state as of its horizon on. */
	eng->view_floor_ts = eng->published_ts;
	if (eng->opt.pin) {
		int64_t floor = eng->opt.pin_ts, horizon = store_horizon(eng->store);

		if (horizon > floor)
			floor = horizon;
		if (floor < eng->view_floor_ts)
			eng->view_floor_ts = floor;
	}
	if (snap_ts)
		log_info("recovery: snapshot at commit %" PRId64 " loaded (%" PRIu64 " keys) in %"
			 PRId64 " ms; replayed %" PRIu64 " events (%" PRIu64 " ops) in %" PRId64
			 " ms; ready at commit %" PRId64,
			 snap_ts, nkeys, (t_snap - t0) / 1000000, stats->events, stats->ops,
			 (t_end - t_snap) / 1000000, stats->head_ts);
	else
		log_info("recovery: no snapshot; replayed %" PRIu64 " events (%" PRIu64
			 " ops) in %" PRId64 " ms; ready at commit %" PRId64,
			 stats->events, stats->ops, (t_end - t0) / 1000000, stats->head_ts);
	if (eng->opt.inspect_only)
		return 0;
	eng->last_recovery_ns = t_end - t0;
	eng->last_replayed = stats->events;
	eng->pending_start = (struct store_start){ .time_ns = clock_now_ns(CLOCK_REALTIME),
						   .recovery_ns = t_end - t0,
						   .snapshot_ts = snap_ts,
						   .events_replayed = stats->events,
						   .head_ts = stats->head_ts };
	err = store_record_start(eng->store, &eng->pending_start, &clean_prev);
	if (err == -ENOSPC) {
		/* Reads need no room: serve them, and record the start before the first
		 * commit that finds room (txn_recover_record_pending). */
		log_warn("cannot record the start: no space left on the device holding '%s'; "
			 "serving reads, commits fail with ENOSPC until there is room",
			 eng->datadir);
		eng->start_pending = true;
		return 0;
	}
	if (err)
		return err;
	if (!clean_prev)
		log_warn("the previous run did not stop cleanly (crash or kill); recovered from "
			 "the log");
	txn_recover_mark(eng, stats->head_ts, false);
	return 0;
}

int txn_recover_record_pending(struct txn_engine *eng)
{
	int clean_prev = 1, err;

	if (!eng->start_pending)
		return 0;
	err = store_record_start(eng->store, &eng->pending_start, &clean_prev);
	if (err)
		return err;
	eng->start_pending = false;
	log_info("the start is recorded: the disk has room again");
	if (!clean_prev)
		log_warn("the previous run did not stop cleanly (crash or kill); recovered from "
			 "the log");
	txn_recover_mark(eng, eng->pending_start.head_ts, false);
	return 0;
}

/* ---- verify --------------------------------------------------------------------------- */

struct verify {
	struct txn_engine *other;
	uint64_t keys, dirs, diffs;
};

/* The owner records of n (a namespace or agent, or any node with one) must agree. */
static int verify_attr(struct node *n, struct verify *vf)
{
	size_t len;
	char *path = txn_node_path(n, &len);
	struct node *m = path ? txn_node_find(vf->other, path, len) : NULL;
	struct dattr *x = n->attr, *y = m ? m->attr : NULL;

	if (!path)
		return -ENOMEM;
	if ((x == NULL) != (y == NULL) ||
	    (x && (x->uid != y->uid || x->gid != y->gid || x->mode != y->mode))) {
		vf->diffs++;
		log_err("verify: the owner or mode of '%s' differs", path);
	}
	free(path);
	return 0;
}

/* The newest version of key n must agree. */
static int verify_key(struct node *n, struct verify *vf)
{
	size_t len;
	char *path = txn_node_path(n, &len);
	struct node *m = path ? txn_node_find(vf->other, path, len) : NULL;
	struct version *x = n->versions, *y = m ? m->versions : NULL;

	if (!path)
		return -ENOMEM;
	vf->keys++;
	if (!y || x->version != y->version || x->commit_ts != y->commit_ts ||
	    (x->value == NULL) != (y->value == NULL) ||
	    (x->value && (x->value->len != y->value->len ||
			  memcmp(x->value->data, y->value->data, x->value->len)))) {
		vf->diffs++;
		log_err("verify: '%s' differs: full replay has version %" PRId64
			" at commit %" PRId64 "%s, snapshot + replay has %s", path,
			x->version, x->commit_ts, x->value ? "" : " (deleted)",
			y ? "another version or value" : "nothing");
	}
	free(path);
	return 0;
}

/* Directory n must be explicit or not, with the same time of its entries, in both. */
static int verify_dir(struct node *n, struct verify *vf)
{
	size_t len;
	char *path = txn_node_path(n, &len);
	struct node *m = path ? txn_node_find(vf->other, path, len) : NULL;

	if (!path)
		return -ENOMEM;
	if (n->explicit_dir != (m && m->explicit_dir) ||
	    n->entries_ns != (m ? m->entries_ns : 0)) {
		vf->diffs++;
		log_err("verify: the directory '%s' differs (explicit or time of its entries)",
			path);
	}
	free(path);
	return 0;
}

static int verify_walk(struct txn_engine *a, struct node *n, struct verify *vf)
{
	struct node *c, *tmp;
	int err = 0;

	if (n->parent && (n->attr || n->parent == &a->root || n->parent->parent == &a->root))
		err = verify_attr(n, vf);
	if (!err && (n->explicit_dir || n->entries_ns)) {
		vf->dirs++;
		err = verify_dir(n, vf);
	}
	if (!err && n->versions)
		err = verify_key(n, vf);
	HASH_ITER(hh, n->children, c, tmp) {
		if (err)
			break;
		err = verify_walk(a, c, vf);
	}
	return err;
}

static uint64_t count_attrs(struct node *n)
{
	struct node *c, *tmp;
	uint64_t k = n->attr ? 1 : 0;

	HASH_ITER(hh, n->children, c, tmp)
		k += count_attrs(c);
	return k;
}

/* Directories with a state of their own: explicit, or with a time of their entries. */
static uint64_t count_dirs(struct node *n)
{
	struct node *c, *tmp;
	uint64_t k = n->explicit_dir || n->entries_ns ? 1 : 0;

	HASH_ITER(hh, n->children, c, tmp)
		k += count_dirs(c);
	return k;
}

static uint64_t count_keys(struct node *n)
{
	struct node *c, *tmp;
	uint64_t k = n->versions ? 1 : 0;

	HASH_ITER(hh, n->children, c, tmp)
		k += count_keys(c);
	return k;
}

int txn_verify(const char *datadir, const char *store_uri)
{
	struct txn_options opt = { .txn_timeout_ms = 1000, .max_open_txns = 1,
				   .max_value_bytes = SIZE_MAX, .fsync = 1, .inspect_only = true,
				   .store_uri = store_uri };
	struct txn_engine *full = NULL, *snap = NULL;
	struct verify vf = { 0 };
	int err;

	opt.full_replay = true;
	err = txn_engine_open(datadir, &opt, &full);
	if (!err) {
		opt.full_replay = false;
		err = txn_engine_open(datadir, &opt, &snap);
	}
	if (!err && full->published_ts != snap->published_ts) {
		log_err("verify: the full replay ends at commit %" PRId64 ", snapshot + replay at %"
			PRId64, full->published_ts, snap->published_ts);
		err = -EIO;
	}
	if (!err) {
		vf.other = snap;
		err = verify_walk(full, &full->root, &vf);
	}
	if (!err && count_keys(&snap->root) != vf.keys) {
		log_err("verify: snapshot + replay holds %" PRIu64 " keys, the full replay %" PRIu64,
			count_keys(&snap->root), vf.keys);
		err = -EIO;
	}
	/* Every record of the full replay was compared; equal counts leave none extra. */
	if (!err && count_attrs(&snap->root) != count_attrs(&full->root)) {
		log_err("verify: snapshot + replay holds %" PRIu64 " owner records, the full replay %"
			PRIu64, count_attrs(&snap->root), count_attrs(&full->root));
		err = -EIO;
	}
	if (!err && count_dirs(&snap->root) != vf.dirs) {
		log_err("verify: snapshot + replay holds %" PRIu64 " directories, the full replay %"
			PRIu64, count_dirs(&snap->root), vf.dirs);
		err = -EIO;
	}
	if (!err && vf.diffs)
		err = -EIO;
	if (!err)
		log_info("verify: ok: %" PRIu64 " keys at commit %" PRId64 " agree (snapshot at commit %"
			 PRId64 " + replay vs the whole log)", vf.keys, full->published_ts,
			 snap->snap_ts);
	txn_engine_close(full);
	txn_engine_close(snap);
	return err;
}
