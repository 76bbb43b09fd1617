/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/termsafe.h"

int log_verbose;

static LogWriter writer;
static void *writer_userdata;
static char last_error[LOG_LINE_MAX];

const char *log_last_error(void)
{
        return last_error;
}

void log_set_writer(LogWriter w, void *userdata)
{
        writer = w;
        writer_userdata = userdata;
}

/*
 * A message can carry text cella did not write (a manifest's key or permission, a
 * path, an app's words): it is rendered as termsafe_stream() renders an app's
 * output, on one line ("\n" shows as "^J"), whatever stderr is, so it can neither
 * drive a terminal nor fake a line of its own.
 */
int log_full_errno(int level, int error, const char *fmt, ...)
{
        char text[LOG_LINE_MAX], line[TERMSAFE_STREAM_OUT(LOG_LINE_MAX) + 16];
        TermSafe t = {.one_line = true};
        size_t prefix = strlen("cella: "), n;
        va_list ap;
        int k;

        if (level >= LOG_DEBUG_LEVEL && !log_verbose)
                return error < 0 ? error : -abs(error);
        /* %m in fmt reads errno: make it the error we were given. */
        if (error != 0)
                errno = abs(error);
        va_start(ap, fmt);
        k = vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        if (k < 0)
                k = 0;
        if ((size_t)k >= sizeof text) {
                k = (int)(sizeof text - 4);
                memcpy(text + k, "...", 3);
                k += 3;
        }
        if (level <= LOG_ERR_LEVEL) {
                memcpy(last_error, text, (size_t)k);
                last_error[k] = 0;
        }
        memcpy(line, "cella: ", prefix);
        n = prefix + termsafe_stream(&t, text, (size_t)k, line + prefix);
        n += termsafe_stream_end(&t, line + n);
        line[n++] = '\n';
        if (writer)
                writer(level, line, n, writer_userdata);
        else
                (void)fwrite(line, 1, n, stderr);
        return -abs(error);
}
