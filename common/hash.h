/* SPDX-License-Identifier: MIT */
/*
 * hash.h - uthash as every layer uses it: a failed allocation is reported to the caller,
 * never a silent exit (common layer).
 *
 * Include this instead of <uthash.h>.  With HASH_NONFATAL_OOM a HASH_ADD* that runs out
 * of memory leaves the table as it was and the element out of it; HASH_ADDED() tells
 * the caller, who then frees the element and returns -ENOMEM.  The bucket array that a
 * table fails to double keeps working at its old size.
 */
#ifndef STATEHOUSE_HASH_H
#define STATEHOUSE_HASH_H

#define HASH_NONFATAL_OOM 1
#include <uthash.h>

/* After HASH_ADD*(hh, head, ..., elt): did elt go into the table? */
#define HASH_ADDED(hh, elt) ((elt)->hh.tbl != NULL)

#endif
