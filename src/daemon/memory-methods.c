/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.cella.Memory (docs/api.md): what the memory manager sees and did, for `cella
 * memory` and `cella top` (docs/cli.md): the machine's, the apps' budget's and each
 * running app's figures, the level, the compressed swap and the recent memory.*
 * actions (supervisor/memory-report.h). Read access: the same figures as
 * org.cella.Ps and org.cella.Inspect, the same records as org.cella.Events.
 *
 * The report reads every running app's cgroup files: about 0.25 ms an app on this
 * host (bench/memory-report), on cellad's loop. So that no reader, however many
 * calls it makes, takes more than a tenth of the loop, the full report is kept and
 * served again until it is MEMORY_REPORT_REUSE (10) times its own cost old, and at
 * least MEMORY_REPORT_MIN_AGE_MS; a state change or a new memory action drops it at
 * once. "taken_ms" says when its figures were read. A call for one app is cut from
 * the same report.
 */
#include <errno.h>
#include <string.h>
#include <sys/param.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/time-util.h"
#include "daemon/daemon-internal.h"
#include "policy/grants.h"
#include "supervisor/memory-report.h"

#define MEMORY_REPORT_MIN_AGE_MS 100u
#define MEMORY_REPORT_REUSE      10u

/* The last full report (every running app), when it was taken and what it cost. */
static struct {
        json_t *report;
        uint64_t at_ns, cost_ns, recorded;
} cache;

static void drop_cache(void)
{
        json_decref(cache.report);
        cache.report = NULL;
}

/* A state change: another band, another set of running apps. */
static void on_state(Instance *inst, InstanceState from, InstanceState to, void *ud)
{
        drop_cache();
}

/* The full report, read now or the one kept (see the top). NULL with *ret_errno. */
static json_t *full_report(Daemon *d, int *ret_errno)
{
        uint64_t now = now_monotonic_ns(), keep, recorded = supervisor_memory_recorded(d->sup);
        json_t *report;

        keep = MAX((uint64_t)MEMORY_REPORT_MIN_AGE_MS * NSEC_PER_MSEC,
                   cache.cost_ns * MEMORY_REPORT_REUSE);
        if (cache.report && cache.recorded == recorded && now - cache.at_ns < keep)
                return json_incref(cache.report);
        drop_cache();
        report = supervisor_memory_report(d->sup, &d->config.levels, NULL, ret_errno);
        if (!report)
                return NULL;
        /* Whose apps these are: `cella top` matches them to org.cella.Ps's rows. */
        json_object_set_new(report, "kernel_pid", json_integer(getpid()));
        json_object_set_new(report, "taken_ms", json_integer((json_int_t)grants_now_ms()));
        cache.cost_ns = now_monotonic_ns() - now;
        cache.at_ns = now_monotonic_ns();
        cache.recorded = recorded;
        cache.report = json_incref(report);
        return report;
}

/* full cut to one app (known to cellad): its entry, or a fresh one for an app that
 * does not run, and its records only. Steals full. */
static json_t *one_app(Daemon *d, json_t *full, const char *app)
{
        json_t *o = json_copy(full), *apps = json_array(), *recent = json_array(), *x;
        size_t i;

        json_decref(full);
        if (!o || !apps || !recent) {
                json_decref(o);
                json_decref(apps);
                json_decref(recent);
                return NULL;
        }
        json_array_foreach(json_object_get(o, "apps"), i, x)
        {
                const char *id = json_string_value(json_object_get(x, "id"));

                if (id && strcmp(id, app) == 0)
                        json_array_append(apps, x);
        }
        if (json_array_size(apps) == 0) {
                Instance *inst = supervisor_find(d->sup, app);

                json_array_append_new(
                        apps, json_pack("{s:s, s:s, s:o}", "id", app, "state",
                                        instance_state_to_string(instance_state(inst)), "memory",
                                        supervisor_memory_app_json(inst) ?: json_null()));
        }
        json_array_foreach(json_object_get(o, "recent"), i, x)
        {
                const char *id = json_string_value(json_object_get(x, "app"));

                if (id && strcmp(id, app) == 0)
                        json_array_append(recent, x);
        }
        json_object_set_new(o, "apps", apps);
        json_object_set_new(o, "recent", recent);
        return o;
}

static int method_memory(ControlCall *call, json_t *params, void *ud)
{
        Daemon *d = ud;
        const char *app = NULL;
        bool missing = false;
        json_t *report;
        int r;

        /* Optional: absent or null is every running app. */
        app = control_param_app(call, params, "app", &missing);
        if (!app && !missing)
                return 0;
        if (app && !supervisor_find(d->sup, app)) {
                char msg[256];

                snprintf(msg, sizeof msg, "no app %s is known to cellad", app);
                return control_reply_error(call, "org.cella.NoSuchApp",
                                           json_pack("{s:s, s:s}", "message", msg, "app", app));
        }
        report = full_report(d, &r);
        if (report && app)
                report = one_app(d, report, app);
        if (!report)
                return r ?: -ENOMEM;
        return control_reply(call, report);
}

int daemon_memory_methods(Daemon *d)
{
        static const ControlMethod methods[] = {
                {"org.cella.Memory", CONTROL_ACCESS_READ, method_memory},
        };
        int r = lifecycle_listen(daemon_supervisor(d), on_state, NULL);

        if (r >= 0)
                r = control_add_methods(daemon_control(d), methods, ELEMENTSOF(methods), d);
        if (r < 0)
                return log_error_errno(r, "cannot register org.cella.Memory: %m");
        return 0;
}
