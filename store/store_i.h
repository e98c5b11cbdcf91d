/* SPDX-License-Identifier: MIT */
/*
 * store_i.h - what the files of store/ share and nothing above them sees (store layer):
 * the list of backends this build serves.
 */
#ifndef STATEHOUSE_STORE_I_H
#define STATEHOUSE_STORE_I_H

#include "store.h"

/*
 * The backends of this build, the default first.  A new backend is one file defining
 * `const struct store_ops store_<name>_ops` (see struct store_ops in store.h), one
 * X(<name>) here and its file in store/meson.build; nothing above store/ changes.
 */
#define STORE_BACKENDS(X) X(sqlite)

#define STORE_DECLARE_BACKEND(name) extern const struct store_ops store_##name##_ops;
STORE_BACKENDS(STORE_DECLARE_BACKEND)
#undef STORE_DECLARE_BACKEND

#endif
