/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The memory manager's decisions (issue 13, "Actions, in this order"; docs/memory.md
 * "The manager"): from the level of each sample and the running apps, which actions
 * to take now, in the order trim -> reclaim -> freeze -> kill. Pure: no clock, no
 * I/O, no allocation; the caller (cellad's loop, src/supervisor/memory-manager.c)
 * hands in the time (monotonic ns), the readings and the apps, carries out the
 * actions with the supervisor's functions and keeps each app's per-episode state
 * between samples. tests/unit/test-memory-policy.c drives it on a simulated clock.
 *
 * Two parts:
 *   - MemoryGauge: the level of one target (the apps' parent, or the machine) from
 *     its readings: the PSI stall over the samples of the last trigger window and
 *     the available share of its budget (level.h), with hysteresis;
 *   - MemoryPolicy: an episode of pressure, from the first sample above normal to
 *     the first back at normal, as stages:
 *       trim     every running app, once per level it has not been trimmed at;
 *       reclaim  background and cached apps (their soft limit), once per level;
 *       freeze   background apps, least recently used first, from
 *                MEMORY_POLICY_FREEZE_LEVEL (low) up;
 *       kill     one app at a time, the first in memory_order() (band.h) whose band
 *                is at or above the level's floor, at least kill_interval_ms apart;
 *     each stage entered only once the one before it has been done and step_ms has
 *     passed with the level still up, except at critical, where every stage runs in
 *     the same sample and kills are not paced (issue 13: "500 ms between kills
 *     unless the level is critical");
 *     the episode's end (normal again): every reclaimed app's soft limit restored.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memory/band.h"
#include "memory/level.h"
#include "memory/reading.h"

/* ---- the level of one target ---------------------------------------------------- */

/* Samples a gauge keeps: at the 10 ms short interval, the last 2.56 s (a degraded
 * trigger's 2 s window). */
#define MEMORY_GAUGE_SAMPLES 256

typedef struct MemoryGaugeSample {
        uint64_t t_ns;    /* when it was taken (monotonic) */
        uint64_t some_us; /* the PSI "some" total then, µs */
        uint64_t full_us; /* the PSI "full" total then, µs */
} MemoryGaugeSample;

typedef struct MemoryGauge {
        MemoryGaugeSample ring[MEMORY_GAUGE_SAMPLES];
        size_t head;           /* the next slot written */
        size_t count;          /* samples in ring */
        MemoryLevel level;     /* the level computed last (hysteresis's previous) */
        MemoryLevelInput last; /* the figures of that level, for records and tests */
} MemoryGauge;

/* An empty gauge at normal. */
void memory_gauge_init(MemoryGauge *g);

/*
 * Takes the sample r of the target at now_ns and returns its level: the stall since
 * the oldest sample kept that is at most window_ns old, when that span is at least
 * min_span_ns (shorter spans give no stall signal: 3 ms of stall in a 10 ms span
 * would read as 300 ms per second); the available share of budget (bytes; 0: the
 * target's own limit, MemTotal for the machine). r without PSI gives no stall
 * signal. memory_level_compute() with c and the gauge's last level (hysteresis).
 */
MemoryLevel memory_gauge_update(MemoryGauge *g, const MemoryLevelConfig *c, uint64_t now_ns,
                                const MemoryReading *r, uint64_t budget, uint64_t window_ns,
                                uint64_t min_span_ns);

/*
 * Forgets the samples (not the level): after a kill the stall measured before it
 * says nothing about the memory left, and would ask for a second kill at once.
 */
void memory_gauge_forget(MemoryGauge *g);

/* ---- the decisions -------------------------------------------------------------- */

/* The level from which background apps are frozen (Android freezes cached apps; an
 * app frozen at moderate would cost the user a thaw for a mere trim). */
#define MEMORY_POLICY_FREEZE_LEVEL MEMORY_LEVEL_LOW
/* A kill floor that kills nothing: bands are 0..999. */
#define MEMORY_POLICY_FLOOR_NONE 1000

typedef struct MemoryPolicyConfig {
        uint32_t step_ms;                       /* between stages, unless critical (default 100) */
        uint32_t kill_interval_ms;              /* between kills, unless critical (default 500) */
        uint32_t kill_floor[_MEMORY_LEVEL_MAX]; /* lowest band killed at each level, 0..1000
                                                   (1000: none); [NORMAL] unused */
} MemoryPolicyConfig;

/* Defaults (docs/config.md): step 100 ms; kills 500 ms apart (issue 13); floors
 * moderate 1000 (no kill: lmkd's ro.lmk.low 1001), low 800 (lmkd's ro.lmk.medium:
 * cached apps only), critical 100 (lmkd's ro.lmk.critical is 0; cella leaves the
 * foreground app to the kernel at its own limit: see docs/memory.md). */
void memory_policy_config_default(MemoryPolicyConfig *ret);

/* Checks the floors do not rise with the level (a higher level kills at least what a
 * lower one does) and are at most 1000. Returns 0, or -EINVAL and *ret_why (static). */
int memory_policy_config_check(const MemoryPolicyConfig *c, const char **ret_why);

/* One running app as the policy sees it. cand (band.h) is in a parallel array. */
typedef struct MemoryPolicyApp {
        bool own_cgroup; /* reclaim, freeze and kill apply (a packed member has none) */
        /* Per episode, kept by the caller between samples (zeroed: nothing done): */
        MemoryLevel trimmed;   /* the highest level it was trimmed at */
        MemoryLevel reclaimed; /* the level its soft limit was lowered for; NORMAL: none */
        bool no_freeze;        /* its freeze failed (a pure v1 host): not tried again */
        bool no_kill;          /* its kill failed: not tried again this episode */
} MemoryPolicyApp;

typedef enum MemoryPolicyDo {
        MEMORY_DO_TRIM,
        MEMORY_DO_RECLAIM,
        MEMORY_DO_FREEZE,
        MEMORY_DO_KILL,
        MEMORY_DO_RESTORE,
        _MEMORY_DO_MAX,
} MemoryPolicyDo;

typedef struct MemoryPolicyAction {
        MemoryPolicyDo what;
        size_t app;        /* index into the apps */
        MemoryLevel level; /* the level it is taken at */
} MemoryPolicyAction;

typedef enum MemoryPolicyStage {
        MEMORY_STAGE_IDLE, /* no episode */
        MEMORY_STAGE_TRIM,
        MEMORY_STAGE_RECLAIM,
        MEMORY_STAGE_FREEZE,
        MEMORY_STAGE_KILL,
} MemoryPolicyStage;

typedef struct MemoryPolicy {
        MemoryPolicyConfig config;
        MemoryPolicyStage stage;
        uint64_t stage_ns;        /* when the stage was entered */
        uint64_t last_kill_ns;    /* 0: none this episode */
        MemoryLevel level;        /* of the last decision */
        uint64_t episodes, kills; /* since init */
} MemoryPolicy;

/* Starts p idle with c (copied). */
void memory_policy_init(MemoryPolicy *p, const MemoryPolicyConfig *c);

/*
 * The actions for a sample at now_ns (monotonic ns) at level, over n running apps:
 * cand[i] (class, last use, memory; its band is set here, memory_assign_bands()) and
 * app[i] (updated here with what the actions will have done: the caller keeps them
 * for the next sample and sets app[i].no_freeze or .no_kill when that action on i
 * fails). order: room
 * for n indices (scratch). out: room for 3 * n + 1 actions (at most one trim,
 * reclaim and freeze per app and one kill; or n restores). Returns the number of
 * actions written, in the order to take them: trims, reclaims, freezes (least
 * recently used first), a kill; at normal after an episode, restores.
 */
size_t memory_policy_decide(MemoryPolicy *p, uint64_t now_ns, MemoryLevel level,
                            MemoryCandidate *cand, MemoryPolicyApp *app, size_t n, size_t *order,
                            MemoryPolicyAction *out);

/* "trim", "reclaim", "freeze", "kill", "restore"; "?" otherwise. */
const char *memory_policy_do_to_string(MemoryPolicyDo d);
