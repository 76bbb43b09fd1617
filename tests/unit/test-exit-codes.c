/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one error detail of the kernel (src/supervisor/error.h) and the exit codes
 * the CLI makes of it (src/cli/exit-codes.h), against docs/cli.md's table.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "cli/exit-codes.h"
#include "supervisor/error.h"

#ifndef CELLA_SOURCE_ROOT
#error "CELLA_SOURCE_ROOT must name the source tree (tests/unit/meson.build)"
#endif

typedef struct Case {
        SupervisorStep step;
        SandboxStep sandbox_step;
        int error;
        int code;         /* docs/cli.md "Exit status" */
        const char *name; /* the "step" of a failed record */
} Case;

/* Every step, and the number docs/cli.md gives it. */
static const Case cases[] = {
        {SUPERVISOR_STEP_NONE, 0, 0, 0, "internal"},
        {SUPERVISOR_STEP_USAGE, 0, EINVAL, 240, "usage"},
        {SUPERVISOR_STEP_MANIFEST, 0, ENOENT, 241, "manifest"},
        {SUPERVISOR_STEP_STATE, 0, ENOSPC, 242, "state"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_PREPARE, EINVAL, 243, "prepare"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_CGROUP, EACCES, 244, "cgroup"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_CLONE, ENOSPC, 245, "clone"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_NAMESPACE, EPERM, 246, "namespace"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_MOUNT, ENOENT, 247, "mount"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_PIVOT, EINVAL, 248, "pivot_root"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_USERNS, EPERM, 249, "userns"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_CAPS, EPERM, 250, "capabilities"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_RLIMIT, EPERM, 251, "rlimit"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_SECCOMP, EINVAL, 252, "seccomp"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_EXEC, ENOENT, 127, "exec"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_EXEC, EACCES, 126, "exec"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_EXEC, ENOEXEC, 126, "exec"},
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_INIT, EPIPE, 253, "init"},
        {SUPERVISOR_STEP_INTERNAL, 0, ENOMEM, 254, "internal"},
        {SUPERVISOR_STEP_DEPENDS, 0, ESRCH, 255, "depends"},
        /* A step the CLI does not know is an internal failure, never 0. */
        {SUPERVISOR_STEP_SANDBOX, SANDBOX_STEP_NONE, EIO, 254, "none"},
        {SUPERVISOR_STEP_SANDBOX, _SANDBOX_STEP_MAX, EIO, 254, "unknown"},
};

START_TEST(test_each_step_has_its_code)
{
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const Case *c = &cases[i];
                SupervisorError e = {
                        .step = c->step, .sandbox_step = c->sandbox_step, .error = c->error};

                ck_assert_msg(cella_exit_code(&e) == c->code, "case %zu: %d, expected %d", i,
                              cella_exit_code(&e), c->code);
                ck_assert_msg(c->step == SUPERVISOR_STEP_NONE ||
                                      strcmp(supervisor_error_step(&e), c->name) == 0,
                              "case %zu: step \"%s\", expected \"%s\"", i,
                              supervisor_error_step(&e), c->name);
        }
        /* An app killed by signal 9 ends with 137, the shell's number. */
        ck_assert_int_eq(CELLA_EXIT_SIGNAL_BASE + 9, 137);
}
END_TEST

/* Each of cella's own codes (240-255) has its row in docs/cli.md, and each row of
 * that range is a code some step is given. */
START_TEST(test_codes_match_the_docs)
{
        _cleanup_free_ char *doc = NULL;
        bool made[256] = {};
        size_t size;
        int r;

        r = read_file_at(AT_FDCWD, CELLA_SOURCE_ROOT "/docs/cli.md", 1 << 20, &doc, &size);
        ck_assert_msg(r == 0, "read docs/cli.md: %s", strerror(-r));
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                made[cases[i].code] = true;
        for (int code = 240; code <= 255; code++) {
                char row[16];
                bool listed;

                snprintf(row, sizeof row, "\n| %d |", code);
                listed = strstr(doc, row) != NULL;
                ck_assert_msg(listed == made[code], "code %d: %s in docs/cli.md, %s by a step",
                              code, listed ? "listed" : "not listed",
                              made[code] ? "made" : "not made");
        }
}
END_TEST

START_TEST(test_error_detail)
{
        SupervisorError e = {};
        SandboxError se = {.step = SANDBOX_STEP_MOUNT, .error = ENOENT, .detail = "bind /usr"};
        char longer[2 * SANDBOX_DETAIL_MAX];

        /* A negative or a positive errno: the function's return is negative. */
        ck_assert_int_eq(supervisor_error(&e, SUPERVISOR_STEP_STATE, -ENOSPC, "apps/x"), -ENOSPC);
        ck_assert_int_eq(e.step, SUPERVISOR_STEP_STATE);
        ck_assert_int_eq(e.error, ENOSPC);
        ck_assert_str_eq(e.detail, "apps/x");
        ck_assert_int_eq(supervisor_error(&e, SUPERVISOR_STEP_MANIFEST, EINVAL, NULL), -EINVAL);
        ck_assert_str_eq(e.detail, "");
        /* No errno is still a failure: -EIO, never 0. */
        ck_assert_int_eq(supervisor_error(&e, SUPERVISOR_STEP_INTERNAL, 0, NULL), -EIO);
        ck_assert_int_eq(e.error, 0);
        /* Without a detail to fill, only the return. */
        ck_assert_int_eq(supervisor_error(NULL, SUPERVISOR_STEP_INTERNAL, -ENOMEM, "x"), -ENOMEM);
        /* A long detail is cut, not overrun. */
        memset(longer, 'a', sizeof longer - 1);
        longer[sizeof longer - 1] = 0;
        (void)supervisor_error(&e, SUPERVISOR_STEP_STATE, EIO, longer);
        ck_assert_uint_eq(strlen(e.detail), SANDBOX_DETAIL_MAX - 1);
        /* A spawn's error keeps its step. */
        ck_assert_int_eq(supervisor_error_sandbox(&e, &se), -ENOENT);
        ck_assert_int_eq(e.step, SUPERVISOR_STEP_SANDBOX);
        ck_assert_int_eq(e.sandbox_step, SANDBOX_STEP_MOUNT);
        ck_assert_str_eq(e.detail, "bind /usr");
        ck_assert_int_eq(cella_exit_code(&e), CELLA_EXIT_MOUNT);
        ck_assert_int_eq(supervisor_error_at(&e, SANDBOX_STEP_CGROUP, EACCES, "/sys/fs/cgroup"),
                         -EACCES);
        ck_assert_int_eq(cella_exit_code(&e), CELLA_EXIT_CGROUP);
}
END_TEST

/* The library's plain fact about an exec, told in cella's terms (error.h). */
START_TEST(test_exec_advice)
{
        SandboxError se = {.step = SANDBOX_STEP_EXEC,
                           .error = ENOENT,
                           .detail = "/app/nope does not exist",
                           .exec_cause = SANDBOX_EXEC_MISSING},
                     out;
        char longer[SANDBOX_DETAIL_MAX];

        supervisor_exec_advise(&se, "the entry", &out);
        ck_assert_str_eq(out.detail, "the entry /app/nope does not exist: set the manifest's "
                                     "\"entry\" to a file of the app's folder");
        ck_assert_int_eq(out.step, SANDBOX_STEP_EXEC);
        ck_assert_int_eq(out.error, ENOENT);
        ck_assert_int_eq(out.exec_cause, SANDBOX_EXEC_MISSING);
        /* Every cause the library tells has its words: no "(null)", no bare fact. */
        for (int c = SANDBOX_EXEC_MISSING; c < _SANDBOX_EXEC_CAUSE_MAX; c++) {
                se.exec_cause = (SandboxExecCause)c;
                supervisor_exec_advise(&se, "the entry", &out);
                ck_assert_ptr_null(strstr(out.detail, "(null)"));
                ck_assert_ptr_nonnull(strstr(out.detail, "the entry /app/nope"));
                if (c != SANDBOX_EXEC_SHEBANG_EMPTY && c != SANDBOX_EXEC_OTHER)
                        ck_assert_uint_gt(strlen(out.detail),
                                          strlen("the entry /app/nope does not exist"));
        }
        se.exec_cause = SANDBOX_EXEC_OTHER;
        snprintf(se.detail, sizeof se.detail, "/app/x: Input/output error");
        supervisor_exec_advise(&se, "the entry", &out);
        ck_assert_str_eq(out.detail, "cannot execute the entry /app/x: Input/output error");
        /* Not told apart, or not the exec step: as it is. */
        se.exec_cause = SANDBOX_EXEC_CAUSE_NONE;
        snprintf(se.detail, sizeof se.detail, "execute /app/x");
        supervisor_exec_advise(&se, "the entry", &out);
        ck_assert_str_eq(out.detail, "execute /app/x");
        se = (SandboxError){.step = SANDBOX_STEP_MOUNT,
                            .detail = "bind /usr",
                            .exec_cause = SANDBOX_EXEC_MISSING};
        supervisor_exec_advise(&se, "the entry", &out);
        ck_assert_str_eq(out.detail, "bind /usr");
        /* A fact as long as the detail: cut, never overrun. */
        memset(longer, 'a', sizeof longer - 1);
        longer[sizeof longer - 1] = 0;
        se = (SandboxError){.step = SANDBOX_STEP_EXEC, .exec_cause = SANDBOX_EXEC_LOADER};
        memcpy(se.detail, longer, sizeof se.detail);
        supervisor_exec_advise(&se, "the entry", &out);
        ck_assert_uint_eq(strlen(out.detail), SANDBOX_DETAIL_MAX - 1);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("exit-codes");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_each_step_has_its_code);
        tcase_add_test(tc, test_codes_match_the_docs);
        tcase_add_test(tc, test_error_detail);
        tcase_add_test(tc, test_exec_advice);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
