/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Exit codes of `cella run` (docs/cli.md). 0..125 are the app's own; 126, 127 and
 * 128+N follow the shell's convention (POSIX 2.8.2); cella's own failures use
 * 240..254, above every 128+signal code (signals stop at 64), one per step, as
 * minijail reserves 251..254 for its own (MINIJAIL_ERR_*).
 */

#include "sandbox/sandbox.h"

enum {
        CELLA_EXIT_CANNOT_EXECUTE = 126, /* the entry exists but cannot be executed */
        CELLA_EXIT_NOT_FOUND = 127,      /* the entry does not exist */
        CELLA_EXIT_SIGNAL_BASE = 128,    /* + signal number: the app was killed */
        CELLA_EXIT_USAGE = 240,          /* bad command line */
        CELLA_EXIT_MANIFEST = 241,       /* no, unreadable or invalid manifest */
        CELLA_EXIT_STATE = 242,          /* state dir, uid registry or data dir */
        CELLA_EXIT_PREPARE = 243,        /* the spec cannot be honoured on this host */
        CELLA_EXIT_CGROUP = 244,
        CELLA_EXIT_CLONE = 245,     /* creating the namespaces */
        CELLA_EXIT_NAMESPACE = 246, /* hostname, loopback, cgroup namespace */
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

/* The exit code for a spawn that failed at step with errno error. */
static inline int cella_exit_for_step(SandboxStep step, int error)
{
        switch (step) {
        case SANDBOX_STEP_PREPARE:
                return CELLA_EXIT_PREPARE;
        case SANDBOX_STEP_CGROUP:
                return CELLA_EXIT_CGROUP;
        case SANDBOX_STEP_CLONE:
                return CELLA_EXIT_CLONE;
        case SANDBOX_STEP_NAMESPACE:
                return CELLA_EXIT_NAMESPACE;
        case SANDBOX_STEP_MOUNT:
                return CELLA_EXIT_MOUNT;
        case SANDBOX_STEP_PIVOT:
                return CELLA_EXIT_PIVOT;
        case SANDBOX_STEP_USERNS:
                return CELLA_EXIT_USERNS;
        case SANDBOX_STEP_CAPS:
                return CELLA_EXIT_CAPS;
        case SANDBOX_STEP_RLIMIT:
                return CELLA_EXIT_RLIMIT;
        case SANDBOX_STEP_SECCOMP:
                return CELLA_EXIT_SECCOMP;
        case SANDBOX_STEP_EXEC:
                return error == ENOENT ? CELLA_EXIT_NOT_FOUND : CELLA_EXIT_CANNOT_EXECUTE;
        case SANDBOX_STEP_INIT:
                return CELLA_EXIT_INIT;
        default:
                return CELLA_EXIT_INTERNAL;
        }
}
