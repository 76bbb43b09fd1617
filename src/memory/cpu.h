/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * CPU shares by app state (docs/memory.md "CPU"; issue 13): each running state of
 * an app falls in a CPU class, and each class has a cgroup CPU weight, written to
 * the app's leaf on every state change (cpu.weight on cgroup v2, cpu.shares on v1
 * and hybrid hosts: CgroupLimits.cpu_weight, converted as systemd does).
 *
 * The default table follows Android's thread priorities by process state
 * (android.os.Process: THREAD_PRIORITY_FOREGROUND -2, THREAD_PRIORITY_DEFAULT 0,
 * THREAD_PRIORITY_BACKGROUND 10, THREAD_PRIORITY_LOWEST 19), converted to the
 * cgroup v2 scale the way the kernel converts them (kernel/sched/core.c:
 * sched_prio_to_weight; cpu.weight 100 = nice 0 = CFS weight 1024, the default of
 * cgroup-v2.rst "Weights" and systemd's CPUWeight=):
 *
 *   class        nice  cpu.weight  cpu.shares (v1)
 *   foreground    -2      155         1587
 *   visible       -1      125         1280
 *   service        0      100         1024
 *   background    10       11          112
 *   cached        19        1           10
 *
 * So a foreground app outweighs a background one 14:1, near Android's old
 * bg_non_interactive cpu.shares 52 against 1024 (about 20:1), and a service runs at
 * the default like any systemd unit. A frozen app (user or kernel freeze) has no
 * CPU; it is given the cached weight, so that a thaw's first instants do not
 * compete, until the thaw's own state change writes its class's weight.
 *
 * The same classes drive the packed Lua host's scheduler (cella-lua): a member's
 * priority there is its manifest's "priority" plus its class's nice, clamped to
 * -20..19 (cpu_class_priority()).
 *
 * No dependency on the supervisor: the caller maps its app states to classes.
 */

#include <stdbool.h>
#include <stdint.h>

typedef struct Cgroup Cgroup;

typedef enum CpuClass {
        CPU_CLASS_FOREGROUND,
        CPU_CLASS_VISIBLE,
        CPU_CLASS_SERVICE,
        CPU_CLASS_BACKGROUND,
        CPU_CLASS_CACHED,
        _CPU_CLASS_MAX,
} CpuClass;

/* The table: a weight per class, and whether it is used at all. */
typedef struct CpuWeights {
        bool enabled;                    /* false: every class gets CPU_WEIGHT_DEFAULT */
        uint32_t weight[_CPU_CLASS_MAX]; /* cgroup v2 scale, CPU_WEIGHT_MIN..MAX */
} CpuWeights;

#define CPU_WEIGHT_MIN     1u /* cgroup-v2.rst "Weights": [1, 10000] */
#define CPU_WEIGHT_MAX     10000u
#define CPU_WEIGHT_DEFAULT 100u /* the kernel's and systemd's default */
#define CPU_NICE_MIN       (-20)
#define CPU_NICE_MAX       19

/* "foreground", "visible", "service", "background", "cached"; NULL out of range. */
const char *cpu_class_to_string(CpuClass c);
/* The class named word (exactly one of the words above), or -EINVAL. */
int cpu_class_from_string(const char *word);

/* Fills *ret with the default table above, enabled. */
void cpu_weights_default(CpuWeights *ret);

/*
 * Sets class c's weight in *w (cellad.conf's cpu.weight.<class>, docs/config.md).
 * Returns 0, or -EINVAL for a class out of range or a weight outside 1..10000
 * (w unchanged).
 */
int cpu_weights_set(CpuWeights *w, CpuClass c, uint32_t weight);

/*
 * The weight class c gets under w: its entry, or CPU_WEIGHT_DEFAULT when w is
 * disabled or NULL (then the table's defaults are not used either: no weights).
 * A class out of range gets CPU_WEIGHT_DEFAULT.
 */
uint32_t cpu_class_weight(const CpuWeights *w, CpuClass c);

/*
 * The nice value (-20..19) whose CFS weight is nearest to cgroup weight w's
 * (w * 1024 / 100 against the kernel's sched_prio_to_weight): 100 -> 0, 155 -> -2,
 * 11 -> 10, 1 -> 19. A w of 0 is taken as 1, above 10000 as 10000.
 */
int cpu_weight_to_nice(uint32_t w);

/*
 * The scheduling priority (nice, -20..19) of a packed Lua app of class c whose
 * manifest asks for base (-20..19): base + cpu_weight_to_nice(cpu_class_weight(w,
 * c)), clamped to -20..19. With w disabled or NULL: base.
 */
int cpu_class_priority(const CpuWeights *w, CpuClass c, int base);

/*
 * Writes weight (1..10000) to cg's leaf: cpu.weight on cgroup v2, cpu.shares
 * (weight * 1024 / 100) on v1 and hybrid hosts. Returns 0, -EINVAL (NULL cg, weight
 * out of range), or the -errno of the write (-ENOENT: no cpu controller there).
 */
int cpu_weight_apply(Cgroup *cg, uint32_t weight);

/*
 * Reads back the weight of cg's leaf on the v2 scale: cpu.weight on v2; on v1 and
 * hybrid cpu.shares converted back (shares * 100 / 1024, rounded to nearest, at
 * least 1), which gives the weight written by cpu_weight_apply() for every
 * weight it writes with a v1 share above the kernel's minimum of 2. Returns 0 and
 * *ret, -EINVAL, -ENOENT (no cpu controller), or -errno of the read.
 */
int cpu_weight_read(Cgroup *cg, uint32_t *ret);
