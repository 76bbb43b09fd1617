/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcella's ipc calls (include/cella.h "ipc", docs/ipc.md): pipes, channels, shared
 * memory, and the calls every kind's handles share. Arguments are checked against
 * cella.h's limits before anything is sent; the kernel checks them again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/macro.h"
#include "wire/wire.h"
#include "lib/client.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008u /* Linux 6.3 */
#endif

static bool name_ok(const char *name)
{
        return name && *name && strnlen(name, CELLA_IPC_NAME_MAX + 1) <= CELLA_IPC_NAME_MAX;
}

static bool id_ok(const char *id)
{
        return id && *id && strnlen(id, CELLA_ID_MAX + 1) <= CELLA_ID_MAX;
}

static void copy_str(char *dst, size_t size, const char *src)
{
        snprintf(dst, size, "%s", src ? src : "");
}

static void handle_of(const Cella__V1__IpcHandleReply *m, CellaIpcHandle *ret)
{
        if (!ret)
                return;
        memset(ret, 0, sizeof *ret);
        ret->handle = m->handle;
        ret->kind = (CellaIpcKind)m->kind;
        ret->modes = m->modes;
        ret->size_bytes = m->size_bytes;
        copy_str(ret->name, sizeof ret->name, m->name);
        copy_str(ret->owner, sizeof ret->owner, m->owner);
        copy_str(ret->peer, sizeof ret->peer, m->peer);
}

/*
 * A call whose reply is an IpcHandleReply, with in_fd sent along (-1: none) and,
 * when want_fd, the one fd the reply carries into *ret_fd.
 */
int client_ipc_handle_call(Cella *c, uint16_t opcode, const ProtobufCMessage *req, int in_fd,
                           bool want_fd, CellaIpcHandle *ret, int *ret_fd)
{
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        _cleanup_reply_ CellaReply *reply = NULL;
        int r;

        r = client_call_fds(c, opcode, req, &in_fd, in_fd >= 0 ? 1 : 0, &reply);
        if (r < 0)
                return r;
        r = client_reply_unpack(reply, &m);
        if (r < 0)
                return r;
        if (((const Cella__V1__IpcHandleReply *)m)->handle == 0)
                return -EBADMSG;
        handle_of((const void *)m, ret);
        /* wire_unpack() checked the opcode's fd count. */
        if (want_fd) {
                r = cella_reply_take_fd(reply, 0);
                if (r < 0)
                        return r;
                *ret_fd = r;
        }
        return 0;
}

/* Converts offers for a request into the caller's arrays (n <= CELLA_IPC_OFFERS_MAX).
 * -EINVAL for a bad one. */
int client_ipc_offers_pack(const CellaIpcOffer *offers, size_t n, Cella__V1__IpcOffer *msgs,
                           Cella__V1__IpcOffer **ptrs)
{
        if (n > CELLA_IPC_OFFERS_MAX || (n > 0 && !offers))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                bool app = offers[i].app && *offers[i].app,
                     topic = offers[i].topic && *offers[i].topic;

                if (app == topic || offers[i].modes == 0 ||
                    (offers[i].modes & ~(CELLA_IPC_READ | CELLA_IPC_WRITE)) ||
                    (app && strnlen(offers[i].app, CELLA_ID_MAX + 1) > CELLA_ID_MAX) ||
                    (topic && strnlen(offers[i].topic, CELLA_TOPIC_MAX + 1) > CELLA_TOPIC_MAX))
                        return -EINVAL;
                msgs[i] = (Cella__V1__IpcOffer)CELLA__V1__IPC_OFFER__INIT;
                msgs[i].app = (char *)(app ? offers[i].app : "");
                msgs[i].topic = (char *)(topic ? offers[i].topic : "");
                msgs[i].modes = offers[i].modes;
                ptrs[i] = &msgs[i];
        }
        return 0;
}

int cella_pipe_create(Cella *c, const char *name, CellaIpcKind kind, uint32_t modes,
                      const char *peer, uint32_t buffer_bytes, uint32_t timeout_ms,
                      CellaIpcHandle *ret, int *ret_fd)
{
        Cella__V1__IpcPipeCreateRequest req = CELLA__V1__IPC_PIPE_CREATE_REQUEST__INIT;

        if (!c || !ret_fd || !name_ok(name) || !id_ok(peer) ||
            (kind != CELLA_IPC_PIPE && kind != CELLA_IPC_CHANNEL) || buffer_bytes > (1u << 20) ||
            timeout_ms > 600000u)
                return -EINVAL;
        if (kind == CELLA_IPC_PIPE ? modes != CELLA_IPC_READ && modes != CELLA_IPC_WRITE
                                   : modes != (CELLA_IPC_READ | CELLA_IPC_WRITE))
                return -EINVAL;
        req.name = (char *)name;
        req.kind = (Cella__V1__IpcKind)kind;
        req.modes = modes;
        req.peer = (char *)peer;
        req.buffer_bytes = buffer_bytes;
        req.timeout_ms = timeout_ms;
        return client_ipc_handle_call(c, CELLA_OP_IPC_PIPE_CREATE, &req.base, -1, true, ret,
                                      ret_fd);
}

int cella_ipc_accept(Cella *c, uint64_t token, CellaIpcHandle *ret, int *ret_fd)
{
        Cella__V1__IpcAcceptRequest req = CELLA__V1__IPC_ACCEPT_REQUEST__INIT;

        if (!c || token == 0 || !ret_fd)
                return -EINVAL;
        req.token = token;
        return client_ipc_handle_call(c, CELLA_OP_IPC_ACCEPT, &req.base, -1, true, ret, ret_fd);
}

int cella_ipc_pass(Cella *c, uint64_t handle, const char *to, uint32_t modes, uint64_t *ret_token)
{
        Cella__V1__IpcPassRequest req = CELLA__V1__IPC_PASS_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        _cleanup_reply_ CellaReply *reply = NULL;
        int r;

        if (!c || handle == 0 || !id_ok(to) || modes == 0 ||
            (modes & ~(CELLA_IPC_READ | CELLA_IPC_WRITE)))
                return -EINVAL;
        req.handle = handle;
        req.to = (char *)to;
        req.modes = modes;
        r = client_call(c, CELLA_OP_IPC_PASS, &req.base, &reply);
        if (r < 0)
                return r;
        r = client_reply_unpack(reply, &m);
        if (r < 0)
                return r;
        if (ret_token)
                *ret_token = ((const Cella__V1__IpcPassReply *)(const void *)m)->token;
        return 0;
}

int cella_ipc_close(Cella *c, uint64_t handle, bool destroy)
{
        Cella__V1__IpcCloseRequest req = CELLA__V1__IPC_CLOSE_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        _cleanup_reply_ CellaReply *reply = NULL;
        int r;

        if (!c || handle == 0)
                return -EINVAL;
        req.handle = handle;
        req.destroy = destroy;
        r = client_call(c, CELLA_OP_IPC_CLOSE, &req.base, &reply);
        return r < 0 ? r : client_reply_unpack(reply, &m);
}

int cella_ipc_offer(Cella *c, uint64_t handle, const CellaIpcOffer *offers, size_t n)
{
        Cella__V1__IpcOfferRequest req = CELLA__V1__IPC_OFFER_REQUEST__INIT;
        Cella__V1__IpcOffer msgs[CELLA_IPC_OFFERS_MAX], *ptrs[CELLA_IPC_OFFERS_MAX];
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        _cleanup_reply_ CellaReply *reply = NULL;
        int r;

        if (!c || handle == 0)
                return -EINVAL;
        r = client_ipc_offers_pack(offers, n, msgs, ptrs);
        if (r < 0)
                return r;
        req.handle = handle;
        req.offers = ptrs;
        req.n_offers = n;
        r = client_call(c, CELLA_OP_IPC_OFFER, &req.base, &reply);
        return r < 0 ? r : client_reply_unpack(reply, &m);
}

int cella_ipc_list(Cella *c, CellaIpcList **ret)
{
        Cella__V1__IpcListRequest req = CELLA__V1__IPC_LIST_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        _cleanup_reply_ CellaReply *reply = NULL;
        const Cella__V1__IpcListReply *l;
        CellaIpcList *x;
        int r;

        if (!c || !ret)
                return -EINVAL;
        r = client_call(c, CELLA_OP_IPC_LIST, &req.base, &reply);
        if (r < 0)
                return r;
        r = client_reply_unpack(reply, &m);
        if (r < 0)
                return r;
        l = (const void *)m;
        /* One allocation: the struct, then the array (cella_free()). */
        x = calloc(1, sizeof *x + l->n_handles * sizeof(CellaIpcHandle));
        if (!x)
                return -ENOMEM;
        x->handles = (CellaIpcHandle *)(x + 1);
        x->n_handles = l->n_handles;
        for (size_t i = 0; i < l->n_handles; i++)
                handle_of(l->handles[i], &x->handles[i]);
        if (l->usage)
                x->usage = (CellaIpcUsage){
                        .objects = l->usage->objects,
                        .objects_max = l->usage->objects_max,
                        .shm_bytes = l->usage->shm_bytes,
                        .shm_bytes_max = l->usage->shm_bytes_max,
                        .queued_bytes = l->usage->queued_bytes,
                        .queued_bytes_max = l->usage->queued_bytes_max,
                        .handles = l->usage->handles,
                        .handles_max = l->usage->handles_max,
                };
        *ret = x;
        return 0;
}

int cella_shm_make(uint64_t size_bytes, int *ret_fd)
{
        _cleanup_close_ int fd = -1;

        if (!ret_fd || size_bytes == 0 || size_bytes > (uint64_t)INT64_MAX)
                return -EINVAL;
        fd = memfd_create("cella-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
        if (fd < 0 && errno == EINVAL) /* before Linux 6.3: sealed against exec by cellad */
                fd = memfd_create("cella-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t)size_bytes) < 0)
                return -errno;
        /* Every page now, in this process: charged to this app's memory cgroup
         * (docs/ipc.md "Shared memory"). */
        if (fallocate(fd, 0, 0, (off_t)size_bytes) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int cella_shm_register(Cella *c, const char *name, int fd, uint64_t size_bytes,
                       const CellaIpcOffer *offers, size_t n, bool read_only_sealed,
                       CellaIpcHandle *ret)
{
        Cella__V1__IpcShmCreateRequest req = CELLA__V1__IPC_SHM_CREATE_REQUEST__INIT;
        Cella__V1__IpcOffer msgs[CELLA_IPC_OFFERS_MAX], *ptrs[CELLA_IPC_OFFERS_MAX];
        int r;

        if (!c || !name_ok(name) || fd < 0 || size_bytes == 0)
                return -EINVAL;
        r = client_ipc_offers_pack(offers, n, msgs, ptrs);
        if (r < 0)
                return r;
        req.name = (char *)name;
        req.size_bytes = size_bytes;
        req.offers = ptrs;
        req.n_offers = n;
        req.read_only_sealed = read_only_sealed;
        return client_ipc_handle_call(c, CELLA_OP_IPC_SHM_CREATE, &req.base, fd, false, ret, NULL);
}

int cella_shm_create(Cella *c, const char *name, uint64_t size_bytes, const CellaIpcOffer *offers,
                     size_t n, CellaIpcHandle *ret, int *ret_fd)
{
        _cleanup_close_ int fd = -1;
        int r;

        if (!ret_fd)
                return -EINVAL;
        r = cella_shm_make(size_bytes, &fd);
        if (r < 0)
                return r;
        r = cella_shm_register(c, name, fd, size_bytes, offers, n, false, ret);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int cella_shm_open(Cella *c, const char *name, uint32_t modes, CellaIpcHandle *ret, int *ret_fd)
{
        Cella__V1__IpcOpenRequest req = CELLA__V1__IPC_OPEN_REQUEST__INIT;

        if (!c || !ret_fd || !name_ok(name) ||
            (modes != CELLA_IPC_READ && modes != (CELLA_IPC_READ | CELLA_IPC_WRITE)))
                return -EINVAL;
        req.name = (char *)name;
        req.modes = modes;
        return client_ipc_handle_call(c, CELLA_OP_IPC_SHM_OPEN, &req.base, -1, true, ret, ret_fd);
}

void *cella_shm_map(int fd, uint64_t size_bytes, uint32_t modes)
{
        void *p;

        if (fd < 0 || size_bytes == 0 || size_bytes > SIZE_MAX || !(modes & CELLA_IPC_READ)) {
                errno = EINVAL;
                return NULL;
        }
        p = mmap(NULL, (size_t)size_bytes, PROT_READ | ((modes & CELLA_IPC_WRITE) ? PROT_WRITE : 0),
                 MAP_SHARED, fd, 0);
        return p == MAP_FAILED ? NULL : p;
}
