/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The app networks (src/net/group.c, rtnl.c) on real namespaces: "apps" are children
 * that made a network namespace of their own and wait; each test runs in a network
 * namespace of its own too, so nothing it makes (or a bug makes) reaches the
 * machine's links. Needs root (CLONE_NEWNET); skipped otherwise.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "net/group.h"
#include "net/rtnl.h"
#include "skip.h"

typedef struct App {
        pid_t pid;
        int pidfd;
} App;

static char dir[] = "/tmp/test-netgroups-XXXXXX";
static uv_loop_t loop;

/* A child in a network namespace of its own, waiting to be killed. */
static App app_new(void)
{
        int p[2];
        char c;
        App a;

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        a.pid = fork();
        ck_assert_int_ge(a.pid, 0);
        if (a.pid == 0) {
                if (unshare(CLONE_NEWNET) < 0)
                        _exit(1);
                (void)!write(p[1], "x", 1);
                pause();
                _exit(0);
        }
        close(p[1]);
        ck_assert_int_eq(read(p[0], &c, 1), 1);
        close(p[0]);
        a.pidfd = (int)syscall(SYS_pidfd_open, a.pid, 0);
        ck_assert_int_ge(a.pidfd, 0);
        return a;
}

static void app_end(App *a)
{
        kill(a->pid, SIGKILL);
        waitpid(a->pid, NULL, 0);
        close(a->pidfd);
}

/* The ifindex of name in a's namespace, or -errno (-ENODEV: none). */
static int app_link(const App *a, const char *name)
{
        int s = rtnl_open_in(a->pidfd, NULL), r;

        ck_assert_int_ge(s, 0);
        r = rtnl_link_index(s, name);
        close(s);
        return r;
}

static char *hosts_of(const char *app)
{
        char path[256], *text = NULL;

        snprintf(path, sizeof path, "%s/%s", dir, app);
        ck_assert_int_eq(read_file_at(AT_FDCWD, path, 1 << 16, &text, NULL), 0);
        return text;
}

static const char *address_of(json_t *nets, const char *net, const char *app)
{
        size_t i, j;
        json_t *n, *m;

        json_array_foreach(nets, i, n)
        {
                if (strcmp(json_string_value(json_object_get(n, "name")), net) != 0)
                        continue;
                json_array_foreach(
                        json_object_get(n, "members"), j,
                        m) if (strcmp(json_string_value(json_object_get(m, "app")), app) ==
                               0) return json_string_value(json_object_get(m, "address"));
        }
        return NULL;
}

static bool can_run(void)
{
        return geteuid() == 0 && unshare(CLONE_NEWNET) == 0;
}

static void setup(void)
{
        strcpy(dir, "/tmp/test-netgroups-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        ck_assert_int_eq(uv_loop_init(&loop), 0);
}

static void teardown(void)
{
        char cmd[128];

        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        (void)!system(cmd);
}

START_TEST(test_join_leave_hosts)
{
        _cleanup_free_ char *pa = NULL, *pb = NULL, *ha = NULL, *ha2 = NULL;
        const char *why = NULL;
        NetGroupsStats st;
        NetGroups *g;
        App a, b;
        json_t *j;
        const char *addr_a, *addr_b;

        if (!can_run())
                SKIP_TEST("needs root (network namespaces)");
        ck_assert_int_eq(netgroups_new(NULL, dir, &loop, &g), 0);
        a = app_new();
        b = app_new();
        ck_assert_int_eq(netgroups_hosts_file(g, "org.test.a", "org.test.a", &pa), 0);
        ck_assert_int_eq(netgroups_hosts_file(g, "org.test.b", "org.test.b", &pb), 0);
        ck_assert_int_eq(netgroups_join(g, "org.test.a", a.pidfd, "web", &why), 0);
        ck_assert_int_eq(netgroups_join(g, "org.test.b", b.pidfd, "web", &why), 0);
        /* Again: nothing more. */
        ck_assert_int_eq(netgroups_join(g, "org.test.b", b.pidfd, "web", &why), 0);
        ck_assert_int_gt(app_link(&a, "cg-web"), 0);
        ck_assert_int_gt(app_link(&b, "cg-web"), 0);

        j = netgroups_json(g, NULL);
        ck_assert_int_eq(json_array_size(j), 1);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "subnet")),
                         "10.213.0.0/24");
        addr_a = address_of(j, "web", "org.test.a");
        addr_b = address_of(j, "web", "org.test.b");
        ck_assert_str_eq(addr_a, "10.213.0.2");
        ck_assert_str_eq(addr_b, "10.213.0.3");
        json_decref(j);

        ha = hosts_of("org.test.a");
        ck_assert_ptr_nonnull(
                strstr(ha, "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\torg.test.a\n"));
        ck_assert_ptr_nonnull(strstr(ha, "10.213.0.2\torg.test.a org.test.a.web\n"));
        ck_assert_ptr_nonnull(strstr(ha, "10.213.0.3\torg.test.b org.test.b.web\n"));

        /* Revoked: gone now, from b's namespace and from a's hosts file. */
        ck_assert_int_eq(netgroups_leave(g, "org.test.b", "web", true), 1);
        ck_assert_int_eq(app_link(&b, "cg-web"), -ENODEV);
        ck_assert(!netgroups_is_member(g, "org.test.b", "web"));
        ha2 = hosts_of("org.test.a");
        ck_assert_ptr_null(strstr(ha2, "org.test.b"));
        /* Back: the next address, not the one just freed (round-robin). */
        ck_assert_int_eq(netgroups_join(g, "org.test.b", b.pidfd, "web", &why), 0);
        j = netgroups_json(g, "web");
        ck_assert_str_eq(address_of(j, "web", "org.test.b"), "10.213.0.4");
        json_decref(j);

        /* Stopped: the deletion goes to the threadpool; the last one frees the hub. */
        ck_assert_int_eq(netgroups_leave(g, "org.test.b", NULL, false), 1);
        netgroups_stats(g, &st);
        ck_assert_uint_eq(st.deletions_pending, 1);
        uv_run(&loop, UV_RUN_DEFAULT);
        netgroups_stats(g, &st);
        ck_assert_uint_eq(st.deletions_pending, 0);
        ck_assert_uint_gt(st.last_delete_us, 0);
        ck_assert_int_eq(app_link(&b, "cg-web"), -ENODEV);
        ck_assert_int_eq(netgroups_leave(g, "org.test.a", NULL, false), 1);
        netgroups_stats(g, &st);
        ck_assert_uint_eq(st.hubs_made, 1);
        ck_assert_uint_eq(st.hubs_freed, 1);
        ck_assert_uint_eq(st.joins, 3); /* a, b, b again after the revoke */
        j = netgroups_json(g, NULL);
        ck_assert_int_eq(json_array_size(j), 0);
        json_decref(j);
        /* A name outside net.group's scope. */
        ck_assert_int_eq(netgroups_join(g, "org.test.a", a.pidfd, "Web", &why), -EINVAL);
        ck_assert_int_eq(netgroups_join(g, "org.test.a", a.pidfd, "", &why), -EINVAL);
        ck_assert_int_eq(netgroups_join(g, "org.test.a", a.pidfd, "a/b", &why), -EINVAL);

        netgroups_forget_app(g, "org.test.a");
        ck_assert_int_eq(access(pa, F_OK), -1);
        netgroups_free(g);
        ck_assert_int_eq(access(pb, F_OK), -1);
        app_end(&a);
        app_end(&b);
}
END_TEST

START_TEST(test_two_networks_long_name_and_exhaustion)
{
        /* 10.213.0.0/29 in /30s: two networks of one member each (.2). */
        NetGroupsConfig c = {.range = 0x0ad50000u, .range_prefix = 29, .net_prefix = 30};
        const char *why = NULL, *long_name = "a234567890123456789012345678901b";
        NetGroups *g;
        App a, b;
        json_t *j;

        if (!can_run())
                SKIP_TEST("needs root (network namespaces)");
        ck_assert_int_eq(netgroups_new(&c, dir, &loop, &g), 0);
        a = app_new();
        b = app_new();
        ck_assert_int_eq(netgroups_join(g, "org.test.a", a.pidfd, "web", &why), 0);
        ck_assert_int_eq(netgroups_join(g, "org.test.a", a.pidfd, long_name, &why), 0);
        /* One interface per network; a long name's is cg-<subnet number>. */
        ck_assert_int_gt(app_link(&a, "cg-web"), 0);
        ck_assert_int_gt(app_link(&a, "cg-1"), 0);
        j = netgroups_json(g, NULL);
        ck_assert_str_eq(address_of(j, "web", "org.test.a"), "10.213.0.2");
        ck_assert_str_eq(address_of(j, long_name, "org.test.a"), "10.213.0.6");
        json_decref(j);
        /* No address left in web, no subnet left for a third network. */
        ck_assert_int_eq(netgroups_join(g, "org.test.b", b.pidfd, "web", &why), -ENOSPC);
        ck_assert_ptr_nonnull(strstr(why, "no address left"));
        ck_assert_int_eq(netgroups_join(g, "org.test.b", b.pidfd, "db", &why), -ENOSPC);
        ck_assert_ptr_nonnull(strstr(why, "every subnet"));
        ck_assert_int_eq(app_link(&b, "cg-web"), -ENODEV);
        /* A failed join left nothing: the networks are as they were. */
        j = netgroups_json(g, NULL);
        ck_assert_int_eq(json_array_size(j), 2);
        json_decref(j);
        ck_assert_int_eq(netgroups_leave(g, "org.test.a", NULL, true), 2);
        netgroups_free(g);

        /* At most NETGROUPS_PER_APP_MAX networks per app. */
        ck_assert_int_eq(netgroups_new(NULL, dir, &loop, &g), 0);
        for (unsigned i = 0; i < NETGROUPS_PER_APP_MAX; i++) {
                char name[16];

                snprintf(name, sizeof name, "n%u", i);
                ck_assert_int_eq(netgroups_join(g, "org.test.a", a.pidfd, name, &why), 0);
        }
        ck_assert_int_eq(netgroups_join(g, "org.test.a", a.pidfd, "one-more", &why), -EMLINK);
        ck_assert_ptr_nonnull(strstr(why, "at most 8"));
        ck_assert_int_eq(app_link(&a, "cg-one-more"), -ENODEV);
        ck_assert_int_eq(netgroups_leave(g, "org.test.a", NULL, false), NETGROUPS_PER_APP_MAX);
        netgroups_free(g);
        app_end(&a);
        app_end(&b);
}
END_TEST

/* Freed with deletions still queued: it lives until the last one reports (ASan's leak
 * check sees the rest). */
START_TEST(test_free_with_deletions_pending)
{
        const char *why = NULL;
        NetGroups *g;
        App a, b;

        if (!can_run())
                SKIP_TEST("needs root (network namespaces)");
        ck_assert_int_eq(netgroups_new(NULL, dir, &loop, &g), 0);
        a = app_new();
        b = app_new();
        ck_assert_int_eq(netgroups_join(g, "org.test.a", a.pidfd, "web", &why), 0);
        ck_assert_int_eq(netgroups_join(g, "org.test.b", b.pidfd, "web", &why), 0);
        ck_assert_int_eq(netgroups_leave(g, "org.test.b", NULL, false), 1);
        ck_assert_ptr_null(netgroups_free(g));
        uv_run(&loop, UV_RUN_DEFAULT);
        /* The hub's fd closed with g: the kernel tears the veth down with it. */
        app_end(&a);
        app_end(&b);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("netgroups");
        TCase *tc = tcase_create("netgroups");
        SRunner *sr;

        if (skip_init() < 0)
                return EXIT_FAILURE;
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_join_leave_hosts);
        tcase_add_test(tc, test_two_networks_long_name_and_exhaustion);
        tcase_add_test(tc, test_free_with_deletions_pending);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        return skip_run(sr);
}
