/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The restart policy of `cella boot` (manifest "restart": no, on-failure, always)
 * with exponential backoff, as systemd's Restart= with RestartSec= and
 * RestartSteps=/RestartMaxDelaySec= (systemd 254): the delay doubles after each
 * restart from RESTART_DELAY_MIN up to RESTART_DELAY_MAX, and goes back to the
 * minimum once the app has stayed up RESTART_STABLE_NS. An app that keeps failing
 * is given up on after RESTART_BURST restarts within RESTART_INTERVAL_NS, as
 * systemd's StartLimitBurst=5 / StartLimitIntervalSec=10s.
 */

#include <stdbool.h>
#include <stdint.h>

#include "policy/manifest.h"
#include "sandbox/sandbox.h"

#define RESTART_DELAY_MIN   (100ull * 1000 * 1000) /* ns: 100 ms, systemd's RestartSec default */
#define RESTART_DELAY_MAX   (30ull * 1000 * 1000 * 1000) /* ns: 30 s */
#define RESTART_STABLE_NS   (10ull * 1000 * 1000 * 1000) /* ns: up this long resets the backoff */
#define RESTART_BURST       5
#define RESTART_INTERVAL_NS (10ull * 1000 * 1000 * 1000) /* ns */

typedef struct RestartState {
        uint64_t delay_ns;                 /* the next delay */
        uint64_t starts_ns[RESTART_BURST]; /* times of the last restarts, a ring */
        unsigned n_starts;
} RestartState;

typedef enum RestartDecision {
        RESTART_NO,      /* the policy says this exit is final */
        RESTART_LATER,   /* restart after *ret_delay_ns */
        RESTART_GIVE_UP, /* too many restarts too fast */
} RestartDecision;

/* True if the policy restarts after this exit: always; on-failure for a non-zero
 * status or a signal (the OOM killer's included), but not for a low-memory kill
 * (exit->low_memory: its kernel's memory manager ended it to free memory, as
 * `cella stop` would have; restarting it at once would take the memory back);
 * never for no. */
bool restart_wanted(ManifestRestart policy, const SandboxExit *exit);

/*
 * Why the app ended, as the restart record's "reason" (docs/memory.md, "Kill"):
 * "low-memory" (exit->low_memory), "oom" (its cgroup's OOM killer), "crash" (another
 * signal, or a non-zero status), "exit" (status 0). A static string.
 */
const char *restart_reason(const SandboxExit *exit);

/*
 * Decides what to do about an app that exited at now_ns after running since
 * started_ns (both CLOCK_MONOTONIC, ns). Updates st. Returns the decision; for
 * RESTART_LATER, *ret_delay_ns is how long to wait. A low-memory kill (restarted
 * only by "always") is not a crash: it neither counts toward RESTART_BURST nor
 * doubles the delay.
 */
RestartDecision restart_decide(RestartState *st, ManifestRestart policy, const SandboxExit *exit,
                               uint64_t started_ns, uint64_t now_ns, uint64_t *ret_delay_ns);
