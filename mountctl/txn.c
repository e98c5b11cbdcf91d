/* SPDX-License-Identifier: MIT */
/*
 * txn.c - statehousectl's transaction commands: txn begin, commit and abort (mountctl/,
 * the command-line layer).  A transaction is a directory MNT/.tx/<name>; commit is the
 * rename of its .commit.pending onto .commit (statehouse(5)).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

/* Write s into the existing file path (a control file of a transaction).  0 or -errno. */
static int write_control(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC), err;

	err = fd < 0 ? -errno : ctl_write_all(fd, s, strlen(s));
	if (fd >= 0 && close(fd) != 0 && !err)
		err = -errno;
	return err;
}

/* txn begin's options and the name, given (checked) or made up from the time, the pid
 * and a random number; then the mount.  -1 to go on (*name set, caller frees), else the
 * exit status. */
static int txn_begin_args(struct ctl *c, int argc, char **argv, const char **timeout,
			  char **name)
{
	static const struct option lo[] = { { "timeout-ms", required_argument, NULL, 't' },
					    { 0 } };
	const char *why;
	int64_t ms;
	int opt, stop, rc;

	while ((opt = ctl_getopt(c, argc, argv, "", lo, &stop)) != -1) {
		if (opt == -2)
			return stop;
		if (!ctl_parse_ts(optarg, &ms) || ms > 86400000)
			return ctl_usage(c, "malformed --timeout-ms '%s' (1..86400000)", optarg);
		*timeout = optarg;
	}
	if (argc - optind > 1)
		return ctl_usage(c, "too many arguments");
	if (argc - optind == 1) {
		why = ctl_check_name(argv[optind]);
		if (why)
			return ctl_usage(c, "invalid transaction name '%s': %s", argv[optind],
					 why);
		*name = ctl_xstrdup(argv[optind]);
	} else {
		char stamp[32];
		unsigned short rnd = 0;
		time_t now = time(NULL);

		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (unsigned short)clock();
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", gmtime(&now));
		*name = ctl_xasprintf("ctl-%s-%ld-%04x", stamp, (long)getpid(), rnd);
	}
	if ((rc = ctl_select_mount(c))) {
		free(*name);
		*name = NULL;
		return rc;
	}
	return -1;
}

/* Create the transaction's directory dir and set its timeout when given.  0 or an exit
 * code. */
static int txn_create(const char *dir, const char *name, const char *timeout)
{
	if (mkdir(dir, 0755) != 0) {
		int err = errno;

		if (err == EEXIST)
			return ctl_fail(err, "cannot begin transaction '%s': the name is taken", name);
		if (err == EAGAIN)
			return ctl_fail(err,
					"cannot begin transaction '%s': too many open transactions",
					name);
		return ctl_fail(err, "cannot begin transaction '%s'", name);
	}
	if (timeout) {
		char *tp = ctl_xasprintf("%s/.timeout_ms", dir);
		int err = write_control(tp, timeout);

		free(tp);
		if (err) {
			int rc = ctl_fail(-err, "cannot set the timeout of transaction '%s'", name);

			rmdir(dir);
			return rc;
		}
	}
	return 0;
}

int ctl_cmd_txn_begin(struct ctl *c, int argc, char **argv)
{
	const char *timeout = NULL;
	char *name = NULL, *dir;
	int rc = txn_begin_args(c, argc, argv, &timeout, &name);

	if (rc >= 0)
		return rc;
	dir = ctl_mpath(c, ".tx/%s", name);
	rc = txn_create(dir, name, timeout);
	if (!rc) {
		if (c->json) {
			json_t *j = json_object();

			ctl_json_set_name(j, "txn", name);
			ctl_json_set_name(j, "path", dir);

			ctl_print_json(j, false);
			json_decref(j);
		} else {
			printf("%s\t%s\n", name, dir);
		}
		rc = ctl_finish_stdout(CTL_EXIT_OK);
	}
	free(dir);
	free(name);
	return rc;
}

/* Usage checks of a transaction NAME and the mount; 0 or an exit code. */
static int check_txn(struct ctl *c, const char *name)
{
	const char *why = ctl_check_name(name);

	if (why)
		return ctl_usage(c, "invalid transaction name '%s': %s", name, why);
	return ctl_select_mount(c);
}

static int no_txn(const char *name)
{
	ctl_err("no transaction '%s'", name);
	return CTL_EXIT_FAIL;
}

/* txn commit's options and NAME, checked, and the mount: -1 to go on, else the exit
 * status. */
static int txn_commit_args(struct ctl *c, int argc, char **argv, const char **note, bool *keep)
{
	enum { OPT_NOTE = 2000, OPT_KEEP };
	static const struct option lo[] = { { "note", required_argument, NULL, OPT_NOTE },
					    { "keep", no_argument, NULL, OPT_KEEP },
					    { 0 } };
	int opt, stop, rc;

	while ((opt = ctl_getopt(c, argc, argv, "", lo, &stop)) != -1) {
		if (opt == -2)
			return stop;
		if (opt == OPT_KEEP)
			*keep = true;
		else
			*note = optarg;
	}
	if (argc - optind != 1)
		return ctl_usage(c, argc - optind ? "too many arguments" : "missing NAME");
	rc = check_txn(c, argv[optind]);
	return rc ? rc : -1;
}

/* The rename onto .commit failed with err: say why, from the transaction's .status when
 * it tells (a conflict on a key, a commit already made).  Returns the exit code. */
static int txn_commit_error(const char *dir, const char *name, int err)
{
	struct strbuf b = { 0 };
	json_t *s = NULL;
	char *sp = ctl_xasprintf("%s/.status", dir), *key;
	int rc;

	if (ctl_read_path(sp, &b) == 0)
		s = json_loadb(b.buf, b.len, 0, NULL);
	free(sp);
	strbuf_release(&b);
	key = ctl_json_name(s, "key");
	if (err == ESTALE && key) {
		ctl_err("cannot commit transaction '%s': conflict: another transaction "
			"committed key '%s' since this one began (%s)",
			name, key, strerror(err));
		rc = CTL_EXIT_FAIL;
	} else if (err == ENOENT && !strcmp(ctl_json_str(s, "state", ""), "committed")) {
		ctl_err("cannot commit transaction '%s': it is already committed (commit_ts "
			"%lld)", name, (long long)ctl_json_int(s, "commit_ts", 0));
		rc = CTL_EXIT_FAIL;
	} else {
		rc = ctl_fail(err, "cannot commit transaction '%s'", name);
	}
	free(key);
	json_decref(s);
	/* A conflict or an expiry is final: the directory is of no more use. */
	if (err == ESTALE || err == ETIMEDOUT)
		rmdir(dir);
	return rc;
}

/* Read the committed transaction's .commit (at commit) into *j, an object (new
 * reference).  0 or an exit code. */
static int txn_commit_read(const char *name, const char *commit, json_t **j)
{
	struct strbuf b = { 0 };
	int err = ctl_read_path(commit, &b);

	if (!err) {
		*j = json_loadb(b.buf, b.len, 0, NULL);
		if (!json_is_object(*j))
			err = -EINVAL;
	}
	strbuf_release(&b);
	if (err)
		return ctl_fail(-err, "committed transaction '%s', but cannot read '%s'", name,
				commit);
	return 0;
}

int ctl_cmd_txn_commit(struct ctl *c, int argc, char **argv)
{
	const char *name, *note = NULL;
	char *dir, *pending, *commit;
	json_t *j = NULL;
	bool keep = false;
	int rc = txn_commit_args(c, argc, argv, &note, &keep), err;

	if (rc >= 0)
		return rc;
	name = argv[optind];
	dir = ctl_mpath(c, ".tx/%s", name);
	pending = ctl_xasprintf("%s/.commit.pending", dir);
	commit = ctl_xasprintf("%s/.commit", dir);
	if (access(dir, F_OK) != 0) {
		rc = errno == ENOENT ? no_txn(name)
				     : ctl_fail(errno, "cannot commit transaction '%s'", name);
		goto out;
	}
	if (note && (err = write_control(pending, note))) {
		rc = ctl_fail(-err, "cannot write the note of transaction '%s'", name);
		goto out;
	}
	if (rename(pending, commit) != 0) {
		rc = txn_commit_error(dir, name, errno);
		goto out;
	}
	if ((rc = txn_commit_read(name, commit, &j)))
		goto out;
	if (c->json)
		ctl_print_json(j, false);
	else
		printf("%lld\n", (long long)ctl_json_int(j, "commit_ts", 0));
	rc = ctl_finish_stdout(CTL_EXIT_OK);
	if (!keep && rmdir(dir) != 0)
		ctl_err("warning: cannot remove '%s' after the commit: %s", dir, strerror(errno));
out:
	json_decref(j);
	free(commit);
	free(pending);
	free(dir);
	return rc;
}

int ctl_cmd_txn_abort(struct ctl *c, int argc, char **argv)
{
	const char *name;
	char *dir;
	int rc = ctl_simple_args(c, argc, argv, 1, 1);

	if (rc >= 0)
		return rc;
	name = argv[optind];
	if ((rc = check_txn(c, name)))
		return rc;
	dir = ctl_mpath(c, ".tx/%s", name);
	if (rmdir(dir) != 0)
		rc = errno == ENOENT ? no_txn(name)
				     : ctl_fail(errno, "cannot abort transaction '%s'", name);
	free(dir);
	return rc;
}
