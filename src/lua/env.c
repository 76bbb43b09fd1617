/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The per-app Lua environment: allowlisted library, read-only library tables,
 * limit errors the app cannot catch (docs/lua-api.md "Allowlist", "Limits").
 *
 * Nothing of the standard library is opened in an app's state: the allowlisted
 * functions are light C functions (no upvalues), taken once per process from a
 * template state, and each global (a base function or a library table) is put
 * into the app's globals only when the app first reads it (the globals' hidden
 * metatable). An idle app that never touches `math` pays nothing for it, which
 * keeps a state at a few KiB (bench/lua). Anything that could observe the
 * difference (getmetatable/setmetatable of _G, pairs(_G)) first materializes the
 * whole library and drops the hidden metatable, so the globals then behave as
 * a plain table holding exactly the allowlist.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "base/macro.h"
#include "lua/env.h"
#include "lua/host.h"
#include "lua/lua-modules.h"

/* Registry keys (addresses are unique). */
static const char key_loaded = 0;  /* package.loaded: name -> value returned by a loader */
static const char key_loading = 0; /* name -> true while its loader runs (cycles) */
static const char key_package = 0; /* the app's package table */
static const char key_libs = 0;    /* library name -> its table */
static const char key_lazy_mt = 0; /* the globals' hidden metatable */

/* Longest module name require accepts, bytes. */
#define REQUIRE_NAME_MAX 256
/* Largest module file require loads, bytes: source code, not data (Penlight's
 * largest module is 60 KiB). */
#define MODULE_FILE_MAX (4u * 1024 * 1024)
/* Most module files one app loads (a cycle through distinct names ends at Lua's
 * C-stack limit of 200 nested calls long before). */
#define MODULE_FILES_MAX 4096
/* The default package.path: relative to the app's folder, Lua's "./?.lua" and
 * "./?/init.lua" (luaconf.h LUA_PATH_DEFAULT without the system folders). */
#define MODULE_PATH_DEFAULT "./?.lua;./?/init.lua"

CLuaApp *clua_app_of(lua_State *L)
{
        /* Lua 5.4 copies the main thread's extra space into every new thread. The
         * host tags its task threads in bit 0 (a CLuaApp is malloc-aligned). */
        return (CLuaApp *)(*(uintptr_t *)lua_getextraspace(L) & ~(uintptr_t)1);
}

/* ---- the template: light C functions of the standard library ----------------- */

static const char *const base_names[] = {
        "assert", "error",  "getmetatable", "ipairs",   "next", "pairs", "rawequal",     "rawget",
        "rawlen", "select", "tonumber",     "tostring", "type", "load",  "setmetatable", NULL,
};
/* find, match, gmatch, gsub, rep: cella's own (clua_string_fns). */
static const char *const string_names[] = {
        "byte",     "char",    "format", "len",    "lower", "pack",
        "packsize", "reverse", "sub",    "unpack", "upper", NULL,
};
/* concat, insert, remove, move, unpack: cella's own (clua_table_fns); sort in Lua. */
static const char *const table_names[] = {"pack", "sort", NULL};
static const char *const math_names[] = {
        "abs", "ceil", "cos",  "deg", "exp",       "floor", "fmod", "log",  "max",  "min",  "modf",
        "rad", "sin",  "sqrt", "tan", "tointeger", "type",  "ult",  "acos", "asin", "atan", NULL,
};
static const char *const utf8_names[] = {"char", "codepoint", "codes", "len", "offset", NULL};
static const char *const coroutine_names[] = {"create", "isyieldable", "running",
                                              "status", "yield",       NULL};
static const char *const os_names[] = {"clock", "date", "difftime", "time", NULL};
/* getinfo is wrapped (app_getinfo): no 'f' option. */
static const char *const debug_names[] = {"traceback", "getinfo", NULL};
/* The strings' arithmetic metamethods (lstrlib.c stringmetamethods): "10" + 1
 * converts the string as Lua 5.4 does. */
static const char *const strmeta_names[] = {"__add", "__sub",  "__mul", "__mod", "__pow",
                                            "__div", "__idiv", "__unm", NULL};

typedef struct StdLib {
        const char *name;
        const char *const *names;
        lua_CFunction *fns; /* filled by template_init, parallel to names */
} StdLib;

static lua_CFunction base_fns[16], string_fns[17], table_fns[8], math_fns[22], utf8_fns[6],
        coroutine_fns[6], os_fns[5], debug_fns[3], strmeta_fns[9];

static StdLib std_libs[] = {
        {"_G", base_names, base_fns},      {"string", string_names, string_fns},
        {"table", table_names, table_fns}, {"math", math_names, math_fns},
        {"utf8", utf8_names, utf8_fns},    {"coroutine", coroutine_names, coroutine_fns},
        {"os", os_names, os_fns},          {"debug", debug_names, debug_fns},
};

static pthread_once_t template_once = PTHREAD_ONCE_INIT;
static bool template_ok;

/* Opens the standard library once in a scratch state and keeps the pointers of
 * the allowlisted functions: they are static functions of liblua, valid in any
 * state. A function with upvalues (math.random) cannot be taken this way: the
 * allowlist has none of those. */
static void template_init(void)
{
        lua_State *T;

        (void)clua_alloc_global_init();
        T = luaL_newstate();
        if (!T)
                return;
        luaL_openlibs(T);
        template_ok = true;
        for (size_t l = 0; l < sizeof(std_libs) / sizeof(std_libs[0]); l++) {
                lua_getglobal(T, std_libs[l].name);
                for (size_t i = 0; std_libs[l].names[i]; i++) {
                        lua_getfield(T, -1, std_libs[l].names[i]);
                        if (!lua_iscfunction(T, -1) || lua_getupvalue(T, -1, 1)) {
                                template_ok = false;
                                lua_settop(T, 1);
                                continue;
                        }
                        std_libs[l].fns[i] = lua_tocfunction(T, -1);
                        lua_pop(T, 1);
                }
                lua_pop(T, 1);
        }
        lua_pushliteral(T, "");
        if (!lua_getmetatable(T, -1)) {
                template_ok = false;
        } else {
                for (size_t i = 0; strmeta_names[i]; i++) {
                        lua_getfield(T, -1, strmeta_names[i]);
                        if (!lua_iscfunction(T, -1) || lua_getupvalue(T, -1, 1)) {
                                template_ok = false;
                                lua_settop(T, 2);
                                continue;
                        }
                        strmeta_fns[i] = lua_tocfunction(T, -1);
                        lua_pop(T, 1);
                }
        }
        lua_close(T);
}

static bool template_get(void)
{
        pthread_once(&template_once, template_init);
        return template_ok;
}

lua_CFunction clua_std_function(const char *lib, const char *name)
{
        if (!template_get())
                return NULL;
        for (size_t l = 0; l < sizeof(std_libs) / sizeof(std_libs[0]); l++) {
                if (strcmp(std_libs[l].name, lib) != 0)
                        continue;
                for (size_t i = 0; std_libs[l].names[i]; i++)
                        if (strcmp(std_libs[l].names[i], name) == 0)
                                return std_libs[l].fns[i];
        }
        return NULL;
}

static lua_CFunction std_fn(const StdLib *lib, const char *name)
{
        for (size_t i = 0; lib->names[i]; i++)
                if (strcmp(lib->names[i], name) == 0)
                        return lib->fns[i];
        return NULL;
}

/* ---- limit errors, preemption ------------------------------------------------ */

const char *clua_fault_message(CLuaApp *app, char *buf, size_t size)
{
        if (app->doomed == CLUA_MEMORY)
                snprintf(buf, size, "memory limit of %zu bytes exceeded", app->alloc.cap);
        else if (app->doomed == CLUA_EXITING)
                snprintf(buf, size, "app.exit(%d)", app->exit_code);
        else if (app->doomed == CLUA_CPU_SLICE)
                snprintf(buf, size,
                         "could not be preempted for %llu ms past its slice (Lua code called "
                         "from C, or a long C call)",
                         (unsigned long long)(CLUA_NOPREEMPT_NS / 1000000u));
        else
                snprintf(buf, size, "%s", app->cpu_msg);
        return buf;
}

/* The count hook armed once the app is doomed: raises at every instruction. */
static void doom_hook(lua_State *L, lua_Debug *ar)
{
        CLuaApp *app = clua_app_of(L);
        char buf[160];

        (void)ar;
        lua_pushstring(L, clua_fault_message(app, buf, sizeof(buf)));
        lua_error(L);
}

static void arm_doom_hook(lua_State *L)
{
        lua_sethook(L, doom_hook, LUA_MASKCOUNT, 1);
}

/* Arms the host's timer to fire at CPU time at_ns (now: the clock's value). */
static void arm_at(CLuaHost *h, uint64_t now, uint64_t at_ns)
{
        (void)clua_watchdog_arm(&h->watchdog, at_ns > now ? at_ns - now : 1, 0);
}

/* The running thread cannot yield (inside a metamethod or a __tostring called
 * from C): no hook (a count hook keeps the VM on its slow path), but the
 * watchdog again in CLUA_PREEMPT_RETRY_NS of CPU, or sooner when the budget or
 * the overrun allowance ends. The watchdog's signal is blocked meanwhile, so its
 * handler cannot doom the app between the hook's removal and the re-arming. */
static void preempt_later(CLuaApp *app, lua_State *L)
{
        CLuaHost *h = app->host;
        sigset_t set, old;
        uint64_t now, at;

        sigemptyset(&set);
        sigaddset(&set, SIGRTMIN);
        pthread_sigmask(SIG_BLOCK, &set, &old);
        if (!app->doomed) {
                lua_sethook(L, NULL, 0, 0);
                now = clua_thread_cpu_ns();
                at = now + CLUA_PREEMPT_RETRY_NS;
                if (at > h->budget_end_ns)
                        at = h->budget_end_ns;
                if (h->overrun_end_ns && at > h->overrun_end_ns)
                        at = h->overrun_end_ns;
                arm_at(h, now, at);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The count hook armed when a slice ends: yields the running thread to the host
 * (through the app's own coroutines: aux_resume passes the yield up). Where the
 * thread cannot yield, preempt_later() tries again a little later. */
static void preempt_hook(lua_State *L, lua_Debug *ar)
{
        CLuaApp *app = clua_app_of(L);

        (void)ar;
        if (app->doomed) {
                doom_hook(L, ar);
                return;
        }
        if (!lua_isyieldable(L)) {
                preempt_later(app, L);
                return;
        }
        lua_sethook(L, NULL, 0, 0);
        app->host_yield = CLUA_YIELD_PREEMPT;
        lua_yield(L, 0);
}

/* Dooms the running app from the signal handler: the doom hook on its thread,
 * and the grace period armed. */
static void doom_from_signal(CLuaHost *h, CLuaApp *app, lua_State *L, int f, uint64_t now)
{
        app->doomed = f;
        if (L)
                arm_doom_hook(L);
        h->grace_end_ns = now + CLUA_GRACE_NS;
        arm_at(h, now, h->grace_end_ns);
}

/* Watchdog handler (signal context): only flags, lua_sethook, clock_gettime and
 * timer_settime, all async-signal-safe (Lua 5.4 manual 4.7; POSIX). The timer is
 * one-shot; each expiry decides from the thread's CPU clock what has ended. */
static void on_watchdog(void *ud)
{
        CLuaHost *h = ud;
        CLuaApp *app = h->running;
        lua_State *L;
        uint64_t now, at;

        if (!app)
                return;
        L = app->running;
        now = clua_thread_cpu_ns();
        if (app->doomed) {
                ssize_t n;

                /* Doomed by clua_doom or check_fatal (app.exit, a memory fault):
                 * no grace period was started; it starts now, as for a CPU doom. */
                if (!h->grace_end_ns) {
                        doom_from_signal(h, app, L, app->doomed, now);
                        return;
                }
                if (now < h->grace_end_ns) {
                        arm_at(h, now, h->grace_end_ns);
                        return;
                }
                /* The app burnt CLUA_GRACE_NS more CPU since it was doomed without
                 * running a Lua instruction or a polling C loop. Nothing else can
                 * stop it. */
                n = write(STDERR_FILENO, "cella-lua: ", 11);
                n = write(STDERR_FILENO, app->cpu_msg, strlen(app->cpu_msg));
                n = write(STDERR_FILENO, " (outside Lua code)\n", 20);
                (void)n;
                _exit(CLUA_EXIT_CPU);
        }
        if (now >= h->budget_end_ns) {
                doom_from_signal(h, app, L, h->budget_for, now);
                return;
        }
        if (h->overrun_end_ns && now >= h->overrun_end_ns) {
                doom_from_signal(h, app, L, CLUA_CPU_SLICE, now);
                return;
        }
        /* The slice ended (or a retry after preempt_later): preempt at the next
         * Lua instruction; watch for the budget and, in a host of several apps,
         * for an app that does not get preempted past its slice's end. */
        if (!h->overrun_end_ns && now >= h->slice_end_ns) {
                h->overrun_end_ns = h->nopreempt_ns ? now + h->nopreempt_ns : UINT64_MAX;
                h->soft_stop_ns = h->nopreempt_ns ? now + h->nopreempt_ns / 2 : 0;
        }
        if (L)
                lua_sethook(L, preempt_hook, LUA_MASKCOUNT, 1);
        at = h->overrun_end_ns ? h->overrun_end_ns : h->slice_end_ns;
        if (h->budget_end_ns < at)
                at = h->budget_end_ns;
        arm_at(h, now, at);
}

/* The wall-clock timer of a host of several apps (signal context): the slice has
 * taken CLUA_SLICE_WALL_FACTOR slices of wall time (the app was blocked in I/O):
 * preempt it at its next Lua instruction, as at the end of its CPU slice, but
 * without starting the allowance of CLUA_NOPREEMPT_NS (that is CPU's). */
static void on_wall(void *ud)
{
        CLuaHost *h = ud;
        CLuaApp *app = h->running;

        if (!app || app->doomed || !app->running)
                return;
        lua_sethook(app->running, preempt_hook, LUA_MASKCOUNT, 1);
}

void clua_env_wall_handler(void *ud)
{
        on_wall(ud);
}

int clua_env_arm(CLuaApp *app, uint64_t slice_ns, uint64_t budget_ns, int budget_for)
{
        CLuaHost *h = app->host;
        uint64_t now = clua_thread_cpu_ns();

        if (!budget_ns)
                return -EINVAL;
        h->running = NULL; /* no handler in between */
        h->budget_end_ns = now + budget_ns;
        h->budget_for = budget_for;
        h->slice_end_ns = slice_ns && slice_ns < budget_ns ? now + slice_ns : h->budget_end_ns;
        /* No slice: the budget alone; the hook is never armed to preempt. */
        h->overrun_end_ns = slice_ns && slice_ns < budget_ns ? 0 : UINT64_MAX;
        h->grace_end_ns = 0;
        h->soft_stop_ns = 0;
        h->running = app;
        return clua_watchdog_arm(&h->watchdog,
                                 slice_ns && slice_ns < budget_ns ? slice_ns : budget_ns, 0);
}

void clua_raise_doomed(lua_State *L)
{
        char buf[160];
        CLuaApp *app = clua_app_of(L);

        if (!app->doomed)
                return;
        arm_doom_hook(L);
        lua_pushstring(L, clua_fault_message(app, buf, sizeof(buf)));
        lua_error(L);
}

int clua_doom(lua_State *L, CLuaFault f)
{
        CLuaApp *app = clua_app_of(L);
        char buf[160];

        if (!app->doomed)
                app->doomed = f;
        arm_doom_hook(L);
        lua_pushstring(L, clua_fault_message(app, buf, sizeof(buf)));
        return lua_error(L);
}

/* Called with an error object on top of L after a protected call failed with
 * status: re-raises it (and keeps raising) if it is a limit error. */
static void check_fatal(lua_State *L, int status)
{
        CLuaApp *app = clua_app_of(L);

        if (status == LUA_ERRMEM && !app->doomed)
                app->doomed = CLUA_MEMORY;
        if (app->doomed) {
                arm_doom_hook(L);
                lua_error(L);
        }
}

/* ---- base wrappers ----------------------------------------------------------- */

static int finish_pcall(lua_State *L, int status, lua_KContext extra)
{
        if (status != LUA_OK && status != LUA_YIELD) {
                check_fatal(L, status);
                lua_pushboolean(L, 0);
                lua_pushvalue(L, -2);
                return 2;
        }
        return lua_gettop(L) - (int)extra;
}

/* pcall as lbaselib.c's luaB_pcall, but limit errors pass through. */
static int app_pcall(lua_State *L)
{
        int status;

        luaL_checkany(L, 1);
        lua_pushboolean(L, 1);
        lua_insert(L, 1);
        status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
        return finish_pcall(L, status, 0);
}

/* The message handler xpcall installs around the app's (upvalue 1): a limit
 * error skips it. A limit error is raised from the doom hook, and Lua runs the
 * handler before unwinding, still inside the hook, where hooks are off: the
 * app's handler would run out of the watchdog's reach. */
static int xpcall_handler(lua_State *L)
{
        if (clua_app_of(L)->doomed)
                return 1;
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 1);
        lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
        return lua_gettop(L);
}

/* xpcall as lbaselib.c's luaB_xpcall, but limit errors pass through. */
static int app_xpcall(lua_State *L)
{
        int n = lua_gettop(L), status;

        luaL_checktype(L, 2, LUA_TFUNCTION);
        lua_pushvalue(L, 2);
        lua_pushcclosure(L, xpcall_handler, 1);
        lua_replace(L, 2);
        lua_pushboolean(L, 1);
        lua_pushvalue(L, 1);
        lua_rotate(L, 3, 2);
        status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
        return finish_pcall(L, status, 2);
}

/* Bytes the parser gets per call of load's reader: between two, a doomed app's
 * load stops (a chunk of many MiB takes a second or more to compile, C work no
 * hook reaches). */
#define LOAD_PIECE (64 * 1024)

typedef struct LoadReader {
        const char *s;
        size_t left;
} LoadReader;

static const char *load_reader(lua_State *L, void *ud, size_t *size)
{
        LoadReader *r = ud;
        const char *p = r->s;

        if (clua_app_of(L)->doomed || r->left == 0) {
                *size = 0;
                return NULL;
        }
        *size = r->left < LOAD_PIECE ? r->left : LOAD_PIECE;
        r->s += *size;
        r->left -= *size;
        return p;
}

/* load(chunk [, chunkname [, mode [, env]]]): strings only, text only, env
 * defaulting to the app's globals; compiled a piece at a time (LOAD_PIECE) so a
 * doomed app's compile stops. */
static int app_load(lua_State *L)
{
        int has_env = lua_gettop(L) >= 4, status;
        LoadReader r;
        const char *name;

        r.s = luaL_checklstring(L, 1, &r.left);
        name = luaL_optstring(L, 2, r.s);
        lua_settop(L, 4);
        status = lua_load(L, load_reader, &r, name, "t");
        clua_poll(L);
        if (status != LUA_OK) {
                if (status == LUA_ERRMEM)
                        check_fatal(L, status);
                luaL_pushfail(L);
                lua_insert(L, -2);
                return 2; /* nil, message */
        }
        if (has_env) {
                lua_pushvalue(L, 4);
                if (!lua_setupvalue(L, -2, 1))
                        lua_pop(L, 1);
        }
        return 1;
}

/* Work of one GC step collectgarbage takes at a time, KiB (as if this much had
 * been allocated: lua_gc LUA_GCSTEP); between steps it yields to the host when
 * its slice has ended. */
#define GC_STEP_KB 256

static void preempt_hook(lua_State *L, lua_Debug *ar);

/* collectgarbage's "collect" and "step" as a loop of GC steps that yields to
 * the host when the slice ends (the preemption hook is armed), so a collection
 * of a large heap is preempted as Lua code is. ctx: for "collect", the cycles
 * still to finish (2: the one under way, then a whole one, as luaC_fullgc); for
 * "step", -1 - the KiB of work still to do. */
static int gc_loop(lua_State *L, int status, lua_KContext ctx)
{
        CLuaApp *app = clua_app_of(L);

        (void)status;
        app->host_yield = CLUA_YIELD_NONE;
        for (;;) {
                bool cycle_done;

                clua_poll(L);
                if (ctx < 0) {
                        lua_KContext kb = -1 - ctx;
                        int step = kb < GC_STEP_KB ? (int)kb : GC_STEP_KB;

                        cycle_done = lua_gc(L, LUA_GCSTEP, step);
                        kb -= step;
                        if (cycle_done || kb <= 0) {
                                lua_pushboolean(L, cycle_done);
                                return 1;
                        }
                        ctx = -1 - kb;
                } else {
                        if (lua_gc(L, LUA_GCSTEP, GC_STEP_KB) && --ctx == 0) {
                                lua_pushinteger(L, 0);
                                return 1;
                        }
                }
                if (lua_gethook(L) == preempt_hook && lua_isyieldable(L)) {
                        lua_sethook(L, NULL, 0, 0);
                        app->host_yield = CLUA_YIELD_PREEMPT;
                        return lua_yieldk(L, 0, ctx, gc_loop);
                }
        }
}

/* collectgarbage([opt [, arg]]): "collect" (default), "count" and "step"; the
 * rest ("stop", "incremental", "generational", pause settings) are the host's.
 * "collect" and "step" run in steps the host can preempt (gc_loop). */
static int app_collectgarbage(lua_State *L)
{
        static const char *const opts[] = {"collect", "count", "step", NULL};
        int o = luaL_checkoption(L, 1, "collect", opts);

        switch (o) {
        case 0:
                lua_settop(L, 0);
                return gc_loop(L, LUA_OK, 2);
        case 1: {
                int k = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);

                lua_pushnumber(L, (lua_Number)k + ((lua_Number)b / 1024));
                return 1;
        }
        default: {
                lua_Integer kb = luaL_optinteger(L, 2, 0);

                luaL_argcheck(L, kb >= 0 && kb <= (1 << 20), 2, "step size out of range");
                if (kb == 0) {
                        lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, 0));
                        return 1;
                }
                lua_settop(L, 0);
                return gc_loop(L, LUA_OK, -1 - (lua_KContext)kb);
        }
        }
}

static void materialize_all(lua_State *L);

static bool is_globals(lua_State *L, int idx)
{
        bool r;

        if (lua_type(L, idx) != LUA_TTABLE)
                return false;
        idx = lua_absindex(L, idx);
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        r = lua_rawequal(L, idx, -1);
        lua_pop(L, 1);
        return r;
}

/* setmetatable refusing __gc: finalizers run with hooks off (lgc.c GCTM), out of
 * the watchdog's reach. On the globals, the library is first made whole. */
static int app_setmetatable(lua_State *L)
{
        if (lua_type(L, 2) == LUA_TTABLE) {
                lua_pushliteral(L, "__gc");
                if (lua_rawget(L, 2) != LUA_TNIL)
                        return luaL_error(L, "__gc metamethods are not allowed in cella-lua");
                lua_pop(L, 1);
        }
        if (is_globals(L, 1))
                materialize_all(L);
        lua_pushcfunction(L, std_fn(&std_libs[0], "setmetatable"));
        lua_insert(L, 1);
        lua_call(L, lua_gettop(L) - 1, 1);
        return 1;
}

static void push_string_lib(lua_State *L);

/* getmetatable: on the globals, the library is first made whole (and the hidden
 * metatable gone), so the app sees what it set, or nil; on a string, the string
 * library is built first, so the strings' metatable (the app's own: one per
 * lua_State) has the string table as its __index, as in plain Lua. */
static int app_getmetatable(lua_State *L)
{
        luaL_checkany(L, 1);
        if (is_globals(L, 1))
                materialize_all(L);
        if (lua_type(L, 1) == LUA_TSTRING) {
                push_string_lib(L);
                lua_pop(L, 1);
        }
        lua_pushcfunction(L, std_fn(&std_libs[0], "getmetatable"));
        lua_insert(L, 1);
        lua_call(L, lua_gettop(L) - 1, 1);
        return 1;
}

static void note_global_set(lua_State *L, int key);

/* rawset, noting an allowlisted global the app sets as its own. */
static int app_rawset(lua_State *L)
{
        luaL_checktype(L, 1, LUA_TTABLE);
        luaL_checkany(L, 2);
        luaL_checkany(L, 3);
        if (is_globals(L, 1))
                note_global_set(L, 2);
        lua_settop(L, 3);
        lua_rawset(L, 1);
        return 1;
}

/* print as lbaselib.c's, written to the app's output (its log in packed mode) in
 * one write(2) per call; what a full non-blocking log pipe does not take is
 * dropped (counted in out_dropped). */
static int app_print(lua_State *L)
{
        CLuaApp *app = clua_app_of(L);
        int n = lua_gettop(L);
        luaL_Buffer b;
        const char *s;
        size_t len;

        luaL_buffinit(L, &b);
        for (int i = 1; i <= n; i++) {
                size_t l;
                const char *p = luaL_tolstring(L, i, &l);

                if (i > 1)
                        luaL_addchar(&b, '\t');
                luaL_addvalue(&b);
                (void)p;
        }
        luaL_addchar(&b, '\n');
        luaL_pushresult(&b);
        s = lua_tolstring(L, -1, &len);
        clua_app_write(app, app->out_fd, s, len);
        return 0;
}

void clua_app_write(CLuaApp *app, int fd, const char *s, size_t len)
{
        size_t off = 0;

        while (off < len) {
                ssize_t w = RETRY_EINTR(write(fd, s + off, len - off));

                if (w <= 0) {
                        /* a full log pipe of a packed app (non-blocking): dropped */
                        app->out_dropped += len - off;
                        break;
                }
                off += (size_t)w;
        }
}

int clua_open_beneath(int dirfd, const char *path, const struct open_how *how)
{
        struct stat st;
        long fd;

        fd = RETRY_EINTR(syscall(SYS_openat2, dirfd, path, how, sizeof *how));
        if (fd < 0)
                return -errno;
        if (fstat((int)fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close((int)fd);
                return -EISDIR;
        }
        return (int)fd;
}

/* Pushes a new table with the functions of lib. */
static void push_lib_fields(lua_State *L, const StdLib *lib)
{
        int n = 0;

        while (lib->names[n])
                n++;
        lua_createtable(L, 0, n + 2);
        for (int i = 0; i < n; i++) {
                lua_pushcfunction(L, lib->fns[i]);
                lua_setfield(L, -2, lib->names[i]);
        }
}

/* ---- coroutines: the host's yields pass through the app's coroutines --------- */

static int co_resume_k(lua_State *L, int status, lua_KContext ctx);
static int co_wrap_k(lua_State *L, int status, lua_KContext ctx);

/*
 * Resumes co from L with narg arguments: lcorolib.c's auxresume, tracking the
 * running thread for the watchdog and passing limit errors through. When co
 * yields for the host (a preemption, or a task waiting for the kernel), L yields
 * too, with continuation k, which resumes co again when the host resumes L: the
 * app's coroutine sees nothing. Returns the results' count, or -1 with an error
 * message on top.
 */
void clua_env_mark_task(lua_State *co)
{
        *(uintptr_t *)lua_getextraspace(co) |= 1;
}

/* Whether co is a task of the host: the app may not resume those (the host
 * does; resuming one waiting for the kernel would steal its reply). */
static bool is_task(lua_State *co)
{
        return *(uintptr_t *)lua_getextraspace(co) & 1;
}

static int aux_resume(lua_State *L, lua_State *co, int narg, lua_KFunction k)
{
        CLuaApp *app = clua_app_of(L);
        lua_State *prev;
        int status, nres;

        if (is_task(co)) {
                lua_pushliteral(L, "cannot resume a callback's own coroutine (the host runs it)");
                return -1;
        }
        for (;;) {
                if (app->doomed) {
                        lua_pushstring(L, "doomed");
                        check_fatal(L, LUA_ERRRUN);
                }
                if (!lua_checkstack(co, narg)) {
                        lua_pushliteral(L, "too many arguments to resume");
                        return -1;
                }
                lua_xmove(L, co, narg);
                prev = app->running;
                app->running = co;
                status = lua_resume(co, L, narg, &nres);
                app->running = prev;
                if (status == LUA_YIELD && app->host_yield != CLUA_YIELD_NONE) {
                        /* co stopped for the host: nres is 0. Pass it up. */
                        lua_pop(co, nres);
                        if (lua_isyieldable(L))
                                return lua_yieldk(L, 0, 0, k);
                        /* L cannot yield (a coroutine resumed from C): keep running;
                         * a preemption is tried again later, a wait blocks. */
                        if (app->host_yield == CLUA_YIELD_PREEMPT) {
                                app->host_yield = CLUA_YIELD_NONE;
                                preempt_later(app, co);
                        }
                        narg = 0;
                        continue;
                }
                break;
        }
        if (status == LUA_OK || status == LUA_YIELD) {
                if (app->doomed) {
                        lua_pop(co, nres);
                        lua_pushliteral(L, "doomed");
                        check_fatal(L, LUA_ERRRUN);
                }
                if (!lua_checkstack(L, nres + 1)) {
                        lua_pop(co, nres);
                        lua_pushliteral(L, "too many results to resume");
                        return -1;
                }
                lua_xmove(co, L, nres);
                return nres;
        }
        lua_xmove(co, L, 1);
        check_fatal(L, status);
        return -1;
}

static int finish_co_resume(lua_State *L, int r)
{
        if (r < 0) {
                lua_pushboolean(L, 0);
                lua_insert(L, -2);
                return 2;
        }
        lua_pushboolean(L, 1);
        lua_insert(L, -(r + 1));
        return r + 1;
}

/* Stack of coroutine.resume while co runs: [co]. */
static int co_resume_k(lua_State *L, int status, lua_KContext ctx)
{
        (void)status;
        (void)ctx;
        clua_app_of(L)->host_yield = CLUA_YIELD_NONE;
        return finish_co_resume(L, aux_resume(L, lua_tothread(L, 1), 0, co_resume_k));
}

static int app_co_resume(lua_State *L)
{
        lua_State *co = lua_tothread(L, 1);

        luaL_argexpected(L, co, 1, "coroutine");
        return finish_co_resume(L, aux_resume(L, co, lua_gettop(L) - 1, co_resume_k));
}

static int finish_wrap(lua_State *L, int r)
{
        if (r < 0)
                return lua_error(L);
        return r;
}

static int co_wrap_k(lua_State *L, int status, lua_KContext ctx)
{
        (void)status;
        (void)ctx;
        clua_app_of(L)->host_yield = CLUA_YIELD_NONE;
        return finish_wrap(L, aux_resume(L, lua_tothread(L, lua_upvalueindex(1)), 0, co_wrap_k));
}

static int wrap_aux(lua_State *L)
{
        lua_State *co = lua_tothread(L, lua_upvalueindex(1));

        return finish_wrap(L, aux_resume(L, co, lua_gettop(L), co_wrap_k));
}

static int app_co_wrap(lua_State *L)
{
        luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_State *co = lua_newthread(L);

        lua_pushvalue(L, 1);
        lua_xmove(L, co, 1);
        lua_pushcclosure(L, wrap_aux, 1);
        return 1;
}

/* ---- math.random: xoshiro256** per state (as lmathlib.c; its own closure has an
 * upvalue and cannot come from the template) --------------------------------- */

typedef struct RanState {
        uint64_t s[4];
} RanState;

static uint64_t rotl(uint64_t x, int n)
{
        return (x << n) | (x >> (64 - n));
}

static uint64_t next_rand(RanState *r)
{
        uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return res;
}

static void seed_rand(RanState *r, uint64_t a, uint64_t b)
{
        r->s[0] = a;
        r->s[1] = 0xff; /* as lmathlib.c setseed: avoid a zero state */
        r->s[2] = b;
        r->s[3] = 0;
        for (int i = 0; i < 16; i++)
                (void)next_rand(r);
}

/* Random integer in [0, n]: lmathlib.c's "project" by rejection. */
static uint64_t project(uint64_t ran, uint64_t n, RanState *r)
{
        uint64_t lim = n;

        if ((n & (n + 1)) == 0)
                return ran & n;
        lim |= lim >> 1;
        lim |= lim >> 2;
        lim |= lim >> 4;
        lim |= lim >> 8;
        lim |= lim >> 16;
        lim |= lim >> 32;
        while ((ran &= lim) > n)
                ran = next_rand(r);
        return ran;
}

static int math_random(lua_State *L)
{
        RanState *r = lua_touserdata(L, lua_upvalueindex(1));
        uint64_t rv = next_rand(r);
        lua_Integer low, up;

        switch (lua_gettop(L)) {
        case 0:
                lua_pushnumber(L, (lua_Number)(rv >> 11) * 0x1.0p-53);
                return 1;
        case 1:
                low = 1;
                up = luaL_checkinteger(L, 1);
                if (up == 0) {
                        lua_pushinteger(L, (lua_Integer)rv);
                        return 1;
                }
                break;
        case 2:
                low = luaL_checkinteger(L, 1);
                up = luaL_checkinteger(L, 2);
                break;
        default:
                return luaL_error(L, "wrong number of arguments");
        }
        luaL_argcheck(L, low <= up, lua_gettop(L), "interval is empty");
        lua_pushinteger(
                L, (lua_Integer)(project(rv, (uint64_t)up - (uint64_t)low, r) + (uint64_t)low));
        return 1;
}

static int math_randomseed(lua_State *L)
{
        RanState *r = lua_touserdata(L, lua_upvalueindex(1));

        if (lua_isnone(L, 1)) {
                uint64_t a = arc4random(), b = arc4random();

                seed_rand(r, a << 32 | arc4random(), b << 32 | arc4random());
                return 0;
        }
        seed_rand(r, (uint64_t)luaL_checkinteger(L, 1), (uint64_t)luaL_optinteger(L, 2, 0));
        return 0;
}

/* ---- the globals, put in place on first read --------------------------------- */

typedef enum GlobalKind { G_STD, G_FN, G_LIB, G_VERSION, G_SELF, G_PACKAGE } GlobalKind;

typedef struct Global {
        const char *name;
        GlobalKind kind;
        lua_CFunction fn; /* G_FN */
} Global;

static int build_string(lua_State *L);
static int build_table(lua_State *L);
static int build_math(lua_State *L);
static int build_utf8(lua_State *L);
static int build_coroutine(lua_State *L);
static int build_os(lua_State *L);
static int build_debug(lua_State *L);
static int build_io(lua_State *L);
static int app_require(lua_State *L);
static void push_package(lua_State *L);

/* Sorted by name (bsearch). Bit i of CLuaApp.lazy_done is globals[i]. */
static const Global globals[] = {
        {"_G", G_SELF, NULL},
        {"_VERSION", G_VERSION, NULL},
        {"assert", G_STD, NULL},
        {"collectgarbage", G_FN, app_collectgarbage},
        {"coroutine", G_LIB, build_coroutine},
        {"debug", G_LIB, build_debug},
        {"error", G_STD, NULL},
        {"getmetatable", G_FN, app_getmetatable},
        {"io", G_LIB, build_io},
        {"ipairs", G_STD, NULL},
        {"load", G_FN, app_load},
        {"math", G_LIB, build_math},
        {"next", G_STD, NULL},
        {"os", G_LIB, build_os},
        {"package", G_PACKAGE, NULL},
        {"pairs", G_STD, NULL},
        {"pcall", G_FN, app_pcall},
        {"print", G_FN, app_print},
        {"rawequal", G_STD, NULL},
        {"rawget", G_STD, NULL},
        {"rawlen", G_STD, NULL},
        {"rawset", G_FN, app_rawset},
        {"require", G_FN, app_require},
        {"select", G_STD, NULL},
        {"setmetatable", G_FN, app_setmetatable},
        {"string", G_LIB, build_string},
        {"table", G_LIB, build_table},
        {"tonumber", G_STD, NULL},
        {"tostring", G_STD, NULL},
        {"type", G_STD, NULL},
        {"utf8", G_LIB, build_utf8},
        {"xpcall", G_FN, app_xpcall},
};
#define N_GLOBALS (sizeof(globals) / sizeof(globals[0]))
_Static_assert(N_GLOBALS <= 64, "CLuaApp.lazy_done has 64 bits");

static int global_cmp(const void *k, const void *e)
{
        return strcmp(k, ((const Global *)e)->name);
}

static int global_index(const char *name)
{
        const Global *g = bsearch(name, globals, N_GLOBALS, sizeof(Global), global_cmp);

        return g ? (int)(g - globals) : -1;
}

/* Pushes library name's table, building it (and caching it in the registry) the
 * first time: the string library is also the strings' __index. The table is the
 * app's own, as in plain Lua: it may change it (luaunit replaces os.exit); no
 * other app shares its lua_State. require(name) returns this same table. */
static void push_lib(lua_State *L, const Global *g)
{
        if (lua_rawgetp(L, LUA_REGISTRYINDEX, &key_libs) == LUA_TNIL) {
                lua_pop(L, 1);
                lua_createtable(L, 0, 2);
                lua_pushvalue(L, -1);
                lua_rawsetp(L, LUA_REGISTRYINDEX, &key_libs);
        }
        if (lua_getfield(L, -1, g->name) == LUA_TNIL) {
                lua_pop(L, 1);
                lua_pushcfunction(L, g->fn);
                lua_call(L, 0, 1);
                lua_pushvalue(L, -1);
                lua_setfield(L, -3, g->name);
        }
        lua_remove(L, -2);
}

/* Pushes the value of globals[i]. */
static void push_global(lua_State *L, int i)
{
        const Global *g = &globals[i];

        switch (g->kind) {
        case G_STD:
                lua_pushcfunction(L, std_fn(&std_libs[0], g->name));
                break;
        case G_FN:
                lua_pushcfunction(L, g->fn);
                break;
        case G_LIB:
                push_lib(L, g);
                break;
        case G_VERSION:
                lua_pushliteral(L, LUA_VERSION);
                break;
        case G_SELF:
                lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
                break;
        case G_PACKAGE:
                push_package(L);
                break;
        }
}

/* The key at index key was set in the globals by the app: not lazy any more. */
static void note_global_set(lua_State *L, int key)
{
        int i;

        if (lua_type(L, key) != LUA_TSTRING)
                return;
        i = global_index(lua_tostring(L, key));
        if (i >= 0)
                clua_app_of(L)->lazy_done |= 1ull << i;
}

/* __index of the globals (t, k): an allowlisted name read for the first time. */
static int lazy_index(lua_State *L)
{
        CLuaApp *app = clua_app_of(L);
        int i;

        if (lua_type(L, 2) != LUA_TSTRING)
                return 0;
        i = global_index(lua_tostring(L, 2));
        if (i < 0 || (app->lazy_done & (1ull << i)))
                return 0;
        push_global(L, i);
        lua_pushvalue(L, 2);
        lua_pushvalue(L, -2);
        lua_rawset(L, 1);
        app->lazy_done |= 1ull << i;
        return 1;
}

/* __newindex of the globals (t, k, v): a new global; an allowlisted name the app
 * sets (even to nil) is its own from then on. */
static int lazy_newindex(lua_State *L)
{
        note_global_set(L, 2);
        lua_settop(L, 3);
        lua_rawset(L, 1);
        return 0;
}

static void materialize_all(lua_State *L)
{
        CLuaApp *app = clua_app_of(L);

        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        if (!lua_getmetatable(L, -1)) {
                lua_pop(L, 1);
                return;
        }
        lua_rawgetp(L, LUA_REGISTRYINDEX, &key_lazy_mt);
        if (!lua_rawequal(L, -1, -2)) {
                lua_pop(L, 3);
                return;
        }
        lua_pop(L, 2);
        for (int i = 0; i < (int)N_GLOBALS; i++) {
                if (app->lazy_done & (1ull << i))
                        continue;
                lua_pushstring(L, globals[i].name);
                push_global(L, i);
                lua_rawset(L, -3);
                app->lazy_done |= 1ull << i;
        }
        lua_pushnil(L);
        lua_setmetatable(L, -2);
        lua_pop(L, 1);
}

/* __pairs of the globals: the whole library first, then a plain next. */
static int lazy_pairs(lua_State *L)
{
        materialize_all(L);
        lua_pushcfunction(L, std_fn(&std_libs[0], "next"));
        lua_pushvalue(L, 1);
        lua_pushnil(L);
        return 3;
}

static void push_string_lib(lua_State *L)
{
        static const Global g = {"string", G_LIB, build_string};

        push_lib(L, &g);
}

/* __index of strings before the string library exists: builds it, and makes its
 * table the strings' __index from then on. */
static int lazy_string_index(lua_State *L)
{
        push_string_lib(L);
        lua_getfield(L, -1, lua_tostring(L, 2) ?: "");
        return 1;
}

static int build_string(lua_State *L)
{
        push_lib_fields(L, &std_libs[1]);
        luaL_setfuncs(L, clua_string_fns, 0);
        /* strings' own metatable indexes this table (without it, ("").dump would
         * reach liblua's string.dump). */
        lua_pushliteral(L, "");
        lua_getmetatable(L, -1);
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, "__index");
        lua_pop(L, 2);
        return 1;
}

static int build_table(lua_State *L)
{
        push_lib_fields(L, &std_libs[2]);
        luaL_setfuncs(L, clua_table_fns, 0);
        if (luaL_loadbufferx(L, clua_table_sort_source, strlen(clua_table_sort_source),
                             "=table.sort", "t") != LUA_OK)
                return lua_error(L);
        lua_pushcfunction(L, std_fn(&std_libs[0], "error"));
        lua_pushcfunction(L, std_fn(&std_libs[0], "type"));
        lua_pushcfunction(L, std_fn(&std_libs[0], "select"));
        lua_pushcfunction(L, clua_sort_numbers);
        lua_call(L, 4, 1);
        lua_setfield(L, -2, "sort");
        return 1;
}

static int build_math(lua_State *L)
{
        RanState *r;

        push_lib_fields(L, &std_libs[3]);
        lua_pushnumber(L, 3.141592653589793238462643383279502884);
        lua_setfield(L, -2, "pi");
        lua_pushnumber(L, (lua_Number)HUGE_VAL);
        lua_setfield(L, -2, "huge");
        lua_pushinteger(L, LUA_MAXINTEGER);
        lua_setfield(L, -2, "maxinteger");
        lua_pushinteger(L, LUA_MININTEGER);
        lua_setfield(L, -2, "mininteger");
        r = lua_newuserdatauv(L, sizeof(RanState), 0);
        seed_rand(r, (uint64_t)arc4random() << 32 | arc4random(),
                  (uint64_t)arc4random() << 32 | arc4random());
        lua_pushvalue(L, -1);
        lua_pushcclosure(L, math_random, 1);
        lua_setfield(L, -3, "random");
        lua_pushcclosure(L, math_randomseed, 1);
        lua_setfield(L, -2, "randomseed");
        return 1;
}

static int build_utf8(lua_State *L)
{
        push_lib_fields(L, &std_libs[4]);
        static const char patt[] = "[\0-\x7F\xC2-\xFD][\x80-\xBF]*";

        lua_pushlstring(L, patt, sizeof(patt) - 1);
        lua_setfield(L, -2, "charpattern");
        return 1;
}

static int build_coroutine(lua_State *L)
{
        push_lib_fields(L, &std_libs[5]);
        lua_pushcfunction(L, app_co_resume);
        lua_setfield(L, -2, "resume");
        lua_pushcfunction(L, app_co_wrap);
        lua_setfield(L, -2, "wrap");
        return 1;
}

/* os.getenv(name): always nil. The sandbox's environment is the supervisor's
 * (in packed mode the group's), not the app's to read; app.id() names the app. */
static int os_getenv(lua_State *L)
{
        luaL_checkstring(L, 1);
        lua_pushnil(L);
        return 1;
}

/* os.exit([code [, close]]): as app.exit, ending this app only (in packed mode
 * its neighbours carry on). code: true (default) 0, false 1, an integer taken
 * modulo 256 as exit(3) does. close is accepted and ignored: the state is closed
 * (and open io files flushed) as the app ends anyway. */
static int os_exit(lua_State *L)
{
        lua_Integer code;

        if (lua_isboolean(L, 1))
                code = lua_toboolean(L, 1) ? 0 : 1;
        else
                code = luaL_optinteger(L, 1, 0);
        clua_app_of(L)->exit_code = (int)((uint64_t)code & 0xff);
        return clua_doom(L, CLUA_EXITING);
}

static int build_os(lua_State *L)
{
        push_lib_fields(L, &std_libs[6]);
        lua_pushcfunction(L, os_getenv);
        lua_setfield(L, -2, "getenv");
        lua_pushcfunction(L, os_exit);
        lua_setfield(L, -2, "exit");
        return 1;
}

/* debug.getinfo([thread,] f [, what]) as liblua's, without the option 'f': that
 * would hand out the function running at a level of the stack (a library's
 * internal function the app was never given). The default is "lnSrtu". */
static int app_getinfo(lua_State *L)
{
        int arg = lua_type(L, 1) == LUA_TTHREAD ? 2 : 1;
        const char *what;

        if (lua_isnoneornil(L, arg + 1)) {
                lua_settop(L, arg);
                lua_pushliteral(L, "lnSrtu");
        }
        what = luaL_checkstring(L, arg + 1);
        if (strchr(what, 'f'))
                return luaL_error(L,
                                  "bad argument #%d to 'getinfo' (option 'f' is not available in "
                                  "cella-lua: no access to the functions of the stack)",
                                  arg + 1);
        lua_settop(L, arg + 1);
        /* A level of the running thread counts from liblua's getinfo, one call
         * below this wrapper: one more. */
        if (!lua_isfunction(L, arg) && (arg == 1 || lua_tothread(L, 1) == L)) {
                lua_Integer level = luaL_checkinteger(L, arg);

                lua_pushinteger(L, level >= 0 && level < LUA_MAXINTEGER ? level + 1 : level);
                lua_replace(L, arg);
        }
        lua_pushcfunction(L, std_fn(&std_libs[7], "getinfo"));
        lua_insert(L, 1);
        lua_call(L, arg + 1, 1);
        return 1;
}

static int build_debug(lua_State *L)
{
        push_lib_fields(L, &std_libs[7]);
        lua_pushcfunction(L, app_getinfo);
        lua_setfield(L, -2, "getinfo");
        return 1;
}

static int build_io(lua_State *L)
{
        return clua_open_io(L);
}

/* ---- require: the std libraries by name, cella.*, the app's own modules ------- */

/* The cella.* modules written in C (lua-modules.h), by require name. */
static const luaL_Reg cella_modules[] = {
        {"cella.json", luaopen_cella_json},
        {"cella.crypto", luaopen_cella_crypto},
        {"cella.log", luaopen_cella_log},
        {"cella.fs", luaopen_cella_fs},
        {"cella.db", luaopen_cella_db},
        {"cella.timer", luaopen_cella_timer},
        {"cella.bus", luaopen_cella_bus},
        {"cella.perm", luaopen_cella_perm},
        {"cella.app", luaopen_cella_app},
        {"cella.notify", luaopen_cella_notify},
        {"cella.net", luaopen_cella_net},
        {"cella.ipc", luaopen_cella_ipc},
        {NULL, NULL},
};

/* Pushes the registry table at key (a new one the first time). */
static void push_reg_table(lua_State *L, const char *key)
{
        if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TNIL) {
                lua_pop(L, 1);
                lua_newtable(L);
                lua_pushvalue(L, -1);
                lua_rawsetp(L, LUA_REGISTRYINDEX, key);
        }
}

/* Pushes the app's package table (made on first use): path, cpath (empty:
 * no C modules), config, loaded, preload, searchpath. */
static int pkg_searchpath(lua_State *L);
static void push_package(lua_State *L)
{
        if (lua_rawgetp(L, LUA_REGISTRYINDEX, &key_package) != LUA_TNIL)
                return;
        lua_pop(L, 1);
        lua_createtable(L, 0, 6);
        lua_pushliteral(L, MODULE_PATH_DEFAULT);
        lua_setfield(L, -2, "path");
        lua_pushliteral(L, "");
        lua_setfield(L, -2, "cpath");
        /* loadlib.c's package.config (LUA_IGMARK is "-", not in lua.h) */
        lua_pushliteral(L,
                        LUA_DIRSEP "\n" LUA_PATH_SEP "\n" LUA_PATH_MARK "\n" LUA_EXEC_DIR "\n-\n");
        lua_setfield(L, -2, "config");
        push_reg_table(L, &key_loaded);
        lua_setfield(L, -2, "loaded");
        lua_newtable(L);
        lua_setfield(L, -2, "preload");
        lua_pushcfunction(L, pkg_searchpath);
        lua_setfield(L, -2, "searchpath");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &key_package);
}

/* A module file's fd while it is read: closed by __gc if a memory error
 * interrupts the read. */
#define MODULE_FD_MT "cella.require.fd"

static int module_fd_gc(lua_State *L)
{
        int *fd = luaL_checkudata(L, 1, MODULE_FD_MT);

        if (*fd >= 0)
                close(*fd);
        *fd = -1;
        return 0;
}

/* Opens path (relative) for reading beneath the app's folder: openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, so "..", absolute paths and
 * symlinks that leave the folder fail in the kernel (EXDEV). Regular files
 * only (O_NONBLOCK: a FIFO cannot block the open). Returns an fd or -errno. */
static int open_module(CLuaApp *app, const char *path)
{
        struct open_how how = {
                .flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };

        if (app->root_fd < 0)
                return -ENOENT;
        return clua_open_beneath(app->root_fd, path, &how);
}

/* Why a template's file could not be used, for the not-found message. */
static const char *module_why(int r)
{
        switch (-r) {
        case ENOENT:
        case ENOTDIR:
                return "";
        case EXDEV:
                return " (outside the app's folder)";
        case EISDIR:
                return " (not a regular file)";
        case ELOOP:
                return " (a symlink loop)";
        case EACCES:
        case EPERM:
                /* A file of a folder made under umask 077: the app's uid is "others". */
                return " (not readable by the app's uid: the app runs as a uid of its own, "
                       "so its files must be readable by others, chmod o+r)";
        default:
                return " (cannot be opened)";
        }
}

/*
 * Lua's searchpath beneath the app's folder: name (with sep replaced by
 * dirsep when sep is not empty) put for each '?' of each ';'-separated
 * template of path. On success pushes the file name and returns its fd (a
 * regular file open for reading, or -1 if keep_fd is false); else pushes the
 * message "\n\tno file 'NAME'..." of every name tried and returns -2. Names are
 * the app's own (relative to its folder), never a host path.
 */
static int search_path(lua_State *L, const char *name, const char *path, const char *sep,
                       const char *dirsep, bool keep_fd)
{
        CLuaApp *app = clua_app_of(L);
        int base, msg, fd;
        const char *e;

        if (*sep && strchr(name, *sep))
                name = luaL_gsub(L, name, sep, dirsep);
        else
                lua_pushstring(L, name);
        base = lua_gettop(L); /* the name as a path */
        lua_pushliteral(L, "");
        msg = lua_gettop(L);
        for (; *path; path = *e ? e + 1 : e) {
                const char *fname;

                e = strchr(path, *LUA_PATH_SEP);
                if (!e)
                        e = path + strlen(path);
                if (e == path)
                        continue;
                clua_poll(L); /* package.path is the app's: any length */
                lua_pushlstring(L, path, (size_t)(e - path));
                fname = luaL_gsub(L, lua_tostring(L, -1), LUA_PATH_MARK, lua_tostring(L, base));
                fd = app->root_fd >= 0 ? open_module(app, fname) : -ENOENT;
                if (fd >= 0) {
                        if (!keep_fd) {
                                close(fd);
                                fd = -1;
                        }
                        lua_replace(L, base);
                        lua_settop(L, base);
                        return fd;
                }
                lua_pushvalue(L, msg);
                lua_pushfstring(L, "\n\tno file '%s'%s", fname,
                                app->root_fd >= 0 ? module_why(fd) : " (the app has no folder)");
                lua_concat(L, 2);
                lua_replace(L, msg);
                lua_settop(L, msg);
        }
        lua_replace(L, base);
        lua_settop(L, base);
        return -2;
}

/* package.searchpath(name, path [, sep [, rep]]): as Lua's, beneath the app's
 * folder. Returns the file name, or nil and the message. */
static int pkg_searchpath(lua_State *L)
{
        const char *name = luaL_checkstring(L, 1), *path = luaL_checkstring(L, 2);
        const char *sep = luaL_optstring(L, 3, "."), *rep = luaL_optstring(L, 4, LUA_DIRSEP);

        if (search_path(L, name, path, sep, rep, false) == -1)
                return 1;
        luaL_pushfail(L);
        lua_insert(L, -2);
        /* Lua's message has no leading "\n\t" */
        lua_pushstring(L, lua_tostring(L, -1) + (lua_rawlen(L, -1) >= 2 ? 2 : 0));
        lua_replace(L, -2);
        return 2;
}

/* Reads the module file fd (owned: closed here) named fname and pushes its
 * chunk compiled as text with the app's globals as _ENV. Raises Lua's "error
 * loading module" error on a binary chunk, a syntax error or a file larger than
 * MODULE_FILE_MAX; its bytes are charged to the app (a Lua userdata). */
static void load_module(lua_State *L, int fd, const char *name, const char *fname)
{
        int *box, status;
        struct stat st;
        char *buf;
        size_t got = 0;
        LoadReader r;

        box = lua_newuserdatauv(L, sizeof(int), 0);
        *box = fd;
        cella_lua_setclass_gc(L, MODULE_FD_MT, module_fd_gc);
        if (fstat(fd, &st) < 0)
                luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, fname,
                           strerror(errno));
        if ((uint64_t)st.st_size > MODULE_FILE_MAX)
                luaL_error(L,
                           "error loading module '%s' from file '%s':\n\tlarger than %d bytes "
                           "(a module is source code)",
                           name, fname, (int)MODULE_FILE_MAX);
        buf = lua_newuserdatauv(L, (size_t)st.st_size + 1, 0);
        while (got < (size_t)st.st_size) {
                ssize_t n = RETRY_EINTR(read(fd, buf + got, (size_t)st.st_size - got));

                if (n < 0 && errno == EAGAIN)
                        continue;
                if (n < 0)
                        luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name,
                                   fname, strerror(errno));
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        close(fd);
        *box = -1;
        r.s = buf + clua_file_code_start(buf, got); /* a "#!" line, as lua5.4 */
        r.left = got - (size_t)(r.s - buf);
        lua_pushfstring(L, "@%s", fname);
        status = lua_load(L, load_reader, &r, lua_tostring(L, -1), "t");
        clua_poll(L);
        if (status != LUA_OK) {
                if (status == LUA_ERRMEM)
                        check_fatal(L, status);
                luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, fname,
                           lua_tostring(L, -1));
        }
        lua_replace(L, -4); /* over the box */
        lua_pop(L, 2);
}

/* The standard library by name: pushes the app's table of it (the one its
 * global had at first) and returns true; else false, nothing pushed. */
static bool push_std_module(lua_State *L, const char *name)
{
        int i;

        if (strcmp(name, "_G") == 0) {
                lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
                return true;
        }
        if (strcmp(name, "package") == 0) {
                push_package(L);
                return true;
        }
        i = global_index(name);
        if (i < 0 || globals[i].kind != G_LIB)
                return false;
        push_lib(L, &globals[i]);
        return true;
}

/* After a module's loader ran (stack: 1 name, 2 loaded, 3 loading, 4 loader,
 * 5 loader data, 6 its result or error): as ll_require. */
static int require_done(lua_State *L, int status, lua_KContext ctx)
{
        const char *name = lua_tostring(L, 1);

        (void)ctx;
        lua_getfield(L, 3, name);
        lua_pushthread(L);
        if (lua_rawequal(L, -1, -2)) {
                lua_pushnil(L);
                lua_setfield(L, 3, name);
        }
        lua_pop(L, 2);
        if (status != LUA_OK && status != LUA_YIELD) {
                check_fatal(L, status);
                return lua_error(L);
        }
        if (!lua_isnil(L, -1))
                lua_setfield(L, 2, name);
        else
                lua_pop(L, 1);
        if (lua_getfield(L, 2, name) == LUA_TNIL) {
                lua_pop(L, 1);
                lua_pushboolean(L, 1);
                lua_pushvalue(L, -1);
                lua_setfield(L, 2, name);
        }
        lua_pushvalue(L, 5);
        return 2;
}

/*
 * require(name) as Lua 5.4's (ll_require): package.loaded first; then the
 * standard library by name (string, table, math, utf8, coroutine, os, io, debug,
 * package, _G: the app's tables); the cella.* modules; package.preload; then
 * a text file of the app's own folder found by package.path (default
 * "./?.lua;./?/init.lua"), opened beneath the folder (search_path), compiled
 * as text with the app's _ENV and called with (name, file name). The loader
 * runs with lua_pcallk, so a module's main chunk is preempted (and may wait)
 * as any Lua code. A module required again while it loads is an error naming
 * the loop, not an endless recursion. Returns the module and its loader data.
 */
static int app_require(lua_State *L)
{
        CLuaApp *app = clua_app_of(L);
        size_t len;
        const char *name = luaL_checklstring(L, 1, &len), *path;
        const luaL_Reg *m;
        int status, fd;

        luaL_argcheck(L, len <= REQUIRE_NAME_MAX && strlen(name) == len, 1,
                      "module name longer than 256 bytes or with a NUL byte");
        lua_settop(L, 1);
        push_reg_table(L, &key_loaded); /* 2 */
        if (lua_getfield(L, 2, name) != LUA_TNIL && lua_toboolean(L, -1))
                return 1;
        lua_pop(L, 1);
        if (push_std_module(L, name)) {
                lua_pushvalue(L, -1);
                lua_setfield(L, 2, name);
                return 1;
        }
        /* loading[name]: the thread (task or coroutine) whose loader runs. The
         * same thread asking again is a loop; another one (a callback while the
         * loader was preempted) loads the module again, as plain Lua would. */
        push_reg_table(L, &key_loading); /* 3 */
        lua_getfield(L, 3, name);
        lua_pushthread(L);
        if (lua_rawequal(L, -1, -2))
                return luaL_error(L,
                                  "loop requiring module '%s' (it requires itself while it "
                                  "loads)",
                                  name);
        lua_pop(L, 2);
        for (m = cella_modules; m->name; m++)
                if (strcmp(m->name, name) == 0)
                        break;
        if (m->name) {
                lua_pushcfunction(L, m->func); /* 4 */
                lua_pushliteral(L, ":preload:");
        } else {
                push_package(L);
                if (lua_getfield(L, -1, "preload") == LUA_TTABLE &&
                    lua_getfield(L, -1, name) == LUA_TFUNCTION) {
                        lua_replace(L, 4);
                        lua_settop(L, 4);
                        lua_pushliteral(L, ":preload:");
                } else {
                        lua_settop(L, 4);
                        if (lua_getfield(L, 4, "path") != LUA_TSTRING)
                                return luaL_error(L, "'package.path' must be a string");
                        path = lua_tostring(L, 5);
                        fd = search_path(L, name, path, ".", LUA_DIRSEP, true); /* 6 */
                        if (fd < 0)
                                return luaL_error(L,
                                                  "module '%s' not found:\n\tno field "
                                                  "package.preload['%s']%s",
                                                  name, name, lua_tostring(L, 6));
                        if (app->n_module_files >= MODULE_FILES_MAX) {
                                close(fd);
                                return luaL_error(L, "module '%s': more than %d module files", name,
                                                  MODULE_FILES_MAX);
                        }
                        app->n_module_files++;
                        load_module(L, fd, name, lua_tostring(L, 6)); /* 7 */
                        lua_replace(L, 4);
                        lua_replace(L, 5);
                        lua_settop(L, 5);
                }
        }
        lua_pushthread(L);
        lua_setfield(L, 3, name);
        lua_pushvalue(L, 4);
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 5);
        status = lua_pcallk(L, 2, 1, 0, 0, require_done);
        return require_done(L, status, 0);
}

/* ---- the state --------------------------------------------------------------- */

/* Builds the app's globals and the strings' metatable; runs protected (lua_pcall
 * of a C function) so running out of memory during setup is a status. */
static int setup(lua_State *L)
{
        /* The function the host runs as a task when the kernel reports memory
         * pressure: collectgarbage("collect"), in preemptible steps. */
        lua_pushcfunction(L, app_collectgarbage);
        clua_app_of(L)->gc_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        lua_createtable(L, 0, 3);
        lua_pushcfunction(L, lazy_index);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, lazy_newindex);
        lua_setfield(L, -2, "__newindex");
        lua_pushcfunction(L, lazy_pairs);
        lua_setfield(L, -2, "__pairs");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &key_lazy_mt);
        lua_setmetatable(L, -2);
        lua_pop(L, 1);

        /* The strings' metatable, the app's own (one per lua_State, as each app
         * has its own state even in packed mode): liblua's arithmetic
         * metamethods ("10" + 1 is 11) and the string library as __index, built
         * on first use. */
        lua_pushliteral(L, "");
        lua_createtable(L, 0, 9);
        lua_pushcfunction(L, lazy_string_index);
        lua_setfield(L, -2, "__index");
        for (size_t i = 0; strmeta_names[i]; i++) {
                lua_pushcfunction(L, strmeta_fns[i]);
                lua_setfield(L, -2, strmeta_names[i]);
        }
        lua_setmetatable(L, -2);
        lua_pop(L, 1);
        return 0;
}

int clua_env_set_root(CLuaApp *app, const char *entry)
{
        const char *slash = strrchr(entry, '/');
        char *dir;
        int fd;

        if (!slash)
                dir = strdup(".");
        else if (slash == entry)
                dir = strdup("/");
        else
                dir = strndup(entry, (size_t)(slash - entry));
        if (!dir)
                return -ENOMEM;
        fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        free(dir);
        if (fd < 0)
                return -errno;
        if (app->root_fd >= 0)
                close(app->root_fd);
        app->root_fd = fd;
        return 0;
}

int clua_env_new(CLuaApp *app)
{
        if (!template_get())
                return -ENOMEM;
        if (!app->opt.callback_ns)
                app->opt.callback_ns = CLUA_DEFAULT_CALLBACK_NS;
        app->L = clua_alloc_newstate(&app->alloc, app->opt.memory_cap);
        if (!app->L)
                return -ENOMEM;
        app->opt.memory_cap = app->alloc.cap;
        app->alloc.doomed = &app->doomed;
        *(CLuaApp **)lua_getextraspace(app->L) = app;
        app->running = app->L;
        lua_pushcfunction(app->L, setup);
        if (lua_pcall(app->L, 0, 0, 0) != LUA_OK) {
                lua_close(app->L);
                app->L = NULL;
                return -ENOMEM;
        }
        clua_alloc_pace_gc(&app->alloc, app->L);
        return 0;
}

int clua_env_spare_new(CLuaApp **ret)
{
        CLuaApp *s = calloc(1, sizeof *s);
        int r;

        if (!s)
                return -ENOMEM;
        s->gc_ref = LUA_NOREF;
        s->data_fd = s->root_fd = -1;
        r = clua_env_new(s);
        if (r < 0) {
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

void clua_env_spare_free(CLuaApp *spare)
{
        if (!spare)
                return;
        if (spare->L)
                lua_close(spare->L);
        free(spare);
}

int clua_env_new_from_spare(CLuaApp *app, CLuaApp **spare)
{
        CLuaApp *s = *spare;
        size_t cap = app->opt.memory_cap ?: CLUA_ALLOC_DEFAULT_CAP;
        lua_Alloc f;

        if (cap < CLUA_ALLOC_MIN_CAP)
                cap = CLUA_ALLOC_MIN_CAP;
        if (!s || !s->L || s->alloc.used > cap || s->alloc.refused || s->alloc.ext_refused)
                return clua_env_new(app);
        if (!app->opt.callback_ns)
                app->opt.callback_ns = CLUA_DEFAULT_CALLBACK_NS;
        /* The state is app's from here: its accounting, its cap, its owner. */
        app->L = s->L;
        app->alloc = s->alloc;
        app->alloc.cap = cap;
        app->opt.memory_cap = cap;
        app->alloc.doomed = &app->doomed;
        f = lua_getallocf(app->L, NULL);
        lua_setallocf(app->L, f, &app->alloc);
        *(CLuaApp **)lua_getextraspace(app->L) = app;
        app->running = app->L;
        app->gc_ref = s->gc_ref;
        clua_alloc_pace_gc(&app->alloc, app->L);
        free(s);
        *spare = NULL;
        return 0;
}

int clua_app_new(const CLuaOptions *opt, CLuaApp **ret)
{
        CLuaHostOptions ho = {.policy = CLUA_SCHED_FAIR, .stats_fd = -1, .n_apps = 1};
        CLuaAppSpec spec = {.channel_fd = -1, .log_fd = -1};
        CLuaHost *h;
        int r;

        if (opt)
                spec.opt = *opt;
        r = clua_host_new(&ho, &h);
        if (r < 0)
                return r;
        r = clua_host_add(h, &spec, ret);
        if (r < 0) {
                clua_host_free(h);
                return r;
        }
        return 0;
}

void clua_app_free(CLuaApp *app)
{
        if (app)
                clua_host_free(app->host);
}

static char *dup_top_message(lua_State *L)
{
        /* Strings only: converting a number allocates, unprotected here. */
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;

        return strdup(s ?: "(error object is not a string)");
}

size_t clua_file_code_start(const char *buf, size_t len)
{
        size_t at = 0;
        const char *nl;

        if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
                at = 3;
        if (at >= len || buf[at] != '#')
                return at;
        nl = memchr(buf + at, '\n', len - at);
        return nl ? (size_t)(nl - buf) : len;
}

CLuaFault clua_load(CLuaApp *app, const char *chunk, size_t len, const char *name, char **ret_msg)
{
        lua_State *L = app->L;
        size_t start = clua_file_code_start(chunk, len);
        int status;

        if (ret_msg)
                *ret_msg = NULL;
        /* The first upvalue of a main chunk is the registry's globals: the app's. */
        status = luaL_loadbufferx(L, chunk + start, len - start, name, "t");
        if (status != LUA_OK) {
                if (ret_msg)
                        *ret_msg = dup_top_message(L);
                lua_pop(L, 1);
                return status == LUA_ERRMEM ? CLUA_MEMORY : CLUA_ERROR;
        }
        return CLUA_OK;
}

/* Message handler of a callback: lua.c's msghandler (tostring, then traceback). */
int clua_msghandler(lua_State *L)
{
        const char *msg = lua_tostring(L, 1);

        if (clua_app_of(L)->doomed)
                return 1;
        if (!msg) {
                if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
                        return 1;
                msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        }
        luaL_traceback(L, L, msg, 1);
        return 1;
}

void clua_set_cpu_msg(CLuaApp *app, bool total)
{
        uint64_t ns = total ? app->opt.total_ns : app->opt.callback_ns;

        snprintf(app->cpu_msg, sizeof(app->cpu_msg), "%sCPU budget of %llu ms exceeded",
                 total ? "total " : "", (unsigned long long)(ns / 1000000u));
}

uint64_t clua_budget_left(CLuaApp *app, uint64_t used_in_callback, int *ret_for)
{
        uint64_t left = used_in_callback < app->opt.callback_ns
                                ? app->opt.callback_ns - used_in_callback
                                : 0;

        *ret_for = CLUA_CPU_CALLBACK;
        if (app->opt.total_ns) {
                uint64_t t = app->cpu_used_ns < app->opt.total_ns
                                     ? app->opt.total_ns - app->cpu_used_ns
                                     : 0;

                if (t <= left) {
                        left = t;
                        *ret_for = CLUA_CPU_TOTAL;
                }
        }
        clua_set_cpu_msg(app, *ret_for == CLUA_CPU_TOTAL);
        return left;
}

CLuaFault clua_call(CLuaApp *app, int nargs, int nresults, char **ret_msg)
{
        lua_State *L = app->L;
        int base = lua_gettop(L) - nargs, status, r, bfor;
        uint64_t budget, t0;
        char buf[160];
        CLuaFault f;

        if (ret_msg)
                *ret_msg = NULL;
        budget = clua_budget_left(app, 0, &bfor);
        if (!app->doomed && budget == 0)
                app->doomed = bfor;
        if (app->doomed) {
                lua_settop(L, base - 1);
                f = app->doomed;
                goto fail_msg;
        }
        lua_pushcfunction(L, clua_msghandler);
        lua_insert(L, base);
        app->running = L;
        t0 = clua_thread_cpu_ns();
        r = clua_env_arm(app, 0, budget, bfor);
        if (r < 0) {
                lua_settop(L, base - 1);
                if (ret_msg)
                        *ret_msg = strdup("cannot arm the CPU watchdog");
                return CLUA_ERROR;
        }
        clua_alloc_current = &app->alloc;
        status = lua_pcall(L, nargs, nresults, base);
        clua_alloc_current = NULL;
        (void)clua_watchdog_disarm(&app->host->watchdog);
        app->host->running = NULL;
        app->cpu_used_ns += clua_thread_cpu_ns() - t0;
        lua_remove(L, base);
        clua_alloc_pace_gc(&app->alloc, L);
        if (status == LUA_OK)
                return CLUA_OK;
        if (status == LUA_ERRMEM && !app->doomed)
                app->doomed = CLUA_MEMORY;
        if (!app->doomed) {
                if (ret_msg)
                        *ret_msg = dup_top_message(L);
                lua_pop(L, 1);
                return CLUA_ERROR;
        }
        lua_pop(L, 1);
        f = app->doomed;
fail_msg:
        if (ret_msg)
                *ret_msg = strdup(clua_fault_message(app, buf, sizeof(buf)));
        return f;
}

/* For the host: the watchdog handler of a host. */
void clua_env_watchdog_handler(void *ud)
{
        on_watchdog(ud);
}
