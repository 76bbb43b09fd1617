/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `cella run`: one app, the supervisor embedded in the CLI, one libuv loop.
 *
 * The app's stdout and stderr are pipes that this loop copies to ours, so the app
 * never holds our terminal (no tty ioctls to abuse) and the same path can feed
 * the capped per-app logs of `cella boot`. stdin is passed through as is when it
 * is a file or a pipe; a terminal is copied through a pipe for the same reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/size.h"
#include "policy/manifest.h"
#include "supervisor/exit-codes.h"
#include "supervisor/launch.h"
#include "supervisor/run.h"
#include "supervisor/state.h"

#define RUN_PUMP_BUFFER 65536 /* bytes copied per read, one pipe's default capacity */

typedef struct Run Run;

typedef struct Pump {
        Run *run;
        int from, to; /* from: pipe read end (ours); to: where its bytes go */
        bool open;
        uv_poll_t poll;
} Pump;

struct Run {
        uv_loop_t loop;
        bool loop_ready;
        Sandbox *sandbox;
        uv_poll_t sandbox_poll;
        uv_signal_t signals[3];
        unsigned n_signals;
        const Manifest *manifest;
        Pump out, err, in;
        int interrupts; /* SIGINTs seen: the second one kills */
        struct timespec started;
};

/* The fd is ours to close: libuv closes nothing it did not open. */
static void pump_closed(uv_handle_t *h)
{
        Pump *p = h->data;

        p->from = safe_close(p->from);
}

static void pump_close(Pump *p)
{
        if (!p->open)
                return;
        p->open = false;
        uv_close((uv_handle_t *)&p->poll, pump_closed);
}

static void run_maybe_done(Run *run)
{
        if (run->sandbox->exited && !run->out.open && !run->err.open)
                uv_stop(&run->loop);
}

static void on_pump(uv_poll_t *h, int status, int events)
{
        Pump *p = h->data;
        Run *run = p->run;
        char buf[RUN_PUMP_BUFFER];
        ssize_t k = read(p->from, buf, sizeof buf);

        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (k <= 0 || loop_write(p->to, buf, (size_t)k) < 0) {
                /* EOF or error: for stdin, closing our write end gives the app EOF. */
                if (p == &run->in)
                        p->to = safe_close(p->to);
                pump_close(p);
                run_maybe_done(run);
        }
}

/* Starts copying from to to. On failure from is left open for the caller. */
static int pump_start(Run *run, Pump *p, int from, int to)
{
        int r;

        r = fd_nonblock(from, 1);
        if (r < 0)
                return r;
        r = uv_poll_init(&run->loop, &p->poll, from);
        if (r < 0)
                return r;
        p->poll.data = p;
        p->run = run;
        p->from = from;
        p->to = to;
        p->open = true;
        return uv_poll_start(&p->poll, UV_READABLE, on_pump);
}

static void on_sandbox(uv_poll_t *h, int status, int events)
{
        Run *run = h->data;

        if (sandbox_process(run->sandbox) > 0) {
                uv_poll_stop(h);
                run_maybe_done(run);
        }
}

static void on_signal(uv_signal_t *h, int signum)
{
        Run *run = h->data;
        int sig = signum;

        /* A second Ctrl-C means "now": kill instead of asking. */
        if (sig == SIGINT && ++run->interrupts > 1)
                sig = SIGKILL;
        if (sig == SIGKILL && run->sandbox->cgroup)
                (void)cgroup_kill(run->sandbox->cgroup);
        (void)sandbox_signal(run->sandbox, sig);
}

/* Writes o as one line to fd (if fd >= 0) and drops the reference to o either way. */
static void json_status(int fd, json_t *o)
{
        char *s;

        if (fd < 0 || !o) {
                json_decref(o);
                return;
        }
        s = json_dumps(o, JSON_COMPACT);
        if (s) {
                (void)loop_write(fd, s, strlen(s));
                (void)loop_write(fd, "\n", 1);
                free(s);
        }
        json_decref(o);
}

static void print_manifest_error(const ManifestError *e)
{
        if (e->line > 0)
                log_error("%s:%d:%d: %s", e->file, e->line, e->column, e->message);
        else if (e->key[0])
                log_error("%s: %s: %s", e->file, e->key, e->message);
        else
                log_error("%s: %s", e->file, e->message);
}

static int report_spawn_error(const RunOptions *o, const Manifest *m, const SandboxError *e)
{
        int code = cella_exit_for_step(e->step, e->error);

        log_error("cannot start %s: %s step failed: %s: %s", m->id, sandbox_step_to_string(e->step),
                  e->detail, strerror(e->error));
        if (e->step == SANDBOX_STEP_EXEC && e->error == EACCES)
                log_error(
                        "hint: the app runs as its own uid; its folder and entry must be readable "
                        "and executable by others (chmod o+rX)");
        json_status(o->json_status_fd,
                    json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "event", "failed", "app", m->id,
                              "step", sandbox_step_to_string(e->step), "error", e->detail, "errno",
                              e->error, "exit_code", code));
        return code;
}

static int report_exit(const RunOptions *o, Run *run, uid_t uid)
{
        const SandboxExit *x = &run->sandbox->exit;
        const Manifest *m = run->manifest;
        char limit[24] = "none";
        struct timespec now;
        double ms;
        int code;

        clock_gettime(CLOCK_MONOTONIC, &now);
        ms = (double)(now.tv_sec - run->started.tv_sec) * 1e3 +
             (double)(now.tv_nsec - run->started.tv_nsec) / 1e6;
        if (m->limits.memory)
                format_size(m->limits.memory, limit, sizeof limit);
        if (x->code == CLD_EXITED)
                code = x->status;
        else {
                code = CELLA_EXIT_SIGNAL_BASE + x->status;
                if (x->oom_killed)
                        log_error("%s was killed by the OOM killer (memory limit %s)", m->id,
                                  limit);
                else
                        log_error("%s was killed by signal %d (%s)", m->id, x->status,
                                  strsignal(x->status));
        }
        if (x->oom_kills > 0 && !x->oom_killed)
                log_error("%s: the OOM killer killed %llu process(es) in its sandbox (memory limit "
                          "%s)",
                          m->id, (unsigned long long)x->oom_kills, limit);
        json_status(o->json_status_fd,
                    json_pack("{s:s, s:s, s:I, s:s, s:i, s:i, s:b, s:I, s:i, s:f}", "event",
                              "exited", "app", m->id, "uid", (json_int_t)uid, "how",
                              x->code == CLD_EXITED ? "exited" : "killed",
                              x->code == CLD_EXITED ? "status" : "signal", x->status, "exit_code",
                              code, "oom_killed", x->oom_killed, "oom_kills",
                              (json_int_t)x->oom_kills, "pid", (int)run->sandbox->pid,
                              "duration_ms", ms));
        return code;
}

/* {"event":"started", "app", "uid", "pid", "cgroup_mode", "cgroups": {ctrl: path}} */
static json_t *started_record(const Manifest *m, uid_t uid, const Sandbox *sb,
                              const CgroupManager *cgm)
{
        static const char *const ctrls[] = {"memory", "pids", "cpu", "freezer", ""};
        json_t *paths = json_object();

        for (size_t i = 0; paths && sb->cgroup && i < ELEMENTSOF(ctrls); i++) {
                const char *p = cgroup_path(sb->cgroup, ctrls[i]);

                if (p)
                        json_object_set_new(paths, ctrls[i][0] ? ctrls[i] : "unified",
                                            json_string(p));
        }
        return json_pack("{s:s, s:s, s:I, s:i, s:s, s:o}", "event", "started", "app", m->id, "uid",
                         (json_int_t)uid, "pid", (int)sb->pid, "cgroup_mode",
                         cgroup_manager_ops(cgm)->name, "cgroups", paths ?: json_object());
}

/* The registry work a spawn needs only when the child asks for its uid map. */
typedef struct Prepare {
        State *state;
        const char *id;
        uid_t uid;        /* out */
        int error;        /* out: the registry's error, for the message */
        const char *what; /* out: what failed */
} Prepare;

/* SandboxSpec.prepare: runs while the child builds its jail (sandbox.h). */
static int run_prepare(SandboxSpec *spec, void *userdata)
{
        _cleanup_free_ char *data = NULL;
        Prepare *p = userdata;
        int r;

        r = state_app_uid(p->state, p->id, &p->uid);
        if (r < 0) {
                p->what = "cannot allocate a uid for";
                return p->error = r;
        }
        r = state_app_data_dir(p->state, p->id, p->uid, &data);
        if (r < 0) {
                p->what = "cannot give the data directory to";
                return p->error = r;
        }
        spec->host_uid = p->uid;
        spec->host_gid = (gid_t)p->uid;
        return 0;
}

/* Stdin for the app: our fd 0 itself unless it is a terminal, which is pumped. */
static int setup_stdin(Run *run, int *ret_app_fd)
{
        int p[2], r;

        if (fcntl(STDIN_FILENO, F_GETFD) < 0) {
                *ret_app_fd = -1; /* closed: /dev/null */
                return 0;
        }
        if (!isatty(STDIN_FILENO)) {
                *ret_app_fd = STDIN_FILENO;
                return 0;
        }
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        /* Read our terminal, write into the app's pipe. */
        r = pump_start(run, &run->in, STDIN_FILENO, p[1]);
        if (r < 0) {
                safe_close(p[0]);
                safe_close(p[1]);
                return r;
        }
        *ret_app_fd = p[0];
        return 0;
}

int supervisor_run(const RunOptions *o)
{
        _cleanup_(state_freep) State *state = NULL;
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        _cleanup_free_ char *app_dir = NULL, *data_dir = NULL;
        _cleanup_close_pair_ int chan[2] = {-EBADF, -EBADF};
        int out[2] = {-EBADF, -EBADF}, err[2] = {-EBADF, -EBADF}, in_fd = -1;
        CgroupManager *cgm = NULL;
        SeccompProgram *filter = NULL;
        ManifestError merr = {};
        SandboxError serr = {};
        Launch launch = {};
        Run run = {.out.from = -EBADF, .err.from = -EBADF, .in.from = -EBADF, .in.to = -EBADF};
        Prepare prep = {};
        uid_t uid;
        int r, code = CELLA_EXIT_INTERNAL;

        if (geteuid() != 0) {
                log_error("cella run needs root: it gives each app its own host uid and cgroup "
                          "(rootless mode is not supported yet)");
                return CELLA_EXIT_PREPARE;
        }

        r = cgroup_manager_new("/sys/fs/cgroup", o->cgroup_mode, NULL, &cgm);
        if (r < 0) {
                log_error_errno(r, "no usable cgroup hierarchy under /sys/fs/cgroup: %m");
                return CELLA_EXIT_CGROUP;
        }

        app_dir = realpath(o->app_dir, NULL);
        if (!app_dir) {
                log_error_errno(negative_errno(), "%s: %m", o->app_dir);
                code = CELLA_EXIT_MANIFEST;
                goto out;
        }
        dirfd = open(app_dir, O_DIRECTORY | O_CLOEXEC | O_PATH);
        if (dirfd < 0) {
                log_error_errno(negative_errno(), "%s: %m", o->app_dir);
                code = CELLA_EXIT_MANIFEST;
                goto out;
        }
        r = manifest_load_at(dirfd, o->app_dir, &m, &merr);
        if (r < 0) {
                print_manifest_error(&merr);
                code = CELLA_EXIT_MANIFEST;
                goto out;
        }

        r = state_open(o->state_dir, o->uid_base, o->uid_count, &state);
        if (r < 0) {
                log_error_errno(r, "cannot open the state directory %s: %m", o->state_dir);
                code = CELLA_EXIT_STATE;
                goto out;
        }
        /* The directory must exist before the jail binds it; its owner, like the
         * uid, is settled by run_prepare() while the child builds the jail. */
        r = state_app_data_path(state, m->id, &data_dir);
        if (r < 0) {
                log_error_errno(r, "cannot prepare the data directory of %s: %m", m->id);
                code = CELLA_EXIT_STATE;
                goto out;
        }

        r = launch_prepare(&launch, m, app_dir, data_dir, 0, o->extra_args);
        if (r == -EOPNOTSUPP) {
                log_error("%s/manifest.json: runtime: \"%s\" apps cannot run yet; this build runs "
                          "\"native\" apps",
                          o->app_dir, manifest_runtime_to_string(m->runtime));
                code = CELLA_EXIT_MANIFEST;
                goto out;
        }
        if (r < 0) {
                log_error_errno(r, "cannot prepare %s: %m", m->id);
                goto out;
        }
        r = seccomp_program_builtin(&(SeccompOptions){}, &filter);
        if (r < 0) {
                log_error_errno(r, "cannot build the seccomp filter: %m");
                code = CELLA_EXIT_SECCOMP;
                goto out;
        }

        r = uv_loop_init(&run.loop);
        if (r < 0) {
                log_error("cannot start the event loop: %s", uv_strerror(r));
                goto out;
        }
        run.loop_ready = true;
        signal(SIGPIPE, SIG_IGN);

        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
            socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0) {
                r = negative_errno();
                log_error_errno(r, "cannot create the app's pipes: %m");
                goto out;
        }
        r = setup_stdin(&run, &in_fd);
        if (r < 0) {
                log_error_errno(r, "cannot set up stdin: %m");
                goto out;
        }

        launch.spec.stdio[0] = in_fd;
        launch.spec.stdio[1] = out[1];
        launch.spec.stdio[2] = err[1];
        launch.spec.channel_fd = chan[1];
        launch.spec.seccomp = filter;
        launch.spec.cgroups = cgm;
        prep = (Prepare){.state = state, .id = m->id};
        launch.spec.prepare = run_prepare;
        launch.spec.prepare_userdata = &prep;
        run.manifest = m;
        clock_gettime(CLOCK_MONOTONIC, &run.started);
        r = sandbox_spawn(&launch.spec, &run.sandbox, &serr);
        /* The app has its ends now (or never will): ours would hide EOF. */
        out[1] = safe_close(out[1]);
        err[1] = safe_close(err[1]);
        chan[1] = safe_close(chan[1]);
        if (in_fd > STDIN_FILENO)
                safe_close(in_fd);
        if (r < 0 && prep.error < 0) {
                log_error_errno(prep.error, "%s %s in %s: %m", prep.what, m->id, o->state_dir);
                code = CELLA_EXIT_STATE;
                goto out;
        }
        if (r < 0) {
                code = report_spawn_error(o, m, &serr);
                goto out;
        }
        uid = prep.uid;
        json_status(o->json_status_fd, started_record(m, uid, run.sandbox, cgm));

        /* Leftovers of cella processes that died (SIGKILL, crash). Not before the
         * spawn: it only touches leaves whose owner is gone, never ours, so the app
         * need not wait for it. */
        r = cgroup_sweep(cgm);
        if (r > 0)
                log_debug("swept %d cgroup(s) left by cella processes that are gone", r);
        else if (r < 0)
                log_warning_errno(r, "cannot sweep leftover cgroups: %m");

        r = pump_start(&run, &run.out, out[0], STDOUT_FILENO);
        if (r >= 0) {
                out[0] = -EBADF;
                r = pump_start(&run, &run.err, err[0], STDERR_FILENO);
        }
        if (r >= 0) {
                err[0] = -EBADF;
                r = uv_poll_init(&run.loop, &run.sandbox_poll, run.sandbox->ctl_fd);
        }
        if (r >= 0) {
                run.sandbox_poll.data = &run;
                r = uv_poll_start(&run.sandbox_poll, UV_READABLE, on_sandbox);
        }
        if (r < 0) {
                log_error("cannot set up the event loop: %s", uv_strerror(r));
                goto out;
        }
        /* Ctrl-C, TERM and HUP go to the app, not to us. */
        {
                static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};

                for (size_t i = 0; i < ELEMENTSOF(sigs); i++) {
                        uv_signal_t *h = &run.signals[run.n_signals];

                        r = uv_signal_init(&run.loop, h);
                        if (r < 0)
                                break;
                        run.n_signals++;
                        h->data = &run;
                        r = uv_signal_start(h, on_signal, sigs[i]);
                        if (r < 0)
                                break;
                }
        }
        if (r < 0) {
                log_error("cannot set up the event loop: %s", uv_strerror(r));
                goto out;
        }
        uv_run(&run.loop, UV_RUN_DEFAULT);
        code = report_exit(o, &run, uid);
out:
        if (run.loop_ready) {
                pump_close(&run.out);
                pump_close(&run.err);
                pump_close(&run.in);
                if (uv_is_active((uv_handle_t *)&run.sandbox_poll) || run.sandbox_poll.data)
                        uv_close((uv_handle_t *)&run.sandbox_poll, NULL);
                for (unsigned i = 0; i < run.n_signals; i++)
                        uv_close((uv_handle_t *)&run.signals[i], NULL);
                uv_run(&run.loop, UV_RUN_DEFAULT); /* runs the close callbacks */
                uv_loop_close(&run.loop);
        }
        safe_close(run.in.to);
        safe_close(out[0]);
        safe_close(out[1]);
        safe_close(err[0]);
        safe_close(err[1]);
        run.sandbox = sandbox_free(run.sandbox);
        launch_done(&launch);
        seccomp_program_free(filter);
        cgroup_manager_free(cgm);
        return code;
}
