/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/size.h"
#include "base/strv.h"

START_TEST(test_parse_size)
{
        static const struct {
                const char *s;
                int r;
                uint64_t v;
        } cases[] = {
                {"0", 0, 0},
                {"4096", 0, 4096},
                {"4096B", 0, 4096},
                {"1K", 0, 1024},
                {"64M", 0, 64ull << 20},
                {"64MiB", 0, 64ull << 20},
                {"64m", 0, 64ull << 20},
                {"2G", 0, 2ull << 30},
                {"1T", 0, 1ull << 40},
                {"18446744073709551615", 0, UINT64_MAX},
                {"18446744073709551616", -ERANGE, 0},
                {"16777216T", -ERANGE, 0},
                {"", -EINVAL, 0},
                {"-1", -EINVAL, 0},
                {"1.5G", -EINVAL, 0},
                {" 1G", -EINVAL, 0},
                {"1 G", -EINVAL, 0},
                {"1X", -EINVAL, 0},
                {"1GB", 0, 1ull << 30},
                {"1GiBx", -EINVAL, 0},
                {"M", -EINVAL, 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t v = 12345;
                int r = parse_size(cases[i].s, &v);

                ck_assert_msg(r == cases[i].r, "parse_size(\"%s\") = %d, want %d", cases[i].s, r,
                              cases[i].r);
                if (r == 0)
                        ck_assert_msg(v == cases[i].v, "parse_size(\"%s\") value %llu", cases[i].s,
                                      (unsigned long long)v);
                else
                        ck_assert_msg(v == 12345, "parse_size wrote its output on failure");
        }
}
END_TEST

START_TEST(test_format_size)
{
        char buf[24];

        ck_assert_str_eq(format_size(0, buf, sizeof buf), "0");
        ck_assert_str_eq(format_size(100, buf, sizeof buf), "100");
        ck_assert_str_eq(format_size(1536 * 1024, buf, sizeof buf), "1536K");
        ck_assert_str_eq(format_size(64ull << 20, buf, sizeof buf), "64M");
        ck_assert_str_eq(format_size(3ull << 40, buf, sizeof buf), "3T");
}
END_TEST

START_TEST(test_strv)
{
        _cleanup_strv_free_ char **l = NULL;

        ck_assert_uint_eq(strv_length(l), 0);
        ck_assert_int_eq(strv_extend(&l, "a"), 0);
        ck_assert_int_eq(strv_extendf(&l, "%s=%d", "b", 2), 0);
        ck_assert_uint_eq(strv_length(l), 2);
        ck_assert_str_eq(l[0], "a");
        ck_assert_str_eq(l[1], "b=2");
        ck_assert_ptr_null(l[2]);
}
END_TEST

START_TEST(test_read_file_bounded)
{
        char path[] = "/tmp/cella-test-XXXXXX";
        _cleanup_close_ int fd = mkstemp(path);
        _cleanup_free_ char *data = NULL;
        size_t size = 0;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, "hello world", 11), 0);
        ck_assert_int_eq(read_file_at(AT_FDCWD, path, 11, &data, &size), 0);
        ck_assert_uint_eq(size, 11);
        ck_assert_str_eq(data, "hello world");
        free(TAKE_PTR(data));
        /* One byte over the bound is refused, and nothing is returned. */
        ck_assert_int_eq(read_file_at(AT_FDCWD, path, 10, &data, &size), -EFBIG);
        ck_assert_ptr_null(data);
        ck_assert_int_eq(read_file_at(AT_FDCWD, "/nonexistent/x", 10, &data, &size), -ENOENT);
        unlink(path);
}
END_TEST

START_TEST(test_mkdir_p)
{
        char base[] = "/tmp/cella-test-XXXXXX";
        char path[256];

        ck_assert_ptr_nonnull(mkdtemp(base));
        snprintf(path, sizeof path, "%s/a/b/c", base);
        ck_assert_int_eq(mkdir_p(path, 0755), 0);
        ck_assert_int_eq(access(path, F_OK), 0);
        ck_assert_int_eq(mkdir_p(path, 0755), 0); /* exists: fine */
        snprintf(path, sizeof path, "rm -rf %s", base);
        ck_assert_int_eq(system(path), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("base");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_parse_size);
        tcase_add_test(tc, test_format_size);
        tcase_add_test(tc, test_strv);
        tcase_add_test(tc, test_read_file_bounded);
        tcase_add_test(tc, test_mkdir_p);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
