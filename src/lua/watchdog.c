/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/time-util.h"
#include "lua/watchdog.h"

static void on_signal(int sig, siginfo_t *si, void *uc)
{
        CLuaWatchdog *w;
        int saved = errno;

        /* Only our timer's signals carry a pointer (SI_TIMER); a kill(2) of the
         * same number from elsewhere is ignored. */
        if (si->si_code != SI_TIMER)
                return;
        w = si->si_value.sival_ptr;
        if (w && w->fn)
                w->fn(w->ud);
        errno = saved;
}

int clua_watchdog_init(CLuaWatchdog *w, void (*fn)(void *ud), void *ud)
{
        return clua_watchdog_init_clock(w, CLOCK_THREAD_CPUTIME_ID, fn, ud);
}

int clua_watchdog_init_clock(CLuaWatchdog *w, clockid_t clock, void (*fn)(void *ud), void *ud)
{
        static bool installed;
        struct sigevent sev = {};

        *w = (CLuaWatchdog){.fn = fn, .ud = ud};
        if (!installed) {
                struct sigaction sa = {.sa_sigaction = on_signal,
                                       .sa_flags = SA_SIGINFO | SA_RESTART};

                sigemptyset(&sa.sa_mask);
                if (sigaction(SIGRTMIN, &sa, NULL) < 0)
                        return -errno;
                installed = true;
        }
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = SIGRTMIN;
        sev.sigev_value.sival_ptr = w;
        sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
        if (timer_create(clock, &sev, &w->timer) < 0)
                return -errno;
        w->created = true;
        return 0;
}

int clua_watchdog_arm(CLuaWatchdog *w, uint64_t ns, uint64_t interval_ns)
{
        struct itimerspec its = {
                .it_value = {.tv_sec = (time_t)(ns / 1000000000u),
                             .tv_nsec = (long)(ns % 1000000000u)},
                .it_interval = {.tv_sec = (time_t)(interval_ns / 1000000000u),
                                .tv_nsec = (long)(interval_ns % 1000000000u)},
        };

        if (!w->created || ns == 0)
                return -EINVAL;
        if (timer_settime(w->timer, 0, &its, NULL) < 0)
                return -errno;
        return 0;
}

int clua_watchdog_disarm(CLuaWatchdog *w)
{
        struct itimerspec its = {};

        if (!w->created)
                return 0;
        if (timer_settime(w->timer, 0, &its, NULL) < 0)
                return -errno;
        return 0;
}

void clua_watchdog_done(CLuaWatchdog *w)
{
        if (w->created)
                timer_delete(w->timer);
        *w = (CLuaWatchdog){};
}

uint64_t clua_thread_cpu_ns(void)
{
        return now_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}
