/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ipc semaphores and queues in the broker (src/broker/calls/ipc-semq.c): a real
 * Broker on a libuv loop with grants in a temporary state dir, apps attached over
 * socketpairs and driven with raw frames. What the integration tests cannot time
 * exactly: waiters served in the order they came, a cancelled or detached waiter
 * leaving no trace, a handle closed under a waiter, the creator's charge, the
 * readiness fd, and a persistent queue brought back by a new Broker.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/macro.h"
#include "base/strv.h"
#include "broker/broker-internal.h"
#include "broker/broker.h"
#include "broker/calls/ipc-internal.h"
#include "wire/channel.h"
#include "wire/wire.h"
#include "cella.pb-c.h"
#include "ipc/bus.h"
#include "ipc/queue-store.h"
#include "policy/grants.h"
#include "policy/manifest.h"

#define WAIT_MS  5000
#define APPS_MAX 4

#define OP(x) CELLA__V1__OPCODE__OPCODE_##x

typedef struct Reply {
        int err; /* negative errno of an error reply, or 0 */
        ProtobufCMessage *msg;
        int fd;
        bool got;
} Reply;

typedef struct TApp {
        char id[64];
        Manifest *manifest;
        BrokerApp *app;
        int fd;
        uint64_t next_id;
        char data_dir[300];
} TApp;

static uv_loop_t loop;
static char state_dir[] = "/tmp/cella-ipc-semq-XXXXXX";
static Grants *grants;
static Bus *bus;
static Broker *broker;
static TApp *apps[APPS_MAX];
/* replies by app slot and request id (ids stay below 64 here) */
static Reply replies[APPS_MAX][64];

static void broker_up(void)
{
        BrokerOptions o = {};

        o.loop = &loop;
        o.grants = grants;
        o.bus = bus;
        o.state_dir = state_dir;
        ck_assert_int_eq(broker_new(&o, &broker), 0);
}

static void reply_clear(Reply *r)
{
        if (r->msg)
                protobuf_c_message_free_unpacked(r->msg, NULL);
        safe_close(r->fd);
        *r = (Reply){.fd = -1};
}

static void app_detach(unsigned slot)
{
        TApp *a = apps[slot];

        if (!a)
                return;
        if (a->app)
                broker_app_detach(a->app);
        safe_close(a->fd);
        manifest_free(a->manifest);
        free(a);
        apps[slot] = NULL;
        for (unsigned i = 0; i < 64; i++)
                reply_clear(&replies[slot][i]);
}

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(state_dir));
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        ck_assert_int_eq(grants_open(state_dir, &grants), 0);
        ck_assert_int_eq(bus_new(&bus), 0);
        for (unsigned s = 0; s < APPS_MAX; s++)
                for (unsigned i = 0; i < 64; i++)
                        replies[s][i] = (Reply){.fd = -1};
        broker_up();
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void broker_down(void)
{
        for (unsigned i = 0; i < APPS_MAX; i++)
                app_detach(i);
        broker = broker_free(broker);
        uv_run(&loop, UV_RUN_DEFAULT);
}

static void teardown(void)
{
        broker_down();
        ck_assert_int_eq(uv_loop_close(&loop), 0);
        bus = bus_free(bus);
        grants = grants_free(grants);
        nftw(state_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        strcpy(state_dir + strlen(state_dir) - 6, "XXXXXX");
}

/* Installs, grants every right of, and attaches app id in slot. */
static TApp *app_new(unsigned slot, const char *id, const char *permissions)
{
        TApp *a = calloc(1, sizeof(*a));
        const char *bad = NULL, *why = NULL;
        BrokerAppInfo info = {.pidfd = -1};
        ManifestError err;
        char json[1024];
        int sv[2];

        ck_assert_ptr_nonnull(a);
        snprintf(a->id, sizeof(a->id), "%s", id);
        snprintf(json, sizeof(json),
                 "{\"id\":\"%s\",\"runtime\":\"native\",\"entry\":\"x\",\"permissions\":[%s]}", id,
                 permissions);
        ck_assert_int_eq(manifest_parse(json, strlen(json), "test", &a->manifest, &err), 0);
        ck_assert_int_eq(grants_install(grants, a->manifest, false, grants_now_ms(), &bad, &why),
                         0);
        /* reaching or not: these tests are about the queue, not who may reach whom */
        STRV_FOREACH (p, a->manifest->permissions)
                (void)grants_grant(grants, id, *p, false, GRANT_BY_USER, grants_now_ms());
        snprintf(a->data_dir, sizeof(a->data_dir), "%s/%s.data", state_dir, id);
        ck_assert(mkdir(a->data_dir, 0700) == 0 || errno == EEXIST);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        a->fd = sv[1];
        a->next_id = 1;
        info.manifest = a->manifest;
        info.app_dir = state_dir;
        info.data_dir = a->data_dir;
        info.started_ms = grants_now_ms();
        ck_assert_int_eq(broker_app_attach(broker, &info, sv[0], &a->app), 0);
        apps[slot] = a;
        return a;
}

/* Runs the loop once and files every frame the apps got. */
static void pump(void)
{
        static uint8_t buf[CHANNEL_DATAGRAM_MAX];
        struct pollfd p[APPS_MAX];
        unsigned n = 0;

        uv_run(&loop, UV_RUN_NOWAIT);
        for (unsigned s = 0; s < APPS_MAX; s++) {
                ChannelFrame cf;
                int fds[CHANNEL_FDS_MAX], r;

                if (!apps[s])
                        continue;
                while ((r = channel_recv(apps[s]->fd, &cf, buf, fds, CHANNEL_FDS_MAX,
                                         MSG_DONTWAIT)) == 0) {
                        Reply *rp;

                        for (unsigned i = 1; i < cf.n_fds; i++)
                                close(fds[i]);
                        if (!(cf.flags & CHANNEL_FLAG_REPLY) || cf.request_id >= 64) {
                                if (cf.n_fds)
                                        close(fds[0]);
                                continue; /* events */
                        }
                        rp = &replies[s][cf.request_id];
                        ck_assert_msg(!rp->got, "two replies to one request");
                        rp->got = true;
                        rp->fd = cf.n_fds ? fds[0] : -1;
                        if (cf.flags & CHANNEL_FLAG_ERROR) {
                                char m[256];

                                ck_assert_int_eq(channel_parse_error(cf.body, cf.body_len, &rp->err,
                                                                     m, sizeof(m)),
                                                 0);
                        } else
                                ck_assert_int_eq(wire_unpack(&cf, &rp->msg), 0);
                }
                p[n++] = (struct pollfd){.fd = apps[s]->fd, .events = POLLIN};
        }
        poll(p, n, 1);
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t send_req(unsigned slot, uint16_t opcode, const ProtobufCMessage *req)
{
        static uint8_t body[CHANNEL_BODY_MAX];
        TApp *a = apps[slot];
        ChannelFrame f = {.opcode = opcode, .request_id = a->next_id++};
        int n = wire_pack(req, body, sizeof(body));

        ck_assert_int_ge(n, 0);
        ck_assert_uint_lt(f.request_id, 64);
        f.body = body;
        f.body_len = (size_t)n;
        ck_assert_int_eq(channel_send(a->fd, &f, NULL, 0, 0), 0);
        return f.request_id;
}

static void send_cancel(unsigned slot, uint16_t opcode, uint64_t id)
{
        ChannelFrame f = {.opcode = opcode, .request_id = id, .flags = CHANNEL_FLAG_CANCEL};

        ck_assert_int_eq(channel_send(apps[slot]->fd, &f, NULL, 0, 0), 0);
}

/* Pumps for ms and says whether request id of slot got its reply. */
static bool answered_within(unsigned slot, uint64_t id, int ms)
{
        int64_t end = now_ms() + ms;

        do
                pump();
        while (!replies[slot][id].got && now_ms() < end);
        return replies[slot][id].got;
}

static Reply *reply_of(unsigned slot, uint64_t id)
{
        ck_assert_msg(answered_within(slot, id, WAIT_MS), "no reply to %s's request %llu",
                      apps[slot]->id, (unsigned long long)id);
        return &replies[slot][id];
}

/* ---- requests ----------------------------------------------------------------------- */

static uint64_t queue_create(unsigned slot, const char *name, uint32_t depth, bool persistent,
                             const char *offer_app, int *ret_fd)
{
        Cella__V1__IpcQueueCreateRequest req = CELLA__V1__IPC_QUEUE_CREATE_REQUEST__INIT;
        Cella__V1__IpcOffer offer = CELLA__V1__IPC_OFFER__INIT, *op = &offer;
        Reply *r;
        uint64_t h;

        req.name = (char *)name;
        req.depth_max = depth;
        req.message_bytes_max = 1000;
        req.persistent = persistent;
        if (offer_app) {
                offer.app = (char *)offer_app;
                offer.modes = IPC_MODE_RW;
                req.offers = &op;
                req.n_offers = 1;
        }
        r = reply_of(slot, send_req(slot, OP(IPC_QUEUE_CREATE), &req.base));
        ck_assert_int_eq(r->err, 0);
        h = ((Cella__V1__IpcHandleReply *)r->msg)->handle;
        ck_assert_int_ge(r->fd, 0);
        if (ret_fd) {
                *ret_fd = r->fd;
                r->fd = -1;
        }
        return h;
}

static uint64_t queue_open(unsigned slot, const char *name, uint32_t modes, int *ret_fd)
{
        Cella__V1__IpcOpenRequest req = CELLA__V1__IPC_OPEN_REQUEST__INIT;
        Reply *r;

        req.name = (char *)name;
        req.modes = modes;
        r = reply_of(slot, send_req(slot, OP(IPC_QUEUE_OPEN), &req.base));
        ck_assert_int_eq(r->err, 0);
        if (ret_fd) {
                *ret_fd = r->fd;
                r->fd = -1;
        }
        return ((Cella__V1__IpcHandleReply *)r->msg)->handle;
}

/* The error of slot's open of name with modes (0: opened; the handle is kept). */
static int queue_open_err(unsigned slot, const char *name, uint32_t modes)
{
        Cella__V1__IpcOpenRequest req = CELLA__V1__IPC_OPEN_REQUEST__INIT;

        req.name = (char *)name;
        req.modes = modes;
        return reply_of(slot, send_req(slot, OP(IPC_QUEUE_OPEN), &req.base))->err;
}

/* IPC_OFFER: handle's object offered to app_id (RW) alone, or to nobody (NULL). */
static int queue_offer(unsigned slot, uint64_t handle, const char *app_id)
{
        Cella__V1__IpcOfferRequest req = CELLA__V1__IPC_OFFER_REQUEST__INIT;
        Cella__V1__IpcOffer offer = CELLA__V1__IPC_OFFER__INIT, *op = &offer;

        req.handle = handle;
        if (app_id) {
                offer.app = (char *)app_id;
                offer.modes = IPC_MODE_RW;
                req.offers = &op;
                req.n_offers = 1;
        }
        return reply_of(slot, send_req(slot, OP(IPC_OFFER), &req.base))->err;
}

static int queue_send(unsigned slot, uint64_t handle, const char *text, uint32_t prio)
{
        Cella__V1__IpcQueueSendRequest req = CELLA__V1__IPC_QUEUE_SEND_REQUEST__INIT;
        Cella__V1__IpcQueueMessage m = CELLA__V1__IPC_QUEUE_MESSAGE__INIT, *mp = &m;

        m.data.data = (uint8_t *)text;
        m.data.len = strlen(text);
        m.priority = prio;
        req.handle = handle;
        req.messages = &mp;
        req.n_messages = 1;
        return reply_of(slot, send_req(slot, OP(IPC_QUEUE_SEND), &req.base))->err;
}

static uint64_t queue_receive(unsigned slot, uint64_t handle, uint32_t max, uint32_t timeout_ms)
{
        Cella__V1__IpcQueueReceiveRequest req = CELLA__V1__IPC_QUEUE_RECEIVE_REQUEST__INIT;

        req.handle = handle;
        req.max_messages = max;
        req.timeout_ms = timeout_ms;
        return send_req(slot, OP(IPC_QUEUE_RECEIVE), &req.base);
}

/* The one message of a receive's reply: checks its text (and seq if > 0). */
static void expect_one(Reply *r, const char *text, uint64_t seq)
{
        const Cella__V1__IpcQueueReceiveReply *m;

        ck_assert_int_eq(r->err, 0);
        m = (const Cella__V1__IpcQueueReceiveReply *)r->msg;
        ck_assert_uint_eq(m->n_messages, 1);
        ck_assert_uint_eq(m->messages[0]->data.len, strlen(text));
        ck_assert_int_eq(memcmp(m->messages[0]->data.data, text, strlen(text)), 0);
        if (seq)
                ck_assert_uint_eq(m->messages[0]->seq, seq);
}

static bool readable(int fd)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};

        /* the kernel arms the timerfd to expire at once: give the expiry a moment */
        return poll(&p, 1, 200) == 1;
}

#define A "org.test.a"
#define B "org.test.b"
#define C "org.test.c"
#define Q A ".q"

/* ---- tests ------------------------------------------------------------------------ */

/* Two waiters are served in the order they came; a cancelled one leaves no trace. */
START_TEST(test_waiters_in_order_and_cancel)
{
        uint64_t qa, qb, qc, wb, wc, wb2;

        app_new(0, A, "\"ipc.queue:" Q "\"");
        app_new(1, B, "\"ipc.queue:" Q "\"");
        app_new(2, C, "\"ipc.queue:" Q "\"");
        qa = queue_create(0, Q, 8, false, "org.test.*", NULL);
        qb = queue_open(1, Q, IPC_MODE_READ, NULL);
        qc = queue_open(2, Q, IPC_MODE_READ, NULL);
        wb = queue_receive(1, qb, 1, 10000);
        ck_assert(!answered_within(1, wb, 50)); /* B waits first */
        wc = queue_receive(2, qc, 1, 10000);
        ck_assert(!answered_within(2, wc, 50));
        ck_assert_int_eq(queue_send(0, qa, "one", 0), 0);
        expect_one(reply_of(1, wb), "one", 1);
        ck_assert(!answered_within(2, wc, 50)); /* C still waits */
        /* B waits again, behind C */
        wb2 = queue_receive(1, qb, 1, 10000);
        ck_assert(!answered_within(1, wb2, 50));
        ck_assert_int_eq(queue_send(0, qa, "two", 0), 0);
        expect_one(reply_of(2, wc), "two", 2);
        /* C's next wait is cancelled: the message goes to B, none to C */
        wc = queue_receive(2, qc, 1, 10000);
        ck_assert(!answered_within(2, wc, 50));
        send_cancel(2, OP(IPC_QUEUE_RECEIVE), wc);
        ck_assert(!answered_within(2, wc, 50));
        ck_assert_int_eq(queue_send(0, qa, "three", 0), 0);
        expect_one(reply_of(1, wb2), "three", 3);
        ck_assert(!answered_within(2, wc, 100)); /* a cancelled call is never answered */
}
END_TEST

/* A waiter times out; a waiter whose app goes, or whose handle closes, leaves no
 * trace: the next message stays for the creator. */
START_TEST(test_timeout_detach_and_close)
{
        uint64_t qa, qb, qc, w, t0;
        IpcHandle *h;

        app_new(0, A, "\"ipc.queue:" Q "\"");
        app_new(1, B, "\"ipc.queue:" Q "\"");
        app_new(2, C, "\"ipc.queue:" Q "\"");
        qa = queue_create(0, Q, 8, false, "org.test.*", NULL);
        qb = queue_open(1, Q, IPC_MODE_READ, NULL);
        qc = queue_open(2, Q, IPC_MODE_READ, NULL);
        t0 = (uint64_t)now_ms();
        w = queue_receive(1, qb, 1, 150);
        ck_assert_int_eq(reply_of(1, w)->err, -ETIMEDOUT);
        ck_assert_uint_ge((uint64_t)now_ms() - t0, 150);
        /* B waits and goes away */
        w = queue_receive(1, qb, 1, 10000);
        ck_assert(!answered_within(1, w, 50));
        app_detach(1);
        /* C waits and its handle is closed under it (as a revoke does) */
        w = queue_receive(2, qc, 1, 10000);
        ck_assert(!answered_within(2, w, 50));
        h = ipc_handle_get(apps[2]->app, qc, CELLA__V1__IPC_KIND__IPC_KIND_QUEUE);
        ck_assert_ptr_nonnull(h);
        ipc_handle_close(h, IPC_CLOSE_REVOKED);
        ck_assert_int_eq(reply_of(2, w)->err, -ECANCELED);
        /* nobody took the next message */
        ck_assert_int_eq(queue_send(0, qa, "kept", 0), 0);
        expect_one(reply_of(0, queue_receive(0, qa, 4, 0)), "kept", 1);
        ck_assert_int_eq(reply_of(0, queue_receive(0, qa, 4, 0))->err, -EAGAIN);
}
END_TEST

/* The bytes queued are charged to the creator whoever sends, and uncharged when
 * received; a READ handle's fd is readable exactly while messages wait, a
 * WRITE-only handle's never. */
START_TEST(test_charge_and_readiness)
{
        Cella__V1__IpcUsage u = CELLA__V1__IPC_USAGE__INIT;
        uint64_t qa, qw;
        int fa, fw;

        app_new(0, A, "\"ipc.queue:" Q "\"");
        app_new(1, B, "\"ipc.queue:" Q "\"");
        qa = queue_create(0, Q, 8, false, B, &fa);
        qw = queue_open(1, Q, IPC_MODE_WRITE, &fw);
        ck_assert(!readable(fa));
        ck_assert_int_eq(queue_send(1, qw, "12345", 0), 0);
        ck_assert_int_eq(queue_send(1, qw, "123", 0), 0);
        ipc_usage(apps[0]->app, &u);
        ck_assert_uint_eq(u.queued_bytes, 8);
        ipc_usage(apps[1]->app, &u);
        ck_assert_uint_eq(u.queued_bytes, 0);
        ck_assert(readable(fa));
        ck_assert(!readable(fw));
        ck_assert_int_eq(reply_of(0, queue_receive(0, qa, 8, 0))->err, 0);
        ipc_usage(apps[0]->app, &u);
        ck_assert_uint_eq(u.queued_bytes, 0);
        ck_assert(!readable(fa));
        /* a READ-only handle cannot send, a WRITE-only one cannot receive */
        ck_assert_int_eq(reply_of(1, queue_receive(1, qw, 1, 0))->err, -EPERM);
        close(fa);
        close(fw);
}
END_TEST

/* A persistent queue and its messages come back in a new Broker on the same state
 * directory, with their order, sequence numbers and sender. */
START_TEST(test_persistent_across_brokers)
{
        const Cella__V1__IpcQueueReceiveReply *m;
        uint64_t qa;
        Reply *r;
        int fa;

        app_new(0, A, "\"ipc.queue:" Q "\"");
        qa = queue_create(0, Q, 8, true, NULL, NULL);
        ck_assert_int_eq(queue_send(0, qa, "low", 0), 0);
        ck_assert_int_eq(queue_send(0, qa, "high", 9), 0);
        ck_assert_int_eq(queue_send(0, qa, "low2", 0), 0);
        expect_one(reply_of(0, queue_receive(0, qa, 1, 0)), "high", 2);
        broker_down();

        broker_up();
        app_new(0, A, "\"ipc.queue:" Q "\"");
        qa = queue_open(0, Q, IPC_MODE_RW, &fa);
        ck_assert(readable(fa));
        r = reply_of(0, queue_receive(0, qa, 8, 0));
        ck_assert_int_eq(r->err, 0);
        m = (const Cella__V1__IpcQueueReceiveReply *)r->msg;
        ck_assert_uint_eq(m->n_messages, 2);
        ck_assert_uint_eq(m->messages[0]->seq, 1);
        ck_assert_uint_eq(m->messages[1]->seq, 3);
        ck_assert_str_eq(m->messages[0]->sender, A);
        ck_assert_int_eq(memcmp(m->messages[1]->data.data, "low2", 4), 0);
        /* the numbers go on */
        ck_assert_int_eq(queue_send(0, qa, "next", 0), 0);
        expect_one(reply_of(0, queue_receive(0, qa, 8, 0)), "next", 4);
        close(fa);
}
END_TEST

/* IPC_OFFER on a persistent queue is stored: a new Broker brings back the offers in
 * force, not the ones the queue was created with. */
START_TEST(test_persistent_offers_across_brokers)
{
        uint64_t qa;

        app_new(0, A, "\"ipc.queue:" Q "\"");
        app_new(1, B, "\"ipc.queue:" Q "\"");
        app_new(2, C, "\"ipc.queue:" Q "\"");
        qa = queue_create(0, Q, 8, true, B, NULL);
        ck_assert_int_eq(queue_open_err(1, Q, IPC_MODE_READ), 0);
        ck_assert_int_eq(queue_open_err(2, Q, IPC_MODE_READ), -EPERM);
        ck_assert_int_eq(queue_offer(0, qa, C), 0);
        ck_assert_int_eq(queue_open_err(1, Q, IPC_MODE_READ), -EPERM);
        ck_assert_int_eq(queue_open_err(2, Q, IPC_MODE_READ), 0);
        broker_down();

        broker_up();
        app_new(0, A, "\"ipc.queue:" Q "\"");
        app_new(1, B, "\"ipc.queue:" Q "\"");
        app_new(2, C, "\"ipc.queue:" Q "\"");
        ck_assert_int_eq(queue_open_err(1, Q, IPC_MODE_WRITE), -EPERM); /* no longer offered */
        ck_assert_int_eq(queue_open_err(2, Q, IPC_MODE_WRITE), 0);      /* offered later */
        /* offered to nobody: stored as well */
        qa = queue_open(0, Q, IPC_MODE_RW, NULL);
        ck_assert_int_eq(queue_offer(0, qa, NULL), 0);
        broker_down();

        broker_up();
        app_new(0, A, "\"ipc.queue:" Q "\"");
        app_new(2, C, "\"ipc.queue:" Q "\"");
        ck_assert_int_eq(queue_open_err(2, Q, IPC_MODE_WRITE), -EPERM);
        ck_assert_int_eq(queue_open_err(0, Q, IPC_MODE_RW), 0); /* the creator always */
}
END_TEST

/* Forgetting an app (`cella remove`) drops every queue it created: live ones with
 * their holders told and their waiters failed, stored ones with their rows; a queue
 * of another app stays. */
START_TEST(test_forget_owner_live_and_stored)
{
        uint64_t qb, qbn, w;
        char why[QUEUE_STORE_WHY_MAX];

        app_new(0, A, "\"ipc.queue:" A ".*\"");
        app_new(1, B, "\"ipc.queue:" A ".*\", \"ipc.queue:" B ".*\"");
        (void)queue_create(0, Q, 8, true, B, NULL);
        (void)queue_create(0, A ".n", 8, false, B, NULL);
        (void)queue_create(1, B ".kept", 8, true, NULL, NULL);
        qb = queue_open(1, Q, IPC_MODE_RW, NULL);
        qbn = queue_open(1, A ".n", IPC_MODE_READ, NULL);
        ck_assert_int_eq(queue_send(1, qb, "m", 0), 0);
        w = queue_receive(1, qbn, 1, 10000);
        ck_assert(!answered_within(1, w, 50));
        /* the kernel holds the store: a forget from outside leaves it to the kernel */
        ck_assert_int_eq(queue_store_forget_owner_at(state_dir, A, why), -EBUSY);
        ck_assert_int_eq(broker_ipc_queue_forget_owner(broker, A), 1);
        ck_assert_int_eq(reply_of(1, w)->err, -ECANCELED); /* no stuck waiter */
        ck_assert_ptr_null(ipc_handle_get(apps[1]->app, qb, CELLA__V1__IPC_KIND__IPC_KIND_QUEUE));
        ck_assert_ptr_null(ipc_handle_get(apps[1]->app, qbn, CELLA__V1__IPC_KIND__IPC_KIND_QUEUE));
        ck_assert_int_eq(queue_open_err(0, Q, IPC_MODE_RW), -ENOENT);
        ck_assert_int_eq(queue_open_err(0, A ".n", IPC_MODE_RW), -ENOENT);
        ck_assert_int_eq(broker_ipc_queue_forget_owner(broker, A), 0);
        /* the name is free for a new app of the same id */
        (void)queue_create(0, Q, 8, false, NULL, NULL);
        broker_down();

        broker_up();
        app_new(0, A, "\"ipc.queue:" A ".*\"");
        app_new(1, B, "\"ipc.queue:" B ".*\"");
        ck_assert_int_eq(queue_open_err(0, Q, IPC_MODE_RW), -ENOENT);
        ck_assert_int_eq(queue_open_err(1, B ".kept", IPC_MODE_RW), 0);
        /* with no kernel holding the store, the rows go from outside */
        (void)queue_create(0, Q, 8, true, NULL, NULL);
        broker_down();
        ck_assert_int_eq(queue_store_forget_owner_at(state_dir, A, why), 1);
        ck_assert_int_eq(queue_store_forget_owner_at(state_dir, A, why), 0);
        broker_up();
        app_new(0, A, "\"ipc.queue:" A ".*\"");
        app_new(1, B, "\"ipc.queue:" B ".*\"");
        ck_assert_int_eq(queue_open_err(0, Q, IPC_MODE_RW), -ENOENT);
        ck_assert_int_eq(queue_open_err(1, B ".kept", IPC_MODE_RW), 0);
}
END_TEST

/* A semaphore: every handle's fd is the one counter; modes other than READ|WRITE
 * are refused; the initial count is the creator's. */
START_TEST(test_semaphore_handles_share_one_counter)
{
        Cella__V1__IpcSemCreateRequest cr = CELLA__V1__IPC_SEM_CREATE_REQUEST__INIT;
        Cella__V1__IpcOpenRequest op = CELLA__V1__IPC_OPEN_REQUEST__INIT;
        Cella__V1__IpcOffer offer = CELLA__V1__IPC_OFFER__INIT, *offp = &offer;
        uint64_t v = 0;
        Reply *r;
        int fa, fb;

        app_new(0, A, "\"ipc.sem:" A ".s\"");
        app_new(1, B, "\"ipc.sem:" A ".s\"");
        cr.name = (char *)A ".s";
        cr.initial = 2;
        offer.app = (char *)B;
        offer.modes = IPC_MODE_RW;
        cr.offers = &offp;
        cr.n_offers = 1;
        r = reply_of(0, send_req(0, OP(IPC_SEM_CREATE), &cr.base));
        ck_assert_int_eq(r->err, 0);
        fa = r->fd;
        r->fd = -1;
        op.name = (char *)A ".s";
        op.modes = IPC_MODE_READ;
        ck_assert_int_eq(reply_of(1, send_req(1, OP(IPC_SEM_OPEN), &op.base))->err, -EINVAL);
        op.modes = IPC_MODE_RW;
        r = reply_of(1, send_req(1, OP(IPC_SEM_OPEN), &op.base));
        ck_assert_int_eq(r->err, 0);
        fb = r->fd;
        r->fd = -1;
        /* EFD_SEMAPHORE: each read takes one */
        ck_assert_int_eq(read(fb, &v, sizeof(v)), (ssize_t)sizeof(v));
        ck_assert_uint_eq(v, 1);
        ck_assert_int_eq(read(fa, &v, sizeof(v)), (ssize_t)sizeof(v));
        ck_assert_int_eq(read(fb, &v, sizeof(v)), -1);
        ck_assert_int_eq(errno, EAGAIN); /* O_NONBLOCK, as the kernel made it */
        v = 1;
        ck_assert_int_eq(write(fa, &v, sizeof(v)), (ssize_t)sizeof(v));
        ck_assert_int_eq(read(fb, &v, sizeof(v)), (ssize_t)sizeof(v));
        close(fa);
        close(fb);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("ipc-semq");
        TCase *tc = tcase_create("queues");
        SRunner *sr;
        int failed;

        tcase_set_timeout(tc, 60);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_waiters_in_order_and_cancel);
        tcase_add_test(tc, test_timeout_detach_and_close);
        tcase_add_test(tc, test_charge_and_readiness);
        tcase_add_test(tc, test_persistent_across_brokers);
        tcase_add_test(tc, test_persistent_offers_across_brokers);
        tcase_add_test(tc, test_forget_owner_live_and_stored);
        tcase_add_test(tc, test_semaphore_handles_share_one_counter);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
