/* SPDX-License-Identifier: MIT */
/*
 * cond.c - statehousectl's conditional writes: put --if-version N / --if-absent and
 * rm --if-version N (mountctl/, the command-line layer).  Each is a transaction of its
 * own: the precondition goes to .tx/NAME/.expect/<ns>/<agent>/<key>, the write or the
 * delete below .tx/NAME, and the rename onto .commit checks both at one commit
 * (statehouse(5), PRECONDITIONS).  When the precondition does not hold the exit status
 * is CTL_EXIT_PRECONDITION; when another writer only raced the transaction (a write
 * conflict on the key while the precondition still held) it is tried again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define COND_TRIES 8 /* transactions begun before a racing writer counts as a failure */

int ctl_cond_args(struct ctl *c, int argc, char **argv, int max, bool is_put,
		  const char **agent, const char **key, char **expect)
{
	enum { OPT_IF_VERSION = 3000, OPT_IF_ABSENT };
	static const struct option lo_put[] = {
		{ "if-version", required_argument, NULL, OPT_IF_VERSION },
		{ "if-absent", no_argument, NULL, OPT_IF_ABSENT },
		{ 0 }
	};
	const struct option *lo = lo_put;
	const char *why;
	int64_t v;
	int opt, stop, n, rc;

	*expect = NULL;
	if (!is_put) {
		static const struct option lo_rm[] = {
			{ "if-version", required_argument, NULL, OPT_IF_VERSION }, { 0 }
		};

		lo = lo_rm;
	}
	while ((opt = ctl_getopt(c, argc, argv, "", lo, &stop)) != -1) {
		if (opt == -2) {
			free(*expect);
			*expect = NULL;
			return stop;
		}
		if (*expect) {
			free(*expect);
			*expect = NULL;
			return ctl_usage(c, "give one of --if-version and --if-absent, once");
		}
		if (opt == OPT_IF_ABSENT) {
			*expect = ctl_xstrdup("absent");
			continue;
		}
		if (!ctl_parse_count(optarg, &v) || (!is_put && v == 0))
			return ctl_usage(c, "malformed --if-version '%s' (a version, %s)", optarg,
					 is_put ? "0 for an absent key" : "1 or more");
		*expect = ctl_xasprintf("%lld", (long long)v);
	}
	n = argc - optind;
	rc = n < 2 ? ctl_usage(c, "missing arguments")
		   : n > max ? ctl_usage(c, "too many arguments") : -1;
	if (rc < 0) {
		*agent = argv[optind];
		*key = argv[optind + 1];
		rc = ctl_check_ns_agent(c, *agent);
		why = rc ? NULL : ctl_check_key(*key);
		if (why)
			rc = ctl_usage(c, "invalid key '%s': %s", *key, why);
		if (!rc)
			rc = ctl_select_mount(c);
		if (!rc)
			rc = -1;
	}
	if (rc >= 0) {
		free(*expect);
		*expect = NULL;
	}
	return rc;
}

/* mkdir -p of the directories below base that path (base + '/' + rest) lives in. */
static int make_dirs(const char *path, size_t base_len)
{
	char *p = ctl_xstrdup(path);
	int err = 0;

	for (char *s = p + base_len + 1; (s = strchr(s, '/')); s++) {
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

/* Write content into the new or existing file path; 0 or -errno (close's included). */
static int write_file(const char *path, const void *content, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), err;

	if (fd < 0)
		return -errno;
	err = ctl_write_all(fd, content, n);
	if (close(fd) != 0 && !err)
		err = -errno;
	return err;
}

/* One attempt's outcome. */
enum attempt { A_DONE, A_PRECONDITION, A_RACED, A_FAILED };

/* Why the commit of the transaction in dir failed with ESTALE: its .status's conflict. */
static enum attempt stale_reason(const char *dir)
{
	struct strbuf b = { 0 };
	char *sp = ctl_xasprintf("%s/.status", dir);
	json_t *s = NULL;
	enum attempt a = A_RACED;

	if (ctl_read_path(sp, &b) == 0)
		s = json_loadb(b.buf, b.len, 0, NULL);
	if (!strcmp(ctl_json_str(s, "conflict", ""), "precondition"))
		a = A_PRECONDITION;
	json_decref(s);
	strbuf_release(&b);
	free(sp);
	return a;
}

/* A new transaction directory of a name of our own; caller frees.  NULL (after a
 * message, *rc set) when it cannot be made. */
static char *cond_begin(const struct ctl *c, int *rc)
{
	for (int i = 0; i < COND_TRIES; i++) {
		unsigned int rnd = 0;
		char *dir;

		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (unsigned int)clock() ^ (unsigned int)i;
		dir = ctl_mpath(c, ".tx/ctl-cond-%ld-%08x", (long)getpid(), rnd);
		if (mkdir(dir, 0700) == 0)
			return dir;
		if (errno != EEXIST) {
			*rc = ctl_fail(errno, "cannot begin a transaction");
			free(dir);
			return NULL;
		}
		free(dir);
	}
	*rc = ctl_fail(EEXIST, "cannot begin a transaction");
	return NULL;
}

/* Stage the precondition and the write (value) or delete (value NULL) in dir and
 * commit.  *err gets the errno of a failure; what is being done goes to *what. */
static enum attempt cond_attempt(const struct ctl *c, const char *dir, const char *agent,
				 const char *key, const struct strbuf *value,
				 const char *expect, int *err, const char **what)
{
	char *xp = ctl_xasprintf("%s/.expect/%s/%s/%s", dir, c->ns, agent, key);
	char *kp = ctl_xasprintf("%s/%s/%s/%s", dir, c->ns, agent, key);
	char *pending = ctl_xasprintf("%s/.commit.pending", dir);
	char *commit = ctl_xasprintf("%s/.commit", dir);
	size_t base = strlen(kp) - strlen(key) - 1;
	size_t xbase = strlen(xp) - strlen(key) - 1;
	enum attempt a = A_FAILED;

	*what = "stage the precondition";
	*err = make_dirs(xp, xbase);
	if (!*err)
		*err = write_file(xp, expect, strlen(expect));
	if (!*err && value) {
		*what = "stage the write";
		*err = make_dirs(kp, base);
		if (!*err)
			*err = write_file(kp, value->buf, value->len);
	} else if (!*err) {
		*what = "stage the delete";
		*err = unlink(kp) == 0 ? 0 : -errno;
		if (*err == -ENOENT)
			a = A_PRECONDITION; /* no key to be at a version */
	}
	if (!*err) {
		*what = "commit";
		if (rename(pending, commit) == 0)
			a = A_DONE;
		else if ((*err = -errno) == -ESTALE)
			a = stale_reason(dir);
	}
	free(commit);
	free(pending);
	free(kp);
	free(xp);
	return a;
}

/* What the key is now, for the message: "at version N", "absent". */
static char *key_now(const struct ctl *c, const char *agent, const char *key)
{
	char *p = ctl_mpath(c, "%s/%s/%s", c->ns, agent, key), v[32];
	ssize_t n = getxattr(p, "user.statehouse.version", v, sizeof(v) - 1);
	int err = errno;

	free(p);
	if (n > 0) {
		v[n] = '\0';
		return ctl_xasprintf("it is at version %s", v);
	}
	return ctl_xstrdup(err == ENOENT || err == ENOTDIR || err == EISDIR || err == ENODATA
				   ? "it does not exist"
				   : "its version cannot be read");
}

int ctl_cond_commit(const struct ctl *c, const char *agent, const char *key,
		    const struct strbuf *value, const char *expect)
{
	const char *verb = value ? "write" : "delete", *what = "commit";
	bool absent = !strcmp(expect, "absent") || !strcmp(expect, "0");
	int rc = CTL_EXIT_FAIL, err = 0;

	for (int i = 0; i < COND_TRIES; i++) {
		char *dir = cond_begin(c, &rc);
		enum attempt a;

		if (!dir)
			return rc;
		a = cond_attempt(c, dir, agent, key, value, expect, &err, &what);
		if (rmdir(dir) != 0 && a == A_DONE)
			ctl_err("warning: cannot remove '%s' after the commit: %s", dir,
				strerror(errno));
		free(dir);
		if (a == A_DONE)
			return CTL_EXIT_OK;
		if (a == A_PRECONDITION) {
			char *now = key_now(c, agent, key);

			if (absent)
				ctl_err("cannot %s key '%s' of agent '%s': precondition failed: it "
					"exists (--if-absent)", verb, key, agent);
			else
				ctl_err("cannot %s key '%s' of agent '%s': precondition failed: %s, "
					"not version %s", verb, key, agent, now, expect);
			free(now);
			return CTL_EXIT_PRECONDITION;
		}
		if (a == A_FAILED)
			return ctl_fail(-err, "cannot %s key '%s' of agent '%s': cannot %s", verb,
					key, agent, what);
		/* A_RACED: another commit of the key came after this transaction began. */
	}
	return ctl_fail(ESTALE, "cannot %s key '%s' of agent '%s': other writers kept "
			"committing it (%d tries)", verb, key, agent, COND_TRIES);
}
