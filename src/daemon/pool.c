/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cellad's warm pool (docs/daemon.md, "The warm pool"): `--warm N` sandboxes
 * prepared ahead (sandbox_warm_new(): namespaces, network namespace, the jail's
 * skeleton, a cgroup leaf of its own), each finished for one app at its start
 * (sandbox_spawn_warm()), as Android's zygote keeps a warm process for the next
 * app. They are cloned by a zygote of cellad's (daemon_pool_prefork(),
 * sandbox_zygote_new()), forked early while cellad is small, so that they do not
 * hold copies of the pages cellad writes as it grows.
 *
 * The supervisor takes one per spawn that fits (supervisor_set_warm_source());
 * a taken one is never given back. Refills run from a timer of 0 ms armed by the
 * take, so on the loop's next turn: after the start that took one has been
 * answered. One sandbox is cloned per turn, so that a burst of requests is served
 * between refills. A warm sandbox that failed while it prepared, or was killed,
 * is dropped at the take (sandbox_warm_alive()) and replaced. At a stop or a
 * re-exec every warm sandbox is killed and reaped; none is ever handed to the
 * keeper, so none is adopted, and one left by a SIGKILLed cellad dies with it
 * (its parent-death signal, and the EOF on its ctl).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "daemon/daemon-internal.h"
#include "daemon/pool.h"
#include "sandbox/sandbox.h"
#include "supervisor/launch.h"

/* The zygote daemon_pool_prefork() made, until daemon_pool_start() takes it. */
static SandboxZygote *early_zygote;

struct DaemonPool {
        Daemon *d;
        SandboxZygote *zygote; /* NULL: warm sandboxes are cloned by cellad itself */
        unsigned target;
        SandboxWarm **warm; /* target slots; NULL: empty */
        unsigned n;         /* filled slots, warm[0..n) */
        uv_timer_t refill;
        bool refill_init;
        bool stopped;
        uint64_t taken, made, dropped, failed;
};

static void on_refill(uv_timer_t *t)
{
        DaemonPool *p = t->data;
        SandboxWarm *w;
        int r;

        if (p->stopped || p->n >= p->target || supervisor_stopping(p->d->sup))
                return;
        r = sandbox_warm_new(launch_init_path(), p->d->cgm, p->zygote, &w);
        if (r < 0) {
                /* Not fatal: starts are cold meanwhile. Tried again at the next take. */
                p->failed++;
                log_warning_errno(r, "warm pool: cannot prepare a sandbox: %m");
                return;
        }
        p->warm[p->n++] = w;
        p->made++;
        if (p->n < p->target)
                (void)uv_timer_start(&p->refill, on_refill, 0, 0);
}

static SandboxWarm *pool_take(const SandboxSpec *spec, void *userdata)
{
        DaemonPool *p = userdata;
        SandboxWarm *w = NULL;

        /* The oldest first: it has had the most time to prepare. */
        while (p->n > 0 && !w) {
                SandboxWarm *c = p->warm[0];

                memmove(p->warm, p->warm + 1, (p->n - 1) * sizeof *p->warm);
                p->warm[--p->n] = NULL;
                if (sandbox_warm_check(c) < 0) {
                        p->dropped++;
                        sandbox_warm_free(c);
                        continue;
                }
                if (!sandbox_warm_fits(c, spec)) {
                        /* Keep it for the next start (it holds nothing of this one). */
                        p->warm[p->n++] = c;
                        break;
                }
                w = c;
        }
        if (w)
                p->taken++;
        if (p->refill_init && !p->stopped && p->n < p->target)
                (void)uv_timer_start(&p->refill, on_refill, 0, 0);
        return w;
}

static int method_pool(ControlCall *call, json_t *params, void *userdata)
{
        Daemon *d = userdata;

        (void)params;
        return control_reply(call, daemon_pool_json(d->pool));
}

static const ControlMethod pool_methods[] = {
        {"org.cella.Pool", CONTROL_ACCESS_READ, method_pool},
};

void daemon_pool_prefork(unsigned target)
{
        int r;

        if (target == 0 || early_zygote)
                return;
        r = sandbox_zygote_new(&early_zygote);
        if (r < 0)
                log_warning_errno(r, "warm pool: no zygote, cellad clones its warm sandboxes "
                                     "itself: %m");
}

int daemon_pool_start(Daemon *d, unsigned target, DaemonPool **ret)
{
        _cleanup_free_ DaemonPool *p = NULL;
        int r;

        *ret = NULL;
        r = control_add_methods(daemon_control(d), pool_methods, ELEMENTSOF(pool_methods), d);
        if (r < 0)
                return log_error_errno(r, "cannot add org.cella.Pool: %m");
        if (target == 0) {
                early_zygote = sandbox_zygote_free(early_zygote);
                return 0;
        }
        p = calloc(1, sizeof *p);
        if (!p)
                return log_error_errno(-ENOMEM, "warm pool: out of memory");
        p->warm = calloc(target, sizeof *p->warm);
        if (!p->warm)
                return log_error_errno(-ENOMEM, "warm pool: out of memory");
        p->d = d;
        p->target = target;
        p->zygote = TAKE_PTR(early_zygote);
        r = uv_timer_init(daemon_loop(d), &p->refill);
        if (r < 0) {
                free(p->warm);
                return log_error_errno(-ENOMEM, "warm pool: %s", uv_strerror(r));
        }
        p->refill.data = p;
        p->refill_init = true;
        supervisor_set_warm_source(d->sup, pool_take, p);
        (void)uv_timer_start(&p->refill, on_refill, 0, 0);
        log_debug("warm pool: %u sandbox(es)", target);
        *ret = TAKE_PTR(p);
        return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
        DaemonPool *p = h->data;

        free(p->warm);
        free(p);
}

void daemon_pool_empty(DaemonPool *p)
{
        if (!p)
                return;
        p->stopped = true;
        if (p->refill_init)
                (void)uv_timer_stop(&p->refill);
        for (unsigned i = 0; i < p->n; i++)
                p->warm[i] = sandbox_warm_free(p->warm[i]);
        p->n = 0;
        p->zygote = sandbox_zygote_free(p->zygote);
}

void daemon_pool_free(DaemonPool *p)
{
        if (!p)
                return;
        daemon_pool_empty(p);
        supervisor_set_warm_source(p->d->sup, NULL, NULL);
        uv_close((uv_handle_t *)&p->refill, on_timer_closed);
}

/* Adds one process's Rss and Pss (kB, /proc/PID/smaps_rollup) to *rss, *pss. */
static void add_memory(pid_t pid, uint64_t *rss, uint64_t *pss)
{
        char path[64], line[256];
        FILE *f;

        snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return;
        while (fgets(line, sizeof line, f)) {
                unsigned long long v;

                if (sscanf(line, "Rss: %llu kB", &v) == 1)
                        *rss += v;
                else if (sscanf(line, "Pss: %llu kB", &v) == 1)
                        *pss += v;
        }
        fclose(f);
}

json_t *daemon_pool_json(DaemonPool *p)
{
        uint64_t self_rss = 0, self_pss = 0, rss = 0, pss = 0;
        uint64_t z_rss = 0, z_pss = 0;
        json_t *pids = json_array();
        int prepared = 0;

        add_memory(getpid(), &self_rss, &self_pss);
        if (p && sandbox_zygote_pid(p->zygote) > 0)
                add_memory(sandbox_zygote_pid(p->zygote), &z_rss, &z_pss);
        for (unsigned i = 0; p && i < p->n; i++) {
                pid_t pid = sandbox_warm_pid(p->warm[i]);

                prepared += sandbox_warm_check(p->warm[i]) > 0;

                json_array_append_new(pids, json_integer(pid));
                add_memory(pid, &rss, &pss);
        }
        return json_pack("{s:i, s:i, s:i, s:o, s:I, s:I, s:I, s:I, s:{s:I, s:I}, s:{s:I, s:I}, "
                         "s:{s:I, s:I, s:I}}",
                         "target", p ? (int)p->target : 0, "ready", p ? (int)p->n : 0, "prepared",
                         prepared, "pids", pids, "taken", (json_int_t)(p ? p->taken : 0), "made",
                         (json_int_t)(p ? p->made : 0), "dropped", (json_int_t)(p ? p->dropped : 0),
                         "failed", (json_int_t)(p ? p->failed : 0), "pool_kib", "rss",
                         (json_int_t)rss, "pss", (json_int_t)pss, "daemon_kib", "rss",
                         (json_int_t)self_rss, "pss", (json_int_t)self_pss, "zygote", "pid",
                         (json_int_t)(p ? sandbox_zygote_pid(p->zygote) : -1), "rss",
                         (json_int_t)z_rss, "pss", (json_int_t)z_pss);
}
