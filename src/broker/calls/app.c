/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * app.launch and notify.post: the calls that reach beyond the app, to another app
 * or to the user, through the supervisor (BrokerHost). Both are the prompting class.
 *
 * An intent reaches its target as a direct bus message (docs/protocol.md,
 * "Intents"): an EVENT_BUS_MESSAGE with subscription_id 0, topic "", sender the
 * launching app, reply_token 0, data the intent's data, and content_type the
 * intent's content type, with "; action=<action>" appended when the intent names an
 * action ("text/plain; action=view"; "application/octet-stream; action=view" when it
 * names no content type). So an action is a MIME parameter token, [A-Za-z0-9._-], and
 * the whole content type the target sees is at most 127 bytes (the bus's bound):
 * EINVAL otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker-internal.h"
#include "ipc/bus.h"

#define INTENT_CONTENT_TYPE_MAX 127u   /* bytes: BUS_CONTENT_TYPE_MAX */
#define INTENT_DATA_MAX         64512u /* bytes: proto's Intent.data bound */

static bool is_token(const char *s)
{
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
                        return false;
        return true;
}

/* The content type the target sees; -EINVAL if it would not fit the bus's bound. */
static int intent_content_type(const Cella__V1__Intent *in, char *buf, size_t size)
{
        const char *ct = in && in->content_type ? in->content_type : "";
        int n;

        if (!in || !in->action || !in->action[0])
                n = snprintf(buf, size, "%s", ct);
        else
                n = snprintf(buf, size, "%s; action=%s", ct[0] ? ct : "application/octet-stream",
                             in->action);
        return n < 0 || (size_t)n >= size || (size_t)n > INTENT_CONTENT_TYPE_MAX ? -EINVAL : 0;
}

static const char *app_launch_right(const ProtobufCMessage *req, char *buf, size_t size,
                                    int *ret_error)
{
        const Cella__V1__AppLaunchRequest *m = (const void *)req;
        const Cella__V1__Intent *in = m->intent;
        char ct[INTENT_CONTENT_TYPE_MAX + 64];

        if (!m->app_id || !manifest_id_is_valid(m->app_id)) {
                *ret_error = -EINVAL;
                return NULL;
        }
        if (in && ((in->action && !is_token(in->action)) ||
                   (in->content_type && strlen(in->content_type) > INTENT_CONTENT_TYPE_MAX) ||
                   intent_content_type(in, ct, sizeof ct) < 0)) {
                *ret_error = -EINVAL;
                return NULL;
        }
        if (in && in->data.len > INTENT_DATA_MAX) {
                *ret_error = -EMSGSIZE;
                return NULL;
        }
        snprintf(buf, size, "app.launch:%s", m->app_id);
        return buf;
}

static void app_launch(BrokerCall *c)
{
        const Cella__V1__AppLaunchRequest *m = (const void *)c->request;
        Cella__V1__AppLaunchReply reply = CELLA__V1__APP_LAUNCH_REPLY__INIT;
        Broker *b = broker_app_broker(c->app);
        const BrokerOptions *o = broker_options(b);
        const char *self = broker_app_id(c->app);
        char ct[INTENT_CONTENT_TYPE_MAX + 64];
        bool already = false;
        int r;

        c->audit_fields = json_pack("{s:s, s:s, s:I}", "target", m->app_id, "action",
                                    m->intent && m->intent->action ? m->intent->action : "",
                                    "bytes", (json_int_t)(m->intent ? m->intent->data.len : 0));
        if (!o->host->launch) {
                broker_reply_error(c, ENOTSUP, "launching apps is not available in this kernel");
                return;
        }
        r = o->host->launch(o->host->userdata, self, m->app_id, &already);
        if (r < 0) {
                broker_reply_error(c, -r,
                                   r == -ENOENT  ? "no such app"
                                   : r == -EBUSY ? "the app is stopping"
                                                 : "the app could not be launched");
                return;
        }
        if (m->intent) {
                BusEndpoint *from = bus_endpoint_find(o->bus, self);

                (void)intent_content_type(m->intent, ct, sizeof ct);
                r = from ? bus_send(o->bus, from, m->app_id, 0, ct, m->intent->data.data,
                                    m->intent->data.len, NULL)
                         : -ENOENT;
                if (r < 0) {
                        broker_reply_error(c, -r, "the intent could not be delivered");
                        return;
                }
        }
        reply.already_running = already;
        broker_reply(c, &reply.base, NULL, 0);
}

/* ---- notify.post -------------------------------------------------------------------- */

static const char *notify_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__NotifyPostRequest *m = (const void *)req;

        if (!m->title || !m->title[0] || strlen(m->title) > BROKER_NOTIFY_TITLE_MAX ||
            (m->body && strlen(m->body) > BROKER_NOTIFY_BODY_MAX) ||
            (m->tag && strlen(m->tag) > BROKER_NOTIFY_TAG_MAX) ||
            (m->urgency != CELLA__V1__URGENCY__URGENCY_NORMAL &&
             m->urgency != CELLA__V1__URGENCY__URGENCY_LOW &&
             m->urgency != CELLA__V1__URGENCY__URGENCY_CRITICAL)) {
                *ret_error = -EINVAL;
                return NULL;
        }
        snprintf(buf, size, "notify");
        return buf;
}

static void notify_post(BrokerCall *c)
{
        const Cella__V1__NotifyPostRequest *m = (const void *)c->request;
        Cella__V1__NotifyPostReply reply = CELLA__V1__NOTIFY_POST_REPLY__INIT;
        const BrokerOptions *o = broker_options(broker_app_broker(c->app));
        static uint64_t next_id = 1; /* the broker runs on one thread */

        reply.notification_id = next_id++;
        c->audit_fields = json_pack("{s:s, s:I, s:i, s:s, s:I}", "title", m->title, "body_bytes",
                                    (json_int_t)(m->body ? strlen(m->body) : 0), "urgency",
                                    (int)m->urgency, "tag", m->tag ?: "", "notification_id",
                                    (json_int_t)reply.notification_id);
        if (!o->host->notify) {
                broker_reply_error(c, ENOTSUP, "notifications are not available in this kernel");
                return;
        }
        o->host->notify(o->host->userdata, broker_app_id(c->app), m->title, m->body ?: "",
                        (int)m->urgency);
        broker_reply(c, &reply.base, NULL, 0);
}

const BrokerCallDef broker_calls_app[] = {
        {CELLA__V1__OPCODE__OPCODE_APP_LAUNCH, app_launch_right, app_launch},
        {CELLA__V1__OPCODE__OPCODE_NOTIFY_POST, notify_right, notify_post},
        {0},
};
