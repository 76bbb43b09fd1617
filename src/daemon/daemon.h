/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * cellad, the long-running kernel (docs/daemon.md): one Supervisor in daemon mode
 * (SupervisorOptions.daemon) that owns the apps installed in one state directory,
 * behind the control API v2 on <state>/cellad.sock (docs/api.md). One cellad per
 * state directory: <state>/cellad.lock, flock(2)ed for the daemon's life.
 *
 * The other parts hook in through three functions, which daemon.c calls in this
 * order at start, after the supervisor and the control socket exist and before
 * READY=1 (sd_notify) and the --ready-fd line:
 *
 *   daemon_adopt(d)          adopt the apps a previous cellad left running (keeper)
 *   daemon_store_methods(d)  the store's control methods (store)
 *   daemon_app_methods(d)    the apps' lifecycle methods (life)
 *
 * then the installed apps with "autostart": true or a restart policy are started,
 * in the dependency waves of `cella boot` (bootorder.h).
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "sandbox/cgroup.h"
#include "supervisor/control.h"
#include "supervisor/supervisor.h"

typedef struct Daemon Daemon;

/* The daemon's own files in the state directory. */
#define DAEMON_SOCKET_FILE "cellad.sock"
#define DAEMON_LOCK_FILE   "cellad.lock"

/* Exit codes of cellad (docs/daemon.md, "Exit codes"); 0 after an orderly stop.
 * 1, 2 as most daemons (a failure, a usage error); 3 when another cellad holds the
 * state directory, so that a script or a unit (RestartPreventExitStatus=3) can tell
 * it from a failure worth a restart. */
#define DAEMON_EXIT_FAILURE 1
#define DAEMON_EXIT_USAGE   2
#define DAEMON_EXIT_LOCKED  3

/* The cgroup leaf the daemon's own process moves into (docs/daemon.md, "Cgroups"). */
#define DAEMON_CGROUP_LEAF "supervisor"
/* The cgroup made for the daemon when it does not have a cgroup of its own (run bare
 * from a shell: its cgroup holds the shell too): "cellad-<tag>", the tag of its state
 * directory (daemon_tag_get(), daemon_cgroup_setup()). */
#define DAEMON_CGROUP_BASE "cellad"

/* The state directory's cgroup tag (docs/daemon.md "Cgroups", "The tag"): one line
 * "<tag> d<dev>i<ino>", the tag and the directory it was made for. */
#define DAEMON_TAG_FILE "cellad.tag"
#define DAEMON_TAG_MAX  CGROUP_OWNER_TAG_MAX

/* STATUS= is sent at most once per this many ms (sd_notify(3): a status line is
 * for people; the apps' states can change thousands of times a second at a boot). */
#define DAEMON_STATUS_INTERVAL_MS 250

typedef struct DaemonOptions {
        const char *state_dir;   /* docs/design.md section 9 */
        const char *socket_path; /* NULL: <state_dir>/cellad.sock */
        int ready_fd;            /* >= 0: "READY\n" is written here once ready, then closed */
        int lock_fd;             /* >= 0: the lock, inherited over a re-exec (--lock-fd) */
        int listen_fd; /* >= 0: the public socket, inherited over a re-exec (--listen-fd) */
        CgroupMode cgroup_mode; /* CGROUP_MODE_AUTO unless forced */
        uid_t uid_base;         /* host uid range for new apps */
        uint32_t uid_count;
        const char *exe;   /* what SIGHUP re-executes: NULL: /proc/self/exe */
        char **argv;       /* the command line to re-execute with (borrowed) */
        bool no_autostart; /* --no-autostart: start no installed app at start */
        /* --no-cpu-weights: every app's CPU weight stays the default (100) whatever
         * its state (docs/memory.md "CPU"; bench/cpu-share's baseline). */
        bool no_cpu_weights;
        /* --no-memory-manager: no pressure trigger armed, no action taken by the memory
         * manager (docs/memory.md "The manager"; bench/memory's other modes). The budget
         * and the bands' oom_score_adj stay. */
        bool no_memory_manager;
        unsigned warm; /* --warm N: warm sandboxes kept ready (pool.c); 0 none */
        /* --read-users, --read-groups: names or numeric ids the read-only methods are
         * opened to (docs/api.md, "Who may call"); NULL for none. Borrowed. */
        char **read_users;
        char **read_groups;
        /* --max-runs, --max-runs-per-user: org.cella.Run's kernels at once, in all and
         * for one caller who is not root (run-methods.c); 0: the defaults. */
        unsigned max_runs, max_runs_per_user;
} DaemonOptions;

/* The defaults of --max-runs and --max-runs-per-user, and their ceiling: each run is
 * a kernel of its own (a process of some 10 MiB with its app's sandbox), charged to
 * cellad's cgroup. */
#define DAEMON_RUNS_DEFAULT          64u
#define DAEMON_RUNS_PER_USER_DEFAULT 8u
#define DAEMON_RUNS_MAX              4096u

/*
 * Runs the daemon: opens and locks the state directory, moves into its cgroup leaf,
 * makes the supervisor and the control socket, runs the hooks and the autostart,
 * says READY, and serves until SIGTERM/SIGINT or org.cella.Shutdown (every app
 * stopped, services last) or SIGHUP (re-exec in place, the apps left running).
 * Returns the process's exit code: 0 after an orderly stop, DAEMON_EXIT_LOCKED when
 * another cellad holds the state directory, DAEMON_EXIT_FAILURE on a failure
 * (printed). A re-exec does not return.
 */
int daemon_run(const DaemonOptions *o);

/* The daemon's kernel (SupervisorOptions.daemon), owned by d; valid from the hooks on. */
Supervisor *daemon_supervisor(Daemon *d);
/* The control server, owned by the supervisor: the kernel's run/<pid>.sock, also
 * listening on cellad.sock (or on the socket systemd passed); add methods with
 * control_add_methods(). Valid from the hooks on. */
Control *daemon_control(Daemon *d);
/* The state directory's path, as given (--state-dir, $CELLA_STATE_DIR or the default). */
const char *daemon_state_dir(const Daemon *d);
/* The supervisor's libuv loop, on which every handle of the daemon and its parts runs. */
uv_loop_t *daemon_loop(Daemon *d);

/* The hooks (see the top of this file); each returns 0 or a negative errno, which
 * stops the daemon's start (printed by the hook). */
int daemon_adopt(Daemon *d);
int daemon_store_methods(Daemon *d);
int daemon_app_methods(Daemon *d);
/* org.cella.Run and org.cella.RunSignal: `cella run` through the daemon (run-methods.c). */
int daemon_run_methods(Daemon *d);
/* org.cella.Exec: `cella exec`, a command in a running app's sandbox (exec-methods.c). */
int daemon_exec_methods(Daemon *d);
/* org.cella.Memory: `cella memory`, `cella top`'s memory (memory-methods.c). */
int daemon_memory_methods(Daemon *d);
/* org.cella.PortAdd, PortRemove, PortList: `cella port` (port-methods.c). */
int daemon_port_methods(Daemon *d);

/*
 * The cgroup tag of the state directory state_fd (named state_dir in messages):
 * what names cellad's base ("cellad-<tag>"), its apps' leaves ("<label>@<tag>",
 * cgroup_manager_set_owner()) and, under systemd, their scope
 * ("cella-apps-<tag>.scope"), the same for every cellad of that directory and
 * different for every other. Read from DAEMON_TAG_FILE; made when it is missing or
 * was made for another directory (a copy: its device and inode differ) as "r" and 16
 * hex digits from getrandom(2), so that a directory made where a removed one was
 * (an inode reused) never takes a removed one's cgroups; but "d<dev>i<ino>" (hex,
 * the naming of cellads before the file) when a keeper ran there before
 * (KEEPER_LOCK exists) and the file is missing, so that the apps an earlier cellad
 * left running are adopted. The file must be a regular file of the caller's, not
 * writable by group or others (owned_check(), as every file cellad believes in its
 * state directory). Call with the state directory's lock held. Fills buf
 * (size > DAEMON_TAG_MAX) and returns 0, or a negative errno after printing
 * (-EBADMSG: a file not so shaped, named in the message; -EPERM: not a regular
 * file, someone else's or writable by others; -EINVAL: size too small).
 */
int daemon_tag_get(int state_fd, const char *state_dir, char *buf, size_t size);

/*
 * Whether state_dir (an absolute path) is a state directory whose tag is tag: it
 * exists and its DAEMON_TAG_FILE says tag and was made for it. false when the
 * directory is gone, holds no tag or another; true also when it cannot be read
 * (EACCES, EMFILE) or its tag file is not one cellad would believe (someone
 * else's, writable by others): kept in doubt. For the sweep of bases
 * (daemon_cgroup_setup()).
 */
bool daemon_tag_alive(const char *tag, const char *state_dir);

/*
 * The cgroup layout of the daemon (docs/daemon.md, "Cgroups"), per hierarchy: its
 * base B is the cgroup it was started in when it is that cgroup's only process
 * (systemd's cellad.service, Delegate=yes), else B = <that cgroup>/cellad-<tag> on v1
 * and the unified hierarchy of a hybrid host, and <root>/cellad-<tag> on pure v2
 * (whose "no internal processes" rule forbids children with controllers under a
 * cgroup that holds the shell); <tag> is the state directory's (daemon_tag_get()),
 * so that two daemons of different state directories started bare from one shell
 * never share B (one's orderly stop removes B/cella when empty, while the other may
 * be making an app's leaf in it), and a daemon started again on the same state
 * directory finds its apps' B. A daemon started in B/supervisor (a re-exec) takes B.
 * The daemon moves into B/supervisor; the apps live in B/cella/<label>@<owner>, a
 * sibling. A B it makes is marked with state_dir's real path
 * (cgroup_manager_enter_marked()); then the empty bases of other cellads beside it
 * whose state directory is gone (daemon_tag_alive()), or which are unmarked and of
 * the naming before the tag file, are removed (cgroup_manager_sweep_bases()).
 *
 * Returns 0 and *ret, a manager whose parent is B in every hierarchy (cgroup.h), once
 * this process is in B/supervisor everywhere; or a negative errno after printing.
 */
int daemon_cgroup_setup(const char *fs_root, CgroupMode mode, const char *state_dir,
                        const char *tag, CgroupManager **ret);

/*
 * The journal fields of one status record (the supervisor's --json-status records,
 * docs/cli.md "JSON status records"; docs/daemon.md "Logging" lists them):
 * "MESSAGE=<app>: <event> key=value ...", "PRIORITY=<3, 4 or 6>", then for each key
 * the record has: CELLA_EVENT (event), CELLA_APP (app), CELLA_GROUP (group), CELLA_PID
 * (pid), CELLA_UID (uid), CELLA_HOW (how), CELLA_EXIT_STATUS (exit_code: the status
 * `cella ps` shows), CELLA_STATUS (status: the app's own), CELLA_SIGNAL (signal),
 * CELLA_OOM_KILLED (oom_killed), CELLA_RESTARTS (restarts), CELLA_STEP (step),
 * CELLA_ERROR (error), CELLA_ERRNO (errno), CELLA_TITLE (title); strings as they
 * are, integers in decimal, booleans as true/false (sd_journal_send(3),
 * systemd.journal-fields(7)). Values are cut at DAEMON_JOURNAL_FIELD_MAX bytes and
 * their newlines become spaces. Fills fields[0..max-1] (max >= 3) with "KEY=value"
 * strings the caller frees; returns their number, or -EINVAL (record not an object
 * with a string "event", or max < 3) or -ENOMEM (none left to free).
 */
#define DAEMON_JOURNAL_FIELD_MAX 2048
int daemon_journal_fields(const json_t *record, char **fields, size_t max);

/*
 * Whether stderr is connected to the journal: $JOURNAL_STREAM is "<dev>:<ino>" of
 * stderr (systemd.exec(5), "$JOURNAL_STREAM": compare the device and inode numbers
 * of stderr with it). Returns true or false.
 */
bool daemon_stderr_is_journal(void);
