/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The memory manager's actions on an app's cgroup (action.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/time-util.h"
#include "memory/action.h"

/* Most processes memory_set_oom_score_adj() reads from one cgroup.procs. */
#define MEMORY_PROCS_MAX 65536

/* The cgroup's memory use, bytes: memory.current in a cgroup2 memory leaf (pure v2,
 * where the "memory" leaf is the unified one), else the v1 memory.usage_in_bytes. */
static int usage_now(Cgroup *cg, uint64_t *ret)
{
        const char *mem = cgroup_path(cg, "memory"), *u = cgroup_path(cg, "");
        bool v2 = mem && u && strcmp(mem, u) == 0;

        if (!mem)
                return -EOPNOTSUPP;
        return cgroup_read_knob_u64(mem, v2 ? "memory.current" : "memory.usage_in_bytes", ret);
}

int memory_reclaim(Cgroup *cg, unsigned keep_percent, MemoryReclaim *ret)
{
        MemoryReclaim m = {};
        uint64_t target;
        int r;

        if (!cg || !ret || keep_percent < 1 || keep_percent > 100)
                return -EINVAL;
        r = cgroup_soft_limit(cg, &m.previous);
        if (r < 0)
                return r;
        r = usage_now(cg, &m.usage);
        if (r < 0)
                return r;
        target = m.usage / 100 * keep_percent + m.usage % 100 * keep_percent / 100;
        if (target < MEMORY_RECLAIM_FLOOR)
                target = MEMORY_RECLAIM_FLOOR;
        if (target > m.previous)
                target = m.previous;
        m.soft_limit = target;
        r = cgroup_set_soft_limit(cg, target);
        if (r < 0)
                return r;
        *ret = m;
        return 0;
}

int memory_reclaim_restore(Cgroup *cg, const MemoryReclaim *saved)
{
        if (!cg || !saved || saved->previous == 0)
                return -EINVAL;
        return cgroup_set_soft_limit(cg, saved->previous);
}

int memory_freeze(Cgroup *cg, bool frozen, uint64_t *ret_usec)
{
        uint64_t t0 = now_monotonic_ns();
        int r;

        r = cgroup_freeze_unified(cg, frozen, MEMORY_FREEZE_TIMEOUT_MS);
        if (r < 0)
                return r;
        if (ret_usec)
                *ret_usec = (now_monotonic_ns() - t0) / 1000;
        return 0;
}

int memory_kill(Cgroup *cg, MemoryKill *ret)
{
        MemoryKill k = {};
        uint64_t t0, after = 0;
        int r;

        if (!cg)
                return -EINVAL;
        (void)usage_now(cg, &k.usage_before); /* 0 when unreadable: the kill matters more */
        t0 = now_monotonic_ns();
        r = cgroup_kill_wait(cg, MEMORY_KILL_TIMEOUT_MS);
        if (r < 0)
                return r;
        k.usec = (now_monotonic_ns() - t0) / 1000;
        if (usage_now(cg, &after) >= 0 && after < k.usage_before)
                k.freed = k.usage_before - after;
        if (ret)
                *ret = k;
        return 0;
}

static int proc_path(pid_t pid, char *buf, size_t size)
{
        if (pid < 0)
                return -EINVAL;
        if (pid == 0)
                snprintf(buf, size, "/proc/self/oom_score_adj");
        else
                snprintf(buf, size, "/proc/%d/oom_score_adj", (int)pid);
        return 0;
}

int memory_set_pid_oom_score_adj(pid_t pid, int adj)
{
        char path[64], val[16];
        int fd, n, r = 0;

        if (adj < -1000 || adj > 1000 || proc_path(pid, path, sizeof path) < 0)
                return -EINVAL;
        fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = snprintf(val, sizeof val, "%d", adj);
        if (write(fd, val, (size_t)n) != n)
                r = errno ? -errno : -EIO;
        close(fd);
        return r;
}

int memory_pid_oom_score_adj(pid_t pid, int *ret)
{
        char path[64], val[16] = "";
        ssize_t n;
        int fd;

        if (!ret || proc_path(pid, path, sizeof path) < 0)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = read(fd, val, sizeof val - 1);
        close(fd);
        if (n <= 0)
                return n < 0 ? -errno : -EIO;
        *ret = atoi(val);
        return 0;
}

int memory_set_oom_score_adj(Cgroup *cg, int adj)
{
        _cleanup_free_ pid_t *pids = NULL;
        const char *dir;
        int n, done = 0;

        if (!cg || adj < -1000 || adj > 1000)
                return -EINVAL;
        dir = cgroup_path(cg, "");
        if (!dir)
                dir = cgroup_path(cg, "memory");
        if (!dir)
                dir = cgroup_path(cg, "pids");
        if (!dir)
                return -ENOENT;
        pids = malloc(MEMORY_PROCS_MAX * sizeof *pids);
        if (!pids)
                return -ENOMEM;
        n = cgroup_read_procs(dir, pids, MEMORY_PROCS_MAX);
        if (n < 0)
                return n;
        for (int i = 0; i < n; i++) {
                int r = memory_set_pid_oom_score_adj(pids[i], adj);

                if (r == -ENOENT || r == -ESRCH)
                        continue; /* gone meanwhile */
                if (r < 0)
                        return r;
                done++;
        }
        return done;
}
