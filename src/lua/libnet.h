/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * cella.net's internals shared by its parts (libnet.c: tcp, http; docs/lua-api.md
 * "cella.net").
 */

#include <stdint.h>

#include <lua.h>

#include "lua/host.h"

/* A connection the broker made (net.connect): the app's end of the kernel's
 * relay, non-blocking, watched in the host's epoll set while a task waits. One
 * reader and one writer may wait at once (two tasks). */
typedef struct NetConn {
        CLuaFdWatch watch;
        int fd;              /* -1 once closed */
        CLuaWait *rwait;     /* the task waiting to read, or NULL */
        CLuaWait *wwait;     /* the task waiting to write, or NULL */
        uint64_t timeout_ns; /* each read or write waits at most this long */
        char address[64];    /* the address the kernel connected to */
        char right[320];     /* the grant that allowed it */
} NetConn;

/* Initializes libcurl once per process with cella's charged allocators
 * (clua_ext_*, alloc.h). Returns 0 or -EIO. Thread-safe. */
int clua_net_global_init(void);

/* Pushes a new connection userdata owning fd (class "cella.net.conn"). */
NetConn *clua_net_conn_push(lua_State *L, int fd);

/* Closes c's fd (stops its watch) and wakes the tasks waiting on it. Idempotent. */
void clua_net_conn_close(NetConn *c);
