/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cella-oci's log (log.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "oci/log.h"

static int log_fd = STDERR_FILENO;
static bool log_json, log_debug;

int oci_log_open(const char *path, bool json, bool debug)
{
        log_json = json;
        log_debug = debug;
        if (!path || strcmp(path, "/dev/stderr") == 0)
                return 0;
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return negative_errno();
        log_fd = fd;
        return 0;
}

int oci_log_fd(void)
{
        return log_fd;
}

static const char *level_name(OciLogLevel l)
{
        static const char *const names[] = {"debug", "info", "warning", "error"};

        return l <= OCI_LOG_ERROR ? names[l] : "error";
}

/* Control characters of msg as \xNN, and with quoted also '"' and '\\' escaped (the
 * text form's msg="..."): a config's strings never break a line. */
static char *text_escape(const char *msg, bool quoted)
{
        size_t n = strlen(msg);
        char *out = malloc(n * 4 + 1), *o = out;

        if (!out)
                return NULL;
        for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
                if (*p < 0x20 || *p == 0x7f || (quoted && (*p == '"' || *p == '\\')))
                        o += sprintf(o, *p == '"' || *p == '\\' ? "\\%c" : "\\x%02x", *p);
                else
                        *o++ = (char)*p;
        }
        *o = 0;
        return out;
}

int oci_log(OciLogLevel level, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL, *line = NULL;
        char ts[64], frac[16];
        struct timespec now;
        struct tm tm;
        va_list ap;
        int n;

        if (level == OCI_LOG_DEBUG && !log_debug)
                return 0;
        /* Without --log, a person reads stderr: the lifecycle's info lines only with
         * --debug, and plain "cella-oci: ..." lines unless json was asked for. */
        if (log_fd == STDERR_FILENO && !log_json) {
                _cleanup_free_ char *e = NULL;

                if (level == OCI_LOG_INFO && !log_debug)
                        return 0;
                va_start(ap, fmt);
                n = vasprintf(&msg, fmt, ap);
                va_end(ap);
                e = n < 0 ? NULL : text_escape(msg, false);
                if (e)
                        fprintf(stderr, "cella-oci: %s%s\n",
                                level == OCI_LOG_WARNING ? "warning: " : "", e);
                return level == OCI_LOG_ERROR ? -1 : 0;
        }
        va_start(ap, fmt);
        n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (n < 0)
                return level == OCI_LOG_ERROR ? -1 : 0;
        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(frac, sizeof frac, ".%09ldZ", now.tv_nsec);
        strcat(ts, frac);
        if (log_json) {
                json_t *o = json_pack("{s:s, s:s, s:s}", "level", level_name(level), "msg", msg,
                                      "time", ts);
                char *j = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

                json_decref(o);
                if (j && asprintf(&line, "%s\n", j) < 0)
                        line = NULL;
                free(j);
        } else {
                _cleanup_free_ char *e = text_escape(msg, true);

                if (e && asprintf(&line, "time=\"%s\" level=%s msg=\"%s\"\n", ts, level_name(level),
                                  e) < 0)
                        line = NULL;
        }
        if (line)
                (void)loop_write(log_fd, line, strlen(line));
        /* runc prints its fatal error on stderr too: what a person running it sees. */
        if (level == OCI_LOG_ERROR && log_fd != STDERR_FILENO) {
                _cleanup_free_ char *e = text_escape(msg, false);

                if (e)
                        fprintf(stderr, "cella-oci: %s\n", e);
        }
        return level == OCI_LOG_ERROR ? -1 : 0;
}
