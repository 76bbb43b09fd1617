/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Grants in <state>/grants.db (grants.h, docs/capabilities.md).
 *
 * SQLite as state.c uses it: rollback journal, schema versioned with PRAGMA
 * user_version and checked inside each transaction, writers take the lock up front
 * with BEGIN IMMEDIATE so two cella processes never interleave a read-modify-write
 * (a one-time grant is consumed exactly once). A check is a read transaction; only
 * when the one grant that allows it is one-time does it start again as a writer.
 *
 * Rows hold right strings as granted; each is parsed again when read (the catalogue
 * is code, the file is data that may be older, or edited by hand), and a row that no
 * longer parses is ignored, never trusted.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/statedir.h"
#include "base/sqlite-util.h"
#include "base/strv.h"
#include "base/time-util.h"
#include "policy/grants.h"
#include "policy/signature.h"

/* How long a cella process waits for another one holding grants.db. */
#define GRANTS_DB_BUSY_TIMEOUT_MS 5000

/* Rows read back for one app: what grants_grant and grants_install can have written
 * (a hand-edited file holding more is refused with -E2BIG, not read without end). */
#define GRANTS_ROWS_MAX (GRANTS_PER_APP_MAX + MANIFEST_LIST_MAX)

#define GRANTS_SCHEMA_VERSION 2

struct Grants {
        sqlite3 *db;
};

static const char *const source_names[] = {
        [GRANT_BY_INSTALL] = "install",
        [GRANT_BY_USER] = "user",
        [GRANT_BY_SIGNATURE] = "signature",
};

const char *grant_source_to_string(GrantSource s)
{
        return (unsigned)s < ELEMENTSOF(source_names) ? source_names[s] : "unknown";
}

static int grant_source_from_string(const char *s, GrantSource *ret)
{
        for (size_t i = 0; s && i < ELEMENTSOF(source_names); i++)
                if (strcmp(s, source_names[i]) == 0) {
                        *ret = (GrantSource)i;
                        return 0;
                }
        return -EINVAL;
}

const char *grants_reason_to_string(GrantsReason r)
{
        switch (r) {
        case GRANTS_ALLOWED:
                return "allowed";
        case GRANTS_NOT_GRANTED:
                return "not granted";
        case GRANTS_NO_GESTURE:
                return "no recent user gesture";
        case GRANTS_NOT_REQUESTED:
                return "not requested by the manifest";
        case GRANTS_NOT_SIGNED:
                return "not signed by a trusted key";
        case GRANTS_INVALID:
                return "no such right";
        }
        return "unknown";
}

int64_t grants_now_ms(void)
{
        return now_realtime_ms();
}

/* ---- schema and transactions ------------------------------------------------------------ */

/*
 * The first column of sql's rows, with app bound to ?1, as a NULL-terminated list
 * (never NULL on success; caller frees). At most max rows: -E2BIG past that.
 * Returns 0, -EIO, -ENOMEM, -E2BIG.
 */
static int select_strings(sqlite3 *db, const char *sql, const char *app, size_t max, char ***ret)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        int r;

        if (sqlite_prepare(db, sql, &st) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                const char *v = (const char *)sqlite3_column_text(st, 0);

                if (++n > max)
                        return -E2BIG;
                if (v && strv_extend(&l, v) < 0)
                        return -ENOMEM;
        }
        if (r != SQLITE_DONE)
                return -EIO;
        *ret = TAKE_PTR(l);
        return 0;
}

static int reconcile_all(sqlite3 *db, int64_t now_ms);

/*
 * The schema. Times are wall-clock ms since the epoch. A right is one row per exact
 * string; "requested" is the manifest's set as of the last install, "waiting" marks a
 * normal right held back because it reaches other apps (granted by install once it
 * qualifies: reconcile_all()). "exports" are the rights an app lets others hold on its
 * namespace, each "name:scope" (a bare "bus.send" stored as "bus.send:<id>").
 * apps.key_id is the trusted key that verified the bundle (NULL: unsigned, or signed
 * with no key id known). "capability" because RIGHT is an SQL keyword. Made (from
 * version 0) or upgraded (from 1) by sqlite_schema_ensure(), under BEGIN IMMEDIATE.
 */
static int schema_migrate(sqlite3 *db, int version, void *userdata)
{
        int r;

        if (version == 0)
                r = sqlite_exec(db,
                                "CREATE TABLE IF NOT EXISTS apps ("
                                "  id TEXT PRIMARY KEY NOT NULL,"
                                "  signed INTEGER NOT NULL CHECK (signed IN (0, 1)),"
                                "  installed_at INTEGER NOT NULL,"
                                "  key_id TEXT);"
                                "CREATE TABLE IF NOT EXISTS requested ("
                                "  app_id TEXT NOT NULL,"
                                "  capability TEXT NOT NULL,"
                                "  waiting INTEGER NOT NULL DEFAULT 0 CHECK (waiting IN (0, 1)),"
                                "  PRIMARY KEY (app_id, capability));"
                                "CREATE TABLE IF NOT EXISTS grants ("
                                "  app_id TEXT NOT NULL,"
                                "  capability TEXT NOT NULL,"
                                "  granted_at INTEGER NOT NULL,"
                                "  one_time INTEGER NOT NULL CHECK (one_time IN (0, 1)),"
                                "  granted_by TEXT NOT NULL"
                                "    CHECK (granted_by IN ('install', 'user', 'signature')),"
                                "  PRIMARY KEY (app_id, capability));"
                                "CREATE TABLE IF NOT EXISTS gestures ("
                                "  app_id TEXT PRIMARY KEY NOT NULL,"
                                "  at INTEGER NOT NULL);"
                                "CREATE TABLE IF NOT EXISTS exports ("
                                "  app_id TEXT NOT NULL,"
                                "  capability TEXT NOT NULL,"
                                "  PRIMARY KEY (app_id, capability));"
                                "PRAGMA user_version = 2;");
        else if (version == 1) {
                /* Version 1 granted every requested normal right at install, wildcards
                 * over other apps' topics included: take back what no longer qualifies. */
                r = sqlite_exec(db, "ALTER TABLE apps ADD COLUMN key_id TEXT;"
                                    "ALTER TABLE requested ADD COLUMN waiting INTEGER NOT NULL"
                                    "  DEFAULT 0 CHECK (waiting IN (0, 1));"
                                    "CREATE TABLE IF NOT EXISTS exports ("
                                    "  app_id TEXT NOT NULL,"
                                    "  capability TEXT NOT NULL,"
                                    "  PRIMARY KEY (app_id, capability));"
                                    "PRAGMA user_version = 2;");
                if (r >= 0)
                        r = reconcile_all(db, grants_now_ms());
        } else
                r = -EIO; /* no version between 1 and GRANTS_SCHEMA_VERSION */
        return r;
}

/*
 * Starts a transaction on a current schema (creating or upgrading it first):
 * BEGIN for a reader, BEGIN IMMEDIATE for a writer. 0 with the transaction open (end
 * it with sqlite_tx_end), -EPROTONOSUPPORT for a newer schema, -EIO.
 */
static int tx_begin(sqlite3 *db, bool write)
{
        return sqlite_tx_begin(db, write, GRANTS_SCHEMA_VERSION, schema_migrate, NULL);
}

int grants_open(const char *state_dir, Grants **ret)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int dirfd = -EBADF, keysfd = -EBADF;
        Grants *g;
        int r;

        if (!state_dir || !*state_dir)
                return -EINVAL;
        /* Ours alone, as every file cella trusts in it (base/statedir.h). */
        dirfd = state_dir_open(state_dir, true);
        if (dirfd < 0)
                return dirfd;
        /* SQLite would open a database on a read-only file system read-only and fail
         * the first write as "disk I/O error": say what is wrong instead. */
        if (access(state_dir, W_OK) < 0)
                return negative_errno();
        if (asprintf(&path, "%s/" GRANTS_DB_FILE, state_dir) < 0)
                return -ENOMEM;
        /* Where the keys that verify signed bundles go (docs/capabilities.md): made
         * with the state directory, so that copying a key there works. Not writable by
         * group or others, as signature_verify() requires. */
        {
                _cleanup_free_ char *keys = NULL;

                if (asprintf(&keys, "%s/" SIGNATURE_TRUSTED_DIR, state_dir) < 0)
                        return -ENOMEM;
                keysfd = owned_subdir_open(dirfd, SIGNATURE_TRUSTED_DIR, 0755, keys);
                if (keysfd < 0)
                        return keysfd;
        }
        g = calloc(1, sizeof *g);
        if (!g)
                return -ENOMEM;
        /* Who may grant is who may write this file: root's state dir, root's file
         * (sqlite_open() makes it 0600). */
        r = sqlite_open(path, GRANTS_DB_BUSY_TIMEOUT_MS, &g->db);
        if (r == 0)
                r = sqlite_schema_ensure(g->db, GRANTS_SCHEMA_VERSION, schema_migrate, NULL);
        if (r < 0) {
                grants_free(g);
                return r;
        }
        *ret = g;
        return 0;
}

Grants *grants_free(Grants *g)
{
        if (!g)
                return NULL;
        sqlite3_close(g->db);
        free(g);
        return NULL;
}

/* ---- helpers inside a transaction ------------------------------------------------------- */

static bool app_id_ok(const char *id)
{
        return id && manifest_id_is_valid(id);
}

/*
 * The requested set and signed flag of app (NULL-terminated list; caller frees).
 * 0, -ENOENT (never installed), -EIO, -ENOMEM, -E2BIG.
 */
static int load_requested(sqlite3 *db, const char *app, char ***ret, bool *ret_signed)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_strv_free_ char **l = NULL;
        bool is_signed;
        int r;

        r = sqlite_select_one(db, "SELECT signed FROM apps WHERE id = ?1", SQL_ARGS(SQL_TEXT(app)),
                              &st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        is_signed = sqlite3_column_int(st, 0) == 1;

        r = select_strings(db,
                           "SELECT capability FROM requested WHERE app_id = ?1 ORDER BY capability",
                           app, MANIFEST_LIST_MAX, &l);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        if (ret_signed)
                *ret_signed = is_signed;
        return 0;
}

/* True if some right of set (strings; unparsable ones skipped) covers asked. */
static bool set_covers(char *const *set, const CapabilityRight *asked)
{
        CapabilityRight have;

        for (char *const *p = set; p && *p; p++)
                if (capability_right_parse(*p, &have, NULL) == 0 &&
                    capability_right_covers(&have, asked))
                        return true;
        return false;
}

static bool strv_has(char *const *l, const char *s)
{
        for (char *const *p = l; p && *p; p++)
                if (strcmp(*p, s) == 0)
                        return true;
        return false;
}

/* Inserts a grant unless one exists for the same string. 0 or -EIO. */
static int grant_insert_or_ignore(sqlite3 *db, const char *app, const char *right, GrantSource by,
                                  int64_t now_ms)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite_prepare(db,
                           "INSERT OR IGNORE INTO grants (app_id, capability, granted_at, one_time,"
                           " granted_by) VALUES (?1, ?2, ?3, 0, ?4)",
                           &st) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, right, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now_ms);
        sqlite3_bind_text(st, 4, grant_source_to_string(by), -1, SQLITE_STATIC);
        return sqlite_step_done(st);
}

static int grant_delete(sqlite3 *db, const char *app, const char *right)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite_prepare(db, "DELETE FROM grants WHERE app_id = ?1 AND capability = ?2", &st) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, right, -1, SQLITE_STATIC);
        return sqlite_step_done(st);
}

/* The rights of app's grant rows (NULL-terminated; caller frees). 0, -EIO, -ENOMEM, -E2BIG. */
static int load_grant_rights(sqlite3 *db, const char *app, char ***ret)
{
        return select_strings(db,
                              "SELECT capability FROM grants WHERE app_id = ?1 ORDER BY capability",
                              app, GRANTS_ROWS_MAX, ret);
}

/* ---- reaching other apps ---------------------------------------------------------------- */

/* One installed app, as the reach rules see it. */
typedef struct RegApp {
        char *id;
        char *key_id;   /* NULL: not signed by a known trusted key */
        char **exports; /* "name:scope", NULL-terminated, never NULL */
} RegApp;

/* Every installed app of grants.db. */
typedef struct Registry {
        RegApp *apps;
        size_t n;
} Registry;

static void registry_clear(Registry *reg)
{
        for (size_t i = 0; i < reg->n; i++) {
                free(reg->apps[i].id);
                free(reg->apps[i].key_id);
                strv_free(reg->apps[i].exports);
        }
        free(reg->apps);
        *reg = (Registry){};
}

/* The registry: one query for the apps, one for every export (not one per app: an
 * install reads it, and a boot installs every app). */
static int registry_load(sqlite3 *db, Registry *ret)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *ex = NULL;
        Registry reg = {};
        int r;

        if (sqlite_prepare(db, "SELECT id, key_id FROM apps ORDER BY id", &st) < 0)
                return -EIO;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                const char *id = (const char *)sqlite3_column_text(st, 0);
                const char *key = (const char *)sqlite3_column_text(st, 1);
                RegApp *apps, *a;

                if (!id || !app_id_ok(id))
                        continue; /* not written by us: ignore */
                apps = reallocarray(reg.apps, reg.n + 1, sizeof *apps);
                if (!apps) {
                        registry_clear(&reg);
                        return -ENOMEM;
                }
                reg.apps = apps;
                a = &reg.apps[reg.n++];
                *a = (RegApp){.id = strdup(id),
                              .key_id = key && *key ? strdup(key) : NULL,
                              .exports = calloc(1, sizeof(char *))};
                if (!a->id || (key && *key && !a->key_id) || !a->exports) {
                        registry_clear(&reg);
                        return -ENOMEM;
                }
        }
        if (r != SQLITE_DONE) {
                registry_clear(&reg);
                return -EIO;
        }
        if (sqlite_prepare(db, "SELECT app_id, capability FROM exports ORDER BY app_id, capability",
                           &ex) < 0) {
                registry_clear(&reg);
                return -EIO;
        }
        while ((r = sqlite3_step(ex)) == SQLITE_ROW) {
                const char *id = (const char *)sqlite3_column_text(ex, 0);
                const char *e = (const char *)sqlite3_column_text(ex, 1);
                RegApp *a = NULL;

                for (size_t i = 0; id && e && !a && i < reg.n; i++)
                        if (strcmp(reg.apps[i].id, id) == 0)
                                a = &reg.apps[i];
                if (!a || strv_length(a->exports) >= MANIFEST_LIST_MAX)
                        continue; /* no such app, or more than cella writes: ignored */
                if (strv_extend(&a->exports, e) < 0) {
                        registry_clear(&reg);
                        return -ENOMEM;
                }
        }
        if (r != SQLITE_DONE) {
                registry_clear(&reg);
                return -EIO;
        }
        *ret = reg;
        return 0;
}

static const RegApp *registry_find(const Registry *reg, const char *id)
{
        for (size_t i = 0; i < reg->n; i++)
                if (strcmp(reg->apps[i].id, id) == 0)
                        return &reg->apps[i];
        return NULL;
}

/* Signed by the same trusted key: Android's signature protection level. */
static bool same_signer(const RegApp *a, const RegApp *b)
{
        return a && b && a->key_id && b->key_id && strcmp(a->key_id, b->key_id) == 0;
}

/* True if id lies strictly under parent ("org.a.b" under "org.a"). */
static bool id_under(const char *id, const char *parent)
{
        size_t n = strlen(parent);

        return strncmp(id, parent, n) == 0 && id[n] == '.';
}

/*
 * True if scope may reach the namespace of an installed app nested under owner's
 * ("org.a.b" under "org.a"): that namespace is the nested app's, not owner's, unless
 * both are signed by the same key as by.
 */
static bool reaches_nested(const Registry *reg, CapabilityScopeKind kind, const char *scope,
                           const char *owner, const RegApp *by)
{
        for (size_t i = 0; i < reg->n; i++) {
                const RegApp *a = &reg->apps[i];

                if (id_under(a->id, owner) && !same_signer(a, by) &&
                    capability_scope_may_reach(kind, scope, a->id))
                        return true;
        }
        return false;
}

/* The installed app with the longest id whose namespace holds all of scope, or NULL. */
static const RegApp *owner_of(const Registry *reg, CapabilityScopeKind kind, const char *scope)
{
        const RegApp *best = NULL;

        for (size_t i = 0; i < reg->n; i++)
                if (capability_scope_within(kind, scope, reg->apps[i].id) &&
                    (!best || strlen(reg->apps[i].id) > strlen(best->id)))
                        best = &reg->apps[i];
        return best;
}

/*
 * The level right has for app (docs/capabilities.md, "Reaching other apps"). A right
 * that does not reach other apps has its catalogue level. One that does (bus topics,
 * bus.send, app.launch) keeps it only if everything its scope can name is the app's
 * own (its id's namespace, no nested app's of another signer), or lies in one other
 * app's namespace and that app exports a right covering it or is signed by the same
 * key; anything else (a wildcard across namespaces, another app's topic or id it does
 * not export) is dangerous: only the user grants it.
 */
static CapabilityLevel effective_level(const Registry *reg, const char *app,
                                       const CapabilityRight *right)
{
        CapabilityScopeKind kind = right->cap->scope;
        const RegApp *self, *owner;
        CapabilityRight e;

        if (!right->cap->reaches_apps || right->cap->level != CAPABILITY_NORMAL)
                return capability_right_level(right);
        self = registry_find(reg, app);
        if (capability_scope_within(kind, right->scope, app))
                return reaches_nested(reg, kind, right->scope, app, self) ? CAPABILITY_DANGEROUS
                                                                          : CAPABILITY_NORMAL;
        owner = owner_of(reg, kind, right->scope);
        if (!owner || reaches_nested(reg, kind, right->scope, owner->id, self))
                return CAPABILITY_DANGEROUS;
        if (same_signer(self, owner))
                return CAPABILITY_NORMAL;
        STRV_FOREACH (p, owner->exports)
                if (capability_right_parse(*p, &e, NULL) == 0 &&
                    capability_scope_within(kind, e.scope, owner->id) &&
                    capability_right_covers(&e, right))
                        return CAPABILITY_NORMAL;
        return CAPABILITY_DANGEROUS;
}

static int requested_set_waiting(sqlite3 *db, const char *app, const char *right, bool waiting)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite_prepare(
                    db, "UPDATE requested SET waiting = ?3 WHERE app_id = ?1 AND capability = ?2",
                    &st) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, right, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, waiting ? 1 : 0);
        return sqlite_step_done(st);
}

/* Deletes app's grant of exactly right if install made it. Returns 1 if it did, 0, -EIO. */
static int install_grant_delete(sqlite3 *db, const char *app, const char *right)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite_prepare(db,
                           "DELETE FROM grants WHERE app_id = ?1 AND capability = ?2"
                           " AND granted_by = 'install'",
                           &st) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, right, -1, SQLITE_STATIC);
        if (sqlite_step_done(st) < 0)
                return -EIO;
        return sqlite3_changes(db) > 0 ? 1 : 0;
}

/*
 * Brings every app's normal rights that reach other apps in line with the installed
 * apps now: a waiting one that qualifies (effective_level()) is granted by install; an
 * install grant that no longer qualifies (its owner withdrew the export, was
 * forgotten, or a nested app appeared) is deleted and waits again. A right the user
 * revoked stays revoked (no install grant to delete: it does not wait again). User
 * and signature grants are never touched here.
 */
static int reconcile_all(sqlite3 *db, int64_t now_ms)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        Registry reg = {};
        char **apps = NULL, **rights = NULL;
        _cleanup_free_ int *waiting = NULL;
        size_t n = 0;
        int r;

        r = registry_load(db, &reg);
        if (r < 0)
                return r;
        if (sqlite_prepare(db, "SELECT app_id, capability, waiting FROM requested", &st) < 0) {
                registry_clear(&reg);
                return -EIO;
        }
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                const char *app = (const char *)sqlite3_column_text(st, 0);
                const char *text = (const char *)sqlite3_column_text(st, 1);
                CapabilityRight right;
                int *w;

                if (!app || !text || capability_right_parse(text, &right, NULL) < 0 ||
                    !right.cap->reaches_apps || right.cap->level != CAPABILITY_NORMAL)
                        continue;
                w = reallocarray(waiting, n + 1, sizeof *w);
                if (!w) {
                        r = -ENOMEM;
                        break;
                }
                waiting = w;
                if (strv_extend(&apps, app) < 0 || strv_extend(&rights, text) < 0) {
                        r = -ENOMEM;
                        break;
                }
                waiting[n++] = sqlite3_column_int(st, 2);
        }
        r = r == SQLITE_DONE ? 0 : r < 0 ? r : -EIO;
        sqlite3_finalize(TAKE_PTR(st));
        for (size_t i = 0; r >= 0 && i < n; i++) {
                CapabilityRight right;
                bool normal;

                (void)capability_right_parse(rights[i], &right, NULL);
                normal = effective_level(&reg, apps[i], &right) == CAPABILITY_NORMAL;
                if (normal && waiting[i]) {
                        r = grant_insert_or_ignore(db, apps[i], rights[i], GRANT_BY_INSTALL,
                                                   now_ms);
                        if (r >= 0)
                                r = requested_set_waiting(db, apps[i], rights[i], false);
                } else if (!normal && !waiting[i]) {
                        r = install_grant_delete(db, apps[i], rights[i]);
                        if (r > 0)
                                r = requested_set_waiting(db, apps[i], rights[i], true);
                }
        }
        strv_free(apps);
        strv_free(rights);
        registry_clear(&reg);
        return r < 0 ? r : 0;
}

/* ---- install ---------------------------------------------------------------------------- */

/* The rights of app's requested rows marked waiting (caller frees). */
static int load_waiting(sqlite3 *db, const char *app, char ***ret)
{
        return select_strings(db,
                              "SELECT capability FROM requested WHERE app_id = ?1 AND waiting = 1",
                              app, MANIFEST_LIST_MAX, ret);
}

/* Replaces app's exports with exports (normalized). 0 or -EIO. */
static int exports_store(sqlite3 *db, const char *app, char *const *exports)
{
        _cleanup_stmt_ sqlite3_stmt *del = NULL, *ins = NULL;

        if (sqlite_prepare(db, "DELETE FROM exports WHERE app_id = ?1", &del) < 0)
                return -EIO;
        sqlite3_bind_text(del, 1, app, -1, SQLITE_STATIC);
        if (sqlite_step_done(del) < 0)
                return -EIO;
        if (sqlite_prepare(db, "INSERT OR IGNORE INTO exports (app_id, capability) VALUES (?1, ?2)",
                           &ins) < 0)
                return -EIO;
        for (char *const *p = exports; p && *p; p++) {
                sqlite3_reset(ins);
                sqlite3_bind_text(ins, 1, app, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 2, *p, -1, SQLITE_STATIC);
                if (sqlite_step_done(ins) < 0)
                        return -EIO;
        }
        return 0;
}

static int install_locked(sqlite3 *db, const Manifest *m, bool signed_ok, const char *key_id,
                          char *const *exports, int64_t now_ms)
{
        _cleanup_strv_free_ char **old = NULL, **have = NULL, **old_waiting = NULL;
        _cleanup_stmt_ sqlite3_stmt *del = NULL, *ins = NULL, *app = NULL;
        CapabilityRight right;
        Registry reg = {};
        bool old_signed = false;
        int r;

        r = load_requested(db, m->id, &old, &old_signed);
        if (r < 0 && r != -ENOENT)
                return r;
        r = load_waiting(db, m->id, &old_waiting);
        if (r < 0)
                return r;

        if (sqlite_prepare(db, "DELETE FROM requested WHERE app_id = ?1", &del) < 0)
                return -EIO;
        sqlite3_bind_text(del, 1, m->id, -1, SQLITE_STATIC);
        if (sqlite_step_done(del) < 0)
                return -EIO;
        if (sqlite_prepare(db,
                           "INSERT OR IGNORE INTO requested (app_id, capability, waiting)"
                           " VALUES (?1, ?2, ?3)",
                           &ins) < 0)
                return -EIO;
        STRV_FOREACH (p, m->permissions) {
                sqlite3_reset(ins);
                sqlite3_bind_text(ins, 1, m->id, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 2, *p, -1, SQLITE_STATIC);
                sqlite3_bind_int(ins, 3, strv_has(old_waiting, *p) ? 1 : 0);
                if (sqlite_step_done(ins) < 0)
                        return -EIO;
        }
        if (sqlite_prepare(
                    db,
                    "INSERT INTO apps (id, signed, installed_at, key_id) VALUES (?1, ?2, ?3, ?4)"
                    " ON CONFLICT (id) DO UPDATE SET signed = excluded.signed,"
                    " installed_at = excluded.installed_at, key_id = excluded.key_id",
                    &app) < 0)
                return -EIO;
        sqlite3_bind_text(app, 1, m->id, -1, SQLITE_STATIC);
        sqlite3_bind_int(app, 2, signed_ok ? 1 : 0);
        sqlite3_bind_int64(app, 3, now_ms);
        if (signed_ok && key_id && *key_id)
                sqlite3_bind_text(app, 4, key_id, -1, SQLITE_STATIC);
        else
                sqlite3_bind_null(app, 4);
        if (sqlite_step_done(app) < 0)
                return -EIO;
        r = exports_store(db, m->id, exports);
        if (r < 0)
                return r;
        r = registry_load(db, &reg);
        if (r < 0)
                return r;

        /* Automatic grants: new normal rights (those reaching other apps only if they
         * qualify now, else they wait); signature rights when newly requested or when
         * the bundle has just become signed. */
        STRV_FOREACH (p, m->permissions) {
                bool fresh = !strv_has(old, *p);

                if (capability_right_parse(*p, &right, NULL) < 0) {
                        r = -EINVAL; /* checked by the caller; never reached */
                        break;
                }
                if (capability_right_level(&right) == CAPABILITY_NORMAL && fresh) {
                        if (effective_level(&reg, m->id, &right) == CAPABILITY_NORMAL)
                                r = grant_insert_or_ignore(db, m->id, *p, GRANT_BY_INSTALL, now_ms);
                        else
                                r = requested_set_waiting(db, m->id, *p, true);
                } else if (right.cap->level == CAPABILITY_SIGNATURE && signed_ok &&
                           (fresh || !old_signed))
                        r = grant_insert_or_ignore(db, m->id, *p, GRANT_BY_SIGNATURE, now_ms);
                else
                        r = 0;
                if (r < 0)
                        break;
        }
        registry_clear(&reg);
        if (r < 0)
                return r;

        /* Drop what the new set no longer covers, and signature rights of an
         * unsigned bundle. */
        r = load_grant_rights(db, m->id, &have);
        if (r < 0)
                return r;
        STRV_FOREACH (p, have) {
                bool keep = capability_right_parse(*p, &right, NULL) == 0 &&
                            set_covers(m->permissions, &right) &&
                            (right.cap->level != CAPABILITY_SIGNATURE || signed_ok);

                if (!keep) {
                        r = grant_delete(db, m->id, *p);
                        if (r < 0)
                                return r;
                }
        }
        /* This install may change what other apps reach (its exports, its key, a
         * namespace nested in theirs), and what this app's waiting rights reach. */
        return reconcile_all(db, now_ms);
}

/* True if a and b hold the same strings (as sets: order and repeats do not matter). */
static bool set_equal(char *const *a, char *const *b)
{
        STRV_FOREACH (p, (char **)a)
                if (!strv_has(b, *p))
                        return false;
        STRV_FOREACH (p, (char **)b)
                if (!strv_has(a, *p))
                        return false;
        return true;
}

static bool streq_ptr(const char *a, const char *b)
{
        return a == b || (a && b && strcmp(a, b) == 0);
}

/* The key id and exports recorded for app: *ret_key NULL when none. */
static int load_identity(sqlite3 *db, const char *app, char **ret_key, char ***ret_exports)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *key = NULL;
        int r;

        r = sqlite_select_one(db, "SELECT key_id FROM apps WHERE id = ?1", SQL_ARGS(SQL_TEXT(app)),
                              &st);
        if (r < 0)
                return r;
        if (r > 0 && sqlite3_column_text(st, 0)) {
                key = strdup((const char *)sqlite3_column_text(st, 0));
                if (!key)
                        return -ENOMEM;
        }
        r = select_strings(db, "SELECT capability FROM exports WHERE app_id = ?1", app,
                           MANIFEST_LIST_MAX, ret_exports);
        if (r < 0)
                return r;
        *ret_key = TAKE_PTR(key);
        return 0;
}

int grants_install(Grants *g, const Manifest *m, bool signed_ok, int64_t now_ms, const char **bad,
                   const char **why)
{
        int r = grants_install_as(g, m, signed_ok, NULL, now_ms, bad, why);

        return r < 0 ? r : 0;
}

int grants_install_as(Grants *g, const Manifest *m, bool signed_ok, const char *key_id,
                      int64_t now_ms, const char **bad, const char **why)
{
        _cleanup_strv_free_ char **old = NULL, **exports = NULL, **old_exports = NULL;
        _cleanup_free_ char *old_key = NULL;
        bool old_signed = false;
        int r;

        if (!g || !m || !app_id_ok(m->id))
                return -EINVAL;
        if (strv_length(m->permissions) > MANIFEST_LIST_MAX ||
            strv_length(m->exports) > MANIFEST_LIST_MAX)
                return -EINVAL;
        r = capability_check_manifest(m, bad, why);
        if (r < 0)
                return -EINVAL;
        if (!signed_ok || (key_id && !*key_id))
                key_id = NULL;
        exports = calloc(1, sizeof(char *));
        if (!exports)
                return -ENOMEM;
        STRV_FOREACH (p, m->exports) {
                char buf[CAPABILITY_RIGHT_MAX];

                if (capability_export_parse(*p, m->id, buf, sizeof buf, NULL) < 0)
                        return -EINVAL; /* capability_check_manifest took it */
                if (strv_extend(&exports, buf) < 0)
                        return -ENOMEM;
        }
        /* The common case, an app started again unchanged, needs no write (and no
         * fsync): the same requested set, exports, signature state and key would change
         * nothing, as install_locked() grants only rights newly requested or newly
         * signed, and what other apps reach depends only on these. */
        r = tx_begin(g->db, false);
        if (r < 0)
                return r;
        r = load_requested(g->db, m->id, &old, &old_signed);
        if (r >= 0)
                r = load_identity(g->db, m->id, &old_key, &old_exports);
        r = sqlite_tx_end(g->db, r == -ENOENT ? 1 : r);
        if (r < 0)
                return r;
        if (r == 0 && old_signed == signed_ok && set_equal(old, m->permissions) &&
            streq_ptr(old_key, key_id) && set_equal(old_exports, exports))
                return 0;
        r = tx_begin(g->db, true);
        if (r < 0)
                return r;
        r = sqlite_tx_end(g->db, install_locked(g->db, m, signed_ok, key_id, exports, now_ms));
        return r < 0 ? r : 1;
}

int grants_requested(Grants *g, const char *app_id, char ***ret_requested, bool *ret_signed)
{
        _cleanup_strv_free_ char **l = NULL;
        bool is_signed = false;
        int r;

        if (!g || !app_id_ok(app_id))
                return -EINVAL;
        r = tx_begin(g->db, false);
        if (r < 0)
                return r;
        r = sqlite_tx_end(g->db, load_requested(g->db, app_id, &l, &is_signed));
        if (r < 0)
                return r;
        if (ret_requested)
                *ret_requested = TAKE_PTR(l);
        if (ret_signed)
                *ret_signed = is_signed;
        return 0;
}

int grants_level(Grants *g, const char *app_id, const char *right, CapabilityLevel *ret_level)
{
        CapabilityRight parsed;
        Registry reg = {};
        int r;

        if (!g || !app_id_ok(app_id) || !ret_level ||
            capability_right_parse(right, &parsed, NULL) < 0)
                return -EINVAL;
        if (!parsed.cap->reaches_apps || parsed.cap->level != CAPABILITY_NORMAL) {
                *ret_level = capability_right_level(&parsed);
                return 0;
        }
        r = tx_begin(g->db, false);
        if (r < 0)
                return r;
        r = sqlite_tx_end(g->db, registry_load(g->db, &reg));
        if (r < 0)
                return r;
        *ret_level = effective_level(&reg, app_id, &parsed);
        registry_clear(&reg);
        return 0;
}

static int forget_locked(sqlite3 *db, const char *app, int64_t now_ms)
{
        static const char *const tables[] = {"requested", "grants", "exports", "gestures"};
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, found;

        if (sqlite_prepare(db, "DELETE FROM apps WHERE id = ?1", &st) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
        if (sqlite_step_done(st) < 0)
                return -EIO;
        found = sqlite3_changes(db) > 0;
        for (size_t i = 0; i < ELEMENTSOF(tables); i++) {
                _cleanup_stmt_ sqlite3_stmt *d = NULL;
                char sql[64];

                snprintf(sql, sizeof sql, "DELETE FROM %s WHERE app_id = ?1", tables[i]);
                if (sqlite_prepare(db, sql, &d) < 0)
                        return -EIO;
                sqlite3_bind_text(d, 1, app, -1, SQLITE_STATIC);
                if (sqlite_step_done(d) < 0)
                        return -EIO;
        }
        r = reconcile_all(db, now_ms);
        return r < 0 ? r : found;
}

int grants_forget(Grants *g, const char *app_id)
{
        int r;

        if (!g || !app_id_ok(app_id))
                return -EINVAL;
        r = tx_begin(g->db, true);
        if (r < 0)
                return r;
        return sqlite_tx_end(g->db, forget_locked(g->db, app_id, grants_now_ms()));
}

/* ---- grant and revoke ------------------------------------------------------------------- */

static int grant_locked(sqlite3 *db, const char *app, const char *text,
                        const CapabilityRight *right, bool one_time, GrantSource by, int64_t now_ms)
{
        _cleanup_strv_free_ char **requested = NULL, **have = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        bool is_signed;
        int r;

        r = load_requested(db, app, &requested, &is_signed);
        if (r < 0)
                return r;
        if (!set_covers(requested, right))
                return -EPERM;
        if (right->cap->level == CAPABILITY_SIGNATURE && !is_signed)
                return -EPERM;
        r = load_grant_rights(db, app, &have);
        if (r < 0)
                return r;
        if (!strv_has(have, text) && strv_length(have) >= GRANTS_PER_APP_MAX)
                return -ENOSPC;
        if (sqlite_prepare(
                    db,
                    "INSERT INTO grants (app_id, capability, granted_at, one_time, granted_by)"
                    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (app_id, capability) DO UPDATE SET"
                    " granted_at = CASE one_time WHEN 1 THEN excluded.granted_at"
                    "   ELSE granted_at END,"
                    " granted_by = CASE one_time WHEN 1 THEN excluded.granted_by"
                    "   ELSE granted_by END,"
                    " one_time = MIN(one_time, excluded.one_time)",
                    &st) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now_ms);
        sqlite3_bind_int(st, 4, one_time ? 1 : 0);
        sqlite3_bind_text(st, 5, grant_source_to_string(by), -1, SQLITE_STATIC);
        return sqlite_step_done(st);
}

int grants_grant(Grants *g, const char *app_id, const char *right, bool one_time, GrantSource by,
                 int64_t now_ms)
{
        CapabilityRight parsed;
        int r;

        if (!g || !app_id_ok(app_id) || (unsigned)by >= ELEMENTSOF(source_names))
                return -EINVAL;
        r = capability_right_parse(right, &parsed, NULL);
        if (r < 0)
                return r == -ENAMETOOLONG ? -EINVAL : r;
        r = tx_begin(g->db, true);
        if (r < 0)
                return r;
        return sqlite_tx_end(g->db,
                             grant_locked(g->db, app_id, right, &parsed, one_time, by, now_ms));
}

/*
 * Parses a right to revoke: as capability_right_parse, except that a bare name of a
 * right whose scope is required is accepted and means every scope.
 */
static int parse_revoke(const char *text, CapabilityRight *ret)
{
        const CapabilityInfo *c;
        int r;

        r = capability_right_parse(text, ret, NULL);
        if (r != -EINVAL || strchr(text, ':'))
                return r;
        c = capability_lookup(text, strlen(text));
        if (!c)
                return r;
        ret->cap = c;
        ret->scope[0] = 0;
        return 0;
}

static int revoke_locked(sqlite3 *db, const char *app, const CapabilityRight *given,
                         char ***ret_revoked)
{
        _cleanup_strv_free_ char **have = NULL, **gone = NULL;
        CapabilityRight right;
        int r, n = 0;

        r = load_grant_rights(db, app, &have);
        if (r < 0)
                return r;
        STRV_FOREACH (p, have) {
                if (capability_right_parse(*p, &right, NULL) < 0 ||
                    !capability_right_covers(given, &right))
                        continue;
                r = grant_delete(db, app, *p);
                if (r < 0)
                        return r;
                if (ret_revoked && strv_extend(&gone, *p) < 0)
                        return -ENOMEM;
                n++;
        }
        if (ret_revoked) {
                if (!gone) {
                        gone = calloc(1, sizeof(char *));
                        if (!gone)
                                return -ENOMEM;
                }
                *ret_revoked = TAKE_PTR(gone);
        }
        return n;
}

int grants_revoke(Grants *g, const char *app_id, const char *right, char ***ret_revoked)
{
        _cleanup_strv_free_ char **gone = NULL;
        CapabilityRight given;
        int r;

        if (!g || !app_id_ok(app_id) || !right)
                return -EINVAL;
        r = parse_revoke(right, &given);
        if (r < 0)
                return r == -ENAMETOOLONG ? -EINVAL : r;
        r = tx_begin(g->db, true);
        if (r < 0)
                return r;
        r = sqlite_tx_end(g->db, revoke_locked(g->db, app_id, &given, ret_revoked ? &gone : NULL));
        if (r >= 0 && ret_revoked)
                *ret_revoked = TAKE_PTR(gone);
        return r;
}

static int list_locked(sqlite3 *db, const char *app, Grant **ret, size_t *ret_n)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ Grant *l = NULL;
        size_t n = 0;
        int r;

        if (sqlite_prepare(db,
                           "SELECT capability, granted_at, one_time, granted_by FROM grants"
                           " WHERE app_id = ?1 ORDER BY capability",
                           &st) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                const char *right = (const char *)sqlite3_column_text(st, 0);
                const char *by = (const char *)sqlite3_column_text(st, 3);
                GrantSource source;
                Grant *e;

                if (!right || strlen(right) >= CAPABILITY_RIGHT_MAX ||
                    grant_source_from_string(by, &source) < 0)
                        continue; /* not written by us: ignore */
                if (n == GRANTS_ROWS_MAX)
                        return -E2BIG;
                if (!l) {
                        l = calloc(GRANTS_ROWS_MAX, sizeof(Grant));
                        if (!l)
                                return -ENOMEM;
                }
                e = &l[n++];
                strcpy(e->right, right);
                e->granted_at_ms = sqlite3_column_int64(st, 1);
                e->one_time = sqlite3_column_int(st, 2) == 1;
                e->granted_by = source;
        }
        if (r != SQLITE_DONE)
                return -EIO;
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

int grants_list(Grants *g, const char *app_id, Grant **ret, size_t *ret_n)
{
        Grant *l = NULL;
        size_t n = 0;
        int r;

        if (!g || !app_id_ok(app_id))
                return -EINVAL;
        r = tx_begin(g->db, false);
        if (r < 0)
                return r;
        r = sqlite_tx_end(g->db, list_locked(g->db, app_id, &l, &n));
        if (r < 0)
                return r;
        *ret = l;
        *ret_n = n;
        return 0;
}

/* ---- gestures --------------------------------------------------------------------------- */

static int gesture_last_locked(sqlite3 *db, const char *app, int64_t *ret)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = sqlite_select_one(db, "SELECT at FROM gestures WHERE app_id = ?1",
                              SQL_ARGS(SQL_TEXT(app)), &st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        *ret = sqlite3_column_int64(st, 0);
        return 0;
}

int grants_gesture_record(Grants *g, const char *app_id, int64_t now_ms)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        if (!g || !app_id_ok(app_id))
                return -EINVAL;
        r = tx_begin(g->db, true);
        if (r < 0)
                return r;
        if (sqlite_prepare(g->db,
                           "INSERT INTO gestures (app_id, at) VALUES (?1, ?2)"
                           " ON CONFLICT (app_id) DO UPDATE SET at = excluded.at",
                           &st) < 0)
                return sqlite_tx_end(g->db, -EIO);
        sqlite3_bind_text(st, 1, app_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_ms);
        r = sqlite_step_done(st);
        sqlite3_finalize(TAKE_PTR(st));
        return sqlite_tx_end(g->db, r);
}

int grants_gesture_last(Grants *g, const char *app_id, int64_t *ret_ms)
{
        int64_t at = 0;
        int r;

        if (!g || !app_id_ok(app_id))
                return -EINVAL;
        r = tx_begin(g->db, false);
        if (r < 0)
                return r;
        r = sqlite_tx_end(g->db, gesture_last_locked(g->db, app_id, &at));
        if (r < 0)
                return r;
        *ret_ms = at;
        return 0;
}

/* ---- the check -------------------------------------------------------------------------- */

/*
 * One pass of grants_check inside a transaction. Fills *d. When the only grant that
 * allows the right is one-time: with consume, deletes it; without, returns 1 (the
 * caller starts again as a writer). Else 0, or -errno.
 */
static int check_locked(sqlite3 *db, const char *app, const CapabilityRight *asked, int64_t now_ms,
                        bool consume, GrantsDecision *d)
{
        _cleanup_strv_free_ char **requested = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        const char *once = NULL;
        _cleanup_free_ char *once_copy = NULL;
        CapabilityRight have;
        bool is_signed, found = false;
        size_t n = 0;
        int64_t at;
        int r;

        r = load_requested(db, app, &requested, &is_signed);
        if (r == -ENOENT || (r == 0 && !set_covers(requested, asked))) {
                d->reason = GRANTS_NOT_REQUESTED;
                return 0;
        }
        if (r < 0)
                return r;
        if (asked->cap->level == CAPABILITY_SIGNATURE && !is_signed) {
                d->reason = GRANTS_NOT_SIGNED;
                return 0;
        }

        if (sqlite_prepare(db, "SELECT capability, one_time FROM grants WHERE app_id = ?1", &st) <
            0)
                return -EIO;
        sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                const char *s = (const char *)sqlite3_column_text(st, 0);

                if (++n > GRANTS_ROWS_MAX)
                        return -E2BIG;
                if (!s || capability_right_parse(s, &have, NULL) < 0 ||
                    !capability_right_covers(&have, asked))
                        continue;
                if (sqlite3_column_int(st, 1) == 0) {
                        snprintf(d->grant, sizeof d->grant, "%s", s);
                        found = true;
                        break; /* a permanent grant: nothing to consume */
                }
                if (!once_copy) {
                        once_copy = strdup(s);
                        if (!once_copy)
                                return -ENOMEM;
                }
        }
        if (r != SQLITE_ROW && r != SQLITE_DONE)
                return -EIO;
        once = once_copy;
        if (!found && !once) {
                d->reason = GRANTS_NOT_GRANTED;
                return 0;
        }

        if (asked->cap->gesture) {
                r = gesture_last_locked(db, app, &at);
                if (r < 0 && r != -ENOENT)
                        return r;
                if (r == -ENOENT || at > now_ms || now_ms - at > GRANTS_GESTURE_WINDOW_MS) {
                        d->reason = GRANTS_NO_GESTURE;
                        d->grant[0] = 0;
                        return 0;
                }
        }

        if (!found) {
                if (!consume)
                        return 1;
                r = grant_delete(db, app, once);
                if (r < 0)
                        return r;
                snprintf(d->grant, sizeof d->grant, "%s", once);
                d->one_time_consumed = true;
        }
        d->reason = GRANTS_ALLOWED;
        return 0;
}

int grants_check(Grants *g, const char *app_id, const char *requested_right, int64_t now_ms,
                 GrantsDecision *ret_decision)
{
        CapabilityRight asked;

        if (!g || !app_id_ok(app_id))
                return -EINVAL;
        if (!requested_right || capability_right_parse(requested_right, &asked, NULL) < 0)
                return grants_check_right(g, app_id, NULL, now_ms, ret_decision);
        return grants_check_right(g, app_id, &asked, now_ms, ret_decision);
}

int grants_check_right(Grants *g, const char *app_id, const CapabilityRight *asked, int64_t now_ms,
                       GrantsDecision *ret_decision)
{
        GrantsDecision d = {};
        int r;

        if (!g || !app_id_ok(app_id))
                return -EINVAL;
        if (!asked || !asked->cap) {
                d.reason = GRANTS_INVALID;
                d.level = CAPABILITY_NORMAL;
                if (ret_decision)
                        *ret_decision = d;
                return -EPERM;
        }
        d.level = capability_right_level(asked);

        for (int pass = 0; pass < 2; pass++) {
                bool consume = pass == 1;

                r = tx_begin(g->db, consume);
                if (r < 0)
                        return r;
                d.reason = GRANTS_NOT_GRANTED;
                d.grant[0] = 0;
                d.one_time_consumed = false;
                r = sqlite_tx_end(g->db, check_locked(g->db, app_id, asked, now_ms, consume, &d));
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
        }
        if (r > 0)
                return -EIO; /* the writer pass never asks for another */
        if (ret_decision)
                *ret_decision = d;
        switch (d.reason) {
        case GRANTS_ALLOWED:
                return 0;
        case GRANTS_NOT_GRANTED:
        case GRANTS_NO_GESTURE:
                return -EACCES;
        default:
                return -EPERM;
        }
}
