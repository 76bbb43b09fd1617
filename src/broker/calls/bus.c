/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus.publish, bus.subscribe, bus.unsubscribe, bus.send, bus.request, bus.reply
 * (proto/cella.proto "bus", docs/protocol.md): the apps' side of ipc/bus.h.
 *
 * Rights: bus.publish:<topic>, bus.subscribe:<pattern> (the pattern asked must be
 * covered by a granted one: capability_scope_match takes patterns as subjects),
 * bus.send:<app id> for send and request. A reply needs no right: only the app a
 * request was addressed to holds its token.
 *
 * Delivery. Each attached app has a bus endpoint whose bounded queue drops the
 * oldest message when full (ipc/bus.h). When the queue stops being empty the bus
 * tells us and the app's uv_idle_t is started; it runs once per loop iteration and
 * turns up to BUS_DELIVER_BATCH queued messages into EVENT_BUS_MESSAGE frames, so
 * a burst of publishes read in one go costs one wake-up per subscriber, not one per
 * message. It never puts more frames in the app's out queue than the queue has room
 * for (broker_app_outq_room()): what does not fit stays in the bus queue, where the
 * drop-oldest policy counts the losses, and the app is retried with a backoff
 * timer (BUS_RETRY_MIN_MS doubling to BUS_RETRY_MAX_MS) instead of spinning the
 * loop. A publisher never waits for a subscriber.
 *
 * Requests. bus.request queues a request message (its bus message id is the reply
 * token) and keeps the caller's BrokerCall; the answer comes from the target's
 * bus.reply, or ETIMEDOUT from the request's timer, or ECONNRESET when the target
 * detaches, or EACCES when bus.send for the target is revoked (the pending request
 * is a handle on that right). A request the target's queue dropped is answered by
 * its timeout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "broker/broker-internal.h"
#include "ipc/bus.h"

#define BUS_PAYLOAD_MAX        64512u /* proto: so that an event carrying one fits a body */
#define BUS_DELIVER_BATCH      256u   /* events made per app per loop iteration */
#define BUS_RETRY_MIN_MS       1u     /* out queue full: first retry */
#define BUS_RETRY_MAX_MS       64u    /* ... doubling up to this */
#define BUS_TIMEOUT_DEFAULT_MS 30000u /* proto: timeout_ms 0 */
#define BUS_TIMEOUT_MAX_MS     600000u
#define BUS_ERRNO_MAX          4095 /* a replier's errnum, as the kernel's MAX_ERRNO */

typedef struct BusState BusState;
typedef struct Pending Pending;

/* A subscription: a handle on "bus.subscribe:<pattern>". */
typedef struct Sub {
        BrokerHandle handle;
        BusState *st;
        uint64_t id;
        struct Sub *next, *prev;
} Sub;

/* A bus.request waiting for its answer; a handle of the requester on bus.send:<to>. */
struct Pending {
        BrokerHandle handle;
        BrokerCall *call; /* the requester's; answered exactly once */
        BusState *from;   /* the requester */
        BusState *to;     /* the target; NULL once it detached */
        uint64_t token;   /* the request message's id */
        uv_timer_t timeout;
        Pending *out_next, *out_prev; /* in from->outgoing */
        Pending *in_next, *in_prev;   /* in to->incoming */
};

/* Per app (BROKER_SLOT_BUS). */
struct BusState {
        BrokerApp *app;
        Bus *bus;
        BusEndpoint *ep;
        uv_idle_t idle;    /* delivery, while the queue has messages */
        uv_timer_t retry;  /* delivery, while the out queue is full */
        unsigned retry_ms; /* 0: not waiting */
        unsigned closing;  /* uv handles still to close before freeing */
        Sub *subs;
        Pending *outgoing; /* requests this app waits on */
        Pending *incoming; /* requests to this app, not answered yet */
};

static BusState *bus_state(const BrokerApp *app)
{
        return broker_app_slot(app, BROKER_SLOT_BUS);
}

static void audit_str(BrokerCall *c, const char *key, const char *v)
{
        if (!c->audit_fields)
                c->audit_fields = json_object();
        if (c->audit_fields)
                json_object_set_new(c->audit_fields, key, json_string(v));
}

static void audit_u64(BrokerCall *c, const char *key, uint64_t v)
{
        if (!c->audit_fields)
                c->audit_fields = json_object();
        if (c->audit_fields)
                json_object_set_new(c->audit_fields, key, json_integer((json_int_t)v));
}

/* ---- delivery -------------------------------------------------------------------- */

static bool sub_is_live(const BusState *st, uint64_t id)
{
        for (const Sub *s = st->subs; s; s = s->next)
                if (s->id == id)
                        return true;
        return false;
}

static void deliver_retry(uv_timer_t *h);
static void deliver_idle(uv_idle_t *h);

/*
 * Moves queued messages into the app's out queue, at most BUS_DELIVER_BATCH and
 * never more than it has room for. Messages of a subscription that has ended since
 * they were queued (unsubscribed, or its right revoked) are dropped here, so nothing
 * arrives through a right the app no longer holds.
 */
static void deliver(BusState *st)
{
        unsigned room = broker_app_outq_room(st->app), n = 0;
        BusStats stats;

        while (n < BUS_DELIVER_BATCH && room > 0) {
                Cella__V1__BusMessageEvent ev = CELLA__V1__BUS_MESSAGE_EVENT__INIT;
                uint64_t sub = 0;
                BusMessage *m = bus_endpoint_take(st->ep, &sub);

                if (!m)
                        break;
                if (sub != 0 && !sub_is_live(st, sub)) {
                        bus_message_unref(m);
                        continue;
                }
                ev.subscription_id = sub;
                ev.topic = m->topic;
                ev.sender = m->sender;
                ev.data = (ProtobufCBinaryData){.len = m->len, .data = m->data};
                ev.content_type = m->content_type;
                ev.reply_token = m->request ? m->id : 0;
                (void)broker_app_event(st->app, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE,
                                       &ev.base);
                bus_message_unref(m);
                room--;
                n++;
        }
        bus_endpoint_stats(st->ep, &stats);
        if (stats.queued == 0) {
                uv_idle_stop(&st->idle);
                st->retry_ms = 0;
        } else if (room == 0) {
                /* The app does not read: wait for it without spinning the loop. */
                uv_idle_stop(&st->idle);
                if (n > 0 || st->retry_ms == 0)
                        st->retry_ms = BUS_RETRY_MIN_MS;
                else if (st->retry_ms < BUS_RETRY_MAX_MS)
                        st->retry_ms *= 2;
                uv_timer_start(&st->retry, deliver_retry, st->retry_ms, 0);
        } else {
                /* Batch done, room left: go on next iteration. */
                st->retry_ms = 0;
                uv_idle_start(&st->idle, deliver_idle);
        }
}

static void deliver_idle(uv_idle_t *h)
{
        deliver(h->data);
}

/* The out queue was full a while ago: try again (deliver() backs off further if it
 * still is). */
static void deliver_retry(uv_timer_t *h)
{
        deliver(h->data);
}

/* From the bus, inside a publish or send: the endpoint's queue is no longer empty. */
static void deliver_notify(BusEndpoint *ep, void *userdata)
{
        BusState *st = userdata;

        if (st->retry_ms == 0)
                uv_idle_start(&st->idle, deliver_idle);
}

/* ---- pending requests ------------------------------------------------------------- */

static void pending_free_cb(uv_handle_t *h)
{
        free(h->data);
}

/* Unlinks p from both apps and frees it. Does not answer the call: the caller does
 * that (or the core, after a cancel). */
static void pending_unlink(Pending *p)
{
        if (p->out_prev)
                p->out_prev->out_next = p->out_next;
        else
                p->from->outgoing = p->out_next;
        if (p->out_next)
                p->out_next->out_prev = p->out_prev;
        if (p->to) {
                if (p->in_prev)
                        p->in_prev->in_next = p->in_next;
                else
                        p->to->incoming = p->in_next;
                if (p->in_next)
                        p->in_next->in_prev = p->in_prev;
                p->to = NULL;
        }
        p->call->handler_data = NULL;
        uv_timer_stop(&p->timeout);
        uv_close((uv_handle_t *)&p->timeout, pending_free_cb);
}

/* Answers p's requester with error and ends p. in_handles: p's handle is still in
 * the app's list (false when the core closed it). */
static void pending_fail(Pending *p, int error, const char *message, bool in_handles)
{
        BrokerCall *c = p->call;

        if (in_handles)
                broker_handle_remove(&p->handle);
        pending_unlink(p);
        broker_reply_error(c, error, message);
}

static void pending_timeout(uv_timer_t *h)
{
        pending_fail(h->data, ETIMEDOUT, "no answer in time", true);
}

/* The requester's bus.send right for the target was revoked. */
static void pending_handle_close(BrokerHandle *h)
{
        pending_fail((Pending *)((char *)h - offsetof(Pending, handle)), EACCES,
                     "bus.send was revoked", false);
}

/* The requester cancelled its call, is going away, or lost the right: the core
 * disposes of the call (c->cancel stays set: it tells the core we let go). */
static void pending_cancel(BrokerCall *c)
{
        Pending *p = c->handler_data;

        if (!p)
                return;
        broker_handle_remove(&p->handle);
        pending_unlink(p);
}

/* ---- attach, detach --------------------------------------------------------------- */

static void state_close_cb(uv_handle_t *h)
{
        BusState *st = h->data;

        if (--st->closing == 0)
                free(st);
}

int broker_bus_attach(BrokerApp *app)
{
        const BrokerOptions *o = broker_options(broker_app_broker(app));
        const BrokerAppInfo *info = broker_app_info(app);
        BusState *st;
        int r;

        st = calloc(1, sizeof *st);
        if (!st)
                return -ENOMEM;
        st->app = app;
        st->bus = o->bus;
        r = bus_endpoint_add(o->bus, info->manifest->id, 0, &st->ep);
        if (r < 0) {
                free(st);
                return r;
        }
        if (uv_idle_init(o->loop, &st->idle) < 0 || uv_timer_init(o->loop, &st->retry) < 0) {
                /* uv_idle_init and uv_timer_init only fail on a bad loop. */
                bus_endpoint_remove(o->bus, st->ep);
                free(st);
                return -EINVAL;
        }
        st->idle.data = st->retry.data = st;
        bus_endpoint_set_notify(st->ep, deliver_notify, st);
        broker_app_set_slot(app, BROKER_SLOT_BUS, st);
        return 0;
}

void broker_bus_detach(BrokerApp *app)
{
        BusState *st = bus_state(app);

        if (!st)
                return;
        /* Its own requests (to itself too): the core abandoned their calls already
         * (through pending_cancel()); anything left goes the same way. */
        while (st->outgoing)
                pending_cancel(st->outgoing->call);
        /* Requests to this app from others will never be answered. */
        while (st->incoming)
                pending_fail(st->incoming, ECONNRESET, "the app exited before answering", true);
        while (st->subs) {
                Sub *s = st->subs;

                st->subs = s->next;
                broker_handle_remove(&s->handle);
                free(s);
        }
        bus_endpoint_remove(st->bus, st->ep); /* its subscriptions and queue too */
        broker_app_set_slot(app, BROKER_SLOT_BUS, NULL);
        st->closing = 2;
        uv_close((uv_handle_t *)&st->idle, state_close_cb);
        uv_close((uv_handle_t *)&st->retry, state_close_cb);
}

/* ---- checks shared by the calls --------------------------------------------------- */

/* EINVAL for a content type bus.h refuses, EMSGSIZE for a payload over the proto's
 * bound (tighter than BUS_MESSAGE_MAX: the event carrying it must fit a body). */
static int check_body(const char *content_type, size_t len)
{
        if (strnlen(content_type, BUS_CONTENT_TYPE_MAX + 1) > BUS_CONTENT_TYPE_MAX)
                return -EINVAL;
        for (const char *p = content_type; *p; p++)
                if (*p < 0x20 || *p > 0x7e)
                        return -EINVAL;
        return len > BUS_PAYLOAD_MAX ? -EMSGSIZE : 0;
}

/* Writes "<name>:<scope>" into buf; NULL and -EINVAL if it does not fit (a right is
 * at most CAPABILITY_RIGHT_MAX - 1 bytes, so a topic longer than that minus the
 * prefix cannot be checked and is refused). */
static const char *right_fmt(char *buf, size_t size, const char *name, const char *scope,
                             int *ret_error)
{
        int n = snprintf(buf, size, "%s:%s", name, scope);

        if (n < 0 || (size_t)n >= size || (size_t)n >= CAPABILITY_RIGHT_MAX) {
                *ret_error = -EINVAL;
                return NULL;
        }
        return buf;
}

static bool pattern_is_valid(const char *p)
{
        return strnlen(p, BUS_TOPIC_MAX + 1) <= BUS_TOPIC_MAX &&
               capability_scope_match(CAPABILITY_SCOPE_TOPIC, p, p);
}

/* ---- the calls -------------------------------------------------------------------- */

static const char *publish_right(const ProtobufCMessage *req, char *buf, size_t size,
                                 int *ret_error)
{
        const Cella__V1__BusPublishRequest *m = (const void *)req;
        int r;

        if (!bus_topic_is_valid(m->topic)) {
                *ret_error = -EINVAL;
                return NULL;
        }
        r = check_body(m->content_type, m->data.len);
        if (r < 0) {
                *ret_error = r;
                return NULL;
        }
        return right_fmt(buf, size, "bus.publish", m->topic, ret_error);
}

static void publish_handle(BrokerCall *c)
{
        const Cella__V1__BusPublishRequest *m = (const void *)c->request;
        Cella__V1__BusPublishReply reply = CELLA__V1__BUS_PUBLISH_REPLY__INIT;
        BusState *st = bus_state(c->app);
        int r;

        audit_str(c, "topic", m->topic);
        r = bus_publish(st->bus, st->ep, m->topic, m->content_type, m->data.data, m->data.len);
        if (r < 0) {
                broker_reply_error(c, -r, NULL);
                return;
        }
        audit_u64(c, "delivered", (uint64_t)r);
        reply.delivered = (uint32_t)r;
        broker_reply(c, &reply.base, NULL, 0);
}

static const char *subscribe_right(const ProtobufCMessage *req, char *buf, size_t size,
                                   int *ret_error)
{
        const Cella__V1__BusSubscribeRequest *m = (const void *)req;

        if (!pattern_is_valid(m->pattern)) {
                *ret_error = -EINVAL;
                return NULL;
        }
        return right_fmt(buf, size, "bus.subscribe", m->pattern, ret_error);
}

/* The core closed the handle: the subscription's right was revoked. */
static void sub_handle_close(BrokerHandle *h)
{
        Sub *s = (Sub *)((char *)h - offsetof(Sub, handle));
        BusState *st = s->st;

        (void)bus_unsubscribe(st->bus, st->ep, s->id);
        if (s->prev)
                s->prev->next = s->next;
        else
                st->subs = s->next;
        if (s->next)
                s->next->prev = s->prev;
        free(s);
}

static void subscribe_handle(BrokerCall *c)
{
        const Cella__V1__BusSubscribeRequest *m = (const void *)c->request;
        Cella__V1__BusSubscribeReply reply = CELLA__V1__BUS_SUBSCRIBE_REPLY__INIT;
        BusState *st = bus_state(c->app);
        Sub *s;
        int r;

        audit_str(c, "pattern", m->pattern);
        s = calloc(1, sizeof *s);
        if (!s) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        r = bus_subscribe(st->bus, st->ep, m->pattern, &s->id);
        if (r < 0) {
                free(s);
                /* The proto's and cella.h's EBUSY for the per-app quota. */
                broker_reply_error(c, r == -ENOSPC ? EBUSY : -r,
                                   r == -ENOSPC ? "too many subscriptions" : NULL);
                return;
        }
        s->st = st;
        s->next = st->subs;
        if (st->subs)
                st->subs->prev = s;
        st->subs = s;
        broker_handle_add(c->app, &s->handle, c->right, sub_handle_close);
        audit_u64(c, "subscription_id", s->id);
        reply.subscription_id = s->id;
        broker_reply(c, &reply.base, NULL, 0);
}

static const char *no_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        return NULL;
}

static void unsubscribe_handle(BrokerCall *c)
{
        const Cella__V1__BusUnsubscribeRequest *m = (const void *)c->request;
        Cella__V1__BusUnsubscribeReply reply = CELLA__V1__BUS_UNSUBSCRIBE_REPLY__INIT;
        BusState *st = bus_state(c->app);

        audit_u64(c, "subscription_id", m->subscription_id);
        for (Sub *s = st->subs; s; s = s->next)
                if (s->id == m->subscription_id) {
                        broker_handle_remove(&s->handle);
                        sub_handle_close(&s->handle);
                        broker_reply(c, &reply.base, NULL, 0);
                        return;
                }
        broker_reply_error(c, ENOENT, "no such subscription");
}

static const char *send_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__BusSendRequest *m = (const void *)req;
        int r;

        if (!manifest_id_is_valid(m->app_id)) {
                *ret_error = -EINVAL;
                return NULL;
        }
        r = check_body(m->content_type, m->data.len);
        if (r < 0) {
                *ret_error = r;
                return NULL;
        }
        return right_fmt(buf, size, "bus.send", m->app_id, ret_error);
}

static void send_handle(BrokerCall *c)
{
        const Cella__V1__BusSendRequest *m = (const void *)c->request;
        Cella__V1__BusSendReply reply = CELLA__V1__BUS_SEND_REPLY__INIT;
        BusState *st = bus_state(c->app);
        int r;

        audit_str(c, "to", m->app_id);
        r = bus_send(st->bus, st->ep, m->app_id, 0, m->content_type, m->data.data, m->data.len,
                     NULL);
        if (r < 0) {
                broker_reply_error(c, -r, r == -ENOENT ? "the app is not running" : NULL);
                return;
        }
        broker_reply(c, &reply.base, NULL, 0);
}

static const char *request_right(const ProtobufCMessage *req, char *buf, size_t size,
                                 int *ret_error)
{
        const Cella__V1__BusRequestRequest *m = (const void *)req;
        int r;

        if (!manifest_id_is_valid(m->app_id) || !bus_topic_is_valid(m->topic) ||
            m->timeout_ms > BUS_TIMEOUT_MAX_MS) {
                *ret_error = -EINVAL;
                return NULL;
        }
        r = check_body(m->content_type, m->data.len);
        if (r < 0) {
                *ret_error = r;
                return NULL;
        }
        return right_fmt(buf, size, "bus.send", m->app_id, ret_error);
}

static void request_handle(BrokerCall *c)
{
        const Cella__V1__BusRequestRequest *m = (const void *)c->request;
        const BrokerOptions *o = broker_options(broker_app_broker(c->app));
        BusState *st = bus_state(c->app), *to;
        BrokerApp *target;
        Pending *p;
        int r;

        audit_str(c, "to", m->app_id);
        audit_str(c, "topic", m->topic);
        target = broker_app_find(broker_app_broker(c->app), m->app_id);
        to = target ? bus_state(target) : NULL;
        if (!to) {
                broker_reply_error(c, ENOENT, "the app is not running");
                return;
        }
        p = calloc(1, sizeof *p);
        if (!p) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        if (uv_timer_init(o->loop, &p->timeout) < 0) {
                free(p);
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        p->timeout.data = p;
        r = bus_request(st->bus, st->ep, m->app_id, m->topic, m->content_type, m->data.data,
                        m->data.len, &p->token);
        if (r < 0) {
                uv_close((uv_handle_t *)&p->timeout, pending_free_cb);
                broker_reply_error(c, -r, NULL);
                return;
        }
        audit_u64(c, "token", p->token);
        p->call = c;
        p->from = st;
        p->to = to;
        p->out_next = st->outgoing;
        if (st->outgoing)
                st->outgoing->out_prev = p;
        st->outgoing = p;
        p->in_next = to->incoming;
        if (to->incoming)
                to->incoming->in_prev = p;
        to->incoming = p;
        broker_handle_add(c->app, &p->handle, c->right, pending_handle_close);
        uv_timer_start(&p->timeout, pending_timeout, m->timeout_ms ?: BUS_TIMEOUT_DEFAULT_MS, 0);
        c->handler_data = p;
        c->cancel = pending_cancel;
        /* answered later: bus.reply, the timeout, or the target's exit */
}

static const char *reply_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__BusReplyRequest *m = (const void *)req;
        int r;

        if (m->reply_token == 0 || m->errnum < 0 || m->errnum > BUS_ERRNO_MAX) {
                *ret_error = -EINVAL;
                return NULL;
        }
        r = check_body(m->content_type, m->data.len);
        if (r < 0)
                *ret_error = r;
        return NULL;
}

static void reply_handle(BrokerCall *c)
{
        const Cella__V1__BusReplyRequest *m = (const void *)c->request;
        Cella__V1__BusReplyReply ok = CELLA__V1__BUS_REPLY_REPLY__INIT;
        BusState *st = bus_state(c->app);
        Pending *p;

        audit_u64(c, "token", m->reply_token);
        for (p = st->incoming; p; p = p->in_next)
                if (p->token == m->reply_token)
                        break;
        if (!p) {
                broker_reply_error(c, ENOENT, "no such request (answered, timed out or gone)");
                return;
        }
        audit_str(c, "to", broker_app_info(p->from->app)->manifest->id);
        if (m->errnum != 0)
                pending_fail(p, m->errnum, NULL, true);
        else {
                Cella__V1__BusRequestReply answer = CELLA__V1__BUS_REQUEST_REPLY__INIT;
                BrokerCall *rc = p->call;

                answer.data = m->data;
                answer.content_type = m->content_type;
                answer.responder = (char *)broker_app_info(c->app)->manifest->id;
                broker_handle_remove(&p->handle);
                pending_unlink(p);
                broker_reply(rc, &answer.base, NULL, 0);
        }
        broker_reply(c, &ok.base, NULL, 0);
}

const BrokerCallDef broker_calls_bus[] = {
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH,
                .cls = BROKER_CLASS_CHEAP,
                .right_of = publish_right,
                .handle = publish_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_BUS_SUBSCRIBE,
                .cls = BROKER_CLASS_CHEAP,
                .right_of = subscribe_right,
                .handle = subscribe_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_BUS_UNSUBSCRIBE,
                .cls = BROKER_CLASS_CHEAP,
                .right_of = no_right,
                .handle = unsubscribe_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_BUS_SEND,
                .cls = BROKER_CLASS_CHEAP,
                .right_of = send_right,
                .handle = send_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_BUS_REQUEST,
                .cls = BROKER_CLASS_CHEAP,
                .right_of = request_right,
                .handle = request_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_BUS_REPLY,
                .cls = BROKER_CLASS_CHEAP,
                .right_of = reply_right,
                .handle = reply_handle,
        },
        {0},
};
