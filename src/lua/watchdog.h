/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The CPU watchdog of a cella-lua state: a POSIX timer on the calling thread's
 * CPU clock (CLOCK_THREAD_CPUTIME_ID) that signals that same thread
 * (SIGEV_THREAD_ID) when a budget ends. The signal handler only calls fn, which
 * may set flags and arm a hook with lua_sethook (signal-safe, Lua 5.4 manual
 * section 4.7). Nothing runs while no budget ends: no permanent count hook.
 */

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef struct CLuaWatchdog {
        timer_t timer;
        bool created;
        void (*fn)(void *ud); /* called from the signal handler */
        void *ud;
} CLuaWatchdog;

/*
 * Creates the timer for the calling thread, and installs the process's handler of
 * CLUA_WATCHDOG_SIGNAL (SIGRTMIN) once. fn(ud) runs in the signal handler of
 * that thread when an armed budget ends: it must be async-signal-safe.
 * Returns 0 or the negative errno of sigaction/timer_create.
 */
int clua_watchdog_init(CLuaWatchdog *w, void (*fn)(void *ud), void *ud);

/* As clua_watchdog_init, on clock (CLOCK_MONOTONIC: a wall-clock timer of the
 * calling thread, signalled the same way). */
int clua_watchdog_init_clock(CLuaWatchdog *w, clockid_t clock, void (*fn)(void *ud), void *ud);

/*
 * Arms w to fire after ns nanoseconds (> 0) of the calling thread's CPU time,
 * then every interval_ns after that (0: once); replaces any earlier arming.
 * Returns 0 or -EINVAL (ns == 0, or w not initialized) or the negative errno of
 * timer_settime.
 */
int clua_watchdog_arm(CLuaWatchdog *w, uint64_t ns, uint64_t interval_ns);

/* Disarms w (a no-op when unarmed). Returns 0 or a negative errno. */
int clua_watchdog_disarm(CLuaWatchdog *w);

/* Deletes the timer; w may be re-initialized. Safe on a zeroed w. */
void clua_watchdog_done(CLuaWatchdog *w);

/* The calling thread's CPU time in nanoseconds (CLOCK_THREAD_CPUTIME_ID). */
uint64_t clua_thread_cpu_ns(void);
