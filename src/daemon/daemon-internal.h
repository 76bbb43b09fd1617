/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the files of src/daemon: the Daemon itself. */

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "audit/audit.h"
#include "daemon/daemon.h"
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
        Supervisor *sup;
        CgroupManager *cgm; /* the supervisor's (owned by it) */
        Control *control;   /* the supervisor's, also on socket_path (daemon_control_setup) */
        int n_listen_fds;   /* sockets systemd passed (sd_listen_fds) */
        int listen_fd;      /* our own public socket (bound here or handed over), or -EBADF */
        char *exe_path;     /* the binary SIGHUP executes (daemon_exe_path()), or NULL */
        bool notify;        /* $NOTIFY_SOCKET is set: sd_notify() is heard */
        bool journal;       /* stderr is the journal: log with sd_journal_send() */
        bool stop_told;     /* STOPPING=1 sent */
        bool status_pending;
        uint64_t status_last_ms;
        unsigned handles; /* DAEMON_HANDLE_* initialized on the loop */
        uv_timer_t status_timer;
        uv_timer_t watchdog;
        uv_timer_t shutdown; /* org.cella.Shutdown: the stop starts after the reply */
        uv_signal_t hup;
        uv_signal_t stop[2];     /* SIGTERM, SIGINT: STOPPING=1 (the supervisor stops the apps) */
        struct DaemonPool *pool; /* --warm's sandboxes (pool.h); NULL: none */
};

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
