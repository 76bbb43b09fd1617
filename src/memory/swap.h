/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Compressed swap, detected and used where the host has it, never required
 * (issue 13, "Optional compression"; docs/memory.md "Compressed swap").
 *
 * Detection reads what the kernel shows: the active swap areas in /proc/swaps and
 * SwapTotal / SwapFree in /proc/meminfo (Documentation/filesystems/proc.rst), the
 * zram block devices in /sys/block/zram* (Documentation/admin-guide/blockdev/
 * zram.rst: disksize, comp_algorithm) and zswap's module parameters in
 * /sys/module/zswap/parameters (Documentation/admin-guide/mm/zswap.rst: enabled,
 * compressor). Memory is compressed when a zram device is an active swap area, or
 * zswap is enabled in front of an active swap area (zswap without a swap device
 * stores nothing: its pages are written back to that device).
 *
 * Where memory is compressed, each app gets a swap cap by its class (the same
 * classes as the CPU weights, memory/cpu.h): a share of its memory limit that it
 * may have swapped out, written to its cgroup leaf (memory.swap.max on v2;
 * memory.memsw.limit_in_bytes = limit + cap on v1 and hybrid hosts, where memsw is
 * memory plus swap: Documentation/admin-guide/cgroup-v1/memory.rst, 2.4). A
 * foreground app's pages stay in RAM (swap-in is a stall the user sees); a cached
 * app's may all go to the compressed store, which is cheaper than killing it (the
 * point of Android's zram: lmkd kills only once zram filled up).
 */

#include <stdbool.h>
#include <stdint.h>

#include "memory/cpu.h"

typedef struct Cgroup Cgroup;

typedef struct SwapInfo {
        uint64_t total;            /* bytes, /proc/meminfo SwapTotal */
        uint64_t free;             /* bytes, SwapFree */
        unsigned n_areas;          /* active swap areas (lines of /proc/swaps past its header) */
        unsigned n_zram;           /* of them, zram devices (/dev/zramN) */
        unsigned zram_devices;     /* zram block devices (/sys/block/zramN), swap or not:
                                      zram0, zram1, ... up to the first missing */
        bool zswap;                /* /sys/module/zswap/parameters/enabled is Y */
        char zswap_compressor[32]; /* its compressor ("" without zswap) */
        char zram_algorithm[32];   /* the first zram swap device's algorithm ("" without) */
} SwapInfo;

/* Where swapped pages go: "zram", "zswap", "swap" (uncompressed), "none". */
const char *swap_info_kind(const SwapInfo *i);

/* True if memory is compressed: a zram device is an active swap area, or zswap is
 * enabled with an active swap area behind it. */
bool swap_info_compressed(const SwapInfo *i);

/*
 * Reads the host's swap and compression into *ret. proc_root ("/proc") and
 * sys_root ("/sys") may name fake trees (tests). A missing /proc/swaps, /sys/block
 * or /sys/module/zswap is "none of it", not an error. Returns 0, or -errno of
 * reading proc_root/meminfo (required), or -EINVAL if it has no SwapTotal line.
 */
int swap_detect(const char *proc_root, const char *sys_root, SwapInfo *ret);

/* The swap caps by class: percent of an app's memory limit (0..100), and whether
 * caps are written at all (cellad.conf memory.swap.*, docs/config.md). */
typedef struct SwapCaps {
        bool enabled;
        uint32_t percent[_CPU_CLASS_MAX];
} SwapCaps;

/* The defaults: enabled; foreground 0, visible 0, service 25, background 50,
 * cached 100 (percent of the app's memory limit; cella's choice, above). */
void swap_caps_default(SwapCaps *ret);

/*
 * The cap, in bytes, of an app of class c whose memory limit is limit bytes
 * (UINT64_MAX or 0: none; then budget, the apps' memory.total, stands in; 0: none
 * either): limit * percent / 100. Returns UINT64_MAX ("max": no cap) when caps are
 * disabled, c is out of range, or there is no limit to take a share of.
 */
uint64_t swap_cap_bytes(const SwapCaps *caps, CpuClass c, uint64_t limit, uint64_t budget);

/*
 * Writes a swap cap of bytes (UINT64_MAX: none) to cg's leaf: memory.swap.max on
 * cgroup v2 ("max" for none); on v1 and hybrid hosts memory.memsw.limit_in_bytes
 * set to the leaf's memory.limit_in_bytes + bytes ("-1" for none). Returns 0,
 * -EINVAL (NULL cg), -EOPNOTSUPP (no swap file in the leaf: no swap accounting, or
 * the memory controller not enabled there), -ERANGE (v1: the leaf has no memory
 * limit, so memory + swap cannot express a cap on swap alone), or -errno of the
 * write.
 */
int swap_cap_apply(Cgroup *cg, uint64_t bytes);

/* Reads back cg's swap cap, bytes (UINT64_MAX: none), as swap_cap_apply() writes it.
 * Returns 0 and *ret, -EINVAL, -EOPNOTSUPP, or -errno of the read. */
int swap_cap_read(Cgroup *cg, uint64_t *ret);
