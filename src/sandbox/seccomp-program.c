/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The SeccompProgram object: loading and freeing a compiled program. Nothing here
 * uses libseccomp, so a binary that only runs filters does not load it.
 */
#include <errno.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/macro.h"
#include "sandbox/seccomp.h"

/* Frees p and the filter it owns. Takes NULL; returns NULL. */
SeccompProgram *seccomp_program_free(SeccompProgram *p)
{
        if (!p)
                return NULL;
        free(p->prog.filter);
        free(p);
        return NULL;
}

/* seccomp(2) directly, not seccomp_load(): no libseccomp state, no allocation, so it is
 * safe between fork and exec. */
static int program_load(const SeccompProgram *p, unsigned flags)
{
        long r;

        if (!p || !p->prog.filter || p->prog.len == 0)
                return -EINVAL;
        r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &p->prog);
        if (r < 0)
                return negative_errno();
        return (int)r;
}

int seccomp_program_load(const SeccompProgram *p)
{
        int r;

        if (p && p->notify)
                return -EINVAL;
        /*
         * Flags 0: no TSYNC (the child has one thread) and no SPEC_ALLOW (keep the
         * speculative store bypass mitigation the kernel turns on for filtered tasks).
         */
        r = program_load(p, 0);
        return r < 0 ? r : 0;
}

int seccomp_program_load_listener(const SeccompProgram *p)
{
        if (!p || !p->notify)
                return -EINVAL;
        /*
         * NEW_LISTENER makes seccomp(2) return the listener fd (always O_CLOEXEC).
         * Not WAIT_KILLABLE_RECV: a signal may still interrupt a call the server has
         * received, which then fails or restarts like any interrupted call.
         */
        return program_load(p, SECCOMP_FILTER_FLAG_NEW_LISTENER);
}
