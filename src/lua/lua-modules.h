/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The cella.* Lua modules written in C (docs/lua-api.md). Each luaopen_* takes a
 * lua_State, pushes the module table and returns 1, as package.preload expects.
 * None of them keeps state outside its lua_State: per-state settings live in
 * upvalues and the registry, so many apps can share one process (packed mode).
 */

#include <lauxlib.h>
#include <lua.h>

/* cella.json: encode/decode with depth and size limits (src/lua/libjson.c). */
int luaopen_cella_json(lua_State *L);

/* cella.crypto: libsodium random, BLAKE2b, secretbox, ed25519 (src/lua/libcrypto.c). */
int luaopen_cella_crypto(lua_State *L);

/* cella.log: info/warn/error, one escaped line each (src/lua/liblog.c). */
int luaopen_cella_log(lua_State *L);

/* cella.fs: files beneath the app's data directory (src/lua/libfs.c). */
int luaopen_cella_fs(lua_State *L);

/* cella.db: SQLite databases in the app's data directory (src/lua/libdb.c). */
int luaopen_cella_db(lua_State *L);

/* cella.timer: after/every/cancel/sleep/now on the host's clock (src/lua/libtimer.c). */
int luaopen_cella_timer(lua_State *L);

/* cella.bus: publish/subscribe/send/request/on_message through the broker (libbus.c). */
int luaopen_cella_bus(lua_State *L);

/* cella.perm: query/request/list/on_revoke (src/lua/libapp.c). */
int luaopen_cella_perm(lua_State *L);

/* cella.app: id/info/launch/exit/stats (src/lua/libapp.c). */
int luaopen_cella_app(lua_State *L);

/* cella.notify: post (src/lua/libapp.c). */
int luaopen_cella_notify(lua_State *L);

/* cella.net: tcp, http and websocket clients over connections the broker makes
 * (src/lua/libnet.c). */
int luaopen_cella_net(lua_State *L);

/* cella.ipc: shared memory, pipes and channels, semaphores and queues between apps,
 * as handles the kernel hands out (src/lua/libipc.c). */
int luaopen_cella_ipc(lua_State *L);

/*
 * Sets the data directory of L for cella.fs and cella.db: dirfd is an open
 * directory (O_PATH is enough; it is duplicated with F_DUPFD_CLOEXEC, the caller
 * keeps its own), path its absolute name (at most 1024 bytes; cella.db opens
 * databases by name beneath it). Call before the first require of cella.fs or
 * cella.db; without it they open "/data". Packed mode gives each app its own
 * dir. Returns 0, -EINVAL (bad path), -EEXIST (already set) or -errno of fcntl.
 * Raises a Lua memory error if the state is out of memory.
 */
int cella_lua_set_data_dir(lua_State *L, int dirfd, const char *path);

/*
 * Pushes the data directory userdata of L (setting it up from "/data" on first
 * use) and returns its fd, storing its absolute path in *ret_path (valid while
 * the userdata lives). Raises a Lua error if "/data" cannot be opened.
 * Shared by cella.fs and cella.db.
 */
int cella_lua_data_dir(lua_State *L, const char **ret_path);

/*
 * Sets the fd cella.log writes to in L (default 2, stderr). fd is not owned.
 * Returns 0 or -EBADF for a negative fd.
 */
int cella_lua_set_log_fd(lua_State *L, int fd);

/*
 * luaL_newmetatable(L, name) for a class of userdata (or tables) an app may
 * hold, protected: its __metatable is name, so getmetatable() returns that
 * string and setmetatable() refuses, and an app can neither read the
 * metamethods (a __gc or __close called on another value) nor add a __gc (a
 * finalizer runs with hooks off, out of the CPU budget's reach). Returns as
 * luaL_newmetatable: 1 if the metatable is new (fill it in), 0 if it existed;
 * either way it is on top of the stack.
 */
static inline int cella_lua_newclass(lua_State *L, const char *name)
{
        if (!luaL_newmetatable(L, name))
                return 0;
        lua_pushstring(L, name);
        lua_setfield(L, -2, "__metatable");
        return 1;
}

/*
 * Registers the protected class name (cella_lua_newclass()) of a resource an app
 * holds through methods: methods (NULL: none) as its __index, gc as its __gc and
 * __close (so `local x <close> = ...` frees it at the scope's end). Does nothing if
 * the class exists already. Leaves the stack as it was.
 */
static inline void cella_lua_defclass(lua_State *L, const char *name, const luaL_Reg *methods,
                                      lua_CFunction gc)
{
        if (!cella_lua_newclass(L, name)) {
                lua_pop(L, 1);
                return;
        }
        if (methods) {
                lua_newtable(L);
                luaL_setfuncs(L, methods, 0);
                lua_setfield(L, -2, "__index");
        }
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__close");
        lua_pop(L, 1);
}

/*
 * Gives the value on top of the stack (a userdata holding a resource) the protected
 * class name, made by cella_lua_newclass() with __gc = gc the first time: the box
 * pattern of every module that holds an fd, a DIR or a file across a Lua error. The
 * value stays on top.
 */
static inline void cella_lua_setclass_gc(lua_State *L, const char *name, lua_CFunction gc)
{
        if (cella_lua_newclass(L, name)) {
                lua_pushcfunction(L, gc);
                lua_setfield(L, -2, "__gc");
        }
        lua_setmetatable(L, -2);
}
