/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * clock: a cella service that publishes the time on the bus.
 *
 *   clock [PERIOD_MS]      (default 200; 1..3600000)
 *
 * Every PERIOD_MS a kernel timer fires (right "timer") and the clock publishes
 * topic "org.cella.example.clock.tick" (right "bus.publish:org.cella.example.clock.*": a
 * topic in its own id's namespace; the manifest exports it, so other apps may
 * subscribe to it with a normal right: docs/capabilities.md), content type
 * "application/json", body {"seq":N,"unix_ms":T}: N counts ticks from 1, T is the
 * wall clock in milliseconds since 1970-01-01 UTC. It runs until SIGTERM or SIGINT,
 * then exits 0.
 *
 * Build outside the tree: cc clock.c -o clock $(pkg-config --cflags --libs cella)
 */
#include <cella.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define PERIOD_MS_DEFAULT 200
#define PERIOD_MS_MAX     3600000 /* an hour */

typedef struct Clock {
        uint64_t timer_id;
        uint64_t seq; /* ticks published */
        int error;    /* first error that ends the service, or 0 */
        bool revoked; /* the user took a right we need: stop, cleanly */
} Clock;

static int64_t unix_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Called from cella_dispatch() for every event the kernel sends. */
static void on_event(Cella *c, const CellaEvent *ev, void *userdata)
{
        Clock *clk = userdata;
        char body[64];
        int n, r;

        /* The user revoked a right: the kernel has already closed what depended on
         * it (our timer, for "timer"). A service that cannot do its job says so
         * and stops; it does not retry what it may no longer do. */
        if (ev->opcode == CELLA_EVENT_PERM_REVOKED && ev->decoded) {
                printf("clock: the right \"%s\" was revoked; stopping\n",
                       ev->perm_revoked.permission);
                clk->revoked = true;
                return;
        }
        if (ev->opcode != CELLA_EVENT_TIMER_FIRED || !ev->decoded ||
            ev->timer.timer_id != clk->timer_id)
                return;

        /* One tick per event, even if the timer fired more than once meanwhile
         * (expirations > 1): a late tick carries the time it is sent at. */
        clk->seq++;
        n = snprintf(body, sizeof body, "{\"seq\":%" PRIu64 ",\"unix_ms\":%" PRId64 "}", clk->seq,
                     unix_ms());
        r = cella_bus_publish(c, "org.cella.example.clock.tick", body, (size_t)n,
                              "application/json");
        if (r == -EAGAIN) /* rate-limited: skip this tick, the next one will do */
                return;
        if (r < 0) {
                fprintf(stderr, "clock: publishing org.cella.example.clock.tick failed: %s\n",
                        strerror(-r));
                clk->error = r;
        }
}

static int parse_period(const char *s, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || end == s || *end != 0 || s[0] == '-' || v < 1 || v > PERIOD_MS_MAX)
                return -EINVAL;
        *ret = v;
        return 0;
}

int main(int argc, char **argv)
{
        uint64_t period_ms = PERIOD_MS_DEFAULT;
        Clock clk = {0};
        Cella *c = NULL;
        sigset_t mask;
        int sfd, r;

        if (argc > 2 || (argc == 2 && parse_period(argv[1], &period_ms) < 0)) {
                fprintf(stderr, "usage: clock [PERIOD_MS]   (1..%d, default %d)\n", PERIOD_MS_MAX,
                        PERIOD_MS_DEFAULT);
                return 2;
        }

        /* SIGTERM and SIGINT arrive through a signalfd, polled with the channel:
         * no race between checking a flag and going to sleep. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sfd < 0) {
                perror("clock: signalfd");
                return 1;
        }

        r = cella_open(&c);
        if (r < 0) {
                fprintf(stderr, "clock: no cella channel: %s (run me with cella)\n", strerror(-r));
                return 1;
        }
        cella_on_event(c, on_event, &clk);
        r = cella_timer_create(c, period_ms, period_ms, 0, &clk.timer_id);
        if (r < 0) {
                fprintf(stderr, "clock: cannot create a timer: %s\n", strerror(-r));
                cella_close(c);
                return 1;
        }
        printf("clock: publishing org.cella.example.clock.tick every %" PRIu64 " ms\n", period_ms);
        fflush(stdout);

        while (clk.error == 0 && !clk.revoked) {
                struct pollfd p[2] = {{.fd = cella_fd(c), .events = POLLIN},
                                      {.fd = sfd, .events = POLLIN}};

                /* Handle everything ready first: a synchronous call may have queued
                 * frames, which do not make the fd readable again. */
                while ((r = cella_dispatch(c)) > 0 && clk.error == 0 && !clk.revoked)
                        ;
                if (r < 0) {
                        fprintf(stderr, "clock: lost the channel to cella: %s\n", strerror(-r));
                        clk.error = r;
                        break;
                }
                if (clk.error != 0 || clk.revoked)
                        break;
                if (poll(p, 2, -1) < 0 && errno != EINTR) {
                        perror("clock: poll");
                        clk.error = -errno;
                        break;
                }
                if (p[1].revents & POLLIN)
                        break; /* SIGTERM or SIGINT */
        }

        if (clk.error == 0)
                printf("clock: stopped after %" PRIu64 " ticks\n", clk.seq);
        cella_close(c);
        close(sfd);
        return clk.error == 0 ? 0 : 1;
}
