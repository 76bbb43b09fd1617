/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Turns a manifest plus the app's state (uid, data dir) into a SandboxSpec: the
 * binds, argv, environment (rebuilt from nothing), limits and defaults. Shared by
 * `cella run` and (later) `cella boot`.
 */

#include "policy/manifest.h"
#include "sandbox/sandbox.h"

/* Defaults applied when the manifest sets no limit. */
#define LAUNCH_DEFAULT_PIDS  256                   /* stops a fork bomb even unasked */
#define LAUNCH_DEFAULT_TMP   (16ull * 1024 * 1024) /* bytes of /tmp */
#define LAUNCH_CPU_PERIOD_US 100000                /* the kernel's default CFS period */

/* PATH inside the sandbox (Debian's default for users, /usr/local excluded: it is not bound). */
#define LAUNCH_PATH "/usr/bin:/bin"

/* Everything a spec points at, owned in one place. */
typedef struct Launch {
        SandboxSpec spec;
        SandboxBind binds[2];
        char *exec_path;
        char **argv;
        char **envp;
} Launch;

/*
 * Fills l from the manifest m. app_dir: absolute host path of the app folder (bound
 * read-only at /app); data_dir: host path bound read-write at /data; uid: the app's
 * host uid (gid = uid), or 0 when a spec.prepare callback sets it during the spawn;
 * extra_args: appended to m->args (may be NULL). The caller
 * still sets spec.stdio, spec.channel_fd, spec.seccomp and spec.cgroups.
 * Returns 0, -ENOMEM, or -EOPNOTSUPP for a runtime this build cannot run.
 * Free with launch_done().
 */
int launch_prepare(Launch *l, const Manifest *m, const char *app_dir, const char *data_dir,
                   uid_t uid, char *const *extra_args);
void launch_done(Launch *l);
