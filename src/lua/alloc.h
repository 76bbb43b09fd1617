/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The counting allocator of a cella-lua state: every byte the state holds is
 * counted, and an allocation that would pass the cap fails (Lua then raises a
 * memory error). Near the cap the GC is paced harder (docs/design.md section 7).
 */

#include <lua.h>
#include <signal.h>
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
        /* Allocations of C libraries refused for the cap (clua_ext_malloc). */
        unsigned long ext_refused;
        /* The app's doom flag (CLuaApp.doomed), or NULL: C libraries that run
         * long (SQLite's progress handler) stop when it is set. */
        const volatile sig_atomic_t *doomed;
        /* The app's host's soft stop: the thread CPU time (ns) after which C
         * work that can stop with an error should (a SQLite statement), or 0;
         * or NULL. Set when a slice of a host of several apps ends. */
        const volatile uint64_t *soft_stop_ns;
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
 * A block of the state that grows by at least CLUA_ALLOC_POPULATE_MIN bytes has
 * its new pages faulted in at once by the allocator, CLUA_ALLOC_POPULATE_STEP
 * bytes at a time with a look at the app's doom flag between two (a doomed app
 * gets no new block): the page faults of a fresh block (2.5 s for 1 GiB on this
 * 2-core machine under load) would otherwise come in the one C call that first
 * writes it, which nothing can stop.
 */
#define CLUA_ALLOC_POPULATE_MIN  ((size_t)16 << 20)
#define CLUA_ALLOC_POPULATE_STEP ((size_t)16 << 20)

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

/*
 * The allocator of the app the calling thread runs now, or NULL: the host sets it
 * around each slice (and each clua_call), so memory C libraries allocate on the
 * app's behalf (jansson, SQLite) counts against its cap. Per thread, as the host.
 */
extern __thread CLuaAlloc *clua_alloc_current;

/*
 * malloc/realloc/free for C libraries working for an app (jansson through
 * json_set_alloc_funcs, SQLite through SQLITE_CONFIG_MALLOC): each block
 * carries a 16-byte header naming the CLuaAlloc it is charged to
 * (clua_alloc_current when it was made; none when NULL) and its size, so it is
 * uncharged from that app when freed, whoever runs then. clua_ext_malloc and
 * clua_ext_realloc return NULL (and count ext_refused) when the block would take
 * the owner past its cap, or when malloc fails. clua_ext_size: the usable size
 * of a block (0 for NULL).
 */
void *clua_ext_malloc(size_t n);
void *clua_ext_realloc(void *p, size_t n);
void clua_ext_free(void *p);
size_t clua_ext_size(void *p);

/*
 * Once per process, before any SQLite or jansson use: installs the clua_ext_*
 * functions as jansson's (json_set_alloc_funcs) and SQLite's
 * (sqlite3_config(SQLITE_CONFIG_MALLOC)) allocators and initializes SQLite
 * with no app current (its process-wide allocations are charged to nobody).
 * Thread-safe (pthread_once). Returns 0, or -EBUSY if SQLite was already
 * initialized by someone else (its allocations then go uncounted).
 */
int clua_alloc_global_init(void);

/* Whether the app the thread runs now is past its host's soft stop (its slice
 * ended CLUA_NOPREEMPT_NS / 2 of CPU ago in a host of several apps): C work that
 * can end with an error (a SQLite statement) should, before the watchdog ends
 * the app. Reads the thread's CPU clock only when a soft stop is set. */
bool clua_alloc_current_overtime(void);

/* Whether the app the thread runs now is doomed (for C libraries' callbacks). */
static inline bool clua_alloc_current_doomed(void)
{
        return clua_alloc_current && clua_alloc_current->doomed && *clua_alloc_current->doomed;
}

/* ext_refused of the current app (0 when none): compare before and after a C
 * library call to tell a refusal for the cap from other failures. */
static inline unsigned long clua_alloc_refusals(void)
{
        return clua_alloc_current ? clua_alloc_current->ext_refused : 0;
}

/*
 * Raises Lua's memory error in L, as if the state's own allocation had passed
 * the cap (an allocation of cap + 1 bytes, which the allocator refuses): for a C
 * library that failed for the current app's cap. In a host this is the app's
 * memory fault, which pcall cannot catch. Without a current app, raises a plain
 * "not enough memory" error. Does not return.
 */
int clua_alloc_raise_memory(lua_State *L);
