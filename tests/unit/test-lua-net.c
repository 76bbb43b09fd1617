/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.net (src/lua/libnet.c, netutil.c, iowait.c): the pure helpers (URLs,
 * redirects, header checks, the WebSocket accept key), then the Lua API in a real
 * host against a test kernel thread on the app's channel. The test kernel answers
 * net.connect as the broker does: an error for a host not granted, else the
 * app's end of an AF_UNIX socketpair whose other end a server thread of this test
 * serves (HTTP, or an echo), so libcurl runs over the same kind of socket the
 * kernel's relay gives. The broker's own checks are tested with it (egress); the
 * real network path in tests/integration/test_lua_net.py.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <wslay/wslay.h>

#include "base/macro.h"
#include "lua/host.h"
#include "lua/netutil.h"
#include "wire/channel.h"
#include "wire/wire.h"

#define K_ASSERT(x)                                                                                \
        do {                                                                                       \
                if (!(x)) {                                                                        \
                        fprintf(stderr, "kernel thread: %s:%d: %s\n", __FILE__, __LINE__, #x);     \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

/* ---- pure helpers ------------------------------------------------------------------- */

START_TEST(test_url_target)
{
        NetTarget t;
        char *u = NULL;

        ck_assert_int_eq(net_url_target("http://Example.COM/x?y", NET_SCHEME_HTTP, &t, &u), 0);
        ck_assert_str_eq(t.host, "example.com");
        ck_assert_uint_eq(t.port, 80);
        ck_assert(!t.tls);
        ck_assert_str_eq(u, "http://Example.COM/x?y"); /* as written: libcurl keeps the case */
        free(u);
        ck_assert_int_eq(net_url_target("https://a.test:8443/", NET_SCHEME_HTTPS, &t, NULL), 0);
        ck_assert_uint_eq(t.port, 8443);
        ck_assert(t.tls);
        ck_assert_int_eq(net_url_target("http://[::1]:81/", NET_SCHEME_HTTP, &t, NULL), 0);
        ck_assert_str_eq(t.host, "[::1]");
        ck_assert_int_eq(
                net_url_target("wss://h.test/chat", NET_SCHEME_WS | NET_SCHEME_WSS, &t, NULL), 0);
        ck_assert_uint_eq(t.port, 443);
        ck_assert_uint_eq(t.scheme, NET_SCHEME_WSS);
        /* schemes not allowed, not URLs, port 0, zone ids */
        ck_assert_int_eq(net_url_target("file:///etc/passwd", NET_SCHEME_HTTP, &t, NULL),
                         -EPROTONOSUPPORT);
        ck_assert_int_eq(net_url_target("ws://h.test/", NET_SCHEME_HTTP, &t, NULL),
                         -EPROTONOSUPPORT);
        ck_assert_int_eq(net_url_target("not a url", NET_SCHEME_HTTP, &t, NULL), -EINVAL);
        ck_assert_int_eq(net_url_target("", NET_SCHEME_HTTP, &t, NULL), -EINVAL);
        ck_assert_int_eq(net_url_target("http://h.test:0/", NET_SCHEME_HTTP, &t, NULL), -EINVAL);
        ck_assert_int_eq(net_url_target("http://h.test:70000/", NET_SCHEME_HTTP, &t, NULL),
                         -EINVAL);
        ck_assert_int_lt(net_url_target("http://[fe80::1%25eth0]/", NET_SCHEME_HTTP, &t, NULL), 0);
}
END_TEST

START_TEST(test_url_resolve)
{
        char *u = NULL;

        ck_assert_int_eq(net_url_resolve("http://a.test/x/y?q", "/z", &u), 0);
        ck_assert_str_eq(u, "http://a.test/z");
        free(u);
        ck_assert_int_eq(net_url_resolve("http://a.test/x/y", "w", &u), 0);
        ck_assert_str_eq(u, "http://a.test/x/w");
        free(u);
        ck_assert_int_eq(net_url_resolve("http://a.test:8080/x", "//b.test/p", &u), 0);
        ck_assert_str_eq(u, "http://b.test/p");
        free(u);
        ck_assert_int_eq(net_url_resolve("http://a.test/", "https://c.test:444/", &u), 0);
        ck_assert_str_eq(u, "https://c.test:444/");
        free(u);
        ck_assert_int_eq(net_url_resolve("http://a.test/", "file:///etc/passwd", &u),
                         -EPROTONOSUPPORT);
        ck_assert_int_eq(net_url_resolve("http://a.test/", "gopher://x.test/", &u),
                         -EPROTONOSUPPORT);
        ck_assert_int_eq(net_url_resolve("http://a.test/", "", &u), -EINVAL);
}
END_TEST

START_TEST(test_redirect_method)
{
        bool keep;

        ck_assert_str_eq(net_redirect_method(303, "POST", &keep), "GET");
        ck_assert(!keep);
        ck_assert_str_eq(net_redirect_method(303, "HEAD", &keep), "HEAD");
        ck_assert_str_eq(net_redirect_method(302, "POST", &keep), "GET");
        ck_assert(!keep);
        ck_assert_str_eq(net_redirect_method(301, "PUT", &keep), "PUT");
        ck_assert(keep);
        ck_assert_str_eq(net_redirect_method(307, "POST", &keep), "POST");
        ck_assert(keep);
        ck_assert_str_eq(net_redirect_method(308, "DELETE", &keep), "DELETE");
        ck_assert(net_is_redirect(301) && net_is_redirect(308) && !net_is_redirect(304) &&
                  !net_is_redirect(300) && !net_is_redirect(200));
}
END_TEST

START_TEST(test_header_checks)
{
        ck_assert(net_header_name_ok("X-Test", 6));
        ck_assert(!net_header_name_ok("X Test", 6));
        ck_assert(!net_header_name_ok("X:T", 3));
        ck_assert(!net_header_name_ok("", 0));
        ck_assert(net_header_value_ok("a b", 3));
        ck_assert(!net_header_value_ok("a\r\nX-Injected: 1", 17));
        ck_assert(!net_header_value_ok("a\0b", 3));
        ck_assert(net_method_ok("PATCH", 5));
        ck_assert(!net_method_ok("get", 3));
        ck_assert(!net_method_ok("GET /", 5));
}
END_TEST

/* RFC 6455 1.3's example handshake. */
START_TEST(test_ws_accept)
{
        char out[29];

        net_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out);
        ck_assert_int_eq(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), 0);
}
END_TEST

/* ---- servers on the far end of a socketpair --------------------------------------- */

/* Where make_test_ca() put the test CA and secure.test's certificate and key. */
static char tls_dir[64];

typedef struct Server {
        int fd;
        unsigned port;
} Server;

/* Reads the request head and body (Content-Length) into buf. Returns the bytes
 * read, 0 at EOF before a whole request. */
static size_t read_request(int fd, char *buf, size_t size, char **body, size_t *body_len)
{
        size_t n = 0;
        char *end = NULL;
        long cl = 0;

        while (!(end = strstr(buf, "\r\n\r\n"))) {
                ssize_t r = read(fd, buf + n, size - 1 - n);

                if (r <= 0)
                        return 0;
                n += (size_t)r;
                buf[n] = 0;
        }
        {
                char *p = strcasestr(buf, "\r\ncontent-length:");

                if (p && p < end)
                        cl = strtol(p + 17, NULL, 10);
        }
        *body = end + 4;
        while ((size_t)(buf + n - *body) < (size_t)cl) {
                ssize_t r = read(fd, buf + n, size - 1 - n);

                if (r <= 0)
                        return 0;
                n += (size_t)r;
                buf[n] = 0;
        }
        *body_len = (size_t)cl;
        return n;
}

static void respond(int fd, const char *status, const char *extra, const char *body, size_t len)
{
        char head[512];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                         status, len, extra);

        if (send(fd, head, (size_t)n, MSG_NOSIGNAL) != n)
                return;
        for (size_t off = 0; off < len;) {
                ssize_t w = send(fd, body + off, len - off, MSG_NOSIGNAL);

                if (w <= 0)
                        return; /* the client gave up (max_body) */
                off += (size_t)w;
        }
}

static void serve_http(int fd)
{
        static __thread char buf[65536];
        char *body = NULL, line[256], out[1024];
        size_t body_len = 0;

        memset(buf, 0, sizeof buf);
        if (!read_request(fd, buf, sizeof buf, &body, &body_len))
                return;
        if (strncmp(buf, "GET /hello ", 11) == 0)
                respond(fd, "200 OK", "X-Server: test\r\nX-Multi: a\r\nX-Multi: b\r\n", "hello", 5);
        else if (strncmp(buf, "POST /echo ", 11) == 0 || strncmp(buf, "PUT /echo ", 10) == 0) {
                char *h = strcasestr(buf, "\r\nx-test: ");
                int n;

                line[0] = 0;
                if (h)
                        sscanf(h + 10, "%255[^\r]", line);
                n = snprintf(out, sizeof out, "%.*s|%s|", (int)strcspn(buf, " "), buf, line);
                K_ASSERT(n > 0 && body_len < sizeof out - (size_t)n);
                memcpy(out + n, body, body_len);
                respond(fd, "200 OK", "", out, (size_t)n + body_len);
        } else if (strncmp(buf, "GET /redir ", 11) == 0)
                respond(fd, "302 Found", "Location: /hello\r\n", "", 0);
        else if (strncmp(buf, "POST /see-other ", 16) == 0)
                respond(fd, "303 See Other", "Location: /hello\r\n", "", 0);
        else if (strncmp(buf, "GET /away ", 10) == 0)
                respond(fd, "302 Found", "Location: http://denied.test/hello\r\n", "", 0);
        else if (strncmp(buf, "GET /loop ", 10) == 0)
                respond(fd, "302 Found", "Location: /loop\r\n", "", 0);
        else if (strncmp(buf, "GET /big ", 9) == 0) {
                size_t len = 2u << 20;
                char *big = malloc(len);

                K_ASSERT(big);
                memset(big, 'x', len);
                respond(fd, "200 OK", "", big, len);
                free(big);
        } else if (strncmp(buf, "GET /bighead ", 13) == 0) {
                /* 70 KB of one header: past the client's 64 KiB bound */
                static const char start[] = "HTTP/1.1 200 OK\r\nX-Big: ";
                static const char end[] = "\r\nContent-Length: 0\r\n\r\n";
                char *big = malloc(70000);

                K_ASSERT(big);
                memset(big, 'h', 70000);
                if (send(fd, start, sizeof start - 1, MSG_NOSIGNAL) > 0 &&
                    send(fd, big, 70000, MSG_NOSIGNAL) > 0)
                        (void)send(fd, end, sizeof end - 1, MSG_NOSIGNAL);
                free(big);
        } else if (strncmp(buf, "GET /silent ", 12) == 0) {
                /* Never answers: waits for the client to hang up. */
                while (read(fd, line, sizeof line) > 0)
                        ;
        } else
                respond(fd, "404 Not Found", "", "", 0);
}

static void serve_echo(int fd)
{
        char b[4096];
        ssize_t n;

        while ((n = read(fd, b, sizeof b)) > 0)
                if (send(fd, b, (size_t)n, MSG_NOSIGNAL) != n)
                        return;
}

/* A WebSocket echo server (port 9) with wslay's server side over a blocking socket;
 * port 10 answers the handshake with a wrong Sec-WebSocket-Accept. */
typedef struct WsSrv {
        int fd;
        SSL *ssl; /* wss (port 444): TLS over fd */
        bool got; /* one read per wslay_event_recv(): then the echoes go out */
} WsSrv;

static ssize_t srv_read(WsSrv *s, void *buf, size_t len)
{
        if (s->ssl) {
                int n = SSL_read(s->ssl, buf, (int)len);

                return n > 0 ? n : -1;
        }
        return read(s->fd, buf, len);
}

static ssize_t srv_write(WsSrv *s, const void *buf, size_t len)
{
        if (s->ssl) {
                int n = SSL_write(s->ssl, buf, (int)len);

                return n > 0 ? n : -1;
        }
        return send(s->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t wss_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                        void *user)
{
        WsSrv *s = user;
        ssize_t n;

        (void)flags;
        if (s->got) {
                s->got = false;
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
                return -1;
        }
        n = srv_read(s, buf, len);
        s->got = true;
        if (n <= 0) {
                wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
                return -1;
        }
        return n;
}

static ssize_t wss_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                        void *user)
{
        ssize_t n = srv_write(user, data, len);

        (void)flags;
        if (n < 0) {
                wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
                return -1;
        }
        return n;
}

static void wss_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                       void *user)
{
        struct wslay_event_msg m = {
                .opcode = a->opcode, .msg = a->msg, .msg_length = a->msg_length};

        (void)user;
        if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME) {
                /* "close me" asks the server to close with 4001 */
                if (a->msg_length == 8 && memcmp(a->msg, "close me", 8) == 0)
                        (void)wslay_event_queue_close(ctx, 4001, (const uint8_t *)"bye", 3);
                else
                        K_ASSERT(wslay_event_queue_msg(ctx, &m) == 0);
        }
}

static void serve_ws(int fd, bool bad_accept, SSL *ssl)
{
        static __thread char buf[16384];
        char *key, accept[29], head[256];
        size_t n = 0;
        int k;
        WsSrv srv = {.fd = fd, .ssl = ssl};
        wslay_event_context_ptr ctx;
        static const struct wslay_event_callbacks cb = {
                .recv_callback = wss_recv,
                .send_callback = wss_send,
                .on_msg_recv_callback = wss_on_msg,
        };

        memset(buf, 0, sizeof buf);
        while (!strstr(buf, "\r\n\r\n")) {
                ssize_t r = srv_read(&srv, buf + n, sizeof buf - 1 - n);

                if (r <= 0)
                        return;
                n += (size_t)r;
        }
        K_ASSERT(strncmp(buf, "GET /chat?room=1 HTTP/1.1\r\n", 27) == 0);
        K_ASSERT(strcasestr(buf, "\r\nx-token: t0k\r\n"));
        key = strcasestr(buf, "\r\nsec-websocket-key: ");
        K_ASSERT(key);
        key += 21;
        key[strcspn(key, "\r")] = 0;
        net_ws_accept(key, accept);
        if (bad_accept)
                accept[0] = accept[0] == 'A' ? 'B' : 'A';
        k = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
        if (srv_write(&srv, head, (size_t)k) != (ssize_t)k || bad_accept)
                return;
        K_ASSERT(wslay_event_context_server_init(&ctx, &cb, &srv) == 0);
        while (wslay_event_want_read(ctx) || wslay_event_want_write(ctx)) {
                if (wslay_event_recv(ctx) < 0 || wslay_event_send(ctx) < 0)
                        break;
        }
        wslay_event_context_free(ctx);
}

/* HTTPS (port 443): a certificate for secure.test from a test CA (made by
 * make_test_ca() with the openssl command in tls_dir), answering GET /hello. */

/* A TLS server session over fd with the test certificate (SSL_free() it, then
 * its SSL_CTX). */
static SSL *tls_server(int fd, SSL_CTX **ret_ctx)
{
        char cert[128], key[128];
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        SSL *ssl;

        K_ASSERT(ctx);
        snprintf(cert, sizeof cert, "%s/srv.pem", tls_dir);
        snprintf(key, sizeof key, "%s/srv.key", tls_dir);
        K_ASSERT(SSL_CTX_use_certificate_chain_file(ctx, cert) == 1);
        K_ASSERT(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1);
        ssl = SSL_new(ctx);
        K_ASSERT(ssl);
        SSL_set_fd(ssl, fd);
        *ret_ctx = ctx;
        return ssl;
}

/* wss (port 444): the WebSocket echo over TLS. */
static void serve_wss(int fd)
{
        SSL_CTX *ctx;
        SSL *ssl = tls_server(fd, &ctx);

        if (SSL_accept(ssl) == 1) {
                serve_ws(fd, false, ssl);
                (void)SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        SSL_CTX_free(ctx);
}

static void serve_tls(int fd)
{
        char buf[4096];
        SSL_CTX *ctx;
        SSL *ssl = tls_server(fd, &ctx);
        size_t n = 0;
        static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n"
                                     "Connection: close\r\n\r\nsecret";

        /* A client that refuses the certificate ends the handshake: nothing more. */
        if (SSL_accept(ssl) == 1) {
                memset(buf, 0, sizeof buf);
                while (!strstr(buf, "\r\n\r\n") && n < sizeof buf - 1) {
                        int r = SSL_read(ssl, buf + n, (int)(sizeof buf - 1 - n));

                        if (r <= 0)
                                break;
                        n += (size_t)r;
                }
                if (strncmp(buf, "GET /hello ", 11) == 0)
                        (void)SSL_write(ssl, answer, (int)sizeof answer - 1);
                (void)SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        SSL_CTX_free(ctx);
}

static void *server_main(void *p)
{
        Server *s = p;

        if (s->port == 443)
                serve_tls(s->fd);
        else if (s->port == 444)
                serve_wss(s->fd);
        else if (s->port == 9 || s->port == 10)
                serve_ws(s->fd, s->port == 10, NULL);
        else if (s->port == 7)
                serve_echo(s->fd);
        else
                serve_http(s->fd);
        close(s->fd);
        free(s);
        return NULL;
}

/* ---- the test kernel ---------------------------------------------------------------- */

typedef struct Kernel {
        int fd;
        pthread_t thread;
        uint8_t buf[CHANNEL_DATAGRAM_MAX];
        unsigned n_connects, n_refused;
        char last_host[256];
        /* the server threads, joined once the app's host is gone (its end closed
         * every connection, which ends each server) */
        pthread_t servers[64];
        unsigned n_servers;
} Kernel;

static void k_send(Kernel *k, const ChannelFrame *req, const ProtobufCMessage *m, const int *fds,
                   unsigned n_fds)
{
        static uint8_t body[CHANNEL_BODY_MAX];
        int n = wire_pack(m, body, sizeof(body));

        K_ASSERT(n >= 0);
        K_ASSERT(channel_send(k->fd,
                              &(ChannelFrame){.opcode = req->opcode,
                                              .flags = CHANNEL_FLAG_REPLY,
                                              .request_id = req->request_id,
                                              .body = body,
                                              .body_len = (size_t)n},
                              fds, n_fds, 0) == 0);
}

static void k_connect(Kernel *k, const ChannelFrame *f, Cella__V1__NetConnectRequest *req)
{
        Cella__V1__NetConnectReply rep = CELLA__V1__NET_CONNECT_REPLY__INIT;
        char right[320], msg[400];
        int sp[2];
        Server *s;
        pthread_t t;

        k->n_connects++;
        snprintf(k->last_host, sizeof k->last_host, "%s", req->host);
        snprintf(right, sizeof right, "net.connect:%s:%u", req->host, req->port);
        if (strcmp(req->host, "denied.test") == 0) {
                k->n_refused++;
                snprintf(msg, sizeof msg, "%s not granted", right);
                K_ASSERT(channel_send_error(k->fd, f->opcode, f->request_id, -EACCES, msg, 0) == 0);
                return;
        }
        K_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
        s = malloc(sizeof(*s));
        K_ASSERT(s);
        s->fd = sp[1];
        s->port = req->port;
        K_ASSERT(k->n_servers < ELEMENTSOF(k->servers));
        K_ASSERT(pthread_create(&t, NULL, server_main, s) == 0);
        k->servers[k->n_servers++] = t;
        rep.address = "192.0.2.7";
        rep.right = right;
        rep.connection_id = k->n_connects;
        k_send(k, f, &rep.base, &sp[0], 1);
        close(sp[0]);
}

static void *kernel_main(void *p)
{
        Kernel *k = p;

        for (;;) {
                ChannelFrame f;
                int fds[CHANNEL_FDS_MAX];
                Cella__V1__NetConnectRequest *m;
                int r = channel_recv(k->fd, &f, k->buf, fds, CHANNEL_FDS_MAX, 0);

                if (r == -ECONNRESET)
                        break;
                K_ASSERT(r == 0);
                if (f.flags & CHANNEL_FLAG_CANCEL)
                        continue;
                K_ASSERT(f.opcode == CELLA__V1__OPCODE__OPCODE_NET_CONNECT);
                m = cella__v1__net_connect_request__unpack(NULL, f.body_len, f.body);
                K_ASSERT(m);
                k_connect(k, &f, m);
                cella__v1__net_connect_request__free_unpacked(m, NULL);
        }
        close(k->fd);
        return NULL;
}

/* Runs the n apps srcs[] in one host (packed, n > 1), each with a test kernel of
 * its own on its channel; returns the host's exit code (0: no fault) and each
 * kernel's counts in ks[]. */
static int run_apps(unsigned n, const char *const *srcs, Kernel *ks)
{
        CLuaHostOptions o = {.policy = CLUA_SCHED_FAIR, .stats_fd = -1, .n_apps = n};
        CLuaHost *h = NULL;
        int r;

        ck_assert_int_eq(clua_host_new(&o, &h), 0);
        for (unsigned i = 0; i < n; i++) {
                int sp[2];
                CLuaAppSpec s = {.log_fd = -1};
                CLuaApp *app = NULL;
                char *msg = NULL;

                memset(&ks[i], 0, sizeof(ks[i]));
                ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
                ks[i].fd = sp[1];
                ck_assert_int_eq(pthread_create(&ks[i].thread, NULL, kernel_main, &ks[i]), 0);
                s.channel_fd = sp[0];
                ck_assert_int_eq(clua_host_add(h, &s, &app), 0);
                ck_assert_msg(clua_load(app, srcs[i], strlen(srcs[i]), "=test", &msg) == CLUA_OK,
                              "%s", msg ?: "");
                ck_assert_int_eq(clua_host_start(app, 0, NULL), 0);
        }
        r = clua_host_run(h);
        clua_host_free(h); /* closes the channels: the kernel threads end */
        for (unsigned i = 0; i < n; i++) {
                ck_assert_int_eq(pthread_join(ks[i].thread, NULL), 0);
                for (unsigned j = 0; j < ks[i].n_servers; j++)
                        ck_assert_int_eq(pthread_join(ks[i].servers[j], NULL), 0);
        }
        return r;
}

/* Runs src as an app whose channel is a test kernel's; returns the host's exit
 * code (0: no fault) and the kernel's counts in *k. */
static int run_app(const char *src, Kernel *k)
{
        return run_apps(1, &src, k);
}

#define PRELUDE "local net = require('cella.net') "

START_TEST(test_http_get)
{
        Kernel k;
        const char *src = PRELUDE
                "local r = net.http.get('http://Files.Test/hello') "
                "assert(r.status == 200, r.status) assert(r.body == 'hello', r.body) "
                "assert(r.headers['x-server'] == 'test') "
                "assert(r.headers['x-multi'] == 'a, b', r.headers['x-multi']) "
                "assert(r.address == '192.0.2.7') assert(r.url == 'http://Files.Test/hello', "
                "r.url) "
                "local r2 = net.http.get('http://files.test/nothing') assert(r2.status == 404)";

        ck_assert_int_eq(run_app(src, &k), 0);
        ck_assert_uint_eq(k.n_connects, 2);
        ck_assert_str_eq(k.last_host, "files.test");
}
END_TEST

START_TEST(test_http_post_headers_body)
{
        Kernel k;
        const char *src = PRELUDE
                "local r = net.http.post('http://files.test/echo', 'a=1&b=\\0two', "
                "  {headers = {['X-Test'] = 'yes'}}) "
                "assert(r.status == 200) assert(r.body == 'POST|yes|a=1&b=\\0two', r.body) "
                "r = net.http.request{method = 'PUT', url = 'http://files.test/echo', body = 'p'} "
                "assert(r.body == 'PUT||p', r.body) "
                /* header injection and bad options are refused before any connection */
                "local ok, e = pcall(net.http.get, 'http://files.test/hello', "
                "  {headers = {['X-A'] = 'v\\r\\nX-Injected: 1'}}) "
                "assert(not ok and e:find('CR, LF'), e) "
                "ok, e = pcall(net.http.get, 'http://files.test/x\\r\\nHost: evil.test') "
                "assert(not ok and e:find('not a URL'), e) "
                "ok, e = pcall(net.http.get, 'file:///etc/passwd') "
                "assert(not ok and e:find('not an http or https URL'), e) "
                "ok, e = pcall(net.http.request, {url = 'http://files.test/', method = 'get x'}) "
                "assert(not ok and e:find('method'), e) "
                "ok, e = pcall(net.http.request, {url = 'http://files.test/', timeout_ms = 0}) "
                "assert(not ok and e:find('timeout_ms out of range'), e)";

        ck_assert_int_eq(run_app(src, &k), 0);
        ck_assert_uint_eq(k.n_connects, 2);
}
END_TEST

/* Every hop is a new net.connect: one to a host not granted is refused. */
START_TEST(test_http_redirects)
{
        Kernel k;
        const char *src = PRELUDE
                "local r = net.http.get('http://files.test/redir') "
                "assert(r.status == 200 and r.body == 'hello' and r.url == "
                "  'http://files.test/hello', r.status .. ' ' .. r.body .. ' ' .. r.url) "
                "r = net.http.post('http://files.test/see-other', 'x') "
                "assert(r.status == 200 and r.body == 'hello') "
                "r = net.http.get('http://files.test/redir', {max_redirects = 0}) "
                "assert(r.status == 302 and r.headers.location == '/hello') "
                "local ok, e = pcall(net.http.get, 'http://files.test/away') "
                "assert(not ok and e:find('redirect: denied.test:80 refused') and e:find('not "
                "granted'), e) "
                "ok, e = pcall(net.http.get, 'http://files.test/loop', {max_redirects = 3}) "
                "assert(not ok and e:find('more than 3 redirects'), e)";

        ck_assert_int_eq(run_app(src, &k), 0);
        /* 2 + 2 + 1 + (1 + the refused 1) + (1 + 3) */
        ck_assert_uint_eq(k.n_connects, 11);
        ck_assert_uint_eq(k.n_refused, 1);
}
END_TEST

/* A request waiting on a silent server times out; meanwhile another task of the
 * app runs (only the waiting task is suspended). */
START_TEST(test_http_timeout_suspends_only_its_task)
{
        Kernel k;
        const char *src = PRELUDE
                "local timer = require('cella.timer') "
                "local ticks, done = 0, false "
                "timer.after(0, function() "
                "  while not done do ticks = ticks + 1 timer.sleep(0.01) end end) "
                "local t0 = timer.now() "
                "local ok, e = pcall(net.http.get, 'http://files.test/silent', {timeout_ms = 300}) "
                "done = true "
                "assert(not ok and e:find('timed out'), e) "
                "assert(timer.now() - t0 >= 0.29, timer.now() - t0) "
                "assert(ticks >= 5, 'the other task ran ' .. ticks .. ' times') "
                "local ok2, e2 = pcall(net.http.get, 'http://denied.test/') "
                "assert(not ok2 and e2:find('Permission denied'), e2)";

        ck_assert_int_eq(run_app(src, &k), 0);
}
END_TEST

START_TEST(test_http_max_body)
{
        Kernel k;
        const char *src = PRELUDE
                "local ok, e = pcall(net.http.get, 'http://files.test/big', {max_body = 65536}) "
                "assert(not ok and e:find('larger than 65536'), e) "
                "local r = net.http.get('http://files.test/big') assert(#r.body == 2 * 1024 * "
                "1024) "
                "ok, e = pcall(net.http.get, 'http://files.test/bighead') "
                "assert(not ok and e:find('headers larger than 65536'), e)";

        ck_assert_int_eq(run_app(src, &k), 0);
}
END_TEST

START_TEST(test_tcp)
{
        Kernel k;
        const char *src = PRELUDE
                "local c = net.tcp.connect('echo.test', 7, {timeout_ms = 2000}) "
                "assert(c:info().address == '192.0.2.7') "
                "assert(c:info().right == 'net.connect:echo.test:7') "
                "local big = ('0123456789'):rep(100000) "
                "local writer = require('cella.timer').after(0, function() c:write(big) end) "
                "local got = {} local n = 0 "
                "while n < #big do local s = c:read() got[#got + 1] = s n = n + #s end "
                "assert(table.concat(got) == big) "
                "c:settimeout(100) "
                "local ok, e = pcall(c.read, c) assert(not ok and e:find('timed out'), e) "
                "c:shutdown() assert(c:read() == nil) "
                "c:close() ok, e = pcall(c.write, c, 'x') assert(not ok and e:find('closed'), e) "
                "ok, e = pcall(net.tcp.connect, 'denied.test', 7) "
                "assert(not ok and e:find('denied.test:7 refused: Permission denied'), e) "
                "ok, e = pcall(net.tcp.connect, 'echo.test', 0) "
                "assert(not ok and e:find('port out of range'), e)";

        ck_assert_int_eq(run_app(src, &k), 0);
        ck_assert_uint_eq(k.n_connects, 2);
}
END_TEST

START_TEST(test_websocket)
{
        Kernel k;
        const char *src = PRELUDE
                "local ws = net.websocket.connect('ws://chat.test:9/chat?room=1', "
                "  {headers = {['X-Token'] = 't0k'}, timeout_ms = 5000}) "
                "assert(ws:info().address == '192.0.2.7') "
                "ws:send('hello') local m, kind = ws:receive() "
                "assert(m == 'hello' and kind == 'text', tostring(m)) "
                "local bin = ('\\0\\255'):rep(100000) ws:send(bin, 'binary') "
                "m, kind = ws:receive() assert(m == bin and kind == 'binary') "
                "ws:ping('p') "
                "local ok, e = pcall(ws.send, ws, '\\255\\254') "
                "assert(not ok and e:find('not UTF%-8'), e) "
                /* two tasks: one receives while the other sends */
                "local got = {} local t = require('cella.timer') "
                "t.after(0, function() for i = 1, 3 do got[#got + 1] = ws:receive() end end) "
                "for i = 1, 3 do ws:send('m' .. i) end "
                "while #got < 3 do t.sleep(0.01) end "
                "assert(table.concat(got, ',') == 'm1,m2,m3', table.concat(got, ',')) "
                /* the server closes: receive returns nil, its code and reason */
                "ws:send('close me') local d, code, why = ws:receive() "
                "assert(d == nil and code == 4001 and why == 'bye', tostring(code)) "
                "ok, e = pcall(ws.send, ws, 'x') assert(not ok and e:find('closed'), e) "
                /* our close */
                "local ws2 = net.websocket.connect('ws://chat.test:9/chat?room=1', "
                "  {headers = {['X-Token'] = 't0k'}}) "
                "assert(ws2:close() == true) "
                /* a wrong accept key is refused */
                "ok, e = pcall(net.websocket.connect, 'ws://chat.test:10/chat?room=1', "
                "  {headers = {['X-Token'] = 't0k'}}) "
                "assert(not ok and e:find('Sec%-WebSocket%-Accept'), e) "
                /* twice max_message is held from the memory limit (64 MiB here) */
                "local m16 = {headers = {['X-Token'] = 't0k'}, max_message = 16 * 1024 * 1024} "
                "local w1 = net.websocket.connect('ws://chat.test:9/chat?room=1', m16) "
                "ok, e = pcall(net.websocket.connect, 'ws://chat.test:9/chat?room=1', m16) "
                "assert(not ok and e:find('memory limit free'), e) "
                "w1:close() "
                "w1 = net.websocket.connect('ws://chat.test:9/chat?room=1', m16) w1:close() "
                "ok, e = pcall(net.websocket.connect, 'ws://denied.test/x') "
                "assert(not ok and e:find('refused: Permission denied'), e) "
                "ok, e = pcall(net.websocket.connect, 'http://chat.test/x') "
                "assert(not ok and e:find('not a ws or wss URL'), e)";

        ck_assert_int_eq(run_app(src, &k), 0);
        ck_assert_uint_eq(k.n_connects, 6);
        ck_assert_uint_eq(k.n_refused, 1);
}
END_TEST

START_TEST(test_ws_response_check)
{
        const char *why = NULL;
        char acc[29];
        char ok[256];

        net_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", acc);
        snprintf(ok, sizeof ok,
                 "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
                 "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 acc);
        ck_assert_int_eq(net_ws_check_response(ok, strlen(ok), acc, &why), 0);
        ck_assert_int_eq(
                net_ws_check_response(ok, strlen(ok), "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", &why),
                -EPROTO);
        ck_assert_ptr_nonnull(strstr(why, "Accept"));
        ck_assert_int_eq(net_ws_check_response("HTTP/1.1 200 OK\r\n\r\n", 19, acc, &why), -EPROTO);
        ck_assert_ptr_nonnull(strstr(why, "101"));
        {
                const char *h = "HTTP/1.1 101 X\r\nConnection: Upgrade\r\n\r\n";

                ck_assert_int_eq(net_ws_check_response(h, strlen(h), acc, &why), -EPROTO);
        }
        ck_assert_ptr_nonnull(strstr(why, "Upgrade: websocket"));
        ck_assert(net_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
        ck_assert(!net_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
        ck_assert(!net_utf8_valid("\xed\xa0\x80", 3));     /* a surrogate */
        ck_assert(!net_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
        ck_assert(!net_utf8_valid("\xe2\x82", 2));         /* cut short */
}
END_TEST

/* The app ends (app.exit from another task) while tasks wait on a silent HTTP
 * server, a TCP read and a WebSocket receive: everything is let go (ASan: no leak,
 * no use after free), and the host ends with the app's code. */
START_TEST(test_app_ends_while_waiting)
{
        Kernel k;
        const char *src = PRELUDE
                "local timer = require('cella.timer') "
                "timer.after(0, function() net.http.get('http://files.test/silent') end) "
                "timer.after(0, function() local c = net.tcp.connect('echo.test', 7) c:read() end) "
                "timer.after(0, function() "
                "  local ws = net.websocket.connect('ws://chat.test:9/chat?room=1', "
                "    {headers = {['X-Token'] = 't0k'}}) ws:receive() end) "
                "timer.after(0.3, function() require('cella.app').exit(7) end)";

        ck_assert_int_eq(run_app(src, &k), 7);
        ck_assert_uint_eq(k.n_connects, 3);
}
END_TEST

/* Makes a test CA and a certificate for secure.test signed by it in tls_dir with
 * the openssl command; returns the CA's PEM (malloc'd), or NULL without openssl. */
static char *make_test_ca(void)
{
        char cmd[2048], path[128], *pem;
        FILE *f;
        long n;

        if (system("command -v openssl >/dev/null 2>&1") != 0)
                return NULL;
        snprintf(tls_dir, sizeof tls_dir, "/tmp/cella-test-lua-net-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tls_dir));
        snprintf(cmd, sizeof cmd,
                 "(cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
                 "-days 2 -subj '/CN=cella test CA' && "
                 "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
                 "-subj /CN=secure.test && "
                 "printf 'subjectAltName=DNS:secure.test\\n' > ext.cnf && "
                 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                 "-out srv.pem -days 2 -extfile ext.cnf) >/dev/null 2>&1",
                 tls_dir);
        ck_assert_int_eq(system(cmd) >> 8, 0);
        snprintf(path, sizeof path, "%s/ca.pem", tls_dir);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        rewind(f);
        pem = calloc(1, (size_t)n + 1);
        ck_assert_ptr_nonnull(pem);
        ck_assert_uint_eq(fread(pem, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        return pem;
}

/* TLS is verified: with the test CA given (ca_pem) the request goes through; with
 * the system's store (which does not know the test CA), or to a name the
 * certificate does not carry, it fails. */
START_TEST(test_https_verified)
{
        Kernel k;
        char *ca = make_test_ca(), *src, cmd[128];

        if (!ca) {
                fprintf(stderr, "test_https_verified: skipped: no openssl command\n");
                return;
        }
        ck_assert_int_gt(
                asprintf(
                        &src,
                        PRELUDE
                        "local ca = [==[%s]==] "
                        "local r = net.http.get('https://secure.test/hello', {ca_pem = ca}) "
                        "assert(r.status == 200 and r.body == 'secret', r.status) "
                        "local ok, e = pcall(net.http.get, 'https://secure.test/hello') "
                        "assert(not ok and e:find('certificate'), e) "
                        "ok, e = pcall(net.http.get, 'https://other.test/hello', "
                        "  {ca_pem = ca}) "
                        "assert(not ok and (e:find('certificate') or e:find('name')), e) "
                        "ok, e = pcall(net.http.get, 'https://secure.test/hello', "
                        "  {ca_pem = 'not a certificate'}) "
                        "assert(not ok, 'a bad CA verified nothing') "
                        /* wss: the same TLS, then the WebSocket over it */
                        "local ws = net.websocket.connect('wss://secure.test:444/chat?room=1', "
                        "  {ca_pem = ca, headers = {['X-Token'] = 't0k'}}) "
                        "local big = ('x'):rep(300000) ws:send(big) "
                        "assert(ws:receive() == big) assert(ws:close() == true) "
                        "ok, e = pcall(net.websocket.connect, 'wss://secure.test:444/chat?room=1') "
                        "assert(not ok and e:find('certificate'), e)",
                        ca),
                0);
        ck_assert_int_eq(run_app(src, &k), 0);
        ck_assert_uint_eq(k.n_connects, 6);
        snprintf(cmd, sizeof cmd, "rm -rf %s", tls_dir);
        ck_assert_int_eq(system(cmd), 0);
        free(src);
        free(ca);
}
END_TEST

/* Two apps packed in one host: while one waits on a silent server, the other
 * fetches, reads and echoes over WebSocket (an app that waits holds no one up),
 * each through its own channel to its own kernel. */
START_TEST(test_packed_apps_wait_apart)
{
        Kernel ks[2];
        const char *srcs[2] = {
                PRELUDE "local t0 = require('cella.timer').now() "
                        "local ok, e = pcall(net.http.get, 'http://files.test/silent', "
                        "  {timeout_ms = 1500}) "
                        "assert(not ok and e:find('timed out'), e) "
                        "assert(require('cella.timer').now() - t0 >= 1.4)",
                PRELUDE "local t = require('cella.timer') local t0 = t.now() "
                        "for i = 1, 20 do "
                        "  local r = net.http.get('http://files.test/hello') "
                        "  assert(r.body == 'hello') end "
                        "local ws = net.websocket.connect('ws://chat.test:9/chat?room=1', "
                        "  {headers = {['X-Token'] = 't0k'}}) "
                        "ws:send('x') assert(ws:receive() == 'x') ws:close() "
                        /* all of it while the other app still waits */
                        "assert(t.now() - t0 < 1.4, t.now() - t0)",
        };

        ck_assert_int_eq(run_apps(2, srcs, ks), 0);
        ck_assert_uint_eq(ks[0].n_connects, 1);
        ck_assert_uint_eq(ks[1].n_connects, 21);
}
END_TEST

/* Without a kernel channel the calls fail clearly. */
START_TEST(test_no_channel)
{
        CLuaHostOptions o = {.policy = CLUA_SCHED_FAIR, .stats_fd = -1, .n_apps = 1};
        CLuaAppSpec s = {.channel_fd = -1, .log_fd = -1};
        const char *src = PRELUDE "local ok, e = pcall(net.http.get, 'http://a.test/') "
                                  "assert(not ok and e:find('no kernel channel'), e) "
                                  "ok, e = pcall(net.tcp.connect, 'a.test', 80) "
                                  "assert(not ok and e:find('no kernel channel'), e)";
        CLuaHost *h = NULL;
        CLuaApp *app = NULL;
        char *msg = NULL;

        ck_assert_int_eq(clua_host_new(&o, &h), 0);
        ck_assert_int_eq(clua_host_add(h, &s, &app), 0);
        ck_assert_msg(clua_load(app, src, strlen(src), "=test", &msg) == CLUA_OK, "%s", msg ?: "");
        ck_assert_int_eq(clua_host_start(app, 0, NULL), 0);
        ck_assert_int_eq(clua_host_run(h), 0);
        clua_host_free(h);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("lua-net");
        TCase *pure = tcase_create("pure"), *api = tcase_create("api");

        tcase_add_test(pure, test_url_target);
        tcase_add_test(pure, test_url_resolve);
        tcase_add_test(pure, test_redirect_method);
        tcase_add_test(pure, test_header_checks);
        tcase_add_test(pure, test_ws_accept);
        tcase_add_test(pure, test_ws_response_check);
        suite_add_tcase(s, pure);
        tcase_set_timeout(api, 60);
        tcase_add_test(api, test_http_get);
        tcase_add_test(api, test_http_post_headers_body);
        tcase_add_test(api, test_http_redirects);
        tcase_add_test(api, test_http_timeout_suspends_only_its_task);
        tcase_add_test(api, test_http_max_body);
        tcase_add_test(api, test_tcp);
        tcase_add_test(api, test_websocket);
        tcase_add_test(api, test_app_ends_while_waiting);
        tcase_add_test(api, test_https_verified);
        tcase_add_test(api, test_packed_apps_wait_apart);
        tcase_add_test(api, test_no_channel);
        suite_add_tcase(s, api);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(suite());
        int failed;

        /* The test's TLS server writes with OpenSSL's plain write(): a client that
         * hung up must not kill the test (the code under test sends with
         * MSG_NOSIGNAL, through libcurl's, wslay's and its own sends). */
        signal(SIGPIPE, SIG_IGN);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
