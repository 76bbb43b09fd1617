/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The supervisor's error detail (error.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define JAIL_SHOWS "the jail shows the host's /usr, /bin, /sbin, /lib*, /app, /data and /tmp"

void supervisor_exec_advise(const SandboxError *se, const char *what, SandboxError *out)
{
        /* What cella's users do about each cause: the manifest's entry, the app's
         * folder, its uid of its own (docs/manifest.md, docs/security.md). */
        static const char *const advice[_SANDBOX_EXEC_CAUSE_MAX] = {
                [SANDBOX_EXEC_MISSING] = ": set the manifest's \"entry\" to a file of the app's "
                                         "folder",
                [SANDBOX_EXEC_SYMLINK_LOOP] = ": point it at a file of the app's folder",
                [SANDBOX_EXEC_UNREACHABLE] = ": its folder and the folders above it must be "
                                             "searchable by others (chmod o+x)",
                [SANDBOX_EXEC_DIRECTORY] = ": \"entry\" names a file",
                [SANDBOX_EXEC_NOT_REGULAR] = ": \"entry\" names a program or a script",
                [SANDBOX_EXEC_NOEXEC_MOUNT] = " (/data, /tmp and /dev/shm are noexec): code runs "
                                              "only from the app's folder, /app",
                [SANDBOX_EXEC_NOT_READABLE] = ": the app runs as a uid of its own, so its files "
                                              "must be readable by others (chmod o+r)",
                [SANDBOX_EXEC_NOT_EXECUTABLE] = ": the app runs as a uid of its own (chmod o+rx)",
                [SANDBOX_EXEC_SHEBANG_CR] = ": convert the file (dos2unix)",
                [SANDBOX_EXEC_INTERPRETER] = " in the jail (" JAIL_SHOWS "): fix the #! line or "
                                             "install the interpreter under /usr",
                [SANDBOX_EXEC_FOREIGN_ELF] = ": rebuild it for this host",
                [SANDBOX_EXEC_LOADER] = " in the jail (" JAIL_SHOWS "): rebuild it for this "
                                        "host, or link it statically",
                [SANDBOX_EXEC_NOT_PROGRAM] = ": add a #! line naming its interpreter",
        };
        SandboxExecCause c = se->exec_cause;
        char buf[2 * SANDBOX_DETAIL_MAX + 256];
        size_t n;

        *out = *se;
        if (se->step != SANDBOX_STEP_EXEC || c <= SANDBOX_EXEC_CAUSE_NONE ||
            c >= _SANDBOX_EXEC_CAUSE_MAX)
                return;
        /* Cut to the detail's size (as the library's own messages were). */
        if (c == SANDBOX_EXEC_OTHER)
                snprintf(buf, sizeof buf, "cannot execute %s %s", what, se->detail);
        else
                snprintf(buf, sizeof buf, "%s %s%s", what, se->detail, advice[c] ?: "");
        n = strnlen(buf, sizeof out->detail - 1);
        memcpy(out->detail, buf, n);
        out->detail[n] = 0;
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
