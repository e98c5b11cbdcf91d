/* SPDX-License-Identifier: MIT */
/*
 * dirents.h - a directory listing: entries (a name and the caller's type code) appended
 * in any order, then sorted by name without duplicates (common layer).  txn/ builds one
 * for every view it lists and fs/ keeps one per open directory handle.
 */
#ifndef STATEHOUSE_DIRENTS_H
#define STATEHOUSE_DIRENTS_H

#include <stddef.h>

struct dirent_entry {
	char *name; /* NUL-terminated, owned by the list */
	int type;   /* what the caller says it is (txn/'s enum txn_type) */
};

struct dirents {
	struct dirent_entry *v;
	size_t n, alloc;
};

#define DIRENTS_INIT { NULL, 0, 0 }

/* Append a copy of the len bytes of name: 0 or -ENOMEM (the list is unchanged). */
int dirents_add(struct dirents *ds, const char *name, size_t len, int type);
/* Sort by name (strcmp) and drop the later of two equal names. */
void dirents_sort_unique(struct dirents *ds);
/* Free n entries handed out by dirents_take() and their array; NULL is a no-op. */
void dirents_free(struct dirent_entry *v, size_t n);
/* Free every entry and make ds empty. */
void dirents_release(struct dirents *ds);
/*
 * The end of building a listing: on err the list is released and err returned; else it
 * is sorted without duplicates and handed to the caller (*out, *n; free with
 * dirents_free()), leaving ds empty.
 */
int dirents_take(struct dirents *ds, int err, struct dirent_entry **out, size_t *n);

#endif
