/* SPDX-License-Identifier: MIT */
/*
 * loadgen_stream: the stream modes of bench/loadgen. "replay" fills the event log to N
 * events and times one read of .events/all.jsonl (or of .events/since/); "follow-lat"
 * times a commit until a reader blocked on .follow/since/ has its line. What they use of
 * the core (options, slots, file helpers, sh_txn) is in loadgen.c, declared in loadgen.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loadgen.h"

/* ---- replay: fill ~N events, then time one full read of the event log ---- */

/* A JSON object of exactly len bytes when len allows (most agents store JSON). */
static size_t json_value(char *buf, int len, int w, uint64_t seq)
{
	int n = snprintf(buf, (size_t)len + 1, "{\"w\":%d,\"seq\":%" PRIu64 ",\"pad\":\"", w, seq);
	if (n + 2 > len)
		return (size_t)snprintf(buf, (size_t)len + 1, "%" PRIu64, seq);
	for (; n < len - 2; n++)
		buf[n] = (char)('a' + (n + seq) % 26);
	buf[n++] = '"';
	buf[n++] = '}';
	return (size_t)n;
}

#define REPLAY_TXN_KEYS 5
#define REPLAY_AGENT_KEYS 64

/* Commit c of writer w: every 4th a transaction of 5 keys, the others one direct write. */
static int replay_commit(int w, uint64_t c)
{
	char keybuf[REPLAY_TXN_KEYS][64], vbuf[REPLAY_TXN_KEYS][4096], path[PATH_LEN];
	size_t lens[REPLAY_TXN_KEYS];
	int vb = opt.value_bytes < 4000 ? opt.value_bytes : 4000;
	if (c % 4 != 0) {
		size_t len = json_value(vbuf[0], vb, w, c);
		snprintf(path, sizeof path, "%s/default/bench-ev%d/k%02d", opt.mnt, w,
			 (int)(c % REPLAY_AGENT_KEYS));
		return put_file(path, strlen(opt.mnt), vbuf[0], len, 0);
	}
	const char *keys[REPLAY_TXN_KEYS];
	char *vals[REPLAY_TXN_KEYS];
	for (int j = 0; j < REPLAY_TXN_KEYS; j++) {
		snprintf(keybuf[j], sizeof keybuf[j], "default/bench-ev%d/k%02d", w,
			 (int)((c + (uint64_t)j) % REPLAY_AGENT_KEYS));
		lens[j] = json_value(vbuf[j], vb, w, c);
		keys[j] = keybuf[j];
		vals[j] = vbuf[j];
	}
	char name[64];
	snprintf(name, sizeof name, "ev-%d-%d-%" PRIu64, (int)getpid(), w, c);
	return sh_txn(name, keys, vals, lens, REPLAY_TXN_KEYS);
}

static void replay_fill(long need)
{
	pid_t pids[MAX_PROCS];
	double t0 = now_s();
	for (int i = 0; i < opt.procs; i++) {
		long mine = need / opt.procs + (i < need % opt.procs);
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork: %s", strerror(errno));
		if (pids[i] == 0) {
			my_index = i;
			my_slot = &shared->slot[i];
			unsigned bad = 0;
			uint64_t base = (uint64_t)now_s() * 1000; /* distinct values across runs */
			for (long c = 1; c <= mine + (long)my_slot->errors && bad < 100; c++) {
				if (replay_commit(i, base + (uint64_t)c) < 0)
					bad++;
				else {
					my_slot->ops++;
					bad = 0;
				}
			}
			_exit(0);
		}
	}
	uint64_t ops = 0, errors = 0;
	const char *first = NULL;
	for (int i = 0; i < opt.procs; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		ops += shared->slot[i].ops;
		errors += shared->slot[i].errors;
		if (!first && shared->slot[i].first_error[0])
			first = shared->slot[i].first_error;
	}
	double secs = now_s() - t0;
	printf("loadgen replay-fill: commits=%" PRIu64 " (1 in 4 a txn of %d keys, the rest direct "
	       "writes of %d B JSON) procs=%d secs=%.2f rate=%.0f commits/s errors=%" PRIu64 "\n",
	       ops, REPLAY_TXN_KEYS, opt.value_bytes, opt.procs, secs, secs > 0 ? (double)ops / secs : 0,
	       errors);
	if (first)
		printf("loadgen replay-fill first error: %s\n", first);
	if (errors)
		die("the fill had errors");
	memset(shared->slot, 0, sizeof shared->slot[0] * (size_t)opt.procs);
}

struct stream_stat {
	uint64_t lines, bytes, gaps, disorder;
	int64_t first_ts, last_ts;
	bool partial; /* the file did not end with a newline */
};

/* Read a whole .events file with 1 MiB reads; count lines, parse each line's commit_ts. */
static int read_stream(const char *path, struct stream_stat *st)
{
	static char buf[1 << 20];
	char head[48];
	size_t hlen = 0;
	int64_t prev = 0;
	memset(st, 0, sizeof *st);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail("open", path, errno);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail("read", path, errno);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		st->bytes += (uint64_t)n;
		size_t pos = 0;
		while (pos < (size_t)n) {
			char *nl = memchr(buf + pos, '\n', (size_t)n - pos);
			size_t end = nl ? (size_t)(nl - buf) : (size_t)n;
			size_t take = end - pos < sizeof head - 1 - hlen ? end - pos : sizeof head - 1 - hlen;
			memcpy(head + hlen, buf + pos, take);
			hlen += take;
			if (!nl) {
				pos = (size_t)n;
				break;
			}
			head[hlen] = '\0';
			int64_t ts = -1;
			if (!strncmp(head, "{\"commit_ts\":", 13))
				ts = strtoll(head + 13, NULL, 10);
			if (ts <= prev)
				st->disorder++;
			else if (prev && ts != prev + 1)
				st->gaps++;
			if (!st->lines)
				st->first_ts = ts;
			st->last_ts = ts;
			prev = ts;
			st->lines++;
			hlen = 0;
			pos = end + 1;
		}
	}
	st->partial = hlen > 0;
	close(fd);
	return 0;
}

void do_replay(void)
{
	my_slot = &shared->slot[0];
	long target = opt.count > 0 ? opt.count : 100000;
	int64_t head = commit_mark("replay");
	if (head < target) {
		printf("loadgen replay: head=%" PRId64 ", filling to %ld events\n", head, target);
		replay_fill(target - head);
		head = commit_mark("replay");
	}
	my_slot = &shared->slot[0];
	char path[PATH_LEN];
	int64_t from = 1;
	if (opt.since_back > 0) {
		from = head - opt.since_back + 1 > 1 ? head - opt.since_back + 1 : 1;
		snprintf(path, sizeof path, "%s/.events/since/%" PRId64 "/all.jsonl", opt.mnt, from);
	} else {
		snprintf(path, sizeof path, "%s/.events/all.jsonl", opt.mnt);
	}
	struct stream_stat st;
	double t0 = now_s();
	int rc = read_stream(path, &st);
	double secs = now_s() - t0;
	if (rc == 0) {
		if (st.partial)
			fail("last line cut short in", path, EIO);
		else if (st.disorder)
			fail("lines out of commit_ts order in", path, EIO);
		else if (st.last_ts < head)
			fail("log ends before the head committed before open in", path, EIO);
		else if (st.first_ts != from)
			fail("first line is not the since commit_ts in", path, EIO);
	}
	printf("loadgen mode=replay file=%s events=%" PRIu64 " bytes=%" PRIu64 " secs=%.4f "
	       "rate=%.0f mb_s=%.1f ms=%.2f first_ts=%" PRId64 " last_ts=%" PRId64
	       " head=%" PRId64 " gaps=%" PRIu64 " errors=%" PRIu64 " \n",
	       opt.since_back > 0 ? "since" : "all", st.lines, st.bytes, secs,
	       secs > 0 ? (double)st.lines / secs : 0, secs > 0 ? (double)st.bytes / secs / 1e6 : 0,
	       secs * 1e3, st.first_ts, st.last_ts, head, st.gaps, my_slot->errors);
	if (my_slot->first_error[0])
		printf("loadgen first error: %s\n", my_slot->first_error);
}

/* ---- follow-lat: rename() returns -> a .follow reader has the line ---- */

struct follow_ack {
	uint64_t seq;    /* the value committed (0: the reader is ready; ~0: it failed) */
	int64_t ts;      /* the line's commit_ts */
	double t_read;   /* CLOCK_MONOTONIC when read() returned the line */
	int err;
};

static void follow_reader(const char *path, int ack_fd)
{
	static char buf[1 << 20];
	struct follow_ack a = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		a.seq = UINT64_MAX;
		a.err = errno;
		(void)!write(ack_fd, &a, sizeof a);
		_exit(1);
	}
	(void)!write(ack_fd, &a, sizeof a); /* ready */
	size_t have = 0;
	for (;;) {
		if (!strcmp(opt.wait, "poll")) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			if (poll(&p, 1, -1) < 0 && errno != EINTR)
				break;
		}
		ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
		double t = now_s();
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			a.seq = UINT64_MAX;
			a.err = n < 0 ? errno : 0;
			(void)!write(ack_fd, &a, sizeof a);
			_exit(1);
		}
		have += (size_t)n;
		buf[have] = '\0';
		char *line = buf, *nl;
		while ((nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
			*nl = '\0';
			char *v = strstr(line, "\"value\":");
			a.ts = !strncmp(line, "{\"commit_ts\":", 13) ? strtoll(line + 13, NULL, 10) : -1;
			a.seq = v ? strtoull(v + 8, NULL, 10) : 0;
			a.t_read = t;
			a.err = 0;
			if (write(ack_fd, &a, sizeof a) != sizeof a)
				_exit(1);
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
	}
	_exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct_us(const double *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)ceil(p * (double)n);
	return v[i ? i - 1 : 0] * 1e6;
}

void do_follow(void)
{
	my_slot = &shared->slot[0];
	long count = opt.count > 0 ? opt.count : 1000;
	const char *key = "default/bench-follow/k";
	char path[PATH_LEN];
	snprintf(path, sizeof path, "%s/%s", opt.mnt, key);
	if (put_file(path, strlen(opt.mnt), "0", 1, 0) < 0)
		die("follow-lat: %s", my_slot->first_error);
	int64_t ts0 = key_commit_ts(path);
	if (ts0 < 0)
		die("getxattr commit_ts of %s: %s", path, strerror(errno));
	if (!strcmp(opt.follow_file, "all"))
		snprintf(path, sizeof path, "%s/.follow/since/%" PRId64 "/all.jsonl", opt.mnt, ts0 + 1);
	else
		snprintf(path, sizeof path, "%s/.follow/since/%" PRId64 "/default/bench-follow.jsonl",
			 opt.mnt, ts0 + 1);

	int p[2];
	if (pipe(p) < 0)
		die("pipe: %s", strerror(errno));
	pid_t reader = fork();
	if (reader < 0)
		die("fork: %s", strerror(errno));
	if (reader == 0) {
		close(p[0]);
		follow_reader(path, p[1]);
	}
	close(p[1]);
	struct follow_ack a;
	if (read(p[0], &a, sizeof a) != sizeof a || a.seq != 0)
		die("follow-lat: reader cannot open %s: %s", path, strerror(a.err));
	usleep(100000); /* let the reader park in read() */

	double *lat = calloc((size_t)count, sizeof *lat), *tot = calloc((size_t)count, sizeof *tot);
	double *dur = calloc((size_t)count, sizeof *dur);
	size_t n = 0, negative = 0;
	int64_t prev_ts = ts0;
	double t_begin = now_s(), deadline = t_begin + (opt.secs > 0 ? opt.secs : 1e9);
	for (uint64_t seq = 1; (long)seq <= count && now_s() < deadline; seq++) {
		char val[32], name[64];
		int len = snprintf(val, sizeof val, "%" PRIu64, seq);
		double t0 = now_s(), t_done;
		if (!strcmp(opt.writer, "direct")) {
			snprintf(path, sizeof path, "%s/%s", opt.mnt, key);
			if (put_file(path, strlen(opt.mnt), val, (size_t)len, 0) < 0)
				break;
			t_done = now_s();
		} else {
			char *vals[1] = {val};
			size_t lens[1] = {(size_t)len};
			snprintf(name, sizeof name, "fl-%d-%" PRIu64, (int)getpid(), seq);
			if (sh_txn(name, &key, vals, lens, 1) < 0)
				break;
			t_done = last_rename_done;
		}
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		if (poll(&pf, 1, 5000) != 1 || read(p[0], &a, sizeof a) != sizeof a) {
			fail("no line within 5 s (or the reader died) after commit of", key, ETIMEDOUT);
			break;
		}
		if (a.seq == UINT64_MAX) {
			fail("follow read of", ".follow/since/...", a.err ? a.err : EIO);
			break;
		}
		if (a.seq != seq || a.ts <= prev_ts) {
			char what[128];
			snprintf(what, sizeof what, "expected value %" PRIu64 " after commit_ts %" PRId64
				 ", got value %" PRIu64 " commit_ts %" PRId64 " in", seq, prev_ts, a.seq, a.ts);
			fail(what, path, EIO);
			break;
		}
		prev_ts = a.ts;
		lat[n] = a.t_read - t_done;
		tot[n] = a.t_read - t0;
		dur[n] = t_done - t0;
		if (lat[n] < 0)
			negative++;
		n++;
	}
	double secs = now_s() - t_begin;
	kill(reader, SIGKILL);
	waitpid(reader, NULL, 0);
	qsort(lat, n, sizeof *lat, cmp_double);
	qsort(tot, n, sizeof *tot, cmp_double);
	qsort(dur, n, sizeof *dur, cmp_double);
	printf("loadgen mode=follow-lat writer=%s file=%s wait=%s commits=%zu secs=%.3f rate=%.1f "
	       "p50_us=%.1f p99_us=%.1f min_us=%.1f max_us=%.1f negative=%zu commit_p50_us=%.1f "
	       "commit_p99_us=%.1f total_p50_us=%.1f total_p99_us=%.1f errors=%" PRIu64 " \n",
	       opt.writer, opt.follow_file, opt.wait, n, secs, secs > 0 ? (double)n / secs : 0,
	       pct_us(lat, n, 0.50), pct_us(lat, n, 0.99), n ? lat[0] * 1e6 : 0,
	       n ? lat[n - 1] * 1e6 : 0, negative, pct_us(dur, n, 0.50), pct_us(dur, n, 0.99),
	       pct_us(tot, n, 0.50), pct_us(tot, n, 0.99), my_slot->errors);
	if (my_slot->first_error[0])
		printf("loadgen first error: %s\n", my_slot->first_error);
}
