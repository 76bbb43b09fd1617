/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The sandbox library: turns a SandboxSpec into a running, isolated process tree
 * (docs/design.md section 5). It knows nothing of manifests, the broker or the
 * supervisor, so another front end (an OCI runtime) can use it on its own.
 *
 * Shape of a running sandbox:
 *
 *   caller ── ctl socket ──> init (pid 1 of a new pid namespace; reaps, forwards
 *                              signals, reports the app's exit status)
 *                              └── app (the entry point, exec'ed)
 *
 * The jail is built while the child is still root of the caller's user namespace,
 * inside new mount, pid, ipc, uts, net and cgroup namespaces; only then does it
 * enter a new user namespace where it is SANDBOX_UID. So every namespace but the
 * user one is owned by the caller's user namespace: a capability the app might
 * regain inside its own user namespace gives it no power over its mounts, its
 * network or its hostname.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/cgroup.h"
#include "sandbox/seccomp.h"
#include "sandbox/step.h"

/* The uid and gid the app runs as inside its user namespace (never 0). */
#define SANDBOX_UID 1000
#define SANDBOX_GID 1000
/* Ids mapped inside with a block (SandboxSpec.host_ids_base): 0 up to this, exclusive. */
#define SANDBOX_IDS 65536u

/* Bounds on what a spec may ask for. */
#define SANDBOX_HOSTNAME_MAX  64         /* HOST_NAME_MAX on Linux */
#define SANDBOX_EXTRA_FDS_MAX (1u << 20) /* SandboxSpec.n_extra_fds: fs.nr_open's default */

/* Flags of a SandboxBind. Every bind is nosuid and nodev. */
enum {
        SANDBOX_BIND_RW = 1 << 0,       /* writable (default: read-only) */
        SANDBOX_BIND_NOEXEC = 1 << 1,   /* noexec */
        SANDBOX_BIND_OPTIONAL = 1 << 2, /* skip quietly if the source does not exist */
        SANDBOX_BIND_FD = 1 << 3,       /* mount fd, not source (see SandboxBind.fd) */
};

/* A host path, or a mount the caller made, made visible in the jail. */
typedef struct SandboxBind {
        const char *source; /* absolute host path (a directory or a file); for
                               SANDBOX_BIND_FD only named in messages */
        const char *target; /* absolute path inside the jail */
        unsigned flags;
        /* With SANDBOX_BIND_FD: a detached mount of a directory (from open_tree
         * with OPEN_TREE_CLONE, or fsmount), open in the caller when it spawns,
         * moved to target as it is: its own root, no host path (an app's /data file
         * system). It gets the flags' attributes (and nosuid, nodev); it can be
         * attached once, so the caller makes one per spawn and closes it after. */
        int fd;
} SandboxBind;

/*
 * An OCI-style jail (SandboxSpec.rootfs; cella-oci, docs/oci.md): the caller's root
 * file system and the mounts it lists, instead of the runtime's tmpfs root. Mounts
 * are made in order, each target resolved inside the root (never through a symlink
 * that leaves it: openat2 RESOLVE_IN_ROOT), its mount point made when missing.
 */
typedef struct SandboxMount {
        const char *type;          /* "bind" (or flags with MS_BIND), "proc", "sysfs", "tmpfs",
                                      "devpts", "mqueue", "cgroup", "cgroup2", ... */
        const char *source;        /* bind: host path (absolute); else the fs source */
        const char *target;        /* absolute path inside the root */
        unsigned long flags;       /* MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC,
                                      MS_STRICTATIME, MS_NOATIME, ... (mount(2)) */
        unsigned long propagation; /* MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE (| MS_REC);
                                      0: as made */
        const char *data;          /* the fs's own options ("mode=755,size=65536k"), or NULL */
} SandboxMount;

/* A device node of an OCI jail (config.json linux.devices). */
typedef struct SandboxDevice {
        const char *path; /* absolute path inside the root */
        char type;        /* 'c', 'b', 'p' (fifo) */
        uint32_t major, minor;
        mode_t mode; /* permission bits (0: 0666) */
        uid_t uid;   /* owner, inside ids */
        gid_t gid;
} SandboxDevice;

typedef struct SandboxRootfs {
        const char *path; /* host path of the root file system (a directory) */
        bool readonly;    /* remount the root read-only after the mounts */
        unsigned long
                propagation; /* of the root after pivot (rootfsPropagation); 0: MS_PRIVATE|MS_REC */
        const SandboxMount *mounts;
        size_t n_mounts;
        /* The runtime spec's default devices in /dev (null, zero, full, random, urandom,
         * tty, the ptmx symlink to pts/ptmx, fd/stdin/stdout/stderr symlinks), bound from
         * the host's nodes, plus these. */
        const SandboxDevice *devices;
        size_t n_devices;
        char *const *masked_paths;   /* NULL-terminated or NULL: each hidden (/dev/null over a
                                        file, an empty read-only tmpfs over a directory); a
                                        missing one is skipped */
        char *const *readonly_paths; /* NULL-terminated or NULL: each bound read-only onto
                                        itself; a missing one is skipped */
        char *const *sysctls;        /* NULL-terminated "key=value" or NULL, written under
                                        /proc/sys in the sandbox's namespaces (only namespaced
                                        keys: kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*,
                                        net.*; any other is refused at SANDBOX_STEP_PREPARE) */
} SandboxRootfs;

/* One namespace of an OCI jail (SandboxSpec.namespaces). */
typedef struct SandboxNamespace {
        int type; /* CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS,
                     CLONE_NEWCGROUP, CLONE_NEWUSER */
        int fd;   /* -1: a new one; >= 0: join this namespace (an nsfs fd, setns(2)) */
} SandboxNamespace;

/* One line of a uid_map or gid_map (user_namespaces(7)). */
typedef struct SandboxIdMap {
        uint32_t inside, host, count;
} SandboxIdMap;

/* Capability sets of the app (capabilities(7)), bit n = capability n. */
typedef struct SandboxCaps {
        uint64_t bounding, effective, permitted, inheritable, ambient;
} SandboxCaps;

/* A resource limit (setrlimit(2)), after rlimit_nofile/_fsize/_nproc. */
typedef struct SandboxRlimit {
        int resource; /* RLIMIT_* */
        uint64_t soft, hard;
} SandboxRlimit;

typedef struct SandboxSpec SandboxSpec;

struct SandboxSpec {
        const char *hostname; /* uts hostname; truncated to SANDBOX_HOSTNAME_MAX */
        uid_t host_uid;       /* host uid mapped to SANDBOX_UID inside; never 0 */
        gid_t host_gid;       /* host gid mapped to SANDBOX_GID inside; never 0 */
        /*
         * The first of the app's block of SANDBOX_IDS host uids and gids: id i inside
         * (0 <= i < SANDBOX_IDS) is host id host_ids_base + i, except SANDBOX_UID and
         * SANDBOX_GID, which are host_uid and host_gid. 0: no block, only those two
         * ids are mapped (chown or setuid to any other id then fails with EINVAL).
         */
        uid_t host_ids_base;

        /*
         * Optional. Called in the parent right after the clone, while the child
         * builds its jail, for work the spawn needs only later, so the two overlap:
         * it may set host_uid/host_gid/host_ids_base (checked after it returns). It must not touch
         * the other fields. Returns 0 or a negative errno, which fails the spawn at
         * SANDBOX_STEP_PREPARE.
         */
        int (*prepare)(SandboxSpec *spec, void *userdata);
        void *prepare_userdata;
        /*
         * Optional, with prepare_userdata. Called in the parent once the child has
         * its uid map and needs nothing more from the parent until the app runs
         * (capabilities, rlimits, seccomp, exec: the net helper is done by then),
         * for work that may use the CPU the child leaves free. The child does not
         * wait for it: by its return the app may have been exec'd (its reports wait
         * in the socket). It must not touch the spec. Returns 0 or a negative errno,
         * which fails the spawn at SANDBOX_STEP_PREPARE (the sandbox is killed).
         */
        int (*starting)(SandboxSpec *spec, void *userdata);
        /*
         * Optional, with prepare_userdata. Called in the parent once the child is in
         * its namespaces and waits for its uid map, so before it can go on to the
         * app: what this sets up in the sandbox's network namespace (the per-app
         * proxy's listening sockets, an app network's interface: docs/network.md) is
         * there before the app's first instruction, and nothing of the app can have
         * taken a port first. It must not touch the spec. pidfd: the sandbox's init (setns(pidfd,
         * CLONE_NEWNET) enters the app's network namespace). Its time adds to the start's: only a
         * spec that needs it sets it. Returns 0 or a negative errno, which fails the spawn at
         * SANDBOX_STEP_PREPARE.
         */
        int (*net_ready)(SandboxSpec *spec, int pidfd, void *userdata);
        /*
         * With starting: the child waits for starting() to return before it forks
         * the app (one more message on the ctl socket), for work the app must find
         * done when it runs (net.internet's interface and rules, src/net/fullnet.h).
         * The child has dropped its capabilities and set its rlimits by then; it
         * waits before its signal set-up, its seccomp filter and the app's fork.
         */
        bool wait_starting;
        /* Set by the spawn for starting(): the sandbox's init (pid in the caller's pid
         * namespace), whose namespaces are /proc/<pid>/ns/<type>. 0 before. */
        pid_t starting_pid;

        /* The jail's /etc/resolv.conf, or NULL: none, and names resolve from the
         * jail's /etc/hosts alone (nsswitch.conf "hosts: files"). Set (an app with
         * net.internet: src/net/fullnet.h), nsswitch.conf says "hosts: files dns". */
        const char *resolv_conf;

        const SandboxBind *binds; /* extra binds after the runtime (/usr, /lib*, /etc subset) */
        size_t n_binds;
        uint64_t tmp_size;   /* bytes of the /tmp and /dev/shm tmpfs; 0 = 16 MiB */
        const char *workdir; /* cwd of the app inside the jail; NULL = "/" */

        const char *exec_path; /* absolute path inside the jail */
        /* Files exec_path reads as its code (a Lua app's /app/main.lua, a packed
         * group's /apps/<id>/<entry>), NULL-terminated, or NULL: each checked to
         * be a readable file before execve, so that a missing one fails the spawn
         * as a missing entry does (SANDBOX_STEP_EXEC, ENOENT; EACCES when not
         * readable), with the file and the reason in the detail, not later inside
         * the interpreter. */
        char *const *entry_scripts;
        char *const *argv; /* argv[0] included */
        char *const *envp; /* the whole environment; nothing is inherited */

        CgroupManager *cgroups;   /* NULL: no cgroup (tests of the library alone) */
        const char *cgroup_label; /* leaf label, [A-Za-z0-9._-] */
        CgroupLimits limits;

        uint64_t rlimit_nofile; /* RLIMIT_NOFILE soft and hard; 0 = 1024 */
        uint64_t rlimit_fsize;  /* RLIMIT_FSIZE in bytes; 0 = unlimited */
        uint64_t rlimit_nproc;  /* RLIMIT_NPROC; 0 = unlimited */

        /*
         * Required: a sandbox without a filter is refused. A program built with
         * SeccompOptions.notify gives the Sandbox a seccomp_notify_fd.
         */
        const SeccompProgram *seccomp;

        int stdio[3];   /* fds that become 0, 1, 2 in the app (-1: /dev/null) */
        int channel_fd; /* fd that becomes 3 in the app (-1: none) */
        /* A terminal of the app's own instead of stdio (cella run -t): the app's
         * process makes a pty in the jail's devpts, pty_rows x pty_cols (0: 24 x
         * 80), makes it its controlling terminal and stdin/stdout/stderr, and
         * sends the master over pty_socket (an AF_UNIX socket, SCM_RIGHTS) before
         * its execve, so it is waiting there when sandbox_spawn() returns. 0 or
         * -1: none (0 is never such a socket, so a zeroed spec has none). */
        int pty_socket;
        unsigned short pty_rows, pty_cols;
        /* More fds for the app, kept under the same numbers (a packed Lua host's
         * spec, stats file, channels and logs, whose numbers its spec names):
         * strictly ascending, each >= 4 (clear of 0..3), at most
         * SANDBOX_EXTRA_FDS_MAX. They may lie above rlimit_nofile (the limit only
         * bounds new fds), but it must leave the app room for its own. */
        const int *extra_fds;
        size_t n_extra_fds;

        /*
         * Optional: the small init executable (cella-init, a host path) that the
         * sandbox's pid 1 execs once the app runs, so that it holds no copy of the
         * caller's memory. NULL: pid 1 stays a fork of the caller (its built-in
         * loop, same duties). If it cannot be exec'd, the built-in loop runs and
         * Sandbox.init_exec says why.
         */
        const char *init_path;

        /*
         * false (cella run, cella boot): the sandbox's init carries
         * PR_SET_PDEATHSIG(SIGKILL), so the sandbox dies with the thread that
         * spawned it. true (cellad): it does not; it lives as long as some
         * process holds the caller's end of its ctl socket (Sandbox.ctl_fd, or a
         * dup of it a keeper holds: src/keeper), and dies when the last copy is
         * closed (init sees the hangup, exits, and its pid namespace dies with
         * it). Either way a sandbox nobody holds does not run on.
         */
        bool survive_parent;

        /*
         * The oom_score_adj of the sandbox's init, written by the parent before the
         * app runs, so that the app and every process it forks inherit it (proc(5));
         * the memory manager's band of the app (src/memory/band.h, docs/memory.md
         * "Actions"). Only if oom_score_adj_set; otherwise init keeps the caller's.
         * cellad runs at -1000: every app it starts sets this.
         */
        int oom_score_adj;
        bool oom_score_adj_set;

        /* ---- OCI jails (cella-oci, docs/oci.md). All zero: a cella app's sandbox. ---- */

        /* The caller's root file system and mounts instead of the runtime's tmpfs root
         * (binds, tmp_size, resolv_conf and the written /etc identity files are then
         * unused). NULL: the runtime's root. */
        const SandboxRootfs *rootfs;
        /*
         * NULL: cella's namespaces (new mount, pid, ipc, uts, net, cgroup, then a new user
         * namespace). Set: exactly these, each new or joined; a type left out is shared
         * with the caller (the user namespace too: then the app runs with host ids and
         * uid_map/gid_map are unused). Joins happen in the child before its jail (a joined
         * user namespace last, after the jail, in place of the new one). The mount and pid
         * namespaces must be new (the jail is built in the one, init is pid 1 of the
         * other): joined or left out, they are refused at SANDBOX_STEP_PREPARE.
         */
        const SandboxNamespace *namespaces;
        size_t n_namespaces;
        /* The app's uid, gid and supplementary groups inside its user namespace. Unset
         * (ids_set false): SANDBOX_UID, SANDBOX_GID, none; without a user namespace
         * (host ids) host_uid and host_gid, never SANDBOX_UID (host uid 1000 is
         * someone's). */
        uid_t app_uid;
        gid_t app_gid;
        bool ids_set;
        const gid_t *app_groups;
        size_t n_app_groups;
        /* Explicit id maps of a new user namespace (config.json linux.uidMappings,
         * gidMappings), written by the parent instead of the host_uid/host_ids_base map;
         * n 0: that map. At most 340 lines each (user_namespaces(7)). */
        const SandboxIdMap *uid_map, *gid_map;
        size_t n_uid_map, n_gid_map;
        /* The app's capability sets; NULL: none at all (every set and the bounding set
         * empty, securebits locked: cella's rule). */
        const SandboxCaps *caps;
        /* true: no_new_privs is left clear (config.json process.noNewPrivileges false);
         * only with caps or host ids, where a set-uid program can mean something. */
        bool allow_new_privs;
        const SandboxRlimit *rlimits; /* applied after rlimit_nofile/_fsize/_nproc */
        size_t n_rlimits;
        int umask; /* the app's umask (0..0777); umask_set false: the caller's, inherited */
        bool umask_set;
        /*
         * > 0: an O_PATH fd of a FIFO (the exec fifo of cella-oci's state directory):
         * once everything but its execve is done, the app opens it for writing
         * (through /proc/self/fd), which blocks until `cella-oci start` opens it for
         * reading, writes one byte and execs. sandbox_spawn() returns before that.
         * 0 or -1: none.
         */
        int start_fifo_fd;
        /*
         * true (cella-oci): the sandbox outlives its caller and ctl: no parent-death
         * signal, init ignores ctl's hangup, and init exits with the app's status once
         * the app is reaped (its exit code, or 128+N after signal N), so that whoever
         * reaps init (the caller's subreaper: conmon, containerd's shim) learns it as
         * it would the app's. Needs survive_parent.
         */
        bool detached;
        /*
         * true (cella-oci, policy compat, as runc): hostname is set in a JOINED uts
         * namespace too (SandboxSpec.namespaces names it by fd), once joined. false:
         * only a new uts namespace is named; a joined or shared one is not the
         * sandbox's to name.
         */
        bool hostname_in_joined_uts;
};

/* proc(5): the range of /proc/pid/oom_score_adj. */
#define SANDBOX_OOM_SCORE_ADJ_MIN (-1000)
#define SANDBOX_OOM_SCORE_ADJ_MAX 1000

/*
 * Writes adj (SANDBOX_OOM_SCORE_ADJ_MIN..MAX) to /proc/<pid>/oom_score_adj (pid 0:
 * the caller's own). Raising it needs no privilege; lowering it below the
 * process's oom_score_adj_min needs CAP_SYS_RESOURCE (proc(5)). Processes forked
 * later inherit it. Returns 0, -EINVAL (adj or pid out of range), -errno of the
 * open or write (-ENOENT: no such process).
 */
int sandbox_write_oom_score_adj(pid_t pid, int adj);

/* Reads /proc/<pid>/oom_score_adj (pid 0: the caller's). Returns 0 and *ret, -EINVAL,
 * -EBADMSG (not a number in range), -errno of the open or read. */
int sandbox_read_oom_score_adj(pid_t pid, int *ret);

/* How the app ended. */
typedef struct SandboxExit {
        int code;           /* CLD_EXITED or CLD_KILLED (CLD_DUMPED is folded into CLD_KILLED) */
        int status;         /* exit status, or the signal number */
        bool oom_killed;    /* the app itself was killed by its memory cgroup's OOM killer */
        uint64_t oom_kills; /* OOM kills in the sandbox during this run (the app or its children) */
        bool low_memory;    /* killed by its kernel's memory manager (docs/memory.md, "Kill"):
                               set by the supervisor, never by the sandbox */
} SandboxExit;

typedef struct Sandbox {
        pid_t pid;      /* host pid of the sandbox's init */
        int pidfd;      /* pidfd of init (poll for its exit) */
        int ctl_fd;     /* reports from init; readable when the app has exited */
        pid_t app_pid;  /* pid of the app in the sandbox's pid namespace */
        Cgroup *cgroup; /* NULL if spec->cgroups was NULL */
        /* The memory cgroup's OOM kill count before the app could run (a leaf reused
         * from an earlier run keeps its count): SandboxExit.oom_kills is the rise. */
        uint64_t oom_kills_before;
        bool exited;
        SandboxExit exit;
        /*
         * The seccomp user-notification listener if spec->seccomp notifies, else -1.
         * Owned by the Sandbox (closed by sandbox_free). Readable while a denied call
         * waits: poll it from the moment sandbox_spawn() returns and answer with
         * seccomp_notify_process(), or the app's thread stays blocked in that call.
         * POLLHUP once every process of the sandbox is gone.
         */
        int seccomp_notify_fd;
        /* pid 1 and spec->init_path, as sandbox_process() learns it: 0 not known
         * (yet, or no init_path), 1 pid 1 runs it, -errno its exec failed (pid 1
         * runs the built-in init loop; -SANDBOX_INIT_DUMPABLE_HOST: not tried, the
         * host's fs.suid_dumpable is 1). */
        int init_exec;
        /* Made by sandbox_adopt(), not sandbox_spawn(): init may not be our child
         * (its spawner died), so it is reaped only if it is (never waited for). */
        bool adopted;
} Sandbox;

/* Sandbox.init_exec's reason (as -errno) when pid 1 did not exec spec->init_path
 * because the host's fs.suid_dumpable is 1: the exec would leave it dumpable, its
 * memory open to the app, until cella-init's first instruction (spawn.c). */
#define SANDBOX_INIT_DUMPABLE_HOST EKEYREJECTED

/*
 * Starts spec->exec_path in a new sandbox and returns once it has been exec'ed (with
 * spec->start_fifo_fd: once the app waits at its start gate, not exec'd yet).
 * Blocks for the few milliseconds a spawn takes; single-threaded callers only (the
 * child is a fork of the caller). Returns 0 and *ret (free with sandbox_free), or
 * a negative errno with *err saying which step failed and why; nothing is left
 * behind on failure (no process, no cgroup). -ENOENT/-EACCES/-ENOEXEC at
 * SANDBOX_STEP_EXEC mean the entry point is missing or cannot be executed.
 */
int sandbox_spawn(const SandboxSpec *spec, Sandbox **ret, SandboxError *err);

/*
 * Warm sandboxes (spawn.c, "warm sandboxes"; docs/daemon.md, "The warm pool"):
 * children cloned ahead with every step of a spawn that belongs to no app done
 * (namespaces, network namespace, the jail's skeleton), each finished for one app
 * by sandbox_spawn_warm(), or killed unused. Used by cellad's pool.
 */
typedef struct SandboxWarm SandboxWarm;

/* A warm sandbox has room for this many spec binds (its root tmpfs's inodes) and
 * passes this many fds (stdio, channel, pty socket, bind fds); a spec with more,
 * or with extra_fds, takes a cold sandbox_spawn(). */
#define SANDBOX_WARM_MAX_BINDS 64
#define SANDBOX_WARM_MAX_FDS   16

/*
 * A zygote (spawn.c, "the zygote"): a small process forked from the caller while
 * it is small, which clones warm sandboxes for it (CLONE_PARENT: they are the
 * caller's children) so that they share their pages with the zygote, not with the
 * caller as it grows. sandbox_zygote_new() forks it now: call it early, from the
 * thread that will call sandbox_warm_new() (the warm sandboxes' parent-death
 * signal is that thread's); it dies with that thread and on the EOF of its socket.
 * Returns 0 and *ret, or -errno (socketpair, clone3).
 */
typedef struct SandboxZygote SandboxZygote;
int sandbox_zygote_new(SandboxZygote **ret);
/* Ends the zygote (its warm sandboxes live on) and frees z. Takes NULL; returns NULL. */
SandboxZygote *sandbox_zygote_free(SandboxZygote *z);
/* The zygote's pid, or -1 (NULL, or it is gone and no longer used). */
pid_t sandbox_zygote_pid(const SandboxZygote *z);

/*
 * Clones a warm sandbox whose init will be init_path (a host path, or NULL: the
 * built-in loop; a spec with another init_path does not fit it). With cgroups (a
 * manager, or NULL: none; a spec with other cgroups does not fit it), the sandbox's
 * own leaf is made first, "warm-<caller pid>-<n>@<owner>" in every hierarchy
 * (cgroup_new_exclusive(): never an existing leaf), and the child is born in it:
 * clone3(CLONE_INTO_CGROUP) into the cgroup2 one, then it writes itself into each
 * v1 one's "tasks" (cgroup.h, CgroupJoin), so that no start ever writes a pid to
 * cgroup.procs. Returns at once, the child preparing on its own (about 1 ms of its
 * CPU): 0 and *ret, or -errno (the leaf's mkdir, clone3, fork, mmap). With a zygote
 * (or NULL), the zygote clones it, from a copy of the caller as it was when the
 * zygote was made; if it cannot, the caller does, but not when the zygote did not
 * answer within SANDBOX_ZYGOTE_TIMEOUT_MS (250 ms, spawn.c): then the zygote is
 * given up (later calls clone from the caller) and this one fails with -ETIMEDOUT,
 * so that a hung zygote holds the caller at most that long, once. Call from the
 * thread that will spawn with it: the child dies with that thread
 * (PR_SET_PDEATHSIG) until it has an app. Single-threaded callers only, as
 * sandbox_spawn().
 */
int sandbox_warm_new(const char *init_path, CgroupManager *cgroups, SandboxZygote *zygote,
                     SandboxWarm **ret);

/* Whether spec can start in w (binds, fds, init_path, cgroups: see above). */
bool sandbox_warm_fits(const SandboxWarm *w, const SandboxSpec *spec);

/* Where w is, without blocking: 1 prepared and waiting, 0 still preparing (it can
 * be used: the start then waits for the rest), -ECHILD failed while preparing or
 * killed (free it). */
int sandbox_warm_check(SandboxWarm *w);

/* The host pid of w's child (the sandbox's init to be), or -1 for NULL. */
pid_t sandbox_warm_pid(const SandboxWarm *w);

/* Kills w's child (unused) and frees w. Takes NULL; returns NULL. */
SandboxWarm *sandbox_warm_free(SandboxWarm *w);

/*
 * sandbox_spawn(spec) in the warm sandbox w, which it always takes (freed, or
 * become the returned Sandbox): the same sandbox, the same checks and the same
 * errors as a cold spawn. Its cgroup is w's leaf, limited by spec before the child
 * may go on, and renamed "<spec's cgroup_label>@<owner>" where every hierarchy
 * allows (v1, cgroup_rename()); else it keeps its "warm-..." name, which
 * cgroup_name() of the Sandbox's cgroup gives (every later user takes the leaf
 * from that handle or that recorded name). Errors: -EINVAL at SANDBOX_STEP_PREPARE if spec does not
 * fit w (check sandbox_warm_fits() first), and the cold spawn's errors otherwise (a warm child that
 * failed while preparing reports its step).
 */
int sandbox_spawn_warm(SandboxWarm *w, const SandboxSpec *spec, Sandbox **ret, SandboxError *err);

/*
 * Sends sig to the app through init (which forwards it). Returns 0, -ESRCH if the
 * sandbox is gone, or -errno of pidfd_send_signal.
 */
int sandbox_signal(Sandbox *s, int sig);

/*
 * Processes what init reported on ctl_fd without blocking. Returns 1 once the app
 * has exited (s->exit filled, init reaped), 0 if nothing final arrived yet, or a
 * negative errno.
 */
int sandbox_process(Sandbox *s);

/* Blocks until the app exits; fills *ret. Returns 0 or a negative errno. */
int sandbox_wait(Sandbox *s, SandboxExit *ret);

/* Kills everything left in the sandbox, reaps init, removes the cgroup, frees s.
 * Takes NULL; returns NULL. */
Sandbox *sandbox_free(Sandbox *s);

/*
 * Lets a running sandbox go without killing it (a detached one: SandboxSpec.detached,
 * cella-oci create): closes s's fds (pidfd, ctl, seccomp listener) and its cgroup
 * handle, leaving the cgroup, init and the app as they are, and frees s. init stays
 * the caller's child, to be reaped by the caller or, once the caller is gone, by its
 * subreaper; a detached init's exit status is the app's. A sandbox that is not
 * detached dies at ctl's hangup (survive_parent: unless a keeper holds a copy).
 * Returns init's host pid, or -1 for NULL.
 */
pid_t sandbox_release(Sandbox *s);

/*
 * What sandbox_adopt() rebuilds a Sandbox from: the fds and figures of a running
 * sandbox that another process (an earlier kernel) spawned with
 * SandboxSpec.survive_parent, handed over by a keeper (src/keeper/keeper.h).
 */
typedef struct SandboxAdoption {
        pid_t pid;                 /* host pid of init (as the spawner's Sandbox.pid) */
        pid_t app_pid;             /* Sandbox.app_pid */
        int pidfd;                 /* of init; taken (closed on failure too) */
        int ctl_fd;                /* the parent's end of ctl; taken */
        int seccomp_notify_fd;     /* the seccomp listener, or -1; taken */
        CgroupManager *cgroups;    /* NULL: no cgroup */
        const char *cgroup_name;   /* the leaf's name, "<label>@<owner>" (cgroup_open()) */
        uint64_t oom_kills_before; /* Sandbox.oom_kills_before */
        int init_exec;             /* Sandbox.init_exec */
} SandboxAdoption;

/*
 * Rebuilds a Sandbox for a sandbox that runs (or ran, and whose report waits in
 * ctl) from a: checks that a->pidfd is a pidfd of a->pid (or of a process gone
 * since), a->ctl_fd a Unix SOCK_SEQPACKET socket, a->seccomp_notify_fd (when >= 0)
 * a seccomp listener, and opens the cgroup leaf by name (it must exist). The exit
 * then comes as for a spawned one (sandbox_process() on ctl_fd). init is reaped
 * only when it is our child (a kernel that re-exec'd itself); otherwise whoever
 * is its parent reaps it, and an init that died without a report is taken as
 * killed by SIGKILL (the one signal that ends a namespace's init from outside).
 * Never blocks. Returns 0 and *ret (s->adopted set), or -EBADF (an fd missing or
 * not what it should be), -ESRCH (the pidfd is another process's), -ENOENT (no
 * such cgroup leaf), -EINVAL, -ENOMEM; every fd of a is closed on failure.
 */
int sandbox_adopt(SandboxAdoption *a, Sandbox **ret);

static inline void sandbox_freep(Sandbox **s)
{
        sandbox_free(*s);
}

/*
 * What sandbox_enter() runs a command in: a running sandbox (its init, by pidfd and
 * host pid, and its cgroup), with the app's seccomp filter built without a
 * notifying listener (the same allow and deny decisions; a denied call fails with
 * EPERM in the command itself, as the app's listener answers it).
 */
typedef struct SandboxEnter {
        int pidfd;                     /* Sandbox.pidfd of its init */
        pid_t pid;                     /* Sandbox.pid: init's host pid */
        Cgroup *cgroup;                /* Sandbox.cgroup; NULL: none to join */
        const SeccompProgram *seccomp; /* not notifying (SeccompOptions.notify false) */
        char *const *argv;             /* the command: argv[0] a path in the jail, or a
                                          name looked up in /usr/bin and /bin */
        char *const *envp;
        int stdio[3];    /* become 0, 1, 2 in the command: pipes (the caller checks);
                            unused with a tty_socket */
        const char *cwd; /* in the jail; NULL: "/" */
        int tty_socket;  /* > 0: the command gets a pty of the jail's devpts as its
                            controlling terminal and stdio, and the master goes over
                            this AF_UNIX socket (pty_make(), `cella exec -t`); else -1 */
        unsigned short tty_rows, tty_cols; /* its first window size; 0: 24x80 */
        /* The command's ids and capabilities inside (as the SandboxSpec's app_uid, app_gid,
         * app_groups, caps, allow_new_privs; cella-oci exec's process.json). Unset
         * (ids_set false, caps NULL): SANDBOX_UID, SANDBOX_GID, no capability. groups need
         * a sandbox whose setgroups is "allow" (spawned with app_groups); allow_new_privs
         * only with caps or without the user namespace (ns_flags), as for a spawn. */
        uid_t uid;
        gid_t gid;
        bool ids_set;
        const gid_t *groups;
        size_t n_groups;
        const SandboxCaps *caps;
        bool allow_new_privs;
        /* Join only these of init's namespaces (CLONE_NEW* flags); 0: all of them. An OCI
         * container shares those its config left out with its caller: joining them through
         * init would be joining the caller's own, which is harmless but skipped. */
        int ns_flags;
} SandboxEnter;

/* The helper's exit status when the command could not be set up (also said on the
 * error pipe, so sandbox_enter() has failed with it already). */
#define SANDBOX_ENTER_FAILED 255

/*
 * Runs e->argv inside the running sandbox of e, exactly as confined as its app
 * (docs/security.md "cella exec"): in all of its init's namespaces (user, mount,
 * pid, net, ipc, uts, cgroup, entered with setns() on the pidfd), its cgroup leaves,
 * its rlimits (read from init with prlimit), as SANDBOX_UID/SANDBOX_GID with no
 * supplementary group, securebits locked, every capability set and the bounding set
 * empty, no_new_privs, e->seccomp loaded, fds 0-2 = e->stdio (or, with a tty_socket,
 * the slave of a pty made in the jail whose master went over the socket) and nothing
 * else (close_range), cwd e->cwd, in a session of its own (setsid), every signal at
 * its default and none blocked. With e's ids, groups, caps, allow_new_privs or
 * ns_flags set (an OCI container), those replace the defaults above. The helper passes SIGINT,
 * SIGTERM, SIGHUP and SIGQUIT it gets on to the command, and on SIGUSR1 kills the command's process
 * group (SIGKILL): the caller's way to end the command with what it started. Call it as root from a
 * thread that lives as long as the command (PR_SET_PDEATHSIG, as sandbox_spawn()); it blocks until
 * the command's execve (at most SANDBOX_ENTER_TIMEOUT_MS). Returns 0 with *ret_pid and *ret_pidfd:
 * a helper outside the sandbox whose exit status is the command's (128+N for a signal N); or a
 * negative errno with err (step, errno, detail): -ENOENT / -EACCES from the execve, -ETIMEDOUT, or
 * what a step got.
 */
int sandbox_enter(const SandboxEnter *e, pid_t *ret_pid, int *ret_pidfd, SandboxError *err);

/* How long the command's setup may take (sandbox_enter()'s bound, as spawn's). */
#define SANDBOX_ENTER_TIMEOUT_MS 10000

/*
 * sandbox_enter() in two halves, for an event loop that must not wait for a command's
 * setup (cellad: one app whose command hangs in its setup, in a cgroup frozen or
 * starved of memory, must not delay another client). sandbox_enter_start() does
 * what sandbox_enter() does up to the fork of the helper (reading the app's rlimits
 * and oom_score_adj, opening its cgroup leaves: no wait on the app) and returns at
 * once with *ret, a setup in progress, or a negative errno with err as
 * sandbox_enter(). The caller then waits, as it likes and for as long as it likes,
 * for sandbox_entering_fd(*ret) to be readable (POLLIN: the command's execve, or
 * its failure's report, or the helper's end) and calls sandbox_enter_finish(),
 * which returns -EAGAIN if it is not (called too early: wait again), else as
 * sandbox_enter() returns (0 with *ret_pid and *ret_pidfd, or the failure with
 * err), and frees x either way; or gives up with sandbox_enter_abandon(), which
 * sends the helper SIGUSR1 (it kills the command and its process group, then
 * exits: a command frozen before its execve, which has no parent-death signal
 * yet, dies too) and hands the helper's pid and pidfd to the caller, who reaps it
 * when its pidfd is readable; or with sandbox_enter_cancel(), the same that then
 * waits for the helper's end (at most 1 s, then SIGKILL) and reaps it, for a
 * caller that may block. Every SandboxEntering ends in exactly one of the three.
 */
typedef struct SandboxEntering SandboxEntering;
int sandbox_enter_start(const SandboxEnter *e, SandboxEntering **ret, SandboxError *err);
/* The fd to wait on (POLLIN) for x's setup to end; -EBADF for NULL. */
int sandbox_entering_fd(const SandboxEntering *x);
int sandbox_enter_finish(SandboxEntering *x, pid_t *ret_pid, int *ret_pidfd, SandboxError *err);
void sandbox_enter_abandon(SandboxEntering *x, pid_t *ret_pid, int *ret_pidfd);
void sandbox_enter_cancel(SandboxEntering *x);
