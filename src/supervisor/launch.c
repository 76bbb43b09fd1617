/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/strv.h"
#include "supervisor/launch.h"

const char *launch_lua_host_path(void)
{
        if (access(CELLA_LUA_BUILD_PATH, X_OK) == 0)
                return CELLA_LUA_BUILD_PATH;
        return CELLA_LUA_INSTALL_PATH;
}

const char *launch_init_path(void)
{
        static const char *path;

        if (!path)
                path = access(CELLA_INIT_BUILD_PATH, X_OK) == 0 ? CELLA_INIT_BUILD_PATH
                                                                : CELLA_INIT_INSTALL_PATH;
        return path;
}

uint64_t launch_lua_memory_cap(uint64_t memory)
{
        const uint64_t overhead = 8ull * 1024 * 1024;

        if (memory == 0)
                return 0;
        return memory >= 2 * overhead ? memory - overhead : memory / 2;
}

int launch_base_env(char ***envp)
{
        if (strv_extend(envp, "PATH=" LAUNCH_PATH) < 0 || strv_extend(envp, "HOME=/data") < 0 ||
            strv_extend(envp, "TMPDIR=/tmp") < 0 || strv_extend(envp, "LANG=C.UTF-8") < 0)
                return -ENOMEM;
        return 0;
}

static int build_env(Launch *l, const Manifest *m)
{
        /* Rebuilt from nothing (docs/design.md section 5 step 6): nothing of cella's
         * own environment reaches the app. */
        if (launch_base_env(&l->envp) < 0 || strv_extend(&l->envp, "USER=app") < 0 ||
            strv_extend(&l->envp, "LOGNAME=app") < 0 || strv_extend(&l->envp, "CELLA_FD=3") < 0 ||
            strv_extendf(&l->envp, "CELLA_APP_ID=%s", m->id) < 0)
                return -ENOMEM;
        if (m->runtime == MANIFEST_RUNTIME_LUA && m->limits.memory &&
            strv_extendf(&l->envp, "CELLA_LUA_MEMORY=%llu",
                         (unsigned long long)launch_lua_memory_cap(m->limits.memory)) < 0)
                return -ENOMEM;
        /* The tests' knob: CELLA_TEST_LUA_CPU_MS in cella's own environment (never the
         * app's: the parser refuses CELLA_* in a manifest) shortens a Lua app's CPU
         * budget per callback, so a test of the budget need not burn the default 5000 ms
         * (CLUA_DEFAULT_CALLBACK_NS); it can never lengthen it. */
        if (m->runtime == MANIFEST_RUNTIME_LUA) {
                const char *knob = getenv("CELLA_TEST_LUA_CPU_MS");
                char *end = NULL;
                unsigned long ms = knob ? strtoul(knob, &end, 10) : 0;

                if (knob && *knob >= '1' && *knob <= '9' && end && !*end && ms < 5000 &&
                    strv_extendf(&l->envp, "CELLA_LUA_CPU_MS=%lu", ms) < 0)
                        return -ENOMEM;
        }
        /* The manifest's own variables may override PATH, LANG and the like
         * (CELLA_* and loader variables are refused by the parser). */
        STRV_FOREACH (e, m->env) {
                size_t klen = strcspn(*e, "=") + 1;
                bool replaced = false;

                STRV_FOREACH (o, l->envp)
                        if (strncmp(*o, *e, klen) == 0) {
                                char *c = strdup(*e);

                                if (!c)
                                        return -ENOMEM;
                                free(*o);
                                *o = c;
                                replaced = true;
                                break;
                        }
                if (!replaced && strv_extend(&l->envp, *e) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int launch_prepare(Launch *l, const Manifest *m, const char *app_dir, const char *data_dir,
                   uid_t uid, char *const *extra_args)
{
        SandboxSpec *s = &l->spec;
        int r;

        *l = (Launch){};
        if (m->runtime != MANIFEST_RUNTIME_NATIVE && m->runtime != MANIFEST_RUNTIME_LUA)
                return -EOPNOTSUPP;
        if (m->runtime == MANIFEST_RUNTIME_LUA) {
                /* cella-lua /app/<entry> ARGS: the interpreter is the executable. */
                l->exec_path = strdup(LAUNCH_LUA_PATH);
                if (!l->exec_path || strv_extend(&l->argv, LAUNCH_LUA_PATH) < 0 ||
                    strv_extendf(&l->argv, "/app/%s", m->entry) < 0)
                        goto oom;
        } else {
                if (asprintf(&l->exec_path, "/app/%s", m->entry) < 0) {
                        l->exec_path = NULL;
                        return -ENOMEM;
                }
                if (strv_extend(&l->argv, l->exec_path) < 0)
                        goto oom;
        }
        STRV_FOREACH (a, m->args)
                if (strv_extend(&l->argv, *a) < 0)
                        goto oom;
        for (size_t i = 0; extra_args && extra_args[i]; i++)
                if (strv_extend(&l->argv, extra_args[i]) < 0)
                        goto oom;
        r = build_env(l, m);
        if (r < 0)
                goto oom;

        /* /app holds the code: read-only, executable. /data holds what the app
         * wrote: writable, never executable (Android's W^X for app data, API 29). */
        l->binds[0] = (SandboxBind){.source = app_dir, .target = "/app"};
        l->binds[1] = (SandboxBind){.source = data_dir,
                                    .target = "/data",
                                    .flags = SANDBOX_BIND_RW | SANDBOX_BIND_NOEXEC};

        s->hostname = m->id;
        s->host_uid = uid;
        s->host_gid = (gid_t)uid;
        s->n_binds = 2;
        if (m->runtime == MANIFEST_RUNTIME_LUA)
                l->binds[s->n_binds++] =
                        (SandboxBind){.source = launch_lua_host_path(), .target = LAUNCH_LUA_PATH};
        s->binds = l->binds;
        s->tmp_size = m->limits.tmp ?: LAUNCH_DEFAULT_TMP;
        s->workdir = "/app";
        s->exec_path = l->exec_path;
        /* A Lua app's entry is read, not executed: checked in the jail before
         * cella-lua starts, so a missing one fails as a native entry does (127). */
        if (m->runtime == MANIFEST_RUNTIME_LUA) {
                l->entry_scripts[0] = l->argv[1];
                s->entry_scripts = l->entry_scripts;
        }
        s->argv = l->argv;
        s->envp = l->envp;
        s->cgroup_label = m->id;
        s->limits.memory_max = m->limits.memory;
        s->limits.pids_max = m->limits.pids ?: LAUNCH_DEFAULT_PIDS;
        if (m->limits.cpu_milli) {
                s->limits.cpu_period_us = LAUNCH_CPU_PERIOD_US;
                s->limits.cpu_quota_us = m->limits.cpu_milli * LAUNCH_CPU_PERIOD_US / 1000;
        }
        s->rlimit_nofile = m->limits.files;
        /* Only for a /data that is a plain directory (no loop devices on this
         * host): launch_set_data_mount() lifts it for a /data of its own size. */
        s->rlimit_fsize = m->limits.storage;
        s->stdio[0] = s->stdio[1] = s->stdio[2] = -1;
        s->channel_fd = -1;
        s->init_path = launch_init_path();
        return 0;
oom:
        launch_done(l);
        return -ENOMEM;
}

void launch_set_data_mount(Launch *l, int fd)
{
        l->binds[1].flags |= SANDBOX_BIND_FD;
        l->binds[1].fd = fd;
        l->spec.rlimit_fsize = 0;
}

void launch_set_app_mount(Launch *l, int fd)
{
        l->binds[0].flags |= SANDBOX_BIND_FD;
        l->binds[0].fd = fd;
}

void launch_set_hosts_file(Launch *l, const char *path)
{
        l->binds[l->spec.n_binds++] = (SandboxBind){.source = path, .target = "/etc/hosts"};
}

void launch_done(Launch *l)
{
        free(l->exec_path);
        strv_free(l->argv);
        strv_free(l->envp);
        *l = (Launch){};
}
