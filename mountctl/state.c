/* SPDX-License-Identifier: MIT */
/*
 * state.c - statehousectl's state commands over the mount: health, version, get, put,
 * rm, keys, agents, history and dump (mountctl/, the command-line layer).  Every one is a few file operations on MNT; statehouse(5) is the
 * interface they follow.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "config.h"
#include "version.h"
#include "ctl.h"

char *ctl_mpath(const struct ctl *c, const char *fmt, ...)
{
	va_list ap;
	char *rel, *p;

	va_start(ap, fmt);
	rel = ctl_xvasprintf(fmt, ap);
	va_end(ap);
	p = ctl_xasprintf("%s/%s", c->mnt, rel);
	free(rel);
	return p;
}

bool ctl_agent_known(const struct ctl *c, const char *agent)
{
	char *dir = ctl_mpath(c, ".events/.ns/%s", c->ns), *want = ctl_xasprintf("%s.jsonl", agent);
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;

	while (d && !found && (e = readdir(d)))
		found = !strcmp(e->d_name, want);
	if (d)
		closedir(d);
	free(dir);
	free(want);
	return found;
}

int ctl_no_agent(const struct ctl *c, const char *agent)
{
	ctl_err("no agent '%s' in namespace '%s'", agent, c->ns);
	return CTL_EXIT_FAIL;
}

int ctl_check_ns_agent(const struct ctl *c, const char *agent)
{
	const char *why = ctl_check_name(c->ns);

	if (why)
		return ctl_usage(c, "invalid namespace '%s': %s", c->ns, why);
	why = ctl_check_name(agent);
	if (why)
		return ctl_usage(c, "invalid agent '%s': %s", agent, why);
	return 0;
}

/* Usage checks of AGENT KEY, then the mount; 0 or an exit code. */
static int check_agent_key(struct ctl *c, const char *agent, const char *key)
{
	int rc = ctl_check_ns_agent(c, agent);
	const char *why;

	if (rc)
		return rc;
	why = ctl_check_key(key);
	if (why)
		return ctl_usage(c, "invalid key '%s': %s", key, why);
	return ctl_select_mount(c);
}

int ctl_head_ts(const struct ctl *c, int64_t *out)
{
	json_t *s;
	int err = ctl_status_read(c->mnt, &s);

	if (err)
		return ctl_fail(-err, "cannot read '%s/.status'", c->mnt);
	*out = ctl_json_int(s, "head_commit_ts", -1);
	json_decref(s);
	if (*out < 0) {
		ctl_err("cannot read '%s/.status': it has no head_commit_ts", c->mnt);
		return CTL_EXIT_FAIL;
	}
	return 0;
}

/* A failed operation on a key, said the way a user thinks of it. */
static int key_error(const struct ctl *c, int err, const char *verb, const char *agent,
		     const char *key)
{
	if (err == ENOENT) {
		if (!ctl_agent_known(c, agent))
			return ctl_no_agent(c, agent);
		ctl_err("no key '%s' for agent '%s' in namespace '%s'", key, agent, c->ns);
		return CTL_EXIT_FAIL;
	}
	if (err == EISDIR)
		return ctl_fail(err, "cannot %s key '%s' of agent '%s': it is a prefix of other keys",
				verb, key, agent);
	if (err == ENOTDIR)
		return ctl_fail(err, "cannot %s key '%s' of agent '%s': a prefix of it is a key",
				verb, key, agent);
	return ctl_fail(err, "cannot %s key '%s' of agent '%s'", verb, key, agent);
}

int ctl_simple_args(struct ctl *c, int argc, char **argv, int min, int max)
{
	int opt, stop, n;

	while ((opt = ctl_getopt(c, argc, argv, "", NULL, &stop)) != -1)
		if (opt == -2)
			return stop;
	n = argc - optind;
	if (n < min)
		return ctl_usage(c, "missing arguments");
	if (n > max)
		return ctl_usage(c, "too many arguments");
	return -1;
}

/* The AGENT KEY [...] arguments of history (put and rm: ctl_cond_args()), checked: -1 to go
 * on, else the exit status. */
static int agent_key_args(struct ctl *c, int argc, char **argv, int max, const char **agent,
			  const char **key)
{
	int rc = ctl_simple_args(c, argc, argv, 2, max);

	if (rc >= 0)
		return rc;
	*agent = argv[optind];
	*key = argv[optind + 1];
	rc = check_agent_key(c, *agent, *key);
	return rc ? rc : -1;
}

/* --- health, version ---------------------------------------------------------------- */

int ctl_cmd_health(struct ctl *c, int argc, char **argv)
{
	struct strbuf b = { 0 };
	char *path;
	int rc = ctl_simple_args(c, argc, argv, 0, 0), err;
	bool ok;

	if (rc >= 0 || (rc = ctl_select_mount(c)))
		return rc;
	path = ctl_mpath(c, ".health");
	err = ctl_read_path(path, &b);
	if (err) {
		rc = ctl_fail(-err, "cannot read '%s'", path);
		/* EIO: the daemon answers, but its store does not */
		if (err == -EIO)
			rc = CTL_EXIT_MOUNT;
		goto out;
	}
	while (b.len && (b.buf[b.len - 1] == '\n' || b.buf[b.len - 1] == '\r'))
		b.buf[--b.len] = '\0';
	ok = !strcmp(b.buf, "ok");
	if (c->json) {
		json_t *j = json_pack("{s:s,s:s%}", "mountpoint", c->mnt, "health", b.buf, b.len);

		ctl_print_json(j, false);
		json_decref(j);
	} else {
		printf("%s%s%s\n", ctl_col(c, ok ? CTL_GREEN : CTL_RED), b.buf, ctl_col(c, CTL_RESET));
	}
	rc = ctl_finish_stdout(ok ? CTL_EXIT_OK : CTL_EXIT_MOUNT);
out:
	free(path);
	strbuf_release(&b);
	return rc;
}

int ctl_cmd_version(struct ctl *c, int argc, char **argv)
{
	struct strbuf b = { 0 };
	json_error_t e;
	json_t *v = NULL;
	char *path;
	int rc = ctl_simple_args(c, argc, argv, 0, 0), err;

	if (rc >= 0 || (rc = ctl_select_mount(c)))
		return rc;
	path = ctl_mpath(c, ".version");
	err = ctl_read_path(path, &b);
	if (!err) {
		v = json_loadb(b.buf, b.len, 0, &e);
		if (!json_is_object(v))
			err = -EINVAL;
	}
	if (err) {
		rc = ctl_fail(-err, "cannot read '%s'", path);
		goto out;
	}
	if (c->json) {
		json_t *j = json_pack("{s:s,s:s,s:O}", "statehousectl", STATEHOUSE_VERSION,
				      "git_sha", STATEHOUSE_GIT_SHA, "daemon", v);

		ctl_print_json(j, false);
		json_decref(j);
	} else {
		printf("statehousectl %s (git %s)\n"
		       "statehoused %s (git %s, schema %lld, sqlite %s, libfuse %s)\n",
		       STATEHOUSE_VERSION, STATEHOUSE_GIT_SHA, ctl_json_str(v, "version", "?"),
		       ctl_json_str(v, "git_sha", "?"),
		       (long long)ctl_json_int(v, "schema", 0), ctl_json_str(v, "sqlite", "?"),
		       ctl_json_str(v, "libfuse", "?"));
	}
	rc = ctl_finish_stdout(CTL_EXIT_OK);
out:
	json_decref(v);
	free(path);
	strbuf_release(&b);
	return rc;
}

/* --- get, put, rm ------------------------------------------------------------------- */

static int64_t xattr_int(int fd, const char *name)
{
	char v[32];
	ssize_t n = fgetxattr(fd, name, v, sizeof(v) - 1);

	if (n <= 0)
		return -1;
	v[n] = '\0';
	return strtoll(v, NULL, 10);
}

/* get's options (--pretty, and --json-output: the original CLI's --json) and AGENT KEY:
 * -1 to go on, else the exit status. */
static int get_args(struct ctl *c, int argc, char **argv, bool *pretty, const char **agent,
		    const char **key)
{
	enum { OPT_PRETTY = 2000, OPT_JSON_OUTPUT };
	static const struct option lo[] = { { "pretty", no_argument, NULL, OPT_PRETTY },
					    { "json-output", no_argument, NULL, OPT_JSON_OUTPUT },
					    { 0 } };
	int opt, stop, rc;

	while ((opt = ctl_getopt(c, argc, argv, "", lo, &stop)) != -1) {
		if (opt == -2)
			return stop;
		if (opt == OPT_PRETTY)
			*pretty = true;
		else
			c->json = true;
	}
	if (*pretty && c->json)
		return ctl_usage(c, "--pretty and --json ask for two different outputs: choose one");
	if (argc - optind != 2)
		return ctl_usage(c, argc - optind < 2 ? "missing arguments" : "too many arguments");
	*agent = argv[optind];
	*key = argv[optind + 1];
	rc = check_agent_key(c, *agent, *key);
	return rc ? rc : -1;
}

/* get --pretty: the key, its version and commit_ts, and a one-line summary of the value. */
static void get_print_pretty(const struct ctl *c, const char *agent, const char *key, int fd,
			     const struct strbuf *b)
{
	json_t *v = ctl_value_json(b->buf, b->len);
	char *summary = ctl_summary_of(v, b->len, 200);

	printf("%-10s %s%s%s\n", "key", ctl_col(c, CTL_BOLD), key, ctl_col(c, CTL_RESET));
	printf("%-10s %s/%s\n", "agent", c->ns, agent);
	printf("%-10s %lld\n", "version", (long long)xattr_int(fd, "user.statehouse.version"));
	printf("%-10s %lld\n", "commit_ts", (long long)xattr_int(fd, "user.statehouse.commit_ts"));
	printf("%-10s %s\n", "value", summary);
	free(summary);
	json_decref(v);
}

int ctl_cmd_get(struct ctl *c, int argc, char **argv)
{
	struct strbuf b = { 0 };
	const char *agent = NULL, *key = NULL;
	char *path;
	bool pretty = false;
	int rc = get_args(c, argc, argv, &pretty, &agent, &key), fd, err;

	if (rc >= 0)
		return rc;
	path = ctl_mpath(c, "%s/%s/%s", c->ns, agent, key);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = key_error(c, errno, "read", agent, key);
		goto out;
	}
	err = ctl_read_fd(fd, &b);
	if (err) {
		rc = key_error(c, -err, "read", agent, key);
		close(fd);
		goto out;
	}
	if (c->json) {
		json_t *v = ctl_value_json(b.buf, b.len);
		json_t *j = json_object();

		ctl_json_set_name(j, "namespace", c->ns);
		ctl_json_set_name(j, "agent", agent);
		ctl_json_set_name(j, "key", key);
		json_object_set_new(j, "version",
				    json_integer(xattr_int(fd, "user.statehouse.version")));
		json_object_set_new(j, "commit_ts",
				    json_integer(xattr_int(fd, "user.statehouse.commit_ts")));

		if (v)
			json_object_set_new(j, "value", v);
		else
			json_object_set_new(j, "value_base64",
					    ctl_base64_json(b.buf, b.len));
		ctl_print_json(j, false);
		json_decref(j);
	} else if (pretty) {
		get_print_pretty(c, agent, key, fd, &b);
	} else {
		fwrite(b.buf, 1, b.len, stdout);
	}
	close(fd);
	rc = ctl_finish_stdout(CTL_EXIT_OK);
out:
	free(path);
	strbuf_release(&b);
	return rc;
}

/* mkdir -p of the directories a key with '/' lives in (each one made is a commit of its
 * own, and stays until rmdir). */
static int make_key_dirs(const char *path, size_t base_len)
{
	char *p = ctl_xstrdup(path);
	int err = 0;

	for (char *s = p + base_len; (s = strchr(s, '/')); s++) {
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			err = -errno;
			break;
		}
		*s = '/';
	}
	free(p);
	return err;
}

int ctl_cmd_put(struct ctl *c, int argc, char **argv)
{
	struct strbuf value = { 0 };
	const char *agent, *key;
	char *path = NULL, *expect = NULL;
	int rc = ctl_cond_args(c, argc, argv, 3, true, &agent, &key, &expect), fd, err;

	if (rc >= 0)
		return rc;
	/* The whole value first: a failed read of stdin must not commit half a value. */
	if (argc - optind == 3 && strcmp(argv[optind + 2], "-")) {
		ctl_buf_addstr(&value, argv[optind + 2]);
	} else {
		err = ctl_read_fd(STDIN_FILENO, &value);
		if (err) {
			strbuf_release(&value);
			return ctl_fail(-err, "cannot read the value from standard input");
		}
	}
	if (expect) {
		rc = ctl_cond_commit(c, agent, key, &value, expect);
		goto out;
	}
	path = ctl_mpath(c, "%s/%s/%s", c->ns, agent, key);
	err = make_key_dirs(path, strlen(path) - strlen(key));
	if (err) {
		rc = key_error(c, -err, "write", agent, key);
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = key_error(c, errno, "write", agent, key);
		goto out;
	}
	err = ctl_write_all(fd, value.buf, value.len);
	/* The commit happens at close, and so does its error. */
	if (close(fd) != 0 && !err)
		err = -errno;
	rc = err ? key_error(c, -err, "write", agent, key) : CTL_EXIT_OK;
out:
	free(expect);
	free(path);
	strbuf_release(&value);
	return rc;
}

int ctl_cmd_rm(struct ctl *c, int argc, char **argv)
{
	const char *agent, *key;
	char *path, *expect = NULL;
	int rc = ctl_cond_args(c, argc, argv, 2, false, &agent, &key, &expect);

	if (rc >= 0)
		return rc;
	if (expect) {
		rc = ctl_cond_commit(c, agent, key, NULL, expect);
		free(expect);
		return rc;
	}
	path = ctl_mpath(c, "%s/%s/%s", c->ns, agent, key);
	rc = unlink(path) == 0 ? CTL_EXIT_OK : key_error(c, errno, "delete", agent, key);
	free(path);
	return rc;
}

/* --- keys, agents ------------------------------------------------------------------- */

void ctl_list_add(struct ctl_list *l, char *s)
{
	CTL_GROW(l->v, l->n + 1, l->cap);
	l->v[l->n++] = s;
}

void ctl_list_free(struct ctl_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether a directory rel/ can hold keys that begin with prefix. */
static bool may_match(const char *rel, const char *prefix)
{
	size_t r = strlen(rel), p = strlen(prefix);

	return !strncmp(rel, prefix, r < p ? r : p);
}

/* Every key below dirfd (relative names prefixed by rel) that begins with prefix. */
static int walk(int dirfd, const char *rel, const char *prefix, struct ctl_list *out)
{
	DIR *d = fdopendir(dirfd);
	struct dirent *e;
	int err = 0;

	if (!d) {
		err = -errno;
		close(dirfd);
		return err;
	}
	errno = 0;
	while ((e = readdir(d))) {
		char *name;
		bool dir;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		name = ctl_xasprintf("%s%s", rel, e->d_name);
		dir = e->d_type == DT_DIR;
		if (e->d_type == DT_UNKNOWN) {
			struct stat st;

			dir = fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			      S_ISDIR(st.st_mode);
		}
		if (dir) {
			char *sub = ctl_xasprintf("%s/", name);
			int fd = may_match(sub, prefix) ? openat(dirfd, e->d_name,
								 O_RDONLY | O_DIRECTORY | O_CLOEXEC)
							: -2;

			free(name);
			if (fd == -1 && errno != ENOENT) { /* ENOENT: its last key just went */
				err = -errno;
				free(sub);
				break;
			}
			if (fd >= 0)
				err = walk(fd, sub, prefix, out);
			free(sub);
			if (err)
				break;
		} else if (!strncmp(name, prefix, strlen(prefix))) {
			ctl_list_add(out, name);
		} else {
			free(name);
		}
		errno = 0;
	}
	if (!err && errno)
		err = -errno;
	closedir(d);
	return err;
}

int ctl_list_keys(const char *root, const char *prefix, struct ctl_list *out)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	err = walk(fd, "", prefix, out);
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_str);
	return err;
}

static void print_list(const struct ctl *c, struct ctl_list *l)
{
	if (c->json) {
		json_t *a = json_array();

		for (size_t i = 0; i < l->n; i++)
			json_array_append_new(a, ctl_name_json(l->v[i]));
		ctl_print_json(a, false);
		json_decref(a);
		return;
	}
	for (size_t i = 0; i < l->n; i++)
		printf("%s\n", l->v[i]);
}

int ctl_cmd_keys(struct ctl *c, int argc, char **argv)
{
	static const struct option lo[] = { { "prefix", required_argument, NULL, 'p' }, { 0 } };
	struct ctl_list keys = { 0 };
	const char *prefix = "", *agent;
	char *root;
	int opt, stop, rc, err;

	while ((opt = ctl_getopt(c, argc, argv, "", lo, &stop)) != -1) {
		if (opt == -2)
			return stop;
		prefix = optarg;
	}
	if (argc - optind != 1)
		return ctl_usage(c, argc - optind ? "too many arguments" : "missing AGENT");
	agent = argv[optind];
	rc = ctl_check_ns_agent(c, agent);
	if (rc || (rc = ctl_select_mount(c)))
		return rc;
	root = ctl_mpath(c, "%s/%s", c->ns, agent);
	err = ctl_list_keys(root, prefix, &keys);
	if (err)
		rc = ctl_fail(-err, "cannot list the keys of agent '%s'", agent);
	else if (!keys.n && !ctl_agent_known(c, agent))
		rc = ctl_no_agent(c, agent);
	else {
		print_list(c, &keys);
		rc = ctl_finish_stdout(CTL_EXIT_OK);
	}
	ctl_list_free(&keys);
	free(root);
	return rc;
}

int ctl_cmd_agents(struct ctl *c, int argc, char **argv)
{
	struct ctl_list agents = { 0 };
	struct dirent *e;
	const char *why;
	char *dir;
	DIR *d;
	int rc = ctl_simple_args(c, argc, argv, 0, 0);

	if (rc >= 0)
		return rc;
	why = ctl_check_name(c->ns);
	if (why)
		return ctl_usage(c, "invalid namespace '%s': %s", c->ns, why);
	if ((rc = ctl_select_mount(c)))
		return rc;
	dir = ctl_mpath(c, "%s", c->ns);
	d = opendir(dir);
	if (!d) {
		rc = ctl_fail(errno, "cannot list '%s'", dir);
		free(dir);
		return rc;
	}
	errno = 0;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			ctl_list_add(&agents, ctl_xstrdup(e->d_name));
	rc = errno ? ctl_fail(errno, "cannot list '%s'", dir) : CTL_EXIT_OK;
	closedir(d);
	if (!rc) {
		if (agents.n)
			qsort(agents.v, agents.n, sizeof(*agents.v), cmp_str);
		print_list(c, &agents);
		rc = ctl_finish_stdout(CTL_EXIT_OK);
	}
	ctl_list_free(&agents);
	free(dir);
	return rc;
}

/* --- history ------------------------------------------------------------------------ */

/* The summary of version ver of a key whose history directory is dir.  Caller frees. */
static char *history_summary(const char *dir, int64_t ver, bool del)
{
	struct strbuf val = { 0 };
	char *vp, *summary;
	int err;

	if (del)
		return ctl_xstrdup("(deleted)");
	vp = ctl_xasprintf("%s/%lld", dir, (long long)ver);
	err = ctl_read_path(vp, &val);
	if (err) {
		summary = ctl_xasprintf("(cannot read: %s)", strerror(-err));
	} else {
		json_t *jv = ctl_value_json(val.buf, val.len);

		summary = ctl_summary_of(jv, val.len, 50);
		json_decref(jv);
	}
	strbuf_release(&val);
	free(vp);
	return summary;
}

/* One entry of a key's index.jsonl for humans. */
static void history_print_human(const struct ctl *c, const char *dir, json_t *v)
{
	bool del = !strcmp(ctl_json_str(v, "op", ""), "delete");
	int64_t ver = ctl_json_int(v, "version", 0);
	char *summary = history_summary(dir, ver, del), *txn = ctl_json_name(v, "txn");

	printf("v%-4lld %s%s%s  #%-6lld %s%-6s%s %6lld B  txn %-12s %s\n", (long long)ver,
	       ctl_col(c, CTL_DIM), ctl_short_time(ctl_json_str(v, "time", "?")),
	       ctl_col(c, CTL_RESET), (long long)ctl_json_int(v, "commit_ts", 0),
	       ctl_col(c, del ? CTL_RED : CTL_GREEN), ctl_json_str(v, "op", "?"),
	       ctl_col(c, CTL_RESET), (long long)ctl_json_int(v, "size", 0), txn ? txn : "?",
	       summary);
	free(txn);
	free(summary);
}

/* Why the index of a key could not be opened (errno): no agent, no key, or errno. */
static int history_open_error(const struct ctl *c, const char *agent, const char *key,
			      const char *path)
{
	if (errno == ENOENT && !ctl_agent_known(c, agent))
		return ctl_no_agent(c, agent);
	if (errno == ENOENT) {
		ctl_err("no key '%s' ever for agent '%s' in namespace '%s'", key, agent, c->ns);
		return CTL_EXIT_FAIL;
	}
	return ctl_fail(errno, "cannot read '%s'", path);
}

/* Print every entry of the index f (at path, in dir).  0 or an exit code. */
static int history_print(const struct ctl *c, FILE *f, const char *dir, const char *path)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = CTL_EXIT_OK;

	while ((len = getline(&line, &cap, f)) > 0) {
		json_error_t e;
		json_t *v;

		if (c->json) {
			ctl_echo_line(line, len);
			continue;
		}
		v = json_loads(line, 0, &e);
		if (!json_is_object(v)) {
			json_decref(v);
			ctl_err("cannot parse a line of '%s': %s", path, e.text);
			rc = CTL_EXIT_FAIL;
			break;
		}
		history_print_human(c, dir, v);
		json_decref(v);
	}
	if (!rc && ferror(f))
		rc = ctl_fail(errno, "cannot read '%s'", path);
	free(line);
	return rc;
}

int ctl_cmd_history(struct ctl *c, int argc, char **argv)
{
	const char *agent, *key;
	char *ekey, *dir, *path;
	FILE *f;
	int rc = agent_key_args(c, argc, argv, 2, &agent, &key);

	if (rc >= 0)
		return rc;
	ekey = ctl_encode_key(key);
	dir = ctl_mpath(c, ".history/%s/%s/%s", c->ns, agent, ekey);
	path = ctl_xasprintf("%s/index.jsonl", dir);
	f = fopen(path, "re");
	if (!f) {
		rc = history_open_error(c, agent, key, path);
	} else {
		rc = history_print(c, f, dir, path);
		fclose(f);
		if (!rc)
			rc = ctl_finish_stdout(CTL_EXIT_OK);
	}
	free(path);
	free(dir);
	free(ekey);
	return rc;
}

/* --- dump --------------------------------------------------------------------------- */

int ctl_keys_at(const struct ctl *c, const char *agent, int64_t ts, char **root,
		struct ctl_list *keys)
{
	int err;

	*root = ctl_mpath(c, ".at/%lld/%s/%s", (long long)ts, c->ns, agent);
	err = ctl_list_keys(*root, "", keys);
	return err ? ctl_fail(-err, "cannot list '%s'", *root) : 0;
}

/* dump's options and arguments, the mount and the head: -1 to go on, else the exit
 * status. */
static int dump_args(struct ctl *c, int argc, char **argv, const char **out, bool *text,
		     int64_t *ts)
{
	enum { OPT_FORMAT = 2000 };
	static const struct option lo[] = { { "output", required_argument, NULL, 'o' },
					    { "format", required_argument, NULL, OPT_FORMAT },
					    { 0 } };
	int opt, stop, rc;

	while ((opt = ctl_getopt(c, argc, argv, "o:", lo, &stop)) != -1) {
		if (opt == -2)
			return stop;
		if (opt == OPT_FORMAT) {
			if (strcmp(optarg, "json") && strcmp(optarg, "text"))
				return ctl_usage(c, "unknown --format '%s' (json or text)", optarg);
			*text = !strcmp(optarg, "text");
			continue;
		}
		if (!*optarg)
			return ctl_usage(c, "option '-o' needs a file");
		*out = optarg;
	}
	if (*text && c->json)
		return ctl_usage(c, "--format text and --json ask for two different outputs: choose one");
	if (argc - optind != 1)
		return ctl_usage(c, argc - optind ? "too many arguments" : "missing AGENT");
	rc = ctl_check_ns_agent(c, argv[optind]);
	if (rc || (rc = ctl_select_mount(c)) || (rc = ctl_head_ts(c, ts)))
		return rc;
	return -1;
}

/* Read every key below root into doc: "keys" for JSON and UTF-8 values, "keys_base64"
 * (only when there is one) for the others; a key whose name is not UTF-8 (no JSON member
 * name) goes to "other_keys" as {"key_base64", "value" or "value_base64"}.  With text
 * (--format text), also one line per key there: the key, a tab, the value as compact JSON
 * (text as a JSON string), or its size when it is not UTF-8.  0 or an exit code. */
static int dump_values(const struct ctl *c, const char *root, const struct ctl_list *keys,
		       int64_t ts, json_t *doc, struct strbuf *text)
{
	json_t *kv = json_object_get(doc, "keys"), *kb = json_object(), *other = json_array();

	for (size_t i = 0; i < keys->n; i++) {
		struct strbuf val = { 0 };
		char *p = ctl_xasprintf("%s/%s", root, keys->v[i]);
		json_t *v, *name;
		int err;

		ctl_progress(c, "dump: %zu of %zu keys", i, keys->n);
		err = ctl_read_path(p, &val);
		free(p);
		if (err) {
			ctl_progress_end(c);
			strbuf_release(&val);
			json_decref(kb);
			json_decref(other);
			return ctl_fail(-err, "cannot read key '%s' as of commit_ts %lld",
					keys->v[i], (long long)ts);
		}
		v = ctl_value_json(val.buf, val.len);
		if (text) {
			char *shown = ctl_summary_of(v, val.len, INT_MAX);

			ctl_buf_addstr(text, keys->v[i]);
			ctl_buf_addstr(text, "\t");
			ctl_buf_addstr(text, shown);
			ctl_buf_addstr(text, "\n");
			free(shown);
		}
		name = json_string(keys->v[i]); /* NULL unless UTF-8 */
		json_decref(name);
		if (!name) {
			json_t *o = json_object();

			ctl_json_set_name(o, "key", keys->v[i]);
			json_object_set_new(o, v ? "value" : "value_base64",
					    v ? v : ctl_base64_json(val.buf, val.len));
			json_array_append_new(other, o);
		} else if (v) {
			json_object_set_new(kv, keys->v[i], v);
		} else {
			json_object_set_new(kb, keys->v[i], ctl_base64_json(val.buf, val.len));
		}
		strbuf_release(&val);
	}
	ctl_progress_end(c);
	if (json_object_size(kb))
		json_object_set_new(doc, "keys_base64", kb);
	else
		json_decref(kb);
	if (json_array_size(other))
		json_object_set_new(doc, "other_keys", other);
	else
		json_decref(other);
	return 0;
}

/* Write the dump (the text of --format text when there is one, else doc) to the file
 * out (atomically), or print it when out is NULL. */
static int dump_write(const struct ctl *c, json_t *doc, const struct strbuf *shown,
		      const char *out)
{
	size_t flags = JSON_ENCODE_ANY | (c->json ? JSON_COMPACT : JSON_INDENT(2));
	char *text, *withnl;
	int err;

	if (shown) {
		if (!out) {
			fwrite(shown->buf, 1, shown->len, stdout);
			return ctl_finish_stdout(CTL_EXIT_OK);
		}
		err = ctl_write_atomic(out, shown->buf, shown->len, 0666);
		return err ? ctl_fail(-err, "cannot write '%s'", out) : CTL_EXIT_OK;
	}
	if (!out) {
		ctl_print_json(doc, !c->json);
		return ctl_finish_stdout(CTL_EXIT_OK);
	}
	text = json_dumps(doc, flags);
	if (!text) {
		ctl_err("cannot encode the dump as JSON");
		return CTL_EXIT_FAIL;
	}
	withnl = ctl_xasprintf("%s\n", text);
	free(text);
	err = ctl_write_atomic(out, withnl, strlen(withnl), 0666);
	free(withnl);
	return err ? ctl_fail(-err, "cannot write '%s'", out) : CTL_EXIT_OK;
}

int ctl_cmd_dump(struct ctl *c, int argc, char **argv)
{
	struct ctl_list keys = { 0 };
	struct strbuf text = { 0 };
	const char *agent, *out = NULL;
	json_t *doc = NULL;
	int64_t ts;
	char *root = NULL;
	bool as_text = false;
	int rc = dump_args(c, argc, argv, &out, &as_text, &ts);

	if (rc >= 0)
		return rc;
	agent = argv[optind];
	/* One commit_ts for every key: .at/<head> never changes, whatever commits meanwhile. */
	if (ts > 0 && (rc = ctl_keys_at(c, agent, ts, &root, &keys)))
		goto out;
	if (!keys.n && !ctl_agent_known(c, agent)) {
		rc = ctl_no_agent(c, agent);
		goto out;
	}
	doc = json_pack("{s:I}", "commit_ts", (json_int_t)ts);
	ctl_json_set_name(doc, "namespace", c->ns);
	ctl_json_set_name(doc, "agent", agent);
	json_object_set_new(doc, "keys", json_object());
	if (as_text) {
		char *head = ctl_xasprintf("# %s/%s as of commit_ts %lld: %zu keys\n", c->ns, agent,
					   (long long)ts, keys.n);

		ctl_buf_addstr(&text, head);
		free(head);
	}
	rc = dump_values(c, root, &keys, ts, doc, as_text ? &text : NULL);
	if (!rc)
		rc = dump_write(c, doc, as_text ? &text : NULL, out);
out:
	strbuf_release(&text);
	json_decref(doc);
	ctl_list_free(&keys);
	free(root);
	return rc;
}
