/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "policy/manifest.h"
#include "supervisor/applog.h"

#define APPLOG_SIZE_MIN 4096

struct AppLog {
        int dirfd;
        int fd;
        char name[MANIFEST_ID_MAX + 8]; /* "<id>.log" */
        uint64_t size;                  /* bytes in the current file */
        uint64_t size_max;
        unsigned keep;
        uint64_t dropped;
};

static int open_current(AppLog *l)
{
        struct stat st;

        l->fd = openat(l->dirfd, l->name,
                       O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0640);
        if (l->fd < 0)
                return negative_errno();
        if (fstat(l->fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        l->size = (uint64_t)st.st_size;
        return 0;
}

int applog_open(const char *dir, const char *id, uint64_t size_max, unsigned keep, AppLog **ret)
{
        AppLog *l;
        int r;

        if (!manifest_id_is_valid(id) || size_max < APPLOG_SIZE_MIN || keep > APPLOG_KEEP_MAX)
                return -EINVAL;
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->fd = -EBADF;
        l->size_max = size_max;
        l->keep = keep;
        snprintf(l->name, sizeof l->name, "%s.log", id);
        l->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (l->dirfd < 0) {
                r = negative_errno();
                applog_close(l);
                return r;
        }
        r = open_current(l);
        if (r < 0) {
                applog_close(l);
                return r;
        }
        *ret = l;
        return 0;
}

/* <id>.log.(k-1) -> <id>.log.k for k = keep..1 (the oldest is overwritten), then a
 * fresh <id>.log. With keep 0 the current file is just truncated. */
static int rotate(AppLog *l)
{
        char from[sizeof l->name + 16], to[sizeof l->name + 16];

        l->fd = safe_close(l->fd);
        if (l->keep == 0) {
                if (unlinkat(l->dirfd, l->name, 0) < 0 && errno != ENOENT)
                        return negative_errno();
                return open_current(l);
        }
        for (unsigned k = l->keep; k >= 1; k--) {
                if (k == 1)
                        snprintf(from, sizeof from, "%s", l->name);
                else
                        snprintf(from, sizeof from, "%s.%u", l->name, k - 1);
                snprintf(to, sizeof to, "%s.%u", l->name, k);
                if (renameat(l->dirfd, from, l->dirfd, to) < 0 && errno != ENOENT)
                        return negative_errno();
        }
        return open_current(l);
}

int applog_write(AppLog *l, const void *buf, size_t n)
{
        int r;

        if (n > l->size_max) {
                l->dropped += n - l->size_max;
                n = (size_t)l->size_max;
        }
        if (l->size + n > l->size_max && l->size > 0) {
                r = rotate(l);
                if (r < 0)
                        return r;
        }
        r = loop_write(l->fd, buf, n);
        if (r < 0)
                return r;
        l->size += n;
        return 0;
}

uint64_t applog_dropped(const AppLog *l)
{
        return l->dropped;
}

AppLog *applog_close(AppLog *l)
{
        if (!l)
                return NULL;
        safe_close(l->fd);
        safe_close(l->dirfd);
        free(l);
        return NULL;
}
