/* SPDX-License-Identifier: MIT */
/*
 * start.c - what statehoused checks and makes on the host before it mounts (fs layer,
 * for the daemon's main.c): /dev/fuse, the data dir, made and (after a start that
 * failed) removed again, and the mountpoints (a dead mount is detached).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "start.h"

#define FUSE_DEV "/dev/fuse"
#define FUSE_SUPER_MAGIC 0x65735546

/* The name of user uid, or its number, in buf. */
static const char *user_name(uid_t uid, char *buf, size_t n)
{
	struct passwd *pw = getpwuid(uid);

	if (pw)
		snprintf(buf, n, "%s", pw->pw_name);
	else
		snprintf(buf, n, "%ld", (long)uid);
	return buf;
}

static const char *group_name(gid_t gid, char *buf, size_t n)
{
	struct group *gr = getgrgid(gid);

	if (gr)
		snprintf(buf, n, "%s", gr->gr_name);
	else
		snprintf(buf, n, "%ld", (long)gid);
	return buf;
}

/* EACCES on /dev/fuse: say who may open it and what would let this user in. */
static void device_refused(int err)
{
	char user[64], owner[64], group[64];
	struct stat st;

	if (stat(FUSE_DEV, &st) != 0) {
		log_err("cannot open " FUSE_DEV ": %s", strerror(err));
		return;
	}
	user_name(geteuid(), user, sizeof(user));
	user_name(st.st_uid, owner, sizeof(owner));
	group_name(st.st_gid, group, sizeof(group));
	if ((st.st_mode & (S_IRGRP | S_IWGRP)) == (S_IRGRP | S_IWGRP))
		log_err("cannot open " FUSE_DEV ": %s (mode %04o, owner %s, group %s): add user "
			"'%s' to group '%s' (as root: usermod -aG %s %s, then log in again), or "
			"have root mount it with -o allow_other, which lets other users in",
			strerror(err), (unsigned)(st.st_mode & 07777), owner, group, user, group,
			group, user);
	else
		log_err("cannot open " FUSE_DEV ": %s (mode %04o, owner %s, group %s): as root, "
			"give it the mode the fuse3 package's udev rule gives it (chmod 0666 "
			FUSE_DEV "), or have root mount it with -o allow_other, which lets other "
			"users in", strerror(err), (unsigned)(st.st_mode & 07777), owner, group);
}

int fs_check_fuse_device(void)
{
	int fd = open(FUSE_DEV, O_RDWR | O_CLOEXEC), err;

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	err = errno;
	switch (err) {
	case ENOENT:
	case ENODEV:
	case ENXIO:
		log_err("cannot open " FUSE_DEV ": %s: load the FUSE module as root ('modprobe "
			"fuse'); in a container, pass the device in (docker run --device "
			FUSE_DEV " --cap-add SYS_ADMIN)", strerror(err));
		break;
	case EACCES:
		device_refused(err);
		break;
	case EPERM:
		log_err("cannot open " FUSE_DEV ": %s: a device policy forbids it (a "
			"container's, or a systemd unit's DevicePolicy=): allow the device (docker "
			"run --device " FUSE_DEV "; systemd: DeviceAllow=" FUSE_DEV " rw)",
			strerror(err));
		break;
	default:
		log_err("cannot open " FUSE_DEV ": %s", strerror(err));
	}
	return -1;
}

/* Whether the deepest directory of path that exists (path itself, one above it, or the
 * working directory for a relative path) is on a FUSE file system. */
static bool on_fuse(const char *path)
{
	char tmp[PATH_MAX];
	struct statfs sfs;

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (;;) {
		char *slash;

		if (statfs(tmp[0] ? tmp : ".", &sfs) == 0)
			return sfs.f_type == FUSE_SUPER_MAGIC;
		if (errno != ENOENT || !tmp[0])
			return false; /* mkdir will say why */
		slash = strrchr(tmp, '/');
		if (!slash)
			tmp[0] = '\0';
		else
			*(slash == tmp ? slash + 1 : slash) = '\0';
	}
}

/* mkdir tmp (0700): 0, or -errno; a directory made is remembered in *made when it is the
 * first (the topmost). */
static int make_one(const char *tmp, char **made)
{
	if (mkdir(tmp, 0700) != 0)
		return errno == EEXIST ? 0 : -errno;
	if (!*made && !(*made = strdup(tmp)))
		return -ENOMEM;
	return 0;
}

int fs_datadir_make(const char *path, char **made)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);
	int err = 0;

	*made = NULL;
	if (n >= sizeof(tmp)) {
		log_err("cannot create data dir '%s': %s", path, strerror(ENAMETOOLONG));
		return -1;
	}
	if (on_fuse(path)) {
		log_err("cannot use data dir '%s': it is on a FUSE filesystem; SQLite's WAL needs "
			"a local filesystem", path);
		return -1;
	}
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p && !err; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		err = make_one(tmp, made);
		*p = '/';
	}
	if (!err)
		err = make_one(tmp, made);
	if (err) {
		log_err("cannot create data dir '%s': %s", path, strerror(-err));
		fs_datadir_unmake(*made, path, -1);
		*made = NULL;
		return -1;
	}
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (remove(path) != 0)
		log_warn("cannot remove '%s': %s", path, strerror(errno));
	return 0;
}

void fs_datadir_unmake(char *made, const char *datadir, int lockfd)
{
	char lock[PATH_MAX + 32];
	struct stat st;
	int fd = -1;

	if (!made)
		return;
	if (lstat(made, &st) != 0) { /* removed already (by the daemon's child) */
		free(made);
		return;
	}
	if (lockfd < 0) {
		snprintf(lock, sizeof(lock), "%s/statehoused.lock", datadir);
		fd = open(lock, O_RDWR | O_CLOEXEC);
		/* another daemon took the new data dir meanwhile: it is its now */
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
			close(fd);
			free(made);
			return;
		}
	}
	nftw(made, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	log_debug("removed '%s', which this failed start had made", made);
	if (fd >= 0)
		close(fd);
	free(made);
}

/* ---- mountpoints ---------------------------------------------------------------------- */

/* start.h */
bool fs_mount_is_dead(const char *mnt)
{
	struct statfs sfs;
	struct stat st;

	/* statfs always asks the daemon; stat may be answered from the kernel's cache. */
	return (statfs(mnt, &sfs) != 0 && errno == ENOTCONN) ||
	       (stat(mnt, &st) != 0 && errno == ENOTCONN);
}

/* start.h */
int fs_mount_detach_dead(const char *mnt)
{
	pid_t pid;
	int status;

	log_warn("mountpoint '%s' is a dead FUSE mount (transport endpoint is not connected); "
		 "detaching it", mnt);
	if (geteuid() == 0 && umount2(mnt, MNT_DETACH) == 0)
		return 0;
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		if (devnull >= 0) {
			dup2(devnull, STDOUT_FILENO);
			dup2(devnull, STDERR_FILENO);
		}
		execlp("fusermount3", "fusermount3", "-u", "-z", mnt, (char *)NULL);
		_exit(127);
	}
	if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0)
		return 0;
	log_err("cannot detach the dead mount at '%s'; run: fusermount3 -u -z %s", mnt, mnt);
	return -EBUSY;
}

/* start.h */
int fs_mountpoint_check(const char *mnt, const char *option, bool nonempty)
{
	const char *opt = option ? option : "", *sp = option ? " " : "";
	struct dirent *e;
	struct stat st;
	bool empty = true;
	DIR *d;

	if (stat(mnt, &st) != 0) {
		log_err("cannot mount %s%son '%s': %s", opt, sp, mnt, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("cannot mount %s%son '%s': not a directory", opt, sp, mnt);
		return -1;
	}
	if (nonempty)
		return 0;
	d = opendir(mnt);
	if (!d) {
		log_err("cannot mount %s%son '%s': %s", opt, sp, mnt, strerror(errno));
		return -1;
	}
	while (empty && (e = readdir(d)))
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	closedir(d);
	if (!empty) {
		log_err("cannot mount %s%son '%s': it is not empty (the mount would hide its files); "
			"move them away, or mount over them with -o nonempty", opt, sp, mnt);
		return -1;
	}
	return 0;
}

/*
 * A daemon that died (SIGKILL of its supervisor) leaves its worker on its way out for a
 * moment: it dies with its supervisor, holding the data dir's lock and the mount until
 * then.  Wait (up to 5 s) while the lock is held and the pid in the lock file is gone,
 * so that what follows sees the mount dead and the lock free.  fd: the lock file.
 */
static void wait_dying_holder(int fd)
{
	char pid[32];
	ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
	long holder;

	pid[n > 0 ? n : 0] = '\0';
	holder = strtol(pid, NULL, 10);
	for (int i = 0; holder > 0 && i < 500; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			flock(fd, LOCK_UN);
			return;
		}
		if (kill((pid_t)holder, 0) == 0 || errno != ESRCH)
			return; /* a live daemon holds it */
		usleep(10000);
	}
}

void fs_datadir_wait_previous(const char *datadir)
{
	char path[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/statehoused.lock", datadir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	wait_dying_holder(fd);
	close(fd);
}

int fs_lock_datadir(const char *datadir, int *fd_out)
{
	char path[PATH_MAX + 32], pid[32];
	int fd;

	snprintf(path, sizeof(path), "%s/statehoused.lock", datadir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_err("cannot open lock file '%s': %s", path, strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0)
		wait_dying_holder(fd);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);

		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		log_err("cannot use data dir '%s': already in use by another statehoused%s%s%s",
			datadir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
		close(fd);
		return -EBUSY;
	}
	if (ftruncate(fd, 0) == 0) {
		int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());

		if (pwrite(fd, pid, (size_t)n, 0) < 0)
			log_warn("cannot write pid to '%s': %s", path, strerror(errno));
	}
	*fd_out = fd;
	return 0;
}
