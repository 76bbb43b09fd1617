/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cgroup v2 (kernel Documentation/admin-guide/cgroup-v2.rst), and the hybrid backend:
 * v1 controllers for limits and stats (cgroup-v1.c) plus a leaf in the controller-less
 * v2 hierarchy for cgroup.freeze, cgroup.kill and cgroup.events, which is the code
 * here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "sandbox/cgroup-internal.h"

/* Controllers an app's leaf needs; each is enabled only where cgroup.controllers offers it. */
static const char *const v2_controllers[] = {"memory", "pids", "cpu"};

/*
 * Enables the controllers in dir's cgroup.subtree_control so that its children get
 * them. One write for all: the kernel applies a subtree_control write all or nothing,
 * and only controllers dir has (cgroup.controllers) and has not enabled yet are
 * asked for. Returns 0 or -errno (-EBUSY: dir holds processes and is not the root).
 */
int cgroup_v2_enable_controllers(const char *dir)
{
        return cgroup_v2_enable_controllers_extra(dir, 0);
}

int cgroup_v2_enable_controllers_extra(const char *dir, unsigned extra)
{
        static const struct {
                unsigned bit;
                const char *name;
        } extras[] = {{CGROUP_CTRL_CPUSET, "cpuset"},
                      {CGROUP_CTRL_BLKIO, "io"},
                      {CGROUP_CTRL_HUGETLB, "hugetlb"}};
        _cleanup_free_ char *avail = NULL, *enabled = NULL;
        char buf[96] = "";
        size_t n = 0;
        int r;

        r = cgroup_read_knob(dir, "cgroup.controllers", &avail);
        if (r < 0)
                return r;
        r = cgroup_read_knob(dir, "cgroup.subtree_control", &enabled);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(v2_controllers); i++) {
                const char *c = v2_controllers[i];

                if (!cgroup_list_contains(avail, " \n", c) ||
                    cgroup_list_contains(enabled, " \n", c))
                        continue;
                n += (size_t)snprintf(buf + n, sizeof buf - n, "%s+%s", n ? " " : "", c);
        }
        for (size_t i = 0; i < ELEMENTSOF(extras); i++) {
                const char *c = extras[i].name;

                if (!(extra & extras[i].bit) || !cgroup_list_contains(avail, " \n", c) ||
                    cgroup_list_contains(enabled, " \n", c))
                        continue;
                n += (size_t)snprintf(buf + n, sizeof buf - n, "%s+%s", n ? " " : "", c);
        }
        if (n == 0)
                return 0;
        return cgroup_write_knob(dir, "cgroup.subtree_control", buf);
}

/* mkdir cella's root, enable memory, pids and cpu for it and below it, then the leaf. */
static int v2_create(Cgroup *cg)
{
        const CgroupHierarchy *h = &cg->manager->hier[cg->manager->slot[CGROUP_SLOT_UNIFIED]];
        int r;

        /* An exact path (cgroup_manager_set_path()) makes its own parents. */
        if (cg->manager->path)
                return cgroup_generic_create(cg);
        r = cgroup_mkdir(h->root);
        if (r < 0)
                return r;
        r = cgroup_v2_enable_controllers(h->parent);
        if (r < 0)
                return r;
        r = cgroup_v2_enable_controllers(h->root);
        if (r < 0)
                return r;
        return cgroup_generic_create(cg);
}

static int v2_set_limits(Cgroup *cg, const CgroupLimits *limits)
{
        const char *dir = cgroup_leaf(cg, CGROUP_SLOT_UNIFIED);
        int r;

        if (limits->memory_max > 0) {
                r = cgroup_write_knob_u64(dir, "memory.max", limits->memory_max);
                if (r < 0)
                        return r;
                /* No swap on top; memory.swap.max is missing without swap accounting. */
                r = cgroup_write_knob(dir, "memory.swap.max", "0");
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        if (limits->pids_max > 0) {
                r = cgroup_write_knob_u64(dir, "pids.max", limits->pids_max);
                if (r < 0)
                        return r;
        }
        if (limits->cpu_quota_us > 0 || limits->cpu_period_us > 0) {
                uint64_t period = limits->cpu_period_us ?: CGROUP_CPU_PERIOD_DEFAULT_US;
                char buf[48];

                /* "$MAX $PERIOD"; a period alone keeps the quota at "max". */
                if (limits->cpu_quota_us > 0)
                        snprintf(buf, sizeof buf, "%" PRIu64 " %" PRIu64, limits->cpu_quota_us,
                                 period);
                else
                        snprintf(buf, sizeof buf, "max %" PRIu64, period);
                r = cgroup_write_knob(dir, "cpu.max", buf);
                if (r < 0)
                        return r;
        }
        if (limits->cpu_weight > 0) {
                r = cgroup_write_knob_u64(dir, "cpu.weight", limits->cpu_weight);
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * cgroup.freeze (5.2+), then wait for "frozen 1" in cgroup.events, at most
 * CGROUP_FREEZE_TIMEOUT_MS; on timeout thaw again and return -ETIMEDOUT.
 * Used by v2 and hybrid alike: the unified leaf needs no controller for this.
 */
static int v2_freeze(Cgroup *cg, bool frozen)
{
        const char *dir = cgroup_leaf(cg, CGROUP_SLOT_UNIFIED);
        int r;

        r = cgroup_write_knob(dir, "cgroup.freeze", frozen ? "1" : "0");
        if (r < 0 || !frozen)
                return r;
        r = cgroup_wait_keyed(dir, "cgroup.events", "frozen", 1, CGROUP_FREEZE_TIMEOUT_MS);
        if (r == -ETIMEDOUT)
                (void)cgroup_write_knob(dir, "cgroup.freeze", "0");
        return r;
}

/*
 * cgroup.kill (5.14+) SIGKILLs the whole subtree in the kernel, with no pid races;
 * then wait for the leaves (v1 ones too, on hybrid) to empty. Before 5.14, or if
 * something is left (a task that sits in a v1 leaf only), the freeze/kill loop.
 */
static int v2_kill(Cgroup *cg)
{
        int r;

        r = cgroup_write_knob(cgroup_leaf(cg, CGROUP_SLOT_UNIFIED), "cgroup.kill", "1");
        if (r == -ENOENT)
                return cgroup_kill_loop(cg, v2_freeze);
        if (r < 0)
                return r;
        r = cgroup_wait_empty(cg, CGROUP_KILL_WAIT_MS);
        if (r == -EBUSY)
                return cgroup_kill_loop(cg, v2_freeze);
        return r;
}

static int v2_stats(Cgroup *cg, CgroupStats *ret)
{
        const char *dir = cgroup_leaf(cg, CGROUP_SLOT_UNIFIED);
        CgroupStats st = {.memory_max = UINT64_MAX};
        int r;

        r = cgroup_optional(cgroup_read_knob_u64(dir, "memory.current", &st.memory_current));
        if (r < 0)
                return r;
        r = cgroup_optional(cgroup_read_knob_u64(dir, "memory.max", &st.memory_max));
        if (r < 0)
                return r;
        r = cgroup_optional(cgroup_read_knob_u64(dir, "pids.current", &st.pids_current));
        if (r < 0)
                return r;
        r = cgroup_optional(cgroup_read_keyed_u64(dir, "memory.events", "oom_kill", &st.oom_kills));
        if (r < 0)
                return r;
        r = cgroup_optional(
                cgroup_read_keyed_u64(dir, "cpu.stat", "usage_usec", &st.cpu_usage_usec));
        if (r < 0)
                return r;
        *ret = st;
        return 0;
}

const CgroupOps cgroup_v2_ops = {
        .name = "v2",                    /* cgroup_manager_ops()->name */
        .create = v2_create,             /* mkdir, enable +memory +pids +cpu */
        .set_limits = v2_set_limits,     /* memory.max, memory.swap.max, pids.max, cpu.max/weight */
        .attach = cgroup_generic_attach, /* cgroup.procs */
        .freeze = v2_freeze,             /* cgroup.freeze, waits for cgroup.events frozen 1 */
        .kill = v2_kill,                 /* cgroup.kill, then wait for the leaf to empty */
        .stats = v2_stats,               /* memory.current/max/events, pids.current, cpu.stat */
        .destroy = cgroup_generic_destroy, /* rmdir the leaf, retry on EBUSY */
};

const CgroupOps cgroup_hybrid_ops = {
        .name = "hybrid",                   /* cgroup_manager_ops()->name */
        .create = cgroup_generic_create,    /* mkdir in each v1 controller tree and in unified */
        .set_limits = cgroup_v1_set_limits, /* the v1 knobs: no controllers in unified */
        .attach = cgroup_generic_attach,    /* cgroup.procs in every v1 tree and in unified */
        .freeze = v2_freeze,                /* unified cgroup.freeze, not the v1 freezer */
        .kill = v2_kill,                    /* unified cgroup.kill */
        .stats = cgroup_v1_stats,           /* v1 counters; cpu.stat if no cpuacct */
        .destroy = cgroup_generic_destroy,  /* rmdir every leaf, v1 and unified */
};
