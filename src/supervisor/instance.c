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
#include "net/nslisten.h"
#include "supervisor/adopt.h"
#include "supervisor/error.h"
#include "supervisor/memory-actions.h"
#include "supervisor/storage.h"
#include "net/fullnet.h"
#include "supervisor/appnet.h"
#include "supervisor/supervisor-internal.h"
#include "supervisor/terminal.h"

static void instance_maybe_finished(Instance *inst);

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

/* Our terminal's input (fd 0, a terminal), in a description of our own: O_NONBLOCK
 * on fd 0 would reach the shell that shares it. A pty master reopened would be a
 * new pty, and without /proc there is no reopening: then a blocking copy (O_CLOEXEC)
 * is read, only when poll says there is input. Returns the fd or a negative
 * errno. */
static int terminal_input(void)
{
        unsigned ptn;
        int fd = -EBADF;

        if (ioctl(STDIN_FILENO, TIOCGPTN, &ptn) < 0)
                fd = fd_reopen(STDIN_FILENO, O_RDONLY | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? negative_errno() : fd;
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
        tty = terminal_input();
        if (tty < 0)
                return tty;
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
        uid_t uid;           /* out */
        uid_t ids_base;      /* out: the app's block of host ids */
        SupervisorError err; /* out: what failed, step STATE (detail: the message's verb) */
        bool started_failed; /* out: instance_starting() failed (printed; in inst->error) */
        uint16_t proxy_port; /* its proxy's port, or 0: none */
        int proxy_fds[2];    /* out: the proxy's listeners in its namespace, or -1 */
        bool groups;         /* it asks for net.group: join its app networks */
} Prepare;

/* SandboxSpec.prepare: runs while the child builds its jail (sandbox.h). Kept
 * short: on 2 CPUs, work here competes with the child and the net helper. */
static int instance_prepare(SandboxSpec *spec, void *userdata)
{
        _cleanup_free_ char *data = NULL;
        Prepare *p = userdata;
        int r;

        r = state_app_uid(p->state, p->id, &p->uid, &p->ids_base);
        if (r < 0)
                return supervisor_error(&p->err, SUPERVISOR_STEP_STATE, r,
                                        "cannot allocate a uid for");
        r = state_app_data_dir(p->state, p->id, p->uid, &data);
        if (r < 0)
                return supervisor_error(&p->err, SUPERVISOR_STEP_STATE, r,
                                        "cannot give the data directory to");
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
        int r;

        r = supervisor_ready(p->inst->sup, &p->inst->error);
        if (r >= 0)
                r = instance_install(p->inst, &p->inst->error);
        if (r >= 0)
                supervisor_sweep(p->inst->sup);
        /* net.internet: its rules and interface before the app runs (the child waits
         * for this: spec->wait_starting). */
        if (r >= 0 && spec->wait_starting)
                r = appnet_start(p->inst, spec->starting_pid, &p->inst->error);
        p->started_failed = r < 0;
        return r < 0 ? -ECANCELED : 0;
}

/*
 * SandboxSpec.net_ready: what the app's network namespace must hold before the app
 * runs. The proxy's listeners (netproxy.h; pidfd names the namespace to setns(2)),
 * so its first connection finds them: a port taken there cannot be (the namespace is
 * new), so a failure is cellad's and fails the start. Then its app networks (an app
 * that asks for net.group), so that its first connect finds its interface and its
 * /etc/hosts its peers; their rights are read from grants.db: the kernel's setup and
 * the app's install (instance_starting()'s, done here first; they are done once)
 * come first.
 */
static int instance_net_ready(SandboxSpec *spec, int pidfd, void *userdata)
{
        Prepare *p = userdata;
        int r;

        (void)spec;
        if (p->proxy_port) {
                r = net_listen_in_netns(pidfd, p->proxy_port, p->proxy_fds);
                if (r < 0)
                        return supervisor_error(&p->err, SUPERVISOR_STEP_INTERNAL, r,
                                                "cannot make the proxy's listener for");
        }
        if (!p->groups)
                return 0;
        r = supervisor_ready(p->inst->sup, &p->inst->error);
        if (r >= 0)
                r = instance_install(p->inst, &p->inst->error);
        if (r < 0) {
                p->started_failed = true;
                return -ECANCELED;
        }
        instance_net_starting(p->inst, pidfd);
        return 0;
}

/* {"event":"started", "app", "uid", "pid", "cgroup_mode", "cgroups": {ctrl: path}} */
static json_t *started_record(const Instance *inst)
{
        static const char *const ctrls[] = {"memory", "pids", "cpu", "freezer", ""};
        const Sandbox *sb = inst->run.sandbox;
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
                         paths ?: json_object(), "restarts", (int)inst->run.restarts);
}

/* inst's start failed: inst->error says why (printed and recorded). */
static void instance_failed(Instance *inst)
{
        inst->exit_code = supervisor_exit_code(inst->sup, &inst->error);
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

/* Says why the spawn failed (e), with hints, and records it. Returns a negative
 * errno, with inst->error. */
static int report_spawn_error(Instance *inst, const SandboxError *told)
{
        const Manifest *m = inst->manifest;
        SandboxError advised;
        const SandboxError *e = &advised;
        int r;
        char detail[SANDBOX_DETAIL_MAX];

        /* The library's plain fact, told in the manifest's terms (error.h). */
        supervisor_exec_advise(told, "the entry", &advised);
        r = supervisor_error_sandbox(&inst->error, e);

        /* Names from the app's files (its entry, its #! line): one inert line on
         * the terminal, whatever execdiag.c made of them. */
        termsafe_field(e->detail, sizeof detail - 4, detail, sizeof detail);
        if (e->step == SANDBOX_STEP_EXEC && e->exec_cause != SANDBOX_EXEC_CAUSE_NONE) {
                /* The sandbox told why (execdiag.c), advised above: the file, the
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
        /* The entry's execve, or the chdir to /app before it (spawn.c: "working
         * directory /app"): a folder others cannot search fails either. */
        if (e->step == SANDBOX_STEP_EXEC && e->error == EACCES &&
            (strncmp(e->detail, "execute ", 8) == 0 ||
             strncmp(e->detail, "working directory ", 18) == 0)) {
                mode_t mode;

                if (folder_others_cannot_search(inst->app_dir, &mode))
                        log_error("the app's folder %s (mode %04o) is not searchable by others, "
                                  "and the app runs as a uid of its own: chmod -R o+rX %s",
                                  inst->app_dir, (unsigned)mode, inst->app_dir);
                else
                        log_error("hint: the app runs as its own uid; its folder and entry must "
                                  "be readable and executable by others (chmod o+rX)");
        }
        sandboxed_report_failed(&inst->run, &inst->error);
        return r;
}

static int instance_attach(Instance *inst, int chan, char *const *env)
{
        BrokerAppInfo info = {
                .manifest = inst->manifest,
                .app_dir = inst->app_dir,
                .data_dir = inst->data_dir,
                .signed_ok = inst->signed_ok,
                .env = env,
        };

        sandboxed_broker_info(&inst->run, &info);
        return broker_app_attach(inst->sup->broker, &info, chan, &inst->broker_app);
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

int instance_open_log(Instance *inst, SupervisorError *err)
{
        int r = sandboxed_open_log(inst->sup, inst->manifest->id, &inst->log);

        return r < 0 ? supervisor_error(err, SUPERVISOR_STEP_STATE, r, "logs") : 0;
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
                tty = terminal_input();
                if (tty < 0)
                        return tty;
                w = fcntl(master, F_DUPFD_CLOEXEC, 3);
                if (w < 0)
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

/* What one start of an app holds until its sandbox runs and is served. */
typedef struct InstanceStart {
        Launch launch;
        Prepare prep;
        SandboxError serr;
        bool pty; /* cella run -t: a pty instead of the pipes (instance_attach_pty) */
        int chan[2], console[2], out[2], err[2];
        int in_fd; /* the app's stdin: ours (0), a pipe fed from our terminal, or -1 */
        int data_fd, app_fd;
        char *hosts_path;  /* an app network member's /etc/hosts (netgroups.c) */
        bool state_failed; /* what failed is the state directory's (SUPERVISOR_STEP_STATE) */
} InstanceStart;

static void instance_start_done(InstanceStart *c)
{
        for (size_t i = 0; i < 2; i++) {
                c->chan[i] = safe_close(c->chan[i]);
                c->console[i] = safe_close(c->console[i]);
                c->out[i] = safe_close(c->out[i]);
                c->err[i] = safe_close(c->err[i]);
        }
        if (c->in_fd > STDIN_FILENO)
                safe_close(c->in_fd);
        c->in_fd = -1;
        c->data_fd = safe_close(c->data_fd);
        c->app_fd = safe_close(c->app_fd);
        free(c->hosts_path);
        c->hosts_path = NULL;
        c->prep.proxy_fds[0] = safe_close(c->prep.proxy_fds[0]);
        c->prep.proxy_fds[1] = safe_close(c->prep.proxy_fds[1]);
        launch_done(&c->launch);
}

/* Whether inst may start now: 0 yes (a packed app: its group's host, or a join into
 * it, group_start_member()); 1 it runs already; else a negative errno with
 * inst->error, after a message (its state stands). */
static int instance_may_start(Instance *inst)
{
        const Manifest *m = inst->manifest;

        if (inst->state == INSTANCE_RUNNING)
                return 1;
        if (inst->group)
                return 0;
        if (inst->out.closing || inst->err.closing || inst->in.closing ||
            sandboxed_busy(&inst->run)) {
                log_error("cannot start %s: its last run is still being cleaned up", m->id);
                return supervisor_error(&inst->error, SUPERVISOR_STEP_INTERNAL, EBUSY, NULL);
        }
        return 0;
}

/* An app network member's /etc/hosts: its own file, bound read-only, that the kernel
 * rewrites as members come and go (netgroups.c). Returns 0 or a negative errno. */
static int instance_net_mount(Instance *inst, InstanceStart *c)
{
        int r = instance_net_hosts(inst, &c->hosts_path);

        if (r < 0) {
                c->state_failed = true;
                return r;
        }
        if (c->hosts_path)
                launch_set_hosts_file(&c->launch, c->hosts_path);
        return 0;
}

/*
 * The app's /app and /data in c->launch. A signed app's /app is the folder just
 * verified (inst->app_fd), not whatever its path names by the time the jail binds
 * it; an unsigned app is its path (docs/security.md, "App identity"): the path is
 * bound, so a folder replaced there (an update by rename) is what its next start
 * runs. /data is the app's own file system, limits.storage in size (storage.h).
 * Returns 0 or a negative errno, after a message.
 */
static int instance_prepare_mounts(Instance *inst, InstanceStart *c)
{
        const Manifest *m = inst->manifest;
        int r;

        r = launch_prepare(&c->launch, m, inst->app_dir, inst->data_dir, 0, inst->extra_args);
        if (r < 0)
                return log_error_errno(r, "cannot prepare %s: %m", m->id);
        if (inst->signed_ok) {
                c->app_fd = open_tree(inst->app_fd, "",
                                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
                                              AT_EMPTY_PATH);
                if (c->app_fd < 0)
                        return log_error_errno(negative_errno(),
                                               "cannot clone the folder of %s (%s): %m", m->id,
                                               inst->app_dir);
                launch_set_app_mount(&c->launch, c->app_fd);
        }
        r = storage_prepare(state_path(inst->sup->state), m->id, storage_limit(m), &c->data_fd);
        if (r == -EOPNOTSUPP) {
                log_warning("%s: no loop devices here: /data is a plain directory, and "
                            "limits.storage bounds only each file (RLIMIT_FSIZE)",
                            m->id);
                return instance_net_mount(inst, c);
        }
        if (r < 0) {
                c->state_failed = true;
                return log_error_errno(r, "cannot prepare the /data of %s: %m", m->id);
        }
        launch_set_data_mount(&c->launch, c->data_fd);
        return instance_net_mount(inst, c);
}

/* The app's stdio (pipes, or cella run -t's console socket), its channel, its
 * stdin and its log. Returns 0 or a negative errno, after a message. */
static int instance_open_stdio(Instance *inst, InstanceStart *c)
{
        const Manifest *m = inst->manifest;
        int r;

        if (c->pty)
                r = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c->console);
        else
                r = pipe2(c->out, O_CLOEXEC) < 0 ? -1 : pipe2(c->err, O_CLOEXEC);
        if (r < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c->chan) < 0)
                return log_error_errno(negative_errno(), "cannot create the pipes of %s: %m",
                                       m->id);
        if (c->pty) {
                c->launch.spec.pty_socket = c->console[1];
                terminal_size(&c->launch.spec.pty_rows, &c->launch.spec.pty_cols);
        } else {
                r = setup_stdin(inst, &c->in_fd);
                if (r < 0)
                        return log_error_errno(r, "cannot set up stdin: %m");
        }
        r = instance_open_log(inst, NULL);
        if (r < 0) {
                c->state_failed = true;
                return -EIO; /* the record's errno, as it was */
        }
        return 0;
}

/* A Lua app's scheduler counters (docs/lua-api.md "Statistics"), for cella stats:
 * a stats file passed as CELLA_LUA_STATS_FD. Returns 0 or a negative errno. */
static int instance_prepare_stats(Instance *inst, InstanceStart *c)
{
        Launch *l = &c->launch;
        int r;

        if (inst->manifest->runtime != MANIFEST_RUNTIME_LUA)
                return 0;
        r = sandboxed_new_stats(&inst->run, 1);
        if (r >= 0)
                r = strv_extendf(&l->envp, "CELLA_LUA_STATS_FD=%d", inst->run.stats->fd);
        if (r < 0)
                return log_error_errno(r, "cannot create the stats file of %s: %m",
                                       inst->manifest->id);
        l->spec.envp = l->envp; /* strv_extendf() may have moved it */
        l->spec.extra_fds = &inst->run.stats->fd;
        l->spec.n_extra_fds = 1;
        return 0;
}

/* The port of the per-app proxy for inst, or 0: none (docs/network.md "The proxy":
 * an app that asks for a net.connect right, in a sandbox of its own). */
static uint16_t instance_proxy_port(const Instance *inst)
{
        return netproxy_port(inst->sup->o.net_proxy_port, inst->manifest);
}

/* The proxy's variables in the app's environment, and its listener asked for
 * (instance_net_ready). Returns 0 or -ENOMEM, after a message. */
static int instance_prepare_proxy(Instance *inst, InstanceStart *c)
{
        uint16_t port = instance_proxy_port(inst);
        int r;

        if (!port)
                return 0;
        r = netproxy_env(&c->launch.envp, inst->manifest->env, port);
        if (r < 0)
                return log_error_errno(r, "cannot announce the proxy to %s: %m",
                                       inst->manifest->id);
        c->launch.spec.envp = c->launch.envp; /* strv_extendf() may have moved it */
        c->prep.proxy_port = port;
        c->launch.spec.net_ready = instance_net_ready;
        return 0;
}

/* Spawns the sandbox. Returns 0, or a negative errno with inst->error, after its
 * message and records. */
static int instance_spawn(Instance *inst, InstanceStart *c)
{
        Supervisor *s = inst->sup;
        SandboxSpec *spec = &c->launch.spec;
        int r;

        spec->stdio[0] = c->in_fd;
        spec->stdio[1] = c->out[1];
        spec->stdio[2] = c->err[1];
        spec->channel_fd = c->chan[1];
        spec->seccomp = s->filter;
        spec->cgroups = s->cgm;
        /* cellad's apps outlive it, held by its keeper (adopt.h). */
        spec->survive_parent = supervisor_keeper_attached(s);
        /* Its band, in its init before the app runs (cellad's own is -1000). */
        spec->oom_score_adj = supervisor_memory_start_adj(inst);
        spec->oom_score_adj_set = true;
        c->prep.inst = inst;
        c->prep.state = s->state;
        c->prep.id = inst->manifest->id;
        spec->prepare = instance_prepare;
        spec->starting = instance_starting;
        if (c->hosts_path) {
                c->prep.groups = true;
                spec->net_ready = instance_net_ready;
        }
        /* net.internet (appnet.h): the app waits for its network, and resolves names
         * through pasta's DNS forward. */
        if (appnet_wanted(inst->manifest)) {
                spec->wait_starting = true;
                spec->resolv_conf = FULLNET_RESOLV_CONF;
        }
        spec->prepare_userdata = &c->prep;
        r = sandboxed_spawn(&inst->run, spec, &c->serr);
        inst->started_ns = inst->run.started_ns;
        inst->started_ms = inst->run.started_ms;
        /* The app has its ends now (or never will): ours would hide EOF. */
        c->out[1] = safe_close(c->out[1]);
        c->err[1] = safe_close(c->err[1]);
        c->chan[1] = safe_close(c->chan[1]);
        c->console[1] = safe_close(c->console[1]);
        if (c->in_fd > STDIN_FILENO)
                safe_close(c->in_fd);
        c->in_fd = -1;
        if (r >= 0)
                return 0;
        if (c->prep.started_failed)
                return -inst->error.error; /* printed by instance_starting() */
        if (c->prep.err.step != SUPERVISOR_STEP_NONE) {
                inst->error = c->prep.err;
                log_error_errno(-inst->error.error, "%s %s in %s: %m", inst->error.detail,
                                inst->manifest->id, s->o.state_dir);
                inst->error.error = -r; /* the record's errno: the spawn's, as it was */
                sandboxed_report_failed(&inst->run, &inst->error);
                return r;
        }
        return report_spawn_error(inst, &c->serr);
}

/*
 * The sandbox runs: watch it, pump its output (or relay its terminal), make the
 * kernel ready and the app installed (done by instance_starting() during the
 * spawn: these return what it got), and serve its channel: the app's first calls
 * wait in the channel until it is attached. Returns 0 or a negative errno with
 * inst->error, after a message.
 */
static int instance_serve(Instance *inst, InstanceStart *c)
{
        Supervisor *s = inst->sup;
        const Manifest *m = inst->manifest;
        int r;

        if (c->pty) {
                r = instance_attach_pty(inst, c->console[0]);
                if (r < 0) {
                        log_error_errno(r, "cannot relay the terminal of %s: %m", m->id);
                        return supervisor_error(&inst->error, SUPERVISOR_STEP_INTERNAL, r,
                                                "the terminal");
                }
        } else {
                r = pump_start(s, inst, NULL, &inst->out, c->out[0], s->out_outlet, inst->log);
                if (r >= 0) {
                        c->out[0] = -EBADF;
                        r = pump_start(s, inst, NULL, &inst->err, c->err[0], s->err_outlet,
                                       inst->log);
                }
                if (r >= 0)
                        c->err[0] = -EBADF;
        }
        if (r >= 0)
                r = sandboxed_watch(&inst->run);
        if (r < 0) {
                log_error("cannot watch %s: %s", m->id, uv_strerror(r));
                return supervisor_error(&inst->error, SUPERVISOR_STEP_INTERNAL, r, "watch");
        }
        r = supervisor_ready(s, &inst->error);
        if (r >= 0)
                r = instance_install(inst, &inst->error);
        if (r < 0)
                return r;
        r = instance_attach(inst, TAKE_FD(c->chan[0]), c->launch.envp);
        if (r < 0) {
                log_error_errno(r, "cannot serve the channel of %s: %m", m->id);
                return supervisor_error(&inst->error, SUPERVISOR_STEP_INTERNAL, r, "channel");
        }
        /* Its proxy, once the broker knows it: connections made before wait in the
         * listen backlog. */
        if (c->prep.proxy_fds[0] >= 0) {
                r = netproxy_start(&s->loop, s->broker, m->id, c->prep.proxy_fds, &inst->proxy);
                if (r < 0) {
                        log_error_errno(r, "cannot serve the proxy of %s: %m", m->id);
                        return supervisor_error(&inst->error, SUPERVISOR_STEP_INTERNAL, r, "proxy");
                }
        }
        return 0;
}

/* Started: running, served, and (the control socket) visible to cella ps. */
static void instance_started(Instance *inst)
{
        Supervisor *s = inst->sup;
        const Manifest *m = inst->manifest;

        supervisor_status(s, started_record(inst));
        supervisor_audit(s, m->id, AUDIT_EVENT_LIFECYCLE,
                         json_pack("{s:s, s:i, s:I, s:i}", "what", "started", "pid",
                                   (int)inst->run.sandbox->pid, "uid", (json_int_t)inst->uid,
                                   "restarts", (int)inst->run.restarts));
        if (s->o.output == SUPERVISOR_OUTPUT_LOGS)
                log_info("%s: started (pid %d)", m->id, (int)inst->run.sandbox->pid);
        lifecycle_started(inst);
        supervisor_ports_started(inst);
}

/* It runs, but we cannot serve it: take it down again. */
static void instance_abort(Instance *inst)
{
        instance_net_stopped(inst);
        appnet_stop(inst);
        sandboxed_abort(&inst->run);
        supervisor_ports_stopped(inst, "start failed");
        netproxy_free(inst->proxy);
        inst->proxy = NULL;
        broker_app_detach(inst->broker_app);
        inst->broker_app = NULL;
        pump_close(&inst->out);
        pump_close(&inst->err);
}

int instance_start(Instance *inst)
{
        Supervisor *s = inst->sup;
        InstanceStart c = {
                .pty = s->o.tty && s->o.output == SUPERVISOR_OUTPUT_TERMINAL,
                .chan = {-EBADF, -EBADF},
                .console = {-EBADF, -EBADF},
                .out = {-EBADF, -EBADF},
                .err = {-EBADF, -EBADF},
                .in_fd = -1,
                .data_fd = -EBADF,
                .app_fd = -EBADF,
                .prep = {.proxy_fds = {-EBADF, -EBADF}},
        };
        int r;

        r = instance_may_start(inst);
        if (r != 0)
                return r == 1 ? 0 : r;
        if (netgroups_refuse_packed(inst->sup, inst->manifest, &inst->error) < 0) {
                sandboxed_report_failed(&inst->run, &inst->error);
                instance_failed(inst);
                return -EOPNOTSUPP;
        }
        if (inst->group)
                return group_start_member(inst);
        inst->error = (SupervisorError){};
        inst->stop_requested = false;
        /* cellad: the version installed now (reload.c). */
        r = instance_reload(inst, &inst->error);
        if (r < 0) {
                sandboxed_report_failed(&inst->run, &inst->error);
                goto fail;
        }
        /* A signed app runs only what its key signed, at every start (a restart, an
         * app.launch), not only at its install. */
        r = instance_verify_again(inst, &inst->error);
        if (r < 0)
                goto fail;
        r = instance_prepare_mounts(inst, &c);
        if (r >= 0)
                r = instance_open_stdio(inst, &c);
        if (r >= 0)
                r = instance_prepare_stats(inst, &c);
        if (r >= 0)
                r = instance_prepare_proxy(inst, &c);
        if (r < 0) {
                (void)supervisor_error(
                        &inst->error,
                        c.state_failed ? SUPERVISOR_STEP_STATE : SUPERVISOR_STEP_INTERNAL, r, NULL);
                sandboxed_report_failed(&inst->run, &inst->error);
                goto fail;
        }
        r = instance_spawn(inst, &c);
        if (r < 0)
                goto fail;
        inst->uid = inst->run.uid = c.prep.uid;
        inst->state = INSTANCE_RUNNING;
        r = instance_serve(inst, &c);
        if (r < 0) {
                instance_abort(inst);
                goto fail;
        }
        inst->keeper_hold_due = true; /* no NOTE before the HOLD (adopt.c) */
        instance_started(inst);
        supervisor_keeper_hold(inst);
        instance_start_done(&c);
        return 0;
fail:
        instance_net_stopped(inst);
        appnet_stop(inst);
        pump_close(&inst->in);
        instance_start_done(&c);
        instance_failed(inst);
        return r;
}

/* Says how the run that just ended ended (x), and returns its status: its own, or
 * 128+N for signal N. */
static int say_exit(Instance *inst, const SandboxExit *x)
{
        const Manifest *m = inst->manifest;
        Supervisor *s = inst->sup;
        char limit[24] = "none";
        int code;

        if (m->limits.memory)
                format_size(m->limits.memory, limit, sizeof limit);
        if (x->code == CLD_EXITED && m->runtime == MANIFEST_RUNTIME_LUA) {
                code = x->status;
                instance_report_lua_exit(inst, code);
        } else if (x->code == CLD_EXITED) {
                code = x->status;
                if (code == 127)
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
                code = SUPERVISOR_SIGNAL_STATUS_BASE + x->status;
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
        return code;
}

/* Prints, records and returns the exit status of the run that just ended. */
static int report_exit(Instance *inst)
{
        const SandboxExit *x = &inst->run.last_exit;
        const Manifest *m = inst->manifest;
        Supervisor *s = inst->sup;
        double ms = (double)(now_monotonic_ns() - inst->started_ns) / 1e6;
        int code = say_exit(inst, x);
        json_t *rec;

        supervisor_status(
                s,
                json_pack("{s:s, s:s, s:I, s:s, s:i, s:i, s:b, s:I, s:i, s:f, s:I}", "event",
                          "exited", "app", m->id, "uid", (json_int_t)inst->uid, "how",
                          x->code == CLD_EXITED ? "exited" : "killed",
                          x->code == CLD_EXITED ? "status" : "signal", x->status, "exit_code", code,
                          "oom_killed", x->oom_killed, "oom_kills", (json_int_t)x->oom_kills, "pid",
                          (int)inst->run.sandbox->pid, "duration_ms", ms, "seccomp_denied",
                          (json_int_t)(inst->run.denials ? inst->run.denials->total : 0)));
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

/* The run ends when init has exited and both output pipes are drained. */
static void instance_maybe_finished(Instance *inst)
{
        Supervisor *s = inst->sup;

        if (s->freeing || inst->state != INSTANCE_RUNNING || !inst->run.sandbox ||
            !inst->run.sandbox->exited || inst->out.open || inst->err.open)
                return;
        appnet_stop(inst);
        (void)sandboxed_reap(&inst->run);
        /* The app has exited: its terminal may go now. */
        inst->pty_hold = safe_close(inst->pty_hold);
        inst->last_exit = inst->run.last_exit;
        inst->exit_code = report_exit(inst);
        /* Its last lines are written: the log's three fds (the logs folder, the
         * file, its time index) go until the next start opens them again
         * (instance_open_log), so that an installed app that does not run holds
         * no fd in cellad. `cella logs` reads the files by name. */
        inst->log = applog_close(inst->log);
        supervisor_keeper_drop(inst);
        supervisor_ports_stopped(inst, "app exited");
        netproxy_free(inst->proxy);
        inst->proxy = NULL;
        broker_app_detach(inst->broker_app);
        inst->broker_app = NULL;
        /* Never a wait: the veth's deletion goes to the threadpool. */
        instance_net_stopped(inst);
        sandboxed_release(&inst->run);
        pump_close(&inst->in);

        if (!s->o.boot || inst->stop_requested || s->stopping) {
                /* `cella ps` says "stopped" for an app cella stopped (cella stop,
                 * Ctrl-C, the end of a boot), "exited" for one that ended by itself. */
                inst->state =
                        inst->stop_requested || s->stopping ? INSTANCE_STOPPED : INSTANCE_EXITED;
                supervisor_changed(s);
                return;
        }
        switch (sandboxed_restart_decide(&inst->run, inst->manifest->restart)) {
        case RESTART_LATER:
                inst->state = INSTANCE_RESTARTING;
                break;
        case RESTART_GIVE_UP:
                inst->state = INSTANCE_FAILED;
                break;
        case RESTART_NO:
                /* A low-memory kill is no failure: the app is "stopped", as the
                 * kernel stopped it (docs/memory.md, "Kill"). */
                inst->state = inst->last_exit.low_memory ? INSTANCE_STOPPED : INSTANCE_EXITED;
                break;
        }
        supervisor_changed(s);
}

void instance_stop(Instance *inst, bool kill)
{
        inst->stop_requested = true;
        /* A frozen app cannot take SIGTERM (nor, on v1, SIGKILL): thawed first. */
        lifecycle_unfreeze(inst);
        switch (inst->state) {
        case INSTANCE_RESTARTING:
                if (inst->group) {
                        group_stop(inst->group, kill);
                        return;
                }
                sandboxed_cancel_restart(&inst->run);
                inst->state = INSTANCE_STOPPED;
                supervisor_changed(inst->sup);
                return;
        case INSTANCE_RUNNING:
                if (inst->group)
                        group_stop_member(inst, kill);
                else
                        sandboxed_stop(&inst->run, kill);
                return;
        default:
                return;
        }
}

static void run_exited(void *owner)
{
        Instance *inst = owner;

        /* Its init has exited: pasta goes now, not after the pipes drained. */
        if (inst->run.sandbox && inst->run.sandbox->exited)
                appnet_stop(inst);
        instance_maybe_finished(inst);
}

static int run_start(void *owner)
{
        return instance_start(owner);
}

static void run_audit(void *owner, const char *event, json_t *fields)
{
        Instance *inst = owner;

        supervisor_audit(inst->sup, inst->manifest->id, event, fields);
}

static void run_status(void *owner, json_t *fields)
{
        Instance *inst = owner;

        if (fields)
                json_object_set_new(fields, "app", json_string(inst->manifest->id));
        supervisor_status(inst->sup, fields);
}

static const SandboxedRunOps instance_run_ops = {
        .exited = run_exited,
        .start = run_start,
        .audit = run_audit,
        .status = run_status,
};

void instance_init_run(Instance *inst)
{
        sandboxed_init(&inst->run, inst->sup, inst->manifest->id, &instance_run_ops, inst);
}

bool instance_active(const Instance *inst)
{
        return inst->state == INSTANCE_RUNNING || inst->state == INSTANCE_RESTARTING ||
               inst->life.restart_asked;
}

json_t *instance_record(const Instance *inst)
{
        BrokerAppStats st = {};
        json_t *o;

        if (inst->broker_app)
                broker_app_stats(inst->broker_app, &st);
        const SandboxedRun *run = inst->group ? &inst->group->run : &inst->run;
        const Sandbox *sb = run->sandbox;

        o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:i, s:I, s:I, s:i}", "id",
                      inst->manifest->id, "kind", manifest_kind_to_string(inst->manifest->kind),
                      "state", instance_state_to_string(instance_state(inst)), "pid",
                      sb && inst->state == INSTANCE_RUNNING ? (int)sb->pid : 0, "uid",
                      (json_int_t)inst->uid, "started_ms",
                      (json_int_t)(inst->state == INSTANCE_RUNNING ? inst->started_ms : 0),
                      "restarts", (int)run->restarts, "calls", (json_int_t)st.calls, "refused",
                      (json_int_t)st.refused, "exit_code",
                      inst->state == INSTANCE_RUNNING ? 0 : inst->exit_code);
        if (o) /* the state's words changed (lifecycle.h): "running" as it was */
                json_object_set_new(o, "running", json_boolean(inst->state == INSTANCE_RUNNING));
        if (o && (st.net_connections || st.net_refused || st.net_limited)) /* docs/network.md */
                json_object_set_new(o, "net",
                                    json_pack("{s:I, s:I, s:I, s:I, s:I}", "connections",
                                              (json_int_t)st.net_connections, "refused",
                                              (json_int_t)st.net_refused, "limited",
                                              (json_int_t)st.net_limited, "bytes_out",
                                              (json_int_t)st.net_bytes_out, "bytes_in",
                                              (json_int_t)st.net_bytes_in));
        if (o && inst->group)
                json_object_set_new(o, "group", json_string(inst->group->name));
        if (o && inst->group && run->stats) {
                CLuaStatsApp a;

                /* A member's own heap: the host's cgroup holds the whole group. Only
                 * while it runs, from the record of the run it runs as (its slot
                 * holds its last run's until the host takes its next JOIN). */
                if (inst->state == INSTANCE_RUNNING &&
                    luastats_app(run->stats, inst->group_index, &a) >= 0 &&
                    a.run == inst->group_run)
                        json_object_set_new(o, "memory_bytes",
                                            json_integer((json_int_t)a.memory_bytes));
        } else if (o && sb && sb->cgroup) {
                CgroupStats cs = {};

                if (cgroup_stats(sb->cgroup, &cs) >= 0) {
                        json_object_set_new(o, "memory_bytes",
                                            json_integer((json_int_t)cs.memory_current));
                        /* cella top's CPU column: the difference between two samples. */
                        json_object_set_new(o, "cpu_usage_usec",
                                            json_integer((json_int_t)cs.cpu_usage_usec));
                }
        }
        return o;
}

int instance_exit_code(const Instance *inst)
{
        return inst->exit_code;
}

const SupervisorError *instance_error(const Instance *inst)
{
        return &inst->error;
}

const Manifest *instance_manifest(const Instance *inst)
{
        return inst->manifest;
}

void instance_free(Instance *inst)
{
        if (!inst)
                return;
        supervisor_ports_stopped(inst, "cella stopped");
        netproxy_free(inst->proxy);
        broker_app_detach(inst->broker_app);
        sandboxed_done(&inst->run);
        inst->in_outlet = outlet_free(inst->in_outlet);
        safe_close(inst->pty_hold);
        inst->log = applog_close(inst->log);
        manifest_free(inst->manifest);
        free(inst->app_dir);
        safe_close(inst->app_fd);
        free(inst->data_dir);
        strv_free(inst->extra_args);
        json_decref(inst->mem_last_kill);
        free(inst);
}
