/* SPDX-License-Identifier: MIT */
/*
 * main.c - statehousectl: the command table, the global options and the help texts
 * (mountctl/, the command-line layer).  Each command lives in mounts.c, state.c,
 * events.c or txn.c and parses its own options with ctl_getopt(), so the common ones (-m,
 * --ns, --json, --help) work before and after the command's name.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "version.h"
#include "ctl.h"

#define COMMON_HELP                                                                   \
	"\ncommon options (before or after the command):\n"                              \
	"  -m, --mount MOUNTPOINT  the statehouse mount to use (else $STATEHOUSE_MOUNT, else\n" \
	"                          the only statehouse mount)\n"                            \
	"  --ns NS                 namespace (default: default); --namespace NS too\n"      \
	"  --json                  output for machines\n"                                   \
	"  -h, --help              this help\n"

static const struct ctl_cmd cmds[] = {
	{ "mount", ctl_cmd_mount, "mount DATADIR MOUNTPOINT [-o OPTS]",
	  "Start statehoused on DATADIR and mount it at MOUNTPOINT; returns once the mount\n"
	  "answers.  The daemon is $STATEHOUSED, else the statehoused next to statehousectl,\n"
	  "else the one in PATH.\n"
	  "\n  -o OPTS   daemon options, e.g. fsync=0,max_value_bytes=4096 (repeatable)\n" },
	{ "init", ctl_cmd_init, "init etcd://HOST:PORT[,HOST:PORT...]/VOLUME [-o OPTS]",
	  "Create a volume in etcd, which mounts on several hosts then share\n"
	  "(statehoused -o store=etcd://.../VOLUME); refused, changing nothing, when it\n"
	  "exists.  Runs the daemon's --init-store (found as for mount).\n"
	  "\n  -o OPTS   etcd options: etcd_cacert=F,etcd_cert=F,etcd_key=F,etcd_auth_file=F\n" },
	{ "umount", ctl_cmd_umount, "umount MOUNTPOINT [--timeout S]",
	  "Unmount cleanly and wait until the daemon has exited (its queued commits are\n"
	  "durable and its snapshot written by then).  Warns how many open transactions are\n"
	  "lost.  A dead mount (its daemon was killed) is detached lazily.\n"
	  "\n  --timeout S   wait at most S seconds for the daemon (default 60; 0: forever)\n" },
	{ "status", ctl_cmd_status, "status [MOUNTPOINT]",
	  "Every statehouse mount (or one): data dir, daemon pid, health, head commit_ts,\n"
	  "open transactions, restarts and the last recovery; a dead mount with the command\n"
	  "that restarts its daemon.  Exits 3 when a mount shown is dead or unhealthy.  --json\n"
	  "prints a JSON array with the daemon's .status of each mount.\n" },
	{ "fstab", ctl_cmd_fstab, "fstab DATADIR MOUNTPOINT [-o OPTS] [--update-fstab] [--fstab FILE]",
	  "Print the /etc/fstab line that mounts DATADIR at MOUNTPOINT at boot.\n"
	  "\n  -o OPTS          daemon options appended to defaults,nofail (repeatable)\n"
	  "  --update-fstab   also add the line to /etc/fstab, atomically and under a lock;\n"
	  "                   refused when the file already has an entry for MOUNTPOINT\n"
	  "  --fstab FILE     update FILE instead of /etc/fstab (implies --update-fstab)\n" },
	{ "backup", ctl_cmd_backup, "backup DEST",
	  "Write a consistent copy of the whole store (every namespace, the whole log) to the\n"
	  "new file DEST while the mount keeps serving: the daemon's .backup, made with\n"
	  "SQLite's online backup API as of one commit_ts.  Restore: a new data dir with DEST\n"
	  "as its statehouse.db.  Only the daemon's user (or root) may read .backup.\n" },
	{ "health", ctl_cmd_health, "health",
	  "Print the daemon's health (a real round trip to its store); exit 3 unless ok.\n" },
	{ "version", ctl_cmd_version, "version",
	  "Print the versions of statehousectl and of the mounted daemon.\n" },
	{ "get", ctl_cmd_get, "get AGENT KEY",
	  "Print KEY's committed value, byte for byte.  --json (or --json-output) prints\n"
	  "{namespace, agent, key, version, commit_ts, value} (value_base64 for bytes that\n"
	  "are not UTF-8).\n"
	  "\n  --pretty    the key, its version and commit_ts, and a summary of the value\n" },
	{ "put", ctl_cmd_put, "put AGENT KEY [VALUE | -] [--if-version N | --if-absent]",
	  "Commit VALUE (standard input when VALUE is - or missing) as KEY's new value; the\n"
	  "commit's outcome is checked at close.  A VALUE that begins with - goes after --.\n"
	  "\n  --if-version N   only if KEY is at version N when it commits (0: absent);\n"
	  "                   exit 4, writing nothing, when it is not\n"
	  "  --if-absent      only if KEY does not exist when it commits (exit 4 if it does)\n" },
	{ "rm", ctl_cmd_rm, "rm AGENT KEY [--if-version N]",
	  "Commit the delete of KEY.\n"
	  "\n  --if-version N   only if KEY is at version N when the delete commits; exit 4,\n"
	  "                   deleting nothing, when it is not (or does not exist)\n" },
	{ "keys", ctl_cmd_keys, "keys AGENT [--prefix P]",
	  "List the agent's live keys, sorted, one a line (--json: a JSON array).\n"
	  "\n  --prefix P   only the keys that begin with P\n" },
	{ "agents", ctl_cmd_agents, "agents",
	  "List the agents of the namespace that hold keys (--json: a JSON array).\n" },
	{ "history", ctl_cmd_history, "history AGENT KEY",
	  "Every version of KEY: version, time, commit_ts, op, size, txn and the value.\n"
	  "--json prints the daemon's index.jsonl lines unchanged.\n" },
	{ "replay", ctl_cmd_replay, "replay AGENT [--since TS] [--until TS] [--limit N] [--verbose]",
	  "The agent's committed operations in commit_ts order, one line per operation:\n"
	  "time, commit_ts, agent, op, key, version and a short value summary.  --json\n"
	  "prints the daemon's event lines (JSON Lines: one commit a line, with this agent's\n"
	  "ops), plus the original statehousectl's txn_id, namespace, agent_id and\n"
	  "operations.\n"
	  "\n  --since TS   from commit_ts TS on (--start-ts TS too; 0: from the first)\n"
	  "  --until TS   up to commit_ts TS (--end-ts TS too)\n"
	  "  --limit N    at most N commits\n"
	  "  --verbose    each op's transaction, and whole values\n" },
	{ "tail", ctl_cmd_tail, "tail AGENT [-n N] [-f [--no-wait]] [--prefix P]",
	  "The agent's last N commits (default 10), as replay prints them.\n"
	  "\n  -n N        how many commits\n"
	  "  -f          then follow new commits (none missed, none twice) until interrupted;\n"
	  "              when the daemon dies or stops, wait until the mount answers again\n"
	  "              and go on after the last commit printed\n"
	  "  --no-wait   with -f: exit 3 when the mount stops answering instead\n"
	  "  --prefix P  only the commits with ops on the key P or keys below P/, with only\n"
	  "              those ops\n" },
	{ "dump", ctl_cmd_dump, "dump AGENT [-o FILE] [--format json|text]",
	  "Every key of the agent as of one commit (the head), as one JSON object:\n"
	  "{\"commit_ts\":N,\"namespace\":..,\"agent\":..,\"keys\":{KEY:VALUE,..}}; a value is its\n"
	  "JSON when it parses, else a string; values that are not UTF-8 go to\n"
	  "\"keys_base64\" instead.  Indented unless --json.\n"
	  "\n  -o, --output FILE   write FILE atomically instead of standard output\n"
	  "  --format text       one line per key: the key, a tab, the value as JSON\n" },
	{ "inspect", ctl_cmd_inspect, "inspect AGENT",
	  "The agent at a glance: key count, commits and ops, first and last commit, and\n"
	  "its latest operations.\n" },
	{ "txn begin", ctl_cmd_txn_begin, "txn begin [NAME] [--timeout-ms MS]",
	  "Begin a transaction (a generated NAME when none is given) and print its name and\n"
	  "directory, separated by a tab.  Write below the directory to stage.\n"
	  "\n  --timeout-ms MS   expire it MS milliseconds after begin (default: the daemon's)\n" },
	{ "txn commit", ctl_cmd_txn_commit, "txn commit NAME [--note TEXT] [--keep]",
	  "Commit the transaction atomically and durably, print its commit_ts (--json: the\n"
	  "whole .commit), then remove its directory.  A conflict or an expired transaction\n"
	  "fails (exit 1), applies nothing and is removed.\n"
	  "\n  --note TEXT   record TEXT (JSON or text) as the commit's note\n"
	  "  --keep        keep the directory after the commit\n" },
	{ "txn abort", ctl_cmd_txn_abort, "txn abort NAME",
	  "Abort the transaction: nothing it staged becomes visible.\n" },
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const struct ctl_cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

static void general_help(FILE *f)
{
	fprintf(f, "usage: statehousectl [-m MOUNTPOINT] [--ns NS] [--json] COMMAND [ARGS]\n\n"
		   "Control statehoused mounts and read and write their state through the mount.\n\n"
		   "commands:\n");
	for (size_t i = 0; i < NCMDS; i++)
		fprintf(f, "  %s\n", cmds[i].synopsis);
	fprintf(f, "  help [COMMAND]\n" COMMON_HELP
		   "  --version               print statehousectl's version\n"
		   "\nexit status: 0 success, 1 failure (not found, conflict, expired, ...), 2 usage\n"
		   "error, 3 the mount is not answering (its daemon is gone, no statehouse mount\n"
		   "there, .health fails), 4 a precondition (put/rm --if-version, put --if-absent)\n"
		   "did not hold.  See statehousectl(1) and statehouse(5).\n");
}

void ctl_cmd_help(const struct ctl_cmd *cmd, FILE *f)
{
	fprintf(f, "usage: statehousectl %s\n\n%s" COMMON_HELP, cmd->synopsis, cmd->help);
}

static void txn_help(FILE *f)
{
	fprintf(f, "usage: statehousectl txn begin|commit|abort ...\n\n");
	for (size_t i = 0; i < NCMDS; i++)
		if (!strncmp(cmds[i].name, "txn ", 4))
			fprintf(f, "  %s\n", cmds[i].synopsis);
	fprintf(f, "\nstatehousectl help txn begin (and so on) explains each.\n");
}

int ctl_usage(const struct ctl *c, const char *fmt, ...)
{
	va_list ap;

	fputs("statehousectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (c && c->cmd)
		fprintf(stderr, "\nusage: statehousectl %s\n(statehousectl %s --help for more)\n",
			c->cmd->synopsis, c->cmd->name);
	else
		fputs("\n(statehousectl --help for more)\n", stderr);
	return CTL_EXIT_USAGE;
}

/* The option getopt stopped at, for messages. */
static const char *bad_option(char **argv)
{
	static char s[8];

	if (optopt > 0 && optopt < 128) {
		snprintf(s, sizeof(s), "-%c", optopt);
		return s;
	}
	return argv[optind - 1];
}

int ctl_getopt(struct ctl *c, int argc, char **argv, const char *shortopts,
	       const struct option *longopts, int *stop)
{
	static char sopts[64];
	static struct option lopts[32];
	static const struct option common[] = { CTL_COMMON_LONGOPTS };
	size_t n = 0;
	int opt;

	/* Rebuilt on every call: cheap, and no state to go stale between commands. */
	if (shortopts[0] == '+')
		snprintf(sopts, sizeof(sopts), "+:m:h%s", shortopts + 1);
	else
		snprintf(sopts, sizeof(sopts), ":m:h%s", shortopts);
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		lopts[n++] = common[i];
	for (; longopts && longopts->name && n < 31; longopts++)
		lopts[n++] = *longopts;
	memset(&lopts[n], 0, sizeof(lopts[n]));

	opterr = 0;
	for (;;) {
		opt = getopt_long(argc, argv, sopts, lopts, NULL);
		switch (opt) {
		case 'm':
			c->mount_opt = optarg;
			continue;
		case CTL_OPT_NS:
			c->ns = optarg;
			continue;
		case CTL_OPT_JSON:
			c->json = true;
			continue;
		case 'h':
			if (c->cmd)
				ctl_cmd_help(c->cmd, stdout);
			else
				general_help(stdout);
			*stop = ctl_finish_stdout(CTL_EXIT_OK);
			return -2;
		case ':':
			*stop = ctl_usage(c, "option '%s' needs a value", bad_option(argv));
			return -2;
		case '?':
			*stop = ctl_usage(c, "unknown option '%s'", bad_option(argv));
			return -2;
		default:
			return opt;
		}
	}
}

static int run_help(struct ctl *c, int argc, char **argv)
{
	const struct ctl_cmd *cmd;
	char name[64];

	if (argc <= 1) {
		general_help(stdout);
		return ctl_finish_stdout(CTL_EXIT_OK);
	}
	if (!strcmp(argv[1], "txn") && argc == 2) {
		txn_help(stdout);
		return ctl_finish_stdout(CTL_EXIT_OK);
	}
	snprintf(name, sizeof(name), "%s%s%s", argv[1], argc > 2 ? " " : "", argc > 2 ? argv[2] : "");
	cmd = find_cmd(name);
	if (!cmd || argc > 3)
		return ctl_usage(c, "no command '%s'", name);
	ctl_cmd_help(cmd, stdout);
	return ctl_finish_stdout(CTL_EXIT_OK);
}

int main(int argc, char **argv)
{
	static const struct option global[] = { { "version", no_argument, NULL, 'V' }, { 0 } };
	struct ctl c = { .ns = "default" };
	const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
	const struct ctl_cmd *cmd;
	char name[64];
	int opt, stop = 0, rc;

	c.color = isatty(STDOUT_FILENO) && (!nc || !*nc) && !(term && !strcmp(term, "dumb"));
	c.progress = isatty(STDERR_FILENO);
	c.stdout_tty = isatty(STDOUT_FILENO);

	/* Global options stop at the command's name ("+"): the command parses the rest. */
	while ((opt = ctl_getopt(&c, argc, argv, "+", global, &stop)) != -1) {
		if (opt == -2)
			return stop;
		if (opt == 'V') {
			printf("statehousectl %s (git %s)\n", STATEHOUSE_VERSION, STATEHOUSE_GIT_SHA);
			return ctl_finish_stdout(CTL_EXIT_OK);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		general_help(stderr);
		return CTL_EXIT_USAGE;
	}
	if (!strcmp(argv[0], "help"))
		return run_help(&c, argc, argv);
	if (!strcmp(argv[0], "txn")) {
		if (argc < 2 || argv[1][0] == '-') {
			if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
				txn_help(stdout);
				return ctl_finish_stdout(CTL_EXIT_OK);
			}
			txn_help(stderr);
			return CTL_EXIT_USAGE;
		}
		snprintf(name, sizeof(name), "txn %s", argv[1]);
		argc--;
		argv++;
	} else {
		snprintf(name, sizeof(name), "%s", argv[0]);
	}
	cmd = find_cmd(name);
	if (!cmd)
		return ctl_usage(&c, "unknown command '%s'", name);
	c.cmd = cmd;
	optind = 0; /* GNU getopt: start over on the command's arguments */
	rc = cmd->run(&c, argc, argv);
	free(c.mnt);
	return rc;
}
