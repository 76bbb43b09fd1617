/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * I/O of the host's C modules (cella.net): fds watched in the host's epoll set
 * and tasks suspended until one is ready or a timeout passes, so a network call
 * suspends only its own task, as a kernel call does (host.h, "I/O of C modules").
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include <lauxlib.h>

#include "lua/host.h"

int clua_fd_watch_set(CLuaFdWatch *w, int fd, uint32_t events)
{
        int epfd = w->app->host->epfd;
        struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)(uintptr_t)w | 1u};

        if (w->fd >= 0 && w->fd != fd)
                clua_fd_watch_stop(w);
        if (events == 0) {
                clua_fd_watch_stop(w);
                return 0;
        }
        if (w->fd == fd && w->events == events)
                return 0;
        if (epoll_ctl(epfd, w->fd == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0)
                return -errno;
        w->fd = fd;
        w->events = events;
        return 0;
}

void clua_fd_watch_stop(CLuaFdWatch *w)
{
        if (w->fd < 0)
                return;
        if (w->app && !w->app->ended)
                (void)epoll_ctl(w->app->host->epfd, EPOLL_CTL_DEL, w->fd, NULL);
        w->fd = -1;
        w->events = 0;
}

static void wait_unlink(CLuaWait *w)
{
        for (CLuaWait **p = &w->app->waits; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        return;
                }
}

int clua_io_wait(lua_State *L, CLuaWait **slot, uint64_t timeout_ns, lua_KFunction k,
                 lua_KContext ctx)
{
        CLuaApp *app = clua_app_of(L);
        CLuaWait *w;

        if (!app->current || !lua_isyieldable(L))
                return luaL_error(
                        L, "cannot wait for the network or an ipc object here: inside a metamethod "
                           "or __tostring called from C the task cannot be suspended");
        w = calloc(1, sizeof(*w));
        if (!w)
                return clua_doom(L, CLUA_MEMORY);
        w->app = app;
        w->io = true;
        w->owner = slot;
        if (timeout_ns) {
                w->timer = clua_timer_add(app, timeout_ns, 0, LUA_NOREF, w);
                if (!w->timer) {
                        free(w);
                        return luaL_error(
                                L, "cannot wait for the network or an ipc object: too many timers");
                }
        }
        w->next = app->waits;
        app->waits = w;
        *slot = w;
        w->task = app->current;
        app->current->wait = w;
        app->host_yield = CLUA_YIELD_WAIT;
        return lua_yieldk(L, 0, ctx, k);
}

bool clua_io_resumed(lua_State *L, CLuaWait **slot)
{
        CLuaApp *app = clua_app_of(L);
        CLuaWait *w = *slot;
        bool timed_out;

        app->host_yield = CLUA_YIELD_NONE;
        if (!w)
                return true;
        *slot = NULL;
        timed_out = !w->io_woken;
        if (w->timer)
                clua_timer_cancel_wait(app, w->timer);
        wait_unlink(w);
        if (w->task)
                w->task->wait = NULL;
        free(w);
        return timed_out;
}

int clua_fd_watch_duplex(CLuaFdWatch *w, int fd, CLuaWait *rwait, CLuaWait *wwait, uint32_t want)
{
        if (fd < 0)
                return 0;
        if (rwait && !rwait->done)
                want |= EPOLLIN | EPOLLRDHUP;
        if (wwait && !wwait->done)
                want |= EPOLLOUT;
        return clua_fd_watch_set(w, fd, want);
}

void clua_io_wake_duplex(uint32_t revents, CLuaWait **rwait, CLuaWait **wwait)
{
        if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
                clua_io_wake(rwait);
        if (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                clua_io_wake(wwait);
}

void clua_io_wake(CLuaWait **slot)
{
        CLuaWait *w = *slot;

        if (!w || w->done)
                return;
        w->io_woken = true;
        if (w->timer)
                clua_timer_cancel_wait(w->app, w->timer);
        (void)clua_host_wake(w);
}
