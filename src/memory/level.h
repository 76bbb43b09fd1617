/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Memory levels (docs/memory.md "Signals and levels"), as Android's
 * ComponentCallbacks2.onTrimMemory() running levels (TRIM_MEMORY_RUNNING_MODERATE,
 * _LOW, _CRITICAL), computed from memory pressure (PSI stall) and the free share
 * of the budget, with hysteresis on the way down. Pure: no clock, no I/O.
 *
 * Default thresholds and their sources:
 *   moderate  "some" stall >= 70 ms per second, or available < 20 % of the budget
 *   low       "some" stall >= 100 ms per second, or available < 10 %
 *   critical  "full" stall >= 70 ms per second, or available < 5 %
 * The stalls are lmkd's psi_thresholds[] (AOSP system/memory/lmkd/lmkd.cpp: {PSI_SOME,
 * 70} for its low level, {PSI_SOME, 100} medium, {PSI_FULL, 70} critical, "ms out of
 * 1 sec"). The free shares: earlyoom's defaults for low and critical (-m 10: act
 * below 10 % available; SIGKILL below half of it, 5 %), and twice that for moderate
 * (cella's own choice: the earliest level only asks apps to trim).
 * Hysteresis: a level is left only once the figures are back below its thresholds
 * by hysteresis_percent of them (default 20 %), so that a stall hovering at a
 * threshold does not flip the level on every sample.
 */

#include <stdbool.h>
#include <stdint.h>

/* The shared contract of issue 13 (src/memory/band.h and the actions include it). */
typedef enum MemoryLevel {
        MEMORY_LEVEL_NORMAL,
        MEMORY_LEVEL_MODERATE,
        MEMORY_LEVEL_LOW,
        MEMORY_LEVEL_CRITICAL,
        _MEMORY_LEVEL_MAX,
} MemoryLevel;

/* Thresholds of one level above normal; a 0 field is not checked. */
typedef struct MemoryLevelThreshold {
        uint32_t some_ms;      /* "some" stall, ms per second of window (0..1000) */
        uint32_t full_ms;      /* "full" stall, ms per second of window (0..1000) */
        uint32_t free_percent; /* available below this share of the budget (0..100) */
} MemoryLevelThreshold;

typedef struct MemoryLevelConfig {
        MemoryLevelThreshold level[_MEMORY_LEVEL_MAX]; /* [MEMORY_LEVEL_NORMAL] unused */
        uint32_t hysteresis_percent;                   /* 0..100 */
} MemoryLevelConfig;

/* The figures one level is computed from. */
typedef struct MemoryLevelInput {
        uint64_t some_stall_us; /* "some" stall over the last window_us, microseconds */
        uint64_t full_stall_us; /* "full" stall over the last window_us, microseconds */
        uint64_t window_us;     /* length of the window those stalls cover; 0: no PSI */
        uint64_t available;     /* bytes the apps may still use (MemoryReading.available) */
        uint64_t total;         /* bytes of the budget (memory.total, else MemTotal); 0: none */
} MemoryLevelInput;

struct MemoryReading;

/*
 * The input of memory_level_compute() from two samples of one target (reading.h)
 * taken dt_us microseconds apart: the stalls are the growth of the PSI totals
 * between them (a counter that went backwards, or no PSI in either, gives a window
 * of 0: no stall signal); available is cur's; total is budget (bytes, the
 * memory.total of the config) when not 0, else cur's limit when it has one, else 0
 * (no free-memory signal). Writes *ret.
 */
void memory_level_input_from(const struct MemoryReading *prev, const struct MemoryReading *cur,
                             uint64_t dt_us, uint64_t budget, MemoryLevelInput *ret);

/* The defaults above into *ret. */
void memory_level_config_default(MemoryLevelConfig *ret);

/*
 * Checks c: each level's figures at most 1000 ms / 100 %, and each level at least
 * as strict as the one below it where both set a figure (free_percent decreasing
 * from moderate to critical, stalls not decreasing). Returns 0, or -EINVAL and
 * *ret_why (a static string naming the figure) if ret_why is not NULL.
 */
int memory_level_config_check(const MemoryLevelConfig *c, const char **ret_why);

/*
 * The level for in, given the level computed last time (previous): the highest
 * level whose thresholds in meets; a level below previous only when in is below
 * previous's thresholds by the hysteresis margin (else previous stays, or the
 * highest level in still meets with the margin). Stalls are scaled to ms per
 * second of window_us. Returns the level.
 */
MemoryLevel memory_level_compute(const MemoryLevelConfig *c, const MemoryLevelInput *in,
                                 MemoryLevel previous);

/* "normal", "moderate", "low", "critical"; "?" for anything else. */
const char *memory_level_to_string(MemoryLevel l);

/* The reverse of memory_level_to_string(). Returns 0 and *ret, or -EINVAL. */
int memory_level_from_string(const char *s, MemoryLevel *ret);
