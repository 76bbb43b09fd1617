/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A sandboxed run (sandboxed.h): the part of a run that is the same for one app
 * (instance.c) and for a packed group's host (group.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/time-util.h"
#include "base/macro.h"
#include "base/statedir.h"
#include "supervisor/sandboxed.h"
#include "supervisor/supervisor-internal.h"

void sandboxed_init(SandboxedRun *r, Supervisor *s, const char *name, const SandboxedRunOps *ops,
                    void *owner)
{
        *r = (SandboxedRun){.sup = s, .ops = ops, .owner = owner, .name = name};
}

bool sandboxed_busy(const SandboxedRun *r)
{
        return r->polls_closing > 0;
}

int sandboxed_new_stats(SandboxedRun *r, uint32_t n_apps)
{
        int fd, k;

        r->stats = luastats_free(r->stats);
        k = luastats_new(n_apps, &r->stats);
        if (k < 0)
                return k;
        fd = fd_above_stdio(r->stats->fd);
        r->stats->fd = fd;
        return fd < 0 ? fd : 0;
}

int sandboxed_open_log(Supervisor *s, const char *name, AppLog **log)
{
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (s->o.output != SUPERVISOR_OUTPUT_LOGS || *log)
                return 0;
        if (asprintf(&dir, "%s/logs", state_path(s->state)) < 0)
                return log_error_errno(-ENOMEM, "cannot open the log of %s: %m", name);
        /* Ours alone, as every file cella trusts in it (base/statedir.h). */
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(negative_errno(), "cannot create %s: %m", dir);
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(negative_errno(), "cannot open %s: %m", dir);
        r = owned_check_fd(fd, dir);
        if (r < 0)
                return r;
        r = applog_open(dir, name, APPLOG_SIZE_DEFAULT, APPLOG_KEEP_DEFAULT, log);
        if (r < 0)
                return log_error_errno(r, "cannot open the log of %s in %s: %m", name, dir);
        return 0;
}

int sandboxed_spawn(SandboxedRun *r, const SandboxSpec *spec, SandboxError *err)
{
        sandboxed_cancel_restart(r);
        r->started_ns = now_monotonic_ns();
        r->started_ms = now_realtime_ms();
        if (r->sup->warm_take) {
                SandboxWarm *w = r->sup->warm_take(spec, r->sup->warm_userdata);

                if (w)
                        return sandbox_spawn_warm(w, spec, &r->sandbox, err);
        }
        return sandbox_spawn(spec, &r->sandbox, err);
}

void supervisor_set_warm_source(Supervisor *s, SupervisorWarmTake take, void *userdata)
{
        s->warm_take = take;
        s->warm_userdata = userdata;
}

void sandboxed_broker_info(const SandboxedRun *r, BrokerAppInfo *info)
{
        const Sandbox *sb = r->sandbox;

        info->host_uid = r->uid;
        info->pid = sb->pid;
        info->pidfd = sb->pidfd;
        info->memory_cgroup = sb->cgroup ? cgroup_path(sb->cgroup, "memory") : NULL;
        info->pids_cgroup = sb->cgroup ? cgroup_path(sb->cgroup, "pids") : NULL;
        info->cpu_cgroup = sb->cgroup ? cgroup_path(sb->cgroup, "cpu") : NULL;
        info->cpuacct_cgroup = sb->cgroup ? cgroup_path(sb->cgroup, "cpuacct") : NULL;
        info->unified_cgroup = sb->cgroup ? cgroup_path(sb->cgroup, "") : NULL;
        info->started_ms = r->started_ms;
}

static void poll_closed(uv_handle_t *h)
{
        SandboxedRun *r = h->data;

        r->polls_closing--;
}

/* Closes one of r's polls; the next run may reuse its memory only once the close
 * callback has run (sandboxed_busy()). */
static void poll_close(SandboxedRun *r, uv_poll_t *p, bool *init)
{
        if (!*init)
                return;
        *init = false;
        r->polls_closing++;
        p->data = r;
        uv_close((uv_handle_t *)p, poll_closed);
}

static void on_sandbox(uv_poll_t *h, int status, int events)
{
        SandboxedRun *r = h->data;
        int done = sandbox_process(r->sandbox);

        supervisor_check_init(r->sup, r->sandbox);
        if (done > 0) {
                uv_poll_stop(h);
                supervisor_output_check(r->sup);
                r->ops->exited(r->owner);
        }
}

/* A denied system call waits for our answer (EPERM); we count it. */
static void on_seccomp_notify(uv_poll_t *h, int status, int events)
{
        SandboxedRun *r = h->data;
        int k;

        if (status < 0 || (events & UV_DISCONNECT)) {
                uv_poll_stop(h);
                return;
        }
        k = seccomp_notify_process(r->sandbox->seccomp_notify_fd, r->denials);
        if (k < 0) {
                log_warning_errno(k, "%s: cannot answer its denied system calls: %m", r->name);
                uv_poll_stop(h);
        }
}

static int watch_seccomp(SandboxedRun *r)
{
        int k;

        if (r->sandbox->seccomp_notify_fd < 0)
                return 0;
        if (!r->denials) {
                r->denials = malloc(sizeof *r->denials);
                if (!r->denials)
                        return -ENOMEM;
        }
        *r->denials = (SeccompDenials){};
        k = uv_poll_init(&r->sup->loop, &r->notify_poll, r->sandbox->seccomp_notify_fd);
        if (k < 0)
                return k;
        r->notify_poll_init = true;
        r->notify_poll.data = r;
        return uv_poll_start(&r->notify_poll, UV_READABLE | UV_DISCONNECT, on_seccomp_notify);
}

int sandboxed_watch(SandboxedRun *r)
{
        int k = watch_seccomp(r);

        if (k < 0)
                return k;
        k = uv_poll_init(&r->sup->loop, &r->sandbox_poll, r->sandbox->ctl_fd);
        if (k < 0)
                return k;
        r->sandbox_poll_init = true;
        r->sandbox_poll.data = r;
        return uv_poll_start(&r->sandbox_poll, UV_READABLE, on_sandbox);
}

void sandboxed_abort(SandboxedRun *r)
{
        poll_close(r, &r->notify_poll, &r->notify_poll_init);
        poll_close(r, &r->sandbox_poll, &r->sandbox_poll_init);
        r->sandbox = sandbox_free(r->sandbox);
}

/* The audit record of the run's denied calls: total, and the most denied by name. */
static void audit_denials(SandboxedRun *r)
{
        SeccompDenialCount top[8];
        json_t *calls;
        size_t n;

        if (!r->denials || r->denials->total == 0)
                return;
        n = seccomp_denials_top(r->denials, top, ELEMENTSOF(top));
        calls = json_object();
        for (size_t i = 0; calls && i < n; i++) {
                const char *name = seccomp_syscall_name(top[i].nr);
                char num[16];

                if (!name) {
                        snprintf(num, sizeof num, "%d", top[i].nr);
                        name = num;
                }
                json_object_set_new(calls, name, json_integer((json_int_t)top[i].count));
        }
        r->ops->audit(r->owner, AUDIT_EVENT_SECCOMP,
                      json_pack("{s:I, s:I, s:o}", "denied", (json_int_t)r->denials->total, "other",
                                (json_int_t)r->denials->other, "calls", calls ?: json_object()));
}

const SandboxExit *sandboxed_reap(SandboxedRun *r)
{
        if (r->notify_poll_init && r->sandbox->seccomp_notify_fd >= 0)
                (void)seccomp_notify_process(r->sandbox->seccomp_notify_fd, r->denials);
        poll_close(r, &r->notify_poll, &r->notify_poll_init);
        if (r->timer_init)
                uv_timer_stop(&r->timer);
        r->restart_pending = false;
        r->last_exit = r->sandbox->exit;
        r->last_exit.low_memory = r->low_memory_kill;
        r->low_memory_kill = false;
        return &r->last_exit;
}

void sandboxed_release(SandboxedRun *r)
{
        audit_denials(r);
        poll_close(r, &r->sandbox_poll, &r->sandbox_poll_init);
        r->sandbox = sandbox_free(r->sandbox);
        r->stats = luastats_free(r->stats);
}

static void timer_start(SandboxedRun *r, uint64_t ms, uv_timer_cb cb)
{
        if (!r->timer_init) {
                if (uv_timer_init(&r->sup->loop, &r->timer) < 0)
                        return;
                r->timer_init = true;
                r->timer.data = r;
        }
        (void)uv_timer_start(&r->timer, cb, ms, 0);
}

static void on_restart_timer(uv_timer_t *t)
{
        SandboxedRun *r = t->data;

        if (!r->restart_pending)
                return;
        r->restart_pending = false;
        r->restarts++;
        log_info("%s: restarting (restart %u)", r->name, r->restarts);
        (void)r->ops->start(r->owner);
}

RestartDecision sandboxed_restart_decide(SandboxedRun *r, ManifestRestart policy)
{
        uint64_t delay_ns = 0;
        RestartDecision d = restart_decide(&r->restart, policy, &r->last_exit, r->started_ns,
                                           now_monotonic_ns(), &delay_ns);

        switch (d) {
        case RESTART_LATER:
                r->ops->audit(r->owner, AUDIT_EVENT_LIFECYCLE,
                              json_pack("{s:s, s:I, s:s}", "what", "restart", "delay_ms",
                                        (json_int_t)(delay_ns / 1000000), "reason",
                                        restart_reason(&r->last_exit)));
                r->restart_pending = true;
                timer_start(r, delay_ns / 1000000, on_restart_timer);
                break;
        case RESTART_GIVE_UP:
                log_error("%s: restarted %d times within %llu s; giving up", r->name, RESTART_BURST,
                          (unsigned long long)(RESTART_INTERVAL_NS / 1000000000ull));
                r->ops->audit(r->owner, AUDIT_EVENT_LIFECYCLE,
                              json_pack("{s:s}", "what", "gave-up"));
                break;
        case RESTART_NO:
                break;
        }
        return d;
}

bool sandboxed_cancel_restart(SandboxedRun *r)
{
        bool was = r->restart_pending;

        if (was && r->timer_init)
                uv_timer_stop(&r->timer);
        r->restart_pending = false;
        return was;
}

static void on_stop_timer(uv_timer_t *t)
{
        SandboxedRun *r = t->data;

        if (r->sandbox && !r->sandbox->exited) {
                log_warning("%s did not stop within %d ms; killing it", r->name,
                            SUPERVISOR_STOP_GRACE_MS);
                sandboxed_stop(r, true);
        }
}

void sandboxed_signal(SandboxedRun *r, int signum)
{
        if (!r->sandbox)
                return;
        if (signum == SIGKILL && r->sandbox->cgroup)
                (void)cgroup_kill(r->sandbox->cgroup);
        (void)sandbox_signal(r->sandbox, signum);
}

void sandboxed_stop(SandboxedRun *r, bool kill)
{
        if (!r->sandbox || r->sandbox->exited)
                return;
        if (kill) {
                sandboxed_signal(r, SIGKILL);
                return;
        }
        sandboxed_signal(r, SIGTERM);
        timer_start(r, SUPERVISOR_STOP_GRACE_MS, on_stop_timer);
}

int sandboxed_report_failed(SandboxedRun *r, const SupervisorError *e)
{
        int exit_code = supervisor_exit_code(r->sup, e);
        int error = e->error > 0 ? e->error : EIO;
        const char *step = sandbox_step_to_string(e->sandbox_step);

        if (e->step != SUPERVISOR_STEP_SANDBOX) {
                r->ops->status(r->owner, json_pack("{s:s, s:s, s:i}", "event", "failed", "error",
                                                   strerror(error), "exit_code", exit_code));
                r->ops->audit(r->owner, AUDIT_EVENT_LIFECYCLE,
                              json_pack("{s:s, s:i}", "what", "failed", "errno", error));
                return exit_code;
        }
        r->ops->status(r->owner,
                       json_pack("{s:s, s:s, s:s, s:i, s:i}", "event", "failed", "step", step,
                                 "error", e->detail, "errno", e->error, "exit_code", exit_code));
        r->ops->audit(r->owner, AUDIT_EVENT_LIFECYCLE,
                      json_pack("{s:s, s:s, s:s, s:i}", "what", "failed", "step", step, "error",
                                e->detail, "errno", e->error));
        return exit_code;
}

void sandboxed_done(SandboxedRun *r)
{
        r->sandbox = sandbox_free(r->sandbox);
        r->stats = luastats_free(r->stats);
        free(r->denials);
        r->denials = NULL;
}
