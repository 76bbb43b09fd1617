/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The sampler's cadence (docs/memory.md "Signals and levels"), a pure state
 * machine: the caller passes the time (monotonic nanoseconds, from its event loop:
 * the clock is injected) and arms one timer at the deadline it returns.
 *
 * As lmkd (AOSP system/memory/lmkd/lmkd.cpp: PSI_WINDOW_SIZE_MS 1000,
 * PSI_POLL_PERIOD_SHORT_MS 10, PSI_POLL_PERIOD_LONG_MS 100; "PSI monitor generates
 * events at most once per window, therefore we poll memory state for the duration
 * of PSI_WINDOW_SIZE_MS after the event happens"):
 *   - idle: no deadline at all (no timer, zero wake-ups) until a trigger fires;
 *   - a trigger fired: sample now, then every short_ms while pressure stays high and
 *     every long_ms otherwise, until one window has passed since the last trigger;
 *   - the window over: idle again.
 */

#include <stdbool.h>
#include <stdint.h>

typedef struct MemorySamplerConfig {
        uint32_t window_ms; /* how long to sample after a trigger: the trigger's window */
        uint32_t short_ms;  /* interval while pressure is high (default 10) */
        uint32_t long_ms;   /* interval otherwise (default 100) */
} MemorySamplerConfig;

typedef struct MemorySampler {
        MemorySamplerConfig config;
        bool polling;
        uint64_t until_ns; /* end of the window being sampled */
        uint64_t next_ns;  /* the next sample's deadline; 0 when idle */
        uint64_t samples;  /* samples taken since init */
        uint64_t triggers; /* triggers seen since init */
} MemorySampler;

/* lmkd's figures: window 1000, short 10, long 100 (ms). */
#define MEMORY_SAMPLER_WINDOW_MS_DEFAULT 1000
#define MEMORY_SAMPLER_SHORT_MS_DEFAULT  10
#define MEMORY_SAMPLER_LONG_MS_DEFAULT   100

/*
 * Starts s idle with c (copied). Returns 0, or -EINVAL unless 0 < short_ms <=
 * long_ms <= window_ms.
 */
int memory_sampler_init(MemorySampler *s, const MemorySamplerConfig *c);

/*
 * A trigger fired at now_ns: sampling (re)starts for one window from now_ns.
 * Returns the deadline of the next sample, now_ns itself (sample at once).
 */
uint64_t memory_sampler_triggered(MemorySampler *s, uint64_t now_ns);

/*
 * A sample was taken at now_ns; high: its pressure is high (a level above normal,
 * or the caller's own test). Returns the next sample's deadline (now_ns + short_ms
 * or + long_ms, never past the window's end by more than one interval), or 0 when
 * the window is over: idle, arm no timer.
 */
uint64_t memory_sampler_sampled(MemorySampler *s, uint64_t now_ns, bool high);

/*
 * The window ended (memory_sampler_sampled() returned 0) while the level is still
 * above normal (the free share of the budget, which no trigger watches, or a stall
 * under the trigger's threshold): sampling goes on for one more window from now_ns,
 * at long_ms, without counting a trigger. Returns the next sample's deadline.
 */
uint64_t memory_sampler_hold(MemorySampler *s, uint64_t now_ns);

/* The pending deadline (0: idle, no timer). */
uint64_t memory_sampler_deadline(const MemorySampler *s);

/* True when idle. */
bool memory_sampler_idle(const MemorySampler *s);
