/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the control API (src/supervisor/control.c):
 *
 * 1. the request parser (control_request_parse) on the input as one line: the
 *    result is one of the documented ones, an error always comes with its
 *    message, and an accepted request has a method name of the documented
 *    shape, an object of parameters, and never both "more" and "oneway";
 * 2. a real server on a libuv loop, the input sent as a client's bytes over a
 *    socketpair (control_serve_fd): whatever comes in, every line that comes back
 *    is a reply of the documented shape (parameters, or a named error with a
 *    message), there are never more final replies than lines sent, and the server
 *    ends the connection once the client has said all and been answered.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "supervisor/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_alpha(char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_alnum(char c)
{
        return is_alpha(c) || (c >= '0' && c <= '9');
}

static bool is_method_name(const char *s)
{
        size_t n = strlen(s), dots = 0;

        if (n == 0 || n > CONTROL_METHOD_MAX || !is_alpha(s[0]) || s[n - 1] == '.')
                return false;
        for (size_t i = 1; i < n; i++) {
                if (s[i] == '.') {
                        dots++;
                        if (!is_alpha(s[i + 1]))
                                return false;
                } else if (!is_alnum(s[i]))
                        return false;
        }
        return dots > 0;
}

static void check_parser(const uint8_t *data, size_t size)
{
        ControlRequest req;
        const char *error = NULL;
        int r;

        memset(&req, 0xa5, sizeof req);
        r = control_request_parse((const char *)data, size, &req, &error);
        if (r == 0) {
                if (!req.root || !req.method || !json_is_object(req.parameters) ||
                    (req.more && req.oneway) || !is_method_name(req.method))
                        abort();
                if (json_object_get(req.root, "parameters") != req.parameters)
                        abort();
                control_request_done(&req);
                if (req.root)
                        abort();
        } else if ((r != -EINVAL && r != -E2BIG) || !error)
                abort();
        else if (r == -E2BIG && size < CONTROL_LINE_MAX)
                abort();
}

/* --- the server --- */

static int m_echo(ControlCall *call, json_t *params, void *ud)
{
        return control_reply(call, json_deep_copy(params));
}

static int m_fail(ControlCall *call, json_t *params, void *ud)
{
        return -EIO;
}

static int m_app(ControlCall *call, json_t *params, void *ud)
{
        bool missing;
        const char *app = control_param_app(call, params, "app", &missing);

        if (missing)
                return control_reply_invalid_parameter(call, "app", "missing");
        if (!app)
                return 0;
        return control_reply_error(call, CONTROL_ERROR_NO_SUCH_APP, json_pack("{s:s}", "app", app));
}

static int m_stream(ControlCall *call, json_t *params, void *ud)
{
        json_int_t n = json_integer_value(json_object_get(params, "n"));

        for (json_int_t i = 0; control_call_more(call) && i < n && i < 16; i++)
                if (control_reply_continues(call, json_pack("{s:I}", "i", i)) < 0)
                        return 0;
        return control_reply(call, NULL);
}

static const ControlMethod methods[] = {
        {"org.cella.Echo", CONTROL_ACCESS_ANYONE, m_echo},
        {"org.cella.Fail", CONTROL_ACCESS_ANYONE, m_fail},
        {"org.cella.App", CONTROL_ACCESS_READ, m_app},
        {"org.cella.Stream", CONTROL_ACCESS_MANAGE, m_stream},
        {"org.cella.Root", CONTROL_ACCESS_ROOT, m_echo},
};

/* Checks one reply line (len bytes, no newline); returns whether it is final. */
static bool check_reply(const char *line, size_t len)
{
        json_t *r = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL), *p, *e;
        bool final;

        if (!json_is_object(r))
                abort();
        p = json_object_get(r, "parameters");
        e = json_object_get(r, "error");
        if (!json_is_object(p))
                abort();
        if (e && (!json_is_string(e) || !is_method_name(json_string_value(e)) ||
                  !json_is_string(json_object_get(p, "message"))))
                abort();
        final = !json_is_true(json_object_get(r, "continues"));
        if (e && !final)
                abort();
        json_decref(r);
        return final;
}

static void check_server(const uint8_t *data, size_t size)
{
        static char out[8u << 20];
        size_t sent = 0, got = 0, lines = 1, finals = 0;
        Control *c = NULL;
        uv_async_t alive;
        uv_loop_t loop;
        int sv[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
                abort();
        /* The Control's handles keep no loop alive (a kernel's loop ends with its
         * apps); this one does, so that UV_RUN_NOWAIT polls. */
        if (uv_loop_init(&loop) < 0 || uv_async_init(&loop, &alive, NULL) < 0 ||
            control_new(&loop, &c) < 0 ||
            control_add_methods(c, methods, sizeof methods / sizeof methods[0], NULL) < 0 ||
            control_serve_fd(c, sv[0], true) < 0)
                abort();
        for (size_t i = 0; i < size; i++)
                lines += data[i] == '\n';
        for (unsigned turn = 0; control_connections(c) > 0; turn++) {
                ssize_t n;

                if (turn > 200000)
                        abort(); /* the server never ended the connection */
                if (sent < size) {
                        n = send(sv[1], data + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (n > 0)
                                sent += (size_t)n;
                        if (sent == size)
                                shutdown(sv[1], SHUT_WR);
                } else if (size == 0 && turn == 0)
                        shutdown(sv[1], SHUT_WR);
                uv_run(&loop, UV_RUN_NOWAIT);
                while ((n = recv(sv[1], out + got, sizeof out - got, MSG_DONTWAIT)) > 0)
                        got += (size_t)n;
                if (got == sizeof out)
                        abort(); /* more than any input of ours asks for */
        }
        for (size_t off = 0; off < got;) {
                char *nl = memchr(out + off, '\n', got - off);

                if (!nl)
                        abort(); /* a reply cut short */
                finals += check_reply(out + off, (size_t)(nl - (out + off)));
                off = (size_t)(nl - out) + 1;
        }
        if (finals > lines)
                abort();
        close(sv[1]);
        control_close(c);
        uv_close((uv_handle_t *)&alive, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&loop) < 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        check_parser(data, size);
        check_server(data, size);
        return 0;
}
