/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the control API's request parser (control_request_parse,
 * src/supervisor/control.c): one line a client sends. Beyond "no crash": the
 * result is one of the documented ones, an error always comes with its message,
 * and an accepted request has a method name of the documented shape, an object of
 * parameters, and never both "more" and "oneway".
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        ControlRequest req;
        const char *error = NULL;
        size_t n, dots = 0;
        int r;

        memset(&req, 0xa5, sizeof req);
        r = control_request_parse((const char *)data, size, &req, &error);
        if (r == 0) {
                if (!req.root || !req.method || !json_is_object(req.parameters) ||
                    (req.more && req.oneway))
                        abort();
                if (json_object_get(req.root, "parameters") != req.parameters)
                        abort();
                n = strlen(req.method);
                if (n == 0 || n > CONTROL_METHOD_MAX || !is_alpha(req.method[0]) ||
                    req.method[n - 1] == '.')
                        abort();
                for (size_t i = 1; i < n; i++) {
                        if (req.method[i] == '.') {
                                dots++;
                                if (!is_alpha(req.method[i + 1]))
                                        abort();
                        } else if (!is_alnum(req.method[i]))
                                abort();
                }
                if (dots == 0)
                        abort();
                control_request_done(&req);
                if (req.root)
                        abort();
        } else if ((r != -EINVAL && r != -E2BIG) || !error)
                abort();
        else if (r == -E2BIG && size < CONTROL_LINE_MAX)
                abort();
        return 0;
}
