/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An app's full network while it runs (appnet.h): net.internet's grant, pasta's
 * life as a child of the kernel, and the revoke.
 */
#include <errno.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "net/fullnet.h"
#include "policy/grants.h"
#include "supervisor/appnet.h"
#include "supervisor/supervisor-internal.h"

#define NET_INTERNET "net.internet"

struct AppNet {
        Supervisor *sup;
        char *app_id;
        Instance *inst; /* NULL once its run ended (or it was cut): only reaping is left */
        FullNet *net;
        int netns_fd;   /* the app's namespace, for a revoke's drop-all rules; -EBADF once off */
        uv_poll_t poll; /* pasta's pidfd */
        bool poll_init;
        bool closing;
        bool cut;            /* revoked: its exit is expected */
        bool one_time;       /* started on a one-time grant, used up then: it lasts the run */
        FullNetAllow *allow; /* the exceptions its rules hold now */
        size_t n_allow;
        AppNet *next, *prev;
};

bool appnet_wanted(const Manifest *m)
{
        for (char **p = m ? m->permissions : NULL; p && *p; p++)
                if (strcmp(*p, NET_INTERNET) == 0)
                        return true;
        return false;
}

/* Whether app_id holds net.internet now (a grant row, permanent or one-time), and
 * (ret_allow not NULL) the exact addresses its permanent net.connect rights open
 * (*ret_allow, caller frees; a one-time net.connect grant is one connection's, through
 * the broker, never a standing hole in the rules). Returns 1, 0, or a negative errno
 * (grants.db). */
static int granted(Supervisor *s, const char *app_id, FullNetAllow **ret_allow, size_t *ret_n)
{
        _cleanup_free_ Grant *g = NULL;
        _cleanup_free_ FullNetAllow *allow = NULL;
        size_t n = 0, n_allow = 0;
        bool held = false;
        int r;

        if (!s->grants)
                return 0;
        r = grants_list(s->grants, app_id, &g, &n);
        if (r < 0)
                return r;
        if (ret_allow && n > 0) {
                allow = calloc(n, sizeof *allow);
                if (!allow)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                if (strcmp(g[i].right, NET_INTERNET) == 0)
                        held = true;
                else if (allow && !g[i].one_time &&
                         fullnet_allow_parse(g[i].right, &allow[n_allow]) == 1)
                        n_allow++;
        }
        if (ret_allow) {
                *ret_allow = TAKE_PTR(allow);
                *ret_n = n_allow;
        }
        return held;
}

static void appnet_unlink_free(AppNet *an)
{
        Supervisor *s = an->sup;

        if (an->prev)
                an->prev->next = an->next;
        else if (s->appnets == an)
                s->appnets = an->next;
        if (an->next)
                an->next->prev = an->prev;
        if (an->inst && an->inst->net == an)
                an->inst->net = NULL;
        an->net = fullnet_free(an->net);
        safe_close(an->netns_fd);
        free(an->allow);
        free(an->app_id);
        free(an);
}

static void on_poll_closed(uv_handle_t *h)
{
        appnet_unlink_free(h->data);
}

static void appnet_close(AppNet *an)
{
        if (an->closing)
                return;
        an->closing = true;
        if (an->poll_init)
                uv_close((uv_handle_t *)&an->poll, on_poll_closed);
        else
                appnet_unlink_free(an);
}

/* Detaches an from its app (its run ended, or the network was cut): the netns fd
 * goes, pasta is left to be reaped. */
static void appnet_detach(AppNet *an)
{
        if (an->inst && an->inst->net == an)
                an->inst->net = NULL;
        an->inst = NULL;
        an->netns_fd = safe_close(an->netns_fd);
}

static void on_pasta_exit(uv_poll_t *p, int status, int events)
{
        AppNet *an = p->data;
        char msg[FULLNET_MESSAGE_MAX];
        int wstatus = 0, r;

        r = fullnet_reap(an->net, &wstatus, msg, sizeof msg);
        if (r == 0)
                return;
        if (r > 0 && an->inst) {
                /* Not asked for: the app runs on, with loopback only. */
                Supervisor *s = an->sup;
                const char *how =
                        WIFEXITED(wstatus) ? "exited with status" : "was killed by signal";
                int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : WTERMSIG(wstatus);

                log_error("%s: pasta, its network (net.internet), %s %d%s%s: the app is left "
                          "with its loopback only",
                          an->app_id, how, code, msg[0] ? ": " : "", msg);
                supervisor_audit(s, an->app_id, AUDIT_EVENT_LIFECYCLE,
                                 json_pack("{s:s, s:s, s:i, s:s}", "what", "network-lost", "how",
                                           WIFEXITED(wstatus) ? "exited" : "killed",
                                           WIFEXITED(wstatus) ? "status" : "signal", code,
                                           "message", msg));
                appnet_detach(an);
        }
        appnet_close(an);
}

int appnet_start(Instance *inst, pid_t pid, SupervisorError *err)
{
        Supervisor *s = inst->sup;
        const char *id = inst->manifest->id;
        _cleanup_free_ FullNetAllow *allow = NULL;
        char why[FULLNET_MESSAGE_MAX + 128], proc[64];
        size_t n_allow = 0;
        GrantsDecision decision = {};
        AppNet *an;
        FullNetOptions o = {};
        int r, k;

        /* The decision as for any right: a one-time grant is used up by this start
         * (the network then lasts the run). */
        r = s->grants ? grants_check(s->grants, id, NET_INTERNET, grants_now_ms(), &decision)
                      : -EACCES;
        if (r >= 0)
                r = granted(s, id, &allow, &n_allow) < 0 ? -EIO : 1;
        if (r < 0 && r != -EACCES && r != -EPERM) {
                log_error_errno(r, "cannot read the grants of %s: %m", id);
                return supervisor_error(err, SUPERVISOR_STEP_STATE, r, GRANTS_DB_FILE);
        }
        if (r < 0) {
                log_info("%s: net.internet is requested, not granted: the app has its loopback "
                         "only ('cella grant %s net.internet' gives it at its next start)",
                         id, id);
                return 0;
        }
        an = calloc(1, sizeof *an);
        if (!an || !(an->app_id = strdup(id))) {
                free(an);
                return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, -ENOMEM, "net.internet");
        }
        an->sup = s;
        an->netns_fd = -EBADF;
        snprintf(proc, sizeof proc, "/proc/%d/ns/net", (int)pid);
        an->netns_fd = open(proc, O_RDONLY | O_CLOEXEC);
        o.allow = allow;
        o.n_allow = n_allow;
        r = an->netns_fd < 0 ? negative_errno() : 0;
        if (r < 0)
                snprintf(why, sizeof why, "open %s: %s", proc, strerror(-r));
        else
                r = fullnet_start(pid, &o, &an->net, why, sizeof why);
        if (r < 0) {
                char detail[SANDBOX_DETAIL_MAX];

                log_error("cannot give %s its network (net.internet): %s", id, why);
                safe_close(an->netns_fd);
                free(an->app_id);
                free(an);
                /* The namespace's setup, as its loopback's is (exit code 246); the
                 * status and audit records of a failed start, with pasta's reason. */
                snprintf(detail, sizeof detail, "net.internet: %.200s", why);
                r = supervisor_error_at(err, SANDBOX_STEP_NAMESPACE, r, detail);
                sandboxed_report_failed(&inst->run, err);
                return r;
        }
        an->allow = TAKE_PTR(allow);
        an->n_allow = n_allow;
        an->one_time = decision.one_time_consumed;
        an->next = s->appnets;
        if (s->appnets)
                s->appnets->prev = an;
        s->appnets = an;
        an->inst = inst;
        inst->net = an;
        k = uv_poll_init(&s->loop, &an->poll, fullnet_pidfd(an->net));
        if (k == 0) {
                an->poll_init = true;
                an->poll.data = an;
                k = uv_poll_start(&an->poll, UV_READABLE, on_pasta_exit);
        }
        if (k < 0) {
                log_error("cannot watch the pasta of %s: %s", id, uv_strerror(k));
                appnet_detach(an);
                appnet_close(an);
                return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, k, "net.internet");
        }
        supervisor_audit(s, id, AUDIT_EVENT_LIFECYCLE,
                         json_pack("{s:s, s:i, s:i, s:b, s:f, s:f}", "what", "network-up",
                                   "pasta_pid", (int)fullnet_pid(an->net), "exceptions",
                                   (int)n_allow, "one_time", an->one_time, "rules_ms",
                                   (double)fullnet_rules_ns(an->net) / 1e6, "pasta_ms",
                                   (double)fullnet_pasta_ns(an->net) / 1e6));
        log_info("%s: network up (net.internet): pasta pid %d, rules %.1f ms, interface %.1f ms",
                 id, (int)fullnet_pid(an->net), (double)fullnet_rules_ns(an->net) / 1e6,
                 (double)fullnet_pasta_ns(an->net) / 1e6);
        return 0;
}

void appnet_stop(Instance *inst)
{
        AppNet *an = inst ? inst->net : NULL;

        if (!an)
                return;
        /* A signal, no wait: the app's exit is not delayed by its network. */
        fullnet_kill(an->net);
        appnet_detach(an);
}

/* Whether the exception lists a and b (in grants.db's order) are the same. */
static bool allow_same(const FullNetAllow *a, size_t n_a, const FullNetAllow *b, size_t n_b)
{
        if (n_a != n_b)
                return false;
        for (size_t i = 0; i < n_a; i++) {
                if (a[i].family != b[i].family || a[i].port != b[i].port)
                        return false;
                if (a[i].family == AF_INET ? a[i].v4.s_addr != b[i].v4.s_addr
                                           : memcmp(&a[i].v6, &b[i].v6, sizeof a[i].v6) != 0)
                        return false;
        }
        return true;
}

/* Loads an's rules again with the exceptions *allow (n_allow; taken on success): a
 * net.connect right gained or lost while the app runs. A failure is said; the rules
 * loaded before stay, and if they held an exception now lost, the network is cut
 * rather than left open. */
static void reload_rules(AppNet *an, FullNetAllow **allow, size_t n_allow)
{
        _cleanup_free_ char *script = NULL;
        char why[FULLNET_MESSAGE_MAX];
        int r;

        r = fullnet_rules(*allow, n_allow, false, &script);
        if (r >= 0)
                r = fullnet_load_rules(an->netns_fd, script, why, sizeof why);
        else
                snprintf(why, sizeof why, "%s", strerror(-r));
        if (r < 0) {
                log_error("%s: cannot load its rules again (%s): its network is cut", an->app_id,
                          why);
                (void)fullnet_cut(an->net, an->netns_fd);
                an->cut = true;
                appnet_detach(an);
                return;
        }
        free(an->allow);
        an->allow = TAKE_PTR(*allow);
        an->n_allow = n_allow;
        log_info("%s: its network's rules loaded again: %zu exact net.connect exception(s)",
                 an->app_id, n_allow);
        supervisor_audit(
                an->sup, an->app_id, AUDIT_EVENT_LIFECYCLE,
                json_pack("{s:s, s:i}", "what", "network-rules", "exceptions", (int)n_allow));
}

int appnet_recheck(Supervisor *s, const char *app_id)
{
        _cleanup_free_ FullNetAllow *allow = NULL;
        size_t n_allow = 0;
        int n = 0;

        for (AppNet *an = s->appnets, *next; an; an = next) {
                int r;

                next = an->next;
                if (!an->inst || (app_id && strcmp(an->app_id, app_id) != 0))
                        continue;
                r = granted(s, an->app_id, &allow, &n_allow);
                if (r < 0) {
                        log_warning_errno(r, "cannot re-read the grants of %s: %m", an->app_id);
                        continue;
                }
                if (r > 0 || an->one_time) {
                        /* Still on (a one-time grant was used up by the start: nothing
                         * is left to revoke, the run keeps it): the exceptions follow
                         * the net.connect rights. */
                        if (!allow_same(allow, n_allow, an->allow, an->n_allow))
                                reload_rules(an, &allow, n_allow);
                        free(allow);
                        allow = NULL;
                        continue;
                }
                free(allow);
                allow = NULL;
                r = fullnet_cut(an->net, an->netns_fd);
                if (r < 0)
                        log_warning_errno(r,
                                          "%s: cannot load the drop-all rules (pasta is "
                                          "killed all the same): %m",
                                          an->app_id);
                an->cut = true;
                log_info("%s lost net.internet: its interface is gone", an->app_id);
                supervisor_audit(
                        s, an->app_id, AUDIT_EVENT_LIFECYCLE,
                        json_pack("{s:s, s:s}", "what", "network-cut", "right", NET_INTERNET));
                appnet_detach(an);
                n++;
        }
        return n;
}

void appnet_drop_all(Supervisor *s)
{
        for (AppNet *an = s->appnets, *next; an; an = next) {
                next = an->next;
                if (an->inst) {
                        (void)fullnet_cut(an->net, an->netns_fd);
                        log_info("%s: its network (net.internet) is cut: cellad re-executes "
                                 "itself, and the new image would not know its pasta",
                                 an->app_id);
                        supervisor_audit(
                                s, an->app_id, AUDIT_EVENT_LIFECYCLE,
                                json_pack("{s:s, s:s}", "what", "network-cut", "why", "re-exec"));
                        an->cut = true;
                        appnet_detach(an);
                }
                /* Reaped here: the new image would not know the zombie. */
                if (an->poll_init && !an->closing)
                        (void)uv_poll_stop(&an->poll);
                (void)fullnet_kill_wait(an->net);
                appnet_close(an);
        }
}

void appnet_free_all(Supervisor *s)
{
        while (s->appnets) {
                AppNet *an = s->appnets;

                /* The loop is closed: its poll with it. The kernel ends: pasta is
                 * killed, not waited for (its tap's teardown would delay the end). */
                an->poll_init = false;
                appnet_detach(an);
                an->net = fullnet_abandon(an->net);
                appnet_unlink_free(an);
        }
}
