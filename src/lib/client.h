/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libcella's internals shared by client.c (the channel) and calls.c (the typed calls). */

#include <protobuf-c/protobuf-c.h>

#include "cella.h"

/* Every symbol here is hidden: -fvisibility=hidden, and not cella_* in the version script. */

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
