/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Inside the ipc object layer (calls/ipc-object.c) and its generic calls
 * (calls/ipc.c): the registry, the per-app state and the pending offers. The other
 * kinds' files use calls/ipc-internal.h only.
 */

#include "broker/calls/ipc-internal.h"

typedef struct IpcOwner IpcOwner;
typedef struct IpcPending IpcPending;

typedef struct IpcRegistry {
        Broker *broker;
        IpcObject *objects;
        unsigned n_objects;
        IpcOwner *owners;
        IpcPending *pending;
        unsigned n_pending;
        uint64_t next_token;
        char why[256]; /* the last quota refusal's message */
} IpcRegistry;

/* Per app (BROKER_SLOT_IPC). */
typedef struct IpcAppState {
        BrokerApp *app;
        IpcHandle *handles;
        unsigned n_handles;
        uint64_t next_id;
        unsigned n_pending_out; /* offers it made that wait (ipc.pending_max) */
} IpcAppState;

/* An EVENT_IPC_OFFERED that waits for the target's IPC_ACCEPT. */
struct IpcPending {
        IpcRegistry *reg;
        uint64_t token;
        BrokerApp *from, *to;
        IpcObject *o; /* held (ipc_object_hold) */
        uint32_t modes;
        int fd;             /* a pipe's other end, or -1: made at accept (handle_fd) */
        uv_timer_t *expiry; /* freed by its close callback */
        IpcPending *next, *prev;
};

IpcRegistry *ipc_registry_of(Broker *b);
IpcAppState *ipc_app_state(BrokerApp *app, bool create);
const char *ipc_kind_name(Cella__V1__IpcKind k);

/* Pending offers hold their object: it is not freed while one waits. */
void ipc_object_hold(IpcObject *o);
void ipc_object_unhold(IpcObject *o);

/* The app's handles, newest first: ipc_app_handles(st), ipc_handle_next_in_app(h). */
IpcHandle *ipc_app_handles(const IpcAppState *st);
IpcHandle *ipc_handle_next_in_app(const IpcHandle *h);

/*
 * Offers o with modes from `from` to `to` for timeout_ms (1..600000), with fd (taken;
 * -1: none), and sends `to` EVENT_IPC_OFFERED. The sender's ipc.pending_max quota:
 * -EDQUOT with *ret_why; -EAGAIN when the event cannot be queued for `to` (its out
 * queue is full or its channel closed: nothing is kept); -ENOMEM; on failure fd is
 * closed. 0 and *ret_token.
 */
int ipc_pending_new(BrokerApp *from, BrokerApp *to, IpcObject *o, uint32_t modes, int fd,
                    uint32_t timeout_ms, uint64_t *ret_token, const char **ret_why);
/* The offer token waiting for app, or NULL. */
IpcPending *ipc_pending_find(IpcRegistry *reg, BrokerApp *to, uint64_t token);
/* Unlinks p and frees it (its fd closed unless *ret_fd takes it; NULL: closed);
 * the object's hold is given back (it may be freed). */
void ipc_pending_end(IpcPending *p, int *ret_fd);
void ipc_pending_drop(IpcPending *p);
/* Drops every offer from or to app. */
void ipc_pending_drop_app(IpcRegistry *reg, BrokerApp *app);
