/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Outlets: every fd the kernel's loop writes to for someone else to read, an
 * observer (docs/cli.md "Observers never stall the kernel"): the --json-status fd,
 * cella's own stdout and stderr (the apps' output under `cella run`, the kernel's
 * messages), and the pipe that feeds a terminal's input to an app. The loop never
 * blocks on one: a write that would block leaves the bytes in the outlet's buffer
 * (bounded in bytes, allocated only while something waits), which the loop sends
 * once the fd is writable again. What does not fit is dealt with by its kind:
 *
 *   - a record (a status line, a kernel message) is whole or not at all: when the
 *     buffer is full it is dropped and counted, and once the reader has caught up
 *     (the buffer is empty again) one line reports the count (outlet_set_drop_report);
 *   - a stream (an app's output) is never dropped: its producer asks for room first
 *     (outlet_stream_room), and without it waits (outlet_wait) and stops reading
 *     the app's pipe, so the app blocks on its own pipe, never the kernel.
 *
 * Non-blocking without touching what others share. O_NONBLOCK belongs to the open
 * file description, which cella shares with its parent shell (the terminal) or
 * the reader's other writers (a pipe): setting it on fd 1 would hand EAGAIN to
 * the shell's next program. So an outlet writes through a file description of
 * its own: a terminal or a pipe (FIFO) is reopened through /proc/self/fd/N with
 * O_NONBLOCK (the way libuv's uv_tty_init() reopens a tty; a pty master is not
 * reopened, that would make a new pty); a socket is written with send(MSG_DONTWAIT);
 * a regular file (or /dev/null) is written as it is (disk writes do not wait on a
 * reader). When a reopen is not possible (no /proc) the outlet falls back to
 * writing on the shared fd only what poll() with a zero timeout says fits, at most
 * PIPE_BUF bytes a write (never a full pipe's wait with a single writer). Where
 * libuv watches a shared description (socket, fallback), the O_NONBLOCK that
 * uv_poll_init() sets on it is cleared again right after.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Room a stream needs before its producer reads more: one read's worth at least. */
#define OUTLET_STREAM_MIN_ROOM 4096u

typedef struct Outlet Outlet;

/* A producer waiting for room (embedded in it): ready(w) is called once, from the
 * loop, when the outlet has OUTLET_STREAM_MIN_ROOM bytes of room again (or is
 * broken or abandoned: then everything put is discarded). */
typedef struct OutletWaiter {
        struct OutletWaiter *next;
        void (*ready)(struct OutletWaiter *w);
        bool queued;
} OutletWaiter;

/*
 * Makes an outlet writing to fd (not taken: the outlet writes through its own
 * description of it, see above; unless own_fd, then fd is the outlet's, made
 * non-blocking, and closed by outlet_free()). cap: bytes the buffer may hold
 * (>= 2 * OUTLET_STREAM_MIN_ROOM); stream_cap: of them, bytes streams may fill
 * (<= cap; the rest is kept for records). Returns 0 and *ret, -EINVAL, -ENOMEM,
 * -EBADF (fd is not open for writing).
 */
int outlet_new(uv_loop_t *loop, int fd, bool own_fd, size_t cap, size_t stream_cap, Outlet **ret);

/* The line written when dropped records are reported: prefix, the count in
 * decimal, suffix (which ends the line with "\n"); prefix NULL (the default)
 * reports nothing. Both must outlive o (literals). */
void outlet_set_drop_report(Outlet *o, const char *prefix, const char *suffix);

/* True if the outlet's fd is a terminal (isatty). */
bool outlet_is_terminal(const Outlet *o);

/*
 * Queues a record of n bytes, whole: written now if the fd takes it, else kept in
 * the buffer; dropped (counted) when the buffer cannot hold it, or when the outlet
 * is broken (the reader went away) or abandoned. Returns 0 (written or queued),
 * -ENOBUFS (dropped: full), -EPIPE (dropped: broken or abandoned).
 */
int outlet_put_record(Outlet *o, const void *buf, size_t n);

/* Bytes a stream may put now (0 while the buffer is near full); a large number
 * when the outlet discards everything (broken, abandoned). */
size_t outlet_stream_room(const Outlet *o);

/* Puts n bytes of a stream (n <= outlet_stream_room(o)). */
void outlet_put_stream(Outlet *o, const void *buf, size_t n);

/* Queues w to be called when there is room again (FIFO among waiters); a waiter
 * already queued stays where it is. */
void outlet_wait(Outlet *o, OutletWaiter *w);
/* Takes w off the queue, if it is on it. */
void outlet_cancel_wait(Outlet *o, OutletWaiter *w);

/*
 * Holds (hold) or releases the outlet's writes: while held, everything put waits
 * in the buffer (records dropped when it is full, streams made to wait), so that a
 * permission question can own the terminal (prompt.h). Release writes what waited.
 */
void outlet_hold(Outlet *o, bool hold);

/*
 * Gives up on the reader: what is buffered and everything put from now on is
 * discarded (counted in outlet_dropped_bytes()), and waiters are woken, so that
 * producers drain their pipes and a run can end although nobody reads its output.
 */
void outlet_abandon(Outlet *o);

/* Records dropped so far (full buffer, broken, abandoned). */
uint64_t outlet_dropped_records(const Outlet *o);
/* Stream bytes discarded so far (broken, abandoned). */
uint64_t outlet_dropped_bytes(const Outlet *o);

/*
 * Before exit: writes what is buffered, waiting (poll) at most until timeout_ms
 * from now for the reader, then gives up on the rest. Does not run the loop.
 * Returns 0 if everything was written, -ETIMEDOUT or -EPIPE otherwise.
 */
int outlet_drain(Outlet *o, unsigned timeout_ms);

/* Frees o (closing its own fds) once the loop has run its handle's close callback.
 * Takes NULL; returns NULL. */
Outlet *outlet_free(Outlet *o);
