/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/size.h"
#include "base/strv.h"
#include "policy/manifest.h"

#ifndef CELLA_SOURCE_ROOT
#error "CELLA_SOURCE_ROOT must name the source tree (tests/unit/meson.build)"
#endif

/* A minimal valid manifest with extra members spliced in: M(",\"kind\":\"service\""). */
#define M(extra) "{\"id\":\"org.example.a\",\"runtime\":\"native\",\"entry\":\"bin/a\"" extra "}"

/* Bytes of the quoted value a message may echo, plus generous room for the words. */
#define MESSAGE_ECHO_MAX 200u

static char *xasprintf(const char *fmt, ...) _printf_(1, 2);
static char *xasprintf(const char *fmt, ...)
{
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        ck_assert_int_ge(r, 0);
        return s;
}

/* n copies of c, NUL-terminated. */
static char *repeat(char c, size_t n)
{
        char *s = malloc(n + 1);

        ck_assert_ptr_nonnull(s);
        memset(s, c, n);
        s[n] = 0;
        return s;
}

static Manifest *parse_ok_n(const char *json, size_t size)
{
        Manifest *m = NULL;
        ManifestError err;
        int r;

        r = manifest_parse(json, size, "test.json", &m, &err);
        ck_assert_msg(r == 0, "manifest_parse(%.200s) = %d: %s: %s (line %d)", json, r, err.key,
                      err.message, err.line);
        ck_assert_ptr_nonnull(m);
        return m;
}

static Manifest *parse_ok(const char *json)
{
        return parse_ok_n(json, strlen(json));
}

/*
 * Asserts that json fails with want_r, err.key == want_key (unless NULL) and want_msg in
 * err.message; that *ret is left alone; and that the message is bounded and free of control bytes.
 */
static void check_error_n(const char *json, size_t size, int want_r, const char *want_key,
                          const char *want_msg, ManifestError *ret_err)
{
        Manifest *sentinel = (Manifest *)0x1, *m = sentinel;
        ManifestError err;
        int r;

        memset(&err, 0xaa, sizeof err);
        r = manifest_parse(json, size, "test.json", &m, &err);
        ck_assert_msg(r == want_r, "manifest_parse(%.200s) = %d, want %d (%s: %s)", json, r, want_r,
                      err.key, err.message);
        ck_assert_msg(m == sentinel, "*ret written on failure");
        ck_assert_str_eq(err.file, "test.json");
        if (want_key)
                ck_assert_msg(strcmp(err.key, want_key) == 0,
                              "key \"%s\", want \"%s\" (message: %s)", err.key, want_key,
                              err.message);
        ck_assert_msg(strstr(err.message, want_msg), "message \"%s\" lacks \"%s\"", err.message,
                      want_msg);
        ck_assert_uint_lt(strlen(err.message), sizeof err.message);
        for (const char *p = err.message; *p; p++)
                ck_assert_msg((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte in message");
        for (const char *p = err.key; *p; p++)
                ck_assert_msg((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte in key");
        if (ret_err)
                *ret_err = err;
}

static void check_error(const char *json, const char *want_key, const char *want_msg)
{
        check_error_n(json, strlen(json), -EINVAL, want_key, want_msg, NULL);
}

/* check_error() that also hands back the error, for line, column and further checks. */
static void check_error_e(const char *json, const char *want_key, const char *want_msg,
                          ManifestError *ret_err)
{
        check_error_n(json, strlen(json), -EINVAL, want_key, want_msg, ret_err);
}

START_TEST(test_full)
{
        static const char json[] =
                "{\n"
                "  \"id\": \"org.example.notes\",\n"
                "  \"name\": \"Notes\",\n"
                "  \"version\": \"1.2.0\",\n"
                "  \"runtime\": \"native\",\n"
                "  \"entry\": \"bin/notes\",\n"
                "  \"args\": [\"--verbose\", \"\", \"x y\"],\n"
                "  \"kind\": \"service\",\n"
                "  \"depends\": [\"org.example.clock\", \"org.example.db\"],\n"
                "  \"permissions\": [\n"
                "    \"storage\",\n"
                "    \"bus.publish:notes.*\",\n"
                "    \"bus.subscribe:clock.tick\",\n"
                "    \"net.connect:api.example.com:443\",\n"
                "    \"location\"\n"
                "  ],\n"
                "  \"env\": { \"LANG\": \"C.UTF-8\", \"PATH\": \"/bin\", \"EMPTY\": \"\" },\n"
                "  \"limits\": { \"memory\": \"64M\", \"pids\": 32, \"cpu\": 0.5, \"files\": 256,\n"
                "              \"storage\": \"100M\", \"tmp\": 16777216 },\n"
                "  \"restart\": \"on-failure\"\n"
                "}\n";
        Manifest *m = parse_ok(json);

        ck_assert_str_eq(m->id, "org.example.notes");
        ck_assert_str_eq(m->name, "Notes");
        ck_assert_str_eq(m->version, "1.2.0");
        ck_assert_int_eq(m->runtime, MANIFEST_RUNTIME_NATIVE);
        ck_assert_str_eq(m->entry, "bin/notes");
        ck_assert_uint_eq(strv_length(m->args), 3);
        ck_assert_str_eq(m->args[0], "--verbose");
        ck_assert_str_eq(m->args[1], "");
        ck_assert_str_eq(m->args[2], "x y");
        ck_assert_int_eq(m->kind, MANIFEST_KIND_SERVICE);
        ck_assert_uint_eq(strv_length(m->depends), 2);
        ck_assert_str_eq(m->depends[0], "org.example.clock");
        ck_assert_str_eq(m->depends[1], "org.example.db");
        ck_assert_uint_eq(strv_length(m->permissions), 5);
        ck_assert_str_eq(m->permissions[0], "storage");
        ck_assert_str_eq(m->permissions[1], "bus.publish:notes.*");
        ck_assert_str_eq(m->permissions[2], "bus.subscribe:clock.tick");
        ck_assert_str_eq(m->permissions[3], "net.connect:api.example.com:443");
        ck_assert_str_eq(m->permissions[4], "location");
        ck_assert_uint_eq(strv_length(m->env), 3);
        ck_assert_str_eq(m->env[0], "LANG=C.UTF-8");
        ck_assert_str_eq(m->env[1], "PATH=/bin");
        ck_assert_str_eq(m->env[2], "EMPTY=");
        ck_assert_uint_eq(m->limits.memory, 64ull << 20);
        ck_assert_uint_eq(m->limits.pids, 32);
        ck_assert_uint_eq(m->limits.cpu_milli, 500);
        ck_assert_uint_eq(m->limits.files, 256);
        ck_assert_uint_eq(m->limits.storage, 100ull << 20);
        ck_assert_uint_eq(m->limits.tmp, 16ull << 20);
        ck_assert_int_eq(m->restart, MANIFEST_RESTART_ON_FAILURE);
        ck_assert_ptr_null(manifest_free(m));
}
END_TEST

/* "autostart" (docs/manifest.md): a JSON boolean, false when absent. */
START_TEST(test_autostart)
{
        Manifest *m = parse_ok(M(",\"autostart\":true"));

        ck_assert(m->autostart);
        manifest_free(m);
        m = parse_ok(M(",\"autostart\":false"));
        ck_assert(!m->autostart);
        manifest_free(m);
}
END_TEST

START_TEST(test_minimal_defaults)
{
        Manifest *m =
                parse_ok("{\"id\":\"org.example.min\",\"runtime\":\"lua\",\"entry\":\"main.lua\"}");

        ck_assert_str_eq(m->id, "org.example.min");
        ck_assert_str_eq(m->name, "org.example.min");
        ck_assert_ptr_ne(m->name, m->id);
        ck_assert_str_eq(m->version, "0");
        ck_assert_int_eq(m->runtime, MANIFEST_RUNTIME_LUA);
        ck_assert_str_eq(m->entry, "main.lua");
        ck_assert_int_eq(m->kind, MANIFEST_KIND_APP);
        ck_assert_int_eq(m->restart, MANIFEST_RESTART_NO);
        ck_assert(!m->autostart);
        ck_assert_ptr_nonnull(m->args);
        ck_assert_ptr_null(m->args[0]);
        ck_assert_ptr_nonnull(m->depends);
        ck_assert_ptr_null(m->depends[0]);
        ck_assert_ptr_nonnull(m->permissions);
        ck_assert_ptr_null(m->permissions[0]);
        ck_assert_ptr_nonnull(m->env);
        ck_assert_ptr_null(m->env[0]);
        ck_assert_uint_eq(m->limits.memory, 0);
        ck_assert_uint_eq(m->limits.pids, 0);
        ck_assert_uint_eq(m->limits.cpu_milli, 0);
        ck_assert_uint_eq(m->limits.files, 0);
        ck_assert_uint_eq(m->limits.storage, 0);
        ck_assert_uint_eq(m->limits.tmp, 0);
        manifest_free(m);

        /* Empty lists and objects are as good as absent. */
        m = parse_ok(M(",\"args\":[],\"depends\":[],\"permissions\":[],\"env\":{},\"limits\":{}"));
        ck_assert_ptr_null(m->args[0]);
        ck_assert_ptr_null(m->env[0]);
        ck_assert_uint_eq(m->limits.memory, 0);
        manifest_free(m);
}
END_TEST

START_TEST(test_syntax_error)
{
        ManifestError err;

        check_error_e("{\n  \"id\": \"org.example.a\",\n  \"runtime\" \"native\"\n}", "",
                      "invalid JSON", &err);
        ck_assert_int_eq(err.line, 3);
        ck_assert_int_gt(err.column, 0);

        check_error_e("{\"id\": \"org.example.a\",}", "", "invalid JSON", &err);
        ck_assert_int_eq(err.line, 1);
        check_error_e("{\"id\": 1} x", "", "invalid JSON", &err);
        check_error_e("{\"id\": ", "", "invalid JSON", &err);
        check_error_e("", "", "empty", &err);
        ck_assert_int_eq(err.line, 0);
        /* Invalid UTF-8 is a syntax error, and its bytes are not echoed raw. */
        check_error_e("{\"name\": \"\xff\x1b[2J\"}", "", "invalid JSON", &err);
        ck_assert_ptr_null(strchr(err.message, '\xff'));
        /* A number too big for 64 bits is refused by jansson, with its position. */
        check_error_e(M(",\"limits\":{\"memory\":99999999999999999999}"), "", "too big", &err);
        ck_assert_int_eq(err.line, 1);
}
END_TEST

START_TEST(test_not_object)
{
        check_error("[]", "", "expected a JSON object { ... } at the top level, got an array");
        check_error("42", "", "got 42");
        check_error("\"org.example.a\"", "", "got \"org.example.a\"");
        check_error("null", "", "got null");
        check_error("true", "", "got true");
}
END_TEST

START_TEST(test_missing_required)
{
        check_error("{\"runtime\":\"native\",\"entry\":\"a\"}", "id", "missing required key");
        check_error("{\"id\":\"org.example.a\",\"entry\":\"a\"}", "runtime",
                    "missing required key; expected \"native\" or \"lua\"");
        check_error("{\"id\":\"org.example.a\",\"runtime\":\"native\"}", "entry",
                    "missing required key");
        check_error("{}", "id", "missing required key");
}
END_TEST

START_TEST(test_wrong_types)
{
        static const struct {
                const char *json, *key, *msg;
        } cases[] = {
                {"{\"id\":5,\"runtime\":\"native\",\"entry\":\"a\"}", "id", "got 5"},
                {M(",\"name\":5"), "name", "expected a string, got 5"},
                {M(",\"name\":null"), "name", "expected a string, got null"},
                {M(",\"version\":true"), "version", "expected a string, got true"},
                {M(",\"version\":1.5"), "version", "expected a string, got 1.5"},
                {"{\"id\":\"org.example.a\",\"runtime\":1,\"entry\":\"a\"}", "runtime",
                 "expected \"native\" or \"lua\", got 1"},
                {"{\"id\":\"org.example.a\",\"runtime\":\"native\",\"entry\":null}", "entry",
                 "expected a relative path inside the app folder"},
                {M(",\"args\":\"--verbose\""), "args",
                 "expected an array of strings, got \"--verbose\""},
                {M(",\"args\":[\"a\",\"b\",3]"), "args[2]", "expected a string, got 3"},
                {M(",\"kind\":[]"), "kind", "expected \"app\" or \"service\", got an array"},
                {M(",\"depends\":{}"), "depends", "expected an array of app ids, got an object"},
                {M(",\"depends\":[1]"), "depends[0]", "got 1"},
                {M(",\"permissions\":\"storage\""), "permissions",
                 "expected an array of permission strings"},
                {M(",\"permissions\":[\"storage\",false]"), "permissions[1]", "got false"},
                {M(",\"env\":[]"), "env", "expected an object of strings"},
                {M(",\"env\":{\"A\":1}"), "env.A", "expected a string, got 1"},
                {M(",\"limits\":[]"), "limits", "expected an object"},
                {M(",\"limits\":{\"memory\":true}"), "limits.memory",
                 "expected a size of at least 1M, such as \"64M\" or a number of bytes, got true"},
                {M(",\"limits\":{\"pids\":\"32\"}"), "limits.pids",
                 "expected an integer from 1 to 4194304, got \"32\""},
                {M(",\"limits\":{\"pids\":32.0}"), "limits.pids", "expected an integer"},
                {M(",\"limits\":{\"cpu\":\"1\"}"), "limits.cpu", "expected a number of CPUs"},
                {M(",\"limits\":{\"files\":null}"), "limits.files", "got null"},
                {M(",\"restart\":false"), "restart",
                 "expected \"no\", \"on-failure\" or \"always\", got false"},
                {M(",\"autostart\":\"yes\""), "autostart", "expected true or false, got \"yes\""},
                {M(",\"autostart\":1"), "autostart", "expected true or false, got 1"},
                {M(",\"autostart\":null"), "autostart", "expected true or false, got null"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                check_error(cases[i].json, cases[i].key, cases[i].msg);
}
END_TEST

START_TEST(test_bad_enums)
{
        Manifest *m;

        check_error("{\"id\":\"org.example.a\",\"runtime\":\"python\",\"entry\":\"a\"}", "runtime",
                    "expected \"native\" or \"lua\", got \"python\"");
        check_error("{\"id\":\"org.example.a\",\"runtime\":\"Native\",\"entry\":\"a\"}", "runtime",
                    "got \"Native\"");
        check_error(M(",\"kind\":\"daemon\""), "kind", "expected \"app\" or \"service\"");
        check_error(M(",\"restart\":\"sometimes\""), "restart",
                    "expected \"no\", \"on-failure\" or \"always\", got \"sometimes\"");
        m = parse_ok(M(",\"restart\":\"always\",\"kind\":\"app\""));
        ck_assert_int_eq(m->restart, MANIFEST_RESTART_ALWAYS);
        ck_assert_int_eq(m->kind, MANIFEST_KIND_APP);
        manifest_free(m);
        m = parse_ok(M(",\"restart\":\"no\""));
        ck_assert_int_eq(m->restart, MANIFEST_RESTART_NO);
        manifest_free(m);
}
END_TEST

START_TEST(test_unknown_keys)
{
        ManifestError err;

        check_error(M(",\"nmae\":\"x\""), "nmae", "unknown key 'nmae'; did you mean 'name'?");
        check_error(M(",\"runtme\":\"x\""), "runtme", "did you mean 'runtime'?");
        check_error(M(",\"permission\":[]"), "permission", "did you mean 'permissions'?");
        check_error(M(",\"Depends\":[]"), "Depends", "did you mean 'depends'?");
        /* Two edits still get a hint; three do not. */
        check_error(M(",\"entri_\":\"a\""), "entri_", "did you mean 'entry'?");
        check_error_e(M(",\"verzion1x\":\"1\""), "verzion1x", "unknown key 'verzion1x'", &err);
        ck_assert_ptr_null(strstr(err.message, "did you mean"));
        check_error_e(M(",\"foo\":1"), "foo",
                      "unknown key 'foo'; expected one of: id, name, version, entry", &err);
        ck_assert_ptr_null(strstr(err.message, "did you mean"));
        /* Two edits from "id", but no typo of it. */
        check_error_e(M(",\"x\":1"), "x", "unknown key 'x'", &err);
        ck_assert_ptr_null(strstr(err.message, "did you mean"));
        /* Lua-only keys are not part of this format yet. */
        check_error(M(",\"lua\":{}"), "lua", "unknown key 'lua'");

        check_error(M(",\"limits\":{\"memroy\":\"64M\"}"), "limits.memroy",
                    "unknown key 'memroy'; did you mean 'memory'?");
        check_error(M(",\"limits\":{\"cpus\":1}"), "limits.cpus", "did you mean 'cpu'?");
        check_error_e(M(",\"limits\":{\"swap\":1}"), "limits.swap",
                      "unknown key 'swap'; expected one of: memory, pids", &err);
        ck_assert_ptr_null(strstr(err.message, "did you mean"));
}
END_TEST

START_TEST(test_ids)
{
        _cleanup_free_ char *label63 = repeat('a', 63), *label64 = repeat('a', 64);
        _cleanup_free_ char *id63 = xasprintf("org.%s", label63),
                            *id64 = xasprintf("org.%s", label64);
        _cleanup_free_ char *label62 = repeat('b', 62);
        /* 62 + 1 + 63 + 1 + 1 = 128 bytes; one more byte in the first label makes 129. */
        _cleanup_free_ char *id128 = xasprintf("%s.%s.x", label62, label63);
        _cleanup_free_ char *id129 = xasprintf("%s.%s.x", label63, label63);
        const char *valid[] = {"a.b", "org.example.notes", "org.Ex-ample_1.X", "_a.b", "a.b-", id63,
                               id128};
        const char *invalid[] = {"",
                                 "a",
                                 "org",
                                 "org.1example",
                                 "1org.example",
                                 "org.-x",
                                 "-org.x",
                                 id64,
                                 id129,
                                 "a..b",
                                 ".a.b",
                                 "a.b.",
                                 "org.exämple",
                                 "org.ex ample",
                                 "org/example.x",
                                 "org.example.*"};

        ck_assert_uint_eq(strlen(id128), MANIFEST_ID_MAX);
        ck_assert_uint_eq(strlen(id129), MANIFEST_ID_MAX + 1);
        for (size_t i = 0; i < ELEMENTSOF(valid); i++)
                ck_assert_msg(manifest_id_is_valid(valid[i]), "\"%s\" should be valid", valid[i]);
        for (size_t i = 0; i < ELEMENTSOF(invalid); i++)
                ck_assert_msg(!manifest_id_is_valid(invalid[i]), "\"%s\" should be invalid",
                              invalid[i]);
        ck_assert(!manifest_id_is_valid(NULL));

        /* Through the parser: the reason and the expected form are both named. */
        check_error("{\"id\":\"org\",\"runtime\":\"native\",\"entry\":\"a\"}", "id",
                    "invalid app id \"org\" (it has only one label); expected a reverse-DNS");
        check_error("{\"id\":\"org.1x\",\"runtime\":\"native\",\"entry\":\"a\"}", "id",
                    "starts with a digit");
        check_error("{\"id\":\"org.-x\",\"runtime\":\"native\",\"entry\":\"a\"}", "id",
                    "starts with '-'");
        check_error("{\"id\":\"a..b\",\"runtime\":\"native\",\"entry\":\"a\"}", "id",
                    "empty label");
        check_error("{\"id\":\"org.ex\\u00e4mple\",\"runtime\":\"native\",\"entry\":\"a\"}", "id",
                    "a character other than");
        {
                _cleanup_free_ char *j =
                        xasprintf("{\"id\":\"%s\",\"runtime\":\"native\",\"entry\":\"a\"}", id64);
                _cleanup_free_ char *k =
                        xasprintf("{\"id\":\"%s\",\"runtime\":\"native\",\"entry\":\"a\"}", id129);
                _cleanup_free_ char *ok =
                        xasprintf("{\"id\":\"%s\",\"runtime\":\"native\",\"entry\":\"a\"}", id128);
                Manifest *m;

                check_error(j, "id", "longer than 63");
                check_error(k, "id", "longer than 128 bytes");
                m = parse_ok(ok);
                ck_assert_str_eq(m->id, id128);
                manifest_free(m);
        }
}
END_TEST

START_TEST(test_entry)
{
        static const struct {
                const char *entry, *msg;
        } bad[] = {
                {"../x", "\"..\" component"},
                {"a/../b", "\"..\" component"},
                {"a/..", "\"..\" component"},
                {"..", "\"..\" component"},
                {"/bin/sh", "absolute"},
                {"a//b", "empty component"},
                {"a/", "empty component"},
                {".", "the app folder itself"},
                {"./.", "the app folder itself"},
                {"a\\tb", "control character"},
                {"a\\u009bb", "control character"},
                {"", "must not be empty"},
                {"a\\u0000b", "NUL"},
        };
        static const char *const good[] = {"main.lua", "bin/notes", "./main",       "a/.b",
                                           "..a",      "a..",       "dir/sub dir/x"};

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *j = xasprintf(
                        "{\"id\":\"org.example.a\",\"runtime\":\"native\",\"entry\":\"%s\"}",
                        bad[i].entry);

                check_error(j, "entry", bad[i].msg);
        }
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_free_ char *j = xasprintf(
                        "{\"id\":\"org.example.a\",\"runtime\":\"native\",\"entry\":\"%s\"}",
                        good[i]);
                Manifest *m = parse_ok(j);

                ck_assert_str_eq(m->entry, good[i]);
                manifest_free(m);
        }
}
END_TEST

START_TEST(test_sizes)
{
        static const struct {
                const char *limits, *key, *msg;
        } bad[] = {
                {"{\"memory\":\"64Q\"}", "limits.memory",
                 "expected a size of at least 1M, such as \"64M\" or a number of bytes (suffixes "
                 "K, M, G, T; no fractions), got \"64Q\""},
                {"{\"memory\":\"-1\"}", "limits.memory", "got \"-1\""},
                {"{\"memory\":-1}", "limits.memory", "-1 is less than the minimum of 1M"},
                {"{\"storage\":\"1.5G\"}", "limits.storage", "got \"1.5G\""},
                {"{\"storage\":1.5}", "limits.storage", "got 1.5"},
                {"{\"tmp\":\"\"}", "limits.tmp", "got \"\""},
                {"{\"tmp\":\" 4K\"}", "limits.tmp", "got \" 4K\""},
                {"{\"memory\":\"99999999999999999999G\"}", "limits.memory",
                 "size \"99999999999999999999G\" does not fit in 64 bits"},
                {"{\"memory\":\"16777216T\"}", "limits.memory", "does not fit in 64 bits"},
                {"{\"memory\":\"1023K\"}", "limits.memory", "1023K is less than the minimum of 1M"},
                {"{\"memory\":0}", "limits.memory", "less than the minimum of 1M"},
                {"{\"tmp\":\"4095\"}", "limits.tmp", "less than the minimum of 4K"},
                {"{\"storage\":0}", "limits.storage", "less than the minimum of 1"},
                /* /data is an ext4 image: at most 16 TiB (src/supervisor/storage.c). */
                {"{\"storage\":\"17T\"}", "limits.storage", "17T is more than the maximum of 16T"},
                {"{\"storage\":17592186044417}", "limits.storage", "more than the maximum of 16T"},
        };
        Manifest *m;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *j = xasprintf(M(",\"limits\":%s"), bad[i].limits);

                check_error(j, bad[i].key, bad[i].msg);
        }

        m = parse_ok(M(",\"limits\":{\"memory\":1048576,\"tmp\":\"4K\",\"storage\":\"1\"}"));
        ck_assert_uint_eq(m->limits.memory, 1048576);
        ck_assert_uint_eq(m->limits.tmp, 4096);
        ck_assert_uint_eq(m->limits.storage, 1);
        manifest_free(m);
        m = parse_ok(M(",\"limits\":{\"memory\":\"2GiB\",\"tmp\":\"16m\",\"storage\":\"1T\"}"));
        ck_assert_uint_eq(m->limits.memory, 2ull << 30);
        ck_assert_uint_eq(m->limits.tmp, 16ull << 20);
        ck_assert_uint_eq(m->limits.storage, 1ull << 40);
        manifest_free(m);
        m = parse_ok(M(",\"limits\":{\"storage\":\"16T\"}"));
        ck_assert_uint_eq(m->limits.storage, 16ull << 40);
        manifest_free(m);
        m = parse_ok(M(",\"limits\":{\"memory\":9223372036854775807}"));
        ck_assert_uint_eq(m->limits.memory, INT64_MAX);
        manifest_free(m);
}
END_TEST

START_TEST(test_cpu)
{
        static const struct {
                const char *cpu, *msg;
        } bad[] = {
                {"0", "0 is less than the minimum of 0.001; expected a number of CPUs from 0.001 "
                      "to 1024, such as 2 or 0.5"},
                {"0.0", "0.0 is less than the minimum of 0.001"},
                {"-1", "-1 is less than the minimum of 0.001"},
                {"-0.5", "-0.5 is less than the minimum of 0.001"},
                {"1024.5", "1024.5 is more than the maximum of 1024"},
                /* Compared before rounding to thousandths: this is not 1024. */
                {"1024.0004", "1024.0004 is more than the maximum of 1024"},
                {"1025", "1025 is more than the maximum of 1024"},
                {"1e300", "1e+300 is more than the maximum of 1024"},
                /* Rounds to 0 thousandths. */
                {"0.0004", "0.0004 is less than the minimum of 0.001"},
                {"true",
                 "expected a number of CPUs from 0.001 to 1024, such as 2 or 0.5, got true"},
                {"\"1\"", "got \"1\" (a string); write the number without quotes: 1"},
        };
        static const struct {
                const char *cpu;
                uint64_t milli;
        } good[] = {
                {"0.5", 500},    {"2", 2000},       {"0.001", 1},     {"0.0006", 1},
                {"0.1234", 123}, {"1024", 1024000}, {"1.9999", 2000}, {"1e-3", 1},
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *j = xasprintf(M(",\"limits\":{\"cpu\":%s}"), bad[i].cpu);

                check_error(j, "limits.cpu", bad[i].msg);
        }
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_free_ char *j = xasprintf(M(",\"limits\":{\"cpu\":%s}"), good[i].cpu);
                Manifest *m = parse_ok(j);

                ck_assert_msg(m->limits.cpu_milli == good[i].milli, "cpu %s -> %llu, want %llu",
                              good[i].cpu, (unsigned long long)m->limits.cpu_milli,
                              (unsigned long long)good[i].milli);
                manifest_free(m);
        }
}
END_TEST

START_TEST(test_counts)
{
        static const struct {
                const char *limits, *key, *msg;
        } bad[] = {
                {"{\"pids\":0}", "limits.pids",
                 "0 is less than the minimum of 1; expected an integer from 1 to 4194304"},
                {"{\"pids\":-5}", "limits.pids", "-5 is less than the minimum of 1"},
                {"{\"pids\":4194305}", "limits.pids",
                 "4194305 is more than the maximum of 4194304"},
                {"{\"files\":15}", "limits.files",
                 "15 is less than the minimum of 16; expected an integer from 16 to 1048576"},
                {"{\"files\":1048577}", "limits.files", "more than the maximum of 1048576"},
                {"{\"files\":256.5}", "limits.files", "got 256.5"},
        };
        Manifest *m;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *j = xasprintf(M(",\"limits\":%s"), bad[i].limits);

                check_error(j, bad[i].key, bad[i].msg);
        }
        m = parse_ok(M(",\"limits\":{\"pids\":1,\"files\":16}"));
        ck_assert_uint_eq(m->limits.pids, 1);
        ck_assert_uint_eq(m->limits.files, 16);
        manifest_free(m);
        m = parse_ok(M(",\"limits\":{\"pids\":4194304,\"files\":1048576}"));
        ck_assert_uint_eq(m->limits.pids, 4194304);
        ck_assert_uint_eq(m->limits.files, 1048576);
        manifest_free(m);
}
END_TEST

START_TEST(test_duplicates)
{
        ManifestError err;

        check_error_e("{\"id\":\"org.example.a\",\n\"id\":\"org.example.b\"}", "",
                      "duplicate object key", &err);
        ck_assert_int_eq(err.line, 2);
        check_error(M(",\"limits\":{\"pids\":1,\"pids\":2}"), "", "duplicate object key");
        check_error(M(",\"env\":{\"A\":\"1\",\"A\":\"2\"}"), "", "duplicate object key");
        check_error(M(",\"permissions\":[\"storage\",\"location\",\"storage\"]"), "permissions[2]",
                    "duplicate permission \"storage\"");
        check_error(M(",\"depends\":[\"org.example.b\",\"org.example.b\"]"), "depends[1]",
                    "duplicate dependency \"org.example.b\"");
        check_error(M(",\"depends\":[\"org.example.b\",\"org.example.a\"]"), "depends[1]",
                    "cannot depend on itself");
        check_error(M(",\"depends\":[\"org\"]"), "depends[0]", "invalid app id \"org\"");
        /* Duplicate args are fine: "-v -v" means something. */
        Manifest *m = parse_ok(M(",\"args\":[\"-v\",\"-v\"]"));
        ck_assert_uint_eq(strv_length(m->args), 2);
        manifest_free(m);
}
END_TEST

START_TEST(test_permissions)
{
        static const char *const good[] = {
                "storage",        "bus.publish:notes.*",  "net.connect:api.example.com:443",
                "a_b.c1:[a-z]?x", "x:/path/with/slashes", "a1.b2_.c"};
        static const struct {
                const char *p, *msg;
        } bad[] = {
                {"Storage", "each word of the name must start with a-z"},
                {"1x", "must start with a-z"},
                {"bus..x", "must start with a-z"},
                {"bus.", "the name ends with '.'"},
                {"bus-x", "may only contain a-z 0-9 _ and ."},
                {":x", "the name is empty"},
                {"x:", "the scope after ':' is empty"},
                {"x:a b", "printable ASCII without spaces"},
                {"x:\\u00e9", "printable ASCII without spaces"},
                {"x:a\\tb", "printable ASCII without spaces"},
                {"", "must not be empty"},
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_free_ char *j = xasprintf(M(",\"permissions\":[\"%s\"]"), good[i]);
                Manifest *m = parse_ok(j);

                ck_assert_str_eq(m->permissions[0], good[i]);
                manifest_free(m);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *j =
                        xasprintf(M(",\"permissions\":[\"storage\",\"%s\"]"), bad[i].p);

                check_error(j, "permissions[1]", bad[i].msg);
        }
        check_error(M(",\"permissions\":[\"Storage\"]"), "permissions[0]",
                    "expected \"name\" or \"name:scope\"");
}
END_TEST

START_TEST(test_nul)
{
        static const char raw[] = "{\"id\":\"org.example.a\",\n\"name\":\"a\0b\"}";
        ManifestError err;

        check_error(M(",\"name\":\"a\\u0000b\""), "name", "must not contain a NUL character");
        check_error(M(",\"version\":\"\\u0000\""), "version", "NUL");
        check_error(M(",\"args\":[\"ok\",\"a\\u0000\"]"), "args[1]", "NUL");
        check_error(M(",\"env\":{\"A\":\"x\\u0000y\"}"), "env.A", "NUL");
        check_error(M(",\"permissions\":[\"storage\\u0000x\"]"), "permissions[0]", "NUL");
        check_error(M(",\"limits\":{\"memory\":\"64M\\u0000\"}"), "limits.memory", "NUL");
        check_error("{\"id\":\"org.example.a\\u0000x\",\"runtime\":\"native\",\"entry\":\"a\"}",
                    "id", "NUL");
        /* jansson refuses NUL in keys itself. */
        check_error(M(",\"env\":{\"A\\u0000B\":\"x\"}"), "", "NUL");
        /* A raw NUL byte in the file: refused before parsing, with its position. */
        check_error_n(raw, sizeof raw - 1, -EINVAL, "", "NUL byte", &err);
        ck_assert_int_eq(err.line, 2);
        ck_assert_int_eq(err.column, 10);
}
END_TEST

START_TEST(test_string_bounds)
{
        _cleanup_free_ char *s256 = repeat('n', MANIFEST_STRING_MAX);
        _cleanup_free_ char *s257 = repeat('n', MANIFEST_STRING_MAX + 1);
        _cleanup_free_ char *v1024 = repeat('v', MANIFEST_ENV_VALUE_MAX);
        _cleanup_free_ char *v1025 = repeat('v', MANIFEST_ENV_VALUE_MAX + 1);
        _cleanup_free_ char *k128 = repeat('K', 128), *k129 = repeat('K', 129);
        static const char *const keys[] = {"name", "version", "entry"};
        Manifest *m;

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                _cleanup_free_ char *ok = xasprintf(M(",\"%s\":\"%s\""), keys[i], s256);
                _cleanup_free_ char *bad = xasprintf(M(",\"%s\":\"%s\""), keys[i], s257);

                /* entry is already in M(): duplicates are an error, so replace it. */
                if (strcmp(keys[i], "entry") == 0) {
                        free(ok);
                        free(bad);
                        ok = xasprintf("{\"id\":\"org.example.a\",\"runtime\":\"native\","
                                       "\"entry\":\"%s\"}",
                                       s256);
                        bad = xasprintf("{\"id\":\"org.example.a\",\"runtime\":\"native\","
                                        "\"entry\":\"%s\"}",
                                        s257);
                }
                m = parse_ok(ok);
                manifest_free(m);
                check_error(bad, keys[i], "is 257 bytes long, more than the limit of 256 bytes");
        }
        {
                _cleanup_free_ char *ok = xasprintf(M(",\"args\":[\"%s\"]"), s256);
                _cleanup_free_ char *bad = xasprintf(M(",\"args\":[\"a\",\"%s\"]"), s257);

                m = parse_ok(ok);
                ck_assert_str_eq(m->args[0], s256);
                manifest_free(m);
                check_error(bad, "args[1]", "more than the limit of 256 bytes");
        }
        {
                /* A permission of 256 bytes: name "a", ':' and a 254-byte scope. */
                _cleanup_free_ char *scope254 = repeat('s', 254), *scope255 = repeat('s', 255);
                _cleanup_free_ char *ok = xasprintf(M(",\"permissions\":[\"a:%s\"]"), scope254);
                _cleanup_free_ char *bad = xasprintf(M(",\"permissions\":[\"a:%s\"]"), scope255);

                m = parse_ok(ok);
                ck_assert_uint_eq(strlen(m->permissions[0]), MANIFEST_STRING_MAX);
                manifest_free(m);
                check_error(bad, "permissions[0]", "more than the limit of 256 bytes");
        }
        {
                _cleanup_free_ char *ok = xasprintf(M(",\"env\":{\"%s\":\"%s\"}"), k128, v1024);
                _cleanup_free_ char *bad_v = xasprintf(M(",\"env\":{\"V\":\"%s\"}"), v1025);
                _cleanup_free_ char *bad_k = xasprintf(M(",\"env\":{\"%s\":\"v\"}"), k129);
                ManifestError err;

                m = parse_ok(ok);
                ck_assert_uint_eq(strlen(m->env[0]), 128 + 1 + MANIFEST_ENV_VALUE_MAX);
                manifest_free(m);
                check_error(bad_v, "env.V", "is 1025 bytes long, more than the limit of 1024");
                check_error_e(bad_k, NULL, "invalid variable name", &err);
                /* The key is cut, not echoed whole. */
                ck_assert(strncmp(err.key, "env.KKKK", 8) == 0);
                ck_assert_ptr_nonnull(strstr(err.key, "..."));
        }
}
END_TEST

/* A JSON array of n strings: prefix followed by the index. */
static char *json_list(size_t n, const char *prefix)
{
        char *s = xasprintf("[");

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *item = xasprintf("%s%zu", prefix, i);
                char *t = xasprintf("%s%s\"%s\"", s, i ? "," : "", item);

                free(s);
                s = t;
        }
        char *t = xasprintf("%s]", s);
        free(s);
        return t;
}

START_TEST(test_list_bounds)
{
        static const struct {
                const char *key, *prefix;
        } lists[] = {
                {"args", "arg"},
                {"depends", "org.example.dep"},
                {"permissions", "p"},
        };
        Manifest *m;

        for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
                _cleanup_free_ char *l64 = json_list(MANIFEST_LIST_MAX, lists[i].prefix);
                _cleanup_free_ char *l65 = json_list(MANIFEST_LIST_MAX + 1, lists[i].prefix);
                _cleanup_free_ char *ok = xasprintf(M(",\"%s\":%s"), lists[i].key, l64);
                _cleanup_free_ char *bad = xasprintf(M(",\"%s\":%s"), lists[i].key, l65);

                m = parse_ok(ok);
                manifest_free(m);
                check_error(bad, lists[i].key, "has 65 entries, more than the limit of 64");
        }
        m = parse_ok(M(",\"args\":[]"));
        manifest_free(m);

        {
                _cleanup_free_ char *env64 = xasprintf("{\"V0\":\"0\""), *env65 = NULL, *ok = NULL,
                                    *bad = NULL;

                for (size_t i = 1; i < MANIFEST_LIST_MAX; i++) {
                        char *t = xasprintf("%s,\"V%zu\":\"%zu\"", env64, i, i);

                        free(env64);
                        env64 = t;
                }
                env65 = xasprintf("%s,\"V64\":\"64\"}", env64);
                ok = xasprintf(M(",\"env\":%s}"), env64);
                bad = xasprintf(M(",\"env\":%s"), env65);
                m = parse_ok(ok);
                ck_assert_uint_eq(strv_length(m->env), MANIFEST_LIST_MAX);
                ck_assert_str_eq(m->env[63], "V63=63");
                manifest_free(m);
                check_error(bad, "env", "has 65 entries, more than the limit of 64");
        }
}
END_TEST

START_TEST(test_file_size_bound)
{
        static const char base[] = M("");
        _cleanup_free_ char *buf = malloc(MANIFEST_MAX_SIZE + 2);
        ManifestError err;
        Manifest *m;

        ck_assert_ptr_nonnull(buf);
        /* Exactly MANIFEST_MAX_SIZE bytes: the manifest, then whitespace. */
        memset(buf, ' ', MANIFEST_MAX_SIZE + 1);
        memcpy(buf, base, sizeof base - 1);
        m = parse_ok_n(buf, MANIFEST_MAX_SIZE);
        manifest_free(m);
        /* One more byte is refused before jansson sees it. */
        check_error_n(buf, MANIFEST_MAX_SIZE + 1, -EFBIG, "", "more than the limit of 65536 bytes",
                      &err);
        ck_assert_int_eq(err.line, 0);
}
END_TEST

START_TEST(test_env)
{
        static const char *const reserved[] = {"CELLA_APP_ID", "CELLA_FD",   "CELLA_",
                                               "CELLA_X",      "LD_PRELOAD", "LD_LIBRARY_PATH",
                                               "LD_AUDIT"};
        static const char *const bad_names[] = {"1A", "A-B", "A B", "A=B", "\\u00c4"};
        Manifest *m;

        for (size_t i = 0; i < ELEMENTSOF(reserved); i++) {
                _cleanup_free_ char *j =
                        xasprintf(M(",\"env\":{\"OK\":\"1\",\"%s\":\"x\"}"), reserved[i]);
                _cleanup_free_ char *key = xasprintf("env.%s", reserved[i]);

                check_error(j, key, "this variable is reserved");
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_names); i++) {
                _cleanup_free_ char *j = xasprintf(M(",\"env\":{\"%s\":\"x\"}"), bad_names[i]);
                ManifestError err;

                check_error_e(j, NULL, "invalid variable name", &err);
                ck_assert(strncmp(err.key, "env.", 4) == 0);
        }
        check_error(M(",\"env\":{\"\":\"x\"}"), "env.", "invalid variable name");

        /* PATH may be overridden; names are case-sensitive, so cella_x is the app's own. */
        m = parse_ok(M(",\"env\":{\"PATH\":\"/app/bin\",\"cella_x\":\"1\",\"LD_DEBUG\":\"x\","
                       "\"_\":\"a=b\\nc\"}"));
        ck_assert_uint_eq(strv_length(m->env), 4);
        ck_assert_str_eq(m->env[0], "PATH=/app/bin");
        ck_assert_str_eq(m->env[1], "cella_x=1");
        ck_assert_str_eq(m->env[2], "LD_DEBUG=x");
        ck_assert_str_eq(m->env[3], "_=a=b\nc");
        manifest_free(m);
}
END_TEST

START_TEST(test_text)
{
        ManifestError err;
        Manifest *m;

        check_error(M(",\"name\":\"a\\tb\""), "name", "must not contain control characters");
        check_error(M(",\"name\":\"a\\nb\""), "name", "control characters");
        check_error(M(",\"name\":\"\\u009b31m\""), "name", "got \"\\u009b31m\"");
        check_error_n(M(",\"version\":\"\\u001b[31mred\""),
                      strlen(M(",\"version\":\"\\u001b[31mred\"")), -EINVAL, "version",
                      "got \"\\x1b[31mred\"", &err);
        check_error(M(",\"name\":\"\""), "name", "must not be empty");
        check_error(M(",\"version\":\"\""), "version", "must not be empty");
        m = parse_ok(M(",\"name\":\"Notizen \\u00fcber \\u2603 \\ud83d\\ude00\",\"version\":"
                       "\"1.0-rc1 (beta)\""));
        ck_assert_str_eq(m->name, "Notizen über ☃ \xf0\x9f\x98\x80");
        ck_assert_str_eq(m->version, "1.0-rc1 (beta)");
        manifest_free(m);
}
END_TEST

START_TEST(test_message_truncation)
{
        _cleanup_free_ char *longval = repeat('x', 10000);
        _cleanup_free_ char *longkey = repeat('k', 10000);
        _cleanup_free_ char *j1 =
                xasprintf("{\"id\":\"org.example.a\",\"runtime\":\"%s\",\"entry\":\"a\"}", longval);
        _cleanup_free_ char *j2 = xasprintf(M(",\"%s\":1"), longkey);
        _cleanup_free_ char *j3 = xasprintf(M(",\"limits\":{\"memory\":\"%sQ\"}"), longval);
        ManifestError err;

        check_error_e(j1, "runtime", "got \"xxxx", &err);
        ck_assert_ptr_nonnull(strstr(err.message, "...\""));
        ck_assert_uint_lt(strlen(err.message), MESSAGE_ECHO_MAX);

        check_error_e(j2, NULL, "unknown key 'kkkk", &err);
        ck_assert_uint_lt(strlen(err.key), 80);
        ck_assert_ptr_nonnull(strstr(err.key, "..."));
        ck_assert_uint_lt(strlen(err.message), 300);

        check_error_e(j3, "limits.memory", "got \"xxx", &err);
        ck_assert_ptr_nonnull(strstr(err.message, "...\""));

        /* A value is cut between characters, never inside one. */
        {
                _cleanup_free_ char *j = NULL, *smileys = NULL;
                const char *q, *end;

                smileys = malloc(30 * 4 + 1);
                ck_assert_ptr_nonnull(smileys);
                for (size_t i = 0; i < 30; i++)
                        memcpy(smileys + 4 * i, "\xf0\x9f\x98\x80", 4);
                smileys[120] = 0;
                j = xasprintf("{\"id\":\"org.example.a\",\"runtime\":\"%s\",\"entry\":\"a\"}",
                              smileys);
                check_error_e(j, "runtime", "got \"\xf0\x9f\x98\x80", &err);
                q = strstr(err.message, "got \"") + 5;
                end = strstr(q, "...\"");
                ck_assert_ptr_nonnull(end);
                ck_assert_uint_eq((size_t)(end - q) % 4, 0);
                ck_assert_uint_le((size_t)(end - q), 64);
                ck_assert_uint_gt((size_t)(end - q), 56);
        }

        /* Quotes and backslashes in a value are escaped, so the quoting stays unambiguous. */
        check_error("{\"id\":\"org.example.a\",\"runtime\":\"a\\\"b\\\\c\",\"entry\":\"a\"}",
                    "runtime", "got \"a\\\"b\\\\c\"");
}
END_TEST

START_TEST(test_to_string)
{
        ck_assert_str_eq(manifest_runtime_to_string(MANIFEST_RUNTIME_NATIVE), "native");
        ck_assert_str_eq(manifest_runtime_to_string(MANIFEST_RUNTIME_LUA), "lua");
        ck_assert_ptr_null(manifest_runtime_to_string((ManifestRuntime)2));
        ck_assert_ptr_null(manifest_runtime_to_string((ManifestRuntime)-1));
        ck_assert_str_eq(manifest_kind_to_string(MANIFEST_KIND_APP), "app");
        ck_assert_str_eq(manifest_kind_to_string(MANIFEST_KIND_SERVICE), "service");
        ck_assert_ptr_null(manifest_kind_to_string((ManifestKind)2));
        ck_assert_str_eq(manifest_restart_to_string(MANIFEST_RESTART_NO), "no");
        ck_assert_str_eq(manifest_restart_to_string(MANIFEST_RESTART_ON_FAILURE), "on-failure");
        ck_assert_str_eq(manifest_restart_to_string(MANIFEST_RESTART_ALWAYS), "always");
        ck_assert_ptr_null(manifest_restart_to_string((ManifestRestart)3));
}
END_TEST

START_TEST(test_api_edges)
{
        Manifest *m = NULL;
        ManifestError err;

        ck_assert_ptr_null(manifest_free(NULL));
        ck_assert_int_eq(manifest_parse(NULL, 10, "x", &m, &err), -EINVAL);
        ck_assert_int_eq(manifest_parse(M(""), strlen(M("")), "x", NULL, &err), -EINVAL);
        ck_assert_ptr_null(m);
        /* err may be NULL. */
        ck_assert_int_eq(manifest_parse("[]", 2, "x", &m, NULL), -EINVAL);
        ck_assert_int_eq(manifest_parse(M(""), strlen(M("")), NULL, &m, NULL), 0);
        ck_assert_ptr_nonnull(m);
        m = manifest_free(m);
        /* data need not be NUL-terminated: only size bytes are read. */
        ck_assert_int_eq(manifest_parse(M("") "garbage", strlen(M("")), "x", &m, &err), 0);
        m = manifest_free(m);
        ck_assert_ptr_null(m);
}
END_TEST

/* Writes data to dir/name. */
static void write_at(int dfd, const char *name, const char *data, size_t size)
{
        _cleanup_close_ int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, data, size), 0);
}

static int open_dir(const char *path)
{
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        return fd;
}

START_TEST(test_load_at)
{
        char base[] = "/tmp/cella-test-manifest-XXXXXX";
        char path[256], file[300];
        _cleanup_free_ char *big = NULL;
        ManifestError err;
        Manifest *m = NULL;
        int dfd;

        ck_assert_ptr_nonnull(mkdtemp(base));

        /* ok */
        snprintf(path, sizeof path, "%s/ok", base);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        dfd = open_dir(path);
        write_at(dfd, "manifest.json", M(""), strlen(M("")));
        ck_assert_int_eq(manifest_load_at(dfd, path, &m, &err), 0);
        ck_assert_str_eq(m->id, "org.example.a");
        m = manifest_free(m);
        /* Content errors carry the path the caller gave; a trailing '/' is not doubled. */
        write_at(dfd, "manifest.json", M(",\"kind\":1"), strlen(M(",\"kind\":1")));
        snprintf(file, sizeof file, "%s/", path);
        ck_assert_int_eq(manifest_load_at(dfd, file, &m, &err), -EINVAL);
        snprintf(file, sizeof file, "%s/manifest.json", path);
        ck_assert_str_eq(err.file, file);
        ck_assert_str_eq(err.key, "kind");
        ck_assert_ptr_null(m);
        /* One byte over the bound: -EFBIG, without parsing. */
        big = malloc(MANIFEST_MAX_SIZE + 1);
        ck_assert_ptr_nonnull(big);
        memset(big, ' ', MANIFEST_MAX_SIZE + 1);
        memcpy(big, M(""), strlen(M("")));
        write_at(dfd, "manifest.json", big, MANIFEST_MAX_SIZE);
        ck_assert_int_eq(manifest_load_at(dfd, "app", &m, &err), 0);
        m = manifest_free(m);
        write_at(dfd, "manifest.json", big, MANIFEST_MAX_SIZE + 1);
        ck_assert_int_eq(manifest_load_at(dfd, "app", &m, &err), -EFBIG);
        ck_assert_str_eq(err.file, "app/manifest.json");
        ck_assert_ptr_nonnull(strstr(err.message, "limit of 65536 bytes"));
        ck_assert_ptr_null(m);
        close(dfd);

        /* missing */
        snprintf(path, sizeof path, "%s/missing", base);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        dfd = open_dir(path);
        ck_assert_int_eq(manifest_load_at(dfd, "apps/missing", &m, &err), -ENOENT);
        ck_assert_str_eq(err.file, "apps/missing/manifest.json");
        ck_assert_str_eq(err.message, "no manifest.json in this folder");
        ck_assert_ptr_null(m);
        close(dfd);

        /* a symlink out of the folder, and even one inside it */
        snprintf(path, sizeof path, "%s/symlink", base);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        dfd = open_dir(path);
        ck_assert_int_eq(symlinkat("/etc/passwd", dfd, "manifest.json"), 0);
        ck_assert_int_eq(manifest_load_at(dfd, "symlink", &m, &err), -ELOOP);
        ck_assert_ptr_nonnull(strstr(err.message, "symbolic link"));
        ck_assert_ptr_null(m);
        ck_assert_int_eq(unlinkat(dfd, "manifest.json", 0), 0);
        write_at(dfd, "real.json", M(""), strlen(M("")));
        ck_assert_int_eq(symlinkat("real.json", dfd, "manifest.json"), 0);
        ck_assert_int_eq(manifest_load_at(dfd, "symlink", &m, &err), -ELOOP);
        ck_assert_ptr_null(m);
        close(dfd);

        /* a directory named manifest.json */
        snprintf(path, sizeof path, "%s/dir", base);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        dfd = open_dir(path);
        ck_assert_int_eq(mkdirat(dfd, "manifest.json", 0755), 0);
        ck_assert_int_eq(manifest_load_at(dfd, "dir", &m, &err), -EISDIR);
        ck_assert_ptr_nonnull(strstr(err.message, "is a directory"));
        ck_assert_ptr_null(m);
        close(dfd);

        /* a FIFO: refused at once, not waited on (the test would hang) */
        snprintf(path, sizeof path, "%s/fifo", base);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        dfd = open_dir(path);
        ck_assert_int_eq(mkfifoat(dfd, "manifest.json", 0644), 0);
        ck_assert_int_eq(manifest_load_at(dfd, "fifo", &m, &err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err.message, "not a regular file"));
        ck_assert_ptr_null(m);
        close(dfd);

        snprintf(path, sizeof path, "rm -rf %s", base);
        ck_assert_int_eq(system(path), 0);
}
END_TEST

/* A Lua app with extra members spliced in. */
#define L(extra) "{\"id\":\"org.example.a\",\"runtime\":\"lua\",\"entry\":\"main.lua\"" extra "}"

START_TEST(test_isolation)
{
        Manifest *m;

        /* Defaults: a sandbox of its own, no group, fair, priority 0. */
        m = parse_ok(L(""));
        ck_assert_int_eq(m->isolation, MANIFEST_ISOLATION_SANDBOX);
        ck_assert_ptr_null(m->group);
        ck_assert_int_eq(m->scheduler, MANIFEST_SCHEDULER_FAIR);
        ck_assert(!m->has_scheduler);
        ck_assert_int_eq(m->priority, 0);
        manifest_free(m);

        m = parse_ok(L(",\"isolation\":\"sandbox\""));
        ck_assert_int_eq(m->isolation, MANIFEST_ISOLATION_SANDBOX);
        manifest_free(m);

        m = parse_ok(L(",\"isolation\":\"packed\",\"group\":\"demo\""));
        ck_assert_int_eq(m->isolation, MANIFEST_ISOLATION_PACKED);
        ck_assert_str_eq(m->group, "demo");
        ck_assert(!m->has_scheduler);
        manifest_free(m);

        m = parse_ok(
                L(",\"isolation\":\"packed\",\"group\":\"a_b-9\",\"scheduler\":\"round-robin\","
                  "\"priority\":-20"));
        ck_assert_str_eq(m->group, "a_b-9");
        ck_assert_int_eq(m->scheduler, MANIFEST_SCHEDULER_ROUND_ROBIN);
        ck_assert(m->has_scheduler);
        ck_assert_int_eq(m->priority, -20);
        manifest_free(m);

        m = parse_ok(L(",\"isolation\":\"packed\",\"group\":\"g\",\"scheduler\":\"priority\","
                       "\"priority\":19"));
        ck_assert_int_eq(m->scheduler, MANIFEST_SCHEDULER_PRIORITY);
        ck_assert_int_eq(m->priority, 19);
        manifest_free(m);

        m = parse_ok(L(",\"isolation\":\"packed\",\"group\":\"g\",\"scheduler\":\"fair\""));
        ck_assert_int_eq(m->scheduler, MANIFEST_SCHEDULER_FAIR);
        ck_assert(m->has_scheduler);
        manifest_free(m);

        /* A priority alone is allowed for any Lua app (it only matters when packed). */
        m = parse_ok(L(",\"priority\":7"));
        ck_assert_int_eq(m->priority, 7);
        manifest_free(m);

        check_error(L(",\"isolation\":\"shared\""), "isolation",
                    "expected \"sandbox\" or \"packed\", got \"shared\"");
        check_error(L(",\"isolation\":1"), "isolation", "expected \"sandbox\" or \"packed\"");
        check_error(M(",\"isolation\":\"packed\",\"group\":\"g\""), "isolation",
                    "needs \"runtime\": \"lua\"");
        check_error(L(",\"isolation\":\"packed\""), "group",
                    "missing required key with \"isolation\": \"packed\"");
        check_error(L(",\"group\":\"g\""), "group", "only a packed app has a group");
        check_error(L(",\"isolation\":\"sandbox\",\"group\":\"g\""), "group",
                    "only a packed app has a group");
        check_error(L(",\"scheduler\":\"fair\""), "scheduler",
                    "only a packed group has a scheduler");
        check_error(L(",\"isolation\":\"packed\",\"group\":\"g\",\"scheduler\":\"cfs\""),
                    "scheduler", "expected \"fair\", \"priority\" or \"round-robin\", got \"cfs\"");
        check_error(M(",\"priority\":1"), "priority", "only a Lua app has a priority");
}
END_TEST

START_TEST(test_group_and_priority_bounds)
{
        _cleanup_free_ char *g64 = repeat('g', MANIFEST_GROUP_MAX);
        _cleanup_free_ char *g65 = repeat('g', MANIFEST_GROUP_MAX + 1);
        _cleanup_free_ char *ok = NULL, *bad = NULL;
        Manifest *m;

        /* Length 1 and 64 are fine, 0 and 65 are not. */
        ok = xasprintf(L(",\"isolation\":\"packed\",\"group\":\"%s\""), g64);
        m = parse_ok(ok);
        ck_assert_uint_eq(strlen(m->group), MANIFEST_GROUP_MAX);
        manifest_free(m);
        m = parse_ok(L(",\"isolation\":\"packed\",\"group\":\"x\""));
        ck_assert_str_eq(m->group, "x");
        manifest_free(m);
        bad = xasprintf(L(",\"isolation\":\"packed\",\"group\":\"%s\""), g65);
        check_error(bad, "group", "more than the limit of 64 bytes");
        check_error(L(",\"isolation\":\"packed\",\"group\":\"\""), "group", "must not be empty");

        /* [a-z0-9_-] only. */
        check_error(L(",\"isolation\":\"packed\",\"group\":\"Demo\""), "group",
                    "invalid group \"Demo\"");
        check_error(L(",\"isolation\":\"packed\",\"group\":\"a.b\""), "group", "invalid group");
        check_error(L(",\"isolation\":\"packed\",\"group\":\"a/b\""), "group", "invalid group");
        check_error(L(",\"isolation\":\"packed\",\"group\":\"a b\""), "group", "invalid group");
        check_error(L(",\"isolation\":\"packed\",\"group\":7"), "group", "expected a group name");

        /* -20..19, integers only. */
        check_error(L(",\"priority\":-21"), "priority", "an integer from -20 to 19");
        check_error(L(",\"priority\":20"), "priority", "an integer from -20 to 19");
        check_error(L(",\"priority\":1.5"), "priority", "an integer from -20 to 19");
        check_error(L(",\"priority\":\"1\""), "priority", "an integer from -20 to 19");
        m = parse_ok(L(",\"priority\":-20"));
        ck_assert_int_eq(m->priority, -20);
        manifest_free(m);
        m = parse_ok(L(",\"priority\":19"));
        ck_assert_int_eq(m->priority, 19);
        manifest_free(m);

        ck_assert_str_eq(manifest_isolation_to_string(MANIFEST_ISOLATION_PACKED), "packed");
        ck_assert_str_eq(manifest_scheduler_to_string(MANIFEST_SCHEDULER_ROUND_ROBIN),
                         "round-robin");
        ck_assert_ptr_null(manifest_scheduler_to_string((ManifestScheduler)3));
        ck_assert_ptr_null(manifest_isolation_to_string((ManifestIsolation)2));
}
END_TEST

/*
 * The tests generated from the parser's tables (manifest_enum_keys(),
 * manifest_number_keys()): every row gets its default, every value or bound
 * accepted, one past each bound and a value of the wrong type refused with a message
 * naming the key path and what the row takes, and a typo of its key or value a "did
 * you mean". A new row is tested without a line here, unless its values need other
 * keys set (rules between keys), which row_context() then says.
 */

/*
 * Members besides key=value that make a manifest valid (src/policy/manifest.c
 * check_isolation): a packed app needs a group, a scheduler a packed app.
 */
static const char *row_context(const char *key, const char *value)
{
        if (strcmp(key, "isolation") == 0 && strcmp(value, "\"packed\"") == 0)
                return ",\"group\":\"g\"";
        if (strcmp(key, "scheduler") == 0)
                return ",\"isolation\":\"packed\",\"group\":\"g\"";
        return "";
}

/*
 * A Lua app's manifest with parent.key (or key, when parent is "") set to value (JSON
 * text), or without it when value is NULL. runtime comes from value when key is
 * "runtime".
 */
static char *manifest_with(const char *parent, const char *key, const char *value)
{
        const char *runtime = strcmp(key, "runtime") == 0 ? "" : ",\"runtime\":\"lua\"";

        if (!value)
                return xasprintf("{\"id\":\"org.example.a\",\"entry\":\"main.lua\"%s}", runtime);
        if (parent[0])
                return xasprintf(
                        "{\"id\":\"org.example.a\",\"entry\":\"main.lua\"%s,\"%s\":{\"%s\":"
                        "%s}}",
                        runtime, parent, key, value);
        return xasprintf("{\"id\":\"org.example.a\",\"entry\":\"main.lua\"%s,\"%s\":%s%s}", runtime,
                         key, value, row_context(key, value));
}

/* key with its first two bytes swapped: a typo one edit away ("pcu" for "cpu"). */
static char *swap_first_two(const char *key)
{
        char *s = xasprintf("%s", key);

        ck_assert_uint_ge(strlen(s), 2);
        s[0] = key[1];
        s[1] = key[0];
        return s;
}

/* `"a", "b" or "c"`, as the parser lists a row's values (built here independently). */
static char *enum_list(const ManifestEnumKey *k)
{
        char *s = xasprintf("%s", "");

        for (size_t i = 0; i < k->n_values; i++) {
                char *t = xasprintf("%s%s\"%s\"", s,
                                    i == 0                 ? ""
                                    : i + 1 == k->n_values ? " or "
                                                           : ", ",
                                    k->values[i]);

                free(s);
                s = t;
        }
        return s;
}

static int enum_field(const Manifest *m, const ManifestEnumKey *k)
{
        return *(const int *)((const char *)m + k->offset);
}

START_TEST(test_enum_rows)
{
        size_t n = 0, n_numbers = 0;
        const ManifestEnumKey *keys = manifest_enum_keys(&n);
        const ManifestNumberKey *numbers = manifest_number_keys(&n_numbers);

        ck_assert_ptr_nonnull(keys);
        ck_assert_uint_ge(n, 5);
        for (size_t r = 0; r < n; r++) {
                const ManifestEnumKey *k = &keys[r];
                _cleanup_free_ char *list = enum_list(k), *absent = NULL, *bad = NULL,
                                    *bad_type = NULL, *typo_key = NULL, *typo_json = NULL;
                _cleanup_free_ char *expected =
                        xasprintf("expected %s, got \"no-such-value\"", list);
                ManifestError err;
                Manifest *m;

                /* The row itself: named values, no key twice across both tables. */
                ck_assert_uint_ge(k->n_values, 1);
                for (size_t i = 0; i < k->n_values; i++) {
                        ck_assert_ptr_nonnull(k->values[i]);
                        for (size_t j = 0; j < i; j++)
                                ck_assert_str_ne(k->values[i], k->values[j]);
                }
                for (size_t j = 0; j < r; j++)
                        ck_assert_str_ne(k->key, keys[j].key);
                for (size_t j = 0; j < n_numbers; j++)
                        ck_assert_msg(numbers[j].parent[0] || strcmp(numbers[j].key, k->key) != 0,
                                      "%s is in both tables", k->key);
                ck_assert_int_ge(k->default_value, 0);
                ck_assert_int_lt(k->default_value, (int)k->n_values);

                /* Absent: the default, or an error naming the values. */
                absent = manifest_with("", k->key, NULL);
                if (k->required) {
                        _cleanup_free_ char *missing =
                                xasprintf("missing required key; expected %s", list);

                        check_error(absent, k->key, missing);
                } else {
                        m = parse_ok(absent);
                        ck_assert_int_eq(enum_field(m, k), k->default_value);
                        if (k->set_offset != SIZE_MAX)
                                ck_assert(!*(bool *)((char *)m + k->set_offset));
                        manifest_free(m);
                }

                /* Every value, into its index. */
                for (size_t i = 0; i < k->n_values; i++) {
                        _cleanup_free_ char *v = xasprintf("\"%s\"", k->values[i]);
                        _cleanup_free_ char *j = manifest_with("", k->key, v);

                        m = parse_ok(j);
                        ck_assert_msg(enum_field(m, k) == (int)i, "%s %s -> %d, want %zu", k->key,
                                      v, enum_field(m, k), i);
                        if (k->set_offset != SIZE_MAX)
                                ck_assert(*(bool *)((char *)m + k->set_offset));
                        manifest_free(m);
                }

                /* An unknown value lists them all, and suggests none when none is near. */
                bad = manifest_with("", k->key, "\"no-such-value\"");
                check_error_e(bad, k->key, expected, &err);
                ck_assert_ptr_null(strstr(err.message, "did you mean"));

                /* A value differing in case only: refused, the right spelling suggested. */
                {
                        _cleanup_free_ char *upper = xasprintf("\"%s\"", k->values[0]);
                        _cleanup_free_ char *j = NULL, *hint = NULL;

                        for (char *p = upper + 1; *p != '"'; p++)
                                if (*p >= 'a' && *p <= 'z')
                                        *p = (char)(*p - 'a' + 'A');
                        j = manifest_with("", k->key, upper);
                        hint = xasprintf("got %s; did you mean \"%s\"?", upper, k->values[0]);
                        check_error(j, k->key, hint);
                }

                /* Not a string. */
                bad_type = manifest_with("", k->key, "1");
                {
                        _cleanup_free_ char *want = xasprintf("expected %s, got 1", list);

                        check_error(bad_type, k->key, want);
                }

                /* A typo of the key. */
                typo_key = swap_first_two(k->key);
                typo_json = xasprintf(M(",\"%s\":\"x\""), typo_key);
                {
                        _cleanup_free_ char *want = xasprintf("did you mean '%s'?", k->key);

                        check_error(typo_json, typo_key, want);
                }
        }
}
END_TEST

/* A value of row k in its kept unit, signed. */
typedef struct Value {
        bool negative;
        uint64_t magnitude;
} Value;

/* v as JSON for row k: an integer of bytes or a count, a decimal number of CPUs. */
static char *value_json(const ManifestNumberKey *k, Value v)
{
        if (k->unit == MANIFEST_UNIT_CPU)
                return xasprintf("%s%llu.%03llu", v.negative ? "-" : "",
                                 (unsigned long long)(v.magnitude / 1000),
                                 (unsigned long long)(v.magnitude % 1000));
        return xasprintf("%s%llu", v.negative ? "-" : "", (unsigned long long)v.magnitude);
}

/* v as messages and docs/manifest.md write a bound: "1M", "4194304", "-20", "0.001". */
static char *value_text(const ManifestNumberKey *k, Value v)
{
        char buf[32];

        switch (k->unit) {
        case MANIFEST_UNIT_BYTES:
                return xasprintf("%s", format_size(v.magnitude, buf, sizeof buf));
        case MANIFEST_UNIT_CPU:
                return xasprintf("%.15g", (double)v.magnitude / 1000.0);
        default:
                return xasprintf("%s%llu", v.negative ? "-" : "", (unsigned long long)v.magnitude);
        }
}

/* The field of row k in m, as decimal text, and v the same way, for comparing. */
static char *field_text(const Manifest *m, const ManifestNumberKey *k)
{
        const char *p = (const char *)m + k->offset;

        if (k->size == sizeof(int))
                return xasprintf("%d", *(const int *)p);
        return xasprintf("%llu", (unsigned long long)*(const uint64_t *)p);
}

static char *decimal(Value v)
{
        return xasprintf("%s%llu", v.negative && v.magnitude ? "-" : "",
                         (unsigned long long)v.magnitude);
}

static Value value_of(int64_t x)
{
        return (Value){x < 0, x < 0 ? (uint64_t)(-(x + 1)) + 1 : (uint64_t)x};
}

/* Parses parent.key = json and asserts the field holds want. */
static void check_number_ok(const ManifestNumberKey *k, const char *json, Value want)
{
        _cleanup_free_ char *j = manifest_with(k->parent, k->key, json);
        _cleanup_free_ char *got = NULL, *w = decimal(want);
        Manifest *m = parse_ok(j);

        got = field_text(m, k);
        ck_assert_msg(strcmp(got, w) == 0, "%s.%s = %s -> %s, want %s", k->parent, k->key, json,
                      got, w);
        manifest_free(m);
}

START_TEST(test_number_rows)
{
        size_t n = 0;
        const ManifestNumberKey *keys = manifest_number_keys(&n);

        ck_assert_ptr_nonnull(keys);
        ck_assert_uint_ge(n, 7);
        for (size_t r = 0; r < n; r++) {
                const ManifestNumberKey *k = &keys[r];
                Value min = value_of(k->min), max = {false, k->max};
                _cleanup_free_ char *path = k->parent[0] ? xasprintf("%s.%s", k->parent, k->key)
                                                         : xasprintf("%s", k->key);
                _cleanup_free_ char *lo = value_text(k, min), *hi = value_text(k, max);
                _cleanup_free_ char *bounds = k->max == UINT64_MAX
                                                      ? xasprintf(" of at least %s", lo)
                                                      : xasprintf(" from %s to %s", lo, hi);
                _cleanup_free_ char *absent = manifest_with(k->parent, k->key, NULL);
                _cleanup_free_ char *min_json = value_json(k, min), *typo = NULL, *typo_json = NULL;
                Manifest *m;

                /* The row itself: a known unit, a field that holds its bounds, no key twice. */
                ck_assert_int_le(k->unit, MANIFEST_UNIT_CPU);
                ck_assert(k->size == sizeof(uint64_t) || k->size == sizeof(int));
                ck_assert(k->min < 0 || (uint64_t)k->min <= k->max);
                if (k->size == sizeof(uint64_t))
                        ck_assert_int_ge(k->min, 0);
                else
                        ck_assert(k->min >= INT32_MIN && k->max <= INT32_MAX);
                for (size_t j = 0; j < r; j++)
                        ck_assert_msg(strcmp(k->parent, keys[j].parent) != 0 ||
                                              strcmp(k->key, keys[j].key) != 0,
                                      "%s twice", path);

                /* Absent: the default. */
                m = parse_ok(absent);
                {
                        _cleanup_free_ char *got = field_text(m, k);
                        _cleanup_free_ char *want = decimal(value_of(k->default_value));

                        ck_assert_str_eq(got, want);
                }
                manifest_free(m);

                /* Both bounds are in; for a size also written with a suffix. */
                check_number_ok(k, min_json, min);
                if (k->unit == MANIFEST_UNIT_BYTES) {
                        _cleanup_free_ char *s = xasprintf("\"%s\"", lo);

                        check_number_ok(k, s, min);
                }
                if (k->max != UINT64_MAX) {
                        _cleanup_free_ char *j = value_json(k, max);

                        check_number_ok(k, j, max);
                } else if (k->unit != MANIFEST_UNIT_CPU) {
                        /* No upper bound: the largest JSON integer. */
                        check_number_ok(k, "9223372036854775807", (Value){false, INT64_MAX});
                }

                /* One below the minimum, one above the maximum. */
                {
                        Value below = min.negative         ? (Value){true, min.magnitude + 1}
                                      : min.magnitude == 0 ? (Value){true, 1}
                                                           : (Value){false, min.magnitude - 1};
                        _cleanup_free_ char *vj = value_json(k, below);
                        _cleanup_free_ char *j = manifest_with(k->parent, k->key, vj);
                        _cleanup_free_ char *want =
                                xasprintf(" is less than the minimum of %s; expected ", lo);
                        ManifestError err;

                        check_error_e(j, path, want, &err);
                        ck_assert_msg(strstr(err.message, bounds), "%s: \"%s\" lacks%s", path,
                                      err.message, bounds);
                }
                if (k->max != UINT64_MAX) {
                        _cleanup_free_ char *vj = value_json(k, (Value){false, k->max + 1});
                        _cleanup_free_ char *j = manifest_with(k->parent, k->key, vj);
                        _cleanup_free_ char *want =
                                xasprintf(" is more than the maximum of %s; expected ", hi);
                        ManifestError err;

                        check_error_e(j, path, want, &err);
                        ck_assert_msg(strstr(err.message, bounds), "%s: \"%s\" lacks%s", path,
                                      err.message, bounds);
                }

                /* The wrong type: what the row takes, bounds and note included. */
                {
                        _cleanup_free_ char *j = manifest_with(k->parent, k->key, "true");
                        ManifestError err;

                        check_error_e(j, path, "expected ", &err);
                        ck_assert_msg(strstr(err.message, bounds) &&
                                              strstr(err.message, ", got true"),
                                      "%s: \"%s\"", path, err.message);
                        if (k->note)
                                ck_assert_ptr_nonnull(strstr(err.message, k->note));
                }

                /* A typo of the key. */
                typo = swap_first_two(k->key);
                typo_json = k->parent[0] ? manifest_with(k->parent, typo, "1")
                                         : xasprintf(M(",\"%s\":1"), typo);
                {
                        _cleanup_free_ char *key = k->parent[0]
                                                           ? xasprintf("%s.%s", k->parent, typo)
                                                           : xasprintf("%s", typo);
                        _cleanup_free_ char *want = xasprintf("did you mean '%s'?", k->key);

                        check_error(typo_json, key, want);
                }
        }
}
END_TEST

/*
 * docs/manifest.md is the format's reference: its row for every enum key lists the
 * values, says whether the key is required and shows its default; its row for every
 * number key shows the bounds as the parser takes them ("`1` to `4194304`", "at
 * least `1M`").
 */
START_TEST(test_docs_rows)
{
        _cleanup_free_ char *doc = NULL;
        size_t n_enums = 0, n_numbers = 0, size = 0;
        const ManifestEnumKey *enums = manifest_enum_keys(&n_enums);
        const ManifestNumberKey *numbers = manifest_number_keys(&n_numbers);
        int r;

        r = read_file_at(AT_FDCWD, CELLA_SOURCE_ROOT "/docs/manifest.md", 1 << 20, &doc, &size);
        ck_assert_msg(r == 0, "read docs/manifest.md: %s", strerror(-r));
        for (size_t i = 0; i < n_enums; i++) {
                const ManifestEnumKey *k = &enums[i];
                _cleanup_free_ char *start = xasprintf("\n| `%s` |", k->key), *line = NULL;
                _cleanup_free_ char *def = xasprintf("| `\"%s\"` |", k->values[k->default_value]);
                const char *p = strstr(doc, start), *end;

                ck_assert_msg(p, "docs/manifest.md has no row for %s", k->key);
                end = strchr(p + 1, '\n');
                line = strndup(p + 1, end ? (size_t)(end - p - 1) : strlen(p + 1));
                for (size_t v = 0; v < k->n_values; v++) {
                        _cleanup_free_ char *q = xasprintf("`\"%s\"`", k->values[v]);

                        ck_assert_msg(strstr(line, q), "docs/manifest.md: %s lacks %s", line, q);
                }
                ck_assert_msg(!!strstr(line, "| yes |") == k->required,
                              "docs/manifest.md: %s: required should be %s", line,
                              k->required ? "yes" : "no");
                if (!k->required)
                        ck_assert_msg(strstr(line, def), "docs/manifest.md: %s lacks default %s",
                                      line, def);
        }
        for (size_t i = 0; i < n_numbers; i++) {
                const ManifestNumberKey *k = &numbers[i];
                _cleanup_free_ char *start = xasprintf("\n| `%s` |", k->key), *line = NULL;
                _cleanup_free_ char *lo = value_text(k, value_of(k->min));
                _cleanup_free_ char *hi = value_text(k, (Value){false, k->max});
                _cleanup_free_ char *bounds = k->max == UINT64_MAX
                                                      ? xasprintf("at least `%s`", lo)
                                                      : xasprintf("`%s` to `%s`", lo, hi);
                const char *p = strstr(doc, start), *end;

                ck_assert_msg(p, "docs/manifest.md has no row for %s", k->key);
                end = strchr(p + 1, '\n');
                line = strndup(p + 1, end ? (size_t)(end - p - 1) : strlen(p + 1));
                ck_assert_msg(strstr(line, bounds), "docs/manifest.md: %s lacks %s", line, bounds);
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("manifest");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_full);
        tcase_add_test(tc, test_minimal_defaults);
        tcase_add_test(tc, test_autostart);
        tcase_add_test(tc, test_syntax_error);
        tcase_add_test(tc, test_not_object);
        tcase_add_test(tc, test_missing_required);
        tcase_add_test(tc, test_wrong_types);
        tcase_add_test(tc, test_bad_enums);
        tcase_add_test(tc, test_unknown_keys);
        tcase_add_test(tc, test_ids);
        tcase_add_test(tc, test_entry);
        tcase_add_test(tc, test_sizes);
        tcase_add_test(tc, test_cpu);
        tcase_add_test(tc, test_counts);
        tcase_add_test(tc, test_duplicates);
        tcase_add_test(tc, test_permissions);
        tcase_add_test(tc, test_nul);
        tcase_add_test(tc, test_string_bounds);
        tcase_add_test(tc, test_list_bounds);
        tcase_add_test(tc, test_file_size_bound);
        tcase_add_test(tc, test_env);
        tcase_add_test(tc, test_text);
        tcase_add_test(tc, test_message_truncation);
        tcase_add_test(tc, test_to_string);
        tcase_add_test(tc, test_api_edges);
        tcase_add_test(tc, test_load_at);
        tcase_add_test(tc, test_isolation);
        tcase_add_test(tc, test_group_and_priority_bounds);
        tcase_add_test(tc, test_enum_rows);
        tcase_add_test(tc, test_number_rows);
        tcase_add_test(tc, test_docs_rows);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
