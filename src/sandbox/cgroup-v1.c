/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cgroup v1: one hierarchy per controller (kernel Documentation/admin-guide/cgroup-v1/).
 * The limit and stats code here is also the hybrid backend's (cgroup-v2.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "sandbox/cgroup-internal.h"

/*
 * v1 reports "no memory limit" as PAGE_COUNTER_MAX pages in bytes: LONG_MAX rounded
 * down to a page on 64-bit (9223372036854771712 with 4 KiB pages, a little less with
 * bigger pages). Anything from 2^62 bytes (4 EiB) up is that, never a real limit.
 */
#define CGROUP_V1_UNLIMITED_MIN (UINT64_C(1) << 62)

/*
 * memory.limit_in_bytes, then memory.memsw.limit_in_bytes (memory + swap) to the same
 * value so the app cannot spill into swap. The kernel keeps memsw >= limit at all
 * times (mm/memcontrol-v1.c: -EINVAL otherwise), so raising a limit above an earlier
 * memsw one has to write memsw first. No memsw file (swap accounting off) is fine.
 *
 * Then memory.kmem.tcp.limit_in_bytes to the same value. v1 charges no socket
 * buffer to the memory cgroup until that file is written (mm/memcontrol-v1.c,
 * tcpmem_active; v2 always charges them to memory.current), and the app has INET
 * sockets on its own loopback: without it, an app limited to 32 MiB queued
 * 256 MiB in 35 pairs of TCP sockets nobody read, counted only against the host's
 * one net.ipv4.tcp_mem, past whose top every TCP socket of the host fails to
 * grow. Once written, every socket the app creates is charged to the cgroup's
 * tcp counter (TCP, UDP, UDP-Lite, ping: sk_mem_raise_allocated), and a socket
 * over it is under memory pressure, as over the host's tcp_mem; what still
 * passes is the kernel's forced floor per socket (tcp_wmem[0] queued, the first
 * skb of an empty receive queue), ~100 KiB measured. A kernel without the file
 * fails the limit (-ENOENT) rather than leave sockets uncharged.
 */
static int v1_set_memory(const char *dir, uint64_t bytes)
{
        int r;

        r = cgroup_write_knob_u64(dir, "memory.limit_in_bytes", bytes);
        if (r == -EINVAL) {
                if (cgroup_write_knob_u64(dir, "memory.memsw.limit_in_bytes", bytes) < 0)
                        return r;
                r = cgroup_write_knob_u64(dir, "memory.limit_in_bytes", bytes);
        }
        if (r < 0)
                return r;
        r = cgroup_write_knob_u64(dir, "memory.memsw.limit_in_bytes", bytes);
        if (r < 0 && r != -ENOENT && r != -EINVAL)
                return r;
        return cgroup_write_knob_u64(dir, "memory.kmem.tcp.limit_in_bytes", bytes);
}

int cgroup_v1_set_limits(Cgroup *cg, const CgroupLimits *limits)
{
        const char *mem = cgroup_leaf(cg, CGROUP_SLOT_MEMORY);
        const char *pids = cgroup_leaf(cg, CGROUP_SLOT_PIDS);
        const char *cpu = cgroup_leaf(cg, CGROUP_SLOT_CPU);
        int r;

        if (limits->memory_max > 0) {
                if (!mem)
                        return -EOPNOTSUPP;
                r = v1_set_memory(mem, limits->memory_max);
                if (r < 0)
                        return r;
        }
        if (limits->pids_max > 0) {
                if (!pids)
                        return -EOPNOTSUPP;
                r = cgroup_write_knob_u64(pids, "pids.max", limits->pids_max);
                if (r < 0)
                        return r;
        }
        if (limits->cpu_quota_us > 0 || limits->cpu_period_us > 0) {
                uint64_t period = limits->cpu_period_us ?: CGROUP_CPU_PERIOD_DEFAULT_US;

                if (!cpu)
                        return -EOPNOTSUPP;
                r = cgroup_write_knob_u64(cpu, "cpu.cfs_period_us", period);
                if (r < 0)
                        return r;
                if (limits->cpu_quota_us > 0) {
                        r = cgroup_write_knob_u64(cpu, "cpu.cfs_quota_us", limits->cpu_quota_us);
                        if (r < 0)
                                return r;
                }
        }
        if (limits->cpu_weight > 0) {
                if (!cpu)
                        return -EOPNOTSUPP;
                r = cgroup_write_knob_u64(cpu, "cpu.shares",
                                          cgroup_weight_to_shares(limits->cpu_weight));
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * freezer.state: FROZEN, then wait until it reads FROZEN rather than FREEZING
 * (kernel cgroup-v1/freezer-subsystem.rst), at most CGROUP_FREEZE_TIMEOUT_MS; on
 * timeout thaw again and return -ETIMEDOUT. THAWED takes effect at once.
 */
static int v1_freeze(Cgroup *cg, bool frozen)
{
        const char *dir = cgroup_leaf(cg, CGROUP_SLOT_FREEZER);
        int r;

        if (!dir)
                return -EOPNOTSUPP;
        if (!frozen)
                return cgroup_write_knob(dir, "freezer.state", "THAWED");
        r = cgroup_write_knob(dir, "freezer.state", "FROZEN");
        if (r < 0)
                return r;
        for (unsigned ms = 0;; ms++) {
                _cleanup_free_ char *s = NULL;

                r = cgroup_read_knob(dir, "freezer.state", &s);
                if (r < 0)
                        return r;
                if (strncmp(s, "FROZEN", 6) == 0 && (s[6] == '\n' || s[6] == 0))
                        return 0;
                if (ms >= CGROUP_FREEZE_TIMEOUT_MS)
                        break;
                cgroup_sleep_ms(1);
        }
        (void)cgroup_write_knob(dir, "freezer.state", "THAWED");
        return -ETIMEDOUT;
}

/* No cgroup.kill on v1: freeze, SIGKILL each listed task, thaw, until empty. */
static int v1_kill(Cgroup *cg)
{
        return cgroup_kill_loop(cg, v1_freeze);
}

int cgroup_v1_stats(Cgroup *cg, CgroupStats *ret)
{
        const char *mem = cgroup_leaf(cg, CGROUP_SLOT_MEMORY);
        const char *pids = cgroup_leaf(cg, CGROUP_SLOT_PIDS);
        const char *acct = cgroup_leaf(cg, CGROUP_SLOT_CPUACCT);
        const char *unified = cgroup_leaf(cg, CGROUP_SLOT_UNIFIED);
        CgroupStats st = {.memory_max = UINT64_MAX};
        uint64_t v;
        int r;

        if (mem) {
                r = cgroup_read_knob_u64(mem, "memory.usage_in_bytes", &st.memory_current);
                if (r < 0)
                        return r;
                r = cgroup_read_knob_u64(mem, "memory.limit_in_bytes", &v);
                if (r < 0)
                        return r;
                st.memory_max = v >= CGROUP_V1_UNLIMITED_MIN ? UINT64_MAX : v;
                /* The "oom_kill" line appeared in kernel 4.13. */
                r = cgroup_optional(cgroup_read_keyed_u64(mem, "memory.oom_control", "oom_kill",
                                                          &st.oom_kills));
                if (r < 0)
                        return r;
        }
        if (pids) {
                r = cgroup_read_knob_u64(pids, "pids.current", &st.pids_current);
                if (r < 0)
                        return r;
        }
        if (acct) {
                r = cgroup_read_knob_u64(acct, "cpuacct.usage", &v); /* nanoseconds */
                if (r < 0)
                        return r;
                st.cpu_usage_usec = v / 1000;
        } else if (unified) {
                /* Hybrid without cpuacct: cpu.stat is core cgroup2, there without controllers. */
                r = cgroup_optional(cgroup_read_keyed_u64(unified, "cpu.stat", "usage_usec",
                                                          &st.cpu_usage_usec));
                if (r < 0)
                        return r;
        }
        *ret = st;
        return 0;
}

const CgroupOps cgroup_v1_ops = {
        .name = "v1",                       /* cgroup_manager_ops()->name */
        .create = cgroup_generic_create,    /* mkdir root and leaf in each controller's tree */
        .set_limits = cgroup_v1_set_limits, /* memory(+memsw, tcp), pids.max, cfs_*, cpu.shares */
        .attach = cgroup_generic_attach,    /* cgroup.procs in every hierarchy */
        .freeze = v1_freeze,                /* freezer.state, waits for FROZEN */
        .kill = v1_kill,                    /* freeze, SIGKILL each task, thaw, repeat */
        .stats = cgroup_v1_stats,           /* usage_in_bytes, oom_control, cpuacct.usage */
        .destroy = cgroup_generic_destroy,  /* rmdir every leaf, retry on EBUSY */
};
