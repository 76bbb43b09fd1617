/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The persistent ipc queues (docs/ipc.md, "Message queues", "Persistence"): one
 * SQLite database, <state dir>/ipc-queues.db, holding every persistent queue (its
 * name, owner, bounds, offers, next sequence number) and its messages.
 *
 * - Opened with base/sqlite-util.h's sqlite_open() (0600, never through a symlink,
 *   root's file only), then switched to WAL with synchronous=NORMAL: a send or a
 *   receive of a batch is ONE transaction (one append to the WAL, no fsync); a
 *   committed batch survives a crash of cellad, the last ones may be lost in a power
 *   cut (SQLite's WAL + NORMAL guarantee). The broker's loop is the one user.
 * - The schema is versioned (PRAGMA user_version, QUEUE_STORE_VERSION): a file from a
 *   newer cella is refused (-EPROTONOSUPPORT), never rewritten.
 * - A file that is not a database, or fails PRAGMA quick_check, is refused as a
 *   whole at open with a message naming the file and SQLite's finding; a row whose
 *   values break a bound (a priority over 31, a message larger than its queue's
 *   message_bytes_max, a bound out of range, a wrong type) makes its queue refused
 *   at load with a message naming the queue and the row, and the other queues load.
 *   Nothing in the file is trusted beyond what these checks allow.
 */

#include <stddef.h>
#include <stdint.h>

#include "ipc/queue.h"

#define QUEUE_STORE_FILE     "ipc-queues.db"
#define QUEUE_STORE_VERSION  1
#define QUEUE_STORE_WHY_MAX  512u
#define QUEUE_STORE_NAME_MAX 255u /* bytes of a queue's name and of an owner id */

typedef struct QueueStore QueueStore;

/* One offer of a stored queue (cella.proto IpcOffer: exactly one of app, topic). */
typedef struct QueueStoreOffer {
        const char *app;   /* "" when topic is set */
        const char *topic; /* "" when app is set */
        uint32_t modes;    /* IpcMode bits, 1..3 */
} QueueStoreOffer;

/* A stored queue's description. */
typedef struct QueueStoreInfo {
        int64_t id; /* the store's key of the queue, > 0 */
        const char *name;
        const char *owner;
        uint32_t depth_max, message_bytes_max;
        const QueueStoreOffer *offers;
        size_t n_offers;
} QueueStoreInfo;

/*
 * Opens (creating if missing) the store at path and brings its schema to
 * QUEUE_STORE_VERSION. Returns 0 and *ret, or -errno with why (QUEUE_STORE_WHY_MAX
 * bytes) telling what is wrong with the file and what to do: -EIO (not a database,
 * corrupt: SQLite's message), -EPROTONOSUPPORT (a newer schema), -EBUSY (another
 * process holds the store: one kernel of a state directory serves its persistent
 * queues, the first to open it, until it exits), the errno of
 * sqlite_open() (-ELOOP a symlink, -EINVAL not a regular file, -EPERM not root's).
 */
int queue_store_open(const char *path, QueueStore **ret, char *why);

/* Closes s (NULL is fine). */
void queue_store_close(QueueStore *s);

/*
 * Records a new empty queue (info->id ignored). Returns 0 and *ret_id, -EEXIST (the
 * name is stored already) or -EIO.
 */
int queue_store_create(QueueStore *s, const QueueStoreInfo *info, int64_t *ret_id);

/*
 * Replaces the offers of queue id by offers[0..n) (IPC_OFFER on a persistent queue)
 * in one transaction: all or none. Returns 0, -ENOENT (no queue id) or -EIO.
 */
int queue_store_set_offers(QueueStore *s, int64_t id, const QueueStoreOffer *offers, size_t n);

/*
 * Forgets every queue owned by owner, with its offers and messages, in one
 * transaction (`cella remove`, `cella forget`: docs/cli.md). Returns the number of
 * queues forgotten or -EIO.
 */
int queue_store_forget_owner(QueueStore *s, const char *owner);

/*
 * queue_store_forget_owner() on the store of state_dir (QUEUE_STORE_FILE), for a
 * process that does not hold it: no file, 0; a file another kernel holds (cellad, a
 * cella run), -EBUSY: that kernel serves the queues and must drop them itself
 * (broker_ipc_queue_forget_owner()). Returns the number of queues forgotten or
 * -errno of queue_store_open() with why (QUEUE_STORE_WHY_MAX bytes).
 */
int queue_store_forget_owner_at(const char *state_dir, const char *owner, char *why);

/* Forgets queue id and its messages. Returns 0 or -EIO. */
int queue_store_drop(QueueStore *s, int64_t id);

/*
 * Appends msgs[0..n) (sequence numbers already given) to queue id and records
 * next_seq, in one transaction: all or none. Returns 0 or -EIO.
 */
int queue_store_put(QueueStore *s, int64_t id, QueueMsg *const *msgs, size_t n, uint64_t next_seq);

/* Deletes the messages seqs[0..n) of queue id in one transaction. Returns 0 or -EIO. */
int queue_store_take(QueueStore *s, int64_t id, const uint64_t *seqs, size_t n);

/*
 * Called once per stored queue by queue_store_load() with its description and q:
 * its messages (pushed in sequence order, seq and next_seq as stored, charged
 * false). The callee takes q's messages with queue_move() or leaves them, which
 * are then freed. Returns 0, or < 0 to stop the load.
 */
typedef int (*QueueStoreLoadFn)(const QueueStoreInfo *info, Queue *q, void *userdata);

/* Told of each queue refused at load: its name (maybe "?") and why. */
typedef void (*QueueStoreRefuseFn)(const char *name, const char *why, void *userdata);

/*
 * Loads every stored queue, calling fn for each valid one and refuse for each
 * refused (see the top of this file). Returns the number of queues handed to fn,
 * fn's error, or -EIO (why filled).
 */
int queue_store_load(QueueStore *s, QueueStoreLoadFn fn, QueueStoreRefuseFn refuse, void *userdata,
                     char *why);

/* SQLite's message for the last failure on s (never NULL). */
const char *queue_store_errmsg(QueueStore *s);
