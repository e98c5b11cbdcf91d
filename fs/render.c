/* SPDX-License-Identifier: MIT */
/*
 * render.c - JSON for the mount's status, commit, history and event files (fs layer).
 * Presentation only: the data comes from txn_status(), txn_history_each() and
 * txn_events(); jansson builds the documents, compact and in insertion order.
 */
#include "render.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"

static const char *state_name(enum txn_state s)
{
	static const char *const names[] = { "open", "committing", "committed",
					     "aborted", "expired", "conflict" };
	return names[s];
}

static const char *errno_name(int err)
{
	switch (-err) {
	case ESTALE: return "ESTALE";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case ENOSPC: return "ENOSPC";
	case EIO: return "EIO";
	case ENOENT: return "ENOENT";
	case ENOMEM: return "ENOMEM";
	case EAGAIN: return "EAGAIN";
	case EFBIG: return "EFBIG";
	case EINVAL: return "EINVAL";
	default: return "EIO";
	}
}

static const char *conflict_name(enum txn_conflict c)
{
	switch (c) {
	case TXN_CONFLICT_READ: return "read";
	case TXN_CONFLICT_PRECONDITION: return "precondition";
	case TXN_CONFLICT_SNAPSHOT: return "snapshot";
	default: return "write";
	}
}

/* o[k] = v, text of the daemon's own (a state, an errno name, a time): always UTF-8. */
static int json_set_str(json_t *o, const char *k, const char *v)
{
	return json_object_set_new(o, k, json_string(v)) ? -ENOMEM : 0;
}

/*
 * A name (ns, agent, key, transaction) is bytes: o[k] as a string when they are UTF-8,
 * else o[k_base64] with their base64, so every name reads back exactly.  jansson cannot
 * write a string that is not UTF-8 (json_dumps fails), so the bytes never go in as one.
 */
static int set_name(json_t *o, const char *k, const char *v, size_t len)
{
	json_t *s = json_stringn(v, len); /* NULL unless valid UTF-8 */
	char key[32];
	char *b64;

	if (s)
		return json_object_set_new(o, k, s) ? -ENOMEM : 0;
	snprintf(key, sizeof(key), "%s_base64", k);
	b64 = base64_encode(v, len);
	if (!b64)
		return -ENOMEM;
	s = json_string(b64);
	free(b64);
	return !s || json_object_set_new(o, key, s) ? -ENOMEM : 0;
}

static int set_name_str(json_t *o, const char *k, const char *v)
{
	return set_name(o, k, v, strlen(v));
}

/* The document as one newline-terminated line; consumes o. */
static char *json_dump_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *line = NULL;

	json_decref(o);
	if (s && asprintf(&line, "%s\n", s) < 0)
		line = NULL;
	free(s);
	return line;
}

static void rfc3339(int64_t ns, char *buf, size_t cap)
{
	time_t secs = (time_t)(ns / 1000000000);
	struct tm tm;
	size_t n;

	gmtime_r(&secs, &tm);
	n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, cap - n, ".%06ldZ", (long)((ns / 1000) % 1000000));
}

/* ---- a transaction's .status and .commit ----------------------------------------------- */

char *render_status_json(struct txn_engine *eng, struct txn *tx)
{
	struct txn_status st;
	json_t *o;

	(void)eng;
	if (txn_status(tx, &st))
		return NULL;
	o = json_object();
	if (!o) {
		txn_status_release(&st);
		return NULL;
	}
	/* Past its deadline, before the reaper ran: report what a write would find. */
	json_set_str(o, "state", st.deadline_passed ? "expired" : state_name(st.state));
	set_name_str(o, "txn", st.name);
	json_object_set_new(o, "ops", json_integer((json_int_t)st.ops));
	json_object_set_new(o, "begin_ts", json_integer(st.begin_ts));
	if (st.state == TXN_OPEN || st.state == TXN_COMMITTING)
		json_object_set_new(o, "expires_in_ms", json_integer(st.expires_in_ms));
	json_object_set_new(o, "timeout_ms", json_integer(st.timeout_ms));
	json_set_str(o, "isolation", txn_isolation_name(st.isolation));
	if (st.state == TXN_COMMITTED)
		json_object_set_new(o, "commit_ts", json_integer(st.commit_ts));
	if (st.err) {
		json_set_str(o, "error", errno_name(st.err));
		json_set_str(o, "message", strerror(-st.err));
		if (st.err_key)
			set_name_str(o, "key", st.err_key);
		if (st.conflict)
			json_set_str(o, "conflict", conflict_name(st.conflict));
	}
	txn_status_release(&st);
	return json_dump_line(o);
}

char *render_commit_json(struct txn *tx)
{
	struct txn_status st;
	char when[64];
	json_t *o;

	if (txn_status(tx, &st))
		return NULL;
	txn_status_release(&st);
	if (st.state != TXN_COMMITTED)
		return NULL;
	o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "commit_ts", json_integer(st.commit_ts));
	set_name_str(o, "txn", st.name);
	json_object_set_new(o, "ops", json_integer((json_int_t)st.ops));
	rfc3339(st.commit_time_ns, when, sizeof(when));
	json_set_str(o, "time", when);
	return json_dump_line(o);
}

/* ---- .history/<key>/index.jsonl ---------------------------------------------------------- */

static int history_line(void *arg, const struct txn_history_row *row)
{
	struct strbuf *out = arg;
	char when[64];
	json_t *o = json_object();
	char *s;
	int err;

	if (!o)
		return -ENOMEM;
	rfc3339(row->v.time_ns, when, sizeof(when));
	json_object_set_new(o, "version", json_integer(row->v.version));
	json_object_set_new(o, "commit_ts", json_integer(row->v.commit_ts));
	err = set_name_str(o, "txn", row->txn);
	json_set_str(o, "time", when);
	json_set_str(o, "op", row->v.deleted ? "delete" : "put");
	json_object_set_new(o, "size", json_integer((json_int_t)row->v.size));
	s = err ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return -ENOMEM;
	err = strbuf_addstr(out, s);
	if (!err)
		err = strbuf_addch(out, '\n');
	free(s);
	return err;
}

int render_history_index(struct txn_engine *eng, const char *path, size_t len,
			 struct blob **out)
{
	struct strbuf sb = STRBUF_INIT;
	int err = txn_history_each(eng, path, len, history_line, &sb);

	*out = NULL;
	if (!err) {
		*out = blob_new(sb.buf ? sb.buf : "", sb.len);
		if (!*out)
			err = -ENOMEM;
	}
	strbuf_release(&sb);
	return err;
}

/* ---- .events and .follow --------------------------------------------------------------- */

/* Set o[name] to bytes as JSON, else as text, else o[name_base64]. */
static int set_bytes(json_t *o, const char *name, const void *data, size_t len)
{
	json_error_t jerr;
	json_t *v = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	char key[32];
	char *b64;

	if (!v)
		v = json_stringn(data, len); /* NULL unless valid UTF-8 */
	if (v)
		return json_object_set_new(o, name, v) ? -ENOMEM : 0;
	snprintf(key, sizeof(key), "%s_base64", name);
	b64 = base64_encode(data, len);
	if (!b64)
		return -ENOMEM;
	v = json_string(b64);
	free(b64);
	return !v || json_object_set_new(o, key, v) ? -ENOMEM : 0;
}

/* A change of owner or mode of "ns" or "ns/agent", or of the mode of a key. */
static int render_attr_op(json_t *jo, const struct txn_op *op)
{
	const char *s1 = memchr(op->path, '/', op->path_len), *end = op->path + op->path_len;
	const char *s2 = s1 ? memchr(s1 + 1, '/', (size_t)(end - s1 - 1)) : NULL;
	size_t nl = s1 ? (size_t)(s1 - op->path) : op->path_len;
	int err = set_name(jo, "ns", op->path, nl);

	if (!err && s1)
		err = set_name(jo, "agent", s1 + 1, (size_t)((s2 ? s2 : end) - s1 - 1));
	if (!err && s2) /* a key's mode */
		err = set_name(jo, "key", s2 + 1, (size_t)(end - s2 - 1));
	if (err)
		return err;
	json_set_str(jo, "op", "attr");
	if (op->value_len)
		return set_bytes(jo, "value", op->value, op->value_len);
	json_object_set_new(jo, "value", json_null());
	return 0;
}

static const char *key_op_name(enum txn_op_kind k)
{
	switch (k) {
	case TXN_OP_PUT:
		return "put";
	case TXN_OP_MKDIR:
		return "mkdir";
	case TXN_OP_RMDIR:
		return "rmdir";
	default:
		return "delete";
	}
}

/* A put or delete of "ns/agent/key", or a mkdir or rmdir of the directory
 * "ns/agent/dir" (without version: a directory has none); -EIO for a path with fewer
 * components. */
static int render_key_op(json_t *jo, const struct txn_op *op)
{
	const char *s1 = memchr(op->path, '/', op->path_len);
	const char *s2 = s1 ? memchr(s1 + 1, '/', op->path_len - (size_t)(s1 + 1 - op->path))
			    : NULL;
	int err;

	if (!s2)
		return -EIO;
	err = set_name(jo, "ns", op->path, (size_t)(s1 - op->path));
	if (!err)
		err = set_name(jo, "agent", s1 + 1, (size_t)(s2 - s1 - 1));
	if (!err)
		err = set_name(jo, "key", s2 + 1, op->path_len - (size_t)(s2 + 1 - op->path));
	if (err)
		return err;
	json_set_str(jo, "op", key_op_name(op->kind));
	if (op->kind == TXN_OP_MKDIR || op->kind == TXN_OP_RMDIR)
		return 0;
	json_object_set_new(jo, "version", json_integer(op->version));
	if (op->kind == TXN_OP_PUT)
		return set_bytes(jo, "value", op->value ? op->value : "", op->value_len);
	return 0;
}

static int render_ops(json_t *ops, const struct txn_event *ev, const struct render_filter *rf)
{
	for (size_t i = 0; i < ev->n_ops; i++) {
		const struct txn_op *op = &ev->ops[i];
		json_t *jo;
		int err;

		if (rf && !rf->visible(rf->arg, op, ev->commit_ts))
			continue;
		if (!(jo = json_object()))
			return -ENOMEM;
		err = op->kind == TXN_OP_ATTR ? render_attr_op(jo, op) : render_key_op(jo, op);
		if (err == -EIO) {
			json_decref(jo);
			return err;
		}
		json_array_append_new(ops, jo);
		if (err)
			return err;
	}
	return 0;
}

struct render {
	struct strbuf *out;
	const struct render_filter *rf; /* NULL: every op */
	int64_t last_ts;
	size_t stop_at; /* stop once out is this long (0: never) */
	bool full;      /* it did */
};

static int render_event(void *arg, const struct txn_event *ev)
{
	struct render *r = arg;
	json_t *o = json_object(), *ops = json_array();
	char when[64];
	char *line;
	int err = 0;

	if (!o || !ops) {
		json_decref(o);
		json_decref(ops);
		return -ENOMEM;
	}
	rfc3339(ev->time_ns, when, sizeof(when));
	json_object_set_new(o, "commit_ts", json_integer(ev->commit_ts));
	err = set_name_str(o, "txn", ev->txn);
	json_set_str(o, "time", when);
	if (!err && ev->note_len)
		err = set_bytes(o, "note", ev->note, ev->note_len);
	if (!err)
		err = render_ops(ops, ev, r->rf);
	if (!err && ev->n_ops && !json_array_size(ops)) {
		/* Nothing of it is this reader's: no line, but the stream moves on. */
		json_decref(ops);
		json_decref(o);
		r->last_ts = ev->commit_ts;
		return 0;
	}
	json_object_set_new(o, "ops", ops);
	if (err) {
		json_decref(o);
		return err;
	}
	line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	json_decref(o);
	if (!line)
		return -ENOMEM;
	err = strbuf_addstr(r->out, line);
	if (!err)
		err = strbuf_addch(r->out, '\n');
	free(line);
	if (!err)
		r->last_ts = ev->commit_ts;
	if (!err && r->stop_at && r->out->len >= r->stop_at) {
		r->full = true;
		return 1; /* stops the walk; not an error */
	}
	return err;
}

int render_events_page(struct txn_engine *eng, const char *filter, size_t filter_len,
		       int64_t from_ts, int64_t to_ts, size_t max_bytes,
		       const struct render_filter *rf, struct strbuf *out, int64_t *last_ts,
		       bool *full)
{
	struct render r = { .out = out, .last_ts = *last_ts, .stop_at = out->len + max_bytes,
			    .rf = rf };
	size_t mark = out->len;
	int err = txn_events(eng, filter, filter_len, from_ts, to_ts, render_event, &r);

	*full = false;
	if (err < 0) {
		strbuf_setlen(out, mark); /* whole lines only */
		return err;
	}
	*last_ts = r.last_ts;
	*full = r.full;
	return 0;
}

int render_events(struct txn_engine *eng, const char *filter, size_t filter_len,
		  int64_t from_ts, int64_t to_ts, struct strbuf *out, int64_t *last_ts)
{
	struct render r = { .out = out, .last_ts = *last_ts };
	size_t mark = out->len;
	int err = txn_events(eng, filter, filter_len, from_ts, to_ts, render_event, &r);

	if (err) {
		strbuf_setlen(out, mark); /* whole lines only */
		return err;
	}
	*last_ts = r.last_ts;
	return 0;
}
