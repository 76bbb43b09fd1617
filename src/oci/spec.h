/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * From an OciConfig to a SandboxSpec (src/sandbox/sandbox.h), under a policy chosen
 * by the annotation io.cella.policy (docs/oci.md, "Policy"):
 *
 *   cella   (the default) cella's own walls whatever the config asks: cella's
 *           seccomp allowlist (not the config's filter), a new user namespace with
 *           one mapped id (the config's process uid and gid inside, one host id
 *           outside, never host root), no capability, no_new_privs, every
 *           namespace new except a network namespace the config names by path
 *           (an engine's network) — a config that asks to share any other with
 *           the host is refused, never quietly given it. What breaks: chown to
 *           other ids, set-uid programs, anything needing a capability, raw sockets.
 *   compat  the config as written, as runc would run it: its namespaces (shared
 *           ones shared), its id mappings (or host ids when it has no user
 *           namespace), its capabilities, its seccomp filter (or none), its
 *           no_new_privileges.
 *
 * Either way: the config's mounts, masked and read-only paths, devices, rlimits,
 * sysctls, hostname, cwd, env, args and resources.
 */

#include <stdbool.h>

#include "oci/config.h"
#include "sandbox/sandbox.h"

#define OCI_POLICY_ANNOTATION "io.cella.policy"

typedef enum OciPolicy {
        OCI_POLICY_CELLA = 0,
        OCI_POLICY_COMPAT,
} OciPolicy;

/*
 * The policy the config's io.cella.policy annotation names ("cella", "compat"; absent:
 * OCI_POLICY_CELLA). Returns 0 and *ret, or -EINVAL with err naming the value.
 */
int oci_policy_from_config(const OciConfig *c, OciPolicy *ret, char *err, size_t errlen);

/* "cella" or "compat". */
const char *oci_policy_to_string(OciPolicy p);

/* What a build holds: the SandboxSpec and every array and string it points to. */
typedef struct OciSpecBuild {
        SandboxSpec spec;
        OciPolicy policy;
        /* Owned storage the spec points into (freed by oci_spec_build_done). */
        SandboxRootfs rootfs;
        SandboxMount *mounts;
        SandboxDevice *devices;
        SandboxNamespace *namespaces; /* fds open on the joined ones (closed by _done) */
        SandboxIdMap *uid_map, *gid_map;
        SandboxCaps caps;
        SandboxRlimit *rlimits;
        gid_t *groups;
        char **sysctls;
        char *rootfs_path; /* absolute, resolved against the bundle */
        /* process.args[0] as an absolute path in the jail (the sandbox library execs
         * only those): as given when absolute; joined to process.cwd when it has a
         * "/"; else looked up in the env's PATH (the spec's execvp semantics) inside
         * the root file system as it is before the mounts, or assumed in the first PATH
         * dir a config mount covers (docs/oci.md). */
        char *exec_path;
        char **argv, **envp; /* copies of process.args and env (envp: at least empty) */
        char **masked_paths, **readonly_paths;
        char **strings; /* copies of every other string the spec points to */
        SeccompProgram *seccomp;
        /* linux.resources beyond CgroupLimits (spec.limits.resources points here when
         * the config sets any) and the arrays it points into. */
        CgroupResources resources;
        CgroupDeviceRule *device_rules;
        CgroupHugetlbLimit *hugetlb;
        CgroupIfPriority *ifpriority;
        char **unified_keys, **unified_values;
        /* What the policy changed or refused to honour, one line each, for the log and
         * the audit record ("process.capabilities: CAP_SYS_ADMIN dropped (policy
         * cella)"); NULL-terminated. */
        char **notes;
} OciSpecBuild;

/*
 * Fills *b (zeroed first) from c for the bundle (its absolute path: root.path is
 * relative to it) under c's policy: everything of the spec but the caller's own
 * parts (stdio, pty_socket, start_fifo_fd, cgroups, init_path, host_uid/host_gid
 * in policy cella: the caller picks the host id, state.h), with detached and
 * survive_parent set. Opens the namespace files the config names to join. Returns 0,
 * or -EINVAL with err naming the JSON path and why it cannot be honoured under the
 * policy ("linux.namespaces: no user namespace: policy cella needs one ..."), -ENOENT
 * (a namespace path or the root missing), -ENOMEM. *b is freed on failure.
 */
int oci_spec_build(const OciConfig *c, const char *bundle, OciSpecBuild *b, char *err,
                   size_t errlen);

/*
 * Gives a build its host ids, once the caller has picked them (cella-oci's host id
 * for the container, state.h): sets spec.host_uid and host_gid and, under policy
 * cella, the user namespace's one-line maps, process.user.uid -> uid and
 * process.user.gid -> gid (oci_spec_build() leaves them out, so that a caller that
 * forgets this call gets a spawn refused for an unmapped id, never a map to host
 * root). Under policy compat only host_uid and host_gid are set: the config's maps,
 * or host ids, stand. Returns 0, -EINVAL (uid or gid 0 or (uid_t)-1 under policy
 * cella: never host root), -ENOMEM.
 */
int oci_spec_build_set_host_ids(OciSpecBuild *b, uid_t uid, gid_t gid);

/* Frees what *b holds and zeroes it; takes a zeroed one. */
void oci_spec_build_done(OciSpecBuild *b);

/*
 * Builds the seccomp program for the config's linux.seccomp (libseccomp: the actions,
 * errno values, argument conditions and architectures as given), for policy compat.
 * NULL seccomp: a program that allows everything (the sandbox library needs one).
 * Returns 0 and *ret, or -EINVAL with err naming the rule ("linux.seccomp.syscalls[4]:
 * unknown syscall foo" is not an error: unknown names are skipped as runc does;
 * an unknown architecture is), -ENOMEM.
 */
int oci_seccomp_build(const OciSeccomp *seccomp, SeccompProgram **ret, char *err, size_t errlen);
