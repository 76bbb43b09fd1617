/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.timer: timers kept by the host on CLOCK_MONOTONIC (docs/lua-api.md
 * "cella.timer"); they need no right and no kernel call.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <lauxlib.h>

#include "base/time-util.h"
#include "lua/host.h"
#include "lua/lua-modules.h"

/* Seconds argument i as ns, from min_s to CLUA_TIMER_MAX_S, 1 ms resolution. */
static uint64_t check_seconds(lua_State *L, int i, double min_s)
{
        lua_Number s = luaL_checknumber(L, i);

        luaL_argcheck(L, !isnan(s) && s >= min_s && s <= CLUA_TIMER_MAX_S, i,
                      "seconds out of range");
        return (uint64_t)llround(s * 1000.0) * 1000000u;
}

static int add(lua_State *L, const char *fname, bool every)
{
        CLuaApp *app = clua_app_of(L);
        uint64_t ns = check_seconds(L, 1, every ? 0.001 : 0.0);
        CLuaTimer *t;
        int ref;

        luaL_checktype(L, 2, LUA_TFUNCTION);
        lua_settop(L, 2);
        ref = luaL_ref(L, LUA_REGISTRYINDEX);
        t = clua_timer_add(app, ns, every ? ns : 0, ref, NULL);
        if (!t) {
                int e = errno;

                luaL_unref(L, LUA_REGISTRYINDEX, ref);
                if (e == EBUSY)
                        return luaL_error(L, "%s: too many timers (at most %d)", fname,
                                          (int)CLUA_TIMERS_MAX);
                return luaL_error(L, "%s: %s", fname, strerror(e));
        }
        lua_pushinteger(L, (lua_Integer)t->id);
        return 1;
}

static int timer_after(lua_State *L)
{
        return add(L, "cella.timer.after", false);
}

static int timer_every(lua_State *L)
{
        return add(L, "cella.timer.every", true);
}

static int timer_cancel(lua_State *L)
{
        lua_Integer id = luaL_checkinteger(L, 1);

        lua_pushboolean(L, id > 0 && clua_timer_cancel(clua_app_of(L), (uint64_t)id));
        return 1;
}

static int timer_sleep(lua_State *L)
{
        return clua_sleep(L, check_seconds(L, 1, 0.0));
}

static int timer_now(lua_State *L)
{
        lua_pushnumber(L, (lua_Number)now_monotonic_ns() / 1e9);
        return 1;
}

int luaopen_cella_timer(lua_State *L)
{
        static const luaL_Reg fns[] = {
                {"after", timer_after}, {"every", timer_every}, {"cancel", timer_cancel},
                {"sleep", timer_sleep}, {"now", timer_now},     {NULL, NULL},
        };

        luaL_newlib(L, fns);
        return 1;
}
