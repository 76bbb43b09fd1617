/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sandbox's init after the app started (init.h). Linked into libcella-sandbox
 * and into cella-init, the small static executable the sandbox's pid 1 becomes.
 */
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

        sigemptyset(ret_mask);
        sigaddset(ret_mask, SIGCHLD);
        for (size_t i = 0; i < n; i++)
                sigaddset(ret_mask, forwarded_signals[i]);
        if (sigprocmask(SIG_BLOCK, ret_mask, NULL) < 0)
                return -errno;
        for (size_t i = 0; i < n; i++) {
                struct sigaction h = {.sa_handler = noop_handler, .sa_flags = SA_RESTART};

                if (sigaction(forwarded_signals[i], &h, NULL) < 0)
                        return -errno;
        }
        return 0;
}

/* Reaps every child that has ended; on the app's end, reports it and exits. */
static void reap_all(int ctl, pid_t app)
{
        for (;;) {
                int status;
                pid_t p = waitpid(-1, &status, WNOHANG);

                if (p <= 0)
                        return;
                if (p == app) {
                        (void)sandbox_msg_send(ctl, MSG_EXITED, status);
                        _exit(0);
                }
        }
}

int sandbox_init_wait(int ctl, pid_t app, int timeout_ms)
{
        struct timespec deadline, now, left;
        sigset_t mask;

        /* The caller blocked the set already (blocked signals are queued for
         * sigwaitinfo whatever their handler); this learns it and puts back the
         * handlers an exec reset. A failure here changes neither. */
        (void)sandbox_init_signals(&mask);
        reap_all(ctl, app);
        if (timeout_ms >= 0) {
                clock_gettime(CLOCK_MONOTONIC, &deadline);
                deadline.tv_sec += timeout_ms / 1000;
                deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
                if (deadline.tv_nsec >= 1000000000L) {
                        deadline.tv_sec++;
                        deadline.tv_nsec -= 1000000000L;
                }
        }
        for (;;) {
                siginfo_t si;
                int sig;

                if (timeout_ms < 0)
                        sig = sigwaitinfo(&mask, &si);
                else {
                        clock_gettime(CLOCK_MONOTONIC, &now);
                        left.tv_sec = deadline.tv_sec - now.tv_sec;
                        left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
                        if (left.tv_nsec < 0) {
                                left.tv_sec--;
                                left.tv_nsec += 1000000000L;
                        }
                        if (left.tv_sec < 0)
                                return 0;
                        sig = sigtimedwait(&mask, &si, &left);
                        if (sig < 0 && errno == EAGAIN)
                                return 0;
                }
                if (sig < 0)
                        continue;
                if (sig != SIGCHLD) {
                        kill(app, sig);
                        continue;
                }
                reap_all(ctl, app);
        }
}

_Noreturn void sandbox_init_loop(int ctl, pid_t app)
{
        for (;;)
                (void)sandbox_init_wait(ctl, app, -1);
}
