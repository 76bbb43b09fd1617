/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * channel-probe: a native app for tests/integration/test_channel.py (docs/ipc.md,
 * "Secure channels" and "Signed bus messages"). One line per outcome on stdout; the
 * test reads the app's log and judges them. Roles (argv[1]):
 *
 *   serve MODE            the peer: answers EVENT_CHANNEL_REQUEST by MODE
 *       accept            accept, echo every message back ("GOT n"), until the
 *                         opener closes ("PEER CLOSED") or a recv fails ("RECV ERROR
 *                         <errno>"); then exit 0
 *       refuse            refuse with EPERM ("REFUSED token"), wait for the next
 *       crash-on-request  print "REQUEST" and _exit(9) before answering
 *       crash-mid-stream  accept, take one message, abort()
 *       slow [SPY]        answer nothing (but tell SPY the token by a direct
 *                         message); on EVENT_CHANNEL_CANCELLED try to accept the
 *                         dead token ("LATE ACCEPT <result>") and exit
 *   open PEER [plain|once]  open a channel (retrying while the peer is not up,
 *                         unless once), exchange messages of 0, 1, 1024, 65536
 *                         bytes both ways ("EXCHANGE OK"), close, exit
 *   open-crash PEER       send channel.open and _exit(7) at once
 *   crash-mid-stream PEER open, one message and its echo, _exit(7) without close
 *   mitm PEER MODE        open through the kernel, but run the channel through a
 *                         relay in this process (a bridge carrying the frames) that
 *                         MODE: none, alter, replay, reorder, truncate, drop, cut
 *                         (towards the peer) or alter-back (towards us)
 *   steal                 a spy: waits for a peer in "serve slow SPY" to tell it the
 *                         token of a request addressed to that peer, then tries to
 *                         accept and refuse it and its neighbours ("STEAL ok=...")
 *   signer RECEIVER TOPIC publish a signed message on TOPIC until someone gets it,
 *                         then a signed and an unsigned direct message to RECEIVER;
 *                         then wait to be stopped
 *   verifier TOPIC        subscribe to TOPIC, print the kernel's key, and for three
 *                         messages verify them as they came and altered
 */
#include <cella.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cella.pb-c.h"

#define DEADLINE_MS 30000

static Cella *c;
static CellaChannel *served;
static const char *serve_mode;
static int exit_after = -1;
static uint64_t slow_token;
static const char *tell_spy;

static const char *ename(int e)
{
        switch (e < 0 ? -e : e) {
        case 0:
                return "OK";
        case EACCES:
                return "EACCES";
        case EPERM:
                return "EPERM";
        case ENOENT:
                return "ENOENT";
        case ECONNREFUSED:
                return "ECONNREFUSED";
        case ECONNRESET:
                return "ECONNRESET";
        case ETIMEDOUT:
                return "ETIMEDOUT";
        case EBADMSG:
                return "EBADMSG";
        case EPIPE:
                return "EPIPE";
        case ECANCELED:
                return "ECANCELED";
        case EMSGSIZE:
                return "EMSGSIZE";
        case ENOMSG:
                return "ENOMSG";
        case EALREADY:
                return "EALREADY";
        case EBUSY:
                return "EBUSY";
        case EIO:
                return "EIO";
        case EINVAL:
                return "EINVAL";
        default:
                return strerror(e < 0 ? -e : e);
        }
}

static void hex(const uint8_t *p, size_t n, char *out)
{
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", p[i]);
}

static void sleep_ms(unsigned ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

        nanosleep(&ts, NULL);
}

/* ---- serve ----------------------------------------------------------------------- */

static void on_event(Cella *cc, const CellaEvent *ev, void *ud)
{
        (void)ud;
        if (ev->opcode == CELLA_EVENT_CHANNEL_REQUEST && ev->decoded) {
                char key[65];
                int r;

                hex(ev->channel_request.public_key, 32, key);
                printf("REQUEST token=%" PRIu64 " from=%s purpose=%s plaintext=%d key=%s\n",
                       ev->channel_request.token, ev->channel_request.app_id,
                       ev->channel_request.purpose, ev->channel_request.plaintext, key);
                if (strcmp(serve_mode, "crash-on-request") == 0)
                        _exit(9);
                if (strcmp(serve_mode, "slow") == 0) {
                        slow_token = ev->channel_request.token;
                        if (tell_spy) { /* "slow SPY": tell the spy the live token */
                                char t[32];

                                snprintf(t, sizeof t, "%" PRIu64, slow_token);
                                r = cella_bus_send(cc, tell_spy, t, strlen(t), NULL);
                                printf("TOLD SPY %s\n", ename(r));
                        }
                        return;
                }
                if (strcmp(serve_mode, "refuse") == 0) {
                        r = cella_channel_refuse(cc, ev->channel_request.token, -EPERM);
                        printf("REFUSED %s\n", ename(r));
                        return;
                }
                r = cella_channel_accept(cc, ev->channel_request.token, &served);
                if (r < 0) {
                        printf("ACCEPT ERROR %s\n", ename(r));
                        return;
                }
                hex(cella_channel_peer_key(served), 32, key);
                printf("ACCEPTED peer=%s key=%s plaintext=%d\n", cella_channel_peer(served), key,
                       cella_channel_plaintext(served));
        } else if (ev->opcode == CELLA_EVENT_CHANNEL_CANCELLED && ev->decoded) {
                printf("CANCELLED token=%" PRIu64 " %s\n", ev->channel_cancelled.token,
                       ename(ev->channel_cancelled.error));
                if (slow_token == ev->channel_cancelled.token) {
                        CellaChannel *ch = NULL;
                        int r = cella_channel_accept(cc, slow_token, &ch);

                        printf("LATE ACCEPT %s\n", ename(r));
                        cella_channel_close(ch);
                        exit_after = 0;
                }
        }
}

static int serve(const char *mode)
{
        static uint8_t buf[CELLA_CHANNEL_MSG_MAX];
        unsigned got = 0;

        serve_mode = mode;
        cella_on_event(c, on_event, NULL);
        printf("SERVING %s\n", mode);
        for (;;) {
                struct pollfd p[2];
                int r;

                while ((r = cella_dispatch(c)) > 0)
                        ;
                if (r < 0) {
                        printf("DISPATCH ERROR %s\n", ename(r));
                        return 1;
                }
                if (exit_after >= 0)
                        return exit_after;
                /* After the dispatch: it may have accepted a channel. */
                p[0] = (struct pollfd){.fd = cella_fd(c), .events = POLLIN};
                p[1] = (struct pollfd){.fd = served ? cella_channel_fd(served) : -1,
                                       .events = POLLIN};
                if (poll(p, 2, -1) < 0)
                        continue;
                if (served && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
                        ssize_t n = cella_channel_recv(served, buf, sizeof buf);

                        if (n == -EPIPE) {
                                printf("PEER CLOSED after %u\n", got);
                                served = cella_channel_close(served);
                                return 0;
                        }
                        if (n < 0) {
                                printf("RECV ERROR %s after %u\n", ename((int)n), got);
                                served = cella_channel_close(served);
                                return 0;
                        }
                        got++;
                        printf("GOT %zd %.16s\n", n, n > 0 ? (const char *)buf : "");
                        if (strcmp(mode, "crash-mid-stream") == 0)
                                abort();
                        r = cella_channel_send(served, buf, (size_t)n);
                        if (r < 0)
                                printf("SEND ERROR %s\n", ename(r));
                }
        }
}

/* One datagram from fd, or -1 at EOF / after DEADLINE_MS. */
static ssize_t frame_in(int fd, uint8_t *buf, size_t size)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (poll(&p, 1, DEADLINE_MS) <= 0)
                return -1;
        n = recv(fd, buf, size, 0);
        return n <= 0 ? -1 : n;
}

/* ---- steal: another app's live token --------------------------------------------- */

static uint64_t spied;

static void on_spy(Cella *cc, const CellaEvent *ev, void *ud)
{
        (void)cc;
        (void)ud;
        if (ev->opcode == CELLA_EVENT_BUS_MESSAGE && ev->bus.len > 0 && ev->bus.len < 32) {
                char t[32];

                memcpy(t, ev->bus.data, ev->bus.len);
                t[ev->bus.len] = 0;
                spied = strtoull(t, NULL, 10);
        }
}

/* Waits for the peer to tell it a live token, then tries to take it (and its
 * neighbours) as if it were addressed to the spy: accept and refuse. */
static int steal(void)
{
        unsigned ok = 0, enoent = 0, other = 0;

        cella_on_event(c, on_spy, NULL);
        printf("SPY READY\n");
        while (!spied) {
                int r = cella_wait(c, DEADLINE_MS);

                if (r <= 0) {
                        printf("SPY WAIT %s\n", r == 0 ? "timed out" : ename(r));
                        return 0;
                }
                while (cella_dispatch(c) > 0)
                        ;
        }
        printf("SPY GOT token=%" PRIu64 "\n", spied);
        for (uint64_t t = spied > 8 ? spied - 8 : 1; t <= spied + 8; t++) {
                CellaChannel *ch = NULL;
                int r = cella_channel_accept(c, t, &ch);

                ok += r == 0, enoent += r == -ENOENT, other += r != 0 && r != -ENOENT;
                cella_channel_close(ch);
                r = cella_channel_refuse(c, t, 0);
                ok += r == 0, enoent += r == -ENOENT, other += r != 0 && r != -ENOENT;
        }
        printf("STEAL ok=%u enoent=%u other=%u\n", ok, enoent, other);
        return 0;
}

/* ---- open ------------------------------------------------------------------------- */

static int open_retry(const char *peer, unsigned flags, bool once, CellaChannel **ret)
{
        for (unsigned waited = 0;; waited += 20) {
                int r = cella_channel_open(c, peer, "probe exchange", flags, 10000, ret);

                if (r != -ENOENT || once || waited >= DEADLINE_MS)
                        return r;
                sleep_ms(20); /* the peer's process is not attached yet */
        }
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t)('a' + (i * 7 + seed) % 26);
}

static int exchange(CellaChannel *ch, const size_t *sizes, size_t n_sizes)
{
        static uint8_t out[CELLA_CHANNEL_MSG_MAX], in[CELLA_CHANNEL_MSG_MAX];

        for (size_t i = 0; i < n_sizes; i++) {
                ssize_t n;
                int r;

                fill(out, sizes[i], (unsigned)i);
                r = cella_channel_send(ch, out, sizes[i]);
                if (r < 0) {
                        printf("SEND ERROR %s\n", ename(r));
                        return r;
                }
                n = cella_channel_recv(ch, in, sizeof in);
                if (n < 0) {
                        printf("RECV ERROR %s\n", ename((int)n));
                        return (int)n;
                }
                if ((size_t)n != sizes[i] || memcmp(in, out, sizes[i]) != 0) {
                        printf("ECHO MISMATCH %zu\n", i);
                        return -EBADMSG;
                }
        }
        return 0;
}

static int open_main(const char *peer, const char *opt)
{
        static const size_t sizes[] = {0, 1, 1024, CELLA_CHANNEL_MSG_MAX};
        unsigned flags = opt && strcmp(opt, "plain") == 0 ? CELLA_CHANNEL_PLAINTEXT : 0;
        CellaChannel *ch = NULL;
        char key[65];
        int r;

        r = open_retry(peer, flags, opt && strcmp(opt, "once") == 0, &ch);
        if (r < 0) {
                printf("OPEN ERROR %s\n", ename(r));
                return 0;
        }
        hex(cella_channel_peer_key(ch), 32, key);
        printf("OPENED peer=%s key=%s plaintext=%d\n", cella_channel_peer(ch), key,
               cella_channel_plaintext(ch));
        /* Plaintext has no empty message (it would read as the end): from 1 byte. */
        r = flags ? exchange(ch, sizes + 1, sizeof sizes / sizeof *sizes - 1)
                  : exchange(ch, sizes, sizeof sizes / sizeof *sizes);
        if (r == 0)
                printf("EXCHANGE OK\n");
        {
                /* Wait for the peer's end to go (it closes after our close): its log
                 * is complete then. */
                int w = dup(cella_channel_fd(ch));
                uint8_t b[64];

                cella_channel_close(ch);
                shutdown(w, SHUT_WR); /* plaintext has no close message: EOF is it */
                while (frame_in(w, b, sizeof b) >= 0)
                        ;
                close(w);
        }
        return 0;
}

static int open_crash(const char *peer)
{
        Cella__V1__ChannelOpenRequest req = CELLA__V1__CHANNEL_OPEN_REQUEST__INIT;
        uint8_t pk[32], sk[32], body[512];
        size_t n;
        int r;

        cella_kx_keypair(pk, sk);
        req.app_id = (char *)peer;
        req.public_key = (ProtobufCBinaryData){.len = 32, .data = pk};
        req.purpose = "crash";
        n = cella__v1__channel_open_request__pack(&req, body);
        /* The peer must be up: wait for it with an empty call that names it. */
        for (unsigned waited = 0; waited < DEADLINE_MS; waited += 20) {
                r = cella_bus_send(c, peer, "", 0, NULL);
                if (r != -ENOENT)
                        break;
                sleep_ms(20);
        }
        r = cella_call_async(c, CELLA_OP_CHANNEL_OPEN, body, n, NULL, 0, NULL, NULL, NULL);
        printf("OPEN SENT %s; crashing\n", ename(r));
        fflush(stdout);
        _exit(7);
}

static int crash_mid_stream(const char *peer)
{
        static const size_t sizes[] = {1024};
        CellaChannel *ch = NULL;
        int r = open_retry(peer, 0, false, &ch);

        if (r < 0) {
                printf("OPEN ERROR %s\n", ename(r));
                return 0;
        }
        r = exchange(ch, sizes, 1);
        printf("ONE MESSAGE %s; crashing\n", ename(r));
        fflush(stdout);
        _exit(7);
}

/* ---- mitm ------------------------------------------------------------------------- */

static int mitm(const char *peer, const char *mode)
{
        static uint8_t f[4][CELLA_CHANNEL_MSG_MAX + 64], back[CELLA_CHANNEL_MSG_MAX + 64];
        Cella__V1__ChannelOpenRequest req = CELLA__V1__CHANNEL_OPEN_REQUEST__INIT;
        Cella__V1__ChannelOpenReply *rep;
        uint8_t pk[32], sk[32], body[512], msg[1024];
        ssize_t len[4];
        CellaReply *reply = NULL;
        CellaChannel *ch = NULL;
        int sv[2], x, r;
        size_t n;

        /* The kernel's handshake, done by hand: the socket it hands out is the far end
         * of the bridge; the channel runs over a socketpair of our own (sv). */
        cella_kx_keypair(pk, sk);
        req.app_id = (char *)peer;
        req.public_key = (ProtobufCBinaryData){.len = 32, .data = pk};
        req.purpose = "bridge";
        req.timeout_ms = 10000;
        n = cella__v1__channel_open_request__pack(&req, body);
        for (unsigned waited = 0;; waited += 20) {
                r = cella_call(c, CELLA_OP_CHANNEL_OPEN, body, n, NULL, 0, &reply);
                if (r < 0 || reply->error != -ENOENT || waited >= DEADLINE_MS)
                        break;
                reply = cella_reply_free(reply);
                sleep_ms(20);
        }
        if (r < 0 || reply->error) {
                printf("OPEN ERROR %s\n", ename(r < 0 ? r : reply->error));
                return 0;
        }
        rep = cella__v1__channel_open_reply__unpack(NULL, reply->body_len, reply->body);
        x = cella_reply_take_fd(reply, 0);
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
        r = cella_channel_wrap(sv[0], true, pk, sk, rep->public_key.data, rep->app_id, 0, &ch);
        cella__v1__channel_open_reply__free_unpacked(rep, NULL);
        cella_reply_free(reply);
        if (r < 0) {
                printf("WRAP ERROR %s\n", ename(r));
                return 0;
        }
        /* Our header and three messages, taken off our side of the bridge. */
        for (unsigned i = 1; i <= 3; i++) {
                memset(msg, '0' + i, sizeof msg);
                cella_channel_send(ch, msg, sizeof msg);
        }
        for (unsigned i = 0; i < 4; i++)
                len[i] = frame_in(sv[1], f[i], sizeof f[i]);
        printf("MITM %s: frames %zd %zd %zd %zd\n", mode, len[0], len[1], len[2], len[3]);
        if (strcmp(mode, "alter") == 0)
                f[2][10] ^= 0x01; /* a bit of the second message's ciphertext */
        if (strcmp(mode, "truncate") == 0)
                len[1]--;                            /* the first message loses its last byte */
        send(x, f[0], (size_t)len[0], MSG_NOSIGNAL); /* the header, as it was */
        if (strcmp(mode, "reorder") == 0) {
                send(x, f[2], (size_t)len[2], MSG_NOSIGNAL);
                send(x, f[1], (size_t)len[1], MSG_NOSIGNAL);
                send(x, f[3], (size_t)len[3], MSG_NOSIGNAL);
        } else if (strcmp(mode, "replay") == 0) {
                send(x, f[1], (size_t)len[1], MSG_NOSIGNAL);
                send(x, f[1], (size_t)len[1], MSG_NOSIGNAL);
        } else if (strcmp(mode, "drop") == 0) {
                send(x, f[2], (size_t)len[2], MSG_NOSIGNAL);
        } else if (strcmp(mode, "cut") == 0) {
                send(x, f[1], (size_t)len[1], MSG_NOSIGNAL);
        } else {
                for (unsigned i = 1; i < 4; i++)
                        send(x, f[i], (size_t)len[i], MSG_NOSIGNAL);
        }
        if (strcmp(mode, "cut") == 0) {
                /* The bridge goes away without carrying our close: the peer's header
                 * and the echo of message 1 come back, then nothing more goes. */
                ssize_t k = frame_in(x, back, sizeof back);

                k = frame_in(x, back, sizeof back);
                printf("CUT after echo of %zd bytes\n", k);
                shutdown(x, SHUT_WR);
                while (frame_in(x, back, sizeof back) >= 0)
                        ;
                cella_channel_close(ch);
                printf("MITM DONE\n");
                return 0;
        }
        /* Back from the peer to us: its header, then the echoes, until it goes. */
        for (unsigned i = 0;; i++) {
                ssize_t k = frame_in(x, back, sizeof back);

                if (k < 0) {
                        shutdown(sv[1], SHUT_WR); /* the peer went: so does our side */
                        break;
                }
                if (strcmp(mode, "alter-back") == 0 && i == 2)
                        back[k - 1] ^= 0x80; /* the second echo's tag */
                send(sv[1], back, (size_t)k, MSG_NOSIGNAL);
                if (i == 3)
                        break;
        }
        for (unsigned i = 1; i <= 3; i++) {
                ssize_t k = cella_channel_recv(ch, msg, sizeof msg);

                printf("ECHO %u %s\n", i, k < 0 ? ename((int)k) : "OK");
                if (k < 0)
                        break;
        }
        /* Our close through the bridge (none if our side is dead), then the bridge
         * ends; wait until the peer has closed its end: its log is complete then. */
        cella_channel_close(ch);
        {
                struct pollfd p = {.fd = sv[1], .events = POLLIN};
                ssize_t k = poll(&p, 1, 0) == 1 ? recv(sv[1], back, sizeof back, MSG_DONTWAIT) : -1;

                if (k > 0)
                        send(x, back, (size_t)k, MSG_NOSIGNAL);
        }
        shutdown(x, SHUT_WR);
        while (frame_in(x, back, sizeof back) >= 0)
                ;
        printf("MITM DONE\n");
        return 0;
}

/* ---- signed bus messages ---------------------------------------------------------- */

static int signer(const char *receiver, const char *topic)
{
        int r;

        for (unsigned waited = 0;; waited += 20) {
                r = cella_bus_publish_signed(c, topic, "signed news", 11, "text/plain");
                if (r != 0 || waited >= DEADLINE_MS)
                        break;
                sleep_ms(20); /* nobody subscribed yet */
        }
        printf("PUBLISHED SIGNED %d\n", r);
        r = cella_bus_send_signed(c, receiver, "signed direct", 13, "text/plain");
        printf("SENT SIGNED %s\n", ename(r));
        r = cella_bus_send(c, receiver, "unsigned direct", 15, "text/plain");
        printf("SENT UNSIGNED %s\n", ename(r));
        fflush(stdout);
        for (;;)
                pause();
        return 0;
}

static unsigned verified;
static CellaBusSeen *seen;

/* Verifies body after changing it with change (on the decoded event). */
static int verify_changed(const uint8_t key[32], const CellaEvent *ev,
                          void (*change)(Cella__V1__BusMessageEvent *m))
{
        Cella__V1__BusMessageEvent *m =
                cella__v1__bus_message_event__unpack(NULL, ev->body_len, ev->body);
        static uint8_t out[CELLA_BODY_MAX];
        size_t n;

        char *sender;
        ProtobufCBinaryData sig;

        if (!m || !m->signature)
                return -EINVAL;
        sender = m->sender;
        sig = m->signature->signature;
        change(m);
        n = cella__v1__bus_message_event__pack(m, out);
        /* What change() pointed elsewhere is not the unpacked message's to free. */
        m->sender = sender;
        m->signature->signature = sig;
        cella__v1__bus_message_event__free_unpacked(m, NULL);
        return cella_bus_verify_body(key, out, n, NULL);
}

static void alter_data(Cella__V1__BusMessageEvent *m)
{
        m->data.data[0] ^= 1;
}

static void alter_counter(Cella__V1__BusMessageEvent *m)
{
        m->signature->counter++;
}

static void alter_sender(Cella__V1__BusMessageEvent *m)
{
        m->sender = "org.test.someone.else";
}

static void forge_signature(Cella__V1__BusMessageEvent *m)
{
        /* Another key's signature over the same fields (a forger without the
         * kernel's key): made as the kernel would, with the forger's key. */
        static uint8_t sig[64];
        uint8_t pk[32], sk[64];

        crypto_sign_keypair(pk, sk);
        crypto_sign_detached(sig, NULL, m->data.data, m->data.len, sk);
        m->signature->signature.data = sig;
}

static void on_bus(Cella *cc, const CellaEvent *ev, void *ud)
{
        CellaBusSigned s;
        uint8_t key[32];
        int r;

        (void)ud;
        if (ev->opcode != CELLA_EVENT_BUS_MESSAGE)
                return;
        r = cella_bus_verify(cc, ev, &s);
        printf("VERIFY %s from=%s data=%.*s: %s", ev->bus.topic[0] ? ev->bus.topic : "direct",
               ev->bus.sender, (int)ev->bus.len, (const char *)ev->bus.data, ename(r));
        if (r == 0)
                printf(" counter=%" PRIu64 " target=%s", s.counter, s.target);
        printf("\n");
        if (r == 0) {
                printf("SEEN %s\n", ename(cella_bus_seen_check(seen, ev->bus.sender, s.counter)));
                printf("REPLAYED %s\n",
                       ename(cella_bus_seen_check(seen, ev->bus.sender, s.counter)));
                cella_kernel_key(cc, key);
                printf("ALTERED DATA %s\n", ename(verify_changed(key, ev, alter_data)));
                printf("ALTERED COUNTER %s\n", ename(verify_changed(key, ev, alter_counter)));
                printf("ALTERED SENDER %s\n", ename(verify_changed(key, ev, alter_sender)));
                printf("FORGED %s\n", ename(verify_changed(key, ev, forge_signature)));
        }
        verified++;
}

static int verifier(const char *topic)
{
        uint8_t key[32];
        char hexkey[65];
        uint64_t sub;
        int r;

        cella_bus_seen_new(&seen);
        r = cella_kernel_key(c, key);
        if (r < 0) {
                printf("KERNEL KEY ERROR %s\n", ename(r));
                return 0;
        }
        hex(key, 32, hexkey);
        printf("KERNEL KEY %s\n", hexkey);
        r = cella_bus_subscribe(c, topic, &sub);
        printf("SUBSCRIBED %s\n", ename(r));
        cella_on_event(c, on_bus, NULL);
        while (verified < 3) {
                r = cella_wait(c, DEADLINE_MS);
                if (r <= 0) {
                        printf("WAIT %s\n", r == 0 ? "timed out" : ename(r));
                        return 0;
                }
                while ((r = cella_dispatch(c)) > 0)
                        ;
        }
        printf("VERIFIER DONE\n");
        cella_bus_seen_free(seen);
        return 0;
}

int main(int argc, char **argv)
{
        int r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        if (sodium_init() < 0 || argc < 2)
                return 2;
        r = cella_open(&c);
        if (r < 0) {
                printf("cella_open %s\n", ename(r));
                return 1;
        }
        if (strcmp(argv[1], "serve") == 0 && argc >= 3) {
                tell_spy = argc >= 4 ? argv[3] : NULL;
                r = serve(argv[2]);
        } else if (strcmp(argv[1], "open") == 0 && argc >= 3)
                r = open_main(argv[2], argc >= 4 ? argv[3] : NULL);
        else if (strcmp(argv[1], "open-crash") == 0 && argc >= 3)
                r = open_crash(argv[2]);
        else if (strcmp(argv[1], "crash-mid-stream") == 0 && argc >= 3)
                r = crash_mid_stream(argv[2]);
        else if (strcmp(argv[1], "mitm") == 0 && argc >= 4)
                r = mitm(argv[2], argv[3]);
        else if (strcmp(argv[1], "signer") == 0 && argc >= 4)
                r = signer(argv[2], argv[3]);
        else if (strcmp(argv[1], "verifier") == 0 && argc >= 3)
                r = verifier(argv[2]);
        else if (strcmp(argv[1], "steal") == 0)
                r = steal();
        else {
                printf("usage: channel-probe serve|open|open-crash|crash-mid-stream|mitm|signer|"
                       "verifier ...\n");
                r = 2;
        }
        cella_close(c);
        return r;
}
