/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

int log_verbose;

static LogWriter writer;
static void *writer_userdata;

void log_set_writer(LogWriter w, void *userdata)
{
        writer = w;
        writer_userdata = userdata;
}

int log_full_errno(int level, int error, const char *fmt, ...)
{
        va_list ap;

        if (level >= LOG_DEBUG_LEVEL && !log_verbose)
                return error < 0 ? error : -abs(error);
        /* %m in fmt reads errno: make it the error we were given. */
        if (error != 0)
                errno = abs(error);
        if (writer) {
                char line[LOG_LINE_MAX];
                size_t n = strlen("cella: ");
                int k;

                memcpy(line, "cella: ", n);
                va_start(ap, fmt);
                k = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
                va_end(ap);
                if (k < 0)
                        k = 0;
                if ((size_t)k >= sizeof line - n - 1) {
                        k = (int)(sizeof line - n - 5);
                        memcpy(line + n + k, "...", 3);
                        k += 3;
                }
                n += (size_t)k;
                line[n++] = '\n';
                writer(level, line, n, writer_userdata);
                return -abs(error);
        }
        fputs("cella: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return -abs(error);
}
