/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Importance bands (issue 13, "Kill"; docs/memory.md, "Actions"): how much an app
 * matters to the user, as Android's oom_adj values (frameworks/base/services/core/
 * java/com/android/server/am/ProcessList.java: FOREGROUND_APP_ADJ = 0,
 * VISIBLE_APP_ADJ = 100, PERCEPTIBLE_APP_ADJ = 200 .. BACKUP_APP_ADJ = 300,
 * PREVIOUS_APP_ADJ = 700, CACHED_APP_MIN_ADJ = 900 .. CACHED_APP_MAX_ADJ = 999).
 * A higher band is less important: the memory manager trims, reclaims, freezes and
 * kills from the highest band down, and the band is what every process of the app
 * gets as its oom_score_adj (proc(5): -1000..1000), so that Linux's own OOM killer,
 * should it still fire, picks as cella would.
 *
 * Everything here is a pure function over the figures a caller hands in (state,
 * last use, memory): no clock, no cgroup read, so the order is tested with injected
 * values (tests/unit/test-memory-band.c).
 *
 * The class is the memory manager's view of an app's state (supervisor/lifecycle.h
 * InstanceState, which lives above this library: the supervisor maps its states
 * with memory_class_of_state_name() or its own switch, docs/design.md section 2).
 */

#include <stddef.h>
#include <stdint.h>

typedef enum MemoryClass {
        MEMORY_CLASS_NONE = 0,   /* not running (installed, starting, stopping, ...): no band */
        MEMORY_CLASS_FOREGROUND, /* band 0 */
        MEMORY_CLASS_VISIBLE,    /* band 100 */
        MEMORY_CLASS_SERVICE,    /* band 200..300, by recency among services */
        MEMORY_CLASS_BACKGROUND, /* band 700 */
        MEMORY_CLASS_CACHED,     /* band 900..999, by recency among cached apps */
        _MEMORY_CLASS_MAX,
} MemoryClass;

#define MEMORY_BAND_FOREGROUND  0
#define MEMORY_BAND_VISIBLE     100
#define MEMORY_BAND_SERVICE_MIN 200
#define MEMORY_BAND_SERVICE_MAX 300
#define MEMORY_BAND_BACKGROUND  700
#define MEMORY_BAND_CACHED_MIN  900
#define MEMORY_BAND_CACHED_MAX  999
/* No band: an app that is not running. memory_band() returns it, never a valid band. */
#define MEMORY_BAND_NONE -1
/* Bands up to this are ordered heaviest first (issue 13: "the heaviest for bands <= 200"). */
#define MEMORY_BAND_HEAVIEST_FIRST_MAX 200
/* cellad's own oom_score_adj (proc(5): OOM_SCORE_ADJ_MIN, never chosen by the OOM killer). */
#define MEMORY_OOM_SCORE_ADJ_DAEMON -1000

/*
 * The class of a state by its word in `cella ps` (instance_state_to_string():
 * "foreground", "visible", "service", "background", "cached"; "frozen" counts as
 * cached: frozen by the user, it holds memory and does no work). Any other word,
 * or NULL: MEMORY_CLASS_NONE.
 */
MemoryClass memory_class_of_state_name(const char *state);

/*
 * The band of an app of class cls. rank: the app's place among the running apps of
 * its class, most recently used first (0 = the most recent), which spreads services
 * over 200..300 and cached apps over 900..999 as Android spreads its cached apps
 * (ProcessList.CACHED_APP_MIN_ADJ + an LRU step); ranks past the range stay at its
 * top. Other classes ignore rank. Returns the band (0..999), or MEMORY_BAND_NONE
 * for MEMORY_CLASS_NONE or a value outside the enum.
 */
int memory_band(MemoryClass cls, unsigned rank);

/*
 * The oom_score_adj (proc(5), -1000..1000) an app's processes get for band: the
 * band itself (lmkd and ActivityManager write the adj as oom_score_adj unchanged),
 * and 1000, the most killable, for MEMORY_BAND_NONE or any value outside 0..999.
 */
int memory_band_oom_score_adj(int band);

/* One app as the ordering sees it: figures the caller reads and hands in. */
typedef struct MemoryCandidate {
        MemoryClass cls;
        uint64_t last_used_usec; /* CLOCK_REALTIME or monotonic µs of its last use (any one
                                    clock for all candidates); larger = more recent */
        uint64_t memory_bytes;   /* its memory use (memory.current, v1 usage_in_bytes) */
        int band;                /* out: memory_assign_bands() */
} MemoryCandidate;

/*
 * Sets c[i].band for n candidates: each class's candidates ranked by last_used_usec,
 * most recent first (a tie: the lower index first), then memory_band(cls, rank).
 * c may be NULL when n is 0.
 */
void memory_assign_bands(MemoryCandidate *c, size_t n);

/*
 * The order in which the memory manager acts on the candidates (after
 * memory_assign_bands()): into order[0..n), indices into c, least important first:
 * the highest band first; within one band the least recently used first, except in
 * bands <= MEMORY_BAND_HEAVIEST_FIRST_MAX, where the heaviest goes first (issue 13,
 * "Kill"); a tie: the lower index first. Candidates of MEMORY_CLASS_NONE (band
 * MEMORY_BAND_NONE) are left out. Returns the number of indices written (<= n).
 */
size_t memory_order(const MemoryCandidate *c, size_t n, size_t *order);
