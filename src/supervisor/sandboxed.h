/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A sandboxed run: what one sandbox needs from the kernel while it lives, whoever
 * runs in it (instance.c: one app; group.c: the host of a packed group). It owns
 * the sandbox handle and the poll on its init (the exit), the seccomp listener
 * (denied calls answered EPERM, counted, audited at the end), the one timer that
 * is either the stop grace (SIGTERM, then SIGKILL) or the restart delay, the
 * restart policy's state, and the Lua stats file. What differs between an app and
 * a group (the spec, the pipes, the broker channels, the messages) stays with the
 * owner, which the run calls back through SandboxedRunOps.
 *
 * Life of a run: sandboxed_spawn(), sandboxed_watch() (or sandboxed_abort() when
 * the owner cannot serve it), then, once ops->exited() found the run over,
 * sandboxed_reap(), the owner's report, sandboxed_release() and
 * sandboxed_restart_decide(). Every function that returns an int returns 0 or a
 * negative errno (sandboxed_report_failed(): an exit code).
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "broker/broker.h"
#include "policy/manifest.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"
#include "supervisor/applog.h"
#include "supervisor/error.h"
#include "supervisor/luahost.h"
#include "supervisor/restart.h"

typedef struct Supervisor Supervisor;

/* What a run asks of its owner (void *owner: the Instance or the Group). */
typedef struct SandboxedRunOps {
        /* The sandbox's init has exited: the owner looks whether the run is over (its
         * pipes drained too) and if so ends it. */
        void (*exited)(void *owner);
        /* The restart delay has passed: start again. Returns 0 or a negative errno. */
        int (*start)(void *owner);
        /* Appends audit record fields (stolen) under event for each app of the run
         * (a group adds "group"). */
        void (*audit)(void *owner, const char *event, json_t *fields);
        /* Writes status record fields (stolen) for each app of the run (adding
         * "app", and for a group "group"). */
        void (*status)(void *owner, json_t *fields);
} SandboxedRunOps;

typedef struct SandboxedRun {
        Supervisor *sup;
        const SandboxedRunOps *ops;
        void *owner;
        const char *name; /* for messages: the app's id, "packed group NAME"; borrowed */
        Sandbox *sandbox; /* while it runs */
        uv_poll_t sandbox_poll;
        bool sandbox_poll_init;
        uv_poll_t notify_poll; /* the seccomp listener: denied calls wait on it */
        bool notify_poll_init;
        SeccompDenials *denials; /* of the current run */
        unsigned polls_closing;  /* poll closes not yet called back: the memory is busy */
        uv_timer_t timer;        /* the stop grace, or the restart delay */
        bool timer_init;
        bool restart_pending; /* timer is the restart delay */
        RestartState restart;
        unsigned restarts;
        uid_t uid;           /* the host uid it runs as */
        int64_t started_ms;  /* wall clock of the last start */
        uint64_t started_ns; /* monotonic */
        SandboxExit last_exit;
        bool low_memory_kill; /* the memory manager killed this run (supervisor_memory_kill()):
                                 its exit is a low-memory kill, not a crash */
        LuaStats *stats;      /* a Lua run's scheduler counters (docs/lua-api.md "Statistics") */
} SandboxedRun;

/* Sets up r (zeroed) for owner; name must live as long as r. */
void sandboxed_init(SandboxedRun *r, Supervisor *s, const char *name, const SandboxedRunOps *ops,
                    void *owner);

/* True while a poll of the last run is still closing: a new run must wait. */
bool sandboxed_busy(const SandboxedRun *r);

/*
 * Makes r->stats a new stats file for n_apps apps (luastats_new()), its fd moved
 * above stdio (SandboxSpec.extra_fds). Returns 0 or a negative errno.
 */
int sandboxed_new_stats(SandboxedRun *r, uint32_t n_apps);

/*
 * Opens the log <state>/logs/<name>.log (applog.h) into *log when output goes to
 * logs (cella boot) and *log is NULL; else does nothing. Prints what failed.
 * Returns 0 or a negative errno.
 */
int sandboxed_open_log(Supervisor *s, const char *name, AppLog **log);

/*
 * Spawns spec (sandbox_spawn()) as r's new run: stamps started_ns/started_ms and
 * clears a pending restart. Returns 0, or a negative errno with *err telling the
 * step (a failure of spec's own prepare or starting callback is theirs to tell).
 */
int sandboxed_spawn(SandboxedRun *r, const SandboxSpec *spec, SandboxError *err);

/*
 * Watches the run just spawned: its init's exit (ops->exited) and its seccomp
 * listener, whose denied calls are answered and counted. Returns 0 or a negative
 * errno / libuv error; then the owner calls sandboxed_abort(): a listener nobody
 * answers would hang the app's denied calls.
 */
int sandboxed_watch(SandboxedRun *r);

/* The running sandbox's part of an app's BrokerAppInfo (broker.h): host_uid, pid,
 * pidfd (borrowed: it lives as long as r->sandbox), the cgroup paths and
 * started_ms. The owner fills in the app's own fields. */
void sandboxed_broker_info(const SandboxedRun *r, BrokerAppInfo *info);

/* The run started but cannot be served: stops watching it and kills it (sandbox_free()). */
void sandboxed_abort(SandboxedRun *r);

/*
 * The run is over (its init exited, its pipes drained): answers the denied calls
 * still queued, stops watching the listener and the timer (a stop grace must not
 * outlive the run it was for) and keeps the exit in r->last_exit. r->sandbox and
 * r->denials stay for the owner's report. Returns r->last_exit.
 */
const SandboxExit *sandboxed_reap(SandboxedRun *r);

/* After the owner's report: audits the run's denied calls (ops->audit,
 * AUDIT_EVENT_SECCOMP: total, other, the most denied by name), stops watching the
 * init, frees the sandbox and the stats file. */
void sandboxed_release(SandboxedRun *r);

/*
 * The restart policy (restart.h; policy: the manifest's "restart") on the run's
 * end, r->last_exit: schedules a
 * restart (audited "restart" with delay_ms; ops->start once the delay passes) or
 * gives up (said and audited "gave-up"). Returns the decision; the owner sets its
 * states.
 */
RestartDecision sandboxed_restart_decide(SandboxedRun *r, ManifestRestart policy);

/* Cancels a pending restart. Returns true if one was pending. */
bool sandboxed_cancel_restart(SandboxedRun *r);

/*
 * Asks the running sandbox to stop: SIGTERM, SIGKILL after SUPERVISOR_STOP_GRACE_MS
 * (kill: at once, with the whole cgroup). Does nothing to a run that has no sandbox
 * or whose init exited; the owner marks what it asked (no restart then).
 */
void sandboxed_stop(SandboxedRun *r, bool kill);

/* Forwards signal number signum to the sandbox's init (cella run), which passes it to
 * the app; SIGKILL kills the whole cgroup too. Nothing without a running sandbox. */
void sandboxed_signal(SandboxedRun *r, int signum);

/*
 * The records of a start that failed (e), for each app of the run (ops->status,
 * ops->audit): {"event":"failed", "step", "error", "errno", "exit_code"} and a
 * lifecycle {"what":"failed", ...} for a failure of the sandbox; without the step,
 * the error strerror(e->error), for another. Returns the exit code the records
 * carry (supervisor_exit_code()).
 */
int sandboxed_report_failed(SandboxedRun *r, const SupervisorError *e);

/* Frees what r holds (the sandbox, if any, is killed). */
void sandboxed_done(SandboxedRun *r);
