/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The memory manager's decisions (policy.h). */
#include <errno.h>
#include <string.h>

#include "memory/policy.h"

#define NS_PER_MS UINT64_C(1000000)

/* ---- the level of one target ---------------------------------------------------- */

void memory_gauge_init(MemoryGauge *g)
{
        *g = (MemoryGauge){.level = MEMORY_LEVEL_NORMAL};
}

void memory_gauge_forget(MemoryGauge *g)
{
        g->head = g->count = 0;
}

MemoryLevel memory_gauge_update(MemoryGauge *g, const MemoryLevelConfig *c, uint64_t now_ns,
                                const MemoryReading *r, uint64_t budget, uint64_t window_ns,
                                uint64_t min_span_ns)
{
        MemoryReading base = {.has_psi = false};
        const MemoryGaugeSample *old = NULL;
        MemoryLevelInput in;
        uint64_t dt_us = 0;

        /* The oldest sample still inside the window. */
        for (size_t i = 0; i < g->count; i++) {
                const MemoryGaugeSample *s =
                        &g->ring[(g->head + MEMORY_GAUGE_SAMPLES - g->count + i) %
                                 MEMORY_GAUGE_SAMPLES];

                if (s->t_ns <= now_ns && now_ns - s->t_ns <= window_ns) {
                        old = s;
                        break;
                }
        }
        if (old && r->has_psi && now_ns - old->t_ns >= min_span_ns && now_ns > old->t_ns) {
                base.has_psi = true;
                base.some_total_us = old->some_us;
                base.full_total_us = old->full_us;
                dt_us = (now_ns - old->t_ns) / 1000;
        }
        memory_level_input_from(&base, r, dt_us, budget, &in);
        g->level = memory_level_compute(c, &in, g->level);
        g->last = in;
        if (r->has_psi) {
                g->ring[g->head] = (MemoryGaugeSample){
                        .t_ns = now_ns, .some_us = r->some_total_us, .full_us = r->full_total_us};
                g->head = (g->head + 1) % MEMORY_GAUGE_SAMPLES;
                if (g->count < MEMORY_GAUGE_SAMPLES)
                        g->count++;
        }
        return g->level;
}

/* ---- the decisions -------------------------------------------------------------- */

void memory_policy_config_default(MemoryPolicyConfig *ret)
{
        *ret = (MemoryPolicyConfig){
                .step_ms = 100,
                .kill_interval_ms = 500,
                .kill_floor = {[MEMORY_LEVEL_NORMAL] = MEMORY_POLICY_FLOOR_NONE,
                               [MEMORY_LEVEL_MODERATE] = MEMORY_POLICY_FLOOR_NONE,
                               [MEMORY_LEVEL_LOW] = 800,
                               [MEMORY_LEVEL_CRITICAL] = 100},
        };
}

int memory_policy_config_check(const MemoryPolicyConfig *c, const char **ret_why)
{
        const char *why = NULL;

        for (int l = MEMORY_LEVEL_MODERATE; l < _MEMORY_LEVEL_MAX && !why; l++) {
                if (c->kill_floor[l] > MEMORY_POLICY_FLOOR_NONE)
                        why = "a kill floor is above 1000 (1000: no kill at that level)";
                else if (l > MEMORY_LEVEL_MODERATE && c->kill_floor[l] > c->kill_floor[l - 1])
                        why = "a level's kill floor is above the one of the level below it (a "
                              "higher level must kill at least what a lower one does)";
        }
        if (why) {
                if (ret_why)
                        *ret_why = why;
                return -EINVAL;
        }
        return 0;
}

void memory_policy_init(MemoryPolicy *p, const MemoryPolicyConfig *c)
{
        *p = (MemoryPolicy){.config = *c, .stage = MEMORY_STAGE_IDLE};
}

static bool reclaimable(const MemoryCandidate *c, const MemoryPolicyApp *a)
{
        return a->own_cgroup &&
               (c->cls == MEMORY_CLASS_BACKGROUND || c->cls == MEMORY_CLASS_CACHED);
}

size_t memory_policy_decide(MemoryPolicy *p, uint64_t now_ns, MemoryLevel level,
                            MemoryCandidate *cand, MemoryPolicyApp *app, size_t n, size_t *order,
                            MemoryPolicyAction *out)
{
        bool critical = level >= MEMORY_LEVEL_CRITICAL;
        uint64_t step_ns = (uint64_t)p->config.step_ms * NS_PER_MS;
        bool ready;
        size_t k = 0, m;

        if (level <= MEMORY_LEVEL_NORMAL || level >= _MEMORY_LEVEL_MAX) {
                /* Pressure ended: the soft limits back, the episode forgotten. */
                for (size_t i = 0; i < n; i++) {
                        if (p->stage != MEMORY_STAGE_IDLE && app[i].reclaimed > MEMORY_LEVEL_NORMAL)
                                out[k++] = (MemoryPolicyAction){
                                        .what = MEMORY_DO_RESTORE, .app = i, .level = level};
                        app[i] = (MemoryPolicyApp){.own_cgroup = app[i].own_cgroup,
                                                   .no_freeze = app[i].no_freeze};
                }
                p->stage = MEMORY_STAGE_IDLE;
                p->last_kill_ns = 0;
                p->level = MEMORY_LEVEL_NORMAL;
                return k;
        }
        p->level = level;
        if (p->stage == MEMORY_STAGE_IDLE)
                p->episodes++;

        /* Trim: every running app, at each level it has not been trimmed at yet. */
        for (size_t i = 0; i < n; i++)
                if (cand[i].cls != MEMORY_CLASS_NONE && app[i].trimmed < level) {
                        out[k++] = (MemoryPolicyAction){
                                .what = MEMORY_DO_TRIM, .app = i, .level = level};
                        app[i].trimmed = level;
                }
        if (p->stage == MEMORY_STAGE_IDLE) {
                p->stage = MEMORY_STAGE_TRIM;
                p->stage_ns = now_ns;
        }

        /* Reclaim: background and cached apps, once the trim had its time. */
        ready = critical || now_ns - p->stage_ns >= step_ns;
        if (p->stage >= MEMORY_STAGE_RECLAIM || (p->stage == MEMORY_STAGE_TRIM && ready)) {
                for (size_t i = 0; i < n; i++)
                        if (reclaimable(&cand[i], &app[i]) && app[i].reclaimed < level) {
                                out[k++] = (MemoryPolicyAction){
                                        .what = MEMORY_DO_RECLAIM, .app = i, .level = level};
                                app[i].reclaimed = level;
                        }
                if (p->stage == MEMORY_STAGE_TRIM) {
                        p->stage = MEMORY_STAGE_RECLAIM;
                        p->stage_ns = now_ns;
                }
        }

        /* Freeze: background apps, least recently used first (memory_order() puts the
         * band 700 apps in that order), from MEMORY_POLICY_FREEZE_LEVEL. */
        memory_assign_bands(cand, n);
        ready = critical || now_ns - p->stage_ns >= step_ns;
        if (level >= MEMORY_POLICY_FREEZE_LEVEL &&
            (p->stage >= MEMORY_STAGE_FREEZE || (p->stage == MEMORY_STAGE_RECLAIM && ready))) {
                bool any = false;

                m = memory_order(cand, n, order);
                for (size_t j = 0; j < m; j++) {
                        size_t i = order[j];

                        if (cand[i].cls != MEMORY_CLASS_BACKGROUND || !app[i].own_cgroup ||
                            app[i].no_freeze)
                                continue;
                        out[k++] = (MemoryPolicyAction){
                                .what = MEMORY_DO_FREEZE, .app = i, .level = level};
                        /* Cached from now on: so the kill below ranks it so. */
                        cand[i].cls = MEMORY_CLASS_CACHED;
                        any = true;
                }
                if (any)
                        memory_assign_bands(cand, n);
                if (p->stage == MEMORY_STAGE_RECLAIM) {
                        p->stage = MEMORY_STAGE_FREEZE;
                        p->stage_ns = now_ns;
                }
        }

        /* Kill: one app, the least important at or above the level's floor, after the
         * freeze had its time (or with no freeze at this level), kills paced. */
        ready = critical || now_ns - p->stage_ns >= step_ns;
        if (p->config.kill_floor[level] < MEMORY_POLICY_FLOOR_NONE &&
            (p->stage == MEMORY_STAGE_KILL || (ready && (p->stage == MEMORY_STAGE_FREEZE ||
                                                         (p->stage == MEMORY_STAGE_RECLAIM &&
                                                          level < MEMORY_POLICY_FREEZE_LEVEL)))) &&
            (critical || p->last_kill_ns == 0 ||
             now_ns - p->last_kill_ns >= (uint64_t)p->config.kill_interval_ms * NS_PER_MS)) {
                m = memory_order(cand, n, order);
                for (size_t j = 0; j < m; j++) {
                        size_t i = order[j];

                        if (cand[i].band < 0 ||
                            (uint32_t)cand[i].band < p->config.kill_floor[level])
                                break; /* the order is by band, highest first */
                        if (!app[i].own_cgroup || app[i].no_kill)
                                continue;
                        out[k++] = (MemoryPolicyAction){
                                .what = MEMORY_DO_KILL, .app = i, .level = level};
                        p->last_kill_ns = now_ns ?: 1;
                        p->kills++;
                        p->stage = MEMORY_STAGE_KILL;
                        p->stage_ns = now_ns;
                        break;
                }
        }
        return k;
}

const char *memory_policy_do_to_string(MemoryPolicyDo d)
{
        static const char *const names[_MEMORY_DO_MAX] = {
                [MEMORY_DO_TRIM] = "trim",       [MEMORY_DO_RECLAIM] = "reclaim",
                [MEMORY_DO_FREEZE] = "freeze",   [MEMORY_DO_KILL] = "kill",
                [MEMORY_DO_RESTORE] = "restore",
        };

        return (unsigned)d < _MEMORY_DO_MAX ? names[d] : "?";
}
