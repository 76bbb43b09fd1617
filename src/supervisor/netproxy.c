/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The per-app proxy's server (netproxy.h): accepts on the listeners made in the
 * app's namespace, runs each handshake (src/net/proxy.c) under its time and size
 * bounds, and hands the connection to broker_net_connect().
 *
 * A connection goes through: HANDSHAKE (reading, a slot of NETPROXY_PENDING_MAX,
 * the handshake timer) -> CONNECTING (the broker has its fd, a dup of ours kept to
 * answer a refusal; still a slot) -> done: connected (our dup closed: the relay has
 * the connection) or refused (the refusal written on our dup, then LINGER: its
 * write side shut, what the app still sends read and dropped until EOF or
 * NETPROXY_LINGER_MS, so that the reply is read before the close resets it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "memory/config.h"
#include "net/nslisten.h"
#include "net/proxy.h"
#include "supervisor/netproxy.h"

_Static_assert(NETPROXY_PORT_DEFAULT == MANAGER_CONFIG_NET_PROXY_PORT,
               "cellad.conf's net.proxy.port default is the proxy's");

typedef enum Phase {
        PHASE_HANDSHAKE,
        PHASE_CONNECTING,
        PHASE_LINGER,
} Phase;

typedef struct Client Client;

typedef struct Listener {
        NetProxy *p;
        int fd; /* -1: none */
        uv_poll_t poll;
        bool polling;
} Listener;

struct NetProxy {
        uv_loop_t *loop;
        Broker *broker;
        char *app_id;
        Listener l[2];
        unsigned closing; /* listener handles whose close is pending */
        bool freed;       /* netproxy_free() ran: freed at the last close */
        Client *clients;  /* HANDSHAKE and LINGER ones, and CONNECTING ones */
        unsigned pending; /* HANDSHAKE + CONNECTING */
        unsigned lingering;
        bool no_fds; /* accept failed for want of fds: not accepting until a client ends */
        uint32_t handshake_ms;
        NetProxyStats stats;
};

struct Client {
        NetProxy *p; /* NULL once p is gone (a CONNECTING client left to the broker) */
        Client *prev, *next;
        Phase phase;
        int fd;
        uv_poll_t poll;
        uv_timer_t timer;
        unsigned closing;    /* handles whose close is pending */
        bool handles_closed; /* both handles closed (or closing) */
        bool in_broker;      /* broker_net_connect()'s done is still to come */
        size_t lingered;     /* bytes dropped while lingering */
        ProxyConn conn;      /* last: PROXY_HANDSHAKE_MAX bytes */
};

/* The handshake's bound, ms: NETPROXY_HANDSHAKE_MS, or shorter for the tests
 * (CELLA_TEST_PROXY_HANDSHAKE_MS in cellad's environment, 1..NETPROXY_HANDSHAKE_MS;
 * it can never lengthen it), so a slowloris test need not wait 10 s. */
static uint32_t handshake_ms(void)
{
        const char *knob = getenv("CELLA_TEST_PROXY_HANDSHAKE_MS");
        char *end = NULL;
        unsigned long ms = knob ? strtoul(knob, &end, 10) : 0;

        if (knob && *knob >= '1' && *knob <= '9' && end && !*end && ms < NETPROXY_HANDSHAKE_MS)
                return (uint32_t)ms;
        return NETPROXY_HANDSHAKE_MS;
}

bool netproxy_wanted(const Manifest *m)
{
        bool connect = false;

        STRV_FOREACH (perm, m->permissions) {
                if (strcmp(*perm, "net.internet") == 0)
                        return false;
                if (strcmp(*perm, "net.connect") == 0 || strncmp(*perm, "net.connect:", 12) == 0)
                        connect = true;
        }
        return connect;
}

uint16_t netproxy_port(int option_port, const Manifest *m)
{
        if (option_port < 0 || option_port > 65535 || !netproxy_wanted(m))
                return 0;
        return option_port ? (uint16_t)option_port : NETPROXY_PORT_DEFAULT;
}

/* Whether the strv env sets key (key "=..." in it). */
static bool env_has(char *const *env, const char *key)
{
        size_t n = strlen(key);

        STRV_FOREACH (e, (char **)env)
                if (strncmp(*e, key, n) == 0 && (*e)[n] == '=')
                        return true;
        return false;
}

int netproxy_env(char ***envp, char *const *m_env, uint16_t port)
{
        static const struct {
                const char *key;
                bool http, socks; /* neither: no_proxy's list */
        } vars[] = {
                {"http_proxy", true, false},  {"HTTP_PROXY", true, false},
                {"https_proxy", true, false}, {"HTTPS_PROXY", true, false},
                {"all_proxy", false, true},   {"ALL_PROXY", false, true},
                {"no_proxy", false, false},   {"NO_PROXY", false, false},
        };

        for (size_t i = 0; i < ELEMENTSOF(vars); i++) {
                char value[64];

                if (env_has(m_env, vars[i].key))
                        continue;
                if (vars[i].socks)
                        snprintf(value, sizeof value, "socks5h://127.0.0.1:%u", (unsigned)port);
                else if (vars[i].http)
                        snprintf(value, sizeof value, "http://127.0.0.1:%u", (unsigned)port);
                else
                        snprintf(value, sizeof value, "localhost,127.0.0.1,::1");
                if (strv_extendf(envp, "%s=%s", vars[i].key, value) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static void listeners_update(NetProxy *p);
static void on_client_handle_closed(uv_handle_t *h);

static void client_unlink(Client *c)
{
        NetProxy *p = c->p;

        if (!p)
                return;
        if (c->prev)
                c->prev->next = c->next;
        else
                p->clients = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        if (c->phase == PHASE_HANDSHAKE || c->phase == PHASE_CONNECTING)
                p->pending--;
        else if (c->phase == PHASE_LINGER)
                p->lingering--;
}

static void client_maybe_free(Client *c)
{
        if (c->closing || !c->handles_closed || c->in_broker)
                return;
        proxy_conn_done(&c->conn);
        free(c);
}

static void on_client_handle_closed(uv_handle_t *h)
{
        Client *c = h->data;

        c->closing--;
        client_maybe_free(c);
}

static void client_close_handles(Client *c)
{
        if (c->handles_closed)
                return;
        c->handles_closed = true;
        c->closing = 2;
        /* Before the fd closes: uv_close() takes it out of the loop's epoll set. */
        uv_close((uv_handle_t *)&c->poll, on_client_handle_closed);
        uv_close((uv_handle_t *)&c->timer, on_client_handle_closed);
}

/* Ends c: its fd closed, its handles closed, unlinked; freed once the handles are
 * closed and the broker (if it has it) answered. */
static void client_end(Client *c)
{
        NetProxy *p = c->p;

        client_unlink(c);
        c->p = NULL;
        client_close_handles(c);
        c->fd = safe_close(c->fd);
        if (p) {
                p->no_fds = false; /* one fd less */
                listeners_update(p);
        }
        client_maybe_free(c);
}

static void on_linger_timeout(uv_timer_t *t)
{
        client_end(t->data);
}

static void on_linger_readable(uv_poll_t *h, int status, int events)
{
        Client *c = h->data;
        char buf[4096];

        for (;;) {
                ssize_t k = read(c->fd, buf, sizeof buf);

                if (k < 0 && errno == EAGAIN && status == 0)
                        return;
                /* EOF, an error, or too much: done. */
                if (k <= 0 || (c->lingered += (size_t)k) > 64 * 1024) {
                        client_end(c);
                        return;
                }
        }
}

/* Writes the reply (n bytes), shuts the write side, and lingers (or ends at once
 * when the app has NETPROXY_LINGER_MAX lingering already). A reply of at most
 * PROXY_REPLY_MAX bytes fits a fresh socket's send buffer; a short write ends it. */
static void client_refuse(Client *c, const char *reply, size_t n)
{
        NetProxy *p = c->p;
        ssize_t k = n ? send(c->fd, reply, n, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;

        if (p)
                p->stats.refused += c->phase == PHASE_HANDSHAKE;
        if (!p || k < (ssize_t)n || shutdown(c->fd, SHUT_WR) < 0 ||
            p->lingering >= NETPROXY_LINGER_MAX) {
                client_end(c);
                return;
        }
        if (c->phase != PHASE_LINGER) {
                p->pending--;
                p->lingering++;
                c->phase = PHASE_LINGER;
        }
        listeners_update(p);
        if (uv_poll_start(&c->poll, UV_READABLE, on_linger_readable) < 0 ||
            uv_timer_start(&c->timer, on_linger_timeout, NETPROXY_LINGER_MS, 0) < 0)
                client_end(c);
}

static void on_broker_done(void *userdata, int error, const char *why, const char *address)
{
        Client *c = userdata;
        char reply[PROXY_REPLY_MAX];
        size_t n;

        c->in_broker = false;
        if (!c->p || c->phase != PHASE_CONNECTING) {
                /* The proxy is gone (the app stopped): nothing to answer. */
                client_end(c);
                return;
        }
        if (error == 0) {
                c->p->stats.connected++;
                log_debug("%s: proxy: %s %s:%u connected to %s", c->p->app_id,
                          proxy_kind_to_string(c->conn.kind), c->conn.host, (unsigned)c->conn.port,
                          address ?: "?");
                client_end(c); /* our dup only: the relay has the connection */
                return;
        }
        c->p->stats.failed++;
        log_debug("%s: proxy: %s %s:%u refused: %s", c->p->app_id,
                  proxy_kind_to_string(c->conn.kind), c->conn.host, (unsigned)c->conn.port,
                  why ?: strerror(-error));
        n = proxy_refusal(c->conn.kind, error, why, reply, sizeof reply);
        client_refuse(c, reply, n);
}

/* The handshake is complete: hand a dup of the connection to the broker. */
static void client_connect(Client *c)
{
        NetProxy *p = c->p;
        BrokerNetRequest req = {
                .host = c->conn.host,
                .port = c->conn.port,
                .via = "proxy",
                .to_peer = c->conn.to_peer,
                .n_to_peer = c->conn.n_to_peer,
                .to_app = c->conn.to_app,
                .n_to_app = c->conn.n_to_app,
        };
        char reply[PROXY_REPLY_MAX];
        int fd, r;

        uv_poll_stop(&c->poll);
        uv_timer_stop(&c->timer);
        c->phase = PHASE_CONNECTING;
        fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
                r = negative_errno();
                log_warning_errno(r, "%s: proxy: cannot duplicate a connection: %m", p->app_id);
                client_refuse(c, reply,
                              proxy_refusal(c->conn.kind, r, "cella is out of file descriptors",
                                            reply, sizeof reply));
                return;
        }
        c->in_broker = true;
        r = broker_net_connect(p->broker, p->app_id, &req, fd, on_broker_done, c);
        if (r < 0) {
                /* done will not come; the broker closed fd. */
                c->in_broker = false;
                p->stats.failed++;
                client_refuse(c, reply,
                              proxy_refusal(c->conn.kind, r,
                                            r == -ESRCH ? "the app is not attached to cella" : NULL,
                                            reply, sizeof reply));
        }
}

static void on_client_timeout(uv_timer_t *t)
{
        Client *c = t->data;
        char reply[PROXY_REPLY_MAX];
        log_debug("%s: proxy: a handshake timed out after %u ms (%zu bytes)", c->p->app_id,
                  (unsigned)c->p->handshake_ms, c->conn.n_in);
        /* SOCKS5 has no reply for it but a general failure; a closed HTTP
         * connection says less than a 408. */
        if (c->conn.kind == PROXY_KIND_SOCKS5 || c->conn.n_in == 0) {
                c->p->stats.refused++;
                client_end(c);
        } else
                client_refuse(c, reply,
                              proxy_http_reply(408, "the proxy request did not come in time", reply,
                                               sizeof reply));
}

static void on_client_readable(uv_poll_t *h, int status, int events)
{
        Client *c = h->data;
        static uint8_t buf[PROXY_HANDSHAKE_MAX];

        for (;;) {
                size_t room = proxy_conn_room(&c->conn);
                ssize_t k = read(c->fd, buf, room ?: 1);
                ProxyStep st;

                if (k < 0 && errno == EAGAIN)
                        return;
                if (k <= 0) {
                        /* EOF or an error before the handshake: nothing to answer. */
                        c->p->stats.refused++;
                        client_end(c);
                        return;
                }
                st = proxy_feed(&c->conn, buf, (size_t)k);
                if (st == PROXY_STEP_REFUSE) {
                        log_debug("%s: proxy: refused a %s handshake: %s", c->p->app_id,
                                  proxy_kind_to_string(c->conn.kind), c->conn.why);
                        client_refuse(c, c->conn.out, c->conn.n_out);
                        return;
                }
                if (c->conn.n_out > 0 &&
                    send(c->fd, c->conn.out, c->conn.n_out, MSG_NOSIGNAL | MSG_DONTWAIT) !=
                            (ssize_t)c->conn.n_out) {
                        c->p->stats.refused++;
                        client_end(c);
                        return;
                }
                if (st == PROXY_STEP_CONNECT) {
                        client_connect(c);
                        return;
                }
        }
}

static void accept_one(NetProxy *p, int cfd)
{
        Client *c = calloc(1, sizeof *c);

        if (!c) {
                close(cfd);
                return;
        }
        c->p = p;
        c->fd = cfd;
        c->phase = PHASE_HANDSHAKE;
        proxy_conn_init(&c->conn);
        if (uv_poll_init(p->loop, &c->poll, cfd) < 0) {
                close(cfd);
                free(c);
                return;
        }
        uv_timer_init(p->loop, &c->timer);
        c->poll.data = c->timer.data = c;
        c->next = p->clients;
        if (c->next)
                c->next->prev = c;
        p->clients = c;
        p->pending++;
        p->stats.accepted++;
        if (uv_poll_start(&c->poll, UV_READABLE, on_client_readable) < 0 ||
            uv_timer_start(&c->timer, on_client_timeout, p->handshake_ms, 0) < 0)
                client_end(c);
}

static void on_listener_readable(uv_poll_t *h, int status, int events)
{
        Listener *l = h->data;
        NetProxy *p = l->p;

        while (p->pending < NETPROXY_PENDING_MAX) {
                int cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                            errno == ENOMEM) {
                                /* Out of fds: stop accepting until a connection
                                 * of this proxy ends (else the poll spins). */
                                log_warning_errno(-errno, "%s: proxy: cannot accept: %m",
                                                  p->app_id);
                                p->no_fds = true;
                                break;
                        }
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        continue; /* ECONNABORTED and the like: that one is gone */
                }
                accept_one(p, cfd);
        }
        listeners_update(p);
}

/* Polls the listeners while the app may have another pending connection; an app at
 * NETPROXY_PENDING_MAX waits in the backlog. */
static void listeners_update(NetProxy *p)
{
        bool want = !p->freed && !p->no_fds && p->pending < NETPROXY_PENDING_MAX;

        for (size_t i = 0; i < ELEMENTSOF(p->l); i++) {
                Listener *l = &p->l[i];

                if (l->fd < 0 || l->polling == want)
                        continue;
                if (want)
                        l->polling =
                                uv_poll_start(&l->poll, UV_READABLE, on_listener_readable) == 0;
                else {
                        uv_poll_stop(&l->poll);
                        l->polling = false;
                }
        }
}

static void on_listener_closed(uv_handle_t *h)
{
        Listener *l = h->data;
        NetProxy *p = l->p;

        if (--p->closing == 0 && p->freed) {
                free(p->app_id);
                free(p);
        }
}

int netproxy_start(uv_loop_t *loop, Broker *b, const char *app_id, int fds[2], NetProxy **ret)
{
        NetProxy *p = calloc(1, sizeof *p);
        int r = 0;

        if (!p || !(p->app_id = strdup(app_id))) {
                free(p);
                safe_close(fds[0]);
                safe_close(fds[1]);
                return -ENOMEM;
        }
        p->loop = loop;
        p->broker = b;
        p->handshake_ms = handshake_ms();
        for (size_t i = 0; i < ELEMENTSOF(p->l); i++) {
                Listener *l = &p->l[i];

                l->p = p;
                l->fd = TAKE_FD(fds[i]);
                if (l->fd < 0) {
                        l->fd = -1;
                        continue;
                }
                if (r < 0 || (r = uv_poll_init(loop, &l->poll, l->fd)) < 0) {
                        l->fd = safe_close(l->fd);
                        l->fd = -1;
                        continue;
                }
                l->poll.data = l;
                p->closing++; /* closed by netproxy_free() */
        }
        if (r < 0) {
                netproxy_free(p);
                return r;
        }
        listeners_update(p);
        *ret = p;
        return 0;
}

int netproxy_open(uv_loop_t *loop, Broker *b, const char *app_id, pid_t pid, uint16_t port,
                  NetProxy **ret)
{
        char path[64];
        int fds[2], r;
        _cleanup_close_ int ns = -EBADF;

        snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
        ns = open(path, O_RDONLY | O_CLOEXEC);
        if (ns < 0)
                return negative_errno();
        r = net_listen_in_netns(ns, port, fds);
        if (r < 0)
                return r;
        return netproxy_start(loop, b, app_id, fds, ret);
}

void netproxy_free(NetProxy *p)
{
        if (!p)
                return;
        p->freed = true;
        while (p->clients) {
                Client *c = p->clients;

                if (c->phase == PHASE_CONNECTING) {
                        /* The broker's answer closes it (on_broker_done()). */
                        client_unlink(c);
                        c->p = NULL;
                        client_close_handles(c);
                        continue;
                }
                client_end(c);
        }
        for (size_t i = 0; i < ELEMENTSOF(p->l); i++) {
                Listener *l = &p->l[i];

                if (l->fd < 0)
                        continue;
                uv_close((uv_handle_t *)&l->poll, on_listener_closed);
                l->fd = safe_close(l->fd);
                l->fd = -1;
        }
        if (p->closing == 0) {
                free(p->app_id);
                free(p);
        }
}

void netproxy_stats(const NetProxy *p, NetProxyStats *ret)
{
        *ret = p->stats;
        ret->pending = p->pending;
}
