/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel calls of cella-lua apps: each app's broker channel (libcella, linked
 * statically), waiting for replies by suspending the calling task, and kernel
 * events turned into callbacks (docs/lua-api.md "Callbacks and the event loop").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <lauxlib.h>

#include "base/time-util.h"
#include "wire/wire.h"
#include "lib/client.h"
#include "lua/host.h"

Cella *clua_kernel(lua_State *L, const char *fname)
{
        CLuaApp *app = clua_app_of(L);
        struct epoll_event ev = {.events = EPOLLIN};
        Cella *c;
        int r;

        if (app->cella && !app->channel_broken)
                return app->cella;
        if (app->channel_broken)
                luaL_error(L, "%s: the kernel channel is closed", fname);
        if (app->channel_fd < 0)
                luaL_error(L, "%s: no kernel channel (not running under cella)", fname);
        r = cella_open_fd(app->channel_fd, &c);
        if (r < 0)
                luaL_error(L, "%s: kernel channel: %s", fname, strerror(-r));
        app->channel_fd = -1;
        app->cella = c;
        (void)cella_on_event(c, NULL, NULL);
        ev.data.ptr = app;
        if (epoll_ctl(app->host->epfd, EPOLL_CTL_ADD, cella_fd(c), &ev) < 0) {
                app->channel_broken = true;
                luaL_error(L, "%s: epoll: %s", fname, strerror(errno));
        }
        return c;
}

int clua_kernel_error(lua_State *L, const char *fname, int err, const char *detail)
{
        if (detail && *detail)
                return luaL_error(L, "%s: %s: %s", fname, strerror(-err), detail);
        return luaL_error(L, "%s: %s", fname, strerror(-err));
}

const char *clua_check_str(lua_State *L, int i, size_t min_len, size_t max, size_t *ret_len)
{
        size_t len;
        const char *s = luaL_checklstring(L, i, &len);

        luaL_argcheck(L, len >= min_len && len <= max && strlen(s) == len, i,
                      len > max ? "too long" : "empty or contains NUL");
        if (ret_len)
                *ret_len = len;
        return s;
}

const char *clua_opt_str(lua_State *L, int i, size_t max)
{
        if (lua_isnoneornil(L, i))
                return "";
        return clua_check_str(L, i, 0, max, NULL);
}

int clua_kernel_call(lua_State *L, const char *fname, uint16_t opcode, const ProtobufCMessage *req,
                     int (*decode)(lua_State *, CellaReply *))
{
        CLuaApp *app = clua_app_of(L);
        Cella *c = clua_kernel(L, fname);
        uint64_t id;
        int r;

        r = client_call_async(c, opcode, req, clua_kernel_reply, app, &id);
        if (r == -EAGAIN || r == -EBUSY) {
                /* The socket's buffer or the request table is full: let the
                 * replies come in, then try once more. */
                (void)clua_kernel_dispatch(app);
                r = client_call_async(c, opcode, req, clua_kernel_reply, app, &id);
        }
        if (r < 0)
                return clua_kernel_error(L, fname, r, NULL);
        return clua_await(L, id, decode);
}

ProtobufCMessage *clua_kernel_unpack(lua_State *L, CellaReply *reply)
{
        const char *op = cella_opcode_name(reply->opcode);
        ProtobufCMessage *m = NULL;
        char name[64];
        int r;

        /* The opcode's name is the Lua function's: "bus.publish" -> cella.bus.publish */
        snprintf(name, sizeof(name), "cella.%s", op ?: "kernel call");

        if (reply->error)
                clua_kernel_error(L, name, reply->error, reply->error_message);
        r = client_reply_unpack(reply, &m);
        if (r < 0)
                clua_kernel_error(L, name, r, "bad reply");
        return m;
}

void clua_set_handler(lua_State *L, int *ref)
{
        CLuaApp *app = clua_app_of(L);
        int new_ref = lua_isnil(L, 1) ? LUA_NOREF : luaL_ref(L, LUA_REGISTRYINDEX);

        if (*ref != LUA_NOREF) {
                /* events queued for the old handler go to the new one */
                clua_host_retarget(app, *ref, new_ref);
                luaL_unref(L, LUA_REGISTRYINDEX, *ref);
        }
        *ref = new_ref;
}

/* One allocation: the struct, the body and the message. The fds move. */
static CellaReply *reply_copy(CellaReply *r)
{
        size_t ml = strlen(r->error_message ?: "");
        CellaReply *c = malloc(sizeof(*c) + r->body_len + ml + 1);
        char *p;

        if (!c)
                return NULL;
        *c = *r;
        p = (char *)(c + 1);
        if (r->body_len)
                memcpy(p, r->body, r->body_len);
        c->body = r->body ? p : NULL;
        p += r->body_len;
        memcpy(p, r->error_message ?: "", ml + 1);
        c->error_message = p;
        for (unsigned i = 0; i < r->n_fds; i++) {
                c->fds[i] = r->fds[i];
                r->fds[i] = -1;
        }
        return c;
}

static void reply_free(CellaReply *r)
{
        if (!r)
                return;
        for (unsigned i = 0; i < r->n_fds; i++)
                if (r->fds[i] >= 0)
                        close(r->fds[i]);
        free(r);
}

static void wait_unlink(CLuaWait *w)
{
        for (CLuaWait **p = &w->app->waits; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        return;
                }
}

void clua_kernel_reply(Cella *c, CellaReply *reply, void *userdata)
{
        CLuaApp *app = userdata;

        (void)c;
        for (CLuaWait *w = app->waits; w; w = w->next) {
                if (w->io || w->request_id != reply->request_id || w->done || w->reply)
                        continue;
                w->reply = reply_copy(reply);
                if (!w->reply) {
                        /* Out of memory: the waiter sees the error. */
                        static CellaReply enomem = {.error = -ENOMEM, .error_message = ""};

                        w->reply = malloc(sizeof(CellaReply));
                        if (w->reply)
                                *w->reply = enomem;
                }
                (void)clua_host_wake(w);
                return;
        }
}

typedef struct DecodeCtx {
        CLuaWait *w;
        int n;
} DecodeCtx;

static int decode_p(lua_State *L)
{
        DecodeCtx *d = lua_touserdata(L, -1);

        lua_pop(L, 1);
        d->n = d->w->decode(L, d->w->reply);
        return d->n;
}

/* Runs the wait's decode protected (the reply is freed either way), then frees
 * the wait and re-raises an error. */
static int finish_wait(lua_State *L, CLuaWait *w)
{
        DecodeCtx d = {.w = w};
        int top = lua_gettop(L), status;

        if (!lua_checkstack(L, top + 2))
                return clua_doom(L, CLUA_MEMORY);
        wait_unlink(w);
        if (w->task)
                w->task->wait = NULL;
        if (!w->decode) {
                free(w);
                return 0;
        }
        if (!w->reply) {
                free(w);
                return luaL_error(L, "kernel call: no reply (the channel closed)");
        }
        /* decode sees the calling function's arguments at the same indexes */
        lua_pushcfunction(L, decode_p);
        for (int i = 1; i <= top; i++)
                lua_pushvalue(L, i);
        lua_pushlightuserdata(L, &d);
        status = lua_pcall(L, top + 1, LUA_MULTRET, 0);
        reply_free(w->reply);
        free(w);
        if (status != LUA_OK) {
                if (status == LUA_ERRMEM)
                        return clua_doom(L, CLUA_MEMORY);
                return lua_error(L);
        }
        return lua_gettop(L) - top;
}

static int await_k(lua_State *L, int status, lua_KContext ctx)
{
        (void)status;
        clua_app_of(L)->host_yield = CLUA_YIELD_NONE;
        return finish_wait(L, (CLuaWait *)ctx);
}

/* Yields the running task for w, or blocks on the channel / the clock. */
static int wait_for(lua_State *L, CLuaWait *w)
{
        CLuaApp *app = w->app;

        if (app->current && lua_isyieldable(L)) {
                w->task = app->current;
                app->current->wait = w;
                app->host_yield = CLUA_YIELD_WAIT;
                return lua_yieldk(L, 0, (lua_KContext)w, await_k);
        }
        if (app->host->opt.n_apps > 1) {
                /* Cannot yield, and blocking would stop every app of the packed
                 * group until the reply (or the sleep) came: refused. */
                wait_unlink(w);
                if (w->timer)
                        clua_timer_cancel_wait(app, w->timer);
                else if (app->cella && w->request_id)
                        (void)cella_cancel(app->cella, w->request_id);
                free(w);
                return luaL_error(L, "cannot wait for the kernel or a timer here: inside a "
                                     "metamethod or __tostring called from C the task cannot "
                                     "be suspended (packed mode)");
        }
        /* Cannot yield, alone in the host: block until it is done. */
        while (!w->done) {
                int r;

                if (w->timer) {
                        uint64_t now = now_monotonic_ns(), d = w->timer->deadline_ns;

                        if (d > now) {
                                struct timespec ts = {.tv_sec = (time_t)((d - now) / 1000000000u),
                                                      .tv_nsec = (long)((d - now) % 1000000000u)};

                                nanosleep(&ts, NULL);
                                continue;
                        }
                        clua_timer_cancel_wait(app, w->timer);
                        w->done = true;
                        break;
                }
                if (!app->cella || app->channel_broken)
                        break;
                r = cella_wait(app->cella, -1);
                if (r < 0 && r != -EINTR)
                        break;
                if (clua_kernel_dispatch(app) < 0 && !w->reply)
                        break;
        }
        return finish_wait(L, w);
}

/* The continuation of clua_kernel_call_k(): the wait's results, then its k. */
static int await_then_k(lua_State *L, int status, lua_KContext ctx)
{
        CLuaWait *w = (CLuaWait *)ctx;
        lua_KFunction k = w->then;
        lua_KContext kctx = w->then_ctx;

        (void)status;
        clua_app_of(L)->host_yield = CLUA_YIELD_NONE;
        (void)finish_wait(L, w);
        return k(L, LUA_YIELD, kctx);
}

int clua_kernel_call_k(lua_State *L, const char *fname, uint16_t opcode,
                       const ProtobufCMessage *req, int (*decode)(lua_State *, CellaReply *),
                       lua_KFunction k, lua_KContext ctx)
{
        CLuaApp *app = clua_app_of(L);
        Cella *c = clua_kernel(L, fname);
        CLuaWait *w;
        uint64_t id;
        int r;

        /* Only where the task can be suspended: blocking here would stop the host. */
        if (!app->current || !lua_isyieldable(L))
                return luaL_error(L,
                                  "%s: cannot wait here: inside a metamethod or __tostring "
                                  "called from C the task cannot be suspended",
                                  fname);
        r = client_call_async(c, opcode, req, clua_kernel_reply, app, &id);
        if (r == -EAGAIN || r == -EBUSY) {
                (void)clua_kernel_dispatch(app);
                r = client_call_async(c, opcode, req, clua_kernel_reply, app, &id);
        }
        if (r < 0)
                return clua_kernel_error(L, fname, r, NULL);
        w = calloc(1, sizeof(*w));
        if (!w) {
                (void)cella_cancel(app->cella, id);
                return clua_doom(L, CLUA_MEMORY);
        }
        w->app = app;
        w->request_id = id;
        w->decode = decode;
        w->then = k;
        w->then_ctx = ctx;
        w->next = app->waits;
        app->waits = w;
        w->task = app->current;
        app->current->wait = w;
        app->host_yield = CLUA_YIELD_WAIT;
        return lua_yieldk(L, 0, (lua_KContext)w, await_then_k);
}

int clua_await(lua_State *L, uint64_t request_id, int (*decode)(lua_State *L, CellaReply *reply))
{
        CLuaApp *app = clua_app_of(L);
        CLuaWait *w = calloc(1, sizeof(*w));

        if (!w) {
                (void)cella_cancel(app->cella, request_id);
                return clua_doom(L, CLUA_MEMORY);
        }
        w->app = app;
        w->request_id = request_id;
        w->decode = decode;
        w->next = app->waits;
        app->waits = w;
        return wait_for(L, w);
}

int clua_sleep(lua_State *L, uint64_t ns)
{
        CLuaApp *app = clua_app_of(L);
        CLuaWait *w = calloc(1, sizeof(*w));

        if (!w)
                return clua_doom(L, CLUA_MEMORY);
        w->app = app;
        w->timer = clua_timer_add(app, ns, 0, LUA_NOREF, w);
        if (!w->timer) {
                int e = errno;

                free(w);
                return luaL_error(L, "cella.timer.sleep: %s", strerror(e));
        }
        w->next = app->waits;
        app->waits = w;
        return wait_for(L, w);
}

/* ---- events ------------------------------------------------------------------- */

static char *dup_n(const void *p, size_t n)
{
        char *s = malloc(n + 1);

        if (s) {
                if (n)
                        memcpy(s, p, n);
                s[n] = 0;
        }
        return s;
}

static void reply_unhandled(CLuaApp *app, uint64_t token)
{
        Cella__V1__BusReplyRequest req = CELLA__V1__BUS_REPLY_REQUEST__INIT;

        req.reply_token = token;
        req.errnum = ENOSYS;
        req.content_type = "";
        (void)client_call_async(app->cella, CELLA_OP_BUS_REPLY, &req.base, NULL, NULL, NULL);
}

static void on_bus_message(CLuaApp *app, const CellaEvent *ev)
{
        CLuaWork *w;
        int ref = LUA_NOREF;

        if (ev->bus.subscription_id) {
                for (unsigned i = 0; i < app->n_subs; i++)
                        if (app->subs[i].id == ev->bus.subscription_id)
                                ref = app->subs[i].fn_ref;
        } else
                ref = app->on_message_ref;
        if (ref == LUA_NOREF) {
                if (ev->bus.reply_token)
                        reply_unhandled(app, ev->bus.reply_token);
                return;
        }
        w = calloc(1, sizeof(*w));
        if (!w)
                return;
        w->kind = CLUA_WORK_CALL;
        w->fn_ref = ref;
        w->is_msg = true;
        w->reply_token = ev->bus.reply_token;
        w->topic = strdup(ev->bus.topic ?: "");
        w->sender = strdup(ev->bus.sender ?: "");
        w->content_type = strdup(ev->bus.content_type ?: "");
        w->data = dup_n(ev->bus.data, ev->bus.len);
        w->data_len = ev->bus.len;
        if (!w->topic || !w->sender || !w->content_type || !w->data) {
                clua_work_free(w);
                if (ev->bus.reply_token)
                        reply_unhandled(app, ev->bus.reply_token);
                return;
        }
        (void)clua_host_queue(app, w);
}

/* Lets go of a handler's registry ref that nothing will call again (a dropped
 * subscription, a handler of a broken channel). Calls already queued for it
 * still run: the last of them (the queue runs calls in order) takes the ref
 * over and releases it once it ran (owns_ref); with none queued it goes now.
 * luaL_unref does not allocate (Lua 5.4.3+ keeps the free list in the
 * registry's array part), so this may run outside a protected call. */
static void release_handler(CLuaApp *app, int ref)
{
        CLuaWork *last = NULL;

        if (ref == LUA_NOREF || !app->L)
                return;
        for (CLuaWork *w = app->work_head; w; w = w->next)
                if (w->kind == CLUA_WORK_CALL && !w->owns_ref && w->fn_ref == ref)
                        last = w;
        if (last)
                last->owns_ref = true;
        else
                luaL_unref(app->L, LUA_REGISTRYINDEX, ref);
}

/* Drops every bus subscription of app: the kernel that kept them is gone. */
static void drop_subscriptions(CLuaApp *app)
{
        for (unsigned i = 0; i < app->n_subs; i++)
                release_handler(app, app->subs[i].fn_ref);
        app->n_subs = 0;
}

static void on_event(Cella *c, const CellaEvent *ev, void *userdata)
{
        CLuaApp *app = userdata;
        CLuaWork *w;

        (void)c;
        if (app->ended)
                return;
        /* cella.ipc's events, decoded by libcella or not (a libcella older than
         * the ipc calls hands them over raw): libipc.c decodes the body. */
        if (clua_ipc_event(app, ev) || !ev->decoded)
                return;
        switch (ev->opcode) {
        case CELLA_EVENT_BUS_MESSAGE:
                on_bus_message(app, ev);
                break;
        case CELLA_EVENT_PERM_REVOKED:
                if (app->on_revoke_ref == LUA_NOREF)
                        break;
                w = calloc(1, sizeof(*w));
                if (!w)
                        break;
                w->kind = CLUA_WORK_CALL;
                w->fn_ref = app->on_revoke_ref;
                w->n_args = 2;
                w->args[0] = (CLuaArg){.kind = CLUA_ARG_STR,
                                       .s = strdup(ev->perm_revoked.permission ?: ""),
                                       .len = strlen(ev->perm_revoked.permission ?: "")};
                w->args[1] = (CLuaArg){.kind = CLUA_ARG_STR,
                                       .s = strdup(ev->perm_revoked.reason ?: ""),
                                       .len = strlen(ev->perm_revoked.reason ?: "")};
                if (!w->args[0].s || !w->args[1].s) {
                        clua_work_free(w);
                        break;
                }
                (void)clua_host_queue(app, w);
                break;
        case CELLA_EVENT_KERNEL_RESTARTED:
                /* A new kernel adopted the app: its calls pending then have failed
                 * already (libcella, ECONNRESET), and the subscriptions the old
                 * kernel kept are gone: their handlers go (messages queued before
                 * still run). Then app.on_kernel_restart's handler, to make them
                 * again. */
                drop_subscriptions(app);
                if (app->on_restart_ref == LUA_NOREF)
                        break;
                w = calloc(1, sizeof(*w));
                if (!w)
                        break;
                w->kind = CLUA_WORK_CALL;
                w->fn_ref = app->on_restart_ref;
                (void)clua_host_queue(app, w);
                break;
        case CELLA_EVENT_MEMORY_PRESSURE:
                /* The kernel asks apps to trim (issue 13's EVENT_TRIM_MEMORY): first
                 * app.on_trim's handler with the level's word, the app's chance to
                 * drop its caches, then the collection that frees them. */
                if (app->on_trim_ref != LUA_NOREF) {
                        static const char *const words[] = {"normal", "moderate", "low",
                                                            "critical"};
                        unsigned lv = (unsigned)ev->memory.level;
                        const char *word =
                                lv < sizeof words / sizeof words[0] ? words[lv] : "critical";

                        w = calloc(1, sizeof(*w));
                        if (!w)
                                break;
                        w->kind = CLUA_WORK_CALL;
                        w->fn_ref = app->on_trim_ref;
                        w->n_args = 1;
                        w->args[0] = (CLuaArg){
                                .kind = CLUA_ARG_STR, .s = strdup(word), .len = strlen(word)};
                        if (!w->args[0].s) {
                                clua_work_free(w);
                                break;
                        }
                        (void)clua_host_queue(app, w);
                }
                /* A full collection, run as a task
                 * of the app (in steps the host preempts, under its budget and
                 * its CPU account), not in the host's loop where no watchdog is
                 * armed. One at a time. */
                if (app->gc_queued || app->gc_ref == LUA_NOREF)
                        break;
                w = calloc(1, sizeof(*w));
                if (!w)
                        break;
                w->kind = CLUA_WORK_CALL;
                w->fn_ref = app->gc_ref;
                w->is_gc = true;
                if (clua_host_queue(app, w) == 0)
                        app->gc_queued = true;
                break;
        default:
                break;
        }
}

/* The channel broke: waits fail, and what only the kernel could deliver is gone. */
static void channel_broke(CLuaApp *app)
{
        if (app->channel_broken)
                return;
        app->channel_broken = true;
        (void)epoll_ctl(app->host->epfd, EPOLL_CTL_DEL, cella_fd(app->cella), NULL);
        /* Messages already queued are still delivered (release_handler). */
        drop_subscriptions(app);
        release_handler(app, app->on_message_ref);
        app->on_message_ref = LUA_NOREF;
        for (CLuaWait *w = app->waits; w; w = w->next)
                if (!w->timer && !w->io && !w->done)
                        (void)clua_host_wake(w);
}

int clua_kernel_dispatch(CLuaApp *app)
{
        int r = 0;

        if (!app->cella || app->channel_broken)
                return -ECONNRESET;
        (void)cella_on_event(app->cella, on_event, app);
        for (int i = 0; i < 16; i++) {
                r = cella_dispatch(app->cella);
                if (r <= 0)
                        break;
        }
        if (r < 0) {
                channel_broke(app);
                return r;
        }
        return 0;
}

void clua_kernel_close(CLuaApp *app)
{
        while (app->waits) {
                CLuaWait *w = app->waits;

                app->waits = w->next;
                if (w->owner)
                        *w->owner = NULL;
                /* a woken wait's task belongs to its queued resume */
                if (w->task && !w->done && w->task != app->current)
                        clua_task_free(w->task);
                reply_free(w->reply);
                free(w);
        }
        if (app->cella)
                app->cella = cella_close(app->cella);
        if (app->channel_fd >= 0) {
                close(app->channel_fd);
                app->channel_fd = -1;
        }
        free(app->subs);
        app->subs = NULL;
        app->n_subs = 0;
}

void clua_bus_answer(CLuaApp *app, CLuaTask *t, int nres, bool failed)
{
        Cella__V1__BusReplyRequest req = CELLA__V1__BUS_REPLY_REQUEST__INIT;
        lua_State *co = t->co;
        size_t len = 0;
        const char *data = NULL, *ct = NULL;

        if (!app->cella || app->channel_broken)
                return;
        req.reply_token = t->reply_token;
        if (failed) {
                req.errnum = EIO;
                /* Only a string: converting a number allocates, and this runs
                 * outside any protected call (a memory error would panic). */
                data = lua_type(co, -1) == LUA_TSTRING ? lua_tolstring(co, -1, &len) : NULL;
                clua_app_message(app, "request handler: %s",
                                 data ?: "(error object is not a string)");
                data = NULL;
                len = 0;
        } else if (nres >= 1) {
                int base = lua_gettop(co) - nres + 1;

                if (lua_type(co, base) == LUA_TSTRING)
                        data = lua_tolstring(co, base, &len);
                else if (!lua_isnil(co, base))
                        req.errnum = EINVAL; /* not a string: a bad answer */
                if (nres >= 2 && lua_type(co, base + 1) == LUA_TSTRING)
                        ct = lua_tostring(co, base + 1);
        }
        if (len > CELLA_PAYLOAD_MAX || (ct && strlen(ct) > CELLA_CONTENT_TYPE_MAX)) {
                req.errnum = EMSGSIZE;
                data = NULL;
                len = 0;
                ct = NULL;
        }
        req.data = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)data};
        req.content_type = (char *)(ct ?: "");
        (void)client_call_async(app->cella, CELLA_OP_BUS_REPLY, &req.base, NULL, NULL, NULL);
}
