/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cellad's life (daemon.h, docs/daemon.md): the state directory and its lock, the
 * cgroup leaf, the supervisor in daemon mode, the control socket, the hooks of the
 * other parts, the autostart, sd_notify, and the signals.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/statedir.h"
#include "base/strv.h"
#include "memory/cpu.h"
#include "base/time-util.h"
#include "cli/exit-codes.h"
#include "config.h"
#include "daemon/daemon-internal.h"
#include "daemon/pool.h"
#include "keeper/keeper.h"
#include "memory/budget.h"
#include "sandbox/sandbox.h"
#include "store/store.h"
#include "supervisor/memory-manager.h"
#include "supervisor/control.h"
#include "supervisor/run.h"

Supervisor *daemon_supervisor(Daemon *d)
{
        return d->sup;
}

Control *daemon_control(Daemon *d)
{
        return d->control;
}

const char *daemon_state_dir(const Daemon *d)
{
        return d->state_dir;
}

uv_loop_t *daemon_loop(Daemon *d)
{
        return supervisor_uv_loop(d->sup);
}

/* The pid written in the lock file by the cellad holding it, or 0 if none can be
 * read. */
static pid_t lock_holder(int fd)
{
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        long v;
        char *end;

        if (n <= 0)
                return 0;
        buf[n] = 0;
        errno = 0;
        v = strtol(buf, &end, 10);
        if (errno || end == buf || v <= 0 || v > INT32_MAX)
                return 0;
        return (pid_t)v;
}

/*
 * Takes <state>/cellad.lock (state_fd: the state directory): flock(LOCK_EX|LOCK_NB)
 * on it, then writes our pid into it ("<pid>\n"), which a refused cellad names. An
 * inherited lock (lock_fd >= 0, a re-exec) must be that same file, and is kept.
 * Returns the lock's fd, or -EWOULDBLOCK (another cellad holds it; said) or another
 * negative errno (said).
 */
static int daemon_lock(int state_fd, const char *state_dir, int lock_fd)
{
        _cleanup_close_ int fd = -EBADF;
        char buf[32];
        int n;

        fd = openat(state_fd, DAEMON_LOCK_FILE,
                    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
        if (fd < 0)
                return log_error_errno(negative_errno(), "cannot open %s/%s: %m", state_dir,
                                       DAEMON_LOCK_FILE);
        if (owned_check_fd(fd, state_dir) < 0)
                return -EPERM;
        if (lock_fd >= 0) {
                struct stat a, b;

                /* The same open file (a re-exec handed it over): its lock is ours. */
                if (fstat(fd, &a) < 0 || fstat(lock_fd, &b) < 0 || a.st_dev != b.st_dev ||
                    a.st_ino != b.st_ino) {
                        log_error("--lock-fd %d is not %s/%s", lock_fd, state_dir,
                                  DAEMON_LOCK_FILE);
                        return -EBADF;
                }
                safe_close(fd);
                fd = fcntl(lock_fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return log_error_errno(negative_errno(), "--lock-fd %d: %m", lock_fd);
                safe_close(lock_fd);
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int r = negative_errno();
                pid_t pid;

                if (r != -EWOULDBLOCK)
                        return log_error_errno(r, "cannot lock %s/%s: %m", state_dir,
                                               DAEMON_LOCK_FILE);
                pid = lock_holder(fd);
                if (pid > 0)
                        log_error("another cellad (pid %d) holds %s", (int)pid, state_dir);
                else
                        log_error("another cellad holds %s (its lock %s/%s)", state_dir, state_dir,
                                  DAEMON_LOCK_FILE);
                return -EWOULDBLOCK;
        }
        n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
        if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
                log_warning_errno(negative_errno(), "cannot write our pid into %s/%s: %m",
                                  state_dir, DAEMON_LOCK_FILE);
        return TAKE_FD(fd);
}

/*
 * The soft RLIMIT_NOFILE up to the hard limit (a thousand control clients and
 * hundreds of apps, each a few fds; systemd raises its services' hard limit to
 * 512Ki, the soft one stays 1024 for select(2)'s sake, which cellad does not use).
 * The supervisor raises both further as root (supervisor.c raise_nofile()).
 */
static void raise_nofile_soft(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_warning_errno(negative_errno(), "cannot raise RLIMIT_NOFILE to %llu: %m",
                                  (unsigned long long)rl.rlim_max);
}

/* ---- sd_notify, STATUS= and the watchdog ---- */

/* STATUS=, for systemctl status: "STATUS=3 app(s): 2 running, 1 exited" (the states
 * with no app left out), and when it went out (for the throttle). */
static void daemon_send_status(Daemon *d)
{
        size_t counts[16], n;
        char buf[512];
        size_t k = 0;
        bool first = true;

        n = supervisor_count_states(d->sup, counts, ELEMENTSOF(counts));
        k += (size_t)snprintf(buf, sizeof buf, "STATUS=%zu app(s)", n);
        for (size_t i = 0; i < ELEMENTSOF(counts) && k < sizeof buf; i++) {
                if (counts[i] == 0)
                        continue;
                k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%zu %s", first ? ": " : ", ",
                                      counts[i], supervisor_state_name((InstanceState)i));
                first = false;
        }
        /* The memory manager's triggers on the fallback window (docs/memory.md). */
        if (supervisor_memory_manager_degraded(d->sup) && k < sizeof buf)
                k += (size_t)snprintf(buf + k, sizeof buf - k,
                                      "; memory manager degraded (2 s PSI windows)");
        d->status_last_ms = now_monotonic_ms();
        (void)sd_notify(0, buf);
}

static void on_status_timer(uv_timer_t *t)
{
        Daemon *d = t->data;

        d->status_pending = false;
        daemon_send_status(d);
}

void daemon_status_changed(Daemon *d)
{
        uint64_t now, next;

        /* Not before the timer exists, nor once it is closed (supervisor_free()'s
         * last records). */
        if (!d->notify || !d->sup || d->status_pending || !(d->handles & DAEMON_HANDLE_STATUS))
                return;
        now = now_monotonic_ms();
        next = d->status_last_ms + DAEMON_STATUS_INTERVAL_MS;
        if (now >= next) {
                daemon_send_status(d);
                return;
        }
        d->status_pending = true;
        (void)uv_timer_start(&d->status_timer, on_status_timer, next - now, 0);
}

static void on_watchdog(uv_timer_t *t)
{
        (void)sd_notify(0, "WATCHDOG=1");
}

/* The supervisor's status records: journald, and STATUS=. */
static void on_status_record(const json_t *record, void *userdata)
{
        Daemon *d = userdata;

        if (d->journal)
                daemon_journal_record(record);
        daemon_status_changed(d);
}

/* ---- signals ---- */

static void on_stop_signal(uv_signal_t *h, int signum)
{
        Daemon *d = h->data;

        /* The supervisor's own handler stops the apps (supervisor_stop_all()). */
        if (!d->stop_told) {
                d->stop_told = true;
                (void)sd_notify(0, "STOPPING=1\nSTATUS=stopping every app");
        }
        daemon_pool_empty(d->pool);
}

/*
 * The file SIGHUP executes: the path this image was executed from, as
 * /proc/self/exe names it, so that a binary upgraded in place (a package manager
 * renames the new file over the old one) is the one that runs, not the old inode
 * that /proc/self/exe still opens. Only a file root alone could have put there
 * (owned by root or us, not writable by group or others, in a folder chain
 * dir_open_trusted() accepts): else NULL, and the re-exec runs /proc/self/exe, the
 * image already running. *ret_why says why not (a static string).
 */
static char *daemon_exe_path(const char **ret_why)
{
        _cleanup_free_ char *p = NULL;
        _cleanup_close_ int dfd = -EBADF;
        char buf[PATH_MAX], *slash;
        struct stat st;
        ssize_t n;

        *ret_why = NULL;
        n = readlink("/proc/self/exe", buf, sizeof buf - 1);
        if (n <= 0) {
                *ret_why = "/proc/self/exe cannot be read";
                return NULL;
        }
        buf[n] = 0;
        /* The old file was removed or renamed over: the path is the new one. */
        if (n > 10 && strcmp(buf + n - 10, " (deleted)") == 0)
                buf[n - 10] = 0;
        slash = strrchr(buf, '/');
        if (buf[0] != '/' || !slash) {
                *ret_why = "its path is not absolute";
                return NULL;
        }
        p = strndup(buf, slash == buf ? 1 : (size_t)(slash - buf));
        if (!p)
                return NULL;
        dfd = dir_open_trusted(p);
        if (dfd < 0 || fstatat(dfd, slash + 1, &st, 0) < 0 || !S_ISREG(st.st_mode) ||
            (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
                *ret_why = "it, or a folder above it, may be written by another user";
                return NULL;
        }
        return strdup(buf);
}

/* Appends opt and "a,b,c" of l to *argv (nothing for an empty l). 0 or -ENOMEM. */
static int extend_list(char ***argv, const char *opt, char **l)
{
        _cleanup_free_ char *joined = NULL;
        size_t n = 0;

        if (strv_length(l) == 0)
                return 0;
        STRV_FOREACH (e, l)
                n += strlen(*e) + 1;
        joined = calloc(1, n);
        if (!joined)
                return -ENOMEM;
        STRV_FOREACH (e, l) {
                if (*joined)
                        strcat(joined, ",");
                strcat(joined, *e);
        }
        if (strv_extend(argv, opt) < 0 || strv_extend(argv, joined) < 0)
                return -ENOMEM;
        return 0;
}

/*
 * SIGHUP: the cellad binary again, in place (same pid: systemd's MAINPID holds), the
 * apps left running: the new image adopts them (daemon_adopt()). What crosses the
 * exec: the lock (--lock-fd, its flock kept), a socket systemd passed (LISTEN_FDS,
 * LISTEN_PID: still our pid). The rest is CLOEXEC and is closed by the exec.
 */
static void daemon_reexec(Daemon *d)
{
        _cleanup_strv_free_ char **argv = NULL;
        char fdbuf[16], mode[16], warm[16];
        const char *exe = d->o.exe ?: d->exe_path ?: "/proc/self/exe";
        sigset_t block, saved;
        int fl, r;

        if (supervisor_stopping(d->sup)) {
                log_info("SIGHUP while stopping: ignored");
                return;
        }
        log_info("SIGHUP: re-executing %s in place (pid %d); the apps are not stopped", exe,
                 (int)getpid());
        {
                char buf[64];

                snprintf(buf, sizeof buf, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
                         now_monotonic_ms() * 1000);
                (void)sd_notify(0, buf);
        }
        snprintf(fdbuf, sizeof fdbuf, "%d", d->lock_fd);
        snprintf(warm, sizeof warm, "%u", d->o.warm);
        /* The warm sandboxes are this image's children: killed and reaped now,
         * the new image makes its own. */
        daemon_pool_empty(d->pool);
        /* So are the apps' pasta (net.internet): cut, the apps run on (appnet.h). */
        supervisor_drop_networks(d->sup);
        snprintf(mode, sizeof mode, "%s",
                 d->o.cgroup_mode == CGROUP_MODE_V1       ? "v1"
                 : d->o.cgroup_mode == CGROUP_MODE_V2     ? "v2"
                 : d->o.cgroup_mode == CGROUP_MODE_HYBRID ? "hybrid"
                                                          : "auto");
        if (strv_extend(&argv, d->o.argv && d->o.argv[0] ? d->o.argv[0] : "cellad") < 0 ||
            strv_extend(&argv, "--state-dir") < 0 || strv_extend(&argv, d->state_dir) < 0 ||
            (d->o.socket_path &&
             (strv_extend(&argv, "--socket") < 0 || strv_extend(&argv, d->o.socket_path) < 0)) ||
            strv_extend(&argv, "--cgroup-mode") < 0 || strv_extend(&argv, mode) < 0 ||
            (d->o.no_autostart && strv_extend(&argv, "--no-autostart") < 0) ||
            (d->o.no_cpu_weights && strv_extend(&argv, "--no-cpu-weights") < 0) ||
            (d->o.no_memory_manager && strv_extend(&argv, "--no-memory-manager") < 0) ||
            (log_verbose > 0 && strv_extend(&argv, "--verbose") < 0) ||
            strv_extend(&argv, "--lock-fd") < 0 || strv_extend(&argv, fdbuf) < 0 ||
            strv_extend(&argv, "--warm") < 0 || strv_extend(&argv, warm) < 0 ||
            extend_list(&argv, "--read-users", d->o.read_users) < 0 ||
            extend_list(&argv, "--read-groups", d->o.read_groups) < 0) {
                log_error("SIGHUP: cannot re-execute: out of memory");
                return;
        }
        fl = fcntl(d->lock_fd, F_GETFD);
        if (fl < 0 || fcntl(d->lock_fd, F_SETFD, fl & ~FD_CLOEXEC) < 0) {
                log_error_errno(negative_errno(), "SIGHUP: cannot hand the lock over: %m");
                return;
        }
        if (d->listen_fd >= 0) {
                char lbuf[16];

                snprintf(lbuf, sizeof lbuf, "%d", d->listen_fd);
                fl = fcntl(d->listen_fd, F_GETFD);
                if (fl < 0 || fcntl(d->listen_fd, F_SETFD, fl & ~FD_CLOEXEC) < 0 ||
                    strv_extend(&argv, "--listen-fd") < 0 || strv_extend(&argv, lbuf) < 0) {
                        log_error_errno(negative_errno() ?: -ENOMEM,
                                        "SIGHUP: cannot hand the socket over: %m");
                        (void)fcntl(d->lock_fd, F_SETFD, FD_CLOEXEC);
                        return;
                }
        }
        for (int i = 0; i < d->n_listen_fds; i++) {
                fl = fcntl(SD_LISTEN_FDS_START + i, F_GETFD);
                if (fl >= 0)
                        (void)fcntl(SD_LISTEN_FDS_START + i, F_SETFD, fl & ~FD_CLOEXEC);
        }
        daemon_runs_end(); /* client: run-methods.c, exec-methods.c */
        /* A SIGHUP, SIGTERM or SIGINT that comes while the new image starts, before
         * it handles them again, must wait for it, not take the default action
         * (the end of cellad, and under systemd of its apps): the mask crosses the
         * exec, and daemon_run() unblocks them once its handlers are in place. */
        sigemptyset(&block);
        sigaddset(&block, SIGHUP);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGINT);
        (void)sigprocmask(SIG_BLOCK, &block, &saved);
        execv(exe, argv);
        r = negative_errno();
        (void)sigprocmask(SIG_SETMASK, &saved, NULL);
        log_error_errno(r, "SIGHUP: cannot re-execute %s: %m; running on", exe);
        (void)fcntl(d->lock_fd, F_SETFD, FD_CLOEXEC);
        if (d->listen_fd >= 0)
                (void)fcntl(d->listen_fd, F_SETFD, FD_CLOEXEC);
        (void)sd_notify(0, "READY=1");
}

static void on_hup(uv_signal_t *h, int signum)
{
        daemon_reexec(h->data);
}

/* ---- start and stop ---- */

/* Writes "READY\n" to the --ready-fd and closes it; sd_notify READY=1 with the
 * first STATUS=. */
static void daemon_ready(Daemon *d)
{
        if (d->o.ready_fd >= 0) {
                static const char line[] = "READY\n";

                if (write(d->o.ready_fd, line, sizeof line - 1) != (ssize_t)(sizeof line - 1))
                        log_warning_errno(negative_errno(), "--ready-fd %d: %m", d->o.ready_fd);
                (void)close(d->o.ready_fd);
        }
        d->ready = true;
        if (d->notify) {
                /* systemd's fd store (systemd.c): our listening socket (a new cellad
                 * after a crash serves the clients waiting in its backlog), and a
                 * connection to the keeper of the apps' scope (it counts as a cellad
                 * connected while systemd holds it: the keeper's grace starts only
                 * when the unit stops for good and the store is emptied). */
                if (d->listen_fd >= 0)
                        daemon_fdstore_put(DAEMON_FDNAME_LISTEN, d->listen_fd);
                if (d->scope[0] && d->fdstore_keeper >= 0)
                        daemon_fdstore_replace(DAEMON_FDNAME_KEEPER, d->fdstore_keeper);
                daemon_send_status(d);
                (void)sd_notify(0, "READY=1");
        }
        d->fdstore_keeper = safe_close(d->fdstore_keeper);
        log_info("ready: %s on %s (pid %d)", d->state_dir, d->socket_path, (int)getpid());
}

/* The handles the daemon adds to the supervisor's loop. Returns 0 or a libuv error. */
static int daemon_handles(Daemon *d)
{
        uv_loop_t *loop = supervisor_uv_loop(d->sup);
        uint64_t usec = 0;
        int r;

        r = uv_timer_init(loop, &d->status_timer);
        if (r < 0)
                return r;
        d->status_timer.data = d;
        d->handles |= DAEMON_HANDLE_STATUS;
        r = uv_signal_init(loop, &d->hup);
        if (r < 0)
                return r;
        d->hup.data = d;
        d->handles |= DAEMON_HANDLE_HUP;
        r = uv_signal_start(&d->hup, on_hup, SIGHUP);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(d->stop); i++) {
                r = uv_signal_init(loop, &d->stop[i]);
                if (r < 0)
                        return r;
                d->stop[i].data = d;
                d->handles |= DAEMON_HANDLE_STOP;
                r = uv_signal_start(&d->stop[i], on_stop_signal, i == 0 ? SIGTERM : SIGINT);
                if (r < 0)
                        return r;
        }
        /* WatchdogSec= of the unit: WATCHDOG=1 twice per interval (sd_watchdog_enabled(3)
         * advises sending at half the interval). */
        if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
                r = uv_timer_init(loop, &d->watchdog);
                if (r < 0)
                        return r;
                d->handles |= DAEMON_HANDLE_WATCHDOG;
                r = uv_timer_start(&d->watchdog, on_watchdog, usec / 2000, usec / 2000);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void daemon_close_handles(Daemon *d)
{
        if (d->handles & DAEMON_HANDLE_STATUS)
                uv_close((uv_handle_t *)&d->status_timer, NULL);
        if (d->handles & DAEMON_HANDLE_HUP)
                uv_close((uv_handle_t *)&d->hup, NULL);
        if (d->handles & DAEMON_HANDLE_STOP)
                for (size_t i = 0; i < ELEMENTSOF(d->stop); i++)
                        if (d->stop[i].data)
                                uv_close((uv_handle_t *)&d->stop[i], NULL);
        if (d->handles & DAEMON_HANDLE_WATCHDOG)
                uv_close((uv_handle_t *)&d->watchdog, NULL);
        d->handles = 0;
}

/*
 * Under systemd, the apps' scope (systemd.c, docs/daemon.md "Under systemd"): the
 * keeper (the one an earlier cellad left, reached through the fd store or its
 * socket, or a new one) placed in the state directory's scope, and a cgroup manager
 * for the apps whose parent is that scope, into *cgm; cellad's own (self: its
 * supervisor/ leaf of cellad.service) goes to d->cgm_self. Elsewhere, or when any of
 * it fails (said), *cgm stays self: the apps in cellad's B/cella. Returns 0 or
 * -ENOMEM.
 */
static int daemon_scope_setup(Daemon *d, CgroupManager **cgm)
{
        _cleanup_free_ char *self_cg = NULL, *scope_cg = NULL;
        CgroupManager *apps = NULL;
        DaemonSystemdEnv e;
        const char *why = NULL;
        uint64_t t0;
        pid_t pid = 0;
        int r;

        daemon_systemd_env(*cgm, &e, &self_cg);
        if (daemon_scope_decide(&e, &why) <= 0) {
                if (e.booted > 0 && e.invocation_id)
                        log_warning("the apps stay in cellad's own cgroup: %s; a crash of "
                                    "cellad under KillMode=mixed ends them",
                                    why);
                else
                        log_debug("no scope for the apps: %s", why);
                return 0;
        }
        if (daemon_scope_name(d->tag, d->scope, sizeof d->scope) < 0) {
                log_warning("%s: its tag %s makes no scope name; the apps stay in cellad's "
                            "cgroup",
                            d->state_dir, d->tag);
                d->scope[0] = 0;
                return 0;
        }
        if (d->fdstore_keeper >= 0) {
                struct ucred cred;
                socklen_t len = sizeof cred;

                if (getsockopt(d->fdstore_keeper, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
                        pid = cred.pid;
        }
        if (pid <= 0) {
                /* The keeper listens in run/, which the supervisor makes later, the
                 * same way (control.c: root's, 0700). */
                if (mkdirat(d->state_fd, CONTROL_DIR, 0700) < 0 && errno != EEXIST) {
                        log_warning_errno(negative_errno(),
                                          "cannot make %s/%s: %m; the apps "
                                          "stay in cellad's cgroup",
                                          d->state_dir, CONTROL_DIR);
                        d->scope[0] = 0;
                        return 0;
                }
                /* Started (or found) now, before the supervisor connects, and held
                 * until it has: a new keeper with no client exits at once, which
                 * would leave the scope empty (systemd then removes it). */
                d->fdstore_keeper = safe_close(d->fdstore_keeper);
                r = keeper_ensure(keeper_path(), d->state_dir, daemon_keeper_grace(), &pid);
                if (r < 0) {
                        log_warning_errno(r, "cannot start the keeper: %m; the apps stay in "
                                             "cellad's cgroup");
                        d->scope[0] = 0;
                        return 0;
                }
                d->fdstore_keeper = r;
        }
        t0 = now_monotonic_ns();
        r = daemon_scope_place(d->scope, d->state_dir, pid, &scope_cg);
        if (r >= 0)
                r = daemon_scope_v1_dirs(scope_cg, &d->scope_v1_made);
        if (r >= 0) {
                r = cgroup_manager_new("/sys/fs/cgroup", cgroup_manager_mode(*cgm), scope_cg,
                                       &apps);
                if (r < 0)
                        log_error_errno(r, "cannot use the cgroups of %s: %m", d->scope);
        }
        if (r < 0) {
                log_warning("the apps stay in cellad's own cgroup (the reason is above); a crash "
                            "of cellad under KillMode=mixed ends them");
                d->scope[0] = 0;
                return r == -ENOMEM ? r : 0;
        }
        log_info("the apps and their keeper (pid %d) run in %s (%s), outside cellad's cgroup "
                 "%s (placed in %.1f ms)",
                 (int)pid, d->scope, scope_cg, self_cg, (double)(now_monotonic_ns() - t0) / 1e6);
        d->cgm_self = *cgm;
        *cgm = apps;
        return 0;
}

/* SupervisorOptions.keeper_cb: a keeper the supervisor connected to (the first, or one
 * that replaces a lost one) goes into the apps' scope, and systemd's fd store holds
 * a connection to it. */
static void on_keeper_connected(pid_t pid, void *userdata)
{
        Daemon *d = userdata;
        _cleanup_free_ char *cg = NULL, *path = NULL;
        _cleanup_close_ int fd = -EBADF;

        if (!d->scope[0])
                return;
        if (daemon_scope_place(d->scope, d->state_dir, pid, &cg) < 0) {
                log_warning("the keeper (pid %d) stays in cellad's cgroup: a crash of cellad "
                            "ends it and its apps",
                            (int)pid);
                return;
        }
        /* At start the connection daemon_scope_setup() made goes to the store once
         * ready (daemon_ready()); a later keeper's here. */
        if (!d->ready || !d->notify || asprintf(&path, "%s/%s", d->state_dir, KEEPER_SOCKET) < 0)
                return;
        fd = keeper_connect(path, NULL);
        if (fd >= 0)
                daemon_fdstore_replace(DAEMON_FDNAME_KEEPER, fd);
}

int daemon_run(const DaemonOptions *o)
{
        Daemon d = {.o = *o,
                    .lock_fd = -EBADF,
                    .state_fd = -EBADF,
                    .listen_fd = -EBADF,
                    .fdstore_listen = -EBADF,
                    .fdstore_keeper = -EBADF};
        SupervisorError err = {};
        SupervisorOptions so;
        CpuWeights cpu;
        CgroupManager *cgm = NULL;
        int r, code = DAEMON_EXIT_FAILURE;

        raise_nofile_soft();
        d.state_dir = o->state_dir;
        d.notify = getenv("NOTIFY_SOCKET") != NULL;
        d.journal = daemon_stderr_is_journal();
        /* Every message from here on, the first warnings included (a config read, an
         * oom_score_adj refused), goes to the journal with its fields. */
        if (d.journal)
                daemon_journal_install(&d);
        if (!o->exe) {
                const char *why = NULL;

                d.exe_path = daemon_exe_path(&why);
                if (!d.exe_path && why)
                        log_warning("SIGHUP will run this image again, not an upgraded one: "
                                    "its binary's path is refused (%s)",
                                    why);
        }
        d.state_fd = state_dir_open(o->state_dir, true);
        if (d.state_fd < 0)
                goto out;
        d.lock_fd = daemon_lock(d.state_fd, o->state_dir, o->lock_fd);
        if (d.lock_fd < 0) {
                if (d.lock_fd == -EWOULDBLOCK)
                        code = DAEMON_EXIT_LOCKED;
                goto out;
        }
        if (asprintf(&d.socket_path_buf, "%s/%s", o->state_dir, DAEMON_SOCKET_FILE) < 0) {
                log_error("out of memory");
                goto out;
        }
        d.socket_path = o->socket_path ?: d.socket_path_buf;
        /* What systemd passed: cellad.socket's sockets, the fd store's (systemd.c). */
        r = daemon_fds_take(&d);
        if (r < 0)
                goto out;
        /* cellad.conf (docs/config.md): a bad one is refused before anything starts. */
        {
                _cleanup_free_ char *conf = NULL, *why = NULL;

                r = manager_config_load(o->state_dir, NULL, &d.config, &conf, &why);
                if (r < 0) {
                        log_error("%s; cellad does not start on a bad config (docs/config.md)",
                                  why ?: strerror(-r));
                        goto out;
                }
                if (conf)
                        log_info("read %s", conf);
        }

        r = daemon_tag_get(d.state_fd, o->state_dir, d.tag, sizeof d.tag);
        if (r < 0)
                goto out;
        r = daemon_cgroup_setup("/sys/fs/cgroup", o->cgroup_mode, o->state_dir, d.tag, &cgm);
        if (r < 0)
                goto out;
        r = daemon_scope_setup(&d, &cgm);
        if (r < 0)
                goto out;
        /* memory.total on the apps' parent (src/memory/budget.h). */
        {
                const char *dir = NULL;

                r = memory_budget_apply(cgm, d.config.memory_total, &dir);
                if (r < 0 && d.config.memory_total) {
                        log_error_errno(r, "cannot apply memory.total to the apps' cgroup: %m");
                        goto out;
                }
                if (r < 0) /* lifting an earlier budget: said, not fatal */
                        log_warning_errno(r, "cannot lift the apps' memory limit: %m");
                if (d.config.memory_total)
                        log_info("memory.total: %" PRIu64 " bytes on %s", d.config.memory_total,
                                 dir);
        }
        /* Never the OOM killer's choice (proc(5), OOM_SCORE_ADJ_MIN), so that if it
         * fires despite the memory manager it agrees with cella: each app's sandbox
         * gets its band before the app runs (SandboxSpec.oom_score_adj), and so does
         * the warm pool's zygote's every sandbox (docs/memory.md, "Actions"). */
        r = sandbox_write_oom_score_adj(0, SANDBOX_OOM_SCORE_ADJ_MIN);
        if (r < 0)
                log_warning_errno(r, "cannot set cellad's oom_score_adj to -1000: %m");
        /* While cellad is small: the warm sandboxes are copies of it (pool.h). */
        daemon_pool_prefork(o->warm);

        /* The CPU weights by state (docs/memory.md "CPU"): the defaults, or none. */
        /* The CPU weights of cellad.conf's cpu.* keys; --no-cpu-weights wins. */
        cpu = d.config.cpu;
        if (o->no_cpu_weights)
                cpu.enabled = false;
        so = (SupervisorOptions){
                .state_dir = o->state_dir,
                .uid_base = o->uid_base,
                .uid_count = o->uid_count,
                .cgroup_mode = o->cgroup_mode,
                .output = SUPERVISOR_OUTPUT_LOGS,
                .json_status_fd = -1,
                .no_prompt = true, /* no terminal to ask on */
                .boot = true,
                .daemon = true,
                .cgm = d.cgm = TAKE_PTR(cgm),
                .status_cb = on_status_record,
                .status_userdata = &d,
                .keeper_cb = on_keeper_connected,
                .keeper_userdata = &d,
                .exit_code = daemon_exit_code,
                .cpu_weights = &cpu,
                .owner_tag = d.tag,
                .swap_caps = &d.config.swap,
                .memory_budget = d.config.memory_total,
                .net_group_range = d.config.net_group_range,
                .net_group_range_prefix = d.config.net_group_range_prefix,
                .net_group_prefix = d.config.net_group_prefix,
                /* cellad.conf net.proxy.port; 0 there is no proxy. */
                .net_proxy_port = d.config.net_proxy_port ? (int)d.config.net_proxy_port : -1,
                .net_conns_max = d.config.net.conns_max,
                .net_rate = d.config.net.rate,
                .net_burst = d.config.net.burst,
                .keystore_keys_max = d.config.keystore_keys_max,
                .ipc_objects_max = d.config.ipc.objects_max,
                .ipc_handles_max = d.config.ipc.handles_max,
                .ipc_shm_bytes_max = d.config.ipc.shm_bytes_max,
                .ipc_pending_max = d.config.ipc.pending_max,
                .ipc_queue_depth_max = d.config.ipc.queue_depth_max,
                .ipc_queued_bytes_max = d.config.ipc.queued_bytes_max,
        };
        r = supervisor_new(&so, &d.sup, &err);
        if (r < 0)
                goto out;
        /* supervisor_new() took the log for its own writer (logs of the apps); the
         * journal takes it back. */
        if (d.journal)
                daemon_journal_install(&d);
        r = supervisor_open(d.sup, &err);
        if (r < 0)
                goto out;
        r = daemon_handles(&d);
        if (r < 0) {
                log_error("cannot set up the event loop: %s", uv_strerror(r));
                goto out;
        }
        /* The memory manager (docs/memory.md "The manager"): the triggers armed on the
         * loop; one that cannot run is said, and cellad runs on without it. */
        if (!o->no_memory_manager) {
                r = supervisor_memory_manager_start(d.sup, &d.config);
                if (r == -ENOMEM) {
                        log_error("out of memory");
                        goto out;
                }
                if (r < 0)
                        log_warning("the memory manager does not run (see above): Linux's OOM "
                                    "killer alone acts when the apps' memory runs out");
        }
        {
                /* Handled from here on: what a re-exec blocked (daemon_reexec()) comes
                 * now, and is handled on the loop. */
                sigset_t ss;

                sigemptyset(&ss);
                sigaddset(&ss, SIGHUP);
                sigaddset(&ss, SIGTERM);
                sigaddset(&ss, SIGINT);
                (void)sigprocmask(SIG_UNBLOCK, &ss, NULL);
        }
        r = daemon_control_setup(&d);
        if (r < 0)
                goto out;

        /* The other parts, in the order daemon.h gives. */
        r = daemon_adopt(&d);
        if (r >= 0)
                r = daemon_store_methods(&d);
        if (r >= 0)
                r = daemon_app_methods(&d);
        if (r >= 0)
                r = daemon_run_methods(&d); /* client: run-methods.c */
        if (r >= 0)
                r = daemon_exec_methods(&d); /* client: exec-methods.c */
        if (r >= 0)
                r = daemon_memory_methods(&d); /* cella memory, cella top */
        if (r >= 0)
                r = daemon_port_methods(&d); /* cella port */
        if (r < 0) {
                log_error_errno(r, "cannot start: %m");
                goto out;
        }
        /* After the adoption, which takes over the leaves a previous cellad left: what
         * is left of processes that are gone is removed (cgroup.h, cgroup_sweep()). */
        r = cgroup_sweep(d.cgm);
        if (r > 0)
                log_info("removed %d cgroup(s) left by cella processes that are gone", r);
        else if (r < 0)
                log_warning_errno(r, "cannot sweep leftover cgroups: %m");
        if (!o->no_autostart)
                (void)daemon_autostart(&d);
        r = daemon_pool_start(&d, o->warm, &d.pool);
        if (r < 0)
                goto out;

        daemon_ready(&d);
        supervisor_loop(d.sup);
        code = 0;
        /* The counts as the apps ended (a throttled update may not have gone out). */
        if (d.notify)
                daemon_send_status(&d);
        log_info("every app has stopped; exiting");
out:
        if (d.sup) {
                daemon_pool_free(TAKE_PTR(d.pool));
                daemon_close_handles(&d);
                daemon_control_done(&d);
                /* Out of the cgroup leaf while the manager lives (freed with the
                 * supervisor): the leaves it made go if empty. */
                if (code == 0)
                        cgroup_manager_leave(d.cgm_self ?: d.cgm);
                d.sup = supervisor_free(d.sup);
        }
        d.store_cache = store_cache_free(d.store_cache);
        /* Where empty: apps that run on keep theirs. */
        daemon_scope_v1_dirs_remove(d.scope_v1_made);
        cgroup_manager_free(cgm);
        cgroup_manager_free(d.cgm_self);
        strv_free(d.scope_v1_made);
        safe_close(d.fdstore_listen);
        safe_close(d.fdstore_keeper);
        if (code != 0 && d.notify)
                (void)sd_notifyf(0, "STATUS=failed to start: %s\nERRNO=%d",
                                 log_last_error()[0] ? log_last_error() : "see the log",
                                 err.error > 0 ? err.error : EIO);
        if (d.o.ready_fd >= 0 && code != 0)
                (void)close(d.o.ready_fd);
        safe_close(d.lock_fd);
        safe_close(d.state_fd);
        free(d.socket_path_buf);
        free(d.exe_path);
        return code;
}

int daemon_exit_code(const SupervisorError *e)
{
        return cella_exit_code(e);
}
