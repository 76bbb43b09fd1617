/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/lua/state: the cost of one cella-lua app state against a plain Lua
 * state (docs/benchmarks.md "Lua"). Run by bench/lua/run; prints one JSON
 * object per line.
 *
 *   state create [BATCH [BATCHES]]
 *     Times BATCH (default 2000, 1..1000000) creations and frees of each kind
 *     of state, BATCHES times (default 11, 1..1000), the kinds interleaved
 *     batch by batch so that drift on the machine hits them alike, and prints
 *     {"kind": K, "us": [per-state µs of each batch]}. Then the Lua heap of an
 *     idle state, {"heap": K, "bytes": B, "bytes_gc": B after a full collection}.
 *     Kinds:
 *       plain-newstate   luaL_newstate() + lua_close(): the floor
 *       plain-openlibs   luaL_newstate() + luaL_openlibs() + lua_close()
 *       clua-newstate    clua_alloc_newstate() + lua_close(): the counting
 *                        allocator, no library
 *       clua-host        clua_host_new() + clua_host_free(), no app: the
 *                        watchdog's timer, epoll, private stats
 *       clua-app         clua_app_new() + clua_app_free(): a host and one app
 *                        with the allowlisted library (the target's figure)
 *       clua-packed      clua_host_add() of BATCH apps into one host, then
 *                        clua_host_free(): an app's share in packed mode
 *
 *   state layout
 *     The layout of the stats file (src/lua/stats.h) as this build compiles it:
 *     {"host_size": B, "app_size": B, "started": OFF, "state": OFF, "memory_bytes": OFF}
 *     (offsets in bytes, of CLuaStatsHost.started and of CLuaStatsApp's fields), so
 *     the runner reads the file the host writes whatever the header's padding.
 *
 *   state many N
 *     The plain-Lua side of 10,000 idle packed apps: N (1..100000) states in
 *     this one process, each luaL_newstate() + luaL_openlibs() and the chunk
 *     `require("cella.timer").after(3600, function() end)` run, with a
 *     cella.timer in package.preload whose after() keeps the function in the
 *     state's registry. Prints {"many": N, "seconds": S, "rss_kib": R,
 *     "pss_kib": P, "base_rss_kib": R0} (R0: this process before the states).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua/alloc.h"
#include "lua/env.h"
#include "lua/host.h"

#define BATCH_MAX   1000000L
#define BATCHES_MAX 1000L
#define MANY_MAX    100000L
#define IDLE_CHUNK  "local t = 1"
#define TIMER_CHUNK "require(\"cella.timer\").after(3600, function() end)"

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One creation and free of each kind; returns 0 or a negative errno. */
static int one_plain_newstate(void)
{
        lua_State *L = luaL_newstate();

        if (!L)
                return -ENOMEM;
        lua_close(L);
        return 0;
}

static int one_plain_openlibs(void)
{
        lua_State *L = luaL_newstate();

        if (!L)
                return -ENOMEM;
        luaL_openlibs(L);
        lua_close(L);
        return 0;
}

static int one_clua_newstate(void)
{
        CLuaAlloc a;
        lua_State *L = clua_alloc_newstate(&a, 0);

        if (!L)
                return -ENOMEM;
        lua_close(L);
        return 0;
}

static int one_clua_host(void)
{
        CLuaHostOptions ho = {.policy = CLUA_SCHED_FAIR, .stats_fd = -1, .n_apps = 1};
        CLuaHost *h;
        int r = clua_host_new(&ho, &h);

        if (r < 0)
                return r;
        clua_host_free(h);
        return 0;
}

static int one_clua_app(void)
{
        CLuaApp *app;
        int r = clua_app_new(NULL, &app);

        if (r < 0)
                return r;
        clua_app_free(app);
        return 0;
}

/* Times n creations+frees with fn; *ret_us: µs per state. */
static int time_batch(int (*fn)(void), long n, double *ret_us)
{
        double t = now_s();

        for (long i = 0; i < n; i++) {
                int r = fn();

                if (r < 0)
                        return r;
        }
        *ret_us = (now_s() - t) * 1e6 / (double)n;
        return 0;
}

/* n apps added to one host, then the host freed; *ret_us: µs per app. */
static int time_packed(long n, double *ret_us)
{
        CLuaHostOptions ho = {.policy = CLUA_SCHED_FAIR, .stats_fd = -1, .n_apps = (uint32_t)n};
        CLuaAppSpec spec = {.channel_fd = -1, .log_fd = -1};
        CLuaHost *h;
        double t = now_s();
        int r = clua_host_new(&ho, &h);

        if (r < 0)
                return r;
        for (long i = 0; i < n; i++) {
                CLuaApp *app;

                r = clua_host_add(h, &spec, &app);
                if (r < 0) {
                        clua_host_free(h);
                        return r;
                }
        }
        clua_host_free(h);
        *ret_us = (now_s() - t) * 1e6 / (double)n;
        return 0;
}

static const struct {
        const char *kind;
        int (*fn)(void); /* NULL: clua-packed */
} kinds[] = {
        {"plain-newstate", one_plain_newstate},
        {"plain-openlibs", one_plain_openlibs},
        {"clua-newstate", one_clua_newstate},
        {"clua-host", one_clua_host},
        {"clua-app", one_clua_app},
        {"clua-packed", NULL},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

/* Lua's own count of a state's heap, bytes (Lua 5.4 manual, lua_gc). */
static size_t plain_heap(lua_State *L)
{
        return (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
}

/* The heap of an idle app of each kind after IDLE_CHUNK ran. */
static int print_heaps(void)
{
        CLuaApp *app;
        size_t before, after;
        char *msg = NULL;
        lua_State *L;
        int r;

        L = luaL_newstate();
        if (!L)
                return -ENOMEM;
        luaL_openlibs(L);
        if (luaL_dostring(L, IDLE_CHUNK) != LUA_OK) {
                lua_close(L);
                return -EINVAL;
        }
        after = plain_heap(L);
        lua_gc(L, LUA_GCCOLLECT);
        printf("{\"heap\": \"plain-openlibs\", \"bytes\": %zu, \"bytes_gc\": %zu}\n", after,
               plain_heap(L));
        lua_close(L);

        L = luaL_newstate();
        if (!L)
                return -ENOMEM;
        before = plain_heap(L);
        lua_close(L);
        printf("{\"heap\": \"plain-newstate\", \"bytes\": %zu, \"bytes_gc\": %zu}\n", before,
               before);

        r = clua_app_new(NULL, &app);
        if (r < 0)
                return r;
        before = app->alloc.used;
        if (clua_load(app, IDLE_CHUNK, strlen(IDLE_CHUNK), "=idle", &msg) != CLUA_OK ||
            clua_call(app, 0, 0, &msg) != CLUA_OK) {
                fprintf(stderr, "state: idle chunk: %s\n", msg ?: "failed");
                free(msg);
                clua_app_free(app);
                return -EINVAL;
        }
        after = app->alloc.used;
        lua_gc(app->L, LUA_GCCOLLECT);
        printf("{\"heap\": \"clua-app-new\", \"bytes\": %zu, \"bytes_gc\": %zu}\n", before, before);
        printf("{\"heap\": \"clua-app\", \"bytes\": %zu, \"bytes_gc\": %zu}\n", after,
               app->alloc.used);
        clua_app_free(app);
        return 0;
}

static int cmd_create(long batch, long batches)
{
        double *us = calloc(N_KINDS * (size_t)batches, sizeof(double));
        double warm;
        int r = 0;

        if (!us)
                return -ENOMEM;
        /* One batch each first: page faults of a fresh heap, the dynamic loader. */
        for (size_t k = 0; k < N_KINDS && r >= 0; k++)
                r = kinds[k].fn ? time_batch(kinds[k].fn, batch, &warm) : time_packed(batch, &warm);
        for (long b = 0; b < batches && r >= 0; b++)
                for (size_t k = 0; k < N_KINDS && r >= 0; k++) {
                        double *slot = &us[k * (size_t)batches + (size_t)b];

                        r = kinds[k].fn ? time_batch(kinds[k].fn, batch, slot)
                                        : time_packed(batch, slot);
                }
        for (size_t k = 0; k < N_KINDS && r >= 0; k++) {
                printf("{\"kind\": \"%s\", \"batch\": %ld, \"us\": [", kinds[k].kind, batch);
                for (long b = 0; b < batches; b++)
                        printf("%s%.3f", b ? ", " : "", us[k * (size_t)batches + (size_t)b]);
                printf("]}\n");
        }
        free(us);
        if (r < 0)
                return r;
        return print_heaps();
}

/* cella.timer.after(seconds, fn) of the plain side: keeps fn in the registry,
 * as a pending timer would. */
static int fake_after(lua_State *L)
{
        luaL_checknumber(L, 1);
        luaL_checktype(L, 2, LUA_TFUNCTION);
        lua_pushvalue(L, 2);
        lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
        return 1;
}

static int fake_timer_module(lua_State *L)
{
        lua_newtable(L);
        lua_pushcfunction(L, fake_after);
        lua_setfield(L, -2, "after");
        return 1;
}

/* The kB figure of field (e.g. "VmRSS:") in a /proc file, or -1. */
static long proc_kib(const char *path, const char *field)
{
        char line[256];
        long v = -1;
        FILE *f = fopen(path, "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, strlen(field)) == 0) {
                        v = strtol(line + strlen(field), NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

static int cmd_many(long n)
{
        lua_State **states = calloc((size_t)n, sizeof(*states));
        long base = proc_kib("/proc/self/status", "VmRSS:");
        double t;
        long i;
        int r = 0;

        if (!states)
                return -ENOMEM;
        t = now_s();
        for (i = 0; i < n; i++) {
                lua_State *L = luaL_newstate();

                if (!L) {
                        r = -ENOMEM;
                        break;
                }
                states[i] = L;
                luaL_openlibs(L);
                luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
                lua_pushcfunction(L, fake_timer_module);
                lua_setfield(L, -2, "cella.timer");
                lua_pop(L, 1);
                if (luaL_dostring(L, TIMER_CHUNK) != LUA_OK) {
                        fprintf(stderr, "state: %s\n", lua_tostring(L, -1));
                        r = -EINVAL;
                        break;
                }
        }
        t = now_s() - t;
        if (r >= 0)
                printf("{\"many\": %ld, \"seconds\": %.4f, \"rss_kib\": %ld, \"pss_kib\": %ld, "
                       "\"base_rss_kib\": %ld}\n",
                       n, t, proc_kib("/proc/self/status", "VmRSS:"),
                       proc_kib("/proc/self/smaps_rollup", "Pss:"), base);
        for (i = 0; i < n; i++)
                if (states[i])
                        lua_close(states[i]);
        free(states);
        return r;
}

static int cmd_layout(void)
{
        printf("{\"host_size\": %zu, \"app_size\": %zu, \"started\": %zu, \"state\": %zu, "
               "\"memory_bytes\": %zu}\n",
               sizeof(CLuaStatsHost), sizeof(CLuaStatsApp), offsetof(CLuaStatsHost, started),
               offsetof(CLuaStatsApp, state), offsetof(CLuaStatsApp, memory_bytes));
        return 0;
}

static long arg_long(const char *s, long lo, long hi, long def)
{
        char *end;
        long v;

        if (!s)
                return def;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || *end || v < lo || v > hi)
                return -1;
        return v;
}

int main(int argc, char **argv)
{
        int r;

        if (argc >= 2 && strcmp(argv[1], "create") == 0 && argc <= 4) {
                long batch = arg_long(argc > 2 ? argv[2] : NULL, 1, BATCH_MAX, 2000);
                long batches = arg_long(argc > 3 ? argv[3] : NULL, 1, BATCHES_MAX, 11);

                if (batch < 0 || batches < 0)
                        goto usage;
                r = cmd_create(batch, batches);
        } else if (argc == 2 && strcmp(argv[1], "layout") == 0) {
                r = cmd_layout();
        } else if (argc == 3 && strcmp(argv[1], "many") == 0) {
                long n = arg_long(argv[2], 1, MANY_MAX, 0);

                if (n < 0)
                        goto usage;
                r = cmd_many(n);
        } else
                goto usage;
        if (r < 0) {
                fprintf(stderr, "state: %s\n", strerror(-r));
                return 1;
        }
        return 0;
usage:
        fprintf(stderr, "usage: state create [BATCH [BATCHES]] | state layout | state many N\n");
        return 2;
}
