/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The port forwarder (src/net/forward.c) on a real namespace: the test runs in a
 * network namespace of its own (only loopback, unshare(CLONE_NEWNET): no port of the
 * machine is touched) and forks a child into a second one, standing for an app's,
 * with a TCP echo on 127.0.0.1:7000 and a UDP echo on 7001. Forwards of two
 * NetForwards (two apps) are added, used, listed, rechecked and removed; every
 * connection's record is checked. Needs root (exit 77 otherwise).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/macro.h"
#include "net/forward.h"
#include "net/relay.h"

#define APP_TCP   7000
#define APP_UDP   7001
#define APP_STUCK 7002

static pid_t app_pid = -1;
static int app_pidfd = -1;
static uv_loop_t loop;
static NetRelay *relay;
static json_t *records; /* every record, in order */

/* Brings this namespace's loopback up. Returns 0 or -1. */
static int lo_up(void)
{
        struct ifreq ifr = {};
        int r, fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -1;
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
        r = ioctl(fd, SIOCGIFFLAGS, &ifr);
        ifr.ifr_flags |= IFF_UP;
        if (r == 0)
                r = ioctl(fd, SIOCSIFFLAGS, &ifr);
        close(fd);
        return r;
}

/* A blocking connect to 127.0.0.1:port: 0 (accepted, closed again) or -errno. */
static int tcp_try(uint16_t port)
{
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int r = 0, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                r = -errno;
        close(fd);
        return r;
}

static int listen_on(int type, uint16_t port)
{
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int one = 1, fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
            (type == SOCK_STREAM && listen(fd, 64) < 0))
                _exit(1);
        return fd;
}

/* The "app": echoes TCP connections (one at a time, to EOF) and UDP datagrams. */
static void app_main(int ready)
{
        int t, u;
        char buf[65536];

        if (unshare(CLONE_NEWNET) < 0 || lo_up() < 0)
                _exit(1);
        t = listen_on(SOCK_STREAM, APP_TCP);
        u = listen_on(SOCK_DGRAM, APP_UDP);
        /* Never accepted, backlog 0: once one connection waits, SYNs are dropped. */
        {
                struct sockaddr_in sa = {.sin_family = AF_INET,
                                         .sin_port = htons(APP_STUCK),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                int k = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

                if (k < 0 || bind(k, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(k, 0) < 0)
                        _exit(1);
        }
        (void)!write(ready, "r", 1);
        close(ready);
        for (;;) {
                struct pollfd p[2] = {{.fd = t, .events = POLLIN}, {.fd = u, .events = POLLIN}};

                if (poll(p, 2, -1) < 0)
                        _exit(1);
                if (p[1].revents) {
                        struct sockaddr_storage ss;
                        socklen_t len = sizeof ss;
                        ssize_t n = recvfrom(u, buf, sizeof buf, 0, (struct sockaddr *)&ss, &len);

                        if (n >= 0)
                                (void)sendto(u, buf, (size_t)n, 0, (struct sockaddr *)&ss, len);
                }
                if (p[0].revents) {
                        int c = accept(t, NULL, NULL);
                        ssize_t n;

                        while (c >= 0 && (n = read(c, buf, sizeof buf)) > 0)
                                (void)!write(c, buf, (size_t)n);
                        if (c >= 0)
                                close(c);
                }
        }
}

static void record(void *userdata, const char *app_id, json_t *fields)
{
        (void)userdata;
        json_object_set_new(fields, "app", json_string(app_id));
        json_array_append_new(records, fields);
}

/* Runs the loop until cond() or 10 s. */
static bool run_until(bool (*cond)(void *), void *ud)
{
        for (int i = 0; i < 10000; i++) {
                if (cond(ud))
                        return true;
                uv_run(&loop, UV_RUN_NOWAIT);
                usleep(1000);
        }
        return cond(ud);
}

static bool n_records(void *ud)
{
        return json_array_size(records) >= (size_t)(uintptr_t)ud;
}

static NetForward *forward_new(const char *app)
{
        NetForwardOptions o = {
                .loop = &loop,
                .relay = relay,
                .app_id = app,
                .pid = app_pid,
                .pidfd = app_pidfd,
                .record = record,
        };
        NetForward *f = NULL;
        const char *why = NULL;

        ck_assert_int_eq(net_forward_new(&o, &f, &why), 0);
        return f;
}

static NetForwardSpec spec(uint16_t host, uint16_t app, bool udp, const char *address)
{
        NetForwardSpec s = {.host = host, .app = app, .udp = udp};

        snprintf(s.address, sizeof s.address, "%s", address);
        return s;
}

typedef struct Echo {
        int fd;
        const char *msg;
        char got[64];
        size_t n;
        bool done;
} Echo;

/* Reads what came back on e->fd (non-blocking) while the loop turns. */
static bool echo_back(void *ud)
{
        Echo *e = ud;
        ssize_t n = recv(e->fd, e->got + e->n, sizeof e->got - 1 - e->n, MSG_DONTWAIT);

        if (n > 0)
                e->n += (size_t)n;
        e->got[e->n] = 0;
        return e->n >= strlen(e->msg);
}

static int tcp_to(const char *addr, uint16_t port)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        ck_assert_int_eq(inet_pton(AF_INET, addr, &sa.sin_addr), 1);
        ck_assert_int_ge(fd, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

static void echo_through(int fd, const char *msg)
{
        Echo e = {.fd = fd, .msg = msg};
        struct pollfd p = {.fd = fd, .events = POLLOUT};

        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        ck_assert_int_eq(send(fd, msg, strlen(msg), MSG_NOSIGNAL), (ssize_t)strlen(msg));
        ck_assert_msg(run_until(echo_back, &e), "no echo of '%s' (got '%s')", msg, e.got);
        ck_assert_str_eq(e.got, msg);
}

static json_t *entry_of(NetForward *f, uint16_t host, const char *proto)
{
        json_t *l = net_forward_list(f), *e, *found = NULL;
        size_t i;

        json_array_foreach(l, i, e) if (json_integer_value(json_object_get(e, "host")) == host &&
                                        strcmp(json_string_value(json_object_get(e, "proto")),
                                               proto) == 0) found = json_incref(e);
        json_decref(l);
        return found;
}

static bool deny_all(void *ud, uint16_t host)
{
        (void)ud;
        (void)host;
        return false;
}

static bool allow_all(void *ud, uint16_t host)
{
        (void)ud;
        (void)host;
        return true;
}

START_TEST(test_tcp_forward)
{
        NetForward *f = forward_new("org.test.a"), *g = forward_new("org.test.b");
        NetForwardSpec s = spec(18000, APP_TCP, false, "");
        char why[256];
        json_t *e, *r;
        int fd;

        ck_assert_int_eq(net_forward_add(f, &s, NET_FORWARD_OPEN, false, false, why, sizeof why),
                         0);
        /* The same host port again: this app (EEXIST), another app (EADDRINUSE, named). */
        ck_assert_int_eq(net_forward_add(f, &s, NET_FORWARD_OPEN, false, false, why, sizeof why),
                         -EEXIST);
        ck_assert_int_eq(net_forward_add(g, &s, NET_FORWARD_OPEN, false, false, why, sizeof why),
                         -EADDRINUSE);
        ck_assert_msg(strstr(why, "forwarded already to app org.test.a"), "%s", why);
        /* An address of no interface of this namespace. */
        s = spec(18001, APP_TCP, false, "192.0.2.1");
        ck_assert_int_eq(net_forward_add(g, &s, NET_FORWARD_OPEN, false, false, why, sizeof why),
                         -EADDRNOTAVAIL);
        ck_assert_msg(strstr(why, "192.0.2.1 is not an address of this host"), "%s", why);
        /* Kept (a manifest's): listed failed with why. */
        ck_assert_int_eq(net_forward_add(g, &s, NET_FORWARD_OPEN, true, true, why, sizeof why),
                         -EADDRNOTAVAIL);
        e = entry_of(g, 18001, "tcp");
        ck_assert_str_eq(json_string_value(json_object_get(e, "state")), "failed");
        ck_assert_str_eq(json_string_value(json_object_get(e, "origin")), "manifest");
        json_decref(e);

        /* Bytes both ways, on 127.0.0.1 and on ::1 (every address, dual-stack). */
        fd = tcp_to("127.0.0.1", 18000);
        ck_assert_int_ge(fd, 0);
        echo_through(fd, "hello app");
        e = entry_of(f, 18000, "tcp");
        ck_assert_int_eq(json_integer_value(json_object_get(e, "connections")), 1);
        json_decref(e);
        shutdown(fd, SHUT_WR);
        ck_assert(run_until(n_records, (void *)(uintptr_t)1));
        close(fd);
        r = json_array_get(records, 0);
        ck_assert_str_eq(json_string_value(json_object_get(r, "what")), "forward");
        ck_assert_str_eq(json_string_value(json_object_get(r, "app")), "org.test.a");
        ck_assert_str_eq(json_string_value(json_object_get(r, "end")), "eof");
        ck_assert_int_eq(json_integer_value(json_object_get(r, "bytes_in")), 9);
        ck_assert_int_eq(json_integer_value(json_object_get(r, "bytes_out")), 9);
        ck_assert_int_eq(json_integer_value(json_object_get(r, "app_port")), APP_TCP);
        ck_assert(strncmp(json_string_value(json_object_get(r, "client")), "127.0.0.1:", 10) == 0);

        /* Nothing listens on the app's port: the client is reset, recorded refused. */
        s = spec(18002, 7999, false, "127.0.0.1");
        ck_assert_int_eq(net_forward_add(f, &s, NET_FORWARD_OPEN, false, false, why, sizeof why),
                         0);
        fd = tcp_to("127.0.0.1", 18002);
        ck_assert(run_until(n_records, (void *)(uintptr_t)2));
        close(fd);
        r = json_array_get(records, 1);
        ck_assert_str_eq(json_string_value(json_object_get(r, "end")), "refused");
        ck_assert_str_eq(json_string_value(json_object_get(r, "error")), strerror(ECONNREFUSED));

        /* A recheck that denies: the listener and its connection close at once. */
        fd = tcp_to("127.0.0.1", 18000);
        echo_through(fd, "before");
        net_forward_recheck(f, deny_all, NULL);
        ck_assert(run_until(n_records, (void *)(uintptr_t)3));
        r = json_array_get(records, 2);
        ck_assert_str_eq(json_string_value(json_object_get(r, "end")), "closed");
        ck_assert_str_eq(json_string_value(json_object_get(r, "reason")), "revoked");
        close(fd);
        ck_assert_int_eq(tcp_try(18000), -ECONNREFUSED);
        e = entry_of(f, 18000, "tcp");
        ck_assert_str_eq(json_string_value(json_object_get(e, "state")), "not-granted");
        json_decref(e);
        /* The port is free for another app now; then allowed again, f's stays closed
         * (in use), and once g lets go, f's opens. */
        s = spec(18000, APP_TCP, false, "");
        ck_assert_int_eq(net_forward_add(g, &s, NET_FORWARD_OPEN, false, false, why, sizeof why),
                         0);
        net_forward_recheck(f, allow_all, NULL);
        e = entry_of(f, 18000, "tcp");
        ck_assert_str_eq(json_string_value(json_object_get(e, "state")), "failed");
        json_decref(e);
        ck_assert_int_eq(net_forward_remove(g, 18000, false), 0);
        ck_assert_int_eq(net_forward_remove(g, 18000, false), -ENOENT);
        net_forward_recheck(f, allow_all, NULL);
        e = entry_of(f, 18000, "tcp");
        ck_assert_str_eq(json_string_value(json_object_get(e, "state")), "open");
        json_decref(e);
        fd = tcp_to("127.0.0.1", 18000);
        echo_through(fd, "again");
        net_forward_free(f, "app exited");
        ck_assert(run_until(n_records, (void *)(uintptr_t)4));
        r = json_array_get(records, 3);
        ck_assert_str_eq(json_string_value(json_object_get(r, "reason")), "app exited");
        close(fd);
        net_forward_free(g, "app exited");
        uv_run(&loop, UV_RUN_NOWAIT);
}
END_TEST

START_TEST(test_udp_forward)
{
        NetForward *f = forward_new("org.test.u");
        NetForwardSpec s = spec(18100, APP_UDP, true, "127.0.0.1");
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(18100),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        char why[256];
        int c[3];
        json_t *e;

        ck_assert_int_eq(net_forward_add(f, &s, NET_FORWARD_OPEN, false, false, why, sizeof why),
                         0);
        /* A port another process holds with SO_REUSEPORT (as another cellad's forward
         * would) is in use, not shared. */
        {
                struct sockaddr_in other = {.sin_family = AF_INET,
                                            .sin_port = htons(18101),
                                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                NetForwardSpec t = spec(18101, APP_UDP, true, "");
                int one = 1, h = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

                ck_assert_int_eq(setsockopt(h, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
                ck_assert_int_eq(setsockopt(h, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
                ck_assert_int_eq(bind(h, (struct sockaddr *)&other, sizeof other), 0);
                ck_assert_int_eq(
                        net_forward_add(f, &t, NET_FORWARD_OPEN, false, false, why, sizeof why),
                        -EADDRINUSE);
                ck_assert_msg(strstr(why, "18101/udp is in use by another program"), "%s", why);
                close(h);
                ck_assert_int_eq(
                        net_forward_add(f, &t, NET_FORWARD_OPEN, false, false, why, sizeof why), 0);
                ck_assert_int_eq(net_forward_remove(f, 18101, true), 0);
        }
        for (int i = 0; i < 3; i++) {
                char msg[16];

                c[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                ck_assert_int_eq(connect(c[i], (struct sockaddr *)&sa, sizeof sa), 0);
                snprintf(msg, sizeof msg, "dgram %d", i);
                echo_through(c[i], msg);
                echo_through(c[i], msg); /* the flow's own socket now */
        }
        e = entry_of(f, 18100, "udp");
        ck_assert_int_eq(json_integer_value(json_object_get(e, "connections")), 3);
        ck_assert_int_eq(json_integer_value(json_object_get(e, "accepted")), 3);
        json_decref(e);
        ck_assert_int_eq(net_forward_remove(f, 18100, true), 0);
        ck_assert(run_until(n_records, (void *)(uintptr_t)3));
        for (int i = 0; i < 3; i++) {
                json_t *r = json_array_get(records, (size_t)i);

                ck_assert_str_eq(json_string_value(json_object_get(r, "proto")), "udp");
                ck_assert_str_eq(json_string_value(json_object_get(r, "reason")), "removed");
                ck_assert_int_eq(json_integer_value(json_object_get(r, "bytes_in")), 14);
                ck_assert_int_eq(json_integer_value(json_object_get(r, "bytes_out")), 14);
                close(c[i]);
        }
        net_forward_free(f, "app exited");
        uv_run(&loop, UV_RUN_NOWAIT);
}
END_TEST

START_TEST(test_udp_idle)
{
        NetForwardOptions o = {
                .loop = &loop,
                .relay = relay,
                .app_id = "org.test.idle",
                .pid = app_pid,
                .pidfd = app_pidfd,
                .record = record,
                .udp_idle_ms = 200,
        };
        NetForward *f = NULL;
        const char *why = NULL;
        NetForwardSpec s = spec(18200, APP_UDP, true, "127.0.0.1");
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(18200),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        char buf[256];
        json_t *r, *e;
        int c;

        ck_assert_int_eq(net_forward_new(&o, &f, &why), 0);
        ck_assert_int_eq(net_forward_add(f, &s, NET_FORWARD_OPEN, false, false, buf, sizeof buf),
                         0);
        c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof sa), 0);
        echo_through(c, "once");
        /* Silent: the flow ends by itself, recorded idle, and the table is empty. */
        ck_assert(run_until(n_records, (void *)(uintptr_t)1));
        r = json_array_get(records, 0);
        ck_assert_str_eq(json_string_value(json_object_get(r, "reason")), "idle");
        ck_assert_int_ge(json_integer_value(json_object_get(r, "duration_ms")), 200);
        e = entry_of(f, 18200, "udp");
        ck_assert_int_eq(json_integer_value(json_object_get(e, "connections")), 0);
        json_decref(e);
        /* The next datagram makes a new flow. */
        echo_through(c, "twice");
        e = entry_of(f, 18200, "udp");
        ck_assert_int_eq(json_integer_value(json_object_get(e, "connections")), 1);
        ck_assert_int_eq(json_integer_value(json_object_get(e, "accepted")), 2);
        json_decref(e);
        close(c);
        net_forward_free(f, "app exited");
        uv_run(&loop, UV_RUN_NOWAIT);
}
END_TEST

/* The app's backlog is full: the connect into it is given up after its timeout, the
 * client reset, recorded refused (ETIMEDOUT). */
START_TEST(test_connect_timeout)
{
        NetForwardOptions o = {
                .loop = &loop,
                .relay = relay,
                .app_id = "org.test.stuck",
                .pid = app_pid,
                .pidfd = app_pidfd,
                .record = record,
                .connect_timeout_ms = 300,
        };
        NetForward *f = NULL;
        const char *why = NULL;
        NetForwardSpec s = spec(18300, APP_STUCK, false, "127.0.0.1");
        char buf[256];
        int fds[4];
        bool timed_out = false;

        ck_assert_int_eq(net_forward_new(&o, &f, &why), 0);
        ck_assert_int_eq(net_forward_add(f, &s, NET_FORWARD_OPEN, false, false, buf, sizeof buf),
                         0);
        for (int i = 0; i < 4; i++)
                fds[i] = tcp_to("127.0.0.1", 18300);
        /* The first ones fill the backlog (they wait there, relayed); the others stay
         * connecting until the timeout. */
        ck_assert(run_until(n_records, (void *)(uintptr_t)1));
        for (size_t i = 0; i < json_array_size(records); i++) {
                json_t *r = json_array_get(records, i);

                if (strcmp(json_string_value(json_object_get(r, "end")), "refused") == 0 &&
                    strcmp(json_string_value(json_object_get(r, "error")), strerror(ETIMEDOUT)) ==
                            0) {
                        timed_out = true;
                        ck_assert_int_ge(json_integer_value(json_object_get(r, "duration_ms")),
                                         300);
                }
        }
        ck_assert_msg(timed_out, "no connect timed out");
        for (int i = 0; i < 4; i++)
                close(fds[i]);
        net_forward_free(f, "app exited");
        uv_run(&loop, UV_RUN_NOWAIT);
}
END_TEST

START_TEST(test_gone_app)
{
        NetForwardOptions o = {
                .loop = &loop,
                .relay = relay,
                .app_id = "org.test.gone",
                .pid = 0x3ffffff0, /* no such process */
                .pidfd = -1,
                .record = record,
        };
        NetForward *f = NULL;
        const char *why = NULL;

        ck_assert_int_eq(net_forward_new(&o, &f, &why), -ESRCH);
        ck_assert_ptr_null(f);
        ck_assert_ptr_nonnull(why);
}
END_TEST

static void setup(void)
{
        records = json_array();
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        ck_assert_int_eq(net_relay_new(&loop, &relay), 0);
}

static void teardown(void)
{
        net_relay_free(relay);
        relay = NULL;
        uv_run(&loop, UV_RUN_NOWAIT);
        (void)uv_loop_close(&loop);
        json_decref(records);
}

int main(void)
{
        Suite *s = suite_create("net-forward");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int p[2], failed;
        char c;

        if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0 || lo_up() < 0) {
                fprintf(stderr, "skipped: needs root and unshare(CLONE_NEWNET)\n");
                return 77;
        }
        if (pipe(p) < 0)
                return 1;
        app_pid = fork();
        if (app_pid == 0) {
                close(p[0]);
                app_main(p[1]);
        }
        close(p[1]);
        if (read(p[0], &c, 1) != 1) {
                fprintf(stderr, "the app's namespace did not come up\n");
                return 1;
        }
        close(p[0]);
        app_pidfd = (int)syscall(SYS_pidfd_open, app_pid, 0);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_tcp_forward);
        tcase_add_test(tc, test_udp_forward);
        tcase_add_test(tc, test_udp_idle);
        tcase_add_test(tc, test_connect_timeout);
        tcase_add_test(tc, test_gone_app);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_set_fork_status(sr, CK_NOFORK);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        kill(app_pid, SIGKILL);
        waitpid(app_pid, NULL, 0);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
