/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.db: SQLite databases in the app's data directory.
 *
 * Opening: SQLite opens files by name (its "file:" URIs take no fd), so a
 * database name is one plain component ([A-Za-z0-9._-], ≤ 64 bytes, not
 * starting with '.'), the file is first created/checked with openat2
 * (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) against the data directory fd, and
 * then opened as "<data dir path>/<name>" with SQLITE_OPEN_NOFOLLOW (a symlink
 * planted as the database is refused) and without SQLITE_OPEN_URI. With a
 * single component and the data directory path set by the host, nothing can
 * redirect the open outside the directory; the journal and WAL files sit next
 * to it.
 *
 * SQL an app runs cannot reach other files: ATTACH (and VACUUM INTO, which
 * attaches internally) is stopped by SQLITE_LIMIT_ATTACHED = 0 and an
 * authorizer, which also refuses the pragmas that set process-wide state
 * (temp_store_directory, soft/hard_heap_limit, threads, ...) or grow SQLite's
 * uncounted memory (cache_size, mmap_size); extensions stay disabled; SQLITE_DBCONFIG_DEFENSIVE and
 * trusted_schema off stop schema tricks. Values are passed only as bound
 * parameters.
 *
 * Bounds: SQL text 64 KiB, any string/blob value 1 MiB (SQLITE_LIMIT_LENGTH,
 * which covers binds and results), 100 bound parameters, 256 columns per table
 * or result row, and a progress handler that stops a statement after
 * DB_STEP_OPS virtual machine instructions per step() or exec() call, so a
 * runaway query (a recursive CTE with no end) ends with an error: the Lua hooks
 * that enforce CPU budgets do not run inside sqlite3_step.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/macro.h"
#include "lua/alloc.h"
#include "lua/lua-modules.h"

/* Longest database name, bytes. */
#define DB_NAME_MAX 64
/* Longest SQL text, bytes. */
#define DB_SQL_MAX (64 * 1024)
/* Largest string or blob value stored or read, bytes. */
#define DB_VALUE_MAX (1024 * 1024)
/* Most bound parameters per statement. */
#define DB_PARAMS_MAX 100
/* Most columns in a table, index or result row (SQLite's default is 2000). */
#define DB_COLUMNS_MAX 256
/* VM instructions one step()/exec() may run (about 0.1-0.5 s of CPU). */
#define DB_STEP_OPS 50000000
/* The progress handler runs every DB_PROGRESS_N instructions. */
#define DB_PROGRESS_N 10000

#define DB_MT   "cella.db"
#define STMT_MT "cella.db.stmt"

typedef struct {
        sqlite3 *db;
        long ticks;    /* progress callbacks left in this step */
        bool overtime; /* the last interrupt was the packed host's soft stop */
} Db;

typedef struct {
        sqlite3_stmt *stmt;
        Db *db; /* kept alive by the user value */
        int done;
} Stmt;

/* Stops the statement after DB_STEP_OPS instructions, at once when the app is
 * doomed (its CPU budget ended), or, in a packed host, when it ran halfway into
 * the allowance past its time slice (alloc.h): an error the app can catch,
 * before the watchdog would end the app for holding the group's thread. */
static int progress_cb(void *p)
{
        Db *d = p;

        if (--d->ticks < 0 || clua_alloc_current_doomed())
                return 1;
        d->overtime = clua_alloc_current_overtime();
        return d->overtime;
}

static int authorizer_cb(void *p, int action, const char *a, const char *b, const char *c,
                         const char *e)
{
        /*
         * Pragmas that change process-wide settings (seen by every app in a packed
         * host) or let SQLite's memory, which the Lua allocator does not count,
         * grow at the app's word.
         */
        static const char *const denied_pragmas[] = {
                "temp_store_directory",
                "data_store_directory",
                "soft_heap_limit",
                "hard_heap_limit",
                "mmap_size",
                "cache_size",
                "threads",
        };

        if (action == SQLITE_ATTACH || action == SQLITE_DETACH)
                return SQLITE_DENY;
        if (action == SQLITE_PRAGMA && a)
                for (size_t i = 0; i < sizeof denied_pragmas / sizeof denied_pragmas[0]; i++)
                        if (strcasecmp(a, denied_pragmas[i]) == 0)
                                return SQLITE_DENY;
        return SQLITE_OK;
}

static void arm(Db *d)
{
        d->ticks = DB_STEP_OPS / DB_PROGRESS_N;
        d->overtime = false;
}

/* __gc, __close and close() of a database: closes it (idempotent). */
static int db_gc(lua_State *L)
{
        Db *d = luaL_checkudata(L, 1, DB_MT);
        /* close_v2: a statement still open keeps the connection until finalized. */
        if (d->db)
                sqlite3_close_v2(d->db);
        d->db = NULL;
        return 0;
}

static Db *check_db(lua_State *L)
{
        Db *d = luaL_checkudata(L, 1, DB_MT);
        if (!d->db)
                luaL_error(L, "cella.db: database is closed");
        return d;
}

static int db_fail(lua_State *L, Db *d, const char *what)
{
        int code = sqlite3_errcode(d->db);
        /* SQLite's memory counts against the app's cap (alloc.h). */
        if (code == SQLITE_NOMEM && clua_alloc_current)
                return clua_alloc_raise_memory(L);
        if (code == SQLITE_INTERRUPT && d->overtime)
                return luaL_error(L,
                                  "cella.db.%s: statement interrupted: it held the packed "
                                  "host's thread 25 ms past the app's time slice (split the work)",
                                  what);
        if (code == SQLITE_INTERRUPT)
                return luaL_error(L, "cella.db.%s: statement ran longer than %d instructions", what,
                                  DB_STEP_OPS);
        return luaL_error(L, "cella.db.%s: %s", what, sqlite3_errmsg(d->db));
}

static int check_name(const char *name, size_t n)
{
        if (n == 0 || n > DB_NAME_MAX || name[0] == '.' || strlen(name) != n)
                return 0;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return 0;
        }
        return 1;
}

/* db.open(name) -> database object. */
static int db_open(lua_State *L)
{
        size_t n;
        const char *name = luaL_checklstring(L, 1, &n);
        const char *root;
        char path[1024 + DB_NAME_MAX + 2];
        struct open_how how = {
                .flags = O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                .mode = 0600,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
        };
        struct stat st;
        long fd;
        int dirfd, r;
        Db *d;

        luaL_argcheck(L, check_name(name, n), 1,
                      "database name must be 1..64 of [A-Za-z0-9._-], not starting with '.'");
        dirfd = cella_lua_data_dir(L, &root);
        fd = RETRY_EINTR(syscall(SYS_openat2, dirfd, name, &how, sizeof how));
        if (fd < 0)
                return luaL_error(L, "cella.db.open: %s: %s", name,
                                  errno == ELOOP ? "is a symlink" : strerror(errno));
        r = fstat((int)fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
        close((int)fd);
        if (r < 0)
                return luaL_error(L, "cella.db.open: %s: not a regular file", name);
        if ((size_t)snprintf(path, sizeof path, "%s/%s", root, name) >= sizeof path)
                return luaL_error(L, "cella.db.open: %s: path too long", name);

        d = lua_newuserdatauv(L, sizeof(Db), 0);
        d->db = NULL;
        luaL_setmetatable(L, DB_MT);
        r = sqlite3_open_v2(path, &d->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW |
                                    SQLITE_OPEN_NOMUTEX,
                            NULL);
        if (r == SQLITE_NOMEM && clua_alloc_current) {
                sqlite3_close_v2(d->db);
                d->db = NULL;
                return clua_alloc_raise_memory(L);
        }
        if (r != SQLITE_OK) {
                lua_pushfstring(L, "cella.db.open: %s: %s", name,
                                d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(r));
                sqlite3_close_v2(d->db);
                d->db = NULL;
                return lua_error(L);
        }
        sqlite3_limit(d->db, SQLITE_LIMIT_ATTACHED, 0);
        sqlite3_limit(d->db, SQLITE_LIMIT_LENGTH, DB_VALUE_MAX);
        sqlite3_limit(d->db, SQLITE_LIMIT_SQL_LENGTH, DB_SQL_MAX);
        sqlite3_limit(d->db, SQLITE_LIMIT_VARIABLE_NUMBER, DB_PARAMS_MAX);
        sqlite3_limit(d->db, SQLITE_LIMIT_COLUMN, DB_COLUMNS_MAX);
        sqlite3_db_config(d->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
        sqlite3_db_config(d->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
        sqlite3_db_config(d->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
        sqlite3_set_authorizer(d->db, authorizer_cb, NULL);
        sqlite3_progress_handler(d->db, DB_PROGRESS_N, progress_cb, d);
        return 1;
}

static const char *check_sql(lua_State *L, int i)
{
        size_t n;
        const char *sql = luaL_checklstring(L, i, &n);
        luaL_argcheck(L, n <= DB_SQL_MAX, i, "SQL longer than 65536 bytes");
        luaL_argcheck(L, strlen(sql) == n, i, "SQL contains a NUL byte");
        return sql;
}

/* db:exec(sql) -> true. Runs one or more statements without parameters or results. */
static int db_exec(lua_State *L)
{
        Db *d = check_db(L);
        const char *sql = check_sql(L, 2);

        arm(d);
        if (sqlite3_exec(d->db, sql, NULL, NULL, NULL) != SQLITE_OK)
                return db_fail(L, d, "exec");
        lua_pushboolean(L, 1);
        return 1;
}

/* db:prepare(sql) -> statement. One statement; trailing text other than space is refused. */
static int db_prepare(lua_State *L)
{
        Db *d = check_db(L);
        const char *sql = check_sql(L, 2);
        const char *tail = NULL;
        Stmt *s;

        s = lua_newuserdatauv(L, sizeof(Stmt), 1);
        s->stmt = NULL;
        s->db = d;
        s->done = 0;
        luaL_setmetatable(L, STMT_MT);
        lua_pushvalue(L, 1);
        lua_setiuservalue(L, -2, 1);
        arm(d);
        if (sqlite3_prepare_v2(d->db, sql, -1, &s->stmt, &tail) != SQLITE_OK)
                return db_fail(L, d, "prepare");
        if (!s->stmt)
                return luaL_error(L, "cella.db.prepare: no statement in SQL");
        while (tail &&
               (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' || *tail == ';'))
                tail++;
        if (tail && *tail)
                return luaL_error(L, "cella.db.prepare: more than one statement");
        return 1;
}

/* db:close() -> nothing. Idempotent; open statements are finalized by their own close. */
static int db_close(lua_State *L)
{
        return db_gc(L);
}

/* __gc, __close and finalize() of a statement (idempotent). */
static int stmt_gc(lua_State *L)
{
        Stmt *s = luaL_checkudata(L, 1, STMT_MT);
        sqlite3_finalize(s->stmt);
        s->stmt = NULL;
        return 0;
}

static Stmt *check_stmt(lua_State *L)
{
        Stmt *s = luaL_checkudata(L, 1, STMT_MT);
        if (!s->stmt)
                luaL_error(L, "cella.db: statement is finalized");
        if (!s->db->db)
                luaL_error(L, "cella.db: database is closed");
        return s;
}

/*
 * stmt:bind(v1, v2, ...) -> stmt. Binds positional parameters 1..n (n ≤ 100):
 * nil, boolean (0/1), integer, float, string (text, ≤ 1 MiB). Resets the
 * statement first, so a statement can be reused with new values.
 */
static int stmt_bind(lua_State *L)
{
        Stmt *s = check_stmt(L);
        int n = lua_gettop(L) - 1, r = SQLITE_OK;

        if (n > sqlite3_bind_parameter_count(s->stmt))
                return luaL_error(L, "cella.db.bind: %d values for %d parameters", n,
                                  sqlite3_bind_parameter_count(s->stmt));
        sqlite3_reset(s->stmt);
        sqlite3_clear_bindings(s->stmt);
        s->done = 0;
        for (int i = 1; i <= n && r == SQLITE_OK; i++) {
                int idx = i + 1;
                switch (lua_type(L, idx)) {
                case LUA_TNIL:
                        r = sqlite3_bind_null(s->stmt, i);
                        break;
                case LUA_TBOOLEAN:
                        r = sqlite3_bind_int(s->stmt, i, lua_toboolean(L, idx));
                        break;
                case LUA_TNUMBER:
                        if (lua_isinteger(L, idx))
                                r = sqlite3_bind_int64(s->stmt, i, lua_tointeger(L, idx));
                        else
                                r = sqlite3_bind_double(s->stmt, i, lua_tonumber(L, idx));
                        break;
                case LUA_TSTRING: {
                        size_t len;
                        const char *v = lua_tolstring(L, idx, &len);
                        if (len > DB_VALUE_MAX)
                                return luaL_error(L, "cella.db.bind: value %d larger than %d bytes",
                                                  i, DB_VALUE_MAX);
                        r = sqlite3_bind_text64(s->stmt, i, v, len, SQLITE_TRANSIENT, SQLITE_UTF8);
                        break;
                }
                default:
                        return luaL_error(L, "cella.db.bind: cannot bind a %s (value %d)",
                                          luaL_typename(L, idx), i);
                }
        }
        if (r != SQLITE_OK)
                return db_fail(L, s->db, "bind");
        lua_settop(L, 1);
        return 1;
}

static void push_column(lua_State *L, sqlite3_stmt *st, int i)
{
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
                lua_pushinteger(L, sqlite3_column_int64(st, i));
                break;
        case SQLITE_FLOAT:
                lua_pushnumber(L, sqlite3_column_double(st, i));
                break;
        case SQLITE_TEXT:
                lua_pushlstring(L, (const char *)sqlite3_column_text(st, i),
                                (size_t)sqlite3_column_bytes(st, i));
                break;
        case SQLITE_BLOB: {
                const void *p = sqlite3_column_blob(st, i);
                lua_pushlstring(L, p ? p : "", (size_t)sqlite3_column_bytes(st, i));
                break;
        }
        default:
                lua_pushnil(L);
                break;
        }
}

/*
 * One step: pushes a row table {col = value, ...} (NULL columns absent) and
 * returns 1, or returns 0 when the statement is done. Raises on errors.
 */
static int stmt_step_push(lua_State *L, Stmt *s)
{
        int r, ncol;

        if (s->done)
                return 0;
        arm(s->db);
        r = sqlite3_step(s->stmt);
        if (r == SQLITE_DONE) {
                s->done = 1;
                return 0;
        }
        if (r != SQLITE_ROW) {
                s->done = 1;
                return db_fail(L, s->db, "step");
        }
        ncol = sqlite3_column_count(s->stmt);
        luaL_checkstack(L, 4, "db row");
        lua_createtable(L, 0, ncol);
        for (int i = 0; i < ncol; i++) {
                const char *col = sqlite3_column_name(s->stmt, i);
                if (!col)
                        return luaL_error(L, "cella.db.step: out of memory");
                push_column(L, s->stmt, i);
                lua_setfield(L, -2, col);
        }
        return 1;
}

/* stmt:step() -> row table, or nil when done. */
static int stmt_step(lua_State *L)
{
        Stmt *s = check_stmt(L);
        if (!stmt_step_push(L, s))
                lua_pushnil(L);
        return 1;
}

static int stmt_rows_iter(lua_State *L)
{
        Stmt *s = check_stmt(L);
        if (!stmt_step_push(L, s))
                lua_pushnil(L);
        return 1;
}

/* stmt:rows() -> iterator over row tables (for row in stmt:rows() do ... end). */
static int stmt_rows(lua_State *L)
{
        check_stmt(L);
        lua_pushcfunction(L, stmt_rows_iter);
        lua_pushvalue(L, 1);
        return 2;
}

/* stmt:reset() -> stmt. Runs the statement again with the same bindings. */
static int stmt_reset(lua_State *L)
{
        Stmt *s = check_stmt(L);
        sqlite3_reset(s->stmt);
        s->done = 0;
        lua_settop(L, 1);
        return 1;
}

/* stmt:finalize() -> nothing. Idempotent. */
static int stmt_finalize(lua_State *L)
{
        return stmt_gc(L);
}

static const luaL_Reg db_methods[] = {
        {"exec", db_exec},
        {"prepare", db_prepare},
        {"close", db_close},
        {NULL, NULL},
};

static const luaL_Reg stmt_methods[] = {
        {"bind", stmt_bind},   {"step", stmt_step},         {"rows", stmt_rows},
        {"reset", stmt_reset}, {"finalize", stmt_finalize}, {NULL, NULL},
};

int luaopen_cella_db(lua_State *L)
{
        (void)clua_alloc_global_init();
        cella_lua_defclass(L, DB_MT, db_methods, db_gc);
        cella_lua_defclass(L, STMT_MT, stmt_methods, stmt_gc);
        cella_lua_data_dir(L, NULL);
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, db_open);
        lua_setfield(L, -2, "open");
        return 1;
}
