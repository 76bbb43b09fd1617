/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared between cgroup.c (manager, detection, sweep, dispatch), cgroup-v1.c and
 * cgroup-v2.c (the backends). Not part of any public interface.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/cgroup.h"

/* Longest label cgroup_new() takes (cgroup.h); with "@" and a pid it stays far below NAME_MAX. */
#define CGROUP_LABEL_MAX 200

/*
 * cpu.weight range and default (kernel Documentation/admin-guide/cgroup-v2.rst,
 * "Weights": [1, 10000], default 100), and the v1 cpu.shares range and default
 * (kernel/sched/sched.h MIN_SHARES = 2, MAX_SHARES = 1 << 18; default 1024).
 */
#define CGROUP_WEIGHT_MIN         1
#define CGROUP_WEIGHT_DEFAULT     100
#define CGROUP_WEIGHT_MAX         10000
#define CGROUP_CPU_SHARES_MIN     2
#define CGROUP_CPU_SHARES_DEFAULT 1024
#define CGROUP_CPU_SHARES_MAX     262144

/*
 * CFS bandwidth bounds, microseconds (kernel/sched/core.c: min_cfs_quota_period = 1 ms,
 * max_cfs_quota_period = 1 s, a quota below 1 ms is -EINVAL; default_cfs_period() = 100 ms).
 */
#define CGROUP_CPU_PERIOD_MIN_US     1000
#define CGROUP_CPU_PERIOD_MAX_US     1000000
#define CGROUP_CPU_PERIOD_DEFAULT_US 100000
#define CGROUP_CPU_QUOTA_MIN_US      1000

/*
 * How long freeze waits for the kernel to report the cgroup frozen. Runnable and
 * sleeping tasks freeze within a few ms; a task stuck in uninterruptible sleep (NFS,
 * FUSE, a hung device) never does, and one second bounds how long the caller (the
 * kernel's main loop) can be held by it. On timeout the cgroup is thawed again.
 */
#define CGROUP_FREEZE_TIMEOUT_MS 1000

/*
 * kill: rounds of freeze / SIGKILL everything listed / thaw before giving up. Each
 * round can only miss tasks forked after cgroup.procs was read, and a frozen cgroup
 * forks nothing, so a handful suffices; 50 also outlasts a fork bomb held by pids.max.
 */
#define CGROUP_KILL_ROUNDS 50

/* How long kill waits for SIGKILLed tasks to leave cgroup.procs, ms. */
#define CGROUP_KILL_WAIT_MS 1000

/*
 * rmdir of a leaf is -EBUSY until its last task has left it (exiting tasks leave in
 * do_exit, before they are reaped). 50 tries 10 ms apart: half a second.
 */
#define CGROUP_RMDIR_TRIES    50
#define CGROUP_RMDIR_RETRY_MS 10

/* Nesting cgroup_sweep() follows below a leftover leaf (a buggy run's subgroups). */
#define CGROUP_SWEEP_MAX_DEPTH 16

/* One slot per controller a backend may use; several slots can share a hierarchy. */
typedef enum CgroupSlot {
        CGROUP_SLOT_MEMORY,
        CGROUP_SLOT_PIDS,
        CGROUP_SLOT_CPU,
        CGROUP_SLOT_CPUACCT,
        CGROUP_SLOT_FREEZER,
        CGROUP_SLOT_UNIFIED, /* the cgroup2 hierarchy (pure v2, or hybrid's "unified") */
        /* Only with cgroup_manager_add_controllers() (cella-oci): on v1 and hybrid
         * their v1 hierarchies; on pure v2 the cgroup2 one (-1 until added). */
        CGROUP_SLOT_CPUSET,
        CGROUP_SLOT_DEVICES,
        CGROUP_SLOT_BLKIO,
        CGROUP_SLOT_NET_CLS,
        CGROUP_SLOT_NET_PRIO,
        CGROUP_SLOT_HUGETLB,
        _CGROUP_SLOT_MAX,
} CgroupSlot;

typedef struct CgroupHierarchy {
        dev_t dev;      /* identity of mount, to spot one hierarchy reached by two names */
        ino_t ino;      /* ("cpu" and "cpuacct" symlinked to "cpu,cpuacct") */
        char *mount;    /* the hierarchy's directory: "/sys/fs/cgroup/memory", "/sys/fs/cgroup" */
        char *parent;   /* mount + parent path: where "cella" lives */
        char *root;     /* parent + "/cella": cella's root, holds the leaves */
        bool unified;   /* cgroup2: cgroup.kill, cgroup.freeze, cgroup.subtree_control */
        char *self;     /* cgroup_manager_enter(): the process's cgroup before it moved */
        char *leaf_dir; /* cgroup_manager_enter(): parent + "/" + leaf, where it moved */
        bool made_base; /* cgroup_manager_enter() made parent (a "<base>" of its own) */
} CgroupHierarchy;

struct CgroupManager {
        CgroupMode mode;
        const CgroupOps *ops;
        CgroupHierarchy hier[_CGROUP_SLOT_MAX]; /* distinct hierarchies, n_hier of them */
        size_t n_hier;
        int slot[_CGROUP_SLOT_MAX]; /* index into hier, -1 when the backend does not use it */
        char *owner_tag;  /* the "@<owner>" of new leaves (cgroup_manager_set_owner()); NULL:
                             "@<pid>" */
        char **adopted;   /* names of leaves open by cgroup_open(): no sweep removes them */
        char *path;       /* cgroup_manager_set_path(): every leaf is exactly this; NULL: none */
        char *fs_root;    /* where the hierarchies are mounted: "/sys/fs/cgroup" */
        char *parent_arg; /* cgroup_manager_new()'s parent, normalized; NULL: the default */
        unsigned extra;   /* CGROUP_CTRL_* added by cgroup_manager_add_controllers() */
};

struct Cgroup {
        CgroupManager *manager;       /* not owned; must outlive the Cgroup */
        char *name;                   /* "<label>@<owner pid or tag>" */
        bool adopted;                 /* made by cgroup_open(): its name is in manager->adopted */
        char *leaf[_CGROUP_SLOT_MAX]; /* per hierarchy index: hier[i].root + "/" + name */
};

/* cgroup_manager_set_path()'s leaf in hierarchy i: the directory the path is relative
 * to (the mount for an absolute path, the parent for a relative one), joined with it. */
const char *cgroup_path_base(const CgroupManager *m, size_t i);

/* The leaf directory for a controller slot, or NULL if the backend does not use it. */
const char *cgroup_leaf(const Cgroup *cg, CgroupSlot slot);

/*
 * True if word is one of the entries of list, split at any of the characters in seps
 * ("memory pids cpu\n" with " \n", "cpu,cpuacct" with ",").
 */
bool cgroup_list_contains(const char *list, const char *seps, const char *word);

/*
 * Maps the result of reading a counter that may legitimately be absent (a controller
 * not enabled in a v2 leaf, a line older kernels lack) to 0; other errors pass.
 */
static inline int cgroup_optional(int r)
{
        return r == -ENOENT || r == -ENODATA ? 0 : r;
}

/* Writes value to dir/knob (no O_CREAT, no newline). Returns 0 or -errno. */
int cgroup_write_knob(const char *dir, const char *knob, const char *value);

/* Writes v in decimal to dir/knob. Returns 0 or -errno. */
int cgroup_write_knob_u64(const char *dir, const char *knob, uint64_t v);

/*
 * Polls dir/knob every millisecond until its "key value" line reads want, for at most
 * timeout_ms. Returns 0, -ETIMEDOUT, or -errno of the read.
 */
int cgroup_wait_keyed(const char *dir, const char *knob, const char *key, uint64_t want,
                      unsigned timeout_ms);

/*
 * Sends SIGKILL to every pid listed in dir/cgroup.procs. Returns the number of tasks
 * signalled (>= 0), or -errno (-ENOENT when there is no cgroup.procs).
 */
int cgroup_kill_procs(const char *dir);

/*
 * Waits, at most timeout_ms, until cgroup.procs of every leaf of cg is empty (a
 * missing cgroup.procs counts as empty). Returns 0, -EBUSY if tasks remain, -errno.
 */
int cgroup_wait_empty(Cgroup *cg, unsigned timeout_ms);

/*
 * Kills every task in every leaf of cg the portable way: freeze (if freeze is not
 * NULL), SIGKILL each pid in each cgroup.procs, thaw, repeat until all are empty,
 * at most CGROUP_KILL_ROUNDS rounds. Freezing first keeps tasks from forking out of
 * the list and keeps listed pids from being reused before the signal lands; a freeze
 * that fails does not stop the kill. Returns 0, -EBUSY if tasks remain, -errno.
 */
int cgroup_kill_loop(Cgroup *cg, int (*freeze)(Cgroup *cg, bool frozen));

/*
 * Shared ops slots. create: mkdir cella's root (mode 0755) and the leaf in every
 * hierarchy, existing ones are reused; on failure the leaves it made are removed.
 * attach: writes pid to cgroup.procs of every leaf. destroy: rmdir every leaf,
 * retrying on -EBUSY (CGROUP_RMDIR_TRIES); a leaf already gone is fine.
 * Return 0 or the first -errno.
 */
int cgroup_generic_create(Cgroup *cg);
int cgroup_generic_attach(Cgroup *cg, pid_t pid);
int cgroup_generic_destroy(Cgroup *cg);

/* mkdir path with mode 0755; an existing directory is fine. Returns 0 or -errno. */
int cgroup_mkdir(const char *path);

/* rmdir path, retrying on -EBUSY as described above; -ENOENT counts as done. 0 or -errno. */
int cgroup_rmdir(const char *path);

/* Sleeps ms milliseconds (restarting on EINTR). */
void cgroup_sleep_ms(unsigned ms);

/*
 * v2 cpu.weight (1..10000) to v1 cpu.shares, as systemd converts CPUWeight= on
 * legacy hosts (src/core/cgroup.c cgroup_cpu_weight_to_shares(), constants from
 * src/basic/cgroup-util.h): shares = weight * 1024 / 100, clamped to 2..262144.
 */
uint64_t cgroup_weight_to_shares(uint64_t weight);

/*
 * Enables in dir's cgroup.subtree_control the controllers cella uses that dir has
 * and has not enabled (cgroup-v2.c). Returns 0 or -errno (-EBUSY: dir holds
 * processes and is not the root).
 */
int cgroup_v2_enable_controllers(const char *dir);

/* cgroup_v2_enable_controllers() that also enables the cgroup2 controllers of the
 * CGROUP_CTRL_* in extra (cpuset, io, hugetlb; the others have none on cgroup2). */
int cgroup_v2_enable_controllers_extra(const char *dir, unsigned extra);

/* The slot of ctrl, exactly one CGROUP_CTRL_* bit. */
CgroupSlot cgroup_ctrl_slot(unsigned ctrl);

/*
 * v1 cpuset: a new cgroup has empty cpuset.cpus and cpuset.mems, and no task can join
 * it until they are set (kernel Documentation/admin-guide/cgroup-v1/cpusets.rst 1.7;
 * runc's cpuset.go ensureParent() copies them from the parent): copies the parent's
 * into dir where dir's are empty. Returns 0 or -errno.
 */
int cgroup_v1_cpuset_inherit(const char *dir);

/* The v1 limit and stats code, shared by the v1 and hybrid backends (cgroup-v1.c). */
int cgroup_v1_set_limits(Cgroup *cg, const CgroupLimits *limits);
int cgroup_v1_stats(Cgroup *cg, CgroupStats *ret);
