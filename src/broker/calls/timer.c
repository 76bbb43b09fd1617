/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * timer.create, timer.cancel (proto/cella.proto "timer", docs/protocol.md): kernel
 * timers on the supervisor's loop, delivered as EVENT_TIMER_FIRED.
 *
 * Each timer is one uv_timer_t armed for its next due time only (never libuv's own
 * repeat): libuv restarts a repeating timer from the time its callback ran, so a
 * late loop would drift and silently lose firings. Here the due times stay on the
 * grid initial + k * interval, and a callback that runs late counts every grid point
 * it passed in TimerFiredEvent.expirations (POSIX timer_getoverrun's idea).
 *
 * An event the app's out queue cannot take (it does not read, or is frozen) is not
 * sent: its firings are kept and added to the next event's expirations. A one-shot
 * timer whose only event could not be queued tries again every
 * TIMER_RETRY_MS until it is delivered or cancelled.
 *
 * Every timer is a BrokerHandle on the right "timer": revoking the right stops the
 * app's timers at once. Timer ids count from 1 per app and are never reused while it
 * runs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "broker/broker-internal.h"

#define TIMER_INITIAL_MAX_MS  (1ull << 40) /* proto: initial_ms 0..2^40 */
#define TIMER_INTERVAL_MAX_MS (1ull << 40)
#define TIMER_RETRY_MS        10u /* a one-shot whose event found the out queue full */

typedef struct TimerSet TimerSet;

typedef struct Timer {
        BrokerHandle handle; /* on the right "timer" */
        uv_timer_t uv;
        TimerSet *set; /* NULL once the timer is closing */
        uint64_t id, cookie;
        uint64_t interval_ns; /* 0: one-shot */
        uint64_t due_ns;      /* uv_hrtime() of the next firing */
        uint64_t missed;      /* firings passed that no event has told yet */
        struct Timer *next, *prev;
} Timer;

/* The app's timers (its BROKER_SLOT_TIMER). */
struct TimerSet {
        BrokerApp *app;
        Timer *timers;
        unsigned n;
        uint64_t next_id;
};

static TimerSet *timer_set(BrokerApp *app, bool create)
{
        TimerSet *s = broker_app_slot(app, BROKER_SLOT_TIMER);

        if (s || !create)
                return s;
        s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        s->app = app;
        s->next_id = 1;
        broker_app_set_slot(app, BROKER_SLOT_TIMER, s);
        return s;
}

static void timer_free_cb(uv_handle_t *h)
{
        free(h->data);
}

/* Unlinks t from its set and frees it once libuv lets go of it. The handle must be
 * out of the app's handle list already. */
static void timer_destroy(Timer *t)
{
        TimerSet *s = t->set;

        if (s) {
                if (t->prev)
                        t->prev->next = t->next;
                else
                        s->timers = t->next;
                if (t->next)
                        t->next->prev = t->prev;
                s->n--;
                t->set = NULL;
        }
        uv_timer_stop(&t->uv);
        uv_close((uv_handle_t *)&t->uv, timer_free_cb);
}

/* The core closed the handle (the right "timer" was revoked). */
static void timer_handle_close(BrokerHandle *h)
{
        timer_destroy((Timer *)((char *)h - offsetof(Timer, handle)));
}

static void timer_fire(uv_timer_t *uv);

/* Arms t for its due time, rounded up to libuv's milliseconds: never early. */
static void timer_start(Timer *t, uint64_t now_ns)
{
        uint64_t delay_ms = 0;

        if (t->due_ns > now_ns)
                delay_ms = (t->due_ns - now_ns + 999999) / 1000000;
        uv_timer_start(&t->uv, timer_fire, delay_ms, 0);
}

/* Sends one TimerFiredEvent for t if the app's out queue can take it. Returns true
 * if it was queued. */
static bool timer_tell(Timer *t, uint64_t expirations, uint64_t now_ns)
{
        Cella__V1__TimerFiredEvent ev = CELLA__V1__TIMER_FIRED_EVENT__INIT;

        if (broker_app_outq_room(t->handle.app) == 0)
                return false;
        ev.timer_id = t->id;
        ev.cookie = t->cookie;
        ev.expirations = expirations;
        ev.monotonic_ns = (int64_t)now_ns;
        return broker_app_event(t->handle.app, CELLA__V1__OPCODE__OPCODE_EVENT_TIMER_FIRED,
                                &ev.base) >= 0;
}

static void timer_fire(uv_timer_t *uv)
{
        Timer *t = uv->data;
        uint64_t now = uv_hrtime(), n = 1;

        if (t->interval_ns == 0) {
                if (!timer_tell(t, 1, now)) {
                        uv_timer_start(&t->uv, timer_fire, TIMER_RETRY_MS, 0);
                        return;
                }
                broker_handle_remove(&t->handle);
                timer_destroy(t);
                return;
        }
        /* Every grid point passed since due counts: the loop or the app was late. */
        if (now > t->due_ns)
                n += (now - t->due_ns) / t->interval_ns;
        t->due_ns += n * t->interval_ns;
        t->missed += n;
        if (timer_tell(t, t->missed, now))
                t->missed = 0;
        timer_start(t, now);
}

static const char *timer_create_right(const ProtobufCMessage *req, char *buf, size_t size,
                                      int *ret_error)
{
        const Cella__V1__TimerCreateRequest *m = (const void *)req;

        if (m->initial_ms > TIMER_INITIAL_MAX_MS || m->interval_ms > TIMER_INTERVAL_MAX_MS) {
                *ret_error = -EINVAL;
                return NULL;
        }
        return "timer";
}

static const char *timer_cancel_right(const ProtobufCMessage *req, char *buf, size_t size,
                                      int *ret_error)
{
        return "timer";
}

static void audit_u64(BrokerCall *c, const char *key, uint64_t v)
{
        broker_audit_set(c, key, json_integer((json_int_t)v));
}

static void timer_create_handle(BrokerCall *c)
{
        const Cella__V1__TimerCreateRequest *m = (const void *)c->request;
        Cella__V1__TimerCreateReply reply = CELLA__V1__TIMER_CREATE_REPLY__INIT;
        const BrokerOptions *o = broker_options(broker_app_broker(c->app));
        TimerSet *s = timer_set(c->app, true);
        uint64_t now = uv_hrtime();
        Timer *t;

        if (!s) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        /* The proto's and cella.h's EBUSY: a quota, as for subscriptions. */
        if (s->n >= BROKER_TIMERS_MAX) {
                broker_reply_error(c, EBUSY, "too many timers");
                return;
        }
        t = calloc(1, sizeof *t);
        if (!t) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        if (uv_timer_init(o->loop, &t->uv) < 0) {
                free(t);
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        t->uv.data = t;
        t->set = s;
        t->id = s->next_id++;
        t->cookie = m->cookie;
        /* interval 0 is one-shot; any other is at least BROKER_TIMER_MIN_NS (1 ms, the
         * proto's unit), so the bound holds by construction. */
        t->interval_ns = m->interval_ms * 1000000ull;
        t->due_ns = now + m->initial_ms * 1000000ull;
        t->next = s->timers;
        if (s->timers)
                s->timers->prev = t;
        s->timers = t;
        s->n++;
        broker_handle_add(c->app, &t->handle, c->checked, timer_handle_close);
        timer_start(t, now);

        audit_u64(c, "timer_id", t->id);
        audit_u64(c, "initial_ms", m->initial_ms);
        audit_u64(c, "interval_ms", m->interval_ms);
        reply.timer_id = t->id;
        broker_reply(c, &reply.base, NULL, 0);
}

static void timer_cancel_handle(BrokerCall *c)
{
        const Cella__V1__TimerCancelRequest *m = (const void *)c->request;
        Cella__V1__TimerCancelReply reply = CELLA__V1__TIMER_CANCEL_REPLY__INIT;
        TimerSet *s = timer_set(c->app, false);

        audit_u64(c, "timer_id", m->timer_id);
        for (Timer *t = s ? s->timers : NULL; t; t = t->next)
                if (t->id == m->timer_id) {
                        broker_handle_remove(&t->handle);
                        timer_destroy(t);
                        broker_reply(c, &reply.base, NULL, 0);
                        return;
                }
        broker_reply_error(c, ENOENT, "no such timer");
}

void broker_timer_detach(BrokerApp *app)
{
        TimerSet *s = timer_set(app, false);

        if (!s)
                return;
        while (s->timers) {
                Timer *t = s->timers;

                broker_handle_remove(&t->handle);
                timer_destroy(t);
        }
        broker_app_set_slot(app, BROKER_SLOT_TIMER, NULL);
        free(s);
}

const BrokerCallDef broker_calls_timer[] = {
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_TIMER_CREATE,
                .right_of = timer_create_right,
                .handle = timer_create_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_TIMER_CANCEL,
                .right_of = timer_cancel_right,
                .handle = timer_cancel_handle,
        },
        {0},
};
