/* SPDX-License-Identifier: MIT */
/*
 * past.c - the past, read from the store's log (txn layer): the tree as of a commit
 * (.at), every version of a key (.history) and the committed events (.events, .follow)
 * as data; fs/render.c turns them into JSON.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "log.h"
#include "txn_i.h"

/* ---- .at and .history -------------------------------------------------------------------- */

/* A commit of the past that .at serves: from the horizon (retention) to the head. */
static int at_check_ts(struct txn_engine *eng, int64_t ts)
{
	return ts < 1 || ts < txn_engine_horizon(eng) || ts > txn_engine_head(eng) ? -ENOENT : 0;
}

static void entry_from_version(struct txn_entry *e, const struct store_version *v)
{
	e->type = TXN_FILE;
	e->size = v->size;
	e->version = v->version;
	e->commit_ts = v->commit_ts;
	e->time_ns = v->time_ns;
}

struct at_probe {
	const char *dir;
	size_t dlen;
	bool found;
};

static int at_probe_one(void *arg, const struct store_version *v)
{
	struct at_probe *p = arg;

	p->found = true;
	return 1; /* one live key below is enough */
}

int txn_at_stat(struct txn_engine *eng, int64_t ts, const char *path, size_t len,
		struct txn_entry *out)
{
	struct store_version v;
	struct at_probe probe = { path, len, false };
	int err = at_check_ts(eng, ts);

	memset(out, 0, sizeof(*out));
	if (!err)
		err = txn_path_check(path, len);
	if (err)
		return err;
	if (len == 0 || txn_implicit_dir(path, len)) {
		out->type = TXN_DIR;
		return 0;
	}
	err = store_get_at(eng->store, path, len, ts, 0, &v);
	if (err == 0) {
		if (v.kind == STORE_PUT)
			entry_from_version(out, &v);
		else if (v.kind == STORE_MKDIR)
			out->type = TXN_DIR; /* an explicit directory then */
		store_version_release(&v);
		if (out->type != TXN_NONE)
			return 0;
	} else if (err != -ENOENT) {
		return err;
	}
	err = store_list_at(eng->store, path, len, ts, at_probe_one, &probe);
	if (err < 0)
		return err;
	if (!probe.found)
		return -ENOENT;
	out->type = TXN_DIR;
	return 0;
}

int txn_at_read(struct txn_engine *eng, int64_t ts, const char *path, size_t len,
		struct blob **out, struct txn_entry *meta)
{
	struct store_version v;
	int err = at_check_ts(eng, ts);

	*out = NULL;
	memset(meta, 0, sizeof(*meta));
	if (!err)
		err = txn_path_check(path, len);
	if (!err && txn_path_depth(path, len) < 3)
		err = -EISDIR;
	if (err)
		return err;
	err = store_get_at(eng->store, path, len, ts, 1, &v);
	if (err)
		return err;
	if (v.kind != STORE_PUT) {
		store_version_release(&v);
		return -ENOENT;
	}
	entry_from_version(meta, &v);
	*out = blob_new(v.value ? v.value : "", v.size);
	store_version_release(&v);
	return *out ? 0 : -ENOMEM;
}

struct at_lister {
	struct dirents ds;
	size_t plen;   /* length of the listed directory's path */
	char *last;    /* last child name added (rows come in path order) */
};

static int at_list_one(void *arg, const struct store_version *v)
{
	struct at_lister *l = arg;
	const char *rest = v->path + l->plen + (l->plen ? 1 : 0);
	size_t rlen = v->path_len - (size_t)(rest - v->path);
	const char *slash = memchr(rest, '/', rlen);
	size_t nlen = slash ? (size_t)(slash - rest) : rlen;
	int err;

	if (l->last && strlen(l->last) == nlen && memcmp(l->last, rest, nlen) == 0)
		return 0;
	err = dirents_add(&l->ds, rest, nlen,
			  slash || v->kind == STORE_MKDIR ? TXN_DIR : TXN_FILE);
	if (!err)
		l->last = l->ds.v[l->ds.n - 1].name;
	return err;
}

int txn_at_list(struct txn_engine *eng, int64_t ts, const char *path, size_t len,
		struct dirent_entry **out, size_t *n)
{
	struct at_lister l = { .plen = len };
	struct txn_entry e;
	int err = txn_at_stat(eng, ts, path, len, &e);

	*out = NULL;
	*n = 0;
	if (!err && e.type != TXN_DIR)
		err = -ENOTDIR;
	if (!err)
		err = store_list_at(eng->store, path, len, ts, at_list_one, &l);
	return dirents_take(&l.ds, err, out, n);
}

static int names_one(void *arg, const struct store_version *v)
{
	return dirents_add(arg, v->path, v->path_len, TXN_DIR);
}

int txn_history_names(struct txn_engine *eng, const char *prefix, size_t len,
		      struct dirent_entry **out, size_t *n)
{
	struct dirents ds = DIRENTS_INIT;
	int err = txn_path_depth(prefix, len) > 2 ? -ENOENT : txn_path_check(prefix, len);

	*out = NULL;
	*n = 0;
	if (!err)
		err = store_names(eng->store, prefix, len, names_one, &ds);
	return dirents_take(&ds, err, out, n);
}

struct hist_walk {
	txn_history_fn fn;
	void *arg;
	size_t n;
};

static int hist_one(void *arg, const struct store_version *sv)
{
	struct hist_walk *w = arg;
	struct txn_history_row row = {
		.v = {
			.version = sv->version,
			.commit_ts = sv->commit_ts,
			.time_ns = sv->time_ns,
			.deleted = sv->kind != STORE_PUT,
			.size = sv->size,
		},
		.txn = sv->txn ? sv->txn : "",
	};

	w->n++;
	return w->fn(w->arg, &row);
}

static int history_key_path(const char *path, size_t len)
{
	int err = txn_path_check(path, len);

	if (!err && txn_path_depth(path, len) < 3)
		err = -ENOENT;
	return err;
}

int txn_history_each(struct txn_engine *eng, const char *path, size_t len,
		     txn_history_fn fn, void *arg)
{
	struct hist_walk w = { fn, arg, 0 };
	int err = history_key_path(path, len);

	if (!err)
		err = store_history(eng->store, path, len, hist_one, &w);
	if (!err && w.n == 0)
		err = -ENOENT;
	return err;
}

struct hist_array {
	struct txn_version *v;
	size_t n, cap;
};

static int hist_add(void *arg, const struct txn_history_row *row)
{
	struct hist_array *h = arg;

	if (ARRAY_GROW(h->v, h->n + 1, h->cap))
		return -ENOMEM;
	h->v[h->n++] = row->v;
	return 0;
}

int txn_history(struct txn_engine *eng, const char *path, size_t len, struct txn_version **out,
		size_t *n)
{
	struct hist_array h = { 0 };
	int err = txn_history_each(eng, path, len, hist_add, &h);

	*out = NULL;
	*n = 0;
	if (err) {
		free(h.v);
		return err;
	}
	*out = h.v;
	*n = h.n;
	return 0;
}

int txn_history_value(struct txn_engine *eng, const char *path, size_t len, int64_t version,
		      struct blob **out, struct txn_version *meta)
{
	struct store_version v;
	int err = history_key_path(path, len);

	*out = NULL;
	if (!err)
		err = store_get_version(eng->store, path, len, version, &v);
	if (err)
		return err;
	*meta = (struct txn_version){ .version = v.version, .commit_ts = v.commit_ts,
				      .time_ns = v.time_ns, .deleted = v.kind != STORE_PUT,
				      .size = v.size };
	*out = blob_new(v.value && v.kind == STORE_PUT ? v.value : "",
			v.kind == STORE_PUT ? v.size : 0);
	store_version_release(&v);
	return *out ? 0 : -ENOMEM;
}

/* ---- the event log ------------------------------------------------------------------- */

/* Hands the store's events on as txn_events, in an ops array reused from one to the next. */
struct ev_walk {
	txn_event_fn fn;
	void *arg;
	struct txn_op *ops;
	size_t cap;
	const char *prefix;  /* "ns/agent/p...": only the ops at or below it */
	size_t prefix_len;   /* 0: every op the store delivers */
};

static enum txn_op_kind op_kind(enum store_op_kind k)
{
	switch (k) {
	case STORE_PUT:
		return TXN_OP_PUT;
	case STORE_DELETE:
		return TXN_OP_DELETE;
	case STORE_ATTR:
		return TXN_OP_ATTR;
	case STORE_MKDIR:
		return TXN_OP_MKDIR;
	case STORE_RMDIR:
		return TXN_OP_RMDIR;
	case STORE_PRUNED:
		break; /* a replay's record, never an event's operation */
	}
	BUG("operation of unknown kind %d in the log", (int)k);
}

/* Is op at the prefix path of w, or below it (every op when there is no prefix)? */
static bool op_under_prefix(const struct ev_walk *w, const struct store_op *op)
{
	if (!w->prefix_len)
		return true;
	return (op->path_len == w->prefix_len && !memcmp(op->path, w->prefix, w->prefix_len)) ||
	       txn_path_is_under(op->path, op->path_len, w->prefix, w->prefix_len);
}

static int event_one(void *arg, const struct store_event *ev)
{
	struct ev_walk *w = arg;
	size_t n = 0;

	if (ARRAY_GROW(w->ops, ev->n_ops, w->cap))
		return -ENOMEM;
	for (size_t i = 0; i < ev->n_ops; i++) {
		const struct store_op *op = &ev->ops[i];

		if (!op_under_prefix(w, op))
			continue;
		w->ops[n++] = (struct txn_op){
			.path = op->path,
			.path_len = op->path_len,
			.kind = op_kind(op->kind),
			.version = op->version,
			.value = op->value,
			.value_len = op->value_len,
		};
	}
	if (w->prefix_len && n == 0)
		return 0; /* nothing of it is below the prefix: no event of this stream */
	return w->fn(w->arg, &(struct txn_event){
		.commit_ts = ev->commit_ts,
		.time_ns = ev->time_ns,
		.txn = ev->txn,
		.note = ev->note,
		.note_len = ev->note_len,
		.ops = w->ops,
		.n_ops = n,
	});
}

int txn_events(struct txn_engine *eng, const char *filter, size_t filter_len,
	       int64_t from_ts, int64_t to_ts, txn_event_fn fn, void *arg)
{
	struct ev_walk w = { .fn = fn, .arg = arg };
	size_t agent_len = filter_len;
	int err;

	if (filter && filter_len) {
		err = txn_path_check(filter, filter_len);
		if (!err && txn_path_depth(filter, filter_len) < 2)
			err = -EINVAL;
		if (err)
			return err;
		if (txn_path_depth(filter, filter_len) > 2) {
			/* The store selects the agent; the prefix is chosen here, op by op. */
			const char *slash = memchr(filter, '/', filter_len);

			slash = memchr(slash + 1, '/', filter_len - (size_t)(slash + 1 - filter));
			agent_len = (size_t)(slash - filter);
			w.prefix = filter;
			w.prefix_len = filter_len;
		}
	}
	err = store_events(eng->store, from_ts, to_ts, filter_len ? filter : NULL, agent_len,
			   event_one, &w);
	free(w.ops);
	return err;
}
