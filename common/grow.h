/* SPDX-License-Identifier: MIT */
/*
 * grow.h - growable arrays and byte buffers, one copy for every layer (common layer).
 *
 * ARRAY_GROW is git's ALLOC_GROW without the death: it makes room for `need` elements
 * of an array `p` whose allocation holds `cap`, growing by half again (at least to 16),
 * and returns 0 or -ENOMEM with the array left as it was.  struct strbuf is git's strbuf
 * with the same rule: every function that allocates returns 0 or -ENOMEM and leaves the
 * buffer valid, so a caller cleans up with strbuf_release() whatever happened.
 */
#ifndef STATEHOUSE_GROW_H
#define STATEHOUSE_GROW_H

#include <stdarg.h>
#include <stddef.h>

/* Grow *pp (an array of elem-byte elements, allocated for *cap) to hold need. */
int grow_array(void *pp, size_t *cap, size_t need, size_t elem);

#define ARRAY_GROW(p, need, cap) grow_array(&(p), &(cap), (need), sizeof(*(p)))

/* A byte buffer; buf is NUL-terminated whenever it is not NULL. */
struct strbuf {
	char *buf;
	size_t len;
	size_t alloc;
};

#define STRBUF_INIT { NULL, 0, 0 }

void strbuf_init(struct strbuf *sb);
/* Free the bytes and make sb empty again. */
void strbuf_release(struct strbuf *sb);
/* Room for extra more bytes (and the terminating NUL). */
int strbuf_grow(struct strbuf *sb, size_t extra);
int strbuf_add(struct strbuf *sb, const void *data, size_t len);
int strbuf_addstr(struct strbuf *sb, const char *s);
int strbuf_addch(struct strbuf *sb, char c);
int strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Cut to len bytes (len <= sb->len). */
void strbuf_setlen(struct strbuf *sb, size_t len);
/* Hand the bytes to the caller (who frees them; never NULL on success: an empty buffer
 * gives ""), leaving sb empty; NULL on out of memory. */
char *strbuf_detach(struct strbuf *sb, size_t *len);

#endif
