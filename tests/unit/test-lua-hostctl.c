/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The host control channel's messages (src/lua/hostctl.c): what cella-lua accepts
 * from the supervisor, and that every short, bad or forged message is refused with
 * a reason and no crash; the receive side with real SCM_RIGHTS on a socketpair.
 */
#include <check.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lua/hostctl.h"

#define APP                                                                                        \
        "{\"id\":\"org.t.j\",\"entry\":\"/apps/org.t.j/main.lua\",\"args\":[\"a\"],"               \
        "\"data\":\"/data/org.t.j\",\"priority\":3,\"memory\":1048576}"

/* A message: header fields then json (may be NULL), into buf; returns its length. */
static size_t msg(char *buf, uint32_t magic, uint16_t type, uint16_t n_fds, uint32_t index,
                  uint32_t run, const char *json)
{
        size_t len = json ? strlen(json) : 0;
        CLuaCtlHeader h = {.magic = magic,
                           .type = type,
                           .n_fds = n_fds,
                           .index = index,
                           .run = run,
                           .len = (uint32_t)len};

        memcpy(buf, &h, sizeof h);
        if (len)
                memcpy(buf + sizeof h, json, len);
        return sizeof h + len;
}

static char buf[CLUA_CTL_MSG_MAX + 64];

START_TEST(test_valid)
{
        CLuaCtlMsg m;
        char err[256];
        size_t n;

        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 2, 1, 7, APP);
        ck_assert_int_eq(clua_ctl_parse(buf, n, 2, 4, &m, err, sizeof err), 0);
        ck_assert_int_eq(m.type, CLUA_CTL_JOIN);
        ck_assert_uint_eq(m.index, 1);
        ck_assert_uint_eq(m.run, 7);
        ck_assert_str_eq(m.app.id, "org.t.j");
        ck_assert_str_eq(m.app.entry, "/apps/org.t.j/main.lua");
        ck_assert_str_eq(m.app.data, "/data/org.t.j");
        ck_assert_uint_eq(m.app.n_args, 1);
        ck_assert_str_eq(m.app.args[0], "a");
        ck_assert_int_eq(m.app.priority, 3);
        ck_assert_uint_eq(m.app.memory_cap, 1048576);
        /* The fds are the packet's, never the JSON's. */
        ck_assert_int_eq(m.app.channel_fd, -1);
        ck_assert_int_eq(m.app.log_fd, -1);
        clua_ctl_msg_done(&m);

        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1, APP);
        ck_assert_int_eq(clua_ctl_parse(buf, n, 1, 1, &m, err, sizeof err), 0);
        clua_ctl_msg_done(&m);

        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_STOP, 0, 0, 0, NULL);
        ck_assert_int_eq(clua_ctl_parse(buf, n, 0, 1, &m, err, sizeof err), 0);
        ck_assert_uint_eq(m.run, 0);

        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_STOP, 0, 3, 9, NULL);
        ck_assert_int_eq(clua_ctl_parse(buf, n, 0, 4, &m, err, sizeof err), 0);
        ck_assert_int_eq(m.type, CLUA_CTL_STOP);
        ck_assert_uint_eq(m.index, 3);
        ck_assert_uint_eq(m.run, 9);
        ck_assert_ptr_null(m.json);
        clua_ctl_msg_done(&m);
}
END_TEST

/* Parses buf[0..n) with n_fds fds and 4 slots: must fail, naming why. */
static void refused(size_t n, unsigned n_fds, const char *why)
{
        CLuaCtlMsg m = {.index = 12345};
        char err[256] = "";

        ck_assert_int_eq(clua_ctl_parse(buf, n, n_fds, 4, &m, err, sizeof err), -EBADMSG);
        ck_assert_msg(strstr(err, why), "expected \"%s\", got \"%s\"", why, err);
        ck_assert_uint_eq(m.index, 12345); /* untouched */
}

START_TEST(test_bad)
{
        CLuaCtlHeader *h = (CLuaCtlHeader *)buf;
        size_t n;

        refused(0, 0, "shorter than its header");
        refused(sizeof(CLuaCtlHeader) - 1, 0, "shorter than its header");
        refused(CLUA_CTL_MSG_MAX + 1, 0, "longer than");
        n = msg(buf, 0x12345678, CLUA_CTL_STOP, 0, 0, 1, NULL);
        refused(n, 0, "bad magic");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_STOP, 0, 0, 1, NULL);
        h->reserved = 1;
        refused(n, 0, "reserved");
        n = msg(buf, CLUA_CTL_MAGIC, 4, 0, 0, 1, NULL);
        refused(n, 0, "unknown type");
        n = msg(buf, CLUA_CTL_MAGIC, 0, 0, 0, 1, NULL);
        refused(n, 0, "unknown type");
        /* The slot: below the host's slots only. */
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_STOP, 0, 4, 1, NULL);
        refused(n, 0, "slot out of range");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_STOP, 0, UINT32_MAX, 1, NULL);
        refused(n, 0, "slot out of range");
        /* Run 0 is the spec's apps': a STOP may name it, a JOIN may not. */
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 0, APP);
        refused(n, 1, "JOIN with run 0");
        /* Lengths and fds as the packet has them, not as the header claims. */
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 2, 0, 1, APP);
        refused(n - 1, 2, "length field");
        h->len += 100;
        refused(n, 2, "length field");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 2, 0, 1, APP);
        refused(n, 1, "fd count");
        refused(n, 0, "fd count");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 0, 0, 1, APP);
        refused(n, 0, "JOIN carries 1 or 2 fds");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 3, 0, 1, APP);
        refused(n, 3, "JOIN carries 1 or 2 fds");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_STOP, 1, 0, 1, NULL);
        refused(n, 1, "STOP carries no fds");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_STOP, 0, 0, 1, "{}");
        refused(n, 0, "STOP carries no fds");
        /* The JSON: one app object as the spec's, without fds or a slot of its own. */
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1, "{\"id\":");
        refused(n, 1, "JOIN: JSON");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1, "[1]");
        refused(n, 1, "expected an object");
        /* A JOIN cannot name fds of the host's (its own come in SCM_RIGHTS) nor a
         * slot other than its header's. */
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1,
                "{\"id\":\"a\",\"entry\":\"/e.lua\",\"channel_fd\":3}");
        refused(n, 1, "unknown key \"channel_fd\"");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1,
                "{\"id\":\"a\",\"entry\":\"/e.lua\",\"log_fd\":1}");
        refused(n, 1, "unknown key \"log_fd\"");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1,
                "{\"id\":\"a\",\"entry\":\"/e.lua\",\"slot\":2}");
        refused(n, 1, "unknown key \"slot\"");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1, "{\"entry\":\"/e.lua\"}");
        refused(n, 1, "\"id\"");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1,
                "{\"id\":\"a\\u0000b\",\"entry\":\"/e\"}");
        refused(n, 1, "JOIN: JSON"); /* NUL in a string: jansson refuses it */
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1, "{\"id\":\"a\",\"entry\":\"e.lua\"}");
        refused(n, 1, "\"entry\"");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1,
                "{\"id\":\"a\",\"entry\":\"/e\",\"data\":\"rel\"}");
        refused(n, 1, "\"data\"");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1,
                "{\"id\":\"a\",\"entry\":\"/e\",\"priority\":20}");
        refused(n, 1, "\"priority\"");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1,
                "{\"id\":\"a\",\"entry\":\"/e\",\"memory\":1}");
        refused(n, 1, "\"memory\"");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1,
                "{\"id\":\"a\",\"id\":\"b\",\"entry\":\"/e\"}");
        refused(n, 1, "JOIN: JSON");
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1,
                "{\"id\":\"a\",\"entry\":\"/e\",\"args\":[1]}");
        refused(n, 1, "\"args\"");
        {
                /* 201 arguments: one past the spec's bound. */
                char json[4096];
                size_t k = (size_t)snprintf(json, sizeof json,
                                            "{\"id\":\"a\",\"entry\":\"/e\",\"args\":[");

                for (unsigned i = 0; i <= CLUA_SPEC_ARGS_MAX; i++)
                        k += (size_t)snprintf(json + k, sizeof json - k, "%s\"x\"", i ? "," : "");
                snprintf(json + k, sizeof json - k, "]}");
                n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 1, 0, 1, json);
                refused(n, 1, "\"args\"");
        }
}
END_TEST

#define PRIO(json) msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_PRIORITY, 0, 1, 2, json)

/* A PRIORITY: each class word and the priority's bounds. */
START_TEST(test_priority_valid)
{
        static const char *const words[] = {"foreground", "visible", "service", "background",
                                            "cached"};
        CLuaCtlMsg m;
        char err[256], json[128];
        size_t n;

        for (unsigned i = 0; i < 5; i++)
                for (int p = -20; p <= 19; p += 39) {
                        snprintf(json, sizeof json, "{\"class\":\"%s\",\"priority\":%d}", words[i],
                                 p);
                        n = PRIO(json);
                        ck_assert_int_eq(clua_ctl_parse(buf, n, 0, 4, &m, err, sizeof err), 0);
                        ck_assert_int_eq(m.type, CLUA_CTL_PRIORITY);
                        ck_assert_uint_eq(m.index, 1);
                        ck_assert_uint_eq(m.run, 2);
                        ck_assert_uint_eq(m.cpu_class, CLUA_CPU_CLASS_FOREGROUND + i);
                        ck_assert_str_eq(clua_cpu_class_to_string(m.cpu_class), words[i]);
                        ck_assert_int_eq(m.priority, p);
                        ck_assert_ptr_null(m.json); /* nothing kept */
                        clua_ctl_msg_done(&m);
                }
        /* Keys in any order, spaces; run 0 (an app of the spec). */
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_PRIORITY, 0, 3, 0,
                " { \"priority\" : 0 , \"class\" : \"service\" } ");
        ck_assert_int_eq(clua_ctl_parse(buf, n, 0, 4, &m, err, sizeof err), 0);
        ck_assert_uint_eq(m.cpu_class, CLUA_CPU_CLASS_SERVICE);
        ck_assert_uint_eq(m.run, 0);
        clua_ctl_msg_done(&m);
        ck_assert_str_eq(clua_cpu_class_to_string(CLUA_CPU_CLASS_NONE), "");
        ck_assert_ptr_null(clua_cpu_class_to_string(_CLUA_CPU_CLASS_MAX));
}
END_TEST

START_TEST(test_priority_bad)
{
        CLuaCtlHeader *h = (CLuaCtlHeader *)buf;
        char big[CLUA_CTL_PRIORITY_MAX + 64];
        size_t n;

        n = PRIO("{\"class\":\"foreground\",\"priority\":0}");
        refused(n, 1, "fd count");
        h->n_fds = 1;
        refused(n, 1, "PRIORITY carries no fds");
        n = PRIO(NULL);
        refused(n, 0, "PRIORITY: JSON of 2 to 256 bytes");
        memset(big, ' ', sizeof big);
        memcpy(big, "{\"class\":\"cached\",\"priority\":0}", 31);
        big[CLUA_CTL_PRIORITY_MAX + 1] = '\0';
        n = PRIO(big);
        refused(n, 0, "PRIORITY: JSON of 2 to 256 bytes");
        big[CLUA_CTL_PRIORITY_MAX] = '\0'; /* exactly the bound: fine */
        {
                CLuaCtlMsg m;

                n = PRIO(big);
                ck_assert_int_eq(clua_ctl_parse(buf, n, 0, 4, &m, NULL, 0), 0);
                ck_assert_uint_eq(m.cpu_class, CLUA_CPU_CLASS_CACHED);
                clua_ctl_msg_done(&m);
        }
        n = PRIO("{\"class\":");
        refused(n, 0, "PRIORITY: JSON");
        n = PRIO("[\"foreground\", 0]");
        refused(n, 0, "PRIORITY: expected an object");
        n = PRIO("{\"class\":\"foreground\",\"priority\":0,\"x\":1}");
        refused(n, 0, "PRIORITY: unknown key");
        n = PRIO("{\"priority\":0}");
        refused(n, 0, "\"class\"");
        n = PRIO("{\"class\":\"Foreground\",\"priority\":0}");
        refused(n, 0, "\"class\"");
        n = PRIO("{\"class\":\"\",\"priority\":0}");
        refused(n, 0, "\"class\"");
        n = PRIO("{\"class\":\"frozen\",\"priority\":0}");
        refused(n, 0, "\"class\"");
        n = PRIO("{\"class\":1,\"priority\":0}");
        refused(n, 0, "\"class\"");
        n = PRIO("{\"class\":\"cached\\u0000x\",\"priority\":0}");
        refused(n, 0, "PRIORITY"); /* NUL in a string */
        n = PRIO("{\"class\":\"cached\"}");
        refused(n, 0, "\"priority\"");
        n = PRIO("{\"class\":\"cached\",\"priority\":20}");
        refused(n, 0, "\"priority\"");
        n = PRIO("{\"class\":\"cached\",\"priority\":-21}");
        refused(n, 0, "\"priority\"");
        n = PRIO("{\"class\":\"cached\",\"priority\":1.5}");
        refused(n, 0, "\"priority\"");
        n = PRIO("{\"class\":\"cached\",\"priority\":\"1\"}");
        refused(n, 0, "\"priority\"");
        n = PRIO("{\"class\":\"cached\",\"priority\":9223372036854775808}");
        refused(n, 0, "PRIORITY");
        n = PRIO("{\"class\":\"cached\",\"class\":\"foreground\",\"priority\":1}");
        refused(n, 0, "PRIORITY: JSON"); /* duplicate keys */
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_PRIORITY, 0, 4, 1,
                "{\"class\":\"cached\",\"priority\":1}");
        refused(n, 0, "slot out of range");
}
END_TEST

/* Every prefix of a PRIORITY and bytes flipped in it: refused or within bounds. */
START_TEST(test_priority_truncated_and_flipped)
{
        char copy[256];
        size_t n = msg(copy, CLUA_CTL_MAGIC, CLUA_CTL_PRIORITY, 0, 1, 7,
                       "{\"class\":\"background\",\"priority\":10}");

        for (size_t k = 0; k < n; k++) {
                char *exact = malloc(k ? k : 1);
                CLuaCtlMsg m;

                memcpy(exact, copy, k);
                ck_assert_int_eq(clua_ctl_parse(exact, k, 0, 4, &m, NULL, 0), -EBADMSG);
                free(exact);
        }
        srand(2);
        for (unsigned t = 0; t < 20000; t++) {
                char *exact = malloc(n);
                CLuaCtlMsg m;

                memcpy(exact, copy, n);
                for (int f = 0; f < 1 + rand() % 3; f++)
                        exact[rand() % n] = (char)rand();
                if (clua_ctl_parse(exact, n, 0, 4, &m, NULL, 0) == 0) {
                        ck_assert_uint_lt(m.index, 4);
                        if (m.type == CLUA_CTL_PRIORITY) {
                                ck_assert_uint_ge(m.cpu_class, CLUA_CPU_CLASS_FOREGROUND);
                                ck_assert_uint_lt(m.cpu_class, _CLUA_CPU_CLASS_MAX);
                                ck_assert_int_ge(m.priority, -20);
                                ck_assert_int_le(m.priority, 19);
                        }
                        clua_ctl_msg_done(&m);
                }
                free(exact);
        }
}
END_TEST

/* Every prefix of a valid JOIN, and bytes flipped in it: an error or a message,
 * never a crash or a read past the end (ASan). */
START_TEST(test_truncated_and_flipped)
{
        char copy[512];
        size_t n = msg(copy, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 2, 1, 7, APP);

        for (size_t k = 0; k < n; k++) {
                char *exact = malloc(k ? k : 1);
                CLuaCtlMsg m;

                memcpy(exact, copy, k);
                ck_assert_int_eq(clua_ctl_parse(exact, k, 2, 4, &m, NULL, 0), -EBADMSG);
                free(exact);
        }
        srand(1);
        for (unsigned t = 0; t < 20000; t++) {
                char *exact = malloc(n);
                CLuaCtlMsg m;

                memcpy(exact, copy, n);
                for (int f = 0; f < 1 + rand() % 3; f++)
                        exact[rand() % n] = (char)rand();
                if (clua_ctl_parse(exact, n, 2, 4, &m, NULL, 0) == 0) {
                        ck_assert_uint_lt(m.index, 4);
                        ck_assert(m.type != CLUA_CTL_JOIN || m.run != 0);
                        clua_ctl_msg_done(&m);
                }
                free(exact);
        }
}
END_TEST

/* Fds open in this process now. */
static unsigned open_fds(void)
{
        unsigned n = 0;

        for (int fd = 0; fd < 4096; fd++)
                n += fcntl(fd, F_GETFD) >= 0;
        return n;
}

/* Sends len bytes of b with n fds (copies of fd) on s. */
static void send_fds(int s, const void *b, size_t len, int fd, unsigned n)
{
        union {
                struct cmsghdr h;
                char c[CMSG_SPACE(8 * sizeof(int))];
        } cb = {};
        struct iovec iov = {.iov_base = (void *)b, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        int fds[8];

        for (unsigned i = 0; i < n; i++)
                fds[i] = fd;
        if (n) {
                struct cmsghdr *c;

                mh.msg_control = cb.c;
                mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(n * sizeof(int));
                memcpy(CMSG_DATA(c), fds, n * sizeof(int));
        }
        ck_assert_int_eq(sendmsg(s, &mh, 0), (ssize_t)len);
}

START_TEST(test_recv)
{
        static char in[CLUA_CTL_MSG_MAX];
        int sp[2], pfd[2], fds[CLUA_CTL_FDS_MAX] = {-1, -1};
        unsigned n_fds = 9;
        size_t len = 0, n;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
        /* Nothing queued. */
        ck_assert_int_eq(clua_ctl_recv(sp[1], in, sizeof in, &len, fds, &n_fds), -EAGAIN);
        /* A JOIN with its two fds: received, close-on-exec. */
        n = msg(buf, CLUA_CTL_MAGIC, CLUA_CTL_JOIN, 2, 0, 1, APP);
        send_fds(sp[0], buf, n, pfd[1], 2);
        ck_assert_int_eq(clua_ctl_recv(sp[1], in, sizeof in, &len, fds, &n_fds), 1);
        ck_assert_uint_eq(len, n);
        ck_assert_uint_eq(n_fds, 2);
        ck_assert_int_eq(fcntl(fds[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        close(fds[0]);
        close(fds[1]);
        /* More fds than a message has: refused, and none of them left open here. */
        send_fds(sp[0], buf, n, pfd[1], 5);
        {
                unsigned before = open_fds();

                ck_assert_int_eq(clua_ctl_recv(sp[1], in, sizeof in, &len, fds, &n_fds), -EBADMSG);
                ck_assert_uint_eq(open_fds(), before);
        }
        /* A packet longer than the buffer: refused (truncated), not half-parsed. */
        send_fds(sp[0], buf, n, pfd[1], 0);
        ck_assert_int_eq(clua_ctl_recv(sp[1], in, 16, &len, fds, &n_fds), -EBADMSG);
        /* The peer gone: EOF. */
        close(sp[0]);
        ck_assert_int_eq(clua_ctl_recv(sp[1], in, sizeof in, &len, fds, &n_fds), 0);
        close(sp[1]);
        close(pfd[0]);
        close(pfd[1]);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("lua-hostctl");
        TCase *tc = tcase_create("hostctl");

        tcase_add_test(tc, test_valid);
        tcase_add_test(tc, test_bad);
        tcase_add_test(tc, test_truncated_and_flipped);
        tcase_add_test(tc, test_priority_valid);
        tcase_add_test(tc, test_priority_bad);
        tcase_add_test(tc, test_priority_truncated_and_flipped);
        tcase_add_test(tc, test_recv);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
