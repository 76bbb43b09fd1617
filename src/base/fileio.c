/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"

int write_string_at(int dirfd, const char *path, const char *s)
{
        _cleanup_close_ int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        size_t n = strlen(s);
        ssize_t k;

        if (fd < 0)
                return negative_errno();
        k = write(fd, s, n);
        if (k < 0)
                return negative_errno();
        return (size_t)k == n ? 0 : -EIO;
}

int read_full_fd(int fd, size_t max_size, char **ret, size_t *ret_size)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, alloc = 0;

        for (;;) {
                ssize_t k;

                if (alloc - size < 2) {
                        size_t na = alloc ? alloc * 2 : 4096;
                        char *nb;

                        if (na > max_size + 2)
                                na = max_size + 2;
                        if (na <= alloc)
                                return -EFBIG;
                        nb = realloc(buf, na);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        alloc = na;
                }
                k = RETRY_EINTR(read(fd, buf + size, alloc - size - 1));
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                size += (size_t)k;
                if (size > max_size)
                        return -EFBIG;
        }
        if (!buf) {
                buf = malloc(1);
                if (!buf)
                        return -ENOMEM;
        }
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int read_file_at(int dirfd, const char *path, size_t max_size, char **ret, size_t *ret_size)
{
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

        if (fd < 0)
                return negative_errno();
        return read_full_fd(fd, max_size, ret, ret_size);
}

int mkdir_p(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

int loop_write(int fd, const void *buf, size_t n)
{
        const char *p = buf;

        while (n > 0) {
                ssize_t k = RETRY_EINTR(write(fd, p, n));

                if (k < 0)
                        return negative_errno();
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

int fd_nonblock(int fd, int nonblock)
{
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0)
                return negative_errno();
        flags = nonblock ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
        if (fcntl(fd, F_SETFL, flags) < 0)
                return negative_errno();
        return 0;
}

int fd_reopen(int fd, int flags)
{
        char path[sizeof "/proc/self/fd/" + 12];
        int nfd;

        if (fd < 0)
                return -EBADF;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        nfd = open(path, flags | O_CLOEXEC);
        return nfd < 0 ? negative_errno() : nfd;
}

/* Whether path's components are all names: none empty, "." or "..", no '/' at the end. */
static bool components_plain(const char *path)
{
        const char *p = path + 1;

        for (;;) {
                const char *slash = strchrnul(p, '/');
                size_t n = (size_t)(slash - p);

                if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                if (!*slash)
                        return true;
                p = slash + 1;
        }
}

int path_is_canonical(const char *path)
{
        struct open_how how = {
                .flags = O_PATH | O_CLOEXEC,
                .resolve = RESOLVE_NO_SYMLINKS,
        };
        int fd;

        if (path[0] != '/')
                return 0;
        if (path[1] == 0)
                return 1; /* "/" */
        if (!components_plain(path))
                return 0;
        fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
        if (fd < 0)
                return errno == ELOOP || errno == ENOSYS || errno == EPERM ? 0 : negative_errno();
        close(fd);
        return 1;
}

int path_canonicalize(const char *path, char **ret)
{
        char *s;
        int r;

        r = path_is_canonical(path);
        if (r < 0)
                return r;
        s = r > 0 ? strdup(path) : realpath(path, NULL);
        if (!s)
                return r > 0 ? -ENOMEM : negative_errno();
        *ret = s;
        return 0;
}
