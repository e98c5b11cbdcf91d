/* SPDX-License-Identifier: MIT */
/*
 * ekey.h - how .history names a key (fs layer; no FUSE here, so it is unit-tested
 * without a mount).
 *
 * A key may hold '/', so .history/<ns>/<agent>/ shows it as one encoded name: '%' as
 * "%25" and '/' as "%2F" (one spelling each).  An encoded name over NAME_MAX (255 bytes)
 * is a path of segments instead: every segment but the last is a directory named by the
 * next bytes of the encoded name followed by "%+", and the last one is the rest.  A
 * segment directory holds at most EKEY_SEG_MAX bytes of the encoded name, cut so that
 * it ends neither inside an escape nor before a UTF-8 continuation byte (at most 3
 * bytes are given back for that).  "%+" is no escape, so a segment never looks like a
 * key.  statehouse(5) documents the rule; statehousectl and the Python module apply it.
 */
#ifndef STATEHOUSE_EKEY_H
#define STATEHOUSE_EKEY_H

#include <stddef.h>

#define EKEY_NAME_MAX 255 /* bytes of one path component */
#define EKEY_SEG_MAX 253  /* encoded bytes in a segment directory, before "%+" */
#define EKEY_SEG_MARK "%+"

/* The encoded name of key (len bytes), NUL-terminated, malloc'ed, its length in *elen;
 * NULL on out of memory. */
char *ekey_encode(const char *key, size_t len, size_t *elen);
/* Decode the encoded name e (elen bytes) into out (room for elen + 1 bytes), its
 * length in *len.  0, or -EINVAL when e is not the one spelling of a key. */
int ekey_decode(const char *e, size_t elen, char *out, size_t *len);
/* The bytes of e (elen bytes, an encoded name or the rest of one) that its first
 * segment holds: elen when the rest fits one component, else the cut of a segment
 * directory. */
size_t ekey_segment(const char *e, size_t elen);
/* The segments of the encoded name e joined by '/', without the "%+" marks:
 * NUL-terminated, malloc'ed, its length in *len; NULL on out of memory.  A key whose
 * encoded name fits one component has one segment: e itself. */
char *ekey_segments(const char *e, size_t elen, size_t *len);

#endif
