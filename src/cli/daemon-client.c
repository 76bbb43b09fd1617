/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/termsafe.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "supervisor/control.h"

#define DAEMON_SOCKET "cellad.sock" /* daemon/daemon.h DAEMON_SOCKET_FILE */

typedef struct Call {
        const char *cmd;
        bool json;
        int (*on_reply)(json_t *params, bool continues, void *ud);
        void *ud;
        const char *error; /* the error reply's name, once one came */
        int code;
} Call;

static int on_any_reply(json_t *reply, bool continues, void *ud)
{
        Call *c = ud;
        const char *err = control_reply_error_name(reply);
        json_t *params = control_reply_parameters(reply);

        if (!err)
                return c->on_reply ? c->on_reply(params ?: json_object(), continues, c->ud) : 0;
        c->error = err;
        c->code = strcmp(err, CONTROL_ERROR_INVALID_PARAMETER) == 0   ? CELLA_EXIT_USAGE
                  : strcmp(err, CONTROL_ERROR_PERMISSION_DENIED) == 0 ? CELLA_EXIT_STATE
                                                                      : 1;
        if (c->json) {
                char *s = json_dumps(reply, JSON_COMPACT);

                if (s)
                        puts(s);
                free(s);
        } else {
                /* The daemon's words may carry an app's id or its output: inert. */
                const char *msg = control_reply_message(reply);
                char safe[1024];

                termsafe_field(msg, sizeof safe - 4, safe, sizeof safe);
                log_error("%s: %s", c->cmd, safe);
        }
        return 0;
}

bool cli_daemon_running(const char *state_dir)
{
        _cleanup_free_ char *path = NULL;
        ControlClient *cl = NULL;

        if (asprintf(&path, "%s/%s", state_dir, DAEMON_SOCKET) < 0)
                return false;
        if (control_client_connect(path, &cl) < 0)
                return false;
        control_client_free(cl);
        return true;
}

int cli_daemon_call(const char *cmd, const char *state_dir, const char *method, json_t *params,
                    bool more, bool json, int (*on_reply)(json_t *params, bool continues, void *ud),
                    void *ud)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_control_client_ ControlClient *cl = NULL;
        Call c = {.cmd = cmd, .json = json, .on_reply = on_reply, .ud = ud};
        int r;

        if (asprintf(&path, "%s/%s", state_dir, DAEMON_SOCKET) < 0) {
                json_decref(params);
                return CELLA_EXIT_INTERNAL;
        }
        r = control_client_connect(path, &cl);
        if (r == -ENOENT || r == -ECONNREFUSED) {
                json_decref(params);
                log_error("%s: no cellad is running for %s; start it with 'cellad' or "
                          "'systemctl start cellad'",
                          cmd, state_dir);
                return CELLA_EXIT_NO_DAEMON;
        }
        if (r < 0) {
                json_decref(params);
                log_error_errno(r, "%s: cannot connect to %s: %m%s", cmd, path,
                                r == -EACCES ? " (run it as root or as a member of group cella)"
                                : r == -EPERM
                                        ? " (another user serves that socket, neither root nor "
                                          "you: cella does not talk to it)"
                                        : "");
                return r == -EACCES ? CELLA_EXIT_STATE : CELLA_EXIT_INTERNAL;
        }
        r = control_client_call(cl, method, params, NULL, 0, more, on_any_reply, &c);
        if (r == 1 || c.error)
                return c.code;
        if (r == -ECANCELED)
                return 0;
        if (r < 0) {
                log_error_errno(r, "%s: %s on %s: %m", cmd, method, path);
                return CELLA_EXIT_INTERNAL;
        }
        return 0;
}
