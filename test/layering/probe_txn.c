/* SPDX-License-Identifier: MIT */
/*
 * probe_txn.c - compiles only where txn/'s header is on the include path (layering
 * test): the positive control with fs/'s dependencies.
 */
#include "txn.h"

int probe_txn(void);
int probe_txn(void)
{
	return TXN_NAME_MAX;
}
