/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The memory manager's actions on an app (memory-actions.h; docs/memory.md "Actions"). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/time-util.h"
#include "sandbox/cgroup.h"
#include "supervisor/memory-actions.h"
#include "supervisor/supervisor-internal.h"

static int wrong_state(LifecycleError *err, const Instance *inst, const char *what, const char *why)
{
        lifecycle_set_error(err, inst, EBUSY, "cannot %s it: it is %s; %s", what,
                            instance_state_to_string(instance_state(inst)), why);
        err->wrong_state = true;
        return -EBUSY;
}

static bool level_valid(MemoryLevel level)
{
        return level >= MEMORY_LEVEL_MODERATE && level <= MEMORY_LEVEL_CRITICAL;
}

static int bad_level(LifecycleError *err, const Instance *inst, MemoryLevel level)
{
        lifecycle_set_error(err, inst, EINVAL,
                            "%d is not a level to act at (moderate, low, critical)", (int)level);
        return -EINVAL;
}

/* The cgroup of the sandbox inst runs in: its own, or its group's host's. */
static Cgroup *run_cgroup(const Instance *inst)
{
        const Sandbox *sb = inst->group ? inst->group->run.sandbox : inst->run.sandbox;

        return sb ? sb->cgroup : NULL;
}

/* The app's own cgroup, for the actions that act on a whole sandbox: a packed
 * member has none of its own (its host runs the other members too). */
static Cgroup *own_cgroup(Instance *inst, const char *what, LifecycleError *err)
{
        Cgroup *cg;

        if (inst->group) {
                lifecycle_set_error(
                        err, inst, EOPNOTSUPP,
                        "cannot %s it alone: it runs packed in the host of group %s, with "
                        "the group's other apps",
                        what, inst->group->name);
                return NULL;
        }
        cg = run_cgroup(inst);
        if (!cg)
                lifecycle_set_error(err, inst, EOPNOTSUPP,
                                    "cannot %s it: its sandbox has no cgroup", what);
        return cg;
}

void supervisor_memory_record(Instance *inst, const char *what, json_t *fields)
{
        Supervisor *s = inst->sup;
        json_t *rec, *audit;

        if (!fields)
                return;
        rec = json_pack("{s:s, s:s}", "event", what, "app", inst->manifest->id);
        audit = json_pack("{s:s}", "what", what);
        if (rec)
                (void)json_object_update(rec, fields);
        if (audit)
                (void)json_object_update(audit, fields);
        json_decref(fields);
        /* An action of the manager's: why (its level, the pressure figures). */
        if (s->mem_context) {
                if (rec)
                        (void)json_object_update_missing(rec, s->mem_context);
                if (audit)
                        (void)json_object_update_missing(audit, s->mem_context);
        }
        /* For cella memory's recent actions: the fields and the manager's context. */
        if (audit)
                supervisor_memory_remember(inst, what, audit);
        if (rec) {
                if (s->o.daemon)
                        supervisor_status(s, rec);
                else {
                        lifecycle_status_record(s, rec);
                        json_decref(rec);
                }
        }
        if (audit)
                supervisor_audit(s, inst->manifest->id, AUDIT_EVENT_LIFECYCLE, audit);
}

/* Memory use and hard limit of cg, bytes (limit 0: none). */
static void usage_of(Cgroup *cg, uint64_t *ret_current, uint64_t *ret_limit)
{
        CgroupStats st = {.memory_max = UINT64_MAX};

        *ret_current = *ret_limit = 0;
        if (!cg || cgroup_stats(cg, &st) < 0)
                return;
        *ret_current = st.memory_current;
        *ret_limit = st.memory_max == UINT64_MAX ? 0 : st.memory_max;
}

int supervisor_memory_trim(Instance *inst, MemoryLevel level, LifecycleError *err)
{
        uint64_t current, limit;
        int r;

        if (!level_valid(level))
                return bad_level(err, inst, level);
        if (!instance_state_is_running(instance_state(inst)) || !inst->broker_app)
                return wrong_state(err, inst, "trim", "only a running app is asked to trim");
        usage_of(run_cgroup(inst), &current, &limit);
        /* MemoryLevel 1..3 is the wire's MemoryLevel 1..3 (broker.h). */
        r = broker_app_memory_pressure(inst->broker_app, (int)level, current, limit);
        if (r < 0) {
                lifecycle_set_error(err, inst, -r, "cannot send it event.memory_pressure: %s",
                                    strerror(-r));
                return r;
        }
        supervisor_memory_record(inst, "memory.trim",
                                 json_pack("{s:s, s:I, s:I}", "level",
                                           memory_action_level_name(level), "current_bytes",
                                           (json_int_t)current, "limit_bytes", (json_int_t)limit));
        return 0;
}

static json_t *bytes_or_null(uint64_t v)
{
        return v == UINT64_MAX ? json_null() : json_integer((json_int_t)v);
}

int supervisor_memory_reclaim(Instance *inst, MemoryLevel level, LifecycleError *err)
{
        InstanceState st = instance_state(inst);
        MemoryReclaim rc;
        Cgroup *cg;
        int r;

        if (!level_valid(level))
                return bad_level(err, inst, level);
        if (st != INSTANCE_STATE_BACKGROUND && st != INSTANCE_STATE_CACHED)
                return wrong_state(err, inst, "reclaim from",
                                   "only background and cached apps are reclaimed from");
        cg = own_cgroup(inst, "reclaim from", err);
        if (!cg)
                return -EOPNOTSUPP;
        r = memory_reclaim(cg, memory_reclaim_keep_percent(level), &rc);
        if (r < 0) {
                lifecycle_set_error(
                        err, inst, -r, "cannot lower its soft limit: %s%s", strerror(-r),
                        r == -EOPNOTSUPP ? " (no memory controller in its cgroup)" : "");
                return r;
        }
        /* A second reclaim keeps the limit the first one found, to restore that. */
        if (!inst->mem_reclaimed)
                inst->mem_reclaim_previous = rc.previous;
        inst->mem_reclaimed = true;
        supervisor_memory_record(inst, "memory.reclaim",
                                 json_pack("{s:s, s:I, s:o, s:I}", "level",
                                           memory_action_level_name(level), "soft_limit_bytes",
                                           (json_int_t)rc.soft_limit, "previous_bytes",
                                           bytes_or_null(inst->mem_reclaim_previous), "usage_bytes",
                                           (json_int_t)rc.usage));
        return 0;
}

int supervisor_memory_restore(Instance *inst, LifecycleError *err)
{
        MemoryReclaim rc;
        Cgroup *cg;
        int r;

        if (!inst->mem_reclaimed)
                return 0;
        cg = own_cgroup(inst, "restore the soft limit of", err);
        if (!cg)
                return -EOPNOTSUPP;
        rc = (MemoryReclaim){.previous = inst->mem_reclaim_previous};
        r = memory_reclaim_restore(cg, &rc);
        if (r < 0) {
                lifecycle_set_error(err, inst, -r, "cannot restore its soft limit: %s",
                                    strerror(-r));
                return r;
        }
        inst->mem_reclaimed = false;
        supervisor_memory_record(
                inst, "memory.restore",
                json_pack("{s:o}", "soft_limit_bytes", bytes_or_null(inst->mem_reclaim_previous)));
        return 0;
}

int supervisor_memory_freeze(Instance *inst, LifecycleError *err)
{
        uint64_t t0 = now_monotonic_ns();
        int r;

        r = lifecycle_cache(inst, err);
        if (r < 0)
                return r;
        supervisor_memory_record(
                inst, "memory.freeze",
                json_pack("{s:I}", "duration_us", (json_int_t)((now_monotonic_ns() - t0) / 1000)));
        return 0;
}

int supervisor_memory_thaw(Instance *inst, LifecycleError *err)
{
        if (instance_state(inst) != INSTANCE_STATE_CACHED)
                return wrong_state(err, inst, "thaw",
                                   "only an app the memory manager froze (cached) is thawed so");
        return lifecycle_uncache(inst, "manual", err);
}

/* PSI "some avg10" of a pressure file, or null. */
static json_t *pressure_or_null(const char *dir, const char *knob)
{
        uint32_t v;

        if (!dir || cgroup_read_pressure(dir, knob, "some", &v) < 0)
                return json_null();
        return json_integer(v);
}

int supervisor_memory_kill(Instance *inst, MemoryLevel level, LifecycleError *err)
{
        InstanceState st = instance_state(inst);
        json_t *psi_app, *psi_host, *fields;
        MemoryKill k;
        Cgroup *cg;
        int band, r;

        if (!level_valid(level))
                return bad_level(err, inst, level);
        if (!instance_state_is_running(st) || st == INSTANCE_STATE_STOPPING)
                return wrong_state(err, inst, "kill", "only a running app is killed for memory");
        cg = own_cgroup(inst, "kill", err);
        if (!cg)
                return -EOPNOTSUPP;
        band = supervisor_memory_band(inst);
        /* The figures the decision was made on, before the kill changes them. */
        psi_app = pressure_or_null(cgroup_path(cg, ""), "memory.pressure");
        psi_host = pressure_or_null("/proc/pressure", "memory");
        /* Its exit, once the loop sees it, is this kill's (restart reason "low-memory"). */
        inst->run.low_memory_kill = true;
        r = memory_kill(cg, &k);
        if (r < 0) {
                inst->run.low_memory_kill = false;
                json_decref(psi_app);
                json_decref(psi_host);
                lifecycle_set_error(err, inst, -r, "cannot kill its cgroup: %s", strerror(-r));
                return r;
        }
        fields = json_pack("{s:s, s:i, s:I, s:I, s:I, s:o, s:o, s:I}", "level",
                           memory_action_level_name(level), "band", band, "freed_bytes",
                           (json_int_t)k.freed, "usage_bytes", (json_int_t)k.usage_before,
                           "duration_us", (json_int_t)k.usec, "pressure_some_avg10", psi_app,
                           "host_pressure_some_avg10", psi_host, "time_ms",
                           (json_int_t)now_realtime_ms());
        json_decref(inst->mem_last_kill);
        inst->mem_last_kill = fields ? json_deep_copy(fields) : NULL;
        supervisor_memory_record(inst, "memory.kill", fields);
        return 0;
}

/* The class of a state (memory/band.h); NONE for one that does not run. */
static MemoryClass class_of(InstanceState st)
{
        switch (st) {
        case INSTANCE_STATE_FOREGROUND:
                return MEMORY_CLASS_FOREGROUND;
        case INSTANCE_STATE_VISIBLE:
                return MEMORY_CLASS_VISIBLE;
        case INSTANCE_STATE_SERVICE:
                return MEMORY_CLASS_SERVICE;
        case INSTANCE_STATE_BACKGROUND:
        case INSTANCE_STATE_STOPPING:
                return MEMORY_CLASS_BACKGROUND;
        case INSTANCE_STATE_CACHED:
        case INSTANCE_STATE_FROZEN:
                return MEMORY_CLASS_CACHED;
        default:
                return MEMORY_CLASS_NONE;
        }
}

static MemoryClass class_of_role(InstanceRole role)
{
        switch (role) {
        case INSTANCE_ROLE_FOREGROUND:
                return MEMORY_CLASS_FOREGROUND;
        case INSTANCE_ROLE_VISIBLE:
                return MEMORY_CLASS_VISIBLE;
        case INSTANCE_ROLE_SERVICE:
                return MEMORY_CLASS_SERVICE;
        default:
                return MEMORY_CLASS_BACKGROUND;
        }
}

int supervisor_memory_band(const Instance *inst)
{
        const Supervisor *s = inst->sup;
        MemoryClass cls = class_of(instance_state(inst));
        unsigned rank = 0;

        if (cls == MEMORY_CLASS_NONE)
                return MEMORY_BAND_NONE;
        /* Only services and cached apps have a rank in their band: the others' band
         * is the class's, with no walk over every app. */
        if (cls != MEMORY_CLASS_SERVICE && cls != MEMORY_CLASS_CACHED)
                return memory_band(cls, 0);
        /* Its rank among the running apps of its class, the most recently used first
         * (memory_assign_bands()'s rule, without the array: one app at a time). */
        for (size_t i = 0; i < s->n_apps; i++) {
                const Instance *o = s->apps[i];

                if (o == inst || class_of(instance_state(o)) != cls)
                        continue;
                if (o->life.last_used_ns > inst->life.last_used_ns ||
                    (o->life.last_used_ns == inst->life.last_used_ns && o < inst))
                        rank++;
        }
        return memory_band(cls, rank);
}

/* The band of a group's host: its most important running member's. */
static int group_band(const Group *g)
{
        int best = MEMORY_BAND_NONE;

        for (size_t i = 0; i < g->n_members; i++) {
                int b = supervisor_memory_band(g->members[i]);

                if (b != MEMORY_BAND_NONE && (best == MEMORY_BAND_NONE || b < best))
                        best = b;
        }
        return best;
}

int supervisor_memory_start_adj(const Instance *inst)
{
        InstanceRole role = inst->life.start_role ?: inst->life.role;

        if (inst->manifest->kind == MANIFEST_KIND_SERVICE)
                role = INSTANCE_ROLE_SERVICE;
        else if (role == INSTANCE_ROLE_NONE)
                role = inst->sup->o.boot ? INSTANCE_ROLE_BACKGROUND : INSTANCE_ROLE_FOREGROUND;
        return memory_band_oom_score_adj(memory_band(class_of_role(role), 0));
}

/* Writes band's oom_score_adj to every process of cg if it changed (*applied: the
 * band + 1 last written, 0 none). */
static void apply(Cgroup *cg, int band, int *applied, const char *name)
{
        int r;

        if (!cg || band == MEMORY_BAND_NONE || *applied == band + 1)
                return;
        r = memory_set_oom_score_adj(cg, memory_band_oom_score_adj(band));
        if (r < 0) {
                log_debug("%s: cannot set oom_score_adj %d: %s", name,
                          memory_band_oom_score_adj(band), strerror(-r));
                return;
        }
        *applied = band + 1;
}

void supervisor_memory_sync(Supervisor *s)
{
        for (size_t i = 0; i < s->n_apps; i++) {
                Instance *inst = s->apps[i];

                if (inst->group || inst->state != INSTANCE_RUNNING)
                        continue;
                apply(run_cgroup(inst), supervisor_memory_band(inst), &inst->oom_band_applied,
                      inst->manifest->id);
        }
        for (size_t i = 0; i < s->n_groups; i++) {
                Group *g = s->groups[i];

                if (g->state != INSTANCE_RUNNING || !g->run.sandbox)
                        continue;
                apply(g->run.sandbox->cgroup, group_band(g), &g->oom_band_applied, g->label);
        }
}
