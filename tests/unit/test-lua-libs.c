/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.json, cella.crypto, cella.log, cella.fs, cella.db: allowed and refused
 * paths and bounds, driven by Lua snippets in a plain lua_State.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua/lua-modules.h"

static char tmpdir[64];
static char outside[96];
static lua_State *L;

static void rm_rf(const char *dir)
{
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}

static void setup(void)
{
        int fd;

        strcpy(tmpdir, "/tmp/cella-lua-libs-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        snprintf(outside, sizeof outside, "%s/outside", tmpdir);
        ck_assert_int_eq(mkdir(outside, 0700), 0);
        ck_assert_int_eq(mkdir(strcat(strcpy((char[96]){0}, tmpdir), "/data"), 0700), 0);

        L = luaL_newstate();
        luaL_openlibs(L);
        {
                char data[96];
                snprintf(data, sizeof data, "%s/data", tmpdir);
                fd = open(data, O_PATH | O_DIRECTORY | O_CLOEXEC);
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(cella_lua_set_data_dir(L, fd, data), 0);
                ck_assert_int_eq(cella_lua_set_data_dir(L, fd, data), -EEXIST);
                close(fd);
        }
        luaL_requiref(L, "cella.json", luaopen_cella_json, 0);
        luaL_requiref(L, "cella.crypto", luaopen_cella_crypto, 0);
        luaL_requiref(L, "cella.log", luaopen_cella_log, 0);
        luaL_requiref(L, "cella.fs", luaopen_cella_fs, 0);
        luaL_requiref(L, "cella.db", luaopen_cella_db, 0);
        lua_settop(L, 0);
        lua_pushstring(L, tmpdir);
        lua_setglobal(L, "TMP");
}

static void teardown(void)
{
        lua_close(L);
        L = NULL;
        rm_rf(tmpdir);
}

/* Runs a snippet that must succeed (its asserts included). */
#define RUN_OK(code)                                                                               \
        do {                                                                                       \
                if (luaL_dostring(L, code) != LUA_OK)                                              \
                        ck_abort_msg("lua failed: %s\n--- %s", lua_tostring(L, -1), code);         \
                lua_settop(L, 0);                                                                  \
        } while (0)

/* Runs a snippet that must raise an error containing `needle`. */
#define RUN_ERR(code, needle)                                                                      \
        do {                                                                                       \
                if (luaL_dostring(L, code) == LUA_OK)                                              \
                        ck_abort_msg("lua succeeded, expected error '%s'\n--- %s", needle, code);  \
                if (!strstr(lua_tostring(L, -1), needle))                                          \
                        ck_abort_msg("error '%s' lacks '%s'", lua_tostring(L, -1), needle);        \
                lua_settop(L, 0);                                                                  \
        } while (0)

START_TEST(test_json_round_trip)
{
        RUN_OK("local json = require 'cella.json'\n"
               "local t = json.decode('{\"a\":[1,2.5,\"x\",true,false,null],\"b\":{},\"c\":[]}')\n"
               "assert(t.a[1] == 1 and math.type(t.a[1]) == 'integer')\n"
               "assert(t.a[2] == 2.5 and t.a[3] == 'x' and t.a[4] == true and t.a[5] == false)\n"
               "assert(t.a[6] == json.null)\n"
               "assert(json.encode(t) == '{\"a\":[1,2.5,\"x\",true,false,null],\"b\":{},\"c\":[]}',"
               " json.encode(t))\n"
               "assert(json.encode({}) == '{}')\n"
               "assert(json.encode(json.array()) == '[]')\n"
               "assert(json.encode(json.array({1,2})) == '[1,2]')\n"
               "assert(json.encode({x={1,{y=true}}}) == '{\"x\":[1,{\"y\":true}]}')\n"
               "assert(json.decode(json.encode(0.1)) == 0.1 and json.decode(json.encode(-1e300)) "
               "== -1e300)\n"
               "assert(math.type(json.decode(json.encode(2.0))) == 'float')\n"
               "assert(json.encode('a\\0b\\n') == '\"a\\\\u0000b\\\\n\"')\n"
               "assert(json.decode('\"a\\\\u0000b\"') == 'a\\0b')\n"
               "assert(json.decode('12') == 12 and json.decode('null') == json.null)\n"
               "assert(json.encode(math.mininteger) == tostring(math.mininteger))\n");
}
END_TEST

START_TEST(test_json_refused)
{
        RUN_ERR("local json = require 'cella.json'; json.encode(0/0)", "NaN");
        RUN_ERR("local json = require 'cella.json'; json.encode({x=math.huge})", "NaN");
        RUN_ERR("local json = require 'cella.json'; json.encode({[1]=1,[3]=3})",
                "keys must be strings");
        RUN_ERR("local json = require 'cella.json'; json.encode({1, x=2})", "keys must be strings");
        RUN_ERR("local json = require 'cella.json'; json.encode({f=print})",
                "cannot encode a function");
        RUN_ERR("local json = require 'cella.json'; json.encode('\\xff')", "UTF-8");
        RUN_ERR("local json = require 'cella.json'; local t = json.array(); t.x = 1; "
                "json.encode(t)",
                "non-array keys");
        RUN_ERR("local json = require 'cella.json'; json.decode('{\"a\":1,\"a\":2}')", "duplicate");
        RUN_ERR("local json = require 'cella.json'; json.decode('[1,')", "decode");
        /* Self-reference is caught by the depth limit, not a stack overflow. */
        RUN_ERR("local json = require 'cella.json'; local t = {}; t.t = t; json.encode(t)",
                "deeper than 64");
}
END_TEST

START_TEST(test_json_bounds)
{
        /* Depth: 64 levels pass, 65 are refused, and a bracket bomb stops early. */
        RUN_OK("local json = require 'cella.json'\n"
               "local s = string.rep('[', 64) .. string.rep(']', 64)\n"
               "assert(json.encode(json.decode(s)) == s)\n"
               "local t = {} for i = 1, 63 do t = {t} end\n"
               "assert(#json.encode(t) == 128)\n");
        RUN_ERR("local json = require 'cella.json'; json.decode(string.rep('[', 65) .. "
                "string.rep(']', 65))",
                "deeper than 64");
        RUN_ERR("local json = require 'cella.json'; json.decode(string.rep('[', 1000000))",
                "deeper than 64");
        RUN_ERR("local json = require 'cella.json'; local t = {} for i = 1, 64 do t = {t} end; "
                "json.encode(t)",
                "deeper than 64");
        /* Brackets inside strings do not count. */
        RUN_OK("local json = require 'cella.json'\n"
               "assert(json.decode('\"' .. string.rep('[', 100) .. '\"') == string.rep('[', 100))");
        /* Size: 1 MiB in and out. */
        RUN_OK("local json = require 'cella.json'\n"
               "local s = '\"' .. string.rep('a', 1024 * 1024 - 2) .. '\"'\n"
               "assert(#json.decode(s) == 1024 * 1024 - 2)\n"
               "assert(json.encode(json.decode(s)) == s)\n");
        RUN_ERR("local json = require 'cella.json'; json.decode('\"' .. string.rep('a', 1024 * "
                "1024 - 1) .. '\"')",
                "input larger");
        RUN_ERR("local json = require 'cella.json'; json.encode(string.rep('a', 1024 * 1024))",
                "output larger");
        RUN_ERR("local json = require 'cella.json'; local t = {} for i = 1, 600000 do t[i] = 1 "
                "end; json.encode(t)",
                "output larger");
        RUN_ERR("local json = require 'cella.json'; local t = {} for i = 1, 2000000 do t[i] = true "
                "end; json.encode(t)",
                "output larger");
}
END_TEST

START_TEST(test_crypto)
{
        RUN_OK("local c = require 'cella.crypto'\n"
               "assert(#c.random(0) == 0 and #c.random(65536) == 65536)\n"
               "assert(c.random(32) ~= c.random(32))\n"
               /* BLAKE2b-256 of "" (RFC 7693 parameters, libsodium's test vector). */
               "assert(c.hash('') == "
               "'0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8', c.hash(''))\n"
               "assert(#c.hash('x', nil, true) == 32)\n"
               "local k = string.rep('k', 16)\n"
               "assert(c.hash('x', k) ~= c.hash('x') and #c.hash('x', string.rep('k', 64)) == 64)\n"
               "local key = c.secretbox_keygen(); assert(#key == 32)\n"
               "local box = c.secretbox('hello', key); assert(#box == 24 + 16 + 5)\n"
               "assert(c.secretbox_open(box, key) == 'hello')\n"
               "assert(c.secretbox_open(c.secretbox('', key), key) == '')\n"
               "local bad = box:sub(1, -2) .. string.char((box:byte(-1) + 1) % 256)\n"
               "local m, err = c.secretbox_open(bad, key); assert(m == nil and "
               "err:find('forged'))\n"
               "assert(c.secretbox_open(box, c.secretbox_keygen()) == nil)\n"
               "assert(c.secretbox_open('short', key) == nil)\n"
               "local pk, sk = c.sign_keypair(); assert(#pk == 32 and #sk == 64)\n"
               "local sig = c.sign_detached('msg', sk); assert(#sig == 64)\n"
               "assert(c.verify(sig, 'msg', pk) == true)\n"
               "assert(c.verify(sig, 'msh', pk) == false)\n"
               "assert(c.verify('short', 'msg', pk) == false)\n"
               "assert(c.verify(sig, 'msg', (c.sign_keypair())) == false)\n"
               "assert(#c.hash(string.rep('a', 1024 * 1024)) == 64)\n");
        RUN_ERR("require 'cella.crypto'.random(65537)", "0..65536");
        RUN_ERR("require 'cella.crypto'.random(-1)", "0..65536");
        RUN_ERR("require 'cella.crypto'.hash(string.rep('a', 1024 * 1024 + 1))", "larger than");
        RUN_ERR("require 'cella.crypto'.hash('x', 'short')", "16..64");
        RUN_ERR("require 'cella.crypto'.secretbox('x', 'short')", "key must be 32 bytes");
        RUN_ERR("require 'cella.crypto'.secretbox(string.rep('a', 1024 * 1024 + 1), "
                "string.rep('k', 32))",
                "larger than");
        RUN_ERR("require 'cella.crypto'.sign_detached('x', string.rep('k', 32))",
                "secret key must be 64");
        RUN_ERR("require 'cella.crypto'.verify(string.rep('s', 64), 'x', 'pk')",
                "public key must be 32");
}
END_TEST

/* Runs code with cella.log writing to a pipe; returns what was written (static buffer). */
static const char *log_capture(const char *code)
{
        static char buf[65536];
        int p[2];
        ssize_t n;

        ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        ck_assert_int_eq(fcntl(p[0], F_SETPIPE_SZ, 1024 * 1024) > 0, 1);
        ck_assert_int_eq(cella_lua_set_log_fd(L, p[1]), 0);
        RUN_OK(code);
        cella_lua_set_log_fd(L, 2);
        close(p[1]);
        n = read(p[0], buf, sizeof buf - 1);
        close(p[0]);
        buf[n < 0 ? 0 : n] = 0;
        return buf;
}

START_TEST(test_log)
{
        const char *out;

        ck_assert_str_eq(log_capture("local log = require 'cella.log'\n"
                                     "log.info('hello %s %d', 'world', 42)\n"
                                     "log.warn('plain %s')\n"
                                     "log.error(17)\n"),
                         "INFO: hello world 42\nWARN: plain %s\nERROR: 17\n");
        ck_assert_str_eq(
                log_capture("require 'cella.log'.info('a\\nINFO: forged\\r\\t\\27[31m\\\\ z')"),
                "INFO: a\\nINFO: forged\\r\\t\\x1b[31m\\\\ z\n");
        out = log_capture("require 'cella.log'.info(string.rep('x', 5000))");
        ck_assert_uint_eq(strlen(out), strlen("INFO: ") + 2048 + strlen("...[truncated]") + 1);
        ck_assert_ptr_nonnull(strstr(out, "x...[truncated]\n"));
        /* Escapes are counted after the cut: the worst case still is one bounded line. */
        out = log_capture("require 'cella.log'.error(string.rep('\\1', 5000))");
        ck_assert_uint_eq(strlen(out), strlen("ERROR: ") + 4 * 2048 + strlen("...[truncated]") + 1);
        RUN_ERR("require 'cella.log'.info()", "message expected");
        RUN_ERR("require 'cella.log'.info('%d', 'x')", "number expected");
}
END_TEST

START_TEST(test_fs_allowed)
{
        RUN_OK("local fs = require 'cella.fs'\n"
               "assert(fs.exists('a.txt') == false)\n"
               "assert(fs.write('a.txt', 'hello') == true)\n"
               "assert(fs.exists('a.txt') == true)\n"
               "assert(fs.read('a.txt') == 'hello')\n"
               "fs.append('a.txt', ' world'); assert(fs.read('a.txt') == 'hello world')\n"
               "fs.write('a.txt', 'x'); assert(fs.read('a.txt') == 'x')\n"
               "assert(fs.mkdir('d') == true and fs.mkdir('d') == false)\n"
               "fs.write('d/b', ''); assert(fs.read('d/b') == '')\n"
               "fs.write('d/../c', 'in'); assert(fs.read('c') == 'in')\n"
               "local l = fs.list(); assert(#l == 3 and l[1] == 'a.txt' and l[2] == 'c' and l[3] "
               "== 'd')\n"
               "l = fs.list('d'); assert(#l == 1 and l[1] == 'b')\n"
               "assert(fs.read('a.txt', 1) == 'x')\n"
               "fs.write('big', string.rep('z', 1024 * 1024)); assert(#fs.read('big') == 1024 * "
               "1024)\n"
               "fs.remove('d/b'); fs.remove('d'); assert(not fs.exists('d'))\n");
        /* A symlink that stays inside is followed. */
        {
                char p[160];
                snprintf(p, sizeof p, "%s/data/link-in", tmpdir);
                ck_assert_int_eq(symlink("a.txt", p), 0);
        }
        RUN_OK("local fs = require 'cella.fs'; assert(fs.read('link-in') == 'x')\n"
               "fs.remove('link-in'); assert(fs.exists('a.txt'))");
}
END_TEST

START_TEST(test_fs_refused)
{
        char p[200], t[200];
        FILE *f;

        snprintf(p, sizeof p, "%s/secret", outside);
        f = fopen(p, "w");
        fputs("secret", f);
        fclose(f);
        snprintf(p, sizeof p, "%s/data/link-out", tmpdir);
        snprintf(t, sizeof t, "%s/secret", outside);
        ck_assert_int_eq(symlink(t, p), 0);
        snprintf(p, sizeof p, "%s/data/rel-out", tmpdir);
        ck_assert_int_eq(symlink("../outside/secret", p), 0);
        snprintf(p, sizeof p, "%s/data/dir-out", tmpdir);
        ck_assert_int_eq(symlink("../outside", p), 0);
        snprintf(p, sizeof p, "%s/data/fifo", tmpdir);
        ck_assert_int_eq(mkfifo(p, 0600), 0);

        RUN_ERR("require 'cella.fs'.read('../outside/secret')", "escapes the data directory");
        RUN_ERR("require 'cella.fs'.read('a/../../outside/secret')", "");
        RUN_ERR("require 'cella.fs'.read('/etc/passwd')", "absolute path");
        RUN_ERR("require 'cella.fs'.read('link-out')", "escapes the data directory");
        RUN_ERR("require 'cella.fs'.read('rel-out')", "escapes the data directory");
        RUN_ERR("require 'cella.fs'.write('rel-out', 'pwned')", "escapes the data directory");
        RUN_ERR("require 'cella.fs'.write('dir-out/new', 'pwned')", "escapes the data directory");
        RUN_ERR("require 'cella.fs'.append('../x', 'pwned')", "escapes the data directory");
        RUN_ERR("require 'cella.fs'.mkdir('../newdir')", "");
        RUN_ERR("require 'cella.fs'.mkdir('dir-out/newdir')", "escapes the data directory");
        RUN_ERR("require 'cella.fs'.remove('dir-out/secret')", "escapes the data directory");
        RUN_ERR("require 'cella.fs'.remove('..')", "");
        RUN_ERR("require 'cella.fs'.list('..')", "escapes the data directory");
        RUN_ERR("require 'cella.fs'.list('dir-out')", "escapes the data directory");
        RUN_ERR("require 'cella.fs'.exists('../outside')", "escapes the data directory");
        RUN_ERR("require 'cella.fs'.read('fifo')", "Invalid argument");
        RUN_ERR("require 'cella.fs'.read('nope')", "No such file");
        RUN_ERR("require 'cella.fs'.read('')", "empty path");
        RUN_ERR("require 'cella.fs'.read('a\\0b')", "NUL");
        RUN_ERR("require 'cella.fs'.read(string.rep('a', 1025))", "longer than 1024");
        RUN_ERR("require 'cella.fs'.write('x', string.rep('a', 1024 * 1024 + 1))", "larger than");
        RUN_ERR("require 'cella.fs'.read('x', 1024 * 1024 + 1)", "max must be");
        RUN_ERR("local fs = require 'cella.fs'; fs.write('x', 'abc'); fs.read('x', 2)",
                "larger than 2 bytes");
        /* Nothing outside changed, the escaping symlink is removed as a link only. */
        RUN_OK("local fs = require 'cella.fs'; fs.remove('link-out'); assert(not "
               "fs.exists('link-out'))");
        snprintf(p, sizeof p, "%s/secret", outside);
        ck_assert_int_eq(access(p, F_OK), 0);
        snprintf(p, sizeof p, "%s/newdir", tmpdir);
        ck_assert_int_ne(access(p, F_OK), 0);
        snprintf(p, sizeof p, "%s/new", outside);
        ck_assert_int_ne(access(p, F_OK), 0);
}
END_TEST

START_TEST(test_fs_list_bound)
{
        RUN_OK("local fs = require 'cella.fs'; fs.mkdir('many')\n"
               "for i = 1, 4096 do fs.write('many/' .. i, '') end\n"
               "assert(#fs.list('many') == 4096)\n");
        RUN_ERR("local fs = require 'cella.fs'; fs.write('many/x', ''); fs.list('many')",
                "more than 4096 entries");
}
END_TEST

START_TEST(test_db_statements)
{
        RUN_OK("local db = require 'cella.db'\n"
               "local d = db.open('notes.db')\n"
               "d:exec('CREATE TABLE n (id INTEGER PRIMARY KEY, body TEXT, score REAL, x)')\n"
               "local ins = d:prepare('INSERT INTO n (body, score, x) VALUES (?, ?, ?)')\n"
               "ins:bind('first', 1.5, nil):step()\n"
               "ins:bind(\"it's; DROP TABLE n; --\", 2, true):step()\n"
               "ins:finalize(); ins:finalize()\n"
               "local q = d:prepare('SELECT id, body, score, x FROM n WHERE id >= ? ORDER BY id')\n"
               "q:bind(1)\n"
               "local rows = {}\n"
               "for r in q:rows() do rows[#rows + 1] = r end\n"
               "assert(#rows == 2)\n"
               "assert(rows[1].id == 1 and rows[1].body == 'first' and rows[1].score == 1.5 and "
               "rows[1].x == nil)\n"
               "assert(rows[2].body == \"it's; DROP TABLE n; --\" and rows[2].x == 1)\n"
               "assert(q:step() == nil)\n"
               "q:reset(); assert(q:step().id == 1)\n"
               "q:bind(2); assert(q:step().id == 2 and q:step() == nil)\n"
               "q:finalize(); d:close(); d:close()\n"
               /* It is a real file and survives reopening. */
               "local d2 = db.open('notes.db')\n"
               "local c = d2:prepare('SELECT count(*) AS n FROM n'); assert(c:step().n == 2)\n"
               "c:finalize(); d2:close()\n"
               "assert(require('cella.fs').exists('notes.db'))\n"
               /* <close> closes the database at scope end. */
               "local kept\n"
               "do local d3 <close> = db.open('notes.db'); kept = d3 end\n"
               "assert(not pcall(kept.exec, kept, 'SELECT 1'))\n");
}
END_TEST

START_TEST(test_db_refused)
{
        char p[200];

        snprintf(p, sizeof p, "%s/x.db", outside);
        ck_assert_int_eq(close(open(p, O_CREAT | O_WRONLY, 0600)), 0);
        snprintf(p, sizeof p, "%s/data/link.db", tmpdir);
        ck_assert_int_eq(symlink("../outside/x.db", p), 0);

        RUN_ERR("require 'cella.db'.open('../x.db')", "database name");
        RUN_ERR("require 'cella.db'.open('/tmp/x.db')", "database name");
        RUN_ERR("require 'cella.db'.open('file:x.db?mode=memory')", "database name");
        RUN_ERR("require 'cella.db'.open('.hidden')", "database name");
        RUN_ERR("require 'cella.db'.open(string.rep('a', 65))", "database name");
        RUN_ERR("require 'cella.db'.open('link.db')", "symlink");
        /* SQL cannot reach other files. */
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:exec(\"ATTACH '/tmp/evil.db' AS e\")",
                "cella.db.exec");
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:exec(\"VACUUM INTO "
                "'/tmp/evil-vac.db'\")",
                "cella.db.exec");
        ck_assert_int_ne(access("/tmp/evil.db", F_OK), 0);
        ck_assert_int_ne(access("/tmp/evil-vac.db", F_OK), 0);
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:exec(\"SELECT load_extension('x')\")",
                "not authorized");
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:exec(\"PRAGMA temp_store_directory = "
                "'/tmp'\")",
                "not authorized");
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:exec('PRAGMA soft_heap_limit = 1')",
                "not authorized");
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:exec('PRAGMA Cache_Size = -1000000')",
                "not authorized");
        RUN_OK("local d = require 'cella.db'.open('a.db'); d:exec('PRAGMA user_version = 3')\n"
               "assert(d:prepare('PRAGMA user_version'):step().user_version == 3)");
        /* Bounds. */
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:exec('SELECT 1' .. string.rep(' ', "
                "65536))",
                "SQL longer");
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:prepare('SELECT 1; SELECT 2')",
                "more than one statement");
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:prepare('SELECT ?'):bind(1, 2)",
                "2 values for 1 parameters");
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:prepare('SELECT ?'):bind({})",
                "cannot bind a table");
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:prepare('SELECT "
                "?'):bind(string.rep('a', 1024 * 1024 + 1))",
                "larger than");
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:prepare(\"SELECT "
                "zeroblob(2000000)\"):step()",
                "too big");
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:prepare('SELECT ' .. "
                "string.rep('1,', 256) .. '1')",
                "too many columns");
        /* A runaway query is stopped by the progress handler. */
        RUN_ERR("local d = require 'cella.db'.open('a.db')\n"
                "local s = d:prepare('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM "
                "c) "
                "SELECT count(*) FROM c'); s:step()",
                "ran longer than");
        RUN_ERR("local d = require 'cella.db'.open('a.db')\n"
                "d:exec('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                "SELECT count(*) FROM c')",
                "ran longer than");
        /* Use after close. */
        RUN_ERR("local d = require 'cella.db'.open('a.db'); local s = d:prepare('SELECT 1'); "
                "d:close(); s:step()",
                "database is closed");
        RUN_ERR("local d = require 'cella.db'.open('a.db'); d:close(); d:exec('SELECT 1')",
                "database is closed");
        RUN_ERR("local d = require 'cella.db'.open('a.db'); local s = d:prepare('SELECT 1'); "
                "s:finalize(); s:step()",
                "finalized");
}
END_TEST

/* The metatables of userdata an app holds are protected, and every method and
 * metamethod checks its argument: a __gc or close called on another value (nil, a
 * number, a table, a light userdata, the other class, a closed object) is a Lua
 * error, never a crash; no __gc can be added behind setmetatable's back. */
START_TEST(test_userdata_classes)
{
        RUN_OK("local db, json = require 'cella.db', require 'cella.json'\n"
               "local d = db.open('c.db')\n"
               "local s = d:prepare('SELECT 1 AS one')\n"
               "assert(getmetatable(d) == 'cella.db', tostring(getmetatable(d)))\n"
               "assert(getmetatable(s) == 'cella.db.stmt')\n"
               "local a = json.decode('[]')\n"
               "assert(getmetatable(a) == 'cella.json.array')\n"
               "for _, o in ipairs{d, s, a} do\n"
               "  local ok, e = pcall(setmetatable, o, {})\n"
               "  assert(not ok)\n"
               "end\n"
               "-- a __gc cannot be planted in the json.array metatable\n"
               "assert(type(getmetatable(a)) == 'string')\n"
               "-- json.array does not replace another metatable (the C API could)\n"
               "local mt = {}\n"
               "local o = setmetatable({}, mt)\n"
               "assert(not pcall(json.array, o) and getmetatable(o) == mt)\n"
               "assert(json.array(a) == a)\n"
               "local others = {1, 'x', {}, json.null, true, print, coroutine.create(print)}\n"
               "local fns = {d.close, d.exec, d.prepare, s.finalize, s.step, s.bind,\n"
               "             s.reset, s.rows}\n"
               "for _, f in ipairs(fns) do\n"
               "  assert(not pcall(f))\n"
               "  assert(not pcall(f, nil))\n"
               "  for _, v in ipairs(others) do\n"
               "    local ok, e = pcall(f, v, 'SELECT 1')\n"
               "    assert(not ok and e:find('expected'), tostring(e))\n"
               "  end\n"
               "end\n"
               "-- one class is not the other\n"
               "assert(not pcall(d.close, s)) assert(not pcall(s.finalize, d))\n"
               "assert(s:step().one == 1)\n"
               "-- closed objects: idempotent close, errors on use\n"
               "s:finalize() s:finalize() d:close() d:close()\n"
               "assert(not pcall(s.step, s)) assert(not pcall(d.exec, d, 'SELECT 1'))\n"
               "collectgarbage() collectgarbage()\n");
}
END_TEST

static Suite *lua_libs_suite(void)
{
        Suite *s = suite_create("lua-libs");
        TCase *tc = tcase_create("core");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_json_round_trip);
        tcase_add_test(tc, test_json_refused);
        tcase_add_test(tc, test_json_bounds);
        tcase_add_test(tc, test_crypto);
        tcase_add_test(tc, test_log);
        tcase_add_test(tc, test_fs_allowed);
        tcase_add_test(tc, test_fs_refused);
        tcase_add_test(tc, test_fs_list_bound);
        tcase_add_test(tc, test_db_statements);
        tcase_add_test(tc, test_db_refused);
        tcase_add_test(tc, test_userdata_classes);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(lua_libs_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
