/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * An app's memory from its cgroup files, for memory.stats (calls/system.c, which
 * defines it) and proc.list (calls/proc.c). The files are read with the sandbox's
 * cgroup readers (sandbox/cgroup.h), by the directories in BrokerAppInfo. Best
 * effort: a file a host does not have reads as 0.
 */

#include <stdint.h>

#include "broker/broker.h"
#include "sandbox/cgroup.h"

/* An app's memory, in bytes (limit 0: none), and its PSI in hundredths of a percent. */
typedef struct CgroupMemory {
        uint64_t current, limit, peak, swap, anon, file;
        uint32_t some_avg10, full_avg10;
} CgroupMemory;

/*
 * The app's memory: the v1 memory cgroup's usage_in_bytes, limit_in_bytes,
 * max_usage_in_bytes and memory.stat (total_rss, total_cache, total_swap), or, without
 * one, the v2 cgroup's memory.current, max, peak, swap.current and memory.stat (anon,
 * file); PSI from the v2 cgroup's memory.pressure in either case. Returns 0 and *ret,
 * or -ENOENT when the app has no memory cgroup to read.
 */
int cgroup_memory(const BrokerAppInfo *info, CgroupMemory *ret);
