/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * For the unit tests that drive a libuv loop by hand (uv_run(UV_RUN_NOWAIT)) while
 * they watch a file descriptor of their own: wait for the next event instead of
 * sleeping a guessed time between turns.
 */
#pragma once

#include <poll.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

/* CLOCK_MONOTONIC in milliseconds. */
static inline int64_t test_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Blocks until the loop has work (its backend fd, the epoll set of every handle it
 * watches, is readable; or its next timer is due: uv_backend_timeout()), or fd is
 * readable (fd < 0: none), or max_ms milliseconds pass. The caller then turns the
 * loop with UV_RUN_NOWAIT and checks its condition and its own deadline again.
 */
static inline void uv_wait_event(uv_loop_t *loop, int fd, int max_ms)
{
        struct pollfd p[2] = {
                {.fd = uv_backend_fd(loop), .events = POLLIN},
                {.fd = fd, .events = POLLIN},
        };
        int t = uv_backend_timeout(loop);

        if (t < 0 || t > max_ms)
                t = max_ms;
        (void)poll(p, fd >= 0 ? 2 : 1, t);
}
