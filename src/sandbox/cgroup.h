/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Per-app cgroups on cgroup v2, v1 and hybrid hosts (docs/design.md sections 5 and 8),
 * behind one ops struct per backend (crun's cgroup managers):
 *
 *   v2      unified hierarchy only: memory.max, memory.swap.max, pids.max, cpu.max,
 *           cpu.weight, cgroup.freeze, cgroup.kill, memory.events.
 *   v1      one hierarchy per controller: memory.limit_in_bytes (+memsw, kmem.tcp), pids.max,
 *           cpu.cfs_quota_us/cfs_period_us, cpu.shares, freezer.state.
 *   hybrid  limits through the v1 controllers, plus a leaf in the (controller-less)
 *           v2 hierarchy for cgroup.freeze, cgroup.kill, cgroup.events and PSI.
 *
 * An OCI runtime (cella-oci) adds the cpuset, devices, blkio, net_cls, net_prio and
 * hugetlb hierarchies (v2: the cpuset, io and hugetlb controllers) and their knobs
 * (cgroup_manager_add_controllers(), CgroupResources); cella's own apps never use them.
 *
 * Layout: every app gets a leaf named "<label>@<owner pid>" under cella's root in
 * each hierarchy it uses. The root is "<parent>/cella", where parent defaults to the
 * cgroup the calling process is in for that hierarchy (read from /proc/self/cgroup),
 * so cella stays inside the limits of whatever started it; on pure v2 the default
 * parent is the hierarchy root (the "no internal processes" rule forbids enabling
 * controllers below a cgroup that holds processes).
 *
 * The owner pid in the leaf name lets cgroup_sweep() tell a leftover (its owner is
 * gone, e.g. cella was SIGKILLed) from a leaf another live cella instance owns. A
 * leaf may be named after an owner tag instead (cgroup_manager_set_owner()): then
 * only its owner sweeps it.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum CgroupMode {
        CGROUP_MODE_AUTO = 0, /* detect */
        CGROUP_MODE_V1,
        CGROUP_MODE_V2,
        CGROUP_MODE_HYBRID,
} CgroupMode;

/*
 * The controllers beyond cella's own (memory, pids, cpu, cpuacct, freezer) that an OCI
 * runtime needs (cgroup_manager_add_controllers()).
 */
#define CGROUP_CTRL_CPUSET   (1u << 0)
#define CGROUP_CTRL_DEVICES  (1u << 1)
#define CGROUP_CTRL_BLKIO    (1u << 2) /* "io" on cgroup2 */
#define CGROUP_CTRL_NET_CLS  (1u << 3) /* v1 only */
#define CGROUP_CTRL_NET_PRIO (1u << 4) /* v1 only */
#define CGROUP_CTRL_HUGETLB  (1u << 5)
#define CGROUP_CTRL_ALL      ((1u << 6) - 1)

/* One device cgroup rule (kernel Documentation/admin-guide/cgroup-v1/devices.rst). */
typedef struct CgroupDeviceRule {
        bool allow;     /* devices.allow, else devices.deny */
        char type;      /* 'a' (all), 'c', 'b' */
        int64_t major;  /* -1: any ("*") */
        int64_t minor;  /* -1: any */
        char access[4]; /* a non-empty subset of "rwm", NUL-terminated */
} CgroupDeviceRule;

/* A hugetlb limit: page_size as the kernel names it ("2MB", "1GB"), limit in bytes. */
typedef struct CgroupHugetlbLimit {
        const char *page_size;
        uint64_t limit;
} CgroupHugetlbLimit;

/* A net_prio.ifpriomap entry. */
typedef struct CgroupIfPriority {
        const char *ifname;
        uint32_t priority;
} CgroupIfPriority;

/*
 * The OCI runtime's knobs (config-linux.md "Control groups", as runc writes them),
 * beyond CgroupLimits; each unset one is left alone. Each needs its controller added
 * to the manager (cgroup_manager_add_controllers()) and is checked against the host
 * by cgroup_resources_check().
 */
typedef struct CgroupResources {
        /* v1 cpu.shares as given (2..262144), written over the one CgroupLimits'
         * cpu_weight maps to, which the round trip through the v2 scale rounds (1024
         * would read back 399); v2 keeps that cpu_weight. 0: none. */
        uint64_t cpu_shares;
        const char *cpuset_cpus, *cpuset_mems; /* "0-1,3"; NULL: the parent's */
        uint64_t memory_low;                   /* bytes (v1 soft_limit_in_bytes, v2 memory.low) */
        bool swappiness_set;
        uint64_t swappiness;   /* 0..100, v1 memory.swappiness (v2 has none: not written) */
        bool oom_kill_disable; /* v1 memory.oom_control = 1 (v2 has none: not written) */
        uint64_t blkio_weight; /* 10..1000 (v1 scale); 0: none */
        const CgroupHugetlbLimit *hugetlb;
        size_t n_hugetlb;
        bool net_cls_classid_set;
        uint32_t net_cls_classid;
        const CgroupIfPriority *ifpriority;
        size_t n_ifpriority;
        /* devices_set: "a" is denied first, then rules in order, then
         * CGROUP_DEFAULT_DEVICE_RULES (v1 devices controller; cgroup2 needs an eBPF
         * program, which cella does not load: not enforced there). */
        bool devices_set;
        const CgroupDeviceRule *devices;
        size_t n_devices;
        char *const *unified_keys; /* cgroup2 files of the leaf and their values */
        char *const *unified_values;
        size_t n_unified;
} CgroupResources;

/* Limits to apply; a 0 field leaves that knob at the kernel default (unlimited). */
typedef struct CgroupLimits {
        uint64_t memory_max;    /* bytes; also caps swap (v2 memory.swap.max=0, v1 memsw) */
        uint64_t pids_max;      /* number of tasks */
        uint64_t cpu_quota_us;  /* CPU time per period, microseconds */
        uint64_t cpu_period_us; /* period, microseconds; 0 = 100000 (the kernel default) */
        uint64_t cpu_weight;    /* 1..10000 on the v2 scale (default 100); v1 maps to cpu.shares */
        const CgroupResources *resources; /* NULL: none (cella's own apps) */
} CgroupLimits;

typedef struct CgroupStats {
        uint64_t memory_current; /* bytes in use (v2 memory.current, v1 memory.usage_in_bytes) */
        uint64_t memory_max;     /* bytes, UINT64_MAX when unlimited */
        uint64_t pids_current;
        uint64_t oom_kills; /* OOM kills inside this cgroup (memory.events / memory.oom_control) */
        uint64_t cpu_usage_usec; /* total CPU time (cpu.stat usage_usec / cpuacct.usage) */
} CgroupStats;

typedef struct CgroupManager CgroupManager;
typedef struct Cgroup Cgroup;

typedef struct CgroupOps {
        const char *name;          /* "v1", "v2", "hybrid" */
        int (*create)(Cgroup *cg); /* mkdir the leaf in each hierarchy */
        int (*set_limits)(Cgroup *cg, const CgroupLimits *limits); /* write the limit knobs */
        int (*attach)(Cgroup *cg, pid_t pid);                      /* write pid to cgroup.procs */
        int (*freeze)(Cgroup *cg, bool frozen); /* freezer.state / cgroup.freeze */
        int (*kill)(Cgroup *cg);                /* SIGKILL every task, cgroup.kill where present */
        int (*stats)(Cgroup *cg, CgroupStats *ret); /* read usage counters */
        int (*destroy)(Cgroup *cg);                 /* rmdir the leaf everywhere */
} CgroupOps;

extern const CgroupOps cgroup_v1_ops;
extern const CgroupOps cgroup_v2_ops;
extern const CgroupOps cgroup_hybrid_ops;

/*
 * Detects the host's layout under fs_root (normally "/sys/fs/cgroup"): v2 if fs_root
 * is itself cgroup2 (has cgroup.controllers), hybrid if fs_root/unified is cgroup2
 * next to v1 controller mounts, v1 otherwise. Returns 0 and *ret, -ENOENT if no
 * cgroup hierarchy is found.
 */
int cgroup_detect(const char *fs_root, CgroupMode *ret);

/*
 * Creates a manager. fs_root: "/sys/fs/cgroup" (tests pass a fake tree). mode:
 * CGROUP_MODE_AUTO to detect, or a forced backend (a hybrid host can be driven as
 * pure v1). parent: path relative to each hierarchy's root under which "cella" is
 * made, or NULL for the default described above. Does not create anything yet.
 * Returns 0 and *ret, -ENOENT (no hierarchy), -ENOMEM.
 */
int cgroup_manager_new(const char *fs_root, CgroupMode mode, const char *parent,
                       CgroupManager **ret);
/* Frees m, which must outlive every Cgroup made from it; takes NULL; returns NULL. */
CgroupManager *cgroup_manager_free(CgroupManager *m);
/* The backend m drives: CGROUP_MODE_V1, _V2 or _HYBRID, never _AUTO. */
CgroupMode cgroup_manager_mode(const CgroupManager *m);
/* The ops table of that backend (cgroup_v1_ops, cgroup_v2_ops, cgroup_hybrid_ops). */
const CgroupOps *cgroup_manager_ops(const CgroupManager *m);

/*
 * Cella's root under m in the hierarchy holding controller ctrl ("memory", "pids",
 * "cpu", "cpuacct", "freezer"; "" for the cgroup2 one): "<parent>/cella", the parent
 * of every app's leaf, into *ret (belongs to m). make: mkdir it first if missing (on
 * pure v2 also enabling the controllers on its parent and on it, as making a leaf
 * does), for a limit on all the apps at once (src/memory/budget.c, memory.total).
 * Returns 0, -EINVAL, -ENOENT (the backend uses no such hierarchy), or the -errno
 * of the mkdir or the subtree_control write.
 */
int cgroup_manager_root(CgroupManager *m, const char *ctrl, bool make, const char **ret);

/*
 * For a long-running kernel (cellad, docs/daemon.md "Cgroups"): moves the calling
 * process into "<B>/<leaf>" in every hierarchy m uses and makes B the parent of
 * cella's root there, so that the apps' leaves (B/cella/...) sit beside the kernel's
 * own leaf and B holds no process (cgroup v2's "no internal processes" rule, kernel
 * Documentation/admin-guide/cgroup-v2.rst; systemd.resource-control(5), Delegate=:
 * a delegated service moves its own processes into a leaf of its subtree). B, per
 * hierarchy, is:
 *   - the process's cgroup when it is in "<B>/<leaf>" already (a re-exec);
 *   - else its cgroup when it is that cgroup's only process (a service of its own);
 *   - else "<its cgroup>/<base>", made (a cgroup shared with a shell, on v1 and the
 *     controller-less cgroup2 of a hybrid host), or "<hierarchy root>/<base>" on
 *     pure v2 (the shell's cgroup could have no child with controllers);
 *   - "<hierarchy root>/<base>" when its cgroup, or one above it, could be changed
 *     by another user (owned by neither root nor geteuid(), or writable by group or
 *     others: a cgroup systemd delegated to a user): that user could otherwise
 *     rename, remove or make the apps' cgroups and undo their limits.
 * leaf and base: one path component each, not "cella". Call before any thread or
 * child exists (cgroup.procs moves the whole process). Returns 0, -EINVAL, or the
 * -errno of the mkdir or cgroup.procs write that failed (the process may then be
 * moved in some hierarchies and not others).
 */
int cgroup_manager_enter(CgroupManager *m, const char *leaf, const char *base);

/*
 * cgroup_manager_enter() that also records mark (NULL: none), a string of at most
 * PATH_MAX - 1 bytes (cellad: its state directory's path), on each base B it makes
 * (not on a cgroup of its own or a re-exec's) as the extended attribute
 * CGROUP_BASE_MARK_XATTR, which only a process with CAP_SYS_ADMIN can set or read
 * (xattr(7), "Trusted extended attributes"; cgroupfs keeps them since Linux 3.15 on
 * v1 and v2): cgroup_manager_sweep_bases() of another cellad reads it back. A base
 * removed by such a sweep between its mkdir and the move (it is empty then) is made
 * again, up to 8 times. Returns as cgroup_manager_enter(); a file system without
 * trusted xattrs is no error (the mark is then missing).
 */
#define CGROUP_BASE_MARK_XATTR "trusted.cella.state_dir"
int cgroup_manager_enter_marked(CgroupManager *m, const char *leaf, const char *base,
                                const char *mark);

/*
 * Whether the base named prefix + tag, with mark its CGROUP_BASE_MARK_XATTR (NULL
 * when it has none), belongs to nobody any more (cellad: its state directory is
 * gone), for cgroup_manager_sweep_bases().
 */
typedef bool (*CgroupBaseGoneFn)(const char *tag, const char *mark, void *userdata);

/*
 * Removes the empty bases of other daemons beside m's own (docs/daemon.md "Cgroups",
 * "Leftover bases"): in each hierarchy where cgroup_manager_enter() made m's base B,
 * each sibling of B whose name starts with prefix, for which gone() says true, and
 * which lists no process in its whole subtree, is removed children first: its
 * "<leaf>" (the daemon's own leaf) first, so that a daemon that moved in since
 * keeps it (EBUSY) and one that makes it again stops the removal before any other
 * of its cgroups goes. Bases of live daemons are never empty (the daemon is in its
 * leaf), and a daemon's own base is not a sibling. Returns the number of bases
 * removed (one per hierarchy) or -EINVAL, -ENOMEM.
 */
int cgroup_manager_sweep_bases(CgroupManager *m, const char *leaf, const char *prefix,
                               CgroupBaseGoneFn gone, void *userdata);

/*
 * Undoes cgroup_manager_enter() as far as it can at the process's end: moves it back
 * to the cgroup it came from and removes "<B>/<leaf>", B/cella and a B it made, each
 * only if empty (another daemon's leaf or live apps keep them). Takes NULL.
 */
void cgroup_manager_leave(CgroupManager *m);

/*
 * Removes leftover leaves under cella's root in every hierarchy: a leaf whose owner
 * pid (after the '@' in its name) is not alive (no such process, or a zombie: it
 * exited and waits for a parent that may never reap it) has its tasks killed and
 * is removed.
 * Leaves of live owners, and names without "@<pid>", are left alone.
 * Returns the number of leaves removed (>= 0), or -errno if the roots cannot be read.
 */
int cgroup_sweep(CgroupManager *m);

/*
 * Makes a Cgroup handle for leaf "<label>@<owner>" (owner = getpid() of the caller)
 * and creates it in every hierarchy the backend uses (with cella's root if missing).
 * label: [A-Za-z0-9._-], at most 200 bytes. Returns 0 and *ret, -EINVAL, -errno.
 */
int cgroup_new(CgroupManager *m, const char *label, Cgroup **ret);

/*
 * Leaves made by m from now on are named "<label>@<tag>" instead of after the
 * caller's pid (NULL: its pid again). tag: 1 to CGROUP_OWNER_TAG_MAX ASCII letters
 * and digits, starting with a letter, so that it is never taken for a pid. A leaf
 * named after a tag is no cgroup_sweep()'s, whoever runs it: only
 * cgroup_sweep_owned() with that tag removes it. cellad tags its apps' leaves after
 * its state directory (src/supervisor/adopt.c): the apps outlive cellad, held by
 * its keeper, and are the next cellad's to adopt or remove, not the leftovers of a
 * process that is gone. Returns 0, -EINVAL (a bad tag), -ENOMEM.
 */
#define CGROUP_OWNER_TAG_MAX 40
int cgroup_manager_set_owner(CgroupManager *m, const char *tag);

/*
 * For an OCI runtime (cella-oci: config.json linux.cgroupsPath, docs/oci.md
 * "Cgroups"): from now on every leaf m makes or opens is exactly path in each
 * hierarchy the backend uses, not "<parent>/cella/<label>@<owner>" (NULL: back to
 * that naming). An absolute path ("/libpod_parent/libpod-ID") is relative to each
 * hierarchy's root, a relative one to the manager's parent (the caller's own cgroup
 * on v1 and hybrid, the root on pure v2), as runc takes it. cgroup_new() and
 * cgroup_new_unified() then make it, with its missing parents (mode 0755; on a
 * cgroup2 hierarchy the parents' subtree_control enabling cella's controllers, from
 * the hierarchy root down), an existing leaf being taken as it is; their label is
 * only checked; cgroup_name() is the path. cgroup_open() takes exactly that path as
 * name. cgroup_destroy() removes the leaf alone, never its parents. The sweeps never
 * see such a leaf (it is not under cella's root). path: 1 to PATH_MAX - 1 bytes of
 * components of [A-Za-z0-9._:@-], none "." or "..", separated by single '/' (a
 * trailing one allowed). Returns 0, -EINVAL (a path not of that form), -ENOMEM.
 */
int cgroup_manager_set_path(CgroupManager *m, const char *path);

/*
 * Makes m use the controllers in ctrls (CGROUP_CTRL_*) too, for an OCI runtime: on v1
 * and hybrid their v1 hierarchies (leaves are made, joined and removed there as in
 * the others; a v1 cpuset leaf and the parents made for it get the parent's
 * cpuset.cpus and cpuset.mems), on pure v2 the cpuset, io and hugetlb controllers
 * enabled down to the leaf. Call before any Cgroup is made from m. A controller the
 * host lacks is left out and its bit set in *ret_missing (may be NULL). Returns 0,
 * -EINVAL, -ENOMEM, or -errno reading the mounts.
 */
int cgroup_manager_add_controllers(CgroupManager *m, unsigned ctrls, unsigned *ret_missing);

/*
 * With cgroup_manager_set_path(): whether the exact path holds a process in any
 * hierarchy m uses (its cgroup.procs lists one), where it exists: a cgroup that is
 * someone else's (a service's, another container's). Hierarchies where the path is
 * missing count as empty. Returns 1, 0, -EINVAL (no exact path), -ENOMEM.
 */
int cgroup_manager_path_busy(CgroupManager *m);

/*
 * Whether the host can apply res through m (controllers added, knob files present on
 * the hierarchy: blkio.weight or blkio.bfq.weight, hugetlb.<size>.limit_in_bytes, ...;
 * swappiness and oom_kill_disable pass on pure v2, which has no such knob and where
 * they are not written: the caller says so;
 * unified keys only on pure v2, none with "/" or "..", none of the cgroup.* files that
 * move tasks or change the tree). Returns 0, or -EOPNOTSUPP / -EINVAL with err naming
 * the knob ("linux.resources.blockIO.weight: ...").
 */
int cgroup_resources_check(CgroupManager *m, const CgroupResources *res, char *err, size_t errlen);

/*
 * Writes res into cg's leaves (cgroup_set_limits() does it too, for limits->resources),
 * after cgroup_resources_check(). ret_knob (may be NULL): the name of the file of the
 * last write tried ("cpuset.cpus"), for the error of one that failed (the kernel's
 * -EINVAL or -ERANGE for a CPU the parent lacks). Returns 0 or that write's -errno.
 */
int cgroup_apply_resources(Cgroup *cg, const CgroupResources *res, const char **ret_knob);

/*
 * The device rules runc adds after a container's own (libcontainer/specconv
 * AllowedDevices): mknod of any character or block device (the node still needs
 * CAP_MKNOD), and rwm of /dev/null, zero, full, random, urandom, tty, console, ptmx,
 * the pty slaves (136:*) and net/tun.
 */
extern const CgroupDeviceRule cgroup_default_device_rules[];
extern const size_t cgroup_n_default_device_rules;

/*
 * A handle for the existing leaf name ("<label>@<owner pid or tag>", as
 * cgroup_name() of the Cgroup that made it), in every hierarchy m uses; nothing is
 * created. For a kernel adopting a sandbox an earlier one made (sandbox_adopt()).
 * Returns 0 and *ret, -EINVAL (a malformed name: not a valid label, '@' and a pid
 * or tag), -ENOENT (the
 * leaf is missing from a hierarchy), -ENOTDIR, -ENOMEM. While the handle lives, no
 * cgroup_sweep() or cgroup_sweep_owned() of m removes the leaf, whatever its owner.
 */
int cgroup_open(CgroupManager *m, const char *name, Cgroup **ret);

/* Frees the handle and leaves the leaf as it is (its tasks run on). Takes NULL;
 * returns NULL. */
Cgroup *cgroup_close(Cgroup *cg);

/* The leaf's name, "<label>@<owner pid>"; belongs to cg. NULL for NULL. */
const char *cgroup_name(const Cgroup *cg);

/*
 * cgroup_sweep() for a daemon that has just adopted the apps in keep: kills the
 * tasks of, and removes, every leaf under cella's root whose name is not in keep
 * (NULL-terminated; may be NULL) and whose owner is the tag owner (the daemon's
 * own: apps it started that could not be adopted, their fds never handed over or
 * gone) or a pid that is not alive (cgroup_sweep()'s leftovers). Leaves of other
 * tags or of live pids, and leaves open by cgroup_open(), are left alone. Returns
 * the number removed (>= 0), -EINVAL (not a tag), or -errno if a root cannot be
 * read.
 */
int cgroup_sweep_owned(CgroupManager *m, const char *owner, char *const *keep);

/*
 * cgroup_new() in two steps, so the slower one can overlap a child's setup:
 * cgroup_new_unified() makes the handle and only the cgroup2 leaf, which
 * clone3(CLONE_INTO_CGROUP) needs to exist before the clone (on pure v2 that leaf is
 * the whole cgroup, controllers enabled); cgroup_new_rest() then makes the v1 leaves
 * (a memory-cgroup mkdir alone costs ~0.1 ms). Same returns as cgroup_new(); after a
 * cgroup_new_rest() failure, cgroup_destroy() the handle.
 */
int cgroup_new_unified(CgroupManager *m, const char *label, Cgroup **ret);
int cgroup_new_rest(Cgroup *cg);

/*
 * cgroup_new() that makes only new leaves: a leaf "<label>@<owner>" that exists in
 * any hierarchy is -EEXIST, and nothing is left made. For the warm pool's leaves
 * (spawn.c, sandbox_warm_new()), made ahead and joined by a waiting sandbox, which
 * must never join a leaf another sandbox holds (an adopted app's, a leftover's).
 * Returns 0 and *ret, -EINVAL, -EEXIST, -errno of a mkdir.
 */
int cgroup_new_exclusive(CgroupManager *m, const char *label, Cgroup **ret);

/*
 * Renames cg's leaf to "<label>@<its owner>" in every hierarchy, or in none: on a
 * backend with no cgroup2 hierarchy (v1) only, as cgroup2 refuses rename(2) of a
 * cgroup (EPERM) and a leaf keeps one name everywhere (the name the keeper records
 * and cgroup_open() takes). Processes stay in it; a rename within the parent is one
 * kernfs operation, no migration. For a warm sandbox's leaf given to an app
 * (sandbox_spawn_warm()). Returns 0, -EOPNOTSUPP (a cgroup2 hierarchy: the name
 * stays), -EEXIST (a leaf of that name exists: the name stays), -EINVAL (a bad
 * label, an adopted handle), -ENOMEM, or the -errno of rename(2); on failure every
 * leaf keeps its old name.
 */
int cgroup_rename(Cgroup *cg, const char *label);

/*
 * The backend's ops on cg (CgroupOps above; the knobs of each backend in the header
 * comment): writes limits (a 0 field left alone; cpu_weight outside 1..10000 is
 * -EINVAL); moves pid (a host pid) into every leaf; freezes or thaws every task;
 * SIGKILLs every task; reads the counters into *ret. Each returns 0, -EINVAL for a
 * NULL cg (or limits, ret), or the -errno of the cgroup file that failed.
 */
int cgroup_set_limits(Cgroup *cg, const CgroupLimits *limits);
int cgroup_attach(Cgroup *cg, pid_t pid);
int cgroup_freeze(Cgroup *cg, bool frozen);
int cgroup_kill(Cgroup *cg);
int cgroup_stats(Cgroup *cg, CgroupStats *ret);
/*
 * Only CgroupStats.oom_kills, into *ret: one file read (memory.events in the cgroup2
 * leaf when it has the memory controller, else the v1 memory leaf's
 * memory.oom_control), not cgroup_stats()'s five. 0 without a memory controller or
 * on a kernel without the counter (v1 before 4.13). Returns 0 or -errno.
 */
int cgroup_oom_kills(Cgroup *cg, uint64_t *ret);

/*
 * Kills what is left in the cgroup, removes the leaf from every hierarchy and frees
 * the handle. Takes NULL; returns NULL. Errors removing are ignored (a later sweep
 * retries).
 */
Cgroup *cgroup_destroy(Cgroup *cg);

/*
 * The fast way into a cgroup for a child about to be cloned (cgroup_join_prepare()
 * in the parent, cgroup_join_self() as the child's first step):
 *
 * - the cgroup2 leaf, if the backend uses one, opened O_PATH|O_DIRECTORY for
 *   clone3(CLONE_INTO_CGROUP): the child is born in it, nothing migrates;
 * - the "tasks" file of every v1 leaf, opened O_WRONLY: the child writes "0" to
 *   each, moving itself as a single thread. Linux skips the global
 *   cgroup_threadgroup_rwsem write lock for exactly that case
 *   (cgroup_procs_write_start(): "If we migrate a single thread, we don't care
 *   about threadgroup stability"), and that lock's RCU grace period is what made a
 *   parent writing the child's pid to cgroup.procs cost 7-15 ms on this host,
 *   against 0.4 ms for the self-move.
 */
#define CGROUP_JOIN_MAX_V1 12

typedef struct CgroupJoin {
        int unified_fd;                 /* -EBADF when there is no cgroup2 leaf */
        int v1_fds[CGROUP_JOIN_MAX_V1]; /* "tasks" of each v1 leaf */
        unsigned n_v1;
} CgroupJoin;

/*
 * Opens what the child needs to join cg (all O_CLOEXEC). Returns 0 and *ret (release
 * with cgroup_join_done), or -errno of open.
 */
int cgroup_join_prepare(Cgroup *cg, CgroupJoin *ret);

/*
 * In the child (single-threaded): joins every v1 leaf by writing "0" to its tasks
 * fd, then closes the fds. The cgroup2 leaf is joined by clone3 itself. No
 * allocation; safe between clone and exec. Returns 0 or -errno of the first write.
 */
int cgroup_join_self(CgroupJoin *j);

/* Closes what is left open; takes an all-closed struct. */
void cgroup_join_done(CgroupJoin *j);

/*
 * The leaf's directory in the hierarchy that holds controller ctrl ("memory",
 * "pids", "cpu", "freezer"; "" for the v2/unified one), or NULL if the backend does
 * not use that hierarchy. The string belongs to cg.
 */
const char *cgroup_path(const Cgroup *cg, const char *ctrl);

/*
 * Reading a cgroup directory's files: what the backends read for cgroup_stats(), and
 * what the broker reads of an app's cgroups by the directories cgroup_path() gave
 * (memory.stats, proc.list). Each takes dir NULL (a hierarchy the backend does not
 * use) as -ENOENT, so a caller can try the v1 directory, then the v2 one.
 */

/* Reads dir/knob whole (at most 64 KiB, NUL-terminated). Returns 0 and *ret (caller
 * frees), or -errno of the read (-ENOENT: no such file or dir NULL). */
int cgroup_read_knob(const char *dir, const char *knob, char **ret);

/*
 * Reads dir/knob as one unsigned decimal ("max" reads as UINT64_MAX). Returns 0 and
 * *ret, -EINVAL if it is not a number (v1's "-1" for no CFS quota included), -ERANGE,
 * or -errno of the read.
 */
int cgroup_read_knob_u64(const char *dir, const char *knob, uint64_t *ret);

/*
 * Reads the value of the "key value" line whose key is exactly key in dir/knob
 * (memory.events, memory.stat, cpu.stat, memory.oom_control, cgroup.events). Returns 0
 * and *ret, -ENODATA if there is no such line, -EINVAL if the value is not a number,
 * or -errno of the read.
 */
int cgroup_read_keyed_u64(const char *dir, const char *knob, const char *key, uint64_t *ret);

/*
 * Reads the avg10 of the "some" or "full" line (which) of a pressure file (knob:
 * "memory.pressure", "cpu.pressure", "io.pressure"; PSI, kernel
 * Documentation/accounting/psi.rst: "some avg10=1.23 avg60=... total=..."), in
 * hundredths of a percent (0..10000). PSI is in the cgroup2 hierarchy only, on hybrid
 * hosts too. Returns 0 and *ret, -ENODATA without such a line, -EINVAL if it does not
 * parse, or -errno of the read.
 */
int cgroup_read_pressure(const char *dir, const char *knob, const char *which, uint32_t *ret);

/*
 * Reads the pids listed in dir/cgroup.procs (at most 1 MiB of it), at most max of them,
 * into pids; entries that are not a positive pid are skipped. Returns the count
 * (>= 0), or -errno of the read.
 */
int cgroup_read_procs(const char *dir, pid_t *pids, size_t max);

/*
 * Memory actions (cgroup-action.c; the memory manager's, issue 13 and docs/memory.md,
 * "Actions"). Each returns -EINVAL for a NULL cg.
 */

/*
 * Sets the leaf's soft limit, bytes > 0: memory.high on v2 (above it the kernel
 * throttles and reclaims the cgroup's pages), memory.soft_limit_in_bytes on v1 and
 * hybrid (the v1 memory controller: under global pressure the kernel reclaims
 * first from cgroups over it). UINT64_MAX removes it ("max" / "-1"). Returns 0,
 * -EINVAL (bytes 0), -EOPNOTSUPP (no memory controller in the leaf), -errno.
 */
int cgroup_set_soft_limit(Cgroup *cg, uint64_t bytes);

/* Reads the soft limit into *ret, bytes, UINT64_MAX when none. Returns 0, -EOPNOTSUPP
 * (no memory controller in the leaf), -errno. */
int cgroup_soft_limit(Cgroup *cg, uint64_t *ret);

/*
 * Sets the leaf's swap cap, bytes (UINT64_MAX: none): memory.swap.max on v2
 * ("max" for none); on v1 and hybrid memory.memsw.limit_in_bytes (memory plus
 * swap, cgroup-v1/memory.rst 2.4) set to the leaf's memory.limit_in_bytes + bytes
 * ("-1" for none). Returns 0, -EOPNOTSUPP (no such file in the leaf: no swap
 * accounting, or no memory controller there), -ERANGE (v1: the leaf has no memory
 * limit, so memory + swap cannot cap swap alone), -errno.
 */
int cgroup_set_swap_max(Cgroup *cg, uint64_t bytes);

/* Reads the swap cap into *ret, bytes, UINT64_MAX when none (v1: memsw minus the
 * memory limit). Returns 0, -EOPNOTSUPP (as above), -errno. */
int cgroup_swap_max(Cgroup *cg, uint64_t *ret);

/*
 * Freezes or thaws through the unified hierarchy's cgroup.freeze (v2, and the
 * controller-less cgroup2 leaf of a hybrid host), never the v1 freezer, then waits
 * (cgroup.events read every 100 µs) for "frozen 1" or "frozen 0", at most
 * timeout_ms; a freeze that times out is thawed again. Returns 0, -ETIMEDOUT,
 * -EOPNOTSUPP (no cgroup2 leaf: a pure v1 host, or a kernel before 5.2), -errno.
 */
int cgroup_freeze_unified(Cgroup *cg, bool frozen, unsigned timeout_ms);

/*
 * Waits, at most timeout_ms, until no task is left: "populated 0" in the cgroup2
 * leaf's cgroup.events (read every 100 µs), then on hybrid every v1 leaf's cgroup.procs empty;
 * without a cgroup2 leaf (v1), cgroup.procs polled every millisecond. Returns 0,
 * -EBUSY (tasks remain), -errno.
 */
int cgroup_wait_unpopulated(Cgroup *cg, unsigned timeout_ms);

/*
 * SIGKILLs every task and waits until the cgroup is empty: cgroup.kill (5.14+) and
 * cgroup_wait_unpopulated(timeout_ms) where there is a cgroup2 leaf; otherwise, or
 * if tasks remain after timeout_ms, cgroup_kill()'s freeze / SIGKILL / thaw rounds.
 * Returns 0, -EBUSY (tasks remain), -errno.
 */
int cgroup_kill_wait(Cgroup *cg, unsigned timeout_ms);
