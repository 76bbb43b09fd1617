/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The sandbox's init (pid 1 of its pid namespace) after the app started, and the
 * messages it and the spawn exchange over the ctl socket (spawn.c). Shared by
 * libcella-sandbox (spawn.c: the child's setup, and the built-in init loop it
 * falls back to) and by cella-init (cella-init.c: the small executable the child
 * execs into once the app runs, so that a sandbox's pid 1 holds no copy of the
 * kernel's memory: docs/design.md section 5).
 *
 * Nothing here allocates or prints: init-loop code runs in a process that may be
 * a fork of a multi-threaded caller, under the app's seccomp filter.
 */

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/sandbox.h"

typedef enum MsgType {
        MSG_CGROUP = 1, /* parent → child: the v1 "tasks" fds to join (SCM_RIGHTS, 0..8) */
        MSG_NETNS,      /* net helper → child: the netns fd (SCM_RIGHTS), or error */
        MSG_NEED_IDMAP, /* child → parent: in a new user namespace, map me */
        MSG_IDMAP_DONE, /* parent → child */
        MSG_ERROR,      /* child → parent: step, error, detail */
        MSG_STARTED,    /* child → parent: value = app pid (in the sandbox) */
        MSG_EXITED,     /* child → parent: value = the app's wait status */
        MSG_SECCOMP_FD, /* child → parent: the seccomp listener fd (SCM_RIGHTS) */
        MSG_INIT_EXEC,  /* init → parent: value = 0 from cella-init once it runs, or
                         * the errno of its failed exec (the built-in loop runs) */
        MSG_WARM_GO,    /* parent → warm child: the spec is in the shared arena; the
                         * fds it names ride along (SCM_RIGHTS, spawn.c "Warm sandboxes") */
        MSG_WARM_READY, /* warm child → parent: prepared, waiting for an app */
        MSG_GO,         /* parent → child (SandboxSpec.wait_starting): starting() is done,
                         * fork the app */
} MsgType;

/* One message on the ctl socket (SOCK_SEQPACKET: one datagram each). */
typedef struct Msg {
        uint32_t type;
        int32_t step;
        int32_t error;
        int32_t value;
        uint32_t host_uid, host_gid; /* MSG_CGROUP: the app's host ids (prepare may set them) */
        char detail[SANDBOX_DETAIL_MAX];
} Msg;

/*
 * Sends a message of type with value (no fds) on ctl, a SOCK_SEQPACKET socket.
 * Returns 0, or a negative errno (-EPIPE once the parent is gone).
 */
int sandbox_msg_send(int ctl, MsgType type, int32_t value);

/*
 * Blocks SIGCHLD, SIGIO (the ctl hangup) and the signals init forwards to the
 * app into *ret_mask's set, and gives SIGIO and each forwarded signal a handler
 * that never runs: a pid namespace's
 * init only receives signals it has a handler for, even from the parent
 * namespace (pid_namespaces(7)). Handlers are reset by execve(), the mask is
 * not: an exec'd init calls this again. Returns 0 or a negative errno.
 */
int sandbox_init_signals(sigset_t *ret_mask);

/*
 * init's life once the app (pid app in the namespace) runs: forwards every
 * forwarded signal to the app, reaps every child (orphans of the app included),
 * and once the app itself is reaped sends MSG_EXITED with its wait status on ctl
 * and exits 0, which makes Linux kill whatever is left in the namespace. Reaps
 * once before it waits, so an app that ended before this was called (across an
 * exec of init) is reported too. When every copy of the parent's end of ctl is
 * closed (SIGIO, spawn.c watch_ctl_hangup(); also looked at once on entry), it
 * exits 0 at once: nobody is left to serve or report to, and the namespace dies
 * with it. The signals of sandbox_init_signals() must be blocked.
 * sandbox_init_wait() does this for timeout_ms milliseconds (CLOCK_MONOTONIC;
 * -1: for ever) and returns 0 if the app still runs then; sandbox_init_loop()
 * never returns.
 *
 * flags SANDBOX_INIT_DETACHED (SandboxSpec.detached): the ctl hangup is ignored (the
 * sandbox outlives its caller), and init exits with the app's status instead of 0:
 * its exit code, or 128+N after signal N (as a shell reports it), so that whoever
 * reaps init (a subreaper: conmon, containerd's shim) learns the app's end.
 */
enum {
        SANDBOX_INIT_DETACHED = 1 << 0,
};
int sandbox_init_wait(int ctl, pid_t app, int timeout_ms, unsigned flags);
_Noreturn void sandbox_init_loop(int ctl, pid_t app, unsigned flags);

/* The exit status init takes for an app that ended with wait status status
 * (SANDBOX_INIT_DETACHED): WEXITSTATUS, or 128+WTERMSIG. */
int sandbox_init_exit_code(int status);

/*
 * How long pid 1 runs the built-in loop before it execs cella-init, in ms: an
 * app that ends sooner (a command, bench/start's hello) never pays for the exec
 * (about 0.15 ms of CPU, competing on 2 CPUs with the app and the kernel while it
 * starts); one that runs longer gets a small init from then on. The memory of a
 * fork held that long is the point of the exec, not its first milliseconds.
 */
#define SANDBOX_INIT_EXEC_DELAY_MS 20
