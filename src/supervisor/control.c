/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control socket: newline-delimited JSON over a Unix stream socket per kernel
 * process (control.h). Both halves live here: the kernel's listener on its libuv
 * loop, and the CLI's client that visits every kernel of a state directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/statedir.h"
#include "base/time-util.h"
#include "policy/manifest.h"
#include "supervisor/control.h"

#define CONTROL_ACCEPTS_PER_WAKE 16u /* accept() calls per readiness of the listener */
#define CONTROL_READS_PER_WAKE   4u  /* read() calls per readiness of a client */
#define CONTROL_BACKLOG          16

typedef struct Conn Conn;

struct Conn {
        Control *control;
        Conn *prev, *next;
        uv_poll_t poll;
        int fd;
        char *in; /* CONTROL_LINE_MAX bytes */
        size_t in_len;
        char *out; /* the reply being sent */
        size_t out_len, out_off;
        uint64_t last_ms; /* last progress either way, CLOCK_MONOTONIC */
        bool eof;         /* the client shut down its side: close once replies are out */
        bool drop;        /* close once the queued error is out */
        bool closing;
};

struct Control {
        uv_loop_t *loop;
        ControlHandlers h;
        int fd;
        int dirfd;
        uv_poll_t poll;
        uv_timer_t timer;
        char *path;
        char name[32]; /* "<pid>.sock" */
        Conn *conns;
        unsigned n_conns;
        unsigned open_handles; /* handles whose close callback has not run */
        bool closing;
};

/* --- the request parser (pure) --- */

int control_request_parse(const char *line, size_t len, ControlRequest *ret, const char **ret_error)
{
        ControlRequest req = {};
        json_t *root, *op, *app;
        json_error_t jerr;
        const char *s, *error = NULL;

        if (len >= CONTROL_LINE_MAX) {
                *ret_error = "request longer than the line limit";
                return -E2BIG;
        }
        root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                *ret_error = "not JSON";
                return -EINVAL;
        }
        if (!json_is_object(root)) {
                error = "not a JSON object";
                goto fail;
        }
        op = json_object_get(root, "op");
        if (!json_is_string(op)) {
                error = "\"op\" is missing or not a string";
                goto fail;
        }
        s = json_string_value(op);
        if (strcmp(s, "ps") == 0)
                req.op = CONTROL_OP_PS;
        else if (strcmp(s, "grants-changed") == 0)
                req.op = CONTROL_OP_GRANTS_CHANGED;
        else if (strcmp(s, "stop") == 0)
                req.op = CONTROL_OP_STOP;
        else if (strcmp(s, "stats") == 0)
                req.op = CONTROL_OP_STATS;
        else {
                error = "unknown \"op\" (ps, grants-changed, stop, stats)";
                goto fail;
        }

        app = json_object_get(root, "app");
        if (req.op != CONTROL_OP_PS && app && !json_is_null(app)) {
                /* json_string_length, not strlen: an id with a NUL inside is not one */
                if (!json_is_string(app) || json_string_length(app) > MANIFEST_ID_MAX ||
                    strlen(json_string_value(app)) != json_string_length(app) ||
                    !manifest_id_is_valid(json_string_value(app))) {
                        error = "\"app\" is not an app id";
                        goto fail;
                }
                memcpy(req.app, json_string_value(app), json_string_length(app) + 1);
                req.has_app = true;
        }
        if (req.op == CONTROL_OP_STOP && !req.has_app) {
                error = "\"stop\" needs \"app\"";
                goto fail;
        }
        json_decref(root);
        *ret = req;
        return 0;
fail:
        json_decref(root);
        *ret_error = error;
        return -EINVAL;
}

/* --- paths --- */

/*
 * Fills sa with dir/name, or with /proc/self/fd/<dirfd>/name when that is too long
 * for sun_path (108 bytes): the kernel resolves the magic link like any directory.
 */
static int sockaddr_at(int dirfd, const char *dir, const char *name, struct sockaddr_un *sa,
                       socklen_t *ret_len)
{
        int n;

        *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
        n = snprintf(sa->sun_path, sizeof sa->sun_path, "%s/%s", dir, name);
        if (n < 0 || (size_t)n >= sizeof sa->sun_path)
                n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", dirfd, name);
        if (n < 0 || (size_t)n >= sizeof sa->sun_path)
                return -ENAMETOOLONG;
        *ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
        return 0;
}

/* Parses "<pid><suffix>" exactly; returns the pid or 0. */
static pid_t pid_from_name(const char *name, const char *suffix)
{
        size_t n = strlen(name), k = strlen(suffix);
        unsigned long v = 0;

        if (n <= k || n - k > 10 || strcmp(name + n - k, suffix) != 0)
                return 0;
        for (size_t i = 0; i < n - k; i++) {
                if (name[i] < '0' || name[i] > '9')
                        return 0;
                v = v * 10 + (unsigned long)(name[i] - '0');
        }
        if (v == 0 || name[0] == '0' || v > INT32_MAX)
                return 0;
        return (pid_t)v;
}

static bool pid_is_dead(pid_t pid)
{
        return kill(pid, 0) < 0 && errno == ESRCH;
}

/* Connects a non-blocking stream socket to dir/name. Returns the fd or -errno of
 * connect: -ECONNREFUSED (nobody listens), -ENOENT, -EAGAIN (backlog full). */
static int connect_at(int dirfd, const char *dir, const char *name)
{
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa;
        socklen_t len;
        int r;

        r = sockaddr_at(dirfd, dir, name, &sa, &len);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *)&sa, len) < 0 && errno != EINPROGRESS)
                return negative_errno();
        return TAKE_FD(fd);
}

/*
 * A socket is stale when its kernel's pid is dead and nothing listens on it. Both,
 * because a live kernel may be between bind and rename (pid alive) and a dead
 * pid's socket could still be held open by a child that inherited it.
 */
static void remove_if_stale(int dirfd, const char *dir, const char *name, pid_t pid)
{
        int fd;

        if (!pid_is_dead(pid))
                return;
        fd = connect_at(dirfd, dir, name);
        if (fd >= 0) {
                close(fd);
                return;
        }
        if (fd == -ECONNREFUSED)
                (void)unlinkat(dirfd, name, 0);
}

/* Removes sockets of dead kernels and our own pid's leftovers from run/. */
static void sweep_stale(int dirfd, const char *dir)
{
        _cleanup_close_ int fd = -EBADF;
        pid_t self = getpid(), pid;
        struct dirent *de;
        DIR *d;

        fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d)
                return;
        fd = -EBADF; /* owned by d now */
        while ((de = readdir(d))) {
                if ((pid = pid_from_name(de->d_name, ".sock")) > 0) {
                        if (pid == self)
                                (void)unlinkat(dirfd, de->d_name, 0);
                        else
                                remove_if_stale(dirfd, dir, de->d_name, pid);
                } else if ((pid = pid_from_name(de->d_name, ".tmp")) > 0) {
                        /* a kernel that died between bind and rename */
                        if (pid == self || pid_is_dead(pid))
                                (void)unlinkat(dirfd, de->d_name, 0);
                }
        }
        closedir(d);
}

/*
 * Opens (creating) <state_dir>/run: a directory owned by our euid, mode 0700, in a
 * state directory that state_dir_open() trusts (with or without create).
 * Returns the fd or -errno; -EPERM for someone else's directory or a non-directory.
 */
static int open_run_dir(const char *state_dir, bool create)
{
        _cleanup_close_ int sfd = -EBADF, fd = -EBADF;
        struct stat st;

        /* Ours alone, as every file cella trusts in it (base/statedir.h). */
        sfd = state_dir_open(state_dir, create);
        if (sfd < 0)
                return sfd;
        if (create && mkdirat(sfd, CONTROL_DIR, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        fd = openat(sfd, CONTROL_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOTDIR || errno == ELOOP ? -EPERM : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_uid != geteuid())
                return -EPERM;
        if (create && (st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

/* --- the kernel side --- */

static void control_maybe_free(Control *c)
{
        if (!c->closing || c->open_handles > 0)
                return;
        free(c->path);
        free(c);
}

static void control_handle_closed(uv_handle_t *h)
{
        Control *c = h->data;

        c->open_handles--;
        control_maybe_free(c);
}

static void conn_closed(uv_handle_t *h)
{
        Conn *k = h->data;
        Control *c = k->control;

        safe_close(k->fd);
        free(k->in);
        free(k->out);
        free(k);
        c->open_handles--;
        control_maybe_free(c);
}

static void conn_drop(Conn *k)
{
        Control *c = k->control;

        if (k->closing)
                return;
        k->closing = true;
        if (k->prev)
                k->prev->next = k->next;
        else
                c->conns = k->next;
        if (k->next)
                k->next->prev = k->prev;
        c->n_conns--;
        uv_close((uv_handle_t *)&k->poll, conn_closed);
}

/* Queues one reply line; the reply is consumed. Only called with nothing queued. */
static void conn_reply(Conn *k, json_t *reply)
{
        char *s;
        size_t n;

        if (!reply) {
                conn_drop(k);
                return;
        }
        s = json_dumps(reply, JSON_COMPACT);
        json_decref(reply);
        if (s && strlen(s) + 1 > CONTROL_OUTPUT_MAX) {
                free(s);
                if (asprintf(&s, "{\"error\":\"reply too large\",\"errno\":%d}", E2BIG) < 0)
                        s = NULL;
        }
        if (!s) {
                conn_drop(k);
                return;
        }
        n = strlen(s);
        s[n] = '\n'; /* json_dumps' NUL becomes the newline: the buffer is n + 1 long */
        free(k->out);
        k->out = s;
        k->out_len = n + 1;
        k->out_off = 0;
}

static json_t *error_reply(const char *message, int error)
{
        if (error > 0)
                return json_pack("{s:s,s:i}", "error", message, "errno", error);
        return json_pack("{s:s}", "error", message);
}

static void conn_handle_line(Conn *k, const char *line, size_t len)
{
        ControlHandlers *h = &k->control->h;
        ControlRequest req;
        const char *error;
        json_t *apps;
        int r;

        r = control_request_parse(line, len, &req, &error);
        if (r < 0) {
                conn_reply(k, error_reply(error, 0));
                return;
        }
        switch (req.op) {
        case CONTROL_OP_PS:
                if (!h->list) {
                        conn_reply(k, error_reply("not supported by this kernel", EOPNOTSUPP));
                        return;
                }
                apps = h->list(h->userdata);
                if (!json_is_array(apps)) {
                        json_decref(apps);
                        conn_reply(k, error_reply("cannot list the apps", EIO));
                        return;
                }
                conn_reply(k, json_pack("{s:o}", "apps", apps));
                return;
        case CONTROL_OP_GRANTS_CHANGED:
                if (h->grants_changed)
                        h->grants_changed(h->userdata, req.has_app ? req.app : NULL);
                conn_reply(k, json_pack("{s:b}", "ok", 1));
                return;
        case CONTROL_OP_STOP:
                if (!h->stop) {
                        conn_reply(k, error_reply("not supported by this kernel", EOPNOTSUPP));
                        return;
                }
                r = h->stop(h->userdata, req.app);
                if (r < 0)
                        conn_reply(k, error_reply(r == -ENOENT ? "no such app in this kernel"
                                                               : strerror(-r),
                                                  -r));
                else
                        conn_reply(k, json_pack("{s:b}", "ok", 1));
                return;
        case CONTROL_OP_STATS:
                if (!h->stats) {
                        conn_reply(k, error_reply("not supported by this kernel", EOPNOTSUPP));
                        return;
                }
                apps = h->stats(h->userdata, req.has_app ? req.app : NULL);
                if (!json_is_array(apps)) {
                        json_decref(apps);
                        conn_reply(k, error_reply("cannot read the stats", EIO));
                        return;
                }
                conn_reply(k, json_pack("{s:o}", "hosts", apps));
                return;
        }
}

/* Handles the complete lines buffered, one at a time: the next only once the
 * previous reply is out, so a client gets at most one reply queued. */
static void conn_process(Conn *k)
{
        char *nl;
        size_t n;

        while (!k->closing && !k->out && k->in_len > 0) {
                nl = memchr(k->in, '\n', k->in_len);
                if (!nl) {
                        if (k->in_len >= CONTROL_LINE_MAX) {
                                conn_reply(k,
                                           error_reply("request longer than 65536 bytes", E2BIG));
                                k->drop = true;
                                k->in_len = 0;
                        }
                        return;
                }
                n = (size_t)(nl - k->in);
                conn_handle_line(k, k->in, n);
                /* The handler may have closed us (control_close): k is still allocated
                 * until the close callback runs, so this check is safe. */
                if (k->closing)
                        return;
                memmove(k->in, nl + 1, k->in_len - n - 1);
                k->in_len -= n + 1;
        }
}

static void conn_update(Conn *k);

static void conn_flush(Conn *k)
{
        while (k->out && k->out_off < k->out_len) {
                ssize_t w = RETRY_EINTR(send(k->fd, k->out + k->out_off, k->out_len - k->out_off,
                                             MSG_DONTWAIT | MSG_NOSIGNAL));
                if (w < 0) {
                        if (errno != EAGAIN)
                                conn_drop(k);
                        return;
                }
                k->out_off += (size_t)w;
                k->last_ms = now_monotonic_ms();
        }
        if (k->out) {
                free(k->out);
                k->out = NULL;
                k->out_len = k->out_off = 0;
        }
}

static void on_conn(uv_poll_t *p, int status, int events)
{
        Conn *k = p->data;

        if (status < 0) {
                conn_drop(k);
                return;
        }
        if (events & UV_WRITABLE)
                conn_flush(k);
        if (!k->closing && (events & UV_READABLE) && !k->out && !k->eof && !k->drop) {
                for (unsigned i = 0; i < CONTROL_READS_PER_WAKE; i++) {
                        ssize_t n = RETRY_EINTR(
                                read(k->fd, k->in + k->in_len, CONTROL_LINE_MAX - k->in_len));

                        if (n < 0) {
                                if (errno != EAGAIN)
                                        conn_drop(k);
                                break;
                        }
                        if (n == 0) {
                                k->eof = true;
                                break;
                        }
                        k->in_len += (size_t)n;
                        k->last_ms = now_monotonic_ms();
                        conn_process(k);
                        if (k->closing || k->out || k->in_len >= CONTROL_LINE_MAX)
                                break;
                }
        }
        conn_update(k);
}

/* After any progress: send what is queued, handle buffered lines, and poll for
 * what comes next (writable while a reply is queued, else readable). */
static void conn_update(Conn *k)
{
        int events;

        for (;;) {
                if (k->closing)
                        return;
                conn_flush(k);
                if (k->closing || k->out)
                        break;
                if (k->drop || (k->eof && !memchr(k->in, '\n', k->in_len))) {
                        conn_drop(k);
                        return;
                }
                if (k->in_len == 0 || !memchr(k->in, '\n', k->in_len))
                        break;
                conn_process(k);
        }
        /* conn_flush() drops a client that went away (EPIPE): its handle closes. */
        if (k->closing)
                return;
        events = k->out ? UV_WRITABLE : UV_READABLE;
        if (uv_poll_start(&k->poll, events, on_conn) < 0)
                conn_drop(k);
}

static void conn_new(Control *c, int fd)
{
        Conn *k;

        k = calloc(1, sizeof *k);
        if (k)
                k->in = malloc(CONTROL_LINE_MAX);
        if (!k || !k->in || uv_poll_init(c->loop, &k->poll, fd) < 0) {
                if (k)
                        free(k->in);
                free(k);
                close(fd);
                return;
        }
        k->control = c;
        k->fd = fd;
        k->last_ms = now_monotonic_ms();
        k->poll.data = k;
        uv_unref((uv_handle_t *)&k->poll);
        k->next = c->conns;
        if (c->conns)
                c->conns->prev = k;
        c->conns = k;
        c->n_conns++;
        c->open_handles++;
        if (uv_poll_start(&k->poll, UV_READABLE, on_conn) < 0)
                conn_drop(k);
}

/* Only the kernel's own user (and root) may talk to it; the 0700 directory already
 * says so, this holds even if someone loosened it. */
static bool peer_allowed(int fd)
{
        struct ucred cred;
        socklen_t len = sizeof cred;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return false;
        return cred.uid == 0 || cred.uid == geteuid();
}

static void on_listen(uv_poll_t *p, int status, int events)
{
        static const char busy[] = "{\"error\":\"too many control connections\"}\n";
        Control *c = p->data;

        if (status < 0)
                return;
        for (unsigned i = 0; i < CONTROL_ACCEPTS_PER_WAKE && !c->closing; i++) {
                int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd < 0)
                        return; /* EAGAIN, or a client that gave up (ECONNABORTED) */
                if (!peer_allowed(fd)) {
                        close(fd);
                        continue;
                }
                if (c->n_conns >= CONTROL_CONNECTIONS_MAX) {
                        (void)send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
                        close(fd);
                        continue;
                }
                conn_new(c, fd);
        }
}

static void on_timer(uv_timer_t *t)
{
        Control *c = t->data;
        uint64_t now = now_monotonic_ms();
        Conn *next;

        for (Conn *k = c->conns; k; k = next) {
                next = k->next;
                if (now - k->last_ms >= CONTROL_IDLE_MS)
                        conn_drop(k);
        }
}

int control_listen(uv_loop_t *loop, const char *state_dir, const ControlHandlers *handlers,
                   Control **ret)
{
        _cleanup_close_ int dirfd = -EBADF, fd = -EBADF;
        _cleanup_free_ char *dir = NULL, *path = NULL;
        char tmp[32];
        struct sockaddr_un sa;
        socklen_t salen;
        Control *c;
        int r = 0;

        if (!loop || !state_dir || !*state_dir || !handlers || !ret)
                return -EINVAL;
        dirfd = open_run_dir(state_dir, true);
        if (dirfd < 0)
                return dirfd;
        if (asprintf(&dir, "%s/" CONTROL_DIR, state_dir) < 0)
                return -ENOMEM;
        sweep_stale(dirfd, dir);

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        snprintf(c->name, sizeof c->name, "%d.sock", (int)getpid());
        snprintf(tmp, sizeof tmp, "%d.tmp", (int)getpid());
        if (asprintf(&path, "%s/%s", dir, c->name) < 0) {
                free(c);
                return -ENOMEM;
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                r = negative_errno();
        else if ((r = sockaddr_at(dirfd, dir, tmp, &sa, &salen)) < 0)
                ;
        else if (bind(fd, (struct sockaddr *)&sa, salen) < 0)
                r = negative_errno();
        else if (fchmodat(dirfd, tmp, 0600, 0) < 0 || listen(fd, CONTROL_BACKLOG) < 0 ||
                 renameat(dirfd, tmp, dirfd, c->name) < 0) {
                r = negative_errno();
                (void)unlinkat(dirfd, tmp, 0);
        }
        if (r < 0) {
                free(c);
                return r;
        }

        c->loop = loop;
        c->h = *handlers;
        r = uv_poll_init(loop, &c->poll, fd);
        if (r < 0) {
                (void)unlinkat(dirfd, c->name, 0);
                free(c);
                return r;
        }
        c->fd = TAKE_FD(fd);
        c->dirfd = TAKE_FD(dirfd);
        c->path = TAKE_PTR(path);
        c->poll.data = c;
        c->open_handles = 1;
        (void)uv_timer_init(loop, &c->timer); /* cannot fail */
        c->timer.data = c;
        c->open_handles++;
        /* The control socket is no reason to keep a kernel's loop alive. */
        uv_unref((uv_handle_t *)&c->poll);
        uv_unref((uv_handle_t *)&c->timer);
        r = uv_poll_start(&c->poll, UV_READABLE, on_listen);
        if (r == 0)
                r = uv_timer_start(&c->timer, on_timer, CONTROL_IDLE_MS / 4, CONTROL_IDLE_MS / 4);
        if (r < 0) {
                control_close(c);
                return r;
        }
        *ret = c;
        return 0;
}

Control *control_close(Control *c)
{
        if (!c || c->closing)
                return NULL;
        (void)unlinkat(c->dirfd, c->name, 0);
        c->dirfd = safe_close(c->dirfd);
        while (c->conns)
                conn_drop(c->conns);
        c->closing = true;
        uv_close((uv_handle_t *)&c->poll, control_handle_closed);
        uv_close((uv_handle_t *)&c->timer, control_handle_closed);
        c->fd = safe_close(c->fd);
        return NULL;
}

const char *control_path(const Control *c)
{
        return c->path;
}

unsigned control_connections(const Control *c)
{
        return c->n_conns;
}

/* --- the client side --- */

/* One kernel being asked: its socket, how much of the request went out, and the
 * reply read so far. */
typedef struct Ask {
        pid_t pid;
        int fd;
        size_t sent;
        char *buf;
        size_t len, cap;
        int error;     /* 0: still asking; 1: answered (reply set); < 0: failed */
        json_t *reply; /* the parsed reply, once answered */
} Ask;

/* Sends what is left of req to a, without blocking. 0 (sent, or more to send
 * later) or -errno. */
static int ask_send(Ask *a, const char *req, size_t req_len)
{
        while (a->sent < req_len) {
                ssize_t w = RETRY_EINTR(
                        send(a->fd, req + a->sent, req_len - a->sent, MSG_DONTWAIT | MSG_NOSIGNAL));

                if (w < 0 && errno == EAGAIN)
                        return 0;
                if (w < 0)
                        return negative_errno();
                a->sent += (size_t)w;
        }
        return 0;
}

/* Reads what a's kernel sent, without blocking. 0 (more to come), 1 (a->reply is
 * the whole reply), -EBADMSG (not a JSON object, or over CONTROL_REPLY_MAX),
 * -ECONNRESET (closed before a whole line), -ENOMEM or -errno. */
static int ask_recv(Ask *a)
{
        for (;;) {
                char *nl;
                ssize_t n;

                if (a->len == a->cap) {
                        size_t ncap = a->cap ? a->cap * 2 : 4096;
                        char *nbuf;

                        if (ncap > CONTROL_REPLY_MAX + 1)
                                ncap = CONTROL_REPLY_MAX + 1;
                        if (ncap <= a->len)
                                return -EBADMSG;
                        nbuf = realloc(a->buf, ncap);
                        if (!nbuf)
                                return -ENOMEM;
                        a->buf = nbuf;
                        a->cap = ncap;
                }
                n = RETRY_EINTR(read(a->fd, a->buf + a->len, a->cap - a->len));
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -ECONNRESET;
                nl = memchr(a->buf + a->len, '\n', (size_t)n);
                a->len += (size_t)n;
                if (nl) {
                        a->reply = json_loadb(a->buf, (size_t)(nl - a->buf), 0, NULL);
                        if (!json_is_object(a->reply)) {
                                json_decref(a->reply);
                                a->reply = NULL;
                                return -EBADMSG;
                        }
                        return 1;
                }
        }
}

/* Asks every kernel in asks[0..n) at once: sends req to each and reads the replies
 * as they come, polling all sockets together until each has answered or failed or
 * deadline (CLOCK_MONOTONIC ms) passes; a kernel still asking then fails with
 * -ETIMEDOUT. Sets each a->error. Returns 0, or -errno of poll() (each kernel
 * still asking then fails with it). */
static int ask_all(Ask *asks, size_t n, const char *req, size_t req_len, uint64_t deadline)
{
        _cleanup_free_ struct pollfd *pfds = calloc(n ? n : 1, sizeof *pfds);
        _cleanup_free_ size_t *idx = calloc(n ? n : 1, sizeof *idx);
        int r = 0;

        if (!pfds || !idx)
                r = -ENOMEM;
        for (size_t i = 0; r == 0 && i < n; i++)
                if (asks[i].error == 0)
                        asks[i].error = ask_send(&asks[i], req, req_len);
        while (r == 0) {
                uint64_t now = now_monotonic_ms();
                size_t m = 0;
                int k;

                for (size_t i = 0; i < n; i++) {
                        if (asks[i].error != 0)
                                continue;
                        pfds[m] = (struct pollfd){
                                .fd = asks[i].fd,
                                .events = asks[i].sent < req_len ? POLLOUT : POLLIN,
                        };
                        idx[m++] = i;
                }
                if (m == 0)
                        break;
                if (now >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                k = poll(pfds, m, (int)MIN(deadline - now, (uint64_t)INT_MAX));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = negative_errno();
                        break;
                }
                for (size_t j = 0; j < m && k > 0; j++) {
                        Ask *a = &asks[idx[j]];

                        if (!pfds[j].revents)
                                continue;
                        k--;
                        if (a->sent < req_len)
                                a->error = ask_send(a, req, req_len);
                        if (a->error == 0 && a->sent == req_len)
                                a->error = ask_recv(a);
                }
        }
        for (size_t i = 0; i < n; i++)
                if (asks[i].error == 0)
                        asks[i].error = r;
        return r == -ETIMEDOUT ? 0 : r;
}

static int pid_cmp(const void *a, const void *b)
{
        pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

        return (x > y) - (x < y);
}

/* The sockets' pids in run/ (at most CONTROL_KERNELS_MAX, but except), in pid order,
 * into *ret (free() it) and *ret_n. 0 or -errno. */
static int list_kernels(int dirfd, pid_t except, pid_t **ret, size_t *ret_n)
{
        _cleanup_free_ pid_t *pids = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct dirent *de;
        size_t n = 0;
        DIR *d;

        pids = calloc(CONTROL_KERNELS_MAX, sizeof *pids);
        if (!pids)
                return -ENOMEM;
        fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d)
                return negative_errno();
        fd = -EBADF;
        while ((de = readdir(d)) && n < CONTROL_KERNELS_MAX) {
                pid_t pid = pid_from_name(de->d_name, ".sock");

                if (pid > 0 && pid != except)
                        pids[n++] = pid;
        }
        closedir(d);
        qsort(pids, n, sizeof *pids, pid_cmp);
        *ret = TAKE_PTR(pids);
        *ret_n = n;
        return 0;
}

/* Connects to the kernel pid's socket in run/ for a: a->fd, or a->error < 0 with
 * a->fd -EBADF. A socket nobody listens on is removed when its pid is dead and
 * skipped either way (a->error -ECONNREFUSED), as is one gone meanwhile
 * (-ENOENT): no kernel there. Any other error (-EAGAIN: its backlog is full) is a
 * live kernel that cannot be asked. */
static void ask_connect(Ask *a, int dirfd, const char *dir, pid_t pid)
{
        char name[32];

        snprintf(name, sizeof name, "%d.sock", (int)pid);
        *a = (Ask){.pid = pid, .fd = -EBADF};
        a->fd = connect_at(dirfd, dir, name);
        if (a->fd == -ECONNREFUSED)
                remove_if_stale(dirfd, dir, name, pid);
        if (a->fd < 0) {
                a->error = a->fd;
                a->fd = -EBADF;
        }
}

/* control_ask_kernels() skipping the kernel whose pid is except (0: none); fn NULL:
 * the request is only sent (without waiting, a kernel's loop must not), no reply read,
 * and each kernel whose socket took all of it counts. */
static int each_kernel(const char *state_dir, const json_t *request, pid_t except,
                       unsigned timeout_ms, int (*fn)(pid_t pid, json_t *reply, void *ud),
                       void (*mute)(pid_t pid, int error, void *ud), void *ud)
{
        _cleanup_close_ int dirfd = -EBADF;
        _cleanup_free_ char *dir = NULL, *req = NULL;
        _cleanup_free_ pid_t *pids = NULL;
        _cleanup_free_ Ask *asks = NULL;
        size_t n_pids = 0, req_len;
        int replied = 0, r;

        if (!state_dir || !*state_dir || !json_is_object(request))
                return -EINVAL;
        dirfd = open_run_dir(state_dir, false);
        if (dirfd == -ENOENT)
                return 0;
        if (dirfd < 0)
                return dirfd;
        if (asprintf(&dir, "%s/" CONTROL_DIR, state_dir) < 0)
                return -ENOMEM;
        req = json_dumps(request, JSON_COMPACT);
        if (!req)
                return -ENOMEM;
        req_len = strlen(req);
        if (req_len + 1 > CONTROL_LINE_MAX)
                return -E2BIG;
        req[req_len++] = '\n'; /* over the NUL */
        r = list_kernels(dirfd, except, &pids, &n_pids);
        if (r < 0)
                return r;

        if (!fn) {
                for (size_t i = 0; i < n_pids; i++) {
                        Ask a;
                        ssize_t w;

                        ask_connect(&a, dirfd, dir, pids[i]);
                        if (a.fd < 0)
                                continue;
                        /* A request line fits in an empty socket's buffer; the kernel
                         * reads it before it sees the hang-up. */
                        w = send(a.fd, req, req_len, MSG_DONTWAIT | MSG_NOSIGNAL);
                        safe_close(a.fd);
                        if (w == (ssize_t)req_len)
                                replied++;
                }
                return replied;
        }

        /* CONTROL_ASK_BATCH kernels at a time, so that a thousand kernels do not need
         * a thousand file descriptors; each batch has its own deadline. */
        asks = calloc(MIN(n_pids, (size_t)CONTROL_ASK_BATCH) + 1, sizeof *asks);
        if (!asks)
                return -ENOMEM;
        for (size_t base = 0; base < n_pids; base += CONTROL_ASK_BATCH) {
                size_t n = MIN(n_pids - base, (size_t)CONTROL_ASK_BATCH);

                for (size_t i = 0; i < n; i++)
                        ask_connect(&asks[i], dirfd, dir, pids[base + i]);
                r = ask_all(asks, n, req, req_len, now_monotonic_ms() + timeout_ms);
                for (size_t i = 0; i < n; i++) {
                        Ask *a = &asks[i];

                        if (r >= 0 && a->error == 1) {
                                r = fn(a->pid, a->reply, ud);
                                if (r >= 0)
                                        replied++;
                        } else if (r >= 0 && a->error != -ECONNREFUSED && a->error != -ENOENT &&
                                   mute)
                                mute(a->pid, a->error, ud);
                        json_decref(a->reply);
                        free(a->buf);
                        safe_close(a->fd);
                }
                if (r < 0)
                        return r;
        }
        return replied;
}

int control_ask_kernels(const char *state_dir, const json_t *request, unsigned timeout_ms,
                        int (*fn)(pid_t pid, json_t *reply, void *ud),
                        void (*mute)(pid_t pid, int error, void *ud), void *ud)
{
        if (!fn || timeout_ms == 0)
                return -EINVAL;
        return each_kernel(state_dir, request, 0, timeout_ms, fn, mute, ud);
}

int control_each_kernel(const char *state_dir, const json_t *request,
                        int (*fn)(pid_t pid, json_t *reply, void *ud), void *ud)
{
        return control_ask_kernels(state_dir, request, CONTROL_CLIENT_TIMEOUT_MS, fn, NULL, ud);
}

static int count_reply(pid_t pid, json_t *reply, void *ud)
{
        return 0;
}

static int notify_grants_changed(const char *state_dir, const char *app_id, pid_t except, bool wait)
{
        json_t *req;
        int r;

        if (app_id && !manifest_id_is_valid(app_id))
                return -EINVAL;
        req = json_pack("{s:s,s:s?}", "op", "grants-changed", "app", app_id);
        if (!req)
                return -ENOMEM;
        r = each_kernel(state_dir, req, except, CONTROL_CLIENT_TIMEOUT_MS,
                        wait ? count_reply : NULL, NULL, NULL);
        json_decref(req);
        return r;
}

int control_notify_grants_changed(const char *state_dir, const char *app_id)
{
        return notify_grants_changed(state_dir, app_id, 0, true);
}

int control_notify_other_kernels(const char *state_dir, const char *app_id)
{
        return notify_grants_changed(state_dir, app_id, getpid(), false);
}
