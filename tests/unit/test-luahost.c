/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host spec of a packed group and the stats file reader (src/supervisor/luahost.c). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/macro.h"
#include "supervisor/launch.h"
#include "supervisor/luahost.h"

static Manifest *parse(const char *json)
{
        Manifest *m = NULL;
        ManifestError err;
        int r = manifest_parse(json, strlen(json), "t.json", &m, &err);

        ck_assert_msg(r == 0, "%s: %s: %s", json, err.key, err.message);
        return m;
}

#define PACKED(id, extra)                                                                          \
        "{\"id\":\"" id "\",\"runtime\":\"lua\",\"entry\":\"main.lua\",\"isolation\":\"packed\","  \
        "\"group\":\"g\"" extra "}"

START_TEST(test_spec_build)
{
        Manifest *a = parse(PACKED("org.t.a", ",\"args\":[\"x\",\"y\"],\"priority\":-5,"
                                              "\"limits\":{\"memory\":\"32M\"}"));
        Manifest *b = parse(PACKED("org.t.b", ",\"scheduler\":\"priority\""));
        char *extra[] = {"z", NULL};
        LuaHostApp apps[] = {
                {.manifest = a, .extra_args = extra, .channel_fd = 6, .log_fd = 7},
                {.manifest = b, .channel_fd = 8, .log_fd = -1},
        };
        json_t *root, *list, *x;
        json_error_t jerr;
        char *text = NULL;

        ck_assert_int_eq(luahost_spec_build(MANIFEST_SCHEDULER_PRIORITY, apps, 2, 0, 5, -1, &text),
                         0);
        root = json_loads(text, 0, &jerr);
        ck_assert_ptr_nonnull(root);
        ck_assert_str_eq(json_string_value(json_object_get(root, "scheduler")), "priority");
        ck_assert_int_eq(json_integer_value(json_object_get(root, "slice_ms")), LUAHOST_SLICE_MS);
        ck_assert_int_eq(json_integer_value(json_object_get(root, "stats_fd")), 5);
        list = json_object_get(root, "apps");
        ck_assert_uint_eq(json_array_size(list), 2);

        x = json_array_get(list, 0);
        ck_assert_str_eq(json_string_value(json_object_get(x, "id")), "org.t.a");
        ck_assert_str_eq(json_string_value(json_object_get(x, "entry")), "/apps/org.t.a/main.lua");
        ck_assert_str_eq(json_string_value(json_object_get(x, "data")), "/data/org.t.a");
        ck_assert_uint_eq(json_array_size(json_object_get(x, "args")), 3);
        ck_assert_str_eq(json_string_value(json_array_get(json_object_get(x, "args"), 2)), "z");
        ck_assert_int_eq(json_integer_value(json_object_get(x, "channel_fd")), 6);
        ck_assert_int_eq(json_integer_value(json_object_get(x, "log_fd")), 7);
        ck_assert_int_eq(json_integer_value(json_object_get(x, "priority")), -5);
        /* 32M less the 8 MiB launch_lua_memory_cap() keeps for the process. */
        ck_assert_int_eq(json_integer_value(json_object_get(x, "memory")), 24 << 20);

        x = json_array_get(list, 1);
        ck_assert_str_eq(json_string_value(json_object_get(x, "id")), "org.t.b");
        ck_assert_int_eq(json_array_size(json_object_get(x, "args")), 0);
        ck_assert_ptr_null(json_object_get(x, "log_fd"));
        ck_assert_int_eq(json_integer_value(json_object_get(x, "priority")), 0);
        /* No limit: cella-lua's own default cap of 64 MiB. */
        ck_assert_int_eq(json_integer_value(json_object_get(x, "memory")), 64 << 20);
        json_decref(root);
        free(text);

        /* No stats file: no stats_fd. */
        ck_assert_int_eq(luahost_spec_build(MANIFEST_SCHEDULER_FAIR, apps, 1, 0, -1, -1, &text), 0);
        root = json_loads(text, 0, &jerr);
        ck_assert_ptr_null(json_object_get(root, "stats_fd"));
        ck_assert_str_eq(json_string_value(json_object_get(root, "scheduler")), "fair");
        json_decref(root);
        free(text);

        /* Bounds: no app, too many apps, an unknown scheduler, a missing manifest. */
        text = (char *)0x1;
        ck_assert_int_eq(luahost_spec_build(MANIFEST_SCHEDULER_FAIR, apps, 0, 0, -1, -1, &text),
                         -EINVAL);
        ck_assert_int_eq(luahost_spec_build(MANIFEST_SCHEDULER_FAIR, apps, LUAHOST_APPS_MAX + 1, 0,
                                            -1, -1, &text),
                         -EINVAL);
        ck_assert_int_eq(luahost_spec_build((ManifestScheduler)7, apps, 1, 0, -1, -1, &text),
                         -EINVAL);
        apps[1].manifest = NULL;
        ck_assert_int_eq(luahost_spec_build(MANIFEST_SCHEDULER_FAIR, apps, 2, 0, -1, -1, &text),
                         -EINVAL);
        ck_assert_ptr_eq(text, (char *)0x1);
        manifest_free(a);
        manifest_free(b);
}
END_TEST

/* A spec with slots: "slots" and each app's "slot"; a slot twice, or out of range,
 * is refused. And the JOIN and STOP messages, as cella-lua parses them. */
START_TEST(test_slots_and_join)
{
        Manifest *a = parse(PACKED("org.t.a", ",\"args\":[\"x\"],\"priority\":-5"));
        Manifest *b = parse(PACKED("org.t.b", ""));
        char *extra[] = {"z", NULL};
        LuaHostApp apps[] = {
                {.manifest = a, .channel_fd = 6, .log_fd = 7, .slot = 2},
                {.manifest = b, .channel_fd = 8, .log_fd = 9, .slot = 0},
        };
        LuaHostApp j = {.manifest = a, .extra_args = extra, .channel_fd = 5, .log_fd = 6};
        CLuaCtlHeader stop;
        CLuaCtlMsg m;
        json_error_t jerr;
        json_t *root;
        char *text = NULL, err[256];
        void *msg = NULL;
        size_t len = 0;

        ck_assert_int_eq(luahost_spec_build(MANIFEST_SCHEDULER_FAIR, apps, 2, 3, 5, 11, &text), 0);
        root = json_loads(text, 0, &jerr);
        ck_assert_ptr_nonnull(root);
        ck_assert_int_eq(json_integer_value(json_object_get(root, "slots")), 3);
        ck_assert_int_eq(json_integer_value(json_object_get(root, "control_fd")), 11);
        ck_assert_int_eq(json_integer_value(json_object_get(
                                 json_array_get(json_object_get(root, "apps"), 0), "slot")),
                         2);
        json_decref(root);
        free(text);
        apps[1].slot = 2;
        ck_assert_int_eq(luahost_spec_build(MANIFEST_SCHEDULER_FAIR, apps, 2, 3, 5, 11, &text),
                         -EINVAL);
        apps[1].slot = 3;
        ck_assert_int_eq(luahost_spec_build(MANIFEST_SCHEDULER_FAIR, apps, 2, 3, 5, 11, &text),
                         -EINVAL);
        ck_assert_int_eq(luahost_spec_build(MANIFEST_SCHEDULER_FAIR, apps, 2, 1, 5, 11, &text),
                         -EINVAL);

        /* JOIN: the app's entry of a spec, without fds or slot; two fds. */
        ck_assert_int_eq(luahost_join_build(&j, 1, 4, &msg, &len), 0);
        ck_assert_int_eq(clua_ctl_parse(msg, len, 2, 3, &m, err, sizeof err), 0);
        ck_assert_int_eq(m.type, CLUA_CTL_JOIN);
        ck_assert_uint_eq(m.index, 1);
        ck_assert_uint_eq(m.run, 4);
        ck_assert_str_eq(m.app.id, "org.t.a");
        ck_assert_str_eq(m.app.entry, "/apps/org.t.a/main.lua");
        ck_assert_str_eq(m.app.data, "/data/org.t.a");
        ck_assert_uint_eq(m.app.n_args, 2);
        ck_assert_str_eq(m.app.args[1], "z");
        ck_assert_int_eq(m.app.priority, -5);
        ck_assert_int_eq(m.app.channel_fd, -1);
        clua_ctl_msg_done(&m);
        /* A slot the host does not have, and the fds the header does not say. */
        ck_assert_int_eq(clua_ctl_parse(msg, len, 2, 1, &m, err, sizeof err), -EBADMSG);
        ck_assert_int_eq(clua_ctl_parse(msg, len, 1, 3, &m, err, sizeof err), -EBADMSG);
        free(msg);
        ck_assert_int_eq(luahost_join_build(&j, 1, 0, &msg, &len), -EINVAL);
        j.log_fd = -1;
        ck_assert_int_eq(luahost_join_build(&j, 0, 1, &msg, &len), 0);
        ck_assert_int_eq(clua_ctl_parse(msg, len, 1, 3, &m, err, sizeof err), 0);
        clua_ctl_msg_done(&m);
        free(msg);

        luahost_stop_build(2, 9, &stop);
        ck_assert_int_eq(clua_ctl_parse(&stop, sizeof stop, 0, 3, &m, err, sizeof err), 0);
        ck_assert_int_eq(m.type, CLUA_CTL_STOP);
        ck_assert_uint_eq(m.index, 2);
        ck_assert_uint_eq(m.run, 9);
        manifest_free(a);
        manifest_free(b);
}
END_TEST

/* PRIORITY (a member's CPU class, docs/memory.md "CPU"): what the supervisor
 * builds, cella-lua parses back; out-of-range classes and priorities refused. */
START_TEST(test_priority_build)
{
        char buf[LUAHOST_PRIORITY_MSG_MAX];
        char err[256];
        CLuaCtlMsg m;
        int n;

        for (uint32_t c = CLUA_CPU_CLASS_FOREGROUND; c < _CLUA_CPU_CLASS_MAX; c++)
                for (int p = -20; p <= 19; p++) {
                        n = luahost_priority_build(2, 7, c, p, buf, sizeof buf);
                        ck_assert_int_gt(n, (int)sizeof(CLuaCtlHeader));
                        ck_assert_int_eq(clua_ctl_parse(buf, (size_t)n, 0, 3, &m, err, sizeof err),
                                         0);
                        ck_assert_int_eq(m.type, CLUA_CTL_PRIORITY);
                        ck_assert_uint_eq(m.index, 2);
                        ck_assert_uint_eq(m.run, 7);
                        ck_assert_uint_eq(m.cpu_class, c);
                        ck_assert_int_eq(m.priority, p);
                        clua_ctl_msg_done(&m);
                }
        ck_assert_int_eq(luahost_priority_build(0, 0, CLUA_CPU_CLASS_NONE, 0, buf, sizeof buf),
                         -EINVAL);
        ck_assert_int_eq(luahost_priority_build(0, 0, _CLUA_CPU_CLASS_MAX, 0, buf, sizeof buf),
                         -EINVAL);
        ck_assert_int_eq(luahost_priority_build(0, 0, CLUA_CPU_CLASS_CACHED, 20, buf, sizeof buf),
                         -EINVAL);
        ck_assert_int_eq(luahost_priority_build(0, 0, CLUA_CPU_CLASS_CACHED, -21, buf, sizeof buf),
                         -EINVAL);
        ck_assert_int_eq(luahost_priority_build(0, 0, CLUA_CPU_CLASS_CACHED, 0, buf, 30), -ENOBUFS);
}
END_TEST

START_TEST(test_spec_many_apps)
{
        /* The largest group cella-lua takes: one spec with LUAHOST_APPS_MAX apps. */
        Manifest *m = parse(PACKED("org.t.a", ""));
        LuaHostApp *apps = calloc(LUAHOST_APPS_MAX, sizeof *apps);
        json_t *root;
        json_error_t jerr;
        char *text = NULL;

        ck_assert_ptr_nonnull(apps);
        for (size_t i = 0; i < LUAHOST_APPS_MAX; i++)
                apps[i] = (LuaHostApp){.manifest = m, .channel_fd = (int)(10 + i), .log_fd = -1};
        ck_assert_int_eq(luahost_spec_build(MANIFEST_SCHEDULER_FAIR, apps, LUAHOST_APPS_MAX, 0, 4,
                                            -1, &text),
                         0);
        root = json_loads(text, 0, &jerr);
        ck_assert_uint_eq(json_array_size(json_object_get(root, "apps")), LUAHOST_APPS_MAX);
        json_decref(root);
        free(text);
        free(apps);
        manifest_free(m);
}
END_TEST

START_TEST(test_group_rules)
{
        Manifest *a = parse(PACKED("org.t.a", ",\"restart\":\"on-failure\","
                                              "\"limits\":{\"memory\":\"32M\"}"));
        Manifest *b = parse(PACKED("org.t.b", ",\"scheduler\":\"round-robin\""));
        Manifest *c =
                parse(PACKED("org.t.c", ",\"scheduler\":\"round-robin\",\"restart\":\"always\""));
        Manifest *d = parse(PACKED("org.t.d", ",\"scheduler\":\"fair\""));
        const Manifest *ms[] = {a, b, c, d};
        ManifestScheduler sched = MANIFEST_SCHEDULER_PRIORITY;
        size_t x = 99, y = 99;

        /* Fair when nobody says; the one that is said when all who say agree. */
        ck_assert_int_eq(luahost_scheduler(ms, 1, &sched, &x, &y), 0);
        ck_assert_int_eq(sched, MANIFEST_SCHEDULER_FAIR);
        ck_assert_int_eq(luahost_scheduler(ms, 3, &sched, &x, &y), 0);
        ck_assert_int_eq(sched, MANIFEST_SCHEDULER_ROUND_ROBIN);
        ck_assert_uint_eq(x, 99);
        /* d disagrees with b: both named. */
        ck_assert_int_eq(luahost_scheduler(ms, 4, &sched, &x, &y), -EINVAL);
        ck_assert_uint_eq(x, 1);
        ck_assert_uint_eq(y, 3);

        /* Restart: the one that keeps the group up most. */
        ck_assert_int_eq(luahost_restart(ms, 1), MANIFEST_RESTART_ON_FAILURE);
        ck_assert_int_eq(luahost_restart(ms + 1, 1), MANIFEST_RESTART_NO);
        ck_assert_int_eq(luahost_restart(ms, 4), MANIFEST_RESTART_ALWAYS);

        /* Memory: the sum, each member's default when unset. */
        ck_assert_uint_eq(luahost_memory(ms, 1), 32ull << 20);
        ck_assert_uint_eq(luahost_memory(ms, 2), (32ull << 20) + LUAHOST_MEMBER_MEMORY);
        ck_assert_uint_eq(launch_lua_memory_cap(LUAHOST_MEMBER_MEMORY), 64ull << 20);
        a->limits.memory = UINT64_MAX - 1;
        ck_assert_uint_eq(luahost_memory(ms, 2), UINT64_MAX);
        manifest_free(a);
        manifest_free(b);
        manifest_free(c);
        manifest_free(d);
}
END_TEST

/* Writes through a second, writable mapping of the memfd, as the host does. */
static void *map_rw(const LuaStats *s)
{
        void *p = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);

        ck_assert_ptr_ne(p, MAP_FAILED);
        return p;
}

START_TEST(test_stats_file)
{
        LuaStats *s = NULL;
        CLuaStatsHost h;
        CLuaStatsApp a;
        CLuaStatsHost *wh;
        CLuaStatsApp *wa;
        const char *ids[] = {"org.t.a", "org.t.b"};
        json_t *o;
        void *w;

        ck_assert_int_eq(luastats_new(0, &s), -EINVAL);
        ck_assert_int_eq(luastats_new(LUAHOST_APPS_MAX + 1, &s), -EINVAL);
        ck_assert_int_eq(luastats_new(2, &s), 0);
        ck_assert_uint_eq(s->size, clua_stats_size(2));
        ck_assert_int_ge(lseek(s->fd, 0, SEEK_END), (off_t)clua_stats_size(2));
        /* Sealed: the host cannot shrink it under our mapping. */
        ck_assert_int_lt(ftruncate(s->fd, 16), 0);
        ck_assert_int_lt(ftruncate(s->fd, (off_t)clua_stats_size(3)), 0);

        /* Not started yet. */
        ck_assert_int_eq(luastats_host(s, &h), -EAGAIN);
        ck_assert_int_eq(luastats_app(s, 0, &a), -EAGAIN);
        ck_assert_ptr_null(luastats_json(s, ids, NULL));

        w = map_rw(s);
        wh = w;
        wa = (CLuaStatsApp *)(wh + 1);
        wh->magic = CLUA_STATS_MAGIC;
        wh->version = CLUA_STATS_VERSION;
        wh->n_apps = 2;
        wh->policy = CLUA_SCHED_ROUND_ROBIN;
        wh->slice_ns = 10000000;
        wh->slices = 7;
        wa[1] = (CLuaStatsApp){.state = CLUA_APP_FAILED,
                               .priority = -3,
                               .weight = 1991,
                               .fault = 3,
                               .slices = 5,
                               .cpu_ns = 2500000,
                               .memory_bytes = 4096};
        ck_assert_int_eq(luastats_host(s, &h), 0);
        ck_assert_uint_eq(h.slices, 7);
        ck_assert_int_eq(luastats_app(s, 1, &a), 0);
        ck_assert_uint_eq(a.fault, 3);
        ck_assert_int_eq(a.priority, -3);
        /* Our count bounds the records, not the file's. */
        ck_assert_int_eq(luastats_app(s, 2, &a), -ERANGE);

        o = luastats_json(s, ids, NULL);
        ck_assert_ptr_nonnull(o);
        ck_assert_str_eq(json_string_value(json_object_get(o, "scheduler")), "round-robin");
        ck_assert(json_real_value(json_object_get(o, "slice_ms")) == 10.0);
        ck_assert_uint_eq(json_array_size(json_object_get(o, "apps")), 2);
        {
                json_t *b = json_array_get(json_object_get(o, "apps"), 1);

                ck_assert_str_eq(json_string_value(json_object_get(b, "id")), "org.t.b");
                ck_assert_str_eq(json_string_value(json_object_get(b, "state")), "failed");
                ck_assert_int_eq(json_integer_value(json_object_get(b, "fault")), 3);
                ck_assert_int_eq(json_integer_value(json_object_get(b, "memory_kib")), 4);
                ck_assert(json_real_value(json_object_get(b, "cpu_ms")) == 2.5);
        }
        json_decref(o);
        o = luastats_json(s, ids, "org.t.a");
        ck_assert_uint_eq(json_array_size(json_object_get(o, "apps")), 1);
        json_decref(o);

        /* A host that claims more apps, another version or magic: refused. */
        wh->n_apps = 3;
        ck_assert_int_eq(luastats_host(s, &h), -EPROTO);
        wh->n_apps = 2;
        wh->version = 2;
        ck_assert_int_eq(luastats_app(s, 0, &a), -EPROTO);
        wh->version = CLUA_STATS_VERSION;
        wh->magic = 0x12345678;
        ck_assert_int_eq(luastats_host(s, &h), -EPROTO);
        munmap(w, s->size);
        s = luastats_free(s);
        ck_assert_ptr_null(luastats_free(NULL));

        ck_assert_str_eq(luastats_state_to_string(CLUA_APP_WAITING), "waiting");
        ck_assert_str_eq(luastats_state_to_string(99), "unknown");
        ck_assert_str_eq(luastats_fault_reason(1), "uncaught Lua error");
        ck_assert_str_eq(luastats_fault_reason(3), "memory limit of the Lua state exceeded");
        ck_assert_str_eq(luastats_fault_reason(4), "CPU budget exceeded");
        ck_assert_ptr_null(luastats_fault_reason(0));
        ck_assert_ptr_null(luastats_fault_reason(2));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("luahost");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_spec_build);
        tcase_add_test(tc, test_slots_and_join);
        tcase_add_test(tc, test_priority_build);
        tcase_add_test(tc, test_spec_many_apps);
        tcase_add_test(tc, test_group_rules);
        tcase_add_test(tc, test_stats_file);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
