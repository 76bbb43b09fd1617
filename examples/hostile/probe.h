/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * How hostile tells "the call ran" from "the call never ran". A probe that may
 * kill its process (a foreign ABI, a call that forks) runs in a child, which
 * writes a marker with the call's return value and errno right after the call
 * returns. Only a call that returned can be an escape:
 *
 *   marker, ret >= 0           the call ran and succeeded: an escape
 *   marker, ret < 0            the call returned an error: refused (errno says why)
 *   no marker, SIGSYS          the seccomp filter killed it before it ran: refused
 *   no marker, SIGSEGV, SIGILL, SIGBUS
 *                              the CPU or kernel faulted before the call ran: the
 *                              feature is absent on this kernel (int 0x80 without
 *                              IA32 emulation raises #GP): not applicable
 *   no marker, anything else   the probe died before the call returned (another
 *                              signal, an exit): not applicable, with the reason
 *
 * Shared with tests/unit/test-seccomp.c, which checks this logic on a real
 * filter and on a real fault.
 */

#include <stdbool.h>
#include <stddef.h>

/*
 * Exit status of a probe child whose own setup (a buffer to map, ...) failed
 * before the call it probes: judged not applicable, never an escape or a refusal.
 */
#define PROBE_EXIT_SETUP 3

typedef enum ProbeOutcome {
        PROBE_RETURNED, /* the call returned: ProbeResult.ret and .err */
        PROBE_KILLED,   /* SIGSYS before the call returned: the seccomp filter */
        PROBE_FAULTED,  /* SIGSEGV, SIGILL or SIGBUS before it returned: feature absent */
        PROBE_LOST,     /* died otherwise before it returned, or the probe could not start */
} ProbeOutcome;

typedef struct ProbeResult {
        ProbeOutcome outcome;
        long ret;   /* PROBE_RETURNED: what the call returned */
        int err;    /* PROBE_RETURNED with ret < 0: its errno */
        int status; /* the child's wait status; -errno of fork/pipe for PROBE_LOST */
} ProbeResult;

typedef enum ProbeVerdict {
        VERDICT_REFUSED,        /* the sandbox stopped it */
        VERDICT_ESCAPED,        /* the call ran and succeeded */
        VERDICT_NOT_APPLICABLE, /* the call never ran, for a reason other than the sandbox */
} ProbeVerdict;

/*
 * Runs call(userdata) in a forked child and reports how it ended. call makes one
 * system call and returns its result with errno set (as syscall(2) does); if the
 * call creates a process (clone), call must _exit() in the new one. Returns 0 and
 * *ret filled (outcome PROBE_LOST with status = -errno if fork or pipe failed).
 */
int probe_run(long (*call)(void *userdata), void *userdata, ProbeResult *ret);

/*
 * Sorts a finished child: reported is whether its marker arrived, wait_status its
 * status from waitpid(2). Returns the outcome (never PROBE_RETURNED without the
 * marker, whatever the status).
 */
ProbeOutcome probe_classify(bool reported, int wait_status);

/*
 * The verdict on a probe of a call that must not succeed, with the reason in
 * why (n bytes, NUL-terminated): "EPERM", "killed by SIGSYS (the seccomp filter)",
 * "SIGSEGV before the call returned: not available on this kernel", "succeeded
 * (returned 42)".
 */
ProbeVerdict probe_judge(const ProbeResult *r, char *why, size_t n);
