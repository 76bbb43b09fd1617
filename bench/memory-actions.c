/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/memory-actions: the memory manager's freeze, thaw and kill on a real cgroup
 * of this host (issue 13 targets: freeze and thaw <= 5 ms p90, kill to an empty
 * cgroup <= 10 ms, for <= 50 idle processes; docs/benchmarks.md, "Memory actions").
 *
 * Makes one leaf under cella's root (as cella would: cgroup_manager_new() with the
 * host's layout), puts N idle processes (pause(2)) in it, then over R rounds times:
 *   - memory_freeze(true) and memory_freeze(false): cgroup.freeze until cgroup.events
 *     says frozen 1 / 0 (read every 100 µs; src/sandbox/cgroup-action.c);
 *   - the kernel's older path for comparison, cgroup_freeze() (polls every 1 ms);
 *   - memory_kill(): cgroup.kill until "populated 0", with N fresh
 *     processes each round.
 * Prints a Markdown table of p50, p90 and max. Usage, as root:
 *   build/bench/memory-actions [--procs N] [--rounds R]
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/time-util.h"
#include "memory/action.h"
#include "sandbox/cgroup.h"

#define PROCS_MAX 4096

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, unsigned p)
{
        qsort(v, n, sizeof *v, cmp_u64);
        return v[(n - 1) * p / 100];
}

static void row(const char *name, uint64_t *v, size_t n)
{
        uint64_t p50 = pct(v, n, 50), p90 = pct(v, n, 90), max = pct(v, n, 100);

        printf("| %s | %.3f ms | %.3f ms | %.3f ms | %zu |\n", name, p50 / 1000.0, p90 / 1000.0,
               max / 1000.0, n);
}

/* Forks n idle children into cg. Returns 0 or -errno. */
static int spawn_idle(Cgroup *cg, pid_t *pids, unsigned n)
{
        for (unsigned i = 0; i < n; i++) {
                int r;

                pids[i] = fork();
                if (pids[i] < 0)
                        return -errno;
                if (pids[i] == 0) {
                        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                        for (;;)
                                pause();
                }
                r = cgroup_attach(cg, pids[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void reap(pid_t *pids, unsigned n)
{
        for (unsigned i = 0; i < n; i++)
                if (pids[i] > 0)
                        (void)waitpid(pids[i], NULL, 0);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {{"procs", required_argument, NULL, 'p'},
                                             {"rounds", required_argument, NULL, 'r'},
                                             {}};
        unsigned procs = 50, rounds = 100;
        CgroupManager *m = NULL;
        Cgroup *cg = NULL;
        uint64_t *fr, *th, *fr_old, *th_old, *kill_us;
        pid_t *pids;
        int c, r;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                char *end;
                unsigned long v;

                if (c != 'p' && c != 'r')
                        return 2;
                errno = 0;
                v = strtoul(optarg, &end, 10);
                if (errno || *end || v == 0 || v > (c == 'p' ? PROCS_MAX : 100000)) {
                        fprintf(stderr, "memory-actions: bad --%s: %s\n",
                                c == 'p' ? "procs" : "rounds", optarg);
                        return 2;
                }
                if (c == 'p')
                        procs = (unsigned)v;
                else
                        rounds = (unsigned)v;
        }
        if (geteuid() != 0) {
                fprintf(stderr, "memory-actions: needs root (it makes a cgroup)\n");
                return 77;
        }
        pids = calloc(procs, sizeof *pids);
        fr = calloc(rounds, sizeof *fr);
        th = calloc(rounds, sizeof *th);
        fr_old = calloc(rounds, sizeof *fr_old);
        th_old = calloc(rounds, sizeof *th_old);
        kill_us = calloc(rounds, sizeof *kill_us);
        if (!pids || !fr || !th || !fr_old || !th_old || !kill_us)
                return 1;
        r = cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m);
        if (r >= 0)
                r = cgroup_new(m, "bench-memory", &cg);
        if (r < 0) {
                fprintf(stderr, "memory-actions: cgroup: %s\n", strerror(-r));
                return 1;
        }
        r = spawn_idle(cg, pids, procs);
        if (r < 0)
                goto fail;
        for (unsigned i = 0; i < rounds; i++) {
                uint64_t t0;

                r = memory_freeze(cg, true, &fr[i]);
                if (r < 0)
                        goto fail;
                r = memory_freeze(cg, false, &th[i]);
                if (r < 0)
                        goto fail;
                t0 = now_monotonic_ns();
                r = cgroup_freeze(cg, true);
                fr_old[i] = (now_monotonic_ns() - t0) / 1000;
                if (r < 0)
                        goto fail;
                t0 = now_monotonic_ns();
                r = cgroup_freeze(cg, false);
                th_old[i] = (now_monotonic_ns() - t0) / 1000;
                if (r < 0)
                        goto fail;
        }
        for (unsigned i = 0; i < rounds; i++) {
                MemoryKill k;

                if (i > 0) {
                        r = spawn_idle(cg, pids, procs);
                        if (r < 0)
                                goto fail;
                }
                r = memory_kill(cg, &k);
                if (r < 0)
                        goto fail;
                kill_us[i] = k.usec;
                reap(pids, procs);
                memset(pids, 0, procs * sizeof *pids);
        }
        printf("cgroup mode: %s; %u idle processes; %u rounds\n\n", cgroup_manager_ops(m)->name,
               procs, rounds);
        printf("| action | p50 | p90 | max | n |\n|---|---|---|---|---|\n");
        row("freeze (memory_freeze: cgroup.freeze)", fr, rounds);
        row("thaw (memory_freeze false: until frozen 0)", th, rounds);
        row("freeze (cgroup_freeze: polls 1 ms)", fr_old, rounds);
        row("thaw (cgroup_freeze false: no wait)", th_old, rounds);
        row("kill to empty (memory_kill: cgroup.kill, populated 0)", kill_us, rounds);
        cgroup_destroy(cg);
        cgroup_manager_free(m);
        free(pids), free(fr), free(th), free(fr_old), free(th_old), free(kill_us);
        return 0;
fail:
        fprintf(stderr, "memory-actions: %s\n", strerror(-r));
        (void)cgroup_kill(cg);
        reap(pids, procs);
        cgroup_destroy(cg);
        cgroup_manager_free(m);
        free(pids), free(fr), free(th), free(fr_old), free(th_old), free(kill_us);
        return r == -EOPNOTSUPP ? 77 : 1;
}
