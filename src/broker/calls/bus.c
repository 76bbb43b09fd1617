/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus.publish, bus.publish_batch, bus.subscribe, bus.unsubscribe, bus.send,
 * bus.request, bus.reply (proto/cella.proto "bus", docs/protocol.md): the apps' side
 * of ipc/bus.h.
 *
 * Rights: bus.publish:<topic>, bus.subscribe:<pattern> (the pattern asked must be
 * covered by a granted one: capability_scope_match takes patterns as subjects),
 * bus.send:<app id> for send and request. A reply needs no right: only the app a
 * request was addressed to holds its token.
 *
 * Delivery. Each attached app has a bus endpoint whose bounded queue drops the
 * oldest message when full (ipc/bus.h). When the queue stops being empty the bus
 * tells us and the app's uv_idle_t is started; it runs once per loop iteration and
 * turns queued messages into up to BUS_DELIVER_BATCH frames, so a burst of publishes
 * read in one go costs one wake-up per subscriber, not one per message. Messages of
 * a subscription made with batch = true (the client decodes EVENT_BUS_MESSAGES) go
 * together, up to BUS_EVENT_BATCH_MAX and the 64 KiB body per frame; the others, and
 * direct messages and requests, one EVENT_BUS_MESSAGE each. It never puts more
 * frames in the app's out queue than the queue has room for (broker_app_outq_room()):
 * what does not fit stays in the bus queue, where the drop-oldest policy counts the
 * losses, and the app is retried with a backoff timer (BUS_RETRY_MIN_MS doubling to
 * BUS_RETRY_MAX_MS) instead of spinning the loop. When a publish finds the bus queue
 * full, the bus asks us first (bus_endpoint_set_full()) and we move what the out
 * queue has room for into frames at once: a batch publish larger than the bus queue
 * reaches an app that reads, and only an app that does not read loses messages. A
 * publisher never waits for a subscriber.
 *
 * Batches. bus.publish_batch carries up to BUS_BATCH_MAX messages. right_of checks
 * every field and names no right (one call, several rights); the handler checks
 * bus.publish for each distinct topic (at most BUS_BATCH_TOPICS_MAX) before
 * publishing anything, so one refused topic refuses the call, and the refusal and
 * its audit record name it. One audit record per call (message count, the first
 * BUS_AUDIT_TOPICS_MAX topics, deliveries) and one rate-limit token, taken by the
 * core before the handler runs, so refusals pay too: the bounds above bound what
 * one token buys.
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
#include "wire/bussig.h"

#define BUS_PAYLOAD_MAX        64512u /* proto: so that an event carrying one fits a body */
#define BUS_DELIVER_BATCH      256u   /* frames made per app per loop iteration */
#define BUS_EVENT_BATCH_MAX    256u   /* proto: messages in one BusMessagesEvent */
#define BUS_BATCH_MAX          1024u  /* proto: messages in one bus.publish_batch */
#define BUS_BATCH_TOPICS_MAX   64u    /* proto: distinct topics in one */
#define BUS_AUDIT_TOPICS_MAX   8u     /* topics one audit record names */
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
        bool batch; /* the client takes EVENT_BUS_MESSAGES for it */
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
        broker_audit_set(c, key, json_string(v));
}

static void audit_u64(BrokerCall *c, const char *key, uint64_t v)
{
        broker_audit_set(c, key, json_integer((json_int_t)v));
}

/* ---- delivery -------------------------------------------------------------------- */

static const Sub *sub_find(const BusState *st, uint64_t id)
{
        for (const Sub *s = st->subs; s; s = s->next)
                if (s->id == id)
                        return s;
        return NULL;
}

static void deliver_retry(uv_timer_t *h);
static void deliver_idle(uv_idle_t *h);

/* The messages of one batched event frame being built. The broker runs on one thread
 * (broker.h) and making a frame never re-enters delivery, so one scratch serves
 * every app (it is 100 KiB: too much to keep per app or put on the stack). */
static struct {
        BusMessage *held[BUS_EVENT_BATCH_MAX];
        Cella__V1__BusMessageEvent ev[BUS_EVENT_BATCH_MAX];
        Cella__V1__BusSignature sig[BUS_EVENT_BATCH_MAX];
        Cella__V1__BusMessageEvent *ptr[BUS_EVENT_BATCH_MAX];
} scratch;

/* ev for m as delivered to the app whose id is to; sig: where m's signature (if it
 * has one) is built, which must live as long as ev. */
static void event_of(Cella__V1__BusMessageEvent *ev, Cella__V1__BusSignature *sig,
                     const BusMessage *m, uint64_t sub, const char *to)
{
        *ev = (Cella__V1__BusMessageEvent)CELLA__V1__BUS_MESSAGE_EVENT__INIT;
        ev->subscription_id = sub;
        ev->topic = m->topic;
        ev->sender = m->sender;
        ev->data = (ProtobufCBinaryData){.len = m->len, .data = (uint8_t *)m->data};
        ev->content_type = m->content_type;
        ev->reply_token = m->request ? m->id : 0;
        if (m->has_sig) {
                *sig = (Cella__V1__BusSignature)CELLA__V1__BUS_SIGNATURE__INIT;
                sig->timestamp_ns = m->sig.timestamp_ns;
                sig->counter = m->sig.counter;
                sig->signature = (ProtobufCBinaryData){.len = sizeof m->sig.sig,
                                                       .data = (uint8_t *)m->sig.sig};
                sig->target = m->direct ? (char *)to : "";
                ev->signature = sig;
        }
}

/* At least the bytes m takes inside a BusMessagesEvent (field tag, length, the
 * BusMessageEvent), without a pass over the encoder: each of its six fields counted at
 * its longest (a tag byte, a length varint of 3 bytes as for up to 2 MiB, the bytes; 10
 * bytes for a uint64 varint). Over-counting only leaves a frame a little short of full;
 * under-counting could make it too large, which this never does. */
static size_t event_field_bound(const BusMessage *m)
{
        size_t inner = (1 + 10) * 2 /* subscription_id, reply_token */ +
                       (1 + 3) * 4 /* topic, sender, data, content_type: tag, length */ +
                       strlen(m->topic) + strlen(m->sender) + m->len + strlen(m->content_type);

        /* signature: tag, length; timestamp, counter; the signature; a target (only
         * direct messages, which never go in batches, carry one: its bound anyway) */
        if (m->has_sig)
                inner += (1 + 3) + (1 + 10) * 2 + (1 + 1 + BUSSIG_BYTES) +
                         (1 + 2 + 255 /* app id */);

        return 1 + 3 + inner;
}

/*
 * Moves queued messages into at most max_frames frames of the app's out queue, never
 * more than it has room for. Consecutive messages of batch subscriptions share a
 * BusMessagesEvent (up to BUS_EVENT_BATCH_MAX, within a body); any other message, or a
 * batch of one, is an EVENT_BUS_MESSAGE. Messages of a subscription that has ended
 * since they were queued (unsubscribed, or its right revoked) are dropped here, so
 * nothing arrives through a right the app no longer holds. Returns the frames made.
 */
static unsigned deliver_frames(BusState *st, unsigned max_frames)
{
        unsigned frames = 0;

        /* The room is asked again for every frame: a frame of 64 KiB may take all
         * the byte room the queue had (BROKER_OUTQ_BYTES_MAX). */
        while (frames < max_frames && broker_app_outq_room(st->app) > 0) {
                size_t body = 0;
                unsigned n = 0;

                for (;;) {
                        uint64_t sub_id = 0;
                        const BusMessage *m = bus_endpoint_peek(st->ep, &sub_id);
                        const Sub *s = NULL;
                        bool batch;
                        size_t size;

                        if (!m || n == BUS_EVENT_BATCH_MAX)
                                break;
                        if (sub_id != 0 && !(s = sub_find(st, sub_id))) {
                                bus_message_unref(bus_endpoint_take(st->ep, NULL));
                                continue;
                        }
                        batch = s && s->batch;
                        if (n > 0 && !batch)
                                break; /* it goes alone, in the next frame */
                        event_of(&scratch.ev[n], &scratch.sig[n], m, sub_id,
                                 broker_app_id(st->app));
                        size = batch ? event_field_bound(m) : 0;
                        if (n > 0 && body + size > CHANNEL_BODY_MAX)
                                break;
                        scratch.held[n] = bus_endpoint_take(st->ep, NULL);
                        scratch.ptr[n] = &scratch.ev[n];
                        body += size;
                        n++;
                        if (!batch)
                                break;
                }
                if (n == 0)
                        break;
                if (n == 1)
                        (void)broker_app_event(st->app, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE,
                                               &scratch.ev[0].base);
                else {
                        Cella__V1__BusMessagesEvent ev = CELLA__V1__BUS_MESSAGES_EVENT__INIT;

                        ev.n_messages = n;
                        ev.messages = scratch.ptr;
                        (void)broker_app_event(
                                st->app, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGES, &ev.base);
                }
                for (unsigned i = 0; i < n; i++)
                        scratch.held[i] = bus_message_unref(scratch.held[i]);
                frames++;
        }
        return frames;
}

/* Delivers a batch of frames and decides when to go on: next loop iteration if the
 * out queue has room, after a backoff if it is full, never if the bus queue is empty. */
static void deliver(BusState *st)
{
        unsigned n = deliver_frames(st, BUS_DELIVER_BATCH);
        BusStats stats;

        bus_endpoint_stats(st->ep, &stats);
        if (stats.queued == 0) {
                uv_idle_stop(&st->idle);
                st->retry_ms = 0;
        } else if (broker_app_outq_room(st->app) == 0) {
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

/* From the bus, inside a publish: the endpoint's queue is full and a message is about
 * to join it. What the out queue has room for goes into frames now; the scheduling
 * (idle, retry) is left as it is: the queue was not empty, so it is armed already. */
static void deliver_full(BusEndpoint *ep, void *userdata)
{
        (void)deliver_frames(userdata, BUS_DELIVER_BATCH);
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
        bus_endpoint_set_full(st->ep, deliver_full, st);
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
        if (m->sign) {
                const char *why = NULL;
                BusSig sig;

                r = broker_channel_sign(c->app, BUSSIG_KIND_TOPIC, m->topic, m->content_type,
                                        m->data.data, m->data.len, &sig, &why);
                if (r < 0) {
                        broker_reply_error(c, -r, why);
                        return;
                }
                broker_audit_set(c, "signed", json_integer((json_int_t)sig.counter));
                r = bus_publish_signed(st->bus, st->ep, m->topic, m->content_type, m->data.data,
                                       m->data.len, &sig);
        } else
                r = bus_publish(st->bus, st->ep, m->topic, m->content_type, m->data.data,
                                m->data.len);
        if (r < 0) {
                broker_reply_error(c, -r, NULL);
                return;
        }
        audit_u64(c, "delivered", (uint64_t)r);
        reply.delivered = (uint32_t)r;
        broker_reply(c, &reply.base, NULL, 0);
}

/* True if "bus.publish:" + topic fits a right (right_fmt() would take it). */
static bool topic_right_fits(const char *topic)
{
        return sizeof("bus.publish:") - 1 + strlen(topic) < CAPABILITY_RIGHT_MAX;
}

/* The distinct topics of a batch in first-seen order, into topics[BUS_BATCH_TOPICS_MAX].
 * Returns how many, or -EINVAL past BUS_BATCH_TOPICS_MAX. A run of one topic (the usual
 * batch) costs one strcmp per message. */
static int batch_topics(const Cella__V1__BusPublishBatchRequest *m, const char **topics)
{
        unsigned n = 0;

        for (size_t i = 0; i < m->n_messages; i++) {
                const char *t = m->messages[i]->topic;
                unsigned j;

                if (i > 0 && strcmp(t, m->messages[i - 1]->topic) == 0)
                        continue;
                for (j = 0; j < n && strcmp(topics[j], t) != 0; j++)
                        ;
                if (j < n)
                        continue;
                if (n == BUS_BATCH_TOPICS_MAX)
                        return -EINVAL;
                topics[n++] = t;
        }
        return (int)n;
}

/* Every field of every message (as publish_right()), so that a bad one refuses the
 * call before any right is looked at. No right for the core to check: the handler
 * checks one per distinct topic. */
static const char *publish_batch_right(const ProtobufCMessage *req, char *buf, size_t size,
                                       int *ret_error)
{
        const Cella__V1__BusPublishBatchRequest *m = (const void *)req;
        const char *topics[BUS_BATCH_TOPICS_MAX];
        int r;

        if (m->n_messages == 0 || m->n_messages > BUS_BATCH_MAX) {
                *ret_error = -EINVAL;
                return NULL;
        }
        for (size_t i = 0; i < m->n_messages; i++) {
                const Cella__V1__BusPublishRequest *p = m->messages[i];

                /* sign: one message at a time (bus.publish), so that one call never
                 * buys a thousand signatures of the kernel's loop. */
                if (!bus_topic_is_valid(p->topic) || !topic_right_fits(p->topic) || p->sign) {
                        *ret_error = -EINVAL;
                        return NULL;
                }
                r = check_body(p->content_type, p->data.len);
                if (r < 0) {
                        *ret_error = r;
                        return NULL;
                }
        }
        r = batch_topics(m, topics);
        if (r < 0)
                *ret_error = r;
        return NULL;
}

/* Refuses c for right (error -EACCES or -EPERM, why: the reason), naming it in the
 * reply and in the audit record (c->right is read before broker_reply_error()
 * returns, so a buffer of the caller's will do). */
static void publish_batch_refuse(BrokerCall *c, const char *right, int error, const char *why)
{
        char message[CAPABILITY_RIGHT_MAX + 64];

        snprintf(message, sizeof message, "%.*s: %s", (int)strnlen(right, CAPABILITY_RIGHT_MAX - 1),
                 right, why);
        c->right = right;
        broker_reply_error(c, -error, message);
}

static void publish_batch_handle(BrokerCall *c)
{
        const Cella__V1__BusPublishBatchRequest *m = (const void *)c->request;
        Cella__V1__BusPublishBatchReply reply = CELLA__V1__BUS_PUBLISH_BATCH_REPLY__INIT;
        char rights[BUS_BATCH_TOPICS_MAX][CAPABILITY_RIGHT_MAX];
        CapabilityRight parsed[BUS_BATCH_TOPICS_MAX];
        const char *topics[BUS_BATCH_TOPICS_MAX], *why;
        BusState *st = bus_state(c->app);
        uint64_t delivered = 0;
        size_t refused = 0;
        json_t *names;
        int n, r;

        n = batch_topics(m, topics); /* 1..BUS_BATCH_TOPICS_MAX: right_of checked */
        audit_u64(c, "messages", m->n_messages);
        audit_u64(c, "topics_total", (uint64_t)n);
        names = json_array();
        for (int i = 0; names && i < n && i < (int)BUS_AUDIT_TOPICS_MAX; i++)
                json_array_append_new(names, json_string(topics[i]));
        broker_audit_set(c, "topics", names);

        /* All decided before anything is published or any one-time grant used up
         * (broker_app_take()), as the core's check does for other calls. */
        for (int i = 0; i < n; i++) {
                snprintf(rights[i], sizeof rights[i], "bus.publish:%s", topics[i]);
                /* Parsed once, here; an unparsable one is refused as not a right. */
                if (capability_right_parse(rights[i], &parsed[i], NULL) < 0)
                        parsed[i].cap = NULL;
        }
        r = broker_app_take(c->app, parsed, (size_t)n, &refused, &why);
        if (r == -EACCES || r == -EPERM) {
                publish_batch_refuse(c, rights[refused], r, why);
                return;
        }
        if (r < 0) {
                broker_reply_error(c, EIO, "the grants database failed");
                return;
        }

        for (size_t i = 0; i < m->n_messages; i++) {
                const Cella__V1__BusPublishRequest *p = m->messages[i];

                r = bus_publish(st->bus, st->ep, p->topic, p->content_type, p->data.data,
                                p->data.len);
                if (r < 0) {
                        /* Only -ENOMEM can come after the checks; the messages before
                         * this one are out. */
                        audit_u64(c, "published", i);
                        broker_reply_error(c, -r, "out of memory part-way through the batch");
                        return;
                }
                delivered += (uint64_t)r;
        }
        audit_u64(c, "delivered", delivered);
        c->right = rights[0]; /* the record names the first; "topics" the others */
        reply.messages = (uint32_t)m->n_messages;
        reply.delivered = delivered;
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
        s->batch = m->batch;
        s->next = st->subs;
        if (st->subs)
                st->subs->prev = s;
        st->subs = s;
        broker_handle_add(c->app, &s->handle, c->checked, sub_handle_close);
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
        if (m->sign) {
                const char *why = NULL;
                BusSig sig;

                if (!bus_endpoint_find(st->bus, m->app_id)) {
                        broker_reply_error(c, ENOENT, "the app is not running");
                        return;
                }
                r = broker_channel_sign(c->app, BUSSIG_KIND_DIRECT, m->app_id, m->content_type,
                                        m->data.data, m->data.len, &sig, &why);
                if (r < 0) {
                        broker_reply_error(c, -r, why);
                        return;
                }
                broker_audit_set(c, "signed", json_integer((json_int_t)sig.counter));
                r = bus_send_signed(st->bus, st->ep, m->app_id, m->content_type, m->data.data,
                                    m->data.len, &sig, NULL);
        } else
                r = bus_send(st->bus, st->ep, m->app_id, 0, m->content_type, m->data.data,
                             m->data.len, NULL);
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
        broker_handle_add(c->app, &p->handle, c->checked, pending_handle_close);
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
                .right_of = publish_right,
                .handle = publish_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH_BATCH,
                .right_of = publish_batch_right,
                .handle = publish_batch_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_BUS_SUBSCRIBE,
                .right_of = subscribe_right,
                .handle = subscribe_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_BUS_UNSUBSCRIBE,
                .right_of = no_right,
                .handle = unsubscribe_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_BUS_SEND,
                .right_of = send_right,
                .handle = send_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_BUS_REQUEST,
                .right_of = request_right,
                .handle = request_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_BUS_REPLY,
                .right_of = reply_right,
                .handle = reply_handle,
        },
        {0},
};
