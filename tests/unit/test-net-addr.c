/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Address spellings and classes (src/net/addr.c): a table of every spelling the
 * scoped rights must see through, and names that must stay names.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "net/addr.h"

typedef struct Case {
        const char *host;
        int rc;            /* net_addr_parse()'s answer */
        NetAddrClass cls;  /* when rc == 1 */
        const char *canon; /* net_addr_format(brackets) when rc == 1 */
} Case;

#define A(h, c, canon)                                                                             \
        {                                                                                          \
                h, 1, c, canon                                                                     \
        }
#define NAME(h)                                                                                    \
        {                                                                                          \
                h, 0, 0, NULL                                                                      \
        }
#define BAD(h)                                                                                     \
        {                                                                                          \
                h, -EINVAL, 0, NULL                                                                \
        }

static const Case cases[] = {
        /* Loopback, every spelling. */
        A("127.0.0.1", NET_ADDR_LOOPBACK, "127.0.0.1"),
        A("127.1", NET_ADDR_LOOPBACK, "127.0.0.1"),
        A("127.0.1", NET_ADDR_LOOPBACK, "127.0.0.1"),
        A("2130706433", NET_ADDR_LOOPBACK, "127.0.0.1"),
        A("0177.0.0.1", NET_ADDR_LOOPBACK, "127.0.0.1"),
        A("0177.1", NET_ADDR_LOOPBACK, "127.0.0.1"),
        A("017700000001", NET_ADDR_LOOPBACK, "127.0.0.1"),
        A("0x7f.0.0.1", NET_ADDR_LOOPBACK, "127.0.0.1"),
        A("0x7F000001", NET_ADDR_LOOPBACK, "127.0.0.1"),
        A("0x7f.1", NET_ADDR_LOOPBACK, "127.0.0.1"),
        A("0x7f.0x0.0.01", NET_ADDR_LOOPBACK, "127.0.0.1"),
        A("127.0.0.1.", NET_ADDR_LOOPBACK, "127.0.0.1"),
        A("127.255.255.254", NET_ADDR_LOOPBACK, "127.255.255.254"),
        A("::1", NET_ADDR_LOOPBACK, "[::1]"),
        A("[::1]", NET_ADDR_LOOPBACK, "[::1]"),
        A("0:0:0:0:0:0:0:1", NET_ADDR_LOOPBACK, "[::1]"),
        A("::ffff:127.0.0.1", NET_ADDR_LOOPBACK, "[::ffff:127.0.0.1]"),
        A("[::ffff:7f00:1]", NET_ADDR_LOOPBACK, "[::ffff:127.0.0.1]"),
        A("::127.0.0.1", NET_ADDR_LOOPBACK, "[::127.0.0.1]"),
        A("64:ff9b::127.0.0.1", NET_ADDR_LOOPBACK, "[64:ff9b::7f00:1]"),
        A("2002:7f00:1::", NET_ADDR_LOOPBACK, "[2002:7f00:1::]"),
        A("::ffff:0:127.0.0.1", NET_ADDR_LOOPBACK, "[::ffff:0:7f00:1]"),
        /* The unspecified address (Linux connects 0.0.0.0 to loopback). */
        A("0.0.0.0", NET_ADDR_UNSPECIFIED, "0.0.0.0"),
        A("0", NET_ADDR_UNSPECIFIED, "0.0.0.0"),
        A("0x0", NET_ADDR_UNSPECIFIED, "0.0.0.0"),
        A("::", NET_ADDR_UNSPECIFIED, "[::]"),
        A("[::]", NET_ADDR_UNSPECIFIED, "[::]"),
        A("::ffff:0.0.0.0", NET_ADDR_UNSPECIFIED, "[::ffff:0.0.0.0]"),
        A("0.1.2.3", NET_ADDR_RESERVED, "0.1.2.3"),
        /* RFC 1918. */
        A("10.0.0.1", NET_ADDR_PRIVATE, "10.0.0.1"),
        A("10.1", NET_ADDR_PRIVATE, "10.0.0.1"),
        A("167772161", NET_ADDR_PRIVATE, "10.0.0.1"),
        A("012.0.0.1", NET_ADDR_PRIVATE, "10.0.0.1"),
        A("0xa.0.0.1", NET_ADDR_PRIVATE, "10.0.0.1"),
        A("0x0a000001", NET_ADDR_PRIVATE, "10.0.0.1"),
        A("172.16.0.1", NET_ADDR_PRIVATE, "172.16.0.1"),
        A("172.31.255.255", NET_ADDR_PRIVATE, "172.31.255.255"),
        A("192.168.1.1", NET_ADDR_PRIVATE, "192.168.1.1"),
        A("192.168.257", NET_ADDR_PRIVATE, "192.168.1.1"),
        A("3232235777", NET_ADDR_PRIVATE, "192.168.1.1"),
        A("::ffff:10.0.0.1", NET_ADDR_PRIVATE, "[::ffff:10.0.0.1]"),
        A("[::ffff:a00:1]", NET_ADDR_PRIVATE, "[::ffff:10.0.0.1]"),
        A("::ffff:192.168.0.1", NET_ADDR_PRIVATE, "[::ffff:192.168.0.1]"),
        A("::10.0.0.1", NET_ADDR_PRIVATE, "[::10.0.0.1]"),
        A("64:ff9b::a00:1", NET_ADDR_PRIVATE, "[64:ff9b::a00:1]"),
        A("64:ff9b::10.0.0.1", NET_ADDR_PRIVATE, "[64:ff9b::a00:1]"),
        A("2002:a00:1::1", NET_ADDR_PRIVATE, "[2002:a00:1::1]"),
        A("2002:c0a8:101::", NET_ADDR_PRIVATE, "[2002:c0a8:101::]"),
        /* Neighbours of RFC 1918 that are public. */
        A("172.15.255.255", NET_ADDR_PUBLIC, "172.15.255.255"),
        A("172.32.0.0", NET_ADDR_PUBLIC, "172.32.0.0"),
        A("11.0.0.1", NET_ADDR_PUBLIC, "11.0.0.1"),
        A("192.167.255.255", NET_ADDR_PUBLIC, "192.167.255.255"),
        /* Link-local and metadata. */
        A("169.254.1.1", NET_ADDR_LINK_LOCAL, "169.254.1.1"),
        A("fe80::1", NET_ADDR_LINK_LOCAL, "[fe80::1]"),
        A("fe80::1%lo", NET_ADDR_LINK_LOCAL, "[fe80::1%lo]"),
        A("[fe80::1%lo]", NET_ADDR_LINK_LOCAL, "[fe80::1%lo]"),
        A("febf:ffff::1", NET_ADDR_LINK_LOCAL, "[febf:ffff::1]"),
        A("169.254.169.254", NET_ADDR_METADATA, "169.254.169.254"),
        A("2852039166", NET_ADDR_METADATA, "169.254.169.254"),
        A("0xa9fea9fe", NET_ADDR_METADATA, "169.254.169.254"),
        A("0251.0376.0251.0376", NET_ADDR_METADATA, "169.254.169.254"),
        A("169.254.43518", NET_ADDR_METADATA, "169.254.169.254"),
        A("0xa9.0xfe.0xa9.0xfe", NET_ADDR_METADATA, "169.254.169.254"),
        A("::ffff:169.254.169.254", NET_ADDR_METADATA, "[::ffff:169.254.169.254]"),
        A("[::ffff:a9fe:a9fe]", NET_ADDR_METADATA, "[::ffff:169.254.169.254]"),
        A("64:ff9b::a9fe:a9fe", NET_ADDR_METADATA, "[64:ff9b::a9fe:a9fe]"),
        A("2002:a9fe:a9fe::", NET_ADDR_METADATA, "[2002:a9fe:a9fe::]"),
        A("fd00:ec2::254", NET_ADDR_METADATA, "[fd00:ec2::254]"),
        A("[fd00:0ec2:0000:0000:0000:0000:0000:0254]", NET_ADDR_METADATA, "[fd00:ec2::254]"),
        A("169.254.170.2", NET_ADDR_METADATA, "169.254.170.2"),
        A("100.100.100.200", NET_ADDR_METADATA, "100.100.100.200"),
        A("192.0.0.192", NET_ADDR_METADATA, "192.0.0.192"),
        /* Unique-local, multicast, broadcast, CGNAT. */
        A("fc00::1", NET_ADDR_UNIQUE_LOCAL, "[fc00::1]"),
        A("fd12:3456::1", NET_ADDR_UNIQUE_LOCAL, "[fd12:3456::1]"),
        A("224.0.0.1", NET_ADDR_MULTICAST, "224.0.0.1"),
        A("239.255.255.250", NET_ADDR_MULTICAST, "239.255.255.250"),
        A("ff02::1", NET_ADDR_MULTICAST, "[ff02::1]"),
        A("::ffff:224.0.0.251", NET_ADDR_MULTICAST, "[::ffff:224.0.0.251]"),
        A("255.255.255.255", NET_ADDR_BROADCAST, "255.255.255.255"),
        A("4294967295", NET_ADDR_BROADCAST, "255.255.255.255"),
        A("0xffffffff", NET_ADDR_BROADCAST, "255.255.255.255"),
        A("100.64.0.1", NET_ADDR_CGNAT, "100.64.0.1"),
        A("100.127.255.255", NET_ADDR_CGNAT, "100.127.255.255"),
        A("100.128.0.0", NET_ADDR_PUBLIC, "100.128.0.0"),
        /* The rest of IANA's not globally reachable blocks. */
        A("192.0.0.1", NET_ADDR_RESERVED, "192.0.0.1"),
        A("192.0.0.9", NET_ADDR_PUBLIC, "192.0.0.9"),
        A("192.0.2.1", NET_ADDR_RESERVED, "192.0.2.1"),
        A("198.51.100.7", NET_ADDR_RESERVED, "198.51.100.7"),
        A("203.0.113.9", NET_ADDR_RESERVED, "203.0.113.9"),
        A("198.18.0.1", NET_ADDR_RESERVED, "198.18.0.1"),
        A("198.19.255.255", NET_ADDR_RESERVED, "198.19.255.255"),
        A("198.20.0.0", NET_ADDR_PUBLIC, "198.20.0.0"),
        A("240.0.0.1", NET_ADDR_RESERVED, "240.0.0.1"),
        A("255.255.255.254", NET_ADDR_RESERVED, "255.255.255.254"),
        A("192.88.99.1", NET_ADDR_RESERVED, "192.88.99.1"),
        A("2001:db8::1", NET_ADDR_RESERVED, "[2001:db8::1]"),
        A("3fff::1", NET_ADDR_RESERVED, "[3fff::1]"),
        A("100::1", NET_ADDR_RESERVED, "[100::1]"),
        A("2001::1", NET_ADDR_RESERVED, "[2001::1]"),
        A("2001:2::1", NET_ADDR_RESERVED, "[2001:2::1]"),
        A("64:ff9b:1::1", NET_ADDR_RESERVED, "[64:ff9b:1::1]"),
        A("fec0::1", NET_ADDR_RESERVED, "[fec0::1]"),
        A("5f00::1", NET_ADDR_RESERVED, "[5f00::1]"),
        A("4000::1", NET_ADDR_RESERVED, "[4000::1]"),
        A("::2", NET_ADDR_RESERVED, "[::2]"),
        A("::8.8.8.8", NET_ADDR_RESERVED, "[::8.8.8.8]"),
        /* Public, in several spellings. */
        A("8.8.8.8", NET_ADDR_PUBLIC, "8.8.8.8"),
        A("134744072", NET_ADDR_PUBLIC, "8.8.8.8"),
        A("0x8.0x8.0x8.0x8", NET_ADDR_PUBLIC, "8.8.8.8"),
        A("::ffff:8.8.8.8", NET_ADDR_PUBLIC, "[::ffff:8.8.8.8]"),
        A("64:ff9b::808:808", NET_ADDR_PUBLIC, "[64:ff9b::808:808]"),
        A("2002:808:808::1", NET_ADDR_PUBLIC, "[2002:808:808::1]"),
        A("2001:4860:4860::8888", NET_ADDR_PUBLIC, "[2001:4860:4860::8888]"),
        A("[2606:4700::1111]", NET_ADDR_PUBLIC, "[2606:4700::1111]"),
        A("2001:3::1", NET_ADDR_PUBLIC, "[2001:3::1]"),
        A("192.0.0.10", NET_ADDR_PUBLIC, "192.0.0.10"),
        /* Names stay names. */
        NAME("example.com"),
        NAME("allowed.test"),
        NAME("localhost"),
        NAME("1.2.3.4.example.com"),
        NAME("cafe"),
        NAME("0xbeef.com"),
        NAME("deadbeef"),
        NAME("a1"),
        NAME("x0"),
        NAME("1a.2b"),
        /* Spellings of addresses that are not valid: refused, never resolved. */
        BAD(""),
        BAD("256.0.0.1"),
        NAME("1.2.3.4.."), /* an empty label: no address spelling, and no valid name */
        BAD("1..2"),
        BAD("..1"),
        BAD("1.2.3.256"),
        BAD("1.2.65536"),
        BAD("1.16777216"),
        BAD("4294967296"),
        BAD("99999999999999999999999"),
        BAD("08.0.0.1"),
        BAD("0x7g.1"),
        BAD("example.123"),
        BAD("foo.0x10"),
        NAME("1.2.3.4.."), /* an empty label: no address spelling, and no valid name */
        BAD("::ffff:0177.0.0.1"),
        BAD("::ffff:127.1"),
        BAD("[::1"),
        BAD("::1]"),
        BAD("[127.0.0.1]"),
        BAD("[]"),
        BAD(":::"),
        BAD("1:2:3:4:5:6:7:8:9"),
        BAD("fe80::1%"),
        BAD("fe80::1%eth0/x"),
        BAD("fe80::1%aaaaaaaaaaaaaaaaaaaaaaaa"),
        BAD("[::1]:80"),
        BAD("127.0.0.1:80"),
        BAD("127.0.0.1\n"),
        BAD("12 7.0.0.1"),
};

START_TEST(test_table)
{
        const Case *c = &cases[_i];
        NetAddr a;
        NetAddrInfo info;
        char buf[NET_ADDR_STRLEN];
        int r = net_addr_parse(c->host, &a);

        ck_assert_msg(r == c->rc, "%s: parse gave %d, expected %d", c->host, r, c->rc);
        if (r >= 0)
                ck_assert_msg(net_host_looks_numeric(c->host) == (r == 1), "%s: looks numeric?",
                              c->host);
        if (r != 1)
                return;
        ck_assert_int_eq(net_addr_classify(&a, &info), c->cls);
        ck_assert_msg(info.cls == c->cls, "%s: class %s, expected %s", c->host,
                      net_addr_class_name(info.cls), net_addr_class_name(c->cls));
        ck_assert_ptr_nonnull(info.block);
        ck_assert_str_eq(net_addr_format(&a, true, buf, sizeof(buf)), c->canon);
        /* The canonical form parses back to the same address. */
        NetAddr b;
        ck_assert_int_eq(net_addr_parse(buf, &b), 1);
        ck_assert(net_addr_equal(&a, &b));
}
END_TEST

START_TEST(test_embedded_named)
{
        NetAddr a;
        NetAddrInfo info;
        char buf[NET_ADDR_STRLEN];

        ck_assert_int_eq(net_addr_parse("::ffff:10.0.0.1", &a), 1);
        ck_assert_int_eq(net_addr_classify(&a, &info), NET_ADDR_PRIVATE);
        ck_assert(info.embedded);
        ck_assert_str_eq(info.form, "IPv4-mapped");
        ck_assert_str_eq(net_addr_format(&info.v4, true, buf, sizeof(buf)), "10.0.0.1");
        ck_assert_str_eq(info.block, "a private address (RFC 1918)");

        ck_assert_int_eq(net_addr_parse("2002:a9fe:a9fe::1", &a), 1);
        ck_assert_int_eq(net_addr_classify(&a, &info), NET_ADDR_METADATA);
        ck_assert_str_eq(info.form, "6to4");
        ck_assert_str_eq(net_addr_format(&info.v4, true, buf, sizeof(buf)), "169.254.169.254");

        ck_assert_int_eq(net_addr_parse("8.8.8.8", &a), 1);
        ck_assert_int_eq(net_addr_classify(&a, &info), NET_ADDR_PUBLIC);
        ck_assert(!info.embedded);
}
END_TEST

START_TEST(test_names_and_phrases)
{
        for (int c = 0; c < _NET_ADDR_CLASS_MAX; c++) {
                ck_assert_str_ne(net_addr_class_name((NetAddrClass)c), "?");
                ck_assert_str_ne(net_addr_class_phrase((NetAddrClass)c), "?");
        }
        ck_assert_str_eq(net_addr_class_name(_NET_ADDR_CLASS_MAX), "?");
        ck_assert_str_eq(net_addr_class_phrase(NET_ADDR_PRIVATE), "a private address (RFC 1918)");
        ck_assert_int_eq(net_addr_parse(NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_sockaddr_round_trip)
{
        const char *hosts[] = {"1.2.3.4", "[2001:4860::1]", "fe80::1%1"};

        for (unsigned i = 0; i < 3; i++) {
                NetAddr a, b;
                struct sockaddr_storage ss;
                socklen_t l;

                ck_assert_int_eq(net_addr_parse(hosts[i], &a), 1);
                l = net_addr_sockaddr(&a, 8080, &ss);
                ck_assert_uint_eq(l, a.family == AF_INET ? sizeof(struct sockaddr_in)
                                                         : sizeof(struct sockaddr_in6));
                ck_assert_int_eq(net_addr_from_sockaddr((struct sockaddr *)&ss, &b), 0);
                ck_assert_int_eq(a.family, b.family);
                ck_assert(memcmp(a.bytes, b.bytes, 16) == 0);
                ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("net-addr");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_loop_test(tc, test_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
        tcase_add_test(tc, test_embedded_named);
        tcase_add_test(tc, test_names_and_phrases);
        tcase_add_test(tc, test_sockaddr_round_trip);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_set_fork_status(sr, CK_NOFORK);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
