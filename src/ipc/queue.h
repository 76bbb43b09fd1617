/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The message queue of an ipc queue object (docs/ipc.md, "Message queues"): pure
 * data structure, no I/O, no locking (the broker's loop is its one user).
 *
 * - Priorities 0..QUEUE_PRIORITY_MAX, higher first; FIFO within one priority. One
 *   singly linked list per priority plus a 32-bit map of the non-empty ones, so push,
 *   peek and pop are O(1) (the highest set bit of the map, __builtin_clz).
 * - Bounded in messages (depth_max) and in bytes of one message (message_bytes_max);
 *   the bytes of all messages are counted (bytes) for the creator's quota, which the
 *   caller charges (ipc_object_charge_queued()).
 * - Every message gets the queue's next sequence number, from 1, in push order; a
 *   queue brought back from its store keeps the numbers it had.
 * - A message is one allocation: header, sender id, data.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUEUE_PRIORITIES   32u
#define QUEUE_PRIORITY_MAX (QUEUE_PRIORITIES - 1u)
#define QUEUE_MESSAGE_MAX  65000u   /* bytes of one message (proto: message_bytes_max) */
#define QUEUE_DEPTH_LIMIT  1000000u /* the most ipc.queue_depth_max may be set to */
#define QUEUE_SENDER_MAX   255u     /* bytes of a sender's app id */

typedef struct QueueMsg {
        struct QueueMsg *next;
        uint64_t seq;       /* from 1; 0 until pushed (or as restored) */
        uint32_t priority;  /* 0..QUEUE_PRIORITY_MAX */
        uint32_t len;       /* bytes of data */
        bool charged;       /* its bytes are charged to the creator's quota */
        const char *sender; /* the sending app's id, inside this allocation */
        uint8_t data[];
} QueueMsg;

typedef struct Queue {
        QueueMsg *head[QUEUE_PRIORITIES], *tail[QUEUE_PRIORITIES];
        uint32_t busy;              /* bit p: priority p holds messages */
        uint32_t depth;             /* messages held */
        uint32_t depth_max;         /* 1..QUEUE_DEPTH_LIMIT */
        uint32_t message_bytes_max; /* 1..QUEUE_MESSAGE_MAX */
        uint64_t bytes;             /* sum of len over the messages held */
        uint64_t next_seq;          /* the number the next push gets, >= 1 */
} Queue;

/*
 * Initialises q, empty, for depth_max messages (1..QUEUE_DEPTH_LIMIT) of at most
 * message_bytes_max bytes each (1..QUEUE_MESSAGE_MAX). Returns 0 or -EINVAL.
 */
int queue_init(Queue *q, uint32_t depth_max, uint32_t message_bytes_max);

/* Frees every message q holds; q is then empty (its bounds and next_seq kept). */
void queue_clear(Queue *q);

/*
 * A new message (not in any queue) of priority (0..QUEUE_PRIORITY_MAX), from sender
 * (an app id, at most QUEUE_SENDER_MAX bytes; NULL: ""), with a copy of data[0..len)
 * (len <= QUEUE_MESSAGE_MAX). Free it with free() unless pushed. Returns NULL with
 * errno EINVAL (a bound broken) or ENOMEM.
 */
QueueMsg *queue_msg_new(uint32_t priority, const char *sender, const void *data, size_t len);

/* Whether n more messages could be pushed now: 0, or -EAGAIN (depth_max would be
 * passed). n == 0 is 0. Sizes are queue_msg_fits()'s. */
int queue_room(const Queue *q, size_t n);

/* True if a message of len bytes is within q's message_bytes_max. */
bool queue_msg_fits(const Queue *q, size_t len);

/*
 * Appends m at the tail of its priority. m->seq 0 gets q->next_seq (and next_seq
 * goes up by one); a non-zero m->seq (a restored message) is kept, and next_seq is
 * raised past it. The caller checked queue_room() and queue_msg_fits(): a push past
 * depth_max is still made (the store may bring back a queue whose bound was lowered).
 */
void queue_push(Queue *q, QueueMsg *m);

/* Puts m (popped from q) back at the head of its priority: popping k messages and
 * pushing them back front-first in reverse order restores q exactly. m->seq kept. */
void queue_push_front(Queue *q, QueueMsg *m);

/* The message a pop would take (highest priority, oldest in it), or NULL if empty. */
const QueueMsg *queue_peek(const Queue *q);

/* Moves every message of from (and its counts and next_seq) to to, which is
 * overwritten; from is left empty with its bounds. O(1). */
void queue_move(Queue *to, Queue *from);

/* Takes the message queue_peek() names out of q; the caller frees it (free()).
 * NULL if q is empty. */
QueueMsg *queue_pop(Queue *q);
