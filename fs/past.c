/* SPDX-License-Identifier: MIT */
/*
 * past.c - the read-only past: `.at/<commit_ts>/` (the tree as of a commit) and
 * `.history/<ns>/<agent>/<ekey>/` (every version of a key, by its encoded name, ekey.h)
 * (fs layer).
 *
 * Nothing here changes: every change below .at and .history fails with EROFS (the
 * tables say read_only), and what a commit made is cached by the kernel for good.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekey.h"
#include "fs_i.h"

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

/* ---- .history/<ns>/<agent>/: keys by encoded name, in segments when long (ekey.h) ---- */

/* The length of the agent directory's path at the start of r->path (r at or below an
 * agent of .history), and the segments r stands for below it ("" for the agent). */
static size_t agent_len(const struct iref *r, const char **segs, size_t *slen)
{
	const char *s1 = memchr(r->path, '/', r->len);
	const char *s2 = s1 ? memchr(s1 + 1, '/', r->len - (size_t)(s1 + 1 - r->path)) : NULL;
	size_t al = s2 ? (size_t)(s2 - r->path) : r->len;

	*segs = s2 ? s2 + 1 : "";
	*slen = s2 ? r->len - al - 1 : 0;
	return al;
}

/* The next segment (len bytes at name) of a key below the segments of a directory;
 * seg: a segment directory (more follow), else the key's last.  Non-zero stops. */
typedef int (*hist_child_fn)(void *arg, const char *name, size_t len, bool seg);

/* Call fn with the next segment of every key of r's agent whose segments go on below
 * r's (once per key: a segment directory comes once for each key below it). */
static int hist_children(struct fs *fs, const struct iref *r, hist_child_fn fn, void *arg)
{
	struct dirent_entry *d = NULL;
	const char *segs;
	size_t n = 0, slen, al = agent_len(r, &segs, &slen);
	int err = txn_history_names(fs->eng, r->path, al, &d, &n);

	for (size_t i = 0; i < n && !err; i++) {
		size_t elen, plen;
		char *e = ekey_encode(d[i].name, strlen(d[i].name), &elen);
		char *path = e ? ekey_segments(e, elen, &plen) : NULL;
		const char *rest = path, *slash;

		if (!path)
			err = -ENOMEM;
		else if (slen) /* below r's segments? */
			rest = plen > slen && !memcmp(path, segs, slen) && path[slen] == '/'
				       ? path + slen + 1
				       : NULL;
		if (rest) {
			slash = strchr(rest, '/');
			err = fn(arg, rest, slash ? (size_t)(slash - rest) : strlen(rest), slash);
		}
		free(path);
		free(e);
	}
	dirents_free(d, n);
	return err;
}

struct seg_find {
	const char *name;
	size_t len;
};

static int seg_found(void *arg, const char *name, size_t len, bool seg)
{
	struct seg_find *f = arg;

	return seg && len == f->len && !memcmp(name, f->name, len);
}

/* A segment directory (name without its mark, nl bytes): it exists while the encoded
 * name of a key goes on through it. */
static int hist_seg_lookup(struct fs *fs, const struct iref *p, const char *name, size_t nl,
			   struct iref *out)
{
	struct seg_find f = { name, nl };
	char *dec = malloc(nl + 1), *path;
	size_t dl;
	int err = dec ? ekey_decode(name, nl, dec, &dl) : -ENOMEM;

	free(dec);
	if (!err)
		err = hist_children(fs, p, seg_found, &f);
	if (err <= 0)
		return err ? err : -ENOENT;
	if (asprintf(&path, "%.*s/%.*s", (int)p->len, p->path, (int)nl, name) < 0)
		return -ENOMEM;
	fs_iref_take(out, IK_HISTSEG, 0, TXN_DIR, path, p->len + 1 + nl);
	return 0;
}

/* A key, by the last segment of its encoded name, in the one spelling of ekey.h. */
static int hist_key_lookup(struct fs *fs, const struct iref *p, const char *name,
			   struct iref *out)
{
	struct strbuf enc = STRBUF_INIT, want = STRBUF_INIT;
	const char *segs;
	size_t slen, al = agent_len(p, &segs, &slen), klen = 0, plen;
	char *kpath = NULL, *canon = NULL;
	struct txn_version *v;
	int err = 0;

	/* The encoded name: the segments above without their separators, then name; and
	 * the segment path that leads to it. */
	for (size_t i = 0; i < slen && !err; i++)
		if (segs[i] != '/')
			err = strbuf_addch(&enc, segs[i]);
	if (!err)
		err = strbuf_addstr(&enc, name);
	if (!err && slen)
		err = strbuf_add(&want, segs, slen);
	if (!err && slen)
		err = strbuf_addch(&want, '/');
	if (!err)
		err = strbuf_addstr(&want, name);
	if (!err) {
		kpath = malloc(al + 1 + enc.len + 1);
		err = kpath ? 0 : -ENOMEM;
	}
	if (!err) {
		memcpy(kpath, p->path, al);
		kpath[al] = '/';
		err = ekey_decode(enc.buf, enc.len, kpath + al + 1, &klen);
	}
	if (!err) {
		canon = ekey_segments(enc.buf, enc.len, &plen);
		if (!canon)
			err = -ENOMEM;
		else if (plen != want.len || memcmp(canon, want.buf, plen))
			err = -ENOENT; /* not where this key's segments lead */
	}
	klen += al + 1;
	if (!err)
		err = txn_history(fs->eng, kpath, klen, &v, &plen);
	free(canon);
	strbuf_release(&enc);
	strbuf_release(&want);
	if (err) {
		free(kpath);
		return err;
	}
	free(v);
	fs_iref_take(out, IK_HISTKEY, 0, TXN_DIR, kpath, klen);
	return 0;
}

static int hist_lookup(struct fs *fs, const struct iref *p, const char *name, struct iref *out)
{
	size_t len, nl = strlen(name), ml = strlen(EKEY_SEG_MARK);
	char *path;
	int err;

	if (p->kind == IK_HISTSEG || txn_path_depth(p->path, p->len) == 2) {
		if (nl > ml && !strcmp(name + nl - ml, EKEY_SEG_MARK))
			return hist_seg_lookup(fs, p, name, nl - ml, out);
		return hist_key_lookup(fs, p, name, out);
	}
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

/* A segment directory's path goes on past the key limit: the agent's owner, by the
 * agent's own path. */
static void histseg_owner(struct fs *fs, const struct iref *r, struct stat *st)
{
	const char *segs;
	size_t slen;

	fs_owner_of_agent(fs, r->path, agent_len(r, &segs, &slen), 0555, st);
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

/* One entry of a listing below an agent: a key's last segment, or a segment directory
 * with its mark (once, however many keys go on through it: dirents drop duplicates). */
static int seg_add(void *arg, const char *name, size_t len, bool seg)
{
	struct dirents *ds = arg;
	size_t ml = strlen(EKEY_SEG_MARK);
	char *s;
	int err;

	if (!seg)
		return dirents_add(ds, name, len, TXN_DIR);
	s = malloc(len + ml + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, name, len);
	memcpy(s + len, EKEY_SEG_MARK, ml + 1);
	err = dirents_add(ds, s, len + ml, TXN_DIR);
	free(s);
	return err;
}

static int hist_list(struct fs *fs, const struct iref *r, struct handle *h)
{
	struct dirents ds = DIRENTS_INIT;
	struct dirent_entry *d = NULL;
	size_t n = 0;
	int err;

	if (r->kind == IK_HISTSEG || txn_path_depth(r->path, r->len) == 2)
		err = dirents_take(&ds, hist_children(fs, r, seg_add, &ds), &d, &n);
	else
		err = txn_history_names(fs->eng, r->path, r->len, &d, &n);
	return err ? err : fs_dir_add_all(h, d, n);
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
	.slow = true,
	.read_only = true,
	.cache_lookup = CACHE_ALL,
	.lookup = atdir_lookup,
	.stat = stat_past_dir,
	.value = fs_file_content,
	.list = atdir_list,
};

const struct fs_area_ops fs_at_ops = {
	.slow = true,
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
	.slow = true,
	.read_only = true,
	.lookup = hist_lookup,
	.stat = stat_past_dir,
	.value = fs_file_content,
	.list = hist_list,
};

const struct fs_area_ops fs_hist_ops = {
	.slow = true,
	.read_only = true,
	.lookup = hist_lookup,
	.stat = stat_past_dir,
	.owner = past_owner,
	.value = fs_file_content,
	.list = hist_list,
};

const struct fs_area_ops fs_histseg_ops = {
	.slow = true,
	.read_only = true,
	.lookup = hist_lookup,
	.stat = stat_past_dir,
	.owner = histseg_owner,
	.value = fs_file_content,
	.list = hist_list,
};

const struct fs_area_ops fs_histkey_ops = {
	.slow = true,
	.read_only = true,
	.lookup = histkey_lookup,
	.stat = stat_past_dir,
	.owner = past_owner,
	.value = fs_file_content,
	.list = histkey_list,
};

const struct fs_area_ops fs_histver_ops = {
	.slow = true,
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
	.slow = true,
	.read_only = true,
	.stat = histidx_stat,
	.owner = past_owner,
	.content = histidx_content,
	.value = fs_file_content,
};
