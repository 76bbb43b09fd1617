/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "base/strv.h"
#include "supervisor/bootorder.h"

#define MAX_APPS 64

/* Builds a manifest for id with the given dependencies ("" for none, "a b" for two). */
static Manifest *app(const char *id, const char *deps)
{
        char json[2048], list[1024] = "";
        ManifestError err = {};
        Manifest *m = NULL;
        char *copy = strdup(deps), *save = NULL;

        ck_assert_ptr_nonnull(copy);
        for (char *d = strtok_r(copy, " ", &save); d; d = strtok_r(NULL, " ", &save)) {
                size_t l = strlen(list);

                snprintf(list + l, sizeof list - l, "%s\"%s\"", l ? "," : "", d);
        }
        free(copy);
        snprintf(json, sizeof json,
                 "{\"id\":\"%s\",\"runtime\":\"native\",\"entry\":\"x\",\"depends\":[%s]}", id,
                 list);
        ck_assert_msg(manifest_parse(json, strlen(json), "test", &m, &err) == 0, "%s: %s", err.key,
                      err.message);
        return m;
}

static void free_all(Manifest **m, size_t n)
{
        for (size_t i = 0; i < n; i++)
                manifest_free(m[i]);
}

/* Index of the manifest named id. */
static size_t idx(Manifest **m, size_t n, const char *id)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(m[i]->id, id) == 0)
                        return i;
        ck_abort_msg("no %s", id);
        return 0;
}

START_TEST(test_waves)
{
        /* clock <- notes, clock <- weather, notes <- dash; lone is independent. */
        Manifest *m[] = {app("org.x.dash", "org.x.notes org.x.weather"),
                         app("org.x.notes", "org.x.clock"), app("org.x.clock", ""),
                         app("org.x.weather", "org.x.clock"), app("org.x.lone", "")};
        size_t n = ELEMENTSOF(m);
        BootOrder b = {};
        BootOrderError e;

        ck_assert_int_eq(boot_order_compute(m, n, &b, &e), 0);
        ck_assert_uint_eq(b.n_waves, 3);
        ck_assert_uint_eq(b.wave_of[idx(m, n, "org.x.clock")], 0);
        ck_assert_uint_eq(b.wave_of[idx(m, n, "org.x.lone")], 0);
        ck_assert_uint_eq(b.wave_of[idx(m, n, "org.x.notes")], 1);
        ck_assert_uint_eq(b.wave_of[idx(m, n, "org.x.weather")], 1);
        ck_assert_uint_eq(b.wave_of[idx(m, n, "org.x.dash")], 2);
        /* order lists every app once, wave by wave, and each after its deps. */
        for (size_t k = 0; k < n; k++) {
                size_t i = b.order[k];

                if (k > 0)
                        ck_assert_uint_ge(b.wave_of[i], b.wave_of[b.order[k - 1]]);
                STRV_FOREACH (d, m[i]->depends)
                        ck_assert_uint_lt(b.wave_of[idx(m, n, *d)], b.wave_of[i]);
        }
        boot_order_done(&b);
        free_all(m, n);
}
END_TEST

START_TEST(test_missing_dependency)
{
        Manifest *m[] = {app("org.x.a", ""), app("org.x.b", "org.x.a org.x.nope")};
        BootOrder b = {};
        BootOrderError e;

        ck_assert_int_eq(boot_order_compute(m, 2, &b, &e), -ENOENT);
        ck_assert_str_eq(e.app, "org.x.b");
        ck_assert_str_eq(e.other, "org.x.nope");
        ck_assert_ptr_null(b.order);
        free_all(m, 2);
}
END_TEST

START_TEST(test_cycle_is_spelled_out)
{
        /* a -> b -> c -> a, with d hanging off the cycle and e fine. */
        Manifest *m[] = {app("org.x.a", "org.x.b"), app("org.x.b", "org.x.c"),
                         app("org.x.c", "org.x.a"), app("org.x.d", "org.x.a"), app("org.x.e", "")};
        BootOrder b = {};
        BootOrderError e;

        ck_assert_int_eq(boot_order_compute(m, 5, &b, &e), -ELOOP);
        /* Whichever app the walk starts from, the loop printed is the real one. */
        ck_assert_msg(strstr(e.cycle, "org.x.a -> org.x.b -> org.x.c -> org.x.a") ||
                              strstr(e.cycle, "org.x.b -> org.x.c -> org.x.a -> org.x.b") ||
                              strstr(e.cycle, "org.x.c -> org.x.a -> org.x.b -> org.x.c"),
                      "cycle \"%s\"", e.cycle);
        ck_assert_msg(!strstr(e.cycle, "org.x.d") && !strstr(e.cycle, "org.x.e"), "cycle \"%s\"",
                      e.cycle);
        free_all(m, 5);
}
END_TEST

START_TEST(test_two_app_cycle)
{
        Manifest *m[] = {app("org.x.a", "org.x.b"), app("org.x.b", "org.x.a")};
        BootOrder b = {};
        BootOrderError e;

        ck_assert_int_eq(boot_order_compute(m, 2, &b, &e), -ELOOP);
        ck_assert_msg(strcmp(e.cycle, "org.x.a -> org.x.b -> org.x.a") == 0 ||
                              strcmp(e.cycle, "org.x.b -> org.x.a -> org.x.b") == 0,
                      "cycle \"%s\"", e.cycle);
        free_all(m, 2);
}
END_TEST

START_TEST(test_duplicate_id)
{
        Manifest *m[] = {app("org.x.a", ""), app("org.x.b", ""), app("org.x.a", "")};
        BootOrder b = {};
        BootOrderError e;

        ck_assert_int_eq(boot_order_compute(m, 3, &b, &e), -EEXIST);
        ck_assert_str_eq(e.app, "org.x.a");
        free_all(m, 3);
}
END_TEST

START_TEST(test_chain_and_empty)
{
        Manifest *m[MAX_APPS];
        BootOrder b = {};
        BootOrderError e;

        /* A chain of 64: 64 waves of one. */
        for (size_t i = 0; i < MAX_APPS; i++) {
                char id[32], dep[32] = "";

                snprintf(id, sizeof id, "org.chain.a%zu", i);
                if (i > 0)
                        snprintf(dep, sizeof dep, "org.chain.a%zu", i - 1);
                m[i] = app(id, dep);
        }
        ck_assert_int_eq(boot_order_compute(m, MAX_APPS, &b, &e), 0);
        ck_assert_uint_eq(b.n_waves, MAX_APPS);
        for (size_t k = 0; k < MAX_APPS; k++)
                ck_assert_uint_eq(b.order[k], k);
        boot_order_done(&b);
        free_all(m, MAX_APPS);

        ck_assert_int_eq(boot_order_compute(NULL, 0, &b, &e), 0);
        ck_assert_uint_eq(b.n_waves, 0);
        boot_order_done(&b);
        ck_assert_int_eq(boot_order_compute(m, BOOT_APPS_MAX + 1, &b, &e), -EINVAL);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("bootorder");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_waves);
        tcase_add_test(tc, test_missing_dependency);
        tcase_add_test(tc, test_cycle_is_spelled_out);
        tcase_add_test(tc, test_two_app_cycle);
        tcase_add_test(tc, test_duplicate_id);
        tcase_add_test(tc, test_chain_and_empty);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
