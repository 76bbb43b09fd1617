/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PSI and v1 memory.pressure_level triggers for an event loop (pressure.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "memory/pressure.h"

/* kernel/sched/psi.c: WINDOW_MIN_US, WINDOW_MAX_US. */
#define PSI_WINDOW_MIN_US 500000u
#define PSI_WINDOW_MAX_US 10000000u

struct PressureTrigger {
        int fd;
        bool v1;
        bool degraded;
        uint32_t stall_us;
        uint32_t window_us;
        char desc[64];
};

static PressureTrigger *trigger_new(void)
{
        PressureTrigger *t = calloc(1, sizeof *t);

        if (t)
                t->fd = -EBADF;
        return t;
}

PressureTrigger *pressure_trigger_free(PressureTrigger *t)
{
        if (!t)
                return NULL;
        safe_close(t->fd);
        free(t);
        return NULL;
}

/* Opens path and writes the trigger; the kernel keeps it while the fd is open
 * (psi.rst: "closing the file descriptor ... destroys the trigger"). Returns the fd
 * or -errno (of open or of the write). */
static int psi_arm(const char *path, const char *spec)
{
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        /* One write, with the terminating NUL as psi.rst's example does. */
        n = write(fd, spec, strlen(spec) + 1);
        if (n < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

int pressure_trigger_new(const char *path, PressureKind kind, uint32_t stall_us, uint32_t window_us,
                         uint32_t fallback_window_us, PressureTrigger **ret)
{
        const char *k = kind == PRESSURE_FULL ? "full" : "some";
        PressureTrigger *t;
        int fd;

        if (!path || !ret || stall_us == 0 || window_us < PSI_WINDOW_MIN_US ||
            window_us > PSI_WINDOW_MAX_US || stall_us >= window_us ||
            (fallback_window_us &&
             (fallback_window_us < PSI_WINDOW_MIN_US || fallback_window_us > PSI_WINDOW_MAX_US)))
                return -EINVAL;
        t = trigger_new();
        if (!t)
                return -ENOMEM;
        t->stall_us = stall_us;
        t->window_us = window_us;
        snprintf(t->desc, sizeof t->desc, "%s %u %u", k, stall_us, window_us);
        fd = psi_arm(path, t->desc);
        if (fd == -EINVAL && fallback_window_us && fallback_window_us != window_us) {
                uint64_t s = (uint64_t)stall_us * fallback_window_us / window_us;

                t->stall_us = (uint32_t)(s ? s : 1);
                t->window_us = fallback_window_us;
                t->degraded = true;
                snprintf(t->desc, sizeof t->desc, "%s %u %u", k, t->stall_us, t->window_us);
                fd = psi_arm(path, t->desc);
        }
        if (fd < 0) {
                pressure_trigger_free(t);
                return fd;
        }
        t->fd = fd;
        *ret = t;
        return 0;
}

int pressure_trigger_new_v1(const char *memcg_dir, PressureV1Level level, PressureTrigger **ret)
{
        static const char *const names[] = {"low", "medium", "critical"};
        _cleanup_close_ int plfd = -EBADF;
        PressureTrigger *t;
        char path[4096], line[64];
        int r;

        if (!memcg_dir || !ret || (unsigned)level >= ELEMENTSOF(names))
                return -EINVAL;
        if ((size_t)snprintf(path, sizeof path, "%s/memory.pressure_level", memcg_dir) >=
            sizeof path)
                return -ENAMETOOLONG;
        plfd = open(path, O_RDONLY | O_CLOEXEC);
        if (plfd < 0)
                return negative_errno();
        t = trigger_new();
        if (!t)
                return -ENOMEM;
        t->v1 = true;
        snprintf(t->desc, sizeof t->desc, "v1 %s", names[level]);
        t->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (t->fd < 0) {
                r = negative_errno();
                pressure_trigger_free(t);
                return r;
        }
        /* "<event_fd> <fd of memory.pressure_level> <level>" (cgroup-v1/memory.rst 11).
         * The kernel holds its own reference to both files: plfd may be closed. */
        snprintf(line, sizeof line, "%d %d %s", t->fd, plfd, names[level]);
        if ((size_t)snprintf(path, sizeof path, "%s/cgroup.event_control", memcg_dir) >=
            sizeof path)
                r = -ENAMETOOLONG;
        else
                r = write_string_at(AT_FDCWD, path, line);
        if (r < 0) {
                pressure_trigger_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

int pressure_trigger_new_best(const char *psi_path, const char *v1_memcg_dir, PressureKind kind,
                              uint32_t stall_us, uint32_t window_us, uint32_t fallback_window_us,
                              PressureV1Level v1_level, PressureTrigger **ret)
{
        int r = -ENOENT;

        if (psi_path)
                r = pressure_trigger_new(psi_path, kind, stall_us, window_us, fallback_window_us,
                                         ret);
        if ((r == -ENOENT || r == -EOPNOTSUPP) && v1_memcg_dir)
                r = pressure_trigger_new_v1(v1_memcg_dir, v1_level, ret);
        return r;
}

int pressure_trigger_fd(const PressureTrigger *t)
{
        return t ? t->fd : -EBADF;
}

short pressure_trigger_events(const PressureTrigger *t)
{
        return t && t->v1 ? POLLIN : POLLPRI;
}

uint32_t pressure_trigger_window_us(const PressureTrigger *t)
{
        return t && !t->v1 ? t->window_us : 0;
}

uint32_t pressure_trigger_stall_us(const PressureTrigger *t)
{
        return t && !t->v1 ? t->stall_us : 0;
}

bool pressure_trigger_degraded(const PressureTrigger *t)
{
        return t && t->degraded;
}

const char *pressure_trigger_describe(const PressureTrigger *t)
{
        return t ? t->desc : "";
}

int pressure_trigger_handle(PressureTrigger *t, short revents)
{
        if (!t || t->fd < 0)
                return -EINVAL;
        if (revents == 0) {
                struct pollfd p = {.fd = t->fd, .events = pressure_trigger_events(t)};

                if (poll(&p, 1, 0) < 0)
                        return negative_errno();
                revents = p.revents;
        }
        if (revents & (POLLERR | POLLNVAL))
                return -ENODEV;
        if (t->v1) {
                uint64_t n;
                ssize_t k;

                if (!(revents & POLLIN))
                        return 0;
                k = read(t->fd, &n, sizeof n);
                if (k < 0)
                        return errno == EAGAIN ? 0 : negative_errno();
                if (k != (ssize_t)sizeof n)
                        return -EIO; /* an eventfd reads 8 bytes or fails */
                return n > 0;
        }
        return (revents & POLLPRI) ? 1 : 0;
}
