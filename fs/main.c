/* SPDX-License-Identifier: MIT */
/*
 * main.c - statehoused: parse the command line, open the store, mount, serve (fs layer).
 *
 *   statehoused DATADIR MOUNTPOINT [-o opt,...] [-f] [-s] [-d]
 *
 * The daemon forks before it opens anything and the parent exits only when the child
 * reports that the store is open and the mount is live (or why it is not), so mount(8)
 * and scripts see the real outcome.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "fs.h"
#include "log.h"
#include "start.h"
#include "knobs.h"
#include "supervise.h"
#include "version.h"

struct config {
	char *datadir;
	int nonopt;
	/* the numeric options (num_opts) */
	long long txn_timeout_ms;
	long long max_open_txns;
	long long max_value_bytes;
	long long max_txns_per_user;  /* -1: max_open_txns / 4 */
	long long max_txn_timeout_ms;
	long long max_txn_bytes;
	long long max_user_txn_bytes; /* -1: 4 * max_txn_bytes */
	long long txn_linger_ms;
	long long cache_timeout_s;
	long long snapshot_interval;
	long long snapshot_keep;
	long long keep_versions; /* retention: 0, no rule */
	char *keep_days;         /* retention: a decimal number of days; NULL, no rule */
	int64_t keep_ns;         /* keep_days, parsed */
	long long loop_threads;
	long long pool_threads;
	long long fsync;
	long long supervise; /* 1: a supervisor keeps the mount across worker deaths */
	bool libfuse_mt; /* -o max_threads= given: libfuse's own loop */
	char *log_level;
	char *log_dest; /* -o log=: syslog, stderr or an absolute path; NULL: the default */
	char *store_uri;
	bool store_cont; /* the last option was store=etcd://...: an endpoint may follow */
	/* A shared store's options, passed on to it (store_options.params). */
	char *etcd_commit_timeout_ms, *etcd_cacert, *etcd_cert, *etcd_key, *etcd_auth_file;
	char *store_params; /* what they make */
	char *stale_reads;  /* -o stale_reads=serve|eio */
	char *isolation;          /* -o isolation=: of new transactions */
	char *ro_mount;           /* -o ro_mount=: where the read-only mount goes, or NULL */
	struct fs_romount *ro;    /* the read-only mount, once mounted */
	enum txn_isolation iso;   /* what it says (snapshot unless given) */
	int show_help;
	int show_version;
	int read_only;
	int allow_other;
	int default_permissions;
	int nonempty;
	bool mnt_dead; /* the mountpoint is a dead mount, detached just before mounting */
	char *datadir_made; /* the topmost directory of DATADIR this start made, or NULL */
	bool served;        /* the mount went live: a failure after it is no failed start */
	enum { LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_FILE } log_to; /* once the mount is live */
};

static int store_params(struct config *conf);

enum { KEY_RO = 1, KEY_RW, KEY_ALLOW_OTHER, KEY_DEFAULT_PERMISSIONS, KEY_NONEMPTY,
       KEY_MAX_THREADS, KEY_NUM, KEY_STORE };

/*
 * The numeric options, each with its field and range.  They are parsed here rather than
 * by fuse_opt's scanf formats, which take "10x" for 10 and wrap what overflows, and each
 * is checked as it is read, so a refusal names the option, its value and its range.
 */
#define NUM(n, lo, hi) { #n, offsetof(struct config, n), lo, hi }
static const struct num_opt {
	const char *name;
	size_t off;
	long long min, max;
} num_opts[] = {
	NUM(txn_timeout_ms, 1, 86400000),
	NUM(max_open_txns, 1, UINT_MAX),
	NUM(max_value_bytes, 1, 1LL << 30),
	NUM(max_txns_per_user, 0, UINT_MAX),
	NUM(max_txn_timeout_ms, 1, 86400000),
	NUM(max_txn_bytes, 1, 1LL << 40),
	NUM(max_user_txn_bytes, 0, 1LL << 42),
	NUM(txn_linger_ms, 1, 86400000),
	NUM(cache_timeout_s, 0, 86400),
	NUM(snapshot_interval, 0, 100000000),
	NUM(snapshot_keep, 1, 1000),
	NUM(keep_versions, 0, 1000000000),
	NUM(loop_threads, 1, 64),
	NUM(pool_threads, 1, 64),
	NUM(fsync, 0, 1),
	NUM(supervise, 0, 1),
};

#define OPT(t, p) { t, offsetof(struct config, p), 1 }
static const struct fuse_opt opt_spec[] = {
	FUSE_OPT_KEY("txn_timeout_ms=", KEY_NUM),
	FUSE_OPT_KEY("max_open_txns=", KEY_NUM),
	FUSE_OPT_KEY("max_value_bytes=", KEY_NUM),
	FUSE_OPT_KEY("max_txns_per_user=", KEY_NUM),
	FUSE_OPT_KEY("max_txn_timeout_ms=", KEY_NUM),
	FUSE_OPT_KEY("max_txn_bytes=", KEY_NUM),
	FUSE_OPT_KEY("max_user_txn_bytes=", KEY_NUM),
	FUSE_OPT_KEY("txn_linger_ms=", KEY_NUM),
	FUSE_OPT_KEY("fsync=", KEY_NUM),
	FUSE_OPT_KEY("supervise=", KEY_NUM),
	FUSE_OPT_KEY("cache_timeout_s=", KEY_NUM),
	FUSE_OPT_KEY("snapshot_interval=", KEY_NUM),
	FUSE_OPT_KEY("snapshot_keep=", KEY_NUM),
	FUSE_OPT_KEY("keep_versions=", KEY_NUM),
	OPT("keep_days=%s", keep_days),
	FUSE_OPT_KEY("loop_threads=", KEY_NUM),
	FUSE_OPT_KEY("pool_threads=", KEY_NUM),
	OPT("log_level=%s", log_level),
	OPT("log=%s", log_dest),
	FUSE_OPT_KEY("store=", KEY_STORE),
	OPT("etcd_commit_timeout_ms=%s", etcd_commit_timeout_ms),
	OPT("etcd_cacert=%s", etcd_cacert),
	OPT("etcd_cert=%s", etcd_cert),
	OPT("etcd_key=%s", etcd_key),
	OPT("etcd_auth_file=%s", etcd_auth_file),
	OPT("stale_reads=%s", stale_reads),
	OPT("isolation=%s", isolation),
	OPT("ro_mount=%s", ro_mount),
	OPT("-h", show_help),
	OPT("--help", show_help),
	OPT("-V", show_version),
	OPT("--version", show_version),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("rw", KEY_RW),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("default_permissions", KEY_DEFAULT_PERMISSIONS),
	FUSE_OPT_KEY("nonempty", KEY_NONEMPTY),
	FUSE_OPT_KEY("max_threads=", KEY_MAX_THREADS),
	FUSE_OPT_END
};

/*
 * Options mount(8) and fstab may hand us that mean nothing to a FUSE file system (or that
 * the kernel's FUSE does not take): accepted and dropped, as mount.fuse3 does with its
 * own.  The flags libfuse knows (rw, ro, dev, nodev, suid, nosuid, exec, noexec, atime,
 * noatime, sync, async, dirsync) go on to it.
 */
static bool ignored_mount_option(const char *o)
{
	static const char *const names[] = {
		"defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group",
		"nofail", "_netdev", "relatime", "norelatime", "strictatime", "nostrictatime",
		"lazytime", "nolazytime", "diratime", "nodiratime", "iversion", "noiversion",
		"mand", "nomand", "silent", "loud", "nosymfollow", "symfollow",
	};

	if (!strncmp(o, "x-", 2) || !strncmp(o, "X-", 2) || !strncmp(o, "comment=", 8))
		return true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(o, names[i]))
			return true;
	return false;
}

/* A numeric option "name=value" (a num_opts entry) into its field of c: 0, or -1 after
 * saying what is wrong with it. */
static int num_opt_parse(struct config *c, const char *arg)
{
	size_t len = strcspn(arg, "=");
	const char *v = arg + len + (arg[len] == '=');
	const struct num_opt *o = NULL;
	long long val;
	char *end;

	for (size_t i = 0; i < sizeof(num_opts) / sizeof(num_opts[0]) && !o; i++)
		if (strlen(num_opts[i].name) == len && !strncmp(arg, num_opts[i].name, len))
			o = &num_opts[i];
	if (!o)
		return -1;
	errno = 0;
	val = strtoll(v, &end, 10);
	if (!(*v >= '0' && *v <= '9') && !(*v == '-' && v[1] >= '0' && v[1] <= '9'))
		end = (char *)v; /* no sign but '-', no space */
	if (end == v || *end) {
		fprintf(stderr, "statehoused: malformed option '%s': a whole number from %lld to "
				"%lld is needed\n", arg, o->min, o->max);
		return -1;
	}
	if (errno == ERANGE || val < o->min || val > o->max) {
		fprintf(stderr, "statehoused: option out of range: %s (from %lld to %lld)\n", arg,
			o->min, o->max);
		return -1;
	}
	*(long long *)((char *)c + o->off) = val;
	return 0;
}

/*
 * store=URI.  libfuse splits -o at commas, and an etcd URI lists its endpoints with
 * commas: the pieces after store=etcd://HOST:PORT that are HOST:PORT[/VOLUME] (a ':'
 * and no '=') go back onto it.
 */
static int store_opt(struct config *c, const char *arg, int key)
{
	char *joined;

	if (key == KEY_STORE) {
		free(c->store_uri);
		c->store_uri = strdup(arg + strlen("store="));
		c->store_cont = c->store_uri && !strncasecmp(c->store_uri, "etcd:", 5);
		return c->store_uri ? 0 : -1;
	}
	if (asprintf(&joined, "%s,%s", c->store_uri, arg) < 0)
		return -1;
	free(c->store_uri);
	c->store_uri = joined;
	return 0;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct config *c = data;
	bool cont = c->store_cont;

	c->store_cont = false;
	if (key == KEY_STORE || (cont && key == FUSE_OPT_KEY_OPT && strchr(arg, ':') &&
				 !strchr(arg, '='))) {
		int r = store_opt(c, arg, key);

		c->store_cont = c->store_cont || (r == 0 && key != KEY_STORE && !strchr(arg, '/'));
		return r;
	}
	switch (key) {
	case KEY_NUM:
		return num_opt_parse(c, arg);
	case KEY_RO:
		c->read_only = 1;
		return 1;
	case KEY_RW:
		c->read_only = 0;
		return 1;
	case KEY_ALLOW_OTHER:
		c->allow_other = 1;
		return 1;
	case KEY_DEFAULT_PERMISSIONS:
		c->default_permissions = 1;
		return 1;
	case KEY_NONEMPTY:
		c->nonempty = 1;
		return 0; /* ours: libfuse 3 no longer knows it */
	case KEY_MAX_THREADS:
		c->libfuse_mt = true;
		return 1; /* libfuse's too: fuse_parse_cmdline() reads the number */
	case FUSE_OPT_KEY_OPT:
		return ignored_mount_option(arg) ? 0 : 1;
	}
	if (key == FUSE_OPT_KEY_NONOPT) {
		if (c->nonopt++ == 0) {
			c->datadir = strdup(arg);
			return 0; /* consumed: the data dir is ours */
		}
		return 1; /* the mountpoint, for fuse_parse_cmdline() */
	}
	return 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: statehoused DATADIR MOUNTPOINT [-o opt,...] [-f] [-s] [-d]\n"
		"       statehoused --verify DATADIR\n"
		"       statehoused --recover-from-snapshot DATADIR\n"
		"       statehoused --vacuum DATADIR\n"
		"       statehoused --init-store etcd://HOST:PORT[,...]/VOLUME [-o OPTIONS]\n"
		"\n"
		"  --verify               rebuild the state from the whole log and from the newest\n"
		"                         snapshot + the events after it; exit 1 if they differ\n"
		"                         (changes nothing in DATADIR)\n"
		"  --recover-from-snapshot  complete a log that lost acknowledged commits (which a\n"
		"                         start refuses) from the newest snapshot; the commits\n"
		"                         after that snapshot are lost, and that is recorded\n"
		"  --vacuum               compact the store of a stopped daemon and let it shrink\n"
		"                         after a prune (stores made before retention existed)\n"
		"  -f                     stay in the foreground\n"
		"  -s                     one thread answers every request\n"
		"  -d                     debug output (implies -f)\n"
		"  -o txn_timeout_ms=N    default transaction timeout (30000)\n"
		"  -o max_open_txns=N     open transactions at once (1024)\n"
		"  -o max_value_bytes=N   largest value (1048576)\n"
		"  -o max_txns_per_user=N transactions of one user in .tx, finished ones included\n"
		"                         (max_open_txns / 4; 0: no limit; root and the daemon's\n"
		"                         user have none): EDQUOT past it\n"
		"  -o max_txn_timeout_ms=N largest timeout .timeout_ms may set (3600000)\n"
		"  -o max_txn_bytes=N     bytes one transaction may stage (67108864): EDQUOT\n"
		"  -o max_user_txn_bytes=N bytes one user's transactions may stage together\n"
		"                         (4 * max_txn_bytes; 0: no limit): EDQUOT\n"
		"  -o txn_linger_ms=N     a committed, expired or failed transaction stays in .tx\n"
		"                         this long, then goes (600000)\n"
		"  -o isolation=LEVEL     of new transactions: snapshot (default; write skew can\n"
		"                         commit) or serializable (what a transaction read must\n"
		"                         not have changed either); .tx/NAME/.isolation sets one's\n"
		"  -o fsync=0|1           1: every commit is durable when it returns (default);\n"
		"                         0: faster, the last commits may be lost on power loss\n"
		"  -o cache_timeout_s=N   how long the kernel may cache names and attributes of the\n"
		"                         live tree (60); every commit invalidates what it changes\n"
		"  -o snapshot_interval=N commits between snapshots (1000; 0: never)\n"
		"  -o snapshot_keep=N     snapshots kept (3)\n"
		"  -o keep_versions=N     retention: keep the newest N versions of each key and\n"
		"                         prune older ones in the background (0: all, the default)\n"
		"  -o keep_days=D         retention: keep what .at needs for the last D days (a\n"
		"                         decimal, e.g. 0.5; 0: all, the default); with both, a\n"
		"                         version goes only when both rules let it go\n"
		"  -o loop_threads=N      threads that read and answer requests (1..64, default 1)\n"
		"  -o pool_threads=N      threads for requests that read the log or wait for a\n"
		"                         commit: the past, events, live mkdir (1..64, default 4)\n"
		"  -o max_threads=N       serve with libfuse's multi-threaded loop instead\n"
		"  -o log_level=LEVEL     err, warn, info (default) or debug\n"
		"  -o log=syslog|stderr|FILE  where messages go once the mount is live (default:\n"
		"                         stderr with -f, else syslog when /dev/log exists, else\n"
		"                         DATADIR/statehoused.log); SIGHUP reopens FILE\n"
		"  -o store=URI           where the log is kept: sqlite: (the default; SQLite in\n"
		"                         DATADIR/statehouse.db), or etcd://HOST:PORT[,...]/VOLUME\n"
		"                         (a volume shared by mounts on several hosts; DATADIR\n"
		"                         holds this mount's replica)\n"
		"  -o etcd_commit_timeout_ms=N  how long a commit waits for etcd (15000)\n"
		"  -o etcd_cacert=F,etcd_cert=F,etcd_key=F  TLS to etcd\n"
		"  -o etcd_auth_file=F    etcd user and password, 'user:password' in F\n"
		"  -o stale_reads=serve|eio  while etcd cannot be reached, serve reads from the\n"
		"                         replica (serve, the default) or refuse them with EIO\n"
		"  -o ro_mount=PATH       also mount the live tree alone, read-only, at PATH: reads\n"
		"                         there cost no open round trip (the read-heavy setup)\n"
		"  -o supervise=1|0       1 (default): a supervisor keeps the mount and starts a new\n"
		"                         serving process when one dies (clients only pause);\n"
		"                         0: one process, whose death leaves a dead mount\n"
		"  -o nonempty            mount over a MOUNTPOINT that holds files (hides them)\n"
		"  plus the mount options of fuse(8), e.g. allow_other\n");
}

/* Route libfuse's messages through our sink.  libfuse may build one line from several
 * calls, so pieces are gathered until the newline. */
__attribute__((format(printf, 2, 0)))
static void fuse_log_sink(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static _Thread_local char line[1024];
	static _Thread_local size_t used;
	enum log_level l = level <= FUSE_LOG_ERR ? LOG_LVL_ERR
			   : level <= FUSE_LOG_WARNING ? LOG_LVL_WARN
			   : level <= FUSE_LOG_INFO ? LOG_LVL_INFO : LOG_LVL_DEBUG;
	int n;

	n = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
	if (n > 0)
		used += (size_t)n < sizeof(line) - used ? (size_t)n : sizeof(line) - used - 1;
	if (used == 0 || (line[used - 1] != '\n' && used < sizeof(line) - 1))
		return;
	while (used && line[used - 1] == '\n')
		line[--used] = '\0';
	for (char *p = line; *p; p++)
		if (*p == '\n')
			*p = ' ';
	log_msg(l, "%s", line);
	used = 0;
}



/*
 * Called as /sbin/mount.statehouse by mount(8) (fstab type `statehouse`):
 *   mount.statehouse SOURCE MOUNTPOINT [-sfnv] [-N NS] [-o OPTS] [-t TYPE]
 * becomes `statehoused SOURCE MOUNTPOINT -o OPTS`.  mount(8)'s own flags (sloppy, fake,
 * no mtab, verbose) mean nothing here; -s would otherwise mean single-threaded.
 */
static int helper_argv(int argc, char *argv[], struct fuse_args *out)
{
	int i, npos = 0;

	if (fuse_opt_add_arg(out, "statehoused"))
		return -ENOMEM;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-o") || !strcmp(a, "-t") || !strcmp(a, "-N")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "statehoused: option '%s' needs a value\n", a);
				return -EINVAL;
			}
			if (!strcmp(a, "-N")) {
				fprintf(stderr, "statehoused: mounting in another mount namespace "
						"(-N) is not supported\n");
				return -EINVAL;
			}
			if (!strcmp(a, "-o") &&
			    (fuse_opt_add_arg(out, "-o") || fuse_opt_add_arg(out, argv[i + 1])))
				return -ENOMEM;
			i++;
		} else if (a[0] == '-' && a[1] && strspn(a + 1, "sfnv") == strlen(a + 1)) {
			continue;
		} else if (a[0] == '-') {
			fprintf(stderr, "statehoused: unknown mount helper option '%s'\n", a);
			return -EINVAL;
		} else {
			if (npos++ >= 2) {
				fprintf(stderr, "statehoused: unexpected argument '%s'\n", a);
				return -EINVAL;
			}
			if (fuse_opt_add_arg(out, a))
				return -ENOMEM;
		}
	}
	return 0;
}

/* Try the FUSE options on a session that is never mounted, so a bad option is refused
 * before the store is opened (nothing changes on a failed mount). */
static int check_fuse_options(const struct fuse_args *args)
{
	struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
	static const struct fuse_lowlevel_ops none;
	struct fuse_session *se;

	for (int i = 0; i < args->argc; i++)
		if (fuse_opt_add_arg(&copy, args->argv[i]))
			return -ENOMEM;
	se = fuse_session_new(&copy, &none, sizeof(none), NULL);
	fuse_opt_free_args(&copy);
	if (!se)
		return -EINVAL;
	fuse_session_destroy(se);
	return 0;
}

/* May this user share a mount with allow_other?  fusermount3 checks the same. */
static bool user_allow_other(void)
{
	char line[256];
	FILE *f;
	bool ok = false;

	if (geteuid() == 0)
		return true;
	f = fopen("/etc/fuse.conf", "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t");

		if (!strncmp(p, "user_allow_other", 16) && strchr(" \t\r\n#", p[16] ? p[16] : ' '))
			ok = true;
	}
	fclose(f);
	return ok;
}

/* Parent side of the fork: wait for the child's verdict. */
static int wait_child(int rfd, pid_t pid)
{
	char verdict = 1;
	int status;

	if (read(rfd, &verdict, 1) == 1)
		return verdict == 0 ? 0 : 1;
	/* The child died before saying anything. */
	if (waitpid(pid, &status, 0) == pid && WIFSIGNALED(status))
		fprintf(stderr, "statehoused: the daemon died with signal %d while starting\n",
			WTERMSIG(status));
	return 1;
}

/* The checks between options, once all are read (each one's own range was checked as
 * it was read), and the defaults that follow from others. */
static bool options_in_range(struct config *c)
{
	if (c->max_txns_per_user == -1)
		c->max_txns_per_user = c->max_open_txns / 4 > 0 ? c->max_open_txns / 4 : 1;
	if (c->max_user_txn_bytes == -1)
		c->max_user_txn_bytes = c->max_txn_bytes <= (1LL << 40) ? 4 * c->max_txn_bytes : 0;
	if (c->txn_timeout_ms > c->max_txn_timeout_ms) {
		fprintf(stderr, "statehoused: option out of range: txn_timeout_ms=%lld is over "
				"max_txn_timeout_ms=%lld (the largest timeout a transaction may have)\n",
			c->txn_timeout_ms, c->max_txn_timeout_ms);
		return false;
	}
	if (c->keep_days) {
		char *end = NULL;
		double d;

		errno = 0;
		d = strtod(c->keep_days, &end);
		/* At most about 100 years, in nanoseconds well inside int64_t. */
		if (errno || end == c->keep_days || *end || !(d >= 0) || d > 36500) {
			fprintf(stderr, "statehoused: keep_days must be a number of days from 0 to "
					"36500 (a decimal, e.g. 0.5), not '%s'\n", c->keep_days);
			return false;
		}
		c->keep_ns = (int64_t)(d * 86400.0 * 1e9);
		if (d > 0 && c->keep_ns < 1)
			c->keep_ns = 1;
	}
	return true;
}

/*
 * Read the command line into conf and opts; args keeps what goes on to libfuse.  Every
 * refusal happens here, before anything is made on disk.  Returns -1 to go on, or the
 * exit status: 0 after --help or --version, 2 for a bad option, 1 when allow_other is
 * not allowed or /dev/fuse cannot be opened.
 */
static int read_options(struct fuse_args *args, struct config *conf,
			struct fuse_cmdline_opts *opts)
{
	enum log_level lvl;

	if (fuse_opt_parse(args, conf, opt_spec, opt_proc) != 0)
		return 2;
	if (conf->show_help) {
		usage(stdout);
		return 0;
	}
	if (conf->show_version) {
		printf("statehoused %s (git %s, libfuse %s, sqlite %s)\n", STATEHOUSE_VERSION,
		       STATEHOUSE_GIT_SHA, fuse_pkgversion(), txn_sqlite_version());
		return 0;
	}
	if (fuse_parse_cmdline(args, opts) != 0)
		return 2;
	if (!conf->datadir || !opts->mountpoint) {
		fprintf(stderr, "statehoused: missing %s\n", conf->datadir ? "MOUNTPOINT" : "DATADIR");
		usage(stderr);
		return 2;
	}
	if (opts->debug)
		log_set_level(LOG_LVL_DEBUG);
	if (conf->log_level) {
		if (log_parse_level(conf->log_level, &lvl)) {
			fprintf(stderr, "statehoused: unknown log_level '%s' (err, warn, info, debug)\n",
				conf->log_level);
			return 2;
		}
		log_set_level(lvl);
	}
	if (!options_in_range(conf))
		return 2;
	if (conf->supervise && opts->clone_fd) {
		/* a dying worker's cloned descriptors would abort the requests they hold */
		fprintf(stderr, "statehoused: clone_fd cannot keep requests across a worker's "
				"death: use it with -o supervise=0\n");
		return 2;
	}
	if (conf->isolation &&
	    txn_isolation_parse(conf->isolation, strlen(conf->isolation), &conf->iso)) {
		fprintf(stderr, "statehoused: isolation must be snapshot or serializable, not "
				"'%s'\n", conf->isolation);
		return 2;
	}
	if (conf->log_dest && strcmp(conf->log_dest, "syslog") && strcmp(conf->log_dest, "stderr") &&
	    conf->log_dest[0] != '/') {
		fprintf(stderr, "statehoused: log must be syslog, stderr or an absolute file path, "
				"not '%s'\n", conf->log_dest);
		return 2;
	}
	/* Before anything is made in DATADIR: the store's own message names what it serves. */
	if (conf->store_uri && txn_store_uri_check(conf->store_uri))
		return 2;
	if (store_params(conf))
		return 2;
	if (conf->stale_reads && strcmp(conf->stale_reads, "serve") &&
	    strcmp(conf->stale_reads, "eio")) {
		fprintf(stderr, "statehoused: stale_reads must be serve or eio, not '%s'\n",
			conf->stale_reads);
		return 2;
	}
	/* The kernel checks permissions against the owners and modes we report: with
	 * allow_other that is what keeps users apart, and without it chmod still means
	 * what it says for the mount's owner. */
	if (!conf->default_permissions && fuse_opt_add_arg(args, "-odefault_permissions"))
		return 2;
	if (conf->allow_other && !user_allow_other()) {
		fprintf(stderr, "statehoused: cannot mount with allow_other as a user: add "
				"'user_allow_other' to /etc/fuse.conf (or mount as root)\n");
		return 1;
	}
	if (check_fuse_options(args)) {
		fprintf(stderr, "statehoused: cannot mount: bad mount option (see above); "
				"'statehoused --help' lists the options\n");
		return 2;
	}
	if (fs_check_fuse_device())
		return 1;
	return -1;
}

/* The store holds every value in the clear: a data dir that other users may enter lets
 * them copy it and read what the mount's modes hide. */
static void warn_if_open(const char *datadir)
{
	struct stat st;

	if (stat(datadir, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (st.st_mode & (S_IRGRP | S_IXGRP | S_IROTH | S_IXOTH)))
		log_warn("data dir '%s' is open to other users (mode %04o): they can copy the "
			 "store and read every value whatever the mount's modes; 'chmod 700 %s'",
			 datadir, (unsigned)(st.st_mode & 07777), datadir);
}

/* Check the mountpoint (a dead mount is checked once detached, just before mounting),
 * create DATADIR (refused on FUSE; conf->datadir_made says what was made) and resolve it
 * into datadir (PATH_MAX bytes).  0 or -1, logged. */
static int prepare_dirs(struct config *conf, const char *mnt, char *datadir)
{
	const char *datadir_arg = conf->datadir;

	fs_datadir_wait_previous(datadir_arg);
	conf->mnt_dead = fs_mount_is_dead(mnt);
	if (!conf->mnt_dead && fs_mountpoint_check(mnt, NULL, conf->nonempty))
		return -1;
	if (conf->ro_mount && fs_romount_check(conf->ro_mount, mnt, conf->nonempty))
		return -1;
	if (fs_datadir_make(datadir_arg, &conf->datadir_made))
		return -1;
	if (!realpath(datadir_arg, datadir)) {
		log_err("cannot resolve data dir '%s': %s", datadir_arg, strerror(errno));
		return -1;
	}
	warn_if_open(datadir);
	return 0;
}

/*
 * Choose where messages go once the mount is live (-o log=).  A log file is opened now,
 * so a path that cannot be written fails the start and the file has the start's
 * messages too.  0 or -1, logged.
 */
static int open_log(struct config *c, const char *datadir, bool foreground)
{
	const char *dest = c->log_dest;
	char path[PATH_MAX + 32];
	int err;

	if (!dest)
		dest = foreground ? "stderr" : access("/dev/log", F_OK) == 0 ? "syslog" : NULL;
	c->log_to = !dest ? LOG_TO_FILE : !strcmp(dest, "stderr") ? LOG_TO_STDERR
		  : !strcmp(dest, "syslog") ? LOG_TO_SYSLOG : LOG_TO_FILE;
	if (c->log_to != LOG_TO_FILE)
		return 0;
	if (!dest) {
		snprintf(path, sizeof(path), "%s/statehoused.log", datadir);
		dest = path;
	}
	err = log_open_file(dest);
	if (err)
		log_err("cannot open log file '%s': %s", dest, strerror(-err));
	return err ? -1 : 0;
}

/* SIGHUP: logrotate moved the log file; open its path again and go on serving. */
static void on_sighup(int sig)
{
	(void)sig;
	log_reopen();
}

/*
 * Fork into the background.  The child returns 0 and keeps pipefd[1] to report its
 * verdict; the parent returns 1 with the child's verdict as *parent_status; -1 when
 * neither could happen (logged).
 */
static int daemonize(int pipefd[2], int *parent_status)
{
	pid_t pid;

	if (pipe(pipefd) != 0) {
		log_err("cannot create a pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		log_err("cannot fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		close(pipefd[1]);
		*parent_status = wait_child(pipefd[0], pid);
		close(pipefd[0]);
		return 1;
	}
	close(pipefd[0]);
	pipefd[0] = -1;
	setsid();
	return 0;
}

/*
 * The etcd_* options as the store's parameters ("name=value,..."), refused without an
 * etcd store: a misspelt store must not quietly drop them.
 */
static int store_params(struct config *conf)
{
	const struct { const char *name; const char *val; } p[] = {
		{ "etcd_commit_timeout_ms", conf->etcd_commit_timeout_ms },
		{ "etcd_cacert", conf->etcd_cacert },
		{ "etcd_cert", conf->etcd_cert },
		{ "etcd_key", conf->etcd_key },
		{ "etcd_auth_file", conf->etcd_auth_file },
	};
	size_t len = 0;

	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
		if (!p[i].val)
			continue;
		if (!conf->store_uri || strncasecmp(conf->store_uri, "etcd:", 5)) {
			fprintf(stderr, "statehoused: -o %s needs -o store=etcd://...\n", p[i].name);
			return -1;
		}
		if (strchr(p[i].val, ',')) {
			fprintf(stderr, "statehoused: -o %s: a value may not hold a comma\n",
				p[i].name);
			return -1;
		}
		len += strlen(p[i].name) + strlen(p[i].val) + 2;
	}
	if (!len)
		return 0;
	conf->store_params = calloc(1, len + 1);
	if (!conf->store_params)
		return -1;
	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
		if (p[i].val)
			sprintf(conf->store_params + strlen(conf->store_params), "%s%s=%s",
				*conf->store_params ? "," : "", p[i].name, p[i].val);
	}
	return 0;
}

/* The engine of the locked datadir, with the test fault of the environment set. */
static int open_engine(const char *datadir, const struct config *conf,
		       struct txn_engine **eng, const struct sup_worker *w)
{
	int64_t pin_ts = 0;
	bool pin = w && fs_worker_pin_ts(w, &pin_ts);
	struct txn_options topt = {
		.txn_timeout_ms = conf->txn_timeout_ms,
		.max_open_txns = (unsigned)conf->max_open_txns,
		.max_value_bytes = (size_t)conf->max_value_bytes,
		.max_txns_per_user = (unsigned)conf->max_txns_per_user,
		.max_txn_timeout_ms = conf->max_txn_timeout_ms,
		.max_txn_bytes = (size_t)conf->max_txn_bytes,
		.max_user_txn_bytes = (size_t)conf->max_user_txn_bytes,
		.txn_linger_ms = conf->txn_linger_ms,
		.exempt_uid = (uint32_t)geteuid(),
		.fsync = (int)conf->fsync,
		.snapshot_interval = (unsigned)conf->snapshot_interval,
		.snapshot_keep = (unsigned)conf->snapshot_keep,
		.owner_uid = (uint32_t)geteuid(),
		.owner_gid = (uint32_t)getegid(),
		.store_uri = conf->store_uri,
		.store_params = conf->store_params,
		.isolation = conf->iso,
		.keep_versions = (uint32_t)conf->keep_versions,
		.keep_ns = conf->keep_ns,
		.instance = w ? w->sh->instance : 0,
		.pin = pin,
		.pin_ts = pin_ts,
	};

	if (txn_engine_open(datadir, &topt, eng))
		return -1;
	return fs_test_knobs_from_env(*eng) ? -1 : 0;
}

/* fsname shows the data dir in mount(8) and df; commas must be escaped. */
static int add_fsname(struct fuse_args *args, const char *datadir)
{
	char *escaped = NULL, *o;
	int err = -ENOMEM;

	if (fuse_opt_add_opt_escaped(&escaped, datadir) == 0 &&
	    fuse_opt_add_arg(args, "-osubtype=statehouse") == 0 &&
	    asprintf(&o, "-ofsname=%s", escaped) >= 0) {
		if (fuse_opt_add_arg(args, o) == 0)
			err = 0;
		free(o);
	}
	free(escaped);
	return err;
}

/* From now on, log where the options say (the mount is live). */
static void log_to_sink(const struct config *conf)
{
	if (conf->log_to == LOG_TO_SYSLOG)
		log_use_syslog("statehoused");
	else if (conf->log_to == LOG_TO_FILE)
		log_use_file();
}

/* Let go of the terminal (stderr too unless the log goes there). */
static void detach_stdio(bool keep_stderr)
{
	int devnull = open("/dev/null", O_RDWR);

	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		if (!keep_stderr)
			dup2(devnull, STDERR_FILENO);
		if (devnull > STDERR_FILENO)
			close(devnull);
	}
	if (chdir("/") != 0)
		log_warn("cannot chdir to '/': %s", strerror(errno));
}

/* The mount is live: let go of the terminal, tell the parent, log where configured. */
static void report_live(int *wfd, const struct config *conf)
{
	char ok = 0;

	detach_stdio(conf->log_to == LOG_TO_STDERR);
	if (write(*wfd, &ok, 1) != 1)
		log_warn("cannot tell the parent that the mount is live");
	close(*wfd);
	*wfd = -1;
}

/* Serve until unmounted; 0 for a clean stop, 1 otherwise. */
static int serve(struct fs *fs, const struct fuse_cmdline_opts *opts, const struct config *conf)
{
	struct fs_loop_options lo = {
		.single = opts->singlethread,
		.libfuse_mt = conf->libfuse_mt && !opts->singlethread,
		.max_threads = opts->max_threads,
		.max_idle_threads = opts->max_idle_threads != UINT_MAX ? opts->max_idle_threads : 0,
		.clone_fd = opts->clone_fd,
		.loop_threads = (unsigned)conf->loop_threads,
		.pool_threads = (unsigned)conf->pool_threads,
	};
	int ret = fs_serve(fs, &lo);

	/* A positive result is the signal that ended the loop: a clean stop, as after an
	 * unmount (systemctl stop must not mark the unit failed). */
	return ret < 0 ? 1 : 0;
}

/*
 * Mount fs at the mountpoint, start the engine's and fs's threads and serve until
 * unmounted; then stop the engine and free *fsp (NULL after).  *sep gets the session,
 * the caller's to destroy.  Returns the exit status.
 */
static int mount_and_serve(struct fuse_args *args, const struct fuse_cmdline_opts *opts,
			   struct config *conf, const char *datadir,
			   struct txn_engine *eng, struct fs **fsp, int *wfd,
			   struct fuse_session **sep, const struct sup_worker *w)
{
	size_t ops_size;
	const void *ops = fs_ops(&ops_size);
	struct fuse_session *se;
	int ret = 1;

	se = fuse_session_new(args, ops, ops_size, *fsp);
	if (!se) {
		log_err("cannot start a FUSE session (see the message above)");
		return 1;
	}
	*sep = se;
	if (fuse_set_signal_handlers(se) != 0)
		return 1;
	/* libfuse's SIGHUP would stop the daemon; ours reopens the log file instead. */
	{
		struct sigaction sa = { .sa_handler = on_sighup, .sa_flags = SA_RESTART };

		sigemptyset(&sa.sa_mask);
		sigaction(SIGHUP, &sa, NULL);
	}
	if (w) {
		/* a worker: the supervisor mounted; the kernel's INIT is in w */
		if (fs_worker_attach(*fsp, se, w))
			goto out_handlers;
	} else {
		if ((conf->mnt_dead || fs_mount_is_dead(opts->mountpoint)) &&
		    (fs_mount_detach_dead(opts->mountpoint) ||
		     fs_mountpoint_check(opts->mountpoint, NULL, conf->nonempty)))
			goto out_handlers;
		if (fuse_session_mount(se, opts->mountpoint) != 0) {
			log_err("cannot mount on '%s'", opts->mountpoint);
			goto out_handlers;
		}
	}
	if (txn_engine_start(eng) || fs_start(*fsp, se)) {
		log_err("cannot start the daemon's threads");
		goto out_unmount;
	}
	if (w && fs_worker_ready(*fsp)) {
		log_err("cannot take over the mount");
		txn_engine_stop(eng);
		goto out_unmount;
	}
	/* the read-only mount is the worker's: a new worker mounts it again */
	if (conf->ro_mount && fs_romount_start(*fsp, conf->ro_mount, conf->allow_other,
					       conf->nonempty, &conf->ro))
		goto out_unmount;
	if (!w || !w->restarted)
		log_info("serving '%s' at '%s'", datadir, opts->mountpoint);
	conf->served = true;
	if (*wfd >= 0)
		report_live(wfd, conf);
	else if (w && !w->restarted && !opts->foreground)
		detach_stdio(conf->log_to == LOG_TO_STDERR);
	log_to_sink(conf);

	ret = serve(*fsp, opts, conf);
	log_info("unmounted '%s'; stopping", opts->mountpoint);
	/* Complete every queued commit, then the notifier, before the sessions go. */
	txn_engine_stop(eng);
	fs_romount_stop(conf->ro);
	conf->ro = NULL;
	fs_free(*fsp);
	*fsp = NULL;
out_unmount:
	fuse_session_unmount(se);
out_handlers:
	fuse_remove_signal_handlers(se);
	return ret;
}

/* The supervisor's part: the first worker serves. */
struct live_arg {
	int *wfd;
	struct config *conf;
};

static void supervisor_live(void *arg)
{
	struct live_arg *a = arg;

	a->conf->served = true;
	if (*a->wfd >= 0)
		report_live(a->wfd, a->conf);
	log_to_sink(a->conf);
}

/*
 * Mount under a supervisor (supervise.h).  Returns 0 in a worker (*w filled in: it goes
 * on to open the store and serve), 1 in the supervisor once it is over (*status: the
 * daemon's exit status), -1 when nothing could be mounted.
 */
static int supervise(struct fuse_args *args, const struct fuse_cmdline_opts *opts,
		     struct config *conf, int *wfd, struct sup_worker *w, int *status)
{
	struct live_arg la = { .wfd = wfd, .conf = conf };
	struct sup_config sc = { .args = args, .mountpoint = opts->mountpoint,
				 .live = supervisor_live, .live_arg = &la };
	int r;

	if ((conf->mnt_dead || fs_mount_is_dead(opts->mountpoint)) &&
	    (fs_mount_detach_dead(opts->mountpoint) ||
	     fs_mountpoint_check(opts->mountpoint, NULL, conf->nonempty)))
		return -1;
	r = sup_run(&sc, w, status);
	if (r == 0 && *wfd >= 0) {
		/* a worker: the supervisor tells the parent */
		close(*wfd);
		*wfd = -1;
	}
	return r;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct config conf = { .txn_timeout_ms = 30000, .max_open_txns = 1024,
			       .max_value_bytes = 1048576, .cache_timeout_s = 60,
			       .max_txns_per_user = -1, .max_txn_timeout_ms = 3600000,
			       .max_txn_bytes = 64LL << 20, .max_user_txn_bytes = -1,
			       .txn_linger_ms = 600000,
			       .snapshot_interval = 1000, .snapshot_keep = 3, .fsync = 1,
			       .loop_threads = 1, .pool_threads = 4, .supervise = 1 };
	struct fuse_cmdline_opts opts = { 0 };
	struct txn_engine *eng = NULL;
	struct fuse_session *se = NULL;
	struct fs *fs = NULL;
	struct sup_worker worker;
	char datadir[PATH_MAX];
	int pipefd[2] = { -1, -1 };
	int lockfd = -1, ret = 1;
	const char *base = strrchr(argv[0], '/');

	/* Every file the daemon makes (data dir, store, WAL, snapshots, lock) is its
	 * user's alone: SQLite would create the database 0644. */
	umask(077);
	fuse_set_log_func(fuse_log_sink);
	base = base ? base + 1 : argv[0];
	if (!strncmp(base, "mount.", 6)) {
		args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
		if (helper_argv(argc, argv, &args)) {
			ret = 2;
			goto out_parent;
		}
	}
	if (argc >= 2 && !strcmp(argv[1], "--verify")) {
		if (argc != 3) {
			fprintf(stderr, "usage: statehoused --verify DATADIR\n");
			return 2;
		}
		return txn_verify(argv[2], NULL) == 0 ? 0 : 1;
	}
	if (argc >= 2 && !strcmp(argv[1], "--init-store")) {
		if (argc != 3 && !(argc == 5 && !strcmp(argv[3], "-o"))) {
			fprintf(stderr, "usage: statehoused --init-store URI [-o etcd_...=...,...]\n");
			return 2;
		}
		ret = txn_store_create(argv[2], argc == 5 ? argv[4] : NULL);
		return ret == 0 ? 0 : 1;
	}
	if (argc >= 2 && !strcmp(argv[1], "--vacuum")) {
		struct stat sb;

		if (argc != 3) {
			fprintf(stderr, "usage: statehoused --vacuum DATADIR\n");
			return 2;
		}
		if (stat(argv[2], &sb) != 0 || !S_ISDIR(sb.st_mode)) {
			log_err("cannot vacuum '%s': not a directory", argv[2]);
			return 1;
		}
		/* Never beside a running daemon. */
		if (fs_lock_datadir(argv[2], &lockfd))
			return 1;
		ret = txn_vacuum(argv[2], NULL) == 0 ? 0 : 1;
		close(lockfd);
		return ret;
	}
	if (argc >= 2 && !strcmp(argv[1], "--recover-from-snapshot")) {
		struct stat sb;

		if (argc != 3) {
			fprintf(stderr, "usage: statehoused --recover-from-snapshot DATADIR\n");
			return 2;
		}
		if (stat(argv[2], &sb) != 0 || !S_ISDIR(sb.st_mode)) {
			log_err("cannot recover '%s': not a directory", argv[2]);
			return 1;
		}
		/* Never beside a running daemon. */
		if (fs_lock_datadir(argv[2], &lockfd))
			return 1;
		ret = txn_recover_from_snapshot(argv[2], NULL) == 0 ? 0 : 1;
		close(lockfd);
		return ret;
	}
	ret = read_options(&args, &conf, &opts);
	if (ret >= 0)
		goto out_parent;
	ret = 1;
	if (prepare_dirs(&conf, opts.mountpoint, datadir))
		goto out;
	if (!opts.foreground) {
		int child = daemonize(pipefd, &ret);

		if (child < 0)
			goto out;
		if (child > 0) {
			/* the child removed what it made, unless it died first */
			if (ret) {
				fs_datadir_unmake(conf.datadir_made, conf.datadir, -1);
				conf.datadir_made = NULL;
			}
			goto out_parent;
		}
	}
	if (fs_lock_datadir(datadir, &lockfd) || open_log(&conf, datadir, opts.foreground) ||
	    add_fsname(&args, datadir))
		goto out;
	if (conf.supervise) {
		int r = supervise(&args, &opts, &conf, &pipefd[1], &worker, &ret);

		if (r != 0)
			goto out; /* the supervisor, done (ret set), or no mount (ret 1) */
		/* a worker: the supervisor owns the data dir's fate and the parent's pipe */
		free(conf.datadir_made);
		conf.datadir_made = NULL;
		ret = 1;
	}
	if (open_engine(datadir, &conf, &eng, conf.supervise ? &worker : NULL))
		goto out;
	{
		struct fs_options fopt = { .entry_timeout_s = (double)conf.cache_timeout_s,
					   .datadir = datadir,
					   .mountpoint = opts.mountpoint,
					   .read_only = conf.read_only,
					   .stale_eio = conf.stale_reads &&
							!strcmp(conf.stale_reads, "eio") };

		if (fs_new(eng, &fopt, &fs))
			goto out;
	}
	ret = mount_and_serve(&args, &opts, &conf, datadir, eng, &fs, &pipefd[1], &se,
			      conf.supervise ? &worker : NULL);
out:
	txn_engine_stop(eng);
	fs_free(fs);
	if (se)
		fuse_session_destroy(se);
	txn_engine_close(eng);
	/* A start that failed leaves no data dir it made behind (nothing was served). */
	if (ret && !conf.served) {
		fs_datadir_unmake(conf.datadir_made, conf.datadir, lockfd);
		conf.datadir_made = NULL;
	}
	if (pipefd[1] >= 0) {
		char bad = 1;

		if (write(pipefd[1], &bad, 1) != 1)
			ret = 1;
		close(pipefd[1]);
	}
	if (lockfd >= 0)
		close(lockfd);
out_parent:
	free(conf.datadir_made);
	free(opts.mountpoint);
	free(conf.datadir);
	free(conf.log_level);
	free(conf.log_dest);
	free(conf.store_uri);
	free(conf.store_params);
	free(conf.stale_reads);
	free(conf.etcd_commit_timeout_ms);
	free(conf.etcd_cacert);
	free(conf.etcd_cert);
	free(conf.etcd_key);
	free(conf.etcd_auth_file);
	free(conf.isolation);
	free(conf.ro_mount);
	free(conf.keep_days);
	fuse_opt_free_args(&args);
	return ret;
}
