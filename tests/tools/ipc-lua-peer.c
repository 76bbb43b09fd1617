/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ipc-lua-peer: the native app on the other end of a Lua app's ipc objects, for
 * tests/integration/test_lua_ipc.py. It speaks the ipc calls of proto/cella.proto
 * with libcella's generic cella_call(), so it depends on nothing but the wire
 * contract. Usage: ipc-lua-peer OWNER (the Lua app's id; its objects are
 * OWNER.buf, OWNER.s, OWNER.q, and OWNER.p the pipe it makes to this app).
 *
 * It waits for EVENT_IPC_OFFERED (the pipe), accepts it, then:
 *   - opens OWNER.buf "r", maps it and prints "shm: <its first bytes>"; prints
 *     "shm rw: <errno>" for an open "rw" (offered "r" only: refused), and
 *     "shm mmap write: <errno>" for a PROT_WRITE mapping of its O_RDONLY fd;
 *   - sends 100 messages "native N" (N 1..100) to OWNER.q in one batch;
 *   - opens OWNER.s and posts it once ("sem: posted");
 *   - reads the pipe to its end: "pipe: <bytes> bytes, sum <sum of the bytes>".
 * Exits 0 when all of that worked, 1 otherwise (the line says what failed).
 */
#include <cella.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cella.pb-c.h"

#define OP(x) ((uint16_t)CELLA__V1__OPCODE__OPCODE_##x)

static uint64_t offered_token;

static void on_event(Cella *c, const CellaEvent *ev, void *ud)
{
        Cella__V1__IpcOfferedEvent *e;

        (void)c;
        (void)ud;
        if (ev->opcode != OP(EVENT_IPC_OFFERED))
                return;
        e = cella__v1__ipc_offered_event__unpack(NULL, ev->body_len, ev->body);
        if (e) {
                printf("offered: %s %s from %s\n", e->name, e->modes == 1 ? "r" : "w", e->from);
                offered_token = e->token;
                cella__v1__ipc_offered_event__free_unpacked(e, NULL);
        }
}

/* Sends m as op (no fd) and waits: returns the reply (error in ->error) or exits. */
static CellaReply *call(Cella *c, uint16_t op, const ProtobufCMessage *m)
{
        size_t n = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(n ?: 1);
        CellaReply *r = NULL;
        int e;

        if (!buf)
                exit(1);
        protobuf_c_message_pack(m, buf);
        e = cella_call(c, op, buf, n, NULL, 0, &r);
        free(buf);
        if (e < 0) {
                printf("call 0x%04x: channel error %d\n", op, -e);
                exit(1);
        }
        return r;
}

/* Opens name of op with modes; returns the handle reply's fd (or -errno). */
static int open_obj(Cella *c, uint16_t op, const char *name, uint32_t modes, uint64_t *ret_handle)
{
        Cella__V1__IpcOpenRequest req = CELLA__V1__IPC_OPEN_REQUEST__INIT;
        Cella__V1__IpcHandleReply *h;
        CellaReply *r;
        int fd;

        req.name = (char *)name;
        req.modes = modes;
        r = call(c, op, &req.base);
        if (r->error) {
                int e = r->error;

                printf("open %s: %s: %s\n", name, strerror(-e), r->error_message);
                cella_reply_free(r);
                return e;
        }
        h = cella__v1__ipc_handle_reply__unpack(NULL, r->body_len, r->body);
        if (ret_handle && h)
                *ret_handle = h->handle;
        if (h)
                cella__v1__ipc_handle_reply__free_unpacked(h, NULL);
        fd = cella_reply_take_fd(r, 0);
        cella_reply_free(r);
        return fd;
}

int main(int argc, char **argv)
{
        char name[300];
        Cella *c = NULL;
        int r, fd, pipe_fd = -1, fails = 0;
        uint64_t qh = 0;

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc != 2 || cella_open(&c) < 0) {
                printf("usage: ipc-lua-peer OWNER (under cella)\n");
                return 1;
        }
        (void)cella_on_event(c, on_event, NULL);
        printf("ready\n");
        /* the pipe the Lua app makes once its other objects exist */
        while (!offered_token) {
                r = cella_wait(c, 60000);
                if (r <= 0 || cella_dispatch(c) < 0) {
                        printf("no offer came\n");
                        return 1;
                }
        }
        {
                Cella__V1__IpcAcceptRequest req = CELLA__V1__IPC_ACCEPT_REQUEST__INIT;
                CellaReply *rep;

                req.token = offered_token;
                rep = call(c, OP(IPC_ACCEPT), &req.base);
                if (rep->error) {
                        printf("accept: %s: %s\n", strerror(-rep->error), rep->error_message);
                        return 1;
                }
                pipe_fd = cella_reply_take_fd(rep, 0);
                cella_reply_free(rep);
        }

        /* shared memory: read-only */
        snprintf(name, sizeof name, "%s.buf", argv[1]);
        fd = open_obj(c, OP(IPC_SHM_OPEN), name, 1, NULL);
        if (fd < 0) {
                fails++;
        } else {
                char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);

                if (p == MAP_FAILED) {
                        printf("shm mmap: %s\n", strerror(errno));
                        fails++;
                } else {
                        printf("shm: %.*s\n", (int)strnlen(p, 64), p);
                        munmap(p, 4096);
                }
                p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                printf("shm mmap write: %d\n", p == MAP_FAILED ? errno : 0);
                if (p != MAP_FAILED) {
                        munmap(p, 4096);
                        fails++;
                }
                close(fd);
        }
        fd = open_obj(c, OP(IPC_SHM_OPEN), name, 3, NULL);
        printf("shm rw: %d\n", fd < 0 ? -fd : 0);
        if (fd >= 0) {
                close(fd);
                fails++;
        }

        /* the queue: 100 messages in one batch */
        snprintf(name, sizeof name, "%s.q", argv[1]);
        fd = open_obj(c, OP(IPC_QUEUE_OPEN), name, 2, &qh);
        if (fd < 0)
                fails++;
        else {
                Cella__V1__IpcQueueSendRequest req = CELLA__V1__IPC_QUEUE_SEND_REQUEST__INIT;
                Cella__V1__IpcQueueMessage msgs[100], *pm[100];
                char text[100][16];
                CellaReply *rep;

                close(fd);
                for (int i = 0; i < 100; i++) {
                        msgs[i] = (Cella__V1__IpcQueueMessage)CELLA__V1__IPC_QUEUE_MESSAGE__INIT;
                        snprintf(text[i], sizeof text[i], "native %d", i + 1);
                        msgs[i].data.data = (uint8_t *)text[i];
                        msgs[i].data.len = strlen(text[i]);
                        pm[i] = &msgs[i];
                }
                req.handle = qh;
                req.messages = pm;
                req.n_messages = 100;
                rep = call(c, OP(IPC_QUEUE_SEND), &req.base);
                printf("queue: sent 100: %s\n", rep->error ? rep->error_message : "ok");
                fails += rep->error != 0;
                cella_reply_free(rep);
        }

        /* the semaphore */
        snprintf(name, sizeof name, "%s.s", argv[1]);
        fd = open_obj(c, OP(IPC_SEM_OPEN), name, 3, NULL);
        if (fd < 0)
                fails++;
        else {
                uint64_t one = 1;

                if (write(fd, &one, sizeof one) != sizeof one)
                        fails++;
                else
                        printf("sem: posted\n");
                close(fd);
        }

        /* the pipe, to its end */
        {
                uint64_t n = 0, sum = 0;
                unsigned char buf[65536];

                for (;;) {
                        ssize_t k = read(pipe_fd, buf, sizeof buf);

                        if (k < 0 && errno == EAGAIN) {
                                struct pollfd pfd = {.fd = pipe_fd, .events = POLLIN};

                                (void)poll(&pfd, 1, 60000);
                                continue;
                        }
                        if (k <= 0)
                                break;
                        for (ssize_t i = 0; i < k; i++)
                                sum += buf[i];
                        n += (uint64_t)k;
                }
                printf("pipe: %" PRIu64 " bytes, sum %" PRIu64 "\n", n, sum);
        }
        cella_close(c);
        printf("%s\n", fails ? "peer: FAILED" : "peer: ok");
        return fails ? 1 : 0;
}
