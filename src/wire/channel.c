/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "base/macro.h"
#include "wire/channel.h"

_Static_assert(CHANNEL_FDS_MAX <= 253, "SCM_MAX_FD");

static uint16_t get_le16(const uint8_t *p)
{
        uint16_t v;

        memcpy(&v, p, sizeof(v));
        return le16toh(v);
}

static uint32_t get_le32(const uint8_t *p)
{
        uint32_t v;

        memcpy(&v, p, sizeof(v));
        return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
        uint64_t v;

        memcpy(&v, p, sizeof(v));
        return le64toh(v);
}

static void put_le16(uint8_t *p, uint16_t v)
{
        v = htole16(v);
        memcpy(p, &v, sizeof(v));
}

static void put_le32(uint8_t *p, uint32_t v)
{
        v = htole32(v);
        memcpy(p, &v, sizeof(v));
}

static void put_le64(uint8_t *p, uint64_t v)
{
        v = htole64(v);
        memcpy(p, &v, sizeof(v));
}

/* Checks the combinations of flags that mean something (see channel.h). */
static int flags_check(uint32_t flags, uint64_t request_id, size_t body_len)
{
        uint32_t kind = flags & (CHANNEL_FLAG_REPLY | CHANNEL_FLAG_EVENT | CHANNEL_FLAG_CANCEL);

        if (flags & ~CHANNEL_FLAGS_KNOWN)
                return -EINVAL;
        if (kind & (kind - 1)) /* more than one of REPLY, EVENT, CANCEL */
                return -EINVAL;
        if ((flags & CHANNEL_FLAG_ERROR) && kind != CHANNEL_FLAG_REPLY)
                return -EINVAL;
        if (kind == CHANNEL_FLAG_EVENT && request_id != 0)
                return -EINVAL;
        if (kind == CHANNEL_FLAG_CANCEL && body_len != 0)
                return -EINVAL;
        return 0;
}

int channel_decode(const void *buf, size_t len, ChannelFrame *ret)
{
        const uint8_t *p = buf;
        ChannelFrame f;
        uint32_t body_len;
        int r;

        if (len < CHANNEL_HEADER_SIZE)
                return -EBADMSG;
        if (get_le16(p) != CHANNEL_MAGIC_VERSION)
                return -EPROTONOSUPPORT;
        if (get_le16(p + 22) != 0)
                return -EINVAL;

        body_len = get_le32(p + 16);
        f = (ChannelFrame){
                .opcode = get_le16(p + 2),
                .flags = get_le32(p + 4),
                .request_id = get_le64(p + 8),
                .body = p + CHANNEL_HEADER_SIZE,
                .body_len = body_len,
                .n_fds = get_le16(p + 20),
        };

        r = flags_check(f.flags, f.request_id, body_len);
        if (r < 0)
                return r;
        if (body_len > CHANNEL_BODY_MAX)
                return -EMSGSIZE;
        if (body_len != len - CHANNEL_HEADER_SIZE)
                return -EBADMSG;
        if (f.n_fds > CHANNEL_FDS_MAX)
                return -EPROTO;
        if (f.n_fds > 0 && (f.flags & CHANNEL_FLAG_CANCEL))
                return -EPROTO;

        *ret = f;
        return 0;
}

int channel_encode_header(const ChannelFrame *frame, void *out)
{
        uint8_t *p = out;

        if (frame->flags & ~CHANNEL_FLAGS_KNOWN)
                return -EINVAL;
        if (frame->body_len > CHANNEL_BODY_MAX)
                return -EMSGSIZE;
        if (frame->n_fds > CHANNEL_FDS_MAX)
                return -E2BIG;

        put_le16(p, CHANNEL_MAGIC_VERSION);
        put_le16(p + 2, frame->opcode);
        put_le32(p + 4, frame->flags);
        put_le64(p + 8, frame->request_id);
        put_le32(p + 16, (uint32_t)frame->body_len);
        put_le16(p + 20, (uint16_t)frame->n_fds);
        put_le16(p + 22, 0);
        return 0;
}

int channel_send(int fd, const ChannelFrame *frame, const int *fds, unsigned n_fds, int send_flags)
{
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int) * CHANNEL_FDS_MAX)];
        } control;
        uint8_t header[CHANNEL_HEADER_SIZE];
        ChannelFrame f = *frame;
        struct iovec iov[2] = {
                {.iov_base = header, .iov_len = sizeof(header)},
                {.iov_base = (void *)frame->body, .iov_len = frame->body_len},
        };
        struct msghdr mh = {
                .msg_iov = iov,
                .msg_iovlen = frame->body_len > 0 ? 2 : 1,
        };
        ssize_t n;
        int r;

        f.n_fds = n_fds;
        r = channel_encode_header(&f, header);
        if (r < 0)
                return r;

        if (n_fds > 0) {
                struct cmsghdr *cmsg;

                memset(&control, 0, sizeof(control));
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                cmsg = CMSG_FIRSTHDR(&mh);
                cmsg->cmsg_level = SOL_SOCKET;
                cmsg->cmsg_type = SCM_RIGHTS;
                cmsg->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * n_fds);
        }

        n = RETRY_EINTR(sendmsg(fd, &mh, send_flags | MSG_NOSIGNAL));
        if (n < 0)
                return negative_errno();
        /* SOCK_SEQPACKET sends all or nothing; anything else means fd is not one. */
        if ((size_t)n != sizeof(header) + frame->body_len)
                return -EIO;
        return 0;
}

static void close_fds(int *fds, unsigned n)
{
        for (unsigned i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

int channel_recv(int fd, ChannelFrame *ret, void *buf, int *ret_fds, unsigned max_fds,
                 int recv_flags)
{
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int) * CHANNEL_FDS_MAX)];
        } control;
        struct iovec iov = {.iov_base = buf, .iov_len = CHANNEL_DATAGRAM_MAX};
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = CMSG_SPACE(sizeof(int) * (max_fds < 1 ? 1 : max_fds)),
        };
        ssize_t n;

        if (max_fds > CHANNEL_FDS_MAX)
                return -EINVAL;
        /* CMSG_SPACE() rounds up: with max_fds 1 there is room for 2 ints on 64-bit.
         * Trim so that more than max_fds fds always shows as MSG_CTRUNC. */
        if (max_fds < 1)
                mh.msg_controllen = CMSG_SPACE(0);
        else
                mh.msg_controllen = CMSG_LEN(sizeof(int) * max_fds);

        n = RETRY_EINTR(recvmsg(fd, &mh, recv_flags | MSG_CMSG_CLOEXEC));
        if (n < 0)
                return negative_errno();

        return channel_judge(&mh, (size_t)n, buf, max_fds, ret, ret_fds);
}

int channel_judge(const struct msghdr *mh, size_t len, const void *buf, unsigned max_fds,
                  ChannelFrame *ret, int *ret_fds)
{
        int fds[CHANNEL_FDS_MAX];
        unsigned n_fds = 0;
        bool foreign = false;
        ChannelFrame f;
        int r;

        /* Collect every fd that arrived before judging anything, so each error path
         * can close them all. */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR((struct msghdr *)mh, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                        for (size_t i = 0; i < k; i++) {
                                int x;

                                memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                if (n_fds < CHANNEL_FDS_MAX)
                                        fds[n_fds++] = x;
                                else
                                        safe_close(x);
                        }
                } else
                        foreign = true;
        }

        if (len == 0)
                r = -ECONNRESET;
        else if (mh->msg_flags & MSG_TRUNC)
                r = -EMSGSIZE;
        else if ((mh->msg_flags & MSG_CTRUNC) || foreign || n_fds > max_fds)
                r = -EPROTO;
        else {
                r = channel_decode(buf, len, &f);
                if (r >= 0 && f.n_fds != n_fds)
                        r = -EPROTO;
        }
        if (r < 0) {
                close_fds(fds, n_fds);
                return r;
        }
        if (n_fds > 0)
                memcpy(ret_fds, fds, sizeof(int) * n_fds);
        *ret = f;
        return 0;
}

/* Appends a protobuf varint; returns the new position or NULL if out of room. */
static uint8_t *put_varint(uint8_t *p, const uint8_t *end, uint64_t v)
{
        do {
                if (p >= end)
                        return NULL;
                *p++ = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
                v >>= 7;
        } while (v);
        return p;
}

int channel_error_body(int error, const char *message, void *out, size_t size)
{
        uint8_t *p = out, *end = p + size;
        unsigned e = error < 0 ? (unsigned)-(int64_t)error : (unsigned)error;
        size_t len = message ? strnlen(message, CHANNEL_ERROR_MESSAGE_MAX + 1) : 0;

        if (len > CHANNEL_ERROR_MESSAGE_MAX) {
                len = CHANNEL_ERROR_MESSAGE_MAX;
                /* Do not cut a UTF-8 sequence: back off over continuation bytes. */
                while (len > 0 && ((uint8_t)message[len] & 0xc0) == 0x80)
                        len--;
        }

        if (e != 0) {                         /* proto3 leaves defaults out */
                p = put_varint(p, end, 0x08); /* field 1, varint */
                if (p)
                        p = put_varint(p, end, e);
        }
        if (p && len > 0) {
                p = put_varint(p, end, 0x12); /* field 2, length-delimited */
                if (p)
                        p = put_varint(p, end, len);
                if (p && (size_t)(end - p) < len)
                        p = NULL;
                if (p) {
                        memcpy(p, message, len);
                        p += len;
                }
        }
        if (!p)
                return -ENOBUFS;
        return (int)(p - (uint8_t *)out);
}

int channel_send_error(int fd, uint16_t opcode, uint64_t request_id, int error, const char *message,
                       int send_flags)
{
        uint8_t body[CHANNEL_ERROR_BODY_MAX];
        int n;

        n = channel_error_body(error, message, body, sizeof(body));
        if (n < 0)
                return n;

        return channel_send(fd,
                            &(ChannelFrame){
                                    .opcode = opcode,
                                    .flags = CHANNEL_FLAG_REPLY | CHANNEL_FLAG_ERROR,
                                    .request_id = request_id,
                                    .body = body,
                                    .body_len = (size_t)n,
                            },
                            NULL, 0, send_flags);
}

int channel_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret)
{
        uint64_t v = 0;

        for (unsigned shift = 0; shift < 64; shift += 7) {
                uint8_t b;

                if (*p >= end)
                        return -EBADMSG;
                b = *(*p)++;
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

int channel_next_field(const uint8_t **p, const uint8_t *end, ChannelField *ret)
{
        uint64_t key, n;

        if (channel_get_varint(p, end, &key) < 0)
                return -EBADMSG;
        *ret = (ChannelField){.number = key >> 3, .wire_type = (unsigned)(key & 7)};
        switch (ret->wire_type) {
        case 0:
                return channel_get_varint(p, end, &ret->varint);
        case 1:
        case 5:
                n = ret->wire_type == 1 ? 8 : 4;
                break;
        case 2:
                if (channel_get_varint(p, end, &n) < 0)
                        return -EBADMSG;
                break;
        default: /* groups, or not a wire type */
                return -EBADMSG;
        }
        if (n > (uint64_t)(end - *p))
                return -EBADMSG;
        ret->data = *p;
        ret->len = (size_t)n;
        *p += n;
        return 0;
}

int channel_parse_error(const void *body, size_t len, int *ret_error, char *ret_message,
                        size_t message_size)
{
        const uint8_t *p = body, *end = p + len, *msg = NULL;
        uint64_t errnum = 0, msg_len = 0;

        while (p < end) {
                ChannelField f;

                if (channel_next_field(&p, end, &f) < 0 || f.number == 0)
                        return -EBADMSG;
                /* errnum is field 1, an int32 (varint); message is field 2, a string. */
                if ((f.number == 1 && f.wire_type != 0) || (f.number == 2 && f.wire_type != 2))
                        return -EBADMSG;
                if (f.number == 1)
                        errnum = f.varint;
                else if (f.number == 2) {
                        msg = f.data;
                        msg_len = f.len;
                }
        }

        /* int32 on the wire: negative values come as 10-byte varints; take the low
         * 32 bits as protobuf does, and accept only what an errno can be. */
        {
                int32_t e = (int32_t)(uint32_t)errnum;

                *ret_error = e > 0 && e < 4096 ? -e : -EIO;
        }
        if (ret_message && message_size > 0) {
                size_t k = msg_len < message_size - 1 ? (size_t)msg_len : message_size - 1;

                if (k > 0)
                        memcpy(ret_message, msg, k);
                ret_message[k] = 0;
        }
        return 0;
}
