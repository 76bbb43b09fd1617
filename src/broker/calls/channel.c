/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * channel.open, channel.accept, channel.refuse, channel.kernel_key (proto/cella.proto
 * "channel", docs/ipc.md "Secure channels" and "Signed bus messages"), and the
 * kernel's signature of bus messages (broker_channel_sign(), for calls/bus.c).
 *
 * Handshake. channel.open {peer, the opener's X25519 public key, purpose} needs
 * bus.send:<peer>. The kernel keeps an Open (a handle of the opener on that right,
 * so a revoke fails it with EACCES) and sends the peer EVENT_CHANNEL_REQUEST {token,
 * opener id, its key, purpose}. The peer answers channel.accept {token, its key} or
 * channel.refuse; on accept the kernel makes one AF_UNIX SOCK_SEQPACKET socketpair
 * and answers both calls, each with one end and the other side's id and key. The
 * ids are the kernel's (each app's own channel), never a field an app wrote; the
 * keys are what each app sent on its own channel. The kernel then keeps nothing:
 * the data never passes through it, and it never sees a private key.
 *
 * Bounds: CHANNEL_OPENS_MAX pending opens per opener and CHANNEL_INCOMING_MAX per
 * target (EBUSY), each expiring after its timeout (ETIMEDOUT). Nothing outlives
 * either side: the opener's cancel or exit goes through the call's cancel hook
 * (the peer is told, EVENT_CHANNEL_CANCELLED); the peer's exit fails the opener's
 * call with ECONNRESET (broker_channel_detach()).
 *
 * Signing. The kernel's ed25519 key is <state dir>/kernel-signing.key (64 bytes,
 * libsodium's secret key: seed and public key), made at the first start (0600,
 * O_EXCL) and refused afterwards if it is not a regular file owned by the kernel's
 * uid, mode 0600 at most, of exactly 64 bytes whose public half matches its seed,
 * or if it is a symlink. A refused key is never replaced: signing fails with EIO
 * naming the reason, so that nobody's planted key is used and nobody's real one is
 * overwritten. Without a state dir (tests) the key lives in memory only.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"
#include "broker/broker-internal.h"
#include "ipc/bus.h"
#include "wire/bussig.h"

#define CHANNEL_KEY_BYTES       32u     /* crypto_kx_PUBLICKEYBYTES */
#define CHANNEL_PURPOSE_MAX     255u    /* proto */
#define CHANNEL_OPENS_MAX       16u     /* pending opens of one app */
#define CHANNEL_INCOMING_MAX    64u     /* pending opens towards one app */
#define CHANNEL_TIMEOUT_DEFAULT 30000u  /* proto: timeout_ms 0 */
#define CHANNEL_TIMEOUT_MAX     600000u /* proto */
#define CHANNEL_ERRNO_MAX       4095    /* a refuser's errnum, as the kernel's MAX_ERRNO */
#define SIGNING_KEY_FILE        "kernel-signing.key"

typedef struct Open Open;

/* A channel.open waiting for the peer; a handle of the opener on bus.send:<peer>. */
struct Open {
        BrokerHandle handle;
        BrokerCall *call; /* the opener's; answered exactly once */
        BrokerApp *from, *to;
        uint64_t token;
        unsigned char key[CHANNEL_KEY_BYTES];
        bool plaintext;
        uv_timer_t timeout;
        Open *next, *prev;
};

typedef struct ChannelGlobal {
        Open *opens;
        uint64_t next_token;
        /* The signing key: loaded (or made) on first use. */
        bool key_tried;
        bool key_ok;
        char key_why[256];
        unsigned char sk[crypto_sign_SECRETKEYBYTES];
        unsigned char pk[crypto_sign_PUBLICKEYBYTES];
} ChannelGlobal;

/* Per app (BROKER_SLOT_CHANNEL): the counter of its signed messages, and its
 * signing bucket. */
typedef struct ChannelApp {
        uint64_t counter;
        RateLimit rl;
} ChannelApp;

static ChannelGlobal *global(Broker *b)
{
        void **slot = broker_channel_global(b);

        if (!*slot) {
                ChannelGlobal *g = calloc(1, sizeof *g);

                if (!g)
                        return NULL;
                g->next_token = 1;
                *slot = g;
        }
        return *slot;
}

void broker_channel_free(void *p)
{
        ChannelGlobal *g = p;

        if (!g)
                return;
        /* Every app has detached (broker_free()): no Open is left. */
        sodium_memzero(g->sk, sizeof g->sk);
        free(g);
}

/* ---- the signing key ------------------------------------------------------------- */

/* Reads and checks the key file at dfd/name (O_NOFOLLOW: a symlink is refused).
 * Returns 0, -ENOENT (none yet), or -EPERM with why filled. */
static int key_read(int dfd, ChannelGlobal *g)
{
        unsigned char seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES],
                sk[crypto_sign_SECRETKEYBYTES];
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        ssize_t n;

        fd = openat(dfd, SIGNING_KEY_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return -ENOENT;
                snprintf(g->key_why, sizeof g->key_why, "%s: %s%s", SIGNING_KEY_FILE,
                         strerror(errno), errno == ELOOP ? " (a symlink)" : "");
                return -EPERM;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                snprintf(g->key_why, sizeof g->key_why, "%s is not a regular file",
                         SIGNING_KEY_FILE);
                return -EPERM;
        }
        if (st.st_uid != geteuid() || (st.st_mode & 077)) {
                snprintf(g->key_why, sizeof g->key_why,
                         "%s is owned by uid %u with mode %04o; it must be the kernel's "
                         "(uid %u) and 0600",
                         SIGNING_KEY_FILE, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
                         (unsigned)geteuid());
                return -EPERM;
        }
        if (st.st_size != (off_t)sizeof sk) {
                snprintf(g->key_why, sizeof g->key_why, "%s has %lld bytes, not %zu",
                         SIGNING_KEY_FILE, (long long)st.st_size, sizeof sk);
                return -EPERM;
        }
        n = read(fd, sk, sizeof sk);
        if (n != (ssize_t)sizeof sk) {
                snprintf(g->key_why, sizeof g->key_why, "%s: short read", SIGNING_KEY_FILE);
                return -EPERM;
        }
        crypto_sign_ed25519_sk_to_seed(seed, sk);
        crypto_sign_seed_keypair(pk, g->sk, seed);
        sodium_memzero(seed, sizeof seed);
        if (sodium_memcmp(g->sk, sk, sizeof sk) != 0) {
                sodium_memzero(sk, sizeof sk);
                sodium_memzero(g->sk, sizeof g->sk);
                snprintf(g->key_why, sizeof g->key_why,
                         "%s is not an ed25519 secret key (its public half does not match)",
                         SIGNING_KEY_FILE);
                return -EPERM;
        }
        sodium_memzero(sk, sizeof sk);
        memcpy(g->pk, pk, sizeof pk);
        return 0;
}

/* Makes a new key at dfd/name: written to a temporary name (O_EXCL, 0600), synced,
 * then linked to the name without replacing anything (linkat fails with EEXIST if
 * one appeared meanwhile, which is then read instead). Returns 0 or -errno. */
static int key_create(int dfd, ChannelGlobal *g)
{
        char tmp[64];
        int fd, r = 0;

        crypto_sign_keypair(g->pk, g->sk);
        snprintf(tmp, sizeof tmp, ".%s.%ld", SIGNING_KEY_FILE, (long)getpid());
        (void)unlinkat(dfd, tmp, 0);
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        if (write(fd, g->sk, sizeof g->sk) != (ssize_t)sizeof g->sk || fsync(fd) < 0)
                r = -EIO;
        (void)close(fd);
        if (r == 0 && linkat(dfd, tmp, dfd, SIGNING_KEY_FILE, 0) < 0)
                r = -errno;
        (void)unlinkat(dfd, tmp, 0);
        return r;
}

/* The key, loaded or made on first use; NULL with *ret_why if there is none. */
static const ChannelGlobal *signing_key(Broker *b, const char **ret_why)
{
        const char *dir = broker_options(b)->state_dir;
        ChannelGlobal *g = global(b);
        _cleanup_close_ int dfd = -EBADF;
        int r;

        if (!g) {
                *ret_why = "out of memory";
                return NULL;
        }
        if (g->key_tried) {
                *ret_why = g->key_why;
                return g->key_ok ? g : NULL;
        }
        if (sodium_init() < 0) {
                *ret_why = "libsodium could not start";
                return NULL;
        }
        g->key_tried = true;
        if (!dir) {
                crypto_sign_keypair(g->pk, g->sk);
                g->key_ok = true;
                return g;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                snprintf(g->key_why, sizeof g->key_why, "state dir %s: %s", dir, strerror(errno));
                *ret_why = g->key_why;
                return NULL;
        }
        r = key_read(dfd, g);
        if (r == -ENOENT) {
                r = key_create(dfd, g);
                if (r == -EEXIST)
                        r = key_read(dfd, g);
                else if (r < 0)
                        snprintf(g->key_why, sizeof g->key_why, "cannot make %s/%s: %s", dir,
                                 SIGNING_KEY_FILE, strerror(-r));
        }
        g->key_ok = r == 0;
        if (!g->key_ok)
                sodium_memzero(g->sk, sizeof g->sk);
        *ret_why = g->key_why;
        return g->key_ok ? g : NULL;
}

int broker_channel_sign(BrokerApp *sender, unsigned kind, const char *topic_or_target,
                        const char *content_type, const void *data, size_t len, BusSig *ret,
                        const char **ret_why)
{
        const ChannelGlobal *g = signing_key(broker_app_broker(sender), ret_why);
        ChannelApp *ca = broker_app_slot(sender, BROKER_SLOT_CHANNEL);
        crypto_sign_state st;
        struct timespec ts;
        uint64_t now;

        if (!g)
                return -EIO;
        if (!ca) {
                const BrokerOptions *o = broker_options(broker_app_broker(sender));

                ca = calloc(1, sizeof *ca);
                if (!ca)
                        return -ENOMEM;
                if (ratelimit_init(&ca->rl, o->rate_costly, o->burst_costly, uv_hrtime()) < 0) {
                        free(ca);
                        return -EINVAL; /* broker_new() set valid defaults */
                }
                broker_app_set_slot(sender, BROKER_SLOT_CHANNEL, ca);
        }
        if (ratelimit_take(&ca->rl, uv_hrtime(), NULL) < 0) {
                *ret_why = "signed bus messages: over this app's signing rate (the costly "
                           "calls' rate)";
                return -EAGAIN;
        }
        (void)clock_gettime(CLOCK_REALTIME, &ts);
        now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        /* Strictly increasing, and above anything an earlier run of the kernel gave
         * this sender (as long as the wall clock is not set back). */
        ca->counter = MAX(ca->counter + 1, now);
        *ret = (BusSig){.timestamp_ns = (int64_t)now, .counter = ca->counter};
        bussig_feed(&st, kind, broker_app_id(sender), topic_or_target, content_type, data, len,
                    ret->timestamp_ns, ret->counter);
        crypto_sign_final_create(&st, ret->sig, NULL, g->sk);
        return 0;
}

/* ---- pending opens ---------------------------------------------------------------- */

static void open_free_cb(uv_handle_t *h)
{
        free(h->data);
}

/* Unlinks o and frees it (after its timer closed). Answers nobody. */
static void open_unlink(Open *o)
{
        ChannelGlobal *g = global(broker_app_broker(o->from));

        if (o->prev)
                o->prev->next = o->next;
        else
                g->opens = o->next;
        if (o->next)
                o->next->prev = o->prev;
        o->call->handler_data = NULL;
        uv_timer_stop(&o->timeout);
        uv_close((uv_handle_t *)&o->timeout, open_free_cb);
}

/* Tells the peer its request is gone (best effort: a full queue drops the event;
 * the token is dead anyway, an accept gets ENOENT). */
static void tell_cancelled(Open *o, int error)
{
        Cella__V1__ChannelCancelledEvent ev = CELLA__V1__CHANNEL_CANCELLED_EVENT__INIT;

        ev.token = o->token;
        ev.errnum = error;
        (void)broker_app_event(o->to, CELLA__V1__OPCODE__OPCODE_EVENT_CHANNEL_CANCELLED, &ev.base);
}

/* Fails the opener's call with error, tells the peer if tell, ends o. in_handles:
 * o's handle is still in the opener's list (false when the core closed it). */
static void open_fail(Open *o, int error, const char *message, bool tell, bool in_handles)
{
        BrokerCall *c = o->call;

        if (tell)
                tell_cancelled(o, error);
        if (in_handles)
                broker_handle_remove(&o->handle);
        open_unlink(o);
        broker_reply_error(c, error, message);
}

static void open_timeout(uv_timer_t *h)
{
        open_fail(h->data, ETIMEDOUT, "the peer did not answer in time", true, true);
}

/* The opener's bus.send right for the peer was revoked. */
static void open_handle_close(BrokerHandle *h)
{
        open_fail((Open *)((char *)h - offsetof(Open, handle)), EACCES, "bus.send was revoked",
                  true, false);
}

/* The opener cancelled its call, or is going away: the core disposes of the call. */
static void open_cancel(BrokerCall *c)
{
        Open *o = c->handler_data;

        if (!o)
                return;
        tell_cancelled(o, ECANCELED);
        broker_handle_remove(&o->handle);
        open_unlink(o);
}

void broker_channel_detach(BrokerApp *app)
{
        ChannelGlobal *g = *broker_channel_global(broker_app_broker(app));

        free(broker_app_slot(app, BROKER_SLOT_CHANNEL));
        broker_app_set_slot(app, BROKER_SLOT_CHANNEL, NULL);
        if (!g)
                return;
        for (Open *o = g->opens, *next; o; o = next) {
                next = o->next;
                if (o->from == app) /* the core abandoned its calls first: not reached */
                        open_fail(o, ECONNRESET, "app detached", true, true);
                else if (o->to == app)
                        open_fail(o, ECONNRESET, "the peer exited before answering", false, true);
        }
}

/* ---- the calls -------------------------------------------------------------------- */

static bool purpose_is_valid(const char *p)
{
        size_t n = strnlen(p, CHANNEL_PURPOSE_MAX + 1);

        if (n > CHANNEL_PURPOSE_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (p[i] < 0x20 || p[i] > 0x7e)
                        return false;
        return true;
}

static const char *open_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__ChannelOpenRequest *m = (const void *)req;
        int n;

        if (!manifest_id_is_valid(m->app_id) || m->public_key.len != CHANNEL_KEY_BYTES ||
            !purpose_is_valid(m->purpose) || m->timeout_ms > CHANNEL_TIMEOUT_MAX) {
                *ret_error = -EINVAL;
                return NULL;
        }
        n = snprintf(buf, size, "bus.send:%s", m->app_id);
        if (n < 0 || (size_t)n >= size || (size_t)n >= CAPABILITY_RIGHT_MAX) {
                *ret_error = -EINVAL;
                return NULL;
        }
        return buf;
}

static void open_handle(BrokerCall *c)
{
        const Cella__V1__ChannelOpenRequest *m = (const void *)c->request;
        Broker *b = broker_app_broker(c->app);
        Cella__V1__ChannelRequestEvent ev = CELLA__V1__CHANNEL_REQUEST_EVENT__INIT;
        ChannelGlobal *g = global(b);
        unsigned mine = 0, theirs = 0;
        BrokerApp *to;
        Open *o;
        int r;

        broker_audit_set(c, "to", json_string(m->app_id));
        broker_audit_set(c, "plaintext", json_boolean(m->plaintext));
        if (m->purpose[0])
                broker_audit_set(c, "purpose", json_string(m->purpose));
        if (!g) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        to = broker_app_find(b, m->app_id);
        if (!to || to == c->app) {
                broker_reply_error(c, to ? EINVAL : ENOENT,
                                   to ? "an app cannot open a channel to itself"
                                      : "the app is not running");
                return;
        }
        for (const Open *p = g->opens; p; p = p->next) {
                mine += p->from == c->app;
                theirs += p->to == to;
        }
        if (mine >= CHANNEL_OPENS_MAX || theirs >= CHANNEL_INCOMING_MAX) {
                char why[160];

                snprintf(why, sizeof why,
                         "%u channel opens of this app wait already (at most %u), "
                         "%u towards %s (at most %u)",
                         mine, CHANNEL_OPENS_MAX, theirs, m->app_id, CHANNEL_INCOMING_MAX);
                broker_reply_error(c, EBUSY, why);
                return;
        }
        o = calloc(1, sizeof *o);
        if (!o) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        if (uv_timer_init(broker_options(b)->loop, &o->timeout) < 0) {
                free(o);
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        o->timeout.data = o;
        o->call = c;
        o->from = c->app;
        o->to = to;
        o->token = g->next_token++;
        o->plaintext = m->plaintext;
        memcpy(o->key, m->public_key.data, CHANNEL_KEY_BYTES);

        ev.token = o->token;
        ev.app_id = (char *)broker_app_id(c->app);
        ev.public_key = (ProtobufCBinaryData){.len = CHANNEL_KEY_BYTES, .data = o->key};
        ev.purpose = m->purpose;
        ev.plaintext = m->plaintext;
        r = broker_app_event(to, CELLA__V1__OPCODE__OPCODE_EVENT_CHANNEL_REQUEST, &ev.base);
        if (r < 0) {
                uv_close((uv_handle_t *)&o->timeout, open_free_cb);
                broker_reply_error(c, r == -ENOBUFS ? EAGAIN : ECONNRESET,
                                   r == -ENOBUFS ? "the peer's event queue is full"
                                                 : "the peer's channel is closed");
                return;
        }
        broker_audit_set(c, "token", json_integer((json_int_t)o->token));
        o->next = g->opens;
        if (g->opens)
                g->opens->prev = o;
        g->opens = o;
        broker_handle_add(c->app, &o->handle, c->checked, open_handle_close);
        uv_timer_start(&o->timeout, open_timeout, m->timeout_ms ?: CHANNEL_TIMEOUT_DEFAULT, 0);
        c->handler_data = o;
        c->cancel = open_cancel;
        /* answered later: the peer's accept or refusal, the timeout, or an exit */
}

/* The pending open addressed to app with token, or NULL. */
static Open *open_find(BrokerApp *app, uint64_t token)
{
        ChannelGlobal *g = *broker_channel_global(broker_app_broker(app));

        for (Open *o = g ? g->opens : NULL; o; o = o->next)
                if (o->token == token && o->to == app)
                        return o;
        return NULL;
}

static const char *accept_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__ChannelAcceptRequest *m = (const void *)req;

        if (m->token == 0 || m->public_key.len != CHANNEL_KEY_BYTES)
                *ret_error = -EINVAL;
        return NULL;
}

static void accept_handle(BrokerCall *c)
{
        const Cella__V1__ChannelAcceptRequest *m = (const void *)c->request;
        Cella__V1__ChannelOpenReply to_opener = CELLA__V1__CHANNEL_OPEN_REPLY__INIT;
        Cella__V1__ChannelAcceptReply to_peer = CELLA__V1__CHANNEL_ACCEPT_REPLY__INIT;
        unsigned char key[CHANNEL_KEY_BYTES];
        BrokerCall *oc;
        int sv[2];
        Open *o;

        broker_audit_set(c, "token", json_integer((json_int_t)m->token));
        o = open_find(c->app, m->token);
        if (!o) {
                broker_reply_error(c, ENOENT,
                                   "no such channel request (answered, cancelled or "
                                   "timed out)");
                return;
        }
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                int e = errno;

                broker_reply_error(c, e, "socketpair");
                return;
        }
        broker_audit_set(c, "from", json_string(broker_app_id(o->from)));
        oc = o->call;
        memcpy(key, o->key, sizeof key);
        to_opener.app_id = (char *)broker_app_id(c->app);
        to_opener.public_key = m->public_key;
        to_opener.plaintext = o->plaintext;
        to_opener.token = o->token;
        to_peer.app_id = (char *)broker_app_id(o->from);
        to_peer.public_key = (ProtobufCBinaryData){.len = sizeof key, .data = key};
        to_peer.plaintext = o->plaintext;
        broker_handle_remove(&o->handle);
        open_unlink(o);
        broker_reply(oc, &to_opener.base, &sv[0], 1);
        broker_reply(c, &to_peer.base, &sv[1], 1);
}

static const char *refuse_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__ChannelRefuseRequest *m = (const void *)req;

        if (m->token == 0 || m->errnum < 0 || m->errnum > CHANNEL_ERRNO_MAX)
                *ret_error = -EINVAL;
        return NULL;
}

static void refuse_handle(BrokerCall *c)
{
        const Cella__V1__ChannelRefuseRequest *m = (const void *)c->request;
        Cella__V1__ChannelRefuseReply reply = CELLA__V1__CHANNEL_REFUSE_REPLY__INIT;
        Open *o;

        broker_audit_set(c, "token", json_integer((json_int_t)m->token));
        o = open_find(c->app, m->token);
        if (!o) {
                broker_reply_error(c, ENOENT,
                                   "no such channel request (answered, cancelled or "
                                   "timed out)");
                return;
        }
        broker_audit_set(c, "from", json_string(broker_app_id(o->from)));
        open_fail(o, m->errnum ?: ECONNREFUSED, "the peer refused the channel", false, true);
        broker_reply(c, &reply.base, NULL, 0);
}

static const char *no_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        return NULL;
}

static void kernel_key_handle(BrokerCall *c)
{
        Cella__V1__ChannelKernelKeyReply reply = CELLA__V1__CHANNEL_KERNEL_KEY_REPLY__INIT;
        const char *why = NULL;
        const ChannelGlobal *g = signing_key(broker_app_broker(c->app), &why);

        if (!g) {
                broker_reply_error(c, EIO, why);
                return;
        }
        reply.public_key = (ProtobufCBinaryData){.len = sizeof g->pk, .data = (uint8_t *)g->pk};
        broker_reply(c, &reply.base, NULL, 0);
}

const BrokerCallDef broker_calls_channel[] = {
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_CHANNEL_OPEN,
                .right_of = open_right,
                .handle = open_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_CHANNEL_ACCEPT,
                .right_of = accept_right,
                .handle = accept_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_CHANNEL_REFUSE,
                .right_of = refuse_right,
                .handle = refuse_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_CHANNEL_KERNEL_KEY,
                .right_of = no_right,
                .handle = kernel_key_handle,
        },
        {0},
};
