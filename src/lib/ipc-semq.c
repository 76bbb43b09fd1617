/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcella's semaphores and message queues (include/cella.h "ipc: semaphores and
 * message queues", docs/ipc.md). A semaphore is an eventfd the kernel passed: wait
 * and post are poll(2), preadv2(2) and write(2) here, with no broker call. A queue
 * is held by the kernel: send and receive are calls, one per batch.
 */
#include <errno.h>
#include <poll.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"
#include "lib/client.h"
#include "wire/wire.h"

#define MIN_U64(a, b) ((a) < (b) ? (a) : (b))

static int check_name(const char *name)
{
        return !name || !*name || strnlen(name, CELLA_IPC_NAME_MAX + 1) > CELLA_IPC_NAME_MAX
                       ? -EINVAL
                       : 0;
}

/* A call whose reply is an IpcHandleReply with one fd (client_ipc_handle_call()):
 * the handle number, its modes and size. */
static int handle_call(Cella *c, uint16_t opcode, const ProtobufCMessage *req, uint64_t *ret_handle,
                       uint32_t *ret_modes, uint64_t *ret_size, int *ret_fd)
{
        CellaIpcHandle h;
        int r;

        r = client_ipc_handle_call(c, opcode, req, -1, true, &h, ret_fd);
        if (r < 0)
                return r;
        *ret_handle = h.handle;
        if (ret_modes)
                *ret_modes = h.modes;
        if (ret_size)
                *ret_size = h.size_bytes;
        return 0;
}

/* ---- semaphores ----------------------------------------------------------------- */

int cella_sem_create(Cella *c, const char *name, uint32_t initial, const CellaIpcOffer *offers,
                     size_t n_offers, CellaSem *ret)
{
        Cella__V1__IpcSemCreateRequest req = CELLA__V1__IPC_SEM_CREATE_REQUEST__INIT;
        Cella__V1__IpcOffer ov[CELLA_IPC_OFFERS_MAX], *op[CELLA_IPC_OFFERS_MAX];
        int r;

        if (!ret || check_name(name) < 0 || n_offers > CELLA_IPC_OFFERS_MAX ||
            (n_offers && !offers))
                return -EINVAL;
        r = client_ipc_offers_pack(offers, n_offers, ov, op);
        if (r < 0)
                return r;
        req.name = (char *)name;
        req.initial = initial;
        req.n_offers = n_offers;
        req.offers = op;
        *ret = (CellaSem){.fd = -1};
        return handle_call(c, CELLA_OP_IPC_SEM_CREATE, &req.base, &ret->handle, NULL, NULL,
                           &ret->fd);
}

int cella_sem_open(Cella *c, const char *name, CellaSem *ret)
{
        Cella__V1__IpcOpenRequest req = CELLA__V1__IPC_OPEN_REQUEST__INIT;

        if (!ret || check_name(name) < 0)
                return -EINVAL;
        req.name = (char *)name;
        req.modes = CELLA_IPC_READ | CELLA_IPC_WRITE;
        *ret = (CellaSem){.fd = -1};
        return handle_call(c, CELLA_OP_IPC_SEM_OPEN, &req.base, &ret->handle, NULL, NULL, &ret->fd);
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Takes one without blocking whatever the file's O_NONBLOCK: 0, -EAGAIN, -errno. */
static int sem_take(int fd)
{
        uint64_t v;
        struct iovec io = {.iov_base = &v, .iov_len = sizeof(v)};
        ssize_t n;

        n = preadv2(fd, &io, 1, -1, RWF_NOWAIT);
        if (n < 0 && errno == EOPNOTSUPP) /* a kernel whose eventfd has no read_iter (< 5.12) */
                n = read(fd, &v, sizeof(v));
        if (n == (ssize_t)sizeof(v))
                return 0;
        if (n >= 0)
                return -EIO;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

int cella_sem_wait(const CellaSem *s, int timeout_ms)
{
        int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;

        if (!s || s->fd < 0)
                return -EBADF;
        if (timeout_ms == 0)
                return sem_take(s->fd);
        /* poll first, then take: two system calls whether the count is there or not
         * (taking first costs a third when it is not, the usual case of a wait). */
        for (;;) {
                struct pollfd p = {.fd = s->fd, .events = POLLIN};
                int wait = -1, r;

                if (timeout_ms > 0) {
                        int64_t left = deadline - now_ms();

                        if (left <= 0)
                                return -ETIMEDOUT;
                        wait = (int)left;
                }
                r = poll(&p, 1, wait);
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r > 0 && (p.revents & POLLNVAL))
                        return -EBADF;
                if (r <= 0)
                        continue; /* EINTR, or the time is up: the deadline decides */
                /* Another waiter may take the count between poll and read: loop. */
                r = sem_take(s->fd);
                if (r != -EAGAIN && r != -EINTR)
                        return r;
        }
}

int cella_sem_trywait(const CellaSem *s)
{
        return cella_sem_wait(s, 0);
}

int cella_sem_post(const CellaSem *s, uint32_t n)
{
        uint64_t v = n;
        ssize_t w;

        if (!s || s->fd < 0)
                return -EBADF;
        if (n == 0)
                return -EINVAL;
        /* The fd is O_NONBLOCK as the kernel made it: a write that would overflow the
         * count fails with EAGAIN instead of waiting. */
        do
                w = write(s->fd, &v, sizeof(v));
        while (w < 0 && errno == EINTR);
        if (w == (ssize_t)sizeof(v))
                return 0;
        if (w >= 0)
                return -EIO;
        return errno == EAGAIN ? -EOVERFLOW : -errno;
}

/* ---- queues --------------------------------------------------------------------- */

int cella_queue_create(Cella *c, const char *name, uint32_t depth_max, uint32_t message_bytes_max,
                       bool persistent, const CellaIpcOffer *offers, size_t n_offers,
                       CellaQueue *ret)
{
        Cella__V1__IpcQueueCreateRequest req = CELLA__V1__IPC_QUEUE_CREATE_REQUEST__INIT;
        Cella__V1__IpcOffer ov[CELLA_IPC_OFFERS_MAX], *op[CELLA_IPC_OFFERS_MAX];
        uint64_t size = 0;
        int r;

        if (!ret || check_name(name) < 0 || n_offers > CELLA_IPC_OFFERS_MAX ||
            (n_offers && !offers) || depth_max == 0 || message_bytes_max == 0 ||
            message_bytes_max > CELLA_QUEUE_MESSAGE_MAX)
                return -EINVAL;
        r = client_ipc_offers_pack(offers, n_offers, ov, op);
        if (r < 0)
                return r;
        req.name = (char *)name;
        req.depth_max = depth_max;
        req.message_bytes_max = message_bytes_max;
        req.persistent = persistent;
        req.n_offers = n_offers;
        req.offers = op;
        *ret = (CellaQueue){.fd = -1};
        r = handle_call(c, CELLA_OP_IPC_QUEUE_CREATE, &req.base, &ret->handle, &ret->modes, &size,
                        &ret->fd);
        ret->message_bytes_max = (uint32_t)MIN_U64(size, (uint64_t)CELLA_QUEUE_MESSAGE_MAX);
        return r;
}

int cella_queue_open(Cella *c, const char *name, uint32_t modes, CellaQueue *ret)
{
        Cella__V1__IpcOpenRequest req = CELLA__V1__IPC_OPEN_REQUEST__INIT;
        uint64_t size = 0;
        int r;

        if (!ret || check_name(name) < 0 || modes == 0 ||
            (modes & ~(CELLA_IPC_READ | CELLA_IPC_WRITE)))
                return -EINVAL;
        req.name = (char *)name;
        req.modes = modes;
        *ret = (CellaQueue){.fd = -1};
        r = handle_call(c, CELLA_OP_IPC_QUEUE_OPEN, &req.base, &ret->handle, &ret->modes, &size,
                        &ret->fd);
        ret->message_bytes_max = (uint32_t)MIN_U64(size, (uint64_t)CELLA_QUEUE_MESSAGE_MAX);
        return r;
}

/* Bytes a varint of v takes. */
static size_t varint_len(uint64_t v)
{
        size_t n = 1;

        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

/* Bytes msg takes inside an IpcQueueSendRequest (field 2, with its key and length). */
static size_t packed_msg_len(const CellaQueueMessage *m)
{
        size_t inner = (m->len ? 1 + varint_len(m->len) + m->len : 0) +
                       (m->priority ? 1 + varint_len(m->priority) : 0);

        return 1 + varint_len(inner) + inner;
}

size_t cella_queue_batch_fit(const CellaQueueMessage *msgs, size_t n)
{
        size_t total = 1 + 10; /* the handle field, at most */
        size_t i;

        for (i = 0; i < n && i < CELLA_QUEUE_BATCH_MAX; i++) {
                total += packed_msg_len(&msgs[i]);
                if (total > CELLA_BODY_MAX)
                        break;
        }
        return i;
}

int cella_queue_send(Cella *c, const CellaQueue *q, const CellaQueueMessage *msgs, size_t n,
                     uint32_t *ret_depth)
{
        Cella__V1__IpcQueueSendRequest req = CELLA__V1__IPC_QUEUE_SEND_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        _cleanup_reply_ CellaReply *reply = NULL;
        _cleanup_free_ Cella__V1__IpcQueueMessage *v = NULL;
        _cleanup_free_ Cella__V1__IpcQueueMessage **ptrs = NULL;
        int r;

        if (!q || !msgs || n == 0 || n > CELLA_QUEUE_BATCH_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (msgs[i].priority > CELLA_QUEUE_PRIORITY_MAX || (msgs[i].len && !msgs[i].data))
                        return -EINVAL;
                if (msgs[i].len > CELLA_QUEUE_MESSAGE_MAX)
                        return -EMSGSIZE;
        }
        if (cella_queue_batch_fit(msgs, n) < n)
                return -EMSGSIZE;
        v = malloc(n * sizeof(*v));
        ptrs = malloc(n * sizeof(*ptrs));
        if (!v || !ptrs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                cella__v1__ipc_queue_message__init(&v[i]);
                v[i].data.data = (uint8_t *)msgs[i].data;
                v[i].data.len = msgs[i].len;
                v[i].priority = msgs[i].priority;
                ptrs[i] = &v[i];
        }
        req.handle = q->handle;
        req.n_messages = n;
        req.messages = ptrs;
        r = client_call(c, CELLA_OP_IPC_QUEUE_SEND, &req.base, &reply);
        if (r < 0)
                return r;
        r = client_reply_unpack(reply, &m);
        if (r < 0)
                return r;
        if (ret_depth)
                *ret_depth = ((const Cella__V1__IpcQueueSendReply *)m)->depth;
        return 0;
}

int cella_queue_receive(Cella *c, const CellaQueue *q, size_t max, int timeout_ms,
                        CellaQueueBatch **ret)
{
        Cella__V1__IpcQueueReceiveRequest req = CELLA__V1__IPC_QUEUE_RECEIVE_REQUEST__INIT;
        const Cella__V1__IpcQueueReceiveReply *rep;
        CellaQueueBatch *b;
        size_t size;
        char *p;
        int r;

        if (!q || !ret || max == 0 || max > CELLA_QUEUE_BATCH_MAX)
                return -EINVAL;
        req.handle = q->handle;
        req.max_messages = (uint32_t)max;
        for (;;) {
                _cleanup_unpacked_ ProtobufCMessage *m = NULL;
                _cleanup_reply_ CellaReply *reply = NULL;

                req.timeout_ms = timeout_ms < 0 ? CELLA_QUEUE_WAIT_MAX_MS
                                                : (uint32_t)MIN_U64((unsigned)timeout_ms,
                                                                    CELLA_QUEUE_WAIT_MAX_MS);
                r = client_call(c, CELLA_OP_IPC_QUEUE_RECEIVE, &req.base, &reply);
                if (r < 0)
                        return r;
                r = client_reply_unpack(reply, &m);
                if (r == -ETIMEDOUT && timeout_ms < 0)
                        continue; /* no limit: ask again */
                if (r < 0)
                        return r;
                rep = (const Cella__V1__IpcQueueReceiveReply *)m;
                size = sizeof(*b) + rep->n_messages * sizeof(b->msgs[0]);
                for (size_t i = 0; i < rep->n_messages; i++)
                        size += rep->messages[i]->data.len + strlen(rep->messages[i]->sender) + 1;
                b = malloc(size);
                if (!b)
                        return -ENOMEM;
                b->n = rep->n_messages;
                b->depth = rep->depth;
                p = (char *)&b->msgs[b->n];
                for (size_t i = 0; i < b->n; i++) {
                        const Cella__V1__IpcQueueMessage *x = rep->messages[i];
                        size_t sl = strlen(x->sender) + 1;

                        b->msgs[i] = (CellaQueueMessage){
                                .data = p,
                                .len = x->data.len,
                                .priority = x->priority,
                                .seq = x->seq,
                        };
                        if (x->data.len)
                                memcpy(p, x->data.data, x->data.len);
                        p += x->data.len;
                        memcpy(p, x->sender, sl);
                        b->msgs[i].sender = p;
                        p += sl;
                }
                *ret = b;
                return 0;
        }
}
