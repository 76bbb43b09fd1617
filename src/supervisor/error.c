/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The supervisor's error detail (error.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "supervisor/error.h"

int supervisor_error(SupervisorError *e, SupervisorStep step, int error, const char *detail)
{
        int no = abs(error) ?: EIO;

        if (e) {
                *e = (SupervisorError){.step = step, .error = abs(error)};
                snprintf(e->detail, sizeof e->detail, "%s", detail ?: "");
        }
        return -no;
}

int supervisor_error_at(SupervisorError *e, SandboxStep sandbox_step, int error, const char *detail)
{
        int r = supervisor_error(e, SUPERVISOR_STEP_SANDBOX, error, detail);

        if (e)
                e->sandbox_step = sandbox_step;
        return r;
}

int supervisor_error_sandbox(SupervisorError *e, const SandboxError *se)
{
        return supervisor_error_at(e, se->step, se->error, se->detail);
}

const char *supervisor_error_step(const SupervisorError *e)
{
        switch (e->step) {
        case SUPERVISOR_STEP_USAGE:
                return "usage";
        case SUPERVISOR_STEP_MANIFEST:
                return "manifest";
        case SUPERVISOR_STEP_STATE:
                return "state";
        case SUPERVISOR_STEP_SANDBOX:
                return sandbox_step_to_string(e->sandbox_step);
        case SUPERVISOR_STEP_DEPENDS:
                return "depends";
        default:
                return "internal";
        }
}
