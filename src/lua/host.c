/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cella-lua host: apps, tasks, timers, the event loop and the schedulers
 * (host.h; docs/lua-api.md "Callbacks and the event loop", "Schedulers").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "base/time-util.h"
#include "lua/host.h"
#include "lua/lua-modules.h"

/* Linux's sched_prio_to_weight (kernel/sched/core.c): nice -20..19; each step is
 * about 1.25x, so two apps one step apart share a CPU about 55:45. */
static const uint32_t prio_to_weight[40] = {
        88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916,
        9548,  7620,  6100,  4904,  3906,  3121,  2501,  1991,  1586,  1277,
        1024,  820,   655,   526,   423,   335,   272,   215,   172,   137,
        110,   87,    70,    56,    45,    36,    29,    23,    18,    15,
};

uint32_t clua_prio_weight(int priority)
{
        if (priority < -20)
                priority = -20;
        if (priority > 19)
                priority = 19;
        return prio_to_weight[priority + 20];
}

#define STAT_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)
#define STAT_ADD(field, v) STAT_SET(field, (field) + (v))

/* ---- the host ---------------------------------------------------------------- */

static bool app_less(const void *x, const void *y);
static size_t *app_pos(void *e);
static bool timer_less(const void *x, const void *y);
static size_t *timer_pos(void *e);

int clua_host_new(const CLuaHostOptions *o, CLuaHost **ret)
{
        CLuaHost *h;
        int r;

        if (o->n_apps == 0 || o->n_apps > CLUA_HOST_APPS_MAX ||
            (o->policy != CLUA_SCHED_FAIR && o->policy != CLUA_SCHED_PRIORITY &&
             o->policy != CLUA_SCHED_ROUND_ROBIN) ||
            o->slice_ns > 1000000000u)
                return -EINVAL;
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->opt = *o;
        if (!h->opt.slice_ns)
                h->opt.slice_ns = CLUA_SLICE_DEFAULT_NS;
        /* Apps sharing the thread: one that cannot be preempted is ended after
         * CLUA_NOPREEMPT_NS; alone, it only delays itself. */
        h->nopreempt_ns = o->n_apps > 1 ? CLUA_NOPREEMPT_NS : 0;
        h->epfd = -1;
        h->apps = calloc(o->n_apps, sizeof(*h->apps));
        if (!h->apps) {
                r = -ENOMEM;
                goto fail;
        }
        h->cap_apps = o->n_apps;
        h->runs = calloc(o->n_apps, sizeof(*h->runs));
        if (!h->runs) {
                r = -ENOMEM;
                goto fail;
        }
        h->stats_size = clua_stats_size(o->n_apps);
        if (o->stats_fd >= 0) {
                struct stat st;
                void *p;

                if (fstat(o->stats_fd, &st) < 0) {
                        r = -errno;
                        goto fail;
                }
                if ((uint64_t)st.st_size < h->stats_size) {
                        r = -EINVAL;
                        goto fail;
                }
                p = mmap(NULL, h->stats_size, PROT_READ | PROT_WRITE, MAP_SHARED, o->stats_fd, 0);
                if (p == MAP_FAILED) {
                        r = -errno;
                        goto fail;
                }
                h->stats = p;
        } else {
                h->stats = calloc(1, h->stats_size);
                if (!h->stats) {
                        r = -ENOMEM;
                        goto fail;
                }
                h->own_stats = true;
        }
        h->app_stats = (CLuaStatsApp *)(h->stats + 1);
        h->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (h->epfd < 0) {
                r = -errno;
                goto fail;
        }
        if (o->control) {
                /* The channel's events carry the host itself: an app's carry the app. */
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = h};

                if (o->control_fd < 0 ||
                    epoll_ctl(h->epfd, EPOLL_CTL_ADD, o->control_fd, &ev) < 0) {
                        r = o->control_fd < 0 ? -EINVAL : -errno;
                        goto fail;
                }
                h->ctl_open = true;
        }
        r = clua_watchdog_init(&h->watchdog, clua_env_watchdog_handler, h);
        if (r < 0)
                goto fail;
        if (h->nopreempt_ns) {
                r = clua_watchdog_init_clock(&h->wall, CLOCK_MONOTONIC, clua_env_wall_handler, h);
                if (r < 0)
                        goto fail;
        }
        h->run_heap = (CLuaHeap){.less = app_less, .pos = app_pos};
        h->timer_heap = (CLuaHeap){.less = timer_less, .pos = timer_pos};
        h->cpu0 = clua_thread_cpu_ns();
        STAT_SET(h->stats->version, CLUA_STATS_VERSION);
        /* Every slot's record is there from the start (a join fills a free one). */
        STAT_SET(h->stats->n_apps, h->opt.n_apps);
        STAT_SET(h->stats->policy, (uint32_t)h->opt.policy);
        STAT_SET(h->stats->slice_ns, h->opt.slice_ns);
        STAT_SET(h->stats->magic, CLUA_STATS_MAGIC);
        *ret = h;
        return 0;
fail:
        clua_host_free(h);
        return r;
}

static void timer_heap_remove(CLuaHost *h, CLuaTimer *t);
static void end_app(CLuaApp *app, int fault, const char *msg);

void clua_task_free(CLuaTask *t)
{
        if (!t)
                return;
        if (t->app->L && t->ref != LUA_NOREF)
                luaL_unref(t->app->L, LUA_REGISTRYINDEX, t->ref);
        if (t->app->n_tasks)
                t->app->n_tasks--;
        free(t);
}

static void work_free_in(CLuaApp *app, CLuaWork *w)
{
        if (!w)
                return;
        app->alloc.used -= w->charged;
        app->queued_bytes -= w->charged;
        if (w->kind == CLUA_WORK_RESUME)
                clua_task_free(w->task);
        if (w->owns_ref && app->L)
                luaL_unref(app->L, LUA_REGISTRYINDEX, w->fn_ref);
        clua_work_free(w);
}

void clua_work_free(CLuaWork *w)
{
        /* A work never queued holds no task and no owned ref. */
        if (!w)
                return;
        free(w->topic);
        free(w->sender);
        free(w->data);
        free(w->content_type);
        for (int i = 0; i < w->n_args; i++)
                free(w->args[i].s);
        free(w);
}

/* Frees everything of app but the struct: its queue, timers, channel, state. */
static void app_release(CLuaApp *app)
{
        CLuaWork *w;

        while ((w = app->work_head)) {
                app->work_head = w->next;
                work_free_in(app, w);
        }
        app->work_tail = NULL;
        app->n_work = 0;
        while (app->timers) {
                CLuaTimer *t = app->timers;

                app->timers = t->next;
                timer_heap_remove(app->host, t);
                if (t->owner)
                        *t->owner = NULL;
                free(t);
        }
        app->n_timers = 0;
        clua_kernel_close(app);
        if (app->current) {
                clua_task_free(app->current);
                app->current = NULL;
        }
        if (app->L) {
                /* Finalizers (a database's close) free memory charged to the app. */
                CLuaAlloc *saved = clua_alloc_current;

                clua_alloc_current = &app->alloc;
                lua_close(app->L);
                clua_alloc_current = saved;
                app->L = NULL;
                app->ipc = NULL; /* it lived in the state */
        }
        if (app->out_fd > 2)
                close(app->out_fd);
        if (app->err_fd > 2 && app->err_fd != app->out_fd)
                close(app->err_fd);
        app->out_fd = app->err_fd = -1;
}

static void app_free(CLuaApp *app);

void clua_host_free(CLuaHost *h)
{
        if (!h)
                return;
        /* Every state closed first: a block of C library memory is charged to
         * the CLuaAlloc in its app, which must outlive it (alloc.h). */
        for (uint32_t i = 0; i < h->n_apps; i++)
                if (h->apps[i])
                        app_release(h->apps[i]);
        for (uint32_t i = 0; i < h->n_apps; i++) {
                CLuaApp *app = h->apps[i];

                if (app)
                        app_free(app);
        }
        clua_env_spare_free(h->spare);
        free(h->apps);
        free(h->runs);
        clua_heap_done(&h->run_heap);
        clua_heap_done(&h->timer_heap);
        clua_watchdog_done(&h->watchdog);
        clua_watchdog_done(&h->wall);
        if (h->epfd >= 0)
                close(h->epfd);
        if (h->own_stats)
                free(h->stats);
        else if (h->stats)
                munmap(h->stats, h->stats_size);
        free(h);
}

typedef struct AddCtx {
        CLuaApp *app;
        const char *data;
} AddCtx;

/* Per-state settings of the modules; protected (they allocate). */
static int add_settings_p(lua_State *L)
{
        AddCtx *c = lua_touserdata(L, 1);
        int r;

        if (c->app->err_fd != 2)
                (void)cella_lua_set_log_fd(L, c->app->err_fd);
        if (c->data) {
                r = cella_lua_set_data_dir(L, c->app->data_fd, c->data);
                if (r < 0)
                        return luaL_error(L, "%s: %s", c->data, strerror(-r));
        }
        return 0;
}

/* Adds an app in slot index (h->n_apps: a new one; else a free slot). */
static int add_at(CLuaHost *h, uint32_t index, const CLuaAppSpec *spec, CLuaApp **ret)
{
        CLuaApp *app;
        AddCtx c;
        int r;

        if (spec->priority < -20 || spec->priority > 19)
                return -EINVAL;
        app = calloc(1, sizeof(*app));
        if (!app)
                return -ENOMEM;
        app->host = h;
        app->index = index;
        app->opt = spec->opt;
        app->priority = spec->priority;
        app->weight = clua_prio_weight(spec->priority);
        app->on_message_ref = app->on_revoke_ref = app->on_restart_ref = app->gc_ref = LUA_NOREF;
        app->on_trim_ref = LUA_NOREF;
        app->channel_fd = spec->channel_fd;
        app->out_fd = spec->log_fd >= 0 ? spec->log_fd : 1;
        app->err_fd = spec->log_fd >= 0 ? spec->log_fd : 2;
        /* A log pipe of its own (packed mode): non-blocking, so an app whose log pipe
         * is full loses output (print, cella.log drop what does not fit) instead
         * of stopping every app of the host until the reader catches up. */
        if (spec->log_fd >= 0) {
                struct stat st;
                int fl = fcntl(spec->log_fd, F_GETFL);

                if (fl >= 0 && fstat(spec->log_fd, &st) == 0 &&
                    (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
                        (void)fcntl(spec->log_fd, F_SETFL, fl | O_NONBLOCK);
        }
        app->data_fd = -1;
        app->root_fd = -1;
        app->id = strdup(spec->id ?: "");
        app->stats = &h->app_stats[app->index];
        h->apps[index] = app; /* owned by the host from here */
        if (index >= h->n_apps)
                h->n_apps = index + 1;
        if (!app->id)
                return -ENOMEM;
        /* A join takes the state made ahead (poll_events()), if there is one. */
        r = clua_env_new_from_spare(app, &h->spare);
        if (r < 0)
                return r;
        app->alloc.soft_stop_ns = &h->soft_stop_ns;
        if (spec->data) {
                app->data_fd = open(spec->data, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (app->data_fd < 0)
                        return -errno;
        }
        c = (AddCtx){.app = app, .data = spec->data};
        lua_pushcfunction(app->L, add_settings_p);
        lua_pushlightuserdata(app->L, &c);
        if (lua_pcall(app->L, 1, 0, 0) != LUA_OK) {
                lua_pop(app->L, 1);
                return -ENOMEM;
        }
        app->state = CLUA_APP_STARTING;
        STAT_SET(app->stats->state, CLUA_APP_STARTING);
        STAT_SET(app->stats->priority, app->priority);
        STAT_SET(app->stats->base_priority, app->priority);
        STAT_SET(app->stats->weight, app->weight);
        STAT_SET(app->stats->memory_bytes, app->alloc.used);
        STAT_SET(app->stats->memory_peak_bytes, app->alloc.peak);
        h->n_alive++;
        *ret = app;
        return 0;
}

int clua_host_add(CLuaHost *h, const CLuaAppSpec *spec, CLuaApp **ret)
{
        if (h->n_apps >= h->cap_apps)
                return -E2BIG;
        return add_at(h, h->n_apps, spec, ret);
}

/* Frees what is left of an app that ended (app_release() freed its state). */
static void app_free(CLuaApp *app)
{
        if (app->data_fd >= 0)
                close(app->data_fd);
        if (app->root_fd >= 0)
                close(app->root_fd);
        free(app->id);
        free(app);
}

/* Sets slot index's stats record to a new run: counters zero, run last (release). */
static void stats_reset(CLuaHost *h, uint32_t index, uint32_t run)
{
        CLuaStatsApp *st = &h->app_stats[index];

        STAT_SET(st->state, CLUA_APP_STARTING);
        STAT_SET(st->fault, 0);
        STAT_SET(st->slices, 0);
        STAT_SET(st->preemptions, 0);
        STAT_SET(st->yields, 0);
        STAT_SET(st->callbacks, 0);
        STAT_SET(st->cpu_ns, 0);
        STAT_SET(st->vruntime_ns, 0);
        STAT_SET(st->memory_bytes, 0);
        STAT_SET(st->cpu_class, CLUA_CPU_CLASS_NONE);
        STAT_SET(st->memory_peak_bytes, 0);
        __atomic_store_n(&st->run, (uint64_t)run, __ATOMIC_RELEASE);
}

int clua_host_join(CLuaHost *h, uint32_t index, uint32_t run, const CLuaAppSpec *spec,
                   CLuaApp **ret)
{
        CLuaApp *app = NULL;
        int r;

        r = index >= h->cap_apps                                            ? -ERANGE
            : index < h->n_apps && h->apps[index] && !h->apps[index]->ended ? -EBUSY
                                                                            : 0;
        if (r < 0) {
                if (spec->channel_fd >= 0)
                        close(spec->channel_fd);
                if (spec->log_fd >= 0)
                        close(spec->log_fd);
                return r;
        }
        if (index < h->n_apps && h->apps[index]) {
                /* Not the running app, nor in a run queue or the timer heap: it ended
                 * (end_app()); h->last may still name it, for a count only. */
                if (h->last == h->apps[index])
                        h->last = NULL;
                app_free(h->apps[index]);
                h->apps[index] = NULL;
        }
        h->runs[index] = run;
        stats_reset(h, index, run);
        r = add_at(h, index, spec, &app);
        if (r < 0) {
                /* Like clua_host_add()'s failures: what was made is the host's; the
                 * app ends, its record FAILED. A failure before the app existed
                 * leaves its fds to us. */
                app = index < h->n_apps ? h->apps[index] : NULL;
                if (app) {
                        /* Never counted alive: released here, not by end_app(). */
                        app->ended = true;
                        app_release(app);
                        STAT_SET(h->app_stats[index].fault, CLUA_EXIT_INTERNAL);
                        STAT_SET(h->app_stats[index].state, CLUA_APP_FAILED);
                } else {
                        if (spec->channel_fd >= 0)
                                close(spec->channel_fd);
                        if (spec->log_fd >= 0)
                                close(spec->log_fd);
                        STAT_SET(h->app_stats[index].fault, CLUA_EXIT_INTERNAL);
                        STAT_SET(h->app_stats[index].state, CLUA_APP_FAILED);
                }
                return r;
        }
        *ret = app;
        return 0;
}

int clua_host_stop_app(CLuaHost *h, uint32_t index, uint32_t run)
{
        CLuaApp *app = index < h->n_apps ? h->apps[index] : NULL;

        if (!app || app->ended || h->runs[index] != run || h->running == app)
                return -ESRCH;
        end_app(app, 0, NULL);
        return 0;
}

/* ---- run queues --------------------------------------------------------------- */

static bool app_less(const void *x, const void *y)
{
        const CLuaApp *a = x, *b = y;

        return a->vruntime_ns < b->vruntime_ns ||
               (a->vruntime_ns == b->vruntime_ns && a->index < b->index);
}

static size_t *app_pos(void *e)
{
        return &((CLuaApp *)e)->heap_idx;
}

/* Makes app ready (if it is not queued or running). Returns 0 or -ENOMEM. */
static int sched_enqueue(CLuaHost *h, CLuaApp *app)
{
        if (app->queued || app->ended || app == h->running)
                return 0;
        switch (h->opt.policy) {
        case CLUA_SCHED_ROUND_ROBIN:
                app->rq_next = NULL;
                if (h->rr_tail)
                        h->rr_tail->rq_next = app;
                else
                        h->rr_head = app;
                h->rr_tail = app;
                break;
        case CLUA_SCHED_PRIORITY: {
                int l = app->priority + 20;

                app->rq_next = NULL;
                if (h->prio_tail[l])
                        h->prio_tail[l]->rq_next = app;
                else
                        h->prio_head[l] = app;
                h->prio_tail[l] = app;
                h->prio_mask |= 1ull << l;
                break;
        }
        case CLUA_SCHED_FAIR: {
                /* A waking app starts no earlier than one slice before the others
                 * (CFS place_entity): sleeping banks no CPU. */
                uint64_t floor =
                        h->min_vruntime > h->opt.slice_ns ? h->min_vruntime - h->opt.slice_ns : 0;

                if (app->vruntime_ns < floor)
                        app->vruntime_ns = floor;
                if (clua_heap_push(&h->run_heap, app) < 0)
                        return -ENOMEM;
                break;
        }
        }
        app->queued = true;
        app->state = CLUA_APP_READY;
        STAT_SET(app->stats->state, CLUA_APP_READY);
        return 0;
}

/* Takes the next app to run off the run queue, or NULL. */
static CLuaApp *sched_pick(CLuaHost *h)
{
        CLuaApp *app = NULL;

        switch (h->opt.policy) {
        case CLUA_SCHED_ROUND_ROBIN:
                app = h->rr_head;
                if (app) {
                        h->rr_head = app->rq_next;
                        if (!h->rr_head)
                                h->rr_tail = NULL;
                }
                break;
        case CLUA_SCHED_PRIORITY:
                if (h->prio_mask) {
                        int l = __builtin_ctzll(h->prio_mask);

                        app = h->prio_head[l];
                        h->prio_head[l] = app->rq_next;
                        if (!h->prio_head[l]) {
                                h->prio_tail[l] = NULL;
                                h->prio_mask &= ~(1ull << l);
                        }
                }
                break;
        case CLUA_SCHED_FAIR:
                app = clua_heap_top(&h->run_heap);
                if (app) {
                        clua_heap_remove(&h->run_heap, app);
                        if (app->vruntime_ns > h->min_vruntime)
                                h->min_vruntime = app->vruntime_ns;
                }
                break;
        }
        if (app) {
                app->queued = false;
                app->rq_next = NULL;
        }
        return app;
}

/* Removes a queued app from the run queue (it ended while ready). */
static void sched_remove(CLuaHost *h, CLuaApp *app)
{
        if (!app->queued)
                return;
        if (h->opt.policy == CLUA_SCHED_FAIR) {
                clua_heap_remove(&h->run_heap, app);
        } else {
                CLuaApp **head, **tail, *prev = NULL;
                int l = app->priority + 20;

                if (h->opt.policy == CLUA_SCHED_ROUND_ROBIN) {
                        head = &h->rr_head;
                        tail = &h->rr_tail;
                } else {
                        head = &h->prio_head[l];
                        tail = &h->prio_tail[l];
                }
                for (CLuaApp *a = *head; a; prev = a, a = a->rq_next) {
                        if (a != app)
                                continue;
                        if (prev)
                                prev->rq_next = a->rq_next;
                        else
                                *head = a->rq_next;
                        if (*tail == a)
                                *tail = prev;
                        break;
                }
                if (h->opt.policy == CLUA_SCHED_PRIORITY && !h->prio_head[l])
                        h->prio_mask &= ~(1ull << l);
        }
        app->queued = false;
}

int clua_host_set_priority(CLuaHost *h, uint32_t index, uint32_t run, uint32_t cpu_class,
                           int priority)
{
        CLuaApp *app = index < h->n_apps ? h->apps[index] : NULL;
        bool queued;

        if (priority < -20 || priority > 19 || cpu_class >= _CLUA_CPU_CLASS_MAX)
                return -EINVAL;
        if (!app || app->ended || h->runs[index] != run || h->running == app)
                return -ESRCH;
        /* Out of its queue and back in: the priority scheduler queues by level. */
        queued = app->queued;
        sched_remove(h, app);
        app->priority = priority;
        app->weight = clua_prio_weight(priority);
        STAT_SET(app->stats->cpu_class, cpu_class);
        STAT_SET(app->stats->priority, app->priority);
        STAT_SET(app->stats->weight, app->weight);
        if (queued)
                return sched_enqueue(h, app);
        return 0;
}

/* ---- work --------------------------------------------------------------------- */

static void queue_work(CLuaApp *app, CLuaWork *w, bool front)
{
        if (front) {
                w->next = app->work_head;
                app->work_head = w;
                if (!app->work_tail)
                        app->work_tail = w;
        } else {
                w->next = NULL;
                if (app->work_tail)
                        app->work_tail->next = w;
                else
                        app->work_head = w;
                app->work_tail = w;
        }
        app->n_work++;
}

void clua_host_retarget(CLuaApp *app, int old_ref, int new_ref)
{
        CLuaWork **p = &app->work_head, *prev = NULL;

        while (*p) {
                CLuaWork *w = *p;

                if (w->kind != CLUA_WORK_CALL || w->owns_ref || w->fn_ref != old_ref) {
                        prev = w;
                        p = &w->next;
                        continue;
                }
                if (new_ref != LUA_NOREF) {
                        w->fn_ref = new_ref;
                        prev = w;
                        p = &w->next;
                        continue;
                }
                *p = w->next;
                if (app->work_tail == w)
                        app->work_tail = prev;
                app->n_work--;
                work_free_in(app, w);
        }
}

/* Bytes of a work item and its strings (what a queued event holds in memory). */
static size_t work_bytes(const CLuaWork *w)
{
        size_t n = sizeof(*w) + w->data_len;

        n += w->topic ? strlen(w->topic) + 1 : 0;
        n += w->sender ? strlen(w->sender) + 1 : 0;
        n += w->content_type ? strlen(w->content_type) + 1 : 0;
        for (int i = 0; i < w->n_args; i++)
                n += w->args[i].s ? w->args[i].len + 1 : 0;
        return n;
}

int clua_host_queue(CLuaApp *app, CLuaWork *w)
{
        CLuaAlloc *a = &app->alloc;
        size_t n = work_bytes(w);

        /* Events wait in the host's memory: they count against the app's cap, so
         * a flood of bus messages for a slow app is dropped, not the group's
         * memory. They may fill half of it: the app needs room to run them. */
        if (app->ended || app->n_work >= CLUA_WORK_MAX || a->used > a->cap ||
            n > a->cap - a->used || n > a->cap / 2 - app->queued_bytes) {
                if (!app->ended && app->dropped++ == 0)
                        clua_app_message(app,
                                         "event queue full (%u events, or its memory cap): "
                                         "events dropped",
                                         CLUA_WORK_MAX);
                work_free_in(app, w);
                return -ENOBUFS;
        }
        w->charged = n;
        app->queued_bytes += n;
        a->used += n;
        if (a->used > a->peak)
                a->peak = a->used;
        queue_work(app, w, false);
        return sched_enqueue(app->host, app);
}

static int queue_resume(CLuaApp *app, CLuaTask *t, int nargs, bool front)
{
        CLuaWork *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        w->kind = CLUA_WORK_RESUME;
        w->task = t;
        w->n_args = 0;
        w->fn_ref = nargs; /* RESUME: the arguments already on the task's stack */
        queue_work(app, w, front);
        return sched_enqueue(app->host, app);
}

int clua_host_wake(CLuaWait *wait)
{
        CLuaTask *t = wait->task;

        wait->done = true;
        if (!t)
                return 0;
        return queue_resume(t->app, t, 0, false);
}

typedef struct TaskCtx {
        CLuaApp *app;
        CLuaWork *w;
        CLuaTask *t;
        int nargs;
} TaskCtx;

static void push_arg(lua_State *co, const CLuaArg *a)
{
        switch (a->kind) {
        case CLUA_ARG_INT:
                lua_pushinteger(co, a->i);
                break;
        case CLUA_ARG_STR:
                lua_pushlstring(co, a->s ?: "", a->len);
                break;
        case CLUA_ARG_BOOL:
                lua_pushboolean(co, a->i != 0);
                break;
        default:
                lua_pushnil(co);
                break;
        }
}

/* Makes the task of a CALL work: a thread with the function and its arguments.
 * Protected: it allocates in the app's state. */
static int new_task_p(lua_State *L)
{
        TaskCtx *c = lua_touserdata(L, 1);
        CLuaWork *w = c->w;
        lua_State *co = lua_newthread(L);

        clua_env_mark_task(co);
        c->t->co = co;
        c->t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_rawgeti(co, LUA_REGISTRYINDEX, w->fn_ref);
        c->nargs = 0;
        if (w->is_msg) {
                lua_createtable(co, 0, 5);
                lua_pushstring(co, w->topic ?: "");
                lua_setfield(co, -2, "topic");
                lua_pushstring(co, w->sender ?: "");
                lua_setfield(co, -2, "sender");
                lua_pushlstring(co, w->data ?: "", w->data_len);
                lua_setfield(co, -2, "data");
                lua_pushstring(co, w->content_type ?: "");
                lua_setfield(co, -2, "content_type");
                if (w->reply_token) {
                        lua_pushboolean(co, 1);
                        lua_setfield(co, -2, "request");
                }
                c->nargs++;
        }
        for (int i = 0; i < w->n_args; i++, c->nargs++)
                push_arg(co, &w->args[i]);
        return 0;
}

int clua_host_start(CLuaApp *app, int nargs, char **argv)
{
        lua_State *L = app->L;
        CLuaTask *t = calloc(1, sizeof(*t));
        lua_State *co;

        if (!t) {
                lua_pop(L, 1);
                return -ENOMEM;
        }
        /* the function is on top of L; the thread and its ref are made in a pcall */
        if (!lua_checkstack(L, 4)) {
                free(t);
                lua_pop(L, 1);
                return -ENOMEM;
        }
        co = lua_newthread(L); /* a fresh state: these allocations fit */
        clua_env_mark_task(co);
        t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
        t->co = co;
        t->app = app;
        t->is_main = true;
        lua_xmove(L, co, 1);
        if (!lua_checkstack(co, nargs + 1)) {
                luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
                free(t);
                return -ENOMEM;
        }
        for (int i = 0; i < nargs; i++)
                lua_pushstring(co, argv[i]);
        app->n_tasks++;
        if (queue_resume(app, t, nargs, false) < 0) {
                clua_task_free(t);
                return -ENOMEM;
        }
        return 0;
}

/* ---- running a slice ------------------------------------------------------------- */

static void app_message(CLuaApp *app, const char *msg)
{
        bool id = app->host->opt.n_apps > 1 && *app->id;

        dprintf(app->err_fd, "cella-lua: %s%s%s\n", id ? app->id : "", id ? ": " : "", msg);
}

void clua_app_message(CLuaApp *app, const char *fmt, ...)
{
        char buf[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        app_message(app, buf);
}

/* Whether app still has something to wait for (docs/lua-api.md: it stays alive). */
static bool app_has_sources(CLuaApp *app)
{
        return app->n_work || app->n_tasks || app->n_timers || app->n_subs ||
               app->on_message_ref != LUA_NOREF ||
               (app->ipc && app->ipc->on_offer_ref != LUA_NOREF);
}

static void end_app(CLuaApp *app, int fault, const char *msg)
{
        CLuaHost *h = app->host;

        if (app->ended)
                return;
        if (msg)
                app_message(app, msg);
        sched_remove(h, app);
        app->ended = true;
        app->state = fault ? CLUA_APP_FAILED : CLUA_APP_EXITED;
        STAT_SET(app->stats->fault, (uint32_t)fault);
        STAT_SET(app->stats->memory_bytes, 0);
        STAT_SET(app->stats->state, app->state);
        if (!app->main_done) {
                app->main_done = true;
                STAT_ADD(h->stats->started, 1);
        }
        if (fault && !h->first_fault)
                h->first_fault = fault;
        app_release(app);
        h->n_alive--;
}

static int fault_code(CLuaFault f)
{
        switch (f) {
        case CLUA_MEMORY:
                return CLUA_EXIT_MEMORY;
        case CLUA_CPU_CALLBACK:
        case CLUA_CPU_TOTAL:
        case CLUA_CPU_SLICE:
                return CLUA_EXIT_CPU;
        default:
                return CLUA_EXIT_ERROR;
        }
}

void clua_host_app_failed(CLuaApp *app, int code)
{
        end_app(app, code, NULL);
}

/* The app is doomed: ends it with its fault (or app.exit's code). */
static void end_doomed(CLuaApp *app)
{
        char buf[160];

        if (app->doomed == CLUA_EXITING) {
                int code = app->exit_code;

                end_app(app, 0, NULL);
                if (code && !app->host->first_fault)
                        app->host->first_fault = code;
                STAT_SET(app->stats->fault, (uint32_t)code);
                if (code) {
                        app->state = CLUA_APP_FAILED;
                        STAT_SET(app->stats->state, CLUA_APP_FAILED);
                }
                return;
        }
        end_app(app, fault_code(app->doomed), clua_fault_message(app, buf, sizeof(buf)));
}

static void finish_task(CLuaApp *app, CLuaTask *t)
{
        if (t->is_main && !app->main_done) {
                app->main_done = true;
                STAT_ADD(app->host->stats->started, 1);
        }
        clua_task_free(t);
}

/*
 * Calls the function below nargs arguments on the app's main thread, protected
 * and under the watchdog (what is left of a callback's budget, no slice): the
 * host's own work in the app's state (making a task, a traceback) allocates, so
 * it may run a GC step, which is the app's CPU and, for a pathological heap,
 * long. Returns lua_pcall's status (LUA_ERRMEM when the state is full).
 */
static int guarded_pcall(CLuaApp *app, int nargs, int nresults)
{
        CLuaHost *h = app->host;
        int bfor, status;
        uint64_t budget = clua_budget_left(app, 0, &bfor), t0;

        (void)clua_env_arm(app, 0, budget ?: CLUA_PREEMPT_RETRY_NS, bfor);
        app->running = app->L;
        t0 = clua_thread_cpu_ns();
        status = lua_pcall(app->L, nargs, nresults, 0);
        (void)clua_watchdog_disarm(&h->watchdog);
        h->running = NULL;
        app->cpu_used_ns += clua_thread_cpu_ns() - t0;
        return status;
}

/* The traceback of a task that failed (its thread and message: light userdata
 * arguments), pushed: protected, as it allocates. */
static int traceback_p(lua_State *L)
{
        lua_State *co = lua_touserdata(L, 1);
        const char *m = lua_tostring(co, -1);

        luaL_traceback(L, co, m ?: "(error object is not a string)", 0);
        return 1;
}

/* Runs the app's next work for one slice at most. */
static void run_slice(CLuaHost *h, CLuaApp *app)
{
        CLuaWork *w = app->work_head;
        CLuaTask *t;
        uint64_t budget, slice = h->opt.slice_ns, t0, dt;
        int nargs, status, nres = 0, bfor, r;

        app->work_head = w->next;
        if (!app->work_head)
                app->work_tail = NULL;
        app->n_work--;
        if (w->kind == CLUA_WORK_RESUME) {
                t = w->task;
                nargs = w->fn_ref;
                w->task = NULL;
                work_free_in(app, w);
        } else {
                TaskCtx c = {.app = app, .w = w};

                if (w->timer)
                        w->timer->pending = false;
                if (w->is_gc)
                        app->gc_queued = false;

                t = calloc(1, sizeof(*t));
                if (!t) {
                        work_free_in(app, w);
                        end_app(app, CLUA_EXIT_MEMORY, "out of memory");
                        return;
                }
                t->app = app;
                t->ref = LUA_NOREF;
                t->reply_token = w->reply_token;
                c.t = t;
                app->n_tasks++;
                lua_pushcfunction(app->L, new_task_p);
                lua_pushlightuserdata(app->L, &c);
                status = guarded_pcall(app, 1, 0);
                work_free_in(app, w);
                if (status != LUA_OK || app->doomed) {
                        if (status != LUA_OK)
                                lua_pop(app->L, 1);
                        clua_task_free(t);
                        if (!app->doomed)
                                app->doomed = CLUA_MEMORY;
                        end_doomed(app);
                        return;
                }
                nargs = c.nargs;
        }

        if (h->last != app)
                STAT_ADD(h->stats->switches, 1);
        h->last = app;
        app->current = t;
        app->state = CLUA_APP_RUNNING;
        STAT_SET(app->stats->state, CLUA_APP_RUNNING);
        budget = clua_budget_left(app, t->cpu_ns, &bfor);
        if (app->doomed || budget == 0) {
                if (!app->doomed)
                        app->doomed = bfor;
                app->current = NULL;
                clua_task_free(t);
                end_doomed(app);
                return;
        }
        app->host_yield = CLUA_YIELD_NONE;
        app->running = t->co;
        t0 = clua_thread_cpu_ns();
        r = clua_env_arm(app, slice, budget, bfor);
        if (r >= 0 && h->nopreempt_ns)
                r = clua_watchdog_arm(&h->wall, slice * CLUA_SLICE_WALL_FACTOR, 0);
        if (r < 0) {
                app->current = NULL;
                clua_task_free(t);
                end_app(app, CLUA_EXIT_INTERNAL, "cannot arm the CPU watchdog");
                return;
        }
        clua_alloc_current = &app->alloc;
        status = lua_resume(t->co, app->L, nargs, &nres);
        clua_alloc_current = NULL;
        (void)clua_watchdog_disarm(&h->wall);
        (void)clua_watchdog_disarm(&h->watchdog);
        h->running = NULL;
        app->running = app->L;
        dt = clua_thread_cpu_ns() - t0;
        app->current = NULL;
        t->cpu_ns += dt;
        app->cpu_used_ns += dt;
        if (h->opt.policy == CLUA_SCHED_FAIR)
                app->vruntime_ns += dt * 1024 / app->weight;
        STAT_ADD(h->stats->slices, 1);
        STAT_ADD(app->stats->slices, 1);
        STAT_SET(app->stats->cpu_ns, app->cpu_used_ns);
        STAT_SET(app->stats->vruntime_ns, app->vruntime_ns);
        STAT_SET(h->stats->cpu_ns, clua_thread_cpu_ns() - h->cpu0);

        if (status == LUA_YIELD && !app->doomed) {
                int why = app->host_yield;

                app->host_yield = CLUA_YIELD_NONE;
                lua_pop(t->co, nres);
                if (why == CLUA_YIELD_PREEMPT) {
                        STAT_ADD(h->stats->preemptions, 1);
                        STAT_ADD(app->stats->preemptions, 1);
                        if (queue_resume(app, t, 0, true) < 0) {
                                clua_task_free(t);
                                end_app(app, CLUA_EXIT_MEMORY, "out of memory");
                                return;
                        }
                } else {
                        STAT_ADD(h->stats->yields, 1);
                        STAT_ADD(app->stats->yields, 1);
                        if (why == CLUA_YIELD_WAIT) {
                                if (t->is_main && !app->main_done) {
                                        app->main_done = true;
                                        STAT_ADD(h->stats->started, 1);
                                }
                        } else if (queue_resume(app, t, 0, false) < 0) {
                                clua_task_free(t);
                                end_app(app, CLUA_EXIT_MEMORY, "out of memory");
                                return;
                        }
                }
        } else if (status == LUA_OK && !app->doomed) {
                STAT_ADD(h->stats->yields, 1);
                STAT_ADD(app->stats->yields, 1);
                STAT_ADD(app->stats->callbacks, 1);
                if (t->reply_token)
                        clua_bus_answer(app, t, nres, false);
                finish_task(app, t);
        } else {
                if (status == LUA_ERRMEM && !app->doomed)
                        app->doomed = CLUA_MEMORY;
                if (app->doomed) {
                        clua_task_free(t);
                        end_doomed(app);
                        return;
                }
                STAT_ADD(app->stats->callbacks, 1);
                if (t->reply_token) {
                        /* An error in a request handler is the answer, not the end. */
                        clua_bus_answer(app, t, 0, true);
                        finish_task(app, t);
                } else {
                        /* Protected: an app at its memory cap that raised an
                         * error must not make the traceback's allocation an
                         * unprotected error (a panic, ending the host). */
                        lua_pushcfunction(app->L, traceback_p);
                        lua_pushlightuserdata(app->L, t->co);
                        if (guarded_pcall(app, 1, 1) == LUA_OK)
                                app_message(app, lua_tostring(app->L, -1) ?: "error");
                        else
                                app_message(app, lua_type(t->co, -1) == LUA_TSTRING
                                                         ? lua_tostring(t->co, -1)
                                                         : "error (no memory for its traceback)");
                        lua_pop(app->L, 1);
                        clua_task_free(t);
                        end_app(app, CLUA_EXIT_ERROR, NULL);
                        return;
                }
        }
        clua_alloc_pace_gc(&app->alloc, app->L);
        STAT_SET(app->stats->memory_bytes, app->alloc.used);
        STAT_SET(app->stats->memory_peak_bytes, app->alloc.peak);
        if (app->n_work)
                (void)sched_enqueue(h, app);
        else if (app_has_sources(app)) {
                app->state = CLUA_APP_WAITING;
                STAT_SET(app->stats->state, CLUA_APP_WAITING);
        } else
                end_app(app, 0, NULL);
}

/* ---- timers -------------------------------------------------------------------- */

static bool timer_less(const void *x, const void *y)
{
        return ((const CLuaTimer *)x)->deadline_ns < ((const CLuaTimer *)y)->deadline_ns;
}

static size_t *timer_pos(void *e)
{
        return &((CLuaTimer *)e)->heap_idx;
}

static void timer_heap_remove(CLuaHost *h, CLuaTimer *t)
{
        clua_heap_remove(&h->timer_heap, t);
}

CLuaTimer *clua_timer_add(CLuaApp *app, uint64_t delay_ns, uint64_t interval_ns, int fn_ref,
                          CLuaWait *wait)
{
        CLuaHost *h = app->host;
        CLuaTimer *t;

        if (app->n_timers >= CLUA_TIMERS_MAX) {
                errno = EBUSY;
                return NULL;
        }
        t = calloc(1, sizeof(*t));
        if (!t) {
                errno = ENOMEM;
                return NULL;
        }
        t->app = app;
        t->id = ++app->next_timer_id;
        t->deadline_ns = now_monotonic_ns() + delay_ns;
        t->interval_ns = interval_ns;
        t->fn_ref = fn_ref;
        t->wait = wait;
        if (clua_heap_push(&h->timer_heap, t) < 0) {
                free(t);
                errno = ENOMEM;
                return NULL;
        }
        t->next = app->timers;
        app->timers = t;
        app->n_timers++;
        return t;
}

static void timer_unlink(CLuaApp *app, CLuaTimer *t)
{
        for (CLuaTimer **p = &app->timers; *p; p = &(*p)->next)
                if (*p == t) {
                        *p = t->next;
                        break;
                }
        app->n_timers--;
}

bool clua_timer_cancel(CLuaApp *app, uint64_t id)
{
        for (CLuaTimer *t = app->timers; t; t = t->next) {
                if (t->id != id || t->wait || t->cb)
                        continue;
                timer_heap_remove(app->host, t);
                timer_unlink(app, t);
                if (t->fn_ref != LUA_NOREF) {
                        /* a firing already queued goes with it */
                        clua_host_retarget(app, t->fn_ref, LUA_NOREF);
                        luaL_unref(app->L, LUA_REGISTRYINDEX, t->fn_ref);
                }
                free(t);
                return true;
        }
        return false;
}

void clua_timer_cancel_wait(CLuaApp *app, CLuaTimer *t)
{
        timer_heap_remove(app->host, t);
        timer_unlink(app, t);
        if (t->wait)
                t->wait->timer = NULL;
        free(t);
}

int clua_timer_add_cb(CLuaApp *app, uint64_t delay_ns, void (*cb)(void *), void *cb_data,
                      CLuaTimer **owner)
{
        CLuaTimer *t = clua_timer_add(app, delay_ns, 0, LUA_NOREF, NULL);

        if (!t)
                return -errno;
        t->cb = cb;
        t->cb_data = cb_data;
        t->owner = owner;
        if (owner)
                *owner = t;
        return 0;
}

void clua_timer_remove_cb(CLuaApp *app, CLuaTimer **owner)
{
        CLuaTimer *t = *owner;

        if (!t)
                return;
        *owner = NULL;
        timer_heap_remove(app->host, t);
        timer_unlink(app, t);
        free(t);
}

/* Fires the timers due at now. */
static void fire_timers(CLuaHost *h, uint64_t now)
{
        while (h->timer_heap.n &&
               ((CLuaTimer *)clua_heap_top(&h->timer_heap))->deadline_ns <= now) {
                CLuaTimer *t = clua_heap_top(&h->timer_heap);
                CLuaApp *app = t->app;
                CLuaWork *w;

                if (t->wait) {
                        CLuaWait *wait = t->wait;

                        timer_heap_remove(h, t);
                        timer_unlink(app, t);
                        free(t);
                        wait->timer = NULL;
                        (void)clua_host_wake(wait);
                        continue;
                }
                if (t->cb) {
                        void (*cb)(void *) = t->cb;
                        void *data = t->cb_data;
                        CLuaAlloc *saved = clua_alloc_current;

                        timer_heap_remove(h, t);
                        timer_unlink(app, t);
                        if (t->owner)
                                *t->owner = NULL;
                        free(t);
                        if (app->ended)
                                continue;
                        clua_alloc_current = &app->alloc;
                        cb(data);
                        clua_alloc_current = saved;
                        continue;
                }
                /* A periodic timer whose last call has not started yet is not
                 * queued again: behind by several periods, the app gets one call. */
                w = t->pending ? NULL : calloc(1, sizeof(*w));
                if (w) {
                        w->kind = CLUA_WORK_CALL;
                        w->fn_ref = t->fn_ref;
                        w->n_args = 1;
                        w->args[0] = (CLuaArg){.kind = CLUA_ARG_INT, .i = (int64_t)t->id};
                        if (t->interval_ns) {
                                w->timer = t;
                                t->pending = true;
                        }
                }
                if (t->interval_ns) {
                        /* Behind by several intervals: one call, not a burst. */
                        t->deadline_ns += t->interval_ns;
                        if (t->deadline_ns <= now)
                                t->deadline_ns = now + t->interval_ns;
                        clua_heap_fix(&h->timer_heap, t);
                } else {
                        timer_heap_remove(h, t);
                        timer_unlink(app, t);
                        if (w)
                                w->owns_ref = true;
                        else
                                luaL_unref(app->L, LUA_REGISTRYINDEX, t->fn_ref);
                        free(t);
                }
                if (w) {
                        CLuaTimer *pending = w->timer; /* w is freed if dropped */

                        if (clua_host_queue(app, w) < 0 && pending)
                                pending->pending = false;
                }
        }
}

/* ---- the loop ------------------------------------------------------------------- */

static bool any_ready(CLuaHost *h)
{
        return h->rr_head || h->prio_mask || h->run_heap.n;
}

/* Stops watching the control channel (its reading side shut: a send fails). */
static void control_close(CLuaHost *h)
{
        if (!h->ctl_open)
                return;
        (void)epoll_ctl(h->epfd, EPOLL_CTL_DEL, h->opt.control_fd, NULL);
        (void)shutdown(h->opt.control_fd, SHUT_RD);
        h->ctl_open = false;
}

/* Takes what the control channel holds; closes it on its EOF or error. */
static void host_control(CLuaHost *h)
{
        if (h->ctl_open && h->opt.control(h, h->opt.control_userdata) < 0)
                control_close(h);
}

/* Waits for events (at most until the next timer, not at all if apps are ready)
 * and turns them into work. */
static int poll_events(CLuaHost *h)
{
        struct epoll_event ev[64];
        bool control = false;
        int timeout = 0, n;
        uint64_t now = now_monotonic_ns();

        fire_timers(h, now);
        if (!any_ready(h)) {
                if (h->timer_heap.n) {
                        uint64_t d = ((CLuaTimer *)clua_heap_top(&h->timer_heap))->deadline_ns;

                        timeout = d <= now ? 0 : (int)((d - now + 999999) / 1000000);
                } else
                        timeout = -1;
        }
        /* About to wait with nothing to run, in a host that takes joins: the next
         * join's Lua state is made now rather than on its path (a failure is
         * harmless: the join makes its own). */
        if (timeout != 0 && h->ctl_open && !h->spare)
                (void)clua_env_spare_new(&h->spare);
        n = epoll_wait(h->epfd, ev, 64, timeout);
        if (n < 0) {
                if (errno == EINTR)
                        return 0;
                return -errno;
        }
        /* First the fd watches of C modules (iowait.c, tagged with bit 0): their
         * callbacks only wake tasks and drive libraries, and free no watch; the
         * apps' channels after them may end an app, which frees its watches. */
        for (int i = 0; i < n; i++) {
                CLuaFdWatch *fw;
                CLuaAlloc *saved;

                if (!(ev[i].data.u64 & 1u))
                        continue;
                fw = (CLuaFdWatch *)(uintptr_t)(ev[i].data.u64 & ~(uint64_t)1u);
                if (fw->app->ended || !fw->cb)
                        continue;
                saved = clua_alloc_current;
                clua_alloc_current = &fw->app->alloc;
                fw->cb(fw, ev[i].events);
                clua_alloc_current = saved;
        }
        for (int i = 0; i < n; i++) {
                CLuaApp *app = ev[i].data.ptr;

                if (ev[i].data.u64 & 1u)
                        continue;
                if (ev[i].data.ptr == h) {
                        control = true;
                        continue;
                }
                if (app->ended)
                        continue;
                if (clua_kernel_dispatch(app) < 0 && !app->ended && !app_has_sources(app) &&
                    !app->queued && h->running != app)
                        end_app(app, 0, NULL);
        }
        /* After the apps' events: a join frees an ended app's struct, which an
         * event of this batch may still name. */
        if (control)
                host_control(h);
        if (timeout != 0)
                fire_timers(h, now_monotonic_ns());
        return 0;
}

int clua_host_run(CLuaHost *h)
{
        int r;

        while (h->n_alive > 0 || h->ctl_open) {
                CLuaApp *app;

                if (h->n_alive == 0) {
                        /* No app left: what was sent before the channel closes is
                         * taken, then it closes (a later join fails with EPIPE);
                         * what came between is taken too. */
                        host_control(h);
                        if (h->n_alive == 0 && h->ctl_open) {
                                (void)shutdown(h->opt.control_fd, SHUT_RD);
                                host_control(h);
                                control_close(h);
                        }
                        continue;
                }
                r = poll_events(h);
                if (r < 0)
                        return r;
                app = sched_pick(h);
                if (!app) {
                        if (!h->timer_heap.n && !any_ready(h) && h->n_alive > 0) {
                                /* Only apps waiting on the kernel: the epoll wait
                                 * above blocks until a channel speaks. A channel
                                 * that broke ended its app's waits. */
                        }
                        continue;
                }
                if (!app->n_work) {
                        if (!app_has_sources(app))
                                end_app(app, 0, NULL);
                        continue;
                }
                run_slice(h, app);
        }
        return h->first_fault;
}
