/* SPDX-License-Identifier: MIT */
/*
 * blob.h - immutable, reference-counted byte strings (common layer).
 *
 * A key's value is shared by the in-memory state, transactions that read it and the
 * committer without copying.  A blob never changes after blob_new(); the last
 * blob_unref() frees it.  blob_unref(NULL) is a no-op.  The one exception: a blob made
 * with room (blob_new_room()) may be changed in place with blob_patch() by a holder who
 * knows that nobody else can read it (txn's staging of a writer's value, stage.c).
 */
#ifndef STATEHOUSE_BLOB_H
#define STATEHOUSE_BLOB_H

#include <stdatomic.h>
#include <stddef.h>

struct blob {
	atomic_uint refs;
	size_t len;
	size_t room;             /* bytes data[] holds before its last NUL (>= len) */
	unsigned char data[];    /* len bytes, then a NUL */
};

/* Copy len bytes into a new blob with one reference; NULL on out of memory. */
struct blob *blob_new(const void *data, size_t len);
/* The same with room for room bytes (room >= len) before the final NUL. */
struct blob *blob_new_room(const void *data, size_t len, size_t room);
/*
 * Write n bytes at off and make the length new_len (zeros where the old end grew and
 * nothing was written; off + n <= new_len <= b->room).  Only for a blob that no one else can read meanwhile.
 */
void blob_patch(struct blob *b, size_t off, const void *data, size_t n, size_t new_len);
struct blob *blob_ref(struct blob *b);
void blob_unref(struct blob *b);

#endif
