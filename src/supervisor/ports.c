/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel's port forwards (contract in ports.h and supervisor-internal.h;
 * docs/network.md, "Port forwarding"). The relay (net/relay.h) that moves their
 * bytes is the kernel's, made at the first forward and freed with the kernel.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "policy/capability.h"
#include "policy/decide.h"
#include "supervisor/ports.h"
#include "supervisor/supervisor-internal.h"

/* The audit event of a forward's records: each connection's end, and the forwards
 * opened, closed and refused. */
#define PORTS_AUDIT_EVENT "net.forward"

static void port_record(void *userdata, const char *app_id, json_t *fields)
{
        supervisor_audit(userdata, app_id, PORTS_AUDIT_EVENT, fields);
}

/*
 * Whether app_id holds net.listen:<port> now, from grants.db: a permanent grant only
 * (a listener is not a one-time act: a one-time grant opens no forward). Returns 0,
 * -EACCES (not granted, or only once), -EPERM (never: not requested), or another
 * -errno of grants.db, with *ret_why.
 */
static int port_right(Supervisor *s, const char *app_id, uint16_t port, const char **ret_why)
{
        _cleanup_(grant_cache_clear) GrantCache gc = {};
        CapabilityRight asked;
        char text[32];
        bool once = false;
        int r;

        *ret_why = "the grants cannot be read";
        if (!s->grants)
                return -ENOTSUP;
        snprintf(text, sizeof text, "net.listen:%u", (unsigned)port);
        r = capability_right_parse(text, &asked, ret_why);
        if (r < 0)
                return r;
        r = grant_cache_load(s->grants, app_id, &gc);
        if (r < 0)
                return r;
        r = policy_right_state(&gc, &asked, &once, ret_why);
        if (r == 0 && once) {
                *ret_why = "only a one-time grant covers it; a forward needs a permanent grant";
                return -EACCES;
        }
        return r;
}

static bool port_allowed(void *userdata, uint16_t port)
{
        Instance *inst = userdata;
        const char *why;

        return port_right(inst->sup, inst->manifest->id, port, &why) == 0;
}

/* inst's NetForward, made now (and the kernel's relay) if it has none. */
static int ports_get(Instance *inst, NetForward **ret, const char **ret_why)
{
        Supervisor *s = inst->sup;
        NetForwardOptions o = {
                .loop = &s->loop,
                .app_id = inst->manifest->id,
                .pid = inst->run.sandbox ? inst->run.sandbox->pid : 0,
                .pidfd = inst->run.sandbox ? inst->run.sandbox->pidfd : -EBADF,
                .record = port_record,
                .userdata = s,
        };
        int r;

        if (inst->ports) {
                *ret = inst->ports;
                return 0;
        }
        if (!s->relay) {
                r = net_relay_new(&s->loop, &s->relay);
                if (r < 0) {
                        *ret_why = "cannot start the relay thread";
                        return r;
                }
        }
        o.relay = s->relay;
        r = net_forward_new(&o, &inst->ports, ret_why);
        if (r < 0)
                return r;
        *ret = inst->ports;
        return 0;
}

static bool instance_runs_alone(const Instance *inst)
{
        return !inst->group && inst->state == INSTANCE_RUNNING && inst->run.sandbox &&
               !inst->run.sandbox->exited;
}

void supervisor_ports_started(Instance *inst)
{
        const Manifest *m = inst->manifest;
        NetForward *f;
        const char *why;
        int r;

        if (m->n_ports == 0 || !instance_runs_alone(inst))
                return;
        r = ports_get(inst, &f, &why);
        if (r < 0) {
                log_error_errno(r, "%s: cannot open its port forwards: %s: %m", m->id, why);
                supervisor_audit(
                        inst->sup, m->id, PORTS_AUDIT_EVENT,
                        json_pack("{s:s, s:s, s:i}", "what", "failed", "why", why, "errno", -r));
                return;
        }
        for (size_t i = 0; i < m->n_ports; i++) {
                const ManifestPort *p = &m->ports[i];
                NetForwardSpec spec = {.host = p->host, .app = p->app, .udp = p->udp};
                NetForwardState state = NET_FORWARD_OPEN;
                char msg[256];

                _Static_assert(sizeof spec.address == sizeof p->address, "one address size");
                memcpy(spec.address, p->address, sizeof spec.address);
                r = port_right(inst->sup, m->id, p->host, &why);
                if (r < 0) {
                        state = NET_FORWARD_NOT_GRANTED;
                        log_warning("%s: host port %u/%s is not forwarded: net.listen:%u is "
                                    "not granted (%s); `cella grant %s net.listen:%u` opens it",
                                    m->id, (unsigned)p->host, net_forward_proto_to_string(p->udp),
                                    (unsigned)p->host, why, m->id, (unsigned)p->host);
                }
                r = net_forward_add(f, &spec, state, true, true, msg, sizeof msg);
                if (r < 0)
                        log_warning("%s: host port %u/%s is not forwarded: %s", m->id,
                                    (unsigned)p->host, net_forward_proto_to_string(p->udp), msg);
                supervisor_audit(inst->sup, m->id, PORTS_AUDIT_EVENT,
                                 json_pack("{s:s, s:i, s:i, s:s, s:s, s:s, s:s}", "what",
                                           state != NET_FORWARD_OPEN ? "not-granted"
                                           : r < 0                   ? "failed"
                                                                     : "opened",
                                           "host_port", (int)p->host, "app_port", (int)p->app,
                                           "proto", net_forward_proto_to_string(p->udp), "address",
                                           p->address[0] ? p->address : "*", "origin", "manifest",
                                           "why",
                                           state != NET_FORWARD_OPEN ? why
                                           : r < 0                   ? msg
                                                                     : ""));
        }
}

void supervisor_ports_stopped(Instance *inst, const char *reason)
{
        if (!inst->ports)
                return;
        net_forward_free(inst->ports, reason);
        inst->ports = NULL;
}

void supervisor_ports_grants_changed(Supervisor *s, const char *app_id)
{
        for (size_t i = 0; i < s->n_apps; i++) {
                Instance *inst = s->apps[i];

                if (!inst->ports || (app_id && strcmp(app_id, inst->manifest->id) != 0))
                        continue;
                net_forward_recheck(inst->ports, port_allowed, inst);
        }
}

void supervisor_ports_free(Supervisor *s)
{
        for (size_t i = 0; i < s->n_apps; i++)
                supervisor_ports_stopped(s->apps[i], "cella stopped");
        net_relay_free(s->relay);
        s->relay = NULL;
}

/* The running app app_id that may have forwards, or NULL with -errno and why. */
static Instance *port_instance(Supervisor *s, const char *app_id, int *ret_errno, char *why,
                               size_t why_size)
{
        Instance *inst = supervisor_find(s, app_id);

        if (!inst) {
                snprintf(why, why_size, "no app %s is known to this kernel", app_id);
                *ret_errno = -ESRCH;
                return NULL;
        }
        if (inst->group) {
                snprintf(why, why_size,
                         "%s is packed in group %s, whose apps share one network namespace: "
                         "port forwarding needs an app in a sandbox of its own",
                         app_id, inst->group->name);
                *ret_errno = -EOPNOTSUPP;
                return NULL;
        }
        if (!instance_runs_alone(inst)) {
                snprintf(why, why_size, "%s does not run: start it first (cella start %s)", app_id,
                         app_id);
                *ret_errno = -ENOTCONN;
                return NULL;
        }
        return inst;
}

int supervisor_port_add(Supervisor *s, const char *app_id, const NetForwardSpec *spec, char *why,
                        size_t why_size)
{
        Instance *inst;
        NetForward *f;
        const char *reason;
        int r;

        inst = port_instance(s, app_id, &r, why, why_size);
        if (!inst)
                return r;
        r = port_right(s, app_id, spec->host, &reason);
        if (r < 0) {
                snprintf(why, why_size, "%s may not listen on host port %u: net.listen:%u %s (%s)",
                         app_id, (unsigned)spec->host, (unsigned)spec->host,
                         r == -EPERM ? "is not among the rights its manifest asks for"
                                     : "is not granted",
                         r == -EPERM ? "add it to the manifest's permissions, then grant it"
                                     : "cella grant APP net.listen:PORT");
                r = r == -EPERM || r == -EACCES ? -EACCES : r;
        } else {
                r = ports_get(inst, &f, &reason);
                if (r < 0)
                        snprintf(why, why_size, "%s", reason);
                else
                        r = net_forward_add(f, spec, NET_FORWARD_OPEN, false, false, why, why_size);
        }
        /* Every decision is audited, the refusals too. */
        supervisor_audit(s, app_id, PORTS_AUDIT_EVENT,
                         json_pack("{s:s, s:i, s:i, s:s, s:s, s:s, s:s}", "what",
                                   r == -EACCES ? "refused"
                                   : r < 0      ? "failed"
                                                : "opened",
                                   "host_port", (int)spec->host, "app_port", (int)spec->app,
                                   "proto", net_forward_proto_to_string(spec->udp), "address",
                                   spec->address[0] ? spec->address : "*", "origin", "runtime",
                                   "why", r < 0 ? why : ""));
        return r;
}

int supervisor_port_remove(Supervisor *s, const char *app_id, uint16_t host, bool udp)
{
        char why[256];
        Instance *inst;
        int r;

        inst = port_instance(s, app_id, &r, why, sizeof why);
        if (!inst)
                return r;
        r = net_forward_remove(inst->ports, host, udp);
        if (r >= 0)
                supervisor_audit(s, app_id, PORTS_AUDIT_EVENT,
                                 json_pack("{s:s, s:i, s:s}", "what", "removed", "host_port",
                                           (int)host, "proto", net_forward_proto_to_string(udp)));
        return r;
}

json_t *supervisor_port_list(Supervisor *s, const char *app_id, int *ret_errno)
{
        Instance *inst = supervisor_find(s, app_id);
        json_t *a;

        if (!inst) {
                *ret_errno = -ESRCH;
                return NULL;
        }
        a = net_forward_list(instance_runs_alone(inst) ? inst->ports : NULL);
        if (!a)
                *ret_errno = -ENOMEM;
        return a;
}
