/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `cella run` and `cella boot` through cellad (docs/cli.md "Through cellad"): when a
 * cellad answers for the state directory, the command asks it to run the folder
 * (org.cella.Run, docs/api.md) instead of embedding a kernel.
 *
 * The request carries the folder (opened here, O_RDONLY | O_DIRECTORY: the daemon
 * opens no path a client names) and the run's stdin, stdout and stderr. stdout and
 * stderr are pipes this process relays to its own, rendered inert on a terminal as
 * an embedded run renders them (termsafe.h); stdin is ours when it is a file or a
 * pipe, else a pipe fed from the terminal (or /dev/null). So cellad's child kernel
 * never holds the caller's terminal. SIGINT, SIGTERM and SIGHUP are passed on with
 * org.cella.RunSignal on a second connection (the first is busy with the run's
 * stream), as an embedded run forwards them; the run's exit status is the last
 * reply, and ours.
 *
 * Three threads: the caller's waits for the replies (control_client_call), one
 * relays the output (blocking writes: a reader that does not read stops the app,
 * as it would an embedded run's), one takes the signals (signalfd), so Ctrl-C
 * reaches the run even while the output is stuck.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/termsafe.h"
#include "cli/cli.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "cli/run-client.h"
#include "base/fdpass.h"
#include "supervisor/control.h"
#include "supervisor/terminal.h"

#define RELAY_BUFFER 16384

typedef struct Relay {
        const char *socket_path;
        const char *signal_method; /* org.cella.RunSignal or org.cella.ExecSignal */
        bool raw_output;
        int out, err, tty_in, to_app; /* read ends; our terminal and the app's stdin pipe */
        int sigfd, wake;              /* signalfd; eventfd: the pid is known, or the end */
        int tty_sock;                 /* cella exec -t: the pty's master comes over it */
        int tty_wake;                 /* eventfd: the call is over (the tty thread's own) */
        atomic_int master;            /* ... and is this once it came; else -1 */
        bool interactive;             /* cella exec -t -i: our stdin goes to the pty */
        atomic_int pid;               /* the run's kernel, once the first reply came */
        atomic_bool done;
        int exit_code;  /* from the last reply; -1 until then */
        bool got_error; /* an error reply */
        bool denied;    /* it was org.cella.PermissionDenied */
        int error_exit; /* the error's parameters.exit_code, or -1 */
        const char *cmd;
} Relay;

/* Writes all of buf to fd (blocking). A reader gone (EPIPE) drops the rest. */
static void write_all(int fd, const char *buf, size_t n)
{
        while (n > 0) {
                ssize_t k = write(fd, buf, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return;
                buf += k;
                n -= (size_t)k;
        }
}

/* One stream from the run to our fd `to`, rendered inert on a terminal. Returns
 * false at its end. */
static bool relay_one(int from, int to, TermSafe *safe, bool sanitize)
{
        char buf[RELAY_BUFFER];
        char out[TERMSAFE_STREAM_OUT(RELAY_BUFFER)];
        ssize_t k = read(from, buf, sizeof buf);

        if (k < 0 && (errno == EINTR || errno == EAGAIN))
                return true;
        if (k <= 0) {
                if (sanitize) {
                        size_t n = termsafe_stream_end(safe, out);

                        write_all(to, out, n);
                }
                return false;
        }
        if (sanitize)
                write_all(to, out, termsafe_stream(safe, buf, (size_t)k, out));
        else
                write_all(to, buf, (size_t)k);
        return true;
}

static void *output_thread(void *ud)
{
        Relay *r = ud;
        TermSafe safe_out = {}, safe_err = {};
        bool san_out = !r->raw_output && isatty(STDOUT_FILENO);
        bool san_err = !r->raw_output && isatty(STDERR_FILENO);
        /* What was read from our stdin and not yet taken by the app's pipe: while it
         * waits, our stdin is not read (the app reads at its pace), and the output is
         * relayed on: a blocking write into a full pipe would stop both, and an app
         * that writes without reading its stdin would then wait on us forever. */
        char in_buf[4096];
        size_t in_len = 0, in_off = 0;
        int in_fd = r->tty_in >= 0 ? r->tty_in : -1; /* -1 once at its end */
        struct pollfd p[4] = {
                {.fd = r->out, .events = POLLIN},
                {.fd = r->err, .events = POLLIN},
                {.fd = r->tty_in >= 0 ? r->tty_in : -1, .events = POLLIN},
                {.fd = -1, .events = POLLOUT},
        };

        if (r->to_app >= 0)
                (void)fcntl(r->to_app, F_SETFL, fcntl(r->to_app, F_GETFL) | O_NONBLOCK);
        while (p[0].fd >= 0 || p[1].fd >= 0) {
                if (poll(p, 4, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[0].revents && !relay_one(p[0].fd, STDOUT_FILENO, &safe_out, san_out))
                        p[0].fd = -1;
                if (p[1].revents && !relay_one(p[1].fd, STDERR_FILENO, &safe_err, san_err))
                        p[1].fd = -1;
                if (p[2].fd >= 0 && p[2].revents) {
                        ssize_t k = read(p[2].fd, in_buf, sizeof in_buf);

                        if (k > 0) {
                                in_len = (size_t)k;
                                in_off = 0;
                        } else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
                                /* Ctrl-D: the app reads its end of file. */
                                in_fd = -1;
                                r->to_app = safe_close(r->to_app);
                        }
                }
                if (in_len > in_off && r->to_app >= 0) {
                        ssize_t k = write(r->to_app, in_buf + in_off, in_len - in_off);

                        if (k > 0)
                                in_off += (size_t)k;
                        else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                                /* The app closed its stdin: nothing more goes in. */
                                in_len = in_off = 0;
                                in_fd = -1;
                                r->to_app = safe_close(r->to_app);
                        }
                }
                /* While the pipe has no room, wait for room, not for more input. */
                if (in_len > in_off && r->to_app >= 0) {
                        p[3].fd = r->to_app;
                        p[2].fd = -1;
                } else {
                        p[3].fd = -1;
                        p[2].fd = in_fd;
                }
        }
        return NULL;
}

/* Passes sig to the run (org.cella.RunSignal on a connection of its own). */
static void pass_signal(Relay *r, int sig)
{
        ControlClient *cl = NULL;
        json_t *p = json_pack("{s:i, s:i}", "pid", atomic_load(&r->pid), "signal", sig);

        if (!p || control_client_connect(r->socket_path, &cl) < 0) {
                json_decref(p);
                log_warning("%s: cannot pass signal %d to the run: cellad does not answer", r->cmd,
                            sig);
                return;
        }
        (void)control_client_call(cl, r->signal_method, p, NULL, 0, false, NULL, NULL);
        control_client_free(cl);
}

/* cella exec -t: our terminal's window size to the command's pty (the kernel then
 * sends SIGWINCH to the pty's foreground process group, tty_ioctl(4)). */
static void tty_resize(Relay *r)
{
        struct winsize ws = {};
        int master = atomic_load(&r->master);

        if (master < 0)
                return;
        terminal_size(&ws.ws_row, &ws.ws_col);
        (void)ioctl(master, TIOCSWINSZ, &ws);
}

/* cella exec -t: the pty's master from tty_sock, if it is one (the command sent it
 * before its execve, so it is the one sandbox_enter() made; still checked: a
 * character device on which TIOCGPTN answers). Returns the fd or -errno. */
static int tty_take_master(int sock)
{
        struct stat st;
        unsigned n;
        int fd = fd_receive(sock);

        if (fd < 0)
                return fd;
        if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || ioctl(fd, TIOCGPTN, &n) < 0) {
                safe_close(fd);
                return -EBADMSG;
        }
        return fd;
}

/*
 * cella exec -t: the command's pty relayed to our terminal, as it is (the user asked
 * for a terminal: docs/security.md "cella exec"); our stdin (-i) to the pty, at the
 * pace the command reads it. Ends at the pty's hang-up (every holder of the slave
 * gone: EIO), or, once the call is over (done), when the master has been read out
 * (nothing more within 100 ms: a process the command left behind may hold the
 * slave).
 */
static void *tty_thread(void *ud)
{
        Relay *r = ud;
        char in_buf[4096], buf[RELAY_BUFFER];
        size_t in_len = 0, in_off = 0;
        int master = -EBADF;
        bool in_open = r->interactive && r->tty_in >= 0;
        struct pollfd p[3];

        /* The master first, or the end of the call. */
        for (;;) {
                struct pollfd w[2] = {{.fd = r->tty_sock, .events = POLLIN},
                                      {.fd = r->tty_wake, .events = POLLIN}};

                /* The command sent the master before its execve, so before the call's
                 * first reply: once the call is over, it is here or never comes. */
                if (poll(w, 2, atomic_load(&r->done) ? 0 : -1) < 0 && errno != EINTR)
                        return NULL;
                if (w[0].revents) {
                        master = tty_take_master(r->tty_sock);
                        if (master >= 0)
                                break;
                        if (master != -EAGAIN) {
                                log_debug("no pty master from the command: %s", strerror(-master));
                                return NULL;
                        }
                }
                if (w[1].revents) {
                        uint64_t v;

                        (void)!read(r->tty_wake, &v, sizeof v);
                }
                if (atomic_load(&r->done))
                        return NULL;
        }
        (void)fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
        atomic_store(&r->master, master);
        tty_resize(r); /* a SIGWINCH may have come before the master */
        for (;;) {
                bool done = atomic_load(&r->done);
                int k;

                p[0] = (struct pollfd){.fd = master, .events = POLLIN};
                if (in_len > in_off)
                        p[0].events |= POLLOUT;
                p[1] = (struct pollfd){.fd = in_open && in_len == in_off ? r->tty_in : -1,
                                       .events = POLLIN};
                p[2] = (struct pollfd){.fd = done ? -1 : r->tty_wake, .events = POLLIN};
                k = poll(p, 3, done ? 100 : -1);
                if (k < 0 && errno != EINTR)
                        break;
                if (k == 0)
                        break; /* done, and nothing more came */
                if (p[2].revents) {
                        uint64_t v;

                        (void)!read(r->tty_wake, &v, sizeof v);
                }
                if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t n = read(master, buf, sizeof buf);

                        if (n > 0)
                                write_all(STDOUT_FILENO, buf, (size_t)n);
                        else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                                break; /* EIO: the slave is closed everywhere */
                }
                if (p[1].fd >= 0 && p[1].revents) {
                        ssize_t n = read(r->tty_in, in_buf, sizeof in_buf);

                        if (n > 0) {
                                in_len = (size_t)n;
                                in_off = 0;
                        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                                /* Our end of file: the terminal's end-of-file character
                                 * is the command's (as typing Ctrl-D there would be). */
                                struct termios t;

                                in_open = false;
                                if (tcgetattr(master, &t) == 0 && t.c_cc[VEOF])
                                        (void)!write(master, &t.c_cc[VEOF], 1);
                        }
                }
                if (in_len > in_off) {
                        ssize_t n = write(master, in_buf + in_off, in_len - in_off);

                        if (n > 0)
                                in_off += (size_t)n;
                        else if (n < 0 && errno != EAGAIN && errno != EINTR)
                                in_len = in_off = 0;
                }
        }
        return NULL;
}

static void *signal_thread(void *ud)
{
        Relay *r = ud;
        int pending[8];
        size_t n_pending = 0;
        struct pollfd p[2] = {{.fd = r->sigfd, .events = POLLIN},
                              {.fd = r->wake, .events = POLLIN}};

        while (!atomic_load(&r->done)) {
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents) {
                        uint64_t v;

                        (void)!read(r->wake, &v, sizeof v);
                }
                if (p[0].revents) {
                        struct signalfd_siginfo si;

                        if (read(r->sigfd, &si, sizeof si) != (ssize_t)sizeof si)
                                continue;
                        if (si.ssi_signo == SIGWINCH)
                                tty_resize(r);
                        else if (n_pending < ELEMENTSOF(pending))
                                pending[n_pending++] = (int)si.ssi_signo;
                }
                if (atomic_load(&r->done))
                        break;
                if (atomic_load(&r->pid) <= 0)
                        continue; /* sent once the run's pid is known */
                for (size_t i = 0; i < n_pending; i++)
                        pass_signal(r, pending[i]);
                n_pending = 0;
        }
        return NULL;
}

static int on_run_reply(json_t *params, bool continues, void *ud)
{
        Relay *r = ud;
        json_t *pid = json_object_get(params, "pid");
        uint64_t one = 1;

        if (continues) {
                if (json_is_integer(pid) && atomic_load(&r->pid) <= 0) {
                        atomic_store(&r->pid, (int)json_integer_value(pid));
                        (void)!write(r->wake, &one, sizeof one);
                }
                return 0;
        }
        if (json_is_integer(json_object_get(params, "exit_code")))
                r->exit_code = (int)json_integer_value(json_object_get(params, "exit_code"));
        return 0;
}

static int on_any(json_t *reply, bool continues, void *ud)
{
        Relay *r = ud;
        const char *err = control_reply_error_name(reply);

        if (err) {
                char safe[1024];

                r->got_error = true;
                r->denied = strcmp(err, CONTROL_ERROR_PERMISSION_DENIED) == 0;
                {
                        json_t *x = json_object_get(control_reply_parameters(reply), "exit_code");

                        if (json_is_integer(x))
                                r->error_exit = (int)json_integer_value(x);
                }
                termsafe_field(control_reply_message(reply), sizeof safe - 4, safe, sizeof safe);
                log_error("%s: cellad: %s: %s%s", r->cmd, err, safe,
                          r->denied ? " (run it as root or as a member of group cella, or "
                                      "with --embedded as root)"
                                    : "");
                return 0;
        }
        return on_run_reply(control_reply_parameters(reply) ?: json_object(), continues, ud);
}

/* Our stdin for the run: fd 0 itself (a file or a pipe), a pipe fed from our terminal
 * (*ret_tty the terminal, *ret_feed the pipe's write end), or /dev/null. */
static int run_stdin(int mode, int *ret_tty, int *ret_feed)
{
        int p[2];
        bool open0 = fcntl(STDIN_FILENO, F_GETFD) >= 0;

        *ret_tty = *ret_feed = -EBADF;
        if (mode == 1 || (mode == 0 && !open0))
                return open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (mode == 3)
                open0 = false; /* an empty pipe */
        if (mode == 0 && !isatty(STDIN_FILENO))
                return fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        if (pipe2(p, O_CLOEXEC) < 0)
                return -1;
        if (!open0) {
                /* Nothing to feed: the command reads its end of file at once. */
                safe_close(p[1]);
                return p[0];
        }
        *ret_tty = STDIN_FILENO;
        *ret_feed = p[1];
        return p[0];
}

/* The stream call both commands make: method with params (stolen) and the fds
 * [folder_fd if >= 0], stdin, stdout, stderr[, status_fd if >= 0: the run's kernel
 * writes its --json-status records there]; relays, takes the last reply's
 * exit_code. stdin_mode: 0 ours (a file or pipe; a terminal through a pipe), 1
 * /dev/null, 2 always a pipe we feed (the daemon wants a pipe: cella exec), 3 an
 * empty pipe (cella exec without -i). signal_method: pass SIGINT, SIGTERM, SIGHUP
 * (and SIGQUIT to org.cella.ExecSignal) on with it; NULL: none. */
static int stream_call(const char *cmd, const char *state_dir, const char *method, json_t *params,
                       int folder_fd, int status_fd, int stdin_mode, bool raw_output,
                       const char *signal_method, bool tty)
{
        bool forward = signal_method != NULL;
        int tty_pair[2] = {-EBADF, -EBADF};
        _cleanup_free_ char *socket_path = NULL;
        _cleanup_close_ int in = -EBADF;
        int out[2] = {-EBADF, -EBADF}, err[2] = {-EBADF, -EBADF};
        int fds[5], n_fds = 0;
        ControlClient *cl = NULL;
        Relay relay = {.exit_code = -1, .error_exit = -1, .cmd = cmd, .raw_output = raw_output};
        pthread_t tout, tsig;
        bool have_out = false, have_sig = false;
        sigset_t mask, old;
        int r, code = CELLA_EXIT_INTERNAL;

        relay.tty_in = relay.to_app = relay.sigfd = relay.wake = relay.tty_sock = relay.tty_wake =
                -EBADF;
        atomic_store(&relay.master, -EBADF);
        sigemptyset(&mask);
        pthread_sigmask(SIG_BLOCK, &mask, &old);
        if (asprintf(&socket_path, "%s/cellad.sock", state_dir) < 0) {
                json_decref(params);
                return CELLA_EXIT_INTERNAL;
        }
        relay.socket_path = socket_path;
        relay.signal_method = signal_method;
        if (tty) {
                /* The command's pty takes the place of its three pipes (cella exec -t). */
                relay.interactive = stdin_mode == 2;
                relay.tty_in = relay.interactive && fcntl(STDIN_FILENO, F_GETFD) >= 0 ? STDIN_FILENO
                                                                                      : -EBADF;
                in = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, tty_pair) < 0
                             ? -1
                             : TAKE_FD(tty_pair[1]);
                relay.tty_sock = tty_pair[0];
                relay.tty_wake = eventfd(0, EFD_CLOEXEC);
        } else
                in = run_stdin(stdin_mode, &relay.tty_in, &relay.to_app);
        if (in < 0 || (tty && relay.tty_wake < 0) || pipe2(out, O_CLOEXEC) < 0 ||
            pipe2(err, O_CLOEXEC) < 0) {
                json_decref(params);
                log_error_errno(negative_errno(), "%s: cannot make the pipes: %m", cmd);
                goto out;
        }
        r = control_client_connect(socket_path, &cl);
        if (r < 0) {
                json_decref(params);
                log_error_errno(r, "%s: cannot connect to %s: %m", cmd, socket_path);
                goto out;
        }
        (void)signal(SIGPIPE, SIG_IGN);
        relay.out = out[0];
        relay.err = err[0];
        relay.wake = eventfd(0, EFD_CLOEXEC);
        if (forward) {
                /* Signals are taken by the signal thread alone: blocked here first, so
                 * that the threads inherit the mask. */
                sigaddset(&mask, SIGINT);
                sigaddset(&mask, SIGTERM);
                sigaddset(&mask, SIGHUP);
                if (strcmp(signal_method, "org.cella.ExecSignal") == 0)
                        sigaddset(&mask, SIGQUIT);
                if (tty)
                        sigaddset(&mask, SIGWINCH);
                pthread_sigmask(SIG_BLOCK, &mask, NULL);
                relay.sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
        }
        if ((forward && relay.sigfd < 0) || relay.wake < 0) {
                json_decref(params);
                log_error_errno(negative_errno(), "%s: cannot take signals: %m", cmd);
                goto out_mask;
        }
        if (forward)
                have_sig = pthread_create(&tsig, NULL, signal_thread, &relay) == 0;
        /* Our write ends stay open until the call is over, so the output thread sees
         * the end only once the daemon's child has gone and we closed them. */
        have_out = pthread_create(&tout, NULL, tty ? tty_thread : output_thread, &relay) == 0;
        if (folder_fd >= 0)
                fds[n_fds++] = folder_fd;
        fds[n_fds++] = in;
        if (!tty) {
                fds[n_fds++] = out[1];
                fds[n_fds++] = err[1];
        }
        if (status_fd >= 0)
                fds[n_fds++] = status_fd;
        /* Raw only when our keys go to the command (-t -i): with -t alone, Ctrl-C
         * stays ours, and is passed on as SIGINT. */
        if (tty && relay.interactive && isatty(STDIN_FILENO) && terminal_raw() < 0)
                log_warning("%s: cannot put the terminal in raw mode: %m", cmd);
        r = control_client_call(cl, method, params, fds, (size_t)n_fds, true, on_any, &relay);
        /* Over (or never began): our write ends would hide the EOF. */
        out[1] = safe_close(out[1]);
        err[1] = safe_close(err[1]);
        in = safe_close(in);
        if (relay.got_error)
                code = relay.denied            ? CELLA_EXIT_STATE
                       : relay.error_exit >= 0 ? relay.error_exit
                                               : 1;
        else if (r < 0 || relay.exit_code < 0)
                log_error("%s: cellad went away before the end%s%s", cmd, r < 0 ? ": " : "",
                          r < 0 ? strerror(-r) : "");
        else
                code = relay.exit_code;
out_mask:
        atomic_store(&relay.done, true);
        if (relay.wake >= 0)
                (void)!write(relay.wake, &(uint64_t){1}, sizeof(uint64_t));
        if (have_sig)
                pthread_join(tsig, NULL);
        if (have_out) {
                /* The daemon's child is gone, so are the pipes' writers: the rest is read
                 * out. A reader of ours that stopped reading gets 5 s (it is over). */
                if (tty)
                        (void)!write(relay.tty_wake, &(uint64_t){1}, sizeof(uint64_t));
                struct timespec deadline;

                clock_gettime(CLOCK_REALTIME, &deadline);
                deadline.tv_sec += 5;
                if (pthread_timedjoin_np(tout, NULL, &deadline) != 0)
                        log_debug("output not taken by our reader in 5 s: dropped");
        }
        control_client_free(cl);
out:
        /* Every way out of a -t session gives the terminal back as it was (and
         * atexit does, terminal.c). */
        terminal_restore();
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        safe_close(atomic_load(&relay.master));
        safe_close(relay.tty_sock);
        safe_close(relay.tty_wake);
        safe_close(tty_pair[1]);
        safe_close(relay.sigfd);
        safe_close(relay.wake);
        safe_close(relay.to_app);
        for (size_t i = 0; i < 2; i++) {
                safe_close(out[i]);
                safe_close(err[i]);
        }
        return code;
}

int cli_run_through_daemon(const char *cmd, const KernelOptions *k, const char *folder,
                           char *const *extra_args, bool boot)
{
        _cleanup_close_ int dirfd = -EBADF;
        json_t *params, *args;

        dirfd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                /* As the embedded kernel says it (supervisor_load_manifest). */
                log_error_errno(negative_errno(), "%s: %m", folder);
                return CELLA_EXIT_MANIFEST;
        }
        params = json_object();
        args = json_array();
        for (size_t i = 0; extra_args && extra_args[i]; i++)
                json_array_append_new(args, json_string(extra_args[i]));
        if (!params || !args || json_object_set_new(params, "args", args) < 0 ||
            json_object_set_new(params, "verbose", json_boolean(log_verbose > 0)) < 0 ||
            (boot && json_object_set_new(params, "boot", json_true()) < 0) ||
            (k->json_status_fd >= 0 &&
             json_object_set_new(params, "json_status", json_true()) < 0)) {
                json_decref(params);
                return CELLA_EXIT_INTERNAL;
        }
        return stream_call(cmd, k->state_dir, "org.cella.Run", params, dirfd, k->json_status_fd,
                           boot ? 1 : 0, k->raw_output, "org.cella.RunSignal", false);
}

int cli_exec_through_daemon(const char *state_dir, const char *app, char *const *argv,
                            bool raw_output, bool interactive, bool tty)
{
        json_t *params = json_object(), *a = json_array();

        for (size_t i = 0; argv && argv[i]; i++)
                json_array_append_new(a, json_string(argv[i]));
        if (!params || !a || json_object_set_new(params, "app", json_string(app)) < 0 ||
            json_object_set_new(params, "argv", a) < 0) {
                json_decref(params);
                json_decref(a);
                return CELLA_EXIT_INTERNAL;
        }
        if (tty) {
                unsigned short rows, cols;

                terminal_size(&rows, &cols);
                if (json_object_set_new(params, "tty", json_true()) < 0 ||
                    json_object_set_new(params, "rows", json_integer(rows)) < 0 ||
                    json_object_set_new(params, "cols", json_integer(cols)) < 0) {
                        json_decref(params);
                        return CELLA_EXIT_INTERNAL;
                }
        }
        return stream_call("exec", state_dir, "org.cella.Exec", params, -1, -1, interactive ? 2 : 3,
                           raw_output, "org.cella.ExecSignal", tty);
}
