/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The channel's framing, every malformed case sent for real over a SOCK_SEQPACKET
 * socketpair, and the protocol table's decoder. Each test checks that no fd leaks:
 * it counts /proc/self/fd before and after.
 */
#include <check.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/macro.h"
#include "wire/channel.h"
#include "wire/wire.h"

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the DIR's own fd */
}

static int fds_before;
static int sv[2] = {-EBADF, -EBADF};
static uint8_t buf[CHANNEL_DATAGRAM_MAX];

static void setup(void)
{
        fds_before = count_fds();
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static void teardown(void)
{
        sv[0] = safe_close(sv[0]);
        sv[1] = safe_close(sv[1]);
        ck_assert_int_eq(count_fds(), fds_before);
}

/* A raw header with every field chosen by the test, bad ones included. */
static void raw_header(uint8_t *h, uint16_t magic, uint16_t opcode, uint32_t flags, uint64_t id,
                       uint32_t body_len, uint16_t n_fds, uint16_t reserved)
{
        uint16_t v16;
        uint32_t v32;
        uint64_t v64;

        v16 = htole16(magic);
        memcpy(h, &v16, 2);
        v16 = htole16(opcode);
        memcpy(h + 2, &v16, 2);
        v32 = htole32(flags);
        memcpy(h + 4, &v32, 4);
        v64 = htole64(id);
        memcpy(h + 8, &v64, 8);
        v32 = htole32(body_len);
        memcpy(h + 16, &v32, 4);
        v16 = htole16(n_fds);
        memcpy(h + 20, &v16, 2);
        v16 = htole16(reserved);
        memcpy(h + 22, &v16, 2);
}

/* Sends len bytes of data as one datagram with n_fds fds, bypassing channel_send(). */
static void raw_send(int fd, const void *data, size_t len, const int *fds, unsigned n_fds)
{
        union {
                struct cmsghdr align;
                uint8_t b[CMSG_SPACE(sizeof(int) * 64)];
        } control = {};
        struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

        ck_assert_uint_le(n_fds, 64);
        if (n_fds > 0) {
                struct cmsghdr *c;

                mh.msg_control = control.b;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        ck_assert_int_eq(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

static void raw_send_frame(uint16_t magic, uint16_t opcode, uint32_t flags, uint64_t id,
                           uint32_t claimed_len, const void *body, size_t body_len,
                           uint16_t claimed_fds, const int *fds, unsigned n_fds, uint16_t reserved)
{
        static uint8_t d[CHANNEL_DATAGRAM_MAX + 16];

        ck_assert_uint_le(body_len, sizeof(d) - CHANNEL_HEADER_SIZE);
        raw_header(d, magic, opcode, flags, id, claimed_len, claimed_fds, reserved);
        if (body_len > 0)
                memcpy(d + CHANNEL_HEADER_SIZE, body, body_len);
        raw_send(sv[0], d, CHANNEL_HEADER_SIZE + body_len, fds, n_fds);
}

/* Receives on sv[1] expecting error want, then checks the channel still works. */
static void expect_recv(int want)
{
        int fds[CHANNEL_FDS_MAX];
        ChannelFrame f;
        int r;

        r = channel_recv(sv[1], &f, buf, fds, CHANNEL_FDS_MAX, MSG_DONTWAIT);
        ck_assert_msg(r == want, "channel_recv() = %d (%s), want %d (%s)", r, strerror(-r), want,
                      strerror(-want));

        /* The bad datagram was consumed whole: the next one reads fine. */
        ck_assert_int_eq(channel_send(sv[0], &(ChannelFrame){.opcode = 0x0101, .request_id = 99},
                                      NULL, 0, 0),
                         0);
        ck_assert_int_eq(channel_recv(sv[1], &f, buf, fds, CHANNEL_FDS_MAX, MSG_DONTWAIT), 0);
        ck_assert_uint_eq(f.request_id, 99);
}

/* A pipe's two ends, for fds to pass. */
static void make_fds(int *fds, unsigned n)
{
        for (unsigned i = 0; i < n; i += 2) {
                int p[2];

                ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
                fds[i] = p[0];
                if (i + 1 < n)
                        fds[i + 1] = p[1];
                else
                        safe_close(p[1]);
        }
}

static void close_all(int *fds, unsigned n)
{
        for (unsigned i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

START_TEST(test_roundtrip)
{
        static const char body[] = "hello, kernel";
        int out[2], in[CHANNEL_FDS_MAX];
        ChannelFrame f;
        char c = 0;

        make_fds(out, 2);
        ck_assert_int_eq(channel_send(sv[0],
                                      &(ChannelFrame){
                                              .opcode = 0x0401,
                                              .flags = CHANNEL_FLAG_REPLY,
                                              .request_id = 0x1122334455667788ull,
                                              .body = body,
                                              .body_len = sizeof(body),
                                      },
                                      out, 2, 0),
                         0);
        ck_assert_int_eq(channel_recv(sv[1], &f, buf, in, CHANNEL_FDS_MAX, 0), 0);
        ck_assert_uint_eq(f.opcode, 0x0401);
        ck_assert_uint_eq(f.flags, CHANNEL_FLAG_REPLY);
        ck_assert_uint_eq(f.request_id, 0x1122334455667788ull);
        ck_assert_uint_eq(f.body_len, sizeof(body));
        ck_assert_mem_eq(f.body, body, sizeof(body));
        ck_assert_uint_eq(f.n_fds, 2);

        /* Received fds are close-on-exec and are the same pipe. */
        ck_assert_int_eq(fcntl(in[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        ck_assert_int_eq(write(in[1], "x", 1), 1);
        ck_assert_int_eq(read(out[0], &c, 1), 1);
        ck_assert_int_eq(c, 'x');

        /* The header is little-endian at the documented offsets. */
        {
                uint8_t h[CHANNEL_HEADER_SIZE];

                ck_assert_int_eq(channel_encode_header(&(ChannelFrame){.opcode = 0x0102,
                                                                       .flags = CHANNEL_FLAG_EVENT,
                                                                       .body_len = 0x10203,
                                                                       .n_fds = 3},
                                                       h),
                                 -EMSGSIZE);
                ck_assert_int_eq(
                        channel_encode_header(&(ChannelFrame){.opcode = 0x0102,
                                                              .flags = CHANNEL_FLAG_EVENT,
                                                              .request_id = 0x0807060504030201ull,
                                                              .body_len = 0x1234,
                                                              .n_fds = 3},
                                              h),
                        0);
                static const uint8_t want[CHANNEL_HEADER_SIZE] = {
                        0x01, 0xce, 0x02, 0x01, 0x02, 0,    0, 0, 1, 2, 3, 4,
                        5,    6,    7,    8,    0x34, 0x12, 0, 0, 3, 0, 0, 0};
                ck_assert_mem_eq(h, want, sizeof(want));
        }

        close_all(out, 2);
        close_all(in, 2);
}
END_TEST

START_TEST(test_body_limit)
{
        static uint8_t big[CHANNEL_BODY_MAX + 1];
        int fds[CHANNEL_FDS_MAX];
        ChannelFrame f;

        /* Exactly 64 KiB: fine. */
        memset(big, 'a', sizeof(big));
        ck_assert_int_eq(channel_send(sv[0],
                                      &(ChannelFrame){.opcode = 0x0901,
                                                      .request_id = 1,
                                                      .body = big,
                                                      .body_len = CHANNEL_BODY_MAX},
                                      NULL, 0, 0),
                         0);
        ck_assert_int_eq(channel_recv(sv[1], &f, buf, fds, CHANNEL_FDS_MAX, 0), 0);
        ck_assert_uint_eq(f.body_len, CHANNEL_BODY_MAX);

        /* One more byte: channel_send() refuses it... */
        ck_assert_int_eq(channel_send(sv[0],
                                      &(ChannelFrame){.opcode = 0x0901,
                                                      .request_id = 1,
                                                      .body = big,
                                                      .body_len = CHANNEL_BODY_MAX + 1},
                                      NULL, 0, 0),
                         -EMSGSIZE);

        /* ...and a peer that sends it anyway, with a header telling the truth, is
         * cut by MSG_TRUNC: -EMSGSIZE, even with fds attached (closed). */
        {
                int p[2];

                make_fds(p, 2);
                raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0901, 0, 1, CHANNEL_BODY_MAX + 1, big,
                               sizeof(big), 2, p, 2, 0);
                close_all(p, 2);
                expect_recv(-EMSGSIZE);
        }

        /* A header claiming more than 64 KiB on a small datagram. */
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0901, 0, 1, CHANNEL_BODY_MAX + 1, big, 8, 0, NULL,
                       0, 0);
        expect_recv(-EMSGSIZE);
}
END_TEST

START_TEST(test_garbage)
{
        uint8_t g[64];

        for (size_t i = 0; i < sizeof(g); i++)
                g[i] = (uint8_t)(i * 37 + 11);
        raw_send(sv[0], g, sizeof(g), NULL, 0);
        expect_recv(-EPROTONOSUPPORT);

        /* Shorter than a header. */
        raw_send(sv[0], g, 10, NULL, 0);
        expect_recv(-EBADMSG);

        /* Right magic, next version. */
        raw_send_frame(0xCE02, 0x0101, 0, 1, 0, NULL, 0, 0, NULL, 0, 0);
        expect_recv(-EPROTONOSUPPORT);

        /* body_len disagrees with the datagram, both ways. */
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, 0, 1, 10, "12345", 5, 0, NULL, 0, 0);
        expect_recv(-EBADMSG);
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, 0, 1, 2, "12345", 5, 0, NULL, 0, 0);
        expect_recv(-EBADMSG);

        /* Reserved bits. */
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, 0, 1, 0, NULL, 0, 0, NULL, 0, 1);
        expect_recv(-EINVAL);
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, 0x10, 1, 0, NULL, 0, 0, NULL, 0, 0);
        expect_recv(-EINVAL);
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, 0x80000000u, 1, 0, NULL, 0, 0, NULL, 0, 0);
        expect_recv(-EINVAL);

        /* Flag combinations that mean nothing. */
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, CHANNEL_FLAG_ERROR, 1, 0, NULL, 0, 0, NULL, 0,
                       0);
        expect_recv(-EINVAL);
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, CHANNEL_FLAG_REPLY | CHANNEL_FLAG_EVENT, 1, 0,
                       NULL, 0, 0, NULL, 0, 0);
        expect_recv(-EINVAL);
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x8001, CHANNEL_FLAG_EVENT, 7, 0, NULL, 0, 0, NULL, 0,
                       0);
        expect_recv(-EINVAL);
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, CHANNEL_FLAG_CANCEL, 7, 1, "x", 1, 0, NULL, 0,
                       0);
        expect_recv(-EINVAL);
}
END_TEST

START_TEST(test_too_many_fds)
{
        int fds[CHANNEL_FDS_MAX + 1];

        make_fds(fds, CHANNEL_FDS_MAX + 1);
        ck_assert_int_eq(channel_send(sv[0], &(ChannelFrame){.opcode = 0x0101, .request_id = 1},
                                      fds, CHANNEL_FDS_MAX + 1, 0),
                         -E2BIG);

        /* Sent anyway: the receive control buffer holds 16, MSG_CTRUNC, -EPROTO, and
         * the 16 that did arrive are closed (teardown counts). */
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, 0, 1, 0, NULL, 0, CHANNEL_FDS_MAX + 1, fds,
                       CHANNEL_FDS_MAX + 1, 0);
        close_all(fds, CHANNEL_FDS_MAX + 1);
        expect_recv(-EPROTO);

        /* A header claiming 17 with none attached. */
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, 0, 1, 0, NULL, 0, CHANNEL_FDS_MAX + 1, NULL,
                       0, 0);
        expect_recv(-EPROTO);
}
END_TEST

START_TEST(test_fd_count_mismatch)
{
        int fds[2];

        make_fds(fds, 2);

        /* Header says 2, one attached. */
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, 0, 1, 0, NULL, 0, 2, fds, 1, 0);
        expect_recv(-EPROTO);

        /* Header says 0, two attached: both closed on receipt. */
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, 0, 1, 0, NULL, 0, 0, fds, 2, 0);
        expect_recv(-EPROTO);

        /* Fds on a cancel. */
        raw_send_frame(CHANNEL_MAGIC_VERSION, 0x0101, CHANNEL_FLAG_CANCEL, 1, 0, NULL, 0, 1, fds, 1,
                       0);
        expect_recv(-EPROTO);

        /* Fds with a frame that is bad for another reason are closed too. */
        raw_send_frame(0xBEEF, 0x0101, 0, 1, 0, NULL, 0, 2, fds, 2, 0);
        expect_recv(-EPROTONOSUPPORT);

        close_all(fds, 2);
}
END_TEST

START_TEST(test_small_control_buffer)
{
        int fds[3], in[CHANNEL_FDS_MAX];
        ChannelFrame f;

        make_fds(fds, 3);
        ck_assert_int_eq(
                channel_send(sv[0], &(ChannelFrame){.opcode = 0x0101, .request_id = 1}, fds, 3, 0),
                0);
        /* Room for 1 fd only: MSG_CTRUNC, -EPROTO, the one that came is closed. */
        ck_assert_int_eq(channel_recv(sv[1], &f, buf, in, 1, 0), -EPROTO);

        /* Room for none. */
        ck_assert_int_eq(
                channel_send(sv[0], &(ChannelFrame){.opcode = 0x0101, .request_id = 1}, fds, 1, 0),
                0);
        ck_assert_int_eq(channel_recv(sv[1], &f, buf, in, 0, 0), -EPROTO);

        /* Exactly enough. */
        ck_assert_int_eq(
                channel_send(sv[0], &(ChannelFrame){.opcode = 0x0101, .request_id = 1}, fds, 3, 0),
                0);
        ck_assert_int_eq(channel_recv(sv[1], &f, buf, in, 3, 0), 0);
        ck_assert_uint_eq(f.n_fds, 3);
        close_all(in, 3);

        ck_assert_int_eq(channel_recv(sv[1], &f, buf, in, CHANNEL_FDS_MAX + 1, 0), -EINVAL);
        close_all(fds, 3);
}
END_TEST

START_TEST(test_hangup)
{
        int fds[CHANNEL_FDS_MAX];
        ChannelFrame f;

        ck_assert_int_eq(channel_recv(sv[1], &f, buf, fds, CHANNEL_FDS_MAX, MSG_DONTWAIT), -EAGAIN);
        sv[0] = safe_close(sv[0]);
        ck_assert_int_eq(channel_recv(sv[1], &f, buf, fds, CHANNEL_FDS_MAX, 0), -ECONNRESET);
        ck_assert_int_eq(
                channel_send(sv[1], &(ChannelFrame){.opcode = 0x0101, .request_id = 1}, NULL, 0, 0),
                -EPIPE);
}
END_TEST

START_TEST(test_unknown_opcode)
{
        int fds[CHANNEL_FDS_MAX];
        ProtobufCMessage *m = (void *)1;
        ChannelFrame f;

        /* Framing does not judge opcodes... */
        ck_assert_int_eq(
                channel_send(sv[0], &(ChannelFrame){.opcode = 0x7777, .request_id = 5}, NULL, 0, 0),
                0);
        ck_assert_int_eq(channel_recv(sv[1], &f, buf, fds, CHANNEL_FDS_MAX, 0), 0);
        ck_assert_uint_eq(f.opcode, 0x7777);
        /* ...the decoder does. */
        ck_assert_int_eq(wire_unpack(&f, &m), -EOPNOTSUPP);
        ck_assert_ptr_eq(m, (void *)1);
        f.opcode = 0;
        ck_assert_int_eq(wire_unpack(&f, &m), -EOPNOTSUPP);
}
END_TEST

START_TEST(test_wire_unpack)
{
        Cella__V1__BusPublishRequest req = CELLA__V1__BUS_PUBLISH_REQUEST__INIT;
        static uint8_t body[CHANNEL_BODY_MAX];
        ProtobufCMessage *m = NULL;
        ChannelFrame f;
        int n;

        req.topic = "clock.tick";
        req.data = (ProtobufCBinaryData){.len = 3, .data = (uint8_t *)"abc"};
        req.content_type = "text/plain";
        n = wire_pack(&req.base, body, sizeof(body));
        ck_assert_int_gt(n, 0);

        f = (ChannelFrame){.opcode = CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH,
                           .request_id = 1,
                           .body = body,
                           .body_len = (size_t)n};
        ck_assert_int_eq(wire_unpack(&f, &m), 0);
        ck_assert_str_eq(((Cella__V1__BusPublishRequest *)(void *)m)->topic, "clock.tick");
        protobuf_c_message_free_unpacked(m, NULL);

        /* A request carrying an fd: no request takes one. */
        f.n_fds = 1;
        ck_assert_int_eq(wire_unpack(&f, &m), -EPROTO);
        f.n_fds = 0;

        /* An event opcode on a request, a request opcode on an event. */
        f.opcode = CELLA__V1__OPCODE__OPCODE_EVENT_TIMER_FIRED;
        ck_assert_int_eq(wire_unpack(&f, &m), -EOPNOTSUPP);
        f.opcode = CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH;
        f.flags = CHANNEL_FLAG_EVENT;
        ck_assert_int_eq(wire_unpack(&f, &m), -EOPNOTSUPP);

        /* fs.open's reply carries exactly one fd. */
        f = (ChannelFrame){.opcode = CELLA__V1__OPCODE__OPCODE_FS_OPEN,
                           .flags = CHANNEL_FLAG_REPLY,
                           .request_id = 1};
        ck_assert_int_eq(wire_unpack(&f, &m), -EPROTO);
        f.n_fds = 1;
        ck_assert_int_eq(wire_unpack(&f, &m), 0);
        protobuf_c_message_free_unpacked(m, NULL);
        /* ...but its error reply none. */
        f.flags |= CHANNEL_FLAG_ERROR;
        ck_assert_int_eq(wire_unpack(&f, &m), -EPROTO);

        /* Not protobuf: a truncated length-delimited field. */
        f = (ChannelFrame){.opcode = CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH,
                           .request_id = 1,
                           .body = "\x0a\x7f"
                                   "abc",
                           .body_len = 5};
        ck_assert_int_eq(wire_unpack(&f, &m), -EBADMSG);

        /* Strings must be UTF-8 without NUL (protobuf-c would take both, and cut the
         * C string at the NUL): at the top level and inside sub-messages. */
        {
                static const struct {
                        uint16_t opcode;
                        const char *body;
                        size_t len;
                        int r;
                } cases[] = {
                        {CELLA__V1__OPCODE__OPCODE_PERM_QUERY,
                         "\x0a\x03"
                         "a\0b",
                         5, -EBADMSG},
                        {CELLA__V1__OPCODE__OPCODE_PERM_QUERY,
                         "\x0a\x03"
                         "a\xff"
                         "b",
                         5, -EBADMSG},
                        {CELLA__V1__OPCODE__OPCODE_PERM_QUERY,
                         "\x0a\x02"
                         "\xc0\xaf",
                         4, -EBADMSG},
                        {CELLA__V1__OPCODE__OPCODE_PERM_QUERY,
                         "\x0a\x03"
                         "\xed\xa0\x80",
                         5, -EBADMSG},
                        {CELLA__V1__OPCODE__OPCODE_PERM_QUERY,
                         "\x0a\x02"
                         "\xc3\xa9",
                         4, 0},
                        {CELLA__V1__OPCODE__OPCODE_PERM_QUERY,
                         "\x0a\x04"
                         "\xf0\x9f\x98\x80",
                         6, 0},
                        /* AppLaunchRequest.intent (2) .action (1) = "v\0" */
                        {CELLA__V1__OPCODE__OPCODE_APP_LAUNCH, "\x0a\x01x\x12\x04\x0a\x02v\0", 9,
                         -EBADMSG},
                        {CELLA__V1__OPCODE__OPCODE_APP_LAUNCH, "\x0a\x01x\x12\x04\x0a\x02vv", 9, 0},
                        /* bytes may hold anything */
                        {CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH, "\x12\x02\0\xff", 4, 0},
                        /* BusPublishBatchRequest.messages (1) .topic (1): checked inside
                         * each repeated sub-message, the second one too */
                        {CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH_BATCH,
                         "\x0a\x03\x0a\x01t\x0a\x04\x0a\x02t\0", 11, -EBADMSG},
                        {CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH_BATCH,
                         "\x0a\x03\x0a\x01t\x0a\x04\x0a\x02tt", 11, 0},
                };

                for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                        f = (ChannelFrame){.opcode = cases[i].opcode,
                                           .request_id = 1,
                                           .body = cases[i].body,
                                           .body_len = cases[i].len};
                        m = NULL;
                        ck_assert_msg(wire_unpack(&f, &m) == cases[i].r, "case %zu", i);
                        if (m)
                                protobuf_c_message_free_unpacked(m, NULL);
                }
        }

        /* 64 KiB of empty Process entries: 32768 structs, far more memory than the
         * wire size; the budget stops it. */
        for (size_t i = 0; i + 1 < sizeof(body); i += 2) {
                body[i] = 0x0a;
                body[i + 1] = 0x00;
        }
        f = (ChannelFrame){.opcode = CELLA__V1__OPCODE__OPCODE_PROC_LIST,
                           .flags = CHANNEL_FLAG_REPLY,
                           .request_id = 1,
                           .body = body,
                           .body_len = sizeof(body)};
        ck_assert_int_eq(wire_unpack(&f, &m), -ENOBUFS);
        /* 1000 of them are fine. */
        f.body_len = 2000;
        ck_assert_int_eq(wire_unpack(&f, &m), 0);
        ck_assert_uint_eq(((Cella__V1__ProcListReply *)(void *)m)->n_processes, 1000);
        protobuf_c_message_free_unpacked(m, NULL);

        /* A batched bus event decodes with its messages in wire order; a bad string in
         * one of them (sender "\xff") refuses the frame. */
        {
                static const uint8_t ev[] = {0x0a, 0x03, 0x12, 0x01, 'a',
                                             0x0a, 0x03, 0x12, 0x01, 'b'};
                uint8_t bad[sizeof(ev) + 5];

                f = (ChannelFrame){.opcode = CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGES,
                                   .flags = CHANNEL_FLAG_EVENT,
                                   .body = ev,
                                   .body_len = sizeof(ev)};
                ck_assert_int_eq(wire_unpack(&f, &m), 0);
                ck_assert_uint_eq(((Cella__V1__BusMessagesEvent *)(void *)m)->n_messages, 2);
                ck_assert_str_eq(((Cella__V1__BusMessagesEvent *)(void *)m)->messages[1]->topic,
                                 "b");
                protobuf_c_message_free_unpacked(m, NULL);
                memcpy(bad, ev, sizeof(ev));
                memcpy(bad + sizeof(ev), "\x0a\x03\x1a\x01\xff", 5);
                f.body = bad;
                f.body_len = sizeof(bad);
                ck_assert_int_eq(wire_unpack(&f, &m), -EBADMSG);
                bad[sizeof(bad) - 1] = 'x';
                ck_assert_int_eq(wire_unpack(&f, &m), 0);
                protobuf_c_message_free_unpacked(m, NULL);
        }

        /* A cancel has no body to decode. */
        f = (ChannelFrame){.opcode = CELLA__V1__OPCODE__OPCODE_SYSTEM_INFO,
                           .flags = CHANNEL_FLAG_CANCEL,
                           .request_id = 1};
        m = (void *)1;
        ck_assert_int_eq(wire_unpack(&f, &m), 0);
        ck_assert_ptr_null(m);

        /* Every table entry has the messages its kind needs, and a unique opcode. */
        {
                size_t n_ops;
                const WireOp *ops = wire_ops(&n_ops);

                ck_assert_uint_ge(n_ops, 29);
                ck_assert_str_eq(wire_op_lookup(CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH_BATCH)->name,
                                 "bus.publish_batch");
                ck_assert_ptr_eq(
                        wire_op_lookup(CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGES)->event,
                        &cella__v1__bus_messages_event__descriptor);
                for (size_t i = 0; i < n_ops; i++) {
                        ck_assert_ptr_eq(wire_op_lookup(ops[i].opcode), &ops[i]);
                        if (ops[i].opcode >= 0x8000)
                                ck_assert(ops[i].event && !ops[i].request && !ops[i].reply);
                        else
                                ck_assert(!ops[i].event && ops[i].request && ops[i].reply);
                }
        }
}
END_TEST

START_TEST(test_error_body)
{
        uint8_t body[CHANNEL_ERROR_BODY_MAX];
        char msg[CHANNEL_ERROR_MESSAGE_MAX + 1], long_msg[400];
        Cella__V1__ErrorReply *er;
        int n, e;

        n = channel_error_body(-EACCES, "not granted: camera", body, sizeof(body));
        ck_assert_int_gt(n, 0);

        /* protobuf-c reads it as an ErrorReply. */
        er = cella__v1__error_reply__unpack(NULL, (size_t)n, body);
        ck_assert_ptr_nonnull(er);
        ck_assert_int_eq(er->errnum, EACCES);
        ck_assert_str_eq(er->message, "not granted: camera");
        cella__v1__error_reply__free_unpacked(er, NULL);

        ck_assert_int_eq(channel_parse_error(body, (size_t)n, &e, msg, sizeof(msg)), 0);
        ck_assert_int_eq(e, -EACCES);
        ck_assert_str_eq(msg, "not granted: camera");

        /* Cut at 255 bytes, never inside a UTF-8 sequence ("é" is 2 bytes). */
        memset(long_msg, 'a', sizeof(long_msg));
        for (size_t i = 254; i + 1 < sizeof(long_msg); i += 2)
                memcpy(long_msg + i, "\xc3\xa9", 2);
        long_msg[sizeof(long_msg) - 1] = 0;
        n = channel_error_body(EPERM, long_msg, body, sizeof(body));
        ck_assert_int_eq(channel_parse_error(body, (size_t)n, &e, msg, sizeof(msg)), 0);
        ck_assert_int_eq(e, -EPERM);
        ck_assert_uint_eq(strlen(msg), 254);

        /* No errno, or a nonsense one: -EIO. Junk: -EBADMSG. */
        ck_assert_int_eq(channel_parse_error("", 0, &e, NULL, 0), 0);
        ck_assert_int_eq(e, -EIO);
        ck_assert_int_eq(channel_parse_error("\x08\xff\xff\xff\xff\x0f", 6, &e, NULL, 0), 0);
        ck_assert_int_eq(e, -EIO);
        ck_assert_int_eq(channel_parse_error("\x08", 1, &e, NULL, 0), -EBADMSG);
        ck_assert_int_eq(channel_parse_error("\x12\x05"
                                             "ab",
                                             4, &e, NULL, 0),
                         -EBADMSG);
        ck_assert_int_eq(channel_error_body(EPERM, "x", body, 3), -ENOBUFS);

        /* Sent as a frame. */
        {
                int fds[CHANNEL_FDS_MAX];
                ChannelFrame f;

                ck_assert_int_eq(channel_send_error(sv[0], 0x0601, 42, -EAGAIN, "slow down", 0), 0);
                ck_assert_int_eq(channel_recv(sv[1], &f, buf, fds, CHANNEL_FDS_MAX, 0), 0);
                ck_assert_uint_eq(f.flags, CHANNEL_FLAG_REPLY | CHANNEL_FLAG_ERROR);
                ck_assert_uint_eq(f.request_id, 42);
                ck_assert_int_eq(channel_parse_error(f.body, f.body_len, &e, msg, sizeof(msg)), 0);
                ck_assert_int_eq(e, -EAGAIN);
                ck_assert_str_eq(msg, "slow down");
        }
}
END_TEST

static Suite *channel_suite(void)
{
        Suite *s = suite_create("channel");
        TCase *tc = tcase_create("core");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_roundtrip);
        tcase_add_test(tc, test_body_limit);
        tcase_add_test(tc, test_garbage);
        tcase_add_test(tc, test_too_many_fds);
        tcase_add_test(tc, test_fd_count_mismatch);
        tcase_add_test(tc, test_small_control_buffer);
        tcase_add_test(tc, test_hangup);
        tcase_add_test(tc, test_unknown_opcode);
        tcase_add_test(tc, test_wire_unpack);
        tcase_add_test(tc, test_error_body);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(channel_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
