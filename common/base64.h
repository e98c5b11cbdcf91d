/* SPDX-License-Identifier: MIT */
/*
 * base64.h - RFC 4648 base64 (with padding), for bytes that JSON cannot carry as text
 * (common layer): the daemon encodes, statehousectl decodes.
 */
#ifndef STATEHOUSE_BASE64_H
#define STATEHOUSE_BASE64_H

#include <stddef.h>

/* The encoding of len bytes, NUL-terminated, malloc'ed; NULL on out of memory. */
char *base64_encode(const void *data, size_t len);
/* The bytes of the encoding s (len characters, padded, as base64_encode writes it) in
 * *out (malloc'ed, NUL-terminated beyond *out_len, the caller frees) and *out_len.
 * 0, -EINVAL when s is not such an encoding (*out NULL), or -ENOMEM. */
int base64_decode(const char *s, size_t len, unsigned char **out, size_t *out_len);

#endif
