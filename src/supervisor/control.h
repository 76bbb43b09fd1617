/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The control API (docs/design.md section 1: "the control API: JSON over a Unix socket"):
 * every kernel process (`cella run`, `cella boot`) listens on
 * <state>/run/<pid>.sock, and the CLI (`cella ps`, `cella grant`, ...) asks every
 * kernel that shares the state directory. The protocol is documented in
 * docs/cli.md ("The control socket"):
 *
 *   one JSON object per line, each way, at most CONTROL_LINE_MAX bytes a request;
 *   {"op":"ps"}                           -> {"apps":[<app record>, ...]}
 *   {"op":"grants-changed","app":ID|null} -> {"ok":true}
 *   {"op":"stop","app":ID}                -> {"ok":true} | {"error":"...","errno":N}
 *   {"op":"stats","app":ID|null}          -> {"hosts":[<Lua host stats>, ...]}
 *   anything else                         -> {"error":"..."}; the connection stays open
 *
 * Who may connect: <state>/run is mode 0700 and owned by the kernel's user
 * (root), each socket 0600, and the kernel also checks the peer's uid
 * (SO_PEERCRED) is its own or root. Nothing an app can reach.
 *
 * The kernel side never blocks: sockets are non-blocking on the caller's libuv
 * loop, connections and pending output are bounded (a client past a bound is
 * disconnected), and an idle client is dropped after CONTROL_IDLE_MS.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#include "policy/manifest.h"

#define CONTROL_DIR             "run"                 /* under the state dir */
#define CONTROL_LINE_MAX        (64u * 1024u)         /* bytes of one request, newline included */
#define CONTROL_CONNECTIONS_MAX 32u                   /* clients connected to one kernel at once */
#define CONTROL_OUTPUT_MAX      (4u * 1024u * 1024u)  /* bytes of replies queued per client */
#define CONTROL_REPLY_MAX       (16u * 1024u * 1024u) /* bytes of one reply a client accepts */
#define CONTROL_IDLE_MS         10000u                /* a silent client is dropped after this */
#define CONTROL_KERNELS_MAX     1024u                 /* sockets a client visits */
#define CONTROL_ASK_BATCH       256u                  /* kernels asked at once (descriptors) */

/* A client asks every kernel at once and waits this long for all of them together:
 * a kernel's loop answers in milliseconds when it gets the CPU, but under a load of
 * several runnable tasks per CPU a process can wait seconds for it (1 s left kernels
 * out at a load of 14 on 2 CPUs); 5 s is as long as a person waits for `cella ps`
 * without thinking it hung, and half CONTROL_IDLE_MS. */
#define CONTROL_CLIENT_TIMEOUT_MS 5000u

/* What the kernel does for each request; every slot may be NULL ("not supported"). */
typedef struct ControlHandlers {
        /* "ps": returns a new reference to a JSON array of app records (docs/cli.md,
         * "cella ps"), or NULL on failure (the client gets an error). */
        json_t *(*list)(void *userdata);
        /* "grants-changed": grants.db changed for app_id (a valid app id), or for any
         * app when app_id is NULL; the kernel re-reads them (broker_grants_changed). */
        void (*grants_changed)(void *userdata, const char *app_id);
        /* "stop": stops app_id. Returns 0 or a negative errno (-ENOENT: no such app
         * here), which the client gets as {"error": strerror, "errno": N}. */
        int (*stop)(void *userdata, const char *app_id);
        /* "stats": the scheduler stats of the running Lua hosts (docs/cli.md "cella
         * stats"): a new reference to a JSON array of host records, only the host
         * running app_id (and only its record) when app_id is not NULL, or NULL on
         * failure. */
        json_t *(*stats)(void *userdata, const char *app_id);
        void *userdata;
} ControlHandlers;

typedef struct Control Control;

typedef enum ControlOp {
        CONTROL_OP_PS,
        CONTROL_OP_GRANTS_CHANGED,
        CONTROL_OP_STOP,
        CONTROL_OP_STATS,
} ControlOp;

/* One parsed request. has_app is false for "ps" and for "grants-changed" and
 * "stats" with a null or missing "app" (every app). */
typedef struct ControlRequest {
        ControlOp op;
        bool has_app;
        char app[MANIFEST_ID_MAX + 1];
} ControlRequest;

/*
 * Parses one request line (len bytes, without its newline; need not be
 * NUL-terminated). Pure: no I/O, no global state; the fuzz target
 * tests/fuzz/fuzz-control.c runs it on arbitrary bytes.
 * Returns 0 and *ret, or -EINVAL with *ret_error set to a static message saying
 * what is wrong (not JSON, not an object, unknown op, bad or missing app id), or
 * -E2BIG for a line of CONTROL_LINE_MAX bytes or more. *ret is written only on
 * success.
 */
int control_request_parse(const char *line, size_t len, ControlRequest *ret,
                          const char **ret_error);

/*
 * Listens on <state_dir>/run/<pid>.sock on loop. Creates state_dir (0711) and
 * run/ (0700) if missing; refuses a run/ that is not a directory owned by this
 * process's euid (-EPERM) and tightens its mode to 0700. First removes the sockets
 * of kernels that are gone (their pid is dead and nothing answers on the socket),
 * and a socket left under this process's own pid. The socket is bound under a
 * temporary name and renamed into place once it listens, so a client never finds
 * a socket that refuses it while its kernel lives. handlers is copied.
 * Returns 0 and *ret (free with control_close()), -EINVAL for a NULL argument,
 * -EPERM (see above), or -errno of mkdir/socket/bind/listen/rename.
 */
int control_listen(uv_loop_t *loop, const char *state_dir, const ControlHandlers *handlers,
                   Control **ret);

/*
 * Stops listening, drops every client, unlinks the socket and frees c once the
 * loop has run the handles' close callbacks: run the loop again before
 * uv_loop_close() (which needs that anyway). Takes NULL; returns NULL.
 */
Control *control_close(Control *c);

/* The socket's path, "<state_dir>/run/<pid>.sock". */
const char *control_path(const Control *c);

/* Clients connected now (for tests and `ps`). */
unsigned control_connections(const Control *c);

/*
 * The client side, for the CLI: sends request (one JSON object) to every kernel
 * with a socket in <state_dir>/run, to all at once (CONTROL_ASK_BATCH at a time),
 * and waits at most timeout_ms (> 0) for all of them together: a batch polls every
 * socket at once, so N kernels take one timeout_ms, not N. Then, in pid order,
 * calls fn(pid, reply, ud) with each kernel's pid (from the socket's name) and its
 * reply (borrowed: valid during the call), and mute(pid, error, ud) (mute may be
 * NULL) for each live kernel that did not answer: its socket accepted (or its
 * backlog was full, -EAGAIN) but no whole reply came in time (-ETIMEDOUT), or it
 * closed early (-ECONNRESET), or sent a bad reply (-EBADMSG), or another -errno.
 * A socket nobody listens on is no kernel: removed when its pid is dead, skipped
 * either way, and so is a socket gone meanwhile. fn returning a negative errno
 * stops the walk with that error. At most CONTROL_KERNELS_MAX sockets are visited.
 * Returns the number of kernels that replied (0 when run/ does not exist), or
 * -EACCES (run/ is not readable: not root), -EINVAL, -ENOMEM, -errno of poll(), or
 * fn's error.
 */
int control_ask_kernels(const char *state_dir, const json_t *request, unsigned timeout_ms,
                        int (*fn)(pid_t pid, json_t *reply, void *ud),
                        void (*mute)(pid_t pid, int error, void *ud), void *ud);

/*
 * control_ask_kernels() with timeout_ms CONTROL_CLIENT_TIMEOUT_MS and no mute
 * callback: a kernel that does not answer in time is left out silently, so a
 * command that shows what the kernels say uses control_ask_kernels().
 */
int control_each_kernel(const char *state_dir, const json_t *request,
                        int (*fn)(pid_t pid, json_t *reply, void *ud), void *ud);

/*
 * Tells every kernel sharing state_dir that app_id's grants changed (app_id NULL:
 * any app's): {"op":"grants-changed","app":app_id}. A state directory with no
 * kernel running is fine. Returns the number of kernels told, or a negative errno
 * as control_each_kernel().
 */
int control_notify_grants_changed(const char *state_dir, const char *app_id);

/*
 * control_notify_grants_changed() from a kernel, on its loop: to every kernel sharing
 * state_dir but the caller's own (it re-reads its grants itself), and without waiting
 * for any: the request line is written to each socket that accepts it at once (the
 * kernel reads a line before the hang-up) and no reply is read, so a busy kernel, or
 * two kernels telling each other at the same moment, never stall a loop. Returns the
 * number of kernels the line was written to, or a negative errno as
 * control_each_kernel().
 */
int control_notify_other_kernels(const char *state_dir, const char *app_id);

static inline void control_closep(Control **c)
{
        control_close(*c);
}
