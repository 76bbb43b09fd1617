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
#include "base/time-util.h"
#include "policy/manifest.h"
#include "supervisor/applog.h"

#define APPLOG_SIZE_MIN 4096

struct AppLog {
        int dirfd;
        int fd;
        int times_fd;                   /* "<id>.log.times", or -EBADF (none: no stamps) */
        uint64_t times_size;            /* bytes in it */
        int64_t last_time_us;           /* of its last record */
        char name[MANIFEST_ID_MAX + 8]; /* "<id>.log" */
        uint64_t size;                  /* bytes in the current file */
        uint64_t size_max;
        unsigned keep;
        uint64_t dropped;
};

/* The time index of the current file: opened (created) beside it; a failure only
 * means no times. */
static void open_times(AppLog *l)
{
        char name[sizeof l->name + sizeof APPLOG_TIMES_SUFFIX];
        struct stat st;

        l->times_fd = safe_close(l->times_fd);
        l->times_size = 0;
        l->last_time_us = 0;
        snprintf(name, sizeof name, "%s" APPLOG_TIMES_SUFFIX, l->name);
        l->times_fd =
                openat(l->dirfd, name,
                       O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0640);
        if (l->times_fd >= 0 && (fstat(l->times_fd, &st) < 0 || !S_ISREG(st.st_mode)))
                l->times_fd = safe_close(l->times_fd);
        if (l->times_fd >= 0)
                l->times_size = (uint64_t)st.st_size - (uint64_t)st.st_size % sizeof(AppLogTime);
}

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
        open_times(l);
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
        l->fd = l->times_fd = -EBADF;
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
        char from[sizeof l->name + 32], to[sizeof l->name + 32];

        l->fd = safe_close(l->fd);
        l->times_fd = safe_close(l->times_fd);
        if (l->keep == 0) {
                if (unlinkat(l->dirfd, l->name, 0) < 0 && errno != ENOENT)
                        return negative_errno();
                snprintf(from, sizeof from, "%s" APPLOG_TIMES_SUFFIX, l->name);
                (void)unlinkat(l->dirfd, from, 0);
                return open_current(l);
        }
        for (unsigned k = l->keep; k >= 1; k--) {
                /* The time index first: a reader that finds a file finds its times
                 * (or none), never another file's. */
                for (int times = 1; times >= 0; times--) {
                        const char *sfx = times ? APPLOG_TIMES_SUFFIX : "";

                        if (k == 1)
                                snprintf(from, sizeof from, "%s%s", l->name, sfx);
                        else
                                snprintf(from, sizeof from, "%s.%u%s", l->name, k - 1, sfx);
                        snprintf(to, sizeof to, "%s.%u%s", l->name, k, sfx);
                        if (renameat(l->dirfd, from, l->dirfd, to) < 0 && errno != ENOENT)
                                return negative_errno();
                }
        }
        return open_current(l);
}

/* A time record for the bytes about to be written at l->size, when
 * APPLOG_TIME_GRAIN_US has passed since the last and the index has room. */
static void stamp(AppLog *l)
{
        int64_t now = (int64_t)now_realtime_us();
        unsigned char rec[sizeof(AppLogTime)];
        uint64_t off = l->size;

        if (l->times_fd < 0 || (l->last_time_us && now - l->last_time_us < APPLOG_TIME_GRAIN_US) ||
            l->times_size + sizeof rec > l->size_max / 4)
                return;
        for (unsigned i = 0; i < 8; i++) {
                rec[i] = (unsigned char)(off >> (8 * i));
                rec[8 + i] = (unsigned char)((uint64_t)now >> (8 * i));
        }
        /* One write of a whole record (O_APPEND); a failure costs only the times. */
        if (write(l->times_fd, rec, sizeof rec) == (ssize_t)sizeof rec) {
                l->times_size += sizeof rec;
                l->last_time_us = now;
        }
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
        stamp(l);
        r = loop_write(l->fd, buf, n);
        if (r < 0)
                return r;
        l->size += n;
        return 0;
}

int applog_times_load(int dirfd, const char *name, AppLogTime **ret, size_t *ret_n)
{
        char tname[MANIFEST_ID_MAX + 32 + sizeof APPLOG_TIMES_SUFFIX];
        _cleanup_free_ char *data = NULL;
        AppLogTime *t;
        size_t size = 0, n = 0;
        int r;

        *ret = NULL;
        *ret_n = 0;
        if (snprintf(tname, sizeof tname, "%s" APPLOG_TIMES_SUFFIX, name) >= (int)sizeof tname)
                return -ENAMETOOLONG;
        r = read_file_at(dirfd, tname, (1u << 20) * sizeof(AppLogTime), &data, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        t = calloc(size / sizeof *t + 1, sizeof *t);
        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i + sizeof *t <= size; i += sizeof *t) {
                const unsigned char *p = (const unsigned char *)data + i;
                uint64_t off = 0, us = 0;

                for (unsigned k = 0; k < 8; k++) {
                        off |= (uint64_t)p[k] << (8 * k);
                        us |= (uint64_t)p[8 + k] << (8 * k);
                }
                if (n > 0 && off < t[n - 1].offset)
                        continue; /* not ours to trust */
                t[n++] = (AppLogTime){.offset = off, .time_us = (int64_t)us};
        }
        *ret = t;
        *ret_n = n;
        return 0;
}

int64_t applog_time_at(const AppLogTime *t, size_t n, uint64_t off)
{
        size_t lo = 0, hi = n;

        /* The first record past off, then the one before it. */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (t[mid].offset <= off)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo > 0 ? t[lo - 1].time_us : 0;
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
        safe_close(l->times_fd);
        safe_close(l->dirfd);
        free(l);
        return NULL;
}
