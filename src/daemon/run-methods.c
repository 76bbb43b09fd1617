/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `cella run` through cellad (docs/api.md "org.cella.Run", docs/cli.md "cella run"):
 * org.cella.Run runs an app folder that is not installed, on behalf of a client who
 * may manage the daemon (root or group cella), and org.cella.RunSignal passes a
 * signal to such a run (the client's Ctrl-C).
 *
 * A run is a kernel of its own, a child of cellad: the `cella run --embedded` the
 * client would have run itself, executed by the daemon (as root, setsid: no
 * controlling terminal, the daemon's uid range and cgroup mode, --no-prompt: a
 * daemon has no terminal to ask on). So the sandbox, the messages, the records and
 * the exit codes are those of an embedded run, byte for byte, and a crash of one
 * run's kernel takes no other app with it (as conmon runs one monitor per
 * container). What the daemon adds: the client needs no root of its own, the run
 * is the daemon's child (killed when the client goes away, SIGTERMed when the
 * daemon ends: PR_SET_PDEATHSIG), and its exit status comes back as the call's last
 * reply.
 *
 * The daemon opens nothing a client names. The request carries four fds
 * (SCM_RIGHTS): the app folder, opened by the client (O_RDONLY | O_DIRECTORY: the
 * client could list it; an O_PATH fd is refused), and the run's stdin, stdout and
 * stderr, which the child gets as they are: `cella run` makes pipes for stdout and
 * stderr (and for stdin when its own is a terminal) and relays them, so the kernel,
 * running as root, never holds the caller's terminal. The child names the folder
 * /proc/self/fd/3, which the embedded kernel resolves to its canonical path, so an
 * app keeps one identity (docs/security.md "App identity") with or without the
 * daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "cli/exit-codes.h"
#include "config.h"
#include "daemon/daemon-internal.h"
#include "policy/manifest.h"
#include "sandbox/sandbox.h"
#include "supervisor/exec.h"

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

/* Bounds of the app's extra args (as org.cella.Start's). */
#define RUN_ARGS_MAX    64
#define RUN_ARG_LEN_MAX 4096

typedef struct Run Run;
struct Run {
        Run *next;
        Daemon *d;
        ControlCall *call; /* NULL once the client went away */
        uid_t owner;       /* the caller's uid: who may signal it */
        pid_t by_pid;      /* the caller's pid (SO_PEERCRED), for the audit log */
        pid_t pid;
        int pidfd;
        uv_poll_t poll;
        bool poll_init;
};

static Run *runs;

static void run_unlink(Run *run)
{
        for (Run **p = &runs; *p; p = &(*p)->next)
                if (*p == run) {
                        *p = run->next;
                        return;
                }
}

static void run_closed(uv_handle_t *h)
{
        Run *run = h->data;

        safe_close(run->pidfd);
        free(run);
}

static void run_free(Run *run)
{
        run_unlink(run);
        if (run->poll_init)
                uv_close((uv_handle_t *)&run->poll, run_closed);
        else
                run_closed((uv_handle_t *)&(uv_poll_t){.data = run});
}

/* The client went away: the run goes too, as an embedded run dies with its
 * `cella run` (docs/cli.md "Signals"). */
static void run_on_abort(ControlCall *call, void *ud)
{
        Run *run = ud;

        (void)call;
        run->call = NULL;
        if (run->pidfd >= 0)
                (void)syscall(SYS_pidfd_send_signal, run->pidfd, SIGKILL, NULL, 0);
}

static void run_on_exit(uv_poll_t *h, int status, int events)
{
        Run *run = h->data;
        siginfo_t si = {};
        int code;

        (void)status;
        (void)events;
        if (waitid(P_PIDFD, run->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
                return;
        uv_poll_stop(&run->poll);
        /* The kernel's exit status is the run's (docs/cli.md "Exit status"); a kernel
         * killed by a signal reads as 128+N, as a shell would say. */
        code = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
        log_debug("run %d ended with %d", (int)run->pid, code);
        supervisor_control_audit(daemon_supervisor(run->d), NULL,
                                 json_pack("{s:s, s:i, s:i, s:i, s:b}", "what", "run-exited",
                                           "run_pid", (int)run->pid, "by_uid", (int)run->owner,
                                           "exit_code", code, "detached", run->call == NULL));
        if (run->call)
                (void)control_reply(run->call,
                                    json_pack("{s:i, s:i, s:b}", "pid", (int)run->pid, "exit_code",
                                              code, "killed", si.si_code != CLD_EXITED));
        run->call = NULL;
        run_free(run);
}

/*
 * The `cella` executable a run executes: beside cellad (an installed tree, where both
 * are in the same bindir), ../cli/cella (the build tree), or the configured bindir's.
 * It must be a regular file owned by root (or the daemon's uid) that nobody else may
 * write: it runs as root. Returns 0 with ret (PATH_MAX bytes), or -ENOENT.
 */
static int find_cella(char *ret)
{
        char exe[PATH_MAX], dir[PATH_MAX];
        ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
        const char *candidates[3];
        char c0[PATH_MAX + 16], c1[PATH_MAX + 16];
        size_t n = 0;

        if (k > 0) {
                char *slash;

                exe[k] = 0;
                snprintf(dir, sizeof dir, "%s", exe);
                slash = strrchr(dir, '/');
                if (slash) {
                        *slash = 0;
                        snprintf(c0, sizeof c0, "%s/cella", dir);
                        snprintf(c1, sizeof c1, "%s/../cli/cella", dir);
                        candidates[n++] = c0;
                        candidates[n++] = c1;
                }
        }
        candidates[n++] = CELLA_BINDIR "/cella";
        for (size_t i = 0; i < n; i++) {
                struct stat st;

                if (stat(candidates[i], &st) < 0 || !S_ISREG(st.st_mode) ||
                    (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 0022) ||
                    !(st.st_mode & 0100))
                        continue;
                if (!realpath(candidates[i], ret))
                        continue;
                return 0;
        }
        return -ENOENT;
}

/* The child: fds 0-2 the run's stdio, 3 the app folder, 4 the status records'
 * (when n is 5); nothing else of the daemon's (close_range). Only
 * async-signal-safe calls between fork and exec. */
_noreturn_ static void run_child(pid_t parent, const int fds[5], unsigned n, const char *path,
                                 char **argv, char **envp)
{
        int high[5];
        sigset_t all;

        /* A kernel of the user's, not cellad's -1000 (its apps get their bands). */
        (void)sandbox_write_oom_score_adj(0, 0);
        sigemptyset(&all);
        (void)sigprocmask(SIG_SETMASK, &all, NULL);
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void)signal(sig, SIG_DFL);
        if (setsid() < 0)
                _exit(CELLA_EXIT_INTERNAL);
        /* The daemon's end is the run's end: SIGTERM, which the kernel passes on to the
         * app (docs/cli.md "Signals"). */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                _exit(CELLA_EXIT_INTERNAL);
        /* Above 3 first, so that no dup2() below overwrites one still to be moved. */
        for (unsigned i = 0; i < n; i++) {
                high[i] = fcntl(fds[i], F_DUPFD, 10);
                if (high[i] < 0)
                        _exit(CELLA_EXIT_INTERNAL);
        }
        for (unsigned i = 0; i < n; i++)
                if (dup2(high[i], (int)i) < 0)
                        _exit(CELLA_EXIT_INTERNAL);
        if (syscall(SYS_close_range, n, ~0u, 0u) < 0)
                for (int fd = (int)n; fd < 65536; fd++)
                        (void)close(fd);
        execve(path, argv, envp);
        _exit(CELLA_EXIT_INTERNAL);
}

/*
 * The run's kernel's environment: a fixed PATH and LANG, and of cellad's own
 * environment (its administrator's, never the client's) only the sanitizers'
 * options and the tests' Lua CPU budget knob (CELLA_TEST_LUA_CPU_MS: it can only
 * shorten the budget, launch.c), so that a run behaves as `cella run` would with cellad's settings.
 * Returns 0 or -ENOMEM.
 */
static int run_environment(char ***ret)
{
        static const char *const passed[] = {
                "ASAN_OPTIONS=", "UBSAN_OPTIONS=", "LSAN_OPTIONS=", "CELLA_TEST_LUA_CPU_MS="};

        if (strv_extend(ret, "PATH=/usr/sbin:/usr/bin:/sbin:/bin") < 0 ||
            strv_extend(ret, "LANG=C.UTF-8") < 0)
                return -ENOMEM;
        for (char **e = environ; e && *e; e++)
                for (size_t i = 0; i < ELEMENTSOF(passed); i++)
                        if (strncmp(*e, passed[i], strlen(passed[i])) == 0 &&
                            strv_extend(ret, *e) < 0)
                                return -ENOMEM;
        return 0;
}

static int reply_invalid(ControlCall *call, const char *parameter, const char *message)
{
        return control_reply_error(
                call, CONTROL_ERROR_INVALID_PARAMETER,
                json_pack("{s:s, s:s}", "message", message, "parameter", parameter));
}

/* Checks the folder fd: a directory the client opened for reading (not O_PATH), on
 * a file system that cannot stall the kernel that reads it (not FUSE). Returns 0 or
 * replies and returns 1. */
static int check_folder(ControlCall *call, int fd)
{
        struct statfs sf;
        struct stat st;
        int fl = fcntl(fd, F_GETFL);

        if (fl < 0 || (fl & O_PATH) || (fl & O_ACCMODE) != O_RDONLY || fstat(fd, &st) < 0 ||
            !S_ISDIR(st.st_mode))
                return reply_invalid(call, "folder",
                                     "the request's fd 0 must be the app folder, opened "
                                     "O_RDONLY | O_DIRECTORY by the client"),
                       1;
        if (fstatfs(fd, &sf) == 0 && (unsigned long)sf.f_type == FUSE_SUPER_MAGIC)
                return reply_invalid(call, "folder",
                                     "the app folder is on a FUSE file system, which could "
                                     "stall the kernel that reads it: copy it elsewhere, or "
                                     "use 'cella run --embedded'"),
                       1;
        return 0;
}

/*
 * The child kernel names the folder by its canonical path (it is the app's
 * identity, docs/security.md "App identity") and opens it by that path, as root, in
 * cellad's mount namespace. So that path must name the very folder the client
 * passed there (for any caller). And for a caller who is not root, so that the
 * caller cannot swap what the path names between
 * this check and the kernel's open (a rename in a folder of theirs, a symlink put in
 * its place) and have root's kernel run a folder of someone else's under that
 * folder's identity, every directory above the app folder must be out of the
 * caller's reach: owned by root (or the daemon's uid) and writable by nobody else.
 * The folder itself may be the caller's (it is their app). Returns 0 or replies
 * and returns 1.
 */
static int check_path_stable(ControlCall *call, int fd, uid_t caller)
{
        char link[64], path[PATH_MAX];
        struct stat fst, st;
        ssize_t k;
        char *slash;

        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        k = readlink(link, path, sizeof path - 1);
        if (k <= 0 || path[0] != '/' || fstat(fd, &fst) < 0)
                return control_reply_errno(call, k < 0 ? negative_errno() : -EINVAL,
                                           "cannot name the app folder"),
                       1;
        path[k] = 0;
        /* For every caller: the kernel opens the path in cellad's mount namespace,
         * which may not be the client's (systemd's PrivateTmp= gives cellad a /tmp
         * of its own): the path must name this very folder there. */
        if (stat(path, &st) < 0 || st.st_dev != fst.st_dev || st.st_ino != fst.st_ino) {
                char msg[PATH_MAX + 256];

                snprintf(msg, sizeof msg,
                         "the app folder is not %s in cellad's view of the file system (a "
                         "/tmp of its own under systemd's PrivateTmp=, another mount "
                         "namespace, or it was moved): install it ('cella install') or run it "
                         "with --embedded",
                         path);
                return reply_invalid(call, "folder", msg), 1;
        }
        if (caller == 0)
                return 0;
        if (st.st_uid != 0 && st.st_uid != caller && st.st_uid != geteuid())
                return reply_invalid(call, "folder", "the app folder must be owned by you or root"),
                       1;
        while ((slash = strrchr(path, '/'))) {
                if (slash == path)
                        slash[1] = 0;
                else
                        *slash = 0;
                if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode) ||
                    (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 0022)) {
                        char msg[PATH_MAX + 256];

                        snprintf(msg, sizeof msg,
                                 "%s, above the app folder, is not owned by root or is "
                                 "writable by others, so what the folder's path names could "
                                 "change under cellad: move the folder below folders only "
                                 "root can change, install it ('cella install'), or run it "
                                 "as root",
                                 path);
                        return reply_invalid(call, "folder", msg), 1;
                }
                if (slash == path)
                        break;
        }
        return 0;
}

/* Replies org.cella.LimitReached for the bound named limit (docs/api.md) at
 * value runs, with the message fmt makes (at most 255 bytes, cut beyond).
 * Returns 1: run_limit_reached()'s "replied". */
static int reply_limit_reached(ControlCall *call, const char *limit, unsigned value,
                               const char *fmt, ...) _printf_(4, 5);
static int reply_limit_reached(ControlCall *call, const char *limit, unsigned value,
                               const char *fmt, ...)
{
        char msg[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        (void)control_reply_error(
                call, DAEMON_ERROR_LIMIT_REACHED,
                json_pack("{s:s, s:s, s:i}", "message", msg, "limit", limit, "value", (int)value));
        return 1;
}

/*
 * The bounds of org.cella.Run (docs/api.md): a run is a kernel of its own, charged
 * to cellad, so a manager who is not root may have --max-runs-per-user of them at
 * once, and all callers together --max-runs. Returns 0, or replies
 * org.cella.LimitReached (with the limit's name and value) and returns 1.
 */
static int run_limit_reached(ControlCall *call, Daemon *d, uid_t uid)
{
        unsigned all = 0, mine = 0;
        unsigned max_all = d->o.max_runs ?: DAEMON_RUNS_DEFAULT;
        unsigned max_mine = d->o.max_runs_per_user ?: DAEMON_RUNS_PER_USER_DEFAULT;

        for (Run *run = runs; run; run = run->next) {
                all++;
                mine += run->owner == uid;
        }
        if (uid != 0 && mine >= max_mine)
                return reply_limit_reached(
                        call, "runs_per_user", max_mine,
                        "you have %u runs through cellad already, the most one user may have "
                        "(cellad --max-runs-per-user %u): end one first",
                        mine, max_mine);
        if (all >= max_all)
                return reply_limit_reached(
                        call, "runs", max_all,
                        "cellad has %u runs already, the most it takes (cellad --max-runs "
                        "%u): try again later, or use 'cella run --embedded' as root",
                        all, max_all);
        return 0;
}

static int method_run(ControlCall *call, json_t *params, void *userdata)
{
        Daemon *d = userdata;
        const struct ucred *peer = control_call_peer(call);
        _cleanup_close_ int f0 = -EBADF, f1 = -EBADF, f2 = -EBADF, f3 = -EBADF, f4 = -EBADF;
        _cleanup_strv_free_ char **argv = NULL;
        char cella[PATH_MAX], range[64];
        json_t *args = json_object_get(params, "args"), *v;
        bool verbose, boot, status;
        _cleanup_strv_free_ char **envp = NULL;
        const char *key;
        size_t i;
        Run *run;
        pid_t pid, self = getpid();
        int r;

        json_object_foreach(params, key,
                            v) if (strcmp(key, "args") != 0 && strcmp(key, "verbose") != 0 &&
                                   strcmp(key, "boot") != 0 &&
                                   strcmp(key, "json_status") !=
                                           0) return reply_invalid(call, key, "unknown parameter");
        if (!control_param_flag(call, params, "verbose", &verbose) ||
            !control_param_flag(call, params, "boot", &boot) ||
            !control_param_flag(call, params, "json_status", &status))
                return 0;
        if (!control_call_more(call))
                return reply_invalid(call, "more",
                                     "org.cella.Run streams: call it with \"more\": true");
        if (args && !json_is_null(args) &&
            (!json_is_array(args) || json_array_size(args) > RUN_ARGS_MAX))
                return reply_invalid(call, "args", "expected an array of at most 64 strings");
        json_array_foreach(
                args, i,
                v) if (!json_is_string(v) || json_string_length(v) > RUN_ARG_LEN_MAX ||
                       strlen(json_string_value(v)) !=
                               json_string_length(
                                       v)) return reply_invalid(call, "args",
                                                                "each arg must be a string of at "
                                                                "most 4096 bytes "
                                                                "without NUL");
        if (boot && json_array_size(args) > 0)
                return reply_invalid(call, "args", "a boot takes no args");
        f0 = control_call_take_fd(call, 0);
        f1 = control_call_take_fd(call, 1);
        f2 = control_call_take_fd(call, 2);
        f3 = control_call_take_fd(call, 3);
        if (f0 < 0 || f1 < 0 || f2 < 0 || f3 < 0)
                return reply_invalid(call, "fds",
                                     "expected 4 fds: the app folder, stdin, stdout, stderr");
        if (status) {
                /* The client's own --json-status fd: written to, as its embedded
                 * kernel would (an fd it opened for writing, not an O_PATH one). */
                int fl;

                f4 = control_call_take_fd(call, 4);
                fl = f4 < 0 ? -1 : fcntl(f4, F_GETFL);
                if (fl < 0 || (fl & O_PATH) || (fl & O_ACCMODE) == O_RDONLY)
                        return reply_invalid(call, "fds",
                                             "json_status: fd 4 must be open for writing");
        }
        if (check_folder(call, f0) || check_path_stable(call, f0, peer ? peer->uid : (uid_t)-1))
                return 0;
        if (run_limit_reached(call, d, peer ? peer->uid : (uid_t)-1))
                return 0;
        if (find_cella(cella) < 0)
                return control_reply_errno(call, -ENOENT,
                                           "cannot find the cella executable beside cellad "
                                           "or in " CELLA_BINDIR);
        snprintf(range, sizeof range, "%u:%u", (unsigned)d->o.uid_base, d->o.uid_count);
        r = strv_extend(&argv, cella);
        {
                static const char *const modes[] = {
                        [CGROUP_MODE_AUTO] = "auto",
                        [CGROUP_MODE_V1] = "v1",
                        [CGROUP_MODE_V2] = "v2",
                        [CGROUP_MODE_HYBRID] = "hybrid",
                };
                const char *fixed[] = {boot ? "boot" : "run",
                                       "--embedded",
                                       "--no-prompt",
                                       "--state-dir",
                                       d->state_dir,
                                       "--uid-range",
                                       range,
                                       "--cgroup-mode",
                                       (unsigned)d->o.cgroup_mode < ELEMENTSOF(modes) &&
                                                       modes[d->o.cgroup_mode]
                                               ? modes[d->o.cgroup_mode]
                                               : "auto"};

                for (i = 0; r >= 0 && i < ELEMENTSOF(fixed); i++)
                        r = strv_extend(&argv, fixed[i]);
        }
        if (r >= 0 && verbose)
                r = strv_extend(&argv, "-v");
        if (r >= 0 && status)
                r = strv_extend(&argv, "--json-status=4");
        if (r >= 0)
                r = strv_extend(&argv, "/proc/self/fd/3");
        if (r >= 0 && !boot)
                r = strv_extend(&argv, "--");
        json_array_foreach(args, i, v) if (r >= 0) r = strv_extend(&argv, json_string_value(v));
        if (r < 0)
                return r;
        r = run_environment(&envp);
        if (r < 0)
                return r;
        run = calloc(1, sizeof *run);
        if (!run)
                return -ENOMEM;
        run->d = d;
        run->owner = peer ? peer->uid : (uid_t)-1;
        run->pidfd = -EBADF;
        pid = fork();
        if (pid < 0) {
                free(run);
                return control_reply_errno(call, negative_errno(), "cannot fork the run");
        }
        if (pid == 0)
                run_child(self, (const int[]){f1, f2, f3, f0, f4}, status ? 5 : 4, cella, argv,
                          envp);
        run->pid = pid;
        run->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (run->pidfd < 0 || uv_poll_init(daemon_loop(d), &run->poll, run->pidfd) < 0) {
                r = negative_errno();
                (void)kill(pid, SIGKILL);
                (void)waitpid(pid, NULL, 0);
                safe_close(run->pidfd);
                free(run);
                return control_reply_errno(call, r, "cannot watch the run");
        }
        run->poll_init = true;
        run->poll.data = run;
        run->call = call;
        run->next = runs;
        runs = run;
        control_call_on_abort(call, run_on_abort, run);
        (void)uv_poll_start(&run->poll, UV_READABLE, run_on_exit);
        log_info("org.cella.Run: kernel %d for uid %u", (int)pid, (unsigned)run->owner);
        {
                char link[64], folder[PATH_MAX];
                ssize_t k;

                snprintf(link, sizeof link, "/proc/self/fd/%d", f0);
                k = readlink(link, folder, sizeof folder - 1);
                folder[k > 0 ? k : 0] = 0;
                run->by_pid = peer ? peer->pid : 0;
                supervisor_control_audit(daemon_supervisor(d), NULL,
                                         json_pack("{s:s, s:i, s:s, s:b, s:i, s:i, s:i}", "what",
                                                   "run", "run_pid", (int)pid, "folder", folder,
                                                   "boot", boot, "by_uid", (int)run->owner,
                                                   "by_gid", peer ? (int)peer->gid : -1, "by_pid",
                                                   (int)run->by_pid));
        }
        return control_reply_continues(call, json_pack("{s:i}", "pid", (int)pid));
}

static int method_run_signal(ControlCall *call, json_t *params, void *userdata)
{
        const struct ucred *peer = control_call_peer(call);
        json_t *jp = json_object_get(params, "pid"), *js = json_object_get(params, "signal");
        json_int_t sig;

        (void)userdata;
        if (!json_is_integer(jp))
                return reply_invalid(call, "pid", "expected the pid org.cella.Run replied");
        sig = json_is_integer(js) ? json_integer_value(js) : -1;
        /* What a `cella run` forwards (docs/cli.md "Signals"), and SIGKILL. */
        if (sig != SIGINT && sig != SIGTERM && sig != SIGHUP && sig != SIGKILL)
                return reply_invalid(call, "signal",
                                     "expected 1 (HUP), 2 (INT), 9 (KILL) or "
                                     "15 (TERM)");
        for (Run *run = runs; run; run = run->next) {
                if (run->pid != (pid_t)json_integer_value(jp))
                        continue;
                /* Only its own caller, or root. */
                if (!peer || (peer->uid != 0 && peer->uid != run->owner))
                        break;
                if (syscall(SYS_pidfd_send_signal, run->pidfd, (int)sig, NULL, 0) < 0)
                        return control_reply_errno(call, negative_errno(), "cannot signal the run");
                return control_reply(call, NULL);
        }
        return control_reply_error(
                call, CONTROL_ERROR_NO_SUCH_APP,
                json_pack("{s:s}", "message", "no run of yours with this pid in this cellad"));
}

/*
 * The record of every call that may change something (access manage or root) that
 * its caller was allowed to make (control_set_call_audit()): {"what": "call",
 * "method", "by_uid", "by_gid", "by_pid"} under the app the call names ("app" or
 * "id"), or none. The audit log, not only cellad's log, says who asked for each
 * start, stop, install, remove, run and exec (docs/security.md "The control
 * socket"); the outcome follows in the records of what was done.
 */
static void on_call_audit(const char *method, ControlAccess access, const struct ucred *peer,
                          json_t *params, void *userdata)
{
        Daemon *d = userdata;
        json_t *a = json_object_get(params, "app") ?: json_object_get(params, "id");
        const char *app = json_string_value(a);

        (void)access;
        if (app && !manifest_id_is_valid(app))
                app = NULL; /* refused by the method; the audit log takes only ids */
        supervisor_control_audit(daemon_supervisor(d), app,
                                 json_pack("{s:s, s:s, s:i, s:i, s:i}", "what", "call", "method",
                                           method, "by_uid", (int)peer->uid, "by_gid",
                                           (int)peer->gid, "by_pid", (int)peer->pid));
}

void daemon_runs_end(void)
{
        for (Run *run = runs; run; run = run->next)
                if (run->pidfd >= 0) {
                        siginfo_t si;

                        (void)syscall(SYS_pidfd_send_signal, run->pidfd, SIGKILL, NULL, 0);
                        (void)waitid(P_PIDFD, run->pidfd, &si, WEXITED);
                }
        daemon_execs_end();
}

int daemon_run_methods(Daemon *d)
{
        static const ControlMethod methods[] = {
                {"org.cella.Run", CONTROL_ACCESS_MANAGE, method_run},
                {"org.cella.RunSignal", CONTROL_ACCESS_MANAGE, method_run_signal},
        };

        int r = control_set_call_audit(daemon_control(d), on_call_audit, d);

        if (r < 0)
                return r;
        return control_add_methods(daemon_control(d), methods, ELEMENTSOF(methods), d);
}
