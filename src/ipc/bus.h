/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The message bus (docs/design.md section 1, "bus"): topics with
 * publish/subscribe, direct messages to an app, request/reply correlation. The bus
 * only routes: the broker checks the bus.* rights before calling it.
 *
 * - A message is stored once, refcounted, however many subscribers get it.
 * - Exact-topic subscriptions are found through a hash table; pattern subscriptions
 *   ("notes.*", "clock.**": base/pattern.h's topic globs) are matched one by one.
 * - Each endpoint (one per app) has a queue bounded in messages and in bytes
 *   (BUS_QUEUE_BYTES_MAX). When it is full the oldest
 *   message is dropped and counted, so a slow subscriber never blocks a publisher
 *   or the kernel (the "bounded per-subscriber queues with a counted drop
 *   policy"). Drop-oldest: for the bus's state-like traffic (ticks, status) the
 *   newest message is the one worth keeping, as in MQTT's and ROS 2's "keep last".
 * - An endpoint gets one copy of a message even when several of its subscriptions
 *   match.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUS_TOPIC_MAX        255u          /* bytes of a topic or pattern */
#define BUS_CONTENT_TYPE_MAX 127u          /* bytes of a content type */
#define BUS_MESSAGE_MAX      (64u * 1024u) /* bytes of a body (docs/design.md section 6) */
#define BUS_QUEUE_DEFAULT    256u          /* messages an endpoint holds */
#define BUS_QUEUE_MAX        65536u
/*
 * Bytes of messages an endpoint holds (bodies, names, bookkeeping), whatever its
 * capacity in messages: the queue is memory of the kernel, which no app's cgroup
 * pays for, and BUS_QUEUE_DEFAULT messages of BUS_MESSAGE_MAX bytes would be 16 MiB
 * per subscriber filled by one publisher. 1 MiB holds 16 of the largest messages, or
 * the whole default queue of messages up to ~4 KiB (the bus's traffic is ticks and
 * status); a message larger than the room left drops the oldest ones, as a full
 * queue does, and a message is always queued on an empty queue.
 */
#define BUS_QUEUE_BYTES_MAX (1024u * 1024u)
#define BUS_SUBS_MAX        64u /* subscriptions per endpoint */

typedef struct Bus Bus;
typedef struct BusEndpoint BusEndpoint;

/* Told that ep's queue went from empty to non-empty, or (bus_endpoint_set_full())
 * that it is full and a message is about to be queued; from inside bus_publish(),
 * bus_send() or bus_request(). It must not add or remove endpoints or subscriptions
 * nor publish; it may note that ep has work, or take messages from ep. */
typedef void (*BusNotifyFn)(BusEndpoint *ep, void *userdata);

/* The kernel's signature of a message (proto/cella.proto BusSignature; made by
 * broker/calls/channel.c over src/wire/bussig.h's fields). The bus only carries it. */
typedef struct BusSig {
        int64_t timestamp_ns;  /* CLOCK_REALTIME at signing, ns */
        uint64_t counter;      /* per sender, increasing */
        unsigned char sig[64]; /* Ed25519ph */
} BusSig;

typedef struct BusMessage {
        unsigned refs;
        bool has_sig; /* sig is set: the sender asked the kernel to sign */
        BusSig sig;
        uint64_t id;          /* unique per bus, increasing */
        uint64_t correlation; /* request/reply: the request's id; 0 otherwise */
        bool direct;          /* sent to one app, not published */
        bool request;         /* from bus_request(): direct, with a topic; the sender waits
                                 for an answer naming id */
        char *topic;          /* for published messages and requests; "" for direct */
        char *sender;         /* the sender's app id */
        char *content_type;
        size_t len;
        unsigned char data[]; /* len bytes */
} BusMessage;

typedef struct BusStats {
        uint64_t queued;     /* messages waiting now */
        size_t queued_bytes; /* what they count against BUS_QUEUE_BYTES_MAX */
        uint64_t delivered;  /* taken by the endpoint so far */
        uint64_t dropped;    /* dropped because the queue was full */
        unsigned n_subs;
} BusStats;

int bus_new(Bus **ret);
/* Frees the bus; every endpoint must have been removed. Takes NULL; returns NULL. */
Bus *bus_free(Bus *b);

/*
 * Adds an endpoint for app id (one per app; -EEXIST otherwise) with a queue of
 * capacity messages (1..BUS_QUEUE_MAX; 0 = BUS_QUEUE_DEFAULT). Returns 0 and *ret,
 * -EINVAL, -EEXIST, -ENOMEM.
 */
int bus_endpoint_add(Bus *b, const char *app_id, unsigned capacity, BusEndpoint **ret);

/* Removes an endpoint, its subscriptions and its queued messages. Takes NULL. */
void bus_endpoint_remove(Bus *b, BusEndpoint *ep);

/* The endpoint of app id, or NULL. */
BusEndpoint *bus_endpoint_find(Bus *b, const char *app_id);

/*
 * Subscribes ep to pattern: an exact topic, or a pattern with '*' within a segment
 * or '**' segments (base/pattern.h). Returns 0 and *ret_id (for unsubscribing),
 * -EINVAL (bad pattern), -ENOSPC (BUS_SUBS_MAX reached), -ENOMEM.
 */
int bus_subscribe(Bus *b, BusEndpoint *ep, const char *pattern, uint64_t *ret_id);

/* Ends subscription id of ep. Returns 0 or -ENOENT. */
int bus_unsubscribe(Bus *b, BusEndpoint *ep, uint64_t id);

/*
 * Publishes to topic (concrete: bus_topic_is_valid) from sender.
 * content_type: at most BUS_CONTENT_TYPE_MAX bytes, may be "". Every endpoint with a
 * matching subscription gets it once (the sender too, if subscribed). Returns the
 * number of endpoints it was queued for (>= 0), or -EINVAL (bad topic, type), -EMSGSIZE
 * (len > BUS_MESSAGE_MAX), -ENOMEM.
 */
int bus_publish(Bus *b, BusEndpoint *sender, const char *topic, const char *content_type,
                const void *data, size_t len);

/* As bus_publish(), the message carrying sig (NULL: unsigned, as bus_publish()). */
int bus_publish_signed(Bus *b, BusEndpoint *sender, const char *topic, const char *content_type,
                       const void *data, size_t len, const BusSig *sig);

/*
 * Sends a direct message to the endpoint of app id. correlation: a request's message
 * id when this is a reply, else 0. Returns the new message's id (> 0) through
 * *ret_id if not NULL. Errors: -ENOENT (no such app on the bus), -EINVAL, -EMSGSIZE,
 * -ENOMEM.
 */
int bus_send(Bus *b, BusEndpoint *sender, const char *to_app_id, uint64_t correlation,
             const char *content_type, const void *data, size_t len, uint64_t *ret_id);

/* As bus_send() with correlation 0, the message carrying sig (NULL: unsigned). */
int bus_send_signed(Bus *b, BusEndpoint *sender, const char *to_app_id, const char *content_type,
                    const void *data, size_t len, const BusSig *sig, uint64_t *ret_id);

/*
 * Sends a request: a direct message to the endpoint of app id, carrying topic (a
 * method name, concrete topic syntax: bus_topic_is_valid) and marked request. The
 * bus does not track the answer: the caller keys it on *ret_id (> 0, unique per bus),
 * which the receiver sees as the message's id. Errors as bus_send(); -EINVAL also
 * for a bad topic.
 */
int bus_request(Bus *b, BusEndpoint *sender, const char *to_app_id, const char *topic,
                const char *content_type, const void *data, size_t len, uint64_t *ret_id);

/* The oldest queued message of ep, left in the queue (valid until it is taken or ep
 * changes), or NULL if none; with the id of the subscription it came through in
 * *ret_subscription_id if not NULL (as bus_endpoint_take()). */
const BusMessage *bus_endpoint_peek(const BusEndpoint *ep, uint64_t *ret_subscription_id);

/* Takes the oldest queued message of ep (caller releases it), or NULL if none. */
BusMessage *bus_endpoint_pop(BusEndpoint *ep);

/* As bus_endpoint_pop(); also gives the id of the subscription the message came
 * through (as bus_subscribe() returned it; 0 for direct messages and requests) in
 * *ret_subscription_id if not NULL. If several of ep's subscriptions match, the
 * one named is the first that matched (exact topics before patterns). */
BusMessage *bus_endpoint_take(BusEndpoint *ep, uint64_t *ret_subscription_id);

/*
 * Sets the function told when ep's queue goes from empty to non-empty (NULL: none).
 * One call per transition: the owner is expected to drain the queue (or remember
 * that it has work) before it is told again.
 */
void bus_endpoint_set_notify(BusEndpoint *ep, BusNotifyFn fn, void *userdata);

/*
 * Sets the function told when a message is about to be queued on ep and its queue is
 * full (NULL: none, the default). It may take messages (bus_endpoint_take()) to hand
 * them on, e.g. into the app's channel; if the queue is still full when it returns,
 * the oldest message is dropped and counted as always. So an owner that can keep up
 * loses nothing to a burst larger than the queue (a batch publish), and one that
 * cannot still never blocks the publisher.
 */
void bus_endpoint_set_full(BusEndpoint *ep, BusNotifyFn fn, void *userdata);

void bus_endpoint_stats(const BusEndpoint *ep, BusStats *ret);
const char *bus_endpoint_app(const BusEndpoint *ep);

BusMessage *bus_message_ref(BusMessage *m);
/* Drops a reference; frees on the last. Takes NULL; returns NULL. */
BusMessage *bus_message_unref(BusMessage *m);

/* True if topic is a valid concrete topic (what bus_publish accepts): at most
 * BUS_TOPIC_MAX bytes, dot-separated segments of [A-Za-z0-9_-] as base/pattern.h
 * defines them (segment and count bounds included), no globs. */
bool bus_topic_is_valid(const char *topic);
