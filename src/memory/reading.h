/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Memory readings (docs/memory.md "Signals and levels"): what one app's cgroup, the
 * daemon's apps subtree or the whole machine uses, split as the kernel accounts it,
 * and its memory pressure (PSI).
 *
 * A MemorySource holds the files of one such target open, and a buffer of its own:
 * a sample is one pread() from offset 0 per file (as lmkd's reread_file() does, so
 * that sampling under memory pressure opens nothing and allocates nothing), parsed
 * in place.
 *
 *   target    files (cgroup v2; the v1 equivalent on v1 and hybrid hosts)
 *   cgroup    memory.current (memory.usage_in_bytes), memory.stat (its total_* keys),
 *             memory.peak (memory.max_usage_in_bytes), memory.max
 *             (memory.limit_in_bytes), memory.swap.current (memory.memsw.usage_in_bytes
 *             minus usage), memory.events oom_kill (memory.oom_control oom_kill),
 *             memory.pressure (in the cgroup2 hierarchy only, hybrid hosts too)
 *   machine   /proc/meminfo, /proc/vmstat oom_kill, /proc/pressure/memory
 *
 * Sources: kernel Documentation/admin-guide/cgroup-v2.rst ("Memory Interface
 * Files"), Documentation/admin-guide/cgroup-v1/memory.rst (section 5.2, "stat
 * file"), Documentation/filesystems/proc.rst (meminfo), Documentation/accounting/
 * psi.rst.
 */

#include <stdbool.h>
#include <stdint.h>

#include "sandbox/cgroup.h"

/* A field the target does not offer (memory.peak before Linux 5.19, no swap
 * accounting) reads as this. */
#define MEMORY_UNKNOWN UINT64_MAX

typedef struct MemoryReading {
        uint64_t current; /* bytes charged (cgroup) or in use, MemTotal - MemAvailable (machine) */
        uint64_t anon;    /* bytes of anonymous memory (v2 anon, v1 total_rss, AnonPages) */
        uint64_t file;    /* bytes of page cache, shmem included (v2 file, v1 total_cache,
                             Buffers + Cached) */
        uint64_t shmem;   /* bytes of tmpfs/shared memory (shmem, total_shmem, Shmem) */
        uint64_t kernel;  /* bytes of kernel memory: v2 kernel (or kernel_stack + pagetables
                             + slab before 5.18), v1 memory.kmem.usage_in_bytes, Slab +
                             KernelStack + PageTables; MEMORY_UNKNOWN if not offered */
        uint64_t inactive_file; /* bytes of page cache the kernel reclaims first */
        uint64_t peak;          /* bytes, highest current seen; MEMORY_UNKNOWN for the machine */
        uint64_t limit;         /* bytes; MEMORY_UNKNOWN when unlimited; MemTotal for the machine */
        uint64_t available;     /* bytes it can still get without an OOM kill: machine
                                   MemAvailable; cgroup limit - (current - inactive_file), the
                                   kubelet's working set, clamped at 0; MEMORY_UNKNOWN when
                                   unlimited */
        uint64_t swap;          /* bytes swapped out; MEMORY_UNKNOWN without swap accounting */
        uint64_t oom_kills;     /* processes the OOM killer killed in it (machine: since boot) */
        /* PSI of the target, MEMORY_UNKNOWN without (psi=0, no cgroup2 leaf): */
        uint64_t some_total_us; /* total time some task stalled on memory, microseconds */
        uint64_t full_total_us; /* total time all non-idle tasks stalled, microseconds */
        uint32_t some_avg10;    /* 10 s average share of "some", hundredths of a percent */
        uint32_t full_avg10;    /* same for "full" */
        bool has_psi;
} MemoryReading;

typedef struct MemorySource MemorySource;

/*
 * Opens the files of one cgroup: v1_memory_dir, the cgroup's directory in a v1
 * memory hierarchy (NULL on pure v2), and v2_dir, its directory in the cgroup2
 * hierarchy (NULL on pure v1). The memory figures come from v2_dir when it has
 * memory.current (pure v2), else from v1_memory_dir; PSI from v2_dir's
 * memory.pressure (hybrid hosts have it with no controller enabled). A missing
 * optional file (memory.peak, memory.swap.current, memory.kmem.*, memory.pressure)
 * leaves its figure MEMORY_UNKNOWN. Returns 0 and *ret, -ENOENT (neither directory
 * has memory figures), -ENOMEM, or -errno of an open.
 */
int memory_source_open_cgroup(const char *v1_memory_dir, const char *v2_dir, MemorySource **ret);

/* memory_source_open_cgroup() on an app's leaf (cgroup_path(cg, "memory") and
 * cgroup_path(cg, "")). Same returns. */
int memory_source_open_app(const Cgroup *cg, MemorySource **ret);

/*
 * memory_source_open_cgroup() on the apps' parent under m (cgroup_manager_root():
 * the daemon's apps subtree, where memory.total applies). make: create it if missing.
 * Same returns.
 */
int memory_source_open_apps(CgroupManager *m, bool make, MemorySource **ret);

/*
 * Opens the machine's files under proc_root (normally "/proc"; tests pass a fake
 * tree): meminfo (required), vmstat and pressure/memory (optional). Returns 0 and
 * *ret, -ENOMEM, or -errno of opening meminfo.
 */
int memory_source_open_machine(const char *proc_root, MemorySource **ret);

/*
 * Takes one sample into *ret: one pread() per open file, no allocation. Returns 0,
 * -EINVAL (a required file did not parse: the kernel's format changed), or -errno
 * of a read (-ENODEV: the cgroup was removed).
 */
int memory_source_read(MemorySource *s, MemoryReading *ret);

/* True if the figures come from the v1 memory controller. */
bool memory_source_is_v1(const MemorySource *s);

/* Closes the files and frees s. Takes NULL; returns NULL. */
MemorySource *memory_source_free(MemorySource *s);
