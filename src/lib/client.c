/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcella's channel: requests out, replies matched by request id, events, the
 * queue a synchronous call fills while it waits, cancel, and hangup.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "base/macro.h"
#include "base/time-util.h"
#include "wire/channel.h"
#include "wire/wire.h"
#include "lib/client.h"

_Static_assert(CELLA_BODY_MAX == CHANNEL_BODY_MAX, "limits agree");
_Static_assert(CELLA_FDS_MAX == CHANNEL_FDS_MAX, "limits agree");
/* cella.h spells the protocol's numbers out for apps that do not include protobuf-c. */
#define SAME(a, b) _Static_assert((int)(a) == (int)(b), #a)
SAME(CELLA_OP_SYSTEM_INFO, CELLA__V1__OPCODE__OPCODE_SYSTEM_INFO);
SAME(CELLA_OP_NET_CONNECT, CELLA__V1__OPCODE__OPCODE_NET_CONNECT);
SAME(CELLA_OP_SYSTEM_TIME, CELLA__V1__OPCODE__OPCODE_SYSTEM_TIME);
SAME(CELLA_OP_SYSTEM_UPTIME, CELLA__V1__OPCODE__OPCODE_SYSTEM_UPTIME);
SAME(CELLA_OP_SYSTEM_ENV, CELLA__V1__OPCODE__OPCODE_SYSTEM_ENV);
SAME(CELLA_OP_PROC_LIST, CELLA__V1__OPCODE__OPCODE_PROC_LIST);
SAME(CELLA_OP_PROC_SIGNAL, CELLA__V1__OPCODE__OPCODE_PROC_SIGNAL);
SAME(CELLA_OP_APP_INFO, CELLA__V1__OPCODE__OPCODE_APP_INFO);
SAME(CELLA_OP_APP_LAUNCH, CELLA__V1__OPCODE__OPCODE_APP_LAUNCH);
SAME(CELLA_OP_FS_OPEN, CELLA__V1__OPCODE__OPCODE_FS_OPEN);
SAME(CELLA_OP_FS_USAGE, CELLA__V1__OPCODE__OPCODE_FS_USAGE);
SAME(CELLA_OP_FS_LIST, CELLA__V1__OPCODE__OPCODE_FS_LIST);
SAME(CELLA_OP_FS_STAT, CELLA__V1__OPCODE__OPCODE_FS_STAT);
SAME(CELLA_OP_FS_MKDIR, CELLA__V1__OPCODE__OPCODE_FS_MKDIR);
SAME(CELLA_OP_FS_RENAME, CELLA__V1__OPCODE__OPCODE_FS_RENAME);
SAME(CELLA_OP_FS_UNLINK, CELLA__V1__OPCODE__OPCODE_FS_UNLINK);
SAME(CELLA_FS_UNKNOWN, CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_UNKNOWN);
SAME(CELLA_FS_REGULAR, CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_REGULAR);
SAME(CELLA_FS_DIRECTORY, CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_DIRECTORY);
SAME(CELLA_FS_SYMLINK, CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_SYMLINK);
SAME(CELLA_FS_OTHER, CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_OTHER);
SAME(CELLA_FS_RENAME_NOREPLACE, CELLA__V1__FS_RENAME_FLAG__FS_RENAME_FLAG_NOREPLACE);
SAME(CELLA_FS_RENAME_EXCHANGE, CELLA__V1__FS_RENAME_FLAG__FS_RENAME_FLAG_EXCHANGE);
SAME(CELLA_OP_TIMER_CREATE, CELLA__V1__OPCODE__OPCODE_TIMER_CREATE);
SAME(CELLA_OP_TIMER_CANCEL, CELLA__V1__OPCODE__OPCODE_TIMER_CANCEL);
SAME(CELLA_OP_PERM_QUERY, CELLA__V1__OPCODE__OPCODE_PERM_QUERY);
SAME(CELLA_OP_PERM_REQUEST, CELLA__V1__OPCODE__OPCODE_PERM_REQUEST);
SAME(CELLA_OP_PERM_LIST, CELLA__V1__OPCODE__OPCODE_PERM_LIST);
SAME(CELLA_OP_NOTIFY_POST, CELLA__V1__OPCODE__OPCODE_NOTIFY_POST);
SAME(CELLA_OP_MEMORY_STATS, CELLA__V1__OPCODE__OPCODE_MEMORY_STATS);
SAME(CELLA_OP_BUS_PUBLISH, CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH);
SAME(CELLA_OP_BUS_SUBSCRIBE, CELLA__V1__OPCODE__OPCODE_BUS_SUBSCRIBE);
SAME(CELLA_OP_BUS_UNSUBSCRIBE, CELLA__V1__OPCODE__OPCODE_BUS_UNSUBSCRIBE);
SAME(CELLA_OP_BUS_SEND, CELLA__V1__OPCODE__OPCODE_BUS_SEND);
SAME(CELLA_OP_BUS_REQUEST, CELLA__V1__OPCODE__OPCODE_BUS_REQUEST);
SAME(CELLA_OP_BUS_REPLY, CELLA__V1__OPCODE__OPCODE_BUS_REPLY);
SAME(CELLA_EVENT_TIMER_FIRED, CELLA__V1__OPCODE__OPCODE_EVENT_TIMER_FIRED);
SAME(CELLA_EVENT_BUS_MESSAGE, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE);
SAME(CELLA_EVENT_PERM_REVOKED, CELLA__V1__OPCODE__OPCODE_EVENT_PERM_REVOKED);
SAME(CELLA_EVENT_MEMORY_PRESSURE, CELLA__V1__OPCODE__OPCODE_EVENT_MEMORY_PRESSURE);
SAME(CELLA_OP_BUS_PUBLISH_BATCH, CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH_BATCH);
SAME(CELLA_EVENT_BUS_MESSAGES, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGES);
SAME(CELLA_EVENT_KERNEL_RESTARTED, CELLA__V1__OPCODE__OPCODE_EVENT_KERNEL_RESTARTED);
SAME(CELLA_OP_CHANNEL_OPEN, CELLA__V1__OPCODE__OPCODE_CHANNEL_OPEN);
SAME(CELLA_OP_CHANNEL_ACCEPT, CELLA__V1__OPCODE__OPCODE_CHANNEL_ACCEPT);
SAME(CELLA_OP_CHANNEL_REFUSE, CELLA__V1__OPCODE__OPCODE_CHANNEL_REFUSE);
SAME(CELLA_OP_CHANNEL_KERNEL_KEY, CELLA__V1__OPCODE__OPCODE_CHANNEL_KERNEL_KEY);
SAME(CELLA_EVENT_CHANNEL_REQUEST, CELLA__V1__OPCODE__OPCODE_EVENT_CHANNEL_REQUEST);
SAME(CELLA_EVENT_CHANNEL_CANCELLED, CELLA__V1__OPCODE__OPCODE_EVENT_CHANNEL_CANCELLED);
SAME(CELLA_OP_IPC_PIPE_CREATE, CELLA__V1__OPCODE__OPCODE_IPC_PIPE_CREATE);
SAME(CELLA_OP_IPC_SHM_CREATE, CELLA__V1__OPCODE__OPCODE_IPC_SHM_CREATE);
SAME(CELLA_OP_IPC_SHM_OPEN, CELLA__V1__OPCODE__OPCODE_IPC_SHM_OPEN);
SAME(CELLA_OP_IPC_ACCEPT, CELLA__V1__OPCODE__OPCODE_IPC_ACCEPT);
SAME(CELLA_OP_IPC_PASS, CELLA__V1__OPCODE__OPCODE_IPC_PASS);
SAME(CELLA_OP_IPC_CLOSE, CELLA__V1__OPCODE__OPCODE_IPC_CLOSE);
SAME(CELLA_OP_IPC_LIST, CELLA__V1__OPCODE__OPCODE_IPC_LIST);
SAME(CELLA_OP_IPC_OFFER, CELLA__V1__OPCODE__OPCODE_IPC_OFFER);
SAME(CELLA_EVENT_IPC_OFFERED, CELLA__V1__OPCODE__OPCODE_EVENT_IPC_OFFERED);
SAME(CELLA_EVENT_IPC_CLOSED, CELLA__V1__OPCODE__OPCODE_EVENT_IPC_CLOSED);
SAME(CELLA_IPC_PIPE, CELLA__V1__IPC_KIND__IPC_KIND_PIPE);
SAME(CELLA_IPC_CHANNEL, CELLA__V1__IPC_KIND__IPC_KIND_CHANNEL);
SAME(CELLA_IPC_SHM, CELLA__V1__IPC_KIND__IPC_KIND_SHM);
SAME(CELLA_IPC_SEM, CELLA__V1__IPC_KIND__IPC_KIND_SEM);
SAME(CELLA_IPC_QUEUE, CELLA__V1__IPC_KIND__IPC_KIND_QUEUE);
SAME(CELLA_IPC_READ, CELLA__V1__IPC_MODE__IPC_MODE_READ);
SAME(CELLA_IPC_WRITE, CELLA__V1__IPC_MODE__IPC_MODE_WRITE);
SAME(CELLA_PERM_NOT_REQUESTED, CELLA__V1__PERM_STATE__PERM_STATE_NOT_REQUESTED);
SAME(CELLA_PERM_GRANTED, CELLA__V1__PERM_STATE__PERM_STATE_GRANTED);
SAME(CELLA_PERM_DENIED, CELLA__V1__PERM_STATE__PERM_STATE_DENIED);
SAME(CELLA_PERM_ASK, CELLA__V1__PERM_STATE__PERM_STATE_ASK);
SAME(CELLA_PERM_LEVEL_NORMAL, CELLA__V1__PERM_LEVEL__PERM_LEVEL_NORMAL);
SAME(CELLA_PERM_LEVEL_DANGEROUS, CELLA__V1__PERM_LEVEL__PERM_LEVEL_DANGEROUS);
SAME(CELLA_PERM_LEVEL_SIGNATURE, CELLA__V1__PERM_LEVEL__PERM_LEVEL_SIGNATURE);
SAME(CELLA_URGENCY_NORMAL, CELLA__V1__URGENCY__URGENCY_NORMAL);
SAME(CELLA_URGENCY_LOW, CELLA__V1__URGENCY__URGENCY_LOW);
SAME(CELLA_URGENCY_CRITICAL, CELLA__V1__URGENCY__URGENCY_CRITICAL);
SAME(CELLA_MEMORY_NORMAL, CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_NORMAL);
SAME(CELLA_MEMORY_LOW, CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_LOW);
SAME(CELLA_MEMORY_MEDIUM, CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_MEDIUM);
SAME(CELLA_MEMORY_CRITICAL, CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_CRITICAL);

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* One received frame, owned by the queue or by whoever delivers it. */
typedef struct Msg {
        struct Msg *next;
        uint32_t flags;   /* CHANNEL_FLAG_* */
        CellaReply reply; /* also carries an event's opcode, body and fds */
        char message[CHANNEL_ERROR_MESSAGE_MAX + 1];
        uint8_t body[];
} Msg;

typedef struct Pending {
        uint64_t request_id;
        uint16_t opcode;
        CellaReplyFn cb; /* NULL: a synchronous call, or a reply nobody wants */
        void *userdata;
} Pending;

struct Cella {
        int fd;
        uint64_t next_request_id;
        uint64_t timeout_ms; /* synchronous calls; 0 = forever */
        int broken;          /* 0, or the error that broke the channel */

        Pending pending[CELLA_MAX_PENDING];
        unsigned n_pending;

        Msg *queue_head, *queue_tail; /* kept by synchronous calls for cella_dispatch() */
        unsigned n_queued;
        /* Frames read_msg() made up or read ahead, handed out before the socket is
         * read again: the failures a kernel restart causes, then its event. */
        Msg *inbox_head, *inbox_tail;

        CellaEventFn event_cb;
        void *event_userdata;
        CellaTrimFn trim_cb; /* cella_on_trim() */
        void *trim_userdata;

        /* The kernel's signing key, once asked (channel.c's cella_kernel_key()). */
        bool have_kernel_key;
        uint8_t kernel_key[32];

        uint8_t buf[CHANNEL_DATAGRAM_MAX]; /* receive buffer */
};

static void close_fds(int *fds, unsigned n)
{
        for (unsigned i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

static Msg *msg_free(Msg *m)
{
        if (m) {
                close_fds(m->reply.fds, m->reply.n_fds);
                free(m);
        }
        return NULL;
}

/* Copies a received frame out of the receive buffer (a callback may reuse that
 * buffer through a nested synchronous call). Takes the fds, even on failure. */
static int msg_new(const ChannelFrame *f, int *fds, Msg **ret)
{
        Msg *m;

        m = malloc(sizeof(Msg) + f->body_len);
        if (!m) {
                close_fds(fds, f->n_fds);
                return -ENOMEM;
        }
        *m = (Msg){
                .flags = f->flags,
                .reply =
                        {
                                .request_id = f->request_id,
                                .opcode = f->opcode,
                                .body = m->body,
                                .body_len = f->body_len,
                                .n_fds = f->n_fds,
                        },
        };
        m->reply.error_message = m->message;
        if (f->body_len > 0)
                memcpy(m->body, f->body, f->body_len);
        for (unsigned i = 0; i < CELLA_FDS_MAX; i++)
                m->reply.fds[i] = i < f->n_fds ? fds[i] : -EBADF;

        if (f->flags & CHANNEL_FLAG_ERROR) {
                int e, r;

                r = channel_parse_error(m->body, f->body_len, &e, m->message, sizeof(m->message));
                m->reply.error = r < 0 ? -EBADMSG : e;
                m->reply.body = NULL;
                m->reply.body_len = 0;
        }
        *ret = m;
        return 0;
}

static void queue_push(Cella *c, Msg *m)
{
        m->next = NULL;
        if (c->queue_tail)
                c->queue_tail->next = m;
        else
                c->queue_head = m;
        c->queue_tail = m;
        c->n_queued++;
}

static Msg *queue_pop(Cella *c)
{
        Msg *m = c->queue_head;

        if (!m)
                return NULL;
        c->queue_head = m->next;
        if (!c->queue_head)
                c->queue_tail = NULL;
        c->n_queued--;
        return m;
}

static void inbox_push(Cella *c, Msg *m)
{
        m->next = NULL;
        if (c->inbox_tail)
                c->inbox_tail->next = m;
        else
                c->inbox_head = m;
        c->inbox_tail = m;
}

static Msg *inbox_pop(Cella *c)
{
        Msg *m = c->inbox_head;

        if (!m)
                return NULL;
        c->inbox_head = m->next;
        if (!c->inbox_head)
                c->inbox_tail = NULL;
        return m;
}

static int pending_find(Cella *c, uint64_t request_id)
{
        for (unsigned i = 0; i < c->n_pending; i++)
                if (c->pending[i].request_id == request_id)
                        return (int)i;
        return -1;
}

static Pending pending_take(Cella *c, int i)
{
        Pending p = c->pending[i];

        c->pending[i] = c->pending[--c->n_pending];
        return p;
}

static int channel_broken(Cella *c, int error)
{
        if (!c->broken)
                c->broken = error;
        return c->broken;
}

/* An error reply to the pending request p, as the kernel would send it, with
 * -ECONNRESET and CELLA_E_KERNEL_RESTARTED. NULL when out of memory. */
static Msg *restart_failure(const Pending *p)
{
        Msg *m = calloc(1, sizeof(Msg));

        if (!m)
                return NULL;
        m->flags = CHANNEL_FLAG_REPLY | CHANNEL_FLAG_ERROR;
        m->reply = (CellaReply){
                .request_id = p->request_id,
                .opcode = p->opcode,
                .error = -ECONNRESET,
                .error_message = m->message,
        };
        for (unsigned i = 0; i < CELLA_FDS_MAX; i++)
                m->reply.fds[i] = -EBADF;
        snprintf(m->message, sizeof m->message, "%s", CELLA_E_KERNEL_RESTARTED);
        return m;
}

/*
 * ev, just read, is CELLA_EVENT_KERNEL_RESTARTED: the kernel that had every request
 * still pending is gone, and what it read but did not answer will never be answered
 * (docs/protocol.md, "When the kernel restarts"). Every pending request gets its
 * failure (ECONNRESET) first, in the order the requests were sent, then the event:
 * all into the inbox, which read_msg() hands out before it reads the socket again, so
 * that a reply the new kernel sends for one of them comes after its failure and is
 * dropped as stale. The requests stay pending until their failure is delivered.
 */
static int kernel_restarted(Cella *c, Msg *ev)
{
        Pending order[CELLA_MAX_PENDING];
        unsigned n = c->n_pending;

        c->have_kernel_key = false; /* asked again of the new kernel */
        memcpy(order, c->pending, n * sizeof *order);
        /* pending_take() reorders the table: sent order is request id order. */
        for (unsigned i = 1; i < n; i++)
                for (unsigned j = i; j > 0 && order[j - 1].request_id > order[j].request_id; j--) {
                        Pending t = order[j];

                        order[j] = order[j - 1];
                        order[j - 1] = t;
                }
        for (unsigned i = 0; i < n; i++) {
                Msg *m = restart_failure(&order[i]);

                if (!m) {
                        msg_free(ev);
                        return -ENOMEM; /* a lost failure would leave its caller waiting */
                }
                inbox_push(c, m);
        }
        inbox_push(c, ev);
        return 0;
}

/* Reads one frame; wait: blocks until one comes, unless the app made the fd
 * non-blocking. -EAGAIN if none; any other error breaks the channel (a malformed
 * frame from the kernel leaves nothing to trust after it). */
static int read_msg(Cella *c, Msg **ret, bool wait)
{
        int fds[CHANNEL_FDS_MAX];
        ChannelFrame f;
        int r;

        *ret = inbox_pop(c);
        if (*ret)
                return 0;
        if (c->broken)
                return c->broken;

        r = channel_recv(c->fd, &f, c->buf, fds, CHANNEL_FDS_MAX, wait ? 0 : MSG_DONTWAIT);
        if (r == -EAGAIN)
                return r;
        if (r < 0)
                return channel_broken(c, r);

        r = msg_new(&f, fds, ret);
        if (r < 0) /* a lost reply would leave its caller waiting forever */
                return channel_broken(c, r);
        if ((f.flags & CHANNEL_FLAG_EVENT) && f.opcode == CELLA_EVENT_KERNEL_RESTARTED) {
                r = kernel_restarted(c, *ret);
                if (r < 0)
                        return channel_broken(c, r);
                *ret = inbox_pop(c);
        }
        return 0;
}

/* True if m is a reply to a request no one waits for any more (cancelled, timed
 * out, or never sent): it is dropped rather than queued. */
static bool msg_is_stale(Cella *c, const Msg *m)
{
        return (m->flags & CHANNEL_FLAG_REPLY) && pending_find(c, m->reply.request_id) < 0;
}

/* Waits for events on the channel until deadline (CLOCK_MONOTONIC ms, 0 = none).
 * Returns the revents, or -ETIMEDOUT, or -errno of poll (never -EINTR). */
static int wait_fd(Cella *c, short events, uint64_t deadline)
{
        struct pollfd p = {.fd = c->fd, .events = events};
        int timeout = -1, r;

        for (;;) {
                if (deadline) {
                        uint64_t now = now_monotonic_ms();

                        if (now >= deadline)
                                return -ETIMEDOUT;
                        timeout = deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
                }
                r = poll(&p, 1, timeout);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return negative_errno();
                if (r > 0)
                        return p.revents;
        }
}

/* Sends without blocking; if the socket is full, waits for room until deadline
 * while reading what the kernel sends meanwhile into the queue (the kernel may hold
 * back reading from an app whose replies it cannot deliver). */
static int send_blocking(Cella *c, const ChannelFrame *f, const int *fds, unsigned n_fds,
                         uint64_t deadline)
{
        for (;;) {
                int r = channel_send(c->fd, f, fds, n_fds, MSG_DONTWAIT);

                if (r != -EAGAIN)
                        return r;

                r = wait_fd(c, POLLIN | POLLOUT, deadline);
                if (r < 0)
                        return r;
                if (r & POLLIN) {
                        Msg *m;

                        if (c->n_queued >= CELLA_QUEUE_MAX)
                                return -ENOBUFS;
                        r = read_msg(c, &m, false);
                        if (r == -EAGAIN)
                                continue;
                        if (r < 0)
                                return r;
                        if (msg_is_stale(c, m))
                                msg_free(m);
                        else
                                queue_push(c, m);
                }
        }
}

static int request_send(Cella *c, uint16_t opcode, const void *body, size_t len, const int *fds,
                        unsigned n_fds, CellaReplyFn cb, void *userdata, uint64_t deadline,
                        bool blocking, uint64_t *ret_request_id)
{
        ChannelFrame f;
        int r;

        if (!c)
                return -EINVAL;
        if (c->broken)
                return c->broken;
        if (opcode == 0 || opcode >= 0x8000)
                return -EINVAL;
        if ((len > 0 && !body) || (n_fds > 0 && !fds))
                return -EINVAL;
        if (len > CHANNEL_BODY_MAX)
                return -EMSGSIZE;
        if (n_fds > CHANNEL_FDS_MAX)
                return -E2BIG;
        if (c->n_pending >= CELLA_MAX_PENDING)
                return -EBUSY;

        f = (ChannelFrame){
                .opcode = opcode,
                .request_id = c->next_request_id,
                .body = body,
                .body_len = len,
        };
        if (blocking)
                r = send_blocking(c, &f, fds, n_fds, deadline);
        else
                r = channel_send(c->fd, &f, fds, n_fds, MSG_DONTWAIT);
        if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN)
                return channel_broken(c, r);
        if (r < 0)
                return r;

        c->pending[c->n_pending++] = (Pending){
                .request_id = c->next_request_id,
                .opcode = opcode,
                .cb = cb,
                .userdata = userdata,
        };
        c->next_request_id++;
        if (ret_request_id)
                *ret_request_id = f.request_id;
        return 0;
}

/* Forgets request_id and tells the kernel, best effort: if the cancel cannot be
 * sent now, the reply is dropped when it comes. */
static int request_cancel(Cella *c, uint64_t request_id)
{
        int i = pending_find(c, request_id);
        uint16_t opcode;

        if (i < 0)
                return -ENOENT;
        opcode = pending_take(c, i).opcode;

        if (!c->broken) {
                int r = channel_send(c->fd,
                                     &(ChannelFrame){
                                             .opcode = opcode,
                                             .flags = CHANNEL_FLAG_CANCEL,
                                             .request_id = request_id,
                                     },
                                     NULL, 0, MSG_DONTWAIT);
                if (r == -EPIPE || r == -ECONNRESET)
                        channel_broken(c, r);
        }
        return 0;
}

static int call_sync(Cella *c, uint16_t opcode, const void *body, size_t len, const int *fds,
                     unsigned n_fds, Msg **ret)
{
        uint64_t deadline = 0, id;
        int r;

        if (!c || !ret)
                return -EINVAL;
        if (c->timeout_ms)
                deadline = now_monotonic_ms() + c->timeout_ms;

        r = request_send(c, opcode, body, len, fds, n_fds, NULL, NULL, deadline, true, &id);
        if (r < 0)
                return r;

        for (;;) {
                Msg *m;

                if (c->n_queued >= CELLA_QUEUE_MAX) {
                        request_cancel(c, id);
                        return -ENOBUFS;
                }

                /* Without a deadline, one blocking recvmsg() waits for the reply: the
                 * two system calls of a read that finds nothing and a poll() are on the
                 * path of every reply otherwise. With one, or on a non-blocking fd,
                 * poll() waits. */
                r = read_msg(c, &m, deadline == 0);
                if (r == -EAGAIN) {
                        r = wait_fd(c, POLLIN, deadline);
                        if (r < 0) {
                                request_cancel(c, id);
                                return r;
                        }
                        continue;
                }
                if (r < 0) {
                        int i = pending_find(c, id);

                        if (i >= 0)
                                (void)pending_take(c, i);
                        return r;
                }

                if ((m->flags & CHANNEL_FLAG_REPLY) && m->reply.request_id == id) {
                        (void)pending_take(c, pending_find(c, id));
                        *ret = m;
                        return 0;
                }
                if (msg_is_stale(c, m))
                        msg_free(m);
                else
                        queue_push(c, m);
        }
}

static void event_fill(CellaEvent *ev, const ProtobufCMessage *pm)
{
        switch (ev->opcode) {
        case CELLA_EVENT_TIMER_FIRED: {
                const Cella__V1__TimerFiredEvent *m = (const void *)pm;

                ev->timer.timer_id = m->timer_id;
                ev->timer.cookie = m->cookie;
                ev->timer.expirations = m->expirations;
                ev->timer.monotonic_ns = m->monotonic_ns;
                break;
        }
        case CELLA_EVENT_BUS_MESSAGE: {
                const Cella__V1__BusMessageEvent *m = (const void *)pm;

                ev->bus.subscription_id = m->subscription_id;
                ev->bus.topic = m->topic;
                ev->bus.sender = m->sender;
                ev->bus.data = m->data.data;
                ev->bus.len = m->data.len;
                ev->bus.content_type = m->content_type;
                ev->bus.reply_token = m->reply_token;
                break;
        }
        case CELLA_EVENT_PERM_REVOKED: {
                const Cella__V1__PermRevokedEvent *m = (const void *)pm;

                ev->perm_revoked.permission = m->permission;
                ev->perm_revoked.reason = m->reason;
                break;
        }
        case CELLA_EVENT_MEMORY_PRESSURE: {
                const Cella__V1__MemoryPressureEvent *m = (const void *)pm;

                ev->memory.level = (CellaMemoryLevel)m->level;
                ev->memory.current_bytes = m->current_bytes;
                ev->memory.limit_bytes = m->limit_bytes;
                break;
        }
        case CELLA_EVENT_KERNEL_RESTARTED: {
                const Cella__V1__KernelRestartedEvent *m = (const void *)pm;

                ev->kernel_restarted.adopted_ms = m->adopted_ms;
                break;
        }
        case CELLA_EVENT_CHANNEL_REQUEST: {
                const Cella__V1__ChannelRequestEvent *m = (const void *)pm;

                if (m->public_key.len != CELLA_CHANNEL_KEY_BYTES) {
                        ev->decoded = false; /* not what the kernel sends */
                        break;
                }
                ev->channel_request.token = m->token;
                ev->channel_request.app_id = m->app_id;
                ev->channel_request.public_key = m->public_key.data;
                ev->channel_request.purpose = m->purpose;
                ev->channel_request.plaintext = m->plaintext;
                break;
        }
        case CELLA_EVENT_CHANNEL_CANCELLED: {
                const Cella__V1__ChannelCancelledEvent *m = (const void *)pm;

                ev->channel_cancelled.token = m->token;
                ev->channel_cancelled.error = -m->errnum;
                break;
        }
        case CELLA_EVENT_IPC_OFFERED: {
                const Cella__V1__IpcOfferedEvent *m = (const void *)pm;

                ev->ipc_offered.token = m->token;
                ev->ipc_offered.kind = (int)m->kind;
                ev->ipc_offered.name = m->name;
                ev->ipc_offered.modes = m->modes;
                ev->ipc_offered.from = m->from;
                ev->ipc_offered.expires_ms = m->expires_ms;
                break;
        }
        case CELLA_EVENT_IPC_CLOSED: {
                const Cella__V1__IpcClosedEvent *m = (const void *)pm;

                ev->ipc_closed.handle = m->handle;
                ev->ipc_closed.reason = m->reason;
                break;
        }
        }
}

static void deliver_event(Cella *c, Msg *m)
{
        CellaEvent ev = {
                .opcode = m->reply.opcode,
                .body = m->reply.body,
                .body_len = m->reply.body_len,
        };
        ProtobufCMessage *pm = NULL;
        ChannelFrame f = {
                .opcode = m->reply.opcode,
                .flags = CHANNEL_FLAG_EVENT,
                .body = m->reply.body,
                .body_len = m->reply.body_len,
        };

        if (!c->event_cb && !(c->trim_cb && ev.opcode == CELLA_EVENT_TRIM_MEMORY))
                return;
        /* Several bus messages in one frame: one event each (calls.c). */
        if (ev.opcode == CELLA_EVENT_BUS_MESSAGES &&
            client_event_bus_messages(c, ev.body, ev.body_len) == 0)
                return;
        /* Version 1 events carry no fds; any that came are closed with m. */
        if (wire_unpack(&f, &pm) >= 0) {
                ev.decoded = true;
                event_fill(&ev, pm);
        }
        /* The trim handler first: the app's chance to drop caches (cella.h). */
        if (c->trim_cb && ev.decoded && ev.opcode == CELLA_EVENT_TRIM_MEMORY)
                c->trim_cb(c, ev.memory.level, ev.memory.current_bytes, ev.memory.limit_bytes,
                           c->trim_userdata);
        if (c->event_cb)
                c->event_cb(c, &ev, c->event_userdata);
        if (pm)
                protobuf_c_message_free_unpacked(pm, NULL);
}

void client_event_emit(Cella *c, const CellaEvent *ev)
{
        if (c->event_cb)
                c->event_cb(c, ev, c->event_userdata);
}

/* Hands m to its callback and frees it. */
static void deliver(Cella *c, Msg *m)
{
        if (m->flags & CHANNEL_FLAG_EVENT)
                deliver_event(c, m);
        else if (m->flags & CHANNEL_FLAG_REPLY) {
                int i = pending_find(c, m->reply.request_id);

                if (i >= 0) {
                        Pending p = pending_take(c, i);

                        if (p.cb)
                                p.cb(c, &m->reply, p.userdata);
                }
        }
        /* Requests and cancels from the kernel mean nothing in version 1: dropped. */
        msg_free(m);
}

/* Tells every outstanding request that the channel broke, once each. */
static void fail_pending(Cella *c)
{
        while (c->n_pending > 0) {
                Pending p = pending_take(c, (int)c->n_pending - 1);
                CellaReply r = {
                        .request_id = p.request_id,
                        .opcode = p.opcode,
                        .error = c->broken,
                        .error_message = "",
                };

                if (p.cb)
                        p.cb(c, &r, p.userdata);
        }
}

int cella_open_fd(int fd, Cella **ret)
{
        int type = 0, domain = 0;
        socklen_t l = sizeof(int);
        Cella *c;

        if (!ret)
                return -EINVAL;
        if (fd < 0 || fcntl(fd, F_GETFD) < 0)
                return -EBADF;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0)
                return negative_errno();
        l = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) < 0)
                return negative_errno();
        if (type != SOCK_SEQPACKET || domain != AF_UNIX)
                return -EPROTOTYPE;

        c = calloc(1, sizeof(Cella));
        if (!c)
                return -ENOMEM;
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
                int r = negative_errno();

                free(c);
                return r;
        }
        c->fd = fd;
        c->next_request_id = 1;
        *ret = c;
        return 0;
}

int cella_open(Cella **ret)
{
        const char *e = getenv("CELLA_FD");
        long fd = 3;

        if (e) {
                char *end;

                errno = 0;
                fd = strtol(e, &end, 10);
                if (errno != 0 || end == e || *end != 0 || fd < 0 || fd > INT_MAX)
                        return -EINVAL;
        }
        return cella_open_fd((int)fd, ret);
}

Cella *cella_close(Cella *c)
{
        Msg *m;

        if (!c)
                return NULL;
        while ((m = queue_pop(c)))
                msg_free(m);
        while ((m = inbox_pop(c)))
                msg_free(m);
        safe_close(c->fd);
        free(c);
        return NULL;
}

int cella_fd(Cella *c)
{
        return c ? c->fd : -EINVAL;
}

int cella_set_timeout(Cella *c, uint64_t timeout_ms)
{
        if (!c)
                return -EINVAL;
        c->timeout_ms = timeout_ms;
        return 0;
}

int cella_on_event(Cella *c, CellaEventFn cb, void *userdata)
{
        if (!c)
                return -EINVAL;
        c->event_cb = cb;
        c->event_userdata = userdata;
        return 0;
}

int cella_on_trim(Cella *c, CellaTrimFn cb, void *userdata)
{
        if (!c)
                return -EINVAL;
        c->trim_cb = cb;
        c->trim_userdata = userdata;
        return 0;
}

int cella_dispatch(Cella *c)
{
        int n = 0;

        if (!c)
                return -EINVAL;

        while (n < (int)CELLA_DISPATCH_MAX) {
                Msg *m = queue_pop(c);

                if (!m) {
                        int r = read_msg(c, &m, false);

                        if (r < 0) /* -EAGAIN, or broken */
                                break;
                }
                deliver(c, m);
                n++;
        }

        /* Frames that came before the break are delivered first, as they were sent. */
        if (c->broken && !c->queue_head && !c->inbox_head) {
                fail_pending(c);
                return c->broken;
        }
        return n;
}

int cella_wait(Cella *c, int timeout_ms)
{
        struct pollfd p;
        int r;

        if (!c)
                return -EINVAL;
        if (c->queue_head || c->inbox_head || c->broken)
                return 1;

        p = (struct pollfd){.fd = c->fd, .events = POLLIN};
        r = poll(&p, 1, timeout_ms);
        if (r < 0)
                return negative_errno();
        return r > 0;
}

int cella_call_async(Cella *c, uint16_t opcode, const void *body, size_t len, const int *fds,
                     unsigned n_fds, CellaReplyFn cb, void *userdata, uint64_t *ret_request_id)
{
        return request_send(c, opcode, body, len, fds, n_fds, cb, userdata, 0, false,
                            ret_request_id);
}

int cella_call(Cella *c, uint16_t opcode, const void *body, size_t len, const int *fds,
               unsigned n_fds, CellaReply **ret)
{
        Msg *m;
        int r;

        r = call_sync(c, opcode, body, len, fds, n_fds, &m);
        if (r < 0)
                return r;
        *ret = &m->reply;
        return 0;
}

CellaReply *cella_reply_free(CellaReply *reply)
{
        if (reply)
                msg_free(container_of(reply, Msg, reply));
        return NULL;
}

int cella_reply_take_fd(CellaReply *reply, unsigned i)
{
        if (!reply || i >= reply->n_fds || i >= CELLA_FDS_MAX || reply->fds[i] < 0)
                return -EBADF;
        return TAKE_FD(reply->fds[i]);
}

int cella_cancel(Cella *c, uint64_t request_id)
{
        if (!c)
                return -EINVAL;
        return request_cancel(c, request_id);
}

const char *cella_opcode_name(uint16_t opcode)
{
        const WireOp *op = wire_op_lookup(opcode);

        return op ? op->name : NULL;
}

void cella_free(void *p)
{
        free(p);
}

/* Packs req into a buffer of its exact size (heap: 64 KiB is much for a thread's stack). */
static int pack(const ProtobufCMessage *req, uint8_t **ret, size_t *ret_len)
{
        size_t n = protobuf_c_message_get_packed_size(req);
        uint8_t *buf;

        if (n > CHANNEL_BODY_MAX)
                return -EMSGSIZE;
        buf = malloc(n > 0 ? n : 1);
        if (!buf)
                return -ENOMEM;
        *ret_len = protobuf_c_message_pack(req, buf);
        *ret = buf;
        return 0;
}

int client_call(Cella *c, uint16_t opcode, const ProtobufCMessage *req, CellaReply **ret)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        r = pack(req, &buf, &len);
        if (r < 0)
                return r;
        return cella_call(c, opcode, buf, len, NULL, 0, ret);
}

int client_call_fds(Cella *c, uint16_t opcode, const ProtobufCMessage *req, const int *fds,
                    unsigned n_fds, CellaReply **ret)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        r = pack(req, &buf, &len);
        if (r < 0)
                return r;
        return cella_call(c, opcode, buf, len, fds, n_fds, ret);
}

int client_call_async(Cella *c, uint16_t opcode, const ProtobufCMessage *req, CellaReplyFn cb,
                      void *userdata, uint64_t *ret_request_id)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        r = pack(req, &buf, &len);
        if (r < 0)
                return r;
        return cella_call_async(c, opcode, buf, len, NULL, 0, cb, userdata, ret_request_id);
}

int client_reply_unpack(const CellaReply *reply, ProtobufCMessage **ret)
{
        ChannelFrame f;

        if (!reply)
                return -EINVAL;
        if (reply->error)
                return reply->error;

        f = (ChannelFrame){
                .opcode = reply->opcode,
                .flags = CHANNEL_FLAG_REPLY,
                .request_id = reply->request_id,
                .body = reply->body,
                .body_len = reply->body_len,
                .n_fds = reply->n_fds,
        };
        return wire_unpack(&f, ret);
}

uint8_t *client_kernel_key(Cella *c, bool **ret_have)
{
        *ret_have = &c->have_kernel_key;
        return c->kernel_key;
}
