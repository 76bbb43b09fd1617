/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The apps' memory budget (budget.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "base/fileio.h"
#include "memory/budget.h"

int memory_budget_apply(CgroupManager *m, uint64_t total, const char **ret_dir)
{
        bool v2 = cgroup_manager_mode(m) == CGROUP_MODE_V2;
        const char *dir = NULL, *knob = v2 ? "memory.max" : "memory.limit_in_bytes";
        char path[4096], value[32];
        int r;

        if (!m)
                return -EINVAL;
        r = cgroup_manager_root(m, v2 ? "" : "memory", total > 0, &dir);
        if (r < 0)
                return r;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, knob) >= sizeof path)
                return -ENAMETOOLONG;
        if (total == 0) {
                if (access(dir, F_OK) < 0)
                        return 0;
                snprintf(value, sizeof value, "%s", v2 ? "max" : "-1");
        } else
                snprintf(value, sizeof value, "%" PRIu64, total);
        r = write_string_at(AT_FDCWD, path, value);
        if (r < 0)
                return r;
        if (ret_dir)
                *ret_dir = dir;
        return 0;
}
