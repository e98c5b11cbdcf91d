/* SPDX-License-Identifier: MIT */
/*
 * salvage.c - statehoused --recover-from-snapshot (txn layer): a log that lost
 * acknowledged commits (emptied, removed, replaced by an older copy, cut) is completed
 * from the newest snapshot, and the loss of every commit after it is recorded.  Only
 * ever run by the operator: a start refuses such a log and changes nothing.
 *
 * The log is kept as found up to its head H.  For the commits H+1 .. S of the snapshot
 * at S, the snapshot holds the newest version of every key, with the commit that wrote
 * it: each commit_ts in (H, S] becomes one event holding the versions it wrote that
 * survive at S (what a later commit overwrote is gone, so some of these events are
 * empty), and the owner records, key modes and explicit directories that differ go
 * into the event at S.  Replaying the result gives the snapshot's state with the same
 * versions and commit_ts; commits after S are lost and get new numbers from S + 1 on.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "grow.h"
#include "log.h"
#include "txn_i.h"

#define SALVAGE_TXN "recovered-from-snapshot"
#define SALVAGE_BATCH 1000 /* events per append */

struct salvage_op {
	struct store_op op;
	int64_t commit_ts;
	int64_t time_ns;
	char *path;            /* owned */
	struct blob *value;    /* a reference, or NULL */
};

struct salvage {
	struct txn_engine *log;  /* the state of the log as found */
	struct txn_engine *snap; /* the snapshot's state (only its tree is used) */
	int64_t head, snap_ts;
	struct salvage_op *ops;
	size_t n, cap;
	uint64_t disagree;
};

static int add_op(struct salvage *sv, struct node *n, enum store_op_kind kind, int64_t ts,
		  int64_t version, int64_t time_ns, struct blob *value)
{
	struct salvage_op *o;

	if (ARRAY_GROW(sv->ops, sv->n + 1, sv->cap))
		return -ENOMEM;
	o = &sv->ops[sv->n];
	memset(o, 0, sizeof(*o));
	o->path = txn_node_path(n, &o->op.path_len);
	if (!o->path)
		return -ENOMEM;
	o->op.path = o->path;
	o->op.kind = kind;
	o->op.version = version;
	o->commit_ts = ts;
	o->time_ns = time_ns;
	if (value) {
		blob_ref(value);
		o->value = value;
		o->op.value = value->data;
		o->op.value_len = value->len;
	}
	sv->n++;
	return 0;
}

/* A key's record has only a mode (its uid and gid are unused, and compared as well:
 * both sides decode them the same way). */
static bool same_attr(const struct dattr *a, const struct dattr *b)
{
	return (!a && !b) || (a && b && a->uid == b->uid && a->gid == b->gid && a->mode == b->mode);
}

/* What node n of the snapshot adds to the log (n's twin in the log: m, or NULL). */
static int salvage_node(struct salvage *sv, struct node *n)
{
	size_t len;
	char *path = txn_node_path(n, &len);
	struct node *m = path ? txn_node_find(sv->log, path, len) : NULL;
	struct version *v = n->versions;
	int depth = path ? txn_path_depth(path, len) : 0;
	int err = 0;

	if (!path)
		return -ENOMEM;
	if (v && v->commit_ts > sv->head) {
		err = add_op(sv, n, v->value ? STORE_PUT : STORE_DELETE, v->commit_ts, v->version,
			     v->time_ns, v->value);
	} else if (v && (!m || !m->versions || m->versions->version != v->version ||
			 m->versions->commit_ts != v->commit_ts)) {
		/* The log is no earlier state of the snapshot's history. */
		log_err("cannot recover: '%s' is at version %" PRId64 " (commit %" PRId64
			") in the snapshot, but the log has %s", path, v->version, v->commit_ts,
			m && m->versions ? "another version there" : "nothing");
		sv->disagree++;
	}
	/* Owner records of namespaces and agents, and the modes of keys. */
	if (!err && depth > 0 && !same_attr(n->attr, m ? m->attr : NULL)) {
		struct txn_attr a = { n->attr ? n->attr->uid : 0, n->attr ? n->attr->gid : 0,
				      n->attr ? n->attr->mode : 0, true };
		struct blob *b = n->attr ? txn_attr_encode(&a, depth > 2) : NULL;

		if (n->attr && !b)
			err = -ENOMEM;
		else
			err = add_op(sv, n, STORE_ATTR, sv->snap_ts, 0, 0, b);
		blob_unref(b);
	}
	if (!err && depth > 2 && n->explicit_dir && !(m && m->explicit_dir))
		err = add_op(sv, n, STORE_MKDIR, sv->snap_ts, 0, 0, NULL);
	free(path);
	return err;
}

/* Explicit directories and owner records of the log that the snapshot no longer has
 * (and keys it never had: then the two disagree). */
static int salvage_gone(struct salvage *sv, struct node *m)
{
	size_t len;
	char *path = txn_node_path(m, &len);
	struct node *n = path ? txn_node_find(sv->snap, path, len) : NULL;
	int depth = path ? txn_path_depth(path, len) : 0, err = 0;

	if (!path)
		return -ENOMEM;
	if (m->versions && !(n && n->versions)) {
		/* A snapshot keeps deleted keys too: this log is of another history. */
		log_err("cannot recover: the log has '%s', the snapshot has nothing there", path);
		sv->disagree++;
	}
	if (depth > 2 && m->explicit_dir && !(n && n->explicit_dir))
		err = add_op(sv, m, STORE_RMDIR, sv->snap_ts, 0, 0, NULL);
	if (!err && depth > 0 && m->attr && !(n && n->attr))
		err = add_op(sv, m, STORE_ATTR, sv->snap_ts, 0, 0, NULL);
	free(path);
	return err;
}

static int walk(struct salvage *sv, struct node *n, int (*fn)(struct salvage *, struct node *))
{
	struct node *c, *tmp;
	int err = n->parent ? fn(sv, n) : 0;

	HASH_ITER(hh, n->children, c, tmp) {
		if (err)
			break;
		err = walk(sv, c, fn);
	}
	return err;
}

static int by_commit(const void *a, const void *b)
{
	const struct salvage_op *x = a, *y = b;

	if (x->commit_ts != y->commit_ts)
		return x->commit_ts < y->commit_ts ? -1 : 1;
	/* Keys and owner records before the directories made or removed at S. */
	return (x->op.kind >= STORE_MKDIR) - (y->op.kind >= STORE_MKDIR);
}

/* One event per commit_ts in (head, snap_ts], appended SALVAGE_BATCH at a time. */
static int salvage_append(struct salvage *sv, struct store *st)
{
	size_t nev = (size_t)(sv->snap_ts - sv->head), k = 0;
	struct store_event *ev = calloc(nev, sizeof(*ev));
	struct store_op *ops = calloc(sv->n ? sv->n : 1, sizeof(*ops));
	static const char note[] = "rebuilt from a snapshot: what later commits overwrote is lost";
	int64_t next_time = 0;
	int err = 0;

	if (!ev || !ops) {
		free(ev);
		free(ops);
		return -ENOMEM;
	}
	qsort(sv->ops, sv->n, sizeof(*sv->ops), by_commit);
	/* An event at the end without versions takes the time of the newest version. */
	for (size_t i = 0; i < sv->n; i++)
		if (sv->ops[i].time_ns > next_time)
			next_time = sv->ops[i].time_ns;
	if (!next_time)
		next_time = clock_now_ns(CLOCK_REALTIME);
	for (size_t i = 0; i < sv->n; i++)
		ops[i] = sv->ops[i].op;
	/* Newest first, so an event without versions takes the time of the next one. */
	for (size_t e = nev, j = sv->n; e-- > 0;) {
		int64_t ts = sv->head + 1 + (int64_t)e;
		size_t end = j;

		while (j > 0 && sv->ops[j - 1].commit_ts == ts)
			j--;
		for (size_t i = j; i < end; i++)
			if (sv->ops[i].time_ns)
				next_time = sv->ops[i].time_ns;
		ev[e] = (struct store_event){ .commit_ts = ts, .time_ns = next_time,
					      .txn = SALVAGE_TXN, .note = note,
					      .note_len = sizeof(note) - 1, .ops = ops + j,
					      .n_ops = end - j };
	}
	while (!err && k < nev) {
		size_t m = nev - k < SALVAGE_BATCH ? nev - k : SALVAGE_BATCH;

		err = store_append(st, ev + k, m);
		k += m;
	}
	free(ev);
	free(ops);
	return err;
}

static void salvage_release(struct salvage *sv)
{
	for (size_t i = 0; i < sv->n; i++) {
		free(sv->ops[i].path);
		blob_unref(sv->ops[i].value);
	}
	free(sv->ops);
	if (sv->snap) {
		txn_node_free_tree(&sv->snap->root);
		free(sv->snap);
	}
}

/* The marks of a log that now holds every commit it will ever hold up to head. */
static int salvage_mark(const char *datadir, const char *uri, int64_t head)
{
	struct store_marks m = { .clean_stop_head = head, .stopped = true, .log_head = head };
	int err = store_log_file_state(uri, datadir, &m.log);

	if (!err)
		err = store_log_sync(uri, datadir);
	if (!err)
		err = store_marks_write(datadir, &m);
	return err;
}

int txn_recover_from_snapshot(const char *datadir, const char *store_uri)
{
	struct txn_options opt = { .txn_timeout_ms = 1000, .max_open_txns = 1,
				   .max_value_bytes = SIZE_MAX, .fsync = 1, .inspect_only = true,
				   .full_replay = true, .salvage = true, .store_uri = store_uri };
	struct salvage sv = { 0 };
	struct store_recovery rec = { .time_ns = clock_now_ns(CLOCK_REALTIME) };
	int64_t need, loaded = 0, new_head;
	uint64_t nkeys;
	size_t nops = 0;
	int err;

	err = txn_engine_open(datadir, &opt, &sv.log);
	if (err) {
		log_err("cannot recover '%s': the log cannot be read (%s); if it is damaged, move "
			"statehouse.db and statehouse.db-wal out of the data dir and run this again",
			datadir, strerror(-err));
		return err;
	}
	sv.head = sv.log->published_ts;
	sv.snap_ts = sv.log->found_snap_ts;
	need = txn_recover_must_hold(sv.log);
	if (sv.head >= need) {
		log_info("nothing to recover: the log ends at commit %" PRId64 " and holds every "
			 "acknowledged commit", sv.head);
		txn_engine_close(sv.log);
		return 0;
	}
	if (sv.snap_ts > sv.head) {
		sv.snap = calloc(1, sizeof(*sv.snap));
		err = sv.snap ? store_snapshot_load(datadir, sv.snap_ts, txn_recover_snap_load_one,
						    sv.snap, &loaded, &nkeys)
			      : -ENOMEM;
		if (!err && loaded != sv.snap_ts)
			err = -EIO;
		if (!err)
			err = walk(&sv, &sv.snap->root, salvage_node);
		if (!err)
			err = walk(&sv, &sv.log->root, salvage_gone);
		if (!err && sv.disagree)
			err = -EIO;
		if (!err)
			err = salvage_append(&sv, sv.log->store);
	}
	new_head = sv.snap_ts > sv.head ? sv.snap_ts : sv.head;
	rec.log_head = sv.head;
	rec.snapshot_ts = sv.snap_ts > sv.head ? sv.snap_ts : 0;
	rec.acknowledged = need;
	rec.new_head = new_head;
	if (!err)
		err = store_record_recovery(sv.log->store, &rec);
	/* The log is complete now: let the close fold the write-ahead log in. */
	if (!err)
		err = store_record_stop(sv.log->store);
	nops = sv.n;
	salvage_release(&sv);
	txn_engine_close(sv.log);
	if (!err)
		err = salvage_mark(datadir, store_uri, new_head);
	if (err) {
		log_err("cannot recover '%s': %s", datadir, strerror(-err));
		return err;
	}
	if (rec.snapshot_ts)
		log_info("recovered: the log ended at commit %" PRId64 "; commits %" PRId64
			 "..%" PRId64 " were rebuilt from the snapshot at commit %" PRId64
			 " (%zu changes)", sv.head, sv.head + 1, sv.snap_ts, sv.snap_ts, nops);
	else
		log_info("recovered: the log ends at commit %" PRId64 " and no snapshot is newer",
			 sv.head);
	if (need > new_head)
		log_warn("commits %" PRId64 "..%" PRId64 " (and any after them) are lost; new "
			 "commits start at %" PRId64, new_head + 1, need, new_head + 1);
	else
		log_warn("commits after %" PRId64 ", if there were any, are lost; new commits "
			 "start at %" PRId64, new_head, new_head + 1);
	return 0;
}
