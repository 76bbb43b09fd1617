/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * net.internet's rules (src/net/fullnet.c): which net.connect rights open an exact
 * address, the nft script's ranges and exceptions, and the script loaded for real
 * into a scratch network namespace (root), replaced in place, refused when wrong.
 * pasta itself runs only in the integration tests, inside a network lab
 * (tests/integration/test_net_internet.py).
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
#include <sys/wait.h>
#include <unistd.h>

#include "base/macro.h"
#include "net/fullnet.h"
#include "skip.h"

START_TEST(test_allow_parse)
{
        FullNetAllow a;
        char s[INET6_ADDRSTRLEN];

        ck_assert_int_eq(fullnet_allow_parse("net.connect:10.77.0.2:8083", &a), 1);
        ck_assert_int_eq(a.family, AF_INET);
        ck_assert_int_eq(a.port, 8083);
        ck_assert_str_eq(inet_ntop(AF_INET, &a.v4, s, sizeof s), "10.77.0.2");
        ck_assert_int_eq(fullnet_allow_parse("net.connect:[fd00::1]:443", &a), 1);
        ck_assert_int_eq(a.family, AF_INET6);
        ck_assert_str_eq(inet_ntop(AF_INET6, &a.v6, s, sizeof s), "fd00::1");
        ck_assert_int_eq(fullnet_allow_parse("net.connect:::1:5432", &a), 1);
        ck_assert_int_eq(a.family, AF_INET6);
        ck_assert_int_eq(a.port, 5432);
        /* Names, patterns, any port, other spellings of an address, other rights:
         * none opens a blocked address. */
        static const char *const no[] = {
                "net.connect:db.example.com:5432",
                "net.connect:*.example.com:443",
                "net.connect:10.0.0.1:*",
                "net.connect:0x0a000001:80",
                "net.connect:167772161:80",
                "net.connect:010.0.0.1:80",
                "net.connect:10.1:80",
                "net.connect:10.0.0.1:0",
                "net.connect:10.0.0.1:65536",
                "net.connect:10.0.0.1:080",
                "net.connect:10.0.0.1:",
                "net.connect:10.0.0.1",
                "net.connect::80",
                "net.connect:[10.0.0.1:80",
                "net.internet",
                "net.listen:80",
                "fs.read:documents",
                NULL,
        };
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                ck_assert_msg(fullnet_allow_parse(no[i], &a) == 0, "%s opened an address",
                              no[i] ?: "NULL");
}
END_TEST

START_TEST(test_rules_text)
{
        _cleanup_free_ char *s = NULL, *d = NULL;
        FullNetAllow a[1];

        ck_assert_int_eq(fullnet_allow_parse("net.connect:10.77.0.2:8083", &a[0]), 1);
        ck_assert_int_eq(fullnet_rules(a, 1, false, &s), 0);
        /* The classes of docs/network.md, and their IPv6 forms. */
        static const char *const want[] = {
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "127.0.0.0/8",
                "169.254.0.0/16",
                "100.64.0.0/10",
                "224.0.0.0/4",
                "240.0.0.0/4",
                "0.0.0.0/8",
                "fc00::/7",
                "fe80::/10",
                "ff00::/8",
                "::/96",
                "::ffff:10.0.0.0/104",
                "::ffff:169.254.0.0/112",
                "64:ff9b::a00:0/104",
                "2002:a00::/24",
                "2002:a9fe::/32",
                "oif \"lo\" accept",
                "ip daddr " FULLNET_DNS_V4 " udp dport 53 accept",
                "ip daddr 10.77.0.2 tcp dport 8083 accept",
                "ip daddr 10.77.0.2 udp dport 8083 accept",
        };
        for (size_t i = 0; i < ELEMENTSOF(want); i++)
                ck_assert_msg(strstr(s, want[i]), "no %s in:\n%s", want[i], s);
        /* The exception comes before the rejects. */
        ck_assert(strstr(s, "tcp dport 8083 accept") < strstr(s, "@blocked4 reject"));
        ck_assert_int_eq(fullnet_rules(NULL, 0, true, &d), 0);
        ck_assert_ptr_null(strstr(d, "blocked4"));
        ck_assert_ptr_nonnull(strstr(d, "reject with icmpx admin-prohibited"));
}
END_TEST

/* A child in a new network namespace, waiting to be killed; its pid. */
static pid_t scratch_netns(void)
{
        int p[2];
        char c;
        pid_t pid;

        ck_assert_int_eq(pipe(p), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(p[0]);
                if (unshare(CLONE_NEWNET) < 0)
                        _exit(1);
                (void)write(p[1], "x", 1);
                pause();
                _exit(0);
        }
        close(p[1]);
        ck_assert_int_eq(read(p[0], &c, 1), 1);
        close(p[0]);
        return pid;
}

/* `nft list table inet FULLNET_NFT_TABLE` in pid's namespace, through nsenter. */
static char *list_table(pid_t pid)
{
        char cmd[256], *buf = calloc(1, 65536);
        size_t n = 0, k;
        FILE *f;

        snprintf(cmd, sizeof cmd, "nsenter -t %d -n nft list table inet " FULLNET_NFT_TABLE " 2>&1",
                 (int)pid);
        f = popen(cmd, "r");
        ck_assert_ptr_nonnull(f);
        while ((k = fread(buf + n, 1, 65535 - n, f)) > 0)
                n += k;
        pclose(f);
        return buf;
}

START_TEST(test_rules_load)
{
        _cleanup_free_ char *s = NULL, *d = NULL, *l1 = NULL, *l2 = NULL;
        char err[512], proc[64];
        int fd, r;
        pid_t pid;

        if (geteuid() != 0)
                SKIP_TEST("loading rules into a namespace needs root");
        if (access("/usr/sbin/nft", X_OK) < 0 || access("/usr/bin/nsenter", X_OK) < 0)
                SKIP_TEST("needs nft and nsenter to look at the rules");
        pid = scratch_netns();
        snprintf(proc, sizeof proc, "/proc/%d/ns/net", (int)pid);
        fd = open(proc, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fullnet_rules(NULL, 0, false, &s), 0);
        r = fullnet_load_rules(fd, s, err, sizeof err);
        ck_assert_msg(r == 0, "%d: %s", r, err);
        l1 = list_table(pid);
        ck_assert_msg(strstr(l1, "set blocked4") && strstr(l1, "10.0.0.0/8"), "%s", l1);
        /* Loaded again (a revoke's drop-all): replaced, not added to. */
        ck_assert_int_eq(fullnet_rules(NULL, 0, true, &d), 0);
        r = fullnet_load_rules(fd, d, err, sizeof err);
        ck_assert_msg(r == 0, "%d: %s", r, err);
        l2 = list_table(pid);
        ck_assert_msg(!strstr(l2, "blocked4") && strstr(l2, "reject"), "%s", l2);
        /* Our own namespace has no such table: the thread moved, not the process. */
        {
                _cleanup_free_ char *own = list_table(getpid());

                ck_assert_msg(!strstr(own, "blocked4"), "%s", own);
        }
        /* A script nft refuses: its message, and -EIO. */
        r = fullnet_load_rules(fd, "table inet x { chain c { nonsense } }", err, sizeof err);
        ck_assert_int_eq(r, -EIO);
        ck_assert_msg(strstr(err, "nft:") && strstr(err, "Error"), "%s", err);
        /* A namespace fd that is not one. */
        r = fullnet_load_rules(STDIN_FILENO, s, err, sizeof err);
        ck_assert_int_lt(r, 0);
        ck_assert_msg(strstr(err, "join the app's network namespace"), "%s", err);
        close(fd);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}
END_TEST

START_TEST(test_start_fails_clearly)
{
        FullNetOptions o = {.pasta_path = "/nonexistent/pasta"};
        FullNet *n = NULL;
        char err[512];
        int r;

        /* No such process: its namespace cannot be opened. */
        r = fullnet_start(0x7ffffff0, &o, &n, err, sizeof err);
        ck_assert_int_lt(r, 0);
        ck_assert_ptr_null(n);
        ck_assert_msg(strstr(err, "/proc/") && strstr(err, "/ns/net"), "%s", err);
        /* No pasta: says which package. */
        r = fullnet_start(getpid(), &o, &n, err, sizeof err);
        ck_assert_int_eq(r, -ENOENT);
        ck_assert_ptr_null(n);
        ck_assert_msg(strstr(err, "/nonexistent/pasta") && strstr(err, "passt"), "%s", err);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("fullnet");
        TCase *tc = tcase_create("fullnet");
        TCase *load = tcase_create("load");

        if (skip_init() < 0)
                return EXIT_FAILURE;
        tcase_add_test(tc, test_allow_parse);
        tcase_add_test(tc, test_rules_text);
        tcase_add_test(tc, test_start_fails_clearly);
        suite_add_tcase(s, tc);
        /* Needs root, nft and nsenter: a case of its own, so that a skip is one. */
        tcase_set_tags(load, "alone");
        tcase_add_test(load, test_rules_load);
        suite_add_tcase(s, load);
        return skip_run(srunner_create(s));
}
