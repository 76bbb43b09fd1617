/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * adopt-probe: an app for tests/integration/test_adopt.py. Run by cellad in a real
 * sandbox, it prints one line per thing it sees on stdout, so that a test can see
 * the app's calls, events and output go on across a restart of cellad.
 *
 * adopt-probe [PERIOD_MS]: a synchronous kernel call (system.info) every PERIOD ms
 * (default 20):
 *
 *   call <n> ok            the call was answered
 *   call <n> error <errno> it failed (libcella's negative errno, or the kernel's)
 *
 * Each call has a deadline (cella_set_timeout, 10 s). A call in flight when cellad
 * died fails with ECONNRESET (104) once the next cellad's event.kernel_restarted
 * arrives (docs/protocol.md, "When the kernel restarts").
 *
 * adopt-probe PERIOD_MS events ID: the broker's state by id, kept across a restart.
 * It makes a kernel timer (every PERIOD ms), subscribes to ID.tick, publishes on
 * ID.tick at each timer event, and keeps a bus.request to itself pending (it never
 * answers it), then prints
 *
 *   ready                  timer and subscription made (again, after a restart)
 *   timer <n>              a timer event
 *   bus <n>                a message of its subscription
 *   request error <errno>  its pending bus.request failed
 *   restarted <ms>         event.kernel_restarted (then it makes them all again)
 *   setup error <errno>    a call of the setup failed (it exits 1)
 *
 * It never exits by itself; SIGTERM ends it with status 0.
 */
#include <cella.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
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

typedef struct Probe {
        const char *id;
        char topic[300];
        long period;
        unsigned long timers, messages;
        bool restarted; /* set up again at the next turn of the loop */
} Probe;

static void on_request_reply(Cella *c, CellaReply *reply, void *userdata)
{
        (void)c;
        (void)userdata;
        printf("request error %d\n", reply->error ? -reply->error : 0);
}

/* The timer, the subscription and the pending request; 0 or -errno (printed). */
static int setup(Cella *c, Probe *p)
{
        uint64_t timer_id, sub_id;
        int r;

        r = cella_timer_create(c, (uint64_t)p->period, (uint64_t)p->period, 1, &timer_id);
        if (r >= 0)
                r = cella_bus_subscribe(c, p->topic, &sub_id);
        if (r >= 0)
                r = cella_bus_request_async(c, p->id, "hold", "", 0, NULL, 600000, on_request_reply,
                                            p, NULL);
        if (r < 0) {
                printf("setup error %d\n", -r);
                return r;
        }
        printf("ready\n");
        return 0;
}

static void on_event(Cella *c, const CellaEvent *ev, void *userdata)
{
        Probe *p = userdata;

        if (!ev->decoded)
                return;
        switch (ev->opcode) {
        case CELLA_EVENT_TIMER_FIRED:
                printf("timer %lu\n", ++p->timers);
                (void)cella_bus_publish(c, p->topic, "t", 1, NULL);
                break;
        case CELLA_EVENT_BUS_MESSAGE:
                /* Its own request to itself ("hold") is never answered. */
                if (ev->bus.subscription_id)
                        printf("bus %lu\n", ++p->messages);
                break;
        case CELLA_EVENT_KERNEL_RESTARTED:
                printf("restarted %" PRId64 "\n", ev->kernel_restarted.adopted_ms);
                p->restarted = true;
                break;
        }
}

static int run_events(Cella *c, long period, const char *id)
{
        Probe p = {.id = id, .period = period};

        snprintf(p.topic, sizeof p.topic, "%s.tick", id);
        (void)cella_on_event(c, on_event, &p);
        if (setup(c, &p) < 0)
                return 1;
        while (!stop) {
                int r = cella_wait(c, 100);

                if (r > 0)
                        r = cella_dispatch(c);
                if (r < 0 && r != -EINTR) {
                        printf("channel error %d\n", -r);
                        return 1;
                }
                if (p.restarted) {
                        p.restarted = false;
                        if (setup(c, &p) < 0)
                                return 1;
                }
        }
        return 0;
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
        if (argc > 3 && strcmp(argv[2], "events") == 0) {
                r = run_events(c, period, argv[3]);
                cella_close(c);
                return r;
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
