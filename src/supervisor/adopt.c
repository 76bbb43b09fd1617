/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The supervisor's side of the keeper (adopt.h, src/keeper/keeper.h): handing each
 * app's fds over as it starts, dropping them as it ends, and adopting the apps an
 * earlier kernel on the same state directory left running.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/time-util.h"
#include "keeper/keeper.h"
#include "supervisor/adopt.h"
#include "supervisor/lifecycle.h"
#include "supervisor/run.h"
#include "supervisor/supervisor-internal.h"

struct SupervisorKeeper {
        Supervisor *sup;
        int fd;          /* the connection to cella-keeper, or -EBADF once lost */
        uv_poll_t *poll; /* on fd: the keeper never speaks first, so readable is its end */
        pid_t pid;       /* its pid: the owner in the apps' cgroup leaf names */
        char *path;      /* the executable, to start another if it goes */
        unsigned grace_s;
        /* The owner tag of the apps' cgroup leaves: the state directory's device and
         * inode ("d<dev>i<ino>", hexadecimal), the same for every cellad and keeper
         * of it (cgroup_manager_set_owner()). */
        char tag[CGROUP_OWNER_TAG_MAX + 1];
        bool reholding; /* keeper_lost() hands every running app to a new keeper */
        bool bye;       /* told to go (an orderly stop): never replaced again */
        bool adopting;  /* supervisor_adopt_all() runs: the keeper has the states already */
};

bool supervisor_keeper_attached(const Supervisor *s)
{
        return s->keeper && s->keeper->fd >= 0;
}

static void keeper_lost(Supervisor *s, int r);

static void poll_freed(uv_handle_t *h)
{
        free(h);
}

/* Stops watching k's connection and closes it. */
static void keeper_disconnect(SupervisorKeeper *k)
{
        if (k->poll) {
                uv_poll_stop(k->poll);
                uv_close((uv_handle_t *)k->poll, poll_freed);
                k->poll = NULL;
        }
        k->fd = safe_close(k->fd);
}

static void on_keeper(uv_poll_t *h, int status, int events)
{
        SupervisorKeeper *k = h->data;

        /* Nothing comes unasked: this is its end (EOF, a reset, an error). */
        keeper_lost(k->sup, status < 0 ? status : -ECONNRESET);
}

/* Connects (or starts and connects) k for s; watches the connection, so that a keeper that dies is
 * replaced at once, not at the next start or exit of an app. */
static int keeper_connect_for(Supervisor *s, SupervisorKeeper *k)
{
        pid_t pid = 0;
        int fd = keeper_ensure(k->path, s->o.state_dir, k->grace_s, &pid), r;

        if (fd < 0)
                return fd;
        k->fd = fd;
        k->pid = pid;
        if (s->o.keeper_cb)
                s->o.keeper_cb(pid, s->o.keeper_userdata);
        k->poll = calloc(1, sizeof *k->poll);
        if (!k->poll)
                return 0; /* unwatched: a loss is seen at the next hold or drop */
        r = uv_poll_init(&s->loop, k->poll, fd);
        if (r < 0) {
                free(k->poll);
                k->poll = NULL;
                return 0;
        }
        k->poll->data = k;
        (void)uv_poll_start(k->poll, UV_READABLE | UV_DISCONNECT, on_keeper);
        return 0;
}

static bool holdable(const Instance *inst);
static uint64_t run_generation(const Instance *inst);

/* A lifecycle listener: a held app's state changed (its role or its freeze), which
 * the keeper's record of it must follow, so that a next cellad adopts it in that
 * state. */
static void on_state_changed(Instance *inst, InstanceState from, InstanceState to, void *userdata)
{
        SupervisorKeeper *k = userdata;
        int r;

        (void)from;
        if (k->adopting || k->bye || k->fd < 0 || !instance_state_is_running(to) || !holdable(inst))
                return;
        r = keeper_note(k->fd, inst->manifest->id, run_generation(inst), inst->life.role,
                        inst->life.frozen);
        if (r < 0)
                keeper_lost(inst->sup, r); /* hands every app again, in its state now */
}

int supervisor_keeper_start(Supervisor *s, const char *keeper_path, unsigned grace_s)
{
        SupervisorKeeper *k;
        int r;

        if (s->keeper)
                return 0;
        k = calloc(1, sizeof *k);
        if (!k)
                return log_error_errno(-ENOMEM, "cannot start the keeper: %m");
        k->sup = s;
        k->fd = -EBADF;
        k->grace_s = grace_s;
        k->path = strdup(keeper_path);
        if (!k->path) {
                free(k);
                return log_error_errno(-ENOMEM, "cannot start the keeper: %m");
        }
        s->keeper = k;
        r = lifecycle_listen(s, on_state_changed, k);
        if (r < 0)
                return log_error_errno(r, "cannot start the keeper: %m");
        {
                struct stat st;

                if (stat(s->o.state_dir, &st) < 0)
                        return log_error_errno(negative_errno(), "cannot start the keeper: %s: %m",
                                               s->o.state_dir);
                snprintf(k->tag, sizeof k->tag, "d%llxi%llx", (unsigned long long)st.st_dev,
                         (unsigned long long)st.st_ino);
                r = cgroup_manager_set_owner(s->cgm, k->tag);
                if (r < 0)
                        return log_error_errno(r, "cannot start the keeper: %m");
        }
        r = keeper_connect_for(s, k);
        if (r < 0)
                return log_error_errno(r,
                                       "cannot start the keeper %s for %s: %m; the apps will not "
                                       "outlive this cellad",
                                       keeper_path, s->o.state_dir);
        log_debug("keeper: pid %d, grace %u s", (int)k->pid, grace_s);
        return 0;
}

/* The set's generation: its run's start (ms) and its init's pid, distinct for every
 * run of an id (the keeper drops a set only of the generation it is told). */
static uint64_t run_generation(const Instance *inst)
{
        const SandboxedRun *run = inst->group ? &inst->group->run : &inst->run;

        return ((uint64_t)run->started_ms << 22) | ((uint64_t)run->sandbox->pid & 0x3fffffu);
}

/*
 * The record and the two fds every set has, for inst running in run (its own, or
 * its packed group's host's) as uid: fds not named here are -EBADF. Returns 0 or
 * -EINVAL (a string too long for the record).
 */
static int set_base(const Instance *inst, const SandboxedRun *run, uid_t uid, KeeperSet *set)
{
        const Sandbox *sb = run->sandbox;
        const char *unified = sb->cgroup ? cgroup_path(sb->cgroup, "") : NULL;
        const char *name = sb->cgroup ? cgroup_name(sb->cgroup) : "";
        KeeperRecord *rec = &set->rec;

        *set = (KeeperSet){};
        for (unsigned i = 0; i < _KEEPER_FD_MAX; i++)
                set->fds[i] = -EBADF;
        if (strlen(inst->manifest->id) >= sizeof rec->id ||
            strlen(name) >= sizeof rec->cgroup_name ||
            (unified && strlen(unified) >= sizeof rec->cgroup_kill) ||
            strlen(inst->app_dir) >= sizeof rec->app_dir)
                return -EINVAL;
        strcpy(rec->id, inst->manifest->id);
        strcpy(rec->cgroup_name, name);
        if (unified)
                strcpy(rec->cgroup_kill, unified);
        strcpy(rec->app_dir, inst->app_dir);
        rec->generation = run_generation(inst);
        rec->pid = sb->pid;
        rec->app_pid = sb->app_pid;
        rec->started_ms = run->started_ms;
        rec->uid = uid;
        rec->restarts = run->restarts;
        rec->role = inst->life.role;
        set->fds[KEEPER_FD_PIDFD] = sb->pidfd;
        set->fds[KEEPER_FD_CTL] = sb->ctl_fd;
        return 0;
}

/*
 * The set of a member of a packed Lua group: its host's pidfd and ctl only, so that
 * the next cellad knows the app ran and can say why it does not adopt it (a
 * group's host keeps the parent-death signal and ends with the cellad that started
 * it; after a re-exec it is killed then), instead of losing it without a word.
 * Returns 0 or -EINVAL (a string too long for the record).
 */
static int member_set_of(const Instance *inst, KeeperSet *set)
{
        const Group *g = inst->group;
        int r = set_base(inst, &g->run, g->run.uid, set);

        if (r < 0)
                return r;
        set->rec.fds = KEEPER_FDS_REQUIRED;
        return 0;
}

/* What inst's running sandbox is, as a set (fds borrowed). Returns 0 or -EINVAL
 * (a string too long for the record). */
static int set_of(const Instance *inst, KeeperSet *set)
{
        const Sandbox *sb = inst->run.sandbox;
        KeeperRecord *rec = &set->rec;
        int r = set_base(inst, &inst->run, inst->uid, set);

        if (r < 0)
                return r;
        rec->init_exec = sb->init_exec;
        rec->oom_kills_before = sb->oom_kills_before;
        rec->frozen = inst->life.frozen;
        set->fds[KEEPER_FD_NOTIFY] = sb->seccomp_notify_fd;
        set->fds[KEEPER_FD_CHANNEL] = broker_app_channel_fd(inst->broker_app);
        set->fds[KEEPER_FD_STDOUT] = inst->out.open ? inst->out.from : -EBADF;
        set->fds[KEEPER_FD_STDERR] = inst->err.open ? inst->err.from : -EBADF;
        set->fds[KEEPER_FD_PTY] = inst->pty_hold;
        set->fds[KEEPER_FD_STATS] = inst->run.stats ? inst->run.stats->fd : -EBADF;
        for (unsigned i = 0; i < _KEEPER_FD_MAX; i++)
                if (set->fds[i] >= 0)
                        rec->fds |= 1u << i;
        return 0;
}

/* Whether inst runs alone in a sandbox that runs and is served: one to hold. */
static bool holdable(const Instance *inst)
{
        return !inst->group && inst->state == INSTANCE_RUNNING && inst->run.sandbox &&
               !inst->run.sandbox->exited && inst->broker_app;
}

static int hold(Instance *inst)
{
        KeeperSet set;
        int r = inst->group ? member_set_of(inst, &set) : set_of(inst, &set);

        if (r < 0)
                return r;
        return keeper_hold(inst->sup->keeper->fd, &set);
}

/*
 * The keeper went (its socket failed with r): its copies closed, so the apps now
 * live by ours alone. Starts another and hands it every running app again (their
 * leaves are named after the state directory, not the keeper). Failing that, the apps run on as a
 * kernel's without a keeper: they die with it.
 */
static void keeper_lost(Supervisor *s, int r)
{
        SupervisorKeeper *k = s->keeper;
        size_t n = 0;

        if (k->reholding || k->bye)
                return;
        log_warning_errno(r, "the keeper (pid %d) is gone (%m); starting another", (int)k->pid);
        keeper_disconnect(k);
        r = keeper_connect_for(s, k);
        if (r < 0) {
                log_error_errno(r, "cannot start another keeper: %m; the apps will not outlive "
                                   "this cellad");
                return;
        }
        k->reholding = true;
        for (size_t i = 0; i < s->n_apps; i++) {
                if (!holdable(s->apps[i]))
                        continue;
                r = hold(s->apps[i]);
                if (r < 0) {
                        log_error_errno(r, "%s: cannot hand it to the new keeper: %m",
                                        s->apps[i]->manifest->id);
                        break;
                }
                n++;
        }
        k->reholding = false;
        if (r >= 0)
                log_info("handed %zu running app(s) to the new keeper (pid %d)", n, (int)k->pid);
}

void supervisor_keeper_hold(Instance *inst)
{
        Supervisor *s = inst->sup;
        int r;

        if (!s->keeper || s->keeper->bye)
                return;
        if (inst->group) {
                /* A packed member: a record of it, for the next cellad to refuse
                 * it with its reason (member_set_of()). Not handed again to a
                 * keeper that replaces a lost one. */
                if (s->keeper->fd >= 0 && inst->group->run.sandbox &&
                    inst->group->run.sandbox->pidfd >= 0 && inst->group->run.sandbox->ctl_fd >= 0)
                        (void)hold(inst);
                return;
        }
        if (!holdable(inst))
                return;
        if (s->keeper->fd < 0) {
                keeper_lost(s, -ENOTCONN); /* hands this one too */
                return;
        }
        r = hold(inst);
        if (r == -EINVAL || r == -ENOSPC)
                log_error_errno(r,
                                "%s: the keeper refused it (%m): it will not outlive this "
                                "cellad",
                                inst->manifest->id);
        else if (r < 0)
                keeper_lost(s, r);
}

void supervisor_keeper_drop(Instance *inst)
{
        Supervisor *s = inst->sup;
        int r;

        if (!supervisor_keeper_attached(s) ||
            !(inst->group ? inst->group->run.sandbox : inst->run.sandbox))
                return;
        r = keeper_drop(s->keeper->fd, inst->manifest->id, run_generation(inst));
        if (r < 0)
                keeper_lost(s, r);
}

void supervisor_keeper_bye(Supervisor *s)
{
        SupervisorKeeper *k = s->keeper;
        _cleanup_close_ int pidfd = -EBADF;
        int r;

        if (!k || k->fd < 0)
                return;
        k->bye = true;
        pidfd = (int)syscall(SYS_pidfd_open, k->pid, 0);
        r = keeper_bye(k->fd);
        if (r < 0)
                log_debug("keeper: bye: %s", strerror(-r));
        keeper_disconnect(k);
        /* Gone before the daemon leaves its cgroup leaf, which the keeper shares
         * (an rmdir of a leaf a process is still in fails). */
        if (r >= 0 && pidfd >= 0) {
                struct pollfd p = {.fd = pidfd, .events = POLLIN};

                if (RETRY_EINTR(poll(&p, 1, KEEPER_REPLY_TIMEOUT_MS)) != 1)
                        log_warning("the keeper (pid %d) did not exit after it was told to",
                                    (int)k->pid);
        }
}

void supervisor_keeper_close(Supervisor *s)
{
        SupervisorKeeper *k = s->keeper;

        if (!k)
                return;
        lifecycle_unlisten(s, on_state_changed, k);
        /* Every app has been stopped (or killed) by now: the keeper has nothing
         * left to keep and goes. */
        supervisor_keeper_bye(s);
        /* The loop and its handles are closed by now (supervisor_free()'s walk closed
         * a poll still open, with no callback): its memory goes here. */
        free(k->poll);
        safe_close(k->fd);
        free(k->path);
        free(k);
        s->keeper = NULL;
}

/* ---- adoption ------------------------------------------------------------------------ */

/* Kills what runs in set's sandbox (its init, so its pid namespace, and its cgroup
 * leaf, removed), reaps init if it is ours, and drops the set from the keeper. */
static void kill_set(Supervisor *s, KeeperSet *set)
{
        const KeeperRecord *rec = &set->rec;
        int pidfd = set->fds[KEEPER_FD_PIDFD];

        if (pidfd >= 0)
                (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        if (rec->cgroup_name[0]) {
                Cgroup *cg = NULL;

                if (cgroup_open(s->cgm, rec->cgroup_name, &cg) >= 0) {
                        (void)cgroup_kill(cg);
                        cgroup_destroy(cg); /* waits for its tasks to leave, removes it */
                }
        }
        if (pidfd >= 0) {
                siginfo_t si;

                /* Ours after a re-exec: dead now (its cgroup is empty, or it had the
                 * SIGKILL), so this returns at once; not ours: ECHILD at once. */
                (void)RETRY_EINTR(waitid(P_PIDFD, pidfd, &si, WEXITED));
        }
        if (supervisor_keeper_attached(s))
                (void)keeper_drop(s->keeper->fd, rec->id, rec->generation);
        keeper_set_done(set);
}

static void refuse(Supervisor *s, KeeperSet *set, int r, const char *why)
{
        log_error("%s: cannot adopt it (pid %d, left by an earlier cellad): %s%s%s; stopping it",
                  set->rec.id, (int)set->rec.pid, why, r < 0 ? ": " : "",
                  r < 0 ? strerror(-r) : "");
        supervisor_audit(s, set->rec.id, AUDIT_EVENT_LIFECYCLE,
                         json_pack("{s:s, s:i, s:s}", "what", "adopt-refused", "pid",
                                   (int)set->rec.pid, "reason", why));
        kill_set(s, set);
}

/* A Lua app's stats file as the earlier kernel made it (luastats_new()): a sealed
 * memfd of the size for one app, mapped read-only again. NULL if it is not that. */
static LuaStats *stats_adopt(int fd)
{
        size_t size = clua_stats_size(1);
        const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
        struct stat st;
        LuaStats *ls;
        void *map;

        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != size ||
            (fcntl(fd, F_GET_SEALS) & seals) != seals)
                return NULL;
        map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
                return NULL;
        ls = malloc(sizeof *ls);
        if (!ls) {
                munmap(map, size);
                return NULL;
        }
        *ls = (LuaStats){.fd = fd, .map = map, .size = size, .n_apps = 1};
        return ls;
}

/* Takes set's fd i out of the set (-EBADF when it has none). */
static int take_fd(KeeperSet *set, KeeperFd i)
{
        return TAKE_FD(set->fds[i]);
}

/* Whether cg is frozen, as the freezer cgroup_freeze() uses says: cgroup2's
 * cgroup.freeze where the leaf has a cgroup2 directory (v2, hybrid), else v1's
 * freezer.state (FREEZING counts as frozen). Returns 1, 0 or -errno. */
static int cgroup_is_frozen(const Cgroup *cg)
{
        _cleanup_free_ char *st = NULL;
        uint64_t v;
        int r;

        r = cgroup_read_knob_u64(cgroup_path(cg, ""), "cgroup.freeze", &v);
        if (r >= 0)
                return v != 0;
        if (r != -ENOENT)
                return r;
        r = cgroup_read_knob(cgroup_path(cg, "freezer"), "freezer.state", &st);
        if (r < 0)
                return r;
        return strncmp(st, "THAWED", 6) != 0;
}

/*
 * Gives inst, being adopted into sb, the role and freeze its record says it had
 * (keeper.h), so that it comes back in the state it was in: foreground, visible,
 * service or background, frozen by the user (frozen) or by the kernel (cached). A
 * value out of range is a record of another cella: the default role, not frozen.
 * The cgroup is made to match the record (frozen, or thawed: a freeze whose note
 * never reached the keeper is undone), so the state said is the state it is in.
 */
static void adopt_state(Instance *inst, Sandbox *sb, const KeeperRecord *rec)
{
        bool service = inst->manifest->kind == MANIFEST_KIND_SERVICE;
        InstanceRole role = rec->role <= INSTANCE_ROLE_BACKGROUND ? (InstanceRole)rec->role
                                                                  : INSTANCE_ROLE_NONE;
        InstanceFreeze frozen = rec->frozen <= INSTANCE_FREEZE_KERNEL ? (InstanceFreeze)rec->frozen
                                                                      : INSTANCE_FREEZE_NONE;
        int r;

        /* A service is one whatever the record says; an app is not one. */
        if (service)
                role = INSTANCE_ROLE_SERVICE;
        else if (role == INSTANCE_ROLE_SERVICE)
                role = INSTANCE_ROLE_NONE;
        if (role == INSTANCE_ROLE_FOREGROUND)
                for (size_t i = 0; i < inst->sup->n_apps; i++)
                        if (inst->sup->apps[i] != inst &&
                            inst->sup->apps[i]->life.role == INSTANCE_ROLE_FOREGROUND &&
                            instance_state_is_running(instance_state(inst->sup->apps[i])))
                                role = INSTANCE_ROLE_VISIBLE; /* at most one foreground */
        inst->life.role = role;
        inst->life.frozen = INSTANCE_FREEZE_NONE;
        if (!sb->cgroup)
                return;
        /* A read of the freezer costs a few µs, a write and the wait for it ~0.7 ms
         * (bench/adopt): written only when it differs or cannot be read. */
        r = cgroup_is_frozen(sb->cgroup);
        if (r < 0 || (r > 0) != (frozen != INSTANCE_FREEZE_NONE))
                r = cgroup_freeze(sb->cgroup, frozen != INSTANCE_FREEZE_NONE);
        if (r < 0) {
                log_warning_errno(r, "%s: cannot %s its cgroup as its record says: %m",
                                  inst->manifest->id, frozen ? "freeze" : "thaw");
                return;
        }
        inst->life.frozen = frozen;
}

/*
 * Serves inst, just registered, with the sandbox sb rebuilt from set: output,
 * watch, grants, channel. Returns 0 or a negative errno with inst->error (printed).
 */
static int serve_adopted(Instance *inst, Sandbox *sb, KeeperSet *set)
{
        Supervisor *s = inst->sup;
        const KeeperRecord *rec = &set->rec;
        uint64_t now_real = (uint64_t)now_realtime_ms(), now_mono = now_monotonic_ns();
        BrokerAppInfo info = {
                .manifest = inst->manifest,
                .app_dir = inst->app_dir,
                .data_dir = inst->data_dir,
                .signed_ok = inst->signed_ok,
        };
        int r;

        inst->run.sandbox = sb;
        inst->uid = inst->run.uid = rec->uid;
        inst->started_ms = inst->run.started_ms = rec->started_ms;
        /* Its monotonic start, as far as the wall clock tells (for durations). */
        inst->started_ns = inst->run.started_ns =
                now_mono - MIN(now_mono, (now_real - MIN(now_real, (uint64_t)rec->started_ms)) *
                                                 NSEC_PER_MSEC);
        inst->run.restarts = rec->restarts;
        inst->state = INSTANCE_RUNNING;
        adopt_state(inst, sb, rec);
        if (inst->manifest->runtime == MANIFEST_RUNTIME_LUA) {
                inst->run.stats = stats_adopt(set->fds[KEEPER_FD_STATS]);
                if (inst->run.stats)
                        set->fds[KEEPER_FD_STATS] = -EBADF;
        }
        r = instance_open_log(inst, &inst->error);
        if (r < 0)
                return r;
        r = pump_start(s, inst, NULL, &inst->out, set->fds[KEEPER_FD_STDOUT], s->out_outlet,
                       inst->log);
        if (r >= 0) {
                set->fds[KEEPER_FD_STDOUT] = -EBADF;
                r = pump_start(s, inst, NULL, &inst->err, set->fds[KEEPER_FD_STDERR], s->err_outlet,
                               inst->log);
        }
        if (r >= 0) {
                set->fds[KEEPER_FD_STDERR] = -EBADF;
                r = sandboxed_watch(&inst->run);
        }
        if (r < 0) {
                log_error("cannot watch %s: %s", inst->manifest->id, uv_strerror(r));
                return supervisor_error(&inst->error, SUPERVISOR_STEP_INTERNAL, r, "watch");
        }
        r = instance_install(inst, &inst->error);
        if (r < 0)
                return r;
        sandboxed_broker_info(&inst->run, &info);
        r = broker_app_attach(s->broker, &info, take_fd(set, KEEPER_FD_CHANNEL), &inst->broker_app);
        if (r < 0) {
                log_error_errno(r, "cannot serve the channel of %s: %m", inst->manifest->id);
                return supervisor_error(&inst->error, SUPERVISOR_STEP_INTERNAL, r, "channel");
        }
        /* The first frame of this kernel on the channel, written before the loop
         * reads it (docs/protocol.md, "When the kernel restarts"): the app's pending
         * calls fail, and it makes its timers and subscriptions again. The queue is
         * empty, so it is not dropped; a channel the app no longer reads holds it in
         * the broker's queue. */
        r = broker_app_kernel_restarted(inst->broker_app, (int64_t)now_real);
        if (r < 0)
                log_warning_errno(r, "%s: cannot tell it the kernel restarted: %m",
                                  inst->manifest->id);
        return 0;
}

/* The fds an app's set must have to be adopted by a kernel whose apps' output goes
 * to logs: its init, its ctl, its channel and its two pipes. */
#define ADOPT_FDS_REQUIRED                                                                         \
        (KEEPER_FDS_REQUIRED | (1u << KEEPER_FD_CHANNEL) | (1u << KEEPER_FD_STDOUT) |              \
         (1u << KEEPER_FD_STDERR))

/* Adopts one set (consumed). Returns 1 adopted, 0 refused (killed), or -ENOMEM. */
static int adopt_one(Supervisor *s, KeeperSet *set, char ***adopted)
{
        const KeeperRecord *rec = &set->rec;
        _cleanup_free_ char *real = NULL;
        _cleanup_(sandbox_freep) Sandbox *sb = NULL;
        SupervisorError err = {};
        SandboxAdoption a;
        const char *state;
        Instance *inst = NULL;
        Manifest *m = NULL;
        size_t before;
        int r;

        if (supervisor_find(s, rec->id)) {
                refuse(s, set, 0, "an app of that id is registered already");
                return 0;
        }
        r = supervisor_load_manifest(rec->app_dir, &real, &m, NULL);
        if (r < 0) {
                refuse(s, set, r, "its folder or manifest is gone or does not load");
                return 0;
        }
        if (strcmp(m->id, rec->id) != 0) {
                manifest_free(m);
                refuse(s, set, 0, "its folder now holds another app");
                return 0;
        }
        if (m->isolation == MANIFEST_ISOLATION_PACKED) {
                manifest_free(m);
                refuse(s, set, 0,
                       "it ran in a packed Lua group, whose host ends with the cellad that "
                       "started it (packed groups are not adopted); its restart policy applies");
                return 0;
        }
        /* After the packed check: a packed member's record has its host's pidfd and
         * ctl only (member_set_of()). */
        if ((rec->fds & ADOPT_FDS_REQUIRED) != ADOPT_FDS_REQUIRED) {
                manifest_free(m);
                refuse(s, set, 0, "its fd set is incomplete");
                return 0;
        }
        a = (SandboxAdoption){
                .pid = rec->pid,
                .app_pid = rec->app_pid,
                .pidfd = take_fd(set, KEEPER_FD_PIDFD),
                .ctl_fd = take_fd(set, KEEPER_FD_CTL),
                .seccomp_notify_fd = take_fd(set, KEEPER_FD_NOTIFY),
                .cgroups = rec->cgroup_name[0] ? s->cgm : NULL,
                .cgroup_name = rec->cgroup_name,
                .oom_kills_before = rec->oom_kills_before,
                .init_exec = rec->init_exec,
        };
        /* Kept to kill it by if the sandbox cannot be rebuilt. */
        set->fds[KEEPER_FD_PIDFD] = fcntl(a.pidfd, F_DUPFD_CLOEXEC, 3);
        r = sandbox_adopt(&a, &sb);
        if (r < 0) {
                manifest_free(m);
                refuse(s, set, r, "its sandbox's fds are not what they should be");
                return 0;
        }
        set->fds[KEEPER_FD_PIDFD] = safe_close(set->fds[KEEPER_FD_PIDFD]);
        before = s->n_apps;
        r = supervisor_add(s, real, m, NULL, 0, &inst, &err);
        if (r < 0) {
                /* Its claim (or the state) refused it: registered and failed, or not
                 * registered at all. Either way, it does not run unserved. */
                if (s->n_apps > before) {
                        inst = s->apps[s->n_apps - 1];
                        inst->state = INSTANCE_FAILED;
                        inst->error = err;
                        inst->exit_code = supervisor_exit_code(s, &err);
                }
                log_error("%s: cannot adopt it: the reason is above; stopping it", rec->id);
                sb = sandbox_free(sb);
                kill_set(s, set);
                return 0;
        }
        r = serve_adopted(inst, TAKE_PTR(sb), set);
        if (r < 0) {
                sandboxed_abort(&inst->run);
                broker_app_detach(inst->broker_app);
                inst->broker_app = NULL;
                pump_close(&inst->out);
                pump_close(&inst->err);
                inst->state = INSTANCE_FAILED;
                inst->exit_code = supervisor_exit_code(s, &inst->error);
                log_error("%s: cannot adopt it: the reason is above; stopped", rec->id);
                kill_set(s, set);
                return 0;
        }
        if (inst->run.sandbox->cgroup &&
            strv_extend(adopted, cgroup_name(inst->run.sandbox->cgroup)) < 0)
                return -ENOMEM;
        state = instance_state_to_string(instance_state(inst));
        supervisor_audit(s, rec->id, AUDIT_EVENT_LIFECYCLE,
                         json_pack("{s:s, s:i, s:I, s:I, s:s}", "what", "adopted", "pid",
                                   (int)rec->pid, "uid", (json_int_t)rec->uid, "started_ms",
                                   (json_int_t)rec->started_ms, "state", state));
        supervisor_status(s, json_pack("{s:s, s:s, s:i, s:I, s:i, s:s}", "event", "adopted", "app",
                                       rec->id, "pid", (int)rec->pid, "uid", (json_int_t)rec->uid,
                                       "restarts", (int)rec->restarts, "state", state));
        log_info("%s: adopted (pid %d, %s)", rec->id, (int)rec->pid, state);
        keeper_set_done(set);
        supervisor_changed(s);
        return 1;
}

/* Whether the process pid has exited (gone, or a zombie: its pidfd is readable). */
static bool keeper_exited(pid_t pid)
{
        _cleanup_close_ int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        struct pollfd p = {.fd = fd, .events = POLLIN};

        if (fd < 0)
                return errno == ESRCH;
        return RETRY_EINTR(poll(&p, 1, 0)) == 1;
}

/*
 * Makes sure the keeper pid is gone: a keeper we cannot speak with (one of
 * another version of cella, or a broken one) must not hold apps nobody serves, nor
 * keep the next keeper from its socket. SIGTERM, with no client connected, makes
 * it kill what it holds and exit (cella-keeper.c); waits for that at most
 * KEEPER_REPLY_TIMEOUT_MS, then SIGKILLs it (its sandboxes then end by the ctl
 * hangup).
 */
static void keeper_stop(pid_t pid)
{
        _cleanup_close_ int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        struct pollfd p;

        if (fd < 0)
                return;
        (void)syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0);
        p = (struct pollfd){.fd = fd, .events = POLLIN};
        if (RETRY_EINTR(poll(&p, 1, KEEPER_REPLY_TIMEOUT_MS)) == 1)
                return;
        log_warning("the keeper (pid %d) did not stop within %d ms; killing it", (int)pid,
                    KEEPER_REPLY_TIMEOUT_MS);
        (void)syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
}

int supervisor_adopt_all(Supervisor *s, size_t *ret_refused)
{
        _cleanup_strv_free_ char **adopted = NULL;
        KeeperSet *sets = NULL;
        size_t n = 0, n_adopted = 0, n_refused = 0;
        int r;

        *ret_refused = 0;
        if (!supervisor_keeper_attached(s))
                return 0;
        r = supervisor_ready(s, NULL);
        if (r < 0)
                return r;
        s->keeper->adopting = true;
        r = keeper_take(s->keeper->fd, &sets, &n);
        if ((r == -ECONNRESET || r == -EPIPE) && keeper_exited(s->keeper->pid)) {
                /* It was exiting as we connected (its last cellad went and left
                 * nothing to keep: a re-exec with no app running): a new one. */
                keeper_disconnect(s->keeper);
                r = keeper_connect_for(s, s->keeper);
                if (r >= 0)
                        r = keeper_take(s->keeper->fd, &sets, &n);
        }
        if (r < 0) {
                /* Never left running unserved: that keeper goes, killing what it
                 * holds (keeper_stop()), and a new one serves the apps from now on. */
                log_error_errno(r,
                                "cannot take the apps back from the keeper (pid %d): %m; "
                                "they are stopped",
                                (int)s->keeper->pid);
                keeper_disconnect(s->keeper);
                keeper_stop(s->keeper->pid);
                if (keeper_connect_for(s, s->keeper) < 0)
                        log_error("cannot start another keeper: the apps will not outlive this "
                                  "cellad");
                s->keeper->adopting = false;
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                if (r >= 0) {
                        r = adopt_one(s, &sets[i], &adopted);
                        if (r > 0)
                                n_adopted++;
                        else if (r == 0)
                                n_refused++;
                }
                keeper_set_done(&sets[i]);
        }
        free(sets);
        s->keeper->adopting = false;
        if (r < 0)
                return log_error_errno(r, "cannot adopt the apps: %m");
        /* What is left under cella's root that nobody serves: the leaves of apps
         * whose fds never reached the keeper (cellad died in between) or whose
         * keeper died, and of kernels that are gone. */
        r = cgroup_sweep_owned(s->cgm, s->keeper->tag, adopted);
        if (r > 0)
                log_info("removed %d cgroup(s) of apps no cellad serves any more", r);
        else if (r < 0)
                log_warning_errno(r, "cannot sweep leftover cgroups: %m");
        *ret_refused = n_refused;
        return (int)n_adopted;
}
