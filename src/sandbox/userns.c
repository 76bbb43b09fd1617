/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The user namespace step (docs/design.md section 5 step 3): each app has its own
 * host uid/gid, mapped to SANDBOX_UID/SANDBOX_GID inside, the way Android gives each
 * app its own uid, and with a block (SandboxSpec.host_ids_base) the other ids
 * 0..SANDBOX_IDS-1 inside map to the rest of the app's own block of host ids, as
 * podman's --userns=auto maps a container: the app still has no capability in its
 * namespace, so chown and setuid to those ids fail with EPERM, as for any
 * unprivileged user (an unmapped id gives EINVAL, which programs and test suites do
 * not expect). An OCI jail may give its own maps instead (SandboxSpec.uid_map, gid_map;
 * docs/oci.md), written by the same parent; a map there that maps host root is the
 * caller's explicit choice (cella-oci's cella policy never makes one).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
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

/* Formats n lines of an explicit map into buf (size bytes). Returns 0 or -E2BIG. */
static int format_lines(const SandboxIdMap *m, size_t n, char *buf, size_t size)
{
        size_t used = 0;

        buf[0] = 0;
        for (size_t i = 0; i < n; i++) {
                int k = snprintf(buf + used, size - used, "%" PRIu32 " %" PRIu32 " %" PRIu32 "\n",
                                 m[i].inside, m[i].host, m[i].count);

                if (k < 0 || (size_t)k >= size - used)
                        return -E2BIG;
                used += (size_t)k;
        }
        return 0;
}

int userns_write_maps(pid_t pid, const SandboxSpec *spec)
{
        /* The kernel takes a map in one write of less than a page (map_write()). */
        char path[64], map[4096];
        int r;

        /* "deny" (setgroups(2) stays impossible inside, so a group cannot be dropped
         * to get around a negative group permission) unless the app is to have
         * supplementary groups, which it sets itself inside (creds_begin()). */
        snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
        r = write_string_at(AT_FDCWD, path, spec->n_app_groups > 0 ? "allow" : "deny");
        if (r < 0)
                return r;
        if (spec->n_gid_map > 0)
                r = format_lines(spec->gid_map, spec->n_gid_map, map, sizeof map);
        else
                r = userns_format_map(SANDBOX_GID, spec->host_gid, spec->host_ids_base, map,
                                      sizeof map);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
        r = write_string_at(AT_FDCWD, path, map);
        if (r < 0)
                return r;
        if (spec->n_uid_map > 0)
                r = format_lines(spec->uid_map, spec->n_uid_map, map, sizeof map);
        else
                r = userns_format_map(SANDBOX_UID, spec->host_uid, spec->host_ids_base, map,
                                      sizeof map);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
        return write_string_at(AT_FDCWD, path, map);
}

static bool ranges_overlap(uint32_t a, uint32_t an, uint32_t b, uint32_t bn)
{
        return (uint64_t)a < (uint64_t)b + bn && (uint64_t)b < (uint64_t)a + an;
}

static int check_map(const char *what, const SandboxIdMap *m, size_t n, SandboxError *err)
{
        if (!m || n > SANDBOX_IDMAP_MAX)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "%s has %zu lines (at most %u)", what, n, SANDBOX_IDMAP_MAX);
        for (size_t i = 0; i < n; i++) {
                if (m[i].count == 0 || (uint64_t)m[i].inside + m[i].count > UINT32_MAX ||
                    (uint64_t)m[i].host + m[i].count > UINT32_MAX)
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "%s line %zu (%" PRIu32 " %" PRIu32 " %" PRIu32
                                            "): empty, or past the last id 4294967294",
                                            what, i + 1, m[i].inside, m[i].host, m[i].count);
                for (size_t j = 0; j < i; j++)
                        if (ranges_overlap(m[i].inside, m[i].count, m[j].inside, m[j].count) ||
                            ranges_overlap(m[i].host, m[i].count, m[j].host, m[j].count))
                                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                                    "%s lines %zu and %zu overlap", what, j + 1,
                                                    i + 1);
        }
        return 0;
}

int userns_check_maps(const SandboxSpec *spec, SandboxError *err)
{
        int r;

        if (spec->n_uid_map == 0 && spec->n_gid_map == 0)
                return 0;
        if (spec->n_uid_map == 0 || spec->n_gid_map == 0)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "a uid map without a gid map, or the other way round");
        r = check_map("uid map", spec->uid_map, spec->n_uid_map, err);
        if (r < 0)
                return r;
        return check_map("gid map", spec->gid_map, spec->n_gid_map, err);
}

bool userns_maps_id(const SandboxSpec *spec, bool uid, uint32_t id)
{
        const SandboxIdMap *m = uid ? spec->uid_map : spec->gid_map;
        size_t n = uid ? spec->n_uid_map : spec->n_gid_map;

        if (n == 0)
                /* userns_format_map(): the app's own id, and with a block every id
                 * below SANDBOX_IDS. */
                return id == (uid ? SANDBOX_UID : SANDBOX_GID) ||
                       (spec->host_ids_base != 0 && id < SANDBOX_IDS);
        for (size_t i = 0; i < n; i++)
                if (id >= m[i].inside && (uint64_t)id < (uint64_t)m[i].inside + m[i].count)
                        return true;
        return false;
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
