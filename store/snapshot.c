/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - snapshots of the whole state, derived from the log, as files in DATADIR
 * whatever the store's backend (store layer).
 *
 * File layout (little endian as on the host; a snapshot is read by the machine that
 * wrote it):
 *   "SHSNAP02" | u64 commit_ts | i64 time_ns | u64 entries |
 *   entries: u32 path_len | path | i64 version | i64 commit_ts | i64 time_ns |
 *            u8 flags | u32 value_len | value |
 *   u32 crc32 of everything before it | "SHSNAPEND"
 * flags: 1 a deleted key, 2 an explicit directory, 4 a directory's time only (time_ns:
 * when its entries last changed).  An entry of flags 0 and version 0 is an owner record
 * (of a namespace, an agent, or a key's mode: store.h's STORE_ATTR value); a key's own
 * entry has a version of 1 or more.  Version 01 files (written before
 * directories were state) have the same layout with flags 0 or 1 and still load; an
 * older daemon skips a 02 file as not its own and replays the whole log instead.
 * The CRC and the end marker make a truncated or damaged file fail validation as a
 * whole, before anything of it is applied.
 */
#include "store_i.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "grow.h"
#include "log.h"

#define SNAP_MAGIC "SHSNAP02"
#define SNAP_MAGIC_V1 "SHSNAP01"
#define SNAP_DELETED 1
#define SNAP_DIR_ENTRY 2
#define SNAP_DIR_TIME 4
#define SNAP_END "SHSNAPEND"
#define SNAP_DIR "snapshots"

static_assert(sizeof(int64_t) == 8 && sizeof(uint32_t) == 4, "fixed-size fields");

struct wbuf {
	int fd;
	unsigned char buf[1 << 16];
	size_t used;
	uLong crc;
	int err;
};

static void wflush(struct wbuf *w)
{
	size_t off = 0;

	while (!w->err && off < w->used) {
		ssize_t n = write(w->fd, w->buf + off, w->used - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			w->err = -errno;
			break;
		}
		off += (size_t)n;
	}
	w->used = 0;
}

static void wput(struct wbuf *w, const void *data, size_t len, int in_crc)
{
	const unsigned char *p = data;

	if (in_crc)
		w->crc = crc32(w->crc, p, (uInt)len);
	while (len && !w->err) {
		size_t n = sizeof(w->buf) - w->used < len ? sizeof(w->buf) - w->used : len;

		memcpy(w->buf + w->used, p, n);
		w->used += n;
		p += n;
		len -= n;
		if (w->used == sizeof(w->buf))
			wflush(w);
	}
}

static int snap_name(char *buf, size_t cap, const char *datadir, int64_t ts)
{
	int n = snprintf(buf, cap, "%s/" SNAP_DIR "/snap-%020" PRId64 ".bin", datadir, ts);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int store_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		err = -errno;
	close(fd);
	return err;
}

/* Snapshot commit_ts values present in the directory, newest first. */
static int list_snaps(const char *dir, int64_t **out, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int64_t *v = NULL;
	size_t cnt = 0, cap = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		long long ts;
		char *end;

		/* Exactly snap-<20 digits>.bin: not a leftover .tmp, not a set-aside .stale. */
		if (strlen(de->d_name) != 29 || strncmp(de->d_name, "snap-", 5) ||
		    strcmp(de->d_name + 25, ".bin"))
			continue;
		ts = strtoll(de->d_name + 5, &end, 10);
		if (end != de->d_name + 25)
			continue;
		if (ARRAY_GROW(v, cnt + 1, cap)) {
			free(v);
			closedir(d);
			return -ENOMEM;
		}
		v[cnt++] = ts;
	}
	closedir(d);
	for (size_t i = 1; i < cnt; i++) /* few files: insertion sort, newest first */
		for (size_t j = i; j > 0 && v[j] > v[j - 1]; j--) {
			int64_t t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*out = v;
	*n = cnt;
	return 0;
}

/* Temporary files of snapshots a crash interrupted. */
static void remove_leftovers(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char path[PATH_MAX];

		if (n > 4 && !strncmp(de->d_name, "snap-", 5) && !strcmp(de->d_name + n - 4, ".tmp") &&
		    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) < (int)sizeof(path))
			unlink(path);
	}
	closedir(d);
}

/* Every entry next() gives; *count gets how many.  Errors end up in w->err. */
static void write_entries(struct wbuf *w, store_snap_next_fn next, void *arg,
			  uint64_t *count)
{
	struct store_snap_entry e;
	int rc = 0;

	while (!w->err && (rc = next(arg, &e)) == 1) {
		uint32_t pl = (uint32_t)e.path_len, vl = (uint32_t)e.value_len;
		unsigned char del = (e.deleted ? SNAP_DELETED : 0) |
				    (e.dir == STORE_SNAP_DIR ? SNAP_DIR_ENTRY : 0) |
				    (e.dir == STORE_SNAP_DIR_TIME ? SNAP_DIR_TIME : 0);

		wput(w, &pl, 4, 1);
		wput(w, e.path, e.path_len, 1);
		wput(w, &e.version, 8, 1);
		wput(w, &e.commit_ts, 8, 1);
		wput(w, &e.time_ns, 8, 1);
		wput(w, &del, 1, 1);
		wput(w, &vl, 4, 1);
		if (vl)
			wput(w, e.value, vl, 1);
		(*count)++;
	}
	if (!w->err && rc < 0)
		w->err = rc;
}

/* The CRC and end marker, then the entry count into the header (the CRC covers it by
 * value); the file is flushed and synced.  Errors end up in w->err. */
static void write_trailer(struct wbuf *w, int64_t ts, int64_t time_ns, uint64_t count)
{
	uLong crc = w->crc;
	uint32_t c32;

	if (w->err)
		return;
	/* The header is in the CRC as well: fold it in by value. */
	crc = crc32(crc, (const Bytef *)&ts, 8);
	crc = crc32(crc, (const Bytef *)&time_ns, 8);
	crc = crc32(crc, (const Bytef *)&count, 8);
	c32 = (uint32_t)crc;
	wput(w, &c32, 4, 0);
	wput(w, SNAP_END, strlen(SNAP_END), 0);
	wflush(w);
	if (!w->err && pwrite(w->fd, &count, 8, (off_t)strlen(SNAP_MAGIC) + 16) != 8)
		w->err = errno ? -errno : -EIO;
	if (!w->err && fsync(w->fd) != 0)
		w->err = -errno;
}

/* Remove all but the newest `keep` snapshots (at least one stays). */
static void prune_snaps(const char *dir, const char *datadir, unsigned keep)
{
	int64_t *old = NULL;
	size_t nold = 0;

	if (list_snaps(dir, &old, &nold) == 0) {
		for (size_t i = keep ? keep : 1; i < nold; i++) {
			char victim[PATH_MAX];

			if (snap_name(victim, sizeof(victim), datadir, old[i]) == 0)
				unlink(victim);
		}
	}
	free(old);
}

int store_snapshot_write(const char *datadir, int64_t ts, int64_t time_ns,
			 store_snap_next_fn next, void *arg, unsigned keep)
{
	char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX + 8];
	struct wbuf *w = calloc(1, sizeof(*w));
	uint64_t count = 0;
	int err;

	if (!w)
		return -ENOMEM;
	snprintf(dir, sizeof(dir), "%s/" SNAP_DIR, datadir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		err = -errno;
		goto out;
	}
	/* The directory's own name is durable only once DATADIR is synced: without this a
	 * power cut can take every snapshot with it (a crash before any sync too). */
	err = store_fsync_dir(datadir);
	if (err)
		goto out;
	err = snap_name(path, sizeof(path), datadir, ts);
	if (err)
		goto out;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	remove_leftovers(dir);
	w->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		err = -errno;
		goto out;
	}
	w->crc = crc32(0L, Z_NULL, 0);
	/* The entry count is patched in once known, so the CRC covers it at the end. */
	wput(w, SNAP_MAGIC, strlen(SNAP_MAGIC), 0);
	wput(w, &ts, 8, 0);
	wput(w, &time_ns, 8, 0);
	wput(w, &count, 8, 0);
	write_entries(w, next, arg, &count);
	write_trailer(w, ts, time_ns, count);
	if (close(w->fd) != 0 && !w->err)
		w->err = -errno;
	err = w->err;
	if (!err && rename(tmp, path) != 0)
		err = -errno;
	if (!err)
		err = store_fsync_dir(dir);
	if (err) {
		unlink(tmp);
		log_err("cannot write snapshot '%s': %s", path, strerror(-err));
		goto out;
	}
	prune_snaps(dir, datadir, keep);
out:
	free(w);
	return err;
}

struct rbuf {
	const unsigned char *p, *end;
};

static int rget(struct rbuf *r, void *out, size_t len)
{
	if ((size_t)(r->end - r->p) < len)
		return -EIO;
	memcpy(out, r->p, len);
	r->p += len;
	return 0;
}

/* Check one file completely; on success *body points at its first entry. */
static int snap_validate(const unsigned char *m, size_t size, int64_t *ts, int64_t *time_ns,
			 uint64_t *count)
{
	size_t ml = strlen(SNAP_MAGIC), el = strlen(SNAP_END);
	uint32_t stored;
	uLong crc;

	if (size < ml + 24 + 4 + el ||
	    (memcmp(m, SNAP_MAGIC, ml) != 0 && memcmp(m, SNAP_MAGIC_V1, ml) != 0) ||
	    memcmp(m + size - el, SNAP_END, el) != 0)
		return -EIO;
	memcpy(ts, m + ml, 8);
	memcpy(time_ns, m + ml + 8, 8);
	memcpy(count, m + ml + 16, 8);
	memcpy(&stored, m + size - el - 4, 4);
	crc = crc32(0L, Z_NULL, 0);
	crc = crc32(crc, m + ml + 24, (uInt)(size - el - 4 - ml - 24));
	crc = crc32(crc, (const Bytef *)ts, 8);
	crc = crc32(crc, (const Bytef *)time_ns, 8);
	crc = crc32(crc, (const Bytef *)count, 8);
	return (uint32_t)crc == stored ? 0 : -EIO;
}

/* Every entry to fn; *n_keys gets how many are not directories. */
static int snap_apply(const unsigned char *m, size_t size, uint64_t count, store_snap_fn fn,
		      void *arg, uint64_t *n_keys)
{
	struct rbuf r = { m + strlen(SNAP_MAGIC) + 24, m + size - strlen(SNAP_END) - 4 };

	for (uint64_t i = 0; i < count; i++) {
		struct store_snap_entry e = { 0 };
		uint32_t pl, vl;
		unsigned char del;
		int err;

		if (rget(&r, &pl, 4) || (size_t)(r.end - r.p) < pl)
			return -EIO;
		e.path = (const char *)r.p;
		e.path_len = pl;
		r.p += pl;
		if (rget(&r, &e.version, 8) || rget(&r, &e.commit_ts, 8) ||
		    rget(&r, &e.time_ns, 8) || rget(&r, &del, 1) || rget(&r, &vl, 4) ||
		    (size_t)(r.end - r.p) < vl ||
		    (del != 0 && del != SNAP_DELETED && del != SNAP_DIR_ENTRY && del != SNAP_DIR_TIME))
			return -EIO;
		e.deleted = del == SNAP_DELETED;
		e.dir = del == SNAP_DIR_ENTRY ? STORE_SNAP_DIR
			: del == SNAP_DIR_TIME ? STORE_SNAP_DIR_TIME : 0;
		e.value = r.p;
		e.value_len = vl;
		r.p += vl;
		err = fn(arg, &e);
		if (err)
			return err;
		if (!e.dir)
			(*n_keys)++;
	}
	return r.p == r.end ? 0 : -EIO;
}

/* Map snapshot ts and check it completely; on success *m and *size are the caller's to
 * munmap() and the header is in *count.  Problems are logged unless quiet: -EIO
 * (damaged), -errno. */
static int snap_map(const char *datadir, int64_t want_ts, bool quiet, unsigned char **m,
		    size_t *size, uint64_t *count)
{
	char path[PATH_MAX];
	struct stat st;
	int64_t ts, time_ns;
	int fd, err;

	err = snap_name(path, sizeof(path), datadir, want_ts);
	if (err)
		return err;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
		err = fd < 0 ? -errno : -EIO;
		if (!quiet)
			log_warn("skipping snapshot '%s': %s", path,
				 fd < 0 ? strerror(errno) : "empty");
		if (fd >= 0)
			close(fd);
		return err;
	}
	*m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (*m == MAP_FAILED) {
		err = -errno;
		if (!quiet)
			log_warn("skipping snapshot '%s': %s", path, strerror(errno));
		return err;
	}
	*size = (size_t)st.st_size;
	err = snap_validate(*m, *size, &ts, &time_ns, count);
	if (!err && ts != want_ts)
		err = -EIO;
	if (err) {
		if (!quiet)
			log_warn("skipping damaged snapshot '%s' (checksum or length)", path);
		munmap(*m, *size);
	}
	return err;
}

int store_snapshot_load(const char *datadir, int64_t max_ts, store_snap_fn fn, void *arg,
			int64_t *ts_out, uint64_t *n_out)
{
	char dir[PATH_MAX];
	int64_t *snaps = NULL;
	size_t nsnaps = 0;
	uint64_t keys = 0;
	int err;

	*ts_out = 0;
	*n_out = 0;
	snprintf(dir, sizeof(dir), "%s/" SNAP_DIR, datadir);
	err = list_snaps(dir, &snaps, &nsnaps);
	if (err)
		return err;
	for (size_t i = 0; i < nsnaps; i++) {
		unsigned char *m;
		size_t size;
		uint64_t count;

		/* Newer than the log: the caller has refused such a log unless this one is
		 * damaged; either way it is no state of this log, and stays as it is. */
		if (snaps[i] > max_ts)
			continue;
		if (snap_map(datadir, snaps[i], false, &m, &size, &count))
			continue;
		err = snap_apply(m, size, count, fn, arg, &keys);
		munmap(m, size);
		if (err)
			break; /* applied partly: the caller must start over from the log */
		*ts_out = snaps[i];
		*n_out = keys;
		break;
	}
	free(snaps);
	return err;
}

int store_snapshot_newest(const char *datadir, int64_t *ts_out)
{
	char dir[PATH_MAX];
	int64_t *snaps = NULL;
	size_t nsnaps = 0;
	int err;

	*ts_out = 0;
	snprintf(dir, sizeof(dir), "%s/" SNAP_DIR, datadir);
	err = list_snaps(dir, &snaps, &nsnaps);
	if (err)
		return err;
	for (size_t i = 0; i < nsnaps; i++) {
		unsigned char *m;
		size_t size;
		uint64_t count;

		if (snap_map(datadir, snaps[i], true, &m, &size, &count))
			continue;
		munmap(m, size);
		*ts_out = snaps[i];
		break;
	}
	free(snaps);
	return 0;
}
