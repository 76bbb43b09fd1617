/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The app filter compiled at build time by seccomp-gen; see seccomp.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/seccomp.h"
#include "sandbox/seccomp-builtin.h" /* generated in the build tree */

int seccomp_program_builtin(const SeccompOptions *opts, SeccompProgram **ret)
{
        const struct sock_filter *src =
                opts->allow_inet ? seccomp_builtin_inet : seccomp_builtin_default;
        size_t len = (opts->allow_inet ? sizeof(seccomp_builtin_inet)
                                       : sizeof(seccomp_builtin_default)) /
                     sizeof(*src);
        SeccompProgram *p = calloc(1, sizeof *p);

        if (!p)
                return -ENOMEM;
        p->prog.filter = malloc(len * sizeof *src);
        if (!p->prog.filter) {
                free(p);
                return -ENOMEM;
        }
        memcpy(p->prog.filter, src, len * sizeof *src);
        p->prog.len = (unsigned short)len;
        *ret = p;
        return 0;
}
