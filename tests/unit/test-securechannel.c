/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcella's secure channels (src/lib/channel.c) without a kernel: two channels
 * joined through a relay the test holds (each side's socketpair has its raw end
 * here), so every frame can be altered, replayed, reordered, cut or dropped on its
 * way, as a bridge carrying the bytes could. And the bus signatures
 * (src/wire/bussig.h, cella_bus_verify_body()), with a key of the test's own.
 */
#include <check.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire/bussig.h"
#include "cella.h"
#include "cella.pb-c.h"

typedef struct Pair {
        CellaChannel *a, *b; /* a opened (crypto_kx client), b accepted */
        int ra, rb;          /* raw ends: what a sends comes out of ra, b's out of rb */
} Pair;

static void pair_new(Pair *p, unsigned flags)
{
        uint8_t pka[32], ska[32], pkb[32], skb[32];
        int sa[2], sb[2];

        ck_assert_int_eq(cella_kx_keypair(pka, ska), 0);
        ck_assert_int_eq(cella_kx_keypair(pkb, skb), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sa), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sb), 0);
        ck_assert_int_eq(cella_channel_wrap(sa[0], true, pka, ska, pkb, "org.test.b", flags, &p->a),
                         0);
        ck_assert_int_eq(
                cella_channel_wrap(sb[0], false, pkb, skb, pka, "org.test.a", flags, &p->b), 0);
        p->ra = sa[1];
        p->rb = sb[1];
}

static void pair_free(Pair *p)
{
        cella_channel_close(p->a);
        cella_channel_close(p->b);
        close(p->ra);
        close(p->rb);
}

/* One frame off from (nonblocking: it must be there), its length. */
static ssize_t take(int from, uint8_t *buf, size_t size)
{
        ssize_t n = recv(from, buf, size, MSG_DONTWAIT);

        ck_assert_int_ge(n, 0);
        return n;
}

static void put(int to, const uint8_t *buf, size_t n)
{
        ck_assert_int_eq(send(to, buf, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Carries one frame unchanged. */
static void carry(int from, int to)
{
        static uint8_t f[CELLA_CHANNEL_MSG_MAX + 64];

        put(to, f, (size_t)take(from, f, sizeof f));
}

static void send_str(CellaChannel *ch, const char *s)
{
        ck_assert_int_eq(cella_channel_send(ch, s, strlen(s)), 0);
}

static void expect_str(CellaChannel *ch, const char *s)
{
        char buf[256];
        ssize_t n = cella_channel_recv(ch, buf, sizeof buf);

        ck_assert_int_eq(n, (ssize_t)strlen(s));
        ck_assert_mem_eq(buf, s, (size_t)n);
}

START_TEST(test_both_ways_and_close)
{
        static uint8_t big[CELLA_CHANNEL_MSG_MAX], in[CELLA_CHANNEL_MSG_MAX];
        uint8_t f[CELLA_CHANNEL_MSG_MAX + 64];
        Pair p;

        pair_new(&p, 0);
        ck_assert_str_eq(cella_channel_peer(p.a), "org.test.b");
        ck_assert(!cella_channel_plaintext(p.a));
        carry(p.ra, p.rb); /* a's header */
        carry(p.rb, p.ra); /* b's header */
        send_str(p.a, "hello b");
        /* On the wire it is not the plaintext, and 17 bytes longer. */
        ck_assert_int_eq(take(p.ra, f, sizeof f), 7 + CELLA_CHANNEL_OVERHEAD);
        ck_assert(memmem(f, 7 + CELLA_CHANNEL_OVERHEAD, "hello b", 7) == NULL);
        put(p.rb, f, 7 + CELLA_CHANNEL_OVERHEAD);
        expect_str(p.b, "hello b");
        send_str(p.b, "hello a");
        carry(p.rb, p.ra);
        expect_str(p.a, "hello a");
        /* An empty message and the largest. */
        send_str(p.a, "");
        carry(p.ra, p.rb);
        expect_str(p.b, "");
        randombytes_buf(big, sizeof big);
        ck_assert_int_eq(cella_channel_send(p.a, big, sizeof big), 0);
        carry(p.ra, p.rb);
        ck_assert_int_eq(cella_channel_recv(p.b, in, sizeof in), (ssize_t)sizeof big);
        ck_assert_mem_eq(in, big, sizeof big);
        ck_assert_int_eq(cella_channel_send(p.a, big, sizeof big + 1), -EMSGSIZE);
        /* A proper close: the peer's recv says so, and keeps saying so. */
        p.a = cella_channel_close(p.a);
        carry(p.ra, p.rb);
        ck_assert_int_eq(cella_channel_recv(p.b, in, sizeof in), -EPIPE);
        ck_assert_int_eq(cella_channel_recv(p.b, in, sizeof in), -EPIPE);
        pair_free(&p);
}
END_TEST

/* Sends three messages from a; returns with the headers carried and the three
 * frames in f[0..2] (lengths n[]), not yet delivered. */
static void three(Pair *p, uint8_t f[3][256], ssize_t n[3])
{
        carry(p->ra, p->rb);
        carry(p->rb, p->ra);
        send_str(p->a, "one");
        send_str(p->a, "two");
        send_str(p->a, "three");
        for (int i = 0; i < 3; i++)
                n[i] = take(p->ra, f[i], 256);
}

/* After a failure b is dead: every later recv fails the same, send too. */
static void expect_dead(Pair *p, int error)
{
        char buf[64];

        ck_assert_int_eq(cella_channel_recv(p->b, buf, sizeof buf), error);
        ck_assert_int_eq(cella_channel_recv(p->b, buf, sizeof buf), error);
        ck_assert_int_eq(cella_channel_send(p->b, "x", 1), -ECONNRESET);
}

START_TEST(test_tampered)
{
        uint8_t f[3][256];
        ssize_t n[3];
        Pair p;

        for (int where = 0; where < 3; where++) { /* ciphertext, tag, the MAC's last byte */
                pair_new(&p, 0);
                three(&p, f, n);
                put(p.rb, f[0], (size_t)n[0]);
                expect_str(p.b, "one");
                f[1][where == 0 ? 0 : where == 1 ? n[1] - 17 : n[1] - 1] ^= 0x04;
                put(p.rb, f[1], (size_t)n[1]);
                expect_dead(&p, -EBADMSG);
                pair_free(&p);
        }
}
END_TEST

START_TEST(test_replayed)
{
        uint8_t f[3][256];
        ssize_t n[3];
        Pair p;

        pair_new(&p, 0);
        three(&p, f, n);
        put(p.rb, f[0], (size_t)n[0]);
        put(p.rb, f[0], (size_t)n[0]);
        expect_str(p.b, "one");
        expect_dead(&p, -EBADMSG);
        pair_free(&p);
}
END_TEST

START_TEST(test_reordered)
{
        uint8_t f[3][256];
        ssize_t n[3];
        Pair p;

        pair_new(&p, 0);
        three(&p, f, n);
        put(p.rb, f[1], (size_t)n[1]);
        put(p.rb, f[0], (size_t)n[0]);
        expect_dead(&p, -EBADMSG);
        pair_free(&p);
}
END_TEST

START_TEST(test_dropped)
{
        uint8_t f[3][256];
        ssize_t n[3];
        Pair p;

        pair_new(&p, 0);
        three(&p, f, n);
        put(p.rb, f[0], (size_t)n[0]);
        put(p.rb, f[2], (size_t)n[2]); /* "two" never arrives */
        expect_str(p.b, "one");
        expect_dead(&p, -EBADMSG);
        pair_free(&p);
}
END_TEST

START_TEST(test_truncated)
{
        uint8_t f[3][256];
        ssize_t n[3];
        Pair p;

        /* A frame that lost its last byte. */
        pair_new(&p, 0);
        three(&p, f, n);
        put(p.rb, f[0], (size_t)n[0] - 1);
        expect_dead(&p, -EBADMSG);
        pair_free(&p);

        /* A frame shorter than any message. */
        pair_new(&p, 0);
        three(&p, f, n);
        put(p.rb, f[0], 5);
        expect_dead(&p, -EBADMSG);
        pair_free(&p);

        /* A stream cut after "one": EOF without the close is not the end. */
        pair_new(&p, 0);
        three(&p, f, n);
        put(p.rb, f[0], (size_t)n[0]);
        shutdown(p.rb, SHUT_WR);
        expect_str(p.b, "one");
        expect_dead(&p, -ECONNRESET);
        pair_free(&p);
}
END_TEST

START_TEST(test_header_and_keys)
{
        uint8_t h[64], pkm[32], skm[32], pkb[32], skb[32];
        CellaChannel *b;
        int sb[2];
        ssize_t n;
        Pair p;

        /* An altered stream header. */
        pair_new(&p, 0);
        n = take(p.ra, h, sizeof h);
        ck_assert_int_eq(n, 24);
        h[3] ^= 1;
        put(p.rb, h, (size_t)n);
        send_str(p.a, "one");
        carry(p.ra, p.rb);
        expect_dead(&p, -EBADMSG);
        pair_free(&p);

        /* A man in the middle who substituted its own key for a's (what the kernel's
         * vouching prevents): b derives other session keys and rejects a's stream;
         * the bridge, holding no private key, cannot read it either. */
        pair_new(&p, 0);
        ck_assert_int_eq(cella_kx_keypair(pkm, skm), 0);
        ck_assert_int_eq(cella_kx_keypair(pkb, skb), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sb), 0);
        ck_assert_int_eq(cella_channel_wrap(sb[0], false, pkb, skb, pkm, "org.test.a", 0, &b), 0);
        carry(p.ra, sb[1]);
        send_str(p.a, "one");
        carry(p.ra, sb[1]);
        {
                char buf[16];

                ck_assert_int_eq(cella_channel_recv(b, buf, sizeof buf), -EBADMSG);
        }
        cella_channel_close(b);
        close(sb[1]);
        pair_free(&p);

        /* A peer key that is not a point crypto_kx accepts (all zero): refused. */
        memset(pkm, 0, sizeof pkm);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sb), 0);
        ck_assert_int_eq(cella_channel_wrap(sb[0], true, pkb, skb, pkm, "x", 0, &b), -EINVAL);
        close(sb[1]);
}
END_TEST

START_TEST(test_plaintext)
{
        uint8_t f[64];
        Pair p;

        pair_new(&p, CELLA_CHANNEL_PLAINTEXT);
        ck_assert(cella_channel_plaintext(p.a));
        ck_assert_int_eq(cella_channel_send(p.a, "", 0), -EINVAL); /* would read as EOF */
        send_str(p.a, "in clear");
        ck_assert_int_eq(take(p.ra, f, sizeof f), 8); /* no header, no overhead */
        ck_assert_mem_eq(f, "in clear", 8);
        put(p.rb, f, 8);
        expect_str(p.b, "in clear");
        shutdown(p.rb, SHUT_WR);
        ck_assert_int_eq(cella_channel_recv(p.b, f, sizeof f), -EPIPE);
        pair_free(&p);
}
END_TEST

/* A signed BusMessageEvent as the kernel makes one (calls/channel.c, calls/bus.c). */
static size_t signed_event(const uint8_t sk[64], bool direct, uint8_t *out)
{
        Cella__V1__BusMessageEvent ev = CELLA__V1__BUS_MESSAGE_EVENT__INIT;
        Cella__V1__BusSignature sig = CELLA__V1__BUS_SIGNATURE__INIT;
        static uint8_t s[64];
        crypto_sign_state st;

        ev.subscription_id = direct ? 0 : 7;
        ev.topic = direct ? "" : "org.test.a.news";
        ev.sender = "org.test.a";
        ev.data = (ProtobufCBinaryData){.len = 5, .data = (uint8_t *)"hello"};
        ev.content_type = "text/plain";
        sig.timestamp_ns = 1700000000000000000;
        sig.counter = 1700000000000000042u;
        sig.target = direct ? "org.test.b" : "";
        bussig_feed(&st, direct ? BUSSIG_KIND_DIRECT : BUSSIG_KIND_TOPIC, ev.sender,
                    direct ? sig.target : ev.topic, ev.content_type, ev.data.data, ev.data.len,
                    sig.timestamp_ns, sig.counter);
        crypto_sign_final_create(&st, s, NULL, sk);
        sig.signature = (ProtobufCBinaryData){.len = 64, .data = s};
        ev.signature = &sig;
        return cella__v1__bus_message_event__pack(&ev, out);
}

START_TEST(test_bus_signature)
{
        uint8_t pk[32], sk[64], other_pk[32], other_sk[64], buf[1024];
        CellaBusSigned s;
        CellaBusSeen *seen;
        size_t n;

        ck_assert_int_ge(sodium_init(), 0);
        crypto_sign_keypair(pk, sk);
        crypto_sign_keypair(other_pk, other_sk);
        for (int direct = 0; direct < 2; direct++) {
                n = signed_event(sk, direct, buf);
                ck_assert_int_eq(cella_bus_verify_body(pk, buf, n, &s), 0);
                ck_assert_uint_eq(s.counter, 1700000000000000042u);
                ck_assert_str_eq(s.target, direct ? "org.test.b" : "");
                /* Another key does not verify it. */
                ck_assert_int_eq(cella_bus_verify_body(other_pk, buf, n, NULL), -EBADMSG);
                /* Every byte of the encoding matters: flip each one in turn. A flip
                 * either breaks the encoding (-EINVAL), or changes a signed field or
                 * the signature (-EBADMSG), or an unsigned one (subscription id:
                 * which then changes the kind, also -EBADMSG). */
                for (size_t i = 0; i < n; i++) {
                        int r;

                        buf[i] ^= 0x01;
                        r = cella_bus_verify_body(pk, buf, n, NULL);
                        ck_assert_msg(r == -EBADMSG || r == -EINVAL || r == -ENOMSG ||
                                              (r == 0 && i < 3 && !direct),
                                      "byte %zu flipped: %d", i, r);
                        buf[i] ^= 0x01;
                }
        }
        /* An event without a signature. */
        {
                Cella__V1__BusMessageEvent ev = CELLA__V1__BUS_MESSAGE_EVENT__INIT;

                ev.sender = "org.test.a";
                n = cella__v1__bus_message_event__pack(&ev, buf);
                ck_assert_int_eq(cella_bus_verify_body(pk, buf, n, NULL), -ENOMSG);
        }
        /* The replay check. */
        ck_assert_int_eq(cella_bus_seen_new(&seen), 0);
        ck_assert_int_eq(cella_bus_seen_check(seen, "org.test.a", 5), 0);
        ck_assert_int_eq(cella_bus_seen_check(seen, "org.test.a", 5), -EALREADY);
        ck_assert_int_eq(cella_bus_seen_check(seen, "org.test.a", 4), -EALREADY);
        ck_assert_int_eq(cella_bus_seen_check(seen, "org.test.b", 1), 0);
        ck_assert_int_eq(cella_bus_seen_check(seen, "org.test.a", 6), 0);
        ck_assert_int_eq(cella_bus_seen_check(seen, "", 6), -EINVAL);
        cella_bus_seen_free(seen);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("securechannel");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_both_ways_and_close);
        tcase_add_test(tc, test_tampered);
        tcase_add_test(tc, test_replayed);
        tcase_add_test(tc, test_reordered);
        tcase_add_test(tc, test_dropped);
        tcase_add_test(tc, test_truncated);
        tcase_add_test(tc, test_header_and_keys);
        tcase_add_test(tc, test_plaintext);
        tcase_add_test(tc, test_bus_signature);
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
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
