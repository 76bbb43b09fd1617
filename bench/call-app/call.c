/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * call-app: the in-sandbox half of bench/call. Run under `cella run`, so that every
 * call goes through the real sandbox, channel and broker; bench/call starts it and
 * prints its figures. Measures, in one run:
 *
 *   raw    a SOCK_SEQPACKET socketpair ping-pong between two processes of this
 *          sandbox, with the frame sizes of a no-op call (24-byte request, the
 *          size of a system.time reply back): the physical floor of a round trip
 *   call   cella_system_time() round trips (a no-op call), interleaved with raw in
 *          ROUNDS blocks so machine drift hits both alike
 *   async  system.time calls pipelined with cella_call_async(), ASYNC_WINDOW in flight
 *   open   cella_fs_open() of ROOT/FILE (O_RDONLY) and close of the passed fd, in
 *          bursts of OPEN_BURST that stay within the broker's rate limit
 *   bus    bus.publish to a topic the app itself subscribes to, pipelined; counts
 *          the deliveries (events) that come back
 *   batch  the same with cella_bus_publish_batch_async(): --bus-batch-size messages
 *          per call (BUS_BATCH), --bus-window calls in flight (BUS_BATCH_WINDOW);
 *          deliveries counted as they come back (batched into BusMessagesEvent frames
 *          by the kernel, split by libcella)
 *
 * Output: one line "BENCH {json}" on stdout (latencies in ns, rates per second).
 *
 *   call [--calls N] [--async N] [--opens N] [--bus N] [--bus-batch N]
 *        [--bus-batch-size K] [--bus-window W] [--root NAME] [--file PATH] [--cpus A,B]
 *
 * --cpus A,B pins this process (the caller, the ping side) to CPU A and the pong
 * process to CPU B; bench/call starts cella (the broker) pinned to B. Both round
 * trips then cross the same two CPUs: left to itself the scheduler puts the two
 * ends on one CPU in one run and on two in the next, and the floor moves by 4x.
 */
#include <cella.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cella.pb-c.h"

#define ROUNDS           10
#define ASYNC_WINDOW     60 /* below CELLA_MAX_PENDING (64) */
#define COUNT_MAX        10000000
#define BUS_TOPIC        "org.cella.bench.call.bus" /* in its own namespace */
#define BUS_PAYLOAD      64                         /* bytes per bus message */
#define BUS_BATCH        512 /* messages per bus.publish_batch call (default) */
#define BUS_BATCH_WINDOW 8   /* batch calls in flight (default) */
#define WARMUP           1000
#define OPEN_BURST       100         /* fs.open calls back to back */
#define OPEN_PAUSE_US    (60 * 1000) /* then a pause: 120 tokens at 2000/s */

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

/* p-th percentile (0..100) of n samples, sorting them. */
static uint64_t percentile(uint64_t *v, size_t n, unsigned p)
{
        size_t i;

        if (n == 0)
                return 0;
        qsort(v, n, sizeof *v, cmp_u64);
        i = n * p / 100;
        return v[i < n ? i : n - 1];
}

static void die(const char *what, int r);

/* Pins the calling process to one CPU. */
static void pin(int cpu)
{
        cpu_set_t set;

        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0)
                die("sched_setaffinity", -errno);
}

static void die(const char *what, int r)
{
        fprintf(stderr, "call-app: %s: %s\n", what, strerror(r < 0 ? -r : r));
        exit(1);
}

/* ---- raw ping-pong ---------------------------------------------------------- */

/* The echo process: answers every datagram with a pong of pong_len bytes. */
static void pong_loop(int fd, size_t pong_len)
{
        static char buf[CELLA_BODY_MAX + 24], pong[CELLA_BODY_MAX + 24];

        for (;;) {
                ssize_t k = recv(fd, buf, sizeof buf, 0);

                if (k <= 0)
                        _exit(0);
                if (send(fd, pong, pong_len, MSG_NOSIGNAL) < 0)
                        _exit(1);
        }
}

static void raw_round(int fd, uint64_t *lat, size_t n, size_t ping_len)
{
        char ping[24] = {0}, buf[CELLA_BODY_MAX + 24];

        for (size_t i = 0; i < n; i++) {
                uint64_t t = now_ns();

                if (send(fd, ping, ping_len, MSG_NOSIGNAL) < 0 || recv(fd, buf, sizeof buf, 0) <= 0)
                        die("raw ping-pong", -errno);
                if (lat)
                        lat[i] = now_ns() - t;
        }
}

static void call_round(Cella *c, uint64_t *lat, size_t n, uint64_t *rate_limited)
{
        CellaTime ct;

        for (size_t i = 0; i < n; i++) {
                uint64_t t = now_ns();
                int r = cella_system_time(c, &ct);

                if (r == -EAGAIN) {
                        (*rate_limited)++;
                        i--;
                        continue;
                }
                if (r < 0)
                        die("system.time", r);
                if (lat)
                        lat[i] = now_ns() - t;
        }
}

/* ---- pipelined calls and bus --------------------------------------------------- */

typedef struct Pipe {
        unsigned in_flight;
        uint64_t replies, errors, rate_limited, deliveries;
        uint64_t sent; /* bus_batched(): messages published */
} Pipe;

static void pipe_reply(Cella *c, CellaReply *reply, void *userdata)
{
        Pipe *p = userdata;

        p->in_flight--;
        p->replies++;
        if (reply->error == -EAGAIN)
                p->rate_limited++;
        else if (reply->error < 0)
                p->errors++;
}

static void pipe_event(Cella *c, const CellaEvent *ev, void *userdata)
{
        Pipe *p = userdata;

        if (ev->opcode == CELLA_EVENT_BUS_MESSAGE)
                p->deliveries++;
}

/* Sends n requests (opcode, body) with ASYNC_WINDOW in flight; returns the elapsed ns
 * from the first send to the last reply. */
static uint64_t pipeline(Cella *c, Pipe *p, uint16_t opcode, const void *body, size_t len,
                         uint64_t n)
{
        uint64_t sent = 0, t = now_ns();
        int r;

        while (p->replies < n) {
                while (p->in_flight < ASYNC_WINDOW && sent < n) {
                        r = cella_call_async(c, opcode, body, len, NULL, 0, pipe_reply, p, NULL);
                        if (r == -EAGAIN) /* the socket is full: read replies first */
                                break;
                        if (r < 0)
                                die("cella_call_async", r);
                        p->in_flight++;
                        sent++;
                }
                r = cella_wait(c, 5000);
                if (r == 0)
                        die("pipelined calls", -ETIMEDOUT);
                if (r < 0 && r != -EINTR)
                        die("cella_wait", r);
                while ((r = cella_dispatch(c)) > 0)
                        ;
                if (r < 0)
                        die("cella_dispatch", r);
        }
        return now_ns() - t;
}

/* Publishes n messages to BUS_TOPIC (which we subscribe to) in batches of size (at
 * most CELLA_BUS_BATCH_MAX), window calls in flight, and waits for them to come back.
 * Returns the ns from the first send to the last delivery (or to a 1 s silence, if
 * some are lost). */
static uint64_t bus_batched(Cella *c, Pipe *p, uint64_t n, unsigned size, unsigned window)
{
        static uint8_t payload[BUS_PAYLOAD];
        static CellaBusMessage msgs[CELLA_BUS_BATCH_MAX];
        uint64_t sent = 0, calls = 0, t = now_ns(), last = t;
        int r;

        for (unsigned i = 0; i < size; i++)
                msgs[i] = (CellaBusMessage){.topic = BUS_TOPIC,
                                            .data = payload,
                                            .len = sizeof payload,
                                            .content_type = "application/octet-stream"};
        while (p->replies < calls || sent < n || p->deliveries < n) {
                while (p->in_flight < window && sent < n) {
                        size_t k = n - sent < size ? (size_t)(n - sent) : size;

                        k = cella_bus_batch_fit(msgs, k); /* within the 64 KiB body */

                        r = cella_bus_publish_batch_async(c, msgs, k, pipe_reply, p, NULL);
                        if (r == -EAGAIN) /* the socket is full: read first */
                                break;
                        if (r < 0)
                                die("cella_bus_publish_batch_async", r);
                        p->in_flight++;
                        sent += k;
                        calls++;
                }
                r = cella_wait(c, 1000);
                if (r == 0) {
                        if (p->replies < calls)
                                die("bus.publish_batch", -ETIMEDOUT);
                        break; /* every reply is in; what has not come was dropped */
                }
                if (r < 0 && r != -EINTR)
                        die("cella_wait", r);
                while ((r = cella_dispatch(c)) > 0)
                        ;
                if (r < 0)
                        die("cella_dispatch", r);
                last = now_ns();
        }
        p->sent = sent;
        return last - t;
}

static uint64_t parse_count(const char *s)
{
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *end || v < 1 || v > COUNT_MAX) {
                fprintf(stderr, "call-app: expected a count 1..%d, got '%s'\n", COUNT_MAX, s);
                exit(2);
        }
        return v;
}

int main(int argc, char **argv)
{
        uint64_t n_calls = 100000, n_async = 200000, n_opens = 10000, n_bus = 100000;
        uint64_t n_bus_batch = 2000000, bus_batch_ns, batch_size = BUS_BATCH,
                 window = BUS_BATCH_WINDOW;
        const char *root = "documents", *file = "bench.txt";
        int cpu = -1, pong_cpu = -1;
        uint64_t *raw, *call, *open_lat, call_rate_limited = 0, open_rate_limited = 0;
        uint64_t async_ns, bus_ns, sub, t, per_round;
        size_t reply_len, bus_len;
        Pipe ap = {0}, bp = {0}, bb = {0};
        CellaReply *reply = NULL;
        Cella *c = NULL;
        int sv[2], r, status;
        uint8_t *bus_body;
        pid_t child;

        /* Options come in pairs: "--name value". */
        for (int i = 1; i < argc; i += 2) {
                const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

                if (!v) {
                        fprintf(stderr, "call-app: %s needs a value\n", a);
                        return 2;
                }
                if (!strcmp(a, "--calls"))
                        n_calls = parse_count(v);
                else if (!strcmp(a, "--async"))
                        n_async = parse_count(v);
                else if (!strcmp(a, "--opens"))
                        n_opens = parse_count(v);
                else if (!strcmp(a, "--bus"))
                        n_bus = parse_count(v);
                else if (!strcmp(a, "--bus-batch"))
                        n_bus_batch = parse_count(v);
                else if (!strcmp(a, "--bus-batch-size")) {
                        batch_size = parse_count(v);
                        if (batch_size > CELLA_BUS_BATCH_MAX) {
                                fprintf(stderr, "call-app: --bus-batch-size: 1..%u\n",
                                        CELLA_BUS_BATCH_MAX);
                                return 2;
                        }
                } else if (!strcmp(a, "--bus-window")) {
                        window = parse_count(v);
                        if (window > ASYNC_WINDOW) {
                                fprintf(stderr, "call-app: --bus-window: 1..%d\n", ASYNC_WINDOW);
                                return 2;
                        }
                } else if (!strcmp(a, "--root"))
                        root = v;
                else if (!strcmp(a, "--file"))
                        file = v;
                else if (!strcmp(a, "--cpus")) {
                        if (sscanf(v, "%d,%d", &cpu, &pong_cpu) != 2 || cpu < 0 ||
                            cpu >= CPU_SETSIZE || pong_cpu < 0 || pong_cpu >= CPU_SETSIZE) {
                                fprintf(stderr, "call-app: --cpus A,B: two CPU numbers\n");
                                return 2;
                        }
                } else {
                        fprintf(stderr, "call-app: unknown option %s\n", a);
                        return 2;
                }
        }
        n_calls -= n_calls % ROUNDS;
        if (n_calls == 0)
                n_calls = ROUNDS;
        per_round = n_calls / ROUNDS;

        if (cpu >= 0)
                pin(cpu);
        r = cella_open(&c);
        if (r < 0)
                die("cella_open (run me with cella run)", r);

        /* The size of a system.time reply frame, for the raw pong. */
        r = cella_call(c, CELLA_OP_SYSTEM_TIME, NULL, 0, NULL, 0, &reply);
        if (r < 0 || reply->error < 0)
                die("system.time", r < 0 ? r : reply->error);
        reply_len = 24 + reply->body_len;
        cella_reply_free(reply);

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                die("socketpair", -errno);
        child = fork();
        if (child < 0)
                die("fork", -errno);
        if (child == 0) {
                if (cpu >= 0)
                        pin(pong_cpu);
                close(sv[0]);
                pong_loop(sv[1], reply_len);
        }
        close(sv[1]);

        raw = calloc(n_calls, sizeof *raw);
        call = calloc(n_calls, sizeof *call);
        open_lat = calloc(n_opens, sizeof *open_lat);
        if (!raw || !call || !open_lat)
                die("calloc", -ENOMEM);

        /* (a) and (b), interleaved. */
        raw_round(sv[0], NULL, WARMUP, 24);
        call_round(c, NULL, WARMUP, &call_rate_limited);
        for (unsigned k = 0; k < ROUNDS; k++) {
                raw_round(sv[0], raw + k * per_round, per_round, 24);
                call_round(c, call + k * per_round, per_round, &call_rate_limited);
        }
        close(sv[0]);
        waitpid(child, &status, 0);

        /* (c) */
        async_ns = pipeline(c, &ap, CELLA_OP_SYSTEM_TIME, NULL, 0, n_async);

        /* (d), in bursts that stay within the costly class's rate limit
         * (BROKER_BURST_COSTLY_DEFAULT 200, BROKER_RATE_COSTLY_DEFAULT 2000/s):
         * latency, not the limiter, is measured. */
        for (uint64_t i = 0; i < n_opens; i++) {
                int fd;

                if (i > 0 && i % OPEN_BURST == 0)
                        usleep(OPEN_PAUSE_US);
                t = now_ns();
                r = cella_fs_open(c, root, file, O_RDONLY, 0, &fd);
                if (r == -EAGAIN) {
                        open_rate_limited++;
                        usleep(1000);
                        i--;
                        continue;
                }
                if (r < 0)
                        die("fs.open (bench/call grants the root and creates the file)", r);
                close(fd);
                open_lat[i] = now_ns() - t;
        }

        /* (e) one-to-one through the broker: publish to our own subscription. */
        {
                Cella__V1__BusPublishRequest req = CELLA__V1__BUS_PUBLISH_REQUEST__INIT;
                static uint8_t payload[BUS_PAYLOAD];

                req.topic = (char *)BUS_TOPIC;
                req.data = (ProtobufCBinaryData){.len = sizeof payload, .data = payload};
                req.content_type = (char *)"application/octet-stream";
                bus_len = cella__v1__bus_publish_request__get_packed_size(&req);
                bus_body = malloc(bus_len);
                if (!bus_body)
                        die("malloc", -ENOMEM);
                cella__v1__bus_publish_request__pack(&req, bus_body);
        }
        r = cella_bus_subscribe(c, BUS_TOPIC, &sub);
        if (r < 0)
                die("bus.subscribe " BUS_TOPIC, r);
        cella_on_event(c, pipe_event, &bp);
        t = now_ns();
        pipeline(c, &bp, CELLA_OP_BUS_PUBLISH, bus_body, bus_len, n_bus);
        /* The last deliveries may trail the last reply. */
        while (bp.deliveries < n_bus && cella_wait(c, 200) > 0)
                while (cella_dispatch(c) > 0)
                        ;
        bus_ns = now_ns() - t;
        free(bus_body);

        /* (e) the same, batched. */
        cella_on_event(c, pipe_event, &bb);
        bus_batch_ns = bus_batched(c, &bb, n_bus_batch, (unsigned)batch_size, (unsigned)window);

        printf("BENCH "
               "{\"cpu\":%d,\"pong_cpu\":%d,\"ping_bytes\":24,\"pong_bytes\":%zu,\"calls\":%" PRIu64
               ",\"raw_p50_ns\":%" PRIu64 ",\"raw_p99_ns\":%" PRIu64 ",\"call_p50_ns\":%" PRIu64
               ",\"call_p99_ns\":%" PRIu64 ",\"call_rate_limited\":%" PRIu64
               ",\"async_calls\":%" PRIu64 ",\"async_ns\":%" PRIu64 ",\"async_errors\":%" PRIu64
               ",\"async_rate_limited\":%" PRIu64 ",\"opens\":%" PRIu64 ",\"open_p50_ns\":%" PRIu64
               ",\"open_p99_ns\":%" PRIu64 ",\"open_rate_limited\":%" PRIu64
               ",\"bus_sent\":%" PRIu64 ",\"bus_delivered\":%" PRIu64 ",\"bus_errors\":%" PRIu64
               ",\"bus_rate_limited\":%" PRIu64 ",\"bus_ns\":%" PRIu64 ",\"bus_batch\":%" PRIu64
               ",\"bus_window\":%" PRIu64 ",\"bus_batch_sent\":%" PRIu64
               ",\"bus_batch_delivered\":%" PRIu64 ",\"bus_batch_errors\":%" PRIu64
               ",\"bus_batch_rate_limited\":%" PRIu64 ",\"bus_batch_ns\":%" PRIu64 "}\n",
               cpu, pong_cpu, reply_len, n_calls, percentile(raw, n_calls, 50),
               percentile(raw, n_calls, 99), percentile(call, n_calls, 50),
               percentile(call, n_calls, 99), call_rate_limited, n_async, async_ns, ap.errors,
               ap.rate_limited, n_opens, percentile(open_lat, n_opens, 50),
               percentile(open_lat, n_opens, 99), open_rate_limited, n_bus, bp.deliveries,
               bp.errors, bp.rate_limited, bus_ns, batch_size, window, bb.sent, bb.deliveries,
               bb.errors, bb.rate_limited, bus_batch_ns);
        free(raw);
        free(call);
        free(open_lat);
        cella_close(c);
        return 0;
}
