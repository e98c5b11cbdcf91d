/* SPDX-License-Identifier: MIT */
/*
 * mounts.c - statehousectl's mount commands: mount, umount, status, fstab, and the choice
 * of mount for every other command (mountctl/, the command-line layer).  A mount is a
 * line of /proc/self/mountinfo with fstype fuse.statehouse; its source is the daemon's
 * data dir and MNT/.status says the rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mntent.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define FSTYPE "fuse.statehouse"

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static char *unescape_octal(const char *s, size_t n)
{
	char *out = ctl_xmalloc(n + 1), *o = out;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3' &&
		    s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
			*o++ = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
			i += 3;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

/* The n-th space-separated field of line (0-based), unescaped; NULL past the end. */
static char *field(const char *line, int n, const char **end)
{
	const char *p = line;

	for (int i = 0;; i++) {
		size_t len;

		while (*p == ' ')
			p++;
		len = strcspn(p, " \n");
		if (len == 0)
			return NULL;
		if (i == n) {
			if (end)
				*end = p + len;
			return unescape_octal(p, len);
		}
		p += len;
	}
}

/* Whether the comma-separated list opts (NULL: none) holds the option name. */
static bool has_option(const char *opts, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = opts; p && *p; p += strcspn(p, ","), p += *p == ',') {
		if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == '\0'))
			return true;
	}
	return false;
}

/* A mountpoint as fstab compares them: no trailing slash. */
static void strip_slashes(char *p)
{
	size_t n = strlen(p);

	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
}

void ctl_mounts_free(struct ctl_mount *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].mountpoint);
		free(m[i].datadir);
	}
	free(m);
}

int ctl_mounts_read(struct ctl_mount **out, size_t *nout)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	struct ctl_mount *all = NULL;
	bool *sh = NULL;
	size_t n = 0, cap = 0, sh_cap = 0, kept = 0;
	char *line = NULL;
	size_t lcap = 0;

	if (!f)
		return -errno;
	while (getline(&line, &lcap, f) > 0) {
		const char *sep = strstr(line, " - "), *rest;
		char *mp = field(line, 4, NULL), *type, *opts, *super;

		if (!mp || !sep) {
			free(mp);
			continue;
		}
		rest = sep + 3;
		type = field(rest, 0, NULL);
		opts = field(line, 5, NULL);
		super = field(rest, 2, NULL);
		CTL_GROW(all, n + 1, cap);
		CTL_GROW(sh, n + 1, sh_cap);
		all[n].mountpoint = mp;
		all[n].datadir = field(rest, 1, NULL);
		if (!all[n].datadir)
			all[n].datadir = ctl_xstrdup("");
		all[n].read_only = has_option(opts, "ro");
		all[n].allow_other = has_option(super, "allow_other");
		sh[n] = type && !strcmp(type, FSTYPE);
		free(type);
		free(opts);
		free(super);
		n++;
	}
	free(line);
	fclose(f);
	/* Only the topmost mount at a mountpoint is reachable: a dead mount under a live one
	 * (the daemon restarted without an unmount) is not listed. */
	for (size_t i = 0; i < n; i++) {
		bool top = true;

		for (size_t j = i + 1; j < n && top; j++)
			if (!strcmp(all[i].mountpoint, all[j].mountpoint))
				top = false;
		if (top && sh[i]) {
			struct ctl_mount t = all[kept];

			all[kept++] = all[i];
			all[i] = t;
		}
	}
	for (size_t i = kept; i < n; i++) {
		free(all[i].mountpoint);
		free(all[i].datadir);
	}
	free(sh);
	*out = all;
	*nout = kept;
	return 0;
}

static struct ctl_mount *find_mount(struct ctl_mount *m, size_t n, const char *mp)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(m[i].mountpoint, mp))
			return &m[i];
	return NULL;
}

/* 0 when the daemon of mnt answers, else the errno (ENOTCONN: a dead mount).  statfs
 * always reaches the daemon; stat may be answered from the kernel's attribute cache. */
static int mount_answers(const char *mnt)
{
	struct statfs sfs;

	return statfs(mnt, &sfs) == 0 ? 0 : errno;
}

bool ctl_mount_answers(const char *mnt)
{
	struct ctl_mount *m;
	size_t n;
	bool ok;

	if (ctl_mounts_read(&m, &n))
		return false;
	ok = find_mount(m, n, mnt) && mount_answers(mnt) == 0;
	ctl_mounts_free(m, n);
	return ok;
}

/* The refusal of want, which is no statehouse mount (origin says where the name came
 * from, or is ""), with what the path is when that tells more: it does not exist, or is
 * no directory.  Returns CTL_EXIT_MOUNT. */
static int not_a_mount(const char *want, const char *origin)
{
	struct stat st;
	const char *why = NULL;

	if (stat(want, &st) != 0)
		why = errno == ENOENT ? "the path does not exist" : strerror(errno);
	else if (!S_ISDIR(st.st_mode))
		why = "it is not a directory";
	ctl_err("'%s' is not a statehouse mount%s%s%s", want, origin, why ? ": " : "",
		why ? why : "");
	return CTL_EXIT_MOUNT;
}

int ctl_select_mount(struct ctl *c)
{
	const char *want = c->mount_opt, *env = getenv("STATEHOUSE_MOUNT");
	struct ctl_mount *m;
	size_t n;
	int err = ctl_mounts_read(&m, &n), rc = CTL_EXIT_OK;

	if (err)
		return ctl_fail(-err, "cannot read '/proc/self/mountinfo'");
	if (!want && env && *env)
		want = env;
	if (want) {
		char *abs = ctl_abspath(want);

		if (find_mount(m, n, abs)) {
			c->mnt = abs;
		} else {
			rc = not_a_mount(want, want == c->mount_opt ? "" : " ($STATEHOUSE_MOUNT)");
			free(abs);
		}
	} else if (n == 1) {
		c->mnt = ctl_xstrdup(m[0].mountpoint);
	} else if (n == 0) {
		ctl_err("no statehouse mount: mount one with 'statehousectl mount DATADIR "
			"MOUNTPOINT' or name one with -m");
		rc = CTL_EXIT_MOUNT;
	} else {
		ctl_err("%zu statehouse mounts; choose one with -m MOUNTPOINT or $STATEHOUSE_MOUNT:",
			n);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "  %s (data dir %s)\n", m[i].mountpoint, m[i].datadir);
		rc = CTL_EXIT_USAGE;
	}
	ctl_mounts_free(m, n);
	return rc;
}

int ctl_status_read(const char *mnt, json_t **out)
{
	struct strbuf b = { 0 };
	char *path = ctl_xasprintf("%s/.status", mnt);
	json_error_t e;
	int err = ctl_read_path(path, &b);

	free(path);
	if (!err) {
		*out = json_loadb(b.buf, b.len, 0, &e);
		if (!json_is_object(*out)) {
			json_decref(*out);
			*out = NULL;
			err = -EINVAL;
		}
	}
	strbuf_release(&b);
	return err;
}

/* --- mount -------------------------------------------------------------------------- */

static void add_opts(struct strbuf *o, const char *arg)
{
	if (o->len)
		ctl_buf_addstr(o, ",");
	ctl_buf_addstr(o, arg);
}

/* The value of -o (mount and fstab) added to o; 0 or the usage exit code. */
static int add_opts_arg(const struct ctl *c, struct strbuf *o, const char *arg)
{
	if (!*arg)
		return ctl_usage(c, "option '-o' needs a value");
	add_opts(o, arg);
	return 0;
}

/* The usage check of DATADIR MOUNTPOINT; 0 or an exit code. */
static int two_paths(const struct ctl *c, int argc)
{
	if (argc - optind < 2)
		return ctl_usage(c, "missing %s", argc - optind ? "MOUNTPOINT" : "DATADIR");
	if (argc - optind > 2)
		return ctl_usage(c, "too many arguments");
	return 0;
}

/* The statehoused next to our own binary, or one directory up when we run from a meson
 * build tree (BUILD/mountctl/statehousectl beside BUILD/statehoused), so that each build
 * (plain, sanitized) starts its own daemon; NULL when there is none. */
static char *daemon_beside_me(void)
{
	char self[PATH_MAX], *slash, *p;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return NULL;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	p = ctl_xasprintf("%s/statehoused", self);
	if (access(p, X_OK) == 0)
		return p;
	free(p);
	slash = strrchr(self, '/');
	if (!slash || strcmp(slash, "/mountctl"))
		return NULL;
	*slash = '\0';
	p = ctl_xasprintf("%s/statehoused", self);
	if (access(p, X_OK) == 0)
		return p;
	free(p);
	return NULL;
}

/* mount's options (gathered in opts) and DATADIR MOUNTPOINT: -1 to go on, else the exit
 * status (opts released). */
static int mount_args(struct ctl *c, int argc, char **argv, struct strbuf *opts)
{
	static const struct option lo[] = { { "options", required_argument, NULL, 'o' }, { 0 } };
	int opt, stop, rc;

	while ((opt = ctl_getopt(c, argc, argv, "o:", lo, &stop)) != -1) {
		if (opt == -2) {
			strbuf_release(opts);
			return stop;
		}
		if ((rc = add_opts_arg(c, opts, optarg))) {
			strbuf_release(opts);
			return rc;
		}
	}
	if ((rc = two_paths(c, argc))) {
		strbuf_release(opts);
		return rc;
	}
	return -1;
}

/* Whether mnt can take a mount: a directory (or a dead mount) that is not a live
 * statehouse mount already.  0 or an exit code after printing why not. */
static int mount_target_check(const char *mnt)
{
	struct ctl_mount *m = NULL, *cur = NULL;
	struct stat st;
	json_t *s = NULL;
	size_t n = 0;
	int serr, err = 0;

	if (ctl_mounts_read(&m, &n) == 0)
		cur = find_mount(m, n, mnt);
	serr = stat(mnt, &st) == 0 ? 0 : errno;
	/* a dead mount is fine: the daemon detaches it before it mounts */
	if (cur && ctl_status_read(mnt, &s) == 0) {
		ctl_err("cannot mount on '%s': it is already the statehouse mount of '%s'", mnt,
			cur->datadir);
		err = CTL_EXIT_FAIL;
	} else if (serr && serr != ENOTCONN) {
		err = ctl_fail(serr, "cannot mount on '%s'", mnt);
	} else if (!serr && !S_ISDIR(st.st_mode)) {
		err = ctl_fail(ENOTDIR, "cannot mount on '%s'", mnt);
	}
	json_decref(s);
	ctl_mounts_free(m, n);
	return err;
}

/* Run the daemon on args (args[0] is replaced by the binary run): $STATEHOUSED, the one
 * beside us, the one in PATH, the one in CTL_SBINDIR.  Returns only when none could run,
 * after saying why. */
static void mount_exec(char **args)
{
	const char *env = getenv("STATEHOUSED");
	char *daemon = env && *env ? ctl_xstrdup(env) : daemon_beside_me();
	int err;

	args[0] = daemon ? daemon : "statehoused";
	fflush(stdout);
	/* The daemon forks and returns once the mount answers, with its own exit status and
	 * messages: nothing is left for us to do after it. */
	if (daemon) {
		execv(daemon, args);
		err = errno;
		ctl_fail(err, "cannot run '%s'%s", daemon, env && *env ? " ($STATEHOUSED)" : "");
	} else {
		execvp("statehoused", args);
		err = errno;
		if (err == ENOENT) {
			args[0] = CTL_SBINDIR "/statehoused";
			execv(args[0], args);
		}
		ctl_fail(err, "cannot run 'statehoused' (looked beside statehousectl, in PATH and "
			      "in " CTL_SBINDIR "; set STATEHOUSED to choose one)");
	}
	free(daemon);
}

int ctl_cmd_init(struct ctl *c, int argc, char **argv)
{
	struct strbuf opts = { 0 };
	static const struct option lo[] = { { "options", required_argument, NULL, 'o' }, { 0 } };
	char *args[6] = { NULL };
	int opt, stop, rc, i = 1;

	while ((opt = ctl_getopt(c, argc, argv, "o:", lo, &stop)) != -1) {
		if (opt == -2) {
			strbuf_release(&opts);
			return stop;
		}
		if ((rc = add_opts_arg(c, &opts, optarg))) {
			strbuf_release(&opts);
			return rc;
		}
	}
	if (argc - optind != 1) {
		strbuf_release(&opts);
		return ctl_usage(c, argc - optind < 1 ? "missing the store's URI"
						      : "too many arguments");
	}
	if (strncasecmp(argv[optind], "etcd://", 7)) {
		strbuf_release(&opts);
		return ctl_usage(c, "init makes a shared volume: the URI is "
				    "etcd://HOST:PORT[,HOST:PORT...]/VOLUME");
	}
	args[i++] = "--init-store";
	args[i++] = argv[optind];
	if (opts.len) {
		args[i++] = "-o";
		args[i++] = opts.buf;
	}
	/* The daemon's own code makes the volume: statehousectl speaks only to mounts. */
	mount_exec(args);
	strbuf_release(&opts);
	return CTL_EXIT_FAIL;
}

int ctl_cmd_mount(struct ctl *c, int argc, char **argv)
{
	struct strbuf opts = { 0 };
	char *data, *mnt, *args[6];
	int i = 1;
	int rc = mount_args(c, argc, argv, &opts);

	if (rc >= 0)
		return rc;
	data = ctl_abspath(argv[optind]);
	mnt = ctl_abspath(argv[optind + 1]);
	if (!mount_target_check(mnt)) {
		args[i++] = data;
		args[i++] = mnt;
		if (opts.len) {
			args[i++] = "-o";
			args[i++] = opts.buf;
		}
		args[i] = NULL;
		mount_exec(args);
	}
	free(data);
	free(mnt);
	strbuf_release(&opts);
	return CTL_EXIT_FAIL;
}

/* --- umount ------------------------------------------------------------------------- */

/* Run fusermount3 with args; 0 when it exits 0, else -1 (its message is on stderr). */
static int fusermount(const char *flag1, const char *flag2, const char *mnt)
{
	pid_t pid;
	int status;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (flag2)
			execlp("fusermount3", "fusermount3", flag1, flag2, "--", mnt, (char *)NULL);
		else
			execlp("fusermount3", "fusermount3", flag1, "--", mnt, (char *)NULL);
		fprintf(stderr, "statehousectl: cannot run 'fusermount3': %s\n", strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int pid_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

/* Wait until pid has exited; false after timeout_s (0: no limit).  A pidfd taken before
 * the unmount cannot be fooled by pid reuse; without one, kill(0) is the best we have. */
static bool wait_exit(pid_t pid, int pidfd, long timeout_s)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		long left_ms = -1;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (timeout_s) {
			left_ms = timeout_s * 1000 - ((now.tv_sec - start.tv_sec) * 1000 +
						      (now.tv_nsec - start.tv_nsec) / 1000000);
			if (left_ms <= 0)
				return false;
		}
		if (pidfd >= 0) {
			struct pollfd p = { .fd = pidfd, .events = POLLIN };
			int r = poll(&p, 1, (int)(left_ms < 0 || left_ms > INT_MAX ? -1 : left_ms));

			if (r > 0)
				return true;
			if (r < 0 && errno != EINTR)
				pidfd = -1;
			continue;
		}
		if (kill(pid, 0) != 0 && errno == ESRCH)
			return true;
		nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
	}
}

static int detach_dead(const char *mnt)
{
	if (geteuid() == 0) {
		if (umount2(mnt, MNT_DETACH) != 0)
			return ctl_fail(errno, "cannot detach the dead mount '%s'", mnt);
	} else if (fusermount("-u", "-z", mnt) != 0) {
		ctl_err("cannot detach the dead mount '%s' (fusermount3 -u -z failed)", mnt);
		return CTL_EXIT_FAIL;
	}
	ctl_err("'%s' was a dead mount (its daemon is gone); detached it", mnt);
	return CTL_EXIT_OK;
}

/* umount's --timeout and MOUNTPOINT (or -m): -1 to go on, else the exit status. */
static int umount_args(struct ctl *c, int argc, char **argv, int64_t *timeout_s,
		       const char **arg)
{
	static const struct option lo[] = { { "timeout", required_argument, NULL, 't' }, { 0 } };
	int opt, stop;

	while ((opt = ctl_getopt(c, argc, argv, "", lo, &stop)) != -1) {
		if (opt == -2)
			return stop;
		if (!ctl_parse_count(optarg, timeout_s) || *timeout_s > 86400 * 365)
			return ctl_usage(c, "malformed --timeout '%s' (seconds, 0 for no limit)",
					 optarg);
	}
	if (argc - optind > 1)
		return ctl_usage(c, "too many arguments");
	*arg = argc - optind == 1 ? argv[optind] : c->mount_opt;
	if (!*arg)
		return ctl_usage(c, "missing MOUNTPOINT");
	return -1;
}

/* The daemon's pid and open transactions from mnt/.status; when it cannot be read they
 * stay 0 (after a warning).  -ENOTCONN when the mount is dead, else 0. */
static int umount_status(const char *mnt, pid_t *pid, int64_t *open_txns)
{
	json_t *status = NULL;
	int err = -mount_answers(mnt);

	if (!err)
		err = ctl_status_read(mnt, &status);
	if (err == -ENOTCONN)
		return err;
	if (err) {
		ctl_err("cannot read '%s/.status': %s; unmounting without waiting for the daemon",
			mnt, ctl_strerror(-err));
	} else {
		/* the supervisor exits last; without one, the daemon is the process serving */
		*pid = (pid_t)ctl_json_int(status, "supervisor_pid",
					   ctl_json_int(status, "pid", 0));
		*open_txns = ctl_json_int(status, "open_transactions", 0);
	}
	json_decref(status);
	return 0;
}

/* Unmount the live mount mnt, then wait up to timeout_s for its daemon pid (0: unknown)
 * to exit.  0 or an exit code. */
static int umount_and_wait(const char *mnt, pid_t pid, int64_t timeout_s)
{
	int pidfd = pid > 0 ? pid_open(pid) : -1, rc = CTL_EXIT_OK;

	if (geteuid() == 0) {
		if (umount2(mnt, 0) != 0)
			rc = ctl_fail(errno, "cannot unmount '%s'", mnt);
	} else if (fusermount("-u", NULL, mnt) != 0) {
		ctl_err("cannot unmount '%s' (fusermount3 -u failed)", mnt);
		rc = CTL_EXIT_FAIL;
	}
	if (!rc && pid > 0 && !wait_exit(pid, pidfd, (long)timeout_s)) {
		ctl_err("the daemon of '%s' (pid %ld) still runs %lld s after the unmount", mnt,
			(long)pid, (long long)timeout_s);
		rc = CTL_EXIT_FAIL;
	}
	if (pidfd >= 0)
		close(pidfd);
	return rc;
}

int ctl_cmd_umount(struct ctl *c, int argc, char **argv)
{
	const char *arg = NULL;
	struct ctl_mount *m;
	int64_t timeout_s = 60, open_txns = 0;
	pid_t pid = 0;
	char *mnt;
	size_t n;
	int err, rc = umount_args(c, argc, argv, &timeout_s, &arg);

	if (rc >= 0)
		return rc;
	err = ctl_mounts_read(&m, &n);
	if (err)
		return ctl_fail(-err, "cannot read '/proc/self/mountinfo'");
	mnt = ctl_abspath(arg);
	if (!find_mount(m, n, mnt)) {
		rc = not_a_mount(arg, "");
	} else if (umount_status(mnt, &pid, &open_txns) == -ENOTCONN) {
		rc = detach_dead(mnt);
	} else {
		if (open_txns > 0)
			ctl_err("warning: unmounting '%s' loses %lld open transaction%s", mnt,
				(long long)open_txns, open_txns == 1 ? "" : "s");
		rc = umount_and_wait(mnt, pid, timeout_s);
	}
	free(mnt);
	ctl_mounts_free(m, n);
	return rc;
}

/* --- status ------------------------------------------------------------------------- */

static void human_row(const struct ctl *c, const char *label, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void human_row(const struct ctl *c, const char *label, const char *fmt, ...)
{
	va_list ap;

	printf("  %s%-15s%s ", ctl_col(c, CTL_DIM), label, ctl_col(c, CTL_RESET));
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* A path as systemd-escape --path writes it, for a unit instance name: no leading,
 * trailing or repeated '/', each '/' as '-', and a leading '.' and every byte but
 * [A-Za-z0-9:_.] as \xNN; "/" is "-". */
static void systemd_escape_path(struct strbuf *b, const char *path)
{
	bool any = false;

	while (*path == '/')
		path++;
	for (const char *p = path; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		char e[5];

		if (ch == '/') {
			while (p[1] == '/')
				p++;
			if (p[1])
				ctl_buf_addstr(b, "-");
			continue;
		}
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == ':' || ch == '_' || (ch == '.' && any)) {
			ctl_buf_add(b, p, 1);
		} else {
			snprintf(e, sizeof(e), "\\x%02x", ch);
			ctl_buf_addstr(b, e);
		}
		any = true;
	}
	if (!any)
		ctl_buf_addstr(b, "-");
}

/* Whether /etc/fstab has a line that mounts a statehouse data dir at mnt. */
static bool in_fstab(const char *mnt)
{
	FILE *f = setmntent("/etc/fstab", "re");
	struct mntent *e;
	bool found = false;

	while (f && !found && (e = getmntent(f))) {
		char *dir = ctl_xstrdup(e->mnt_dir);

		strip_slashes(dir);
		found = !strcmp(dir, mnt) && strstr(e->mnt_type, "statehouse");
		free(dir);
	}
	if (f)
		endmntent(f);
	return found;
}

/*
 * The command that restarts the daemon of the dead mount m as it was started (the new
 * daemon detaches the dead mount itself): systemctl restart of its statehoused@.service
 * instance (the unit's default data dir, or its environment file, says it is one), mount
 * of its fstab line, else statehousectl mount of its data dir with the options the mount
 * shows.  Added to b.
 */
static void restart_command(const struct ctl_mount *m, struct strbuf *b)
{
	struct strbuf inst = { 0 }, unit = { 0 };
	char *env, *unit_data;

	systemd_escape_path(&inst, m->mountpoint);
	env = ctl_xasprintf("/etc/statehouse/%s.env", inst.buf);
	unit_data = ctl_xasprintf("/var/lib/statehouse/%s", inst.buf);
	if (access(env, F_OK) == 0 || !strcmp(m->datadir, unit_data)) {
		ctl_buf_addstr(&unit, "statehoused@");
		ctl_buf_addstr(&unit, inst.buf);
		ctl_buf_addstr(&unit, ".service");
		ctl_buf_addstr(b, "systemctl restart ");
		ctl_buf_addstr(b, ctl_shell_quote(unit.buf));
	} else if (in_fstab(m->mountpoint)) {
		ctl_buf_addstr(b, "mount ");
		ctl_buf_addstr(b, ctl_shell_quote(m->mountpoint));
	} else {
		ctl_buf_addstr(b, "statehousectl mount ");
		ctl_buf_addstr(b, ctl_shell_quote(m->datadir));
		ctl_buf_addstr(b, " ");
		ctl_buf_addstr(b, ctl_shell_quote(m->mountpoint));
		if (m->allow_other || m->read_only)
			ctl_buf_addstr(b, m->allow_other && m->read_only ? " -o allow_other,ro"
					  : m->allow_other		 ? " -o allow_other"
									 : " -o ro");
	}
	free(env);
	free(unit_data);
	strbuf_release(&inst);
	strbuf_release(&unit);
}

/* The command that only detaches the dead mount m, added to b. */
static void detach_command(const struct ctl_mount *m, struct strbuf *b)
{
	ctl_buf_addstr(b, "statehousectl umount ");
	ctl_buf_addstr(b, ctl_shell_quote(m->mountpoint));
	ctl_buf_addstr(b, "  (or: fusermount3 -u -z ");
	ctl_buf_addstr(b, ctl_shell_quote(m->mountpoint));
	ctl_buf_addstr(b, ")");
}

/* A mount whose .status cannot be read (err; ENOTCONN: its daemon is gone): print it
 * (human) or add it to arr (JSON).  Returns the exit code it calls for. */
static int status_unreadable(const struct ctl *c, const struct ctl_mount *m, int err,
			     json_t *arr)
{
	bool dead = err == ENOTCONN || err == ECONNABORTED;
	struct strbuf fix = { 0 }, detach = { 0 };

	ctl_buf_add(&fix, "", 0);
	ctl_buf_add(&detach, "", 0);
	if (dead) {
		restart_command(m, &fix);
		detach_command(m, &detach);
	}
	if (arr) {
		json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "mountpoint", m->mountpoint,
				      "datadir", m->datadir, "state", dead ? "dead" : "error",
				      "error", strerror(err));

		if (dead) {
			json_object_set_new(o, "fix", json_string(fix.buf));
			json_object_set_new(o, "detach", json_string(detach.buf));
		}
		json_array_append_new(arr, o);
	} else {
		printf("%s%s%s: %s%s (%s)%s\n", ctl_col(c, CTL_BOLD), m->mountpoint,
		       ctl_col(c, CTL_RESET), ctl_col(c, CTL_RED), dead ? "dead" : "error",
		       strerror(err), ctl_col(c, CTL_RESET));
		human_row(c, "data dir", "%s", m->datadir);
		if (dead) {
			human_row(c, "fix", "restart the daemon: %s", fix.buf);
			human_row(c, "or", "detach the dead mount: %s", detach.buf);
		} else {
			human_row(c, "cannot read", "%s/.status", m->mountpoint);
		}
	}
	strbuf_release(&fix);
	strbuf_release(&detach);
	return dead ? CTL_EXIT_MOUNT : CTL_EXIT_FAIL;
}

/* One mount: print it (human) or add it to arr (JSON).  Returns the exit code it calls
 * for: 0 when it is live and healthy, CTL_EXIT_MOUNT when it is dead or unhealthy. */
/* The store's rows: an etcd volume, how it is reached, and the replica's lag. */
static void status_store(const struct ctl *c, json_t *st)
{
	if (!json_is_object(st) || strcmp(ctl_json_str(st, "kind", ""), "etcd"))
		return;
	human_row(c, "store", "etcd volume %s: %s%s", ctl_json_str(st, "volume", "?"),
		  ctl_json_str(st, "health", "?"),
		  json_is_true(json_object_get(st, "stale")) ? " (reads may be stale)" : "");
	human_row(c, "replica lag", "%lld commits (etcd at commit_ts %lld)",
		  (long long)ctl_json_int(st, "replica_lag", 0),
		  (long long)ctl_json_int(st, "shared_head_ts", 0));
}

static int status_one(const struct ctl *c, const struct ctl_mount *m, json_t *arr)
{
	json_t *s = NULL, *rec, *snap;
	const char *health;
	int err = 0;
	bool ok;

	err = mount_answers(m->mountpoint);
	if (!err)
		err = -ctl_status_read(m->mountpoint, &s);
	if (err)
		return status_unreadable(c, m, err, arr);
	health = ctl_json_str(s, "health", "?");
	ok = !strcmp(health, "ok");
	if (arr) {
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:O}", "mountpoint",
						     m->mountpoint, "datadir", m->datadir, "state",
						     "live", "status", s));
		json_decref(s);
		return ok ? CTL_EXIT_OK : CTL_EXIT_MOUNT;
	}
	printf("%s%s%s: %s%s%s\n", ctl_col(c, CTL_BOLD), m->mountpoint, ctl_col(c, CTL_RESET),
	       ctl_col(c, ok ? CTL_GREEN : CTL_RED), ok ? "live" : "unhealthy",
	       ctl_col(c, CTL_RESET));
	human_row(c, "data dir", "%s", m->datadir);
	if (ctl_json_str(s, "ro_mount", NULL))
		human_row(c, "read-only mount", "%s", ctl_json_str(s, "ro_mount", NULL));
	human_row(c, "daemon pid", "%lld",
		  (long long)ctl_json_int(s, "supervisor_pid", ctl_json_int(s, "pid", 0)));
	if (json_is_integer(json_object_get(s, "supervisor_pid")))
		human_row(c, "serving pid", "%lld (%lld restarts of it)",
			  (long long)ctl_json_int(s, "pid", 0),
			  (long long)ctl_json_int(s, "worker_restarts", 0));
	human_row(c, "health", "%s", health);
	human_row(c, "head commit_ts", "%lld", (long long)ctl_json_int(s, "head_commit_ts", 0));
	status_store(c, json_object_get(s, "store"));
	human_row(c, "open txns", "%lld", (long long)ctl_json_int(s, "open_transactions", 0));
	{
		int64_t starts = ctl_json_int(s, "starts", 1);

		human_row(c, "restarts", "%lld (%lld after a crash)",
			  (long long)(starts > 0 ? starts - 1 : 0),
			  (long long)ctl_json_int(s, "unclean_starts", 0));
	}
	rec = json_object_get(s, "last_recovery");
	if (json_is_object(rec))
		human_row(c, "last recovery", "%lld ms, %lld events replayed",
			  (long long)ctl_json_int(rec, "ms", 0),
			  (long long)ctl_json_int(rec, "replayed_events", 0));
	snap = json_object_get(s, "snapshot_ts");
	if (json_is_integer(snap)) {
		if (json_integer_value(snap) > 0)
			human_row(c, "last snapshot", "commit_ts %lld",
				  (long long)json_integer_value(snap));
		else
			human_row(c, "last snapshot", "none");
	}
	human_row(c, "started", "%s (up %lld s)", ctl_json_str(s, "started", "?"),
		  (long long)ctl_json_int(s, "uptime_s", 0));
	if (json_is_true(json_object_get(s, "read_only")))
		human_row(c, "read-only", "yes");
	human_row(c, "version", "%s", ctl_json_str(s, "version", "?"));
	json_decref(s);
	return ok ? CTL_EXIT_OK : CTL_EXIT_MOUNT;
}

int ctl_cmd_status(struct ctl *c, int argc, char **argv)
{
	const char *want;
	struct ctl_mount *m;
	json_t *arr = NULL;
	size_t n;
	int opt, stop, err, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(c, argc, argv, "", NULL, &stop)) != -1)
		if (opt == -2)
			return stop;
	if (argc - optind > 1)
		return ctl_usage(c, "too many arguments");
	want = argc - optind == 1 ? argv[optind] : c->mount_opt;
	err = ctl_mounts_read(&m, &n);
	if (err)
		return ctl_fail(-err, "cannot read '/proc/self/mountinfo'");
	if (want) {
		char *abs = ctl_abspath(want);
		struct ctl_mount *one = find_mount(m, n, abs);

		free(abs);
		if (!one) {
			ctl_mounts_free(m, n);
			return not_a_mount(want, "");
		}
		if (one != m) {
			struct ctl_mount t = m[0];

			m[0] = *one;
			*one = t;
		}
	}
	if (c->json)
		arr = json_array();
	else if (n == 0)
		printf("no statehouse mounts\n");
	for (size_t i = 0; i < (want ? 1 : n); i++) {
		int one;

		if (!c->json && i > 0)
			putchar('\n');
		one = status_one(c, &m[i], arr);
		/* the worst: a mount not answering, then one that cannot be read */
		if (one == CTL_EXIT_MOUNT || (one && !rc))
			rc = one;
	}
	if (arr) {
		ctl_print_json(arr, false);
		json_decref(arr);
	}
	ctl_mounts_free(m, n);
	return ctl_finish_stdout(rc);
}

/* --- fstab -------------------------------------------------------------------------- */

/* fstab(5) fields: whitespace and backslash as \ooo, which getmntent(3) reads back. */
static void fstab_escape(struct strbuf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\\') {
			char e[5];

			snprintf(e, sizeof(e), "\\%03o", (unsigned char)*s);
			ctl_buf_addstr(b, e);
		} else {
			ctl_buf_add(b, s, 1);
		}
	}
}

/* The 1-based line of text whose mountpoint field is mnt, or 0. */
static int fstab_find(const char *text, const char *mnt)
{
	const char *line = text;
	int lineno = 0;

	while (*line) {
		const char *nl = strchr(line, '\n'), *p = line;
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char *l = ctl_xmalloc(len + 1), *f1;

		lineno++;
		memcpy(l, line, len);
		l[len] = '\0';
		for (char *q = l; *q; q++)
			if (*q == '\t')
				*q = ' ';
		p = l + strspn(l, " ");
		f1 = *p && *p != '#' ? field(p, 1, NULL) : NULL;
		free(l);
		if (f1) {
			bool same;

			strip_slashes(f1);
			same = !strcmp(f1, mnt);
			free(f1);
			if (same)
				return lineno;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return 0;
}

static int fstab_update(const char *file, const char *mnt, const char *line)
{
	struct strbuf text = { 0 };
	struct stat st;
	mode_t mode = 0644;
	char *target = realpath(file, NULL), *lock;
	int fd, err, dup;

	/* a symlinked fstab keeps its link: the file it points to is replaced */
	if (!target)
		target = ctl_xstrdup(file);
	lock = ctl_xasprintf("%s.lock", target);
	if (stat(target, &st) == 0)
		mode = st.st_mode & 07777;
	/* The lock file is also the new file: whoever holds it owns the next version. */
	fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		err = errno;
		if (err == EEXIST)
			ctl_err("cannot lock '%s': '%s' exists (another program is editing it, or "
				"one was interrupted: remove the lock file if none is running)",
				target, lock);
		else
			ctl_fail(err, "cannot create lock file '%s'", lock);
		goto out_free;
	}
	err = -ctl_read_path(target, &text);
	if (err == ENOENT) {
		err = 0;
		ctl_buf_add(&text, "", 0);
	}
	if (err) {
		ctl_fail(err, "cannot read '%s'", target);
		goto out_unlock;
	}
	dup = fstab_find(text.buf, mnt);
	if (dup) {
		ctl_err("cannot add to '%s': line %d already mounts '%s'", target, dup, mnt);
		err = EEXIST;
		goto out_unlock;
	}
	if (text.len && text.buf[text.len - 1] != '\n')
		ctl_buf_addstr(&text, "\n");
	ctl_buf_addstr(&text, line);
	if (fchmod(fd, mode) != 0 ||
	    (geteuid() == 0 && stat(target, &st) == 0 && fchown(fd, st.st_uid, st.st_gid) != 0)) {
		err = errno;
		ctl_fail(err, "cannot set the mode of '%s'", lock);
		goto out_unlock;
	}
	err = -ctl_commit_file(fd, lock, target, text.buf, text.len);
	fd = -1;
	if (err)
		ctl_fail(err, "cannot replace '%s'", target);
	goto out_free;
out_unlock:
	close(fd);
	unlink(lock);
out_free:
	strbuf_release(&text);
	free(lock);
	free(target);
	return err ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

int ctl_cmd_fstab(struct ctl *c, int argc, char **argv)
{
	enum { OPT_UPDATE = 2000, OPT_FILE };
	static const struct option lo[] = { { "options", required_argument, NULL, 'o' },
					    { "update-fstab", no_argument, NULL, OPT_UPDATE },
					    { "fstab", required_argument, NULL, OPT_FILE },
					    { 0 } };
	struct strbuf opts = { 0 }, line = { 0 };
	const char *file = NULL;
	bool update = false;
	char *data, *mnt;
	int opt, stop, rc;

	ctl_buf_addstr(&opts, "defaults,nofail");
	while ((opt = ctl_getopt(c, argc, argv, "o:", lo, &stop)) != -1) {
		if (opt == -2) {
			strbuf_release(&opts);
			return stop;
		}
		if (opt == OPT_UPDATE) {
			update = true;
		} else if (opt == OPT_FILE) {
			if (!*optarg) {
				strbuf_release(&opts);
				return ctl_usage(c, "option '--fstab' needs a file");
			}
			file = optarg;
			update = true;
		} else if ((rc = add_opts_arg(c, &opts, optarg))) {
			strbuf_release(&opts);
			return rc;
		}
	}
	if ((rc = two_paths(c, argc))) {
		strbuf_release(&opts);
		return rc;
	}
	data = ctl_abspath(argv[optind]);
	mnt = ctl_abspath(argv[optind + 1]);
	strip_slashes(data);
	strip_slashes(mnt);
	fstab_escape(&line, data);
	ctl_buf_addstr(&line, "  ");
	fstab_escape(&line, mnt);
	ctl_buf_addstr(&line, "  " FSTYPE "  ");
	fstab_escape(&line, opts.buf);
	ctl_buf_addstr(&line, "  0  0\n");
	rc = update ? fstab_update(file ? file : "/etc/fstab", mnt, line.buf) : CTL_EXIT_OK;
	if (rc == CTL_EXIT_OK)
		fputs(line.buf, stdout);
	free(data);
	free(mnt);
	strbuf_release(&opts);
	strbuf_release(&line);
	return ctl_finish_stdout(rc);
}
