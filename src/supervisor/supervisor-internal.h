/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by supervisor.c (the kernel) and instance.c (one app's runs). */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "audit/audit.h"
#include "base/termsafe.h"
#include "broker/broker.h"
#include "ipc/bus.h"
#include "memory/cpu.h"
#include "memory/level.h"
#include "memory/swap.h"
#include "memory/policy.h"
#include "net/forward.h"
#include "net/relay.h"
#include "policy/grants.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"
#include "supervisor/applog.h"
#include "supervisor/control.h"
#include "supervisor/error.h"
#include "supervisor/prompt.h"
#include "supervisor/launch.h"
#include "supervisor/luahost.h"
#include "supervisor/netproxy.h"
#include "supervisor/memory-report.h"
#include "supervisor/outlet.h"
#include "supervisor/restart.h"
#include "supervisor/sandboxed.h"
#include "supervisor/state.h"
#include "supervisor/supervisor.h"

#define SUPERVISOR_PUMP_BUFFER 65536 /* bytes copied per read, one pipe's default capacity */
/* Observers (outlet.h): bytes an outlet buffers while its reader lags, and of them
 * the bytes the apps' output may fill (the rest is kept for the kernel's own
 * messages); a pipe holds 64 KiB more by default (pipe(7)). */
#define SUPERVISOR_OUTLET_MAX        (256u * 1024u)
#define SUPERVISOR_OUTLET_STREAM_MAX (192u * 1024u)
/* --json-status: about 2,500 records of ~400 bytes, all of a boot of 1,000 apps
 * starting; past it records are dropped and counted ({"event":"dropped"}). */
#define SUPERVISOR_STATUS_MAX (1024u * 1024u)
/* At exit, the time the observers get to read what is still buffered. */
#define SUPERVISOR_OUTLET_LINGER_MS 1000u
/* RLIMIT_NOFILE the kernel raises itself to (if fs.nr_open allows): a packed group of
 * LUAHOST_APPS_MAX apps needs about 3 fds per app at its start. */
#define SUPERVISOR_NOFILE_MAX (1u << 18)
/* HEAD of the audit log lags its records by at most this (AuditOptions.sync_lag_ms):
 * journald's SyncIntervalSec is 5 min; auditd syncs every 50 records or so. */
#define SUPERVISOR_AUDIT_SYNC_LAG_MS 5000

typedef struct Group Group;
typedef struct SupervisorKeeper SupervisorKeeper;
typedef struct Lifecycle Lifecycle;

typedef struct Pump {
        Instance *inst;    /* its app; NULL for a group host's own output */
        Group *group;      /* not NULL: the pump belongs to a packed group's run */
        int from;          /* pipe read end (ours), or a terminal's description of our own */
        Outlet *outlet;    /* where its bytes go (cella run), or NULL: */
        AppLog *log;       /* not NULL: bytes go here instead */
        OutletWaiter wait; /* on outlet's queue while it has no room */
        TermSafe safe;     /* sanitize: the stream's state between reads */
        bool sanitize;     /* the outlet is a terminal: render controls visibly (termsafe.h) */
        bool open;
        bool waiting; /* not reading from: its outlet has no room */
        bool closing; /* uv_close() called, callback pending */
        uv_poll_t poll;
} Pump;

struct Instance {
        Supervisor *sup;
        Manifest *manifest;
        char *app_dir;
        char *data_dir;
        char **extra_args;
        unsigned wave;
        bool signed_ok;
        char key_id[17]; /* SIGNATURE_KEY_ID_CHARS + 1: the key that verified it; "" unsigned */
        bool installed;  /* its rights are recorded in grants.db (instance_install) */
        int app_fd;      /* O_PATH of the folder claimed (instance_claim): for a signed
                            app, verified again at each start and bound as its /app */
        InstancePhase state;
        InstanceLife life; /* its role, freeze and recorded state (lifecycle.c) */

        SandboxedRun run; /* its sandbox while it runs alone (unused when packed) */
        Pump out, err, in;
        Outlet *in_outlet; /* the pipe to the app's stdin, fed from our terminal (cella run),
                            * or (cella run -t) to its pty's master */
        int pty_master; /* cella run -t: its pty's master (out.from's, while out.open), else -1 */
        int pty_hold;   /* cella run -t: our own copy of that master, kept until the app
                         * has exited: an app that closes its stdio before it exits
                         * (coreutils do) makes out.from read EIO, and the last master fd
                         * closed then would hang its terminal up: SIGHUP, exit 129 */
        AppLog *log;
        BrokerApp *broker_app;
        struct AppNet *net;  /* net.internet's network while it runs (appnet.h); NULL: none */
        NetProxy *proxy;     /* its proxy (netproxy.h) while it runs, or NULL */
        uid_t uid;           /* the host uid it runs as (its group host's when packed) */
        int64_t started_ms;  /* wall clock of the last start */
        uint64_t started_ns; /* monotonic */
        bool stop_requested; /* we asked it to stop */
        int exit_code;
        SupervisorError error; /* why its last start failed (step NONE: it did not) */
        SandboxExit last_exit;
        Group *group;         /* packed: the group whose host runs it (group.c); else NULL */
        uint32_t group_index; /* its record in the host's spec and stats file */
        uint32_t group_run;   /* the run of that slot it runs as: 0 started with the host,
                                 else its JOIN's (group.c, group_join()) */
        bool group_wanted;    /* a start of the host starts it (else it only has a slot) */
        bool group_slot;      /* the host's last start made it a slot (group.c) */
        bool group_served;    /* it ran in the running host (its stats record is its) */
        /* The memory manager's (memory-actions.c): the soft limit a reclaim found, to
         * restore (UINT64_MAX: none), while mem_reclaimed; the band + 1 last mirrored
         * into its processes' oom_score_adj (0: none yet). */
        bool mem_reclaimed;
        uint64_t mem_reclaim_previous;
        int oom_band_applied;
        bool mem_swap_warned;  /* a swap cap write failed: said once (memory-report.c) */
        json_t *mem_last_kill; /* the last memory.kill record's fields (cella inspect) */
        /* Between a start's lifecycle_started() and its supervisor_keeper_hold()
         * (adopt.c): the HOLD carries the state, no NOTE goes before it. */
        bool keeper_hold_due;

        /* What the memory manager did to it this episode (memory-manager.c). */
        MemoryPolicyApp mem_policy;

        /* Its port forwards while it runs (ports.c); NULL: none opened this run. */
        NetForward *ports;
};

/*
 * A packed group (group.c): the apps with "isolation": "packed" and one "group",
 * run as one cella-lua host in one sandbox. Each member stays an Instance of its
 * own (broker channel, rights, log, state); the group owns the host's sandbox.
 */
struct Group {
        Supervisor *sup;
        char *name;
        Instance **members; /* in the order of the spec and the stats file */
        size_t n_members;
        InstancePhase state;
        SandboxedRun run; /* the host's sandbox */
        Pump out, err;    /* the host's own stdout/stderr */
        AppLog *log;      /* logs/group.<name>.log (cella boot) */
        char *label;      /* "packed group <name>", for messages */
        uv_timer_t watch; /* looks for members that ended while the host lives */
        bool watch_init;
        bool stop_requested;  /* we asked it to stop: no restart */
        int oom_band_applied; /* the host's band + 1 last in its oom_score_adj (memory-actions.c) */
        int exit_code;        /* of its host's last run, or of its failed start */
        SupervisorError error; /* why its last start failed (step NONE: it did not) */
        /* While the host runs: our end of its control channel (src/lua/hostctl.h),
         * or -EBADF once it is closed; the members it was started with (its slots,
         * members[0..n_slots)) and the folder bound at /apps/<id> for each; the
         * JOIN runs numbered so far. */
        int ctl_fd;
        size_t n_slots;
        char **slot_dirs;
        uint32_t runs;
};

struct Supervisor {
        SupervisorOptions o;
        uv_loop_t loop;
        bool loop_ready;
        State *state;
        Grants *grants;
        AuditLog *audit;
        Bus *bus;
        Broker *broker;
        BrokerHost *host;
        CgroupManager *cgm;
        SeccompProgram *filter;
        Prompt *prompt;
        struct PromptCall *prompt_calls; /* questions the broker is waiting on */
        Control *control;
        /* Observers (outlet.h): the apps' output (cella run), the kernel's messages,
         * the --json-status records. NULL when not used. */
        Outlet *out_outlet, *err_outlet, *status_outlet;
        bool signalled;    /* SIGINT, SIGTERM or SIGHUP came */
        bool prompting;    /* a question owns the terminal (prompt_begin .. prompt_end) */
        bool prompt_unraw; /* prompt_begin() took the terminal out of raw mode (cella run -t) */
        uv_signal_t signals[4]; /* SIGINT, SIGTERM, SIGHUP; SIGWINCH with o.tty */
        unsigned n_signals;
        uv_check_t flush;
        bool flush_init;
        int interrupts;
        bool stopping;
        bool freeing;                /* supervisor_free() runs: no more reports or restarts */
        bool running;                /* in supervisor_loop()'s uv_run() */
        bool ready;                  /* supervisor_ready() ran; ready_error is its failure */
        SupervisorError ready_error; /* step SUPERVISOR_STEP_NONE: it worked */
        bool init_warned;            /* supervisor_check_init() said cella-init could not run */
        bool sweep_pending;          /* supervisor_sweep() is to run once (cella run) */
        Instance **apps;
        size_t n_apps;
        Group **groups;
        size_t n_groups;
        SupervisorKeeper *keeper;      /* cellad: its apps' keeper (adopt.c); NULL: none */
        Lifecycle *lifecycle;          /* listeners and pending restarts (lifecycle.c) */
        SupervisorAppDirFn app_dir_fn; /* cellad: an installed app's folder now (reload.c) */
        void *app_dir_userdata;
        SupervisorInstalledFn installed_fn; /* cellad: the installed apps (group.c) */
        void *installed_userdata;
        /* cellad's warm pool (supervisor_set_warm_source()); NULL: every spawn cold. */
        SupervisorWarmTake warm_take;
        void *warm_userdata;
        CpuWeights cpu; /* CPU weights by state: a copy of o.cpu_weights */
        bool cpu_apply; /* o.cpu_weights was given: apply them (cpushare.c) */
        /* memory-report.c: swap caps, the ring of recent memory.* records. */
        SwapCaps swap;      /* a copy of o.swap_caps */
        bool swap_apply;    /* o.swap_caps given and enabled, and memory compressed */
        SwapInfo swap_info; /* the host's swap, detected at start */
        json_t *mem_recent[SUPERVISOR_MEMORY_RECENT_MAX];
        size_t mem_recent_next, mem_recent_n;
        uint64_t mem_recorded; /* records kept since the start */

        /* cellad's memory manager (memory-manager.c); NULL: none. While it acts,
         * mem_context holds the fields added to each memory.* record it makes. */
        struct MemoryManager *mm;
        json_t *mem_context;

        /* The app networks (netgroups.c, src/net/group.h); NULL until an app asks. */
        struct NetGroups *netgroups;
        /* The apps' full networks (appnet.c), those of ended runs until pasta is reaped. */
        struct AppNet *appnets;
        /* The relay of the port forwards (ports.c), made at the first; NULL: none. */
        NetRelay *relay;
};

/* instance.c */
/* Sets up inst->run (sandboxed.h), once inst->sup and inst->manifest are set. */
void instance_init_run(Instance *inst);
void instance_free(Instance *inst);
/* Starts copying from `from` (a pipe's read end, or a description of our own of a
 * terminal; made non-blocking) into log when not NULL, else to outlet, whose room
 * it waits for (the producer blocks on its pipe meanwhile); rendered safe
 * (termsafe_stream) when the outlet is a terminal and --raw-output is not given.
 * The pump belongs to inst and/or g (its end is reported to g if set, else to
 * inst). On failure from is left open for the caller. Returns 0 or a negative
 * errno / libuv error. */
int pump_start(Supervisor *s, Instance *inst, Group *g, Pump *p, int from, Outlet *outlet,
               AppLog *log);
void pump_close(Pump *p);
/* Writes the exit record (status, audit, log line) of a Lua app whose run ended
 * with code (its cella-lua exit code or fault, or 128+N for signal N); in_group:
 * it ended inside a packed host. */
void instance_report_lua_exit(Instance *inst, int code);
/* Opens inst's log under <state>/logs if output goes to logs. Returns 0 or a
 * negative errno with *err (printed). */
int instance_open_log(Instance *inst, SupervisorError *err);
/* Moves fd to a number >= 4 (SandboxSpec.extra_fds), closing the old one. Returns
 * the new fd or -errno (fd closed). */
int fd_above_stdio(int fd);

/* ports.c (ports.h; docs/network.md, "Port forwarding"). _started(): after inst's
 * start, opens its manifest's "ports" (each under its net.listen right; one that
 * cannot open is listed failed or not granted, said and audited: the app runs on).
 * _stopped(): its run ended: every forward and connection closes now (reason for
 * the records). _grants_changed(): app_id's grants (NULL: any app's) changed: forwards
 * whose right went close, those whose right came open. _free(): at the kernel's end. */
void supervisor_ports_started(Instance *inst);
void supervisor_ports_stopped(Instance *inst, const char *reason);
void supervisor_ports_grants_changed(Supervisor *s, const char *app_id);
void supervisor_ports_free(Supervisor *s);

/* adopt.c (adopt.h): the keeper. After an app's start: hand its fds to the keeper;
 * at its run's end (its sandbox still there): drop them; in supervisor_free(): tell
 * the keeper to go (every app is stopped by then). Each does nothing without a
 * keeper; a keeper that went is replaced (its apps handed over again). */
void supervisor_keeper_hold(Instance *inst);
void supervisor_keeper_drop(Instance *inst);
/*
 * A packed group's host (adopt.c, keeper.h "KeeperKind"): its HOST set, handed to
 * the keeper once the host runs and every member it started is held
 * (supervisor_keeper_hold() of each, which holds a member's own MEMBER set: call
 * it for an app that joins a running host too), and again when the host's stats
 * file is replaced; dropped when the host's run ends. A member that ends alone
 * is dropped with supervisor_keeper_drop(). Each does nothing without a keeper.
 */
void supervisor_keeper_hold_group(Group *g);
void supervisor_keeper_drop_group(Group *g);
void supervisor_keeper_close(Supervisor *s);
/* At the end of an orderly stop (supervisor_loop(), every app ended): tells the
 * keeper to go and waits (at most KEEPER_REPLY_TIMEOUT_MS) until it has. */
void supervisor_keeper_bye(Supervisor *s);

/* group.c */
/* Adds inst (a packed manifest) to its group, creating the group. Returns 0 or a
 * negative errno with *err (printed: two members that disagree on the scheduler). */
int group_add(Supervisor *s, Instance *inst, SupervisorError *err);
/* Starts the group's host with its wanted members (Instance.group_wanted; every
 * member under cella boot), with a slot for each member. Returns 0 or a negative
 * errno; each wanted member's error says what failed. */
int group_start(Group *g);
/*
 * Starts member inst: when the host does not run, the host (group_start()) with
 * all its members (cella boot) or, in cellad, with inst alone and a slot for each
 * installed member (supervisor_set_installed_fn()); when it runs, inst alone into
 * it (group_join(): a JOIN on the host control channel, docs/lua-api.md "Joining a
 * running host"). Returns 0 or a negative errno with inst->error after a message
 * (the host and its other members untouched).
 */
int group_start_member(Instance *inst);
/* As instance_stop(), for the whole host. */
void group_stop(Group *g, bool kill);
/* Stops member inst alone (a STOP on the control channel) while other members run
 * in its host; the whole host (group_stop()) when it is the last one running. */
void group_stop_member(Instance *inst, bool kill);
/* Called by pump_closed() for a group's pumps. */
void group_maybe_finished(Group *g);
void group_free(Group *g);
/*
 * The host of g, whose members (registered, each with its group_index from its
 * keeper record) an earlier cellad started, now runs under this kernel
 * (supervisor_adopt_all(); g->run.sandbox, uid, started_ms/ns, restarts and stats
 * set): opens the group's log, pumps the host's own stdout (out_fd) and stderr
 * (err_fd) into it, watches the sandbox and the members, and marks g running.
 * ctl_fd (-EBADF: none) is our end of the host's control channel (src/lua/hostctl.h)
 * as the keeper held it, n_slots the host's stats records: with it, the slot of each
 * member registered now (g->members' group_index, group_run set from their records)
 * is held as its folder again, so that a member stopped later joins the host again
 * (group_join()), and g->runs continues past the members' runs. Without it no member
 * can join or stop alone (a stop of one stops the host with the last). The members
 * are served by the caller. Returns 0 or a negative errno (printed); the fds are
 * taken either way.
 */
int group_adopted(Group *g, int out_fd, int err_fd, int ctl_fd, uint32_t n_slots);
/* {"host", "group", "pid", and luastats_json()'s fields} of g's running host, or NULL. */
json_t *group_stats(Group *g, const char *only);
/* Sends one message of src/lua/hostctl.h (len bytes) with n_fds fds on g's control
 * channel, never blocking. Returns 0, -EAGAIN (the host's queue is full), or -EPIPE
 * (the host is ending; the channel is closed then). */
int group_ctl_send(Group *g, const void *msg, size_t len, const int *fds, unsigned n_fds);

/* cpushare.c (docs/memory.md "CPU") */
/* The CpuClass (src/memory/cpu.h) of state st: foreground, visible, service,
 * background; cached for cached and frozen; -ENODATA for a state that is not
 * running (or starting, stopping), whose weight is left as it is. */
int supervisor_cpu_class(InstanceState st);
/* inst's state is now to (lifecycle_note()): writes its class's CPU weight to its
 * cgroup leaf, or for a packed member sends its host a PRIORITY and sets the host's
 * leaf to its most important member's weight. Nothing without
 * SupervisorOptions.cpu_weights. A failure is logged. */
void supervisor_cpu_note(Instance *inst, InstanceState to);
/* Asks inst to stop: SIGTERM, SIGKILL after the grace period (kill: at once). */
void instance_stop(Instance *inst, bool kill);
/* True if inst runs or will run again by itself. */
bool instance_active(const Instance *inst);
/* A JSON record for `cella ps`. */
json_t *instance_record(const Instance *inst);

/* netgroups.c: the app networks (docs/network.md, "App networks"). */
/* Where the member apps' hosts files live, below the state directory. */
#define SUPERVISOR_NET_DIR "net"
/* Whether m asks for any net.group right (its hosts file is then bound at /etc/hosts). */
bool netgroups_wanted(const Manifest *m);
/* A packed app (m) asking for net.group: refused, at its registration (group_add():
 * it never joins a host) and at every start (a message, an audit record and *err;
 * returns -EOPNOTSUPP); else 0. */
int netgroups_refuse_packed(Supervisor *s, const Manifest *m, SupervisorError *err);
/* Before the spawn: *ret_path (free it) is the hosts file to bind at /etc/hosts, or
 * NULL when inst asks for no net.group. Returns 0 or -errno, after a message. */
int instance_net_hosts(Instance *inst, char **ret_path);
/* While inst's sandbox starts, before the app runs (SandboxSpec.net_ready; pidfd: its
 * init): joins the networks it holds net.group rights for (a failure is said and
 * audited; the app runs on without that network). Needs supervisor_ready() and
 * instance_install() done. */
void instance_net_starting(Instance *inst, int pidfd);
/* inst was adopted from an earlier kernel (adopt.c): its networks died with that
 * kernel's hubs; it joins them again, and its hosts file is rewritten in place. */
void instance_net_adopted(Instance *inst);
/* Once inst's run ended: leaves every network (the interface's deletion goes to the
 * threadpool: never a wait) and forgets its hosts file. */
void instance_net_stopped(Instance *inst);
/* After the grants of app_id (NULL: any app) changed: a revoked net.group takes the
 * interface away now, a new one adds it. */
void supervisor_net_grants_changed(Supervisor *s, const char *app_id);
#define SUPERVISOR_NET_METHODS 1
extern const ControlMethod supervisor_net_methods[SUPERVISOR_NET_METHODS];

/* supervisor.c */
/* After a signal, once no sandbox of this kernel runs any more, gives up on output
 * nobody reads (outlet_abandon), so that the run can end. */
void supervisor_output_check(Supervisor *s);
/* After sandbox_process() on sb: if its pid 1 could not exec cella-init (it runs
 * the built-in init loop, a copy of the kernel's memory), says so, once per
 * kernel. */
void supervisor_check_init(Supervisor *s, const Sandbox *sb);
/* If s->sweep_pending: clears it and removes the cgroups left by cella processes
 * that are gone (cgroup_sweep()), saying what failed. */
void supervisor_sweep(Supervisor *s);
/* Opens grants, audit log, bus, prompt, control socket and broker, once. Returns 0
 * or a negative errno with *err (may be NULL; printed, and the same on every later
 * call). Called once the first sandbox runs. */
int supervisor_ready(Supervisor *s, SupervisorError *err);
/* Records inst's rights (its signature verified at its claim) in grants.db (once
 * per kernel). Needs supervisor_ready(). Returns 0 or a negative errno with *err
 * (printed). */
int instance_install(Instance *inst, SupervisorError *err);
/* The exit code s->o.exit_code gives e (for records and cella ps). */
int supervisor_exit_code(const Supervisor *s, const SupervisorError *e);

/*
 * Before each start of inst (instance_start, group_start): a signed app's folder
 * (inst->app_fd) is verified again, as it is now, and must still pass
 * signature_verify() with the key the id was claimed with; an unsigned app is not
 * looked at. Returns 0, or a negative errno with *err (step SUPERVISOR_STEP_STATE)
 * after logging, recording and auditing why the start is refused.
 */
int instance_verify_again(Instance *inst, SupervisorError *err);
/* Writes o (one JSON line) to the status fd, if any, and drops o either way. */
void supervisor_status(Supervisor *s, json_t *o);
/* Appends a lifecycle record to the audit log (fields: stolen). */
void supervisor_audit(Supervisor *s, const char *app, const char *event, json_t *fields);
/* Called by instance.c whenever an instance's state changed: may end the loop. */
void supervisor_changed(Supervisor *s);
/* Binds inst's id to its folder (signature, identity: docs/security.md, "App
 * identity"), at its registration and when reload.c loads a new version. Returns 0
 * or a negative errno with *err. */
int instance_claim(Supervisor *s, Instance *inst, SupervisorError *err);

/* reload.c */
/*
 * Before each start of inst (instance_start, group_start, a restart by policy or
 * asked for): with a resolver set (supervisor_set_app_dir_fn), the folder of the
 * version installed now; if it is not inst's, loads its manifest, claims it
 * (instance_claim) and marks the rights to be installed again at the spawn
 * (instance_install), all in place. A version that changes the app's packed group
 * or isolation is refused (-EBUSY), as is an app no longer installed (-ENOENT).
 * Returns 0, or a negative errno with *err (may be NULL) after printing why; inst is
 * unchanged then.
 */
int instance_reload(Instance *inst, SupervisorError *err);
