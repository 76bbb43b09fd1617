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

/* Where a "lua" app's runtime appears inside the jail (bound read-only from the
 * build's or the installed cella-lua, launch_lua_host_path()). */
#define LAUNCH_LUA_PATH "/cella/cella-lua"

/* Everything a spec points at, owned in one place. */
typedef struct Launch {
        SandboxSpec spec;
        SandboxBind binds[4]; /* /app, /data, the Lua host, /etc/hosts */
        char *exec_path;
        char **argv;
        char **envp;
        char *entry_scripts[2]; /* a Lua app's entry (borrowed from argv), NULL */
} Launch;

/*
 * Appends to *envp the environment every sandbox starts from, an app's or a packed
 * group's host (rebuilt from nothing: none of cella's own reaches it): PATH
 * (LAUNCH_PATH), HOME=/data, TMPDIR=/tmp, LANG=C.UTF-8. Returns 0 or -ENOMEM.
 */
int launch_base_env(char ***envp);

/*
 * Fills l from the manifest m. app_dir: absolute host path of the app folder (bound
 * read-only at /app); data_dir: host path bound read-write at /data; uid: the app's
 * host uid (gid = uid), or 0 when a spec.prepare callback sets it during the spawn;
 * extra_args: appended to m->args (may be NULL). A "lua" app runs
 * LAUNCH_LUA_PATH /app/<entry> ARGS with its limits in CELLA_LUA_MEMORY (bytes)
 * (docs/lua-api.md "Runtime"). The caller
 * still sets spec.stdio, spec.channel_fd, spec.seccomp and spec.cgroups.
 * Returns 0, -ENOMEM, or -EOPNOTSUPP for a runtime this build cannot run.
 * Free with launch_done().
 */
int launch_prepare(Launch *l, const Manifest *m, const char *app_dir, const char *data_dir,
                   uid_t uid, char *const *extra_args);
/* Binds path (a host file, read-only) at the jail's /etc/hosts instead of the one the
 * sandbox writes (an app network member's: netgroups.c). path is borrowed until the
 * spawn. */
void launch_set_hosts_file(Launch *l, const char *path);

void launch_done(Launch *l);

/*
 * Makes /data the detached mount fd (storage_prepare(): the app's own file system,
 * whose size is limits.storage) instead of the data_dir bind, and drops the
 * RLIMIT_FSIZE that bounded each file of a plain directory: a write past the total
 * fails with ENOSPC, where RLIMIT_FSIZE would kill with SIGXFSZ a program that does
 * not expect it (sqlite3, python3). fd stays the caller's; it must be open until the
 * spawn returns.
 */
void launch_set_data_mount(Launch *l, int fd);

/*
 * Makes /app the detached mount fd (a clone, open_tree(OPEN_TREE_CLONE), of the app
 * folder that was claimed and verified: supervisor.c instance_claim) instead of a
 * bind of app_dir's path, so a rename on the path between the check and the spawn
 * cannot swap the folder the app runs. It stays read-only (and nosuid, nodev). fd
 * stays the caller's; it must be open until the spawn returns.
 */
void launch_set_app_mount(Launch *l, int fd);

/*
 * The host path of cella-lua: this build's binary (CELLA_LUA_BUILD_PATH) when it
 * exists, else the installed one (CELLA_LUA_INSTALL_PATH, under libexecdir/cella).
 */
const char *launch_lua_host_path(void);

/*
 * The host path of cella-init, the executable a sandbox's pid 1 becomes once its
 * app runs (SandboxSpec.init_path): this build's (CELLA_INIT_BUILD_PATH) when it
 * exists, else the installed one (CELLA_INIT_INSTALL_PATH, under libexecdir/cella).
 * Looked up once per process.
 */
const char *launch_init_path(void);

/*
 * The Lua memory cap, in bytes, for a cgroup memory limit of memory bytes (0 =
 * none): 0 (cella-lua's own default, 64 MiB) without a limit; else the limit less
 * 8 MiB for the process itself (binary, liblua, stacks) when the limit is at least
 * 16 MiB, else half of it; so the Lua limit, with its clear message, is met before
 * the kernel's OOM killer.
 */
uint64_t launch_lua_memory_cap(uint64_t memory);
