/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"

int log_verbose;

int log_full_errno(int level, int error, const char *fmt, ...)
{
        va_list ap;

        if (level >= LOG_DEBUG_LEVEL && !log_verbose)
                return error < 0 ? error : -abs(error);
        /* %m in fmt reads errno: make it the error we were given. */
        if (error != 0)
                errno = abs(error);
        fputs("cella: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return -abs(error);
}
