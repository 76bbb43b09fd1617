/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the files of src/daemon: the Daemon itself. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <uv.h>

#include "audit/audit.h"
#include "daemon/daemon.h"
#include "memory/config.h"
#include "supervisor/control.h"
#include "supervisor/error.h"

/* A bound on what one caller, or all, may have in flight (runs, store requests):
 * parameters "limit" (its name) and "value" (docs/api.md "Errors"). */
#define DAEMON_ERROR_LIMIT_REACHED "org.cella.LimitReached"

enum {
        DAEMON_HANDLE_STATUS = 1 << 0,
        DAEMON_HANDLE_HUP = 1 << 1,
        DAEMON_HANDLE_STOP = 1 << 2,
        DAEMON_HANDLE_WATCHDOG = 1 << 3,
        DAEMON_HANDLE_SHUTDOWN = 1 << 4,
};

struct Daemon {
        DaemonOptions o;
        const char *state_dir;
        const char *socket_path; /* o.socket_path, or socket_path_buf */
        char *socket_path_buf;   /* <state>/cellad.sock */
        int state_fd;
        int lock_fd;
        /* cellad.conf, read at start (src/memory/config.h, docs/config.md). */
        ManagerConfig config;
        Supervisor *sup;
        CgroupManager *cgm; /* the supervisor's (owned by it) */
        Control *control;   /* the supervisor's, also on socket_path (daemon_control_setup) */
        int n_listen_fds;   /* sockets systemd passed (sd_listen_fds) */
        int listen_fd;      /* our own public socket (bound here or handed over), or -EBADF */
        char *exe_path;     /* the binary SIGHUP executes (daemon_exe_path()), or NULL */
        bool notify;        /* $NOTIFY_SOCKET is set: sd_notify() is heard */
        bool journal;       /* stderr is the journal: log with sd_journal_send() */
        bool stop_told;     /* STOPPING=1 sent */
        bool ready;         /* READY=1 sent (daemon_ready()) */
        bool status_pending;
        uint64_t status_last_ms;
        unsigned handles; /* DAEMON_HANDLE_* initialized on the loop */
        uv_timer_t status_timer;
        uv_timer_t watchdog;
        uv_timer_t shutdown; /* org.cella.Shutdown: the stop starts after the reply */
        uv_signal_t hup;
        uv_signal_t stop[2];     /* SIGTERM, SIGINT: STOPPING=1 (the supervisor stops the apps) */
        struct DaemonPool *pool; /* --warm's sandboxes (pool.h); NULL: none */
        struct StoreCache *store_cache; /* the installed versions a start asks for
                                         * (store-methods.c, store_cache_app_dir()) */
        /* The state directory's cgroup tag (daemon_tag_get()). */
        char tag[DAEMON_TAG_MAX + 1];
        /* Under systemd (systemd.c): */
        CgroupManager *cgm_self; /* cellad's own leaf, when the apps' manager (cgm) is
                                  * another: the apps in their scope; else NULL */
        char scope[96];          /* the apps' scope unit, or "" (none: the apps in B/cella) */
        char **scope_v1_made;    /* folders made for it in unmanaged v1 hierarchies */
        int fdstore_listen;      /* our listening socket, from systemd's fd store, or -EBADF */
        int fdstore_keeper;      /* a connection to the keeper (fd store, or made to place
                                  * it), handed to the store once ready, or -EBADF */
};

/* ---- systemd.c: cellad under systemd (docs/daemon.md, "Under systemd") ---- */

/* The apps' scope: "<prefix>-<tag>.scope" (daemon_tag_get()) in DAEMON_SLICE, Delegate=yes; the
 * keeper in its DAEMON_SCOPE_KEEPER_LEAF leaf, the apps in cella/ beside it. */
#define DAEMON_SCOPE_PREFIX      "cella-apps"
#define DAEMON_SLICE             "cella.slice"
#define DAEMON_SCOPE_KEEPER_LEAF "keeper"
/* How long a call to systemd (and a scope's start job) may take. */
#define DAEMON_BUS_TIMEOUT_MS 10000

/* What daemon_scope_decide() looks at (daemon_systemd_env() fills it in). */
typedef struct DaemonSystemdEnv {
        int booted;                /* sd_booted(): > 0 when systemd is pid 1 of the host */
        const char *invocation_id; /* $INVOCATION_ID: set by systemd for a unit's process */
        const char *self_cgroup;   /* this process's cgroup2 path ("0::" of /proc/self/cgroup) */
        CgroupMode mode;           /* the backend cellad's cgroup manager drives */
} DaemonSystemdEnv;

/*
 * Whether cellad puts its apps in a scope of their own: only when systemd is the
 * host's init (sd_booted(3)), cellad is a unit's process ($INVOCATION_ID,
 * systemd.exec(5)), in a service's cgroup ("/....service", or its "/supervisor"
 * leaf), and the apps get cgroup2 leaves (mode v2 or hybrid: systemd tracks a
 * unit's processes in cgroup2 there). Returns 1, or 0 with *ret_why (a static
 * string saying which condition failed).
 */
int daemon_scope_decide(const DaemonSystemdEnv *e, const char **ret_why);

/* The environment of this process for daemon_scope_decide(), m's mode; *ret_cgroup
 * is the cgroup2 path e->self_cgroup points into (the caller frees it; NULL when
 * there is none). */
void daemon_systemd_env(CgroupManager *m, DaemonSystemdEnv *e, char **ret_cgroup);

/* The apps' scope of the state directory whose tag is tag (daemon_tag_get(), the
 * tag of its apps' leaves): "cella-apps-<tag>.scope" into buf. Returns 0, or
 * -ENAMETOOLONG (size too small). */
int daemon_scope_name(const char *tag, char *buf, size_t size);

/*
 * Puts the keeper (pid) into scope's keeper leaf, starting scope (StartTransientUnit,
 * Delegate=yes, Slice=cella.slice, the keeper its first process) when it does not
 * run, over systemd's private socket (root) or the system bus; nothing when the
 * keeper is there already. Returns 0 and *ret_cgroup, the scope's cgroup2 path
 * ("/cella.slice/<scope>"), or a negative errno (printed).
 */
int daemon_scope_place(const char *scope, const char *state_dir, pid_t pid, char **ret_cgroup);

/*
 * In the v1 hierarchies cella uses (memory, pids, cpu, cpuacct) that systemd does
 * not manage (it realizes a unit's cgroup only in the controllers it knows, as they
 * are mounted), the scope's path scope_cg may be missing: made, each folder made
 * listed in *ret_made (top first) for daemon_scope_v1_dirs_remove(), which removes
 * them deepest first where empty. Returns 0 or a negative errno (said; what was
 * made is in *ret_made).
 */
int daemon_scope_v1_dirs(const char *scope_cg, char ***ret_made);
void daemon_scope_v1_dirs_remove(char **made);

/* The names cellad gives the fds it stores (FDNAME=, sd_pid_notify_with_fds(3)).
 * A name systemd passes that does not start with the prefix is a socket unit's,
 * except "stored" (systemd's for a stored fd with no FDNAME=). */
#define DAEMON_FDNAME_PREFIX "cellad-"
#define DAEMON_FDNAME_LISTEN "cellad-listen" /* our listening control socket */
#define DAEMON_FDNAME_KEEPER "cellad-keeper" /* a connection to the keeper */
typedef enum DaemonFdKind {
        DAEMON_FD_SOCKET,  /* a socket unit's (cellad.socket) */
        DAEMON_FD_LISTEN,  /* DAEMON_FDNAME_LISTEN */
        DAEMON_FD_KEEPER,  /* DAEMON_FDNAME_KEEPER */
        DAEMON_FD_UNKNOWN, /* another "cellad-" name, or "stored": not ours */
} DaemonFdKind;
/* Which kind of fd name (LISTEN_FDNAMES, sd_listen_fds_with_names(3)) is. NULL: a
 * socket's. */
DaemonFdKind daemon_fdname_kind(const char *name);

/*
 * Checks an fd the store passed before it is used: _listen() that fd is a listening
 * Unix stream socket bound for path (or daemon_bind()'s "<path>.<...>") whose file
 * is still a socket of root's; _keeper() that it is a connected Unix seqpacket
 * socket whose peer is the listener at path (the keeper's socket), a process of
 * root's (or ours), with nothing to read and no hang-up. Return 0, or -EINVAL,
 * -EPERM or -ESTALE with *ret_why (a static string).
 */
int daemon_fdstore_check_listen(int fd, const char *path, const char **ret_why);
int daemon_fdstore_check_keeper(int fd, const char *path, const char **ret_why);

/*
 * Takes what systemd passed (sd_listen_fds_with_names(3)): a socket unit's fds stay
 * sockets, made fds 3.. again and the only ones LISTEN_FDS names from here (what a
 * re-exec hands on); the store's, after their checks, go to d->fdstore_listen and
 * d->fdstore_keeper; one that fails a check, or has a name not ours, is closed,
 * said, and dropped from the store (FDSTOREREMOVE=1). Sets d->n_listen_fds. Returns
 * their number, or a negative errno (printed).
 */
int daemon_fds_take(Daemon *d);

/* Hands fd (a copy: the caller keeps its own) to systemd's fd store as name;
 * _replace() first drops what the store held under that name. Said when refused. */
void daemon_fdstore_put(const char *name, int fd);
void daemon_fdstore_replace(const char *name, int fd);

/* adopt.c: the keeper's grace from $CELLA_KEEPER_GRACE (seconds, 0..86400), or
 * KEEPER_GRACE_DEFAULT_S (a bad value is said). */
unsigned daemon_keeper_grace(void);

/* STATUS= (throttled to DAEMON_STATUS_INTERVAL_MS) after a state change. */
void daemon_status_changed(Daemon *d);

/* control.c: listens on d->socket_path, or on the socket systemd passed, and adds the
 * daemon's own methods (Ping, Version, Shutdown). Returns 0 or a negative errno
 * (printed). */
int daemon_control_setup(Daemon *d);
void daemon_control_done(Daemon *d);

/* journal.c: the kernel's messages to the journal with their priority (a LogWriter
 * in place of the supervisor's stderr outlet), and one status record as one journal
 * entry with its CELLA_* fields. */
void daemon_journal_install(Daemon *d);
void daemon_journal_record(const json_t *record);

/* autostart.c: starts the installed apps with "autostart": true or a restart policy,
 * in dependency waves. Returns the number started, or a negative errno (printed). */
int daemon_autostart(Daemon *d);

/*
 * After app id was removed from the store (store-methods.c): ends the app methods'
 * streams on it (logs -f: the final reply; a wait: org.cella.NoSuchApp) and drops
 * its instance from the supervisor (supervisor_drop_app()). It does not run (the
 * Remove refused otherwise); a drop that cannot be done now is logged and the
 * instance stays, stopped (its next start finds it not installed: reload.c).
 */
void daemon_app_forget(Daemon *d, const char *id);

/* replay.c */
typedef struct DaemonReplay DaemonReplay;
typedef struct DaemonReplayOps {
        /* On the replay's thread: the event for audit record rec (a new object), or
         * NULL to leave it out. Must touch nothing but rec. */
        json_t *(*select)(const json_t *rec);
        /* On the loop: a batch of events (a JSON array, borrowed), in the log's order. */
        void (*batch)(json_t *events, void *userdata);
        /* On the loop: true while the consumer wants no next batch yet (its client's
         * queue is long: control_call_queued()); looked at again every 5 ms. */
        bool (*busy)(void *userdata);
        /* On the loop, once, at the end (not after daemon_replay_cancel()):
         * audit_read()'s return and report. */
        void (*done)(int r, const AuditVerifyReport *report, void *userdata);
} DaemonReplayOps;

/*
 * Reads state_dir's audit log (audit_read(), the records filter selects) on a
 * thread of its own, off the loop, handing ops->select()'s events to ops->batch()
 * on loop in batches of 256, the next one read only once the loop has taken the
 * last and ops->busy() says no (backpressure), then ops->done(). Returns 0 and *ret
 * (it frees itself after done or a cancel), or a negative errno (nothing called).
 */
int daemon_replay_start(uv_loop_t *loop, const char *state_dir, const AuditFilter *filter,
                        const DaemonReplayOps *ops, void *userdata, DaemonReplay **ret);

/* No more callbacks for r (its client went away): the thread stops at its next
 * record, and r is freed once it has. */
void daemon_replay_cancel(DaemonReplay *r);

/* logread.c */
/*
 * buf (n bytes of an app's output) as a JSON string: valid UTF-8 as it is, each
 * byte of an ill-formed sequence (base/utf8.h's rule) as U+FFFD. With ret_used (a
 * stream read in chunks), a character cut at the end is left out and *ret_used says
 * how many bytes were taken (the caller reads from there next). Returns a new string
 * or NULL (no memory).
 */
json_t *daemon_log_json_string(const char *buf, size_t n, size_t *ret_used);

/*
 * App id's output log in the folder dirfd, as `cella logs` prints it from the files:
 * <id>.log.N .. <id>.log.1, then <id>.log (supervisor/applog.h), of which the last
 * `lines` lines (0: all; a newline that is not the last byte ends a line), only
 * the lines written at since_us or later (0: all; each file's time index), and of
 * those the newest whole lines whose JSON string takes at most max_bytes (one
 * reply's bound; *ret_truncated set when older lines were left out). *ret_pos and *ret_ino: where
 * <id>.log ended and its inode (0 when it is missing), for a follow. Returns a new JSON string
 * (daemon_log_json_string()), "" when there is no log, or NULL (no memory).
 */
json_t *daemon_log_tail(int dirfd, const char *id, uint64_t lines, int64_t since_us,
                        size_t max_bytes, uint64_t *ret_pos, uint64_t *ret_ino,
                        bool *ret_truncated);

/* The exit code a failure gets in status records and `cella ps` (cella's numbering,
 * cli/exit-codes.h). */
int daemon_exit_code(const SupervisorError *e);

/* run-methods.c, exec-methods.c: before a re-exec, the runs (org.cella.Run) and the
 * commands (org.cella.Exec) in flight are killed and reaped: the new image would
 * know neither them nor their clients, whose connections the exec closes. */
void daemon_runs_end(void);
void daemon_execs_end(void);
