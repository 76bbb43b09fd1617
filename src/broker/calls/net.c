/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * net.connect (proto/cella.proto "net", docs/network.md) and broker_net_connect(),
 * the same path for callers inside cellad (the proxy): an outbound connection
 * under a net.connect right, to a vetted address, relayed.
 *
 * One connection, in order:
 *
 * 1. The host: an address spelling (net/addr.h: every inet_aton form, IPv6 with or
 *    without brackets, IPv4 inside IPv6; a host that ends in a number is one, valid
 *    or not) or a DNS name (1..253 bytes of letters, digits, '-', '_', '.', labels
 *    of 1..63; lowercased). Anything else is EINVAL.
 * 2. The right "net.connect:<host>:<port>", host lowercased, an address in its
 *    canonical text (an IPv6 one in brackets): "127.1" asks "net.connect:127.0.0.1:80".
 *    An address that is not public (its class: loopback, private, metadata...) is
 *    reached only under a right naming that exact address and port; without one the
 *    call is EPERM naming the class, whatever else the app holds.
 * 3. The per-app limits: the connections open (EMFILE) and a token bucket on new ones
 *    (EAGAIN) (BrokerOptions.net_*, cellad.conf's net.* keys).
 * 4. A name is resolved once, off the loop (uv_getaddrinfo on libuv's threadpool).
 *    At most NET_RESOLVE_PER_APP resolutions of one app and NET_RESOLVE_MAX of all
 *    apps run at once; the others wait, served round-robin by app, so an app whose
 *    names are slow (a resolver that times out takes 5 s a try, resolv.conf(5))
 *    delays only its own connections and never holds all of the threadpool's 4
 *    threads (UV_THREADPOOL_SIZE's default), which fs.usage and proc.* use too.
 * 5. Every address resolved is classified; a name's addresses that are not public
 *    are dropped (a name never opens a private address: the DNS rebinding defence
 *    is that the address checked is the address connected, with no second lookup).
 *    None left: EPERM naming what it resolved to ("resolves to 10.0.0.1, a private
 *    address (RFC 1918)").
 * 6. connect(2), non-blocking, to the vetted addresses in order, each attempt
 *    bounded by NET_ATTEMPT_MS (Happy Eyeballs without the racing: RFC 8305's
 *    sequential fallback), at most NET_ADDRS_MAX of them.
 * 7. A socketpair (SOCK_STREAM for TCP; SOCK_SEQPACKET for UDP, which keeps each
 *    datagram a message and, unlike SOCK_DGRAM, lets the relay see the app close its
 *    end) whose one end goes to the app and the other, with the kernel's socket, to
 *    the relay (net/relay.h). The app never holds the kernel's socket: on a connected
 *    TCP socket connect(AF_UNSPEC) then connect() reaches anywhere, on a UDP one
 *    sendto() does.
 * 8. The connection is a BrokerHandle on the right asked: revoking it closes the
 *    connection at once (net_relay_close()). Its end writes one audit record ("net":
 *    app, right, host, addresses tried, address, port, proto, via, bytes each way,
 *    duration, how it ended), as does every refusal.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/macro.h"
#include "broker/broker-internal.h"
#include "net/addr.h"
#include "net/relay.h"

#define NET_RESOLVE_PER_APP 2u    /* resolutions of one app at once */
#define NET_RESOLVE_MAX     3u    /* of all apps: one threadpool thread stays free */
#define NET_ATTEMPT_MS      3000u /* one connect attempt */
#define NET_ADDRS_MAX       8u    /* addresses tried */
#define NET_HOST_MAX        253u  /* a DNS name's text (RFC 1035 2.3.4) */
#define NET_AUDIT_EVENT     "net"

typedef enum ConnPhase {
        CONN_WAITING, /* for a resolution slot */
        CONN_RESOLVING,
        CONN_CONNECTING,
        CONN_RELAYING,
        CONN_DONE,
} ConnPhase;

typedef struct NetState NetState;
typedef struct NetGlobal NetGlobal;
typedef struct Conn Conn;

struct Conn {
        BrokerHandle handle; /* on the right asked, while relaying */
        Broker *broker;
        NetState *st; /* NULL once the app has gone */
        BrokerApp *app;
        char *app_id;
        BrokerCall *call;   /* the net.connect call answered at the end, or NULL */
        BrokerNetDone done; /* broker_net_connect()'s, or NULL */
        void *done_userdata;
        int app_fd; /* broker_net_connect()'s app end, or -1 */
        uint8_t *to_peer, *to_app;
        size_t n_to_peer, n_to_app;

        ConnPhase phase;
        char host[NET_HOST_MAX + 3];
        uint16_t port;
        bool udp;
        const char *via;
        char right[CAPABILITY_RIGHT_MAX];
        CapabilityRight parsed;
        bool literal;     /* host is an address: no resolution */
        bool once;        /* allowed by a one-time grant, used up by this connection */
        NetState *res_st; /* whose resolution slot it holds while resolving */

        NetAddr addrs[NET_ADDRS_MAX];
        unsigned n_addrs, next_addr;
        json_t *tried; /* the addresses attempted */
        NetAddr connected;

        uv_getaddrinfo_t gai;
        int sock;
        uv_poll_t *poll;   /* on sock while connecting; freed by its close callback */
        uv_timer_t *timer; /* the attempt's bound; same */
        int last_error;

        uint64_t relay_id;
        uint64_t id; /* per app, from 1 */
        uint64_t started_ns;
        const char *end_reason; /* set by a close: "revoked", "stopped" */
        Conn *next, *prev;      /* in st->conns */
        Conn *wnext;            /* in st->waiting */
};

struct NetState {
        BrokerHandle handle; /* on no right: closed when the app detaches */
        NetGlobal *g;
        BrokerApp *app;
        RateLimit rate;
        unsigned open;      /* connections counted against the limit */
        unsigned resolving; /* resolutions in flight */
        Conn *conns;
        Conn *waiting, *waiting_tail;
        NetState *rr_next, *rr_prev; /* in g's ring of apps with waiting resolutions */
        bool in_ring;
        uint64_t next_id;
};

struct NetGlobal {
        NetRelay *relay;
        unsigned resolving;
        NetState *ring; /* apps with resolutions waiting, round-robin */
};

/* ---- helpers ------------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
        return uv_hrtime();
}

static void stats_add_refused(BrokerApp *app)
{
        if (app)
                broker_app_stats_mut(app)->net_refused++;
}

/* A DNS name as RFC 1123 2.1 allows it, plus '_' (SRV-style labels are common):
 * labels of 1..63, one trailing dot allowed. Lowercases in place. */
static bool name_is_valid(char *s)
{
        size_t n = strlen(s), label = 0;

        if (n == 0 || n > NET_HOST_MAX)
                return false;
        if (s[n - 1] == '.')
                s[--n] = 0;
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];

                if (c == '.') {
                        if (label == 0)
                                return false;
                        label = 0;
                        continue;
                }
                if (!(isalnum((unsigned char)c) || c == '-' || c == '_'))
                        return false;
                /* A label neither starts nor ends with '-' (RFC 952, RFC 1123 2.1). */
                if (c == '-' && (label == 0 || i + 1 == n || s[i + 1] == '.'))
                        return false;
                if (++label > 63)
                        return false;
                s[i] = (char)tolower((unsigned char)c);
        }
        return label > 0;
}

static void addr_text(const NetAddr *a, char *buf, size_t size)
{
        net_addr_format(a, false, buf, size);
}

static const char *end_name(NetRelayEnd e)
{
        switch (e) {
        case NET_RELAY_END_EOF:
                return "eof";
        case NET_RELAY_END_RESET:
                return "reset";
        case NET_RELAY_END_CLOSED:
                return "closed";
        }
        return "?";
}

/* One "net" audit record (the app may have gone: by the id kept). */
static void conn_audit(Conn *c, json_t *f)
{
        AuditLog *a = broker_options(c->broker)->audit;

        if (!f)
                return;
        json_object_set_new(f, "host", json_string(c->host));
        json_object_set_new(f, "port", json_integer(c->port));
        json_object_set_new(f, "proto", json_string(c->udp ? "udp" : "tcp"));
        json_object_set_new(f, "via", json_string(c->via));
        if (c->right[0])
                json_object_set_new(f, "right", json_string(c->right));
        if (c->tried)
                json_object_set(f, "tried", c->tried);
        if (a && audit_append(a, c->app_id, NET_AUDIT_EVENT, f) == 0)
                (void)audit_flush(a);
        json_decref(f);
}

/* ---- resolution slots ------------------------------------------------------------- */

static void conn_resolve_start(Conn *c);

static void ring_add(NetGlobal *g, NetState *st)
{
        if (st->in_ring)
                return;
        st->in_ring = true;
        if (!g->ring) {
                st->rr_next = st->rr_prev = st;
                g->ring = st;
                return;
        }
        st->rr_next = g->ring;
        st->rr_prev = g->ring->rr_prev;
        g->ring->rr_prev->rr_next = st;
        g->ring->rr_prev = st;
}

static void ring_remove(NetGlobal *g, NetState *st)
{
        if (!st->in_ring)
                return;
        st->in_ring = false;
        if (st->rr_next == st)
                g->ring = NULL;
        else {
                st->rr_prev->rr_next = st->rr_next;
                st->rr_next->rr_prev = st->rr_prev;
                if (g->ring == st)
                        g->ring = st->rr_next;
        }
        st->rr_next = st->rr_prev = NULL;
}

/* Starts waiting resolutions while slots are free, one app at a time in turn. */
static void slots_run(NetGlobal *g)
{
        unsigned skipped = 0;

        while (g->ring && g->resolving < NET_RESOLVE_MAX) {
                NetState *st = g->ring;
                Conn *c = st->waiting;

                g->ring = st->rr_next;
                if (!c) {
                        ring_remove(g, st);
                        continue;
                }
                if (st->resolving >= NET_RESOLVE_PER_APP) {
                        /* Its own slots are full: it waits for them, not in the ring. */
                        ring_remove(g, st);
                        if (++skipped > 64)
                                break;
                        continue;
                }
                st->waiting = c->wnext;
                if (!st->waiting) {
                        st->waiting_tail = NULL;
                        ring_remove(g, st);
                }
                c->wnext = NULL;
                conn_resolve_start(c);
        }
}

/* ---- the end ------------------------------------------------------------------------- */

static void close_free_cb(uv_handle_t *h)
{
        free(h);
}

static void conn_stop_connecting(Conn *c)
{
        if (c->poll) {
                uv_close((uv_handle_t *)c->poll, close_free_cb);
                c->poll = NULL;
        }
        if (c->timer) {
                uv_close((uv_handle_t *)c->timer, close_free_cb);
                c->timer = NULL;
        }
        c->sock = safe_close(c->sock);
}

static void conn_unlink(Conn *c)
{
        NetState *st = c->st;

        if (!st)
                return;
        if (c->prev)
                c->prev->next = c->next;
        else if (st->conns == c)
                st->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->next = c->prev = NULL;
        if (st->open > 0)
                st->open--;
}

static void waiting_remove(Conn *c)
{
        NetState *st = c->st;
        Conn *prev = NULL;

        if (!st)
                return;
        for (Conn *w = st->waiting; w; prev = w, w = w->wnext)
                if (w == c) {
                        if (prev)
                                prev->wnext = c->wnext;
                        else
                                st->waiting = c->wnext;
                        if (st->waiting_tail == c)
                                st->waiting_tail = prev;
                        c->wnext = NULL;
                        return;
                }
}

static void conn_free(Conn *c)
{
        conn_stop_connecting(c);
        c->app_fd = safe_close(c->app_fd);
        json_decref(c->tried);
        free(c->to_peer);
        free(c->to_app);
        free(c->app_id);
        free(c);
}

/* Ends a connection that never relayed: the answer (error, or 0 after the relay
 * took it), the refusal's record, and the Conn freed unless the resolver still
 * holds it. */
static void conn_finish(Conn *c, int error, const char *why, json_t *refusal)
{
        char addr[NET_ADDR_STRLEN] = "";

        conn_stop_connecting(c);
        if (error == 0)
                addr_text(&c->connected, addr, sizeof(addr));
        if (refusal) {
                json_object_set_new(refusal, "what", json_string("refused"));
                json_object_set_new(refusal, "errno", json_integer(error));
                json_object_set_new(refusal, "why", json_string(why ? why : ""));
                conn_audit(c, refusal);
                if (error == EPERM || error == EACCES)
                        stats_add_refused(c->app);
        } else if (error != 0 && error != ECANCELED) {
                json_t *f = json_pack("{s:s, s:i, s:s}", "what", "failed", "errno", error, "why",
                                      why ? why : "");
                conn_audit(c, f);
        }
        if (c->call) {
                BrokerCall *call = c->call;

                c->call = NULL;
                call->cancel = NULL;
                call->checked = NULL;
                if (error) {
                        if (c->right[0])
                                broker_audit_set(call, "net_right", json_string(c->right));
                        broker_reply_error(call, error, why);
                }
                /* (a success was answered by conn_relay()) */
        }
        if (c->done) {
                BrokerNetDone done = c->done;

                c->done = NULL;
                done(c->done_userdata, error ? -error : 0, error ? why : NULL, error ? NULL : addr);
        }
        if (c->phase != CONN_RELAYING) {
                if (c->phase == CONN_WAITING)
                        waiting_remove(c);
                conn_unlink(c);
                c->st = NULL;
                if (c->phase == CONN_RESOLVING) {
                        c->phase = CONN_DONE; /* freed by the resolver's callback */
                        return;
                }
                c->phase = CONN_DONE;
                conn_free(c);
        }
}

/* The relay's done callback: the connection's record, the counters, the Conn freed. */
static void conn_relay_done(void *userdata, uint64_t id, const NetRelayStats *rs)
{
        Conn *c = userdata;
        char addr[NET_ADDR_STRLEN];
        const char *how = c->end_reason ? c->end_reason : end_name(rs->end);
        json_t *f;

        addr_text(&c->connected, addr, sizeof(addr));
        f = json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:s}", "what", "connection", "connection",
                      (json_int_t)c->id, "address", addr, "bytes_out", (json_int_t)rs->bytes_a_to_b,
                      "bytes_in", (json_int_t)rs->bytes_b_to_a, "duration_ms",
                      (json_int_t)((rs->ended_ns - rs->started_ns) / 1000000u), "ended", how);
        if (f && rs->end == NET_RELAY_END_RESET)
                json_object_set_new(f, "errno", json_integer(rs->error));
        conn_audit(c, f);
        if (c->st) {
                BrokerAppStats *s = broker_app_stats_mut(c->st->app);

                s->net_bytes_out += rs->bytes_a_to_b;
                s->net_bytes_in += rs->bytes_b_to_a;
                broker_handle_remove(&c->handle);
                conn_unlink(c);
        }
        c->phase = CONN_DONE;
        conn_free(c);
}

/* The handle's close: revoked (the right is gone) or the app detached. */
static void conn_handle_close(BrokerHandle *h)
{
        Conn *c = (Conn *)((char *)h - offsetof(Conn, handle));
        NetGlobal *g = broker_net_global(c->broker);

        /* The app's counters get the bytes now: the relay's done comes later, when
         * the app may have gone. */
        if (c->app && g && g->relay) {
                NetRelayStats rs;

                if (net_relay_stats(g->relay, c->relay_id, &rs) == 0) {
                        BrokerAppStats *as = broker_app_stats_mut(c->app);

                        as->net_bytes_out += rs.bytes_a_to_b;
                        as->net_bytes_in += rs.bytes_b_to_a;
                }
        }
        /* Closed because the right is gone (a revoke), or because the app is going. */
        if (!c->end_reason)
                c->end_reason =
                        c->app && broker_app_right_state(c->app, &c->parsed, NULL, NULL) == 0
                                ? "stopped"
                                : "revoked";
        conn_unlink(c);
        c->st = NULL;
        c->app = NULL;
        if (g && g->relay)
                (void)net_relay_close(g->relay, c->relay_id); /* done frees c later */
}

/* ---- relaying ------------------------------------------------------------------------ */

static NetRelay *relay_get(Broker *b)
{
        NetGlobal *g = broker_net_global(b);

        if (!g)
                return NULL;
        if (!g->relay && net_relay_new(broker_options(b)->loop, &g->relay) < 0)
                g->relay = NULL;
        return g->relay;
}

/* c->sock is connected: hand it to the relay with the app's end. */
static void conn_relay(Conn *c)
{
        NetRelay *relay = relay_get(c->broker);
        int sp[2] = {-1, -1}, app_end = -1, r;
        char addr[NET_ADDR_STRLEN];

        addr_text(&c->connected, addr, sizeof(addr));
        if (!relay) {
                conn_finish(c, ENOMEM, "the kernel could not start its relay", NULL);
                return;
        }
        /* The right may have been revoked while we resolved and connected. */
        if (c->st && c->parsed.cap && !c->once &&
            broker_app_right_state(c->app, &c->parsed, NULL, NULL) != 0) {
                conn_finish(c, EACCES, "the right was revoked", json_object());
                return;
        }
        if (c->app_fd >= 0)
                app_end = TAKE_FD(c->app_fd);
        else {
                if (socketpair(AF_UNIX, (c->udp ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC, 0,
                               sp) < 0) {
                        r = errno;
                        conn_finish(c, r, "the kernel is out of sockets", NULL);
                        return;
                }
                app_end = sp[1];
        }
        if (c->poll) {
                uv_close((uv_handle_t *)c->poll, close_free_cb);
                c->poll = NULL;
        }
        if (c->timer) {
                uv_close((uv_handle_t *)c->timer, close_free_cb);
                c->timer = NULL;
        }
        NetRelayPair p = {
                .fd_a = app_end,
                .fd_b = TAKE_FD(c->sock),
                .datagram = c->udp,
                .prefix_to_b = c->to_peer,
                .n_prefix_to_b = c->n_to_peer,
                .prefix_to_a = c->to_app,
                .n_prefix_to_a = c->n_to_app,
                .done = conn_relay_done,
                .userdata = c,
        };
        r = net_relay_add(relay, &p, &c->relay_id);
        if (r < 0) {
                safe_close(sp[0]);
                conn_finish(c, -r, "the kernel could not relay the connection", NULL);
                return;
        }
        c->phase = CONN_RELAYING;
        /* On its right, which a revoke takes away; a connection a one-time grant
         * allowed used that grant up and depends on no right that remains. */
        broker_handle_add(c->app, &c->handle, c->parsed.cap && !c->once ? &c->parsed : NULL,
                          conn_handle_close);
        broker_app_stats_mut(c->app)->net_connections++;
        if (c->call) {
                Cella__V1__NetConnectReply reply = CELLA__V1__NET_CONNECT_REPLY__INIT;
                BrokerCall *call = c->call;

                reply.address = addr;
                reply.right = c->right;
                reply.connection_id = c->id;
                c->call = NULL;
                call->cancel = NULL;
                call->checked = NULL;
                broker_audit_set(call, "address", json_string(addr));
                broker_audit_set(call, "connection", json_integer((json_int_t)c->id));
                broker_reply(call, &reply.base, &sp[0], 1); /* sends and closes sp[0] */
        }
        conn_finish(c, 0, NULL, NULL);
}

/* ---- connecting ----------------------------------------------------------------------- */

static void conn_try_next(Conn *c);

static void on_attempt_timeout(uv_timer_t *t)
{
        Conn *c = t->data;

        c->last_error = ETIMEDOUT;
        conn_stop_connecting(c);
        conn_try_next(c);
}

static void on_writable(uv_poll_t *p, int status, int events)
{
        Conn *c = p->data;
        int e = 0;
        socklen_t l = sizeof(e);

        if (getsockopt(c->sock, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
                e = errno;
        if (status < 0 && e == 0)
                e = -status;
        if (e == 0) {
                conn_relay(c);
                return;
        }
        c->last_error = e;
        conn_stop_connecting(c);
        conn_try_next(c);
}

static void conn_try_next(Conn *c)
{
        uv_loop_t *loop = broker_options(c->broker)->loop;
        struct sockaddr_storage ss;
        char text[NET_ADDR_STRLEN];
        socklen_t len;

        while (c->next_addr < c->n_addrs) {
                const NetAddr *a = &c->addrs[c->next_addr++];
                int r;

                addr_text(a, text, sizeof(text));
                if (c->tried)
                        json_array_append_new(c->tried, json_string(text));
                c->sock = socket(a->family,
                                 (c->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                 0);
                if (c->sock < 0) {
                        c->last_error = errno;
                        continue;
                }
                len = net_addr_sockaddr(a, c->port, &ss);
                r = connect(c->sock, (struct sockaddr *)&ss, len);
                if (r == 0) {
                        c->connected = *a;
                        conn_relay(c);
                        return;
                }
                if (errno != EINPROGRESS) {
                        c->last_error = errno;
                        c->sock = safe_close(c->sock);
                        continue;
                }
                c->connected = *a;
                c->poll = calloc(1, sizeof(*c->poll));
                c->timer = calloc(1, sizeof(*c->timer));
                if (!c->poll || !c->timer || uv_poll_init(loop, c->poll, c->sock) < 0) {
                        free(c->poll);
                        free(c->timer);
                        c->poll = NULL;
                        c->timer = NULL;
                        conn_finish(c, ENOMEM, NULL, NULL);
                        return;
                }
                c->poll->data = c;
                uv_timer_init(loop, c->timer);
                c->timer->data = c;
                uv_poll_start(c->poll, UV_WRITABLE, on_writable);
                uv_timer_start(c->timer, on_attempt_timeout, NET_ATTEMPT_MS, 0);
                return;
        }
        char why[1024];
        int e = c->last_error ? c->last_error : EHOSTUNREACH;
        snprintf(why, sizeof(why), "could not connect to %s port %u: %s", c->host, c->port,
                 strerror(e));
        conn_finish(c, e, why, NULL);
}

/* ---- vetting ---------------------------------------------------------------------------- */

/* Keeps the public addresses of res (a name's), in order, without repeats. Returns
 * how many; *first_bad is the first one dropped (for the error). */
static unsigned vet(Conn *c, const struct addrinfo *res, NetAddr *first_bad, bool *have_bad)
{
        unsigned n = 0;

        for (const struct addrinfo *ai = res; ai && n < NET_ADDRS_MAX; ai = ai->ai_next) {
                NetAddr a;
                bool dup = false;

                if (!ai->ai_addr || net_addr_from_sockaddr(ai->ai_addr, &a) < 0)
                        continue;
                if (net_addr_classify(&a, NULL) != NET_ADDR_PUBLIC) {
                        if (!*have_bad) {
                                *first_bad = a;
                                *have_bad = true;
                        }
                        continue;
                }
                for (unsigned i = 0; i < n && !dup; i++)
                        dup = net_addr_equal(&c->addrs[i], &a);
                if (!dup)
                        c->addrs[n++] = a;
        }
        return n;
}

/* What a is, in English: "a private address (RFC 1918)", or for an IPv4 address
 * inside an IPv6 one "the IPv4-mapped form of 10.0.0.1, a private address (RFC 1918)". */
static void phrase(const NetAddr *a, char *buf, size_t size)
{
        NetAddrInfo info;
        char v4[NET_ADDR_STRLEN];

        net_addr_classify(a, &info);
        if (info.embedded) {
                addr_text(&info.v4, v4, sizeof(v4));
                snprintf(buf, size, "the %s form of %s, %s", info.form, v4, info.block);
        } else
                snprintf(buf, size, "%s", info.block);
}

static json_t *refusal_of(const NetAddr *a)
{
        char t[NET_ADDR_STRLEN];

        addr_text(a, t, sizeof(t));
        return json_pack("{s:s, s:s}", "address", t, "class",
                         net_addr_class_name(net_addr_classify(a, NULL)));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
        Conn *c = req->data;
        NetState *st = c->res_st; /* the slot's owner, even if c was abandoned */
        NetGlobal *g = broker_net_global(c->broker);
        char why[1024], d[256];
        NetAddr bad;
        bool have_bad = false;

        if (g && g->resolving > 0)
                g->resolving--;
        c->res_st = NULL;
        if (st && st->resolving > 0) {
                st->resolving--;
                if (st->waiting)
                        ring_add(g, st);
        }
        if (c->phase == CONN_DONE) { /* abandoned meanwhile */
                uv_freeaddrinfo(res);
                conn_free(c);
                if (g)
                        slots_run(g);
                return;
        }
        c->phase = CONN_CONNECTING;
        if (status < 0) {
                uv_freeaddrinfo(res);
                snprintf(why, sizeof(why), "%s does not resolve (%s)", c->host,
                         uv_strerror(status));
                conn_finish(c, status == UV_EAI_AGAIN ? EAGAIN : ENOENT, why, NULL);
        } else {
                c->n_addrs = vet(c, res, &bad, &have_bad);
                uv_freeaddrinfo(res);
                if (c->n_addrs == 0) {
                        if (have_bad) {
                                char t[NET_ADDR_STRLEN];

                                addr_text(&bad, t, sizeof(t));
                                phrase(&bad, d, sizeof(d));
                                snprintf(why, sizeof(why),
                                         "%s resolves to %s, %s, which no right naming a host "
                                         "reaches",
                                         c->host, t, d);
                                conn_finish(c, EPERM, why, refusal_of(&bad));
                        } else {
                                snprintf(why, sizeof(why), "%s has no address", c->host);
                                conn_finish(c, ENOENT, why, NULL);
                        }
                } else
                        conn_try_next(c);
        }
        if (g)
                slots_run(g);
}

static void conn_resolve_start(Conn *c)
{
        NetGlobal *g = broker_net_global(c->broker);
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = c->udp ? SOCK_DGRAM : SOCK_STREAM,
        };
        int r;

        c->phase = CONN_RESOLVING;
        c->gai.data = c;
        r = uv_getaddrinfo(broker_options(c->broker)->loop, &c->gai, on_resolved, c->host, NULL,
                           &hints);
        if (r < 0) {
                c->phase = CONN_CONNECTING;
                conn_finish(c, ENOMEM, "the kernel could not start the name's resolution", NULL);
                return;
        }
        g->resolving++;
        c->st->resolving++;
        c->res_st = c->st;
}

/* ---- the state of an app ------------------------------------------------------------------ */

static void net_state_close(BrokerHandle *h)
{
        NetState *st = (NetState *)((char *)h - offsetof(NetState, handle));

        ring_remove(st->g, st);
        /* Connections still being made: their calls were abandoned by the core
         * already (conn_cancel), broker_net_connect()'s are told now. */
        while (st->conns) {
                Conn *c = st->conns;

                c->end_reason = "stopped";
                c->res_st = NULL; /* st goes now */
                if (c->phase == CONN_RELAYING) {
                        /* Its handle is closed by the core too; here only unlinked. */
                        conn_unlink(c);
                        c->st = NULL;
                        continue;
                }
                conn_finish(c, ECONNRESET, "the app has gone", NULL);
        }
        st->waiting = st->waiting_tail = NULL;
        broker_app_set_slot(h->app, BROKER_SLOT_NET, NULL);
        free(st);
}

static NetState *state_get(BrokerApp *app)
{
        NetState *st = broker_app_slot(app, BROKER_SLOT_NET);
        const BrokerOptions *o = broker_options(broker_app_broker(app));
        NetGlobal *g = broker_net_global(broker_app_broker(app));

        if (st)
                return st;
        if (!g)
                return NULL;
        st = calloc(1, sizeof *st);
        if (!st)
                return NULL;
        st->g = g;
        st->app = app;
        if (ratelimit_init(&st->rate, o->net_rate, o->net_burst, now_ns()) < 0) {
                free(st);
                return NULL;
        }
        broker_app_set_slot(app, BROKER_SLOT_NET, st);
        broker_handle_add(app, &st->handle, NULL, net_state_close);
        return st;
}

static void conn_cancel(BrokerCall *call)
{
        Conn *c = call->handler_data;

        call->right = NULL; /* c->right goes with c */
        c->call = NULL;
        conn_finish(c, ECANCELED, NULL, NULL);
}

/* ---- the request -------------------------------------------------------------------------- */

/* broker_app_take() of c's right, noting first whether only a one-time grant
 * covers it (that grant is used up by the take). */
static int take_right(Conn *c, const char **why)
{
        size_t refused;
        bool once = false;

        if (broker_app_right_state(c->app, &c->parsed, &once, NULL) == 0)
                c->once = once;
        return broker_app_take(c->app, &c->parsed, 1, &refused, why);
}

/* Checks host and port and fills c->host (canonical), c->right, c->parsed and, for
 * an address, c->addrs[0]. Returns 0 or an errno with *why (static or in buf). */
static int conn_setup(Conn *c, const char *host, uint32_t port, char *buf, size_t size,
                      const char **why, json_t **refusal)
{
        NetAddr a;
        int r;

        if (!host || port == 0 || port > 65535) {
                *why = "the port must be 1-65535";
                return EINVAL;
        }
        c->port = (uint16_t)port;
        r = net_addr_parse(host, &a);
        if (r < 0) {
                snprintf(buf, size, "the host is neither a DNS name nor an address%s",
                         net_host_looks_numeric(host) ? " (it is spelled like one, but is not)"
                                                      : "");
                *why = buf;
                return EINVAL;
        }
        if (r == 1) {
                c->literal = true;
                c->addrs[0] = a;
                c->n_addrs = 1;
                net_addr_format(&a, true, c->host, sizeof(c->host));
        } else {
                if (strlen(host) > NET_HOST_MAX) {
                        *why = "the host name is longer than 253 bytes";
                        return EINVAL;
                }
                snprintf(c->host, sizeof(c->host), "%s", host);
                if (!name_is_valid(c->host)) {
                        *why = "the host is neither a DNS name nor an address";
                        return EINVAL;
                }
        }
        int n = snprintf(c->right, sizeof(c->right), "net.connect:%s:%u", c->host, port);
        if (n < 0 || (size_t)n >= sizeof(c->right) ||
            capability_right_parse(c->right, &c->parsed, NULL) < 0) {
                *why = "the host cannot be named in a right";
                return EINVAL;
        }
        /* An address of a class no scoped right reaches: only a right naming it. */
        if (c->literal && net_addr_classify(&a, NULL) != NET_ADDR_PUBLIC) {
                const char *w = NULL;
                char d[200];

                r = take_right(c, &w);
                if (r == 0)
                        return 0;
                if (r == -EACCES) { /* the right naming it is requested, not granted */
                        snprintf(buf, size, "%s: %s", c->right, w ? w : "not granted");
                        *why = buf;
                        *refusal = refusal_of(&a);
                        return EACCES;
                }
                phrase(&a, d, sizeof(d));
                snprintf(buf, size,
                         "%s is %s; only a right naming that address and port (%s) reaches it",
                         c->host, d, c->right);
                *why = buf;
                *refusal = refusal_of(&a);
                return EPERM;
        }
        const char *w = NULL;
        r = take_right(c, &w);
        if (r < 0) {
                snprintf(buf, size, "%s: %s", c->right, w ? w : "not granted");
                *why = buf;
                *refusal = json_object();
                return -r;
        }
        return 0;
}

static void on_literal_start(uv_timer_t *t)
{
        Conn *c = t->data;

        uv_close((uv_handle_t *)c->timer, close_free_cb);
        c->timer = NULL;
        conn_try_next(c);
}

/* Starts c (set up, counted): resolution or connect. */
static void conn_start(Conn *c)
{
        NetState *st = c->st;

        if (c->literal) {
                /* Through the loop, not now: an answer never comes before the caller
                 * has returned (broker_net_connect()'s contract). */
                c->phase = CONN_CONNECTING;
                c->timer = calloc(1, sizeof(*c->timer));
                if (!c->timer) {
                        conn_finish(c, ENOMEM, NULL, NULL);
                        return;
                }
                uv_timer_init(broker_options(c->broker)->loop, c->timer);
                c->timer->data = c;
                uv_timer_start(c->timer, on_literal_start, 0, 0);
                return;
        }
        c->phase = CONN_WAITING;
        if (st->waiting_tail)
                st->waiting_tail->wnext = c;
        else
                st->waiting = c;
        st->waiting_tail = c;
        ring_add(st->g, st);
        slots_run(st->g);
}

/* Common to the call and broker_net_connect(): host checked, right decided, limits
 * taken. Returns 0 (c started and linked) or an errno with *why (c not linked). */
static int conn_begin(Conn *c, const char *host, uint32_t port, char *buf, size_t size,
                      const char **why, json_t **refusal)
{
        const BrokerOptions *o = broker_options(c->broker);
        NetState *st = state_get(c->app);
        int r;

        if (!st) {
                *why = "out of memory";
                return ENOMEM;
        }
        r = conn_setup(c, host, port, buf, size, why, refusal);
        if (r)
                return r;
        if (st->open >= o->net_conns_max) {
                snprintf(buf, size,
                         "the app has %u connections open, its limit (net.connections_max)",
                         st->open);
                *why = buf;
                *refusal = json_pack("{s:s}", "limit", "connections");
                broker_app_stats_mut(c->app)->net_limited++;
                return EMFILE;
        }
        if (ratelimit_take(&st->rate, now_ns(), NULL) < 0) {
                snprintf(buf, size,
                         "the app opens connections faster than its rate (net.connect_rate: %llu "
                         "a second)",
                         (unsigned long long)o->net_rate);
                *why = buf;
                *refusal = json_pack("{s:s}", "limit", "rate");
                broker_app_stats_mut(c->app)->net_limited++;
                return EAGAIN;
        }
        c->st = st;
        c->id = ++st->next_id;
        st->open++;
        c->next = st->conns;
        if (st->conns)
                st->conns->prev = c;
        st->conns = c;
        c->tried = json_array();
        return 0;
}

static Conn *conn_new(Broker *b, BrokerApp *app, const char *via)
{
        Conn *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->broker = b;
        c->app = app;
        c->app_id = strdup(broker_app_id(app));
        c->via = via;
        c->sock = -1;
        c->app_fd = -1;
        c->started_ns = now_ns();
        if (!c->app_id) {
                free(c);
                return NULL;
        }
        return c;
}

static const char *net_connect_right(const ProtobufCMessage *req, char *buf, size_t size,
                                     int *ret_error)
{
        return NULL; /* decided by the handler: an address's class comes first */
}

static void net_connect_handle(BrokerCall *call)
{
        const Cella__V1__NetConnectRequest *req =
                (const Cella__V1__NetConnectRequest *)call->request;
        Conn *c;
        char buf[1024];
        const char *why = NULL;
        json_t *refusal = NULL;
        int r;

        if (req->proto != CELLA__V1__NET_PROTO__NET_PROTO_UNSPECIFIED &&
            req->proto != CELLA__V1__NET_PROTO__NET_PROTO_TCP &&
            req->proto != CELLA__V1__NET_PROTO__NET_PROTO_UDP) {
                broker_reply_error(call, EINVAL, "proto must be tcp or udp");
                return;
        }
        c = conn_new(broker_app_broker(call->app), call->app, "call");
        if (!c) {
                broker_reply_error(call, ENOMEM, NULL);
                return;
        }
        c->udp = req->proto == CELLA__V1__NET_PROTO__NET_PROTO_UDP;
        r = conn_begin(c, req->host, req->port, buf, sizeof(buf), &why, &refusal);
        if (r) {
                if (refusal) {
                        json_object_set_new(refusal, "what", json_string("refused"));
                        json_object_set_new(refusal, "errno", json_integer(r));
                        json_object_set_new(refusal, "why", json_string(why));
                        conn_audit(c, refusal);
                        if (r == EPERM || r == EACCES)
                                stats_add_refused(c->app);
                }
                broker_audit_set(call, "host", json_string(c->host[0] ? c->host : ""));
                if (c->right[0])
                        call->right = c->right;
                broker_reply_error(call, r, why);
                conn_free(c);
                return;
        }
        c->call = call;
        call->right = c->right; /* for the call's record */
        call->handler_data = c;
        call->cancel = conn_cancel;
        call->checked = &c->parsed; /* a revoke meanwhile fails the call */
        broker_audit_set(call, "host", json_string(c->host));
        broker_audit_set(call, "port", json_integer(c->port));
        conn_start(c);
}

int broker_net_connect(Broker *b, const char *app_id, const BrokerNetRequest *req, int app_fd,
                       BrokerNetDone done, void *userdata)
{
        BrokerApp *app = broker_app_find(b, app_id);
        Conn *c;
        char buf[1024];
        const char *why = NULL;
        json_t *refusal = NULL;
        int r;

        if (!app) {
                safe_close(app_fd);
                return -ESRCH;
        }
        if (!req || !done || app_fd < 0 || req->n_to_peer > NET_RELAY_PREFIX_MAX ||
            req->n_to_app > NET_RELAY_PREFIX_MAX) {
                safe_close(app_fd);
                return -EINVAL;
        }
        c = conn_new(b, app, req->via ? req->via : "proxy");
        if (!c) {
                safe_close(app_fd);
                return -ENOMEM;
        }
        c->udp = req->udp;
        c->app_fd = app_fd;
        if (req->n_to_peer) {
                c->to_peer = malloc(req->n_to_peer);
                if (c->to_peer)
                        memcpy(c->to_peer, req->to_peer, req->n_to_peer);
                c->n_to_peer = req->n_to_peer;
        }
        if (req->n_to_app) {
                c->to_app = malloc(req->n_to_app);
                if (c->to_app)
                        memcpy(c->to_app, req->to_app, req->n_to_app);
                c->n_to_app = req->n_to_app;
        }
        if ((req->n_to_peer && !c->to_peer) || (req->n_to_app && !c->to_app)) {
                conn_free(c);
                return -ENOMEM;
        }
        c->done = done;
        c->done_userdata = userdata;
        r = conn_begin(c, req->host, req->port, buf, sizeof(buf), &why, &refusal);
        if (r) {
                /* The outcome is told on the loop, never before we return. */
                if (refusal) {
                        json_object_set_new(refusal, "what", json_string("refused"));
                        json_object_set_new(refusal, "errno", json_integer(r));
                        json_object_set_new(refusal, "why", json_string(why));
                        conn_audit(c, refusal);
                }
                if (r == EPERM || r == EACCES)
                        stats_add_refused(app);
                c->done = NULL;
                conn_free(c);
                /* A later answer needs a deferral; the proxy's callback runs now on
                 * the loop through a zero timer. */
                return broker_net_defer_error(b, done, userdata, -r, why);
        }
        conn_start(c);
        return 0;
}

/* ---- deferred answers for broker_net_connect() ------------------------------------------- */

typedef struct Deferred {
        uv_timer_t timer;
        BrokerNetDone done;
        void *userdata;
        int error;
        char why[1024];
} Deferred;

static void deferred_free(uv_handle_t *h)
{
        free(h->data);
}

static void deferred_fire(uv_timer_t *t)
{
        Deferred *d = t->data;

        d->done(d->userdata, d->error, d->why, NULL);
        uv_close((uv_handle_t *)&d->timer, deferred_free);
}

int broker_net_defer_error(Broker *b, BrokerNetDone done, void *userdata, int error,
                           const char *why)
{
        Deferred *d = calloc(1, sizeof(*d));

        if (!d)
                return -ENOMEM;
        d->done = done;
        d->userdata = userdata;
        d->error = error;
        snprintf(d->why, sizeof(d->why), "%s", why ? why : "");
        uv_timer_init(broker_options(b)->loop, &d->timer);
        d->timer.data = d;
        uv_timer_start(&d->timer, deferred_fire, 0, 0);
        return 0;
}

/* ---- the broker's own ----------------------------------------------------------------------- */

void broker_net_free(void *global)
{
        NetGlobal *g = global;

        if (!g)
                return;
        net_relay_free(g->relay); /* the done callbacks free their Conns */
        free(g);
}

void *broker_net_new(void)
{
        return calloc(1, sizeof(NetGlobal));
}

const BrokerCallDef broker_calls_net[] = {
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_NET_CONNECT,
                .right_of = net_connect_right,
                .handle = net_connect_handle,
        },
        {0},
};
