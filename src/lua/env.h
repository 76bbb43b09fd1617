/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One Lua app: its lua_State with the counting allocator (alloc.h), its CPU
 * watchdog (watchdog.h), and its own _ENV holding only the allowlisted standard
 * library (DESIGN.md section 7, docs/lua-api.md "Allowlist").
 *
 * Limit errors (memory cap, CPU budget) doom the app: pcall, xpcall and
 * coroutine.resume re-raise them, and once the CPU budget ended a count-1 hook
 * raises again at every Lua instruction, so no Lua code of the app runs again.
 */

#include <lua.h>
#include <signal.h>
#include <stdint.h>

#include "lua/alloc.h"
#include "lua/watchdog.h"

/* Default CPU budget of one callback (the main chunk is one): 5 s, as Redis's
 * busy-script limit (lua-time-limit 5000 ms). */
#define CLUA_DEFAULT_CALLBACK_NS (5ull * 1000000000u)

/* After the CPU budget ends, more CPU the app may burn outside Lua code (a long C
 * call, a pattern match, a finalizer: hooks do not run there) before the watchdog
 * ends the process with CLUA_EXIT_CPU: 1 s. */
#define CLUA_GRACE_NS (1000000000ull)

/* Exit codes of cella-lua (docs/lua-api.md "Runtime"). */
enum {
        CLUA_EXIT_ERROR = 1,  /* an uncaught error, or the entry does not compile */
        CLUA_EXIT_USAGE = 2,  /* bad command line or environment, unreadable entry */
        CLUA_EXIT_MEMORY = 3, /* memory limit exceeded */
        CLUA_EXIT_CPU = 4,    /* CPU budget (per callback or total) exceeded */
        CLUA_EXIT_INTERNAL = 5,
};

typedef enum CLuaFault {
        CLUA_OK = 0,
        CLUA_ERROR,        /* a Lua error the app did not catch */
        CLUA_MEMORY,       /* the memory cap (or malloc) refused an allocation */
        CLUA_CPU_CALLBACK, /* a callback used up its CPU budget */
        CLUA_CPU_TOTAL,    /* the app used up its total CPU budget */
} CLuaFault;

typedef struct CLuaOptions {
        size_t memory_cap;    /* bytes; 0 = CLUA_ALLOC_DEFAULT_CAP */
        uint64_t callback_ns; /* CPU ns per callback; 0 = CLUA_DEFAULT_CALLBACK_NS */
        uint64_t total_ns;    /* CPU ns for the app's whole life; 0 = none */
} CLuaOptions;

typedef struct CLuaApp CLuaApp;

struct CLuaApp {
        lua_State *L;
        CLuaAlloc alloc;
        CLuaWatchdog watchdog;
        CLuaOptions opt; /* with the defaults filled in */
        int env_ref;     /* registry reference of the app's _ENV */
        /* Set by the watchdog's handler; read by the hook and the wrappers. */
        volatile sig_atomic_t doomed;    /* a CLuaFault, or 0 */
        volatile sig_atomic_t armed_for; /* CLUA_CPU_CALLBACK or CLUA_CPU_TOTAL */
        lua_State *volatile running;     /* the thread running Lua code now */
        uint64_t cpu_used_ns;            /* CPU time of all callbacks so far */
        char cpu_msg[96];                /* the message of the budget armed now */
        /*
         * Event loop hook point for later slices (timers, bus, call replies through
         * libcella): n_sources counts registered callbacks; while it is > 0 the host
         * calls dispatch(app, dispatch_ud), which waits for one event and runs its
         * callback with clua_call(). dispatch returns 0, or a negative errno to stop.
         */
        unsigned n_sources;
        int (*dispatch)(CLuaApp *app, void *ud);
        void *dispatch_ud;
};

/*
 * Creates an app: a state capped at opt->memory_cap bytes, the allowlisted
 * library in a fresh _ENV, the cella.* modules in its require, and a watchdog
 * on the calling thread's CPU clock (the app must then run on this thread).
 * opt may be NULL for the defaults. Returns 0, -ENOMEM (the state or its library
 * does not fit in the cap), or the negative errno of the watchdog's timer.
 */
int clua_app_new(const CLuaOptions *opt, CLuaApp **ret);

/* Closes the state and the watchdog and frees app. NULL is a no-op. */
void clua_app_free(CLuaApp *app);

/*
 * Compiles a text chunk of len bytes (binary chunks are refused) named name
 * (as in lua_load: "@file" or "=text") with the app's _ENV as its upvalue, and
 * pushes the function. On failure pushes nothing and, if ret_msg is not NULL,
 * sets *ret_msg to a malloc'd message. Returns CLUA_OK, CLUA_ERROR (syntax or
 * binary chunk) or CLUA_MEMORY.
 */
CLuaFault clua_load(CLuaApp *app, const char *chunk, size_t len, const char *name, char **ret_msg);

/*
 * Calls the function below nargs arguments on the stack as one callback: under
 * the per-callback CPU budget (capped by what is left of the total budget), with
 * a traceback added to an error. Leaves nresults results (LUA_MULTRET: all) on
 * success, nothing on failure. If ret_msg is not NULL, on failure *ret_msg is a
 * malloc'd message (with traceback for CLUA_ERROR) or NULL if that did not fit.
 * Returns CLUA_OK or the fault; after a limit fault the app is doomed and every
 * later call fails with the same fault.
 */
CLuaFault clua_call(CLuaApp *app, int nargs, int nresults, char **ret_msg);

/* The app of L (any of its threads). */
CLuaApp *clua_app_of(lua_State *L);
