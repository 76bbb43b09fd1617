/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy/manifest.h"
#include "sandbox/cgroup.h"
#include "supervisor/error.h"
#include "supervisor/supervisor.h"

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
        SupervisorExitCode exit_code; /* the CLI's numbering of a failure (error.h) */
} KernelOptions;

/*
 * The supervisor's options for a kernel with options k whose apps' output goes to
 * output (SUPERVISOR_OUTPUT_TERMINAL for cella run, _LOGS for cella boot); boot
 * true for cella boot. Returns the options by value; k's pointers are borrowed.
 */
SupervisorOptions kernel_supervisor_options(const KernelOptions *k, SupervisorOutput output,
                                            bool boot);

typedef struct RunOptions {
        KernelOptions k;
        const char *app_dir; /* the app folder (holds manifest.json) */
        char **extra_args;   /* appended to the manifest's args; may be NULL */
} RunOptions;

/*
 * Runs the app in o->app_dir in a sandbox, serves its channel, and waits for it to
 * exit. Returns the app's status (>= 0: its own, 128+N if it was killed by signal
 * N), or a negative errno with *err when cella failed first (printed).
 */
int supervisor_run(const RunOptions *o, SupervisorError *err);

typedef struct BootOptions {
        KernelOptions k;
        const char *dir; /* the folder whose subfolders are apps */
} BootOptions;

/*
 * Starts every app folder in o->dir (services before the apps that depend on them),
 * restarts them by their policies, and returns when every app of kind "app" has
 * exited (the services are stopped then) or after Ctrl-C. Returns 0 if every app
 * exited with status 0 (or was stopped), 1 if one did not, or a negative errno
 * with *err when cella failed before the apps ran (printed).
 */
int supervisor_boot(const BootOptions *o, SupervisorError *err);

/*
 * Starts, in the order they were added (supervisor_add(): boot order), the apps of s
 * that never ran (state stopped), as `cella boot` does: an app whose dependencies
 * do not all run is not started and is marked failed (step depends) with a message;
 * a packed group starts with its last member. Returns the number of apps (or
 * groups) started.
 */
size_t supervisor_start_added(Supervisor *s);

/*
 * Loads and checks the manifest of app_dir: its syntax (manifest.c), its permissions
 * against the catalogue, and a runtime this build runs. Prints what is wrong.
 * Returns 0 with *ret_real_dir (the folder's real path) and *ret, or a negative
 * errno with *err (step SUPERVISOR_STEP_MANIFEST; err may be NULL).
 */
int supervisor_load_manifest(const char *app_dir, char **ret_real_dir, Manifest **ret,
                             SupervisorError *err);

void supervisor_print_manifest_error(const ManifestError *e);

/*
 * For cella run and cella boot at their end: when cella itself failed (e's step is
 * set; not an app's exec, nor a dependency, which have their records) and no
 * "failed" or "exited" status record told the outcome yet (it came before the
 * kernel had its --json-status outlet: a bad option, a manifest, the state
 * directory), writes one to fd (docs/cli.md "JSON status records"):
 * {"event":"failed","step":supervisor_error_step(e),"error":<the last error message,
 * log_last_error()>,"exit_code":exit_code}. Waits at most SUPERVISOR_OUTLET_LINGER_MS
 * for fd to take it, else drops it. fd < 0: nothing.
 */
void supervisor_report_failure(int fd, const SupervisorError *e, int exit_code);
