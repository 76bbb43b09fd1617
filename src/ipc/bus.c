/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "ipc/bus.h"
#include "base/pattern.h"

typedef struct Sub Sub;

struct Sub {
        uint64_t id;
        BusEndpoint *ep;
        char *pattern;
        bool is_pattern;
        Sub *next;    /* in its hash bucket, or in the bus's pattern list */
        Sub **pprev;  /* the pointer that points at this Sub, for O(1) unlinking */
        Sub *ep_next; /* in the endpoint's list */
};

struct BusEndpoint {
        Bus *bus;
        char *app_id;
        BusMessage **ring;
        uint64_t *ring_sub; /* the subscription each queued message came through; 0: direct */
        unsigned cap, head, count;
        size_t bytes;       /* message_cost() of the messages queued */
        BusNotifyFn notify; /* called when the queue goes from empty to non-empty */
        void *notify_userdata;
        BusNotifyFn full; /* called before a message is queued on a full queue */
        void *full_userdata;
        uint64_t delivered, dropped;
        uint64_t last_publish; /* the publish that last queued to us: one copy each */
        Sub *subs;
        unsigned n_subs;
        BusEndpoint *next; /* in the bus's endpoint list */
};

struct Bus {
        Sub **buckets; /* exact-topic subscriptions by hash */
        size_t n_buckets;
        size_t n_exact;
        Sub *patterns;
        BusEndpoint *endpoints;
        uint64_t next_message_id;
        uint64_t next_sub_id;
        uint64_t publish_seq;
};

#define BUS_BUCKETS_INITIAL 64

/* FNV-1a, 64 bit (Fowler, Noll, Vo; http://www.isthe.com/chongo/tech/comp/fnv/). */
static uint64_t hash_str(const char *s)
{
        uint64_t h = 0xcbf29ce484222325ull;

        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 0x100000001b3ull;
        }
        return h;
}

/* True if topic (or a pattern, as pattern_match() reads a subject) matches pattern,
 * both at most BUS_TOPIC_MAX bytes, under base/pattern.h's topic rules: the matcher
 * the capability scopes of bus.publish and bus.subscribe use too. */
static bool topic_match(const char *pattern, const char *topic)
{
        size_t plen = strnlen(pattern, BUS_TOPIC_MAX + 1), tlen = strnlen(topic, BUS_TOPIC_MAX + 1);

        return plen <= BUS_TOPIC_MAX && tlen <= BUS_TOPIC_MAX &&
               pattern_match(PATTERN_TOPIC, pattern, plen, topic, tlen);
}

/* A subscription pattern is valid if it covers itself under the topic rules
 * (pattern_match() checks its syntax first). */
static bool pattern_is_valid(const char *pattern)
{
        return pattern && topic_match(pattern, pattern);
}

/* A topic is a pattern without globs: base/pattern.h's syntax for topics (what
 * pattern_is_valid() accepts, minus '*'), checked in one pass here because every
 * published message goes through it: 1..BUS_TOPIC_MAX bytes, '.'-separated segments of
 * 1..PATTERN_SEGMENT_MAX bytes of [A-Za-z0-9_-], at most PATTERN_SEGMENTS_MAX. */
bool bus_topic_is_valid(const char *topic)
{
        size_t i, seg = 0, segs = 1;

        if (!topic)
                return false;
        for (i = 0; topic[i]; i++) {
                char c = topic[i];

                if (i == BUS_TOPIC_MAX)
                        return false;
                if (c == '.') {
                        if (seg == 0 || ++segs > PATTERN_SEGMENTS_MAX)
                                return false;
                        seg = 0;
                } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '_' || c == '-') {
                        if (++seg > PATTERN_SEGMENT_MAX)
                                return false;
                } else
                        return false;
        }
        return seg > 0;
}

static bool content_type_is_valid(const char *t)
{
        if (!t)
                return false;
        for (size_t i = 0; t[i]; i++)
                if (i >= BUS_CONTENT_TYPE_MAX || t[i] < 0x20 || t[i] > 0x7e)
                        return false;
        return true;
}

int bus_new(Bus **ret)
{
        Bus *b = calloc(1, sizeof *b);

        if (!b)
                return -ENOMEM;
        b->buckets = calloc(BUS_BUCKETS_INITIAL, sizeof(Sub *));
        if (!b->buckets) {
                free(b);
                return -ENOMEM;
        }
        b->n_buckets = BUS_BUCKETS_INITIAL;
        b->next_message_id = 1;
        b->next_sub_id = 1;
        *ret = b;
        return 0;
}

Bus *bus_free(Bus *b)
{
        if (!b)
                return NULL;
        while (b->endpoints)
                bus_endpoint_remove(b, b->endpoints);
        free(b->buckets);
        free(b);
        return NULL;
}

static void link_sub(Sub **head, Sub *s)
{
        s->next = *head;
        if (*head)
                (*head)->pprev = &s->next;
        *head = s;
        s->pprev = head;
}

static void unlink_sub(Sub *s)
{
        *s->pprev = s->next;
        if (s->next)
                s->next->pprev = s->pprev;
}

/* Doubles the table at a load of 3/4, rehashing every exact subscription. */
static int grow(Bus *b)
{
        size_t n = b->n_buckets * 2;
        Sub **nb = calloc(n, sizeof(Sub *));

        if (!nb)
                return -ENOMEM;
        for (size_t i = 0; i < b->n_buckets; i++)
                while (b->buckets[i]) {
                        Sub *s = b->buckets[i];

                        unlink_sub(s);
                        link_sub(&nb[hash_str(s->pattern) & (n - 1)], s);
                }
        free(b->buckets);
        b->buckets = nb;
        b->n_buckets = n;
        return 0;
}

int bus_endpoint_add(Bus *b, const char *app_id, unsigned capacity, BusEndpoint **ret)
{
        BusEndpoint *ep;

        if (!app_id || !app_id_is_valid(app_id) || capacity > BUS_QUEUE_MAX)
                return -EINVAL;
        if (bus_endpoint_find(b, app_id))
                return -EEXIST;
        ep = calloc(1, sizeof *ep);
        if (!ep)
                return -ENOMEM;
        ep->bus = b;
        ep->cap = capacity ?: BUS_QUEUE_DEFAULT;
        ep->app_id = strdup(app_id);
        ep->ring = calloc(ep->cap, sizeof(BusMessage *));
        ep->ring_sub = calloc(ep->cap, sizeof(uint64_t));
        if (!ep->app_id || !ep->ring || !ep->ring_sub) {
                free(ep->app_id);
                free(ep->ring);
                free(ep->ring_sub);
                free(ep);
                return -ENOMEM;
        }
        ep->next = b->endpoints;
        b->endpoints = ep;
        *ret = ep;
        return 0;
}

BusEndpoint *bus_endpoint_find(Bus *b, const char *app_id)
{
        for (BusEndpoint *ep = b->endpoints; ep; ep = ep->next)
                if (strcmp(ep->app_id, app_id) == 0)
                        return ep;
        return NULL;
}

static void sub_free(Bus *b, Sub *s)
{
        unlink_sub(s);
        if (!s->is_pattern)
                b->n_exact--;
        free(s->pattern);
        free(s);
}

void bus_endpoint_remove(Bus *b, BusEndpoint *ep)
{
        BusMessage *m;

        if (!ep)
                return;
        while (ep->subs) {
                Sub *s = ep->subs;

                ep->subs = s->ep_next;
                sub_free(b, s);
        }
        while ((m = bus_endpoint_pop(ep)))
                bus_message_unref(m);
        for (BusEndpoint **p = &b->endpoints; *p; p = &(*p)->next)
                if (*p == ep) {
                        *p = ep->next;
                        break;
                }
        free(ep->ring);
        free(ep->ring_sub);
        free(ep->app_id);
        free(ep);
}

int bus_subscribe(Bus *b, BusEndpoint *ep, const char *pattern, uint64_t *ret_id)
{
        Sub *s;

        if (!pattern_is_valid(pattern))
                return -EINVAL;
        if (ep->n_subs >= BUS_SUBS_MAX)
                return -ENOSPC;
        if (b->n_exact + 1 > b->n_buckets / 4 * 3 && grow(b) < 0)
                return -ENOMEM;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->pattern = strdup(pattern);
        if (!s->pattern) {
                free(s);
                return -ENOMEM;
        }
        s->id = b->next_sub_id++;
        s->ep = ep;
        s->is_pattern = strchr(pattern, '*') != NULL;
        if (s->is_pattern)
                link_sub(&b->patterns, s);
        else {
                link_sub(&b->buckets[hash_str(pattern) & (b->n_buckets - 1)], s);
                b->n_exact++;
        }
        s->ep_next = ep->subs;
        ep->subs = s;
        ep->n_subs++;
        if (ret_id)
                *ret_id = s->id;
        return 0;
}

int bus_unsubscribe(Bus *b, BusEndpoint *ep, uint64_t id)
{
        for (Sub **p = &ep->subs; *p; p = &(*p)->ep_next)
                if ((*p)->id == id) {
                        Sub *s = *p;

                        *p = s->ep_next;
                        ep->n_subs--;
                        sub_free(b, s);
                        return 0;
                }
        return -ENOENT;
}

/* One allocation per message: the struct, then data, topic, sender and content type
 * (a batch of publishes costs one malloc per message, not four). */
static BusMessage *message_new(Bus *b, const char *topic, const BusEndpoint *sender,
                               const char *content_type, const void *data, size_t len)
{
        const char *from = sender ? sender->app_id : "";
        size_t lt = strlen(topic) + 1, ls = strlen(from) + 1, lc = strlen(content_type) + 1;
        BusMessage *m = malloc(sizeof *m + len + lt + ls + lc);
        char *p;

        if (!m)
                return NULL;
        *m = (BusMessage){.refs = 1, .id = b->next_message_id++, .len = len};
        if (len)
                memcpy(m->data, data, len);
        p = (char *)m->data + len;
        m->topic = memcpy(p, topic, lt);
        m->sender = memcpy(p + lt, from, ls);
        m->content_type = memcpy(p + lt + ls, content_type, lc);
        return m;
}

/* What a queued message counts against BUS_QUEUE_BYTES_MAX: its body, topic, sender
 * and content type, and the struct. Counted in full on every endpoint it waits on,
 * though it is stored once: the bound must hold whatever the other queues do. */
static size_t message_cost(const BusMessage *m)
{
        return sizeof *m + m->len + strlen(m->topic) + strlen(m->sender) + strlen(m->content_type) +
               3;
}

static bool queue_full(const BusEndpoint *ep, size_t incoming)
{
        return ep->count == ep->cap ||
               (ep->count > 0 && ep->bytes + incoming > BUS_QUEUE_BYTES_MAX);
}

/* Queues m on ep (through subscription sub_id, 0 if direct), dropping (and
 * counting) the oldest messages while it is full: at its capacity in messages, or
 * past BUS_QUEUE_BYTES_MAX bytes with m. Tells the endpoint's owner when its queue
 * stops being empty: after that it is the owner's to drain, so one notification per
 * batch of messages, however many arrive before it drains. */
static void enqueue(BusEndpoint *ep, BusMessage *m, uint64_t sub_id)
{
        size_t cost = message_cost(m);
        unsigned slot;

        /* Full: the owner may make room first (by taking messages); what it leaves
         * full loses its oldest. */
        if (queue_full(ep, cost) && ep->full)
                ep->full(ep, ep->full_userdata);
        while (queue_full(ep, cost)) {
                ep->bytes -= message_cost(ep->ring[ep->head]);
                bus_message_unref(ep->ring[ep->head]);
                ep->ring[ep->head] = NULL;
                ep->head = (ep->head + 1) % ep->cap;
                ep->count--;
                ep->dropped++;
        }
        slot = (ep->head + ep->count) % ep->cap;
        ep->ring[slot] = bus_message_ref(m);
        ep->ring_sub[slot] = sub_id;
        ep->bytes += cost;
        if (ep->count++ == 0 && ep->notify)
                ep->notify(ep, ep->notify_userdata);
}

static int deliver(Bus *b, Sub *s, BusMessage *m)
{
        if (s->ep->last_publish == b->publish_seq)
                return 0; /* it has this one already, through another subscription */
        s->ep->last_publish = b->publish_seq;
        enqueue(s->ep, m, s->id);
        return 1;
}

static int check_body(const char *content_type, const void *data, size_t len)
{
        if (!content_type_is_valid(content_type) || (len > 0 && !data))
                return -EINVAL;
        if (len > BUS_MESSAGE_MAX)
                return -EMSGSIZE;
        return 0;
}

static int send_impl(Bus *b, BusEndpoint *sender, const char *to_app_id, uint64_t correlation,
                     const char *content_type, const void *data, size_t len, const BusSig *sig,
                     uint64_t *ret_id);

int bus_publish(Bus *b, BusEndpoint *sender, const char *topic, const char *content_type,
                const void *data, size_t len)
{
        return bus_publish_signed(b, sender, topic, content_type, data, len, NULL);
}

int bus_publish_signed(Bus *b, BusEndpoint *sender, const char *topic, const char *content_type,
                       const void *data, size_t len, const BusSig *sig)
{
        BusMessage *m;
        int r, n = 0;

        if (!bus_topic_is_valid(topic))
                return -EINVAL;
        r = check_body(content_type, data, len);
        if (r < 0)
                return r;
        m = message_new(b, topic, sender, content_type, data, len);
        if (!m)
                return -ENOMEM;
        if (sig) {
                m->has_sig = true;
                m->sig = *sig;
        }
        b->publish_seq++;
        for (Sub *s = b->buckets[hash_str(topic) & (b->n_buckets - 1)]; s; s = s->next)
                if (strcmp(s->pattern, topic) == 0)
                        n += deliver(b, s, m);
        for (Sub *s = b->patterns; s; s = s->next)
                if (topic_match(s->pattern, topic))
                        n += deliver(b, s, m);
        bus_message_unref(m);
        return n;
}

int bus_send(Bus *b, BusEndpoint *sender, const char *to_app_id, uint64_t correlation,
             const char *content_type, const void *data, size_t len, uint64_t *ret_id)
{
        return send_impl(b, sender, to_app_id, correlation, content_type, data, len, NULL, ret_id);
}

int bus_send_signed(Bus *b, BusEndpoint *sender, const char *to_app_id, const char *content_type,
                    const void *data, size_t len, const BusSig *sig, uint64_t *ret_id)
{
        return send_impl(b, sender, to_app_id, 0, content_type, data, len, sig, ret_id);
}

static int send_impl(Bus *b, BusEndpoint *sender, const char *to_app_id, uint64_t correlation,
                     const char *content_type, const void *data, size_t len, const BusSig *sig,
                     uint64_t *ret_id)
{
        BusEndpoint *to;
        BusMessage *m;
        int r;

        if (!to_app_id || !app_id_is_valid(to_app_id))
                return -EINVAL;
        r = check_body(content_type, data, len);
        if (r < 0)
                return r;
        to = bus_endpoint_find(b, to_app_id);
        if (!to)
                return -ENOENT;
        m = message_new(b, "", sender, content_type, data, len);
        if (!m)
                return -ENOMEM;
        m->direct = true;
        m->correlation = correlation;
        if (sig) {
                m->has_sig = true;
                m->sig = *sig;
        }
        enqueue(to, m, 0);
        if (ret_id)
                *ret_id = m->id;
        bus_message_unref(m);
        return 0;
}

int bus_request(Bus *b, BusEndpoint *sender, const char *to_app_id, const char *topic,
                const char *content_type, const void *data, size_t len, uint64_t *ret_id)
{
        BusEndpoint *to;
        BusMessage *m;
        int r;

        if (!to_app_id || !app_id_is_valid(to_app_id) || !bus_topic_is_valid(topic))
                return -EINVAL;
        r = check_body(content_type, data, len);
        if (r < 0)
                return r;
        to = bus_endpoint_find(b, to_app_id);
        if (!to)
                return -ENOENT;
        m = message_new(b, topic, sender, content_type, data, len);
        if (!m)
                return -ENOMEM;
        m->direct = true;
        m->request = true;
        enqueue(to, m, 0);
        if (ret_id)
                *ret_id = m->id;
        bus_message_unref(m);
        return 0;
}

BusMessage *bus_endpoint_pop(BusEndpoint *ep)
{
        return bus_endpoint_take(ep, NULL);
}

const BusMessage *bus_endpoint_peek(const BusEndpoint *ep, uint64_t *ret_subscription_id)
{
        if (ep->count == 0)
                return NULL;
        if (ret_subscription_id)
                *ret_subscription_id = ep->ring_sub[ep->head];
        return ep->ring[ep->head];
}

BusMessage *bus_endpoint_take(BusEndpoint *ep, uint64_t *ret_subscription_id)
{
        BusMessage *m;

        if (ep->count == 0)
                return NULL;
        m = ep->ring[ep->head];
        ep->ring[ep->head] = NULL;
        if (ret_subscription_id)
                *ret_subscription_id = ep->ring_sub[ep->head];
        ep->head = (ep->head + 1) % ep->cap;
        ep->count--;
        ep->bytes -= message_cost(m);
        ep->delivered++;
        return m;
}

void bus_endpoint_stats(const BusEndpoint *ep, BusStats *ret)
{
        *ret = (BusStats){
                .queued = ep->count,
                .queued_bytes = ep->bytes,
                .delivered = ep->delivered,
                .dropped = ep->dropped,
                .n_subs = ep->n_subs,
        };
}

const char *bus_endpoint_app(const BusEndpoint *ep)
{
        return ep->app_id;
}

void bus_endpoint_set_notify(BusEndpoint *ep, BusNotifyFn fn, void *userdata)
{
        ep->notify = fn;
        ep->notify_userdata = userdata;
}

void bus_endpoint_set_full(BusEndpoint *ep, BusNotifyFn fn, void *userdata)
{
        ep->full = fn;
        ep->full_userdata = userdata;
}

BusMessage *bus_message_ref(BusMessage *m)
{
        if (m)
                m->refs++;
        return m;
}

BusMessage *bus_message_unref(BusMessage *m)
{
        if (!m || --m->refs > 0)
                return NULL;
        free(m); /* the strings are in the same allocation */
        return NULL;
}
