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

int cli_reply_exit_code(const json_t *reply)
{
        const char *err = control_reply_error_name(reply);

        if (!err)
                return 0;
        if (strcmp(err, CONTROL_ERROR_INVALID_PARAMETER) == 0)
                return CELLA_EXIT_USAGE;
        if (strcmp(err, CONTROL_ERROR_PERMISSION_DENIED) == 0)
                return CELLA_EXIT_STATE;
        return 1;
}

int cli_no_daemon(const char *cmd, const char *state_dir)
{
        log_error("%s: no cellad is running for %s (start it with 'cellad' or "
                  "'systemctl start cellad')",
                  cmd, state_dir);
        return CELLA_EXIT_NO_DAEMON;
}

static int on_any_reply(json_t *reply, bool continues, void *ud)
{
        Call *c = ud;
        const char *err = control_reply_error_name(reply);
        json_t *params = control_reply_parameters(reply);

        if (!err)
                return c->on_reply ? c->on_reply(params ?: json_object(), continues, c->ud) : 0;
        c->error = err;
        c->code = cli_reply_exit_code(reply);
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

/*
 * The one client of cellad: connects to <state_dir>/cellad.sock and calls method
 * with params (stolen) and fds (not closed), on_reply(reply, continues, ud) for each
 * whole reply. Returns 0 and sets *ret_error_reply when the call ended with an error
 * reply (given to on_reply), or an exit code after a message: CELLA_EXIT_NO_DAEMON,
 * CELLA_EXIT_STATE (the socket refuses us), 1 (the connection broke or a bad reply
 * came: the call failed), CELLA_EXIT_INTERNAL (out of memory).
 */
static int daemon_call(const char *cmd, const char *state_dir, const char *method, json_t *params,
                       const int *fds, size_t n_fds, unsigned timeout_ms, bool more,
                       int (*on_reply)(json_t *reply, bool continues, void *ud), void *ud,
                       bool *ret_error_reply)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_control_client_ ControlClient *cl = NULL;
        int r;

        *ret_error_reply = false;
        if (asprintf(&path, "%s/%s", state_dir, DAEMON_SOCKET) < 0) {
                json_decref(params);
                log_error("%s: out of memory", cmd);
                return CELLA_EXIT_INTERNAL;
        }
        r = control_client_connect(path, &cl);
        if (r == -ENOENT || r == -ECONNREFUSED) {
                json_decref(params);
                return cli_no_daemon(cmd, state_dir);
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
        control_client_set_timeout(cl, timeout_ms);
        r = control_client_call(cl, method, params, fds, n_fds, more, on_reply, ud);
        if (r == 1)
                *ret_error_reply = true;
        else if (r < 0 && r != -ECANCELED) {
                /* cellad went away mid-call (killed, say) or broke the protocol: the
                 * call failed, as an org.cella.Failed reply would say. */
                log_error_errno(r, "%s: %s on %s: %m", cmd, method, path);
                return 1;
        }
        return 0;
}

int cli_daemon_call(const char *cmd, const char *state_dir, const char *method, json_t *params,
                    bool more, bool json, int (*on_reply)(json_t *params, bool continues, void *ud),
                    void *ud)
{
        Call c = {.cmd = cmd, .json = json, .on_reply = on_reply, .ud = ud};
        bool error_reply;
        int code;

        code = daemon_call(cmd, state_dir, method, params, NULL, 0, 0, more, on_any_reply, &c,
                           &error_reply);
        if (code != 0)
                return code;
        return error_reply || c.error ? c.code : 0;
}

/* cli_cellad_call()'s on_reply: keeps the last reply, whole. */
static int keep_whole_reply(json_t *reply, bool continues, void *ud)
{
        json_t **kept = ud;

        (void)continues;
        json_decref(*kept);
        *kept = json_incref(reply);
        return 0;
}

int cli_cellad_call(const char *cmd, const char *state_dir, const char *method, json_t *params,
                    const int *fds, size_t n_fds, unsigned timeout_ms, json_t **ret_reply)
{
        json_t *reply = NULL;
        bool error_reply;
        int code;

        *ret_reply = NULL;
        code = daemon_call(cmd, state_dir, method, params, fds, n_fds, timeout_ms, false,
                           keep_whole_reply, &reply, &error_reply);
        if (code != 0 || !reply) {
                json_decref(reply);
                if (code == 0)
                        log_error("%s: %s on %s/%s: no reply", cmd, method, state_dir,
                                  DAEMON_SOCKET);
                return code ?: CELLA_EXIT_INTERNAL;
        }
        *ret_reply = reply;
        return 0;
}
