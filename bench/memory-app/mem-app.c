/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mem-app: the native app of bench/memory and tests/integration/test_memory_scenario.py
 * (docs/benchmarks.md "Memory pressure: bench/memory"). One binary, three roles, chosen
 * by its first argument; sizes in MiB, times in ms:
 *
 *   mem-app fg WS         the foreground app that measures its own stalls: it touches a
 *                         working set of WS MiB once, then every TICK_MS (2 ms) runs one
 *                         iteration: touches 64 pages of the working set, allocates 256 KiB
 *                         (mmap, each page written, munmap: as a UI thread's frame
 *                         buffers), waits for the next tick. The gap between the ends of
 *                         two iterations is 2 ms on an idle machine; above it the app
 *                         was stalled (memory reclaim, a refault, the CPU, the OOM
 *                         killer). Every REPORT_MS (500 ms) it prints
 *                           "fg <realtime ms> max <us> over16 <n> iters <n>"
 *                         (the worst gap of that period in microseconds, the period's
 *                         gaps over 16 ms: a missed frame at 60 Hz) and on SIGTERM
 *                           "fg worst <us> over16 <n> iters <n>" (the whole run's).
 *   mem-app hold MIB [FILE]
 *                         touches MIB MiB once, prints "held <MIB> <realtime ms>" and waits;
 *                         with FILE, maps it and reads every page of it every 100 ms (a
 *                         service working over its data files: page cache that reclaim can
 *                         take and the next pass faults back in).
 *   mem-app grow STEP PERIOD CAP [deaf]
 *                         a cache that grows: every PERIOD ms one more entry of STEP MiB
 *                         (written), up to CAP MiB; prints "grown <MiB> <realtime ms>" at
 *                         each 32 MiB. A trim (libcella's cella_on_trim(), docs/memory.md
 *                         "Trim") drops a share of the cache, as an app's own cache
 *                         eviction: a quarter at moderate, half at low, all at
 *                         critical, and prints "trim <level> dropped <MiB>"; the cache
 *                         then grows again. With "deaf" it keeps its cache on a trim
 *                         (prints "trim <level>" only), as an app without a handler.
 *
 * Every role handles trims (the others only print "trim <level>"). The app needs its
 * channel (fd 3) only for trims: without one (run outside cella) it runs all the same.
 * SIGTERM ends it with status 0. Bad arguments: a message on stderr, status 2.
 */
#include <cella.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB               (1024u * 1024u)
#define TICK_MS           2
#define REPORT_MS         500
#define FRAME_US          16000 /* one frame at 60 Hz: a gap above it is a visible stall */
#define FRAME_ALLOC       (256u * 1024u)
#define TOUCH_PER_ITER    64
#define MAX_CACHE_ENTRIES 4096

static volatile sig_atomic_t stop;
static volatile unsigned long sink;
static long page_size;

/* The cache of `grow`: entries of `step` bytes, mmap'd. */
static void *cache[MAX_CACHE_ENTRIES];
static size_t cache_len, cache_step;
static bool trim_deaf; /* grow ... deaf: a trim drops nothing */

static void on_term(int sig)
{
        (void)sig;
        stop = 1;
}

static uint64_t now_us(clockid_t clk)
{
        struct timespec ts;

        clock_gettime(clk, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Maps size bytes and writes every page (so they are charged and resident, never the
 * shared zero page); NULL if the mapping failed. */
static char *map_touched(size_t size)
{
        char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        if (p == MAP_FAILED)
                return NULL;
        for (size_t i = 0; i < size; i += (size_t)page_size)
                p[i] = (char)(i / (size_t)page_size + 1);
        return p;
}

static void on_trim(Cella *c, CellaMemoryLevel level, uint64_t current, uint64_t limit, void *ud)
{
        size_t drop, dropped = 0;

        (void)c;
        (void)current;
        (void)limit;
        (void)ud;
        if (cache_step == 0 || trim_deaf) {
                printf("trim %d\n", (int)level);
                return;
        }
        drop = level >= CELLA_MEMORY_CRITICAL ? cache_len
               : level >= CELLA_MEMORY_MEDIUM ? cache_len / 2
                                              : cache_len / 4;
        while (dropped < drop && cache_len > 0) {
                munmap(cache[--cache_len], cache_step);
                dropped++;
        }
        printf("trim %d dropped %zu\n", (int)level, dropped * cache_step / MIB);
}

/* Waits up to timeout_ms for the channel (dispatching trims), or sleeps without one. */
static void wait_ms(Cella *c, int timeout_ms)
{
        if (c) {
                int r = cella_wait(c, timeout_ms);
                if (r > 0)
                        (void)cella_dispatch(c);
                return;
        }
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

static int parse_mib(const char *what, const char *s, unsigned long max, unsigned long *ret)
{
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v == 0 || v > max) {
                fprintf(stderr, "mem-app: %s: expected an integer from 1 to %lu, got '%s'\n", what,
                        max, s);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

static int run_fg(Cella *c, unsigned long ws_mib)
{
        size_t ws = ws_mib * MIB, pages = ws / (size_t)page_size, next = 0;
        char *set = map_touched(ws);
        uint64_t last, report_at, worst = 0, max = 0, over = 0, over_total = 0, iters = 0;

        if (!set) {
                printf("fg cannot map %lu MiB\n", ws_mib);
                return 1;
        }
        last = now_us(CLOCK_MONOTONIC);
        report_at = last + REPORT_MS * 1000u;
        while (!stop) {
                uint64_t t, gap;
                char *frame;

                for (int i = 0; i < TOUCH_PER_ITER; i++) {
                        set[next * (size_t)page_size]++;
                        next = (next + 1) % pages;
                }
                frame = map_touched(FRAME_ALLOC);
                if (frame)
                        munmap(frame, FRAME_ALLOC);
                wait_ms(c, TICK_MS);
                t = now_us(CLOCK_MONOTONIC);
                gap = t - last;
                last = t;
                iters++;
                if (gap > max)
                        max = gap;
                if (gap > worst)
                        worst = gap;
                if (gap > FRAME_US) {
                        over++;
                        over_total++;
                }
                if (t >= report_at) {
                        printf("fg %" PRIu64 " max %" PRIu64 " over16 %" PRIu64 " iters %" PRIu64
                               "\n",
                               now_us(CLOCK_REALTIME) / 1000u, max, over, iters);
                        max = 0;
                        over = 0;
                        report_at = t + REPORT_MS * 1000u;
                }
        }
        printf("fg worst %" PRIu64 " over16 %" PRIu64 " iters %" PRIu64 "\n", worst, over_total,
               iters);
        return 0;
}

static int run_hold(Cella *c, unsigned long mib, const char *file)
{
        char *p = map_touched(mib * MIB);
        const volatile char *data = NULL;
        size_t size = 0;
        unsigned long sum = 0;

        if (!p) {
                printf("hold cannot map %lu MiB\n", mib);
                return 1;
        }
        if (file) {
                int fd = open(file, O_RDONLY | O_CLOEXEC);
                struct stat st;
                void *m = MAP_FAILED;

                if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
                        size = (size_t)st.st_size;
                        m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
                }
                if (fd >= 0)
                        close(fd);
                if (m == MAP_FAILED) {
                        printf("hold cannot map %s: %s\n", file, strerror(errno));
                        return 1;
                }
                data = m;
        }
        printf("held %lu %" PRIu64 "\n", mib, now_us(CLOCK_REALTIME) / 1000u);
        while (!stop) {
                for (size_t i = 0; data && i < size; i += (size_t)page_size)
                        sum += (unsigned char)data[i];
                wait_ms(c, data ? 100 : 1000);
        }
        sink = sum; /* the reads are not optimised away */
        return 0;
}

static int run_grow(Cella *c, unsigned long step_mib, unsigned long period_ms,
                    unsigned long cap_mib)
{
        size_t max_entries = cap_mib / step_mib, reported = 0;

        cache_step = step_mib * MIB;
        if (max_entries > MAX_CACHE_ENTRIES)
                max_entries = MAX_CACHE_ENTRIES;
        while (!stop) {
                if (cache_len < max_entries) {
                        char *p = map_touched(cache_step);
                        if (p)
                                cache[cache_len++] = p;
                        size_t mib = cache_len * step_mib;
                        if (mib / 32 != reported / 32) {
                                printf("grown %zu %" PRIu64 "\n", mib,
                                       now_us(CLOCK_REALTIME) / 1000u);
                        }
                        reported = mib;
                }
                wait_ms(c, (int)period_ms);
        }
        return 0;
}

int main(int argc, char **argv)
{
        struct sigaction sa = {.sa_handler = on_term};
        Cella *c = NULL;
        unsigned long a, b, d;

        sigaction(SIGTERM, &sa, NULL);
        setvbuf(stdout, NULL, _IOLBF, 0);
        page_size = sysconf(_SC_PAGESIZE);
        if (cella_open(&c) < 0)
                c = NULL;
        else
                (void)cella_on_trim(c, on_trim, NULL);
        if (argc == 3 && strcmp(argv[1], "fg") == 0) {
                if (parse_mib("fg WS", argv[2], 4096, &a) < 0)
                        return 2;
                return run_fg(c, a);
        }
        if ((argc == 3 || argc == 4) && strcmp(argv[1], "hold") == 0) {
                if (parse_mib("hold MIB", argv[2], 65536, &a) < 0)
                        return 2;
                return run_hold(c, a, argc == 4 ? argv[3] : NULL);
        }
        if ((argc == 5 || (argc == 6 && strcmp(argv[5], "deaf") == 0)) &&
            strcmp(argv[1], "grow") == 0) {
                trim_deaf = argc == 6;
                if (parse_mib("grow STEP", argv[2], 1024, &a) < 0 ||
                    parse_mib("grow PERIOD", argv[3], 60000, &b) < 0 ||
                    parse_mib("grow CAP", argv[4], 65536, &d) < 0)
                        return 2;
                return run_grow(c, a, b, d);
        }
        fprintf(stderr,
                "usage: mem-app fg WS_MIB | hold MIB [FILE] | grow STEP_MIB PERIOD_MS CAP_MIB "
                "[deaf]\n");
        return 2;
}
