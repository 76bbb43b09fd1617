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

/*
 * Why the app's program could not be executed, when the library could tell
 * (SandboxError.exec_cause, at SANDBOX_STEP_EXEC): detail then states the plain fact
 * (the path first, e.g. "/bin/true does not exist"), with no advice; the caller adds
 * the advice its own users need (cella: the manifest's entry; cella-oci: runc's
 * words). execve(2) gives one errno for several of these (execdiag.c).
 */
typedef enum SandboxExecCause {
        SANDBOX_EXEC_CAUSE_NONE = 0, /* not told apart: detail is what was being done */
        SANDBOX_EXEC_MISSING,        /* the file does not exist (ENOENT) */
        SANDBOX_EXEC_SYMLINK_LOOP,   /* a symlink loop or a chain over 40 (ELOOP) */
        SANDBOX_EXEC_UNREACHABLE,    /* a folder on the way is not searchable */
        SANDBOX_EXEC_DIRECTORY,      /* a directory (EISDIR) */
        SANDBOX_EXEC_NOT_REGULAR,    /* a FIFO, socket or device (EACCES) */
        SANDBOX_EXEC_NOEXEC_MOUNT,   /* on a noexec mount (EACCES) */
        SANDBOX_EXEC_NOT_READABLE,   /* not readable by the app's uid */
        SANDBOX_EXEC_NOT_EXECUTABLE, /* no x bit for the app's uid (EACCES) */
        SANDBOX_EXEC_SHEBANG_CR,     /* its #! line ends in \r (ENOENT) */
        SANDBOX_EXEC_SHEBANG_EMPTY,  /* its #! line names nothing (ENOEXEC) */
        SANDBOX_EXEC_INTERPRETER,    /* its #! interpreter missing or not executable */
        SANDBOX_EXEC_FOREIGN_ELF,    /* an ELF for another machine or class (ENOEXEC) */
        SANDBOX_EXEC_LOADER,         /* its ELF interpreter (PT_INTERP) missing */
        SANDBOX_EXEC_NOT_PROGRAM,    /* neither ELF nor #! (ENOEXEC) */
        SANDBOX_EXEC_OTHER,          /* none of these: detail is "PATH: strerror" */
        _SANDBOX_EXEC_CAUSE_MAX,
} SandboxExecCause;

typedef struct SandboxError {
        SandboxStep step;
        int error;                       /* positive errno */
        char detail[SANDBOX_DETAIL_MAX]; /* what was being done, e.g. "bind /usr" */
        SandboxExecCause exec_cause;     /* at SANDBOX_STEP_EXEC: see SandboxExecCause */
} SandboxError;

/* The step's name in messages and status records ("mount", "exec", ...): a static
 * string; "none" for SANDBOX_STEP_NONE, "unknown" for a value out of range. */
const char *sandbox_step_to_string(SandboxStep step);
