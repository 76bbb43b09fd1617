/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Our glue around SQLite (Debian's libsqlite3) for cella's own databases: the app
 * registry (supervisor/state.c, state.db) and the grants (policy/grants.c,
 * grants.db). Not for the apps' databases (lua/libdb.c): those are opened with an
 * authorizer and limits of their own, and their errors go to a Lua script.
 *
 * What every cella database gets (sqlite_open()): read-write, created if missing,
 * mode 0600 (who may write it is who may change rights), no mutex (one connection,
 * one thread), a busy timeout so that two cella processes wait for each other
 * instead of failing, and SQLite's default rollback journal: WAL would create and
 * delete its -wal and -shm files on the reads nearly every `cella run` makes. No
 * schema uses foreign keys, so PRAGMA foreign_keys stays off (one statement less on
 * every open).
 *
 * A schema is versioned with PRAGMA user_version; sqlite_schema_ensure() creates or
 * upgrades it under BEGIN IMMEDIATE, so two processes never migrate at once.
 *
 * Errors: every SQLite failure is -EIO (the caller names the file); a file written by
 * a newer cella (a higher user_version) is -EPROTONOSUPPORT; sqlite_open() passes on
 * the errno of its own open(2) of the file.
 */

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/macro.h"

/* For _cleanup_stmt_: finalizes *st (sqlite3_finalize() takes NULL). */
static inline void sqlite_finalizep(sqlite3_stmt **st)
{
        sqlite3_finalize(*st);
}
#define _cleanup_stmt_ _cleanup_(sqlite_finalizep)

/*
 * Opens path as described above, waiting up to busy_timeout_ms milliseconds for
 * another connection's lock. The file is created 0600 (an existing one is made
 * 0600), never through a symlink. Returns 0 and *ret (sqlite3_close() it); the
 * -errno of open(2) (-ELOOP: path is a symlink; -ENOENT, -EACCES, -EROFS ...);
 * -EINVAL if path is not a regular file; -EIO if SQLite cannot open it.
 */
int sqlite_open(const char *path, unsigned busy_timeout_ms, sqlite3 **ret);

/* Runs sql (one or more statements, no rows wanted). Returns 0 or -EIO. */
int sqlite_exec(sqlite3 *db, const char *sql);

/* Prepares one statement. Returns 0 and *ret (finalize it), or -EIO. */
int sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **ret);

/* Steps a statement that returns no rows. Returns 0 or -EIO. */
int sqlite_step_done(sqlite3_stmt *st);

/* PRAGMA user_version of db (0 for a new file), or -EIO. */
int sqlite_user_version(sqlite3 *db);

/*
 * Brings a schema from version from (0: an empty file) to the current one, inside the
 * transaction sqlite_schema_ensure() holds; must set PRAGMA user_version. Returns 0
 * or a negative errno (the transaction is then rolled back).
 */
typedef int (*SqliteMigrate)(sqlite3 *db, int from, void *userdata);

/*
 * Makes db's schema version `version`: nothing if it is; -EPROTONOSUPPORT if it is
 * newer; else BEGIN IMMEDIATE, reads the version again (another process may have
 * migrated meanwhile), calls migrate if it is still older, and commits. Returns 0,
 * -EPROTONOSUPPORT, -EIO or migrate's error.
 */
int sqlite_schema_ensure(sqlite3 *db, int version, SqliteMigrate migrate, void *userdata);

/*
 * Starts a transaction on a schema of version `version`: BEGIN for a reader, BEGIN
 * IMMEDIATE for a writer (it takes the write lock before reading, so two writers
 * serialise instead of deadlocking). The version is checked inside the transaction:
 * one shared lock, no separate statement on open. A file that has no schema yet, or
 * an older one, is migrated first (sqlite_schema_ensure()). Returns 0 with the
 * transaction open (end it with sqlite_tx_end()), -EPROTONOSUPPORT, -EIO, or
 * migrate's error.
 */
int sqlite_tx_begin(sqlite3 *db, bool write, int version, SqliteMigrate migrate, void *userdata);

/* Commits if r >= 0, else rolls back. Returns r, or -EIO if the commit failed (then
 * it rolls back). */
int sqlite_tx_end(sqlite3 *db, int r);

/* One bound parameter: ?1 is the first of the list, ?2 the next, and so on. */
typedef struct SqlArg {
        enum { SQL_ARG_NULL, SQL_ARG_TEXT, SQL_ARG_INT64 } type;
        const char *text; /* SQL_ARG_TEXT: bound SQLITE_STATIC, must outlive the step */
        int64_t i;        /* SQL_ARG_INT64 */
} SqlArg;

/* A text parameter; NULL binds SQL NULL. */
#define SQL_TEXT(s) ((SqlArg){.type = (s) ? SQL_ARG_TEXT : SQL_ARG_NULL, .text = (s)})
/* An integer parameter, converted to int64_t (uid_t, uint64_t device numbers, ms). */
#define SQL_INT(v) ((SqlArg){.type = SQL_ARG_INT64, .i = (int64_t)(v)})

#define SQL_ARGS(...) (const SqlArg[]){__VA_ARGS__}, ELEMENTSOF(((const SqlArg[]){__VA_ARGS__}))

/*
 * Prepares sql and binds args[0..n) to ?1..?n. Returns 0 and *ret, or -EIO.
 * Callers write sqlite_prepare_args(db, sql, SQL_ARGS(SQL_TEXT(id)), &st).
 */
int sqlite_prepare_args(sqlite3 *db, const char *sql, const SqlArg *args, size_t n,
                        sqlite3_stmt **ret);

/*
 * The one-row select: prepares sql, binds args, steps once. Returns 1 with *ret on
 * the row (read its columns, then finalize it: _cleanup_stmt_), 0 if there is no row
 * (*ret NULL), or -EIO. Further rows are not looked at: the query's key or LIMIT 1
 * makes it one.
 */
int sqlite_select_one(sqlite3 *db, const char *sql, const SqlArg *args, size_t n,
                      sqlite3_stmt **ret);

/*
 * Prepares sql, binds args and steps it to the end: an INSERT, UPDATE or DELETE.
 * Returns the number of rows it changed (sqlite3_changes(), >= 0), or -EIO.
 */
int sqlite_run(sqlite3 *db, const char *sql, const SqlArg *args, size_t n);
