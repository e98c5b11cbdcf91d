/* SPDX-License-Identifier: MIT */
/*
 * test_txn_dirs.c - cmocka unit tests of the txn layer: live directories, path rules,
 * owners and modes, directories as state, recovery and verify.
 * The fixture and helpers are in txnfx.c.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "blob.h"
#include "log.h"
#include "render.h"
#include "store.h"

#include "txnfx.h"

/* ==== live directories and path rules ======================================================= */

static void live_mkdir_and_rmdir_make_and_remove_empty_directories(void **state)
{
	struct fx *f = *state;
	struct txn_entry e;

	assert_errno(txn_live_mkdir(f->eng, "ns/a/dir", 8, NULL), 0);
	assert_errno(txn_stat(f->eng, NULL, "ns/a/dir", 8, &e), 0);
	assert_int_equal(e.type, TXN_DIR);
	assert_listing(f, NULL, "ns/a", "dir/");
	assert_errno(txn_live_mkdir(f->eng, "ns/a/dir", 8, NULL), -EEXIST);
	assert_errno(put(f, "ns/a/dir/k", "v", NULL), 0);
	assert_errno(txn_live_rmdir(f->eng, "ns/a/dir", 8, NULL), -ENOTEMPTY);
	assert_errno(txn_live_rmdir(f->eng, "ns/a/dir/k", 10, NULL), -ENOTDIR);
	assert_errno(txn_live_mkdir(f->eng, "ns/a/dir/k/sub", 14, NULL), -ENOTDIR);
	assert_errno(del(f, "ns/a/dir/k", NULL), 0);
	assert_listing(f, NULL, "ns/a", "dir/");
	assert_errno(txn_live_rmdir(f->eng, "ns/a/dir", 8, NULL), 0);
	assert_errno(txn_stat(f->eng, NULL, "ns/a/dir", 8, &e), -ENOENT);
	/* A directory that does not exist (implicit, or gone with its last key): nothing to do. */
	assert_errno(txn_live_rmdir(f->eng, "ns/a/nothing", 12, NULL), 0);
	/* A directory below an agent is state: mkdir and rmdir were commits too. */
	assert_i64_equal(txn_engine_head(f->eng), 4);
}

static bool is_dir(struct fx *f, struct txn *tx, const char *path)
{
	struct txn_entry e;

	return txn_stat(f->eng, tx, path, strlen(path), &e) == 0 && e.type == TXN_DIR;
}

static int64_t time_of(struct fx *f, const char *path)
{
	struct txn_entry e;

	assert_errno(txn_stat(f->eng, NULL, path, strlen(path), &e), 0);
	return e.time_ns;
}

static void directories_are_state_replayed_from_the_log_and_kept_in_snapshots(void **state)
{
	struct fx *f = *state;
	struct txn_stats st;
	int64_t t;

	assert_errno(txn_live_mkdir(f->eng, "ns/a/d", 6, NULL), 0);
	assert_errno(txn_live_mkdir(f->eng, "ns/a/d/e", 8, NULL), 0);
	assert_errno(txn_live_mkdir(f->eng, "ns/a/gone", 9, NULL), 0);
	assert_errno(txn_live_rmdir(f->eng, "ns/a/d", 6, NULL), -ENOTEMPTY);
	assert_errno(txn_live_rmdir(f->eng, "ns/a/gone", 9, NULL), 0);
	assert_errno(put(f, "ns/a/d/k", "v", NULL), 0);
	assert_errno(put(f, "ns/a/d/k", "w", NULL), 0); /* an overwrite: no entry changed */
	t = time_of(f, "ns/a/d");
	assert_true(t > 0);
	assert_true(t < time_of(f, "ns/a/d/k"));

	/* After a clean restart (the snapshot written at close, and the log). */
	restart(f);
	assert_true(is_dir(f, NULL, "ns/a/d/e"));
	assert_false(is_dir(f, NULL, "ns/a/gone"));
	assert_listing(f, NULL, "ns/a", "d/");
	assert_i64_equal(time_of(f, "ns/a/d"), t);

	/* From a snapshot alone. */
	assert_errno(txn_engine_snapshot(f->eng), 0);
	restart(f);
	txn_engine_stats(f->eng, &st);
	assert_int_equal(st.last_replayed, 0);
	assert_true(is_dir(f, NULL, "ns/a/d/e"));
	assert_false(is_dir(f, NULL, "ns/a/gone"));
	assert_i64_equal(time_of(f, "ns/a/d"), t);

	/* A rename moves the empty directory with the keys, in one commit. */
	assert_errno(ren(f, "ns/a/d", "ns/a/moved", false, NULL), 0);
	assert_true(is_dir(f, NULL, "ns/a/moved/e"));
	assert_false(is_dir(f, NULL, "ns/a/d"));
	assert_errno(txn_live_rmdir(f->eng, "ns/a/moved/e", 12, NULL), 0);
	restart(f);
	assert_false(is_dir(f, NULL, "ns/a/moved/e"));
	assert_value(f, NULL, "ns/a/moved/k", "w");
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(txn_verify(f->dir, NULL), 0);
	assert_int_equal(fx_start(f), 0);
}

static void a_transaction_commits_its_mkdir_rmdir_and_directory_rename(void **state)
{
	struct fx *f = *state;
	struct txn *tx;

	assert_errno(txn_live_mkdir(f->eng, "ns/a/old", 8, NULL), 0);
	assert_errno(txn_live_mkdir(f->eng, "ns/a/src", 8, NULL), 0);
	assert_errno(txn_live_mkdir(f->eng, "ns/a/src/empty", 14, NULL), 0);
	tx = begin(f, "t");
	assert_true(is_dir(f, tx, "ns/a/src/empty"));
	assert_errno(txn_stage_mkdir(f->eng, tx, "ns/a/new", 8), 0);
	assert_errno(txn_stage_rmdir(f->eng, tx, "ns/a/src", 8), -ENOTEMPTY);
	assert_errno(txn_stage_rmdir(f->eng, tx, "ns/a/old", 8), 0);
	assert_errno(txn_stage_rename(f->eng, tx, "ns/a/src", 8, "ns/a/dst", 8, false), 0);
	assert_listing(f, tx, "ns/a", "dst/ new/");
	assert_listing(f, tx, "ns/a/dst", "empty/");
	/* Nothing of it outside before the commit. */
	assert_listing(f, NULL, "ns/a", "old/ src/");
	assert_errno(commit(f, tx, NULL), 0);
	assert_listing(f, NULL, "ns/a", "dst/ new/");
	assert_true(is_dir(f, NULL, "ns/a/dst/empty"));
	restart(f);
	assert_listing(f, NULL, "ns/a", "dst/ new/");
	assert_true(is_dir(f, NULL, "ns/a/dst/empty"));
}

static void namespaces_and_agents_exist_implicitly_but_are_listed_only_with_keys(void **state)
{
	struct fx *f = *state;
	struct txn_entry e;
	int err = 0;
	char *l;

	assert_errno(txn_stat(f->eng, NULL, "anyns", 5, &e), 0);
	assert_int_equal(e.type, TXN_DIR);
	assert_errno(txn_stat(f->eng, NULL, "anyns/anyagent", 14, &e), 0);
	assert_int_equal(e.type, TXN_DIR);
	assert_errno(txn_stat(f->eng, NULL, "anyns/anyagent/key", 18, &e), -ENOENT);
	assert_listing(f, NULL, "", "");
	assert_errno(put(f, "b/x/k", "1", NULL), 0);
	assert_errno(put(f, "a/y/k", "2", NULL), 0);
	assert_listing(f, NULL, "", "a/ b/");
	assert_errno(del(f, "b/x/k", NULL), 0);
	assert_listing(f, NULL, "", "a/");
	assert_listing(f, NULL, "b", "");
	l = listing(f, NULL, "a/y/k", &err);
	assert_null(l);
	assert_errno(err, -ENOTDIR);
	assert_errno(txn_read(f->eng, NULL, "a/y", 3, &(struct blob *){ NULL }, NULL), -EISDIR);
}

static void check_name_rejects_empty_dot_slash_nul_and_long_names(void **state)
{
	char n255[256], n256[257];

	(void)state;
	memset(n255, 'a', 255);
	memset(n256, 'a', 256);
	assert_errno(txn_check_name("", 0), -EINVAL);
	assert_errno(txn_check_name(".", 1), -EINVAL);
	assert_errno(txn_check_name("..", 2), -EINVAL);
	assert_errno(txn_check_name("a/b", 3), -EINVAL);
	assert_errno(txn_check_name("a\0b", 3), -EINVAL);
	assert_errno(txn_check_name("...", 3), 0);
	assert_errno(txn_check_name(".hidden", 7), 0);
	assert_errno(txn_check_name("x", 1), 0);
	assert_errno(txn_check_name("caf\xc3\xa9", 5), 0);
	assert_errno(txn_check_name(n255, 255), 0);
	assert_errno(txn_check_name(n256, 256), -ENAMETOOLONG);
	n256[100] = '/';
	assert_errno(txn_check_name(n256, 256), -EINVAL);

	assert_int_equal(txn_path_depth("", 0), 0);
	assert_int_equal(txn_path_depth("ns", 2), 1);
	assert_int_equal(txn_path_depth("ns/a", 4), 2);
	assert_int_equal(txn_path_depth("ns/a/k/x/y", 10), 5);
}

static void versions_and_options_are_reported(void **state)
{
	struct fx *f = *state;

	assert_int_equal(txn_schema_version(), STORE_SCHEMA_VERSION);
	assert_memory_equal(txn_sqlite_version(), "3.", 2);
	assert_i64_equal(txn_engine_options(f->eng)->txn_timeout_ms, 30000);
	assert_int_equal(txn_engine_options(f->eng)->max_open_txns, 8);
	assert_errno(txn_engine_check(f->eng), 0);
}

/* ==== owners and modes ==================================================================== */

static int attr_commit(struct fx *f, const char *path, bool own, uint32_t uid, uint32_t gid,
		       uint32_t mode, int64_t *ts)
{
	struct done d = { 0 };
	struct txn_commit_req *req = auto_req(TXN_AUTO_ATTR, path, NULL, NULL, 0, &d);

	req->attr = (struct txn_attr){ .uid = uid, .gid = gid, .mode = mode, .own = own };
	return run_auto(f, req, ts);
}

static int chown_dir(struct fx *f, const char *path, uint32_t uid, uint32_t gid,
		     uint32_t mode, int64_t *ts)
{
	return attr_commit(f, path, true, uid, gid, mode, ts);
}

static int clear_dir(struct fx *f, const char *path, int64_t *ts)
{
	return attr_commit(f, path, false, 0, 0, 0, ts);
}

static void check_attr(struct txn_engine *eng, const char *path, uint32_t uid, uint32_t gid,
		       uint32_t mode, bool own, const char *file, int line)
{
	struct txn_attr a = { 0 };
	int err = txn_dir_attr(eng, path, strlen(path), &a);

	if (err || a.uid != uid || a.gid != gid || a.mode != mode || a.own != own) {
		print_error("attributes of '%s' are %s uid %u gid %u mode %04o%s,"
			    " expected uid %u gid %u mode %04o%s\n",
			    path, tu_errname(err), a.uid, a.gid, a.mode, a.own ? " (own)" : "",
			    uid, gid, mode, own ? " (own)" : "");
		_fail(file, line);
	}
}

/* own: recorded for this directory; otherwise inherited or the default. */
#define assert_attr(f, path, uid, gid, mode, own) \
	check_attr((f)->eng, (path), (uid), (gid), (mode), (own), __FILE__, __LINE__)

/* Restart with a daemon owner other than root, so that defaults are told apart. */
static void restart_owned_by(struct fx *f, uint32_t uid, uint32_t gid)
{
	f->opt.owner_uid = uid;
	f->opt.owner_gid = gid;
	restart(f);
}

static void a_directory_without_an_owner_record_has_the_daemon_owner_and_0755(void **state)
{
	struct fx *f = *state;
	struct txn_attr a;

	restart_owned_by(f, 4242, 4343);
	assert_attr(f, "ns", 4242, 4343, 0755, false);
	assert_attr(f, "ns/agent", 4242, 4343, 0755, false);
	assert_attr(f, "ns/agent/key/below", 4242, 4343, 0755, false);
	assert_errno(put(f, "ns/agent/key", "v", NULL), 0);
	assert_attr(f, "ns", 4242, 4343, 0755, false);
	assert_attr(f, "ns/agent/key", 4242, 4343, 0755, false);
	/* The root has no owner record of its own to ask for. */
	assert_errno(txn_dir_attr(f->eng, "", 0, &a), -EINVAL);
}

static void an_agent_inherits_its_namespace_until_it_has_an_owner_of_its_own(void **state)
{
	struct fx *f = *state;

	restart_owned_by(f, 4242, 4343);
	assert_errno(chown_dir(f, "ns", 1000, 100, 0750, NULL), 0);
	assert_attr(f, "ns", 1000, 100, 0750, true);
	assert_attr(f, "ns/a", 1000, 100, 0750, false);
	assert_attr(f, "ns/a/k/x", 1000, 100, 0750, false);

	assert_errno(chown_dir(f, "ns/a", 2000, 200, 0700, NULL), 0);
	assert_attr(f, "ns/a", 2000, 200, 0700, true);
	/* Deeper paths take their agent's, and are never its own. */
	assert_attr(f, "ns/a/k", 2000, 200, 0700, false);
	assert_attr(f, "ns/a/k/x", 2000, 200, 0700, false);
	assert_attr(f, "ns/b", 1000, 100, 0750, false);
	assert_attr(f, "ns", 1000, 100, 0750, true);
	assert_attr(f, "other", 4242, 4343, 0755, false);
	assert_attr(f, "other/a", 4242, 4343, 0755, false);

	/* An agent's own record holds whatever its namespace becomes. */
	assert_errno(chown_dir(f, "ns", 3000, 300, 0711, NULL), 0);
	assert_attr(f, "ns/a", 2000, 200, 0700, true);
	assert_attr(f, "ns/b", 3000, 300, 0711, false);
	/* An agent with an owner in a namespace without one. */
	assert_errno(chown_dir(f, "other/a", 5000, 500, 0750, NULL), 0);
	assert_attr(f, "other", 4242, 4343, 0755, false);
	assert_attr(f, "other/a/k", 5000, 500, 0750, false);
}

static void an_agent_of_a_sticky_namespace_inherits_no_write_bits_for_group_or_others(
	void **state)
{
	struct fx *f = *state;

	assert_errno(chown_dir(f, "tmp", 0, 0, 01777, NULL), 0);
	assert_attr(f, "tmp", 0, 0, 01777, true);
	assert_attr(f, "tmp/a", 0, 0, 0755, false);
	assert_attr(f, "tmp/a/k", 0, 0, 0755, false);
	assert_errno(chown_dir(f, "team", 0, 50, 01770, NULL), 0);
	assert_attr(f, "team/a", 0, 50, 0750, false);
	/* Only the sticky bit masks; other special bits are simply not inherited. */
	assert_errno(chown_dir(f, "shared", 0, 50, 02775, NULL), 0);
	assert_attr(f, "shared", 0, 50, 02775, true);
	assert_attr(f, "shared/a", 0, 50, 0775, false);
	/* An agent's own record is not masked. */
	assert_errno(chown_dir(f, "tmp/mine", 1000, 1000, 0777, NULL), 0);
	assert_attr(f, "tmp/mine", 1000, 1000, 0777, true);
	assert_attr(f, "tmp/mine/k", 1000, 1000, 0777, false);
	/* Bits above 07777 (a caller's S_IFDIR) are not part of the record. */
	assert_errno(chown_dir(f, "typed", 7, 8, 040750, NULL), 0);
	assert_attr(f, "typed", 7, 8, 0750, true);
}

/* A completion that reads the attributes back: what a caller sees once it returns. */
struct probe {
	struct done d; /* first: on_done() takes req->arg as a struct done */
	struct txn_engine *eng;
	const char *path;
	struct txn_attr seen;
	int seen_err;
};

static void on_done_probe(struct txn_commit_req *req, int err)
{
	struct probe *p = req->arg;

	p->seen_err = txn_dir_attr(p->eng, p->path, strlen(p->path), &p->seen);
	on_done(req, err);
}

static void an_owner_change_is_a_commit_visible_once_it_completes(void **state)
{
	struct fx *f = *state;
	struct probe p = { .path = "ns/a/k" };
	struct txn_commit_req *req;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/k", "v", &ts), 0);
	assert_i64_equal(ts, 1);
	p.eng = f->eng;
	gate_close(f);
	req = auto_req(TXN_AUTO_ATTR, "ns/a", NULL, NULL, 0, &p.d);
	req->attr = (struct txn_attr){ .uid = 1000, .gid = 100, .mode = 0700, .own = true };
	req->done = on_done_probe;
	txn_autocommit(f->eng, req);
	/* Queued, not committed: nothing has changed yet. */
	assert_attr(f, "ns/a", 0, 0, 0755, false);
	assert_i64_equal(txn_engine_head(f->eng), 1);
	gate_open(f);
	wait_done(&p.d);
	assert_errno(p.d.err, 0);
	assert_i64_equal(p.d.commit_ts, 2);
	assert_i64_equal(txn_engine_head(f->eng), 2);
	assert_errno(p.seen_err, 0);
	assert_int_equal(p.seen.uid, 1000);
	assert_int_equal(p.seen.gid, 100);
	assert_int_equal(p.seen.mode, 0700);
	assert_false(p.seen.own);
	txn_commit_req_free(req);
	assert_attr(f, "ns/a", 1000, 100, 0700, true);
	/* Keys are not touched by it. */
	assert_i64_equal(version_of(f, NULL, "ns/a/k"), 1);
	assert_listing(f, NULL, "ns/a", "k");
}

static void clearing_an_owner_record_reverts_to_the_inherited_one(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	restart_owned_by(f, 4242, 4343);
	assert_errno(chown_dir(f, "ns", 1000, 100, 0750, NULL), 0);
	assert_errno(chown_dir(f, "ns/a", 2000, 200, 0700, NULL), 0);
	assert_errno(clear_dir(f, "ns/a", &ts), 0);
	assert_i64_equal(ts, 3);
	assert_attr(f, "ns/a", 1000, 100, 0750, false);
	assert_attr(f, "ns", 1000, 100, 0750, true);
	assert_errno(clear_dir(f, "ns", &ts), 0);
	assert_i64_equal(ts, 4);
	assert_attr(f, "ns", 4242, 4343, 0755, false);
	assert_attr(f, "ns/a", 4242, 4343, 0755, false);
	restart(f);
	assert_attr(f, "ns", 4242, 4343, 0755, false);
	assert_attr(f, "ns/a", 4242, 4343, 0755, false);
}

static void an_owner_change_of_the_root_or_of_a_missing_key_is_refused(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	assert_errno(put(f, "ns/a/k", "v", NULL), 0);
	assert_errno(chown_dir(f, "", 1000, 100, 0700, &ts), -EINVAL);
	assert_i64_equal(ts, 0);
	assert_errno(chown_dir(f, "ns/a/missing", 1000, 100, 0700, &ts), -ENOENT);
	assert_errno(chown_dir(f, "ns/a/k/below", 1000, 100, 0700, &ts), -ENOENT);
	assert_errno(chown_dir(f, "ns/a", 1000, 100, 0700, NULL), 0);
	assert_errno(chown_dir(f, "ns/a/dir/k", 1000, 100, 0700, &ts), -ENOENT);
	assert_errno(chown_dir(f, ".tx", 1000, 100, 0700, &ts), -EINVAL);
	assert_errno(chown_dir(f, "ns/..", 1000, 100, 0700, &ts), -EINVAL);
	assert_i64_equal(txn_engine_head(f->eng), 2);
	assert_attr(f, "ns/a/k", 1000, 100, 0700, false);
	assert_attr(f, "ns", 0, 0, 0755, false);
	/* The engine goes on: the next commit takes the next commit_ts. */
	assert_errno(chown_dir(f, "ns", 1000, 100, 0700, &ts), 0);
	assert_i64_equal(ts, 3);
}

/* A key's mode: what chmod asked, with its agent's owner (uid and gid are not kept). */
static void a_key_has_a_mode_of_its_own_that_goes_with_it(void **state)
{
	struct fx *f = *state;
	struct txn_commit_req *req;
	struct done d = { 0 };
	struct txn *tx;
	int64_t ts = -1;

	assert_errno(chown_dir(f, "ns/a", 2000, 200, 0700, NULL), 0);
	assert_errno(put(f, "ns/a/k", "v", NULL), 0);
	assert_errno(put(f, "ns/a/other", "o", NULL), 0);
	assert_errno(chown_dir(f, "ns/a/k", 1, 2, 0640, &ts), 0);
	assert_attr(f, "ns/a/k", 2000, 200, 0640, true);
	assert_int_equal(version_of(f, NULL, "ns/a/k"), 1); /* no new version */
	/* Kept by a put, moved by a rename, swapped by an exchange. */
	assert_errno(put(f, "ns/a/k", "v2", NULL), 0);
	assert_attr(f, "ns/a/k", 2000, 200, 0640, true);
	assert_errno(ren(f, "ns/a/k", "ns/a/moved", false, NULL), 0);
	assert_attr(f, "ns/a/moved", 2000, 200, 0640, true);
	assert_errno(put(f, "ns/a/k", "new", NULL), 0);
	assert_attr(f, "ns/a/k", 2000, 200, 0700, false);
	req = auto_req(TXN_AUTO_EXCHANGE, "ns/a/moved", "ns/a/other", NULL, 0, &d);
	assert_errno(run_auto(f, req, NULL), 0);
	assert_attr(f, "ns/a/other", 2000, 200, 0640, true);
	assert_attr(f, "ns/a/moved", 2000, 200, 0700, false);
	assert_value(f, NULL, "ns/a/other", "v2");
	/* A rename over a key with a mode takes the source's (none). */
	assert_errno(ren(f, "ns/a/k", "ns/a/other", false, NULL), 0);
	assert_attr(f, "ns/a/other", 2000, 200, 0700, false);
	/* Dropped by a delete, in a transaction as directly. */
	assert_errno(chown_dir(f, "ns/a/moved", 0, 0, 0600, NULL), 0);
	tx = begin(f, "t");
	assert_errno(unstage(f, tx, "ns/a/moved"), 0);
	assert_errno(commit(f, tx, NULL), 0);
	assert_errno(put(f, "ns/a/moved", "again", NULL), 0);
	assert_attr(f, "ns/a/moved", 2000, 200, 0700, false);
	/* A put that creates a key with a mode of its own; one that overwrites keeps it. */
	memset(&d, 0, sizeof(d));
	req = auto_req(TXN_AUTO_PUT, "ns/a/created", NULL, "c", 1, &d);
	req->attr = (struct txn_attr){ .mode = 0750, .own = true };
	assert_errno(run_auto(f, req, NULL), 0);
	assert_attr(f, "ns/a/created", 2000, 200, 0750, true);
	memset(&d, 0, sizeof(d));
	req = auto_req(TXN_AUTO_PUT, "ns/a/other", NULL, "c", 1, &d);
	req->attr = (struct txn_attr){ .mode = 0750, .own = true };
	assert_errno(run_auto(f, req, NULL), 0);
	assert_attr(f, "ns/a/other", 2000, 200, 0700, false);
	assert_errno(chown_dir(f, "ns/a/moved", 0, 0, 0604, NULL), 0);

	/* By replay, from a snapshot, and verified. */
	restart(f);
	assert_attr(f, "ns/a/created", 2000, 200, 0750, true);
	assert_attr(f, "ns/a/moved", 2000, 200, 0604, true);
	assert_attr(f, "ns/a/other", 2000, 200, 0700, false);
	assert_errno(txn_engine_snapshot(f->eng), 0);
	restart(f);
	assert_attr(f, "ns/a/created", 2000, 200, 0750, true);
	assert_attr(f, "ns/a/moved", 2000, 200, 0604, true);
	assert_attr(f, "ns/a/k", 2000, 200, 0700, false);
	assert_value(f, NULL, "ns/a/moved", "again");
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(txn_verify(f->dir, NULL), 0);
	assert_errno(fx_start(f), 0);
}

#if STATEHOUSE_FAULT_INJECTION
static void a_failed_owner_change_changes_nothing(void **state)
{
	struct fx *f = *state;
	int64_t ts = -1;

	assert_errno(chown_dir(f, "ns", 1000, 100, 0750, NULL), 0);
	txn_engine_set_fault(f->eng, 0, -EIO);
	assert_errno(chown_dir(f, "ns", 2000, 200, 0700, &ts), -EIO);
	assert_i64_equal(ts, 0);
	assert_errno(chown_dir(f, "ns/a", 2000, 200, 0700, NULL), -EIO);
	assert_errno(clear_dir(f, "ns", NULL), -EIO);
	assert_attr(f, "ns", 1000, 100, 0750, true);
	assert_attr(f, "ns/a", 1000, 100, 0750, false);
	txn_engine_set_fault(f->eng, 0, 0);
	restart(f);
	assert_attr(f, "ns", 1000, 100, 0750, true);
	assert_attr(f, "ns/a", 1000, 100, 0750, false);
	assert_i64_equal(txn_engine_head(f->eng), 1);
}
#endif

static void owner_records_in_one_batch_apply_in_queue_order(void **state)
{
	struct fx *f = *state;
	struct done d[4] = { 0 };
	struct txn_commit_req *r[4];

	gate_close(f);
	r[0] = auto_req(TXN_AUTO_ATTR, "ns", NULL, NULL, 0, &d[0]);
	r[0]->attr = (struct txn_attr){ .uid = 1, .gid = 1, .mode = 0700, .own = true };
	r[1] = auto_req(TXN_AUTO_ATTR, "ns/a/k", NULL, NULL, 0, &d[1]); /* refused: no such key yet */
	r[1]->attr = (struct txn_attr){ .uid = 9, .gid = 9, .mode = 0700, .own = true };
	r[2] = auto_req(TXN_AUTO_ATTR, "ns", NULL, NULL, 0, &d[2]);
	r[2]->attr = (struct txn_attr){ .uid = 2, .gid = 2, .mode = 0750, .own = true };
	r[3] = auto_req(TXN_AUTO_PUT, "ns/a/k", NULL, "v", 1, &d[3]);
	for (int i = 0; i < 4; i++)
		txn_autocommit(f->eng, r[i]);
	gate_open(f);
	for (int i = 0; i < 4; i++)
		wait_done(&d[i]);
	assert_errno(d[0].err, 0);
	assert_i64_equal(d[0].commit_ts, 1);
	assert_errno(d[1].err, -ENOENT);
	assert_errno(d[2].err, 0);
	assert_i64_equal(d[2].commit_ts, 2);
	assert_errno(d[3].err, 0);
	assert_i64_equal(d[3].commit_ts, 3);
	for (int i = 0; i < 4; i++)
		txn_commit_req_free(r[i]);
	assert_attr(f, "ns", 2, 2, 0750, true);
	restart(f);
	assert_attr(f, "ns", 2, 2, 0750, true);
	assert_value(f, NULL, "ns/a/k", "v");
}

static void owner_records_survive_a_restart_by_replay_and_by_snapshot(void **state)
{
	struct fx *f = *state;
	struct txn_stats st;
	int64_t ts = -1;

	f->opt.snapshot_keep = 2;
	restart_owned_by(f, 4242, 4343);
	assert_errno(chown_dir(f, "ns", 1000, 100, 01777, NULL), 0);
	assert_errno(chown_dir(f, "ns/a", 2000, 200, 0700, NULL), 0);
	assert_errno(chown_dir(f, "ns/gone", 3000, 300, 0700, NULL), 0);
	assert_errno(clear_dir(f, "ns/gone", NULL), 0);
	assert_errno(put(f, "ns/b/k", "v", NULL), 0);
	assert_errno(chown_dir(f, "bare", 5000, 500, 0711, &ts), 0);
	assert_i64_equal(ts, 6);

	/* By replay of the whole log. */
	restart(f);
	txn_engine_stats(f->eng, &st);
	assert_i64_equal(st.snapshot_ts, 0);
	assert_int_equal(st.last_replayed, 6);
	assert_attr(f, "ns", 1000, 100, 01777, true);
	assert_attr(f, "ns/a", 2000, 200, 0700, true);
	assert_attr(f, "ns/b", 1000, 100, 0755, false);
	assert_attr(f, "ns/gone", 1000, 100, 0755, false);
	assert_attr(f, "bare", 5000, 500, 0711, true);

	/* From a snapshot alone: nothing is replayed after it. */
	assert_errno(txn_engine_snapshot(f->eng), 0);
	restart(f);
	txn_engine_stats(f->eng, &st);
	assert_i64_equal(st.snapshot_ts, 6);
	assert_int_equal(st.last_replayed, 0);
	assert_attr(f, "ns", 1000, 100, 01777, true);
	assert_attr(f, "ns/a", 2000, 200, 0700, true);
	assert_attr(f, "ns/b", 1000, 100, 0755, false);
	assert_attr(f, "ns/gone", 1000, 100, 0755, false);
	assert_attr(f, "bare", 5000, 500, 0711, true);
	assert_value(f, NULL, "ns/b/k", "v");

	/* A snapshot, then changes replayed on top of it. */
	assert_errno(clear_dir(f, "ns/a", NULL), 0);
	assert_errno(chown_dir(f, "bare", 6000, 600, 0700, NULL), 0);
	restart(f);
	txn_engine_stats(f->eng, &st);
	assert_i64_equal(st.snapshot_ts, 6);
	assert_int_equal(st.last_replayed, 2);
	assert_attr(f, "ns/a", 1000, 100, 0755, false);
	assert_attr(f, "bare", 6000, 600, 0700, true);
	assert_attr(f, "ns", 1000, 100, 01777, true);

	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(txn_verify(f->dir, NULL), 0);
	assert_int_equal(fx_start(f), 0);
}

/* A snapshot written by hand: attribute entries only (paths of one or two components). */
struct forged {
	const char *const *paths;
	const char *const *values;
	size_t n, next;
};

static int forged_next(void *arg, struct store_snap_entry *e)
{
	struct forged *fg = arg;

	if (fg->next == fg->n)
		return 0;
	*e = (struct store_snap_entry){ .path = fg->paths[fg->next],
					.path_len = strlen(fg->paths[fg->next]),
					.value = fg->values[fg->next],
					.value_len = strlen(fg->values[fg->next]) };
	fg->next++;
	return 1;
}

static int verify_with_snapshot(struct fx *f, const char *const *paths,
				const char *const *values, size_t n)
{
	struct forged fg = { paths, values, n, 0 };

	assert_errno(store_snapshot_write(f->dir, 1, 1, forged_next, &fg, 1), 0);
	return txn_verify(f->dir, NULL);
}

static void verify_finds_an_owner_record_the_snapshot_and_the_log_disagree_on(void **state)
{
	struct fx *f = *state;
	static const char *const ns[] = { "ns" };
	static const char *const ns_ghost[] = { "ns", "ghost" };
	static const char *const right[] = { "{\"uid\":1000,\"gid\":100,\"mode\":\"0750\"}",
					      "{\"uid\":1,\"gid\":1,\"mode\":\"0700\"}" };
	static const char *const wrong[] = { "{\"uid\":1000,\"gid\":100,\"mode\":\"0700\"}" };

	assert_errno(chown_dir(f, "ns", 1000, 100, 0750, NULL), 0);
	txn_engine_close(f->eng);
	f->eng = NULL;
	assert_errno(verify_with_snapshot(f, ns, right, 1), 0);
	assert_errno(verify_with_snapshot(f, ns, wrong, 1), -EIO);
	assert_errno(verify_with_snapshot(f, ns, right, 0), -EIO);
	/* A record the snapshot has for a namespace the log never named. */
	assert_errno(verify_with_snapshot(f, ns_ghost, right, 2), -EIO);
}

static void the_notify_hook_gets_the_directory_whose_owner_changed(void **state)
{
	struct fx *f = *state;
	struct hook h = { 0 };

	txn_engine_set_notify(f->eng, hook_fn, &h);
	assert_errno(chown_dir(f, "ns", 1000, 100, 0750, NULL), 0);
	assert_errno(chown_dir(f, "ns/a", 1000, 100, 0750, NULL), 0);
	assert_errno(clear_dir(f, "ns/a", NULL), 0);
	txn_engine_close(f->eng); /* joins the committer: the hook has run */
	f->eng = NULL;
	assert_int_equal(h.calls, 3);
	assert_string_equal(h.paths, "ns ns/a ns/a");
}

static void an_owned_namespace_or_agent_is_listed_and_not_empty_without_keys(void **state)
{
	struct fx *f = *state;
	struct txn_entry e;

	assert_errno(chown_dir(f, "ns", 1000, 100, 0750, NULL), 0);
	assert_listing(f, NULL, "", "ns/");
	assert_errno(chown_dir(f, "ns/a", 1000, 100, 0750, NULL), 0);
	assert_listing(f, NULL, "ns", "a/");
	assert_errno(txn_stat(f->eng, NULL, "ns/a", 4, &e), 0);
	assert_int_equal(e.type, TXN_DIR);
	/* An agent with an owner of its own keeps its namespace from being removed. */
	assert_errno(txn_live_rmdir(f->eng, "ns", 2, NULL), -ENOTEMPTY);
	assert_errno(clear_dir(f, "ns/a", NULL), 0);
	assert_listing(f, NULL, "ns", "");
	assert_errno(txn_live_rmdir(f->eng, "ns", 2, NULL), 0);
	assert_errno(clear_dir(f, "ns", NULL), 0);
	assert_listing(f, NULL, "", "");
}

static void begin_records_the_uid_and_gid_of_who_began_it(void **state)
{
	struct fx *f = *state;
	struct txn *tx = NULL;

	assert_errno(txn_begin(f->eng, "mine", 4, 1234, 5678, &tx), 0);
	assert_non_null(tx);
	f->txs[f->ntxs++] = tx;
	assert_int_equal(txn_uid(tx), 1234);
	assert_int_equal(txn_gid(tx), 5678);
	tx = txn_find(f->eng, "mine", 4);
	assert_non_null(tx);
	assert_int_equal(txn_uid(tx), 1234);
	assert_int_equal(txn_gid(tx), 5678);
	txn_unref(tx);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(live_mkdir_and_rmdir_make_and_remove_empty_directories),
		T(directories_are_state_replayed_from_the_log_and_kept_in_snapshots),
		T(a_transaction_commits_its_mkdir_rmdir_and_directory_rename),
		T(namespaces_and_agents_exist_implicitly_but_are_listed_only_with_keys),
		T(check_name_rejects_empty_dot_slash_nul_and_long_names),
		T(versions_and_options_are_reported),
		T(a_directory_without_an_owner_record_has_the_daemon_owner_and_0755),
		T(an_agent_inherits_its_namespace_until_it_has_an_owner_of_its_own),
		T(an_agent_of_a_sticky_namespace_inherits_no_write_bits_for_group_or_others),
		T(an_owner_change_is_a_commit_visible_once_it_completes),
		T(clearing_an_owner_record_reverts_to_the_inherited_one),
		T(an_owner_change_of_the_root_or_of_a_missing_key_is_refused),
		T(a_key_has_a_mode_of_its_own_that_goes_with_it),
#if STATEHOUSE_FAULT_INJECTION
		T(a_failed_owner_change_changes_nothing),
#endif
		T(owner_records_in_one_batch_apply_in_queue_order),
		T(owner_records_survive_a_restart_by_replay_and_by_snapshot),
		T(verify_finds_an_owner_record_the_snapshot_and_the_log_disagree_on),
		T(the_notify_hook_gets_the_directory_whose_owner_changed),
		T(an_owned_namespace_or_agent_is_listed_and_not_empty_without_keys),
		T(begin_records_the_uid_and_gid_of_who_began_it),
	};
#undef T
	/* Injected faults and refused requests log at error level; recovery logs at info. */
	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests_name("txn-dirs", tests, NULL, NULL);
}
