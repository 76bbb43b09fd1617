/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Resource limits (docs/design.md section 5 step 4). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>

#include "base/macro.h"
#include "sandbox/sandbox-internal.h"

/* RLIMIT_NOFILE when the spec sets none: the common soft default (systemd's). */
#define SANDBOX_DEFAULT_NOFILE 1024

/*
 * Bounds on resources the kernel counts per user (ucounts or user_struct) rather
 * than per cgroup, set whatever cella itself inherited (root's limits may be
 * unlimited). Each app has a host uid of its own, so what one app uses of these
 * never reaches another's; the values are the kernel's own defaults for an
 * ordinary user:
 *   RLIMIT_MEMLOCK 8 MiB: MLOCK_LIMIT since Linux 5.16 (include/uapi/linux/resource.h);
 *   RLIMIT_MSGQUEUE 819200 bytes: MQ_BYTES_MAX (include/uapi/linux/mqueue.h), the default for every
 * user; RLIMIT_SIGPENDING 4096: pending signals and POSIX timers (each preallocates one), far above
 * what python's or sqlite's test suites queue, far below the threads-max-sized default of a root
 * shell; RLIMIT_RTPRIO 0 and RLIMIT_NICE 0: no real-time policy, no priority above nice 0 without
 * CAP_SYS_NICE (the kernel's defaults, INIT_RLIMITS).
 */
#define SANDBOX_MEMLOCK    (UINT64_C(8) << 20)
#define SANDBOX_MSGQUEUE   UINT64_C(819200)
#define SANDBOX_SIGPENDING UINT64_C(4096)

/*
 * Sets soft = hard for NOFILE (spec or 1024), CORE (0: a crashing app leaves no
 * core to leak memory contents through), FSIZE and NPROC (when set), and the
 * per-user bounds above (MEMLOCK, MSGQUEUE, SIGPENDING, RTPRIO, NICE), each at
 * most the hard limit cella inherited. Hard limits can only go down without
 * CAP_SYS_RESOURCE; the caller checks the spec's bounds beforehand so a too-high
 * value is a clear error there, not EPERM here. Then spec->rlimits in order (an OCI
 * config's process.rlimits), each replacing the value above for its resource.
 * Returns 0 or -errno with err filled (the rlimit named).
 */
int rlimits_apply(const SandboxSpec *spec, SandboxError *err)
{
        const struct {
                int resource;
                const char *name;
                uint64_t value;
                bool set;
                bool at_most_inherited; /* a bound of ours: never above what we have */
        } limits[] = {
                {RLIMIT_NOFILE, "RLIMIT_NOFILE", spec->rlimit_nofile ?: SANDBOX_DEFAULT_NOFILE,
                 true, false},
                {RLIMIT_CORE, "RLIMIT_CORE", 0, true, false},
                {RLIMIT_FSIZE, "RLIMIT_FSIZE", spec->rlimit_fsize, spec->rlimit_fsize > 0, false},
                {RLIMIT_NPROC, "RLIMIT_NPROC", spec->rlimit_nproc, spec->rlimit_nproc > 0, false},
                {RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK", SANDBOX_MEMLOCK, true, true},
                {RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE", SANDBOX_MSGQUEUE, true, true},
                {RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING", SANDBOX_SIGPENDING, true, true},
                {RLIMIT_RTPRIO, "RLIMIT_RTPRIO", 0, true, false},
                {RLIMIT_NICE, "RLIMIT_NICE", 0, true, false},
        };

        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                struct rlimit rl = {.rlim_cur = limits[i].value, .rlim_max = limits[i].value};
                struct rlimit have;
                bool replaced = false;

                /* An explicit limit for the same resource (an OCI config's) replaces
                 * ours rather than follow it: the end is the same, but a hard limit
                 * lowered here first could not be raised again. */
                for (size_t j = 0; j < spec->n_rlimits; j++)
                        replaced |= spec->rlimits[j].resource == limits[i].resource;
                if (!limits[i].set || replaced)
                        continue;
                if (limits[i].at_most_inherited && getrlimit(limits[i].resource, &have) == 0 &&
                    have.rlim_max != RLIM_INFINITY && have.rlim_max < rl.rlim_max)
                        rl.rlim_cur = rl.rlim_max = have.rlim_max;
                if (setrlimit(limits[i].resource, &rl) < 0)
                        return sandbox_fail(err, SANDBOX_STEP_RLIMIT, negative_errno(), "%s=%llu",
                                            limits[i].name, (unsigned long long)rl.rlim_max);
        }
        for (size_t j = 0; j < spec->n_rlimits; j++) {
                const SandboxRlimit *l = &spec->rlimits[j];
                struct rlimit rl = {.rlim_cur = l->soft, .rlim_max = l->hard}, have = {};

                if (setrlimit(l->resource, &rl) < 0) {
                        int r = negative_errno();

                        (void)getrlimit(l->resource, &have);
                        return sandbox_fail(err, SANDBOX_STEP_RLIMIT, r,
                                            "%s soft %llu hard %llu%s (the hard limit here is "
                                            "%llu)",
                                            rlimit_name(l->resource) ?: "?",
                                            (unsigned long long)l->soft,
                                            (unsigned long long)l->hard,
                                            r == -EPERM ? ": above the hard limit, which only "
                                                          "CAP_SYS_RESOURCE in the host's user "
                                                          "namespace may raise"
                                                        : "",
                                            (unsigned long long)have.rlim_max);
                }
        }
        return 0;
}

const char *rlimit_name(int resource)
{
        static const char *const names[RLIM_NLIMITS] = {
                [RLIMIT_CPU] = "RLIMIT_CPU",           [RLIMIT_FSIZE] = "RLIMIT_FSIZE",
                [RLIMIT_DATA] = "RLIMIT_DATA",         [RLIMIT_STACK] = "RLIMIT_STACK",
                [RLIMIT_CORE] = "RLIMIT_CORE",         [RLIMIT_RSS] = "RLIMIT_RSS",
                [RLIMIT_NPROC] = "RLIMIT_NPROC",       [RLIMIT_NOFILE] = "RLIMIT_NOFILE",
                [RLIMIT_MEMLOCK] = "RLIMIT_MEMLOCK",   [RLIMIT_AS] = "RLIMIT_AS",
                [RLIMIT_LOCKS] = "RLIMIT_LOCKS",       [RLIMIT_SIGPENDING] = "RLIMIT_SIGPENDING",
                [RLIMIT_MSGQUEUE] = "RLIMIT_MSGQUEUE", [RLIMIT_NICE] = "RLIMIT_NICE",
                [RLIMIT_RTPRIO] = "RLIMIT_RTPRIO",     [RLIMIT_RTTIME] = "RLIMIT_RTTIME",
        };

        if (resource < 0 || resource >= RLIM_NLIMITS)
                return NULL;
        return names[resource];
}
