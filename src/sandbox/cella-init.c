/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella-init: the pid 1 of a cella sandbox once its app runs (docs/design.md
 * section 5). The sandbox's first process builds the jail as a fork of the
 * kernel, forks the app, and then execs this small static executable, so that
 * what stays alive for the app's whole run is a process of a few pages instead
 * of a copy of the kernel's (bench/boot, docs/benchmarks.md).
 *
 * Usage (by spawn.c only): cella-init CTL_FD APP_PID [detached]
 *   CTL_FD   the ctl socket to the kernel (inherited; MSG_EXITED goes there)
 *   APP_PID  the app's pid in the sandbox's pid namespace (a child of ours)
 *   detached SandboxSpec.detached: ignore the ctl hangup and exit with the app's
 *            status (init.h, SANDBOX_INIT_DETACHED); an argument rather than an
 *            environment variable, as cella-init gets an empty environment
 * Everything else is inherited across the exec: the blocked signals, the
 * parent-death signal (SIGKILL), the seccomp filter, the credentials.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "sandbox/init.h"

/* A decimal in [min, max], the whole string; -1 otherwise. */
static long parse_number(const char *s, long min, long max)
{
        char *end;
        long v;

        if (!s || *s < '0' || *s > '9')
                return -1;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -1;
        return v;
}

int main(int argc, char **argv)
{
        long ctl, app;
        bool ok;

        /* Not dumpable, before anything else: the app runs as our uid, and a
         * dumpable init's /proc/1/mem would be open to it. The exec already left
         * us so (the file is not readable by the app: spawn.c); on a host whose
         * fs.suid_dumpable is 1 it would not have, and spawn.c does not exec us
         * there at all (the window up to this call is open to the app). */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return 1;

        ok = argc == 3 || (argc == 4 && strcmp(argv[3], "detached") == 0);
        ctl = ok ? parse_number(argv[1], 0, INT_MAX) : -1;
        app = ok ? parse_number(argv[2], 2, INT_MAX) : -1;
        if (ctl < 0 || app < 0 || getpid() != 1) {
                static const char usage[] =
                        "cella-init: the init of a cella sandbox, started by cella itself "
                        "(usage: cella-init CTL_FD APP_PID [detached], as pid 1 of the "
                        "sandbox)\n";

                (void)!write(STDERR_FILENO, usage, sizeof usage - 1);
                return 2;
        }
        /* Tells the parent the exec worked (Sandbox.init_exec); if it is gone,
         * the parent-death signal ends us anyway. */
        (void)sandbox_msg_send((int)ctl, MSG_INIT_EXEC, 0);
        sandbox_init_loop((int)ctl, (pid_t)app, argc == 4 ? SANDBOX_INIT_DETACHED : 0);
}
