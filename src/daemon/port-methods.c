/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The port forwarding methods (docs/api.md, "Port forwarding"; docs/network.md):
 * org.cella.PortAdd, org.cella.PortRemove (manage access, as org.cella.Start: they
 * change what a running app exposes) and org.cella.PortList (read access), over the
 * kernel's forwards (supervisor/ports.h). Errors:
 *
 *   org.cella.NoSuchApp        the app is not known to cellad
 *   org.cella.AppState         the app does not run (parameters.state)
 *   org.cella.InvalidParameter a parameter is missing or of the wrong shape
 *   org.cella.Failed           the forward cannot be added or removed (parameters.errno,
 *                              parameters.message: not granted, port in use, ...)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "daemon/daemon-internal.h"
#include "policy/manifest.h"
#include "supervisor/lifecycle.h"
#include "supervisor/ports.h"
#include "supervisor/supervisor.h"

static int reply_errno(ControlCall *call, Supervisor *s, const char *app, int r, const char *why)
{
        char msg[320];
        Instance *inst;

        if (r == -ESRCH) {
                snprintf(msg, sizeof msg, "no app %s is known to cellad", app);
                return control_reply_error(call, CONTROL_ERROR_NO_SUCH_APP,
                                           json_pack("{s:s, s:s}", "message", msg, "app", app));
        }
        inst = supervisor_find(s, app);
        if (r == -ENOTCONN && inst)
                return control_reply_error(
                        call, CONTROL_ERROR_APP_STATE,
                        json_pack("{s:s, s:s, s:s}", "message",
                                  why && why[0] ? why : "the app does not run", "app", app, "state",
                                  instance_state_to_string(instance_state(inst))));
        snprintf(msg, sizeof msg, "%s", why && why[0] ? why : strerror(-r));
        return control_reply_error(
                call, CONTROL_ERROR_FAILED,
                json_pack("{s:s, s:i, s:s}", "message", msg, "errno", -r, "app", app));
}

/* parameters.name: a port 1..65535 into *ret. Returns 1, or 0 after replying. */
static int param_port(ControlCall *call, json_t *params, const char *name, uint16_t *ret)
{
        json_t *v = json_object_get(params, name);

        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535) {
                control_reply_invalid_parameter(call, name, "expected a port number 1-65535");
                return 0;
        }
        *ret = (uint16_t)json_integer_value(v);
        return 1;
}

/* parameters.proto: "tcp" (also when absent) or "udp". Returns 1, or 0 after replying. */
static int param_proto(ControlCall *call, json_t *params, bool *ret)
{
        json_t *v = json_object_get(params, "proto");
        const char *s = json_string_value(v);

        if (!v || (s && strcmp(s, "tcp") == 0)) {
                *ret = false;
                return 1;
        }
        if (s && strcmp(s, "udp") == 0) {
                *ret = true;
                return 1;
        }
        control_reply_invalid_parameter(call, "proto", "expected \"tcp\" or \"udp\"");
        return 0;
}

static const char *param_app(ControlCall *call, json_t *params)
{
        bool missing;
        const char *app = control_param_app(call, params, "app", &missing);

        if (missing)
                control_reply_invalid_parameter(call, "app", "missing: the app's id");
        return app;
}

/* org.cella.PortAdd {app, host, port, proto?, address?}: forwards host port host to
 * the running app's port; replies {app, host, port, proto, address}. */
static int method_port_add(ControlCall *call, json_t *params, void *userdata)
{
        Daemon *d = userdata;
        Supervisor *s = daemon_supervisor(d);
        NetForwardSpec spec = {};
        const char *app, *address;
        json_t *a = json_object_get(params, "address");
        char why[320];
        int r;

        app = param_app(call, params);
        if (!app || !param_port(call, params, "host", &spec.host) ||
            !param_port(call, params, "port", &spec.app) || !param_proto(call, params, &spec.udp))
                return 0;
        if (a && !json_is_null(a)) {
                address = json_string_value(a);
                if (!address ||
                    manifest_port_address_invalid_reason(address, json_string_length(a)) != NULL)
                        return control_reply_invalid_parameter(
                                call, "address",
                                "expected a numeric IPv4 or IPv6 address (\"127.0.0.1\", "
                                "\"::1\"), or null for every address");
                snprintf(spec.address, sizeof spec.address, "%s", address);
        }
        r = supervisor_port_add(s, app, &spec, why, sizeof why);
        if (r < 0)
                return reply_errno(call, s, app, r, why);
        return control_reply(call, json_pack("{s:s, s:i, s:i, s:s, s:s}", "app", app, "host",
                                             (int)spec.host, "port", (int)spec.app, "proto",
                                             net_forward_proto_to_string(spec.udp), "address",
                                             spec.address[0] ? spec.address : "*"));
}

/* org.cella.PortRemove {app, host, proto?}. */
static int method_port_remove(ControlCall *call, json_t *params, void *userdata)
{
        Daemon *d = userdata;
        Supervisor *s = daemon_supervisor(d);
        const char *app;
        uint16_t host;
        bool udp;
        char why[160];
        int r;

        app = param_app(call, params);
        if (!app || !param_port(call, params, "host", &host) || !param_proto(call, params, &udp))
                return 0;
        r = supervisor_port_remove(s, app, host, udp);
        if (r == -ENOENT) {
                snprintf(why, sizeof why, "%s has no forward of host port %u/%s", app,
                         (unsigned)host, net_forward_proto_to_string(udp));
                return reply_errno(call, s, app, r, why);
        }
        if (r == -ENOTCONN) {
                snprintf(why, sizeof why, "%s does not run: it has no forwards", app);
                return reply_errno(call, s, app, r, why);
        }
        if (r < 0)
                return reply_errno(call, s, app, r, NULL);
        return control_reply(call, NULL);
}

/* org.cella.PortList {app}: {app, ports: [...]} (net_forward_list()). */
static int method_port_list(ControlCall *call, json_t *params, void *userdata)
{
        Daemon *d = userdata;
        Supervisor *s = daemon_supervisor(d);
        const char *app;
        json_t *list;
        int r = 0;

        app = param_app(call, params);
        if (!app)
                return 0;
        list = supervisor_port_list(s, app, &r);
        if (!list)
                return reply_errno(call, s, app, r, NULL);
        return control_reply(call, json_pack("{s:s, s:o}", "app", app, "ports", list));
}

int daemon_port_methods(Daemon *d)
{
        static const ControlMethod methods[] = {
                {"org.cella.PortAdd", CONTROL_ACCESS_MANAGE, method_port_add},
                {"org.cella.PortRemove", CONTROL_ACCESS_MANAGE, method_port_remove},
                {"org.cella.PortList", CONTROL_ACCESS_READ, method_port_list},
        };
        int r = control_add_methods(daemon_control(d), methods, ELEMENTSOF(methods), d);

        if (r < 0)
                return log_error_errno(r, "cannot register the port methods: %m");
        return 0;
}
