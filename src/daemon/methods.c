/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's control socket and its own methods (docs/api.md): org.cella.Ping,
 * org.cella.Version, org.cella.Shutdown. The socket is <state>/cellad.sock (or
 * --socket), or the one systemd passed (cellad.socket, sd_listen_fds(3)).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "base/log.h"
#include "base/statedir.h"
#include "base/macro.h"
#include "base/strv.h"
#include "config.h"
#include "daemon/daemon-internal.h"

/* The control API's version this daemon speaks (docs/api.md). */
#define DAEMON_API_VERSION 2

static int method_ping(ControlCall *call, json_t *params, void *userdata)
{
        (void)params;
        (void)userdata;
        return control_reply(call, json_pack("{s:i}", "pid", (int)getpid()));
}

static int method_version(ControlCall *call, json_t *params, void *userdata)
{
        Daemon *d = userdata;

        (void)params;
        return control_reply(call, json_pack("{s:s, s:i, s:s, s:i}", "version", CELLA_VERSION,
                                             "api", DAEMON_API_VERSION, "state_dir", d->state_dir,
                                             "pid", (int)getpid()));
}

static void on_shutdown_timer(uv_timer_t *t)
{
        Daemon *d = t->data;

        log_info("org.cella.Shutdown: stopping every app");
        if (d->notify && !d->stop_told) {
                d->stop_told = true;
                (void)sd_notify(0, "STOPPING=1\nSTATUS=stopping every app");
        }
        supervisor_stop_all(d->sup, false);
}

/* The stop begins on the loop's next turn, after the reply is on its way: with no
 * app running, the loop ends as soon as the stop does. */
static int method_shutdown(ControlCall *call, json_t *params, void *userdata)
{
        Daemon *d = userdata;
        int r;

        (void)params;
        r = control_reply(call, NULL);
        if (r < 0)
                return r;
        if (!(d->handles & DAEMON_HANDLE_SHUTDOWN)) {
                r = uv_timer_init(supervisor_uv_loop(d->sup), &d->shutdown);
                if (r < 0)
                        return 0;
                d->shutdown.data = d;
                d->handles |= DAEMON_HANDLE_SHUTDOWN;
                (void)uv_timer_start(&d->shutdown, on_shutdown_timer, 0, 0);
        }
        return 0;
}

static const ControlMethod daemon_methods[] = {
        {"org.cella.Ping", CONTROL_ACCESS_ANYONE, method_ping},
        {"org.cella.Version", CONTROL_ACCESS_READ, method_version},
        {"org.cella.Shutdown", CONTROL_ACCESS_ROOT, method_shutdown},
};

/* The sockets systemd passed (cellad.socket): each must be a listening stream socket
 * of family AF_UNIX (sd_is_socket(3)). Returns their number (>= 0), or a negative
 * errno after printing. */
static int daemon_listen_fds(Daemon *d)
{
        int n = sd_listen_fds(0);

        if (n < 0)
                return log_error_errno(n, "cannot read the sockets systemd passed: %m");
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;

                if (sd_is_socket(fd, AF_UNIX, SOCK_STREAM, 1) <= 0) {
                        log_error("fd %d passed by systemd (LISTEN_FDS) is not a listening "
                                  "Unix stream socket: cellad.socket must say ListenStream=",
                                  fd);
                        return -EINVAL;
                }
        }
        return n;
}

/* A user (group: want_group) named by name or number: its id in *ret. Returns 0, or
 * -ENOENT after saying which (opt: the option that named it). */
static int resolve_id(const char *opt, const char *name, bool want_group, unsigned *ret)
{
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(name, &end, 10);
        if (!errno && end != name && !*end && v < UINT32_MAX) {
                *ret = (unsigned)v;
                return 0;
        }
        if (want_group) {
                struct group *g = getgrnam(name);

                if (g) {
                        *ret = g->gr_gid;
                        return 0;
                }
        } else {
                struct passwd *p = getpwnam(name);

                if (p) {
                        *ret = p->pw_uid;
                        return 0;
                }
        }
        log_error("%s: no such %s: '%s'", opt, want_group ? "group" : "user", name);
        return -ENOENT;
}

/* --read-users, --read-groups: control_set_readers(). Returns 0 or a negative errno
 * (printed). */
static int daemon_readers(Daemon *d)
{
        size_t nu = strv_length(d->o.read_users), ng = strv_length(d->o.read_groups);
        _cleanup_free_ uid_t *uids = calloc(nu ?: 1, sizeof *uids);
        _cleanup_free_ gid_t *gids = calloc(ng ?: 1, sizeof *gids);
        unsigned id;
        int r;

        if (!uids || !gids)
                return log_error_errno(-ENOMEM, "cannot set the readers: %m");
        for (size_t i = 0; i < nu; i++) {
                r = resolve_id("--read-users", d->o.read_users[i], false, &id);
                if (r < 0)
                        return r;
                uids[i] = (uid_t)id;
        }
        for (size_t i = 0; i < ng; i++) {
                r = resolve_id("--read-groups", d->o.read_groups[i], true, &id);
                if (r < 0)
                        return r;
                gids[i] = (gid_t)id;
        }
        r = control_set_readers(d->control, uids, nu, gids, ng);
        if (r < 0)
                return log_error_errno(r, "cannot set the readers: %m");
        return 0;
}

/*
 * The public socket at path, bound by the daemon itself so that it can hand it over a
 * re-exec (--listen-fd): bound under "<path>.<pid>.tmp", made 0666, listening, then
 * renamed over path (a stale socket of a dead daemon goes: we hold the lock).
 *
 * path's directory must be one only root can change (dir_open_trusted(): it and
 * every directory above it writable by root alone, or sticky as /tmp), and the
 * chmod and rename go through its fd, the chmod never through a symlink (a file
 * swapped in between bind() and chmod() could otherwise be any file of the host
 * made 0666). Returns the
 * listening fd (O_CLOEXEC) or a negative errno (printed).
 */
static int daemon_bind(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_free_ char *tmp = NULL, *dir = NULL;
        _cleanup_close_ int fd = -EBADF, dfd = -EBADF;
        const char *base = strrchr(path, '/');
        int n, r;

        if (!base || !base[1])
                return log_error_errno(-EINVAL, "cannot listen on %s: not a file's path", path);
        dir = base == path ? strdup("/") : strndup(path, (size_t)(base - path));
        base++;
        if (!dir || asprintf(&tmp, "%s.%d.tmp", base, (int)getpid()) < 0)
                return log_error_errno(-ENOMEM, "cannot listen on %s: %m", path);
        if (strlen(path) + strlen(tmp) - strlen(base) >= sizeof sa.sun_path)
                return log_error_errno(-ENAMETOOLONG,
                                       "cannot listen on %s: %m (a socket's path has at most "
                                       "%zu bytes; pass a shorter --socket)",
                                       path, sizeof sa.sun_path - 1 - (strlen(tmp) - strlen(base)));
        dfd = dir_open_trusted(dir);
        if (dfd < 0)
                return log_error_errno(dfd,
                                       "cannot listen on %s: %m (its directory %s must be "
                                       "writable by root alone, or sticky as /tmp)",
                                       path, dir);
        /* By its path, which only root can change (checked above): the socket's
         * name (getsockname(), ss -x) is the path, which a re-exec checks. */
        n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s.%d.tmp", path, (int)getpid());
        if (n < 0 || (size_t)n >= sizeof sa.sun_path)
                return log_error_errno(-ENAMETOOLONG, "cannot listen on %s: %m", path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(negative_errno(), "cannot listen on %s: %m", path);
        (void)unlinkat(dfd, tmp, 0);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                return log_error_errno(negative_errno(), "cannot listen on %s: %m", path);
        /* 0666: anyone may connect; what each may call is checked per method. */
        if (fchmodat(dfd, tmp, 0666, AT_SYMLINK_NOFOLLOW) < 0 || listen(fd, SOMAXCONN) < 0 ||
            renameat(dfd, tmp, dfd, base) < 0) {
                r = negative_errno();
                (void)unlinkat(dfd, tmp, 0);
                return log_error_errno(r, "cannot listen on %s: %m", path);
        }
        return TAKE_FD(fd);
}

/* --listen-fd (a re-exec's hand-over): fd must be a listening Unix stream socket that
 * daemon_bind() bound for path (its name is the temporary one it was bound under,
 * "<path>.<pid>.tmp", or path). Returns 0 or -EINVAL (printed). */
static int daemon_check_inherited(int fd, const char *path)
{
        struct sockaddr_un sa = {};
        socklen_t len = sizeof sa;
        size_t n = strlen(path);

        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
            len <= offsetof(struct sockaddr_un, sun_path) + n ||
            strncmp(sa.sun_path, path, n) != 0 || (sa.sun_path[n] != 0 && sa.sun_path[n] != '.')) {
                log_error("--listen-fd %d is not a listening socket bound for %s", fd, path);
                return -EINVAL;
        }
        return 0;
}

int daemon_control_setup(Daemon *d)
{
        int n, r;

        d->control = supervisor_control(d->sup);
        if (!d->control) {
                log_error("cannot serve the control API: the kernel's control socket did not "
                          "open (the reason is above)");
                return -EIO;
        }
        r = daemon_readers(d);
        if (r < 0)
                return r;
        n = daemon_listen_fds(d);
        if (n < 0)
                return n;
        d->n_listen_fds = n;
        for (int i = 0; i < n; i++) {
                r = control_listen_fd(d->control, SD_LISTEN_FDS_START + i);
                if (r < 0)
                        return log_error_errno(r,
                                               "cannot serve on the socket systemd passed "
                                               "(fd %d): %m",
                                               SD_LISTEN_FDS_START + i);
        }
        if (n > 0) {
                d->socket_path = "the socket systemd passed";
                /* The environment stays for a re-exec (same pid, same fds). */
        } else {
                /* Or the one systemd's fd store kept (systemd.c, checked). */
                int fd = d->o.listen_fd >= 0 ? d->o.listen_fd : TAKE_FD(d->fdstore_listen);

                /* Our own socket, kept over a re-exec (--listen-fd): a client that
                 * connects meanwhile waits in its backlog instead of being refused. */
                if (fd >= 0 && daemon_check_inherited(fd, d->socket_path) < 0)
                        return -EINVAL;
                if (fd < 0)
                        fd = daemon_bind(d->socket_path);
                if (fd < 0)
                        return fd;
                d->listen_fd = fd;
                r = control_listen_fd(d->control, fd);
                if (r < 0) {
                        d->listen_fd = -EBADF; /* closed by control_listen_fd() */
                        (void)unlink(d->socket_path);
                        return log_error_errno(r, "cannot listen on %s: %m", d->socket_path);
                }
        }
        r = control_add_methods(d->control, daemon_methods, ELEMENTSOF(daemon_methods), d);
        if (r < 0)
                return log_error_errno(r, "cannot add the daemon's methods: %m");
        return 0;
}

void daemon_control_done(Daemon *d)
{
        if (d->handles & DAEMON_HANDLE_SHUTDOWN) {
                uv_close((uv_handle_t *)&d->shutdown, NULL);
                d->handles &= ~(unsigned)DAEMON_HANDLE_SHUTDOWN;
        }
        /* Our socket's file goes when cellad ends (a re-exec does not come here: the
         * socket lives on in the new image); the fd is the Control's, closed with it. */
        if (d->listen_fd >= 0)
                (void)unlink(d->socket_path);
        d->listen_fd = -EBADF;
        d->control = NULL;
}
