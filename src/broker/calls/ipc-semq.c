/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ipc semaphores and message queues (proto/cella.proto "ipc", docs/ipc.md
 * "Semaphores", "Message queues"), on the ipc object layer (ipc-internal.h).
 *
 * A semaphore is one eventfd (EFD_SEMAPHORE|EFD_NONBLOCK|EFD_CLOEXEC) that cellad
 * makes and keeps; every handle gets a dup of it. Waiting and posting happen in the
 * apps (libcella's cella_sem_wait(): poll + preadv2 RWF_NOWAIT): the kernel is on no
 * hot path, and has no waiter to wake.
 *
 * A queue is held here (ipc/queue.h), bounded by its depth_max, its
 * message_bytes_max and its creator's ipc.queued_bytes_max (ipc_object_charge_queued()).
 * - Send is all or none: every check (room, sizes, quota, the store) is made before
 *   any message goes in.
 * - A receive that finds the queue empty and may wait is kept as a pending
 *   BrokerCall (cancel hook, timer) in the queue's FIFO of waiters; a send serves
 *   the waiters in the order they came before anything else can take the messages.
 * - Each READ handle has a readiness fd of its own (never shared with another
 *   handle, so one holder draining its fd hides nothing from another): a timerfd,
 *   which the kernel arms to expire at once while the queue holds messages (the fd
 *   is readable) and disarms when it empties (timerfd_settime() resets its count:
 *   not readable). timerfd_settime() never blocks, whatever an app did to the
 *   shared file (O_NONBLOCK cleared, its count read): the kernel does no read or
 *   write on a file an app holds. (An eventfd here, read and written by the kernel,
 *   would let an app that cleared O_NONBLOCK and filled or emptied its count
 *   block cellad's loop.) One fd in cellad per READ handle; a WRITE-only handle's
 *   timerfd is never armed and cellad keeps no copy of it.
 * - A persistent queue is written to <state>/ipc-queues.db (ipc/queue-store.h), one
 *   transaction per send or receive, before the reply; at broker start
 *   broker_ipc_queue_restore() brings every stored queue back (ipc_object_restore()).
 * - A handle closing (close, revoke, its app gone) fails its waiters with ECANCELED.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "broker/calls/ipc-internal.h"
#include "ipc/queue-store.h"
#include "ipc/queue.h"

#define QUEUE_BATCH_MAX   1024u   /* messages in one send or receive (proto) */
#define QUEUE_WAIT_MAX_MS 600000u /* proto: timeout_ms 1..600000 */
/* Room a reply keeps for its own fields (depth) and the frame: a receive packs
 * messages while the body stays within CHANNEL_BODY_MAX less this. */
#define QUEUE_REPLY_SLACK 16u

/* ---- semaphores ------------------------------------------------------------------- */

typedef struct Sem {
        int efd;
} Sem;

static int semobj_handle_fd(IpcObject *o, uint32_t modes)
{
        Sem *s = ipc_object_data(o);
        int fd = fcntl(s->efd, F_DUPFD_CLOEXEC, 3);

        return fd < 0 ? -errno : fd;
}

static void semobj_destroy(IpcObject *o)
{
        Sem *s = ipc_object_data(o);

        if (s) {
                safe_close(s->efd);
                free(s);
        }
}

static const IpcKindOps sem_ops = {
        .kind = CELLA__V1__IPC_KIND__IPC_KIND_SEM,
        .right_name = "ipc.sem",
        .mode_sets = IPC_MODESET(IPC_MODE_RW),
        .handle_fd = semobj_handle_fd,
        .destroy = semobj_destroy,
};

/* ---- queues: state ---------------------------------------------------------------- */

typedef struct QueueObj QueueObj;

/* One handle's side of a queue (ipc_handle_data()). */
typedef struct QHandle {
        IpcHandle *h;
        QueueObj *q;
        int tfd;        /* the kernel's copy of a READ handle's readiness timerfd, or -1 */
        bool signalled; /* armed */
        struct QHandle *next, *prev;
} QHandle;

/* A receive waiting for a message. */
typedef struct Waiter {
        BrokerCall *call;
        QueueObj *q;
        QHandle *qh;
        uint32_t max;
        uv_timer_t timer;
        struct Waiter *next, *prev;
} Waiter;

struct QueueObj {
        Queue q;
        IpcObject *o;
        Broker *b;
        QHandle *handles;
        Waiter *wait_head, *wait_tail;
        bool persistent;
        int64_t store_id;              /* its row in the store (persistent) */
        uint64_t charged;              /* bytes charged to the creator for messages held */
        QueueObj *all_next, *all_prev; /* QueueGlobal.all */
        bool linked;
};

/* The broker's queue state (broker_ipc_queue_global()). */
typedef struct QueueGlobal {
        Broker *b;
        QueueStore *store; /* NULL: not opened yet, or unusable (why) */
        bool tried;        /* a failure other than EBUSY: not asked again */
        uv_timer_t *retry; /* asks again while another kernel holds the store */
        QueueObj *all;     /* every queue object, for broker_ipc_queue_forget_owner() */
        char why[QUEUE_STORE_WHY_MAX];
} QueueGlobal;

#define STORE_RETRY_MS 5000u /* how often a kernel asks for a store another one holds */

static void waiter_free_cb(uv_handle_t *h)
{
        free(h->data);
}

/* Takes w out of its queue's FIFO and frees it; does not answer its call. */
static void waiter_unlink(Waiter *w)
{
        QueueObj *q = w->q;

        if (w->prev)
                w->prev->next = w->next;
        else
                q->wait_head = w->next;
        if (w->next)
                w->next->prev = w->prev;
        else
                q->wait_tail = w->prev;
        w->call->handler_data = NULL;
        uv_timer_stop(&w->timer);
        uv_close((uv_handle_t *)&w->timer, waiter_free_cb);
}

static void waiter_fail(Waiter *w, int error, const char *why)
{
        BrokerCall *c = w->call;

        waiter_unlink(w);
        broker_reply_error(c, error, why);
}

/* Makes every READ handle's readiness timerfd say whether messages wait: armed to
 * expire at once (readable), or disarmed (its count reset: not readable). */
static void ready_update(QueueObj *q)
{
        static const struct itimerspec now = {.it_value = {.tv_nsec = 1}}, off = {};
        bool want = q->q.depth > 0;

        for (QHandle *qh = q->handles; qh; qh = qh->next) {
                if (qh->tfd < 0 || qh->signalled == want)
                        continue;
                /* absolute 1 ns: long past, so it expires at once */
                (void)timerfd_settime(qh->tfd, want ? TFD_TIMER_ABSTIME : 0, want ? &now : &off,
                                      NULL);
                qh->signalled = want;
        }
}

/* ---- queues: taking messages ------------------------------------------------------ */

/* Bytes a varint of v takes. */
static size_t varint_len(uint64_t v)
{
        size_t n = 1;

        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

/* Bytes m takes in an IpcQueueReceiveReply (field 1 with key and length). */
static size_t packed_len(const QueueMsg *m)
{
        size_t sl = strlen(m->sender);
        size_t inner = (m->len ? 1 + varint_len(m->len) + m->len : 0) +
                       (m->priority ? 1 + varint_len(m->priority) : 0) +
                       (sl ? 1 + varint_len(sl) + sl : 0) + 1 + varint_len(m->seq);

        return 1 + varint_len(inner) + inner;
}

static void msgs_free(QueueMsg **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
}

/*
 * Takes up to max messages off q that fit one reply, removes them from the store
 * (persistent), uncharges them and answers c with them. On a store failure nothing
 * is taken and c gets EIO. Frees c.
 */
static void take_and_reply(QueueObj *q, BrokerCall *c, uint32_t max)
{
        Cella__V1__IpcQueueReceiveReply reply = CELLA__V1__IPC_QUEUE_RECEIVE_REPLY__INIT;
        QueueMsg *taken[QUEUE_BATCH_MAX];
        Cella__V1__IpcQueueMessage out[QUEUE_BATCH_MAX], *outp[QUEUE_BATCH_MAX];
        uint64_t seqs[QUEUE_BATCH_MAX];
        size_t n = 0, body = 1 + 10 + QUEUE_REPLY_SLACK;
        uint64_t charged = 0;
        const char *why = NULL;

        while (n < max && n < QUEUE_BATCH_MAX) {
                const QueueMsg *m = queue_peek(&q->q);

                if (!m || (n > 0 && body + packed_len(m) > CHANNEL_BODY_MAX))
                        break;
                body += packed_len(m);
                taken[n] = queue_pop(&q->q);
                seqs[n] = taken[n]->seq;
                n++;
        }
        if (q->persistent && n > 0 &&
            queue_store_take(((QueueGlobal *)broker_ipc_queue_global(q->b))->store, q->store_id,
                             seqs, n) < 0) {
                /* Back at the head of their priorities, in the order they were. */
                for (size_t i = n; i-- > 0;)
                        queue_push_front(&q->q, taken[i]);
                broker_reply_error(c, EIO, "the queue store failed; nothing was received");
                return;
        }
        for (size_t i = 0; i < n; i++) {
                cella__v1__ipc_queue_message__init(&out[i]);
                out[i].data.data = taken[i]->data;
                out[i].data.len = taken[i]->len;
                out[i].priority = taken[i]->priority;
                out[i].sender = (char *)taken[i]->sender;
                out[i].seq = taken[i]->seq;
                outp[i] = &out[i];
                if (taken[i]->charged)
                        charged += taken[i]->len;
        }
        if (charged > 0) {
                (void)ipc_object_charge_queued(q->o, -(int64_t)charged, &why);
                q->charged -= charged;
        }
        reply.n_messages = n;
        reply.messages = outp;
        reply.depth = q->q.depth;
        broker_reply(c, &reply.base, NULL, 0);
        msgs_free(taken, n);
        ready_update(q);
}

/* Serves waiters in order while messages wait. */
static void serve_waiters(QueueObj *q)
{
        while (q->wait_head && q->q.depth > 0) {
                Waiter *w = q->wait_head;
                BrokerCall *c = w->call;
                uint32_t max = w->max;

                waiter_unlink(w);
                take_and_reply(q, c, max);
        }
}

static void waiter_timeout(uv_timer_t *t)
{
        waiter_fail(t->data, ETIMEDOUT, "no message in time");
}

/* The app cancelled the receive or is going away: the core disposes of the call. */
static void waiter_cancel(BrokerCall *c)
{
        Waiter *w = c->handler_data;

        if (w)
                waiter_unlink(w);
}

/* ---- queues: the kind ------------------------------------------------------------- */

static QueueGlobal *queue_global(Broker *b)
{
        return broker_ipc_queue_global(b);
}

/* Puts q (its object made) on the broker's list of queues. */
static void queue_link(QueueObj *q)
{
        QueueGlobal *g = queue_global(q->b);

        if (!g)
                return;
        q->all_prev = NULL;
        q->all_next = g->all;
        if (g->all)
                g->all->all_prev = q;
        g->all = q;
        q->linked = true;
}

static void queue_unlink(QueueObj *q)
{
        QueueGlobal *g = queue_global(q->b);

        if (!q->linked || !g)
                return;
        if (q->all_prev)
                q->all_prev->all_next = q->all_next;
        else
                g->all = q->all_next;
        if (q->all_next)
                q->all_next->all_prev = q->all_prev;
        q->linked = false;
}

/* Gives h (a new handle on q's object) its readiness timerfd: the app gets it, the
 * kernel keeps a copy for a READ handle only. Returns the app's fd or -errno. */
static int queue_bind(QueueObj *q, IpcHandle *h)
{
        QHandle *qh;
        int tfd, fd;

        qh = calloc(1, sizeof(*qh));
        if (!qh)
                return -ENOMEM;
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (tfd < 0) {
                int r = -errno;

                free(qh);
                return r;
        }
        if (!(ipc_handle_modes(h) & IPC_MODE_READ)) {
                fd = tfd; /* never armed: the kernel keeps nothing */
                tfd = -1;
        } else {
                fd = fcntl(tfd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0) {
                        int r = -errno;

                        close(tfd);
                        free(qh);
                        return r;
                }
        }
        qh->h = h;
        qh->q = q;
        qh->tfd = tfd;
        qh->next = q->handles;
        if (q->handles)
                q->handles->prev = qh;
        q->handles = qh;
        ipc_handle_set_data(h, qh);
        ready_update(q);
        return fd;
}

/*
 * The fd of a handle the layer made on o (IPC_ACCEPT of a passed queue handle; our
 * own create and open too): the layer calls handle_fd right after ipc_handle_new()
 * of that handle (ipc-internal.h), so it is the one handle of o that has no QHandle
 * yet.
 */
static int queue_handle_fd(IpcObject *o, uint32_t modes)
{
        for (IpcHandle *h = ipc_object_handles(o); h; h = ipc_handle_next_of(h))
                if (!ipc_handle_data(h))
                        return queue_bind(ipc_object_data(o), h);
        return -EINVAL;
}

static void queue_handle_closing(IpcHandle *h)
{
        QHandle *qh = ipc_handle_data(h);
        QueueObj *q;

        if (!qh)
                return;
        q = qh->q;
        for (Waiter *w = q->wait_head, *next; w; w = next) {
                next = w->next;
                if (w->qh == qh)
                        waiter_fail(w, ECANCELED,
                                    "the handle was closed (closed or revoked) while waiting");
        }
        if (qh->prev)
                qh->prev->next = qh->next;
        else
                q->handles = qh->next;
        if (qh->next)
                qh->next->prev = qh->prev;
        safe_close(qh->tfd);
        ipc_handle_set_data(h, NULL);
        free(qh);
}

static void queue_destroy(IpcObject *o)
{
        QueueObj *q = ipc_object_data(o);
        const char *why = NULL;

        if (!q)
                return;
        queue_unlink(q);
        if (q->charged > 0)
                (void)ipc_object_charge_queued(o, -(int64_t)q->charged, &why);
        /* Destroyed by its creator: gone from the store too. Freed at shutdown: kept. */
        if (q->persistent && ipc_object_destroyed(o)) {
                QueueGlobal *g = queue_global(q->b);

                if (g && g->store && queue_store_drop(g->store, q->store_id) < 0)
                        log_error("ipc: cannot drop queue %s from the store: %s",
                                  ipc_object_name(o), queue_store_errmsg(g->store));
        }
        queue_clear(&q->q);
        free(q);
}

/* IPC_OFFER on a queue: a persistent one writes its new offers to the store first
 * (one transaction), so that a restart brings back the offers in force. */
static int queue_offers_changed(IpcObject *o, Cella__V1__IpcOffer *const *offers, size_t n,
                                const char **ret_why)
{
        QueueObj *q = ipc_object_data(o);
        QueueGlobal *g = queue_global(q->b);
        QueueStoreOffer so[IPC_OFFERS_MAX];
        int r;

        if (!q->persistent)
                return 0;
        if (!g || !g->store) {
                *ret_why = "the queue store is unavailable; the offers were not changed";
                return -EIO;
        }
        n = MIN(n, (size_t)IPC_OFFERS_MAX); /* checked by ipc_offers_check() */
        for (size_t i = 0; i < n; i++)
                so[i] = (QueueStoreOffer){.app = offers[i]->app,
                                          .topic = offers[i]->topic,
                                          .modes = offers[i]->modes};
        r = queue_store_set_offers(g->store, q->store_id, so, n);
        if (r < 0) {
                log_error("ipc: cannot store the offers of queue %s: %s", ipc_object_name(o),
                          queue_store_errmsg(g->store));
                *ret_why = "the queue store failed; the offers were not changed";
                return -EIO;
        }
        return 0;
}

static const IpcKindOps queue_ops = {
        .kind = CELLA__V1__IPC_KIND__IPC_KIND_QUEUE,
        .right_name = "ipc.queue",
        .mode_sets =
                IPC_MODESET(IPC_MODE_READ) | IPC_MODESET(IPC_MODE_WRITE) | IPC_MODESET(IPC_MODE_RW),
        .handle_fd = queue_handle_fd,
        .handle_closing = queue_handle_closing,
        .destroy = queue_destroy,
        .offers_changed = queue_offers_changed,
};

/* ---- the store -------------------------------------------------------------------- */

static int restore_all(Broker *b, QueueStore *s);

/*
 * The store, opened on first use; NULL with *ret_why if it cannot be. The open
 * that succeeds brings the stored queues back first (restore_all()), whenever it
 * comes: at broker start, or later once another kernel let go of the file. A store
 * held by another kernel (EBUSY) is asked again next time; any other failure is
 * final for this kernel (logged once).
 */
static QueueStore *store_get(Broker *b, const char **ret_why)
{
        QueueGlobal *g = queue_global(b);
        const BrokerOptions *o = broker_options(b);
        char path[PATH_MAX];
        int r;

        if (!g) {
                *ret_why = "out of memory";
                return NULL;
        }
        if (g->store || g->tried) {
                *ret_why = g->why;
                return g->store;
        }
        if (!o->state_dir) {
                snprintf(g->why, sizeof(g->why), "this kernel has no state directory");
                g->tried = true;
                *ret_why = g->why;
                return NULL;
        }
        snprintf(path, sizeof(path), "%s/" QUEUE_STORE_FILE, o->state_dir);
        r = queue_store_open(path, &g->store, g->why);
        if (r == -EBUSY)
                log_debug("ipc: %s", g->why); /* cellad or another run serves them */
        else if (r < 0) {
                log_error("ipc: persistent queues unavailable: %s", g->why);
                g->tried = true;
        }
        *ret_why = g->why;
        if (r < 0) {
                g->store = NULL;
                return NULL;
        }
        (void)restore_all(b, g->store); /* logs what it could not restore */
        return g->store;
}

/* ---- right_of --------------------------------------------------------------------- */

static const char *name_right(const char *kind, const char *name, char *buf, size_t size,
                              int *ret_error)
{
        int n;

        if (!name || !*name || strnlen(name, IPC_NAME_MAX + 1) > IPC_NAME_MAX) {
                *ret_error = -EINVAL;
                return NULL;
        }
        n = snprintf(buf, size, "%s:%s", kind, name);
        if (n < 0 || (size_t)n >= size || (size_t)n >= CAPABILITY_RIGHT_MAX) {
                *ret_error = -EINVAL;
                return NULL;
        }
        return buf;
}

static const char *sem_create_right(const ProtobufCMessage *req, char *buf, size_t size,
                                    int *ret_error)
{
        return name_right("ipc.sem", ((const Cella__V1__IpcSemCreateRequest *)req)->name, buf, size,
                          ret_error);
}

static const char *sem_open_right(const ProtobufCMessage *req, char *buf, size_t size,
                                  int *ret_error)
{
        return name_right("ipc.sem", ((const Cella__V1__IpcOpenRequest *)req)->name, buf, size,
                          ret_error);
}

static const char *queue_create_right(const ProtobufCMessage *req, char *buf, size_t size,
                                      int *ret_error)
{
        return name_right("ipc.queue", ((const Cella__V1__IpcQueueCreateRequest *)req)->name, buf,
                          size, ret_error);
}

static const char *queue_open_right(const ProtobufCMessage *req, char *buf, size_t size,
                                    int *ret_error)
{
        return name_right("ipc.queue", ((const Cella__V1__IpcOpenRequest *)req)->name, buf, size,
                          ret_error);
}

/* send and receive act on a handle, checked when it was made (and closed by a
 * revoke): no right of their own. */
static const char *no_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        return NULL;
}

/* ---- sem create, open ------------------------------------------------------------- */

/* Makes the creator's handle on o (modes) and answers c with it and fd. */
/* Makes the caller's handle on o (modes) and answers c with it and its fd. created:
 * o was made by this call, and goes again (from the store too) if the handle cannot
 * be made: a refused create leaves nothing behind. */
static void reply_new_handle(BrokerCall *c, IpcObject *o, uint32_t modes, bool created)
{
        const char *why = NULL;
        IpcHandle *h;
        int r, fd;

        h = ipc_handle_new(c->app, o, modes, c->checked, &r, &why);
        if (!h) {
                if (created)
                        ipc_object_destroy(o); /* nothing holds it: freed now */
                else
                        ipc_object_release(o);
                broker_reply_error(c, -r, why);
                return;
        }
        fd = ipc_object_ops(o)->handle_fd(o, modes);
        if (fd < 0) {
                if (created)
                        ipc_object_destroy(o); /* freed with its handle, next */
                ipc_handle_close(h, IPC_CLOSE_BY_APP);
                broker_reply_error(c, -fd, "cannot make the handle's fd");
                return;
        }
        ipc_reply_handle(c, h, fd);
}

static void sem_create_handle(BrokerCall *c)
{
        const Cella__V1__IpcSemCreateRequest *m = (const void *)c->request;
        const char *why = NULL;
        IpcObject *o;
        Sem *s;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        s->efd = eventfd(m->initial, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
        if (s->efd < 0) {
                r = errno;
                free(s);
                broker_reply_error(c, r, "cannot make the eventfd");
                return;
        }
        broker_audit_set(c, "initial", json_integer(m->initial));
        o = ipc_object_create(c, &sem_ops, m->name, m->offers, m->n_offers, 0, s, &r, &why);
        if (!o) {
                close(s->efd);
                free(s);
                broker_reply_error(c, -r, why);
                return;
        }
        reply_new_handle(c, o, IPC_MODE_RW, true);
}

static void open_handle(BrokerCall *c, const IpcKindOps *ops)
{
        const Cella__V1__IpcOpenRequest *m = (const void *)c->request;
        const char *why = NULL;
        IpcObject *o;
        int r;

        o = ipc_object_open(c, ops->kind, m->name, m->modes, &r, &why);
        if (!o) {
                broker_reply_error(c, -r, why);
                return;
        }
        reply_new_handle(c, o, m->modes, false);
}

static void sem_open_handle(BrokerCall *c)
{
        open_handle(c, &sem_ops);
}

/* ---- queue create, open ----------------------------------------------------------- */

static uint64_t depth_cap(Broker *b)
{
        uint64_t v = broker_options(b)->ipc_queue_depth_max;

        v = v ? v : BROKER_IPC_QUEUE_DEPTH_DEFAULT;
        return MIN(v, (uint64_t)QUEUE_DEPTH_LIMIT);
}

static void queue_create_handle(BrokerCall *c)
{
        const Cella__V1__IpcQueueCreateRequest *m = (const void *)c->request;
        Broker *b = broker_app_broker(c->app);
        uint64_t cap = depth_cap(b);
        QueueStore *store = NULL;
        const char *why = NULL;
        static char msg[160];
        IpcObject *o;
        QueueObj *q;
        int r;

        broker_audit_set(c, "depth_max", json_integer(m->depth_max));
        broker_audit_set(c, "persistent", json_boolean(m->persistent));
        if (m->depth_max < 1 || m->depth_max > cap) {
                snprintf(msg, sizeof(msg),
                         "depth_max %u is out of range: 1..%llu (ipc.queue_depth_max)",
                         m->depth_max, (unsigned long long)cap);
                broker_reply_error(c, m->depth_max > cap ? EDQUOT : EINVAL, msg);
                return;
        }
        if (m->message_bytes_max < 1 || m->message_bytes_max > QUEUE_MESSAGE_MAX) {
                broker_reply_error(c, EINVAL, "message_bytes_max must be 1..65000");
                return;
        }
        if (m->persistent) {
                store = store_get(b, &why);
                if (!store) {
                        snprintf(msg, sizeof(msg), "persistent queues are unavailable: %s", why);
                        broker_reply_error(c, EIO, msg);
                        return;
                }
        }
        q = calloc(1, sizeof(*q));
        if (!q) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        (void)queue_init(&q->q, m->depth_max, m->message_bytes_max);
        q->b = b;
        q->persistent = m->persistent;
        o = ipc_object_create(c, &queue_ops, m->name, m->offers, m->n_offers, 0, q, &r, &why);
        if (!o) {
                free(q);
                broker_reply_error(c, -r, why);
                return;
        }
        q->o = o;
        queue_link(q);
        ipc_object_set_size(o, m->message_bytes_max);
        if (m->persistent) {
                QueueStoreOffer offers[IPC_OFFERS_MAX];
                size_t n = MIN(m->n_offers, (size_t)IPC_OFFERS_MAX);

                for (size_t i = 0; i < n; i++)
                        offers[i] = (QueueStoreOffer){.app = m->offers[i]->app,
                                                      .topic = m->offers[i]->topic,
                                                      .modes = m->offers[i]->modes};
                r = queue_store_create(store,
                                       &(QueueStoreInfo){.name = m->name,
                                                         .owner = broker_app_id(c->app),
                                                         .depth_max = m->depth_max,
                                                         .message_bytes_max = m->message_bytes_max,
                                                         .offers = offers,
                                                         .n_offers = n},
                                       &q->store_id);
                if (r < 0) {
                        q->persistent = false;
                        ipc_object_destroy(o);
                        broker_reply_error(c, r == -EEXIST ? EEXIST : EIO,
                                           r == -EEXIST
                                                   ? "a persistent queue of that name is stored"
                                                   : "the queue store failed");
                        return;
                }
                ipc_object_set_persistent(o, true);
        }
        reply_new_handle(c, o, IPC_MODE_RW, true);
}

static void queue_open_handle(BrokerCall *c)
{
        open_handle(c, &queue_ops);
}

/* ---- send, receive ---------------------------------------------------------------- */

/* The caller's queue handle number id with mode; NULL after answering c. */
static QHandle *handle_of(BrokerCall *c, uint64_t id, uint32_t mode)
{
        IpcHandle *h = ipc_handle_get(c->app, id, CELLA__V1__IPC_KIND__IPC_KIND_QUEUE);
        QHandle *qh;

        broker_audit_set(c, "handle", json_integer((json_int_t)id));
        if (!h) {
                broker_reply_error(c, ENOENT, "no such queue handle");
                return NULL;
        }
        qh = ipc_handle_data(h);
        if (!qh) {
                broker_reply_error(c, ENOENT, "no such queue handle");
                return NULL;
        }
        if (!(ipc_handle_modes(h) & mode)) {
                broker_reply_error(c, EPERM,
                                   mode == IPC_MODE_WRITE ? "the handle cannot send (not WRITE)"
                                                          : "the handle cannot receive (not READ)");
                return NULL;
        }
        return qh;
}

static void send_handle(BrokerCall *c)
{
        const Cella__V1__IpcQueueSendRequest *m = (const void *)c->request;
        Cella__V1__IpcQueueSendReply reply = CELLA__V1__IPC_QUEUE_SEND_REPLY__INIT;
        QueueMsg *msgs[QUEUE_BATCH_MAX];
        const char *why = NULL, *sender;
        static char msg[200];
        uint64_t bytes = 0;
        QHandle *qh;
        QueueObj *q;
        size_t n = m->n_messages;
        int r;

        qh = handle_of(c, m->handle, IPC_MODE_WRITE);
        if (!qh)
                return;
        q = qh->q;
        broker_audit_set(c, "name", json_string(ipc_object_name(q->o)));
        broker_audit_set(c, "messages", json_integer((json_int_t)n));
        if (n < 1 || n > QUEUE_BATCH_MAX) {
                broker_reply_error(c, EINVAL, "a send carries 1..1024 messages");
                return;
        }
        for (size_t i = 0; i < n; i++) {
                if (m->messages[i]->priority > QUEUE_PRIORITY_MAX) {
                        snprintf(msg, sizeof(msg), "message %zu: priority %u is over 31", i,
                                 m->messages[i]->priority);
                        broker_reply_error(c, EINVAL, msg);
                        return;
                }
                if (!queue_msg_fits(&q->q, m->messages[i]->data.len)) {
                        snprintf(msg, sizeof(msg),
                                 "message %zu: %zu bytes, over the queue's message_bytes_max %u", i,
                                 m->messages[i]->data.len, q->q.message_bytes_max);
                        broker_reply_error(c, EMSGSIZE, msg);
                        return;
                }
                bytes += m->messages[i]->data.len;
        }
        if (queue_room(&q->q, n) < 0) {
                snprintf(msg, sizeof(msg),
                         "the queue is full: %u of depth_max %u, %zu more do not fit; nothing "
                         "was sent",
                         q->q.depth, q->q.depth_max, n);
                broker_reply_error(c, EAGAIN, msg);
                return;
        }
        r = ipc_object_charge_queued(q->o, (int64_t)bytes, &why);
        if (r < 0) {
                broker_reply_error(c, -r, why);
                return;
        }
        sender = broker_app_id(c->app);
        for (size_t i = 0; i < n; i++) {
                msgs[i] = queue_msg_new(m->messages[i]->priority, sender, m->messages[i]->data.data,
                                        m->messages[i]->data.len);
                if (!msgs[i]) {
                        msgs_free(msgs, i);
                        (void)ipc_object_charge_queued(q->o, -(int64_t)bytes, &why);
                        broker_reply_error(c, ENOMEM, NULL);
                        return;
                }
                msgs[i]->seq = q->q.next_seq + i;
                msgs[i]->charged = true;
        }
        if (q->persistent) {
                QueueGlobal *g = queue_global(q->b);

                r = g && g->store
                            ? queue_store_put(g->store, q->store_id, msgs, n, q->q.next_seq + n)
                            : -EIO;
                if (r < 0) {
                        msgs_free(msgs, n);
                        (void)ipc_object_charge_queued(q->o, -(int64_t)bytes, &why);
                        broker_reply_error(c, EIO, "the queue store failed; nothing was sent");
                        return;
                }
        }
        for (size_t i = 0; i < n; i++)
                queue_push(&q->q, msgs[i]);
        q->charged += bytes;
        serve_waiters(q);
        ready_update(q);
        reply.depth = q->q.depth;
        broker_reply(c, &reply.base, NULL, 0);
}

static void receive_handle(BrokerCall *c)
{
        const Cella__V1__IpcQueueReceiveRequest *m = (const void *)c->request;
        const BrokerOptions *o = broker_options(broker_app_broker(c->app));
        uint32_t max = m->max_messages ? m->max_messages : 1;
        QHandle *qh;
        QueueObj *q;
        Waiter *w;

        qh = handle_of(c, m->handle, IPC_MODE_READ);
        if (!qh)
                return;
        q = qh->q;
        if (max > QUEUE_BATCH_MAX || m->timeout_ms > QUEUE_WAIT_MAX_MS) {
                broker_reply_error(c, EINVAL, "max_messages 0..1024, timeout_ms 0..600000");
                return;
        }
        if (q->q.depth > 0) { /* waiters exist only while the queue is empty */
                take_and_reply(q, c, max);
                return;
        }
        if (m->timeout_ms == 0) {
                broker_reply_error(c, EAGAIN, "the queue is empty");
                return;
        }
        w = calloc(1, sizeof(*w));
        if (!w || uv_timer_init(o->loop, &w->timer) < 0) {
                free(w);
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        w->timer.data = w;
        w->call = c;
        w->q = q;
        w->qh = qh;
        w->max = max;
        w->prev = q->wait_tail;
        if (q->wait_tail)
                q->wait_tail->next = w;
        else
                q->wait_head = w;
        q->wait_tail = w;
        uv_timer_start(&w->timer, waiter_timeout, m->timeout_ms, 0);
        c->handler_data = w;
        c->cancel = waiter_cancel;
        /* answered later: a send, the timeout, the handle closing */
}

/* ---- broker start and stop -------------------------------------------------------- */

void *broker_ipc_queue_new(Broker *b)
{
        QueueGlobal *g = calloc(1, sizeof(QueueGlobal));

        if (g)
                g->b = b;
        return g;
}

static void retry_free_cb(uv_handle_t *h)
{
        free(h);
}

void broker_ipc_queue_free(void *global)
{
        QueueGlobal *g = global;

        if (!g)
                return;
        if (g->retry)
                uv_close((uv_handle_t *)g->retry, retry_free_cb);
        queue_store_close(g->store);
        free(g);
}

int broker_ipc_queue_forget_owner(Broker *b, const char *owner)
{
        QueueGlobal *g = queue_global(b);
        QueueObj *q, *next;
        int n = 0, r;

        if (!g || !owner)
                return 0;
        for (q = g->all; q; q = next) {
                IpcObject *o = q->o;
                IpcHandle *h, *hn;

                next = q->all_next;
                if (strcmp(ipc_object_owner(o), owner) != 0 || ipc_object_destroyed(o))
                        continue;
                if (q->persistent)
                        n++;
                /* Its name goes first; the object (and its row: queue_destroy()) when
                 * its last holder lets go, which may be at once (then h is NULL). */
                h = ipc_object_handles(o);
                ipc_object_set_persistent(o, false);
                ipc_object_destroy(o);
                /* Its holders learn it (EVENT_IPC_CLOSED "destroyed"); its waiters fail. */
                for (; h; h = hn) {
                        hn = ipc_handle_next_of(h);
                        ipc_handle_close(h, IPC_CLOSE_DESTROYED);
                }
        }
        /* Rows of the owner that are no live object (refused at load). */
        if (g->store) {
                r = queue_store_forget_owner(g->store, owner);
                if (r < 0) {
                        log_error("ipc: cannot forget the queues of %s in the store: %s", owner,
                                  queue_store_errmsg(g->store));
                        return r;
                }
        }
        if (n > 0)
                log_info("ipc: forgot %d persistent queue(s) of %s", n, owner);
        return n;
}

static void restore_refused(const char *name, const char *why, void *userdata)
{
        log_error("ipc: persistent queue %s not restored: %s", name, why);
}

static int restore_one(const QueueStoreInfo *info, Queue *stored, void *userdata)
{
        Broker *b = userdata;
        Cella__V1__IpcOffer ov[IPC_OFFERS_MAX], *op[IPC_OFFERS_MAX];
        size_t n = MIN(info->n_offers, (size_t)IPC_OFFERS_MAX);
        const char *why = NULL;
        IpcObject *o;
        QueueObj *q;

        for (size_t i = 0; i < n; i++) {
                cella__v1__ipc_offer__init(&ov[i]);
                ov[i].app = (char *)info->offers[i].app;
                ov[i].topic = (char *)info->offers[i].topic;
                ov[i].modes = info->offers[i].modes;
                op[i] = &ov[i];
        }
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        queue_move(&q->q, stored);
        q->b = b;
        q->persistent = true;
        q->store_id = info->id;
        o = ipc_object_restore(b, &queue_ops, info->name, info->owner, op, n, q);
        if (!o) {
                log_error("ipc: persistent queue %s not restored: its name is taken or out of "
                          "memory",
                          info->name);
                queue_clear(&q->q);
                free(q);
                return 0;
        }
        q->o = o;
        queue_link(q);
        ipc_object_set_size(o, info->message_bytes_max);
        /* Charged to the owner even over a lowered quota: nothing stored is lost. */
        if (q->q.bytes > 0 && ipc_object_charge_queued(o, (int64_t)q->q.bytes, &why) < 0)
                log_warning("ipc: persistent queue %s holds %llu bytes over its owner's quota: %s",
                            info->name, (unsigned long long)q->q.bytes, why);
        else {
                q->charged = q->q.bytes;
                for (unsigned p = 0; p < QUEUE_PRIORITIES; p++)
                        for (QueueMsg *msg = q->q.head[p]; msg; msg = msg->next)
                                msg->charged = true;
        }
        return 0;
}

/* Brings every queue stored in s back. Returns 0 or the load's -errno (logged). */
static int restore_all(Broker *b, QueueStore *s)
{
        char why[QUEUE_STORE_WHY_MAX];
        int r;

        r = queue_store_load(s, restore_one, restore_refused, b, why);
        if (r < 0) {
                log_error("ipc: persistent queues not restored: %s", why);
                return r;
        }
        if (r > 0)
                log_info("ipc: restored %d persistent queue(s)", r);
        return 0;
}

static void store_retry(uv_timer_t *t)
{
        QueueGlobal *g = t->data;
        const char *why = NULL;

        if (store_get(g->b, &why) || g->tried)
                uv_timer_stop(t);
}

int broker_ipc_queue_restore(Broker *b)
{
        QueueGlobal *g = queue_global(b);
        const char *why = NULL;
        char path[PATH_MAX];

        if (!g || !broker_options(b)->state_dir)
                return 0;
        /* Nothing stored yet: no file made until a persistent queue is created. */
        snprintf(path, sizeof(path), "%s/" QUEUE_STORE_FILE, broker_options(b)->state_dir);
        if (access(path, F_OK) < 0)
                return 0;
        if (store_get(b, &why))
                return 0; /* opened and restored */
        if (g->tried)
                return -EIO; /* logged by store_get() */
        /* Another kernel holds it: ask again until it lets go (a cella run that ran
         * while cellad was down, say), so that its queues come back here then. */
        g->retry = malloc(sizeof(*g->retry));
        if (!g->retry || uv_timer_init(broker_options(b)->loop, g->retry) < 0) {
                free(g->retry);
                g->retry = NULL;
                return -ENOMEM;
        }
        g->retry->data = g;
        uv_timer_start(g->retry, store_retry, STORE_RETRY_MS, STORE_RETRY_MS);
        uv_unref((uv_handle_t *)g->retry); /* keeps no kernel's loop alive at its end */
        return -EBUSY;
}

const BrokerCallDef broker_calls_ipc_semq[] = {
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_SEM_CREATE,
                .right_of = sem_create_right,
                .handle = sem_create_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_SEM_OPEN,
                .right_of = sem_open_right,
                .handle = sem_open_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_QUEUE_CREATE,
                .right_of = queue_create_right,
                .handle = queue_create_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_QUEUE_OPEN,
                .right_of = queue_open_right,
                .handle = queue_open_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_QUEUE_SEND,
                .right_of = no_right,
                .handle = send_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_QUEUE_RECEIVE,
                .right_of = no_right,
                .handle = receive_handle,
        },
        {0},
};
