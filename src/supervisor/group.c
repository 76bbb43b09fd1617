/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Packed groups (docs/manifest.md "isolation", docs/lua-api.md "Packed mode"): the
 * Lua apps of one "group" run in one cella-lua host, in one sandbox. Each member
 * keeps what makes it an app to the kernel: its own broker channel (attached under
 * its own id, so rights, rate limits and audit records stay per app), its own log
 * and its own state in `cella ps`. The group owns the host: its sandbox, cgroup,
 * restart policy, and the stats file the host keeps its scheduler counters in.
 *
 * Jail of a group: each app folder read-only at /apps/<id>, each app's data
 * directory (the one it would get as /data alone) read-write at /data/<id>,
 * cella-lua at /cella/cella-lua. The host runs as the uid of the group's first app
 * (in boot order), which owns the members' data directories while they are packed.
 *
 * The host learns everything from its spec (luahost_spec_build()), a sealed memfd
 * passed as an extra fd with the channels, logs and stats file: cella-lua
 * --spec-fd N. An app that ends while the host lives (its channel hangs up, or its
 * stats record says it ended) is recorded as that app's exit, with the reason from
 * its stats record's fault; the host's own exit ends every member still running.
 *
 * Slots and joins (docs/design.md section 10, "A Lua app joining its group's
 * running host"): each member registered when the host starts gets a slot (its
 * folder and /data in the jail, its share of the limits, its stats record, index
 * group_index); the spec lists the members that start (group_wanted: every one
 * under cella boot; under cellad the one asked for and those still wanted). While
 * the host runs, group_join() hands it a member with a JOIN on the host control
 * channel (src/lua/hostctl.h) and group_stop_member() ends one with a STOP. Each
 * run of a slot has a number (Instance.group_run: 0 with the host, then each
 * JOIN's), written into the slot's stats record by the host, so a record of a
 * slot's earlier run is never read as the current one's.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/termsafe.h"
#include "base/time-util.h"
#include "supervisor/adopt.h"
#include "supervisor/error.h"
#include "supervisor/memory-actions.h"
#include "supervisor/run.h"
#include "supervisor/storage.h"
#include "supervisor/supervisor-internal.h"

/* How often a running host's members are looked at for an end (ms): an app's exit
 * shows in `cella ps` and the audit log at most this late. */
#define GROUP_WATCH_MS 200
/* Fds a host gets beyond its spec's, for its own use: the apps' data directories
 * (one O_PATH each, counted apart), databases, pipes. */
#define GROUP_NOFILE_SPARE 1024
/* Fds cella holds per app while a host starts: its log (file and directory,
 * applog.c), both ends of its channel and of its log pipe, the mount of its /data
 * (storage.c); and for everything else it has open. */
#define GROUP_FDS_PER_APP 7u
#define GROUP_FDS_SPARE   256u

static const SandboxedRunOps group_run_ops;

static Group *group_find(Supervisor *s, const char *name)
{
        for (size_t i = 0; i < s->n_groups; i++)
                if (strcmp(s->groups[i]->name, name) == 0)
                        return s->groups[i];
        return NULL;
}

/* How many members a start of g's host starts. */
static size_t group_wanted(const Group *g)
{
        size_t n = 0;

        for (size_t i = 0; i < g->n_members; i++)
                n += g->members[i]->group_wanted;
        return n;
}

void supervisor_set_installed_fn(Supervisor *s, SupervisorInstalledFn fn, void *userdata)
{
        s->installed_fn = fn;
        s->installed_userdata = userdata;
}

/* Whether the manifest in dir puts its app in packed group name: a look at its two
 * keys only (the full load, with its messages, is for the apps that are). */
static bool manifest_in_group(const char *dir, const char *name)
{
        _cleanup_free_ char *path = NULL;
        json_t *m, *iso, *grp;
        bool in;

        if (asprintf(&path, "%s/manifest.json", dir) < 0)
                return false;
        m = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
        iso = json_object_get(m, "isolation");
        grp = json_object_get(m, "group");
        in = json_is_string(iso) && strcmp(json_string_value(iso), "packed") == 0 &&
             json_is_string(grp) && strcmp(json_string_value(grp), name) == 0;
        json_decref(m);
        return in;
}

/* cellad: registers each installed app of g that s does not hold yet, as a slot
 * of the host about to start (supervisor_set_installed_fn()). One that does not
 * load is said and left out: it gets no slot. */
static void group_add_installed(Group *g)
{
        Supervisor *s = g->sup;
        _cleanup_strv_free_ char **dirs = NULL;
        int r;

        r = s->installed_fn(&dirs, s->installed_userdata);
        if (r < 0) {
                log_warning_errno(r,
                                  "packed group %s: cannot list the installed apps: %m; "
                                  "its host has slots for the apps started before only",
                                  g->name);
                return;
        }
        for (size_t i = 0; dirs && dirs[i]; i++) {
                _cleanup_free_ char *real = NULL;
                Manifest *m = NULL;
                Instance *inst = NULL;
                SupervisorError err = {};

                if (!manifest_in_group(dirs[i], g->name))
                        continue;
                if (supervisor_load_manifest(dirs[i], &real, &m, NULL) < 0)
                        continue;
                if (supervisor_find(s, m->id)) {
                        manifest_free(m);
                        continue;
                }
                /* Registered then refused (its claim, its scheduler): failed, never
                 * started (supervisor_add_or_fail()). */
                if (supervisor_add(s, real, m, NULL, 0, &inst, &err) < 0) {
                        if (s->n_apps > 0 && s->apps[s->n_apps - 1]->manifest == m) {
                                inst = s->apps[s->n_apps - 1];
                                inst->state = INSTANCE_FAILED;
                                inst->error = err;
                                inst->exit_code = supervisor_exit_code(s, &err);
                                inst->group_wanted = false;
                        }
                        continue;
                }
                inst->group_wanted = false;
        }
}

int group_add(Supervisor *s, Instance *inst, SupervisorError *err)
{
        const Manifest *m = inst->manifest;
        Group *g = group_find(s, m->group);
        Instance **members;

        /* Its members share one network namespace: no app network (netgroups.c). */
        if (netgroups_refuse_packed(s, m, err) < 0)
                return -EOPNOTSUPP;

        if (g) {
                /* A member added while the host runs (cellad: installed after it
                 * started) has no slot in it: group_join() refuses it until the
                 * host starts again. All apps of a group that name a scheduler must agree. */
                for (size_t i = 0; i < g->n_members && m->has_scheduler; i++) {
                        const Manifest *o = g->members[i]->manifest;

                        if (o->has_scheduler && o->scheduler != m->scheduler) {
                                log_error("packed group %s: %s sets scheduler \"%s\" but %s sets "
                                          "\"%s\"",
                                          g->name, o->id,
                                          manifest_scheduler_to_string(o->scheduler), m->id,
                                          manifest_scheduler_to_string(m->scheduler));
                                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, EINVAL,
                                                        "scheduler");
                        }
                }
                if (g->n_members >= LUAHOST_APPS_MAX) {
                        log_error("packed group %s: more than %u apps", g->name, LUAHOST_APPS_MAX);
                        return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, E2BIG, "group");
                }
        } else {
                Group **groups = reallocarray(s->groups, s->n_groups + 1, sizeof *groups);

                if (!groups)
                        return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
                s->groups = groups;
                g = calloc(1, sizeof *g);
                if (!g)
                        return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
                g->name = strdup(m->group);
                if (!g->name || asprintf(&g->label, "packed group %s", m->group) < 0) {
                        free(g->name);
                        free(g);
                        return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
                }
                g->sup = s;
                sandboxed_init(&g->run, s, g->label, &group_run_ops, g);
                g->out.from = g->err.from = -EBADF;
                g->ctl_fd = -EBADF;
                s->groups[s->n_groups++] = g;
        }
        members = reallocarray(g->members, g->n_members + 1, sizeof *members);
        if (!members)
                return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
        g->members = members;
        inst->group = g;
        /* After every member's index (an adopted host's members keep theirs, which
         * may run past the count: a member added then must not take the slot of
         * one of them). A cold start of the host numbers them 0.. again. */
        inst->group_index = 0;
        for (size_t i = 0; i < g->n_members; i++)
                inst->group_index = MAX(inst->group_index, g->members[i]->group_index + 1);
        inst->group_wanted = true;
        g->members[g->n_members++] = inst;
        return 0;
}

/* The fds one start hands the host; all ours until the spawn, closed after it. */
typedef struct GroupFds {
        int spec;   /* sealed memfd with the spec */
        int *chan;  /* n: [2*i] ours (to the broker), [2*i+1] the host's */
        int *log;   /* n or NULL: [2*i] ours (pumped), [2*i+1] the host's */
        int *extra; /* what the host gets, ascending */
        int *data;  /* n or NULL: each app's /data mount (storage_prepare), or -EBADF */
        int ctl[2]; /* the host control channel: [0] ours, [1] the host's */
        size_t n_extra;
        size_t n;
} GroupFds;

static void group_fds_done(GroupFds *f)
{
        f->spec = safe_close(f->spec);
        for (size_t i = 0; f->chan && i < 2 * f->n; i++)
                safe_close(f->chan[i]);
        for (size_t i = 0; f->log && i < 2 * f->n; i++)
                safe_close(f->log[i]);
        for (size_t i = 0; f->data && i < f->n; i++)
                safe_close(f->data[i]);
        free(f->chan);
        free(f->log);
        free(f->data);
        free(f->extra);
        safe_close(f->ctl[0]);
        safe_close(f->ctl[1]);
        *f = (GroupFds){.spec = -EBADF, .ctl = {-EBADF, -EBADF}};
}

static int int_cmp(const void *a, const void *b)
{
        int x = *(const int *)a, y = *(const int *)b;

        return (x > y) - (x < y);
}

static int group_fds_open(Group *g, GroupFds *f)
{
        size_t n = g->n_members;
        int r;

        /* A log pipe per app: 2 fds (one here, one in the host) and a pipe's few
         * hundred bytes of kernel memory until written to, for the app's own log;
         * cella raises its own fd limit for it (raise_nofile()). */
        *f = (GroupFds){.spec = -EBADF, .ctl = {-EBADF, -EBADF}, .n = n};
        f->chan = malloc(2 * n * sizeof(int));
        f->log = malloc(2 * n * sizeof(int));
        f->extra = malloc((3 + 2 * n) * sizeof(int));
        if (!f->chan || !f->log || !f->extra)
                return -ENOMEM;
        /* The host control channel (src/lua/hostctl.h): joins and stops of members
         * while the host runs. */
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, f->ctl) < 0)
                return negative_errno();
        r = fd_above_stdio(f->ctl[1]);
        f->ctl[1] = r;
        if (r < 0)
                return r;
        f->extra[f->n_extra++] = r;
        for (size_t i = 0; i < 2 * n; i++) {
                f->chan[i] = -EBADF;
                if (f->log)
                        f->log[i] = -EBADF;
        }
        for (size_t i = 0; i < n; i++) {
                if (!g->members[i]->group_wanted)
                        continue; /* a slot only */
                if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, &f->chan[2 * i]) < 0)
                        return negative_errno();
                r = fd_above_stdio(f->chan[2 * i + 1]);
                f->chan[2 * i + 1] = r;
                if (r < 0)
                        return r;
                f->extra[f->n_extra++] = r;
                if (!f->log)
                        continue;
                if (pipe2(&f->log[2 * i], O_CLOEXEC) < 0)
                        return negative_errno();
                r = fd_above_stdio(f->log[2 * i + 1]);
                f->log[2 * i + 1] = r;
                if (r < 0)
                        return r;
                f->extra[f->n_extra++] = r;
        }
        return 0;
}

/*
 * Each member's /data: its own file system of its own limits.storage
 * (storage_prepare()), so one member filling its /data leaves the others' room
 * alone. f->data[i] stays -EBADF for a plain directory (a host with no loop
 * devices). Returns 0 or a negative errno, logged.
 */
static int group_data_open(Group *g, GroupFds *f)
{
        f->data = malloc(g->n_members * sizeof(int));
        if (!f->data)
                return log_error_errno(-ENOMEM, "cannot start packed group %s: %m", g->name);
        for (size_t i = 0; i < g->n_members; i++)
                f->data[i] = -EBADF;
        for (size_t i = 0; i < g->n_members; i++) {
                const Manifest *m = g->members[i]->manifest;
                int r;

                if (!g->members[i]->group_slot)
                        continue;
                r = storage_prepare(state_path(g->sup->state), m->id, storage_limit(m),
                                    &f->data[i]);

                if (r == -EOPNOTSUPP) {
                        log_warning("%s: no loop devices here: /data is a plain directory, "
                                    "and limits.storage bounds only each file (RLIMIT_FSIZE)",
                                    m->id);
                        continue;
                }
                if (r < 0)
                        return log_error_errno(r, "cannot prepare the /data of %s: %m", m->id);
        }
        return 0;
}

/* Writes text into a new sealed memfd (numbered >= 4), rewound for the reader. */
static int spec_memfd(const char *text, int *ret)
{
        size_t len = strlen(text);
        int fd, r;

        fd = memfd_create("cella-lua-spec", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return negative_errno();
        fd = fd_above_stdio(fd);
        if (fd < 0)
                return fd;
        r = loop_write(fd, text, len);
        if (r >= 0 &&
            (lseek(fd, 0, SEEK_SET) < 0 ||
             fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0))
                r = negative_errno();
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        *ret = fd;
        return 0;
}

/* The host's uid is its first member's; every member's data dir is given to it. */
typedef struct GroupPrepare {
        Group *g;
        uid_t uid;           /* out */
        uid_t ids_base;      /* out: the first member's block of host ids */
        SupervisorError err; /* out: what failed, step STATE (detail: the message's verb) */
        const char *id;      /* out: the app it failed for */
} GroupPrepare;

static int group_prepare(SandboxSpec *spec, void *userdata)
{
        GroupPrepare *p = userdata;
        Group *g = p->g;
        State *st = g->sup->state;
        int r;

        p->id = g->members[0]->manifest->id;
        r = state_app_uid(st, p->id, &p->uid, &p->ids_base);
        if (r < 0)
                return supervisor_error(&p->err, SUPERVISOR_STEP_STATE, r,
                                        "cannot allocate a uid for");
        for (size_t i = 0; i < g->n_members; i++) {
                _cleanup_free_ char *data = NULL;

                if (!g->members[i]->group_slot)
                        continue;
                p->id = g->members[i]->manifest->id;
                r = state_app_data_dir(st, p->id, p->uid, &data);
                if (r < 0)
                        return supervisor_error(&p->err, SUPERVISOR_STEP_STATE, r,
                                                "cannot give the data directory to");
        }
        spec->host_uid = p->uid;
        spec->host_gid = (gid_t)p->uid;
        spec->host_ids_base = p->ids_base;
        return 0;
}

/* Everything a host's SandboxSpec points at. */
typedef struct GroupLaunch {
        SandboxSpec spec;
        SandboxBind *binds;
        char **targets; /* the binds' targets, owned */
        char **argv;
        char **envp;
        char **entries; /* /apps/<id>/<entry> of each member, checked before the host runs */
        char *hostname;
        char *label;
} GroupLaunch;

static void group_launch_done(GroupLaunch *l)
{
        free(l->binds);
        strv_free(l->targets);
        strv_free(l->argv);
        strv_free(l->envp);
        strv_free(l->entries);
        free(l->hostname);
        free(l->label);
        *l = (GroupLaunch){};
}

/* The host's limits: memory the members' sum, the others the largest member's (a
 * quota or a size only if every member sets one). */
static void group_limits(Group *g, SandboxSpec *s, size_t n_fds)
{
        uint64_t pids = 0, cpu = 0, tmp = 0, fsize = 0;
        bool cpu_all = true, fsize_all = true;
        struct rlimit rl;
        _cleanup_free_ const Manifest **ms = calloc(g->n_members, sizeof *ms);

        size_t n = 0;

        for (size_t i = 0; i < g->n_members; i++) {
                const ManifestLimits *l = &g->members[i]->manifest->limits;

                if (!g->members[i]->group_slot)
                        continue;
                if (ms)
                        ms[n++] = g->members[i]->manifest;
                pids = MAX(pids, l->pids);
                tmp = MAX(tmp, l->tmp);
                cpu_all &= l->cpu_milli > 0;
                cpu += l->cpu_milli;
                fsize_all &= l->storage > 0;
                fsize = MAX(fsize, l->storage);
        }
        s->limits.memory_max = ms ? luahost_memory(ms, n) : 0;
        s->limits.pids_max = pids ?: LAUNCH_DEFAULT_PIDS;
        if (cpu_all && cpu) {
                s->limits.cpu_period_us = LAUNCH_CPU_PERIOD_US;
                s->limits.cpu_quota_us = cpu * LAUNCH_CPU_PERIOD_US / 1000;
        }
        s->tmp_size = tmp ?: LAUNCH_DEFAULT_TMP;
        s->rlimit_fsize = fsize_all ? fsize : 0;
        /* Every fd of the spec, one data directory per app, and room to work; and at
         * least as many as cella's own limit: the spec's fds keep cella's numbers, and
         * the host is set up in a copy of cella's fd table, where a new fd (the
         * seccomp listener) must still find a free number below the limit. */
        s->rlimit_nofile = n_fds + g->n_members + GROUP_NOFILE_SPARE;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
                s->rlimit_nofile = MAX(s->rlimit_nofile, (uint64_t)rl.rlim_cur);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && s->rlimit_nofile > rl.rlim_max)
                s->rlimit_nofile = rl.rlim_max;
}

static int group_launch_prepare(Group *g, GroupLaunch *l, int spec_fd, const int *data_fds)
{
        SandboxSpec *s = &l->spec;
        size_t n = g->n_members, k = 0;

        *l = (GroupLaunch){};
        l->binds = calloc(2 * n + 1, sizeof *l->binds);
        if (!l->binds)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const Instance *m = g->members[i];

                if (strv_extendf(&l->targets, "/apps/%s", m->manifest->id) < 0 ||
                    strv_extendf(&l->targets, "/data/%s", m->manifest->id) < 0)
                        return -ENOMEM;
                /* A slot's app is only bound: its entry is looked at when it joins. */
                if (m->group_wanted && strv_extendf(&l->entries, "/apps/%s/%s", m->manifest->id,
                                                    m->manifest->entry) < 0)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                const Instance *m = g->members[i];

                if (!m->group_slot)
                        continue;
                l->binds[k++] = (SandboxBind){.source = m->app_dir, .target = l->targets[2 * i]};
                l->binds[k++] = (SandboxBind){.source = m->data_dir,
                                              .target = l->targets[2 * i + 1],
                                              .flags = SANDBOX_BIND_RW | SANDBOX_BIND_NOEXEC,
                                              .fd = data_fds[i]};
                if (data_fds[i] >= 0)
                        l->binds[k - 1].flags |= SANDBOX_BIND_FD;
        }
        l->binds[k++] = (SandboxBind){.source = launch_lua_host_path(), .target = LAUNCH_LUA_PATH};
        if (strv_extend(&l->argv, LAUNCH_LUA_PATH) < 0 || strv_extend(&l->argv, "--spec-fd") < 0 ||
            strv_extendf(&l->argv, "%d", spec_fd) < 0)
                return -ENOMEM;
        /* Rebuilt from nothing, as a single app's (launch.c); no CELLA_FD: each app's
         * channel is named in the spec. */
        if (launch_base_env(&l->envp) < 0 || strv_extendf(&l->envp, "CELLA_GROUP=%s", g->name) < 0)
                return -ENOMEM;
        if (asprintf(&l->hostname, "group-%s", g->name) < 0 ||
            asprintf(&l->label, "group-%s", g->name) < 0) {
                l->hostname = l->label = NULL;
                return -ENOMEM;
        }
        s->hostname = l->hostname;
        s->binds = l->binds;
        s->n_binds = k;
        s->workdir = "/";
        s->exec_path = LAUNCH_LUA_PATH;
        /* A member's missing entry fails the group's start as a native app's does
         * (127, naming it), not later as that member's cella-lua error. */
        s->entry_scripts = l->entries;
        s->argv = l->argv;
        s->envp = l->envp;
        s->cgroup_label = l->label;
        s->stdio[0] = s->stdio[1] = s->stdio[2] = -1;
        s->channel_fd = -1;
        s->init_path = launch_init_path();
        /* cellad's hosts outlive it, held by its keeper, as its apps do (adopt.h). */
        s->survive_parent = supervisor_keeper_attached(g->sup);
        /* The band of its most important member, before any member runs. */
        s->oom_score_adj = MEMORY_BAND_CACHED_MAX;
        for (size_t i = 0; i < g->n_members; i++)
                if (g->members[i]->group_wanted &&
                    supervisor_memory_start_adj(g->members[i]) < s->oom_score_adj)
                        s->oom_score_adj = supervisor_memory_start_adj(g->members[i]);
        s->oom_score_adj_set = true;
        g->oom_band_applied = 0;
        return 0;
}

/* The host's own output: our terminal (cella run), or logs/group.<name>.log.
 * Returns 0 or a negative errno, after a message. */
static int group_open_log(Group *g)
{
        _cleanup_free_ char *name = NULL;

        if (asprintf(&name, "group.%s", g->name) < 0)
                return log_error_errno(-ENOMEM, "cannot open the log of %s: %m", g->label);
        return sandboxed_open_log(g->sup, name, &g->log);
}

static void group_maybe_restart(Group *g);

/* Records that member inst ended with code (a cella-lua fault: 0, 1, 3, 4; or
 * 128+N when the host was killed by signal N); how: "exited" or "killed". host is
 * the host's exit when the member ended with it, else NULL: its oom_killed (the host,
 * and so every member, was killed by the group's memory cgroup's OOM killer) and
 * oom_kills go into the member's records as report_exit() (instance.c) writes an
 * app's; NULL gives false and 0. */
static void member_exited(Instance *inst, int code, const char *how, const SandboxExit *host)
{
        Supervisor *s = inst->sup;
        const char *reason = luastats_fault_reason(code);
        double ms = (double)(now_monotonic_ns() - inst->started_ns) / 1e6;
        bool oom_killed = host && host->oom_killed;
        uint64_t oom_kills = host ? host->oom_kills : 0;
        json_t *rec;

        supervisor_keeper_drop(inst); /* its record (adopt.c): the host still runs */
        /* cellad: ended alone, or with a host that ended by itself, it is done; the
         * members of a host that was killed stay wanted for its restart. */
        if (inst->sup->installed_fn && (!host || host->code == CLD_EXITED))
                inst->group_wanted = false;
        inst->exit_code = code;
        inst->last_exit = (SandboxExit){.code = code >= SUPERVISOR_SIGNAL_STATUS_BASE ? CLD_KILLED
                                                                                      : CLD_EXITED,
                                        .status = code >= SUPERVISOR_SIGNAL_STATUS_BASE
                                                          ? code - SUPERVISOR_SIGNAL_STATUS_BASE
                                                          : code,
                                        .oom_killed = oom_killed,
                                        .oom_kills = oom_kills};
        instance_report_lua_exit(inst, code);
        broker_app_detach(inst->broker_app);
        inst->broker_app = NULL;
        supervisor_status(
                s,
                json_pack("{s:s, s:s, s:s, s:s, s:i, s:b, s:I, s:i, s:f}", "event", "exited", "app",
                          inst->manifest->id, "group", inst->group->name, "how", how, "exit_code",
                          code, "oom_killed", oom_killed, "oom_kills", (json_int_t)oom_kills, "pid",
                          inst->group->run.sandbox ? (int)inst->group->run.sandbox->pid : 0,
                          "duration_ms", ms));
        rec = json_pack("{s:s, s:s, s:s, s:i, s:b, s:I, s:f}", "what", "exited", "how", how,
                        "group", inst->group->name, "status", code, "oom_killed", oom_killed,
                        "oom_kills", (json_int_t)oom_kills, "duration_ms", ms);
        if (rec && reason)
                json_object_set_new(rec, "reason", json_string(reason));
        supervisor_audit(s, inst->manifest->id, AUDIT_EVENT_LIFECYCLE, rec);
        inst->state = inst->stop_requested || s->stopping ? INSTANCE_STOPPED : INSTANCE_EXITED;
}

/* A member ended while the host lives: its channel hung up, or its stats record
 * says so. The reason is the record's fault. Every GROUP_WATCH_MS, and at once
 * when a member's log pipe ends (the host closes it as the app ends, after its
 * record says so); from_log: then, not the last member running, whose end the
 * host's exit that follows records (with the host's figures). */
static void group_watch_members(Group *g, bool from_log)
{
        bool changed = false;
        size_t running = 0;

        for (size_t i = 0; from_log && i < g->n_members; i++)
                running += g->members[i]->state == INSTANCE_RUNNING;

        if (g->state != INSTANCE_RUNNING || !g->run.sandbox || g->run.sandbox->exited)
                return;
        for (size_t i = 0; i < g->n_members; i++) {
                Instance *inst = g->members[i];
                BrokerAppStats bs = {};
                CLuaStatsApp a = {};
                bool ended;

                if (inst->state != INSTANCE_RUNNING)
                        continue;
                if (inst->broker_app)
                        broker_app_stats(inst->broker_app, &bs);
                /* From a log's end, only a member whose record says it ended (the
                 * host writes it before it closes the app's log and channel): a
                 * channel that hung up with no such record is, then, the host going
                 * (an OOM kill, a crash), whose exit records every member's end
                 * with the host's status; the watch takes a bare hang-up later. */
                ended = bs.closed && !from_log;
                /* The record of its own run only: a joined member's slot holds the
                 * end of the run before it until the host has taken the join. Where
                 * the host's record of it is there, that record says whether it
                 * ended: a channel closed by a host the kernel just killed (the
                 * group's OOM killer) is the host's end, which the host's exit
                 * reports for every member, not this member's own. */
                if (g->run.stats && luastats_app(g->run.stats, inst->group_index, &a) >= 0 &&
                    a.run == inst->group_run)
                        ended = a.state == CLUA_APP_EXITED || a.state == CLUA_APP_FAILED;
                else
                        a.fault = 0;
                if (!ended || (from_log && running <= 1))
                        continue;
                running--;
                member_exited(inst, (int)a.fault, "exited", NULL);
                changed = true;
        }
        if (changed)
                supervisor_changed(g->sup);
}

static void on_watch(uv_timer_t *t)
{
        group_watch_members(t->data, false);
}

/* Starts (or restarts) g's watch timer: on_watch() every GROUP_WATCH_MS, for a
 * started host (group_serve()) and an adopted one (group_adopted()). The timer
 * is set up on the first call; if libuv cannot set it up, no watch runs (best
 * effort: neither caller fails for it). */
static void group_watch_start(Group *g)
{
        if (!g->watch_init && uv_timer_init(&g->sup->loop, &g->watch) >= 0) {
                g->watch_init = true;
                g->watch.data = g;
        }
        if (g->watch_init)
                (void)uv_timer_start(&g->watch, on_watch, GROUP_WATCH_MS, GROUP_WATCH_MS);
}

/* g's start failed: g->error says why (printed and recorded); so for each member. */
static void group_failed(Group *g)
{
        g->exit_code = supervisor_exit_code(g->sup, &g->error);
        g->state = INSTANCE_FAILED;
        for (size_t i = 0; i < g->n_members; i++) {
                if (!g->members[i]->group_wanted)
                        continue; /* a slot only: not started, not failed */
                g->members[i]->error = g->error;
                g->members[i]->exit_code = g->exit_code;
                g->members[i]->state = INSTANCE_FAILED;
                /* cellad: failed, not wanted by the next start of another member. */
                if (g->sup->installed_fn)
                        g->members[i]->group_wanted = false;
        }
        supervisor_changed(g->sup);
}

/* What one start of the host holds until it runs and is served. */
typedef struct GroupStart {
        GroupFds fds;
        GroupLaunch launch;
        GroupPrepare prep;
        SandboxError serr;
        int out[2], err[2]; /* the host's own stdout and stderr */
        bool state_failed;  /* what failed is the state directory's (SUPERVISOR_STEP_STATE) */
} GroupStart;

static void group_start_done(GroupStart *c)
{
        for (size_t i = 0; i < 2; i++) {
                c->out[i] = safe_close(c->out[i]);
                c->err[i] = safe_close(c->err[i]);
        }
        group_launch_done(&c->launch);
        group_fds_done(&c->fds);
}

/* Whether g may start now: 0 yes, 1 it runs already, else a negative errno with
 * g->error after a message. The fd limit is checked up front (GROUP_FDS_PER_APP) rather than
 * failing with EMFILE half way. */
static int group_may_start(Group *g)
{
        uint64_t need = GROUP_FDS_PER_APP * (uint64_t)g->n_members + GROUP_FDS_SPARE;
        struct rlimit rl;

        if (g->state == INSTANCE_RUNNING)
                return 1;
        if (g->out.closing || g->err.closing || sandboxed_busy(&g->run)) {
                log_error("cannot start packed group %s: its last run is still being cleaned up",
                          g->name);
                return supervisor_error(&g->error, SUPERVISOR_STEP_INTERNAL, EBUSY, NULL);
        }
        for (size_t i = 0; i < g->n_members; i++) {
                const Instance *inst = g->members[i];

                if (inst->out.closing || inst->out.open) {
                        log_error("cannot start packed group %s: the log of %s is still open",
                                  g->name, inst->manifest->id);
                        return supervisor_error(&g->error, SUPERVISOR_STEP_INTERNAL, EBUSY,
                                                inst->manifest->id);
                }
        }
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
                log_error("cannot start packed group %s: its %zu apps need about %llu fds in "
                          "cella, whose limit is %llu (raise the hard limit of RLIMIT_NOFILE, or "
                          "split the group)",
                          g->name, g->n_members, (unsigned long long)need,
                          (unsigned long long)rl.rlim_cur);
                return supervisor_error_at(&g->error, SANDBOX_STEP_PREPARE, EMFILE,
                                           "RLIMIT_NOFILE");
        }
        return 0;
}

/* Each member's log, and each signed member verified again (it runs only what its
 * key signed, at every start); then the host's own log. Returns 0 or a negative
 * errno with g->error after a message. */
static int group_check_members(Group *g)
{
        int r;

        for (size_t i = 0; i < g->n_members; i++) {
                Instance *m = g->members[i];

                /* cellad: each member's version installed now (reload.c). */
                r = instance_reload(m, &g->error);
                if (r >= 0 && m->group_wanted)
                        r = instance_open_log(m, &g->error);
                if (r >= 0)
                        r = instance_verify_again(m, &g->error);
                m->group_slot = r >= 0;
                if (r < 0 && !m->group_wanted) {
                        /* Not started now (removed since, say): no slot, the
                         * others start. */
                        log_warning("packed group %s: %s gets no slot in the host (above)", g->name,
                                    m->manifest->id);
                        g->error = (SupervisorError){};
                        continue;
                }
                if (r < 0)
                        return r;
        }
        r = group_open_log(g);
        return r < 0 ? supervisor_error(&g->error, SUPERVISOR_STEP_STATE, r, "logs") : 0;
}

/* The host's spec (luahost_spec_build()): each member's manifest, arguments,
 * channel and log fd, the scheduler, the stats file; into a sealed memfd. */
static int group_write_spec(Group *g, GroupFds *fds)
{
        size_t n = g->n_members, k = 0;
        _cleanup_free_ LuaHostApp *apps = calloc(n, sizeof *apps);
        _cleanup_free_ const Manifest **ms = calloc(n, sizeof *ms);
        _cleanup_free_ char *spec = NULL;
        ManifestScheduler sched = MANIFEST_SCHEDULER_FAIR;
        size_t a = 0, b = 0;
        int r;

        if (!apps || !ms)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                ms[i] = g->members[i]->manifest;
                if (!g->members[i]->group_wanted)
                        continue; /* a slot for a join */
                apps[k++] = (LuaHostApp){.manifest = ms[i],
                                         .extra_args = g->members[i]->extra_args,
                                         .channel_fd = fds->chan[2 * i + 1],
                                         .log_fd = fds->log ? fds->log[2 * i + 1] : -1,
                                         .slot = (int)i};
        }
        (void)luahost_scheduler(ms, n, &sched, &a, &b); /* checked by group_add() */
        r = luahost_spec_build(sched, apps, k, n, g->run.stats->fd, fds->ctl[1], &spec);
        if (r < 0)
                return r;
        return spec_memfd(spec, &fds->spec);
}

/* The fds the host gets: the stats file, each member's channel, log pipe and
 * /data, and the spec. Returns 0 or a negative errno, after a message. */
static int group_open_fds(Group *g, GroupStart *c)
{
        GroupFds *fds = &c->fds;
        int r;

        /* Each member's record in this run's spec and stats file is its place now
         * (an adopted host's members keep the records they had there). */
        for (size_t i = 0; i < g->n_members; i++)
                g->members[i]->group_index = (uint32_t)i;
        r = sandboxed_new_stats(&g->run, (uint32_t)g->n_members);
        if (r >= 0)
                r = group_fds_open(g, fds);
        if (r < 0)
                return log_error_errno(r, "cannot create the fds of packed group %s: %m", g->name);
        r = group_data_open(g, fds);
        if (r < 0) {
                c->state_failed = true;
                return r;
        }
        r = group_write_spec(g, fds);
        if (r < 0)
                return log_error_errno(r, "cannot write the spec of packed group %s: %m", g->name);
        fds->extra[fds->n_extra++] = fds->spec;
        fds->extra[fds->n_extra++] = g->run.stats->fd;
        qsort(fds->extra, fds->n_extra, sizeof(int), int_cmp);
        return 0;
}

/* The host's SandboxSpec, in c->launch. Returns 0 or a negative errno, after a
 * message. */
static int group_prepare_spec(Group *g, GroupStart *c)
{
        SandboxSpec *spec = &c->launch.spec;
        bool all_sized = true;
        int r;

        r = group_launch_prepare(g, &c->launch, c->fds.spec, c->fds.data);
        if (r < 0 || pipe2(c->out, O_CLOEXEC) < 0 || pipe2(c->err, O_CLOEXEC) < 0) {
                r = r < 0 ? r : negative_errno();
                return log_error_errno(r, "cannot prepare packed group %s: %m", g->name);
        }
        group_limits(g, spec, c->fds.n_extra);
        /* No RLIMIT_FSIZE when every /data has its own size (launch.h,
         * launch_set_data_mount()). */
        for (size_t i = 0; i < g->n_members; i++)
                all_sized &= c->fds.data[i] >= 0 || !g->members[i]->group_slot;
        if (all_sized)
                spec->rlimit_fsize = 0;
        spec->stdio[1] = c->out[1];
        spec->stdio[2] = c->err[1];
        spec->extra_fds = c->fds.extra;
        spec->n_extra_fds = c->fds.n_extra;
        spec->seccomp = g->sup->filter;
        spec->cgroups = g->sup->cgm;
        c->prep = (GroupPrepare){.g = g};
        spec->prepare = group_prepare;
        spec->prepare_userdata = &c->prep;
        return 0;
}

/* Says why the host's spawn failed (SandboxError e), naming the member whose file
 * it was, and records it. Returns a negative errno with g->error. */
static int group_report_spawn_error(Group *g, const SandboxError *told)
{
        SandboxError advised;
        const SandboxError *e = &advised;
        int r;
        char detail[SANDBOX_DETAIL_MAX];

        /* The library's plain fact, told in the manifest's terms (error.h). */
        supervisor_exec_advise(told, "the entry", &advised);
        r = supervisor_error_sandbox(&g->error, e);

        /* The members' file names and #! lines: one inert line (instance.c). */
        termsafe_field(e->detail, sizeof detail - 4, detail, sizeof detail);
        if (e->step == SANDBOX_STEP_EXEC && e->exec_cause != SANDBOX_EXEC_CAUSE_NONE) {
                /* Told in the app's terms (execdiag.c, advised above): which member's
                 * file. */
                log_error("cannot start packed group %s: %s", g->name, detail);
                for (size_t i = 0; i < g->n_members; i++) {
                        const Instance *m = g->members[i];
                        char at[MANIFEST_ID_MAX + 16];

                        snprintf(at, sizeof at, " /apps/%s/", m->manifest->id);
                        if (strstr(e->detail, at))
                                log_error("(/apps/%s in the jail is the folder %s of %s)",
                                          m->manifest->id, m->app_dir, m->manifest->id);
                }
        } else
                log_error("cannot start packed group %s: %s step failed: %s: %s", g->name,
                          sandbox_step_to_string(e->step), detail, strerror(e->error));
        sandboxed_report_failed(&g->run, &g->error);
        return r;
}

/* Spawns the host. Returns 0 or a negative errno with g->error, after its message
 * and records. */
static int group_spawn(Group *g, GroupStart *c)
{
        int r = sandboxed_spawn(&g->run, &c->launch.spec, &c->serr);

        /* The host has its ends now (or never will): ours would hide EOF. */
        c->out[1] = safe_close(c->out[1]);
        c->err[1] = safe_close(c->err[1]);
        for (size_t i = 0; i < g->n_members; i++) {
                c->fds.chan[2 * i + 1] = safe_close(c->fds.chan[2 * i + 1]);
                if (c->fds.log)
                        c->fds.log[2 * i + 1] = safe_close(c->fds.log[2 * i + 1]);
        }
        c->fds.spec = safe_close(c->fds.spec);
        c->fds.ctl[1] = safe_close(c->fds.ctl[1]);
        if (r >= 0)
                return 0;
        if (c->prep.err.step != SUPERVISOR_STEP_NONE) {
                g->error = c->prep.err;
                log_error_errno(-g->error.error, "%s %s in %s: %m", g->error.detail, c->prep.id,
                                g->sup->o.state_dir);
                g->error.error = -r; /* the record's errno: the spawn's */
                sandboxed_report_failed(&g->run, &g->error);
                return r;
        }
        return group_report_spawn_error(g, &c->serr);
}

/* Member inst of the running host: installed, its channel chan_fd (ours, taken)
 * served under its own id, its log log_fd (ours, taken; or -EBADF) pumped, its
 * records; joined: it came by group_join() (its start time is now, not the
 * host's). Returns 0 or a negative errno with *err after a message. */
static int group_serve_member(Group *g, Instance *inst, int chan_fd, int log_fd, bool joined,
                              SupervisorError *err)
{
        Supervisor *s = g->sup;
        const Sandbox *sb = g->run.sandbox;
        BrokerAppInfo info;
        int r;

        r = instance_install(inst, err);
        if (r < 0) {
                safe_close(chan_fd);
                safe_close(log_fd);
                return r;
        }
        inst->uid = g->run.uid;
        if (joined) {
                inst->started_ns = now_monotonic_ns();
                inst->started_ms = now_realtime_ms();
        } else {
                inst->started_ns = g->run.started_ns;
                inst->started_ms = g->run.started_ms;
        }
        inst->stop_requested = false;
        info = (BrokerAppInfo){
                .manifest = inst->manifest,
                .app_dir = inst->app_dir,
                .data_dir = inst->data_dir,
                .signed_ok = inst->signed_ok,
        };
        sandboxed_broker_info(&g->run, &info);
        r = broker_app_attach(s->broker, &info, chan_fd, &inst->broker_app);
        if (r < 0) {
                safe_close(log_fd);
                log_error_errno(r, "cannot serve the channel of %s: %m", inst->manifest->id);
                return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, r, inst->manifest->id);
        }
        if (log_fd >= 0) {
                r = pump_start(s, inst, g, &inst->out, log_fd, s->out_outlet, inst->log);
                if (r < 0) {
                        if (!inst->out.open)
                                safe_close(log_fd);
                        log_error("cannot pump the log of %s: %s", inst->manifest->id,
                                  uv_strerror(r));
                        return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, r,
                                                inst->manifest->id);
                }
        }
        inst->state = INSTANCE_RUNNING;
        inst->group_served = true;
        supervisor_status(s, json_pack("{s:s, s:s, s:s, s:I, s:i, s:i, s:b}", "event", "started",
                                       "app", inst->manifest->id, "group", g->name, "uid",
                                       (json_int_t)g->run.uid, "pid", (int)sb->pid, "restarts",
                                       (int)g->run.restarts, "joined", joined));
        supervisor_audit(s, inst->manifest->id, AUDIT_EVENT_LIFECYCLE,
                         json_pack("{s:s, s:s, s:i, s:I, s:i, s:b}", "what", "started", "group",
                                   g->name, "pid", (int)sb->pid, "uid", (json_int_t)g->run.uid,
                                   "restarts", (int)g->run.restarts, "joined", joined));
        inst->keeper_hold_due = true; /* no NOTE before the HOLD (adopt.c) */
        lifecycle_started(inst);
        supervisor_keeper_hold(inst); /* a record, for the next cellad (adopt.c) */
        return 0;
}

/* The host runs: watch it and its output, make the kernel ready, serve every
 * member, and look for members that end while it lives. Returns 0 or a negative
 * errno with g->error after a message. */
static int group_serve(Group *g, GroupStart *c)
{
        Supervisor *s = g->sup;
        int r;

        r = pump_start(s, NULL, g, &g->out, c->out[0], s->out_outlet, g->log);
        if (r >= 0) {
                c->out[0] = -EBADF;
                r = pump_start(s, NULL, g, &g->err, c->err[0], s->err_outlet, g->log);
        }
        if (r >= 0) {
                c->err[0] = -EBADF;
                r = sandboxed_watch(&g->run);
        }
        if (r < 0) {
                log_error("cannot watch packed group %s: %s", g->name, uv_strerror(r));
                return supervisor_error(&g->error, SUPERVISOR_STEP_INTERNAL, r, "watch");
        }
        r = supervisor_ready(s, &g->error);
        for (size_t i = 0; r >= 0 && i < g->n_members; i++) {
                int log_fd;

                if (!g->members[i]->group_wanted)
                        continue;
                log_fd = c->fds.log ? TAKE_FD(c->fds.log[2 * i]) : -EBADF;
                g->members[i]->group_run = 0;
                r = group_serve_member(g, g->members[i], TAKE_FD(c->fds.chan[2 * i]), log_fd, false,
                                       &g->error);
        }
        if (r < 0)
                return r;
        supervisor_keeper_hold_group(g); /* after its members' (adopt.c) */
        group_watch_start(g);
        return 0;
}

static void group_release_slots(Group *g);

/* The host runs: keeps our end of its control channel (its reading side shut:
 * nothing the host writes reaches us) and what its slots hold, for group_join().
 * Returns 0 or a negative errno with g->error after a message. */
static int group_hold_slots(Group *g, GroupFds *f)
{
        g->ctl_fd = TAKE_FD(f->ctl[0]);
        (void)shutdown(g->ctl_fd, SHUT_RD);
        g->runs = 0;
        g->n_slots = g->n_members;
        for (size_t i = 0; i < g->n_members; i++)
                g->members[i]->group_served = false;
        g->slot_dirs = calloc(g->n_slots + 1, sizeof *g->slot_dirs);
        for (size_t i = 0; g->slot_dirs && i < g->n_slots; i++)
                if (g->members[i]->group_slot &&
                    !(g->slot_dirs[i] = strdup(g->members[i]->app_dir))) {
                        group_release_slots(g);
                        break;
                }
        if (!g->slot_dirs) {
                log_error("cannot serve packed group %s: out of memory", g->name);
                return supervisor_error(&g->error, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
        }
        return 0;
}

/* The host is gone (or going): no more joins. slot_dirs has a NULL for each
 * member with no slot, so it is freed by its count, not as a strv. */
static void group_release_slots(Group *g)
{
        g->ctl_fd = safe_close(g->ctl_fd);
        for (size_t i = 0; g->slot_dirs && i < g->n_slots; i++)
                free(g->slot_dirs[i]);
        free(g->slot_dirs);
        g->slot_dirs = NULL;
        g->n_slots = 0;
}

/* The host runs, but we cannot serve it: take it down again. */
static void group_abort(Group *g)
{
        /* The records of the members handed over already (adopt.c): not the next
         * cellad's to refuse. */
        for (size_t i = 0; i < g->n_members; i++)
                supervisor_keeper_drop(g->members[i]);
        sandboxed_abort(&g->run);
        for (size_t i = 0; i < g->n_members; i++) {
                broker_app_detach(g->members[i]->broker_app);
                g->members[i]->broker_app = NULL;
                pump_close(&g->members[i]->out);
        }
        pump_close(&g->out);
        pump_close(&g->err);
        group_release_slots(g);
}

int group_start(Group *g)
{
        GroupStart c = {
                .fds = {.spec = -EBADF, .ctl = {-EBADF, -EBADF}},
                .out = {-EBADF, -EBADF},
                .err = {-EBADF, -EBADF},
        };
        int r;

        g->error = (SupervisorError){};
        r = group_may_start(g);
        if (r == 1)
                return 0;
        if (r < 0 && g->error.step == SUPERVISOR_STEP_INTERNAL) {
                /* Busy: its members' states stand; their error says why. */
                for (size_t i = 0; i < g->n_members; i++)
                        if (g->members[i]->group_wanted)
                                g->members[i]->error = g->error;
                return r;
        }
        if (r == 0 && group_wanted(g) == 0)
                return 0; /* no member to start (each was stopped): nothing runs */
        if (r >= 0)
                r = group_check_members(g);
        if (r < 0)
                goto fail;
        g->stop_requested = false;
        r = group_open_fds(g, &c);
        if (r >= 0)
                r = group_prepare_spec(g, &c);
        if (r < 0) {
                (void)supervisor_error(
                        &g->error,
                        c.state_failed ? SUPERVISOR_STEP_STATE : SUPERVISOR_STEP_INTERNAL, r, NULL);
                sandboxed_report_failed(&g->run, &g->error);
                goto fail;
        }
        r = group_spawn(g, &c);
        if (r < 0)
                goto fail;
        g->run.uid = c.prep.uid;
        g->state = INSTANCE_RUNNING;
        r = group_hold_slots(g, &c.fds);
        if (r >= 0)
                r = group_serve(g, &c);
        if (r < 0) {
                group_abort(g);
                goto fail;
        }
        if (g->sup->o.output == SUPERVISOR_OUTPUT_LOGS)
                log_info("packed group %s: started %zu app(s) (pid %d)", g->name, group_wanted(g),
                         (int)g->run.sandbox->pid);
        group_start_done(&c);
        return 0;
fail:
        group_start_done(&c);
        g->run.stats = luastats_free(g->run.stats);
        group_failed(g);
        return r;
}

/* Sends one message of src/lua/hostctl.h (len bytes) with n_fds fds on g's control
 * channel, never blocking. Returns 0, -EAGAIN (the host has not read what came
 * before: its queue is full), or -EPIPE (the host is ending: it shut its reading
 * side, or is gone; the channel is closed then). */
int group_ctl_send(Group *g, const void *msg, size_t len, const int *fds, unsigned n_fds)
{
        union {
                struct cmsghdr h;
                char b[CMSG_SPACE(CLUA_CTL_FDS_MAX * sizeof(int))];
        } cbuf = {};
        struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n;

        if (g->ctl_fd < 0)
                return -EPIPE;
        if (n_fds) {
                struct cmsghdr *c;

                mh.msg_control = cbuf.b;
                mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
                memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
        }
        do
                n = sendmsg(g->ctl_fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n >= 0)
                return 0;
        if (errno == EAGAIN || errno == ENOBUFS)
                return -EAGAIN;
        g->ctl_fd = safe_close(g->ctl_fd);
        return -EPIPE;
}

/* Where a host's jail holds its members' folders, from its root (the "/apps/<id>"
 * targets of group_launch_prepare()). */
#define JAIL_APPS "apps"

/* Whether this cellad knows inst's slot in g's running host. */
static bool slot_known(const Group *g, const Instance *inst)
{
        return inst->group_index < g->n_slots && g->slot_dirs[inst->group_index];
}

/*
 * A member whose slot this cellad does not know (the host was adopted from an
 * earlier cellad, which handed over no record of it: it was not running then)
 * takes a slot no member holds, if the host's jail holds its installed folder:
 * the directory at /apps/<id> in the host's mount namespace, opened beneath
 * /proc/<pid>/root with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS) (the host
 * cannot mount, having no capability, nor is a symlink it made followed), is
 * inst->app_dir itself
 * (the same device and inode: the bind mount the host's start made of it). Then
 * its /data/<id> was mounted with it and its limit is in the host's cgroup. A
 * member installed after the host started has no /apps/<id> there, and one
 * updated since holds another folder: both refused, with what to do. Returns 0
 * (inst->group_index and its slot_dirs entry set), or a negative errno with
 * inst->error after a message.
 */
static int group_take_slot(Group *g, Instance *inst)
{
        const char *id = inst->manifest->id;
        _cleanup_free_ char *path = NULL, *sub = NULL;
        _cleanup_close_ int root = -EBADF, dir = -EBADF;
        struct stat jail, store;
        uint32_t past;
        size_t slot;
        int r = 0;

        if (asprintf(&path, "/proc/%d/root", (int)g->run.sandbox->pid) < 0)
                path = NULL;
        else if (asprintf(&sub, JAIL_APPS "/%s", id) < 0)
                sub = NULL;
        if (!path || !sub)
                return supervisor_error(&inst->error, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
        /* From the host's root, never through a symlink (what the host could make
         * is not taken for its jail's mount). */
        root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0)
                r = negative_errno();
        else {
                struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                                       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS};

                dir = (int)syscall(SYS_openat2, root, sub, &how, sizeof how);
                r = dir < 0 || fstat(dir, &jail) < 0 ? negative_errno() : 0;
        }
        if (r < 0)
                ;
        else if (stat(inst->app_dir, &store) < 0)
                r = negative_errno();
        else if (jail.st_dev != store.st_dev || jail.st_ino != store.st_ino)
                r = -ESTALE;
        if (r < 0) {
                /* Its folder and /data are not in the host's jail, nor its share in
                 * the host's cgroup limits. */
                log_error("cannot start %s: the running host of packed group %s does not hold "
                          "its installed folder at /apps/%s (%s: it was %s after the host "
                          "started); stop the group's apps (its host ends with the last), then "
                          "start them again (a host's jail, cgroup limits and stats file hold "
                          "the apps installed when it started; its installed folder: %s)",
                          id, g->name, id, r == -ESTALE ? "another version is there" : strerror(-r),
                          r == -ESTALE ? "updated" : "installed", inst->app_dir);
                return supervisor_error_at(&inst->error, SANDBOX_STEP_PREPARE,
                                           r == -ENOENT || r == -ESTALE ? EXFULL : -r, g->name);
        }
        /* A slot with a known folder is a member's (one that ran in it, or the one
         * that took it); the others are free, whatever index a member registered
         * since the adoption was numbered with (it has no slot until it takes one). */
        for (slot = 0; slot < g->n_slots && g->slot_dirs[slot]; slot++)
                ;
        if (slot == g->n_slots) {
                log_error("cannot start %s: the running host of packed group %s has no free slot "
                          "(its %zu are its other members'); stop the group's apps, then start "
                          "them again",
                          id, g->name, g->n_slots);
                return supervisor_error_at(&inst->error, SANDBOX_STEP_PREPARE, EXFULL, g->name);
        }
        g->slot_dirs[slot] = strdup(inst->app_dir);
        if (!g->slot_dirs[slot])
                return supervisor_error(&inst->error, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
        log_info("%s takes slot %zu of the adopted host of packed group %s (its folder is there)",
                 id, slot, g->name);
        /* A member numbered into that slot at its registration moves past the
         * slots: it takes one of its own when it joins. */
        past = (uint32_t)g->n_slots;
        for (size_t i = 0; i < g->n_members; i++)
                past = MAX(past, g->members[i]->group_index + 1);
        for (size_t i = 0; i < g->n_members; i++)
                if (g->members[i] != inst && g->members[i]->group_index == slot)
                        g->members[i]->group_index = past++;
        inst->group_index = (uint32_t)slot;
        return 0;
}

/* Whether inst may join g's running host now: 0, or a negative errno with
 * inst->error after a message. A slot this cellad does not know is looked for
 * after the installed version is (group_take_slot()). */
static int group_may_join(Group *g, Instance *inst)
{
        const char *id = inst->manifest->id;

        if (g->ctl_fd < 0 || g->run.sandbox->exited) {
                log_error("cannot start %s: the host of packed group %s is ending (its last app "
                          "ended); start %s again once the host has exited",
                          id, g->name, id);
                return supervisor_error_at(&inst->error, SANDBOX_STEP_PREPARE, EAGAIN, g->name);
        }
        if (inst->out.open || inst->out.closing) {
                log_error("cannot start %s: the log of its last run in packed group %s is still "
                          "being read",
                          id, g->name);
                return supervisor_error(&inst->error, SUPERVISOR_STEP_INTERNAL, EBUSY, NULL);
        }
        return 0;
}

/*
 * Member inst joins g's running host: its installed version checked as at a host
 * start (it must be the folder the host's jail holds at /apps/<id>), a new broker
 * channel and log pipe, and a JOIN (src/lua/hostctl.h) with the host's ends of
 * both; then it is served as a member started with the host. Returns 0 or a
 * negative errno with inst->error after a message.
 */
static int group_join(Group *g, Instance *inst)
{
        const char *id = inst->manifest->id;
        int chan[2] = {-EBADF, -EBADF}, logp[2] = {-EBADF, -EBADF};
        _cleanup_free_ void *msg = NULL;
        CLuaCtlHeader stop;
        LuaHostApp a;
        size_t len = 0;
        uint32_t run;
        int r;

        inst->error = (SupervisorError){};
        r = group_may_join(g, inst);
        /* cellad: the version installed now (reload.c), its log, its signature. */
        if (r >= 0)
                r = instance_reload(inst, &inst->error);
        if (r >= 0)
                r = instance_open_log(inst, &inst->error);
        if (r >= 0)
                r = instance_verify_again(inst, &inst->error);
        if (r >= 0 && !slot_known(g, inst))
                r = group_take_slot(g, inst);
        if (r < 0)
                return r;
        id = inst->manifest->id;
        if (strcmp(inst->app_dir, g->slot_dirs[inst->group_index]) != 0) {
                log_error("cannot start %s: its installed version %s is not the folder the "
                          "host of packed group %s holds at /apps/%s (%s, installed when the "
                          "host started); stop the group's apps, then start them again",
                          id, inst->app_dir, g->name, id, g->slot_dirs[inst->group_index]);
                return supervisor_error_at(&inst->error, SANDBOX_STEP_PREPARE, EBUSY, g->name);
        }
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0 ||
            pipe2(logp, O_CLOEXEC) < 0) {
                r = log_error_errno(negative_errno(), "cannot start %s: %m", id);
                goto fail;
        }
        run = ++g->runs ?: ++g->runs; /* never 0: the runs of the host's start */
        a = (LuaHostApp){.manifest = inst->manifest,
                         .extra_args = inst->extra_args,
                         .channel_fd = chan[1],
                         .log_fd = logp[1]};
        r = luahost_join_build(&a, inst->group_index, run, &msg, &len);
        if (r < 0) {
                log_error_errno(r, "cannot start %s: its join message: %m", id);
                goto fail;
        }
        r = group_ctl_send(g, msg, len, (const int[]){chan[1], logp[1]}, 2);
        chan[1] = safe_close(chan[1]);
        logp[1] = safe_close(logp[1]);
        if (r == -EAGAIN) {
                log_error("cannot start %s: the host of packed group %s has not read its "
                          "control channel (an app holds its thread); try again",
                          id, g->name);
                goto fail;
        }
        if (r < 0) {
                log_error("cannot start %s: the host of packed group %s is ending (its last app "
                          "ended); start %s again once the host has exited",
                          id, g->name, id);
                r = -EAGAIN;
                goto fail;
        }
        /* The host has it (or ends with it queued: then it runs it first). */
        inst->group_run = run;
        r = group_serve_member(g, inst, TAKE_FD(chan[0]), TAKE_FD(logp[0]), true, &inst->error);
        if (r < 0) {
                /* Not served: it must not run unseen. */
                luahost_stop_build(inst->group_index, run, &stop);
                (void)group_ctl_send(g, &stop, sizeof stop, NULL, 0);
                broker_app_detach(inst->broker_app);
                inst->broker_app = NULL;
                pump_close(&inst->out);
                return r;
        }
        if (g->sup->o.output == SUPERVISOR_OUTPUT_LOGS)
                log_info("%s joined packed group %s (pid %d)", id, g->name,
                         (int)g->run.sandbox->pid);
        supervisor_changed(g->sup);
        return 0;
fail:
        for (size_t i = 0; i < 2; i++) {
                safe_close(chan[i]);
                safe_close(logp[i]);
        }
        return supervisor_error_at(&inst->error, SANDBOX_STEP_PREPARE, -r, g->name);
}

int group_start_member(Instance *inst)
{
        Group *g = inst->group;
        int r;

        if (g->state == INSTANCE_RUNNING && g->run.sandbox) {
                r = group_join(g, inst);
                /* Refused: not started, so not one a host start starts either. */
                inst->group_wanted = r >= 0;
                return r;
        }
        /* cellad: the host starts with this member and those still wanted (the
         * autostart's, a restart's); every other installed member gets a slot. */
        if (g->sup->installed_fn)
                group_add_installed(g);
        inst->group_wanted = true;
        return group_start(g);
}

void group_stop_member(Instance *inst, bool kill)
{
        Group *g = inst->group;
        CLuaCtlHeader stop;
        bool others = false;
        int r;

        /* Stopped: a restart of the host (its policy) does not start it again. */
        inst->group_wanted = false;
        for (size_t i = 0; i < g->n_members; i++)
                others |= g->members[i] != inst && g->members[i]->state == INSTANCE_RUNNING;
        if (!others || g->state != INSTANCE_RUNNING || g->ctl_fd < 0) {
                /* The last one: its host ends with it. */
                group_stop(g, kill);
                return;
        }
        /* The host ends it at once (kill or not: a Lua app has no SIGTERM handler);
         * on_watch() records its end, from its channel's hang-up. */
        inst->stop_requested = true;
        luahost_stop_build(inst->group_index, inst->group_run, &stop);
        r = group_ctl_send(g, &stop, sizeof stop, NULL, 0);
        if (r == -EPIPE)
                return; /* ending: the member ends with the host */
        if (r < 0)
                log_error("cannot stop %s: the host of packed group %s has not read its control "
                          "channel (an app holds its thread); try again",
                          inst->manifest->id, g->name);
}

/* The run ends when the host has exited and every pipe from it is drained. */
void group_maybe_finished(Group *g)
{
        Supervisor *s = g->sup;
        const SandboxExit *x;
        double ms;

        if (!s->freeing && g->state == INSTANCE_RUNNING && g->run.sandbox &&
            !g->run.sandbox->exited)
                group_watch_members(g, true); /* a member's log ended: the member may have */
        if (s->freeing || g->state != INSTANCE_RUNNING || !g->run.sandbox ||
            !g->run.sandbox->exited || g->out.open || g->err.open)
                return;
        for (size_t i = 0; i < g->n_members; i++)
                if (g->members[i]->out.open)
                        return;
        if (g->watch_init)
                uv_timer_stop(&g->watch);
        x = sandboxed_reap(&g->run);
        group_release_slots(g);
        ms = (double)(now_monotonic_ns() - g->run.started_ns) / 1e6;
        /* Members still running end with the host: each with its own fault if its
         * record has one, else the host's status. */
        for (size_t i = 0; i < g->n_members; i++) {
                Instance *inst = g->members[i];
                CLuaStatsApp a = {};
                int code;

                if (inst->state != INSTANCE_RUNNING)
                        continue;
                if (x->code != CLD_EXITED)
                        code = SUPERVISOR_SIGNAL_STATUS_BASE + x->status;
                else if (g->run.stats && luastats_app(g->run.stats, inst->group_index, &a) >= 0 &&
                         a.run == inst->group_run &&
                         (a.state == CLUA_APP_EXITED || a.state == CLUA_APP_FAILED))
                        code = (int)a.fault;
                else
                        code = x->status;
                member_exited(inst, code, x->code == CLD_EXITED ? "exited" : "killed", x);
        }
        if (x->code == CLD_EXITED) {
                g->exit_code = x->status;
                if (x->status != 0)
                        log_error("packed group %s: host exited with status %d", g->name,
                                  x->status);
        } else {
                g->exit_code = SUPERVISOR_SIGNAL_STATUS_BASE + x->status;
                if (x->oom_killed)
                        log_error("packed group %s was killed by the OOM killer", g->name);
                else if (!g->stop_requested)
                        log_error("packed group %s was killed by signal %d (%s)", g->name,
                                  x->status, strsignal(x->status));
        }
        supervisor_keeper_drop_group(g);
        supervisor_status(s,
                          json_pack("{s:s, s:s, s:i, s:b, s:I, s:i, s:f}", "event", "group-exited",
                                    "group", g->name, "exit_code", g->exit_code, "oom_killed",
                                    x->oom_killed, "oom_kills", (json_int_t)x->oom_kills, "pid",
                                    (int)g->run.sandbox->pid, "duration_ms", ms));
        sandboxed_release(&g->run);
        g->state = INSTANCE_EXITED;
        group_maybe_restart(g);
        supervisor_changed(s);
}

/* The group's restart policy (luahost_restart()) on the host's exit. */
static void group_maybe_restart(Group *g)
{
        Supervisor *s = g->sup;
        _cleanup_free_ const Manifest **ms = calloc(g->n_members, sizeof *ms);
        InstancePhase state;

        size_t n = 0;

        if (!s->o.boot || g->stop_requested || s->stopping || !ms)
                return;
        /* The members a start of the host starts (not the slots of others). */
        for (size_t i = 0; i < g->n_members; i++)
                if (g->members[i]->group_wanted)
                        ms[n++] = g->members[i]->manifest;
        if (n == 0)
                return;
        switch (sandboxed_restart_decide(&g->run, luahost_restart(ms, n))) {
        case RESTART_LATER:
                state = INSTANCE_RESTARTING;
                break;
        case RESTART_GIVE_UP:
                state = INSTANCE_FAILED;
                break;
        default:
                return;
        }
        g->state = state;
        for (size_t i = 0; i < g->n_members; i++)
                if (g->members[i]->group_wanted)
                        g->members[i]->state = state;
}

void group_stop(Group *g, bool kill)
{
        g->stop_requested = true;
        for (size_t i = 0; i < g->n_members; i++)
                g->members[i]->stop_requested = true;
        switch (g->state) {
        case INSTANCE_RESTARTING:
                sandboxed_cancel_restart(&g->run);
                g->state = INSTANCE_EXITED;
                for (size_t i = 0; i < g->n_members; i++)
                        if (g->members[i]->state == INSTANCE_RESTARTING)
                                g->members[i]->state = INSTANCE_STOPPED;
                supervisor_changed(g->sup);
                return;
        case INSTANCE_RUNNING:
                sandboxed_stop(&g->run, kill);
                return;
        default:
                return;
        }
}

json_t *group_stats(Group *g, const char *only)
{
        _cleanup_free_ const char **ids = NULL;
        CLuaStatsApp a;
        json_t *o;
        bool member = !only;

        if (g->state != INSTANCE_RUNNING || !g->run.stats || !g->run.sandbox)
                return NULL;
        /* By their records in the stats file (an adopted host's members may not
         * fill every record: NULL for one that ended before the adoption). */
        ids = calloc(g->run.stats->n_apps, sizeof *ids);
        if (!ids)
                return NULL;
        for (size_t i = 0; i < g->n_members; i++) {
                const char *id = g->members[i]->manifest->id;

                /* Only the members that ran in this host, each at its own record
                 * (its slot; an adopted host's too): the record of a slot nothing
                 * ran in is no app's. */
                if (!g->members[i]->group_served)
                        continue;
                /* A member running again whose JOIN the host has not taken yet: its
                 * record is still its last run's, not this one's. */
                if (g->members[i]->state == INSTANCE_RUNNING &&
                    luastats_app(g->run.stats, g->members[i]->group_index, &a) >= 0 &&
                    a.run != g->members[i]->group_run)
                        continue;
                if (g->members[i]->group_index < g->run.stats->n_apps)
                        ids[g->members[i]->group_index] = id;
                member |= only && strcmp(only, id) == 0;
        }
        if (!member)
                return NULL;
        o = luastats_json(g->run.stats, ids, only);
        if (!o)
                return NULL;
        json_object_set_new(o, "host", json_string(g->name));
        json_object_set_new(o, "group", json_string(g->name));
        json_object_set_new(o, "pid", json_integer(g->run.sandbox->pid));
        return o;
}

int group_adopted(Group *g, int out_fd, int err_fd, int ctl_fd, uint32_t n_slots)
{
        Supervisor *s = g->sup;
        int r;

        group_release_slots(g);
        if (ctl_fd >= 0 && n_slots > 0) {
                g->slot_dirs = calloc((size_t)n_slots + 1, sizeof *g->slot_dirs);
                if (g->slot_dirs) {
                        g->n_slots = n_slots;
                        g->ctl_fd = TAKE_FD(ctl_fd);
                        /* Shut already by the cellad that made it; again, as a taken fd
                         * is input: nothing the host writes is ever read. */
                        (void)shutdown(g->ctl_fd, SHUT_RD);
                        g->runs = 0;
                        for (size_t i = 0; i < g->n_members; i++) {
                                Instance *m = g->members[i];

                                if (m->group_index < n_slots && !g->slot_dirs[m->group_index])
                                        g->slot_dirs[m->group_index] = strdup(m->app_dir);
                                g->runs = MAX(g->runs, m->group_run);
                        }
                }
        }
        safe_close(ctl_fd);
        r = group_open_log(g);
        if (r >= 0) {
                r = pump_start(s, NULL, g, &g->out, out_fd, s->out_outlet, g->log);
                if (r >= 0)
                        out_fd = -EBADF;
        }
        if (r >= 0) {
                r = pump_start(s, NULL, g, &g->err, err_fd, s->err_outlet, g->log);
                if (r >= 0)
                        err_fd = -EBADF;
        }
        if (r >= 0)
                r = sandboxed_watch(&g->run);
        safe_close(out_fd);
        safe_close(err_fd);
        if (r < 0) {
                log_error("cannot watch packed group %s: %s", g->name, uv_strerror(r));
                group_abort(g);
                g->state = INSTANCE_FAILED;
                return r;
        }
        g->state = INSTANCE_RUNNING;
        g->stop_requested = false;
        group_watch_start(g);
        return 0;
}

static void run_exited(void *owner)
{
        group_maybe_finished(owner);
}

static int run_start(void *owner)
{
        return group_start(owner);
}

/* Each member's record, with the group's name. */
static void run_audit(void *owner, const char *event, json_t *fields)
{
        Group *g = owner;

        for (size_t i = 0; fields && i < g->n_members; i++) {
                json_t *o;

                if (!g->members[i]->group_wanted)
                        continue; /* a slot only: the host's run is not its */
                o = json_deep_copy(fields);
                if (o)
                        json_object_set_new(o, "group", json_string(g->name));
                supervisor_audit(g->sup, g->members[i]->manifest->id, event, o);
        }
        json_decref(fields);
}

static void run_status(void *owner, json_t *fields)
{
        Group *g = owner;

        for (size_t i = 0; fields && i < g->n_members; i++) {
                json_t *o;

                if (!g->members[i]->group_wanted)
                        continue;
                o = json_deep_copy(fields);
                if (o) {
                        json_object_set_new(o, "app", json_string(g->members[i]->manifest->id));
                        json_object_set_new(o, "group", json_string(g->name));
                }
                supervisor_status(g->sup, o);
        }
        json_decref(fields);
}

static const SandboxedRunOps group_run_ops = {
        .exited = run_exited,
        .start = run_start,
        .audit = run_audit,
        .status = run_status,
};

void group_free(Group *g)
{
        if (!g)
                return;
        group_release_slots(g);
        sandboxed_done(&g->run);
        g->log = applog_close(g->log);
        free(g->members);
        free(g->label);
        free(g->name);
        free(g);
}
