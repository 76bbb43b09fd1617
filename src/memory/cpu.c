/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* CPU weights by app state (cpu.h; docs/memory.md "CPU"). */
#include <errno.h>
#include <string.h>

#include "memory/cpu.h"
#include "sandbox/cgroup.h"

/* Linux's sched_prio_to_weight (kernel/sched/core.c): the CFS weight of nice
 * -20..19, 1024 at 0, each step about 1.25x. */
static const uint32_t prio_to_weight[40] = {
        88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916,
        9548,  7620,  6100,  4904,  3906,  3121,  2501,  1991,  1586,  1277,
        1024,  820,   655,   526,   423,   335,   272,   215,   172,   137,
        110,   87,    70,    56,    45,    36,    29,    23,    18,    15,
};

static const char *const class_names[_CPU_CLASS_MAX] = {
        [CPU_CLASS_FOREGROUND] = "foreground", [CPU_CLASS_VISIBLE] = "visible",
        [CPU_CLASS_SERVICE] = "service",       [CPU_CLASS_BACKGROUND] = "background",
        [CPU_CLASS_CACHED] = "cached",
};

/* The default table (cpu.h): Android's nice by state, on the cgroup v2 scale. */
static const uint32_t default_weights[_CPU_CLASS_MAX] = {
        [CPU_CLASS_FOREGROUND] = 155, /* nice -2: THREAD_PRIORITY_FOREGROUND */
        [CPU_CLASS_VISIBLE] = 125,    /* nice -1: one step below the foreground */
        [CPU_CLASS_SERVICE] = 100,    /* nice 0: THREAD_PRIORITY_DEFAULT, CPUWeight= 100 */
        [CPU_CLASS_BACKGROUND] = 11,  /* nice 10: THREAD_PRIORITY_BACKGROUND */
        [CPU_CLASS_CACHED] = 1,       /* nice 19: THREAD_PRIORITY_LOWEST */
};

const char *cpu_class_to_string(CpuClass c)
{
        if ((unsigned)c >= _CPU_CLASS_MAX)
                return NULL;
        return class_names[c];
}

int cpu_class_from_string(const char *word)
{
        if (!word)
                return -EINVAL;
        for (size_t i = 0; i < _CPU_CLASS_MAX; i++)
                if (strcmp(word, class_names[i]) == 0)
                        return (int)i;
        return -EINVAL;
}

void cpu_weights_default(CpuWeights *ret)
{
        *ret = (CpuWeights){.enabled = true};
        memcpy(ret->weight, default_weights, sizeof ret->weight);
}

int cpu_weights_set(CpuWeights *w, CpuClass c, uint32_t weight)
{
        if (!w || (unsigned)c >= _CPU_CLASS_MAX || weight < CPU_WEIGHT_MIN ||
            weight > CPU_WEIGHT_MAX)
                return -EINVAL;
        w->weight[c] = weight;
        return 0;
}

uint32_t cpu_class_weight(const CpuWeights *w, CpuClass c)
{
        if (!w || !w->enabled || (unsigned)c >= _CPU_CLASS_MAX || w->weight[c] < CPU_WEIGHT_MIN ||
            w->weight[c] > CPU_WEIGHT_MAX)
                return CPU_WEIGHT_DEFAULT;
        return w->weight[c];
}

int cpu_weight_to_nice(uint32_t w)
{
        uint64_t cfs, best_d = UINT64_MAX;
        int best = 0;

        if (w < CPU_WEIGHT_MIN)
                w = CPU_WEIGHT_MIN;
        if (w > CPU_WEIGHT_MAX)
                w = CPU_WEIGHT_MAX;
        cfs = (uint64_t)w * 1024 / CPU_WEIGHT_DEFAULT;
        for (int i = 0; i < 40; i++) {
                uint64_t d =
                        cfs > prio_to_weight[i] ? cfs - prio_to_weight[i] : prio_to_weight[i] - cfs;

                if (d < best_d) {
                        best_d = d;
                        best = i + CPU_NICE_MIN;
                }
        }
        return best;
}

int cpu_class_priority(const CpuWeights *w, CpuClass c, int base)
{
        int p = base;

        if (w && w->enabled)
                p += cpu_weight_to_nice(cpu_class_weight(w, c));
        return p < CPU_NICE_MIN ? CPU_NICE_MIN : p > CPU_NICE_MAX ? CPU_NICE_MAX : p;
}

int cpu_weight_apply(Cgroup *cg, uint32_t weight)
{
        if (!cg || weight < CPU_WEIGHT_MIN || weight > CPU_WEIGHT_MAX)
                return -EINVAL;
        return cgroup_set_limits(cg, &(CgroupLimits){.cpu_weight = weight});
}

int cpu_weight_read(Cgroup *cg, uint32_t *ret)
{
        const char *dir;
        uint64_t v;
        int r;

        if (!cg || !ret)
                return -EINVAL;
        /* v1 and hybrid: the cpu controller's own hierarchy has cpu.shares. */
        dir = cgroup_path(cg, "cpu");
        r = cgroup_read_knob_u64(dir, "cpu.shares", &v);
        if (r >= 0) {
                v = (v * CPU_WEIGHT_DEFAULT + 512) / 1024;
                *ret = (uint32_t)(v < 1 ? 1 : v > CPU_WEIGHT_MAX ? CPU_WEIGHT_MAX : v);
                return 0;
        }
        if (r != -ENOENT)
                return r;
        /* v2: cpu.weight in the unified leaf, where the cpu controller is enabled. */
        r = cgroup_read_knob_u64(dir ?: cgroup_path(cg, ""), "cpu.weight", &v);
        if (r == -ENOENT && dir)
                r = cgroup_read_knob_u64(cgroup_path(cg, ""), "cpu.weight", &v);
        if (r < 0)
                return r;
        if (v < CPU_WEIGHT_MIN || v > CPU_WEIGHT_MAX)
                return -ERANGE;
        *ret = (uint32_t)v;
        return 0;
}
