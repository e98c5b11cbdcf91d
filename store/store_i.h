/* SPDX-License-Identifier: MIT */
/*
 * store_i.h - what the files of store/ share and nothing above them sees (store layer):
 * the list of backends this build serves and the path syntax they all share.
 */
#ifndef STATEHOUSE_STORE_I_H
#define STATEHOUSE_STORE_I_H

#include <stddef.h>

#include "store.h"

/*
 * Split "ns/agent/key" at its first two slashes (STORE_ATTR: "ns" or "ns/agent", the
 * missing parts as empty strings at the end of path).  -EINVAL when path is not of
 * that form.
 */
int store_split_path(const char *path, size_t len, enum store_op_kind kind, size_t *ns_len,
		     size_t *agent_off, size_t *agent_len, size_t *key_off);
/* fsync a directory (its names made durable): 0 or -errno.  (snapshot.c) */
int store_fsync_dir(const char *path);
/* Split a prefix "ns[/agent[/dir...]]" into its parts; returns how many (0..3). */
int store_split_prefix(const char *p, size_t len, const char **part, size_t *plen);

/* The SQLite backend's files, without a connection (sqlite_files.c): the table's
 * file_state and sync_files, and the removal at close of an empty write-ahead log and
 * its index that an open made (db is the database's path). */
int store_sqlite_file_state(const char *datadir, struct store_log_file *out);
int store_sqlite_sync_files(const char *datadir);
void store_sqlite_drop_empty_wal(const char *db);

/*
 * The backends of this build, the default first.  A new backend is one file defining
 * `const struct store_ops store_<name>_ops` (see struct store_ops in store.h), one
 * X(<name>) here and its file in store/meson.build; nothing above store/ changes.
 */
#define STORE_BACKENDS(X) X(sqlite)

#define STORE_DECLARE_BACKEND(name) extern const struct store_ops store_##name##_ops;
STORE_BACKENDS(STORE_DECLARE_BACKEND)
#undef STORE_DECLARE_BACKEND

#endif
