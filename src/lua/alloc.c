/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <jansson.h>
#include <lauxlib.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lua/alloc.h"
#include "lua/watchdog.h"

__thread CLuaAlloc *clua_alloc_current;

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14, include/uapi/asm-generic/mman-common.h */
#endif

/*
 * Faults in the pages of p..p+n (a block just grown) in CLUA_ALLOC_POPULATE_STEP
 * pieces, checking the app's doom flag between two: madvise(MADV_POPULATE_WRITE)
 * (Linux 5.14), else a write to each page. Returns false if the app was doomed
 * before all were in. Without it the first write to a fresh 1 GiB block (in
 * liblua: the copy of a built string, a table's new array) takes its page
 * faults, 2.5 s measured here, inside one C call no poll reaches.
 */
static bool populate(CLuaAlloc *a, char *p, size_t n)
{
        static _Atomic bool no_madvise; /* the kernel has no MADV_POPULATE_WRITE */
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        char *start = (char *)(((uintptr_t)p + page - 1) & ~(page - 1)), *end = p + n;

        while (start < end) {
                size_t k = (size_t)(end - start) < CLUA_ALLOC_POPULATE_STEP
                                   ? (size_t)(end - start)
                                   : CLUA_ALLOC_POPULATE_STEP;

                if (*a->doomed)
                        return false;
                if (no_madvise ||
                    madvise(start, (k + page - 1) & ~(page - 1), MADV_POPULATE_WRITE) < 0) {
                        no_madvise = true;
                        for (size_t i = 0; i < k; i += page)
                                ((volatile char *)start)[i] = 0;
                }
                start += k;
        }
        return true;
}

void *clua_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize)
{
        CLuaAlloc *a = ud;
        size_t old = ptr ? osize : 0;
        void *p;

        if (nsize == 0) {
                free(ptr);
                a->used -= old;
                return NULL;
        }
        if (nsize > old) {
                if (a->used < a->cap / 8 * 7)
                        a->thrash = 0;
                if (nsize - old > a->cap || a->used + (nsize - old) > a->cap ||
                    a->thrash >= CLUA_ALLOC_THRASH_MAX) {
                        a->refused++;
                        if (a->thrash < CLUA_ALLOC_THRASH_MAX && a->used >= a->cap / 8 * 7)
                                a->thrash++;
                        return NULL;
                }
        }
        p = realloc(ptr, nsize);
        if (!p) {
                /* Lua assumes a shrink never fails (manual section 4.6): keep the old
                 * block, which is at least nsize bytes. */
                if (nsize <= old) {
                        a->used = a->used - old + nsize;
                        return ptr;
                }
                return NULL;
        }
        if (nsize > old && nsize - old >= CLUA_ALLOC_POPULATE_MIN && a->doomed &&
            !populate(a, (char *)p + old, nsize - old) && !ptr) {
                /* Doomed meanwhile: a new block is refused (Lua raises a memory
                 * error, and the app's fault stands); a moved one is kept, its
                 * old block is gone. */
                free(p);
                return NULL;
        }
        a->used = a->used - old + nsize;
        if (a->used > a->peak)
                a->peak = a->used;
        return p;
}

lua_State *clua_alloc_newstate(CLuaAlloc *a, size_t cap)
{
        *a = (CLuaAlloc){.cap = cap ?: CLUA_ALLOC_DEFAULT_CAP};
        if (a->cap < CLUA_ALLOC_MIN_CAP)
                a->cap = CLUA_ALLOC_MIN_CAP;
        return lua_newstate(clua_alloc_fn, a);
}

void clua_alloc_pace_gc(CLuaAlloc *a, lua_State *L)
{
        /* Lua 5.4's defaults: pause 200 (%), step multiplier 100, step size 2^13
         * bytes. A pause of 100 (a new cycle at once) makes a heap of growing live
         * data quadratic: 24 MiB of 1 KB strings took 5.7 s instead of 0.2 s
         * (bench/lua's memory-cap case), so the pause stays above it. */
        if (a->used > a->cap / 4 * 3)
                lua_gc(L, LUA_GCINC, 120, 300, 0);
        else if (a->used > a->cap / 2)
                lua_gc(L, LUA_GCINC, 150, 200, 0);
        else
                lua_gc(L, LUA_GCINC, 200, 100, 0);
}

/* ---- memory of C libraries, charged to the app they work for ---------------- */

typedef struct ExtHeader {
        CLuaAlloc *owner; /* NULL: charged to nobody */
        size_t size;      /* bytes the caller asked for */
} ExtHeader;
_Static_assert(sizeof(ExtHeader) == 16, "the header keeps malloc's 16-byte alignment");

/* Whether a may grow by n more bytes. */
static bool ext_fits(CLuaAlloc *a, size_t n)
{
        if (!a)
                return true;
        if (a->used > a->cap || n > a->cap - a->used) {
                a->ext_refused++;
                return false;
        }
        return true;
}

static void ext_charge(CLuaAlloc *a, size_t n)
{
        if (!a)
                return;
        a->used += n;
        if (a->used > a->peak)
                a->peak = a->used;
}

void *clua_ext_malloc(size_t n)
{
        CLuaAlloc *a = clua_alloc_current;
        ExtHeader *h;

        if (n > SIZE_MAX - sizeof(*h) || !ext_fits(a, n + sizeof(*h)))
                return NULL;
        h = malloc(sizeof(*h) + n);
        if (!h)
                return NULL;
        h->owner = a;
        h->size = n;
        ext_charge(a, n + sizeof(*h));
        return h + 1;
}

void clua_ext_free(void *p)
{
        ExtHeader *h;

        if (!p)
                return;
        h = (ExtHeader *)p - 1;
        if (h->owner)
                h->owner->used -= h->size + sizeof(*h);
        free(h);
}

void *clua_ext_realloc(void *p, size_t n)
{
        ExtHeader *h, *nh;
        CLuaAlloc *a;
        size_t old;

        if (!p)
                return clua_ext_malloc(n);
        if (n == 0) {
                clua_ext_free(p);
                return NULL;
        }
        h = (ExtHeader *)p - 1;
        a = h->owner;
        old = h->size;
        if (n > SIZE_MAX - sizeof(*h) || (n > old && !ext_fits(a, n - old)))
                return NULL;
        nh = realloc(h, sizeof(*nh) + n);
        if (!nh)
                return NULL;
        nh->size = n;
        if (a) {
                a->used -= old;
                ext_charge(a, n);
        }
        return nh + 1;
}

size_t clua_ext_size(void *p)
{
        return p ? ((ExtHeader *)p - 1)->size : 0;
}

static void *sqlite_malloc(int n)
{
        return n < 0 ? NULL : clua_ext_malloc((size_t)n);
}

static void *sqlite_realloc(void *p, int n)
{
        return n < 0 ? NULL : clua_ext_realloc(p, (size_t)n);
}

static int sqlite_size(void *p)
{
        return (int)clua_ext_size(p);
}

static int sqlite_roundup(int n)
{
        return (n + 7) & ~7;
}

static int sqlite_init(void *ud)
{
        (void)ud;
        return SQLITE_OK;
}

static void sqlite_shutdown(void *ud)
{
        (void)ud;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_result;

static void global_init(void)
{
        static const sqlite3_mem_methods mem = {
                .xMalloc = sqlite_malloc,
                .xFree = clua_ext_free,
                .xRealloc = sqlite_realloc,
                .xSize = sqlite_size,
                .xRoundup = sqlite_roundup,
                .xInit = sqlite_init,
                .xShutdown = sqlite_shutdown,
        };
        CLuaAlloc *saved = clua_alloc_current;

        json_set_alloc_funcs(clua_ext_malloc, clua_ext_free);
        clua_alloc_current = NULL;
        if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mem) != SQLITE_OK)
                global_result = -EBUSY;
        (void)sqlite3_initialize();
        clua_alloc_current = saved;
}

int clua_alloc_global_init(void)
{
        pthread_once(&global_once, global_init);
        return global_result;
}

int clua_alloc_raise_memory(lua_State *L)
{
        CLuaAlloc *a = clua_alloc_current;

        if (a && a->cap < SIZE_MAX / 2)
                (void)lua_newuserdatauv(L, a->cap + 1, 0);
        return luaL_error(L, "not enough memory");
}

bool clua_alloc_current_overtime(void)
{
        CLuaAlloc *a = clua_alloc_current;
        uint64_t stop;

        if (!a || !a->soft_stop_ns)
                return false;
        stop = *a->soft_stop_ns;
        return stop && clua_thread_cpu_ns() >= stop;
}
