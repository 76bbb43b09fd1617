/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/lua/plain SCRIPT [ARGS...]: plain Lua 5.4 on the shared liblua5.4.so
 * (Debian's; cella-lua links liblua5.4.a), with the whole standard library and
 * no limits, no hooks, no watchdog. bench/lua/run's control: the lua5.4 binary
 * has the VM linked in statically, so plain/lua5.4 is the cost of the shared
 * library's position-independent code alone.
 *
 * Runs SCRIPT's main chunk with ARGS as `...` (strings). Exits 0, 1 if the script
 * does not load or raises (the message on stderr), 2 on a bad command line.
 */
#include <stdio.h>

#include <lauxlib.h>
#include <lualib.h>

int main(int argc, char **argv)
{
        lua_State *L;
        int status;

        if (argc < 2) {
                fprintf(stderr, "usage: plain SCRIPT [ARGS...]\n");
                return 2;
        }
        L = luaL_newstate();
        if (!L) {
                fprintf(stderr, "plain: cannot create a state\n");
                return 1;
        }
        luaL_openlibs(L);
        status = luaL_loadfile(L, argv[1]);
        if (status == LUA_OK) {
                luaL_checkstack(L, argc, "too many arguments");
                for (int i = 2; i < argc; i++)
                        lua_pushstring(L, argv[i]);
                status = lua_pcall(L, argc - 2, 0, 0);
        }
        if (status != LUA_OK)
                fprintf(stderr, "plain: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return status == LUA_OK ? 0 : 1;
}
