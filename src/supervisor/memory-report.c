/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The memory report (memory-report.h; docs/memory.md "Visibility"): figures read
 * on demand from the kernel's files (memory/reading.h), the level, the compressed
 * swap, the ring of recent memory.* records; and the swap caps by state.
 *
 * The report opens and reads the files when asked, unlike the manager's sampler
 * (which keeps its sources open so that a sample under pressure allocates
 * nothing): it runs at a person's request, at most a few times a second
 * (`cella top`), and costs one open per file (docs/memory.md, "Readings": 15 to
 * 54 us a leaf on this host).
 */
#include <errno.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "memory/reading.h"
#include "memory/swap.h"
#include "supervisor/memory-actions.h"
#include "supervisor/memory-manager.h"
#include "supervisor/memory-report.h"
#include "supervisor/supervisor-internal.h"

static json_t *bytes_json(uint64_t v)
{
        return v == MEMORY_UNKNOWN ? json_null() : json_integer((json_int_t)v);
}

/* One reading as JSON: bytes, null where the kernel does not offer a figure. */
static json_t *figures_json(const MemoryReading *r)
{
        json_t *psi = json_null(), *o;

        if (r->has_psi)
                psi = json_pack("{s:I, s:I, s:o, s:o}", "some_avg10", (json_int_t)r->some_avg10,
                                "full_avg10", (json_int_t)r->full_avg10, "some_total_us",
                                bytes_json(r->some_total_us), "full_total_us",
                                bytes_json(r->full_total_us));
        o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "used",
                      bytes_json(r->current), "anon", bytes_json(r->anon), "file",
                      bytes_json(r->file), "shmem", bytes_json(r->shmem), "kernel",
                      bytes_json(r->kernel), "peak", bytes_json(r->peak), "limit",
                      bytes_json(r->limit), "available", bytes_json(r->available), "swap",
                      bytes_json(r->swap), "oom_kills", bytes_json(r->oom_kills), "psi",
                      psi ?: json_null());
        return o;
}

/* Reads src once into *r and its JSON; src freed. {"error": "..."} if it fails. */
static json_t *read_source(MemorySource *src, int r_open, MemoryReading *r)
{
        int k = r_open;

        *r = (MemoryReading){.current = MEMORY_UNKNOWN};
        if (k >= 0)
                k = memory_source_read(src, r);
        memory_source_free(src);
        if (k < 0) {
                *r = (MemoryReading){.current = MEMORY_UNKNOWN};
                return json_pack("{s:s}", "error", strerror(-k));
        }
        return figures_json(r);
}

static Cgroup *report_cgroup(const Instance *inst)
{
        const Sandbox *sb = inst->group ? inst->group->run.sandbox : inst->run.sandbox;

        if (inst->state != INSTANCE_RUNNING &&
            !(inst->group && inst->group->state == INSTANCE_RUNNING))
                return NULL;
        return sb ? sb->cgroup : NULL;
}

void supervisor_memory_remember(Instance *inst, const char *what, const json_t *fields)
{
        Supervisor *s = inst->sup;
        json_t *rec = json_pack("{s:s, s:s, s:I}", "what", what, "app", inst->manifest->id,
                                "time_ms", (json_int_t)grants_now_ms());

        if (!rec)
                return;
        if (fields)
                (void)json_object_update_missing(rec, (json_t *)fields);
        json_decref(s->mem_recent[s->mem_recent_next]);
        s->mem_recent[s->mem_recent_next] = rec;
        s->mem_recent_next = (s->mem_recent_next + 1) % SUPERVISOR_MEMORY_RECENT_MAX;
        if (s->mem_recent_n < SUPERVISOR_MEMORY_RECENT_MAX)
                s->mem_recent_n++;
        s->mem_recorded++;
}

uint64_t supervisor_memory_recorded(const Supervisor *s)
{
        return s->mem_recorded;
}

/* The ring, oldest first; only app's records when app is not NULL. */
static json_t *recent_json(const Supervisor *s, const char *app)
{
        size_t first = (s->mem_recent_next + SUPERVISOR_MEMORY_RECENT_MAX - s->mem_recent_n) %
                       SUPERVISOR_MEMORY_RECENT_MAX;
        json_t *a = json_array();

        for (size_t i = 0; a && i < s->mem_recent_n; i++) {
                json_t *rec = s->mem_recent[(first + i) % SUPERVISOR_MEMORY_RECENT_MAX];
                const char *id = json_string_value(json_object_get(rec, "app"));

                if (rec && (!app || (id && strcmp(id, app) == 0)))
                        json_array_append(a, rec);
        }
        return a;
}

json_t *supervisor_memory_app_json(Instance *inst)
{
        Cgroup *cg = report_cgroup(inst);
        int band = supervisor_memory_band(inst), cls = supervisor_cpu_class(instance_state(inst));
        json_t *o, *fig = json_null(), *soft = json_null(), *swap = json_null();
        MemoryReading r;
        uint64_t v;

        if (cg) {
                MemorySource *src = NULL;
                int k = memory_source_open_app(cg, &src);

                fig = read_source(src, k, &r);
                if (fig && inst->group)
                        json_object_set_new(fig, "shared", json_true());
                if (cgroup_soft_limit(cg, &v) >= 0 && v != UINT64_MAX)
                        soft = json_integer((json_int_t)v);
                if (cgroup_swap_max(cg, &v) >= 0 && v != UINT64_MAX)
                        swap = json_integer((json_int_t)v);
        }
        o = json_pack("{s:o, s:o, s:o, s:o, s:b, s:o, s:o}", "band",
                      band == MEMORY_BAND_NONE ? json_null() : json_integer(band), "class",
                      cls < 0 ? json_null() : json_string(cpu_class_to_string((CpuClass)cls)),
                      "figures", fig ?: json_null(), "soft_limit_bytes", soft, "reclaimed",
                      inst->mem_reclaimed, "swap_max_bytes", swap, "recent",
                      recent_json(inst->sup, inst->manifest->id) ?: json_array());
        return o;
}

static json_t *swap_json(const Supervisor *s)
{
        SwapInfo i;
        const char *why;

        if (swap_detect("/proc", "/sys", &i) < 0)
                i = s->swap_info;
        why = s->swap_apply                          ? "written at each state change"
              : !s->swap.enabled                     ? "memory.swap.caps is false"
              : !swap_info_compressed(&s->swap_info) ? "no compressed swap (zram, zswap) at start"
                                                     : "not asked for";
        return json_pack("{s:s, s:b, s:I, s:I, s:i, s:i, s:i, s:s, s:b, s:s, s:b, s:s}", "kind",
                         swap_info_kind(&i), "compressed", swap_info_compressed(&i), "total_bytes",
                         (json_int_t)i.total, "free_bytes", (json_int_t)i.free, "areas",
                         (int)i.n_areas, "zram_swap_areas", (int)i.n_zram, "zram_devices",
                         (int)i.zram_devices, "zram_algorithm", i.zram_algorithm, "zswap", i.zswap,
                         "zswap_compressor", i.zswap_compressor, "caps", s->swap_apply, "caps_why",
                         why);
}

/* The level of the moment from one reading: PSI's 10 s averages as the stall per
 * second (avg10 is hundredths of a percent: 1 = 100 us per second), and the
 * available share of total. */
static MemoryLevel level_of(const MemoryLevelConfig *c, const MemoryReading *r, uint64_t total)
{
        MemoryLevelInput in = {
                .available = r->available,
                .total = r->available == MEMORY_UNKNOWN ? 0 : total,
        };

        if (r->has_psi) {
                in.window_us = 1000000;
                in.some_stall_us = (uint64_t)r->some_avg10 * 100;
                in.full_stall_us = (uint64_t)r->full_avg10 * 100;
        }
        return memory_level_compute(c, &in, MEMORY_LEVEL_NORMAL);
}

json_t *supervisor_memory_report(Supervisor *s, const MemoryLevelConfig *levels, const char *app,
                                 int *ret_errno)
{
        MemoryReading apps_r, mach_r;
        MemorySource *src = NULL;
        json_t *o, *apps, *apps_fig, *mach_fig, *manager, *degraded = json_null();
        MemoryLevelConfig defaults;
        MemoryLevel level = MEMORY_LEVEL_NORMAL;
        const char *source = "figures";
        int k;

        *ret_errno = 0;
        if (app && !supervisor_find(s, app)) {
                *ret_errno = -ESRCH;
                return NULL;
        }
        if (!levels) {
                memory_level_config_default(&defaults);
                levels = &defaults;
        }
        k = s->cgm ? memory_source_open_apps(s->cgm, false, &src) : -ENOENT;
        apps_fig = read_source(src, k, &apps_r);
        src = NULL;
        k = memory_source_open_machine("/proc", &src);
        mach_fig = read_source(src, k, &mach_r);
        /* The manager's level and triggers when its loop runs (memory-manager.h). */
        manager = supervisor_memory_manager_json(s);
        if (json_is_true(json_object_get(manager, "running")) &&
            memory_level_from_string(json_string_value(json_object_get(manager, "level")) ?: "",
                                     &level) >= 0) {
                source = "manager";
                degraded = json_boolean(json_is_true(json_object_get(manager, "degraded")));
        } else {
                /* The budget's figures where it has a limit, else the machine's. */
                uint64_t total = s->o.memory_budget ?: apps_r.limit;
                bool budget = apps_r.current != MEMORY_UNKNOWN && total != MEMORY_UNKNOWN;

                level = budget ? level_of(levels, &apps_r, total)
                               : level_of(levels, &mach_r, mach_r.limit);
        }
        apps = json_array();
        for (size_t i = 0; apps && i < s->n_apps; i++) {
                Instance *inst = s->apps[i];
                json_t *m;

                if (app ? strcmp(inst->manifest->id, app) != 0
                        : !instance_state_is_running(instance_state(inst)))
                        continue;
                m = supervisor_memory_app_json(inst);
                json_array_append_new(
                        apps, json_pack("{s:s, s:s, s:o}", "id", inst->manifest->id, "state",
                                        instance_state_to_string(instance_state(inst)), "memory",
                                        m ?: json_null()));
        }
        o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "level",
                      memory_level_to_string(level), "level_source", source, "degraded",
                      degraded ?: json_null(), "manager", manager ?: json_null(), "budget_bytes",
                      s->o.memory_budget ? json_integer((json_int_t)s->o.memory_budget)
                                         : json_null(),
                      "apps_figures", apps_fig ?: json_null(), "machine", mach_fig ?: json_null(),
                      "swap", swap_json(s) ?: json_null(), "apps", apps ?: json_array(), "recent",
                      recent_json(s, app) ?: json_array());
        if (!o)
                *ret_errno = -ENOMEM;
        return o;
}

void supervisor_swap_note(Instance *inst, InstanceState to)
{
        Supervisor *s = inst->sup;
        int c = supervisor_cpu_class(to);
        CgroupStats st = {.memory_max = UINT64_MAX};
        Cgroup *cg;
        uint64_t bytes;
        int r;

        /* A packed member shares its host's leaf: the host keeps its sandbox's
         * setting (no swap under its limit). */
        if (!s->swap_apply || inst->group || c < 0 || inst->state != INSTANCE_RUNNING ||
            !inst->run.sandbox || !(cg = inst->run.sandbox->cgroup))
                return;
        (void)cgroup_stats(cg, &st);
        bytes = swap_cap_bytes(&s->swap, (CpuClass)c, st.memory_max, s->o.memory_budget);
        r = swap_cap_apply(cg, bytes);
        if (r < 0 && !inst->mem_swap_warned) {
                inst->mem_swap_warned = true;
                log_warning_errno(r, "%s: cannot set its swap cap (%s): %m", inst->manifest->id,
                                  r == -ERANGE ? "no memory limit to add it to on cgroup v1"
                                               : "no swap accounting in its cgroup");
        }
}
