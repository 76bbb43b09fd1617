/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The boot order of `cella boot DIR` (docs/design.md section 1, "supervisor"):
 * apps start in waves; an app is in the first wave after every app it depends on,
 * so the apps of one wave are independent of each other and may start in parallel.
 * Kahn's algorithm, with the waves as its levels.
 */

#include <stddef.h>

#include "policy/manifest.h"

/* At most this many apps in one boot: a bound on the input. As many as one packed
 * Lua host takes (LUAHOST_APPS_MAX), far above what a 2-core box runs in sandboxes of
 * their own (docs/benchmarks.md). */
#define BOOT_APPS_MAX 65536

typedef struct BootOrder {
        size_t n;        /* apps */
        size_t *order;   /* indices into the caller's manifest array, wave by wave */
        size_t *wave_of; /* wave_of[i]: the wave of manifest i (0 = first) */
        size_t n_waves;
} BootOrder;

/* What went wrong, for the message: the app and the id it names. */
typedef struct BootOrderError {
        char app[MANIFEST_ID_MAX + 1];
        char other[MANIFEST_ID_MAX + 1];
        char cycle[1024]; /* "a -> b -> c -> a" for a cycle, truncated with "..." */
} BootOrderError;

/*
 * Computes the waves for manifests[0..n-1] (borrowed). Errors:
 *   -EINVAL  n > BOOT_APPS_MAX
 *   -EEXIST  two manifests with the same id (err->app, err->other: that id)
 *   -ENOENT  err->app depends on err->other, which is not among them
 *   -ELOOP   a dependency cycle; err->cycle spells it out
 *   -ENOMEM
 * Returns 0 and *ret (free with boot_order_done()).
 */
int boot_order_compute(Manifest *const *manifests, size_t n, BootOrder *ret, BootOrderError *err);

void boot_order_done(BootOrder *b);
