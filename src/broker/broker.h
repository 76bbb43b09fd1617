/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The broker: the kernel side of every app's channel (docs/design.md section 6,
 * docs/protocol.md "What the kernel does with a call"). The supervisor attaches one
 * BrokerApp per running app, with the supervisor's end of the app's SOCK_SEQPACKET
 * socketpair; the broker reads its frames from the supervisor's libuv loop and
 * answers them. For every request, in this order:
 *
 *   1. the app is the channel's (never a field of the body)
 *   2. decode: framing (channel_recv), opcode table and body (wire_unpack,
 *      src/wire); a bad frame gets an error reply, and past BROKER_BAD_FRAMES_MAX
 *      bad frames the channel is closed (the app alone pays)
 *   3. per-app quota of outstanding requests (BROKER_OUTSTANDING_MAX): -EBUSY
 *   4. the rights (one, or two: BrokerCallDef.also_right_of), parsed once, decided
 *      by policy_decide() (policy/decide.h) from a cached copy of the app's grants,
 *      all of them before any one-time grant is used up (broker_app_take());
 *      one-time and gesture rights go to grants.db: -EACCES not granted, -EPERM
 *      never allowed
 *   5. the rate limit of the call's class (the opcode table's, wire/wire.h;
 *      policy/ratelimit.h): -EAGAIN
 *   6. the operation (calls/<area>.c)
 *   7. one audit record (audit/audit.h): app, op, decision, errno
 *   8. the reply (or, for calls that wait on someone, later)
 *
 * Replies and events go out with MSG_DONTWAIT; when the app does not read, they
 * wait in a per-app queue bounded by BROKER_OUTQ_MAX frames, BROKER_OUTQ_BYTES_MAX
 * bytes and BROKER_OUTQ_FDS_MAX fds. An app whose queue is at a bound stops being
 * read (its own calls wait; nobody else does) until it drains; events past the
 * bound are dropped and counted.
 *
 * The broker is not thread-safe: everything runs on the supervisor's loop.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "audit/audit.h"
#include "ipc/bus.h"
#include "policy/grants.h"
#include "policy/manifest.h"

#define BROKER_OUTSTANDING_MAX 64u /* requests in flight per app (libcella's own bound) */
#define BROKER_BAD_FRAMES_MAX  16u /* malformed frames before the channel is closed */
#define BROKER_FRAMES_PER_WAKE 64u /* frames read per readiness, so one app cannot hog */
/*
 * Loop time one readiness of an app may take before the others get their turn
 * (the frames left wait in its socket): with k apps flooding, another app's call
 * waits at most about k slices, whatever the calls cost. Reads of an app whose
 * calls are slow are cut to the frames that fit the slice at its recent cost per
 * frame (one at least). 1 ms: ~70 no-op calls, so a fast app is not slowed.
 */
#define BROKER_READ_SLICE_NS (1000ull * 1000)
#define BROKER_OUTQ_MAX      1024u /* frames queued towards one app */
/*
 * Bytes queued towards one app (frames and their bookkeeping), and fds those frames
 * carry. The queue is memory of the kernel, outside the app's memory cgroup: a
 * frame-only bound let an app that never reads hold 1024 x 64 KiB = 64 MiB of it.
 * 256 KiB is four of the largest frames (CHANNEL_BODY_MAX), or some thousands of
 * ordinary replies: as much again as the socket itself buffers (the kernel side's
 * SO_SNDBUF, net.core.wmem_default: 208 KiB), so an app that reads late but reads
 * never meets it. Past it reading stops, so the queue passes the bound by at most
 * the replies of one read (RECV_BATCH frames; one frame once the socket is full)
 * and those of calls answered later (at most BROKER_OUTSTANDING_MAX). 64 fds: each
 * is an open file of the kernel's own RLIMIT_NOFILE until the app reads it.
 */
#define BROKER_OUTQ_BYTES_MAX (256u * 1024u)
#define BROKER_OUTQ_FDS_MAX   64u
#define BROKER_TIMERS_MAX     64u              /* live timers per app */
#define BROKER_TIMER_MIN_NS   (1000ull * 1000) /* 1 ms: shortest timer or period */
/* Notifications: proto/cella.proto's NotifyPostRequest bounds (title 1..255 bytes,
 * body at most 4095, tag at most 63); TEXT_MAX is title + body. */
#define BROKER_NOTIFY_TITLE_MAX 255u
#define BROKER_NOTIFY_BODY_MAX  4095u
#define BROKER_NOTIFY_TAG_MAX   63u
#define BROKER_NOTIFY_TEXT_MAX  (BROKER_NOTIFY_TITLE_MAX + BROKER_NOTIFY_BODY_MAX)
#define BROKER_PROCS_MAX        1024u /* processes proc.list reports (ProcListReply bound) */
#define BROKER_ENV_MAX          256u  /* entries system.env reports (SystemEnvReply bound) */

/*
 * Default rate limits per app and call class (tokens per second, bucket size), taken
 * when BrokerOptions leaves them 0; docs/protocol.md "Rate limits". Cheap calls allow
 * the target of 100,000 calls/s from one app with room to spare; costly ones
 * touch files or processes; prompting ones reach the user or start apps.
 */
#define BROKER_RATE_CHEAP_DEFAULT      200000u
#define BROKER_BURST_CHEAP_DEFAULT     20000u
#define BROKER_RATE_COSTLY_DEFAULT     2000u
#define BROKER_BURST_COSTLY_DEFAULT    200u
#define BROKER_RATE_PROMPTING_DEFAULT  20u
#define BROKER_BURST_PROMPTING_DEFAULT 5u

typedef struct Broker Broker;
typedef struct BrokerApp BrokerApp;

/* What a running app is, as the supervisor knows it. Copied by broker_app_attach(). */
typedef struct BrokerAppInfo {
        const Manifest *manifest; /* must outlive the BrokerApp */
        const char *app_dir;      /* host path of the app folder */
        const char *data_dir;     /* host path of its /data */
        uid_t host_uid;
        pid_t pid;                 /* the sandbox's init, in our pid namespace */
        int pidfd;                 /* of that init; the broker does not close it */
        const char *memory_cgroup; /* absolute path of its memory cgroup dir, or NULL */
        const char *pids_cgroup;   /* of its pids cgroup dir, or NULL */
        const char *cpu_cgroup;    /* of its cpu cgroup dir (v1; cpu,cpuacct co-mounted), or NULL */
        const char *cpuacct_cgroup; /* of its cpuacct cgroup dir (v1), or NULL */
        const char *unified_cgroup; /* of its cgroup2 leaf, or NULL */
        bool signed_ok;             /* bundle signed by a trusted key */
        int64_t started_ms;         /* wall clock, ms since the epoch */
        /* The environment the app was started with ("NAME=value", NULL-terminated;
         * launch.c's envp), for system.env; copied. NULL: rebuilt from the manifest
         * (CELLA_APP_ID, CELLA_FD, HOME, TMPDIR and the manifest's env). */
        char *const *env;
} BrokerAppInfo;

/* The answer to a permission prompt. */
typedef enum BrokerPromptAnswer {
        BROKER_PROMPT_DENY,
        BROKER_PROMPT_ALLOW_ONCE,
        BROKER_PROMPT_ALLOW,
} BrokerPromptAnswer;

typedef void (*BrokerPromptDone)(BrokerPromptAnswer answer, void *done_userdata);

/*
 * What the broker needs from the supervisor. Every member may be NULL: the calls
 * that need it then fail with -ENOTSUP ("not available in this kernel").
 */
typedef struct BrokerHost {
        /* app.launch: make sure app target_id runs (already checked against the
         * caller's app.launch right). Starts it if it is not running, and attaches it
         * to this broker before returning, so the broker can then deliver the intent
         * to its bus endpoint. Returns 0 with *ret_already_running, or -errno:
         * -ENOENT no such app known to this kernel, -EBUSY it is stopping. */
        int (*launch)(void *userdata, const char *caller_id, const char *target_id,
                      bool *ret_already_running);
        /* notify.post: show a notification (already checked, text bounded). */
        void (*notify)(void *userdata, const char *app_id, const char *title, const char *body,
                       int urgency);
        /* perm.request: ask the user about right for app. Returns 0 and calls done
         * exactly once later (never from inside prompt()), or -errno (-ENOTTY: no
         * terminal, -EBUSY: another prompt is showing and the queue is full). */
        int (*prompt)(void *userdata, const char *app_id, const char *right, const char *reason,
                      BrokerPromptDone done, void *done_userdata);
        /* Cancels a pending prompt: done will not be called. */
        void (*prompt_cancel)(void *userdata, void *done_userdata);
        /* app_id's grants changed in the state directory's grants.db from this kernel
         * (a prompt answered yes or once): tell the other kernels sharing the state
         * directory, without blocking the loop on them. NULL: nobody to tell. */
        void (*grants_changed)(void *userdata, const char *app_id);
        void *userdata;
} BrokerHost;

typedef struct BrokerOptions {
        uv_loop_t *loop;
        Grants *grants;  /* the state dir's grants; shared, not owned */
        AuditLog *audit; /* shared, not owned; NULL: no audit (tests only) */
        Bus *bus;        /* shared, not owned */
        const char *state_dir;
        /* User-file roots for fs.open: NULL-terminated "name=/host/path" pairs;
         * a root not listed is <state_dir>/roots/<name> (created 0700 on first use). */
        char *const *roots;
        const BrokerHost *host;
        /* Rate limits per call class; 0 takes the default (docs/protocol.md). */
        uint64_t rate_cheap, burst_cheap;         /* system, memory, perm.query/list, bus */
        uint64_t rate_costly, burst_costly;       /* fs, proc, timer, app.info */
        uint64_t rate_prompting, burst_prompting; /* perm.request, notify, app.launch */
        /* Each app's call records go through an AuditCoalesce (audit.h): repeats within
         * a second are counted, new kinds charged to a byte budget (0: the defaults,
         * AUDIT_BUDGET_RATE and AUDIT_BUDGET_BURST). audit_coalesce_off writes every
         * record (tests, and measuring what coalescing saves). */
        uint64_t audit_budget_rate, audit_budget_burst;
        bool audit_coalesce_off;
        /* net.connect's per-app limits (docs/network.md "Limits"; cellad.conf's net.*
         * keys); 0 takes the default below. */
        uint64_t net_conns_max;       /* connections open at once */
        uint64_t net_rate, net_burst; /* new connections a second, and the bucket */
        /* keystore.*: keys per app (cellad.conf keystore.keys_max; docs/ipc.md
         * "Keystore"); 0 takes BROKER_KEYSTORE_KEYS_DEFAULT. */
        uint64_t keystore_keys_max;
        /* The ipc quotas (docs/ipc.md "Quotas"; cellad.conf's ipc.* keys); 0 takes
         * the default below. Charged to the creator's app id (objects, bytes) or to
         * the running app (handles, pending offers). */
        uint64_t ipc_objects_max;      /* objects one app id created that live */
        uint64_t ipc_handles_max;      /* handles one app holds */
        uint64_t ipc_shm_bytes_max;    /* bytes of the shared memory one app id created */
        uint64_t ipc_pending_max;      /* offers one app made that wait for an accept */
        uint64_t ipc_queue_depth_max;  /* the deepest queue an app may create, messages */
        uint64_t ipc_queued_bytes_max; /* bytes waiting in the queues one app id created */
} BrokerOptions;

/* Keys per app in the keystore by default: 64, room for a signing key, an exchange
 * key and a secret per peer or purpose of a modest app; cellad.conf raises it. */
#define BROKER_KEYSTORE_KEYS_DEFAULT 64u

/* Defaults of the net.connect limits: 256 connections open (a browser's per-profile
 * cap in Chromium is 256 sockets, ClientSocketPoolManager's max_sockets_per_pool),
 * 50 new ones a second with bursts of 100. */
#define BROKER_NET_CONNS_DEFAULT 256u
#define BROKER_NET_RATE_DEFAULT  50u
#define BROKER_NET_BURST_DEFAULT 100u

/*
 * Defaults of the ipc quotas (docs/config.md gives the reasons): 64 objects (each
 * shared memory object and each pending pipe end is an fd open in cellad, under
 * its own RLIMIT_NOFILE), 256 handles, 64 MiB of shared memory (twice the 32 MiB
 * that was Linux's SHMMAX default for SysV shared memory; the pages are charged to
 * the creator's memory cgroup as well), 16 pending offers, queues of 1024 messages
 * and 4 MiB queued (cellad's own memory, outside every app's cgroup).
 */
#define BROKER_IPC_OBJECTS_DEFAULT      64u
#define BROKER_IPC_HANDLES_DEFAULT      256u
#define BROKER_IPC_SHM_BYTES_DEFAULT    (64ull << 20)
#define BROKER_IPC_PENDING_DEFAULT      16u
#define BROKER_IPC_QUEUE_DEPTH_DEFAULT  1024u
#define BROKER_IPC_QUEUED_BYTES_DEFAULT (4ull << 20)

/* Returns 0 and *ret, or -ENOMEM / -EINVAL (no loop, grants or bus). */
int broker_new(const BrokerOptions *o, Broker **ret);

/* Detaches every app (as broker_app_detach()) and frees. Takes NULL; returns NULL. */
Broker *broker_free(Broker *b);

/*
 * Starts serving channel_fd (the supervisor's end; the broker owns it from now on,
 * even on failure) for the app described by info. Adds the app's bus endpoint and
 * loads its grants into the cache. Returns 0 and *ret, or -errno (-EEXIST: an app
 * with this id is attached).
 */
int broker_app_attach(Broker *b, const BrokerAppInfo *info, int channel_fd, BrokerApp **ret);

/*
 * Tells app a new kernel adopted it (event.kernel_restarted, docs/protocol.md "When
 * the kernel restarts"), adopted_ms the wall clock in ms since the epoch. Called
 * right after broker_app_attach() of an adopted channel, before the loop reads it,
 * so that it is this kernel's first frame there. Returns 0 (sent or queued) or
 * -errno as broker_app_event().
 */
int broker_app_kernel_restarted(BrokerApp *app, int64_t adopted_ms);

/*
 * Asks app to trim (event.memory_pressure, 0x8004: issue 13's EVENT_TRIM_MEMORY,
 * docs/protocol.md and docs/memory.md "Actions"): level 1..3 (MemoryLevel:
 * moderate, low, critical; proto MEMORY_LEVEL_LOW, _MEDIUM, _CRITICAL), the app's
 * memory in use and its limit, bytes (0: none). Returns 0, -EINVAL (a level
 * outside 1..3), -ECONNRESET (the app is gone), or broker_app_event()'s errors.
 */
int broker_app_memory_pressure(BrokerApp *app, int level, uint64_t current_bytes,
                               uint64_t limit_bytes);

/* The channel the broker serves app on (the supervisor's end; the broker's own, do
 * not close), for cellad's keeper to hold a copy of (src/keeper); -EBADF for NULL. */
int broker_app_channel_fd(const BrokerApp *app);

/*
 * Stops serving the app: closes the channel, cancels its timers, prompts and bus
 * endpoint, fails its outstanding bus requests of others, and writes its counters
 * to the audit log. Takes NULL.
 */
void broker_app_detach(BrokerApp *app);

/* Writes every app's audit summaries now, whether their window has ended or not,
 * and flushes the audit log: before the log is read in one piece (tests, `cella
 * audit` from the same process). Takes NULL. */
void broker_audit_flush(Broker *b);

/* The attached app with this id, or NULL. */
BrokerApp *broker_app_find(Broker *b, const char *app_id);

/*
 * The grants of app_id (NULL: every app) changed in grants.db, e.g. `cella revoke`
 * in another process. Reloads the cache; for each right no longer held, closes the
 * handles that depend on it (bus subscriptions, timers, pending requests) and sends
 * the app an EVENT_PERM_REVOKED. Returns the number of rights lost, or -errno.
 */
int broker_grants_changed(Broker *b, const char *app_id);

/*
 * The app owner_id is removed (`cella remove`, `cella forget`: docs/cli.md): every
 * queue it created goes (ipc.md "Message queues"), live or stored: their names are
 * freed, their holders get EVENT_IPC_CLOSED "destroyed" and their waiters fail, the
 * persistent ones leave <state>/ipc-queues.db with their offers and messages (one
 * transaction for the rows no live object has). Returns the number of persistent
 * queues forgotten, or -EIO (the store failed; logged).
 */
int broker_ipc_queue_forget_owner(Broker *b, const char *owner_id);

/* Counters for `cella ps` and the audit log. */
typedef struct BrokerAppStats {
        uint64_t calls;          /* requests answered */
        uint64_t refused;        /* of those, refused by a right (EACCES/EPERM) */
        uint64_t rate_limited;   /* of those, EAGAIN from the rate limit */
        uint64_t bad_frames;     /* malformed frames */
        uint64_t events_dropped; /* events dropped: the app's queue was full */
        uint64_t loop_ns;        /* kernel loop time spent reading and answering its frames */
        uint64_t worker_cpu_ns;  /* CPU time of threadpool work for its calls (fs.usage, proc.*) */
        /* net.connect (calls/net.c), by the call and through broker_net_connect() */
        uint64_t net_connections; /* connections made */
        uint64_t net_refused;     /* refused by a right or an address's class */
        uint64_t net_limited;     /* refused by the connection limit or the rate */
        uint64_t net_bytes_out;   /* bytes sent by ended connections */
        uint64_t net_bytes_in;    /* bytes received by ended connections */
        unsigned outstanding;
        bool closed; /* the channel was closed (hang-up or bad frames) */
} BrokerAppStats;

void broker_app_stats(const BrokerApp *app, BrokerAppStats *ret);

/* What waits in app's out queue now: bytes (as bounded by BROKER_OUTQ_BYTES_MAX),
 * frames and fds. Any output may be NULL. For tests and `cella ps`. */
void broker_app_outq_stats(const BrokerApp *app, size_t *ret_bytes, unsigned *ret_frames,
                           unsigned *ret_fds);

/* ---- network egress (docs/network.md; calls/net.c) ---------------------------------- */

/* One outbound connection an app asks for, by net.connect or through its proxy. */
typedef struct BrokerNetRequest {
        const char *host; /* a DNS name or an address literal (IPv6 with or without []) */
        uint16_t port;    /* 1..65535 */
        bool udp;         /* false: TCP */
        const char *via;  /* for the audit record: "call", "proxy" */
        /* Written before the relay moves anything (NetRelayPair's prefixes): to the
         * peer (a proxy's rewritten request head) and to the app (a proxy's reply). */
        const void *to_peer;
        size_t n_to_peer;
        const void *to_app;
        size_t n_to_app;
} BrokerNetRequest;

/* The outcome, on the loop, exactly once, never before broker_net_connect() returned:
 * error 0 (connected; address is the numeric address reached) or -errno as
 * NetConnectRequest's (cella.proto) with why, one English sentence for the app. */
typedef void (*BrokerNetDone)(void *userdata, int error, const char *why, const char *address);

/*
 * Connects the attached app app_id to req's host and port under its net.connect
 * rights, exactly as the net.connect call does (the right check, one resolution,
 * every address vetted, the app's limits, the audit record, a handle that revoking
 * the right closes), and relays between app_fd (taken: the app's end, e.g. a
 * connection accepted by its proxy) and the connection. Returns 0 (done will be
 * called) or -ESRCH (no such app attached), -EINVAL; then done is not called and
 * app_fd is closed.
 */
int broker_net_connect(Broker *b, const char *app_id, const BrokerNetRequest *req, int app_fd,
                       BrokerNetDone done, void *userdata);
