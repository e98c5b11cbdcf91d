/* SPDX-License-Identifier: MIT */
/*
 * blob.c - reference-counted immutable values, and the room a staged value grows in
 * (common layer).
 */
#include "blob.h"

#include <stdlib.h>
#include <string.h>

struct blob *blob_new_room(const void *data, size_t len, size_t room)
{
	struct blob *b = malloc(sizeof(*b) + (room > len ? room : len) + 1);

	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	b->len = len;
	b->room = room > len ? room : len;
	if (len)
		memcpy(b->data, data, len);
	b->data[len] = '\0';
	return b;
}

struct blob *blob_new(const void *data, size_t len)
{
	return blob_new_room(data, len, len);
}

void blob_patch(struct blob *b, size_t off, const void *data, size_t n, size_t new_len)
{
	if (new_len > b->len)
		memset(b->data + b->len, 0, new_len - b->len);
	if (n)
		memcpy(b->data + off, data, n);
	b->len = new_len;
	b->data[new_len] = '\0';
}

struct blob *blob_ref(struct blob *b)
{
	if (b)
		atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}

void blob_unref(struct blob *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		free(b);
}
