/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Outlets (outlet.h): a non-blocking writer on the kernel's loop with a bounded
 * buffer, records dropped with a count, streams made to wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/param.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/time-util.h"
#include "supervisor/outlet.h"

typedef enum OutletMode {
        OUTLET_PRIVATE,  /* a non-blocking description of our own: write() */
        OUTLET_SOCKET,   /* send(MSG_DONTWAIT) on the caller's fd */
        OUTLET_FILE,     /* a regular file or /dev/null: write() may take disk time only */
        OUTLET_FALLBACK, /* a shared blocking pipe or terminal: poll(0), then <= PIPE_BUF */
} OutletMode;

struct Outlet {
        uv_loop_t *loop;
        OutletMode mode;
        int fd; /* written to: ours (PRIVATE, FALLBACK: a dup for the poll) or the caller's */
        bool own_fd;
        bool terminal;
        size_t cap, stream_cap;
        char *buf; /* cap bytes while something waits; [off, len) is pending */
        size_t off, len;
        bool held, broken, abandoned;
        uint64_t dropped_records, unreported, dropped_bytes;
        const char *drop_prefix, *drop_suffix;
        uv_poll_t poll;
        bool poll_init, polling, closing;
        OutletWaiter *wait_head, *wait_tail;
};

static void on_poll(uv_poll_t *h, int status, int events);

/*
 * A description of fd's pipe or terminal of our own, non-blocking, for writing:
 * /proc/self/fd/N opened again. Checked to be the same object (a pipe's inode, a
 * terminal's device). Returns the new fd or -errno (-ENXIO: a pipe with no reader).
 */
static int reopen_nonblocking(int fd, const struct stat *st)
{
        struct stat nst;
        int nfd;

        nfd = fd_reopen(fd, O_WRONLY | O_NOCTTY | O_NONBLOCK);
        if (nfd < 0)
                return nfd;
        if (fstat(nfd, &nst) < 0 || (nst.st_mode & S_IFMT) != (st->st_mode & S_IFMT) ||
            (S_ISCHR(st->st_mode) ? nst.st_rdev != st->st_rdev
                                  : nst.st_ino != st->st_ino || nst.st_dev != st->st_dev)) {
                close(nfd);
                return -EXDEV;
        }
        return nfd;
}

int outlet_new(uv_loop_t *loop, int fd, bool own_fd, size_t cap, size_t stream_cap, Outlet **ret)
{
        _cleanup_close_ int wfd = -EBADF;
        struct stat st;
        OutletMode mode;
        Outlet *o;
        int flags, r;

        if (!loop || fd < 0 || cap < 2 * OUTLET_STREAM_MIN_ROOM || stream_cap > cap || !ret)
                return -EINVAL;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || (flags & O_ACCMODE) == O_RDONLY || fstat(fd, &st) < 0)
                return -EBADF;

        if (S_ISSOCK(st.st_mode)) {
                mode = OUTLET_SOCKET;
                wfd = own_fd ? fd : -EBADF;
        } else if (own_fd) {
                /* Ours alone (a pipe we made): its flag is ours to set. */
                r = fd_nonblock(fd, 1);
                if (r < 0)
                        return r;
                mode = S_ISREG(st.st_mode) ? OUTLET_FILE : OUTLET_PRIVATE;
                wfd = fd;
        } else if (S_ISFIFO(st.st_mode) || (S_ISCHR(st.st_mode) && isatty(fd))) {
                unsigned ptn;

                /* A pty master reopened would be a new pty (/dev/ptmx). */
                if (S_ISCHR(st.st_mode) && ioctl(fd, TIOCGPTN, &ptn) == 0)
                        wfd = -ENOTTY;
                else
                        wfd = reopen_nonblocking(fd, &st);
                if (wfd >= 0)
                        mode = OUTLET_PRIVATE;
                else if (wfd == -ENXIO) {
                        /* A pipe nobody reads any more: writes would fail with EPIPE. */
                        mode = OUTLET_PRIVATE;
                } else {
                        mode = OUTLET_FALLBACK;
                        wfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                        if (wfd < 0)
                                return negative_errno();
                }
        } else
                mode = OUTLET_FILE;

        o = calloc(1, sizeof *o);
        if (!o)
                return -ENOMEM;
        o->loop = loop;
        o->mode = mode;
        o->terminal = isatty(fd);
        o->cap = cap;
        o->stream_cap = stream_cap;
        o->own_fd = wfd >= 0;
        o->fd = wfd >= 0 ? TAKE_FD(wfd) : fd;
        if (mode == OUTLET_PRIVATE && !o->own_fd)
                o->broken = true; /* the ENXIO case above */
        if (mode != OUTLET_FILE && !o->broken) {
                /* uv_poll_init() sets O_NONBLOCK on the fd: on a shared description
                 * (a socket, the fallback's dup) it is put back at once; libuv only
                 * watches the fd, it never reads or writes it. */
                int fl = fcntl(o->fd, F_GETFL);

                r = uv_poll_init(loop, &o->poll, o->fd);
                if (r == 0 && fl >= 0 && mode != OUTLET_PRIVATE)
                        (void)fcntl(o->fd, F_SETFL, fl);
                if (r < 0) {
                        if (o->own_fd)
                                safe_close(o->fd);
                        free(o);
                        return r;
                }
                o->poll.data = o;
                o->poll_init = true;
                /* An outlet is no reason to keep the loop running. */
                uv_unref((uv_handle_t *)&o->poll);
        }
        *ret = o;
        return 0;
}

void outlet_set_drop_report(Outlet *o, const char *prefix, const char *suffix)
{
        o->drop_prefix = prefix;
        o->drop_suffix = suffix;
}

bool outlet_is_terminal(const Outlet *o)
{
        return o && o->terminal;
}

/* One non-blocking write. Returns bytes written, or -errno (-EAGAIN: try later). */
static ssize_t write_some(Outlet *o, const char *p, size_t n)
{
        ssize_t w;

        switch (o->mode) {
        case OUTLET_SOCKET:
                w = RETRY_EINTR(send(o->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL));
                break;
        case OUTLET_FALLBACK: {
                struct pollfd pfd = {.fd = o->fd, .events = POLLOUT};

                if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & (POLLOUT | POLLERR)))
                        return -EAGAIN;
                w = RETRY_EINTR(write(o->fd, p, MIN(n, (size_t)PIPE_BUF)));
                break;
        }
        case OUTLET_FILE:
                w = RETRY_EINTR(write(o->fd, p, n));
                if (w < 0 && errno == EAGAIN)
                        errno = EIO; /* never polled: someone set O_NONBLOCK */
                break;
        default:
                w = RETRY_EINTR(write(o->fd, p, n));
                break;
        }
        if (w < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : negative_errno();
        if (w == 0 && n > 0)
                return -EIO;
        return w;
}

static size_t pending(const Outlet *o)
{
        return o->len - o->off;
}

static void poll_update(Outlet *o)
{
        bool want = o->poll_init && !o->closing && pending(o) > 0 && !o->held && !o->broken;

        if (want == o->polling)
                return;
        o->polling = want;
        if (want)
                (void)uv_poll_start(&o->poll, UV_WRITABLE, on_poll);
        else
                (void)uv_poll_stop(&o->poll);
}

/* The reader is gone (or we gave up on it): discard what waits. */
static void discard(Outlet *o)
{
        o->dropped_bytes += pending(o);
        o->off = o->len = 0;
        free(o->buf);
        o->buf = NULL;
}

static void wake_waiters(Outlet *o)
{
        while (o->wait_head && outlet_stream_room(o) >= OUTLET_STREAM_MIN_ROOM) {
                OutletWaiter *w = o->wait_head;

                o->wait_head = w->next;
                if (!o->wait_head)
                        o->wait_tail = NULL;
                w->next = NULL;
                w->queued = false;
                w->ready(w);
        }
}

/* Appends to the buffer (allocated on first use); the caller checked the room. */
static int buffer(Outlet *o, const char *p, size_t n)
{
        if (!o->buf) {
                o->buf = malloc(o->cap);
                if (!o->buf)
                        return -ENOMEM;
        }
        if (o->len + n > o->cap) {
                memmove(o->buf, o->buf + o->off, pending(o));
                o->len -= o->off;
                o->off = 0;
        }
        memcpy(o->buf + o->len, p, n);
        o->len += n;
        return 0;
}

/* Writes what is buffered as far as the fd takes it. */
static void flush(Outlet *o)
{
        for (;;) {
                while (!o->held && !o->broken && pending(o) > 0) {
                        ssize_t w = write_some(o, o->buf + o->off, pending(o));

                        if (w == -EAGAIN)
                                break;
                        if (w < 0) {
                                o->broken = true; /* EPIPE: the reader went away */
                                discard(o);
                                break;
                        }
                        o->off += (size_t)w;
                }
                if (pending(o) == 0 && o->buf) {
                        o->off = o->len = 0;
                        free(o->buf); /* memory only while a reader lags */
                        o->buf = NULL;
                }
                /* Caught up: say what was dropped meanwhile, once. */
                if (pending(o) == 0 && !o->held && !o->broken && o->unreported > 0 &&
                    o->drop_prefix) {
                        char line[128];
                        int k = snprintf(line, sizeof line, "%s%llu%s", o->drop_prefix,
                                         (unsigned long long)o->unreported, o->drop_suffix);

                        o->unreported = 0;
                        if (k > 0 && (size_t)k < sizeof line && buffer(o, line, (size_t)k) == 0)
                                continue;
                }
                break;
        }
        poll_update(o);
        wake_waiters(o);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
        Outlet *o = h->data;

        if (status < 0) {
                o->broken = true;
                discard(o);
        }
        flush(o);
}

/* Writes p now as far as the fd takes it (when nothing waits before it), and
 * buffers the rest. */
static void put(Outlet *o, const char *p, size_t n)
{
        if (pending(o) == 0 && !o->held && !o->broken) {
                while (n > 0) {
                        ssize_t w = write_some(o, p, n);

                        if (w == -EAGAIN)
                                break;
                        if (w < 0) {
                                o->broken = true;
                                o->dropped_bytes += n;
                                n = 0;
                                break;
                        }
                        p += w;
                        n -= (size_t)w;
                }
        }
        if (n > 0 && !o->broken && buffer(o, p, n) < 0)
                o->dropped_bytes += n;
        poll_update(o);
}

int outlet_put_record(Outlet *o, const void *buf, size_t n)
{
        if (o->broken || o->abandoned) {
                o->dropped_records++;
                return -EPIPE;
        }
        if (pending(o) + n > o->cap) {
                o->dropped_records++;
                o->unreported++;
                return -ENOBUFS;
        }
        put(o, buf, n);
        return 0;
}

size_t outlet_stream_room(const Outlet *o)
{
        if (o->broken || o->abandoned)
                return SIZE_MAX / 8;
        return o->stream_cap > pending(o) ? o->stream_cap - pending(o) : 0;
}

void outlet_put_stream(Outlet *o, const void *buf, size_t n)
{
        if (o->broken || o->abandoned) {
                o->dropped_bytes += n;
                return;
        }
        put(o, buf, n);
}

void outlet_wait(Outlet *o, OutletWaiter *w)
{
        if (w->queued)
                return;
        w->next = NULL;
        w->queued = true;
        if (o->wait_tail)
                o->wait_tail->next = w;
        else
                o->wait_head = w;
        o->wait_tail = w;
}

void outlet_cancel_wait(Outlet *o, OutletWaiter *w)
{
        OutletWaiter *prev = NULL;

        if (!o || !w->queued)
                return;
        for (OutletWaiter *x = o->wait_head; x; prev = x, x = x->next) {
                if (x != w)
                        continue;
                if (prev)
                        prev->next = w->next;
                else
                        o->wait_head = w->next;
                if (o->wait_tail == w)
                        o->wait_tail = prev;
                break;
        }
        w->next = NULL;
        w->queued = false;
}

void outlet_hold(Outlet *o, bool hold)
{
        if (!o || o->held == hold)
                return;
        o->held = hold;
        flush(o);
}

void outlet_abandon(Outlet *o)
{
        if (!o || o->abandoned)
                return;
        o->abandoned = true;
        discard(o);
        poll_update(o);
        wake_waiters(o);
}

uint64_t outlet_dropped_records(const Outlet *o)
{
        return o ? o->dropped_records : 0;
}

uint64_t outlet_dropped_bytes(const Outlet *o)
{
        return o ? o->dropped_bytes : 0;
}

int outlet_drain(Outlet *o, unsigned timeout_ms)
{
        uint64_t deadline = now_monotonic_ms() + timeout_ms;

        if (!o)
                return 0;
        o->held = false;
        for (;;) {
                struct pollfd pfd = {.fd = o->fd, .events = POLLOUT};
                uint64_t now;

                flush(o);
                if (o->broken || o->abandoned)
                        return pending(o) > 0 ? -EPIPE : 0;
                if (pending(o) == 0)
                        return 0;
                now = now_monotonic_ms();
                if (now >= deadline || o->mode == OUTLET_FILE)
                        break;
                if (poll(&pfd, 1, (int)(deadline - now)) < 0 && errno != EINTR)
                        break;
        }
        o->dropped_bytes += pending(o);
        return -ETIMEDOUT;
}

static void outlet_release(Outlet *o)
{
        if (o->own_fd)
                safe_close(o->fd);
        free(o->buf);
        free(o);
}

static void outlet_closed(uv_handle_t *h)
{
        outlet_release(h->data);
}

Outlet *outlet_free(Outlet *o)
{
        if (!o || o->closing)
                return NULL;
        o->closing = true;
        o->wait_head = o->wait_tail = NULL;
        if (o->poll_init)
                uv_close((uv_handle_t *)&o->poll, outlet_closed);
        else
                outlet_release(o);
        return NULL;
}
