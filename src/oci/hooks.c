/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The config's hooks (hooks.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Runs one hook; 0, or -EIO with err, or -errno. */
static int hook_run(const OciHook *h, const char *what, const char *state_json, char *err,
                    size_t errlen)
{
        _cleanup_close_pair_ int in[2] = {-EBADF, -EBADF};
        _cleanup_close_ int pidfd = -EBADF;
        char *const empty[] = {NULL};
        char *const *argv;
        char *argv0[] = {h->path, NULL};
        siginfo_t si = {};
        int64_t deadline;
        pid_t pid;
        int r;

        if (pipe2(in, O_CLOEXEC) < 0)
                return negative_errno();
        argv = h->args && h->args[0] ? h->args : argv0;
        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                if (dup2(in[0], STDIN_FILENO) < 0)
                        _exit(127);
                (void)dup2(STDERR_FILENO, STDOUT_FILENO);
                (void)close_range(3, ~0u, 0);
                (void)signal(SIGPIPE, SIG_DFL);
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
        deadline = h->timeout > 0 ? now_ms() + (int64_t)h->timeout * 1000 : -1;
        for (;;) {
                struct pollfd p = {.fd = pidfd, .events = POLLIN};
                int64_t left = deadline < 0 ? -1 : deadline - now_ms();

                if (pidfd < 0)
                        break;
                if (deadline >= 0 && left <= 0) {
                        (void)kill(pid, SIGKILL);
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
        if (si.si_code == CLD_EXITED)
                snprintf(err, errlen, "%s hook %s: exit status %d", what, h->path, si.si_status);
        else
                snprintf(err, errlen, "%s hook %s: killed by signal %d", what, h->path,
                         si.si_status);
        return -EIO;
}

int oci_hooks_run(const OciConfig *c, OciHookKind kind, const char *state_json, bool stop_on_error,
                  char *err, size_t errlen)
{
        const char *what = oci_hook_kind_name(kind);

        for (size_t i = 0; i < c->n_hooks[kind]; i++) {
                int r;

                oci_log(OCI_LOG_DEBUG, "running %s hook %zu: %s", what, i, c->hooks[kind][i].path);
                r = hook_run(&c->hooks[kind][i], what, state_json, err, errlen);
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
