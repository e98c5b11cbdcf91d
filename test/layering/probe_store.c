/* SPDX-License-Identifier: MIT */
/*
 * probe_store.c - compiles only where store/'s header is on the include path (layering
 * test): with txn/'s dependencies it must, with fs/'s it must not.
 */
#include "store.h"

int probe_store(void);
int probe_store(void)
{
	return STORE_SCHEMA_VERSION;
}
