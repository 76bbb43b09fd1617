/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The config's hooks (hooks.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "oci/hooks.h"
#include "oci/log.h"

const char *oci_hook_kind_name(OciHookKind kind)
{
        static const char *const names[] = {
                [OCI_HOOK_PRESTART] = "prestart",
                [OCI_HOOK_CREATE_RUNTIME] = "createRuntime",
                [OCI_HOOK_CREATE_CONTAINER] = "createContainer",
                [OCI_HOOK_START_CONTAINER] = "startContainer",
                [OCI_HOOK_POSTSTART] = "poststart",
                [OCI_HOOK_POSTSTOP] = "poststop",
        };

        return kind < _OCI_HOOK_MAX ? names[kind] : "?";
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The namespaces a hook in the container's runs in: all of init's but its user
 * namespace (the hook is the engine's, host root, not the app). */
#define HOOK_NS                                                                                    \
        (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_NEWPID)

/* Exit status of the in-container middle process when its hook ran past its timeout
 * (it killed and reaped the hook). */
#define HOOK_TIMED_OUT 254

/* The middle process's hook, for its SIGUSR1 handler. */
static volatile pid_t middle_hook_pid;

/* In the middle process: SIGUSR1 (cella-oci's end: its death, or its deadline) kills
 * the hook, which the middle then reaps; before the hook exists, it just exits. */
static void middle_on_sigusr1(int sig)
{
        if (middle_hook_pid > 0)
                (void)kill(middle_hook_pid, SIGKILL);
        else
                _exit(HOOK_TIMED_OUT);
}

/*
 * In the forked child, for a hook in the container's namespaces (ns->pidfd >= 0):
 * enters init's namespaces (HOOK_NS) by its pidfd (setns(2), Linux 5.8). The
 * createContainer hook's path was opened (exe, O_PATH) in the runtime's mount
 * namespace, and its root goes back to the runtime's (runtime_root) after the join:
 * its files are those it would see before the pivot_root (runtime-spec: "path MUST
 * resolve in the runtime namespace"); the startContainer hook's path resolves in the
 * container's root, where the join leaves it. Then it forks the hook itself (a child
 * is the one a pid namespace join applies to), waits for it until deadline_ms
 * (monotonic, -1 none), kills and reaps it past that, and exits with its status:
 * the hook is always reaped here, never left to a subreaper (its zombie would keep
 * the container's pid namespace from ending): cella-oci's death or deadline comes as
 * SIGUSR1 (middle_on_sigusr1()), not SIGKILL. parent: cella-oci's pid, to see a
 * death before the parent-death signal was armed. Never returns.
 */
_noreturn_ static void hook_in_container(const OciHook *h, const OciHookNs *ns, int exe,
                                         int runtime_root, char *const *argv, char *const *envp,
                                         int64_t deadline_ms, pid_t parent)
{
        _cleanup_close_ int pidfd = -EBADF;
        struct sigaction sa = {.sa_handler = middle_on_sigusr1};
        sigset_t usr1, old;
        siginfo_t si = {};
        pid_t pid;

        /* cella-oci's death or deadline (SIGUSR1): the hook is killed AND reaped here,
         * never left to a subreaper. */
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        if (sigaction(SIGUSR1, &sa, NULL) < 0 || prctl(PR_SET_PDEATHSIG, SIGUSR1) < 0 ||
            getppid() != parent)
                _exit(127);
        if (setns(ns->pidfd, HOOK_NS) < 0) {
                fprintf(stderr, "cella-oci: hook %s: enter the container's namespaces: %s\n",
                        h->path, strerror(errno));
                _exit(127);
        }
        if (runtime_root >= 0 && (fchdir(runtime_root) < 0 || chroot(".") < 0)) {
                fprintf(stderr, "cella-oci: hook %s: back to the runtime's root: %s\n", h->path,
                        strerror(errno));
                _exit(127);
        }
        if (chdir("/") < 0)
                _exit(127);
        /* Nothing of cella-oci's but stdio and the hook's file (its lock, the state
         * directory) lives on in the middle process while the hook runs. */
        if (exe >= 0) {
                if (exe != 3 && dup2(exe, 3) < 0)
                        _exit(127);
                exe = 3;
                (void)fcntl(exe, F_SETFD, 0);
        }
        (void)close_range(exe >= 0 ? 4 : 3, ~0u, 0);
        (void)sigprocmask(SIG_BLOCK, &usr1, &old);
        pid = fork();
        if (pid < 0)
                _exit(127);
        if (pid == 0) {
                sa.sa_handler = SIG_DFL;
                (void)sigaction(SIGUSR1, &sa, NULL);
                (void)sigprocmask(SIG_SETMASK, &old, NULL);
                /* exe stays open across the execve: a #! script executed by fd is read
                 * by its interpreter through /dev/fd/3 (execveat(2), NOTES). */
                if (exe >= 0)
                        (void)syscall(SYS_execveat, exe, "", argv, envp, AT_EMPTY_PATH);
                else
                        execve(h->path, argv, envp);
                fprintf(stderr, "cella-oci: hook %s: %s\n", h->path, strerror(errno));
                _exit(127);
        }
        middle_hook_pid = pid;
        (void)sigprocmask(SIG_SETMASK, &old, NULL);
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        for (;;) {
                struct pollfd p = {.fd = pidfd, .events = POLLIN};
                int64_t left = deadline_ms < 0 ? -1 : deadline_ms - now_ms();

                if (pidfd < 0)
                        break;
                if (deadline_ms >= 0 && left <= 0) {
                        (void)kill(pid, SIGKILL);
                        (void)waitpid(pid, NULL, 0);
                        _exit(HOOK_TIMED_OUT);
                }
                if (poll(&p, 1, left < 0 ? -1 : (int)(left > 60000 ? 60000 : left)) > 0)
                        break;
        }
        if (waitid(P_PID, (id_t)pid, &si, WEXITED) < 0)
                _exit(127);
        if (si.si_code == CLD_EXITED)
                _exit(si.si_status == HOOK_TIMED_OUT ? 1 : si.si_status);
        (void)signal(si.si_status, SIG_DFL);
        (void)kill(getpid(), si.si_status); /* the same death, for the message */
        _exit(128 + si.si_status);
}

/* Runs one hook; 0, or -EIO with err, or -errno. ns: where (NULL: the runtime's
 * namespaces). */
static int hook_run(const OciHook *h, const char *what, const OciHookNs *ns, const char *state_json,
                    char *err, size_t errlen)
{
        _cleanup_close_pair_ int in[2] = {-EBADF, -EBADF};
        _cleanup_close_ int pidfd = -EBADF, exe = -EBADF, runtime_root = -EBADF;
        char *const empty[] = {NULL};
        char *const *argv;
        char *argv0[] = {h->path, NULL};
        siginfo_t si = {};
        int64_t deadline;
        pid_t pid, parent;
        int r;

        if (pipe2(in, O_CLOEXEC) < 0)
                return negative_errno();
        argv = h->args && h->args[0] ? h->args : argv0;
        deadline = h->timeout > 0 ? now_ms() + (int64_t)h->timeout * 1000 : -1;
        if (ns && ns->resolve_in_runtime) {
                /* The path in the runtime's mount namespace, and its root, before the
                 * join (hook_in_container()). */
                exe = open(h->path, O_PATH | O_CLOEXEC);
                if (exe < 0) {
                        snprintf(err, errlen, "%s hook %s: %s", what, h->path, strerror(errno));
                        return -EIO;
                }
                runtime_root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (runtime_root < 0)
                        return negative_errno();
        }
        parent = getpid();
        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                if (dup2(in[0], STDIN_FILENO) < 0)
                        _exit(127);
                /* The write end is only ours: the hook sees EOF once the state is in. */
                (void)close(in[1]);
                (void)dup2(STDERR_FILENO, STDOUT_FILENO);
                (void)signal(SIGPIPE, SIG_DFL);
                if (ns)
                        hook_in_container(h, ns, exe, runtime_root, argv, h->env ? h->env : empty,
                                          deadline, parent);
                (void)close_range(3, ~0u, 0);
                execve(h->path, argv, h->env ? h->env : empty);
                fprintf(stderr, "cella-oci: %s hook %s: %s\n", what, h->path, strerror(errno));
                _exit(127);
        }
        in[0] = safe_close(in[0]);
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        /* The state on stdin; a hook that does not read it is no failure. */
        (void)signal(SIGPIPE, SIG_IGN);
        (void)loop_write(in[1], state_json, strlen(state_json));
        in[1] = safe_close(in[1]);
        /* The middle process in the container ends its hook at the deadline itself;
         * a grace second before it is killed here. */
        if (ns && deadline >= 0)
                deadline += 1000;
        for (;;) {
                struct pollfd p = {.fd = pidfd, .events = POLLIN};
                int64_t left = deadline < 0 ? -1 : deadline - now_ms();

                if (pidfd < 0)
                        break;
                if (deadline >= 0 && left <= 0) {
                        /* The middle process kills and reaps its hook (SIGUSR1). */
                        (void)kill(pid, ns ? SIGUSR1 : SIGKILL);
                        (void)waitpid(pid, NULL, 0);
                        snprintf(err, errlen, "%s hook %s: killed after its timeout of %d s", what,
                                 h->path, h->timeout);
                        return -EIO;
                }
                r = poll(&p, 1, left < 0 ? -1 : (int)(left > 60000 ? 60000 : left));
                if (r > 0)
                        break;
                if (r < 0 && errno != EINTR)
                        return negative_errno();
        }
        if (waitid(P_PID, (id_t)pid, &si, WEXITED) < 0)
                return negative_errno();
        if (si.si_code == CLD_EXITED && si.si_status == 0)
                return 0;
        if (ns && si.si_code == CLD_EXITED && si.si_status == HOOK_TIMED_OUT) {
                snprintf(err, errlen, "%s hook %s: killed after its timeout of %d s", what, h->path,
                         h->timeout);
                return -EIO;
        }
        if (si.si_code == CLD_EXITED)
                snprintf(err, errlen, "%s hook %s: exit status %d", what, h->path, si.si_status);
        else
                snprintf(err, errlen, "%s hook %s: killed by signal %d", what, h->path,
                         si.si_status);
        return -EIO;
}

int oci_hooks_run(const OciConfig *c, OciHookKind kind, const OciHookNs *ns, const char *state_json,
                  bool stop_on_error, char *err, size_t errlen)
{
        const char *what = oci_hook_kind_name(kind);

        for (size_t i = 0; i < c->n_hooks[kind]; i++) {
                int r;

                oci_log(OCI_LOG_DEBUG, "running %s hook %zu: %s", what, i, c->hooks[kind][i].path);
                r = hook_run(&c->hooks[kind][i], what, ns, state_json, err, errlen);
                if (r < 0 && r != -EIO)
                        snprintf(err, errlen, "%s hook %s: %s", what, c->hooks[kind][i].path,
                                 strerror(-r));
                if (r < 0 && stop_on_error)
                        return r;
                if (r < 0)
                        oci_log(OCI_LOG_WARNING, "%s", err);
        }
        return 0;
}
