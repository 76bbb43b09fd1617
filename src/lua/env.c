/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The per-app Lua environment: allowlisted library, read-only library tables,
 * limit errors the app cannot catch (docs/lua-api.md "Allowlist", "Limits").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua/env.h"
#include "lua/lua-modules.h"

/* Registry keys (addresses are unique). */
static const char key_locked = 0;  /* weak-keyed set of the read-only library tables */
static const char key_preload = 0; /* name -> loader of the cella.* modules */
static const char key_loaded = 0;  /* name -> value returned by a loader */

/* Longest module name require accepts, bytes. */
#define REQUIRE_NAME_MAX 64

CLuaApp *clua_app_of(lua_State *L)
{
        /* Lua 5.4 copies the main thread's extra space into every new thread. */
        return *(CLuaApp **)lua_getextraspace(L);
}

static const char *fault_message(CLuaApp *app, char *buf, size_t size)
{
        if (app->doomed == CLUA_MEMORY)
                snprintf(buf, size, "memory limit of %zu bytes exceeded", app->alloc.cap);
        else
                snprintf(buf, size, "%s", app->cpu_msg);
        return buf;
}

/* The count hook armed once the app is doomed: raises at every instruction. */
static void doom_hook(lua_State *L, lua_Debug *ar)
{
        CLuaApp *app = clua_app_of(L);
        char buf[128];

        lua_pushstring(L, fault_message(app, buf, sizeof(buf)));
        lua_error(L);
}

static void arm_doom_hook(lua_State *L)
{
        lua_sethook(L, doom_hook, LUA_MASKCOUNT, 1);
}

/* Watchdog handler (signal context): only flags and lua_sethook. */
static void on_budget_end(void *ud)
{
        CLuaApp *app = ud;
        lua_State *L = app->running;

        if (app->doomed) {
                /* A second expiry: the app burnt CLUA_GRACE_NS more CPU outside
                 * Lua code since it was doomed. Nothing else can stop it. */
                ssize_t n = write(STDERR_FILENO, "cella-lua: ", 11);

                n = write(STDERR_FILENO, app->cpu_msg, strlen(app->cpu_msg));
                n = write(STDERR_FILENO, " (outside Lua code)\n", 20);
                (void)n;
                _exit(CLUA_EXIT_CPU);
        }
        app->doomed = app->armed_for;
        if (L)
                arm_doom_hook(L);
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

/* load(chunk [, chunkname [, mode [, env]]]): strings only, text only, env
 * defaulting to the app's _ENV. Upvalue 1: the base library's load. */
static int app_load(lua_State *L)
{
        CLuaApp *app = clua_app_of(L);
        int has_env = lua_gettop(L) >= 4;

        luaL_checktype(L, 1, LUA_TSTRING);
        luaL_optstring(L, 2, NULL);
        lua_settop(L, 4);
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 2);
        lua_pushliteral(L, "t");
        if (has_env)
                lua_pushvalue(L, 4);
        else
                lua_rawgeti(L, LUA_REGISTRYINDEX, app->env_ref);
        lua_call(L, 4, 2);
        if (lua_isnil(L, -2))
                return 2; /* nil, message */
        lua_pop(L, 1);
        return 1;
}

/* require(name): cella.* modules only, from the host's preload table. */
static int app_require(lua_State *L)
{
        size_t len;
        const char *name = luaL_checklstring(L, 1, &len);

        luaL_argcheck(L, len <= REQUIRE_NAME_MAX, 1, "module name too long");
        lua_settop(L, 1);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &key_loaded);
        if (lua_getfield(L, 2, name) != LUA_TNIL)
                return 1;
        lua_pop(L, 1);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &key_preload);
        if (lua_getfield(L, 3, name) == LUA_TNIL)
                return luaL_error(L,
                                  "module '%s' not found (require loads only the cella.* "
                                  "modules of docs/lua-api.md)",
                                  name);
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_pushboolean(L, 1);
        }
        lua_pushvalue(L, -1);
        lua_setfield(L, 2, name);
        return 1;
}

/* collectgarbage([opt [, arg]]): "collect" (default), "count" and "step"; the
 * rest ("stop", "incremental", "generational", pause settings) are the host's. */
static int app_collectgarbage(lua_State *L)
{
        static const char *const opts[] = {"collect", "count", "step", NULL};
        int o = luaL_checkoption(L, 1, "collect", opts);

        switch (o) {
        case 0:
                lua_gc(L, LUA_GCCOLLECT);
                lua_pushinteger(L, 0);
                return 1;
        case 1: {
                int k = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);

                lua_pushnumber(L, (lua_Number)k + ((lua_Number)b / 1024));
                return 1;
        }
        default: {
                lua_Integer kb = luaL_optinteger(L, 2, 0);

                luaL_argcheck(L, kb >= 0 && kb <= (1 << 20), 2, "step size out of range");
                lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, (int)kb));
                return 1;
        }
        }
}

/* setmetatable refusing __gc: finalizers run with hooks off (lgc.c GCTM), out of
 * the watchdog's reach. Upvalue 1: the base library's setmetatable. */
static int app_setmetatable(lua_State *L)
{
        if (lua_type(L, 2) == LUA_TTABLE) {
                lua_pushliteral(L, "__gc");
                if (lua_rawget(L, 2) != LUA_TNIL)
                        return luaL_error(L, "__gc metamethods are not allowed in cella-lua");
                lua_pop(L, 1);
        }
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 1);
        lua_call(L, lua_gettop(L) - 1, 1);
        return 1;
}

static bool is_locked(lua_State *L, int idx)
{
        bool r;

        idx = lua_absindex(L, idx);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &key_locked);
        lua_pushvalue(L, idx);
        r = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 2);
        return r;
}

/* rawset refusing the read-only library tables. */
static int app_rawset(lua_State *L)
{
        luaL_checktype(L, 1, LUA_TTABLE);
        luaL_checkany(L, 2);
        luaL_checkany(L, 3);
        if (is_locked(L, 1))
                return luaL_error(L, "attempt to modify a read-only library table");
        lua_settop(L, 3);
        lua_rawset(L, 1);
        return 1;
}

static int readonly_newindex(lua_State *L)
{
        return luaL_error(L, "attempt to modify a read-only library table");
}

/* __pairs of a read-only table: iterates the real one (upvalue 1). */
static int readonly_pairs(lua_State *L)
{
        lua_getglobal(L, "next"); /* the registry's global table: base's next */
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_pushnil(L);
        return 3;
}

/* Replaces the table on top with a read-only proxy of it. */
static void make_readonly(lua_State *L)
{
        lua_newtable(L); /* proxy */
        lua_createtable(L, 0, 4);
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, readonly_newindex);
        lua_setfield(L, -2, "__newindex");
        lua_pushvalue(L, -3);
        lua_pushcclosure(L, readonly_pairs, 1);
        lua_setfield(L, -2, "__pairs");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_setmetatable(L, -2);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &key_locked);
        lua_pushvalue(L, -2);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
        lua_pop(L, 1);
        lua_remove(L, -2);
}

/* Pushes a new table with the fields names of the table at src. */
static void copy_fields(lua_State *L, int src, const char *const *names)
{
        src = lua_absindex(L, src);
        lua_newtable(L);
        for (; *names; names++) {
                lua_getfield(L, src, *names);
                lua_setfield(L, -2, *names);
        }
}

/* env.name = a read-only copy of the names of the library table at index src. */
static void install_lib(lua_State *L, int env, int src, const char *const *names, const char *name)
{
        copy_fields(L, src, names);
        make_readonly(L);
        lua_setfield(L, env, name);
}

/* Resumes co from L with narg arguments: lcorolib.c's auxresume, tracking the
 * running thread for the watchdog and passing limit errors through. */
static int aux_resume(lua_State *L, lua_State *co, int narg)
{
        CLuaApp *app = clua_app_of(L);
        lua_State *prev;
        int status, nres;

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

static int app_co_resume(lua_State *L)
{
        lua_State *co = lua_tothread(L, 1);
        int r;

        luaL_argexpected(L, co, 1, "coroutine");
        r = aux_resume(L, co, lua_gettop(L) - 1);
        if (r < 0) {
                lua_pushboolean(L, 0);
                lua_insert(L, -2);
                return 2;
        }
        lua_pushboolean(L, 1);
        lua_insert(L, -(r + 1));
        return r + 1;
}

static int wrap_aux(lua_State *L)
{
        lua_State *co = lua_tothread(L, lua_upvalueindex(1));
        int r = aux_resume(L, co, lua_gettop(L));

        if (r < 0)
                return lua_error(L);
        return r;
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

static const char *const base_names[] = {
        "assert", "error",  "getmetatable", "ipairs",   "next",     "pairs", "print",    "rawequal",
        "rawget", "rawlen", "select",       "tonumber", "tostring", "type",  "_VERSION", NULL,
};
static const char *const string_names[] = {
        "byte", "char",     "find", "format",  "gmatch", "gsub",   "len",   "lower", "match",
        "pack", "packsize", "rep",  "reverse", "sub",    "unpack", "upper", NULL,
};
static const char *const table_names[] = {"concat", "insert", "move",   "pack",
                                          "remove", "sort",   "unpack", NULL};
static const char *const math_names[] = {
        "abs",       "ceil", "cos",    "deg",        "exp",  "floor",      "fmod",
        "huge",      "log",  "max",    "maxinteger", "min",  "mininteger", "modf",
        "pi",        "rad",  "random", "randomseed", "sin",  "sqrt",       "tan",
        "tointeger", "type", "ult",    "acos",       "asin", "atan",       NULL,
};
static const char *const utf8_names[] = {"char", "charpattern", "codepoint", "codes",
                                         "len",  "offset",      NULL};
static const char *const coroutine_names[] = {"create", "isyieldable", "running",
                                              "status", "yield",       NULL};
static const char *const os_names[] = {"clock", "date", "difftime", "time", NULL};
static const char *const debug_names[] = {"traceback", NULL};

/* The cella.* modules written in C (lua-modules.h), by require name. */
static const luaL_Reg cella_modules[] = {
        {"cella.json", luaopen_cella_json}, {"cella.crypto", luaopen_cella_crypto},
        {"cella.log", luaopen_cella_log},   {"cella.fs", luaopen_cella_fs},
        {"cella.db", luaopen_cella_db},     {NULL, NULL},
};

/* Builds everything in L; runs protected (lua_pcall of a C function) so running
 * out of memory during setup is a status, not an abort. */
static int setup(lua_State *L)
{
        CLuaApp *app = lua_touserdata(L, 1);
        int env;

        luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
        luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
        luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 0);
        luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);
        luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);
        luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 0);
        luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
        luaL_requiref(L, LUA_DBLIBNAME, luaopen_debug, 0);
        /* stack: app G string table math utf8 coroutine os debug (2..9) */

        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &key_locked);
        lua_newtable(L);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &key_loaded);
        lua_newtable(L);
        for (const luaL_Reg *m = cella_modules; m->name; m++) {
                lua_pushcfunction(L, m->func);
                lua_setfield(L, -2, m->name);
        }
        lua_rawsetp(L, LUA_REGISTRYINDEX, &key_preload);

        copy_fields(L, 2, base_names);
        env = lua_gettop(L);
        lua_pushvalue(L, env);
        lua_setfield(L, env, "_G");
        lua_pushcfunction(L, app_pcall);
        lua_setfield(L, env, "pcall");
        lua_pushcfunction(L, app_xpcall);
        lua_setfield(L, env, "xpcall");
        lua_getfield(L, 2, "load");
        lua_pushcclosure(L, app_load, 1);
        lua_setfield(L, env, "load");
        lua_getfield(L, 2, "setmetatable");
        lua_pushcclosure(L, app_setmetatable, 1);
        lua_setfield(L, env, "setmetatable");
        lua_pushcfunction(L, app_rawset);
        lua_setfield(L, env, "rawset");
        lua_pushcfunction(L, app_require);
        lua_setfield(L, env, "require");
        lua_pushcfunction(L, app_collectgarbage);
        lua_setfield(L, env, "collectgarbage");

        /* string: strings' own metatable indexes the allowlisted copy (without
         * it, ("").dump would reach string.dump) and is hidden. */
        copy_fields(L, 3, string_names);
        lua_pushliteral(L, "");
        lua_getmetatable(L, -1);
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, "__index");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 2);
        make_readonly(L);
        lua_setfield(L, env, "string");

        install_lib(L, env, 4, table_names, "table");
        install_lib(L, env, 5, math_names, "math");
        install_lib(L, env, 6, utf8_names, "utf8");
        copy_fields(L, 7, coroutine_names);
        lua_pushcfunction(L, app_co_resume);
        lua_setfield(L, -2, "resume");
        lua_pushcfunction(L, app_co_wrap);
        lua_setfield(L, -2, "wrap");
        make_readonly(L);
        lua_setfield(L, env, "coroutine");
        install_lib(L, env, 8, os_names, "os");
        install_lib(L, env, 9, debug_names, "debug");

        lua_pushvalue(L, env);
        app->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return 0;
}

int clua_app_new(const CLuaOptions *opt, CLuaApp **ret)
{
        CLuaApp *app;
        int r;

        app = calloc(1, sizeof(*app));
        if (!app)
                return -ENOMEM;
        if (opt)
                app->opt = *opt;
        if (!app->opt.callback_ns)
                app->opt.callback_ns = CLUA_DEFAULT_CALLBACK_NS;
        app->L = clua_alloc_newstate(&app->alloc, app->opt.memory_cap);
        if (!app->L) {
                free(app);
                return -ENOMEM;
        }
        app->opt.memory_cap = app->alloc.cap;
        *(CLuaApp **)lua_getextraspace(app->L) = app;
        app->running = app->L;
        lua_pushcfunction(app->L, setup);
        lua_pushlightuserdata(app->L, app);
        if (lua_pcall(app->L, 1, 0, 0) != LUA_OK) {
                clua_app_free(app);
                return -ENOMEM;
        }
        r = clua_watchdog_init(&app->watchdog, on_budget_end, app);
        if (r < 0) {
                clua_app_free(app);
                return r;
        }
        clua_alloc_pace_gc(&app->alloc, app->L);
        *ret = app;
        return 0;
}

void clua_app_free(CLuaApp *app)
{
        if (!app)
                return;
        clua_watchdog_done(&app->watchdog);
        if (app->L)
                lua_close(app->L);
        free(app);
}

static char *dup_top_message(lua_State *L)
{
        const char *s = lua_tostring(L, -1);

        return strdup(s ?: "(error object is not a string)");
}

CLuaFault clua_load(CLuaApp *app, const char *chunk, size_t len, const char *name, char **ret_msg)
{
        lua_State *L = app->L;
        int status;

        if (ret_msg)
                *ret_msg = NULL;
        status = luaL_loadbufferx(L, chunk, len, name, "t");
        if (status != LUA_OK) {
                if (ret_msg)
                        *ret_msg = dup_top_message(L);
                lua_pop(L, 1);
                return status == LUA_ERRMEM ? CLUA_MEMORY : CLUA_ERROR;
        }
        lua_rawgeti(L, LUA_REGISTRYINDEX, app->env_ref);
        if (!lua_setupvalue(L, -2, 1))
                lua_pop(L, 1);
        return CLUA_OK;
}

/* Message handler of a callback: lua.c's msghandler (tostring, then traceback). */
static int msghandler(lua_State *L)
{
        const char *msg = lua_tostring(L, 1);

        if (!msg) {
                if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
                        return 1;
                msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        }
        luaL_traceback(L, L, msg, 1);
        return 1;
}

static void set_cpu_msg(CLuaApp *app, bool total)
{
        uint64_t ns = total ? app->opt.total_ns : app->opt.callback_ns;

        snprintf(app->cpu_msg, sizeof(app->cpu_msg), "%sCPU budget of %llu ms exceeded",
                 total ? "total " : "", (unsigned long long)(ns / 1000000u));
}

CLuaFault clua_call(CLuaApp *app, int nargs, int nresults, char **ret_msg)
{
        lua_State *L = app->L;
        uint64_t budget = app->opt.callback_ns, t0;
        int base = lua_gettop(L) - nargs, status, r;
        char buf[128];
        CLuaFault f;

        if (ret_msg)
                *ret_msg = NULL;
        if (!app->doomed && app->opt.total_ns) {
                if (app->cpu_used_ns >= app->opt.total_ns) {
                        set_cpu_msg(app, true);
                        app->doomed = CLUA_CPU_TOTAL;
                } else if (app->opt.total_ns - app->cpu_used_ns <= budget) {
                        budget = app->opt.total_ns - app->cpu_used_ns;
                        set_cpu_msg(app, true);
                        app->armed_for = CLUA_CPU_TOTAL;
                }
        }
        if (budget == app->opt.callback_ns) {
                set_cpu_msg(app, false);
                app->armed_for = CLUA_CPU_CALLBACK;
        }
        if (app->doomed) {
                lua_settop(L, base - 1);
                f = app->doomed;
                goto fail_msg;
        }
        lua_pushcfunction(L, msghandler);
        lua_insert(L, base);
        app->running = L;
        t0 = clua_thread_cpu_ns();
        r = clua_watchdog_arm(&app->watchdog, budget, CLUA_GRACE_NS);
        if (r < 0) {
                lua_settop(L, base - 1);
                if (ret_msg)
                        *ret_msg = strdup("cannot arm the CPU watchdog");
                return CLUA_ERROR;
        }
        status = lua_pcall(L, nargs, nresults, base);
        (void)clua_watchdog_disarm(&app->watchdog);
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
                *ret_msg = strdup(fault_message(app, buf, sizeof(buf)));
        return f;
}
