/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Memory levels from PSI stall and the budget's free share (level.h). */
#include <errno.h>
#include <string.h>

#include "base/macro.h"
#include "memory/level.h"
#include "memory/reading.h"

static const char *const level_names[_MEMORY_LEVEL_MAX] = {
        [MEMORY_LEVEL_NORMAL] = "normal",
        [MEMORY_LEVEL_MODERATE] = "moderate",
        [MEMORY_LEVEL_LOW] = "low",
        [MEMORY_LEVEL_CRITICAL] = "critical",
};

void memory_level_input_from(const MemoryReading *prev, const MemoryReading *cur, uint64_t dt_us,
                             uint64_t budget, MemoryLevelInput *ret)
{
        MemoryLevelInput in = {.available = cur->available};

        if (prev->has_psi && cur->has_psi && dt_us > 0 &&
            cur->some_total_us >= prev->some_total_us &&
            cur->full_total_us >= prev->full_total_us) {
                in.some_stall_us = cur->some_total_us - prev->some_total_us;
                in.full_stall_us = cur->full_total_us - prev->full_total_us;
                in.window_us = dt_us;
        }
        if (budget)
                in.total = budget;
        else if (cur->limit != MEMORY_UNKNOWN)
                in.total = cur->limit;
        if (in.available == MEMORY_UNKNOWN || !in.total)
                in.available = in.total = 0;
        *ret = in;
}

void memory_level_config_default(MemoryLevelConfig *ret)
{
        *ret = (MemoryLevelConfig){
                .level[MEMORY_LEVEL_MODERATE] = {.some_ms = 70, .free_percent = 20},
                .level[MEMORY_LEVEL_LOW] = {.some_ms = 100, .free_percent = 10},
                .level[MEMORY_LEVEL_CRITICAL] = {.full_ms = 70, .free_percent = 5},
                .hysteresis_percent = 20,
        };
}

int memory_level_config_check(const MemoryLevelConfig *c, const char **ret_why)
{
        const char *why = NULL;

        if (c->hysteresis_percent > 100)
                why = "hysteresis_percent is above 100";
        for (MemoryLevel l = MEMORY_LEVEL_MODERATE; !why && l < _MEMORY_LEVEL_MAX; l++) {
                const MemoryLevelThreshold *t = &c->level[l], *below = &c->level[l - 1];

                if (t->some_ms > 1000 || t->full_ms > 1000)
                        why = "a stall is above 1000 ms per second";
                else if (t->free_percent > 100)
                        why = "a free_percent is above 100";
                else if (l == MEMORY_LEVEL_MODERATE)
                        continue;
                else if (t->free_percent && below->free_percent &&
                         t->free_percent > below->free_percent)
                        why = "a level's free_percent is above the one of the level below it";
                else if (t->some_ms && below->some_ms && t->some_ms < below->some_ms)
                        why = "a level's some_ms is below the one of the level below it";
                else if (t->full_ms && below->full_ms && t->full_ms < below->full_ms)
                        why = "a level's full_ms is below the one of the level below it";
        }
        if (why) {
                if (ret_why)
                        *ret_why = why;
                return -EINVAL;
        }
        return 0;
}

/* True if stall_us over window_us is at least ms per second, times keep/100. */
static bool stall_meets(uint64_t stall_us, uint64_t window_us, uint32_t ms, uint32_t keep)
{
        if (ms == 0 || window_us == 0)
                return false;
        /* stall_us / window_us >= ms / 1000 * keep / 100, in integers: at most
         * 2^64 * 1e5 needs 128 bits. */
        return (unsigned __int128)stall_us * 100000 >= (unsigned __int128)ms * window_us * keep;
}

/* True if available is below percent of total, times widen/100. */
static bool free_meets(uint64_t available, uint64_t total, uint32_t percent, uint32_t widen)
{
        if (percent == 0 || total == 0)
                return false;
        return (unsigned __int128)available * 10000 < (unsigned __int128)total * percent * widen;
}

/* True if in meets level l's thresholds, the stalls scaled by keep% and the free
 * share by widen% (100 and 100 to enter the level). */
static bool level_meets(const MemoryLevelConfig *c, const MemoryLevelInput *in, MemoryLevel l,
                        uint32_t keep, uint32_t widen)
{
        const MemoryLevelThreshold *t = &c->level[l];

        return stall_meets(in->some_stall_us, in->window_us, t->some_ms, keep) ||
               stall_meets(in->full_stall_us, in->window_us, t->full_ms, keep) ||
               free_meets(in->available, in->total, t->free_percent, widen);
}

static MemoryLevel level_highest(const MemoryLevelConfig *c, const MemoryLevelInput *in,
                                 uint32_t keep, uint32_t widen)
{
        for (MemoryLevel l = MEMORY_LEVEL_CRITICAL; l > MEMORY_LEVEL_NORMAL; l--)
                if (level_meets(c, in, l, keep, widen))
                        return l;
        return MEMORY_LEVEL_NORMAL;
}

MemoryLevel memory_level_compute(const MemoryLevelConfig *c, const MemoryLevelInput *in,
                                 MemoryLevel previous)
{
        MemoryLevel raw, sticky;
        uint32_t h = c->hysteresis_percent > 100 ? 100 : c->hysteresis_percent;

        raw = level_highest(c, in, 100, 100);
        if (raw >= previous || (unsigned)previous >= _MEMORY_LEVEL_MAX)
                return raw;
        /* Going down: the highest level in still meets with the margin, at most
         * previous. */
        sticky = level_highest(c, in, 100 - h, 100 + h);
        if (sticky > previous)
                sticky = previous;
        return sticky > raw ? sticky : raw;
}

const char *memory_level_to_string(MemoryLevel l)
{
        return (unsigned)l < _MEMORY_LEVEL_MAX ? level_names[l] : "?";
}

int memory_level_from_string(const char *s, MemoryLevel *ret)
{
        for (MemoryLevel l = 0; s && l < _MEMORY_LEVEL_MAX; l++)
                if (strcmp(s, level_names[l]) == 0) {
                        *ret = l;
                        return 0;
                }
        return -EINVAL;
}
