/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "policy/ratelimit.h"

#define SEC RATELIMIT_NS_PER_SEC
#define MS  (SEC / 1000)

START_TEST(test_burst_then_refused)
{
        RateLimit rl;
        uint64_t retry = 0;

        ck_assert_int_eq(ratelimit_init(&rl, 10, 5, 0), 0);
        for (int i = 0; i < 5; i++)
                ck_assert_int_eq(ratelimit_take(&rl, 0, NULL), 0);
        ck_assert_int_eq(ratelimit_take(&rl, 0, &retry), -EAGAIN);
        /* 10/s: the next token is 100 ms away. */
        ck_assert_uint_eq(retry, 100 * MS);
        ck_assert_uint_eq(rl.refused, 1);
        ck_assert_int_eq(ratelimit_take(&rl, 100 * MS - 1, NULL), -EAGAIN);
        ck_assert_int_eq(ratelimit_take(&rl, 100 * MS, NULL), 0);
        ck_assert_int_eq(ratelimit_take(&rl, 100 * MS, NULL), -EAGAIN);
}
END_TEST

START_TEST(test_steady_rate)
{
        RateLimit rl;
        unsigned allowed = 0;

        /* 1000/s with a burst of 10, asked 10000 times over 2 s: about 2000 + 10. */
        ck_assert_int_eq(ratelimit_init(&rl, 1000, 10, 0), 0);
        for (uint64_t t = 0; t < 2 * SEC; t += 200000 /* 0.2 ms */)
                allowed += ratelimit_take(&rl, t, NULL) == 0;
        ck_assert_uint_ge(allowed, 2000);
        ck_assert_uint_le(allowed, 2010);
}
END_TEST

START_TEST(test_slow_rate_accrues_exactly)
{
        RateLimit rl;

        /* 1 token/s: half a second gives nothing, a full second gives one. */
        ck_assert_int_eq(ratelimit_init(&rl, 1, 1, 0), 0);
        ck_assert_int_eq(ratelimit_take(&rl, 0, NULL), 0);
        ck_assert_int_eq(ratelimit_take(&rl, SEC / 2, NULL), -EAGAIN);
        ck_assert_int_eq(ratelimit_take(&rl, SEC, NULL), 0);
}
END_TEST

START_TEST(test_long_sleep_caps_at_burst_without_overflow)
{
        RateLimit rl;
        unsigned allowed = 0;

        ck_assert_int_eq(ratelimit_init(&rl, 1000000000ull, 3, 0), 0);
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(ratelimit_take(&rl, 0, NULL), 0);
        /* Years later, at the maximum rate: still only a full bucket. */
        for (int i = 0; i < 10; i++)
                allowed += ratelimit_take(&rl, UINT64_MAX - 1, NULL) == 0;
        ck_assert_uint_eq(allowed, 3);
}
END_TEST

START_TEST(test_time_going_backwards)
{
        RateLimit rl;

        ck_assert_int_eq(ratelimit_init(&rl, 10, 1, 5 * SEC), 0);
        ck_assert_int_eq(ratelimit_take(&rl, 5 * SEC, NULL), 0);
        /* An earlier time is no time: no refill, no underflow. */
        ck_assert_int_eq(ratelimit_take(&rl, 1 * SEC, NULL), -EAGAIN);
        ck_assert_int_eq(ratelimit_take(&rl, 5 * SEC + 100 * MS, NULL), 0);
}
END_TEST

START_TEST(test_bad_parameters)
{
        RateLimit rl;

        ck_assert_int_eq(ratelimit_init(&rl, 0, 1, 0), -EINVAL);
        ck_assert_int_eq(ratelimit_init(&rl, 1, 0, 0), -EINVAL);
        ck_assert_int_eq(ratelimit_init(&rl, 1000000001ull, 1, 0), -EINVAL);
        ck_assert_int_eq(ratelimit_init(&rl, 1, 1000000001ull, 0), -EINVAL);
        ck_assert_int_eq(ratelimit_init(&rl, 1000000000ull, 1000000000ull, 0), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("ratelimit");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_burst_then_refused);
        tcase_add_test(tc, test_steady_rate);
        tcase_add_test(tc, test_slow_rate_accrues_exactly);
        tcase_add_test(tc, test_long_sleep_caps_at_burst_without_overflow);
        tcase_add_test(tc, test_time_going_backwards);
        tcase_add_test(tc, test_bad_parameters);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
