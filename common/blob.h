/* SPDX-License-Identifier: MIT */
/*
 * blob.h - immutable, reference-counted byte strings (common layer).
 *
 * A key's value is shared by the in-memory state, transactions that read it and the
 * committer without copying.  A blob never changes after blob_new(); the last
 * blob_unref() frees it.  blob_unref(NULL) is a no-op.
 */
#ifndef STATEHOUSE_BLOB_H
#define STATEHOUSE_BLOB_H

#include <stdatomic.h>
#include <stddef.h>

struct blob {
	atomic_uint refs;
	size_t len;
	unsigned char data[];
};

/* Copy len bytes into a new blob with one reference; NULL on out of memory. */
struct blob *blob_new(const void *data, size_t len);
struct blob *blob_ref(struct blob *b);
void blob_unref(struct blob *b);

#endif
