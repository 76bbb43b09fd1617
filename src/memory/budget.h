/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The apps' memory budget (docs/memory.md "Signals and levels", docs/config.md
 * memory.total): one limit on the parent of every app's leaf, so that all the apps
 * of one cellad share it (a tenant's share of a bigger host) and memory pressure
 * builds inside it, not on the whole machine.
 */

#include <stdint.h>

#include "sandbox/cgroup.h"

/*
 * Applies total (bytes; 0: none) to the apps' parent under m (cgroup_manager_root()
 * of the memory hierarchy: "<B>/cella", made if missing): memory.max on cgroup v2,
 * memory.limit_in_bytes on v1 and hybrid hosts (use_hierarchy is always on since
 * Linux 5.11, "mm: memcg: deprecate the non-hierarchical mode", and on by default
 * on older systemd hosts: the children's charges count). 0 writes "max" / -1 where the parent
 * exists (a budget removed from the config is lifted), and makes nothing. A limit
 * below what the apps use now makes the kernel reclaim first; v1 refuses it with
 * EBUSY if it cannot. Returns 0, -ENOENT (no memory controller: the budget cannot
 * be applied), or -errno of the mkdir or the write. *ret_dir: the directory written
 * (belongs to m), if ret_dir is not NULL.
 */
int memory_budget_apply(CgroupManager *m, uint64_t total, const char **ret_dir);
