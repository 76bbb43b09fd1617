/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The config's hooks (runtime-spec config.md "POSIX-platform Hooks"), run by cella-oci
 * in the runtime's namespaces or the container's (OciHookNs; docs/oci.md "Hooks"): each hook's path
 * executed with its args and env (nothing of cella-oci's environment), the container's state JSON
 * on its stdin, its stdout and stderr cella-oci's stderr, killed (SIGKILL) after its timeout.
 */

#include "oci/config.h"

/* "prestart", "createRuntime", ... as the config names them. */
const char *oci_hook_kind_name(OciHookKind kind);

/*
 * Where hooks run when not in the runtime's namespaces: the container's (runtime-spec
 * config.md, "CreateContainer Hooks", "StartContainer Hooks": "executed in the
 * container namespace"), entered by setns(2) on the pidfd of its init: its mount,
 * uts, ipc, network, cgroup and pid namespaces, not its user namespace (the hook is
 * the engine's: host root with all of cella-oci's capabilities and no seccomp filter,
 * not the app). resolve_in_runtime (createContainer: "path MUST resolve in the
 * runtime namespace"): the hook's path is opened before the join and its root is
 * the runtime's after it, the files it would see before the pivot_root; false
 * (startContainer: "path MUST resolve in the container namespace"): the container's
 * root.
 */
typedef struct OciHookNs {
        int pidfd; /* of the container's init */
        bool resolve_in_runtime;
} OciHookNs;

/*
 * Runs the hooks of kind in c, in order, each given state_json on stdin; in the
 * runtime's namespaces, or with ns in the container's (OciHookNs). stop_on_error:
 * stop at the first that fails (its exit status not 0, killed, over its timeout), as the
 * spec asks of prestart, createRuntime, createContainer and startContainer; else run all
 * and log each failure as a warning (poststart, poststop). Returns 0, or -EIO with err
 * naming the hook and what happened, or -errno of fork, pipe or the write.
 */
int oci_hooks_run(const OciConfig *c, OciHookKind kind, const OciHookNs *ns, const char *state_json,
                  bool stop_on_error, char *err, size_t errlen);
