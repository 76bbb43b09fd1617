/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The channel's framing: one frame per SOCK_SEQPACKET datagram, a fixed 24-byte
 * little-endian header and then the body, with up to CHANNEL_FDS_MAX fds attached
 * as SCM_RIGHTS. Shared by the supervisor's broker and by libcella, so it depends on
 * nothing but libc (docs/protocol.md, "Frame").
 *
 *   offset  size  field
 *   0       2     magic/version  CHANNEL_MAGIC_VERSION (0xCE01)
 *   2       2     opcode
 *   4       4     flags          CHANNEL_FLAG_*
 *   8       8     request_id
 *   16      4     body_len       <= CHANNEL_BODY_MAX
 *   20      2     n_fds          <= CHANNEL_FDS_MAX, == fds attached
 *   22      2     reserved       0
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHANNEL_MAGIC_VERSION 0xCE01u /* magic 0xCE, protocol version 1 */
#define CHANNEL_HEADER_SIZE   24u
#define CHANNEL_BODY_MAX      (64u * 1024u) /* bytes; bigger payloads go in a sealed memfd */
#define CHANNEL_FDS_MAX       16u           /* fds per frame */
#define CHANNEL_DATAGRAM_MAX  (CHANNEL_HEADER_SIZE + CHANNEL_BODY_MAX)

/* Frame flags. A request has none of REPLY, EVENT, CANCEL. */
#define CHANNEL_FLAG_REPLY  0x1u /* answers the request with the same request_id */
#define CHANNEL_FLAG_EVENT  0x2u /* kernel -> app, unsolicited, request_id 0 */
#define CHANNEL_FLAG_ERROR  0x4u /* with REPLY: the body is an ErrorReply */
#define CHANNEL_FLAG_CANCEL 0x8u /* app -> kernel: abandon request_id; empty body */
#define CHANNEL_FLAGS_KNOWN 0xfu

typedef struct ChannelFrame {
        uint16_t opcode;     /* Opcode of proto/cella.proto; not checked by the framing */
        uint32_t flags;      /* CHANNEL_FLAG_* */
        uint64_t request_id; /* the caller's id; 0 on events */
        const void *body;    /* body_len bytes; on receive, points into the caller's buffer */
        size_t body_len;     /* bytes, <= CHANNEL_BODY_MAX */
        unsigned n_fds;      /* from the header; on receive equal to the fds received */
} ChannelFrame;

/*
 * Decodes one datagram of len bytes: the pure part of channel_recv(), what the
 * fuzzer calls. On success fills *ret (body pointing into buf, n_fds from the
 * header, which the caller must compare with the fds that arrived).
 * Returns 0, or:
 *   -EBADMSG          shorter than a header, or body_len != len - 24
 *   -EPROTONOSUPPORT  wrong magic or version
 *   -EINVAL           reserved field or unknown flag bits set, or a flag combination
 *                     that means nothing (ERROR without REPLY, two of REPLY/EVENT/CANCEL,
 *                     an EVENT with a request_id, a CANCEL with a body)
 *   -EMSGSIZE         body_len > CHANNEL_BODY_MAX
 *   -EPROTO           n_fds > CHANNEL_FDS_MAX, or fds on a CANCEL frame
 * *ret is written only on success.
 */
int channel_decode(const void *buf, size_t len, ChannelFrame *ret);

/*
 * Encodes the header of frame (with frame->n_fds) into out (CHANNEL_HEADER_SIZE
 * bytes). The body is not copied. Returns 0, or -EMSGSIZE (body too large),
 * -EINVAL (unknown flags), -E2BIG (n_fds > CHANNEL_FDS_MAX).
 */
int channel_encode_header(const ChannelFrame *frame, void *out);

/*
 * Sends frame as one datagram on the SOCK_SEQPACKET socket fd, with the n_fds fds
 * of fds[] attached (SCM_RIGHTS; the caller keeps its copies). The header's n_fds
 * is n_fds (frame->n_fds is not read). send_flags: extra sendmsg(2) flags
 * (MSG_DONTWAIT); MSG_NOSIGNAL is always added.
 * Returns 0, or -EMSGSIZE (body > CHANNEL_BODY_MAX), -E2BIG (> CHANNEL_FDS_MAX fds),
 * -EINVAL (unknown flags), -EPIPE/-ECONNRESET (peer gone), -EAGAIN (would block,
 * with MSG_DONTWAIT), or another -errno of sendmsg.
 */
int channel_send(int fd, const ChannelFrame *frame, const int *fds, unsigned n_fds, int send_flags);

/*
 * Receives one frame from the SOCK_SEQPACKET socket fd into buf, which must hold
 * CHANNEL_DATAGRAM_MAX bytes; ret->body points into it. Up to max_fds (<=
 * CHANNEL_FDS_MAX) fds are accepted into ret_fds[] (O_CLOEXEC, owned by the caller
 * on success). recv_flags: extra recvmsg flags (MSG_DONTWAIT).
 * Returns 0 and fills *ret, or (never leaking an fd that arrived: all are closed):
 *   -ECONNRESET       end of stream (the peer closed; a zero-length datagram reads the same)
 *   -EMSGSIZE         the datagram was larger than CHANNEL_DATAGRAM_MAX (MSG_TRUNC)
 *   -EPROTO           more fds than max_fds arrived (MSG_CTRUNC), the header's n_fds
 *                     differs from the fds received, or a control message other
 *                     than SCM_RIGHTS arrived
 *   -EPROTONOSUPPORT, -EBADMSG, -EINVAL: as channel_decode()
 *   -EAGAIN           nothing to read (with MSG_DONTWAIT or a non-blocking fd)
 *   another -errno of recvmsg.
 * A failed frame is consumed: the next call reads the next datagram.
 */
int channel_recv(int fd, ChannelFrame *ret, void *buf, int *ret_fds, unsigned max_fds,
                 int recv_flags);

struct msghdr;

/*
 * The judging half of channel_recv(), for a caller that received the datagram
 * itself (the broker reads many with recvmmsg): mh as recvmsg filled it (its
 * flags and control messages), len bytes of it at buf. Same returns as
 * channel_recv() (but no -EAGAIN); every fd that came is closed on failure and
 * handed to ret_fds[] on success.
 */
int channel_judge(const struct msghdr *mh, size_t len, const void *buf, unsigned max_fds,
                  ChannelFrame *ret, int *ret_fds);

#define CHANNEL_ERROR_MESSAGE_MAX 255u
#define CHANNEL_ERROR_BODY_MAX    (16u + CHANNEL_ERROR_MESSAGE_MAX)

/*
 * Builds the body of an error reply: an ErrorReply{errnum, message} protobuf into
 * out (size bytes; CHANNEL_ERROR_BODY_MAX is always enough). error is a negative
 * or positive errno (stored positive); message may be NULL and is cut at 255 bytes
 * (on a UTF-8 character boundary). Returns the body length in bytes, or -ENOBUFS.
 * Hand-encoded so the framing needs no protobuf library; the result decodes as
 * cella.v1.ErrorReply.
 */
int channel_error_body(int error, const char *message, void *out, size_t size);

/*
 * Sends an error reply to request_id: flags REPLY|ERROR, the request's opcode, an
 * ErrorReply body (channel_error_body()). Returns 0 or -errno as channel_send().
 */
int channel_send_error(int fd, uint16_t opcode, uint64_t request_id, int error, const char *message,
                       int send_flags);

/*
 * Parses an ErrorReply body (the inverse of channel_error_body(); unknown fields
 * are skipped as protobuf requires). On success *ret_error is the errno as a
 * negative number (-EIO if the body carries none or a value out of range) and, if
 * ret_message is not NULL, the message is copied NUL-terminated into it (size
 * message_size bytes, cut if longer). Returns 0 or -EBADMSG.
 */
int channel_parse_error(const void *body, size_t len, int *ret_error, char *ret_message,
                        size_t message_size);

/*
 * Reads one protobuf base-128 varint at *p (which must be < end) and advances *p past
 * it (protobuf encoding docs, "Base 128 Varints": at most 10 bytes for 64 bits).
 * Returns 0 and *ret, or -EBADMSG if it runs past end or beyond 64 bits. For the
 * hand-written scans of bodies (error replies here, string checks in wire.c).
 */
int channel_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret);

/* One field of a protobuf body, as channel_next_field() reads it. */
typedef struct ChannelField {
        uint64_t number;     /* field number (0 is not a valid one: the caller decides) */
        unsigned wire_type;  /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
        uint64_t varint;     /* the value, for wire type 0 */
        const uint8_t *data; /* the bytes, for wire types 1, 2 and 5 */
        size_t len;          /* their count */
} ChannelField;

/*
 * Reads the field at *p (which must be < end) and advances *p past it (protobuf
 * encoding docs, "Message Structure"). Returns 0 and *ret, or -EBADMSG if it runs
 * past end, or its wire type is a group (3, 4) or not one (6, 7). For the
 * hand-written scans of bodies: error replies here, the string check in wire.c,
 * libcella's split of batched events.
 */
int channel_next_field(const uint8_t **p, const uint8_t *end, ChannelField *ret);

/* True if the frame is a request (none of REPLY, EVENT, CANCEL). */
static inline bool channel_frame_is_request(const ChannelFrame *f)
{
        return (f->flags & (CHANNEL_FLAG_REPLY | CHANNEL_FLAG_EVENT | CHANNEL_FLAG_CANCEL)) == 0;
}
