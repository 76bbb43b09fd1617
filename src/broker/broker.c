/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The broker's core: each app's channel on the supervisor's loop, the checks every
 * request goes through (broker.h, steps 1-8), the grant cache, the audit record of
 * every call, and the replies with their bounded per-app queue.
 *
 * Speed. A readiness reads up to BROKER_FRAMES_PER_WAKE frames, RECV_BATCH per
 * recvmmsg(2), and answers them as a batch: the replies are packed into one arena,
 * the batch's audit records are appended, written out together
 * (audit_flush_hold()), and only then are the replies sent, so no app sees the
 * answer to a call whose record is not in the log; the audit log's lock is released
 * after the sends. A no-op call thus costs the broker five system calls besides its
 * epoll_wait(): recvmmsg, the audit log's lock, lseek and write, and the reply's
 * sendmsg (bench/call, docs/benchmarks.md). Call structs come from a per-app free
 * list; the audit record is formatted without a JSON object (audit_append_fields());
 * the only allocation per call is protobuf-c's decoded request.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/time-util.h"
#include "broker/broker-internal.h"
#include "policy/decide.h"

#define BATCH_ENTRIES_MAX (2u * BROKER_FRAMES_PER_WAKE)
#define BATCH_ARENA_SIZE  (4u * CHANNEL_BODY_MAX) /* bytes; flushed early when full */
#define CALLS_CACHED_MAX  16u                     /* free call structs kept per app */
#define DISPATCH_AREAS    16u                     /* opcode high byte 0x01..0x0f */
#define DISPATCH_CALLS    32u                     /* opcode low byte 0x00..0x1f */
#define RECV_BATCH        16u                     /* frames per recvmmsg(2) */

typedef struct CallImpl {
        BrokerCall pub;
        const BrokerCallDef *def;
        char right[CAPABILITY_RIGHT_MAX];
        char also_right[CAPABILITY_RIGHT_MAX];
        CapabilityRight asked[2]; /* right, also_right parsed (.cap NULL: did not parse) */
        struct CallImpl *free_next;
} CallImpl;

/* A frame waiting for room in the app's socket. */
typedef struct OutFrame {
        struct OutFrame *next;
        ChannelFrame frame; /* body points at data */
        unsigned n_fds;
        int fds[CHANNEL_FDS_MAX];
        uint8_t data[];
} OutFrame;

/* A frame of the current batch: its body is in the broker's arena. */
typedef struct BatchEntry {
        uint16_t opcode;
        uint32_t flags;
        uint64_t request_id;
        size_t off, len;
        bool is_event;
        unsigned n_fds;
        int fds[CHANNEL_FDS_MAX];
} BatchEntry;

struct BrokerApp {
        Broker *broker;
        BrokerApp *next, *prev;
        char *id;
        BrokerAppInfo info;
        char **env;

        int fd;
        uv_poll_t *poll; /* freed by its close callback */
        int poll_events;
        bool closed;

        GrantCache cache;
        RateLimit rl[_WIRE_CLASS_MAX]; /* by WireClass; [WIRE_CLASS_NONE] unused */

        BrokerCall *calls; /* pending, answered later */
        unsigned outstanding;
        CallImpl *free_calls;
        unsigned n_free_calls;

        BrokerHandle *handles;

        OutFrame *outq_head, *outq_tail;
        unsigned outq_len;
        size_t outq_bytes; /* bodies and headers of the frames waiting */
        uint64_t frame_ns; /* loop time a frame of this app costs, a moving average */
        unsigned outq_fds; /* fds those frames carry (open in the kernel meanwhile) */

        BrokerAppStats stats;
        void *slots[_BROKER_SLOT_MAX];
        AuditCoalesce *coalesce; /* its call records (audit.h, "Coalescing") */
};

struct Broker {
        BrokerOptions o;
        char *state_dir;
        char **roots;
        BrokerHost host;
        BrokerApp *apps;
        const BrokerCallDef *dispatch[DISPATCH_AREAS][DISPATCH_CALLS];
        uint64_t audit_failures;
        uv_timer_t *coalesce_timer; /* writes the apps' due audit summaries; NULL: none */
        int64_t coalesce_due;       /* when it fires (wall-clock us), INT64_MAX: stopped */
        void *net;                  /* calls/net.c's (broker_net_new()) */
        void *channel;              /* calls/channel.c's (broker_channel_global()) */
        void *keystore;             /* calls/keystore.c's, opened on first use */
        void *ipc;                  /* calls/ipc-object.c's registry (broker_ipc_new()) */
        void *ipc_queue;            /* calls/ipc-semq.c's queue store (broker_ipc_queue_new()) */

        /* The batch of the app being read. */
        BrokerApp *batch_app;
        BatchEntry batch[BATCH_ENTRIES_MAX];
        unsigned n_batch;
        size_t arena_used;
        uint8_t *arena; /* BATCH_ARENA_SIZE bytes */
        /* RECV_BATCH receive buffers of CHANNEL_DATAGRAM_MAX bytes, one recvmmsg()'s
         * worth (1 MiB of address space; only the pages frames reach are backed). */
        uint8_t *rbufs;
        uint8_t sbuf[CHANNEL_BODY_MAX]; /* packing outside a batch */
};

static CallImpl *impl(BrokerCall *c)
{
        return (CallImpl *)c;
}

static void close_fds(int *fds, unsigned n)
{
        for (unsigned i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

/* ---- audit ------------------------------------------------------------------- */

int broker_app_audit(BrokerApp *app, const char *event, json_t *fields)
{
        Broker *b = app->broker;
        int r;

        if (!b->o.audit)
                return 0;
        r = audit_append(b->o.audit, app->id, event, fields);
        if (r < 0)
                b->audit_failures++;
        return r;
}

static void audit_flush_now(Broker *b)
{
        if (b->o.audit && audit_flush(b->o.audit) < 0)
                b->audit_failures++;
}

static void coalesce_arm(Broker *b, int64_t due);

/* Writes app's audit summaries that are due (all of them if all). */
static void coalesce_flush(BrokerApp *app, int64_t now, bool all)
{
        Broker *b = app->broker;

        if (b->o.audit && app->coalesce &&
            audit_coalesce_flush(app->coalesce, b->o.audit, app->id, now, all) < 0)
                b->audit_failures++;
}

/* The timer: every app's summaries whose window has ended, then rearmed for the next. */
static void on_coalesce_timer(uv_timer_t *t)
{
        Broker *b = t->data;
        int64_t now = now_realtime_us(), due = INT64_MAX;
        uint64_t failures = b->audit_failures;

        b->coalesce_due = INT64_MAX;
        for (BrokerApp *a = b->apps; a; a = a->next) {
                int64_t d;

                coalesce_flush(a, now, false);
                d = audit_coalesce_due(a->coalesce);
                if (d < due)
                        due = d;
        }
        audit_flush_now(b);
        /* A summary that could not be written (a full disk) stays due: try again in
         * a second, not at once, or the loop would spin on it. */
        if (b->audit_failures != failures && due != INT64_MAX && due < now + 1000000)
                due = now + 1000000;
        coalesce_arm(b, due);
}

/* Makes sure the timer fires by due (wall-clock us; INT64_MAX: nothing due). */
static void coalesce_arm(Broker *b, int64_t due)
{
        int64_t now;

        if (!b->coalesce_timer || due == INT64_MAX || due >= b->coalesce_due)
                return;
        now = now_realtime_us();
        b->coalesce_due = due;
        /* +1 ms: the window has ended when it fires, not a hair before. */
        (void)uv_timer_start(b->coalesce_timer, on_coalesce_timer,
                             due > now ? (uint64_t)(due - now) / 1000 + 1 : 0, 0);
}

/* The record of one answered call: op, right (null if none), decision, errno, then
 * the handler's fields (borrowed) that are not among those. Formatted by the audit
 * log itself, without a JSON object built for it: the same line. It goes through
 * the app's coalescer: a repeat of a record written within the last second is
 * counted instead, and summed up in one "suppressed" record (audit.h). */
static void audit_call(BrokerApp *app, const char *op, const char *right, const char *decision,
                       int error, json_t *extra)
{
        Broker *b = app->broker;
        const AuditField f[] = {
                {.key = "op", .str = op},
                {.key = "right", .str = right},
                {.key = "decision", .str = decision},
                {.key = "errno", .type = AUDIT_FIELD_INT, .num = error},
        };
        const json_t *x = json_is_object(extra) ? extra : NULL;
        int r;

        if (!b->o.audit)
                return;
        if (!app->coalesce)
                r = audit_append_fields(b->o.audit, app->id, AUDIT_EVENT_CALL, f, ELEMENTSOF(f), x);
        else {
                r = audit_coalesce_append(app->coalesce, b->o.audit, app->id, AUDIT_EVENT_CALL, f,
                                          ELEMENTSOF(f), x, now_realtime_us());
                if (r == 0)
                        coalesce_arm(b, audit_coalesce_due(app->coalesce));
        }
        if (r < 0)
                b->audit_failures++;
}

/* ---- sending ------------------------------------------------------------------ */

static void app_hangup(BrokerApp *app, int reason);

static void poll_close_cb(uv_handle_t *h)
{
        free(h);
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Bytes a queued frame of body_len bytes costs: its OutFrame and body. */
static size_t outframe_cost(size_t body_len)
{
        return sizeof(OutFrame) + body_len;
}

/*
 * True when app's out queue is at one of its bounds (BROKER_OUTQ_MAX frames,
 * BROKER_OUTQ_BYTES_MAX bytes, BROKER_OUTQ_FDS_MAX fds), counting the frames of the
 * batch being built for it (they join the queue if the socket is full): the app is
 * not read and events to it are dropped until it drains.
 */
static bool outq_full(const BrokerApp *app)
{
        const Broker *b = app->broker;
        size_t bytes = app->outq_bytes;
        unsigned frames = app->outq_len, fds = app->outq_fds;

        if (b->batch_app == app) {
                bytes += b->arena_used + (size_t)b->n_batch * sizeof(OutFrame);
                frames += b->n_batch;
                for (unsigned i = 0; i < b->n_batch; i++)
                        fds += b->batch[i].n_fds;
        }
        return frames >= BROKER_OUTQ_MAX || bytes >= BROKER_OUTQ_BYTES_MAX ||
               fds >= BROKER_OUTQ_FDS_MAX;
}

/* Reads while the out queue has room; writes while it holds frames. */
static void app_update_poll(BrokerApp *app)
{
        int events = 0;

        if (app->closed || !app->poll)
                return;
        if (!outq_full(app))
                events |= UV_READABLE;
        if (app->outq_head)
                events |= UV_WRITABLE;
        if (events == app->poll_events)
                return;
        if (events == 0)
                (void)uv_poll_stop(app->poll);
        else if (uv_poll_start(app->poll, events, on_poll) < 0) {
                app_hangup(app, -EIO);
                return;
        }
        app->poll_events = events;
}

static OutFrame *outframe_free(OutFrame *o)
{
        if (o) {
                close_fds(o->fds, o->n_fds);
                free(o);
        }
        return NULL;
}

/*
 * Sends one frame to app now, or queues it behind the frames already waiting. Takes
 * the fds (closed once sent, or at once if the frame is dropped). An event is
 * dropped (and counted) when the queue is full; a reply never is: its caller would
 * wait forever. Reading stops while the queue is full, so replies past the bound
 * come only from calls answered later, at most BROKER_OUTSTANDING_MAX of them.
 */
static void app_send(BrokerApp *app, const ChannelFrame *f, int *fds, unsigned n_fds, bool is_event)
{
        OutFrame *o;
        int r;

        if (app->closed) {
                close_fds(fds, n_fds);
                return;
        }
        if (!app->outq_head) {
                r = channel_send(app->fd, f, fds, n_fds, MSG_DONTWAIT);
                if (r == 0) {
                        close_fds(fds, n_fds);
                        return;
                }
                if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
                        close_fds(fds, n_fds);
                        app_hangup(app, r);
                        return;
                }
                if (r != -EAGAIN && r != -ENOBUFS) {
                        /* Our own frame is malformed: a bug; the frame is lost. */
                        close_fds(fds, n_fds);
                        if (is_event)
                                app->stats.events_dropped++;
                        return;
                }
        }
        if (is_event && outq_full(app)) {
                close_fds(fds, n_fds);
                app->stats.events_dropped++;
                return;
        }
        o = malloc(outframe_cost(f->body_len));
        if (!o) {
                close_fds(fds, n_fds);
                if (is_event)
                        app->stats.events_dropped++;
                else
                        app_hangup(app, -ENOMEM); /* a lost reply would hang the app */
                return;
        }
        *o = (OutFrame){.frame = *f, .n_fds = n_fds};
        if (f->body_len > 0)
                memcpy(o->data, f->body, f->body_len);
        o->frame.body = o->data;
        for (unsigned i = 0; i < n_fds; i++)
                o->fds[i] = fds[i];
        if (app->outq_tail)
                app->outq_tail->next = o;
        else
                app->outq_head = o;
        app->outq_tail = o;
        app->outq_len++;
        app->outq_bytes += outframe_cost(f->body_len);
        app->outq_fds += n_fds;
        app_update_poll(app);
}

/* Sends what the queue holds until the socket is full again. */
static void outq_drain(BrokerApp *app)
{
        while (app->outq_head && !app->closed) {
                OutFrame *o = app->outq_head;
                int r = channel_send(app->fd, &o->frame, o->fds, o->n_fds, MSG_DONTWAIT);

                if (r == -EAGAIN || r == -ENOBUFS)
                        break;
                if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
                        app_hangup(app, r);
                        return;
                }
                app->outq_head = o->next;
                if (!app->outq_head)
                        app->outq_tail = NULL;
                app->outq_len--;
                app->outq_bytes -= outframe_cost(o->frame.body_len);
                app->outq_fds -= o->n_fds;
                outframe_free(o);
        }
        app_update_poll(app);
}

static ChannelFrame entry_frame(const Broker *b, const BatchEntry *e)
{
        return (ChannelFrame){
                .opcode = e->opcode,
                .flags = e->flags,
                .request_id = e->request_id,
                .body = b->arena + e->off,
                .body_len = e->len,
        };
}

/*
 * Sends the frames of entries [from, to) that carry no fds with one sendmmsg(2) (a
 * SOCK_SEQPACKET socket keeps each message a datagram): one system call per batch
 * instead of one per reply. Returns how many went out; the caller sends the rest
 * one by one (app_send() queues them when the socket is full).
 */
static unsigned batch_sendmmsg(Broker *b, BrokerApp *app, unsigned from, unsigned to)
{
        uint8_t hdr[BATCH_ENTRIES_MAX][CHANNEL_HEADER_SIZE];
        struct iovec iov[BATCH_ENTRIES_MAX][2];
        struct mmsghdr mm[BATCH_ENTRIES_MAX];
        unsigned n = 0;
        int r;

        for (unsigned i = from; i < to; i++, n++) {
                ChannelFrame f = entry_frame(b, &b->batch[i]);

                f.n_fds = 0;
                if (channel_encode_header(&f, hdr[n]) < 0)
                        break;
                iov[n][0] = (struct iovec){.iov_base = hdr[n], .iov_len = CHANNEL_HEADER_SIZE};
                iov[n][1] = (struct iovec){.iov_base = (void *)f.body, .iov_len = f.body_len};
                mm[n] = (struct mmsghdr){.msg_hdr = {.msg_iov = iov[n], .msg_iovlen = 2}};
        }
        if (n < 2)
                return 0;
        r = sendmmsg(app->fd, mm, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        return r > 0 ? (unsigned)r : 0;
}

/* Sends the current batch: its audit records first, then its frames. The audit
 * log's writer lock is released after the sends, not before: one system call less
 * on the way of every reply. */
static void batch_flush(Broker *b)
{
        BrokerApp *app = b->batch_app;
        unsigned i = 0;
        int held = 0;

        if (b->n_batch == 0)
                return;
        if (b->o.audit) {
                held = audit_flush_hold(b->o.audit);
                if (held < 0)
                        b->audit_failures++;
        }
        while (i < b->n_batch) {
                BatchEntry *e = &b->batch[i];
                ChannelFrame f;

                if (!app || app->closed) {
                        close_fds(e->fds, e->n_fds);
                        i++;
                        continue;
                }
                if (!app->outq_head && e->n_fds == 0) {
                        unsigned j = i, sent;

                        while (j < b->n_batch && b->batch[j].n_fds == 0)
                                j++;
                        sent = batch_sendmmsg(b, app, i, j);
                        if (sent > 0) {
                                i += sent;
                                continue;
                        }
                }
                /* One frame: with fds, behind a queue, or what sendmmsg() left. */
                f = entry_frame(b, e);
                app_send(app, &f, e->fds, e->n_fds, e->is_event);
                i++;
        }
        b->n_batch = 0;
        b->arena_used = 0;
        if (held > 0)
                audit_unlock(b->o.audit);
}

/*
 * Emits a frame to app: packs msg (or copies the raw body of len bytes) into the
 * batch when app is the one being read, else sends it now (after writing out the
 * audit record of a reply). Takes the fds. Returns 0, -ENOBUFS for an event dropped
 * because the app's out queue is full (counted), or -EMSGSIZE if msg packs to more
 * than a body may hold (nothing sent, fds kept by the caller).
 */
static int app_emit(BrokerApp *app, uint16_t opcode, uint32_t flags, uint64_t request_id,
                    const ProtobufCMessage *msg, const void *raw, size_t len, int *fds,
                    unsigned n_fds)
{
        Broker *b = app->broker;
        bool is_event = flags & CHANNEL_FLAG_EVENT;
        uint8_t *dst;

        if (msg) {
                len = protobuf_c_message_get_packed_size(msg);
                if (len > CHANNEL_BODY_MAX)
                        return -EMSGSIZE;
        }
        if (n_fds > CHANNEL_FDS_MAX)
                return -EMSGSIZE;
        if (is_event && outq_full(app)) {
                app->stats.events_dropped++;
                return -ENOBUFS;
        }

        if (b->batch_app == app) {
                BatchEntry *e;

                if (b->n_batch >= BATCH_ENTRIES_MAX || BATCH_ARENA_SIZE - b->arena_used < len)
                        batch_flush(b);
                e = &b->batch[b->n_batch++];
                dst = b->arena + b->arena_used;
                *e = (BatchEntry){
                        .opcode = opcode,
                        .flags = flags,
                        .request_id = request_id,
                        .off = b->arena_used,
                        .len = len,
                        .is_event = is_event,
                        .n_fds = n_fds,
                };
                for (unsigned i = 0; i < n_fds; i++)
                        e->fds[i] = fds[i];
                if (msg)
                        protobuf_c_message_pack(msg, dst);
                else if (len > 0 && raw)
                        memcpy(dst, raw, len);
                b->arena_used += len;
                return 0;
        }

        if (msg) {
                protobuf_c_message_pack(msg, b->sbuf);
                raw = b->sbuf;
        }
        if (!is_event)
                audit_flush_now(b);
        app_send(app,
                 &(ChannelFrame){
                         .opcode = opcode,
                         .flags = flags,
                         .request_id = request_id,
                         .body = raw,
                         .body_len = len,
                 },
                 fds, n_fds, is_event);
        return 0;
}

static void emit_error(BrokerApp *app, uint16_t opcode, uint64_t request_id, int error,
                       const char *message)
{
        uint8_t body[CHANNEL_ERROR_BODY_MAX];
        int n = channel_error_body(error, message, body, sizeof body);

        if (n < 0)
                n = channel_error_body(error, NULL, body, sizeof body);
        if (n >= 0)
                (void)app_emit(app, opcode, CHANNEL_FLAG_REPLY | CHANNEL_FLAG_ERROR, request_id,
                               NULL, body, (size_t)n, NULL, 0);
}

int broker_app_event(BrokerApp *app, uint16_t opcode, const ProtobufCMessage *ev)
{
        const WireOp *op = wire_op_lookup(opcode);

        if (!app || !ev || !op || !op->event || op->event != ev->descriptor)
                return -EINVAL;
        if (app->closed)
                return -ECONNRESET;
        return app_emit(app, opcode, CHANNEL_FLAG_EVENT, 0, ev, NULL, 0, NULL, 0);
}

int broker_app_kernel_restarted(BrokerApp *app, int64_t adopted_ms)
{
        Cella__V1__KernelRestartedEvent ev = CELLA__V1__KERNEL_RESTARTED_EVENT__INIT;

        ev.adopted_ms = adopted_ms;
        return broker_app_event(app, CELLA__V1__OPCODE__OPCODE_EVENT_KERNEL_RESTARTED, &ev.base);
}

int broker_app_memory_pressure(BrokerApp *app, int level, uint64_t current_bytes,
                               uint64_t limit_bytes)
{
        Cella__V1__MemoryPressureEvent ev = CELLA__V1__MEMORY_PRESSURE_EVENT__INIT;

        if (level < 1 || level > 3)
                return -EINVAL;
        ev.level = (Cella__V1__MemoryLevel)level;
        ev.current_bytes = current_bytes;
        ev.limit_bytes = limit_bytes;
        return broker_app_event(app, CELLA__V1__OPCODE__OPCODE_EVENT_MEMORY_PRESSURE, &ev.base);
}

/* ---- calls -------------------------------------------------------------------- */

static CallImpl *call_new(BrokerApp *app)
{
        CallImpl *c = app->free_calls;

        if (c) {
                app->free_calls = c->free_next;
                app->n_free_calls--;
        } else {
                c = malloc(sizeof *c);
                if (!c)
                        return NULL;
        }
        c->pub = (BrokerCall){.app = app};
        c->def = NULL;
        c->right[0] = 0;
        c->also_right[0] = 0;
        c->free_next = NULL;
        return c;
}

static void call_unlink(CallImpl *c)
{
        BrokerApp *app = c->pub.app;

        if (c->pub.prev)
                c->pub.prev->next = c->pub.next;
        else if (app->calls == &c->pub)
                app->calls = c->pub.next;
        else
                return; /* not linked */
        if (c->pub.next)
                c->pub.next->prev = c->pub.prev;
        c->pub.next = c->pub.prev = NULL;
        app->outstanding--;
}

static void call_free(CallImpl *c)
{
        BrokerApp *app = c->pub.app;

        call_unlink(c);
        close_fds(c->pub.fds, c->pub.n_fds);
        c->pub.n_fds = 0;
        if (c->pub.request)
                protobuf_c_message_free_unpacked(c->pub.request, NULL);
        json_decref(c->pub.audit_fields);
        if (app->n_free_calls < CALLS_CACHED_MAX) {
                c->free_next = app->free_calls;
                app->free_calls = c;
                app->n_free_calls++;
        } else
                free(c);
}

static const char *decision_of(int error)
{
        if (error == 0)
                return "allowed";
        if (error == EACCES || error == EPERM)
                return "refused";
        return "error";
}

static void count_answer(BrokerApp *app, int error, bool rate_limited)
{
        app->stats.calls++;
        if (error == EACCES || error == EPERM)
                app->stats.refused++;
        if (rate_limited)
                app->stats.rate_limited++;
}

/* Answers a call with an error; decision NULL: from the errno. */
static void call_fail(CallImpl *c, int error, const char *message, const char *decision)
{
        BrokerApp *app = c->pub.app;

        error = abs(error);
        if (!c->pub.cancelled) {
                count_answer(app, error, decision && strcmp(decision, "rate-limited") == 0);
                audit_call(app, c->pub.op->name, c->pub.right, decision ?: decision_of(error),
                           error, c->pub.audit_fields);
                emit_error(app, c->pub.op->opcode, c->pub.request_id, error, message);
        }
        call_free(c);
}

void broker_reply(BrokerCall *pc, const ProtobufCMessage *reply, int *fds, unsigned n_fds)
{
        CallImpl *c = impl(pc);
        BrokerApp *app = pc->app;

        if (pc->cancelled || app->closed) {
                close_fds(fds, n_fds);
                call_free(c);
                return;
        }
        if (!reply || reply->descriptor != pc->op->reply || n_fds != pc->op->reply_fds ||
            protobuf_c_message_get_packed_size(reply) > CHANNEL_BODY_MAX) {
                close_fds(fds, n_fds);
                call_fail(c, EMSGSIZE, "the kernel could not encode the reply", NULL);
                return;
        }
        count_answer(app, 0, false);
        audit_call(app, pc->op->name, pc->right, "allowed", 0, pc->audit_fields);
        (void)app_emit(app, pc->op->opcode, CHANNEL_FLAG_REPLY, pc->request_id, reply, NULL, 0, fds,
                       n_fds);
        call_free(c);
}

void broker_audit_set(BrokerCall *c, const char *key, json_t *v)
{
        if (!v)
                return;
        if (!c->audit_fields)
                c->audit_fields = json_object();
        if (c->audit_fields)
                json_object_set_new(c->audit_fields, key, v);
        else
                json_decref(v);
}

void broker_reply_error(BrokerCall *c, int error, const char *message)
{
        call_fail(impl(c), error, message, NULL);
}

/* Abandons a pending call (the app cancelled it, went away, or lost its right):
 * its handler forgets it, nothing is sent. */
static void call_abandon(CallImpl *c, int error, const char *why)
{
        BrokerApp *app = c->pub.app;
        json_t *f;

        c->pub.cancelled = true;
        if (c->pub.cancel)
                c->pub.cancel(&c->pub);
        f = json_pack("{s:s}", "abandoned", why);
        if (f && c->pub.audit_fields)
                (void)json_object_update_missing(f, c->pub.audit_fields);
        audit_call(app, c->pub.op->name, c->pub.right, "error", error, f);
        json_decref(f);
        if (c->pub.cancel)
                call_free(c);
        else
                call_unlink(c); /* still the handler's until it answers: then freed */
}

/* ---- grants: the app's cache and its decisions (policy/decide.h) ------------------- */

int broker_app_reload_grants(BrokerApp *app)
{
        GrantCache gc;
        int r = grant_cache_load(app->broker->o.grants, app->id, &gc);

        if (r < 0)
                return r;
        grant_cache_clear(&app->cache);
        app->cache = gc;
        return 0;
}

int broker_app_right_state(BrokerApp *app, const CapabilityRight *right, bool *ret_one_time,
                           const char **ret_why)
{
        return policy_right_state(&app->cache, right, ret_one_time, ret_why);
}

/*
 * The check of step 4 for asked, parsed once where the right entered (a request's
 * fields: handle_request(); a handler's own right: broker_app_holds()): 0, -EACCES or
 * -EPERM with *ret_why, or another -errno (the grants database failed).
 */
static int app_check(BrokerApp *app, const CapabilityRight *asked, bool consume,
                     const char **ret_why)
{
        return policy_decide(&app->cache, app->broker->o.grants, app->id, asked, consume, -1,
                             ret_why);
}

bool broker_app_holds(BrokerApp *app, const CapabilityRight *right, bool consume)
{
        const char *why;

        return app && right && app_check(app, right, consume, &why) == 0;
}

int broker_app_take(BrokerApp *app, const CapabilityRight *rights, size_t n, size_t *ret_refused,
                    const char **ret_why)
{
        bool used_once = false;
        int r;

        /* One right (nearly every call): deciding it is taking it. */
        if (n == 1) {
                r = app_check(app, &rights[0], true, ret_why);
                if (r < 0)
                        *ret_refused = 0;
                return r;
        }
        /* Every right decided first, nothing used up... */
        for (size_t i = 0; i < n; i++) {
                r = app_check(app, &rights[i], false, ret_why);
                if (r < 0) {
                        *ret_refused = i;
                        return r;
                }
        }
        /* ...then the one-time grants taken. A right held a moment ago that the cache
         * no longer grants was covered by a one-time grant this call has just used. */
        for (size_t i = 0; i < n; i++) {
                bool once = false;

                if (policy_right_state(&app->cache, &rights[i], &once, NULL) < 0 && used_once)
                        continue;
                r = app_check(app, &rights[i], true, ret_why);
                if (r < 0) {
                        *ret_refused = i;
                        return r;
                }
                used_once = used_once || once;
        }
        return 0;
}

const Grant *broker_app_grants(const BrokerApp *app, size_t *ret_n)
{
        *ret_n = app->cache.n_grants;
        return app->cache.grants;
}

char *const *broker_app_requested(const BrokerApp *app, bool *ret_signed)
{
        if (ret_signed)
                *ret_signed = app->cache.signed_ok;
        return app->cache.requested;
}

/* ---- reading ---------------------------------------------------------------------- */

static void app_close_channel(BrokerApp *app, const char *why)
{
        json_t *f = json_pack("{s:s, s:s, s:I}", "what", "channel-closed", "reason", why,
                              "bad_frames", (json_int_t)app->stats.bad_frames);

        if (f) {
                (void)broker_app_audit(app, AUDIT_EVENT_LIFECYCLE, f);
                json_decref(f);
        }
        app_hangup(app, -EPROTO);
}

/*
 * A malformed frame: counted, audited, answered with error when it names a request
 * (request_id known), and past BROKER_BAD_FRAMES_MAX the channel is closed.
 */
static void bad_frame(BrokerApp *app, uint16_t opcode, uint64_t request_id, bool answer, int error,
                      const char *message)
{
        const WireOp *op = wire_op_lookup(opcode);
        json_t *f;

        error = abs(error);
        app->stats.bad_frames++;
        if (answer)
                app->stats.calls++;
        f = json_pack("{s:i, s:s}", "opcode", (int)opcode, "problem", message);
        audit_call(app, op ? op->name : "unknown", NULL, "error", error, f);
        json_decref(f);
        if (answer)
                emit_error(app, opcode, request_id, error, message);
        if (app->stats.bad_frames > BROKER_BAD_FRAMES_MAX)
                app_close_channel(app, "bad frames");
}

/* A datagram that is not a frame (channel_judge() failed). Its header, if one came, is
 * in h (the bytes a short datagram lacks zeroed): a request that names itself gets
 * its answer. */
static void bad_datagram(BrokerApp *app, const uint8_t *h, int error)
{
        uint16_t magic = (uint16_t)(h[0] | h[1] << 8), opcode = (uint16_t)(h[2] | h[3] << 8);
        uint32_t flags =
                (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
        uint64_t id = 0;
        bool known;

        for (int i = 7; i >= 0; i--)
                id = id << 8 | h[8 + i];
        known = magic == CHANNEL_MAGIC_VERSION && opcode != 0 &&
                (flags & ~(uint32_t)CHANNEL_FLAGS_KNOWN) == 0 &&
                (flags & (CHANNEL_FLAG_REPLY | CHANNEL_FLAG_EVENT | CHANNEL_FLAG_CANCEL)) == 0;
        bad_frame(app, known ? opcode : 0, id, known, error,
                  error == -EMSGSIZE          ? "frame too large"
                  : error == -EPROTO          ? "wrong number of file descriptors"
                  : error == -EPROTONOSUPPORT ? "bad magic or protocol version"
                                              : "malformed frame header");
}

static const BrokerCallDef *dispatch_lookup(const Broker *b, uint16_t opcode)
{
        unsigned area = opcode >> 8, low = opcode & 0xff;

        if (area >= DISPATCH_AREAS || low >= DISPATCH_CALLS)
                return NULL;
        return b->dispatch[area][low];
}

static BrokerCall *pending_find(BrokerApp *app, uint64_t request_id)
{
        for (BrokerCall *c = app->calls; c; c = c->next)
                if (c->request_id == request_id)
                        return c;
        return NULL;
}

static void handle_cancel(BrokerApp *app, const ChannelFrame *f)
{
        BrokerCall *c = pending_find(app, f->request_id);

        if (c)
                call_abandon(impl(c), ECANCELED, "cancelled");
}

/* Takes fds (f->n_fds of them): kept in the call, closed otherwise. */
static void handle_request(BrokerApp *app, const ChannelFrame *f, int *fds)
{
        Broker *b = app->broker;
        const WireOp *op = wire_op_lookup(f->opcode);
        const BrokerCallDef *def;
        ProtobufCMessage *req = NULL;
        const char *right = NULL, *why;
        CallImpl *c;
        int r, err = 0;

        if (!op || !op->request) {
                close_fds(fds, f->n_fds);
                bad_frame(app, f->opcode, f->request_id, true, EOPNOTSUPP, "unknown opcode");
                return;
        }
        r = wire_unpack(f, &req);
        if (r < 0) {
                close_fds(fds, f->n_fds);
                bad_frame(app, f->opcode, f->request_id, true, r,
                          r == -EPROTO    ? "wrong number of file descriptors"
                          : r == -ENOBUFS ? "body too costly to decode"
                                          : "body does not decode");
                return;
        }
        c = call_new(app);
        if (!c) {
                close_fds(fds, f->n_fds);
                protobuf_c_message_free_unpacked(req, NULL);
                count_answer(app, ENOMEM, false);
                emit_error(app, f->opcode, f->request_id, ENOMEM, NULL);
                return;
        }
        c->pub.op = op;
        c->pub.request_id = f->request_id;
        c->pub.request = req;
        for (unsigned i = 0; i < f->n_fds; i++)
                c->pub.fds[i] = fds[i];
        c->pub.n_fds = f->n_fds;

        def = dispatch_lookup(b, f->opcode);
        if (!def) {
                call_fail(c, EOPNOTSUPP, "not implemented by this kernel", NULL);
                return;
        }
        c->def = def;
        if (pending_find(app, f->request_id)) {
                call_fail(c, EINVAL, "request id already in use", NULL);
                return;
        }
        if (app->outstanding >= BROKER_OUTSTANDING_MAX) {
                call_fail(c, EBUSY, "too many requests outstanding", NULL);
                return;
        }
        if (def->right_of) {
                right = def->right_of(req, c->right, sizeof c->right, &err);
                if (err < 0) {
                        call_fail(c, err, "invalid request field", NULL);
                        return;
                }
                c->pub.right = right;
        }
        if (right) {
                const char *also = def->also_right_of ? def->also_right_of(req, c->also_right,
                                                                           sizeof c->also_right)
                                                      : NULL;
                size_t n = also ? 2 : 1, refused = 0;

                /* Parsed once, here where they enter; an unparsable right is refused
                 * (GRANTS_INVALID) like any right not granted. */
                if (capability_right_parse(right, &c->asked[0], NULL) < 0)
                        c->asked[0].cap = NULL;
                if (also && capability_right_parse(also, &c->asked[1], NULL) < 0)
                        c->asked[1].cap = NULL;
                c->pub.checked = c->asked[0].cap ? &c->asked[0] : NULL;
                r = broker_app_take(app, c->asked, n, &refused, &why);
                /* The record names the right refused. */
                if (refused == 1)
                        c->pub.right = also;
                /* A refusal pays its token too: a flood of forbidden calls is limited
                 * like any other, and so are the audit records it writes. */
                if ((r == -EACCES || r == -EPERM) &&
                    ratelimit_take(&app->rl[op->cls], uv_hrtime(), NULL) < 0) {
                        call_fail(c, EAGAIN, "rate-limited", "rate-limited");
                        return;
                }
                if (r == -EACCES || r == -EPERM) {
                        call_fail(c, r, why, "refused");
                        return;
                }
                if (r < 0) {
                        call_fail(c, EIO, "the grants database failed", NULL);
                        return;
                }
        }
        if (ratelimit_take(&app->rl[op->cls], uv_hrtime(), NULL) < 0) {
                call_fail(c, EAGAIN, "rate-limited", "rate-limited");
                return;
        }

        /* Linked while the handler runs: it answers now (unlinked and freed) or later. */
        c->pub.next = app->calls;
        if (app->calls)
                app->calls->prev = &c->pub;
        app->calls = &c->pub;
        app->outstanding++;
        def->handle(&c->pub);
}

static void handle_frame(BrokerApp *app, const ChannelFrame *f, int *fds)
{
        /* A request that takes fds (ipc.shm_create) gets them in its BrokerCall
         * (handle_request(): wire_unpack refused a count that differs from the
         * opcode's); every other frame's are closed here. */
        if (f->flags & CHANNEL_FLAG_CANCEL) {
                close_fds(fds, f->n_fds);
                handle_cancel(app, f);
        } else if (!channel_frame_is_request(f)) {
                close_fds(fds, f->n_fds);
                bad_frame(app, f->opcode, f->request_id, false, EPROTO,
                          "replies and events do not go to the kernel");
        } else
                handle_request(app, f, fds);
}

typedef union RecvControl {
        struct cmsghdr align;
        uint8_t buf[CMSG_SPACE(sizeof(int) * CHANNEL_FDS_MAX)];
} RecvControl;

/*
 * Reads what the app sent, up to BROKER_FRAMES_PER_WAKE frames, RECV_BATCH per
 * recvmmsg(2): a call that returns fewer than it asked for found the socket empty,
 * so a ping-pong costs one system call to read, not a second that finds nothing.
 * Then the batch goes out (batch_flush()). Reading stops early when the app's out
 * queue is full, as checked before each recvmmsg().
 */
static void app_read(BrokerApp *app)
{
        Broker *b = app->broker;
        uint64_t t0 = uv_hrtime(), spent = 0;
        unsigned done = 0;

        b->batch_app = app;
        while (done < BROKER_FRAMES_PER_WAKE && !app->closed && !outq_full(app)) {
                unsigned want = BROKER_FRAMES_PER_WAKE - done;
                struct mmsghdr mm[RECV_BATCH];
                struct iovec iov[RECV_BATCH];
                RecvControl ctl[RECV_BATCH];
                int n;

                if (want > RECV_BATCH)
                        want = RECV_BATCH;
                /* No more frames than the app's calls, at what they have cost it
                 * lately, fit in what is left of its slice: one slow call per read
                 * for an app whose calls are slow. */
                if (app->frame_ns > 0 && (uint64_t)want * app->frame_ns > BROKER_READ_SLICE_NS) {
                        uint64_t fit = BROKER_READ_SLICE_NS / app->frame_ns;

                        want = fit > 0 ? (unsigned)fit : 1;
                }
                /* The socket was full: one frame at a time, so that the replies
                 * queued pass the out queue's bounds by one frame at most. */
                if (app->outq_head)
                        want = 1;
                for (unsigned i = 0; i < want; i++) {
                        iov[i] = (struct iovec){
                                .iov_base = b->rbufs + (size_t)i * CHANNEL_DATAGRAM_MAX,
                                .iov_len = CHANNEL_DATAGRAM_MAX,
                        };
                        /* Trimmed as channel_recv() does: more fds than CHANNEL_FDS_MAX
                         * always show as MSG_CTRUNC. */
                        mm[i] = (struct mmsghdr){
                                .msg_hdr =
                                        {
                                                .msg_iov = &iov[i],
                                                .msg_iovlen = 1,
                                                .msg_control = ctl[i].buf,
                                                .msg_controllen =
                                                        CMSG_LEN(sizeof(int) * CHANNEL_FDS_MAX),
                                        },
                        };
                }
                n = recvmmsg(app->fd, mm, want, MSG_DONTWAIT | MSG_CMSG_CLOEXEC, NULL);
                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                app_hangup(app, negative_errno()); /* -ECONNRESET: hung up */
                        break;
                }
                for (int i = 0; i < n; i++) {
                        uint8_t *buf = iov[i].iov_base;
                        size_t len = mm[i].msg_len;
                        int fds[CHANNEL_FDS_MAX];
                        ChannelFrame f;
                        int r;

                        if (len < CHANNEL_HEADER_SIZE)
                                memset(buf + len, 0, CHANNEL_HEADER_SIZE - len);
                        r = channel_judge(&mm[i].msg_hdr, len, buf, CHANNEL_FDS_MAX, &f, fds);
                        if (app->closed) { /* by a frame before: the rest are dropped */
                                if (r == 0)
                                        close_fds(fds, f.n_fds);
                                continue;
                        }
                        if (r == -ECONNRESET) { /* the app hung up */
                                app_hangup(app, r);
                                continue;
                        }
                        if (r < 0) {
                                bad_datagram(app, buf, r);
                                continue;
                        }
                        handle_frame(app, &f, fds);
                }
                done += (unsigned)n;
                if ((unsigned)n < want)
                        break; /* the socket was empty */
                /* Its slice is used up: the other apps' turn. The rest waits in the
                 * socket, and the level-triggered poll comes back to it. */
                spent = uv_hrtime() - t0;
                if (spent >= BROKER_READ_SLICE_NS)
                        break;
        }
        batch_flush(b);
        b->batch_app = NULL;
        /* Charged to the app: the loop time its frames took, and what a frame costs
         * it on average (a moving average over reads, 1/4 weight to the newest). */
        spent = uv_hrtime() - t0;
        app->stats.loop_ns += spent;
        if (done > 0) {
                uint64_t per = spent / done;

                app->frame_ns = app->frame_ns ? (3 * app->frame_ns + per) / 4 : per;
        }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
        BrokerApp *app = h->data;

        if (!app)
                return;
        if (status < 0) {
                app_hangup(app, -EIO);
                return;
        }
        if (events & UV_WRITABLE)
                outq_drain(app);
        if ((events & UV_READABLE) && !app->closed)
                app_read(app);
        app_update_poll(app);
}

/* ---- lifetime --------------------------------------------------------------------- */

/* Abandons every pending call of app (it went away). */
static void app_abandon_calls(BrokerApp *app, int error, const char *why)
{
        while (app->calls)
                call_abandon(impl(app->calls), error, why);
}

/* The channel is gone (hang-up, bad frames, a failed send): stop serving it. The
 * BrokerApp stays until broker_app_detach(). */
static void app_hangup(BrokerApp *app, int reason)
{
        (void)reason;
        if (app->closed)
                return;
        app->closed = true;
        app->stats.closed = true;
        if (app->poll) {
                app->poll->data = NULL;
                uv_close((uv_handle_t *)app->poll, poll_close_cb);
                app->poll = NULL;
        }
        /* Shut the socket down, not only our fd: under cellad the keeper holds a
         * copy of the kernel's end (docs/daemon.md, "The keeper"), and a close
         * alone would leave the channel open to the app, which would never see
         * the hang-up it earned (hostile's "garbage frames until the kernel hangs
         * up"). Not for reason 0 (broker_app_detach()): a kernel that lets go of
         * an app it does not stop (a cellad failing after an adoption) must leave
         * the keeper's copy working for the next one. */
        if (app->fd >= 0 && reason != 0)
                (void)shutdown(app->fd, SHUT_RDWR);
        app->fd = safe_close(app->fd);
        while (app->outq_head) {
                OutFrame *o = app->outq_head;

                app->outq_head = o->next;
                outframe_free(o);
        }
        app->outq_tail = NULL;
        app->outq_len = 0;
        app->outq_bytes = 0;
        app->outq_fds = 0;
        app_abandon_calls(app, ECONNRESET, "channel closed");
}

static const BrokerCallDef *const call_tables[] = {
        broker_calls_system,   broker_calls_proc,    broker_calls_app,      broker_calls_perm,
        broker_calls_fs,       broker_calls_usage,   broker_calls_timer,    broker_calls_bus,
        broker_calls_net,      broker_calls_channel, broker_calls_keystore, broker_calls_ipc,
        broker_calls_ipc_semq,
};

const BrokerCallDef *broker_call_def(uint16_t opcode)
{
        for (size_t t = 0; t < ELEMENTSOF(call_tables); t++)
                for (const BrokerCallDef *d = call_tables[t]; d->handle; d++)
                        if (d->opcode == opcode)
                                return d;
        return NULL;
}

static int build_dispatch(Broker *b)
{
        const BrokerCallDef *const *tables = call_tables;

        for (size_t t = 0; t < ELEMENTSOF(call_tables); t++)
                for (const BrokerCallDef *d = tables[t]; d->handle; d++) {
                        unsigned area = d->opcode >> 8, low = d->opcode & 0xff;
                        const WireOp *op = wire_op_lookup(d->opcode);

                        if (!op || !op->request || area >= DISPATCH_AREAS ||
                            low >= DISPATCH_CALLS || b->dispatch[area][low] ||
                            op->cls == WIRE_CLASS_NONE || op->cls >= _WIRE_CLASS_MAX)
                                return -EINVAL;
                        b->dispatch[area][low] = d;
                }
        return 0;
}

int broker_new(const BrokerOptions *o, Broker **ret)
{
        Broker *b;
        int r;

        if (!o || !o->loop || !o->grants || !o->bus || !ret)
                return -EINVAL;
        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->o = *o;
        if (o->host)
                b->host = *o->host;
        b->o.host = &b->host;
        b->coalesce_due = INT64_MAX;
        b->arena = malloc(BATCH_ARENA_SIZE);
        b->rbufs = malloc((size_t)RECV_BATCH * CHANNEL_DATAGRAM_MAX);
        r = b->arena && b->rbufs ? 0 : -ENOMEM;
        if (r == 0 && o->state_dir) {
                b->state_dir = strdup(o->state_dir);
                r = b->state_dir ? 0 : -ENOMEM;
        }
        if (r == 0 && o->roots)
                r = (b->roots = strv_copy(o->roots)) ? 0 : -ENOMEM;
        if (r == 0)
                r = build_dispatch(b);
        if (r == 0 && o->audit) {
                b->coalesce_timer = malloc(sizeof(uv_timer_t));
                r = b->coalesce_timer ? uv_timer_init(o->loop, b->coalesce_timer) : -ENOMEM;
                if (r < 0) {
                        free(b->coalesce_timer);
                        b->coalesce_timer = NULL;
                } else
                        b->coalesce_timer->data = b;
        }
        if (r < 0) {
                broker_free(b);
                return r;
        }
        b->o.state_dir = b->state_dir;
        b->o.roots = b->roots;
#define DEFAULT(f, d) b->o.f = b->o.f ?: (d)
        DEFAULT(rate_cheap, BROKER_RATE_CHEAP_DEFAULT);
        DEFAULT(burst_cheap, BROKER_BURST_CHEAP_DEFAULT);
        DEFAULT(rate_costly, BROKER_RATE_COSTLY_DEFAULT);
        DEFAULT(burst_costly, BROKER_BURST_COSTLY_DEFAULT);
        DEFAULT(rate_prompting, BROKER_RATE_PROMPTING_DEFAULT);
        DEFAULT(burst_prompting, BROKER_BURST_PROMPTING_DEFAULT);
        DEFAULT(net_conns_max, BROKER_NET_CONNS_DEFAULT);
        DEFAULT(net_rate, BROKER_NET_RATE_DEFAULT);
        DEFAULT(net_burst, BROKER_NET_BURST_DEFAULT);
        DEFAULT(keystore_keys_max, BROKER_KEYSTORE_KEYS_DEFAULT);
        DEFAULT(ipc_objects_max, BROKER_IPC_OBJECTS_DEFAULT);
        DEFAULT(ipc_handles_max, BROKER_IPC_HANDLES_DEFAULT);
        DEFAULT(ipc_shm_bytes_max, BROKER_IPC_SHM_BYTES_DEFAULT);
        DEFAULT(ipc_pending_max, BROKER_IPC_PENDING_DEFAULT);
        DEFAULT(ipc_queue_depth_max, BROKER_IPC_QUEUE_DEPTH_DEFAULT);
        DEFAULT(ipc_queued_bytes_max, BROKER_IPC_QUEUED_BYTES_DEFAULT);
#undef DEFAULT
        b->net = broker_net_new();
        b->ipc = broker_ipc_new(b);
        b->ipc_queue = broker_ipc_queue_new(b);
        if (b->ipc && b->ipc_queue)
                (void)broker_ipc_queue_restore(b); /* it logs what it could not restore */
        *ret = b;
        return 0;
}

Broker *broker_free(Broker *b)
{
        if (!b)
                return NULL;
        while (b->apps)
                broker_app_detach(b->apps);
        broker_net_free(b->net);
        broker_channel_free(b->channel);
        broker_keystore_free(b->keystore);
        broker_ipc_free(b->ipc); /* frees the persistent queues, kept in their store */
        broker_ipc_queue_free(b->ipc_queue);
        if (b->coalesce_timer)
                uv_close((uv_handle_t *)b->coalesce_timer, poll_close_cb);
        free(b->arena);
        free(b->rbufs);
        free(b->state_dir);
        strv_free(b->roots);
        free(b);
        return NULL;
}

static void app_free(BrokerApp *app)
{
        if (!app)
                return;
        if (app->poll) {
                app->poll->data = NULL;
                uv_close((uv_handle_t *)app->poll, poll_close_cb);
        }
        safe_close(app->fd);
        grant_cache_clear(&app->cache);
        audit_coalesce_free(app->coalesce);
        while (app->free_calls) {
                CallImpl *c = app->free_calls;

                app->free_calls = c->free_next;
                free(c);
        }
        free(app->id);
        free((char *)app->info.app_dir);
        free((char *)app->info.data_dir);
        free((char *)app->info.memory_cgroup);
        free((char *)app->info.pids_cgroup);
        free((char *)app->info.cpu_cgroup);
        free((char *)app->info.cpuacct_cgroup);
        free((char *)app->info.unified_cgroup);
        strv_free(app->env);
        free(app);
}

static int strdup_opt(const char *s, const char **ret)
{
        *ret = NULL;
        if (!s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int broker_app_attach(Broker *b, const BrokerAppInfo *info, int channel_fd, BrokerApp **ret)
{
        _cleanup_close_ int fd = channel_fd;
        BrokerApp *app;
        uint64_t now = uv_hrtime();
        int r;

        if (!b || !info || !info->manifest || !info->manifest->id || fd < 0 || !ret)
                return -EINVAL;
        if (broker_app_find(b, info->manifest->id))
                return -EEXIST;
        r = fd_nonblock(fd, 1);
        if (r < 0)
                return r;

        app = calloc(1, sizeof *app);
        if (!app)
                return -ENOMEM;
        app->broker = b;
        app->fd = -EBADF;
        app->info = (BrokerAppInfo){
                .manifest = info->manifest,
                .host_uid = info->host_uid,
                .pid = info->pid,
                .pidfd = info->pidfd,
                .signed_ok = info->signed_ok,
                .started_ms = info->started_ms,
        };
        app->id = strdup(info->manifest->id);
        if (!app->id || strdup_opt(info->app_dir, &app->info.app_dir) < 0 ||
            strdup_opt(info->data_dir, &app->info.data_dir) < 0 ||
            strdup_opt(info->memory_cgroup, &app->info.memory_cgroup) < 0 ||
            strdup_opt(info->pids_cgroup, &app->info.pids_cgroup) < 0 ||
            strdup_opt(info->cpu_cgroup, &app->info.cpu_cgroup) < 0 ||
            strdup_opt(info->cpuacct_cgroup, &app->info.cpuacct_cgroup) < 0 ||
            strdup_opt(info->unified_cgroup, &app->info.unified_cgroup) < 0 ||
            (info->env && !(app->env = strv_copy(info->env)))) {
                app_free(app);
                return -ENOMEM;
        }
        app->info.env = app->env;

        r = ratelimit_init(&app->rl[WIRE_CLASS_CHEAP], b->o.rate_cheap, b->o.burst_cheap, now);
        if (r == 0)
                r = ratelimit_init(&app->rl[WIRE_CLASS_COSTLY], b->o.rate_costly, b->o.burst_costly,
                                   now);
        if (r == 0)
                r = ratelimit_init(&app->rl[WIRE_CLASS_PROMPTING], b->o.rate_prompting,
                                   b->o.burst_prompting, now);
        if (r == 0)
                r = grant_cache_load(b->o.grants, app->id, &app->cache);
        if (r == 0 && b->o.audit && !b->o.audit_coalesce_off)
                r = audit_coalesce_new(
                        &(AuditCoalesceOptions){.budget_rate = b->o.audit_budget_rate,
                                                .budget_burst = b->o.audit_budget_burst},
                        &app->coalesce);
        if (r < 0) {
                app_free(app);
                return r;
        }

        app->poll = malloc(sizeof(uv_poll_t));
        if (!app->poll) {
                app_free(app);
                return -ENOMEM;
        }
        r = uv_poll_init(b->o.loop, app->poll, fd);
        if (r < 0) {
                free(app->poll);
                app->poll = NULL;
                app_free(app);
                return r;
        }
        app->poll->data = app;
        app->fd = TAKE_FD(fd);

        r = broker_bus_attach(app);
        if (r < 0) {
                app_free(app);
                return r;
        }
        app->next = b->apps;
        if (b->apps)
                b->apps->prev = app;
        b->apps = app;
        app_update_poll(app);
        *ret = app;
        return 0;
}

int broker_app_channel_fd(const BrokerApp *app)
{
        return app ? app->fd : -EBADF;
}

void broker_app_detach(BrokerApp *app)
{
        AuditCoalesceStats cs = {};
        Broker *b;
        json_t *f;

        if (!app)
                return;
        b = app->broker;
        if (b->batch_app == app) {
                batch_flush(b);
                b->batch_app = NULL;
        }
        app_abandon_calls(app, ECONNRESET, "app detached");
        broker_timer_detach(app);
        broker_perm_detach(app);
        broker_channel_detach(app);
        broker_bus_detach(app);
        broker_ipc_detach(app);
        while (app->handles) {
                BrokerHandle *h = app->handles;

                broker_handle_remove(h);
                h->close(h);
        }
        app_hangup(app, 0);

        coalesce_flush(app, now_realtime_us(), true);
        if (app->coalesce)
                audit_coalesce_stats(app->coalesce, &cs);
        f = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:I, s:I}", "what", "broker",
                      "calls", (json_int_t)app->stats.calls, "refused",
                      (json_int_t)app->stats.refused, "rate_limited",
                      (json_int_t)app->stats.rate_limited, "bad_frames",
                      (json_int_t)app->stats.bad_frames, "events_dropped",
                      (json_int_t)app->stats.events_dropped, "closed_by_kernel",
                      app->stats.bad_frames > BROKER_BAD_FRAMES_MAX, "audit_coalesced",
                      (json_int_t)cs.coalesced, "audit_over_budget", (json_int_t)cs.over_budget,
                      "loop_ms", (json_int_t)(app->stats.loop_ns / 1000000), "worker_cpu_ms",
                      (json_int_t)(app->stats.worker_cpu_ns / 1000000));
        if (f) {
                (void)broker_app_audit(app, AUDIT_EVENT_LIFECYCLE, f);
                json_decref(f);
        }
        audit_flush_now(b);

        if (app->prev)
                app->prev->next = app->next;
        else
                b->apps = app->next;
        if (app->next)
                app->next->prev = app->prev;
        app_free(app);
}

void broker_audit_flush(Broker *b)
{
        int64_t now = now_realtime_us();

        if (!b)
                return;
        for (BrokerApp *a = b->apps; a; a = a->next)
                coalesce_flush(a, now, true);
        audit_flush_now(b);
}

BrokerApp *broker_app_find(Broker *b, const char *app_id)
{
        if (!b || !app_id)
                return NULL;
        for (BrokerApp *a = b->apps; a; a = a->next)
                if (strcmp(a->id, app_id) == 0)
                        return a;
        return NULL;
}

BrokerAppStats *broker_app_stats_mut(BrokerApp *app)
{
        return &app->stats;
}

void **broker_channel_global(Broker *b)
{
        return &b->channel;
}

void **broker_keystore_slot(Broker *b)
{
        return &b->keystore;
}

struct NetGlobal *broker_net_global(Broker *b)
{
        return b ? b->net : NULL;
}

void *broker_ipc_queue_global(Broker *b)
{
        return b ? b->ipc_queue : NULL;
}

struct IpcRegistry *broker_ipc_registry(Broker *b)
{
        return b ? b->ipc : NULL;
}

void broker_app_stats(const BrokerApp *app, BrokerAppStats *ret)
{
        *ret = app->stats;
        ret->outstanding = app->outstanding;
}

/* ---- revokes ---------------------------------------------------------------------- */

/* True if the cache still grants right (one-time grants count, gestures do not: a
 * handle is not closed because a gesture grew old). right was parsed where it
 * entered. */
static bool still_held(BrokerApp *app, const CapabilityRight *right)
{
        return broker_app_right_state(app, right, NULL, NULL) == 0;
}

static int app_grants_changed(BrokerApp *app)
{
        _cleanup_free_ Grant *old = NULL;
        size_t n_old = app->cache.n_grants, lost = 0;
        int r;

        /* The repeats counted so far happened under the old grants: their summaries
         * go before the records of the change. */
        coalesce_flush(app, now_realtime_us(), true);
        if (n_old > 0) {
                old = malloc(n_old * sizeof(Grant));
                if (!old)
                        return -ENOMEM;
                memcpy(old, app->cache.grants, n_old * sizeof(Grant));
        }
        r = broker_app_reload_grants(app);
        if (r < 0)
                return r;

        /* Handles first, so that the event finds them closed already. */
        for (BrokerHandle *h = app->handles, *next; h; h = next) {
                next = h->next;
                if (h->right.cap && !still_held(app, &h->right)) {
                        broker_handle_remove(h);
                        h->close(h);
                        next = app->handles; /* close() may have ended others */
                }
        }
        for (BrokerCall *c = app->calls, *next; c; c = next) {
                next = c->next;
                if (c->checked && c->cancel && !still_held(app, c->checked)) {
                        CallImpl *ci = impl(c);

                        c->cancel(c);
                        c->cancel = NULL;
                        call_fail(ci, EACCES, "the right was revoked", "refused");
                        next = app->calls;
                }
        }

        for (size_t i = 0; i < n_old; i++) {
                Cella__V1__PermRevokedEvent ev = CELLA__V1__PERM_REVOKED_EVENT__INIT;
                bool kept = false;
                json_t *f;

                for (size_t j = 0; j < app->cache.n_grants && !kept; j++)
                        kept = strcmp(app->cache.grants[j].right, old[i].right) == 0;
                if (kept)
                        continue;
                lost++;
                ev.permission = old[i].right;
                ev.reason = old[i].one_time ? "one-time grant used or revoked" : "revoked";
                (void)broker_app_event(app, CELLA__V1__OPCODE__OPCODE_EVENT_PERM_REVOKED, &ev.base);
                f = json_pack("{s:s, s:s, s:b}", "what", "revoked-in-broker", "right", old[i].right,
                              "one_time", old[i].one_time);
                if (f) {
                        (void)broker_app_audit(app, AUDIT_EVENT_GRANT, f);
                        json_decref(f);
                }
        }
        return (int)lost;
}

int broker_grants_changed(Broker *b, const char *app_id)
{
        int n = 0, r;

        if (!b)
                return -EINVAL;
        for (BrokerApp *a = b->apps; a; a = a->next) {
                if (app_id && strcmp(a->id, app_id) != 0)
                        continue;
                r = app_grants_changed(a);
                if (r < 0)
                        return r;
                n += r;
        }
        audit_flush_now(b);
        return n;
}

/* ---- handles, slots, accessors ------------------------------------------------------- */

void broker_handle_add(BrokerApp *app, BrokerHandle *h, const CapabilityRight *right,
                       void (*close)(BrokerHandle *h))
{
        h->app = app;
        if (right)
                h->right = *right;
        else
                h->right.cap = NULL;
        h->close = close;
        h->prev = NULL;
        h->next = app->handles;
        if (app->handles)
                app->handles->prev = h;
        app->handles = h;
}

void broker_handle_remove(BrokerHandle *h)
{
        BrokerApp *app = h->app;

        if (!app)
                return;
        if (h->prev)
                h->prev->next = h->next;
        else if (app->handles == h)
                app->handles = h->next;
        else
                return; /* not linked */
        if (h->next)
                h->next->prev = h->prev;
        h->next = h->prev = NULL;
}

void *broker_app_slot(const BrokerApp *app, BrokerSlot slot)
{
        return slot < _BROKER_SLOT_MAX ? app->slots[slot] : NULL;
}

void broker_app_set_slot(BrokerApp *app, BrokerSlot slot, void *p)
{
        if (slot < _BROKER_SLOT_MAX)
                app->slots[slot] = p;
}

const BrokerAppInfo *broker_app_info(const BrokerApp *app)
{
        return &app->info;
}

Broker *broker_app_broker(const BrokerApp *app)
{
        return app->broker;
}

const BrokerOptions *broker_options(const Broker *b)
{
        return &b->o;
}

void broker_app_charge_cpu(BrokerApp *app, uint64_t ns)
{
        if (app)
                app->stats.worker_cpu_ns += ns;
}

const char *broker_app_id(const BrokerApp *app)
{
        return app->id;
}

unsigned broker_app_outq_room(const BrokerApp *app)
{
        unsigned used = app->outq_len;

        if (app->closed || outq_full(app))
                return 0;
        if (app->broker->batch_app == app) /* the batch is about to join the queue */
                used += app->broker->n_batch;
        return used >= BROKER_OUTQ_MAX ? 0 : BROKER_OUTQ_MAX - used;
}

void broker_app_outq_stats(const BrokerApp *app, size_t *ret_bytes, unsigned *ret_frames,
                           unsigned *ret_fds)
{
        if (ret_bytes)
                *ret_bytes = app->outq_bytes;
        if (ret_frames)
                *ret_frames = app->outq_len;
        if (ret_fds)
                *ret_fds = app->outq_fds;
}
