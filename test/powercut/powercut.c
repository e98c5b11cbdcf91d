/* SPDX-License-Identifier: MIT */
/*
 * powercut.c - a test-only LD_PRELOAD library that records, for one data directory, what
 * a power cut would leave of it: what each file held at its last fsync/fdatasync, and
 * what names each directory held at the last fsync of that directory.  Nothing else is
 * durable: a write not yet synced, a new name, a rename or an unlink not yet made durable
 * by an fsync of its directory are all lost in a cut (POSIX's promise, stricter than
 * ext4's ordered journal).  Never built into the daemon; test/powercut/rewind applies a
 * cut to a data directory after the daemon is SIGKILLed.
 *
 *   POWERCUT_DATA=DATADIR    the directory watched (absolute; nothing else is touched)
 *   POWERCUT_SHADOW=DIR      where the durable state is recorded; it must not exist:
 *                            at load, everything in DATADIR is recorded as durable (DIR
 *                            appears whole, by a rename, once that is done)
 *
 * The record (DIR/dirs/%REL for the directory REL of DATADIR, '/' written as '%'):
 * one line per entry, "d - NAME" for a directory, "f ID NAME" for a file, where ID names
 * the file's own content DIR/blobs/ID (inode number and birth time: a reused inode number
 * is another file).  A listed file whose content was never synced has none (empty).
 *
 * An fsync is recorded after the real one returned, by copying what changed since the
 * last record.  A SIGKILL in the middle leaves part of it: a cut during an fsync, which
 * may leave part of the unsynced writes on a real disk too.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static char data_dir[PATH_MAX];
static size_t data_len;
static char shadow[PATH_MAX];
static bool active;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

__attribute__((format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("powercut: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	/* A record that cannot be kept makes every later check meaningless. */
	abort();
}

/* The identity of the file behind fd (or name in dirfd): inode and birth time. */
static void file_id(int dirfd, const char *name, int flags, char *id, size_t len)
{
	struct statx stx;

	if (statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME, &stx))
		die("statx: %s", strerror(errno));
	if (!(stx.stx_mask & STATX_BTIME))
		die("the file system of %s has no birth times (statx STATX_BTIME)", data_dir);
	snprintf(id, len, "%llu-%lld.%u", (unsigned long long)stx.stx_ino,
		 (long long)stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec);
}

static ssize_t read_full(int fd, char *buf, size_t n, off_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* blobs/ID := the content of src (open for reading), copying only the chunks that differ. */
static void record_content(int src, const char *id)
{
	static char a[CHUNK], b[CHUNK];
	char path[PATH_MAX + 64];
	struct stat st;
	off_t off = 0;
	int dst;

	snprintf(path, sizeof(path), "%s/blobs/%s", shadow, id);
	dst = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (dst < 0 || fstat(src, &st))
		die("cannot record %s: %s", path, strerror(errno));
	while (off < st.st_size) {
		ssize_t n = read_full(src, a, CHUNK, off), m;

		if (n <= 0)
			break;
		m = read_full(dst, b, (size_t)n, off);
		if (m != n || memcmp(a, b, (size_t)n)) {
			if (pwrite(dst, a, (size_t)n, off) != n)
				die("cannot write %s: %s", path, strerror(errno));
		}
		off += n;
	}
	if (ftruncate(dst, off))
		die("cannot truncate %s: %s", path, strerror(errno));
	close(dst);
}

/* dirs/%REL := the names the directory dir (REL below DATADIR) holds now. */
static void record_listing(const char *dir, const char *rel)
{
	char path[PATH_MAX + 64], tmp[PATH_MAX + 80], id[64];
	struct dirent *e;
	FILE *f;
	DIR *d;
	int n;

	n = snprintf(path, sizeof(path), "%s/dirs/%%%s", shadow, rel);
	for (char *p = path + n - strlen(rel); *p; p++)
		if (*p == '/')
			*p = '%';
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	d = opendir(dir);
	f = fopen(tmp, "we");
	if (!d || !f)
		die("cannot list %s into %s: %s", dir, tmp, strerror(errno));
	while ((e = readdir(d))) {
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue; /* gone meanwhile */
		if (S_ISDIR(st.st_mode)) {
			fprintf(f, "d - %s\n", e->d_name);
		} else if (S_ISREG(st.st_mode)) {
			file_id(dirfd(d), e->d_name, 0, id, sizeof(id));
			fprintf(f, "f %s %s\n", id, e->d_name);
		}
	}
	closedir(d);
	if (fclose(f) || rename(tmp, path))
		die("cannot write %s: %s", path, strerror(errno));
}

/* The part of path below DATADIR ("" for DATADIR itself), or NULL when outside. */
static const char *below_data(const char *path)
{
	if (strncmp(path, data_dir, data_len))
		return NULL;
	if (path[data_len] == '\0')
		return "";
	return path[data_len] == '/' ? path + data_len + 1 : NULL;
}

/* fd was synced: record what is durable now. */
static void record_fd(int fd)
{
	char link[64], path[PATH_MAX], id[64];
	const char *rel;
	struct stat st;
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return;
	path[n] = '\0';
	rel = below_data(path);
	if (!rel || fstat(fd, &st))
		return;
	if (S_ISDIR(st.st_mode)) {
		record_listing(path, rel);
	} else if (S_ISREG(st.st_mode)) {
		/* fd may be write-only: read through a new descriptor of the same file. */
		int rfd = open(link, O_RDONLY | O_CLOEXEC);

		if (rfd < 0)
			die("cannot reopen %s: %s", path, strerror(errno));
		file_id(fd, "", AT_EMPTY_PATH, id, sizeof(id));
		record_content(rfd, id);
		close(rfd);
	}
}

static int synced(int fd, int rc)
{
	int saved = errno;

	if (active && rc == 0) {
		pthread_mutex_lock(&lock);
		record_fd(fd);
		pthread_mutex_unlock(&lock);
	}
	errno = saved;
	return rc;
}

int fsync(int fd)
{
	return synced(fd, real_fsync(fd));
}

int fdatasync(int fd)
{
	return synced(fd, real_fdatasync(fd));
}

/* At load: everything under dir (REL below DATADIR) is durable. */
static void record_all(const char *dir, const char *rel)
{
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		die("cannot read %s: %s", dir, strerror(errno));
	record_listing(dir, rel);
	while ((e = readdir(d))) {
		char path[PATH_MAX], sub[PATH_MAX], id[64];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st))
			die("cannot stat %s: %s", path, strerror(errno));
		if (S_ISDIR(st.st_mode)) {
			snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
			record_all(path, sub);
		} else if (S_ISREG(st.st_mode)) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);

			if (fd < 0)
				die("cannot open %s: %s", path, strerror(errno));
			file_id(fd, "", AT_EMPTY_PATH, id, sizeof(id));
			record_content(fd, id);
			close(fd);
		}
	}
	closedir(d);
}

__attribute__((constructor)) static void powercut_init(void)
{
	const char *data = getenv("POWERCUT_DATA"), *dir = getenv("POWERCUT_SHADOW");
	char final[PATH_MAX], sub[PATH_MAX + 16];

	real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (!real_fsync || !real_fdatasync)
		die("cannot find fsync and fdatasync");
	/* Only the process it was meant for: not the helpers it runs. */
	unsetenv("LD_PRELOAD");
	if (!data || !dir)
		return;
	if (!realpath(data, data_dir))
		die("POWERCUT_DATA '%s': %s", data, strerror(errno));
	data_len = strlen(data_dir);
	if (strlen(dir) + 5 > sizeof(final))
		die("POWERCUT_SHADOW '%s' is too long", dir);
	memcpy(final, dir, strlen(dir) + 1);
	if (access(final, F_OK) == 0)
		die("POWERCUT_SHADOW '%s' exists already", final);
	memcpy(shadow, final, strlen(final));
	memcpy(shadow + strlen(final), ".new", 5);
	snprintf(sub, sizeof(sub), "%s/dirs", shadow);
	if (mkdir(shadow, 0700) || mkdir(sub, 0700))
		die("cannot make %s: %s", sub, strerror(errno));
	snprintf(sub, sizeof(sub), "%s/blobs", shadow);
	if (mkdir(sub, 0700))
		die("cannot make %s: %s", sub, strerror(errno));
	record_all(data_dir, "");
	if (rename(shadow, final))
		die("cannot rename %s: %s", shadow, strerror(errno));
	memcpy(shadow, final, strlen(final) + 1);
	active = true;
}
