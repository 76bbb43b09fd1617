/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Resource limits (DESIGN.md section 5 step 5). */
#include <errno.h>
#include <sys/resource.h>

#include "base/macro.h"
#include "sandbox/sandbox-internal.h"

/* RLIMIT_NOFILE when the spec sets none: the common soft default (systemd's). */
#define SANDBOX_DEFAULT_NOFILE 1024

/*
 * Sets soft = hard for NOFILE (spec or 1024), CORE (0: a crashing app leaves no
 * core to leak memory contents through), FSIZE and NPROC (when set). Hard limits
 * can only go down without CAP_SYS_RESOURCE; the caller checks bounds beforehand
 * so a too-high value is a clear error there, not EPERM here.
 * Returns 0 or -errno with err filled.
 */
int rlimits_apply(const SandboxSpec *spec, SandboxError *err)
{
        const struct {
                int resource;
                const char *name;
                uint64_t value;
                bool set;
        } limits[] = {
                {RLIMIT_NOFILE, "RLIMIT_NOFILE", spec->rlimit_nofile ?: SANDBOX_DEFAULT_NOFILE,
                 true},
                {RLIMIT_CORE, "RLIMIT_CORE", 0, true},
                {RLIMIT_FSIZE, "RLIMIT_FSIZE", spec->rlimit_fsize, spec->rlimit_fsize > 0},
                {RLIMIT_NPROC, "RLIMIT_NPROC", spec->rlimit_nproc, spec->rlimit_nproc > 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                struct rlimit rl = {.rlim_cur = limits[i].value, .rlim_max = limits[i].value};

                if (!limits[i].set)
                        continue;
                if (setrlimit(limits[i].resource, &rl) < 0)
                        return sandbox_fail(err, SANDBOX_STEP_RLIMIT, negative_errno(), "%s=%llu",
                                            limits[i].name, (unsigned long long)limits[i].value);
        }
        return 0;
}
