/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * App states and lifecycle operations (docs/design.md, "App states"; issue 12,
 * Contract 3). An app's state is one of Android's process states
 * (developer.android.com/guide/components/activities/process-lifecycle, and
 * ActivityManager.RunningAppProcessInfo's importance levels), as lower-case words in
 * `cella ps`, `cella inspect` and every record:
 *
 *   installed   known to the kernel, never started by it
 *   starting    a start is under way, or a restart is due after its delay
 *   foreground  running; the one app the user works with (at most one per kernel)
 *   visible     running; the app that was foreground before (at most one)
 *   service     running; a manifest of kind "service"
 *   background  running; started with --background, at boot, or moved there
 *   cached      running but frozen by the kernel (its memory kept, no CPU): a
 *               background app the memory policy (issue 13) set aside
 *   frozen      running but frozen by the user (cella freeze): no CPU until thawed
 *   stopping    asked to stop (SIGTERM, SIGKILL after the grace), not yet ended
 *   stopped     ended with status 0, or because it was asked to stop
 *   failed      could not start, gave up restarting, or ended by itself with a
 *               non-zero status or a signal (systemd's "failed" unit)
 *
 * The state is computed from what the kernel knows (the run's phase, its role, its
 * freeze, a stop asked for): instance_state(). Transitions (from -> to: by what):
 *
 *   installed|stopped|failed -> starting -> foreground|background|service: start
 *   starting -> foreground|background|service: the (re)start's spawn worked
 *   starting -> failed: the spawn failed, or the restart policy gave up
 *   starting -> stopped: stop (the pending restart is cancelled)
 *   foreground -> visible: another app became foreground
 *   visible -> background: another app became foreground
 *   visible|background|cached -> foreground: foreground (cached is thawed)
 *   foreground|visible -> background: background
 *   background -> cached: the kernel's memory policy (lifecycle_cache())
 *   foreground|visible|service|background|cached -> frozen: freeze
 *   frozen|cached -> the role it had: thaw
 *   any running state -> stopping: stop, restart, kill with SIGTERM/SIGKILL
 *   stopping|any running state -> stopped|failed|starting: the app ended (its
 *            status; a restart policy or a restart makes it starting)
 *
 * Each change is written as a status record {"event":"state","app","state","from"}
 * (to the status taps, and to the status fd of a kernel in daemon mode,
 * SupervisorOptions.daemon, and its status callback; cella run and boot keep their --json-status
 * records as they were) and a lifecycle audit record {"what":"state","state","from"}
 * (lifecycle_note()).
 * An operation refused in a state says so with the state's name (LifecycleError:
 * wrong_state), which the control API returns as org.cella.AppState.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/macro.h"

typedef struct Supervisor Supervisor;
typedef struct Instance Instance;

/* The Android-like state of an app; its word: instance_state_to_string(). */
typedef enum InstanceState {
        INSTANCE_STATE_INSTALLED,
        INSTANCE_STATE_STARTING,
        INSTANCE_STATE_FOREGROUND,
        INSTANCE_STATE_VISIBLE,
        INSTANCE_STATE_SERVICE,
        INSTANCE_STATE_BACKGROUND,
        INSTANCE_STATE_CACHED,
        INSTANCE_STATE_FROZEN,
        INSTANCE_STATE_STOPPING,
        INSTANCE_STATE_STOPPED,
        INSTANCE_STATE_FAILED,
        _INSTANCE_STATE_MAX,
} InstanceState;

/* What a running app is to the user, kept across a freeze and a restart. */
typedef enum InstanceRole {
        INSTANCE_ROLE_NONE = 0, /* not decided: by its kind and the kernel (default role) */
        INSTANCE_ROLE_FOREGROUND,
        INSTANCE_ROLE_VISIBLE,
        INSTANCE_ROLE_SERVICE,
        INSTANCE_ROLE_BACKGROUND,
} InstanceRole;

typedef enum InstanceFreeze {
        INSTANCE_FREEZE_NONE = 0,
        INSTANCE_FREEZE_USER,   /* cella freeze: state frozen */
        INSTANCE_FREEZE_KERNEL, /* the memory policy: state cached */
} InstanceFreeze;

/* The lifecycle's part of an Instance (inst->life). Zeroed by calloc. */
typedef struct InstanceLife {
        InstanceRole role;       /* while it runs (and the one a restart comes back in) */
        InstanceRole start_role; /* asked for its next start; NONE: the default role */
        InstanceFreeze frozen;
        InstanceState reported; /* the last state recorded (lifecycle_note) */
        bool restart_asked;     /* lifecycle_restart(): start again once it has ended */
        int64_t exited_ms;      /* wall clock of the end of its last run; 0: none */
        unsigned transitions;   /* state changes recorded */
        uint64_t last_used_ns;  /* CLOCK_MONOTONIC of its start or its last time in the
                                   foreground: the LRU order of the memory manager's bands */
} InstanceLife;

/* The operations, for the transition table and messages. */
typedef enum LifecycleOp {
        LIFECYCLE_START,
        LIFECYCLE_STOP,
        LIFECYCLE_RESTART,
        LIFECYCLE_FREEZE,
        LIFECYCLE_THAW,
        LIFECYCLE_KILL,
        LIFECYCLE_FOREGROUND,
        LIFECYCLE_BACKGROUND,
        LIFECYCLE_CACHE,
        _LIFECYCLE_OP_MAX,
} LifecycleOp;

/* Why an operation was refused or failed. */
typedef struct LifecycleError {
        int error;        /* positive errno (EBUSY for a wrong state) */
        bool wrong_state; /* refused in state `state` (org.cella.AppState) */
        InstanceState state;
        char message[384]; /* one line naming the app, the state and what to do */
} LifecycleError;

/*
 * Fills *err: error (a positive errno), inst's state now, and the message
 * "<app id>: " followed by fmt's text, cut at LifecycleError.message's size.
 * For the supervisor's own calls (lifecycle.c, memory-actions.c).
 */
void lifecycle_set_error(LifecycleError *err, const Instance *inst, int error, const char *fmt, ...)
        _printf_(4, 5);

/* "installed", "starting", ...; NULL for a value out of range. */
const char *instance_state_to_string(InstanceState s);
/* The state named word, or -EINVAL. */
int instance_state_from_string(const char *word);
/* True for the states in which the app's sandbox runs (foreground .. stopping). */
bool instance_state_is_running(InstanceState s);
const char *lifecycle_op_to_string(LifecycleOp op);

/*
 * The transition table: whether op is allowed in state s (kind_service: the app's
 * manifest is of kind "service"). Pure. Returns 0 (allowed; *ret_noop true when
 * the op changes nothing, e.g. foreground of the foreground app), or -EBUSY with
 * *ret_why a static phrase saying why ("it is not running; start it first"). Both
 * out pointers may be NULL.
 */
int lifecycle_check(InstanceState s, LifecycleOp op, bool kind_service, bool *ret_noop,
                    const char **ret_why);

/* The app's state now (computed from its run's phase, role, freeze and stop). */
InstanceState instance_state(const Instance *inst);

/*
 * Records inst's state if it changed since the last record: a status record, a
 * lifecycle audit record, and each listener called. When a run ended and a
 * restart was asked (lifecycle_restart), schedules the start. Called by
 * supervisor_changed() for every app and by the lifecycle operations.
 */
void lifecycle_note(Instance *inst);

/* Called by instance.c/group.c once a start worked: the role it runs in (the one
 * asked for, else the one it had, else the default: service for a service, else
 * background under cella boot and foreground otherwise; a foreground start makes
 * the previous foreground app visible), then lifecycle_note(). */
void lifecycle_started(Instance *inst);

/* Options of lifecycle_start(). */
typedef struct LifecycleStart {
        char *const *args; /* replace the extra args after the manifest's (NULL: keep) */
        bool background;   /* run in background instead of foreground */
} LifecycleStart;

/*
 * The operations. Each checks the table first (a refusal: -EBUSY with
 * err->wrong_state), then acts; every state change is recorded. Each returns 0 or
 * a negative errno with *err (never NULL) filled.
 *
 * lifecycle_start: spawns the app (a packed app: its group's host) with o's args
 *   and role; a pending restart is replaced by this start.
 * lifecycle_stop: SIGTERM, SIGKILL after SUPERVISOR_STOP_GRACE_MS (kill: at once);
 *   a frozen app is thawed first, so that it can take the signal; a pending
 *   restart is cancelled. A packed member stops its whole group (as `cella stop`).
 * lifecycle_restart: a running app is stopped, then started once it has ended (in
 *   the role it had); an app that does not run is started.
 * lifecycle_freeze / lifecycle_thaw: the cgroup freezer of the app's sandbox (v2
 *   and hybrid: cgroup.freeze of the cgroup2 leaf; v1: freezer.state), waiting
 *   until the kernel says frozen (at most 1 s). A packed member is refused
 *   (-EOPNOTSUPP): its host runs the other members of its group too.
 * lifecycle_kill: signal signum (1..64) to the app (through its sandbox's init;
 *   SIGKILL kills its whole cgroup); a frozen app takes only SIGKILL. A packed
 *   member is refused (-EOPNOTSUPP).
 * lifecycle_foreground: makes inst the foreground app; the previous foreground
 *   app becomes visible, the previous visible one background; a cached app is
 *   thawed. lifecycle_background: foreground or visible -> background.
 * lifecycle_cache: background -> cached (frozen by the kernel): for the memory
 *   manager of issue 13 (supervisor_memory_freeze(), memory-actions.h), through
 *   the unified hierarchy's cgroup.freeze only, never the v1 freezer: on a pure v1
 *   host it is refused (-EOPNOTSUPP) and the app stays background.
 */
int lifecycle_start(Instance *inst, const LifecycleStart *o, LifecycleError *err);
int lifecycle_stop(Instance *inst, bool kill, LifecycleError *err);
int lifecycle_restart(Instance *inst, LifecycleError *err);
int lifecycle_freeze(Instance *inst, LifecycleError *err);
int lifecycle_thaw(Instance *inst, LifecycleError *err);
int lifecycle_kill(Instance *inst, int signum, LifecycleError *err);
int lifecycle_foreground(Instance *inst, LifecycleError *err);
int lifecycle_background(Instance *inst, LifecycleError *err);
int lifecycle_cache(Instance *inst, LifecycleError *err);

/*
 * Thaws an app the memory manager froze (cached -> the role it had) and records
 * "memory.thaw" with reason ("start", "foreground", "intent", "manual"); an app
 * that is not cached: 0, nothing done. lifecycle_start() and lifecycle_foreground()
 * of a cached app, and an intent to it (app.launch), call it.
 */
int lifecycle_uncache(Instance *inst, const char *reason, LifecycleError *err);

/*
 * The inspect record of inst (docs/api.md "org.cella.Inspect"): id, state, running,
 * role, kind, app_dir, data_dir, uid, pid, started_ms, restarts, the manifest (its
 * fields), the pids in its cgroup, its cgroup figures (memory current, peak and
 * max in bytes, CPU usage in microseconds, pids, OOM kills, frozen), its grants
 * (when the kernel has grants.db open), its last exit (time_ms, how, status,
 * exit_code, oom_killed) or null, its group. Returns a new object or NULL (out of
 * memory).
 */
json_t *lifecycle_inspect(Instance *inst);

/* Called on every recorded state change (from -> to), in the loop. */
typedef void (*LifecycleListener)(Instance *inst, InstanceState from, InstanceState to,
                                  void *userdata);
/* Called with every status record the kernel writes (borrowed). */
typedef void (*LifecycleStatusTap)(const json_t *record, void *userdata);

/* Adds or removes a listener (fn, userdata) of s. At most 64 of each kind.
 * Returns 0, -ENOSPC, -ENOMEM; removing an unknown one does nothing. */
int lifecycle_listen(Supervisor *s, LifecycleListener fn, void *userdata);
void lifecycle_unlisten(Supervisor *s, LifecycleListener fn, void *userdata);
int lifecycle_tap_status(Supervisor *s, LifecycleStatusTap fn, void *userdata);
void lifecycle_untap_status(Supervisor *s, LifecycleStatusTap fn, void *userdata);

/* Called by supervisor_status() with each record (borrowed) before it is written. */
void lifecycle_status_record(Supervisor *s, const json_t *record);

/* Thaws inst's sandbox if the user or the kernel froze it (instance_stop() calls it:
 * every stop, the kernel's own at its end too, thaws first). A failure is logged;
 * the freeze is forgotten either way (the stop's SIGKILL ends it). */
void lifecycle_unfreeze(Instance *inst);

/* Frees s's lifecycle bookkeeping (listeners, the restart timer), once the loop's
 * handles are closed (supervisor_free()). */
void lifecycle_free(Supervisor *s);
