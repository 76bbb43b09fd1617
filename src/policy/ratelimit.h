/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Per-app rate limits for broker calls (docs/design.md section 6: the right, then the
 * rate limit of the call's class, then the handler): one token bucket per app and
 * call class. A call takes one token; tokens come back at `rate` per second up to
 * `burst`. An app over its limit gets EAGAIN and nobody else notices (its
 * neighbours have their own buckets). Pure logic: the caller passes the time, so tests are exact.
 *
 * Token bucket as in RFC 2697 (single-rate marker) and Linux's net/sched tbf.
 */

#include <stdbool.h>
#include <stdint.h>

#define RATELIMIT_NS_PER_SEC 1000000000ull

typedef struct RateLimit {
        uint64_t rate;        /* tokens per second, > 0 */
        uint64_t burst;       /* bucket size in tokens, > 0 */
        uint64_t tokens_nano; /* tokens held, in billionths (so slow rates accrue exactly) */
        uint64_t last_ns;     /* CLOCK_MONOTONIC time of the last refill, ns */
        uint64_t refused;     /* calls refused so far, for stats and the audit log */
} RateLimit;

/*
 * Starts a full bucket. rate: tokens per second (1..1e9); burst: bucket size
 * (1..1e9); now_ns: CLOCK_MONOTONIC in ns. Returns 0, or -EINVAL for a zero or
 * out-of-range rate or burst.
 */
int ratelimit_init(RateLimit *rl, uint64_t rate, uint64_t burst, uint64_t now_ns);

/*
 * Takes one token at now_ns (ns, monotonic; a time before the last one counts as
 * no time passed). Returns 0 if allowed, or -EAGAIN if the bucket is empty; then
 * *ret_retry_ns (if not NULL) is how long until a token is back.
 */
int ratelimit_take(RateLimit *rl, uint64_t now_ns, uint64_t *ret_retry_ns);
