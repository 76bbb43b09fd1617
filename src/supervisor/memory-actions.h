/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The memory manager's actions on an app, as the supervisor does them (issue 13,
 * "Actions, in this order"; docs/memory.md, "Actions"): each is one call a manager
 * (memory-manager.h, cellad's loop) makes, in this order, on the apps memory_order()
 * (memory/band.h) picks, and that `cella memory ACTION APP` (org.cella.MemoryAction,
 * docs/api.md) makes by hand. Each records what it did twice: a status record
 * {"event": NAME, "app", ...} (`cella events`, the status taps) and a lifecycle
 * audit record {"what": NAME, ...}, NAME one of "memory.trim", "memory.reclaim",
 * "memory.restore", "memory.freeze", "memory.thaw", "memory.kill".
 *
 * Each returns 0, or a negative errno with *err (never NULL) filled, naming the app
 * and why: -EBUSY with err->wrong_state (a state the action does not apply to),
 * -EOPNOTSUPP (a packed member for reclaim, freeze and kill: its host runs other
 * apps; a sandbox with no cgroup; freeze on a pure cgroup v1 host: cella never
 * uses the v1 freezer), -EINVAL (a level outside moderate..critical), or the
 * -errno of the cgroup file or the channel that failed.
 */

#include <jansson.h>

#include "memory/action.h"
#include "memory/band.h"
#include "supervisor/lifecycle.h"

/*
 * Trim: event.memory_pressure (EVENT_TRIM_MEMORY) with level to the app, on its own
 * channel (a packed member: its own too; its host runs a full GC of that member's
 * Lua state and its cella.app.on_trim handler). Any running state. Record fields:
 * "level", "current_bytes", "limit_bytes" (of its cgroup; a packed member: its
 * group's).
 */
int supervisor_memory_trim(Instance *inst, MemoryLevel level, LifecycleError *err);

/*
 * Reclaim: lowers the soft limit of a background or cached app to
 * memory_reclaim_keep_percent(level) of its use (memory_reclaim()), keeping the
 * limit it had for supervisor_memory_restore(). Record fields: "level",
 * "soft_limit_bytes", "previous_bytes" (null: none), "usage_bytes".
 */
int supervisor_memory_reclaim(Instance *inst, MemoryLevel level, LifecycleError *err);

/* Restore: puts back the soft limit the last reclaim found (pressure ended); an app
 * not reclaimed is a no-op without a record. Record field: "soft_limit_bytes". */
int supervisor_memory_restore(Instance *inst, LifecycleError *err);

/*
 * Freeze: background -> cached (lifecycle_cache()), through cgroup.freeze only.
 * Record field: "duration_us".
 */
int supervisor_memory_freeze(Instance *inst, LifecycleError *err);

/*
 * Thaw: cached -> the role it had. The kernel also thaws a cached app itself when
 * it is started, brought to the foreground or sent an intent (app.launch), each
 * recorded as "memory.thaw" with "reason": "start", "foreground", "intent"
 * ("manual" for this call). Record fields: "reason", "duration_us".
 */
int supervisor_memory_thaw(Instance *inst, LifecycleError *err);

/*
 * Kill: every process of the app, by cgroup.kill (cgroup_kill_wait()), waiting
 * until its cgroup is empty; its exit is then a low-memory kill (SandboxExit.
 * low_memory: restart reason "low-memory", restarted only by "always"). Any running
 * state but stopping. Record fields: "level", "band", "freed_bytes", "usage_bytes",
 * "duration_us", and the pressure figures: "pressure_some_avg10" (the app's cgroup's
 * memory.pressure) and "host_pressure_some_avg10" (/proc/pressure/memory), each in
 * hundredths of a percent, or null where PSI is missing.
 */
int supervisor_memory_kill(Instance *inst, MemoryLevel level, LifecycleError *err);

/*
 * The app's band now (memory/band.h): its state's class, ranked among the running
 * apps of that class by last use (InstanceLife.last_used_ns); MEMORY_BAND_NONE when
 * it does not run. A packed group's host: the lowest band of its running members.
 */
int supervisor_memory_band(const Instance *inst);

/* The oom_score_adj a sandbox about to start for inst gets (SandboxSpec.oom_score_adj):
 * the band of the role it starts in (for a group's host: of its most important
 * member). */
int supervisor_memory_start_adj(const Instance *inst);

/*
 * Mirrors every running app's band into the oom_score_adj of each process in its
 * cgroup, for the apps whose band changed since the last call (and a packed host's
 * for its group). Called by lifecycle_note() on every state change. Errors are
 * logged, not returned: an app that exits meanwhile is no error.
 */
void supervisor_memory_sync(Supervisor *s);

/* Writes the two records of an action (status and audit), fields stolen. For
 * lifecycle.c's thaws of a cached app. */
void supervisor_memory_record(Instance *inst, const char *what, json_t *fields);
