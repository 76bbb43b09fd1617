/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cellad's pure parts (src/daemon/journal.c): a status record's journal fields, and
 * how cellad tells that its stderr is the journal. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/macro.h"
#include "daemon/daemon.h"

#define MAX_FIELDS 32

/* The fields of record (JSON text) as one "\n"-joined string; *n their number. */
static char *fields_of(const char *json, size_t max, int *ret)
{
        json_t *o = json_loads(json, 0, NULL);
        char *f[MAX_FIELDS] = {}, *out = NULL;
        size_t len = 0;
        int n;

        ck_assert_ptr_nonnull(o);
        n = daemon_journal_fields(o, f, max);
        json_decref(o);
        *ret = n;
        if (n < 0)
                return NULL;
        for (int i = 0; i < n; i++) {
                size_t k = strlen(f[i]);

                out = realloc(out, len + k + 2);
                ck_assert_ptr_nonnull(out);
                memcpy(out + len, f[i], k);
                out[len + k] = '\n';
                len += k + 1;
                out[len] = 0;
                free(f[i]);
        }
        return out;
}

START_TEST(test_exit_record)
{
        int n;
        _cleanup_free_ char *s =
                fields_of("{\"event\":\"exited\",\"app\":\"org.example.hello\",\"uid\":1879114728,"
                          "\"how\":\"exited\",\"status\":3,\"exit_code\":3,\"oom_killed\":false,"
                          "\"oom_kills\":0,\"pid\":14430,\"duration_ms\":21.5}",
                          MAX_FIELDS, &n);

        ck_assert_int_eq(n, 10);
        ck_assert_str_eq(s, "MESSAGE=org.example.hello: exited pid=14430 uid=1879114728 how=exited "
                            "exit_code=3 status=3 oom_killed=false\n"
                            "PRIORITY=4\n"
                            "CELLA_EVENT=exited\n"
                            "CELLA_APP=org.example.hello\n"
                            "CELLA_PID=14430\n"
                            "CELLA_UID=1879114728\n"
                            "CELLA_HOW=exited\n"
                            "CELLA_EXIT_STATUS=3\n"
                            "CELLA_STATUS=3\n"
                            "CELLA_OOM_KILLED=false\n");
}
END_TEST

START_TEST(test_priorities)
{
        int n;
        _cleanup_free_ char *ok =
                fields_of("{\"event\":\"exited\",\"app\":\"a.b\",\"exit_code\":0}", MAX_FIELDS, &n);
        _cleanup_free_ char *oom = fields_of("{\"event\":\"exited\",\"app\":\"a.b\",\"exit_code\":"
                                             "137,\"oom_killed\":true}",
                                             MAX_FIELDS, &n);
        _cleanup_free_ char *failed = fields_of(
                "{\"event\":\"failed\",\"app\":\"a.b\",\"step\":\"exec\",\"error\":\"execute "
                "/app/nope\",\"errno\":2,\"exit_code\":127}",
                MAX_FIELDS, &n);
        _cleanup_free_ char *started = fields_of("{\"event\":\"started\",\"app\":\"a.b\",\"pid\":"
                                                 "7,\"restarts\":2}",
                                                 MAX_FIELDS, &n);

        ck_assert_ptr_nonnull(strstr(ok, "\nPRIORITY=6\n"));
        ck_assert_ptr_nonnull(strstr(oom, "\nPRIORITY=4\n"));
        ck_assert_ptr_nonnull(strstr(oom, "\nCELLA_OOM_KILLED=true\n"));
        ck_assert_ptr_nonnull(strstr(failed, "\nPRIORITY=3\n"));
        ck_assert_ptr_nonnull(strstr(failed, "\nCELLA_STEP=exec\nCELLA_ERROR=execute /app/nope\n"
                                             "CELLA_ERRNO=2\n"));
        ck_assert_ptr_nonnull(strstr(started, "\nCELLA_RESTARTS=2\n"));
}
END_TEST

/* A record without app (a failure before any app ran), an app's words with newlines
 * (one journal line each), a value longer than DAEMON_JOURNAL_FIELD_MAX (cut). */
START_TEST(test_odd_records)
{
        char big[DAEMON_JOURNAL_FIELD_MAX + 100 + 64];
        int n;
        _cleanup_free_ char *noapp = fields_of("{\"event\":\"failed\",\"step\":\"state\",\"error\":"
                                               "\"x\",\"exit_code\":243}",
                                               MAX_FIELDS, &n);
        _cleanup_free_ char *nl = fields_of("{\"event\":\"notification\",\"app\":\"a.b\","
                                            "\"title\":\"one\\ntwo\\rthree\"}",
                                            MAX_FIELDS, &n);
        _cleanup_free_ char *s = NULL;
        char *p;

        ck_assert_ptr_nonnull(strstr(noapp, "MESSAGE=failed exit_code=243 step=state error=x\n"));
        ck_assert_ptr_null(strstr(noapp, "CELLA_APP="));
        ck_assert_ptr_nonnull(strstr(nl, "\nCELLA_TITLE=one two three\n"));
        {
                /* ESC, BEL, DEL, a C1 CSI (U+009B): spaces; other UTF-8 kept. */
                _cleanup_free_ char *esc =
                        fields_of("{\"event\":\"failed\",\"app\":\"a.b\",\"error\":"
                                  "\"a\\u001b[2Jb\\u0007c\\u007fd\\u009be\\t\u00e9\"}",
                                  MAX_FIELDS, &n);

                ck_assert_ptr_nonnull(strstr(esc, "\nCELLA_ERROR=a [2Jb c d  e \u00e9\n"));
                ck_assert_ptr_nonnull(
                        strstr(esc, "MESSAGE=a.b: failed error=a [2Jb c d  e \u00e9\n"));
        }

        memset(big, 0, sizeof big);
        strcpy(big, "{\"event\":\"failed\",\"app\":\"a.b\",\"error\":\"");
        memset(big + strlen(big), 'x', DAEMON_JOURNAL_FIELD_MAX + 50);
        strcat(big, "\"}");
        s = fields_of(big, MAX_FIELDS, &n);
        p = strstr(s, "\nCELLA_ERROR=");
        ck_assert_ptr_nonnull(p);
        p += strlen("\nCELLA_ERROR=");
        ck_assert_uint_eq(strcspn(p, "\n"), DAEMON_JOURNAL_FIELD_MAX);
}
END_TEST

START_TEST(test_bad_records)
{
        json_t *o = json_pack("{s:i}", "event", 3);
        char *f[4];

        ck_assert_int_eq(daemon_journal_fields(o, f, 4), -EINVAL);
        json_decref(o);
        o = json_array();
        ck_assert_int_eq(daemon_journal_fields(o, f, 4), -EINVAL);
        json_decref(o);
        o = json_pack("{s:s}", "event", "started");
        ck_assert_int_eq(daemon_journal_fields(o, f, 2), -EINVAL);
        /* Room for MESSAGE and PRIORITY and one more: the rest is left out. */
        ck_assert_int_eq(daemon_journal_fields(o, f, 3), 3);
        ck_assert_str_eq(f[2], "CELLA_EVENT=started");
        for (int i = 0; i < 3; i++)
                free(f[i]);
        json_decref(o);
}
END_TEST

START_TEST(test_stderr_is_journal)
{
        struct stat st;
        char buf[64];

        ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
        unsetenv("JOURNAL_STREAM");
        ck_assert(!daemon_stderr_is_journal());
        snprintf(buf, sizeof buf, "%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
        setenv("JOURNAL_STREAM", buf, 1);
        ck_assert(daemon_stderr_is_journal());
        snprintf(buf, sizeof buf, "%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino + 1);
        setenv("JOURNAL_STREAM", buf, 1);
        ck_assert(!daemon_stderr_is_journal());
        snprintf(buf, sizeof buf, "%llu:%llux", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
        setenv("JOURNAL_STREAM", buf, 1);
        ck_assert(!daemon_stderr_is_journal());
        setenv("JOURNAL_STREAM", "", 1);
        ck_assert(!daemon_stderr_is_journal());
        unsetenv("JOURNAL_STREAM");
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon");
        TCase *tc = tcase_create("journal");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_exit_record);
        tcase_add_test(tc, test_priorities);
        tcase_add_test(tc, test_odd_records);
        tcase_add_test(tc, test_bad_records);
        tcase_add_test(tc, test_stderr_is_journal);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
