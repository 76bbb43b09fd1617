/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's cgroup layout (daemon.h, docs/daemon.md "Cgroups"). */
#include <errno.h>

#include "base/log.h"
#include "base/macro.h"
#include "daemon/daemon.h"

int daemon_cgroup_setup(const char *fs_root, CgroupMode mode, CgroupManager **ret)
{
        CgroupManager *m = NULL;
        int r;

        r = cgroup_manager_new(fs_root, mode, NULL, &m);
        if (r < 0)
                return log_error_errno(r, "no usable cgroup hierarchy under %s: %m", fs_root);
        r = cgroup_manager_enter(m, DAEMON_CGROUP_LEAF, DAEMON_CGROUP_BASE);
        if (r < 0) {
                log_error_errno(r,
                                "cannot move cellad into a cgroup leaf '%s' of its own under %s "
                                "(%s): %m; under systemd the unit needs Delegate=yes",
                                DAEMON_CGROUP_LEAF, fs_root, cgroup_manager_ops(m)->name);
                cgroup_manager_free(m);
                return r;
        }
        *ret = m;
        return 0;
}
