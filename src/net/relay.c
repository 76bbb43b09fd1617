/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The relay (relay.h, docs/network.md "The relay"): one thread, one epoll set,
 * every pair's two sockets registered edge-triggered (EPOLLET) with EPOLLIN,
 * EPOLLOUT and EPOLLRDHUP once, for their whole life.
 *
 * Stream pairs: a pipe per direction; splice(2) moves src -> pipe -> dst, the bytes
 * never reach user space. Each wakeup of a pair reads at most one pipe's worth
 * (RELAY_PIPE_BYTES) per direction; a pair that may have more waits in the run queue
 * behind the others (epoll_wait then does not block), so one bulk transfer shares
 * the thread with every other pair (the fairness of nginx's and HAProxy's event
 * loops, which bound the work per event the same way).
 *
 * Datagram pairs: recvmmsg(2) up to RELAY_DGRAM_BATCH datagrams, sendmmsg(2) them on;
 * a datagram the other side cannot take now (EAGAIN) is dropped, as the kernel's own
 * UDP drops on a full receive buffer. The buffers are the thread's, shared by every
 * datagram pair (one pair is moved at a time).
 *
 * Locking: one mutex, r->lock, guards the pairs and their fds. The thread holds it
 * while it moves one pair (non-blocking calls only), so net_relay_close() from the
 * loop waits at most one pair's step. epoll events and the run queue name a pair by
 * id, never by pointer: a pair closed by the loop in between is simply not found.
 *
 * Signals: the thread blocks every signal; a splice to a socket whose peer has gone
 * raises a thread-directed SIGPIPE, which then stays pending and harmless (and the
 * call returns EPIPE, which ends the pair).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/relay.h"

/* Bytes a pipe holds: 1 MiB (256 pages), /proc/sys/fs/pipe-max-size's default. On
 * a quiet 2-core host (bench/net, 2026-12-07), the proxy's bulk moved 73-78% of direct
 * loopback with 256 KiB pipes, 80% with 512 KiB and 87% with 1 MiB; a port forward
 * 85% of `pasta -t` with 256 KiB and 102% with 1 MiB; net.connect's one connection
 * 68-111% of direct with 256 KiB and 86-100% with 1 MiB (noisy either way); an earlier
 * run at load 3 had 64 KiB at 11-13 Gbit/s. The pages are held only while bytes wait
 * (a reader slower than its writer): at most 2 MiB a connection, beside the up to
 * 6 MiB its TCP receive buffer may take (tcp_rmem's default maximum) anyway. If
 * F_SETPIPE_SZ fails (a lower pipe-max-size) the pipe keeps its size. */
#define RELAY_PIPE_BYTES (1024u * 1024u)

/* Datagrams per recvmmsg/sendmmsg, and the largest one (an IPv4 UDP payload's
 * 65507 bytes, rounded up). */
#define RELAY_DGRAM_BATCH 16u
#define RELAY_DGRAM_MAX   65536u

#define RELAY_BUCKETS 1024u

#define EV_ID(d)   ((d) >> 1)
#define EV_SIDE(d) ((unsigned)((d)&1u))

typedef struct RelayDir {
        int src, dst; /* borrowed from the pair */
        int pipe_r, pipe_w;
        size_t pipe_cap; /* bytes the pipe takes */
        size_t in_pipe;  /* bytes in the pipe now */
        uint8_t *prefix; /* owned; written to dst before anything else */
        size_t n_prefix, prefix_off;
        bool src_eof;      /* src gave EOF (or cannot give more) */
        bool done;         /* dst shut down for writing: nothing more this way */
        uint64_t *counter; /* in the pair's stats */
} RelayDir;

typedef struct RelayPair RelayPair;
struct RelayPair {
        RelayPair *hash_next, *done_next;
        uint64_t id;
        int fd[2]; /* a, b */
        bool datagram;
        bool hup[2];     /* EPOLLHUP on that fd: its peer is gone in both directions */
        bool rdhup[2];   /* EPOLLRDHUP or EPOLLHUP: its peer sends no more */
        bool queued;     /* in the run queue */
        RelayDir dir[2]; /* 0: a -> b, 1: b -> a */
        NetRelayStats st;
        NetRelayDoneFn done;
        void *userdata;
};

struct NetRelay {
        uv_loop_t *loop;
        uv_async_t *async; /* allocated apart: it outlives r until its close callback */
        int epfd, evfd;
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        bool stop;
        uint64_t next_id;
        uint64_t live; /* pairs added whose done has not run yet (loop thread only) */
        RelayPair *buckets[RELAY_BUCKETS];
        RelayPair *done_head; /* ended pairs, for the loop */
        uint64_t *runq;       /* ids of pairs that may have more to move (thread only) */
        size_t n_runq, cap_runq;
        /* The thread's datagram buffers. */
        uint8_t *dgram_buf;
        struct mmsghdr msgs[RELAY_DGRAM_BATCH];
        struct iovec iov[RELAY_DGRAM_BATCH];
};

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static RelayPair **bucket_of(NetRelay *r, uint64_t id)
{
        return &r->buckets[id % RELAY_BUCKETS];
}

static RelayPair *pair_find(NetRelay *r, uint64_t id)
{
        for (RelayPair *p = *bucket_of(r, id); p; p = p->hash_next)
                if (p->id == id)
                        return p;
        return NULL;
}

static void pair_unhash(NetRelay *r, RelayPair *p)
{
        for (RelayPair **pp = bucket_of(r, p->id); *pp; pp = &(*pp)->hash_next)
                if (*pp == p) {
                        *pp = p->hash_next;
                        return;
                }
}

static void safe_close(int *fd)
{
        if (*fd >= 0) {
                close(*fd);
                *fd = -1;
        }
}

static void pair_free(RelayPair *p)
{
        for (unsigned i = 0; i < 2; i++) {
                safe_close(&p->fd[i]);
                safe_close(&p->dir[i].pipe_r);
                safe_close(&p->dir[i].pipe_w);
                free(p->dir[i].prefix);
        }
        free(p);
}

/* Ends p (lock held): out of the epoll set and the hash, fds closed, onto the done
 * list for the loop. */
static void pair_end(NetRelay *r, RelayPair *p, NetRelayEnd end, int error)
{
        p->st.end = end;
        p->st.error = end == NET_RELAY_END_RESET ? (error > 0 ? error : EIO) : 0;
        p->st.ended_ns = now_ns();
        for (unsigned i = 0; i < 2; i++) {
                (void)epoll_ctl(r->epfd, EPOLL_CTL_DEL, p->fd[i], NULL);
                safe_close(&p->fd[i]);
                safe_close(&p->dir[i].pipe_r);
                safe_close(&p->dir[i].pipe_w);
        }
        pair_unhash(r, p);
        p->done_next = r->done_head;
        r->done_head = p;
        uv_async_send(r->async);
}

static void runq_push(NetRelay *r, RelayPair *p)
{
        if (p->queued)
                return;
        if (r->n_runq == r->cap_runq) {
                size_t cap = r->cap_runq ? r->cap_runq * 2 : 64;
                uint64_t *q = realloc(r->runq, cap * sizeof(*q));

                if (!q)
                        return; /* the pair waits for its next epoll event instead */
                r->runq = q;
                r->cap_runq = cap;
        }
        r->runq[r->n_runq++] = p->id;
        p->queued = true;
}

static int sock_error(int fd)
{
        int e = 0;
        socklen_t l = sizeof(e);

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
                return errno;
        return e;
}

/* Moves one step of a stream direction. Returns 1 if it may have more to move now, 0
 * if it waits for an event, or -errno (the pair is reset). */
static int dir_step(RelayDir *d)
{
        bool more = false, pipe_full = false;

        if (d->done)
                return 0;
        while (d->prefix_off < d->n_prefix) {
                ssize_t n = send(d->dst, d->prefix + d->prefix_off, d->n_prefix - d->prefix_off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return -errno;
                }
                d->prefix_off += (size_t)n;
                *d->counter += (uint64_t)n;
        }
        for (unsigned round = 0; round < 2; round++) {
                while (d->in_pipe > 0) {
                        ssize_t n = splice(d->pipe_r, NULL, d->dst, NULL, d->in_pipe,
                                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

                        if (n < 0) {
                                if (errno == EAGAIN || errno == EINTR)
                                        return 0; /* EPOLLOUT of dst brings us back */
                                return -errno;
                        }
                        if (n == 0)
                                return -EPIPE;
                        d->in_pipe -= (size_t)n;
                        *d->counter += (uint64_t)n;
                }
                if (round == 1)
                        break;
                /* At most one pipe's worth from src per step (the fairness bound), and
                 * until EAGAIN or EOF below that: with EPOLLET no event comes back for
                 * what is left, an EOF behind the data included. */
                while (!d->src_eof && d->in_pipe < d->pipe_cap) {
                        ssize_t n = splice(d->src, NULL, d->pipe_w, NULL, d->pipe_cap - d->in_pipe,
                                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

                        if (n < 0) {
                                /* EAGAIN with bytes in the pipe may be the pipe's, not
                                 * src's: a pipe holds a fixed number of buffers, and a
                                 * socket's skbs fill them part-way, so it can be full
                                 * below pipe_cap bytes with src still holding data (and
                                 * its EOF). No edge comes back for those: step again
                                 * once the pipe is drained. */
                                if (errno == EAGAIN && d->in_pipe > 0)
                                        pipe_full = true;
                                if (errno == EAGAIN || errno == EINTR)
                                        break;
                                return -errno;
                        }
                        if (n == 0)
                                d->src_eof = true;
                        else
                                d->in_pipe += (size_t)n;
                }
                more = !d->src_eof && (d->in_pipe >= d->pipe_cap || pipe_full);
        }
        if (d->src_eof && d->in_pipe == 0) {
                /* Half-close passed on. The dst may be gone already (ENOTCONN). */
                (void)shutdown(d->dst, SHUT_WR);
                d->done = true;
                return 0;
        }
        return more ? 1 : 0;
}

/* A stream pair's step: both directions. Returns true if it may have more now. */
static bool stream_step(NetRelay *r, RelayPair *p)
{
        bool more = false;

        for (unsigned i = 0; i < 2; i++) {
                RelayDir *d = &p->dir[i];
                unsigned dst_side = i == 0 ? 1 : 0;
                int k;

                /* The dst's peer has gone entirely: nothing can reach it any more. The
                 * bytes still on their way are lost, as with a closed TCP peer. */
                if (!d->done && p->hup[dst_side] && p->dir[dst_side].src_eof) {
                        if (d->in_pipe > 0 || d->prefix_off < d->n_prefix) {
                                pair_end(r, p, NET_RELAY_END_RESET, EPIPE);
                                return false;
                        }
                        (void)shutdown(d->src, SHUT_RD);
                        d->src_eof = true;
                        d->done = true;
                        continue;
                }
                k = dir_step(d);
                if (k < 0) {
                        pair_end(r, p, NET_RELAY_END_RESET, -k);
                        return false;
                }
                if (k > 0)
                        more = true;
        }
        if (p->dir[0].done && p->dir[1].done) {
                pair_end(r, p, NET_RELAY_END_EOF, 0);
                return false;
        }
        /* A hang-up that this step's EOF made final: handled in the next step. */
        for (unsigned i = 0; i < 2; i++)
                if (!p->dir[i].done && p->hup[1 - i] && p->dir[1 - i].src_eof)
                        more = true;
        return more;
}

/* Moves one batch of datagrams src -> dst. Returns 1 (maybe more), 0, 2 (src gave
 * EOF) or -errno. */
static int dgram_dir_step(NetRelay *r, RelayPair *p, unsigned i)
{
        RelayDir *d = &p->dir[i];
        unsigned src_side = i;
        int n, sent = 0;

        /* A prefix goes as one datagram of its own. */
        if (d->prefix_off < d->n_prefix) {
                ssize_t k = send(d->dst, d->prefix, d->n_prefix, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (k < 0 && errno != EAGAIN && errno != ECONNREFUSED)
                        return -errno;
                if (k > 0)
                        *d->counter += (uint64_t)k;
                d->prefix_off = d->n_prefix;
        }
        for (unsigned k = 0; k < RELAY_DGRAM_BATCH; k++) {
                r->iov[k] =
                        (struct iovec){r->dgram_buf + (size_t)k * RELAY_DGRAM_MAX, RELAY_DGRAM_MAX};
                r->msgs[k].msg_hdr = (struct msghdr){.msg_iov = &r->iov[k], .msg_iovlen = 1};
                r->msgs[k].msg_len = 0;
        }
        n = recvmmsg(d->src, r->msgs, RELAY_DGRAM_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED)
                        return p->rdhup[src_side] ? 2 : 0;
                return -errno;
        }
        /* On a SOCK_SEQPACKET end whose peer closed, recv gives 0-byte messages for
         * ever: the first one after a hang-up is the EOF. */
        bool eof = false;
        for (int k = 0; k < n; k++)
                if (r->msgs[k].msg_len == 0 && p->rdhup[src_side]) {
                        n = k;
                        eof = true;
                        break;
                }
        for (int k = 0; k < n; k++) {
                r->iov[k].iov_len = r->msgs[k].msg_len;
                r->msgs[k].msg_hdr.msg_flags = 0;
        }
        while (sent < n) {
                int m = sendmmsg(d->dst, r->msgs + sent, (unsigned)(n - sent),
                                 MSG_NOSIGNAL | MSG_DONTWAIT);

                if (m < 0) {
                        if (errno == EAGAIN || errno == ENOBUFS || errno == ECONNREFUSED ||
                            errno == EMSGSIZE) {
                                sent++; /* that datagram is dropped */
                                continue;
                        }
                        return -errno;
                }
                for (int k = sent; k < sent + m; k++)
                        *d->counter += r->msgs[k].msg_len;
                sent += m;
        }
        if (eof)
                return 2;
        return (unsigned)n == RELAY_DGRAM_BATCH ? 1 : 0;
}

static bool dgram_step(NetRelay *r, RelayPair *p)
{
        bool more = false;

        for (unsigned i = 0; i < 2; i++) {
                int k = dgram_dir_step(r, p, i);

                if (k < 0) {
                        pair_end(r, p, NET_RELAY_END_RESET, -k);
                        return false;
                }
                if (k == 2) {
                        /* No half-close for datagrams: one side gone ends the pair. */
                        for (unsigned s = 0; s < 2; s++)
                                (void)shutdown(p->fd[s], SHUT_RDWR);
                        pair_end(r, p, NET_RELAY_END_EOF, 0);
                        return false;
                }
                if (k == 1)
                        more = true;
        }
        return more;
}

static void pair_step(NetRelay *r, RelayPair *p)
{
        bool more = p->datagram ? dgram_step(r, p) : stream_step(r, p);

        if (more)
                runq_push(r, p);
}

static void *relay_thread(void *arg)
{
        NetRelay *r = arg;
        struct epoll_event ev[64];
        sigset_t all;

        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
        for (;;) {
                bool busy;
                int n;

                pthread_mutex_lock(&r->lock);
                busy = r->n_runq > 0;
                if (r->stop) {
                        pthread_mutex_unlock(&r->lock);
                        break;
                }
                pthread_mutex_unlock(&r->lock);

                n = epoll_wait(r->epfd, ev, (int)(sizeof(ev) / sizeof(ev[0])), busy ? 0 : -1);
                if (n < 0 && errno != EINTR)
                        break;

                pthread_mutex_lock(&r->lock);
                for (int i = 0; i < n; i++) {
                        uint64_t id = EV_ID(ev[i].data.u64);
                        RelayPair *p;

                        if (id == 0) {
                                uint64_t v;
                                (void)!read(r->evfd, &v, sizeof(v));
                                continue;
                        }
                        p = pair_find(r, id);
                        if (!p)
                                continue; /* closed by the loop in between */
                        if (ev[i].events & EPOLLHUP)
                                p->hup[EV_SIDE(ev[i].data.u64)] = true;
                        if (ev[i].events & (EPOLLHUP | EPOLLRDHUP))
                                p->rdhup[EV_SIDE(ev[i].data.u64)] = true;
                        if (ev[i].events & EPOLLERR) {
                                int e = sock_error(p->fd[EV_SIDE(ev[i].data.u64)]);

                                if (e && !(p->datagram && e == ECONNREFUSED)) {
                                        pair_end(r, p, NET_RELAY_END_RESET, e);
                                        continue;
                                }
                        }
                        runq_push(r, p);
                }
                /* One step for each pair queued now; those with more queue again. */
                size_t n_run = r->n_runq;
                uint64_t *run = r->runq;
                r->runq = NULL;
                r->n_runq = r->cap_runq = 0;
                for (size_t i = 0; i < n_run; i++) {
                        RelayPair *p = pair_find(r, run[i]);

                        if (!p)
                                continue;
                        p->queued = false;
                        pair_step(r, p);
                }
                free(run);
                pthread_mutex_unlock(&r->lock);
        }
        return NULL;
}

static void on_async(uv_async_t *a)
{
        NetRelay *r = a->data;
        RelayPair *list;

        pthread_mutex_lock(&r->lock);
        list = r->done_head;
        r->done_head = NULL;
        pthread_mutex_unlock(&r->lock);
        /* Oldest first: the list was pushed at its head. */
        RelayPair *rev = NULL;
        while (list) {
                RelayPair *next = list->done_next;
                list->done_next = rev;
                rev = list;
                list = next;
        }
        while (rev) {
                RelayPair *next = rev->done_next;
                NetRelayStats st = rev->st;

                rev->done(rev->userdata, rev->id, &st);
                pair_free(rev);
                rev = next;
                if (r->live > 0 && --r->live == 0)
                        uv_unref((uv_handle_t *)r->async);
        }
}

static void free_async(uv_handle_t *h)
{
        free(h);
}

int net_relay_new(uv_loop_t *loop, NetRelay **ret)
{
        NetRelay *r;
        int k;

        if (!loop || !ret)
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->loop = loop;
        r->epfd = r->evfd = -1;
        r->next_id = 1;
        pthread_mutex_init(&r->lock, NULL);
        r->async = calloc(1, sizeof(*r->async));
        r->dgram_buf = malloc((size_t)RELAY_DGRAM_BATCH * RELAY_DGRAM_MAX);
        if (!r->async || !r->dgram_buf) {
                free(r->async);
                free(r->dgram_buf);
                free(r);
                return -ENOMEM;
        }
        r->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (r->epfd < 0) {
                k = -errno;
                goto fail;
        }
        r->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (r->evfd < 0) {
                k = -errno;
                goto fail;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->evfd, &ev) < 0) {
                k = -errno;
                goto fail;
        }
        k = uv_async_init(loop, r->async, on_async);
        if (k < 0)
                goto fail;
        r->async->data = r;
        /* Referenced only while pairs run (r->live): an idle relay never keeps the
         * loop running, a busy one keeps it until every done callback ran. */
        uv_unref((uv_handle_t *)r->async);
        k = -pthread_create(&r->thread, NULL, relay_thread, r);
        if (k < 0) {
                uv_close((uv_handle_t *)r->async, free_async);
                r->async = NULL;
                goto fail;
        }
        r->thread_started = true;
        *ret = r;
        return 0;
fail:
        safe_close(&r->epfd);
        safe_close(&r->evfd);
        free(r->async);
        free(r->dgram_buf);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return k;
}

void net_relay_free(NetRelay *r)
{
        if (!r)
                return;
        pthread_mutex_lock(&r->lock);
        r->stop = true;
        pthread_mutex_unlock(&r->lock);
        if (r->thread_started) {
                uint64_t one = 1;
                (void)!write(r->evfd, &one, sizeof(one));
                pthread_join(r->thread, NULL);
        }
        pthread_mutex_lock(&r->lock);
        for (unsigned b = 0; b < RELAY_BUCKETS; b++)
                while (r->buckets[b]) {
                        RelayPair *p = r->buckets[b];

                        for (unsigned s = 0; s < 2; s++)
                                (void)shutdown(p->fd[s], SHUT_RDWR);
                        pair_end(r, p, NET_RELAY_END_CLOSED, 0);
                }
        pthread_mutex_unlock(&r->lock);
        on_async(r->async); /* every done callback runs before we return */
        uv_close((uv_handle_t *)r->async, free_async);
        safe_close(&r->epfd);
        safe_close(&r->evfd);
        free(r->runq);
        free(r->dgram_buf);
        pthread_mutex_destroy(&r->lock);
        free(r);
}

static int set_nonblock(int fd)
{
        int fl = fcntl(fd, F_GETFL);

        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

static bool is_socket(int fd)
{
        struct stat st;

        return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

int net_relay_add(NetRelay *r, const NetRelayPair *pair, uint64_t *ret_id)
{
        RelayPair *p = NULL;
        int k;

        if (!r || !pair) {
                if (pair) {
                        if (pair->fd_a >= 0)
                                close(pair->fd_a);
                        if (pair->fd_b >= 0)
                                close(pair->fd_b);
                }
                return -EINVAL;
        }
        int fd_a = pair->fd_a, fd_b = pair->fd_b;
        if (!is_socket(fd_a) || !is_socket(fd_b) || fd_a == fd_b || !pair->done ||
            pair->n_prefix_to_b > NET_RELAY_PREFIX_MAX ||
            pair->n_prefix_to_a > NET_RELAY_PREFIX_MAX ||
            (pair->n_prefix_to_b && !pair->prefix_to_b) ||
            (pair->n_prefix_to_a && !pair->prefix_to_a)) {
                k = -EINVAL;
                goto fail_fds;
        }
        if (set_nonblock(fd_a) < 0 || set_nonblock(fd_b) < 0) {
                k = -EINVAL;
                goto fail_fds;
        }
        p = calloc(1, sizeof(*p));
        if (!p) {
                k = -ENOMEM;
                goto fail_fds;
        }
        p->fd[0] = fd_a;
        p->fd[1] = fd_b;
        /* Every pipe fd "none" before the first can fail: pair_free() closes them. */
        for (unsigned i = 0; i < 2; i++)
                p->dir[i].pipe_r = p->dir[i].pipe_w = -1;
        p->datagram = pair->datagram;
        p->done = pair->done;
        p->userdata = pair->userdata;
        p->st.started_ns = now_ns();
        const void *prefix[2] = {pair->prefix_to_b, pair->prefix_to_a};
        size_t n_prefix[2] = {pair->n_prefix_to_b, pair->n_prefix_to_a};
        for (unsigned i = 0; i < 2; i++) {
                RelayDir *d = &p->dir[i];
                int pfd[2];

                d->src = p->fd[i];
                d->dst = p->fd[1 - i];
                d->pipe_r = d->pipe_w = -1;
                d->counter = i == 0 ? &p->st.bytes_a_to_b : &p->st.bytes_b_to_a;
                if (n_prefix[i] > 0) {
                        d->prefix = malloc(n_prefix[i]);
                        if (!d->prefix) {
                                k = -ENOMEM;
                                goto fail;
                        }
                        memcpy(d->prefix, prefix[i], n_prefix[i]);
                        d->n_prefix = n_prefix[i];
                }
                if (p->datagram)
                        continue;
                if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
                        k = errno == ENFILE ? -EMFILE : -errno;
                        goto fail;
                }
                d->pipe_r = pfd[0];
                d->pipe_w = pfd[1];
                int sz = fcntl(d->pipe_w, F_SETPIPE_SZ, (int)RELAY_PIPE_BYTES);
                if (sz < 0)
                        sz = fcntl(d->pipe_w, F_GETPIPE_SZ);
                d->pipe_cap = sz > 0 ? (size_t)sz : 65536u;
        }

        pthread_mutex_lock(&r->lock);
        p->id = r->next_id++;
        for (unsigned s = 0; s < 2; s++) {
                struct epoll_event ev = {
                        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                        .data.u64 = p->id << 1 | s,
                };
                if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, p->fd[s], &ev) < 0) {
                        k = -errno;
                        if (s == 1)
                                (void)epoll_ctl(r->epfd, EPOLL_CTL_DEL, p->fd[0], NULL);
                        pthread_mutex_unlock(&r->lock);
                        goto fail;
                }
        }
        p->hash_next = *bucket_of(r, p->id);
        *bucket_of(r, p->id) = p;
        pthread_mutex_unlock(&r->lock);
        if (r->live++ == 0)
                uv_ref((uv_handle_t *)r->async);
        if (ret_id)
                *ret_id = p->id;
        return 0;

fail:
        pair_free(p); /* closes fd_a and fd_b too */
        return k;
fail_fds:
        if (fd_a >= 0)
                close(fd_a);
        if (fd_b >= 0 && fd_b != fd_a)
                close(fd_b);
        return k;
}

int net_relay_close(NetRelay *r, uint64_t id)
{
        RelayPair *p;

        if (!r)
                return -ENOENT;
        pthread_mutex_lock(&r->lock);
        p = pair_find(r, id);
        if (!p) {
                pthread_mutex_unlock(&r->lock);
                return -ENOENT;
        }
        /* Cut now: the peers see EOF (or, with bytes unread, a reset) at once, even if
         * somebody else still holds a copy of an fd. */
        for (unsigned s = 0; s < 2; s++)
                (void)shutdown(p->fd[s], SHUT_RDWR);
        pair_end(r, p, NET_RELAY_END_CLOSED, 0);
        pthread_mutex_unlock(&r->lock);
        return 0;
}

int net_relay_stats(NetRelay *r, uint64_t id, NetRelayStats *ret)
{
        RelayPair *p;

        if (!r || !ret)
                return -ENOENT;
        pthread_mutex_lock(&r->lock);
        p = pair_find(r, id);
        if (p)
                *ret = p->st;
        pthread_mutex_unlock(&r->lock);
        return p ? 0 : -ENOENT;
}
