/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A container's cgroup (docs/oci.md, "Cgroups"): config.json's linux.cgroupsPath as
 * the exact path of the container's cgroup, through cella's cgroup manager
 * (cgroup_manager_set_path(), src/sandbox/cgroup.h) on v2, v1 and hybrid hosts; with
 * --systemd-cgroup the path is runc's "slice:prefix:name" and the cgroup a transient
 * scope unit of systemd's (StartTransientUnit, Delegate=yes).
 */

#include <stdbool.h>
#include <sys/types.h>

#include "sandbox/cgroup.h"

typedef struct OciSystemdScope OciSystemdScope;

/*
 * The cgroup path for a container: path (linux.cgroupsPath) or, when NULL or "",
 * "/cella-oci/<id>"; with systemd, path is "slice:prefix:name" ("" or NULL:
 * "system.slice:cella-oci:<id>"), the unit "<prefix>-<name>.scope" and the path
 * "/<slice's nesting>/<unit>" (systemd.slice(5): "a-b.slice" is under "a.slice").
 * Returns 0 and *ret (malloc'd) and, with systemd, *ret_unit, or -EINVAL with err.
 */
int oci_cgroup_path(const char *path, const char *id, bool systemd, char **ret, char **ret_unit,
                    char *err, size_t errlen);

/*
 * For create: a cgroup manager (detecting the host's layout) whose leaves are the
 * container's path (above; a relative one is refused: -EINVAL; one that exists and
 * holds processes too: -EBUSY), into *ret_manager; with systemd, also a scope to
 * oci_systemd_scope_attach() once the init runs, into *ret_scope (systemd must be
 * running: /run/systemd/system, sd_booted(3); else -EOPNOTSUPP with err saying so).
 * The manager uses every controller the host has, as runc joins them all: cella's own
 * and cpuset, devices, blkio (io), net_cls, net_prio, hugetlb
 * (cgroup_manager_add_controllers()). res (NULL: none): the config's knobs beyond
 * CgroupLimits, checked against the host (cgroup_resources_check(): -EOPNOTSUPP or
 * -EINVAL with err naming the knob the host lacks).
 * Returns 0 or -errno with err.
 */
int oci_cgroup_prepare(const char *path, const char *id, bool systemd, const CgroupResources *res,
                       CgroupManager **ret_manager, OciSystemdScope **ret_scope, char *err,
                       size_t errlen);

/*
 * A handle on a container's existing cgroup by the path recorded in its state
 * (cgroup_name()), in every hierarchy create made it in (every controller the host
 * has; a container made before cella-oci used cpuset, devices, blkio, net_cls,
 * net_prio and hugetlb is opened in cella's own hierarchies only). Returns 0,
 * *ret_manager and *ret, or -ENOENT (gone), -errno.
 */
int oci_cgroup_open(const char *path, CgroupManager **ret_manager, Cgroup **ret);

/*
 * StartTransientUnit of the scope with pid (the container's init) as its process,
 * Delegate=yes, in its slice; waits for the job. Returns 0 or -errno with err (what
 * systemd said).
 */
int oci_systemd_scope_attach(OciSystemdScope *s, pid_t pid, char *err, size_t errlen);

/* The scope's unit name ("cella-oci-ID.scope"). */
const char *oci_systemd_scope_unit(const OciSystemdScope *s);

/* StopUnit of the scope (create's failure). */
void oci_systemd_scope_stop(OciSystemdScope *s);

/* StopUnit of a unit by name (delete), best effort; returns 0 or -errno. */
int oci_systemd_unit_stop(const char *unit);

/* Frees s (the unit stays). Takes NULL; returns NULL. */
OciSystemdScope *oci_systemd_scope_free(OciSystemdScope *s);
