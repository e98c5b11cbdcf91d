/* SPDX-License-Identifier: MIT */
/*
 * backup.c - statehousectl backup: a consistent copy of the whole store, read through the
 * mount's .backup (mountctl/, the command-line layer).
 *
 * The daemon makes the copy with SQLite's online backup API when .backup is opened (one
 * read transaction: one commit_ts, commits go on meanwhile); this writes it to DEST with
 * a temporary file, fsync and rename, so DEST is whole or absent.  A daemon started on a
 * data dir holding DEST as statehouse.db serves the same log, .events, .at and versions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl.h"

int ctl_cmd_backup(struct ctl *c, int argc, char **argv)
{
	struct strbuf b = { 0 };
	json_t *status = NULL;
	const char *dest;
	struct stat st;
	int64_t head = 0;
	char *path = NULL;
	int rc = ctl_simple_args(c, argc, argv, 1, 1), err;

	if (rc >= 0)
		return rc;
	dest = argv[optind];
	if (lstat(dest, &st) == 0)
		return ctl_fail(EEXIST, "cannot back up to '%s'", dest);
	if (errno != ENOENT)
		return ctl_fail(errno, "cannot back up to '%s'", dest);
	if ((rc = ctl_select_mount(c)))
		return rc;
	/* Every commit acknowledged before this read is in the copy, made after it. */
	if (ctl_status_read(c->mnt, &status) == 0)
		head = ctl_json_int(status, "head_commit_ts", 0);
	json_decref(status);
	path = ctl_mpath(c, ".backup");
	err = ctl_read_path(path, &b);
	if (err) {
		rc = ctl_fail(-err, "cannot back up the store of '%s'", c->mnt);
		goto out;
	}
	err = ctl_write_atomic(dest, b.buf, b.len, 0600);
	if (err) {
		rc = ctl_fail(-err, "cannot write the backup '%s'", dest);
		goto out;
	}
	if (c->json) {
		json_t *j = json_pack("{s:s,s:s,s:I,s:I}", "mountpoint", c->mnt, "backup", dest,
				      "bytes", (json_int_t)b.len, "min_commit_ts", (json_int_t)head);

		ctl_print_json(j, false);
		json_decref(j);
	} else {
		printf("backed up '%s' to '%s' (%zu bytes; every commit up to commit_ts %lld at "
		       "least)\n", c->mnt, dest, b.len, (long long)head);
	}
	rc = ctl_finish_stdout(CTL_EXIT_OK);
out:
	strbuf_release(&b);
	free(path);
	return rc;
}
