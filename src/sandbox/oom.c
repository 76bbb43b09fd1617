/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A process's oom_score_adj (sandbox.h; proc(5), /proc/pid/oom_score_adj). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/macro.h"
#include "sandbox/sandbox.h"

static int adj_path(pid_t pid, char *buf, size_t size)
{
        if (pid < 0)
                return -EINVAL;
        if (pid == 0)
                snprintf(buf, size, "/proc/self/oom_score_adj");
        else
                snprintf(buf, size, "/proc/%d/oom_score_adj", (int)pid);
        return 0;
}

int sandbox_write_oom_score_adj(pid_t pid, int adj)
{
        _cleanup_close_ int fd = -EBADF;
        char path[64], val[16];
        int n;

        if (adj < SANDBOX_OOM_SCORE_ADJ_MIN || adj > SANDBOX_OOM_SCORE_ADJ_MAX ||
            adj_path(pid, path, sizeof path) < 0)
                return -EINVAL;
        fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = snprintf(val, sizeof val, "%d", adj);
        if (write(fd, val, (size_t)n) != n)
                return -errno ?: -EIO;
        return 0;
}

int sandbox_read_oom_score_adj(pid_t pid, int *ret)
{
        _cleanup_close_ int fd = -EBADF;
        char path[64], val[16] = "", *end;
        ssize_t n;
        long v;

        if (!ret || adj_path(pid, path, sizeof path) < 0)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = read(fd, val, sizeof val - 1);
        if (n < 0)
                return -errno;
        errno = 0;
        v = strtol(val, &end, 10);
        if (n == 0 || errno || end == val || (*end && *end != '\n') ||
            v < SANDBOX_OOM_SCORE_ADJ_MIN || v > SANDBOX_OOM_SCORE_ADJ_MAX)
                return -EBADMSG;
        *ret = (int)v;
        return 0;
}
