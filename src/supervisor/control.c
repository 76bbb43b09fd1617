/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control API v2 (control.h, docs/api.md): newline-delimited JSON shaped like
 * varlink over Unix stream sockets. Both halves live here: the server (a method
 * table on a libuv loop, on a kernel's run/<pid>.sock and the daemon's public
 * socket), the client of one socket, and the CLI's visit of every kernel of a state
 * directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/resource.h>
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

#define CONTROL_ACCEPTS_PER_WAKE 64u /* accept() calls per readiness of a listener */
#define CONTROL_READS_PER_WAKE   4u  /* read() calls per readiness of a client */
#define CONTROL_BACKLOG          SOMAXCONN
#define CONTROL_IN_INITIAL       4096u         /* a client's input buffer grows from this */
#define CONTROL_PEER_GROUPS_MAX  65536u        /* NGROUPS_MAX of Linux */
#define CONTROL_PIPELINE_QUEUED  (64u * 1024u) /* replies queued before the next request waits */

/* --- the request parser (pure) --- */

static bool method_name_is_valid(const char *s, size_t len)
{
        size_t words = 0;
        bool start = true;

        if (len == 0 || len > CONTROL_METHOD_MAX || strlen(s) != len)
                return false;
        for (size_t i = 0; i < len; i++) {
                char ch = s[i];

                if (start) {
                        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')))
                                return false;
                        start = false;
                        words++;
                } else if (ch == '.')
                        start = true;
                else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                           (ch >= '0' && ch <= '9')))
                        return false;
        }
        return !start && words >= 2;
}

int control_request_parse(const char *line, size_t len, ControlRequest *ret, const char **ret_error)
{
        json_t *root, *v, *params;
        json_error_t jerr;
        const char *key, *error = NULL;
        bool more = false, oneway = false;

        if (!line || !ret || !ret_error) {
                if (ret_error)
                        *ret_error = "no request";
                return -EINVAL;
        }
        if (len >= CONTROL_LINE_MAX) {
                *ret_error = "request longer than the line limit (65536 bytes)";
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
        json_object_foreach(root, key, v)
        {
                if (strcmp(key, "method") != 0 && strcmp(key, "parameters") != 0 &&
                    strcmp(key, "more") != 0 && strcmp(key, "oneway") != 0) {
                        error = "unknown key (method, parameters, more, oneway)";
                        goto fail;
                }
        }
        v = json_object_get(root, "method");
        if (!json_is_string(v)) {
                error = "\"method\" is missing or not a string";
                goto fail;
        }
        if (!method_name_is_valid(json_string_value(v), json_string_length(v))) {
                error = "\"method\" is not a method name (words of letters and digits joined "
                        "by dots, like org.cella.Ps)";
                goto fail;
        }
        params = json_object_get(root, "parameters");
        if (params && !json_is_object(params) && !json_is_null(params)) {
                error = "\"parameters\" is not an object";
                goto fail;
        }
        if (!params || json_is_null(params)) {
                params = json_object();
                if (!params || json_object_set_new(root, "parameters", params) < 0) {
                        error = "out of memory";
                        goto fail;
                }
        }
        v = json_object_get(root, "more");
        if (v && !json_is_boolean(v)) {
                error = "\"more\" is not a boolean";
                goto fail;
        }
        more = json_is_true(v);
        v = json_object_get(root, "oneway");
        if (v && !json_is_boolean(v)) {
                error = "\"oneway\" is not a boolean";
                goto fail;
        }
        oneway = json_is_true(v);
        if (more && oneway) {
                error = "\"more\" and \"oneway\" together";
                goto fail;
        }
        *ret = (ControlRequest){
                .root = root,
                .method = json_string_value(json_object_get(root, "method")),
                .parameters = params,
                .more = more,
                .oneway = oneway,
        };
        return 0;
fail:
        json_decref(root);
        *ret_error = error;
        return -EINVAL;
}

void control_request_done(ControlRequest *req)
{
        if (!req)
                return;
        json_decref(req->root);
        *req = (ControlRequest){};
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

/* --- the server --- */

typedef struct Conn Conn;

typedef struct Method {
        ControlMethod m;
        void *userdata;
} Method;

typedef struct Listener Listener;

struct Listener {
        Control *control;
        Listener *next;
        uv_poll_t poll;
        int fd;
        bool kernel;   /* run/<pid>.sock: its owner and root only, every method */
        char *path;    /* a public socket's path to unlink at close (NULL: fd) */
        int dirfd;     /* the kernel socket's run/ */
        char name[32]; /* the kernel socket's "<pid>.sock" */
};

struct ControlCall {
        Conn *conn;         /* the client, NULL once it is gone */
        Conn *closing_conn; /* the client being closed, whose close callback aborts us */
        char *method;
        bool more, oneway;
        bool in_method; /* the method's first run is on the stack */
        bool done;      /* the final reply was given */
        int fds[CONTROL_FDS_MAX];
        unsigned n_fds;
        struct ucred peer;
        void (*on_abort)(ControlCall *call, void *ud);
        void *abort_ud;
};

struct Conn {
        Control *control;
        Conn *prev, *next;
        uv_poll_t poll;
        int fd;
        ControlAccess level; /* the most a peer may do (ROOT is the most) */
        struct ucred peer;
        char *in; /* in_cap bytes, at most CONTROL_LINE_MAX */
        size_t in_len, in_cap;
        int in_fds[CONTROL_FDS_MAX]; /* for the request starting at in[in_fds_at] */
        unsigned n_in_fds;
        size_t in_fds_at;
        char *out; /* replies queued: out[out_off..out_len) */
        size_t out_len, out_off, out_cap;
        uint64_t last_ms;       /* last progress either way, CLOCK_MONOTONIC */
        ControlCall *call;      /* the request being served (the next waits for it) */
        ControlCall *aborted;   /* the call in flight when we were dropped */
        bool eof;               /* the client shut down its side */
        bool mid_line;          /* the last byte sent ended no line */
        bool drop_when_flushed; /* close once the queued output is out */
        bool closing;
        bool awaiting_group; /* its level waits for the group's lookup: no request yet */
};

struct Control {
        uv_loop_t *loop;
        Method *methods;
        size_t n_methods;
        uid_t *reader_uids;
        size_t n_reader_uids;
        gid_t *reader_gids;
        size_t n_reader_gids;
        Listener *listeners;
        uv_timer_t timer;
        bool timer_started;
        Conn *conns;
        unsigned n_conns, max_conns;
        unsigned fds_held;      /* descriptors received and waiting for their request */
        gid_t group_gid;        /* manage_gid()'s last answer */
        struct stat group_file; /* /etc/group when it was given */
        uint64_t group_looked_ms;
        bool group_cached;
        /* A lookup of the group on libuv's thread pool (group_lookup_start()): */
        uv_work_t group_work;
        bool group_looking;
        gid_t group_found;           /* its answer */
        struct stat group_file_then; /* /etc/group when it began */
        unsigned open_handles;       /* handles whose close callback has not run */
        bool closing;
        ControlCallAudit call_audit; /* control_set_call_audit() */
        void *call_audit_ud;
};

static void control_maybe_free(Control *c)
{
        if (!c->closing || c->open_handles > 0)
                return;
        free(c->methods);
        free(c->reader_uids);
        free(c->reader_gids);
        free(c);
}

static void control_handle_closed(uv_handle_t *h)
{
        Control *c = h->data;

        c->open_handles--;
        control_maybe_free(c);
}

static void close_fds(int *fds, unsigned *n)
{
        for (unsigned i = 0; i < *n; i++)
                fds[i] = safe_close(fds[i]);
        *n = 0;
}

static void call_free(ControlCall *call)
{
        if (!call)
                return;
        close_fds(call->fds, &call->n_fds);
        free(call->method);
        free(call);
}

static void conn_update(Conn *k);

static void conn_closed(uv_handle_t *h)
{
        Conn *k = h->data;
        Control *c = k->control;
        ControlCall *call = TAKE_PTR(k->aborted);

        /* The call the client left: its method hears of it now, from the loop (never
         * from inside one of its own control_reply*() calls). Without an abort
         * callback it lives on, detached, until its final reply. */
        if (call) {
                call->closing_conn = NULL;
                if (call->on_abort) {
                        call->on_abort(call, call->abort_ud);
                        call_free(call);
                }
        }
        safe_close(k->fd);
        c->fds_held -= k->n_in_fds;
        close_fds(k->in_fds, &k->n_in_fds);
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
        if (k->call) {
                ControlCall *call = TAKE_PTR(k->call);

                call->conn = NULL;
                if (!call->done) {
                        call->closing_conn = k;
                        k->aborted = call;
                }
        }
        if (k->prev)
                k->prev->next = k->next;
        else
                c->conns = k->next;
        if (k->next)
                k->next->prev = k->prev;
        c->n_conns--;
        uv_close((uv_handle_t *)&k->poll, conn_closed);
}

/* Queues line (len bytes, its newline included) for k. Returns 0, -ENOBUFS when
 * the output queued is over CONTROL_OUTPUT_MAX with it (nothing queued), -ENOMEM. */
static int conn_queue(Conn *k, const char *line, size_t len)
{
        size_t queued = k->out_len - k->out_off;

        if (queued > 0 && queued + len > CONTROL_OUTPUT_MAX)
                return -ENOBUFS;
        if (k->out_off > 0 && k->out_off == k->out_len)
                k->out_off = k->out_len = 0;
        if (k->out_len + len > k->out_cap) {
                size_t ncap;
                char *n;

                if (k->out_off > 0) {
                        memmove(k->out, k->out + k->out_off, queued);
                        k->out_len = queued;
                        k->out_off = 0;
                }
                ncap = MAX(k->out_cap * 2, k->out_len + len);
                if (k->out_len + len > k->out_cap) {
                        n = realloc(k->out, ncap);
                        if (!n)
                                return -ENOMEM;
                        k->out = n;
                        k->out_cap = ncap;
                }
        }
        memcpy(k->out + k->out_len, line, len);
        k->out_len += len;
        return 0;
}

/* Serializes reply (consumed) as one line: *ret (free()) and *ret_len, the newline
 * included. -E2BIG over CONTROL_OUTPUT_MAX, -ENOMEM. */
static int dump_line(json_t *reply, char **ret, size_t *ret_len)
{
        char *s;
        size_t n;

        if (!reply)
                return -ENOMEM;
        s = json_dumps(reply, JSON_COMPACT);
        json_decref(reply);
        if (!s)
                return -ENOMEM;
        n = strlen(s);
        if (n + 1 > CONTROL_OUTPUT_MAX) {
                free(s);
                return -E2BIG;
        }
        s[n] = '\n'; /* json_dumps' NUL becomes the newline: the buffer is n + 1 long */
        *ret = s;
        *ret_len = n + 1;
        return 0;
}

static json_t *error_object(const char *error, json_t *params, const char *message)
{
        if (!params)
                params = json_object();
        if (!params)
                return NULL;
        if (!json_is_object(params)) {
                json_decref(params);
                return NULL;
        }
        if (!json_is_string(json_object_get(params, "message")))
                json_object_set_new(params, "message", json_string(message ?: error));
        return json_pack("{s:s,s:o}", "error", error, "parameters", params);
}

/* Queues an error for k outside any call (a request refused before its method).
 * Returns 0 or -errno; a client whose output is full is dropped. */
static int conn_error(Conn *k, const char *error, json_t *params, const char *message)
{
        _cleanup_free_ char *s = NULL;
        size_t n;
        int r;

        r = dump_line(error_object(error, params, message), &s, &n);
        if (r >= 0)
                r = conn_queue(k, s, n);
        if (r < 0)
                conn_drop(k);
        return r;
}

/* After a call's final reply: the next request waits for the loop's next turn (the
 * socket is always writable enough to wake us), never on the replier's stack. */
static void conn_schedule(Conn *k)
{
        if (!k->closing && uv_poll_start(&k->poll, UV_READABLE | UV_WRITABLE, k->poll.poll_cb) < 0)
                conn_drop(k);
}

/* Ends call after its final reply went out (or nowhere). */
static void call_end(ControlCall *call)
{
        Conn *k = call->conn;

        call->done = true;
        if (call->closing_conn) {
                /* Replied before the close callback aborted it: nothing to abort. */
                call->closing_conn->aborted = NULL;
                call->closing_conn = NULL;
        }
        if (call->in_method)
                return; /* conn_dispatch() frees it when the method returns */
        if (k) {
                k->call = NULL;
                conn_schedule(k);
        }
        call_free(call);
}

/* Sends one reply of call (consumed). final: it ends the call. */
static int call_send(ControlCall *call, json_t *reply, bool final)
{
        _cleanup_free_ char *s = NULL;
        Conn *k = call->conn;
        size_t n;
        int r;

        if (!k || k->closing || call->oneway) {
                json_decref(reply);
                r = call->oneway && k && !k->closing ? 0 : -ECONNRESET;
                goto done;
        }
        r = dump_line(reply, &s, &n);
        if (r == -E2BIG && !final)
                return r; /* nothing sent; the stream goes on if its method wants */
        if (r == -E2BIG) {
                /* One reply no client may take: the client hears why instead. */
                r = dump_line(error_object(CONTROL_ERROR_FAILED, json_pack("{s:i}", "errno", E2BIG),
                                           "the reply is larger than the output bound"),
                              &s, &n);
                if (r >= 0)
                        r = conn_queue(k, s, n);
                if (r >= 0)
                        r = -E2BIG;
                goto done;
        }
        if (r >= 0)
                r = conn_queue(k, s, n);
        if (r == -ENOBUFS) {
                /* A reader too slow for what it asked: told, in place of the replies
                 * it never read (unless one was half sent), and dropped. */
                static const char overrun[] =
                        "{\"error\":\"" CONTROL_ERROR_OVERRUN "\",\"parameters\":{\"message\":"
                        "\"the client reads its replies too slowly: more than 4 MiB queued\"}}\n";

                if (!k->mid_line)
                        (void)send(k->fd, overrun, sizeof overrun - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
                conn_drop(k);
                goto done;
        }
        if (r < 0) {
                conn_drop(k);
                goto done;
        }
        /* Wake the writer (conn_update() sets the events right after). */
        (void)uv_poll_start(&k->poll, UV_READABLE | UV_WRITABLE, k->poll.poll_cb);
done:
        if (final)
                call_end(call);
        return r;
}

int control_reply(ControlCall *call, json_t *params)
{
        json_t *reply;

        if (!call || call->done) {
                json_decref(params);
                return -EINVAL;
        }
        if (!params)
                params = json_object();
        reply = params ? json_pack("{s:o}", "parameters", params) : NULL;
        return call_send(call, reply, true);
}

int control_reply_continues(ControlCall *call, json_t *params)
{
        json_t *reply;

        if (!call || call->done || !call->more) {
                json_decref(params);
                return -EINVAL;
        }
        if (!params)
                params = json_object();
        reply = params ? json_pack("{s:o,s:b}", "parameters", params, "continues", 1) : NULL;
        return call_send(call, reply, false);
}

int control_reply_error(ControlCall *call, const char *error, json_t *params)
{
        if (!call || call->done || !error) {
                json_decref(params);
                return -EINVAL;
        }
        return call_send(call, error_object(error, params, NULL), true);
}

int control_reply_errno(ControlCall *call, int negative_errno, const char *message)
{
        int e = negative_errno < 0 ? -negative_errno : EIO;

        return control_reply_error(
                call, CONTROL_ERROR_FAILED,
                json_pack("{s:i,s:s}", "errno", e, "message", message ?: strerror(e)));
}

int control_reply_invalid_parameter(ControlCall *call, const char *name, const char *message)
{
        return control_reply_error(call, CONTROL_ERROR_INVALID_PARAMETER,
                                   json_pack("{s:s,s:s}", "parameter", name ?: "", "message",
                                             message ?: "invalid parameter"));
}

bool control_call_more(const ControlCall *call)
{
        return call && call->more;
}

const char *control_call_method(const ControlCall *call)
{
        return call ? call->method : NULL;
}

size_t control_call_queued(const ControlCall *call)
{
        if (!call || !call->conn || call->conn->closing)
                return 0;
        return call->conn->out_len - call->conn->out_off;
}

const struct ucred *control_call_peer(const ControlCall *call)
{
        return call ? &call->peer : NULL;
}

int control_call_take_fd(ControlCall *call, unsigned i)
{
        if (!call || i >= call->n_fds || call->fds[i] < 0)
                return -EBADF;
        return TAKE_FD(call->fds[i]);
}

unsigned control_call_n_fds(const ControlCall *call)
{
        return call ? call->n_fds : 0;
}

void control_call_on_abort(ControlCall *call, void (*fn)(ControlCall *call, void *ud), void *ud)
{
        if (!call)
                return;
        call->on_abort = fn;
        call->abort_ud = ud;
}

int control_param_flag(ControlCall *call, json_t *params, const char *name, bool *ret)
{
        json_t *v = json_object_get(params, name);

        *ret = json_is_true(v);
        if (v && !json_is_null(v) && !json_is_boolean(v)) {
                control_reply_invalid_parameter(call, name, "expected true or false");
                return 0;
        }
        return 1;
}

const char *control_param_app(ControlCall *call, json_t *params, const char *name,
                              bool *ret_missing)
{
        json_t *v = json_object_get(params, name);

        if (ret_missing)
                *ret_missing = false;
        if (!v || json_is_null(v)) {
                if (ret_missing)
                        *ret_missing = true;
                return NULL;
        }
        /* json_string_length, not strlen: an id with a NUL inside is not one */
        if (!json_is_string(v) || json_string_length(v) > MANIFEST_ID_MAX ||
            strlen(json_string_value(v)) != json_string_length(v) ||
            !manifest_id_is_valid(json_string_value(v))) {
                control_reply_invalid_parameter(call, name, "not an app id");
                return NULL;
        }
        return json_string_value(v);
}

static const Method *find_method(const Control *c, const char *name)
{
        for (size_t i = 0; i < c->n_methods; i++)
                if (strcmp(c->methods[i].m.name, name) == 0)
                        return &c->methods[i];
        return NULL;
}

int control_set_call_audit(Control *c, ControlCallAudit fn, void *userdata)
{
        if (!c)
                return -EINVAL;
        c->call_audit = fn;
        c->call_audit_ud = userdata;
        return 0;
}

static const char *access_name(ControlAccess a)
{
        switch (a) {
        case CONTROL_ACCESS_ROOT:
                return "root";
        case CONTROL_ACCESS_MANAGE:
                return "root, the daemon's user or the group \"" CONTROL_GROUP "\"";
        case CONTROL_ACCESS_READ:
                return "managers and the users the daemon opens read-only methods to";
        default:
                return "anyone";
        }
}

/* Handles one request line (len bytes without its newline); fds (n_fds of them) came
 * with its first byte and are taken. */
static void conn_dispatch(Conn *k, const char *line, size_t len, int *fds, unsigned n_fds)
{
        Control *c = k->control;
        ControlRequest req = {};
        const char *error;
        const Method *m;
        ControlCall *call;
        int r;

        r = control_request_parse(line, len, &req, &error);
        if (r < 0) {
                close_fds(fds, &n_fds);
                (void)conn_error(k, CONTROL_ERROR_INVALID_REQUEST, NULL, error);
                return;
        }
        m = find_method(c, req.method);
        if (!m) {
                close_fds(fds, &n_fds);
                if (!req.oneway)
                        (void)conn_error(k, CONTROL_ERROR_METHOD_NOT_FOUND,
                                         json_pack("{s:s}", "method", req.method),
                                         "no such method");
                control_request_done(&req);
                return;
        }
        if (m->m.access < k->level) {
                char msg[256];

                close_fds(fds, &n_fds);
                snprintf(msg, sizeof msg, "%s may be called by %s only", m->m.name,
                         access_name(m->m.access));
                if (!req.oneway)
                        (void)conn_error(k, CONTROL_ERROR_PERMISSION_DENIED,
                                         json_pack("{s:s}", "method", req.method), msg);
                control_request_done(&req);
                return;
        }
        if (c->call_audit && m->m.access <= CONTROL_ACCESS_MANAGE)
                c->call_audit(m->m.name, m->m.access, &k->peer, req.parameters, c->call_audit_ud);
        call = calloc(1, sizeof *call);
        if (call)
                call->method = strdup(req.method);
        if (!call || !call->method) {
                free(call);
                close_fds(fds, &n_fds);
                control_request_done(&req);
                conn_drop(k);
                return;
        }
        call->conn = k;
        call->more = req.more;
        call->oneway = req.oneway;
        call->peer = k->peer;
        for (unsigned i = 0; i < n_fds; i++)
                call->fds[i] = fds[i];
        call->n_fds = n_fds;
        k->call = call;
        call->in_method = true;
        r = m->m.call(call, req.parameters, m->userdata);
        call->in_method = false;
        /* Descriptors are taken while the method runs; the others close now, not
         * when a long call (a stream) ends. */
        close_fds(call->fds, &call->n_fds);
        if (!call->done && r < 0)
                (void)control_reply_errno(call, r, NULL);
        else if (call->done) {
                /* Replied from the method itself: call_end() left the freeing to us,
                 * and conn_process() goes on with the next line. */
                if (call->conn && call->conn->call == call)
                        call->conn->call = NULL;
                call_free(call);
        }
        control_request_done(&req);
}

/* Handles the complete lines buffered, one at a time: the next only once the
 * previous call has ended, so replies come in the order of the requests, and only
 * while less than CONTROL_PIPELINE_QUEUED bytes of replies wait for the client to
 * read them: a client that pipelines and does not read is slowed down, not fed. */
static void conn_process(Conn *k)
{
        while (!k->awaiting_group && !k->closing && !k->call && !k->drop_when_flushed &&
               k->in_len > 0 && k->out_len - k->out_off < CONTROL_PIPELINE_QUEUED) {
                int fds[CONTROL_FDS_MAX];
                unsigned n_fds = 0;
                char *nl;
                size_t n;

                nl = memchr(k->in, '\n', k->in_len);
                if (!nl) {
                        if (k->in_len >= CONTROL_LINE_MAX) {
                                k->control->fds_held -= k->n_in_fds;
                                close_fds(k->in_fds, &k->n_in_fds);
                                (void)conn_error(k, CONTROL_ERROR_INVALID_REQUEST, NULL,
                                                 "request longer than the line limit (65536 "
                                                 "bytes)");
                                k->drop_when_flushed = true;
                                k->in_len = 0;
                        }
                        return;
                }
                n = (size_t)(nl - k->in);
                if (k->n_in_fds > 0 && k->in_fds_at == 0) {
                        memcpy(fds, k->in_fds, sizeof(int) * k->n_in_fds);
                        n_fds = k->n_in_fds;
                        k->control->fds_held -= n_fds;
                        k->n_in_fds = 0;
                }
                /* An empty line (a keep-alive, or a "\r\n" client's) is no request. */
                if (n > 0 && !(n == 1 && k->in[0] == '\r'))
                        conn_dispatch(k, k->in, n, fds, n_fds);
                else
                        close_fds(fds, &n_fds);
                /* The method may have closed us (control_close): k is still allocated
                 * until the close callback runs, so this check is safe. */
                if (k->closing)
                        return;
                memmove(k->in, nl + 1, k->in_len - n - 1);
                k->in_len -= n + 1;
                if (k->n_in_fds > 0)
                        k->in_fds_at -= n + 1;
        }
}

static bool has_line(const Conn *k)
{
        return k->in_len > 0 && memchr(k->in, '\n', k->in_len);
}

/* A request waits in the buffer for the call before it, or for the client to read
 * its replies: nothing more is read meanwhile (the socket holds the rest). */
static bool conn_waiting(const Conn *k)
{
        return (k->call || k->out_len - k->out_off >= CONTROL_PIPELINE_QUEUED) && has_line(k);
}

static void conn_flush(Conn *k)
{
        while (k->out_off < k->out_len) {
                ssize_t w = RETRY_EINTR(send(k->fd, k->out + k->out_off, k->out_len - k->out_off,
                                             MSG_DONTWAIT | MSG_NOSIGNAL));
                if (w < 0) {
                        if (errno != EAGAIN)
                                conn_drop(k);
                        return;
                }
                k->out_off += (size_t)w;
                k->mid_line = w > 0 && k->out[k->out_off - 1] != '\n';
                k->last_ms = now_monotonic_ms();
        }
        k->out_off = k->out_len = 0;
        if (k->out_cap > 64u * 1024u) {
                /* A stream's burst is over: give its buffer back. */
                free(k->out);
                k->out = NULL;
                k->out_cap = 0;
        }
}

/* A client that closed its socket entirely (not only shut down its writing side). */
static bool peer_hung_up(int fd)
{
        struct pollfd p = {.fd = fd, .events = POLLOUT};

        return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR));
}

/* Reads once into k->in: 1 (bytes came), 0 (nothing now), or -errno / -ECONNRESET
 * at EOF (k->eof set). */
static int conn_read(Conn *k)
{
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * CONTROL_FDS_MAX)];
        } control;
        struct iovec iov;
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof control,
        };
        int fds[CONTROL_FDS_MAX];
        unsigned n_fds = 0;
        ssize_t n;

        if (k->in_len == k->in_cap) {
                size_t ncap = MIN(MAX(k->in_cap * 2, (size_t)CONTROL_IN_INITIAL),
                                  (size_t)CONTROL_LINE_MAX);
                char *nb;

                if (ncap <= k->in_len)
                        return 0; /* full: conn_process() refuses the line */
                nb = realloc(k->in, ncap);
                if (!nb)
                        return -ENOMEM;
                k->in = nb;
                k->in_cap = ncap;
        }
        iov = (struct iovec){.iov_base = k->in + k->in_len, .iov_len = k->in_cap - k->in_len};
        n = RETRY_EINTR(recvmsg(k->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
        if (n < 0)
                return errno == EAGAIN ? 0 : negative_errno();
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                        int fd;

                        memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
                        if (n_fds < CONTROL_FDS_MAX)
                                fds[n_fds++] = fd;
                        else
                                close(fd);
                }
        }
        /* Descriptors belong to the request whose first byte came with them. A
         * read ends with the sendmsg() that carried them (the socket's kernel
         * stops a read right after a message with descriptors), and that
         * sendmsg() carries one request or its beginning, so they belong to the
         * last request that starts in this read: after its last newline but the
         * one that ends it, or at its first byte if a line ended before it. A read
         * in which no request starts (the middle of a line), or while other
         * descriptors still wait for their request, has its descriptors closed. */
        if (n_fds > 0) {
                const char *nl = n > 1 ? memrchr(k->in + k->in_len, '\n', (size_t)n - 1) : NULL;
                bool starts = nl || k->in_len == 0 || k->in[k->in_len - 1] == '\n';

                /* At most as many waiting in all as clients may connect: a client
                 * cannot hold 4 descriptors of the kernel's by never ending its line
                 * (the connection bound leaves each client 2 on average). */
                if (!starts || k->n_in_fds > 0 || n == 0 ||
                    k->control->fds_held + n_fds > k->control->max_conns)
                        close_fds(fds, &n_fds);
                else {
                        memcpy(k->in_fds, fds, sizeof(int) * n_fds);
                        k->n_in_fds = n_fds;
                        k->control->fds_held += n_fds;
                        k->in_fds_at = nl ? (size_t)(nl + 1 - k->in) : k->in_len;
                }
        }
        if (n == 0) {
                k->eof = true;
                return -ECONNRESET;
        }
        k->in_len += (size_t)n;
        k->last_ms = now_monotonic_ms();
        return 1;
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
        if (k->closing)
                return;
        if ((events & UV_READABLE) && !k->eof) {
                for (unsigned i = 0; i < CONTROL_READS_PER_WAKE && !k->closing; i++) {
                        int r;

                        /* Pipelined requests wait in the buffer while a call runs;
                         * past what one line may hold, the socket holds the rest. */
                        if (conn_waiting(k))
                                break;
                        r = conn_read(k);
                        if (r == -ECONNRESET && peer_hung_up(k->fd)) {
                                conn_drop(k); /* gone: its call is aborted */
                                return;
                        }
                        if (r < 0 && r != -ECONNRESET) {
                                conn_drop(k);
                                return;
                        }
                        if (r <= 0)
                                break;
                        conn_process(k);
                }
        }
        conn_update(k);
}

/* After any progress: send what is queued, handle buffered lines, and poll for
 * what comes next. */
static void conn_update(Conn *k)
{
        int events = 0;

        if (k->closing)
                return;
        conn_flush(k);
        if (k->closing)
                return;
        conn_process(k);
        if (k->closing)
                return;
        conn_flush(k);
        if (k->closing)
                return;
        if (k->out_len == k->out_off) {
                /* Everything is out: a refused client goes now, and so does one that
                 * said all it had to say and has nothing left to be answered. */
                if (k->drop_when_flushed || (k->eof && !k->call && !has_line(k))) {
                        conn_drop(k);
                        return;
                }
        } else
                events |= UV_WRITABLE;
        /* Not reading while a call runs and the next request waits: the timer
         * watches for a client that goes meanwhile (peer_hung_up()). */
        if (!k->eof && !k->drop_when_flushed && !conn_waiting(k) && k->in_len < CONTROL_LINE_MAX)
                events |= UV_READABLE;
        if (events == 0) {
                (void)uv_poll_stop(&k->poll);
                return;
        }
        if (uv_poll_start(&k->poll, events, on_conn) < 0)
                conn_drop(k);
}

static bool gid_in(gid_t g, const gid_t *gids, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (gids[i] == g)
                        return true;
        return false;
}

/* The peer's supplementary groups (SO_PEERGROUPS, Linux 4.13): *ret (free()) and
 * the count, or -errno. */
static int peer_groups(int fd, gid_t **ret, size_t *ret_n)
{
        socklen_t len = 64 * sizeof(gid_t);

        for (;;) {
                gid_t *g = malloc(len ? len : sizeof(gid_t));

                if (!g)
                        return -ENOMEM;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
                        *ret = g;
                        *ret_n = len / sizeof(gid_t);
                        return 0;
                }
                free(g);
                if (errno != ERANGE || len > CONTROL_PEER_GROUPS_MAX * sizeof(gid_t))
                        return negative_errno();
        }
}

/* How long a lookup of the group "cella" is trusted when /etc/group did not change
 * (a group that comes from NSS, LDAP or sssd): one lookup per this, whatever the
 * connection rate. */
#define CONTROL_GROUP_CACHE_MS 10000u

/* The group "cella"'s gid, or (gid_t)-1 when there is none, by getgrnam_r(). */
static gid_t manage_gid_lookup(void)
{
        struct group gr, *res = NULL;
        size_t size = 16384;

        /* A group's line holds its members: grow the buffer as glibc asks (ERANGE),
         * up to 4 MiB, rather than take a long line for no group. */
        for (;;) {
                _cleanup_free_ char *buf = malloc(size);
                int r;

                if (!buf)
                        return (gid_t)-1;
                r = getgrnam_r(CONTROL_GROUP, &gr, buf, size, &res);
                if (r == ERANGE && size < 4u * 1024u * 1024u) {
                        size *= 2;
                        continue;
                }
                return r == 0 && res ? res->gr_gid : (gid_t)-1;
        }
}

/*
 * The group "cella"'s gid, or (gid_t)-1 when there is none, for a peer that is
 * neither root nor the daemon's user, as last looked up; *ret_stale when that answer
 * may be old: /etc/group changed (its inode, size or mtime: groupadd, usermod -aG
 * rename a new file into place) or CONTROL_GROUP_CACHE_MS passed since the lookup
 * (a group from NSS, LDAP or sssd), or there was none. The lookup itself (a file
 * read, or a round trip to LDAP that may take seconds) never runs on the loop:
 * group_lookup_start() runs it on libuv's thread pool, and the connections that
 * need its answer wait for it (Conn.awaiting_group). So a group made in
 * /etc/group counts from the next connection; one made elsewhere within 10 s.
 */
static gid_t manage_gid(Control *c, bool *ret_stale)
{
        struct stat st = {};
        uint64_t now = now_monotonic_ms();

        (void)stat("/etc/group", &st); /* none: 0s, compared as such */
        *ret_stale = !(c->group_cached && now - c->group_looked_ms < CONTROL_GROUP_CACHE_MS &&
                       st.st_dev == c->group_file.st_dev && st.st_ino == c->group_file.st_ino &&
                       st.st_size == c->group_file.st_size &&
                       st.st_mtim.tv_sec == c->group_file.st_mtim.tv_sec &&
                       st.st_mtim.tv_nsec == c->group_file.st_mtim.tv_nsec);
        if (*ret_stale)
                c->group_file_then = st;
        return c->group_cached ? c->group_gid : (gid_t)-1;
}

static int peer_groups(int fd, gid_t **ret, size_t *ret_n);
static ControlAccess peer_level(const Control *c, const struct ucred *cred, const gid_t *groups,
                                size_t n_groups, gid_t g);

static void group_lookup_work(uv_work_t *w)
{
        Control *c = w->data;

        c->group_found = manage_gid_lookup();
}

/* The lookup's answer: cached, and every connection that waited for it gets its
 * level and is served. */
static void group_lookup_done(uv_work_t *w, int status)
{
        Control *c = w->data;
        Conn *next;

        c->group_looking = false;
        c->open_handles--;
        if (status >= 0) {
                c->group_gid = c->group_found;
                c->group_file = c->group_file_then;
                c->group_looked_ms = now_monotonic_ms();
                c->group_cached = true;
        }
        for (Conn *k = c->conns; k; k = next) {
                _cleanup_free_ gid_t *groups = NULL;
                size_t n = 0;

                next = k->next;
                if (!k->awaiting_group)
                        continue;
                (void)peer_groups(k->fd, &groups, &n);
                k->level = peer_level(c, &k->peer, groups, n, c->group_gid);
                k->awaiting_group = false;
                conn_update(k);
        }
        control_maybe_free(c);
}

/* Starts a lookup of the group on the thread pool, unless one runs. Returns 0, or
 * -errno of uv_queue_work() (then the caller looks it up itself). */
static int group_lookup_start(Control *c)
{
        int r;

        if (c->group_looking)
                return 0;
        c->group_work.data = c;
        r = uv_queue_work(c->loop, &c->group_work, group_lookup_work, group_lookup_done);
        if (r < 0)
                return r;
        c->group_looking = true;
        c->open_handles++; /* the Control outlives the work */
        return 0;
}

/* What a peer of a public socket who is neither root nor the daemon's user may call,
 * by its uid and groups (primary: cred->gid; supplementary: groups[0..n_groups)),
 * with g the group "cella"'s gid ((gid_t)-1: none). */
static ControlAccess peer_level(const Control *c, const struct ucred *cred, const gid_t *groups,
                                size_t n_groups, gid_t g)
{
        ControlAccess level = CONTROL_ACCESS_ANYONE;

        if (g != (gid_t)-1 && (cred->gid == g || gid_in(g, groups, n_groups)))
                return CONTROL_ACCESS_MANAGE;
        for (size_t i = 0; i < c->n_reader_uids; i++)
                if (c->reader_uids[i] == cred->uid)
                        level = CONTROL_ACCESS_READ;
        for (size_t i = 0; i < c->n_reader_gids; i++)
                if (cred->gid == c->reader_gids[i] || gid_in(c->reader_gids[i], groups, n_groups))
                        level = CONTROL_ACCESS_READ;
        return level;
}

/* What the peer on fd may call, on a kernel socket (kernel) or a public one:
 * *ret_level, or -EPERM (a kernel socket's stranger, to be closed) or -errno.
 * *ret_pending: the level is the last lookup's of the group "cella", which may be
 * old: the connection waits for the one now on the thread pool (manage_gid()). */
static int peer_access(Control *c, bool kernel, int fd, struct ucred *cred,
                       ControlAccess *ret_level, bool *ret_pending)
{
        _cleanup_free_ gid_t *groups = NULL;
        socklen_t len = sizeof *cred;
        size_t n_groups = 0;
        bool stale = false;
        gid_t g;

        *ret_pending = false;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0)
                return negative_errno();
        if (kernel) {
                /* Only the kernel's own user (and root) may talk to it: the 0700
                 * directory already says so, this holds even if someone loosened it. */
                if (cred->uid != 0 && cred->uid != geteuid())
                        return -EPERM;
                *ret_level = CONTROL_ACCESS_ROOT;
                return 0;
        }
        if (cred->uid == 0) {
                *ret_level = CONTROL_ACCESS_ROOT;
                return 0;
        }
        if (cred->uid == geteuid()) {
                *ret_level = CONTROL_ACCESS_MANAGE;
                return 0;
        }
        (void)peer_groups(fd, &groups, &n_groups); /* none known: the primary group only */
        g = manage_gid(c, &stale);
        if (stale) {
                if (group_lookup_start(c) >= 0)
                        *ret_pending = true;
                else {
                        /* No thread for it: looked up here, once. */
                        c->group_gid = g = manage_gid_lookup();
                        c->group_file = c->group_file_then;
                        c->group_looked_ms = now_monotonic_ms();
                        c->group_cached = true;
                }
        }
        *ret_level = peer_level(c, cred, groups, n_groups, g);
        return 0;
}

static int conn_new(Control *c, int fd, const struct ucred *cred, ControlAccess level,
                    bool awaiting_group)
{
        Conn *k;
        int r;

        k = calloc(1, sizeof *k);
        if (!k) {
                close(fd);
                return -ENOMEM;
        }
        r = uv_poll_init(c->loop, &k->poll, fd);
        if (r < 0) {
                free(k);
                close(fd);
                return r;
        }
        k->control = c;
        k->fd = fd;
        k->peer = *cred;
        k->level = level;
        k->awaiting_group = awaiting_group;
        k->last_ms = now_monotonic_ms();
        k->poll.data = k;
        k->poll.poll_cb = on_conn;
        uv_unref((uv_handle_t *)&k->poll);
        k->next = c->conns;
        if (c->conns)
                c->conns->prev = k;
        c->conns = k;
        c->n_conns++;
        c->open_handles++;
        r = uv_poll_start(&k->poll, UV_READABLE, on_conn);
        if (r < 0)
                conn_drop(k);
        return r;
}

/* The connections of uid now. */
static unsigned user_connections(const Control *c, uid_t uid)
{
        unsigned n = 0;

        for (const Conn *k = c->conns; k; k = k->next)
                n += k->peer.uid == uid;
        return n;
}

static void on_listen(uv_poll_t *p, int status, int events)
{
        static const char busy[] = "{\"error\":\"" CONTROL_ERROR_BUSY "\",\"parameters\":{"
                                   "\"message\":\"too many clients connected; try again\"}}\n";
        Listener *l = p->data;
        Control *c = l->control;

        if (status < 0)
                return;
        for (unsigned i = 0; i < CONTROL_ACCEPTS_PER_WAKE && !c->closing; i++) {
                struct ucred cred;
                ControlAccess level;
                bool pending;
                int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd < 0)
                        return; /* EAGAIN, or a client that gave up (ECONNABORTED) */
                if (peer_access(c, l->kernel, fd, &cred, &level, &pending) < 0) {
                        close(fd);
                        continue;
                }
                /* The last CONTROL_CONNECTIONS_RESERVED(max) slots are root's and the
                 * managers': local users together (each under its own cap) cannot
                 * take every one. (A level pending is judged by the last lookup's.) */
                if (c->n_conns >= c->max_conns ||
                    (level > CONTROL_ACCESS_MANAGE &&
                     (c->n_conns >= c->max_conns - CONTROL_CONNECTIONS_RESERVED(c->max_conns) ||
                      user_connections(c, cred.uid) >= CONTROL_CONNECTIONS_PER_USER)) ||
                    (level == CONTROL_ACCESS_MANAGE && !l->kernel && cred.uid != geteuid() &&
                     user_connections(c, cred.uid) >= CONTROL_CONNECTIONS_PER_MANAGER)) {
                        (void)send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
                        close(fd);
                        continue;
                }
                (void)conn_new(c, fd, &cred, level, pending);
        }
}

static void on_timer(uv_timer_t *t)
{
        static const char idle[] = "{\"error\":\"" CONTROL_ERROR_TIMEOUT "\",\"parameters\":{"
                                   "\"message\":\"no request and no progress for 10 s\"}}\n";
        Control *c = t->data;
        uint64_t now = now_monotonic_ms();
        Conn *next;

        for (Conn *k = c->conns; k; k = next) {
                bool queued = k->out_len > k->out_off;

                next = k->next;
                if (k->call && peer_hung_up(k->fd)) {
                        conn_drop(k); /* gone while we did not read: its call aborts */
                        continue;
                }
                /* Idle: nothing moved either way for CONTROL_IDLE_MS while nothing
                 * was being worked on for it, or while its replies waited for it
                 * to read (a stalled reader). A call in flight with nothing queued
                 * (a stream waiting for events) is not idle. */
                if (now - k->last_ms < CONTROL_IDLE_MS || (k->call && !queued))
                        continue;
                if (!queued)
                        (void)send(k->fd, idle, sizeof idle - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
                conn_drop(k);
        }
}

int control_new(uv_loop_t *loop, Control **ret)
{
        struct rlimit rl;
        Control *c;
        rlim_t n;

        if (!loop || !ret)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->loop = loop;
        n = CONTROL_CONNECTIONS_MAX;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
                n = rl.rlim_cur > CONTROL_FDS_RESERVED ? (rl.rlim_cur - CONTROL_FDS_RESERVED) / 2
                                                       : 0;
        c->max_conns = (unsigned)MAX(MIN(n, (rlim_t)CONTROL_CONNECTIONS_MAX),
                                     (rlim_t)CONTROL_CONNECTIONS_MIN);
        (void)uv_timer_init(loop, &c->timer); /* cannot fail */
        c->timer.data = c;
        c->open_handles = 1;
        /* The control sockets are no reason to keep a kernel's loop alive. */
        uv_unref((uv_handle_t *)&c->timer);
        *ret = c;
        return 0;
}

int control_serve_fd(Control *c, int fd, bool owner)
{
        struct ucred cred;
        ControlAccess level;
        bool pending;
        int r, type = 0;

        if (!c || fd < 0 || c->closing ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &(socklen_t){sizeof type}) < 0 ||
            type != SOCK_STREAM) {
                safe_close(fd);
                return -EINVAL;
        }
        r = peer_access(c, owner, fd, &cred, &level, &pending);
        if (r >= 0) {
                r = fcntl(fd, F_GETFL);
                r = r < 0 || fcntl(fd, F_SETFL, r | O_NONBLOCK) < 0 ? negative_errno() : 0;
        }
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        if (!c->timer_started &&
            uv_timer_start(&c->timer, on_timer, CONTROL_IDLE_MS / 4, CONTROL_IDLE_MS / 4) == 0)
                c->timer_started = true;
        return conn_new(c, fd, &cred, level, pending);
}

int control_add_methods(Control *c, const ControlMethod *m, size_t n, void *userdata)
{
        Method *nm;

        if (!c || (!m && n > 0))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (!m[i].name || !m[i].call || m[i].access > CONTROL_ACCESS_ANYONE ||
                    !method_name_is_valid(m[i].name, strlen(m[i].name)))
                        return -EINVAL;
                if (find_method(c, m[i].name))
                        return -EEXIST;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(m[i].name, m[j].name) == 0)
                                return -EEXIST;
        }
        nm = reallocarray(c->methods, c->n_methods + n + 1, sizeof *nm);
        if (!nm)
                return -ENOMEM;
        c->methods = nm;
        for (size_t i = 0; i < n; i++)
                c->methods[c->n_methods++] = (Method){.m = m[i], .userdata = userdata};
        return 0;
}

int control_set_readers(Control *c, const uid_t *uids, size_t n_uids, const gid_t *gids,
                        size_t n_gids)
{
        uid_t *u = NULL;
        gid_t *g = NULL;

        if (!c || (!uids && n_uids) || (!gids && n_gids))
                return -EINVAL;
        if (n_uids && !(u = calloc(n_uids, sizeof *u)))
                return -ENOMEM;
        if (n_gids && !(g = calloc(n_gids, sizeof *g))) {
                free(u);
                return -ENOMEM;
        }
        if (n_uids)
                memcpy(u, uids, n_uids * sizeof *u);
        if (n_gids)
                memcpy(g, gids, n_gids * sizeof *g);
        free(c->reader_uids);
        free(c->reader_gids);
        c->reader_uids = u;
        c->n_reader_uids = n_uids;
        c->reader_gids = g;
        c->n_reader_gids = n_gids;
        return 0;
}

static void listener_closed(uv_handle_t *h)
{
        Listener *l = h->data;
        Control *c = l->control;

        safe_close(l->fd);
        free(l->path);
        free(l);
        c->open_handles--;
        control_maybe_free(c);
}

/* Serves on fd (a listening socket, taken). */
static int control_add_listener(Control *c, int fd, bool kernel, char *path, int dirfd,
                                const char *name, Listener **ret)
{
        Listener *l;
        int r;

        l = calloc(1, sizeof *l);
        if (!l) {
                safe_close(fd);
                return -ENOMEM;
        }
        r = uv_poll_init(c->loop, &l->poll, fd);
        if (r < 0) {
                safe_close(fd);
                free(l);
                return r;
        }
        l->control = c;
        l->fd = fd;
        l->kernel = kernel;
        l->path = path;
        l->dirfd = dirfd;
        if (name)
                snprintf(l->name, sizeof l->name, "%s", name);
        l->poll.data = l;
        c->open_handles++;
        l->next = c->listeners;
        c->listeners = l;
        uv_unref((uv_handle_t *)&l->poll);
        r = uv_poll_start(&l->poll, UV_READABLE, on_listen);
        if (r == 0 && !c->timer_started) {
                r = uv_timer_start(&c->timer, on_timer, CONTROL_IDLE_MS / 4, CONTROL_IDLE_MS / 4);
                c->timer_started = r == 0;
        }
        if (ret)
                *ret = l;
        return r;
}

/* Removes l from c's list and closes it; a kernel socket's or a public socket's
 * file is unlinked. */
static void listener_close(Listener *l)
{
        Control *c = l->control;

        for (Listener **p = &c->listeners; *p; p = &(*p)->next)
                if (*p == l) {
                        *p = l->next;
                        break;
                }
        if (l->kernel) {
                (void)unlinkat(l->dirfd, l->name, 0);
                l->dirfd = safe_close(l->dirfd);
        } else if (l->path)
                (void)unlink(l->path);
        uv_close((uv_handle_t *)&l->poll, listener_closed);
}

int control_listen_kernel(Control *c, const char *state_dir)
{
        _cleanup_close_ int dirfd = -EBADF, fd = -EBADF;
        _cleanup_free_ char *dir = NULL;
        char tmp[32], name[32];
        struct sockaddr_un sa;
        socklen_t salen;
        Listener *l;
        int r = 0;

        if (!c || !state_dir || !*state_dir || c->closing)
                return -EINVAL;
        for (l = c->listeners; l; l = l->next)
                if (l->kernel)
                        return -EEXIST;
        dirfd = open_run_dir(state_dir, true);
        if (dirfd < 0)
                return dirfd;
        if (asprintf(&dir, "%s/" CONTROL_DIR, state_dir) < 0)
                return -ENOMEM;
        sweep_stale(dirfd, dir);

        snprintf(name, sizeof name, "%d.sock", (int)getpid());
        snprintf(tmp, sizeof tmp, "%d.tmp", (int)getpid());
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                r = negative_errno();
        else if ((r = sockaddr_at(dirfd, dir, tmp, &sa, &salen)) < 0)
                ;
        else if (bind(fd, (struct sockaddr *)&sa, salen) < 0)
                r = negative_errno();
        else if (fchmodat(dirfd, tmp, 0600, 0) < 0 || listen(fd, CONTROL_BACKLOG) < 0 ||
                 renameat(dirfd, tmp, dirfd, name) < 0) {
                r = negative_errno();
                (void)unlinkat(dirfd, tmp, 0);
        }
        if (r < 0)
                return r;
        {
                char *path = NULL;

                if (asprintf(&path, "%s/%s", dir, name) < 0) {
                        (void)unlinkat(dirfd, name, 0);
                        return -ENOMEM;
                }
                r = control_add_listener(c, TAKE_FD(fd), true, path, dirfd, name, &l);
                if (r < 0) {
                        if (l) {
                                l->dirfd = TAKE_FD(dirfd);
                                listener_close(l);
                        } else {
                                free(path);
                                (void)unlinkat(dirfd, name, 0);
                        }
                        return r;
                }
                dirfd = -EBADF; /* the listener's now */
        }
        return 0;
}

int control_listen_path(Control *c, const char *path)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *tmp = NULL, *copy = NULL;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        Listener *l = NULL;
        int r;

        if (!c || !path || !*path || c->closing)
                return -EINVAL;
        if (asprintf(&tmp, "%s.%d.tmp", path, (int)getpid()) < 0)
                return -ENOMEM;
        if (strlen(tmp) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        (void)unlink(tmp);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                return negative_errno();
        /* 0666: anyone may connect; what each may call is checked per method. Never
         * through a symlink: a file swapped in meanwhile is not made 0666. */
        if (fchmodat(AT_FDCWD, tmp, 0666, AT_SYMLINK_NOFOLLOW) < 0 ||
            listen(fd, CONTROL_BACKLOG) < 0 || rename(tmp, path) < 0) {
                r = negative_errno();
                (void)unlink(tmp);
                return r;
        }
        r = control_add_listener(c, TAKE_FD(fd), false, TAKE_PTR(copy), -EBADF, NULL, &l);
        if (r < 0 && l)
                listener_close(l);
        return r;
}

int control_listen_fd(Control *c, int fd)
{
        int type = 0, listening = 0, domain = 0;
        socklen_t len = sizeof type;
        Listener *l = NULL;
        int r;

        if (!c || fd < 0 || c->closing) {
                safe_close(fd);
                return -EINVAL;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &(socklen_t){sizeof listening}) <
                    0 ||
            getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &(socklen_t){sizeof domain}) < 0 ||
            type != SOCK_STREAM || !listening || domain != AF_UNIX) {
                safe_close(fd);
                return -EINVAL;
        }
        r = fcntl(fd, F_GETFL);
        if (r < 0 || fcntl(fd, F_SETFL, r | O_NONBLOCK) < 0) {
                r = negative_errno();
                safe_close(fd);
                return r;
        }
        r = control_add_listener(c, fd, false, NULL, -EBADF, NULL, &l);
        if (r < 0 && l)
                listener_close(l);
        return r;
}

Control *control_close(Control *c)
{
        if (!c || c->closing)
                return NULL;
        while (c->listeners)
                listener_close(c->listeners);
        while (c->conns)
                conn_drop(c->conns);
        c->closing = true;
        uv_close((uv_handle_t *)&c->timer, control_handle_closed);
        return NULL;
}

const char *control_path(const Control *c)
{
        for (const Listener *l = c ? c->listeners : NULL; l; l = l->next)
                if (l->kernel)
                        return l->path;
        return NULL;
}

unsigned control_connections(const Control *c)
{
        return c ? c->n_conns : 0;
}

unsigned control_connections_max(const Control *c)
{
        return c ? c->max_conns : 0;
}

/* --- the client of one socket --- */

struct ControlClient {
        int fd;
        char *buf; /* bytes read past the last reply */
        size_t len, cap;
        unsigned timeout_ms;
};

int control_client_new_fd(int fd, ControlClient **ret)
{
        ControlClient *cl;

        if (fd < 0 || !ret) {
                safe_close(fd);
                return -EINVAL;
        }
        cl = calloc(1, sizeof *cl);
        if (!cl) {
                safe_close(fd);
                return -ENOMEM;
        }
        cl->fd = fd;
        *ret = cl;
        return 0;
}

int control_server_trusted(int fd)
{
        struct ucred cred;
        socklen_t len = sizeof cred;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return negative_errno();
        /* The server's uid as the socket's kernel recorded it at its listen(): who
         * bound it cannot lie about it, whatever the file's owner or path. */
        if (cred.uid != 0 && cred.uid != geteuid())
                return -EPERM;
        return 0;
}

int control_client_connect(const char *path, ControlClient **ret)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!path || !*path || !ret)
                return -EINVAL;
        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (RETRY_EINTR(connect(fd, (struct sockaddr *)&sa, sizeof sa)) < 0)
                return negative_errno();
        r = control_server_trusted(fd);
        if (r < 0)
                return r;
        return control_client_new_fd(TAKE_FD(fd), ret);
}

void control_client_set_timeout(ControlClient *cl, unsigned timeout_ms)
{
        if (cl)
                cl->timeout_ms = timeout_ms;
}

ControlClient *control_client_free(ControlClient *cl)
{
        if (!cl)
                return NULL;
        safe_close(cl->fd);
        free(cl->buf);
        free(cl);
        return NULL;
}

/* Sends all of buf (len bytes) on fd, fds with its first byte. 0 or -errno. */
static int send_all(int fd, const char *buf, size_t len, const int *fds, size_t n_fds)
{
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * CONTROL_FDS_MAX)];
        } control = {};
        size_t off = 0;

        while (off < len) {
                struct iovec iov = {.iov_base = (char *)buf + off, .iov_len = len - off};
                struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
                ssize_t w;

                if (off == 0 && n_fds > 0) {
                        struct cmsghdr *cm;

                        mh.msg_control = &control;
                        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                        cm = CMSG_FIRSTHDR(&mh);
                        cm->cmsg_level = SOL_SOCKET;
                        cm->cmsg_type = SCM_RIGHTS;
                        cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
                }
                w = RETRY_EINTR(sendmsg(fd, &mh, MSG_NOSIGNAL));
                if (w < 0)
                        return negative_errno();
                off += (size_t)w;
        }
        return 0;
}

/* Reads the next reply line into *ret (a JSON object). 0, -ECONNRESET, -EBADMSG,
 * -ETIMEDOUT, -ENOMEM or -errno. */
static int client_read_reply(ControlClient *cl, json_t **ret)
{
        for (;;) {
                char *nl = memchr(cl->buf ?: "", '\n', cl->len);
                ssize_t n;

                if (nl) {
                        size_t k = (size_t)(nl - cl->buf);
                        json_t *j = json_loadb(cl->buf, k, 0, NULL);

                        memmove(cl->buf, nl + 1, cl->len - k - 1);
                        cl->len -= k + 1;
                        if (!json_is_object(j)) {
                                json_decref(j);
                                return -EBADMSG;
                        }
                        *ret = j;
                        return 0;
                }
                if (cl->len == cl->cap) {
                        size_t ncap = MIN(cl->cap ? cl->cap * 2 : 4096, (size_t)CONTROL_REPLY_MAX);
                        char *nb;

                        if (ncap <= cl->len)
                                return -EBADMSG;
                        nb = realloc(cl->buf, ncap);
                        if (!nb)
                                return -ENOMEM;
                        cl->buf = nb;
                        cl->cap = ncap;
                }
                if (cl->timeout_ms > 0) {
                        struct pollfd p = {.fd = cl->fd, .events = POLLIN};
                        int k = RETRY_EINTR(poll(&p, 1, (int)cl->timeout_ms));

                        if (k < 0)
                                return negative_errno();
                        if (k == 0)
                                return -ETIMEDOUT;
                }
                n = RETRY_EINTR(read(cl->fd, cl->buf + cl->len, cl->cap - cl->len));
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -ECONNRESET;
                cl->len += (size_t)n;
        }
}

/* The request line for method and params (consumed): *ret (free()), *ret_len with
 * its newline. -EINVAL, -E2BIG, -ENOMEM. */
static int request_line(const char *method, json_t *params, bool more, bool oneway, char **ret,
                        size_t *ret_len)
{
        json_t *req;
        char *s;
        size_t n;

        if (!method || !method_name_is_valid(method, strlen(method)) ||
            (params && !json_is_object(params))) {
                json_decref(params);
                return -EINVAL;
        }
        req = json_pack("{s:s,s:o}", "method", method, "parameters", params ?: json_object());
        if (!req)
                return -ENOMEM;
        if (more)
                json_object_set_new(req, "more", json_true());
        if (oneway)
                json_object_set_new(req, "oneway", json_true());
        s = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        if (!s)
                return -ENOMEM;
        n = strlen(s);
        if (n + 1 > CONTROL_LINE_MAX) {
                free(s);
                return -E2BIG;
        }
        s[n] = '\n'; /* over the NUL */
        *ret = s;
        *ret_len = n + 1;
        return 0;
}

int control_client_call(ControlClient *cl, const char *method, json_t *params, const int *fds,
                        size_t n_fds, bool more,
                        int (*on_reply)(json_t *reply, bool continues, void *ud), void *ud)
{
        _cleanup_free_ char *line = NULL;
        size_t len;
        int r;

        if (!cl || n_fds > CONTROL_FDS_MAX || (n_fds && !fds)) {
                json_decref(params);
                return -EINVAL;
        }
        r = request_line(method, params, more, false, &line, &len);
        if (r < 0)
                return r;
        r = send_all(cl->fd, line, len, fds, n_fds);
        if (r < 0)
                return r;
        for (;;) {
                json_t *reply = NULL;
                bool continues, error;

                r = client_read_reply(cl, &reply);
                if (r < 0)
                        return r;
                error = json_is_string(json_object_get(reply, "error"));
                continues = !error && json_is_true(json_object_get(reply, "continues"));
                if (continues && !more) {
                        json_decref(reply);
                        return -EBADMSG;
                }
                r = on_reply ? on_reply(reply, continues, ud) : 0;
                json_decref(reply);
                if (r < 0)
                        return r;
                if (!continues)
                        return error ? 1 : 0;
        }
}

const char *control_reply_error_name(const json_t *reply)
{
        return json_string_value(json_object_get(reply, "error"));
}

json_t *control_reply_parameters(const json_t *reply)
{
        json_t *p = json_object_get(reply, "parameters");

        return json_is_object(p) ? p : NULL;
}

const char *control_reply_message(const json_t *reply)
{
        const char *m =
                json_string_value(json_object_get(control_reply_parameters(reply), "message"));

        return m ?: control_reply_error_name(reply);
}

/* --- the CLI's visit of every kernel --- */

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
 * a "oneway" request is only sent (without waiting, a kernel's loop must not), no
 * reply read, and each kernel whose socket took all of it counts. */
static int each_kernel(const char *state_dir, const char *method, const json_t *params,
                       pid_t except, unsigned timeout_ms,
                       int (*fn)(pid_t pid, json_t *reply, void *ud),
                       void (*mute)(pid_t pid, int error, void *ud), void *ud)
{
        _cleanup_close_ int dirfd = -EBADF;
        _cleanup_free_ char *dir = NULL, *req = NULL;
        _cleanup_free_ pid_t *pids = NULL;
        _cleanup_free_ Ask *asks = NULL;
        size_t n_pids = 0, req_len;
        int replied = 0, r;
        json_t *copy;

        if (!state_dir || !*state_dir || !method || (params && !json_is_object(params)))
                return -EINVAL;
        copy = params ? json_deep_copy(params) : json_object();
        if (!copy)
                return -ENOMEM;
        r = request_line(method, copy, false, !fn, &req, &req_len);
        if (r < 0)
                return r;
        dirfd = open_run_dir(state_dir, false);
        if (dirfd == -ENOENT)
                return 0;
        if (dirfd < 0)
                return dirfd;
        if (asprintf(&dir, "%s/" CONTROL_DIR, state_dir) < 0)
                return -ENOMEM;
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

int control_ask_kernels(const char *state_dir, const char *method, const json_t *params,
                        unsigned timeout_ms, int (*fn)(pid_t pid, json_t *reply, void *ud),
                        void (*mute)(pid_t pid, int error, void *ud), void *ud)
{
        if (!fn || timeout_ms == 0)
                return -EINVAL;
        return each_kernel(state_dir, method, params, 0, timeout_ms, fn, mute, ud);
}

int control_each_kernel(const char *state_dir, const char *method, const json_t *params,
                        int (*fn)(pid_t pid, json_t *reply, void *ud), void *ud)
{
        return control_ask_kernels(state_dir, method, params, CONTROL_CLIENT_TIMEOUT_MS, fn, NULL,
                                   ud);
}

/* Counts the kernels that did what was asked (a reply that is no error). */
static int count_reply(pid_t pid, json_t *reply, void *ud)
{
        unsigned *n = ud;

        if (!control_reply_error_name(reply))
                (*n)++;
        return 0;
}

static int notify_grants_changed(const char *state_dir, const char *app_id, pid_t except, bool wait)
{
        json_t *params;
        unsigned ok = 0;
        int r;

        if (app_id && !manifest_id_is_valid(app_id))
                return -EINVAL;
        params = app_id ? json_pack("{s:s}", "app", app_id) : json_object();
        if (!params)
                return -ENOMEM;
        r = each_kernel(state_dir, "org.cella.GrantsChanged", params, except,
                        CONTROL_CLIENT_TIMEOUT_MS, wait ? count_reply : NULL, NULL, &ok);
        json_decref(params);
        return r < 0 || !wait ? r : (int)ok;
}

int control_notify_grants_changed(const char *state_dir, const char *app_id)
{
        return notify_grants_changed(state_dir, app_id, 0, true);
}

int control_notify_other_kernels(const char *state_dir, const char *app_id)
{
        return notify_grants_changed(state_dir, app_id, getpid(), false);
}
