/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Capability catalogue tests: the table itself (bits, levels, scopes, and that
 * docs/capabilities.md lists every name), parsing "name[:scope]", the scope matcher
 * for topics, app ids, host:port and roots (including pattern-against-pattern
 * coverage), and the matcher's bounds with the worst inputs they allow.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "policy/capability.h"
#include "policy/manifest.h"

#ifndef CELLA_SOURCE_ROOT
#error "CELLA_SOURCE_ROOT must name the source tree (tests/unit/meson.build)"
#endif

static char *repeat(char c, size_t n)
{
        char *s = malloc(n + 1);

        ck_assert_ptr_nonnull(s);
        memset(s, c, n);
        s[n] = 0;
        return s;
}

static const CapabilityInfo *must(const char *name)
{
        const CapabilityInfo *c = capability_lookup(name, strlen(name));

        ck_assert_msg(c, "%s is not in the catalogue", name);
        return c;
}

START_TEST(test_catalogue)
{
        static const struct {
                const char *name;
                CapabilityLevel level;
                bool gesture;
                CapabilityScopeKind scope;
        } want[] = {
                {"storage", CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_NONE},
                {"timer", CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_NONE},
                {"notify", CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_NONE},
                {"bus.publish", CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_TOPIC},
                {"bus.subscribe", CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_TOPIC},
                {"bus.send", CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_APP_ID},
                {"app.launch", CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_APP_ID},
                {"app.signal", CAPABILITY_SIGNATURE, false, CAPABILITY_SCOPE_APP_ID},
                {"fs.read", CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_ROOT},
                {"fs.write", CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_ROOT},
                {"location", CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_NONE},
                {"camera", CAPABILITY_DANGEROUS, true, CAPABILITY_SCOPE_NONE},
                {"microphone", CAPABILITY_DANGEROUS, true, CAPABILITY_SCOPE_NONE},
                {"contacts", CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_NONE},
                {"sensors", CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_NONE},
                {"system.admin", CAPABILITY_SIGNATURE, false, CAPABILITY_SCOPE_NONE},
                {"net.connect", CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_HOST_PORT},
                {"net.internet", CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_NONE},
                {"net.listen", CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_PORT},
                {"net.group", CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_NAME},
        };
        const CapabilityInfo *cat;
        CapabilityMask all = 0;
        size_t n;

        cat = capability_catalogue(&n);
        ck_assert_uint_le(n, 64);
        ck_assert_uint_ge(n, ELEMENTSOF(want));
        for (size_t i = 0; i < n; i++) {
                ck_assert_uint_eq(cat[i].bit, i);
                ck_assert_msg(!(all & capability_bit(&cat[i])), "%s: bit reused", cat[i].name);
                all |= capability_bit(&cat[i]);
                ck_assert_ptr_eq(capability_lookup(cat[i].name, strlen(cat[i].name)), &cat[i]);
                ck_assert_uint_le(strlen(cat[i].name), CAPABILITY_NAME_MAX);
                ck_assert_ptr_nonnull(cat[i].description);
                ck_assert_msg((cat[i].scope == CAPABILITY_SCOPE_NONE) ==
                                      (cat[i].scope_meaning == NULL),
                              "%s: scope meaning", cat[i].name);
                ck_assert(!(cat[i].scope == CAPABILITY_SCOPE_NONE && cat[i].scope_required));
                /* Every name passes the manifest parser's form check. */
                {
                        char json[256];
                        ManifestError err;
                        Manifest *m = NULL;

                        snprintf(json, sizeof json,
                                 "{\"id\":\"org.a.b\",\"runtime\":\"native\",\"entry\":\"x\","
                                 "\"permissions\":[\"%s\"]}",
                                 cat[i].name);
                        ck_assert_int_eq(manifest_parse(json, strlen(json), "t", &m, &err), 0);
                        manifest_free(m);
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                const CapabilityInfo *c = must(want[i].name);

                ck_assert_msg(c->level == want[i].level, "%s: level", want[i].name);
                ck_assert_msg(c->gesture == want[i].gesture, "%s: gesture", want[i].name);
                ck_assert_msg(c->scope == want[i].scope, "%s: scope", want[i].name);
        }
        ck_assert_ptr_eq(capability_suggest("fs.wrte", 7), capability_lookup("fs.write", 8));
        ck_assert_ptr_eq(capability_suggest("notfy", 5), capability_lookup("notify", 6));
        ck_assert_ptr_null(capability_suggest("notify", 6)); /* a real one needs no hint */
        ck_assert_ptr_null(capability_suggest("zzzzz", 5));
        ck_assert_ptr_null(capability_lookup("camera.x", 8));
        ck_assert_ptr_null(capability_lookup("camer", 5));
        ck_assert_ptr_null(capability_lookup("", 0));
        ck_assert_ptr_null(capability_lookup(NULL, 3));
        /* The length is honoured: "storage" inside a longer buffer. */
        ck_assert_ptr_eq(capability_lookup("storagexyz", 7), must("storage"));
        ck_assert_str_eq(capability_level_to_string(CAPABILITY_NORMAL), "normal");
        ck_assert_str_eq(capability_level_to_string(CAPABILITY_DANGEROUS), "dangerous");
        ck_assert_str_eq(capability_level_to_string(CAPABILITY_SIGNATURE), "signature");
}
END_TEST

/* docs/capabilities.md is the catalogue's documentation: every name is in its table. */
START_TEST(test_docs_list_every_name)
{
        _cleanup_free_ char *doc = NULL;
        const CapabilityInfo *cat;
        size_t n, size;
        int r;

        r = read_file_at(AT_FDCWD, CELLA_SOURCE_ROOT "/docs/capabilities.md", 1 << 20, &doc, &size);
        ck_assert_msg(r == 0, "read docs/capabilities.md: %s", strerror(-r));
        cat = capability_catalogue(&n);
        for (size_t i = 0; i < n; i++) {
                char row[64];

                snprintf(row, sizeof row, "| `%s` | %s |", cat[i].name,
                         capability_level_to_string(cat[i].level));
                ck_assert_msg(strstr(doc, row), "docs/capabilities.md has no row starting %s", row);
        }
}
END_TEST

START_TEST(test_parse)
{
        static const char *const good[] = {
                "storage",
                "camera",
                "bus.publish:notes.*",
                "bus.publish:**",
                "bus.subscribe:clock.tick",
                "bus.subscribe:a-b_C.*x*",
                "bus.send:org.example.*",
                "app.launch:org.example.viewer",
                "app.signal",
                "app.signal:org.**",
                "fs.read:documents",
                "fs.write:music-2",
                "net.connect:api.example.com:443",
                "net.connect:*.example.com:*",
                "net.connect:**:443",
                "net.connect:127.0.0.1:8080",
                "net.connect:[::1]:443",
                "net.connect:[2001:db8::7]:80",
                "net.connect:[::ffff:127.0.0.1]:80",
                "net.connect:[fe80::1%lo]:80",
                "net.connect:10.0.0.1:*",
                "net.connect:a:65535",
                "net.connect:a:1",
        };
        static const struct {
                const char *text;
                int error;
        } bad[] = {
                {"", -EINVAL},
                {"nosuch", -ENOENT},
                {"storage.x", -ENOENT},
                {"Storage", -ENOENT},
                {"storage:", -EINVAL},
                {"storage:x", -EINVAL},    /* takes no scope */
                {"camera:front", -EINVAL}, /* takes no scope */
                {"bus.publish", -EINVAL},  /* needs a scope */
                {"net.connect", -EINVAL},  /* needs a scope */
                {"fs.read", -EINVAL},      /* needs a scope */
                {"bus.publish:", -EINVAL},
                {"bus.publish:.a", -EINVAL},
                {"bus.publish:a.", -EINVAL},
                {"bus.publish:a..b", -EINVAL},
                {"bus.publish:a/b", -EINVAL},
                {"bus.publish:a b", -EINVAL},
                {"bus.publish:a.**x", -EINVAL}, /* ** only as a whole segment */
                {"bus.publish:***", -EINVAL},
                {"bus.publish:a?", -EINVAL},
                {"bus.publish:[ab]", -EINVAL},
                {"bus.send:1org.x", -EINVAL}, /* app id label starts with a digit */
                {"bus.send:org.-x", -EINVAL},
                {"fs.read:Documents", -EINVAL},
                {"fs.read:doc*", -EINVAL}, /* roots take no globs */
                {"fs.read:a/b", -EINVAL},
                {"fs.read:../etc", -EINVAL},
                {"net.connect:example.com", -EINVAL},
                {"net.connect:example.com:", -EINVAL},
                {"net.connect:example.com:0", -EINVAL},
                {"net.connect:example.com:65536", -EINVAL},
                {"net.connect:example.com:0443", -EINVAL},
                {"net.connect:example.com:44a", -EINVAL},
                {"net.connect:Example.com:443", -EINVAL}, /* lowercase only */
                {"net.connect::443", -EINVAL},
                /* Addresses: one spelling each, whole, IPv6 in brackets. */
                {"net.connect:::1:443", -EINVAL},
                {"net.connect:127.1:80", -EINVAL},
                {"net.connect:2130706433:80", -EINVAL},
                {"net.connect:0x7f.0.0.1:80", -EINVAL},
                {"net.connect:127.0.0.*:80", -EINVAL},
                {"net.connect:[::1:80", -EINVAL},
                {"net.connect:[::*]:80", -EINVAL},
                {"net.connect:[0:0::1]:80", -EINVAL},
                {"net.connect:[127.0.0.1]:80", -EINVAL},
                {"net.connect:[::ffff:7f00:1]:80", -EINVAL},
                {"net.connect:256.1.1.1:80", -EINVAL},
                {"net.connect:example.123:80", -EINVAL},
                {"net.connect:a_b.com:443", -EINVAL},
        };
        CapabilityRight r;
        const char *why;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                why = NULL;
                ck_assert_msg(capability_right_parse(good[i], &r, &why) == 0, "%s: %s", good[i],
                              why);
                const char *colon = strchr(good[i], ':');

                ck_assert_str_eq(r.scope, colon ? colon + 1 : "");
                ck_assert_ptr_eq(r.cap, capability_lookup(good[i], colon ? (size_t)(colon - good[i])
                                                                         : strlen(good[i])));
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                why = NULL;
                ck_assert_msg(capability_right_parse(bad[i].text, &r, &why) == bad[i].error,
                              "'%s' should fail with %d", bad[i].text, bad[i].error);
                ck_assert_msg(why && *why, "'%s': no reason", bad[i].text);
        }
        ck_assert_int_eq(capability_right_parse(NULL, &r, NULL), -EINVAL);
}
END_TEST

/* A right of exactly CAPABILITY_RIGHT_MAX - 1 bytes parses; one more byte does not. */
START_TEST(test_parse_length_bound)
{
        /* "bus.publish:" + segments of 63 'a' joined by '.' up to the length. */
        char text[CAPABILITY_RIGHT_MAX + 8];
        CapabilityRight r;
        size_t len;

        strcpy(text, "bus.publish:");
        len = strlen(text);
        while (len < CAPABILITY_RIGHT_MAX - 1) {
                if (text[len - 1] != ':' && (len - 12) % 64 == 63)
                        text[len++] = '.';
                else
                        text[len++] = 'a';
        }
        text[len] = 0;
        ck_assert_uint_eq(strlen(text), CAPABILITY_RIGHT_MAX - 1);
        ck_assert_int_eq(capability_right_parse(text, &r, NULL), 0);
        ck_assert_uint_eq(strlen(r.scope), CAPABILITY_RIGHT_MAX - 1 - 12);
        text[len++] = 'a';
        text[len] = 0;
        ck_assert_int_eq(capability_right_parse(text, &r, NULL), -ENAMETOOLONG);
}
END_TEST

typedef struct MatchCase {
        const char *pattern, *subject;
        bool match;
} MatchCase;

static void check_cases(CapabilityScopeKind kind, const MatchCase *c, size_t n)
{
        for (size_t i = 0; i < n; i++)
                ck_assert_msg(capability_scope_match(kind, c[i].pattern, c[i].subject) ==
                                      c[i].match,
                              "'%s' vs '%s': expected %s", c[i].pattern, c[i].subject,
                              c[i].match ? "a match" : "no match");
}

START_TEST(test_topic_match)
{
        static const MatchCase cases[] = {
                /* '*' is one segment, or a run inside one segment. */
                {"notes.*", "notes.a", true},
                {"notes.*", "notes.a.b", false},
                {"notes.*", "notes", false},
                {"notes.*", "notesx.a", false},
                {"*.tick", "clock.tick", true},
                {"*.tick", "a.clock.tick", false},
                {"*", "a", true},
                {"*", "a.b", false},
                {"notes.draft-*", "notes.draft-1", true},
                {"notes.draft-*", "notes.draft-", true},
                {"notes.draft-*", "notes.final-1", false},
                {"n*s.*", "notes.x", true},
                {"*a*b*", "xxaxxbxx", true},
                {"*a*b*", "xxbxxaxx", false},
                /* '**' is one or more whole segments. */
                {"notes.**", "notes.a", true},
                {"notes.**", "notes.a.b.c", true},
                {"notes.**", "notes", false},
                {"**", "a", true},
                {"**", "a.b.c.d", true},
                {"**.tick", "clock.tick", true},
                {"**.tick", "a.b.tick", true},
                {"**.tick", "tick", false},
                {"a.**.z", "a.b.z", true},
                {"a.**.z", "a.b.c.d.z", true},
                {"a.**.z", "a.z", false},
                {"a.**.z", "a.b.c.d.y", false},
                {"a.**.b.**.c", "a.x.b.y.c", true},
                {"a.**.b.**.c", "a.b.b.b.c", true},
                {"a.**.b.**.c", "a.b.c", false},
                {"**.**", "a", false},
                {"**.**", "a.b", true},
                /* Literal, case-sensitive. */
                {"clock.tick", "clock.tick", true},
                {"clock.tick", "clock.Tick", false},
                {"clock.tick", "clock.tick.x", false},
                /* Subjects that are patterns: covered only when every match is. */
                {"notes.*", "notes.*", true},
                {"notes.**", "notes.*", true},
                {"notes.**", "notes.**", true},
                {"**", "**", true},
                {"notes.*", "notes.**", false},
                {"*", "**", false},
                {"notes.a*", "notes.ab*", true},
                {"notes.ab*", "notes.a*", false},
                {"notes.a", "notes.*", false},
                /* Syntax errors on either side never match. */
                {"notes..a", "notes..a", false},
                {"", "", false},
                {"notes.a", "", false},
                {"a b", "a b", false},
        };

        check_cases(CAPABILITY_SCOPE_TOPIC, cases, ELEMENTSOF(cases));
        ck_assert(!capability_scope_match(CAPABILITY_SCOPE_TOPIC, NULL, "a"));
        ck_assert(!capability_scope_match(CAPABILITY_SCOPE_TOPIC, "a", NULL));
        ck_assert(!capability_scope_match(CAPABILITY_SCOPE_NONE, "a", "a"));
}
END_TEST

START_TEST(test_app_id_match)
{
        static const MatchCase cases[] = {
                {"org.example.*", "org.example.viewer", true},
                {"org.example.*", "org.example.viewer.pro", false},
                {"org.example.**", "org.example.viewer.pro", true},
                {"org.example.viewer", "org.example.viewer", true},
                {"org.example.viewer", "org.example.Viewer", false},
                {"org.*.viewer", "org.example.viewer", true},
                {"org.example.*", "org.example", false},
                {"org.example.*", "1org.example.a", false},
        };

        check_cases(CAPABILITY_SCOPE_APP_ID, cases, ELEMENTSOF(cases));
}
END_TEST

START_TEST(test_host_match)
{
        static const MatchCase cases[] = {
                {"api.example.com:443", "api.example.com:443", true},
                {"api.example.com:443", "api.example.com:80", false},
                {"api.example.com:443", "api.example.org:443", false},
                {"api.example.com:443", "evil.api.example.com:443", false},
                /* "*." is one label, RFC 6125-style. */
                {"*.example.com:443", "api.example.com:443", true},
                {"*.example.com:443", "example.com:443", false},
                {"*.example.com:443", "a.b.example.com:443", false},
                {"*.example.com:443", "api.example.com.evil.net:443", false},
                {"*.example.com:443", "apiexample.com:443", false},
                {"**.example.com:443", "a.b.example.com:443", true},
                {"**.example.com:443", "example.com:443", false},
                {"api.example.com:*", "api.example.com:8443", true},
                {"api.example.com:*", "api.example.com:*", true},
                {"api.example.com:443", "api.example.com:*", false},
                {"**:443", "anything.at.all:443", true},
                {"**:*", "a:1", true},
                {"127.0.0.1:8080", "127.0.0.1:8080", true},
                /* Addresses match themselves only: no pattern reaches one. */
                {"127.0.0.*:8080", "127.0.0.2:8080", false},
                {"**:8080", "127.0.0.1:8080", false},
                {"**:*", "[::1]:80", false},
                {"*:80", "10.0.0.1:80", false},
                {"[::1]:80", "[::1]:80", true},
                {"[::1]:80", "[::1]:81", false},
                {"[::1]:*", "[::1]:81", true},
                {"127.0.0.1:8080", "127.1:8080", false},
                {"127.0.0.1:8080", "[::ffff:127.0.0.1]:8080", false},
                {"api.example.com:443", "API.example.com:443",
                 false}, /* lowercased by the broker */
                {"api.example.com:443", "api.example.com", false},
                {"api.example.com", "api.example.com", false},
        };

        check_cases(CAPABILITY_SCOPE_HOST_PORT, cases, ELEMENTSOF(cases));
}
END_TEST

/* net.connect's level by its scope: a name normal, a pattern or an address that is
 * not public dangerous (capability_right_level()). */
START_TEST(test_right_level)
{
        static const struct {
                const char *right;
                CapabilityLevel level;
        } cases[] = {
                {"net.connect:api.example.com:443", CAPABILITY_NORMAL},
                {"net.connect:api.example.com:*", CAPABILITY_NORMAL},
                {"net.connect:8.8.8.8:53", CAPABILITY_NORMAL},
                {"net.connect:[2001:4860::1]:443", CAPABILITY_NORMAL},
                {"net.connect:*.example.com:443", CAPABILITY_DANGEROUS},
                {"net.connect:**:443", CAPABILITY_DANGEROUS},
                {"net.connect:127.0.0.1:5432", CAPABILITY_DANGEROUS},
                {"net.connect:[::1]:5432", CAPABILITY_DANGEROUS},
                {"net.connect:10.0.0.1:80", CAPABILITY_DANGEROUS},
                {"net.connect:169.254.169.254:80", CAPABILITY_DANGEROUS},
                {"net.connect:[::ffff:10.0.0.1]:80", CAPABILITY_DANGEROUS},
                {"net.connect:[fd00:ec2::254]:80", CAPABILITY_DANGEROUS},
                {"net.group:lab", CAPABILITY_DANGEROUS},
                {"net.listen:8080", CAPABILITY_DANGEROUS},
                {"storage", CAPABILITY_NORMAL},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                CapabilityRight r;

                ck_assert_msg(capability_right_parse(cases[i].right, &r, NULL) == 0, "%s",
                              cases[i].right);
                ck_assert_msg(capability_right_level(&r) == cases[i].level, "%s: level %s",
                              cases[i].right,
                              capability_level_to_string(capability_right_level(&r)));
        }
}
END_TEST

START_TEST(test_root_match)
{
        static const MatchCase cases[] = {
                {"documents", "documents", true}, {"documents", "documents2", false},
                {"documents", "document", false}, {"doc*", "documents", false},
                {"*", "documents", false},        {"Documents", "Documents", false},
        };

        check_cases(CAPABILITY_SCOPE_ROOT, cases, ELEMENTSOF(cases));
}
END_TEST

START_TEST(test_port_and_name_match)
{
        static const MatchCase ports[] = {
                {"8080", "8080", true}, {"8080", "80", false},    {"80", "080", false},
                {"*", "80", false},     {"65535", "65535", true}, {"65536", "65536", false},
                {"0", "0", false},
        };
        static const MatchCase names[] = {
                {"backend", "backend", true},
                {"backend", "backend2", false},
                {"back*", "backend", false},
                {"Backend", "Backend", false},
        };

        check_cases(CAPABILITY_SCOPE_PORT, ports, ELEMENTSOF(ports));
        check_cases(CAPABILITY_SCOPE_NAME, names, ELEMENTSOF(names));
        ck_assert_int_eq(capability_right_parse("net.listen:8080", &(CapabilityRight){}, NULL), 0);
        ck_assert_int_eq(capability_right_parse("net.listen:0", &(CapabilityRight){}, NULL),
                         -EINVAL);
        ck_assert_int_eq(capability_right_parse("net.listen", &(CapabilityRight){}, NULL), -EINVAL);
        ck_assert_int_eq(capability_right_parse("net.group:web", &(CapabilityRight){}, NULL), 0);
        ck_assert_int_eq(capability_right_parse("net.group:Web", &(CapabilityRight){}, NULL),
                         -EINVAL);
        ck_assert_int_eq(capability_right_parse("net.internet", &(CapabilityRight){}, NULL), 0);
        ck_assert_int_eq(capability_right_parse("net.internet:x", &(CapabilityRight){}, NULL),
                         -EINVAL);
}
END_TEST

static CapabilityRight right(const char *text)
{
        CapabilityRight r;
        const char *why = NULL;

        ck_assert_msg(capability_right_parse(text, &r, &why) == 0, "%s: %s", text, why);
        return r;
}

START_TEST(test_covers)
{
        CapabilityRight a, b;

        a = right("camera");
        b = right("camera");
        ck_assert(capability_right_covers(&a, &b));
        b = right("microphone");
        ck_assert(!capability_right_covers(&a, &b));
        a = right("net.connect:*.example.com:443");
        b = right("net.connect:api.example.com:443");
        ck_assert(capability_right_covers(&a, &b));
        ck_assert(!capability_right_covers(&b, &a));
        /* An unscoped right that takes an optional scope covers every scope... */
        a = right("app.signal");
        b = right("app.signal:org.x.y");
        ck_assert(capability_right_covers(&a, &b));
        /* ... and is covered only by an unscoped one. */
        ck_assert(!capability_right_covers(&b, &a));
        a = right("fs.read:documents");
        b = right("fs.write:documents");
        ck_assert(!capability_right_covers(&a, &b));
        ck_assert(!capability_right_covers(NULL, &b));
}
END_TEST

START_TEST(test_mask)
{
        char *rights[] = {"storage", "camera", "bus.publish:a.*", "bus.publish:b.*", NULL};
        char *bad[] = {"storage", "nosuch", NULL};
        CapabilityMask m = 42;

        ck_assert_int_eq(capability_mask_of(rights, &m), 0);
        ck_assert_uint_eq(m, capability_bit(must("storage")) | capability_bit(must("camera")) |
                                     capability_bit(must("bus.publish")));
        ck_assert_int_eq(capability_mask_of(NULL, &m), 0);
        ck_assert_uint_eq(m, 0);
        m = 42;
        ck_assert_int_eq(capability_mask_of(bad, &m), -ENOENT);
        ck_assert_uint_eq(m, 42); /* untouched on failure */
}
END_TEST

START_TEST(test_check_manifest)
{
        static const char ok[] = "{\"id\":\"org.a.b\",\"runtime\":\"native\",\"entry\":\"x\","
                                 "\"permissions\":[\"storage\",\"net.connect:a.com:443\"]}";
        static const char ko[] = "{\"id\":\"org.a.b\",\"runtime\":\"native\",\"entry\":\"x\","
                                 "\"permissions\":[\"storage\",\"camera:front\"]}";
        _cleanup_(manifest_freep) Manifest *m1 = NULL;
        _cleanup_(manifest_freep) Manifest *m2 = NULL;
        const char *bad = NULL, *why = NULL;
        ManifestError err;

        ck_assert_int_eq(manifest_parse(ok, strlen(ok), "t", &m1, &err), 0);
        ck_assert_int_eq(capability_check_manifest(m1, &bad, &why), 0);
        ck_assert_int_eq(manifest_parse(ko, strlen(ko), "t", &m2, &err), 0);
        ck_assert_int_eq(capability_check_manifest(m2, &bad, &why), -EINVAL);
        ck_assert_str_eq(bad, "camera:front");
        ck_assert_str_eq(why, "this right takes no scope");
        ck_assert_int_eq(capability_check_manifest(NULL, NULL, NULL), -EINVAL);
}
END_TEST

/* Namespaces: what an app owns (capability_scope_within), what a pattern may reach
 * (capability_scope_may_reach, conservative), and exports. */
START_TEST(test_namespaces)
{
        const CapabilityScopeKind T = CAPABILITY_SCOPE_TOPIC, A = CAPABILITY_SCOPE_APP_ID;
        char buf[CAPABILITY_RIGHT_MAX];
        const char *why = NULL;
        size_t n;
        const CapabilityInfo *c = capability_catalogue(&n);

        /* only the rights whose scope names apps reach them */
        for (size_t i = 0; i < n; i++)
                ck_assert_msg(c[i].reaches_apps == (strcmp(c[i].name, "bus.publish") == 0 ||
                                                    strcmp(c[i].name, "bus.subscribe") == 0 ||
                                                    strcmp(c[i].name, "bus.send") == 0 ||
                                                    strcmp(c[i].name, "app.launch") == 0 ||
                                                    strncmp(c[i].name, "ipc.", 4) == 0),
                              "%s", c[i].name);

        ck_assert(capability_scope_within(T, "org.a.clock", "org.a.clock"));
        ck_assert(capability_scope_within(T, "org.a.clock.tick", "org.a.clock"));
        ck_assert(capability_scope_within(T, "org.a.clock.*", "org.a.clock"));
        ck_assert(capability_scope_within(T, "org.a.clock.**", "org.a.clock"));
        ck_assert(!capability_scope_within(T, "org.a.*", "org.a.clock"));
        ck_assert(!capability_scope_within(T, "org.a.*.tick", "org.a.clock"));
        ck_assert(!capability_scope_within(T, "org.a.clocks.tick", "org.a.clock"));
        ck_assert(!capability_scope_within(T, "org.a", "org.a.clock"));
        ck_assert(!capability_scope_within(T, "**", "org.a.clock"));
        ck_assert(!capability_scope_within(T, "clock.tick", "org.a.clock"));
        ck_assert(capability_scope_within(A, "org.a.clock", "org.a.clock"));
        ck_assert(!capability_scope_within(A, "org.a.clock.x", "org.a.clock"));
        ck_assert(!capability_scope_within(A, "org.a.*", "org.a.clock"));
        ck_assert(!capability_scope_within(CAPABILITY_SCOPE_ROOT, "documents", "org.a.clock"));
        ck_assert(!capability_scope_within(T, "org.a.clock", "not an id"));

        ck_assert(capability_scope_may_reach(T, "**", "org.a.b"));
        ck_assert(capability_scope_may_reach(T, "org.**", "org.a.b"));
        ck_assert(capability_scope_may_reach(T, "org.a.**", "org.a.b"));
        ck_assert(capability_scope_may_reach(T, "org.a.*", "org.a.b"));
        ck_assert(capability_scope_may_reach(T, "org.*.b.x", "org.a.b"));
        ck_assert(capability_scope_may_reach(T, "org.a.b.x.y", "org.a.b"));
        ck_assert(!capability_scope_may_reach(T, "org.a.c.**", "org.a.b"));
        ck_assert(!capability_scope_may_reach(T, "org.a", "org.a.b"));
        ck_assert(!capability_scope_may_reach(T, "org.*", "org.a.b"));
        ck_assert(capability_scope_may_reach(A, "org.*.b", "org.a.b"));
        ck_assert(!capability_scope_may_reach(A, "org.a.b.c", "org.a.b"));
        ck_assert(!capability_scope_may_reach(A, "org.a", "org.a.b"));

        ck_assert_int_eq(capability_export_parse("bus.send", "org.a.b", buf, sizeof buf, &why), 0);
        ck_assert_str_eq(buf, "bus.send:org.a.b");
        ck_assert_int_eq(capability_export_parse("app.launch", "org.a.b", buf, sizeof buf, &why),
                         0);
        ck_assert_str_eq(buf, "app.launch:org.a.b");
        ck_assert_int_eq(capability_export_parse("bus.subscribe:org.a.b.tick", "org.a.b", buf,
                                                 sizeof buf, &why),
                         0);
        ck_assert_str_eq(buf, "bus.subscribe:org.a.b.tick");
        ck_assert_int_eq(
                capability_export_parse("bus.subscribe:**", "org.a.b", buf, sizeof buf, &why),
                -EINVAL);
        ck_assert_ptr_nonnull(strstr(why, "own id"));
        ck_assert_int_eq(
                capability_export_parse("bus.send:org.a.c", "org.a.b", buf, sizeof buf, &why),
                -EINVAL);
        ck_assert_int_eq(capability_export_parse("storage", "org.a.b", buf, sizeof buf, &why),
                         -EINVAL);
        ck_assert_int_eq(capability_export_parse("teleport", "org.a.b", buf, sizeof buf, &why),
                         -ENOENT);
        ck_assert_int_eq(
                capability_export_parse("bus.subscribe:a..b", "org.a.b", buf, sizeof buf, &why),
                -EINVAL);
        ck_assert_int_eq(capability_export_parse("bus.send", "org.a.b", buf, 8, &why), -EINVAL);
}
END_TEST

/* The syntax bounds: segments, segment length, wildcards, host length, root length. */
START_TEST(test_pattern_bounds)
{
        _cleanup_free_ char *seg63 = repeat('a', CAPABILITY_SEGMENT_MAX);
        _cleanup_free_ char *seg64 = repeat('a', CAPABILITY_SEGMENT_MAX + 1);
        char text[1024];
        CapabilityRight r;

        /* CAPABILITY_SEGMENTS_MAX segments "a.a.....a" parse; one more does not. */
        strcpy(text, "bus.publish:a");
        for (unsigned i = 1; i < CAPABILITY_SEGMENTS_MAX; i++)
                strcat(text, ".a");
        ck_assert_int_eq(capability_right_parse(text, &r, NULL), 0);
        strcat(text, ".a");
        ck_assert_int_eq(capability_right_parse(text, &r, NULL), -EINVAL);

        snprintf(text, sizeof text, "bus.publish:%s", seg63);
        ck_assert_int_eq(capability_right_parse(text, &r, NULL), 0);
        snprintf(text, sizeof text, "bus.publish:%s", seg64);
        ck_assert_int_eq(capability_right_parse(text, &r, NULL), -EINVAL);

        /* CAPABILITY_WILDCARDS_MAX wildcards parse; one more does not. */
        strcpy(text, "bus.publish:**");
        for (unsigned i = 1; i < CAPABILITY_WILDCARDS_MAX; i++)
                strcat(text, i % 2 ? ".*" : ".**");
        ck_assert_int_eq(capability_right_parse(text, &r, NULL), 0);
        strcat(text, ".*");
        ck_assert_int_eq(capability_right_parse(text, &r, NULL), -EINVAL);

        /* The longest host a right can hold (255 - "net.connect:" - ":443") parses. */
        {
                char host[300];
                size_t len = 0, max = CAPABILITY_RIGHT_MAX - 1 - strlen("net.connect:") - 4;

                while (len < max) {
                        host[len] = (len % 50 == 49) ? '.' : 'h';
                        len++;
                }
                host[len] = 0;
                snprintf(text, sizeof text, "net.connect:%s:443", host);
                ck_assert_int_eq(capability_right_parse(text, &r, NULL), 0);
                ck_assert(capability_scope_match(CAPABILITY_SCOPE_HOST_PORT, r.scope, r.scope));
        }

        /* A root name of 32 bytes parses, 33 does not. */
        {
                _cleanup_free_ char *r32 = repeat('d', CAPABILITY_ROOT_MAX);
                _cleanup_free_ char *r33 = repeat('d', CAPABILITY_ROOT_MAX + 1);

                snprintf(text, sizeof text, "fs.read:%s", r32);
                ck_assert_int_eq(capability_right_parse(text, &r, NULL), 0);
                snprintf(text, sizeof text, "fs.read:%s", r33);
                ck_assert_int_eq(capability_right_parse(text, &r, NULL), -EINVAL);
        }
}
END_TEST

/* The CPU this thread has used, in seconds: the matcher's work, which a loaded
 * machine (the wall clock of parallel tests on 2 CPUs) does not change. */
static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The matcher at its bounds, with the inputs that make a backtracking matcher blow
 * up (fnmatch on "*a*a*a*...b" against "aaaa...": exponential in the stars). Ours
 * is at most O(|p| * |s|) per level: 10,000 worst-case matches must take well under
 * a second of CPU even under ASan (exponential matching takes minutes).
 */
START_TEST(test_match_bound_worst_case)
{
        char pat[CAPABILITY_RIGHT_MAX], sub[CAPABILITY_RIGHT_MAX];
        size_t len = 0;
        double t0, elapsed;
        bool m = true;

        /* Within a segment: "*a*a*a*a*a*a*a*b" (8 stars) against 63 'a's. */
        strcpy(pat, "*a*a*a*a*a*a*a*b");
        memset(sub, 'a', CAPABILITY_SEGMENT_MAX);
        sub[CAPABILITY_SEGMENT_MAX] = 0;
        t0 = now_s();
        for (int i = 0; i < 10000; i++)
                m &= !capability_scope_match(CAPABILITY_SCOPE_TOPIC, pat, sub);
        elapsed = now_s() - t0;
        ck_assert(m);
        ck_assert_msg(elapsed < 2.0, "segment glob worst case took %.3f s", elapsed);

        /* Across segments: "**.**.**.**.**.**.**.**.b" against 32 segments "a". */
        strcpy(pat, "**");
        for (int i = 1; i < 8; i++)
                strcat(pat, ".**");
        strcat(pat, ".b");
        for (unsigned i = 0; i < CAPABILITY_SEGMENTS_MAX; i++) {
                if (i)
                        sub[len++] = '.';
                sub[len++] = 'a';
        }
        sub[len] = 0;
        t0 = now_s();
        for (int i = 0; i < 10000; i++)
                m &= !capability_scope_match(CAPABILITY_SCOPE_TOPIC, pat, sub);
        elapsed = now_s() - t0;
        ck_assert(m);
        ck_assert_msg(elapsed < 2.0, "segment-level worst case took %.3f s", elapsed);

        /* Both levels: 7 wildcards, "*a*" segments against segments of 'a's that
         * almost match, 32 of them. */
        strcpy(pat, "**.*a*.**.*a*.**.b");
        len = 0;
        for (unsigned i = 0; i < CAPABILITY_SEGMENTS_MAX && len + 8 < sizeof sub - 1; i++) {
                if (i)
                        sub[len++] = '.';
                memset(sub + len, 'a', 6);
                len += 6;
        }
        sub[len] = 0;
        t0 = now_s();
        for (int i = 0; i < 10000; i++)
                m &= !capability_scope_match(CAPABILITY_SCOPE_TOPIC, pat, sub);
        elapsed = now_s() - t0;
        ck_assert(m);
        ck_assert_msg(elapsed < 2.0, "mixed worst case took %.3f s", elapsed);
        /* And the same pattern does match when the last segment is "b". */
        sub[len - 6] = 'b';
        sub[len - 5] = 0;
        ck_assert(capability_scope_match(CAPABILITY_SCOPE_TOPIC, pat, sub));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("capability");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_catalogue);
        tcase_add_test(tc, test_docs_list_every_name);
        tcase_add_test(tc, test_parse);
        tcase_add_test(tc, test_parse_length_bound);
        tcase_add_test(tc, test_topic_match);
        tcase_add_test(tc, test_app_id_match);
        tcase_add_test(tc, test_host_match);
        tcase_add_test(tc, test_right_level);
        tcase_add_test(tc, test_root_match);
        tcase_add_test(tc, test_port_and_name_match);
        tcase_add_test(tc, test_covers);
        tcase_add_test(tc, test_mask);
        tcase_add_test(tc, test_check_manifest);
        tcase_add_test(tc, test_namespaces);
        tcase_add_test(tc, test_pattern_bounds);
        tcase_add_test(tc, test_match_bound_worst_case);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
