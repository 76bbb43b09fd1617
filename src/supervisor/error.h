/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What failed when the kernel could not run an app: the one error detail the
 * supervisor hands up (functions return a negative errno and fill a
 * SupervisorError). The CLI alone turns it into an exit code (src/cli/exit-codes.h);
 * the kernel asks it for the number its records carry (SupervisorOptions.exit_code).
 */

#include "sandbox/step.h"

typedef enum SupervisorStep {
        SUPERVISOR_STEP_NONE = 0, /* nothing failed */
        SUPERVISOR_STEP_USAGE,    /* the command line, or a limit of the kernel's own */
        SUPERVISOR_STEP_MANIFEST, /* no, unreadable or invalid manifest, or app folder */
        SUPERVISOR_STEP_STATE,    /* state dir, uid registry, data dir, grants, audit log */
        SUPERVISOR_STEP_SANDBOX,  /* the sandbox: sandbox_step says which of its steps */
        SUPERVISOR_STEP_DEPENDS,  /* cella boot: an app it depends on is not running */
        SUPERVISOR_STEP_INTERNAL, /* anything else (out of memory, the event loop) */
} SupervisorStep;

typedef struct SupervisorError {
        SupervisorStep step;
        SandboxStep sandbox_step;        /* step SUPERVISOR_STEP_SANDBOX: where in the spawn */
        int error;                       /* positive errno; 0 when none applies */
        char detail[SANDBOX_DETAIL_MAX]; /* what was being done, or the path; may be "" */
} SupervisorError;

/* The status of an app killed by signal N is this + N: the shell's convention
 * (POSIX 2.8.2 "Exit Status for Commands"), in records and as cella run's exit. */
#define SUPERVISOR_SIGNAL_STATUS_BASE 128

/* How the CLI numbers a failure (cella_exit_code()): the exit code of cella run and
 * cella boot, and the "exit_code" of the kernel's records. */
typedef int (*SupervisorExitCode)(const SupervisorError *e);

/*
 * Fills *e (when e is not NULL) with step, the errno of error (a negative or
 * positive errno; 0: none) and detail (may be NULL; cut to SANDBOX_DETAIL_MAX - 1
 * bytes). Returns error as a negative errno, -EIO when it is 0: a function that
 * fails returns supervisor_error(err, ...).
 */
int supervisor_error(SupervisorError *e, SupervisorStep step, int error, const char *detail);

/* As supervisor_error(), for step SUPERVISOR_STEP_SANDBOX at sandbox_step. */
int supervisor_error_at(SupervisorError *e, SandboxStep sandbox_step, int error,
                        const char *detail);

/* As supervisor_error_at(), from a spawn's SandboxError. */
int supervisor_error_sandbox(SupervisorError *e, const SandboxError *se);

/*
 * se told in cella's terms, into out (a copy of se): when the sandbox library told
 * why the app's program could not be executed (se->exec_cause, step.h), its plain
 * fact ("/app/x does not exist") becomes "WHAT FACT" and the advice cella's users
 * need (the manifest's "entry", the app's folder, its uid of its own, the jail's
 * contents): "the entry /app/x does not exist: set the manifest's \"entry\" to a
 * file of the app's folder". what: how the file is named ("the entry"). Any other
 * se is copied as it is. Cut to SANDBOX_DETAIL_MAX bytes.
 */
void supervisor_exec_advise(const SandboxError *se, const char *what, SandboxError *out);

/* The step's name in the "failed" status records (docs/cli.md "JSON status
 * records"): "usage", "manifest", "state", a sandbox step ("mount", "exec", ...:
 * sandbox_step_to_string()), "depends", "internal" (also for SUPERVISOR_STEP_NONE).
 * A static string. */
const char *supervisor_error_step(const SupervisorError *e);
