/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The audit log's replay for org.cella.Events "since" (docs/api.md), off cellad's
 * loop: audit_read() checks the whole hash chain from the log's first record, which
 * for a log of 200,000 records takes seconds, during which the loop would serve no
 * other client and no app. A thread of its own reads the log and hands the events
 * over in batches (uv_async); the next batch is read once the loop has sent the
 * previous one and the client's queue has drained (backpressure: the client's
 * replies are not queued past the control server's bound, and a slow client holds
 * only its own thread, never a thread of libuv's pool that installs need).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "daemon/daemon-internal.h"

/* Events per batch handed to the loop: a few hundred µs of the loop's time to send. */
#define REPLAY_BATCH 256u
/* While the consumer is busy (its client's queue is long), looked at this often. */
#define REPLAY_DRAIN_MS 5u

struct DaemonReplay {
        const DaemonReplayOps *ops;
        void *userdata;
        char *state_dir;
        AuditFilter filter;
        char *filter_app;
        uv_thread_t thread;
        bool thread_started;
        uv_async_t async; /* the thread -> the loop: a batch, or the end */
        uv_timer_t drain; /* the loop waits for its consumer */
        unsigned handles; /* open handles (async, drain), closed at the end */
        uv_mutex_t lock;
        uv_cond_t cond;
        /* Under lock: */
        json_t *batch;  /* handed over by the thread; NULL: taken */
        bool wanted;    /* the loop wants the next batch */
        bool cancelled; /* the loop wants no more */
        bool done;      /* the thread has ended: r, report */
        int r;
        AuditVerifyReport report;
        /* The thread's own: */
        json_t *filling;
};

static void replay_free(DaemonReplay *r)
{
        json_decref(r->batch);
        json_decref(r->filling);
        uv_mutex_destroy(&r->lock);
        uv_cond_destroy(&r->cond);
        free(r->state_dir);
        free(r->filter_app);
        free(r);
}

/* The thread: hands r->filling over once the loop wants it. Returns 0, or
 * -ECANCELED when the loop wants no more. */
static int hand_over(DaemonReplay *r)
{
        bool cancelled;

        uv_mutex_lock(&r->lock);
        while (!r->wanted && !r->cancelled)
                uv_cond_wait(&r->cond, &r->lock);
        cancelled = r->cancelled;
        if (!cancelled) {
                r->batch = TAKE_PTR(r->filling);
                r->wanted = false;
        }
        uv_mutex_unlock(&r->lock);
        if (cancelled)
                return -ECANCELED;
        uv_async_send(&r->async);
        return 0;
}

static int on_record(const json_t *rec, const char *line, size_t len, void *userdata)
{
        DaemonReplay *r = userdata;
        json_t *ev;

        if (__atomic_load_n(&r->cancelled, __ATOMIC_RELAXED))
                return -ECANCELED; /* the client went away: stop reading */
        ev = r->ops->select(rec);
        if (!ev)
                return 0;
        if (!r->filling && !(r->filling = json_array())) {
                json_decref(ev);
                return -ENOMEM;
        }
        if (json_array_append_new(r->filling, ev) < 0)
                return -ENOMEM;
        if (json_array_size(r->filling) < REPLAY_BATCH)
                return 0;
        return hand_over(r);
}

static void replay_thread(void *arg)
{
        DaemonReplay *r = arg;
        AuditVerifyReport report;
        int k;

        k = audit_read(r->state_dir, &r->filter, on_record, r, &report);
        if (k != -ECANCELED && r->filling && json_array_size(r->filling) > 0)
                (void)hand_over(r); /* the last batch; -ECANCELED: nobody wants it */
        uv_mutex_lock(&r->lock);
        r->r = k;
        r->report = report;
        r->done = true;
        uv_mutex_unlock(&r->lock);
        uv_async_send(&r->async);
}

static void on_closed(uv_handle_t *h)
{
        DaemonReplay *r = h->data;

        if (--r->handles == 0)
                replay_free(r);
}

/* The end, on the loop, once the thread has ended. */
static void replay_end(DaemonReplay *r)
{
        uv_thread_join(&r->thread);
        r->thread_started = false;
        if (!r->cancelled)
                r->ops->done(r->r, &r->report, r->userdata);
        uv_close((uv_handle_t *)&r->async, on_closed);
        uv_close((uv_handle_t *)&r->drain, on_closed);
}

/* Asks the thread for the next batch. */
static void want_next(DaemonReplay *r)
{
        uv_mutex_lock(&r->lock);
        r->wanted = true;
        uv_cond_signal(&r->cond);
        uv_mutex_unlock(&r->lock);
}

static void on_drain(uv_timer_t *t)
{
        DaemonReplay *r = t->data;

        if (!r->cancelled && r->ops->busy(r->userdata))
                return; /* the timer repeats */
        uv_timer_stop(t);
        want_next(r);
}

static void on_async(uv_async_t *a)
{
        DaemonReplay *r = a->data;
        json_t *batch;
        bool done;

        uv_mutex_lock(&r->lock);
        batch = TAKE_PTR(r->batch);
        done = r->done;
        uv_mutex_unlock(&r->lock);
        if (batch && !r->cancelled)
                r->ops->batch(batch, r->userdata);
        json_decref(batch);
        if (done) {
                /* uv_async_send() coalesces: the last batch and the end may come as
                 * one wake-up, the batch taken above. */
                replay_end(r);
                return;
        }
        if (!batch)
                return;
        if (!r->cancelled && r->ops->busy(r->userdata))
                (void)uv_timer_start(&r->drain, on_drain, REPLAY_DRAIN_MS, REPLAY_DRAIN_MS);
        else
                want_next(r);
}

int daemon_replay_start(uv_loop_t *loop, const char *state_dir, const AuditFilter *filter,
                        const DaemonReplayOps *ops, void *userdata, DaemonReplay **ret)
{
        DaemonReplay *r = calloc(1, sizeof *r);
        int k;

        if (!r)
                return -ENOMEM;
        r->ops = ops;
        r->userdata = userdata;
        r->filter = filter ? *filter : (AuditFilter){};
        r->wanted = true;
        r->state_dir = strdup(state_dir);
        if (r->filter.app && !(r->filter_app = strdup(r->filter.app))) {
                free(r->state_dir);
                free(r);
                return -ENOMEM;
        }
        r->filter.app = r->filter_app;
        if (!r->state_dir) {
                free(r->filter_app);
                free(r);
                return -ENOMEM;
        }
        if (uv_mutex_init(&r->lock) < 0) {
                free(r->state_dir);
                free(r->filter_app);
                free(r);
                return -ENOMEM;
        }
        if (uv_cond_init(&r->cond) < 0) {
                uv_mutex_destroy(&r->lock);
                free(r->state_dir);
                free(r->filter_app);
                free(r);
                return -ENOMEM;
        }
        k = uv_async_init(loop, &r->async, on_async);
        if (k < 0) {
                replay_free(r);
                return k;
        }
        r->async.data = r;
        r->handles++;
        (void)uv_timer_init(loop, &r->drain);
        r->drain.data = r;
        r->handles++;
        k = uv_thread_create(&r->thread, replay_thread, r);
        if (k < 0) {
                uv_close((uv_handle_t *)&r->async, on_closed);
                uv_close((uv_handle_t *)&r->drain, on_closed);
                return k;
        }
        r->thread_started = true;
        *ret = r;
        return 0;
}

void daemon_replay_cancel(DaemonReplay *r)
{
        if (!r)
                return;
        uv_mutex_lock(&r->lock);
        __atomic_store_n(&r->cancelled, true, __ATOMIC_RELAXED);
        uv_cond_signal(&r->cond);
        uv_mutex_unlock(&r->lock);
        uv_timer_stop(&r->drain);
        /* The thread stops at its next record (or ends); its end frees r. */
}
