/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The config's hooks (runtime-spec config.md "POSIX-platform Hooks"), run by cella-oci
 * in the runtime's namespaces (docs/oci.md "Hooks"): each hook's path executed with its
 * args and env (nothing of cella-oci's environment), the container's state JSON on its
 * stdin, its stdout and stderr cella-oci's stderr, killed (SIGKILL) after its timeout.
 */

#include "oci/config.h"

/* "prestart", "createRuntime", ... as the config names them. */
const char *oci_hook_kind_name(OciHookKind kind);

/*
 * Runs the hooks of kind in c, in order, each given state_json on stdin. stop_on_error:
 * stop at the first that fails (its exit status not 0, killed, over its timeout), as the
 * spec asks of prestart, createRuntime, createContainer and startContainer; else run all
 * and log each failure as a warning (poststart, poststop). Returns 0, or -EIO with err
 * naming the hook and what happened, or -errno of fork, pipe or the write.
 */
int oci_hooks_run(const OciConfig *c, OciHookKind kind, const char *state_json, bool stop_on_error,
                  char *err, size_t errlen);
