/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The ipc object layer (docs/ipc.md), shared by the ipc call files (calls/ipc.c:
 * pipes, channels, shared memory, accept, pass, close, offer, list; calls/ipc-*.c of
 * the other kinds). Not a public API.
 *
 * An IpcObject is a named thing of one kind (IpcKindOps) in the broker's registry:
 * "<creator app id>.<name>" (topic syntax, at most IPC_NAME_MAX bytes), its creator's
 * offers (who else may open it, with which modes) and the kind's data. An IpcHandle
 * is one app's hold on an object: a number in the app's handle table (from 1, never
 * reused while the app runs), a mode set, and a BrokerHandle on the right it was
 * made under (ipc.<kind>:<name>), so that revoking the right closes it
 * (EVENT_IPC_CLOSED "revoked"). An object lives while a handle or a pending offer
 * holds it, or while it is persistent and not destroyed; it is named (found by
 * ipc_object_open()) until its creator destroys it.
 *
 * Quotas (BrokerOptions ipc_*; cellad.conf ipc.*, docs/config.md) are charged to
 * the creator's app id, not to a running app: what an app created keeps counting
 * after it exits for as long as the objects live.
 *
 * Everything runs on the broker's loop (broker.h): no locking.
 */

#include <stdbool.h>
#include <stdint.h>

#include "broker/broker-internal.h"

#define IPC_NAME_MAX   255u /* bytes of a full object name (proto "ipc") */
#define IPC_OFFERS_MAX 16u  /* offers one object carries */

/* The mode bits of proto IpcMode. */
#define IPC_MODE_READ  ((uint32_t)CELLA__V1__IPC_MODE__IPC_MODE_READ)
#define IPC_MODE_WRITE ((uint32_t)CELLA__V1__IPC_MODE__IPC_MODE_WRITE)
#define IPC_MODE_RW    (IPC_MODE_READ | IPC_MODE_WRITE)
/* One mode set as a bit of IpcKindOps.mode_sets: IPC_MODESET(IPC_MODE_READ). */
#define IPC_MODESET(m) (1u << (m))

typedef struct IpcObject IpcObject;
typedef struct IpcHandle IpcHandle;

typedef struct IpcKindOps {
        Cella__V1__IpcKind kind;
        const char *right_name; /* "ipc.sem" */
        /* The mode sets a handle (and an offer) of this kind may have, as
         * IPC_MODESET() bits: shm IPC_MODESET(READ) | IPC_MODESET(RW). */
        uint32_t mode_sets;
        /* A new fd for a new handle of modes on o (reopen, dup...): >= 0 or -errno.
         * NULL: the kind makes its handles' fds itself (pipes), and a handle of it
         * cannot be passed on (IPC_PASS: EINVAL). */
        int (*handle_fd)(IpcObject *o, uint32_t modes);
        /* h is closing (close, revoke, its app gone): wake/fail its waiters. The
         * handle is still in its tables. NULL: nothing to do. */
        void (*handle_closing)(IpcHandle *h);
        /* o is freed: free the kind's data (ipc_object_data()). NULL: nothing. */
        void (*destroy)(IpcObject *o);
        /* o's offers are being replaced by offers[0..n) (checked; IPC_OFFER): store
         * them (a persistent queue). Called by ipc_object_set_offers() once the new
         * copy is made and before it replaces the old one, so that a failure keeps
         * the old offers everywhere: 0, or -errno (-EIO) with *ret_why (static
         * English). NULL: the kind keeps no offers of its own (nothing persists). */
        int (*offers_changed)(IpcObject *o, Cella__V1__IpcOffer *const *offers, size_t n,
                              const char **ret_why);
} IpcKindOps;

/* Why a handle closed, for EVENT_IPC_CLOSED (proto IpcClosedEvent.reason). */
typedef enum IpcCloseReason {
        IPC_CLOSE_BY_APP,    /* IPC_CLOSE, or the app is gone: no event */
        IPC_CLOSE_REVOKED,   /* "revoked": the right the handle was made under */
        IPC_CLOSE_DESTROYED, /* "destroyed": the kind ended the object (a queue deleted) */
        IPC_CLOSE_PEER_GONE, /* "peer-gone": the other end's app exited (pipe, channel) */
} IpcCloseReason;

/*
 * True if name is a full object name the app creator_id may create: creator_id, a
 * dot, then 1+ topic segments (bus_topic_is_valid() for the whole), at most
 * IPC_NAME_MAX bytes. Otherwise false with *ret_error -EINVAL (bad syntax or length)
 * or -EPERM (outside creator_id's namespace) and *ret_why (static English).
 */
bool ipc_name_check(const char *creator_id, const char *name, int *ret_error, const char **ret_why);

/*
 * Checks n offers for an object of ops's kind (at most IPC_OFFERS_MAX; each exactly
 * one of app, a valid app id pattern, and topic, a valid topic pattern; modes one of
 * the kind's mode sets). 0 or -EINVAL with *ret_why (static English).
 */
int ipc_offers_check(const IpcKindOps *ops, Cella__V1__IpcOffer *const *offers, size_t n,
                     const char **ret_why);

/*
 * Creates object `name` of ops->kind for the caller of c (ipc_name_check() against
 * the caller's id; offers checked; the creator's objects_max quota; charge_bytes
 * against shm_bytes_max when ops->kind is SHM, kept charged until the object is
 * freed), with the kind's data (owned by the object from now on: ops->destroy frees
 * it, also when this fails after... no: on failure data stays the caller's).
 * Returns the object (no handle yet: make one with ipc_handle_new(), or free it with
 * ipc_object_release()) or NULL with *ret_error (-errno: EINVAL, EPERM, EEXIST,
 * EDQUOT, ENOMEM) and *ret_why (English; for EDQUOT it names the limit and the
 * figures, in a buffer valid until the next call into this layer). Sets c's audit
 * fields "name", "kind".
 */
IpcObject *ipc_object_create(BrokerCall *c, const IpcKindOps *ops, const char *name,
                             Cella__V1__IpcOffer *const *offers, size_t n_offers,
                             uint64_t charge_bytes, void *data, int *ret_error,
                             const char **ret_why);

/*
 * A persistent object brought back at kernel start (owner maybe not running): no
 * name check against a caller, no quota refusal (its charge is counted), persistent
 * (ipc_object_set_persistent()). NULL on ENOMEM or EEXIST (then data stays the
 * caller's).
 */
IpcObject *ipc_object_restore(Broker *b, const IpcKindOps *ops, const char *name,
                              const char *owner_id, Cella__V1__IpcOffer *const *offers,
                              size_t n_offers, void *data);

/*
 * Finds the named (not destroyed) object name of kind and checks the caller of c
 * may open it with modes: modes one of the kind's mode sets (EINVAL), and the caller
 * is its creator or an offer covers the caller with modes (EPERM "not offered").
 * The right ipc.<kind>:<name> was checked by the core (right_of). Returns the object
 * or NULL with *ret_error (ENOENT, EINVAL, EPERM) and *ret_why (static English).
 * Sets c's audit fields "name", "kind", "modes", "owner".
 */
IpcObject *ipc_object_open(BrokerCall *c, Cella__V1__IpcKind kind, const char *name, uint32_t modes,
                           int *ret_error, const char **ret_why);

/* Replaces o's offers (already checked with ipc_offers_check()), telling the kind
 * first (ops->offers_changed: a persistent queue stores them). 0, or -ENOMEM or the
 * kind's -errno with *ret_why (static English): the old offers kept, in memory and in
 * the kind's store. */
int ipc_object_set_offers(IpcObject *o, Cella__V1__IpcOffer *const *offers, size_t n,
                          const char **ret_why);

/* Removes o's name (no new opens, the name free for a new object) and frees it if
 * nothing holds it; handles stay until closed. */
void ipc_object_destroy(IpcObject *o);

/* Frees o if nothing holds it: no handle, no pending offer, and it is destroyed or
 * not persistent. For a kind's create that failed after ipc_object_create(). */
void ipc_object_release(IpcObject *o);

/* Persistent objects (queues) live without handles until destroyed. */
void ipc_object_set_persistent(IpcObject *o, bool persistent);

/* IpcHandleReply.size_bytes for o's handles (shm: its size; queue: the largest
 * message). */
void ipc_object_set_size(IpcObject *o, uint64_t size_bytes);

void *ipc_object_data(const IpcObject *o);
const char *ipc_object_name(const IpcObject *o);
const char *ipc_object_owner(const IpcObject *o);
const IpcKindOps *ipc_object_ops(const IpcObject *o);
Broker *ipc_object_broker(const IpcObject *o);
uint64_t ipc_object_size(const IpcObject *o);
bool ipc_object_destroyed(const IpcObject *o);

/* o's handles, in no order: ipc_object_handles(o), then ipc_handle_next_of(h) until
 * NULL. A walk that may close handles takes next before closing. */
IpcHandle *ipc_object_handles(const IpcObject *o);
IpcHandle *ipc_handle_next_of(const IpcHandle *h);

/* Charges delta bytes (may be negative) of queued data to the object's creator
 * (ipc.queued_bytes_max). 0 or -EDQUOT with *ret_why (names the limit and the
 * figures; valid until the next call into this layer). A negative delta never fails. */
int ipc_object_charge_queued(IpcObject *o, int64_t delta, const char **ret_why);

/*
 * A new handle of app on o with modes (app's handles_max quota: -EDQUOT), a
 * BrokerHandle on right (c->checked; NULL: none, never closed by a revoke), with
 * the next number of app's table. NULL with *ret_error (-EDQUOT, -ENOMEM) and
 * *ret_why.
 */
IpcHandle *ipc_handle_new(BrokerApp *app, IpcObject *o, uint32_t modes,
                          const CapabilityRight *right, int *ret_error, const char **ret_why);

/* Replies IpcHandleReply for h to c, with fd (>= 0, taken: the core sends and closes
 * it) or none (-1); sets c's audit field "handle"; frees c. */
void ipc_reply_handle(BrokerCall *c, IpcHandle *h, int fd);

/* Fills r (IpcHandleReply, initialised by the caller) for h; its strings are h's. */
void ipc_handle_describe(const IpcHandle *h, Cella__V1__IpcHandleReply *r);

/* The handle number id of app, of kind (UNSPECIFIED: any). NULL: no such handle
 * (ENOENT), also for a handle of another kind. */
IpcHandle *ipc_handle_get(BrokerApp *app, uint64_t id, Cella__V1__IpcKind kind);

/*
 * Closes h: ops->handle_closing(h), out of its app's table and the object's list,
 * its BrokerHandle removed; EVENT_IPC_CLOSED to its app for any reason but
 * IPC_CLOSE_BY_APP; then the object is freed if nothing holds it any more.
 */
void ipc_handle_close(IpcHandle *h, IpcCloseReason reason);

uint32_t ipc_handle_modes(const IpcHandle *h);
IpcObject *ipc_handle_object(const IpcHandle *h);
BrokerApp *ipc_handle_app(const IpcHandle *h);
uint64_t ipc_handle_id(const IpcHandle *h);
/* The kind's own per-handle pointer (NULL until set). */
void *ipc_handle_data(const IpcHandle *h);
void ipc_handle_set_data(IpcHandle *h, void *data);
/* pipe, channel: the app at the other end (IpcHandleReply.peer); copied. */
int ipc_handle_set_peer(IpcHandle *h, const char *peer_id);

/* The counts behind IpcUsage for app (its own id's charges and its handles). */
void ipc_usage(BrokerApp *app, Cella__V1__IpcUsage *ret);

/* Objects in b's registry (named or not) and pending offers, for tests and the
 * crash checks ("nothing leaked"). */
void ipc_registry_stats(Broker *b, unsigned *ret_objects, unsigned *ret_pending);
