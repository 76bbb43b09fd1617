/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sandbox's init after the app started (init.h). Linked into libcella-sandbox
 * and into cella-init, the small static executable the sandbox's pid 1 becomes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/time-util.h"
#include "sandbox/init.h"

/* Signals init passes on to the app; SIGKILL and SIGSTOP cannot be caught. */
static const int forwarded_signals[] = {SIGTERM, SIGINT,   SIGHUP,  SIGQUIT, SIGUSR1,
                                        SIGUSR2, SIGWINCH, SIGCONT, SIGALRM};

int sandbox_msg_send(int ctl, MsgType type, int32_t value)
{
        Msg m = {.type = type, .value = value};

        return send(ctl, &m, sizeof m, MSG_NOSIGNAL) == (ssize_t)sizeof m ? 0 : -errno;
}

static void noop_handler(int sig)
{
        (void)sig;
}

int sandbox_init_signals(sigset_t *ret_mask)
{
        const size_t n = sizeof forwarded_signals / sizeof forwarded_signals[0];
        struct sigaction h = {.sa_handler = noop_handler, .sa_flags = SA_RESTART};

        sigemptyset(ret_mask);
        sigaddset(ret_mask, SIGCHLD);
        sigaddset(ret_mask, SIGIO);
        for (size_t i = 0; i < n; i++)
                sigaddset(ret_mask, forwarded_signals[i]);
        if (sigprocmask(SIG_BLOCK, ret_mask, NULL) < 0)
                return -errno;
        for (size_t i = 0; i < n; i++)
                if (sigaction(forwarded_signals[i], &h, NULL) < 0)
                        return -errno;
        /* SIGIO is ours, not the app's: the ctl hangup (spawn.c watch_ctl_hangup()).
         * From the kernel, it too reaches a namespace's init only with a handler. */
        if (sigaction(SIGIO, &h, NULL) < 0)
                return -errno;
        return 0;
}

/* Whether every copy of the parent's end of ctl is closed: a read finds the end
 * of the stream (nobody sends init anything once the app runs, so nothing is
 * queued to be read instead), or ECONNRESET, which Linux reports once instead
 * when the last copy closed with our reports (INIT_EXEC) still unread in it
 * (unix_release_sock()). */
static bool ctl_hung_up(int ctl)
{
        char c;
        ssize_t k = recv(ctl, &c, 1, MSG_PEEK | MSG_DONTWAIT);

        return k == 0 || (k < 0 && errno == ECONNRESET);
}

int sandbox_init_exit_code(int status)
{
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return 255;
}

/* Reaps every child that has ended; on the app's end, reports it and exits (0, or
 * with SANDBOX_INIT_DETACHED the app's status). */
static void reap_all(int ctl, pid_t app, unsigned flags)
{
        for (;;) {
                int status;
                pid_t p = waitpid(-1, &status, WNOHANG);

                if (p <= 0)
                        return;
                if (p == app) {
                        (void)sandbox_msg_send(ctl, MSG_EXITED, status);
                        _exit(flags & SANDBOX_INIT_DETACHED ? sandbox_init_exit_code(status) : 0);
                }
        }
}

int sandbox_init_wait(int ctl, pid_t app, int timeout_ms, unsigned flags)
{
        uint64_t deadline_ns = 0;
        sigset_t mask;

        /* The caller blocked the set already (blocked signals are queued for
         * sigwaitinfo whatever their handler); this learns it and puts back the
         * handlers an exec reset. A failure here changes neither. */
        (void)sandbox_init_signals(&mask);
        reap_all(ctl, app, flags);
        /* Detached: nobody need hold ctl (cella-oci's create has exited). */
        if (!(flags & SANDBOX_INIT_DETACHED) && ctl_hung_up(ctl))
                _exit(0);
        if (timeout_ms >= 0)
                deadline_ns = now_monotonic_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;
        for (;;) {
                siginfo_t si;
                int sig;

                if (timeout_ms < 0)
                        sig = sigwaitinfo(&mask, &si);
                else {
                        uint64_t now = now_monotonic_ns(), left_ns;
                        struct timespec left;

                        if (now >= deadline_ns)
                                return 0;
                        left_ns = deadline_ns - now;
                        left = (struct timespec){.tv_sec = (time_t)(left_ns / NSEC_PER_SEC),
                                                 .tv_nsec = (long)(left_ns % NSEC_PER_SEC)};
                        sig = sigtimedwait(&mask, &si, &left);
                        if (sig < 0 && errno == EAGAIN)
                                return 0;
                }
                if (sig < 0)
                        continue;
                if (sig == SIGIO) {
                        /* Nobody holds the sandbox any more (no kernel, no keeper):
                         * our exit takes the whole pid namespace with it. (Never
                         * armed when detached: spawn.c watch_ctl_hangup().) */
                        if (!(flags & SANDBOX_INIT_DETACHED) && ctl_hung_up(ctl))
                                _exit(0);
                        continue;
                }
                if (sig != SIGCHLD) {
                        kill(app, sig);
                        continue;
                }
                reap_all(ctl, app, flags);
        }
}

_Noreturn void sandbox_init_loop(int ctl, pid_t app, unsigned flags)
{
        for (;;)
                (void)sandbox_init_wait(ctl, app, -1, flags);
}
