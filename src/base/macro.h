/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Ownership helpers in the style of systemd's macro.h: a resource is owned by a
 * cleanup variable until handed on with TAKE_PTR()/TAKE_FD().
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_     __attribute__((noreturn))

#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                __typeof__(p) _p_ = (p);                                                           \
                (p) = NULL;                                                                        \
                _p_;                                                                               \
        })

#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int _fd_ = (fd);                                                                   \
                (fd) = -EBADF;                                                                     \
                _fd_;                                                                              \
        })

/*
 * Evaluates expr, a libc call that fails with -1 (or any negative value) and errno,
 * again for as long as it fails with EINTR, and yields its last value (of expr's
 * type); errno is the call's. glibc's TEMP_FAILURE_RETRY() with the type kept.
 * For a call that can wait (poll, epoll_wait, sigtimedwait with a timeout), retrying
 * restarts the whole timeout: where a deadline matters, compute what is left instead.
 */
#define RETRY_EINTR(expr)                                                                          \
        ({                                                                                         \
                __typeof__(expr) _r_;                                                              \
                do                                                                                 \
                        _r_ = (expr);                                                              \
                while (_r_ < 0 && errno == EINTR);                                                 \
                _r_;                                                                               \
        })

/* Defines a cleanup helper `name##p` that calls func(*p) when *p is not NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
        static inline void func##p(type *p)                                                        \
        {                                                                                          \
                if (*p)                                                                            \
                        func(*p);                                                                  \
        }

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Closes fd if it is valid; keeps errno. Returns -EBADF so `fd = safe_close(fd)` reads well. */
static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd)
{
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Closes a stdio stream if there is one (for _cleanup_(fclosep) FILE *f). */
static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}

/* Closes both ends of a pipe or socketpair. */
static inline void close_pairp(int (*p)[2])
{
        safe_close((*p)[0]);
        safe_close((*p)[1]);
}
#define _cleanup_close_pair_ _cleanup_(close_pairp)

/* Returns -errno of the last failed libc call, never 0 (EIO if errno was not set). */
static inline int negative_errno(void)
{
        return errno > 0 ? -errno : -EIO;
}
