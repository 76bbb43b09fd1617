/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.ipc (src/lua/libipc.c, ipc-buf.h): the pure bounds and integer helpers, then
 * the Lua API in a real host against a test kernel thread on the app's channel. The
 * test kernel answers the ipc calls of proto/cella.proto as the broker's contract
 * says (it checks and seals the creator's memfd, reopens shared memory read-only for
 * mode "r", makes eventfds and pipes, keeps a queue, sends EVENT_IPC_OFFERED and
 * EVENT_IPC_CLOSED), so what is tested here is the Lua side: the buffer's bounds
 * against hostile arguments, the waits that suspend only their task, the kernel's
 * refusals surfacing as Lua errors. The broker's own checks are tested with it
 * (tests/integration/test_ipc_*.py, test_lua_ipc.py).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/macro.h"
#include "lua/host.h"
#include "lua/ipc-buf.h"
#include "wire/channel.h"
#include "wire/wire.h"

#define K_ASSERT(x)                                                                                \
        do {                                                                                       \
                if (!(x)) {                                                                        \
                        fprintf(stderr, "kernel thread: %s:%d: %s\n", __FILE__, __LINE__, #x);     \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

#define OP(x) ((uint16_t)CELLA__V1__OPCODE__OPCODE_##x)

/* ---- pure helpers ------------------------------------------------------------------- */

START_TEST(test_range)
{
        ck_assert(clua_ipc_range_ok(16, 0, 16));
        ck_assert(clua_ipc_range_ok(16, 16, 0));
        ck_assert(clua_ipc_range_ok(16, 8, 8));
        ck_assert(!clua_ipc_range_ok(16, 9, 8));
        ck_assert(!clua_ipc_range_ok(16, 17, 0));
        ck_assert(!clua_ipc_range_ok(16, -1, 1));
        ck_assert(!clua_ipc_range_ok(16, 0, -1));
        ck_assert(!clua_ipc_range_ok(16, INT64_MIN, 0));
        ck_assert(!clua_ipc_range_ok(16, INT64_MAX, 1));
        ck_assert(!clua_ipc_range_ok(16, 8, INT64_MAX));
        ck_assert(!clua_ipc_range_ok(16, 1, INT64_MAX));
        ck_assert(!clua_ipc_range_ok(0, 0, 1));
        ck_assert(clua_ipc_range_ok(0, 0, 0));
}
END_TEST

START_TEST(test_ints)
{
        uint8_t b[16] __attribute__((aligned(8))) = {0};

        ck_assert(clua_ipc_int_fits(255, 1, false));
        ck_assert(!clua_ipc_int_fits(256, 1, false));
        ck_assert(!clua_ipc_int_fits(-1, 1, false));
        ck_assert(clua_ipc_int_fits(-128, 1, true));
        ck_assert(!clua_ipc_int_fits(-129, 1, true));
        ck_assert(!clua_ipc_int_fits(128, 1, true));
        ck_assert(clua_ipc_int_fits(4294967295, 4, false));
        ck_assert(!clua_ipc_int_fits(4294967296, 4, false));
        ck_assert(clua_ipc_int_fits(-1, 8, false)); /* u64: the same 64 bits */
        ck_assert(clua_ipc_int_fits(INT64_MIN, 8, true));
        /* little endian, aligned and not */
        clua_ipc_store(b, 4, 0x11223344);
        ck_assert_uint_eq(b[0], 0x44);
        ck_assert_uint_eq(b[3], 0x11);
        clua_ipc_store(b + 3, 8, 0x0102030405060708ull);
        ck_assert_uint_eq(b[3], 0x08);
        ck_assert_uint_eq(b[10], 0x01);
        ck_assert_uint_eq(clua_ipc_load(b + 3, 8), 0x0102030405060708ull);
        clua_ipc_store(b + 8, 2, 0xfffe);
        ck_assert_int_eq(clua_ipc_int_value(clua_ipc_load(b + 8, 2), 2, true), -2);
        ck_assert_int_eq(clua_ipc_int_value(clua_ipc_load(b + 8, 2), 2, false), 0xfffe);
        ck_assert_int_eq(clua_ipc_int_value(0x80, 1, true), -128);
        ck_assert_int_eq(clua_ipc_int_value(0x7f, 1, true), 127);
}
END_TEST

/* ---- the test kernel ---------------------------------------------------------------- */

typedef struct KObj {
        int kind;
        int fd;   /* shm: the sealed memfd; sem: the eventfd */
        int peer; /* pipe: the end for the accepting side */
        char name[256];
        uint64_t size;
} KObj;

typedef struct Kernel {
        int fd;
        pthread_t thread;
        uint8_t buf[CHANNEL_DATAGRAM_MAX];
        KObj objs[32];
        unsigned n_objs;
        uint64_t next_handle;
        unsigned n_closes, n_shm_checked, n_seq;
        char queue[64][128];
        size_t queue_len[64];
        unsigned q_head, q_tail;
        bool shm_was_sealed_ro;
} Kernel;

static void k_reply(Kernel *k, const ChannelFrame *req, const ProtobufCMessage *m, const int *fds,
                    unsigned n_fds)
{
        static uint8_t body[CHANNEL_BODY_MAX];
        int n = wire_pack(m, body, sizeof(body)), r;

        K_ASSERT(n >= 0);
        r = channel_send(k->fd,
                         &(ChannelFrame){.opcode = req->opcode,
                                         .flags = CHANNEL_FLAG_REPLY,
                                         .request_id = req->request_id,
                                         .body = body,
                                         .body_len = (size_t)n},
                         fds, n_fds, 0);
        /* An app that ended may not read the answer to its last closes (sent
         * without waiting): its end of the channel is gone. */
        K_ASSERT(r == 0 || r == -EPIPE || r == -ECONNRESET);
}

static void k_event(Kernel *k, uint16_t opcode, const ProtobufCMessage *m)
{
        static uint8_t body[CHANNEL_BODY_MAX];
        int n = wire_pack(m, body, sizeof(body));

        K_ASSERT(n >= 0);
        K_ASSERT(channel_send(k->fd,
                              &(ChannelFrame){.opcode = opcode,
                                              .flags = CHANNEL_FLAG_EVENT,
                                              .body = body,
                                              .body_len = (size_t)n},
                              NULL, 0, 0) == 0);
}

static void k_error(Kernel *k, const ChannelFrame *f, int e, const char *msg)
{
        K_ASSERT(channel_send_error(k->fd, f->opcode, f->request_id, e, msg, 0) == 0);
}

static void k_handle(Kernel *k, const ChannelFrame *f, int kind, const char *name, uint32_t modes,
                     uint64_t size, int fd)
{
        Cella__V1__IpcHandleReply r = CELLA__V1__IPC_HANDLE_REPLY__INIT;

        r.handle = ++k->next_handle;
        r.kind = kind;
        r.name = (char *)name;
        r.modes = modes;
        r.size_bytes = size;
        r.owner = "org.test.a";
        r.peer = "";
        k_reply(k, f, &r.base, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
}

static KObj *k_find(Kernel *k, const char *name)
{
        for (unsigned i = 0; i < k->n_objs; i++)
                if (strcmp(k->objs[i].name, name) == 0)
                        return &k->objs[i];
        return NULL;
}

static KObj *k_add(Kernel *k, int kind, const char *name)
{
        KObj *o;

        K_ASSERT(k->n_objs < ELEMENTSOF(k->objs));
        o = &k->objs[k->n_objs++];
        memset(o, 0, sizeof(*o));
        o->kind = kind;
        o->fd = o->peer = -1;
        snprintf(o->name, sizeof o->name, "%s", name);
        return o;
}

/* IPC_SHM_CREATE: the checks of docs/ipc.md on the creator's memfd, then the seals. */
static void k_shm_create(Kernel *k, const ChannelFrame *f, int fd)
{
        Cella__V1__IpcShmCreateRequest *m =
                cella__v1__ipc_shm_create_request__unpack(NULL, f->body_len, f->body);
        struct stat st;
        int seals;
        KObj *o;

        K_ASSERT(m);
        K_ASSERT(fd >= 0);
        seals = fcntl(fd, F_GET_SEALS);
        K_ASSERT(seals >= 0 && !(seals & F_SEAL_SEAL)); /* a memfd, not sealed yet */
        K_ASSERT(fstat(fd, &st) == 0);
        K_ASSERT((uint64_t)st.st_size == m->size_bytes);
        K_ASSERT((uint64_t)st.st_blocks * 512 >= m->size_bytes); /* fully allocated */
        K_ASSERT(fcntl(fd, F_ADD_SEALS,
                       F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL |
                               (m->read_only_sealed ? F_SEAL_FUTURE_WRITE : 0)) == 0);
        K_ASSERT(fchmod(fd, 0600) == 0);
        k->n_shm_checked++;
        k->shm_was_sealed_ro = m->read_only_sealed;
        o = k_add(k, CELLA__V1__IPC_KIND__IPC_KIND_SHM, m->name);
        o->fd = fd;
        o->size = m->size_bytes;
        k_handle(k, f, o->kind, m->name, 3, m->size_bytes, -1);
        cella__v1__ipc_shm_create_request__free_unpacked(m, NULL);
}

static void k_open(Kernel *k, const ChannelFrame *f, int kind)
{
        Cella__V1__IpcOpenRequest *m =
                cella__v1__ipc_open_request__unpack(NULL, f->body_len, f->body);
        KObj *o;
        char path[64], msg[300];
        int fd = -1;

        K_ASSERT(m);
        o = k_find(k, m->name);
        if (strncmp(m->name, "org.denied.", 11) == 0) {
                snprintf(msg, sizeof msg, "ipc.%s:%s not granted",
                         kind == CELLA__V1__IPC_KIND__IPC_KIND_SHM ? "shm" : "queue", m->name);
                k_error(k, f, -EACCES, msg);
        } else if (!o || o->kind != kind)
                k_error(k, f, -ENOENT, "no such object");
        else if (kind == CELLA__V1__IPC_KIND__IPC_KIND_SHM) {
                /* Each opener its own open file description: O_RDONLY for "r". */
                snprintf(path, sizeof path, "/proc/self/fd/%d", o->fd);
                fd = open(path, (m->modes & 2) ? O_RDWR | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
                K_ASSERT(fd >= 0);
                k_handle(k, f, kind, m->name, m->modes, o->size, fd);
                close(fd);
        } else if (kind == CELLA__V1__IPC_KIND__IPC_KIND_SEM) {
                k_handle(k, f, kind, m->name, 3, 0, o->fd);
        } else {
                fd = eventfd(0, EFD_CLOEXEC);
                K_ASSERT(fd >= 0);
                k_handle(k, f, kind, m->name, m->modes, 128, fd);
                close(fd);
        }
        cella__v1__ipc_open_request__free_unpacked(m, NULL);
}

static void k_sem_create(Kernel *k, const ChannelFrame *f)
{
        Cella__V1__IpcSemCreateRequest *m =
                cella__v1__ipc_sem_create_request__unpack(NULL, f->body_len, f->body);
        Cella__V1__IpcOfferedEvent off = CELLA__V1__IPC_OFFERED_EVENT__INIT;
        Cella__V1__IpcClosedEvent cl = CELLA__V1__IPC_CLOSED_EVENT__INIT;
        KObj *o;

        K_ASSERT(m);
        o = k_add(k, CELLA__V1__IPC_KIND__IPC_KIND_SEM, m->name);
        o->fd = eventfd(m->initial, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
        K_ASSERT(o->fd >= 0);
        /* the offers reached the kernel as the script wrote them */
        if (strcmp(m->name, "org.test.a.offered") == 0) {
                K_ASSERT(m->n_offers == 2);
                K_ASSERT(strcmp(m->offers[0]->app, "org.test.b") == 0 && m->offers[0]->modes == 3);
                K_ASSERT(strcmp(m->offers[1]->topic, "peers.#") == 0 && m->offers[1]->modes == 3);
        }
        k_handle(k, f, o->kind, m->name, 3, 0, o->fd);
        if (strcmp(m->name, "org.test.a.restart") == 0) {
                Cella__V1__KernelRestartedEvent ke = CELLA__V1__KERNEL_RESTARTED_EVENT__INIT;

                ke.adopted_ms = 1;
                k_event(k, OP(EVENT_KERNEL_RESTARTED), &ke.base);
        }
        if (strcmp(m->name, "org.test.a.revoke-me") == 0) {
                cl.handle = k->next_handle;
                cl.reason = "revoked";
                k_event(k, OP(EVENT_IPC_CLOSED), &cl.base);
        }
        if (strcmp(m->name, "org.test.a.offer-pipe") == 0) {
                /* a pipe end waits for the app: its read end, "via-offer" in it */
                int p[2];

                K_ASSERT(pipe2(p, O_CLOEXEC) == 0);
                K_ASSERT(write(p[1], "via-offer", 9) == 9);
                close(p[1]);
                o = k_add(k, CELLA__V1__IPC_KIND__IPC_KIND_PIPE, "org.test.c.p");
                o->peer = p[0];
                off.token = 77;
                off.kind = CELLA__V1__IPC_KIND__IPC_KIND_PIPE;
                off.name = "org.test.c.p";
                off.modes = 1;
                off.from = "org.test.c";
                off.expires_ms = 30000;
                k_event(k, OP(EVENT_IPC_OFFERED), &off.base);
        }
        cella__v1__ipc_sem_create_request__free_unpacked(m, NULL);
}

static void k_accept(Kernel *k, const ChannelFrame *f)
{
        Cella__V1__IpcAcceptRequest *m =
                cella__v1__ipc_accept_request__unpack(NULL, f->body_len, f->body);
        KObj *o = k_find(k, "org.test.c.p");

        K_ASSERT(m);
        if (m->token != 77 || !o || o->peer < 0)
                k_error(k, f, -ENOENT, "no such offer (unknown or expired token)");
        else {
                k_handle(k, f, o->kind, o->name, 1, 0, o->peer);
                close(o->peer);
                o->peer = -1;
        }
        cella__v1__ipc_accept_request__free_unpacked(m, NULL);
}

/* IPC_PIPE_CREATE: the creator's end now; the kernel writes into the other end
 * (a pipe the app reads) or reads what the app writes (echoed back to the app
 * reading "echo" from the pipe "org.test.a.back"). */
static void k_pipe_create(Kernel *k, const ChannelFrame *f)
{
        Cella__V1__IpcPipeCreateRequest *m =
                cella__v1__ipc_pipe_create_request__unpack(NULL, f->body_len, f->body);
        int p[2];

        K_ASSERT(m);
        if (strcmp(m->peer, "org.not.running") == 0) {
                k_error(k, f, -ENOENT, "org.not.running is not running");
                goto out;
        }
        if (m->kind == CELLA__V1__IPC_KIND__IPC_KIND_CHANNEL) {
                K_ASSERT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) == 0);
                K_ASSERT(send(p[1], "m1", 2, 0) == 2);
                K_ASSERT(send(p[1], "message-two", 11, 0) == 11);
                k_handle(k, f, m->kind, m->name, 3, 0, p[0]);
                close(p[0]);
                /* The app's messages come back as they came, one each. */
                for (int i = 0; i < 2; i++) {
                        char buf[64];
                        ssize_t n = recv(p[1], buf, sizeof buf, 0);

                        K_ASSERT(n >= 0);
                        K_ASSERT(send(p[1], buf, (size_t)n, 0) == n);
                }
                close(p[1]);
                goto out;
        }
        K_ASSERT(pipe2(p, O_CLOEXEC) == 0);
        if (m->modes == 1) { /* the app reads: the kernel writes 100 KiB, then the end */
                static char big[100 * 1024];

                k_handle(k, f, m->kind, m->name, 1, 0, p[0]);
                close(p[0]);
                memset(big, 'x', sizeof big);
                K_ASSERT(write(p[1], big, sizeof big) == (ssize_t)sizeof big);
                close(p[1]);
        } else {
                k_handle(k, f, m->kind, m->name, 2, 0, p[1]);
                close(p[1]);
                /* drain what the app writes until it closes its end */
                for (;;) {
                        char buf[4096];
                        ssize_t n = read(p[0], buf, sizeof buf);

                        if (n <= 0)
                                break;
                        k->n_seq += (unsigned)n;
                }
                close(p[0]);
        }
out:
        cella__v1__ipc_pipe_create_request__free_unpacked(m, NULL);
}

static void k_queue_send(Kernel *k, const ChannelFrame *f)
{
        Cella__V1__IpcQueueSendRequest *m =
                cella__v1__ipc_queue_send_request__unpack(NULL, f->body_len, f->body);
        Cella__V1__IpcQueueSendReply r = CELLA__V1__IPC_QUEUE_SEND_REPLY__INIT;

        K_ASSERT(m);
        if (k->q_tail - k->q_head + m->n_messages > 64) {
                k_error(k, f, -EAGAIN, "the queue is full (64 messages)");
                goto out;
        }
        for (size_t i = 0; i < m->n_messages; i++) {
                K_ASSERT(m->messages[i]->data.len <= 128);
                memcpy(k->queue[k->q_tail % 64], m->messages[i]->data.data,
                       m->messages[i]->data.len);
                k->queue_len[k->q_tail % 64] = m->messages[i]->data.len;
                k->q_tail++;
        }
        r.depth = k->q_tail - k->q_head;
        k_reply(k, f, &r.base, NULL, 0);
out:
        cella__v1__ipc_queue_send_request__free_unpacked(m, NULL);
}

static void k_queue_receive(Kernel *k, const ChannelFrame *f)
{
        Cella__V1__IpcQueueReceiveRequest *m =
                cella__v1__ipc_queue_receive_request__unpack(NULL, f->body_len, f->body);
        Cella__V1__IpcQueueReceiveReply r = CELLA__V1__IPC_QUEUE_RECEIVE_REPLY__INIT;
        Cella__V1__IpcQueueMessage msgs[64], *pm[64];

        K_ASSERT(m);
        if (k->q_tail == k->q_head) {
                k_error(k, f, m->timeout_ms ? -ETIMEDOUT : -EAGAIN, "empty");
                goto out;
        }
        while (k->q_head != k->q_tail && r.n_messages < m->max_messages) {
                Cella__V1__IpcQueueMessage *q = &msgs[r.n_messages];

                *q = (Cella__V1__IpcQueueMessage)CELLA__V1__IPC_QUEUE_MESSAGE__INIT;
                q->data.data = (uint8_t *)k->queue[k->q_head % 64];
                q->data.len = k->queue_len[k->q_head % 64];
                q->sender = "org.test.a";
                q->seq = ++k->n_seq;
                pm[r.n_messages++] = q;
                k->q_head++;
        }
        r.messages = pm;
        r.depth = k->q_tail - k->q_head;
        k_reply(k, f, &r.base, NULL, 0);
out:
        cella__v1__ipc_queue_receive_request__free_unpacked(m, NULL);
}

static void *kernel_main(void *p)
{
        Kernel *k = p;

        for (;;) {
                ChannelFrame f;
                int fds[CHANNEL_FDS_MAX], nfd = -1;
                int r = channel_recv(k->fd, &f, k->buf, fds, CHANNEL_FDS_MAX, 0);

                if (r == -ECONNRESET)
                        break;
                K_ASSERT(r == 0);
                if (f.flags & CHANNEL_FLAG_CANCEL)
                        continue;
                if (f.n_fds)
                        nfd = fds[0];
                switch (f.opcode) {
                case OP(IPC_SHM_CREATE):
                        k_shm_create(k, &f, nfd);
                        nfd = -1; /* kept */
                        break;
                case OP(IPC_SHM_OPEN):
                        k_open(k, &f, CELLA__V1__IPC_KIND__IPC_KIND_SHM);
                        break;
                case OP(IPC_SEM_OPEN):
                        k_open(k, &f, CELLA__V1__IPC_KIND__IPC_KIND_SEM);
                        break;
                case OP(IPC_QUEUE_OPEN):
                        k_open(k, &f, CELLA__V1__IPC_KIND__IPC_KIND_QUEUE);
                        break;
                case OP(IPC_SEM_CREATE):
                        k_sem_create(k, &f);
                        break;
                case OP(IPC_QUEUE_CREATE): {
                        Cella__V1__IpcQueueCreateRequest *m =
                                cella__v1__ipc_queue_create_request__unpack(NULL, f.body_len,
                                                                            f.body);
                        int efd = eventfd(0, EFD_CLOEXEC);

                        K_ASSERT(m && efd >= 0);
                        (void)k_add(k, CELLA__V1__IPC_KIND__IPC_KIND_QUEUE, m->name);
                        k_handle(k, &f, CELLA__V1__IPC_KIND__IPC_KIND_QUEUE, m->name, 3,
                                 m->message_bytes_max, efd);
                        close(efd);
                        cella__v1__ipc_queue_create_request__free_unpacked(m, NULL);
                        break;
                }
                case OP(IPC_QUEUE_SEND):
                        k_queue_send(k, &f);
                        break;
                case OP(IPC_QUEUE_RECEIVE):
                        k_queue_receive(k, &f);
                        break;
                case OP(IPC_PIPE_CREATE):
                        k_pipe_create(k, &f);
                        break;
                case OP(IPC_ACCEPT):
                        k_accept(k, &f);
                        break;
                case OP(IPC_CLOSE): {
                        Cella__V1__IpcCloseRequest *m =
                                cella__v1__ipc_close_request__unpack(NULL, f.body_len, f.body);
                        Cella__V1__IpcCloseReply rep = CELLA__V1__IPC_CLOSE_REPLY__INIT;

                        K_ASSERT(m);
                        k->n_closes++;
                        if (m->destroy && m->handle == 1)
                                k_error(&*k, &f, -EPERM, "only the creator may destroy it");
                        else
                                k_reply(k, &f, &rep.base, NULL, 0);
                        cella__v1__ipc_close_request__free_unpacked(m, NULL);
                        break;
                }
                case OP(IPC_PASS): {
                        Cella__V1__IpcPassRequest *m =
                                cella__v1__ipc_pass_request__unpack(NULL, f.body_len, f.body);
                        Cella__V1__IpcPassReply rep = CELLA__V1__IPC_PASS_REPLY__INIT;

                        K_ASSERT(m);
                        if (m->modes & ~1u)
                                k_error(k, &f, -EPERM, "modes wider than the handle's");
                        else {
                                rep.token = 900 + m->handle;
                                k_reply(k, &f, &rep.base, NULL, 0);
                        }
                        cella__v1__ipc_pass_request__free_unpacked(m, NULL);
                        break;
                }
                case OP(IPC_LIST): {
                        Cella__V1__IpcListReply rep = CELLA__V1__IPC_LIST_REPLY__INIT;
                        Cella__V1__IpcUsage u = CELLA__V1__IPC_USAGE__INIT;
                        Cella__V1__IpcHandleReply h = CELLA__V1__IPC_HANDLE_REPLY__INIT, *ph = &h;

                        h.handle = 7;
                        h.kind = CELLA__V1__IPC_KIND__IPC_KIND_SHM;
                        h.name = "org.test.a.buf";
                        h.modes = 1;
                        h.size_bytes = 4096;
                        h.owner = "org.test.a";
                        h.peer = "";
                        u.objects = 2;
                        u.objects_max = 64;
                        u.shm_bytes = 4096;
                        u.handles_max = 256;
                        rep.handles = &ph;
                        rep.n_handles = 1;
                        rep.usage = &u;
                        k_reply(k, &f, &rep.base, NULL, 0);
                        break;
                }
                case OP(IPC_OFFER): {
                        Cella__V1__IpcOfferRequest *m =
                                cella__v1__ipc_offer_request__unpack(NULL, f.body_len, f.body);
                        Cella__V1__IpcOfferReply rep = CELLA__V1__IPC_OFFER_REPLY__INIT;

                        K_ASSERT(m);
                        if (m->n_offers == 1 && strcmp(m->offers[0]->topic, "jobs.#") == 0 &&
                            m->offers[0]->modes == 1)
                                k_reply(k, &f, &rep.base, NULL, 0);
                        else
                                k_error(k, &f, -EINVAL, "not the offers the test sent");
                        cella__v1__ipc_offer_request__free_unpacked(m, NULL);
                        break;
                }
                default:
                        k_error(k, &f, -EOPNOTSUPP, "");
                        break;
                }
                if (nfd >= 0)
                        close(nfd);
        }
        for (unsigned i = 0; i < k->n_objs; i++) {
                if (k->objs[i].fd >= 0)
                        close(k->objs[i].fd);
                if (k->objs[i].peer >= 0)
                        close(k->objs[i].peer);
        }
        close(k->fd);
        return NULL;
}

/* Runs the n apps srcs[] in one host (packed, n > 1), each with a test kernel of its
 * own; returns the host's exit code (0: no fault) and each kernel's state in ks[]. */
static int run_apps(unsigned n, const char *const *srcs, Kernel *ks)
{
        CLuaHostOptions o = {.policy = CLUA_SCHED_FAIR, .stats_fd = -1, .n_apps = n};
        CLuaHost *h = NULL;
        int r;

        ck_assert_int_eq(clua_host_new(&o, &h), 0);
        for (unsigned i = 0; i < n; i++) {
                int sp[2];
                CLuaAppSpec s = {.log_fd = -1, .opt = {.memory_cap = 16u << 20}};
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
        for (unsigned i = 0; i < n; i++)
                ck_assert_int_eq(pthread_join(ks[i].thread, NULL), 0);
        return r;
}

static int run_app(const char *src, Kernel *k)
{
        return run_apps(1, &src, k);
}

/* An error raised by f(...) must contain want (a plain substring). */
#define PRELUDE                                                                                    \
        "local ipc = require('cella.ipc') "                                                        \
        "local function refuses(want, f, ...) "                                                    \
        "  local ok, e = pcall(f, ...) "                                                           \
        "  assert(not ok, 'expected an error with ' .. want) "                                     \
        "  assert(tostring(e):find(want, 1, true), tostring(e) .. ' lacks ' .. want) end "

START_TEST(test_shm_buffer)
{
        Kernel k;
        const char *src = PRELUDE
                "local b = ipc.shm.create('org.test.a.buf', 4096) "
                "assert(b:size() == 4096 and b:writable()) "
                "assert(b:write(0, 'hello') == 5) assert(b:read(0, 5) == 'hello') "
                "assert(b:read(4091, 5) == string.rep('\\0', 5)) "
                "assert(b:read(4096, 0) == '') "
                /* integers, little endian, signed and not, aligned and not */
                "b:set_u32(8, 0x11223344) assert(b:read(8, 4) == '\\x44\\x33\\x22\\x11') "
                "assert(b:get_u32(8) == 0x11223344) assert(b:get_u16(8) == 0x3344) "
                "b:set_u64(13, -1) assert(b:get_u64(13) == -1) assert(b:get_u8(20) == 255) "
                "b:set_i8(30, -5) assert(b:get_i8(30) == -5 and b:get_u8(30) == 251) "
                "b:set_i16(31, -300) assert(b:get_i16(31) == -300) "
                "b:set_u64(4088, math.maxinteger) assert(b:get_u64(4088) == math.maxinteger) "
                "b:fill(7, 100, 10) assert(b:read(100, 10) == string.rep('\\7', 10)) "
                /* hostile offsets and lengths: refused with the range, never a crash */
                "refuses('outside the buffer', b.read, b, -1, 1) "
                "refuses('outside the buffer', b.read, b, 0, -1) "
                "refuses('outside the buffer', b.read, b, 4096, 1) "
                "refuses('outside the buffer', b.read, b, 1, 4096) "
                "refuses('outside the buffer', b.read, b, math.maxinteger, 1) "
                "refuses('outside the buffer', b.read, b, 8, math.maxinteger) "
                "refuses('outside the buffer', b.read, b, math.mininteger, 0) "
                "refuses('outside the buffer', b.write, b, 4094, 'abc') "
                "refuses('outside the buffer', b.write, b, -3, 'abc') "
                "refuses('outside the buffer', b.get_u64, b, 4089) "
                "refuses('outside the buffer', b.set_u16, b, 4095, 1) "
                "refuses('outside the buffer', b.get_u8, b, -1) "
                "refuses('outside the buffer', b.fill, b, 0, 4000, 97) "
                "refuses('number has no integer representation', b.read, b, 0/0, 1) "
                "refuses('number has no integer representation', b.read, b, math.huge, 1) "
                "refuses('number has no integer representation', b.get_u32, b, 1.5) "
                "refuses('number expected', b.read, b, 'x', 1) "
                "refuses('number expected', b.read, b, {}, 1) "
                "refuses('string expected', b.write, b, 0, nil) "
                "refuses('does not fit in u8', b.set_u8, b, 0, 256) "
                "refuses('does not fit in u8', b.set_u8, b, 0, -1) "
                "refuses('does not fit in i16', b.set_i16, b, 0, 40000) "
                "refuses('does not fit in u32', b.set_u32, b, 0, 1 << 32) "
                "refuses('byte out of range', b.fill, b, 256) "
                /* methods on something else */
                "refuses('not a cella.ipc object', b.read, {}, 0, 1) "
                "refuses('not a cella.ipc object', b.read, io.stdout, 0, 1) "
                "refuses('table expected', setmetatable, b, {}) "
                "assert(getmetatable(b) == 'cella.ipc.shm') "
                /* the contents reached the memfd the kernel holds */
                "local info = b:info() "
                "assert(info.kind == 'shm' and info.name == 'org.test.a.buf' and info.size == "
                "4096) "
                "assert(info.modes == 'rw' and info.handle > 0 and info.owner == 'org.test.a') "
                /* read-only open: reads the same memory, refuses writes */
                "local r = ipc.shm.open('org.test.a.buf', 'r') "
                "assert(not r:writable() and r:read(0, 5) == 'hello') "
                "b:write(0, 'HELLO') assert(r:read(0, 5) == 'HELLO') "
                "refuses('read-only', r.write, r, 0, 'x') "
                "refuses('read-only', r.set_u8, r, 0, 1) "
                "refuses('read-only', r.fill, r, 0) "
                "local w = ipc.shm.open('org.test.a.buf', 'rw') w:write(1, 'i') "
                "assert(b:read(0, 2) == 'Hi') "
                "refuses('mode must be', ipc.shm.open, 'org.test.a.buf', 'x') "
                "refuses('opens \"r\" or \"rw\"', ipc.shm.open, 'org.test.a.buf', 'w') "
                /* the kernel's refusals with its message */
                "refuses('cella.ipc.shm.open: Permission denied: ipc.shm:org.denied.x not "
                "granted', ipc.shm.open, 'org.denied.x') "
                "refuses('No such file or directory: no such object', ipc.shm.open, "
                "'org.test.a.none') "
                /* use after close: a clear error, closing again does nothing */
                "r:close() r:close() "
                "refuses('is closed', r.read, r, 0, 1) "
                "refuses('is closed', r.get_u8, r, 0) "
                "refuses('is closed', r.size, r) "
                "assert(r:info().closed) "
                "do local c <close> = ipc.shm.open('org.test.a.buf', 'r') end "
                /* sizes */
                "refuses('size out of range', ipc.shm.create, 'org.test.a.z', 0) "
                "refuses('size out of range', ipc.shm.create, 'org.test.a.z', -1) "
                "refuses('size out of range', ipc.shm.create, 'org.test.a.z', 1 << 40) "
                "refuses('number has no integer representation', ipc.shm.create, "
                "  'org.test.a.z', 0/0) "
                "refuses('do not fit in the app', ipc.shm.create, 'org.test.a.z', 16 << 20) "
                "refuses('empty or contains NUL', ipc.shm.create, 'a\\0b', 10) "
                "refuses('too long', ipc.shm.create, string.rep('a', 256), 10) "
                /* read-only sealed with its contents */
                "local s = ipc.shm.create('org.test.a.sealed', 100, {read_only_sealed = true, "
                "  data = 'fixed'}) "
                "assert(not s:writable() and s:read(0, 5) == 'fixed') "
                "refuses('read-only', s.write, s, 0, 'x') "
                "refuses('larger than the size', ipc.shm.create, 'org.test.a.y', 2, {data = "
                "'abc'}) "
                "refuses('data must be a string', ipc.shm.create, 'org.test.a.y', 2, {data = 1}) "
                "b:close() w:close() s:close() ";

        ck_assert_int_eq(run_app(src, &k), 0);
        ck_assert_uint_eq(k.n_shm_checked, 2);
        ck_assert(k.shm_was_sealed_ro);
        /* every handle the app let go of was closed at the kernel: b, r, w, s, c */
        ck_assert_uint_ge(k.n_closes, 5);
}
END_TEST

/* A buffer dropped without close is unmapped and its handle closed by __gc; the
 * app's memory charge goes with it. */
START_TEST(test_shm_gc_uncharges)
{
        Kernel k;
        const char *src = PRELUDE "for i = 1, 6 do "
                                  "  local b = ipc.shm.create('org.test.a.g' .. i, 4 << 20) "
                                  "  b:set_u8(0, i) b = nil collectgarbage() end "
                                  /* six times 4 MiB in a 16 MiB cap: only if each went */
                                  "local b <close> = ipc.shm.create('org.test.a.last', 8 << 20) ";

        ck_assert_int_eq(run_app(src, &k), 0);
        ck_assert_uint_eq(k.n_shm_checked, 7);
        ck_assert_uint_ge(k.n_closes, 7);
}
END_TEST

START_TEST(test_sem)
{
        Kernel k;
        const char *src = PRELUDE
                "local timer = require('cella.timer') "
                "local s = ipc.sem.create('org.test.a.s', 1) "
                "assert(s:wait(0) == true) assert(s:wait(0) == false) "
                "local t0 = timer.now() assert(s:wait(0.1) == false) "
                "assert(timer.now() - t0 >= 0.09) "
                /* a waiting task is woken by another task's post, and only it waits */
                "local got, ticks = false, 0 "
                "timer.every(0.01, function(t) ticks = ticks + 1 if ticks == 5 then s:post() "
                "  timer.cancel(t) end end) "
                "assert(s:wait(5) == true) assert(ticks >= 5) "
                "s:post(3) assert(s:wait() and s:wait() and s:wait() and not s:wait(0)) "
                "refuses('out of range', s.post, s, 0) "
                "refuses('out of range', s.post, s, -1) "
                "refuses('timeout out of range', s.wait, s, -1) "
                "refuses('timeout out of range', s.wait, s, 0/0) "
                "refuses('timeout out of range', s.wait, s, 601) "
                "refuses('not a cella.ipc object of this kind', ipc.shm.create('org.test.a.b', "
                "  8).read, s, 0, 1) "
                "local o = ipc.sem.open('org.test.a.s') o:post() assert(s:wait(0)) "
                /* offers as the script wrote them (the kernel checks them) */
                "local x = ipc.sem.create('org.test.a.offered', 0, {{app = 'org.test.b', modes "
                "= 'rw'}, {topic = 'peers.#', modes = 'rw'}}) "
                "refuses('exactly one of app and topic', ipc.sem.create, 'org.test.a.q', 0, "
                "  {{app = 'a', topic = 'b', modes = 'r'}}) "
                "refuses('exactly one of app and topic', ipc.sem.create, 'org.test.a.q', 0, "
                "  {{modes = 'r'}}) "
                "refuses('modes must be', ipc.sem.create, 'org.test.a.q', 0, {{app = 'a'}}) "
                "refuses('is not a table', ipc.sem.create, 'org.test.a.q', 0, {'a'}) "
                "refuses('at most 16 offers', ipc.sem.create, 'org.test.a.q', 0, "
                "  setmetatable({}, {__len = function() return 17 end})) "
                /* where the task cannot be suspended (a metamethod called from C) */
                "refuses('cannot wait for the network or an ipc object here', tostring, "
                "  setmetatable({}, {__tostring = function() return tostring(s:wait(1)) end})) "
                "s:close() refuses('is closed', s.wait, s, 0) ";

        ck_assert_int_eq(run_app(src, &k), 0);
}
END_TEST

START_TEST(test_pipes)
{
        Kernel k;
        const char *src = PRELUDE
                /* the kernel writes 100 KiB into the other end, then closes it */
                "local p = ipc.pipe.create('org.test.a.in', 'org.test.c', {mode = 'r'}) "
                "local n = 0 while true do local s = p:read(4096) if not s then break end "
                "  n = n + #s end assert(n == 100 * 1024, n) "
                "refuses('only reads', p.write, p, 'x') p:close() "
                /* the app writes 300 KiB (more than the pipe holds: it waits) */
                "local w = ipc.pipe.create('org.test.a.out', 'org.test.c') "
                "refuses('only writes', w.read, w) "
                "assert(w:write(string.rep('y', 300 * 1024)) == 300 * 1024) w:close() "
                /* a channel keeps message boundaries */
                "local c = ipc.channel.create('org.test.a.ch', 'org.test.c') "
                "assert(c:read() == 'm1') assert(c:read() == 'message-two') "
                "refuses('1 byte or more', c.write, c, '') "
                "c:write('back-1') c:write('back-2') assert(c:read() == 'back-1') "
                "assert(c:read(6) == 'back-2') assert(c:read() == nil) c:close() "
                "refuses('No such file or directory: org.not.running is not running', "
                "  ipc.pipe.create, 'org.test.a.x', 'org.not.running') "
                "refuses('a pipe\\'s end is \"r\" or \"w\"', ipc.pipe.create, 'org.test.a.x', "
                "  'org.test.c', {mode = 'rw'}) "
                "refuses('timeout_ms out of range', ipc.pipe.create, 'org.test.a.x', 'b', "
                "  {timeout_ms = 0}) ";

        ck_assert_int_eq(run_app(src, &k), 0);
        ck_assert_uint_eq(k.n_seq, 300 * 1024);
}
END_TEST

START_TEST(test_queue)
{
        Kernel k;
        const char *src = PRELUDE
                "local q = ipc.queue.create('org.test.a.q', {depth_max = 64, "
                "  message_bytes_max = 128}) "
                "assert(q:info().message_bytes_max == 128) "
                "assert(q:send('one') == 1) assert(q:send('two', 5) == 2) "
                "assert(q:send({'a', {data = 'b', priority = 31}, 'c'}) == 5) "
                "local m, depth = q:receive(10) assert(#m == 5 and depth == 0) "
                "assert(m[1].data == 'one' and m[2].data == 'two' and m[5].data == 'c') "
                "assert(m[1].sender == 'org.test.a' and m[1].seq >= 1) "
                "local e, d = q:receive(1) assert(#e == 0 and d == 0) "
                "e = q:receive(1, 0.05) assert(#e == 0) "
                "refuses('larger than the queue', q.send, q, string.rep('z', 129)) "
                "refuses('priority out of range', q.send, q, 'x', 32) "
                "refuses('priority out of range', q.send, q, {{data = 'x', priority = -1}}) "
                "refuses('is not a string', q.send, q, {1, 2}) "
                "refuses('a batch of 1..1024', q.send, q, {}) "
                "refuses('out of range 1..1024', q.receive, q, 0) "
                "refuses('out of range 1..1024', q.receive, q, 1025) "
                "local big = {} for i = 1, 65 do big[i] = 'm' end "
                "local no, why = q:send(big) assert(no == nil, 'a full queue answers nil') "
                "assert(why:find('Resource temporarily unavailable: the queue is full', 1, true), "
                "  why) "
                "refuses('cella.ipc.queue.open: Permission denied: ipc.queue:org.denied.q not "
                "granted', ipc.queue.open, 'org.denied.q', 'w') "
                "local r = ipc.queue.open('org.test.a.q', 'r') "
                "refuses('only receives', r.send, r, 'x') "
                "local wq = ipc.queue.open('org.test.a.q', 'w') "
                "refuses('only sends', wq.receive, wq) "
                "wq:send('via-w') assert(r:receive()[1].data == 'via-w') "
                /* pass: a token; modes wider than the handle's refused by the kernel */
                "assert(r:pass('org.test.b', 'r') > 900) "
                "refuses('Operation not permitted: modes wider', r.pass, r, 'org.test.b', 'rw') "
                "refuses('Operation not permitted: only the creator', q.destroy, q) "
                /* list, offer, destroy */
                "local l = ipc.list() "
                "assert(#l.handles == 1 and l.handles[1].handle == 7 and l.handles[1].kind == "
                "  'shm' and l.handles[1].modes == 'r' and l.handles[1].size == 4096) "
                "assert(l.usage.objects == 2 and l.usage.objects_max == 64 and "
                "  l.usage.shm_bytes == 4096 and l.usage.handles_max == 256) "
                "r:offer({{topic = 'jobs.#', modes = 'r'}}) "
                "refuses('Invalid argument: not the offers the test sent', r.offer, r, "
                "  {{app = 'x', modes = 'r'}}) "
                "wq:destroy() assert(wq:info().closed) refuses('is closed', wq.send, wq, 'x') ";

        ck_assert_int_eq(run_app(src, &k), 0);
}
END_TEST

/* EVENT_IPC_OFFERED reaches on_offer, which accepts it; EVENT_IPC_CLOSED marks the
 * object and reaches on_closed. */
START_TEST(test_events)
{
        Kernel k;
        const char *src = PRELUDE
                "local closed = {} "
                "ipc.on_closed(function(h, why, obj) closed[#closed + 1] = {h, why, obj} end) "
                "local s = ipc.sem.create('org.test.a.revoke-me', 0) "
                "local h = s:info().handle "
                "ipc.on_offer(function(o) "
                "  assert(o.kind == 'pipe' and o.from == 'org.test.c' and o.modes == 'r') "
                "  assert(o.name == 'org.test.c.p' and o.token == 77 and o.expires_ms == 30000) "
                "  local p = ipc.accept(o) assert(p:read() == 'via-offer') p:close() "
                "  refuses('No such file or directory: no such offer', ipc.accept, 77) "
                "  refuses('not a token', ipc.accept, 0) "
                "  assert(#closed == 1 and closed[1][1] == h and closed[1][2] == 'revoked') "
                "  assert(closed[1][3] == s and s:info().revoked == 'revoked') "
                "  assert(s:info().handle == 0) "
                /* the fd stays the app's: the semaphore still works locally */
                "  s:post() assert(s:wait(0)) "
                "  refuses('the kernel closed this handle (revoked)', s.pass, s, 'org.test.b') "
                "  ipc.on_offer(nil) end) "
                "ipc.sem.create('org.test.a.offer-pipe', 0) ";

        ck_assert_int_eq(run_app(src, &k), 0);
}
END_TEST

/* After a kernel restart the old handles name nothing: forgotten, never closed or
 * passed by number in the new kernel's table. */
START_TEST(test_kernel_restart_forgets_handles)
{
        Kernel k;
        const char *src =
                PRELUDE "local app = require('cella.app') "
                        "local s "
                        "app.on_kernel_restart(function() s:post() end) "
                        "s = ipc.sem.create('org.test.a.restart', 0) "
                        "assert(s:wait(10) == true, 'no restart event') "
                        "assert(s:info().revoked == 'kernel-restarted', s:info().revoked) "
                        "assert(s:info().handle == 0) "
                        "refuses('the kernel closed this handle (kernel-restarted)', s.pass, s, "
                        "  'org.test.b') "
                        "s:close() ";

        ck_assert_int_eq(run_app(src, &k), 0);
        ck_assert_uint_eq(k.n_closes, 0);
}
END_TEST

/* Two packed apps: one waits on a semaphore while the other runs. */
START_TEST(test_packed_waits_apart)
{
        Kernel ks[2];
        const char *srcs[] = {
                PRELUDE "local s = ipc.sem.create('org.test.a.s', 0) assert(s:wait(1.0) == false)",
                PRELUDE "local t = require('cella.timer') local t0 = t.now() "
                        "local b = ipc.shm.create('org.test.a.b', 65536) "
                        "for i = 0, 65535, 8 do b:set_u64(i, i) end "
                        "assert(b:get_u64(65528) == 65528) "
                        "assert(t.now() - t0 < 0.9, t.now() - t0)",
        };

        ck_assert_int_eq(run_apps(2, srcs, ks), 0);
}
END_TEST

START_TEST(test_no_channel)
{
        CLuaHostOptions o = {.policy = CLUA_SCHED_FAIR, .stats_fd = -1, .n_apps = 1};
        CLuaAppSpec s = {.channel_fd = -1, .log_fd = -1};
        const char *src = PRELUDE "refuses('no kernel channel', ipc.shm.create, 'a.b', 10) "
                                  "refuses('no kernel channel', ipc.queue.open, 'a.b') "
                                  "refuses('no kernel channel', ipc.list) ";
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
        Suite *s = suite_create("lua-ipc");
        TCase *pure = tcase_create("pure"), *api = tcase_create("api");

        tcase_add_test(pure, test_range);
        tcase_add_test(pure, test_ints);
        suite_add_tcase(s, pure);
        tcase_set_timeout(api, 60);
        tcase_add_test(api, test_shm_buffer);
        tcase_add_test(api, test_shm_gc_uncharges);
        tcase_add_test(api, test_sem);
        tcase_add_test(api, test_pipes);
        tcase_add_test(api, test_queue);
        tcase_add_test(api, test_events);
        tcase_add_test(api, test_kernel_restart_forgets_handles);
        tcase_add_test(api, test_packed_waits_apart);
        tcase_add_test(api, test_no_channel);
        suite_add_tcase(s, api);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
