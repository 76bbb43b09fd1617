/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Skips for Check suites. A test that cannot run on this machine (not root, a
 * kernel feature or a program it lacks) says so with SKIP_TEST instead of passing:
 * it prints "SKIP: <test>: <why>" and counts itself in a page shared with Check's
 * forked test processes. skip_exit_status() then exits 77, meson's "skipped",
 * when every test that ran was skipped; so each test that may skip on a root
 * host sits in a test case of its own, which meson runs as a test of its own
 * (CK_RUN_CASE, the 'alone' and 'cases' keys of tests/unit/meson.build), and a
 * skip never hides the tests that did run. tests/tally.py counts the skips and
 * fails a run whose security suite was skipped on a machine that can run it.
 */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

static unsigned *tests_skipped;

#define SKIP_TEST(...)                                                                             \
        do {                                                                                       \
                printf("SKIP: %s: ", tcase_name());                                                \
                printf(__VA_ARGS__);                                                               \
                putchar('\n');                                                                     \
                fflush(stdout);                                                                    \
                __atomic_add_fetch(tests_skipped, 1, __ATOMIC_SEQ_CST);                            \
                return;                                                                            \
        } while (0)

/* Maps the shared skip counter; call first in main(). Returns 0 or -1 (mmap). */
static inline int skip_init(void)
{
        tests_skipped = mmap(NULL, sizeof *tests_skipped, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        return tests_skipped == MAP_FAILED ? -1 : 0;
}

/* Runs sr's suites and frees sr. Returns main()'s exit status: EXIT_FAILURE if a
 * test failed, 77 if every test that ran was skipped, else EXIT_SUCCESS. */
static inline int skip_run(SRunner *sr)
{
        int failed, run;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        run = srunner_ntests_run(sr);
        srunner_free(sr);
        if (failed)
                return EXIT_FAILURE;
        if (*tests_skipped > 0)
                printf("%u of %d tests skipped\n", *tests_skipped, run);
        return run > 0 && *tests_skipped == (unsigned)run ? 77 : EXIT_SUCCESS;
}
