/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One app's runs: spawn, its output pumps, its channel handed to the broker, its
 * exit, and its restart policy (src/supervisor/restart.c).
 *
 * The app's stdout and stderr are pipes that the loop copies to ours (cella run) or
 * into the app's capped log (cella boot), so the app never holds our terminal (no
 * tty ioctls to abuse). stdin is passed through as is when it is a file or a pipe;
 * a terminal is copied through a pipe for the same reason (cella run only).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "base/fdpass.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/size.h"
#include "base/strv.h"
#include "base/termsafe.h"
#include "base/time-util.h"
#include "supervisor/exit-codes.h"
#include "supervisor/storage.h"
#include "supervisor/supervisor-internal.h"
#include "supervisor/terminal.h"

static void instance_maybe_finished(Instance *inst);

static void poll_closed(uv_handle_t *h)
{
        Instance *inst = h->data;

        inst->polls_closing--;
}

/* Closes one of inst's polls; the next run may reuse its memory only once the close
 * callback has run (instance_start() checks polls_closing). */
static void poll_close(Instance *inst, uv_poll_t *p)
{
        inst->polls_closing++;
        p->data = inst;
        uv_close((uv_handle_t *)p, poll_closed);
}

static void pump_closed(uv_handle_t *h)
{
        Pump *p = h->data;

        p->from = safe_close(p->from);
        p->closing = false;
        if (p->inst && p == &p->inst->out)
                p->inst->pty_master = -1; /* it was p->from */
        if (p->group)
                group_maybe_finished(p->group);
        else if (p->inst)
                instance_maybe_finished(p->inst);
}

void pump_close(Pump *p)
{
        if (!p->open)
                return;
        p->open = false;
        p->closing = true;
        outlet_cancel_wait(p->outlet, &p->wait);
        p->waiting = false;
        uv_close((uv_handle_t *)&p->poll, pump_closed);
}

static void on_pump(uv_poll_t *h, int status, int events);

/* The outlet has room again: read on. */
static void pump_ready(OutletWaiter *w)
{
        Pump *p = (Pump *)((char *)w - offsetof(Pump, wait));

        if (!p->open || !p->waiting)
                return;
        p->waiting = false;
        /* The terminal's input is the question's now: prompt_end() resumes it. */
        if (p->inst && p == &p->inst->in && p->inst->sup->prompting)
                return;
        (void)uv_poll_start(&p->poll, UV_READABLE, on_pump);
}

/* The end of a pump's input: what the sanitizer holds goes out, then the pump
 * closes (for stdin, the app's pipe is closed: it reads EOF). */
static void pump_eof(Pump *p)
{
        if (p->outlet && p->sanitize) {
                char tail[16];
                size_t n = termsafe_stream_end(&p->safe, tail);

                if (n > 0)
                        outlet_put_stream(p->outlet, tail, n);
        }
        if (p->inst && p == &p->inst->in)
                p->inst->in_outlet = outlet_free(p->inst->in_outlet);
        pump_close(p);
}

static void on_pump(uv_poll_t *h, int status, int events)
{
        Pump *p = h->data;
        char buf[SUPERVISOR_PUMP_BUFFER];
        char safe[TERMSAFE_STREAM_OUT(SUPERVISOR_PUMP_BUFFER / 4)];
        size_t want = sizeof buf;
        ssize_t k;
        int r;

        if (p->outlet) {
                /* Never more than the outlet can take: the rest waits in the pipe,
                 * and the app blocks on it, not the kernel. */
                size_t room = outlet_stream_room(p->outlet);

                if (room < OUTLET_STREAM_MIN_ROOM) {
                        p->waiting = true;
                        uv_poll_stop(&p->poll);
                        outlet_wait(p->outlet, &p->wait);
                        return;
                }
                want = p->sanitize ? MIN((room - 16) / 4, sizeof buf / 4) : MIN(room, sizeof buf);
        }
        k = read(p->from, buf, want);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (k > 0) {
                if (p->log) {
                        r = applog_write(p->log, buf, (size_t)k);
                        /* A full disk: the app must not block on it. */
                        if (r < 0)
                                log_debug("dropping output of an app: %s", strerror(-r));
                } else if (p->sanitize)
                        outlet_put_stream(p->outlet, safe,
                                          termsafe_stream(&p->safe, buf, (size_t)k, safe));
                else if (p->outlet)
                        outlet_put_stream(p->outlet, buf, (size_t)k);
                return;
        }
        /* EOF or error. */
        pump_eof(p);
}

int pump_start(Supervisor *s, Instance *inst, Group *g, Pump *p, int from, Outlet *outlet,
               AppLog *log)
{
        int r;

        /* A terminal comes non-blocking already, in a description of our own. */
        if (!isatty(from)) {
                r = fd_nonblock(from, 1);
                if (r < 0)
                        return r;
        }
        {
                /* uv_poll_init() sets O_NONBLOCK: a terminal's blocking copy (a pty
                 * master, setup_stdin()) shares its description, so it is put back. */
                int fl = fcntl(from, F_GETFL);

                r = uv_poll_init(&s->loop, &p->poll, from);
                if (r < 0)
                        return r;
                if (fl >= 0 && !(fl & O_NONBLOCK))
                        (void)fcntl(from, F_SETFL, fl);
        }
        p->poll.data = p;
        p->inst = inst;
        p->group = g;
        p->from = from;
        p->outlet = log ? NULL : outlet;
        p->log = log;
        p->wait = (OutletWaiter){.ready = pump_ready};
        p->safe = (TermSafe){};
        p->sanitize = p->outlet && outlet_is_terminal(p->outlet) && !s->o.raw_output;
        p->waiting = false;
        p->open = true;
        return uv_poll_start(&p->poll, UV_READABLE, on_pump);
}

/* Stdin for the app: our fd 0 itself unless it is a terminal, which is pumped
 * (through a description of our own: O_NONBLOCK on fd 0 would reach the shell
 * that shares it) into a pipe whose writes never block the loop (an outlet). Only
 * an app of `cella run` gets it; apps of `cella boot` read /dev/null. */
static int setup_stdin(Instance *inst, int *ret_app_fd)
{
        _cleanup_close_ int tty = -EBADF;
        int p[2], r;

        *ret_app_fd = -1;
        if (inst->sup->o.output != SUPERVISOR_OUTPUT_TERMINAL || fcntl(STDIN_FILENO, F_GETFD) < 0)
                return 0;
        if (!isatty(STDIN_FILENO)) {
                *ret_app_fd = STDIN_FILENO;
                return 0;
        }
        {
                unsigned ptn;

                /* A pty master reopened would be a new pty, and without /proc
                 * there is no reopening: then a blocking copy is read, only when
                 * poll says there is input. */
                if (ioctl(STDIN_FILENO, TIOCGPTN, &ptn) < 0)
                        tty = fd_reopen(STDIN_FILENO, O_RDONLY | O_NOCTTY | O_NONBLOCK);
                if (tty < 0)
                        tty = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
                if (tty < 0)
                        return negative_errno();
        }
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        r = outlet_new(&inst->sup->loop, p[1], true, SUPERVISOR_OUTLET_MAX, SUPERVISOR_OUTLET_MAX,
                       &inst->in_outlet);
        if (r < 0) {
                safe_close(p[0]);
                safe_close(p[1]);
                return r;
        }
        r = pump_start(inst->sup, inst, NULL, &inst->in, tty, inst->in_outlet, NULL);
        if (r < 0) {
                inst->in_outlet = outlet_free(inst->in_outlet); /* closes p[1] */
                safe_close(p[0]);
                return r;
        }
        TAKE_FD(tty);
        *ret_app_fd = p[0];
        return 0;
}

/* The registry work a spawn needs only when the child asks for its uid map. */
typedef struct Prepare {
        Instance *inst;
        State *state;
        const char *id;
        uid_t uid;        /* out */
        uid_t ids_base;   /* out: the app's block of host ids */
        int error;        /* out: the registry's error, for the message */
        const char *what; /* out: what failed */
        int code;         /* out: instance_starting()'s CELLA_EXIT_* code, 0 if none */
} Prepare;

/* SandboxSpec.prepare: runs while the child builds its jail (sandbox.h). Kept
 * short: on 2 CPUs, work here competes with the child and the net helper. */
static int instance_prepare(SandboxSpec *spec, void *userdata)
{
        _cleanup_free_ char *data = NULL;
        Prepare *p = userdata;
        int r;

        r = state_app_uid(p->state, p->id, &p->uid, &p->ids_base);
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
        spec->host_ids_base = p->ids_base;
        return 0;
}

/*
 * SandboxSpec.starting: the kernel's own setup (the first time: grants, audit log,
 * bus, prompt, control socket, broker), the app's install and (cella run) the sweep
 * of cgroups left by dead kernels, while the child
 * takes its last steps alone (capabilities, seccomp, exec) and the CPU the net
 * helper used is free (bench/start, docs/benchmarks.md). A failure (printed) fails
 * the spawn: the sandbox is killed before the app is served (it may have started:
 * the child does not wait for this, as the app did not wait for it before).
 */
static int instance_starting(SandboxSpec *spec, void *userdata)
{
        Prepare *p = userdata;

        p->code = supervisor_ready(p->inst->sup);
        if (p->code == 0)
                p->code = instance_install(p->inst);
        if (p->code == 0)
                supervisor_sweep(p->inst->sup);
        return p->code == 0 ? 0 : -ECANCELED;
}

/* {"event":"started", "app", "uid", "pid", "cgroup_mode", "cgroups": {ctrl: path}} */
static json_t *started_record(const Instance *inst)
{
        static const char *const ctrls[] = {"memory", "pids", "cpu", "freezer", ""};
        const Sandbox *sb = inst->sandbox;
        json_t *paths = json_object();

        for (size_t i = 0; paths && sb->cgroup && i < ELEMENTSOF(ctrls); i++) {
                const char *p = cgroup_path(sb->cgroup, ctrls[i]);

                if (p)
                        json_object_set_new(paths, ctrls[i][0] ? ctrls[i] : "unified",
                                            json_string(p));
        }
        return json_pack("{s:s, s:s, s:I, s:i, s:s, s:o, s:i}", "event", "started", "app",
                         inst->manifest->id, "uid", (json_int_t)inst->uid, "pid", (int)sb->pid,
                         "cgroup_mode", cgroup_manager_ops(inst->sup->cgm)->name, "cgroups",
                         paths ?: json_object(), "restarts", (int)inst->restarts);
}

static void instance_failed(Instance *inst, int code)
{
        inst->exit_code = code;
        inst->state = INSTANCE_FAILED;
        supervisor_changed(inst->sup);
}

/*
 * Whether others may not search the folder dir (no S_IXOTH), with its permission
 * bits in *ret_mode; false when they may or it cannot be looked at. The jail binds
 * an app's folder itself at /app, so the folders above it do not count, but its own
 * mode does: the app's uid is in no group of the host's, so "others" is what it gets
 * (an ACL aside), and without x every path under /app fails with EACCES, whatever
 * the exec was of (a Lua app's is /cella/cella-lua, with /app its working folder).
 */
static bool folder_others_cannot_search(const char *dir, mode_t *ret_mode)
{
        struct stat st;

        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || (st.st_mode & S_IXOTH))
                return false;
        *ret_mode = st.st_mode & 07777;
        return true;
}

static int report_spawn_error(Instance *inst, const SandboxError *e)
{
        const Manifest *m = inst->manifest;
        int code = cella_exit_for_step(e->step, e->error);
        char detail[SANDBOX_DETAIL_MAX];

        /* Names from the app's files (its entry, its #! line): one inert line on
         * the terminal, whatever execdiag.c made of them. */
        termsafe_field(e->detail, sizeof detail - 4, detail, sizeof detail);
        if (e->step == SANDBOX_STEP_EXEC && strncmp(e->detail, "execute ", 8) != 0) {
                /* The sandbox told why, in the app's terms (execdiag.c): the file, the
                 * cause and the fix; the jail's /app is named as the host folder. */
                log_error("cannot start %s: %s", m->id, detail);
                if (strstr(e->detail, " /app/"))
                        log_error("(/app in the jail is the app's folder %s)", inst->app_dir);
        } else
                log_error("cannot start %s: %s step failed: %s: %s", m->id,
                          sandbox_step_to_string(e->step), detail, strerror(e->error));
        if (e->step == SANDBOX_STEP_EXEC && e->error == ENOEXEC &&
            m->runtime == MANIFEST_RUNTIME_NATIVE && strlen(m->entry) > 4 &&
            strcmp(m->entry + strlen(m->entry) - 4, ".lua") == 0)
                log_error("(a Lua script? set the manifest's \"runtime\" to \"lua\": cella runs "
                          "it with its own Lua runtime, docs/lua-api.md)");
        if (e->step == SANDBOX_STEP_EXEC && e->error == EACCES &&
            strncmp(e->detail, "execute ", 8) == 0) {
                mode_t mode;

                if (folder_others_cannot_search(inst->app_dir, &mode))
                        log_error("the app's folder %s (mode %04o) is not searchable by others, "
                                  "and the app runs as a uid of its own: chmod -R o+rX %s",
                                  inst->app_dir, (unsigned)mode, inst->app_dir);
                else
                        log_error("hint: the app runs as its own uid; its folder and entry must "
                                  "be readable and executable by others (chmod o+rX)");
        }
        supervisor_status(inst->sup,
                          json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "event", "failed", "app",
                                    m->id, "step", sandbox_step_to_string(e->step), "error",
                                    e->detail, "errno", e->error, "exit_code", code));
        supervisor_audit(inst->sup, m->id, AUDIT_EVENT_LIFECYCLE,
                         json_pack("{s:s, s:s, s:s, s:i}", "what", "failed", "step",
                                   sandbox_step_to_string(e->step), "error", e->detail, "errno",
                                   e->error));
        return code;
}

static int instance_attach(Instance *inst, int chan, char *const *env)
{
        const Sandbox *sb = inst->sandbox;
        BrokerAppInfo info = {
                .manifest = inst->manifest,
                .app_dir = inst->app_dir,
                .data_dir = inst->data_dir,
                .host_uid = inst->uid,
                .pid = sb->pid,
                .pidfd = sb->pidfd,
                .memory_cgroup = sb->cgroup ? cgroup_path(sb->cgroup, "memory") : NULL,
                .pids_cgroup = sb->cgroup ? cgroup_path(sb->cgroup, "pids") : NULL,
                .cpu_cgroup = sb->cgroup ? cgroup_path(sb->cgroup, "cpu") : NULL,
                .cpuacct_cgroup = sb->cgroup ? cgroup_path(sb->cgroup, "cpuacct") : NULL,
                .unified_cgroup = sb->cgroup ? cgroup_path(sb->cgroup, "") : NULL,
                .signed_ok = inst->signed_ok,
                .started_ms = inst->started_ms,
                .env = env,
        };

        return broker_app_attach(inst->sup->broker, &info, chan, &inst->broker_app);
}

static void on_sandbox(uv_poll_t *h, int status, int events)
{
        Instance *inst = h->data;

        int done = sandbox_process(inst->sandbox);

        supervisor_check_init(inst->sup, inst->sandbox);
        if (done > 0) {
                uv_poll_stop(h);
                supervisor_output_check(inst->sup);
                instance_maybe_finished(inst);
        }
}

/* A denied system call waits for our answer (EPERM); we count it. */
static void on_seccomp_notify(uv_poll_t *h, int status, int events)
{
        Instance *inst = h->data;
        int r;

        if (status < 0 || (events & UV_DISCONNECT)) {
                uv_poll_stop(h);
                return;
        }
        r = seccomp_notify_process(inst->sandbox->seccomp_notify_fd, inst->denials);
        if (r < 0) {
                log_warning_errno(r, "%s: cannot answer its denied system calls: %m",
                                  inst->manifest->id);
                uv_poll_stop(h);
        }
}

static int watch_seccomp(Instance *inst)
{
        int r;

        if (inst->sandbox->seccomp_notify_fd < 0)
                return 0;
        if (!inst->denials) {
                inst->denials = malloc(sizeof *inst->denials);
                if (!inst->denials)
                        return -ENOMEM;
        }
        *inst->denials = (SeccompDenials){};
        r = uv_poll_init(&inst->sup->loop, &inst->notify_poll, inst->sandbox->seccomp_notify_fd);
        if (r < 0)
                return r;
        inst->notify_poll_init = true;
        inst->notify_poll.data = inst;
        return uv_poll_start(&inst->notify_poll, UV_READABLE | UV_DISCONNECT, on_seccomp_notify);
}

/* The audit record of the run's denied calls: total, and the most denied by name. */
static void audit_denials(Instance *inst)
{
        SeccompDenialCount top[8];
        json_t *calls;
        size_t n;

        if (!inst->denials || inst->denials->total == 0)
                return;
        n = seccomp_denials_top(inst->denials, top, ELEMENTSOF(top));
        calls = json_object();
        for (size_t i = 0; calls && i < n; i++) {
                const char *name = seccomp_syscall_name(top[i].nr);
                char num[16];

                if (!name) {
                        snprintf(num, sizeof num, "%d", top[i].nr);
                        name = num;
                }
                json_object_set_new(calls, name, json_integer((json_int_t)top[i].count));
        }
        supervisor_audit(inst->sup, inst->manifest->id, AUDIT_EVENT_SECCOMP,
                         json_pack("{s:I, s:I, s:o}", "denied", (json_int_t)inst->denials->total,
                                   "other", (json_int_t)inst->denials->other, "calls",
                                   calls ?: json_object()));
}

int fd_above_stdio(int fd)
{
        int n;

        if (fd < 0 || fd >= 4)
                return fd;
        n = fcntl(fd, F_DUPFD_CLOEXEC, 4);
        if (n < 0)
                n = negative_errno();
        safe_close(fd);
        return n;
}

int instance_open_log(Instance *inst)
{
        Supervisor *s = inst->sup;
        _cleanup_free_ char *dir = NULL;
        int r;

        if (s->o.output != SUPERVISOR_OUTPUT_LOGS || inst->log)
                return 0;
        if (asprintf(&dir, "%s/logs", state_path(s->state)) < 0)
                return CELLA_EXIT_INTERNAL;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                log_error_errno(negative_errno(), "cannot create %s: %m", dir);
                return CELLA_EXIT_STATE;
        }
        r = applog_open(dir, inst->manifest->id, APPLOG_SIZE_DEFAULT, APPLOG_KEEP_DEFAULT,
                        &inst->log);
        if (r < 0) {
                log_error_errno(r, "cannot open the log of %s in %s: %m", inst->manifest->id, dir);
                return CELLA_EXIT_STATE;
        }
        return 0;
}

/* Receives the app's pty master from the console socket sock (pty.c sent it before
 * the app's execve): a terminal, or -ENOTTY. Returns the fd (O_CLOEXEC) or -errno. */
static int receive_pty(int sock)
{
        int fd = fd_receive(sock);

        if (fd >= 0 && !isatty(fd)) {
                close(fd);
                return -ENOTTY;
        }
        return fd;
}

/*
 * cella run -t, once the app runs: its pty's master (from sock) copied to our
 * stdout like any output (rendered safe for a terminal), and our terminal's input
 * (in raw mode) written to the master, through an outlet so the loop never
 * blocks on it. Without a terminal on our stdin, the app's terminal gets an
 * end of file (^D) at once. Returns 0 or a negative errno / libuv error.
 */
static int instance_attach_pty(Instance *inst, int sock)
{
        Supervisor *s = inst->sup;
        _cleanup_close_ int master = -EBADF, tty = -EBADF, w = -EBADF;
        int r;

        master = receive_pty(sock);
        if (master < 0)
                return master;
        r = fd_nonblock(master, 1);
        if (r < 0)
                return r;
        if (!isatty(STDIN_FILENO)) {
                /* VEOF: a read of the terminal's input returns 0, as at a file's end. */
                (void)!write(master, "\x04", 1);
        } else {
                unsigned ptn;

                if (ioctl(STDIN_FILENO, TIOCGPTN, &ptn) < 0)
                        tty = fd_reopen(STDIN_FILENO, O_RDONLY | O_NOCTTY | O_NONBLOCK);
                if (tty < 0)
                        tty = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
                w = fcntl(master, F_DUPFD_CLOEXEC, 3);
                if (tty < 0 || w < 0)
                        return negative_errno();
                r = outlet_new(&s->loop, w, true, SUPERVISOR_OUTLET_MAX, SUPERVISOR_OUTLET_MAX,
                               &inst->in_outlet);
                if (r < 0)
                        return r;
                TAKE_FD(w);
                r = pump_start(s, inst, NULL, &inst->in, tty, inst->in_outlet, NULL);
                if (r < 0) {
                        inst->in_outlet = outlet_free(inst->in_outlet);
                        return r;
                }
                TAKE_FD(tty);
                /* Keys go to the app's terminal as typed: the rendering is for what
                 * reaches the user's screen, not for the app's input. */
                inst->in.sanitize = false;
                r = terminal_raw();
                if (r < 0)
                        log_warning_errno(r, "cannot put the terminal in raw mode: %m");
        }
        inst->pty_hold = fcntl(master, F_DUPFD_CLOEXEC, 3);
        if (inst->pty_hold < 0)
                return negative_errno();
        r = pump_start(s, inst, NULL, &inst->out, master, s->out_outlet, NULL);
        if (r < 0)
                return r;
        inst->pty_master = TAKE_FD(master);
        return 0;
}

int instance_start(Instance *inst)
{
        Supervisor *s = inst->sup;
        const Manifest *m = inst->manifest;
        _cleanup_close_pair_ int chan[2] = {-EBADF, -EBADF}, console[2] = {-EBADF, -EBADF};
        _cleanup_close_ int data_fd = -EBADF, app_fd = -EBADF;
        /* cella run -t: a pty instead of the pipes (instance_attach_pty). */
        bool pty = s->o.tty && s->o.output == SUPERVISOR_OUTPUT_TERMINAL;
        int out[2] = {-EBADF, -EBADF}, err[2] = {-EBADF, -EBADF}, in_fd = -1;
        SandboxError serr = {};
        Launch launch = {};
        Prepare prep = {};
        int r, code = CELLA_EXIT_INTERNAL;

        if (inst->state == INSTANCE_RUNNING)
                return 0;
        if (inst->group) {
                if (inst->group->state != INSTANCE_RUNNING)
                        return group_start(inst->group);
                log_error("cannot start %s alone: its packed group %s runs; restart the group",
                          m->id, inst->group->name);
                return CELLA_EXIT_PREPARE;
        }
        if (inst->out.closing || inst->err.closing || inst->in.closing || inst->polls_closing > 0) {
                log_error("cannot start %s: its last run is still being cleaned up", m->id);
                return CELLA_EXIT_INTERNAL;
        }
        inst->stop_requested = false;
        /* A signed app runs only what its key signed, at every start (a restart, an
         * app.launch), not only at its install. */
        code = instance_verify_again(inst);
        if (code != 0)
                goto fail_reported;
        code = CELLA_EXIT_INTERNAL;

        r = launch_prepare(&launch, m, inst->app_dir, inst->data_dir, 0, inst->extra_args);
        if (r < 0) {
                log_error_errno(r, "cannot prepare %s: %m", m->id);
                goto fail;
        }
        /* A signed app's /app: the folder just verified (inst->app_fd), not whatever
         * its path names by the time the jail binds it. An unsigned app is its path
         * (docs/security.md, "App identity"): the path is bound, so a folder replaced
         * there (an update by rename) is what its next start runs. */
        if (inst->signed_ok) {
                app_fd = open_tree(inst->app_fd, "",
                                   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
                                           AT_EMPTY_PATH);
                if (app_fd < 0) {
                        r = negative_errno();
                        log_error_errno(r, "cannot clone the folder of %s (%s): %m", m->id,
                                        inst->app_dir);
                        goto fail;
                }
                launch_set_app_mount(&launch, app_fd);
        }
        /* /data: the app's own file system, limits.storage in size (storage.h). */
        r = storage_prepare(state_path(s->state), m->id, storage_limit(m), &data_fd);
        if (r == -EOPNOTSUPP)
                log_warning("%s: no loop devices here: /data is a plain directory, and "
                            "limits.storage bounds only each file (RLIMIT_FSIZE)",
                            m->id);
        else if (r < 0) {
                log_error_errno(r, "cannot prepare the /data of %s: %m", m->id);
                code = CELLA_EXIT_STATE;
                goto fail;
        } else
                launch_set_data_mount(&launch, data_fd);
        if (pty)
                r = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, console);
        else
                r = pipe2(out, O_CLOEXEC) < 0 ? -1 : pipe2(err, O_CLOEXEC);
        if (r < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0) {
                r = negative_errno();
                log_error_errno(r, "cannot create the pipes of %s: %m", m->id);
                goto fail;
        }
        if (pty) {
                launch.spec.pty_socket = console[1];
                terminal_size(&launch.spec.pty_rows, &launch.spec.pty_cols);
        }
        r = pty ? 0 : setup_stdin(inst, &in_fd);
        if (r < 0) {
                log_error_errno(r, "cannot set up stdin: %m");
                goto fail;
        }
        code = instance_open_log(inst);
        if (code != 0) {
                r = -EIO;
                goto fail;
        }
        code = CELLA_EXIT_INTERNAL;
        if (m->runtime == MANIFEST_RUNTIME_LUA) {
                /* Its scheduler counters (docs/lua-api.md "Statistics"), for cella stats. */
                inst->stats = luastats_free(inst->stats);
                r = luastats_new(1, &inst->stats);
                if (r >= 0) {
                        r = fd_above_stdio(inst->stats->fd);
                        inst->stats->fd = r;
                }
                if (r >= 0)
                        r = strv_extendf(&launch.envp, "CELLA_LUA_STATS_FD=%d", inst->stats->fd);
                if (r < 0) {
                        log_error_errno(r, "cannot create the stats file of %s: %m", m->id);
                        goto fail;
                }
                launch.spec.envp = launch.envp; /* strv_extendf() may have moved it */
                launch.spec.extra_fds = &inst->stats->fd;
                launch.spec.n_extra_fds = 1;
        }

        launch.spec.stdio[0] = in_fd;
        launch.spec.stdio[1] = out[1];
        launch.spec.stdio[2] = err[1];
        launch.spec.channel_fd = chan[1];
        launch.spec.seccomp = s->filter;
        launch.spec.cgroups = s->cgm;
        prep = (Prepare){.inst = inst, .state = s->state, .id = m->id};
        launch.spec.prepare = instance_prepare;
        launch.spec.starting = instance_starting;
        launch.spec.prepare_userdata = &prep;
        inst->started_ns = now_monotonic_ns();
        inst->started_ms = now_realtime_ms();
        r = sandbox_spawn(&launch.spec, &inst->sandbox, &serr);
        /* The app has its ends now (or never will): ours would hide EOF. */
        out[1] = safe_close(out[1]);
        err[1] = safe_close(err[1]);
        chan[1] = safe_close(chan[1]);
        console[1] = safe_close(console[1]);
        if (in_fd > STDIN_FILENO)
                safe_close(in_fd);
        if (r < 0 && prep.code != 0) {
                code = prep.code; /* printed by instance_starting() */
                goto fail_reported;
        }
        if (r < 0 && prep.error < 0) {
                log_error_errno(prep.error, "%s %s in %s: %m", prep.what, m->id, s->o.state_dir);
                code = CELLA_EXIT_STATE;
                goto fail;
        }
        if (r < 0) {
                code = report_spawn_error(inst, &serr);
                goto fail_reported;
        }
        inst->uid = prep.uid;
        inst->state = INSTANCE_RUNNING;

        r = watch_seccomp(inst);
        if (r < 0) {
                log_error_errno(r, "cannot watch the seccomp filter of %s: %m", m->id);
                goto fail_running;
        }
        if (pty) {
                r = instance_attach_pty(inst, console[0]);
                if (r < 0) {
                        log_error_errno(r, "cannot relay the terminal of %s: %m", m->id);
                        goto fail_running;
                }
        } else {
                r = pump_start(s, inst, NULL, &inst->out, out[0], s->out_outlet, inst->log);
                if (r >= 0) {
                        out[0] = -EBADF;
                        r = pump_start(s, inst, NULL, &inst->err, err[0], s->err_outlet, inst->log);
                }
                if (r >= 0)
                        err[0] = -EBADF;
        }
        if (r >= 0)
                r = uv_poll_init(&s->loop, &inst->sandbox_poll, inst->sandbox->ctl_fd);
        if (r >= 0) {
                inst->sandbox_poll_init = true;
                inst->sandbox_poll.data = inst;
                r = uv_poll_start(&inst->sandbox_poll, UV_READABLE, on_sandbox);
        }
        if (r < 0) {
                log_error("cannot watch %s: %s", m->id, uv_strerror(r));
                goto fail_running;
        }
        /* Done by instance_starting() during the spawn: these return what it
         * got. The app's first calls wait in the channel until it is attached. */
        code = supervisor_ready(s);
        if (code == 0)
                code = instance_install(inst);
        if (code != 0)
                goto fail_running_code;
        r = instance_attach(inst, TAKE_FD(chan[0]), launch.envp);
        if (r < 0) {
                log_error_errno(r, "cannot serve the channel of %s: %m", m->id);
                goto fail_running;
        }
        /* Started: running, served, and (the control socket) visible to cella ps. */
        supervisor_status(s, started_record(inst));
        supervisor_audit(s, m->id, AUDIT_EVENT_LIFECYCLE,
                         json_pack("{s:s, s:i, s:I, s:i}", "what", "started", "pid",
                                   (int)inst->sandbox->pid, "uid", (json_int_t)inst->uid,
                                   "restarts", (int)inst->restarts));
        if (s->o.output == SUPERVISOR_OUTPUT_LOGS)
                log_info("%s: started (pid %d)", m->id, (int)inst->sandbox->pid);
        launch_done(&launch);
        return 0;

fail_running:
        code = CELLA_EXIT_INTERNAL;
fail_running_code:
        /* It runs, but we cannot serve it: take it down again. */
        if (inst->notify_poll_init) {
                inst->notify_poll_init = false;
                poll_close(inst, &inst->notify_poll);
        }
        safe_close(out[0]);
        safe_close(err[0]);
        broker_app_detach(inst->broker_app);
        inst->broker_app = NULL;
        inst->sandbox = sandbox_free(inst->sandbox);
        pump_close(&inst->out);
        pump_close(&inst->err);
        pump_close(&inst->in);
        launch_done(&launch);
        instance_failed(inst, code);
        return code;
fail:
        supervisor_status(s, json_pack("{s:s, s:s, s:s, s:i}", "event", "failed", "app", m->id,
                                       "error", strerror(r < 0 ? -r : EIO), "exit_code", code));
        supervisor_audit(s, m->id, AUDIT_EVENT_LIFECYCLE,
                         json_pack("{s:s, s:i}", "what", "failed", "errno", r < 0 ? -r : EIO));
fail_reported:
        safe_close(out[0]);
        safe_close(out[1]);
        safe_close(err[0]);
        safe_close(err[1]);
        pump_close(&inst->in);
        launch_done(&launch);
        instance_failed(inst, code);
        return code;
}

/* Prints, records and returns the exit code of the run that just ended. */
static int report_exit(Instance *inst)
{
        const SandboxExit *x = &inst->sandbox->exit;
        const Manifest *m = inst->manifest;
        Supervisor *s = inst->sup;
        char limit[24] = "none";
        double ms = (double)(now_monotonic_ns() - inst->started_ns) / 1e6;
        json_t *rec;
        int code;

        if (m->limits.memory)
                format_size(m->limits.memory, limit, sizeof limit);
        if (x->code == CLD_EXITED && m->runtime == MANIFEST_RUNTIME_LUA) {
                code = x->status;
                instance_report_lua_exit(inst, code);
        } else if (x->code == CLD_EXITED) {
                code = x->status;
                if (code == CELLA_EXIT_NOT_FOUND)
                        /* The app's own 127, after its exec worked: the dynamic loader's
                         * (a shared library it cannot find in the jail), or a shell's or
                         * env's (a command it cannot find: "#!/usr/bin/env python9"),
                         * whose own message went to the app's stderr. */
                        log_error("%s: exited with status 127 (its own: its entry did start): "
                                  "a shell or /usr/bin/env exits so for a command it cannot "
                                  "find, the dynamic loader for a missing shared library "
                                  "(\"error while loading shared libraries\"); the app's stderr "
                                  "says which%s%s%s. The jail shows only the host's /usr, /bin "
                                  "and /lib*: install what is missing there, or link the app "
                                  "statically (libcella: pkg-config --libs cella-static)",
                                  m->id,
                                  s->o.output == SUPERVISOR_OUTPUT_LOGS ? " ('cella logs " : "",
                                  s->o.output == SUPERVISOR_OUTPUT_LOGS ? m->id : "",
                                  s->o.output == SUPERVISOR_OUTPUT_LOGS ? "')" : "");
                else if (s->o.output == SUPERVISOR_OUTPUT_LOGS)
                        log_info("%s: exited with status %d", m->id, code);
        } else {
                code = CELLA_EXIT_SIGNAL_BASE + x->status;
                if (x->oom_killed)
                        log_error("%s was killed by the OOM killer (memory limit %s)", m->id,
                                  limit);
                else if (!inst->stop_requested || s->o.output == SUPERVISOR_OUTPUT_TERMINAL)
                        log_error("%s was killed by signal %d (%s)", m->id, x->status,
                                  strsignal(x->status));
                else
                        log_info("%s: stopped", m->id);
        }
        if (x->oom_kills > 0 && !x->oom_killed)
                log_error("%s: the OOM killer killed %llu process(es) in its sandbox (memory limit "
                          "%s)",
                          m->id, (unsigned long long)x->oom_kills, limit);
        supervisor_status(s,
                          json_pack("{s:s, s:s, s:I, s:s, s:i, s:i, s:b, s:I, s:i, s:f, s:I}",
                                    "event", "exited", "app", m->id, "uid", (json_int_t)inst->uid,
                                    "how", x->code == CLD_EXITED ? "exited" : "killed",
                                    x->code == CLD_EXITED ? "status" : "signal", x->status,
                                    "exit_code", code, "oom_killed", x->oom_killed, "oom_kills",
                                    (json_int_t)x->oom_kills, "pid", (int)inst->sandbox->pid,
                                    "duration_ms", ms, "seccomp_denied",
                                    (json_int_t)(inst->denials ? inst->denials->total : 0)));
        rec = json_pack("{s:s, s:s, s:i, s:b, s:I, s:f}", "what", "exited", "how",
                        x->code == CLD_EXITED ? "exited" : "killed", "status", x->status,
                        "oom_killed", x->oom_killed, "oom_kills", (json_int_t)x->oom_kills,
                        "duration_ms", ms);
        /* A Lua app's fault, from cella-lua's exit code (docs/lua-api.md "Runtime"). */
        if (rec && m->runtime == MANIFEST_RUNTIME_LUA && x->code == CLD_EXITED &&
            luastats_fault_reason(x->status))
                json_object_set_new(rec, "reason", json_string(luastats_fault_reason(x->status)));
        supervisor_audit(s, m->id, AUDIT_EVENT_LIFECYCLE, rec);
        return code;
}

/* Writes the log lines of a Lua app's exit; the audit record is the caller's. */
void instance_report_lua_exit(Instance *inst, int code)
{
        const char *reason = luastats_fault_reason(code);
        Supervisor *s = inst->sup;
        const char *id = inst->manifest->id;

        if (code == 0) {
                if (s->o.output == SUPERVISOR_OUTPUT_LOGS)
                        log_info("%s: exited with status 0", id);
        } else if (reason) {
                log_error("%s: exited with status %d: %s", id, code, reason);
        } else if (s->o.output == SUPERVISOR_OUTPUT_LOGS) {
                log_info("%s: exited with status %d", id, code);
        }
        if (reason && inst->log) {
                char line[160];
                int n = snprintf(line, sizeof line, "[cella] exited with status %d: %s\n", code,
                                 reason);

                if (n > 0)
                        (void)applog_write(inst->log, line, MIN((size_t)n, sizeof line - 1));
        }
}

static void on_restart_timer(uv_timer_t *t)
{
        Instance *inst = t->data;

        if (inst->state != INSTANCE_RESTARTING)
                return;
        inst->restarts++;
        log_info("%s: restarting (restart %u)", inst->manifest->id, inst->restarts);
        (void)instance_start(inst);
}

static void instance_timer_start(Instance *inst, uint64_t ms, uv_timer_cb cb)
{
        if (!inst->timer_init) {
                if (uv_timer_init(&inst->sup->loop, &inst->timer) < 0)
                        return;
                inst->timer_init = true;
                inst->timer.data = inst;
        }
        (void)uv_timer_start(&inst->timer, cb, ms, 0);
}

/* The run ends when init has exited and both output pipes are drained. */
static void instance_maybe_finished(Instance *inst)
{
        Supervisor *s = inst->sup;
        uint64_t delay_ns = 0;
        RestartDecision d;

        if (s->freeing || inst->state != INSTANCE_RUNNING || !inst->sandbox ||
            !inst->sandbox->exited || inst->out.open || inst->err.open)
                return;
        if (inst->notify_poll_init) {
                if (inst->sandbox->seccomp_notify_fd >= 0)
                        (void)seccomp_notify_process(inst->sandbox->seccomp_notify_fd,
                                                     inst->denials);
                inst->notify_poll_init = false;
                poll_close(inst, &inst->notify_poll);
        }
        /* The app has exited: its terminal may go now. */
        inst->pty_hold = safe_close(inst->pty_hold);
        inst->exit_code = report_exit(inst);
        inst->last_exit = inst->sandbox->exit;
        audit_denials(inst);
        if (inst->timer_init)
                uv_timer_stop(&inst->timer);
        broker_app_detach(inst->broker_app);
        inst->broker_app = NULL;
        if (inst->sandbox_poll_init) {
                inst->sandbox_poll_init = false;
                poll_close(inst, &inst->sandbox_poll);
        }
        inst->sandbox = sandbox_free(inst->sandbox);
        inst->stats = luastats_free(inst->stats);
        pump_close(&inst->in);

        if (!s->o.boot || inst->stop_requested || s->stopping) {
                /* `cella ps` says "stopped" for an app cella stopped (cella stop,
                 * Ctrl-C, the end of a boot), "exited" for one that ended by itself. */
                inst->state =
                        inst->stop_requested || s->stopping ? INSTANCE_STOPPED : INSTANCE_EXITED;
                supervisor_changed(s);
                return;
        }
        d = restart_decide(&inst->restart, inst->manifest->restart, &inst->last_exit,
                           inst->started_ns, now_monotonic_ns(), &delay_ns);
        switch (d) {
        case RESTART_LATER:
                inst->state = INSTANCE_RESTARTING;
                supervisor_audit(s, inst->manifest->id, AUDIT_EVENT_LIFECYCLE,
                                 json_pack("{s:s, s:I}", "what", "restart", "delay_ms",
                                           (json_int_t)(delay_ns / 1000000)));
                instance_timer_start(inst, delay_ns / 1000000, on_restart_timer);
                break;
        case RESTART_GIVE_UP:
                log_error("%s: restarted %d times within %llu s; giving up", inst->manifest->id,
                          RESTART_BURST, (unsigned long long)(RESTART_INTERVAL_NS / 1000000000ull));
                supervisor_audit(s, inst->manifest->id, AUDIT_EVENT_LIFECYCLE,
                                 json_pack("{s:s}", "what", "gave-up"));
                inst->state = INSTANCE_FAILED;
                break;
        case RESTART_NO:
                inst->state = INSTANCE_EXITED;
                break;
        }
        supervisor_changed(s);
}

static void on_stop_timer(uv_timer_t *t)
{
        Instance *inst = t->data;

        if (inst->state == INSTANCE_RUNNING && inst->sandbox) {
                log_warning("%s did not stop within %d ms; killing it", inst->manifest->id,
                            SUPERVISOR_STOP_GRACE_MS);
                instance_stop(inst, true);
        }
}

void instance_stop(Instance *inst, bool kill)
{
        inst->stop_requested = true;
        switch (inst->state) {
        case INSTANCE_RESTARTING:
                if (inst->timer_init)
                        uv_timer_stop(&inst->timer);
                inst->state = INSTANCE_STOPPED;
                supervisor_changed(inst->sup);
                return;
        case INSTANCE_RUNNING:
                if (inst->group) {
                        group_stop(inst->group, kill);
                        return;
                }
                if (!inst->sandbox || inst->sandbox->exited)
                        return;
                if (kill) {
                        if (inst->sandbox->cgroup)
                                (void)cgroup_kill(inst->sandbox->cgroup);
                        (void)sandbox_signal(inst->sandbox, SIGKILL);
                } else {
                        (void)sandbox_signal(inst->sandbox, SIGTERM);
                        instance_timer_start(inst, SUPERVISOR_STOP_GRACE_MS, on_stop_timer);
                }
                return;
        default:
                return;
        }
}

bool instance_active(const Instance *inst)
{
        return inst->state == INSTANCE_RUNNING || inst->state == INSTANCE_RESTARTING;
}

static const char *const state_names[] = {
        [INSTANCE_STOPPED] = "stopped",       [INSTANCE_RUNNING] = "running",
        [INSTANCE_RESTARTING] = "restarting", [INSTANCE_EXITED] = "exited",
        [INSTANCE_FAILED] = "failed",
};

json_t *instance_record(const Instance *inst)
{
        BrokerAppStats st = {};
        json_t *o;

        if (inst->broker_app)
                broker_app_stats(inst->broker_app, &st);
        const Sandbox *sb = inst->group ? inst->group->sandbox : inst->sandbox;

        o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:i, s:I, s:I, s:i}", "id",
                      inst->manifest->id, "kind", manifest_kind_to_string(inst->manifest->kind),
                      "state", state_names[inst->state], "pid",
                      sb && inst->state == INSTANCE_RUNNING ? (int)sb->pid : 0, "uid",
                      (json_int_t)inst->uid, "started_ms",
                      (json_int_t)(inst->state == INSTANCE_RUNNING ? inst->started_ms : 0),
                      "restarts", (int)inst->restarts, "calls", (json_int_t)st.calls, "refused",
                      (json_int_t)st.refused, "exit_code",
                      inst->state == INSTANCE_RUNNING ? 0 : inst->exit_code);
        if (o && inst->group)
                json_object_set_new(o, "group", json_string(inst->group->name));
        if (o && inst->group && inst->group->stats) {
                CLuaStatsApp a;

                /* A member's own heap: the host's cgroup holds the whole group. */
                if (luastats_app(inst->group->stats, inst->group_index, &a) >= 0)
                        json_object_set_new(o, "memory_bytes",
                                            json_integer((json_int_t)a.memory_bytes));
        } else if (o && inst->sandbox && inst->sandbox->cgroup) {
                CgroupStats cs = {};

                if (cgroup_stats(inst->sandbox->cgroup, &cs) >= 0)
                        json_object_set_new(o, "memory_bytes",
                                            json_integer((json_int_t)cs.memory_current));
        }
        return o;
}

int instance_exit_code(const Instance *inst)
{
        return inst->exit_code;
}

InstanceState instance_state(const Instance *inst)
{
        return inst->state;
}

const Manifest *instance_manifest(const Instance *inst)
{
        return inst->manifest;
}

void instance_free(Instance *inst)
{
        if (!inst)
                return;
        broker_app_detach(inst->broker_app);
        inst->sandbox = sandbox_free(inst->sandbox);
        inst->stats = luastats_free(inst->stats);
        inst->in_outlet = outlet_free(inst->in_outlet);
        safe_close(inst->pty_hold);
        inst->log = applog_close(inst->log);
        manifest_free(inst->manifest);
        free(inst->denials);
        free(inst->app_dir);
        safe_close(inst->app_fd);
        free(inst->data_dir);
        strv_free(inst->extra_args);
        free(inst);
}
