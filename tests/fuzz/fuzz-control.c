/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the control socket's request parser
 * (control_request_parse, src/supervisor/control.c): one line a client sends.
 * Beyond "no crash": the result is one of the documented ones, an error always
 * comes with its message, and an accepted app id is a valid one that fits.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/manifest.h"
#include "supervisor/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        ControlRequest req;
        const char *error = NULL;
        int r;

        memset(&req, 0xa5, sizeof req);
        r = control_request_parse((const char *)data, size, &req, &error);
        if (r == 0) {
                if (req.op != CONTROL_OP_PS && req.op != CONTROL_OP_GRANTS_CHANGED &&
                    req.op != CONTROL_OP_STOP && req.op != CONTROL_OP_STATS)
                        abort();
                if (req.has_app && (strnlen(req.app, sizeof req.app) > MANIFEST_ID_MAX ||
                                    !manifest_id_is_valid(req.app)))
                        abort();
                if (req.op == CONTROL_OP_STOP && !req.has_app)
                        abort();
        } else if ((r != -EINVAL && r != -E2BIG) || !error)
                abort();
        return 0;
}
