/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The memory manager's actions on one app's cgroup (issue 13, "Actions, in this
 * order"; docs/memory.md, "Actions"): reclaim (lower the soft limit, and restore it),
 * freeze and thaw (cgroup.freeze), kill (cgroup.kill, then wait for the cgroup to
 * empty), and the oom_score_adj that mirrors an app's band (band.h) into every one of
 * its processes. Each is a plain call on a Cgroup handle (sandbox/cgroup.h) that a
 * manager makes in that order; each returns what the caller needs for its event and
 * audit records ("memory.reclaim", "memory.freeze", "memory.thaw", "memory.kill").
 * Trim is a broker event, not a cgroup action: the supervisor sends it.
 *
 * Nothing here records or decides: the caller (the manager, or `cella memory` by
 * hand) picks the apps (band.h memory_order()) and writes the records.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "memory/level.h" /* MemoryLevel, the shared contract's levels */
#include "sandbox/cgroup.h"

/*
 * The level's word in the action records and `cella memory`: "normal", "moderate",
 * "low", "critical" (Android's onTrimMemory levels, ComponentCallbacks2
 * TRIM_MEMORY_RUNNING_MODERATE / _LOW / _CRITICAL); NULL out of range.
 */
const char *memory_action_level_name(MemoryLevel level);

/* The level named word (one of the above). Returns 0 and *ret, or -EINVAL. */
int memory_action_level_parse(const char *word, MemoryLevel *ret);

/*
 * The share of its memory use memory_reclaim() lets an app keep at level: 90%
 * moderate, 75% low, 50% critical (and 100, no reclaim, at normal). cella's own
 * choice, to be tuned by the manager's config (docs/memory.md, "Actions").
 */
unsigned memory_reclaim_keep_percent(MemoryLevel level);

/* How long a freeze or thaw waits for cgroup.events to confirm it, ms (a task in
 * uninterruptible sleep never freezes; the freeze is then undone). */
#define MEMORY_FREEZE_TIMEOUT_MS 1000
/* How long a kill waits for "populated 0" before the SIGKILL rounds of cgroup_kill(), ms. */
#define MEMORY_KILL_TIMEOUT_MS 1000
/* The lowest soft limit memory_reclaim() sets, bytes: below a few MiB an app only thrashes. */
#define MEMORY_RECLAIM_FLOOR (4u * 1024u * 1024u)

/* What memory_reclaim() did: enough to undo it and to record it. */
typedef struct MemoryReclaim {
        uint64_t previous;   /* the soft limit before, bytes (UINT64_MAX: none) */
        uint64_t soft_limit; /* the soft limit set, bytes */
        uint64_t usage;      /* the cgroup's memory use when it was set, bytes */
} MemoryReclaim;

/*
 * Lowers the app's soft limit to keep_percent (1..100) of its memory use now
 * (memory.current / memory.usage_in_bytes), at least MEMORY_RECLAIM_FLOOR, and
 * never above the soft limit it has: Linux then reclaims from it first (v2
 * memory.high throttles and reclaims the cgroup at once; v1's soft limit is used
 * under global pressure). *ret: the limit before and after, for the record and for
 * memory_reclaim_restore(). Returns 0, -EINVAL (keep_percent outside 1..100, NULL),
 * -EOPNOTSUPP (no memory controller in the leaf), -errno of the cgroup files.
 */
int memory_reclaim(Cgroup *cg, unsigned keep_percent, MemoryReclaim *ret);

/* Puts back the soft limit memory_reclaim() found (saved->previous). Returns 0,
 * -EINVAL, -EOPNOTSUPP, -errno. */
int memory_reclaim_restore(Cgroup *cg, const MemoryReclaim *saved);

/*
 * Freezes (frozen) or thaws the app through cgroup.freeze (cgroup_freeze_unified():
 * never the v1 freezer) and waits for the kernel to confirm it, at most
 * MEMORY_FREEZE_TIMEOUT_MS. *ret_usec (may be NULL): how long it took, µs of
 * CLOCK_MONOTONIC. Returns 0, -ETIMEDOUT (a freeze undone), -EOPNOTSUPP (a pure v1
 * host, or a kernel before 5.2: the manager skips this step), -errno.
 */
int memory_freeze(Cgroup *cg, bool frozen, uint64_t *ret_usec);

/* What memory_kill() did. */
typedef struct MemoryKill {
        uint64_t usage_before; /* the cgroup's memory use before the kill, bytes */
        uint64_t freed;        /* usage_before less its use once empty, bytes */
        uint64_t usec;         /* from the kill to the cgroup empty, µs (CLOCK_MONOTONIC) */
} MemoryKill;

/*
 * Kills every process of the app and waits until its cgroup is empty
 * (cgroup_kill_wait(), at most MEMORY_KILL_TIMEOUT_MS before the SIGKILL rounds).
 * *ret (may be NULL) gets the memory freed and the time taken. The app's own pid 1
 * is a child of its kernel: it is left a zombie for the kernel to reap, which the
 * cgroup no longer counts. Returns 0, -EBUSY (tasks remain), -errno.
 */
int memory_kill(Cgroup *cg, MemoryKill *ret);

/*
 * Writes adj (-1000..1000) to /proc/<pid>/oom_score_adj of every process in the
 * app's cgroup (the cgroup2 leaf's cgroup.procs, else the v1 memory or pids leaf's).
 * A process that exits meanwhile is skipped, and so is a listed pid whose process is
 * no longer in the cgroup (its pid reused by another, maybe a host process): each
 * write goes through a /proc/<pid> directory fd whose /proc/<pid>/cgroup names the
 * leaf. Returns the number written (>= 0),
 * -EINVAL (adj out of range), -ENOENT (no leaf to list), -errno of the first write
 * that failed otherwise.
 */
int memory_set_oom_score_adj(Cgroup *cg, int adj);

/*
 * Writes adj (-1000..1000) to /proc/<pid>/oom_score_adj (pid 0: the caller's own).
 * proc(5): a process may raise its own; lowering below its oom_score_adj_min needs
 * CAP_SYS_RESOURCE. Children forked later inherit the value. Returns 0, -EINVAL,
 * -errno of the open or write.
 */
int memory_set_pid_oom_score_adj(pid_t pid, int adj);

/* Reads /proc/<pid>/oom_score_adj (pid 0: the caller's own). Returns 0 and *ret, -errno. */
int memory_pid_oom_score_adj(pid_t pid, int *ret);
