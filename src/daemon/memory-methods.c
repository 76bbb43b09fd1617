/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.cella.Memory (docs/api.md): what the memory manager sees and did, for `cella
 * memory` and `cella top` (docs/cli.md): the machine's, the apps' budget's and each
 * running app's figures, the level, the compressed swap and the recent memory.*
 * actions (supervisor/memory-report.h). Read access: the same figures as
 * org.cella.Ps and org.cella.Inspect, the same records as org.cella.Events.
 */
#include <errno.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "daemon/daemon-internal.h"
#include "supervisor/memory-report.h"

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
        report = supervisor_memory_report(d->sup, &d->config.levels, app, &r);
        if (!report && r == -ESRCH) {
                char msg[256];

                snprintf(msg, sizeof msg, "no app %s is known to cellad", app);
                return control_reply_error(call, "org.cella.NoSuchApp",
                                           json_pack("{s:s, s:s}", "message", msg, "app", app));
        }
        if (!report)
                return r ?: -ENOMEM;
        /* Whose apps these are: `cella top` matches them to org.cella.Ps's rows. */
        json_object_set_new(report, "kernel_pid", json_integer(getpid()));
        return control_reply(call, report);
}

int daemon_memory_methods(Daemon *d)
{
        static const ControlMethod methods[] = {
                {"org.cella.Memory", CONTROL_ACCESS_READ, method_memory},
        };
        int r = control_add_methods(daemon_control(d), methods, ELEMENTSOF(methods), d);

        if (r < 0)
                return log_error_errno(r, "cannot register org.cella.Memory: %m");
        return 0;
}
