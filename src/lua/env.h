/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One Lua app: its lua_State with the counting allocator (alloc.h), its own
 * globals holding only the allowlisted standard library (docs/design.md section 7,
 * docs/lua-api.md "Allowlist"), and the host-side state the event loop and the
 * schedulers keep for it (host.h). The CPU watchdog belongs to the app's host:
 * one POSIX timer per host thread, however many apps it runs.
 *
 * Limit errors (memory cap, CPU budget) and app.exit() doom the app: pcall,
 * xpcall and coroutine.resume re-raise them, and a count-1 hook raises again at
 * every Lua instruction, so no Lua code of the app runs again.
 */

#include <lauxlib.h>
#include <linux/openat2.h>
#include <lua.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "lua/alloc.h"
#include "lua/stats.h"
#include "lua/watchdog.h"

/* Default CPU budget of one callback (the main chunk is one): 5 s, as Redis's
 * busy-script limit (lua-time-limit 5000 ms). */
#define CLUA_DEFAULT_CALLBACK_NS (5ull * 1000000000u)

/* After the CPU budget ends, more CPU the app may burn outside Lua code (a long C
 * call, a pattern match: hooks do not run there) before the watchdog ends the
 * process with CLUA_EXIT_CPU: 1 s. */
#define CLUA_GRACE_NS (1000000000ull)
/* In a host of several apps, CPU an app may keep past the end of its slice where
 * it cannot be preempted before it is ended with CLUA_CPU_SLICE: 50 ms, five
 * default slices, so a neighbour's timer is late by at most about this much. */
#define CLUA_NOPREEMPT_NS (50ull * 1000000u)

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
        CLUA_EXITING,      /* app.exit() was called: not a fault, the app ends */
        /* In a host of several apps (packed), the app kept the CPU more than
         * CLUA_NOPREEMPT_NS past the end of its slice where it could not be
         * preempted: Lua code called from C (a metamethod, a __tostring), or
         * a long C call. Exit code CLUA_EXIT_CPU. */
        CLUA_CPU_SLICE,
} CLuaFault;

/* Why a task's coroutine yielded to the host (CLuaApp.host_yield). 0: the app's
 * own coroutine.yield at the callback's top level (a voluntary yield). */
enum {
        CLUA_YIELD_NONE = 0,
        CLUA_YIELD_PREEMPT = 1, /* the slice ended: the preemption hook yielded */
        CLUA_YIELD_WAIT = 2,    /* a kernel call or timer.sleep suspended the task */
};

typedef struct CLuaOptions {
        size_t memory_cap;    /* bytes; 0 = CLUA_ALLOC_DEFAULT_CAP */
        uint64_t callback_ns; /* CPU ns per callback; 0 = CLUA_DEFAULT_CALLBACK_NS */
        uint64_t total_ns;    /* CPU ns for the app's whole life; 0 = none */
} CLuaOptions;

typedef struct CLuaApp CLuaApp;
typedef struct CLuaHost CLuaHost;
typedef struct CLuaTask CLuaTask;
typedef struct CLuaWork CLuaWork;
typedef struct CLuaWait CLuaWait;
typedef struct CLuaTimer CLuaTimer;

struct CLuaApp {
        lua_State *L;
        CLuaHost *host;
        CLuaAlloc alloc;
        CLuaOptions opt;    /* with the defaults filled in */
        char *id;           /* "" when the host was not told */
        uint32_t index;     /* in host->apps */
        uint64_t lazy_done; /* bit per allowlisted global: materialized or overwritten */
        /* Set by the watchdog's handler; read by the hooks and the wrappers. */
        volatile sig_atomic_t doomed; /* a CLuaFault, or 0 */
        lua_State *volatile running;  /* the thread running Lua code now */
        uint64_t cpu_used_ns;         /* CPU time of all callbacks so far */
        char cpu_msg[96];             /* the message of the budget armed now */
        int exit_code;                /* app.exit's code */
        int host_yield;               /* CLUA_YIELD_*: why the running task yields */

        /* ---- kept by the host (host.c) ---- */
        CLuaAppState state;
        int priority;                    /* -20..19 */
        uint32_t weight;                 /* CFS weight of priority */
        uint64_t vruntime_ns;            /* fair scheduler */
        CLuaStatsApp *stats;             /* in the host's stats file, or its private copy */
        CLuaWork *work_head, *work_tail; /* what it has to run, in order */
        unsigned n_work;
        CLuaTask *current;  /* the task on the CPU */
        unsigned n_tasks;   /* tasks alive: queued, waiting, running */
        unsigned n_timers;  /* pending timers */
        unsigned n_subs;    /* bus subscriptions */
        int on_message_ref; /* registry refs, LUA_NOREF if none */
        int on_revoke_ref;
        int on_restart_ref; /* app.on_kernel_restart */
        int on_trim_ref;    /* app.on_trim */
        int gc_ref;         /* collectgarbage, for memory pressure (a task) */
        bool gc_queued;     /* that task is queued */
        uint64_t next_timer_id;
        CLuaTimer *timers;     /* its pending timers (list) */
        CLuaWait *waits;       /* its outstanding kernel calls (list) */
        struct Cella *cella;   /* its broker channel, NULL if none */
        int channel_fd;        /* until opened: the fd the spec named, or -1 */
        bool channel_broken;   /* it hung up or spoke garbage: no more kernel calls */
        struct CLuaSub *subs;  /* its bus subscriptions (n_subs of them) */
        struct CLuaIpc *ipc;   /* cella.ipc's state (host.h), NULL until it is loaded */
        int data_fd;           /* its data directory (O_PATH), or -1 */
        int out_fd;            /* print writes here (1 unless the spec gave a log_fd) */
        int err_fd;            /* faults and cella.log (2 unless the spec gave a log_fd) */
        unsigned long dropped; /* events dropped because its queue was full */
        size_t queued_bytes;   /* bytes of its queued events (charged to alloc) */
        uint64_t out_dropped;  /* bytes of print output a full log pipe dropped */
        bool main_done;        /* its main chunk finished or suspended once */

        /* require's modules: its folder (O_PATH, or -1), the files loaded so far */
        int root_fd;
        unsigned n_module_files;
        /* scheduler linkage */
        CLuaApp *rq_next;
        size_t heap_idx; /* fair: position in the heap + 1; 0 = not queued */
        bool queued;
        bool ended;
};

/*
 * Creates an app alone on a host of its own (host.h: clua_host_new with default
 * options, then clua_host_add): a state capped at opt->memory_cap bytes, the
 * allowlisted library, the cella.* modules in its require, and the host's watchdog
 * on the calling thread's CPU clock (the app must then run on this thread).
 * opt may be NULL for the defaults. Returns 0, -ENOMEM (the state or its library
 * does not fit in the cap), or the negative errno of the watchdog's timer.
 */
int clua_app_new(const CLuaOptions *opt, CLuaApp **ret);

/* Frees an app made by clua_app_new() and its host. NULL is a no-op. */
void clua_app_free(CLuaApp *app);

/*
 * Makes the Lua state of app (called by clua_host_add): app->opt and app->host
 * must be set. Returns 0 or -ENOMEM.
 */
int clua_env_new(CLuaApp *app);

/*
 * A Lua state made ahead for the next app of a host (a spare: a CLuaApp holding
 * only its state, its allocator's accounting and its collector task, as
 * clua_env_new() makes them with the default cap), so that a JOIN does not pay
 * for the state's creation (about 18 us, bench/lua). No code has run in it.
 * Returns 0 and *ret, or -ENOMEM.
 */
int clua_env_spare_new(CLuaApp **ret);

/* Closes a spare's state and frees it. NULL is a no-op. */
void clua_env_spare_free(CLuaApp *spare);

/*
 * clua_env_new(app) from *spare when there is one whose state fits app's cap
 * (app->opt.memory_cap, or the default): the state becomes app's (its allocator
 * accounts to app->alloc, capped at app's cap; lua_getextraspace names app) and
 * *spare is freed and set to NULL. Else clua_env_new(app), *spare untouched.
 * Returns 0 or -ENOMEM.
 */
int clua_env_new_from_spare(CLuaApp *app, CLuaApp **spare);

/*
 * Sets the app's folder, where require finds its modules, to the directory of
 * the entry file entry (a path; "." if it has no '/'): opened O_PATH and kept
 * in app->root_fd, every module then opened beneath it (openat2
 * RESOLVE_BENEATH). Returns 0, -ENOMEM or the negative errno of open.
 */
int clua_env_set_root(CLuaApp *app, const char *entry);

/*
 * Pushes a new io table of the app of L (libio.c, docs/lua-api.md "io"): files
 * beneath its /data and /tmp only, stdout/stderr to its output and log.
 * Returns 1.
 */
int clua_open_io(lua_State *L);

/*
 * Where the Lua code of a file's bytes buf (len bytes) starts, as liblua's
 * luaL_loadfilex() reads a file (lauxlib.c, skipBOM and skipcomment): after a
 * UTF-8 byte order mark, and, when the text then starts with '#' (a "#!" line, so
 * that a script runs both as a program and as a module), at the newline that ends
 * that first line, which is kept so that line numbers stay those of the file.
 * Returns the offset, 0 to len.
 */
size_t clua_file_code_start(const char *buf, size_t len);

/*
 * Compiles a text chunk of len bytes (binary chunks are refused) named name
 * (as in lua_load: "@file" or "=text") with the app's globals as its _ENV, and
 * pushes the function. The chunk is a file's bytes: a byte order mark and a first
 * line starting with '#' are skipped (clua_file_code_start()), as lua5.4 does. On failure pushes
 * nothing and, if ret_msg is not NULL, sets *ret_msg to a malloc'd message. Returns CLUA_OK,
 * CLUA_ERROR (syntax or binary chunk) or CLUA_MEMORY.
 */
CLuaFault clua_load(CLuaApp *app, const char *chunk, size_t len, const char *name, char **ret_msg);

/*
 * Calls the function below nargs arguments on the app's main thread as one
 * callback, synchronously (no scheduler: kernel calls block): under the
 * per-callback CPU budget (capped by what is left of the total budget), with a
 * traceback added to an error. Leaves nresults results (LUA_MULTRET: all) on
 * success, nothing on failure. If ret_msg is not NULL, on failure *ret_msg is a
 * malloc'd message (with traceback for CLUA_ERROR) or NULL if that did not fit.
 * Returns CLUA_OK or the fault; after a limit fault the app is doomed and every
 * later call fails with the same fault.
 */
CLuaFault clua_call(CLuaApp *app, int nargs, int nresults, char **ret_msg);

/* The app of L (any of its threads). */
CLuaApp *clua_app_of(lua_State *L);

/*
 * Writes len bytes of s to fd, one of app's output fds (its stdout or stderr:
 * a pipe to its log, non-blocking in a packed host), retrying on EINTR; what a
 * full pipe or an error refuses is counted in app->out_dropped, never waited
 * for. Used by print and by io's stdout and stderr.
 */
void clua_app_write(CLuaApp *app, int fd, const char *s, size_t len);

/*
 * Opens path beneath dirfd with openat2(how), how->resolve holding at least
 * RESOLVE_BENEATH (callers: require's module search, io's /data and /tmp),
 * retrying on EINTR. Returns the fd of a regular file, or -errno: the kernel's
 * (EXDEV for a path escaping dirfd, ELOOP, ENOENT, EACCES...) or -EISDIR for
 * anything that is not a regular file (a directory, FIFO, device, socket).
 */
int clua_open_beneath(int dirfd, const char *path, const struct open_how *how);

/*
 * The message of the app's fault (app->doomed), written into buf (size bytes):
 * "memory limit of N bytes exceeded", "CPU budget of N ms exceeded", ...
 * Returns buf.
 */
const char *clua_fault_message(CLuaApp *app, char *buf, size_t size);

/*
 * Dooms the app with fault f (CLUA_EXITING for app.exit) and raises the fault's
 * error in L. Does not return.
 */
int clua_doom(lua_State *L, CLuaFault f);

/*
 * Sets up the slice and the budget of the app about to run on the host's thread
 * (before lua_resume or lua_pcall), from now on the thread's CPU clock: its slice
 * ends after slice_ns (0: no slice, the budget only), its budget after budget_ns
 * (> 0), which dooms it with budget_for (CLUA_CPU_CALLBACK or CLUA_CPU_TOTAL).
 * When the slice ends the watchdog arms the preemption hook on the running
 * thread; where that thread cannot yield, the hook tries again every
 * CLUA_PREEMPT_RETRY_NS; in a host of several apps, an app still on the CPU
 * CLUA_NOPREEMPT_NS after its slice ended is doomed with CLUA_CPU_SLICE. A doomed
 * app that burns CLUA_GRACE_NS more CPU without running a Lua instruction or a
 * polling C loop (clua_poll) ends the process (exit 4). Returns 0 or a negative
 * errno of timer_settime.
 */
int clua_env_arm(CLuaApp *app, uint64_t slice_ns, uint64_t budget_ns, int budget_for);

/* The handlers of a host's timers (signal context; ud is the CLuaHost): the CPU
 * watchdog, and the wall-clock one that only arms the preemption hook. */
void clua_env_watchdog_handler(void *ud);
void clua_env_wall_handler(void *ud);

/*
 * For C loops an app can make long (pattern matching, table functions, the
 * reader of load): raises the app's fault if the watchdog doomed it (its budget
 * ended, or it could not be preempted). Costs one load; call every few hundred
 * steps.
 */
void clua_raise_doomed(lua_State *L);
#define clua_poll(L)                                                                               \
        do {                                                                                       \
                if (__builtin_expect(clua_app_of(L)->doomed != 0, 0))                              \
                        clua_raise_doomed(L);                                                      \
        } while (0)

/* cella-lua's own string.find/match/gmatch/gsub/rep (libstring.c) and
 * table.concat/insert/remove/move/unpack (libtable.c): bounded or polling
 * versions of liblua's. clua_table_sort_source: table.sort in Lua (libtable.c). */
extern const luaL_Reg clua_string_fns[];
extern const luaL_Reg clua_table_fns[];
extern const char clua_table_sort_source[];
/* sort_numbers(t, n): sorts t[1..n] with liblua's table.sort and returns true if
 * t has no metatable, n ≤ 65536 and every t[i] is a number; else returns false. */
int clua_sort_numbers(lua_State *L);

/* The light C function of the standard library lib.name ("string", "format";
 * lib "_G" for base), or NULL. For modules that need one (cella.log). */
lua_CFunction clua_std_function(const char *lib, const char *name);

/* ---- between env.c and host.c ---- */

/* The message handler of callbacks: lua.c's msghandler (traceback); a limit
 * error passes unchanged. */
int clua_msghandler(lua_State *L);

/* Sets app->cpu_msg for the per-callback (total false) or total budget. */
void clua_set_cpu_msg(CLuaApp *app, bool total);

/* CPU ns left for a callback that used used_in_callback ns so far: the smaller of
 * the per-callback budget and what is left of the total; *ret_for says which
 * (CLUA_CPU_CALLBACK or CLUA_CPU_TOTAL), and app->cpu_msg is set for it. */
uint64_t clua_budget_left(CLuaApp *app, uint64_t used_in_callback, int *ret_for);

/* Marks co as a task of the host (a tag in its extra space): coroutine.resume
 * and coroutine.wrap refuse it. */
void clua_env_mark_task(lua_State *co);
