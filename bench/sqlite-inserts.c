/* SPDX-License-Identifier: MIT */
/*
 * sqlite-inserts: what the statements of one commit cost the committer, on the daemon's
 * own tables (events, ops and ops' indexes as store/sqlite.c makes them, schema 3), in
 * the ways a commit can be written: BEGIN and COMMIT as text (sqlite3_exec, as the store
 * did) or as prepared statements, and the ops as one INSERT per row or as one multi-row
 * INSERT, and the last with the applied-request record of each commit (a row of
 * `applied`, its index and the trim every 1024 commits, as store/sqlite_applied.c
 * writes them). Each commit is 1 event row and K op rows of 100-byte values on K keys whose
 * versions grow, as `loadgen txn` makes them; B commits per SQLite transaction (B > 1:
 * a group commit). Prints the CPU time (user + system, this process) per commit of each
 * variant, measured in alternation over R rounds (median of the rounds): the work of the
 * committer's thread, less sensitive to other load on the machine than the wall time,
 * which is printed too. With -s FULL every SQLite COMMIT waits for an fsync (wall time,
 * not CPU); -s OFF leaves the statements alone.
 *
 * usage: bench/out/sqlite-inserts -f DB [-n COMMITS] [-k KEYS] [-b BATCH] [-r ROUNDS]
 *                                 [-s OFF|NORMAL|FULL]
 */
#define _GNU_SOURCE
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"CREATE TABLE IF NOT EXISTS events(commit_ts INTEGER PRIMARY KEY, txn TEXT NOT NULL,"
	"  time_ns INTEGER NOT NULL, note BLOB);"
	"CREATE TABLE IF NOT EXISTS ops(commit_ts INTEGER NOT NULL, idx INTEGER NOT NULL,"
	"  ns TEXT NOT NULL, agent TEXT NOT NULL, key TEXT NOT NULL,"
	"  op INTEGER NOT NULL CHECK (op IN (1, 2, 3, 4, 5)), version INTEGER NOT NULL,"
	"  value BLOB, PRIMARY KEY (commit_ts, idx)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS ops_by_key_ts ON ops(ns, agent, key, commit_ts, version);"
	"CREATE INDEX IF NOT EXISTS ops_by_agent_ts ON ops(ns, agent, commit_ts);"
	"CREATE INDEX IF NOT EXISTS ops_owner_records ON ops(ns, agent, commit_ts) WHERE op = 3;"
	"CREATE TABLE IF NOT EXISTS applied(instance INTEGER NOT NULL, request INTEGER NOT NULL,"
	"  commit_ts INTEGER NOT NULL, PRIMARY KEY (instance, request)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS applied_by_ts ON applied(commit_ts);";

static sqlite3 *db;
static int K = 3, B = 1;
static long long ts;
static char value[100];

static void check(int rc, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		fprintf(stderr, "sqlite-inserts: %s: %s\n", what, sqlite3_errmsg(db));
		exit(1);
	}
}

static sqlite3_stmt *prep(const char *sql)
{
	sqlite3_stmt *s;

	check(sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL), sql);
	return s;
}

static void step(sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	check(rc, what);
}

static double clock_s(clockid_t id)
{
	struct timespec t;

	clock_gettime(id, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

enum variant { V_EXEC, V_PREP, V_MULTI, V_APPLIED, V_N };
static const char *const names[V_N] = {
	"BEGIN/COMMIT as text, one INSERT per op (the store before)",
	"BEGIN/COMMIT prepared, one INSERT per op",
	"BEGIN/COMMIT prepared, one multi-row INSERT for the ops",
	"prepared, one INSERT per op, with its applied-request row",
};
static sqlite3_stmt *begin, *commit, *ins_event, *ins_op, *ins_ops, *ins_applied, *trim;

/* One event row with its K op rows (bound one by one, or in one statement). */
static void one_commit(enum variant v, char key[][16])
{
	ts++;
	sqlite3_bind_int64(ins_event, 1, ts);
	sqlite3_bind_text(ins_event, 2, "lg", -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins_event, 3, ts * 1000);
	sqlite3_bind_null(ins_event, 4);
	step(ins_event, "insert event");
	for (int i = 0; i < K; i++) {
		sqlite3_stmt *s = v == V_MULTI ? ins_ops : ins_op;
		int b = v == V_MULTI ? 8 * i : 0;

		sqlite3_bind_int64(s, b + 1, ts);
		sqlite3_bind_int(s, b + 2, i);
		sqlite3_bind_text(s, b + 3, "default", -1, SQLITE_STATIC);
		sqlite3_bind_text(s, b + 4, "bench-w0", -1, SQLITE_STATIC);
		sqlite3_bind_text(s, b + 5, key[i], -1, SQLITE_STATIC);
		sqlite3_bind_int(s, b + 6, 1);
		sqlite3_bind_int64(s, b + 7, ts);
		sqlite3_bind_blob(s, b + 8, value, sizeof(value), SQLITE_STATIC);
		if (v != V_MULTI)
			step(s, "insert op");
	}
	if (v == V_MULTI)
		step(ins_ops, "insert ops");
	if (v == V_APPLIED) {
		sqlite3_bind_int64(ins_applied, 1, 0x5eed5eed5eedLL);
		sqlite3_bind_int64(ins_applied, 2, 2 * ts);
		sqlite3_bind_int64(ins_applied, 3, ts);
		step(ins_applied, "insert applied");
		if (ts % 1024 == 0) {
			sqlite3_bind_int64(trim, 1, ts - 65536);
			step(trim, "trim applied");
		}
	}
}

/* n commits in variant v: CPU seconds per commit (and wall seconds in *wall) */
static double run(enum variant v, int n, double *wall)
{
	char key[64][16];
	double t0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC);

	for (int i = 0; i < K; i++)
		snprintf(key[i], sizeof(key[i]), "k%d", i);
	for (int c = 0; c < n; c += B) {
		if (v == V_EXEC)
			check(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), "begin");
		else
			step(begin, "begin");
		for (int j = 0; j < B; j++)
			one_commit(v, key);
		if (v == V_EXEC)
			check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), "commit");
		else
			step(commit, "commit");
	}
	*wall = (clock_s(CLOCK_MONOTONIC) - w0) / n;
	return (clock_s(CLOCK_PROCESS_CPUTIME_ID) - t0) / n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *sync = "FULL";
	int n = 2000, rounds = 5, c;
	char sql[4096], pragma[64];
	size_t off;

	while ((c = getopt(argc, argv, "f:n:k:b:r:s:")) != -1) {
		switch (c) {
		case 'f': path = optarg; break;
		case 'n': n = atoi(optarg); break;
		case 'k': K = atoi(optarg); break;
		case 'b': B = atoi(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 's': sync = optarg; break;
		default: return 2;
		}
	}
	if (!path || K < 1 || K > 64 || B < 1 || n < B || rounds < 1 || rounds > 64) {
		fprintf(stderr, "usage: sqlite-inserts -f DB [-n COMMITS] [-k 1..64] [-b BATCH]"
				" [-r 1..64] [-s OFF|NORMAL|FULL]\n");
		return 2;
	}
	memset(value, 'v', sizeof(value));
	unlink(path);
	check(sqlite3_open(path, &db), "open");
	check(sqlite3_exec(db, schema, NULL, NULL, NULL), "schema");
	snprintf(pragma, sizeof(pragma), "PRAGMA synchronous=%s", sync);
	check(sqlite3_exec(db, pragma, NULL, NULL, NULL), "synchronous");
	begin = prep("BEGIN IMMEDIATE");
	commit = prep("COMMIT");
	ins_event = prep("INSERT INTO events(commit_ts, txn, time_ns, note) VALUES (?1, ?2, ?3, ?4)");
	ins_op = prep("INSERT INTO ops(commit_ts, idx, ns, agent, key, op, version, value)"
		      " VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
	off = (size_t)snprintf(sql, sizeof(sql),
			       "INSERT INTO ops(commit_ts, idx, ns, agent, key, op, version, value) VALUES");
	for (int i = 0; i < K; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "%s(?, ?, ?, ?, ?, ?, ?, ?)",
					i ? "," : "");
	ins_ops = prep(sql);
	ins_applied = prep("INSERT OR REPLACE INTO applied(instance, request, commit_ts)"
			   " VALUES (?1, ?2, ?3)");
	trim = prep("DELETE FROM applied WHERE commit_ts <= ?1");
	double r[V_N][64], w[V_N][64], ignored;

	run(V_PREP, n / 4, &ignored); /* warm up: the file and the page cache */
	for (int i = 0; i < rounds; i++)
		for (int k = 0; k < V_N; k++) {
			int v = i % 2 ? V_N - 1 - k : k;

			r[v][i] = run((enum variant)v, n, &w[v][i]);
		}
	printf("sqlite-inserts: %d commits of 1 event + %d ops, %d per SQLite transaction, "
	       "synchronous=%s, %d rounds\n  (us per commit: median CPU, median wall; then the CPU "
	       "of every round)\n", n, K, B, sync, rounds);
	for (int v = 0; v < V_N; v++) {
		double s[64], sw[64];

		memcpy(s, r[v], sizeof(double) * (size_t)rounds);
		memcpy(sw, w[v], sizeof(double) * (size_t)rounds);
		qsort(s, (size_t)rounds, sizeof(double), cmp_double);
		qsort(sw, (size_t)rounds, sizeof(double), cmp_double);
		printf("  %-60s %7.1f %7.1f  [", names[v], s[rounds / 2] * 1e6, sw[rounds / 2] * 1e6);
		for (int i = 0; i < rounds; i++)
			printf("%s%.1f", i ? " " : "", r[v][i] * 1e6);
		printf("]\n");
	}
	sqlite3_finalize(begin);
	sqlite3_finalize(commit);
	sqlite3_finalize(ins_event);
	sqlite3_finalize(ins_op);
	sqlite3_finalize(ins_ops);
	sqlite3_finalize(ins_applied);
	sqlite3_finalize(trim);
	sqlite3_close(db);
	return 0;
}
