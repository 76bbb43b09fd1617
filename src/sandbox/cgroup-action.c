/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the memory manager does to an app's cgroup (issue 13, "Actions"; cgroup.h,
 * "Memory actions"): its soft limit (v2 memory.high, v1 memory.soft_limit_in_bytes),
 * a freeze through the unified hierarchy's cgroup.freeze only, and a kill that waits
 * for the kernel's "populated 0" in cgroup.events rather than polling cgroup.procs.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/time-util.h"
#include "sandbox/cgroup-internal.h"

/* v1 reads "no limit" as PAGE_COUNTER_MAX pages in bytes (cgroup-v1.c): from 2^62 up. */
#define SOFT_LIMIT_V1_UNLIMITED_MIN (UINT64_C(1) << 62)

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

/*
 * Waits until dir/cgroup.events has "key want", at most timeout_ms: reads it, and
 * between reads sleeps in poll(2) on an inotify watch of the file, which the kernel
 * marks modified at every change of its values (Documentation/admin-guide/
 * cgroup-v2.rst, "cgroup.events": "a value change in this file generates a file
 * modified event"). The watch is made before the first read, so no change is missed.
 * Returns 0, -ETIMEDOUT, or -errno (of the read, or of inotify).
 */
static int wait_events_key(const char *dir, const char *key, uint64_t want, unsigned timeout_ms)
{
        _cleanup_(closep) int fd = -EBADF;
        char path[PATH_MAX];
        uint64_t deadline = now_monotonic_ms() + timeout_ms;

        if ((size_t)snprintf(path, sizeof path, "%s/cgroup.events", dir) >= sizeof path)
                return -ENAMETOOLONG;
        fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (inotify_add_watch(fd, path, IN_MODIFY) < 0)
                return -errno;
        for (;;) {
                char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
                uint64_t v, now;
                int r;

                r = cgroup_read_keyed_u64(dir, "cgroup.events", key, &v);
                if (r < 0)
                        return r;
                if (v == want)
                        return 0;
                now = now_monotonic_ms();
                if (now >= deadline)
                        return -ETIMEDOUT;
                r = poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, (int)(deadline - now));
                if (r < 0 && errno != EINTR)
                        return -errno;
                while (read(fd, buf, sizeof buf) > 0)
                        ;
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
