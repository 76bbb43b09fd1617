/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cgroup module tests. "fake" tests build a directory that looks like a cgroup v1, v2
 * or hybrid mount and check the exact bytes each backend writes (no root needed).
 * "real" tests drive /sys/fs/cgroup as root in every mode this host supports (on a
 * hybrid host: hybrid, and hybrid driven as pure v1); each mode is a test case of its
 * own, run by meson as a test of its own that exits 77 (skipped) when this host
 * cannot drive that mode, naming why.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/strv.h"
#include "sandbox/cgroup-internal.h"
#include "sandbox/cgroup.h"

#define MiB (UINT64_C(1) << 20)

/* ---- helpers ------------------------------------------------------------------------ */

static char *vfmt(const char *fmt, va_list ap)
{
        char *s;

        ck_assert_int_ge(vasprintf(&s, fmt, ap), 0);
        return s;
}

static char *fmt(const char *f, ...) _printf_(1, 2);
static char *fmt(const char *f, ...)
{
        va_list ap;
        char *s;

        va_start(ap, f);
        s = vfmt(f, ap);
        va_end(ap);
        return s;
}

static void mkdirf(const char *f, ...) _printf_(1, 2);
static void mkdirf(const char *f, ...)
{
        _cleanup_free_ char *p = NULL;
        va_list ap;

        va_start(ap, f);
        p = vfmt(f, ap);
        va_end(ap);
        ck_assert_msg(mkdir(p, 0755) >= 0 || errno == EEXIST, "mkdir %s: %m", p);
}

/* Creates or truncates the file and writes content. */
static void writef(const char *content, const char *f, ...) _printf_(2, 3);
static void writef(const char *content, const char *f, ...)
{
        _cleanup_free_ char *p = NULL;
        _cleanup_close_ int fd = -EBADF;
        va_list ap;

        va_start(ap, f);
        p = vfmt(f, ap);
        va_end(ap);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_msg(fd >= 0, "create %s: %m", p);
        ck_assert_int_eq(loop_write(fd, content, strlen(content)), 0);
}

/* The file's whole content, or NULL if it cannot be read. */
static char *readf(const char *f, ...) _printf_(1, 2);
static char *readf(const char *f, ...)
{
        _cleanup_free_ char *p = NULL;
        char *s = NULL;
        va_list ap;

        va_start(ap, f);
        p = vfmt(f, ap);
        va_end(ap);
        if (read_file_at(AT_FDCWD, p, 1 << 20, &s, NULL) < 0)
                return NULL;
        return s;
}

/* Asserts that the file holds exactly want. */
static void assert_file(const char *want, const char *f, ...) _printf_(2, 3);
static void assert_file(const char *want, const char *f, ...)
{
        _cleanup_free_ char *p = NULL, *s = NULL;
        va_list ap;

        va_start(ap, f);
        p = vfmt(f, ap);
        va_end(ap);
        s = readf("%s", p);
        ck_assert_msg(s, "cannot read %s", p);
        ck_assert_msg(strcmp(s, want) == 0, "%s holds \"%s\", want \"%s\"", p, s, want);
}

/* Asserts that a knob's first line (without the newline) is want. */
static void assert_knob(const char *dir, const char *name, const char *want)
{
        _cleanup_free_ char *s = readf("%s/%s", dir, name);

        ck_assert_msg(s, "cannot read %s/%s", dir, name);
        s[strcspn(s, "\n")] = 0;
        ck_assert_msg(strcmp(s, want) == 0, "%s/%s reads \"%s\", want \"%s\"", dir, name, s, want);
}

static bool exists(const char *p)
{
        return access(p, F_OK) >= 0;
}

static bool existsf(const char *f, ...) _printf_(1, 2);
static bool existsf(const char *f, ...)
{
        _cleanup_free_ char *p = NULL;
        va_list ap;

        va_start(ap, f);
        p = vfmt(f, ap);
        va_end(ap);
        return exists(p);
}

static void unlinkf(const char *f, ...) _printf_(1, 2);
static void unlinkf(const char *f, ...)
{
        _cleanup_free_ char *p = NULL;
        va_list ap;

        va_start(ap, f);
        p = vfmt(f, ap);
        va_end(ap);
        ck_assert_msg(unlink(p) >= 0, "unlink %s: %m", p);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
        return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void rm_rf(const char *p)
{
        (void)nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void manager_freep(CgroupManager **m)
{
        cgroup_manager_free(*m);
}

static void cgroup_destroyp(Cgroup **cg)
{
        cgroup_destroy(*cg);
}

static void rm_rfp(char **p)
{
        if (*p) {
                rm_rf(*p);
                free(*p);
        }
}

/* Every fake tree lives below this per-run directory, removed by the fake tcase's
 * unchecked teardown even when a test fails half-way. */
static char fake_base[] = "/tmp/cella-cgtest-XXXXXX";

static void fake_setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(fake_base));
}

static void fake_teardown(void)
{
        rm_rf(fake_base);
}

static char *fake_dir(void)
{
        char *fs = fmt("%s/XXXXXX", fake_base);

        ck_assert_ptr_nonnull(mkdtemp(fs));
        return fs;
}

/* A pid that surely does not exist: a child that has exited and been reaped. */
static pid_t dead_pid(void)
{
        pid_t p = fork();

        ck_assert_int_ge(p, 0);
        if (p == 0)
                _exit(0);
        ck_assert_int_eq(waitpid(p, NULL, 0), p);
        ck_assert(kill(p, 0) < 0 && errno == ESRCH);
        return p;
}

/* A fake v1 mount: memory, pids, freezer, and "cpu,cpuacct" co-mounted, each a
 * directory with cgroup.procs. With symlinks "cpu", "cpuacct" -> "cpu,cpuacct" as
 * systemd makes them, if links. */
static char *fake_v1(bool links)
{
        char *fs = fake_dir();
        const char *dirs[] = {"memory", "pids", "freezer", "cpu,cpuacct"};

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                mkdirf("%s/%s", fs, dirs[i]);
                writef("", "%s/%s/cgroup.procs", fs, dirs[i]);
        }
        if (links) {
                _cleanup_free_ char *cpu = fmt("%s/cpu", fs), *acct = fmt("%s/cpuacct", fs);

                ck_assert_int_eq(symlink("cpu,cpuacct", cpu), 0);
                ck_assert_int_eq(symlink("cpu,cpuacct", acct), 0);
        }
        return fs;
}

/* A fake v2 mount offering memory, pids, cpu and io, with cella's root made
 * beforehand (mkdir in a plain directory does not make cgroup.controllers). */
static char *fake_v2(void)
{
        char *fs = fake_dir();

        writef("cpuset cpu io memory pids\n", "%s/cgroup.controllers", fs);
        writef("", "%s/cgroup.subtree_control", fs);
        writef("", "%s/cgroup.procs", fs);
        mkdirf("%s/cella", fs);
        writef("cpu io memory pids\n", "%s/cella/cgroup.controllers", fs);
        writef("", "%s/cella/cgroup.subtree_control", fs);
        return fs;
}

/* A fake hybrid mount: separate v1 memory, pids, cpu, cpuacct, freezer, and a
 * controller-less cgroup2 at unified. */
static char *fake_hybrid(void)
{
        char *fs = fake_dir();
        const char *dirs[] = {"memory", "pids", "cpu", "cpuacct", "freezer", "systemd"};

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                mkdirf("%s/%s", fs, dirs[i]);
                writef("", "%s/%s/cgroup.procs", fs, dirs[i]);
        }
        mkdirf("%s/unified", fs);
        writef("", "%s/unified/cgroup.controllers", fs);
        writef("", "%s/unified/cgroup.procs", fs);
        return fs;
}

/* ---- fake-tree tests ---------------------------------------------------------------- */

/* The readers the broker uses on an app's cgroup dirs (cgroup.h): v1 and v2 files as
 * the kernel writes them, NULL dirs, missing keys and bad contents. */
START_TEST(test_readers_fake)
{
        _cleanup_(rm_rfp) char *d = fake_dir();
        pid_t pids[8];
        uint64_t v = 0;
        uint32_t p = 0;

        writef("12\n0\n-3\n34\n", "%s/cgroup.procs", d);
        writef("some avg10=7.25 avg60=1.00 avg300=0.00 total=123\n"
               "full avg10=0.50 avg60=0.00 avg300=0.00 total=5\n",
               "%s/memory.pressure", d);
        writef("anon 100\nanon_thp 5\nfile_mapped 9\nfile 7\n", "%s/memory.stat", d);
        writef("max\n", "%s/pids.max", d);
        writef("-1\n", "%s/cpu.cfs_quota_us", d);

        ck_assert_int_eq(cgroup_read_procs(d, pids, ELEMENTSOF(pids)), 2);
        ck_assert_int_eq(pids[0], 12);
        ck_assert_int_eq(pids[1], 34);
        ck_assert_int_eq(cgroup_read_procs(d, pids, 1), 1);
        ck_assert_int_eq(cgroup_read_pressure(d, "memory.pressure", "some", &p), 0);
        ck_assert_uint_eq(p, 725);
        ck_assert_int_eq(cgroup_read_pressure(d, "memory.pressure", "full", &p), 0);
        ck_assert_uint_eq(p, 50);
        ck_assert_int_eq(cgroup_read_pressure(d, "memory.pressure", "none", &p), -ENODATA);
        ck_assert_int_eq(cgroup_read_keyed_u64(d, "memory.stat", "anon", &v), 0);
        ck_assert_uint_eq(v, 100);
        ck_assert_int_eq(cgroup_read_keyed_u64(d, "memory.stat", "file", &v), 0);
        ck_assert_uint_eq(v, 7); /* not file_mapped's */
        ck_assert_int_eq(cgroup_read_keyed_u64(d, "memory.stat", "swap", &v), -ENODATA);
        ck_assert_int_eq(cgroup_read_knob_u64(d, "pids.max", &v), 0);
        ck_assert_uint_eq(v, UINT64_MAX);
        ck_assert_int_eq(cgroup_read_knob_u64(d, "cpu.cfs_quota_us", &v), -EINVAL);
        ck_assert_int_eq(cgroup_read_knob_u64(d, "memory.max", &v), -ENOENT);
        /* A hierarchy the backend does not use. */
        ck_assert_int_eq(cgroup_read_knob_u64(NULL, "pids.max", &v), -ENOENT);
        ck_assert_int_eq(cgroup_read_keyed_u64(NULL, "memory.stat", "anon", &v), -ENOENT);
        ck_assert_int_eq(cgroup_read_pressure(NULL, "memory.pressure", "some", &p), -ENOENT);
        ck_assert_int_eq(cgroup_read_procs(NULL, pids, ELEMENTSOF(pids)), -ENOENT);
}
END_TEST

START_TEST(test_detect_fake)
{
        _cleanup_(rm_rfp) char *v1 = fake_v1(false), *v2 = fake_v2(), *hy = fake_hybrid();
        _cleanup_(rm_rfp) char *empty = fake_dir();
        CgroupMode mode = 42;

        ck_assert_int_eq(cgroup_detect(v1, &mode), 0);
        ck_assert_int_eq(mode, CGROUP_MODE_V1);
        ck_assert_int_eq(cgroup_detect(v2, &mode), 0);
        ck_assert_int_eq(mode, CGROUP_MODE_V2);
        ck_assert_int_eq(cgroup_detect(hy, &mode), 0);
        ck_assert_int_eq(mode, CGROUP_MODE_HYBRID);

        /* Nothing that looks like a hierarchy: -ENOENT, output untouched. */
        mode = 42;
        ck_assert_int_eq(cgroup_detect(empty, &mode), -ENOENT);
        ck_assert_int_eq(cgroup_detect("/nonexistent/cgroup", &mode), -ENOENT);
        ck_assert_int_eq(mode, 42);
        /* A unified dir alone (no v1 controller next to it) is not hybrid. */
        mkdirf("%s/unified", empty);
        writef("", "%s/unified/cgroup.controllers", empty);
        ck_assert_int_eq(cgroup_detect(empty, &mode), -ENOENT);
        /* A directory without cgroup.procs is not a v1 hierarchy. */
        mkdirf("%s/memory", empty);
        ck_assert_int_eq(cgroup_detect(empty, &mode), -ENOENT);
        writef("", "%s/memory/cgroup.procs", empty);
        ck_assert_int_eq(cgroup_detect(empty, &mode), 0);
        ck_assert_int_eq(mode, CGROUP_MODE_HYBRID);
}
END_TEST

START_TEST(test_v2_fake)
{
        _cleanup_(rm_rfp) char *fs = fake_v2();
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        _cleanup_(cgroup_destroyp) Cgroup *cg = NULL;
        _cleanup_free_ char *want = NULL, *s = NULL;
        CgroupLimits lim = {.memory_max = 64 * MiB,
                            .pids_max = 32,
                            .cpu_quota_us = 50000,
                            .cpu_period_us = 100000,
                            .cpu_weight = 250};
        CgroupStats st;
        const char *leaf;
        const char *knobs[] = {"memory.max", "memory.swap.max", "pids.max",      "cpu.max",
                               "cpu.weight", "cgroup.procs",    "cgroup.freeze", "cgroup.kill"};

        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_AUTO, NULL, &m), 0);
        ck_assert_int_eq(cgroup_manager_mode(m), CGROUP_MODE_V2);
        ck_assert_str_eq(cgroup_manager_ops(m)->name, "v2");
        ck_assert_int_eq(cgroup_new(m, "app", &cg), 0);

        /* One hierarchy holds every controller; the leaf is <root>/cella/<label>@<pid>. */
        want = fmt("%s/cella/app@%d", fs, (int)getpid());
        leaf = cgroup_path(cg, "");
        ck_assert_str_eq(leaf, want);
        ck_assert_str_eq(cgroup_path(cg, "memory"), want);
        ck_assert_str_eq(cgroup_path(cg, "freezer"), want);
        ck_assert_ptr_null(cgroup_path(cg, "blkio"));
        ck_assert(exists(leaf));

        /* Controllers enabled in one write each, only those offered (not cpuset, io). */
        assert_file("+memory +pids +cpu", "%s/cgroup.subtree_control", fs);
        assert_file("+memory +pids +cpu", "%s/cella/cgroup.subtree_control", fs);

        for (size_t i = 0; i < ELEMENTSOF(knobs); i++)
                writef("", "%s/%s", leaf, knobs[i]);
        writef("populated 1\nfrozen 1\n", "%s/cgroup.events", leaf);

        ck_assert_int_eq(cgroup_set_limits(cg, &lim), 0);
        assert_file("67108864", "%s/memory.max", leaf);
        assert_file("0", "%s/memory.swap.max", leaf);
        assert_file("32", "%s/pids.max", leaf);
        assert_file("50000 100000", "%s/cpu.max", leaf);
        assert_file("250", "%s/cpu.weight", leaf);

        /* Default period; a period alone keeps the quota at max. */
        writef("", "%s/cpu.max", leaf);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.cpu_quota_us = 20000}), 0);
        assert_file("20000 100000", "%s/cpu.max", leaf);
        writef("", "%s/cpu.max", leaf);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.cpu_period_us = 20000}), 0);
        assert_file("max 20000", "%s/cpu.max", leaf);

        /* Zero fields leave the knobs alone. */
        writef("untouched", "%s/pids.max", leaf);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){}), 0);
        assert_file("untouched", "%s/pids.max", leaf);

        /* No memory.swap.max (no swap accounting): memory.max alone is fine. */
        unlinkf("%s/memory.swap.max", leaf);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.memory_max = 4096}), 0);

        /* Out of range: refused before anything is written. */
        writef("", "%s/cpu.weight", leaf);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.cpu_weight = 10001}), -EINVAL);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.cpu_period_us = 999}), -EINVAL);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.cpu_period_us = 1000001}), -EINVAL);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.cpu_quota_us = 999}), -EINVAL);
        assert_file("", "%s/cpu.weight", leaf);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.cpu_weight = 10000}), 0);
        assert_file("10000", "%s/cpu.weight", leaf);

        ck_assert_int_eq(cgroup_attach(cg, 4242), 0);
        assert_file("4242", "%s/cgroup.procs", leaf);
        ck_assert_int_eq(cgroup_attach(cg, -1), -EINVAL);
        writef("", "%s/cgroup.procs", leaf); /* so kill() below never signals pid 4242 */

        ck_assert_int_eq(cgroup_freeze(cg, true), 0);
        assert_file("1", "%s/cgroup.freeze", leaf);
        ck_assert_int_eq(cgroup_freeze(cg, false), 0);
        assert_file("0", "%s/cgroup.freeze", leaf);

        ck_assert_int_eq(cgroup_kill(cg), 0);
        assert_file("1", "%s/cgroup.kill", leaf);

        writef("1234\n", "%s/memory.current", leaf);
        writef("max\n", "%s/memory.max", leaf);
        writef("3\n", "%s/pids.current", leaf);
        writef("low 0\nhigh 0\nmax 9\noom 4\noom_kill 2\noom_group_kill 7\n", "%s/memory.events",
               leaf);
        writef("usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\n", "%s/cpu.stat", leaf);
        ck_assert_int_eq(cgroup_stats(cg, &st), 0);
        ck_assert_uint_eq(st.memory_current, 1234);
        ck_assert_uint_eq(st.memory_max, UINT64_MAX);
        ck_assert_uint_eq(st.pids_current, 3);
        ck_assert_uint_eq(st.oom_kills, 2);
        ck_assert_uint_eq(st.cpu_usage_usec, 5000);
        {
                uint64_t n = 99;

                ck_assert_int_eq(cgroup_oom_kills(cg, &n), 0);
                ck_assert_uint_eq(n, 2);
        }
        writef("67108864\n", "%s/memory.max", leaf);
        ck_assert_int_eq(cgroup_stats(cg, &st), 0);
        ck_assert_uint_eq(st.memory_max, 67108864);
}
END_TEST

/* cgroup_manager_enter() (cellad, docs/daemon.md "Cgroups") on fake trees: a process
 * whose cgroup is shared (a fake tree reads as the hierarchy root) gets a base
 * "<root>/cellad" with itself in cellad/supervisor, the apps in cellad/cella beside
 * it, the controllers enabled in the base (which holds no process), and
 * cgroup_manager_leave() moves it back and removes what it made. */
START_TEST(test_enter_fake)
{
        for (int v = 1; v <= 2; v++) {
                _cleanup_(rm_rfp) char *fs = v == 2 ? fake_v2() : fake_v1(true);
                _cleanup_(manager_freep) CgroupManager *m = NULL;
                _cleanup_(cgroup_destroyp) Cgroup *cg = NULL;
                _cleanup_free_ char *pid = fmt("%d", (int)getpid()), *want = NULL;
                const char *hier = v == 2 ? "" : "/memory";

                /* What a cgroup file system has and mkdir here does not make. */
                mkdirf("%s%s/cellad", fs, hier);
                mkdirf("%s%s/cellad/supervisor", fs, hier);
                writef("", "%s%s/cellad/supervisor/cgroup.procs", fs, hier);
                if (v == 2) {
                        writef("cpu io memory pids\n", "%s/cellad/cgroup.controllers", fs);
                        writef("", "%s/cellad/cgroup.subtree_control", fs);
                        mkdirf("%s/cellad/cella", fs);
                        writef("cpu io memory pids\n", "%s/cellad/cella/cgroup.controllers", fs);
                        writef("", "%s/cellad/cella/cgroup.subtree_control", fs);
                } else
                        for (size_t i = 0; i < 3; i++) {
                                const char *d[] = {"pids", "freezer", "cpu,cpuacct"};

                                mkdirf("%s/%s/cellad", fs, d[i]);
                                mkdirf("%s/%s/cellad/supervisor", fs, d[i]);
                                writef("", "%s/%s/cellad/supervisor/cgroup.procs", fs, d[i]);
                        }

                ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_AUTO, NULL, &m), 0);
                ck_assert_int_eq(cgroup_manager_enter(m, "cella", "cellad"), -EINVAL);
                ck_assert_int_eq(cgroup_manager_enter(m, "supervisor", "a/b"), -EINVAL);
                ck_assert_int_eq(cgroup_manager_enter(m, "supervisor", "cellad"), 0);
                assert_file(pid, "%s%s/cellad/supervisor/cgroup.procs", fs, hier);
                ck_assert_int_eq(cgroup_new(m, "app", &cg), 0);
                want = fmt("%s%s/cellad/cella/app@%s", fs, hier, pid);
                ck_assert_str_eq(cgroup_path(cg, "memory"), want);
                if (v == 2)
                        assert_file("+memory +pids +cpu", "%s/cellad/cgroup.subtree_control", fs);
                cg = cgroup_destroy(cg);
                /* Back in the hierarchy root, the fake's cgroup.procs. */
                cgroup_manager_leave(m);
                assert_file(pid, "%s%s/cgroup.procs", fs, hier);
        }
}
END_TEST

START_TEST(test_v2_fake_freeze_timeout)
{
        _cleanup_(rm_rfp) char *fs = fake_v2();
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        _cleanup_(cgroup_destroyp) Cgroup *cg = NULL;
        _cleanup_free_ char *s = NULL;
        struct timespec a, b;
        long ms;

        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V2, NULL, &m), 0);
        ck_assert_int_eq(cgroup_new(m, "stuck", &cg), 0);
        writef("", "%s/cgroup.freeze", cgroup_path(cg, ""));
        writef("populated 1\nfrozen 0\n", "%s/cgroup.events", cgroup_path(cg, ""));

        /* Never reports frozen: bounded wait, then thawed again. */
        clock_gettime(CLOCK_MONOTONIC, &a);
        ck_assert_int_eq(cgroup_freeze(cg, true), -ETIMEDOUT);
        clock_gettime(CLOCK_MONOTONIC, &b);
        ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
        ck_assert_int_ge(ms, CGROUP_FREEZE_TIMEOUT_MS);
        ck_assert_int_lt(ms, CGROUP_FREEZE_TIMEOUT_MS + 2000);
        assert_file("0", "%s/cgroup.freeze", cgroup_path(cg, ""));
}
END_TEST

START_TEST(test_v1_fake)
{
        _cleanup_(rm_rfp) char *fs = fake_v1(true);
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        _cleanup_(cgroup_destroyp) Cgroup *cg = NULL;
        _cleanup_free_ char *want = NULL, *s = NULL;
        CgroupLimits lim = {
                .memory_max = 64 * MiB, .pids_max = 32, .cpu_quota_us = 50000, .cpu_weight = 100};
        const char *mem, *pids, *cpu, *frz;
        CgroupStats st;
        static const struct {
                uint64_t weight;
                const char *shares;
        } weights[] = {
                {100, "1024"},     /* the defaults match */
                {1, "10"},         /* 1 * 1024 / 100 = 10.24, above the clamp at 2 */
                {10000, "102400"}, /* below the clamp at 262144 */
                {50, "512"},
        };

        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_AUTO, NULL, &m), 0);
        ck_assert_int_eq(cgroup_manager_mode(m), CGROUP_MODE_V1);
        ck_assert_str_eq(cgroup_manager_ops(m)->name, "v1");
        ck_assert_int_eq(cgroup_new(m, "app", &cg), 0);

        mem = cgroup_path(cg, "memory");
        pids = cgroup_path(cg, "pids");
        cpu = cgroup_path(cg, "cpu");
        frz = cgroup_path(cg, "freezer");
        want = fmt("%s/memory/cella/app@%d", fs, (int)getpid());
        ck_assert_str_eq(mem, want);
        free(want);
        want = fmt("%s/pids/cella/app@%d", fs, (int)getpid());
        ck_assert_str_eq(pids, want);
        ck_assert_ptr_nonnull(frz);
        ck_assert_ptr_null(cgroup_path(cg, "")); /* no unified leaf on v1 */
        /* cpu and cpuacct are one hierarchy reached by two names: one leaf. */
        ck_assert_ptr_nonnull(cpu);
        ck_assert_str_eq(cgroup_path(cg, "cpuacct"), cpu);
        ck_assert(exists(mem) && exists(pids) && exists(cpu) && exists(frz));

        writef("", "%s/memory.limit_in_bytes", mem);
        writef("", "%s/memory.memsw.limit_in_bytes", mem);
        writef("", "%s/memory.kmem.tcp.limit_in_bytes", mem);
        writef("", "%s/pids.max", pids);
        writef("", "%s/cpu.cfs_period_us", cpu);
        writef("", "%s/cpu.cfs_quota_us", cpu);
        writef("", "%s/cpu.shares", cpu);
        ck_assert_int_eq(cgroup_set_limits(cg, &lim), 0);
        assert_file("67108864", "%s/memory.limit_in_bytes", mem);
        assert_file("67108864", "%s/memory.memsw.limit_in_bytes", mem);
        /* Socket buffers are charged on v1 only with this written (cgroup-v1.c). */
        assert_file("67108864", "%s/memory.kmem.tcp.limit_in_bytes", mem);
        assert_file("32", "%s/pids.max", pids);
        assert_file("100000", "%s/cpu.cfs_period_us", cpu);
        assert_file("50000", "%s/cpu.cfs_quota_us", cpu);

        for (size_t i = 0; i < ELEMENTSOF(weights); i++) {
                writef("", "%s/cpu.shares", cpu);
                ck_assert_int_eq(
                        cgroup_set_limits(cg, &(CgroupLimits){.cpu_weight = weights[i].weight}), 0);
                assert_file(weights[i].shares, "%s/cpu.shares", cpu);
        }
        ck_assert_uint_eq(cgroup_weight_to_shares(0), 2);
        ck_assert_uint_eq(cgroup_weight_to_shares(1000000), 262144);

        /* Swap accounting off: no memsw file, and that is fine. */
        unlinkf("%s/memory.memsw.limit_in_bytes", mem);
        writef("", "%s/memory.limit_in_bytes", mem);
        writef("", "%s/memory.kmem.tcp.limit_in_bytes", mem);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.memory_max = 8192}), 0);
        assert_file("8192", "%s/memory.limit_in_bytes", mem);
        assert_file("8192", "%s/memory.kmem.tcp.limit_in_bytes", mem);

        /* No kmem.tcp file: the app's sockets would go uncharged, so the limit is
         * refused rather than half applied. */
        unlinkf("%s/memory.kmem.tcp.limit_in_bytes", mem);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.memory_max = 8192}), -ENOENT);
        writef("", "%s/memory.kmem.tcp.limit_in_bytes", mem);

        /* Freezer: FROZEN, read back as FROZEN; then THAWED. */
        writef("", "%s/freezer.state", frz);
        ck_assert_int_eq(cgroup_freeze(cg, true), 0);
        assert_file("FROZEN", "%s/freezer.state", frz);
        ck_assert_int_eq(cgroup_freeze(cg, false), 0);
        assert_file("THAWED", "%s/freezer.state", frz);

        writef("4096\n", "%s/memory.usage_in_bytes", mem);
        writef("9223372036854771712\n", "%s/memory.limit_in_bytes", mem);
        writef("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", "%s/memory.oom_control", mem);
        writef("5\n", "%s/pids.current", pids);
        writef("5000000\n", "%s/cpuacct.usage", cpu);
        ck_assert_int_eq(cgroup_stats(cg, &st), 0);
        ck_assert_uint_eq(st.memory_current, 4096);
        ck_assert_uint_eq(st.memory_max, UINT64_MAX); /* the kernel's "no limit" */
        ck_assert_uint_eq(st.oom_kills, 2);
        {
                uint64_t n = 99;

                ck_assert_int_eq(cgroup_oom_kills(cg, &n), 0);
                ck_assert_uint_eq(n, 2);
        }
        ck_assert_uint_eq(st.pids_current, 5);
        ck_assert_uint_eq(st.cpu_usage_usec, 5000); /* ns -> us */
        writef("33554432\n", "%s/memory.limit_in_bytes", mem);
        /* Before 4.13 there is no oom_kill line: 0. */
        writef("oom_kill_disable 0\nunder_oom 0\n", "%s/memory.oom_control", mem);
        ck_assert_int_eq(cgroup_stats(cg, &st), 0);
        ck_assert_uint_eq(st.memory_max, 33554432);
        ck_assert_uint_eq(st.oom_kills, 0);
        {
                uint64_t n = 99;

                ck_assert_int_eq(cgroup_oom_kills(cg, &n), 0);
                ck_assert_uint_eq(n, 0);
        }
}
END_TEST

/* "cpu,cpuacct" co-mounted without the symlinks, and cpu, cpuacct mounted apart. */
START_TEST(test_v1_fake_layouts)
{
        _cleanup_(rm_rfp) char *co = fake_v1(false), *apart = fake_hybrid();
        _cleanup_(manager_freep) CgroupManager *m1 = NULL, *m2 = NULL;
        _cleanup_(cgroup_destroyp) Cgroup *a = NULL, *b = NULL;
        _cleanup_free_ char *want = NULL;

        ck_assert_int_eq(cgroup_manager_new(co, CGROUP_MODE_AUTO, NULL, &m1), 0);
        ck_assert_int_eq(cgroup_new(m1, "co", &a), 0);
        want = fmt("%s/cpu,cpuacct/cella/co@%d", co, (int)getpid());
        ck_assert_str_eq(cgroup_path(a, "cpu"), want);
        ck_assert_str_eq(cgroup_path(a, "cpuacct"), want);
        free(want);

        ck_assert_int_eq(cgroup_manager_new(apart, CGROUP_MODE_V1, NULL, &m2), 0);
        ck_assert_int_eq(cgroup_new(m2, "apart", &b), 0);
        want = fmt("%s/cpu/cella/apart@%d", apart, (int)getpid());
        ck_assert_str_eq(cgroup_path(b, "cpu"), want);
        free(want);
        want = fmt("%s/cpuacct/cella/apart@%d", apart, (int)getpid());
        ck_assert_str_eq(cgroup_path(b, "cpuacct"), want);
        ck_assert(exists(want));
}
END_TEST

START_TEST(test_hybrid_fake)
{
        _cleanup_(rm_rfp) char *fs = fake_hybrid();
        _cleanup_(manager_freep) CgroupManager *m = NULL, *v1 = NULL, *v2 = NULL;
        _cleanup_(cgroup_destroyp) Cgroup *cg = NULL, *cg1 = NULL;
        _cleanup_free_ char *want = NULL, *s = NULL;
        const char *u, *mem, *pids;

        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_AUTO, NULL, &m), 0);
        ck_assert_int_eq(cgroup_manager_mode(m), CGROUP_MODE_HYBRID);
        ck_assert_str_eq(cgroup_manager_ops(m)->name, "hybrid");
        ck_assert_int_eq(cgroup_new(m, "app", &cg), 0);
        u = cgroup_path(cg, "");
        mem = cgroup_path(cg, "memory");
        pids = cgroup_path(cg, "pids");
        want = fmt("%s/unified/cella/app@%d", fs, (int)getpid());
        ck_assert_str_eq(u, want);
        ck_assert(exists(u));
        free(want);
        want = fmt("%s/memory/cella/app@%d", fs, (int)getpid());
        ck_assert_str_eq(mem, want);
        /* Hybrid freezes through the unified leaf; the v1 freezer is not used. */
        ck_assert_ptr_null(cgroup_path(cg, "freezer"));

        /* Limits go to the v1 controllers, freeze and kill to the unified leaf. */
        writef("", "%s/memory.limit_in_bytes", mem);
        writef("", "%s/memory.kmem.tcp.limit_in_bytes", mem);
        writef("", "%s/pids.max", pids);
        ck_assert_int_eq(
                cgroup_set_limits(cg, &(CgroupLimits){.memory_max = 32 * MiB, .pids_max = 8}), 0);
        assert_file("33554432", "%s/memory.limit_in_bytes", mem);
        assert_file("33554432", "%s/memory.kmem.tcp.limit_in_bytes", mem);
        assert_file("8", "%s/pids.max", pids);
        writef("", "%s/cgroup.freeze", u);
        writef("populated 0\nfrozen 1\n", "%s/cgroup.events", u);
        ck_assert_int_eq(cgroup_freeze(cg, true), 0);
        assert_file("1", "%s/cgroup.freeze", u);
        writef("", "%s/cgroup.kill", u);
        ck_assert_int_eq(cgroup_kill(cg), 0);
        assert_file("1", "%s/cgroup.kill", u);
        /* No cpuacct leaf? cpu.stat of the unified leaf. Here cpuacct is there. */
        writef("0\n", "%s/memory.usage_in_bytes", mem);
        writef("33554432\n", "%s/memory.limit_in_bytes", mem);
        writef("0\n", "%s/pids.current", pids);
        writef("3000\n", "%s/cpuacct.usage", cgroup_path(cg, "cpuacct"));
        writef("usage_usec 999\n", "%s/cpu.stat", u);
        {
                CgroupStats st;

                ck_assert_int_eq(cgroup_stats(cg, &st), 0);
                ck_assert_uint_eq(st.cpu_usage_usec, 3);
                ck_assert_uint_eq(st.memory_max, 33554432);
        }

        /* The same host driven as pure v1: no unified leaf, the v1 freezer instead. */
        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V1, NULL, &v1), 0);
        ck_assert_int_eq(cgroup_manager_mode(v1), CGROUP_MODE_V1);
        ck_assert_int_eq(cgroup_new(v1, "as-v1", &cg1), 0);
        ck_assert_ptr_null(cgroup_path(cg1, ""));
        ck_assert_ptr_nonnull(cgroup_path(cg1, "freezer"));
        /* ... but not as pure v2: there is no cgroup2 at the root. */
        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V2, NULL, &v2), -ENOENT);
        ck_assert_ptr_null(v2);
}
END_TEST

/* cella-oci's linux.cgroupsPath (cgroup_manager_set_path()): the leaf is exactly the
 * path below each hierarchy's root (or below the parent, relative), its parents made
 * (controllers enabled on cgroup2), named after the path; cgroup_open() takes that path
 * alone; destroy removes the leaf, not its parents; malformed paths are refused. */
START_TEST(test_exact_path_fake)
{
        _cleanup_(rm_rfp) char *hyfs = fake_hybrid(), *v2fs = fake_v2();
        _cleanup_(manager_freep) CgroupManager *mh = NULL, *m2 = NULL, *mr = NULL;
        _cleanup_(cgroup_destroyp) Cgroup *cg2 = NULL;
        Cgroup *cg = NULL, *op = NULL;
        _cleanup_free_ char *want = NULL;
        const char *bad[] = {"",     "/",       "//a", "/a//b", "/a/../b", "/a/./b",
                             "/a b", "/a/b\\n", "..",  "/..",   "a/..",    "/a\x01"};

        ck_assert_int_eq(cgroup_manager_new(hyfs, CGROUP_MODE_AUTO, NULL, &mh), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(cgroup_manager_set_path(mh, bad[i]) == -EINVAL, "%s", bad[i]);
        ck_assert_int_eq(cgroup_manager_set_path(mh, "/libpod_parent/libpod-ab:c@1.scope/"), 0);
        ck_assert_int_eq(cgroup_new(mh, "ignored", &cg), 0);
        ck_assert_str_eq(cgroup_name(cg), "/libpod_parent/libpod-ab:c@1.scope");
        want = fmt("%s/unified/libpod_parent/libpod-ab:c@1.scope", hyfs);
        ck_assert_str_eq(cgroup_path(cg, ""), want);
        ck_assert(exists(want));
        ck_assert(existsf("%s/memory/libpod_parent/libpod-ab:c@1.scope", hyfs));
        ck_assert(existsf("%s/pids/libpod_parent/libpod-ab:c@1.scope", hyfs));
        ck_assert(!existsf("%s/memory/cella", hyfs));
        /* Opened again by its path, and by nothing else. */
        ck_assert_int_eq(cgroup_open(mh, "other@1", &op), -EINVAL);
        ck_assert_int_eq(cgroup_open(mh, "/libpod_parent/libpod-ab:c@1.scope", &op), 0);
        ck_assert_str_eq(cgroup_path(op, ""), want);
        op = cgroup_close(op);
        /* An existing leaf is taken as it is (the same path twice). */
        ck_assert_int_eq(cgroup_new(mh, "again", &op), 0);
        op = cgroup_close(op);
        cg = cgroup_destroy(cg);
        ck_assert(!exists(want));
        ck_assert(existsf("%s/unified/libpod_parent", hyfs));
        ck_assert(!existsf("%s/memory/libpod_parent/libpod-ab:c@1.scope", hyfs));
        ck_assert_int_eq(cgroup_open(mh, "/libpod_parent/libpod-ab:c@1.scope", &op), -ENOENT);

        /* Relative: below the manager's parent. */
        ck_assert_int_eq(cgroup_manager_new(hyfs, CGROUP_MODE_AUTO, "p", &mr), 0);
        ck_assert_int_eq(cgroup_manager_set_path(mr, "rel/x"), 0);
        ck_assert_int_eq(cgroup_new(mr, "l", &cg), 0);
        ck_assert(existsf("%s/memory/p/rel/x", hyfs));
        cg = cgroup_destroy(cg);

        /* Pure v2: each parent passes cella's controllers down. */
        mkdirf("%s/a", v2fs);
        writef("cpu io memory pids\n", "%s/a/cgroup.controllers", v2fs);
        writef("", "%s/a/cgroup.subtree_control", v2fs);
        ck_assert_int_eq(cgroup_manager_new(v2fs, CGROUP_MODE_AUTO, NULL, &m2), 0);
        ck_assert_int_eq(cgroup_manager_set_path(m2, "/a/leaf"), 0);
        ck_assert_int_eq(cgroup_new(m2, "l", &cg2), 0);
        ck_assert(existsf("%s/a/leaf", v2fs));
        assert_file("+memory +pids +cpu", "%s/cgroup.subtree_control", v2fs);
        assert_file("+memory +pids +cpu", "%s/a/cgroup.subtree_control", v2fs);
}
END_TEST

/* cella-oci's controllers (cgroup_manager_add_controllers()) and knobs
 * (CgroupResources) on fake hybrid and v2 trees: the new hierarchies are used only
 * when asked (cella's own apps keep theirs), a v1 cpuset leaf gets its parent's cpus
 * and mems, each knob lands in its file, what the host lacks is refused naming the
 * knob, and destroy removes the new leaves too. */
START_TEST(test_oci_resources_fake)
{
        _cleanup_(rm_rfp) char *hyfs = fake_hybrid(), *v2fs = fake_v2();
        _cleanup_(manager_freep) CgroupManager *own = NULL, *mh = NULL, *m2 = NULL;
        Cgroup *cg = NULL;
        char err[256];
        unsigned missing = 0;
        const char *extra[] = {"cpuset", "devices", "blkio"};
        const CgroupDeviceRule rules[] = {{false, 'a', -1, -1, "rwm"}, {true, 'c', 1, 3, "rwm"}};
        const CgroupHugetlbLimit huge = {"2MB", 1 << 21};
        char *ukeys[] = {(char *)"memory.high", NULL}, *uvals[] = {(char *)"1000000", NULL};
        char *bad_keys[] = {(char *)"../x.y", NULL};
        CgroupResources res = {.cpu_shares = 1024,
                               .cpuset_cpus = "1",
                               .memory_low = 4096,
                               .swappiness_set = true,
                               .swappiness = 10,
                               .oom_kill_disable = true,
                               .blkio_weight = 300,
                               .devices_set = true,
                               .devices = rules,
                               .n_devices = ELEMENTSOF(rules)};
        CgroupLimits lim = {.resources = &res};

        for (size_t i = 0; i < ELEMENTSOF(extra); i++) {
                mkdirf("%s/%s", hyfs, extra[i]);
                writef("", "%s/%s/cgroup.procs", hyfs, extra[i]);
        }
        writef("0-3\n", "%s/cpuset/cpuset.cpus", hyfs);
        writef("0\n", "%s/cpuset/cpuset.mems", hyfs);
        writef("60\n", "%s/memory/memory.swappiness", hyfs);
        writef("oom_kill_disable 0\n", "%s/memory/memory.oom_control", hyfs);
        writef("100\n", "%s/blkio/blkio.bfq.weight", hyfs);

        /* cella's own manager: none of the new hierarchies. */
        ck_assert_int_eq(cgroup_manager_new(hyfs, CGROUP_MODE_AUTO, NULL, &own), 0);
        ck_assert_int_eq(cgroup_new(own, "app", &cg), 0);
        ck_assert_ptr_null(cgroup_path(cg, "cpuset"));
        ck_assert(!existsf("%s/cpuset/cella", hyfs));
        cg = cgroup_destroy(cg);

        /* The container's: cpuset, devices, blkio; net_cls, net_prio, hugetlb missing. */
        ck_assert_int_eq(cgroup_manager_new(hyfs, CGROUP_MODE_AUTO, NULL, &mh), 0);
        ck_assert_int_eq(cgroup_manager_set_path(mh, "/ctr"), 0);
        ck_assert_int_eq(cgroup_manager_add_controllers(mh, CGROUP_CTRL_ALL, &missing), 0);
        ck_assert_uint_eq(missing,
                          CGROUP_CTRL_NET_CLS | CGROUP_CTRL_NET_PRIO | CGROUP_CTRL_HUGETLB);
        ck_assert_int_eq(cgroup_resources_check(mh, &res, err, sizeof err), 0);
        /* A path that holds a process in one of the new hierarchies only is busy. */
        ck_assert_int_eq(cgroup_manager_path_busy(mh), 0);
        mkdirf("%s/cpuset/ctr", hyfs);
        writef("1\n", "%s/cpuset/ctr/cgroup.procs", hyfs);
        ck_assert_int_eq(cgroup_manager_path_busy(mh), 1);
        writef("", "%s/cpuset/ctr/cgroup.procs", hyfs);
        ck_assert_int_eq(cgroup_manager_path_busy(own), -EINVAL);
        /* A real leaf has empty cpuset files at its mkdir; the fake's are made first. */
        writef("", "%s/cpuset/ctr/cpuset.cpus", hyfs);
        writef("", "%s/cpuset/ctr/cpuset.mems", hyfs);
        for (const char *k = "memory.soft_limit_in_bytes\0memory.swappiness\0"
                             "memory.oom_control\0";
             *k; k += strlen(k) + 1) {
                mkdirf("%s/memory/ctr", hyfs);
                writef("", "%s/memory/ctr/%s", hyfs, k);
        }
        mkdirf("%s/devices/ctr", hyfs);
        writef("", "%s/devices/ctr/devices.deny", hyfs);
        writef("", "%s/devices/ctr/devices.allow", hyfs);
        mkdirf("%s/cpu/ctr", hyfs);
        writef("", "%s/cpu/ctr/cpu.shares", hyfs);
        mkdirf("%s/blkio/ctr", hyfs);
        writef("", "%s/blkio/ctr/blkio.bfq.weight", hyfs);
        ck_assert_int_eq(cgroup_new(mh, "ignored", &cg), 0);
        assert_file("0", "%s/cpuset/ctr/cpuset.mems", hyfs);
        assert_file("0-3", "%s/cpuset/ctr/cpuset.cpus", hyfs);
        writef("", "%s/cpuset/ctr/cpuset.cpus", hyfs); /* a fake file keeps "-3" */
        ck_assert_int_eq(cgroup_set_limits(cg, &lim), 0);
        assert_file("1", "%s/cpuset/ctr/cpuset.cpus", hyfs);
        assert_file("1024", "%s/cpu/ctr/cpu.shares", hyfs);
        assert_file("4096", "%s/memory/ctr/memory.soft_limit_in_bytes", hyfs);
        assert_file("10", "%s/memory/ctr/memory.swappiness", hyfs);
        assert_file("1", "%s/memory/ctr/memory.oom_control", hyfs);
        assert_file("300", "%s/blkio/ctr/blkio.bfq.weight", hyfs);
        assert_file("a", "%s/devices/ctr/devices.deny", hyfs);
        /* The last rule written: runc's last default (a real file keeps the list). */
        assert_file("c 10:200 rwm", "%s/devices/ctr/devices.allow", hyfs);

        /* What the host lacks, or hybrid cannot take, is refused naming the knob. */
        res = (CgroupResources){.hugetlb = &huge, .n_hugetlb = 1};
        ck_assert_int_eq(cgroup_resources_check(mh, &res, err, sizeof err), -EOPNOTSUPP);
        ck_assert_ptr_nonnull(strstr(err, "linux.resources.hugepageLimits"));
        res = (CgroupResources){.net_cls_classid_set = true};
        ck_assert_int_eq(cgroup_resources_check(mh, &res, err, sizeof err), -EOPNOTSUPP);
        ck_assert_ptr_nonnull(strstr(err, "linux.resources.network.classID"));
        res = (CgroupResources){.unified_keys = ukeys, .unified_values = uvals, .n_unified = 1};
        ck_assert_int_eq(cgroup_resources_check(mh, &res, err, sizeof err), -EOPNOTSUPP);
        ck_assert_ptr_nonnull(strstr(err, "linux.resources.unified"));
        unlinkf("%s/blkio/blkio.bfq.weight", hyfs);
        res = (CgroupResources){.blkio_weight = 300};
        ck_assert_int_eq(cgroup_resources_check(mh, &res, err, sizeof err), -EOPNOTSUPP);
        ck_assert_ptr_nonnull(strstr(err, "linux.resources.blockIO.weight"));

        /* The fake's files out of the way, destroy removes every leaf. */
        for (const char *d = "cpuset\0memory\0devices\0cpu\0blkio\0"; *d; d += strlen(d) + 1) {
                _cleanup_free_ char *dir = fmt("%s/%s/ctr", hyfs, d);

                rm_rf(dir);
                mkdirf("%s", dir);
        }
        cg = cgroup_destroy(cg);
        ck_assert(!existsf("%s/cpuset/ctr", hyfs));
        ck_assert(!existsf("%s/devices/ctr", hyfs));
        ck_assert(!existsf("%s/blkio/ctr", hyfs));
        ck_assert(!existsf("%s/memory/ctr", hyfs));

        /* v2: cpuset and io enabled down to the leaf; the v1-only knobs refused. */
        ck_assert_int_eq(cgroup_manager_new(v2fs, CGROUP_MODE_AUTO, NULL, &m2), 0);
        ck_assert_int_eq(cgroup_manager_set_path(m2, "/ctr"), 0);
        ck_assert_int_eq(cgroup_manager_add_controllers(m2, CGROUP_CTRL_ALL, &missing), 0);
        ck_assert_uint_eq(missing,
                          CGROUP_CTRL_NET_CLS | CGROUP_CTRL_NET_PRIO | CGROUP_CTRL_HUGETLB);
        mkdirf("%s/ctr", v2fs);
        writef("", "%s/ctr/memory.low", v2fs);
        writef("", "%s/ctr/cpuset.cpus", v2fs);
        writef("", "%s/ctr/memory.high", v2fs);
        ck_assert_int_eq(cgroup_new(m2, "l", &cg), 0);
        assert_file("+memory +pids +cpu +cpuset +io", "%s/cgroup.subtree_control", v2fs);
        res = (CgroupResources){.memory_low = 8192,
                                .cpuset_cpus = "0",
                                .unified_keys = ukeys,
                                .unified_values = uvals,
                                .n_unified = 1};
        ck_assert_int_eq(cgroup_resources_check(m2, &res, err, sizeof err), 0);
        lim = (CgroupLimits){.resources = &res};
        ck_assert_int_eq(cgroup_set_limits(cg, &lim), 0);
        assert_file("8192", "%s/ctr/memory.low", v2fs);
        assert_file("0", "%s/ctr/cpuset.cpus", v2fs);
        assert_file("1000000", "%s/ctr/memory.high", v2fs);
        res = (CgroupResources){.unified_keys = bad_keys, .unified_values = uvals, .n_unified = 1};
        ck_assert_int_eq(cgroup_resources_check(m2, &res, err, sizeof err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "../x.y"));
        /* v2 has no swappiness and no OOM-killer switch: passed, never written (the
         * caller notes them); a bad swappiness is refused all the same. */
        res = (CgroupResources){.swappiness_set = true, .swappiness = 10, .oom_kill_disable = true};
        ck_assert_int_eq(cgroup_resources_check(m2, &res, err, sizeof err), 0);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.resources = &res}), 0);
        ck_assert(!existsf("%s/ctr/memory.swappiness", v2fs));
        ck_assert(!existsf("%s/ctr/memory.oom_control", v2fs));
        res.swappiness = 101;
        ck_assert_int_eq(cgroup_resources_check(m2, &res, err, sizeof err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "swappiness"));
        rm_rf(cgroup_path(cg, ""));
        mkdirf("%s/ctr", v2fs);
        cg = cgroup_destroy(cg);
        ck_assert(!existsf("%s/ctr", v2fs));
}
END_TEST

/* The warm pool's leaves (spawn.c, sandbox_warm_new()): cgroup_new_exclusive() makes
 * only new leaves, and leaves nothing when one exists in any hierarchy; cgroup_rename()
 * renames every leaf or none, never over another leaf, and not at all where a
 * cgroup2 hierarchy is used (cgroup2 refuses a rename: the leaf keeps one name). */
START_TEST(test_exclusive_and_rename_fake)
{
        _cleanup_(rm_rfp) char *v1fs = fake_v1(false), *hyfs = fake_hybrid(), *v2fs = fake_v2();
        _cleanup_(manager_freep) CgroupManager *m1 = NULL, *mh = NULL, *m2 = NULL;
        _cleanup_(cgroup_destroyp) Cgroup *a = NULL, *h = NULL, *v = NULL;
        Cgroup *again = NULL;
        _cleanup_free_ char *old_mem = NULL, *want = NULL;
        int me = (int)getpid();

        /* v1: made new everywhere, then renamed everywhere. */
        ck_assert_int_eq(cgroup_manager_new(v1fs, CGROUP_MODE_V1, NULL, &m1), 0);
        ck_assert_int_eq(cgroup_new_exclusive(m1, "warm-1-1", &a), 0);
        ck_assert(existsf("%s/memory/cella/warm-1-1@%d", v1fs, me));
        ck_assert(existsf("%s/pids/cella/warm-1-1@%d", v1fs, me));
        ck_assert_int_eq(cgroup_new_exclusive(m1, "warm-1-1", &again), -EEXIST);
        ck_assert_ptr_null(again);
        ck_assert(existsf("%s/memory/cella/warm-1-1@%d", v1fs, me)); /* left as it was */
        /* A name taken in one hierarchy only: nothing made in the others. */
        mkdirf("%s/pids/cella/warm-1-2@%d", v1fs, me);
        ck_assert_int_eq(cgroup_new_exclusive(m1, "warm-1-2", &again), -EEXIST);
        ck_assert(!existsf("%s/memory/cella/warm-1-2@%d", v1fs, me));
        ck_assert(!existsf("%s/freezer/cella/warm-1-2@%d", v1fs, me));
        ck_assert(existsf("%s/pids/cella/warm-1-2@%d", v1fs, me));

        old_mem = strdup(cgroup_path(a, "memory"));
        ck_assert_int_eq(cgroup_rename(a, "org.example.app"), 0);
        want = fmt("org.example.app@%d", me);
        ck_assert_str_eq(cgroup_name(a), want);
        free(want);
        want = fmt("%s/memory/cella/org.example.app@%d", v1fs, me);
        ck_assert_str_eq(cgroup_path(a, "memory"), want);
        ck_assert(exists(want));
        ck_assert(!exists(old_mem));
        ck_assert(existsf("%s/freezer/cella/org.example.app@%d", v1fs, me));
        /* Not over a leaf that exists (in one hierarchy: then in none). */
        mkdirf("%s/freezer/cella/taken@%d", v1fs, me);
        ck_assert_int_eq(cgroup_rename(a, "taken"), -EEXIST);
        free(want);
        want = fmt("org.example.app@%d", me);
        ck_assert_str_eq(cgroup_name(a), want);
        free(want);
        want = NULL;
        ck_assert(existsf("%s/memory/cella/org.example.app@%d", v1fs, me));
        ck_assert(existsf("%s/pids/cella/org.example.app@%d", v1fs, me));
        ck_assert(!existsf("%s/memory/cella/taken@%d", v1fs, me));
        ck_assert_int_eq(cgroup_rename(a, "bad/label"), -EINVAL);
        ck_assert_int_eq(cgroup_rename(a, ".."), -EINVAL);

        /* Hybrid: made in the unified and the v1 hierarchies; never renamed. */
        ck_assert_int_eq(cgroup_manager_new(hyfs, CGROUP_MODE_HYBRID, NULL, &mh), 0);
        ck_assert_int_eq(cgroup_new_exclusive(mh, "warm-2-1", &h), 0);
        ck_assert(existsf("%s/unified/cella/warm-2-1@%d", hyfs, me));
        ck_assert(existsf("%s/memory/cella/warm-2-1@%d", hyfs, me));
        ck_assert_int_eq(cgroup_rename(h, "org.example.app"), -EOPNOTSUPP);
        want = fmt("warm-2-1@%d", me);
        ck_assert_str_eq(cgroup_name(h), want);
        ck_assert(existsf("%s/memory/cella/warm-2-1@%d", hyfs, me));
        ck_assert(!existsf("%s/memory/cella/org.example.app@%d", hyfs, me));

        /* v2: the leaf with the controllers enabled above it; never renamed. */
        ck_assert_int_eq(cgroup_manager_new(v2fs, CGROUP_MODE_V2, NULL, &m2), 0);
        ck_assert_int_eq(cgroup_new_exclusive(m2, "warm-3-1", &v), 0);
        ck_assert(existsf("%s/cella/warm-3-1@%d", v2fs, me));
        assert_file("+memory +pids +cpu", "%s/cella/cgroup.subtree_control", v2fs);
        ck_assert_int_eq(cgroup_new_exclusive(m2, "warm-3-1", &again), -EEXIST);
        ck_assert_int_eq(cgroup_rename(v, "org.example.app"), -EOPNOTSUPP);
        ck_assert(existsf("%s/cella/warm-3-1@%d", v2fs, me));
}
END_TEST

START_TEST(test_labels_and_parent)
{
        _cleanup_(rm_rfp) char *fs = fake_v1(false);
        _cleanup_(manager_freep) CgroupManager *m = NULL, *mp = NULL, *mbad = NULL, *mgone = NULL;
        _cleanup_free_ char *want = NULL;
        char long_label[CGROUP_LABEL_MAX + 2];
        Cgroup *cg = (Cgroup *)0x1;
        const char *bad[] = {"", "a/b", "..", ".", "a@1", "a b", "é", "../x", "x\n"};

        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V1, NULL, &m), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(cgroup_new(m, bad[i], &cg) == -EINVAL, "label \"%s\" accepted",
                              bad[i]);
        ck_assert_int_eq(cgroup_new(m, NULL, &cg), -EINVAL);
        ck_assert_ptr_eq(cg, (Cgroup *)0x1); /* untouched on failure */

        memset(long_label, 'a', sizeof long_label);
        long_label[CGROUP_LABEL_MAX + 1] = 0;
        ck_assert_int_eq(cgroup_new(m, long_label, &cg), -EINVAL);
        long_label[CGROUP_LABEL_MAX] = 0; /* exactly the bound */
        ck_assert_int_eq(cgroup_new(m, long_label, &cg), 0);
        ck_assert(exists(cgroup_path(cg, "memory")));
        cg = cgroup_destroy(cg);
        ck_assert_ptr_null(cg);
        ck_assert_int_eq(cgroup_new(m, "A-z_0.9", &cg), 0);
        /* Same label, same owner: the leaf is reused. */
        {
                Cgroup *again = NULL;

                ck_assert_int_eq(cgroup_new(m, "A-z_0.9", &again), 0);
                ck_assert_str_eq(cgroup_path(again, "pids"), cgroup_path(cg, "pids"));
                again = cgroup_destroy(again);
                ck_assert(!exists(cgroup_path(cg, "pids")));
        }
        cg = cgroup_destroy(cg); /* already gone: fine */

        /* An explicit parent, normalized; it must exist. */
        mkdirf("%s/memory/outer", fs);
        mkdirf("%s/memory/outer/inner", fs);
        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V1, "/outer//inner/", &mp), 0);
        ck_assert_int_eq(cgroup_new(mp, "p", &cg), -ENOENT); /* pids/outer/inner is missing */
        mkdirf("%s/pids/outer", fs);
        mkdirf("%s/pids/outer/inner", fs);
        mkdirf("%s/freezer/outer", fs);
        mkdirf("%s/freezer/outer/inner", fs);
        mkdirf("%s/cpu,cpuacct/outer", fs);
        mkdirf("%s/cpu,cpuacct/outer/inner", fs);
        ck_assert_int_eq(cgroup_new(mp, "p", &cg), 0);
        want = fmt("%s/memory/outer/inner/cella/p@%d", fs, (int)getpid());
        ck_assert_str_eq(cgroup_path(cg, "memory"), want);
        cg = cgroup_destroy(cg);
        ck_assert(!exists(want));

        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V1, "outer/../..", &mbad), -EINVAL);
        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V1, "..", &mbad), -EINVAL);
        ck_assert_ptr_null(mbad);
        ck_assert_int_eq(cgroup_manager_new("/nonexistent", CGROUP_MODE_AUTO, NULL, &mgone),
                         -ENOENT);
        ck_assert_int_eq(cgroup_manager_new("/nonexistent", CGROUP_MODE_V1, NULL, &mgone), -ENOENT);
        ck_assert_ptr_null(mgone);
}
END_TEST

START_TEST(test_sweep_fake)
{
        _cleanup_(rm_rfp) char *fs = fake_v1(false);
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        pid_t dead = dead_pid();
        const char *keep[] = {"plain", "z@12ab", "w@", "@", "v@0", "u@99999999999"};

        ck_assert_int_eq(cgroup_manager_new(fs, CGROUP_MODE_V1, NULL, &m), 0);
        ck_assert_int_eq(cgroup_sweep(m), 0); /* no cella root yet: nothing to do */

        mkdirf("%s/memory/cella", fs);
        mkdirf("%s/pids/cella", fs);
        /* A leftover in two hierarchies, nested three deep in one (a buggy run). */
        mkdirf("%s/memory/cella/x@%d", fs, (int)dead);
        mkdirf("%s/memory/cella/x@%d/inner", fs, (int)dead);
        mkdirf("%s/memory/cella/x@%d/inner/deeper", fs, (int)dead);
        mkdirf("%s/pids/cella/x@%d", fs, (int)dead);
        /* A live owner's leaf, and names that carry no owner. */
        mkdirf("%s/memory/cella/y@%d", fs, (int)getpid());
        mkdirf("%s/memory/cella/y@%d", fs, (int)getppid());
        for (size_t i = 0; i < ELEMENTSOF(keep); i++)
                mkdirf("%s/memory/cella/%s", fs, keep[i]);
        /* A file, not a directory, is not a leaf. */
        writef("", "%s/memory/cella/f@%d", fs, (int)dead);

        ck_assert_int_eq(cgroup_sweep(m), 1); /* one leaf, though in two hierarchies */
        ck_assert(!existsf("%s/memory/cella/x@%d", fs, (int)dead));
        ck_assert(!existsf("%s/pids/cella/x@%d", fs, (int)dead));
        ck_assert(existsf("%s/memory/cella/y@%d", fs, (int)getpid()));
        ck_assert(existsf("%s/memory/cella/y@%d", fs, (int)getppid()));
        for (size_t i = 0; i < ELEMENTSOF(keep); i++)
                ck_assert_msg(existsf("%s/memory/cella/%s", fs, keep[i]), "%s removed", keep[i]);
        ck_assert(existsf("%s/memory/cella/f@%d", fs, (int)dead));
        ck_assert_int_eq(cgroup_sweep(m), 0);
}
END_TEST

/* ---- real tests: /sys/fs/cgroup as root -------------------------------------------- */

#define REAL_FS "/sys/fs/cgroup"

static const CgroupMode real_modes[] = {CGROUP_MODE_HYBRID, CGROUP_MODE_V1, CGROUP_MODE_V2};
static const char *const real_mode_names[] = {"hybrid", "forced v1", "v2"};
static char real_skip[ELEMENTSOF(real_modes)][256];
static char **created_roots;

static bool strv_has(char **l, const char *s)
{
        STRV_FOREACH (i, l)
                if (strcmp(*i, s) == 0)
                        return true;
        return false;
}

/* Unchecked fixture (runs once, in the runner): which modes this host can drive. */
static void real_setup(void)
{
        CgroupMode host = CGROUP_MODE_AUTO;
        int detected = cgroup_detect(REAL_FS, &host);

        for (size_t i = 0; i < ELEMENTSOF(real_modes); i++) {
                _cleanup_(manager_freep) CgroupManager *m = NULL;
                Cgroup *cg = NULL;
                char *why = real_skip[i];
                size_t n = sizeof real_skip[i];
                int r;

                if (geteuid() != 0) {
                        snprintf(why, n, "not root");
                        continue;
                }
                if (detected < 0) {
                        snprintf(why, n, "no cgroup hierarchy under " REAL_FS ": %s",
                                 strerror(-detected));
                        continue;
                }
                r = cgroup_manager_new(REAL_FS, real_modes[i], NULL, &m);
                if (r < 0) {
                        snprintf(why, n, "host is %s, cannot drive it as %s: %s",
                                 host == CGROUP_MODE_V2       ? "v2"
                                 : host == CGROUP_MODE_HYBRID ? "hybrid"
                                                              : "v1",
                                 real_mode_names[i], strerror(-r));
                        continue;
                }
                /* Only roots this run makes are removed at the end: another cella may be
                 * using one that is already there. */
                for (size_t h = 0; h < m->n_hier; h++)
                        if (!exists(m->hier[h].root) && !strv_has(created_roots, m->hier[h].root))
                                ck_assert_int_eq(strv_extend(&created_roots, m->hier[h].root), 0);
                r = cgroup_new(m, "probe", &cg);
                if (r < 0) {
                        snprintf(why, n, "cannot create a cgroup: %s", strerror(-r));
                        continue;
                }
                cgroup_destroy(cg);
        }
}

/* Unchecked teardown: a failed test exits without cleaning up; its leaves carry its
 * (now dead) pid, so a sweep removes them and kills what was left in them. Then the
 * cella roots go, if nobody else uses them. */
static void real_teardown(void)
{
        for (size_t i = 0; i < ELEMENTSOF(real_modes); i++) {
                _cleanup_(manager_freep) CgroupManager *m = NULL;

                if (real_skip[i][0] || cgroup_manager_new(REAL_FS, real_modes[i], NULL, &m) < 0)
                        continue;
                (void)cgroup_sweep(m);
                for (size_t h = 0; h < m->n_hier; h++) {
                        _cleanup_free_ char *plain = fmt("%s/t-plain", m->hier[h].root);

                        (void)rmdir(plain); /* test_real_sweep's, if it failed */
                }
        }
        STRV_FOREACH (root, created_roots)
                (void)rmdir(*root);
        created_roots = strv_free(created_roots);
}

/* Per test: the manager for mode _i, or NULL after printing why the test is skipped. */
static CgroupManager *real_begin(int i, const char *test)
{
        CgroupManager *m = NULL;

        if (real_skip[i][0]) {
                printf("SKIP: %s (%s): %s\n", test, real_mode_names[i], real_skip[i]);
                fflush(stdout);
                return NULL;
        }
        /* Orphaned grandchildren come back to us, so they can be reaped and checked. */
        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        ck_assert_int_eq(cgroup_manager_new(REAL_FS, real_modes[i], NULL, &m), 0);
        return m;
}

#define REAL_BEGIN(m)                                                                              \
        _cleanup_(manager_freep) CgroupManager *m = real_begin(_i, __func__);                      \
        if (!m)                                                                                    \
        return

typedef struct Child {
        pid_t pid;
        int go;  /* write a byte: the child is attached, go on */
        int out; /* what the child reports */
} Child;

/* Forks a child that waits for "go" and then runs fn(out). It dies with us. */
static Child child_start(void (*fn)(int out))
{
        int go[2], out[2];
        Child c;

        ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        c.pid = fork();
        ck_assert_int_ge(c.pid, 0);
        if (c.pid == 0) {
                char b;

                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(go[1]);
                close(out[0]);
                if (read(go[0], &b, 1) != 1)
                        _exit(1);
                fn(out[1]);
                _exit(0);
        }
        close(go[0]);
        close(out[1]);
        c.go = go[1];
        c.out = out[0];
        return c;
}

static void child_go(Child *c)
{
        ck_assert_int_eq(write(c->go, "g", 1), 1);
}

/* Waits for the child and returns its wait status. */
static int child_reap(Child *c)
{
        int status = 0;

        ck_assert_int_eq(waitpid(c->pid, &status, 0), c->pid);
        close(c->go);
        close(c->out);
        return status;
}

/* Touches 4 MiB, burns 30 ms of CPU, says so, then sleeps. */
static void child_use(int out)
{
        size_t n = 4 * MiB;
        volatile char *p = malloc(n); /* volatile: the stores must not be optimized away */
        struct timespec ts;

        for (size_t i = 0; p && i < n; i += 4096)
                p[i] = 1;
        do
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        while (ts.tv_sec == 0 && ts.tv_nsec < 30 * 1000000L);
        (void)!write(out, "d", 1);
        for (;;)
                pause();
}

/* Writes a byte every millisecond: progress that stops when frozen. */
static void child_tick(int out)
{
        for (;;) {
                (void)!write(out, "t", 1);
                usleep(1000);
        }
}

/* Forks sleeping children until fork fails; reports how many and the errno. */
static void child_forker(int out)
{
        int n = 0, err[2];

        for (;;) {
                pid_t p = fork();

                if (p == 0) {
                        for (;;)
                                pause();
                }
                if (p < 0)
                        break;
                n++;
        }
        err[0] = n;
        err[1] = errno;
        (void)!write(out, err, sizeof err);
        for (;;)
                pause();
}

/* Allocates and touches 64 MiB; in a 16 MiB cgroup the OOM killer stops it. */
static void child_hog(int out)
{
        size_t n = 64 * MiB;
        volatile char *p = malloc(n);

        for (size_t i = 0; p && i < n; i += 4096)
                p[i] = 1;
        (void)!write(out, "survived", 8);
}

/* Forks a sleeping grandchild, reports its pid, sleeps. */
static void child_family(int out)
{
        pid_t g = fork();

        if (g == 0) {
                for (;;)
                        pause();
        }
        (void)!write(out, &g, sizeof g);
        for (;;)
                pause();
}

static bool read_exact(int fd, void *buf, size_t n)
{
        return read(fd, buf, n) == (ssize_t)n;
}

/* This process's cgroup path in the hierarchy of ctrl ("" = the v2 one), "" for "/". */
static char *self_cg(const char *ctrl)
{
        _cleanup_free_ char *s = readf("/proc/self/cgroup");
        char *want = fmt(":%s:", ctrl);
        char *line, *save = NULL;

        ck_assert_ptr_nonnull(s);
        for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *p = strstr(line, want);

                if (p && (ctrl[0] || strncmp(line, "0::", 3) == 0)) {
                        p += strlen(want);
                        free(want);
                        return strdup(strcmp(p, "/") == 0 ? "" : p);
                }
        }
        free(want);
        return strdup("");
}

/* True if /proc/pid/cgroup puts pid in the cgroup at path rel of ctrl's hierarchy. */
static bool pid_in(pid_t pid, const char *ctrl, const char *rel)
{
        _cleanup_free_ char *s = readf("/proc/%d/cgroup", (int)pid);
        _cleanup_free_ char *want = fmt(":%s:%s\n", ctrl, rel);

        return s && strstr(s, want);
}

static bool procs_empty(const char *dir)
{
        _cleanup_free_ char *s = dir ? readf("%s/cgroup.procs", dir) : NULL;

        return !dir || (s && s[0] == 0);
}

START_TEST(test_real_limits)
{
        REAL_BEGIN(m);
        _cleanup_(cgroup_destroyp) Cgroup *cg = NULL;
        _cleanup_free_ char *name = fmt("t-limits@%d", (int)getpid());
        _cleanup_free_ char *s = NULL, *want = NULL, *rel = NULL;
        char *paths[4] = {};
        const char *ctrls[] = {"memory", "pids", "cpu", ""};
        bool v2 = real_modes[_i] == CGROUP_MODE_V2;
        CgroupStats st;
        Child c;
        char b;

        ck_assert_int_eq(cgroup_new(m, "t-limits", &cg), 0);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.memory_max = 32 * MiB,
                                                               .pids_max = 8,
                                                               .cpu_quota_us = 50000,
                                                               .cpu_weight = 200}),
                         0);
        c = child_start(child_use);
        ck_assert_int_eq(cgroup_attach(cg, c.pid), 0);
        child_go(&c);

        if (!v2) {
                /* The memory leaf sits under this process's own memory cgroup, so the
                 * outer limit still holds; pids likewise under its own pids cgroup. */
                for (size_t i = 0; i < 2; i++) {
                        _cleanup_free_ char *self = self_cg(ctrls[i]);

                        free(want);
                        want = fmt(REAL_FS "/%s%s/cella/%s", ctrls[i], self, name);
                        ck_assert_str_eq(cgroup_path(cg, ctrls[i]), want);
                        free(rel);
                        rel = fmt("%s/cella/%s", self, name);
                        ck_assert_msg(pid_in(c.pid, ctrls[i], rel), "child not in %s:%s", ctrls[i],
                                      rel);
                }
                assert_knob(cgroup_path(cg, "memory"), "memory.limit_in_bytes", "33554432");
                if (existsf("%s/memory.memsw.limit_in_bytes", cgroup_path(cg, "memory")))
                        assert_knob(cgroup_path(cg, "memory"), "memory.memsw.limit_in_bytes",
                                    "33554432");
                assert_knob(cgroup_path(cg, "pids"), "pids.max", "8");
                /* Raising the limit past the memsw one set before: memsw must go first. */
                ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.memory_max = 48 * MiB}), 0);
                assert_knob(cgroup_path(cg, "memory"), "memory.limit_in_bytes", "50331648");
                if (existsf("%s/memory.memsw.limit_in_bytes", cgroup_path(cg, "memory")))
                        assert_knob(cgroup_path(cg, "memory"), "memory.memsw.limit_in_bytes",
                                    "50331648");
                ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.memory_max = 32 * MiB}), 0);
                assert_knob(cgroup_path(cg, "cpu"), "cpu.cfs_quota_us", "50000");
                assert_knob(cgroup_path(cg, "cpu"), "cpu.cfs_period_us", "100000");
                assert_knob(cgroup_path(cg, "cpu"), "cpu.shares", "2048");
        } else {
                assert_knob(cgroup_path(cg, ""), "memory.max", "33554432");
                assert_knob(cgroup_path(cg, ""), "pids.max", "8");
                assert_knob(cgroup_path(cg, ""), "cpu.max", "50000 100000");
                assert_knob(cgroup_path(cg, ""), "cpu.weight", "200");
        }
        if (cgroup_path(cg, "")) {
                _cleanup_free_ char *self = self_cg("");

                free(want);
                want = fmt(REAL_FS "%s%s/cella/%s", v2 ? "" : "/unified", self, name);
                ck_assert_str_eq(cgroup_path(cg, ""), want);
                free(rel);
                rel = fmt("%s/cella/%s", self, name);
                ck_assert_msg(pid_in(c.pid, "", rel), "child not in 0::%s", rel);
        }

        /* The child used 4 MiB and 30 ms of CPU inside the cgroup. */
        ck_assert(read_exact(c.out, &b, 1));
        ck_assert_int_eq(cgroup_stats(cg, &st), 0);
        ck_assert_uint_ge(st.memory_current, 4 * MiB);
        ck_assert_uint_le(st.memory_current, 32 * MiB);
        ck_assert_uint_eq(st.memory_max, 32 * MiB);
        ck_assert_uint_eq(st.pids_current, 1);
        ck_assert_uint_eq(st.oom_kills, 0);
        ck_assert_uint_ge(st.cpu_usage_usec, 20000);
        ck_assert_uint_le(st.cpu_usage_usec, 10 * 1000000);

        /* destroy: the child is killed and every leaf is gone. */
        for (size_t i = 0; i < ELEMENTSOF(ctrls); i++)
                paths[i] = cgroup_path(cg, ctrls[i]) ? strdup(cgroup_path(cg, ctrls[i])) : NULL;
        cg = cgroup_destroy(cg);
        {
                int status = child_reap(&c);

                ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        }
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                if (paths[i])
                        ck_assert_msg(!exists(paths[i]), "%s still there", paths[i]);
                free(paths[i]);
        }
}
END_TEST

START_TEST(test_real_unlimited)
{
        REAL_BEGIN(m);
        _cleanup_(cgroup_destroyp) Cgroup *cg = NULL;
        CgroupStats st;

        /* No limits set: stats say unlimited, not the kernel's huge number. */
        ck_assert_int_eq(cgroup_new(m, "t-unlimited", &cg), 0);
        ck_assert_int_eq(cgroup_stats(cg, &st), 0);
        ck_assert_uint_eq(st.memory_max, UINT64_MAX);
        ck_assert_uint_eq(st.pids_current, 0);
}
END_TEST

START_TEST(test_real_freeze)
{
        REAL_BEGIN(m);
        _cleanup_(cgroup_destroyp) Cgroup *cg = NULL;
        _cleanup_free_ char *s = NULL;
        char buf[4096];
        Child c;

        ck_assert_int_eq(cgroup_new(m, "t-freeze", &cg), 0);
        c = child_start(child_tick);
        ck_assert_int_eq(cgroup_attach(cg, c.pid), 0);
        child_go(&c);
        ck_assert_int_eq(read(c.out, buf, 1), 1); /* it ticks */
        ck_assert_int_eq(fd_nonblock(c.out, 1), 0);

        ck_assert_int_eq(cgroup_freeze(cg, true), 0);
        if (cgroup_path(cg, "")) {
                s = readf("%s/cgroup.events", cgroup_path(cg, ""));
                ck_assert_msg(s && strstr(s, "frozen 1\n"), "cgroup.events: %s", s);
        } else {
                assert_knob(cgroup_path(cg, "freezer"), "freezer.state", "FROZEN");
        }
        /* Frozen: after draining, no tick comes in 100 ms (it ticks every 1 ms when it
         * runs). poll() returns at the first tick, so a failure shows at once. */
        while (read(c.out, buf, sizeof buf) > 0)
                ;
        ck_assert_int_eq(poll(&(struct pollfd){.fd = c.out, .events = POLLIN}, 1, 100), 0);
        ck_assert_int_eq(read(c.out, buf, sizeof buf), -1);
        ck_assert_int_eq(errno, EAGAIN);

        /* Thawed: the next tick is the event waited for (the test's timeout bounds it). */
        ck_assert_int_eq(cgroup_freeze(cg, false), 0);
        ck_assert_int_eq(poll(&(struct pollfd){.fd = c.out, .events = POLLIN}, 1, -1), 1);
        ck_assert_int_gt(read(c.out, buf, sizeof buf), 0);

        cg = cgroup_destroy(cg);
        ck_assert_int_eq(WTERMSIG(child_reap(&c)), SIGKILL);
}
END_TEST

START_TEST(test_real_pids)
{
        REAL_BEGIN(m);
        _cleanup_(cgroup_destroyp) Cgroup *cg = NULL;
        const char *ctrls[] = {"memory", "pids", "cpu", "cpuacct", "freezer", ""};
        CgroupStats st;
        int res[2];
        Child c;

        ck_assert_int_eq(cgroup_new(m, "t-pids", &cg), 0);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.pids_max = 8}), 0);
        c = child_start(child_forker);
        ck_assert_int_eq(cgroup_attach(cg, c.pid), 0);
        child_go(&c);
        ck_assert(read_exact(c.out, res, sizeof res));
        /* The child is one of the 8 tasks: 7 forks, then EAGAIN. */
        ck_assert_int_eq(res[1], EAGAIN);
        ck_assert_int_eq(res[0], 7);
        ck_assert_int_eq(cgroup_stats(cg, &st), 0);
        ck_assert_uint_eq(st.pids_current, 8);
        {
                /* What the broker's proc.list reads: the pids cgroup, else the unified one. */
                const char *dir = cgroup_path(cg, "pids") ?: cgroup_path(cg, "");
                pid_t pids[16];

                bool found = false;

                ck_assert_int_eq(cgroup_read_procs(dir, pids, ELEMENTSOF(pids)), 8);
                for (size_t i = 0; i < 8; i++)
                        found |= pids[i] == c.pid;
                ck_assert(found);
        }

        ck_assert_int_eq(cgroup_kill(cg), 0);
        for (size_t i = 0; i < ELEMENTSOF(ctrls); i++)
                ck_assert_msg(procs_empty(cgroup_path(cg, ctrls[i])), "tasks left in %s",
                              cgroup_path(cg, ctrls[i]));
        ck_assert_int_eq(WTERMSIG(child_reap(&c)), SIGKILL);
        /* The 7 grandchildren, now ours (subreaper), were killed too. */
        for (int i = 0; i < 7; i++) {
                int status;

                ck_assert_int_gt(waitpid(-1, &status, 0), 0);
                ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        }
        /* pids.current counts zombies until they are reaped, so only now is it 0. */
        ck_assert_int_eq(cgroup_stats(cg, &st), 0);
        ck_assert_uint_eq(st.pids_current, 0);
}
END_TEST

START_TEST(test_real_oom)
{
        REAL_BEGIN(m);
        _cleanup_(cgroup_destroyp) Cgroup *cg = NULL;
        CgroupStats st;
        int status;
        Child c;

        ck_assert_int_eq(cgroup_new(m, "t-oom", &cg), 0);
        ck_assert_int_eq(cgroup_set_limits(cg, &(CgroupLimits){.memory_max = 16 * MiB}), 0);
        c = child_start(child_hog);
        ck_assert_int_eq(cgroup_attach(cg, c.pid), 0);
        child_go(&c);
        status = child_reap(&c);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "hog was not OOM-killed (status %#x)", status);
        ck_assert_int_eq(cgroup_stats(cg, &st), 0);
        ck_assert_uint_ge(st.oom_kills, 1);
        {
                uint64_t n = 0;

                ck_assert_int_eq(cgroup_oom_kills(cg, &n), 0);
                ck_assert_uint_eq(n, st.oom_kills);
        }
}
END_TEST

START_TEST(test_real_kill)
{
        REAL_BEGIN(m);
        _cleanup_(cgroup_destroyp) Cgroup *cg = NULL;
        const char *ctrls[] = {"memory", "pids", "cpu", "cpuacct", "freezer", ""};
        Child c[3];
        pid_t g[3];

        ck_assert_int_eq(cgroup_new(m, "t-kill", &cg), 0);
        for (int i = 0; i < 3; i++) {
                c[i] = child_start(child_family);
                ck_assert_int_eq(cgroup_attach(cg, c[i].pid), 0);
                child_go(&c[i]);
                ck_assert(read_exact(c[i].out, &g[i], sizeof g[i]));
        }
        /* Freeze first on one of them: kill must work on a frozen cgroup too. */
        ck_assert_int_eq(cgroup_freeze(cg, true), 0);
        ck_assert_int_eq(cgroup_kill(cg), 0);
        for (size_t i = 0; i < ELEMENTSOF(ctrls); i++)
                ck_assert_msg(procs_empty(cgroup_path(cg, ctrls[i])), "tasks left in %s",
                              cgroup_path(cg, ctrls[i]));
        for (int i = 0; i < 3; i++) {
                int status = child_reap(&c[i]);

                ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
                ck_assert_int_eq(waitpid(g[i], &status, 0), g[i]);
                ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        }
        ck_assert_int_eq(cgroup_freeze(cg, false), 0);
        /* Killing an empty cgroup is fine. */
        ck_assert_int_eq(cgroup_kill(cg), 0);
}
END_TEST

/* Plays a cella that was SIGKILLed: makes leaf "x@<own pid>", puts a sleeping task in
 * it, reports the task's pid and exits without cleaning up. */
static CgroupManager *orphan_manager;
static void child_orphan(int out)
{
        Cgroup *cg = NULL;
        pid_t g;

        if (cgroup_new(orphan_manager, "x", &cg) < 0)
                _exit(2);
        g = fork();
        if (g == 0) {
                for (;;)
                        pause();
        }
        if (g < 0 || cgroup_attach(cg, g) < 0)
                _exit(3);
        (void)!write(out, &g, sizeof g);
        _exit(0);
}

START_TEST(test_real_sweep)
{
        REAL_BEGIN(m);
        _cleanup_(cgroup_destroyp) Cgroup *live = NULL;
        const char *ctrls[] = {"memory", "pids", "cpu", "cpuacct", "freezer", ""};
        _cleanup_free_ char *plain = NULL, *nested = NULL;
        char *orphan[ELEMENTSOF(ctrls)] = {};
        int status, r;
        pid_t g;
        Child c;

        ck_assert_int_eq(cgroup_new(m, "live", &live), 0);
        orphan_manager = m;
        c = child_start(child_orphan);
        child_go(&c);
        ck_assert(read_exact(c.out, &g, sizeof g));
        status = child_reap(&c);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        ck_assert_int_eq(kill(g, 0), 0); /* the orphan's task lives on */

        /* Its leaf sits next to ours in every hierarchy; add a nested cgroup to one,
         * and a directory that names no owner. */
        for (size_t i = 0; i < ELEMENTSOF(ctrls); i++) {
                const char *p = cgroup_path(live, ctrls[i]);

                if (!p)
                        continue;
                orphan[i] = fmt("%.*s/x@%d", (int)(strrchr(p, '/') - p), p, (int)c.pid);
                ck_assert_msg(exists(orphan[i]), "%s missing", orphan[i]);
        }
        nested = fmt("%s/nested", orphan[0]);
        ck_assert_int_eq(mkdir(nested, 0755), 0);
        plain = fmt("%s/../t-plain", cgroup_path(live, "memory"));
        ck_assert_int_eq(mkdir(plain, 0755), 0);

        r = cgroup_sweep(m);
        ck_assert_int_ge(r, 1);
        /* The task is dead (reaped here: we are its subreaper), its leaf gone. */
        ck_assert_int_eq(waitpid(g, &status, 0), g);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        for (size_t i = 0; i < ELEMENTSOF(ctrls); i++) {
                if (orphan[i])
                        ck_assert_msg(!exists(orphan[i]), "%s not swept", orphan[i]);
                free(orphan[i]);
        }
        /* A live owner's leaf and a name without an owner stay. */
        for (size_t i = 0; i < ELEMENTSOF(ctrls); i++)
                if (cgroup_path(live, ctrls[i]))
                        ck_assert(exists(cgroup_path(live, ctrls[i])));
        ck_assert(exists(plain));
        ck_assert_int_eq(rmdir(plain), 0);
}
END_TEST

int main(void)
{
        /* One test case per mode, each a meson test of its own (tests/unit/meson.build,
         * CK_RUN_CASE): a mode this host cannot drive is reported as skipped (77). */
        static const char *const case_names[] = {"hybrid", "v1", "v2"};
        Suite *s = suite_create("cgroup");
        TCase *fake = tcase_create("fake");
        const char *only = getenv("CK_RUN_CASE");
        SRunner *sr;
        int failed;

        _Static_assert(ELEMENTSOF(case_names) == ELEMENTSOF(real_modes), "a name per mode");

        tcase_add_unchecked_fixture(fake, fake_setup, fake_teardown);
        tcase_add_test(fake, test_readers_fake);
        tcase_add_test(fake, test_detect_fake);
        tcase_add_test(fake, test_v2_fake);
        tcase_add_test(fake, test_v2_fake_freeze_timeout);
        tcase_add_test(fake, test_enter_fake);
        tcase_add_test(fake, test_v1_fake);
        tcase_add_test(fake, test_v1_fake_layouts);
        tcase_add_test(fake, test_hybrid_fake);
        tcase_add_test(fake, test_labels_and_parent);
        tcase_add_test(fake, test_sweep_fake);
        tcase_add_test(fake, test_exclusive_and_rename_fake);
        tcase_add_test(fake, test_exact_path_fake);
        tcase_add_test(fake, test_oci_resources_fake);
        suite_add_tcase(s, fake);

        for (int i = 0; i < (int)ELEMENTSOF(real_modes); i++) {
                TCase *real = tcase_create(case_names[i]);

                tcase_set_tags(real, "alone");

                tcase_add_unchecked_fixture(real, real_setup, real_teardown);
                tcase_set_timeout(real, 60);
                tcase_add_loop_test(real, test_real_limits, i, i + 1);
                tcase_add_loop_test(real, test_real_unlimited, i, i + 1);
                tcase_add_loop_test(real, test_real_freeze, i, i + 1);
                tcase_add_loop_test(real, test_real_pids, i, i + 1);
                tcase_add_loop_test(real, test_real_oom, i, i + 1);
                tcase_add_loop_test(real, test_real_kill, i, i + 1);
                tcase_add_loop_test(real, test_real_sweep, i, i + 1);
                suite_add_tcase(s, real);
        }

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        if (failed)
                return EXIT_FAILURE;
        /* The fixture ran in this process: real_skip says why a mode could not run. */
        for (size_t i = 0; only && i < ELEMENTSOF(case_names); i++)
                if (strcmp(only, case_names[i]) == 0 && real_skip[i][0]) {
                        printf("SKIP: cgroup %s: %s\n", real_mode_names[i], real_skip[i]);
                        return 77;
                }
        return EXIT_SUCCESS;
}
