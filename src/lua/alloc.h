/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The counting allocator of a cella-lua state: every byte the state holds is
 * counted, and an allocation that would pass the cap fails (Lua then raises a
 * memory error). Near the cap the GC is paced harder (DESIGN.md section 7).
 */

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

/* Default cap when the manifest sets no limits.memory: 64 MiB (docs/lua-api.md). */
#define CLUA_ALLOC_DEFAULT_CAP (64ull * 1024 * 1024)
/* Smallest cap accepted: below this a state with the library cannot even start. */
#define CLUA_ALLOC_MIN_CAP (256ull * 1024)

typedef struct CLuaAlloc {
        size_t used; /* bytes held by the state now */
        size_t peak; /* highest value of used */
        size_t cap;  /* hard cap in bytes */
        /* Allocations refused because of the cap. Lua retries a refused one after an
         * emergency full collection, so a refusal is not yet a memory error. */
        unsigned long refused;
        /* Refusals since the heap was last below 7/8 of the cap; at
         * CLUA_ALLOC_THRASH_MAX every allocation that grows the heap is refused
         * until it is below 7/8 again, so the retry fails and Lua raises. */
        unsigned thrash;
} CLuaAlloc;

/*
 * Refusals in a row, with the heap within 1/8 of the cap all along, after which
 * the state counts as out of memory even if each emergency collection frees a
 * little: live data fills the heap, and going on would run a full collection
 * per allocation (the JVM's "GC overhead limit exceeded" is the same rule in
 * time: UseGCOverheadLimit, over 98% of the time in GC).
 */
#define CLUA_ALLOC_THRASH_MAX 16u

/*
 * The lua_Alloc function (Lua 5.4 manual section 4.6) for a CLuaAlloc passed as ud.
 * osize is the old block's size in bytes when ptr is not NULL; nsize the new size
 * in bytes (0 frees). Returns the block, or NULL when nsize > 0 and the block would
 * take used past cap, the heap thrashes at the cap (CLUA_ALLOC_THRASH_MAX), or
 * malloc fails. Shrinking never fails (Lua assumes so).
 */
void *clua_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize);

/*
 * Initializes a with cap bytes (0 = CLUA_ALLOC_DEFAULT_CAP; raised to CLUA_ALLOC_MIN_CAP)
 * and creates a state that allocates through it. Returns the state, or NULL when
 * even the state does not fit.
 */
lua_State *clua_alloc_newstate(CLuaAlloc *a, size_t cap);

/*
 * Paces the incremental GC of L from a's use: Lua 5.4's defaults (pause 200%,
 * step multiplier 100) below half the cap, pause 150%/multiplier 200 up to 3/4,
 * then pause 120% (a new cycle once the heap grew 20%) and multiplier 300. (A
 * pause of 100% made growing live data quadratic.) Call between slices.
 */
void clua_alloc_pace_gc(CLuaAlloc *a, lua_State *L);
