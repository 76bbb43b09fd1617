/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the memory manager does to an app's cgroup (issue 13, "Actions"; cgroup.h,
 * "Memory actions"): its soft limit (v2 memory.high, v1 memory.soft_limit_in_bytes),
 * a freeze through the unified hierarchy's cgroup.freeze only, and a kill that waits
 * for the kernel's "populated 0" in cgroup.events rather than reading cgroup.procs.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/macro.h"
#include "base/time-util.h"
#include "sandbox/cgroup-internal.h"

/* v1 reads "no limit" as PAGE_COUNTER_MAX pages in bytes (cgroup-v1.c): from 2^62 up. */
#define SOFT_LIMIT_V1_UNLIMITED_MIN (UINT64_C(1) << 62)

/* The sleep between two reads of cgroup.events, µs (wait_events_key()). */
#define EVENTS_RECHECK_US 100

/* Where the soft limit lives: the v1 memory leaf (v1, hybrid) or the v2 leaf (v2). */
static const char *soft_limit_dir(const Cgroup *cg, bool *ret_v2)
{
        *ret_v2 = cg->manager->mode == CGROUP_MODE_V2;
        return cgroup_leaf(cg, *ret_v2 ? CGROUP_SLOT_UNIFIED : CGROUP_SLOT_MEMORY);
}

int cgroup_set_soft_limit(Cgroup *cg, uint64_t bytes)
{
        const char *dir;
        bool v2;
        int r;

        if (!cg || bytes == 0)
                return -EINVAL;
        dir = soft_limit_dir(cg, &v2);
        if (!dir)
                return -EOPNOTSUPP;
        if (bytes == UINT64_MAX)
                r = cgroup_write_knob(dir, v2 ? "memory.high" : "memory.soft_limit_in_bytes",
                                      v2 ? "max" : "-1");
        else
                r = cgroup_write_knob_u64(dir, v2 ? "memory.high" : "memory.soft_limit_in_bytes",
                                          bytes);
        /* No such knob: the memory controller is not enabled in that leaf. */
        return r == -ENOENT ? -EOPNOTSUPP : r;
}

int cgroup_soft_limit(Cgroup *cg, uint64_t *ret)
{
        const char *dir;
        uint64_t v;
        bool v2;
        int r;

        if (!cg || !ret)
                return -EINVAL;
        dir = soft_limit_dir(cg, &v2);
        if (!dir)
                return -EOPNOTSUPP;
        r = cgroup_read_knob_u64(dir, v2 ? "memory.high" : "memory.soft_limit_in_bytes", &v);
        if (r == -ENOENT)
                return -EOPNOTSUPP;
        if (r < 0)
                return r;
        *ret = !v2 && v >= SOFT_LIMIT_V1_UNLIMITED_MIN ? UINT64_MAX : v;
        return 0;
}

/* v1: a limit from 2^62 up is the kernel's "none" (SOFT_LIMIT_V1_UNLIMITED_MIN). */
static int v1_limit(const char *dir, const char *knob, uint64_t *ret)
{
        uint64_t v;
        int r = cgroup_read_knob_u64(dir, knob, &v);

        if (r == -ENOENT)
                return -EOPNOTSUPP;
        if (r < 0)
                return r;
        *ret = v >= SOFT_LIMIT_V1_UNLIMITED_MIN ? UINT64_MAX : v;
        return 0;
}

int cgroup_set_swap_max(Cgroup *cg, uint64_t bytes)
{
        const char *dir;
        uint64_t limit;
        bool v2;
        int r;

        if (!cg)
                return -EINVAL;
        dir = soft_limit_dir(cg, &v2);
        if (!dir)
                return -EOPNOTSUPP;
        if (v2) {
                r = bytes == UINT64_MAX ? cgroup_write_knob(dir, "memory.swap.max", "max")
                                        : cgroup_write_knob_u64(dir, "memory.swap.max", bytes);
                return r == -ENOENT ? -EOPNOTSUPP : r;
        }
        /* memsw must stay >= the memory limit (the kernel refuses less with EINVAL). */
        r = v1_limit(dir, "memory.limit_in_bytes", &limit);
        if (r < 0)
                return r;
        if (bytes == UINT64_MAX)
                r = cgroup_write_knob(dir, "memory.memsw.limit_in_bytes", "-1");
        else if (limit == UINT64_MAX)
                return -ERANGE;
        else
                r = cgroup_write_knob_u64(dir, "memory.memsw.limit_in_bytes",
                                          limit + (bytes < SOFT_LIMIT_V1_UNLIMITED_MIN
                                                           ? bytes
                                                           : SOFT_LIMIT_V1_UNLIMITED_MIN));
        return r == -ENOENT ? -EOPNOTSUPP : r;
}

int cgroup_swap_max(Cgroup *cg, uint64_t *ret)
{
        const char *dir;
        uint64_t limit, memsw, v;
        bool v2;
        int r;

        if (!cg || !ret)
                return -EINVAL;
        dir = soft_limit_dir(cg, &v2);
        if (!dir)
                return -EOPNOTSUPP;
        if (v2) {
                _cleanup_free_ char *text = NULL;

                r = cgroup_read_knob(dir, "memory.swap.max", &text);
                if (r == -ENOENT)
                        return -EOPNOTSUPP;
                if (r < 0)
                        return r;
                if (strncmp(text, "max", 3) == 0) {
                        *ret = UINT64_MAX;
                        return 0;
                }
                r = cgroup_read_knob_u64(dir, "memory.swap.max", &v);
                if (r < 0)
                        return r;
                *ret = v;
                return 0;
        }
        r = v1_limit(dir, "memory.memsw.limit_in_bytes", &memsw);
        if (r >= 0)
                r = v1_limit(dir, "memory.limit_in_bytes", &limit);
        if (r < 0)
                return r;
        *ret = memsw == UINT64_MAX || limit == UINT64_MAX ? UINT64_MAX
               : memsw > limit                            ? memsw - limit
                                                          : 0;
        return 0;
}

/*
 * Waits until dir/cgroup.events has "key want", at most timeout_ms, reading it every
 * EVENTS_RECHECK_US. Not with inotify, though the kernel marks the file modified at
 * every change of its values (Documentation/admin-guide/cgroup-v2.rst,
 * "cgroup.events"): Linux sends at most one such event per file every 10 ms
 * (kernel/cgroup/cgroup.c, cgroup_file_notify(), CGROUP_FILE_NOTIFY_MIN_INTV), and
 * closing an inotify instance that had a watch waits for an SRCU grace period
 * (fs/notify/group.c, fsnotify_destroy_group() -> fsnotify_wait_marks_destroyed()):
 * a wait built on a fresh inotify instance measured 7 ms p50 for freezing 50 idle
 * processes against 0.5 ms for the reads (bench/memory-actions, docs/benchmarks.md).
 * A freeze of 50 idle tasks takes about half a millisecond; a read of the file, a
 * few microseconds. Returns 0, -ETIMEDOUT, or -errno of the read.
 */
static int wait_events_key(const char *dir, const char *key, uint64_t want, unsigned timeout_ms)
{
        uint64_t deadline = now_monotonic_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;

        for (;;) {
                uint64_t v;
                int r;

                r = cgroup_read_keyed_u64(dir, "cgroup.events", key, &v);
                if (r < 0)
                        return r;
                if (v == want)
                        return 0;
                if (now_monotonic_ns() >= deadline)
                        return -ETIMEDOUT;
                (void)nanosleep(&(struct timespec){.tv_nsec = EVENTS_RECHECK_US * 1000}, NULL);
        }
}

int cgroup_freeze_unified(Cgroup *cg, bool frozen, unsigned timeout_ms)
{
        const char *dir;
        int r;

        if (!cg)
                return -EINVAL;
        dir = cgroup_leaf(cg, CGROUP_SLOT_UNIFIED);
        if (!dir)
                return -EOPNOTSUPP;
        r = cgroup_write_knob(dir, "cgroup.freeze", frozen ? "1" : "0");
        if (r == -ENOENT)
                return -EOPNOTSUPP; /* before Linux 5.2 */
        if (r < 0)
                return r;
        r = wait_events_key(dir, "frozen", frozen ? 1 : 0, timeout_ms);
        if (r == -ETIMEDOUT && frozen)
                (void)cgroup_write_knob(dir, "cgroup.freeze", "0");
        return r;
}

int cgroup_wait_unpopulated(Cgroup *cg, unsigned timeout_ms)
{
        const char *dir;
        int r;

        if (!cg)
                return -EINVAL;
        dir = cgroup_leaf(cg, CGROUP_SLOT_UNIFIED);
        if (!dir)
                return cgroup_wait_empty(cg, timeout_ms);
        r = wait_events_key(dir, "populated", 0, timeout_ms);
        if (r == -ETIMEDOUT)
                return -EBUSY;
        if (r < 0)
                return r;
        /* Hybrid: a task could sit in a v1 leaf only (moved there by hand). */
        return cg->manager->mode == CGROUP_MODE_HYBRID ? cgroup_wait_empty(cg, 0) : 0;
}

int cgroup_kill_wait(Cgroup *cg, unsigned timeout_ms)
{
        const char *dir;
        int r;

        if (!cg)
                return -EINVAL;
        dir = cgroup_leaf(cg, CGROUP_SLOT_UNIFIED);
        if (!dir)
                return cgroup_kill(cg); /* v1: freeze, SIGKILL each task, thaw, until empty */
        r = cgroup_write_knob(dir, "cgroup.kill", "1");
        if (r == -ENOENT)
                return cgroup_kill(cg); /* before Linux 5.14 */
        if (r < 0)
                return r;
        r = cgroup_wait_unpopulated(cg, timeout_ms);
        return r == -EBUSY ? cgroup_kill(cg) : r;
}
