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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/kcmp.h>

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
        /* The owner tag of the apps' cgroup leaves: SupervisorOptions.owner_tag (cellad:
         * its state directory's tag, kept in the directory), else the directory's
         * device and inode ("d<dev>i<ino>", hexadecimal); the same for every cellad
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
static int hold_group(Group *g);

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
        /* A start: the keeper holds no set of this run yet, so a NOTE would change
         * nothing there (its generation is new); the HOLD that the start sends right
         * after (instance_start(), group_serve_member()) carries the role and freeze
         * lifecycle_started() just set. One round trip to the keeper per start and
         * per join, not two. */
        if (inst->keeper_hold_due)
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

                if (s->o.owner_tag && strlen(s->o.owner_tag) < sizeof k->tag)
                        strcpy(k->tag, s->o.owner_tag);
                else if (s->o.owner_tag)
                        return log_error_errno(-EINVAL, "cannot start the keeper: bad owner tag");
                else if (stat(s->o.state_dir, &st) < 0)
                        return log_error_errno(negative_errno(), "cannot start the keeper: %s: %m",
                                               s->o.state_dir);
                else
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

/* A run's generation: its start (ms) and its init's pid, distinct for every run of
 * an id (the keeper drops a set only of the generation it is told). */
static uint64_t generation_of(const SandboxedRun *run)
{
        return ((uint64_t)run->started_ms << 22) | ((uint64_t)run->sandbox->pid & 0x3fffffu);
}

/* The generation of inst's run: its own, or its packed group's host's. */
static uint64_t run_generation(const Instance *inst)
{
        return generation_of(inst->group ? &inst->group->run : &inst->run);
}

/*
 * The record and the two fds every set has, for the set id of kind running in run
 * (an app's own, or a packed group's host's) as uid, started from app_dir ("" for a
 * host): fds not named here are -EBADF. Returns 0 or -EINVAL (a string too long for
 * the record).
 */
static int set_base(const char *id, KeeperKind kind, const char *app_dir, const SandboxedRun *run,
                    uid_t uid, KeeperSet *set)
{
        const Sandbox *sb = run->sandbox;
        const char *unified = sb->cgroup ? cgroup_path(sb->cgroup, "") : NULL;
        const char *name = sb->cgroup ? cgroup_name(sb->cgroup) : "";
        KeeperRecord *rec = &set->rec;

        *set = (KeeperSet){};
        for (unsigned i = 0; i < _KEEPER_FD_MAX; i++)
                set->fds[i] = -EBADF;
        if (strlen(id) >= sizeof rec->id || strlen(name) >= sizeof rec->cgroup_name ||
            (unified && strlen(unified) >= sizeof rec->cgroup_kill) ||
            strlen(app_dir) >= sizeof rec->app_dir)
                return -EINVAL;
        strcpy(rec->id, id);
        strcpy(rec->cgroup_name, name);
        if (unified)
                strcpy(rec->cgroup_kill, unified);
        strcpy(rec->app_dir, app_dir);
        rec->kind = kind;
        rec->generation = generation_of(run);
        rec->pid = sb->pid;
        rec->app_pid = sb->app_pid;
        rec->started_ms = run->started_ms;
        rec->uid = uid;
        rec->restarts = run->restarts;
        set->fds[KEEPER_FD_PIDFD] = sb->pidfd;
        set->fds[KEEPER_FD_CTL] = sb->ctl_fd;
        return 0;
}

/* Sets rec->fds from the fds present in set. */
static void set_mask(KeeperSet *set)
{
        set->rec.fds = 0;
        for (unsigned i = 0; i < _KEEPER_FD_MAX; i++)
                if (set->fds[i] >= 0)
                        set->rec.fds |= 1u << i;
}

/*
 * The MEMBER set of inst, an app of a packed Lua group (keeper.h): its host's pidfd
 * and ctl (so that the keeper can kill the host whichever of its sets it holds),
 * the kernel's end of the app's broker channel and the read end of its log pipe,
 * with its index in the host's stats file and its role. Returns 0 or -EINVAL (a
 * string too long for the record).
 */
static int member_set_of(const Instance *inst, KeeperSet *set)
{
        const Group *g = inst->group;
        int r = set_base(inst->manifest->id, KEEPER_KIND_MEMBER, inst->app_dir, &g->run, g->run.uid,
                         set);

        if (r < 0)
                return r;
        if (strlen(g->name) >= sizeof set->rec.group)
                return -EINVAL;
        strcpy(set->rec.group, g->name);
        set->rec.member_index = inst->group_index;
        set->rec.member_run = inst->group_run;
        set->rec.role = inst->life.role;
        set->fds[KEEPER_FD_CHANNEL] = broker_app_channel_fd(inst->broker_app);
        set->fds[KEEPER_FD_STDOUT] = inst->out.open ? inst->out.from : -EBADF;
        set_mask(set);
        return 0;
}

/*
 * The HOST set of g's running host (keeper.h): id KEEPER_HOST_PREFIX + its name, its
 * sandbox's fds (init's pidfd and ctl, the seccomp listener), the read ends of the
 * host's own stdout and stderr, its stats file, whose number of records goes in
 * n_members, and our end of its host control channel (CHANNEL: so that the next
 * cellad stops one member alone, or adds one, as we do). Returns 0 or -EINVAL (a name too long, or
 * no stats file).
 */
static int host_set_of(const Group *g, KeeperSet *set)
{
        char id[KEEPER_ID_MAX];
        const Sandbox *sb = g->run.sandbox;
        int r;

        if (!g->run.stats ||
            (size_t)snprintf(id, sizeof id, KEEPER_HOST_PREFIX "%s", g->name) >= sizeof id)
                return -EINVAL;
        r = set_base(id, KEEPER_KIND_HOST, "", &g->run, g->run.uid, set);
        if (r < 0)
                return r;
        if (strlen(g->name) >= sizeof set->rec.group)
                return -EINVAL;
        strcpy(set->rec.group, g->name);
        set->rec.n_members = g->run.stats->n_apps;
        set->rec.init_exec = sb->init_exec;
        set->rec.oom_kills_before = sb->oom_kills_before;
        set->fds[KEEPER_FD_NOTIFY] = sb->seccomp_notify_fd;
        set->fds[KEEPER_FD_STDOUT] = g->out.open ? g->out.from : -EBADF;
        set->fds[KEEPER_FD_STDERR] = g->err.open ? g->err.from : -EBADF;
        set->fds[KEEPER_FD_STATS] = g->run.stats->fd;
        /* Our end of its control channel: a cellad that adopts the host joins and
         * stops members through it (the host ends its side at that end's EOF). */
        set->fds[KEEPER_FD_CHANNEL] = g->ctl_fd;
        set_mask(set);
        return 0;
}

/* What inst's running sandbox is, as a set (fds borrowed). Returns 0 or -EINVAL
 * (a string too long for the record). */
static int set_of(const Instance *inst, KeeperSet *set)
{
        const Sandbox *sb = inst->run.sandbox;
        KeeperRecord *rec = &set->rec;
        int r = set_base(inst->manifest->id, KEEPER_KIND_APP, inst->app_dir, &inst->run, inst->uid,
                         set);

        if (r < 0)
                return r;
        rec->role = inst->life.role;
        rec->init_exec = sb->init_exec;
        rec->oom_kills_before = sb->oom_kills_before;
        rec->frozen = inst->life.frozen;
        set->fds[KEEPER_FD_NOTIFY] = sb->seccomp_notify_fd;
        set->fds[KEEPER_FD_CHANNEL] = broker_app_channel_fd(inst->broker_app);
        set->fds[KEEPER_FD_STDOUT] = inst->out.open ? inst->out.from : -EBADF;
        set->fds[KEEPER_FD_STDERR] = inst->err.open ? inst->err.from : -EBADF;
        set->fds[KEEPER_FD_PTY] = inst->pty_hold;
        set->fds[KEEPER_FD_STATS] = inst->run.stats ? inst->run.stats->fd : -EBADF;
        set_mask(set);
        return 0;
}

/* Whether g's host runs and is served, with its output and stats file: one to hold. */
static bool group_holdable(const Group *g)
{
        return g->state == INSTANCE_RUNNING && g->run.sandbox && !g->run.sandbox->exited &&
               g->run.stats && g->out.open && g->err.open;
}

/* Whether inst runs (alone, or in a packed host that runs) and is served: one to hold. */
static bool holdable(const Instance *inst)
{
        if (inst->group)
                return inst->state == INSTANCE_RUNNING && inst->broker_app && inst->out.open &&
                       group_holdable(inst->group);
        return inst->state == INSTANCE_RUNNING && inst->run.sandbox && !inst->run.sandbox->exited &&
               inst->broker_app;
}

static int hold(Instance *inst)
{
        KeeperSet set;
        int r = inst->group ? member_set_of(inst, &set) : set_of(inst, &set);

        if (r < 0)
                return r;
        return keeper_hold(inst->sup->keeper->fd, &set);
}

static int hold_group(Group *g)
{
        KeeperSet set;
        int r = host_set_of(g, &set);

        if (r < 0)
                return r;
        return keeper_hold(g->sup->keeper->fd, &set);
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
        /* Each packed host after its members (a host's set without theirs would
         * say they ended). */
        for (size_t i = 0; r >= 0 && i < s->n_groups; i++) {
                if (!group_holdable(s->groups[i]))
                        continue;
                r = hold_group(s->groups[i]);
                if (r < 0)
                        log_error_errno(r, "packed group %s: cannot hand it to the new keeper: %m",
                                        s->groups[i]->name);
        }
        k->reholding = false;
        if (r >= 0)
                log_info("handed %zu running app(s) to the new keeper (pid %d)", n, (int)k->pid);
}

/* Whether a record may go to s's keeper now: not if there is none or it is
 * saying goodbye; not if its connection is gone, then after keeper_lost(), which
 * starts another keeper and hands it every holdable app and group (the caller's
 * too). */
static bool keeper_open(Supervisor *s)
{
        if (!s->keeper || s->keeper->bye)
                return false;
        if (s->keeper->fd < 0) {
                keeper_lost(s, -ENOTCONN); /* hands this one too */
                return false;
        }
        return true;
}

/* r, what hold() or hold_group() returned: true if the keeper refused that one
 * record (-EINVAL, -ENOSPC), which the caller logs (the keeper goes on); any
 * other error loses the keeper (keeper_lost()). */
static bool keeper_refused(Supervisor *s, int r)
{
        if (r == -EINVAL || r == -ENOSPC)
                return true;
        if (r < 0)
                keeper_lost(s, r);
        return false;
}

void supervisor_keeper_hold(Instance *inst)
{
        Supervisor *s = inst->sup;
        int r;

        inst->keeper_hold_due = false;
        if (!holdable(inst) || !keeper_open(s))
                return;
        r = hold(inst);
        if (keeper_refused(s, r))
                log_error_errno(r,
                                "%s: the keeper refused it (%m): it will not outlive this "
                                "cellad",
                                inst->manifest->id);
}

void supervisor_keeper_hold_group(Group *g)
{
        Supervisor *s = g->sup;
        int r;

        if (!group_holdable(g) || !keeper_open(s))
                return;
        r = hold_group(g);
        if (keeper_refused(s, r))
                log_error_errno(r,
                                "packed group %s: the keeper refused its host (%m): its apps "
                                "will not be adopted by the next cellad",
                                g->name);
}

void supervisor_keeper_drop_group(Group *g)
{
        Supervisor *s = g->sup;
        char id[KEEPER_ID_MAX];
        int r;

        if (!supervisor_keeper_attached(s) || !g->run.sandbox)
                return;
        if ((size_t)snprintf(id, sizeof id, KEEPER_HOST_PREFIX "%s", g->name) >= sizeof id)
                return;
        r = keeper_drop(s->keeper->fd, id, generation_of(&g->run));
        if (r < 0)
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

/* Says why set cannot be adopted (the log; for an app, its audit record, which
 * `cella events` shows, and a status record for the journal), then kill_set(). */
static void refuse(Supervisor *s, KeeperSet *set, int r, const char *why)
{
        const KeeperRecord *rec = &set->rec;

        if (rec->kind == KEEPER_KIND_HOST)
                log_error("packed group %s: cannot adopt its host (pid %d, left by an earlier "
                          "cellad): %s%s%s; stopping it",
                          rec->group, (int)rec->pid, why, r < 0 ? ": " : "",
                          r < 0 ? strerror(-r) : "");
        else {
                log_error("%s: cannot adopt it (pid %d, left by an earlier cellad): %s%s%s; "
                          "stopping it",
                          rec->id, (int)rec->pid, why, r < 0 ? ": " : "",
                          r < 0 ? strerror(-r) : "");
                supervisor_audit(s, rec->id, AUDIT_EVENT_LIFECYCLE,
                                 json_pack("{s:s, s:i, s:s}", "what", "adopt-refused", "pid",
                                           (int)rec->pid, "reason", why));
                supervisor_status(s,
                                  json_pack("{s:s, s:s, s:i, s:s}", "event", "adopt-refused", "app",
                                            rec->id, "pid", (int)rec->pid, "reason", why));
        }
        kill_set(s, set);
}

/* A Lua app's or a host's stats file as the earlier kernel made it (luastats_new()):
 * a sealed memfd of the size for n_apps apps (1..LUAHOST_APPS_MAX), mapped
 * read-only again. NULL if it is not that. */
static LuaStats *stats_adopt(int fd, uint32_t n_apps)
{
        size_t size = n_apps >= 1 && n_apps <= LUAHOST_APPS_MAX ? clua_stats_size(n_apps) : 0;
        const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
        struct stat st;
        LuaStats *ls;
        void *map;

        if (size == 0 || fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
            (size_t)st.st_size != size || (fcntl(fd, F_GET_SEALS) & seals) != seals)
                return NULL;
        map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
                return NULL;
        ls = malloc(sizeof *ls);
        if (!ls) {
                munmap(map, size);
                return NULL;
        }
        *ls = (LuaStats){.fd = fd, .map = map, .size = size, .n_apps = n_apps};
        return ls;
}

/* Takes set's fd i out of the set (-EBADF when it has none). */
static int take_fd(KeeperSet *set, KeeperFd i)
{
        return TAKE_FD(set->fds[i]);
}

/* Rebuilds the Sandbox of the keeper set's record (an app's, or a packed
 * group's host's) from the set's pidfd, control and seccomp notify fds, which
 * it takes out of the set (adopt_one() for an app, adopt_group() for a
 * host). A duplicate of the pidfd stays in the set's KEEPER_FD_PIDFD slot, to
 * kill the sandbox by if it cannot be rebuilt or later refused (the caller
 * closes it when done). Returns 0 with *ret set, or sandbox_adopt()'s -errno. */
static int adopt_sandbox(Supervisor *s, KeeperSet *set, Sandbox **ret)
{
        const KeeperRecord *rec = &set->rec;
        SandboxAdoption a = {
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
        return sandbox_adopt(&a, ret);
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
/* The role part of adopt_state(), which is all of it for a packed member (its
 * host's cgroup is not frozen for one app: lifecycle.c). */
static void adopt_role(Instance *inst, const KeeperRecord *rec)
{
        bool service = inst->manifest->kind == MANIFEST_KIND_SERVICE;
        InstanceRole role = rec->role <= INSTANCE_ROLE_BACKGROUND ? (InstanceRole)rec->role
                                                                  : INSTANCE_ROLE_NONE;

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
}

static void adopt_state(Instance *inst, Sandbox *sb, const KeeperRecord *rec)
{
        InstanceFreeze frozen = rec->frozen <= INSTANCE_FREEZE_KERNEL ? (InstanceFreeze)rec->frozen
                                                                      : INSTANCE_FREEZE_NONE;
        int r;

        adopt_role(inst, rec);
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
        uint16_t port;
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
                inst->run.stats = stats_adopt(set->fds[KEEPER_FD_STATS], 1);
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
        /* Its app networks died with the last kernel's hubs: made again. */
        instance_net_adopted(inst);
        /* Its proxy closed with the kernel that made it: a new listener in its
         * namespace (docs/network.md "The proxy", "Lifetime"). Not fatal: the app
         * runs on, its proxied connections refused. */
        port = netproxy_port(s->o.net_proxy_port, inst->manifest);
        if (port) {
                r = netproxy_open(&s->loop, s->broker, inst->manifest->id, inst->run.sandbox->pid,
                                  port, &inst->proxy);
                if (r < 0)
                        log_warning_errno(r, "%s: no proxy after the restart%s: %m",
                                          inst->manifest->id,
                                          r == -EADDRINUSE ? " (the app took its port)" : "");
        }
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
                refuse(s, set, 0, "its folder now holds a packed app, and it ran alone");
                return 0;
        }
        if ((rec->fds & ADOPT_FDS_REQUIRED) != ADOPT_FDS_REQUIRED) {
                manifest_free(m);
                refuse(s, set, 0, "its fd set is incomplete");
                return 0;
        }
        r = adopt_sandbox(s, set, &sb);
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
        /* Its manifest's forwards, as at a start: the kernel that opened them is gone,
         * and its sockets with it (docs/network.md, "Port forwarding"). */
        supervisor_ports_started(inst);
        keeper_set_done(set);
        supervisor_changed(s);
        return 1;
}

/* ---- adoption of packed groups -------------------------------------------------------- */

/* The fds a HOST set must have to be adopted: its init, its ctl, its own stdout and
 * stderr, and its stats file (which tells how many records the host has). */
#define ADOPT_HOST_FDS                                                                             \
        (KEEPER_FDS_REQUIRED | (1u << KEEPER_FD_STDOUT) | (1u << KEEPER_FD_STDERR) |               \
         (1u << KEEPER_FD_STATS))

/* Whether fd is a Unix SOCK_SEQPACKET socket (the kernel's end of a broker channel). */
static bool fd_is_channel(int fd)
{
        int type = 0, domain = 0;
        socklen_t lt = sizeof type, ld = sizeof domain;

        return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &lt) == 0 && type == SOCK_SEQPACKET &&
               getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &ld) == 0 && domain == AF_UNIX;
}

/* Whether a and b are the same open file: kcmp(2) KCMP_FILE where the kernel has it,
 * else the same inode (a socket's is its own; a pidfd's is its process's on pidfs,
 * Linux 6.9+). */
static bool same_file(int a, int b)
{
        struct stat sa, sb;
        long r = syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b);

        if (r >= 0)
                return r == 0;
        return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
               sa.st_ino == sb.st_ino;
}

/* Whether fd is the read end of a pipe (a log pipe's, ours). */
static bool fd_is_pipe_reader(int fd)
{
        struct stat st;
        int fl = fcntl(fd, F_GETFL);

        return fl >= 0 && (fl & O_ACCMODE) == O_RDONLY && fstat(fd, &st) == 0 &&
               S_ISFIFO(st.st_mode);
}

/* Sets *ret_why to the message of fmt (NULL when there is no memory for it). Returns
 * -1, group_check()'s "refused". */
_printf_(2, 3) static int refusal(char **ret_why, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(ret_why, fmt, ap) < 0)
                *ret_why = NULL;
        va_end(ap);
        return -1;
}

/* One app of a packed host being adopted. */
typedef struct MemberAdoption {
        KeeperSet *set;
        Manifest *m;    /* its manifest as its folder has it now; owned until registered */
        char *real;     /* its folder's real path */
        Instance *inst; /* once registered */
} MemberAdoption;

/* A file's identity: its file system and inode. */
typedef struct FileId {
        dev_t dev;
        ino_t ino;
} FileId;

static int file_id_cmp(const void *a, const void *b)
{
        const FileId *x = a, *y = b;

        if (x->dev != y->dev)
                return (x->dev > y->dev) - (x->dev < y->dev);
        return (x->ino > y->ino) - (x->ino < y->ino);
}

/* Whether two of the channels and log pipes of mem (n), and the host's ctl and own
 * stdout and stderr (two pipes, group.c) in h, are one file: the same device and
 * inode twice (each is a socket or a pipe, whose inode is its own). True too when
 * one cannot be looked at, or there is no memory. O(n log n). */
static bool fds_shared(const KeeperSet *h, const MemberAdoption *mem, size_t n)
{
        static const KeeperFd host[] = {KEEPER_FD_CTL, KEEPER_FD_STDOUT, KEEPER_FD_STDERR};
        _cleanup_free_ FileId *ids = calloc(2 * n + ELEMENTSOF(host) + 1, sizeof *ids);
        _cleanup_free_ int *fds = calloc(2 * n + ELEMENTSOF(host) + 1, sizeof *fds);
        size_t k = 0;
        struct stat st;

        if (!ids || !fds)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(host); i++)
                fds[k++] = h->fds[host[i]];
        if (h->fds[KEEPER_FD_CHANNEL] >= 0)
                fds[k++] = h->fds[KEEPER_FD_CHANNEL]; /* its control channel */
        for (size_t i = 0; i < n; i++) {
                fds[k++] = mem[i].set->fds[KEEPER_FD_CHANNEL];
                fds[k++] = mem[i].set->fds[KEEPER_FD_STDOUT];
        }
        for (size_t i = 0; i < k; i++) {
                if (fstat(fds[i], &st) < 0)
                        return true;
                ids[i] = (FileId){.dev = st.st_dev, .ino = st.st_ino};
        }
        qsort(ids, k, sizeof *ids, file_id_cmp);
        for (size_t i = 1; i < k; i++)
                if (file_id_cmp(&ids[i], &ids[i - 1]) == 0)
                        return true;
        return false;
}

static int member_cmp(const void *a, const void *b)
{
        const Instance *x = *(Instance *const *)a, *y = *(Instance *const *)b;

        return (x->group_index > y->group_index) - (x->group_index < y->group_index);
}

/*
 * Whether the HOST set h and the MEMBER sets of mem (n, n >= 0) describe one host
 * that this kernel may adopt as they say, each member's manifest re-read into
 * mem[i].m: the host's fds; every member's record is its host's (generation, pids,
 * uid, start, restarts, cgroup), its index a distinct record of the host's stats
 * file, its channel a SOCK_SEQPACKET socket and its log pipe a pipe's read end; its
 * folder still holds that app, packed in this very group (so that no record makes
 * an app of another group, or one running alone, a member: its identity and grants
 * are its manifest's); no app or group of those names is registered; and the stats
 * file (into *ret_stats) says every record with no member set is of an app that
 * ended. Returns 0 (adoptable) or -1 with why not in *ret_why (to free; NULL when
 * there was no memory for it) and an errno or 0 in *ret_r.
 */
static int group_check(Supervisor *s, KeeperSet *h, MemberAdoption *mem, size_t n,
                       LuaStats **ret_stats, char **ret_why, int *ret_r)
{
        const KeeperRecord *hr = &h->rec;
        _cleanup_free_ bool *seen = NULL;
        LuaStats *stats = NULL;
        int r;

        *ret_r = 0;
        *ret_stats = NULL;
        if ((hr->fds & ADOPT_HOST_FDS) != ADOPT_HOST_FDS)
                return refusal(ret_why, "its host's fd set is incomplete");
        if (hr->n_members == 0 || hr->n_members > LUAHOST_APPS_MAX)
                return refusal(ret_why, "its host's record count is out of range");
        /* Its control channel, when held: a socket of the kind group.c makes. */
        if (h->fds[KEEPER_FD_CHANNEL] >= 0 && !fd_is_channel(h->fds[KEEPER_FD_CHANNEL]))
                return refusal(ret_why, "its host's control channel is not what it should be");
        for (size_t i = 0; i < s->n_groups; i++)
                if (strcmp(s->groups[i]->name, hr->group) == 0)
                        return refusal(ret_why,
                                       "a packed group of that name is registered already");
        if (n == 0)
                return refusal(ret_why, "none of its apps has a record");
        seen = calloc(hr->n_members, sizeof *seen);
        if (!seen) {
                *ret_r = -ENOMEM;
                return refusal(ret_why, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
                const KeeperRecord *mr = &mem[i].set->rec;
                const int *fds = mem[i].set->fds;

                if (mr->generation != hr->generation || mr->pid != hr->pid ||
                    mr->app_pid != hr->app_pid || mr->uid != hr->uid ||
                    mr->started_ms != hr->started_ms || mr->restarts != hr->restarts ||
                    strcmp(mr->cgroup_name, hr->cgroup_name) != 0 ||
                    strcmp(mr->cgroup_kill, hr->cgroup_kill) != 0 || mr->frozen != 0) {
                        return refusal(ret_why, "the records of its host and of %s disagree",
                                       mr->id);
                }
                if (mr->member_index >= hr->n_members || seen[mr->member_index]) {
                        return refusal(ret_why, "%s claims record %u of its host, which is %s",
                                       mr->id, mr->member_index,
                                       mr->member_index >= hr->n_members ? "out of range"
                                                                         : "another app's");
                }
                seen[mr->member_index] = true;
                /* Its host's very pidfd and ctl (copies of one open file each): a
                 * refusal kills what its pidfd names. */
                if (!same_file(fds[KEEPER_FD_PIDFD], h->fds[KEEPER_FD_PIDFD]) ||
                    !same_file(fds[KEEPER_FD_CTL], h->fds[KEEPER_FD_CTL]))
                        return refusal(ret_why, "the sandbox of %s is not its host's", mr->id);
                if (!fd_is_channel(fds[KEEPER_FD_CHANNEL]) ||
                    !fd_is_pipe_reader(fds[KEEPER_FD_STDOUT])) {
                        return refusal(ret_why,
                                       "the channel or the log pipe of %s is not what it "
                                       "should be",
                                       mr->id);
                }
                if (supervisor_find(s, mr->id)) {
                        return refusal(ret_why, "an app of the id %s is registered already",
                                       mr->id);
                }
                r = supervisor_load_manifest(mr->app_dir, &mem[i].real, &mem[i].m, NULL);
                if (r < 0) {
                        *ret_r = r;
                        return refusal(ret_why,
                                       "the folder or manifest of %s is gone or does not load",
                                       mr->id);
                }
                if (strcmp(mem[i].m->id, mr->id) != 0) {
                        return refusal(ret_why, "the folder of %s now holds another app", mr->id);
                }
                if (mem[i].m->isolation != MANIFEST_ISOLATION_PACKED ||
                    mem[i].m->runtime != MANIFEST_RUNTIME_LUA || !mem[i].m->group ||
                    strcmp(mem[i].m->group, hr->group) != 0) {
                        return refusal(
                                ret_why,
                                "%s is not an app of packed group %s (its manifest says otherwise)",
                                mr->id, hr->group);
                }
                for (size_t j = 0; j < i; j++)
                        if (strcmp(mem[j].m->id, mr->id) == 0) {
                                return refusal(ret_why, "%s has two records", mr->id);
                        }
        }
        /* One channel and one log pipe per app, none of them another's or the host's
         * ctl (a socket's or a pipe's inode is its own). */
        if (fds_shared(h, mem, n))
                return refusal(ret_why, "two of its apps, or an app and its host, share a "
                                        "channel or a log pipe");
        stats = stats_adopt(h->fds[KEEPER_FD_STATS], hr->n_members);
        if (!stats)
                return refusal(ret_why, "its host's stats file is not what it should be");
        h->fds[KEEPER_FD_STATS] = -EBADF; /* stats's now */
        *ret_stats = stats;
        /* A record of the host's stats file with no member set: the app in it ended
         * (its set was dropped then) and the host says so, or no app ever used it;
         * else its set is lost, and an app whose channel nobody serves is not left in
         * the host. The host writes the file: a host that lies only stops itself
         * here, or leaves out an app of its own group, whose channel no kernel then
         * holds. */
        for (uint32_t i = 0; i < hr->n_members; i++) {
                CLuaStatsApp a;

                if (seen[i])
                        continue;
                r = luastats_app(stats, i, &a);
                if (r >= 0 && a.state == CLUA_APP_STARTING && a.slices == 0 && a.callbacks == 0 &&
                    a.cpu_ns == 0)
                        continue; /* a record no app has used (room for one to join) */
                if (r < 0 || (a.state != CLUA_APP_EXITED && a.state != CLUA_APP_FAILED)) {
                        *ret_r = r < 0 ? r : 0;
                        return refusal(ret_why,
                                       "the app in record %u of its host has no record of "
                                       "its own (it ran when the host was handed over)",
                                       i);
                }
        }
        return 0;
}

/* Refuses (refuse()) every member set of mem and the host set h, each once, with why.
 * A member set that does not name its host's sandbox (its pid, cgroup, pidfd) has
 * nothing killed by its record: it is dropped (its copies closed), and the host is
 * killed by its own set. */
static void refuse_group(Supervisor *s, KeeperSet *h, MemberAdoption *mem, size_t n, int r,
                         const char *why)
{
        for (size_t i = 0; i < n; i++) {
                KeeperSet *m = mem[i].set;

                if (m->rec.pid != h->rec.pid || strcmp(m->rec.cgroup_name, h->rec.cgroup_name) ||
                    h->fds[KEEPER_FD_PIDFD] < 0 ||
                    !same_file(m->fds[KEEPER_FD_PIDFD], h->fds[KEEPER_FD_PIDFD])) {
                        m->fds[KEEPER_FD_PIDFD] = safe_close(m->fds[KEEPER_FD_PIDFD]);
                        m->rec.cgroup_name[0] = 0;
                }
                refuse(s, m, r, why);
        }
        refuse(s, h, r, why);
}

/*
 * Serves inst, an app of g's adopted host, from its MEMBER set: its state as its
 * record says, its log, its rights, its channel attached (the kernel's first frame
 * on it event.kernel_restarted), its log pipe pumped. Returns 0 or a negative errno
 * with inst->error (printed).
 */
static int serve_member(Group *g, Instance *inst, KeeperSet *set)
{
        Supervisor *s = g->sup;
        BrokerAppInfo info = {
                .manifest = inst->manifest,
                .app_dir = inst->app_dir,
                .data_dir = inst->data_dir,
                .signed_ok = inst->signed_ok,
        };
        int r;

        inst->uid = g->run.uid;
        inst->started_ms = g->run.started_ms;
        inst->started_ns = g->run.started_ns;
        inst->stop_requested = false;
        inst->state = INSTANCE_RUNNING;
        adopt_role(inst, &set->rec);
        r = instance_open_log(inst, &inst->error);
        if (r >= 0)
                r = instance_install(inst, &inst->error);
        if (r < 0)
                return r;
        sandboxed_broker_info(&g->run, &info);
        r = broker_app_attach(s->broker, &info, take_fd(set, KEEPER_FD_CHANNEL), &inst->broker_app);
        if (r < 0) {
                log_error_errno(r, "cannot serve the channel of %s: %m", inst->manifest->id);
                return supervisor_error(&inst->error, SUPERVISOR_STEP_INTERNAL, r, "channel");
        }
        r = pump_start(s, inst, g, &inst->out, set->fds[KEEPER_FD_STDOUT], s->out_outlet,
                       inst->log);
        if (r < 0) {
                log_error("cannot pump the log of %s: %s", inst->manifest->id, uv_strerror(r));
                return supervisor_error(&inst->error, SUPERVISOR_STEP_INTERNAL, r, "log");
        }
        set->fds[KEEPER_FD_STDOUT] = -EBADF;
        /* As an app's (serve_adopted()): the first frame of this kernel. */
        r = broker_app_kernel_restarted(inst->broker_app, now_realtime_ms());
        if (r < 0)
                log_warning_errno(r, "%s: cannot tell it the kernel restarted: %m",
                                  inst->manifest->id);
        return 0;
}

/*
 * Adopts the packed host of the HOST set sets[hi] with its MEMBER sets (those of its
 * group among sets, marked in done[]), as adopt_one() an app: the host's sandbox
 * rebuilt, its apps registered (their claims checked) and served, its stats file and
 * output taken back. A group that cannot be adopted whole is stopped whole (its
 * host killed, every set of it dropped), each app's refusal logged and audited with
 * the reason; the restart policy then applies (cellad's autostart). Returns the
 * number of apps adopted (> 0), 0 refused (*n_refused counts its apps), or -ENOMEM.
 */
static int adopt_group(Supervisor *s, KeeperSet *sets, size_t n_sets, size_t hi, bool *done,
                       size_t *n_refused, char ***adopted)
{
        KeeperSet *h = &sets[hi];
        const KeeperRecord *hr = &h->rec;
        _cleanup_free_ MemberAdoption *mem = NULL;
        _cleanup_(sandbox_freep) Sandbox *sb = NULL;
        _cleanup_free_ char *why = NULL;
        uint64_t now_real = (uint64_t)now_realtime_ms(), now_mono = now_monotonic_ns();
        LuaStats *stats = NULL;
        SupervisorError err = {};
        Group *g = NULL;
        size_t n = 0, served = 0;
        int r = 0;

        done[hi] = true;
        mem = calloc(n_sets, sizeof *mem);
        if (!mem)
                return -ENOMEM;
        for (size_t i = 0; i < n_sets; i++)
                if (!done[i] && sets[i].rec.kind == KEEPER_KIND_MEMBER &&
                    strcmp(sets[i].rec.group, hr->group) == 0) {
                        done[i] = true;
                        mem[n++].set = &sets[i];
                }
        if (group_check(s, h, mem, n, &stats, &why, &r) < 0) {
                refuse_group(s, h, mem, n, r, why ?: "out of memory");
                goto refused;
        }
        r = adopt_sandbox(s, h, &sb);
        if (r < 0) {
                refuse_group(s, h, mem, n, r,
                             "its host's sandbox's fds are not what they should be");
                goto refused;
        }
        for (size_t i = 0; i < n; i++) {
                r = supervisor_add(s, mem[i].real, TAKE_PTR(mem[i].m), NULL, 0, &mem[i].inst, &err);
                if (r < 0) {
                        /* Its claim (or the state, or its group) refused it: the ones
                         * registered are failed, and nothing of the group runs unserved. */
                        for (size_t j = 0; j < s->n_apps; j++)
                                for (size_t k = 0; k <= i; k++)
                                        if (strcmp(s->apps[j]->manifest->id, mem[k].set->rec.id) ==
                                            0) {
                                                s->apps[j]->state = INSTANCE_FAILED;
                                                s->apps[j]->error = err;
                                                s->apps[j]->exit_code =
                                                        supervisor_exit_code(s, &err);
                                        }
                        sb = sandbox_free(sb);
                        refuse_group(s, h, mem, n, r,
                                     "an app of it cannot be registered (the "
                                     "reason is above)");
                        goto refused;
                }
                mem[i].inst->group_index = mem[i].set->rec.member_index;
                mem[i].inst->group_run = mem[i].set->rec.member_run;
                mem[i].inst->group_served = true; /* its record is its own (group_stats()) */
        }
        for (size_t i = 0; i < n; i++) {
                free(mem[i].real); /* the instance has its copy */
                mem[i].real = NULL;
        }
        g = mem[0].inst->group;
        /* Its members in the order of their records (group.c reads them so). */
        qsort(g->members, g->n_members, sizeof *g->members, member_cmp);
        g->run.sandbox = TAKE_PTR(sb);
        g->run.uid = hr->uid;
        g->run.started_ms = hr->started_ms;
        g->run.started_ns =
                now_mono -
                MIN(now_mono, (now_real - MIN(now_real, (uint64_t)hr->started_ms)) * NSEC_PER_MSEC);
        g->run.restarts = hr->restarts;
        g->run.stats = TAKE_PTR(stats);
        r = group_adopted(g, take_fd(h, KEEPER_FD_STDOUT), take_fd(h, KEEPER_FD_STDERR),
                          take_fd(h, KEEPER_FD_CHANNEL), hr->n_members);
        if (r < 0) {
                /* Its host is killed (group_adopted()); its apps failed. */
                for (size_t i = 0; i < n; i++) {
                        mem[i].inst->state = INSTANCE_FAILED;
                        (void)supervisor_error(&mem[i].inst->error, SUPERVISOR_STEP_INTERNAL, r,
                                               "watch");
                        mem[i].inst->exit_code = supervisor_exit_code(s, &mem[i].inst->error);
                }
                refuse_group(s, h, mem, n, r, "its host cannot be watched");
                goto refused;
        }
        for (size_t i = 0; i < n; i++) {
                Instance *inst = mem[i].inst;
                const char *state;

                r = serve_member(g, inst, mem[i].set);
                if (r < 0) {
                        /* The host runs and is watched: it is killed, its exit ends every
                         * app of it (group.c), and its restart policy applies. */
                        free(why);
                        (void)refusal(&why, "%s cannot be served (the reason is above)",
                                      inst->manifest->id);
                        for (size_t j = 0; j < n; j++) {
                                log_error("%s: cannot adopt it (pid %d, left by an earlier "
                                          "cellad): %s; stopping its packed group %s",
                                          mem[j].set->rec.id, (int)hr->pid, why ?: "", g->name);
                                supervisor_audit(s, mem[j].set->rec.id, AUDIT_EVENT_LIFECYCLE,
                                                 json_pack("{s:s, s:i, s:s, s:s}", "what",
                                                           "adopt-refused", "pid", (int)hr->pid,
                                                           "group", g->name, "reason", why ?: ""));
                        }
                        sandboxed_stop(&g->run, true);
                        *n_refused += n;
                        supervisor_changed(s);
                        return 0;
                }
                served++;
                state = instance_state_to_string(instance_state(inst));
                supervisor_audit(s, inst->manifest->id, AUDIT_EVENT_LIFECYCLE,
                                 json_pack("{s:s, s:s, s:i, s:I, s:I, s:s}", "what", "adopted",
                                           "group", g->name, "pid", (int)hr->pid, "uid",
                                           (json_int_t)hr->uid, "started_ms",
                                           (json_int_t)hr->started_ms, "state", state));
                supervisor_status(s,
                                  json_pack("{s:s, s:s, s:s, s:i, s:I, s:i, s:s}", "event",
                                            "adopted", "app", inst->manifest->id, "group", g->name,
                                            "pid", (int)hr->pid, "uid", (json_int_t)hr->uid,
                                            "restarts", (int)hr->restarts, "state", state));
                log_info("%s: adopted (pid %d, %s, packed group %s)", inst->manifest->id,
                         (int)hr->pid, state, g->name);
        }
        if (g->run.sandbox->cgroup && strv_extend(adopted, cgroup_name(g->run.sandbox->cgroup)) < 0)
                return -ENOMEM;
        log_info("packed group %s: adopted its host (pid %d) with %zu app(s)", g->name,
                 (int)hr->pid, served);
        supervisor_changed(s);
        return (int)served;
refused:
        for (size_t i = 0; i < n; i++) {
                manifest_free(mem[i].m);
                free(mem[i].real);
        }
        stats = luastats_free(stats);
        *n_refused += n;
        return 0;
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
        bool *done = NULL;
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
        done = calloc(n ?: 1, sizeof *done);
        if (!done)
                r = -ENOMEM;
        /* Packed hosts first, each with the MEMBER sets of its group. */
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (sets[i].rec.kind != KEEPER_KIND_HOST)
                        continue;
                r = adopt_group(s, sets, n, i, done, &n_refused, &adopted);
                if (r > 0)
                        n_adopted += (size_t)r;
        }
        for (size_t i = 0; i < n; i++) {
                if (r >= 0 && !done[i] && sets[i].rec.kind == KEEPER_KIND_MEMBER) {
                        /* Its host's set never reached the keeper (a cellad that
                         * died while it started the group) or is lost: the host
                         * (whose pidfd every set has) is stopped. */
                        refuse(s, &sets[i], 0,
                               "no record of its packed group's host was handed over (the "
                               "cellad that started the group ended first, or the record is "
                               "lost)");
                        n_refused++;
                } else if (r >= 0 && !done[i]) {
                        r = adopt_one(s, &sets[i], &adopted);
                        if (r > 0)
                                n_adopted++;
                        else if (r == 0)
                                n_refused++;
                }
                keeper_set_done(&sets[i]);
        }
        free(done);
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
