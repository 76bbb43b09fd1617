/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the memory manager sees and did, for people (issue 13, "Configuration and
 * visibility"; docs/memory.md "Visibility"): the figures of the machine, of the
 * apps' budget and of each app (memory/reading.h), the level, the compressed swap,
 * and the recent memory.* action records. `cella memory`, `cella top` and the
 * memory section of `cella inspect` show them, through org.cella.Memory and
 * org.cella.Inspect (docs/api.md). Also the per-class swap caps where memory is
 * compressed (memory/swap.h), written at each state change.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "memory/level.h"
#include "supervisor/lifecycle.h"

/* Recent memory.* records kept for `cella memory` (the audit log keeps them all). */
#define SUPERVISOR_MEMORY_RECENT_MAX 64

/*
 * Keeps the record {"what": what, "app": id, "time_ms", fields...} (fields
 * borrowed: copied; the manager's context, level and pressure, included) in the ring of the last
 * SUPERVISOR_MEMORY_RECENT_MAX memory.* actions (supervisor_memory_record() calls it for every
 * action).
 */
void supervisor_memory_remember(Instance *inst, const char *what, const json_t *fields);

/* How many memory.* records supervisor_memory_remember() has kept since the start
 * (a new one changes the report: org.cella.Memory's reuse of a report checks it). */
uint64_t supervisor_memory_recorded(const Supervisor *s);

/*
 * The memory section of one app (`cella inspect`'s "memory"): {"band", "class",
 * "figures" (memory_figures_json() of its cgroup; a packed member's are its group's,
 * with "shared": true), "soft_limit_bytes" (null: none), "reclaimed",
 * "swap_max_bytes" (null: none or unknown), "recent" (its records in the ring,
 * oldest first)}. Reads its cgroup's files now. NULL on -ENOMEM.
 */
json_t *supervisor_memory_app_json(Instance *inst);

/*
 * The whole report of org.cella.Memory: {"level", "level_source" ("manager" or
 * "figures"), "degraded" (null without the manager), "manager"
 * (supervisor_memory_manager_json(): its triggers, counts, wake-ups), "budget_bytes" (null: none),
 * "apps_figures" (the apps' parent), "machine" (its figures), "swap" (detection,
 * caps), "apps": [{"id", "state", "memory": supervisor_memory_app_json()}, ...]
 * (running apps only, or only app when not NULL), "recent": [records, oldest
 * first]}. levels: the thresholds for the level of the moment (NULL: the
 * defaults), used when the manager's loop does not run (cellad
 * --no-memory-manager, or no trigger could be armed):
 * the apps' parent's figures where it has a limit (memory.total), else the
 * machine's, PSI's 10 s averages as the stall. Returns the object, or NULL with
 * *ret_errno (-ENOMEM, -ESRCH: app not known).
 */
json_t *supervisor_memory_report(Supervisor *s, const MemoryLevelConfig *levels, const char *app,
                                 int *ret_errno);

/*
 * Writes inst's swap cap for state to (memory/swap.h) where memory is compressed
 * and SupervisorOptions.swap_caps asked for caps; otherwise nothing. Called by
 * lifecycle_note() at every state change. Errors are logged once per app.
 */
void supervisor_swap_note(Instance *inst, InstanceState to);
