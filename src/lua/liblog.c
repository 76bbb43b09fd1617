/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.log: info/warn/error, one line each on stderr (the supervisor's app log
 * collects it), "INFO: ", "WARN: " or "ERROR: " first. A message longer than
 * LOG_MSG_MAX bytes is cut and marked; control characters and backslashes are
 * escaped (\n, \t, \r, \\, \xHH) so an app cannot forge lines or terminal
 * sequences. The line goes out in one write(2): on a pipe a write of at most
 * PIPE_BUF (4096) bytes is atomic, so plain lines of apps sharing a pipe do not
 * interleave; a line grown past that by escapes is still one write call.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/macro.h"
#include "lua/lua-modules.h"

/* Longest message logged, bytes of the formatted text before escaping. */
#define LOG_MSG_MAX 2048

#define LOG_FD_KEY "cella.log.fd"

int cella_lua_set_log_fd(lua_State *L, int fd)
{
        if (fd < 0)
                return -EBADF;
        lua_pushinteger(L, fd);
        lua_setfield(L, LUA_REGISTRYINDEX, LOG_FD_KEY);
        return 0;
}

static int log_fd(lua_State *L)
{
        int fd = 2;
        if (lua_getfield(L, LUA_REGISTRYINDEX, LOG_FD_KEY) == LUA_TNUMBER)
                fd = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        return fd;
}

/* Formats the arguments like string.format (upvalue 1) when there are several. */
static const char *log_message(lua_State *L, size_t *n)
{
        int nargs = lua_gettop(L);

        if (nargs == 0)
                luaL_error(L, "cella.log: message expected");
        if (nargs == 1 || lua_isnil(L, lua_upvalueindex(1)))
                return luaL_tolstring(L, 1, n);
        luaL_checkstring(L, 1);
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 1);
        lua_call(L, nargs, 1);
        return luaL_tolstring(L, -1, n);
}

static int log_line(lua_State *L, const char *level)
{
        static const char hexd[] = "0123456789abcdef";
        size_t n, cut, lvl = strlen(level);
        const char *msg = log_message(L, &n);
        /* Worst case: every byte becomes \xHH (4 bytes), plus prefix and marker. */
        char line[16 + LOG_MSG_MAX * 4 + 32];
        size_t o = 0;

        memcpy(line, level, lvl);
        o = lvl;
        line[o++] = ':';
        line[o++] = ' ';
        cut = n > LOG_MSG_MAX ? LOG_MSG_MAX : n;
        for (size_t i = 0; i < cut; i++) {
                unsigned char c = (unsigned char)msg[i];
                if (c == '\n' || c == '\t' || c == '\r' || c == '\\') {
                        line[o++] = '\\';
                        line[o++] = c == '\n' ? 'n' : c == '\t' ? 't' : c == '\r' ? 'r' : '\\';
                } else if (c < 0x20 || c == 0x7f) {
                        line[o++] = '\\';
                        line[o++] = 'x';
                        line[o++] = hexd[c >> 4];
                        line[o++] = hexd[c & 15];
                } else
                        line[o++] = (char)c;
        }
        if (cut < n) {
                static const char mark[] = "...[truncated]";
                memcpy(line + o, mark, sizeof mark - 1);
                o += sizeof mark - 1;
        }
        line[o++] = '\n';
        /* Logging never fails the app: a full or closed stderr drops the line. */
        for (size_t w = 0; w < o;) {
                ssize_t k = RETRY_EINTR(write(log_fd(L), line + w, o - w));
                if (k <= 0)
                        break;
                w += (size_t)k;
        }
        return 0;
}

/* log.info(fmt, ...) / log.warn / log.error: one line, no return value. */
static int log_info(lua_State *L)
{
        return log_line(L, "INFO");
}

static int log_warn(lua_State *L)
{
        return log_line(L, "WARN");
}

static int log_error(lua_State *L)
{
        return log_line(L, "ERROR");
}

static const luaL_Reg log_funcs[] = {
        {"info", log_info},
        {"warn", log_warn},
        {"error", log_error},
        {NULL, NULL},
};

int luaopen_cella_log(lua_State *L)
{
        int top;

        luaL_newlibtable(L, log_funcs);
        top = lua_gettop(L);
        /* string.format through the strings' metatable (in cella-lua, the string
         * library is built on that first use), captured now: the app's _ENV cannot
         * swap it. */
        lua_pushliteral(L, "");
        if (lua_getfield(L, -1, "format") != LUA_TFUNCTION) {
                lua_pop(L, 1);
                lua_pushnil(L);
        }
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
        luaL_setfuncs(L, log_funcs, 1);
        return 1;
}
