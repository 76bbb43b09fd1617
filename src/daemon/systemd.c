/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cellad under systemd (docs/daemon.md, "Under systemd"): the apps and their keeper
 * in a transient scope of their own, outside cellad.service's cgroup, so that a
 * crash of cellad (KillMode=mixed SIGKILLs what is left in the service's cgroup)
 * does not take them with it; and systemd's file descriptor store (FDSTORE=1), which
 * keeps cellad's listening socket and a connection to the keeper across a restart.
 *
 * As podman does for conmon (a scope per container, made with StartTransientUnit
 * and PIDs= over sd-bus) and systemd-machined for a machine (a scope with
 * Delegate=yes): one scope per state directory, "cella-apps-<tag>.scope" in
 * cella.slice, Delegate=yes, its first process the keeper. Not one scope per app:
 * a scope must hold a process before it exists (systemd refuses an empty one),
 * while an app is cloned straight into its cgroup leaf (CLONE_INTO_CGROUP), which
 * must exist before the clone; and a bus round trip per start would cost more than
 * a whole start through the warm pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/time-util.h"
#include "daemon/daemon-internal.h"
#include "keeper/keeper.h"

static bool streq(const char *a, const char *b)
{
        return strcmp(a, b) == 0;
}

/* ---- the decision ---- */

int daemon_scope_decide(const DaemonSystemdEnv *e, const char **ret_why)
{
        const char *c = e->self_cgroup, *last;
        size_t n;

        *ret_why = NULL;
        if (e->booted <= 0) {
                *ret_why = "the host was not booted with systemd";
                return 0;
        }
        if (!e->invocation_id || !e->invocation_id[0]) {
                *ret_why = "cellad was not started by systemd as a unit ($INVOCATION_ID is unset)";
                return 0;
        }
        if (!c || c[0] != '/') {
                *ret_why = "cellad's cgroup2 path cannot be read";
                return 0;
        }
        /* cellad.service's cgroup, or its supervisor/ leaf (a re-exec, a restart). */
        n = strlen(c);
        if (n > sizeof "/" DAEMON_CGROUP_LEAF - 1 &&
            streq(c + n - (sizeof "/" DAEMON_CGROUP_LEAF - 1), "/" DAEMON_CGROUP_LEAF))
                n -= sizeof "/" DAEMON_CGROUP_LEAF - 1;
        last = c + n;
        while (last > c && last[-1] != '/')
                last--;
        if ((size_t)(c + n - last) <= sizeof ".service" - 1 ||
            strncmp(c + n - (sizeof ".service" - 1), ".service", sizeof ".service" - 1) != 0) {
                *ret_why = "cellad does not run in a service's cgroup";
                return 0;
        }
        if (e->mode != CGROUP_MODE_V2 && e->mode != CGROUP_MODE_HYBRID) {
                /* systemd tracks a unit's processes in the cgroup2 hierarchy on v2
                 * and hybrid hosts (in name=systemd on a v1-only one, which cella does
                 * not use): an app with no cgroup2 leaf of its own would stay in
                 * cellad.service's, and die with it. */
                *ret_why = "the apps have no cgroup2 leaf (cgroup mode v1), in which systemd "
                           "tracks a unit's processes";
                return 0;
        }
        return 1;
}

int daemon_scope_name(const char *tag, char *buf, size_t size)
{
        int n = snprintf(buf, size, "%s-%s.scope", DAEMON_SCOPE_PREFIX, tag);

        return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* pid's cgroup2 path ("0::" line of /proc/PID/cgroup), a new string; NULL if none
 * (no cgroup2, or the process is gone). */
static char *cgroup2_of(pid_t pid)
{
        _cleanup_(fclosep) FILE *f = NULL;
        char path[64], line[PATH_MAX + 8];

        snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return NULL;
        while (fgets(line, sizeof line, f)) {
                size_t n = strlen(line);

                if (strncmp(line, "0::", 3) != 0)
                        continue;
                if (n > 0 && line[n - 1] == '\n')
                        line[n - 1] = 0;
                return line[3] == '/' ? strdup(line + 3) : NULL;
        }
        return NULL;
}

void daemon_systemd_env(CgroupManager *m, DaemonSystemdEnv *e, char **ret_cgroup)
{
        *e = (DaemonSystemdEnv){
                .booted = sd_booted(),
                .invocation_id = getenv("INVOCATION_ID"),
                .mode = m ? cgroup_manager_mode(m) : CGROUP_MODE_V1,
        };
        *ret_cgroup = cgroup2_of(getpid());
        e->self_cgroup = *ret_cgroup;
}

/* ---- the bus ---- */

/*
 * A connection to systemd: its private socket when we are root (as systemctl does:
 * straight to pid 1, no D-Bus daemon needed, and it works while dbus.service is
 * down), else the system bus. Returns 0 and *ret, or a negative errno.
 */
static int bus_open(sd_bus **ret)
{
        sd_bus *b = NULL;
        int r;

        if (geteuid() == 0 && access("/run/systemd/private", F_OK) == 0) {
                r = sd_bus_new(&b);
                if (r >= 0)
                        r = sd_bus_set_address(b, "unix:path=/run/systemd/private");
                if (r >= 0)
                        r = sd_bus_start(b);
                if (r >= 0) {
                        *ret = b;
                        return 0;
                }
                sd_bus_unref(b);
        }
        return sd_bus_open_system(ret);
}

typedef struct JobWait {
        const char *path; /* the job's object path */
        char *result;     /* "done", "failed", ... once removed */
} JobWait;

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
        JobWait *w = userdata;
        const char *path = NULL, *unit = NULL, *result = NULL;
        uint32_t id;

        (void)err;
        if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0 || !w->path ||
            !streq(path, w->path))
                return 0;
        free(w->result);
        w->result = strdup(result);
        return 0;
}

/* Waits for the job w->path to be removed (JobRemoved), at most timeout_ms. Returns
 * 0 when it was "done", -EIO (another result), -ETIMEDOUT or a bus error. */
static int job_wait(sd_bus *bus, JobWait *w, uint64_t timeout_ms)
{
        uint64_t end = now_monotonic_ms() + timeout_ms;

        for (;;) {
                uint64_t now;
                int r;

                while ((r = sd_bus_process(bus, NULL)) > 0)
                        if (w->result)
                                break;
                if (r < 0)
                        return r;
                if (w->result)
                        return streq(w->result, "done") ? 0 : -EIO;
                now = now_monotonic_ms();
                if (now >= end)
                        return -ETIMEDOUT;
                r = sd_bus_wait(bus, (end - now) * 1000);
                if (r < 0)
                        return r;
        }
}

/* StartTransientUnit(scope) with pid as its first process, Delegate=yes, in
 * DAEMON_SLICE; waits for its job. Returns 0, -EEXIST (a unit of that name is
 * loaded), or a negative errno (err says what systemd said). */
static int scope_start(sd_bus *bus, const char *scope, const char *state_dir, pid_t pid,
                       sd_bus_error *err)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *desc = NULL;
        JobWait w = {};
        /* Declared after w, so freed before it: no callback sees w once it is gone. */
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        const char *job = NULL;
        int r;

        if (asprintf(&desc, "cella apps of %s (cellad)", state_dir) < 0)
                return -ENOMEM;
        r = sd_bus_match_signal(bus, &slot, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                "org.freedesktop.systemd1.Manager", "JobRemoved", on_job_removed,
                                &w);
        if (r < 0)
                return r;
        /* Signals go to every private connection; on the system bus only to subscribers. */
        (void)sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                 "org.freedesktop.systemd1.Manager", "Subscribe", NULL, NULL, "");
        r = sd_bus_message_new_method_call(
                bus, &m, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager", "StartTransientUnit");
        if (r < 0)
                return r;
        /* org.freedesktop.systemd1(5): name, mode, properties a(sv), aux a(sa(sv)).
         * TasksMax: the apps' tasks count against the scope; each app has its own
         * pids limit. CollectMode: a failed scope does not keep the name taken. */
        r = sd_bus_message_append(m, "ss", scope, "fail");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(sv)");
        if (r >= 0)
                r = sd_bus_message_append(m, "(sv)(sv)(sv)(sv)(sv)", "Description", "s", desc,
                                          "Slice", "s", DAEMON_SLICE, "Delegate", "b", 1,
                                          "TasksMax", "t", UINT64_MAX, "CollectMode", "s",
                                          "inactive-or-failed");
        if (r >= 0)
                r = sd_bus_message_append(m, "(sv)", "PIDs", "au", 1, (uint32_t)pid);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_append(m, "a(sa(sv))", 0);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, DAEMON_BUS_TIMEOUT_MS * 1000, err, &reply);
        if (r < 0)
                return sd_bus_error_has_name(err, "org.freedesktop.systemd1.UnitExists") ? -EEXIST
                                                                                         : r;
        r = sd_bus_message_read(reply, "o", &job);
        if (r < 0)
                return r;
        w.path = job;
        r = job_wait(bus, &w, DAEMON_BUS_TIMEOUT_MS);
        if (r == -EIO)
                sd_bus_error_setf(err, "org.cella.ScopeFailed", "its start job ended '%s'",
                                  w.result);
        free(w.result);
        return r;
}

/* AttachProcessesToUnit(scope, "/" DAEMON_SCOPE_KEEPER_LEAF, [pid]) (systemd 238):
 * pid into the scope's keeper leaf, made if missing, in every hierarchy. */
static int scope_attach(sd_bus *bus, const char *scope, pid_t pid, sd_bus_error *err)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(
                bus, &m, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager", "AttachProcessesToUnit");
        if (r >= 0)
                r = sd_bus_message_append(m, "ssau", scope, "/" DAEMON_SCOPE_KEEPER_LEAF, 1,
                                          (uint32_t)pid);
        if (r < 0)
                return r;
        return sd_bus_call(bus, m, DAEMON_BUS_TIMEOUT_MS * 1000, err, NULL);
}

/*
 * Makes the keeper leaf of the scope whose cgroup2 path is cg (its first process,
 * pid, is in it) in the cgroup2 hierarchy, where systemd tracks a unit's processes:
 * AttachProcessesToUnit() needs the subcgroup to exist there (systemd 252). In the
 * v1 hierarchies of a hybrid host systemd attaches to the nearest cgroup that
 * exists, the scope's own. Returns 0 or a negative errno.
 */
static int keeper_leaf_make(pid_t pid)
{
        _cleanup_free_ char *cg = cgroup2_of(pid), *dir = NULL;
        struct stat st;
        const char *mnt = stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0
                                  ? "/sys/fs/cgroup"
                                  : "/sys/fs/cgroup/unified";

        if (!cg)
                return -ESRCH;
        if (asprintf(&dir, "%s%s/%s", mnt, streq(cg, "/") ? "" : cg, DAEMON_SCOPE_KEEPER_LEAF) < 0)
                return -ENOMEM;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

/* "<...>/<scope>/keeper" -> "<...>/<scope>" in place when cg is in scope's keeper
 * leaf; returns true then. */
static bool in_scope_keeper(char *cg, const char *scope)
{
        size_t n = strlen(cg), k = strlen(scope), l = sizeof DAEMON_SCOPE_KEEPER_LEAF - 1;

        if (n < k + l + 3 || !streq(cg + n - l, DAEMON_SCOPE_KEEPER_LEAF) || cg[n - l - 1] != '/')
                return false;
        if (strncmp(cg + n - l - 1 - k, scope, k) != 0 || cg[n - l - 2 - k] != '/')
                return false;
        cg[n - l - 1] = 0;
        return true;
}

int daemon_scope_place(const char *scope, const char *state_dir, pid_t pid, char **ret_cgroup)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *cg = cgroup2_of(pid);
        int r;

        if (!cg)
                return log_error_errno(-ESRCH, "the keeper (pid %d) has no cgroup2 path", (int)pid);
        if (in_scope_keeper(cg, scope)) {
                /* A keeper an earlier cellad placed (a crash, a re-exec). */
                *ret_cgroup = TAKE_PTR(cg);
                return 0;
        }
        r = bus_open(&bus);
        if (r < 0)
                return log_error_errno(r, "cannot connect to systemd's bus: %m");
        /* The scope may run already (its apps, after a keeper was replaced): join it;
         * else start it, the keeper its first process. */
        r = scope_attach(bus, scope, pid, &err);
        if (r < 0) {
                sd_bus_error_free(&err);
                r = scope_start(bus, scope, state_dir, pid, &err);
                if (r == -EEXIST) {
                        /* Loaded but not running (stopping): once more. */
                        sd_bus_error_free(&err);
                        r = scope_start(bus, scope, state_dir, pid, &err);
                }
                if (r < 0)
                        return log_error_errno(r, "cannot start the scope %s: %s", scope,
                                               err.message ?: strerror(-r));
                r = keeper_leaf_make(pid);
                if (r < 0)
                        return log_error_errno(r, "cannot make the keeper's cgroup in %s: %m",
                                               scope);
                r = scope_attach(bus, scope, pid, &err);
        }
        if (r < 0)
                return log_error_errno(r, "cannot move the keeper (pid %d) into %s/%s: %s",
                                       (int)pid, scope, DAEMON_SCOPE_KEEPER_LEAF,
                                       err.message ?: strerror(-r));
        free(cg);
        cg = cgroup2_of(pid);
        if (!cg || !in_scope_keeper(cg, scope))
                return log_error_errno(-EIO, "the keeper (pid %d) is not in %s/%s after the move",
                                       (int)pid, scope, DAEMON_SCOPE_KEEPER_LEAF);
        *ret_cgroup = TAKE_PTR(cg);
        return 0;
}

int daemon_scope_v1_dirs(const char *scope_cg, char ***ret_made)
{
        static const char *const ctrls[] = {"memory", "pids", "cpu", "cpuacct"};
        _cleanup_strv_free_ char **made = NULL;

        for (size_t i = 0; i < ELEMENTSOF(ctrls); i++) {
                _cleanup_free_ char *mnt = NULL, *dir = NULL;
                struct stat st;

                if (asprintf(&mnt, "/sys/fs/cgroup/%s", ctrls[i]) < 0)
                        return -ENOMEM;
                /* Absent, or the cgroup2 mount of a pure v2 host (no v1 hierarchy). */
                if (stat(mnt, &st) < 0 || access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0)
                        continue;
                if (asprintf(&dir, "%s%s", mnt, scope_cg) < 0)
                        return -ENOMEM;
                if (stat(dir, &st) == 0)
                        continue;
                /* Each missing folder from the top, remembered for the removal. */
                for (char *p = dir + strlen(mnt) + 1;; p++) {
                        char c = *p;

                        if (c != '/' && c != 0)
                                continue;
                        *p = 0;
                        if (mkdir(dir, 0755) == 0) {
                                if (strv_extend(&made, dir) < 0)
                                        return -ENOMEM;
                        } else if (errno != EEXIST) {
                                int r = negative_errno();

                                *p = c;
                                log_warning_errno(r, "cannot make %s: %m", dir);
                                *ret_made = TAKE_PTR(made);
                                return r;
                        }
                        *p = c;
                        if (c == 0)
                                break;
                }
        }
        *ret_made = TAKE_PTR(made);
        return 0;
}

void daemon_scope_v1_dirs_remove(char **made)
{
        size_t n = strv_length(made);

        /* Deepest first; each only if empty (apps that run on keep theirs). */
        while (n > 0) {
                _cleanup_free_ char *apps = NULL;

                n--;
                if (asprintf(&apps, "%s/cella", made[n]) >= 0)
                        (void)rmdir(apps);
                (void)rmdir(made[n]);
        }
}

/* ---- the file descriptor store ---- */

DaemonFdKind daemon_fdname_kind(const char *name)
{
        /* "stored": systemd's name for a stored fd sent without FDNAME= (never by
         * cellad); a store entry all the same, not a socket unit's. */
        if (name && streq(name, "stored"))
                return DAEMON_FD_UNKNOWN;
        if (!name || strncmp(name, DAEMON_FDNAME_PREFIX, sizeof DAEMON_FDNAME_PREFIX - 1) != 0)
                return DAEMON_FD_SOCKET;
        if (streq(name, DAEMON_FDNAME_LISTEN))
                return DAEMON_FD_LISTEN;
        if (streq(name, DAEMON_FDNAME_KEEPER))
                return DAEMON_FD_KEEPER;
        return DAEMON_FD_UNKNOWN;
}

/* What may follow the path in a listening socket's name: nothing, or ".<digits>.tmp". */
static bool bound_name_ok(const char *rest)
{
        size_t k;

        if (!rest[0])
                return true;
        if (rest[0] != '.')
                return false;
        k = strspn(rest + 1, "0123456789");
        return k > 0 && streq(rest + 1 + k, ".tmp");
}

int daemon_fdstore_check_listen(int fd, const char *path, const char **ret_why)
{
        struct sockaddr_un sa = {};
        socklen_t len = sizeof sa;
        size_t n = strlen(path);
        struct stat st;

        *ret_why = NULL;
        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
                *ret_why = "not a listening Unix stream socket";
                return -EINVAL;
        }
        /* Bound for path, or under the temporary "<path>.<pid>.tmp" daemon_bind()
         * renames into place. */
        if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
            len <= offsetof(struct sockaddr_un, sun_path) + n ||
            strnlen(sa.sun_path, sizeof sa.sun_path) == sizeof sa.sun_path ||
            strncmp(sa.sun_path, path, n) != 0 || !bound_name_ok(sa.sun_path + n)) {
                *ret_why = "bound for another path";
                return -EINVAL;
        }
        /* Still reachable: the file is there, a socket of root's (an earlier cellad
         * that stopped removed it; then we bind a new one). */
        if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != 0) {
                *ret_why = "its file is gone or replaced";
                return -ESTALE;
        }
        return 0;
}

int daemon_fdstore_check_keeper(int fd, const char *path, const char **ret_why)
{
        struct sockaddr_un sa = {};
        socklen_t len = sizeof sa;
        struct ucred cred;
        socklen_t clen = sizeof cred;
        struct pollfd p = {.fd = fd, .events = POLLIN};

        *ret_why = NULL;
        if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 0, NULL, 0) <= 0) {
                *ret_why = "not a connected Unix seqpacket socket";
                return -EINVAL;
        }
        /* A client's peer name is the address its listener was bound to. */
        if (getpeername(fd, (struct sockaddr *)&sa, &len) < 0 ||
            len <= offsetof(struct sockaddr_un, sun_path) ||
            strnlen(sa.sun_path, sizeof sa.sun_path) == sizeof sa.sun_path ||
            !streq(sa.sun_path, path)) {
                *ret_why = "not connected to the keeper's socket";
                return -EINVAL;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
            (cred.uid != 0 && cred.uid != geteuid())) {
                *ret_why = "its peer is not root's";
                return -EPERM;
        }
        /* The keeper never writes unasked: anything readable is its end (or a
         * reply nobody read, which the next request must not take for its own). */
        if (poll(&p, 1, 0) != 0 || (p.revents & (POLLHUP | POLLERR))) {
                *ret_why = "the keeper it reached is gone";
                return -ESTALE;
        }
        return 0;
}

/* Drops every entry named name from the store (FDSTOREREMOVE, systemd 236). */
static void fdstore_remove(const char *name)
{
        char buf[128];

        snprintf(buf, sizeof buf, "FDSTOREREMOVE=1\nFDNAME=%s", name);
        (void)sd_notify(0, buf);
}

void daemon_fdstore_put(const char *name, int fd)
{
        char buf[128];
        int r;

        if (fd < 0)
                return;
        snprintf(buf, sizeof buf, "FDSTORE=1\nFDNAME=%s", name);
        r = sd_pid_notify_with_fds(0, 0, buf, &fd, 1);
        if (r < 0)
                log_warning_errno(r, "cannot hand %s to systemd's fd store: %m", name);
        else
                log_debug("fd store: %s handed to systemd", name);
}

void daemon_fdstore_replace(const char *name, int fd)
{
        fdstore_remove(name);
        daemon_fdstore_put(name, fd);
}

int daemon_fds_take(Daemon *d)
{
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ char *keeper_path = NULL, *joined = NULL;
        int n, moved[64], k = 0;
        bool drop[64] = {};

        n = sd_listen_fds_with_names(0, &names);
        if (n < 0)
                return log_error_errno(n, "cannot read the fds systemd passed: %m");
        if (n == 0)
                return 0;
        if ((size_t)n > ELEMENTSOF(moved))
                return log_error_errno(-E2BIG, "systemd passed %d fds, more than %zu", n,
                                       ELEMENTSOF(moved));
        if (asprintf(&keeper_path, "%s/%s", d->state_dir, KEEPER_SOCKET) < 0)
                return log_error_errno(-ENOMEM, "%m");
        /* The store's first, out of the way of the sockets', which are then made
         * 3, 4, ... again (for a re-exec, which passes LISTEN_FDS on). */
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names && names[i] ? names[i] : "";
                DaemonFdKind kind = daemon_fdname_kind(name);
                const char *why = NULL;

                moved[i] = -EBADF;
                if (kind == DAEMON_FD_SOCKET)
                        continue;
                moved[i] = fcntl(fd, F_DUPFD_CLOEXEC, SD_LISTEN_FDS_START + n);
                (void)close(fd);
                if (moved[i] < 0)
                        return log_error_errno(negative_errno(), "fd %d (%s): %m", fd, name);
                switch (kind) {
                case DAEMON_FD_LISTEN:
                        if (d->o.listen_fd >= 0 || d->fdstore_listen >= 0)
                                why = "one is held already";
                        else if (daemon_fdstore_check_listen(moved[i], d->socket_path, &why) >= 0) {
                                d->fdstore_listen = moved[i];
                                moved[i] = -EBADF;
                        }
                        break;
                case DAEMON_FD_KEEPER:
                        if (d->fdstore_keeper >= 0)
                                why = "one is held already";
                        else if (daemon_fdstore_check_keeper(moved[i], keeper_path, &why) >= 0) {
                                d->fdstore_keeper = moved[i];
                                moved[i] = -EBADF;
                        }
                        break;
                default:
                        why = "not a name this cellad stores";
                        break;
                }
                if (moved[i] >= 0) {
                        /* Input, from an earlier cellad (or another version): never
                         * used unchecked; dropped from the store too. */
                        log_warning("fd %d from systemd's fd store (%s) not used: %s", fd, name,
                                    why);
                        moved[i] = safe_close(moved[i]);
                        drop[i] = true;
                }
        }
        for (int i = 0; i < n; i++)
                if (drop[i] && names && names[i])
                        fdstore_remove(names[i]);
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i, to = SD_LISTEN_FDS_START + k;
                const char *name = names && names[i] ? names[i] : "";

                if (daemon_fdname_kind(name) != DAEMON_FD_SOCKET)
                        continue;
                if (fd != to) {
                        if (dup2(fd, to) < 0)
                                return log_error_errno(negative_errno(), "fd %d: %m", fd);
                        (void)close(fd);
                }
                {
                        size_t l = joined ? strlen(joined) : 0;
                        char *j = realloc(joined, l + strlen(name) + 2);

                        if (!j)
                                return log_error_errno(-ENOMEM, "%m");
                        joined = j;
                        sprintf(joined + l, "%s%s", k > 0 ? ":" : "", name);
                }
                k++;
        }
        /* What a re-exec hands on: the sockets alone. */
        if (k == 0) {
                unsetenv("LISTEN_FDS");
                unsetenv("LISTEN_PID");
                unsetenv("LISTEN_FDNAMES");
        } else {
                char buf[16];

                snprintf(buf, sizeof buf, "%d", k);
                setenv("LISTEN_FDS", buf, 1);
                setenv("LISTEN_FDNAMES", joined ?: "", 1);
        }
        d->n_listen_fds = k;
        return k;
}
