/* SPDX-License-Identifier: MIT */
/*
 * store.c - the store_* functions: choose a backend by URI at open, then pass every call
 * to its table of operations (store layer).  The fault hook for tests lives here too, so
 * an injected failure looks the same whatever the backend.
 */
#include "store_i.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define STORE_BACKEND_ENTRY(name) &store_##name##_ops,
static const struct store_ops *const backends[] = { STORE_BACKENDS(STORE_BACKEND_ENTRY) };
#undef STORE_BACKEND_ENTRY

#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

/* "sqlite: (the default)" and the others, for the message that refuses a URI. */
static void list_backends(char *buf, size_t cap)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < N_BACKENDS && used < cap; i++) {
		int n = snprintf(buf + used, cap - used, "%s%s:%s", i ? ", " : "",
				 backends[i]->scheme, i ? "" : " (the default)");

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/*
 * Find the backend of uri and where its location starts.  The scheme is what precedes
 * the first ':' (all of uri when it has none); "//" after the ':' is part of the
 * syntax, not of the location.
 */
static int pick_backend(const char *uri, const struct store_ops **ops,
			const char **location)
{
	const char *colon;
	size_t scheme_len;
	char supported[256];

	if (!uri || !*uri) {
		*ops = backends[0];
		*location = "";
		return 0;
	}
	colon = strchr(uri, ':');
	scheme_len = colon ? (size_t)(colon - uri) : strlen(uri);
	for (size_t i = 0; i < N_BACKENDS; i++) {
		const struct store_ops *b = backends[i];
		const char *loc;

		if (strlen(b->scheme) != scheme_len || strncasecmp(uri, b->scheme, scheme_len))
			continue;
		loc = colon ? colon + 1 : "";
		if (!strncmp(loc, "//", 2))
			loc += 2;
		if (*loc && !b->takes_location) {
			log_err("bad store '%s': %s: takes no location (its files are in the data "
				"dir)", uri, b->scheme);
			return -EINVAL;
		}
		*ops = b;
		*location = loc;
		return 0;
	}
	list_backends(supported, sizeof(supported));
	log_err("unsupported store '%s': this build serves only %s", uri, supported);
	return -EPROTONOSUPPORT;
}

int store_uri_check(const char *uri)
{
	const struct store_ops *ops;
	const char *location;
	int err = pick_backend(uri, &ops, &location);

	if (!err && ops->check_location)
		err = ops->check_location(location);
	return err;
}

int store_open(const char *uri, const char *datadir, const struct store_options *opt,
	       struct store **out)
{
	const struct store_ops *ops;
	const char *location;
	int err;

	*out = NULL;
	err = pick_backend(uri, &ops, &location);
	if (err)
		return err;
	err = ops->open(location, datadir, opt, out);
	if (err) {
		*out = NULL;
		return err;
	}
	if ((*out)->ops != ops)
		BUG("store backend '%s' returned a handle of another table", ops->scheme);
#if STATEHOUSE_FAULT_INJECTION
	pthread_mutex_init(&(*out)->fault_lock, NULL);
	(*out)->fault_after = 0;
	(*out)->fault_code = 0;
#endif
	{
		int64_t h = 0;

		err = ops->horizon(*out, &h);
		if (err) {
			store_close(*out);
			*out = NULL;
			return err;
		}
		atomic_store(&(*out)->horizon, h);
	}
	return 0;
}

int store_log_file_state(const char *uri, const char *datadir, struct store_log_file *out)
{
	const struct store_ops *ops;
	const char *location;
	int err;

	memset(out, 0, sizeof(*out));
	err = pick_backend(uri, &ops, &location);
	return err ? err : ops->file_state(datadir, out);
}

int store_log_sync(const char *uri, const char *datadir)
{
	const struct store_ops *ops;
	const char *location;
	int err = pick_backend(uri, &ops, &location);

	return err ? err : ops->sync_files(datadir);
}

void store_close(struct store *st)
{
	if (!st)
		return;
#if STATEHOUSE_FAULT_INJECTION
	pthread_mutex_destroy(&st->fault_lock);
#endif
	st->ops->close(st);
}

/* ---- fault injection ---------------------------------------------------------------- */

#if STATEHOUSE_FAULT_INJECTION
/* The injected error for this call, or 0; an append (counts) brings the fault nearer. */
static int fault_check(struct store *st, int counts)
{
	int code = 0;

	pthread_mutex_lock(&st->fault_lock);
	if (st->fault_code) {
		if (st->fault_after > 0) {
			if (counts)
				st->fault_after--;
		} else {
			code = st->fault_code;
		}
	}
	pthread_mutex_unlock(&st->fault_lock);
	return code;
}

void store_set_fault(struct store *st, long after, int code)
{
	pthread_mutex_lock(&st->fault_lock);
	st->fault_after = after;
	st->fault_code = code;
	pthread_mutex_unlock(&st->fault_lock);
}
#else
static inline int fault_check(struct store *st, int counts)
{
	(void)st;
	(void)counts;
	return 0;
}
#endif

/* ---- paths, for every backend ------------------------------------------------------ */

/* Split "ns/agent/key" at its first two slashes (an owner record may be "ns" or
 * "ns/agent"). */
int store_split_path(const char *path, size_t len, enum store_op_kind kind, size_t *ns_len,
		     size_t *agent_off, size_t *agent_len, size_t *key_off)
{
	const char *s1 = memchr(path, '/', len);
	const char *s2 = s1 ? memchr(s1 + 1, '/', len - (size_t)(s1 + 1 - path)) : NULL;

	if (kind == STORE_ATTR && !s2) {
		/* "ns" or "ns/agent": the missing parts are stored as empty strings. */
		*ns_len = s1 ? (size_t)(s1 - path) : len;
		*agent_off = s1 ? (size_t)(s1 + 1 - path) : len;
		*agent_len = len - *agent_off;
		*key_off = len;
		if (*ns_len == 0 || (s1 && (*agent_len == 0 || memchr(s1 + 1, '/', *agent_len))))
			return -EINVAL;
		return 0;
	}
	if (!s1 || !s2 || s2 + 1 == path + len)
		return -EINVAL;
	*ns_len = (size_t)(s1 - path);
	*agent_off = (size_t)(s1 + 1 - path);
	*agent_len = (size_t)(s2 - s1 - 1);
	*key_off = (size_t)(s2 + 1 - path);
	return 0;
}

/* Split a prefix "ns[/agent[/dir...]]" into its parts; returns how many (0..3). */
int store_split_prefix(const char *p, size_t len, const char **part, size_t *plen)
{
	const char *s1, *s2;

	if (len == 0)
		return 0;
	part[0] = p;
	s1 = memchr(p, '/', len);
	if (!s1) {
		plen[0] = len;
		return 1;
	}
	plen[0] = (size_t)(s1 - p);
	part[1] = s1 + 1;
	s2 = memchr(s1 + 1, '/', len - plen[0] - 1);
	if (!s2) {
		plen[1] = len - plen[0] - 1;
		return 2;
	}
	plen[1] = (size_t)(s2 - part[1]);
	part[2] = s2 + 1;
	plen[2] = len - (size_t)(part[2] - p);
	return 3;
}

/* ---- dispatch ----------------------------------------------------------------------- */

int store_append(struct store *st, const struct store_event *events, size_t n)
{
	int err = fault_check(st, 1);

	if (err) {
		log_err("cannot append to store: injected fault (%s)", strerror(-err));
		return err;
	}
	return st->ops->append(st, events, n);
}

int store_applied_claim(struct store *st, uint64_t instance)
{
	return st->ops->applied_claim(st, instance);
}

int store_applied_find(struct store *st, const struct store_reqid *id, struct store_applied *out)
{
	memset(out, 0, sizeof(*out));
	if (fault_check(st, 0))
		return -EIO;
	return st->ops->applied_find(st, id, out);
}

void store_applied_release(struct store_applied *a)
{
	if (!a)
		return;
	free(a->txn);
	memset(a, 0, sizeof(*a));
}

int store_replay(struct store *st, int64_t after_ts, store_replay_fn fn, void *arg,
		 struct store_replay_stats *stats)
{
	return st->ops->replay(st, after_ts, fn, arg, stats);
}

int store_create(const char *uri, const struct store_options *opt)
{
	const struct store_ops *ops;
	const char *location;
	int err = pick_backend(uri, &ops, &location);

	if (err)
		return err;
	if (!ops->create) {
		log_err("store '%s': %s: the first mount creates its log; there is nothing to "
			"create beforehand", uri ? uri : "", ops->scheme);
		return -EOPNOTSUPP;
	}
	return ops->create(location, opt);
}

void store_set_wake(struct store *st, store_wake_fn fn, void *arg)
{
	if (st->ops->set_wake)
		st->ops->set_wake(st, fn, arg);
}

int store_pull(struct store *st, int64_t head_ts, store_event_fn fn, void *arg)
{
	if (!st->ops->pull)
		return 0;
	if (fault_check(st, 0))
		return -EIO;
	return st->ops->pull(st, head_ts, fn, arg);
}

bool store_stale(struct store *st)
{
	return st->ops->stale && st->ops->stale(st);
}

void store_shared_state(struct store *st, struct store_shared *out)
{
	memset(out, 0, sizeof(*out));
	if (st->ops->shared_state)
		st->ops->shared_state(st, out);
}

int store_check(struct store *st, int64_t *head_ts)
{
	if (fault_check(st, 0))
		return -EIO;
	return st->ops->check(st, head_ts);
}

/*
 * The past below the horizon is gone.  A reader checks before and again after it read:
 * a pruner raises the horizon before its step commits, so a read that met a prune
 * finds the horizon above ts afterwards and its answer is dropped.
 */
static bool below_horizon(struct store *st, int64_t ts)
{
	return ts < atomic_load(&st->horizon);
}

int store_get_at(struct store *st, const char *path, size_t len, int64_t ts, int with_value,
		 struct store_version *out)
{
	int err;

	memset(out, 0, sizeof(*out));
	if (fault_check(st, 0))
		return -EIO;
	if (below_horizon(st, ts))
		return -ENOENT;
	err = st->ops->get_at(st, path, len, ts, with_value, out);
	if (below_horizon(st, ts)) {
		store_version_release(out);
		return -ENOENT;
	}
	return err;
}

int store_get_version(struct store *st, const char *path, size_t len, int64_t version,
		      struct store_version *out)
{
	if (fault_check(st, 0)) {
		memset(out, 0, sizeof(*out));
		return -EIO;
	}
	return st->ops->get_version(st, path, len, version, out);
}

int store_list_at(struct store *st, const char *prefix, size_t plen, int64_t ts,
		  store_version_fn fn, void *arg)
{
	int err;

	if (fault_check(st, 0))
		return -EIO;
	if (below_horizon(st, ts))
		return -ENOENT;
	err = st->ops->list_at(st, prefix, plen, ts, fn, arg);
	return below_horizon(st, ts) ? -ENOENT : err;
}

int store_history(struct store *st, const char *path, size_t len, store_version_fn fn,
		  void *arg)
{
	if (fault_check(st, 0))
		return -EIO;
	return st->ops->history(st, path, len, fn, arg);
}

int store_owner_records(struct store *st, const char *ns, size_t nslen, const char *agent,
			size_t alen, store_version_fn fn, void *arg)
{
	if (fault_check(st, 0))
		return -EIO;
	return st->ops->owner_records(st, ns, nslen, agent, alen, fn, arg);
}

int store_names(struct store *st, const char *prefix, size_t plen, store_version_fn fn,
		void *arg)
{
	if (fault_check(st, 0))
		return -EIO;
	return st->ops->names(st, prefix, plen, fn, arg);
}

int store_events(struct store *st, int64_t from_ts, int64_t to_ts, const char *filter,
		 size_t filter_len, store_event_fn fn, void *arg)
{
	int64_t h = atomic_load(&st->horizon);

	if (fault_check(st, 0))
		return -EIO;
	/* Streams start at the horizon: every event from there on is whole (one read
	 * transaction of the backend delivers them, so a prune meanwhile cannot cut one). */
	if (from_ts < h)
		from_ts = h;
	return st->ops->events(st, from_ts, to_ts, filter, filter_len, fn, arg);
}

int store_record_start(struct store *st, const struct store_start *start, int *clean_prev)
{
	return st->ops->record_start(st, start, clean_prev);
}

int store_record_stop(struct store *st)
{
	return st->ops->record_stop(st);
}

int store_record_recovery(struct store *st, const struct store_recovery *r)
{
	return st->ops->record_recovery(st, r);
}

int store_starts(struct store *st, uint64_t *count, uint64_t *unclean)
{
	return st->ops->starts(st, count, unclean);
}

void store_version_release(struct store_version *v)
{
	if (!v)
		return;
	free(v->path);
	free(v->txn);
	free(v->value);
	memset(v, 0, sizeof(*v));
}

void store_file_sizes(struct store *st, uint64_t *db, uint64_t *wal)
{
	st->ops->file_sizes(st, db, wal);
}

/* ---- retention ----------------------------------------------------------------------- */

int64_t store_horizon(struct store *st)
{
	return atomic_load(&st->horizon);
}

void store_raise_horizon(struct store *st, int64_t h)
{
	int64_t cur = atomic_load(&st->horizon);

	while (cur < h && !atomic_compare_exchange_weak(&st->horizon, &cur, h))
		;
}

int store_pruner_open(struct store *st, const char *datadir, struct store_pruner **out)
{
	int err = st->ops->pruner_open(st, datadir, out);

	if (err) {
		*out = NULL;
		return err;
	}
	if ((*out)->ops != st->ops || (*out)->st != st)
		BUG("store backend '%s' returned a pruner of another table", st->ops->scheme);
#if STATEHOUSE_FAULT_INJECTION
	(*out)->pause_ms = 0;
#endif
	return 0;
}

void store_pruner_close(struct store_pruner *p)
{
	if (p)
		p->ops->pruner_close(p);
}

int store_prune_step(struct store_pruner *p, const struct store_retention *r, int64_t now_ns,
		     unsigned max_ops, struct store_prune_result *out)
{
	int code = fault_check(p->st, 0);

	memset(out, 0, sizeof(*out));
	out->horizon = store_horizon(p->st);
	if (code)
		return code; /* as a full disk or a failing one would fail the step */
	if (max_ops == 0 || max_ops > STORE_PRUNE_OPS_MAX)
		max_ops = STORE_PRUNE_OPS_MAX;
	return p->ops->prune_step(p, r, now_ns, max_ops, out);
}

int store_vacuum_step(struct store_pruner *p, unsigned max_pages, struct store_vacuum_result *out)
{
	memset(out, 0, sizeof(*out));
	if (fault_check(p->st, 0))
		return -EIO;
	return p->ops->vacuum_step(p, max_pages, out);
}

int store_checkpoint(struct store_pruner *p)
{
	if (fault_check(p->st, 0))
		return -EIO;
	return p->ops->checkpoint(p);
}

int store_vacuum(const char *uri, const char *datadir, uint64_t *before, uint64_t *after)
{
	const struct store_ops *ops;
	const char *location;
	int err = pick_backend(uri, &ops, &location);

	*before = *after = 0;
	return err ? err : ops->vacuum(datadir, before, after);
}

#if STATEHOUSE_FAULT_INJECTION
void store_set_prune_pause(struct store_pruner *p, unsigned ms)
{
	p->pause_ms = ms;
}
#endif

const char *store_sqlite_version(void)
{
	return store_sqlite_ops.lib_version();
}
