/* SPDX-License-Identifier: MIT */
/*
 * dirents.c - directory listings built by appending, then sorted (common layer).
 */
#include "dirents.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"

int dirents_add(struct dirents *ds, const char *name, size_t len, int type)
{
	char *copy;

	if (ARRAY_GROW(ds->v, ds->n + 1, ds->alloc))
		return -ENOMEM;
	copy = strndup(name, len);
	if (!copy)
		return -ENOMEM;
	ds->v[ds->n].name = copy;
	ds->v[ds->n].type = type;
	ds->n++;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dirent_entry *)a)->name,
		      ((const struct dirent_entry *)b)->name);
}

void dirents_sort_unique(struct dirents *ds)
{
	size_t w = 0;

	if (ds->n == 0)
		return;
	qsort(ds->v, ds->n, sizeof(*ds->v), entry_cmp);
	for (size_t i = 1; i < ds->n; i++) {
		if (strcmp(ds->v[i].name, ds->v[w].name) == 0) {
			free(ds->v[i].name);
			continue;
		}
		ds->v[++w] = ds->v[i];
	}
	ds->n = w + 1;
}

void dirents_free(struct dirent_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

void dirents_release(struct dirents *ds)
{
	dirents_free(ds->v, ds->n);
	ds->v = NULL;
	ds->n = ds->alloc = 0;
}

int dirents_take(struct dirents *ds, int err, struct dirent_entry **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (err) {
		dirents_release(ds);
		return err;
	}
	dirents_sort_unique(ds);
	*out = ds->v;
	*n = ds->n;
	ds->v = NULL;
	ds->n = ds->alloc = 0;
	return 0;
}
