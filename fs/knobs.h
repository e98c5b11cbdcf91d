/* SPDX-License-Identifier: MIT */
/*
 * knobs.h - the test-only knobs of the environment (knobs.c says which).
 */
#ifndef STATEHOUSE_KNOBS_H
#define STATEHOUSE_KNOBS_H

#include "txn.h"

/* Set on eng what the environment asks for: 0, or -1 after the message. */
int fs_test_knobs_from_env(struct txn_engine *eng);

#endif
