/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Our glue around SQLite (sqlite-util.h). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/sqlite-util.h"
#include "base/statedir.h"

int sqlite_open(const char *path, unsigned busy_timeout_ms, sqlite3 **ret)
{
        _cleanup_close_ int fd = -EBADF;
        sqlite3 *db = NULL;
        struct stat st;

        /*
         * The file is made (or checked) here, not by SQLite, as the audit log's files
         * are (audit/log.c): 0600 from its first byte, where SQLite would create it
         * 0644 & ~umask and a chmod after the open would leave a window; never
         * through a symlink, whose target would get root's chmod and SQLite's writes
         * (SQLITE_OPEN_NOFOLLOW keeps SQLite's own open to that too); only a regular
         * file.
         */
        fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        /* A database someone else made (hard-linked into a directory of ours before
         * it was, say) is not ours to believe; a group or other write bit is fixed
         * below. */
        if (st.st_uid != geteuid())
                return owned_check(path, &st);
        if ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600) < 0)
                return negative_errno();
        if (sqlite3_open_v2(path, &db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                    SQLITE_OPEN_NOFOLLOW,
                            NULL) != SQLITE_OK) {
                sqlite3_close(db); /* a handle comes back even on failure, unless out of memory */
                return -EIO;
        }
        sqlite3_busy_timeout(db, (int)busy_timeout_ms);
        *ret = db;
        return 0;
}

int sqlite_exec(sqlite3 *db, const char *sql)
{
        return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

int sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **ret)
{
        return sqlite3_prepare_v2(db, sql, -1, ret, NULL) == SQLITE_OK ? 0 : -EIO;
}

int sqlite_step_done(sqlite3_stmt *st)
{
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

int sqlite_user_version(sqlite3 *db)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite_prepare(db, "PRAGMA user_version", &st) < 0 || sqlite3_step(st) != SQLITE_ROW)
                return -EIO;
        return sqlite3_column_int(st, 0);
}

int sqlite_schema_ensure(sqlite3 *db, int version, SqliteMigrate migrate, void *userdata)
{
        int have = sqlite_user_version(db), r;

        if (have < 0)
                return have;
        if (have == version)
                return 0;
        if (have > version)
                return -EPROTONOSUPPORT; /* written by a newer cella */
        if (sqlite_exec(db, "BEGIN IMMEDIATE") < 0)
                return -EIO;
        have = sqlite_user_version(db); /* another process may have done it meanwhile */
        if (have < 0)
                r = have;
        else if (have > version)
                r = -EPROTONOSUPPORT;
        else
                r = have < version ? migrate(db, have, userdata) : 0;
        return sqlite_tx_end(db, r < 0 ? r : 0);
}

int sqlite_tx_begin(sqlite3 *db, bool write, int version, SqliteMigrate migrate, void *userdata)
{
        int have, r;

        for (int attempt = 0; attempt < 2; attempt++) {
                if (sqlite_exec(db, write ? "BEGIN IMMEDIATE" : "BEGIN") < 0)
                        return -EIO;
                have = sqlite_user_version(db);
                if (have == version)
                        return 0;
                sqlite_exec(db, "ROLLBACK");
                if (have < 0)
                        return have;
                r = sqlite_schema_ensure(db, version, migrate, userdata);
                if (r < 0)
                        return r;
        }
        return -EIO;
}

int sqlite_tx_end(sqlite3 *db, int r)
{
        if (r < 0) {
                sqlite_exec(db, "ROLLBACK");
                return r;
        }
        if (sqlite_exec(db, "COMMIT") < 0) {
                sqlite_exec(db, "ROLLBACK");
                return -EIO;
        }
        return r;
}

int sqlite_prepare_args(sqlite3 *db, const char *sql, const SqlArg *args, size_t n,
                        sqlite3_stmt **ret)
{
        sqlite3_stmt *st = NULL;

        if (sqlite_prepare(db, sql, &st) < 0)
                return -EIO;
        for (size_t i = 0; i < n; i++) {
                int k = (int)i + 1, r;

                switch (args[i].type) {
                case SQL_ARG_TEXT:
                        r = sqlite3_bind_text(st, k, args[i].text, -1, SQLITE_STATIC);
                        break;
                case SQL_ARG_INT64:
                        r = sqlite3_bind_int64(st, k, args[i].i);
                        break;
                default:
                        r = sqlite3_bind_null(st, k);
                }
                if (r != SQLITE_OK) {
                        sqlite3_finalize(st);
                        return -EIO;
                }
        }
        *ret = st;
        return 0;
}

int sqlite_select_one(sqlite3 *db, const char *sql, const SqlArg *args, size_t n,
                      sqlite3_stmt **ret)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        *ret = NULL;
        if (sqlite_prepare_args(db, sql, args, n, &st) < 0)
                return -EIO;
        r = sqlite3_step(st);
        if (r == SQLITE_DONE)
                return 0;
        if (r != SQLITE_ROW)
                return -EIO;
        *ret = TAKE_PTR(st);
        return 1;
}

int sqlite_run(sqlite3 *db, const char *sql, const SqlArg *args, size_t n)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite_prepare_args(db, sql, args, n, &st) < 0 || sqlite_step_done(st) < 0)
                return -EIO;
        return sqlite3_changes(db);
}
