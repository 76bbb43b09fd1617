/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "policy/manifest.h"
#include "supervisor/state.h"

/* How long a cella process waits for another one holding the registry. */
#define STATE_DB_BUSY_TIMEOUT_MS 5000

struct State {
        char *path;
        sqlite3 *db;
        uid_t uid_base;
        uint32_t uid_count;
};

static int db_exec(sqlite3 *db, const char *sql)
{
        return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

/*
 * The schema, versioned with PRAGMA user_version. The default rollback journal, not
 * WAL: nearly every run only reads (the app's uid is known), and WAL would create
 * and delete its -wal and -shm files on each of those reads.
 *
 * Readers check the version inside the same read transaction as their query
 * (read_begin()): one shared lock and one look at the header, where a separate
 * check on open cost a second statement, 0.15 ms of every `cella run`.
 */
#define STATE_SCHEMA_VERSION 1

/* PRAGMA user_version of db (0 for a new file), or -EIO. */
static int schema_version(sqlite3 *db)
{
        sqlite3_stmt *st = NULL;
        int version = -EIO;

        if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_step(st) == SQLITE_ROW)
                version = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return version;
}

/* Creates the schema if the file has none. -EPROTONOSUPPORT if a newer cella wrote it. */
static int schema_ensure(sqlite3 *db)
{
        int version = schema_version(db), r;

        if (version < 0)
                return version;
        if (version == STATE_SCHEMA_VERSION)
                return 0;
        if (version > STATE_SCHEMA_VERSION)
                return -EPROTONOSUPPORT; /* written by a newer cella */
        r = db_exec(db, "BEGIN IMMEDIATE;"
                        "CREATE TABLE IF NOT EXISTS apps ("
                        "  id TEXT PRIMARY KEY NOT NULL,"
                        "  uid INTEGER UNIQUE NOT NULL,"
                        "  created INTEGER NOT NULL DEFAULT (strftime('%s','now')));"
                        "PRAGMA user_version = 1;"
                        "COMMIT;");
        if (r < 0)
                db_exec(db, "ROLLBACK");
        return r;
}

/*
 * Starts a read transaction on a current schema: 0 with the transaction open (end it
 * with COMMIT), -EPROTONOSUPPORT for a newer schema, -EIO. A file with no schema yet
 * gets one first.
 */
static int read_begin(sqlite3 *db)
{
        int version, r;

        for (int attempt = 0; attempt < 2; attempt++) {
                if (db_exec(db, "BEGIN") < 0)
                        return -EIO;
                version = schema_version(db);
                if (version == STATE_SCHEMA_VERSION)
                        return 0;
                db_exec(db, "COMMIT");
                if (version < 0)
                        return version;
                r = schema_ensure(db);
                if (r < 0)
                        return r;
        }
        return -EIO;
}

int state_open(const char *path, uid_t uid_base, uint32_t uid_count, State **ret)
{
        _cleanup_free_ char *apps = NULL, *dbpath = NULL;
        bool fresh;
        State *s;
        int r;

        if (uid_count == 0 || uid_base == 0 || (uint64_t)uid_base + uid_count > 0xFFFFFFFEull)
                return -EINVAL;
        r = mkdir_p(path, 0711);
        if (r < 0)
                return r;
        if (asprintf(&apps, "%s/apps", path) < 0 || asprintf(&dbpath, "%s/state.db", path) < 0)
                return -ENOMEM;
        if (mkdir(apps, 0711) < 0 && errno != EEXIST)
                return negative_errno();

        fresh = access(dbpath, F_OK) < 0 && errno == ENOENT;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->path = strdup(path);
        s->uid_base = uid_base;
        s->uid_count = uid_count;
        if (!s->path) {
                state_free(s);
                return -ENOMEM;
        }
        if (sqlite3_open_v2(dbpath, &s->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
                state_free(s);
                return -EIO;
        }
        sqlite3_busy_timeout(s->db, STATE_DB_BUSY_TIMEOUT_MS);
        (void)chmod(dbpath, 0600);
        /* A new file gets its schema now; an existing one is checked by readers. */
        if (fresh) {
                r = schema_ensure(s->db);
                if (r < 0) {
                        state_free(s);
                        return r;
                }
        }
        *ret = s;
        return 0;
}

State *state_free(State *s)
{
        if (!s)
                return NULL;
        sqlite3_close(s->db);
        free(s->path);
        free(s);
        return NULL;
}

const char *state_path(const State *s)
{
        return s->path;
}

static int lookup_uid(sqlite3 *db, const char *id, uid_t *ret)
{
        sqlite3_stmt *st = NULL;
        int r;

        if (sqlite3_prepare_v2(db, "SELECT uid FROM apps WHERE id = ?1", -1, &st, NULL) !=
            SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
                *ret = (uid_t)sqlite3_column_int64(st, 0);
                r = 1;
        } else
                r = r == SQLITE_DONE ? 0 : -EIO;
        sqlite3_finalize(st);
        return r;
}

/* The lowest uid in [base, base+count) no app holds: the first gap after base. */
static int lowest_free_uid(State *s, uid_t *ret)
{
        static const char sql[] =
                "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM apps WHERE uid = ?1) THEN ?1 ELSE"
                " (SELECT MIN(a.uid) + 1 FROM apps a WHERE a.uid >= ?1 AND a.uid < ?2"
                "  AND NOT EXISTS (SELECT 1 FROM apps b WHERE b.uid = a.uid + 1)) END";
        sqlite3_stmt *st = NULL;
        int64_t uid;
        int r;

        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_int64(st, 1, s->uid_base);
        sqlite3_bind_int64(st, 2, (int64_t)s->uid_base + s->uid_count);
        r = sqlite3_step(st);
        if (r != SQLITE_ROW) {
                sqlite3_finalize(st);
                return -EIO;
        }
        uid = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (uid < s->uid_base || uid >= (int64_t)s->uid_base + s->uid_count)
                return -ENOSPC;
        *ret = (uid_t)uid;
        return 0;
}

int state_app_uid(State *s, const char *id, uid_t *ret_uid)
{
        sqlite3_stmt *st = NULL;
        uid_t uid;
        int r;

        /* The id becomes a path and a cgroup name later: never record a bad one. */
        if (!id || !manifest_id_is_valid(id))
                return -EINVAL;
        r = read_begin(s->db);
        if (r < 0)
                return r;
        r = lookup_uid(s->db, id, &uid);
        db_exec(s->db, "COMMIT");
        if (r < 0)
                return r;
        if (r > 0) {
                *ret_uid = uid;
                return 0;
        }
        /* IMMEDIATE takes the write lock before reading, so two cella processes
         * allocating at once serialise here instead of both picking the same gap. */
        if (db_exec(s->db, "BEGIN IMMEDIATE") < 0)
                return -EIO;
        r = lookup_uid(s->db, id, &uid);
        if (r == 0)
                r = lowest_free_uid(s, &uid);
        if (r == 0) {
                if (sqlite3_prepare_v2(s->db, "INSERT INTO apps (id, uid) VALUES (?1, ?2)", -1, &st,
                                       NULL) != SQLITE_OK)
                        r = -EIO;
                else {
                        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(st, 2, uid);
                        r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
                        sqlite3_finalize(st);
                }
        }
        if (r < 0) {
                db_exec(s->db, "ROLLBACK");
                return r;
        }
        if (db_exec(s->db, "COMMIT") < 0)
                return -EIO;
        *ret_uid = uid;
        return 0;
}

/* Makes apps/<id>/data if missing and checks it is a directory; *ret_st is its lstat. */
static int data_dir_make(State *s, const char *id, char **ret, struct stat *ret_st)
{
        _cleanup_free_ char *app = NULL, *data = NULL;

        /* The id was validated by the manifest parser; check again, since it
         * becomes a path. */
        if (!id || !manifest_id_is_valid(id))
                return -EINVAL;
        if (asprintf(&app, "%s/apps/%s", s->path, id) < 0 || asprintf(&data, "%s/data", app) < 0)
                return -ENOMEM;
        if (mkdir(app, 0711) < 0 && errno != EEXIST)
                return negative_errno();
        if (mkdir(data, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        if (lstat(data, ret_st) < 0)
                return negative_errno();
        if (!S_ISDIR(ret_st->st_mode))
                return -ENOTDIR;
        *ret = TAKE_PTR(data);
        return 0;
}

int state_app_data_path(State *s, const char *id, char **ret)
{
        struct stat st;

        return data_dir_make(s, id, ret, &st);
}

int state_app_data_dir(State *s, const char *id, uid_t uid, char **ret)
{
        _cleanup_free_ char *data = NULL;
        struct stat st;
        int r;

        r = data_dir_make(s, id, &data, &st);
        if (r < 0)
                return r;
        if ((st.st_uid != uid || st.st_gid != uid) && lchown(data, uid, uid) < 0)
                return negative_errno();
        *ret = TAKE_PTR(data);
        return 0;
}
