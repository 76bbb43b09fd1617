/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Running one probe in a child and judging how it ended; see probe.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probe.h"

typedef struct Marker {
        long ret;
        int err;
} Marker;

ProbeOutcome probe_classify(bool reported, int wait_status)
{
        if (reported)
                return PROBE_RETURNED;
        if (!WIFSIGNALED(wait_status))
                return PROBE_LOST;
        switch (WTERMSIG(wait_status)) {
        case SIGSYS:
                return PROBE_KILLED;
        case SIGSEGV:
        case SIGILL:
        case SIGBUS:
                return PROBE_FAULTED;
        default:
                return PROBE_LOST;
        }
}

int probe_run(long (*call)(void *userdata), void *userdata, ProbeResult *ret)
{
        Marker m = {0};
        int fds[2], status = 0;
        ssize_t k;
        pid_t pid;

        *ret = (ProbeResult){.outcome = PROBE_LOST};
        if (pipe2(fds, O_CLOEXEC) < 0) {
                ret->status = -errno;
                return 0;
        }
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                ret->status = -errno;
                close(fds[0]);
                close(fds[1]);
                return 0;
        }
        if (pid == 0) {
                /* A fault must end the child with its own signal, whatever handler
                 * the parent installed (a sanitizer's, in the unit tests). */
                static const int faults[] = {SIGSEGV, SIGILL, SIGBUS, SIGSYS};

                for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
                        signal(faults[i], SIG_DFL);
                close(fds[0]);
                m.ret = call(userdata);
                m.err = errno;
                /* The marker: only reached if the call returned. */
                _exit(write(fds[1], &m, sizeof m) == (ssize_t)sizeof m ? 0 : 1);
        }
        close(fds[1]);
        do
                k = read(fds[0], &m, sizeof m);
        while (k < 0 && errno == EINTR);
        close(fds[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        ret->status = status;
        ret->outcome = probe_classify(k == (ssize_t)sizeof m, status);
        if (ret->outcome == PROBE_RETURNED) {
                ret->ret = m.ret;
                ret->err = m.ret < 0 ? m.err : 0;
        }
        return 0;
}

ProbeVerdict probe_judge(const ProbeResult *r, char *why, size_t n)
{
        switch (r->outcome) {
        case PROBE_RETURNED:
                if (r->ret >= 0) {
                        snprintf(why, n, "succeeded (returned %ld)", r->ret);
                        return VERDICT_ESCAPED;
                }
                snprintf(why, n, "%s", strerror(r->err));
                return VERDICT_REFUSED;
        case PROBE_KILLED:
                snprintf(why, n, "killed by SIGSYS (the seccomp filter)");
                return VERDICT_REFUSED;
        case PROBE_FAULTED:
                snprintf(why, n, "SIG%s before the call returned: not available on this kernel",
                         sigabbrev_np(WTERMSIG(r->status)) ?: "?");
                return VERDICT_NOT_APPLICABLE;
        case PROBE_LOST:
        default:
                if (r->status < 0)
                        snprintf(why, n, "the probe could not start: %s", strerror(-r->status));
                else if (WIFSIGNALED(r->status))
                        snprintf(why, n, "the probe died of signal %d before the call returned",
                                 WTERMSIG(r->status));
                else if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == PROBE_EXIT_SETUP)
                        snprintf(why, n, "the probe's setup failed before the call");
                else
                        snprintf(why, n, "the probe exited (%d) before the call returned",
                                 WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1);
                return VERDICT_NOT_APPLICABLE;
        }
}
