/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Importance bands and the order of the memory manager's actions (band.h). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "memory/band.h"

MemoryClass memory_class_of_state_name(const char *state)
{
        static const struct {
                const char *name;
                MemoryClass cls;
        } map[] = {
                {"foreground", MEMORY_CLASS_FOREGROUND}, {"visible", MEMORY_CLASS_VISIBLE},
                {"service", MEMORY_CLASS_SERVICE},       {"background", MEMORY_CLASS_BACKGROUND},
                {"cached", MEMORY_CLASS_CACHED},         {"frozen", MEMORY_CLASS_CACHED},
        };

        if (!state)
                return MEMORY_CLASS_NONE;
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
                if (strcmp(state, map[i].name) == 0)
                        return map[i].cls;
        return MEMORY_CLASS_NONE;
}

int memory_band(MemoryClass cls, unsigned rank)
{
        switch (cls) {
        case MEMORY_CLASS_FOREGROUND:
                return MEMORY_BAND_FOREGROUND;
        case MEMORY_CLASS_VISIBLE:
                return MEMORY_BAND_VISIBLE;
        case MEMORY_CLASS_SERVICE:
                return MEMORY_BAND_SERVICE_MIN +
                       (int)(rank < MEMORY_BAND_SERVICE_MAX - MEMORY_BAND_SERVICE_MIN
                                     ? rank
                                     : MEMORY_BAND_SERVICE_MAX - MEMORY_BAND_SERVICE_MIN);
        case MEMORY_CLASS_BACKGROUND:
                return MEMORY_BAND_BACKGROUND;
        case MEMORY_CLASS_CACHED:
                return MEMORY_BAND_CACHED_MIN +
                       (int)(rank < MEMORY_BAND_CACHED_MAX - MEMORY_BAND_CACHED_MIN
                                     ? rank
                                     : MEMORY_BAND_CACHED_MAX - MEMORY_BAND_CACHED_MIN);
        default:
                return MEMORY_BAND_NONE;
        }
}

int memory_band_oom_score_adj(int band)
{
        if (band < MEMORY_BAND_FOREGROUND || band > MEMORY_BAND_CACHED_MAX)
                return 1000;
        return band;
}

void memory_assign_bands(MemoryCandidate *c, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                unsigned rank = 0;

                /* O(n^2), n being a kernel's running apps (hundreds at most). */
                for (size_t j = 0; j < n; j++)
                        if (j != i && c[j].cls == c[i].cls &&
                            (c[j].last_used_usec > c[i].last_used_usec ||
                             (c[j].last_used_usec == c[i].last_used_usec && j < i)))
                                rank++;
                c[i].band = memory_band(c[i].cls, rank);
        }
}

/* True if candidate a goes before candidate b (indices ia, ib) in memory_order(). */
static bool goes_before(const MemoryCandidate *a, size_t ia, const MemoryCandidate *b, size_t ib)
{
        if (a->band != b->band)
                return a->band > b->band;
        if (a->band <= MEMORY_BAND_HEAVIEST_FIRST_MAX) {
                if (a->memory_bytes != b->memory_bytes)
                        return a->memory_bytes > b->memory_bytes;
        } else if (a->last_used_usec != b->last_used_usec)
                return a->last_used_usec < b->last_used_usec;
        return ia < ib;
}

size_t memory_order(const MemoryCandidate *c, size_t n, size_t *order)
{
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                size_t at;

                if (c[i].band < MEMORY_BAND_FOREGROUND || c[i].band > MEMORY_BAND_CACHED_MAX)
                        continue;
                /* Insertion sort: stable, and n is small. */
                for (at = k; at > 0 && goes_before(&c[i], i, &c[order[at - 1]], order[at - 1]);
                     at--)
                        order[at] = order[at - 1];
                order[at] = i;
                k++;
        }
        return k;
}
