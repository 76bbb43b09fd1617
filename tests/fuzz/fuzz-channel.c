/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the wire protocol's decoders: any bytes in, as the broker
 * and libcella would meet them.
 *   1. The whole input as one datagram: channel_decode() (what channel_recv() runs on
 *      every datagram), then, if the frame is well-formed, wire_unpack() of its body
 *      by its opcode and kind, and re-packing of what came out.
 *   2. The input after 2 bytes as a body: byte 0 picks an opcode of the table, byte
 *      1 the kind (request, reply, error reply, event, cancel) and whether fds came:
 *      so every message type's protobuf-c decoder gets fuzzed, not only those a
 *      random header happens to name. And channel_parse_error() on it.
 * Build: CC=clang meson setup build-fuzz -Dfuzzing=true -Dtests=false
 * Run:   build-fuzz/tests/fuzz/fuzz-channel tests/fuzz/corpus/channel
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/channel.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t packed[4 * CHANNEL_BODY_MAX];

/* Unpacks f's body; on success checks the message packs again within bounds. */
static void unpack(const ChannelFrame *f)
{
        ProtobufCMessage *m = (void *)1;
        int r = wire_unpack(f, &m);

        if (r < 0) {
                if (m != (void *)1) /* output written on failure */
                        abort();
                if (r != -EOPNOTSUPP && r != -EPROTO && r != -EBADMSG && r != -ENOBUFS)
                        abort();
                return;
        }
        if (!m) {
                if (!(f->flags & CHANNEL_FLAG_CANCEL))
                        abort();
                return;
        }
        /* Re-encoding keeps unknown fields and may only shrink non-minimal varints;
         * it never needs more than a few times the input. */
        if (protobuf_c_message_get_packed_size(m) > sizeof(packed))
                abort();
        protobuf_c_message_pack(m, packed);
        protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const uint32_t kinds[] = {
                0,
                CHANNEL_FLAG_REPLY,
                CHANNEL_FLAG_REPLY | CHANNEL_FLAG_ERROR,
                CHANNEL_FLAG_EVENT,
                CHANNEL_FLAG_CANCEL,
        };
        ChannelFrame f = {0};
        const WireOp *ops;
        size_t n_ops;
        int r;

        if (size > CHANNEL_DATAGRAM_MAX)
                return -1; /* channel_recv() never sees more: MSG_TRUNC */

        /* 1. One datagram. */
        r = channel_decode(data, size, &f);
        if (r == 0) {
                if ((const uint8_t *)f.body != data + CHANNEL_HEADER_SIZE ||
                    f.body_len != size - CHANNEL_HEADER_SIZE || f.body_len > CHANNEL_BODY_MAX ||
                    f.n_fds > CHANNEL_FDS_MAX || (f.flags & ~CHANNEL_FLAGS_KNOWN))
                        abort();
                unpack(&f);
        } else if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -EINVAL && r != -EMSGSIZE &&
                   r != -EPROTO)
                abort();

        /* 2. A body for a chosen opcode and kind. */
        if (size < 2)
                return 0;
        ops = wire_ops(&n_ops);
        f = (ChannelFrame){
                .opcode = ops[data[0] % n_ops].opcode,
                .flags = kinds[(data[1] & 0x7f) % 5],
                .request_id = 1,
                .body = data + 2,
                .body_len = size - 2,
                .n_fds = data[1] >> 7,
        };
        if (f.body_len <= CHANNEL_BODY_MAX)
                unpack(&f);

        {
                char message[CHANNEL_ERROR_MESSAGE_MAX + 1];
                int e = 0;

                if (channel_parse_error(data + 2, size - 2, &e, message, sizeof(message)) == 0 &&
                    (e >= 0 || e < -4095 || strlen(message) > CHANNEL_ERROR_MESSAGE_MAX))
                        abort();
        }
        return 0;
}
