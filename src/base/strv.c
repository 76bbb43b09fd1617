/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strv.h"

size_t strv_length(char *const *l)
{
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

char **strv_free(char **l)
{
        STRV_FOREACH (s, l)
                free(*s);
        free(l);
        return NULL;
}

static int strv_push(char ***l, char *owned)
{
        size_t n = strv_length(*l);
        char **nl = realloc(*l, (n + 2) * sizeof(char *));

        if (!nl) {
                free(owned);
                return -ENOMEM;
        }
        nl[n] = owned;
        nl[n + 1] = NULL;
        *l = nl;
        return 0;
}

int strv_extend(char ***l, const char *s)
{
        char *c = strdup(s);

        if (!c)
                return -ENOMEM;
        return strv_push(l, c);
}

int strv_extendf(char ***l, const char *fmt, ...)
{
        va_list ap;
        char *c;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&c, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return strv_push(l, c);
}

char **strv_copy(char *const *l)
{
        char **c = calloc(strv_length(l) + 1, sizeof *c);

        if (!c)
                return NULL;
        for (size_t i = 0; l && l[i]; i++) {
                c[i] = strdup(l[i]);
                if (!c[i])
                        return strv_free(c);
        }
        return c;
}
