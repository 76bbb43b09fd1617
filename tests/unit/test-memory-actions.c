/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The memory manager's actions (src/memory/band.c, action.c; sandbox/cgroup-action.c):
 * band choice and action order over injected figures (no clock, no sleep), the
 * cgroup additions on fake v1, v2 and hybrid trees, and oom_score_adj on a real
 * child process; compressed swap (src/memory/swap.c): detection on fake /proc and
 * /sys trees and on this host, the caps by class and their writes on fake trees.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/macro.h"
#include "memory/action.h"
#include "memory/band.h"
#include "memory/swap.h"
#include "sandbox/cgroup.h"

#define MiB (UINT64_C(1) << 20)

/* ---- bands and order -------------------------------------------------------------- */

START_TEST(test_band_values)
{
        /* Android's adj values (ProcessList.java), as issue 13 lists them. */
        ck_assert_int_eq(memory_band(MEMORY_CLASS_FOREGROUND, 5), 0);
        ck_assert_int_eq(memory_band(MEMORY_CLASS_VISIBLE, 0), 100);
        ck_assert_int_eq(memory_band(MEMORY_CLASS_SERVICE, 0), 200);
        ck_assert_int_eq(memory_band(MEMORY_CLASS_SERVICE, 37), 237);
        ck_assert_int_eq(memory_band(MEMORY_CLASS_SERVICE, 100), 300);
        ck_assert_int_eq(memory_band(MEMORY_CLASS_SERVICE, 100000), 300);
        ck_assert_int_eq(memory_band(MEMORY_CLASS_BACKGROUND, 3), 700);
        ck_assert_int_eq(memory_band(MEMORY_CLASS_CACHED, 0), 900);
        ck_assert_int_eq(memory_band(MEMORY_CLASS_CACHED, 98), 998);
        ck_assert_int_eq(memory_band(MEMORY_CLASS_CACHED, 99), 999);
        ck_assert_int_eq(memory_band(MEMORY_CLASS_CACHED, UINT32_MAX), 999);
        ck_assert_int_eq(memory_band(MEMORY_CLASS_NONE, 0), MEMORY_BAND_NONE);
        ck_assert_int_eq(memory_band(_MEMORY_CLASS_MAX, 0), MEMORY_BAND_NONE);
        ck_assert_int_eq(memory_band((MemoryClass)-3, 0), MEMORY_BAND_NONE);

        ck_assert_int_eq(memory_class_of_state_name("foreground"), MEMORY_CLASS_FOREGROUND);
        ck_assert_int_eq(memory_class_of_state_name("visible"), MEMORY_CLASS_VISIBLE);
        ck_assert_int_eq(memory_class_of_state_name("service"), MEMORY_CLASS_SERVICE);
        ck_assert_int_eq(memory_class_of_state_name("background"), MEMORY_CLASS_BACKGROUND);
        ck_assert_int_eq(memory_class_of_state_name("cached"), MEMORY_CLASS_CACHED);
        ck_assert_int_eq(memory_class_of_state_name("frozen"), MEMORY_CLASS_CACHED);
        ck_assert_int_eq(memory_class_of_state_name("stopped"), MEMORY_CLASS_NONE);
        ck_assert_int_eq(memory_class_of_state_name("Foreground"), MEMORY_CLASS_NONE);
        ck_assert_int_eq(memory_class_of_state_name(""), MEMORY_CLASS_NONE);
        ck_assert_int_eq(memory_class_of_state_name(NULL), MEMORY_CLASS_NONE);

        ck_assert_int_eq(memory_band_oom_score_adj(0), 0);
        ck_assert_int_eq(memory_band_oom_score_adj(700), 700);
        ck_assert_int_eq(memory_band_oom_score_adj(999), 999);
        ck_assert_int_eq(memory_band_oom_score_adj(MEMORY_BAND_NONE), 1000);
        ck_assert_int_eq(memory_band_oom_score_adj(1000), 1000);
        ck_assert_int_eq(memory_band_oom_score_adj(-1000), 1000);
}
END_TEST

START_TEST(test_assign_bands_by_recency)
{
        /* Three cached apps and two services: the most recent of each class first. */
        MemoryCandidate c[] = {
                {.cls = MEMORY_CLASS_CACHED, .last_used_usec = 100},
                {.cls = MEMORY_CLASS_CACHED, .last_used_usec = 300},
                {.cls = MEMORY_CLASS_SERVICE, .last_used_usec = 50},
                {.cls = MEMORY_CLASS_CACHED, .last_used_usec = 200},
                {.cls = MEMORY_CLASS_SERVICE, .last_used_usec = 60},
                {.cls = MEMORY_CLASS_FOREGROUND, .last_used_usec = 1},
                {.cls = MEMORY_CLASS_NONE, .last_used_usec = 999},
                /* A tie with c[1]: the lower index is the more recent. */
                {.cls = MEMORY_CLASS_CACHED, .last_used_usec = 300},
        };

        memory_assign_bands(c, ELEMENTSOF(c));
        ck_assert_int_eq(c[1].band, 900);
        ck_assert_int_eq(c[7].band, 901);
        ck_assert_int_eq(c[3].band, 902);
        ck_assert_int_eq(c[0].band, 903);
        ck_assert_int_eq(c[4].band, 200);
        ck_assert_int_eq(c[2].band, 201);
        ck_assert_int_eq(c[5].band, 0);
        ck_assert_int_eq(c[6].band, MEMORY_BAND_NONE);
        memory_assign_bands(NULL, 0);
}
END_TEST

START_TEST(test_order)
{
        /* A kernel's apps with injected last-use times (µs) and memory (bytes). */
        MemoryCandidate c[] = {
                [0] = {.cls = MEMORY_CLASS_FOREGROUND, .last_used_usec = 1000, .memory_bytes = 900},
                [1] = {.cls = MEMORY_CLASS_BACKGROUND, .last_used_usec = 500, .memory_bytes = 10},
                [2] = {.cls = MEMORY_CLASS_BACKGROUND, .last_used_usec = 100, .memory_bytes = 5},
                [3] = {.cls = MEMORY_CLASS_CACHED, .last_used_usec = 50, .memory_bytes = 1},
                [4] = {.cls = MEMORY_CLASS_CACHED, .last_used_usec = 70, .memory_bytes = 100},
                [5] = {.cls = MEMORY_CLASS_VISIBLE, .last_used_usec = 900, .memory_bytes = 1},
                [6] = {.cls = MEMORY_CLASS_SERVICE, .last_used_usec = 10, .memory_bytes = 20},
                [7] = {.cls = MEMORY_CLASS_NONE, .last_used_usec = 0, .memory_bytes = 1000},
                [8] = {.cls = MEMORY_CLASS_BACKGROUND, .last_used_usec = 100, .memory_bytes = 50},
        };
        size_t order[ELEMENTSOF(c)], n;

        memory_assign_bands(c, ELEMENTSOF(c));
        n = memory_order(c, ELEMENTSOF(c), order);
        /* Cached (least recent first: 3 at 50 µs before 4 at 70, their bands 901 and 900),
         * then background least recent first (2 and 8 tie at 100 µs: index order, not
         * memory), then 1, the service, visible, foreground; the stopped app not at all. */
        ck_assert_uint_eq(n, 8);
        ck_assert_uint_eq(order[0], 3);
        ck_assert_uint_eq(order[1], 4);
        ck_assert_uint_eq(order[2], 2);
        ck_assert_uint_eq(order[3], 8);
        ck_assert_uint_eq(order[4], 1);
        ck_assert_uint_eq(order[5], 6);
        ck_assert_uint_eq(order[6], 5);
        ck_assert_uint_eq(order[7], 0);
}
END_TEST

START_TEST(test_order_heaviest_first_up_to_200)
{
        /* Same band <= 200: the heaviest first, whatever the recency; band 700: LRU. */
        MemoryCandidate c[] = {
                {.band = 200, .last_used_usec = 1, .memory_bytes = 10 * MiB},
                {.band = 200, .last_used_usec = 9, .memory_bytes = 30 * MiB},
                {.band = 200, .last_used_usec = 5, .memory_bytes = 20 * MiB},
                {.band = 100, .last_used_usec = 0, .memory_bytes = 1},
                {.band = 100, .last_used_usec = 9, .memory_bytes = 2},
                {.band = 700, .last_used_usec = 9, .memory_bytes = 99 * MiB},
                {.band = 700, .last_used_usec = 3, .memory_bytes = 1},
                {.band = 1000}, /* not a band: left out */
                {.band = MEMORY_BAND_NONE},
        };
        size_t order[ELEMENTSOF(c)], n;

        n = memory_order(c, ELEMENTSOF(c), order);
        ck_assert_uint_eq(n, 7);
        ck_assert_uint_eq(order[0], 6);
        ck_assert_uint_eq(order[1], 5);
        ck_assert_uint_eq(order[2], 1);
        ck_assert_uint_eq(order[3], 2);
        ck_assert_uint_eq(order[4], 0);
        ck_assert_uint_eq(order[5], 4);
        ck_assert_uint_eq(order[6], 3);
        ck_assert_uint_eq(memory_order(NULL, 0, NULL), 0);
}
END_TEST

/* ---- cgroup additions on fake trees --------------------------------------------------- */

static char fake_base[] = "/tmp/cella-memtest-XXXXXX";

static char *fmt(const char *f, ...) _printf_(1, 2);
static char *fmt(const char *f, ...)
{
        va_list ap;
        char *s;

        va_start(ap, f);
        ck_assert_int_ge(vasprintf(&s, f, ap), 0);
        va_end(ap);
        return s;
}

static void writef(const char *content, const char *f, ...) _printf_(2, 3);
static void writef(const char *content, const char *f, ...)
{
        _cleanup_free_ char *p = NULL;
        va_list ap;
        FILE *fp;

        va_start(ap, f);
        ck_assert_int_ge(vasprintf(&p, f, ap), 0);
        va_end(ap);
        fp = fopen(p, "we");
        ck_assert_msg(fp, "open %s: %m", p);
        fputs(content, fp);
        ck_assert_int_eq(fclose(fp), 0);
}

static void assert_file(const char *want, const char *f, ...) _printf_(2, 3);
static void assert_file(const char *want, const char *f, ...)
{
        _cleanup_free_ char *p = NULL;
        char buf[256] = "";
        va_list ap;
        FILE *fp;

        va_start(ap, f);
        ck_assert_int_ge(vasprintf(&p, f, ap), 0);
        va_end(ap);
        fp = fopen(p, "re");
        ck_assert_msg(fp, "open %s: %m", p);
        (void)!fread(buf, 1, sizeof buf - 1, fp);
        fclose(fp);
        ck_assert_str_eq(buf, want);
}

static void mkdirf(const char *f, ...) _printf_(1, 2);
static void mkdirf(const char *f, ...)
{
        _cleanup_free_ char *p = NULL;
        va_list ap;

        va_start(ap, f);
        ck_assert_int_ge(vasprintf(&p, f, ap), 0);
        va_end(ap);
        ck_assert_msg(mkdir(p, 0755) == 0, "mkdir %s: %m", p);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st, (void)flag, (void)ftw;
        return remove(p) < 0 ? -1 : 0;
}

static void fake_setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(fake_base));
}

static void fake_teardown(void)
{
        (void)nftw(fake_base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *fake_dir(void)
{
        char *fs = fmt("%s/XXXXXX", fake_base);

        ck_assert_ptr_nonnull(mkdtemp(fs));
        return fs;
}

/* A fake v2 mount (as test-cgroup.c's): memory, pids, cpu offered, cella's root made. */
static char *fake_v2(void)
{
        char *fs = fake_dir();

        writef("cpu memory pids\n", "%s/cgroup.controllers", fs);
        writef("", "%s/cgroup.subtree_control", fs);
        writef("", "%s/cgroup.procs", fs);
        mkdirf("%s/cella", fs);
        writef("cpu memory pids\n", "%s/cella/cgroup.controllers", fs);
        writef("", "%s/cella/cgroup.subtree_control", fs);
        return fs;
}

/* v1 controllers, and a controller-less cgroup2 at unified if hybrid. */
static char *fake_v1(bool hybrid)
{
        char *fs = fake_dir();
        const char *dirs[] = {"memory", "pids", "cpu", "cpuacct", "freezer"};

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                mkdirf("%s/%s", fs, dirs[i]);
                writef("", "%s/%s/cgroup.procs", fs, dirs[i]);
        }
        if (hybrid) {
                mkdirf("%s/unified", fs);
                writef("", "%s/unified/cgroup.controllers", fs);
                writef("", "%s/unified/cgroup.procs", fs);
        }
        return fs;
}

static void manager_freep(CgroupManager **m)
{
        cgroup_manager_free(*m);
}

static void cgroup_closep(Cgroup **cg)
{
        cgroup_close(*cg);
}

START_TEST(test_soft_limit_v2_fake)
{
        _cleanup_free_ char *fs = fake_v2();
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        _cleanup_(cgroup_closep) Cgroup *cg = NULL;
        MemoryReclaim rc;
        const char *leaf;
        uint64_t v;

        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V2, NULL, &m), 0);
        ck_assert_int_eq(cgroup_new(m, "app", &cg), 0);
        leaf = cgroup_path(cg, "");

        /* No memory.high: the memory controller is not enabled in the leaf. */
        ck_assert_int_eq(cgroup_set_soft_limit(cg, 8 * MiB), -EOPNOTSUPP);
        ck_assert_int_eq(cgroup_soft_limit(cg, &v), -EOPNOTSUPP);

        writef("max\n", "%s/memory.high", leaf);
        ck_assert_int_eq(cgroup_soft_limit(cg, &v), 0);
        ck_assert_uint_eq(v, UINT64_MAX);
        ck_assert_int_eq(cgroup_set_soft_limit(cg, 8 * MiB), 0);
        assert_file("8388608", "%s/memory.high", leaf);
        writef("", "%s/memory.high", leaf); /* a plain file: no truncation by the write */
        ck_assert_int_eq(cgroup_set_soft_limit(cg, UINT64_MAX), 0);
        assert_file("max", "%s/memory.high", leaf);
        ck_assert_int_eq(cgroup_set_soft_limit(cg, 0), -EINVAL);
        ck_assert_int_eq(cgroup_set_soft_limit(NULL, 1), -EINVAL);

        /* Reclaim: 75% of 100 MiB in use; then restored to what it was ("max"). */
        writef("max\n", "%s/memory.high", leaf);
        writef("104857600\n", "%s/memory.current", leaf);
        ck_assert_int_eq(memory_reclaim(cg, 75, &rc), 0);
        ck_assert_uint_eq(rc.previous, UINT64_MAX);
        ck_assert_uint_eq(rc.usage, 100 * MiB);
        ck_assert_uint_eq(rc.soft_limit, 75 * MiB);
        assert_file("78643200", "%s/memory.high", leaf);
        writef("", "%s/memory.high", leaf);
        ck_assert_int_eq(memory_reclaim_restore(cg, &rc), 0);
        assert_file("max", "%s/memory.high", leaf);

        /* Never below the floor, never above a soft limit it had. */
        writef("max\n", "%s/memory.high", leaf);
        writef("1048576\n", "%s/memory.current", leaf);
        ck_assert_int_eq(memory_reclaim(cg, 50, &rc), 0);
        ck_assert_uint_eq(rc.soft_limit, MEMORY_RECLAIM_FLOOR);
        writef("6291456\n", "%s/memory.high", leaf);
        writef("104857600\n", "%s/memory.current", leaf);
        ck_assert_int_eq(memory_reclaim(cg, 90, &rc), 0);
        ck_assert_uint_eq(rc.previous, 6 * MiB);
        ck_assert_uint_eq(rc.soft_limit, 6 * MiB);
        ck_assert_int_eq(memory_reclaim(cg, 0, &rc), -EINVAL);
        ck_assert_int_eq(memory_reclaim(cg, 101, &rc), -EINVAL);
}
END_TEST

START_TEST(test_soft_limit_v1_fake)
{
        for (int hybrid = 0; hybrid <= 1; hybrid++) {
                _cleanup_free_ char *fs = fake_v1(hybrid);
                _cleanup_(manager_freep) CgroupManager *m = NULL;
                _cleanup_(cgroup_closep) Cgroup *cg = NULL;
                MemoryReclaim rc;
                const char *mem;
                uint64_t v;

                ck_assert_int_eq(cgroup_manager_new(fs,
                                                    hybrid ? CGROUP_MODE_HYBRID : CGROUP_MODE_V1,
                                                    NULL, &m),
                                 0);
                ck_assert_int_eq(cgroup_new(m, "app", &cg), 0);
                mem = cgroup_path(cg, "memory");
                /* The kernel's "no limit": PAGE_COUNTER_MAX pages in bytes. */
                writef("9223372036854771712\n", "%s/memory.soft_limit_in_bytes", mem);
                writef("41943040\n", "%s/memory.usage_in_bytes", mem);
                ck_assert_int_eq(cgroup_soft_limit(cg, &v), 0);
                ck_assert_uint_eq(v, UINT64_MAX);
                ck_assert_int_eq(memory_reclaim(cg, 50, &rc), 0);
                ck_assert_uint_eq(rc.soft_limit, 20 * MiB);
                /* The write went over the old value of a plain file (no truncation):
                 * its first bytes are the new limit. */
                {
                        _cleanup_free_ char *p = fmt("%s/memory.soft_limit_in_bytes", mem);
                        char buf[32] = "";
                        FILE *f = fopen(p, "re");

                        ck_assert_ptr_nonnull(f);
                        (void)!fread(buf, 1, sizeof buf - 1, f);
                        fclose(f);
                        ck_assert_int_eq(strncmp(buf, "20971520", 8), 0);
                }
                writef("", "%s/memory.soft_limit_in_bytes", mem);
                ck_assert_int_eq(memory_reclaim_restore(cg, &rc), 0);
                assert_file("-1", "%s/memory.soft_limit_in_bytes", mem);
                if (hybrid) {
                        _cleanup_free_ char *high = fmt("%s/memory.high", cgroup_path(cg, ""));

                        /* Nothing of it in the (controller-less) unified leaf. */
                        ck_assert(access(high, F_OK) < 0);
                }
        }
}
END_TEST

START_TEST(test_freeze_unified_fake)
{
        _cleanup_free_ char *v2 = fake_v2(), *hy = fake_v1(true), *v1 = fake_v1(false);
        _cleanup_(manager_freep) CgroupManager *m2 = NULL, *mh = NULL, *m1 = NULL;
        _cleanup_(cgroup_closep) Cgroup *c2 = NULL, *ch = NULL, *c1 = NULL;
        uint64_t usec = 0;

        ck_assert_int_eq(cgroup_manager_new(v2, CGROUP_MODE_V2, NULL, &m2), 0);
        ck_assert_int_eq(cgroup_new(m2, "app", &c2), 0);
        ck_assert_int_eq(cgroup_manager_new(hy, CGROUP_MODE_HYBRID, NULL, &mh), 0);
        ck_assert_int_eq(cgroup_new(mh, "app", &ch), 0);
        ck_assert_int_eq(cgroup_manager_new(v1, CGROUP_MODE_V1, NULL, &m1), 0);
        ck_assert_int_eq(cgroup_new(m1, "app", &c1), 0);

        /* v2 and hybrid: cgroup.freeze in the cgroup2 leaf, confirmed by cgroup.events. */
        for (Cgroup *cg = c2;; cg = ch) {
                const char *u = cgroup_path(cg, "");

                /* No cgroup.freeze (a kernel before 5.2). */
                ck_assert_int_eq(memory_freeze(cg, true, NULL), -EOPNOTSUPP);
                writef("", "%s/cgroup.freeze", u);
                writef("populated 1\nfrozen 1\n", "%s/cgroup.events", u);
                ck_assert_int_eq(memory_freeze(cg, true, &usec), 0);
                assert_file("1", "%s/cgroup.freeze", u);
                /* Never confirmed: bounded, and the freeze is undone. */
                writef("populated 1\nfrozen 0\n", "%s/cgroup.events", u);
                writef("", "%s/cgroup.freeze", u);
                ck_assert_int_eq(cgroup_freeze_unified(cg, true, 50), -ETIMEDOUT);
                assert_file("0", "%s/cgroup.freeze", u);
                writef("", "%s/cgroup.freeze", u);
                ck_assert_int_eq(memory_freeze(cg, false, &usec), 0);
                assert_file("0", "%s/cgroup.freeze", u);
                if (cg == ch)
                        break;
        }
        /* The hybrid's v1 freezer is never touched (the backend makes no leaf there). */
        ck_assert_ptr_null(cgroup_path(ch, "freezer"));

        /* Pure v1: no cgroup2 hierarchy, so no freeze at all, and the v1 freezer is left
         * alone (its leaf exists, and its state file stays as it was). */
        writef("THAWED\n", "%s/freezer.state", cgroup_path(c1, "freezer"));
        ck_assert_int_eq(memory_freeze(c1, true, NULL), -EOPNOTSUPP);
        assert_file("THAWED\n", "%s/freezer.state", cgroup_path(c1, "freezer"));
}
END_TEST

START_TEST(test_kill_wait_fake)
{
        _cleanup_free_ char *fs = fake_v2();
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        _cleanup_(cgroup_closep) Cgroup *cg = NULL;
        MemoryKill k;
        const char *u;
        pid_t child;
        int status;

        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V2, NULL, &m), 0);
        ck_assert_int_eq(cgroup_new(m, "app", &cg), 0);
        u = cgroup_path(cg, "");
        writef("", "%s/cgroup.kill", u);
        writef("", "%s/cgroup.procs", u);
        writef("populated 0\nfrozen 0\n", "%s/cgroup.events", u);
        writef("1000\n", "%s/memory.current", u);
        ck_assert_int_eq(memory_kill(cg, &k), 0);
        assert_file("1", "%s/cgroup.kill", u);
        ck_assert_uint_eq(k.usage_before, 1000);

        /* Populated until another process rewrites cgroup.events: the wait sees it
         * whenever the write comes (before or during the wait). */
        writef("populated 1\nfrozen 0\n", "%s/cgroup.events", u);
        child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
                /* Replaced whole (rename), as the kernel's file never reads half-written. */
                char *tmp = fmt("%s/events.tmp", u), *ev = fmt("%s/cgroup.events", u);
                FILE *f = fopen(tmp, "we");

                _exit(!f || fputs("populated 0\nfrozen 0\n", f) < 0 || fclose(f) != 0 ||
                      rename(tmp, ev) < 0);
        }
        ck_assert_int_eq(cgroup_wait_unpopulated(cg, 30000), 0);
        ck_assert_int_eq(waitpid(child, &status, 0), child);
        ck_assert_int_eq(status, 0);

        /* Never empty: -EBUSY after the timeout. */
        writef("populated 1\nfrozen 0\n", "%s/cgroup.events", u);
        ck_assert_int_eq(cgroup_wait_unpopulated(cg, 20), -EBUSY);
}
END_TEST

/* A pid in cgroup.procs whose process is not in that cgroup (it exited and its pid
 * went to another process, here a live child in the test's own cgroup): its
 * oom_score_adj is left alone. */
START_TEST(test_oom_score_adj_skips_a_reused_pid)
{
        _cleanup_free_ char *fs = fake_v2();
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        _cleanup_(cgroup_closep) Cgroup *cg = NULL;
        _cleanup_free_ char *procs = NULL;
        int pipefd[2], before = 0, adj = 0;
        pid_t child;
        char c;

        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V2, NULL, &m), 0);
        ck_assert_int_eq(cgroup_new(m, "app", &cg), 0);
        ck_assert_int_eq(pipe(pipefd), 0);
        child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
                close(pipefd[1]);
                (void)!read(pipefd[0], &c, 1);
                _exit(0);
        }
        close(pipefd[0]);
        ck_assert_int_eq(memory_pid_oom_score_adj(child, &before), 0);
        procs = fmt("%d\n", (int)child);
        writef(procs, "%s/cgroup.procs", cgroup_path(cg, ""));
        ck_assert_int_eq(memory_set_oom_score_adj(cg, 905), 0); /* none written */
        ck_assert_int_eq(memory_pid_oom_score_adj(child, &adj), 0);
        ck_assert_int_eq(adj, before);
        close(pipefd[1]);
        ck_assert_int_eq(waitpid(child, NULL, 0), child);
}
END_TEST

/* ---- oom_score_adj of a real process ------------------------------------------------- */

START_TEST(test_oom_score_adj_pid)
{
        int pipefd[2], adj = 0;
        pid_t child;
        char c;

        ck_assert_int_eq(pipe(pipefd), 0);
        child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
                close(pipefd[1]);
                (void)!read(pipefd[0], &c, 1); /* until the parent closes its end */
                _exit(0);
        }
        close(pipefd[0]);
        ck_assert_int_eq(memory_set_pid_oom_score_adj(child, memory_band_oom_score_adj(905)), 0);
        ck_assert_int_eq(memory_pid_oom_score_adj(child, &adj), 0);
        ck_assert_int_eq(adj, 905);
        ck_assert_int_eq(memory_set_pid_oom_score_adj(child, 700), 0);
        ck_assert_int_eq(memory_pid_oom_score_adj(child, &adj), 0);
        ck_assert_int_eq(adj, 700);
        ck_assert_int_eq(memory_set_pid_oom_score_adj(child, 1001), -EINVAL);
        ck_assert_int_eq(memory_set_pid_oom_score_adj(child, -1001), -EINVAL);
        ck_assert_int_eq(memory_set_pid_oom_score_adj(-1, 0), -EINVAL);
        close(pipefd[1]);
        ck_assert_int_eq(waitpid(child, NULL, 0), child);
        /* Gone: no such /proc entry. */
        ck_assert_int_eq(memory_set_pid_oom_score_adj(child, 0), -ENOENT);
        ck_assert_int_eq(memory_pid_oom_score_adj(0, &adj), 0);
}
END_TEST

/* ---- compressed swap ------------------------------------------------------------------ */

#define MEMINFO_NO_SWAP                                                                            \
        "MemTotal:       24683784 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
#define SWAPS_HEADER "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"

/* A fake /proc and /sys under a fresh directory: ret_proc, ret_sys. */
static char *fake_host(char **ret_sys)
{
        _cleanup_free_ char *root = fake_dir();

        mkdirf("%s/proc", root);
        mkdirf("%s/sys", root);
        *ret_sys = fmt("%s/sys", root);
        return fmt("%s/proc", root);
}

START_TEST(test_swap_detect_fake)
{
        SwapInfo i;

        /* No swap at all, no /proc/swaps, no /sys: none, not compressed. */
        {
                _cleanup_free_ char *sys = NULL, *proc = fake_host(&sys);

                writef(MEMINFO_NO_SWAP, "%s/meminfo", proc);
                ck_assert_int_eq(swap_detect(proc, sys, &i), 0);
                ck_assert_uint_eq(i.total, 0);
                ck_assert_uint_eq(i.n_areas, 0);
                ck_assert_str_eq(swap_info_kind(&i), "none");
                ck_assert(!swap_info_compressed(&i));
        }
        /* This host's case: a zram device exists, but is no swap area; zswap off. */
        {
                _cleanup_free_ char *sys = NULL, *proc = fake_host(&sys);

                writef(MEMINFO_NO_SWAP, "%s/meminfo", proc);
                writef(SWAPS_HEADER, "%s/swaps", proc);
                mkdirf("%s/block", sys);
                mkdirf("%s/block/zram0", sys);
                writef("[lzo-rle] lzo lz4\n", "%s/block/zram0/comp_algorithm", sys);
                mkdirf("%s/module", sys);
                mkdirf("%s/module/zswap", sys);
                mkdirf("%s/module/zswap/parameters", sys);
                writef("N\n", "%s/module/zswap/parameters/enabled", sys);
                ck_assert_int_eq(swap_detect(proc, sys, &i), 0);
                ck_assert_uint_eq(i.zram_devices, 1);
                ck_assert_uint_eq(i.n_zram, 0);
                ck_assert(!i.zswap);
                ck_assert_str_eq(swap_info_kind(&i), "none");
                ck_assert(!swap_info_compressed(&i));
        }
        /* zram as swap (as Android and Fedora set it up): compressed. */
        {
                _cleanup_free_ char *sys = NULL, *proc = fake_host(&sys);

                writef("MemTotal: 8000000 kB\nSwapTotal:  4194300 kB\nSwapFree:  4000000 kB\n",
                       "%s/meminfo", proc);
                writef(SWAPS_HEADER "/dev/zram0                              "
                                    "partition\t4194300\t\t194300\t\t100\n",
                       "%s/swaps", proc);
                mkdirf("%s/block", sys);
                mkdirf("%s/block/zram0", sys);
                mkdirf("%s/block/sda", sys);
                writef("lzo lzo-rle lz4 [zstd]\n", "%s/block/zram0/comp_algorithm", sys);
                ck_assert_int_eq(swap_detect(proc, sys, &i), 0);
                ck_assert_uint_eq(i.total, UINT64_C(4194300) * 1024);
                ck_assert_uint_eq(i.free, UINT64_C(4000000) * 1024);
                ck_assert_uint_eq(i.n_areas, 1);
                ck_assert_uint_eq(i.n_zram, 1);
                ck_assert_uint_eq(i.zram_devices, 1);
                ck_assert_str_eq(i.zram_algorithm, "zstd");
                ck_assert_str_eq(swap_info_kind(&i), "zram");
                ck_assert(swap_info_compressed(&i));
        }
        /* zswap in front of a disk swap file: compressed; zswap with no swap area
         * stores nothing: not. */
        for (int area = 0; area <= 1; area++) {
                _cleanup_free_ char *sys = NULL, *proc = fake_host(&sys);

                writef(area ? "SwapTotal: 1048572 kB\nSwapFree: 1048572 kB\n" : MEMINFO_NO_SWAP,
                       "%s/meminfo", proc);
                writef(area ? SWAPS_HEADER "/swapfile file 1048572 0 -2\n" : SWAPS_HEADER,
                       "%s/swaps", proc);
                mkdirf("%s/module", sys);
                mkdirf("%s/module/zswap", sys);
                mkdirf("%s/module/zswap/parameters", sys);
                writef("Y\n", "%s/module/zswap/parameters/enabled", sys);
                writef("lz4\n", "%s/module/zswap/parameters/compressor", sys);
                ck_assert_int_eq(swap_detect(proc, sys, &i), 0);
                ck_assert(i.zswap);
                ck_assert_str_eq(i.zswap_compressor, "lz4");
                ck_assert_uint_eq(i.n_areas, (unsigned)area);
                ck_assert_str_eq(swap_info_kind(&i), area ? "zswap" : "none");
                ck_assert(swap_info_compressed(&i) == (bool)area);
        }
        /* A disk swap area alone: swap, not compressed. */
        {
                _cleanup_free_ char *sys = NULL, *proc = fake_host(&sys);

                writef("SwapTotal: 2048 kB\nSwapFree: 1024 kB\n", "%s/meminfo", proc);
                writef(SWAPS_HEADER "/dev/sda2 partition 2048 1024 -2\n", "%s/swaps", proc);
                ck_assert_int_eq(swap_detect(proc, sys, &i), 0);
                ck_assert_str_eq(swap_info_kind(&i), "swap");
                ck_assert(!swap_info_compressed(&i));
        }
        /* Required: meminfo, with a SwapTotal line. */
        {
                _cleanup_free_ char *sys = NULL, *proc = fake_host(&sys);

                ck_assert_int_eq(swap_detect(proc, sys, &i), -ENOENT);
                writef("MemTotal: 1 kB\n", "%s/meminfo", proc);
                ck_assert_int_eq(swap_detect(proc, sys, &i), -EINVAL);
                ck_assert_int_eq(swap_detect(NULL, sys, &i), -EINVAL);
        }
}
END_TEST

/* The real host (root or not): what swap_detect() says agrees with /proc/swaps. */
START_TEST(test_swap_detect_host)
{
        SwapInfo i;
        FILE *f;
        char line[512];
        unsigned areas = 0, zram = 0;

        ck_assert_int_eq(swap_detect("/proc", "/sys", &i), 0);
        f = fopen("/proc/swaps", "re");
        if (f) {
                ck_assert_ptr_nonnull(fgets(line, sizeof line, f)); /* header */
                while (fgets(line, sizeof line, f)) {
                        areas++;
                        zram += strncmp(line, "/dev/zram", 9) == 0;
                }
                fclose(f);
        }
        ck_assert_uint_eq(i.n_areas, areas);
        ck_assert_uint_eq(i.n_zram, zram);
        ck_assert(swap_info_compressed(&i) == (areas > 0 && (zram > 0 || i.zswap)));
        if (areas == 0) {
                ck_assert_uint_eq(i.total, 0);
                ck_assert_str_eq(swap_info_kind(&i), "none");
        }
}
END_TEST

START_TEST(test_swap_cap_bytes)
{
        SwapCaps caps;

        swap_caps_default(&caps);
        /* A share of the app's limit; without one, of the budget; without both, none. */
        ck_assert_uint_eq(swap_cap_bytes(&caps, CPU_CLASS_FOREGROUND, 100 * MiB, 0), 0);
        ck_assert_uint_eq(swap_cap_bytes(&caps, CPU_CLASS_SERVICE, 100 * MiB, 0), 25 * MiB);
        ck_assert_uint_eq(swap_cap_bytes(&caps, CPU_CLASS_BACKGROUND, UINT64_MAX, 256 * MiB),
                          128 * MiB);
        ck_assert_uint_eq(swap_cap_bytes(&caps, CPU_CLASS_CACHED, 0, 256 * MiB), 256 * MiB);
        ck_assert_uint_eq(swap_cap_bytes(&caps, CPU_CLASS_CACHED, UINT64_MAX, 0), UINT64_MAX);
        /* No overflow near 2^64: 100 % of a huge limit is the limit. */
        ck_assert_uint_eq(swap_cap_bytes(&caps, CPU_CLASS_CACHED, UINT64_MAX - 1, 0),
                          UINT64_MAX - 1);
        ck_assert_uint_eq(swap_cap_bytes(&caps, _CPU_CLASS_MAX, 100 * MiB, 0), UINT64_MAX);
        caps.enabled = false;
        ck_assert_uint_eq(swap_cap_bytes(&caps, CPU_CLASS_SERVICE, 100 * MiB, 0), UINT64_MAX);
        ck_assert_uint_eq(swap_cap_bytes(NULL, CPU_CLASS_SERVICE, 100 * MiB, 0), UINT64_MAX);
}
END_TEST

START_TEST(test_swap_cap_v2_fake)
{
        _cleanup_free_ char *fs = fake_v2();
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        _cleanup_(cgroup_closep) Cgroup *cg = NULL;
        const char *leaf;
        uint64_t v;

        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V2, NULL, &m), 0);
        ck_assert_int_eq(cgroup_new(m, "app", &cg), 0);
        leaf = cgroup_path(cg, "");
        /* No memory.swap.max: no swap accounting (or no memory controller there). */
        ck_assert_int_eq(swap_cap_apply(cg, 8 * MiB), -EOPNOTSUPP);
        ck_assert_int_eq(swap_cap_read(cg, &v), -EOPNOTSUPP);
        /* The sandbox's own setting under a limit: none (cgroup-v2.c writes 0). */
        writef("0\n", "%s/memory.swap.max", leaf);
        ck_assert_int_eq(swap_cap_read(cg, &v), 0);
        ck_assert_uint_eq(v, 0);
        writef("", "%s/memory.swap.max", leaf);
        ck_assert_int_eq(swap_cap_apply(cg, 64 * MiB), 0);
        assert_file("67108864", "%s/memory.swap.max", leaf);
        ck_assert_int_eq(swap_cap_read(cg, &v), 0);
        ck_assert_uint_eq(v, 64 * MiB);
        writef("", "%s/memory.swap.max", leaf);
        ck_assert_int_eq(swap_cap_apply(cg, UINT64_MAX), 0);
        assert_file("max", "%s/memory.swap.max", leaf);
        ck_assert_int_eq(swap_cap_read(cg, &v), 0);
        ck_assert_uint_eq(v, UINT64_MAX);
        ck_assert_int_eq(swap_cap_apply(NULL, 1), -EINVAL);
}
END_TEST

START_TEST(test_swap_cap_v1_fake)
{
        for (int hybrid = 0; hybrid <= 1; hybrid++) {
                _cleanup_free_ char *fs = fake_v1(hybrid);
                _cleanup_(manager_freep) CgroupManager *m = NULL;
                _cleanup_(cgroup_closep) Cgroup *cg = NULL;
                const char *mem;
                uint64_t v;

                ck_assert_int_eq(cgroup_manager_new(fs,
                                                    hybrid ? CGROUP_MODE_HYBRID : CGROUP_MODE_V1,
                                                    NULL, &m),
                                 0);
                ck_assert_int_eq(cgroup_new(m, "app", &cg), 0);
                mem = cgroup_path(cg, "memory");
                /* No memsw file: swap accounting off (swapaccount=0, or no swap support). */
                writef("104857600\n", "%s/memory.limit_in_bytes", mem);
                ck_assert_int_eq(swap_cap_apply(cg, 8 * MiB), -EOPNOTSUPP);
                /* memsw = limit + cap: memory plus swap. */
                writef("104857600\n", "%s/memory.memsw.limit_in_bytes", mem);
                ck_assert_int_eq(swap_cap_read(cg, &v), 0);
                ck_assert_uint_eq(v, 0);
                writef("", "%s/memory.memsw.limit_in_bytes", mem);
                ck_assert_int_eq(swap_cap_apply(cg, 50 * MiB), 0);
                assert_file("157286400", "%s/memory.memsw.limit_in_bytes", mem);
                ck_assert_int_eq(swap_cap_read(cg, &v), 0);
                ck_assert_uint_eq(v, 50 * MiB);
                writef("", "%s/memory.memsw.limit_in_bytes", mem);
                ck_assert_int_eq(swap_cap_apply(cg, UINT64_MAX), 0);
                assert_file("-1", "%s/memory.memsw.limit_in_bytes", mem);
                /* No memory limit: memory + swap cannot cap swap alone. */
                writef("9223372036854771712\n", "%s/memory.limit_in_bytes", mem);
                ck_assert_int_eq(swap_cap_apply(cg, 8 * MiB), -ERANGE);
                writef("9223372036854771712\n", "%s/memory.memsw.limit_in_bytes", mem);
                ck_assert_int_eq(swap_cap_read(cg, &v), 0);
                ck_assert_uint_eq(v, UINT64_MAX);
                if (hybrid) {
                        _cleanup_free_ char *sw = fmt("%s/memory.swap.max", cgroup_path(cg, ""));

                        /* Nothing in the (controller-less) unified leaf. */
                        ck_assert(access(sw, F_OK) < 0);
                }
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("memory-actions");
        TCase *band = tcase_create("band"), *fake = tcase_create("fake"),
              *proc = tcase_create("proc");
        SRunner *sr;
        int failed;

        tcase_add_test(band, test_band_values);
        tcase_add_test(band, test_assign_bands_by_recency);
        tcase_add_test(band, test_order);
        tcase_add_test(band, test_order_heaviest_first_up_to_200);
        suite_add_tcase(s, band);
        tcase_add_unchecked_fixture(fake, fake_setup, fake_teardown);
        tcase_add_test(fake, test_soft_limit_v2_fake);
        tcase_add_test(fake, test_soft_limit_v1_fake);
        tcase_add_test(fake, test_freeze_unified_fake);
        tcase_add_test(fake, test_kill_wait_fake);
        tcase_add_test(fake, test_oom_score_adj_skips_a_reused_pid);
        tcase_add_test(fake, test_swap_detect_fake);
        tcase_add_test(fake, test_swap_detect_host);
        tcase_add_test(fake, test_swap_cap_bytes);
        tcase_add_test(fake, test_swap_cap_v2_fake);
        tcase_add_test(fake, test_swap_cap_v1_fake);
        suite_add_tcase(s, fake);
        tcase_add_test(proc, test_oom_score_adj_pid);
        suite_add_tcase(s, proc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
