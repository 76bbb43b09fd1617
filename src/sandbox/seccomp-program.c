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

int seccomp_program_load(const SeccompProgram *p)
{
        if (!p || !p->prog.filter || p->prog.len == 0)
                return -EINVAL;
        /*
         * seccomp(2) directly, not seccomp_load(): no libseccomp state, no allocation,
         * so it is safe between fork and exec. Flags 0: no TSYNC (the child has one
         * thread) and no SPEC_ALLOW (keep the speculative store bypass mitigation the
         * kernel turns on for filtered tasks).
         */
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p->prog) < 0)
                return negative_errno();
        return 0;
}
