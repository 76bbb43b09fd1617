/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * App states and the lifecycle operations on them (lifecycle.h; docs/design.md, "App
 * states"). The state is not stored: it is computed from what the kernel already
 * keeps (the run's phase, instance.c/group.c), the role the app runs in, its freeze
 * and a stop asked for, so that no path that changes one of them can leave a stale
 * word behind. What is stored is the last state recorded, so that each change is
 * recorded once (lifecycle_note()).
 */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "policy/grants.h"
#include "base/time-util.h"
#include "memory/action.h"
#include "supervisor/memory-manager.h"
#include "supervisor/lifecycle.h"
#include "supervisor/memory-actions.h"
#include "net/group.h"
#include "supervisor/supervisor-internal.h"

#define LIFECYCLE_LISTENERS_MAX 64u
/* A restart waits for its last run's handles to close (instance_may_start's busy):
 * it is tried again this often (ms), at most LIFECYCLE_RESTART_TRIES times. Never
 * 0: a timer due at once that re-arms itself would keep libuv in its timers phase,
 * where the close callbacks it waits for never run. */
#define LIFECYCLE_RESTART_RETRY_MS 5
#define LIFECYCLE_RESTART_TRIES    400
/* pids listed in an inspect record: a sandbox's pids.max default is far below. */
#define LIFECYCLE_INSPECT_PIDS_MAX 4096

typedef struct Listener {
        LifecycleListener fn;
        LifecycleStatusTap tap;
        void *userdata;
} Listener;

struct Lifecycle {
        Listener listeners[LIFECYCLE_LISTENERS_MAX];
        size_t n_listeners;
        uv_timer_t restart_timer;
        bool restart_timer_init;
        unsigned restart_tries;
};

static const char *const state_words[_INSTANCE_STATE_MAX] = {
        [INSTANCE_STATE_INSTALLED] = "installed",   [INSTANCE_STATE_STARTING] = "starting",
        [INSTANCE_STATE_FOREGROUND] = "foreground", [INSTANCE_STATE_VISIBLE] = "visible",
        [INSTANCE_STATE_SERVICE] = "service",       [INSTANCE_STATE_BACKGROUND] = "background",
        [INSTANCE_STATE_CACHED] = "cached",         [INSTANCE_STATE_FROZEN] = "frozen",
        [INSTANCE_STATE_STOPPING] = "stopping",     [INSTANCE_STATE_STOPPED] = "stopped",
        [INSTANCE_STATE_FAILED] = "failed",
};

static const char *const op_words[_LIFECYCLE_OP_MAX] = {
        [LIFECYCLE_START] = "start",
        [LIFECYCLE_STOP] = "stop",
        [LIFECYCLE_RESTART] = "restart",
        [LIFECYCLE_FREEZE] = "freeze",
        [LIFECYCLE_THAW] = "thaw",
        [LIFECYCLE_KILL] = "kill",
        [LIFECYCLE_FOREGROUND] = "foreground",
        [LIFECYCLE_BACKGROUND] = "background",
        [LIFECYCLE_CACHE] = "cache",
};

const char *instance_state_to_string(InstanceState s)
{
        return (unsigned)s < _INSTANCE_STATE_MAX ? state_words[s] : NULL;
}

int instance_state_from_string(const char *word)
{
        for (unsigned i = 0; word && i < _INSTANCE_STATE_MAX; i++)
                if (strcmp(word, state_words[i]) == 0)
                        return (int)i;
        return -EINVAL;
}

bool instance_state_is_running(InstanceState s)
{
        return s >= INSTANCE_STATE_FOREGROUND && s <= INSTANCE_STATE_STOPPING;
}

const char *lifecycle_op_to_string(LifecycleOp op)
{
        return (unsigned)op < _LIFECYCLE_OP_MAX ? op_words[op] : NULL;
}

/* Outcome of op in a state: A allowed, N allowed and changes nothing, else the
 * index + 1 of the reason it is refused. */
enum {
        A = 0,
        N = 1,
        R_NOT_RUNNING,
        R_RUNNING,
        R_STOPPING,
        R_FROZEN,
        R_NOT_FROZEN,
        R_SERVICE,
        R_NOT_BACKGROUND,
        _R_MAX
};

static const char *const refusals[_R_MAX] = {
        [R_NOT_RUNNING] = "it is not running; start it first",
        [R_RUNNING] = "it runs already; use restart to start it again",
        [R_STOPPING] = "it is stopping; wait until it has stopped, or kill it",
        [R_FROZEN] = "it is frozen; thaw it first (only SIGKILL reaches a frozen app)",
        [R_NOT_FROZEN] = "it is not frozen",
        [R_SERVICE] = "it is a service: services run in state service, never foreground or "
                      "background",
        [R_NOT_BACKGROUND] = "only a background app can be cached",
};

/*
 * The transition table (lifecycle.h's header comment has the arrows): a row per
 * state, a column per op. Services are refused foreground and background apart
 * (lifecycle_check()).
 */
/* clang-format off */
static const unsigned char table[_INSTANCE_STATE_MAX][_LIFECYCLE_OP_MAX] = {
        /*                              start       stop           restart     freeze         thaw           kill           foreground     background     cache */
        [INSTANCE_STATE_INSTALLED]  = {A,          R_NOT_RUNNING, A,          R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING},
        [INSTANCE_STATE_STARTING]   = {A,          A,             A,          R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING},
        [INSTANCE_STATE_FOREGROUND] = {R_RUNNING,  A,             A,          A,             R_NOT_FROZEN,  A,             N,             A,             R_NOT_BACKGROUND},
        [INSTANCE_STATE_VISIBLE]    = {R_RUNNING,  A,             A,          A,             R_NOT_FROZEN,  A,             A,             A,             R_NOT_BACKGROUND},
        [INSTANCE_STATE_SERVICE]    = {R_RUNNING,  A,             A,          A,             R_NOT_FROZEN,  A,             R_SERVICE,     R_SERVICE,     R_NOT_BACKGROUND},
        [INSTANCE_STATE_BACKGROUND] = {R_RUNNING,  A,             A,          A,             R_NOT_FROZEN,  A,             A,             N,             A},
        [INSTANCE_STATE_CACHED]     = {R_RUNNING,  A,             A,          A,             A,             A,             A,             N,             N},
        [INSTANCE_STATE_FROZEN]     = {R_RUNNING,  A,             A,          N,             A,             A,             R_FROZEN,      R_FROZEN,      R_NOT_BACKGROUND},
        [INSTANCE_STATE_STOPPING]   = {R_STOPPING, N,             R_STOPPING, R_STOPPING,    R_NOT_FROZEN,  A,             R_STOPPING,    R_STOPPING,    R_STOPPING},
        [INSTANCE_STATE_STOPPED]    = {A,          R_NOT_RUNNING, A,          R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING},
        [INSTANCE_STATE_FAILED]     = {A,          R_NOT_RUNNING, A,          R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING, R_NOT_RUNNING},
};
/* clang-format on */

int lifecycle_check(InstanceState s, LifecycleOp op, bool kind_service, bool *ret_noop,
                    const char **ret_why)
{
        unsigned v;

        if ((unsigned)s >= _INSTANCE_STATE_MAX || (unsigned)op >= _LIFECYCLE_OP_MAX) {
                if (ret_why)
                        *ret_why = "no such state or operation";
                return -EINVAL;
        }
        v = table[s][op];
        /* A service has no foreground: a frozen or cached one is refused as a
         * service, not as frozen. */
        if (kind_service && (op == LIFECYCLE_FOREGROUND || op == LIFECYCLE_BACKGROUND) &&
            instance_state_is_running(s) && s != INSTANCE_STATE_STOPPING)
                v = R_SERVICE;
        if (v > N) {
                if (ret_why)
                        *ret_why = refusals[v];
                return -EBUSY;
        }
        if (ret_noop)
                *ret_noop = v == N;
        return 0;
}

static Lifecycle *lifecycle_get(Supervisor *s)
{
        if (!s->lifecycle)
                s->lifecycle = calloc(1, sizeof *s->lifecycle);
        return s->lifecycle;
}

/* The sandbox inst runs in (its group's host when packed), or NULL. */
static const SandboxedRun *instance_run(const Instance *inst)
{
        return inst->group ? &inst->group->run : &inst->run;
}

static bool is_service(const Instance *inst)
{
        return inst->manifest->kind == MANIFEST_KIND_SERVICE;
}

static InstanceRole default_role(const Instance *inst)
{
        if (is_service(inst))
                return INSTANCE_ROLE_SERVICE;
        return inst->sup->o.boot ? INSTANCE_ROLE_BACKGROUND : INSTANCE_ROLE_FOREGROUND;
}

static InstanceState role_state(InstanceRole r)
{
        switch (r) {
        case INSTANCE_ROLE_FOREGROUND:
                return INSTANCE_STATE_FOREGROUND;
        case INSTANCE_ROLE_VISIBLE:
                return INSTANCE_STATE_VISIBLE;
        case INSTANCE_ROLE_SERVICE:
                return INSTANCE_STATE_SERVICE;
        default:
                return INSTANCE_STATE_BACKGROUND;
        }
}

InstanceState instance_state(const Instance *inst)
{
        const SandboxedRun *run = instance_run(inst);

        switch (inst->state) {
        case INSTANCE_STOPPED:
                if (inst->life.restart_asked)
                        return INSTANCE_STATE_STARTING;
                return inst->started_ns == 0 ? INSTANCE_STATE_INSTALLED : INSTANCE_STATE_STOPPED;
        case INSTANCE_RESTARTING:
                return INSTANCE_STATE_STARTING;
        case INSTANCE_EXITED:
                if (inst->life.restart_asked)
                        return INSTANCE_STATE_STARTING;
                return inst->exit_code == 0 ? INSTANCE_STATE_STOPPED : INSTANCE_STATE_FAILED;
        case INSTANCE_FAILED:
                return inst->life.restart_asked ? INSTANCE_STATE_STARTING : INSTANCE_STATE_FAILED;
        case INSTANCE_RUNNING:
                break;
        }
        if (inst->stop_requested || (run->sandbox && run->sandbox->exited))
                return INSTANCE_STATE_STOPPING;
        if (inst->life.frozen == INSTANCE_FREEZE_USER)
                return INSTANCE_STATE_FROZEN;
        if (inst->life.frozen == INSTANCE_FREEZE_KERNEL)
                return INSTANCE_STATE_CACHED;
        return role_state(inst->life.role ?: default_role(inst));
}

static void restart_pending_run(uv_timer_t *t);

static void restart_schedule(Supervisor *s, uint64_t ms)
{
        Lifecycle *l = lifecycle_get(s);

        if (!l)
                return;
        if (!l->restart_timer_init) {
                if (uv_timer_init(&s->loop, &l->restart_timer) < 0)
                        return;
                l->restart_timer.data = s;
                l->restart_timer_init = true;
        }
        (void)uv_timer_start(&l->restart_timer, restart_pending_run, ms, 0);
}

void lifecycle_set_error(LifecycleError *err, const Instance *inst, int error, const char *fmt, ...)
{
        va_list ap;
        int n;

        *err = (LifecycleError){.error = error, .state = instance_state(inst)};
        n = snprintf(err->message, sizeof err->message, "%s: ", inst->manifest->id);
        if (n < 0 || (size_t)n >= sizeof err->message)
                return;
        va_start(ap, fmt);
        (void)vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
        va_end(ap);
}

/* The table's check of op on inst: 0 (allowed; *noop), or -EBUSY with *err. */
static int check(Instance *inst, LifecycleOp op, bool *noop, LifecycleError *err)
{
        InstanceState st = instance_state(inst);
        const char *why = NULL;
        bool n = false;
        int r;

        r = lifecycle_check(st, op, is_service(inst), &n, &why);
        if (r < 0) {
                lifecycle_set_error(err, inst, -r, "cannot %s it: it is %s: %s",
                                    lifecycle_op_to_string(op), instance_state_to_string(st), why);
                err->wrong_state = true;
                return r;
        }
        if (noop)
                *noop = n;
        return 0;
}

void lifecycle_note(Instance *inst)
{
        Supervisor *s = inst->sup;
        InstanceState from = inst->life.reported, to;
        Lifecycle *l;
        json_t *rec;

        if (s->freeing)
                return;
        to = instance_state(inst);
        if (!instance_state_is_running(to) && inst->state != INSTANCE_RUNNING) {
                /* The run ended: a freeze ends with it. */
                inst->life.frozen = INSTANCE_FREEZE_NONE;
                if (instance_state_is_running(from))
                        inst->life.exited_ms = grants_now_ms();
        }
        if (inst->life.restart_asked && inst->state != INSTANCE_RUNNING &&
            !(s->lifecycle && s->lifecycle->restart_timer_init &&
              uv_is_active((uv_handle_t *)&s->lifecycle->restart_timer)))
                restart_schedule(s, 1);
        if (to == from)
                return;
        /* Leaving or entering the foreground is a use (the bands' LRU order). */
        if (to == INSTANCE_STATE_FOREGROUND || from == INSTANCE_STATE_FOREGROUND)
                inst->life.last_used_ns = now_monotonic_ns();
        inst->life.reported = to;
        inst->life.transitions++;
        supervisor_cpu_note(inst, to);
        supervisor_swap_note(inst, to);
        rec = json_pack("{s:s, s:s, s:s, s:s}", "event", "state", "app", inst->manifest->id,
                        "state", instance_state_to_string(to), "from",
                        instance_state_to_string(from));
        if (s->o.daemon)
                supervisor_status(s, rec);
        else {
                /* The status fd of cella run and boot keeps its records as they were
                 * (docs/cli.md "--json-status"); the taps see every change. */
                lifecycle_status_record(s, rec);
                json_decref(rec);
        }
        supervisor_audit(s, inst->manifest->id, AUDIT_EVENT_LIFECYCLE,
                         json_pack("{s:s, s:s, s:s}", "what", "state", "state",
                                   instance_state_to_string(to), "from",
                                   instance_state_to_string(from)));
        /* Every app's band may have moved with this change: their oom_score_adj. */
        supervisor_memory_sync(s);
        l = s->lifecycle;
        for (size_t i = 0; l && i < l->n_listeners; i++)
                if (l->listeners[i].fn)
                        l->listeners[i].fn(inst, from, to, l->listeners[i].userdata);
}

/* The app now foreground: the previous foreground one becomes visible, the
 * previous visible one background (Android's top and visible activities). */
static void demote_others(Instance *inst)
{
        Supervisor *s = inst->sup;

        for (size_t i = 0; i < s->n_apps; i++) {
                Instance *o = s->apps[i];

                if (o != inst && o->life.role == INSTANCE_ROLE_VISIBLE) {
                        o->life.role = INSTANCE_ROLE_BACKGROUND;
                        lifecycle_note(o);
                }
        }
        for (size_t i = 0; i < s->n_apps; i++) {
                Instance *o = s->apps[i];

                if (o != inst && o->life.role == INSTANCE_ROLE_FOREGROUND) {
                        o->life.role = o->state == INSTANCE_RUNNING ? INSTANCE_ROLE_VISIBLE
                                                                    : INSTANCE_ROLE_NONE;
                        lifecycle_note(o);
                }
        }
}

void lifecycle_started(Instance *inst)
{
        InstanceRole role = inst->life.start_role ?: inst->life.role ?: default_role(inst);

        if (is_service(inst))
                role = INSTANCE_ROLE_SERVICE;
        inst->life.start_role = INSTANCE_ROLE_NONE;
        inst->life.restart_asked = false;
        inst->life.frozen = INSTANCE_FREEZE_NONE;
        inst->life.role = role;
        inst->life.last_used_ns = now_monotonic_ns();
        /* The sandbox's init got this band's oom_score_adj before the app ran. */
        inst->oom_band_applied = supervisor_memory_start_adj(inst) + 1;
        inst->mem_reclaimed = false; /* a new sandbox: no soft limit of ours */
        if (role == INSTANCE_ROLE_FOREGROUND)
                demote_others(inst);
        lifecycle_note(inst);
}

int lifecycle_start(Instance *inst, const LifecycleStart *o, LifecycleError *err)
{
        bool restarting = inst->state == INSTANCE_RESTARTING;
        char **args = NULL;
        int r;

        /* A cached app runs already: a start thaws it (issue 13, "Freeze"). */
        if (instance_state(inst) == INSTANCE_STATE_CACHED)
                return lifecycle_uncache(inst, "start", err);
        r = check(inst, LIFECYCLE_START, NULL, err);
        if (r < 0)
                return r;
        if (inst->sup->stopping) {
                lifecycle_set_error(err, inst, ESHUTDOWN,
                                    "cannot start it: the kernel is stopping");
                return -ESHUTDOWN;
        }
        if (o && o->args) {
                args = strv_copy(o->args);
                if (!args) {
                        lifecycle_set_error(err, inst, ENOMEM, "cannot start it: out of memory");
                        return -ENOMEM;
                }
                strv_free(inst->extra_args);
                inst->extra_args = args;
        }
        inst->life.start_role = is_service(inst)     ? INSTANCE_ROLE_SERVICE
                                : o && o->background ? INSTANCE_ROLE_BACKGROUND
                                                     : INSTANCE_ROLE_FOREGROUND;
        inst->life.restart_asked = false;
        r = instance_start(inst);
        /* As host_launch(): a start replaces a pending restart, unless it could not
         * begin (its last run is still being cleaned up), when the restart stands. */
        if (restarting && inst->state != INSTANCE_RESTARTING)
                (void)sandboxed_cancel_restart(inst->group ? &inst->group->run : &inst->run);
        lifecycle_note(inst);
        if (r < 0 || inst->state != INSTANCE_RUNNING) {
                const SupervisorError *e = instance_error(inst);

                inst->life.start_role = INSTANCE_ROLE_NONE;
                lifecycle_set_error(err, inst, r < 0 ? -r : e->error ?: EIO, "cannot start it: %s%s%s",
                          e->step != SUPERVISOR_STEP_NONE ? supervisor_error_step(e) : "",
                          e->step != SUPERVISOR_STEP_NONE ? " step failed: " : "",
                          log_last_error()[0] ? log_last_error() : strerror(r < 0 ? -r : EIO));
                return r < 0 ? r : -EIO;
        }
        return 0;
}

/* Thaws inst's sandbox if the user or the kernel froze it. Returns 0 or -errno
 * with *err. */
static int thaw_if_frozen(Instance *inst, LifecycleError *err)
{
        const Sandbox *sb = instance_run(inst)->sandbox;
        int r;

        if (inst->life.frozen == INSTANCE_FREEZE_NONE)
                return 0;
        r = sb && sb->cgroup ? cgroup_freeze(sb->cgroup, false) : -EOPNOTSUPP;
        if (r < 0) {
                lifecycle_set_error(err, inst, -r, "cannot thaw its cgroup: %s", strerror(-r));
                return r;
        }
        inst->life.frozen = INSTANCE_FREEZE_NONE;
        return 0;
}

void lifecycle_unfreeze(Instance *inst)
{
        LifecycleError e;

        if (thaw_if_frozen(inst, &e) < 0) {
                log_warning("%s", e.message);
                inst->life.frozen = INSTANCE_FREEZE_NONE;
        }
}

int lifecycle_stop(Instance *inst, bool kill, LifecycleError *err)
{
        bool noop = false;
        int r;

        r = check(inst, LIFECYCLE_STOP, &noop, err);
        if (r < 0)
                return r;
        inst->life.restart_asked = false;
        if (!noop || kill) {
                /* SIGTERM waits in a frozen app (and on v1 so does SIGKILL). */
                r = thaw_if_frozen(inst, err);
                if (r < 0)
                        return r;
                instance_stop(inst, kill);
        }
        lifecycle_note(inst);
        return 0;
}

int lifecycle_restart(Instance *inst, LifecycleError *err)
{
        InstanceState st = instance_state(inst);
        int r;

        r = check(inst, LIFECYCLE_RESTART, NULL, err);
        if (r < 0)
                return r;
        if (!instance_state_is_running(st))
                return lifecycle_start(
                        inst,
                        &(LifecycleStart){
                                .background = inst->life.role == INSTANCE_ROLE_BACKGROUND,
                        },
                        err);
        r = thaw_if_frozen(inst, err);
        if (r < 0)
                return r;
        instance_stop(inst, false);
        /* Its role stays for the start that follows its end (lifecycle_note()). */
        inst->life.start_role = inst->life.role;
        inst->life.restart_asked = true;
        lifecycle_note(inst);
        return 0;
}

/* A restart asked for is due: the apps whose run has ended start again. */
static void restart_pending_run(uv_timer_t *t)
{
        Supervisor *s = t->data;
        Lifecycle *l = s->lifecycle;
        bool again = false;

        for (size_t i = 0; i < s->n_apps; i++) {
                Instance *inst = s->apps[i];
                const SandboxedRun *run = instance_run(inst);
                InstanceRole role = inst->life.start_role;
                int r;

                if (!inst->life.restart_asked || inst->state == INSTANCE_RUNNING)
                        continue;
                if (s->stopping || s->freeing) {
                        inst->life.restart_asked = false;
                        lifecycle_note(inst);
                        continue;
                }
                if (inst->out.closing || inst->err.closing || inst->in.closing ||
                    sandboxed_busy(run)) {
                        again = true;
                        continue;
                }
                inst->life.restart_asked = false;
                inst->life.start_role = role;
                r = instance_start(inst);
                if (r < 0)
                        log_error("%s: the restart asked for failed", inst->manifest->id);
                lifecycle_note(inst);
        }
        if (again && l->restart_tries++ < LIFECYCLE_RESTART_TRIES)
                restart_schedule(s, LIFECYCLE_RESTART_RETRY_MS);
        else
                l->restart_tries = 0;
        supervisor_changed(s);
}

/* inst's own cgroup, for an op that must not reach other apps: a packed member is
 * refused (its host runs its group's other members too). */
static Cgroup *own_cgroup(Instance *inst, const char *op, LifecycleError *err)
{
        const Sandbox *sb = inst->run.sandbox;

        if (inst->group) {
                lifecycle_set_error(
                        err, inst, EOPNOTSUPP,
                        "cannot %s it alone: it runs packed in the host of group %s with %zu "
                        "other app(s), which would be %s too; stop or restart the group's "
                        "apps instead",
                        op, inst->group->name, inst->group->n_members - 1,
                        strcmp(op, "kill") == 0 ? "killed" : "frozen");
                return NULL;
        }
        if (!sb || !sb->cgroup) {
                lifecycle_set_error(err, inst, EOPNOTSUPP,
                                    "cannot %s it: its sandbox has no cgroup", op);
                return NULL;
        }
        return sb->cgroup;
}

int lifecycle_freeze(Instance *inst, LifecycleError *err)
{
        bool noop = false;
        Cgroup *cg;
        int r;

        r = check(inst, LIFECYCLE_FREEZE, &noop, err);
        if (r < 0)
                return r;
        if (noop) {
                lifecycle_set_error(err, inst, EALREADY, "cannot freeze it: it is frozen already");
                err->wrong_state = true;
                return -EALREADY;
        }
        cg = own_cgroup(inst, "freeze", err);
        if (!cg)
                return -EOPNOTSUPP;
        if (inst->life.frozen == INSTANCE_FREEZE_NONE) {
                r = cgroup_freeze(cg, true);
                if (r < 0) {
                        lifecycle_set_error(
                                err, inst, -r, "cannot freeze its cgroup: %s%s", strerror(-r),
                                r == -ETIMEDOUT ? " (a task did not freeze within 1 s; the "
                                                  "cgroup was thawed again)"
                                                : "");
                        return r;
                }
        }
        inst->life.frozen = INSTANCE_FREEZE_USER;
        lifecycle_note(inst);
        return 0;
}

int lifecycle_thaw(Instance *inst, LifecycleError *err)
{
        int r;

        r = check(inst, LIFECYCLE_THAW, NULL, err);
        if (r < 0)
                return r;
        if (!own_cgroup(inst, "thaw", err))
                return -EOPNOTSUPP;
        r = thaw_if_frozen(inst, err);
        if (r < 0)
                return r;
        lifecycle_note(inst);
        return 0;
}

int lifecycle_cache(Instance *inst, LifecycleError *err)
{
        bool noop = false;
        Cgroup *cg;
        int r;

        r = check(inst, LIFECYCLE_CACHE, &noop, err);
        if (r < 0 || noop)
                return r;
        cg = own_cgroup(inst, "freeze", err);
        if (!cg)
                return -EOPNOTSUPP;
        /* cgroup.freeze of the unified hierarchy, never the v1 freezer (issue 13). */
        r = memory_freeze(cg, true, NULL);
        if (r < 0) {
                lifecycle_set_error(err, inst, -r, "cannot freeze its cgroup: %s",
                                    r == -EOPNOTSUPP
                                            ? "no cgroup2 hierarchy with cgroup.freeze (a pure "
                                              "cgroup v1 host, or Linux before 5.2); the memory "
                                              "manager does not use the v1 freezer"
                                            : strerror(-r));
                return r;
        }
        inst->life.frozen = INSTANCE_FREEZE_KERNEL;
        lifecycle_note(inst);
        return 0;
}

int lifecycle_uncache(Instance *inst, const char *reason, LifecycleError *err)
{
        uint64_t t0 = now_monotonic_ns();
        int r;

        if (inst->life.frozen != INSTANCE_FREEZE_KERNEL)
                return 0;
        r = thaw_if_frozen(inst, err);
        if (r < 0)
                return r;
        lifecycle_note(inst);
        supervisor_memory_record(inst, "memory.thaw",
                                 json_pack("{s:s, s:I}", "reason", reason, "duration_us",
                                           (json_int_t)((now_monotonic_ns() - t0) / 1000)));
        return 0;
}

int lifecycle_kill(Instance *inst, int signum, LifecycleError *err)
{
        int r;

        if (signum < 1 || signum > 64) {
                lifecycle_set_error(err, inst, EINVAL, "cannot kill it: %d is not a signal (1..64)",
                                    signum);
                return -EINVAL;
        }
        r = check(inst, LIFECYCLE_KILL, NULL, err);
        if (r < 0)
                return r;
        if (!own_cgroup(inst, "kill", err))
                return -EOPNOTSUPP;
        if (inst->life.frozen != INSTANCE_FREEZE_NONE && signum != SIGKILL) {
                lifecycle_set_error(
                        err, inst, EBUSY,
                        "cannot send it signal %d: it is %s, and a frozen app takes only "
                        "SIGKILL; thaw it first",
                        signum, instance_state_to_string(instance_state(inst)));
                err->wrong_state = true;
                return -EBUSY;
        }
        sandboxed_signal(&inst->run, signum);
        lifecycle_note(inst);
        return 0;
}

int lifecycle_foreground(Instance *inst, LifecycleError *err)
{
        bool noop = false;
        int r;

        r = check(inst, LIFECYCLE_FOREGROUND, &noop, err);
        if (r < 0 || noop)
                return r;
        r = lifecycle_uncache(inst, "foreground", err);
        if (r < 0)
                return r;
        inst->life.role = INSTANCE_ROLE_FOREGROUND;
        demote_others(inst);
        lifecycle_note(inst);
        return 0;
}

int lifecycle_background(Instance *inst, LifecycleError *err)
{
        bool noop = false;
        int r;

        r = check(inst, LIFECYCLE_BACKGROUND, &noop, err);
        if (r < 0 || noop)
                return r;
        inst->life.role = INSTANCE_ROLE_BACKGROUND;
        lifecycle_note(inst);
        return 0;
}

/* {"memory_current", "memory_peak", "memory_max", "cpu_usage_usec", "pids_current",
 * "oom_kills", "frozen", "cpu_weight"} of cg, and the pids it holds into *ret_pids. */
static json_t *cgroup_figures(Cgroup *cg, json_t **ret_pids)
{
        CgroupStats st = {};
        const char *mem = cgroup_path(cg, "memory") ?: cgroup_path(cg, "");
        const char *procs = cgroup_path(cg, "pids") ?: cgroup_path(cg, "");
        uint64_t peak = 0, frozen = 0;
        json_t *o;

        (void)cgroup_stats(cg, &st);
        /* memory.peak (v2, Linux 5.19), memory.max_usage_in_bytes (v1). */
        if (cgroup_read_knob_u64(mem, "memory.peak", &peak) < 0)
                (void)cgroup_read_knob_u64(mem, "memory.max_usage_in_bytes", &peak);
        if (cgroup_read_keyed_u64(cgroup_path(cg, ""), "cgroup.events", "frozen", &frozen) < 0) {
                _cleanup_free_ char *v1 = NULL;

                if (cgroup_read_knob(cgroup_path(cg, "freezer"), "freezer.state", &v1) >= 0)
                        frozen = strncmp(v1, "FROZEN", 6) == 0;
        }
        o = json_pack("{s:I, s:I, s:o, s:I, s:I, s:I, s:b}", "memory_current",
                      (json_int_t)st.memory_current, "memory_peak", (json_int_t)peak, "memory_max",
                      st.memory_max == UINT64_MAX ? json_null()
                                                  : json_integer((json_int_t)st.memory_max),
                      "cpu_usage_usec", (json_int_t)st.cpu_usage_usec, "pids_current",
                      (json_int_t)st.pids_current, "oom_kills", (json_int_t)st.oom_kills, "frozen",
                      frozen != 0);
        /* Its CPU weight (cpu.weight, or v1 cpu.shares on the v2 scale): docs/memory.md
         * "CPU". */
        if (o) {
                uint32_t w = 0;

                json_object_set_new(o, "cpu_weight",
                                    cpu_weight_read(cg, &w) >= 0 ? json_integer(w) : json_null());
        }
        if (ret_pids) {
                _cleanup_free_ pid_t *pids = calloc(LIFECYCLE_INSPECT_PIDS_MAX, sizeof *pids);
                int n = pids ? cgroup_read_procs(procs, pids, LIFECYCLE_INSPECT_PIDS_MAX) : -ENOMEM;

                *ret_pids = json_array();
                for (int i = 0; *ret_pids && i < n; i++)
                        json_array_append_new(*ret_pids, json_integer(pids[i]));
        }
        return o;
}

static json_t *strv_json(char *const *v)
{
        json_t *a = json_array();

        for (size_t i = 0; a && v && v[i]; i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
}

static json_t *manifest_json(const Manifest *m)
{
        const ManifestLimits *l = &m->limits;
        json_t *o;

        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s}", "id", m->id,
                      "name", m->name ?: m->id, "version", m->version ?: "0", "runtime",
                      manifest_runtime_to_string(m->runtime), "entry", m->entry ?: "", "kind",
                      manifest_kind_to_string(m->kind), "args", strv_json(m->args), "depends",
                      strv_json(m->depends), "permissions", strv_json(m->permissions), "exports",
                      strv_json(m->exports), "restart", manifest_restart_to_string(m->restart),
                      "isolation", manifest_isolation_to_string(m->isolation));
        if (!o)
                return NULL;
        json_object_set_new(o, "limits",
                            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "memory",
                                      (json_int_t)l->memory, "pids", (json_int_t)l->pids,
                                      "cpu_milli", (json_int_t)l->cpu_milli, "files",
                                      (json_int_t)l->files, "storage", (json_int_t)l->storage,
                                      "tmp", (json_int_t)l->tmp));
        if (m->group)
                json_object_set_new(o, "group", json_string(m->group));
        return o;
}

static json_t *grants_json(Supervisor *s, const char *id)
{
        _cleanup_free_ Grant *g = NULL;
        size_t n = 0;
        json_t *a;

        if (!s->grants || grants_list(s->grants, id, &g, &n) < 0)
                return json_null();
        a = json_array();
        for (size_t i = 0; a && i < n; i++)
                json_array_append_new(a, json_pack("{s:s, s:I, s:b, s:s}", "right", g[i].right,
                                                   "granted_at_ms", (json_int_t)g[i].granted_at_ms,
                                                   "one_time", g[i].one_time, "by",
                                                   grant_source_to_string(g[i].granted_by)));
        return a;
}

json_t *lifecycle_inspect(Instance *inst)
{
        const SandboxedRun *run = instance_run(inst);
        const Sandbox *sb = run->sandbox;
        InstanceState st = instance_state(inst);
        bool running = inst->state == INSTANCE_RUNNING && sb;
        json_t *o, *pids = NULL, *cg = json_null(), *last = json_null();

        if (running && sb->cgroup)
                cg = cgroup_figures(sb->cgroup, &pids) ?: json_null();
        if (inst->life.exited_ms > 0 || inst->last_exit.code != 0) {
                const SandboxExit *x = &inst->last_exit;

                last = json_pack("{s:I, s:s, s:i, s:i, s:b, s:I}", "time_ms",
                                 (json_int_t)inst->life.exited_ms, "how",
                                 x->code == CLD_KILLED || x->code == CLD_DUMPED ? "killed"
                                                                                : "exited",
                                 "status", x->status, "exit_code", inst->exit_code, "oom_killed",
                                 x->oom_killed, "oom_kills", (json_int_t)x->oom_kills);
        }
        o = json_pack("{s:s, s:s, s:b, s:s, s:s, s:s, s:I, s:i, s:I, s:i, s:o, s:o, s:o, s:o, "
                      "s:o, s:s}",
                      "id", inst->manifest->id, "state", instance_state_to_string(st), "running",
                      running, "kind", manifest_kind_to_string(inst->manifest->kind), "app_dir",
                      inst->app_dir, "data_dir", inst->data_dir ?: "", "uid", (json_int_t)inst->uid,
                      "pid", running ? (int)sb->pid : 0, "started_ms",
                      (json_int_t)(running ? inst->started_ms : 0), "restarts", (int)run->restarts,
                      "manifest", manifest_json(inst->manifest) ?: json_null(), "pids",
                      pids ?: json_array(), "cgroup", cg, "last_exit", last ?: json_null(),
                      "grants", grants_json(inst->sup, inst->manifest->id), "cgroup_mode",
                      cgroup_manager_ops(inst->sup->cgm)->name);
        if (o && inst->group)
                json_object_set_new(o, "group", json_string(inst->group->name));
        if (o)
                json_object_set_new(o, "args", strv_json(inst->extra_args));
        /* The memory manager's last kill of it: level, pressure, memory freed. */
        if (o)
                json_object_set_new(o, "memory_kill",
                                    inst->mem_last_kill ? json_deep_copy(inst->mem_last_kill)
                                                        : json_null());
        /* The memory section: band, figures, soft limit, swap cap, recent actions. */
        if (o)
                json_object_set_new(o, "memory", supervisor_memory_app_json(inst) ?: json_null());
        /* The memory manager's level, triggers and whether they run degraded. */
        if (o)
                json_object_set_new(o, "memory_manager",
                                    supervisor_memory_manager_json(inst->sup) ?: json_null());
        /* Its app networks (docs/network.md): network, address, interface. */
        if (o)
                json_object_set_new(o, "networks",
                                    netgroups_app_json(inst->sup->netgroups, inst->manifest->id)
                                            ?: json_array());
        if (o && running && sb->cgroup) {
                /* Where the figures come from: each hierarchy's leaf directory. */
                static const char *const ctrls[] = {"memory", "pids", "cpu", "freezer", ""};
                json_t *paths = json_object();

                for (size_t i = 0; paths && i < ELEMENTSOF(ctrls); i++) {
                        const char *p = cgroup_path(sb->cgroup, ctrls[i]);

                        if (p)
                                json_object_set_new(paths, ctrls[i][0] ? ctrls[i] : "unified",
                                                    json_string(p));
                }
                json_object_set_new(o, "cgroup_paths", paths ?: json_object());
        }
        return o;
}

static int listen_add(Supervisor *s, LifecycleListener fn, LifecycleStatusTap tap, void *ud)
{
        Lifecycle *l = lifecycle_get(s);

        if (!l)
                return -ENOMEM;
        if (l->n_listeners >= LIFECYCLE_LISTENERS_MAX)
                return -ENOSPC;
        l->listeners[l->n_listeners++] = (Listener){.fn = fn, .tap = tap, .userdata = ud};
        return 0;
}

static void listen_remove(Supervisor *s, LifecycleListener fn, LifecycleStatusTap tap, void *ud)
{
        Lifecycle *l = s->lifecycle;

        for (size_t i = 0; l && i < l->n_listeners; i++)
                if (l->listeners[i].fn == fn && l->listeners[i].tap == tap &&
                    l->listeners[i].userdata == ud) {
                        memmove(&l->listeners[i], &l->listeners[i + 1],
                                (l->n_listeners - i - 1) * sizeof *l->listeners);
                        l->n_listeners--;
                        return;
                }
}

int lifecycle_listen(Supervisor *s, LifecycleListener fn, void *userdata)
{
        return listen_add(s, fn, NULL, userdata);
}

void lifecycle_unlisten(Supervisor *s, LifecycleListener fn, void *userdata)
{
        listen_remove(s, fn, NULL, userdata);
}

int lifecycle_tap_status(Supervisor *s, LifecycleStatusTap fn, void *userdata)
{
        return listen_add(s, NULL, fn, userdata);
}

void lifecycle_untap_status(Supervisor *s, LifecycleStatusTap fn, void *userdata)
{
        listen_remove(s, NULL, fn, userdata);
}

void lifecycle_status_record(Supervisor *s, const json_t *record)
{
        Lifecycle *l = s->lifecycle;

        /* A tap may remove itself: walk a copy of the count, re-checking. */
        for (size_t i = 0; l && record && i < l->n_listeners; i++)
                if (l->listeners[i].tap)
                        l->listeners[i].tap(record, l->listeners[i].userdata);
}

void lifecycle_free(Supervisor *s)
{
        free(s->lifecycle);
        s->lifecycle = NULL;
}
