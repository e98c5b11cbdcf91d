/* SPDX-License-Identifier: MIT */
/*
 * start.h - what statehoused checks and makes on the host before it mounts (fs layer,
 * for the daemon's main.c): /dev/fuse, the data dir, which a start that fails takes
 * away again when it was the one that made it, and the mountpoints.
 */
#ifndef STATEHOUSE_START_H
#define STATEHOUSE_START_H

#include <stdbool.h>

/*
 * Open and close /dev/fuse.  libfuse opens it with the daemon's own rights (fusermount3
 * helps only with mount(2)), so a start that cannot would fail at the mount, after the
 * store was made: this fails before anything is, saying what would let this user in (a
 * group, a mode, root's allow_other mount) or that the device is missing.  0, or -1
 * after the message.
 */
int fs_check_fuse_device(void);

/*
 * Make the data dir path and the directories above it that are missing (mode 0700).  A
 * path on a FUSE file system is refused before anything is made (SQLite's WAL needs a
 * local one).  *made is the topmost directory this call made (caller frees), NULL when
 * path was there already.  0, or -1 after the message (*made is then NULL: what was
 * made is gone again).
 */
int fs_datadir_make(const char *path, char **made);

/*
 * A start failed: remove made (from fs_datadir_make) and everything in it, so the failed
 * start leaves no data dir behind.  lockfd is the data dir's lock when held, else -1:
 * then the lock is taken here, and nothing is removed when another daemon holds it.
 * Frees made; NULL does nothing.
 */
void fs_datadir_unmake(char *made, const char *datadir, int lockfd);

/* Is mnt a mount left by a killed daemon (it answers ENOTCONN)? */
bool fs_mount_is_dead(const char *mnt);

/*
 * Detach the dead mount at mnt.  This happens only just before the new mount: until then
 * the dead mount keeps answering ENOTCONN, so nothing written while the daemon is down
 * (a restart window, a long recovery, a start that fails) lands in the directory below.
 * 0, or -EBUSY after the message.
 */
int fs_mount_detach_dead(const char *mnt);

/*
 * mnt must be a directory, and an empty one unless nonempty: libfuse 3 mounts over files
 * without a word, hiding them, and they would show again whenever the mount is gone.
 * option names the mount in the message ("cannot mount OPTION on 'MNT': ..."; NULL: the
 * main mount, "cannot mount on 'MNT': ...").  0 or -1, logged.
 */
int fs_mountpoint_check(const char *mnt, const char *option, bool nonempty);

/* The data dir's lock (statehoused.lock, with this pid in it): 0 and *fd_out, or -errno
 * after the message (another daemon uses it). */
int fs_lock_datadir(const char *datadir, int *fd_out);
/* If the daemon of datadir died and its worker is still on its way out, wait (up to
 * 5 s) until it is gone, so that its mount is seen dead and its lock free. */
void fs_datadir_wait_previous(const char *datadir);

#endif
