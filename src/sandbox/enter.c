/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sandbox_enter(): a new process inside a running sandbox, as confined as its app
 * (`cella exec`, docs/security.md "cella exec"). Like spawn.c's child, but joining
 * what exists instead of making it:
 *
 * Caller (root)                 helper (host pid ns)          command (the app's pid ns)
 *   rlimits of init (prlimit)
 *   cgroup_join_prepare()
 *   fork ───────────────────────> setns(init's pidfd, NEWPID)
 *                                 fork ─────────────────────> setgroups(0): none
 *                                 waits; its exit status       join the v1 leaves (and the
 *                                 is the command's             cgroup2 leaf: clone3 INTO)
 *                                                              the app's rlimits
 *                                                              setns(init's pidfd, USER|MNT|
 *                                                                NET|IPC|UTS|CGROUP)
 *                                                              securebits, SANDBOX_UID/GID,
 *                                                              PDEATHSIG, no capabilities,
 *                                                              no_new_privs, chdir /app,
 *                                                              fds 0-2 only, seccomp, execve
 *
 * setns() with a pidfd enters every namespace of that process at once (setns(2),
 * Linux 5.8), with no /proc path that could name another process by then; for an
 * OCI container only those of SandboxEnter.ns_flags (the ones its config did not
 * share with the caller), and the command's ids, groups and capabilities may be the
 * ones SandboxEnter asks for (cella-oci exec: process.json's user and capabilities). The
 * command's namespaces, ids, cgroups, rlimits, capabilities and seccomp filter are
 * the app's; it has no kernel channel and no fd but 0, 1 and 2 (close_range).
 * The helper stays outside (the app cannot see it: another pid namespace; nor
 * ptrace it: another uid), waits for the command and exits with its status, or
 * 128+N if a signal N killed it; the command dies with it (PR_SET_PDEATHSIG). The
 * helper passes SIGINT, SIGTERM, SIGHUP and SIGQUIT on to the command (`cella exec`
 * forwards its own through cellad), and SIGUSR1 makes it kill the command's process
 * group: the command leads a session of its own (setsid; with a tty, the pty's), so
 * what it started ends with it unless it left that group itself.
 * The helper reaps its command before it exits, whatever ends it: the caller's
 * death (its PR_SET_PDEATHSIG is SIGUSR1), a failed setup and a cancel
 * (entering_end(): SIGUSR1, then SIGKILL only past SANDBOX_ENTER_CANCEL_MS). Killed
 * before that, it would leave the command's zombie, a task of the container's pid
 * namespace, to the caller's subreaper, and the namespace's init could not finish
 * exiting until that subreaper reaped it.
 * With a tty_socket the command gets a pty of the jail's own devpts instead of the
 * pipes (pty.c, made as the app's uid as the app's terminal is) and the master goes
 * over the socket to whoever holds its other end (`cella exec -t`).
 * A failure before the execve is written to the error pipe (a SandboxError), which
 * the execve's O_CLOEXEC closes empty on success.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/macro.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox-internal.h"
#include "sandbox/seccomp.h"

/* How long sandbox_enter_cancel() waits for the helper to end its command. */
#define SANDBOX_ENTER_CANCEL_MS 1000

/* What the helper passes on to the command (SIGUSR1: kill its process group). */
static const int helper_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1};

static const int entered_ns =
        CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;

_noreturn_ static void child_fail(int errfd, const SandboxError *e, int code)
{
        (void)!write(errfd, e, sizeof *e);
        _exit(code);
}

/* Looks up name in the jail's /usr/bin and /bin (the app's PATH) when it has no
 * '/', and executes it. Returns only on failure, with -errno. No allocation. */
static int exec_in_path(char *const *argv, char *const *envp)
{
        static const char *const dirs[] = {"/usr/bin/", "/bin/"};
        const char *name = argv[0];
        char path[4096];
        int r = -ENOENT;

        if (strchr(name, '/')) {
                execve(name, argv, envp);
                return negative_errno();
        }
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                size_t a = strlen(dirs[i]), b = strlen(name);

                if (a + b + 1 > sizeof path)
                        return -ENAMETOOLONG;
                memcpy(path, dirs[i], a);
                memcpy(path + a, name, b + 1);
                execve(path, argv, envp);
                /* EACCES counts over a later ENOENT, as execvp(3) says. */
                if (errno != ENOENT)
                        r = negative_errno();
        }
        return r;
}

/* The helper's end of a pipe whose write end only the helper holds (the command
 * closes its copy first thing): the command's way to see that the helper is gone
 * (POLLHUP) once its parent-death signal is armed. */
static int helper_alive[2] = {-EBADF, -EBADF};

/* The command: runs in the app's pid namespace, as the helper's child. */
_noreturn_ static void command_child(const SandboxEnter *e, const struct rlimit *lim, CgroupJoin *j,
                                     int errfd)
{
        SandboxError err = {};
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        const AppCreds creds = {
                .uid = e->ids_set ? e->uid : SANDBOX_UID,
                .gid = e->ids_set ? e->gid : SANDBOX_GID,
                .groups = e->groups,
                .n_groups = e->n_groups,
                .caps = e->caps,
                .allow_new_privs = e->allow_new_privs,
        };
        const int ns = e->ns_flags ? e->ns_flags : entered_ns;
        sigset_t none;
        int tty = -EBADF, r;

        (void)close(helper_alive[1]);
        /* The signal state of a fresh process (as spawn.c gives the app): the daemon
         * ignores SIGPIPE, and an ignored signal survives execve; the helper blocked
         * the ones it passes on. */
        for (int sig = 1; sig < _NSIG; sig++)
                (void)sigaction(sig, &dfl, NULL);
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        /* Nothing of the caller's groups goes in (the sandbox's setgroups is "deny"). */
        if (setgroups(0, NULL) < 0)
                child_fail(errfd,
                           &(SandboxError){.step = SANDBOX_STEP_USERNS,
                                           .error = errno,
                                           .detail = "setgroups"},
                           SANDBOX_ENTER_FAILED);
        r = cgroup_join_self(j);
        if (r < 0)
                child_fail(errfd,
                           &(SandboxError){.step = SANDBOX_STEP_CGROUP,
                                           .error = -r,
                                           .detail = "join the app's cgroup"},
                           SANDBOX_ENTER_FAILED);
        /* As host root still: a limit above ours needs CAP_SYS_RESOURCE here. */
        for (int i = 0; i < RLIM_NLIMITS; i++)
                if (setrlimit(i, &lim[i]) < 0) {
                        (void)sandbox_fail(&err, SANDBOX_STEP_RLIMIT, negative_errno(),
                                           "setrlimit %d", i);
                        child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
                }
        /* Only ns (an OCI container's: those its config did not share with the
         * caller; SandboxEnter.ns_flags). */
        if ((ns & ~CLONE_NEWPID) && setns(e->pidfd, ns & ~CLONE_NEWPID) < 0) {
                (void)sandbox_fail(&err, SANDBOX_STEP_NAMESPACE, negative_errno(),
                                   "enter the app's namespaces");
                child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
        }
        /* The app's steps, in its order (spawn.c): groups, securebits (or the asked
         * bounding set), ids, capabilities, no_new_privs (caps.c). Without
         * no_new_privs the filter is loaded while still privileged, as for the app. */
        if (creds_begin(&creds, &err) < 0)
                child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
        if (e->allow_new_privs) {
                r = seccomp_program_load(e->seccomp);
                if (r < 0) {
                        (void)sandbox_fail(&err, SANDBOX_STEP_SECCOMP, r,
                                           "load the app's seccomp filter");
                        child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
                }
        }
        if (creds_finish(&creds, &err) < 0)
                child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
        /* Re-armed: the id change cleared it. The helper's end is the command's. (Its
         * parent is outside its pid namespace: getppid() says 0, so no check here.) */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
        /* A helper that died before that (the command was born into a frozen cgroup,
         * say, and its helper was killed meanwhile: cellad SIGKILLed) sent no signal:
         * then the command must not run on, with nobody to wait for it. */
        {
                struct pollfd p = {.fd = helper_alive[0], .events = POLLIN};

                if (poll(&p, 1, 0) != 0)
                        _exit(SANDBOX_ENTER_FAILED);
        }
        if (chdir(e->cwd ?: "/") < 0 && chdir("/") < 0) {
                (void)sandbox_fail(&err, SANDBOX_STEP_MOUNT, negative_errno(), "chdir");
                child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
        }
        /* A session of its own, so that the helper can end what it started (its
         * process group); with a tty, pty_make() makes it and the pty's slave its
         * controlling terminal: as the app's uid, in the jail's devpts (pty.c). */
        if (e->tty_socket > 0) {
                tty = pty_make(e->tty_socket, e->tty_rows, e->tty_cols);
                if (tty < 0) {
                        (void)sandbox_fail(&err, SANDBOX_STEP_MOUNT, tty == -ENOENT ? -ENODEV : tty,
                                           "make the command's terminal (a pty of the jail's "
                                           "/dev/pts)");
                        child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
                }
        } else if (setsid() < 0) {
                (void)sandbox_fail(&err, SANDBOX_STEP_NAMESPACE, negative_errno(), "setsid");
                child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
        }
        /* fds: 0-2 the caller's pipes (or the pty), 3 the error pipe (O_CLOEXEC),
         * nothing else. */
        {
                int high[4];
                const int want[4] = {tty >= 0 ? tty : e->stdio[0], tty >= 0 ? tty : e->stdio[1],
                                     tty >= 0 ? tty : e->stdio[2], errfd};

                for (int i = 0; i < 4; i++)
                        if ((high[i] = fcntl(want[i], F_DUPFD_CLOEXEC, 16)) < 0)
                                child_fail(errfd,
                                           &(SandboxError){.step = SANDBOX_STEP_EXEC,
                                                           .error = errno,
                                                           .detail = "move the fds"},
                                           SANDBOX_ENTER_FAILED);
                for (int i = 0; i < 3; i++)
                        if (dup2(high[i], i) < 0)
                                child_fail(errfd,
                                           &(SandboxError){.step = SANDBOX_STEP_EXEC,
                                                           .error = errno,
                                                           .detail = "dup2"},
                                           SANDBOX_ENTER_FAILED);
                if (dup3(high[3], 3, O_CLOEXEC) < 0)
                        _exit(SANDBOX_ENTER_FAILED);
                errfd = 3;
                if (syscall(SYS_close_range, 4u, ~0u, 0u) < 0)
                        child_fail(errfd,
                                   &(SandboxError){.step = SANDBOX_STEP_EXEC,
                                                   .error = errno,
                                                   .detail = "close_range"},
                                   SANDBOX_ENTER_FAILED);
        }
        r = e->allow_new_privs ? 0 : seccomp_program_load(e->seccomp);
        if (r < 0) {
                (void)sandbox_fail(&err, SANDBOX_STEP_SECCOMP, r, "load the app's seccomp filter");
                child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
        }
        r = exec_in_path(e->argv, e->envp);
        (void)sandbox_fail(&err, SANDBOX_STEP_EXEC, r, "execute %s", e->argv[0]);
        child_fail(errfd, &err, r == -ENOENT ? 127 : 126);
}

/* Closes every fd above 2 but the n in keep (async-signal-safe: no allocation).
 * Returns 0 or -errno of close_range. */
static int keep_only_fds(int *keep, size_t n)
{
        unsigned next = 3;

        /* Insertion sort: n is at most 8 + CGROUP_JOIN_MAX_V1. */
        for (size_t i = 1; i < n; i++)
                for (size_t k = i; k > 0 && keep[k - 1] > keep[k]; k--) {
                        int t = keep[k];

                        keep[k] = keep[k - 1];
                        keep[k - 1] = t;
                }
        for (size_t i = 0; i < n; i++) {
                if (keep[i] < (int)next)
                        continue;
                if ((unsigned)keep[i] > next &&
                    syscall(SYS_close_range, next, (unsigned)keep[i] - 1, 0u) < 0)
                        return negative_errno();
                next = (unsigned)keep[i] + 1;
        }
        return syscall(SYS_close_range, next, ~0u, 0u) < 0 ? negative_errno() : 0;
}

/* The command's pid, for the helper's signal handler. */
static volatile pid_t command_pid;

/* In the helper: passes the signal on to the command; SIGUSR1 (its caller's "end
 * it") kills the command's process group, which the command leads (setsid). */
static void helper_on_signal(int sig)
{
        pid_t pid = command_pid;

        if (pid <= 0)
                return;
        if (sig == SIGUSR1) {
                (void)kill(-pid, SIGKILL);
                (void)kill(pid, SIGKILL);
        } else
                (void)kill(pid, sig);
}

/* The helper: into the app's pid namespace for its children, fork the command,
 * wait for it, exit with its status. It lives as long as the command, so it keeps
 * no fd of the caller's but what the command needs (the caller's lock, sockets and
 * pipes would otherwise live on in it). */
_noreturn_ static void helper_child(const SandboxEnter *e, const struct rlimit *lim, CgroupJoin *j,
                                    int errfd, int oom_score_adj, pid_t parent)
{
        struct clone_args args = {.exit_signal = SIGCHLD};
        SandboxError err = {};
        siginfo_t si = {};
        sigset_t passed;
        pid_t pid;

        /* The signals passed on wait, blocked, until the command's pid is known. */
        sigemptyset(&passed);
        for (size_t i = 0; i < ELEMENTSOF(helper_signals); i++)
                sigaddset(&passed, helper_signals[i]);
        /* The caller's death ends the command too: SIGUSR1, not SIGKILL, so that the
         * helper kills and reaps its command before it exits (entering_end()). A
         * caller gone before it was armed: nothing forked yet, so just exit. */
        if (sigprocmask(SIG_BLOCK, &passed, NULL) < 0 || prctl(PR_SET_PDEATHSIG, SIGUSR1) < 0 ||
            prctl(PR_SET_DUMPABLE, 0) < 0 || getppid() != parent)
                _exit(SANDBOX_ENTER_FAILED);
        if (pipe2(helper_alive, O_CLOEXEC) < 0)
                _exit(SANDBOX_ENTER_FAILED);
        /* The app's oom_score_adj (its band: docs/memory.md "Actions"), not its
         * kernel's (cellad's -1000), for the command it forks. */
        if (sandbox_write_oom_score_adj(0, oom_score_adj) < 0)
                _exit(SANDBOX_ENTER_FAILED);
        {
                int keep[9 + CGROUP_JOIN_MAX_V1];
                size_t n = 0;

                keep[n++] = e->pidfd;
                keep[n++] = errfd;
                keep[n++] = helper_alive[0];
                keep[n++] = helper_alive[1];
                if (e->tty_socket > 0)
                        keep[n++] = e->tty_socket;
                for (int i = 0; i < 3; i++)
                        if (e->tty_socket <= 0)
                                keep[n++] = e->stdio[i];
                if (j->unified_fd >= 0)
                        keep[n++] = j->unified_fd;
                for (unsigned i = 0; i < j->n_v1 && n < ELEMENTSOF(keep); i++)
                        keep[n++] = j->v1_fds[i];
                int r = keep_only_fds(keep, n);

                if (r < 0) {
                        (void)sandbox_fail(&err, SANDBOX_STEP_PREPARE, r, "close the caller's fds");
                        child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
                }
        }
        if (setns(e->pidfd, CLONE_NEWPID) < 0) {
                (void)sandbox_fail(&err, SANDBOX_STEP_NAMESPACE, negative_errno(),
                                   "enter the app's pid namespace");
                child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
        }
        if (j->unified_fd >= 0) {
                args.flags = CLONE_INTO_CGROUP;
                args.cgroup = (uint64_t)j->unified_fd;
        }
        pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
        if (pid < 0) {
                (void)sandbox_fail(&err, SANDBOX_STEP_CLONE, negative_errno(),
                                   "clone into the app's pid namespace");
                child_fail(errfd, &err, SANDBOX_ENTER_FAILED);
        }
        if (pid == 0)
                command_child(e, lim, j, errfd);
        command_pid = pid;
        {
                struct sigaction sa = {.sa_handler = helper_on_signal, .sa_flags = SA_RESTART};

                for (size_t i = 0; i < ELEMENTSOF(helper_signals); i++)
                        (void)sigaction(helper_signals[i], &sa, NULL);
                (void)sigprocmask(SIG_UNBLOCK, &passed, NULL);
        }
        /* The command has its copies: the helper holds only init's pidfd (and the
         * write end of helper_alive, until it exits) from here. */
        (void)close(errfd);
        (void)close(helper_alive[0]);
        if (e->tty_socket > 2)
                (void)close(e->tty_socket);
        for (int i = 0; i < 3; i++)
                if (e->tty_socket <= 0 && e->stdio[i] > 2)
                        (void)close(e->stdio[i]);
        (void)close(j->unified_fd);
        for (unsigned i = 0; i < j->n_v1; i++)
                (void)close(j->v1_fds[i]);
        for (;;) {
                if (waitid(P_PID, pid, &si, WEXITED) == 0)
                        break;
                if (errno != EINTR)
                        _exit(SANDBOX_ENTER_FAILED);
        }
        _exit(si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status);
}

/* One value of /proc/PID/limits: "unlimited" or a number. */
static int parse_limit(const char *s, rlim_t *ret)
{
        char *end;
        unsigned long long v;

        if (strncmp(s, "unlimited", 9) == 0) {
                *ret = RLIM_INFINITY;
                return 0;
        }
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EBADMSG;
        *ret = (rlim_t)v;
        return 0;
}

/*
 * The rlimits of process pid from /proc/PID/limits, which anyone may read: prlimit(2)
 * on another uid's process needs CAP_SYS_RESOURCE, which a daemon confined by its
 * service manager may lack. The kernel prints one line per resource in RLIMIT_*
 * order after a header (fs/proc/base.c, proc_pid_limits(): lnames[]), the name in
 * "%-25s %-20s %-20s": the soft limit at column 26, the hard one at 47. Returns 0 or -errno
 * (-EBADMSG for a file not so shaped).
 */
static int read_limits(pid_t pid, struct rlimit lim[RLIM_NLIMITS])
{
        char path[64], buf[4096];
        _cleanup_close_ int fd = -EBADF;
        ssize_t k;
        char *line, *next;
        int i = -1;

        snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        k = read(fd, buf, sizeof buf - 1);
        if (k <= 0)
                return k < 0 ? negative_errno() : -EBADMSG;
        buf[k] = 0;
        for (line = buf; line && *line && i < RLIM_NLIMITS; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (i >= 0) {
                        if (strlen(line) < 48 || parse_limit(line + 26, &lim[i].rlim_cur) < 0 ||
                            parse_limit(line + 47, &lim[i].rlim_max) < 0)
                                return -EBADMSG;
                }
                i++;
        }
        return i == RLIM_NLIMITS ? 0 : -EBADMSG;
}

struct SandboxEntering {
        pid_t pid; /* the helper */
        int pidfd; /* its pidfd */
        int errfd; /* the error pipe's read end, O_NONBLOCK */
};

int sandbox_enter_start(const SandboxEnter *e, SandboxEntering **ret, SandboxError *err)
{
        struct rlimit lim[RLIM_NLIMITS];
        CgroupJoin j = {.unified_fd = -EBADF};
        int oom_score_adj = 0;
        _cleanup_close_ int pidfd = -EBADF;
        int ep[2] = {-EBADF, -EBADF};
        SandboxEntering *x;
        pid_t pid, self = getpid();
        int r;

        if (!e || !ret || e->pidfd < 0 || e->pid <= 0 || !e->argv || !e->argv[0] || !e->envp ||
            !e->seccomp)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL, "bad arguments");
        if ((e->ns_flags & ~(entered_ns | CLONE_NEWPID)) || (e->n_groups && !e->groups) ||
            e->n_groups > NGROUPS_MAX)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "namespace flags %#x or %zu groups", (unsigned)e->ns_flags,
                                    e->n_groups);
        if (e->caps && ((e->caps->effective & ~e->caps->permitted) ||
                        (e->caps->ambient & ~(e->caps->permitted & e->caps->inheritable))))
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "capabilities: the effective set must lie in the permitted "
                                    "one and the ambient set in both the permitted and the "
                                    "inheritable ones (capabilities(7))");
        if (e->ns_flags && !(e->ns_flags & CLONE_NEWUSER) && !e->ids_set)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "without the user namespace the command's ids must be given "
                                    "(SANDBOX_UID would be a host uid)");
        if (e->allow_new_privs && !e->caps && (!e->ns_flags || (e->ns_flags & CLONE_NEWUSER)))
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "no_new_privs may be left clear only with capabilities or "
                                    "host ids");
        x = calloc(1, sizeof *x);
        if (!x)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -ENOMEM, "out of memory");
        /* The app's rlimits: its init's, which it was forked with (rlimit.c). */
        r = read_limits(e->pid, lim);
        if (r < 0) {
                free(x);
                return sandbox_fail(err, SANDBOX_STEP_RLIMIT, r, "read the app's rlimits");
        }
        /* And its oom_score_adj, as the command must not keep its kernel's. */
        r = sandbox_read_oom_score_adj(e->pid, &oom_score_adj);
        if (r < 0) {
                free(x);
                return sandbox_fail(err, SANDBOX_STEP_RLIMIT, r, "read the app's oom_score_adj");
        }
        if (e->cgroup) {
                r = cgroup_join_prepare(e->cgroup, &j);
                if (r < 0) {
                        free(x);
                        return sandbox_fail(err, SANDBOX_STEP_CGROUP, r, "open the app's cgroup");
                }
        }
        if (pipe2(ep, O_CLOEXEC) < 0) {
                r = sandbox_fail(err, SANDBOX_STEP_PREPARE, negative_errno(), "pipe");
                goto out;
        }
        pid = fork();
        if (pid < 0) {
                r = sandbox_fail(err, SANDBOX_STEP_CLONE, negative_errno(), "fork");
                goto out;
        }
        if (pid == 0) {
                (void)close(ep[0]);
                helper_child(e, lim, &j, ep[1], oom_score_adj, self);
        }
        ep[1] = safe_close(ep[1]);
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0 || fcntl(ep[0], F_SETFL, O_NONBLOCK) < 0) {
                r = sandbox_fail(err, SANDBOX_STEP_PREPARE, negative_errno(), "pidfd_open");
                /* SIGUSR1: the helper ends and reaps its command, if any, first. */
                (void)kill(pid, SIGUSR1);
                (void)waitpid(pid, NULL, 0);
                goto out;
        }
        x->pid = pid;
        x->pidfd = TAKE_FD(pidfd);
        x->errfd = TAKE_FD(ep[0]);
        *ret = TAKE_PTR(x);
        r = 0;
out:
        free(x);
        safe_close(ep[0]);
        safe_close(ep[1]);
        cgroup_join_done(&j);
        return r;
}

int sandbox_entering_fd(const SandboxEntering *x)
{
        return x ? x->errfd : -EBADF;
}

/*
 * Ends the helper of pidfd and reaps it: SIGUSR1 first, so that the helper kills its
 * command and REAPS it before it exits (a helper that failed before the command
 * existed exits anyway); SIGKILL only if it is not gone within
 * SANDBOX_ENTER_CANCEL_MS. A helper killed before it reaped its command would leave
 * the command's zombie to the caller's subreaper (or the host's init), and the
 * container's pid namespace could not end (its init waits, exiting, for every task
 * of the namespace to be reaped) until that subreaper waited for it with
 * waitpid(-1): one that waits only for the init's pid would hang.
 */
static void entering_end(int pidfd)
{
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        siginfo_t si;

        (void)syscall(SYS_pidfd_send_signal, pidfd, SIGUSR1, NULL, 0);
        if (RETRY_EINTR(poll(&p, 1, SANDBOX_ENTER_CANCEL_MS)) != 1)
                (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        (void)waitid(P_PIDFD, pidfd, &si, WEXITED);
}

int sandbox_enter_finish(SandboxEntering *x, pid_t *ret_pid, int *ret_pidfd, SandboxError *err)
{
        SandboxError got = {};
        ssize_t k;
        int r;

        /* The command's execve (or the helper's end) closes the pipe's last writer:
         * EOF is success; a SandboxError the failure of a step. */
        k = read(x->errfd, &got, sizeof got);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return -EAGAIN;
        if (k == 0) {
                *ret_pid = x->pid;
                *ret_pidfd = TAKE_FD(x->pidfd);
                safe_close(x->errfd);
                free(x);
                return 0;
        }
        if (k == (ssize_t)sizeof got) {
                got.detail[sizeof got.detail - 1] = 0;
                *err = got;
                r = -(got.error ?: EIO);
        } else
                r = sandbox_fail(err, SANDBOX_STEP_INIT, k < 0 ? negative_errno() : -EIO,
                                 "a short report from the command's setup");
        /* It has failed: the command exits right after its report, and the helper
         * reaps it and exits; entering_end() makes sure of it, bounded. */
        entering_end(x->pidfd);
        safe_close(x->pidfd);
        safe_close(x->errfd);
        free(x);
        return r;
}

void sandbox_enter_abandon(SandboxEntering *x, pid_t *ret_pid, int *ret_pidfd)
{
        /* SIGUSR1: the helper kills the command's process group and the command
         * (SIGKILL: a task of a frozen cgroup2 dies of it too), then exits. Blocked
         * until the helper knows the command's pid, it waits for that; a helper
         * that failed before exits anyway. */
        (void)syscall(SYS_pidfd_send_signal, x->pidfd, SIGUSR1, NULL, 0);
        *ret_pid = x->pid;
        *ret_pidfd = TAKE_FD(x->pidfd);
        safe_close(x->errfd);
        free(x);
}

void sandbox_enter_cancel(SandboxEntering *x)
{
        pid_t pid;
        int pidfd;

        if (!x)
                return;
        sandbox_enter_abandon(x, &pid, &pidfd);
        /* The helper's end, bounded: then SIGKILL (its command dies of its
         * parent-death signal once it runs). */
        entering_end(pidfd);
        safe_close(pidfd);
}

int sandbox_enter(const SandboxEnter *e, pid_t *ret_pid, int *ret_pidfd, SandboxError *err)
{
        SandboxEntering *x = NULL;
        int r = sandbox_enter_start(e, &x, err);

        if (r < 0)
                return r;
        for (;;) {
                struct pollfd p = {.fd = sandbox_entering_fd(x), .events = POLLIN};

                r = poll(&p, 1, SANDBOX_ENTER_TIMEOUT_MS);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0) {
                        sandbox_enter_cancel(x);
                        return sandbox_fail(err, SANDBOX_STEP_INIT,
                                            r < 0 ? negative_errno() : -ETIMEDOUT,
                                            "the command was not set up within %d ms",
                                            SANDBOX_ENTER_TIMEOUT_MS);
                }
                r = sandbox_enter_finish(x, ret_pid, ret_pidfd, err);
                if (r != -EAGAIN)
                        return r;
        }
}
