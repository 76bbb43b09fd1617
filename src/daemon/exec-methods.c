/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `cella exec ID -- CMD [ARGS]` (docs/api.md "org.cella.Exec", docs/security.md
 * "cella exec"): a command inside a running app's sandbox, as podman exec or adb
 * shell give, for root only, audited, and exactly as confined as the app
 * (sandbox_enter(), src/sandbox/enter.c).
 *
 * The request carries three fds, the command's stdin, stdout and stderr, which must
 * be pipes: `cella exec` makes them and relays them, so the command, which the app
 * can reach (same uid, same namespaces), never holds the caller's terminal (no
 * TIOCSTI into root's shell, no ioctls on it). With "tty": true (`cella exec -t`) it
 * carries one AF_UNIX socket instead: the command gets a pty of the jail's own devpts
 * (made as the app's uid, as the app's own terminal is) and its master goes back over
 * the socket to `cella exec`, which relays it to the caller's terminal. Still never
 * the caller's terminal itself. The command gets no fd of the daemon's and no kernel
 * channel.
 *
 * Signals: org.cella.ExecSignal passes SIGINT, SIGTERM, SIGHUP, SIGQUIT to the
 * command (through its helper, sandbox_enter()), as `cella exec` forwards its own;
 * SIGKILL, and the client's going away, kill the command's process group.
 *
 * Audit: a lifecycle record {"what": "exec", "argv", "tty", "by_uid", "by_pid",
 * "exec_pid"} when it starts (or {"what": "exec", ..., "error", "errno"} when it
 * cannot), {"what": "exec-signal", "exec_pid", "signal", "by_uid", "by_pid"} for a
 * signal passed on, and {"what": "exec-exited", "exec_pid", "exit_code",
 * "duration_ms", "detached"} when it ends ("detached": its client went away first).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/time-util.h"
#include "daemon/daemon-internal.h"
#include "sandbox/sandbox.h"
#include "supervisor/exec.h"

#define EXEC_ARGV_MAX    256
#define EXEC_ARG_LEN_MAX 4096

/*
 * One command, from its request to its end. Its setup (sandbox_enter_start(): the
 * helper forked, the command on its way to its execve) is waited for on the loop,
 * never in it: `setup` watches the error pipe and `timer` bounds the wait at
 * SANDBOX_ENTER_TIMEOUT_MS, so a command that hangs in its setup (its app's cgroup
 * frozen behind cellad's back, or starved of memory) delays only its own client.
 * Then `poll` watches the helper's pidfd for its end. Freed once every handle it
 * initialised is closed (`handles`).
 */
typedef struct Exec Exec;
struct Exec {
        Exec *next;
        Daemon *d;
        ControlCall *call; /* NULL once the client went away */
        char *app;
        json_t *argv; /* for the audit records */
        bool tty;     /* "tty": true */
        uid_t by_uid; /* the caller (SO_PEERCRED), -1 if unknown */
        pid_t by_pid;
        SandboxEntering *entering; /* the setup in progress; NULL once it ended */
        pid_t pid;                 /* the helper (sandbox_enter()), once set up */
        int pidfd;                 /* its pidfd, once set up; else -EBADF */
        uint64_t started_ns;
        bool detached;    /* the client went away first */
        bool failed;      /* never set up: its helper is only reaped, not audited again */
        unsigned handles; /* initialised handles not yet closed */
        uv_poll_t setup;  /* the setup's error pipe */
        uv_timer_t timer; /* its bound */
        uv_poll_t poll;   /* the helper's pidfd */
};

/* The commands running: each reachable from here until its end (a daemon that stops
 * meanwhile closes their handles, supervisor_free(), and they end with it). */
static Exec *execs;

/* The app filter without its listener (sandbox.h, SandboxEnter.seccomp): made once. */
static SeccompProgram *exec_filter;

static void exec_closed(uv_handle_t *h)
{
        Exec *x = h->data;

        if (--x->handles > 0)
                return;
        for (Exec **p = &execs; *p; p = &(*p)->next)
                if (*p == x) {
                        *p = x->next;
                        break;
                }
        sandbox_enter_cancel(x->entering);
        safe_close(x->pidfd);
        json_decref(x->argv);
        free(x->app);
        free(x);
}

/* Closes x's setup handles (the setup ended, or is given up). */
static void exec_setup_close(Exec *x)
{
        uv_poll_stop(&x->setup);
        uv_timer_stop(&x->timer);
        uv_close((uv_handle_t *)&x->setup, exec_closed);
        uv_close((uv_handle_t *)&x->timer, exec_closed);
}

static void exec_on_exit(uv_poll_t *h, int status, int events);
static void exec_reply_failed(ControlCall *call, Exec *x, int r, const SandboxError *err);

/* Gives x's setup up: its helper is told to kill the command (sandbox_enter_abandon())
 * and is reaped when it exits, on the loop (exec_on_exit(), which audits nothing
 * more). */
static void exec_abandon(Exec *x)
{
        pid_t pid;
        int pidfd;

        sandbox_enter_abandon(TAKE_PTR(x->entering), &pid, &pidfd);
        exec_setup_close(x);
        x->failed = true;
        x->pid = pid;
        x->pidfd = pidfd;
        if (uv_poll_init(daemon_loop(x->d), &x->poll, pidfd) < 0) {
                /* Unwatched: the helper is ended and reaped here (it exits at once on
                 * SIGKILL). */
                (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                (void)waitid(P_PIDFD, pidfd, &(siginfo_t){}, WEXITED);
                return;
        }
        x->handles++;
        (void)uv_poll_start(&x->poll, UV_READABLE, exec_on_exit);
}

static void exec_on_abort(ControlCall *call, void *ud)
{
        Exec *x = ud;

        (void)call;
        x->call = NULL;
        x->detached = true;
        if (x->entering) {
                /* Gone during the setup: the helper and the command end now. */
                SandboxError serr = {.step = SANDBOX_STEP_INIT, .error = ECANCELED};

                snprintf(serr.detail, sizeof serr.detail,
                         "its client went away during the command's setup");
                exec_reply_failed(NULL, x, -ECANCELED, &serr);
                exec_abandon(x);
                return;
        }
        /* Never left running without its client: SIGUSR1 makes the helper kill the
         * command's process group, then it exits (sandbox_enter()). */
        (void)syscall(SYS_pidfd_send_signal, x->pidfd, SIGUSR1, NULL, 0);
}

static void exec_on_exit(uv_poll_t *h, int status, int events)
{
        Exec *x = h->data;
        Supervisor *s = daemon_supervisor(x->d);
        siginfo_t si = {};
        int code;

        (void)status;
        (void)events;
        if (waitid(P_PIDFD, x->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
                return;
        uv_poll_stop(h);
        if (x->failed) {
                uv_close((uv_handle_t *)h, exec_closed);
                return;
        }
        code = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
        supervisor_exec_audit(s, x->app,
                              json_pack("{s:s, s:i, s:i, s:f, s:b}", "what", "exec-exited",
                                        "exec_pid", (int)x->pid, "exit_code", code, "duration_ms",
                                        (double)(now_monotonic_ns() - x->started_ns) / 1e6,
                                        "detached", x->detached));
        log_info("%s: exec %d exited with %d", x->app, (int)x->pid, code);
        if (x->call)
                (void)control_reply(x->call,
                                    json_pack("{s:i, s:i}", "pid", (int)x->pid, "exit_code", code));
        x->call = NULL;
        uv_close((uv_handle_t *)h, exec_closed);
}

static int reply_invalid(ControlCall *call, const char *parameter, const char *message)
{
        return control_reply_error(
                call, CONTROL_ERROR_INVALID_PARAMETER,
                json_pack("{s:s, s:s}", "message", message, "parameter", parameter));
}

static json_t *argv_json(char **argv)
{
        json_t *a = json_array();

        STRV_FOREACH (p, argv)
                json_array_append_new(a, json_string(*p));
        return a;
}

/* The final reply and the audit record of x's command that could not be set up
 * (r, err: sandbox_enter()'s). */
static void exec_reply_failed(ControlCall *call, Exec *x, int r, const SandboxError *err)
{
        Supervisor *s = daemon_supervisor(x->d);
        char msg[512];
        int code =
                err->step == SANDBOX_STEP_EXEC ? (r == -ENOENT ? 127 : 126) : SANDBOX_ENTER_FAILED;

        supervisor_exec_audit(s, x->app,
                              json_pack("{s:s, s:O, s:i, s:i, s:s, s:s, s:i}", "what", "exec",
                                        "argv", x->argv, "by_uid", (int)x->by_uid, "by_pid",
                                        (int)x->by_pid, "step", sandbox_step_to_string(err->step),
                                        "error", err->detail, "errno", -r));
        log_info("%s: exec for uid %d failed: %s (step %s): %s", x->app, (int)x->by_uid,
                 err->detail, sandbox_step_to_string(err->step), strerror(-r));
        if (!call)
                return;
        snprintf(msg, sizeof msg, "%s: %s (step %s): %s%s", x->app, err->detail,
                 sandbox_step_to_string(err->step), strerror(-r),
                 r == -ENOENT && err->step == SANDBOX_STEP_EXEC
                         ? " (the command must lie in the app's jail: /app, /usr, /bin)"
                         : "");
        (void)control_reply_error(call, CONTROL_ERROR_FAILED,
                                  json_pack("{s:s, s:i, s:i, s:s}", "message", msg, "errno", -r,
                                            "exit_code", code, "step",
                                            sandbox_step_to_string(err->step)));
}

/* x's command is set up (its execve), or failed to be: the first reply, or the
 * error. */
static void exec_on_setup(uv_poll_t *h, int status, int events)
{
        Exec *x = h->data;
        Supervisor *s = daemon_supervisor(x->d);
        SandboxError serr = {};
        pid_t pid = 0;
        int pidfd = -EBADF, r;

        (void)status;
        (void)events;
        r = sandbox_enter_finish(x->entering, &pid, &pidfd, &serr);
        if (r == -EAGAIN)
                return;
        x->entering = NULL; /* freed by sandbox_enter_finish() */
        exec_setup_close(x);
        if (r < 0) {
                exec_reply_failed(x->call, x, r, &serr);
                x->call = NULL;
                return;
        }
        x->pid = pid;
        x->pidfd = pidfd;
        if (uv_poll_init(daemon_loop(x->d), &x->poll, pidfd) < 0) {
                (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                (void)waitid(P_PIDFD, pidfd, &(siginfo_t){}, WEXITED);
                if (x->call)
                        (void)control_reply_errno(x->call, -ENOMEM, "cannot watch the command");
                x->call = NULL;
                return;
        }
        x->handles++;
        supervisor_exec_audit(s, x->app,
                              json_pack("{s:s, s:O, s:b, s:i, s:i, s:i}", "what", "exec", "argv",
                                        x->argv, "tty", x->tty, "by_uid", (int)x->by_uid, "by_pid",
                                        (int)x->by_pid, "exec_pid", (int)pid));
        log_info("%s: exec %d for uid %d: %s", x->app, (int)pid, (int)x->by_uid,
                 json_string_value(json_array_get(x->argv, 0)));
        (void)uv_poll_start(&x->poll, UV_READABLE, exec_on_exit);
        if (x->call)
                (void)control_reply_continues(x->call, json_pack("{s:i}", "pid", (int)pid));
}

/* x's command was not set up within SANDBOX_ENTER_TIMEOUT_MS: ended, and said. */
static void exec_on_setup_timeout(uv_timer_t *t)
{
        Exec *x = t->data;
        SandboxError serr = {.step = SANDBOX_STEP_INIT, .error = ETIMEDOUT};

        snprintf(serr.detail, sizeof serr.detail, "the command was not set up within %d ms",
                 SANDBOX_ENTER_TIMEOUT_MS);
        exec_reply_failed(x->call, x, -ETIMEDOUT, &serr);
        x->call = NULL;
        exec_abandon(x);
}

static int method_exec(ControlCall *call, json_t *params, void *userdata)
{
        Daemon *d = userdata;
        Supervisor *s = daemon_supervisor(d);
        const struct ucred *peer = control_call_peer(call);
        _cleanup_close_ int f0 = -EBADF, f1 = -EBADF, f2 = -EBADF;
        _cleanup_strv_free_ char **argv = NULL, **envp = NULL;
        json_t *jargv = json_object_get(params, "argv"), *v;
        json_t *jtty = json_object_get(params, "tty");
        const char *id, *key;
        bool missing = false, tty;
        unsigned short size[2] = {0, 0}; /* rows, cols */
        SandboxError serr = {};
        InstanceState st = INSTANCE_STATE_INSTALLED;
        Sandbox *sb = NULL;
        Exec *x;
        size_t i;
        int r;

        json_object_foreach(params, key, v)
        {
                if (strcmp(key, "app") != 0 && strcmp(key, "argv") != 0 &&
                    strcmp(key, "tty") != 0 && strcmp(key, "rows") != 0 && strcmp(key, "cols") != 0)
                        return reply_invalid(call, key, "unknown parameter");
        }
        if (jtty && !json_is_boolean(jtty))
                return reply_invalid(call, "tty", "expected true or false");
        tty = json_is_true(jtty);
        for (i = 0; i < 2; i++) {
                const char *name = i == 0 ? "rows" : "cols";
                json_t *n = json_object_get(params, name);

                if (!n)
                        continue;
                if (!tty || !json_is_integer(n) || json_integer_value(n) < 1 ||
                    json_integer_value(n) > 65535)
                        return reply_invalid(call, name,
                                             "expected a window size of 1 to 65535, with "
                                             "\"tty\": true");
                size[i] = (unsigned short)json_integer_value(n);
        }
        id = control_param_app(call, params, "app", &missing);
        if (!id) {
                if (missing)
                        return reply_invalid(call, "app", "app is required");
                return 0;
        }
        if (!control_call_more(call))
                return reply_invalid(call, "more",
                                     "org.cella.Exec streams: call it with \"more\": true");
        if (!json_is_array(jargv) || json_array_size(jargv) == 0 ||
            json_array_size(jargv) > EXEC_ARGV_MAX)
                return reply_invalid(call, "argv", "expected an array of 1 to 256 strings");
        json_array_foreach(jargv, i, v)
        {
                if (!json_is_string(v) || json_string_length(v) > EXEC_ARG_LEN_MAX ||
                    strlen(json_string_value(v)) != json_string_length(v) ||
                    (i == 0 && json_string_length(v) == 0))
                        return reply_invalid(call, "argv",
                                             "each arg must be a string of at most 4096 bytes "
                                             "without NUL, the first not empty");
                if (strv_extend(&argv, json_string_value(v)) < 0)
                        return -ENOMEM;
        }
        f0 = control_call_take_fd(call, 0);
        f1 = control_call_take_fd(call, 1);
        f2 = control_call_take_fd(call, 2);
        if (tty) {
                struct stat sst;
                int domain = 0;
                socklen_t len = sizeof domain;

                if (f0 < 0 || f1 >= 0 || fstat(f0, &sst) < 0 || !S_ISSOCK(sst.st_mode) ||
                    getsockopt(f0, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX)
                        return reply_invalid(call, "fds",
                                             "with \"tty\": true, expected 1 fd: an AF_UNIX "
                                             "socket, over which the pty's master comes back");
        } else {
                const int fds[3] = {f0, f1, f2};

                for (i = 0; i < 3; i++) {
                        struct stat sst;

                        if (fds[i] < 0 || fstat(fds[i], &sst) < 0 || !S_ISFIFO(sst.st_mode))
                                return reply_invalid(
                                        call, "fds",
                                        "expected 3 fds, the command's stdin, stdout and "
                                        "stderr, each a pipe (never a terminal: the app can "
                                        "reach the command)");
                }
        }
        r = supervisor_exec_target(s, id, &sb, &st);
        if (r == -ENOENT)
                return control_reply_error(call, CONTROL_ERROR_NO_SUCH_APP,
                                           json_pack("{s:s, s:s}", "message",
                                                     "no such app in this cellad (cella exec "
                                                     "reaches the apps cellad runs)",
                                                     "app", id));
        if (r == -EOPNOTSUPP)
                return control_reply_errno(call, -EOPNOTSUPP,
                                           "a packed Lua app shares its host's sandbox with its "
                                           "group: there is no sandbox of its own to enter");
        if (r < 0) {
                char msg[256];

                snprintf(msg, sizeof msg, "cannot exec in %s: it is %s%s", id,
                         supervisor_state_name(st),
                         st == INSTANCE_STATE_FROZEN || st == INSTANCE_STATE_CACHED
                                 ? "; thaw it first"
                         : st == INSTANCE_STATE_STARTING || st == INSTANCE_STATE_STOPPING
                                 ? "; try again once it runs"
                                 : "; start it first");
                return control_reply_error(call, CONTROL_ERROR_APP_STATE,
                                           json_pack("{s:s, s:s, s:s}", "message", msg, "app", id,
                                                     "state", supervisor_state_name(st)));
        }
        if (!exec_filter) {
                r = seccomp_program_builtin(&(SeccompOptions){.notify = false}, &exec_filter);
                if (r < 0)
                        return control_reply_errno(call, r, "cannot build the seccomp filter");
        }
        r = strv_extend(&envp, "PATH=/usr/bin:/bin");
        if (r >= 0)
                r = strv_extend(&envp, "HOME=/data");
        if (r >= 0)
                r = strv_extend(&envp, "TMPDIR=/tmp");
        if (r >= 0)
                r = strv_extend(&envp, "USER=app");
        if (r >= 0)
                r = strv_extend(&envp, "LOGNAME=app");
        if (r >= 0)
                r = strv_extend(&envp, "LANG=C.UTF-8");
        if (r >= 0)
                r = strv_extendf(&envp, "CELLA_APP_ID=%s", id);
        if (r < 0)
                return r;
        if (tty)
                r = strv_extend(&envp, "TERM=xterm-256color");
        if (r >= 0)
                r = supervisor_exec_proxy_env(s, id, &envp);
        if (r < 0)
                return r;
        x = calloc(1, sizeof *x);
        if (!x || !(x->app = strdup(id)) || !(x->argv = argv_json(argv))) {
                if (x)
                        free(x->app);
                free(x);
                return control_reply_errno(call, -ENOMEM, "cannot start the command");
        }
        x->d = d;
        x->tty = tty;
        x->by_uid = peer ? peer->uid : (uid_t)-1;
        x->by_pid = peer ? peer->pid : -1;
        x->pidfd = -EBADF;
        r = sandbox_enter_start(&(SandboxEnter){.pidfd = sb->pidfd,
                                                .pid = sb->pid,
                                                .cgroup = sb->cgroup,
                                                .seccomp = exec_filter,
                                                .argv = argv,
                                                .envp = envp,
                                                .stdio = {f0, f1, f2},
                                                .cwd = "/app",
                                                .tty_socket = tty ? f0 : -1,
                                                .tty_rows = size[0],
                                                .tty_cols = size[1]},
                                &x->entering, &serr);
        if (r < 0) {
                exec_reply_failed(call, x, r, &serr);
                json_decref(x->argv);
                free(x->app);
                free(x);
                return 0;
        }
        /* The helper has its copies of the fds (f0-f2 close as this returns). */
        (void)uv_timer_init(daemon_loop(d), &x->timer); /* cannot fail (libuv) */
        x->setup.data = x->timer.data = x->poll.data = x;
        x->handles = 1;
        if (uv_poll_init(daemon_loop(d), &x->setup, sandbox_entering_fd(x->entering)) < 0) {
                /* exec_closed() cancels the setup and frees x. */
                uv_close((uv_handle_t *)&x->timer, exec_closed);
                return control_reply_errno(call, -ENOMEM, "cannot watch the command's setup");
        }
        x->handles = 2;
        x->call = call;
        x->started_ns = now_monotonic_ns();
        x->next = execs;
        execs = x;
        control_call_on_abort(call, exec_on_abort, x);
        (void)uv_poll_start(&x->setup, UV_READABLE, exec_on_setup);
        (void)uv_timer_start(&x->timer, exec_on_setup_timeout, SANDBOX_ENTER_TIMEOUT_MS, 0);
        return 0;
}

static int method_exec_signal(ControlCall *call, json_t *params, void *userdata)
{
        Daemon *d = userdata;
        const struct ucred *peer = control_call_peer(call);
        json_t *jp = json_object_get(params, "pid"), *js = json_object_get(params, "signal"), *v;
        const char *key;
        json_int_t sig;

        json_object_foreach(params, key, v)
        {
                if (strcmp(key, "pid") != 0 && strcmp(key, "signal") != 0)
                        return reply_invalid(call, key, "unknown parameter");
        }
        if (!json_is_integer(jp))
                return reply_invalid(call, "pid", "expected the pid org.cella.Exec replied");
        sig = json_is_integer(js) ? json_integer_value(js) : -1;
        /* What `cella exec` forwards (docs/cli.md "cella exec"), and SIGKILL. */
        if (sig != SIGINT && sig != SIGTERM && sig != SIGHUP && sig != SIGQUIT && sig != SIGKILL)
                return reply_invalid(call, "signal",
                                     "expected 1 (HUP), 2 (INT), 3 (QUIT), 9 (KILL) or 15 (TERM)");
        for (Exec *x = execs; x; x = x->next) {
                if (x->pid != (pid_t)json_integer_value(jp))
                        continue;
                /* The helper passes the signal on; SIGKILL is its SIGUSR1: the command's
                 * process group (a SIGKILLed helper would leave the group running). */
                if (syscall(SYS_pidfd_send_signal, x->pidfd, sig == SIGKILL ? SIGUSR1 : (int)sig,
                            NULL, 0) < 0)
                        return control_reply_errno(call, negative_errno(),
                                                   "cannot signal the command");
                supervisor_exec_audit(daemon_supervisor(d), x->app,
                                      json_pack("{s:s, s:i, s:i, s:i, s:i}", "what", "exec-signal",
                                                "exec_pid", (int)x->pid, "signal", (int)sig,
                                                "by_uid", peer ? (int)peer->uid : -1, "by_pid",
                                                peer ? (int)peer->pid : -1));
                return control_reply(call, NULL);
        }
        return control_reply_error(
                call, CONTROL_ERROR_NO_SUCH_APP,
                json_pack("{s:s}", "message", "no command with this pid runs through cella exec"));
}

void daemon_execs_end(void)
{
        for (Exec *x = execs; x; x = x->next) {
                siginfo_t si;

                if (x->entering) {
                        /* Still being set up: the helper and the command end. */
                        sandbox_enter_cancel(TAKE_PTR(x->entering));
                        continue;
                }
                if (x->pidfd < 0)
                        continue;

                /* The command's process group, then the helper ends (sandbox_enter()). */
                (void)syscall(SYS_pidfd_send_signal, x->pidfd, SIGUSR1, NULL, 0);
                (void)waitid(P_PIDFD, x->pidfd, &si, WEXITED);
        }
}

int daemon_exec_methods(Daemon *d)
{
        static const ControlMethod methods[] = {
                {"org.cella.Exec", CONTROL_ACCESS_ROOT, method_exec},
                {"org.cella.ExecSignal", CONTROL_ACCESS_ROOT, method_exec_signal},
        };

        return control_add_methods(daemon_control(d), methods, ELEMENTSOF(methods), d);
}
