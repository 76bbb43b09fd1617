/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CPU weights by app state (src/memory/cpu.c, docs/memory.md "CPU"): the table and
 * its sources' figures, the override API, the weight-to-nice conversion the packed
 * Lua host gets, and the weight written to and read back from fake v1 and v2
 * cgroup trees (cpu.shares, cpu.weight).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memory/cpu.h"
#include "sandbox/cgroup.h"

START_TEST(test_table)
{
        CpuWeights w;

        cpu_weights_default(&w);
        ck_assert(w.enabled);
        /* docs/memory.md's table: Android's nice by state on the v2 scale. */
        ck_assert_uint_eq(cpu_class_weight(&w, CPU_CLASS_FOREGROUND), 155);
        ck_assert_uint_eq(cpu_class_weight(&w, CPU_CLASS_VISIBLE), 125);
        ck_assert_uint_eq(cpu_class_weight(&w, CPU_CLASS_SERVICE), 100);
        ck_assert_uint_eq(cpu_class_weight(&w, CPU_CLASS_BACKGROUND), 11);
        ck_assert_uint_eq(cpu_class_weight(&w, CPU_CLASS_CACHED), 1);
        /* Ordered by importance, strictly. */
        for (int c = CPU_CLASS_FOREGROUND; c < CPU_CLASS_CACHED; c++)
                ck_assert_uint_gt(cpu_class_weight(&w, c), cpu_class_weight(&w, c + 1));
        /* Each weight is its nice's: the kernel's conversion both ways. */
        ck_assert_int_eq(cpu_weight_to_nice(155), -2);
        ck_assert_int_eq(cpu_weight_to_nice(125), -1);
        ck_assert_int_eq(cpu_weight_to_nice(100), 0);
        ck_assert_int_eq(cpu_weight_to_nice(11), 10);
        ck_assert_int_eq(cpu_weight_to_nice(1), 19);
        ck_assert_int_eq(cpu_weight_to_nice(0), 19);
        ck_assert_int_eq(cpu_weight_to_nice(10000), -20); /* CFS 102400: nearest 88761 */
}
END_TEST

START_TEST(test_names_and_overrides)
{
        CpuWeights w;

        for (int c = 0; c < _CPU_CLASS_MAX; c++)
                ck_assert_int_eq(cpu_class_from_string(cpu_class_to_string(c)), c);
        ck_assert_ptr_null(cpu_class_to_string(_CPU_CLASS_MAX));
        ck_assert_ptr_null(cpu_class_to_string((CpuClass)-1));
        ck_assert_int_eq(cpu_class_from_string("Foreground"), -EINVAL);
        ck_assert_int_eq(cpu_class_from_string("fore"), -EINVAL);
        ck_assert_int_eq(cpu_class_from_string(""), -EINVAL);
        ck_assert_int_eq(cpu_class_from_string(NULL), -EINVAL);

        cpu_weights_default(&w);
        ck_assert_int_eq(cpu_weights_set(&w, CPU_CLASS_BACKGROUND, 50), 0);
        ck_assert_uint_eq(cpu_class_weight(&w, CPU_CLASS_BACKGROUND), 50);
        ck_assert_int_eq(cpu_weights_set(&w, CPU_CLASS_BACKGROUND, 0), -EINVAL);
        ck_assert_int_eq(cpu_weights_set(&w, CPU_CLASS_BACKGROUND, 10001), -EINVAL);
        ck_assert_int_eq(cpu_weights_set(&w, _CPU_CLASS_MAX, 100), -EINVAL);
        ck_assert_int_eq(cpu_weights_set(NULL, CPU_CLASS_CACHED, 100), -EINVAL);
        ck_assert_uint_eq(cpu_class_weight(&w, CPU_CLASS_BACKGROUND), 50); /* unchanged */
        ck_assert_int_eq(cpu_weights_set(&w, CPU_CLASS_FOREGROUND, 10000), 0);
        ck_assert_uint_eq(cpu_class_weight(&w, CPU_CLASS_FOREGROUND), 10000);

        /* Disabled, or none: every class the default, and no priority change. */
        w.enabled = false;
        for (int c = 0; c < _CPU_CLASS_MAX; c++) {
                ck_assert_uint_eq(cpu_class_weight(&w, c), CPU_WEIGHT_DEFAULT);
                ck_assert_uint_eq(cpu_class_weight(NULL, c), CPU_WEIGHT_DEFAULT);
                ck_assert_int_eq(cpu_class_priority(&w, c, 3), 3);
                ck_assert_int_eq(cpu_class_priority(NULL, c, -4), -4);
        }
        ck_assert_uint_eq(cpu_class_weight(NULL, _CPU_CLASS_MAX), CPU_WEIGHT_DEFAULT);
}
END_TEST

START_TEST(test_priority)
{
        CpuWeights w;

        cpu_weights_default(&w);
        /* The manifest's priority plus the class's nice, clamped. */
        ck_assert_int_eq(cpu_class_priority(&w, CPU_CLASS_FOREGROUND, 0), -2);
        ck_assert_int_eq(cpu_class_priority(&w, CPU_CLASS_VISIBLE, 0), -1);
        ck_assert_int_eq(cpu_class_priority(&w, CPU_CLASS_SERVICE, 5), 5);
        ck_assert_int_eq(cpu_class_priority(&w, CPU_CLASS_BACKGROUND, 0), 10);
        ck_assert_int_eq(cpu_class_priority(&w, CPU_CLASS_BACKGROUND, 15), 19);
        ck_assert_int_eq(cpu_class_priority(&w, CPU_CLASS_CACHED, -20), -1);
        ck_assert_int_eq(cpu_class_priority(&w, CPU_CLASS_FOREGROUND, -20), -20);
        /* A foreground app always ranks above a background one of the same base. */
        for (int base = -20; base <= 19; base++)
                ck_assert_int_le(cpu_class_priority(&w, CPU_CLASS_FOREGROUND, base),
                                 cpu_class_priority(&w, CPU_CLASS_BACKGROUND, base));
}
END_TEST

static char *tmp_tree(void)
{
        char *d = strdup("/tmp/cella-cputest-XXXXXX");

        ck_assert_ptr_nonnull(mkdtemp(d));
        return d;
}

static void touch(const char *dir, const char *name, const char *content)
{
        char p[8192];
        FILE *f;
        int n = snprintf(p, sizeof p, "%s/%s", dir, name);

        ck_assert(n > 0 && (size_t)n < sizeof p);
        f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs(content, f);
        fclose(f);
}

static void rm_tree(const char *d)
{
        char cmd[4200];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
        ck_assert_int_eq(system(cmd), 0);
}

/* Writes every weight of the range to a leaf of a fake tree of mode and reads it back:
 * cpu.shares on v1 (as systemd converts), cpu.weight on v2. */
static void roundtrip(CgroupMode mode)
{
        char *fs = tmp_tree(), p[4096];
        CgroupManager *m = NULL;
        Cgroup *cg = NULL;
        const char *knob_dir, *knob;
        uint32_t got = 0;

        if (mode == CGROUP_MODE_V1) {
                snprintf(p, sizeof p, "%s/cpu", fs);
                ck_assert_int_eq(mkdir(p, 0755), 0);
                touch(p, "cgroup.procs", "");
                snprintf(p, sizeof p, "%s/memory", fs);
                ck_assert_int_eq(mkdir(p, 0755), 0);
                touch(p, "cgroup.procs", "");
        } else {
                touch(fs, "cgroup.controllers", "cpu memory pids\n");
                touch(fs, "cgroup.subtree_control", "");
                touch(fs, "cgroup.procs", "");
                snprintf(p, sizeof p, "%s/cella", fs);
                ck_assert_int_eq(mkdir(p, 0755), 0);
                touch(p, "cgroup.controllers", "cpu memory pids\n");
                touch(p, "cgroup.subtree_control", "");
        }
        ck_assert_int_eq(cgroup_manager_new(fs, mode, NULL, &m), 0);
        ck_assert_int_eq(cgroup_new(m, "app", &cg), 0);
        /* No knob yet: nothing to read. */
        ck_assert_int_eq(cpu_weight_read(cg, &got), -ENOENT);
        ck_assert_int_eq(cpu_weight_apply(cg, 100), -ENOENT);
        /* The kernel makes the knob with the leaf; a plain directory does not. */
        knob_dir = cgroup_path(cg, mode == CGROUP_MODE_V1 ? "cpu" : "");
        knob = mode == CGROUP_MODE_V1 ? "cpu.shares" : "cpu.weight";
        touch(knob_dir, knob, mode == CGROUP_MODE_V1 ? "1024\n" : "100\n");
        ck_assert_int_eq(cpu_weight_read(cg, &got), 0);
        ck_assert_uint_eq(got, 100);
        for (uint32_t w = 1; w <= 10000; w += (w < 200 ? 1 : 97)) {
                /* A fake knob is a plain file: emptied before each write, as the
                 * kernel's replaces its value. */
                touch(knob_dir, knob, "");
                ck_assert_int_eq(cpu_weight_apply(cg, w), 0);
                ck_assert_int_eq(cpu_weight_read(cg, &got), 0);
                ck_assert_uint_eq(got, w);
        }
        touch(knob_dir, knob, "");
        ck_assert_int_eq(cpu_weight_apply(cg, 10000), 0);
        ck_assert_int_eq(cpu_weight_read(cg, &got), 0);
        ck_assert_uint_eq(got, 10000);
        if (mode == CGROUP_MODE_V1) {
                char *v = NULL;

                touch(knob_dir, knob, "");
                ck_assert_int_eq(cpu_weight_apply(cg, 155), 0);
                ck_assert_int_eq(cgroup_read_knob(cgroup_path(cg, "cpu"), "cpu.shares", &v), 0);
                ck_assert_str_eq(v, "1587"); /* 155 * 1024 / 100 */
                free(v);
        }
        ck_assert_int_eq(cpu_weight_apply(cg, 0), -EINVAL);
        ck_assert_int_eq(cpu_weight_apply(cg, 10001), -EINVAL);
        ck_assert_int_eq(cpu_weight_apply(NULL, 100), -EINVAL);
        ck_assert_int_eq(cpu_weight_read(NULL, &got), -EINVAL);
        cg = cgroup_destroy(cg);
        m = cgroup_manager_free(m);
        rm_tree(fs);
        free(fs);
}

START_TEST(test_apply_v1_fake)
{
        roundtrip(CGROUP_MODE_V1);
}
END_TEST

START_TEST(test_apply_v2_fake)
{
        roundtrip(CGROUP_MODE_V2);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("memory-cpu");
        TCase *tc = tcase_create("cpu");

        tcase_add_test(tc, test_table);
        tcase_add_test(tc, test_names_and_overrides);
        tcase_add_test(tc, test_priority);
        tcase_add_test(tc, test_apply_v1_fake);
        tcase_add_test(tc, test_apply_v2_fake);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
