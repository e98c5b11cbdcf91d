/* SPDX-License-Identifier: MIT */
/*
 * probe_fuse.c - compiles only where the FUSE headers are on the include path (layering
 * test): with fs/'s dependencies it must, with txn/'s or store/'s it must not.
 */
#include <fuse_lowlevel.h>

int probe_fuse(void);
int probe_fuse(void)
{
	return FUSE_ROOT_ID;
}
