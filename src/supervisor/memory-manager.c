/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cellad's memory manager loop (memory-manager.h; docs/memory.md "The manager"). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/time-util.h"
#include "memory/pressure.h"
#include "memory/reading.h"
#include "memory/sampler.h"
#include "supervisor/memory-actions.h"
#include "supervisor/memory-manager.h"
#include "supervisor/supervisor-internal.h"

#define NS_PER_MS UINT64_C(1000000)
/* The shortest span a stall rate is measured over: the levels' stall thresholds are
 * "ms out of 1 sec" (lmkd's psi_thresholds[]); a shorter burst is no such rate. */
#define MEMORY_MANAGER_MIN_SPAN_NS (1000 * NS_PER_MS)

typedef struct MemoryManager MemoryManager;

enum { TARGET_APPS, TARGET_MACHINE, _TARGET_MAX };

static const char *const target_names[_TARGET_MAX] = {"apps", "machine"};
/* For messages: "the apps' memory pressure", "the machine's memory pressure". */
static const char *const target_owner[_TARGET_MAX] = {"the apps'", "the machine's"};

typedef struct MemoryTarget {
        struct MemoryManager *mm;
        PressureTrigger *trigger; /* NULL: not watched */
        MemorySource *source;     /* NULL: not read */
        MemoryGauge gauge;
        MemoryReading last;
        bool has_last;
        uv_poll_t poll;
        bool poll_init;
} MemoryTarget;

struct MemoryManager {
        Supervisor *sup;
        ManagerConfig config;
        MemoryTarget target[_TARGET_MAX];
        MemorySampler sampler;
        MemoryPolicy policy;
        uv_timer_t timer;
        bool timer_init;
        /* A fired trigger means the stall passed its threshold over its window: the
         * level it was armed for holds until one window after the last one fired. */
        MemoryLevel trigger_level;
        uint64_t trigger_until_ns;
        uint64_t episode_ns; /* the first trigger of the current episode; 0: none */
        uint64_t window_ns;
        MemoryLevel level;
        int level_target; /* the target that set the level, or -1 (a trigger) */
        bool degraded;
        uint64_t wakeups_trigger, wakeups_timer, samples, actions;
        /* Per sample, sized for the apps (grown outside pressure when apps are added). */
        Instance **inst;
        MemoryCandidate *cand;
        MemoryPolicyApp *app;
        size_t *order;
        MemoryPolicyAction *out;
        size_t cap;
};

static uint64_t budget_of(const MemoryManager *mm, int t)
{
        return t == TARGET_APPS ? mm->config.memory_total : 0;
}

/* Room for n apps in the scratch arrays. Returns 0 or -ENOMEM. */
static int reserve(MemoryManager *mm, size_t n)
{
        if (n <= mm->cap)
                return 0;
        n = MAX(n, mm->cap * 2);
        free(mm->inst);
        free(mm->cand);
        free(mm->app);
        free(mm->order);
        free(mm->out);
        mm->inst = calloc(n, sizeof *mm->inst);
        mm->cand = calloc(n, sizeof *mm->cand);
        mm->app = calloc(n, sizeof *mm->app);
        mm->order = calloc(n, sizeof *mm->order);
        mm->out = calloc(3 * n + 1, sizeof *mm->out);
        if (!mm->inst || !mm->cand || !mm->app || !mm->order || !mm->out) {
                mm->cap = 0;
                return -ENOMEM;
        }
        mm->cap = n;
        return 0;
}

/* The running apps the manager may act on, into mm's arrays. Returns their number. */
static size_t gather(MemoryManager *mm)
{
        Supervisor *s = mm->sup;
        size_t n = 0;

        if (reserve(mm, s->n_apps) < 0)
                return 0;
        for (size_t i = 0; i < s->n_apps; i++) {
                Instance *inst = s->apps[i];
                InstanceState st = instance_state(inst);
                MemoryClass cls;
                const Sandbox *sb;

                if (!instance_state_is_running(st) || st == INSTANCE_STATE_STOPPING ||
                    inst->run.low_memory_kill)
                        continue;
                cls = memory_class_of_state_name(instance_state_to_string(st));
                if (cls == MEMORY_CLASS_NONE)
                        continue;
                sb = inst->group ? inst->group->run.sandbox : inst->run.sandbox;
                mm->inst[n] = inst;
                mm->cand[n] = (MemoryCandidate){.cls = cls,
                                                .last_used_usec = inst->life.last_used_ns / 1000};
                /* The heaviest goes first in bands <= 200 only (band.h): the others
                 * need no read. */
                if (!inst->group && sb && sb->cgroup && cls <= MEMORY_CLASS_SERVICE) {
                        CgroupStats cs = {};

                        if (cgroup_stats(sb->cgroup, &cs) >= 0)
                                mm->cand[n].memory_bytes = cs.memory_current;
                }
                inst->mem_policy.own_cgroup = !inst->group && sb && sb->cgroup;
                mm->app[n] = inst->mem_policy;
                n++;
        }
        return n;
}

/* The fields every record of this sample's actions gets (memory-actions.c). */
static json_t *context(MemoryManager *mm, uint64_t now_ns)
{
        const MemoryTarget *t = &mm->target[mm->level_target >= 0 ? mm->level_target : 0];
        const MemoryLevelInput *in = &t->gauge.last;
        json_t *o;

        o = json_pack("{s:s, s:s, s:s, s:b}", "by", "manager", "level",
                      memory_level_to_string(mm->level), "level_from",
                      mm->level_target >= 0 ? target_names[mm->level_target] : "trigger",
                      "degraded", mm->degraded);
        if (!o)
                return NULL;
        if (in->window_us) {
                json_object_set_new(
                        o, "stall_some_ms",
                        json_integer((json_int_t)(in->some_stall_us * 1000 / in->window_us)));
                json_object_set_new(
                        o, "stall_full_ms",
                        json_integer((json_int_t)(in->full_stall_us * 1000 / in->window_us)));
        }
        if (in->total) {
                json_object_set_new(o, "available_bytes", json_integer((json_int_t)in->available));
                json_object_set_new(o, "budget_bytes", json_integer((json_int_t)in->total));
        }
        if (mm->target[TARGET_APPS].has_last && mm->target[TARGET_APPS].last.has_psi)
                json_object_set_new(o, "apps_pressure_some_avg10",
                                    json_integer(mm->target[TARGET_APPS].last.some_avg10));
        if (mm->episode_ns && now_ns >= mm->episode_ns)
                json_object_set_new(
                        o, "since_trigger_ms",
                        json_integer((json_int_t)((now_ns - mm->episode_ns) / NS_PER_MS)));
        return o;
}

/* Carries out one action; marks what failed so that it is not tried again. */
static void act(MemoryManager *mm, const MemoryPolicyAction *a, MemoryPolicyApp *app)
{
        Instance *inst = mm->inst[a->app];
        LifecycleError e = {};
        const char *what = memory_policy_do_to_string(a->what);
        int r = 0;

        switch (a->what) {
        case MEMORY_DO_TRIM:
                r = supervisor_memory_trim(inst, a->level, &e);
                break;
        case MEMORY_DO_RECLAIM:
                r = supervisor_memory_reclaim(inst, a->level, &e);
                break;
        case MEMORY_DO_FREEZE:
                r = supervisor_memory_freeze(inst, &e);
                if (r < 0)
                        app->no_freeze = true;
                break;
        case MEMORY_DO_KILL:
                r = supervisor_memory_kill(inst, a->level, &e);
                if (r < 0)
                        app->no_kill = true;
                else {
                        /* The stall before the kill says nothing of the memory now. */
                        for (int t = 0; t < _TARGET_MAX; t++)
                                memory_gauge_forget(&mm->target[t].gauge);
                }
                break;
        case MEMORY_DO_RESTORE:
                r = supervisor_memory_restore(inst, &e);
                break;
        default:
                return;
        }
        mm->actions++;
        if (r < 0)
                log_full_errno(r == -EBUSY ? LOG_DEBUG_LEVEL : LOG_WARN_LEVEL, 0,
                               "memory manager: cannot %s %s at level %s: %s", what,
                               inst->manifest->id, memory_level_to_string(a->level), e.message);
        else if (a->what == MEMORY_DO_KILL || a->what == MEMORY_DO_FREEZE)
                log_info("memory manager: %s %s (level %s)",
                         a->what == MEMORY_DO_KILL ? "killed" : "froze", inst->manifest->id,
                         memory_level_to_string(a->level));
}

static void on_timer(uv_timer_t *t);

/*
 * What the manager counts as available in the apps' parent: its budget (or limit)
 * less what it holds beyond its page cache, shmem excepted; as MemAvailable counts
 * the machine's page cache (proc(5): "estimate of how much memory is available for
 * starting new applications, without swapping"). The reading's own available (the
 * kubelet's working set) counts active page cache as used: an app reading a file
 * over and over would keep the level up long after the pressure ended, and a
 * thrashing page cache shows as stall anyway. MEMORY_UNKNOWN without a limit.
 */
static uint64_t reclaimable_available(const MemoryReading *r, uint64_t budget)
{
        uint64_t limit = budget ?: r->limit, cache = 0, held;

        if (limit == MEMORY_UNKNOWN || r->current == MEMORY_UNKNOWN)
                return MEMORY_UNKNOWN;
        if (r->file != MEMORY_UNKNOWN)
                cache = r->file - MIN(r->file, r->shmem == MEMORY_UNKNOWN ? 0 : r->shmem);
        held = r->current - MIN(r->current, cache);
        return limit > held ? limit - held : 0;
}

/* One sample at now_ns: the level, the actions, the next deadline. */
static void sample(MemoryManager *mm, uint64_t now_ns)
{
        MemoryLevel level = MEMORY_LEVEL_NORMAL;
        uint64_t next;
        size_t n, k;

        mm->samples++;
        mm->level_target = -1;
        for (int t = 0; t < _TARGET_MAX; t++) {
                MemoryTarget *x = &mm->target[t];
                MemoryLevel l;
                int r;

                if (!x->source)
                        continue;
                r = memory_source_read(x->source, &x->last);
                if (r < 0) {
                        x->has_last = false;
                        log_debug_errno(r, "memory manager: cannot read %s memory: %m",
                                        target_owner[t]);
                        continue;
                }
                x->has_last = true;
                if (t == TARGET_MACHINE) {
                        /* The machine's level is its free memory alone: its PSI counts
                         * every task of the host, also one stalling against a limit of
                         * its own elsewhere (another tenant's budget), which is no
                         * shortage of the machine's nor anything our apps could give
                         * back. Our apps' own stall, global reclaim's included, is
                         * the apps' parent's. */
                        MemoryReading free_only = x->last;

                        free_only.has_psi = false;
                        l = memory_gauge_update(&x->gauge, &mm->config.levels, now_ns, &free_only,
                                                0, mm->window_ns, MEMORY_MANAGER_MIN_SPAN_NS);
                } else {
                        MemoryReading apps = x->last;

                        apps.available = reclaimable_available(&apps, budget_of(mm, t));
                        l = memory_gauge_update(&x->gauge, &mm->config.levels, now_ns, &apps,
                                                budget_of(mm, t), mm->window_ns,
                                                MEMORY_MANAGER_MIN_SPAN_NS);
                }
                if (l > level || (l == level && mm->level_target < 0 && l > MEMORY_LEVEL_NORMAL)) {
                        level = l;
                        mm->level_target = t;
                }
        }
        if (now_ns < mm->trigger_until_ns && mm->trigger_level > level) {
                level = mm->trigger_level;
                mm->level_target = -1;
        }
        mm->level = level;

        n = gather(mm);
        k = memory_policy_decide(&mm->policy, now_ns, level, mm->cand, mm->app, n, mm->order,
                                 mm->out);
        if (k > 0) {
                json_decref(mm->sup->mem_context);
                mm->sup->mem_context = context(mm, now_ns);
                for (size_t i = 0; i < k; i++)
                        act(mm, &mm->out[i], &mm->app[mm->out[i].app]);
                json_decref(mm->sup->mem_context);
                mm->sup->mem_context = NULL;
        }
        /* Each app keeps what was done to it (an app ended by a kill is still in the
         * supervisor's table: its state is the next run's). */
        for (size_t i = 0; i < n; i++)
                mm->inst[i]->mem_policy = mm->app[i];
        if (level == MEMORY_LEVEL_NORMAL && mm->policy.stage == MEMORY_STAGE_IDLE) {
                /* Apps that left the running states mid-episode: nothing kept. */
                for (size_t i = 0; i < mm->sup->n_apps; i++) {
                        MemoryPolicyApp *a = &mm->sup->apps[i]->mem_policy;

                        *a = (MemoryPolicyApp){.own_cgroup = a->own_cgroup,
                                               .no_freeze = a->no_freeze};
                }
        }

        next = memory_sampler_sampled(&mm->sampler, now_ns, level > MEMORY_LEVEL_NORMAL);
        if (next == 0 && level > MEMORY_LEVEL_NORMAL)
                next = memory_sampler_hold(&mm->sampler, now_ns);
        if (next == 0) {
                /* Idle: no timer, no wake-up, until a trigger fires. */
                (void)uv_timer_stop(&mm->timer);
                mm->episode_ns = 0;
                return;
        }
        (void)uv_timer_start(&mm->timer, on_timer, next > now_ns ? (next - now_ns) / NS_PER_MS : 0,
                             0);
}

/* cellad stops every app: no action any more (the stop ends them all). */
static bool stopping(MemoryManager *mm)
{
        return mm->sup->stopping || mm->sup->freeing;
}

static void on_timer(uv_timer_t *t)
{
        MemoryManager *mm = t->data;

        mm->wakeups_timer++;
        if (stopping(mm))
                return;
        sample(mm, now_monotonic_ns());
}

static void on_trigger(uv_poll_t *p, int status, int events)
{
        MemoryTarget *x = p->data;
        MemoryManager *mm = x->mm;
        short revents = 0;
        uint64_t now;
        int r;

        if (status < 0)
                revents = POLLERR;
        else
                revents = (short)(((events & UV_PRIORITIZED) ? POLLPRI : 0) |
                                  ((events & UV_READABLE) ? POLLIN : 0) |
                                  ((events & UV_DISCONNECT) ? POLLHUP : 0));
        r = pressure_trigger_handle(x->trigger, revents);
        if (r < 0) {
                log_warning_errno(r,
                                  "memory manager: %s pressure trigger failed (%m); it is no "
                                  "longer watched",
                                  target_owner[x - mm->target]);
                (void)uv_poll_stop(p);
                return;
        }
        if (r == 0)
                return;
        mm->wakeups_trigger++;
        if (stopping(mm))
                return;
        now = now_monotonic_ns();
        if (mm->episode_ns == 0)
                mm->episode_ns = now;
        /* Only the apps' stall implies a level (the machine's: see sample()). */
        if (x == &mm->target[TARGET_APPS]) {
                mm->trigger_until_ns =
                        now + (uint64_t)pressure_trigger_window_us(x->trigger) * 1000;
                if (mm->trigger_until_ns == now)
                        mm->trigger_until_ns = now + mm->window_ns;
        }
        (void)memory_sampler_triggered(&mm->sampler, now);
        sample(mm, now);
}

/* The lowest level with a stall threshold of kind, and that threshold (ms per s). */
static MemoryLevel trigger_threshold(const MemoryLevelConfig *c, PressureKind *ret_kind,
                                     uint32_t *ret_ms)
{
        for (int l = MEMORY_LEVEL_MODERATE; l < _MEMORY_LEVEL_MAX; l++)
                if (c->level[l].some_ms) {
                        *ret_kind = PRESSURE_SOME;
                        *ret_ms = c->level[l].some_ms;
                        return (MemoryLevel)l;
                }
        for (int l = MEMORY_LEVEL_MODERATE; l < _MEMORY_LEVEL_MAX; l++)
                if (c->level[l].full_ms) {
                        *ret_kind = PRESSURE_FULL;
                        *ret_ms = c->level[l].full_ms;
                        return (MemoryLevel)l;
                }
        return MEMORY_LEVEL_NORMAL;
}

static void on_closed(uv_handle_t *h)
{
}

void supervisor_memory_manager_stop(Supervisor *s)
{
        MemoryManager *mm = s->mm;

        if (!mm)
                return;
        for (int t = 0; t < _TARGET_MAX; t++) {
                MemoryTarget *x = &mm->target[t];

                if (x->poll_init && !uv_is_closing((uv_handle_t *)&x->poll))
                        uv_close((uv_handle_t *)&x->poll, on_closed);
        }
        if (mm->timer_init && !uv_is_closing((uv_handle_t *)&mm->timer))
                uv_close((uv_handle_t *)&mm->timer, on_closed);
        /* The handles are closed by the loop run of supervisor_free(); the triggers'
         * fds and the manager go after it (supervisor_memory_manager_free()). */
}

void supervisor_memory_manager_free(Supervisor *s)
{
        MemoryManager *mm = s->mm;

        if (!mm)
                return;
        for (int t = 0; t < _TARGET_MAX; t++) {
                mm->target[t].trigger = pressure_trigger_free(mm->target[t].trigger);
                mm->target[t].source = memory_source_free(mm->target[t].source);
        }
        free(mm->inst);
        free(mm->cand);
        free(mm->app);
        free(mm->order);
        free(mm->out);
        free(mm);
        s->mm = NULL;
}

/* Arms target t's trigger and opens its readings. Returns 0 or a negative errno. */
static int target_arm(MemoryManager *mm, int t, PressureKind kind, uint32_t stall_ms)
{
        MemoryTarget *x = &mm->target[t];
        const char *v1 = NULL, *v2 = NULL;
        char psi[4096];
        uint32_t window_us = mm->config.psi_window_ms * 1000;
        uint32_t fallback_us = mm->config.psi_fallback_window_ms * 1000;
        int r;

        x->mm = mm;
        memory_gauge_init(&x->gauge);
        if (t == TARGET_APPS) {
                r = cgroup_manager_root(mm->sup->cgm, "memory", true, &v1);
                if (r < 0 && r != -ENOENT)
                        return r;
                r = cgroup_manager_root(mm->sup->cgm, "", true, &v2);
                if (r < 0 && r != -ENOENT)
                        return r;
                if (v2 && (size_t)snprintf(psi, sizeof psi, "%s/memory.pressure", v2) >= sizeof psi)
                        return -ENAMETOOLONG;
                r = memory_source_open_apps(mm->sup->cgm, true, &x->source);
        } else {
                snprintf(psi, sizeof psi, "/proc/pressure/memory");
                v2 = psi;
                r = memory_source_open_machine("/proc", &x->source);
        }
        if (r < 0)
                return r;
        /* stall_ms per second of the window: stall_ms * window_ms µs. */
        r = pressure_trigger_new_best(v2 ? psi : NULL, v1, kind,
                                      stall_ms * mm->config.psi_window_ms, window_us, fallback_us,
                                      PRESSURE_V1_MEDIUM, &x->trigger);
        if (r < 0) {
                x->source = memory_source_free(x->source);
                return r;
        }
        r = uv_poll_init(&mm->sup->loop, &x->poll, pressure_trigger_fd(x->trigger));
        if (r < 0) {
                x->trigger = pressure_trigger_free(x->trigger);
                x->source = memory_source_free(x->source);
                return r;
        }
        x->poll_init = true;
        x->poll.data = x;
        uv_unref((uv_handle_t *)&x->poll);
        r = uv_poll_start(&x->poll,
                          pressure_trigger_events(x->trigger) == POLLPRI ? UV_PRIORITIZED
                                                                         : UV_READABLE,
                          on_trigger);
        if (r < 0)
                return r;
        if (pressure_trigger_degraded(x->trigger))
                mm->degraded = true;
        mm->window_ns = MAX(mm->window_ns,
                            (uint64_t)(pressure_trigger_window_us(x->trigger) ?: window_us) * 1000);
        log_info("memory manager: watching %s memory pressure: %s%s", target_owner[t],
                 pressure_trigger_describe(x->trigger),
                 pressure_trigger_degraded(x->trigger)
                         ? " (degraded: the kernel refused the shorter window; root without "
                           "CAP_SYS_RESOURCE gets only multiples of 2 s)"
                         : "");
        return 0;
}

int supervisor_memory_manager_start(Supervisor *s, const ManagerConfig *c)
{
        MemoryManager *mm;
        MemorySamplerConfig sc;
        PressureKind kind;
        uint32_t stall_ms = 0;
        int armed = 0, r;

        if (s->mm)
                return 0;
        mm = calloc(1, sizeof *mm);
        if (!mm)
                return -ENOMEM;
        mm->sup = s;
        mm->config = *c;
        mm->level_target = -1;
        s->mm = mm;
        mm->trigger_level = trigger_threshold(&c->levels, &kind, &stall_ms);
        if (mm->trigger_level == MEMORY_LEVEL_NORMAL) {
                log_warning("memory manager: no level has a stall threshold (memory.level.*."
                            "some_ms or full_ms): nothing to arm a trigger with; the manager "
                            "does not run");
                supervisor_memory_manager_free(s);
                return -EINVAL;
        }
        memory_policy_init(&mm->policy, &c->policy);
        r = uv_timer_init(&s->loop, &mm->timer);
        if (r < 0) {
                supervisor_memory_manager_free(s);
                return r;
        }
        mm->timer_init = true;
        mm->timer.data = mm;
        uv_unref((uv_handle_t *)&mm->timer);
        for (int t = 0; t < _TARGET_MAX; t++) {
                r = target_arm(mm, t, kind, stall_ms);
                if (r == -ENOMEM)
                        break;
                if (r < 0) {
                        log_warning_errno(r, "memory manager: cannot watch %s memory pressure: %m",
                                          target_owner[t]);
                        continue;
                }
                armed++;
        }
        if (r == -ENOMEM || armed == 0) {
                r = r == -ENOMEM ? r : -ENOENT;
                goto fail;
        }
        sc = manager_config_sampler(c, (uint32_t)(mm->window_ns / NS_PER_MS));
        r = memory_sampler_init(&mm->sampler, &sc);
        if (r < 0)
                goto fail;
        return 0;
fail:
        /* The handles close on the loop's next run; the fds stay with the manager until
         * supervisor_free() frees it. Not running: the sampler has no window. */
        supervisor_memory_manager_stop(s);
        mm->sampler = (MemorySampler){};
        mm->degraded = false;
        return r;
}

bool supervisor_memory_manager_degraded(const Supervisor *s)
{
        return s->mm && s->mm->degraded;
}

json_t *supervisor_memory_manager_json(const Supervisor *s)
{
        const MemoryManager *mm = s->mm;
        json_t *o, *trig;

        if (!mm || !mm->sampler.config.window_ms)
                return json_pack("{s:b}", "running", false);
        trig = json_array();
        for (int t = 0; t < _TARGET_MAX && trig; t++)
                if (mm->target[t].trigger)
                        json_array_append_new(
                                trig, json_pack("{s:s, s:s, s:b, s:I}", "target", target_names[t],
                                                "trigger",
                                                pressure_trigger_describe(mm->target[t].trigger),
                                                "degraded",
                                                pressure_trigger_degraded(mm->target[t].trigger),
                                                "window_ms",
                                                (json_int_t)pressure_trigger_window_us(
                                                        mm->target[t].trigger) /
                                                        1000));
        o = json_pack(
                "{s:b, s:s, s:b, s:o, s:b, s:I, s:I, s:{s:I, s:I}, s:I, s:I}", "running", true,
                "level", memory_level_to_string(mm->level), "degraded", mm->degraded, "triggers",
                trig ?: json_array(), "sampling", !memory_sampler_idle(&mm->sampler), "episodes",
                (json_int_t)mm->policy.episodes, "kills", (json_int_t)mm->policy.kills, "wakeups",
                "trigger", (json_int_t)mm->wakeups_trigger, "timer", (json_int_t)mm->wakeups_timer,
                "samples", (json_int_t)mm->samples, "actions", (json_int_t)mm->actions);
        return o;
}
