/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The app filter compiled at build time by seccomp-gen; see seccomp.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "sandbox/seccomp.h"
#include "sandbox/seccomp-builtin.h" /* generated in the build tree */

#define VARIANT(a)                                                                                 \
        {                                                                                          \
                (a), ELEMENTSOF(a)                                                                 \
        }

/* Indexed by notify. */
static const struct {
        const struct sock_filter *insns;
        size_t len;
} variants[] = {
        VARIANT(seccomp_builtin_default),
        VARIANT(seccomp_builtin_notify),
};

int seccomp_program_builtin(const SeccompOptions *opts, SeccompProgram **ret)
{
        size_t v = opts->notify ? 1 : 0;
        SeccompProgram *p = calloc(1, sizeof *p);

        if (!p)
                return -ENOMEM;
        p->prog.filter = malloc(variants[v].len * sizeof(struct sock_filter));
        if (!p->prog.filter) {
                free(p);
                return -ENOMEM;
        }
        memcpy(p->prog.filter, variants[v].insns, variants[v].len * sizeof(struct sock_filter));
        p->prog.len = (unsigned short)variants[v].len;
        p->notify = opts->notify;
        *ret = p;
        return 0;
}

const char *seccomp_syscall_name(int nr)
{
        if (nr < 0 || nr >= SECCOMP_SYSCALL_NR_END)
                return NULL;
        return seccomp_builtin_names[nr];
}
