/* SPDX-License-Identifier: MIT */
/*
 * events.c - statehousectl's readers of the event log: replay, tail (-f) and inspect
 * (mountctl/, the command-line layer).  They read .events/<ns>/<agent>.jsonl (or its
 * since/<ts>/ form) line by line, and tail -f goes on with .follow/since/<next ts>/, so
 * no commit falls between the two files and none comes twice, also across a restart of
 * the daemon.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ctl.h"

FILE *ctl_open_prefix_events(const struct ctl *c, const char *agent, const char *prefix,
			     int64_t since, bool follow)
{
	const char *top = follow ? ".follow" : ".events";
	/* <agent>/<prefix>.jsonl: the ops at or below the prefix */
	char *file = prefix ? ctl_xasprintf("%s/%s", agent, prefix) : ctl_xstrdup(agent);
	/* .ns/<ns>: every namespace, also one named "since" or "all.jsonl" */
	char *path = since > 0 ? ctl_mpath(c, "%s/since/%lld/.ns/%s/%s.jsonl", top,
					   (long long)since, c->ns, file)
			       : ctl_mpath(c, "%s/.ns/%s/%s.jsonl", top, c->ns, file);
	FILE *f = fopen(path, "re");
	int err = errno;

	free(path);
	free(file);
	errno = err;
	return f;
}

FILE *ctl_open_events(const struct ctl *c, const char *agent, int64_t since, bool follow)
{
	return ctl_open_prefix_events(c, agent, NULL, since, follow);
}

/* One op: put and delete name a key and its version; attr (an owner or mode change of
 * the agent, or of a key's mode) has no version, and its value is the new owner and
 * mode.  With c->verbose (replay --verbose), the commit's transaction (txn, or NULL) and
 * the whole value instead of a summary. */
static void print_op_human(const struct ctl *c, int64_t ts, const char *time, const char *txn,
			   json_t *op)
{
	const char *kind = ctl_json_str(op, "op", "?");
	bool del = !strcmp(kind, "delete");
	char *summary = ctl_value_summary(op, c->verbose ? INT_MAX : 50), version[32] = "-";
	char *agent = ctl_json_name(op, "agent"), *key = ctl_json_name(op, "key");

	if (json_is_integer(json_object_get(op, "version")))
		snprintf(version, sizeof(version), "v%lld",
			 (long long)ctl_json_int(op, "version", 0));
	printf("%s%s%s  #%-6lld %s  %s%-6s%s %s  %s  ", ctl_col(c, CTL_DIM),
	       ctl_short_time(time), ctl_col(c, CTL_RESET), (long long)ts, agent ? agent : "-",
	       ctl_col(c, del ? CTL_RED : CTL_GREEN), kind, ctl_col(c, CTL_RESET),
	       key ? key : "-", version);
	if (c->verbose)
		printf("txn=%s  ", txn ? txn : "-");
	printf("%s\n", summary);
	free(agent);
	free(key);
	free(summary);
}

void ctl_print_event_human(const struct ctl *c, json_t *ev)
{
	json_t *ops = json_object_get(ev, "ops"), *op;
	int64_t ts = ctl_json_int(ev, "commit_ts", 0);
	const char *time = ctl_json_str(ev, "time", "?");
	char *txn = ctl_json_name(ev, "txn");
	size_t i;

	json_array_foreach(ops, i, op)
		print_op_human(c, ts, time, txn, op);
	free(txn);
}

/*
 * The original statehousectl's field names, added to an event line of agent for --json
 * (statehousectl(1), COMPATIBILITY): "txn_id" (the "txn"), "namespace", "agent_id", and
 * "operations": the put and delete ops as {"key", "value", "version", "deleted"}, a
 * delete with "value": null, so that jq pipelines written for it (.operations[].key) keep
 * working.  Names and values that are not UTF-8 keep the "_base64" convention.
 */
static void add_compat_fields(const struct ctl *c, const char *agent, json_t *ev)
{
	json_t *ops = json_object_get(ev, "ops"), *operations = json_array(), *op;
	char *txn = ctl_json_name(ev, "txn");
	size_t i;

	if (txn)
		ctl_json_set_name(ev, "txn_id", txn);
	free(txn);
	ctl_json_set_name(ev, "namespace", c->ns);
	ctl_json_set_name(ev, "agent_id", agent);
	json_array_foreach(ops, i, op) {
		const char *kind = ctl_json_str(op, "op", "");
		bool del = !strcmp(kind, "delete");
		json_t *o, *v;
		char *key;

		if (!del && strcmp(kind, "put"))
			continue; /* directories and owners have no key version */
		o = json_object();
		key = ctl_json_name(op, "key");
		if (key)
			ctl_json_set_name(o, "key", key);
		free(key);
		if (del)
			json_object_set_new(o, "value", json_null());
		else if ((v = json_object_get(op, "value_base64")))
			json_object_set(o, "value_base64", v);
		else
			json_object_set(o, "value", (v = json_object_get(op, "value")) ? v : json_null());
		json_object_set(o, "version", json_object_get(op, "version"));
		json_object_set_new(o, "deleted", json_boolean(del));
		json_array_append_new(operations, o);
	}
	json_object_set_new(ev, "operations", operations);
}

/* One line of an event file, parsed; NULL (after a message) when it is not an event. */
static json_t *parse_event(const char *line, const char *what)
{
	json_error_t e;
	json_t *ev = json_loads(line, 0, &e);

	if (!json_is_object(ev) || !json_is_integer(json_object_get(ev, "commit_ts"))) {
		ctl_err("cannot parse an event of %s: %s", what, json_is_object(ev) ? "no commit_ts"
										   : e.text);
		json_decref(ev);
		return NULL;
	}
	return ev;
}

/* One event of agent: for --json the daemon's line with the original CLI's fields added,
 * else one line per op for humans. */
static void print_event(const struct ctl *c, const char *agent, json_t *ev)
{
	if (c->json) {
		add_compat_fields(c, agent, ev);
		ctl_print_json(ev, false);
	} else {
		ctl_print_event_human(c, ev);
	}
}

/* The usage checks and the mount of a command on AGENT; 0 or an exit code. */
static int agent_args(struct ctl *c, int argc, char **argv)
{
	int rc;

	if (argc - optind != 1)
		return ctl_usage(c, argc - optind ? "too many arguments" : "missing AGENT");
	rc = ctl_check_ns_agent(c, argv[optind]);
	return rc ? rc : ctl_select_mount(c);
}

static off_t stream_size(FILE *f)
{
	struct stat st;

	return fstat(fileno(f), &st) == 0 ? st.st_size : 0;
}

/* How much of a stream of size bytes is read, in percent (the file may grow meanwhile). */
static int percent_read(off_t read_bytes, off_t size)
{
	return (int)(read_bytes * 100 / (size > read_bytes ? size : read_bytes));
}

/* A reader of an event file, one event a line; line holds the last one read. */
struct ev_reader {
	FILE *f;
	const char *what; /* the file, for messages */
	char *line;
	size_t cap;
	ssize_t len;
	off_t size, read_bytes; /* for the progress; size 0: unknown */
	int64_t lines;          /* the events read */
};

/* The next event (new reference); NULL at the end of the file, or after a line that is
 * not an event (with *rc set to CTL_EXIT_FAIL). */
static json_t *ev_next(struct ev_reader *r, int *rc)
{
	json_t *ev;

	r->len = getline(&r->line, &r->cap, r->f);
	if (r->len <= 0)
		return NULL;
	ev = parse_event(r->line, r->what);
	if (!ev) {
		*rc = CTL_EXIT_FAIL;
		return NULL;
	}
	r->lines++;
	r->read_bytes += r->len;
	return ev;
}

/* The end of reading the events of agent: rc, or the read error when rc is 0. */
static int ev_end(struct ev_reader *r, int rc, const char *agent, bool follow)
{
	if (!rc && ferror(r->f))
		rc = ctl_fail(errno, "cannot %s the events of agent '%s'",
			      follow ? "follow" : "read", agent);
	free(r->line);
	r->line = NULL;
	return rc;
}

/* --- replay ------------------------------------------------------------------------- */

struct replay_opts {
	int64_t since, until, limit; /* 0: not given */
};

/* replay's options and arguments, checked, and the mount: -1 to go on, else the exit
 * status. */
static int replay_args(struct ctl *c, int argc, char **argv, struct replay_opts *o)
{
	/* --start-ts, --end-ts: the original statehousectl's names; --start-ts 0 (as it
	 * allowed) means from the first commit. */
	enum { OPT_SINCE = 2000, OPT_UNTIL, OPT_LIMIT, OPT_START_TS, OPT_END_TS, OPT_VERBOSE };
	static const struct option lo[] = { { "since", required_argument, NULL, OPT_SINCE },
					    { "until", required_argument, NULL, OPT_UNTIL },
					    { "limit", required_argument, NULL, OPT_LIMIT },
					    { "start-ts", required_argument, NULL, OPT_START_TS },
					    { "end-ts", required_argument, NULL, OPT_END_TS },
					    { "verbose", no_argument, NULL, OPT_VERBOSE },
					    { 0 } };
	int opt, stop, rc;

	while ((opt = ctl_getopt(c, argc, argv, "", lo, &stop)) != -1) {
		if (opt == -2)
			return stop;
		if (opt == OPT_VERBOSE) {
			c->verbose = true;
		} else if (opt == OPT_LIMIT) {
			if (!ctl_parse_ts(optarg, &o->limit))
				return ctl_usage(c, "malformed --limit '%s' (a positive number)",
						 optarg);
		} else if (opt == OPT_START_TS) {
			if (!ctl_parse_count(optarg, &o->since))
				return ctl_usage(c, "malformed commit_ts '%s' for --start-ts (a "
						    "non-negative integer)", optarg);
		} else if (!ctl_parse_ts(optarg, opt == OPT_SINCE ? &o->since : &o->until)) {
			return ctl_usage(c, "malformed commit_ts '%s' for --%s (a positive integer)",
					 optarg, opt == OPT_SINCE ? "since" :
					 opt == OPT_UNTIL ? "until" : "end-ts");
		}
	}
	if (o->since && o->until && o->until < o->since)
		return ctl_usage(c, "--until %lld is before --since %lld", (long long)o->until,
				 (long long)o->since);
	rc = agent_args(c, argc, argv);
	return rc ? rc : -1;
}

/* Print the events of f up to o->until and o->limit; counts the lines read in *lines.
 * 0 or an exit code. */
static int replay_events(struct ctl *c, FILE *f, const char *agent,
			 const struct replay_opts *o, int64_t *lines)
{
	struct ev_reader r = { .f = f, .what = "the agent's event file", .size = stream_size(f) };
	int64_t done = 0;
	json_t *ev;
	int rc = CTL_EXIT_OK;

	while ((ev = ev_next(&r, &rc))) {
		if (o->until && ctl_json_int(ev, "commit_ts", 0) > o->until) {
			json_decref(ev);
			break;
		}
		print_event(c, agent, ev);
		json_decref(ev);
		done++;
		if (r.size > 0 && !c->stdout_tty)
			ctl_progress(c, "replay: %lld commits, %d%%", (long long)done,
				     percent_read(r.read_bytes, r.size));
		if (o->limit && done >= o->limit)
			break;
	}
	ctl_progress_end(c);
	*lines = r.lines;
	return ev_end(&r, rc, agent, false);
}

int ctl_cmd_replay(struct ctl *c, int argc, char **argv)
{
	struct replay_opts o = { 0 };
	int64_t lines = 0;
	const char *agent;
	FILE *f;
	int rc = replay_args(c, argc, argv, &o);

	if (rc >= 0)
		return rc;
	agent = argv[optind];
	f = ctl_open_events(c, agent, o.since, false);
	if (!f)
		return ctl_fail(errno, "cannot open the events of agent '%s'", agent);
	rc = replay_events(c, f, agent, &o, &lines);
	fclose(f);
	if (!rc && !lines && !ctl_agent_known(c, agent))
		return ctl_no_agent(c, agent);
	return ctl_finish_stdout(rc);
}

/* --- tail --------------------------------------------------------------------------- */

/* tail's options and arguments, checked, and the mount: -1 to go on, else the exit
 * status.  *prefix is --prefix without trailing slashes (caller frees), or NULL. */
static int tail_args(struct ctl *c, int argc, char **argv, int64_t *n, bool *follow,
		     bool *no_wait, char **prefix)
{
	enum { OPT_NO_WAIT = 2000, OPT_PREFIX };
	static const struct option lo[] = { { "lines", required_argument, NULL, 'n' },
					    { "follow", no_argument, NULL, 'f' },
					    { "no-wait", no_argument, NULL, OPT_NO_WAIT },
					    { "prefix", required_argument, NULL, OPT_PREFIX },
					    { 0 } };
	const char *why;
	size_t len;
	int opt, stop, rc;

	while ((opt = ctl_getopt(c, argc, argv, "n:f", lo, &stop)) != -1) {
		if (opt == -2)
			return stop;
		if (opt == 'f') {
			*follow = true;
		} else if (opt == OPT_NO_WAIT) {
			*no_wait = true;
		} else if (opt == OPT_PREFIX) {
			free(*prefix);
			*prefix = ctl_xstrdup(optarg);
			len = strlen(*prefix);
			while (len > 1 && (*prefix)[len - 1] == '/')
				(*prefix)[--len] = '\0';
			why = ctl_check_key(*prefix);
			if (why)
				return ctl_usage(c, "invalid --prefix '%s': %s", optarg, why);
		} else if (!ctl_parse_count(optarg, n) || *n > 1000000) {
			return ctl_usage(c, "malformed -n '%s' (a number of commits)", optarg);
		}
	}
	rc = agent_args(c, argc, argv);
	return rc ? rc : -1;
}

/* The last n lines seen, oldest first from (head + n - kept) % n; v is NULL when n is 0. */
struct tail_ring {
	char **v;
	size_t n, head, kept;
};

static void tail_ring_push(struct tail_ring *r, const char *line)
{
	if (!r->v)
		return;
	free(r->v[r->head]);
	r->v[r->head] = ctl_xstrdup(line);
	r->head = (r->head + 1) % r->n;
	if (r->kept < r->n)
		r->kept++;
}

static void tail_ring_print(const struct ctl *c, const char *agent, const struct tail_ring *r)
{
	for (size_t i = 0; i < r->kept; i++) {
		const char *l = r->v[(r->head + r->n - r->kept + i) % r->n];
		json_t *ev = parse_event(l, "the agent's event file");

		if (ev)
			print_event(c, agent, ev);
		json_decref(ev);
	}
}

/* Read the whole event file f into the ring; *last_ts is the last commit read, *lines
 * the number of lines.  0 or an exit code. */
static int tail_read(const struct ctl *c, FILE *f, const char *agent, struct tail_ring *ring,
		     int64_t *last_ts, int64_t *lines)
{
	struct ev_reader r = { .f = f, .what = "the agent's event file", .size = stream_size(f) };
	json_t *ev;
	int rc = CTL_EXIT_OK;

	while ((ev = ev_next(&r, &rc))) {
		*last_ts = ctl_json_int(ev, "commit_ts", 0);
		json_decref(ev);
		tail_ring_push(ring, r.line);
		if (r.size > 0)
			ctl_progress(c, "tail: %lld commits read, %d%%", (long long)r.lines,
				     percent_read(r.read_bytes, r.size));
	}
	ctl_progress_end(c);
	*lines = r.lines;
	return ev_end(&r, rc, agent, false);
}

/*
 * Whether a .follow stream that ended with err (0: it ended, which a live one never does)
 * was lost with its mount: the error is one a lost connection gives (ENOTCONN,
 * ECONNABORTED: the daemon died; EINTR: it stopped while the read waited; ENODEV), or the
 * mount is not there now (a plain directory after an unmount).  Anything else is an error
 * of the stream itself.
 */
static bool follow_lost(const struct ctl *c, int err)
{
	return err == 0 || err == ENOTCONN || err == ECONNABORTED || err == EINTR ||
	       err == ENODEV || !ctl_mount_answers(c->mnt);
}

/* Wait until the mount answers again: the same daemon restarted, or a new one mounted at
 * the same place.  Never returns at once, so a stream that keeps failing is retried at
 * most every 50 ms; the pause doubles up to a second while the mount is away. */
static void wait_for_mount(const struct ctl *c)
{
	long ms = 50;

	do {
		nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 },
			  NULL);
		ms = ms * 2 > 1000 ? 1000 : ms * 2;
	} while (!ctl_mount_answers(c->mnt));
}

/*
 * tail -f after the last lines: print each commit after last_ts as it comes, until
 * stdout fails.  When the mount stops answering (its daemon died, stopped or restarted)
 * wait for it to come back and go on after the last commit printed, so none is missed or
 * printed twice; with no_wait exit CTL_EXIT_MOUNT instead.  Returns an exit code.
 */
static int tail_follow(const struct ctl *c, const char *agent, const char *prefix,
		       int64_t last_ts, bool no_wait)
{
	bool waited = false;

	for (;;) {
		/* Everything up to last_ts is printed; the .follow file starts right after it. */
		struct ev_reader r = { .f = ctl_open_prefix_events(c, agent, prefix, last_ts + 1,
								   true),
				       .what = "the agent's follow file" };
		json_t *ev;
		int rc = CTL_EXIT_OK, err;

		if (!r.f) {
			err = errno;
		} else {
			if (waited)
				ctl_err("'%s' answers again; following agent '%s' from commit_ts %lld",
					c->mnt, agent, (long long)(last_ts + 1));
			waited = false;
			while ((ev = ev_next(&r, &rc))) {
				last_ts = ctl_json_int(ev, "commit_ts", last_ts);
				print_event(c, agent, ev);
				json_decref(ev);
				if ((rc = ctl_finish_stdout(CTL_EXIT_OK)))
					break;
			}
			err = ferror(r.f) ? errno : 0;
			free(r.line);
			fclose(r.f);
			if (rc)
				return rc;
		}
		if (!follow_lost(c, err))
			return ctl_fail(err, "cannot follow the events of agent '%s'", agent);
		if (no_wait) {
			ctl_err("lost '%s' while following agent '%s': %s", c->mnt, agent,
				err ? ctl_strerror(err) : "the stream ended");
			return CTL_EXIT_MOUNT;
		}
		if (!waited)
			ctl_err("'%s' is not answering (%s); waiting for it to come back", c->mnt,
				err ? strerror(err) : "the stream ended");
		waited = true;
		wait_for_mount(c);
	}
}

int ctl_cmd_tail(struct ctl *c, int argc, char **argv)
{
	struct tail_ring ring = { 0 };
	int64_t n = 10, last_ts = 0, lines = 0;
	bool follow = false, no_wait = false;
	char *prefix = NULL;
	const char *agent;
	FILE *f;
	int rc = tail_args(c, argc, argv, &n, &follow, &no_wait, &prefix);

	if (rc >= 0) {
		free(prefix);
		return rc;
	}
	agent = argv[optind];
	f = ctl_open_prefix_events(c, agent, prefix, 0, false);
	if (!f) {
		rc = ctl_fail(errno, "cannot open the events of agent '%s'", agent);
		free(prefix);
		return rc;
	}
	if (n) {
		ring.n = (size_t)n;
		ring.v = ctl_xmalloc(ring.n * sizeof(*ring.v));
		memset(ring.v, 0, ring.n * sizeof(*ring.v));
	}
	rc = tail_read(c, f, agent, &ring, &last_ts, &lines);
	fclose(f);
	if (!rc && !lines && !ctl_agent_known(c, agent))
		rc = ctl_no_agent(c, agent);
	if (!rc)
		tail_ring_print(c, agent, &ring);
	for (size_t i = 0; ring.v && i < ring.n; i++)
		free(ring.v[i]);
	free(ring.v);
	rc = ctl_finish_stdout(rc);
	if (!rc && follow)
		rc = tail_follow(c, agent, prefix, last_ts, no_wait);
	free(prefix);
	return rc;
}

/* --- inspect ------------------------------------------------------------------------ */

#define RECENT 5

/* What inspect gathers from the events up to the head: counts, the first and last
 * events, and the last RECENT ops (a ring, oldest at (rhead + RECENT - rkept) % RECENT). */
struct inspect_acc {
	int64_t commits, ops;
	json_t *first, *last;
	json_t *ring[RECENT];
	size_t rhead, rkept;
};

/* Add one event at commit ts: each op goes to the ring with the commit's ts, time, txn. */
static void inspect_add(struct inspect_acc *a, json_t *ev, int64_t ts)
{
	json_t *op;
	size_t i;

	a->commits++;
	if (!a->first)
		a->first = json_incref(ev);
	json_decref(a->last);
	a->last = json_incref(ev);
	json_array_foreach(json_object_get(ev, "ops"), i, op) {
		json_t *r = json_pack("{s:I,s:O}", "commit_ts", (json_int_t)ts, "time",
				      json_object_get(ev, "time"));
		char *txn = ctl_json_name(ev, "txn");

		if (txn)
			ctl_json_set_name(r, "txn", txn);
		free(txn);
		json_object_update(r, op);
		a->ops++;
		json_decref(a->ring[a->rhead]);
		a->ring[a->rhead] = r;
		a->rhead = (a->rhead + 1) % RECENT;
		if (a->rkept < RECENT)
			a->rkept++;
	}
}

static void inspect_acc_release(struct inspect_acc *a)
{
	for (size_t i = 0; i < RECENT; i++)
		json_decref(a->ring[i]);
	json_decref(a->first);
	json_decref(a->last);
}

/* Read the events of f (NULL: none) up to head_ts into a.  0 or an exit code. */
static int inspect_read(const struct ctl *c, FILE *f, const char *agent, int64_t head_ts,
			struct inspect_acc *a)
{
	struct ev_reader r = { .f = f, .what = "the agent's event file" };
	json_t *ev;
	int rc = CTL_EXIT_OK;

	while (f && (ev = ev_next(&r, &rc))) {
		int64_t ts = ctl_json_int(ev, "commit_ts", 0);

		if (ts > head_ts) {
			json_decref(ev);
			break;
		}
		inspect_add(a, ev, ts);
		json_decref(ev);
		ctl_progress(c, "inspect: %lld commits read", (long long)a->commits);
	}
	ctl_progress_end(c);
	return f ? ev_end(&r, rc, agent, false) : rc;
}

/* The first or last event's commit_ts and time, for --json. */
static json_t *inspect_when(json_t *ev)
{
	return json_pack("{s:O,s:O}", "commit_ts", json_object_get(ev, "commit_ts"), "time",
			 json_object_get(ev, "time"));
}

static void inspect_print(const struct ctl *c, const char *agent, int64_t head_ts, size_t keys,
			  const struct inspect_acc *a, json_t *recent)
{
	json_t *op;
	size_t i;

	if (c->json) {
		json_t *j = json_object(), *counts;

		ctl_json_set_name(j, "namespace", c->ns);
		ctl_json_set_name(j, "agent", agent);
		counts = json_pack("{s:I,s:I,s:I,s:I,s:O}", "commit_ts", (json_int_t)head_ts,
				   "keys", (json_int_t)keys, "commits", (json_int_t)a->commits,
				   "ops", (json_int_t)a->ops, "recent", recent);
		json_object_update(j, counts);
		json_decref(counts);

		if (a->first) {
			json_object_set_new(j, "first", inspect_when(a->first));
			json_object_set_new(j, "last", inspect_when(a->last));
		}
		ctl_print_json(j, false);
		json_decref(j);
		return;
	}
	printf("%-14s %s%s/%s%s\n", "agent", ctl_col(c, CTL_BOLD), c->ns, agent,
	       ctl_col(c, CTL_RESET));
	printf("%-14s commit_ts %lld (the head)\n", "as of", (long long)head_ts);
	printf("%-14s %zu\n", "keys", keys);
	printf("%-14s %lld (%lld ops)\n", "commits", (long long)a->commits, (long long)a->ops);
	if (a->first) {
		printf("%-14s #%lld at %s\n", "first commit",
		       (long long)ctl_json_int(a->first, "commit_ts", 0),
		       ctl_short_time(ctl_json_str(a->first, "time", "?")));
		printf("%-14s #%lld at %s\n", "last commit",
		       (long long)ctl_json_int(a->last, "commit_ts", 0),
		       ctl_short_time(ctl_json_str(a->last, "time", "?")));
		printf("recent ops:\n");
	}
	json_array_foreach(recent, i, op) {
		printf("  ");
		print_op_human(c, ctl_json_int(op, "commit_ts", 0), ctl_json_str(op, "time", "?"),
			       NULL, op);
	}
}

/* inspect's arguments, the mount and the head: -1 to go on, else the exit status. */
static int inspect_args(struct ctl *c, int argc, char **argv, int64_t *head_ts)
{
	int opt, stop, rc;

	while ((opt = ctl_getopt(c, argc, argv, "", NULL, &stop)) != -1)
		if (opt == -2)
			return stop;
	if ((rc = agent_args(c, argc, argv)) || (rc = ctl_head_ts(c, head_ts)))
		return rc;
	return -1;
}

int ctl_cmd_inspect(struct ctl *c, int argc, char **argv)
{
	struct ctl_list keys = { 0 };
	struct inspect_acc a = { 0 };
	int64_t head_ts;
	json_t *recent;
	const char *agent;
	char *root = NULL;
	FILE *f = NULL;
	int rc = inspect_args(c, argc, argv, &head_ts);

	if (rc >= 0)
		return rc;
	agent = argv[optind];
	/* Keys and events both as of head_ts, so that the numbers describe one state. */
	if (head_ts > 0) {
		rc = ctl_keys_at(c, agent, head_ts, &root, &keys);
		if (rc)
			goto out;
		f = ctl_open_events(c, agent, 0, false);
		if (!f) {
			rc = ctl_fail(errno, "cannot open the events of agent '%s'", agent);
			goto out;
		}
	}
	rc = inspect_read(c, f, agent, head_ts, &a);
	if (rc)
		goto out;
	if (!a.commits && !keys.n && !ctl_agent_known(c, agent)) {
		rc = ctl_no_agent(c, agent);
		goto out;
	}
	recent = json_array();
	for (size_t i = 0; i < a.rkept; i++)
		json_array_append(recent, a.ring[(a.rhead + RECENT - a.rkept + i) % RECENT]);
	inspect_print(c, agent, head_ts, keys.n, &a, recent);
	json_decref(recent);
	rc = ctl_finish_stdout(CTL_EXIT_OK);
out:
	if (f)
		fclose(f);
	inspect_acc_release(&a);
	ctl_list_free(&keys);
	free(root);
	return rc;
}
