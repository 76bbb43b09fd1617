/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * perm.query, perm.list, perm.request: an app asking about its own permissions. No
 * right is needed (an app may always ask about itself); the answers come from the
 * broker's grant cache, decided as grants_check() would (docs/capabilities.md,
 * "Decisions").
 *
 * perm.request prompts the user (BrokerHost.prompt) only for a dangerous right the
 * manifest requests and that is not granted; the reply comes when the user answers.
 * ALLOW grants it for good, ALLOW_ONCE as a one-time grant (used up by the first
 * call it allows), both GRANT_BY_USER in grants.db; DENY answers DENIED and is
 * remembered until the app stops, so that an app cannot make the user say no again
 * and again (`cella grant` still grants it). A normal right that is not granted (the
 * user revoked it) and a signature right are answered without a prompt.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "base/strv.h"
#include "broker/broker-internal.h"
#include "policy/grant-record.h"

#define PERM_REASON_MAX 1023u /* bytes of PermRequestRequest.reason */

typedef struct PermApp PermApp;

typedef struct PermPrompt {
        BrokerCall *call; /* NULL once cancelled while the host cannot cancel */
        PermApp *pa;
        char right[CAPABILITY_RIGHT_MAX];
        struct PermPrompt *next, *prev;
} PermPrompt;

struct PermApp {
        PermPrompt *prompts; /* showing or queued */
        char **denied;       /* rights the user denied since the app started */
};

static PermApp *perm_app(BrokerApp *app)
{
        PermApp *pa = broker_app_slot(app, BROKER_SLOT_PERM);

        if (!pa) {
                pa = calloc(1, sizeof *pa);
                if (pa)
                        broker_app_set_slot(app, BROKER_SLOT_PERM, pa);
        }
        return pa;
}

static bool was_denied(BrokerApp *app, const char *right)
{
        PermApp *pa = broker_app_slot(app, BROKER_SLOT_PERM);

        if (pa)
                STRV_FOREACH (d, pa->denied)
                        if (strcmp(*d, right) == 0)
                                return true;
        return false;
}

/* A permission string from an app: 1..255 bytes naming a right of the catalogue. */
static int check_permission(const char *p, CapabilityRight *ret)
{
        if (!p || !p[0] || strlen(p) > CAPABILITY_RIGHT_MAX - 1)
                return -EINVAL;
        return capability_right_parse(p, ret, NULL) < 0 ? -EINVAL : 0;
}

/* The state of right for app (perm.query's answer) and, in *ret_one_time, whether
 * only a one-time grant gives it. */
static Cella__V1__PermState perm_state(BrokerApp *app, const CapabilityRight *parsed,
                                       const char *right, bool *ret_one_time)
{
        const char *why = NULL;
        int r = broker_app_right_state(app, parsed, ret_one_time, &why);

        if (r == 0)
                return CELLA__V1__PERM_STATE__PERM_STATE_GRANTED;
        if (r == -EPERM)
                return why && strcmp(why, grants_reason_to_string(GRANTS_NOT_SIGNED)) == 0
                               ? CELLA__V1__PERM_STATE__PERM_STATE_DENIED
                               : CELLA__V1__PERM_STATE__PERM_STATE_NOT_REQUESTED;
        if (capability_right_level(parsed) == CAPABILITY_DANGEROUS && !was_denied(app, right))
                return CELLA__V1__PERM_STATE__PERM_STATE_ASK;
        return CELLA__V1__PERM_STATE__PERM_STATE_DENIED;
}

static Cella__V1__PermLevel level_of(CapabilityLevel l)
{
        switch (l) {
        case CAPABILITY_NORMAL:
                return CELLA__V1__PERM_LEVEL__PERM_LEVEL_NORMAL;
        case CAPABILITY_DANGEROUS:
                return CELLA__V1__PERM_LEVEL__PERM_LEVEL_DANGEROUS;
        case CAPABILITY_SIGNATURE:
                return CELLA__V1__PERM_LEVEL__PERM_LEVEL_SIGNATURE;
        }
        return CELLA__V1__PERM_LEVEL__PERM_LEVEL_UNSPECIFIED;
}

/* ---- perm.query, perm.list ------------------------------------------------------------- */

static void perm_query(BrokerCall *c)
{
        const Cella__V1__PermQueryRequest *m = (const void *)c->request;
        Cella__V1__PermQueryReply reply = CELLA__V1__PERM_QUERY_REPLY__INIT;
        CapabilityRight parsed;

        if (check_permission(m->permission, &parsed) < 0) {
                broker_reply_error(c, EINVAL, "no such permission");
                return;
        }
        reply.state = perm_state(c->app, &parsed, m->permission, NULL);
        broker_reply(c, &reply.base, NULL, 0);
}

static void perm_list(BrokerCall *c)
{
        Cella__V1__PermListReply reply = CELLA__V1__PERM_LIST_REPLY__INIT;
        char *const *requested = broker_app_requested(c->app, NULL);
        size_t n = strv_length(requested), k = 0;
        _cleanup_free_ Cella__V1__PermEntry *e = calloc(n + 1, sizeof(Cella__V1__PermEntry));
        _cleanup_free_ Cella__V1__PermEntry **ep = calloc(n + 1, sizeof(Cella__V1__PermEntry *));

        if (!e || !ep) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        for (size_t i = 0; i < n && k < MANIFEST_LIST_MAX * 4; i++) {
                CapabilityRight parsed;
                bool once = false;

                if (capability_right_parse(requested[i], &parsed, NULL) < 0)
                        continue;
                cella__v1__perm_entry__init(&e[k]);
                e[k].permission = requested[i];
                e[k].state = perm_state(c->app, &parsed, requested[i], &once);
                e[k].level = level_of(capability_right_level(&parsed));
                e[k].one_time = once;
                ep[k] = &e[k];
                k++;
        }
        reply.n_permissions = k;
        reply.permissions = ep;
        broker_reply(c, &reply.base, NULL, 0);
}

/* ---- perm.request ------------------------------------------------------------------------- */

static void prompt_unlink(PermPrompt *p)
{
        if (p->prev)
                p->prev->next = p->next;
        else if (p->pa && p->pa->prompts == p)
                p->pa->prompts = p->next;
        if (p->next)
                p->next->prev = p->prev;
        p->next = p->prev = NULL;
        p->pa = NULL;
}

static void reply_state(BrokerCall *c, Cella__V1__PermState state, bool one_time,
                        const char *answer)
{
        Cella__V1__PermRequestReply reply = CELLA__V1__PERM_REQUEST_REPLY__INIT;
        json_t *f = json_pack("{s:s}", "answer", answer);

        if (f && c->audit_fields)
                (void)json_object_update_missing(c->audit_fields, f);
        json_decref(f);
        reply.state = state;
        reply.one_time = one_time;
        broker_reply(c, &reply.base, NULL, 0);
}

/* The broker's audit log as the sink of grants_grant_recorded(): userdata is the app. */
static int audit_sink(void *userdata, const char *app_id, const char *event, json_t *fields)
{
        (void)app_id; /* the app's own: broker_app_audit() writes its id */
        return broker_app_audit(userdata, event, fields);
}

static void prompt_done(BrokerPromptAnswer answer, void *userdata)
{
        PermPrompt *p = userdata;
        BrokerCall *c = p->call;
        BrokerApp *app;
        Grants *g;
        bool once = answer == BROKER_PROMPT_ALLOW_ONCE;
        int r;

        if (!c) { /* cancelled while showing, by a host that cannot take it back */
                free(p);
                return;
        }
        app = c->app;
        prompt_unlink(p);
        c->cancel = NULL;
        c->handler_data = NULL;

        if (answer != BROKER_PROMPT_ALLOW && answer != BROKER_PROMPT_ALLOW_ONCE) {
                PermApp *pa = perm_app(app);

                if (pa && !was_denied(app, p->right))
                        (void)strv_extend(&pa->denied, p->right);
                reply_state(c, CELLA__V1__PERM_STATE__PERM_STATE_DENIED, false, "deny");
                free(p);
                return;
        }

        g = broker_options(broker_app_broker(app))->grants;
        r = grants_grant_recorded(g, broker_app_id(app), p->right, once, "prompt", grants_now_ms(),
                                  audit_sink, app, NULL);
        if (r < 0) {
                broker_reply_error(c, -r, "the grant could not be recorded");
                free(p);
                return;
        }
        (void)broker_app_reload_grants(app);
        /* As `cella grant` does (cli_grants_changed()): every kernel of the state
         * directory re-reads the app's grants, not only this one. */
        {
                const BrokerHost *host = broker_options(broker_app_broker(app))->host;

                if (host && host->grants_changed)
                        host->grants_changed(host->userdata, broker_app_id(app));
        }
        reply_state(c, CELLA__V1__PERM_STATE__PERM_STATE_GRANTED, once,
                    once ? "allow-once" : "allow");
        free(p);
}

static void prompt_cancel(BrokerCall *c)
{
        PermPrompt *p = c->handler_data;
        const BrokerHost *host = broker_options(broker_app_broker(c->app))->host;

        if (!p)
                return;
        c->handler_data = NULL;
        prompt_unlink(p);
        if (host->prompt_cancel) {
                host->prompt_cancel(host->userdata, p);
                free(p);
        } else
                p->call = NULL; /* prompt_done() frees it */
}

static const char *grant_hint(BrokerCall *c, const char *right, char *buf, size_t size)
{
        snprintf(buf, size, "nobody to ask: the user can grant it with `cella grant %s %s`",
                 broker_app_id(c->app), right);
        return buf;
}

static void perm_request(BrokerCall *c)
{
        const Cella__V1__PermRequestRequest *m = (const void *)c->request;
        const BrokerHost *host = broker_options(broker_app_broker(c->app))->host;
        char hint[CHANNEL_ERROR_MESSAGE_MAX + 1];
        CapabilityRight parsed;
        const char *why = NULL;
        PermApp *pa;
        PermPrompt *p;
        bool once = false;
        int r;

        if (check_permission(m->permission, &parsed) < 0 ||
            (m->reason && strlen(m->reason) > PERM_REASON_MAX)) {
                broker_reply_error(c, EINVAL, "no such permission, or reason too long");
                return;
        }
        c->audit_fields = json_pack("{s:s}", "permission", m->permission);

        r = broker_app_right_state(c->app, &parsed, &once, &why);
        if (r == 0) {
                reply_state(c, CELLA__V1__PERM_STATE__PERM_STATE_GRANTED, once, "granted already");
                return;
        }
        if (r == -EPERM) {
                broker_reply_error(c, EPERM, why);
                return;
        }
        if (capability_right_level(&parsed) != CAPABILITY_DANGEROUS) {
                reply_state(c, CELLA__V1__PERM_STATE__PERM_STATE_DENIED, false,
                            "not granted, not asked");
                return;
        }
        if (was_denied(c->app, m->permission)) {
                reply_state(c, CELLA__V1__PERM_STATE__PERM_STATE_DENIED, false, "denied before");
                return;
        }
        if (!host->prompt) {
                broker_reply_error(c, EACCES, grant_hint(c, m->permission, hint, sizeof hint));
                return;
        }

        pa = perm_app(c->app);
        p = calloc(1, sizeof *p);
        if (!pa || !p) {
                free(p);
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        p->call = c;
        snprintf(p->right, sizeof p->right, "%s", m->permission);
        r = host->prompt(host->userdata, broker_app_id(c->app), p->right, m->reason ?: "",
                         prompt_done, p);
        if (r < 0) {
                free(p);
                if (r == -ENOTTY)
                        broker_reply_error(c, EACCES,
                                           grant_hint(c, m->permission, hint, sizeof hint));
                else
                        broker_reply_error(c, -r, "the user cannot be asked now");
                return;
        }
        p->pa = pa;
        p->next = pa->prompts;
        if (pa->prompts)
                pa->prompts->prev = p;
        pa->prompts = p;
        c->handler_data = p;
        c->cancel = prompt_cancel;
}

void broker_perm_detach(BrokerApp *app)
{
        PermApp *pa = broker_app_slot(app, BROKER_SLOT_PERM);
        const BrokerHost *host = broker_options(broker_app_broker(app))->host;
        PermPrompt *p;

        if (!pa)
                return;
        /* The core has abandoned every pending call, cancelling their prompts,
         * already; this is for prompts whose call ended some other way. */
        while ((p = pa->prompts)) {
                prompt_unlink(p);
                if (p->call) {
                        p->call->handler_data = NULL;
                        p->call->cancel = NULL;
                }
                if (host->prompt_cancel) {
                        host->prompt_cancel(host->userdata, p);
                        free(p);
                } else
                        p->call = NULL; /* prompt_done() frees it */
        }
        strv_free(pa->denied);
        free(pa);
        broker_app_set_slot(app, BROKER_SLOT_PERM, NULL);
}

const BrokerCallDef broker_calls_perm[] = {
        {CELLA__V1__OPCODE__OPCODE_PERM_QUERY, NULL, perm_query},
        {CELLA__V1__OPCODE__OPCODE_PERM_REQUEST, NULL, perm_request},
        {CELLA__V1__OPCODE__OPCODE_PERM_LIST, NULL, perm_list},
        {0},
};
