/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy/manifest.h"
#include "sandbox/cgroup.h"

/* What cella run and cella boot share: the kernel's own options. */
typedef struct KernelOptions {
        const char *state_dir;  /* docs/design.md section 9 */
        int json_status_fd;     /* JSON-lines status records go here; -1 for none */
        CgroupMode cgroup_mode; /* CGROUP_MODE_AUTO unless forced */
        uid_t uid_base;         /* host uid range for new apps */
        uint32_t uid_count;
        bool no_prompt;  /* refuse perm.request instead of asking on the terminal */
        char **roots;    /* "name=/host/path" user-file roots; may be NULL */
        bool raw_output; /* --raw-output: apps' output to a terminal unsanitized */
        bool tty;        /* -t, --tty (cella run only): the app gets a pty of its own */
} KernelOptions;

typedef struct RunOptions {
        KernelOptions k;
        const char *app_dir; /* the app folder (holds manifest.json) */
        char **extra_args;   /* appended to the manifest's args; may be NULL */
} RunOptions;

/*
 * Runs the app in o->app_dir in a sandbox, serves its channel, and waits for it to
 * exit. Returns the process exit code (docs/cli.md): the app's own status, 128+N if
 * it was killed by signal N, or one of CELLA_EXIT_* if cella failed first.
 */
int supervisor_run(const RunOptions *o);

typedef struct BootOptions {
        KernelOptions k;
        const char *dir; /* the folder whose subfolders are apps */
} BootOptions;

/*
 * Starts every app folder in o->dir (services before the apps that depend on them),
 * restarts them by their policies, and returns when every app of kind "app" has
 * exited (the services are stopped then) or after Ctrl-C. Returns 0 if every app
 * exited with status 0 (or was stopped), 1 if one did not, or a CELLA_EXIT_* code.
 */
int supervisor_boot(const BootOptions *o);

/*
 * Loads and checks the manifest of app_dir: its syntax (manifest.c), its permissions
 * against the catalogue, and a runtime this build runs. Prints what is wrong.
 * Returns 0 with *ret_real_dir (the folder's real path) and *ret, or
 * CELLA_EXIT_MANIFEST.
 */
int supervisor_load_manifest(const char *app_dir, char **ret_real_dir, Manifest **ret);

void supervisor_print_manifest_error(const ManifestError *e);

/*
 * For cella run and cella boot at their end: when code is one of cella's own
 * failures (CELLA_EXIT_USAGE..CELLA_EXIT_INTERNAL) and no "failed" or "exited"
 * status record told the outcome yet (an app's own status may be 240-254) (it came before the
 * kernel had its --json-status outlet: a bad option, a manifest, the state directory), writes one
 * to fd (docs/cli.md "JSON status records"): {"event":"failed","step":<what failed, from the
 * code>,"error":<the last error message, log_last_error()>,"exit_code":code}. Waits at most
 * SUPERVISOR_OUTLET_LINGER_MS for fd to take it, else drops it. fd < 0: nothing.
 */
void supervisor_report_failure(int fd, int code);
