/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's cgroup layout (daemon.h, docs/daemon.md "Cgroups"). */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/macro.h"
#include "daemon/daemon.h"

int daemon_cgroup_setup(const char *fs_root, CgroupMode mode, const char *state_dir,
                        CgroupManager **ret)
{
        char base[sizeof DAEMON_CGROUP_BASE + 2 * 16 + 4];
        CgroupManager *m = NULL;
        struct stat st;
        int r;

        /* Per state directory: the tag of its apps' leaves (src/supervisor/adopt.c). */
        if (stat(state_dir, &st) < 0)
                return log_error_errno(negative_errno(), "%s: %m", state_dir);
        snprintf(base, sizeof base, "%s-d%llxi%llx", DAEMON_CGROUP_BASE,
                 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
        r = cgroup_manager_new(fs_root, mode, NULL, &m);
        if (r < 0)
                return log_error_errno(r, "no usable cgroup hierarchy under %s: %m", fs_root);
        r = cgroup_manager_enter(m, DAEMON_CGROUP_LEAF, base);
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
