/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The relay (src/net/relay.c): real sockets (socketpairs, TCP and UDP on the test's
 * 127.0.0.1) through a real relay thread; done callbacks on a real libuv loop.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "net/relay.h"
#include "uv-wait.h"

#define DEADLINE_MS 20000

typedef struct Done {
        unsigned calls;
        uint64_t id;
        NetRelayStats st;
} Done;

static void on_done(void *userdata, uint64_t id, const NetRelayStats *st)
{
        Done *d = userdata;

        d->calls++;
        d->id = id;
        d->st = *st;
}

/* Turns loop until d has been called (or the deadline: a test failure). */
static void wait_done(uv_loop_t *loop, Done *d)
{
        int64_t end = test_now_ms() + DEADLINE_MS;

        while (d->calls == 0) {
                ck_assert_msg(test_now_ms() < end, "no done callback within %d ms", DEADLINE_MS);
                uv_wait_event(loop, -1, 100);
                uv_run(loop, UV_RUN_NOWAIT);
        }
}

/* Reads exactly n bytes from fd (blocking, with the deadline). Returns n, or the
 * bytes read before EOF. */
static size_t read_full(int fd, void *buf, size_t n)
{
        size_t got = 0;
        int64_t end = test_now_ms() + DEADLINE_MS;

        while (got < n) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ssize_t k;

                ck_assert_msg(test_now_ms() < end, "read timed out at %zu of %zu", got, n);
                if (poll(&p, 1, 100) <= 0)
                        continue;
                k = read(fd, (char *)buf + got, n - got);
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                ck_assert_int_ge(k, 0);
                if (k == 0)
                        break;
                got += (size_t)k;
        }
        return got;
}

/* Waits for EOF (read returns 0) or a reset on fd. Returns 0 or -errno of read. */
static int wait_eof(int fd)
{
        char buf[4096];
        int64_t end = test_now_ms() + DEADLINE_MS;

        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ssize_t k;

                ck_assert_msg(test_now_ms() < end, "no EOF within %d ms", DEADLINE_MS);
                if (poll(&p, 1, 100) <= 0)
                        continue;
                k = read(fd, buf, sizeof(buf));
                if (k == 0)
                        return 0;
                if (k < 0 && errno != EAGAIN && errno != EINTR)
                        return -errno;
        }
}

static void write_full(int fd, const void *buf, size_t n)
{
        size_t off = 0;

        while (off < n) {
                ssize_t k = write(fd, (const char *)buf + off, n - off);

                ck_assert_int_gt(k, 0);
                off += (size_t)k;
        }
}

/* A connected TCP pair on 127.0.0.1: *c the connecting end, *s the accepted one. */
static void tcp_pair(int *c, int *s)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t l = sizeof(sa);
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(lfd, 0);
        ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(lfd, 4), 0);
        ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &l), 0);
        *c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(*c, 0);
        ck_assert_int_eq(connect(*c, (struct sockaddr *)&sa, sizeof(sa)), 0);
        *s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(*s, 0);
        close(lfd);
}

typedef struct Fixture {
        uv_loop_t loop;
        NetRelay *r;
} Fixture;

static void fixture_init(Fixture *f)
{
        ck_assert_int_eq(uv_loop_init(&f->loop), 0);
        ck_assert_int_eq(net_relay_new(&f->loop, &f->r), 0);
}

static void fixture_done(Fixture *f)
{
        net_relay_free(f->r);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        ck_assert_int_eq(uv_loop_close(&f->loop), 0);
}

/* An app end x (socketpair, relay holds its twin) and a peer end s (TCP, relay
 * holds the connecting end): x <-> relay <-> s. */
static uint64_t add_stream(Fixture *f, int *x, int *s, const char *to_b, const char *to_a, Done *d)
{
        int sp[2], c;
        uint64_t id = 0;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        tcp_pair(&c, s);
        *x = sp[0];
        NetRelayPair p = {
                .fd_a = sp[1],
                .fd_b = c,
                .prefix_to_b = to_b,
                .n_prefix_to_b = to_b ? strlen(to_b) : 0,
                .prefix_to_a = to_a,
                .n_prefix_to_a = to_a ? strlen(to_a) : 0,
                .done = on_done,
                .userdata = d,
        };
        ck_assert_int_eq(net_relay_add(f->r, &p, &id), 0);
        ck_assert_uint_gt(id, 0);
        return id;
}

typedef struct Writer {
        int fd;
        size_t n; /* bytes to write; SIZE_MAX: until a write fails */
        size_t written;
        int error; /* errno of the failed write */
        bool shut; /* shutdown(SHUT_WR) after */
} Writer;

static uint8_t pattern(size_t i)
{
        return (uint8_t)(i * 7 + (i >> 11));
}

static void *writer_main(void *arg)
{
        Writer *w = arg;
        uint8_t buf[65536];

        while (w->written < w->n) {
                size_t k = w->n - w->written < sizeof(buf) ? w->n - w->written : sizeof(buf);
                for (size_t i = 0; i < k; i++)
                        buf[i] = pattern(w->written + i);
                ssize_t n = send(w->fd, buf, k, MSG_NOSIGNAL);
                if (n < 0) {
                        w->error = errno;
                        break;
                }
                w->written += (size_t)n;
        }
        if (w->shut)
                shutdown(w->fd, SHUT_WR);
        return NULL;
}

/* Reads until EOF from fd and checks the pattern. Returns the bytes read. */
static size_t read_pattern(int fd)
{
        uint8_t buf[65536];
        size_t total = 0;

        for (;;) {
                size_t n = read_full(fd, buf, sizeof(buf));
                /* One check per buffer: Check's assertions cost a write each. */
                size_t bad = SIZE_MAX;
                for (size_t i = 0; i < n && bad == SIZE_MAX; i++)
                        if (buf[i] != pattern(total + i))
                                bad = i;
                ck_assert_msg(bad == SIZE_MAX, "byte %zu wrong", total + bad);
                total += n;
                if (n < sizeof(buf))
                        return total;
        }
}

START_TEST(test_both_ways_with_prefixes)
{
        Fixture f;
        Done d = {0};
        int x, s;
        char buf[64];

        fixture_init(&f);
        uint64_t id = add_stream(&f, &x, &s, "HEAD ", "200 ", &d);
        ck_assert_uint_eq(id, 1);

        write_full(x, "hello", 5);
        ck_assert_uint_eq(read_full(s, buf, 10), 10);
        ck_assert(memcmp(buf, "HEAD hello", 10) == 0);
        write_full(s, "world", 5);
        ck_assert_uint_eq(read_full(x, buf, 9), 9);
        ck_assert(memcmp(buf, "200 world", 9) == 0);

        /* Bulk, both ways at once: 16 MiB each, every byte checked. */
        Writer wx = {.fd = x, .n = 16u << 20, .shut = true};
        Writer ws = {.fd = s, .n = 16u << 20, .shut = true};
        pthread_t tx, ts;
        ck_assert_int_eq(pthread_create(&tx, NULL, writer_main, &wx), 0);
        ck_assert_int_eq(pthread_create(&ts, NULL, writer_main, &ws), 0);
        ck_assert_uint_eq(read_pattern(s), 16u << 20);
        ck_assert_uint_eq(read_pattern(x), 16u << 20);
        pthread_join(tx, NULL);
        pthread_join(ts, NULL);

        wait_done(&f.loop, &d);
        ck_assert_uint_eq(d.id, id);
        ck_assert_int_eq(d.st.end, NET_RELAY_END_EOF);
        ck_assert_int_eq(d.st.error, 0);
        ck_assert_uint_eq(d.st.bytes_a_to_b, 5 + 5 + (16u << 20));
        ck_assert_uint_eq(d.st.bytes_b_to_a, 4 + 5 + (16u << 20));
        ck_assert_uint_gt(d.st.ended_ns, d.st.started_ns);
        ck_assert_int_eq(net_relay_stats(f.r, id, &d.st), -ENOENT);
        ck_assert_int_eq(net_relay_close(f.r, id), -ENOENT);
        close(x);
        close(s);
        fixture_done(&f);
        ck_assert_uint_eq(d.calls, 1);
}
END_TEST

START_TEST(test_half_close)
{
        Fixture f;
        Done d = {0};
        int x, s;
        char buf[64];
        NetRelayStats st;

        fixture_init(&f);
        uint64_t id = add_stream(&f, &x, &s, NULL, NULL, &d);
        write_full(x, "request", 7);
        ck_assert_int_eq(shutdown(x, SHUT_WR), 0);
        ck_assert_uint_eq(read_full(s, buf, sizeof(buf)), 7); /* then EOF */
        ck_assert(memcmp(buf, "request", 7) == 0);

        /* The other way still flows after the app's half-close. */
        write_full(s, "late answer", 11);
        ck_assert_uint_eq(read_full(x, buf, 11), 11);
        ck_assert(memcmp(buf, "late answer", 11) == 0);
        ck_assert_int_eq(net_relay_stats(f.r, id, &st), 0);
        ck_assert_uint_eq(st.ended_ns, 0);
        ck_assert_uint_eq(st.bytes_a_to_b, 7);
        ck_assert_uint_eq(st.bytes_b_to_a, 11);
        ck_assert_uint_eq(d.calls, 0);

        close(s);
        ck_assert_int_eq(wait_eof(x), 0);
        wait_done(&f.loop, &d);
        ck_assert_int_eq(d.st.end, NET_RELAY_END_EOF);
        close(x);
        fixture_done(&f);
}
END_TEST

START_TEST(test_close_mid_transfer)
{
        Fixture f;
        Done d = {0};
        int x, s;
        char buf[4096];

        fixture_init(&f);
        uint64_t id = add_stream(&f, &x, &s, NULL, NULL, &d);
        Writer w = {.fd = x, .n = SIZE_MAX};
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, writer_main, &w), 0);
        ck_assert_uint_eq(read_full(s, buf, sizeof(buf)), sizeof(buf)); /* it flows */

        ck_assert_int_eq(net_relay_close(f.r, id), 0);
        ck_assert_int_eq(net_relay_close(f.r, id), -ENOENT);
        /* Both ends see the cut at once: the writer's send fails, the peer reads EOF
         * (or a reset, with bytes unread in the relay's socket). */
        pthread_join(t, NULL);
        ck_assert_msg(w.error == EPIPE || w.error == ECONNRESET, "writer: %d", w.error);
        int e = wait_eof(s);
        ck_assert_msg(e == 0 || e == -ECONNRESET, "peer read: %d", e);
        wait_done(&f.loop, &d);
        ck_assert_int_eq(d.st.end, NET_RELAY_END_CLOSED);
        ck_assert_uint_ge(d.st.bytes_a_to_b, sizeof(buf));
        close(x);
        close(s);
        fixture_done(&f);
}
END_TEST

START_TEST(test_peer_reset)
{
        Fixture f;
        Done d = {0};
        int x, s;
        char buf[8];
        struct linger lg = {.l_onoff = 1, .l_linger = 0};

        fixture_init(&f);
        add_stream(&f, &x, &s, NULL, NULL, &d);
        write_full(x, "ping", 4);
        ck_assert_uint_eq(read_full(s, buf, 4), 4);
        /* SO_LINGER 0: close() sends a RST. */
        ck_assert_int_eq(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        close(s);
        wait_done(&f.loop, &d);
        ck_assert_int_eq(d.st.end, NET_RELAY_END_RESET);
        ck_assert_int_eq(d.st.error, ECONNRESET);
        ck_assert_int_eq(wait_eof(x), 0); /* the app's end is closed */
        close(x);
        fixture_done(&f);
}
END_TEST

START_TEST(test_datagrams)
{
        Fixture f;
        Done d = {0};
        int sp[2], u[2];
        struct sockaddr_in sa[2];
        char buf[2048];
        uint64_t id;

        fixture_init(&f);
        /* App side: SOCK_SEQPACKET (its close is seen); peer side: connected UDP. */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        for (unsigned i = 0; i < 2; i++) {
                socklen_t l = sizeof(sa[i]);
                u[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                sa[i] = (struct sockaddr_in){.sin_family = AF_INET,
                                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                ck_assert_int_eq(bind(u[i], (struct sockaddr *)&sa[i], sizeof(sa[i])), 0);
                ck_assert_int_eq(getsockname(u[i], (struct sockaddr *)&sa[i], &l), 0);
        }
        ck_assert_int_eq(connect(u[0], (struct sockaddr *)&sa[1], sizeof(sa[1])), 0);
        ck_assert_int_eq(connect(u[1], (struct sockaddr *)&sa[0], sizeof(sa[0])), 0);
        NetRelayPair p = {.fd_a = sp[1],
                          .fd_b = u[0],
                          .datagram = true,
                          .prefix_to_a = "hi",
                          .n_prefix_to_a = 2,
                          .done = on_done,
                          .userdata = &d};
        ck_assert_int_eq(net_relay_add(f.r, &p, &id), 0);

        /* The prefix arrives as a datagram of its own. */
        ck_assert_int_eq(recv(sp[0], buf, sizeof(buf), 0), 2);
        ck_assert(memcmp(buf, "hi", 2) == 0);
        /* Boundaries kept both ways: sizes 1, 1000, 1500. */
        const size_t sizes[] = {1, 1000, 1500};
        for (unsigned i = 0; i < 3; i++) {
                memset(buf, 'a' + (int)i, sizes[i]);
                ck_assert_int_eq(send(sp[0], buf, sizes[i], 0), (ssize_t)sizes[i]);
        }
        for (unsigned i = 0; i < 3; i++) {
                ck_assert_int_eq(recv(u[1], buf, sizeof(buf), 0), (ssize_t)sizes[i]);
                ck_assert_int_eq(buf[0], 'a' + (int)i);
        }
        for (unsigned i = 0; i < 3; i++)
                ck_assert_int_eq(send(u[1], buf, sizes[i], 0), (ssize_t)sizes[i]);
        for (unsigned i = 0; i < 3; i++)
                ck_assert_int_eq(recv(sp[0], buf, sizeof(buf), 0), (ssize_t)sizes[i]);

        /* The app closes its end: the pair ends. */
        close(sp[0]);
        wait_done(&f.loop, &d);
        ck_assert_int_eq(d.st.end, NET_RELAY_END_EOF);
        ck_assert_uint_eq(d.st.bytes_a_to_b, 2501);
        ck_assert_uint_eq(d.st.bytes_b_to_a, 2 + 2501);
        close(u[1]);
        fixture_done(&f);
}
END_TEST

#define MANY 200

START_TEST(test_many_pairs)
{
        Fixture f;
        static Done d[MANY];
        static int x[MANY], y[MANY];
        uint8_t buf[65536];

        memset(d, 0, sizeof(d));
        fixture_init(&f);
        for (unsigned i = 0; i < MANY; i++) {
                int a[2], b[2];
                uint64_t id;

                ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
                ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
                x[i] = a[0];
                y[i] = b[0];
                NetRelayPair p = {.fd_a = a[1], .fd_b = b[1], .done = on_done, .userdata = &d[i]};
                ck_assert_int_eq(net_relay_add(f.r, &p, &id), 0);
                ck_assert_uint_eq(id, i + 1);
        }
        /* Every pair carries its own bytes (its index in each), none mixed up. */
        for (unsigned i = 0; i < MANY; i++) {
                memset(buf, (int)(i & 0xff), 4096);
                write_full(x[i], buf, 4096);
                ck_assert_int_eq(shutdown(x[i], SHUT_WR), 0);
        }
        for (unsigned i = 0; i < MANY; i++) {
                ck_assert_uint_eq(read_full(y[i], buf, sizeof(buf)), 4096);
                unsigned wrong = 0;
                for (unsigned k = 0; k < 4096; k++)
                        wrong += buf[k] != (uint8_t)(i & 0xff);
                ck_assert_uint_eq(wrong, 0);
                close(y[i]);
        }
        /* Every pair ends by EOF, each exactly once. */
        for (unsigned i = 0; i < MANY; i++) {
                wait_done(&f.loop, &d[i]);
                ck_assert_int_eq(d[i].st.end, NET_RELAY_END_EOF);
                ck_assert_uint_eq(d[i].st.bytes_a_to_b, 4096);
                ck_assert_uint_eq(d[i].calls, 1);
                close(x[i]);
        }
        fixture_done(&f);
}
END_TEST

START_TEST(test_free_ends_every_pair)
{
        Fixture f;
        Done d[3] = {{0}};
        int x[3], s[3];

        fixture_init(&f);
        for (unsigned i = 0; i < 3; i++)
                add_stream(&f, &x[i], &s[i], NULL, NULL, &d[i]);
        net_relay_free(f.r);
        /* Every done callback ran before net_relay_free() returned. */
        for (unsigned i = 0; i < 3; i++) {
                ck_assert_uint_eq(d[i].calls, 1);
                ck_assert_int_eq(d[i].st.end, NET_RELAY_END_CLOSED);
                ck_assert_int_eq(wait_eof(x[i]), 0);
                close(x[i]);
                close(s[i]);
        }
        uv_run(&f.loop, UV_RUN_NOWAIT);
        ck_assert_int_eq(uv_loop_close(&f.loop), 0);
}
END_TEST

static bool fd_open(int fd)
{
        return fcntl(fd, F_GETFD) >= 0;
}

START_TEST(test_bad_pairs)
{
        Fixture f;
        Done d = {0};
        int a[2], b[2];
        static char big[NET_RELAY_PREFIX_MAX + 1];

        fixture_init(&f);
        /* done NULL */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
        NetRelayPair p = {.fd_a = a[1], .fd_b = b[1]};
        ck_assert_int_eq(net_relay_add(f.r, &p, NULL), -EINVAL);
        ck_assert(!fd_open(a[1]) && !fd_open(b[1])); /* taken even on failure */
        close(a[0]);
        close(b[0]);

        /* A prefix over the bound. */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
        p = (NetRelayPair){.fd_a = a[1],
                           .fd_b = b[1],
                           .prefix_to_b = big,
                           .n_prefix_to_b = sizeof(big),
                           .done = on_done,
                           .userdata = &d};
        ck_assert_int_eq(net_relay_add(f.r, &p, NULL), -EINVAL);
        ck_assert(!fd_open(a[1]) && !fd_open(b[1]));
        close(a[0]);
        close(b[0]);

        /* Not a socket, and a closed fd. */
        ck_assert_int_eq(pipe(a), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
        p = (NetRelayPair){.fd_a = a[0], .fd_b = b[1], .done = on_done, .userdata = &d};
        ck_assert_int_eq(net_relay_add(f.r, &p, NULL), -EINVAL);
        ck_assert(!fd_open(a[0]) && !fd_open(b[1]));
        close(a[1]);
        close(b[0]);
        p = (NetRelayPair){.fd_a = -1, .fd_b = 1000, .done = on_done, .userdata = &d};
        ck_assert_int_eq(net_relay_add(f.r, &p, NULL), -EINVAL);
        ck_assert_int_eq(net_relay_close(f.r, 12345), -ENOENT);
        ck_assert_uint_eq(d.calls, 0);
        fixture_done(&f);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("net-relay");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        signal(SIGPIPE, SIG_IGN);
        tcase_add_test(tc, test_both_ways_with_prefixes);
        tcase_add_test(tc, test_half_close);
        tcase_add_test(tc, test_close_mid_transfer);
        tcase_add_test(tc, test_peer_reset);
        tcase_add_test(tc, test_datagrams);
        tcase_add_test(tc, test_many_pairs);
        tcase_add_test(tc, test_free_ends_every_pair);
        tcase_add_test(tc, test_bad_pairs);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
