/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What `cella exec` (src/daemon/exec-methods.c) needs of the kernel, without its
 * internals: the running sandbox of an app to enter (sandbox_enter(), sandbox.h),
 * and the audit records of the command (docs/security.md "cella exec").
 */

#include <jansson.h>

#include "sandbox/sandbox.h"
#include "supervisor/lifecycle.h"
#include "supervisor/supervisor.h"

/*
 * The sandbox of app id, if a command may enter it now: the app runs alone in it
 * (not packed), and is in a settled, thawed state (not installed, starting,
 * stopping, stopped, failed, frozen or cached: a command joining a frozen cgroup
 * would freeze at once). Returns 0 with *ret (borrowed: valid until the app's run
 * ends, on the kernel's loop) and *ret_state; -ENOENT (no such app in s),
 * -EOPNOTSUPP (a packed Lua app: its sandbox is its group's host's), -EAGAIN (not
 * in such a state: *ret_state says which).
 */
int supervisor_exec_target(Supervisor *s, const char *id, Sandbox **ret, InstanceState *ret_state);

/*
 * Adds to *envp (a strv) the variables of app id's proxy (docs/network.md "The
 * proxy"), as its own process got them, when the app has one now: a command
 * entering its namespace reaches the same hosts the same way. Returns 0 (also when
 * it has none) or -ENOMEM.
 */
int supervisor_exec_proxy_env(Supervisor *s, const char *id, char ***envp);

/* Appends a "lifecycle" audit record of app id with fields (stolen; NULL: none)
 * to the kernel's audit log (docs/audit.md): the exec's and its exit's. */
void supervisor_exec_audit(Supervisor *s, const char *id, json_t *fields);

/* Appends a "control" audit record (AUDIT_EVENT_CONTROL) of app id (NULL: of no
 * app) with fields (stolen; NULL: none) to the kernel's audit log: who asked
 * cellad's control API for a change, and what came of it (docs/security.md "The
 * control socket"). */
void supervisor_control_audit(Supervisor *s, const char *id, json_t *fields);
