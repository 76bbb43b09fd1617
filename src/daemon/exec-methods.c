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

typedef struct Exec Exec;
struct Exec {
        Exec *next;
        Daemon *d;
        ControlCall *call; /* NULL once the client went away */
        char *app;
        pid_t pid; /* the helper (sandbox_enter()) */
        int pidfd;
        uint64_t started_ns;
        bool detached; /* the client went away first */
        uv_poll_t poll;
};

/* The commands running: each reachable from here until its end (a daemon that stops
 * meanwhile closes their handles, supervisor_free(), and they end with it). */
static Exec *execs;

/* The app filter without its listener (sandbox.h, SandboxEnter.seccomp): made once. */
static SeccompProgram *exec_filter;

static void exec_closed(uv_handle_t *h)
{
        Exec *x = h->data;

        for (Exec **p = &execs; *p; p = &(*p)->next)
                if (*p == x) {
                        *p = x->next;
                        break;
                }
        safe_close(x->pidfd);
        free(x->app);
        free(x);
}

static void exec_on_abort(ControlCall *call, void *ud)
{
        Exec *x = ud;

        (void)call;
        x->call = NULL;
        x->detached = true;
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
        pid_t pid = 0;
        int pidfd = -EBADF, r;

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
        if (r < 0)
                return r;
        r = sandbox_enter(&(SandboxEnter){.pidfd = sb->pidfd,
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
                          &pid, &pidfd, &serr);
        if (r < 0) {
                char msg[512];
                int code = serr.step == SANDBOX_STEP_EXEC ? (r == -ENOENT ? 127 : 126)
                                                          : SANDBOX_ENTER_FAILED;

                supervisor_exec_audit(s, id,
                                      json_pack("{s:s, s:o, s:i, s:i, s:s, s:s, s:i}", "what",
                                                "exec", "argv", argv_json(argv), "by_uid",
                                                peer ? (int)peer->uid : -1, "by_pid",
                                                peer ? (int)peer->pid : -1, "step",
                                                sandbox_step_to_string(serr.step), "error",
                                                serr.detail, "errno", -r));
                snprintf(msg, sizeof msg, "%s: %s (step %s): %s%s", id, serr.detail,
                         sandbox_step_to_string(serr.step), strerror(-r),
                         r == -ENOENT && serr.step == SANDBOX_STEP_EXEC
                                 ? " (the command must lie in the app's jail: /app, /usr, /bin)"
                                 : "");
                return control_reply_error(call, CONTROL_ERROR_FAILED,
                                           json_pack("{s:s, s:i, s:i, s:s}", "message", msg,
                                                     "errno", -r, "exit_code", code, "step",
                                                     sandbox_step_to_string(serr.step)));
        }
        x = calloc(1, sizeof *x);
        if (!x || !(x->app = strdup(id)) || uv_poll_init(daemon_loop(d), &x->poll, pidfd) < 0) {
                (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                (void)waitpid(pid, NULL, 0);
                safe_close(pidfd);
                if (x)
                        free(x->app);
                free(x);
                return control_reply_errno(call, -ENOMEM, "cannot watch the command");
        }
        x->d = d;
        x->call = call;
        x->pid = pid;
        x->pidfd = pidfd;
        x->started_ns = now_monotonic_ns();
        x->poll.data = x;
        x->next = execs;
        execs = x;
        supervisor_exec_audit(s, id,
                              json_pack("{s:s, s:o, s:b, s:i, s:i, s:i}", "what", "exec", "argv",
                                        argv_json(argv), "tty", tty, "by_uid",
                                        peer ? (int)peer->uid : -1, "by_pid",
                                        peer ? (int)peer->pid : -1, "exec_pid", (int)pid));
        log_info("%s: exec %d for uid %d: %s", id, (int)pid, peer ? (int)peer->uid : -1, argv[0]);
        control_call_on_abort(call, exec_on_abort, x);
        (void)uv_poll_start(&x->poll, UV_READABLE, exec_on_exit);
        return control_reply_continues(call, json_pack("{s:i}", "pid", (int)pid));
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
