/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libcella: the client library an app uses to call the cella kernel.
 *
 * An app reaches the kernel over one channel: a SOCK_SEQPACKET socket the kernel
 * hands it as fd 3 (CELLA_FD in the environment). cella_open() wraps it. Every call
 * below exists in two forms:
 *
 *   synchronous   cella_system_info(c, &info): sends the request and waits for its
 *                 own reply. Events and other replies that arrive meanwhile are
 *                 kept (at most CELLA_QUEUE_MAX) for the next cella_dispatch().
 *   asynchronous  cella_call_async(c, opcode, body, ...): sends, returns the
 *                 request id at once; the reply callback runs from cella_dispatch(),
 *                 in whatever order the kernel answers. Bodies are the protobuf
 *                 messages of proto/cella.proto. The calls that may wait on
 *                 someone else (a user prompt, another app) also have typed async
 *                 forms: cella_perm_request_async(), cella_bus_request_async().
 *
 * An event loop polls cella_fd() for POLLIN and then calls cella_dispatch() until
 * it returns 0. Do that also after any synchronous call: frames it queued do not
 * make the fd readable again.
 *
 * Errors: every function that can fail returns a negative errno (>= 0 on
 * success). Errors the kernel answers with (docs/protocol.md):
 *   -EACCES  the app's manifest asks for the right but it is not granted (now)
 *   -EPERM   the right can never be granted to this app
 *   -EAGAIN  rate-limited: try again later
 *   -EINVAL  a bad argument;  -EMSGSIZE  a payload over its limit
 *   -EOPNOTSUPP  the kernel does not know the call;  -EBUSY  over a quota
 * and local ones:
 *   -EBUSY        CELLA_MAX_PENDING requests are outstanding already
 *   -ECONNRESET, -EPIPE  the kernel closed the channel (every later call fails the same)
 *   -EPROTO, -EBADMSG, -EPROTONOSUPPORT, -EMSGSIZE  the kernel sent a malformed frame
 *                 (the channel is then unusable, as after a hangup)
 *   -ETIMEDOUT    a synchronous call passed cella_set_timeout()'s limit
 *   -ENOBUFS      a synchronous call could not keep more frames for cella_dispatch()
 *   -ENOMEM
 *
 * Output parameters are named ret_* and written only on success. Results that hold
 * strings or arrays are one allocation each: release them with cella_free().
 * A Cella is not thread-safe: use one per thread, or lock around it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CELLA_API __attribute__((visibility("default")))

/* Limits (bytes unless stated). The kernel enforces the same ones. */
#define CELLA_PROTOCOL_VERSION     1
#define CELLA_BODY_MAX             65536u /* body of one frame */
#define CELLA_FDS_MAX              16u    /* fds in one frame */
#define CELLA_MAX_PENDING          64u    /* outstanding requests of one Cella */
#define CELLA_QUEUE_MAX            1024u  /* frames kept for cella_dispatch() during a sync call */
#define CELLA_DISPATCH_MAX         64u    /* frames one cella_dispatch() handles */
#define CELLA_PAYLOAD_MAX          64512u /* bus and intent payloads (63 KiB) */
#define CELLA_ID_MAX               255u   /* app ids */
#define CELLA_TOPIC_MAX            255u   /* bus topics and patterns */
#define CELLA_CONTENT_TYPE_MAX     127u   /* MIME types */
#define CELLA_PERMISSION_MAX       255u   /* permission names with scope */
#define CELLA_REASON_MAX           1023u  /* perm request reasons */
#define CELLA_ROOT_MAX             63u    /* fs root names */
#define CELLA_PATH_MAX             4095u  /* fs paths */
#define CELLA_FS_LIST_MAX          256u   /* entries in one cella_fs_list() page */
#define CELLA_TITLE_MAX            255u   /* notification titles */
#define CELLA_TEXT_MAX             4095u  /* notification bodies */
#define CELLA_TAG_MAX              63u    /* notification tags */
#define CELLA_ACTION_MAX           127u   /* intent actions */
#define CELLA_BUS_BATCH_MAX        1024u  /* messages in one cella_bus_publish_batch() */
#define CELLA_BUS_BATCH_TOPICS_MAX 64u    /* distinct topics in one */

/* Opcodes: the frame header's opcode field (enum Opcode in proto/cella.proto). */
enum {
        CELLA_OP_SYSTEM_INFO = 0x0101,
        CELLA_OP_SYSTEM_TIME = 0x0102,
        CELLA_OP_SYSTEM_UPTIME = 0x0103,
        CELLA_OP_SYSTEM_ENV = 0x0104,
        CELLA_OP_PROC_LIST = 0x0201,
        CELLA_OP_PROC_SIGNAL = 0x0202,
        CELLA_OP_APP_INFO = 0x0301,
        CELLA_OP_APP_LAUNCH = 0x0302,
        CELLA_OP_FS_OPEN = 0x0401,
        CELLA_OP_FS_USAGE = 0x0402,
        CELLA_OP_FS_LIST = 0x0403,
        CELLA_OP_FS_STAT = 0x0404,
        CELLA_OP_FS_MKDIR = 0x0405,
        CELLA_OP_FS_RENAME = 0x0406,
        CELLA_OP_FS_UNLINK = 0x0407,
        CELLA_OP_TIMER_CREATE = 0x0501,
        CELLA_OP_TIMER_CANCEL = 0x0502,
        CELLA_OP_PERM_QUERY = 0x0601,
        CELLA_OP_PERM_REQUEST = 0x0602,
        CELLA_OP_PERM_LIST = 0x0603,
        CELLA_OP_NOTIFY_POST = 0x0701,
        CELLA_OP_MEMORY_STATS = 0x0801,
        CELLA_OP_BUS_PUBLISH = 0x0901,
        CELLA_OP_BUS_SUBSCRIBE = 0x0902,
        CELLA_OP_BUS_UNSUBSCRIBE = 0x0903,
        CELLA_OP_BUS_SEND = 0x0904,
        CELLA_OP_BUS_REQUEST = 0x0905,
        CELLA_OP_BUS_REPLY = 0x0906,
        CELLA_OP_BUS_PUBLISH_BATCH = 0x0907,
        CELLA_OP_NET_CONNECT = 0x0A01,
        CELLA_OP_CHANNEL_OPEN = 0x0D01,
        CELLA_OP_CHANNEL_ACCEPT = 0x0D02,
        CELLA_OP_CHANNEL_REFUSE = 0x0D03,
        CELLA_OP_CHANNEL_KERNEL_KEY = 0x0D04,
        CELLA_OP_IPC_PIPE_CREATE = 0x0B01,
        CELLA_OP_IPC_SHM_CREATE = 0x0B02,
        CELLA_OP_IPC_SHM_OPEN = 0x0B03,
        CELLA_OP_IPC_ACCEPT = 0x0B04,
        CELLA_OP_IPC_PASS = 0x0B05,
        CELLA_OP_IPC_CLOSE = 0x0B06,
        CELLA_OP_IPC_LIST = 0x0B07,
        CELLA_OP_IPC_OFFER = 0x0B08,
        CELLA_EVENT_TIMER_FIRED = 0x8001,
        CELLA_EVENT_BUS_MESSAGE = 0x8002,
        CELLA_EVENT_PERM_REVOKED = 0x8003,
        CELLA_EVENT_MEMORY_PRESSURE = 0x8004,
        /* The same event by issue 13's name: the kernel asks the app to trim
         * (cella_on_trim()). */
        CELLA_EVENT_TRIM_MEMORY = 0x8004,
        /* Several bus messages in one frame. libcella splits it: the event callback
         * sees each message as its own CELLA_EVENT_BUS_MESSAGE, in order; only a
         * frame that does not decode reaches it as this opcode, decoded = false. */
        CELLA_EVENT_BUS_MESSAGES = 0x8005,
        /* The kernel restarted under the app (docs/daemon.md, "What an app sees").
         * Before the event callback sees it, every call the app was waiting for
         * has failed with -ECONNRESET (CELLA_E_KERNEL_RESTARTED is its message):
         * it may or may not have been done. Timers, bus subscriptions, handles and
         * one-time grants the old kernel kept are gone: make them again. */
        CELLA_EVENT_KERNEL_RESTARTED = 0x8006,
        /* Another app asks for a secure channel (cella_channel_accept()). */
        CELLA_EVENT_CHANNEL_REQUEST = 0x8010,
        /* A request announced by CELLA_EVENT_CHANNEL_REQUEST is gone. */
        CELLA_EVENT_CHANNEL_CANCELLED = 0x8011,
        /* A pipe's other end or a passed ipc handle waits for cella_ipc_accept(). */
        CELLA_EVENT_IPC_OFFERED = 0x8007,
        /* The kernel closed one of the app's ipc handles (revoked, destroyed, peer
         * gone); the fd stays the app's: docs/ipc.md "Revocation". */
        CELLA_EVENT_IPC_CLOSED = 0x8008,
};

/* The error message of a call failed by CELLA_EVENT_KERNEL_RESTARTED (its error:
 * -ECONNRESET). */
#define CELLA_E_KERNEL_RESTARTED "the kernel restarted; the call may or may not have been done"

typedef enum CellaPermState {
        CELLA_PERM_NOT_REQUESTED = 1, /* not in the manifest: can never be granted */
        CELLA_PERM_GRANTED = 2,
        CELLA_PERM_DENIED = 3,
        CELLA_PERM_ASK = 4, /* dangerous, undecided: cella_perm_request() prompts */
} CellaPermState;

typedef enum CellaPermLevel {
        CELLA_PERM_LEVEL_NORMAL = 1,    /* granted at install */
        CELLA_PERM_LEVEL_DANGEROUS = 2, /* needs the user */
        CELLA_PERM_LEVEL_SIGNATURE = 3, /* signed system apps only */
} CellaPermLevel;

typedef enum CellaUrgency {
        CELLA_URGENCY_NORMAL = 0,
        CELLA_URGENCY_LOW = 1,
        CELLA_URGENCY_CRITICAL = 2,
} CellaUrgency;

typedef enum CellaMemoryLevel {
        CELLA_MEMORY_NORMAL = 0,
        CELLA_MEMORY_LOW = 1,      /* trim caches */
        CELLA_MEMORY_MEDIUM = 2,   /* trim hard; background apps get frozen next */
        CELLA_MEMORY_CRITICAL = 3, /* free what you can; background apps get killed next */
} CellaMemoryLevel;

typedef struct Cella Cella;

/* A reply, as the async callbacks and cella_call() see it. */
typedef struct CellaReply {
        uint64_t request_id;       /* the id cella_call_async() returned */
        uint16_t opcode;           /* the request's opcode */
        int error;                 /* 0, or a negative errno: the kernel's error reply,
                                    * or -ECONNRESET/-EPIPE/... if the channel broke first */
        const char *error_message; /* the kernel's reason with error ("" if none); never NULL */
        const void *body;          /* the XReply protobuf body; NULL with error */
        size_t body_len;           /* bytes */
        int fds[CELLA_FDS_MAX];    /* fds that came with it (O_CLOEXEC); -1 once taken */
        unsigned n_fds;
} CellaReply;

/*
 * Called from cella_dispatch() with the reply to a request, or with reply->error
 * set if the channel broke before it came. reply and its fds belong to libcella and
 * are released after the callback returns: keep an fd with cella_reply_take_fd().
 * The callback may make calls, including synchronous ones and cella_cancel().
 */
typedef void (*CellaReplyFn)(Cella *c, CellaReply *reply, void *userdata);

/* An event from the kernel. Pointers are valid only during the callback. */
typedef struct CellaEvent {
        uint16_t opcode;  /* CELLA_EVENT_* (or one newer than this library) */
        bool decoded;     /* false: unknown opcode or undecodable body; only
                           * body/body_len are set, the union is not */
        const void *body; /* the raw protobuf body */
        size_t body_len;  /* bytes */
        union {
                struct {
                        uint64_t timer_id;    /* from cella_timer_create() */
                        uint64_t cookie;      /* given at creation */
                        uint64_t expirations; /* firings since the last event, >= 1 */
                        int64_t monotonic_ns; /* CLOCK_MONOTONIC at firing, ns */
                } timer;                      /* CELLA_EVENT_TIMER_FIRED */
                struct {
                        uint64_t subscription_id; /* 0: direct message or request */
                        const char *topic;        /* "" for direct messages */
                        const char *sender;       /* sender's app id */
                        const void *data;         /* payload, len bytes */
                        size_t len;
                        const char *content_type; /* MIME type, may be "" */
                        uint64_t reply_token;     /* > 0: answer with cella_bus_reply() */
                } bus; /* CELLA_EVENT_BUS_MESSAGE, also for each message of a batched
                        * frame (then body/body_len are that message's own
                        * BusMessageEvent encoding, inside the frame) */
                struct {
                        const char *permission; /* with scope */
                        const char *reason;
                } perm_revoked; /* CELLA_EVENT_PERM_REVOKED */
                struct {
                        CellaMemoryLevel level;
                        uint64_t current_bytes; /* the app's memory in use */
                        uint64_t limit_bytes;   /* its limit; 0 = none */
                } memory;                       /* CELLA_EVENT_MEMORY_PRESSURE */
                struct {
                        int64_t adopted_ms; /* wall clock of the adoption, ms */
                } kernel_restarted;         /* CELLA_EVENT_KERNEL_RESTARTED */
                struct {
                        uint64_t token;            /* for cella_channel_accept() / _refuse() */
                        const char *app_id;        /* the opener, as the kernel knows it */
                        const uint8_t *public_key; /* its X25519 key, 32 bytes */
                        const char *purpose;       /* what it says the channel is for; may be "" */
                        bool plaintext;            /* it asks for no encryption */
                } channel_request;                 /* CELLA_EVENT_CHANNEL_REQUEST */
                struct {
                        uint64_t token;
                        int error;   /* why, a negative errno: -ECANCELED, -ETIMEDOUT, ... */
                } channel_cancelled; /* CELLA_EVENT_CHANNEL_CANCELLED */
                struct {
                        uint64_t token;      /* for cella_ipc_accept() */
                        int kind;            /* CellaIpcKind */
                        const char *name;    /* the object's full name */
                        uint32_t modes;      /* CELLA_IPC_READ / CELLA_IPC_WRITE bits */
                        const char *from;    /* the app that made the pipe or passed it */
                        uint32_t expires_ms; /* accept within this long */
                } ipc_offered;               /* CELLA_EVENT_IPC_OFFERED */
                struct {
                        uint64_t handle;    /* the handle the kernel closed */
                        const char *reason; /* "revoked", "destroyed", "peer-gone" */
                } ipc_closed;               /* CELLA_EVENT_IPC_CLOSED */
        };
} CellaEvent;

/* Called from cella_dispatch() with each event, in the order the kernel sent them. */
typedef void (*CellaEventFn)(Cella *c, const CellaEvent *event, void *userdata);

/* ---- the channel ------------------------------------------------------------- */

/*
 * Opens the app's channel: the fd named by $CELLA_FD (a decimal number; 3 if
 * unset), which must be an AF_UNIX SOCK_SEQPACKET socket. Marks it close-on-exec
 * (a child program must not speak on the app's channel) and owns it from then on.
 * Returns 0 and *ret (release with cella_close()), or -EINVAL ($CELLA_FD is not a
 * number), -EBADF (no such fd), -ENOTSOCK (not a socket), -EPROTOTYPE (not AF_UNIX
 * SOCK_SEQPACKET), -ENOMEM.
 */
CELLA_API int cella_open(Cella **ret);

/*
 * As cella_open(), on a given fd (e.g. one end of a socketpair). On success the
 * Cella owns fd; on failure the caller still does.
 */
CELLA_API int cella_open_fd(int fd, Cella **ret);

/*
 * Closes the channel and frees c. Callbacks of requests still outstanding are not
 * called; fds in queued replies are closed. Takes NULL; returns NULL.
 */
CELLA_API Cella *cella_close(Cella *c);

/* The channel's fd, for the app's own poll loop (POLLIN -> cella_dispatch()). */
CELLA_API int cella_fd(Cella *c);

/*
 * Sets how long synchronous calls wait for their reply, in milliseconds; 0 (the
 * default) waits forever. A call that times out cancels its request and returns
 * -ETIMEDOUT. Returns 0.
 */
CELLA_API int cella_set_timeout(Cella *c, uint64_t timeout_ms);

/* Sets the event callback (NULL: events are dropped). Returns 0. */
CELLA_API int cella_on_event(Cella *c, CellaEventFn cb, void *userdata);

/*
 * Called from cella_dispatch() when the kernel asks the app to trim its memory
 * (CELLA_EVENT_TRIM_MEMORY, event.memory_pressure: docs/memory.md "Actions",
 * docs/protocol.md): the app's chance to drop caches, free pools, compact. level:
 * CELLA_MEMORY_LOW (1, the memory manager's "moderate": trim caches),
 * CELLA_MEMORY_MEDIUM (2, "low": trim hard, background apps are frozen next),
 * CELLA_MEMORY_CRITICAL (3, "critical": free what you can, apps are killed next),
 * as Android's onTrimMemory(TRIM_MEMORY_RUNNING_MODERATE / _LOW / _CRITICAL).
 * current_bytes: the app's memory in use; limit_bytes: its limit (0: none).
 */
typedef void (*CellaTrimFn)(Cella *c, CellaMemoryLevel level, uint64_t current_bytes,
                            uint64_t limit_bytes, void *userdata);

/*
 * Sets the trim handler (NULL: none). It runs before the event callback, which
 * still sees the event. Returns 0, -EINVAL for a NULL c.
 */
CELLA_API int cella_on_trim(Cella *c, CellaTrimFn cb, void *userdata);

/*
 * Handles what is ready without blocking: first the frames a synchronous call
 * kept, then what the socket holds, at most CELLA_DISPATCH_MAX frames. Calls the
 * reply callback of each reply (matched by request id, in arrival order) and the
 * event callback of each event. Replies to cancelled or unknown requests are
 * dropped (their fds closed).
 * Returns the number of frames handled (0: nothing was ready; call again while it
 * is > 0), or a negative errno if the channel broke (-ECONNRESET on hangup, -EPROTO
 * etc. on a malformed frame): every outstanding request's callback is then called
 * once with that error, and every later call returns it.
 */
CELLA_API int cella_dispatch(Cella *c);

/*
 * Waits until cella_dispatch() has something to do, at most timeout_ms
 * milliseconds (-1: forever, 0: just check). Returns 1 if it has, 0 on timeout,
 * or a negative errno (-EINTR if a signal came).
 */
CELLA_API int cella_wait(Cella *c, int timeout_ms);

/* ---- generic calls ----------------------------------------------------------- */

/*
 * Sends request opcode with body (len bytes, a protobuf message of
 * proto/cella.proto, at most CELLA_BODY_MAX) and n_fds fds from fds[] (at most
 * CELLA_FDS_MAX; the caller keeps its copies). Does not block: cb runs from a
 * later cella_dispatch() with the reply (cb may be NULL: the reply is dropped).
 * Returns 0 and *ret_request_id (> 0, may be NULL), or -EBUSY (CELLA_MAX_PENDING
 * requests outstanding), -EMSGSIZE (body too large), -E2BIG (too many fds),
 * -EINVAL (opcode 0 or an event opcode), -EAGAIN (the socket's send buffer is
 * full: dispatch, then retry), -ECONNRESET/-EPIPE (channel broken).
 */
CELLA_API int cella_call_async(Cella *c, uint16_t opcode, const void *body, size_t len,
                               const int *fds, unsigned n_fds, CellaReplyFn cb, void *userdata,
                               uint64_t *ret_request_id);

/*
 * Sends a request as cella_call_async() does and waits for its reply (see
 * cella_set_timeout()). Returns 0 and *ret, the reply (release with
 * cella_reply_free()); a kernel error is in (*ret)->error, not the return value.
 * Or: the errors of cella_call_async() (but it blocks instead of -EAGAIN),
 * -ETIMEDOUT, -ENOBUFS, or a channel error.
 */
CELLA_API int cella_call(Cella *c, uint16_t opcode, const void *body, size_t len, const int *fds,
                         unsigned n_fds, CellaReply **ret);

/* Frees a reply from cella_call(), closing the fds not taken. Takes NULL; returns NULL. */
CELLA_API CellaReply *cella_reply_free(CellaReply *reply);

/*
 * Takes fd number i of reply: returns it (the caller owns it now) and marks it
 * taken, or -EBADF if there is none (i >= n_fds, or taken already).
 */
CELLA_API int cella_reply_take_fd(CellaReply *reply, unsigned i);

/*
 * Cancels an outstanding request: tells the kernel to abandon it and forgets it;
 * its callback will not be called. Returns 0, or -ENOENT (no such outstanding
 * request: answered, cancelled, or never sent), or a channel error.
 */
CELLA_API int cella_cancel(Cella *c, uint64_t request_id);

/* The protocol name of an opcode ("fs.open", "event.timer_fired"), or NULL if unknown. */
CELLA_API const char *cella_opcode_name(uint16_t opcode);

/* Frees a result of the calls below (one allocation). Takes NULL. */
CELLA_API void cella_free(void *p);

/* ---- system ------------------------------------------------------------------ */

typedef struct CellaSystemInfo {
        const char *cella_version; /* "0.1.0" */
        const char *os_name;       /* "Linux" */
        const char *os_release;    /* uname -r */
        const char *machine;       /* uname -m */
        uint32_t cpu_count;        /* CPUs the app may use */
        uint64_t memory_total_bytes;
        uint64_t memory_available_bytes;
} CellaSystemInfo;

/* What the app may know about the machine. Returns 0 and *ret (cella_free()). */
CELLA_API int cella_system_info(Cella *c, CellaSystemInfo **ret);

typedef struct CellaTime {
        int64_t realtime_ns;  /* ns since 1970-01-01 UTC */
        int64_t monotonic_ns; /* CLOCK_MONOTONIC, ns */
        int32_t utc_offset_s; /* the user's local offset from UTC, seconds east */
} CellaTime;

/* The kernel's clocks. Returns 0 and fills *ret. */
CELLA_API int cella_system_time(Cella *c, CellaTime *ret);

typedef struct CellaUptime {
        uint64_t system_ns; /* since the machine booted */
        uint64_t kernel_ns; /* since the cella kernel started */
        uint64_t app_ns;    /* since this app started */
} CellaUptime;

/* Uptimes, in nanoseconds. Returns 0 and fills *ret. */
CELLA_API int cella_system_uptime(Cella *c, CellaUptime *ret);

/*
 * The environment the kernel built for the app: a NULL-terminated array of
 * "NAME=value" strings. Returns 0 and *ret (cella_free()).
 */
CELLA_API int cella_system_env(Cella *c, char ***ret);

/* ---- proc -------------------------------------------------------------------- */

typedef struct CellaProcess {
        int32_t pid;        /* as the app sees it */
        int32_t ppid;       /* 0 for the app's first process */
        const char *name;   /* comm, <= 15 bytes */
        char state;         /* 'R', 'S', 'D', 'Z', 'T', ... */
        uint64_t rss_bytes; /* resident memory */
        uint64_t cpu_time_ns;
        uint64_t start_time_ns; /* CLOCK_BOOTTIME at start */
} CellaProcess;

typedef struct CellaCgroupStats { /* a limit of 0 means none */
        uint64_t memory_current_bytes;
        uint64_t memory_limit_bytes;
        uint64_t pids_current;
        uint64_t pids_limit;
        uint64_t cpu_usage_ns;
        uint32_t cpu_weight;       /* 1..10000 */
        uint32_t cpu_quota_millis; /* thousandths of a CPU */
} CellaCgroupStats;

typedef struct CellaProcList {
        CellaCgroupStats cgroup;
        size_t n_processes;
        CellaProcess *processes;
} CellaProcList;

/* The app's own processes and its cgroup's statistics. Returns 0 and *ret (cella_free()). */
CELLA_API int cella_proc_list(Cella *c, CellaProcList **ret);

/*
 * Sends signal (1..64) to the app's own process pid (as the app sees it).
 * Returns 0, or -EINVAL (bad signal or pid <= 0), -ESRCH (no such process of the app).
 */
CELLA_API int cella_proc_signal(Cella *c, int pid, int signal);

/* ---- app --------------------------------------------------------------------- */

typedef struct CellaAppLimits { /* 0 means no limit */
        uint64_t memory_bytes;
        uint64_t pids;
        uint32_t cpu_millis; /* thousandths of a CPU */
        uint64_t files;
        uint64_t storage_bytes;
        uint64_t tmp_bytes;
} CellaAppLimits;

typedef struct CellaAppInfo {
        const char *id;
        const char *name;
        const char *version;
        const char *kind;    /* "app" or "service" */
        const char *runtime; /* "native" or "lua" */
        char **requested;    /* NULL-terminated: permissions the manifest asks for */
        char **granted;      /* NULL-terminated: those granted now */
        CellaAppLimits limits;
} CellaAppInfo;

/* The calling app's own record. Returns 0 and *ret (cella_free()). */
CELLA_API int cella_app_info(Cella *c, CellaAppInfo **ret);

/*
 * Launches app app_id (1..CELLA_ID_MAX bytes) with an intent: action (<=
 * CELLA_ACTION_MAX bytes, may be NULL), a payload of len bytes (<= CELLA_PAYLOAD_MAX)
 * and its content_type (<= CELLA_CONTENT_TYPE_MAX, may be NULL). If the app runs
 * already it gets the intent. Needs the right app.launch:<id>.
 * Returns 0 (started), 1 (was running; intent delivered), or -EACCES, -EPERM,
 * -ENOENT (no such app), -EINVAL, -EMSGSIZE, -EAGAIN.
 */
CELLA_API int cella_app_launch(Cella *c, const char *app_id, const char *action, const void *data,
                               size_t len, const char *content_type);

/* ---- net (docs/network.md) ------------------------------------------------------ */

typedef enum CellaNetProto {
        CELLA_NET_TCP = 1,
        CELLA_NET_UDP = 2,
} CellaNetProto;

/* What cella_net_connect() tells besides the fd. */
typedef struct CellaNetInfo {
        char address[64];       /* the address connected to, numeric ("203.0.113.7") */
        char right[256];        /* the right that allowed it ("net.connect:example.com:443") */
        uint64_t connection_id; /* per app, from 1; names it in the audit log */
        char why[512];          /* on failure: the kernel's reason ("" if none) */
} CellaNetInfo;

/*
 * Connects to host (a DNS name, or an address: IPv4, IPv6 with or without
 * brackets) and port (1..65535) through the kernel, under the right
 * "net.connect:<host>:<port>" (docs/network.md). The kernel resolves the name once,
 * checks every address (loopback, private, link-local, metadata and the other
 * addresses of docs/network.md's table are reached only with a right naming that
 * exact address and port), connects and relays. The fd is the app's end of that
 * relay, O_CLOEXEC: a connected AF_UNIX SOCK_STREAM socket for CELLA_NET_TCP
 * (read, write, shutdown(SHUT_WR) are passed on), a SOCK_SEQPACKET one for
 * CELLA_NET_UDP (each send one datagram, each recv one); never a socket of the host
 * network. info may be NULL. Returns the fd, or -EINVAL (bad host, port or proto),
 * -EACCES (not granted), -EPERM (not requested, or an address no right reaches),
 * -ENOENT (the name does not resolve), -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH,
 * -EMFILE (the app's connection limit), -EAGAIN (its rate of new connections);
 * info->why then says why.
 */
CELLA_API int cella_net_connect(Cella *c, const char *host, unsigned port, CellaNetProto proto,
                                CellaNetInfo *info);

/* ---- fs ---------------------------------------------------------------------- */

/*
 * The calls on a granted root (e.g. "documents": rights fs.read:<root> to read and
 * list, fs.write:<root> to create, change, rename and remove) name a file by root
 * and a relative path (1..CELLA_PATH_MAX bytes). The kernel resolves the path
 * beneath the root every time (openat2 RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
 * RESOLVE_NO_XDEV: neither "..", an absolute path, a symlink leading out, nor a
 * mount point gets out) and acts with the permissions of the user who owns the
 * root, never more. Errors they share: -EINVAL (bad argument), -EACCES (right not
 * granted, or the root's owner may not do it), -EPERM (no such root for apps),
 * -EXDEV (the path leaves the root or crosses a mount), -ELOOP (a procfs magic
 * link), -ENOENT, -ENOTDIR, -EAGAIN (rate-limited). docs/protocol.md "Files beneath a
 * granted root".
 */

/*
 * Opens the regular file root/path and passes it to the app. flags: O_RDONLY,
 * O_WRONLY or O_RDWR, optionally | O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_CLOEXEC
 * (always set anyway); never O_DIRECTORY: directories are not passed (an fd of one
 * would reach its parents), list them with cella_fs_list(). mode: permission bits
 * for O_CREAT (<= 0777; execute bits dropped). Returns 0 and *ret_fd (O_CLOEXEC,
 * the caller's), or the errors above and -EEXIST, -EISDIR (a directory), -ENXIO (a
 * FIFO, socket or device: never opened).
 */
CELLA_API int cella_fs_open(Cella *c, const char *root, const char *path, int flags, unsigned mode,
                            int *ret_fd);

typedef enum CellaFsType {
        CELLA_FS_UNKNOWN = 0,
        CELLA_FS_REGULAR = 1,
        CELLA_FS_DIRECTORY = 2,
        CELLA_FS_SYMLINK = 3, /* the link itself */
        CELLA_FS_OTHER = 4,   /* FIFO, socket or device node */
} CellaFsType;

typedef struct CellaFsEntry {
        const char *name; /* 1..255 bytes */
        CellaFsType type;
        uint64_t size_bytes; /* st_size (a symlink: its target's length); 0 for OTHER */
        int64_t mtime_ns;    /* last modification, ns since 1970-01-01 UTC */
} CellaFsEntry;

typedef struct CellaFsList {
        size_t n_entries;
        CellaFsEntry *entries;
        uint64_t next_cookie; /* pass to the next call */
        bool end;             /* no entries after these */
        uint32_t skipped;     /* entries of this page left out: name not UTF-8 */
} CellaFsList;

/*
 * Lists one page of directory root/path ("." is the root): at most max_entries
 * (0..CELLA_FS_LIST_MAX; 0 means CELLA_FS_LIST_MAX) entries and about 48 KiB of
 * them, in the directory's order, without "." and "..", symlinks not followed.
 * cookie: 0 for the first page, then the previous page's next_cookie, until end.
 * Needs fs.read:<root>. Returns 0 and *ret (cella_free()), or the errors above
 * (-EINVAL also for a cookie that is not one of this directory's).
 */
CELLA_API int cella_fs_list(Cella *c, const char *root, const char *path, uint64_t cookie,
                            unsigned max_entries, CellaFsList **ret);

typedef struct CellaFsStat {
        CellaFsType type;
        uint32_t mode; /* permission bits, st_mode & 07777 */
        uint64_t size_bytes;
        int64_t mtime_ns;
} CellaFsStat;

/*
 * Describes root/path ("." is the root). flags: 0, or AT_SYMLINK_NOFOLLOW to
 * describe a last-component symlink itself. Needs fs.read:<root>. Returns 0 and
 * fills *ret, or the errors above.
 */
CELLA_API int cella_fs_stat(Cella *c, const char *root, const char *path, int flags,
                            CellaFsStat *ret);

/*
 * Makes directory root/path (its parent must exist) with permission bits mode (<=
 * 0777, masked by the kernel's umask); it belongs to the root's owner. Needs
 * fs.write:<root>. Returns 0, or the errors above and -EEXIST.
 */
CELLA_API int cella_fs_mkdir(Cella *c, const char *root, const char *path, unsigned mode);

#define CELLA_FS_RENAME_NOREPLACE 0x1u /* -EEXIST if new_path exists */
#define CELLA_FS_RENAME_EXCHANGE  0x2u /* swap the two; both must exist */

/*
 * Renames root/old_path to root/new_path, both beneath the same root: rename(2),
 * replacing an existing new_path unless flags is CELLA_FS_RENAME_NOREPLACE;
 * CELLA_FS_RENAME_EXCHANGE swaps the two. Needs fs.write:<root>. Returns 0, or the
 * errors above and -EEXIST, -ENOTEMPTY, -EISDIR, -EINVAL (a directory into itself,
 * or a last component "." or "..").
 */
CELLA_API int cella_fs_rename(Cella *c, const char *root, const char *old_path,
                              const char *new_path, unsigned flags);

/*
 * Removes root/path: a file, a symlink (never its target) or an empty directory; a
 * trailing "/" removes a directory only. Needs fs.write:<root>. Returns 0, or the
 * errors above and -ENOTEMPTY.
 */
CELLA_API int cella_fs_unlink(Cella *c, const char *root, const char *path);

typedef struct CellaFsUsage { /* bytes; a quota of 0 means none */
        uint64_t data_used_bytes;
        uint64_t data_quota_bytes;
        uint64_t tmp_used_bytes;
        uint64_t tmp_quota_bytes;
} CellaFsUsage;

/* Storage used by the app's /data and /tmp, and their quotas. Returns 0 and fills *ret. */
CELLA_API int cella_fs_usage(Cella *c, CellaFsUsage *ret);

/* ---- timer ------------------------------------------------------------------- */

/*
 * Creates a kernel timer: CELLA_EVENT_TIMER_FIRED first after initial_ms
 * milliseconds (0: at once), then every interval_ms (0: one-shot). cookie is
 * echoed in every event. Returns 0 and *ret_timer_id (> 0), or -EINVAL, -EBUSY
 * (64 timers already), -EAGAIN.
 */
CELLA_API int cella_timer_create(Cella *c, uint64_t initial_ms, uint64_t interval_ms,
                                 uint64_t cookie, uint64_t *ret_timer_id);

/* Stops a timer. Returns 0, or -ENOENT (unknown, or a one-shot that fired). */
CELLA_API int cella_timer_cancel(Cella *c, uint64_t timer_id);

/* ---- perm -------------------------------------------------------------------- */

/*
 * The state of permission (with optional scope, 1..CELLA_PERMISSION_MAX bytes),
 * without prompting. Returns 0 and *ret_state, or -EINVAL.
 */
CELLA_API int cella_perm_query(Cella *c, const char *permission, CellaPermState *ret_state);

/*
 * Asks for permission; a dangerous one not decided yet prompts the user with
 * reason (<= CELLA_REASON_MAX bytes, may be NULL), and this waits for the answer
 * (use the async form in an event loop). Returns 0 and *ret_state
 * (CELLA_PERM_GRANTED or CELLA_PERM_DENIED) and, if ret_one_time is not NULL,
 * whether the grant ends with the app; or -EPERM (not in the manifest, or a
 * signature permission), -EINVAL, -EAGAIN (prompted too often).
 */
CELLA_API int cella_perm_request(Cella *c, const char *permission, const char *reason,
                                 CellaPermState *ret_state, bool *ret_one_time);

/* Async form of cella_perm_request(): as cella_call_async(); decode with the next one. */
CELLA_API int cella_perm_request_async(Cella *c, const char *permission, const char *reason,
                                       CellaReplyFn cb, void *userdata, uint64_t *ret_request_id);

/* Decodes a perm.request reply: as cella_perm_request(); -EBADMSG if it does not decode. */
CELLA_API int cella_perm_request_result(const CellaReply *reply, CellaPermState *ret_state,
                                        bool *ret_one_time);

typedef struct CellaPermEntry {
        const char *permission;
        CellaPermState state;
        CellaPermLevel level;
        bool one_time;
} CellaPermEntry;

typedef struct CellaPermList {
        size_t n_entries;
        CellaPermEntry *entries;
} CellaPermList;

/* The permissions the manifest asks for, with their state. Returns 0 and *ret (cella_free()). */
CELLA_API int cella_perm_list(Cella *c, CellaPermList **ret);

/* ---- notify ------------------------------------------------------------------ */

/*
 * Posts a notification: title (1..CELLA_TITLE_MAX bytes), body (<= CELLA_TEXT_MAX,
 * may be NULL), urgency, tag (<= CELLA_TAG_MAX, may be NULL: a post with the same
 * tag replaces the earlier one). Needs the right "notify". Returns 0 and, if
 * ret_notification_id is not NULL, its id; or -EACCES, -EINVAL, -EAGAIN.
 */
CELLA_API int cella_notify_post(Cella *c, const char *title, const char *body, CellaUrgency urgency,
                                const char *tag, uint64_t *ret_notification_id);

/* ---- memory ------------------------------------------------------------------ */

typedef struct CellaMemoryStats { /* bytes; a limit of 0 means none */
        uint64_t current_bytes;
        uint64_t limit_bytes;
        uint64_t peak_bytes;
        uint64_t swap_bytes;
        uint64_t anon_bytes;
        uint64_t file_bytes;
        CellaMemoryLevel level;
        uint32_t pressure_some_avg10; /* PSI some avg10, hundredths of a percent */
} CellaMemoryStats;

/* The app's own memory, from its cgroup. Returns 0 and fills *ret. */
CELLA_API int cella_memory_stats(Cella *c, CellaMemoryStats *ret);

/* ---- bus --------------------------------------------------------------------- */

/*
 * Publishes data (len <= CELLA_PAYLOAD_MAX bytes) with content_type (<=
 * CELLA_CONTENT_TYPE_MAX, may be NULL) on topic (1..CELLA_TOPIC_MAX bytes).
 * Returns the number of subscribers it was queued for (>= 0), or -EACCES (no
 * bus.publish right for the topic), -EINVAL, -EMSGSIZE, -EAGAIN.
 */
CELLA_API int cella_bus_publish(Cella *c, const char *topic, const void *data, size_t len,
                                const char *content_type);

/*
 * Messages of one cella_bus_publish_batch(), each as cella_bus_publish() takes it:
 * topic 1..CELLA_TOPIC_MAX bytes; data of len bytes (<= CELLA_PAYLOAD_MAX; NULL only
 * with len 0); content_type <= CELLA_CONTENT_TYPE_MAX bytes, or NULL.
 */
typedef struct CellaBusMessage {
        const char *topic;
        const void *data;
        size_t len;
        const char *content_type;
} CellaBusMessage;

/*
 * Publishes msgs[0..n) in one call, in order: 1..CELLA_BUS_BATCH_MAX messages, at
 * most CELLA_BUS_BATCH_TOPICS_MAX distinct topics, and the whole request within
 * CELLA_BODY_MAX (cella_bus_batch_fit() says how many messages fit). All or nothing:
 * if any topic lacks its bus.publish right, nothing is published and the kernel's
 * error names that topic. One audit record and one rate-limit token for the call.
 * Returns 0 and, if ret_delivered is not NULL, the sum over the messages of the
 * subscribers each was queued for; or -EINVAL (n is 0 or over the bounds, a bad
 * topic or content type), -EMSGSIZE (a payload over CELLA_PAYLOAD_MAX, or the batch
 * over CELLA_BODY_MAX), -EACCES / -EPERM (a topic not granted / never grantable),
 * -EAGAIN, -ENOMEM (in the kernel: the first messages may have been published).
 */
CELLA_API int cella_bus_publish_batch(Cella *c, const CellaBusMessage *msgs, size_t n,
                                      uint64_t *ret_delivered);

/* Async form of cella_bus_publish_batch(): checks and packs msgs (the caller may
 * reuse them on return), sends as cella_call_async(); decode with the next one. */
CELLA_API int cella_bus_publish_batch_async(Cella *c, const CellaBusMessage *msgs, size_t n,
                                            CellaReplyFn cb, void *userdata,
                                            uint64_t *ret_request_id);

/* Decodes a bus.publish_batch reply: 0 and *ret_delivered (may be NULL), or the
 * errors of cella_bus_publish_batch(); -EBADMSG if it does not decode. */
CELLA_API int cella_bus_publish_batch_result(const CellaReply *reply, uint64_t *ret_delivered);

/*
 * How many of msgs[0..n), from the first, fit one cella_bus_publish_batch(): at most
 * CELLA_BUS_BATCH_MAX, and as many as fit CELLA_BODY_MAX once encoded. 0 if n is 0 or
 * msgs[0] alone is too large. Does not check the messages' fields (the call does).
 */
CELLA_API size_t cella_bus_batch_fit(const CellaBusMessage *msgs, size_t n);

/*
 * Subscribes to the topics matching pattern (a glob, 1..CELLA_TOPIC_MAX bytes);
 * messages arrive as CELLA_EVENT_BUS_MESSAGE events, one per message. (libcella
 * asks the kernel to send several queued messages in one frame and splits them
 * again: the callback cannot tell.) Returns 0 and *ret_subscription_id, or -EACCES,
 * -EINVAL, -EBUSY (64 subscriptions already).
 */
CELLA_API int cella_bus_subscribe(Cella *c, const char *pattern, uint64_t *ret_subscription_id);

/* Ends a subscription. Returns 0 or -ENOENT. */
CELLA_API int cella_bus_unsubscribe(Cella *c, uint64_t subscription_id);

/*
 * Sends data directly to app app_id (1..CELLA_ID_MAX bytes); limits as
 * cella_bus_publish(). Returns 0, or -EACCES, -ENOENT (not running), -EINVAL,
 * -EMSGSIZE, -EAGAIN.
 */
CELLA_API int cella_bus_send(Cella *c, const char *app_id, const void *data, size_t len,
                             const char *content_type);

typedef struct CellaBusReply {
        const void *data; /* len bytes */
        size_t len;
        const char *content_type;
        const char *responder; /* the answering app's id */
} CellaBusReply;

/*
 * Sends a request to app app_id on topic (a method name, 1..CELLA_TOPIC_MAX bytes)
 * and waits for its answer, at most timeout_ms milliseconds (0: 30000; <= 600000).
 * Returns 0 and *ret (cella_free()), or -EACCES, -ENOENT (not running), -ETIMEDOUT,
 * -ECONNRESET (it exited first), the errno the responder answered with, -EINVAL,
 * -EMSGSIZE.
 */
CELLA_API int cella_bus_request(Cella *c, const char *app_id, const char *topic, const void *data,
                                size_t len, const char *content_type, uint32_t timeout_ms,
                                CellaBusReply **ret);

/* Async form of cella_bus_request(): as cella_call_async(); decode with the next one. */
CELLA_API int cella_bus_request_async(Cella *c, const char *app_id, const char *topic,
                                      const void *data, size_t len, const char *content_type,
                                      uint32_t timeout_ms, CellaReplyFn cb, void *userdata,
                                      uint64_t *ret_request_id);

/* Decodes a bus.request reply: as cella_bus_request(); -EBADMSG if it does not decode. */
CELLA_API int cella_bus_request_result(const CellaReply *reply, CellaBusReply **ret);

/*
 * Answers a request received as an event with reply_token > 0: with data (limits
 * as cella_bus_publish()) if error is 0, or with error (a negative errno) which the
 * requester gets. Returns 0, or -ENOENT (unknown token; requester gone or timed
 * out), -EINVAL, -EMSGSIZE.
 */
CELLA_API int cella_bus_reply(Cella *c, uint64_t reply_token, int error, const void *data,
                              size_t len, const char *content_type);

/* ---- secure channels and signed bus messages (docs/ipc.md) ------------------- */

/*
 * A channel joins this app and one other through a SOCK_SEQPACKET socket the kernel
 * hands each side once both agreed (docs/ipc.md, "Secure channels"). The kernel
 * vouches for who is at the other end: each side learns the other's app id and
 * X25519 public key as the kernel saw them. The private keys are made here, in the
 * app (libsodium crypto_kx_keypair()), and never leave it; libcella derives one
 * session key per direction (crypto_kx_client/server_session_keys()) and runs a
 * crypto_secretstream_xchacha20poly1305 stream each way: every message is one push
 * and one pull, so a message altered, replayed, reordered, dropped or cut, by
 * anyone carrying the bytes, is detected, and the channel is then dead. The kernel
 * never sees the traffic. With CELLA_CHANNEL_PLAINTEXT the messages go as they are,
 * authenticated only by the kernel's pairing (the socket nobody else holds).
 */
#define CELLA_CHANNEL_MSG_MAX     65536u /* bytes of one message */
#define CELLA_CHANNEL_KEY_BYTES   32u    /* X25519 public and secret keys */
#define CELLA_CHANNEL_PURPOSE_MAX 255u   /* bytes of printable ASCII */
#define CELLA_CHANNEL_OVERHEAD    17u    /* bytes a message grows on the wire (ABYTES) */
#define CELLA_KERNEL_KEY_BYTES    32u    /* the kernel's ed25519 public key */

enum {
        CELLA_CHANNEL_PLAINTEXT = 1u << 0, /* no encryption (benchmarks; trusted peers) */
};

typedef struct CellaChannel CellaChannel;

/*
 * Asks app app_id (1..CELLA_ID_MAX bytes) for a channel and waits for its answer,
 * at most timeout_ms milliseconds (0: 30000; <= 600000). purpose (<=
 * CELLA_CHANNEL_PURPOSE_MAX bytes of printable ASCII, or NULL) is shown to the peer.
 * flags: 0 or CELLA_CHANNEL_PLAINTEXT. Needs bus.send:<app_id>. Returns 0 and *ret
 * (cella_channel_close()), or -EACCES / -EPERM (no bus.send for the peer), -ENOENT
 * (not running), -ECONNREFUSED or the peer's error (it refused), -ETIMEDOUT,
 * -ECONNRESET (it exited first), -EBUSY (too many opens waiting), -EINVAL, -ENOMEM.
 */
CELLA_API int cella_channel_open(Cella *c, const char *app_id, const char *purpose, unsigned flags,
                                 uint32_t timeout_ms, CellaChannel **ret);

/*
 * Accepts the request of a CELLA_EVENT_CHANNEL_REQUEST (its token), with a fresh key
 * pair of this app. May be called from the event callback. Returns 0 and *ret, or
 * -ENOENT (unknown token: answered, cancelled, timed out), -EINVAL, -ENOMEM.
 */
CELLA_API int cella_channel_accept(Cella *c, uint64_t token, CellaChannel **ret);

/* Refuses that request: the opener gets error (a negative errno; 0 means
 * -ECONNREFUSED). Returns 0, -ENOENT, -EINVAL. */
CELLA_API int cella_channel_refuse(Cella *c, uint64_t token, int error);

/*
 * Starts a channel on fd, a connected SOCK_SEQPACKET socket (taken over, also on
 * failure), with keys already exchanged (what cella_channel_open() and _accept()
 * do after the kernel's handshake; also for a bridge that carries a channel
 * elsewhere): initiator true on the side that opened; own_pk/own_sk this side's
 * X25519 pair (cella_kx_keypair()), peer_pk the other's; peer_id its app id (a
 * label, <= CELLA_ID_MAX bytes). Sends this side's stream header at once; the
 * peer's is read with the first message. Returns 0 and *ret, or -EINVAL (bad
 * keys: the session keys cannot be derived), -EIO, -ENOMEM.
 */
CELLA_API int cella_channel_wrap(int fd, bool initiator, const uint8_t own_pk[32],
                                 const uint8_t own_sk[32], const uint8_t peer_pk[32],
                                 const char *peer_id, unsigned flags, CellaChannel **ret);

/* Makes an X25519 key pair (libsodium crypto_kx_keypair()). Returns 0 or -EIO. */
CELLA_API int cella_kx_keypair(uint8_t pk[32], uint8_t sk[32]);

/*
 * Sends one message of len bytes (<= CELLA_CHANNEL_MSG_MAX; 0 allowed, but not in
 * plaintext, where an empty datagram reads as the end: -EINVAL). Blocks while the
 * socket is full. Returns 0, or -EMSGSIZE, -EPIPE (the peer closed), -ECONNRESET
 * (the channel is dead: an earlier failure), another -errno of sendmsg().
 */
CELLA_API int cella_channel_send(CellaChannel *ch, const void *data, size_t len);

/*
 * Receives one message into buf (size bytes; a message larger than size fails with
 * -EMSGSIZE and kills the channel), blocking until one comes. Returns its length
 * (>= 0), or -EPIPE: the peer closed the channel properly (cella_channel_close());
 * -EBADMSG: a message failed authentication (altered, forged, replayed, reordered,
 * cut) and the channel is dead; -ECONNRESET: the stream ended without the peer's
 * close (messages may be missing); -EMSGSIZE.
 */
CELLA_API ssize_t cella_channel_recv(CellaChannel *ch, void *buf, size_t size);

/* The socket, for poll (POLLIN: cella_channel_recv() will not block). */
CELLA_API int cella_channel_fd(const CellaChannel *ch);

/* The peer's app id and X25519 public key (32 bytes), as the kernel vouched for them. */
CELLA_API const char *cella_channel_peer(const CellaChannel *ch);
CELLA_API const uint8_t *cella_channel_peer_key(const CellaChannel *ch);

/* True if the channel carries plaintext (CELLA_CHANNEL_PLAINTEXT). */
CELLA_API bool cella_channel_plaintext(const CellaChannel *ch);

/* Ends the stream properly (a final message the peer's recv sees as -EPIPE), closes
 * the socket, wipes the keys, frees ch. Takes NULL; returns NULL. */
CELLA_API CellaChannel *cella_channel_close(CellaChannel *ch);

/*
 * The kernel's ed25519 public key (CELLA_KERNEL_KEY_BYTES), with which every signed
 * bus message verifies; asked once (channel.kernel_key) and kept. Returns 0, or
 * -EIO (the kernel has no usable key), a channel error.
 */
CELLA_API int cella_kernel_key(Cella *c, uint8_t key[32]);

/* A bus message's signature, as cella_bus_verify() found it. */
typedef struct CellaBusSigned {
        int64_t timestamp_ns; /* when the kernel signed, CLOCK_REALTIME ns */
        uint64_t counter;     /* the sender's counter: increasing per sender */
        char target[256];     /* direct messages: the app they were sent to; else "" */
} CellaBusSigned;

/*
 * Checks that a CELLA_EVENT_BUS_MESSAGE was signed by the kernel (the sender asked
 * for it: cella_bus_publish_signed(), cella_bus_send_signed()) as its event says:
 * sender, topic or target, content type, data, timestamp and counter, against the
 * kernel's key (cella_kernel_key()). ret may be NULL. Returns 0 and *ret, or
 * -ENOMSG (the message is not signed), -EBADMSG (the signature does not verify:
 * altered or forged), -EINVAL (not a bus message event), the errors of
 * cella_kernel_key().
 */
CELLA_API int cella_bus_verify(Cella *c, const CellaEvent *ev, CellaBusSigned *ret);

/*
 * The same check without a Cella: against key, on body (a BusMessageEvent's
 * encoding, len bytes; CellaEvent.body of a bus message). Returns as cella_bus_verify().
 */
CELLA_API int cella_bus_verify_body(const uint8_t key[32], const void *body, size_t len,
                                    CellaBusSigned *ret);

/* As cella_bus_publish() and cella_bus_send(), asking the kernel to sign. -EIO if
 * the kernel has no usable key. */
CELLA_API int cella_bus_publish_signed(Cella *c, const char *topic, const void *data, size_t len,
                                       const char *content_type);
CELLA_API int cella_bus_send_signed(Cella *c, const char *app_id, const void *data, size_t len,
                                    const char *content_type);

/*
 * Replay check for signed messages: the last counter seen per sender. An app that
 * keeps one rejects a signed message whose counter is not above the last one it
 * accepted from that sender (a replay, or an old message). At most
 * CELLA_BUS_SEEN_MAX senders.
 */
#define CELLA_BUS_SEEN_MAX 1024u
typedef struct CellaBusSeen CellaBusSeen;

CELLA_API int cella_bus_seen_new(CellaBusSeen **ret);
CELLA_API CellaBusSeen *cella_bus_seen_free(CellaBusSeen *s);

/* Records counter for sender if it is new: returns 0; -EALREADY if it is not above
 * the last one recorded for sender; -ENOBUFS past CELLA_BUS_SEEN_MAX senders;
 * -EINVAL. */
CELLA_API int cella_bus_seen_check(CellaBusSeen *s, const char *sender, uint64_t counter);
/* ---- keystore (docs/ipc.md) ----------------------------------------- */

/*
 * Keys made and held by the kernel, used by name; the private bytes never enter
 * the app (no call returns them). Names are the app's own: 1..CELLA_KEY_NAME_MAX
 * bytes of [a-z0-9_.-]; another app's key of the same name is not reachable and
 * answers -ENOENT like a key that does not exist. Every call but
 * cella_keystore_verify() and cella_keystore_peer_public_key() needs the right
 * "keystore". Errors they share: -EINVAL (bad name, kind, size; or a key of a kind
 * the operation does not take), -EACCES / -EPERM (the right), -ENOENT (no such key
 * of this app), -EMSGSIZE (data over CELLA_KEY_DATA_MAX bytes, associated data over
 * CELLA_KEY_AD_MAX), -EAGAIN (the call class's rate), -EIO (the kernel's keystore
 * cannot be read: its log says why).
 */

#define CELLA_KEY_NAME_MAX        64u    /* bytes of a key name */
#define CELLA_KEY_PUBLIC_BYTES    32u    /* an ed25519 or x25519 public key */
#define CELLA_KEY_SIG_BYTES       64u    /* an ed25519 signature */
#define CELLA_KEY_BOX_OVERHEAD    40u    /* a secret key's box: 24-byte nonce + 16-byte tag */
#define CELLA_KEY_SEALED_OVERHEAD 48u    /* a box sealed to a public key (crypto_box_seal) */
#define CELLA_KEY_DATA_MAX        64000u /* bytes signed, sealed or opened in one call */
#define CELLA_KEY_AD_MAX          1024u  /* bytes of associated data */

/* Opcodes of the keystore calls (enum Opcode in proto/cella.proto). */
enum {
        CELLA_OP_KEYSTORE_CREATE = 0x0C01,
        CELLA_OP_KEYSTORE_SIGN = 0x0C02,
        CELLA_OP_KEYSTORE_VERIFY = 0x0C03,
        CELLA_OP_KEYSTORE_SEAL = 0x0C04,
        CELLA_OP_KEYSTORE_OPEN = 0x0C05,
        CELLA_OP_KEYSTORE_PUBLIC_KEY = 0x0C06,
        CELLA_OP_KEYSTORE_DELETE = 0x0C07,
        CELLA_OP_KEYSTORE_LIST = 0x0C08,
        CELLA_OP_KEYSTORE_PEER_PUBLIC_KEY = 0x0C09,
};

typedef enum CellaKeyKind {
        CELLA_KEY_ED25519 = 1, /* signing: 32-byte public key, 64-byte signatures */
        CELLA_KEY_X25519 = 2,  /* key exchange; opens boxes sealed to its public key */
        CELLA_KEY_SECRET = 3,  /* XChaCha20-Poly1305: seals and opens the app's data */
} CellaKeyKind;

/*
 * Makes a key of kind named name. pub (CELLA_KEY_PUBLIC_BYTES, may be NULL) gets its
 * public key (zeros for CELLA_KEY_SECRET). Returns 0, the shared errors, -EEXIST
 * (the app has a key of that name), -EDQUOT (it has keystore.keys_max keys, 64 by
 * default: docs/config.md).
 */
CELLA_API int cella_keystore_create(Cella *c, const char *name, CellaKeyKind kind, uint8_t *pub);

/* Signs data (len 0..CELLA_KEY_DATA_MAX bytes) with the app's ed25519 key name: sig
 * gets the 64-byte detached signature (crypto_sign_detached). Returns 0 or the
 * shared errors. */
CELLA_API int cella_keystore_sign(Cella *c, const char *name, const void *data, size_t len,
                                  uint8_t sig[CELLA_KEY_SIG_BYTES]);

/* Checks sig over data (len 0..CELLA_KEY_DATA_MAX bytes) with any ed25519 public key
 * pub. Needs no right. Returns 0 valid, -EBADMSG not valid, or the shared errors. */
CELLA_API int cella_keystore_verify(Cella *c, const uint8_t pub[CELLA_KEY_PUBLIC_BYTES],
                                    const void *data, size_t len,
                                    const uint8_t sig[CELLA_KEY_SIG_BYTES]);

/*
 * Seals pt (len 0..CELLA_KEY_DATA_MAX bytes) with the app's secret key name and
 * associated data ad (ad_len 0..CELLA_KEY_AD_MAX bytes; authenticated, not carried:
 * give the same to open). box (box_size bytes, at least len +
 * CELLA_KEY_BOX_OVERHEAD) gets nonce (24, drawn by the kernel) || ciphertext ||
 * tag (16); *ret_len its length. Returns 0, the shared errors, -ENOBUFS (box_size
 * too small).
 */
CELLA_API int cella_keystore_seal(Cella *c, const char *name, const void *pt, size_t len,
                                  const void *ad, size_t ad_len, void *box, size_t box_size,
                                  size_t *ret_len);

/* Seals pt (len 0..CELLA_KEY_DATA_MAX bytes) to the x25519 public key pub (another
 * app's, from cella_keystore_peer_public_key(), or the app's own): crypto_box_seal,
 * which only the holder of that key opens. box: at least len +
 * CELLA_KEY_SEALED_OVERHEAD bytes. Returns 0 with *ret_len, -ENOBUFS, or the shared
 * errors (-EINVAL: pub is not a usable key). */
CELLA_API int cella_keystore_seal_to(Cella *c, const uint8_t pub[CELLA_KEY_PUBLIC_BYTES],
                                     const void *pt, size_t len, void *box, size_t box_size,
                                     size_t *ret_len);

/*
 * Opens box (len bytes) with the app's key name: a secret key's box with the same
 * ad, or (an x25519 key, ad_len 0) a box sealed to its public key. pt (pt_size
 * bytes, at least len less the overhead) gets the plaintext, *ret_len its length.
 * Returns 0, -EBADMSG (it does not open: tampered, truncated, another key, other
 * ad), -ENOBUFS, or the shared errors. Opening is stateless: the same box opens as
 * often as it is presented; bind it to its context through ad.
 */
CELLA_API int cella_keystore_open(Cella *c, const char *name, const void *box, size_t len,
                                  const void *ad, size_t ad_len, void *pt, size_t pt_size,
                                  size_t *ret_len);

/* The kind and public key (CELLA_KEY_PUBLIC_BYTES) of the app's key name; -EINVAL
 * for a secret key (it has none). Either output may be NULL. */
CELLA_API int cella_keystore_public_key(Cella *c, const char *name, CellaKeyKind *ret_kind,
                                        uint8_t *pub);

/*
 * Another app's public key of its key name (ed25519 or x25519), as the kernel holds
 * it: the kernel vouches that app_id made it. Needs bus.send for app_id, not
 * "keystore". Returns 0, -ENOENT (that app has no such public key; whether the app
 * exists is not said), -EACCES / -EPERM (no bus.send for it), -EINVAL.
 */
CELLA_API int cella_keystore_peer_public_key(Cella *c, const char *app_id, const char *name,
                                             CellaKeyKind *ret_kind, uint8_t *pub);

/* Deletes the app's key name. Returns 0 or the shared errors. */
CELLA_API int cella_keystore_delete(Cella *c, const char *name);

/* One key as cella_keystore_list() shows it (no private bytes). */
typedef struct CellaKey {
        char name[CELLA_KEY_NAME_MAX + 1];
        CellaKeyKind kind;
        uint8_t public_key[CELLA_KEY_PUBLIC_BYTES]; /* zeros for CELLA_KEY_SECRET */
        int64_t created_ms;                         /* wall clock, ms since the epoch */
} CellaKey;

/* The app's keys by name: *ret (*ret_n entries, one allocation: cella_free()) and,
 * if ret_keys_max is not NULL, its quota. Returns 0 or the shared errors. */
CELLA_API int cella_keystore_list(Cella *c, CellaKey **ret, size_t *ret_n, unsigned *ret_keys_max);
/* ---- ipc (docs/ipc.md) -------------------------------------------------------- */

/*
 * Objects shared between apps: pipes, packet channels, shared memory (and
 * semaphores and queues). Each is named "<creator's app id>.<name>" (dot-separated
 * segments of [A-Za-z0-9_-], at most CELLA_IPC_NAME_MAX bytes, and the right
 * "ipc.<kind>:<name>" must fit CELLA_PERMISSION_MAX) and reached through a handle:
 * a number > 0 in the app's handle table plus the fd the kernel passed with it.
 * Creating or opening needs the right ipc.<kind>:<name> (ipc.pipe for pipes and
 * channels); another app than the creator opens only what the creator offered it
 * (CellaIpcOffer) with the modes offered. A handle passed on keeps or loses modes,
 * never gains. Errors they share: -EACCES/-EPERM (the right), -EINVAL, -ENOENT (no
 * such object, handle or offer), -EEXIST (the name is taken), -EDQUOT (over one of
 * the app's quotas: the kernel's error message, which cella_call() shows, names
 * the limit and the figures), -EAGAIN (rate-limited).
 */

#define CELLA_IPC_NAME_MAX   255u
#define CELLA_IPC_OFFERS_MAX 16u
#define CELLA_IPC_READ       1u
#define CELLA_IPC_WRITE      2u

typedef enum CellaIpcKind {
        CELLA_IPC_PIPE = 1,    /* a kernel pipe: one end reads, the other writes */
        CELLA_IPC_CHANNEL = 2, /* an AF_UNIX SOCK_SEQPACKET pair: both ways, packets */
        CELLA_IPC_SHM = 3,     /* sealed shared memory of a fixed size */
        CELLA_IPC_SEM = 4,     /* a counting semaphore */
        CELLA_IPC_QUEUE = 5,   /* a message queue held by the kernel */
} CellaIpcKind;

/* Who besides the creator may open an object: exactly one of app (an app id
 * pattern, globs as in bus.send scopes) and topic (a bus topic pattern: the apps
 * whose bus.subscribe right covers it), with modes (CELLA_IPC_* bits). */
typedef struct CellaIpcOffer {
        const char *app;
        const char *topic;
        uint32_t modes;
} CellaIpcOffer;

/* A handle as the kernel describes it. */
typedef struct CellaIpcHandle {
        uint64_t handle; /* > 0, the app's number for it */
        CellaIpcKind kind;
        uint32_t modes;
        uint64_t size_bytes;               /* shm: its size; queue: the largest message */
        char name[CELLA_IPC_NAME_MAX + 1]; /* the object's full name */
        char owner[CELLA_ID_MAX + 1];      /* the creator's app id */
        char peer[CELLA_ID_MAX + 1];       /* pipe, channel: the other end's app, or "" */
} CellaIpcHandle;

/*
 * Makes a pipe (kind CELLA_IPC_PIPE; modes the end the caller keeps, CELLA_IPC_READ
 * or CELLA_IPC_WRITE) or a channel (CELLA_IPC_CHANNEL, modes READ|WRITE) named
 * name for the app peer, which gets CELLA_EVENT_IPC_OFFERED and takes the other end
 * with cella_ipc_accept() within timeout_ms (0: 30000; <= 600000). buffer_bytes: a
 * pipe's capacity (0: 64 KiB; <= 1 MiB; rounded up to a page). Needs
 * ipc.pipe:<name> (and so does the peer) and bus.send:<peer>. Returns 0, *ret (may be NULL) and
 * *ret_fd (O_CLOEXEC, the caller's end), or the errors above and -ENOENT (peer not running),
 * -EDQUOT (objects, handles, or offers waiting: ipc.pending_max).
 */
CELLA_API int cella_pipe_create(Cella *c, const char *name, CellaIpcKind kind, uint32_t modes,
                                const char *peer, uint32_t buffer_bytes, uint32_t timeout_ms,
                                CellaIpcHandle *ret, int *ret_fd);

/*
 * Takes what a CELLA_EVENT_IPC_OFFERED announced (token): a pipe's or channel's end,
 * or a handle passed with cella_ipc_pass(). Needs the caller's own
 * ipc.<kind>:<name>. Returns 0, *ret (may be NULL) and *ret_fd (O_CLOEXEC), or
 * -ENOENT (unknown, expired, or its sender exited), -EACCES/-EPERM, -EDQUOT
 * (handles; the offer stays until it expires).
 */
CELLA_API int cella_ipc_accept(Cella *c, uint64_t token, CellaIpcHandle *ret, int *ret_fd);

/*
 * Passes a copy of the caller's handle to app `to` with modes (a subset of the
 * handle's: -EPERM otherwise), under the caller's bus.send:<to> right (-EACCES /
 * -EPERM without it). `to` gets CELLA_EVENT_IPC_OFFERED; the caller keeps its handle.
 * A pipe or channel end cannot be passed (-EINVAL: the kernel keeps no copy). Returns
 * 0 and *ret_token (may be NULL), or -ENOENT (no such handle, the object destroyed,
 * `to` not running), -EDQUOT (offers waiting).
 */
CELLA_API int cella_ipc_pass(Cella *c, uint64_t handle, const char *to, uint32_t modes,
                             uint64_t *ret_token);

/*
 * Closes one of the caller's handles (its fd is the caller's to close). destroy: the
 * creator also removes the name (no new opens; the object lives until its last
 * handle closes); -EPERM for another app. Returns 0 or -ENOENT.
 */
CELLA_API int cella_ipc_close(Cella *c, uint64_t handle, bool destroy);

/* Replaces the offers of an object the caller created (handle is the creator's):
 * offers[0..n), n <= CELLA_IPC_OFFERS_MAX. Opens already made stay. Returns 0, or
 * -EPERM (not the creator), -EINVAL, -ENOENT. */
CELLA_API int cella_ipc_offer(Cella *c, uint64_t handle, const CellaIpcOffer *offers, size_t n);

typedef struct CellaIpcUsage {
        uint32_t objects, objects_max;           /* objects the app created that live */
        uint64_t shm_bytes, shm_bytes_max;       /* bytes of its shared memory */
        uint64_t queued_bytes, queued_bytes_max; /* bytes waiting in its queues */
        uint32_t handles, handles_max;           /* handles it holds */
} CellaIpcUsage;

typedef struct CellaIpcList {
        size_t n_handles; /* newest first, as many as fit one reply (usage.handles: all) */
        CellaIpcHandle *handles;
        CellaIpcUsage usage;
} CellaIpcList;

/* The caller's handles and its usage against the quotas. Returns 0 and *ret
 * (cella_free()). */
CELLA_API int cella_ipc_list(Cella *c, CellaIpcList **ret);

/*
 * Makes the memory of a shared memory object in the caller's own process: a memfd
 * (MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL where the kernel has it, MFD_CLOEXEC) of
 * size_bytes (> 0), every page allocated now (fallocate), so that the pages are
 * charged to the caller's memory cgroup. Fill it (mmap the fd) before
 * cella_shm_register() if it is to be read-only. Returns 0 and *ret_fd, or -errno of
 * memfd_create/ftruncate/fallocate (-ENOMEM, -ENOSPC).
 */
CELLA_API int cella_shm_make(uint64_t size_bytes, int *ret_fd);

/*
 * Registers fd, a memfd from cella_shm_make() of exactly size_bytes, as the shared
 * memory `name`, offered as offers[0..n). The kernel checks it (a memfd, unsealed,
 * that size, every page allocated), makes it mode 0600 and seals it: it can no
 * longer shrink, grow, be executed or sealed further; read_only_sealed: nobody can
 * write it any more either (-EBUSY while the caller has it mapped writable). The
 * caller keeps fd. Needs ipc.shm:<name>. Returns 0 and *ret (may be NULL), or the
 * errors above and -EDQUOT (objects, ipc.shm_bytes_max, handles).
 */
CELLA_API int cella_shm_register(Cella *c, const char *name, int fd, uint64_t size_bytes,
                                 const CellaIpcOffer *offers, size_t n, bool read_only_sealed,
                                 CellaIpcHandle *ret);

/* cella_shm_make() then cella_shm_register() (read-write): returns 0, *ret (may be
 * NULL) and *ret_fd (the caller's memfd), or their errors (the memfd closed). */
CELLA_API int cella_shm_create(Cella *c, const char *name, uint64_t size_bytes,
                               const CellaIpcOffer *offers, size_t n, CellaIpcHandle *ret,
                               int *ret_fd);

/*
 * Opens the shared memory `name` with modes CELLA_IPC_READ (the fd is O_RDONLY: it
 * maps read-only, and never writable) or CELLA_IPC_READ | CELLA_IPC_WRITE. Needs
 * ipc.shm:<name> and, unless the caller created it, the creator's offer with those
 * modes (-EPERM). Returns 0, *ret (may be NULL; ret->size_bytes is its size) and
 * *ret_fd (its own open file description, O_CLOEXEC).
 */
CELLA_API int cella_shm_open(Cella *c, const char *name, uint32_t modes, CellaIpcHandle *ret,
                             int *ret_fd);

/* mmap()s size_bytes of a shared memory fd, MAP_SHARED, PROT_READ (modes
 * CELLA_IPC_READ) or PROT_READ | PROT_WRITE. Returns the mapping, or NULL with errno
 * (munmap() it). */
CELLA_API void *cella_shm_map(int fd, uint64_t size_bytes, uint32_t modes);

/* ---- ipc: semaphores and message queues (docs/ipc.md) -------------------------- */

/* The opcodes of these calls (proto/cella.proto "ipc"). */
enum {
        CELLA_OP_IPC_SEM_CREATE = 0x0B10,
        CELLA_OP_IPC_SEM_OPEN = 0x0B11,
        CELLA_OP_IPC_QUEUE_CREATE = 0x0B18,
        CELLA_OP_IPC_QUEUE_OPEN = 0x0B19,
        CELLA_OP_IPC_QUEUE_SEND = 0x0B1A,
        CELLA_OP_IPC_QUEUE_RECEIVE = 0x0B1B,
};

#define CELLA_QUEUE_BATCH_MAX    1024u  /* messages in one send or receive */
#define CELLA_QUEUE_MESSAGE_MAX  65000u /* bytes of one queue message */
#define CELLA_QUEUE_PRIORITY_MAX 31u    /* priorities are 0..31, higher first */
#define CELLA_QUEUE_WAIT_MAX_MS  600000u

/* A queue handle receives with CELLA_IPC_READ and sends with CELLA_IPC_WRITE. */

/*
 * A counting semaphore shared between apps: the kernel's handle number and the
 * eventfd (EFD_SEMAPHORE) the kernel passed. Waiting and posting are system calls on
 * fd in the app (no broker call): cella_sem_wait() polls and reads it. Close fd with
 * close() when done (and the handle with the ipc close call).
 */
typedef struct CellaSem {
        uint64_t handle;
        int fd;
} CellaSem;

/*
 * Creates the semaphore `name` ("<own app id>.<name>", at most CELLA_IPC_NAME_MAX
 * bytes; the right ipc.sem:<name>) with count `initial`, offered to offers[0..n)
 * (may be 0). Returns 0 and *ret, or -EACCES (right not granted), -EPERM (not the
 * caller's own name, or never grantable), -EEXIST, -EDQUOT (the app's
 * ipc.objects_max or ipc.handles_max), -EINVAL.
 */
CELLA_API int cella_sem_create(Cella *c, const char *name, uint32_t initial,
                               const CellaIpcOffer *offers, size_t n_offers, CellaSem *ret);

/* Opens the semaphore `name` (ipc.sem:<name>, and the creator's offer). Returns 0 and
 * *ret, or -EACCES, -EPERM (not offered to this app), -ENOENT, -EDQUOT, -EINVAL. */
CELLA_API int cella_sem_open(Cella *c, const char *name, CellaSem *ret);

/*
 * Takes one from the semaphore, waiting up to timeout_ms (0: do not wait; < 0: no
 * limit). Returns 0, -EAGAIN (timeout_ms 0 and the count is 0), -ETIMEDOUT, or the
 * -errno of poll/read (-EBADF). The read is preadv2(RWF_NOWAIT), so a holder that
 * clears O_NONBLOCK on the shared file cannot make it block past timeout_ms.
 */
CELLA_API int cella_sem_wait(const CellaSem *s, int timeout_ms);

/* cella_sem_wait(s, 0). */
CELLA_API int cella_sem_trywait(const CellaSem *s);

/* Adds n (>= 1) to the count, waking up to n waiters. Returns 0, -EINVAL (n 0), or
 * -EOVERFLOW (the count would pass 2^64-2, eventfd's bound: nothing added). */
CELLA_API int cella_sem_post(const CellaSem *s, uint32_t n);

/*
 * A message queue handle: the kernel's handle number, its modes, the queue's
 * message bound, and fd, the handle's own readiness fd (a timerfd), which the kernel
 * keeps readable while the queue holds messages for a READ handle (poll it in an
 * event loop; no need to read it: cella_queue_receive() is how messages come).
 */
typedef struct CellaQueue {
        uint64_t handle;
        int fd;
        uint32_t modes;
        uint32_t message_bytes_max;
} CellaQueue;

/* One message to send, or one received (then data points into the batch, sender is
 * the sending app's id as the kernel saw it, seq the queue's number of it, from 1). */
typedef struct CellaQueueMessage {
        const void *data;
        size_t len;
        uint32_t priority; /* 0..CELLA_QUEUE_PRIORITY_MAX, higher first */
        const char *sender;
        uint64_t seq;
} CellaQueueMessage;

/* What cella_queue_receive() returns: one allocation, free() it. */
typedef struct CellaQueueBatch {
        size_t n;
        uint32_t depth; /* messages left in the queue */
        CellaQueueMessage msgs[];
} CellaQueueBatch;

/*
 * Creates the queue `name` (ipc.queue:<name>) of depth_max messages (1..the kernel's
 * ipc.queue_depth_max) of at most message_bytes_max bytes (1..CELLA_QUEUE_MESSAGE_MAX),
 * kept in the kernel's SQLite store across restarts if persistent, offered to
 * offers[0..n). The creator's handle can send and receive. Returns 0 and *ret, or the
 * errors of cella_sem_create(), -EIO (persistent: the store is not usable; the
 * kernel's message says why).
 */
CELLA_API int cella_queue_create(Cella *c, const char *name, uint32_t depth_max,
                                 uint32_t message_bytes_max, bool persistent,
                                 const CellaIpcOffer *offers, size_t n_offers, CellaQueue *ret);

/* Opens the queue `name` with modes (CELLA_IPC_READ: receive, CELLA_IPC_WRITE: send;
 * within the creator's offer). Errors as cella_sem_open(). */
CELLA_API int cella_queue_open(Cella *c, const char *name, uint32_t modes, CellaQueue *ret);

/*
 * Sends msgs[0..n) (1..CELLA_QUEUE_BATCH_MAX; sender and seq ignored) in order, all
 * or none, in one call. Returns 0 and *ret_depth (may be NULL: messages in the queue
 * after), or -EAGAIN (no room for all of them: nothing sent), -EMSGSIZE (one is over
 * the queue's bound, or the request over CELLA_BODY_MAX: cella_queue_batch_fit()),
 * -EDQUOT (the creator's ipc.queued_bytes_max), -EPERM (not a WRITE handle), -ENOENT
 * (no such handle), -EINVAL, -EIO (persistent queue: the store failed, nothing sent).
 */
CELLA_API int cella_queue_send(Cella *c, const CellaQueue *q, const CellaQueueMessage *msgs,
                               size_t n, uint32_t *ret_depth);

/* How many of msgs[0..n), from the first, fit one cella_queue_send() (at most
 * CELLA_QUEUE_BATCH_MAX, within CELLA_BODY_MAX); 0 if msgs[0] alone does not. */
CELLA_API size_t cella_queue_batch_fit(const CellaQueueMessage *msgs, size_t n);

/*
 * Receives up to max (1..CELLA_QUEUE_BATCH_MAX) messages, highest priority first,
 * as many as fit one reply. timeout_ms 0: do not wait (-EAGAIN when empty); > 0:
 * wait up to that long for the first (at most CELLA_QUEUE_WAIT_MAX_MS; -ETIMEDOUT);
 * < 0: no limit. The kernel holds the waiting call; waiters are served in the order
 * they came. Returns 0 and *ret (free()), or -EAGAIN, -ETIMEDOUT, -EPERM (not a READ
 * handle), -ENOENT, -ECANCELED (the handle was closed or revoked while waiting; the
 * message says which), -EINVAL.
 */
CELLA_API int cella_queue_receive(Cella *c, const CellaQueue *q, size_t max, int timeout_ms,
                                  CellaQueueBatch **ret);
/* ---- ring buffer over shared memory ------------------------------------------ */

/*
 * A single-producer single-consumer ring of messages in a shared memory object,
 * for streaming between two apps without the kernel on the path. The first page
 * holds the header: a magic, the capacity, and the producer's and the consumer's
 * counters each on a cache line of its own (128 bytes apart: no false sharing, also
 * with adjacent-line prefetch); the data follow from CELLA_RING_HEADER. A message
 * is a 4-byte length and its bytes, 8-byte aligned, and may wrap around the end.
 *
 * Wake-ups use futexes in the header, and only when the other side sleeps: a
 * reader with nothing to read marks itself waiting and sleeps; the writer wakes it
 * only if the mark is set (likewise the other way for a full ring). A stream that
 * keeps both busy makes no system call.
 *
 * The peer is not trusted: everything read from the shared page (its counter,
 * each length) is checked against this side's own copy of the capacity and
 * counters before use; a hostile or broken peer makes calls fail with -EPROTO,
 * never read or write outside the mapping. Neither side ever trusts the header's
 * capacity after cella_ring_attach() checked it once.
 */

#define CELLA_RING_HEADER 4096u /* bytes before the data */

typedef struct CellaRing CellaRing;

typedef enum CellaRingRole {
        CELLA_RING_PRODUCER = 1,
        CELLA_RING_CONSUMER = 2,
} CellaRingRole;

/* The bytes of shared memory a ring of capacity data bytes takes:
 * CELLA_RING_HEADER + capacity. 0 if capacity is not a power of two in
 * 4096..2^30. */
CELLA_API uint64_t cella_ring_size(uint64_t capacity);

/* Writes a fresh header into mem (size bytes, page aligned, mapped read-write)
 * for capacity data bytes (cella_ring_size(capacity) <= size). Done once, by the
 * creator, before either side attaches. Returns 0 or -EINVAL. */
CELLA_API int cella_ring_init(void *mem, uint64_t size, uint64_t capacity);

/* Attaches to the ring in mem (size bytes: the whole mapping, read-write) as role.
 * Checks the header (magic, version, a capacity that fits size). Returns 0 and *ret
 * (cella_ring_free()), or -EINVAL (not a ring, or it does not fit), -ENOMEM. */
CELLA_API int cella_ring_attach(void *mem, uint64_t size, CellaRingRole role, CellaRing **ret);

/* Frees r (not the mapping). Takes NULL; returns NULL. */
CELLA_API CellaRing *cella_ring_free(CellaRing *r);

/* The most bytes one message may have: capacity - 8. */
CELLA_API uint64_t cella_ring_message_max(const CellaRing *r);

/*
 * Producer: appends one message of len bytes (<= cella_ring_message_max()) without
 * waiting. Returns 0, or -EAGAIN (no room now), -EMSGSIZE, -EPROTO (the consumer's
 * counter is impossible), -EINVAL (not the producer).
 */
CELLA_API int cella_ring_write(CellaRing *r, const void *data, size_t len);

/*
 * Consumer: takes the next message into buf (size bytes) without waiting. Returns
 * its length (>= 0), or -EAGAIN (empty), -EMSGSIZE (buf too small: the message
 * stays), -EPROTO (the producer's counter or a length is impossible), -EINVAL.
 */
CELLA_API int64_t cella_ring_read(CellaRing *r, void *buf, size_t size);

/*
 * Waits until the ring has a message (consumer) or room for len bytes (producer),
 * at most timeout_ms (-1: no limit). Returns 0 (ready), -ETIMEDOUT, -EINTR, -EPROTO.
 */
CELLA_API int cella_ring_wait(CellaRing *r, size_t len, int timeout_ms);

#ifdef __cplusplus
}
#endif
