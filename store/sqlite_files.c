/* SPDX-License-Identifier: MIT */
/*
 * sqlite_files.c - the SQLite backend's files seen from outside SQLite (store layer):
 * DATADIR/statehouse.db and its write-ahead log looked at, synced and tidied without a
 * connection, for the checks before a store is opened (store_log_file_state(),
 * store_log_sync()).  It does not include sqlite3.h: only the documented file format.
 */
#include "store_i.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* A store only looked at leaves no trace: SQLite made an empty write-ahead log and its
 * index at open, and keeps them at a close without checkpoint. */
void store_sqlite_drop_empty_wal(const char *db)
{
	char path[PATH_MAX];
	struct stat sb;

	if (snprintf(path, sizeof(path), "%s-wal", db) >= (int)sizeof(path) ||
	    stat(path, &sb) != 0 || sb.st_size != 0)
		return;
	unlink(path);
	memcpy(path + strlen(path) - 3, "shm", 3);
	unlink(path);
}

/* The state of DATADIR/statehouse.db and its write-ahead log, opening neither as SQLite. */
int store_sqlite_file_state(const char *datadir, struct store_log_file *out)
{
	char path[PATH_MAX];
	unsigned char hdr[32];
	struct stat sb;
	int fd;

	memset(out, 0, sizeof(*out));
	if (snprintf(path, sizeof(path), "%s/statehouse.db", datadir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (stat(path, &sb) == 0) {
		out->exists = sb.st_size > 0;
		out->bytes = (uint64_t)sb.st_size;
		out->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
		out->dev = (uint64_t)sb.st_dev;
		out->ino = (uint64_t)sb.st_ino;
	} else if (errno != ENOENT) {
		return -errno;
	}
	strcat(path, "-wal");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	/* The WAL header (sqlite.org/fileformat.html): salt-1 and salt-2 at bytes 16..23
	 * change whenever the log restarts from its beginning. */
	if (fstat(fd, &sb) == 0 && pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr)) {
		out->wal_bytes = (uint64_t)sb.st_size;
		for (int i = 16; i < 24; i++)
			out->wal_id = out->wal_id << 8 | hdr[i];
		/* As the marks file keeps it: 63 bits, never 0 for a header. */
		out->wal_id = (out->wal_id & INT64_MAX) | 1;
	}
	close(fd);
	return 0;
}

static int sync_one(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fdatasync(fd) != 0)
		err = -errno;
	close(fd);
	return err;
}

/* Any descriptor of a file syncs what every writer of it wrote before (Linux). */
int store_sqlite_sync_files(const char *datadir)
{
	char path[PATH_MAX];
	int err;

	if (snprintf(path, sizeof(path), "%s/statehouse.db-wal", datadir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	err = sync_one(path);
	if (!err) {
		path[strlen(path) - 4] = '\0';
		err = sync_one(path);
	}
	if (err)
		log_err("cannot sync the log '%s': %s", path, strerror(-err));
	return err;
}
