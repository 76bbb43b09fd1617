/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Per-app output logs (docs/design.md section 9: "logs/<id>.log (capped, rotated)"):
 * what an app writes is appended to <dir>/<id>.log; past
 * the size cap the file becomes <id>.log.1 (and .1 becomes .2, up to a fixed count,
 * the oldest dropped), as logrotate's "rotate N" does. The cap bounds the disk an
 * app can take through its output.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define APPLOG_SIZE_DEFAULT (1024 * 1024) /* bytes per file before rotating */
#define APPLOG_KEEP_DEFAULT 3             /* rotated files kept: <id>.log.1 .. .3 */
#define APPLOG_KEEP_MAX     16

typedef struct AppLog AppLog;

/*
 * Opens (creating) <dir>/<id>.log for appending. dir must exist; id is a valid app id
 * (it becomes a file name). size_max: bytes per file (>= 4096); keep: rotated files
 * to keep (0..APPLOG_KEEP_MAX). Returns 0 and *ret, -EINVAL, or -errno of open.
 */
int applog_open(const char *dir, const char *id, uint64_t size_max, unsigned keep, AppLog **ret);

/*
 * Appends n bytes, rotating first when they would take the file past size_max (a
 * single write larger than size_max is cut to size_max: what was cut is counted).
 * Returns 0 or -errno of write/rename.
 */
int applog_write(AppLog *l, const void *buf, size_t n);

/* Bytes dropped because one write was larger than a whole file. */
uint64_t applog_dropped(const AppLog *l);

AppLog *applog_close(AppLog *l);
