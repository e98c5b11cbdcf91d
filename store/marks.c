/* SPDX-License-Identifier: MIT */
/*
 * marks.c - DATADIR/statehouse.marks, what the log must hold at least (store layer): the
 * head at the newest clean stop, and the state of the log's files at that stop or at the
 * newest snapshot.  It is a file beside the log, so it survives the loss of the log.
 *
 * Format: text lines "name value" (unknown names are ignored, so a later version may add
 * some), first "statehouse-marks 1".  Written as a whole to a temporary file, synced,
 * renamed into place and the directory synced: a crash leaves the old or the new marks.
 */
#include "store_i.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define MARKS_FILE "statehouse.marks"
#define MARKS_MAGIC "statehouse-marks 1"

static int marks_path(char *buf, size_t cap, const char *datadir, const char *suffix)
{
	int n = snprintf(buf, cap, "%s/" MARKS_FILE "%s", datadir, suffix);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int store_marks_read(const char *datadir, struct store_marks *m)
{
	char path[PATH_MAX], line[256];
	FILE *f;
	int err = 0, seen_magic = 0;

	memset(m, 0, sizeof(*m));
	err = marks_path(path, sizeof(path), datadir, "");
	if (err)
		return err;
	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return -ENOENT;
		err = -errno;
		log_err("cannot read the marks '%s': %s", path, strerror(errno));
		return err;
	}
	while (fgets(line, sizeof(line), f)) {
		char name[64];
		unsigned long long v; /* every value is a count or a time, none negative */

		line[strcspn(line, "\n")] = '\0';
		if (!strcmp(line, MARKS_MAGIC)) {
			seen_magic = 1;
			continue;
		}
		if (sscanf(line, "%63s %llu", name, &v) != 2)
			continue;
		if (!strcmp(name, "clean_stop_head"))
			m->clean_stop_head = (int64_t)v;
		else if (!strcmp(name, "stopped"))
			m->stopped = v != 0;
		else if (!strcmp(name, "log_head"))
			m->log_head = (int64_t)v;
		else if (!strcmp(name, "log_exists"))
			m->log.exists = v != 0;
		else if (!strcmp(name, "log_bytes"))
			m->log.bytes = (uint64_t)v;
		else if (!strcmp(name, "log_mtime_ns"))
			m->log.mtime_ns = (int64_t)v;
		else if (!strcmp(name, "log_dev"))
			m->log.dev = (uint64_t)v;
		else if (!strcmp(name, "log_ino"))
			m->log.ino = (uint64_t)v;
		else if (!strcmp(name, "wal_id"))
			m->log.wal_id = (uint64_t)v;
		else if (!strcmp(name, "wal_bytes"))
			m->log.wal_bytes = (uint64_t)v;
	}
	if (ferror(f))
		err = -EIO;
	fclose(f);
	if (!err && !seen_magic)
		err = -EIO;
	if (err) {
		log_err("cannot read the marks '%s': not a marks file or unreadable", path);
		memset(m, 0, sizeof(*m));
	}
	return err;
}

int store_marks_write(const char *datadir, const struct store_marks *m)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	FILE *f;
	int err;

	err = marks_path(path, sizeof(path), datadir, "");
	if (!err)
		err = marks_path(tmp, sizeof(tmp), datadir, ".tmp");
	if (err)
		return err;
	f = fopen(tmp, "we");
	if (!f) {
		err = -errno;
		goto fail;
	}
	fprintf(f,
		MARKS_MAGIC "\n"
		"clean_stop_head %" PRId64 "\n"
		"stopped %d\n"
		"log_head %" PRId64 "\n"
		"log_exists %d\n"
		"log_bytes %" PRIu64 "\n"
		"log_mtime_ns %" PRId64 "\n"
		"log_dev %" PRIu64 "\n"
		"log_ino %" PRIu64 "\n"
		"wal_id %" PRIu64 "\n"
		"wal_bytes %" PRIu64 "\n",
		m->clean_stop_head, m->stopped ? 1 : 0, m->log_head, m->log.exists ? 1 : 0,
		m->log.bytes, m->log.mtime_ns, m->log.dev, m->log.ino, m->log.wal_id,
		m->log.wal_bytes);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		err = -errno;
	if (fclose(f) != 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) != 0)
		err = -errno;
	if (!err)
		err = store_fsync_dir(datadir);
	if (!err)
		return 0;
	unlink(tmp);
fail:
	log_err("cannot write the marks '%s': %s", path, strerror(-err));
	return err;
}
