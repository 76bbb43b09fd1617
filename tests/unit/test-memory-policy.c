/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The memory manager's decisions (src/memory/policy.c) on a simulated clock with
 * injected readings and apps: the level of a target from its PSI totals and its
 * free share (the span, the forgetting after a kill), the order of the actions
 * (trim, reclaim, freeze, kill), the step between stages, the kill pacing and its
 * exception at critical, the kill floor of each level, what a failed action leaves
 * out, and the restore when pressure ends. No sleep: time is a number.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "memory/config.h"
#include "memory/policy.h"
#include "memory/sampler.h"

#define MiB UINT64_C(1048576)
#define MS  UINT64_C(1000000)

/* ---- the gauge -------------------------------------------------------------------- */

static MemoryReading reading(uint64_t some_ms, uint64_t full_ms, uint64_t avail_mib,
                             uint64_t limit_mib)
{
        return (MemoryReading){.some_total_us = some_ms * 1000,
                               .full_total_us = full_ms * 1000,
                               .has_psi = true,
                               .available = avail_mib * MiB,
                               .limit = limit_mib * MiB};
}

START_TEST(test_gauge_stall)
{
        MemoryLevelConfig c;
        MemoryGauge g;
        MemoryReading r;

        memory_level_config_default(&c);
        memory_gauge_init(&g);
        /* The first sample has no span: no stall signal, free memory only. */
        r = reading(0, 0, 900, 1000);
        ck_assert_int_eq(memory_gauge_update(&g, &c, 1000 * MS, &r, 0, 1000 * MS, 100 * MS),
                         MEMORY_LEVEL_NORMAL);
        /* 10 ms later 5 ms of stall: 500 ms/s, but the span is under min_span: no signal. */
        r = reading(5, 5, 900, 1000);
        ck_assert_int_eq(memory_gauge_update(&g, &c, 1010 * MS, &r, 0, 1000 * MS, 100 * MS),
                         MEMORY_LEVEL_NORMAL);
        ck_assert_uint_eq(g.last.window_us, 0);
        /* 200 ms after the first: 16 ms "some" over 200 ms = 80 ms/s: moderate. */
        r = reading(16, 0, 900, 1000);
        ck_assert_int_eq(memory_gauge_update(&g, &c, 1200 * MS, &r, 0, 1000 * MS, 100 * MS),
                         MEMORY_LEVEL_MODERATE);
        ck_assert_uint_eq(g.last.window_us, 200000);
        ck_assert_uint_eq(g.last.some_stall_us, 16000);
        /* 30 ms "full" over 300 ms = 100 ms/s: critical. */
        r = reading(40, 30, 900, 1000);
        ck_assert_int_eq(memory_gauge_update(&g, &c, 1300 * MS, &r, 0, 1000 * MS, 100 * MS),
                         MEMORY_LEVEL_CRITICAL);
        /* Forgotten (after a kill): no stall signal until the span is long enough
         * again, and the level comes down with the hysteresis rule (free memory is
         * 90 %: far below every threshold: normal at once). */
        memory_gauge_forget(&g);
        r = reading(100, 90, 900, 1000);
        ck_assert_int_eq(memory_gauge_update(&g, &c, 1310 * MS, &r, 0, 1000 * MS, 100 * MS),
                         MEMORY_LEVEL_NORMAL);
        /* Samples older than the window are not the base: 2.5 s later, the base is
         * the newest within 1 s (none: no signal). */
        r = reading(400, 300, 900, 1000);
        ck_assert_int_eq(memory_gauge_update(&g, &c, 3810 * MS, &r, 0, 1000 * MS, 100 * MS),
                         MEMORY_LEVEL_NORMAL);
        ck_assert_uint_eq(g.last.window_us, 0);
}
END_TEST

START_TEST(test_gauge_free)
{
        MemoryLevelConfig c;
        MemoryGauge g;
        MemoryReading r;

        memory_level_config_default(&c);
        memory_gauge_init(&g);
        /* The budget wins over the target's limit: 40 MiB of a 400 MiB budget = 10 %:
         * not below 10 %: moderate (below 20 %). */
        r = reading(0, 0, 40, 4000);
        ck_assert_int_eq(memory_gauge_update(&g, &c, MS, &r, 400 * MiB, 1000 * MS, 100 * MS),
                         MEMORY_LEVEL_MODERATE);
        r = reading(0, 0, 19, 4000);
        ck_assert_int_eq(memory_gauge_update(&g, &c, 2 * MS, &r, 400 * MiB, 1000 * MS, 100 * MS),
                         MEMORY_LEVEL_CRITICAL);
        /* No PSI at all: free memory still counts, and nothing goes into the ring. */
        memory_gauge_init(&g);
        r = reading(0, 0, 30, 400);
        r.has_psi = false;
        ck_assert_int_eq(memory_gauge_update(&g, &c, MS, &r, 0, 1000 * MS, 100 * MS),
                         MEMORY_LEVEL_LOW);
        ck_assert_uint_eq(g.count, 0);
}
END_TEST

/* ---- the decisions ---------------------------------------------------------------- */

/* A small kernel: the apps of the scenario, their per-episode state kept here as
 * cellad keeps it on each Instance. */
typedef struct Sim {
        MemoryPolicy p;
        MemoryCandidate cand[8];
        MemoryPolicyApp app[8];
        size_t order[8];
        MemoryPolicyAction out[3 * 8 + 1];
        size_t n;
} Sim;

enum { FG, SVC, BG_OLD, BG_NEW, CACHED, PACKED };

static void sim_init(Sim *s, const MemoryPolicyConfig *c)
{
        memset(s, 0, sizeof *s);
        memory_policy_init(&s->p, c);
        /* last use: larger is more recent */
        s->cand[FG] = (MemoryCandidate){
                .cls = MEMORY_CLASS_FOREGROUND, .last_used_usec = 900, .memory_bytes = 50 * MiB};
        s->cand[SVC] = (MemoryCandidate){
                .cls = MEMORY_CLASS_SERVICE, .last_used_usec = 100, .memory_bytes = 20 * MiB};
        s->cand[BG_OLD] = (MemoryCandidate){.cls = MEMORY_CLASS_BACKGROUND, .last_used_usec = 200};
        s->cand[BG_NEW] = (MemoryCandidate){.cls = MEMORY_CLASS_BACKGROUND, .last_used_usec = 600};
        s->cand[CACHED] = (MemoryCandidate){.cls = MEMORY_CLASS_CACHED, .last_used_usec = 50};
        s->cand[PACKED] = (MemoryCandidate){.cls = MEMORY_CLASS_BACKGROUND, .last_used_usec = 10};
        s->n = 6;
        for (size_t i = 0; i < s->n; i++)
                s->app[i].own_cgroup = i != PACKED;
}

/* One sample; the actions as a string "t0 t1 r2 f3 k4 ..." (trim, reclaim, freeze,
 * kill, restore = T R F K S and the app's index). A freeze makes the app cached and
 * a kill removes it from the next samples (its cgroup is empty), as in cellad. */
static const char *step(Sim *s, uint64_t now_ms, MemoryLevel level)
{
        static char buf[256];
        size_t k, at = 0;

        k = memory_policy_decide(&s->p, now_ms * MS, level, s->cand, s->app, s->n, s->order,
                                 s->out);
        buf[0] = 0;
        for (size_t i = 0; i < k; i++) {
                static const char letter[] = "TRFKS";
                const MemoryPolicyAction *a = &s->out[i];

                ck_assert_uint_lt(a->app, s->n);
                at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%c%zu", i ? " " : "",
                                       letter[a->what], a->app);
                if (a->what == MEMORY_DO_FREEZE)
                        s->cand[a->app].cls = MEMORY_CLASS_CACHED;
                if (a->what == MEMORY_DO_KILL)
                        s->cand[a->app].cls = MEMORY_CLASS_NONE;
        }
        return buf;
}

START_TEST(test_policy_order_and_steps)
{
        MemoryPolicyConfig c;
        Sim s;

        memory_policy_config_default(&c);
        sim_init(&s, &c);
        /* Normal, no episode: nothing. */
        ck_assert_str_eq(step(&s, 0, MEMORY_LEVEL_NORMAL), "");
        /* Moderate: every app trimmed, at once; nothing else yet (the step). */
        ck_assert_str_eq(step(&s, 1000, MEMORY_LEVEL_MODERATE), "T0 T1 T2 T3 T4 T5");
        ck_assert_uint_eq(s.p.episodes, 1);
        ck_assert_str_eq(step(&s, 1010, MEMORY_LEVEL_MODERATE), "");
        /* 100 ms later: the background and cached apps with a cgroup of their own
         * reclaimed from; the packed member not. */
        ck_assert_str_eq(step(&s, 1100, MEMORY_LEVEL_MODERATE), "R2 R3 R4");
        /* Moderate never freezes nor kills (floor 1000), however long it lasts. */
        ck_assert_str_eq(step(&s, 1500, MEMORY_LEVEL_MODERATE), "");
        ck_assert_str_eq(step(&s, 5000, MEMORY_LEVEL_MODERATE), "");
        /* Low: every app trimmed again at low, reclaimed again at low, and (the reclaim
         * stage long done) the background apps frozen, least recently used first. */
        ck_assert_str_eq(step(&s, 5100, MEMORY_LEVEL_LOW), "T0 T1 T2 T3 T4 T5 R2 R3 R4 F2 F3");
        /* The kill waits a step after the freeze. */
        ck_assert_str_eq(step(&s, 5150, MEMORY_LEVEL_LOW), "");
        /* Then one kill: the least important at or above 800: cached apps, the least
         * recently used first: CACHED (50) before BG_OLD (200) before BG_NEW (600). */
        ck_assert_str_eq(step(&s, 5200, MEMORY_LEVEL_LOW), "K4");
        /* Paced: 500 ms between kills at low. */
        ck_assert_str_eq(step(&s, 5300, MEMORY_LEVEL_LOW), "");
        ck_assert_str_eq(step(&s, 5699, MEMORY_LEVEL_LOW), "");
        ck_assert_str_eq(step(&s, 5700, MEMORY_LEVEL_LOW), "K2");
        ck_assert_str_eq(step(&s, 6200, MEMORY_LEVEL_LOW), "K3");
        /* Low's floor (800) spares the service (200) and the foreground app (0), and
         * the packed member has no cgroup of its own to kill. */
        ck_assert_str_eq(step(&s, 6700, MEMORY_LEVEL_LOW), "");
        ck_assert_str_eq(step(&s, 9000, MEMORY_LEVEL_LOW), "");
        ck_assert_uint_eq(s.p.kills, 3);
        /* Pressure ends: the soft limits put back (the killed apps' too: their next
         * run starts with none, and the restore of one without a reclaim is a no-op),
         * and the episode forgotten. */
        ck_assert_str_eq(step(&s, 9100, MEMORY_LEVEL_NORMAL), "S2 S3 S4");
        ck_assert_int_eq(s.p.stage, MEMORY_STAGE_IDLE);
        for (size_t i = 0; i < s.n; i++) {
                ck_assert_int_eq(s.app[i].trimmed, MEMORY_LEVEL_NORMAL);
                ck_assert_int_eq(s.app[i].reclaimed, MEMORY_LEVEL_NORMAL);
        }
        ck_assert_str_eq(step(&s, 9200, MEMORY_LEVEL_NORMAL), "");
        /* A new episode trims again. */
        ck_assert_str_eq(step(&s, 20000, MEMORY_LEVEL_MODERATE), "T0 T1 T5");
        ck_assert_uint_eq(s.p.episodes, 2);
}
END_TEST

START_TEST(test_policy_critical)
{
        MemoryPolicyConfig c;
        Sim s;

        memory_policy_config_default(&c);
        sim_init(&s, &c);
        /* Straight to critical: every stage in the one sample, in order, and a kill. */
        ck_assert_str_eq(step(&s, 1000, MEMORY_LEVEL_CRITICAL),
                         "T0 T1 T2 T3 T4 T5 R2 R3 R4 F2 F3 K4");
        /* Not paced at critical: the next sample kills the next one. */
        ck_assert_str_eq(step(&s, 1010, MEMORY_LEVEL_CRITICAL), "K2");
        ck_assert_str_eq(step(&s, 1020, MEMORY_LEVEL_CRITICAL), "K3");
        /* Then the service (band 200, above the floor 100)... */
        ck_assert_str_eq(step(&s, 1030, MEMORY_LEVEL_CRITICAL), "K1");
        /* ...but never the foreground app (band 0 under the default floor 100). */
        ck_assert_str_eq(step(&s, 1040, MEMORY_LEVEL_CRITICAL), "");
        ck_assert_str_eq(step(&s, 1050, MEMORY_LEVEL_CRITICAL), "");
        /* Back down to low: kills paced again from the last one. */
        ck_assert_uint_eq(s.p.kills, 4);
}
END_TEST

START_TEST(test_policy_floor_zero_and_heaviest)
{
        MemoryPolicyConfig c;
        Sim s;

        memory_policy_config_default(&c);
        c.kill_floor[MEMORY_LEVEL_CRITICAL] = 0; /* lmkd's ro.lmk.critical */
        sim_init(&s, &c);
        /* Two foreground-band apps of different weight: band 0 goes heaviest first. */
        s.cand[SVC] = (MemoryCandidate){
                .cls = MEMORY_CLASS_FOREGROUND, .last_used_usec = 1000, .memory_bytes = 80 * MiB};
        s.n = 2;
        ck_assert_str_eq(step(&s, 1000, MEMORY_LEVEL_CRITICAL), "T0 T1 K1");
        ck_assert_str_eq(step(&s, 1010, MEMORY_LEVEL_CRITICAL), "K0");
}
END_TEST

START_TEST(test_policy_failures)
{
        MemoryPolicyConfig c;
        Sim s;

        memory_policy_config_default(&c);
        sim_init(&s, &c);
        /* A freeze that failed (a pure v1 host) is not tried again, and the app stays
         * background: low's floor (800) then spares it, critical's does not. */
        s.app[BG_OLD].no_freeze = true;
        s.app[BG_NEW].no_freeze = true;
        ck_assert_str_eq(step(&s, 1000, MEMORY_LEVEL_LOW), "T0 T1 T2 T3 T4 T5");
        ck_assert_str_eq(step(&s, 1100, MEMORY_LEVEL_LOW), "R2 R3 R4");
        /* The freeze stage passes with nothing to freeze. */
        ck_assert_str_eq(step(&s, 1200, MEMORY_LEVEL_LOW), "");
        /* A kill that failed: that app is left, the next one taken. */
        s.app[CACHED].no_kill = true;
        ck_assert_str_eq(step(&s, 1300, MEMORY_LEVEL_LOW), "");
        ck_assert_str_eq(step(&s, 1400, MEMORY_LEVEL_CRITICAL), "T0 T1 T2 T3 T4 T5 R2 R3 R4 K2");
        /* The end of the episode keeps no_freeze (the host cannot) and drops no_kill. */
        (void)step(&s, 2000, MEMORY_LEVEL_NORMAL);
        ck_assert(s.app[BG_NEW].no_freeze);
        ck_assert(!s.app[CACHED].no_kill);
}
END_TEST

START_TEST(test_policy_moderate_floor)
{
        MemoryPolicyConfig c;
        Sim s;

        /* A floor at moderate (a config that kills cached apps early): the freeze
         * stage, which starts at low, is passed by; the kill follows the reclaim's
         * step. */
        memory_policy_config_default(&c);
        c.kill_floor[MEMORY_LEVEL_MODERATE] = 900;
        c.step_ms = 50;
        sim_init(&s, &c);
        ck_assert_str_eq(step(&s, 1000, MEMORY_LEVEL_MODERATE), "T0 T1 T2 T3 T4 T5");
        ck_assert_str_eq(step(&s, 1050, MEMORY_LEVEL_MODERATE), "R2 R3 R4");
        ck_assert_str_eq(step(&s, 1060, MEMORY_LEVEL_MODERATE), "");
        ck_assert_str_eq(step(&s, 1100, MEMORY_LEVEL_MODERATE), "K4");
        /* The background apps (700) are below 900: not killed at moderate. */
        ck_assert_str_eq(step(&s, 1700, MEMORY_LEVEL_MODERATE), "");
}
END_TEST

START_TEST(test_policy_config)
{
        ManagerConfig m;
        MemoryPolicyConfig c;
        const char *why = NULL;
        char *err = NULL;
        static const char ok[] = "{\"memory\": {\"action\": {\"step_ms\": 0}, \"kill\": "
                                 "{\"interval_ms\": 250, \"floor\": {\"moderate\": 950, "
                                 "\"low\": 700, \"critical\": 0}}}}";
        static const char bad[] = "{\"memory\": {\"kill\": {\"floor\": {\"low\": 100, "
                                  "\"critical\": 500}}}}";
        static const char big[] = "{\"memory\": {\"kill\": {\"floor\": {\"low\": 1001}}}}";

        memory_policy_config_default(&c);
        ck_assert_int_eq(memory_policy_config_check(&c, &why), 0);
        ck_assert_uint_eq(c.kill_interval_ms, 500);
        ck_assert_uint_eq(c.kill_floor[MEMORY_LEVEL_MODERATE], 1000);
        ck_assert_uint_eq(c.kill_floor[MEMORY_LEVEL_LOW], 800);
        ck_assert_uint_eq(c.kill_floor[MEMORY_LEVEL_CRITICAL], 100);

        ck_assert_int_eq(manager_config_parse("t.conf", ok, strlen(ok), &m, &err), 0);
        ck_assert_uint_eq(m.policy.step_ms, 0);
        ck_assert_uint_eq(m.policy.kill_interval_ms, 250);
        ck_assert_uint_eq(m.policy.kill_floor[MEMORY_LEVEL_MODERATE], 950);
        ck_assert_uint_eq(m.policy.kill_floor[MEMORY_LEVEL_LOW], 700);
        ck_assert_uint_eq(m.policy.kill_floor[MEMORY_LEVEL_CRITICAL], 0);

        ck_assert_int_eq(manager_config_parse("t.conf", bad, strlen(bad), &m, &err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "t.conf: memory.kill.floor: "));
        ck_assert_ptr_nonnull(strstr(err, "below it"));
        free(err);
        err = NULL;
        ck_assert_int_eq(manager_config_parse("t.conf", big, strlen(big), &m, &err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "memory.kill.floor.low"));
        free(err);
}
END_TEST

START_TEST(test_sampler_hold)
{
        MemorySamplerConfig c = {.window_ms = 2000, .short_ms = 10, .long_ms = 100};
        MemorySampler s;
        uint64_t t;

        ck_assert_int_eq(memory_sampler_init(&s, &c), 0);
        t = memory_sampler_triggered(&s, 1000 * MS);
        ck_assert_uint_eq(t, 1000 * MS);
        /* The window ends: idle, unless the level is still up: held one more window at
         * the long interval, no trigger counted. */
        ck_assert_uint_eq(memory_sampler_sampled(&s, 3000 * MS, true), 0);
        ck_assert(memory_sampler_idle(&s));
        ck_assert_uint_eq(memory_sampler_hold(&s, 3000 * MS), 3100 * MS);
        ck_assert(!memory_sampler_idle(&s));
        ck_assert_uint_eq(s.triggers, 1);
        ck_assert_uint_eq(memory_sampler_sampled(&s, 3100 * MS, false), 3200 * MS);
        ck_assert_uint_eq(memory_sampler_sampled(&s, 5000 * MS, false), 0);
        ck_assert(memory_sampler_idle(&s));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("memory-policy");
        TCase *tc = tcase_create("logic");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_gauge_stall);
        tcase_add_test(tc, test_gauge_free);
        tcase_add_test(tc, test_policy_order_and_steps);
        tcase_add_test(tc, test_policy_critical);
        tcase_add_test(tc, test_policy_floor_zero_and_heaviest);
        tcase_add_test(tc, test_policy_failures);
        tcase_add_test(tc, test_policy_moderate_floor);
        tcase_add_test(tc, test_policy_config);
        tcase_add_test(tc, test_sampler_hold);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
