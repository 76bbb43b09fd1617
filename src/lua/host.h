/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The cella-lua host: one thread running one or many apps (packed mode), each in
 * its own lua_State, with one event loop (timers, broker channels) and one
 * scheduler (docs/lua-api.md "Callbacks and the event loop", "Packed mode").
 *
 * Every callback runs as a task: a coroutine of the app's state resumed by the
 * host. A task ends (its callback returned), waits (a kernel call, timer.sleep:
 * CLuaWait), yields (the app's coroutine.yield at top level), or is preempted
 * when its slice ends (the watchdog arms a count-1 hook that yields it). Which
 * ready app runs next is the scheduler's choice (CLuaSchedPolicy).
 */

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "cella.h"
#include "lua/env.h"
#include "lua/heap.h"
#include "lua/stats.h"

/* Limits (docs/lua-api.md). */
#define CLUA_HOST_APPS_MAX    65536u /* apps per host */
#define CLUA_TIMERS_MAX       1024u  /* pending timers per app */
#define CLUA_WORK_MAX         4096u  /* queued events per app; more are dropped */
#define CLUA_SLICE_DEFAULT_NS (10ull * 1000000u)
/* Wall time a slice may take, in slices (a host of several apps). */
#define CLUA_SLICE_WALL_FACTOR 2u
/* A slice that ends where the task cannot yield is tried again this much CPU
 * later (1 ms), without a count hook in between. */
#define CLUA_PREEMPT_RETRY_NS (1000000ull)
#define CLUA_TIMER_MAX_S      2592000.0 /* 30 days */

typedef struct CLuaHostOptions {
        CLuaSchedPolicy policy;
        uint64_t slice_ns; /* 0 = CLUA_SLICE_DEFAULT_NS */
        int stats_fd;      /* a file of clua_stats_size(n_apps) bytes, or -1 */
        uint32_t n_apps;   /* the host's slots: how many apps it holds at once (sizes the
                              stats file, whose n_apps it is from the start); an app that
                              ended leaves its slot to a join */
        /* The host control channel (hostctl.h), used only when control is set: the
         * loop watches control_fd, calls control(h, control_userdata) when it is
         * readable (between slices, never with an app on the CPU), and keeps running
         * without apps while the channel is open (clua_host_run()). control returns
         * 0, or a negative errno to close the channel (its EOF, a broken channel). */
        int control_fd;
        int (*control)(CLuaHost *h, void *userdata);
        void *control_userdata;
} CLuaHostOptions;

typedef struct CLuaAppSpec {
        const char *id;   /* may be NULL */
        const char *data; /* data directory, or NULL */
        int channel_fd;   /* broker channel, or -1; owned by the app from then on */
        int log_fd;       /* print/cella.log, or -1 (stdout/stderr); owned from then on */
        int priority;     /* -20..19 */
        CLuaOptions opt;
} CLuaAppSpec;

typedef enum CLuaWorkKind {
        CLUA_WORK_RESUME, /* resume a task (preempted, woken, or yielded) */
        CLUA_WORK_CALL,   /* run the function ref with args (a new task) */
} CLuaWorkKind;

/* One argument of a CLUA_WORK_CALL: a string, an integer or a boolean. */
typedef struct CLuaArg {
        enum { CLUA_ARG_NIL, CLUA_ARG_INT, CLUA_ARG_STR, CLUA_ARG_BOOL, CLUA_ARG_MSG } kind;
        int64_t i;
        char *s; /* malloc'd, len bytes */
        size_t len;
} CLuaArg;

/* Something an app has to run. */
struct CLuaWork {
        CLuaWork *next;
        CLuaWorkKind kind;
        CLuaTask *task;       /* RESUME */
        int fn_ref;           /* CALL: registry ref of the function (not owned, unless owns_ref) */
        bool owns_ref;        /* CALL: unref fn_ref after use (one-shot timers) */
        CLuaTimer *timer;     /* CALL of a periodic timer: its firing is pending */
        uint64_t reply_token; /* CALL of a bus request: answer with the results */
        /* CALL of a bus message: msg = {topic, sender, data, content_type, request} */
        bool is_msg;
        char *topic, *sender, *data, *content_type;
        size_t data_len;
        int n_args;
        CLuaArg args[2];
        size_t charged; /* bytes charged to the app's allocator while queued */
        bool is_gc;     /* CALL of the memory pressure collection (app->gc_queued) */
};

struct CLuaTask {
        lua_State *co;
        int ref; /* registry ref anchoring co */
        CLuaApp *app;
        uint64_t cpu_ns; /* CPU of this callback so far */
        CLuaWait *wait;  /* what it waits for, or NULL */
        uint64_t reply_token;
        bool is_main;
};

/* A kernel call (or a sleep) a task waits for. */
struct CLuaWait {
        CLuaWait *next; /* in app->waits */
        CLuaApp *app;
        CLuaTask *task; /* NULL: the caller blocks (not yieldable) */
        uint64_t request_id;
        int (*decode)(lua_State *L, CellaReply *reply); /* pushes results */
        CellaReply *reply;                              /* a copy once it came */
        bool done;
        CLuaTimer *timer; /* timer.sleep, or an I/O wait's timeout */
        /* An I/O wait (clua_io_wait()): woken by an fd watch or its timeout, never
         * by a reply; owner is the slot that names it (cleared when it is freed). */
        bool io;
        bool io_woken; /* woken by clua_io_wake(), not by the timeout */
        CLuaWait **owner;
        /* clua_kernel_call_k(): where the task goes on after decode */
        lua_KFunction then;
        lua_KContext then_ctx;
};

struct CLuaTimer {
        CLuaApp *app;
        uint64_t id;
        uint64_t deadline_ns; /* CLOCK_MONOTONIC */
        uint64_t interval_ns; /* 0: one-shot */
        int fn_ref;           /* LUA_NOREF for a sleep */
        CLuaWait *wait;       /* timer.sleep */
        /* A C timer (clua_timer_add_cb()): cb(cb_data) from the loop, never with Lua
         * running; *owner names it and is cleared when the timer is freed. */
        void (*cb)(void *cb_data);
        void *cb_data;
        CLuaTimer **owner;
        size_t heap_idx; /* in host->timer_heap + 1 */
        bool pending;    /* periodic: a call is queued and not started yet */
        CLuaTimer *next; /* in app->timers */
};

/* A bus subscription of an app: the broker's id and the callback's registry ref. */
typedef struct CLuaSub {
        uint64_t id;
        int fn_ref;
} CLuaSub;

#define CLUA_SUBS_MAX 64u /* as the broker's limit per app */

struct CLuaHost {
        CLuaHostOptions opt;
        CLuaWatchdog watchdog;
        /* In a host of several apps: a CLOCK_MONOTONIC timer that preempts a
         * slice after CLUA_SLICE_WALL_FACTOR slices of wall time, so an app
         * blocked in I/O (SQLite's fsyncs, file writes) uses no more of the
         * thread's time than its CPU slice would. */
        CLuaWatchdog wall;
        CLuaApp **apps;
        uint32_t n_apps, cap_apps;
        uint32_t n_alive;
        CLuaApp *running; /* the app on the CPU, for the watchdog */
        CLuaApp *last;    /* the app that ran the last slice */
        /* run queues: round-robin FIFO; priority: one FIFO per level; fair: heap */
        CLuaApp *rr_head, *rr_tail;
        CLuaApp *prio_head[40], *prio_tail[40];
        uint64_t prio_mask;
        CLuaHeap run_heap; /* fair: ready apps by vruntime */
        uint64_t min_vruntime;
        CLuaHeap timer_heap; /* every pending timer, by deadline */
        int epfd;
        CLuaStatsHost *stats;
        CLuaStatsApp *app_stats; /* stats->apps, or a private array */
        size_t stats_size;
        bool own_stats;
        int first_fault; /* exit code of the first app fault, 0 if none */
        uint64_t cpu0;
        /* The running app's slice and budget, on the thread's CPU clock
         * (clua_env_arm): when its budget ends (dooms it with budget_for), when
         * its slice ends, when it is doomed for not yielding (0 until the slice
         * ended; UINT64_MAX in a host of one app), when a doomed app's grace
         * ends. Written by the host and by the watchdog's signal handler. */
        volatile uint64_t budget_end_ns;
        volatile int budget_for;
        volatile uint64_t slice_end_ns;
        volatile uint64_t overrun_end_ns;
        volatile uint64_t soft_stop_ns; /* alloc.h: halfway into the overrun, or 0 */
        volatile uint64_t grace_end_ns;
        /* CLUA_NOPREEMPT_NS in a host of several apps, else 0 (no limit) */
        uint64_t nopreempt_ns;
        uint32_t *runs; /* cap_apps: the run each slot's app started with */
        bool ctl_open;  /* opt.control_fd is watched: the host waits for joins */
        /* While ctl_open: a Lua state made ahead, when the loop had nothing to do,
         * for the next join's app (clua_env_spare_new()); or NULL. */
        CLuaApp *spare;
};

/*
 * Creates a host on the calling thread: its watchdog (a POSIX timer on this
 * thread's CPU clock), its epoll set, and its stats (mapped shared from
 * o->stats_fd, which must hold clua_stats_size(o->n_apps) bytes; else private).
 * Returns 0 and *ret, or -EINVAL (bad options, stats file too small), -ENOMEM,
 * or the negative errno of timer_create/epoll_create1/mmap.
 */
int clua_host_new(const CLuaHostOptions *o, CLuaHost **ret);

/* Frees the host and every app it still holds. NULL is a no-op. */
void clua_host_free(CLuaHost *h);

/*
 * Adds an app: a new state (clua_env_new) with spec's limits, priority, data
 * directory and channel. Returns 0 and *ret, or -E2BIG (CLUA_HOST_APPS_MAX or
 * more than o->n_apps), -EINVAL (priority out of range), -ENOMEM, or the
 * negative errno of opening the data directory.
 */
int clua_host_add(CLuaHost *h, const CLuaAppSpec *spec, CLuaApp **ret);

/*
 * The host-side entry point of a join (docs/lua-api.md "Joining a running host"),
 * and of each app of a spec: adds an app as clua_host_add() does, but into slot
 * index (< o->n_apps) that no app holds or whose app ended (its remains are freed
 * here). The slot's stats record is reset and run (the supervisor's number of this
 * run: 0 for the spec's apps, >= 1 for a JOIN's) stored in it first. Then the
 * caller loads and starts it (clua_host_start()). Do not mix with clua_host_add(),
 * which fills slots in order. Returns 0 and *ret; -ERANGE (index out of range);
 * -EBUSY (its app still runs); else
 * clua_host_add()'s errors (the app then ended, FAILED with CLUA_EXIT_INTERNAL).
 * On every error spec's fds are closed.
 */
int clua_host_join(CLuaHost *h, uint32_t index, uint32_t run, const CLuaAppSpec *spec,
                   CLuaApp **ret);

/*
 * Ends the app in slot index now, as if it returned (fault 0), if its run is run
 * (0 for an app of the spec): a stop meant for an earlier run of the slot does
 * nothing. Never with the app on the CPU (from the control callback). Returns 0,
 * -ESRCH (no such app running, or another run).
 */
int clua_host_stop_app(CLuaHost *h, uint32_t index, uint32_t run);

/*
 * Sets the scheduling priority (-20..19, a nice value) of the app in slot index to
 * priority and records its CPU class cpu_class (CLuaCpuClass, stats.h) in its stats
 * record, if its run is run (hostctl.h, a PRIORITY; docs/memory.md "CPU"): the fair
 * scheduler weighs it by clua_prio_weight(priority) from its next slice on (its
 * virtual runtime so far stays), the priority scheduler queues it at that level
 * (a queued app moves to the end of its new level's queue), the round-robin
 * scheduler ignores priorities. Never with the app on the CPU (from the control
 * callback). Returns 0, -EINVAL (out of range), -ESRCH (no such app running, or
 * another run), -ENOMEM (re-queueing it in the fair scheduler's heap).
 */
int clua_host_set_priority(CLuaHost *h, uint32_t index, uint32_t run, uint32_t cpu_class,
                           int priority);

/*
 * Queues the function on top of app's stack (popped) with the nargs strings
 * argv[0..nargs) as its main chunk. Returns 0 or -ENOMEM.
 */
int clua_host_start(CLuaApp *app, int nargs, char **argv);

/* Writes "cella-lua: [ID: ]message" (printf-style, at most 1 KiB) to the app's
 * stderr (its log in packed mode); the id only when the host runs several apps. */
void clua_app_message(CLuaApp *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ends app with exit code code (it could not start: its entry failed to load). */
void clua_host_app_failed(CLuaApp *app, int code);

/*
 * Runs the event loop until every app has ended and, with a control channel, until
 * no join can come: once no app is left it takes what the channel holds, then
 * shuts its reading side (a later send fails with EPIPE: the supervisor's "host
 * ending") and takes what came before that; only then it returns. Faults are reported on the
 * app's stderr ("cella-lua: [ID: ]message"). Returns 0 if every app ended
 * without a fault, else the exit code of the first fault (CLUA_EXIT_*), or a
 * negative errno if the loop itself failed.
 */
int clua_host_run(CLuaHost *h);

/* Queues work w (malloc'd, owned by the queue from then on) for app; makes the
 * app ready. Its bytes (the struct and its strings) count against the app's
 * memory cap while it is queued. Over CLUA_WORK_MAX queued, or past the cap, w
 * is dropped (freed) and counted: returns -ENOBUFS; else 0. */
int clua_host_queue(CLuaApp *app, CLuaWork *w);

/* Points the app's queued calls of the function old_ref at new_ref, or drops
 * them if new_ref is LUA_NOREF: before old_ref is unref'd (an unsubscribe, a
 * cancelled timer, a replaced handler), so no queued work calls a freed ref. */
void clua_host_retarget(CLuaApp *app, int old_ref, int new_ref);

/* Frees a work item not queued. */
void clua_work_free(CLuaWork *w);

/* Frees task t (unanchors its thread) and counts it out of its app's tasks. */
void clua_task_free(CLuaTask *t);

/* Wakes the task wait belongs to (queues its resume) and marks wait done.
 * Returns 0 or -ENOMEM. */
int clua_host_wake(CLuaWait *wait);

/* Answers the bus request task t served (kernel.c): its nres results on t->co
 * (data string, content type), or failed: EIO with the error message on top. */
void clua_bus_answer(CLuaApp *app, CLuaTask *t, int nres, bool failed);

/* The CFS weight of a priority -20..19: Linux's sched_prio_to_weight
 * (kernel/sched/core.c), 1024 at 0. */
uint32_t clua_prio_weight(int priority);

/* Timers (libtimer.c uses them). clua_timer_add: a timer firing after delay_ns,
 * then every interval_ns (0: once), calling fn_ref (owned by the timer) or waking
 * wait. Returns the timer or NULL (-ENOMEM, or CLUA_TIMERS_MAX: errno set). */
CLuaTimer *clua_timer_add(CLuaApp *app, uint64_t delay_ns, uint64_t interval_ns, int fn_ref,
                          CLuaWait *wait);
/* Removes a sleep's timer t without waking its wait. */
void clua_timer_cancel_wait(CLuaApp *app, CLuaTimer *t);

/* Cancels the app's timer id. Returns true if it was pending. */
bool clua_timer_cancel(CLuaApp *app, uint64_t id);

/* ---- I/O of C modules (iowait.c; cella.net) ----------------------------------- */

/*
 * An fd in the host's epoll set on behalf of an app's C code: when it is ready,
 * the loop calls cb(w, revents) (between slices, never with Lua running, with
 * clua_alloc_current set to the app's allocator). cb must not free any watch and
 * should do little: note what came and wake the waiting task (clua_io_wake()),
 * which does the work in its own slice (cella.net runs libcurl there). The
 * struct must stay put while registered. Epoll is level-triggered: a cb that
 * leaves the fd watched for what is still ready is called again at once.
 */
typedef struct CLuaFdWatch {
        CLuaApp *app;
        int fd;          /* the fd registered, -1 when none */
        uint32_t events; /* EPOLLIN | EPOLLOUT registered now, 0 when none */
        void (*cb)(struct CLuaFdWatch *w, uint32_t revents);
        void *userdata;
} CLuaFdWatch;

/*
 * Watches fd for events (EPOLLIN and/or EPOLLOUT; EPOLLERR and EPOLLHUP are always
 * reported): adds it to the host's epoll set, changes what it waits for, or with
 * events 0 removes it. One fd per watch; a new fd replaces the old one. Returns 0
 * or the negative errno of epoll_ctl().
 */
int clua_fd_watch_set(CLuaFdWatch *w, int fd, uint32_t events);

/* Removes w's fd from the epoll set (before the fd is closed). No-op if none. */
void clua_fd_watch_stop(CLuaFdWatch *w);

/*
 * A C timer of app: cb(cb_data) after delay_ns of CLOCK_MONOTONIC, once; *owner
 * (NULL allowed) is set to the timer, and cleared when it fires or is freed (the
 * app ended). Counts against CLUA_TIMERS_MAX. Returns 0, -EBUSY, -ENOMEM.
 */
int clua_timer_add_cb(CLuaApp *app, uint64_t delay_ns, void (*cb)(void *), void *cb_data,
                      CLuaTimer **owner);

/* Removes the C timer *owner names, if any, without firing it; clears *owner. */
void clua_timer_remove_cb(CLuaApp *app, CLuaTimer **owner);

/*
 * Suspends the running task until clua_io_wake(slot) or, if timeout_ns > 0, that
 * much CLOCK_MONOTONIC later; then the task continues in k(L, LUA_YIELD, ctx),
 * which must call clua_io_resumed(L, slot) first. *slot names the wait meanwhile
 * (and is cleared if the app ends first). Raises if the task cannot be suspended
 * (a metamethod called from C) or on memory errors. Must be the return of a
 * lua_CFunction or of a continuation.
 */
int clua_io_wait(lua_State *L, CLuaWait **slot, uint64_t timeout_ns, lua_KFunction k,
                 lua_KContext ctx);

/* In the continuation: frees the wait *slot names. Returns true if its timeout
 * ended it (no clua_io_wake() came first). */
bool clua_io_resumed(lua_State *L, CLuaWait **slot);

/* Wakes the task waiting on *slot (from an fd watch's or a C timer's callback).
 * No-op when none waits or it was woken already. */
void clua_io_wake(CLuaWait **slot);

/*
 * An fd with at most one reading task (rwait) and one writing task (wwait) waiting
 * on it (a cella.net connection, a cella.ipc pipe or channel).
 * clua_fd_watch_duplex(): watches fd for want plus what the waiting tasks need
 * (EPOLLIN|EPOLLRDHUP while a reader waits, EPOLLOUT while a writer does); returns
 * clua_fd_watch_set()'s answer. clua_io_wake_duplex(): in the watch's callback, wakes
 * the reader on input, hang-up or error and the writer on room, hang-up or error.
 */
int clua_fd_watch_duplex(CLuaFdWatch *w, int fd, CLuaWait *rwait, CLuaWait *wwait, uint32_t want);
void clua_io_wake_duplex(uint32_t revents, CLuaWait **rwait, CLuaWait **wwait);

/* ---- cella.ipc (libipc.c) ------------------------------------------------------ */

/*
 * cella.ipc's state of one app, in a userdata of its state (so it goes with the
 * state), app->ipc once the module is loaded, else NULL. event_ref: the module's
 * dispatcher, run as a task for each ipc event; on_offer_ref, on_closed_ref: the
 * app's handlers (LUA_NOREF: none; an on_offer handler keeps the app alive, as
 * bus.on_message's does). deferred: handle numbers whose IPC_CLOSE could not be
 * sent when their object was closed (the channel's CELLA_MAX_PENDING calls were
 * outstanding); sent before the app's next cella.ipc call. generation: see below.
 */
#define CLUA_IPC_DEFERRED_MAX 256u
typedef struct CLuaIpc {
        int event_ref;
        int on_offer_ref;
        int on_closed_ref;
        uint32_t generation; /* + 1 at each EVENT_KERNEL_RESTARTED: older handles are gone */
        unsigned n_deferred;
        uint64_t deferred[CLUA_IPC_DEFERRED_MAX];
} CLuaIpc;

/*
 * Queues the ipc event ev (OPCODE_EVENT_IPC_OFFERED or _CLOSED, decoded or not by
 * libcella: its raw body is used) for app's cella.ipc dispatcher, if the module is
 * loaded. From the host's loop (kernel.c's event callback). Returns true if ev was
 * an ipc event (taken or dropped), false for any other opcode. On
 * CELLA_EVENT_KERNEL_RESTARTED it counts a generation (every handle made before is
 * forgotten: a new kernel numbers them anew) and returns false.
 */
bool clua_ipc_event(CLuaApp *app, const CellaEvent *ev);

/* ---- kernel calls (kernel.c) ------------------------------------------------- */

/*
 * The app's broker channel, opened on first use; raises "<fname>: no kernel
 * channel (not running under cella)" if it has none.
 */
Cella *clua_kernel(lua_State *L, const char *fname);

/* The CellaReplyFn to pass with userdata = the app for a call clua_await waits on. */
void clua_kernel_reply(Cella *c, CellaReply *reply, void *userdata);

/*
 * Waits for the reply to request_id (sent with clua_kernel_reply as callback):
 * suspends the running task if it can yield, else blocks the host on the app's
 * channel. Then decode(L, reply) pushes the results and
 * returns their count; it may raise. Must be the return of a lua_CFunction:
 * `return clua_await(L, id, decode);`.
 */
int clua_await(lua_State *L, uint64_t request_id, int (*decode)(lua_State *L, CellaReply *reply));

/* Suspends the running task for ns of CLOCK_MONOTONIC (timer.sleep); blocks if it
 * cannot yield. As clua_await: the return of a lua_CFunction; returns nothing. */
int clua_sleep(lua_State *L, uint64_t ns);

/*
 * Raises "<fname>: <strerror(-err)>[: <detail>]" in L: the error of a kernel call.
 */
int clua_kernel_error(lua_State *L, const char *fname, int err, const char *detail);

/* String argument i of min_len..max bytes without NUL, or raises; *ret_len (may
 * be NULL) gets its length. clua_opt_str: "" for none/nil. */
const char *clua_check_str(lua_State *L, int i, size_t min_len, size_t max, size_t *ret_len);
const char *clua_opt_str(lua_State *L, int i, size_t max);

/*
 * Sends req (a request message of proto/cella.proto) as opcode on the app's
 * channel and waits for the reply (clua_await); decode pushes the results.
 * fname names the Lua function in errors. The return of a lua_CFunction.
 */
int clua_kernel_call(lua_State *L, const char *fname, uint16_t opcode, const ProtobufCMessage *req,
                     int (*decode)(lua_State *, CellaReply *));

/*
 * As clua_kernel_call(), but the calling C function goes on once decode pushed
 * the results: in k(L, LUA_YIELD, ctx), with them on top of its stack (a call,
 * then more waiting in C: cella.net.http's hops). Only from a task that can be
 * suspended (raises otherwise). The return of a lua_CFunction or continuation.
 */
int clua_kernel_call_k(lua_State *L, const char *fname, uint16_t opcode,
                       const ProtobufCMessage *req, int (*decode)(lua_State *, CellaReply *),
                       lua_KFunction k, lua_KContext ctx);

/* Unpacks a successful reply's message (protobuf_c_message_free_unpacked it),
 * or raises the kernel's error ("bus.publish: Permission denied: <reason>"). */
ProtobufCMessage *clua_kernel_unpack(lua_State *L, CellaReply *reply);

/* Sets *ref (an app's handler: on_message, on_revoke) to the function at index
 * 1 of L, or LUA_NOREF if it is nil; events queued for the old one go to the new
 * one (or are dropped). */
void clua_set_handler(lua_State *L, int *ref);

/* Handles what app's channel has ready (events become work). Returns 0 or the
 * channel's negative errno (the app loses its channel). */
int clua_kernel_dispatch(CLuaApp *app);

/* Closes the app's channel and its outstanding waits. */
void clua_kernel_close(CLuaApp *app);
