/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The control API v2 (docs/api.md; docs/design.md section 1): JSON over a Unix
 * stream socket, one object per line each way, shaped like varlink
 * (https://varlink.org/Method-Call): a request
 *
 *   {"method":"org.cella.Ps","parameters":{...},"more":false,"oneway":false}
 *
 * gets exactly one reply {"parameters":{...}}, or, for a "more":true call, any
 * number of {"parameters":{...},"continues":true} before its last reply; an error
 * is {"error":"org.cella.NoSuchApp","parameters":{"message":"...", ...}} and ends
 * the call. Requests pipelined on one connection are answered in order. A request
 * may carry up to CONTROL_FDS_MAX file descriptors (SCM_RIGHTS) with the sendmsg()
 * of its first byte.
 *
 * A Control is a method table served on one libuv loop, on any number of listening
 * sockets:
 *   - every kernel process (`cella run`, `cella boot`, `cellad`) listens on
 *     <state>/run/<pid>.sock (control_listen_kernel()): run/ is mode 0700, so only
 *     the kernel's own user and root can connect, and such a peer may call every
 *     method (the CLI finds the kernels there: control_ask_kernels());
 *   - the daemon also listens on <state>/cellad.sock (control_listen_path(), mode
 *     0666) or on the socket systemd passed (control_listen_fd()), where each
 *     method's ControlAccess is checked against the peer's SO_PEERCRED and
 *     SO_PEERGROUPS.
 *
 * The server never blocks: sockets are non-blocking; a line, the output queued for
 * a client, the connections and a client's silence are bounded (below); a client
 * past a bound gets an error line and is closed, and only that client.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

#include "policy/manifest.h"

#define CONTROL_DIR         "run"                 /* under the state dir */
#define CONTROL_LINE_MAX    (64u * 1024u)         /* bytes of one request, newline included */
#define CONTROL_OUTPUT_MAX  (4u * 1024u * 1024u)  /* bytes of replies queued per client */
#define CONTROL_REPLY_MAX   (16u * 1024u * 1024u) /* bytes of one reply a client accepts */
#define CONTROL_IDLE_MS     10000u                /* a silent client is dropped after this */
#define CONTROL_FDS_MAX     5u                    /* descriptors one request may carry */
#define CONTROL_METHOD_MAX  255u                  /* bytes of a method name */
#define CONTROL_KERNELS_MAX 1024u                 /* sockets a client visits */
#define CONTROL_ASK_BATCH   256u                  /* kernels asked at once (descriptors) */

/*
 * Clients served at once by one Control, at most: the bound is
 * min(CONTROL_CONNECTIONS_MAX, (RLIMIT_NOFILE soft limit - CONTROL_FDS_RESERVED) / 2)
 * when the Control is made, and never under CONTROL_CONNECTIONS_MIN. Half the
 * descriptors left: each client holds one, and the calls it makes may open others
 * (a bundle, a log file). A process under the usual soft limit of 1024 serves 448;
 * a cella kernel raises its limit first (SUPERVISOR_NOFILE_MAX) and serves 4096. A
 * client past the bound gets {"error":"org.cella.Busy"} and is closed.
 */
#define CONTROL_CONNECTIONS_MAX 4096u
#define CONTROL_CONNECTIONS_MIN 16u
#define CONTROL_FDS_RESERVED    128u

/* Connections at once of one user who may neither manage nor is root, on a public
 * socket: a local user cannot take every slot from root and the managers (the
 * client past it gets org.cella.Busy). 64: more than any one person's tools
 * need, a sixty-fourth of the usual bound. */
#define CONTROL_CONNECTIONS_PER_USER 64u
/* Connections at once of one manager (group "cella") who is neither root nor the
 * daemon's user: each may hold a stream (logs -f, events, ps --watch), its buffers
 * and the work behind it, charged to the daemon, so a manager's are bounded too, at
 * four times a user's. */
#define CONTROL_CONNECTIONS_PER_MANAGER 256u
/* Of max connections, the ones only root and the managers may take, whatever the
 * other users hold: an eighth, at least 4 (512 of 4096; 4 of the minimum 16). */
#define CONTROL_CONNECTIONS_RESERVED(max) ((max) / 8u > 4u ? (max) / 8u : 4u)

/* A client asks every kernel at once and waits this long for all of them together:
 * a kernel's loop answers in milliseconds when it gets the CPU, but under a load of
 * several runnable tasks per CPU a process can wait seconds for it (1 s left kernels
 * out at a load of 14 on 2 CPUs); 5 s is as long as a person waits for `cella ps`
 * without thinking it hung, and half CONTROL_IDLE_MS. */
#define CONTROL_CLIENT_TIMEOUT_MS 5000u

/* The error names (docs/api.md, "Errors"). Every error reply carries
 * parameters.message, a sentence for a person. */
#define CONTROL_ERROR_INVALID_REQUEST   "org.cella.InvalidRequest"   /* bad JSON, shape, line */
#define CONTROL_ERROR_METHOD_NOT_FOUND  "org.cella.MethodNotFound"   /* parameters.method */
#define CONTROL_ERROR_INVALID_PARAMETER "org.cella.InvalidParameter" /* parameters.parameter */
#define CONTROL_ERROR_PERMISSION_DENIED "org.cella.PermissionDenied" /* parameters.method */
#define CONTROL_ERROR_NO_SUCH_APP       "org.cella.NoSuchApp"        /* parameters.app */
#define CONTROL_ERROR_APP_STATE         "org.cella.AppState"         /* parameters.app, .state */
#define CONTROL_ERROR_FAILED            "org.cella.Failed"           /* parameters.errno */
#define CONTROL_ERROR_BUSY              "org.cella.Busy"             /* too many clients */
#define CONTROL_ERROR_TIMEOUT           "org.cella.Timeout"          /* idle client dropped */
#define CONTROL_ERROR_OVERRUN           "org.cella.Overrun"          /* output bound reached */

/* Who may call a method: the peer's credentials (SO_PEERCRED + SO_PEERGROUPS) on a
 * public socket; on a kernel's run/<pid>.sock every peer is the kernel's own user
 * or root and may call everything. Ordered: a peer allowed a level is allowed every
 * later one. */
typedef enum ControlAccess {
        CONTROL_ACCESS_ROOT,   /* uid 0 only */
        CONTROL_ACCESS_MANAGE, /* uid 0, the daemon's own uid, or a member of group "cella" */
        CONTROL_ACCESS_READ,   /* MANAGE, plus the users/groups the daemon's configuration
                                  opens read-only methods to (control_set_readers()) */
        CONTROL_ACCESS_ANYONE, /* any peer that can connect (org.cella.Ping) */
} ControlAccess;

#define CONTROL_GROUP "cella" /* the group whose members may manage (CONTROL_ACCESS_MANAGE) */

typedef struct Control Control;
typedef struct ControlCall ControlCall; /* one request in flight; owned by Control */

typedef struct ControlMethod {
        const char *name; /* "org.cella.Start": [A-Za-z][A-Za-z0-9]* words joined by '.' */
        ControlAccess access;
        /* params: the request's "parameters" object (borrowed, valid during the call;
         * {} when absent). Reply now or later with control_reply*(): exactly one final
         * reply per call (a "oneway" request's reply is not sent, but still required:
         * it ends the call). Returning a negative errno without having replied sends
         * org.cella.Failed with that errno; a return value after a reply is ignored. */
        int (*call)(ControlCall *call, json_t *params, void *userdata);
} ControlMethod;

/*
 * A Control with no method and no socket, serving on loop (which must outlive it).
 * Computes the connection bound from RLIMIT_NOFILE now (see
 * CONTROL_CONNECTIONS_MAX): raise the limit first. Returns 0 and *ret (free with
 * control_close()), -EINVAL, -ENOMEM.
 */
int control_new(uv_loop_t *loop, Control **ret);

/*
 * Adds n methods, each called with userdata. The name strings and call pointers are
 * copied by reference: m's strings must outlive c (string literals). Returns 0,
 * -EINVAL (a NULL argument, a bad name or access level), -EEXIST (a name already
 * registered: nothing added), -ENOMEM.
 */
int control_add_methods(Control *c, const ControlMethod *m, size_t n, void *userdata);

/*
 * Opens read-only methods (CONTROL_ACCESS_READ) to the users uids[0..n_uids) and
 * the members of the groups gids[0..n_gids) (primary or supplementary), on the
 * public sockets; replaces the previous lists. Connections made before keep the
 * rights they were given. Returns 0, -EINVAL, -ENOMEM.
 */
int control_set_readers(Control *c, const uid_t *uids, size_t n_uids, const gid_t *gids,
                        size_t n_gids);

/*
 * Called for every request to a method of access CONTROL_ACCESS_MANAGE or
 * CONTROL_ACCESS_ROOT that the peer may call, before the method runs: method (its
 * name), peer (the connection's SO_PEERCRED), params (borrowed, {} when absent),
 * userdata. So that whoever changes something through the control API is on the
 * record (cellad writes it to the audit log). Not called for refused requests.
 */
typedef void (*ControlCallAudit)(const char *method, ControlAccess access, const struct ucred *peer,
                                 json_t *params, void *userdata);

/* Sets (or with NULL clears) c's ControlCallAudit. Returns 0 or -EINVAL. */
int control_set_call_audit(Control *c, ControlCallAudit fn, void *userdata);

/*
 * Listens on <state_dir>/run/<pid>.sock, the kernel's own socket: only its user and
 * root may connect (others are closed at accept), and they may call every method.
 * Creates state_dir (0711) and run/ (0700) if missing; refuses a run/ that is not a
 * directory owned by this process's euid (-EPERM) and tightens its mode to 0700.
 * First removes the sockets of kernels that are gone (their pid is dead and nothing
 * answers on the socket), and a socket left under this process's own pid. The
 * socket is bound under a temporary name and renamed into place once it listens, so
 * a client never finds a socket that refuses it while its kernel lives. At most one
 * per Control. Returns 0, -EINVAL, -EEXIST (already listening there), -EPERM, or
 * -errno of mkdir/socket/bind/listen/rename.
 */
int control_listen_kernel(Control *c, const char *state_dir);

/*
 * Listens on a public socket at path (mode 0666: who may call what is checked per
 * method): binds under "<path>.<pid>.tmp" and renames over path, so a stale socket
 * of a dead daemon is replaced (the caller holds the state dir's lock). The socket
 * is unlinked by control_close(). Returns 0, -EINVAL, -ENAMETOOLONG (path over 107
 * bytes), or -errno of socket/bind/chmod/listen/rename.
 */
int control_listen_path(Control *c, const char *path);

/*
 * Listens on fd, a listening AF_UNIX stream socket (systemd's socket unit:
 * sd_listen_fds()), public as control_listen_path(). Takes fd (closed by
 * control_close(), or on error). Makes it non-blocking; its close-on-exec flag is
 * left as the caller set it (a daemon that re-executes itself in place keeps
 * systemd's socket across the exec; a sandbox closes every fd it is not given).
 * Returns 0, -EINVAL (not a listening stream socket), -ENOMEM, or -errno.
 */
int control_listen_fd(Control *c, int fd);

/*
 * Serves fd, a connected AF_UNIX stream socket (one end of a socketpair() given to
 * a helper process, say), as a client of c. owner: the peer must be this
 * process's user or root (else -EPERM) and may call every method, as on
 * control_listen_kernel()'s socket; otherwise each method's rule is checked
 * against the peer's credentials (for a socketpair(), those of the process that
 * made it). Not counted against the connection bound. Takes fd (closed on error
 * or when the client goes). Returns 0, -EINVAL (not a stream socket), -EPERM,
 * -ENOMEM, or -errno.
 */
int control_serve_fd(Control *c, int fd, bool owner);

/*
 * Stops listening, unlinks the sockets it made, drops every client (the calls in
 * flight get their abort callback), and frees c once the loop has run the handles'
 * close callbacks: run the loop again before uv_loop_close() (which needs that
 * anyway). A call still in flight without an abort callback stays valid until its
 * final reply, which then goes nowhere. Takes NULL; returns NULL.
 */
Control *control_close(Control *c);

/* The kernel socket's path, "<state_dir>/run/<pid>.sock" (NULL if none). */
const char *control_path(const Control *c);

/* Clients connected now (for tests and `ps`). */
unsigned control_connections(const Control *c);

/* The connection bound computed by control_new() (see CONTROL_CONNECTIONS_MAX). */
unsigned control_connections_max(const Control *c);

/* --- replying (the method side) --- */

/*
 * The final reply of call: {"parameters": params} (params stolen; NULL means {}).
 * The call ends: call is freed (after this returns) and must not be used again.
 * Returns 0; -ECONNRESET when the client is gone (the reply is dropped, the call
 * still ends); -E2BIG when the line would be over CONTROL_OUTPUT_MAX (the client
 * gets org.cella.Failed with errno E2BIG instead); -EINVAL (NULL call).
 */
int control_reply(ControlCall *call, json_t *params);

/*
 * One reply of a "more" call that is not the last: {"parameters": params,
 * "continues": true} (params stolen). Returns 0; -EINVAL if the request did not ask
 * for more (nothing sent); -ECONNRESET if the client is gone; -ENOBUFS if the
 * client's queued output is over CONTROL_OUTPUT_MAX (a reader too slow for the
 * stream): it is sent org.cella.Overrun and closed, and the call is aborted. On
 * an error the method stops streaming: the call ends once the abort callback runs
 * (or, without one, with the method's control_reply*()).
 */
int control_reply_continues(ControlCall *call, json_t *params);

/*
 * The final reply of call as an error: {"error": error, "parameters": params}
 * (params stolen; NULL = {}; a "message" is added if params lacks one). error is
 * one of CONTROL_ERROR_*, or another dotted name. Ends the call as control_reply().
 */
int control_reply_error(ControlCall *call, const char *error, json_t *params);

/*
 * The final reply org.cella.Failed {"errno": -negative_errno, "message": message
 * or strerror}. Ends the call as control_reply().
 */
int control_reply_errno(ControlCall *call, int negative_errno, const char *message);

/*
 * org.cella.InvalidParameter {"parameter": name, "message": message}: the final
 * reply for a parameter missing, of the wrong type or out of range.
 */
int control_reply_invalid_parameter(ControlCall *call, const char *name, const char *message);

/* Whether the request asked for more replies ("more": true). */
bool control_call_more(const ControlCall *call);

/* The request's method name (borrowed: valid during the call). */
const char *control_call_method(const ControlCall *call);

/*
 * Bytes of replies queued for call's client and not yet taken by its socket (0
 * once the client is gone). A stream that can coalesce what it sends (a snapshot
 * of `ps --watch`) may skip a reply while this is high, rather than have its
 * client dropped at CONTROL_OUTPUT_MAX (control_reply_continues()).
 */
size_t control_call_queued(const ControlCall *call);

/* The peer's credentials (SO_PEERCRED, read at connect). */
const struct ucred *control_call_peer(const ControlCall *call);

/*
 * Takes the i-th descriptor the request carried (the caller owns it then). Only
 * while the method's call function runs: the ones not taken are closed when it
 * returns (not when a long call ends). Returns the fd, or -EBADF if the request
 * carried fewer, or it was taken already, or the call function has returned.
 */
int control_call_take_fd(ControlCall *call, unsigned i);

/* The number of descriptors the request carried (taken or not), while the method's
 * call function runs; 0 after. */
unsigned control_call_n_fds(const ControlCall *call);

/*
 * fn(call, ud) is called once if the client goes away (or is dropped, or the
 * Control closes) before the call's final reply: a stream stops then. call is freed
 * once fn returns; fn must not reply.
 */
void control_call_on_abort(ControlCall *call, void (*fn)(ControlCall *call, void *ud), void *ud);

/*
 * Reads an app id parameter: params[name] must be a string that is a valid app id
 * (manifest_id_is_valid, at most MANIFEST_ID_MAX bytes, no NUL). Returns the id
 * (borrowed from params), NULL with *ret_missing true when absent or null (the
 * caller decides if that is fine), or NULL after replying InvalidParameter (the call
 * has ended).
 */
const char *control_param_app(ControlCall *call, json_t *params, const char *name,
                              bool *ret_missing);

/* --- the request parser (pure; for the server and tests/fuzz/fuzz-control.c) --- */

typedef struct ControlRequest {
        json_t *root;       /* the request object (owned: free with control_request_done) */
        const char *method; /* borrowed from root */
        json_t *parameters; /* borrowed from root; an empty object when absent */
        bool more;
        bool oneway;
} ControlRequest;

/*
 * Parses one request line (len bytes, without its newline; need not be
 * NUL-terminated; a trailing '\r' and blanks around are fine). Pure: no I/O, no
 * global state. Accepts an object with "method" (a string: words of
 * [A-Za-z][A-Za-z0-9]* joined by '.', at least two, at most CONTROL_METHOD_MAX
 * bytes), and optionally "parameters" (an object, or null), "more" and "oneway"
 * (booleans, not both true); duplicate keys and other keys are refused.
 * Returns 0 and *ret (release with control_request_done()), or -EINVAL with
 * *ret_error set to a static message saying what is wrong, or -E2BIG for a line of
 * CONTROL_LINE_MAX bytes or more. *ret is written only on success.
 */
int control_request_parse(const char *line, size_t len, ControlRequest *ret,
                          const char **ret_error);

/* Releases what control_request_parse() gave; takes a zeroed request. */
void control_request_done(ControlRequest *req);

/* --- the client --- */

typedef struct ControlClient ControlClient;

/*
 * Connects (blocking) to the control socket at path, served by root or by our own
 * euid (control_server_trusted()). Returns 0 and *ret (free with
 * control_client_free()), -ENOENT / -ECONNREFUSED (nobody listens there), -EPERM
 * (another user serves it: a socket planted for us, refused before a byte is
 * sent), -ENAMETOOLONG, -ENOMEM, or -errno of socket/connect.
 */
int control_client_connect(const char *path, ControlClient **ret);

/*
 * Whether the server on fd (a connected Unix stream socket) may be trusted with a
 * request: its process, as SO_PEERCRED recorded it when it called listen(), runs as
 * root or as our euid (docs/security.md, "The control socket"). A client that sends
 * a bundle's fd, or shows a reply on a terminal, must not talk to a socket another
 * user bound, whoever owns the file or the folder it is in. Returns 0, -EPERM, or
 * -errno of getsockopt().
 */
int control_server_trusted(int fd);

/* Adopts fd, a connected stream socket (tests, socketpair()). Takes fd. */
int control_client_new_fd(int fd, ControlClient **ret);

/*
 * The reply timeout of cl's calls, in ms (0: wait forever, the default; a stream
 * that waits for events needs that). A call that gets no byte for timeout_ms fails
 * with -ETIMEDOUT.
 */
void control_client_set_timeout(ControlClient *cl, unsigned timeout_ms);

/*
 * Calls method with params (stolen; NULL = {}) and fds[0..n_fds) (at most
 * CONTROL_FDS_MAX; sent with the request's first byte; not closed), then calls
 * on_reply(reply, continues, ud) for each reply: reply is the whole reply object
 * (borrowed), {"parameters":{...}} or {"error":"...","parameters":{...}};
 * continues is true for each but the last of a "more" call. on_reply returning a
 * negative errno stops the call with it (the connection is then unusable: free it);
 * on_reply may be NULL. Returns 0 after a final reply that is not an error, 1 after
 * an error reply (the reply was given to on_reply), -ECONNRESET (the server closed
 * early), -EBADMSG (a reply that is not a JSON object or over CONTROL_REPLY_MAX),
 * -ETIMEDOUT, -E2BIG (request over CONTROL_LINE_MAX), -EINVAL, -ENOMEM, -errno.
 */
int control_client_call(ControlClient *cl, const char *method, json_t *params, const int *fds,
                        size_t n_fds, bool more,
                        int (*on_reply)(json_t *reply, bool continues, void *ud), void *ud);

/* Closes the connection. Takes NULL; returns NULL. */
ControlClient *control_client_free(ControlClient *cl);

static inline void control_client_freep(ControlClient **cl)
{
        control_client_free(*cl);
}
#define _cleanup_control_client_ __attribute__((cleanup(control_client_freep)))

/* The error name of a reply, or NULL for a successful one. */
const char *control_reply_error_name(const json_t *reply);

/* The reply's parameters (borrowed), or NULL if absent. */
json_t *control_reply_parameters(const json_t *reply);

/*
 * The sentence a person reads for an error reply: parameters.message, or the error
 * name when the server gave none. Borrowed from reply.
 */
const char *control_reply_message(const json_t *reply);

/* --- the CLI's visit of every kernel of a state directory --- */

/*
 * Calls method with params (borrowed: each kernel gets a copy) on every kernel with
 * a socket in <state_dir>/run, on all at once (CONTROL_ASK_BATCH at a time), and
 * waits at most timeout_ms (> 0) for all of them together: a batch polls every
 * socket at once, so N kernels take one timeout_ms, not N. Then, in pid order,
 * calls fn(pid, reply, ud) with each kernel's pid (from the socket's name) and its
 * reply (the whole reply object, borrowed: valid during the call; an error reply
 * too), and mute(pid, error, ud) (mute may be NULL) for each live kernel that did
 * not answer: its socket accepted (or its backlog was full, -EAGAIN) but no whole
 * reply came in time (-ETIMEDOUT), or it closed early (-ECONNRESET), or sent a bad
 * reply (-EBADMSG), or another -errno. A socket nobody listens on is no kernel:
 * removed when its pid is dead, skipped either way, and so is a socket gone
 * meanwhile. fn returning a negative errno stops the walk with that error. At most
 * CONTROL_KERNELS_MAX sockets are visited. Returns the number of kernels that
 * replied (0 when run/ does not exist), or -EACCES (run/ is not readable: not
 * root), -EINVAL, -ENOMEM, -E2BIG, -errno of poll(), or fn's error.
 */
int control_ask_kernels(const char *state_dir, const char *method, const json_t *params,
                        unsigned timeout_ms, int (*fn)(pid_t pid, json_t *reply, void *ud),
                        void (*mute)(pid_t pid, int error, void *ud), void *ud);

/*
 * control_ask_kernels() with timeout_ms CONTROL_CLIENT_TIMEOUT_MS and no mute
 * callback: a kernel that does not answer in time is left out silently, so a
 * command that shows what the kernels say uses control_ask_kernels().
 */
int control_each_kernel(const char *state_dir, const char *method, const json_t *params,
                        int (*fn)(pid_t pid, json_t *reply, void *ud), void *ud);

/*
 * Tells every kernel sharing state_dir that app_id's grants changed (app_id NULL:
 * any app's): org.cella.GrantsChanged {"app": app_id}. A state directory with no
 * kernel running is fine. Returns the number of kernels that replied without an
 * error, or a negative errno as control_each_kernel().
 */
int control_notify_grants_changed(const char *state_dir, const char *app_id);

/*
 * control_notify_grants_changed() from a kernel, on its loop: to every kernel sharing
 * state_dir but the caller's own (it re-reads its grants itself), and without waiting
 * for any: a "oneway" request line is written to each socket that accepts it at once
 * (the kernel reads a line before the hang-up) and no reply is read, so a busy
 * kernel, or two kernels telling each other at the same moment, never stall a loop.
 * Returns the number of kernels the line was written to, or a negative errno as
 * control_each_kernel().
 */
int control_notify_other_kernels(const char *state_dir, const char *app_id);

static inline void control_closep(Control **c)
{
        control_close(*c);
}
