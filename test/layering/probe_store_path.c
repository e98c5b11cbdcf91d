/* SPDX-License-Identifier: MIT */
/*
 * probe_store_path.c - names store/'s header by its path from the top of the tree
 * (layering test): fs/ must not reach it that way either, so no include directory that
 * fs/ sees may be the top of the source tree.
 */
#include "store/store.h"

int probe_store_path(void);
int probe_store_path(void)
{
	return STORE_SCHEMA_VERSION;
}
