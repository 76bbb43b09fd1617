/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Between the broker's core (broker.c: channel, checks, audit, replies) and its
 * call handlers (calls/<area>.c). Not a public API.
 *
 * A handler gets a BrokerCall whose right has been checked and rate limit taken.
 * It answers exactly once, now or later, with broker_reply() or broker_reply_error();
 * the core writes the audit record when the answer goes out. A handler that answers
 * later (perm.request, bus.request) keeps the BrokerCall; the core frees it after the
 * answer, or calls the handler's cancel hook if the app cancels or goes away first.
 */

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "wire/channel.h"
#include "wire/wire.h"
#include "cella.pb-c.h"
#include "policy/capability.h"
#include "policy/ratelimit.h"

typedef struct BrokerCall BrokerCall;

struct BrokerCall {
        BrokerApp *app;
        const WireOp *op;
        uint64_t request_id;
        ProtobufCMessage *request; /* decoded body, freed by the core */
        const char *right;         /* the right checked ("fs.read:documents"), or NULL */
        /* right as parsed where it entered (handle_request()), or NULL when the call
         * needs none or it did not parse: what a handle made by the call depends on. */
        const CapabilityRight *checked;
        bool cancelled; /* the app cancelled it: answer nothing */
        /* A handler that returns without answering MUST set this: the core calls it
         * (instead of answering) when the app cancels or detaches, after which the
         * handler must forget c, which the core then frees. */
        void (*cancel)(BrokerCall *c);
        void *handler_data;
        /* Audit detail a handler may add (object, path, topic...); owned by the core. */
        json_t *audit_fields;
        /* The fds the request carried (exactly op->request_fds of them, as the opcode
         * table says; ipc.shm_create's memfd). A handler that keeps one sets its slot
         * to -1; the core closes the others when it frees the call. */
        int fds[CHANNEL_FDS_MAX];
        unsigned n_fds;
        struct BrokerCall *next, *prev; /* in the app's list of pending calls */
};

/*
 * A call's handler (the dispatch table, broker.c): what the opcode table
 * (wire/wire.h: name, bodies, rate-limit class, the rights it may check) leaves to
 * the kernel.
 * right_of fills buf with the right this request needs ("bus.publish:" + topic) and
 * returns it, or NULL when the call needs no right (system.*, perm.*, app.info,
 * memory.stats, proc.list); it may return -errno through *ret_error for a request
 * whose fields are invalid (-EINVAL), which is answered without reaching the handler.
 * also_right_of (optional; called only when right_of gave a right) fills buf with a
 * second right the same request needs (fs.open for reading and writing: fs.read as
 * well as fs.write), or returns NULL. The core decides both before the handler runs
 * and uses up a one-time grant only when both are held (broker_app_take()).
 */
typedef struct BrokerCallDef {
        uint16_t opcode;
        const char *(*right_of)(const ProtobufCMessage *req, char *buf, size_t size,
                                int *ret_error);
        void (*handle)(BrokerCall *c);
        const char *(*also_right_of)(const ProtobufCMessage *req, char *buf, size_t size);
} BrokerCallDef;

/* The tables of the call files; each ends with an entry whose handle is NULL. */
extern const BrokerCallDef broker_calls_system[]; /* system.*, app.info, memory.stats */
extern const BrokerCallDef broker_calls_proc[];   /* proc.*  */
extern const BrokerCallDef broker_calls_app[];    /* app.launch, notify.post */
extern const BrokerCallDef broker_calls_perm[];   /* perm.* */
extern const BrokerCallDef broker_calls_fs[];     /* fs.* but fs.usage */
extern const BrokerCallDef broker_calls_usage[];  /* fs.usage (calls/usage.c) */
extern const BrokerCallDef broker_calls_timer[];  /* timer.* */
extern const BrokerCallDef broker_calls_bus[];    /* bus.* */
extern const BrokerCallDef broker_calls_net[];    /* net.connect (calls/net.c) */
/* keystore.* (calls/keystore.c) */
extern const BrokerCallDef broker_calls_keystore[];

/* channel.* (calls/channel.c) */
extern const BrokerCallDef broker_calls_channel[];
extern const BrokerCallDef broker_calls_ipc[]; /* ipc.* but sem, queue (calls/ipc.c) */

/* ipc semaphores and queues (calls/ipc-semq.c) */
extern const BrokerCallDef broker_calls_ipc_semq[];

/* The handler of opcode from the tables above, or NULL if this kernel implements no
 * such request. For tests that hold the tables against the opcode table. */
const BrokerCallDef *broker_call_def(uint16_t opcode);

/* Answers c with reply (packed by the core; caller keeps ownership of reply) and
 * n_fds fds (the core sends and then closes them). Frees c. */
void broker_reply(BrokerCall *c, const ProtobufCMessage *reply, int *fds, unsigned n_fds);

/* Answers c with an ErrorReply (error > 0 errno, message: one English sentence or
 * NULL). Frees c. */
void broker_reply_error(BrokerCall *c, int error, const char *message);

/*
 * Adds key: v to c's audit record (c->audit_fields, made on first use), taking v's
 * reference (NULL, jansson's answer to an allocation failure, is ignored). Under
 * memory pressure the field is dropped, never the record.
 */
void broker_audit_set(BrokerCall *c, const char *key, json_t *v);

/* Sends an event (ev's opcode from the wire table) to app, or queues it; dropped
 * and counted when the app's out queue is full. Returns 0 (sent or queued), or
 * -ENOBUFS (dropped: the queue is full), -ECONNRESET (the channel is closed),
 * -EINVAL (ev is not that opcode's event message), -EMSGSIZE (too large). */
int broker_app_event(BrokerApp *app, uint16_t opcode, const ProtobufCMessage *ev);

/* Accessors for handlers. */
const BrokerAppInfo *broker_app_info(const BrokerApp *app);
Broker *broker_app_broker(const BrokerApp *app);
const BrokerOptions *broker_options(const Broker *b);

/* True if app holds right (parsed, capability_right_parse(); NULL: false) now
 * (policy_decide() from the cache; for one-time or gesture rights this asks
 * grants.db, and consumes a one-time grant only if consume is true). A call that
 * needs more than one right decides them with broker_app_take() instead, so that a
 * refusal uses up no one-time grant. */
bool broker_app_holds(BrokerApp *app, const CapabilityRight *right, bool consume);

/*
 * Decides every one of the n rights a single call needs (rights[i].cap NULL: not a
 * right, refused as GRANTS_INVALID) and only then uses up the one-time grants that
 * cover them (docs/capabilities.md, "Decisions"): a call refused for any right uses
 * up no grant. One call uses a one-time grant once, whatever number of its rights the
 * grant covers. Returns 0 (all held; the one-time grants are gone), or -EACCES /
 * -EPERM with *ret_refused the index of the first right refused and *ret_why the
 * reason (static English), or another -errno (grants.db failed; *ret_refused set).
 * A refusal leaves every grant as it was, barring a grant that another process
 * deletes between the decision and its use.
 */
int broker_app_take(BrokerApp *app, const CapabilityRight *rights, size_t n, size_t *ret_refused,
                    const char **ret_why);

/* Adds ns of CPU time spent for app off the loop (a threadpool worker's
 * CLOCK_THREAD_CPUTIME_ID) to its counters: BrokerAppStats.worker_cpu_ns, and
 * `worker_cpu_ms` of its detach record. */
void broker_app_charge_cpu(BrokerApp *app, uint64_t ns);

/* The app's id (its manifest's). */
const char *broker_app_id(const BrokerApp *app);

/*
 * The grants cache, for perm.* and app.info. broker_app_grants(): the app's grants
 * as last loaded (*ret_n entries, sorted by right; valid until the next reload).
 * broker_app_requested(): the requested set recorded at install (NULL-terminated,
 * never NULL; empty if never installed) and *ret_signed.
 */
const Grant *broker_app_grants(const BrokerApp *app, size_t *ret_n);
char *const *broker_app_requested(const BrokerApp *app, bool *ret_signed);

/*
 * Decides right (parsed; NULL: not a right) for app as grants_check() would, from the
 * cache, without consuming a one-time grant and ignoring gestures
 * (policy_right_state()): 0 granted (*ret_one_time: only a one-time grant covers
 * it), -EACCES requested but not granted, -EPERM never (not requested,
 * signature-level and unsigned, or not a right: *ret_why says which, a static
 * English phrase). Outputs may be NULL.
 */
int broker_app_right_state(BrokerApp *app, const CapabilityRight *right, bool *ret_one_time,
                           const char **ret_why);

/* Reloads app's grants cache from grants.db (after a grant made by a call file).
 * Closes nothing: broker_grants_changed() is for losses. Returns 0 or -errno. */
int broker_app_reload_grants(BrokerApp *app);

/* Appends an audit record for app (event and fields as audit_append(); fields is
 * borrowed). Returns 0 or -errno; 0 when the broker has no audit log. */
int broker_app_audit(BrokerApp *app, const char *event, json_t *fields);

/*
 * Handles: broker-side objects an app holds (a timer, a bus subscription, a pending
 * request) that depend on a right. When the right is revoked the core calls
 * close(h) and unlinks it; a handler that ends a handle itself calls
 * broker_handle_remove(). right is the parsed right the handle depends on (the
 * call's c->checked), copied, or NULL for none; the revoke walk decides the copy
 * without parsing it again.
 */
typedef struct BrokerHandle {
        BrokerApp *app;
        CapabilityRight right; /* parsed; .cap NULL if it depends on no right */
        void (*close)(struct BrokerHandle *h);
        struct BrokerHandle *next, *prev;
} BrokerHandle;

void broker_handle_add(BrokerApp *app, BrokerHandle *h, const CapabilityRight *right,
                       void (*close)(BrokerHandle *h));
void broker_handle_remove(BrokerHandle *h);

/*
 * Per-app state owned by call files. broker_app_attach() calls broker_bus_attach()
 * (adds the app's bus endpoint and arranges delivery of its queued messages as
 * EVENT_BUS_MESSAGE); broker_app_detach() calls the detach hooks, which free what
 * the file keeps for the app. Each file keeps its per-app state in the slot below.
 */
int broker_bus_attach(BrokerApp *app);
void broker_bus_detach(BrokerApp *app);
void broker_timer_detach(BrokerApp *app);
void broker_perm_detach(BrokerApp *app);
void broker_channel_detach(BrokerApp *app);

/* Frames that can still be queued towards app before events are dropped
 * (BROKER_OUTQ_MAX minus what waits); 0 when the queue is at any of its bounds
 * (frames, bytes, fds) or the channel is closed. Ask again after each frame: one
 * frame may take all the byte room. The bus delivery leaves messages in the bus
 * queue instead of overflowing the out queue. */
unsigned broker_app_outq_room(const BrokerApp *app);

typedef enum BrokerSlot {
        BROKER_SLOT_BUS,
        BROKER_SLOT_TIMER,
        BROKER_SLOT_PERM,
        BROKER_SLOT_FS,
        BROKER_SLOT_USAGE,
        BROKER_SLOT_PROC,
        BROKER_SLOT_NET,
        BROKER_SLOT_CHANNEL,
        BROKER_SLOT_IPC, /* calls/ipc-object.c: the app's ipc handles */
        _BROKER_SLOT_MAX,
} BrokerSlot;

/* A pointer a call file keeps per app (NULL until set). */
void *broker_app_slot(const BrokerApp *app, BrokerSlot slot);
void broker_app_set_slot(BrokerApp *app, BrokerSlot slot, void *p);

/* The app's counters, for the call files that count (calls/net.c). */
BrokerAppStats *broker_app_stats_mut(BrokerApp *app);

/* calls/net.c's state of the whole broker (the relay, the resolution slots):
 * broker_net_new() at broker_new(), broker_net_free() at broker_free() after every
 * app has gone; broker_net_global() returns it (NULL if it could not be made). */
void *broker_net_new(void);
void broker_net_free(void *global);
struct NetGlobal *broker_net_global(Broker *b);

/* The ipc object layer's registry of the whole broker (calls/ipc-object.c):
 * broker_ipc_new() at broker_new(), broker_ipc_free() at broker_free() after every
 * app has gone (it frees what is left: persistent objects); broker_ipc_registry()
 * returns it (NULL if it could not be made). broker_ipc_detach() closes the app's
 * ipc handles and drops the offers from and to it, before the generic handle walk. */
void *broker_ipc_new(Broker *b);
void broker_ipc_free(void *registry);
struct IpcRegistry *broker_ipc_registry(Broker *b);
void broker_ipc_detach(BrokerApp *app);

/* Calls done(userdata, error, why, NULL) on the loop's next turn (broker_net_connect()'s
 * refusals: never before it returned). Returns 0 or -ENOMEM. */
int broker_net_defer_error(Broker *b, BrokerNetDone done, void *userdata, int error,
                           const char *why);

/*
 * calls/channel.c's state of the whole broker (pending channel opens, the kernel's
 * signing key): made on first use, freed by broker_channel_free() at broker_free()
 * after every app has gone. broker_channel_global() returns the slot it lives in.
 */
void **broker_channel_global(Broker *b);
void broker_channel_free(void *global);

/*
 * Signs a bus message of sender (its app id) with the kernel's key (docs/ipc.md,
 * "Signed bus messages"; src/wire/bussig.h says what is signed): kind
 * BUSSIG_KIND_TOPIC with the topic or BUSSIG_KIND_DIRECT with the target app id,
 * content_type, data (len bytes). Takes the next value of sender's counter and the
 * wall clock. A signature is costly work (an Ed25519ph over up to 63 KiB: ~0.1 ms),
 * so each takes a token of the sender's own signing bucket, at the costly calls'
 * rate and burst (BrokerOptions.rate_costly, burst_costly). Returns 0 and *ret, or
 * -EIO (the kernel has no usable key; *ret_why says why, static or kept by the
 * broker), -EAGAIN (the sender's signing rate; *ret_why names it), -ENOMEM.
 */
struct BusSig;
int broker_channel_sign(BrokerApp *sender, unsigned kind, const char *topic_or_target,
                        const char *content_type, const void *data, size_t len, struct BusSig *ret,
                        const char **ret_why);
/* calls/keystore.c's state of the whole broker (the opened keystore): a slot the
 * broker keeps (NULL until the first keystore call) and frees at broker_free() with
 * broker_keystore_free() (takes NULL). */
void **broker_keystore_slot(Broker *b);
void broker_keystore_free(void *global);
/* calls/ipc-semq.c's state of the whole broker (the persistent queues' store):
 * broker_ipc_queue_new() at broker_new() after broker_ipc_new(), then
 * broker_ipc_queue_restore() brings the stored queues back (0; -EBUSY: another
 * kernel holds the store, asked again every 5 s and restored when it lets go;
 * another -errno: logged); broker_ipc_queue_free() at broker_free() after
 * broker_ipc_free(). broker_ipc_queue_global() returns it (NULL if it could not be
 * made). */
void *broker_ipc_queue_new(Broker *b);
int broker_ipc_queue_restore(Broker *b);
void broker_ipc_queue_free(void *global);
void *broker_ipc_queue_global(Broker *b);
