/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The memory manager's actions on an app's cgroup (action.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/time-util.h"
#include "memory/action.h"
#include "sandbox/sandbox.h"

static const char *const level_names[] = {
        [MEMORY_LEVEL_NORMAL] = "normal",
        [MEMORY_LEVEL_MODERATE] = "moderate",
        [MEMORY_LEVEL_LOW] = "low",
        [MEMORY_LEVEL_CRITICAL] = "critical",
};

const char *memory_action_level_name(MemoryLevel level)
{
        return (unsigned)level < ELEMENTSOF(level_names) ? level_names[level] : NULL;
}

int memory_action_level_parse(const char *word, MemoryLevel *ret)
{
        for (size_t i = 0; word && i < ELEMENTSOF(level_names); i++)
                if (strcmp(word, level_names[i]) == 0) {
                        *ret = (MemoryLevel)i;
                        return 0;
                }
        return -EINVAL;
}

unsigned memory_reclaim_keep_percent(MemoryLevel level)
{
        switch (level) {
        case MEMORY_LEVEL_MODERATE:
                return 90;
        case MEMORY_LEVEL_LOW:
                return 75;
        case MEMORY_LEVEL_CRITICAL:
                return 50;
        default:
                return 100;
        }
}

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

int memory_set_pid_oom_score_adj(pid_t pid, int adj)
{
        return sandbox_write_oom_score_adj(pid, adj);
}

int memory_pid_oom_score_adj(pid_t pid, int *ret)
{
        return sandbox_read_oom_score_adj(pid, ret);
}

/* Whether the process behind procfd (its /proc/<pid> directory) is in the cgroup at
 * dir, a hierarchy's mount point followed by the cgroup's path: a line of its
 * /proc/<pid>/cgroup (cgroups(7): "ID:controllers:path") whose path ends dir and
 * whose controllers name ctrl ("" for the unified hierarchy, whose line is "0::"). */
static bool proc_in_cgroup(int procfd, const char *dir, const char *ctrl)
{
        _cleanup_(fclosep) FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t cap = 0, dl = strlen(dir);
        int fd;

        fd = openat(procfd, "cgroup", O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return false;
        f = fdopen(fd, "re");
        if (!f) {
                safe_close(fd);
                return false;
        }
        while (getline(&line, &cap, f) > 0) {
                char *c = strchr(line, ':'), *p = c ? strchr(c + 1, ':') : NULL;
                size_t pl;

                if (!p)
                        continue;
                *p++ = '\0';
                c++;
                p[strcspn(p, "\n")] = '\0';
                pl = strlen(p);
                if (pl < 2 || pl > dl || strcmp(dir + dl - pl, p) != 0)
                        continue;
                if (*ctrl ? strstr(c, ctrl) != NULL : *c == '\0')
                        return true;
        }
        return false;
}

int memory_set_oom_score_adj(Cgroup *cg, int adj)
{
        _cleanup_free_ pid_t *pids = NULL;
        const char *dir, *ctrl = "";
        char val[16];
        int n, done = 0;

        if (!cg || adj < -1000 || adj > 1000)
                return -EINVAL;
        dir = cgroup_path(cg, "");
        if (!dir && (dir = cgroup_path(cg, "memory")))
                ctrl = "memory";
        if (!dir && (dir = cgroup_path(cg, "pids")))
                ctrl = "pids";
        if (!dir)
                return -ENOENT;
        pids = malloc(MEMORY_PROCS_MAX * sizeof *pids);
        if (!pids)
                return -ENOMEM;
        n = cgroup_read_procs(dir, pids, MEMORY_PROCS_MAX);
        if (n < 0)
                return n;
        snprintf(val, sizeof val, "%d", adj);
        for (int i = 0; i < n; i++) {
                _cleanup_close_ int procfd = -EBADF, fd = -EBADF;
                char path[32];

                /* The pid was read from cgroup.procs; by now its process may have
                 * exited and the pid gone to another, a host process even. A
                 * /proc/<pid> directory fd stays with the process it was opened for
                 * (proc(5): its files answer ESRCH once it is gone), so it is opened
                 * first, then asked whether its process is in the cgroup, then
                 * written through: never another process's oom_score_adj. */
                snprintf(path, sizeof path, "/proc/%d", (int)pids[i]);
                procfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (procfd < 0 || !proc_in_cgroup(procfd, dir, ctrl))
                        continue; /* gone, or another process's pid now */
                fd = openat(procfd, "oom_score_adj", O_WRONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0 && (errno == ENOENT || errno == ESRCH))
                        continue;
                if (fd < 0)
                        return -errno;
                if (write(fd, val, strlen(val)) < 0) {
                        if (errno == ESRCH)
                                continue;
                        return -errno;
                }
                done++;
        }
        return done;
}
