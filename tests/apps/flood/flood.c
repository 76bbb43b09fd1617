/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * flood: a hostile app for the broker's fairness tests (tests/integration/
 * test_broker_flood.py). It runs in a real sandbox under `cella boot` or `cella
 * run` and speaks the protocol through libcella, or raw on fd 3 where it must
 * not read. Modes:
 *
 *   flood usage FILES        fills /data with FILES files (once), then keeps 60
 *                            fs.usage calls in flight for ever; publishes
 *                            "org.test.flood.ready" every 100 ms and prints, every second,
 *                            "USAGE {answered, eagain, errors}"
 *   flood procs N            runs N processes and keeps 60 proc.list calls in
 *                            flight for ever, publishing and printing as usage
 *   flood latency SECS       waits for a "org.test.flood.ready" message, then makes
 *                            system.time calls one after the other for SECS
 *                            seconds and prints "LATENCY {calls, p50_us, p99_us,
 *                            max_us}"
 *   flood latency-for SECS   system.time calls one after the other for SECS
 *                            seconds, then the same LATENCY line
 *   flood noread             sends system.env requests raw on fd 3 and never reads
 *                            a reply; once the kernel has stopped reading it (its
 *                            sends block for 500 ms) prints "STALLED {sent}" and
 *                            waits for ever
 *   flood calls SECS KIND    pipelined calls for SECS seconds, as fast as the rate
 *                            limit lets: KIND "time" (system.time, allowed),
 *                            "refused" (fs.open of a root not granted), "distinct"
 *                            (fs.open of a new missing path each time, so no two
 *                            audit records are alike); prints "CALLS {answered,
 *                            allowed, eagain, other}"
 *
 * Output lines are flushed at once: the tests read them from the app's log.
 */
#include <cella.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cella.pb-c.h"

#define WINDOW 60 /* calls in flight, below CELLA_MAX_PENDING (64) */

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int r)
{
        fprintf(stderr, "flood: %s: %s\n", what, strerror(r < 0 ? -r : r));
        exit(1);
}

static Cella *open_channel(void)
{
        Cella *c;
        int r = cella_open(&c);

        if (r < 0)
                die("cella_open", r);
        return c;
}

/* ---- pipelined calls ------------------------------------------------------------ */

typedef struct Counts {
        uint64_t answered, allowed, eagain, other;
        unsigned in_flight;
} Counts;

static void on_reply(Cella *c, CellaReply *r, void *userdata)
{
        Counts *n = userdata;

        n->in_flight--;
        n->answered++;
        if (r->error == 0)
                n->allowed++;
        else if (r->error == -EAGAIN)
                n->eagain++;
        else
                n->other++;
}

/* Keeps the window full until end_ns with requests made by make(i, buf) (returns the
 * opcode, the body in buf and its length in *len). */
static void pump_calls(Cella *c, Counts *n, uint64_t end_ns,
                       uint16_t (*make)(uint64_t i, uint8_t *buf, size_t *len),
                       void (*tick)(Cella *c, Counts *n))
{
        static uint8_t body[4096];
        uint64_t i = 0, next_tick = now_ns();

        while (now_ns() < end_ns) {
                while (n->in_flight < WINDOW) {
                        size_t len = 0;
                        uint16_t op = make(i, body, &len);
                        int r = cella_call_async(c, op, body, len, NULL, 0, on_reply, n, NULL);

                        if (r == -EAGAIN || r == -EBUSY)
                                break;
                        if (r < 0)
                                die("cella_call_async", r);
                        n->in_flight++;
                        i++;
                }
                if (cella_wait(c, 100) < 0)
                        die("cella_wait", -EIO);
                while (cella_dispatch(c) > 0)
                        ;
                if (tick && now_ns() >= next_tick) {
                        tick(c, n);
                        next_tick = now_ns() + 100 * 1000000ull;
                }
        }
        while (n->in_flight > 0) {
                if (cella_wait(c, 1000) < 0)
                        die("cella_wait", -EIO);
                while (cella_dispatch(c) > 0)
                        ;
        }
}

static uint16_t make_usage(uint64_t i, uint8_t *buf, size_t *len)
{
        Cella__V1__FsUsageRequest q = CELLA__V1__FS_USAGE_REQUEST__INIT;

        *len = cella__v1__fs_usage_request__pack(&q, buf);
        return CELLA__V1__OPCODE__OPCODE_FS_USAGE;
}

static uint16_t make_time(uint64_t i, uint8_t *buf, size_t *len)
{
        Cella__V1__SystemTimeRequest q = CELLA__V1__SYSTEM_TIME_REQUEST__INIT;

        *len = cella__v1__system_time_request__pack(&q, buf);
        return CELLA__V1__OPCODE__OPCODE_SYSTEM_TIME;
}

static uint16_t make_open(const char *root, uint64_t i, uint8_t *buf, size_t *len)
{
        Cella__V1__FsOpenRequest q = CELLA__V1__FS_OPEN_REQUEST__INIT;
        char path[64];

        snprintf(path, sizeof path, "missing-%" PRIu64, i);
        q.root = (char *)root;
        q.path = path;
        q.flags = CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_READ;
        *len = cella__v1__fs_open_request__pack(&q, buf);
        return CELLA__V1__OPCODE__OPCODE_FS_OPEN;
}

static uint16_t make_refused(uint64_t i, uint8_t *buf, size_t *len)
{
        return make_open("secret", 0, buf, len); /* fs.read:secret is never granted */
}

static uint16_t make_distinct(uint64_t i, uint8_t *buf, size_t *len)
{
        return make_open("documents", i, buf, len);
}

static void usage_tick(Cella *c, Counts *n)
{
        static uint64_t last_print;
        int r = cella_bus_publish(c, "org.test.flood.ready", "1", 1, "text/plain");

        if (r < 0 && r != -EAGAIN)
                die("bus.publish", r);
        if (now_ns() - last_print >= 1000000000ull) {
                last_print = now_ns();
                printf("USAGE {\"answered\": %" PRIu64 ", \"eagain\": %" PRIu64
                       ", \"errors\": %" PRIu64 "}\n",
                       n->allowed, n->eagain, n->other);
                fflush(stdout);
        }
}

static int mode_usage(unsigned files)
{
        Cella *c = open_channel();
        Counts n = {};
        char name[64];

        if (mkdir("/data/flood", 0700) == 0)
                for (unsigned i = 0; i < files; i++) {
                        int fd;

                        snprintf(name, sizeof name, "/data/flood/f%05u", i);
                        fd = open(name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                        if (fd < 0)
                                die("create", errno);
                        close(fd);
                }
        else if (errno != EEXIST)
                die("mkdir /data/flood", errno);
        printf("FILLED %u\n", files);
        fflush(stdout);
        pump_calls(c, &n, UINT64_MAX, make_usage, usage_tick);
        return 0;
}

static uint16_t make_proc_list(uint64_t i, uint8_t *buf, size_t *len)
{
        Cella__V1__ProcListRequest q = CELLA__V1__PROC_LIST_REQUEST__INIT;

        *len = cella__v1__proc_list_request__pack(&q, buf);
        return CELLA__V1__OPCODE__OPCODE_PROC_LIST;
}

static int mode_procs(unsigned procs)
{
        Cella *c;

        /* procs - 1 children that wait, so that every proc.list reads procs entries. */
        for (unsigned i = 1; i < procs; i++) {
                pid_t pid = fork();

                if (pid < 0)
                        die("fork", errno);
                if (pid == 0) {
                        for (;;)
                                pause();
                }
        }
        c = open_channel();
        printf("FORKED %u\n", procs);
        fflush(stdout);
        pump_calls(c, &(Counts){}, UINT64_MAX, make_proc_list, usage_tick);
        return 0;
}

static int mode_calls(unsigned secs, const char *kind)
{
        Cella *c = open_channel();
        Counts n = {};
        uint16_t (*make)(uint64_t, uint8_t *, size_t *) =
                strcmp(kind, "time") == 0       ? make_time
                : strcmp(kind, "refused") == 0  ? make_refused
                : strcmp(kind, "distinct") == 0 ? make_distinct
                                                : NULL;

        if (!make)
                die("unknown kind", EINVAL);
        pump_calls(c, &n, now_ns() + secs * 1000000000ull, make, NULL);
        printf("CALLS {\"answered\": %" PRIu64 ", \"allowed\": %" PRIu64 ", \"eagain\": %" PRIu64
               ", \"other\": %" PRIu64 "}\n",
               n.answered, n.allowed, n.eagain, n.other);
        fflush(stdout);
        cella_close(c);
        return 0;
}

/* ---- latency -------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

static void print_latency(uint64_t *v, size_t n)
{
        qsort(v, n, sizeof *v, cmp_u64);
        printf("LATENCY {\"calls\": %zu, \"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f}\n",
               n, n ? v[n / 2] / 1000.0 : 0, n ? v[n * 99 / 100] / 1000.0 : 0,
               n ? v[n - 1] / 1000.0 : 0);
        fflush(stdout);
}

static void on_ready(Cella *c, const CellaEvent *ev, void *userdata)
{
        if (ev->opcode == CELLA_EVENT_BUS_MESSAGE && ev->decoded &&
            strcmp(ev->bus.topic, "org.test.flood.ready") == 0)
                *(bool *)userdata = true;
}

/* system.time calls one after the other for secs seconds, after a "org.test.flood.ready"
 * message if wait_ready. */
static int mode_latency(unsigned secs, bool wait_ready)
{
        Cella *c = open_channel();
        uint64_t *v, end;
        size_t cap = 4000000, n = 0;
        bool ready = !wait_ready;
        uint64_t sub = 0;
        int r;

        v = calloc(cap, sizeof *v);
        if (!v)
                die("calloc", ENOMEM);
        if (!ready) {
                r = cella_on_event(c, on_ready, &ready);
                if (r == 0)
                        r = cella_bus_subscribe(c, "org.test.flood.ready", &sub);
                if (r < 0)
                        die("bus.subscribe", r);
                end = now_ns() + 120 * 1000000000ull;
                while (!ready) {
                        if (now_ns() > end)
                                die("no flood.ready message in 120 s", ETIMEDOUT);
                        if (cella_wait(c, 1000) < 0)
                                die("cella_wait", -EIO);
                        while (cella_dispatch(c) > 0)
                                ;
                }
                cella_on_event(c, NULL, NULL);
        }
        end = now_ns() + secs * 1000000000ull;
        while (n < cap && now_ns() < end) {
                CellaTime t;
                uint64_t t0 = now_ns();

                r = cella_system_time(c, &t);
                if (r < 0)
                        die("system.time", r);
                v[n++] = now_ns() - t0;
        }
        print_latency(v, n);
        free(v);
        cella_close(c);
        return 0;
}

/* ---- a reader that never reads ---------------------------------------------------- */

static int mode_noread(void)
{
        uint8_t h[24] = {0};
        uint64_t sent = 0;

        for (;;) {
                struct pollfd p = {.fd = 3, .events = POLLOUT};
                uint64_t id = sent + 1;
                ssize_t k;

                /* The header of a system.env request with an empty body (channel.h). */
                h[0] = 0x01;
                h[1] = 0xCE;
                h[2] = CELLA__V1__OPCODE__OPCODE_SYSTEM_ENV & 0xff;
                h[3] = CELLA__V1__OPCODE__OPCODE_SYSTEM_ENV >> 8;
                for (int i = 0; i < 8; i++)
                        h[8 + i] = (uint8_t)(id >> (8 * i));
                k = send(3, h, sizeof h, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k == (ssize_t)sizeof h) {
                        sent++;
                        continue;
                }
                if (k < 0 && errno != EAGAIN)
                        die("send", errno);
                if (poll(&p, 1, 500) == 0)
                        break; /* the kernel has stopped reading us */
        }
        printf("STALLED {\"sent\": %" PRIu64 "}\n", sent);
        fflush(stdout);
        for (;;)
                pause();
        return 0;
}

/* Burns ms of CPU, then asks proc.list for its cgroup's CPU use: prints
 * "CPU <cpu_usage_ns> BURNT <ns of its own CPU clock>". */
static int mode_cpu(unsigned ms)
{
        Cella *c = open_channel();
        CellaProcList *pl = NULL;
        struct timespec t;
        uint64_t burnt = 0;
        int r;

        while (burnt < (uint64_t)ms * 1000000u) {
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
                burnt = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
        }
        r = cella_proc_list(c, &pl);
        if (r < 0)
                die("proc.list", r);
        printf("CPU %" PRIu64 " BURNT %" PRIu64 "\n", pl->cgroup.cpu_usage_ns, burnt);
        cella_free(pl);
        cella_close(c);
        return 0;
}

/* Touches mib MiB of its own memory, then reads memory.stats and proc.list: prints
 * "MEM <current> <limit> <anon> <peak> CG <memory_current> <memory_limit> <pids> <n>". */
static int mode_memory(unsigned mib)
{
        Cella *c = open_channel();
        CellaProcList *pl = NULL;
        CellaMemoryStats ms;
        size_t n = (size_t)mib << 20;
        volatile char *p = malloc(n);
        int r;

        if (!p)
                die("malloc", -ENOMEM);
        for (size_t i = 0; i < n; i += 4096)
                p[i] = 1;
        r = cella_memory_stats(c, &ms);
        if (r < 0)
                die("memory.stats", r);
        r = cella_proc_list(c, &pl);
        if (r < 0)
                die("proc.list", r);
        printf("MEM %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " CG %" PRIu64 " %" PRIu64
               " %" PRIu64 " %zu\n",
               ms.current_bytes, ms.limit_bytes, ms.anon_bytes, ms.peak_bytes,
               pl->cgroup.memory_current_bytes, pl->cgroup.memory_limit_bytes,
               pl->cgroup.pids_current, pl->n_processes);
        cella_free(pl);
        free((void *)p);
        cella_close(c);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc >= 3 && strcmp(argv[1], "usage") == 0)
                return mode_usage((unsigned)strtoul(argv[2], NULL, 10));
        if (argc >= 3 && strcmp(argv[1], "latency") == 0)
                return mode_latency((unsigned)strtoul(argv[2], NULL, 10), true);
        if (argc >= 3 && strcmp(argv[1], "latency-for") == 0)
                return mode_latency((unsigned)strtoul(argv[2], NULL, 10), false);
        if (argc >= 3 && strcmp(argv[1], "procs") == 0)
                return mode_procs((unsigned)strtoul(argv[2], NULL, 10));
        if (argc >= 3 && strcmp(argv[1], "cpu") == 0)
                return mode_cpu((unsigned)strtoul(argv[2], NULL, 10));
        if (argc >= 3 && strcmp(argv[1], "memory") == 0)
                return mode_memory((unsigned)strtoul(argv[2], NULL, 10));
        if (argc >= 2 && strcmp(argv[1], "noread") == 0)
                return mode_noread();
        if (argc >= 4 && strcmp(argv[1], "calls") == 0)
                return mode_calls((unsigned)strtoul(argv[2], NULL, 10), argv[3]);
        fprintf(stderr, "usage: flood usage FILES | procs N | cpu MS | memory MIB | latency SECS | "
                        "latency-for "
                        "SECS | noread | "
                        "calls SECS time|refused|distinct\n");
        return 2;
}
