/* SPDX-License-Identifier: MIT */
/*
 * events.c - statehousectl's readers of the event log: replay, tail (-f) and inspect
 * (mountctl/, the command-line layer).  They read .events/<ns>/<agent>.jsonl (or its
 * since/<ts>/ form) line by line, and tail -f goes on with .follow/since/<next ts>/, so
 * no commit falls between the two files and none comes twice.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl.h"

FILE *ctl_open_events(const struct ctl *c, const char *agent, int64_t since, bool follow)
{
	const char *top = follow ? ".follow" : ".events";
	char *path = since > 0 ? ctl_mpath(c, "%s/since/%lld/%s/%s.jsonl", top, (long long)since,
					   c->ns, agent)
			       : ctl_mpath(c, "%s/%s/%s.jsonl", top, c->ns, agent);
	FILE *f = fopen(path, "re");
	int err = errno;

	free(path);
	errno = err;
	return f;
}

/* One op: put and delete name a key and its version; attr (an owner or mode change of
 * the agent) has neither, and its value is the new owner and mode. */
static void print_op_human(const struct ctl *c, int64_t ts, const char *time, json_t *op)
{
	const char *kind = ctl_json_str(op, "op", "?");
	bool del = !strcmp(kind, "delete");
	char *summary = ctl_value_summary(op, 50), version[32] = "-";

	if (json_is_integer(json_object_get(op, "version")))
		snprintf(version, sizeof(version), "v%lld",
			 (long long)ctl_json_int(op, "version", 0));
	printf("%s%s%s  #%-6lld %s  %s%-6s%s %s  %s  %s\n", ctl_col(c, CTL_DIM),
	       ctl_short_time(time), ctl_col(c, CTL_RESET), (long long)ts,
	       ctl_json_str(op, "agent", "-"), ctl_col(c, del ? CTL_RED : CTL_GREEN), kind,
	       ctl_col(c, CTL_RESET), ctl_json_str(op, "key", "-"), version, summary);
	free(summary);
}

void ctl_print_event_human(const struct ctl *c, json_t *ev)
{
	json_t *ops = json_object_get(ev, "ops"), *op;
	int64_t ts = ctl_json_int(ev, "commit_ts", 0);
	const char *time = ctl_json_str(ev, "time", "?");
	size_t i;

	json_array_foreach(ops, i, op)
		print_op_human(c, ts, time, op);
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

static void print_event(const struct ctl *c, const char *line, ssize_t len, json_t *ev)
{
	if (c->json) {
		fputs(line, stdout);
		if (line[len - 1] != '\n')
			putchar('\n');
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

int ctl_cmd_replay(struct ctl *c, int argc, char **argv)
{
	enum { OPT_SINCE = 2000, OPT_UNTIL, OPT_LIMIT };
	static const struct option lo[] = { { "since", required_argument, NULL, OPT_SINCE },
					    { "until", required_argument, NULL, OPT_UNTIL },
					    { "limit", required_argument, NULL, OPT_LIMIT },
					    { 0 } };
	int64_t since = 0, until = 0, limit = 0, done = 0, lines = 0;
	const char *agent;
	char *line = NULL;
	size_t cap = 0;
	off_t size, read_bytes = 0;
	ssize_t len;
	FILE *f;
	int opt, stop, rc;

	while ((opt = ctl_getopt(c, argc, argv, "", lo, &stop)) != -1) {
		if (opt == -2)
			return stop;
		if (opt == OPT_LIMIT) {
			if (!ctl_parse_ts(optarg, &limit))
				return ctl_usage(c, "malformed --limit '%s' (a positive number)",
						 optarg);
		} else if (!ctl_parse_ts(optarg, opt == OPT_SINCE ? &since : &until)) {
			return ctl_usage(c, "malformed commit_ts '%s' for --%s (a positive integer)",
					 optarg, opt == OPT_SINCE ? "since" : "until");
		}
	}
	if (since && until && until < since)
		return ctl_usage(c, "--until %lld is before --since %lld", (long long)until,
				 (long long)since);
	if ((rc = agent_args(c, argc, argv)))
		return rc;
	agent = argv[optind];
	f = ctl_open_events(c, agent, since, false);
	if (!f)
		return ctl_fail(errno, "cannot open the events of agent '%s'", agent);
	size = stream_size(f);
	while ((len = getline(&line, &cap, f)) > 0) {
		json_t *ev = parse_event(line, "the agent's event file");

		lines++;
		read_bytes += len;
		if (!ev) {
			rc = CTL_EXIT_FAIL;
			break;
		}
		if (until && ctl_json_int(ev, "commit_ts", 0) > until) {
			json_decref(ev);
			break;
		}
		print_event(c, line, len, ev);
		json_decref(ev);
		done++;
		if (size > 0 && !c->stdout_tty)
			ctl_progress(c, "replay: %lld commits, %d%%", (long long)done,
				     (int)(read_bytes * 100 / (size > read_bytes ? size : read_bytes)));
		if (limit && done >= limit)
			break;
	}
	ctl_progress_end(c);
	if (!rc && ferror(f))
		rc = ctl_fail(errno, "cannot read the events of agent '%s'", agent);
	fclose(f);
	free(line);
	if (!rc && !lines && !ctl_agent_known(c, agent))
		return ctl_no_agent(c, agent);
	return ctl_finish_stdout(rc);
}

int ctl_cmd_tail(struct ctl *c, int argc, char **argv)
{
	static const struct option lo[] = { { "lines", required_argument, NULL, 'n' },
					    { "follow", no_argument, NULL, 'f' },
					    { 0 } };
	int64_t n = 10, last_ts = 0, lines = 0;
	bool follow = false;
	const char *agent;
	char **ring = NULL, *line = NULL;
	size_t cap = 0, head = 0, kept = 0;
	off_t size, read_bytes = 0;
	ssize_t len;
	FILE *f;
	int opt, stop, rc;

	while ((opt = ctl_getopt(c, argc, argv, "n:f", lo, &stop)) != -1) {
		if (opt == -2)
			return stop;
		if (opt == 'f')
			follow = true;
		else if (!ctl_parse_count(optarg, &n) || n > 1000000)
			return ctl_usage(c, "malformed -n '%s' (a number of commits)", optarg);
	}
	if ((rc = agent_args(c, argc, argv)))
		return rc;
	agent = argv[optind];
	f = ctl_open_events(c, agent, 0, false);
	if (!f)
		return ctl_fail(errno, "cannot open the events of agent '%s'", agent);
	if (n) {
		ring = ctl_xmalloc((size_t)n * sizeof(*ring));
		memset(ring, 0, (size_t)n * sizeof(*ring));
	}
	size = stream_size(f);
	while ((len = getline(&line, &cap, f)) > 0) {
		json_t *ev = parse_event(line, "the agent's event file");

		if (!ev) {
			rc = CTL_EXIT_FAIL;
			break;
		}
		last_ts = ctl_json_int(ev, "commit_ts", 0);
		json_decref(ev);
		lines++;
		read_bytes += len;
		if (ring) {
			free(ring[head]);
			ring[head] = ctl_xstrdup(line);
			head = (head + 1) % (size_t)n;
			if (kept < (size_t)n)
				kept++;
		}
		if (size > 0)
			ctl_progress(c, "tail: %lld commits read, %d%%", (long long)lines,
				     (int)(read_bytes * 100 / (size > read_bytes ? size : read_bytes)));
	}
	ctl_progress_end(c);
	if (!rc && ferror(f))
		rc = ctl_fail(errno, "cannot read the events of agent '%s'", agent);
	fclose(f);
	if (!rc && !lines && !ctl_agent_known(c, agent))
		rc = ctl_no_agent(c, agent);
	for (size_t i = 0; !rc && i < kept; i++) {
		const char *l = ring[(head + (size_t)n - kept + i) % (size_t)n];
		json_t *ev = parse_event(l, "the agent's event file");

		print_event(c, l, (ssize_t)strlen(l), ev);
		json_decref(ev);
	}
	for (size_t i = 0; ring && i < (size_t)n; i++)
		free(ring[i]);
	free(ring);
	rc = ctl_finish_stdout(rc);
	if (rc || !follow)
		goto out;
	/* Everything up to last_ts is printed; the .follow file starts right after it. */
	f = ctl_open_events(c, agent, last_ts + 1, true);
	if (!f) {
		rc = ctl_fail(errno, "cannot follow the events of agent '%s'", agent);
		goto out;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		json_t *ev = parse_event(line, "the agent's follow file");

		if (!ev) {
			rc = CTL_EXIT_FAIL;
			break;
		}
		print_event(c, line, len, ev);
		json_decref(ev);
		if ((rc = ctl_finish_stdout(CTL_EXIT_OK)))
			break;
	}
	if (!rc && ferror(f))
		rc = ctl_fail(errno, "cannot follow the events of agent '%s'", agent);
	fclose(f);
out:
	free(line);
	return rc;
}

/* --- inspect ------------------------------------------------------------------------ */

#define RECENT 5

static void inspect_print(const struct ctl *c, const char *agent, int64_t head_ts, size_t keys,
			  int64_t commits, int64_t ops, json_t *first, json_t *last,
			  json_t *recent)
{
	json_t *op;
	size_t i;

	if (c->json) {
		json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:O}", "namespace", c->ns, "agent",
				      agent, "commit_ts", (json_int_t)head_ts, "keys",
				      (json_int_t)keys, "commits", (json_int_t)commits, "ops",
				      (json_int_t)ops, "recent", recent);

		if (first) {
			json_object_set_new(j, "first",
					    json_pack("{s:O,s:O}", "commit_ts",
						      json_object_get(first, "commit_ts"), "time",
						      json_object_get(first, "time")));
			json_object_set_new(j, "last",
					    json_pack("{s:O,s:O}", "commit_ts",
						      json_object_get(last, "commit_ts"), "time",
						      json_object_get(last, "time")));
		}
		ctl_print_json(j, false);
		json_decref(j);
		return;
	}
	printf("%-14s %s%s/%s%s\n", "agent", ctl_col(c, CTL_BOLD), c->ns, agent,
	       ctl_col(c, CTL_RESET));
	printf("%-14s commit_ts %lld (the head)\n", "as of", (long long)head_ts);
	printf("%-14s %zu\n", "keys", keys);
	printf("%-14s %lld (%lld ops)\n", "commits", (long long)commits, (long long)ops);
	if (first) {
		printf("%-14s #%lld at %s\n", "first commit",
		       (long long)ctl_json_int(first, "commit_ts", 0),
		       ctl_short_time(ctl_json_str(first, "time", "?")));
		printf("%-14s #%lld at %s\n", "last commit",
		       (long long)ctl_json_int(last, "commit_ts", 0),
		       ctl_short_time(ctl_json_str(last, "time", "?")));
		printf("recent ops:\n");
	}
	json_array_foreach(recent, i, op) {
		printf("  ");
		print_op_human(c, ctl_json_int(op, "commit_ts", 0), ctl_json_str(op, "time", "?"),
			       op);
	}
}

int ctl_cmd_inspect(struct ctl *c, int argc, char **argv)
{
	struct ctl_list keys = { 0 };
	int64_t head_ts, commits = 0, ops = 0;
	json_t *ring[RECENT] = { 0 }, *first = NULL, *last = NULL, *recent;
	size_t rhead = 0, rkept = 0, cap = 0;
	const char *agent;
	char *line = NULL, *root = NULL;
	ssize_t len;
	FILE *f = NULL;
	int opt, stop, rc, err;

	while ((opt = ctl_getopt(c, argc, argv, "", NULL, &stop)) != -1)
		if (opt == -2)
			return stop;
	if ((rc = agent_args(c, argc, argv)) || (rc = ctl_head_ts(c, &head_ts)))
		return rc;
	agent = argv[optind];
	/* Keys and events both as of head_ts, so that the numbers describe one state. */
	if (head_ts > 0) {
		root = ctl_mpath(c, ".at/%lld/%s/%s", (long long)head_ts, c->ns, agent);
		err = ctl_list_keys(root, "", &keys);
		if (err) {
			rc = ctl_fail(-err, "cannot list '%s'", root);
			goto out;
		}
		f = ctl_open_events(c, agent, 0, false);
		if (!f) {
			rc = ctl_fail(errno, "cannot open the events of agent '%s'", agent);
			goto out;
		}
	}
	while (f && (len = getline(&line, &cap, f)) > 0) {
		json_t *ev = parse_event(line, "the agent's event file"), *op;
		int64_t ts;
		size_t i;

		if (!ev) {
			rc = CTL_EXIT_FAIL;
			break;
		}
		ts = ctl_json_int(ev, "commit_ts", 0);
		if (ts > head_ts) {
			json_decref(ev);
			break;
		}
		commits++;
		if (!first)
			first = json_incref(ev);
		json_decref(last);
		last = json_incref(ev);
		json_array_foreach(json_object_get(ev, "ops"), i, op) {
			json_t *r = json_pack("{s:I,s:O,s:O}", "commit_ts", (json_int_t)ts, "time",
					      json_object_get(ev, "time"), "txn",
					      json_object_get(ev, "txn"));

			json_object_update(r, op);
			ops++;
			json_decref(ring[rhead]);
			ring[rhead] = r;
			rhead = (rhead + 1) % RECENT;
			if (rkept < RECENT)
				rkept++;
		}
		json_decref(ev);
		ctl_progress(c, "inspect: %lld commits read", (long long)commits);
	}
	ctl_progress_end(c);
	if (f && !rc && ferror(f))
		rc = ctl_fail(errno, "cannot read the events of agent '%s'", agent);
	if (rc)
		goto out;
	if (!commits && !keys.n && !ctl_agent_known(c, agent)) {
		rc = ctl_no_agent(c, agent);
		goto out;
	}
	recent = json_array();
	for (size_t i = 0; i < rkept; i++)
		json_array_append(recent, ring[(rhead + RECENT - rkept + i) % RECENT]);
	inspect_print(c, agent, head_ts, keys.n, commits, ops, first, last, recent);
	json_decref(recent);
	rc = ctl_finish_stdout(CTL_EXIT_OK);
out:
	if (f)
		fclose(f);
	for (size_t i = 0; i < RECENT; i++)
		json_decref(ring[i]);
	json_decref(first);
	json_decref(last);
	ctl_list_free(&keys);
	free(root);
	free(line);
	return rc;
}
