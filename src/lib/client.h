/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libcella's internals shared by client.c (the channel) and calls.c (the typed calls). */

#include <protobuf-c/protobuf-c.h>

#include "cella.h"

/* Every symbol here is hidden: -fvisibility=hidden, and not cella_* in the version script. */

/* Scope cleanup of a reply (cella_reply_free()) and of an unpacked message. */
static inline void client_reply_freep(CellaReply **r)
{
        cella_reply_free(*r);
}

static inline void client_unpacked_freep(ProtobufCMessage **m)
{
        if (*m)
                protobuf_c_message_free_unpacked(*m, NULL);
}

#define _cleanup_reply_    __attribute__((cleanup(client_reply_freep)))
#define _cleanup_unpacked_ __attribute__((cleanup(client_unpacked_freep)))

/*
 * Packs req and makes a synchronous call of opcode. Returns 0 and *ret (the reply,
 * possibly carrying a kernel error), or a local/channel error as cella_call().
 */
int client_call(Cella *c, uint16_t opcode, const ProtobufCMessage *req, CellaReply **ret);

/* client_call() with n_fds fds from fds[] sent along (the caller keeps its copies). */
int client_call_fds(Cella *c, uint16_t opcode, const ProtobufCMessage *req, const int *fds,
                    unsigned n_fds, CellaReply **ret);

/* Packs req and sends it as cella_call_async() does. */
int client_call_async(Cella *c, uint16_t opcode, const ProtobufCMessage *req, CellaReplyFn cb,
                      void *userdata, uint64_t *ret_request_id);

/*
 * Decodes a successful reply's body as the reply message of its opcode (and checks
 * its fd count). Returns 0 and *ret (protobuf_c_message_free_unpacked(*ret, NULL)),
 * reply->error if it carries one, or -EBADMSG/-EPROTO/-ENOBUFS.
 */
int client_reply_unpack(const CellaReply *reply, ProtobufCMessage **ret);

/*
 * ipc (src/lib/ipc.c), for every kind's calls (ipc-semq.c too).
 * client_ipc_offers_pack(): offers[0..n) (n <= CELLA_IPC_OFFERS_MAX) as IpcOffer
 * messages into msgs (n entries) and ptrs; -EINVAL for a bad one (neither or both of
 * app and topic, no mode or an unknown one, too long).
 * client_ipc_handle_call(): a call whose reply is an IpcHandleReply, with in_fd sent
 * along (-1: none) and, when want_fd, the reply's one fd into *ret_fd; *ret (may be
 * NULL) the handle as the kernel described it. Returns 0, -EBADMSG (a reply without
 * a handle), or the errors of the call.
 */
struct Cella__V1__IpcOffer;
int client_ipc_offers_pack(const CellaIpcOffer *offers, size_t n, struct Cella__V1__IpcOffer *msgs,
                           struct Cella__V1__IpcOffer **ptrs);
int client_ipc_handle_call(Cella *c, uint16_t opcode, const ProtobufCMessage *req, int in_fd,
                           bool want_fd, CellaIpcHandle *ret, int *ret_fd);

/*
 * Event delivery for calls.c. client_event_emit(): hands ev to the app's event
 * callback (nothing if none is set). client_event_bus_messages(): splits a
 * BusMessagesEvent body of len bytes into one CELLA_EVENT_BUS_MESSAGE per message,
 * in order, through client_event_emit(); returns 0, or -EBADMSG/-ENOBUFS if the body
 * does not decode (nothing was delivered: the caller hands the frame over undecoded).
 */
void client_event_emit(Cella *c, const CellaEvent *ev);
int client_event_bus_messages(Cella *c, const void *body, size_t len);

/* The Cella's cache of the kernel's signing key (32 bytes) and whether it is set. */
uint8_t *client_kernel_key(Cella *c, bool **ret_have);
