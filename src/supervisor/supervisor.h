/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The supervisor: cella's kernel (docs/design.md section 1), embedded in `cella run` and
 * `cella boot`. One libuv loop owns every running app (an Instance), the broker that
 * serves their channels, the bus, the grants, the audit log, the control socket and
 * the permission prompt.
 *
 * An Instance is one app folder known to this kernel; it may run several times
 * (restarts, app.launch). Its run's phase: stopped -> running -> (exited | failed),
 * and with a restart policy running -> restarting -> running; the state `cella ps`
 * shows is one of Android's process states computed from it (lifecycle.h).
 * Lifecycle changes are written to the audit log ("lifecycle" records) and, with
 * --json-status, as JSON lines to the status fd.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy/manifest.h"
#include "sandbox/cgroup.h"
#include "supervisor/error.h"
#include "supervisor/lifecycle.h"

/* A stop is SIGTERM, then SIGKILL once this many ms have passed (systemd's
 * DefaultTimeoutStopSec: 90 s). Here rather than in supervisor-internal.h because
 * `cella stop` waits for it. */
#define SUPERVISOR_STOP_GRACE_MS 5000

typedef struct Supervisor Supervisor;
typedef struct Instance Instance;

/* Where the apps' stdout and stderr go. */
typedef enum SupervisorOutput {
        SUPERVISOR_OUTPUT_TERMINAL, /* copied to ours (cella run) */
        SUPERVISOR_OUTPUT_LOGS,     /* <state>/logs/<id>.log, capped and rotated (cella boot) */
} SupervisorOutput;

typedef struct SupervisorOptions {
        const char *state_dir; /* docs/design.md section 9 */
        uid_t uid_base;        /* host uid range for new apps */
        uint32_t uid_count;
        CgroupMode cgroup_mode; /* CGROUP_MODE_AUTO unless forced */
        SupervisorOutput output;
        int json_status_fd; /* JSON-lines status records go here; -1 for none */
        bool no_prompt;     /* refuse perm.request instead of asking on the terminal */
        char **roots;       /* "name=/host/path" user-file roots for fs.open; may be NULL */
        bool boot;          /* Ctrl-C stops every app (cella boot) instead of forwarding */
        bool raw_output;    /* apps' output to a terminal as it is, escapes included */
        bool tty;           /* cella run -t: the app gets a pty of its own (terminal.h) */
        /* The CLI's numbering of a failure (cella_exit_code()), for the "exit_code" of
         * records and cella ps; NULL: 1 for any failure. */
        SupervisorExitCode exit_code;
        /* Write each state change as a {"event":"state"} record to the status fd too
         * (the daemon); cella run and boot leave them out (lifecycle.h). */
        bool status_states;
} SupervisorOptions;

/* The phase of an app's run, as instance.c and group.c drive it; the state `cella ps`
 * shows (InstanceState, lifecycle.h) is computed from it with the app's role and
 * freeze: instance_state(). */
typedef enum InstancePhase {
        INSTANCE_STOPPED,    /* not running: never started (installed), or stopped */
        INSTANCE_RUNNING,    /* its sandbox is up */
        INSTANCE_RESTARTING, /* exited; a restart is due after a delay */
        INSTANCE_EXITED,     /* exited and stays so (its restart policy, or stopped) */
        INSTANCE_FAILED,     /* could not start, or gave up restarting */
} InstancePhase;

/*
 * Opens the state dir, grants, audit log, bus, broker, cgroup manager and seccomp
 * filter, and starts listening on the control socket. Prints what went wrong.
 * Returns 0 and *ret, or a negative errno with *err (may be NULL).
 */
int supervisor_new(const SupervisorOptions *o, Supervisor **ret, SupervisorError *err);

/* Stops what still runs (SIGKILL), closes everything. Takes NULL; returns NULL. */
Supervisor *supervisor_free(Supervisor *s);

/*
 * Registers the app in app_dir (its manifest m, which the supervisor now owns, even
 * on failure) with extra_args appended to its manifest args (may be NULL; copied),
 * in boot wave `wave`. Installs its normal and signature rights in grants.db.
 * Returns 0 and *ret (owned by s), or a negative errno with *err (may be NULL) after
 * printing why.
 */
int supervisor_add(Supervisor *s, const char *app_dir, Manifest *m, char *const *extra_args,
                   unsigned wave, Instance **ret, SupervisorError *err);

/*
 * Starts inst's sandbox and serves its channel. Returns 0, or a negative errno
 * after printing and recording why; what failed is instance_error(inst).
 */
int instance_start(Instance *inst);

/* Runs the loop until every app this run waits for is done (supervisor.c). */
void supervisor_loop(Supervisor *s);

/* The status of inst's last run: its own, 128+N for signal N
 * (SUPERVISOR_SIGNAL_STATUS_BASE), or if it failed to start the exit code
 * SupervisorOptions.exit_code gave its failure (docs/cli.md). */
int instance_exit_code(const Instance *inst);

/* Why inst's last start failed; step SUPERVISOR_STEP_NONE if it did not. */
const SupervisorError *instance_error(const Instance *inst);

const Manifest *instance_manifest(const Instance *inst);
