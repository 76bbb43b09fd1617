/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * cella-oci's log (--log FILE, --log-format text|json): what engines read to report a
 * runtime's errors. json: one object a line, {"level":"error","msg":"...","time":
 * "2026-01-02T03:04:05.123456789Z"}, as runc writes them (logrus's JSON formatter:
 * conmon and containerd's shim parse exactly these keys); text: logrus's text form,
 * time="..." level=error msg="...". Without --log, the lines go to stderr. Errors
 * also go to stderr (as runc prints its fatal error there too) when the log is a file.
 */

#include <stdbool.h>

typedef enum OciLogLevel {
        OCI_LOG_DEBUG,
        OCI_LOG_INFO,
        OCI_LOG_WARNING,
        OCI_LOG_ERROR,
} OciLogLevel;

/*
 * Opens path for appending (NULL: stderr), in the given format; debug: debug lines
 * are written too (else dropped). Returns 0 or -errno of the open (then the log stays
 * on stderr).
 */
int oci_log_open(const char *path, bool json, bool debug);

/* The fd the log goes to (STDERR_FILENO without --log): what a process forked to
 * outlive the command keeps open. */
int oci_log_fd(void);

/* Writes one line at level (its control characters escaped); returns -1 for
 * OCI_LOG_ERROR (so `return oci_log(OCI_LOG_ERROR, ...)` ends a command), else 0. */
int oci_log(OciLogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
