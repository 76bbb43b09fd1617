/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * trim-probe: a native app for tests/integration/test_memory_actions.py. It registers
 * a trim handler with libcella (cella_on_trim(), docs/memory.md "Actions") and an
 * event callback, prints "ready", then for each trim the kernel asks for:
 *
 *   trim <level> <current_bytes> <limit_bytes>   from the trim handler (level 1..3)
 *   event <opcode>                               from the event callback, after it
 *
 * It never exits by itself; SIGTERM ends it with status 0.
 */
#include <cella.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
        (void)sig;
        stop = 1;
}

static void on_trim(Cella *c, CellaMemoryLevel level, uint64_t current, uint64_t limit, void *ud)
{
        (void)c;
        (void)ud;
        printf("trim %d %" PRIu64 " %" PRIu64 "\n", (int)level, current, limit);
}

static void on_event(Cella *c, const CellaEvent *ev, void *ud)
{
        (void)c;
        (void)ud;
        printf("event 0x%04x\n", ev->opcode);
}

int main(void)
{
        struct sigaction sa = {.sa_handler = on_term};
        Cella *c = NULL;
        int r;

        sigaction(SIGTERM, &sa, NULL);
        setvbuf(stdout, NULL, _IOLBF, 0);
        r = cella_open(&c);
        if (r < 0) {
                printf("open error %d\n", -r);
                return 1;
        }
        (void)cella_on_trim(c, on_trim, NULL);
        (void)cella_on_event(c, on_event, NULL);
        printf("ready\n");
        while (!stop) {
                r = cella_wait(c, 1000);
                if (r > 0)
                        r = cella_dispatch(c);
                if (r < 0 && r != -EINTR) {
                        printf("channel error %d\n", -r);
                        return 1;
                }
        }
        cella_close(c);
        return 0;
}
