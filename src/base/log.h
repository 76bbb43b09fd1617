/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Logging for the edges only (CLI, supervisor main loop): library code returns
 * errors and never prints. Messages go to stderr prefixed with "cella: ", one
 * line each, their control characters shown as text (termsafe_stream(), one_line).
 * log_error_errno(r, ...) prints the message, with %m standing for strerror(-r),
 * and returns r (negative), so `return log_error_errno(r, "...: %m");` reads well.
 */

#include <errno.h>
#include <stddef.h>

extern int log_verbose;

/* Bytes of one message (longer is cut, "..." marks it), before it is rendered
 * safe for a terminal (termsafe.h: control characters shown as text). */
#define LOG_LINE_MAX 4096

/*
 * Where messages go instead of stderr: writer(level, line, n, userdata) gets the
 * whole line ("cella: ...\n", n bytes, not NUL-terminated). The kernel sets one
 * while it runs, so that its messages never block its loop on a stderr nobody
 * reads (src/supervisor/outlet.h). NULL: stderr again (stdio, blocking).
 */
typedef void (*LogWriter)(int level, const char *line, size_t n, void *userdata);
void log_set_writer(LogWriter w, void *userdata);

int log_full_errno(int level, int error, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* The text of the last error-level message (as formatted, before it was rendered
 * for a terminal, without "cella: " and the newline), "" before the first: what a
 * failure record (--json-status) says when no other record told the failure. */
const char *log_last_error(void);

#define LOG_ERR_LEVEL   3
#define LOG_WARN_LEVEL  4
#define LOG_INFO_LEVEL  6
#define LOG_DEBUG_LEVEL 7

#define log_error(...)            log_full_errno(LOG_ERR_LEVEL, 0, __VA_ARGS__)
#define log_warning(...)          log_full_errno(LOG_WARN_LEVEL, 0, __VA_ARGS__)
#define log_info(...)             log_full_errno(LOG_INFO_LEVEL, 0, __VA_ARGS__)
#define log_debug(...)            log_full_errno(LOG_DEBUG_LEVEL, 0, __VA_ARGS__)
#define log_error_errno(r, ...)   log_full_errno(LOG_ERR_LEVEL, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) log_full_errno(LOG_WARN_LEVEL, (r), __VA_ARGS__)
#define log_debug_errno(r, ...)   log_full_errno(LOG_DEBUG_LEVEL, (r), __VA_ARGS__)
