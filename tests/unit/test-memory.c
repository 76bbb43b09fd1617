/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcella-memory (src/memory): levels, the sampler's cadence and the config parser
 * with injected clocks and readings; readings of fake cgroup v1 and v2 trees and of a
 * fake /proc; as root, readings and the budget on a real cgroup holding a real
 * process ("real"), and a PSI trigger really armed on this host ("psi"). The cases
 * that may be skipped run as meson tests of their own (tests/unit/meson.build).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "memory/budget.h"
#include "memory/config.h"
#include "memory/level.h"
#include "memory/pressure.h"
#include "memory/reading.h"
#include "memory/sampler.h"
#include "sandbox/cgroup.h"
#include "skip.h"

#ifndef CELLA_SOURCE_ROOT
#error "CELLA_SOURCE_ROOT must name the source tree (tests/unit/meson.build)"
#endif

#define MiB    (UINT64_C(1) << 20)
#define MS     UINT64_C(1000000)
#define SEC_US UINT64_C(1000000)

/* ---- levels ------------------------------------------------------------------------- */

static MemoryLevelInput psi_input(uint64_t some_ms, uint64_t full_ms)
{
        /* Stalls over a 1 s window; 100 % of a 1 GiB budget free. */
        return (MemoryLevelInput){.some_stall_us = some_ms * 1000,
                                  .full_stall_us = full_ms * 1000,
                                  .window_us = SEC_US,
                                  .available = 1024 * MiB,
                                  .total = 1024 * MiB};
}

static MemoryLevelInput free_input(uint64_t avail_mib)
{
        return (MemoryLevelInput){.available = avail_mib * MiB, .total = 1000 * MiB};
}

START_TEST(test_level_thresholds)
{
        MemoryLevelConfig c;
        MemoryLevelInput in;

        memory_level_config_default(&c);
        ck_assert_int_eq(memory_level_config_check(&c, NULL), 0);
        /* lmkd's psi_thresholds: some 70 ms, some 100 ms, full 70 ms per second. */
        in = psi_input(0, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_NORMAL);
        in = psi_input(69, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_NORMAL);
        in = psi_input(70, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_MODERATE);
        in = psi_input(100, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_LOW);
        in = psi_input(100, 70);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_CRITICAL);
        /* The same stall over a 2 s window (a degraded trigger) is half the rate. */
        in = psi_input(140, 0);
        in.window_us = 2 * SEC_US;
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_MODERATE);
        in.some_stall_us = 139 * 1000;
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_NORMAL);
        /* Free share of the budget: < 20 %, < 10 %, < 5 %. */
        in = free_input(200);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_NORMAL);
        in = free_input(199);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_MODERATE);
        in = free_input(99);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_LOW);
        in = free_input(49);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_CRITICAL);
        in = free_input(0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_CRITICAL);
        /* No budget and no PSI: nothing to go by, normal. */
        in = (MemoryLevelInput){0};
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_NORMAL);
        /* The higher of the two signals wins. */
        in = free_input(99);
        in.full_stall_us = 80 * 1000;
        in.window_us = SEC_US;
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_CRITICAL);
}
END_TEST

START_TEST(test_level_hysteresis)
{
        MemoryLevelConfig c;
        MemoryLevelInput in;

        memory_level_config_default(&c); /* hysteresis 20 % */
        /* Low entered at some 100 ms/s; it is held down to 80 ms/s, left below. */
        in = psi_input(100, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_LOW);
        in = psi_input(81, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_LOW), MEMORY_LEVEL_LOW);
        in = psi_input(80, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_LOW), MEMORY_LEVEL_LOW);
        in = psi_input(79, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_LOW), MEMORY_LEVEL_MODERATE);
        /* Moderate (70) is held down to 56 ms/s. */
        in = psi_input(56, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_MODERATE),
                         MEMORY_LEVEL_MODERATE);
        in = psi_input(55, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_MODERATE), MEMORY_LEVEL_NORMAL);
        /* Entering never uses the margin: 56 ms/s from normal is normal. */
        in = psi_input(56, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_NORMAL);
        /* Free memory: critical below 5 % is held until 6 % (5 * 1.2) is free. */
        in = free_input(59);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_CRITICAL),
                         MEMORY_LEVEL_CRITICAL);
        in = free_input(60);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_CRITICAL), MEMORY_LEVEL_LOW);
        /* A sudden drop to nothing goes straight to normal. */
        in = free_input(1000);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_CRITICAL), MEMORY_LEVEL_NORMAL);
        /* Without hysteresis the level follows the figures. */
        c.hysteresis_percent = 0;
        in = psi_input(99, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_LOW), MEMORY_LEVEL_MODERATE);
}
END_TEST

START_TEST(test_level_input_from_readings)
{
        MemoryReading a = {.has_psi = true,
                           .some_total_us = 1000000,
                           .full_total_us = 500000,
                           .available = 100 * MiB,
                           .limit = 1000 * MiB},
                      b = a;
        MemoryLevelConfig c;
        MemoryLevelInput in;

        memory_level_config_default(&c);
        /* 120 ms of some stall and 80 ms of full stall over 1 s: critical (full >= 70). */
        b.some_total_us += 120000;
        b.full_total_us += 80000;
        b.available = 500 * MiB;
        memory_level_input_from(&a, &b, SEC_US, 0, &in);
        ck_assert_uint_eq(in.some_stall_us, 120000);
        ck_assert_uint_eq(in.full_stall_us, 80000);
        ck_assert_uint_eq(in.window_us, SEC_US);
        ck_assert_uint_eq(in.total, 1000 * MiB); /* the target's limit */
        ck_assert_uint_eq(in.available, 500 * MiB);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_CRITICAL);
        /* The same stalls over 2 s: 60 ms/s some, 40 ms/s full: normal. */
        memory_level_input_from(&a, &b, 2 * SEC_US, 0, &in);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_NORMAL);
        /* The budget of the config wins over the limit: 100 MiB of 4 GiB is 2.4 %. */
        memory_level_input_from(&a, &a, SEC_US, 4096 * MiB, &in);
        ck_assert_uint_eq(in.total, 4096 * MiB);
        ck_assert_uint_eq(in.some_stall_us, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_CRITICAL);
        /* No PSI in one sample, or a counter gone backwards (a cgroup made anew):
         * no stall signal. */
        b.has_psi = false;
        memory_level_input_from(&a, &b, SEC_US, 0, &in);
        ck_assert_uint_eq(in.window_us, 0);
        b = a;
        b.some_total_us = 0;
        memory_level_input_from(&a, &b, SEC_US, 0, &in);
        ck_assert_uint_eq(in.window_us, 0);
        /* No limit and no budget: no free-memory signal. */
        b = a;
        b.limit = MEMORY_UNKNOWN;
        b.available = MEMORY_UNKNOWN;
        memory_level_input_from(&a, &b, SEC_US, 0, &in);
        ck_assert_uint_eq(in.total, 0);
        ck_assert_uint_eq(in.available, 0);
        ck_assert_int_eq(memory_level_compute(&c, &in, MEMORY_LEVEL_NORMAL), MEMORY_LEVEL_NORMAL);
}
END_TEST

START_TEST(test_level_names_and_check)
{
        MemoryLevelConfig c;
        MemoryLevel l;
        const char *why = NULL;

        for (l = MEMORY_LEVEL_NORMAL; l < _MEMORY_LEVEL_MAX; l++) {
                MemoryLevel back;

                ck_assert_int_eq(memory_level_from_string(memory_level_to_string(l), &back), 0);
                ck_assert_int_eq(back, l);
        }
        ck_assert_str_eq(memory_level_to_string(MEMORY_LEVEL_CRITICAL), "critical");
        ck_assert_int_eq(memory_level_from_string("severe", &l), -EINVAL);
        ck_assert_str_eq(memory_level_to_string((MemoryLevel)42), "?");

        memory_level_config_default(&c);
        c.level[MEMORY_LEVEL_LOW].free_percent = 30; /* looser than moderate's 20 */
        ck_assert_int_eq(memory_level_config_check(&c, &why), -EINVAL);
        ck_assert_ptr_nonnull(strstr(why, "free_percent"));
        memory_level_config_default(&c);
        c.level[MEMORY_LEVEL_LOW].some_ms = 50; /* below moderate's 70 */
        ck_assert_int_eq(memory_level_config_check(&c, &why), -EINVAL);
        ck_assert_ptr_nonnull(strstr(why, "some_ms"));
        memory_level_config_default(&c);
        c.level[MEMORY_LEVEL_CRITICAL].full_ms = 1001;
        ck_assert_int_eq(memory_level_config_check(&c, &why), -EINVAL);
}
END_TEST

/* ---- the sampler -------------------------------------------------------------------- */

/*
 * Drives the sampler over a simulated clock from a trigger at t0, as an event loop
 * would (a timer at each deadline), high deciding the pressure of each sample; returns
 * the number of samples until idle and the time idle came in *ret_end.
 */
static unsigned drive(MemorySampler *s, uint64_t t0, bool (*high)(uint64_t t), uint64_t *ret_end)
{
        uint64_t t = memory_sampler_triggered(s, t0);
        unsigned n = 0;

        ck_assert_uint_eq(t, t0);
        while (t) {
                uint64_t next;

                n++;
                next = memory_sampler_sampled(s, t, high(t));
                if (next)
                        ck_assert_uint_gt(next, t);
                *ret_end = t;
                t = next;
                ck_assert_uint_lt(n, 100000);
        }
        return n;
}

static bool always_high(uint64_t t)
{
        return true;
}
static bool never_high(uint64_t t)
{
        return false;
}
static uint64_t high_until;
static bool high_first(uint64_t t)
{
        return t < high_until;
}

START_TEST(test_sampler_cadence)
{
        MemorySamplerConfig c = {.window_ms = 1000, .short_ms = 10, .long_ms = 100};
        MemorySampler s;
        uint64_t end = 0, t0 = 5000 * MS;

        ck_assert_int_eq(memory_sampler_init(&s, &c), 0);
        /* Idle from the start: no deadline, no timer. */
        ck_assert(memory_sampler_idle(&s));
        ck_assert_uint_eq(memory_sampler_deadline(&s), 0);

        /* High all along: every 10 ms for one window (t0, t0+10, ..., t0+1000). */
        ck_assert_uint_eq(drive(&s, t0, always_high, &end), 101);
        ck_assert_uint_eq(end, t0 + 1000 * MS);
        ck_assert(memory_sampler_idle(&s));
        ck_assert_uint_eq(memory_sampler_deadline(&s), 0);

        /* Low all along: every 100 ms. */
        ck_assert_uint_eq(drive(&s, t0, never_high, &end), 11);
        ck_assert_uint_eq(end, t0 + 1000 * MS);

        /* High for the first 200 ms: 20 short intervals, then 8 long ones. */
        high_until = t0 + 200 * MS;
        ck_assert_uint_eq(drive(&s, t0, high_first, &end), 1 + 20 + 8);
        ck_assert_uint_eq(end, t0 + 1000 * MS);

        /* A 2 s window (a degraded trigger) samples for 2 s. */
        c.window_ms = 2000;
        ck_assert_int_eq(memory_sampler_init(&s, &c), 0);
        ck_assert_uint_eq(drive(&s, t0, never_high, &end), 21);
        ck_assert_uint_eq(end, t0 + 2000 * MS);
        ck_assert_uint_eq(s.triggers, 1);
        ck_assert_uint_eq(s.samples, 21);

        /* Bad figures. */
        c = (MemorySamplerConfig){.window_ms = 1000, .short_ms = 0, .long_ms = 100};
        ck_assert_int_eq(memory_sampler_init(&s, &c), -EINVAL);
        c = (MemorySamplerConfig){.window_ms = 1000, .short_ms = 200, .long_ms = 100};
        ck_assert_int_eq(memory_sampler_init(&s, &c), -EINVAL);
        c = (MemorySamplerConfig){.window_ms = 50, .short_ms = 10, .long_ms = 100};
        ck_assert_int_eq(memory_sampler_init(&s, &c), -EINVAL);
}
END_TEST

START_TEST(test_sampler_retrigger)
{
        MemorySamplerConfig c = {.window_ms = 1000, .short_ms = 10, .long_ms = 100};
        MemorySampler s;
        uint64_t t;

        ck_assert_int_eq(memory_sampler_init(&s, &c), 0);
        t = memory_sampler_triggered(&s, 0);
        ck_assert_uint_eq(t, 1); /* a clock at 0 still gets a deadline */
        t = memory_sampler_sampled(&s, 1, false);
        ck_assert_uint_eq(t, 1 + 100 * MS);
        /* At 900 ms a trigger fires again: the window runs to 1900 ms. */
        ck_assert_uint_eq(memory_sampler_triggered(&s, 900 * MS), 900 * MS);
        ck_assert_uint_eq(memory_sampler_sampled(&s, 900 * MS, false), 1000 * MS);
        ck_assert_uint_eq(memory_sampler_sampled(&s, 1500 * MS, true), 1510 * MS);
        ck_assert_uint_eq(memory_sampler_sampled(&s, 1899 * MS, true), 1909 * MS);
        ck_assert(!memory_sampler_idle(&s));
        /* The window over: idle, no deadline, whatever the pressure. */
        ck_assert_uint_eq(memory_sampler_sampled(&s, 1909 * MS, true), 0);
        ck_assert(memory_sampler_idle(&s));
        ck_assert_uint_eq(memory_sampler_deadline(&s), 0);
        ck_assert_uint_eq(s.triggers, 2);
}
END_TEST

/* ---- the config file ---------------------------------------------------------------- */

static int parse(const char *text, ManagerConfig *c, char **err)
{
        return manager_config_parse("/x/cellad.conf", text, strlen(text), c, err);
}

/* Asserts text is refused with a message holding want (and the file's name). */
static void refused(const char *text, const char *want)
{
        _cleanup_free_ char *err = NULL;
        ManagerConfig c;

        ck_assert_int_eq(parse(text, &c, &err), -EINVAL);
        ck_assert_ptr_nonnull(err);
        ck_assert_msg(strncmp(err, "/x/cellad.conf: ", 16) == 0, "no file name in: %s", err);
        ck_assert_msg(strstr(err, want), "'%s' not in: %s", want, err);
}

START_TEST(test_config_parse)
{
        _cleanup_free_ char *err = NULL;
        ManagerConfig c, d;

        manager_config_default(&d);
        ck_assert_uint_eq(d.memory_total, 0);
        ck_assert_uint_eq(d.psi_window_ms, 1000);
        ck_assert_uint_eq(d.psi_fallback_window_ms, 2000);
        ck_assert_uint_eq(d.sample_short_ms, 10);
        ck_assert_uint_eq(d.sample_long_ms, 100);
        ck_assert_uint_eq(d.levels.level[MEMORY_LEVEL_CRITICAL].full_ms, 70);

        ck_assert_int_eq(parse("{}", &c, &err), 0);
        ck_assert_mem_eq(&c, &d, sizeof c);

        ck_assert_int_eq(parse("{\"memory\": {\"total\": \"2G\", \"psi\": {\"window_ms\": 2000, "
                               "\"fallback_window_ms\": 4000}, \"sample\": {\"short_ms\": 20, "
                               "\"long_ms\": 200}, \"level\": {\"moderate\": {\"some_ms\": 50, "
                               "\"free_percent\": 25}, \"critical\": {\"full_ms\": 100}, "
                               "\"hysteresis_percent\": 10}}}",
                               &c, &err),
                         0);
        ck_assert_ptr_null(err);
        ck_assert_uint_eq(c.memory_total, 2048 * MiB);
        ck_assert_uint_eq(c.psi_window_ms, 2000);
        ck_assert_uint_eq(c.psi_fallback_window_ms, 4000);
        ck_assert_uint_eq(c.sample_short_ms, 20);
        ck_assert_uint_eq(c.sample_long_ms, 200);
        ck_assert_uint_eq(c.levels.level[MEMORY_LEVEL_MODERATE].some_ms, 50);
        ck_assert_uint_eq(c.levels.level[MEMORY_LEVEL_MODERATE].free_percent, 25);
        ck_assert_uint_eq(c.levels.level[MEMORY_LEVEL_LOW].some_ms, 100); /* default kept */
        ck_assert_uint_eq(c.levels.level[MEMORY_LEVEL_CRITICAL].full_ms, 100);
        ck_assert_uint_eq(c.levels.hysteresis_percent, 10);

        ck_assert_int_eq(parse("{\"memory\": {\"total\": 536870912}}", &c, &err), 0);
        ck_assert_uint_eq(c.memory_total, 512 * MiB);
        ck_assert_int_eq(parse("{\"memory\": {\"total\": \"max\"}}", &c, &err), 0);
        ck_assert_uint_eq(c.memory_total, 0);
}
END_TEST

START_TEST(test_config_refused)
{
        /* JSON syntax: line and column. */
        refused("{\"memory\": {\"total\": \"2G\",}}", "line 1, column");
        refused("{\n\"memory\": {\n\"total\" \"2G\"}}", "line 3");
        refused("[1, 2]", "expected a JSON object");
        refused("{\"memory\": {\"total\": \"1G\", \"total\": \"2G\"}}", "duplicate");
        /* Unknown keys, named in full, with a guess when there is one. */
        refused("{\"memroy\": {}}", "unknown key 'memroy' (did you mean 'memory'?)");
        refused("{\"memory\": {\"totl\": \"2G\"}}",
                "unknown key 'memory.totl' (did you mean 'memory.total'?)");
        refused("{\"memory\": {\"level\": {\"severe\": {}}}}", "unknown key 'memory.level.severe'");
        refused("{\"cpu\": 1}", "cpu: expected an object");
        refused("{\"gpu\": {}}", "unknown key 'gpu' (did you mean 'cpu'?)");
        /* Types and ranges. */
        refused("{\"memory\": 4}", "memory: expected an object");
        refused("{\"memory\": {\"total\": \"2 G\"}}", "memory.total: expected a size");
        refused("{\"memory\": {\"total\": -1}}", "memory.total: expected a size");
        refused("{\"memory\": {\"total\": true}}", "memory.total: expected a size");
        refused("{\"memory\": {\"total\": 4096}}", "below the smallest budget");
        refused("{\"memory\": {\"psi\": {\"window_ms\": 100}}}",
                "memory.psi.window_ms: expected an integer from 500 to 10000");
        refused("{\"memory\": {\"psi\": {\"window_ms\": \"1000\"}}}",
                "memory.psi.window_ms: expected an integer");
        refused("{\"memory\": {\"level\": {\"low\": {\"free_percent\": 101}}}}",
                "memory.level.low.free_percent: expected an integer from 0 to 100");
        refused("{\"memory\": {\"sample\": {\"short_ms\": 1.5}}}", "memory.sample.short_ms");
        /* Figures that contradict each other. */
        refused("{\"memory\": {\"psi\": {\"window_ms\": 4000}}}",
                "memory.psi.fallback_window_ms (2000) is shorter");
        refused("{\"memory\": {\"sample\": {\"short_ms\": 500}}}", "memory.sample.short_ms (500)");
        refused("{\"memory\": {\"level\": {\"low\": {\"free_percent\": 30}}}}",
                "memory.level: a level's free_percent");
        /* The swap caps, the CPU weights. */
        refused("{\"memory\": {\"swap\": {\"caps\": 1}}}",
                "memory.swap.caps: expected true or false");
        refused("{\"memory\": {\"swap\": {\"caps\": \"yes\"}}}", "memory.swap.caps: expected true");
        refused("{\"memory\": {\"swap\": {\"cached_percent\": 101}}}",
                "memory.swap.cached_percent: expected an integer from 0 to 100");
        refused("{\"memory\": {\"swap\": {\"chached_percent\": 1}}}",
                "did you mean 'memory.swap.cached_percent'?");
        refused("{\"cpu\": {\"weight\": {\"foreground\": 0}}}",
                "cpu.weight.foreground: expected an integer from 1 to 10000");
        refused("{\"cpu\": {\"weight\": {\"background\": 10001}}}",
                "cpu.weight.background: expected an integer from 1 to 10000");
        refused("{\"cpu\": {\"weight\": {\"frozen\": 1}}}", "unknown key 'cpu.weight.frozen'");
        refused("{\"cpu\": {\"weights\": null}}", "cpu.weights: expected true or false");
}
END_TEST

/* net.group.* (docs/config.md): an RFC 1918 range without host bits, a subnet size from
 * the range's prefix to 16 more; everything else refused, named. */
START_TEST(test_config_net_group)
{
        _cleanup_free_ char *err = NULL;
        ManagerConfig c;

        manager_config_default(&c);
        ck_assert_uint_eq(c.net_group_range, 0x0ad50000u); /* 10.213.0.0 */
        ck_assert_uint_eq(c.net_group_range_prefix, 16);
        ck_assert_uint_eq(c.net_group_prefix, 24);
        ck_assert_int_eq(parse("{\"net\": {\"group\": {\"range\": \"192.168.77.0/24\", "
                               "\"prefix\": 28}}}",
                               &c, &err),
                         0);
        ck_assert_uint_eq(c.net_group_range, 0xc0a84d00u);
        ck_assert_uint_eq(c.net_group_range_prefix, 24);
        ck_assert_uint_eq(c.net_group_prefix, 28);
        ck_assert_int_eq(parse("{\"net\": {\"group\": {\"range\": \"172.20.0.0/14\"}}}", &c, &err),
                         0);
        refused("{\"net\": {\"group\": {\"range\": \"8.8.0.0/16\"}}}",
                "net.group.range: not inside a private range of RFC 1918");
        /* 172.32/16 is past 172.16/12; 10/7 is wider than 10/8. */
        refused("{\"net\": {\"group\": {\"range\": \"172.32.0.0/16\"}}}", "RFC 1918");
        refused("{\"net\": {\"group\": {\"range\": \"10.0.0.0/7\"}}}", "out of range (8-30)");
        refused("{\"net\": {\"group\": {\"range\": \"10.213.0.1/16\"}}}", "host bits are set");
        refused("{\"net\": {\"group\": {\"range\": \"10.213.0.0\"}}}", "A.B.C.D/N");
        refused("{\"net\": {\"group\": {\"range\": \"10.213.0.0/16x\"}}}", "A.B.C.D/N");
        refused("{\"net\": {\"group\": {\"range\": \"10.213.0.0/\"}}}", "A.B.C.D/N");
        refused("{\"net\": {\"group\": {\"range\": \"010.213.0.0/16\"}}}", "A.B.C.D/N");
        refused("{\"net\": {\"group\": {\"range\": 167051264}}}", "A.B.C.D/N");
        refused("{\"net\": {\"group\": {\"range\": \"10.213.0.0/24\", \"prefix\": 16}}}",
                "net.group.prefix (16) must be from net.group.range's prefix length (24)");
        refused("{\"net\": {\"group\": {\"range\": \"10.0.0.0/8\", \"prefix\": 25}}}",
                "to 16 more");
        refused("{\"net\": {\"group\": {\"prefix\": 31}}}", "net.group.prefix: expected an "
                                                            "integer from 16 to 30");
}
END_TEST

START_TEST(test_config_swap_cpu)
{
        _cleanup_free_ char *err = NULL;
        ManagerConfig c;

        /* The defaults: swap caps and CPU weights (docs/config.md). */
        manager_config_default(&c);
        ck_assert(c.swap.enabled);
        ck_assert_uint_eq(c.swap.percent[CPU_CLASS_FOREGROUND], 0);
        ck_assert_uint_eq(c.swap.percent[CPU_CLASS_CACHED], 100);
        ck_assert(c.cpu.enabled);
        ck_assert_uint_eq(c.cpu.weight[CPU_CLASS_FOREGROUND], 155);
        ck_assert_uint_eq(c.cpu.weight[CPU_CLASS_CACHED], 1);

        ck_assert_int_eq(parse("{\"memory\": {\"swap\": {\"caps\": false, \"background_percent\": "
                               "80}}, "
                               "\"cpu\": {\"weights\": false, \"weight\": {\"foreground\": 400, "
                               "\"cached\": 2}}}",
                               &c, &err),
                         0);
        ck_assert_ptr_null(err);
        ck_assert(!c.swap.enabled);
        ck_assert_uint_eq(c.swap.percent[CPU_CLASS_BACKGROUND], 80);
        ck_assert_uint_eq(c.swap.percent[CPU_CLASS_SERVICE], 25); /* default kept */
        ck_assert(!c.cpu.enabled);
        ck_assert_uint_eq(c.cpu.weight[CPU_CLASS_FOREGROUND], 400);
        ck_assert_uint_eq(c.cpu.weight[CPU_CLASS_CACHED], 2);
        ck_assert_uint_eq(c.cpu.weight[CPU_CLASS_SERVICE], 100);
        /* What cellad hands the supervisor: a weight the table reads back. */
        c.cpu.enabled = true;
        ck_assert_uint_eq(cpu_class_weight(&c.cpu, CPU_CLASS_FOREGROUND), 400);
        /* weight 2: CFS 20.5, nearest nice 18 (23; nice 19 is 15). */
        ck_assert_int_eq(cpu_class_priority(&c.cpu, CPU_CLASS_CACHED, 0), 18);
}
END_TEST

/* Builds {"a": {"b": value}} for the dotted key "a.b". */
static char *nested_json(const char *key, const char *value)
{
        char *out = NULL;
        size_t depth = 0;
        const char *p = key;
        FILE *f;
        size_t n;

        f = open_memstream(&out, &n);
        ck_assert_ptr_nonnull(f);
        while (p) {
                const char *dot = strchr(p, '.');

                fprintf(f, "{\"%.*s\": ", dot ? (int)(dot - p) : (int)strlen(p), p);
                depth++;
                p = dot ? dot + 1 : NULL;
        }
        fputs(value, f);
        while (depth--)
                fputc('}', f);
        fclose(f);
        return out;
}

START_TEST(test_config_doc)
{
        _cleanup_free_ char *doc = NULL;
        const char *keys[64];
        size_t n_keys, documented = 0;
        bool seen[64] = {};
        ManagerConfig d;

        n_keys = manager_config_keys(keys, ELEMENTSOF(keys));
        ck_assert_uint_le(n_keys, ELEMENTSOF(keys));
        ck_assert_int_eq(
                read_file_at(AT_FDCWD, CELLA_SOURCE_ROOT "/docs/config.md", 1 << 20, &doc, NULL),
                0);
        manager_config_default(&d);
        /* Each row "| `key` | default | unit | meaning |" of the Keys table. */
        for (char *line = strtok(doc, "\n"); line; line = strtok(NULL, "\n")) {
                char key[128], def[128], unit[256], meaning[64];
                _cleanup_free_ char *json = NULL, *err = NULL;
                const char *value;
                ManagerConfig c;
                size_t i;

                if (sscanf(line, "| `%127[^`]` | %127[^|]| %255[^|]| %63s", key, def, unit,
                           meaning) != 4)
                        continue;
                if (strcmp(meaning, "coming") == 0) {
                        ck_assert_msg(strstr(key, ".*"), "a coming row names a family: %s", key);
                        continue;
                }
                for (i = 0; i < n_keys && strcmp(keys[i], key) != 0; i++)
                        ;
                ck_assert_msg(i < n_keys,
                              "docs/config.md documents '%s', which the parser "
                              "does not know",
                              key);
                seen[i] = true;
                documented++;
                /* The documented default, given explicitly, is the default. */
                value = strncmp(def, "none", 4) == 0 ? "\"max\"" : def;
                json = nested_json(key, value);
                ck_assert_msg(parse(json, &c, &err) == 0, "%s: %s", json, err);
                ck_assert_msg(memcmp(&c, &d, sizeof c) == 0,
                              "docs/config.md's default of %s (%s) is not the parser's", key, def);
        }
        for (size_t i = 0; i < n_keys; i++)
                ck_assert_msg(seen[i], "'%s' is missing from docs/config.md", keys[i]);
        ck_assert_uint_eq(documented, n_keys);
}
END_TEST

static char tmp_dir[] = "/tmp/test-memory-XXXXXX";

static int rm_entry(const char *p, const struct stat *st, int type, struct FTW *f)
{
        (void)(type == FTW_DP ? rmdir(p) : unlink(p));
        return 0;
}

static void tmp_setup(void)
{
        strcpy(tmp_dir, "/tmp/test-memory-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
}

static void tmp_teardown(void)
{
        nftw(tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes content to tmp_dir/rel, making its directory. */
static void put(const char *rel, const char *content)
{
        _cleanup_free_ char *p = NULL, *d = NULL;
        _cleanup_close_ int fd = -EBADF;

        ck_assert_int_ge(asprintf(&p, "%s/%s", tmp_dir, rel), 0);
        d = strdup(p);
        *strrchr(d, '/') = 0;
        ck_assert_int_eq(mkdir_p(d, 0755), 0);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, content, strlen(content)), 0);
}

START_TEST(test_config_load)
{
        _cleanup_free_ char *state = NULL, *etc = NULL, *path = NULL, *err = NULL;
        ManagerConfig c;

        ck_assert_int_ge(asprintf(&state, "%s/state", tmp_dir), 0);
        ck_assert_int_ge(asprintf(&etc, "%s/etc/cellad.conf", tmp_dir), 0);
        ck_assert_int_eq(mkdir(state, 0700), 0);
        /* Neither file: the defaults, no path. */
        ck_assert_int_eq(manager_config_load(state, etc, &c, &path, &err), 0);
        ck_assert_ptr_null(path);
        ck_assert_uint_eq(c.memory_total, 0);
        /* /etc's alone. */
        put("etc/cellad.conf", "{\"memory\": {\"total\": \"1G\"}}");
        ck_assert_int_eq(manager_config_load(state, etc, &c, &path, &err), 0);
        ck_assert_str_eq(path, etc);
        ck_assert_uint_eq(c.memory_total, 1024 * MiB);
        free(path);
        /* The state directory's wins, whole: /etc's total is not merged in. */
        put("state/cellad.conf", "{\"memory\": {\"sample\": {\"long_ms\": 50}}}");
        ck_assert_int_eq(manager_config_load(state, etc, &c, &path, &err), 0);
        ck_assert_ptr_nonnull(strstr(path, "/state/cellad.conf"));
        ck_assert_uint_eq(c.memory_total, 0);
        ck_assert_uint_eq(c.sample_long_ms, 50);
        free(path);
        path = NULL;
        /* A bad one is an error naming it, even with a good one in /etc. */
        put("state/cellad.conf", "{\"memory\": {\"bogus\": 1}}");
        ck_assert_int_eq(manager_config_load(state, etc, &c, &path, &err), -EINVAL);
        ck_assert_ptr_null(path);
        ck_assert_ptr_nonnull(strstr(err, "/state/cellad.conf: unknown key 'memory.bogus'"));
        free(err);
        err = NULL;
        /* A config that cannot be read (a directory) is an error too, not the defaults. */
        {
                _cleanup_free_ char *f = NULL;

                ck_assert_int_ge(asprintf(&f, "%s/cellad.conf", state), 0);
                ck_assert_int_eq(unlink(f), 0);
                ck_assert_int_eq(mkdir(f, 0700), 0);
                ck_assert_int_eq(manager_config_load(state, etc, &c, &path, &err), -EPERM);
                ck_assert_ptr_nonnull(err);
                ck_assert_ptr_nonnull(
                        strstr(err, "/state/cellad.conf: refused: not a regular file"));
                free(err);
                err = NULL;
                ck_assert_int_eq(rmdir(f), 0);
                /* One that others could write: refused, whatever it says. */
                put("state/cellad.conf", "{}");
                ck_assert_int_eq(chmod(f, 0666), 0);
                ck_assert_int_eq(manager_config_load(state, etc, &c, &path, &err), -EPERM);
                ck_assert_ptr_nonnull(strstr(err, "refused: writable by group or others"));
                free(err);
                err = NULL;
                ck_assert_int_eq(chmod(f, 0620), 0);
                ck_assert_int_eq(manager_config_load(state, etc, &c, &path, &err), -EPERM);
                free(err);
                err = NULL;
                ck_assert_int_eq(chmod(f, 0600), 0);
                ck_assert_int_eq(manager_config_load(state, etc, &c, &path, &err), 0);
                ck_assert_ptr_nonnull(path);
                /* Owned by another user (as root only: chown). */
                if (geteuid() == 0) {
                        free(path);
                        path = NULL;
                        ck_assert_int_eq(chown(f, 12345, 12345), 0);
                        ck_assert_int_eq(manager_config_load(state, etc, &c, &path, &err), -EPERM);
                        ck_assert_ptr_nonnull(strstr(err, "owned by another user"));
                }
        }
}
END_TEST

/* ---- readings of fake trees --------------------------------------------------------- */

static const char v2_stat[] = "anon 104857600\nfile 52428800\nkernel 8388608\nkernel_stack 1\n"
                              "pagetables 2\nshmem 4194304\ninactive_file 20971520\n"
                              "active_file 31457280\n";

START_TEST(test_reading_v2_fake)
{
        _cleanup_free_ char *dir = NULL;
        MemorySource *s = NULL;
        MemoryReading m;

        put("v2/app/memory.current", "167772160\n");
        put("v2/app/memory.stat", v2_stat);
        put("v2/app/memory.max", "268435456\n");
        put("v2/app/memory.peak", "201326592\n");
        put("v2/app/memory.swap.current", "0\n");
        put("v2/app/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n");
        put("v2/app/memory.pressure", "some avg10=12.34 avg60=1.00 avg300=0.10 total=987654\n"
                                      "full avg10=0.50 avg60=0.00 avg300=0.00 total=12345\n");
        ck_assert_int_ge(asprintf(&dir, "%s/v2/app", tmp_dir), 0);
        ck_assert_int_eq(memory_source_open_cgroup(NULL, dir, &s), 0);
        ck_assert(!memory_source_is_v1(s));
        ck_assert_int_eq(memory_source_read(s, &m), 0);
        ck_assert_uint_eq(m.current, 160 * MiB);
        ck_assert_uint_eq(m.anon, 100 * MiB);
        ck_assert_uint_eq(m.file, 50 * MiB);
        ck_assert_uint_eq(m.shmem, 4 * MiB);
        ck_assert_uint_eq(m.kernel, 8 * MiB);
        ck_assert_uint_eq(m.inactive_file, 20 * MiB);
        ck_assert_uint_eq(m.peak, 192 * MiB);
        ck_assert_uint_eq(m.limit, 256 * MiB);
        ck_assert_uint_eq(m.swap, 0);
        ck_assert_uint_eq(m.oom_kills, 2);
        /* limit - (current - inactive_file) = 256 - 140 */
        ck_assert_uint_eq(m.available, 116 * MiB);
        ck_assert(m.has_psi);
        ck_assert_uint_eq(m.some_avg10, 1234);
        ck_assert_uint_eq(m.full_avg10, 50);
        ck_assert_uint_eq(m.some_total_us, 987654);
        ck_assert_uint_eq(m.full_total_us, 12345);

        /* The files are read again on every sample (the fds stay open). */
        put("v2/app/memory.current", "268435456\n");
        put("v2/app/memory.max", "max\n");
        ck_assert_int_eq(memory_source_read(s, &m), 0);
        ck_assert_uint_eq(m.current, 256 * MiB);
        ck_assert_uint_eq(m.limit, MEMORY_UNKNOWN);
        ck_assert_uint_eq(m.available, MEMORY_UNKNOWN);
        s = memory_source_free(s);

        /* Before 5.18 (no "kernel" line) and 5.19 (no memory.peak), no swap accounting,
         * no PSI: the parts are summed, the rest unknown. */
        put("v2/old/memory.current", "1000\n");
        put("v2/old/memory.stat", "anon 1\nfile 2\nshmem 0\nkernel_stack 100\npagetables 20\n"
                                  "slab 3\n");
        put("v2/old/memory.max", "max\n");
        put("v2/old/memory.events", "low 0\nhigh 0\nmax 0\noom 0\n");
        free(dir);
        ck_assert_int_ge(asprintf(&dir, "%s/v2/old", tmp_dir), 0);
        ck_assert_int_eq(memory_source_open_cgroup(NULL, dir, &s), 0);
        ck_assert_int_eq(memory_source_read(s, &m), 0);
        ck_assert_uint_eq(m.kernel, 123);
        ck_assert_uint_eq(m.peak, MEMORY_UNKNOWN);
        ck_assert_uint_eq(m.swap, MEMORY_UNKNOWN);
        ck_assert_uint_eq(m.oom_kills, 0);
        ck_assert(!m.has_psi);
        s = memory_source_free(s);

        /* A memory.stat the kernel would never write: refused, not made up. */
        put("v2/old/memory.stat", "anon x\n");
        ck_assert_int_eq(memory_source_open_cgroup(NULL, dir, &s), 0);
        ck_assert_int_eq(memory_source_read(s, &m), -EINVAL);
        s = memory_source_free(s);
        put("v2/old/memory.stat", "file 2\n");
        ck_assert_int_eq(memory_source_open_cgroup(NULL, dir, &s), 0);
        ck_assert_int_eq(memory_source_read(s, &m), -ENODATA);
        s = memory_source_free(s);

        /* No memory files at all. */
        ck_assert_int_eq(memory_source_open_cgroup(NULL, tmp_dir, &s), -ENOENT);
        ck_assert_int_eq(memory_source_open_cgroup(NULL, NULL, &s), -ENOENT);
}
END_TEST

START_TEST(test_reading_v1_fake)
{
        _cleanup_free_ char *v1 = NULL, *v2 = NULL;
        MemorySource *s = NULL;
        MemoryReading m;

        /* A hybrid host: figures from the v1 memory leaf, PSI from the cgroup2 leaf. */
        put("memory/app/memory.usage_in_bytes", "167772160\n");
        put("memory/app/memory.stat", "cache 1\nrss 2\nshmem 3\ntotal_cache 52428800\n"
                                      "total_rss 104857600\ntotal_shmem 4194304\n"
                                      "total_inactive_file 20971520\n");
        put("memory/app/memory.limit_in_bytes", "268435456\n");
        put("memory/app/memory.max_usage_in_bytes", "201326592\n");
        put("memory/app/memory.memsw.usage_in_bytes", "169869312\n");
        put("memory/app/memory.kmem.usage_in_bytes", "8388608\n");
        put("memory/app/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
        put("unified/app/memory.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n"
                                           "full avg10=0.00 avg60=0.00 avg300=0.00 total=1\n");
        ck_assert_int_ge(asprintf(&v1, "%s/memory/app", tmp_dir), 0);
        ck_assert_int_ge(asprintf(&v2, "%s/unified/app", tmp_dir), 0);
        ck_assert_int_eq(memory_source_open_cgroup(v1, v2, &s), 0);
        ck_assert(memory_source_is_v1(s));
        ck_assert_int_eq(memory_source_read(s, &m), 0);
        ck_assert_uint_eq(m.current, 160 * MiB);
        ck_assert_uint_eq(m.anon, 100 * MiB);
        ck_assert_uint_eq(m.file, 50 * MiB);
        ck_assert_uint_eq(m.shmem, 4 * MiB);
        ck_assert_uint_eq(m.kernel, 8 * MiB);
        ck_assert_uint_eq(m.peak, 192 * MiB);
        ck_assert_uint_eq(m.limit, 256 * MiB);
        ck_assert_uint_eq(m.swap, 2 * MiB);
        ck_assert_uint_eq(m.oom_kills, 3);
        ck_assert_uint_eq(m.available, 116 * MiB);
        ck_assert(m.has_psi);
        ck_assert_uint_eq(m.some_total_us, 5);
        s = memory_source_free(s);

        /* v1's "unlimited", no memsw, no kmem, no oom_kill line (before 4.13), no PSI. */
        put("memory/bare/memory.usage_in_bytes", "4096\n");
        put("memory/bare/memory.stat", "total_cache 0\ntotal_rss 4096\n");
        put("memory/bare/memory.limit_in_bytes", "9223372036854771712\n");
        put("memory/bare/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n");
        free(v1);
        ck_assert_int_ge(asprintf(&v1, "%s/memory/bare", tmp_dir), 0);
        ck_assert_int_eq(memory_source_open_cgroup(v1, NULL, &s), 0);
        ck_assert_int_eq(memory_source_read(s, &m), 0);
        ck_assert_uint_eq(m.limit, MEMORY_UNKNOWN);
        ck_assert_uint_eq(m.available, MEMORY_UNKNOWN);
        ck_assert_uint_eq(m.swap, MEMORY_UNKNOWN);
        ck_assert_uint_eq(m.kernel, MEMORY_UNKNOWN);
        ck_assert_uint_eq(m.peak, MEMORY_UNKNOWN);
        ck_assert_uint_eq(m.oom_kills, 0);
        ck_assert(!m.has_psi);
        s = memory_source_free(s);
}
END_TEST

START_TEST(test_reading_machine_fake)
{
        _cleanup_free_ char *proc = NULL;
        MemorySource *s = NULL;
        MemoryReading m;

        put("proc/meminfo", "MemTotal:        1048576 kB\nMemFree:          100000 kB\n"
                            "MemAvailable:     262144 kB\nBuffers:            1024 kB\n"
                            "Cached:            65536 kB\nSwapCached:            0 kB\n"
                            "Inactive(file):    32768 kB\nSwapTotal:        102400 kB\n"
                            "SwapFree:          101376 kB\nAnonPages:        524288 kB\n"
                            "Shmem:              4096 kB\nSlab:               8192 kB\n"
                            "KernelStack:        1024 kB\nPageTables:         1024 kB\n");
        put("proc/vmstat", "nr_free_pages 1\noom_kill 4\npgfault 9\n");
        put("proc/pressure/memory", "some avg10=100.00 avg60=0.00 avg300=0.00 total=1\n"
                                    "full avg10=99.99 avg60=0.00 avg300=0.00 total=1\n");
        ck_assert_int_ge(asprintf(&proc, "%s/proc", tmp_dir), 0);
        ck_assert_int_eq(memory_source_open_machine(proc, &s), 0);
        ck_assert_int_eq(memory_source_read(s, &m), 0);
        ck_assert_uint_eq(m.limit, 1024 * MiB);
        ck_assert_uint_eq(m.available, 256 * MiB);
        ck_assert_uint_eq(m.current, 768 * MiB);
        ck_assert_uint_eq(m.anon, 512 * MiB);
        ck_assert_uint_eq(m.file, 65 * MiB);
        ck_assert_uint_eq(m.shmem, 4 * MiB);
        ck_assert_uint_eq(m.inactive_file, 32 * MiB);
        ck_assert_uint_eq(m.kernel, 10 * MiB);
        ck_assert_uint_eq(m.swap, 1 * MiB);
        ck_assert_uint_eq(m.oom_kills, 4);
        ck_assert_uint_eq(m.some_avg10, 10000);
        ck_assert_uint_eq(m.full_avg10, 9999);
        s = memory_source_free(s);

        /* A PSI line that does not parse is refused. */
        put("proc/pressure/memory", "some avg10=abc\n");
        ck_assert_int_eq(memory_source_open_machine(proc, &s), 0);
        ck_assert_int_eq(memory_source_read(s, &m), -EINVAL);
        s = memory_source_free(s);
        /* No meminfo: no machine. */
        ck_assert_int_eq(memory_source_open_machine(tmp_dir, &s), -ENOENT);
}
END_TEST

/* The content of tmp_dir/rel (caller frees). */
static char *get(const char *rel)
{
        _cleanup_free_ char *p = NULL;
        char *text = NULL;

        ck_assert_int_ge(asprintf(&p, "%s/%s", tmp_dir, rel), 0);
        ck_assert_int_eq(read_file_at(AT_FDCWD, p, 4096, &text, NULL), 0);
        return text;
}

START_TEST(test_budget_fake)
{
        _cleanup_free_ char *fs = NULL, *text = NULL, *want = NULL;
        CgroupManager *m = NULL;
        const char *dir = NULL;

        /* v1 (and the v1 memory hierarchy of a hybrid host): memory.limit_in_bytes of
         * the apps' parent, <memory root>/cella. Nothing made to lift a limit. */
        put("v1/memory/cgroup.procs", "");
        ck_assert_int_ge(asprintf(&fs, "%s/v1", tmp_dir), 0);
        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V1, NULL, &m), 0);
        ck_assert_int_eq(memory_budget_apply(m, 0, NULL), 0);
        ck_assert_int_ge(asprintf(&want, "%s/memory/cella", fs), 0);
        ck_assert_int_eq(access(want, F_OK), -1);
        /* Empty: the knob is written without O_TRUNC, as cgroupfs needs none. */
        put("v1/memory/cella/memory.limit_in_bytes", "");
        ck_assert_int_eq(memory_budget_apply(m, 1024 * MiB, &dir), 0);
        ck_assert_str_eq(dir, want);
        text = get("v1/memory/cella/memory.limit_in_bytes");
        ck_assert_str_eq(text, "1073741824");
        free(text);
        put("v1/memory/cella/memory.limit_in_bytes", "");
        ck_assert_int_eq(memory_budget_apply(m, 0, NULL), 0);
        text = get("v1/memory/cella/memory.limit_in_bytes");
        ck_assert_str_eq(text, "-1");
        free(text);
        m = cgroup_manager_free(m);
        free(fs);
        free(want);

        /* v2: memory.max of <root>/cella, the controllers enabled on the way. */
        put("v2/cgroup.controllers", "cpuset cpu io memory pids\n");
        put("v2/cgroup.subtree_control", "");
        put("v2/cgroup.procs", "");
        put("v2/cella/cgroup.controllers", "cpu io memory pids\n");
        put("v2/cella/cgroup.subtree_control", "");
        put("v2/cella/memory.max", "");
        ck_assert_int_ge(asprintf(&fs, "%s/v2", tmp_dir), 0);
        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V2, NULL, &m), 0);
        ck_assert_int_eq(memory_budget_apply(m, 512 * MiB, &dir), 0);
        ck_assert_int_ge(asprintf(&want, "%s/cella", fs), 0);
        ck_assert_str_eq(dir, want);
        text = get("v2/cella/memory.max");
        ck_assert_str_eq(text, "536870912");
        free(text);
        text = get("v2/cgroup.subtree_control");
        ck_assert_str_eq(text, "+memory +pids +cpu");
        free(text);
        put("v2/cella/memory.max", "");
        ck_assert_int_eq(memory_budget_apply(m, 0, NULL), 0);
        text = get("v2/cella/memory.max");
        ck_assert_str_eq(text, "max");
        free(text);
        text = NULL;
        cgroup_manager_free(m);
}
END_TEST

/* ---- real cgroups (root) ------------------------------------------------------------ */

/* A child that maps and touches bytes of anonymous memory, then waits for SIGKILL.
 * Returns its pid once it has touched them (it writes a byte to the pipe). */
static pid_t spawn_toucher(Cgroup *cg, size_t bytes)
{
        int p[2];
        pid_t pid;
        char c;

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char *m;

                close(p[0]);
                /* Into the cgroup before touching: the pages are charged to it. */
                if (cgroup_attach(cg, getpid()) < 0)
                        _exit(2);
                m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (m == MAP_FAILED)
                        _exit(3);
                for (size_t i = 0; i < bytes; i += 4096)
                        m[i] = 1;
                if (write(p[1], "x", 1) != 1)
                        _exit(4);
                pause();
                _exit(0);
        }
        close(p[1]);
        ck_assert_int_eq(read(p[0], &c, 1), 1);
        close(p[0]);
        return pid;
}

static void reap(pid_t pid)
{
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}

START_TEST(test_real_reading)
{
        CgroupManager *m = NULL;
        Cgroup *cg = NULL;
        MemorySource *s = NULL, *apps = NULL, *machine = NULL;
        MemoryReading r, ra, rm;
        CgroupLimits lim = {.memory_max = 256 * MiB};
        const char *budget_dir = NULL;
        struct timespec t0, t1;
        pid_t pid;
        int k;

        if (geteuid() != 0)
                SKIP_TEST("needs root to make cgroups");
        k = cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m);
        if (k < 0)
                SKIP_TEST("no cgroup hierarchy: %s", strerror(-k));
        ck_assert_int_eq(cgroup_new(m, "memtest", &cg), 0);
        ck_assert_int_eq(cgroup_set_limits(cg, &lim), 0);
        pid = spawn_toucher(cg, 48 * MiB);

        ck_assert_int_eq(memory_source_open_app(cg, &s), 0);
        ck_assert_int_eq(memory_source_read(s, &r), 0);
        ck_assert_uint_ge(r.anon, 48 * MiB);
        ck_assert_uint_lt(r.anon, 64 * MiB);
        ck_assert_uint_ge(r.current, r.anon);
        ck_assert_uint_eq(r.limit, 256 * MiB);
        ck_assert_uint_ge(r.peak, r.current);
        ck_assert_uint_le(r.available, 256 * MiB - 48 * MiB);
        ck_assert_uint_eq(r.oom_kills, 0);
        if (access("/proc/pressure/memory", R_OK) == 0)
                ck_assert_msg(r.has_psi, "PSI is on but the leaf's memory.pressure was not read");

        /* The cost of one sample (the figure in docs/memory.md). */
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < 1000; i++)
                ck_assert_int_eq(memory_source_read(s, &r), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("one sample of an app's cgroup (%s): %.1f us\n",
               memory_source_is_v1(s) ? "v1 + PSI" : "v2",
               ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1000.0 / 1000);

        /* The apps' parent sees the app's memory (total_* keys on v1). */
        ck_assert_int_eq(memory_source_open_apps(m, false, &apps), 0);
        ck_assert_int_eq(memory_source_read(apps, &ra), 0);
        ck_assert_uint_ge(ra.anon, 48 * MiB);

        /* The budget: a limit on that parent, lifted again. */
        ck_assert_int_eq(memory_budget_apply(m, 1024 * MiB, &budget_dir), 0);
        ck_assert_int_eq(memory_source_read(apps, &ra), 0);
        ck_assert_uint_eq(ra.limit, 1024 * MiB);
        ck_assert_uint_le(ra.available, 1024 * MiB - 48 * MiB);
        ck_assert_int_eq(memory_budget_apply(m, 0, NULL), 0);
        ck_assert_int_eq(memory_source_read(apps, &ra), 0);
        ck_assert_uint_eq(ra.limit, MEMORY_UNKNOWN);

        /* The machine. */
        ck_assert_int_eq(memory_source_open_machine(NULL, &machine), 0);
        ck_assert_int_eq(memory_source_read(machine, &rm), 0);
        ck_assert_uint_gt(rm.limit, rm.available);
        ck_assert_uint_ge(rm.anon, 48 * MiB);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < 1000; i++)
                ck_assert_int_eq(memory_source_read(machine, &rm), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("one sample of the machine: %.1f us\n",
               ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1000.0 / 1000);

        reap(pid);
        /* A removed cgroup: the open files fail, they do not read stale figures. */
        cg = cgroup_destroy(cg);
        k = memory_source_read(s, &r);
        ck_assert_msg(k == -ENODEV || k == -ENOENT, "read of a removed cgroup: %d", k);
        memory_source_free(s);
        memory_source_free(apps);
        memory_source_free(machine);
        cgroup_manager_free(m);
}
END_TEST

/* ---- PSI on this host (root) -------------------------------------------------------- */

START_TEST(test_psi_trigger)
{
        PressureTrigger *t = NULL;
        int k;

        if (access("/proc/pressure/memory", R_OK) < 0)
                SKIP_TEST("no /proc/pressure/memory: a kernel without CONFIG_PSI");
        k = pressure_trigger_new("/proc/pressure/memory", PRESSURE_SOME, 70000, 1000000, 2000000,
                                 &t);
        if (k == -EOPNOTSUPP)
                SKIP_TEST("PSI is off (psi=0 on the kernel command line)");
        ck_assert_msg(k == 0, "no trigger on /proc/pressure/memory: %s", strerror(-k));
        printf("PSI trigger on /proc/pressure/memory: \"%s\"%s\n", pressure_trigger_describe(t),
               pressure_trigger_degraded(t) ? " (degraded: the kernel refused a 1 s window)" : "");
        if (pressure_trigger_degraded(t)) {
                ck_assert_uint_eq(pressure_trigger_window_us(t), 2000000);
                ck_assert_uint_eq(pressure_trigger_stall_us(t), 140000);
                ck_assert_str_eq(pressure_trigger_describe(t), "some 140000 2000000");
        } else {
                ck_assert_uint_eq(pressure_trigger_window_us(t), 1000000);
                ck_assert_str_eq(pressure_trigger_describe(t), "some 70000 1000000");
        }
        ck_assert_int_ge(pressure_trigger_fd(t), 0);
        ck_assert_int_eq(pressure_trigger_events(t), POLLPRI);
        /* Not fired: handled with no event, it says so; POLLERR means gone. */
        ck_assert_int_eq(pressure_trigger_handle(t, POLLIN), 0);
        ck_assert_int_eq(pressure_trigger_handle(t, POLLERR), -ENODEV);
        t = pressure_trigger_free(t);

        /* A window the kernel never takes: both refused, no trigger. */
        ck_assert_int_eq(
                pressure_trigger_new("/proc/pressure/memory", PRESSURE_FULL, 100, 400000, 0, &t),
                -EINVAL);
        ck_assert_int_eq(pressure_trigger_new("/nonexistent/memory.pressure", PRESSURE_FULL, 100000,
                                              1000000, 2000000, &t),
                         -ENOENT);
}
END_TEST

START_TEST(test_psi_cgroup_trigger)
{
        CgroupManager *m = NULL;
        Cgroup *cg = NULL;
        PressureTrigger *t = NULL;
        const char *dir;
        char path[4096];
        int k;

        if (geteuid() != 0)
                SKIP_TEST("needs root to make cgroups");
        k = cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m);
        if (k < 0)
                SKIP_TEST("no cgroup hierarchy: %s", strerror(-k));
        if (cgroup_manager_mode(m) == CGROUP_MODE_V1) {
                cgroup_manager_free(m);
                SKIP_TEST("a pure v1 host: no cgroup2 leaf, no per-cgroup PSI");
        }
        ck_assert_int_eq(cgroup_new(m, "psitest", &cg), 0);
        dir = cgroup_path(cg, "");
        ck_assert_ptr_nonnull(dir);
        snprintf(path, sizeof path, "%s/memory.pressure", dir);
        k = pressure_trigger_new(path, PRESSURE_FULL, 70000, 1000000, 2000000, &t);
        if (k == -EOPNOTSUPP || k == -ENOENT) {
                cgroup_destroy(cg);
                cgroup_manager_free(m);
                SKIP_TEST("no PSI in the cgroup2 leaf %s: %s", dir, strerror(-k));
        }
        ck_assert_msg(k == 0, "no trigger on %s: %s", path, strerror(-k));
        printf("PSI trigger on the app's leaf: \"%s\"%s\n", pressure_trigger_describe(t),
               pressure_trigger_degraded(t) ? " (degraded)" : "");
        ck_assert_int_eq(pressure_trigger_handle(t, 0), 0);
        /* The leaf removed under the trigger: the kernel reports POLLERR (psi.rst). */
        cg = cgroup_destroy(cg);
        {
                struct pollfd p = {.fd = pressure_trigger_fd(t), .events = POLLPRI};

                ck_assert_int_eq(poll(&p, 1, 5000), 1);
                ck_assert_int_eq(pressure_trigger_handle(t, p.revents), -ENODEV);
        }
        pressure_trigger_free(t);
        cgroup_manager_free(m);
}
END_TEST

/*
 * Real pressure: a process in a cgroup limited to 32 MiB touches 48 MiB over and over
 * (each try in a child the kernel's OOM killer ends after reclaim fails: no swap
 * here). The reclaim stalls its tasks; the trigger on the leaf's memory.pressure must
 * fire (waited for with poll(), a deadline, not a sleep), and the readings show it.
 */
START_TEST(test_psi_fires)
{
        CgroupManager *m = NULL;
        Cgroup *cg = NULL;
        PressureTrigger *t = NULL;
        MemorySource *src = NULL;
        MemoryReading r;
        CgroupLimits lim = {.memory_max = 32 * MiB};
        struct timespec t0, t1;
        struct pollfd p;
        char path[4096];
        pid_t pid;
        int k;

        if (geteuid() != 0)
                SKIP_TEST("needs root to make cgroups");
        k = cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m);
        if (k < 0)
                SKIP_TEST("no cgroup hierarchy: %s", strerror(-k));
        if (cgroup_manager_mode(m) == CGROUP_MODE_V1) {
                cgroup_manager_free(m);
                SKIP_TEST("a pure v1 host: no cgroup2 leaf, no per-cgroup PSI");
        }
        ck_assert_int_eq(cgroup_new(m, "psifire", &cg), 0);
        ck_assert_int_eq(cgroup_set_limits(cg, &lim), 0);
        snprintf(path, sizeof path, "%s/memory.pressure", cgroup_path(cg, ""));
        /* 10 ms of "some" stall per second (2 s windows here: 20 ms). */
        k = pressure_trigger_new(path, PRESSURE_SOME, 10000, 1000000, 2000000, &t);
        if (k == -EOPNOTSUPP || k == -ENOENT) {
                cgroup_destroy(cg);
                cgroup_manager_free(m);
                SKIP_TEST("no PSI in the cgroup2 leaf: %s", strerror(-k));
        }
        ck_assert_int_eq(k, 0);
        ck_assert_int_eq(memory_source_open_app(cg, &src), 0);

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (cgroup_attach(cg, getpid()) < 0)
                        _exit(2);
                for (;;) {
                        pid_t c = fork();

                        if (c == 0) {
                                size_t n = 48 * MiB;
                                char *a = mmap(NULL, n, PROT_READ | PROT_WRITE,
                                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

                                if (a == MAP_FAILED)
                                        _exit(3);
                                for (size_t i = 0; i < n; i += 4096)
                                        a[i] = 1;
                                _exit(0);
                        }
                        if (c > 0)
                                (void)waitpid(c, NULL, 0);
                }
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        p = (struct pollfd){.fd = pressure_trigger_fd(t), .events = pressure_trigger_events(t)};
        k = poll(&p, 1, 30000);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert_int_eq(memory_source_read(src, &r), 0);
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        ck_assert_msg(k == 1, "the trigger \"%s\" did not fire within 30 s of real pressure",
                      pressure_trigger_describe(t));
        ck_assert_int_eq(pressure_trigger_handle(t, p.revents), 1);
        printf("PSI trigger \"%s\" fired %.2f s after the pressure began; %" PRIu64
               " OOM kills, %" PRIu64 " us of some stall in the leaf\n",
               pressure_trigger_describe(t),
               (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, r.oom_kills,
               r.some_total_us);
        ck_assert(r.has_psi);
        ck_assert_uint_ge(r.some_total_us, pressure_trigger_stall_us(t));
        ck_assert_uint_gt(r.oom_kills, 0);
        ck_assert_uint_eq(r.limit, 32 * MiB);
        memory_source_free(src);
        pressure_trigger_free(t);
        cgroup_destroy(cg);
        cgroup_manager_free(m);
}
END_TEST

START_TEST(test_v1_pressure_level)
{
        CgroupManager *m = NULL;
        Cgroup *cg = NULL;
        PressureTrigger *t = NULL;
        const char *dir;
        int k;

        if (geteuid() != 0)
                SKIP_TEST("needs root to make cgroups");
        k = cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m);
        if (k < 0)
                SKIP_TEST("no cgroup hierarchy: %s", strerror(-k));
        if (cgroup_manager_mode(m) == CGROUP_MODE_V2) {
                cgroup_manager_free(m);
                SKIP_TEST("a pure v2 host: no v1 memory.pressure_level");
        }
        ck_assert_int_eq(cgroup_new(m, "plvl", &cg), 0);
        dir = cgroup_path(cg, "memory");
        ck_assert_ptr_nonnull(dir);
        ck_assert_int_eq(pressure_trigger_new_v1(dir, PRESSURE_V1_MEDIUM, &t), 0);
        ck_assert_str_eq(pressure_trigger_describe(t), "v1 medium");
        ck_assert_int_eq(pressure_trigger_events(t), POLLIN);
        ck_assert_uint_eq(pressure_trigger_window_us(t), 0);
        ck_assert_int_eq(pressure_trigger_handle(t, 0), 0);
        t = pressure_trigger_free(t);
        ck_assert_int_eq(pressure_trigger_new_v1(tmp_dir, PRESSURE_V1_LOW, &t), -ENOENT);

        /* PSI first; v1 only where PSI is missing. */
        if (cgroup_path(cg, "")) {
                char psi[4096];

                snprintf(psi, sizeof psi, "%s/memory.pressure", cgroup_path(cg, ""));
                ck_assert_int_eq(pressure_trigger_new_best(psi, dir, PRESSURE_SOME, 70000, 1000000,
                                                           2000000, PRESSURE_V1_LOW, &t),
                                 0);
                ck_assert_int_eq(pressure_trigger_events(t), POLLPRI);
                t = pressure_trigger_free(t);
        }
        ck_assert_int_eq(pressure_trigger_new_best("/nonexistent/memory.pressure", dir,
                                                   PRESSURE_SOME, 70000, 1000000, 2000000,
                                                   PRESSURE_V1_CRITICAL, &t),
                         0);
        ck_assert_str_eq(pressure_trigger_describe(t), "v1 critical");
        t = pressure_trigger_free(t);
        /* A refusal that is not "no PSI here" is no reason to fall back. */
        ck_assert_int_eq(pressure_trigger_new_best("/proc/pressure/memory", dir, PRESSURE_SOME,
                                                   70000, 400000, 0, PRESSURE_V1_LOW, &t),
                         -EINVAL);
        ck_assert_int_eq(pressure_trigger_new_best(NULL, NULL, PRESSURE_SOME, 70000, 1000000,
                                                   2000000, PRESSURE_V1_LOW, &t),
                         -ENOENT);
        cgroup_destroy(cg);
        cgroup_manager_free(m);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("memory");
        TCase *logic = tcase_create("logic"), *fake = tcase_create("fake");
        TCase *real = tcase_create("real"), *psi = tcase_create("psi");
        SRunner *sr;

        if (skip_init() < 0)
                return EXIT_FAILURE;
        tcase_add_test(logic, test_level_thresholds);
        tcase_add_test(logic, test_level_hysteresis);
        tcase_add_test(logic, test_level_names_and_check);
        tcase_add_test(logic, test_level_input_from_readings);
        tcase_add_test(logic, test_sampler_cadence);
        tcase_add_test(logic, test_sampler_retrigger);
        tcase_add_test(logic, test_config_parse);
        tcase_add_test(logic, test_config_refused);
        tcase_add_test(logic, test_config_doc);
        tcase_add_test(logic, test_config_swap_cpu);
        tcase_add_test(logic, test_config_net_group);
        suite_add_tcase(s, logic);

        tcase_add_checked_fixture(fake, tmp_setup, tmp_teardown);
        tcase_add_test(fake, test_config_load);
        tcase_add_test(fake, test_reading_v2_fake);
        tcase_add_test(fake, test_reading_v1_fake);
        tcase_add_test(fake, test_reading_machine_fake);
        tcase_add_test(fake, test_budget_fake);
        suite_add_tcase(s, fake);

        tcase_set_tags(real, "alone");
        tcase_set_timeout(real, 60);
        tcase_add_test(real, test_real_reading);
        suite_add_tcase(s, real);

        tcase_set_tags(psi, "alone");
        tcase_add_checked_fixture(psi, tmp_setup, tmp_teardown);
        tcase_set_timeout(psi, 60);
        tcase_add_test(psi, test_psi_trigger);
        tcase_add_test(psi, test_psi_cgroup_trigger);
        tcase_add_test(psi, test_psi_fires);
        tcase_add_test(psi, test_v1_pressure_level);
        suite_add_tcase(s, psi);

        sr = srunner_create(s);
        return skip_run(sr);
}
