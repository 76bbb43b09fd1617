/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/statedir.h"
#include "base/sqlite-util.h"
#include "policy/manifest.h"
#include "sandbox/sandbox.h"
#include "supervisor/state.h"

_Static_assert(STATE_APP_UID_OFFSET == SANDBOX_UID && STATE_IDS_PER_APP == SANDBOX_IDS,
               "an app's uid sits in its block where it runs inside");

/* How long a cella process waits for another one holding the registry. */
#define STATE_DB_BUSY_TIMEOUT_MS 5000

/* One app's ids as state.db recorded them (StateUidCache). */
typedef struct UidEntry {
        uint64_t hash; /* of id (FNV-1a), looked at before the string */
        char *id;
        uid_t uid, ids_base;
} UidEntry;

/*
 * What state_app_uid() read from state.db, kept while the database is unchanged, so
 * that a start of a known app (a start through cellad's warm pool: every step counts)
 * does not query SQLite. "Unchanged" is SQLite's own test: the file change counter
 * of the database header (offset 24, big-endian; https://sqlite.org/fileformat.html
 * section 1.3.5), which every transaction that changes the file increments, in the
 * rollback journal mode state.db uses. It is read with pread() from an fd of the
 * file, whoever wrote it: another State of this process (cellad's store requests on
 * its thread pool: install's claim, remove's forget), `cella forget`, an embedded
 * `cella run`. A different counter, or a file no longer linked (replaced), empties
 * the cache. An entry is added only when the counter was the same before and after
 * the read that found it (no commit in between, so what was read is what the file
 * holds at that counter).
 */
typedef struct StateUidCache {
        int fd;           /* state.db read-only; -EBADF: not open (no cache) */
        uint32_t counter; /* the file change counter the entries hold for */
        UidEntry *e;
        size_t n, cap;
} StateUidCache;

struct State {
        char *path;
        char *db_path;
        sqlite3 *db;
        uid_t uid_base;
        uint32_t uid_count;
        bool created; /* state_open() made the directory */
        StateUidCache cache;
};

/*
 * The schema, versioned with PRAGMA user_version. The default rollback journal, not
 * WAL: nearly every run only reads (the app's uid is known), and WAL would create
 * and delete its -wal and -shm files on each of those reads.
 *
 * Readers check the version inside the same read transaction as their query
 * (read_begin()): one shared lock and one look at the header, where a separate
 * check on open cost a second statement, 0.15 ms of every `cella run`.
 */
#define STATE_SCHEMA_VERSION 3

/*
 * Creates the schema in a file that has none (from 0), or brings version 1 or 2 to 3;
 * called by sqlite_schema_ensure() under BEGIN IMMEDIATE. Version 2 binds each id to
 * what first claimed it (state_app_claim): path, dev, ino of the folder, the trusted
 * key that verified it (key_id, NULL: unsigned), the BLAKE2b-256 of its manifest.json
 * (digest, hex), and when (claimed_at, updated_at: wall-clock ms). Version 1 rows
 * have none of these: the first claim after the upgrade records them. Version 3 adds
 * ids_base, the first of the app's block of STATE_IDS_PER_APP host ids (state.h); rows
 * of an older version have NULL there and get a block the next time the app starts
 * (state_app_uid), keeping their uid.
 */
static int schema_migrate(sqlite3 *db, int from, void *userdata)
{
        if (from == 0)
                return sqlite_exec(db, "CREATE TABLE IF NOT EXISTS apps ("
                                       "  id TEXT PRIMARY KEY NOT NULL,"
                                       "  uid INTEGER UNIQUE NOT NULL,"
                                       "  created INTEGER NOT NULL DEFAULT (strftime('%s','now')),"
                                       "  path TEXT, dev INTEGER, ino INTEGER, key_id TEXT,"
                                       "  digest TEXT, claimed_at INTEGER, updated_at INTEGER,"
                                       "  ids_base INTEGER UNIQUE);"
                                       "PRAGMA user_version = 3;");
        if (from == 1)
                return sqlite_exec(db, "ALTER TABLE apps ADD COLUMN path TEXT;"
                                       "ALTER TABLE apps ADD COLUMN dev INTEGER;"
                                       "ALTER TABLE apps ADD COLUMN ino INTEGER;"
                                       "ALTER TABLE apps ADD COLUMN key_id TEXT;"
                                       "ALTER TABLE apps ADD COLUMN digest TEXT;"
                                       "ALTER TABLE apps ADD COLUMN claimed_at INTEGER;"
                                       "ALTER TABLE apps ADD COLUMN updated_at INTEGER;"
                                       "ALTER TABLE apps ADD COLUMN ids_base INTEGER;"
                                       "CREATE UNIQUE INDEX apps_ids_base ON apps (ids_base);"
                                       "PRAGMA user_version = 3;");
        return sqlite_exec(db, "ALTER TABLE apps ADD COLUMN ids_base INTEGER;"
                               "CREATE UNIQUE INDEX apps_ids_base ON apps (ids_base);"
                               "PRAGMA user_version = 3;");
}

/*
 * Starts a read transaction on a current schema: 0 with the transaction open (end it
 * with COMMIT), -EPROTONOSUPPORT for a newer schema, -EIO. A file with no schema yet
 * gets one first.
 */
static int read_begin(sqlite3 *db)
{
        return sqlite_tx_begin(db, false, STATE_SCHEMA_VERSION, schema_migrate, NULL);
}

int state_open(const char *path, uid_t uid_base, uint32_t uid_count, State **ret)
{
        _cleanup_free_ char *apps = NULL, *dbpath = NULL;
        _cleanup_close_ int dirfd = -EBADF, appsfd = -EBADF;
        bool created = false;
        bool fresh;
        State *s;
        int r;

        if (uid_count < STATE_IDS_PER_APP || uid_count % STATE_IDS_PER_APP != 0 || uid_base == 0 ||
            (uint64_t)uid_base + uid_count > 0xFFFFFFFEull)
                return -EINVAL;
        /* Ours alone, as every file cella trusts in it (base/statedir.h). */
        dirfd = state_dir_open_quiet(path, true, &created);
        if (dirfd < 0)
                return dirfd;
        if (asprintf(&apps, "%s/apps", path) < 0 || asprintf(&dbpath, "%s/state.db", path) < 0)
                return -ENOMEM;
        appsfd = owned_subdir_open(dirfd, "apps", 0711, apps);
        if (appsfd < 0)
                return appsfd;
        /* SQLite would open state.db on a read-only file system read-only and fail
         * the first write as "disk I/O error": say what is wrong instead. */
        if (access(path, W_OK) < 0)
                return negative_errno();

        fresh = access(dbpath, F_OK) < 0 && errno == ENOENT;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->path = strdup(path);
        s->db_path = TAKE_PTR(dbpath);
        s->cache.fd = -EBADF;
        s->created = created;
        s->uid_base = uid_base;
        s->uid_count = uid_count;
        if (!s->path) {
                state_free(s);
                return -ENOMEM;
        }
        r = sqlite_open(s->db_path, STATE_DB_BUSY_TIMEOUT_MS, &s->db);
        if (r < 0) {
                state_free(s);
                return r;
        }
        /* A new file gets its schema now; an existing one is checked by readers. */
        if (fresh) {
                r = sqlite_schema_ensure(s->db, STATE_SCHEMA_VERSION, schema_migrate, NULL);
                if (r < 0) {
                        state_free(s);
                        return r;
                }
        }
        *ret = s;
        return 0;
}

static void uid_cache_clear(StateUidCache *c)
{
        for (size_t i = 0; i < c->n; i++)
                free(c->e[i].id);
        c->n = 0;
}

State *state_free(State *s)
{
        if (!s)
                return NULL;
        sqlite3_close(s->db);
        uid_cache_clear(&s->cache);
        free(s->cache.e);
        safe_close(s->cache.fd);
        free(s->db_path);
        free(s->path);
        free(s);
        return NULL;
}

const char *state_path(const State *s)
{
        return s->path;
}

bool state_created(const State *s)
{
        return s->created;
}

/* id's uid and block (*ret_base 0: none yet, a row of schema 1 or 2): 1, 0 if no row, -EIO. */
static int lookup_uid(sqlite3 *db, const char *id, uid_t *ret, uid_t *ret_base)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = sqlite_select_one(db, "SELECT uid, ids_base FROM apps WHERE id = ?1",
                              SQL_ARGS(SQL_TEXT(id)), &st);
        if (r <= 0)
                return r;
        *ret = (uid_t)sqlite3_column_int64(st, 0);
        *ret_base =
                sqlite3_column_type(st, 1) == SQLITE_NULL ? 0 : (uid_t)sqlite3_column_int64(st, 1);
        return 1;
}

/*
 * The lowest block [b, b + STATE_IDS_PER_APP) of the range, at a multiple of
 * STATE_IDS_PER_APP from its base, that shares no id with any recorded app: neither
 * with another block (one recorded under an older range may sit anywhere) nor with
 * any app's uid (a uid from before blocks, schema 1 or 2, is a single id outside any
 * block). One indexed query per block tried: the first gap, as apps are few.
 * 0 and *ret, -ENOSPC when the range is full, -EIO.
 */
static int block_alloc(State *s, uid_t *ret)
{
        static const char sql[] =
                "SELECT 1 FROM apps WHERE (ids_base > ?1 - ?2 AND ids_base < ?1 + ?2)"
                " OR (uid >= ?1 AND uid < ?1 + ?2) LIMIT 1";
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite_prepare(s->db, sql, &st) < 0)
                return -EIO;
        for (uint32_t k = 0; k < s->uid_count / STATE_IDS_PER_APP; k++) {
                int64_t b = (int64_t)s->uid_base + (int64_t)k * STATE_IDS_PER_APP;
                int step;

                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, b);
                sqlite3_bind_int64(st, 2, STATE_IDS_PER_APP);
                step = sqlite3_step(st);
                if (step == SQLITE_DONE) {
                        *ret = (uid_t)b;
                        return 0;
                }
                if (step != SQLITE_ROW)
                        return -EIO;
        }
        return -ENOSPC;
}

/* Records base as id's block. 0 or -EIO. */
static int block_store(sqlite3 *db, const char *id, uid_t base)
{
        return sqlite_run(db, "UPDATE apps SET ids_base = ?2 WHERE id = ?1",
                          SQL_ARGS(SQL_TEXT(id), SQL_INT(base))) == 1
                       ? 0
                       : -EIO;
}

static uint64_t id_hash(const char *id)
{
        uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, 64 bits */

        for (const unsigned char *p = (const unsigned char *)id; *p; p++)
                h = (h ^ *p) * 0x100000001b3ull;
        return h;
}

/*
 * state.db's file change counter into *ret: 0; -errno when it cannot be read (no
 * file yet, a short one: no header), which callers take as "no cache". Reopens the
 * file when the one held is no longer linked (state.db replaced).
 */
static int db_counter(State *s, uint32_t *ret)
{
        uint8_t b[4];
        struct stat st;

        if (s->cache.fd >= 0 && (fstat(s->cache.fd, &st) < 0 || st.st_nlink == 0)) {
                s->cache.fd = safe_close(s->cache.fd);
                uid_cache_clear(&s->cache);
        }
        if (s->cache.fd < 0) {
                s->cache.fd = open(s->db_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                if (s->cache.fd < 0) {
                        s->cache.fd = -EBADF;
                        return negative_errno();
                }
                uid_cache_clear(&s->cache);
        }
        if (pread(s->cache.fd, b, sizeof b, 24) != (ssize_t)sizeof b)
                return -EIO;
        *ret = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        return 0;
}

static const UidEntry *uid_cache_find(const StateUidCache *c, const char *id)
{
        uint64_t h = id_hash(id);

        for (size_t i = 0; i < c->n; i++)
                if (c->e[i].hash == h && strcmp(c->e[i].id, id) == 0)
                        return &c->e[i];
        return NULL;
}

/* Adds id's ids (a failure to allocate only leaves it out). */
static void uid_cache_add(StateUidCache *c, const char *id, uid_t uid, uid_t base)
{
        char *copy;

        if (c->n == c->cap) {
                size_t cap = c->cap ? 2 * c->cap : 16;
                UidEntry *e = reallocarray(c->e, cap, sizeof *e);

                if (!e)
                        return;
                c->e = e;
                c->cap = cap;
        }
        copy = strdup(id);
        if (!copy)
                return;
        c->e[c->n++] = (UidEntry){.hash = id_hash(id), .id = copy, .uid = uid, .ids_base = base};
}

int state_app_uid(State *s, const char *id, uid_t *ret_uid, uid_t *ret_ids_base)
{
        uid_t uid = 0, base = 0;
        uint32_t before = 0, after = 0;
        bool cacheable;
        int r;

        /* The id becomes a path and a cgroup name later: never record a bad one. */
        if (!id || !manifest_id_is_valid(id))
                return -EINVAL;
        /* The cache first: valid while state.db's change counter is the one it
         * holds for (StateUidCache). */
        cacheable = db_counter(s, &before) >= 0;
        if (cacheable && before != s->cache.counter) {
                uid_cache_clear(&s->cache);
                s->cache.counter = before;
        }
        if (cacheable) {
                const UidEntry *e = uid_cache_find(&s->cache, id);

                if (e) {
                        *ret_uid = e->uid;
                        if (ret_ids_base)
                                *ret_ids_base = e->ids_base;
                        return 0;
                }
        }
        r = read_begin(s->db);
        if (r < 0)
                return r;
        r = lookup_uid(s->db, id, &uid, &base);
        sqlite_exec(s->db, "COMMIT");
        if (r < 0)
                return r;
        if (r > 0 && base != 0) {
                /* Cached only if no commit came between the two reads of the counter
                 * (read_begin() may have written a schema: then the counter moved). */
                if (cacheable && db_counter(s, &after) >= 0 && after == before &&
                    s->cache.counter == before)
                        uid_cache_add(&s->cache, id, uid, base);
                *ret_uid = uid;
                if (ret_ids_base)
                        *ret_ids_base = base;
                return 0;
        }
        /* IMMEDIATE takes the write lock before reading, so two cella processes
         * allocating at once serialise here instead of both picking the same gap. */
        if (sqlite_exec(s->db, "BEGIN IMMEDIATE") < 0)
                return -EIO;
        r = lookup_uid(s->db, id, &uid, &base);
        if (r >= 0 && base == 0) {
                bool known = r > 0;

                r = block_alloc(s, &base);
                if (r == 0 && known)
                        /* A uid from before blocks: kept (the app's files are its own),
                         * mapped to SANDBOX_UID; the block holds its other ids. */
                        r = block_store(s->db, id, base);
                else if (r == 0) {
                        uid = base + STATE_APP_UID_OFFSET;
                        r = sqlite_run(s->db,
                                       "INSERT INTO apps (id, uid, ids_base) VALUES (?1, ?2, ?3)",
                                       SQL_ARGS(SQL_TEXT(id), SQL_INT(uid), SQL_INT(base)));
                        r = r < 0 ? r : 0;
                }
        }
        r = sqlite_tx_end(s->db, r);
        if (r < 0)
                return r;
        *ret_uid = uid;
        if (ret_ids_base)
                *ret_ids_base = base;
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

/* ---- identity ------------------------------------------------------------------------- */

int state_claim_of_folder(int dirfd, const char *key_id, StateClaim *ret)
{
        _cleanup_free_ char *buf = NULL;
        StateClaim c = {};
        char proc[64], hex[2 * crypto_generichash_BYTES + 1];
        uint8_t h[crypto_generichash_BYTES];
        struct stat st;
        size_t n = 0;

        if (fstat(dirfd, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", dirfd);
        c.path = realpath(proc, NULL);
        if (!c.path)
                return negative_errno();
        c.dev = (uint64_t)st.st_dev;
        c.ino = (uint64_t)st.st_ino;
        if (key_id && *key_id && !(c.key_id = strdup(key_id))) {
                state_claim_clear(&c);
                return -ENOMEM;
        }
        /* The manifest's hash, for the record: what changed between installs. */
        if (read_file_at(dirfd, "manifest.json", MANIFEST_MAX_SIZE, &buf, &n) == 0) {
                crypto_generichash(h, sizeof h, (const uint8_t *)buf, n, NULL, 0);
                sodium_bin2hex(hex, sizeof hex, h, sizeof h);
                c.digest = strdup(hex);
                if (!c.digest) {
                        state_claim_clear(&c);
                        return -ENOMEM;
                }
        }
        *ret = c;
        return 0;
}

void state_claim_log_conflict(const char *id, const char *app_dir, const StateClaim *claim,
                              const StateClaim *rec)
{
        char when[64] = "at an unknown time", how[96], now_how[96];
        time_t t = (time_t)(rec->claimed_at_ms / 1000);
        struct tm tm;

        if (rec->claimed_at_ms > 0 && gmtime_r(&t, &tm))
                strftime(when, sizeof when, "on %Y-%m-%d %H:%M:%S UTC", &tm);
        if (rec->key_id)
                snprintf(how, sizeof how, "signed by trusted key %s", rec->key_id);
        else
                snprintf(how, sizeof how, "unsigned, so bound to its folder");
        if (claim->key_id)
                snprintf(now_how, sizeof now_how, "signed by key %s", claim->key_id);
        else
                snprintf(now_how, sizeof now_how, "not signed by a trusted key");
        log_error("%s: refused: the app id %s belongs to the app installed %s from %s (%s); "
                  "%s is another app (%s, folder %s). The installed app keeps its data and "
                  "rights.",
                  app_dir, id, when, rec->path ?: "an unknown folder", how, app_dir, now_how,
                  claim->path);
        log_error("to give %s to %s, forget the installed app first (its /data and its "
                  "grants are deleted): cella forget %s",
                  id, app_dir, id);
}

void state_claim_log_nested(const char *id, const char *app_dir, const StateClaim *claim,
                            const StateClaim *parent)
{
        const char *pid = parent->id ?: "?";

        log_error("%s: refused: the app id %s lies in the namespace of the installed app %s "
                  "(from %s, %s%s); an id under another app's is taken only by an app signed "
                  "by the same trusted key (this one is %s%s).",
                  app_dir, id, pid, parent->path ?: "an unknown folder",
                  parent->key_id ? "signed by trusted key " : "unsigned", parent->key_id ?: "",
                  claim->key_id ? "signed by key " : "not signed by a trusted key",
                  claim->key_id ?: "");
        log_error("choose an id outside %s.*, have %s's signer sign it, or forget %s first: "
                  "cella forget %s",
                  pid, pid, pid, pid);
}

void state_claim_clear(StateClaim *c)
{
        if (!c)
                return;
        free(c->id);
        free(c->path);
        free(c->key_id);
        free(c->digest);
        *c = (StateClaim){};
}

static char *column_dup(sqlite3_stmt *st, int i, int *r)
{
        const char *v = (const char *)sqlite3_column_text(st, i);
        char *d;

        if (!v)
                return NULL;
        d = strdup(v);
        if (!d)
                *r = -ENOMEM;
        return d;
}

/* The recorded row of id: 1 and *ret (its uid and rowid too, each if not NULL;
 * claimed_at_ms 0 when unknown, a row of schema 1), 0 if none, -EIO, -ENOMEM. */
static int claim_lookup(sqlite3 *db, const char *id, StateClaim *ret, uid_t *ret_uid,
                        int64_t *ret_rowid)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = sqlite_select_one(db,
                              "SELECT uid, path, dev, ino, key_id, digest, claimed_at, rowid"
                              " FROM apps WHERE id = ?1",
                              SQL_ARGS(SQL_TEXT(id)), &st);
        if (r <= 0)
                return r;
        if (ret_uid)
                *ret_uid = (uid_t)sqlite3_column_int64(st, 0);
        if (ret_rowid)
                *ret_rowid = sqlite3_column_int64(st, 7);
        ret->path = column_dup(st, 1, &r);
        ret->dev = (uint64_t)sqlite3_column_int64(st, 2);
        ret->ino = (uint64_t)sqlite3_column_int64(st, 3);
        ret->key_id = column_dup(st, 4, &r);
        ret->digest = column_dup(st, 5, &r);
        ret->claimed_at_ms = sqlite3_column_int64(st, 6);
        if (r < 0) {
                state_claim_clear(ret);
                return r;
        }
        return 1;
}

static bool streq_ptr(const char *a, const char *b)
{
        return a == b || (a && b && strcmp(a, b) == 0);
}

/*
 * True if path (canonical) is a version folder of id in the store (docs/store.md):
 * <state>/apps/<id>/<version>, the version starting with a digit. The store puts
 * there only what passed its same-signer rule for id (an unsigned app updated by an
 * unsigned one, a signed one by the same key), so moving from one such folder to
 * another is an update of the same app, not another app taking the id.
 */
static bool in_store(const State *s, const char *id, const char *path)
{
        _cleanup_free_ char *canon = NULL;
        size_t n;

        if (!path)
                return false;
        canon = realpath(s->path, NULL);
        if (!canon)
                return false;
        n = strlen(canon);
        if (strncmp(path, canon, n) != 0 || strncmp(path + n, "/apps/", 6) != 0)
                return false;
        path += n + 6;
        n = strlen(id);
        if (strncmp(path, id, n) != 0 || path[n] != '/')
                return false;
        path += n + 1;
        return path[0] >= '0' && path[0] <= '9' && !strchr(path, '/');
}

/* Writes claim into id's row (inserting it with uid when insert). 0 or -EIO. */
static int claim_store(sqlite3 *db, const char *id, uid_t uid, const StateClaim *c, bool insert,
                       bool first, int64_t now_ms)
{
        const SqlArg args[] = {
                SQL_TEXT(id),        SQL_INT(uid),    SQL_TEXT(c->path),
                SQL_INT(c->dev),     SQL_INT(c->ino), SQL_TEXT(c->key_id),
                SQL_TEXT(c->digest), SQL_INT(now_ms), SQL_INT(first ? 1 : 0),
        };

        /* ?9 is the UPDATE's only: an INSERT binds the first eight. */
        return sqlite_run(db,
                          insert ? "INSERT INTO apps (id, uid, path, dev, ino, key_id, digest,"
                                   " claimed_at, updated_at)"
                                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)"
                                 : "UPDATE apps SET path = ?3, dev = ?4, ino = ?5,"
                                   " key_id = ?6, digest = ?7, updated_at = ?8,"
                                   " claimed_at = CASE WHEN ?9 THEN ?8 ELSE claimed_at END"
                                   " WHERE id = ?1",
                          args, insert ? 8 : 9) < 0
                       ? -EIO
                       : 0;
}

/*
 * Refuses id when it lies in the namespace of an app recorded before it ("org.v.inbox"
 * under "org.v"): that namespace (its bus topics, its nested ids) is the parent's,
 * and an app that took a name in it would have rights reaching into it taken from
 * the parent (grants.c, "Reaching other apps"). Allowed only when both are signed by
 * the same trusted key, or when id was recorded first (then the parent came later and
 * does not get into it). Returns 0; -ENOTUNIQ with *rec the parent's claim (rec->id
 * set); -EIO, -ENOMEM.
 */
static int claim_check_nested(sqlite3 *db, const char *id, const StateClaim *c, StateClaim *rec)
{
        StateClaim self = {};
        int64_t self_rowid = 0, self_at;
        bool self_known;
        int r;

        r = claim_lookup(db, id, &self, NULL, &self_rowid);
        if (r < 0)
                return r;
        self_known = r > 0 && self.claimed_at_ms > 0;
        self_at = self.claimed_at_ms;
        state_claim_clear(&self);
        for (const char *dot = strchr(id, '.'); dot; dot = strchr(dot + 1, '.')) {
                _cleanup_free_ char *parent = strndup(id, (size_t)(dot - id));
                StateClaim p = {};
                int64_t rowid = 0;

                if (!parent)
                        return -ENOMEM;
                r = claim_lookup(db, parent, &p, NULL, &rowid);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                if ((p.key_id && c->key_id && strcmp(p.key_id, c->key_id) == 0) ||
                    (self_known && (self_at < p.claimed_at_ms ||
                                    (self_at == p.claimed_at_ms && self_rowid < rowid)))) {
                        state_claim_clear(&p);
                        continue;
                }
                state_claim_clear(rec);
                *rec = p;
                rec->id = TAKE_PTR(parent);
                return -ENOTUNIQ;
        }
        return 0;
}

/*
 * One pass of state_app_claim inside a transaction (write: may record). Returns a
 * StateClaimResult, -EEXIST (with *rec), 1000 when a write is needed and !write, or
 * -errno.
 */
#define CLAIM_NEEDS_WRITE 1000
static int claim_locked(State *s, const char *id, const StateClaim *c, int64_t now_ms, bool write,
                        StateClaim *rec)
{
        StateClaim merged;
        uid_t uid = 0;
        bool same, changed;
        int r;

        r = claim_check_nested(s->db, id, c, rec);
        if (r < 0)
                return r;
        r = claim_lookup(s->db, id, rec, &uid, NULL);
        if (r < 0)
                return r;
        if (r == 0) {
                if (!write)
                        return CLAIM_NEEDS_WRITE;
                uid_t base;

                r = block_alloc(s, &base);
                if (r < 0)
                        return r;
                uid = base + STATE_APP_UID_OFFSET;
                r = claim_store(s->db, id, uid, c, true, true, now_ms);
                if (r == 0)
                        r = block_store(s->db, id, base);
                return r < 0 ? r : STATE_CLAIM_NEW;
        }
        if (!rec->path && !rec->key_id) {
                /* A uid allocated by a cella that recorded no claim: this is the first. */
                if (!write)
                        return CLAIM_NEEDS_WRITE;
                r = claim_store(s->db, id, uid, c, false, true, now_ms);
                return r < 0 ? r : STATE_CLAIM_UPDATED;
        }
        same = rec->key_id ? streq_ptr(rec->key_id, c->key_id) : streq_ptr(rec->path, c->path);
        if (!same)
                same = in_store(s, id, rec->path) && in_store(s, id, c->path);
        if (!same)
                return -EEXIST;
        merged = *c;
        if (!merged.key_id)
                merged.key_id = rec->key_id; /* never unbinds: same was checked above */
        changed = !streq_ptr(rec->path, merged.path) || rec->dev != merged.dev ||
                  rec->ino != merged.ino || !streq_ptr(rec->key_id, merged.key_id) ||
                  !streq_ptr(rec->digest, merged.digest);
        if (!changed)
                return STATE_CLAIM_SAME;
        if (!write)
                return CLAIM_NEEDS_WRITE;
        r = claim_store(s->db, id, uid, &merged, false, false, now_ms);
        return r < 0 ? r : STATE_CLAIM_UPDATED;
}

int state_app_claim(State *s, const char *id, const StateClaim *claim, int64_t now_ms,
                    StateClaim *ret_recorded)
{
        StateClaim rec = {};
        int r;

        if (!s || !id || !manifest_id_is_valid(id) || !claim || !claim->path ||
            claim->path[0] != '/')
                return -EINVAL;
        /* The common case, the same app again, is a read. */
        r = read_begin(s->db);
        if (r < 0)
                return r;
        r = claim_locked(s, id, claim, now_ms, false, &rec);
        sqlite_exec(s->db, "COMMIT");
        if (r == CLAIM_NEEDS_WRITE) {
                state_claim_clear(&rec);
                if (sqlite_exec(s->db, "BEGIN IMMEDIATE") < 0)
                        return -EIO;
                r = sqlite_tx_end(s->db, claim_locked(s, id, claim, now_ms, true, &rec));
        }
        if ((r == -EEXIST || r == -ENOTUNIQ) && ret_recorded)
                *ret_recorded = rec;
        else
                state_claim_clear(&rec);
        return r;
}

/* The depth rm_rf_at() goes to: deeper trees are refused (-ELOOP), not recursed into. */
#define RM_DEPTH_MAX 256

/*
 * Removes name beneath parent and, if it is a directory, everything under it, never
 * following a symlink (each directory is opened O_NOFOLLOW and walked by its fd) and
 * never entering another file system than parent's (-EXDEV: something mounted there,
 * such as an app's /data mounted again by a start that raced `cella forget`, is left
 * whole). Returns 0 (also if name is missing) or -errno.
 */
static int rm_rf_at(int parent, const char *name, unsigned depth)
{
        struct stat pst, st;
        struct dirent *de;
        DIR *d;
        int fd, r = 0;

        if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return negative_errno();
        if (depth >= RM_DEPTH_MAX)
                return -ELOOP;
        fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fstat(parent, &pst) < 0 || fstat(fd, &st) < 0)
                r = negative_errno();
        else if (st.st_dev != pst.st_dev)
                r = -EXDEV;
        if (r < 0) {
                close(fd);
                return r;
        }
        d = fdopendir(fd);
        if (!d) {
                r = negative_errno();
                close(fd);
                return r;
        }
        while (r == 0 && (errno = 0, de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        r = rm_rf_at(dirfd(d), de->d_name, depth + 1);
        if (r == 0 && errno != 0)
                r = negative_errno();
        closedir(d);
        if (r == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                r = negative_errno();
        return r;
}

int state_app_clear_data(State *s, const char *id)
{
        static const char *const names[] = {"data", "data.img"};
        _cleanup_free_ char *app = NULL;
        _cleanup_close_ int fd = -EBADF;
        int n = 0;

        if (!s || !id || !manifest_id_is_valid(id))
                return -EINVAL;
        if (asprintf(&app, "%s/apps/%s", s->path, id) < 0)
                return -ENOMEM;
        fd = open(app, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                int r;

                if (faccessat(fd, names[i], F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                r = rm_rf_at(fd, names[i], 0);
                if (r < 0)
                        return r;
                n++;
        }
        return n > 0;
}

int state_app_forget(State *s, const char *id)
{
        _cleanup_free_ char *apps = NULL;
        _cleanup_close_ int fd = -EBADF;
        bool there;
        int r;

        if (!s || !id || !manifest_id_is_valid(id))
                return -EINVAL;
        if (asprintf(&apps, "%s/apps", s->path) < 0)
                return -ENOMEM;
        fd = open(apps, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno != ENOENT)
                return negative_errno();
        there = fd >= 0 && faccessat(fd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
        if (fd >= 0) {
                r = rm_rf_at(fd, id, 0);
                if (r < 0)
                        return r;
        }
        /* The schema is brought up to date first. */
        r = sqlite_tx_begin(s->db, true, STATE_SCHEMA_VERSION, schema_migrate, NULL);
        if (r < 0)
                return r;
        r = sqlite_tx_end(
                s->db, sqlite_run(s->db, "DELETE FROM apps WHERE id = ?1", SQL_ARGS(SQL_TEXT(id))));
        if (r < 0)
                return r;
        return there || r > 0 ? 1 : 0;
}
