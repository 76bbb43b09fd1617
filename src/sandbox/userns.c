/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The user namespace step (docs/design.md section 5 step 3): one host uid/gid per app,
 * mapped to SANDBOX_UID/SANDBOX_GID inside and nothing else mapped, the way
 * Android gives each app its own uid.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "sandbox/sandbox-internal.h"

/*
 * Writes pid's setgroups ("deny": setgroups(2) stays impossible inside, so a
 * group cannot be dropped to get around a negative group permission), gid_map and
 * uid_map, each mapping one host id to SANDBOX_GID/SANDBOX_UID. Runs in the parent,
 * which must be privileged over the ids (root). Returns 0 or -errno of the write.
 */
int userns_write_maps(pid_t pid, uid_t host_uid, gid_t host_gid)
{
        char path[64], map[64];
        int r;

        snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
        r = write_string_at(AT_FDCWD, path, "deny");
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
        snprintf(map, sizeof map, "%d %u 1\n", SANDBOX_GID, (unsigned)host_gid);
        r = write_string_at(AT_FDCWD, path, map);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
        snprintf(map, sizeof map, "%d %u 1\n", SANDBOX_UID, (unsigned)host_uid);
        return write_string_at(AT_FDCWD, path, map);
}

/*
 * Switches real, effective and saved ids to uid/gid (ids inside the namespace).
 * Supplementary groups were cleared before the namespace was entered. Returns 0 or
 * -errno, with err filled.
 */
int userns_become(uid_t uid, gid_t gid, SandboxError *err)
{
        uid_t ru, eu, su;
        gid_t rg, eg, sg;

        if (setresgid(gid, gid, gid) < 0)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, negative_errno(), "setresgid(%u)",
                                    (unsigned)gid);
        if (setresuid(uid, uid, uid) < 0)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, negative_errno(), "setresuid(%u)",
                                    (unsigned)uid);
        /* Check, don't trust: every id must now be the app's. */
        if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != uid ||
            eu != uid || su != uid || rg != gid || eg != gid || sg != gid)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, -EPERM, "ids did not change");
        return 0;
}
