/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "base/utf8.h"
#include "wire/wire.h"

#define D(x)  &cella__v1__##x##__descriptor
#define OP(x) CELLA__V1__OPCODE__OPCODE_##x
/* A request: opcode, name, class (CHEAP, COSTLY, PROMPTING), the rights it may check,
 * and the stem of its XRequest / XReply messages. */
#define CALL(op, nm, c, r, msg)                                                                    \
        {                                                                                          \
                .opcode = OP(op), .name = nm, .request = D(msg##_request),                         \
                .reply = D(msg##_reply), .cls = WIRE_CLASS_##c, .rights = r                        \
        }
/* A request that carries fds: rq with the request, rp with a successful reply. */
#define CALL_FDS(op, nm, c, r, msg, req_msg, rq, rp)                                               \
        {                                                                                          \
                .opcode = OP(op), .name = nm, .request = D(req_msg##_request),                     \
                .reply = D(msg##_reply), .request_fds = rq, .reply_fds = rp,                       \
                .cls = WIRE_CLASS_##c, .rights = r                                                 \
        }
#define EVENT(op, nm, msg)                                                                         \
        {                                                                                          \
                .opcode = OP(op), .name = nm, .event = D(msg)                                      \
        }

static const WireOp ops[] = {
        CALL(SYSTEM_INFO, "system.info", CHEAP, "", system_info),
        CALL(SYSTEM_TIME, "system.time", CHEAP, "", system_time),
        CALL(SYSTEM_UPTIME, "system.uptime", CHEAP, "", system_uptime),
        CALL(SYSTEM_ENV, "system.env", CHEAP, "", system_env),
        CALL(PROC_LIST, "proc.list", COSTLY, "", proc_list),
        CALL(PROC_SIGNAL, "proc.signal", COSTLY, "", proc_signal), /* own processes only */
        CALL(APP_INFO, "app.info", COSTLY, "", app_info),
        CALL(APP_LAUNCH, "app.launch", PROMPTING, "app.launch", app_launch),
        {.opcode = OP(FS_OPEN),
         .name = "fs.open",
         .request = D(fs_open_request),
         .reply = D(fs_open_reply),
         .reply_fds = 1,
         .cls = WIRE_CLASS_COSTLY,
         .rights = "fs.read fs.write"},
        CALL(FS_USAGE, "fs.usage", COSTLY, "storage", fs_usage),
        CALL(FS_LIST, "fs.list", COSTLY, "fs.read", fs_list),
        CALL(FS_STAT, "fs.stat", COSTLY, "fs.read", fs_stat),
        CALL(FS_MKDIR, "fs.mkdir", COSTLY, "fs.write", fs_mkdir),
        CALL(FS_RENAME, "fs.rename", COSTLY, "fs.write", fs_rename),
        CALL(FS_UNLINK, "fs.unlink", COSTLY, "fs.write", fs_unlink),
        CALL(TIMER_CREATE, "timer.create", COSTLY, "timer", timer_create),
        CALL(TIMER_CANCEL, "timer.cancel", COSTLY, "timer", timer_cancel),
        CALL(PERM_QUERY, "perm.query", CHEAP, "", perm_query),
        CALL(PERM_REQUEST, "perm.request", PROMPTING, "", perm_request),
        CALL(PERM_LIST, "perm.list", CHEAP, "", perm_list),
        CALL(NOTIFY_POST, "notify.post", PROMPTING, "notify", notify_post),
        CALL(MEMORY_STATS, "memory.stats", CHEAP, "", memory_stats),
        CALL(BUS_PUBLISH, "bus.publish", CHEAP, "bus.publish", bus_publish),
        CALL(BUS_SUBSCRIBE, "bus.subscribe", CHEAP, "bus.subscribe", bus_subscribe),
        CALL(BUS_UNSUBSCRIBE, "bus.unsubscribe", CHEAP, "", bus_unsubscribe),
        CALL(BUS_SEND, "bus.send", CHEAP, "bus.send", bus_send),
        CALL(BUS_REQUEST, "bus.request", CHEAP, "bus.send", bus_request),
        CALL(BUS_REPLY, "bus.reply", CHEAP, "", bus_reply),
        CALL(BUS_PUBLISH_BATCH, "bus.publish_batch", CHEAP, "bus.publish", bus_publish_batch),
        {.opcode = OP(NET_CONNECT),
         .name = "net.connect",
         .request = D(net_connect_request),
         .reply = D(net_connect_reply),
         .reply_fds = 1,
         .cls = WIRE_CLASS_COSTLY,
         .rights = "net.connect"},
        /* channel (docs/ipc.md "Secure channels"): open and accept answer with one end
         * of the channel's socketpair; open needs bus.send for the peer. */
        {.opcode = OP(CHANNEL_OPEN),
         .name = "channel.open",
         .request = D(channel_open_request),
         .reply = D(channel_open_reply),
         .reply_fds = 1,
         .cls = WIRE_CLASS_COSTLY,
         .rights = "bus.send"},
        {.opcode = OP(CHANNEL_ACCEPT),
         .name = "channel.accept",
         .request = D(channel_accept_request),
         .reply = D(channel_accept_reply),
         .reply_fds = 1,
         .cls = WIRE_CLASS_COSTLY,
         .rights = ""},
        CALL(CHANNEL_REFUSE, "channel.refuse", COSTLY, "", channel_refuse),
        CALL(CHANNEL_KERNEL_KEY, "channel.kernel_key", CHEAP, "", channel_kernel_key),
        /* keystore (docs/ipc.md): create, delete and list write or read the
         * keystore's file; the others are one row read and a libsodium operation. */
        CALL(KEYSTORE_CREATE, "keystore.create", COSTLY, "keystore", keystore_create),
        CALL(KEYSTORE_SIGN, "keystore.sign", CHEAP, "keystore", keystore_sign),
        CALL(KEYSTORE_VERIFY, "keystore.verify", CHEAP, "", keystore_verify),
        CALL(KEYSTORE_SEAL, "keystore.seal", CHEAP, "keystore", keystore_seal),
        CALL(KEYSTORE_OPEN, "keystore.open", CHEAP, "keystore", keystore_open),
        CALL(KEYSTORE_PUBLIC_KEY, "keystore.public_key", CHEAP, "keystore", keystore_public_key),
        CALL(KEYSTORE_DELETE, "keystore.delete", COSTLY, "keystore", keystore_delete),
        CALL(KEYSTORE_LIST, "keystore.list", COSTLY, "keystore", keystore_list),
        CALL(KEYSTORE_PEER_PUBLIC_KEY, "keystore.peer_public_key", CHEAP, "bus.send",
             keystore_peer_public_key),
        {.opcode = OP(IPC_SEM_CREATE),
         .name = "ipc.sem_create",
         .request = D(ipc_sem_create_request),
         .reply = D(ipc_handle_reply),
         .reply_fds = 1,
         .cls = WIRE_CLASS_COSTLY,
         .rights = "ipc.sem"},
        {.opcode = OP(IPC_SEM_OPEN),
         .name = "ipc.sem_open",
         .request = D(ipc_open_request),
         .reply = D(ipc_handle_reply),
         .reply_fds = 1,
         .cls = WIRE_CLASS_COSTLY,
         .rights = "ipc.sem"},
        {.opcode = OP(IPC_QUEUE_CREATE),
         .name = "ipc.queue_create",
         .request = D(ipc_queue_create_request),
         .reply = D(ipc_handle_reply),
         .reply_fds = 1,
         .cls = WIRE_CLASS_COSTLY,
         .rights = "ipc.queue"},
        {.opcode = OP(IPC_QUEUE_OPEN),
         .name = "ipc.queue_open",
         .request = D(ipc_open_request),
         .reply = D(ipc_handle_reply),
         .reply_fds = 1,
         .cls = WIRE_CLASS_COSTLY,
         .rights = "ipc.queue"},
        /* send and receive act on a handle made under ipc.queue (closed by a revoke) */
        CALL(IPC_QUEUE_SEND, "ipc.queue_send", CHEAP, "", ipc_queue_send),
        CALL(IPC_QUEUE_RECEIVE, "ipc.queue_receive", CHEAP, "", ipc_queue_receive),
        /* ipc (docs/ipc.md): pipes, channels, shared memory, and every kind's handles. */
        CALL_FDS(IPC_PIPE_CREATE, "ipc.pipe_create", COSTLY, "ipc.pipe bus.send", ipc_handle,
                 ipc_pipe_create, 0, 1),
        CALL_FDS(IPC_SHM_CREATE, "ipc.shm_create", COSTLY, "ipc.shm", ipc_handle, ipc_shm_create, 1,
                 0),
        CALL_FDS(IPC_SHM_OPEN, "ipc.shm_open", COSTLY, "ipc.shm", ipc_handle, ipc_open, 0, 1),
        CALL_FDS(IPC_ACCEPT, "ipc.accept", COSTLY, "ipc.pipe ipc.shm ipc.sem ipc.queue", ipc_handle,
                 ipc_accept, 0, 1),
        CALL(IPC_PASS, "ipc.pass", CHEAP, "bus.send", ipc_pass),
        CALL(IPC_CLOSE, "ipc.close", CHEAP, "", ipc_close),
        CALL(IPC_OFFER, "ipc.offer", CHEAP, "", ipc_offer),
        CALL(IPC_LIST, "ipc.list", CHEAP, "", ipc_list),
        EVENT(EVENT_TIMER_FIRED, "event.timer_fired", timer_fired_event),
        EVENT(EVENT_BUS_MESSAGE, "event.bus_message", bus_message_event),
        EVENT(EVENT_PERM_REVOKED, "event.perm_revoked", perm_revoked_event),
        EVENT(EVENT_MEMORY_PRESSURE, "event.memory_pressure", memory_pressure_event),
        EVENT(EVENT_BUS_MESSAGES, "event.bus_messages", bus_messages_event),
        EVENT(EVENT_KERNEL_RESTARTED, "event.kernel_restarted", kernel_restarted_event),
        EVENT(EVENT_CHANNEL_REQUEST, "event.channel_request", channel_request_event),
        EVENT(EVENT_CHANNEL_CANCELLED, "event.channel_cancelled", channel_cancelled_event),
        EVENT(EVENT_IPC_OFFERED, "event.ipc_offered", ipc_offered_event),
        EVENT(EVENT_IPC_CLOSED, "event.ipc_closed", ipc_closed_event),
};

const WireOp *wire_op_lookup(uint16_t opcode)
{
        /* A few dozen entries: a scan beats anything cleverer. */
        for (size_t i = 0; i < ELEMENTSOF(ops); i++)
                if (ops[i].opcode == opcode)
                        return &ops[i];
        return NULL;
}

const WireOp *wire_ops(size_t *ret_n)
{
        *ret_n = ELEMENTSOF(ops);
        return ops;
}

/* A protobuf-c allocator that refuses to hand out more than WIRE_UNPACK_MEMORY_MAX
 * bytes in total during one unpack. Frees are not subtracted: the bound is on what
 * one message may cost, and the message is freed with the plain allocator later. */
typedef struct Budget {
        size_t used;
        bool exceeded;
} Budget;

static void *budget_alloc(void *data, size_t size)
{
        Budget *b = data;

        if (size > WIRE_UNPACK_MEMORY_MAX - b->used) {
                b->exceeded = true;
                return NULL;
        }
        b->used += size;
        return malloc(size);
}

static void budget_free(void *data, void *p)
{
        free(p);
}

bool wire_utf8_valid(const uint8_t *p, size_t n)
{
        return !memchr(p, 0, n) && utf8_is_valid(p, n);
}

/*
 * Walks the wire form of a message of type d and checks every string field (in
 * sub-messages too) with wire_utf8_valid(). protobuf-c checks neither: a NUL
 * would silently cut the C string it hands out ("documents\0x" reads as
 * "documents"), so what the broker checks and what it logs could differ.
 * Structural errors are left to protobuf-c. Returns 0 or -EBADMSG.
 */
static int check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                         unsigned depth)
{
        const uint8_t *end = p + len;

        if (depth > 16) /* the schema nests 2 deep */
                return -EBADMSG;
        while (p < end) {
                const ProtobufCFieldDescriptor *fd;
                ChannelField f;

                if (channel_next_field(&p, end, &f) < 0)
                        return -EBADMSG;
                if (f.wire_type != 2)
                        continue;
                fd = f.number <= UINT32_MAX
                             ? protobuf_c_message_descriptor_get_field(d, (unsigned)f.number)
                             : NULL;
                if (fd && fd->type == PROTOBUF_C_TYPE_STRING && !wire_utf8_valid(f.data, f.len))
                        return -EBADMSG;
                if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE &&
                    check_strings(fd->descriptor, f.data, f.len, depth + 1) < 0)
                        return -EBADMSG;
        }
        return 0;
}

int wire_unpack(const ChannelFrame *f, ProtobufCMessage **ret)
{
        const ProtobufCMessageDescriptor *d;
        const WireOp *op;
        unsigned want_fds = 0;
        ProtobufCMessage *m;
        Budget budget = {};
        ProtobufCAllocator allocator = {
                .alloc = budget_alloc,
                .free = budget_free,
                .allocator_data = &budget,
        };

        op = wire_op_lookup(f->opcode);
        if (!op)
                return -EOPNOTSUPP;

        if (f->flags & CHANNEL_FLAG_CANCEL) {
                if (!op->request)
                        return -EOPNOTSUPP;
                if (f->n_fds != 0)
                        return -EPROTO;
                *ret = NULL;
                return 0;
        }
        if (f->flags & CHANNEL_FLAG_EVENT)
                d = op->event;
        else if (f->flags & CHANNEL_FLAG_ERROR)
                d = op->reply ? &cella__v1__error_reply__descriptor : NULL;
        else if (f->flags & CHANNEL_FLAG_REPLY) {
                d = op->reply;
                want_fds = op->reply_fds;
        } else {
                d = op->request;
                want_fds = op->request_fds;
        }
        if (!d)
                return -EOPNOTSUPP;
        if (f->n_fds != want_fds)
                return -EPROTO;

        if (check_strings(d, f->body, f->body_len, 0) < 0)
                return -EBADMSG;
        m = protobuf_c_message_unpack(d, &allocator, f->body_len, f->body);
        if (!m)
                return budget.exceeded ? -ENOBUFS : -EBADMSG;

        *ret = m;
        return 0;
}

int wire_pack(const ProtobufCMessage *msg, void *buf, size_t size)
{
        size_t n = protobuf_c_message_get_packed_size(msg);

        if (n > size || n > CHANNEL_BODY_MAX)
                return -EMSGSIZE;
        return (int)protobuf_c_message_pack(msg, buf);
}
