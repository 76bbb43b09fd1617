/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Memory pressure triggers (docs/memory.md "Signals and levels") for an event loop:
 * each is one fd to watch and a function to call when it is readable; nothing here
 * loops, sleeps or arms a timer.
 *
 * PSI (kernel Documentation/accounting/psi.rst, "Monitoring for pressure
 * thresholds"): "<some|full> <stall us> <window us>" written to a cgroup's
 * memory.pressure (in the cgroup2 hierarchy, hybrid hosts too) or to
 * /proc/pressure/memory; the fd then polls POLLPRI when the tasks stalled for
 * stall us within a window, at most once per window. The kernel takes windows of
 * 500 ms to 10 s (kernel/sched/psi.c WINDOW_MIN_US, WINDOW_MAX_US); an unprivileged
 * writer, or a kernel built so, may be refused short windows (EINVAL; psi.rst: "an
 * unprivileged user may only use windows that are multiples of 2 s"): then the
 * trigger is armed again over the fallback window, the stall scaled to it, and
 * reports itself degraded (pressure_trigger_degraded(): cellad's STATUS and `cella
 * inspect` say so).
 *
 * v1 (no PSI: a kernel without CONFIG_PSI or booted psi=0): the memory controller's
 * memory.pressure_level through cgroup.event_control and an eventfd
 * (Documentation/admin-guide/cgroup-v1/memory.rst section 11); the fd polls POLLIN.
 *
 * In cellad: uv_poll_start(fd, pressure_trigger_events(t) == POLLPRI ?
 * UV_PRIORITIZED : UV_READABLE), and pressure_trigger_handle() in the callback.
 */

#include <stdbool.h>
#include <stdint.h>

typedef enum PressureKind {
        PRESSURE_SOME, /* some task stalled on memory */
        PRESSURE_FULL, /* every non-idle task stalled at once */
} PressureKind;

/* The v1 memory.pressure_level levels (vmpressure, mm/vmpressure.c). */
typedef enum PressureV1Level {
        PRESSURE_V1_LOW,
        PRESSURE_V1_MEDIUM,
        PRESSURE_V1_CRITICAL,
} PressureV1Level;

typedef struct PressureTrigger PressureTrigger;

/*
 * Arms a PSI trigger on path (a memory.pressure file or /proc/pressure/memory):
 * kind, stall_us of stall (microseconds, > 0) in every window_us (microseconds,
 * 500000..10000000, > stall_us). If the kernel refuses window_us with EINVAL and
 * fallback_window_us is not 0 and differs, arms stall_us * fallback_window_us /
 * window_us over fallback_window_us instead and marks the trigger degraded.
 * Returns 0 and *ret, -EINVAL (bad figures, or EINVAL for both windows),
 * -EOPNOTSUPP (the file exists but PSI is off: psi=0), -ENOENT (no such file: no
 * PSI here, use pressure_trigger_new_v1()), -ENOMEM, or -errno of open/write.
 */
int pressure_trigger_new(const char *path, PressureKind kind, uint32_t stall_us, uint32_t window_us,
                         uint32_t fallback_window_us, PressureTrigger **ret);

/*
 * Arms a v1 memory.pressure_level notification on memcg_dir (a v1 memory cgroup
 * directory) at level, in the default mode (the level and those above it wake the
 * fd). Returns 0 and *ret, -ENOENT (no memory.pressure_level: not a v1 memory
 * cgroup), -ENOMEM, or -errno of eventfd/open/write.
 */
int pressure_trigger_new_v1(const char *memcg_dir, PressureV1Level level, PressureTrigger **ret);

/*
 * The trigger the host allows for one target, PSI first: pressure_trigger_new() on
 * psi_path (its memory.pressure, or /proc/pressure/memory; NULL: none), and only
 * where PSI is missing there (-ENOENT: no such file, -EOPNOTSUPP: psi=0) and
 * v1_memcg_dir is not NULL, pressure_trigger_new_v1() at v1_level on it. Returns
 * what the call that decided returned, and *ret.
 */
int pressure_trigger_new_best(const char *psi_path, const char *v1_memcg_dir, PressureKind kind,
                              uint32_t stall_us, uint32_t window_us, uint32_t fallback_window_us,
                              PressureV1Level v1_level, PressureTrigger **ret);

/* The fd to watch; belongs to t. */
int pressure_trigger_fd(const PressureTrigger *t);

/* The poll(2) event that means "fired": POLLPRI (PSI) or POLLIN (v1 eventfd). */
short pressure_trigger_events(const PressureTrigger *t);

/*
 * The window the kernel accepted, microseconds (PSI), or 0 (v1: no window). After
 * a trigger fires the sampler polls for one such window (sampler.h).
 */
uint32_t pressure_trigger_window_us(const PressureTrigger *t);

/* The stall the kernel accepted, microseconds (the asked one, scaled when degraded). */
uint32_t pressure_trigger_stall_us(const PressureTrigger *t);

/* True if the asked window was refused and the fallback one is armed. */
bool pressure_trigger_degraded(const PressureTrigger *t);

/* The trigger as written ("some 100000 2000000"), or "v1 medium"; belongs to t. */
const char *pressure_trigger_describe(const PressureTrigger *t);

/*
 * Call when the fd is readable with the poll(2) revents seen (0 to poll it now,
 * without blocking). Returns 1 if the trigger fired, 0 if not (a spurious wake-up),
 * -ENODEV if the target went away (PSI reports POLLERR when its cgroup is removed;
 * close the trigger), or -errno of reading the eventfd.
 */
int pressure_trigger_handle(PressureTrigger *t, short revents);

/* Disarms (closes the fd) and frees. Takes NULL; returns NULL. */
PressureTrigger *pressure_trigger_free(PressureTrigger *t);
