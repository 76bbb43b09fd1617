/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The supervisor: cella's kernel (docs/design.md section 1), embedded in `cella run` and
 * `cella boot`. One libuv loop owns every running app (an Instance), the broker that
 * serves their channels, the bus, the grants, the audit log, the control socket and
 * the permission prompt.
 *
 * An Instance is one app folder known to this kernel; it may run several times
 * (restarts, app.launch). Its run's phase: stopped -> running -> (exited | failed),
 * and with a restart policy running -> restarting -> running; the state `cella ps`
 * shows is one of Android's process states computed from it (lifecycle.h).
 * Lifecycle changes are written to the audit log ("lifecycle" records) and, with
 * --json-status, as JSON lines to the status fd.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "policy/manifest.h"
#include "sandbox/cgroup.h"
#include "supervisor/error.h"
#include "supervisor/lifecycle.h"

/* A stop is SIGTERM, then SIGKILL once this many ms have passed (systemd's
 * DefaultTimeoutStopSec: 90 s). Here rather than in supervisor-internal.h because
 * `cella stop` waits for it. */
#define SUPERVISOR_STOP_GRACE_MS 5000

typedef struct Supervisor Supervisor;
typedef struct Instance Instance;

/* Where the apps' stdout and stderr go. */
typedef enum SupervisorOutput {
        SUPERVISOR_OUTPUT_TERMINAL, /* copied to ours (cella run) */
        SUPERVISOR_OUTPUT_LOGS,     /* <state>/logs/<id>.log, capped and rotated (cella boot) */
} SupervisorOutput;

typedef struct SupervisorOptions {
        const char *state_dir; /* docs/design.md section 9 */
        uid_t uid_base;        /* host uid range for new apps */
        uint32_t uid_count;
        CgroupMode cgroup_mode; /* CGROUP_MODE_AUTO unless forced */
        SupervisorOutput output;
        int json_status_fd; /* JSON-lines status records go here; -1 for none */
        bool no_prompt;     /* refuse perm.request instead of asking on the terminal */
        char **roots;       /* "name=/host/path" user-file roots for fs.open; may be NULL */
        bool boot;          /* Ctrl-C stops every app (cella boot) instead of forwarding */
        bool raw_output;    /* apps' output to a terminal as it is, escapes included */
        bool tty;           /* cella run -t: the app gets a pty of its own (terminal.h) */
        /* The CLI's numbering of a failure (cella_exit_code()), for the "exit_code" of
         * records and cella ps; NULL: 1 for any failure. */
        SupervisorExitCode exit_code;
        /* cellad (src/daemon): the loop runs until supervisor_stop_all() or SIGTERM/SIGINT
         * stopped every app, not until the apps exit; SIGHUP is left to the daemon. */
        bool daemon;
        /* Not NULL: the cgroup manager to use, taken (freed with the supervisor, also on
         * failure); NULL: one made for /sys/fs/cgroup in cgroup_mode. */
        CgroupManager *cgm;
        /* Not NULL: called with each status record (the --json-status records, borrowed)
         * as it is made, whether or not a status fd is open (cellad: journald). */
        void (*status_cb)(const json_t *record, void *userdata);
        void *status_userdata;
        /* Not NULL: called with the keeper's pid each time the kernel connects to a
         * keeper (adopt.h: the first, and one that replaces a lost one), before any
         * app is handed to it (cellad under systemd: into the apps' scope). */
        void (*keeper_cb)(pid_t pid, void *userdata);
        void *keeper_userdata;
        /* Not NULL: the CPU weights by app state (src/memory/cpu.h, docs/memory.md
         * "CPU"), copied, written to each app's leaf (and a packed member's host) at
         * every state change, the default weight for every state if the table is
         * disabled; NULL: no CPU weight is written (cella run and boot: every
         * leaf keeps the kernel's default, every member its manifest's priority). */
        const struct CpuWeights *cpu_weights;
        /* Not NULL: the owner tag of the apps' cgroup leaves once a keeper holds them
         * (cgroup_manager_set_owner(); cellad: its state directory's tag,
         * daemon_tag_get()); NULL: "d<dev>i<ino>" of state_dir (hex). Borrowed. */
        const char *owner_tag;
        /* Not NULL: the swap caps by app state (src/memory/swap.h, docs/memory.md
         * "Compressed swap"), copied; written at every state change only where the
         * host compresses memory (zram, zswap), detected at start. NULL: none. */
        const struct SwapCaps *swap_caps;
        /* The apps' memory budget, bytes (cellad.conf memory.total; 0: none): the
         * memory report's reference, and the swap cap's base for an app without a
         * memory limit of its own. */
        uint64_t memory_budget;
        /* The app networks' range (cellad.conf net.group.range, docs/config.md): its
         * first address (host byte order; 0: the default, 10.213.0.0/16) and prefix
         * length, and each network's prefix length (net.group.prefix). */
        uint32_t net_group_range;
        unsigned net_group_range_prefix, net_group_prefix;
        /* The per-app proxy's port in each app's own network namespace (cellad.conf
         * net.proxy.port, docs/network.md "The proxy"): 0 the default
         * (NETPROXY_PORT_DEFAULT, 61080), -1 no proxy, else 1..65535. */
        int net_proxy_port;
        /* net.connect's per-app limits (cellad.conf net.*, docs/network.md "Limits"):
         * connections open, new ones a second, the bucket; 0: the broker's defaults. */
        uint64_t net_conns_max, net_rate, net_burst;
        /* keystore.*'s keys per app (cellad.conf keystore.keys_max, docs/ipc.md
         * "Keystore"); 0: read from the state directory's cellad.conf as net.* are. */
        uint64_t keystore_keys_max;
        /* The ipc quotas (cellad.conf ipc.*, docs/ipc.md "Quotas"); 0: the broker's
         * defaults. A kernel of its own reads them with the net.* keys. */
        uint64_t ipc_objects_max, ipc_handles_max, ipc_shm_bytes_max, ipc_pending_max,
                ipc_queue_depth_max, ipc_queued_bytes_max;
} SupervisorOptions;

/* The phase of an app's run, as instance.c and group.c drive it; the state `cella ps`
 * shows (InstanceState, lifecycle.h) is computed from it with the app's role and
 * freeze: instance_state(). */
typedef enum InstancePhase {
        INSTANCE_STOPPED,    /* not running: never started (installed), or stopped */
        INSTANCE_RUNNING,    /* its sandbox is up */
        INSTANCE_RESTARTING, /* exited; a restart is due after a delay */
        INSTANCE_EXITED,     /* exited and stays so (its restart policy, or stopped) */
        INSTANCE_FAILED,     /* could not start, or gave up restarting */
} InstancePhase;

/*
 * Opens the state dir, grants, audit log, bus, broker, cgroup manager and seccomp
 * filter, and starts listening on the control socket. Prints what went wrong.
 * Returns 0 and *ret, or a negative errno with *err (may be NULL).
 */
int supervisor_new(const SupervisorOptions *o, Supervisor **ret, SupervisorError *err);

/* Stops what still runs (SIGKILL), closes everything. Takes NULL; returns NULL. */
Supervisor *supervisor_free(Supervisor *s);

/* The kernel's control API (supervisor/control.h), listening on <state>/run/<pid>.sock
 * with the methods org.cella.{Ps, Stats, GrantsChanged, Stop}; the daemon adds its
 * methods and its public socket to it. NULL if it could not listen (a warning said
 * so at start). */
struct Control *supervisor_control(Supervisor *s);

/*
 * Registers the app in app_dir (its manifest m, which the supervisor now owns, even
 * on failure) with extra_args appended to its manifest args (may be NULL; copied),
 * in boot wave `wave`. Installs its normal and signature rights in grants.db.
 * Returns 0 and *ret (owned by s), or a negative errno with *err (may be NULL) after
 * printing why.
 */
int supervisor_add(Supervisor *s, const char *app_dir, Manifest *m, char *const *extra_args,
                   unsigned wave, Instance **ret, SupervisorError *err);

/*
 * Starts inst's sandbox and serves its channel. Returns 0, or a negative errno
 * after printing and recording why; what failed is instance_error(inst).
 */
int instance_start(Instance *inst);

/* Runs the loop until every app this run waits for is done (supervisor.c). */
void supervisor_loop(Supervisor *s);

/* The status of inst's last run: its own, 128+N for signal N
 * (SUPERVISOR_SIGNAL_STATUS_BASE), or if it failed to start the exit code
 * SupervisorOptions.exit_code gave its failure (docs/cli.md). */
int instance_exit_code(const Instance *inst);

/* Why inst's last start failed; step SUPERVISOR_STEP_NONE if it did not. */
const SupervisorError *instance_error(const Instance *inst);

const Manifest *instance_manifest(const Instance *inst);

/* The daemon's view of the kernel (daemon-mode.c): what src/daemon needs without the
 * supervisor's internals. */
/* The supervisor's libuv loop (runs in supervisor_loop()). */
uv_loop_t *supervisor_uv_loop(Supervisor *s);

/*
 * Opens at once what a kernel otherwise opens with its first app (grants, audit log,
 * bus, broker, and the control socket <state>/run/<pid>.sock). Returns 0 or a negative
 * errno with *err (may be NULL), printed.
 */
int supervisor_open(Supervisor *s, SupervisorError *err);

/*
 * An orderly stop of every app, as `cella boot` on Ctrl-C: apps first, then services,
 * the ones others depend on last (wave by wave in reverse); kill: SIGKILL at once.
 * supervisor_loop() returns once nothing runs any more (in daemon mode too).
 */
void supervisor_stop_all(Supervisor *s, bool kill);

/* Before cellad re-executes itself (SIGHUP): the apps' full networks (net.internet,
 * docs/network.md) are cut and their pasta reaped, since the new image could neither
 * revoke nor reap a pasta it does not know; the apps run on with loopback only. */
void supervisor_drop_networks(Supervisor *s);

/*
 * grants.db changed for app_id (NULL: any app), by `cella grant`/`revoke`, an
 * install, or another kernel: everything this kernel opened under a right is checked
 * again, in this order: net.internet's interface and its exceptions, the broker's
 * grants cache (handles of lost rights closed), port forwards, app networks (a
 * revoked net.group's interface is gone when this returns). Never fails: each part
 * logs its own trouble.
 */
void supervisor_grants_changed(Supervisor *s, const char *app_id);

/*
 * app_id was forgotten (cellad's Remove without keep_data, after app_forget()): the
 * kernel-held things it created and this kernel serves go too, today its ipc queues
 * (broker_ipc_queue_forget_owner(): live objects destroyed, holders told
 * "destroyed", persistent rows deleted). Never fails: logs its own trouble.
 */
void supervisor_app_forgotten(Supervisor *s, const char *app_id);

/* True once supervisor_stop_all() or a stopping signal came. */
bool supervisor_stopping(const Supervisor *s);

/*
 * Counts the apps by state into counts[0..n-1], indexed by InstanceState (a state
 * >= n is not counted). Returns the number of apps.
 */
size_t supervisor_count_states(const Supervisor *s, size_t *counts, size_t n);

/* The app registered with s under id, or NULL. */
Instance *supervisor_find(Supervisor *s, const char *id);

/* True if an app with this id is registered with s. */
bool supervisor_has_app(Supervisor *s, const char *id);

/*
 * supervisor_add() with no extra args for a kernel that goes on after a refusal (the
 * daemon's autostart): an app registered and then refused (its id claimed by another
 * folder or key, its packed group) is marked failed with the error, so that
 * supervisor_start_added() never starts it. Returns as supervisor_add().
 */
int supervisor_add_or_fail(Supervisor *s, const char *app_dir, Manifest *m, unsigned wave,
                           SupervisorError *err);

/* The lower-case name of a state, as `cella ps` shows it. */
const char *supervisor_state_name(InstanceState st);

/*
 * Where the installed app id's files are now: 0 and *ret_dir (the folder; the caller
 * frees it), -ENOENT when id is not installed, or another negative errno.
 */
typedef int (*SupervisorAppDirFn)(const char *id, char **ret_dir, void *userdata);

/*
 * Makes every start and restart of an app of s (asked for, or by its restart policy)
 * run the version fn names at that moment (cellad: the store's store_app_dir()):
 * a new version's manifest is loaded, its folder claimed and its rights installed
 * again (reload.c, docs/store.md "Updates and running apps"); an app fn says is not
 * installed is not started. A running app keeps its version until it ends.
 */
void supervisor_set_app_dir_fn(Supervisor *s, SupervisorAppDirFn fn, void *userdata);

/* Every installed app's folder now (cellad: the store's installed versions), as a
 * strv in *ret_dirs (caller frees). Returns 0 or a negative errno. */
typedef int (*SupervisorInstalledFn)(char ***ret_dirs, void *userdata);

/*
 * Makes each start of a packed group's host (group.c) register first every app fn
 * names whose manifest puts it in that group and that s does not hold yet, without
 * starting it: the host's jail, spec, stats file and cgroup limits then have a slot
 * for it, and `cella start` of it joins the running host (docs/design.md section
 * 10, "A Lua app joining its group's running host"). Without fn (cella boot), a
 * group is the apps registered with it.
 */
void supervisor_set_installed_fn(Supervisor *s, SupervisorInstalledFn fn, void *userdata);

/*
 * Forgets inst, an app of s that does not run (installed, stopped or failed, nothing
 * of its last run pending), as when its app was removed from the store: it is no
 * longer listed nor found, and a later registration of its id starts afresh. inst
 * is freed (at once, or once libuv has closed its timer). Returns 0; -EBUSY (it runs,
 * a restart or the clean-up of its run is pending), -EOPNOTSUPP (a packed app: its
 * group holds it), -ENOENT (not an app of s).
 */
int supervisor_drop_app(Supervisor *s, Instance *inst);

/* The records of `cella ps` (docs/api.md, org.cella.Ps) of every app registered with s,
 * in the order they were added: a new JSON array, or NULL (no memory). */
json_t *supervisor_ps_records(Supervisor *s);

/* The host pid of inst's running sandbox (its packed group's host when packed), or 0
 * when it does not run. */
pid_t instance_pid(const Instance *inst);

/*
 * Where the supervisor takes a warm sandbox for a spawn (cellad's pool,
 * src/daemon/pool.c): take(spec, userdata) returns one that fits spec
 * (sandbox_warm_fits()), which the spawn then owns, or NULL for a cold spawn. Its
 * refill must not run in take (it runs after the start is answered). NULL take:
 * every spawn is cold (cella run, cella boot).
 */
struct SandboxSpec;
struct SandboxWarm;
typedef struct SandboxWarm *(*SupervisorWarmTake)(const struct SandboxSpec *spec, void *userdata);
void supervisor_set_warm_source(Supervisor *s, SupervisorWarmTake take, void *userdata);
