/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The OCI runtime's cgroup knobs beyond cella's own limits (cgroup.h, CgroupResources):
 * cpuset, memory reservation/swappiness/OOM killer, device rules, blkio weight, hugetlb,
 * net_cls/net_prio and cgroup2 "unified" files, written as runc writes them
 * (libcontainer/cgroups/fs and fs2) on v1, hybrid and v2 hosts.
 */
#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/macro.h"
#include "sandbox/cgroup-internal.h"

const CgroupDeviceRule cgroup_default_device_rules[] = {
        {true, 'c', -1, -1, "m"},    {true, 'b', -1, -1, "m"}, {true, 'c', 1, 3, "rwm"},
        {true, 'c', 1, 8, "rwm"},    {true, 'c', 1, 7, "rwm"}, {true, 'c', 5, 0, "rwm"},
        {true, 'c', 1, 5, "rwm"},    {true, 'c', 1, 9, "rwm"}, {true, 'c', 5, 1, "rwm"},
        {true, 'c', 136, -1, "rwm"}, {true, 'c', 5, 2, "rwm"}, {true, 'c', 10, 200, "rwm"},
};
const size_t cgroup_n_default_device_rules = ELEMENTSOF(cgroup_default_device_rules);

/* True if dir/knob exists. */
static bool has_knob(const char *dir, const char *knob)
{
        char p[PATH_MAX];

        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, knob) >= sizeof p)
                return false;
        return access(p, F_OK) == 0;
}

/* True if the knob's file holds nothing but white space. */
static bool knob_empty(const char *s)
{
        return s[strspn(s, " \n")] == 0;
}

int cgroup_v1_cpuset_inherit(const char *dir)
{
        static const char *const knobs[] = {"cpuset.cpus", "cpuset.mems"};
        _cleanup_free_ char *parent = strdup(dir);
        char *slash = parent ? strrchr(parent, '/') : NULL;

        if (!parent)
                return -ENOMEM;
        if (!slash || slash == parent)
                return -EINVAL;
        *slash = 0;
        for (size_t i = 0; i < ELEMENTSOF(knobs); i++) {
                _cleanup_free_ char *mine = NULL, *theirs = NULL;
                int r = cgroup_read_knob(dir, knobs[i], &mine);

                if (r < 0)
                        return r;
                if (!knob_empty(mine))
                        continue;
                r = cgroup_read_knob(parent, knobs[i], &theirs);
                if (r < 0)
                        return r;
                theirs[strcspn(theirs, "\n")] = 0;
                if (!*theirs)
                        continue; /* the parent's own parent is empty too: the kernel says */
                r = cgroup_write_knob(dir, knobs[i], theirs);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* "c 1:3 rwm", with "*" for -1. */
static void rule_format(const CgroupDeviceRule *d, char *buf, size_t size)
{
        char maj[24] = "*", min[24] = "*";

        if (d->type == 'a') {
                snprintf(buf, size, "a");
                return;
        }
        if (d->major >= 0)
                snprintf(maj, sizeof maj, "%" PRId64, d->major);
        if (d->minor >= 0)
                snprintf(min, sizeof min, "%" PRId64, d->minor);
        snprintf(buf, size, "%c %s:%s %s", d->type, maj, min, d->access);
}

static int write_rule(const char **last, const char *dir, const CgroupDeviceRule *d)
{
        char buf[80];

        rule_format(d, buf, sizeof buf);
        *last = d->allow ? "devices.allow" : "devices.deny";
        return cgroup_write_knob(dir, *last, buf);
}

/* A v1-scale blkio weight (10..1000) on the cgroup2 io.weight scale (1..10000), as
 * runc converts it (libcontainer/cgroups/utils.go ConvertBlkIOToIOWeightValue). */
static uint64_t blkio_to_io_weight(uint64_t w)
{
        return 1 + (w - 10) * 9999 / 990;
}

/* The unified keys cella refuses: they move tasks or change the tree, which the
 * runtime itself does. */
static bool unified_key_ok(const char *k)
{
        static const char *const refused[] = {
                "cgroup.procs", "cgroup.threads", "cgroup.subtree_control",
                "cgroup.type",  "cgroup.kill",    "cgroup.freeze"};

        if (!*k || strchr(k, '/') || strstr(k, "..") || !strchr(k, '.'))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(refused); i++)
                if (strcmp(k, refused[i]) == 0)
                        return false;
        return true;
}

#define FAIL(r, ...)                                                                               \
        do {                                                                                       \
                snprintf(err, errlen, __VA_ARGS__);                                                \
                return (r);                                                                        \
        } while (0)

int cgroup_resources_check(CgroupManager *m, const CgroupResources *res, char *err, size_t errlen)
{
        bool v2;
        const char *dir;

        if (!m || !res)
                return -EINVAL;
        v2 = m->mode == CGROUP_MODE_V2;
#define HIER(s_) (m->slot[s_] < 0 ? NULL : m->hier[m->slot[s_]].mount)
        if ((res->cpuset_cpus || res->cpuset_mems) &&
            (!HIER(CGROUP_SLOT_CPUSET) || (v2 && !(m->extra & CGROUP_CTRL_CPUSET))))
                FAIL(-EOPNOTSUPP,
                     "linux.resources.cpu.%s: this host has no cpuset cgroup controller",
                     res->cpuset_cpus ? "cpus" : "mems");
        /* cpuset(7) "List format": numbers, ranges and commas, nothing the kernel would
         * take as another file's syntax. */
        if (res->cpuset_cpus && (!*res->cpuset_cpus || strspn(res->cpuset_cpus, "0123456789,-") !=
                                                               strlen(res->cpuset_cpus)))
                FAIL(-EINVAL, "linux.resources.cpu.cpus: \"%.32s\" is not a CPU list",
                     res->cpuset_cpus);
        if (res->cpuset_mems && (!*res->cpuset_mems || strspn(res->cpuset_mems, "0123456789,-") !=
                                                               strlen(res->cpuset_mems)))
                FAIL(-EINVAL, "linux.resources.cpu.mems: \"%.32s\" is not a node list",
                     res->cpuset_mems);
        dir = HIER(CGROUP_SLOT_MEMORY);
        if (res->memory_low && !dir)
                FAIL(-EOPNOTSUPP,
                     "linux.resources.memory.reservation: no memory cgroup controller");
        if (res->swappiness_set) {
                if (res->swappiness > 100)
                        FAIL(-EINVAL, "linux.resources.memory.swappiness: %" PRIu64 " is over 100",
                             res->swappiness);
                /* cgroup v2 has none: left to the caller to say (cella-oci's note). */
                if (!v2 && (!dir || !has_knob(dir, "memory.swappiness")))
                        FAIL(-EOPNOTSUPP, "linux.resources.memory.swappiness: this host has no "
                                          "memory.swappiness");
        }
        if (res->oom_kill_disable) {
                /* cgroup v2 cannot disable the OOM killer: the caller says so. */
                if (!v2 && (!dir || !has_knob(dir, "memory.oom_control")))
                        FAIL(-EOPNOTSUPP, "linux.resources.memory.disableOOMKiller: this host has "
                                          "no memory.oom_control");
        }
        if (res->blkio_weight) {
                dir = HIER(CGROUP_SLOT_BLKIO);
                if (res->blkio_weight < 10 || res->blkio_weight > 1000)
                        FAIL(-EINVAL,
                             "linux.resources.blockIO.weight: %" PRIu64
                             " is out of range (10 to 1000)",
                             res->blkio_weight);
                if (!dir || (v2 && !(m->extra & CGROUP_CTRL_BLKIO)))
                        FAIL(-EOPNOTSUPP,
                             "linux.resources.blockIO.weight: this host has no %s "
                             "cgroup controller",
                             v2 ? "io" : "blkio");
                /* The weight files are in the children only on cgroup2; on v1 the root
                 * has them too. On v2 the check is left to the write (io.weight needs a
                 * scheduler that takes weights). */
                if (!v2 && !has_knob(dir, "blkio.weight") && !has_knob(dir, "blkio.bfq.weight"))
                        FAIL(-EOPNOTSUPP, "linux.resources.blockIO.weight: this host's blkio "
                                          "controller has neither blkio.weight nor "
                                          "blkio.bfq.weight (no CFQ or BFQ I/O scheduler)");
        }
        if (res->n_hugetlb) {
                dir = HIER(CGROUP_SLOT_HUGETLB);
                if (!dir || (v2 && !(m->extra & CGROUP_CTRL_HUGETLB)))
                        FAIL(-EOPNOTSUPP, "linux.resources.hugepageLimits: this host has no "
                                          "hugetlb cgroup controller");
                for (size_t i = 0; i < res->n_hugetlb; i++) {
                        char knob[64];
                        const char *ps = res->hugetlb[i].page_size;

                        if (!*ps || strlen(ps) > 16 || strchr(ps, '/') || strchr(ps, '.'))
                                FAIL(-EINVAL,
                                     "linux.resources.hugepageLimits[%zu].pageSize: "
                                     "\"%.32s\" is not a page size",
                                     i, ps);
                        snprintf(knob, sizeof knob, "hugetlb.%s.%s", ps,
                                 v2 ? "max" : "limit_in_bytes");
                        /* cgroup2's root has no hugetlb.*.max: v2 leaves it to the write. */
                        if (!v2 && !has_knob(dir, knob))
                                FAIL(-EOPNOTSUPP,
                                     "linux.resources.hugepageLimits[%zu]: this "
                                     "host has no %s",
                                     i, knob);
                }
        }
        if (res->net_cls_classid_set && (v2 || !HIER(CGROUP_SLOT_NET_CLS)))
                FAIL(-EOPNOTSUPP,
                     "linux.resources.network.classID: this host has no net_cls "
                     "cgroup controller%s",
                     v2 ? " (cgroup v1 only)" : "");
        if (res->n_ifpriority && (v2 || !HIER(CGROUP_SLOT_NET_PRIO)))
                FAIL(-EOPNOTSUPP,
                     "linux.resources.network.priorities: this host has no "
                     "net_prio cgroup controller%s",
                     v2 ? " (cgroup v1 only)" : "");
        for (size_t i = 0; i < res->n_ifpriority; i++)
                if (!*res->ifpriority[i].ifname || strlen(res->ifpriority[i].ifname) >= 16 ||
                    strpbrk(res->ifpriority[i].ifname, " \n/"))
                        FAIL(-EINVAL,
                             "linux.resources.network.priorities[%zu].name: not an "
                             "interface name",
                             i);
        if (res->devices_set && !v2 && !HIER(CGROUP_SLOT_DEVICES))
                FAIL(-EOPNOTSUPP, "linux.resources.devices: this host has no devices cgroup "
                                  "controller");
        if (res->n_unified) {
                if (!v2)
                        FAIL(-EOPNOTSUPP, "linux.resources.unified: this host is not on cgroup v2 "
                                          "alone (unified needs the cgroup2 hierarchy with its "
                                          "controllers)");
                for (size_t i = 0; i < res->n_unified; i++)
                        if (!unified_key_ok(res->unified_keys[i]))
                                FAIL(-EINVAL,
                                     "linux.resources.unified[\"%.64s\"]: not a cgroup "
                                     "file cella-oci writes (a \"controller.knob\" "
                                     "name, no \"/\" or \"..\", not one of the "
                                     "cgroup.* files that move tasks)",
                                     res->unified_keys[i]);
        }
#undef HIER
        return 0;
}

/* cgroup_write_knob() and _u64() that first record knob in *last (the one that failed). */
static int wk(const char **last, const char *dir, const char *knob, const char *value)
{
        *last = knob;
        return cgroup_write_knob(dir, knob, value);
}

static int wku(const char **last, const char *dir, const char *knob, uint64_t v)
{
        *last = knob;
        return cgroup_write_knob_u64(dir, knob, v);
}

int cgroup_apply_resources(Cgroup *cg, const CgroupResources *res, const char **ret_knob)
{
        const char *dummy;
        const char **last = ret_knob ? ret_knob : &dummy;

        const CgroupManager *m = cg->manager;
        bool v2 = m->mode == CGROUP_MODE_V2;
        const char *dir;
        char buf[96];
        int r;

        if (!v2 && res->cpu_shares && (dir = cgroup_leaf(cg, CGROUP_SLOT_CPU)) &&
            (r = wku(last, dir, "cpu.shares", res->cpu_shares)) < 0)
                return r;
        if ((dir = cgroup_leaf(cg, CGROUP_SLOT_CPUSET))) {
                /* mems before cpus or not does not matter; both must be subsets of the
                 * parent's (-EINVAL from the kernel otherwise). */
                if (res->cpuset_cpus && (r = wk(last, dir, "cpuset.cpus", res->cpuset_cpus)) < 0)
                        return r;
                if (res->cpuset_mems && (r = wk(last, dir, "cpuset.mems", res->cpuset_mems)) < 0)
                        return r;
        }
        dir = cgroup_leaf(cg, CGROUP_SLOT_MEMORY);
        if (dir && res->memory_low &&
            (r = wku(last, dir, v2 ? "memory.low" : "memory.soft_limit_in_bytes",
                     res->memory_low)) < 0)
                return r;
        if (dir && !v2 && res->swappiness_set &&
            (r = wku(last, dir, "memory.swappiness", res->swappiness)) < 0)
                return r;
        if (dir && !v2 && res->oom_kill_disable &&
            (r = wk(last, dir, "memory.oom_control", "1")) < 0)
                return r;
        if (res->blkio_weight && (dir = cgroup_leaf(cg, CGROUP_SLOT_BLKIO))) {
                if (v2)
                        r = has_knob(dir, "io.bfq.weight")
                                    ? wku(last, dir, "io.bfq.weight", res->blkio_weight)
                                    : wku(last, dir, "io.weight",
                                          blkio_to_io_weight(res->blkio_weight));
                else
                        r = cgroup_write_knob_u64(
                                dir,
                                has_knob(dir, "blkio.weight") ? "blkio.weight" : "blkio.bfq.weight",
                                res->blkio_weight);
                if (r < 0)
                        return r;
        }
        dir = cgroup_leaf(cg, CGROUP_SLOT_HUGETLB);
        for (size_t i = 0; dir && i < res->n_hugetlb; i++) {
                snprintf(buf, sizeof buf, "hugetlb.%s.%s", res->hugetlb[i].page_size,
                         v2 ? "max" : "limit_in_bytes");
                r = wku(last, dir, buf, res->hugetlb[i].limit);
                if (r < 0)
                        return r;
        }
        if (!v2 && res->net_cls_classid_set && (dir = cgroup_leaf(cg, CGROUP_SLOT_NET_CLS)) &&
            (r = wku(last, dir, "net_cls.classid", res->net_cls_classid)) < 0)
                return r;
        dir = v2 ? NULL : cgroup_leaf(cg, CGROUP_SLOT_NET_PRIO);
        for (size_t i = 0; dir && i < res->n_ifpriority; i++) {
                snprintf(buf, sizeof buf, "%s %" PRIu32, res->ifpriority[i].ifname,
                         res->ifpriority[i].priority);
                r = wk(last, dir, "net_prio.ifpriomap", buf);
                if (r < 0)
                        return r;
        }
        if (!v2 && res->devices_set && (dir = cgroup_leaf(cg, CGROUP_SLOT_DEVICES))) {
                /* runc's v1 devices emulator: deny everything, then the rules in order
                 * (a later rule wins), then the runtime's defaults. */
                r = wk(last, dir, "devices.deny", "a");
                for (size_t i = 0; r >= 0 && i < res->n_devices; i++)
                        r = write_rule(last, dir, &res->devices[i]);
                for (size_t i = 0; r >= 0 && i < cgroup_n_default_device_rules; i++)
                        r = write_rule(last, dir, &cgroup_default_device_rules[i]);
                if (r < 0)
                        return r;
        }
        dir = v2 ? cgroup_leaf(cg, CGROUP_SLOT_UNIFIED) : NULL;
        for (size_t i = 0; dir && i < res->n_unified; i++) {
                if (!unified_key_ok(res->unified_keys[i]))
                        return -EINVAL;
                r = wk(last, dir, res->unified_keys[i], res->unified_values[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}
