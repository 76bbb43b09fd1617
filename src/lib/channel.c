/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcella's secure channels and signed bus messages (include/cella.h "secure
 * channels", docs/ipc.md "Secure channels" and "Signed bus messages").
 *
 * Wire form of a channel, on the SOCK_SEQPACKET socket the kernel paired: each
 * side's first datagram is its crypto_secretstream_xchacha20poly1305 header (24
 * bytes); every later datagram is one push of that side's stream: a message of n
 * bytes is n + 17 bytes (tag MESSAGE), the close an empty push with tag FINAL. One
 * datagram, one pull: a datagram altered, replayed, reordered or cut fails its pull
 * (the stream's nonce advances with every message), and the channel is dead from
 * then on. A stream that ends (EOF) before its FINAL was cut: -ECONNRESET. In
 * plaintext mode the datagrams are the messages, and EOF is the end.
 *
 * Keys: the opener is crypto_kx's client, the acceptor its server; client tx =
 * server rx. The session keys and stream states are wiped at close.
 */
#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/macro.h"
#include "lib/client.h"
#include "wire/bussig.h"
#include "wire/wire.h"

#define HEADER_BYTES crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define ABYTES       crypto_secretstream_xchacha20poly1305_ABYTES

_Static_assert(ABYTES == CELLA_CHANNEL_OVERHEAD, "cella.h's overhead");
_Static_assert(crypto_kx_PUBLICKEYBYTES == CELLA_CHANNEL_KEY_BYTES, "cella.h's key size");

struct CellaChannel {
        int fd;
        bool plaintext;
        bool have_rx; /* the peer's header came: rx is set */
        int dead;     /* 0, or the error every later call returns */
        bool ended;   /* the peer's FINAL came */
        char peer[CELLA_ID_MAX + 1];
        uint8_t peer_pk[crypto_kx_PUBLICKEYBYTES];
        uint8_t rx_key[crypto_kx_SESSIONKEYBYTES];
        crypto_secretstream_xchacha20poly1305_state tx, rx;
        uint8_t buf[CELLA_CHANNEL_MSG_MAX + ABYTES + 1]; /* +1: a longer datagram shows */
};

static int sodium_ready(void)
{
        return sodium_init() < 0 ? -EIO : 0;
}

int cella_kx_keypair(uint8_t pk[32], uint8_t sk[32])
{
        if (!pk || !sk || sodium_ready() < 0)
                return -EIO;
        return crypto_kx_keypair(pk, sk) == 0 ? 0 : -EIO;
}

static int send_all(int fd, const void *p, size_t n)
{
        for (;;) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

                if (k >= 0)
                        return 0; /* SEQPACKET: all or nothing */
                if (errno == EINTR)
                        continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        struct pollfd pfd = {.fd = fd, .events = POLLOUT};

                        (void)poll(&pfd, 1, -1);
                        continue;
                }
                return -errno;
        }
}

int cella_channel_wrap(int fd, bool initiator, const uint8_t own_pk[32], const uint8_t own_sk[32],
                       const uint8_t peer_pk[32], const char *peer_id, unsigned flags,
                       CellaChannel **ret)
{
        uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES], header[HEADER_BYTES];
        CellaChannel *ch;
        int r;

        if (fd < 0 || !own_pk || !own_sk || !peer_pk || !ret ||
            (flags & ~CELLA_CHANNEL_PLAINTEXT) ||
            (peer_id && strnlen(peer_id, CELLA_ID_MAX + 1) > CELLA_ID_MAX)) {
                if (fd >= 0)
                        close(fd);
                return -EINVAL;
        }
        if (sodium_ready() < 0) {
                close(fd);
                return -EIO;
        }
        /* Plain malloc, wiped at close: sodium_malloc()'s guard pages and mlock() are
         * more than the sandbox's seccomp filter and RLIMIT_MEMLOCK may allow. */
        ch = malloc(sizeof *ch);
        if (!ch) {
                close(fd);
                return -ENOMEM;
        }
        memset(ch, 0, offsetof(CellaChannel, buf));
        ch->fd = fd;
        ch->plaintext = flags & CELLA_CHANNEL_PLAINTEXT;
        snprintf(ch->peer, sizeof ch->peer, "%s", peer_id ? peer_id : "");
        memcpy(ch->peer_pk, peer_pk, sizeof ch->peer_pk);
        if (ch->plaintext) {
                *ret = ch;
                return 0;
        }
        r = initiator ? crypto_kx_client_session_keys(rx, tx, own_pk, own_sk, peer_pk)
                      : crypto_kx_server_session_keys(rx, tx, own_pk, own_sk, peer_pk);
        if (r != 0) {
                cella_channel_close(ch);
                return -EINVAL; /* the peer's key is not a valid point */
        }
        crypto_secretstream_xchacha20poly1305_init_push(&ch->tx, header, tx);
        memcpy(ch->rx_key, rx, sizeof rx);
        sodium_memzero(rx, sizeof rx);
        sodium_memzero(tx, sizeof tx);
        r = send_all(fd, header, sizeof header);
        if (r < 0) {
                cella_channel_close(ch);
                return r;
        }
        *ret = ch;
        return 0;
}

static int die(CellaChannel *ch, int error)
{
        ch->dead = error;
        sodium_memzero(&ch->rx, sizeof ch->rx);
        sodium_memzero(&ch->tx, sizeof ch->tx);
        sodium_memzero(ch->rx_key, sizeof ch->rx_key);
        return error;
}

int cella_channel_send(CellaChannel *ch, const void *data, size_t len)
{
        int r;

        if (!ch || (len > 0 && !data))
                return -EINVAL;
        if (ch->dead)
                return -ECONNRESET;
        if (len > CELLA_CHANNEL_MSG_MAX)
                return -EMSGSIZE;
        if (ch->plaintext) /* an empty datagram would read as the end of the stream */
                return len == 0 ? -EINVAL : send_all(ch->fd, data, len);
        crypto_secretstream_xchacha20poly1305_push(
                &ch->tx, ch->buf, NULL, data, len, NULL, 0,
                crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
        r = send_all(ch->fd, ch->buf, len + ABYTES);
        return r;
}

/* One datagram into ch->buf. Returns its length, 0 at EOF, or -errno; -EMSGSIZE if
 * it was longer than the buffer. */
static ssize_t recv_one(CellaChannel *ch, size_t max)
{
        for (;;) {
                struct iovec iov = {.iov_base = ch->buf, .iov_len = max};
                struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
                ssize_t n = recvmsg(ch->fd, &mh, MSG_CMSG_CLOEXEC);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
                        return -EMSGSIZE;
                return n;
        }
}

ssize_t cella_channel_recv(CellaChannel *ch, void *buf, size_t size)
{
        unsigned long long mlen = 0;
        unsigned char tag = 0;
        ssize_t n;

        if (!ch || (size > 0 && !buf))
                return -EINVAL;
        if (ch->ended)
                return -EPIPE;
        if (ch->dead)
                return ch->dead;
        if (ch->plaintext) {
                n = recv_one(ch, CELLA_CHANNEL_MSG_MAX + 1);
                if (n == 0)
                        return -EPIPE; /* no FINAL in plaintext: EOF is the end */
                if (n < 0)
                        return n == -EMSGSIZE ? die(ch, -EMSGSIZE) : n;
                if ((size_t)n > size)
                        return die(ch, -EMSGSIZE);
                memcpy(buf, ch->buf, (size_t)n);
                return n;
        }
        if (!ch->have_rx) {
                n = recv_one(ch, sizeof ch->buf);
                if (n == 0)
                        return die(ch, -ECONNRESET);
                if (n < 0 && n != -EMSGSIZE)
                        return n;
                if (n != HEADER_BYTES || crypto_secretstream_xchacha20poly1305_init_pull(
                                                 &ch->rx, ch->buf, ch->rx_key) != 0)
                        return die(ch, -EBADMSG);
                sodium_memzero(ch->rx_key, sizeof ch->rx_key);
                ch->have_rx = true;
        }
        n = recv_one(ch, sizeof ch->buf);
        if (n == 0)
                return die(ch, -ECONNRESET); /* cut before the peer's close */
        if (n == -EMSGSIZE)
                return die(ch, -EBADMSG); /* longer than any message: not the peer's */
        if (n < 0)
                return n;
        if ((size_t)n < ABYTES)
                return die(ch, -EBADMSG);
        if ((size_t)n - ABYTES > size)
                return die(ch, -EMSGSIZE);
        /* Straight into buf: libsodium checks the MAC before it writes a byte of the
         * plaintext, so a forged message never reaches buf. (Not in place: the
         * plaintext would overlap the ciphertext one byte behind it.) */
        if (crypto_secretstream_xchacha20poly1305_pull(&ch->rx, buf, &mlen, &tag, ch->buf,
                                                       (unsigned long long)n, NULL, 0) != 0)
                return die(ch, -EBADMSG);
        if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
                ch->ended = true;
                return -EPIPE;
        }
        if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
                return die(ch, -EBADMSG);
        return (ssize_t)mlen;
}

int cella_channel_fd(const CellaChannel *ch)
{
        return ch ? ch->fd : -EINVAL;
}

const char *cella_channel_peer(const CellaChannel *ch)
{
        return ch ? ch->peer : NULL;
}

const uint8_t *cella_channel_peer_key(const CellaChannel *ch)
{
        return ch ? ch->peer_pk : NULL;
}

bool cella_channel_plaintext(const CellaChannel *ch)
{
        return ch && ch->plaintext;
}

CellaChannel *cella_channel_close(CellaChannel *ch)
{
        if (!ch)
                return NULL;
        if (!ch->plaintext && !ch->dead && ch->fd >= 0) {
                crypto_secretstream_xchacha20poly1305_push(
                        &ch->tx, ch->buf, NULL, NULL, 0, NULL, 0,
                        crypto_secretstream_xchacha20poly1305_TAG_FINAL);
                (void)send(ch->fd, ch->buf, ABYTES, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        if (ch->fd >= 0)
                close(ch->fd);
        sodium_memzero(ch, offsetof(CellaChannel, buf) + sizeof ch->buf);
        free(ch);
        return NULL;
}

/* ---- the kernel's handshake ----------------------------------------------------- */

static void unpacked_free(ProtobufCMessage *m)
{
        if (m)
                protobuf_c_message_free_unpacked(m, NULL);
}

/* The reply's fd and the peer's id and key from a channel.open or channel.accept
 * reply, then the stream. */
static int finish(Cella *c, CellaReply *reply, bool initiator, const uint8_t pk[32],
                  const uint8_t sk[32], unsigned flags, CellaChannel **ret)
{
        ProtobufCMessage *m = NULL;
        const char *peer;
        ProtobufCBinaryData key;
        bool plaintext;
        int fd, r;

        (void)c;
        if (reply->error)
                return reply->error;
        r = client_reply_unpack(reply, &m);
        if (r < 0)
                return r;
        if (initiator) {
                const Cella__V1__ChannelOpenReply *o = (const void *)m;

                peer = o->app_id, key = o->public_key, plaintext = o->plaintext;
        } else {
                const Cella__V1__ChannelAcceptReply *a = (const void *)m;

                peer = a->app_id, key = a->public_key, plaintext = a->plaintext;
        }
        /* The opener's mode comes back as it asked; the acceptor takes the opener's. */
        if (key.len != CELLA_CHANNEL_KEY_BYTES ||
            (initiator && plaintext != !!(flags & CELLA_CHANNEL_PLAINTEXT))) {
                unpacked_free(m);
                return -EPROTO;
        }
        fd = cella_reply_take_fd(reply, 0); /* wire_unpack() checked exactly one came */
        if (fd < 0) {
                unpacked_free(m);
                return fd;
        }
        r = cella_channel_wrap(fd, initiator, pk, sk, key.data, peer,
                               plaintext ? CELLA_CHANNEL_PLAINTEXT : 0, ret);
        unpacked_free(m);
        return r;
}

int cella_channel_open(Cella *c, const char *app_id, const char *purpose, unsigned flags,
                       uint32_t timeout_ms, CellaChannel **ret)
{
        Cella__V1__ChannelOpenRequest req = CELLA__V1__CHANNEL_OPEN_REQUEST__INIT;
        uint8_t pk[crypto_kx_PUBLICKEYBYTES], sk[crypto_kx_SECRETKEYBYTES];
        CellaReply *reply = NULL;
        int r;

        if (!c || !app_id || !*app_id || strnlen(app_id, CELLA_ID_MAX + 1) > CELLA_ID_MAX ||
            (purpose &&
             strnlen(purpose, CELLA_CHANNEL_PURPOSE_MAX + 1) > CELLA_CHANNEL_PURPOSE_MAX) ||
            (flags & ~CELLA_CHANNEL_PLAINTEXT) || timeout_ms > 600000 || !ret)
                return -EINVAL;
        r = cella_kx_keypair(pk, sk);
        if (r < 0)
                return r;
        req.app_id = (char *)app_id;
        req.public_key = (ProtobufCBinaryData){.len = sizeof pk, .data = pk};
        req.purpose = (char *)(purpose ? purpose : "");
        req.plaintext = flags & CELLA_CHANNEL_PLAINTEXT;
        req.timeout_ms = timeout_ms;
        r = client_call(c, CELLA_OP_CHANNEL_OPEN, &req.base, &reply);
        if (r == 0)
                r = finish(c, reply, true, pk, sk, flags, ret);
        cella_reply_free(reply);
        sodium_memzero(sk, sizeof sk);
        return r;
}

int cella_channel_accept(Cella *c, uint64_t token, CellaChannel **ret)
{
        Cella__V1__ChannelAcceptRequest req = CELLA__V1__CHANNEL_ACCEPT_REQUEST__INIT;
        uint8_t pk[crypto_kx_PUBLICKEYBYTES], sk[crypto_kx_SECRETKEYBYTES];
        CellaReply *reply = NULL;
        int r;

        if (!c || token == 0 || !ret)
                return -EINVAL;
        r = cella_kx_keypair(pk, sk);
        if (r < 0)
                return r;
        req.token = token;
        req.public_key = (ProtobufCBinaryData){.len = sizeof pk, .data = pk};
        r = client_call(c, CELLA_OP_CHANNEL_ACCEPT, &req.base, &reply);
        if (r == 0)
                r = finish(c, reply, false, pk, sk, 0, ret);
        cella_reply_free(reply);
        sodium_memzero(sk, sizeof sk);
        return r;
}

int cella_channel_refuse(Cella *c, uint64_t token, int error)
{
        Cella__V1__ChannelRefuseRequest req = CELLA__V1__CHANNEL_REFUSE_REQUEST__INIT;
        CellaReply *reply = NULL;
        int r;

        if (!c || token == 0 || error > 0 || error < -4095)
                return -EINVAL;
        req.token = token;
        req.errnum = -error;
        r = client_call(c, CELLA_OP_CHANNEL_REFUSE, &req.base, &reply);
        if (r == 0)
                r = reply->error;
        cella_reply_free(reply);
        return r;
}

/* ---- signed bus messages --------------------------------------------------------- */

int cella_kernel_key(Cella *c, uint8_t key[32])
{
        Cella__V1__ChannelKernelKeyRequest req = CELLA__V1__CHANNEL_KERNEL_KEY_REQUEST__INIT;
        CellaReply *reply = NULL;
        ProtobufCMessage *m = NULL;
        uint8_t *cache;
        bool *have;
        int r;

        if (!c || !key)
                return -EINVAL;
        cache = client_kernel_key(c, &have);
        if (*have) {
                memcpy(key, cache, 32);
                return 0;
        }
        r = client_call(c, CELLA_OP_CHANNEL_KERNEL_KEY, &req.base, &reply);
        if (r == 0)
                r = reply->error ? reply->error : client_reply_unpack(reply, &m);
        if (r == 0) {
                const Cella__V1__ChannelKernelKeyReply *k = (const void *)m;

                if (k->public_key.len != BUSSIG_KEY_BYTES)
                        r = -EPROTO;
                else {
                        memcpy(cache, k->public_key.data, 32);
                        *have = true;
                        memcpy(key, cache, 32);
                }
        }
        unpacked_free(m);
        cella_reply_free(reply);
        return r;
}

int cella_bus_verify_body(const uint8_t key[32], const void *body, size_t len, CellaBusSigned *ret)
{
        Cella__V1__BusMessageEvent *m;
        const Cella__V1__BusSignature *s;
        crypto_sign_state st;
        bool direct;
        int r = 0;

        if (!key || (!body && len > 0))
                return -EINVAL;
        if (sodium_ready() < 0)
                return -EIO;
        m = cella__v1__bus_message_event__unpack(NULL, len, body);
        if (!m)
                return -EINVAL;
        s = m->signature;
        if (!s) {
                r = -ENOMSG;
                goto out;
        }
        /* A direct message has no topic and names its target; a published one the
         * reverse. Requests are never signed. */
        direct = m->subscription_id == 0;
        if (s->signature.len != BUSSIG_BYTES || m->reply_token != 0 ||
            (direct ? (m->topic[0] || !s->target[0]) : (!m->topic[0] || s->target[0]))) {
                r = -EBADMSG;
                goto out;
        }
        bussig_feed(&st, direct ? BUSSIG_KIND_DIRECT : BUSSIG_KIND_TOPIC, m->sender,
                    direct ? s->target : m->topic, m->content_type, m->data.data, m->data.len,
                    s->timestamp_ns, s->counter);
        if (crypto_sign_final_verify(&st, s->signature.data, key) != 0) {
                r = -EBADMSG;
                goto out;
        }
        if (ret) {
                ret->timestamp_ns = s->timestamp_ns;
                ret->counter = s->counter;
                snprintf(ret->target, sizeof ret->target, "%s", s->target);
        }
out:
        cella__v1__bus_message_event__free_unpacked(m, NULL);
        return r;
}

int cella_bus_verify(Cella *c, const CellaEvent *ev, CellaBusSigned *ret)
{
        uint8_t key[32];
        int r;

        if (!c || !ev || ev->opcode != CELLA_EVENT_BUS_MESSAGE)
                return -EINVAL;
        r = cella_kernel_key(c, key);
        if (r < 0)
                return r;
        return cella_bus_verify_body(key, ev->body, ev->body_len, ret);
}

static int bus_signed(Cella *c, uint16_t op, const char *to, const void *data, size_t len,
                      const char *content_type)
{
        CellaReply *reply = NULL;
        int r;

        if (!c || !to || !*to || (len > 0 && !data))
                return -EINVAL;
        if (len > CELLA_PAYLOAD_MAX)
                return -EMSGSIZE;
        if (op == CELLA_OP_BUS_PUBLISH) {
                Cella__V1__BusPublishRequest req = CELLA__V1__BUS_PUBLISH_REQUEST__INIT;

                req.topic = (char *)to;
                req.data = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)data};
                req.content_type = (char *)(content_type ? content_type : "");
                req.sign = true;
                r = client_call(c, op, &req.base, &reply);
        } else {
                Cella__V1__BusSendRequest req = CELLA__V1__BUS_SEND_REQUEST__INIT;

                req.app_id = (char *)to;
                req.data = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)data};
                req.content_type = (char *)(content_type ? content_type : "");
                req.sign = true;
                r = client_call(c, op, &req.base, &reply);
        }
        if (r == 0 && reply->error)
                r = reply->error;
        else if (r == 0 && op == CELLA_OP_BUS_PUBLISH) {
                ProtobufCMessage *m = NULL;

                r = client_reply_unpack(reply, &m);
                if (r == 0)
                        r = (int)((Cella__V1__BusPublishReply *)m)->delivered;
                unpacked_free(m);
        }
        cella_reply_free(reply);
        return r;
}

int cella_bus_publish_signed(Cella *c, const char *topic, const void *data, size_t len,
                             const char *content_type)
{
        return bus_signed(c, CELLA_OP_BUS_PUBLISH, topic, data, len, content_type);
}

int cella_bus_send_signed(Cella *c, const char *app_id, const void *data, size_t len,
                          const char *content_type)
{
        return bus_signed(c, CELLA_OP_BUS_SEND, app_id, data, len, content_type);
}

/* ---- replay check ------------------------------------------------------------------ */

struct CellaBusSeen {
        size_t n;
        struct {
                char *sender;
                uint64_t counter;
        } e[CELLA_BUS_SEEN_MAX];
};

int cella_bus_seen_new(CellaBusSeen **ret)
{
        if (!ret)
                return -EINVAL;
        *ret = calloc(1, sizeof **ret);
        return *ret ? 0 : -ENOMEM;
}

CellaBusSeen *cella_bus_seen_free(CellaBusSeen *s)
{
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                free(s->e[i].sender);
        free(s);
        return NULL;
}

int cella_bus_seen_check(CellaBusSeen *s, const char *sender, uint64_t counter)
{
        if (!s || !sender || !*sender || strnlen(sender, CELLA_ID_MAX + 1) > CELLA_ID_MAX)
                return -EINVAL;
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->e[i].sender, sender) == 0) {
                        if (counter <= s->e[i].counter)
                                return -EALREADY;
                        s->e[i].counter = counter;
                        return 0;
                }
        if (s->n == CELLA_BUS_SEEN_MAX)
                return -ENOBUFS;
        s->e[s->n].sender = strdup(sender);
        if (!s->e[s->n].sender)
                return -ENOMEM;
        s->e[s->n++].counter = counter;
        return 0;
}
