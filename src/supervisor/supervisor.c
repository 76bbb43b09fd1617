/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel's shared parts: one libuv loop, the state dir's registry, grants and
 * audit log, the bus and the broker, the signals, and what the broker asks of the
 * kernel (BrokerHost: launch another app, show a notification, prompt the user).
 */
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/termsafe.h"
#include "base/time-util.h"
#include "net/group.h"
#include "policy/capability.h"
#include "policy/signature.h"
#include "supervisor/error.h"
#include "supervisor/run.h"
#include "memory/config.h"
#include "supervisor/memory-manager.h"
#include "supervisor/appnet.h"
#include "supervisor/supervisor-internal.h"
#include "supervisor/terminal.h"

/* Set once a "failed" or "exited" record went out: the run's outcome is told, and
 * supervisor_report_failure() adds nothing (an app's own exit code may be 240-254). */
static bool outcome_reported;

void supervisor_report_failure(int fd, const SupervisorError *e, int exit_code)
{
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        char *text, *line;
        size_t n;
        json_t *o;

        if (fd < 0 || e->step == SUPERVISOR_STEP_NONE || e->step == SUPERVISOR_STEP_DEPENDS ||
            (e->step == SUPERVISOR_STEP_SANDBOX && e->sandbox_step == SANDBOX_STEP_EXEC) ||
            outcome_reported)
                return;
        o = json_pack("{s:s, s:s, s:s, s:i}", "event", "failed", "step", supervisor_error_step(e),
                      "error", log_last_error()[0] ? log_last_error() : "failed", "exit_code",
                      exit_code);
        text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!text)
                return;
        n = strlen(text);
        line = realloc(text, n + 2);
        if (!line) {
                free(text);
                return;
        }
        line[n] = '\n';
        /* As at any exit (SUPERVISOR_OUTLET_LINGER_MS): a reader that does not read
         * loses the record, it never holds cella. One write: a whole line or none
         * (a pipe takes up to PIPE_BUF bytes at once; LOG_LINE_MAX is 4096). */
        if (poll(&pfd, 1, SUPERVISOR_OUTLET_LINGER_MS) == 1 && (pfd.revents & POLLOUT))
                (void)!write(fd, line, n + 1);
        free(line);
        outcome_reported = true;
}

void supervisor_status(Supervisor *s, json_t *o)
{
        char *text;

        if (o && json_is_string(json_object_get(o, "event")) &&
            (strcmp(json_string_value(json_object_get(o, "event")), "failed") == 0 ||
             strcmp(json_string_value(json_object_get(o, "event")), "exited") == 0))
                outcome_reported = true;
        lifecycle_status_record(s, o);
        if (o && s->o.status_cb)
                s->o.status_cb(o, s->o.status_userdata);
        if (!s->status_outlet || !o) {
                json_decref(o);
                return;
        }
        text = json_dumps(o, JSON_COMPACT);
        if (text) {
                size_t n = strlen(text);
                char *line = realloc(text, n + 2);

                if (line) {
                        line[n] = '\n';
                        /* One record, whole or dropped (and counted): a reader that
                         * lags never stalls the loop (outlet.h). */
                        (void)outlet_put_record(s->status_outlet, line, n + 1);
                        text = line;
                }
                free(text);
        }
        json_decref(o);
}

void supervisor_audit(Supervisor *s, const char *app, const char *event, json_t *fields)
{
        int r;

        if (!fields)
                return;
        if (supervisor_ready(s, NULL) < 0) {
                json_decref(fields);
                return;
        }
        r = audit_append(s->audit, app, event, fields);
        if (r >= 0)
                r = audit_flush(s->audit);
        if (r < 0)
                log_warning_errno(r, "cannot write to the audit log: %m");
        json_decref(fields);
}

Control *supervisor_control(Supervisor *s)
{
        return s->control;
}

Instance *supervisor_find(Supervisor *s, const char *id)
{
        for (size_t i = 0; i < s->n_apps; i++)
                if (strcmp(s->apps[i]->manifest->id, id) == 0)
                        return s->apps[i];
        return NULL;
}

static void host_notify(void *userdata, const char *app_id, const char *title, const char *body,
                        int urgency)
{
        Supervisor *s = userdata;
        char t[256], b[BROKER_NOTIFY_TEXT_MAX + 1];
        Instance *inst = supervisor_find(s, app_id);

        /* An app's words must not drive our terminal. */
        termsafe_field(title ?: "", sizeof t - 4, t, sizeof t);
        termsafe_field(body ?: "", sizeof b - 4, b, sizeof b);
        log_info("notification from %s: %s%s%s", app_id, t, b[0] ? ": " : "", b);
        if (inst && inst->log) {
                char line[sizeof t + sizeof b + 64];
                int n = snprintf(line, sizeof line, "[cella] notification: %s%s%s\n", t,
                                 b[0] ? ": " : "", b);

                if (n > 0)
                        (void)applog_write(inst->log, line, MIN((size_t)n, sizeof line - 1));
        }
        supervisor_status(s, json_pack("{s:s, s:s, s:s, s:s, s:i}", "event", "notification", "app",
                                       app_id, "title", t, "body", b, "urgency", urgency));
}

static int host_launch(void *userdata, const char *caller_id, const char *target_id,
                       bool *ret_already_running)
{
        Supervisor *s = userdata;
        Instance *inst = supervisor_find(s, target_id);
        SandboxedRun *run;
        bool restarting;
        int r;

        if (!inst)
                return -ENOENT;
        run = inst->group ? &inst->group->run : &inst->run;
        restarting = inst->state == INSTANCE_RESTARTING;
        if (inst->state == INSTANCE_RUNNING) {
                LifecycleError e;

                /* An intent thaws an app the memory manager froze (issue 13): it is
                 * about to be delivered on the app's bus endpoint. */
                if (lifecycle_uncache(inst, "intent", &e) < 0)
                        log_warning("%s: %s", target_id, e.message);
                *ret_already_running = true;
                return 0;
        }
        if (s->stopping)
                return -EBUSY;
        log_info("%s: launched by %s", target_id, caller_id);
        /* As Android's startActivity(): the app launched comes to the front. */
        inst->life.start_role = INSTANCE_ROLE_FOREGROUND;
        r = instance_start(inst);
        /* A start replaces a pending restart (the spawn cancels it), and so does a
         * start that failed for good (FAILED). One that could not begin (its last
         * run still being cleaned up: the states stand) leaves the restart pending,
         * or the app would stay "restarting" with nothing to restart it. */
        if (restarting && inst->state != INSTANCE_RESTARTING)
                sandboxed_cancel_restart(run);
        if (r != 0)
                return -EIO;
        *ret_already_running = false;
        return 0;
}

/* A question the broker asked: prompt.c calls back with our struct, which says
 * whom to tell. */
typedef struct PromptCall {
        Supervisor *sup;
        BrokerPromptDone done;
        void *done_userdata;
        struct PromptCall *next;
} PromptCall;

static void prompt_call_unlink(Supervisor *s, PromptCall *pc)
{
        for (PromptCall **p = &s->prompt_calls; *p; p = &(*p)->next)
                if (*p == pc) {
                        *p = pc->next;
                        return;
                }
}

static void host_prompt_done(int answer, void *ud)
{
        PromptCall *pc = ud;
        BrokerPromptDone done = pc->done;
        void *done_userdata = pc->done_userdata;

        prompt_call_unlink(pc->sup, pc);
        free(pc);
        done(answer == PROMPT_ALLOW_ALWAYS ? BROKER_PROMPT_ALLOW
             : answer == PROMPT_ALLOW_ONCE ? BROKER_PROMPT_ALLOW_ONCE
                                           : BROKER_PROMPT_DENY,
             done_userdata);
}

static int host_prompt(void *userdata, const char *app_id, const char *right, const char *reason,
                       BrokerPromptDone done, void *done_userdata)
{
        Supervisor *s = userdata;
        const CapabilityInfo *cap = capability_lookup(right, strcspn(right, ":"));
        PromptCall *pc;
        int r;

        if (!s->prompt)
                return -ENOTTY;
        pc = calloc(1, sizeof *pc);
        if (!pc)
                return -ENOMEM;
        pc->sup = s;
        pc->done = done;
        pc->done_userdata = done_userdata;
        r = prompt_ask(s->prompt, app_id, right, cap ? cap->description : "", reason ?: "",
                       host_prompt_done, pc);
        if (r < 0) {
                free(pc);
                return r;
        }
        pc->next = s->prompt_calls;
        s->prompt_calls = pc;
        return 0;
}

/* BrokerHost.grants_changed: a grant recorded by this kernel's broker (a prompt's
 * answer) reaches the other kernels of the state directory as `cella grant`'s does.
 * control_notify_other_kernels() never waits: a non-blocking connect and one
 * MSG_DONTWAIT line per socket, at most CONTROL_KERNELS_MAX sockets, no reply read. */
static void host_grants_changed(void *userdata, const char *app_id)
{
        Supervisor *s = userdata;
        int r;

        /* Its forwards too (a prompt may have granted net.listen). */
        supervisor_ports_grants_changed(s, app_id);
        r = control_notify_other_kernels(s->o.state_dir, app_id);
        if (r < 0 && r != -EACCES)
                log_warning_errno(r, "cannot tell the other kernels that %s's grants changed: %m",
                                  app_id);
        supervisor_net_grants_changed(s, app_id);
}

static void host_prompt_cancel(void *userdata, void *done_userdata)
{
        Supervisor *s = userdata;

        for (PromptCall *pc = s->prompt_calls; pc; pc = pc->next)
                if (pc->done_userdata == done_userdata) {
                        prompt_cancel(s->prompt, pc);
                        prompt_call_unlink(s, pc);
                        free(pc);
                        return;
                }
}

/* Holds (or releases) stdout and stderr, whatever they are, and the status outlet if
 * it writes to a terminal. stdout and stderr are held even as pipes: `cella run app |
 * tee log` puts the app's bytes on the same terminal as the question, through tee,
 * where they are neither rendered inert nor ordered after the question. */
static void hold_terminals(Supervisor *s, bool hold)
{
        Outlet *const outlets[] = {s->out_outlet, s->err_outlet, s->status_outlet};

        for (size_t i = 0; i < ELEMENTSOF(outlets); i++)
                if (outlets[i] &&
                    (outlets[i] != s->status_outlet || outlet_is_terminal(outlets[i])))
                        outlet_hold(outlets[i], hold);
}

/* While a question is on the terminal, the terminal is the prompt's alone: its
 * input is the answer, not the app's, and nothing else is written to it (the apps'
 * output and the kernel's messages wait in their outlets, the apps on their
 * pipes), so nothing can be drawn over or next to the question. */
static void prompt_begin(void *ud)
{
        Supervisor *s = ud;

        s->prompting = true;
        for (size_t i = 0; i < s->n_apps; i++)
                if (s->apps[i]->in.open && !s->apps[i]->in.waiting)
                        uv_poll_stop(&s->apps[i]->in.poll);
        hold_terminals(s, true);
        /* The answer is typed as a line, echoed: not in an app's raw mode. */
        s->prompt_unraw = terminal_is_raw();
        terminal_restore();
}

static void prompt_end(void *ud)
{
        Supervisor *s = ud;

        s->prompting = false;
        if (s->prompt_unraw)
                (void)terminal_raw();
        s->prompt_unraw = false;
        hold_terminals(s, false);
        for (size_t i = 0; i < s->n_apps; i++)
                if (s->apps[i]->in.open && !s->apps[i]->in.waiting)
                        (void)uv_poll_start(&s->apps[i]->in.poll, UV_READABLE,
                                            s->apps[i]->in.poll.poll_cb);
}

/* org.cella.Ps (docs/api.md): {"apps": [<app record>, ...]}. */
static int method_ps(ControlCall *call, json_t *params, void *userdata)
{
        Supervisor *s = userdata;
        json_t *a = json_array();

        for (size_t i = 0; a && i < s->n_apps; i++)
                json_array_append_new(a, instance_record(s->apps[i]));
        if (!a)
                return -ENOMEM;
        return control_reply(call, json_pack("{s:o}", "apps", a));
}

/* org.cella.Stats (docs/api.md): {"hosts": [<Lua host stats>, ...]}, only the host
 * running parameters.app when given. */
static int method_stats(ControlCall *call, json_t *params, void *userdata)
{
        Supervisor *s = userdata;
        const char *app_id;
        json_t *hosts;
        bool missing;

        app_id = control_param_app(call, params, "app", &missing);
        if (!app_id && !missing)
                return 0; /* refused */
        hosts = json_array();
        for (size_t i = 0; hosts && i < s->n_apps; i++) {
                Instance *inst = s->apps[i];
                const char *id = inst->manifest->id;
                json_t *o;

                if (inst->group || !inst->run.stats || inst->state != INSTANCE_RUNNING ||
                    !inst->run.sandbox || (app_id && strcmp(app_id, id) != 0))
                        continue;
                o = luastats_json(inst->run.stats, &id, NULL);
                if (!o)
                        continue;
                json_object_set_new(o, "host", json_string(id));
                json_object_set_new(o, "group", json_null());
                json_object_set_new(o, "pid", json_integer(inst->run.sandbox->pid));
                json_array_append_new(hosts, o);
        }
        for (size_t i = 0; hosts && i < s->n_groups; i++) {
                json_t *o = group_stats(s->groups[i], app_id);

                if (o)
                        json_array_append_new(hosts, o);
        }
        if (!hosts)
                return -ENOMEM;
        return control_reply(call, json_pack("{s:o}", "hosts", hosts));
}

/* org.cella.GrantsChanged (docs/api.md): grants.db changed for parameters.app (any
 * app when absent); the broker re-reads them. */
static int method_grants_changed(ControlCall *call, json_t *params, void *userdata)
{
        Supervisor *s = userdata;
        const char *app_id;
        bool missing;

        app_id = control_param_app(call, params, "app", &missing);
        if (!app_id && !missing)
                return 0;
        supervisor_grants_changed(s, app_id);
        return control_reply(call, NULL);
}

void supervisor_grants_changed(Supervisor *s, const char *app_id)
{
        int r = 0;

        /* net.internet first: a revoked interface goes before anything else is read. */
        (void)appnet_recheck(s, app_id);
        if (s->broker)
                r = broker_grants_changed(s->broker, app_id);
        supervisor_ports_grants_changed(s, app_id);
        if (r < 0)
                log_warning_errno(r, "cannot re-read the grants of %s: %m", app_id ?: "the apps");
        else if (r > 0)
                log_info("%s lost %d right(s): their handles are closed", app_id ?: "an app", r);
        /* A revoked net.group's interface is gone before the reply (`cella revoke`
         * waits for it). */
        supervisor_net_grants_changed(s, app_id);
}

void supervisor_app_forgotten(Supervisor *s, const char *app_id)
{
        if (s->broker)
                (void)broker_ipc_queue_forget_owner(s->broker, app_id); /* logs */
}

/* org.cella.AppForgotten (docs/api.md): `cella forget` forgot parameters.app, which
 * this kernel does not run; what it created and this kernel holds goes too. */
static int method_app_forgotten(ControlCall *call, json_t *params, void *userdata)
{
        Supervisor *s = userdata;
        const char *app_id;
        Instance *inst;
        bool missing;

        app_id = control_param_app(call, params, "app", &missing);
        if (missing)
                return control_reply_invalid_parameter(call, "app", "missing: the app forgotten");
        if (!app_id)
                return 0;
        inst = supervisor_find(s, app_id);
        if (inst && instance_state(inst) != INSTANCE_STATE_INSTALLED &&
            instance_state(inst) != INSTANCE_STATE_STOPPED &&
            instance_state(inst) != INSTANCE_STATE_FAILED)
                return control_reply_invalid_parameter(call, "app",
                                                       "it runs in this kernel: stop it first");
        supervisor_app_forgotten(s, app_id);
        return control_reply(call, NULL);
}

/* org.cella.Stop (docs/api.md): stops parameters.app. */
static int method_stop(ControlCall *call, json_t *params, void *userdata)
{
        Supervisor *s = userdata;
        const char *app_id;
        Instance *inst;
        bool missing;

        app_id = control_param_app(call, params, "app", &missing);
        if (missing)
                return control_reply_invalid_parameter(call, "app", "missing: the app to stop");
        if (!app_id)
                return 0;
        inst = supervisor_find(s, app_id);
        if (!inst)
                return control_reply_error(call, CONTROL_ERROR_NO_SUCH_APP,
                                           json_pack("{s:s,s:s}", "app", app_id, "message",
                                                     "no such app in this kernel"));
        instance_stop(inst, false);
        return control_reply(call, NULL);
}

/* The last SUPERVISOR_METHODS_APPS of them are served by cellad's app methods instead
 * (src/daemon/app-methods.c: Ps with "all" and "more", Stop with "wait") in daemon
 * mode. */
#define SUPERVISOR_METHODS_APPS 2
static const ControlMethod supervisor_methods[] = {
        {"org.cella.Stats", CONTROL_ACCESS_READ, method_stats},
        {"org.cella.GrantsChanged", CONTROL_ACCESS_MANAGE, method_grants_changed},
        {"org.cella.AppForgotten", CONTROL_ACCESS_MANAGE, method_app_forgotten},
        {"org.cella.Ps", CONTROL_ACCESS_READ, method_ps},
        {"org.cella.Stop", CONTROL_ACCESS_MANAGE, method_stop},
};

static bool is_app(const Instance *inst)
{
        return inst->manifest->kind == MANIFEST_KIND_APP;
}

void supervisor_changed(Supervisor *s)
{
        bool apps_active = false, any_active = false, any_app = false;

        /* Each app's state, recorded if it changed (lifecycle.h). */
        for (size_t i = 0; i < s->n_apps; i++)
                lifecycle_note(s->apps[i]);
        for (size_t i = 0; i < s->n_apps; i++) {
                bool active = instance_active(s->apps[i]);

                any_active |= active;
                if (is_app(s->apps[i])) {
                        any_app = true;
                        apps_active |= active;
                }
        }
        /* A packed group's host outlives its last member by a moment (it exits when
         * it has no app left): until its exit is handled (its "group-exited"
         * record, its keeper set dropped), the kernel is not done. */
        for (size_t i = 0; i < s->n_groups; i++)
                any_active |= s->groups[i]->state == INSTANCE_RUNNING;
        /* A daemon runs on with no app until it is told to stop. */
        if (!any_active && (!s->o.daemon || s->stopping)) {
                /* Only a running loop: a stop flag left set would make the next
                 * uv_run() (supervisor_free()'s, for the close callbacks) do nothing. */
                if (s->running)
                        uv_stop(&s->loop);
                return;
        }
        if (!s->o.boot)
                return;
        /* A boot ends when its apps have: the services they used stop then. A boot of
         * services alone runs until stopped. */
        if (!s->stopping && any_app && !apps_active && !s->o.daemon) {
                log_info("every app has exited; stopping the services");
                s->stopping = true;
        }
        if (!s->stopping || apps_active)
                return;
        /* Services last, the ones that others depend on after those: the highest wave
         * still active is stopped first. */
        {
                unsigned top = 0;

                for (size_t i = 0; i < s->n_apps; i++)
                        if (instance_active(s->apps[i]))
                                top = MAX(top, s->apps[i]->wave);
                for (size_t i = 0; i < s->n_apps; i++)
                        if (instance_active(s->apps[i]) && s->apps[i]->wave == top &&
                            !s->apps[i]->stop_requested)
                                instance_stop(s->apps[i], false);
        }
}

/* SIGWINCH under cella run -t: the user's terminal changed size; each app's pty
 * gets the new size, and with it (the kernel's tty layer) its own SIGWINCH. */
static void on_winch(uv_signal_t *h, int signum)
{
        Supervisor *s = h->data;
        struct winsize ws = {};

        (void)signum;
        terminal_size(&ws.ws_row, &ws.ws_col);
        for (size_t i = 0; i < s->n_apps; i++)
                if (s->apps[i]->pty_master >= 0 && s->apps[i]->out.open)
                        (void)ioctl(s->apps[i]->pty_master, TIOCSWINSZ, &ws);
}

/* Ctrl-C, TERM, HUP. cella run: forwarded to the app (a second Ctrl-C kills it).
 * cella boot: stop every app, apps first, then services; a second Ctrl-C kills all. */
static void on_signal(uv_signal_t *h, int signum)
{
        Supervisor *s = h->data;
        bool kill = signum == SIGINT && ++s->interrupts > 1;

        s->signalled = true;
        supervisor_output_check(s);

        if (!s->o.boot) {
                for (size_t i = 0; i < s->n_groups; i++)
                        sandboxed_signal(&s->groups[i]->run, kill ? SIGKILL : signum);
                for (size_t i = 0; i < s->n_apps; i++)
                        sandboxed_signal(&s->apps[i]->run, kill ? SIGKILL : signum);
                return;
        }
        if (!s->stopping)
                log_info("stopping every app%s",
                         s->o.daemon ? "" : " (Ctrl-C again to kill them now)");
        supervisor_stop_all(s, kill);
}

void supervisor_stop_all(Supervisor *s, bool kill)
{
        s->stopping = true;
        for (size_t i = 0; i < s->n_apps; i++) {
                Instance *inst = s->apps[i];

                if (kill)
                        instance_stop(inst, true);
                else if (is_app(inst) && !inst->stop_requested)
                        instance_stop(inst, false);
                else if (inst->state == INSTANCE_RESTARTING)
                        instance_stop(inst, false);
        }
        supervisor_changed(s);
}

/* Stops p waiting for its outlet: from now on it reads and drops. */
static void pump_discard(Pump *p)
{
        if (!p->open || !p->outlet)
                return;
        outlet_cancel_wait(p->outlet, &p->wait);
        p->outlet = NULL;
        p->sanitize = false;
        if (p->waiting) {
                p->waiting = false;
                (void)uv_poll_start(&p->poll, UV_READABLE, p->poll.poll_cb);
        }
}

void supervisor_sweep(Supervisor *s)
{
        int r;

        if (!s->sweep_pending)
                return;
        s->sweep_pending = false;
        r = cgroup_sweep(s->cgm);
        if (r > 0)
                log_debug("swept %d cgroup(s) left by cella processes that are gone", r);
        else if (r < 0)
                log_warning_errno(r, "cannot sweep leftover cgroups: %m");
}

void supervisor_check_init(Supervisor *s, const Sandbox *sb)
{
        if (!sb || sb->init_exec >= 0 || s->init_warned)
                return;
        s->init_warned = true;
        if (sb->init_exec == -SANDBOX_INIT_DUMPABLE_HOST) {
                log_warning("fs.suid_dumpable is 1 on this host: each sandbox's init stays a copy "
                            "of the kernel (more memory per app), as exec'ing %s would leave it "
                            "dumpable, its memory open to the app, for a moment. Set it to 0 or 2",
                            launch_init_path());
                return;
        }
        log_warning("cannot run %s as the sandboxes' init: %s; each sandbox's init stays a copy "
                    "of the kernel (more memory per app). It must be owned by root, mode 0711 "
                    "(executable, not readable, by others): reinstall cella",
                    launch_init_path(),
                    sb->init_exec == -EPERM ? "it is not root's or is readable by others"
                                            : strerror(-sb->init_exec));
}

void supervisor_output_check(Supervisor *s)
{
        if (!s->signalled)
                return;
        for (size_t i = 0; i < s->n_apps; i++)
                if (s->apps[i]->run.sandbox && !s->apps[i]->run.sandbox->exited)
                        return;
        for (size_t i = 0; i < s->n_groups; i++)
                if (s->groups[i]->run.sandbox && !s->groups[i]->run.sandbox->exited)
                        return;
        /* Stopped by a signal and no app runs: the person wants out. Output still in
         * the apps' pipes that nobody takes (a reader that stopped reading) must not
         * keep the run alive: it is read and dropped; what the outlets hold gets
         * SUPERVISOR_OUTLET_LINGER_MS at exit. */
        for (size_t i = 0; i < s->n_apps; i++) {
                pump_discard(&s->apps[i]->out);
                pump_discard(&s->apps[i]->err);
        }
        for (size_t i = 0; i < s->n_groups; i++) {
                pump_discard(&s->groups[i]->out);
                pump_discard(&s->groups[i]->err);
        }
}

/*
 * The parts of the kernel an app needs only once it runs: grants, audit log, bus,
 * prompt, control socket, broker. instance.c calls this once the first sandbox
 * runs, so it overlaps with the app starting on the other CPU, not with the spawn
 * (on 2 CPUs, work during the spawn slowed it: bench/start).
 * Prints what went wrong; returns 0 or a negative errno with *err, remembered.
 */
int supervisor_ready(Supervisor *s, SupervisorError *err)
{
        const SupervisorOptions *o = &s->o;
        SupervisorStep step = SUPERVISOR_STEP_INTERNAL;
        int r;

        if (s->ready) {
                if (err && s->ready_error.step != SUPERVISOR_STEP_NONE)
                        *err = s->ready_error;
                return s->ready_error.step != SUPERVISOR_STEP_NONE ? -s->ready_error.error : 0;
        }
        s->ready = true;
        r = grants_open(o->state_dir, &s->grants);
        if (r < 0) {
                log_error_errno(r, "cannot open %s/%s: %m", o->state_dir, GRANTS_DB_FILE);
                step = SUPERVISOR_STEP_STATE;
                goto fail;
        }
        r = audit_open(o->state_dir, &(AuditOptions){.sync_lag_ms = SUPERVISOR_AUDIT_SYNC_LAG_MS},
                       &s->audit);
        if (r < 0) {
                log_error_errno(r,
                                "cannot open the audit log in %s/audit: %m (see 'cella audit "
                                "--verify')",
                                o->state_dir);
                step = SUPERVISOR_STEP_STATE;
                goto fail;
        }
        r = bus_new(&s->bus);
        if (r < 0)
                goto fail;
        r = prompt_new(&s->loop, o->no_prompt, &s->prompt);
        if (r < 0)
                goto fail;
        prompt_set_hooks(s->prompt, prompt_begin, prompt_end, s);
        r = control_new(&s->loop, &s->control);
        if (r >= 0)
                r = control_add_methods(s->control, supervisor_methods,
                                        ELEMENTSOF(supervisor_methods) -
                                                (o->daemon ? SUPERVISOR_METHODS_APPS : 0),
                                        s);
        if (r >= 0)
                r = control_add_methods(s->control, supervisor_net_methods, SUPERVISOR_NET_METHODS,
                                        s);
        if (r >= 0)
                r = control_listen_kernel(s->control, o->state_dir);
        if (r < 0) {
                /* cella ps and live revokes need it, the apps do not. */
                log_warning_errno(r,
                                  "cannot listen on %s/%s: %m; 'cella ps' will not see this "
                                  "kernel",
                                  o->state_dir, CONTROL_DIR);
                s->control = control_close(s->control);
        }

        {
                static const BrokerHost host_ops = {
                        .launch = host_launch,
                        .notify = host_notify,
                        .prompt = host_prompt,
                        .prompt_cancel = host_prompt_cancel,
                        .grants_changed = host_grants_changed,
                };
                BrokerHost *host = malloc(sizeof *host);

                r = -ENOMEM;
                if (!host)
                        goto fail;
                *host = host_ops;
                host->userdata = s;
                /* net.connect's limits and keystore.keys_max: cellad hands its
                 * cellad.conf's; a kernel of its own (`cella run`, `cella boot`) reads
                 * the net.* and keystore.* keys of the state
                 * directory's file itself, so every kernel on one state directory
                 * applies the same limits (docs/config.md). A file that does not
                 * load leaves the defaults, said once. */
                uint64_t net_conns_max = o->net_conns_max, net_rate = o->net_rate,
                         net_burst = o->net_burst, keystore_keys_max = o->keystore_keys_max;
                uint64_t ipc[6] = {o->ipc_objects_max,     o->ipc_handles_max,
                                   o->ipc_shm_bytes_max,   o->ipc_pending_max,
                                   o->ipc_queue_depth_max, o->ipc_queued_bytes_max};
                if (!o->daemon && !net_conns_max && !net_rate && !net_burst) {
                        ManagerConfig mc;
                        char *path = NULL, *why = NULL;

                        if (manager_config_load(state_path(s->state), NULL, &mc, &path, &why) ==
                            0) {
                                net_conns_max = mc.net.conns_max;
                                net_rate = mc.net.rate;
                                net_burst = mc.net.burst;
                                if (!keystore_keys_max)
                                        keystore_keys_max = mc.keystore_keys_max;
                                ipc[0] = mc.ipc.objects_max;
                                ipc[1] = mc.ipc.handles_max;
                                ipc[2] = mc.ipc.shm_bytes_max;
                                ipc[3] = mc.ipc.pending_max;
                                ipc[4] = mc.ipc.queue_depth_max;
                                ipc[5] = mc.ipc.queued_bytes_max;
                        } else
                                log_warning("%s; net.connect's limits and the ipc quotas are the "
                                            "defaults",
                                            why);
                        free(path);
                        free(why);
                }
                r = broker_new(&(BrokerOptions){.loop = &s->loop,
                                                .grants = s->grants,
                                                .audit = s->audit,
                                                .bus = s->bus,
                                                .state_dir = state_path(s->state),
                                                .roots = o->roots,
                                                .host = host,
                                                .net_conns_max = net_conns_max,
                                                .net_rate = net_rate,
                                                .net_burst = net_burst,
                                                .keystore_keys_max = keystore_keys_max,
                                                .ipc_objects_max = ipc[0],
                                                .ipc_handles_max = ipc[1],
                                                .ipc_shm_bytes_max = ipc[2],
                                                .ipc_pending_max = ipc[3],
                                                .ipc_queue_depth_max = ipc[4],
                                                .ipc_queued_bytes_max = ipc[5]},
                               &s->broker);
                if (r < 0) {
                        free(host);
                        log_error_errno(r, "cannot start the broker: %m");
                        goto fail;
                }
                s->host = host;
        }

        return 0;
fail:
        /* What was opened is closed by supervisor_free(). */
        r = supervisor_error(&s->ready_error, step, r, "the kernel's setup");
        if (err)
                *err = s->ready_error;
        return r;
}

/*
 * Every running app costs the kernel a channel fd and pipes, and a packed group
 * of n apps needs 3n fds at once while its host is set up (channels both ends,
 * logs): raise our RLIMIT_NOFILE, soft and hard (we are root), to fs.nr_open up
 * to SUPERVISOR_NOFILE_MAX. Best effort: on failure the limit stays as it was and
 * a spawn that needs more fails with EMFILE, named.
 */
static void raise_nofile(void)
{
        _cleanup_free_ char *text = NULL;
        unsigned long long nr_open = SUPERVISOR_NOFILE_MAX;
        struct rlimit rl;

        if (read_file_at(AT_FDCWD, "/proc/sys/fs/nr_open", 64, &text, NULL) >= 0)
                nr_open = MIN(strtoull(text, NULL, 10), (unsigned long long)SUPERVISOR_NOFILE_MAX);
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= nr_open)
                return;
        rl.rlim_cur = MAX((rlim_t)nr_open, rl.rlim_cur);
        rl.rlim_max = MAX(rl.rlim_cur, rl.rlim_max);
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
                rl.rlim_cur = rl.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
}

/* LogWriter: the kernel's messages go through its stderr outlet (outlet.h). */
static void supervisor_log(int level, const char *line, size_t n, void *userdata)
{
        Supervisor *s = userdata;

        if (s->err_outlet)
                (void)outlet_put_record(s->err_outlet, line, n);
}

/*
 * The observers' outlets: stderr (the kernel's messages, the apps' stderr under
 * cella run), stdout (the apps' stdout under cella run), the --json-status fd.
 * A closed stdout or stderr gets none (what would go there is dropped). Returns 0
 * or a negative errno.
 */
static int open_outlets(Supervisor *s)
{
        int r;

        if (fcntl(STDERR_FILENO, F_GETFD) >= 0 &&
            outlet_new(&s->loop, STDERR_FILENO, false, SUPERVISOR_OUTLET_MAX,
                       SUPERVISOR_OUTLET_STREAM_MAX, &s->err_outlet) == 0) {
                outlet_set_drop_report(s->err_outlet,
                                       "cella: ", " message(s) dropped: stderr was not read\n");
                log_set_writer(supervisor_log, s);
        }
        if (s->o.output == SUPERVISOR_OUTPUT_TERMINAL && fcntl(STDOUT_FILENO, F_GETFD) >= 0)
                (void)outlet_new(&s->loop, STDOUT_FILENO, false, SUPERVISOR_OUTLET_MAX,
                                 SUPERVISOR_OUTLET_STREAM_MAX, &s->out_outlet);
        if (s->o.json_status_fd >= 0) {
                r = outlet_new(&s->loop, s->o.json_status_fd, false, SUPERVISOR_STATUS_MAX, 0,
                               &s->status_outlet);
                if (r < 0)
                        return log_error_errno(r, "--json-status: cannot write to fd %d: %m",
                                               s->o.json_status_fd);
                outlet_set_drop_report(s->status_outlet,
                                       "{\"event\":\"dropped\",\"count\":", "}\n");
        }
        return 0;
}

/* Before exit: the observers get SUPERVISOR_OUTLET_LINGER_MS in all to take what
 * is still buffered; then the outlets are closed and messages go to stderr again. */
static void close_outlets(Supervisor *s)
{
        uint64_t dropped;
        uint64_t t0;
        unsigned left = SUPERVISOR_OUTLET_LINGER_MS, spent;
        Outlet **const outlets[] = {&s->status_outlet, &s->out_outlet, &s->err_outlet};

        for (size_t i = 0; i < ELEMENTSOF(outlets); i++) {
                t0 = now_monotonic_ms();
                (void)outlet_drain(*outlets[i], left);
                spent = (unsigned)(now_monotonic_ms() - t0);
                left = spent < left ? left - spent : 0;
        }
        dropped = outlet_dropped_bytes(s->out_outlet);
        log_set_writer(NULL, NULL);
        if (dropped > 0)
                log_debug("%llu byte(s) of the apps' output were not delivered: stdout was not "
                          "read",
                          (unsigned long long)dropped);
        for (size_t i = 0; i < ELEMENTSOF(outlets); i++)
                *outlets[i] = outlet_free(*outlets[i]);
}

int supervisor_new(const SupervisorOptions *o, Supervisor **ret, SupervisorError *err)
{
        Supervisor *s;
        int r;

        if (geteuid() != 0) {
                log_error("cella needs root: it gives each app its own host uid and cgroup "
                          "(rootless mode is not supported yet)");
                cgroup_manager_free(o->cgm);
                return supervisor_error_at(err, SANDBOX_STEP_PREPARE, EPERM, "cella needs root");
        }
        s = calloc(1, sizeof *s);
        if (!s) {
                cgroup_manager_free(o->cgm);
                return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
        }
        s->o = *o;
        if (o->cpu_weights)
                s->cpu = *o->cpu_weights;
        s->cpu_apply = o->cpu_weights != NULL;
        s->o.cpu_weights = NULL; /* s->cpu is the copy */
        /* Compressed swap (memory-report.c): caps only where the host has it. */
        if (swap_detect("/proc", "/sys", &s->swap_info) < 0)
                s->swap_info = (SwapInfo){};
        if (o->swap_caps)
                s->swap = *o->swap_caps;
        s->swap_apply = o->swap_caps && s->swap.enabled && swap_info_compressed(&s->swap_info);
        s->o.swap_caps = NULL;
        s->o.cgm = NULL; /* s->cgm owns it now */
        if (o->cgm) {
                s->cgm = o->cgm;
                r = 0;
        } else
                r = cgroup_manager_new("/sys/fs/cgroup", o->cgroup_mode, NULL, &s->cgm);
        if (r < 0) {
                log_error_errno(r, "no usable cgroup hierarchy under /sys/fs/cgroup: %m");
                r = supervisor_error_at(err, SANDBOX_STEP_CGROUP, r, "/sys/fs/cgroup");
                goto fail;
        }
        r = state_open(o->state_dir, o->uid_base, o->uid_count, &s->state);
        if (r < 0) {
                log_error_errno(r, "cannot open the state directory %s: %m", o->state_dir);
                r = supervisor_error(err, SUPERVISOR_STEP_STATE, r, o->state_dir);
                goto fail;
        }
        r = seccomp_program_builtin(&(SeccompOptions){.notify = true}, &s->filter);
        if (r < 0) {
                log_error_errno(r, "cannot build the seccomp filter: %m");
                r = supervisor_error_at(err, SANDBOX_STEP_SECCOMP, r, "the seccomp filter");
                goto fail;
        }
        r = uv_loop_init(&s->loop);
        if (r < 0) {
                log_error("cannot start the event loop: %s", uv_strerror(r));
                r = supervisor_error(err, SUPERVISOR_STEP_INTERNAL, r, "the event loop");
                goto fail;
        }
        s->loop_ready = true;
        signal(SIGPIPE, SIG_IGN);
        raise_nofile();
        r = open_outlets(s);
        if (r < 0) {
                r = supervisor_error(err, SUPERVISOR_STEP_USAGE, r, "--json-status");
                goto fail;
        }
        /* Said now that stderr is an outlet: a stderr nobody reads cannot stop us. */
        if (state_created(s->state))
                log_info("created the state directory %s", o->state_dir);

        {
                static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};

                for (size_t i = 0; i < ELEMENTSOF(sigs); i++) {
                        uv_signal_t *h = &s->signals[s->n_signals];

                        if (sigs[i] == SIGWINCH && !o->tty)
                                break;
                        if (sigs[i] == SIGHUP && o->daemon)
                                continue; /* the daemon's: re-exec (src/daemon) */
                        r = uv_signal_init(&s->loop, h);
                        if (r < 0)
                                break;
                        s->n_signals++;
                        h->data = s;
                        r = uv_signal_start(h, sigs[i] == SIGWINCH ? on_winch : on_signal, sigs[i]);
                        if (r < 0)
                                break;
                }
                if (r < 0) {
                        log_error("cannot set up the event loop: %s", uv_strerror(r));
                        r = supervisor_error(err, SUPERVISOR_STEP_INTERNAL, r, "the event loop");
                        goto fail;
                }
        }
        *ret = s;
        return 0;
fail:
        supervisor_free(s);
        return r;
}

/* "<where>: <why>" of a signature problem: an entry of app_dir, or a folder on the
 * way (absolute, signature_check_trust). */
static void signature_where(const char *app_dir, const SignatureError *e, char *buf, size_t n)
{
        if (e->path[0] == '/')
                snprintf(buf, n, "%s", e->path);
        else
                snprintf(buf, n, "%s/%s", app_dir, e->path[0] ? e->path : SIGNATURE_FILE);
}

/*
 * Binds the app id to this folder, or refuses (docs/security.md, "App identity"): the
 * signature is verified here, before the data directory is made or bound, and
 * state_app_claim() accepts only the app that first claimed it (same trusted key,
 * or the same folder for an unsigned one). A signature counts only on a folder
 * nobody but root or cella can change (signature_verify). The folder stays open
 * (inst->app_fd): each start of a signed app verifies it again and binds it, not
 * its path.
 * Returns 0 or a negative errno with *err.
 */
int instance_claim(Supervisor *s, Instance *inst, SupervisorError *err)
{
        const Manifest *m = inst->manifest;
        _cleanup_close_ int dirfd = -EBADF;
        char key_id[SIGNATURE_KEY_ID_CHARS + 1];
        StateClaim claim = {}, rec = {};
        SignatureError serr = {};
        int r;

        _Static_assert(sizeof inst->key_id == SIGNATURE_KEY_ID_CHARS + 1, "Instance.key_id");
        dirfd = open(inst->app_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                r = log_error_errno(negative_errno(), "%s: %m", inst->app_dir);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, r, inst->app_dir);
        }
        /* A signature is looked at only when the bundle has one: a missing SIGNATURE
         * is the common case and costs a failed open. */
        r = signature_verify(dirfd, s->o.state_dir, key_id, &serr);
        inst->signed_ok = r == 0;
        snprintf(inst->key_id, sizeof inst->key_id, "%s", r == 0 ? key_id : "");
        if (r < 0 && r != -ENOENT) {
                char where[2 * SIGNATURE_PATH_MAX + 16];

                signature_where(inst->app_dir, &serr, where, sizeof where);
                log_warning("%s: %s; the bundle counts as unsigned: signature rights are not "
                            "granted%s",
                            where, serr.message ?: strerror(-r),
                            r == -EPERM ? " (a signed bundle must be owned by root and not "
                                          "writable by group or others, nor any folder above "
                                          "it)"
                                        : "");
        }
        if (r == -ENOENT && signature_check_trust(dirfd, &serr) == -EPERM) {
                /* Unsigned, so its path is the app: whoever can write there (or swap
                 * the folder) runs code as it, with its /data and grants. Told, not
                 * refused: that may be what its owner wants (a folder of their own). */
                log_warning("%s: %s: whoever can change it can run code as %s (its /data "
                            "and grants); keep app folders owned by root and not writable "
                            "by group or others",
                            serr.path, serr.message, m->id);
        }
        r = state_claim_of_folder(dirfd, inst->key_id, &claim);
        if (r >= 0)
                r = state_app_claim(s->state, m->id, &claim, grants_now_ms(), &rec);
        if (r == -EEXIST)
                state_claim_log_conflict(m->id, inst->app_dir, &claim, &rec);
        else if (r == -ENOTUNIQ)
                state_claim_log_nested(m->id, inst->app_dir, &claim, &rec);
        else if (r < 0)
                log_error_errno(r, "cannot record who installed %s in %s: %m", m->id,
                                s->o.state_dir);
        state_claim_clear(&claim);
        state_claim_clear(&rec);
        if (r < 0)
                return supervisor_error(err, SUPERVISOR_STEP_STATE, r, "who installed the app");
        /* Kept only where a start uses it (instance_verify_again, instance_start). */
        inst->app_fd = safe_close(inst->app_fd);
        if (inst->signed_ok)
                inst->app_fd = TAKE_FD(dirfd);
        return 0;
}

int instance_verify_again(Instance *inst, SupervisorError *err)
{
        SupervisorError e = {};
        Supervisor *s = inst->sup;
        char key_id[SIGNATURE_KEY_ID_CHARS + 1] = "", where[2 * SIGNATURE_PATH_MAX + 16];
        SignatureError serr = {};
        int r;

        if (!inst->signed_ok)
                return 0;
        r = signature_verify(inst->app_fd, s->o.state_dir, key_id, &serr);
        if (r == 0 && strcmp(key_id, inst->key_id) == 0)
                return 0;
        {
                /* Where the folder is now (it may have been renamed since the claim). */
                char link[64], dir[SIGNATURE_PATH_MAX];
                ssize_t k;

                snprintf(link, sizeof link, "/proc/self/fd/%d", inst->app_fd);
                k = readlink(link, dir, sizeof dir - 1);
                if (k > 0 && dir[0] == '/')
                        dir[k] = 0;
                else
                        snprintf(dir, sizeof dir, "%s", inst->app_dir);
                if (r == 0)
                        snprintf(where, sizeof where, "%s/%s", dir, SIGNATURE_FILE);
                else
                        signature_where(dir, &serr, where, sizeof where);
        }
        log_error("%s: refused to start: %s: %s; its id is bound to trusted key %s "
                  "(docs/security.md, \"App identity\")",
                  inst->manifest->id, where,
                  r == 0 ? "now signed by another key" : serr.message ?: strerror(-r),
                  inst->key_id);
        (void)supervisor_error(&e, SUPERVISOR_STEP_STATE, r == 0 ? EKEYREJECTED : r, where);
        supervisor_status(s, json_pack("{s:s, s:s, s:s, s:s, s:i}", "event", "failed", "app",
                                       inst->manifest->id, "step", "verify", "error",
                                       r == 0 ? "signed by another key"
                                              : serr.message ?: strerror(-r),
                                       "exit_code", supervisor_exit_code(s, &e)));
        supervisor_audit(s, inst->manifest->id, AUDIT_EVENT_LIFECYCLE,
                         json_pack("{s:s, s:s, s:s, s:i}", "what", "failed", "step", "verify",
                                   "error", r == 0 ? "signed by another key"
                                                   : serr.message ?: strerror(-r),
                                   "errno", r == 0 ? EKEYREJECTED : -r));
        if (err)
                *err = e;
        return -e.error;
}

int instance_install(Instance *inst, SupervisorError *err)
{
        Supervisor *s = inst->sup;
        const Manifest *m = inst->manifest;
        const char *app_dir = inst->app_dir;
        const char *bad = NULL, *why = NULL;
        bool changed;
        int r;

        if (inst->installed)
                return 0;
        /* signed_ok and key_id: verified by instance_claim(), before the spawn. */
        r = grants_install_as(s->grants, m, inst->signed_ok, inst->key_id, grants_now_ms(), &bad,
                              &why);
        if (r == -EINVAL && bad) {
                const char *field = "permissions";

                STRV_FOREACH (p, m->exports)
                        if (*p == bad)
                                field = "exports";
                log_error("%s/manifest.json: %s: '%s': %s", app_dir, field, bad, why);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, r, bad);
        }
        if (r < 0) {
                log_error_errno(r, "cannot record the permissions of %s: %m", m->id);
                return supervisor_error(err, SUPERVISOR_STEP_STATE, r, GRANTS_DB_FILE);
        }
        /* What this app exports, or its key, may change what the apps already running
         * reach (docs/capabilities.md, "Reaching other apps"): they re-read their grants,
         * here and in the other kernels sharing the state directory. */
        changed = r > 0;
        if (changed)
                supervisor_grants_changed(s, NULL);
        if (changed) {
                r = control_notify_other_kernels(s->o.state_dir, NULL);
                if (r < 0 && r != -EACCES)
                        log_warning_errno(r, "cannot tell the other kernels that grants "
                                             "changed: %m");
        }
        inst->installed = true;
        return 0;
}

int supervisor_add(Supervisor *s, const char *app_dir, Manifest *m, char *const *extra_args,
                   unsigned wave, Instance **ret, SupervisorError *err)
{
        Instance *inst, **apps;
        int r;

        inst = calloc(1, sizeof *inst);
        if (!inst) {
                manifest_free(m);
                return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
        }
        inst->manifest = m;
        inst->sup = s;
        inst->wave = wave;
        inst->out.from = inst->err.from = inst->in.from = -EBADF;
        inst->app_fd = -EBADF;
        inst->pty_master = inst->pty_hold = -1;
        instance_init_run(inst);
        inst->app_dir = strdup(app_dir);
        if (!inst->app_dir || (extra_args && !(inst->extra_args = strv_copy(extra_args))))
                goto oom;
        apps = reallocarray(s->apps, s->n_apps + 1, sizeof *apps);
        if (!apps)
                goto oom;
        s->apps = apps;
        s->apps[s->n_apps++] = inst;
        if (m->isolation == MANIFEST_ISOLATION_PACKED) {
                r = group_add(s, inst, err);
                if (r < 0)
                        return r;
        }

        /* The id is this app's, or nothing of the id's is given to it. */
        r = instance_claim(s, inst, err);
        if (r < 0)
                return r;
        /* The directory must exist before the jail binds it; its owner, like the uid,
         * is settled while the child builds the jail (instance_prepare()). */
        r = state_app_data_path(s->state, m->id, &inst->data_dir);
        if (r < 0) {
                log_error_errno(r, "cannot prepare the data directory of %s: %m", m->id);
                return supervisor_error(err, SUPERVISOR_STEP_STATE, r, m->id);
        }
        if (ret)
                *ret = inst;
        return 0;
oom:
        instance_free(inst);
        return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
}

int supervisor_exit_code(const Supervisor *s, const SupervisorError *e)
{
        return s->o.exit_code ? s->o.exit_code(e) : e->step != SUPERVISOR_STEP_NONE;
}

void supervisor_loop(Supervisor *s)
{
        bool any = false;

        for (size_t i = 0; i < s->n_apps; i++)
                any |= instance_active(s->apps[i]);
        if (any || (s->o.daemon && !s->stopping)) {
                s->running = true;
                uv_run(&s->loop, UV_RUN_DEFAULT);
                s->running = false;
        }
        /* Stopped in order, every app ended: cellad's keeper goes now (adopt.c). */
        if (s->stopping)
                supervisor_keeper_bye(s);
}

static void walk_close(uv_handle_t *h, void *arg)
{
        if (!uv_is_closing(h))
                uv_close(h, NULL);
}

void supervisor_drop_networks(Supervisor *s)
{
        appnet_drop_all(s);
}

Supervisor *supervisor_free(Supervisor *s)
{
        if (!s)
                return NULL;
        s->freeing = true;
        for (size_t i = 0; i < s->n_apps; i++)
                if (s->apps[i]->run.sandbox && !s->apps[i]->run.sandbox->exited)
                        instance_stop(s->apps[i], true);
        for (size_t i = 0; i < s->n_groups; i++)
                if (s->groups[i]->run.sandbox && !s->groups[i]->run.sandbox->exited)
                        group_stop(s->groups[i], true);
        for (size_t i = 0; i < s->n_apps; i++) {
                Instance *inst = s->apps[i];

                netproxy_free(inst->proxy);
                inst->proxy = NULL;
                broker_app_detach(inst->broker_app);
                inst->broker_app = NULL;
        }
        supervisor_ports_free(s);
        s->broker = broker_free(s->broker);
        free(s->host);
        s->control = control_close(s->control);
        /* The hubs' last fds: the kernel frees every app network (the deletions
         * still queued finish in the uv_run() below). */
        s->netgroups = netgroups_free(s->netgroups);
        s->prompt = prompt_free(s->prompt);
        while (s->prompt_calls) {
                PromptCall *pc = s->prompt_calls;

                s->prompt_calls = pc->next;
                free(pc);
        }
        for (size_t i = 0; i < s->n_apps; i++)
                s->apps[i]->in_outlet = outlet_free(s->apps[i]->in_outlet);
        /* cella run -t: the user's terminal as it was, before the last messages. */
        terminal_restore();
        if (s->loop_ready)
                close_outlets(s);
        supervisor_memory_manager_stop(s);
        if (s->loop_ready) {
                /* Every handle left (pumps, polls, timers, signals) is closed; the fds
                 * behind the pumps are closed with their instances. */
                uv_walk(&s->loop, walk_close, NULL);
                uv_run(&s->loop, UV_RUN_DEFAULT);
                uv_loop_close(&s->loop);
        }
        appnet_free_all(s);
        supervisor_memory_manager_free(s);
        json_decref(s->mem_context);
        lifecycle_free(s);
        for (size_t i = 0; i < s->n_apps; i++) {
                Instance *inst = s->apps[i];

                inst->out.from = safe_close(inst->out.from);
                inst->err.from = safe_close(inst->err.from);
                inst->in.from = safe_close(inst->in.from);
                instance_free(inst);
        }
        free(s->apps);
        for (size_t i = 0; i < SUPERVISOR_MEMORY_RECENT_MAX; i++)
                json_decref(s->mem_recent[i]);
        for (size_t i = 0; i < s->n_groups; i++) {
                Group *g = s->groups[i];

                g->out.from = safe_close(g->out.from);
                g->err.from = safe_close(g->err.from);
                group_free(g);
        }
        free(s->groups);
        /* Every sandbox is gone (instance_free() killed what was left): the keeper too. */
        supervisor_keeper_close(s);
        s->bus = bus_free(s->bus);
        if (s->audit) {
                int r = audit_flush(s->audit);

                if (r < 0)
                        log_warning_errno(r, "cannot write to the audit log: %m");
                s->audit = audit_close(s->audit);
        }
        s->grants = grants_free(s->grants);
        s->state = state_free(s->state);
        seccomp_program_free(s->filter);
        cgroup_manager_free(s->cgm);
        free(s);
        return NULL;
}
