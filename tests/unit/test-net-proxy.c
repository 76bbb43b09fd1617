/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The proxy's handshakes (src/net/proxy.c): HTTP CONNECT, absolute-form HTTP, SOCKS5. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/nslisten.h"
#include "net/proxy.h"
#include "skip.h"

static ProxyConn *conn_new(void)
{
        ProxyConn *c = malloc(sizeof *c);

        ck_assert_ptr_nonnull(c);
        proxy_conn_init(c);
        return c;
}

static void conn_free(ProxyConn *c)
{
        proxy_conn_done(c);
        free(c);
}

static ProxyStep feed_str(ProxyConn *c, const char *s)
{
        return proxy_feed(c, s, strlen(s));
}

/* Whether c's pending reply starts with prefix. */
static bool out_starts(const ProxyConn *c, const char *prefix)
{
        return c->n_out >= strlen(prefix) && memcmp(c->out, prefix, strlen(prefix)) == 0;
}

static bool to_peer_is(const ProxyConn *c, const char *want)
{
        return c->n_to_peer == strlen(want) && memcmp(c->to_peer, want, c->n_to_peer) == 0;
}

START_TEST(test_connect)
{
        ProxyConn *c = conn_new();

        ck_assert_int_eq(feed_str(c, "CONNECT example.org:443 HTTP/1.1\r\n"), PROXY_STEP_MORE);
        ck_assert_int_eq(feed_str(c, "Host: example.org:443\r\nProxy-Authorization: x\r\n\r\n"),
                         PROXY_STEP_CONNECT);
        ck_assert_int_eq(c->kind, PROXY_KIND_HTTP_CONNECT);
        ck_assert_str_eq(c->host, "example.org");
        ck_assert_uint_eq(c->port, 443);
        ck_assert_uint_eq(c->n_to_peer, 0);
        ck_assert_uint_eq(c->n_out, 0);
        ck_assert_uint_eq(c->n_to_app, strlen("HTTP/1.1 200 Connection established\r\n\r\n"));
        ck_assert(memcmp(c->to_app, "HTTP/1.1 200 Connection established\r\n\r\n", c->n_to_app) ==
                  0);
        /* Over: more input is refused, never parsed. */
        ck_assert_int_eq(feed_str(c, "GET / HTTP/1.1\r\n\r\n"), PROXY_STEP_REFUSE);
        conn_free(c);
}
END_TEST

START_TEST(test_connect_early_data_and_v6)
{
        ProxyConn *c = conn_new();
        const char req[] = "CONNECT [2001:db8::7]:8443 HTTP/1.0\r\n\r\n\x16\x03\x01\x00\x05hello";

        /* A client that sends its TLS ClientHello before the 200: kept for the peer. */
        ck_assert_int_eq(proxy_feed(c, req, sizeof req - 1), PROXY_STEP_CONNECT);
        ck_assert_str_eq(c->host, "2001:db8::7");
        ck_assert_uint_eq(c->port, 8443);
        ck_assert_uint_eq(c->n_to_peer, 10);
        ck_assert(memcmp(c->to_peer, "\x16\x03\x01\x00\x05hello", 10) == 0);
        conn_free(c);
}
END_TEST

START_TEST(test_connect_bad)
{
        static const char *const bad[] = {
                "CONNECT example.org HTTP/1.1\r\n\r\n",          /* no port */
                "CONNECT example.org:0 HTTP/1.1\r\n\r\n",        /* port 0 */
                "CONNECT example.org:65536 HTTP/1.1\r\n\r\n",    /* port too large */
                "CONNECT example.org:44x HTTP/1.1\r\n\r\n",      /* not digits */
                "CONNECT user@example.org:443 HTTP/1.1\r\n\r\n", /* user info */
                "CONNECT [fe80::1%eth0]:443 HTTP/1.1\r\n\r\n",   /* a zone */
                "CONNECT [::1:443 HTTP/1.1\r\n\r\n",             /* no ']' */
                "CONNECT exa\x01mple.org:443 HTTP/1.1\r\n\r\n",  /* control byte */
                "CONNECT  example.org:443 HTTP/1.1\r\n\r\n",     /* two spaces */
                "CONNECT example.org:443 HTTP/2.0\r\n\r\n",      /* version */
                "CONNECT example.org:443\r\n\r\n",               /* HTTP/0.9 style */
                "CONNECT example.org:443 HTTP/1.1\r\n folded: x\r\n\r\n",
                "CONNECT example.org:443 HTTP/1.1\r\nno colon\r\n\r\n",
                "CONNECT example.org:443 HTTP/1.1\r\nba d: x\r\n\r\n",
                "CONNECT example.org:443 HTTP/1.1\r\nA: b\rc\r\n\r\n", /* bare CR */
        };

        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                ProxyConn *c = conn_new();

                ck_assert_msg(feed_str(c, bad[i]) == PROXY_STEP_REFUSE, "accepted: %s", bad[i]);
                ck_assert_msg(out_starts(c, "HTTP/1.1 4") || out_starts(c, "HTTP/1.1 505"),
                              "reply to %s: %.*s", bad[i], (int)c->n_out, c->out);
                ck_assert_ptr_nonnull(memmem(c->out, c->n_out, "\r\n\r\ncella: ", 11));
                ck_assert_str_ne(c->why, "");
                conn_free(c);
        }
}
END_TEST

START_TEST(test_forward_rewrite)
{
        ProxyConn *c = conn_new();

        ck_assert_int_eq(feed_str(c, "GET http://Example.org:8080/a/b?c=d HTTP/1.1\r\n"
                                     "Host: evil.example\r\n"
                                     "User-Agent: curl/7.88.1\r\n"
                                     "Proxy-Connection: Keep-Alive\r\n"
                                     "Proxy-Authorization: Basic eA==\r\n"
                                     "Connection: keep-alive, X-Hop\r\n"
                                     "X-Hop: 1\r\n"
                                     "Keep-Alive: 300\r\n"
                                     "Accept: */*\r\n\r\n"),
                         PROXY_STEP_CONNECT);
        ck_assert_int_eq(c->kind, PROXY_KIND_HTTP_FORWARD);
        ck_assert_str_eq(c->host, "Example.org");
        ck_assert_uint_eq(c->port, 8080);
        ck_assert_uint_eq(c->n_to_app, 0);
        ck_assert_msg(to_peer_is(c, "GET /a/b?c=d HTTP/1.1\r\n"
                                    "Host: Example.org:8080\r\n"
                                    "User-Agent: curl/7.88.1\r\n"
                                    "Accept: */*\r\n"
                                    "Connection: close\r\n\r\n"),
                      "%.*s", (int)c->n_to_peer, c->to_peer);
        conn_free(c);
}
END_TEST

START_TEST(test_forward_body_and_lf)
{
        ProxyConn *c = conn_new();

        /* Bare LF line ends (RFC 9112 2.2 lets a recipient take them), a body that
         * came with the head, a default port, no path. */
        ck_assert_int_eq(feed_str(c, "POST http://10.0.0.1?q HTTP/1.0\n"
                                     "Content-Length: 5\n\nhello"),
                         PROXY_STEP_CONNECT);
        ck_assert_str_eq(c->host, "10.0.0.1");
        ck_assert_uint_eq(c->port, 80);
        ck_assert_msg(to_peer_is(c, "POST /?q HTTP/1.0\r\nHost: 10.0.0.1\r\n"
                                    "Content-Length: 5\r\nConnection: close\r\n\r\nhello"),
                      "%.*s", (int)c->n_to_peer, c->to_peer);
        conn_free(c);

        c = conn_new();
        ck_assert_int_eq(feed_str(c, "GET http://[::1]:81#frag HTTP/1.1\r\n\r\n"),
                         PROXY_STEP_CONNECT);
        ck_assert_str_eq(c->host, "::1");
        ck_assert_uint_eq(c->port, 81);
        ck_assert_msg(
                to_peer_is(c, "GET / HTTP/1.1\r\nHost: [::1]:81\r\nConnection: close\r\n\r\n"),
                "%.*s", (int)c->n_to_peer, c->to_peer);
        conn_free(c);
}
END_TEST

START_TEST(test_forward_refused)
{
        static const char *const bad[] = {
                "GET https://example.org/ HTTP/1.1\r\n\r\n", /* use CONNECT */
                "GET / HTTP/1.1\r\nHost: x\r\n\r\n",         /* origin form */
                "GET ftp://example.org/ HTTP/1.1\r\n\r\n",
                "GET http:///x HTTP/1.1\r\n\r\n",             /* no host */
                "GET http://a@example.org/ HTTP/1.1\r\n\r\n", /* user info */
                "GET http://example.org/\x7f HTTP/1.1\r\n\r\n",
                "\x16\x03\x01\x02\x00\x01", /* TLS sent to the port: refused at once */
                "GET http://example.org/ HTTP/1.1\r\nA: \0b\r\n\r\n",
        };

        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                ProxyConn *c = conn_new();
                size_t n = strlen(bad[i]);

                if (i == 7)
                        n = sizeof "GET http://example.org/ HTTP/1.1\r\nA: \0b\r\n\r\n" - 1;
                ck_assert_msg(proxy_feed(c, bad[i], n) == PROXY_STEP_REFUSE, "accepted #%zu", i);
                ck_assert_msg(out_starts(c, "HTTP/1.1 400 Bad Request\r\n"), "#%zu: %.*s", i,
                              (int)c->n_out, c->out);
                conn_free(c);
        }
}
END_TEST

START_TEST(test_head_too_large)
{
        ProxyConn *c = conn_new();
        char chunk[1000];
        ProxyStep st = PROXY_STEP_MORE;
        size_t total = 0;

        ck_assert_int_eq(feed_str(c, "GET http://example.org/ HTTP/1.1\r\n"), PROXY_STEP_MORE);
        memset(chunk, 'a', sizeof chunk);
        memcpy(chunk, "X-Pad: ", 7);
        chunk[sizeof chunk - 2] = '\r';
        chunk[sizeof chunk - 1] = '\n';
        while (st == PROXY_STEP_MORE && total < 4 * PROXY_HANDSHAKE_MAX) {
                size_t n = proxy_conn_room(c) < sizeof chunk ? proxy_conn_room(c) : sizeof chunk;

                st = proxy_feed(c, chunk, n);
                total += n;
        }
        ck_assert_int_eq(st, PROXY_STEP_REFUSE);
        ck_assert(out_starts(c, "HTTP/1.1 431 "));
        ck_assert_uint_le(total, PROXY_HANDSHAKE_MAX);
        conn_free(c);

        /* Too much at once is refused too, never written past the buffer. */
        c = conn_new();
        {
                char *big = calloc(1, PROXY_HANDSHAKE_MAX + 1);

                ck_assert_ptr_nonnull(big);
                memset(big, 'G', PROXY_HANDSHAKE_MAX + 1);
                ck_assert_int_eq(proxy_feed(c, big, PROXY_HANDSHAKE_MAX + 1), PROXY_STEP_REFUSE);
                ck_assert(out_starts(c, "HTTP/1.1 431 "));
                free(big);
        }
        conn_free(c);
}
END_TEST

START_TEST(test_byte_at_a_time)
{
        static const char req[] = "GET http://example.org/x HTTP/1.1\r\nAccept: */*\r\n\r\n";
        ProxyConn *c = conn_new();
        ProxyStep st = PROXY_STEP_MORE;

        for (size_t i = 0; i < sizeof req - 1; i++) {
                ck_assert_int_eq(st, PROXY_STEP_MORE);
                st = proxy_feed(c, req + i, 1);
        }
        ck_assert_int_eq(st, PROXY_STEP_CONNECT);
        ck_assert(to_peer_is(c, "GET /x HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n"
                                "Connection: close\r\n\r\n"));
        conn_free(c);
}
END_TEST

START_TEST(test_socks5_domain)
{
        ProxyConn *c = conn_new();
        static const uint8_t hello[] = {0x05, 0x02, 0x02, 0x00};
        static const uint8_t req[] = {0x05, 0x01, 0x00, 0x03, 11,  'e', 'x',  'a',  'm', 'p',
                                      'l',  'e',  '.',  'o',  'r', 'g', 0x01, 0xbb, 'h', 'i'};

        ck_assert_int_eq(proxy_feed(c, hello, 3), PROXY_STEP_MORE);
        ck_assert_uint_eq(c->n_out, 0);
        ck_assert_int_eq(proxy_feed(c, hello + 3, 1), PROXY_STEP_MORE);
        ck_assert_int_eq(c->kind, PROXY_KIND_SOCKS5);
        ck_assert_uint_eq(c->n_out, 2);
        ck_assert(memcmp(c->out, "\x05\x00", 2) == 0);
        ck_assert_int_eq(proxy_feed(c, req, 8), PROXY_STEP_MORE);
        ck_assert_uint_eq(c->n_out, 0);
        ck_assert_int_eq(proxy_feed(c, req + 8, sizeof req - 8), PROXY_STEP_CONNECT);
        ck_assert_str_eq(c->host, "example.org");
        ck_assert_uint_eq(c->port, 443);
        ck_assert(to_peer_is(c, "hi"));
        ck_assert_uint_eq(c->n_to_app, 10);
        ck_assert(memcmp(c->to_app, "\x05\x00\x00\x01\0\0\0\0\0\0", 10) == 0);
        conn_free(c);
}
END_TEST

START_TEST(test_socks5_addresses_pipelined)
{
        static const uint8_t v4[] = {0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01,
                                     203,  0,    113,  7,    0x00, 0x50};
        static const uint8_t v6[] = {0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x04, 0x20, 0x01,
                                     0x0d, 0xb8, 0,    0,    0,    0,    0,    0,    0,
                                     0,    0,    0,    0,    0x01, 0x1f, 0x90};
        ProxyConn *c = conn_new();

        /* Greeting and request in one read (a client that does not wait). */
        ck_assert_int_eq(proxy_feed(c, v4, sizeof v4), PROXY_STEP_CONNECT);
        ck_assert_uint_eq(c->n_out, 2); /* the method choice, still to be written */
        ck_assert_str_eq(c->host, "203.0.113.7");
        ck_assert_uint_eq(c->port, 80);
        conn_free(c);

        c = conn_new();
        ck_assert_int_eq(proxy_feed(c, v6, sizeof v6), PROXY_STEP_CONNECT);
        ck_assert_str_eq(c->host, "2001:db8::1");
        ck_assert_uint_eq(c->port, 8080);
        conn_free(c);
}
END_TEST

START_TEST(test_socks5_refused)
{
        static const struct {
                uint8_t bytes[32];
                size_t n;
                uint8_t method; /* the greeting's reply: 0x00 or 0xff */
                int rep;        /* the request's reply code, -1: none */
        } cases[] = {
                {{0x05, 0x01, 0x02}, 3, 0xff, -1}, /* user/password only */
                {{0x05, 0x00}, 2, 0xff, -1},       /* no method */
                {{0x05, 0x01, 0x00, 0x05, 0x02, 0x00, 0x01, 1, 2, 3, 4, 0, 80}, 13, 0, 0x07},
                {{0x05, 0x01, 0x00, 0x05, 0x03, 0x00, 0x01, 1, 2, 3, 4, 0, 80}, 13, 0, 0x07},
                {{0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x09, 1, 2, 3, 4, 0, 80}, 13, 0, 0x08},
                {{0x05, 0x01, 0x00, 0x04, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 80}, 13, 0, 0x01},
                {{0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 0}, 13, 0, 0x01},
                {{0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 3, 'a', 0, 'b', 0, 80}, 13, 0, 0x04},
                {{0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 0, 0, 80}, 10, 0, 0x04},
        };

        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                ProxyConn *c = conn_new();

                ck_assert_msg(proxy_feed(c, cases[i].bytes, cases[i].n) == PROXY_STEP_REFUSE,
                              "case %zu accepted", i);
                ck_assert_uint_eq((uint8_t)c->out[0], 0x05);
                ck_assert_uint_eq((uint8_t)c->out[1], cases[i].method);
                if (cases[i].rep < 0)
                        ck_assert_uint_eq(c->n_out, 2);
                else {
                        ck_assert_uint_eq(c->n_out, 12);
                        ck_assert_msg((uint8_t)c->out[3] == cases[i].rep, "case %zu: rep %u", i,
                                      (unsigned)(uint8_t)c->out[3]);
                }
                conn_free(c);
        }
}
END_TEST

START_TEST(test_refusal_replies)
{
        char buf[PROXY_REPLY_MAX];
        size_t n;
        static const struct {
                int error;
                const char *status;
                uint8_t rep;
        } map[] = {
                {-EACCES, "403 Forbidden", 0x02},          {-EPERM, "403 Forbidden", 0x02},
                {-ECONNREFUSED, "502 Bad Gateway", 0x05},  {-ENOENT, "502 Bad Gateway", 0x04},
                {-EHOSTUNREACH, "502 Bad Gateway", 0x04},  {-ENETUNREACH, "502 Bad Gateway", 0x03},
                {-ETIMEDOUT, "504 Gateway Timeout", 0x04}, {-EAGAIN, "429 Too Many Requests", 0x01},
                {-EMFILE, "429 Too Many Requests", 0x01},  {-EINVAL, "400 Bad Request", 0x01},
        };

        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
                char want[64];

                n = proxy_refusal(PROXY_KIND_HTTP_CONNECT, map[i].error, "why\r\nX-Evil: 1", buf,
                                  sizeof buf);
                snprintf(want, sizeof want, "HTTP/1.1 %s\r\n", map[i].status);
                ck_assert_msg(n > strlen(want) && memcmp(buf, want, strlen(want)) == 0, "%.*s",
                              (int)n, buf);
                /* The app's text stays on its one line: no header injected. */
                ck_assert_ptr_nonnull(memmem(buf, n, "\r\n\r\ncella: why??X-Evil: 1\n",
                                             strlen("\r\n\r\ncella: why??X-Evil: 1\n")));
                ck_assert_ptr_null(memmem(buf, n, "\r\nX-Evil", 8));
                n = proxy_refusal(PROXY_KIND_SOCKS5, map[i].error, "why", buf, sizeof buf);
                ck_assert_uint_eq(n, 10);
                ck_assert_uint_eq((uint8_t)buf[1], map[i].rep);
        }
        /* Content-Length is the body's. */
        n = proxy_refusal(PROXY_KIND_HTTP_FORWARD, -EACCES,
                          "net.connect:example.org:80 is not granted", buf, sizeof buf);
        buf[n] = 0;
        ck_assert_ptr_nonnull(strstr(buf, "Content-Length: 49\r\n"));
        ck_assert_str_eq(strstr(buf, "\r\n\r\n") + 4,
                         "cella: net.connect:example.org:80 is not granted\n");
        /* A long reason is cut to fit. */
        {
                char lng[4000];

                memset(lng, 'x', sizeof lng - 1);
                lng[sizeof lng - 1] = 0;
                n = proxy_refusal(PROXY_KIND_HTTP_FORWARD, -EACCES, lng, buf, sizeof buf);
                ck_assert_uint_lt(n, sizeof buf);
        }
}
END_TEST

/* ---- the listener in another network namespace (nslisten.c) ---- */

/* A new network namespace with lo up, made by a thread (unshare(CLONE_NEWNET) on a
 * thread changes that thread alone): its fd, or -errno. */
static void *make_netns(void *ret)
{
        struct ifreq ifr = {.ifr_name = "lo"};
        int *fd = ret, s;

        *fd = -EPERM;
        if (unshare(CLONE_NEWNET) < 0) {
                *fd = -errno;
                return NULL;
        }
        s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(s, 0);
        ck_assert_int_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        ck_assert_int_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
        close(s);
        *fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        return NULL;
}

typedef struct Probe {
        int netns_fd; /* -1: the test's own namespace */
        int family;
        uint16_t port;
        int result; /* 0 connected, or -errno */
} Probe;

/* Connects to the loopback of probe's namespace, from a thread in it. */
static void *probe_connect(void *userdata)
{
        Probe *p = userdata;
        struct sockaddr_in in4 = {.sin_family = AF_INET,
                                  .sin_port = htons(p->port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct sockaddr_in6 in6 = {.sin6_family = AF_INET6,
                                   .sin6_port = htons(p->port),
                                   .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        int s;

        if (p->netns_fd >= 0 && setns(p->netns_fd, CLONE_NEWNET) < 0) {
                p->result = -errno;
                return NULL;
        }
        s = socket(p->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(s, 0);
        p->result = (p->family == AF_INET ? connect(s, (struct sockaddr *)&in4, sizeof in4)
                                          : connect(s, (struct sockaddr *)&in6, sizeof in6)) < 0
                            ? -errno
                            : 0;
        close(s);
        return NULL;
}

static int probe(int netns_fd, int family, uint16_t port)
{
        Probe p = {.netns_fd = netns_fd, .family = family, .port = port};
        pthread_t t;

        ck_assert_int_eq(pthread_create(&t, NULL, probe_connect, &p), 0);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        return p.result;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

START_TEST(test_listen_in_netns)
{
        const uint16_t port = 61080;
        uint64_t ns[101];
        int netns = -1, fds[2], again[2];
        pthread_t t;

        if (geteuid() != 0)
                SKIP_TEST("needs root (CAP_SYS_ADMIN) to make a network namespace");
        ck_assert_int_eq(pthread_create(&t, NULL, make_netns, &netns), 0);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        if (netns == -EPERM)
                SKIP_TEST("network namespaces are refused here");
        ck_assert_int_ge(netns, 0);

        ck_assert_int_eq(net_listen_in_netns(netns, port, fds), 0);
        ck_assert_int_ge(fds[0], 0);
        /* Reached from inside that namespace, on both loopbacks, never from ours. */
        ck_assert_int_eq(probe(netns, AF_INET, port), 0);
        if (fds[1] >= 0)
                ck_assert_int_eq(probe(netns, AF_INET6, port), 0);
        ck_assert_int_eq(probe(netns, AF_INET, port + 1), -ECONNREFUSED);
        if (probe(-1, AF_INET, port) == 0)
                ck_abort_msg("the listener is in the test's own namespace");
        /* The port is taken there now: a second listener is refused, not stolen. */
        ck_assert_int_eq(net_listen_in_netns(netns, port, again), -EADDRINUSE);
        ck_assert_int_eq(again[0], -1);
        close(fds[0]);
        if (fds[1] >= 0)
                close(fds[1]);
        ck_assert_int_eq(net_listen_in_netns(-1, port, again), -EINVAL);
        ck_assert_int_eq(net_listen_in_netns(netns, 0, again), -EINVAL);

        /* What it adds to a start: the median of 101 (printed for the docs). */
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
                struct timespec a, b;

                clock_gettime(CLOCK_MONOTONIC, &a);
                ck_assert_int_eq(net_listen_in_netns(netns, port, fds), 0);
                clock_gettime(CLOCK_MONOTONIC, &b);
                close(fds[0]);
                if (fds[1] >= 0)
                        close(fds[1]);
                ns[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u +
                        (uint64_t)(b.tv_nsec - a.tv_nsec);
        }
        qsort(ns, sizeof ns / sizeof ns[0], sizeof ns[0], cmp_u64);
        printf("net_listen_in_netns: median %.1f us, p90 %.1f us (101 runs)\n", ns[50] / 1e3,
               ns[90] / 1e3);
        close(netns);
}
END_TEST

static Suite *proxy_suite(void)
{
        Suite *s = suite_create("net-proxy");
        TCase *tc = tcase_create("net-proxy");

        tcase_add_test(tc, test_connect);
        tcase_add_test(tc, test_connect_early_data_and_v6);
        tcase_add_test(tc, test_connect_bad);
        tcase_add_test(tc, test_forward_rewrite);
        tcase_add_test(tc, test_forward_body_and_lf);
        tcase_add_test(tc, test_forward_refused);
        tcase_add_test(tc, test_head_too_large);
        tcase_add_test(tc, test_byte_at_a_time);
        tcase_add_test(tc, test_socks5_domain);
        tcase_add_test(tc, test_socks5_addresses_pipelined);
        tcase_add_test(tc, test_socks5_refused);
        tcase_add_test(tc, test_refusal_replies);
        suite_add_tcase(s, tc);
        /* A case of its own: it skips where namespaces cannot be made. */
        tc = tcase_create("netns");
        tcase_add_test(tc, test_listen_in_netns);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        if (skip_init() < 0)
                return EXIT_FAILURE;
        return skip_run(srunner_create(proxy_suite()));
}
