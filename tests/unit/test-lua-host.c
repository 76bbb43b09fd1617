/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cella-lua host: the event loop, timers, tasks, and the three schedulers
 * (docs/lua-api.md "Schedulers"), with real CPU-bound apps on one thread. */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "lua/host.h"

static CLuaHost *new_host(CLuaSchedPolicy policy, uint32_t n)
{
        CLuaHostOptions o = {.policy = policy, .stats_fd = -1, .n_apps = n};
        CLuaHost *h = NULL;

        ck_assert_int_eq(clua_host_new(&o, &h), 0);
        return h;
}

/* Adds an app running src (its `...` is args) at priority prio. */
static CLuaApp *add(CLuaHost *h, const char *src, int prio, int nargs, char **args)
{
        CLuaAppSpec s = {.channel_fd = -1, .log_fd = -1, .priority = prio};
        CLuaApp *app = NULL;
        char *msg = NULL;

        ck_assert_int_eq(clua_host_add(h, &s, &app), 0);
        ck_assert_msg(clua_load(app, src, strlen(src), "=test", &msg) == CLUA_OK, "%s", msg ?: "");
        ck_assert_int_eq(clua_host_start(app, nargs, args), 0);
        return app;
}

/* A CPU-bound app: counts until the process has used `...` more seconds of CPU
 * (os.clock: all apps of the host together), so a loaded machine does not
 * shorten its share. */
static const char *const spin = "local stop = os.clock() + tonumber((...)) local n = 0 "
                                "while true do n = n + 1 "
                                "if n % 1000 == 0 and os.clock() > stop then break end end";

static double share(const CLuaApp *a, const CLuaApp *b)
{
        return (double)a->stats->cpu_ns / (double)(a->stats->cpu_ns + b->stats->cpu_ns);
}

START_TEST(test_fair_equal)
{
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 2);
        char *args[] = {"1.0"};
        CLuaApp *a = add(h, spin, 0, 1, args), *b = add(h, spin, 0, 1, args);
        double s;

        ck_assert_int_eq(clua_host_run(h), 0);
        s = share(a, b);
        ck_assert_msg(s > 0.40 && s < 0.60, "share %.3f (a %llu ns, b %llu ns)", s,
                      (unsigned long long)a->stats->cpu_ns, (unsigned long long)b->stats->cpu_ns);
        /* time-sliced, not one after the other */
        ck_assert_uint_gt(a->stats->preemptions, 10);
        ck_assert_uint_gt(b->stats->preemptions, 10);
        ck_assert_uint_gt(h->stats->switches, 20);
        ck_assert_uint_eq(a->stats->state, CLUA_APP_EXITED);
        ck_assert_uint_eq(h->stats->started, 2);
        clua_host_free(h);
}
END_TEST

START_TEST(test_fair_weights)
{
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 2);
        char *args[] = {"1.2"};
        /* priority 0 -> weight 1024, priority 3 -> 526: 1.95 to 1 */
        CLuaApp *a = add(h, spin, 0, 1, args), *b = add(h, spin, 3, 1, args);
        double r;

        ck_assert_int_eq(clua_host_run(h), 0);
        r = (double)a->stats->cpu_ns / (double)b->stats->cpu_ns;
        ck_assert_msg(r > 1.6 && r < 2.4, "ratio %.2f", r);
        ck_assert_uint_eq(a->stats->weight, 1024);
        ck_assert_uint_eq(b->stats->weight, 526);
        /* virtual runtimes stay close: that is what fair means */
        ck_assert_msg(llabs((long long)a->stats->vruntime_ns - (long long)b->stats->vruntime_ns) <
                              60000000ll,
                      "vruntime a %llu b %llu", (unsigned long long)a->stats->vruntime_ns,
                      (unsigned long long)b->stats->vruntime_ns);
        clua_host_free(h);
}
END_TEST

START_TEST(test_round_robin)
{
        CLuaHost *h = new_host(CLUA_SCHED_ROUND_ROBIN, 2);
        char *args[] = {"0.6"};
        CLuaApp *a = add(h, spin, 0, 1, args), *b = add(h, spin, 10, 1, args);
        double s;

        ck_assert_int_eq(clua_host_run(h), 0);
        /* priorities mean nothing to round-robin */
        s = share(a, b);
        ck_assert_msg(s > 0.40 && s < 0.60, "share %.3f", s);
        ck_assert_uint_gt(a->stats->preemptions, 10);
        clua_host_free(h);
}
END_TEST

/* A PRIORITY (hostctl.h) from the supervisor: a member's class sets its priority.
 * The fair scheduler weighs it at once; the priority scheduler moves a queued app
 * to its new level; a stale run or a bad value changes nothing. */
START_TEST(test_set_priority)
{
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 2);
        char *args[] = {"1.0"};
        CLuaApp *fg = add(h, spin, 0, 1, args), *bg = add(h, spin, 0, 1, args);
        double r;

        ck_assert_int_eq(clua_host_set_priority(h, 1, 0, CLUA_CPU_CLASS_BACKGROUND, 10), 0);
        ck_assert_int_eq(clua_host_set_priority(h, 0, 0, CLUA_CPU_CLASS_FOREGROUND, -2), 0);
        ck_assert_int_eq(bg->stats->priority, 10);
        ck_assert_uint_eq(bg->stats->weight, 110);
        ck_assert_uint_eq(bg->stats->cpu_class, CLUA_CPU_CLASS_BACKGROUND);
        ck_assert_int_eq(bg->stats->base_priority, 0);
        ck_assert_uint_eq(fg->stats->weight, 1586);
        ck_assert_uint_eq(fg->stats->cpu_class, CLUA_CPU_CLASS_FOREGROUND);
        /* Another run of the slot, a slot with no app, values out of range: nothing. */
        ck_assert_int_eq(clua_host_set_priority(h, 1, 5, CLUA_CPU_CLASS_CACHED, 19), -ESRCH);
        ck_assert_int_eq(clua_host_set_priority(h, 7, 0, CLUA_CPU_CLASS_CACHED, 19), -ESRCH);
        ck_assert_int_eq(clua_host_set_priority(h, 1, 0, CLUA_CPU_CLASS_CACHED, 20), -EINVAL);
        ck_assert_int_eq(clua_host_set_priority(h, 1, 0, _CLUA_CPU_CLASS_MAX, 0), -EINVAL);
        ck_assert_int_eq(bg->stats->priority, 10);
        ck_assert_int_eq(clua_host_run(h), 0);
        /* 1586 : 110 of the thread while both spin: far above the 1:1 of equals. */
        r = (double)fg->stats->cpu_ns / (double)bg->stats->cpu_ns;
        ck_assert_msg(r > 4.0, "ratio %.2f (fg %llu ns, bg %llu ns)", r,
                      (unsigned long long)fg->stats->cpu_ns, (unsigned long long)bg->stats->cpu_ns);
        ck_assert_int_eq(clua_host_set_priority(h, 1, 0, CLUA_CPU_CLASS_CACHED, 19), -ESRCH);
        clua_host_free(h);

        /* Priority scheduler: both queued at 0, the first moved down to 10 runs only
         * after the second ended (one switch to each). */
        h = new_host(CLUA_SCHED_PRIORITY, 2);
        args[0] = "0.2";
        bg = add(h, spin, 0, 1, args);
        fg = add(h, spin, 0, 1, args);
        ck_assert_int_eq(clua_host_set_priority(h, 0, 0, CLUA_CPU_CLASS_BACKGROUND, 10), 0);
        ck_assert_int_eq(clua_host_run(h), 0);
        ck_assert_uint_eq(h->stats->switches, 2);
        ck_assert_uint_eq(bg->stats->state, CLUA_APP_EXITED);
        ck_assert_uint_eq(fg->stats->state, CLUA_APP_EXITED);
        clua_host_free(h);
}
END_TEST

/* A high-priority app's timer callbacks run on time while a low-priority app
 * hogs the CPU; with the roles reversed the hog gets nothing until it is idle. */
START_TEST(test_priority_preempts)
{
        static const char *ticker = "local timer = require 'cella.timer' local n, worst = 0, 0 "
                                    "local start = timer.now() "
                                    "timer.every(0.02, function(t) n = n + 1 "
                                    "  local late = timer.now() - (start + n * 0.02) "
                                    "  if late > worst then worst = late end "
                                    "  if n == 25 then timer.cancel(t) "
                                    "    assert(worst < 0.25, 'late by ' .. worst) end end)";
        CLuaHost *h = new_host(CLUA_SCHED_PRIORITY, 2);
        char *args[] = {"0.8"};
        CLuaApp *hog = add(h, spin, 10, 1, args), *tick = add(h, ticker, -5, 0, NULL);

        ck_assert_int_eq(clua_host_run(h), 0);
        ck_assert_uint_eq(tick->stats->state, CLUA_APP_EXITED);
        ck_assert_uint_eq(tick->stats->callbacks, 26); /* main + 25 ticks */
        ck_assert_uint_gt(hog->stats->preemptions, 20);
        clua_host_free(h);

        /* a busy high-priority app starves a lower one until it waits */
        h = new_host(CLUA_SCHED_PRIORITY, 2);
        args[0] = "0.3";
        hog = add(h, spin, -5, 1, args);
        tick = add(h,
                   "local timer = require 'cella.timer' "
                   "local t0 = timer.now() "
                   "assert(timer.now() - t0 < 0.01)",
                   0, 0, NULL);
        ck_assert_int_eq(clua_host_run(h), 0);
        ck_assert_uint_eq(tick->stats->slices, 1);
        ck_assert_uint_ge(hog->stats->slices, 5);
        ck_assert_uint_eq(hog->stats->preemptions + 1, hog->stats->slices);
        /* the low one ran only after the hog ended: its whole CPU came later */
        ck_assert_uint_eq(h->stats->switches, 2);
        clua_host_free(h);
}
END_TEST

/* Preemption passes through the app's own coroutines and pcall: the app sees
 * nothing, and its coroutine resumes exactly where it was. */
START_TEST(test_preempt_transparent)
{
        static const char *src =
                "local stop = os.clock() + 0.3 "
                "local co = coroutine.wrap(function() local n = 0 "
                "  while os.clock() < stop do n = n + 1 if n % 50000 == 0 then "
                "    coroutine.yield(n) end end return -1 end) "
                "local last = 0 "
                "local ok = pcall(function() while true do local v = co() "
                "  if v == -1 then break end assert(v == last + 50000) last = v end end) "
                "assert(ok)";
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 2);
        char *args[] = {"0.3"};
        CLuaApp *a = add(h, src, 0, 0, NULL), *b = add(h, spin, 0, 1, args);

        ck_assert_int_eq(clua_host_run(h), 0);
        ck_assert_uint_eq(a->stats->state, CLUA_APP_EXITED);
        ck_assert_uint_gt(a->stats->preemptions, 5);
        ck_assert_uint_eq(b->stats->state, CLUA_APP_EXITED);
        clua_host_free(h);
}
END_TEST

/* One app's fault ends it alone; the host's result is the first fault. */
START_TEST(test_fault_isolated)
{
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 4);
        CLuaAppSpec s = {.channel_fd = -1, .log_fd = -1, .opt = {.memory_cap = 1 << 20}};
        CLuaApp *ok, *err, *mem, *cpu;
        char *msg = NULL;
        const char *hog = "local t = {} while true do t[#t + 1] = ('x'):rep(100) .. #t end";

        ok = add(h,
                 "local timer = require 'cella.timer' local n = 0 "
                 "timer.every(0.01, function(t) n = n + 1 if n == 20 then timer.cancel(t) end end)",
                 0, 0, NULL);
        err = add(h,
                  "local timer = require 'cella.timer' timer.after(0.01, function() error('boom') "
                  "end)",
                  0, 0, NULL);
        ck_assert_int_eq(clua_host_add(h, &s, &mem), 0);
        ck_assert(clua_load(mem, hog, strlen(hog), "=hog", &msg) == CLUA_OK);
        ck_assert_int_eq(clua_host_start(mem, 0, NULL), 0);
        s.opt = (CLuaOptions){.callback_ns = 100000000};
        ck_assert_int_eq(clua_host_add(h, &s, &cpu), 0);
        ck_assert(clua_load(cpu, "while true do end", 17, "=spin", &msg) == CLUA_OK);
        ck_assert_int_eq(clua_host_start(cpu, 0, NULL), 0);

        ck_assert_int_ne(clua_host_run(h), 0);
        ck_assert_uint_eq(ok->stats->state, CLUA_APP_EXITED);
        ck_assert_uint_eq(ok->stats->callbacks, 21);
        ck_assert_uint_eq(err->stats->state, CLUA_APP_FAILED);
        ck_assert_uint_eq(err->stats->fault, CLUA_EXIT_ERROR);
        ck_assert_uint_eq(mem->stats->fault, CLUA_EXIT_MEMORY);
        ck_assert_uint_eq(cpu->stats->fault, CLUA_EXIT_CPU);
        /* the CPU hog was preempted in slices until its 100 ms budget ended */
        ck_assert_uint_gt(cpu->stats->preemptions, 3);
        ck_assert_uint_ge(cpu->stats->cpu_ns, 100000000u);
        clua_host_free(h);
}
END_TEST

/* Waiting does not use the budget; app.exit ends at once with its code. */
START_TEST(test_sleep_and_exit)
{
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 2);
        CLuaAppSpec s = {.channel_fd = -1, .log_fd = -1, .opt = {.callback_ns = 50000000}};
        const char *src = "local timer = require 'cella.timer' local app = require 'cella.app' "
                          "for i = 1, 5 do timer.sleep(0.03) end "
                          "pcall(app.exit, 7) error('not reached')";
        CLuaApp *a;
        char *msg = NULL;

        ck_assert_int_eq(clua_host_add(h, &s, &a), 0);
        ck_assert(clua_load(a, src, strlen(src), "=t", &msg) == CLUA_OK);
        ck_assert_int_eq(clua_host_start(a, 0, NULL), 0);
        ck_assert_int_eq(clua_host_run(h), 7);
        ck_assert_uint_eq(a->stats->fault, 7);
        ck_assert_uint_eq(a->stats->yields, 5);
        clua_host_free(h);
}
END_TEST

/* Timers: order, cancel, every without bursts, the per-app bound. */
START_TEST(test_timers)
{
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 1);
        const char *src =
                "local timer = require 'cella.timer' local got = {} "
                "timer.after(0.03, function() got[#got+1] = 'c' end) "
                "timer.after(0.01, function() got[#got+1] = 'a' end) "
                "local x = timer.after(0.02, function() got[#got+1] = 'x' end) "
                "timer.after(0.02, function() got[#got+1] = 'b' end) "
                "assert(timer.cancel(x) and not timer.cancel(x)) "
                "local ok, e = pcall(timer.after, -1, print) assert(not ok) "
                "ok, e = pcall(timer.every, 0, print) assert(not ok) "
                "local ids = {} for i = 1, 1021 do ids[i] = timer.after(100, print) end "
                "ok, e = pcall(timer.after, 100, print) assert(not ok and e:find('too many')) "
                "for i = 1, 1021 do timer.cancel(ids[i]) end "
                "timer.after(0.05, function() assert(table.concat(got) == 'abc', "
                "table.concat(got)) end)";
        CLuaApp *a = add(h, src, 0, 0, NULL);

        ck_assert_int_eq(clua_host_run(h), 0);
        ck_assert_uint_eq(a->stats->state, CLUA_APP_EXITED);
        ck_assert_uint_eq(a->stats->callbacks, 5);
        clua_host_free(h);
}
END_TEST

/* The app cannot resume a callback's own coroutine (one waiting, or itself). */
START_TEST(test_task_not_resumable)
{
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 1);
        CLuaApp *a = add(h,
                         "local timer = require 'cella.timer' local waiting "
                         "timer.after(0.01, function() "
                         "  local ok, e = coroutine.resume(waiting) "
                         "  assert(not ok and e:find('own coroutine'), e) "
                         "  ok, e = pcall(coroutine.wrap(function() "
                         "    return coroutine.resume(waiting) end)) "
                         "  assert(ok and e == false) end) "
                         "waiting = coroutine.running() timer.sleep(0.03) "
                         "assert(select(2, coroutine.running()) == false)",
                         0, 0, NULL);

        ck_assert_int_eq(clua_host_run(h), 0);
        ck_assert_uint_eq(a->stats->fault, 0);
        ck_assert_uint_eq(a->stats->callbacks, 2);
        clua_host_free(h);
}
END_TEST

/* Kernel calls without a channel raise a clear error. */
START_TEST(test_no_channel)
{
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 1);
        CLuaApp *a = add(h,
                         "local bus = require 'cella.bus' "
                         "local ok, e = pcall(bus.publish, 'x', 'y') "
                         "assert(not ok and e:find('no kernel channel'), e) "
                         "ok, e = pcall(bus.publish, ('t'):rep(300), 'y') "
                         "assert(not ok and e:find('too long'), e)",
                         0, 0, NULL);

        ck_assert_int_eq(clua_host_run(h), 0);
        ck_assert_uint_eq(a->stats->fault, 0);
        clua_host_free(h);
}
END_TEST

/* Queued events count against the app's memory cap (at most half of it): past
 * that they are dropped (and counted), and the bytes go back when they run. */
START_TEST(test_queued_events_are_charged)
{
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 1);
        CLuaAppSpec s = {.channel_fd = -1, .log_fd = -1, .opt = {.memory_cap = 1u << 20}};
        CLuaApp *app = NULL;
        size_t used0;
        int queued = 0, dropped = 0;

        ck_assert_int_eq(clua_host_add(h, &s, &app), 0);
        lua_pushcfunction(app->L, lua_gettop); /* any function: the events' callback */
        int ref = luaL_ref(app->L, LUA_REGISTRYINDEX);
        used0 = app->alloc.used;
        for (int i = 0; i < 64; i++) {
                CLuaWork *w = calloc(1, sizeof(*w));

                ck_assert_ptr_nonnull(w);
                w->kind = CLUA_WORK_CALL;
                w->fn_ref = ref;
                w->is_msg = true;
                w->data_len = 60000;
                w->data = calloc(1, w->data_len + 1);
                ck_assert_ptr_nonnull(w->data);
                if (clua_host_queue(app, w) == 0)
                        queued++;
                else
                        dropped++;
        }
        /* events may fill half of the 1 MiB: 8 of 60 kB */
        ck_assert_int_eq(queued, 8);
        ck_assert_int_eq(dropped, 64 - queued);
        ck_assert_uint_le(app->queued_bytes, 1u << 19);
        ck_assert_uint_ge(app->alloc.used, used0 + (size_t)queued * 60000);
        ck_assert_uint_eq(app->dropped, (unsigned long)dropped);
        ck_assert_int_eq(clua_host_run(h), 0);
        ck_assert_uint_eq(app->stats->callbacks, (uint64_t)queued);
        ck_assert_uint_eq(app->queued_bytes, 0);
        clua_host_free(h);
}
END_TEST

/* collectgarbage() of a large heap runs in steps the host preempts, and still
 * collects everything. */
START_TEST(test_collectgarbage_is_preemptible)
{
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 1);
        CLuaApp *a = add(h,
                         "local app = require 'cella.app'\n"
                         "local t = {} for i = 1, 400000 do t[i] = {i} end\n"
                         "t = nil\n"
                         "local p0 = app.stats().preemptions\n"
                         "collectgarbage()\n"
                         "local p1 = app.stats().preemptions\n"
                         "assert(p1 > p0, 'collect was not preempted')\n"
                         "assert(collectgarbage('count') < 4096, collectgarbage('count'))\n"
                         "assert(collectgarbage('step', 1024) ~= nil)\n"
                         "assert(collectgarbage('step') ~= nil)\n",
                         0, 0, NULL);

        ck_assert_int_eq(clua_host_run(h), 0);
        ck_assert_uint_eq(a->stats->fault, 0);
        clua_host_free(h);
}
END_TEST

/* An error raised by an app whose heap is nearly full: the host's traceback of
 * it does not fit, and must fail protected (the error is still reported and
 * ends the app alone) instead of a panic that aborts the host. */
START_TEST(test_traceback_at_the_memory_cap)
{
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 2);
        CLuaAppSpec s = {.channel_fd = -1, .log_fd = -1, .opt = {.memory_cap = 4u << 20}};
        const char *src = "local msg, keep = ('e'):rep(300 << 10), {}\n"
                          "collectgarbage()\n"
                          "while collectgarbage('count') * 1024 < (4 << 20) - (200 << 10) do\n"
                          "  keep[#keep + 1] = ('x'):rep(10000) .. #keep\n"
                          "end\n"
                          "error(msg, 0)\n";
        CLuaApp *a = NULL, *b;
        char *msg = NULL;

        ck_assert_int_eq(clua_host_add(h, &s, &a), 0);
        ck_assert_msg(clua_load(a, src, strlen(src), "=test", &msg) == CLUA_OK, "%s", msg ?: "");
        ck_assert_int_eq(clua_host_start(a, 0, NULL), 0);
        b = add(h, "local x = 0 for i = 1, 1e5 do x = x + i end", 0, 0, NULL);
        ck_assert_int_eq(clua_host_run(h), CLUA_EXIT_ERROR);
        ck_assert_uint_eq(a->stats->fault, CLUA_EXIT_ERROR);
        ck_assert_uint_eq(b->stats->fault, 0);
        ck_assert_uint_eq(b->stats->state, CLUA_APP_EXITED);
        clua_host_free(h);
}
END_TEST

/* Joins src into slot of h as run. */
static CLuaApp *join(CLuaHost *h, uint32_t slot, uint32_t run, const char *src)
{
        CLuaAppSpec s = {.channel_fd = -1, .log_fd = -1};
        CLuaApp *app = NULL;
        char *msg = NULL;

        ck_assert_int_eq(clua_host_join(h, slot, run, &s, &app), 0);
        ck_assert_msg(clua_load(app, src, strlen(src), "=test", &msg) == CLUA_OK, "%s", msg ?: "");
        ck_assert_int_eq(clua_host_start(app, 0, NULL), 0);
        return app;
}

/* Slots (docs/lua-api.md "Joining a running host"): an app into any free slot, a
 * slot whose app ended taken again with its record reset to the new run; a live
 * slot, or one out of range, refused; a stop names the run it is for. */
START_TEST(test_join_slots)
{
        CLuaHost *h = new_host(CLUA_SCHED_FAIR, 3);
        CLuaAppSpec spec = {.channel_fd = -1, .log_fd = -1};
        CLuaApp *a, *b, *x = NULL;

        a = join(h, 2, 0, "return 1");
        ck_assert_uint_eq(h->stats->n_apps, 3); /* every slot's record from the start */
        ck_assert_int_eq(clua_host_join(h, 2, 1, &spec, &x), -EBUSY);
        ck_assert_int_eq(clua_host_join(h, 3, 1, &spec, &x), -ERANGE);
        ck_assert_ptr_null(x);
        ck_assert_int_eq(clua_host_run(h), 0);
        ck_assert_uint_eq(a->stats->state, CLUA_APP_EXITED);
        ck_assert_uint_eq(a->stats->callbacks, 1);
        /* Slot 2 again, as run 5: a new app, its record reset; slot 0 too. */
        b = join(h, 2, 5, "x = 0 for i = 1, 10 do x = x + i end");
        ck_assert_ptr_nonnull(b);
        ck_assert_uint_eq(h->app_stats[2].run, 5);
        ck_assert_uint_eq(h->app_stats[2].callbacks, 0);
        ck_assert_uint_eq(h->app_stats[2].state, CLUA_APP_READY); /* its main chunk queued */
        (void)join(h, 0, 1, "return 2");
        ck_assert_int_eq(clua_host_run(h), 0);
        ck_assert_uint_eq(h->app_stats[2].state, CLUA_APP_EXITED);
        ck_assert_uint_eq(h->app_stats[2].callbacks, 1);
        /* A stop for another run, or of a slot with no live app, does nothing. */
        b = join(h, 1, 7, "require_never_returns = true");
        ck_assert_int_eq(clua_host_stop_app(h, 1, 6), -ESRCH);
        ck_assert_int_eq(clua_host_stop_app(h, 0, 1), -ESRCH);
        ck_assert_int_eq(clua_host_stop_app(h, 1, 7), 0);
        ck_assert_uint_eq(h->app_stats[1].state, CLUA_APP_EXITED);
        ck_assert_uint_eq(h->n_alive, 0);
        clua_host_free(h);
}
END_TEST

typedef struct Ctl {
        int calls;
        bool sent_after_close; /* a send after the host shut its channel failed */
        int peer;
} Ctl;

/* A control callback: the first time, joins an app into slot 1; the channel's
 * bytes are read and dropped. */
static int on_ctl(CLuaHost *h, void *userdata)
{
        Ctl *c = userdata;
        char b[64];

        while (recv(h->opt.control_fd, b, sizeof b, MSG_DONTWAIT) > 0)
                ;
        if (c->calls++ == 0)
                (void)join(h, 1, 1, "local t = 0 for i = 1, 100 do t = t + i end");
        return 0;
}

/* With a control channel the host stays up while it is open, takes what comes,
 * and once its last app has ended shuts the channel (a send fails) and returns. */
START_TEST(test_control_channel)
{
        int sp[2];
        Ctl c = {};
        CLuaHostOptions o = {.policy = CLUA_SCHED_FAIR, .stats_fd = -1, .n_apps = 2};
        CLuaHost *h = NULL;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        o.control_fd = sp[1];
        o.control = on_ctl;
        o.control_userdata = &c;
        ck_assert_int_eq(clua_host_new(&o, &h), 0);
        (void)join(h, 0, 0, "return 0");
        ck_assert_int_eq(send(sp[0], "x", 1, 0), 1); /* something to read */
        ck_assert_int_eq(clua_host_run(h), 0);
        ck_assert_int_ge(c.calls, 1);
        ck_assert_uint_eq(h->app_stats[1].state, CLUA_APP_EXITED);
        ck_assert_uint_eq(h->app_stats[1].run, 1);
        ck_assert_int_eq(send(sp[0], "y", 1, MSG_NOSIGNAL | MSG_DONTWAIT), -1);
        ck_assert_int_eq(errno, EPIPE);
        clua_host_free(h);
        close(sp[0]);
        close(sp[1]);
}
END_TEST

typedef struct SpareCtl {
        int phase;
        int peer;         /* the test's end of the control channel */
        lua_State *first; /* the state made ahead that the first join took */
        CLuaApp *capped, *plain;
} SpareCtl;

/* A control callback for test_join_takes_the_state_made_ahead: reads nothing until
 * the host has made a spare (the channel stays readable, so it is called again
 * once the host went idle); then joins a capped app into slot 1 (the spare's
 * state) and a plain one into slot 2 (a state of its own), and asks once more;
 * the second time, once a new spare was made, drains the channel. */
static int on_ctl_spare(CLuaHost *h, void *userdata)
{
        SpareCtl *c = userdata;
        CLuaAppSpec capped = {.channel_fd = -1, .log_fd = -1, .opt = {.memory_cap = 1u << 20}};
        const char *grow = "local t = {} for i = 1, 1e6 do t[i] = ('x'):rep(100) .. i end";
        char b[64], *msg = NULL;

        if (!h->spare)
                return 0; /* again when the host has waited with nothing to do */
        if (c->phase++ == 0) {
                ck_assert_int_eq(recv(h->opt.control_fd, b, sizeof b, MSG_DONTWAIT), 1);
                c->first = h->spare->L;
                ck_assert_int_eq(clua_host_join(h, 1, 1, &capped, &c->capped), 0);
                ck_assert_ptr_null(h->spare); /* taken */
                ck_assert_ptr_eq(c->capped->L, c->first);
                ck_assert_ptr_eq(*(CLuaApp **)lua_getextraspace(c->capped->L), c->capped);
                ck_assert_uint_eq(c->capped->alloc.cap, 1u << 20);
                ck_assert_uint_gt(c->capped->alloc.used, 0);
                ck_assert_msg(clua_load(c->capped, grow, strlen(grow), "=grow", &msg) == CLUA_OK,
                              "%s", msg ?: "");
                ck_assert_int_eq(clua_host_start(c->capped, 0, NULL), 0);
                c->plain = join(h, 2, 1, "assert(grow == nil and t == nil) return 1");
                ck_assert_ptr_ne(c->plain->L, c->first);
                ck_assert_int_eq(send(c->peer, "y", 1, 0), 1); /* ask again */
                return 0;
        }
        /* A new state made ahead (the taken one is the capped app's, or closed with
         * it: its address may come again), owned by no app. */
        ck_assert_ptr_eq(*(CLuaApp **)lua_getextraspace(h->spare->L), h->spare);
        c->phase = 2;
        while (recv(h->opt.control_fd, b, sizeof b, MSG_DONTWAIT) > 0)
                ;
        return 0;
}

/* A host that takes joins makes the next join's Lua state while it waits with
 * nothing to run; the join takes it as its own (its allocator capped at the app's
 * limit and charged to it, its owner the app), makes another when idle again; a
 * join with no spare makes its own. */
START_TEST(test_join_takes_the_state_made_ahead)
{
        int sp[2];
        SpareCtl c = {};
        CLuaHostOptions o = {.policy = CLUA_SCHED_FAIR, .stats_fd = -1, .n_apps = 3};
        CLuaHost *h = NULL;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        o.control_fd = sp[1];
        o.control = on_ctl_spare;
        o.control_userdata = &c;
        c.peer = sp[0];
        ck_assert_int_eq(clua_host_new(&o, &h), 0);
        (void)join(h, 0, 0, "require('cella.timer').after(0.3, function() end)");
        ck_assert_ptr_null(h->spare); /* not before the host waits */
        ck_assert_int_eq(send(sp[0], "x", 1, 0), 1);
        ck_assert_int_eq(clua_host_run(h), CLUA_EXIT_MEMORY);
        ck_assert_int_eq(c.phase, 2);
        /* The capped app hit its own cap (1 MiB), not the spare's default. */
        ck_assert_uint_eq(h->app_stats[1].fault, CLUA_EXIT_MEMORY);
        ck_assert_uint_le(h->app_stats[1].memory_peak_bytes, 1u << 20);
        ck_assert_uint_eq(h->app_stats[2].fault, 0);
        ck_assert_uint_eq(h->app_stats[2].state, CLUA_APP_EXITED);
        ck_assert_uint_eq(h->app_stats[0].fault, 0);
        clua_host_free(h); /* frees the spare made meanwhile (ASan: no leak) */
        close(sp[0]);
        close(sp[1]);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("lua-host");
        TCase *tc = tcase_create("sched");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_fair_equal);
        tcase_add_test(tc, test_fair_weights);
        tcase_add_test(tc, test_round_robin);
        tcase_add_test(tc, test_set_priority);
        tcase_add_test(tc, test_priority_preempts);
        tcase_add_test(tc, test_preempt_transparent);
        tcase_add_test(tc, test_fault_isolated);
        tcase_add_test(tc, test_sleep_and_exit);
        tcase_add_test(tc, test_timers);
        tcase_add_test(tc, test_no_channel);
        tcase_add_test(tc, test_task_not_resumable);
        tcase_add_test(tc, test_queued_events_are_charged);
        tcase_add_test(tc, test_collectgarbage_is_preemptible);
        tcase_add_test(tc, test_traceback_at_the_memory_cap);
        tcase_add_test(tc, test_join_slots);
        tcase_add_test(tc, test_control_channel);
        tcase_add_test(tc, test_join_takes_the_state_made_ahead);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
