/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Grants tests: install-time grants by protection level, user grants and revokes,
 * the three-way decision (allowed / EACCES / EPERM) with its reasons, one-time
 * grants consumed exactly once (also by racing processes), gestures and their
 * window, signature rights, reinstalls that narrow, persistence across reopening,
 * the schema version, and the per-app bound. Each test uses its own state dir.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/strv.h"
#include "audit/audit.h"
#include "policy/decide.h"
#include "policy/grant-record.h"
#include "policy/grants.h"
#include "test-util.h"

#define APP "org.example.notes"
#define T0  ((int64_t)1700000000000) /* ms: any fixed wall-clock time */

static char top_dir[] = "/tmp/test-grants-XXXXXX";
static char state_dir[64];

static void setup(void)
{
        strcpy(top_dir, "/tmp/test-grants-XXXXXX");
        if (!mkdtemp(top_dir))
                abort();
        snprintf(state_dir, sizeof state_dir, "%s/state", top_dir);
}

static void teardown(void)
{
        rm_tree(top_dir);
}

static Grants *open_grants(void)
{
        Grants *g = NULL;
        int r = grants_open(state_dir, &g);

        ck_assert_msg(r == 0, "grants_open: %s", strerror(-r));
        return g;
}

/* A manifest for id with the given permissions (a JSON array's inside). */
static Manifest *manifest(const char *id, const char *permissions)
{
        char json[8192];
        ManifestError err;
        Manifest *m = NULL;
        int r;

        snprintf(json, sizeof json,
                 "{\"id\":\"%s\",\"runtime\":\"native\",\"entry\":\"x\",\"permissions\":[%s]}", id,
                 permissions);
        r = manifest_parse(json, strlen(json), "test", &m, &err);
        ck_assert_msg(r == 0, "manifest: %s: %s", err.key, err.message);
        return m;
}

static void install(Grants *g, const char *permissions, bool signed_ok, int64_t now)
{
        _cleanup_(manifest_freep) Manifest *m = manifest(APP, permissions);
        const char *bad = NULL, *why = NULL;
        int r = grants_install(g, m, signed_ok, now, &bad, &why);

        ck_assert_msg(r == 0, "grants_install: %s (%s: %s)", strerror(-r), bad, why);
}

/* grants_check, asserting the return and the reason; line is the caller's. */
static void check_at(Grants *g, const char *right, int64_t now, int want_r,
                     GrantsReason want_reason, int line)
{
        GrantsDecision d = {};
        int r = grants_check(g, APP, right, now, &d);

        ck_assert_msg(r == want_r, "line %d: check %s: %d, expected %d (%s)", line, right, r,
                      want_r, grants_reason_to_string(d.reason));
        ck_assert_msg(d.reason == want_reason, "line %d: check %s: reason %s, expected %s", line,
                      right, grants_reason_to_string(d.reason),
                      grants_reason_to_string(want_reason));
}
#define CHECK(g, right, now, want_r, want_reason)                                                  \
        check_at((g), (right), (now), (want_r), (want_reason), __LINE__)

static size_t count_grants(Grants *g)
{
        _cleanup_free_ Grant *l = NULL;
        size_t n = 0;

        ck_assert_int_eq(grants_list(g, APP, &l, &n), 0);
        return n;
}

static const Grant *find(const Grant *l, size_t n, const char *right)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(l[i].right, right) == 0)
                        return &l[i];
        return NULL;
}

START_TEST(test_install_levels)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        _cleanup_strv_free_ char **req = NULL;
        _cleanup_free_ Grant *l = NULL;
        bool is_signed = true;
        size_t n = 0;

        install(g,
                "\"storage\",\"timer\",\"bus.publish:" APP ".*\",\"camera\",\"location\","
                "\"system.admin\"",
                false, T0);
        ck_assert_int_eq(grants_requested(g, APP, &req, &is_signed), 0);
        ck_assert_uint_eq(strv_length(req), 6);
        ck_assert(!is_signed);
        ck_assert_int_eq(grants_list(g, APP, &l, &n), 0);
        ck_assert_uint_eq(n, 3); /* the normal ones */
        ck_assert_ptr_nonnull(find(l, n, "storage"));
        ck_assert_ptr_nonnull(find(l, n, "timer"));
        ck_assert_ptr_nonnull(find(l, n, "bus.publish:" APP ".*"));
        ck_assert_int_eq(find(l, n, "storage")->granted_by, GRANT_BY_INSTALL);
        ck_assert_int_eq(find(l, n, "storage")->granted_at_ms, T0);
        ck_assert(!find(l, n, "storage")->one_time);

        CHECK(g, "storage", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "bus.publish:" APP ".a", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "bus.publish:" APP ".*", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "bus.publish:" APP ".a.b", T0, -EPERM, GRANTS_NOT_REQUESTED);
        CHECK(g, "bus.publish:other", T0, -EPERM, GRANTS_NOT_REQUESTED);
        CHECK(g, "location", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "contacts", T0, -EPERM, GRANTS_NOT_REQUESTED);
        CHECK(g, "system.admin", T0, -EPERM, GRANTS_NOT_SIGNED);
        CHECK(g, "nosuch", T0, -EPERM, GRANTS_INVALID);
        CHECK(g, "storage:x", T0, -EPERM, GRANTS_INVALID);
        CHECK(g, "", T0, -EPERM, GRANTS_INVALID);
        {
                GrantsDecision d = {};

                ck_assert_int_eq(grants_check(g, APP, NULL, T0, &d), -EPERM);
                ck_assert_int_eq(d.reason, GRANTS_INVALID);
        }
}
END_TEST

START_TEST(test_decision_fields)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        GrantsDecision d;

        install(g, "\"net.connect:*.example.com:443\",\"storage\"", false, T0);
        ck_assert_int_eq(
                grants_grant(g, APP, "net.connect:*.example.com:443", false, GRANT_BY_USER, T0), 0);
        ck_assert_int_eq(grants_check(g, APP, "net.connect:api.example.com:443", T0, &d), 0);
        ck_assert_int_eq(d.reason, GRANTS_ALLOWED);
        /* The level of the right asked: one named host is normal (its pattern grant
         * was the dangerous one). */
        ck_assert_int_eq(d.level, CAPABILITY_NORMAL);
        ck_assert_str_eq(d.grant, "net.connect:*.example.com:443");
        ck_assert(!d.one_time_consumed);
        /* NULL decision is fine; errors leave it untouched. */
        ck_assert_int_eq(grants_check(g, APP, "storage", T0, NULL), 0);
        d.reason = 99;
        ck_assert_int_eq(grants_check(g, "bad id", "storage", T0, &d), -EINVAL);
        ck_assert_int_eq(d.reason, 99);
        ck_assert_int_eq(grants_check(g, "org.unknown.app", "storage", T0, &d), -EPERM);
        ck_assert_int_eq(d.reason, GRANTS_NOT_REQUESTED);
}
END_TEST

START_TEST(test_grant_revoke)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        _cleanup_strv_free_ char **gone = NULL;

        install(g, "\"camera\",\"location\",\"net.connect:*.example.com:443\"", false, T0);
        ck_assert_int_eq(grants_grant(g, APP, "location", false, GRANT_BY_USER, T0), 0);
        CHECK(g, "location", T0, 0, GRANTS_ALLOWED);
        /* Not requested: never grantable. */
        ck_assert_int_eq(grants_grant(g, APP, "contacts", false, GRANT_BY_USER, T0), -EPERM);
        /* Wider than requested: refused; narrower: fine. */
        ck_assert_int_eq(grants_grant(g, APP, "net.connect:**:443", false, GRANT_BY_USER, T0),
                         -EPERM);
        ck_assert_int_eq(
                grants_grant(g, APP, "net.connect:*.example.com:*", false, GRANT_BY_USER, T0),
                -EPERM);
        ck_assert_int_eq(
                grants_grant(g, APP, "net.connect:a.example.com:443", false, GRANT_BY_USER, T0), 0);
        CHECK(g, "net.connect:a.example.com:443", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "net.connect:b.example.com:443", T0, -EACCES, GRANTS_NOT_GRANTED);
        /* Bad input. */
        ck_assert_int_eq(grants_grant(g, APP, "nosuch", false, GRANT_BY_USER, T0), -ENOENT);
        ck_assert_int_eq(grants_grant(g, APP, "net.connect", false, GRANT_BY_USER, T0), -EINVAL);
        ck_assert_int_eq(grants_grant(g, "x", "location", false, GRANT_BY_USER, T0), -EINVAL);
        ck_assert_int_eq(
                grants_grant(g, "org.never.installed", "location", false, GRANT_BY_USER, T0),
                -ENOENT);

        /* Revoke: returns how many, and which. */
        ck_assert_int_eq(grants_revoke(g, APP, "location", &gone), 1);
        ck_assert_uint_eq(strv_length(gone), 1);
        ck_assert_str_eq(gone[0], "location");
        CHECK(g, "location", T0, -EACCES, GRANTS_NOT_GRANTED);
        ck_assert_int_eq(grants_revoke(g, APP, "location", NULL), 0);
        /* A narrower revoke does not touch a wider grant... */
        ck_assert_int_eq(
                grants_grant(g, APP, "net.connect:*.example.com:443", false, GRANT_BY_USER, T0), 0);
        ck_assert_int_eq(grants_revoke(g, APP, "net.connect:c.example.com:443", NULL), 0);
        /* ... a bare name takes every scope. */
        strv_free(gone);
        gone = NULL;
        ck_assert_int_eq(grants_revoke(g, APP, "net.connect", &gone), 2);
        ck_assert_uint_eq(strv_length(gone), 2);
        CHECK(g, "net.connect:a.example.com:443", T0, -EACCES, GRANTS_NOT_GRANTED);
        ck_assert_int_eq(grants_revoke(g, APP, "nosuch", NULL), -ENOENT);
        ck_assert_int_eq(grants_revoke(g, APP, "camera:x", NULL), -EINVAL);
        ck_assert_int_eq(grants_revoke(g, "bad", "camera", NULL), -EINVAL);
        strv_free(gone);
        gone = NULL;
        ck_assert_int_eq(grants_revoke(g, APP, "camera", &gone), 0);
        ck_assert_ptr_nonnull(gone);
        ck_assert_ptr_null(gone[0]);
}
END_TEST

START_TEST(test_persistence)
{
        Grants *g = open_grants();

        install(g, "\"location\",\"storage\"", false, T0);
        ck_assert_int_eq(grants_grant(g, APP, "location", false, GRANT_BY_USER, T0 + 5), 0);
        ck_assert_int_eq(grants_gesture_record(g, APP, T0 + 7), 0);
        g = grants_free(g);

        g = open_grants();
        CHECK(g, "location", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "storage", T0, 0, GRANTS_ALLOWED);
        {
                _cleanup_free_ Grant *l = NULL;
                size_t n = 0;
                int64_t at = 0;

                ck_assert_int_eq(grants_list(g, APP, &l, &n), 0);
                ck_assert_uint_eq(n, 2);
                ck_assert_int_eq(find(l, n, "location")->granted_at_ms, T0 + 5);
                ck_assert_int_eq(find(l, n, "location")->granted_by, GRANT_BY_USER);
                ck_assert_int_eq(grants_gesture_last(g, APP, &at), 0);
                ck_assert_int_eq(at, T0 + 7);
        }
        grants_free(g);

        /* The file is the owner's alone. */
        {
                char path[128];
                struct stat st;

                snprintf(path, sizeof path, "%s/" GRANTS_DB_FILE, state_dir);
                ck_assert_int_eq(stat(path, &st), 0);
                ck_assert_uint_eq(st.st_mode & 0777, 0600);
        }
}
END_TEST

START_TEST(test_one_time)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        GrantsDecision d;

        install(g, "\"location\",\"net.connect:**:443\"", false, T0);
        ck_assert_int_eq(grants_grant(g, APP, "location", true, GRANT_BY_USER, T0), 0);
        ck_assert_int_eq(grants_check(g, APP, "location", T0, &d), 0);
        ck_assert(d.one_time_consumed);
        ck_assert_str_eq(d.grant, "location");
        CHECK(g, "location", T0, -EACCES, GRANTS_NOT_GRANTED);
        ck_assert_uint_eq(count_grants(g), 0); /* both dangerous: nothing at install */

        /* A permanent grant is used before a one-time one, which stays. */
        ck_assert_int_eq(grants_grant(g, APP, "net.connect:a.b:443", true, GRANT_BY_USER, T0), 0);
        ck_assert_int_eq(grants_grant(g, APP, "net.connect:*.b:443", false, GRANT_BY_USER, T0), 0);
        ck_assert_int_eq(grants_check(g, APP, "net.connect:a.b:443", T0, &d), 0);
        ck_assert(!d.one_time_consumed);
        ck_assert_str_eq(d.grant, "net.connect:*.b:443");
        ck_assert_uint_eq(count_grants(g), 2);

        /* Granting for good what is held once makes it permanent; the reverse
         * does not make a permanent grant one-time. */
        ck_assert_int_eq(grants_grant(g, APP, "location", true, GRANT_BY_USER, T0), 0);
        ck_assert_int_eq(grants_grant(g, APP, "location", false, GRANT_BY_USER, T0 + 1), 0);
        ck_assert_int_eq(grants_grant(g, APP, "location", true, GRANT_BY_USER, T0 + 2), 0);
        CHECK(g, "location", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "location", T0, 0, GRANTS_ALLOWED);
        {
                _cleanup_free_ Grant *l = NULL;
                size_t n = 0;

                ck_assert_int_eq(grants_list(g, APP, &l, &n), 0);
                ck_assert(!find(l, n, "location")->one_time);
                ck_assert_int_eq(find(l, n, "location")->granted_at_ms, T0 + 1);
        }
}
END_TEST

/* N processes race for one one-time grant: exactly one wins. */
START_TEST(test_one_time_race)
{
        enum { N = 8 };
        Grants *g = open_grants();
        pid_t pids[N];
        int wins = 0;

        install(g, "\"location\"", false, T0);
        ck_assert_int_eq(grants_grant(g, APP, "location", true, GRANT_BY_USER, T0), 0);
        g = grants_free(g);
        for (int i = 0; i < N; i++) {
                pids[i] = fork();
                ck_assert_int_ge(pids[i], 0);
                if (pids[i] == 0) {
                        Grants *c = NULL;
                        int r;

                        if (grants_open(state_dir, &c) < 0)
                                _exit(3);
                        r = grants_check(c, APP, "location", T0, NULL);
                        grants_free(c);
                        _exit(r == 0 ? 0 : r == -EACCES ? 1 : 2);
                }
        }
        for (int i = 0; i < N; i++) {
                int status;

                ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
                ck_assert(WIFEXITED(status));
                ck_assert_int_le(WEXITSTATUS(status), 1);
                wins += WEXITSTATUS(status) == 0;
        }
        ck_assert_int_eq(wins, 1);
}
END_TEST

START_TEST(test_gesture)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        int64_t at;

        install(g, "\"camera\",\"microphone\",\"location\"", false, T0);
        ck_assert_int_eq(grants_gesture_last(g, APP, &at), -ENOENT);
        ck_assert_int_eq(grants_grant(g, APP, "camera", false, GRANT_BY_USER, T0), 0);
        ck_assert_int_eq(grants_grant(g, APP, "microphone", true, GRANT_BY_USER, T0), 0);
        ck_assert_int_eq(grants_grant(g, APP, "location", false, GRANT_BY_USER, T0), 0);
        CHECK(g, "camera", T0, -EACCES, GRANTS_NO_GESTURE);
        /* Not consumed when the gesture is missing. */
        CHECK(g, "microphone", T0, -EACCES, GRANTS_NO_GESTURE);
        CHECK(g, "location", T0, 0, GRANTS_ALLOWED); /* not gesture-gated */

        ck_assert_int_eq(grants_gesture_record(g, APP, T0 + 1000), 0);
        ck_assert_int_eq(grants_gesture_last(g, APP, &at), 0);
        ck_assert_int_eq(at, T0 + 1000);
        CHECK(g, "camera", T0 + 1000, 0, GRANTS_ALLOWED);
        CHECK(g, "camera", T0 + 1000 + GRANTS_GESTURE_WINDOW_MS, 0, GRANTS_ALLOWED);
        CHECK(g, "camera", T0 + 1001 + GRANTS_GESTURE_WINDOW_MS, -EACCES, GRANTS_NO_GESTURE);
        /* A gesture "in the future" (the clock went back) does not count. */
        CHECK(g, "camera", T0 + 999, -EACCES, GRANTS_NO_GESTURE);
        /* The one-time microphone grant is used now, once. */
        CHECK(g, "microphone", T0 + 2000, 0, GRANTS_ALLOWED);
        CHECK(g, "microphone", T0 + 2000, -EACCES, GRANTS_NOT_GRANTED);
        /* A gesture is per app. */
        ck_assert_int_eq(grants_gesture_record(g, "org.other.app", T0 + 50000), 0);
        CHECK(g, "camera", T0 + 50000, -EACCES, GRANTS_NO_GESTURE);
        /* The latest gesture wins. */
        ck_assert_int_eq(grants_gesture_record(g, APP, T0 + 60000), 0);
        CHECK(g, "camera", T0 + 60000, 0, GRANTS_ALLOWED);
        ck_assert_int_eq(grants_gesture_record(g, "x", T0), -EINVAL);
}
END_TEST

START_TEST(test_signature_rights)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        bool is_signed = false;

        install(g, "\"system.admin\",\"app.signal:org.example.*\",\"storage\"", false, T0);
        CHECK(g, "system.admin", T0, -EPERM, GRANTS_NOT_SIGNED);
        CHECK(g, "app.signal:org.example.x", T0, -EPERM, GRANTS_NOT_SIGNED);
        ck_assert_int_eq(grants_grant(g, APP, "system.admin", false, GRANT_BY_USER, T0), -EPERM);

        /* Signed by a trusted key: granted at install. */
        install(g, "\"system.admin\",\"app.signal:org.example.*\",\"storage\"", true, T0 + 1);
        ck_assert_int_eq(grants_requested(g, APP, NULL, &is_signed), 0);
        ck_assert(is_signed);
        CHECK(g, "system.admin", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "app.signal:org.example.x", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "app.signal:org.other.x", T0, -EPERM, GRANTS_NOT_REQUESTED);
        {
                _cleanup_free_ Grant *l = NULL;
                size_t n = 0;

                ck_assert_int_eq(grants_list(g, APP, &l, &n), 0);
                ck_assert_int_eq(find(l, n, "system.admin")->granted_by, GRANT_BY_SIGNATURE);
        }

        /* The same bundle, no longer signed (or by a key no longer trusted). */
        install(g, "\"system.admin\",\"app.signal:org.example.*\",\"storage\"", false, T0 + 2);
        CHECK(g, "system.admin", T0, -EPERM, GRANTS_NOT_SIGNED);
        ck_assert_uint_eq(count_grants(g), 1);
}
END_TEST

START_TEST(test_reinstall)
{
        _cleanup_(grants_freep) Grants *g = open_grants();

        install(g, "\"storage\",\"timer\",\"location\",\"net.connect:*.a.com:443\"", false, T0);
        ck_assert_int_eq(grants_grant(g, APP, "location", false, GRANT_BY_USER, T0), 0);
        ck_assert_int_eq(grants_grant(g, APP, "net.connect:x.a.com:443", false, GRANT_BY_USER, T0),
                         0);
        /* A revoked normal right stays revoked when the same manifest is installed again. */
        ck_assert_int_eq(grants_revoke(g, APP, "timer", NULL), 1);
        install(g, "\"storage\",\"timer\",\"location\",\"net.connect:*.a.com:443\"", false, T0 + 1);
        CHECK(g, "timer", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "location", T0, 0, GRANTS_ALLOWED);
        /* A user may grant it back. */
        ck_assert_int_eq(grants_grant(g, APP, "timer", false, GRANT_BY_USER, T0), 0);
        CHECK(g, "timer", T0, 0, GRANTS_ALLOWED);

        /* A narrower manifest drops what it no longer covers; a new normal right is
         * granted. */
        install(g, "\"storage\",\"notify\",\"net.connect:x.a.com:443\"", false, T0 + 2);
        CHECK(g, "location", T0, -EPERM, GRANTS_NOT_REQUESTED);
        CHECK(g, "timer", T0, -EPERM, GRANTS_NOT_REQUESTED);
        CHECK(g, "notify", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "net.connect:x.a.com:443", T0, 0, GRANTS_ALLOWED);
        ck_assert_uint_eq(count_grants(g), 3); /* storage, notify, net.connect:x.a.com:443 */

        /* Asking for location again does not bring the old user grant back. */
        install(g, "\"storage\",\"location\"", false, T0 + 3);
        CHECK(g, "location", T0, -EACCES, GRANTS_NOT_GRANTED);
}
END_TEST

/* Installing the same manifest again writes nothing: no transaction, no fsync, so a
 * restart pays nothing for it (the installed_at of the first install stays). A
 * changed set, or a change of signature state, is written. */
static int64_t installed_at(void)
{
        char path[128];
        sqlite3 *db;
        sqlite3_stmt *st;
        int64_t v = -1;

        snprintf(path, sizeof path, "%s/" GRANTS_DB_FILE, state_dir);
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT installed_at FROM apps WHERE id = ?1", -1,
                                            &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(st, 1, APP, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

START_TEST(test_reinstall_unchanged_writes_nothing)
{
        _cleanup_(grants_freep) Grants *g = open_grants();

        install(g, "\"storage\",\"timer\"", false, T0);
        ck_assert_int_eq(installed_at(), T0);
        /* The same set, in another order: nothing to write. */
        install(g, "\"timer\",\"storage\"", false, T0 + 1);
        ck_assert_int_eq(installed_at(), T0);
        CHECK(g, "timer", T0, 0, GRANTS_ALLOWED);
        /* Signed now: written. */
        install(g, "\"timer\",\"storage\"", true, T0 + 2);
        ck_assert_int_eq(installed_at(), T0 + 2);
        /* Another set: written. */
        install(g, "\"timer\"", true, T0 + 3);
        ck_assert_int_eq(installed_at(), T0 + 3);
        CHECK(g, "storage", T0, -EPERM, GRANTS_NOT_REQUESTED);
}
END_TEST

START_TEST(test_install_rejects)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        _cleanup_(manifest_freep) Manifest *m = manifest(APP, "\"storage\",\"camera:front\"");
        _cleanup_(manifest_freep) Manifest *u = manifest(APP, "\"storage\",\"teleport\"");
        const char *bad = NULL, *why = NULL;

        ck_assert_int_eq(grants_install(g, m, false, T0, &bad, &why), -EINVAL);
        ck_assert_str_eq(bad, "camera:front");
        ck_assert_ptr_nonnull(why);
        ck_assert_int_eq(grants_install(g, u, false, T0, &bad, &why), -EINVAL);
        ck_assert_str_eq(bad, "teleport");
        /* Nothing was recorded. */
        ck_assert_int_eq(grants_requested(g, APP, NULL, NULL), -ENOENT);
        ck_assert_int_eq(grants_install(g, NULL, false, T0, NULL, NULL), -EINVAL);
}
END_TEST

/* GRANTS_PER_APP_MAX grants fit; one more is -ENOSPC; re-granting one held is fine. */
START_TEST(test_grants_bound)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        char right[64];
        unsigned i;

        install(g, "\"storage\",\"bus.publish:**\"", false, T0); /* one install grant */
        for (i = 1; i < GRANTS_PER_APP_MAX; i++) {
                snprintf(right, sizeof right, "bus.publish:t%u", i);
                ck_assert_int_eq(grants_grant(g, APP, right, false, GRANT_BY_USER, T0), 0);
        }
        ck_assert_uint_eq(count_grants(g), GRANTS_PER_APP_MAX);
        snprintf(right, sizeof right, "bus.publish:t%u", i);
        ck_assert_int_eq(grants_grant(g, APP, right, false, GRANT_BY_USER, T0), -ENOSPC);
        ck_assert_int_eq(grants_grant(g, APP, "bus.publish:t1", true, GRANT_BY_USER, T0), 0);
        CHECK(g, "bus.publish:t1", T0, 0, GRANTS_ALLOWED);
}
END_TEST

/* The longest right a manifest can hold is stored and matched whole. */
START_TEST(test_right_length_bound)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        char right[CAPABILITY_RIGHT_MAX + 1], perm[CAPABILITY_RIGHT_MAX + 4];
        size_t len;

        strcpy(right, "bus.publish:");
        len = strlen(right);
        while (len < CAPABILITY_RIGHT_MAX - 1) {
                right[len] = (len - 12) % 64 == 63 ? '.' : 'a';
                len++;
        }
        right[len] = 0;
        snprintf(perm, sizeof perm, "\"%s\"", right);
        install(g, perm, false, T0);
        ck_assert_int_eq(grants_grant(g, APP, right, false, GRANT_BY_USER, T0), 0);
        CHECK(g, right, T0, 0, GRANTS_ALLOWED);
        right[len - 1] = 'b';
        CHECK(g, right, T0, -EPERM, GRANTS_NOT_REQUESTED);
        right[len - 1] = 'a';
        right[len] = 'a';
        right[len + 1] = 0;
        CHECK(g, right, T0, -EPERM, GRANTS_INVALID);
}
END_TEST

START_TEST(test_schema_version)
{
        char path[128];
        sqlite3 *db;
        Grants *g = open_grants();

        grants_free(g);
        snprintf(path, sizeof path, "%s/" GRANTS_DB_FILE, state_dir);
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        g = NULL;
        ck_assert_int_eq(grants_open(state_dir, &g), -EPROTONOSUPPORT);
        ck_assert_ptr_null(g);
}
END_TEST

/* ---- reaching other apps (docs/capabilities.md, "Reaching other apps") ---------------- */

#define CLOCK "org.example.clock"

/* The permission or export install_as() refused last (copied: it lives in the manifest). */
static char bad_copy[CAPABILITY_RIGHT_MAX];

/* Installs id with permissions and exports (JSON arrays' insides), signed by key_id
 * when not NULL. Returns grants_install_as's result; a refused entry in bad_copy. */
static int install_as(Grants *g, const char *id, const char *permissions, const char *exports,
                      const char *key_id)
{
        char json[8192];
        ManifestError err;
        _cleanup_(manifest_freep) Manifest *m = NULL;
        const char *why = NULL;
        int r;

        snprintf(json, sizeof json,
                 "{\"id\":\"%s\",\"runtime\":\"native\",\"entry\":\"x\",\"permissions\":[%s],"
                 "\"exports\":[%s]}",
                 id, permissions, exports);
        r = manifest_parse(json, strlen(json), "test", &m, &err);
        ck_assert_msg(r == 0, "manifest: %s: %s", err.key, err.message);
        const char *bad = NULL;

        r = grants_install_as(g, m, key_id != NULL, key_id, T0, &bad, &why);
        snprintf(bad_copy, sizeof bad_copy, "%s", r < 0 && bad ? bad : "");
        return r;
}

static CapabilityLevel level(Grants *g, const char *app, const char *right)
{
        CapabilityLevel l = CAPABILITY_NORMAL;

        ck_assert_int_eq(grants_level(g, app, right, &l), 0);
        return l;
}

#define NOTES_PERMS                                                                                \
        "\"bus.subscribe:**\",\"bus.subscribe:" CLOCK ".*\",\"bus.subscribe:" CLOCK ".tick\","     \
        "\"bus.publish:" CLOCK ".tick\",\"bus.publish:**\",\"bus.publish:" APP ".**\","            \
        "\"bus.send:*.*.*\",\"bus.send:" CLOCK "\",\"app.launch:*.*.*\",\"app.launch:" CLOCK "\""

/* The attack: wildcards and other apps' names asked as "normal" rights. Each is refused
 * without a user grant: eavesdrop (subscribe to another app's topics), forge (publish
 * on them), inject (bus.send to an app), launch. */
START_TEST(test_reach_refused_without_user)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        _cleanup_free_ Grant *l = NULL;
        size_t n = 0;

        ck_assert_int_eq(install_as(g, CLOCK, "\"bus.publish:" CLOCK ".*\"", "", NULL), 1);
        ck_assert_int_eq(install_as(g, APP, NOTES_PERMS, "", NULL), 1);
        /* only the app's own namespace was granted at install */
        ck_assert_int_eq(grants_list(g, APP, &l, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(l[0].right, "bus.publish:" APP ".**");
        CHECK(g, "bus.publish:" APP ".notes.saved", T0, 0, GRANTS_ALLOWED);

        CHECK(g, "bus.subscribe:**", T0, -EACCES, GRANTS_NOT_GRANTED); /* eavesdrop */
        CHECK(g, "bus.subscribe:" CLOCK ".*", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "bus.subscribe:" CLOCK ".tick", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "bus.publish:" CLOCK ".tick", T0, -EACCES, GRANTS_NOT_GRANTED); /* forge */
        CHECK(g, "bus.publish:clock.tick", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "bus.send:" CLOCK, T0, -EACCES, GRANTS_NOT_GRANTED); /* inject */
        CHECK(g, "bus.send:org.example.other", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "app.launch:" CLOCK, T0, -EACCES, GRANTS_NOT_GRANTED); /* launch */
        CHECK(g, "app.launch:org.example.other", T0, -EACCES, GRANTS_NOT_GRANTED);
        ck_assert_int_eq(level(g, APP, "bus.subscribe:**"), CAPABILITY_DANGEROUS);
        ck_assert_int_eq(level(g, APP, "bus.send:*.*.*"), CAPABILITY_DANGEROUS);
        ck_assert_int_eq(level(g, APP, "bus.publish:" APP ".x"), CAPABILITY_NORMAL);
        ck_assert_int_eq(level(g, CLOCK, "bus.publish:" CLOCK ".tick"), CAPABILITY_NORMAL);

        /* The user may grant them: then they are allowed. */
        ck_assert_int_eq(grants_grant(g, APP, "bus.subscribe:**", false, GRANT_BY_USER, T0), 0);
        CHECK(g, "bus.subscribe:" CLOCK ".secret", T0, 0, GRANTS_ALLOWED);
        ck_assert_int_eq(grants_grant(g, APP, "app.launch:" CLOCK, true, GRANT_BY_USER, T0), 0);
        CHECK(g, "app.launch:" CLOCK, T0, 0, GRANTS_ALLOWED);
        CHECK(g, "app.launch:" CLOCK, T0, -EACCES, GRANTS_NOT_GRANTED);
}
END_TEST

/* What an owner exports is reachable as a normal right, exactly that; whichever app is
 * installed first; and withdrawing the export takes it back. */
START_TEST(test_reach_exports)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        /* notes first: its rights on clock wait for clock */
        ck_assert_int_eq(install_as(g, APP, NOTES_PERMS, "", NULL), 1);
        CHECK(g, "bus.subscribe:" CLOCK ".tick", T0, -EACCES, GRANTS_NOT_GRANTED);
        ck_assert_int_eq(install_as(g, CLOCK, "\"bus.publish:" CLOCK ".*\"",
                                    "\"bus.subscribe:" CLOCK ".tick\",\"bus.send\",\"app.launch\"",
                                    NULL),
                         1);
        CHECK(g, "bus.subscribe:" CLOCK ".tick", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "bus.send:" CLOCK, T0, 0, GRANTS_ALLOWED);
        CHECK(g, "app.launch:" CLOCK, T0, 0, GRANTS_ALLOWED);
        /* not more than exported: another topic, publishing, wildcards */
        CHECK(g, "bus.subscribe:" CLOCK ".*", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "bus.publish:" CLOCK ".tick", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "bus.subscribe:**", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "bus.send:org.example.x", T0, -EACCES, GRANTS_NOT_GRANTED);
        /* the same install again changes nothing */
        ck_assert_int_eq(install_as(g, APP, NOTES_PERMS, "", NULL), 0);

        /* a user's revoke lasts across the owner's reinstalls */
        ck_assert_int_eq(grants_revoke(g, APP, "bus.send:" CLOCK, NULL), 1);
        ck_assert_int_eq(install_as(g, CLOCK, "\"bus.publish:" CLOCK ".*\"",
                                    "\"bus.subscribe:" CLOCK ".tick\",\"bus.send\"", NULL),
                         1);
        CHECK(g, "bus.send:" CLOCK, T0, -EACCES, GRANTS_NOT_GRANTED);
        /* app.launch is no longer exported: the install grant is taken back */
        CHECK(g, "app.launch:" CLOCK, T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "bus.subscribe:" CLOCK ".tick", T0, 0, GRANTS_ALLOWED);
        /* ... and comes back with the export */
        ck_assert_int_eq(install_as(g, CLOCK, "\"bus.publish:" CLOCK ".*\"",
                                    "\"bus.subscribe:" CLOCK ".tick\",\"app.launch\"", NULL),
                         1);
        CHECK(g, "app.launch:" CLOCK, T0, 0, GRANTS_ALLOWED);
        /* forgetting the owner takes back what it exported */
        ck_assert_int_eq(grants_forget(g, CLOCK), 1);
        ck_assert_int_eq(grants_forget(g, CLOCK), 0);
        CHECK(g, "bus.subscribe:" CLOCK ".tick", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "app.launch:" CLOCK, T0, -EACCES, GRANTS_NOT_GRANTED);

        /* An app exports only its own namespace, and only rights that reach apps. */
        ck_assert_int_eq(install_as(g, CLOCK, "", "\"bus.subscribe:" APP ".x\"", NULL), -EINVAL);
        ck_assert_str_eq(bad_copy, "bus.subscribe:" APP ".x");
        ck_assert_int_eq(install_as(g, CLOCK, "", "\"bus.subscribe:**\"", NULL), -EINVAL);
        ck_assert_int_eq(install_as(g, CLOCK, "", "\"bus.subscribe:org.example.*.tick\"", NULL),
                         -EINVAL);
        ck_assert_int_eq(install_as(g, CLOCK, "", "\"bus.send:org.example.other\"", NULL), -EINVAL);
        ck_assert_int_eq(install_as(g, CLOCK, "", "\"storage\"", NULL), -EINVAL);
        ck_assert_str_eq(bad_copy, "storage");
        ck_assert_int_eq(grants_requested(g, CLOCK, NULL, NULL), -ENOENT);
}
END_TEST

/* Same signing key: the apps reach each other's namespaces (Android's signature level);
 * another key does not. A nested app's namespace is its own, not its parent's. */
START_TEST(test_reach_signer_and_nested)
{
        _cleanup_(grants_freep) Grants *g = open_grants();

        ck_assert_int_eq(install_as(g, CLOCK, "", "", "0123456789abcdef"), 1);
        ck_assert_int_eq(install_as(g, APP, NOTES_PERMS, "", "0123456789abcdef"), 1);
        CHECK(g, "bus.publish:" CLOCK ".tick", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "bus.subscribe:" CLOCK ".*", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "bus.send:" CLOCK, T0, 0, GRANTS_ALLOWED);
        CHECK(g, "bus.subscribe:**", T0, -EACCES, GRANTS_NOT_GRANTED);
        /* clock re-signed with another key: no more */
        ck_assert_int_eq(install_as(g, CLOCK, "", "", "fedcba9876543210"), 1);
        CHECK(g, "bus.publish:" CLOCK ".tick", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "bus.send:" CLOCK, T0, -EACCES, GRANTS_NOT_GRANTED);

        /* org.example.notes.sync under notes, another signer: notes's wildcard over its
         * own namespace would reach it, its own exact topics do not */
        CHECK(g, "bus.publish:" APP ".sync.state", T0, 0, GRANTS_ALLOWED);
        ck_assert_int_eq(install_as(g, APP ".sync", "\"bus.publish:" APP ".sync.*\"", "", NULL), 1);
        CHECK(g, "bus.publish:" APP ".sync.state", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "bus.publish:" APP ".saved", T0, -EACCES, GRANTS_NOT_GRANTED); /* via .** */
        ck_assert_int_eq(level(g, APP, "bus.publish:" APP ".saved"), CAPABILITY_NORMAL);
        ck_assert_int_eq(level(g, APP ".sync", "bus.publish:" APP ".sync.state"),
                         CAPABILITY_NORMAL);
}
END_TEST

/* A grants.db of schema 1 granted wildcards at install: opening it takes them back. */
START_TEST(test_schema_1_upgrade)
{
        char path[128];
        sqlite3 *db;
        Grants *g = NULL;

        ck_assert_int_eq(mkdir(state_dir, 0700), 0);
        snprintf(path, sizeof path, "%s/" GRANTS_DB_FILE, state_dir);
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        ck_assert_int_eq(
                sqlite3_exec(db,
                             "CREATE TABLE apps (id TEXT PRIMARY KEY NOT NULL, signed INTEGER"
                             " NOT NULL, installed_at INTEGER NOT NULL);"
                             "CREATE TABLE requested (app_id TEXT NOT NULL, capability TEXT NOT"
                             " NULL, PRIMARY KEY (app_id, capability));"
                             "CREATE TABLE grants (app_id TEXT NOT NULL, capability TEXT NOT NULL,"
                             " granted_at INTEGER NOT NULL, one_time INTEGER NOT NULL, granted_by"
                             " TEXT NOT NULL, PRIMARY KEY (app_id, capability));"
                             "CREATE TABLE gestures (app_id TEXT PRIMARY KEY NOT NULL, at INTEGER"
                             " NOT NULL);"
                             "INSERT INTO apps VALUES ('" APP "', 0, 1);"
                             "INSERT INTO requested VALUES ('" APP "', 'bus.subscribe:**');"
                             "INSERT INTO requested VALUES ('" APP "', 'bus.publish:" APP ".*');"
                             "INSERT INTO requested VALUES ('" APP "', 'bus.send:*.*.*');"
                             "INSERT INTO grants VALUES ('" APP "', 'bus.subscribe:**', 1, 0,"
                             " 'install');"
                             "INSERT INTO grants VALUES ('" APP "', 'bus.publish:" APP ".*', 1, 0,"
                             " 'install');"
                             "INSERT INTO grants VALUES ('" APP "', 'bus.send:*.*.*', 1, 0,"
                             " 'user');"
                             "PRAGMA user_version = 1;",
                             NULL, NULL, NULL),
                SQLITE_OK);
        sqlite3_close(db);
        ck_assert_int_eq(grants_open(state_dir, &g), 0);
        CHECK(g, "bus.subscribe:**", T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "bus.publish:" APP ".x", T0, 0, GRANTS_ALLOWED);
        CHECK(g, "bus.send:org.a.b", T0, 0, GRANTS_ALLOWED); /* the user's grant stays */
        grants_free(g);
}
END_TEST

START_TEST(test_strings)
{
        ck_assert_str_eq(grant_source_to_string(GRANT_BY_INSTALL), "install");
        ck_assert_str_eq(grant_source_to_string(GRANT_BY_USER), "user");
        ck_assert_str_eq(grant_source_to_string(GRANT_BY_SIGNATURE), "signature");
        ck_assert_str_eq(grants_reason_to_string(GRANTS_NOT_SIGNED), "not signed by a trusted key");
        ck_assert_int_gt(grants_now_ms(), T0);
}
END_TEST

/* policy_decide() and policy_right_state() of src/policy/decide.c, from a cache
 * loaded once, say what grants_check() says from the database, right by right. */
static void decide_at(GrantCache *gc, Grants *g, const char *right, bool consume, int64_t now,
                      int want_r, const char *want_why, int line)
{
        CapabilityRight asked;
        const char *why = NULL;
        bool parsed = right && capability_right_parse(right, &asked, NULL) == 0;
        int r = policy_decide(gc, g, APP, parsed ? &asked : NULL, consume, now, &why);

        ck_assert_msg(r == want_r && strcmp(why, want_why) == 0,
                      "line %d: decide %s: %d (%s), expected %d (%s)", line, right ?: "(null)", r,
                      why, want_r, want_why);
}
#define DECIDE(right, consume, now, want_r, reason)                                                \
        decide_at(&gc, g, (right), (consume), (now), (want_r), grants_reason_to_string(reason),    \
                  __LINE__)

START_TEST(test_policy_decide)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        _cleanup_(grant_cache_clear) GrantCache gc = {};
        static const char *const same[] = {
                "storage",
                "net.connect:a.b:443",
                "net.connect:a.c:443",
                "net.connect:a.b:80",
                "app.signal",
                "contacts",
                "location:x",
                "no.such",
                "bus.publish:x.y.z",
        };
        CapabilityRight asked;
        bool once = true;
        const char *why;

        install(g, "\"storage\",\"location\",\"camera\",\"net.connect:**:443\",\"app.signal\"",
                false, T0);
        ck_assert_int_eq(grants_grant(g, APP, "net.connect:*.b:443", false, GRANT_BY_USER, T0), 0);
        ck_assert_int_eq(grants_grant(g, APP, "camera", false, GRANT_BY_USER, T0), 0);
        ck_assert_int_eq(grants_grant(g, APP, "location", true, GRANT_BY_USER, T0), 0);
        ck_assert_int_eq(grant_cache_load(g, APP, &gc), 0);
        ck_assert_uint_eq(gc.n_grants, 4);
        ck_assert_uint_eq(gc.n_requested, 5);
        ck_assert(!gc.signed_ok);

        /* Rights that involve no one-time grant and no gesture: the cache's answer is
         * the database's, with the same reason. */
        for (size_t i = 0; i < ELEMENTSOF(same); i++) {
                GrantsDecision d = {};
                int want = grants_check(g, APP, same[i], T0, &d);

                decide_at(&gc, g, same[i], false, T0, want, grants_reason_to_string(d.reason),
                          __LINE__);
                decide_at(&gc, g, same[i], true, T0, want, grants_reason_to_string(d.reason),
                          __LINE__);
                ck_assert_int_eq(
                        policy_right_state(
                                &gc,
                                capability_right_parse(same[i], &asked, NULL) == 0 ? &asked : NULL,
                                NULL, &why),
                        want);
        }
        DECIDE("storage", true, T0, 0, GRANTS_ALLOWED);
        DECIDE("net.connect:a.c:443", true, T0, -EACCES, GRANTS_NOT_GRANTED);
        DECIDE("net.connect:a.b:80", true, T0, -EPERM, GRANTS_NOT_REQUESTED);
        DECIDE("app.signal", true, T0, -EPERM, GRANTS_NOT_SIGNED);
        DECIDE(NULL, true, T0, -EPERM, GRANTS_INVALID);

        /* A gesture right: held, but only with a recent gesture. */
        DECIDE("camera", false, T0, -EACCES, GRANTS_NO_GESTURE);
        ck_assert_int_eq(grants_gesture_record(g, APP, T0), 0);
        DECIDE("camera", false, T0 + GRANTS_GESTURE_WINDOW_MS, 0, GRANTS_ALLOWED);
        DECIDE("camera", true, T0 + 1, 0, GRANTS_ALLOWED);
        DECIDE("camera", false, T0 + GRANTS_GESTURE_WINDOW_MS + 1, -EACCES, GRANTS_NO_GESTURE);
        /* now_ms < 0: the clock, read when needed; the gesture at T0 is years old. */
        DECIDE("camera", false, -1, -EACCES, GRANTS_NO_GESTURE);
        DECIDE("storage", false, -1, 0, GRANTS_ALLOWED);

        /* A one-time grant: held without consuming, kept; consumed once, then the
         * cache has reloaded and says what the database says. */
        ck_assert_int_eq(capability_right_parse("location", &asked, NULL), 0);
        ck_assert_int_eq(policy_right_state(&gc, &asked, &once, &why), 0);
        ck_assert(once);
        DECIDE("location", false, T0, 0, GRANTS_ALLOWED);
        DECIDE("location", false, T0, 0, GRANTS_ALLOWED);
        DECIDE("location", true, T0, 0, GRANTS_ALLOWED);
        ck_assert_uint_eq(gc.n_grants, 3);
        ck_assert_int_eq(policy_right_state(&gc, &asked, &once, &why), -EACCES);
        ck_assert(!once);
        ck_assert_str_eq(why, grants_reason_to_string(GRANTS_NOT_GRANTED));
        DECIDE("location", true, T0, -EACCES, GRANTS_NOT_GRANTED);
        CHECK(g, "location", T0, -EACCES, GRANTS_NOT_GRANTED);
}
END_TEST

/* A sink of grants_grant_recorded() that keeps the records as text, or fails. */
typedef struct Sink {
        char records[4][512];
        unsigned n;
        int fail;
} Sink;

static int sink_keep(void *userdata, const char *app_id, const char *event, json_t *fields)
{
        Sink *k = userdata;
        _cleanup_free_ char *text = json_dumps(fields, JSON_SORT_KEYS | JSON_COMPACT);

        if (k->fail < 0)
                return k->fail;
        ck_assert_ptr_nonnull(text);
        ck_assert_uint_lt(k->n, ELEMENTSOF(k->records));
        snprintf(k->records[k->n++], sizeof k->records[0], "%s %s %s", app_id, event, text);
        return 0;
}

/* One grant, one record, the same for every caller; a refused grant writes none; a
 * record that fails leaves the grant made and says so. */
START_TEST(test_grant_recorded)
{
        _cleanup_(grants_freep) Grants *g = open_grants();
        Sink k = {};
        int ar = 1;

        install(g, "\"location\",\"net.connect:**:443\"", false, T0);
        ck_assert_int_eq(
                grants_grant_recorded(g, APP, "location", true, "prompt", T0, sink_keep, &k, &ar),
                0);
        ck_assert_int_eq(ar, 0);
        ck_assert_uint_eq(k.n, 1);
        ck_assert_str_eq(k.records[0], APP " " AUDIT_EVENT_GRANT
                                           " {\"by\":\"prompt\",\"one_time\":true,\"right\":"
                                           "\"location\",\"what\":\"granted\"}");
        CHECK(g, "location", T0, 0, GRANTS_ALLOWED);

        ck_assert_int_eq(
                grants_grant_recorded(g, APP, "contacts", false, "cli", T0, sink_keep, &k, &ar),
                -EPERM);
        ck_assert_int_eq(ar, 0);
        ck_assert_uint_eq(k.n, 1);

        k.fail = -EIO;
        ck_assert_int_eq(grants_grant_recorded(g, APP, "net.connect:a.b:443", false, "cli", T0,
                                               sink_keep, &k, &ar),
                         0);
        ck_assert_int_eq(ar, -EIO);
        CHECK(g, "net.connect:a.b:443", T0, 0, GRANTS_ALLOWED);

        /* No sink: the grant alone. */
        ck_assert_int_eq(
                grants_grant_recorded(g, APP, "location", false, "cli", T0, NULL, NULL, &ar), 0);
        ck_assert_int_eq(ar, 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("grants");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_install_levels);
        tcase_add_test(tc, test_decision_fields);
        tcase_add_test(tc, test_grant_revoke);
        tcase_add_test(tc, test_persistence);
        tcase_add_test(tc, test_one_time);
        tcase_add_test(tc, test_one_time_race);
        tcase_add_test(tc, test_gesture);
        tcase_add_test(tc, test_signature_rights);
        tcase_add_test(tc, test_reinstall);
        tcase_add_test(tc, test_reinstall_unchanged_writes_nothing);
        tcase_add_test(tc, test_install_rejects);
        tcase_add_test(tc, test_grants_bound);
        tcase_add_test(tc, test_right_length_bound);
        tcase_add_test(tc, test_schema_version);
        tcase_add_test(tc, test_reach_refused_without_user);
        tcase_add_test(tc, test_reach_exports);
        tcase_add_test(tc, test_reach_signer_and_nested);
        tcase_add_test(tc, test_schema_1_upgrade);
        tcase_add_test(tc, test_strings);
        tcase_add_test(tc, test_policy_decide);
        tcase_add_test(tc, test_grant_recorded);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
