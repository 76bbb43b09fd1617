/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The protocol layer above the framing: the one opcode table, and a bounded decoder.
 * For each opcode (numbers: proto/cella.proto's Opcode, libcella's CELLA_OP_*) the
 * table holds its name, which body (a cella.v1 message) and how many fds go with each
 * frame kind, the rate-limit class the kernel charges a request to, and the
 * catalogue rights (policy/capability.c) it may check. The broker keys its handlers
 * (src/broker/calls) by opcode and reads class and name from here; libcella and the
 * Lua host read the bodies and names. docs/protocol.md's table is this one in prose:
 * test-broker-calls checks that every opcode has a name, a handler, rights from the
 * catalogue and an entry there. Shared by the broker, libcella and cella-lua.
 */

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/channel.h"
#include "cella.pb-c.h"

/* Memory one unpacked body may take, bytes. protobuf-c allocates more than the
 * wire size (a 2-byte empty sub-message becomes a struct of ~80 bytes); this caps
 * what a hostile 64 KiB body can cost. */
#define WIRE_UNPACK_MEMORY_MAX (1024u * 1024u)

/* The rate-limit class of a request (BrokerOptions' rate_* and burst_*: token buckets
 * per app and class, policy/ratelimit.h). Events are not charged. */
typedef enum WireClass {
        WIRE_CLASS_NONE,      /* events */
        WIRE_CLASS_CHEAP,     /* answered from memory: clocks, queries, the bus */
        WIRE_CLASS_COSTLY,    /* system calls or disk: files, processes, timers */
        WIRE_CLASS_PROMPTING, /* may reach the user: prompts, notifications, launches */
        _WIRE_CLASS_MAX,
} WireClass;

typedef struct WireOp {
        uint16_t opcode;                           /* Cella__V1__Opcode value */
        const char *name;                          /* "system.info", "event.timer_fired" */
        const ProtobufCMessageDescriptor *request; /* request body; NULL for events */
        const ProtobufCMessageDescriptor *reply;   /* reply body; NULL for events */
        const ProtobufCMessageDescriptor *event;   /* event body; NULL for requests */
        unsigned request_fds;                      /* fds a request carries, exactly */
        unsigned reply_fds;                        /* fds a successful reply carries */
        WireClass cls;                             /* WIRE_CLASS_NONE for events */
        /* The catalogue names of the rights a request may be checked against,
         * space-separated ("fs.read fs.write"); "" when it needs none (the scope comes
         * from the request's fields); NULL for events. */
        const char *rights;
} WireOp;

/* Returns the table entry of opcode, or NULL if this version does not know it. */
const WireOp *wire_op_lookup(uint16_t opcode);

/* Every known opcode, in table order: *ret_n entries. For tests and docs. */
const WireOp *wire_ops(size_t *ret_n);

/*
 * Decodes the body of frame f by its opcode and kind: a request's XRequest, a
 * reply's XReply, an error reply's ErrorReply, an event's event message. A CANCEL
 * has no body: returns 0 with *ret NULL. On success *ret is owned by the caller:
 * free it with protobuf_c_message_free_unpacked(*ret, NULL).
 * Returns 0, or:
 *   -EOPNOTSUPP  unknown opcode, or an opcode of the wrong kind (an event opcode
 *                on a request, a request opcode on an event)
 *   -EPROTO      the frame carries a different number of fds than the opcode takes
 *                (0 for every request; 1 for a successful fs.open reply; 0 otherwise)
 *   -EBADMSG     the body is not a valid encoding of the message, or a string in it
 *                is not UTF-8 or holds a NUL byte (protobuf-c checks neither)
 *   -ENOBUFS     decoding would take more than WIRE_UNPACK_MEMORY_MAX bytes
 */
int wire_unpack(const ChannelFrame *f, ProtobufCMessage **ret);

/*
 * True if p[0..n) is what the .proto promises every string is: UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, no code points past U+10FFFF) without NUL bytes.
 * n is in bytes; n == 0 is valid.
 */
bool wire_utf8_valid(const uint8_t *p, size_t n);

/*
 * Encodes msg into buf (size bytes). Returns the length in bytes, or -EMSGSIZE if
 * it does not fit (CHANNEL_BODY_MAX is the most a body may be).
 */
int wire_pack(const ProtobufCMessage *msg, void *buf, size_t size);
