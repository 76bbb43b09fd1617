/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * cellad's memory manager loop (issue 13, "Signals" and "Actions"; docs/memory.md
 * "The manager"): PSI triggers on the apps' parent cgroup (where memory.total
 * applies) and on the machine (/proc/pressure/memory), each an uv_poll on the
 * supervisor's loop; when one fires, the sampler's cadence (sampler.h) on one
 * uv_timer, armed only while sampling (idle: no timer, no wake-up); at each sample
 * the level (policy.h MemoryGauge) and the actions (MemoryPolicy), carried out with
 * memory-actions.h's functions, each recorded with the level and the pressure
 * figures ("by": "manager").
 *
 * No trigger per app: an app stalling against its own manifest limit is short of
 * its own memory, which no action on another app gives back; the apps' parent sees
 * every app's stall against the shared budget.
 */

#include <jansson.h>
#include <stdbool.h>

#include "memory/config.h"
#include "supervisor/supervisor.h"

/*
 * Arms the triggers (pressure_trigger_new_best(): PSI at the config's window, the
 * fallback window when refused, v1 memory.pressure_level where PSI is missing) on
 * s's loop with c's thresholds and intervals (copied). A target that cannot be
 * watched is said in the log and left out; with neither, the manager does not run.
 * Returns 0, -ENOENT (no target could be watched: nothing armed), -EINVAL (c has no
 * stall threshold to arm a trigger with), -ENOMEM, or a libuv error.
 */
int supervisor_memory_manager_start(Supervisor *s, const ManagerConfig *c);

/* Disarms: closes the manager's handles (supervisor_free() calls it before its last
 * loop run). */
void supervisor_memory_manager_stop(Supervisor *s);

/* Frees the manager once its handles are closed (supervisor_free(), after the loop). */
void supervisor_memory_manager_free(Supervisor *s);

/* True when a trigger runs on the fallback window (cellad's STATUS=, cella inspect). */
bool supervisor_memory_manager_degraded(const Supervisor *s);

/*
 * The manager's figures for `cella inspect` and `cella memory`: {"running", "level",
 * "degraded", "triggers": [...], "sampling", "episodes", "kills", "wakeups":
 * {"trigger", "timer"}, "samples"}; {"running": false} without a manager.
 */
json_t *supervisor_memory_manager_json(const Supervisor *s);
