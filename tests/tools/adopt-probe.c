/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * adopt-probe: an app for tests/integration/test_adopt.py. Run by cellad in a real
 * sandbox, it makes a synchronous kernel call (system.info) every PERIOD ms and
 * prints one line per call on stdout:
 *
 *   call <n> ok            the call was answered
 *   call <n> error <errno> it failed (libcella's negative errno, or the kernel's)
 *
 * so that a test can see the app's calls and output go on across a restart of
 * cellad. Each call has a deadline (cella_set_timeout, 10 s): a call the kernel
 * that crashed had read but not answered ends in ETIMEDOUT, printed, and the loop
 * goes on. It never exits by itself; SIGTERM ends it with status 0.
 *
 * Usage: adopt-probe [PERIOD_MS]   (default 20)
 */
#include <cella.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
        (void)sig;
        stop = 1;
}

int main(int argc, char **argv)
{
        struct sigaction sa = {.sa_handler = on_term};
        long period = argc > 1 ? strtol(argv[1], NULL, 10) : 20;
        struct timespec ts;
        Cella *c = NULL;
        int r;

        if (period <= 0 || period > 10000)
                period = 20;
        ts = (struct timespec){.tv_sec = period / 1000, .tv_nsec = (period % 1000) * 1000000L};
        sigaction(SIGTERM, &sa, NULL);
        setvbuf(stdout, NULL, _IOLBF, 0);
        r = cella_open(&c);
        if (r < 0) {
                printf("open error %d\n", -r);
                return 1;
        }
        (void)cella_set_timeout(c, 10000);
        for (unsigned long n = 1; !stop; n++) {
                CellaSystemInfo *info = NULL;

                r = cella_system_info(c, &info);
                if (r < 0)
                        printf("call %lu error %d\n", n, -r);
                else
                        printf("call %lu ok\n", n);
                cella_free(info);
                nanosleep(&ts, NULL);
        }
        cella_close(c);
        return 0;
}
