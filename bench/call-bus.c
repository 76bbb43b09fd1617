/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * call-bus: the in-process half of bench/call's bus figures. Drives the message
 * bus library (src/ipc/bus.c) directly, without channels: one publisher endpoint
 * and S subscriber endpoints on one exact topic, for each S given. Messages are
 * published in batches of BATCH, then every subscriber drains its queue (queues
 * hold BATCH, so nothing is dropped). The deliveries are counted and checked.
 *
 * Output: one line "BUS {json}" per S: published and delivered messages per second.
 *
 *   call-bus MESSAGES S...     e.g. call-bus 1000000 1 10 100
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ipc/bus.h"

#define BATCH       256u /* messages published between drains (the queue size) */
#define PAYLOAD     64u  /* bytes per message, as bench/call-app's bus test */
#define SUBS_MAX    1000u
#define MESSAGE_MAX 100000000ull

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Publishes n messages to s subscribers; prints the line. Returns 0 or -errno. */
static int run(uint64_t n, unsigned s)
{
        static const unsigned char payload[PAYLOAD];
        BusEndpoint *pub = NULL, **subs;
        uint64_t delivered = 0, published = 0, t;
        Bus *b = NULL;
        int r;

        subs = calloc(s, sizeof *subs);
        if (!subs)
                return -ENOMEM;
        r = bus_new(&b);
        if (r < 0)
                goto out;
        r = bus_endpoint_add(b, "org.bench.publisher", BATCH, &pub);
        for (unsigned i = 0; r >= 0 && i < s; i++) {
                char id[64];
                uint64_t sub;

                snprintf(id, sizeof id, "org.bench.sub%u", i);
                r = bus_endpoint_add(b, id, BATCH, &subs[i]);
                if (r >= 0)
                        r = bus_subscribe(b, subs[i], "bench.fanout", &sub);
        }
        if (r < 0)
                goto out;

        t = now_ns();
        while (published < n) {
                uint64_t k = n - published < BATCH ? n - published : BATCH;

                for (uint64_t j = 0; j < k; j++) {
                        r = bus_publish(b, pub, "bench.fanout", "application/octet-stream", payload,
                                        sizeof payload);
                        if (r != (int)s) {
                                r = r < 0 ? r : -EIO;
                                goto out;
                        }
                }
                published += k;
                for (unsigned i = 0; i < s; i++) {
                        BusMessage *m;

                        while ((m = bus_endpoint_pop(subs[i]))) {
                                delivered++;
                                bus_message_unref(m);
                        }
                }
        }
        t = now_ns() - t;
        if (delivered != n * s) {
                fprintf(stderr, "call-bus: %" PRIu64 " delivered, expected %" PRIu64 "\n",
                        delivered, n * s);
                r = -EIO;
                goto out;
        }
        printf("BUS {\"subscribers\":%u,\"published\":%" PRIu64 ",\"delivered\":%" PRIu64
               ",\"ns\":%" PRIu64 ",\"published_per_s\":%.0f,\"delivered_per_s\":%.0f}\n",
               s, published, delivered, t, published * 1e9 / (double)t,
               delivered * 1e9 / (double)t);
        r = 0;
out:
        for (unsigned i = 0; i < s; i++)
                bus_endpoint_remove(b, subs[i]);
        bus_endpoint_remove(b, pub);
        bus_free(b);
        free(subs);
        return r;
}

int main(int argc, char **argv)
{
        unsigned long long n;
        char *end;

        if (argc < 3) {
                fprintf(stderr, "usage: call-bus MESSAGES SUBSCRIBERS...\n");
                return 2;
        }
        errno = 0;
        n = strtoull(argv[1], &end, 10);
        if (errno || *end || n < 1 || n > MESSAGE_MAX) {
                fprintf(stderr, "call-bus: MESSAGES must be 1..%llu\n", MESSAGE_MAX);
                return 2;
        }
        for (int i = 2; i < argc; i++) {
                unsigned long s = strtoul(argv[i], &end, 10);
                int r;

                if (*end || s < 1 || s > SUBS_MAX) {
                        fprintf(stderr, "call-bus: SUBSCRIBERS must be 1..%u\n", SUBS_MAX);
                        return 2;
                }
                /* The same number of deliveries for every S: n/S messages each. */
                r = run(n / s ? n / s : 1, (unsigned)s);
                if (r < 0) {
                        fprintf(stderr, "call-bus: %u subscribers: %s\n", (unsigned)s,
                                strerror(-r));
                        return 1;
                }
        }
        return 0;
}
