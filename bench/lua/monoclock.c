/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/lua-join's clock for plain Lua: a Lua 5.4 C module with one function,
 * monoclock.ns() -> CLOCK_MONOTONIC in ns (an integer), the clock cella-lua's
 * timer.now() reads. Plain Lua has no monotonic clock of its own (os.clock is the
 * process's CPU time, os.time whole seconds).
 */
#include <time.h>

#include <lauxlib.h>

static int mono_ns(lua_State *L)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000000000 + ts.tv_nsec);
        return 1;
}

int luaopen_monoclock(lua_State *L);

int luaopen_monoclock(lua_State *L)
{
        static const luaL_Reg fns[] = {{"ns", mono_ns}, {NULL, NULL}};

        luaL_newlib(L, fns);
        return 1;
}
