/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ipc object layer (calls/ipc-internal.h, docs/ipc.md): the broker's registry of
 * named objects, their offers, the apps' handle tables, the quotas, and the pending
 * offers (EVENT_IPC_OFFERED tokens waiting for IPC_ACCEPT).
 *
 * Bookkeeping:
 *   IpcRegistry  one per Broker (broker_ipc_new()): every object, every pending
 *                offer, and one IpcOwner per app id that created objects still alive.
 *   IpcOwner     the charges of one creator id: objects, shm bytes, queued bytes.
 *                Kept by id, not by running app, so an app that exits and comes back
 *                finds its live objects still counted.
 *   IpcAppState  per running app (BROKER_SLOT_IPC): its handles, the next number,
 *                and how many offers it has pending towards others.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "broker/calls/ipc-internal.h"
#include "broker/calls/ipc-pending.h"
#include "ipc/bus.h"

typedef struct IpcOwner {
        char *id;
        unsigned objects;
        uint64_t shm_bytes;
        uint64_t queued_bytes;
        struct IpcOwner *next;
} IpcOwner;

typedef struct IpcOfferCopy {
        char *app;   /* app id pattern, or NULL */
        char *topic; /* topic pattern, or NULL */
        uint32_t modes;
} IpcOfferCopy;

struct IpcObject {
        IpcRegistry *reg;
        const IpcKindOps *ops;
        char *name;
        IpcOwner *owner; /* charged for it */
        IpcOfferCopy *offers;
        size_t n_offers;
        uint64_t charge_bytes; /* shm bytes charged to owner */
        uint64_t queued_bytes; /* queued bytes charged to owner */
        uint64_t size_bytes;
        void *data;
        IpcHandle *handles;
        unsigned n_handles;
        unsigned n_pending; /* pending offers holding it */
        bool destroyed;     /* no name any more */
        bool persistent;
        IpcObject *next, *prev; /* in reg->objects */
};

struct IpcHandle {
        BrokerHandle bh; /* on the right it was made under */
        IpcAppState *st;
        IpcObject *o;
        uint64_t id;
        uint32_t modes;
        char *peer;
        void *data;
        IpcHandle *next, *prev;   /* in st->handles */
        IpcHandle *onext, *oprev; /* in o->handles */
};

/* ---- registry ----------------------------------------------------------------------- */

IpcRegistry *ipc_registry_of(Broker *b)
{
        return broker_ipc_registry(b);
}

void *broker_ipc_new(Broker *b)
{
        IpcRegistry *reg = calloc(1, sizeof *reg);

        if (reg)
                reg->broker = b;
        return reg;
}

static void object_free(IpcObject *o);

void broker_ipc_free(void *p)
{
        IpcRegistry *reg = p;

        if (!reg)
                return;
        /* Every app has detached: what is left is persistent or held by nothing. */
        while (reg->pending)
                ipc_pending_drop(reg->pending);
        while (reg->objects) {
                IpcObject *o = reg->objects;

                while (o->handles)
                        ipc_handle_close(o->handles, IPC_CLOSE_BY_APP);
                if (reg->objects == o)
                        object_free(o);
        }
        free(reg);
}

static const char *quota_why(IpcRegistry *reg, const char *key, uint64_t have, uint64_t want,
                             uint64_t max, const char *unit)
{
        snprintf(reg->why, sizeof reg->why, "over %s: %llu %s in use, %llu more asked, limit %llu",
                 key, (unsigned long long)have, unit, (unsigned long long)want,
                 (unsigned long long)max);
        return reg->why;
}

static IpcOwner *owner_get(IpcRegistry *reg, const char *id, bool create)
{
        IpcOwner *w;

        for (w = reg->owners; w; w = w->next)
                if (strcmp(w->id, id) == 0)
                        return w;
        if (!create)
                return NULL;
        w = calloc(1, sizeof *w);
        if (!w)
                return NULL;
        w->id = strdup(id);
        if (!w->id) {
                free(w);
                return NULL;
        }
        w->next = reg->owners;
        reg->owners = w;
        return w;
}

static void owner_put(IpcRegistry *reg, IpcOwner *w)
{
        if (w->objects > 0 || w->shm_bytes > 0 || w->queued_bytes > 0)
                return;
        for (IpcOwner **p = &reg->owners; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        break;
                }
        free(w->id);
        free(w);
}

IpcAppState *ipc_app_state(BrokerApp *app, bool create)
{
        IpcAppState *st = broker_app_slot(app, BROKER_SLOT_IPC);

        if (st || !create)
                return st;
        st = calloc(1, sizeof *st);
        if (!st)
                return NULL;
        st->app = app;
        st->next_id = 1;
        broker_app_set_slot(app, BROKER_SLOT_IPC, st);
        return st;
}

/* ---- names and offers --------------------------------------------------------------- */

bool ipc_name_check(const char *creator_id, const char *name, int *ret_error, const char **ret_why)
{
        size_t n = strlen(creator_id);

        if (strnlen(name, IPC_NAME_MAX + 1) > IPC_NAME_MAX) {
                *ret_error = -EINVAL;
                *ret_why = "the name is longer than 255 bytes";
                return false;
        }
        if (!bus_topic_is_valid(name)) {
                *ret_error = -EINVAL;
                *ret_why = "the name is not dot-separated segments of [A-Za-z0-9_-]";
                return false;
        }
        if (strncmp(name, creator_id, n) != 0 || name[n] != '.' || name[n + 1] == '\0') {
                *ret_error = -EPERM;
                *ret_why = "an app may only create names that start with its own id and a dot";
                return false;
        }
        return true;
}

static bool modes_fit(const IpcKindOps *ops, uint32_t modes)
{
        return modes <= IPC_MODE_RW && (ops->mode_sets & IPC_MODESET(modes));
}

int ipc_offers_check(const IpcKindOps *ops, Cella__V1__IpcOffer *const *offers, size_t n,
                     const char **ret_why)
{
        if (n > IPC_OFFERS_MAX) {
                *ret_why = "more than 16 offers";
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
                const Cella__V1__IpcOffer *f = offers[i];
                bool has_app = f->app && f->app[0], has_topic = f->topic && f->topic[0];

                if (has_app == has_topic) {
                        *ret_why =
                                "an offer names exactly one of an app pattern and a topic pattern";
                        return -EINVAL;
                }
                if (has_app && !capability_scope_match(CAPABILITY_SCOPE_APP_ID, f->app, f->app)) {
                        *ret_why = "an offer's app pattern is not an app id pattern";
                        return -EINVAL;
                }
                if (has_topic &&
                    (strnlen(f->topic, BUS_TOPIC_MAX + 1) > BUS_TOPIC_MAX ||
                     !capability_scope_match(CAPABILITY_SCOPE_TOPIC, f->topic, f->topic))) {
                        *ret_why = "an offer's topic pattern is not a bus topic pattern";
                        return -EINVAL;
                }
                if (!modes_fit(ops, f->modes)) {
                        *ret_why = "an offer's modes are not a mode set of this kind";
                        return -EINVAL;
                }
        }
        return 0;
}

static void offers_free(IpcOfferCopy *offers, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(offers[i].app);
                free(offers[i].topic);
        }
        free(offers);
}

static int offers_copy(Cella__V1__IpcOffer *const *offers, size_t n, IpcOfferCopy **ret)
{
        IpcOfferCopy *c;

        *ret = NULL;
        if (n == 0)
                return 0;
        c = calloc(n, sizeof *c);
        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const Cella__V1__IpcOffer *f = offers[i];

                c[i].modes = f->modes;
                if (f->app && f->app[0] && !(c[i].app = strdup(f->app)))
                        goto fail;
                if (f->topic && f->topic[0] && !(c[i].topic = strdup(f->topic)))
                        goto fail;
        }
        *ret = c;
        return 0;
fail:
        offers_free(c, n);
        return -ENOMEM;
}

int ipc_object_set_offers(IpcObject *o, Cella__V1__IpcOffer *const *offers, size_t n,
                          const char **ret_why)
{
        IpcOfferCopy *c;
        int r = offers_copy(offers, n, &c);

        if (r < 0) {
                *ret_why = "out of memory";
                return r;
        }
        if (o->ops->offers_changed) {
                r = o->ops->offers_changed(o, offers, n, ret_why);
                if (r < 0) {
                        offers_free(c, n);
                        return r;
                }
        }
        offers_free(o->offers, o->n_offers);
        o->offers = c;
        o->n_offers = n;
        return 0;
}

/* True if one of o's offers covers app with modes: an app pattern matching its id,
 * or a topic pattern its bus.subscribe right covers (broker_app_holds, no one-time
 * grant used up). */
static bool offered(const IpcObject *o, BrokerApp *app, uint32_t modes)
{
        const char *id = broker_app_id(app);

        for (size_t i = 0; i < o->n_offers; i++) {
                const IpcOfferCopy *f = &o->offers[i];

                if ((modes & ~f->modes) != 0)
                        continue;
                if (f->app && capability_scope_match(CAPABILITY_SCOPE_APP_ID, f->app, id))
                        return true;
                if (f->topic) {
                        char text[CAPABILITY_RIGHT_MAX];
                        CapabilityRight r;

                        if ((size_t)snprintf(text, sizeof text, "bus.subscribe:%s", f->topic) >=
                            sizeof text)
                                continue;
                        if (capability_right_parse(text, &r, NULL) == 0 &&
                            broker_app_holds(app, &r, false))
                                return true;
                }
        }
        return false;
}

/* ---- objects ------------------------------------------------------------------------ */

static IpcObject *object_find(IpcRegistry *reg, const char *name)
{
        for (IpcObject *o = reg->objects; o; o = o->next)
                if (!o->destroyed && strcmp(o->name, name) == 0)
                        return o;
        return NULL;
}

static const char *kind_name(Cella__V1__IpcKind k)
{
        switch (k) {
        case CELLA__V1__IPC_KIND__IPC_KIND_PIPE:
                return "pipe";
        case CELLA__V1__IPC_KIND__IPC_KIND_CHANNEL:
                return "channel";
        case CELLA__V1__IPC_KIND__IPC_KIND_SHM:
                return "shm";
        case CELLA__V1__IPC_KIND__IPC_KIND_SEM:
                return "sem";
        case CELLA__V1__IPC_KIND__IPC_KIND_QUEUE:
                return "queue";
        default:
                return "unknown";
        }
}

const char *ipc_kind_name(Cella__V1__IpcKind k)
{
        return kind_name(k);
}

static void object_free(IpcObject *o)
{
        IpcRegistry *reg = o->reg;

        if (o->ops->destroy)
                o->ops->destroy(o);
        if (o->prev)
                o->prev->next = o->next;
        else
                reg->objects = o->next;
        if (o->next)
                o->next->prev = o->prev;
        reg->n_objects--;
        o->owner->objects--;
        o->owner->shm_bytes -= o->charge_bytes;
        o->owner->queued_bytes -= o->queued_bytes;
        owner_put(reg, o->owner);
        offers_free(o->offers, o->n_offers);
        free(o->name);
        free(o);
}

void ipc_object_release(IpcObject *o)
{
        if (o && o->n_handles == 0 && o->n_pending == 0 && (o->destroyed || !o->persistent))
                object_free(o);
}

void ipc_object_destroy(IpcObject *o)
{
        o->destroyed = true;
        ipc_object_release(o);
}

static IpcObject *object_new(IpcRegistry *reg, const IpcKindOps *ops, const char *name, IpcOwner *w,
                             Cella__V1__IpcOffer *const *offers, size_t n_offers, void *data)
{
        IpcObject *o = calloc(1, sizeof *o);

        if (!o)
                return NULL;
        o->name = strdup(name);
        if (!o->name || offers_copy(offers, n_offers, &o->offers) < 0) {
                free(o->name);
                free(o);
                return NULL;
        }
        o->n_offers = n_offers;
        o->reg = reg;
        o->ops = ops;
        o->owner = w;
        o->data = data;
        w->objects++;
        o->next = reg->objects;
        if (reg->objects)
                reg->objects->prev = o;
        reg->objects = o;
        reg->n_objects++;
        return o;
}

IpcObject *ipc_object_create(BrokerCall *c, const IpcKindOps *ops, const char *name,
                             Cella__V1__IpcOffer *const *offers, size_t n_offers,
                             uint64_t charge_bytes, void *data, int *ret_error,
                             const char **ret_why)
{
        Broker *b = broker_app_broker(c->app);
        const BrokerOptions *opt = broker_options(b);
        IpcRegistry *reg = ipc_registry_of(b);
        const char *id = broker_app_id(c->app);
        bool shm = ops->kind == CELLA__V1__IPC_KIND__IPC_KIND_SHM;
        IpcOwner *w;
        IpcObject *o;
        int r;

        broker_audit_set(c, "name", json_string(name));
        broker_audit_set(c, "kind", json_string(kind_name(ops->kind)));
        if (!reg) {
                *ret_error = -ENOMEM;
                *ret_why = NULL;
                return NULL;
        }
        if (!ipc_name_check(id, name, ret_error, ret_why))
                return NULL;
        r = ipc_offers_check(ops, offers, n_offers, ret_why);
        if (r < 0) {
                *ret_error = r;
                return NULL;
        }
        if (object_find(reg, name)) {
                *ret_error = -EEXIST;
                *ret_why = "an object of that name exists";
                return NULL;
        }
        w = owner_get(reg, id, true);
        if (!w) {
                *ret_error = -ENOMEM;
                *ret_why = NULL;
                return NULL;
        }
        if (w->objects >= opt->ipc_objects_max) {
                *ret_error = -EDQUOT;
                *ret_why = quota_why(reg, "ipc.objects_max", w->objects, 1, opt->ipc_objects_max,
                                     "objects");
                owner_put(reg, w);
                return NULL;
        }
        if (shm && (charge_bytes > opt->ipc_shm_bytes_max ||
                    w->shm_bytes > opt->ipc_shm_bytes_max - charge_bytes)) {
                *ret_error = -EDQUOT;
                *ret_why = quota_why(reg, "ipc.shm_bytes_max", w->shm_bytes, charge_bytes,
                                     opt->ipc_shm_bytes_max, "bytes");
                owner_put(reg, w);
                return NULL;
        }
        o = object_new(reg, ops, name, w, offers, n_offers, data);
        if (!o) {
                owner_put(reg, w);
                *ret_error = -ENOMEM;
                *ret_why = NULL;
                return NULL;
        }
        if (shm) {
                o->charge_bytes = charge_bytes;
                w->shm_bytes += charge_bytes;
        }
        return o;
}

IpcObject *ipc_object_restore(Broker *b, const IpcKindOps *ops, const char *name,
                              const char *owner_id, Cella__V1__IpcOffer *const *offers,
                              size_t n_offers, void *data)
{
        IpcRegistry *reg = ipc_registry_of(b);
        IpcOwner *w;
        IpcObject *o;

        if (!reg || object_find(reg, name))
                return NULL;
        w = owner_get(reg, owner_id, true);
        if (!w)
                return NULL;
        o = object_new(reg, ops, name, w, offers, n_offers, data);
        if (!o) {
                owner_put(reg, w);
                return NULL;
        }
        o->persistent = true;
        return o;
}

IpcObject *ipc_object_open(BrokerCall *c, Cella__V1__IpcKind kind, const char *name, uint32_t modes,
                           int *ret_error, const char **ret_why)
{
        IpcRegistry *reg = ipc_registry_of(broker_app_broker(c->app));
        IpcObject *o;

        broker_audit_set(c, "name", json_string(name));
        broker_audit_set(c, "kind", json_string(kind_name(kind)));
        broker_audit_set(c, "modes", json_integer(modes));
        o = reg ? object_find(reg, name) : NULL;
        if (!o || o->ops->kind != kind) {
                *ret_error = -ENOENT;
                *ret_why = "no such object";
                return NULL;
        }
        broker_audit_set(c, "owner", json_string(o->owner->id));
        if (!modes_fit(o->ops, modes)) {
                *ret_error = -EINVAL;
                *ret_why = "the modes are not a mode set of this kind";
                return NULL;
        }
        if (strcmp(o->owner->id, broker_app_id(c->app)) != 0 && !offered(o, c->app, modes)) {
                *ret_error = -EPERM;
                *ret_why = "the creator did not offer it to this app with these modes";
                return NULL;
        }
        return o;
}

void ipc_object_set_persistent(IpcObject *o, bool persistent)
{
        o->persistent = persistent;
}

void ipc_object_set_size(IpcObject *o, uint64_t size_bytes)
{
        o->size_bytes = size_bytes;
}

void *ipc_object_data(const IpcObject *o)
{
        return o->data;
}

const char *ipc_object_name(const IpcObject *o)
{
        return o->name;
}

const char *ipc_object_owner(const IpcObject *o)
{
        return o->owner->id;
}

const IpcKindOps *ipc_object_ops(const IpcObject *o)
{
        return o->ops;
}

Broker *ipc_object_broker(const IpcObject *o)
{
        return o->reg->broker;
}

uint64_t ipc_object_size(const IpcObject *o)
{
        return o->size_bytes;
}

bool ipc_object_destroyed(const IpcObject *o)
{
        return o->destroyed;
}

IpcHandle *ipc_object_handles(const IpcObject *o)
{
        return o->handles;
}

IpcHandle *ipc_handle_next_of(const IpcHandle *h)
{
        return h->onext;
}

int ipc_object_charge_queued(IpcObject *o, int64_t delta, const char **ret_why)
{
        const BrokerOptions *opt = broker_options(o->reg->broker);
        IpcOwner *w = o->owner;

        if (delta < 0) {
                uint64_t d = (uint64_t)-delta;

                d = d > o->queued_bytes ? o->queued_bytes : d;
                o->queued_bytes -= d;
                w->queued_bytes -= d;
                return 0;
        }
        if ((uint64_t)delta > opt->ipc_queued_bytes_max ||
            w->queued_bytes > opt->ipc_queued_bytes_max - (uint64_t)delta) {
                *ret_why = quota_why(o->reg, "ipc.queued_bytes_max", w->queued_bytes,
                                     (uint64_t)delta, opt->ipc_queued_bytes_max, "bytes");
                return -EDQUOT;
        }
        o->queued_bytes += (uint64_t)delta;
        w->queued_bytes += (uint64_t)delta;
        return 0;
}

void ipc_object_hold(IpcObject *o)
{
        o->n_pending++;
}

void ipc_object_unhold(IpcObject *o)
{
        o->n_pending--;
        ipc_object_release(o);
}

/* ---- handles ------------------------------------------------------------------------ */

static void handle_revoked(BrokerHandle *bh)
{
        IpcHandle *h = (IpcHandle *)((char *)bh - offsetof(IpcHandle, bh));

        ipc_handle_close(h, IPC_CLOSE_REVOKED);
}

IpcHandle *ipc_handle_new(BrokerApp *app, IpcObject *o, uint32_t modes,
                          const CapabilityRight *right, int *ret_error, const char **ret_why)
{
        const BrokerOptions *opt = broker_options(broker_app_broker(app));
        IpcAppState *st = ipc_app_state(app, true);
        IpcHandle *h;

        *ret_why = NULL;
        if (!st) {
                *ret_error = -ENOMEM;
                return NULL;
        }
        if (st->n_handles >= opt->ipc_handles_max) {
                *ret_error = -EDQUOT;
                *ret_why = quota_why(o->reg, "ipc.handles_max", st->n_handles, 1,
                                     opt->ipc_handles_max, "handles");
                return NULL;
        }
        h = calloc(1, sizeof *h);
        if (!h) {
                *ret_error = -ENOMEM;
                return NULL;
        }
        h->st = st;
        h->o = o;
        h->id = st->next_id++;
        h->modes = modes;
        h->next = st->handles;
        if (st->handles)
                st->handles->prev = h;
        st->handles = h;
        st->n_handles++;
        h->onext = o->handles;
        if (o->handles)
                o->handles->oprev = h;
        o->handles = h;
        o->n_handles++;
        broker_handle_add(app, &h->bh, right, handle_revoked);
        return h;
}

void ipc_handle_close(IpcHandle *h, IpcCloseReason reason)
{
        static const char *const reasons[] = {
                [IPC_CLOSE_REVOKED] = "revoked",
                [IPC_CLOSE_DESTROYED] = "destroyed",
                [IPC_CLOSE_PEER_GONE] = "peer-gone",
        };
        IpcAppState *st = h->st;
        IpcObject *o = h->o;

        if (o->ops->handle_closing)
                o->ops->handle_closing(h);
        broker_handle_remove(&h->bh);
        if (h->prev)
                h->prev->next = h->next;
        else
                st->handles = h->next;
        if (h->next)
                h->next->prev = h->prev;
        st->n_handles--;
        if (h->oprev)
                h->oprev->onext = h->onext;
        else
                o->handles = h->onext;
        if (h->onext)
                h->onext->oprev = h->oprev;
        o->n_handles--;
        if (reason != IPC_CLOSE_BY_APP) {
                Cella__V1__IpcClosedEvent ev = CELLA__V1__IPC_CLOSED_EVENT__INIT;
                json_t *f;

                ev.handle = h->id;
                ev.reason = (char *)reasons[reason];
                (void)broker_app_event(st->app, CELLA__V1__OPCODE__OPCODE_EVENT_IPC_CLOSED,
                                       &ev.base);
                f = json_pack("{s:s, s:s, s:I, s:s}", "what", "ipc.closed", "name", o->name,
                              "handle", (json_int_t)h->id, "reason", reasons[reason]);
                if (f) {
                        (void)broker_app_audit(st->app, AUDIT_EVENT_CALL, f);
                        json_decref(f);
                }
        }
        free(h->peer);
        free(h);
        ipc_object_release(o);
}

IpcHandle *ipc_handle_get(BrokerApp *app, uint64_t id, Cella__V1__IpcKind kind)
{
        IpcAppState *st = ipc_app_state(app, false);

        for (IpcHandle *h = st ? st->handles : NULL; h; h = h->next)
                if (h->id == id)
                        return kind == CELLA__V1__IPC_KIND__IPC_KIND_UNSPECIFIED ||
                                               h->o->ops->kind == kind
                                       ? h
                                       : NULL;
        return NULL;
}

void ipc_handle_describe(const IpcHandle *h, Cella__V1__IpcHandleReply *r)
{
        r->handle = h->id;
        r->kind = h->o->ops->kind;
        r->name = h->o->name;
        r->modes = h->modes;
        r->size_bytes = h->o->size_bytes;
        r->owner = h->o->owner->id;
        r->peer = h->peer ? h->peer : (char *)"";
}

void ipc_reply_handle(BrokerCall *c, IpcHandle *h, int fd)
{
        Cella__V1__IpcHandleReply reply = CELLA__V1__IPC_HANDLE_REPLY__INIT;

        ipc_handle_describe(h, &reply);
        broker_audit_set(c, "handle", json_integer((json_int_t)h->id));
        broker_reply(c, &reply.base, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
}

uint32_t ipc_handle_modes(const IpcHandle *h)
{
        return h->modes;
}

IpcObject *ipc_handle_object(const IpcHandle *h)
{
        return h->o;
}

BrokerApp *ipc_handle_app(const IpcHandle *h)
{
        return h->st->app;
}

uint64_t ipc_handle_id(const IpcHandle *h)
{
        return h->id;
}

void *ipc_handle_data(const IpcHandle *h)
{
        return h->data;
}

void ipc_handle_set_data(IpcHandle *h, void *data)
{
        h->data = data;
}

int ipc_handle_set_peer(IpcHandle *h, const char *peer_id)
{
        char *p = strdup(peer_id);

        if (!p)
                return -ENOMEM;
        free(h->peer);
        h->peer = p;
        return 0;
}

IpcHandle *ipc_app_handles(const IpcAppState *st)
{
        return st ? st->handles : NULL;
}

IpcHandle *ipc_handle_next_in_app(const IpcHandle *h)
{
        return h->next;
}

void ipc_usage(BrokerApp *app, Cella__V1__IpcUsage *ret)
{
        Broker *b = broker_app_broker(app);
        const BrokerOptions *opt = broker_options(b);
        IpcRegistry *reg = ipc_registry_of(b);
        IpcOwner *w = reg ? owner_get(reg, broker_app_id(app), false) : NULL;
        IpcAppState *st = ipc_app_state(app, false);

        ret->objects = w ? w->objects : 0;
        ret->objects_max = (uint32_t)opt->ipc_objects_max;
        ret->shm_bytes = w ? w->shm_bytes : 0;
        ret->shm_bytes_max = opt->ipc_shm_bytes_max;
        ret->queued_bytes = w ? w->queued_bytes : 0;
        ret->queued_bytes_max = opt->ipc_queued_bytes_max;
        ret->handles = st ? st->n_handles : 0;
        ret->handles_max = (uint32_t)opt->ipc_handles_max;
}

void ipc_registry_stats(Broker *b, unsigned *ret_objects, unsigned *ret_pending)
{
        IpcRegistry *reg = ipc_registry_of(b);

        if (ret_objects)
                *ret_objects = reg ? reg->n_objects : 0;
        if (ret_pending)
                *ret_pending = reg ? reg->n_pending : 0;
}

/* ---- detach ------------------------------------------------------------------------- */

void broker_ipc_detach(BrokerApp *app)
{
        IpcAppState *st = ipc_app_state(app, false);
        IpcRegistry *reg = ipc_registry_of(broker_app_broker(app));

        /* Offers from it and to it go first: nobody accepts from a gone app, and a
         * gone app accepts nothing. */
        if (reg)
                ipc_pending_drop_app(reg, app);
        if (!st)
                return;
        while (st->handles) {
                IpcHandle *h = st->handles;
                IpcObject *o = h->o;
                Cella__V1__IpcKind k = o->ops->kind;
                bool ends = k == CELLA__V1__IPC_KIND__IPC_KIND_PIPE ||
                            k == CELLA__V1__IPC_KIND__IPC_KIND_CHANNEL;

                if (ends) {
                        /* The other ends' holders learn the peer went (the fd they
                         * hold reads EOF or fails EPIPE on its own). */
                        o->n_pending++; /* keep o while its other handles close */
                        for (IpcHandle *x = o->handles, *next; x; x = next) {
                                next = x->onext;
                                if (x->st != st)
                                        ipc_handle_close(x, IPC_CLOSE_PEER_GONE);
                        }
                        ipc_handle_close(h, IPC_CLOSE_BY_APP);
                        ipc_object_unhold(o);
                } else
                        ipc_handle_close(h, IPC_CLOSE_BY_APP);
        }
        broker_app_set_slot(app, BROKER_SLOT_IPC, NULL);
        free(st);
}

/* ---- pending offers ----------------------------------------------------------------- */

#define IPC_OFFER_TIMEOUT_MAX_MS 600000u

static void expiry_free_cb(uv_handle_t *h)
{
        free(h);
}

static void pending_expired(uv_timer_t *t)
{
        ipc_pending_drop(t->data);
}

int ipc_pending_new(BrokerApp *from, BrokerApp *to, IpcObject *o, uint32_t modes, int fd,
                    uint32_t timeout_ms, uint64_t *ret_token, const char **ret_why)
{
        Cella__V1__IpcOfferedEvent ev = CELLA__V1__IPC_OFFERED_EVENT__INIT;
        Broker *b = broker_app_broker(from);
        const BrokerOptions *opt = broker_options(b);
        IpcRegistry *reg = ipc_registry_of(b);
        IpcAppState *st = ipc_app_state(from, true);
        IpcPending *p;

        *ret_why = NULL;
        if (!reg || !st) {
                safe_close(fd);
                return -ENOMEM;
        }
        if (st->n_pending_out >= opt->ipc_pending_max) {
                safe_close(fd);
                *ret_why = quota_why(reg, "ipc.pending_max", st->n_pending_out, 1,
                                     opt->ipc_pending_max, "offers waiting");
                return -EDQUOT;
        }
        if (timeout_ms == 0 || timeout_ms > IPC_OFFER_TIMEOUT_MAX_MS)
                timeout_ms = IPC_OFFER_TIMEOUT_MAX_MS;
        p = calloc(1, sizeof *p);
        if (p)
                p->expiry = malloc(sizeof *p->expiry);
        if (!p || !p->expiry || uv_timer_init(opt->loop, p->expiry) < 0) {
                if (p)
                        free(p->expiry);
                free(p);
                safe_close(fd);
                return -ENOMEM;
        }
        p->expiry->data = p;
        p->reg = reg;
        p->token = ++reg->next_token;
        p->from = from;
        p->to = to;
        p->o = o;
        p->modes = modes;
        p->fd = fd;
        ipc_object_hold(o);
        p->next = reg->pending;
        if (reg->pending)
                reg->pending->prev = p;
        reg->pending = p;
        reg->n_pending++;
        st->n_pending_out++;
        uv_timer_start(p->expiry, pending_expired, timeout_ms, 0);

        ev.token = p->token;
        ev.kind = o->ops->kind;
        ev.name = o->name;
        ev.modes = modes;
        ev.from = (char *)broker_app_id(from);
        ev.expires_ms = timeout_ms;
        /* An offer its target never hears of would only wait out its time holding
         * an fd: refused instead (the target does not read its events). */
        if (broker_app_event(to, CELLA__V1__OPCODE__OPCODE_EVENT_IPC_OFFERED, &ev.base) < 0) {
                ipc_pending_drop(p);
                *ret_why = "the target's event queue is full or closed";
                return -EAGAIN;
        }
        *ret_token = p->token;
        return 0;
}

IpcPending *ipc_pending_find(IpcRegistry *reg, BrokerApp *to, uint64_t token)
{
        for (IpcPending *p = reg ? reg->pending : NULL; p; p = p->next)
                if (p->token == token && p->to == to)
                        return p;
        return NULL;
}

void ipc_pending_end(IpcPending *p, int *ret_fd)
{
        IpcRegistry *reg = p->reg;
        IpcAppState *st = ipc_app_state(p->from, false);

        if (p->prev)
                p->prev->next = p->next;
        else
                reg->pending = p->next;
        if (p->next)
                p->next->prev = p->prev;
        reg->n_pending--;
        if (st)
                st->n_pending_out--;
        uv_timer_stop(p->expiry);
        uv_close((uv_handle_t *)p->expiry, expiry_free_cb);
        if (ret_fd)
                *ret_fd = p->fd;
        else
                safe_close(p->fd);
        ipc_object_unhold(p->o);
        free(p);
}

void ipc_pending_drop(IpcPending *p)
{
        ipc_pending_end(p, NULL);
}

void ipc_pending_drop_app(IpcRegistry *reg, BrokerApp *app)
{
        for (IpcPending *p = reg->pending, *next; p; p = next) {
                next = p->next;
                if (p->from == app || p->to == app) {
                        ipc_pending_drop(p);
                        next = reg->pending; /* an object freed may not matter, but be safe */
                }
        }
}
