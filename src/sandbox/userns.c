/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The user namespace step (docs/design.md section 5 step 3): each app has its own
 * host uid/gid, mapped to SANDBOX_UID/SANDBOX_GID inside, the way Android gives each
 * app its own uid, and with a block (SandboxSpec.host_ids_base) the other ids
 * 0..SANDBOX_IDS-1 inside map to the rest of the app's own block of host ids, as
 * podman's --userns=auto maps a container: the app still has no capability in its
 * namespace, so chown and setuid to those ids fail with EPERM, as for any
 * unprivileged user (an unmapped id gives EINVAL, which programs and test suites do
 * not expect).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "sandbox/sandbox-internal.h"

int userns_format_map(unsigned inside, uint32_t host_id, uint32_t ids_base, char *buf, size_t size)
{
        uint64_t end = (uint64_t)ids_base + SANDBOX_IDS;
        int n;

        if (host_id == 0 || host_id == UINT32_MAX || inside >= SANDBOX_IDS)
                return -EINVAL;
        if (ids_base == 0)
                n = snprintf(buf, size, "%u %u 1\n", inside, host_id);
        else if (end > UINT32_MAX) /* (uid_t)-1 is never an id */
                return -EINVAL;
        else if (host_id == ids_base + inside)
                n = snprintf(buf, size, "0 %u %u\n", ids_base, SANDBOX_IDS);
        else if (host_id >= ids_base && host_id < end)
                return -EINVAL; /* would map one host id twice: the kernel refuses it */
        else
                /* The id's own place in the block stays unused. */
                n = snprintf(buf, size, "0 %u %u\n%u %u 1\n%u %u %u\n", ids_base, inside, inside,
                             host_id, inside + 1, ids_base + inside + 1, SANDBOX_IDS - inside - 1);
        if (n < 0 || (size_t)n >= size)
                return -ENOBUFS;
        return 0;
}

/*
 * Writes pid's setgroups ("deny": setgroups(2) stays impossible inside, so a
 * group cannot be dropped to get around a negative group permission), gid_map and
 * uid_map (userns_format_map). Runs in the parent, which must be privileged over the
 * ids (root). Returns 0, -EINVAL for ids that cannot be mapped, or -errno of the write.
 */
int userns_write_maps(pid_t pid, uid_t host_uid, gid_t host_gid, uid_t ids_base)
{
        char path[64], map[160];
        int r;

        snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
        r = write_string_at(AT_FDCWD, path, "deny");
        if (r < 0)
                return r;
        r = userns_format_map(SANDBOX_GID, host_gid, ids_base, map, sizeof map);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
        r = write_string_at(AT_FDCWD, path, map);
        if (r < 0)
                return r;
        r = userns_format_map(SANDBOX_UID, host_uid, ids_base, map, sizeof map);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
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

        if (sandbox_setresgid(gid, gid, gid) < 0)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, negative_errno(), "setresgid(%u)",
                                    (unsigned)gid);
        if (sandbox_setresuid(uid, uid, uid) < 0)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, negative_errno(), "setresuid(%u)",
                                    (unsigned)uid);
        /* Check, don't trust: every id must now be the app's. */
        if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != uid ||
            eu != uid || su != uid || rg != gid || eg != gid || sg != gid)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, -EPERM, "ids did not change");
        return 0;
}
