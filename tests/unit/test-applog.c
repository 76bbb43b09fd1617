/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "supervisor/applog.h"
#include "supervisor/restart.h"

static char dir[] = "/tmp/cella-applog-XXXXXX";

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        ck_assert_int_eq(system(cmd), 0);
        memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

static off_t size_of(const char *name)
{
        char p[256];
        struct stat st;

        snprintf(p, sizeof p, "%s/%s", dir, name);
        return stat(p, &st) < 0 ? -1 : st.st_size;
}

static char *content(const char *name)
{
        char p[256], *data = NULL;

        snprintf(p, sizeof p, "%s/%s", dir, name);
        ck_assert_int_eq(read_file_at(AT_FDCWD, p, 1 << 20, &data, NULL), 0);
        return data;
}

START_TEST(test_append_and_rotate)
{
        AppLog *l = NULL;
        char line[128];
        _cleanup_free_ char *cur = NULL, *one = NULL;

        ck_assert_int_eq(applog_open(dir, "org.x.app", 4096, 2, &l), 0);
        /* 100 lines of 100 bytes = 10000 bytes through 4096-byte files. */
        for (int i = 0; i < 100; i++) {
                snprintf(line, sizeof line, "%-99d\n", i); /* 100 bytes */
                ck_assert_int_eq(applog_write(l, line, strlen(line)), 0);
        }
        applog_close(l);
        /* Every file is within the cap; at most 2 rotated files are kept. */
        ck_assert_int_le(size_of("org.x.app.log"), 4096);
        ck_assert_int_le(size_of("org.x.app.log.1"), 4096);
        ck_assert_int_le(size_of("org.x.app.log.2"), 4096);
        ck_assert_int_eq(size_of("org.x.app.log.3"), -1);
        /* The newest lines are in the current file, the ones before in .1; a
         * line is never split across files. */
        cur = content("org.x.app.log");
        one = content("org.x.app.log.1");
        ck_assert_ptr_nonnull(strstr(cur, "99 "));
        ck_assert_int_eq(size_of("org.x.app.log") % 100, 0);
        ck_assert_int_eq(size_of("org.x.app.log.1") % 100, 0);
        ck_assert_int_eq(atoi(cur), atoi(one + strlen(one) - 100) + 1);
}
END_TEST

START_TEST(test_reopen_continues)
{
        AppLog *l = NULL;

        ck_assert_int_eq(applog_open(dir, "org.x.app", 4096, 1, &l), 0);
        ck_assert_int_eq(applog_write(l, "first\n", 6), 0);
        applog_close(l);
        ck_assert_int_eq(applog_open(dir, "org.x.app", 4096, 1, &l), 0);
        ck_assert_int_eq(applog_write(l, "second\n", 7), 0);
        applog_close(l);
        {
                _cleanup_free_ char *c = content("org.x.app.log");

                ck_assert_str_eq(c, "first\nsecond\n");
        }
}
END_TEST

START_TEST(test_oversize_write_is_cut_and_counted)
{
        AppLog *l = NULL;
        _cleanup_free_ char *big = malloc(10000);

        memset(big, 'x', 10000);
        ck_assert_int_eq(applog_open(dir, "org.x.app", 4096, 0, &l), 0);
        ck_assert_int_eq(applog_write(l, big, 10000), 0);
        ck_assert_uint_eq(applog_dropped(l), 10000 - 4096);
        ck_assert_int_eq(size_of("org.x.app.log"), 4096);
        /* keep 0: the next write starts the file over. */
        ck_assert_int_eq(applog_write(l, "y", 1), 0);
        ck_assert_int_eq(size_of("org.x.app.log"), 1);
        applog_close(l);
}
END_TEST

START_TEST(test_bad_arguments)
{
        AppLog *l = NULL;
        char link[256];

        ck_assert_int_eq(applog_open(dir, "../x", 4096, 1, &l), -EINVAL);
        ck_assert_int_eq(applog_open(dir, "org.x.app", 100, 1, &l), -EINVAL);
        ck_assert_int_eq(applog_open(dir, "org.x.app", 4096, APPLOG_KEEP_MAX + 1, &l), -EINVAL);
        ck_assert_int_eq(applog_open("/nonexistent-dir", "org.x.app", 4096, 1, &l), -ENOENT);
        /* A symlink planted in the log directory is not followed. */
        snprintf(link, sizeof link, "%s/org.x.evil.log", dir);
        ck_assert_int_eq(symlink("/etc/passwd", link), 0);
        ck_assert_int_eq(applog_open(dir, "org.x.evil", 4096, 1, &l), -ELOOP);
}
END_TEST

/* ---- restart policy ---- */

#define MS  (1000ull * 1000)
#define SEC (1000ull * MS)

/* Each file's time index: records at most every APPLOG_TIME_GRAIN_US, rotated with
 * its file, times rising with the offsets. */
START_TEST(test_times_beside_each_file)
{
        AppLog *l = NULL;
        _cleanup_free_ AppLogTime *t = NULL, *t1 = NULL;
        _cleanup_close_ int dfd = -EBADF;
        size_t n = 0, n1 = 0;
        char line[128];

        ck_assert_int_eq(applog_open(dir, "org.x.times", 4096, 2, &l), 0);
        for (int i = 0; i < 60; i++) {
                struct timespec ts = {.tv_nsec = 1000000}; /* 1 ms: a few grains in all */

                snprintf(line, sizeof line, "%-99d\n", i);
                ck_assert_int_eq(applog_write(l, line, 100), 0);
                nanosleep(&ts, NULL);
        }
        applog_close(l);
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(dfd, 0);
        ck_assert_int_eq(applog_times_load(dfd, "org.x.times.log", &t, &n), 0);
        ck_assert_int_eq(applog_times_load(dfd, "org.x.times.log.1", &t1, &n1), 0);
        /* The first write of each file is stamped (a new file starts a new index). */
        ck_assert_uint_ge(n, 1);
        ck_assert_uint_ge(n1, 1);
        ck_assert_uint_eq(t[0].offset, 0);
        ck_assert_uint_eq(t1[0].offset, 0);
        for (size_t i = 1; i < n; i++) {
                ck_assert_uint_gt(t[i].offset, t[i - 1].offset);
                ck_assert_int_ge(t[i].time_us - t[i - 1].time_us, APPLOG_TIME_GRAIN_US);
        }
        /* The rotated file's bytes came before the current file's. */
        ck_assert_int_le(t1[n1 - 1].time_us, t[0].time_us);
        ck_assert_int_eq(applog_time_at(t, n, 0), t[0].time_us);
        ck_assert_int_eq(applog_time_at(t, n, UINT64_MAX), t[n - 1].time_us);
        ck_assert_int_eq(applog_time_at(NULL, 0, 5), 0);
        /* No index: no times, no error. */
        free(t);
        t = NULL;
        ck_assert_int_eq(applog_times_load(dfd, "org.x.none.log", &t, &n), 0);
        ck_assert_ptr_null(t);
        ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_restart_wanted)
{
        SandboxExit ok = {.code = CLD_EXITED, .status = 0}, bad = {.code = CLD_EXITED, .status = 3},
                    sig = {.code = CLD_KILLED, .status = 9};

        ck_assert(!restart_wanted(MANIFEST_RESTART_NO, &bad));
        ck_assert(!restart_wanted(MANIFEST_RESTART_ON_FAILURE, &ok));
        ck_assert(restart_wanted(MANIFEST_RESTART_ON_FAILURE, &bad));
        ck_assert(restart_wanted(MANIFEST_RESTART_ON_FAILURE, &sig));
        ck_assert(restart_wanted(MANIFEST_RESTART_ALWAYS, &ok));
}
END_TEST

START_TEST(test_backoff_doubles_and_gives_up)
{
        SandboxExit bad = {.code = CLD_EXITED, .status = 1};
        RestartState st = {};
        uint64_t now = 1000 * SEC, delay = 0, expect = RESTART_DELAY_MIN;

        /* Crashing at once, every time: 100, 200, 400, 800, 1600 ms, then give up. */
        for (int i = 0; i < RESTART_BURST; i++) {
                ck_assert_int_eq(
                        restart_decide(&st, MANIFEST_RESTART_ON_FAILURE, &bad, now, now, &delay),
                        RESTART_LATER);
                ck_assert_uint_eq(delay, expect);
                expect *= 2;
                now += delay;
        }
        ck_assert_int_eq(restart_decide(&st, MANIFEST_RESTART_ON_FAILURE, &bad, now, now, &delay),
                         RESTART_GIVE_UP);
}
END_TEST

START_TEST(test_backoff_resets_after_a_stable_run_and_caps)
{
        SandboxExit bad = {.code = CLD_KILLED, .status = 9};
        RestartState st = {};
        uint64_t now = 0, delay = 0;

        /* Spaced far apart (no give-up), crashing at once: the delay caps at the max. */
        for (int i = 0; i < 20; i++) {
                now += RESTART_INTERVAL_NS;
                ck_assert_int_eq(
                        restart_decide(&st, MANIFEST_RESTART_ALWAYS, &bad, now, now, &delay),
                        RESTART_LATER);
                ck_assert_uint_le(delay, RESTART_DELAY_MAX);
        }
        ck_assert_uint_eq(delay, RESTART_DELAY_MAX);
        /* Then a run that lasted: back to the minimum. */
        now += RESTART_INTERVAL_NS;
        ck_assert_int_eq(restart_decide(&st, MANIFEST_RESTART_ALWAYS, &bad, now - RESTART_STABLE_NS,
                                        now, &delay),
                         RESTART_LATER);
        ck_assert_uint_eq(delay, RESTART_DELAY_MIN);
        ck_assert_int_eq(restart_decide(&st, MANIFEST_RESTART_NO, &bad, now, now, &delay),
                         RESTART_NO);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("applog");
        TCase *tc = tcase_create("applog"), *rs = tcase_create("restart");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_append_and_rotate);
        tcase_add_test(tc, test_reopen_continues);
        tcase_add_test(tc, test_oversize_write_is_cut_and_counted);
        tcase_add_test(tc, test_times_beside_each_file);
        tcase_add_test(tc, test_bad_arguments);
        tcase_add_test(rs, test_restart_wanted);
        tcase_add_test(rs, test_backoff_doubles_and_gives_up);
        tcase_add_test(rs, test_backoff_resets_after_a_stable_run_and_caps);
        suite_add_tcase(s, tc);
        suite_add_tcase(s, rs);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
