/* SPDX-License-Identifier: MIT */
/*
 * base64.h - RFC 4648 base64 (with padding), for bytes that JSON cannot carry as text
 * (common layer).
 */
#ifndef STATEHOUSE_BASE64_H
#define STATEHOUSE_BASE64_H

#include <stddef.h>

/* The encoding of len bytes, NUL-terminated, malloc'ed; NULL on out of memory. */
char *base64_encode(const void *data, size_t len);

#endif
