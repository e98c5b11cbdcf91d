/* SPDX-License-Identifier: MIT */
/*
 * loadgen: the load generator of bench/ (never part of the product build).
 * It drives a statehouse mount through plain syscalls (mkdir, open/write/close, rename,
 * rmdir), and runs the baselines it is compared with: raw SQLite and plain files on ext4.
 * P worker processes (fork) run for a fixed time or count; one result line is printed.
 * This file: the options, the shared slots, the file helpers, the commit, read and
 * baseline modes, the timed loop, the parent's fork/wait/report and main(). The stream
 * modes (replay, follow-lat) are in loadgen_stream.c; loadgen.h declares what they share.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

#define KEYS_PER_TXN 3

struct options opt = {
	.procs = 1, .secs = 5, .keys = 10000, .value_bytes = 100, .batch = 250, .writer = "txn",
	.at_t = "own", .follow_file = "agent", .wait = "read", .isolation = "snapshot",
};

struct shared *shared;
struct slot *my_slot;
int my_index;

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* Count an error; remember the first one (with errno text) for the report. */
void fail(const char *what, const char *path, int err)
{
	my_slot->errors++;
	if (!my_slot->first_error[0])
		snprintf(my_slot->first_error, ERR_LEN, "%s '%s': %s", what, path, strerror(err));
}

static int hist_bucket(double secs)
{
	double ns = secs * 1e9;
	if (ns < 1)
		return 0;
	int b = (int)(log2(ns) * 8);
	return b >= HIST_BUCKETS ? HIST_BUCKETS - 1 : b;
}

static double hist_value_us(int b)
{
	return exp2((b + 0.5) / 8.0) / 1e3;
}

/* ---- small file helpers ---- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* mkdir every parent of path below the first `skip` bytes (which must exist). */
static int mkdir_parents(const char *path, size_t skip)
{
	char tmp[PATH_LEN];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + skip + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return 0;
}

/*
 * Write a whole value with one open/write/close. When a parent directory is missing
 * (the first key of an agent), create the parents below `skip` and try again once.
 */
int put_file(const char *path, size_t skip, const char *val, size_t len, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | flags, 0644);
	if (fd < 0 && errno == ENOENT) {
		if (mkdir_parents(path, skip) < 0) {
			fail("mkdir parents of", path, errno);
			return -1;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | flags, 0644);
	}
	if (fd < 0) {
		fail("open", path, errno);
		return -1;
	}
	if (write_all(fd, val, len) < 0) {
		int err = errno;
		close(fd);
		fail("write", path, err);
		return -1;
	}
	if (close(fd) < 0) {
		fail("close", path, errno);
		return -1;
	}
	return 0;
}

/* Read a file with open/read/close; returns bytes read or -1. */
static ssize_t get_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail("open", path, errno);
		return -1;
	}
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int err = errno;
			close(fd);
			fail("read", path, err);
			return -1;
		}
		if (n == 0 || (got += (size_t)n) == cap)
			break;
	}
	close(fd);
	return (ssize_t)got;
}

static uint64_t rng_state;
static uint64_t rng_next(void)
{
	/* xorshift64*: enough for picking keys, no libc lock */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static void fill_value(char *buf, int len, uint64_t seq)
{
	int n = snprintf(buf, (size_t)len + 1, "%d:%" PRIu64 ":", my_index, seq);
	for (int i = n; i < len; i++)
		buf[i] = (char)('a' + (i + seq) % 26);
	if (len > 0)
		buf[len - 1] = '\n';
}

/* ---- statehouse: one transaction of n keys ---- */

/*
 * begin, write keys[i] = vals[i], commit by rename, rmdir. Keys are "<ns>/<agent>/<key>".
 * Returns 0 once committed (durable), -1 on any failure (the transaction is removed).
 */
double last_rename_done; /* follow-lat: CLOCK_MONOTONIC when the commit rename returned */

/* What a transaction reads before it writes (txn-read): its isolation level, written to
 * .tx/NAME/.isolation first, and keys read through its view, each value_bytes long. */
struct txn_reads {
	const char *isolation;
	char *const *keys;
	int n;
};

/* The reads of a txn-read transaction in tx: 0, or -1 after fail(). */
static int txn_do_reads(const char *tx, const struct txn_reads *r)
{
	char path[PATH_LEN + 16], buf[65536]; /* tx is shorter than PATH_LEN */
	size_t skip = strlen(tx);

	snprintf(path, sizeof path, "%s/.isolation", tx);
	if (put_file(path, skip, r->isolation, strlen(r->isolation), 0) < 0)
		return -1;
	for (int i = 0; i < r->n; i++) {
		snprintf(path, sizeof path, "%s/%s", tx, r->keys[i]);
		ssize_t got = get_file(path, buf, sizeof buf);
		if (got < 0)
			return -1;
		if (got != opt.value_bytes) {
			fail("short or long read of", path, EIO);
			return -1;
		}
	}
	return 0;
}

static int sh_txn_x(const char *name, const char *const *keys, char *const *vals,
		    const size_t *lens, int n, const struct txn_reads *reads)
{
	char tx[PATH_LEN], path[PATH_LEN], to[PATH_LEN];
	snprintf(tx, sizeof tx, "%s/.tx/%s", opt.mnt, name);
	if (mkdir(tx, 0755) < 0) {
		fail("mkdir", tx, errno);
		return -1;
	}
	size_t skip = strlen(tx);
	if (reads && txn_do_reads(tx, reads) < 0)
		goto abort;
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/%s", tx, keys[i]);
		if (put_file(path, skip, vals[i], lens[i], 0) < 0)
			goto abort;
	}
	snprintf(path, sizeof path, "%s/.commit.pending", tx);
	snprintf(to, sizeof to, "%s/.commit", tx);
	double t0 = now_s();
	if (rename(path, to) < 0) {
		if (errno == ESTALE)
			my_slot->conflicts++;
		fail("commit rename", path, errno);
		goto abort;
	}
	last_rename_done = now_s();
	if (my_slot)
		my_slot->rhist[hist_bucket(last_rename_done - t0)]++;
	if (rmdir(tx) < 0) {
		fail("rmdir after commit", tx, errno);
		return 0; /* committed all the same */
	}
	return 0;
abort:
	if (rmdir(tx) < 0)
		fail("rmdir (abort)", tx, errno);
	return -1;
}

int sh_txn(const char *name, const char *const *keys, char *const *vals, const size_t *lens,
	   int n)
{
	return sh_txn_x(name, keys, vals, lens, n, NULL);
}

/* ---- modes: one op of each ---- */

struct ctx {
	uint64_t seq;
	char name[64];
	char *keys[KEYS_PER_TXN];
	char *rkeys[KEYS_PER_TXN]; /* txn-read: the keys each transaction reads */
	char *vals[KEYS_PER_TXN];
	size_t lens[KEYS_PER_TXN];
	/* sqlite */
	sqlite3 *db;
	sqlite3_stmt *begin, *ins_event, *ins_op, *commit, *rollback;
	/* files */
	int dirfd;
	char **paths; /* read modes: all key paths */
};

static int op_txn(struct ctx *c)
{
	c->seq++;
	snprintf(c->name, sizeof c->name, "lg%d-%d-%" PRIu64, (int)getpid(), my_index, c->seq);
	for (int i = 0; i < KEYS_PER_TXN; i++)
		fill_value(c->vals[i], opt.value_bytes, c->seq);
	return sh_txn(c->name, (const char *const *)c->keys, c->vals, c->lens, KEYS_PER_TXN);
}

/* txn-read: read 3 keys nobody writes, then write 3, at the isolation level of -I. */
static int op_txn_read(struct ctx *c)
{
	struct txn_reads r = { opt.isolation, c->rkeys, KEYS_PER_TXN };

	c->seq++;
	snprintf(c->name, sizeof c->name, "lg%d-%d-%" PRIu64, (int)getpid(), my_index, c->seq);
	for (int i = 0; i < KEYS_PER_TXN; i++)
		fill_value(c->vals[i], opt.value_bytes, c->seq);
	return sh_txn_x(c->name, (const char *const *)c->keys, c->vals, c->lens, KEYS_PER_TXN,
			&r);
}

static int op_read(struct ctx *c)
{
	char buf[65536];
	const char *p = c->paths[rng_next() % (uint64_t)opt.keys];
	ssize_t n = get_file(p, buf, sizeof buf);
	if (n < 0)
		return -1;
	if (n != opt.value_bytes) {
		fail("short or long read of", p, EIO);
		return -1;
	}
	return 0;
}

/*
 * at-read: point reads of .at/T/default/bench-read/kNNNNN. at_own[k] is the commit_ts
 * that wrote key k's current version (its user.statehouse.commit_ts), at_head the head
 * when the run began; both are found by the parent before fork.
 */
static int64_t *at_own, at_head;

/* The value `fill` wrote for key k (it runs as worker 0, seq k). */
static void fill_value_of(char *buf, int len, long k)
{
	int saved = my_index;
	my_index = 0;
	fill_value(buf, len, (uint64_t)k);
	my_index = saved;
}

static int op_at_read(struct ctx *c)
{
	(void)c;
	char buf[65536], want[65536], path[PATH_LEN];
	long k = (long)(rng_next() % (uint64_t)opt.keys);
	int64_t t = at_head;
	if (!strcmp(opt.at_t, "own"))
		t = at_own[k];
	else if (!strcmp(opt.at_t, "rand"))
		t = at_own[k] + (int64_t)(rng_next() % (uint64_t)(at_head - at_own[k] + 1));
	snprintf(path, sizeof path, "%s/.at/%" PRId64 "/default/bench-read/k%05ld", opt.mnt, t, k);
	ssize_t n = get_file(path, buf, sizeof buf);
	if (n < 0)
		return -1;
	fill_value_of(want, opt.value_bytes, k);
	if (n != opt.value_bytes || memcmp(buf, want, (size_t)n) != 0) {
		fail("wrong value (not what fill wrote) in", path, EIO);
		return -1;
	}
	return 0;
}

/* user.statehouse.commit_ts of a live key, or -1 (errno set). */
int64_t key_commit_ts(const char *path)
{
	char v[32];
	ssize_t n = getxattr(path, "user.statehouse.commit_ts", v, sizeof v - 1);
	if (n <= 0)
		return -1;
	v[n] = '\0';
	return strtoll(v, NULL, 10);
}

/*
 * The head: commit one small value directly to default/bench-mark/<what> and take its
 * commit_ts (the daemon has no ".head" file). The mark is itself one more event.
 */
int64_t commit_mark(const char *what)
{
	char path[PATH_LEN], val[64];
	struct slot *saved = my_slot;
	my_slot = &shared->slot[MAX_PROCS - 1];
	snprintf(path, sizeof path, "%s/default/bench-mark/%s", opt.mnt, what);
	int len = snprintf(val, sizeof val, "%.0f", now_s() * 1e6);
	if (put_file(path, strlen(opt.mnt), val, (size_t)len, 0) < 0)
		die("cannot commit %s: %s", path, my_slot->first_error);
	int64_t ts = key_commit_ts(path);
	if (ts < 0)
		die("getxattr commit_ts of %s: %s", path, strerror(errno));
	my_slot->first_error[0] = '\0';
	my_slot = saved;
	return ts;
}

static void at_read_setup(void)
{
	char path[PATH_LEN];
	at_own = calloc((size_t)opt.keys, sizeof *at_own);
	int64_t lo = INT64_MAX, hi = 0;
	for (long k = 0; k < opt.keys; k++) {
		snprintf(path, sizeof path, "%s/default/bench-read/k%05ld", opt.mnt, k);
		if ((at_own[k] = key_commit_ts(path)) < 0)
			die("getxattr commit_ts of %s: %s (run loadgen fill first)", path, strerror(errno));
		if (at_own[k] < lo)
			lo = at_own[k];
		if (at_own[k] > hi)
			hi = at_own[k];
	}
	at_head = commit_mark("at-read");
	printf("loadgen at-read: T=%s keys=%ld written at commit_ts %" PRId64 "..%" PRId64
	       " head=%" PRId64 " (%" PRId64 " commits after the newest key)\n",
	       opt.at_t, opt.keys, lo, hi, at_head, at_head - hi);
}

static int sq_exec(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : rc;
}

static int op_sqlite(struct ctx *c)
{
	int rc;
	c->seq++;
	if ((rc = sq_exec(c->begin)) != 0)
		goto fail;
	sqlite3_bind_text(c->ins_event, 1, c->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(c->ins_event, 2, (sqlite3_int64)time(NULL));
	if ((rc = sq_exec(c->ins_event)) != 0)
		goto rollback;
	sqlite3_int64 ts = sqlite3_last_insert_rowid(c->db);
	for (int i = 0; i < KEYS_PER_TXN; i++) {
		fill_value(c->vals[i], opt.value_bytes, c->seq);
		sqlite3_bind_int64(c->ins_op, 1, ts);
		sqlite3_bind_int(c->ins_op, 2, i);
		sqlite3_bind_text(c->ins_op, 3, c->keys[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(c->ins_op, 4, (sqlite3_int64)c->seq);
		sqlite3_bind_blob(c->ins_op, 5, c->vals[i], (int)c->lens[i], SQLITE_STATIC);
		if ((rc = sq_exec(c->ins_op)) != 0)
			goto rollback;
	}
	if ((rc = sq_exec(c->commit)) != 0)
		goto rollback;
	return 0;
rollback:
	sq_exec(c->rollback);
fail:
	my_slot->errors++;
	if (!my_slot->first_error[0])
		snprintf(my_slot->first_error, ERR_LEN, "sqlite commit: %s (%d)", sqlite3_errstr(rc),
			 rc);
	return -1;
}

static int op_files(struct ctx *c)
{
	char tmp[64], dst[64];
	c->seq++;
	for (int i = 0; i < KEYS_PER_TXN; i++) {
		fill_value(c->vals[i], opt.value_bytes, c->seq);
		snprintf(tmp, sizeof tmp, ".tmp.%d.%d", my_index, i);
		snprintf(dst, sizeof dst, "p%d.k%d", my_index, i);
		int fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			fail("open", tmp, errno);
			return -1;
		}
		if (write_all(fd, c->vals[i], c->lens[i]) < 0 || fsync(fd) < 0) {
			int err = errno;
			close(fd);
			fail("write+fsync", tmp, err);
			return -1;
		}
		close(fd);
		if (renameat(c->dirfd, tmp, c->dirfd, dst) < 0) {
			fail("rename", tmp, errno);
			return -1;
		}
	}
	if (fsync(c->dirfd) < 0) {
		fail("fsync", opt.dir, errno);
		return -1;
	}
	return 0;
}

/* ---- per-worker setup ---- */

static int sq_busy(void *arg, int n)
{
	(void)arg;
	/*
	 * Retry quickly: SQLite's own busy_timeout sleeps 1 ms and more between tries, which
	 * would make the multi-process baseline look worse than it is. Give up after ~10 s.
	 * (SQLite also sleeps inside its WAL read-lock retries; that part is not ours.)
	 */
	if (n > 50000)
		return 0;
	if (n < 4) {
		sched_yield();
		return 1;
	}
	usleep(n < 50 ? 20 : 200);
	return 1;
}

static void sq_check(sqlite3 *db, int rc, const char *what)
{
	if (rc != SQLITE_OK)
		die("sqlite %s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static sqlite3 *sq_open(void)
{
	sqlite3 *db;
	int rc = sqlite3_open_v2(opt.db, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	sq_check(db, rc, "open");
	sqlite3_busy_handler(db, sq_busy, NULL);
	/* the same durability as statehoused's default: WAL + synchronous=FULL */
	sq_check(db, sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", 0, 0, 0),
		 "pragmas");
	return db;
}

static void sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	sq_check(db, sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL), sql);
}

static void ctx_init(struct ctx *c)
{
	memset(c, 0, sizeof *c);
	c->dirfd = -1;
	for (int i = 0; i < KEYS_PER_TXN; i++) {
		c->keys[i] = malloc(128);
		c->vals[i] = malloc((size_t)opt.value_bytes + 1);
		c->lens[i] = (size_t)opt.value_bytes;
		snprintf(c->keys[i], 128, "default/bench-w%d/k%d", my_index + opt.writer_base, i);
		c->rkeys[i] = malloc(128);
		snprintf(c->rkeys[i], 128, "default/bench-w%d/r%d", my_index + opt.writer_base, i);
	}
	const char *m = opt.mode;
	if (!strcmp(m, "sqlite")) {
		c->db = sq_open();
		sq_prepare(c->db, "BEGIN IMMEDIATE", &c->begin);
		sq_prepare(c->db, "INSERT INTO events(txn, time) VALUES(?1, ?2)", &c->ins_event);
		sq_prepare(c->db,
			   "INSERT INTO ops(commit_ts, idx, key, op, version, value) "
			   "VALUES(?1, ?2, ?3, 'put', ?4, ?5)",
			   &c->ins_op);
		sq_prepare(c->db, "COMMIT", &c->commit);
		sq_prepare(c->db, "ROLLBACK", &c->rollback);
		snprintf(c->name, sizeof c->name, "lg-%d", my_index);
	} else if (!strcmp(m, "files")) {
		c->dirfd = open(opt.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (c->dirfd < 0)
			die("open '%s': %s", opt.dir, strerror(errno));
	} else if (!strcmp(m, "read") || !strcmp(m, "files-read")) {
		c->paths = calloc((size_t)opt.keys, sizeof *c->paths);
		for (long k = 0; k < opt.keys; k++) {
			if (!strcmp(m, "read")) {
				if (asprintf(&c->paths[k], "%s/default/bench-read/k%05ld", opt.mnt, k) < 0)
					die("out of memory");
			} else if (asprintf(&c->paths[k], "%s/k%05ld", opt.dir, k) < 0) {
				die("out of memory");
			}
		}
	} else if (!strcmp(m, "txn") || !strcmp(m, "txn-read")) {
		/*
		 * Commit each key once directly, so that ns/agent directories exist in every
		 * later transaction's snapshot (the timed loop then never needs mkdir); and
		 * the keys txn-read reads, which nothing writes afterwards.
		 */
		char path[PATH_LEN];
		int nkeys = KEYS_PER_TXN * (strcmp(m, "txn-read") ? 1 : 2);
		for (int i = 0; i < nkeys; i++) {
			char *key = i < KEYS_PER_TXN ? c->keys[i] : c->rkeys[i - KEYS_PER_TXN];
			fill_value(c->vals[0], opt.value_bytes, 0);
			snprintf(path, sizeof path, "%s/%s", opt.mnt, key);
			if (put_file(path, strlen(opt.mnt), c->vals[0], c->lens[0], 0) < 0)
				die("cannot write '%s': %s", path, my_slot->first_error);
		}
	}
	rng_state = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)getpid() << 17) ^ (uint64_t)my_index;
}

/* ---- the timed loop ---- */

typedef int (*op_fn)(struct ctx *);

static void worker_loop(op_fn op)
{
	struct ctx c;
	ctx_init(&c);
	while (now_s() < shared->start_at)
		usleep(200);
	double count_from = shared->start_at + opt.warmup_secs;
	double deadline = count_from + opt.secs;
	unsigned consecutive_errors = 0;

	/* warm-up: run ops, count nothing */
	while (opt.warmup_secs > 0 && now_s() < count_from)
		op(&c);
	memset(my_slot, 0, sizeof *my_slot);

	my_slot->t_begin = now_s();
	double t = my_slot->t_begin;
	for (;;) {
		if (opt.count > 0 ? (long)my_slot->ops >= opt.count : t >= deadline)
			break;
		int rc = op(&c);
		double t2 = now_s();
		if (rc == 0) {
			my_slot->ops++;
			my_slot->hist[hist_bucket(t2 - t)]++;
			consecutive_errors = 0;
		} else if (++consecutive_errors > 1000) {
			break; /* the target is broken; don't spin on it */
		}
		t = t2;
	}
	my_slot->t_end = t;
}

/* ---- fill: write the read set ---- */

static void do_fill(void)
{
	char *buf = malloc((size_t)opt.value_bytes + 1);
	char key[PATH_LEN];
	my_index = 0;
	my_slot = &shared->slot[0];
	if (!strcmp(opt.mode, "files-read")) {
		for (long k = 0; k < opt.keys; k++) {
			fill_value(buf, opt.value_bytes, (uint64_t)k);
			snprintf(key, sizeof key, "%s/k%05ld", opt.dir, k);
			if (put_file(key, strlen(opt.dir), buf, (size_t)opt.value_bytes, 0) < 0)
				die("fill: %s", my_slot->first_error);
		}
		return;
	}
	/* statehouse: first key directly (creates default/bench-read), then batches */
	snprintf(key, sizeof key, "%s/default/bench-read/k%05d", opt.mnt, 0);
	fill_value(buf, opt.value_bytes, 0);
	if (put_file(key, strlen(opt.mnt), buf, (size_t)opt.value_bytes, 0) < 0)
		die("fill: %s", my_slot->first_error);
	int b = opt.batch < 1 ? 1 : opt.batch;
	char **keys = calloc((size_t)b, sizeof *keys);
	char **vals = calloc((size_t)b, sizeof *vals);
	size_t *lens = calloc((size_t)b, sizeof *lens);
	for (int i = 0; i < b; i++) {
		keys[i] = malloc(64);
		vals[i] = malloc((size_t)opt.value_bytes + 1);
		lens[i] = (size_t)opt.value_bytes;
	}
	double t0 = now_s();
	long k = 1;
	for (uint64_t txn = 0; k < opt.keys; txn++) {
		int n = 0;
		for (; n < b && k < opt.keys; n++, k++) {
			snprintf(keys[n], 64, "default/bench-read/k%05ld", k);
			fill_value(vals[n], opt.value_bytes, (uint64_t)k);
		}
		if (b == 1) {
			snprintf(key, sizeof key, "%s/%s", opt.mnt, keys[0]);
			if (put_file(key, strlen(opt.mnt), vals[0], lens[0], 0) < 0)
				die("fill: %s", my_slot->first_error);
			continue;
		}
		char name[64];
		snprintf(name, sizeof name, "fill-%d-%" PRIu64, (int)getpid(), txn);
		if (sh_txn(name, (const char *const *)keys, vals, lens, n) < 0)
			die("fill: %s", my_slot->first_error);
	}
	printf("loadgen mode=fill keys=%ld batch=%d secs=%.2f\n", opt.keys, b, now_s() - t0);
}

/* ---- fresh: a writer and a reader on one key ---- */

static const char *fresh_key = "default/bench-fresh/k";

static int fresh_write(uint64_t seq)
{
	char val[32], path[PATH_LEN];
	int len = snprintf(val, sizeof val, "%" PRIu64 "\n", seq);
	if (!strcmp(opt.writer, "direct")) {
		snprintf(path, sizeof path, "%s/%s", opt.mnt, fresh_key);
		return put_file(path, strlen(opt.mnt), val, (size_t)len, 0);
	}
	char name[64];
	char *vals[1] = {val};
	size_t lens[1] = {(size_t)len};
	snprintf(name, sizeof name, "fresh-%d-%" PRIu64, (int)getpid(), seq);
	return sh_txn(name, &fresh_key, vals, lens, 1);
}

/* Read the key and check it against `floor`: 0 fine, 1 violation or garbled. */
static int fresh_check(uint64_t floor)
{
	char path[PATH_LEN], buf[64];
	snprintf(path, sizeof path, "%s/%s", opt.read_mnt ? opt.read_mnt : opt.mnt, fresh_key);
	ssize_t n = get_file(path, buf, sizeof buf - 1);
	my_slot->ops++;
	if (n < 0)
		return 1;
	buf[n] = '\0';
	char *end;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (n == 0 || end == buf || *end != '\n' || errno) {
		my_slot->garbled++;
		if (!my_slot->first_error[0])
			snprintf(my_slot->first_error, ERR_LEN,
				 "garbled read %zd bytes '%.20s' (expected >= %" PRIu64 ")", n, buf, floor);
		return 1;
	}
	if (v < floor) {
		my_slot->violations++;
		if (!my_slot->first_error[0])
			snprintf(my_slot->first_error, ERR_LEN,
				 "stale read %llu, last finished commit %" PRIu64, v, floor);
		return 1;
	}
	return 0;
}

/*
 * Phase 1 (alternating, 1/3 of the time): the writer commits seq, tells the reader
 * through a pipe, the reader reads once and answers; the read must see exactly seq.
 * Phase 2 (concurrent, 2/3): the writer commits as fast as it can and publishes
 * the last finished seq; the reader reads in a loop and must never see less than the
 * seq published before its read began.
 */
static void do_fresh(void)
{
	int to_reader[2], to_writer[2];
	if (pipe(to_reader) < 0 || pipe(to_writer) < 0)
		die("pipe: %s", strerror(errno));
	/* seq 0 written directly so that the key and its directories exist */
	my_slot = &shared->slot[0];
	char path[PATH_LEN];
	snprintf(path, sizeof path, "%s/%s", opt.mnt, fresh_key);
	if (put_file(path, strlen(opt.mnt), "0\n", 2, 0) < 0)
		die("fresh: %s", my_slot->first_error);
	memset(my_slot, 0, sizeof *my_slot);
	double phase1_end = now_s() + opt.secs / 3, phase2_end = now_s() + opt.secs;

	pid_t reader = fork();
	if (reader < 0)
		die("fork: %s", strerror(errno));
	if (reader == 0) {
		my_index = 1;
		my_slot = &shared->slot[1];
		close(to_reader[1]);
		close(to_writer[0]);
		uint64_t seq;
		while (read(to_reader[0], &seq, sizeof seq) == sizeof seq) {
			fresh_check(seq);
			if (write(to_writer[1], &seq, sizeof seq) != sizeof seq)
				_exit(1);
		}
		while (!atomic_load(&shared->stop))
			fresh_check(atomic_load(&shared->committed));
		_exit(0);
	}
	close(to_reader[0]);
	close(to_writer[1]);
	uint64_t seq = 0;
	unsigned consecutive_errors = 0;
	while (now_s() < phase1_end && consecutive_errors < 100) {
		if (fresh_write(++seq) < 0) {
			consecutive_errors++;
			continue;
		}
		consecutive_errors = 0;
		atomic_store(&shared->committed, seq);
		my_slot->ops++;
		uint64_t ack;
		if (write(to_reader[1], &seq, sizeof seq) != sizeof seq ||
		    read(to_writer[0], &ack, sizeof ack) != sizeof ack)
			die("fresh: reader died");
	}
	close(to_reader[1]);
	while (now_s() < phase2_end && consecutive_errors < 100) {
		if (fresh_write(++seq) < 0) {
			consecutive_errors++;
			continue;
		}
		consecutive_errors = 0;
		atomic_store(&shared->committed, seq);
		my_slot->ops++;
	}
	atomic_store(&shared->stop, 1);
	int st;
	waitpid(reader, &st, 0);
	struct slot *w = &shared->slot[0], *r = &shared->slot[1];
	printf("loadgen mode=fresh writer=%s commits=%" PRIu64 " reads=%" PRIu64
	       " violations=%" PRIu64 " garbled=%" PRIu64 " errors=%" PRIu64 "\n",
	       opt.writer, w->ops, r->ops, r->violations, r->garbled, w->errors + r->errors);
	if (w->first_error[0])
		printf("loadgen writer first error: %s\n", w->first_error);
	if (r->first_error[0])
		printf("loadgen reader first error: %s\n", r->first_error);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("fresh: reader exited abnormally");
}

/* ---- parent: fork, wait, report ---- */

static void sqlite_schema(void)
{
	sqlite3 *db = sq_open();
	/* the log as statehouse's design sketch has it: one event row + one row per op */
	sq_check(db,
		 sqlite3_exec(db,
			      "CREATE TABLE IF NOT EXISTS events(commit_ts INTEGER PRIMARY KEY, "
			      "  txn TEXT NOT NULL, time INTEGER NOT NULL, note BLOB);"
			      "CREATE TABLE IF NOT EXISTS ops(commit_ts INTEGER NOT NULL, "
			      "  idx INTEGER NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL, "
			      "  version INTEGER NOT NULL, value BLOB, PRIMARY KEY(commit_ts, idx)) "
			      "  WITHOUT ROWID;"
			      "CREATE INDEX IF NOT EXISTS ops_key ON ops(key, version);",
			      0, 0, 0),
		 "schema");
	sqlite3_close(db);
}

/* p50 and p99 of the n samples counted in hist, in microseconds (0 with none). */
static void percentiles(const uint64_t *hist, uint64_t n, double out[2])
{
	const double want[2] = {0.50, 0.99};
	for (int p = 0; p < 2; p++) {
		uint64_t acc = 0, target = (uint64_t)ceil(want[p] * (double)n);
		out[p] = 0;
		for (int b = 0; b < HIST_BUCKETS && n; b++) {
			acc += hist[b];
			if (acc >= target) {
				out[p] = hist_value_us(b);
				break;
			}
		}
	}
}

static void run_workers(void)
{
	op_fn op;
	if (!strcmp(opt.mode, "txn"))
		op = op_txn;
	else if (!strcmp(opt.mode, "txn-read"))
		op = op_txn_read;
	else if (!strcmp(opt.mode, "read") || !strcmp(opt.mode, "files-read"))
		op = op_read;
	else if (!strcmp(opt.mode, "at-read"))
		op = op_at_read;
	else if (!strcmp(opt.mode, "sqlite"))
		op = op_sqlite;
	else
		op = op_files;

	if (!strcmp(opt.mode, "sqlite"))
		sqlite_schema();
	/* workers do their own setup first; give them a moment before the common start */
	shared->start_at = now_s() + 0.3 + 0.05 * opt.procs;
	pid_t pids[MAX_PROCS];
	for (int i = 0; i < opt.procs; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork: %s", strerror(errno));
		if (pids[i] == 0) {
			my_index = i;
			my_slot = &shared->slot[i];
			worker_loop(op);
			_exit(0);
		}
	}
	int bad = 0;
	for (int i = 0; i < opt.procs; i++) {
		int st;
		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad++;
	}

	uint64_t ops = 0, errors = 0, conflicts = 0, hist[HIST_BUCKETS] = {0};
	uint64_t rhist[HIST_BUCKETS] = {0}, renames = 0;
	double t_begin = 1e300, t_end = 0;
	const char *first_error = NULL;
	for (int i = 0; i < opt.procs; i++) {
		struct slot *s = &shared->slot[i];
		if (s->t_begin == 0 && s->first_error[0] == '\0')
			continue; /* died in its setup: it reported on stderr */
		ops += s->ops;
		errors += s->errors;
		conflicts += s->conflicts;
		if (s->t_begin > 0 && s->t_begin < t_begin)
			t_begin = s->t_begin;
		if (s->t_end > t_end)
			t_end = s->t_end;
		for (int b = 0; b < HIST_BUCKETS; b++) {
			hist[b] += s->hist[b];
			rhist[b] += s->rhist[b];
			renames += s->rhist[b];
		}
		if (!first_error && s->first_error[0])
			first_error = s->first_error;
	}
	double secs = t_end > t_begin ? t_end - t_begin : 0;
	double pct[2], rpct[2];
	percentiles(hist, ops, pct);
	percentiles(rhist, renames, rpct);
	printf("loadgen mode=%s procs=%d ops=%" PRIu64 " secs=%.3f rate=%.1f p50_us=%.1f "
	       "p99_us=%.1f errors=%" PRIu64 " conflicts=%" PRIu64,
	       opt.mode, opt.procs, ops, secs, secs > 0 ? (double)ops / secs : 0, pct[0], pct[1],
	       errors, conflicts);
	if (renames)
		printf(" rename_p50_us=%.1f rename_p99_us=%.1f", rpct[0], rpct[1]);
	printf("\n");
	if (first_error)
		printf("loadgen first error: %s\n", first_error);
	if (bad)
		die("%d worker(s) exited abnormally", bad);
}

static void usage(void)
{
	fputs("usage: loadgen MODE [options]\n"
	      "modes:\n"
	      "  txn         statehouse: mkdir .tx/NAME, write 3 keys, rename .commit.pending\n"
	      "              onto .commit, rmdir (needs -m)\n"
	      "  txn-read    the same, reading 3 other keys through the view first, at the\n"
	      "              isolation level -I (written to .tx/NAME/.isolation either way)\n"
	      "  fill        statehouse: write -k keys default/bench-read/kNNNNN, -b per txn\n"
	      "  read        statehouse: random point reads (open/read/close) of the filled keys\n"
	      "  fresh       statehouse: writer + reader on one key, count stale reads (-w)\n"
	      "  at-read     statehouse: random point reads of .at/T/default/bench-read/kNNNNN\n"
	      "              (after fill); T per -t: head, own (the commit that wrote the key),\n"
	      "              rand (uniform in own..head)\n"
	      "  replay      statehouse: fill the log to -n events (default 100000; -p writers),\n"
	      "              then time one read of .events/all.jsonl (events/s, MB/s), or with\n"
	      "              -S N of .events/since/<head-N+1>/all.jsonl\n"
	      "  follow-lat  statehouse: a reader blocks on .follow/since/<next>/...; a writer\n"
	      "              commits -n times (-w txn|direct), each after the last was seen;\n"
	      "              latency = reader's read() return - writer's rename() return\n"
	      "  sqlite      baseline: WAL + synchronous=FULL, BEGIN IMMEDIATE, 1 event + 3 op\n"
	      "              rows, COMMIT; one connection per process (needs -f)\n"
	      "  files       baseline: 3 files: write, fsync, rename; fsync dir (needs -D)\n"
	      "  files-read  baseline: random point reads of -k plain files in -D (fills them)\n"
	      "options:\n"
	      "  -p P      worker processes (default 1)\n"
	      "  -d SECS   duration (default 5)       -n N   ops per process instead\n"
	      "  -W SECS   warm-up before counting (default 0)\n"
	      "  -m MNT    statehouse mountpoint      -f DB  sqlite database file\n"
	      "  -D DIR    directory for files modes  -k N   keys for read modes (10000)\n"
	      "  -s BYTES  value size (default 100)   -b N   keys per fill txn (250; 1=direct)\n"
	      "  -w txn|direct   writer kind for fresh and follow-lat (default txn)\n"
	      "  -R MNT    fresh: the reader reads through MNT (e.g. the read-only mount)\n"
	      "  -t head|own|rand  at-read: which commit_ts T (default own)\n"
	      "  -S N      replay: read the last N events through .events/since/\n"
	      "  -F agent|all    follow-lat: .follow/since/T/default/bench-follow.jsonl or\n"
	      "            .../all.jsonl (default agent)\n"
	      "  -P read|poll    follow-lat: block in read(), or poll() then read (default read)\n"
	      "  -I snapshot|serializable  txn-read: the isolation level (default snapshot)\n"
	      "  -O N      txn, txn-read: number the writers' agents from N (bench-wN...)\n"
	      "output: one line 'loadgen mode=.. procs=.. ops=.. secs=.. rate=.. ...'\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-')
		usage();
	opt.mode = argv[1];
	optind = 2;
	int ch;
	while ((ch = getopt(argc, argv, "p:d:n:W:m:R:f:D:k:s:b:w:t:S:F:P:I:O:")) != -1) {
		switch (ch) {
		case 'p': opt.procs = atoi(optarg); break;
		case 'd': opt.secs = atof(optarg); break;
		case 'n': opt.count = atol(optarg); break;
		case 'W': opt.warmup_secs = atof(optarg); break;
		case 'm': opt.mnt = optarg; break;
		case 'R': opt.read_mnt = optarg; break;
		case 'f': opt.db = optarg; break;
		case 'D': opt.dir = optarg; break;
		case 'k': opt.keys = atol(optarg); break;
		case 's': opt.value_bytes = atoi(optarg); break;
		case 'b': opt.batch = atoi(optarg); break;
		case 'w': opt.writer = optarg; break;
		case 't': opt.at_t = optarg; break;
		case 'S': opt.since_back = atol(optarg); break;
		case 'F': opt.follow_file = optarg; break;
		case 'P': opt.wait = optarg; break;
		case 'I': opt.isolation = optarg; break;
		case 'O': opt.writer_base = atoi(optarg); break;
		default: usage();
		}
	}
	if (opt.procs < 1 || opt.procs > MAX_PROCS)
		die("-p must be 1..%d", MAX_PROCS);
	if (opt.value_bytes < 2 || opt.value_bytes > 60000)
		die("-s must be 2..60000");
	if (opt.keys < 1 || opt.keys > 99999)
		die("-k must be 1..99999");
	const char *m = opt.mode;
	bool needs_mnt = !strcmp(m, "txn") || !strcmp(m, "txn-read") || !strcmp(m, "read") ||
			 !strcmp(m, "fill") ||
			 !strcmp(m, "fresh") || !strcmp(m, "at-read") || !strcmp(m, "replay") ||
			 !strcmp(m, "follow-lat");
	if (needs_mnt && !opt.mnt)
		die("mode %s needs -m MOUNTPOINT", m);
	if (!strcmp(m, "sqlite") && !opt.db)
		die("mode sqlite needs -f DBFILE");
	if ((!strcmp(m, "files") || !strcmp(m, "files-read")) && !opt.dir)
		die("mode %s needs -D DIR", m);
	if (!needs_mnt && strcmp(m, "sqlite") && strcmp(m, "files") && strcmp(m, "files-read"))
		usage();
	if (strcmp(opt.writer, "txn") && strcmp(opt.writer, "direct"))
		die("-w must be txn or direct");
	if (strcmp(opt.at_t, "head") && strcmp(opt.at_t, "own") && strcmp(opt.at_t, "rand"))
		die("-t must be head, own or rand");
	if (strcmp(opt.follow_file, "agent") && strcmp(opt.follow_file, "all"))
		die("-F must be agent or all");
	if (strcmp(opt.wait, "read") && strcmp(opt.wait, "poll"))
		die("-P must be read or poll");
	if (strcmp(opt.isolation, "snapshot") && strcmp(opt.isolation, "serializable"))
		die("-I must be snapshot or serializable");

	shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		      0);
	if (shared == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);

	if (!strcmp(m, "fill")) {
		do_fill();
		return 0;
	}
	if (!strcmp(m, "fresh")) {
		do_fresh();
		return 0;
	}
	if (!strcmp(m, "replay")) {
		do_replay();
		return 0;
	}
	if (!strcmp(m, "follow-lat")) {
		do_follow();
		return 0;
	}
	if (!strcmp(m, "at-read"))
		at_read_setup();
	if (!strcmp(m, "files-read")) {
		do_fill();
		memset(shared, 0, sizeof *shared);
	}
	run_workers();
	return 0;
}
