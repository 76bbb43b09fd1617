/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Exit codes of the cella commands (docs/cli.md), made here only: the kernel
 * returns a negative errno and a SupervisorError (supervisor/error.h), which
 * cella_exit_code() numbers. 0..125 are the app's own; 126, 127 and 128+N follow
 * the shell's convention (POSIX 2.8.2); cella's own failures use 240..254, above
 * every 128+signal code (signals stop at 64), one per step, as minijail reserves
 * 251..254 for its own (MINIJAIL_ERR_*).
 */

#include <errno.h>

#include "supervisor/error.h"

enum {
        /* cella ps, stats: listed, but a live kernel did not answer in time, so its
         * part is missing (named on stderr and in --json) */
        CELLA_EXIT_INCOMPLETE = 2,
        /* a command that needs cellad (start, freeze, inspect, events, install, list,
         * ...): no cellad runs for the state directory (said with how to start one;
         * cli/daemon-client.c) */
        CELLA_EXIT_NO_DAEMON = 3,
        CELLA_EXIT_CANNOT_EXECUTE = 126, /* the entry exists but cannot be executed */
        CELLA_EXIT_NOT_FOUND = 127,      /* the entry does not exist */
        CELLA_EXIT_SIGNAL_BASE = SUPERVISOR_SIGNAL_STATUS_BASE, /* + signal number */
        CELLA_EXIT_USAGE = 240,                                 /* bad command line */
        CELLA_EXIT_MANIFEST = 241, /* no, unreadable or invalid manifest */
        CELLA_EXIT_STATE = 242,    /* state dir, uid registry or data dir */
        CELLA_EXIT_PREPARE = 243,  /* the spec cannot be honoured on this host */
        CELLA_EXIT_CGROUP = 244,
        CELLA_EXIT_CLONE = 245,     /* creating the namespaces */
        CELLA_EXIT_NAMESPACE = 246, /* hostname, loopback, cgroup namespace, net.internet */
        CELLA_EXIT_MOUNT = 247,
        CELLA_EXIT_PIVOT = 248,
        CELLA_EXIT_USERNS = 249,
        CELLA_EXIT_CAPS = 250,
        CELLA_EXIT_RLIMIT = 251,
        CELLA_EXIT_SECCOMP = 252,
        CELLA_EXIT_INIT = 253,     /* the sandbox's init died or hung during setup */
        CELLA_EXIT_INTERNAL = 254, /* anything else (out of memory, event loop) */
        /* cella boot: not started, an app it depends on failed or is not running */
        CELLA_EXIT_DEPENDENCY = 255,
};

/*
 * The exit code for the failure e (docs/cli.md "Exit status"): one per step; a
 * sandbox's exec step is 127 when the entry (or its interpreter) does not exist
 * (ENOENT), else 126. Step SUPERVISOR_STEP_NONE (nothing failed) is 0.
 */
static inline int cella_exit_code(const SupervisorError *e)
{
        static const int sandbox_codes[_SANDBOX_STEP_MAX] = {
                [SANDBOX_STEP_PREPARE] = CELLA_EXIT_PREPARE,
                [SANDBOX_STEP_CGROUP] = CELLA_EXIT_CGROUP,
                [SANDBOX_STEP_CLONE] = CELLA_EXIT_CLONE,
                [SANDBOX_STEP_NAMESPACE] = CELLA_EXIT_NAMESPACE,
                [SANDBOX_STEP_MOUNT] = CELLA_EXIT_MOUNT,
                [SANDBOX_STEP_PIVOT] = CELLA_EXIT_PIVOT,
                [SANDBOX_STEP_USERNS] = CELLA_EXIT_USERNS,
                [SANDBOX_STEP_CAPS] = CELLA_EXIT_CAPS,
                [SANDBOX_STEP_RLIMIT] = CELLA_EXIT_RLIMIT,
                [SANDBOX_STEP_SECCOMP] = CELLA_EXIT_SECCOMP,
                [SANDBOX_STEP_INIT] = CELLA_EXIT_INIT,
        };

        switch (e->step) {
        case SUPERVISOR_STEP_NONE:
                return 0;
        case SUPERVISOR_STEP_USAGE:
                return CELLA_EXIT_USAGE;
        case SUPERVISOR_STEP_MANIFEST:
                return CELLA_EXIT_MANIFEST;
        case SUPERVISOR_STEP_STATE:
                return CELLA_EXIT_STATE;
        case SUPERVISOR_STEP_DEPENDS:
                return CELLA_EXIT_DEPENDENCY;
        case SUPERVISOR_STEP_SANDBOX:
                if (e->sandbox_step == SANDBOX_STEP_EXEC)
                        return e->error == ENOENT ? CELLA_EXIT_NOT_FOUND
                                                  : CELLA_EXIT_CANNOT_EXECUTE;
                if ((unsigned)e->sandbox_step < _SANDBOX_STEP_MAX && sandbox_codes[e->sandbox_step])
                        return sandbox_codes[e->sandbox_step];
                return CELLA_EXIT_INTERNAL;
        default:
                return CELLA_EXIT_INTERNAL;
        }
}
