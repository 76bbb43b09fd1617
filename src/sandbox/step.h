/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Where a sandbox's spawn failed (sandbox_spawn(), sandbox.h), apart from the rest
 * of sandbox.h, so that what reads an error (the supervisor's SupervisorError, the
 * CLI's exit codes) needs only this.
 */

#define SANDBOX_DETAIL_MAX 240

/* Where a spawn failed; each maps to its own exit code in the CLI (docs/cli.md). */
typedef enum SandboxStep {
        SANDBOX_STEP_NONE = 0,
        SANDBOX_STEP_PREPARE,   /* checking the spec, opening sources in the caller */
        SANDBOX_STEP_CGROUP,    /* creating, limiting or joining the cgroup */
        SANDBOX_STEP_CLONE,     /* clone3 with the namespace flags */
        SANDBOX_STEP_NAMESPACE, /* hostname, loopback, cgroup namespace */
        SANDBOX_STEP_MOUNT,     /* building the jail */
        SANDBOX_STEP_PIVOT,     /* pivot_root, detaching the old root */
        SANDBOX_STEP_USERNS,    /* user namespace, uid/gid maps, setresuid */
        SANDBOX_STEP_CAPS,      /* securebits, bounding set, capabilities, no_new_privs */
        SANDBOX_STEP_RLIMIT,    /* resource limits */
        SANDBOX_STEP_SECCOMP,   /* loading the seccomp filter */
        SANDBOX_STEP_EXEC,      /* fds, environment, execve of the entry point */
        SANDBOX_STEP_INIT,      /* the sandbox's init died or stopped answering */
        _SANDBOX_STEP_MAX,
} SandboxStep;

typedef struct SandboxError {
        SandboxStep step;
        int error;                       /* positive errno */
        char detail[SANDBOX_DETAIL_MAX]; /* what was being done, e.g. "bind /usr" */
} SandboxError;

/* The step's name in messages and status records ("mount", "exec", ...): a static
 * string; "none" for SANDBOX_STEP_NONE, "unknown" for a value out of range. */
const char *sandbox_step_to_string(SandboxStep step);
