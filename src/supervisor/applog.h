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

/*
 * Line times (cella logs --timestamps and --since, docs/cli.md): beside each log file
 * "<name>" a time index "<name>.times" (so "<id>.log.times", "<id>.log.1.times", ...,
 * rotated with its file), of records {offset: u64, time_us: i64}, little-endian, 16
 * bytes each: the file's bytes from offset on came at time_us (wall clock, µs since
 * the epoch) or later. applog_write() adds one when APPLOG_TIME_GRAIN_US has passed
 * since the last, so a line's time is when its first byte reached the kernel, at
 * most that much early (as docker stamps each line at receipt); an index stops
 * growing at a quarter of size_max (the rest of that file gets coarser times), so
 * the disk an app can take stays bounded.
 */
#define APPLOG_TIME_GRAIN_US 10000
#define APPLOG_TIMES_SUFFIX  ".times"

typedef struct AppLogTime {
        uint64_t offset;
        int64_t time_us;
} AppLogTime;

/*
 * Reads the time index of log file name (in dirfd) into *ret (caller frees; NULL and
 * 0 when there is none), at most 1 << 20 records, dropping a torn last record and
 * any record whose offset goes back. Returns 0, or -errno of open/read.
 */
int applog_times_load(int dirfd, const char *name, AppLogTime **ret, size_t *ret_n);

/* The time of the byte at offset off: the last record at or before it (binary
 * search; times sorted by offset), or 0 when none is (a log written before the
 * index, or its first bytes). */
int64_t applog_time_at(const AppLogTime *t, size_t n, uint64_t off);
