/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "sandbox/cgroup.h"

typedef struct RunOptions {
        const char *app_dir;    /* the app folder (holds manifest.json) */
        const char *state_dir;  /* DESIGN.md section 9 */
        char **extra_args;      /* appended to the manifest's args; may be NULL */
        int json_status_fd;     /* JSON-lines status records go here; -1 for none */
        CgroupMode cgroup_mode; /* CGROUP_MODE_AUTO unless forced */
        uid_t uid_base;         /* host uid range for new apps */
        uint32_t uid_count;
} RunOptions;

/*
 * Runs one app in a sandbox with the supervisor embedded (no daemon): loads the
 * manifest, starts the app, sweeps cgroups left by dead cella processes (after the
 * start: the app need not wait for it), streams its stdout/stderr to ours,
 * forwards SIGINT/SIGTERM/SIGHUP, and waits.
 * Prints its own errors. Returns the process exit code (exit-codes.h): the app's
 * status, 128+N for signal N, or a CELLA_EXIT_* code.
 */
int supervisor_run(const RunOptions *o);
