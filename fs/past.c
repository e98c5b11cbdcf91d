/* SPDX-License-Identifier: MIT */
/*
 * past.c - the read-only past: `.at/<commit_ts>/` (the tree as of a commit) and
 * `.history/<ns>/<agent>/<key>/` (every version of a key) (fs layer).
 *
 * Nothing here changes: every change below .at and .history fails with EROFS (the
 * tables say read_only), and what a commit made is cached by the kernel for good.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

/* `.history` names a key by one component: '%' is written %25 and '/' %2F. */
static char *ekey_encode(const char *key, size_t len)
{
	char *out = malloc(len * 3 + 1), *w = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (key[i] == '%' || key[i] == '/') {
			*w++ = '%';
			*w++ = '2';
			*w++ = key[i] == '%' ? '5' : 'F';
		} else {
			*w++ = key[i];
		}
	}
	*w = '\0';
	return out;
}

static int ekey_decode(const char *e, char *out, size_t *len)
{
	size_t n = 0;

	for (const char *p = e; *p; p++) {
		if (*p != '%') {
			out[n++] = *p;
			continue;
		}
		if (p[1] == '2' && p[2] == '5')
			out[n++] = '%';
		else if (p[1] == '2' && p[2] == 'F') /* one spelling per key: not %2f */
			out[n++] = '/';
		else
			return -EINVAL;
		p += 2;
	}
	out[n] = '\0';
	*len = n;
	return 0;
}

static bool names_nonempty(struct fs *fs, const char *prefix, size_t len)
{
	struct dirent_entry *d;
	size_t n;

	if (txn_history_names(fs->eng, prefix, len, &d, &n))
		return false;
	dirents_free(d, n);
	return n > 0;
}

/* ---- lookup ---------------------------------------------------------------------------- */

static int atdir_lookup(struct fs *fs, const struct iref *p, const char *name, struct iref *out)
{
	uint64_t num;
	int err = fs_parse_u64(name, strlen(name), &num);

	if (!err && (num < 1 || (int64_t)num > txn_engine_head(fs->eng)))
		err = -ENOENT;
	if (err)
		return err;
	return fs_iref_set(out, IK_AT, num, TXN_DIR, "", 0);
}

static int at_lookup(struct fs *fs, const struct iref *p, const char *name, struct iref *out)
{
	struct txn_entry e;
	size_t len;
	char *path = fs_child_path(p, name, &len);
	int err;

	if (!path)
		return -ENOMEM;
	err = txn_at_stat(fs->eng, (int64_t)p->txn_id, path, len, &e);
	if (err) {
		free(path);
		return err;
	}
	fs_iref_take(out, IK_AT, p->txn_id, e.type, path, len);
	return 0;
}

/* Below an agent of .history: a key, named by its encoded path. */
static int hist_key_lookup(struct fs *fs, const struct iref *p, const char *name,
			   struct iref *out)
{
	char *key = malloc(strlen(name) + 1), *kpath = NULL;
	struct txn_version *v;
	size_t len, n;
	int err = key ? ekey_decode(name, key, &len) : -ENOMEM;

	if (!err) {
		kpath = fs_child_path(p, key, &len);
		err = kpath ? txn_history(fs->eng, kpath, len, &v, &n) : -ENOMEM;
	}
	free(key);
	if (err) {
		free(kpath);
		return err;
	}
	free(v);
	fs_iref_take(out, IK_HISTKEY, 0, TXN_DIR, kpath, len);
	return 0;
}

static int hist_lookup(struct fs *fs, const struct iref *p, const char *name, struct iref *out)
{
	size_t len;
	char *path;
	int err;

	if (p->kind == IK_HIST && txn_path_depth(p->path, p->len) == 2)
		return hist_key_lookup(fs, p, name, out);
	path = fs_child_path(p, name, &len);
	if (!path)
		return -ENOMEM;
	err = txn_check_name(name, strlen(name));
	if (!err && !names_nonempty(fs, path, len))
		err = -ENOENT;
	if (err) {
		free(path);
		return err;
	}
	fs_iref_take(out, IK_HIST, 0, TXN_DIR, path, len);
	return 0;
}

static int histkey_lookup(struct fs *fs, const struct iref *p, const char *name,
			  struct iref *out)
{
	const char *dot = strchr(name, '.');
	struct txn_version v;
	struct blob *b;
	uint64_t num;
	int err;

	if (!strcmp(name, "index.jsonl"))
		return fs_iref_set(out, IK_HISTIDX, 0, TXN_FILE, p->path, p->len);
	err = fs_parse_u64(name, dot ? (size_t)(dot - name) : strlen(name), &num);
	if (err || (dot && strcmp(dot, ".deleted") != 0))
		return -ENOENT;
	err = txn_history_value(fs->eng, p->path, p->len, (int64_t)num, &b, &v);
	if (err)
		return err;
	blob_unref(b);
	if (v.deleted != (dot != NULL))
		return -ENOENT;
	return fs_iref_set(out, IK_HISTVER, num, TXN_FILE, p->path, p->len);
}

/* ---- attributes ------------------------------------------------------------------------ */

static int stat_past_dir(struct fs *fs, const struct iref *r, struct stat *st)
{
	fs_fill_attr(fs, st, r->ino, TXN_DIR, 0, 0, 0555);
	return 0;
}

static int at_stat(struct fs *fs, const struct iref *r, struct stat *st)
{
	struct txn_entry e;
	int err = txn_at_stat(fs->eng, (int64_t)r->txn_id, r->path, r->len, &e);

	if (err)
		return err;
	if (e.type != r->type)
		return -ENOENT;
	fs_fill_attr(fs, st, r->ino, e.type, e.size, e.time_ns, e.type == TXN_DIR ? 0555 : 0444);
	return 0;
}

static int histver_stat(struct fs *fs, const struct iref *r, struct stat *st)
{
	struct txn_version v;
	struct blob *b;
	int err = txn_history_value(fs->eng, r->path, r->len, (int64_t)r->txn_id, &b, &v);

	if (err)
		return err;
	fs_fill_attr(fs, st, r->ino, TXN_FILE, b->len, v.time_ns, 0444);
	blob_unref(b);
	return 0;
}

static int histidx_stat(struct fs *fs, const struct iref *r, struct stat *st)
{
	struct txn_version *v;
	struct blob *b;
	size_t n;
	int err = fs_file_content(fs, r, &b);

	if (!err)
		err = txn_history(fs->eng, r->path, r->len, &v, &n);
	if (err) {
		blob_unref(b);
		return err;
	}
	/* It changes when a version is added: its mtime is the newest version's. */
	fs_fill_attr(fs, st, r->ino, TXN_FILE, b->len, v[n - 1].time_ns, 0444);
	blob_unref(b);
	free(v);
	return 0;
}

/* The past shows the owner and mode of the live tree, without write bits. */
static void past_owner(struct fs *fs, const struct iref *r, struct stat *st)
{
	mode_t mask = S_ISDIR(st->st_mode) ? 07777 : 0666;

	fs_owner_of_agent(fs, r->path, r->len, mask & 0555, st);
}

/* ---- who may read it -------------------------------------------------------------------- */

/* fs_i.h */
int fs_past_may_read(struct fs *fs, const char *path, size_t len, bool is_key, int64_t ts,
		     const struct txn_caller *c)
{
	struct txn_owner_hist *h;
	int err;

	if (txn_path_depth(path, len) < 2)
		return 0;
	err = txn_owner_hist_load(fs->eng, path, len, &h);
	if (!err)
		err = txn_may_read_at(fs->eng, h, path, len, is_key, ts, c);
	txn_owner_hist_free(h);
	return err;
}

/* A directory as of the view's commit; a key as of the commit that wrote its value. */
static int at_may_read(struct fs *fs, const struct iref *r, const struct txn_caller *c)
{
	struct txn_entry e = { .commit_ts = (int64_t)r->txn_id };
	int err = 0;

	if (r->type == TXN_FILE && txn_path_depth(r->path, r->len) > 2)
		err = txn_at_stat(fs->eng, (int64_t)r->txn_id, r->path, r->len, &e);
	return err ? err : fs_past_may_read(fs, r->path, r->len, r->type == TXN_FILE, e.commit_ts, c);
}

/* A version of a key: as of the commit that wrote it. */
static int histver_may_read(struct fs *fs, const struct iref *r, const struct txn_caller *c)
{
	struct txn_version v;
	struct blob *b;
	int err = txn_history_value(fs->eng, r->path, r->len, (int64_t)r->txn_id, &b, &v);

	if (err)
		return err;
	blob_unref(b);
	return fs_past_may_read(fs, r->path, r->len, true, v.commit_ts, c);
}

/* ---- contents -------------------------------------------------------------------------- */

static int at_content(struct fs *fs, const struct iref *r, struct blob **out)
{
	struct txn_entry e;

	return txn_at_read(fs->eng, (int64_t)r->txn_id, r->path, r->len, out, &e);
}

static int histver_content(struct fs *fs, const struct iref *r, struct blob **out)
{
	struct txn_version v;

	return txn_history_value(fs->eng, r->path, r->len, (int64_t)r->txn_id, out, &v);
}

static int histidx_content(struct fs *fs, const struct iref *r, struct blob **out)
{
	return render_history_index(fs->eng, r->path, r->len, out);
}

/* The past never changes: read by inode, once, then from the cache. */
static int open_past(struct fs *fs, fuse_req_t req, const struct iref *r,
                     struct fuse_file_info *fi)
{
	fi->fh = 0;
	fi->keep_cache = 1;
	fi->noflush = 1;
	return 0;
}

/* ---- listings -------------------------------------------------------------------------- */

static int atdir_list(struct fs *fs, const struct iref *r, struct handle *h)
{
	return 0; /* every commit_ts is there; listing them all would be the whole log */
}

static int at_list(struct fs *fs, const struct iref *r, struct handle *h)
{
	struct dirent_entry *d = NULL;
	size_t n = 0;
	int err = txn_at_list(fs->eng, (int64_t)r->txn_id, r->path, r->len, &d, &n);

	return err ? err : fs_dir_add_all(h, d, n);
}

static int hist_list(struct fs *fs, const struct iref *r, struct handle *h)
{
	struct dirent_entry *d = NULL;
	size_t n = 0;
	int err = txn_history_names(fs->eng, r->path, r->len, &d, &n);

	if (err)
		return err;
	if (r->kind != IK_HIST || txn_path_depth(r->path, r->len) != 2)
		return fs_dir_add_all(h, d, n);
	/* Keys of an agent, each one component: encoded. */
	for (size_t i = 0; i < n && !err; i++) {
		char *e = ekey_encode(d[i].name, strlen(d[i].name));

		err = e ? fs_dir_add(h, e, TXN_DIR) : -ENOMEM;
		free(e);
	}
	dirents_free(d, n);
	return err;
}

static int histkey_list(struct fs *fs, const struct iref *r, struct handle *h)
{
	struct txn_version *v = NULL;
	size_t n = 0;
	int err = txn_history(fs->eng, r->path, r->len, &v, &n);

	if (!err)
		err = fs_dir_add(h, "index.jsonl", TXN_FILE);
	for (size_t i = 0; i < n && !err; i++) {
		char name[40];

		snprintf(name, sizeof(name), "%" PRId64 "%s", v[i].version,
			 v[i].deleted ? ".deleted" : "");
		err = fs_dir_add(h, name, TXN_FILE);
	}
	free(v);
	return err;
}

/* ---- the tables ------------------------------------------------------------------------ */

const struct fs_area_ops fs_atdir_ops = {
	.read_only = true,
	.cache_lookup = CACHE_ALL,
	.lookup = atdir_lookup,
	.stat = stat_past_dir,
	.value = fs_file_content,
	.list = atdir_list,
};

const struct fs_area_ops fs_at_ops = {
	.read_only = true,
	.cache_lookup = CACHE_ALL,
	.lookup = at_lookup,
	.stat = at_stat,
	.owner = past_owner,
	.content = at_content,
	.value = fs_file_content,
	.open = open_past,
	.list = at_list,
	.may_read = at_may_read,
};

const struct fs_area_ops fs_histdir_ops = {
	.read_only = true,
	.lookup = hist_lookup,
	.stat = stat_past_dir,
	.value = fs_file_content,
	.list = hist_list,
};

const struct fs_area_ops fs_hist_ops = {
	.read_only = true,
	.lookup = hist_lookup,
	.stat = stat_past_dir,
	.owner = past_owner,
	.value = fs_file_content,
	.list = hist_list,
};

const struct fs_area_ops fs_histkey_ops = {
	.read_only = true,
	.lookup = histkey_lookup,
	.stat = stat_past_dir,
	.owner = past_owner,
	.value = fs_file_content,
	.list = histkey_list,
};

const struct fs_area_ops fs_histver_ops = {
	.read_only = true,
	.cache_lookup = CACHE_ALL,
	.stat = histver_stat,
	.owner = past_owner,
	.content = histver_content,
	.value = fs_file_content,
	.open = open_past,
	.may_read = histver_may_read,
};

const struct fs_area_ops fs_histidx_ops = {
	.read_only = true,
	.stat = histidx_stat,
	.owner = past_owner,
	.content = histidx_content,
	.value = fs_file_content,
};
