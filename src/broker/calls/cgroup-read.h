/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Reading an app's cgroup files, for memory.stats (calls/system.c, which defines
 * these) and proc.list (calls/proc.c). Best effort: a file a host does not have
 * reads as -ENOENT and the caller reports 0.
 */

#include <stdint.h>

#include "broker/broker.h"

/* An app's memory, in bytes (limit 0: none), and its PSI in hundredths of a percent. */
typedef struct CgroupMemory {
        uint64_t current, limit, peak, swap, anon, file;
        uint32_t some_avg10, full_avg10;
} CgroupMemory;

/* Reads dir/file holding one number ("max" reads as UINT64_MAX). dir NULL: -ENOENT.
 * Returns 0 and *ret, or -errno of the read, -EINVAL if it holds no number. */
int cgroup_read_u64(const char *dir, const char *file, uint64_t *ret);

/* Reads the value of "key N" lines (memory.stat, cpu.stat) in dir/file. Returns 0
 * and *ret, -ENOENT (no such key or dir NULL), or -errno of the read. */
int cgroup_read_key(const char *dir, const char *file, const char *key, uint64_t *ret);

/*
 * The app's memory: the v1 memory cgroup's usage_in_bytes, limit_in_bytes,
 * max_usage_in_bytes and memory.stat (total_rss, total_cache, total_swap), or, without
 * one, the v2 cgroup's memory.current, max, peak, swap.current and memory.stat (anon,
 * file); PSI from the v2 cgroup's memory.pressure in either case. Returns 0 and *ret,
 * or -ENOENT when the app has no memory cgroup to read.
 */
int cgroup_memory(const BrokerAppInfo *info, CgroupMemory *ret);
