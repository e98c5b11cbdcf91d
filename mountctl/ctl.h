/* SPDX-License-Identifier: MIT */
/*
 * ctl.h - statehousectl's shared declarations (mountctl/, the command-line layer).
 *
 * statehousectl talks to a daemon only through its mount: files, rename, mkdir, xattrs
 * and /proc/self/mountinfo.  It never links store/, txn/, fs/ or SQLite; jansson reads
 * and writes the JSON the daemon serves.
 */
#ifndef STATEHOUSE_CTL_H
#define STATEHOUSE_CTL_H

#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "grow.h"

/*
 * Exit codes (statehousectl(1), EXIT STATUS): success; a failure (not found, conflict,
 * expired, a refused commit); a usage error; the mount is not answering (its daemon is
 * gone, the path is no statehouse mount, or .health fails), so that a script tells a
 * missing key from a dead daemon; a precondition that did not hold (put --if-version /
 * --if-absent, rm --if-version).
 */
enum { CTL_EXIT_OK = 0, CTL_EXIT_FAIL = 1, CTL_EXIT_USAGE = 2, CTL_EXIT_MOUNT = 3,
       CTL_EXIT_PRECONDITION = 4 };

/* Limits of the file interface (statehouse(5)); checked before any request is made. */
#define CTL_NAME_MAX 255
#define CTL_KEY_MAX 1024
/* Bytes of an encoded key in a .history segment directory, before its "%+". */
#define CTL_SEGMENT_MAX 253

struct ctl_cmd;

/* One invocation: the global options and the mount they select. */
struct ctl {
	const char *mount_opt; /* -m, or NULL */
	const char *ns;        /* --ns (or --namespace), "default" unless given */
	bool json;             /* --json */
	bool verbose;          /* replay --verbose: the transaction and whole values */
	bool color;            /* stdout is a terminal and NO_COLOR is unset */
	bool progress;         /* stderr is a terminal */
	bool stdout_tty;       /* stdout is a terminal: a stream there is its own progress */
	char *mnt;             /* the selected mountpoint, absolute (owned); NULL until resolved */
	const struct ctl_cmd *cmd; /* the command being run, for its usage line */
};

/* A command: run() gets argv with argv[0] = the command's name and returns an exit code. */
struct ctl_cmd {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv);
	const char *synopsis; /* the usage line after "statehousectl " */
	const char *help;     /* what it does and its own options */
};

/* --- errors and output (util.c) ------------------------------------------------------ */

/* "statehousectl: <message>" on stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "statehousectl: <message>: <errno text>" on stderr; returns ctl_exit_of(err).  The
 * errno text is strerror's, with what it means here for ESTALE (conflict), ETIMEDOUT
 * (expired), EFBIG, ENOTCONN and ECONNABORTED. */
int ctl_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The exit code of a failed request with errno err: CTL_EXIT_MOUNT when the mount's daemon
 * is gone (ENOTCONN, or ECONNABORTED: it died during the request), else CTL_EXIT_FAIL. */
int ctl_exit_of(int err);
/* A usage error of the current command: the message, then where to find help; returns
 * CTL_EXIT_USAGE. */
int ctl_usage(const struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The errno text ctl_fail prints (static storage). */
const char *ctl_strerror(int err);

/* Colour escapes when c->color, else "". */
enum ctl_color { CTL_RESET, CTL_BOLD, CTL_DIM, CTL_RED, CTL_GREEN, CTL_YELLOW, CTL_CYAN };
const char *ctl_col(const struct ctl *c, enum ctl_color col);

/* Flush stdout and report a failed write; returns the exit code to use. */
int ctl_finish_stdout(int rc);

/* A line read by getline (len bytes) on stdout as it is, ending with a newline. */
void ctl_echo_line(const char *line, ssize_t len);

/* Progress on stderr, only when it is a terminal; rate-limited. ctl_progress_end clears
 * the line. */
void ctl_progress(const struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ctl_progress_end(const struct ctl *c);

/* --- memory and strings (util.c): allocation failures abort, as a CLI cannot go on --- */

_Noreturn void ctl_out_of_memory(void);
/* ARRAY_GROW (common/grow.h) that aborts when memory runs out. */
#define CTL_GROW(p, need, cap)                       \
	do {                                         \
		if (ARRAY_GROW(p, need, cap))        \
			ctl_out_of_memory();         \
	} while (0)
void *ctl_xmalloc(size_t n);
void *ctl_xrealloc(void *p, size_t n);
char *ctl_xstrdup(const char *s);
char *ctl_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *ctl_xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* common/grow.h's strbuf, aborting when memory runs out. */
void ctl_buf_add(struct strbuf *b, const void *p, size_t n);
void ctl_buf_addstr(struct strbuf *b, const char *s);

/* The path quoted for a shell when it needs quoting (static storage, one at a time). */
const char *ctl_shell_quote(const char *s);

/* --- files (util.c) ------------------------------------------------------------------- */

/* Read the whole file at path (or fd when path is NULL) into buf (NUL-terminated beyond
 * len).  Returns 0 or -errno. */
int ctl_read_path(const char *path, struct strbuf *buf);
int ctl_read_fd(int fd, struct strbuf *buf);
/* Write all of p to fd; 0 or -errno. */
int ctl_write_all(int fd, const void *p, size_t n);
/* Write content to the temporary file fd (named tmp, in path's directory), fsync and
 * close it, rename it onto path and fsync the directory.  Consumes fd; unlinks tmp on
 * failure.  0 or -errno. */
int ctl_commit_file(int fd, const char *tmp, const char *path, const void *content, size_t n);
/* Replace path atomically with content: a temporary file in the same directory, fsync,
 * rename, fsync of the directory.  mode is used when path does not exist yet. */
int ctl_write_atomic(const char *path, const void *content, size_t n, mode_t mode);
/* An absolute, normalised path: realpath when it resolves, else the parent's realpath
 * plus the last component (a dead mount answers ENOTCONN), else lexically from the cwd.
 * Caller frees. */
char *ctl_abspath(const char *path);

/* --- arguments (util.c) ---------------------------------------------------------------- */

/* Parse a command with no options of its own and exactly min..max positionals (state.c):
 * -1 to go on, else the exit status. */
int ctl_simple_args(struct ctl *c, int argc, char **argv, int min, int max);
/* Parse a commit_ts (decimal, 1..INT64_MAX); false when malformed. */
bool ctl_parse_ts(const char *s, int64_t *out);
/* Parse a count (decimal, 0..INT64_MAX). */
bool ctl_parse_count(const char *s, int64_t *out);
/* Check a namespace, agent or transaction name; NULL when fine, else why not. */
const char *ctl_check_name(const char *name);
/* Check a key (below ns/agent); NULL when fine, else why not. */
const char *ctl_check_key(const char *key);
/* The history path of a key: % as %25, / as %2F, through segment directories when that
 * is over 255 bytes (statehouse(5)).  Caller frees. */
char *ctl_encode_key(const char *key);

/* --- JSON (util.c) --------------------------------------------------------------------- */

/* A value's bytes as JSON: parsed when they are JSON, else a string when they are UTF-8.
 * NULL when they are neither (binary).  New reference. */
json_t *ctl_value_json(const char *p, size_t n);
/* A one-line summary of a value (from ctl_value_json; NULL: raw_len bytes that are not
 * UTF-8).  Caller frees. */
char *ctl_summary_of(json_t *value, size_t raw_len, int width);
/* A one-line summary of an event op's value for humans, at most about width columns.
 * Caller frees. */
char *ctl_value_summary(json_t *op, int width);
/* Integer member or dflt. */
int64_t ctl_json_int(json_t *obj, const char *key, int64_t dflt);
/* String member or dflt. */
const char *ctl_json_str(json_t *obj, const char *key, const char *dflt);
/*
 * Names (namespace, agent, key, transaction) are bytes; JSON strings are UTF-8.  The
 * daemon writes a name that is not UTF-8 as "<field>_base64" instead of "<field>"
 * (statehouse(5)), and statehousectl writes its own JSON the same way.
 */
/* The bytes of obj[key], or of obj[key_base64] decoded; NULL when neither is there (or
 * is no name).  Caller frees. */
char *ctl_json_name(json_t *obj, const char *key);
/* obj[key] = name when it is UTF-8, else obj[key_base64] = its base64. */
void ctl_json_set_name(json_t *obj, const char *key, const char *name);
/* A name as an element of a JSON array: the string, or {"base64": ...} when it is not
 * UTF-8.  New reference. */
json_t *ctl_name_json(const char *name);
/* The base64 of n bytes as a JSON string.  New reference. */
json_t *ctl_base64_json(const void *p, size_t n);
/* Print one JSON document and a newline on stdout (compact unless indent). */
void ctl_print_json(json_t *j, bool indent);
/* An RFC 3339 time shortened to milliseconds for humans (static storage). */
const char *ctl_short_time(const char *t);

/* --- mounts (mounts.c) ---------------------------------------------------------------- */

struct ctl_mount {
	char *mountpoint; /* as in mountinfo, unescaped */
	char *datadir;    /* the mount's source: the daemon's data dir */
	bool allow_other; /* mounted with allow_other (a super option) */
	bool read_only;   /* mounted ro */
};

/* Every statehouse mount (fstype fuse.statehouse) in /proc/self/mountinfo, one per
 * mountpoint (the topmost when several are stacked).  0 or -errno; free with
 * ctl_mounts_free. */
int ctl_mounts_read(struct ctl_mount **out, size_t *n);
void ctl_mounts_free(struct ctl_mount *m, size_t n);
/* Select the mount for c: -m, else $STATEHOUSE_MOUNT, else the only statehouse mount.
 * Sets c->mnt; returns 0 or an exit code after printing why not (CTL_EXIT_MOUNT: no
 * statehouse mount there, or none at all). */
int ctl_select_mount(struct ctl *c);
/* Whether mnt is the topmost statehouse mount at its path and its daemon answers. */
bool ctl_mount_answers(const char *mnt);
/* Read and parse MNT/.status into *out (new reference).  0 or -errno (-EINVAL: not JSON). */
int ctl_status_read(const char *mnt, json_t **out);

/* --- the state, over the mount (state.c, events.c, txn.c) ---------------------------- */

/* A list of owned strings. */
struct ctl_list {
	char **v;
	size_t n, cap;
};
void ctl_list_add(struct ctl_list *l, char *s); /* takes s */
void ctl_list_free(struct ctl_list *l);
/* The sorted keys below root (a live or .at/<ts> agent directory) that begin with
 * prefix.  0 or -errno. */
int ctl_list_keys(const char *root, const char *prefix, struct ctl_list *out);

/* The keys of agent as of commit ts (> 0), listed below *root = MNT/.at/<ts>/<ns>/<agent>
 * (caller frees *root, also on failure).  0 or an exit code after printing why not. */
int ctl_keys_at(const struct ctl *c, const char *agent, int64_t ts, char **root,
		struct ctl_list *keys);

/* MNT/<rel>, printf-style.  Caller frees. */
char *ctl_mpath(const struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether the agent ever held keys in the namespace (it is listed in .events/<ns>/). */
bool ctl_agent_known(const struct ctl *c, const char *agent);
/* The "no agent" failure: prints it, returns CTL_EXIT_FAIL. */
int ctl_no_agent(const struct ctl *c, const char *agent);
/* Check ns (c->ns) and agent; returns 0 or a usage exit code after printing why. */
int ctl_check_ns_agent(const struct ctl *c, const char *agent);
/* The head commit_ts from MNT/.status; 0 or an exit code after printing why. */
int ctl_head_ts(const struct ctl *c, int64_t *out);
/* Open the agent's event stream: .events/<ns>/<agent>.jsonl, or under since/<ts>/, or
 * the .follow twin.  NULL with errno set on failure. */
FILE *ctl_open_events(const struct ctl *c, const char *agent, int64_t since, bool follow);
/* The same for the ops on keys at or below prefix (a key path without a trailing slash;
 * NULL: every op of the agent): .events/<ns>/<agent>/<prefix>.jsonl. */
FILE *ctl_open_prefix_events(const struct ctl *c, const char *agent, const char *prefix,
			     int64_t since, bool follow);

/* --- conditional writes (cond.c) -------------------------------------------------------- */

/* The AGENT KEY [VALUE] arguments of put (is_put; max 3) or rm (max 2) with their
 * --if-version N (and, for put, --if-absent) options, checked, and the mount: -1 to go
 * on, with *expect the precondition ("7", "0", "absent"; caller frees) or NULL when none
 * was asked; else the exit status. */
int ctl_cond_args(struct ctl *c, int argc, char **argv, int max, bool is_put,
		  const char **agent, const char **key, char **expect);
/* Write value (NULL: delete) to the key only if expect holds at the commit, in a
 * transaction of its own: CTL_EXIT_OK, CTL_EXIT_PRECONDITION (it did not hold; said on
 * stderr), or CTL_EXIT_FAIL after a message. */
int ctl_cond_commit(const struct ctl *c, const char *agent, const char *key,
		    const struct strbuf *value, const char *expect);
/* Print one event line (a commit) for humans, one line per op. */
void ctl_print_event_human(const struct ctl *c, json_t *ev);

/* --- option parsing shared by every command (main.c) -------------------------------- */

/* Long-only option values of the common options. */
enum { CTL_OPT_NS = 1000, CTL_OPT_JSON };
#define CTL_COMMON_LONGOPTS                                                   \
	{ "mount", required_argument, NULL, 'm' },                            \
	{ "ns", required_argument, NULL, CTL_OPT_NS },                        \
	{ "namespace", required_argument, NULL, CTL_OPT_NS },                 \
	{ "json", no_argument, NULL, CTL_OPT_JSON },                          \
	{ "help", no_argument, NULL, 'h' }
/* getopt_long over a command's arguments with the common options handled here.  Returns
 * the next command-specific option, -1 at the end (positionals from optind on), or -2
 * when the command must return *stop at once (help printed, or a usage error).
 * shortopts may begin with '+' (stop at the first non-option); longopts ends with a
 * zeroed entry and may be NULL. */
int ctl_getopt(struct ctl *c, int argc, char **argv, const char *shortopts,
	       const struct option *longopts, int *stop);
/* Print the help of a command on f. */
void ctl_cmd_help(const struct ctl_cmd *cmd, FILE *f);

/* --- commands ------------------------------------------------------------------------ */

int ctl_cmd_mount(struct ctl *c, int argc, char **argv);
int ctl_cmd_init(struct ctl *c, int argc, char **argv);
int ctl_cmd_umount(struct ctl *c, int argc, char **argv);
int ctl_cmd_status(struct ctl *c, int argc, char **argv);
int ctl_cmd_fstab(struct ctl *c, int argc, char **argv);
int ctl_cmd_health(struct ctl *c, int argc, char **argv);
int ctl_cmd_version(struct ctl *c, int argc, char **argv);
int ctl_cmd_get(struct ctl *c, int argc, char **argv);
int ctl_cmd_put(struct ctl *c, int argc, char **argv);
int ctl_cmd_rm(struct ctl *c, int argc, char **argv);
int ctl_cmd_keys(struct ctl *c, int argc, char **argv);
int ctl_cmd_agents(struct ctl *c, int argc, char **argv);
int ctl_cmd_history(struct ctl *c, int argc, char **argv);
int ctl_cmd_replay(struct ctl *c, int argc, char **argv);
int ctl_cmd_tail(struct ctl *c, int argc, char **argv);
int ctl_cmd_dump(struct ctl *c, int argc, char **argv);
int ctl_cmd_backup(struct ctl *c, int argc, char **argv); /* backup.c */
int ctl_cmd_inspect(struct ctl *c, int argc, char **argv);
int ctl_cmd_txn_begin(struct ctl *c, int argc, char **argv);
int ctl_cmd_txn_commit(struct ctl *c, int argc, char **argv);
int ctl_cmd_txn_abort(struct ctl *c, int argc, char **argv);

#endif
