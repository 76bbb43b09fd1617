/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The clocks, read one way everywhere, with the unit in every name (systemd's
 * time-util.h now(), in small). CLOCK_MONOTONIC for deadlines, timeouts and
 * durations (it does not jump when the wall clock is set); CLOCK_REALTIME only for
 * timestamps a person or a file keeps (grants, audit records, `cella ps` ages).
 *
 * Header-only (static inline) so that code which links no cella library (cella-init,
 * libcella) uses it too. clock_gettime(2) fails only for a clock id the kernel does
 * not know (EINVAL) or a bad pointer (EFAULT); neither happens with these clocks, so
 * the result is not checked.
 */

#include <stdint.h>
#include <time.h>

#define NSEC_PER_SEC  UINT64_C(1000000000)
#define NSEC_PER_MSEC UINT64_C(1000000)
#define NSEC_PER_USEC UINT64_C(1000)
#define USEC_PER_SEC  UINT64_C(1000000)
#define MSEC_PER_SEC  UINT64_C(1000)

/* ts (seconds and nanoseconds, tv_sec >= 0) in nanoseconds. */
static inline uint64_t timespec_to_ns(const struct timespec *ts)
{
        return (uint64_t)ts->tv_sec * NSEC_PER_SEC + (uint64_t)ts->tv_nsec;
}

/* Clock id (CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_THREAD_CPUTIME_ID, ...) now, in
 * nanoseconds; 0 if the kernel does not know the clock. */
static inline uint64_t now_clock_ns(clockid_t id)
{
        struct timespec ts = {};

        clock_gettime(id, &ts);
        return timespec_to_ns(&ts);
}

/* CLOCK_MONOTONIC, nanoseconds since an unspecified start (boot, on Linux). */
static inline uint64_t now_monotonic_ns(void)
{
        return now_clock_ns(CLOCK_MONOTONIC);
}

/* CLOCK_MONOTONIC in whole milliseconds (rounded down). */
static inline uint64_t now_monotonic_ms(void)
{
        return now_monotonic_ns() / NSEC_PER_MSEC;
}

/* CLOCK_REALTIME, microseconds since the Unix epoch (negative before 1970). */
static inline int64_t now_realtime_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* CLOCK_REALTIME, milliseconds since the Unix epoch (negative before 1970). */
static inline int64_t now_realtime_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
