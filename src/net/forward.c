/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Port forwarding (contract in forward.h; docs/network.md, "Port forwarding").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "net/forward.h"

/* Datagrams or connections taken from one listener per readiness, so that one busy
 * forward does not hold the loop. */
#define ACCEPT_BATCH 64u
/* How often the UDP flows (idle?) and the connects (too long?) are looked at (ms), at
 * most. */
#define UDP_SWEEP_MS 1000u
/* The longest a take from the socket thread's pool may wait for it (ms): the thread
 * makes a socket in microseconds; past this it is stuck, and the connection fails. */
#define MAKER_WAIT_MS 1000
/* Bytes of one datagram read from a UDP listener (the largest UDP payload). */
#define DATAGRAM_MAX 65535u
#define WHY_MAX      192u

typedef struct Entry Entry;
typedef struct Conn Conn;

/* The socket thread: entered the app's namespace once, keeps pools of sockets. */
typedef struct Maker {
        pthread_t thread;
        bool started;
        pthread_mutex_t mu;
        pthread_cond_t want; /* the thread waits for a pool to need refilling */
        pthread_cond_t have; /* a take waits for a socket */
        int nsfd;
        int tcp[NET_FORWARD_POOL_TCP];
        unsigned n_tcp;
        int udp[NET_FORWARD_POOL_UDP];
        unsigned n_udp;
        int error;      /* > 0: the thread failed (setns), errno; takes fail with it */
        int last_error; /* > 0: its last socket() failed (EMFILE...): a take that finds
                         * the pool empty fails at once instead of waiting */
        bool stop;
} Maker;

/* A listening socket of a forward; freed once its poll handle is closed. */
typedef struct Listener {
        uv_poll_t poll;
        int fd;
        Entry *e;                      /* NULL once the entry let go of it */
        struct sockaddr_storage bound; /* UDP: what each client's socket binds */
        socklen_t bound_len;
} Listener;

struct Entry {
        NetForward *f;
        NetForwardSpec spec;
        NetForwardState state;
        bool manifest;
        char why[WHY_MAX];
        Listener *l;
        Conn *conns;
        unsigned n_conns;
        uint64_t accepted, dropped;
        Entry *next;     /* in f->entries */
        Entry *reg_next; /* in the process's open forwards (registry) */
};

/* One TCP connection, or one UDP client's flow. */
struct Conn {
        Entry *e; /* NULL once its forward let go of it (closed, removed, freed) */
        /* Copies for the record, which may be written after the forward is gone. */
        char app_id[129];
        NetForwardSpec spec;
        NetForwardRecordFn record;
        void *userdata;
        char client[INET6_ADDRSTRLEN + 8];
        struct sockaddr_storage peer; /* UDP: the NAT key */
        socklen_t peer_len;
        uint64_t relay_id;     /* 0 while connecting */
        int client_fd, app_fd; /* TCP while connecting */
        int app_dup;           /* UDP: the app socket, for datagrams the listener got */
        uint64_t sent_in;      /* UDP: bytes of those, sent here (not by the relay) */
        uv_poll_t *connecting; /* TCP while connecting: writability of app_fd */
        const char *reason;    /* why we closed it, for the record */
        uint64_t started_ns;
        uint64_t seen_bytes, active_ns; /* UDP: bytes so far, when they last changed */
        Conn *next, *prev;
};

struct NetForward {
        uv_loop_t *loop;
        NetRelay *relay;
        char app_id[129];
        NetForwardRecordFn record;
        void *userdata;
        Maker maker;
        Entry *entries;
        uv_timer_t sweep; /* UDP idleness */
        bool sweep_init;
        uint8_t *buf; /* DATAGRAM_MAX bytes, for UDP listeners */
        uint64_t udp_idle_ns;
        uint64_t connect_timeout_ns;
        uint64_t sweep_ms; /* how often the flows and connects are looked at */
};

/* The open forwards of this process (every NetForward), for clashes between apps. */
static Entry *registry;
/* Connections and flows of every forward of the process (NET_FORWARD_CONNS_TOTAL_MAX). */
static unsigned conns_total;

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *net_forward_proto_to_string(bool udp)
{
        return udp ? "udp" : "tcp";
}

const char *net_forward_state_to_string(NetForwardState s)
{
        switch (s) {
        case NET_FORWARD_OPEN:
                return "open";
        case NET_FORWARD_NOT_GRANTED:
                return "not-granted";
        case NET_FORWARD_FAILED:
                return "failed";
        }
        return "unknown";
}

/* ---- the socket thread ---------------------------------------------------------------- */

static void *maker_main(void *userdata)
{
        Maker *m = userdata;
        sigset_t all;

        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
        /* Once: from here every socket this thread makes is of the app's namespace. */
        if (setns(m->nsfd, CLONE_NEWNET) < 0) {
                pthread_mutex_lock(&m->mu);
                m->error = errno;
                pthread_cond_broadcast(&m->have);
                pthread_mutex_unlock(&m->mu);
                return NULL;
        }
        pthread_mutex_lock(&m->mu);
        for (;;) {
                unsigned want_tcp, want_udp;

                while (!m->stop && m->n_tcp > NET_FORWARD_POOL_TCP / 2 &&
                       m->n_udp > NET_FORWARD_POOL_UDP / 2)
                        pthread_cond_wait(&m->want, &m->mu);
                if (m->stop)
                        break;
                want_tcp = NET_FORWARD_POOL_TCP - m->n_tcp;
                want_udp = NET_FORWARD_POOL_UDP - m->n_udp;
                pthread_mutex_unlock(&m->mu);
                int tcp[NET_FORWARD_POOL_TCP], udp[NET_FORWARD_POOL_UDP], err = 0;
                unsigned nt = 0, nu = 0;

                for (; nt < want_tcp; nt++) {
                        tcp[nt] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                        if (tcp[nt] < 0) {
                                err = errno;
                                break;
                        }
                }
                for (; !err && nu < want_udp; nu++) {
                        udp[nu] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                        if (udp[nu] < 0) {
                                err = errno;
                                break;
                        }
                }
                pthread_mutex_lock(&m->mu);
                m->last_error = err;
                for (unsigned i = 0; i < nt; i++)
                        m->tcp[m->n_tcp++] = tcp[i];
                for (unsigned i = 0; i < nu; i++)
                        m->udp[m->n_udp++] = udp[i];
                pthread_cond_broadcast(&m->have);
                if (err && nt == 0 && nu == 0) {
                        /* Out of fds: wait for a take (which frees room) or a stop
                         * rather than spin; a take that finds the pool empty waits
                         * MAKER_WAIT_MS and fails. */
                        struct timespec ts;

                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += 100 * 1000000L;
                        if (ts.tv_nsec >= 1000000000L) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000L;
                        }
                        (void)pthread_cond_timedwait(&m->want, &m->mu, &ts);
                }
        }
        pthread_mutex_unlock(&m->mu);
        return NULL;
}

/* A socket of the app's namespace (TCP or UDP, AF_INET, non-blocking), or -errno. */
static int maker_take(Maker *m, bool udp)
{
        struct timespec ts;
        int fd = -EAGAIN;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += MAKER_WAIT_MS / 1000;
        ts.tv_nsec += (MAKER_WAIT_MS % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&m->mu);
        for (;;) {
                if (udp && m->n_udp > 0) {
                        fd = m->udp[--m->n_udp];
                        break;
                }
                if (!udp && m->n_tcp > 0) {
                        fd = m->tcp[--m->n_tcp];
                        break;
                }
                if (m->error || m->last_error) {
                        fd = -(m->error ?: m->last_error);
                        break;
                }
                if (pthread_cond_timedwait(&m->have, &m->mu, &ts) == ETIMEDOUT) {
                        fd = -ETIMEDOUT;
                        break;
                }
        }
        /* The thread refills once a pool is down to half (or empty, or a take
         * failed): one wake-up per few connections, not one each. */
        if (fd < 0 || m->n_tcp <= NET_FORWARD_POOL_TCP / 2 || m->n_udp <= NET_FORWARD_POOL_UDP / 2)
                pthread_cond_signal(&m->want);
        pthread_mutex_unlock(&m->mu);
        return fd;
}

static int maker_start(Maker *m, int nsfd)
{
        sigset_t all, old;
        int r;

        m->nsfd = nsfd;
        pthread_mutex_init(&m->mu, NULL);
        pthread_cond_init(&m->want, NULL);
        pthread_cond_init(&m->have, NULL);
        /* The thread starts with every signal blocked: they are the loop's. */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        r = pthread_create(&m->thread, NULL, maker_main, m);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0)
                return -r;
        m->started = true;
        return 0;
}

static void maker_stop(Maker *m)
{
        if (m->started) {
                pthread_mutex_lock(&m->mu);
                m->stop = true;
                pthread_cond_signal(&m->want);
                pthread_mutex_unlock(&m->mu);
                pthread_join(m->thread, NULL);
                m->started = false;
        }
        for (unsigned i = 0; i < m->n_tcp; i++)
                close(m->tcp[i]);
        for (unsigned i = 0; i < m->n_udp; i++)
                close(m->udp[i]);
        m->n_tcp = m->n_udp = 0;
        m->nsfd = safe_close(m->nsfd);
        pthread_cond_destroy(&m->want);
        pthread_cond_destroy(&m->have);
        pthread_mutex_destroy(&m->mu);
}

/* ---- addresses ------------------------------------------------------------------------ */

/* "a.b.c.d:port" or "[v6]:port" of sa (a v4-mapped address as IPv4) into buf. */
static void format_peer(const struct sockaddr *sa, char *buf, size_t size)
{
        char a[INET6_ADDRSTRLEN] = "?";

        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

                inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a);
                snprintf(buf, size, "%s:%u", a, (unsigned)ntohs(s4->sin_port));
        } else if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

                if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
                        inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], a, sizeof a);
                        snprintf(buf, size, "%s:%u", a, (unsigned)ntohs(s6->sin6_port));
                } else {
                        inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a);
                        snprintf(buf, size, "[%s]:%u", a, (unsigned)ntohs(s6->sin6_port));
                }
        } else
                snprintf(buf, size, "?");
}

/* The host address of spec into *ret: its address, or "::" (every address, dual-
 * stack: *ret_any). Returns 0 or -EINVAL. */
static int host_address(const NetForwardSpec *spec, struct sockaddr_storage *ret,
                        socklen_t *ret_len, bool *ret_any)
{
        struct sockaddr_in *s4 = (struct sockaddr_in *)ret;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ret;

        memset(ret, 0, sizeof *ret);
        *ret_any = !spec->address[0];
        if (*ret_any || inet_pton(AF_INET6, spec->address, &s6->sin6_addr) == 1) {
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons(spec->host);
                *ret_len = sizeof *s6;
                return 0;
        }
        if (inet_pton(AF_INET, spec->address, &s4->sin_addr) == 1) {
                s4->sin_family = AF_INET;
                s4->sin_port = htons(spec->host);
                *ret_len = sizeof *s4;
                return 0;
        }
        return -EINVAL;
}

static bool specs_clash(const NetForwardSpec *a, const NetForwardSpec *b)
{
        return a->host == b->host && a->udp == b->udp &&
               (!a->address[0] || !b->address[0] || strcmp(a->address, b->address) == 0);
}

static void registry_add(Entry *e)
{
        e->reg_next = registry;
        registry = e;
}

static void registry_remove(Entry *e)
{
        for (Entry **p = &registry; *p; p = &(*p)->reg_next)
                if (*p == e) {
                        *p = e->reg_next;
                        e->reg_next = NULL;
                        return;
                }
}

/* ---- connections ---------------------------------------------------------------------- */

static void conn_unlink(Conn *c)
{
        Entry *e = c->e;

        if (!e)
                return;
        if (c->prev)
                c->prev->next = c->next;
        else
                e->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->next = c->prev = NULL;
        e->n_conns--;
        c->e = NULL;
}

static void conn_record(Conn *c, const char *how, int error, uint64_t a_to_b, uint64_t b_to_a,
                        uint64_t ended_ns)
{
        json_t *o;

        if (!c->record)
                return;
        o = json_pack("{s:s, s:i, s:i, s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "what", "forward",
                      "host_port", (int)c->spec.host, "app_port", (int)c->spec.app, "proto",
                      net_forward_proto_to_string(c->spec.udp), "address",
                      c->spec.address[0] ? c->spec.address : "*", "client", c->client, "bytes_in",
                      (json_int_t)a_to_b, "bytes_out", (json_int_t)b_to_a, "duration_ms",
                      (json_int_t)((ended_ns - c->started_ns) / 1000000u), "end", how);
        if (!o)
                return;
        if (c->reason)
                json_object_set_new(o, "reason", json_string(c->reason));
        if (error)
                json_object_set_new(o, "error", json_string(strerror(error)));
        c->record(c->userdata, c->app_id, o);
}

static void conn_free(Conn *c)
{
        conn_unlink(c);
        conns_total--;
        safe_close(c->client_fd);
        safe_close(c->app_fd);
        safe_close(c->app_dup);
        free(c);
}

static void relay_done(void *userdata, uint64_t id, const NetRelayStats *st)
{
        Conn *c = userdata;
        const char *how = st->end == NET_RELAY_END_EOF     ? "eof"
                          : st->end == NET_RELAY_END_RESET ? "reset"
                                                           : "closed";

        (void)id;
        c->relay_id = 0;
        conn_record(c, how, st->end == NET_RELAY_END_RESET ? st->error : 0,
                    st->bytes_a_to_b + c->sent_in, st->bytes_b_to_a, st->ended_ns ?: now_ns());
        conn_free(c);
}

static void poll_free(uv_handle_t *h)
{
        free(h);
}

/* Ends c now (reason for its record): a relayed one through the relay (its record
 * comes from relay_done()), one still connecting here. */
static void conn_close(NetForward *f, Conn *c, const char *reason)
{
        c->reason = reason;
        conn_unlink(c);
        if (c->relay_id) {
                if (net_relay_close(f->relay, c->relay_id) == 0)
                        return;
                /* Ended already: its done is on its way and frees c. */
                return;
        }
        if (c->connecting) {
                uv_close((uv_handle_t *)c->connecting, poll_free);
                c->connecting = NULL;
        }
        conn_record(c, "closed", 0, 0, 0, now_ns());
        conn_free(c);
}

static Conn *conn_new(Entry *e, const struct sockaddr *peer, socklen_t peer_len)
{
        NetForward *f = e->f;
        Conn *c = calloc(1, sizeof *c);

        if (!c)
                return NULL;
        c->client_fd = c->app_fd = c->app_dup = -EBADF;
        memcpy(c->app_id, f->app_id, sizeof c->app_id);
        c->spec = e->spec;
        c->record = f->record;
        c->userdata = f->userdata;
        if (peer_len <= sizeof c->peer) {
                memcpy(&c->peer, peer, peer_len);
                c->peer_len = peer_len;
        }
        format_peer(peer, c->client, sizeof c->client);
        c->started_ns = c->active_ns = now_ns();
        c->e = e;
        c->next = e->conns;
        if (e->conns)
                e->conns->prev = c;
        e->conns = c;
        e->n_conns++;
        conns_total++;
        return c;
}

/* Hands c's two sockets to the relay. On failure c is recorded and freed. */
static void conn_relay(NetForward *f, Conn *c, int host_fd, int app_fd, bool datagram)
{
        NetRelayPair p = {
                .fd_a = host_fd,
                .fd_b = app_fd,
                .datagram = datagram,
                .done = relay_done,
                .userdata = c,
        };
        int r = net_relay_add(f->relay, &p, &c->relay_id);

        if (r < 0) {
                c->relay_id = 0;
                log_warning_errno(r, "%s: cannot forward a connection of host port %u: %m",
                                  c->app_id, (unsigned)c->spec.host);
                conn_record(c, "reset", -r, 0, 0, now_ns());
                conn_free(c);
        }
}

/* Nothing listens on the app's port (ECONNREFUSED: err), or it did not answer: the
 * client sees a reset, as from a closed port; c is recorded and freed. */
static void conn_refused(Conn *c, int err)
{
        struct linger lg = {.l_onoff = 1, .l_linger = 0};

        (void)setsockopt(c->client_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        conn_record(c, "refused", err, 0, 0, now_ns());
        conn_free(c);
}

static void on_connected(uv_poll_t *p, int status, int events)
{
        Conn *c = p->data;
        NetForward *f = c->e ? c->e->f : NULL;
        int err = 0;
        socklen_t len = sizeof err;

        (void)events;
        uv_close((uv_handle_t *)p, poll_free);
        c->connecting = NULL;
        if (status < 0 || getsockopt(c->app_fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = err ?: EIO;
        if (err || !f) {
                conn_refused(c, err);
                return;
        }
        conn_relay(f, c, TAKE_FD(c->client_fd), TAKE_FD(c->app_fd), false);
}

static const struct sockaddr_in *app_address(const NetForwardSpec *spec, struct sockaddr_in *sa)
{
        memset(sa, 0, sizeof *sa);
        sa->sin_family = AF_INET;
        sa->sin_port = htons(spec->app);
        sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sa;
}

static void sweep_arm(NetForward *f);

static void tcp_accept_one(Entry *e, int cfd, const struct sockaddr *peer, socklen_t peer_len)
{
        NetForward *f = e->f;
        struct sockaddr_in sa;
        Conn *c;
        int afd;

        if (e->n_conns >= NET_FORWARD_CONNS_MAX || conns_total >= NET_FORWARD_CONNS_TOTAL_MAX) {
                e->dropped++;
                close(cfd);
                return;
        }
        c = conn_new(e, peer, peer_len);
        if (!c) {
                e->dropped++;
                close(cfd);
                return;
        }
        e->accepted++;
        c->client_fd = cfd;
        afd = maker_take(&f->maker, false);
        if (afd < 0) {
                conn_record(c, "reset", -afd, 0, 0, now_ns());
                conn_free(c);
                return;
        }
        c->app_fd = afd;
        if (connect(afd, (const struct sockaddr *)app_address(&e->spec, &sa), sizeof sa) == 0) {
                conn_relay(f, c, TAKE_FD(c->client_fd), TAKE_FD(c->app_fd), false);
                return;
        }
        if (errno != EINPROGRESS) {
                conn_refused(c, errno);
                return;
        }
        /* On loopback the handshake is usually done by the time connect() returns
         * (the SYN-ACK is processed in the same softirq): one poll() spares the
         * watch's round through the loop. */
        {
                struct pollfd pfd = {.fd = afd, .events = POLLOUT};
                int err = 0;
                socklen_t len = sizeof err;

                if (poll(&pfd, 1, 0) == 1 &&
                    getsockopt(afd, SOL_SOCKET, SO_ERROR, &err, &len) == 0) {
                        if (err == 0) {
                                conn_relay(f, c, TAKE_FD(c->client_fd), TAKE_FD(c->app_fd), false);
                                return;
                        }
                        conn_refused(c, err);
                        return;
                }
        }
        c->connecting = malloc(sizeof *c->connecting);
        if (!c->connecting || uv_poll_init(f->loop, c->connecting, afd) < 0) {
                free(c->connecting);
                c->connecting = NULL;
                conn_record(c, "reset", ENOMEM, 0, 0, now_ns());
                conn_free(c);
                return;
        }
        c->connecting->data = c;
        (void)uv_poll_start(c->connecting, UV_WRITABLE, on_connected);
        sweep_arm(f); /* its connect timeout */
}

static void on_tcp_listener(uv_poll_t *p, int status, int events)
{
        Listener *l = p->data;

        (void)events;
        if (status < 0 || !l->e)
                return;
        for (unsigned i = 0; i < ACCEPT_BATCH && l->e; i++) {
                struct sockaddr_storage ss;
                socklen_t len = sizeof ss;
                int cfd =
                        accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0) {
                        if (errno == EMFILE || errno == ENFILE)
                                log_warning_errno(-errno, "%s: cannot accept on host port %u: %m",
                                                  l->e->f->app_id, (unsigned)l->e->spec.host);
                        break;
                }
                tcp_accept_one(l->e, cfd, (struct sockaddr *)&ss, len);
        }
}

static Conn *udp_find(Entry *e, const struct sockaddr *peer, socklen_t len)
{
        for (Conn *c = e->conns; c; c = c->next)
                if (c->peer_len == len && memcmp(&c->peer, peer, len) == 0)
                        return c;
        return NULL;
}

/* A new client's flow: its host socket (bound as the listener, connected to peer)
 * and its socket into the app; the first datagram (buf, n bytes) sent on. */
static void udp_new_flow(Entry *e, const struct sockaddr *peer, socklen_t peer_len,
                         const uint8_t *buf, size_t n)
{
        NetForward *f = e->f;
        Listener *l = e->l;
        struct sockaddr_in sa;
        int one = 1, zero = 0, hfd = -EBADF, afd;
        Conn *c;

        if (e->n_conns >= NET_FORWARD_UDP_CLIENTS_MAX ||
            conns_total >= NET_FORWARD_CONNS_TOTAL_MAX) {
                e->dropped++;
                return;
        }
        c = conn_new(e, peer, peer_len);
        if (!c) {
                e->dropped++;
                return;
        }
        e->accepted++;
        hfd = socket(l->bound.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (hfd < 0 || setsockopt(hfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            setsockopt(hfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
            (l->bound.ss_family == AF_INET6 && !e->spec.address[0] &&
             setsockopt(hfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0) ||
            bind(hfd, (struct sockaddr *)&l->bound, l->bound_len) < 0 ||
            connect(hfd, peer, peer_len) < 0) {
                int r = errno;

                safe_close(hfd);
                conn_record(c, "reset", r, 0, 0, now_ns());
                conn_free(c);
                return;
        }
        afd = maker_take(&f->maker, true);
        if (afd < 0) {
                safe_close(hfd);
                conn_record(c, "reset", -afd, 0, 0, now_ns());
                conn_free(c);
                return;
        }
        if (connect(afd, (const struct sockaddr *)app_address(&e->spec, &sa), sizeof sa) < 0) {
                int r = errno;

                safe_close(hfd);
                safe_close(afd);
                conn_record(c, "reset", r, 0, 0, now_ns());
                conn_free(c);
                return;
        }
        if (send(afd, buf, n, MSG_DONTWAIT) >= 0)
                c->sent_in = n;
        c->seen_bytes = n;
        c->app_dup = fcntl(afd, F_DUPFD_CLOEXEC, 3);
        conn_relay(f, c, hfd, afd, true);
        sweep_arm(f);
}

static void on_udp_listener(uv_poll_t *p, int status, int events)
{
        Listener *l = p->data;

        (void)events;
        if (status < 0 || !l->e)
                return;
        for (unsigned i = 0; i < ACCEPT_BATCH && l->e; i++) {
                Entry *e = l->e;
                struct sockaddr_storage ss;
                socklen_t len = sizeof ss;
                ssize_t n = recvfrom(l->fd, e->f->buf, DATAGRAM_MAX, MSG_DONTWAIT,
                                     (struct sockaddr *)&ss, &len);
                Conn *c;

                if (n < 0)
                        break;
                c = udp_find(e, (struct sockaddr *)&ss, len);
                if (c) {
                        /* It came before the client's own socket was connected. */
                        if (c->app_dup >= 0 &&
                            send(c->app_dup, e->f->buf, (size_t)n, MSG_DONTWAIT) >= 0)
                                c->sent_in += (uint64_t)n;
                        continue;
                }
                udp_new_flow(e, (struct sockaddr *)&ss, len, e->f->buf, (size_t)n);
        }
}

static void on_sweep(uv_timer_t *t)
{
        NetForward *f = t->data;
        uint64_t now = now_ns();
        bool any = false;

        for (Entry *e = f->entries; e; e = e->next) {
                Conn *next;

                for (Conn *c = e->conns; c; c = next) {
                        NetRelayStats st;

                        next = c->next;
                        if (c->connecting) {
                                any = true;
                                if (now - c->started_ns >= f->connect_timeout_ns) {
                                        uv_close((uv_handle_t *)c->connecting, poll_free);
                                        c->connecting = NULL;
                                        conn_refused(c, ETIMEDOUT);
                                }
                                continue;
                        }
                        if (!e->spec.udp || !c->relay_id ||
                            net_relay_stats(f->relay, c->relay_id, &st) < 0)
                                continue;
                        any = true;
                        if (st.bytes_a_to_b + st.bytes_b_to_a != c->seen_bytes) {
                                c->seen_bytes = st.bytes_a_to_b + st.bytes_b_to_a;
                                c->active_ns = now;
                        } else if (now - c->active_ns >= f->udp_idle_ns)
                                conn_close(f, c, "idle");
                }
        }
        if (!any)
                uv_timer_stop(t);
}

static void sweep_arm(NetForward *f)
{
        if (f->sweep_init && !uv_is_active((uv_handle_t *)&f->sweep))
                (void)uv_timer_start(&f->sweep, on_sweep, f->sweep_ms, f->sweep_ms);
}

/* ---- forwards ------------------------------------------------------------------------- */

static void listener_closed(uv_handle_t *h)
{
        free(h->data);
}

/* Closes e's listener and every connection (reason for their records). */
static void entry_close(Entry *e, const char *reason)
{
        if (e->l) {
                registry_remove(e);
                e->l->e = NULL;
                /* uv_close() takes the fd out of the loop's epoll set now (only the
                 * callback waits for the loop), so the socket closes at once: the
                 * port is free for the next bind, in this turn of the loop too. */
                uv_close((uv_handle_t *)&e->l->poll, listener_closed);
                e->l->fd = safe_close(e->l->fd);
                e->l = NULL;
        }
        while (e->conns)
                conn_close(e->f, e->conns, reason);
}

/* Opens e's listener. Returns 0, or -errno with e->why. */
static int entry_open(Entry *e)
{
        NetForward *f = e->f;
        _cleanup_free_ Listener *l = calloc(1, sizeof *l);
        _cleanup_close_ int fd = -EBADF;
        const char *proto = net_forward_proto_to_string(e->spec.udp);
        int one = 1, zero = 0, r;
        bool any;

        e->why[0] = 0;
        for (Entry *o = registry; o; o = o->reg_next)
                if (specs_clash(&o->spec, &e->spec)) {
                        snprintf(e->why, sizeof e->why,
                                 "host port %u/%s is forwarded already to app %s (port %u)",
                                 (unsigned)e->spec.host, proto, o->f->app_id,
                                 (unsigned)o->spec.app);
                        return -EADDRINUSE;
                }
        if (!l)
                return -ENOMEM;
        l->fd = -EBADF;
        r = host_address(&e->spec, &l->bound, &l->bound_len, &any);
        if (r < 0) {
                snprintf(e->why, sizeof e->why, "'%s' is not a numeric IPv4 or IPv6 address",
                         e->spec.address);
                return r;
        }
        fd = socket(l->bound.ss_family,
                    (e->spec.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 && any && errno == EAFNOSUPPORT) {
                /* A host without IPv6: every IPv4 address. */
                struct sockaddr_in *s4 = (struct sockaddr_in *)&l->bound;

                memset(&l->bound, 0, sizeof l->bound);
                s4->sin_family = AF_INET;
                s4->sin_port = htons(e->spec.host);
                s4->sin_addr.s_addr = htonl(INADDR_ANY);
                l->bound_len = sizeof *s4;
                fd = socket(AF_INET,
                            (e->spec.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
                            0);
        }
        if (fd < 0) {
                r = -errno;
                snprintf(e->why, sizeof e->why, "cannot make a socket: %s", strerror(-r));
                return r;
        }
        /* SO_REUSEADDR: a restart binds while old connections are in TIME_WAIT; it
         * never lets two listeners share a TCP port. SO_REUSEPORT (UDP): each client's
         * connected socket binds the same address and port (forward.h). */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            (e->spec.udp && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
            (l->bound.ss_family == AF_INET6 &&
             setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof one) < 0)) {
                r = -errno;
                snprintf(e->why, sizeof e->why, "cannot set up the socket: %s", strerror(-r));
                return r;
        }
        /* UDP: SO_REUSEPORT would let the bind share a port another root process
         * holds with SO_REUSEPORT too (another cellad's forward): a socket without
         * SO_REUSEADDR or SO_REUSEPORT binds first, which fails on any holder. */
        if (e->spec.udp) {
                _cleanup_close_ int probe =
                        socket(l->bound.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

                if (probe >= 0 && l->bound.ss_family == AF_INET6)
                        (void)setsockopt(probe, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one,
                                         sizeof one);
                if (probe >= 0 && bind(probe, (struct sockaddr *)&l->bound, l->bound_len) < 0 &&
                    errno == EADDRINUSE) {
                        snprintf(e->why, sizeof e->why,
                                 "host port %u/%s is in use by another program on %s",
                                 (unsigned)e->spec.host, proto,
                                 any ? "this host" : e->spec.address);
                        return -EADDRINUSE;
                }
        }
        if (bind(fd, (struct sockaddr *)&l->bound, l->bound_len) < 0) {
                r = -errno;
                if (r == -EADDRINUSE)
                        snprintf(e->why, sizeof e->why,
                                 "host port %u/%s is in use by another program on %s",
                                 (unsigned)e->spec.host, proto,
                                 any ? "this host" : e->spec.address);
                else if (r == -EADDRNOTAVAIL)
                        snprintf(e->why, sizeof e->why, "%s is not an address of this host",
                                 e->spec.address);
                else
                        snprintf(e->why, sizeof e->why, "cannot listen on host port %u/%s: %s",
                                 (unsigned)e->spec.host, proto, strerror(-r));
                return r;
        }
        if (!e->spec.udp && listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                snprintf(e->why, sizeof e->why, "cannot listen on host port %u/%s: %s",
                         (unsigned)e->spec.host, proto, strerror(-r));
                return r;
        }
        r = uv_poll_init(f->loop, &l->poll, fd);
        if (r < 0) {
                snprintf(e->why, sizeof e->why, "cannot watch the socket: %s", strerror(-r));
                return r;
        }
        l->fd = TAKE_FD(fd);
        l->e = e;
        l->poll.data = l;
        r = uv_poll_start(&l->poll, UV_READABLE, e->spec.udp ? on_udp_listener : on_tcp_listener);
        e->l = TAKE_PTR(l);
        if (r < 0) {
                snprintf(e->why, sizeof e->why, "cannot watch the socket: %s", strerror(-r));
                entry_close(e, "failed");
                return r;
        }
        registry_add(e);
        e->state = NET_FORWARD_OPEN;
        return 0;
}

static void entry_free(Entry *e, const char *reason)
{
        entry_close(e, reason);
        free(e);
}

static Entry *entry_find(NetForward *f, uint16_t host, bool udp, Entry ***ret_link)
{
        for (Entry **p = &f->entries; *p; p = &(*p)->next)
                if ((*p)->spec.host == host && (*p)->spec.udp == udp) {
                        if (ret_link)
                                *ret_link = p;
                        return *p;
                }
        return NULL;
}

int net_forward_add(NetForward *f, const NetForwardSpec *spec, NetForwardState state, bool manifest,
                    bool keep, char *why, size_t why_size)
{
        Entry *e;
        int r;

        if (why_size)
                why[0] = 0;
        if (!f || !spec || spec->host == 0 || spec->app == 0 ||
            !memchr(spec->address, 0, sizeof spec->address))
                return -EINVAL;
        if (entry_find(f, spec->host, spec->udp, NULL)) {
                snprintf(why, why_size, "the app forwards host port %u/%s already",
                         (unsigned)spec->host, net_forward_proto_to_string(spec->udp));
                return -EEXIST;
        }
        e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->f = f;
        e->spec = *spec;
        e->manifest = manifest;
        e->state = state;
        if (state == NET_FORWARD_OPEN) {
                r = entry_open(e);
                if (r < 0) {
                        snprintf(why, why_size, "%s", e->why);
                        if (!keep) {
                                free(e);
                                return r;
                        }
                        e->state = NET_FORWARD_FAILED;
                }
        } else {
                snprintf(e->why, sizeof e->why, "the right net.listen:%u is not granted",
                         (unsigned)spec->host);
                r = 0;
        }
        e->next = f->entries;
        f->entries = e;
        return r;
}

int net_forward_remove(NetForward *f, uint16_t host, bool udp)
{
        Entry **link, *e = f ? entry_find(f, host, udp, &link) : NULL;

        if (!e)
                return -ENOENT;
        *link = e->next;
        entry_free(e, "removed");
        return 0;
}

void net_forward_recheck(NetForward *f, bool (*allowed)(void *userdata, uint16_t host),
                         void *userdata)
{
        if (!f)
                return;
        for (Entry *e = f->entries; e; e = e->next) {
                bool ok = allowed(userdata, e->spec.host);

                if (e->state == NET_FORWARD_OPEN && !ok) {
                        entry_close(e, "revoked");
                        e->state = NET_FORWARD_NOT_GRANTED;
                        snprintf(e->why, sizeof e->why, "the right net.listen:%u is not granted",
                                 (unsigned)e->spec.host);
                } else if (e->state != NET_FORWARD_OPEN && ok) {
                        if (entry_open(e) < 0)
                                e->state = NET_FORWARD_FAILED;
                } else if (e->state != NET_FORWARD_OPEN && !ok &&
                           e->state != NET_FORWARD_NOT_GRANTED) {
                        e->state = NET_FORWARD_NOT_GRANTED;
                        snprintf(e->why, sizeof e->why, "the right net.listen:%u is not granted",
                                 (unsigned)e->spec.host);
                }
        }
}

json_t *net_forward_list(NetForward *f)
{
        json_t *a = json_array();

        for (Entry *e = f ? f->entries : NULL; a && e; e = e->next) {
                json_t *o = json_pack("{s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I}", "host",
                                      (int)e->spec.host, "app", (int)e->spec.app, "proto",
                                      net_forward_proto_to_string(e->spec.udp), "address",
                                      e->spec.address[0] ? e->spec.address : "*", "state",
                                      net_forward_state_to_string(e->state), "why",
                                      e->state == NET_FORWARD_OPEN ? "" : e->why, "origin",
                                      e->manifest ? "manifest" : "runtime", "connections",
                                      (int)e->n_conns, "accepted", (json_int_t)e->accepted,
                                      "dropped", (json_int_t)e->dropped);

                if (!o || json_array_append_new(a, o) < 0) {
                        json_decref(a);
                        return NULL;
                }
        }
        return a;
}

size_t net_forward_count(const NetForward *f)
{
        size_t n = 0;

        for (const Entry *e = f ? f->entries : NULL; e; e = e->next)
                n++;
        return n;
}

int net_forward_new(const NetForwardOptions *o, NetForward **ret, const char **ret_why)
{
        _cleanup_free_ NetForward *f = NULL;
        char path[64];
        int nsfd, r;

        *ret_why = "invalid arguments";
        if (!o || !o->loop || !o->relay || !o->app_id || o->pid <= 0 ||
            strlen(o->app_id) >= sizeof f->app_id)
                return -EINVAL;
        f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->buf = malloc(DATAGRAM_MAX);
        if (!f->buf)
                return -ENOMEM;
        f->loop = o->loop;
        f->relay = o->relay;
        f->record = o->record;
        f->userdata = o->userdata;
        f->udp_idle_ns = (uint64_t)(o->udp_idle_ms ?: NET_FORWARD_UDP_IDLE_MS) * 1000000ull;
        f->connect_timeout_ns =
                (uint64_t)(o->connect_timeout_ms ?: NET_FORWARD_CONNECT_TIMEOUT_MS) * 1000000ull;
        /* A flow or a connect ends within a quarter of its timeout past it (at most a
         * second). */
        f->sweep_ms = MIN(MIN((uint64_t)UDP_SWEEP_MS, f->udp_idle_ns / 4000000ull),
                          f->connect_timeout_ns / 4000000ull)
                              ?: 1;
        memcpy(f->app_id, o->app_id, strlen(o->app_id) + 1);
        f->maker.nsfd = -EBADF;

        snprintf(path, sizeof path, "/proc/%d/ns/net", (int)o->pid);
        nsfd = open(path, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0) {
                r = -errno;
                free(f->buf);
                *ret_why = "cannot open the app's network namespace";
                return r == -ENOENT ? -ESRCH : r;
        }
        /* The pid was the app's while we opened it: its pidfd still names a live
         * process, so the number was not reused in between. */
        if (o->pidfd >= 0 && syscall(SYS_pidfd_send_signal, o->pidfd, 0, NULL, 0) < 0) {
                close(nsfd);
                free(f->buf);
                *ret_why = "the app's process is gone";
                return -ESRCH;
        }
        r = maker_start(&f->maker, nsfd);
        if (r < 0) {
                maker_stop(&f->maker);
                free(f->buf);
                *ret_why = "cannot start the thread that enters the app's network namespace";
                return r;
        }
        r = uv_timer_init(f->loop, &f->sweep);
        if (r < 0) {
                maker_stop(&f->maker);
                free(f->buf);
                *ret_why = "cannot make a timer";
                return r;
        }
        f->sweep.data = f;
        f->sweep_init = true;
        *ret_why = NULL;
        *ret = TAKE_PTR(f);
        return 0;
}

static void sweep_closed(uv_handle_t *h)
{
        NetForward *f = h->data;

        free(f->buf);
        free(f);
}

void net_forward_free(NetForward *f, const char *reason)
{
        if (!f)
                return;
        while (f->entries) {
                Entry *e = f->entries;

                f->entries = e->next;
                entry_free(e, reason);
        }
        maker_stop(&f->maker);
        uv_close((uv_handle_t *)&f->sweep, sweep_closed);
}
