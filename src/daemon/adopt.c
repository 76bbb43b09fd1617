/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon_adopt() (daemon.h, docs/daemon.md "Restart and adoption"): the first
 * thing a cellad does once its supervisor exists, before any app starts: connect to
 * the keeper of its state directory (or start one) and take back the apps an
 * earlier cellad left running there (after a crash, a SIGKILL, or a SIGHUP
 * re-exec), so that the autostart that follows finds them registered and running.
 */
#include <errno.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/time-util.h"
#include "daemon/daemon-internal.h"
#include "keeper/keeper.h"
#include "supervisor/adopt.h"

unsigned daemon_keeper_grace(void)
{
        const char *e = getenv(SUPERVISOR_KEEPER_GRACE_ENV);
        char *end;
        unsigned long v;

        if (!e || !*e)
                return KEEPER_GRACE_DEFAULT_S;
        errno = 0;
        v = strtoul(e, &end, 10);
        if (errno || *end || v > 86400 || *e < '0' || *e > '9') {
                log_warning("$%s=%s: not a number of seconds in 0..86400; using %u",
                            SUPERVISOR_KEEPER_GRACE_ENV, e, KEEPER_GRACE_DEFAULT_S);
                return KEEPER_GRACE_DEFAULT_S;
        }
        return (unsigned)v;
}

int daemon_adopt(Daemon *d)
{
        Supervisor *s = daemon_supervisor(d);
        uint64_t t0 = 0;
        size_t refused = 0;
        int r;

        r = supervisor_keeper_start(s, keeper_path(), daemon_keeper_grace());
        if (r < 0)
                return 0; /* said: the daemon runs on, its apps without a keeper */
        t0 = now_monotonic_ns();
        r = supervisor_adopt_all(s, &refused);
        if (r < 0)
                return 0; /* said; what the keeper held is gone (supervisor_adopt_all()) */
        if (r > 0 || refused > 0)
                log_info("adopted %d app(s) left running by an earlier cellad in %.1f ms%s", r,
                         (double)(now_monotonic_ns() - t0) / 1e6,
                         refused ? " (some could not be: see above)" : "");
        return 0;
}
