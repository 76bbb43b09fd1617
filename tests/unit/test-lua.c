/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cella-lua runtime core: allocator cap, allowlist, the app's own library
 * tables, CPU watchdog, limit errors pcall cannot catch. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua/env.h"
#include "lua/host.h"
#include "lua/lua-modules.h"
#include "lua/watchdog.h"

/* Runs src as a main chunk; returns the fault and the first result (a
 * malloc'd string, or NULL) in *ret. */
static CLuaFault run(CLuaApp *app, const char *src, char **ret)
{
        char *msg = NULL;
        CLuaFault f;

        *ret = NULL;
        f = clua_load(app, src, strlen(src), "=test", &msg);
        if (f == CLUA_OK) {
                f = clua_call(app, 0, 1, &msg);
                if (f == CLUA_OK) {
                        const char *s = lua_tostring(app->L, -1);

                        *ret = s ? strdup(s) : NULL;
                        lua_pop(app->L, 1);
                        return f;
                }
        }
        *ret = msg;
        return f;
}

static CLuaApp *new_app(size_t cap, uint64_t callback_ms, uint64_t total_ms)
{
        CLuaApp *app = NULL;

        ck_assert_int_eq(clua_app_new(&(CLuaOptions){.memory_cap = cap,
                                                     .callback_ns = callback_ms * 1000000u,
                                                     .total_ns = total_ms * 1000000u},
                                      &app),
                         0);
        return app;
}

static void expect(CLuaApp *app, const char *src, CLuaFault fault, const char *want)
{
        char *out;
        CLuaFault f = run(app, src, &out);

        ck_assert_msg(f == fault, "%s: fault %d, want %d (%s)", src, f, fault, out ?: "");
        if (want)
                ck_assert_msg(out && strstr(out, want), "%s: got '%s', want '%s'", src,
                              out ?: "(null)", want);
        free(out);
}

START_TEST(test_allowlist_absent)
{
        static const char *const absent[] = {
                "dofile",
                "loadfile",
                "package.loadlib",
                "package.searchers",
                "io.popen",
                "io.tmpfile",
                "require ~= nil and nil",
                "string.dump",
                "debug.getlocal",
                "debug.getupvalue",
                "debug.getmetatable",
                "debug.sethook",
                "debug.setmetatable",
                "coroutine.close",
                "os.execute",
                "os.getenv('PATH')",
                "os.remove",
                "os.rename",
                "os.tmpname",
                "warn",
                "(\"\").dump",
        };
        CLuaApp *app = new_app(0, 0, 0);

        for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
                char src[128];

                snprintf(src, sizeof(src), "return tostring(%s)", absent[i]);
                expect(app, src, CLUA_OK, "nil");
        }
        expect(app,
               "return tostring(os.time() > 0 and math.pi and utf8.char(72) and "
               "table.concat({1,2}) and debug.traceback and coroutine.wrap ~= nil)",
               CLUA_OK, "true");
        expect(app,
               "local t = {} for k in pairs(os) do t[#t+1] = k end table.sort(t) "
               "return table.concat(t, ',')",
               CLUA_OK, "clock,date,difftime,exit,getenv,time");
        clua_app_free(app);
}
END_TEST

/* The globals are filled on first read; nothing the app can observe differs
 * from a table holding the whole allowlist. */
START_TEST(test_lazy_globals)
{
        CLuaApp *app = new_app(0, 0, 0);

        /* pairs(_G) sees every allowlisted name, and only those */
        expect(app,
               "local t = {} for k in pairs(_G) do t[#t+1] = k end table.sort(t) "
               "return table.concat(t, ',')",
               CLUA_OK,
               "_G,_VERSION,assert,collectgarbage,coroutine,debug,error,getmetatable,io,ipairs,"
               "load,math,next,os,package,pairs,pcall,print,rawequal,rawget,rawlen,rawset,require,"
               "select,setmetatable,string,table,tonumber,tostring,type,utf8,xpcall");
        clua_app_free(app);

        app = new_app(0, 0, 0);
        /* a name the app sets (even to nil) stays the app's */
        expect(app, "print = nil; return tostring(print)", CLUA_OK, "nil");
        expect(app, "return tostring(print)", CLUA_OK, "nil");
        expect(app, "math = 5; return tostring(math)", CLUA_OK, "5");
        expect(app, "rawset(_G, 'string', 7); return tostring(string)", CLUA_OK, "7");
        /* method calls on strings work before and without the global */
        expect(app, "return ('abc'):upper() .. #('xy'):rep(3)", CLUA_OK, "ABC6");
        /* the hidden metatable is not the app's: it sees none, and may set its own
         * (a strict-mode module), with the library whole behind it */
        expect(app, "return tostring(getmetatable(_G))", CLUA_OK, "nil");
        expect(app,
               "setmetatable(_G, {__index = function(_, k) error('undeclared ' .. k) end}) "
               "local ok, e = pcall(function() return undeclared_x end) "
               "return tostring(ok) .. ' ' .. tostring(table.concat ~= nil) .. ' ' .. e",
               CLUA_OK, "false true");
        clua_app_free(app);

        app = new_app(0, 0, 0);
        expect(app,
               "local a, b = math.random(1, 6), math.random(10) math.randomseed(7) "
               "local x = math.random() math.randomseed(7) "
               "return tostring(a >= 1 and a <= 6 and b >= 1 and b <= 10 and x == math.random() "
               "and x >= 0 and x < 1)",
               CLUA_OK, "true");
        expect(app, "return tostring(pcall(math.random, 3, 1))", CLUA_OK, "false");
        expect(app, "return tostring(coroutine.close == nil and utf8.charpattern:len())", CLUA_OK,
               "14");
        clua_app_free(app);
}
END_TEST

START_TEST(test_load_text_only)
{
        CLuaApp *app = new_app(0, 0, 0);

        expect(app, "return select(2, load(string.char(27) .. 'LuaT'))", CLUA_OK,
               "attempt to load a binary chunk");
        expect(app, "local f = load('return x') x = 'env' return f()", CLUA_OK, "env");
        expect(app, "return select(2, pcall(load, function() return nil end))", CLUA_OK,
               "string expected");
        expect(app, "return tostring(load('return x', 'c', 'b', {x = 1})())", CLUA_OK, "1");
        expect(app, "return tostring(require('os') == os and require('utf8') == utf8)", CLUA_OK,
               "true");
        /* no folder (an app made without an entry): nothing to search */
        expect(app, "return require('x')", CLUA_ERROR, "no file './x.lua' (the app has no folder)");
        expect(app, "return tostring(require('cella.json') == require('cella.json'))", CLUA_OK,
               "true");
        clua_app_free(app);
}
END_TEST

/* The library tables are the app's own, as in plain Lua (each app has its own
 * lua_State); strings convert in arithmetic as in Lua 5.4. */
START_TEST(test_library_tables_and_strings)
{
        CLuaApp *app = new_app(0, 0, 0);

        expect(app, "math.pi = 3 return tostring(math.pi)", CLUA_OK, "3");
        expect(app, "string.shout = function(s) return s:upper() .. '!' end return ('hi'):shout()",
               CLUA_OK, "HI!");
        expect(app, "return tostring('10' + 1) .. ' ' .. 10 .. 1 .. ' ' .. ('x'):rep(3)", CLUA_OK,
               "11 101 xxx");
        expect(app, "return math.type('10' + 1) .. ' ' .. tostring('0x10' * '2')", CLUA_OK,
               "integer 32");
        expect(app, "return 'x' + 1", CLUA_ERROR, "attempt to add a 'string' with a 'number'");
        expect(app, "return tostring(getmetatable('').__index == string)", CLUA_OK, "true");
        expect(app, "return debug.getinfo(1, 'f')", CLUA_ERROR, "option 'f'");
        expect(app, "return debug.getinfo(1, 'S').what", CLUA_OK, "main");
        expect(app, "setmetatable({}, {__gc = print})", CLUA_ERROR, "__gc");
        expect(app, "return getmetatable(io.stdout)", CLUA_OK, "cella.io.file");
        clua_app_free(app);
}
END_TEST

static void write_file(const char *dir, const char *name, const char *data, size_t len)
{
        char path[512];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(data, 1, len, f), len);
        fclose(f);
}

/* require beneath the app's folder and io beneath its data directory, under
 * ASan: every refusal and error path of src/lua/env.c's require and
 * src/lua/libio.c (tests/integration/test_lua_libs.py runs them in sandboxes). */
START_TEST(test_require_and_io_paths)
{
        char top[] = "/tmp/test-lua-XXXXXX", app_dir[256], data_dir[256], path[512], cmd[300];
        CLuaApp *app = new_app(0, 0, 0);
        int fd;

        ck_assert_ptr_nonnull(mkdtemp(top));
        snprintf(app_dir, sizeof app_dir, "%s/app", top);
        snprintf(data_dir, sizeof data_dir, "%s/data", top);
        ck_assert_int_eq(mkdir(app_dir, 0755), 0);
        ck_assert_int_eq(mkdir(data_dir, 0755), 0);
        snprintf(path, sizeof path, "%s/a", app_dir);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        write_file(app_dir, "m.lua", "return {n = ..., f = select(2, ...)}", 36);
        write_file(app_dir, "a/b.lua", "return 'nested'", 15);
        write_file(app_dir, "loop.lua", "return require 'loop'", 21);
        write_file(app_dir, "bad.lua", "return +", 8);
        write_file(app_dir, "err.lua", "error('in module')", 18);
        write_file(app_dir, "bc.lua", "\x1bLua\x54\x00junk", 10);
        write_file(top, "outside.lua", "return 'out'", 12);
        snprintf(path, sizeof path, "%s/link.lua", app_dir);
        ck_assert_int_eq(symlink("../outside.lua", path), 0);
        snprintf(path, sizeof path, "%s/fifo.lua", app_dir);
        ck_assert_int_eq(mkfifo(path, 0644), 0);
        snprintf(path, sizeof path, "%s/big.lua", app_dir);
        fd = open(path, O_WRONLY | O_CREAT, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 5 << 20), 0);
        close(fd);
        snprintf(path, sizeof path, "%s/main.lua", app_dir);
        ck_assert_int_eq(clua_env_set_root(app, path), 0);
        fd = open(data_dir, O_PATH | O_DIRECTORY);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(cella_lua_set_data_dir(app->L, fd, data_dir), 0);
        close(fd);

        expect(app, "local m = require 'm' return m.n .. ' ' .. m.f .. ' ' .. require 'a.b'",
               CLUA_OK, "m ./m.lua nested");
        expect(app, "return tostring(require 'm' == package.loaded.m)", CLUA_OK, "true");
        expect(app, "return require 'loop'", CLUA_ERROR, "loop requiring module 'loop'");
        expect(app, "return require 'bad'", CLUA_ERROR,
               "error loading module 'bad' from file './bad.lua':");
        expect(app, "return require 'err'", CLUA_ERROR, "in module");
        /* after an error the module may be required again (and fails again) */
        expect(app, "return require 'err'", CLUA_ERROR, "in module");
        expect(app, "return require 'bc'", CLUA_ERROR, "attempt to load a binary chunk");
        expect(app, "return require 'link'", CLUA_ERROR,
               "no file './link.lua' (outside the app's folder)");
        expect(app, "return require 'fifo'", CLUA_ERROR,
               "no file './fifo.lua' (not a regular file)");
        expect(app, "return require 'big'", CLUA_ERROR, "larger than 4194304 bytes");
        expect(app, "package.path = '../?.lua' return require 'outside'", CLUA_ERROR,
               "(outside the app's folder)");
        expect(app, "package.path = 7 return require 'zzz'", CLUA_ERROR,
               "'package.path' must be a string");
        expect(app, "package.path = './?.lua' return package.searchpath('a.b', package.path)",
               CLUA_OK, "./a/b.lua");
        expect(app, "return select(2, package.searchpath('no', '/etc/?;./?'))", CLUA_OK,
               "no file '/etc/no' (outside the app's folder)\n\tno file './no'");
        expect(app, "return require(string.rep('x', 257))", CLUA_ERROR, "longer than 256");

        expect(app,
               "local f = assert(io.open('/data/t.txt', 'w')) f:write('a\\n', 1, ' ', 2.0, '\\n') "
               "f:close() local t = {} for l in io.lines('t.txt') do t[#t + 1] = l end "
               "return table.concat(t, '|')",
               CLUA_OK, "a|1 2");
        expect(app,
               "local f = io.open('t.txt') return f:read('l', 'n', 'n') and f:read('a') .. "
               "tostring(f:seek('set', 1)) .. f:read(1)",
               CLUA_OK, "1\n");
        expect(app, "return select(2, io.open('/etc/passwd'))", CLUA_OK,
               "outside the app's /data and /tmp");
        expect(app, "return select(2, io.open('../x', 'w'))", CLUA_OK, "escapes");
        expect(app, "return select(2, io.open('/data/../x'))", CLUA_OK, "escapes");
        expect(app, "return select(2, io.open('/data'))", CLUA_OK, "not a regular file");
        expect(app, "return io.open('t.txt', 'rw')", CLUA_ERROR, "invalid mode");
        expect(app, "local f = io.open('t.txt') f:close() return f:read()", CLUA_ERROR,
               "closed file");
        expect(app, "return io.lines('nope.txt')", CLUA_ERROR, "nope.txt: No such file");
        /* files left open are closed by the collector or with the state */
        expect(app,
               "for i = 1, 70 do io.open('t.txt') end collectgarbage() "
               "local t = {} for i = 1, 64 do t[i] = assert(io.open('t.txt')) end "
               "return select(2, io.open('t.txt'))",
               CLUA_OK, "Too many open files");
        clua_app_free(app);
        snprintf(cmd, sizeof cmd, "rm -rf %s", top);
        ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_memory_cap_uncatchable)
{
        CLuaApp *app = new_app(2u << 20, 0, 0);
        const char *hog = "local t = {} "
                          "local ok = pcall(function() for i = 1, 1e9 do t[i] = {} end end) "
                          "ok = xpcall(function() for i = 1, 1e9 do t[i] = {} end end, "
                          "function() return 'handled' end) "
                          "return 'caught'";

        expect(app, "local s = string.rep('x', 1 << 19) return #s", CLUA_OK, "524288");
        expect(app, hog, CLUA_MEMORY, "memory limit of 2097152 bytes exceeded");
        ck_assert_uint_le(app->alloc.used, app->alloc.cap);
        ck_assert_uint_le(app->alloc.peak, app->alloc.cap);
        /* Doomed: nothing runs any more. */
        expect(app, "return 'again'", CLUA_MEMORY, "memory limit");
        clua_app_free(app);

        /* In a coroutine, resumed under pcall. */
        app = new_app(2u << 20, 0, 0);
        expect(app,
               "local co = coroutine.create(function() local t = {} "
               "for i = 1, 1e9 do t[i] = {} end end) "
               "pcall(coroutine.resume, co) return 'caught'",
               CLUA_MEMORY, "memory limit");
        clua_app_free(app);

        /* Live data within 1/8 of the cap and garbage churning on top: a memory
         * error after CLUA_ALLOC_THRASH_MAX refusals, not a full collection per
         * allocation until the CPU budget ends. */
        app = new_app(2u << 20, 3000, 0);
        expect(app,
               "local t, n = {}, 0 "
               "while true do for i = 1, 10 do n = n + 1 t[n] = ('x'):rep(1000) .. n end "
               "  collectgarbage() if collectgarbage('count') > 1850 then break end end "
               "local k = 0 while true do k = k + 1 local s = ('y'):rep(1000) .. k end",
               CLUA_MEMORY, "memory limit");
        ck_assert_uint_ge(app->alloc.refused, CLUA_ALLOC_THRASH_MAX);
        clua_app_free(app);
}
END_TEST

START_TEST(test_cpu_budget_uncatchable)
{
        CLuaApp *app = new_app(0, 200, 0);
        struct timespec t0, t1;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        expect(app, "pcall(function() while true do end end) return 'caught'", CLUA_CPU_CALLBACK,
               "CPU budget of 200 ms exceeded");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert_int_lt((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 900);
        expect(app, "return 'again'", CLUA_CPU_CALLBACK, "CPU budget");
        clua_app_free(app);

        /* xpcall's handler runs doomed too; coroutines and wrap. */
        app = new_app(0, 200, 0);
        expect(app,
               "xpcall(function() while true do end end, function() while true do end end) "
               "return 'caught'",
               CLUA_CPU_CALLBACK, "CPU budget");
        clua_app_free(app);
        app = new_app(0, 200, 0);
        expect(app,
               "local f = coroutine.wrap(function() while true do end end) "
               "pcall(f) return 'caught'",
               CLUA_CPU_CALLBACK, "CPU budget");
        clua_app_free(app);
        app = new_app(0, 200, 0);
        expect(app,
               "local co = coroutine.create(function() while true do end end) "
               "print(coroutine.resume(co)) return 'caught'",
               CLUA_CPU_CALLBACK, "CPU budget");
        clua_app_free(app);
}
END_TEST

START_TEST(test_cpu_total_budget)
{
        CLuaApp *app = new_app(0, 5000, 300);

        /* Short callbacks pass; they add up to the total. */
        expect(app, "local x = 0 for i = 1, 1e5 do x = x + i end return tostring(x)", CLUA_OK,
               "5000050000");
        expect(app, "while true do end", CLUA_CPU_TOTAL, "total CPU budget of 300 ms exceeded");
        ck_assert_uint_ge(app->cpu_used_ns, 300000000u);
        clua_app_free(app);
}
END_TEST

START_TEST(test_plain_error_and_budget_off_after)
{
        CLuaApp *app = new_app(0, 200, 0);

        expect(app, "error('boom')", CLUA_ERROR, "test:1: boom");
        expect(app, "return select(2, pcall(error, 'x'))", CLUA_OK, "x");
        /* The budget is per callback: three of 150 ms each pass a 200 ms budget. */
        for (int i = 0; i < 3; i++)
                expect(app, "local t = os.clock() while os.clock() - t < 0.15 do end return 'ok'",
                       CLUA_OK, "ok");
        clua_app_free(app);
}
END_TEST

/* Reads tests/lua/NAME into a malloc'd string. */
static char *read_source(const char *name, size_t *len)
{
        char path[512];
        FILE *f;
        char *buf;
        long n;

        snprintf(path, sizeof(path), "%s/tests/lua/%s", CELLA_SOURCE_ROOT, name);
        f = fopen(path, "r");
        ck_assert_msg(f, "%s", path);
        ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
        n = ftell(f);
        rewind(f);
        buf = malloc((size_t)n + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
        buf[n] = 0;
        fclose(f);
        *len = (size_t)n;
        return buf;
}

/* cella's string.find/match/gmatch/gsub/rep and table functions give liblua's
 * results and errors on a corpus of patterns, subjects and arguments. */
START_TEST(test_string_table_match_liblua)
{
        size_t len;
        char *src = read_source("stdlib_diff.lua", &len), *got;
        lua_State *P = luaL_newstate();
        CLuaApp *app = new_app(0, 20000, 0);
        const char *want, *a, *b;
        size_t nwant, ngot, i;
        int line = 1;

        luaL_openlibs(P);
        if (luaL_loadbuffer(P, src, len, "=stdlib_diff") || lua_pcall(P, 0, 1, 0))
                ck_abort_msg("plain lua: %s", lua_tostring(P, -1));
        want = lua_tolstring(P, -1, &nwant);
        ck_assert_int_eq(clua_load(app, src, len, "=stdlib_diff", NULL), CLUA_OK);
        ck_assert_int_eq(clua_call(app, 0, 1, NULL), CLUA_OK);
        got = (char *)lua_tolstring(app->L, -1, &ngot);
        ck_assert_ptr_nonnull(got);
        /* Byte by byte: captures hold NUL bytes. */
        for (i = 0; i < nwant && i < ngot && want[i] == got[i]; i++)
                if (want[i] == '\n')
                        line++;
        if (i < nwant || i < ngot) {
                a = want + i;
                b = got + i;
                while (a > want && a[-1] != '\n')
                        a--;
                while (b > got && b[-1] != '\n')
                        b--;
                ck_abort_msg("line %d differs:\n liblua: %.*s\n cella:  %.*s", line,
                             (int)strcspn(a, "\n"), a, (int)strcspn(b, "\n"), b);
        }
        ck_assert_int_gt(line, 40000);
        free(src);
        lua_close(P);
        clua_app_free(app);
}
END_TEST

/* The C loops an app controls end with its CPU budget instead of running on:
 * backtracking patterns, gsub, table functions driven by C metamethods, a huge
 * load; string.rep of nothing returns at once. Each is under pcall, which must
 * not catch the budget error; each ends within its budget plus a little. */
START_TEST(test_c_loops_end_with_the_budget)
{
        static const char *const cases[] = {
                "return pcall(string.find, ('a'):rep(3000), ('.-'):rep(12) .. 'b')",
                "return pcall(string.match, ('a'):rep(5000), ('a*'):rep(20) .. 'b')",
                "return pcall(string.gsub, ('a'):rep(3000), ('.-'):rep(12) .. 'b', 'x')",
                "return pcall(function() for _ in string.gmatch(('a'):rep(3000), ('.-'):rep(12) "
                ".. 'b') do end end)",
                "return pcall(string.find, ('('):rep(100000), '%b()')",
                "local t = setmetatable({}, {__index = table.concat}) "
                "return pcall(table.concat, t, '', 1, math.maxinteger)",
                "local t = setmetatable({}, {__index = table.concat, __newindex = rawequal}) "
                "return pcall(table.move, t, 1, math.maxinteger - 1, 1)",
                "local t = setmetatable({year = 2020, month = 1, day = 1}, {__len = os.time}) "
                "return pcall(function() while true do table.insert(t, 1, 1) end end)",
                "local t = setmetatable({year = 2020, month = 1, day = 1}, {__len = os.time}) "
                "return pcall(function() while true do table.remove(t, 1) end end)",
                "return pcall(load, 'return ' .. ('1+'):rep(20000000) .. '1')",
                /* A back reference to a position capture made work go down. */
                "return pcall(string.find, string.rep('a', 1e6), '().-%1')",
                /* Work in the matcher's item loop, sets and expansions, not
                 * only its calls: a long literal, a long set per byte. */
                "return pcall(string.match, ('a'):rep(4e6), ('a'):rep(2e6) .. 'b')",
                "return pcall(string.find, ('b'):rep(1e6), '[' .. ('a'):rep(1e6) .. ']')",
                "return pcall(string.find, ('x'):rep(1e6), '[^' .. ('a'):rep(1e6) .. ']*')",
                "return pcall(string.find, ('x'):rep(1e6), '[^' .. ('a'):rep(1e6) .. ']-y')",
                "return pcall(string.find, ('x'):rep(1e6), '%f[' .. ('a'):rep(1e6) .. ']')",
                /* One memcpy per repetition: 2^29 of them. */
                "local s = string.rep('x', 1 << 29) while true do end",
                "local s = string.rep('x', 1 << 28, '') while true do end",
                /* The page faults of a fresh 1 GiB block (the result's copy in
                 * luaL_pushresult, 2.5 s here) come in the allocator's polled
                 * steps, not in liblua's one memcpy. */
                "local s = string.rep('x', (1 << 30) - 64) while true do end",
                "local s = ('x'):rep(1 << 27) local t = s .. s .. s .. s .. s .. s .. s .. s "
                "while true do end",
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                CLuaApp *app = new_app(3ull << 30, 300, 0);
                struct timespec t0, t1;
                double s;

                clock_gettime(CLOCK_MONOTONIC, &t0);
                expect(app, cases[i], CLUA_CPU_CALLBACK, "CPU budget of 300 ms exceeded");
                clock_gettime(CLOCK_MONOTONIC, &t1);
                s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
                ck_assert_msg(app->cpu_used_ns < 900000000u, "case %zu: %llu ns of CPU", i,
                              (unsigned long long)app->cpu_used_ns);
                (void)s;
                clua_app_free(app);
        }
        {
                CLuaApp *app = new_app(0, 300, 0);

                /* gsub's function and sort's comparator may yield (liblua's may not) */
                expect(app,
                       "local co = coroutine.wrap(function() "
                       "  local r = string.gsub('abc', '.', function(c) "
                       "    coroutine.yield(c) return c:upper() end) "
                       "  local t = {3, 1, 2} "
                       "  table.sort(t, function(a, b) coroutine.yield('s') return a < b end) "
                       "  return r .. table.concat(t) end) "
                       "local out = {} repeat local v = co() out[#out + 1] = v "
                       "until #v > 1 return table.concat(out, ',')",
                       CLUA_OK, "a,b,c,s,");
                /* An anchored gsub replaces once, even if its function yields. */
                expect(app,
                       "local co = coroutine.wrap(function() "
                       "  return ('aaa'):gsub('^a', function() coroutine.yield() return 'b' end) "
                       "end) "
                       "co() local r, n = co() return r .. n",
                       CLUA_OK, "baa1");
                expect(app, "return #string.rep('', math.maxinteger) .. #('x'):rep(0)", CLUA_OK,
                       "00");
                expect(app, "return #string.rep('', math.maxinteger, '')", CLUA_OK, "0");
                clua_app_free(app);
        }
}
END_TEST

/* A C function for test_table_metatables_raw: pushes a userdata whose
 * metatable has no field (upvalue 1 false), or whose metatable has __index
 * and __len only through its own metatable's __index (upvalue 1 true). */
static void push_userdata(lua_State *L, bool inherited)
{
        lua_newuserdatauv(L, 1, 0);
        lua_newtable(L); /* the userdata's metatable */
        if (inherited) {
                lua_newtable(L); /* its metatable */
                lua_newtable(L); /* whose __index has the fields */
                lua_pushboolean(L, 1);
                lua_setfield(L, -2, "__index");
                lua_pushboolean(L, 1);
                lua_setfield(L, -2, "__len");
                lua_setfield(L, -2, "__index");
                lua_setmetatable(L, -2);
        }
        lua_setmetatable(L, -2);
}

/* table functions on a non-table read its metatable's fields raw and pop only
 * what they pushed (as liblua's checktab): they once popped their caller's
 * arguments ("got no value") and saw fields through __index. */
START_TEST(test_table_metatables_raw)
{
        static const char src[] = "local u, v = ... "
                                  "local _, e1 = pcall(table.insert, u, 1) "
                                  "local _, e2 = pcall(table.concat, v) "
                                  "local _, e3 = pcall(table.remove, u) "
                                  "local _, e4 = pcall(table.move, v, 1, 2, 3) "
                                  "return e1 .. '|' .. e2 .. '|' .. e3 .. '|' .. e4";
        const char *want = "table expected, got userdata";
        CLuaApp *app = new_app(0, 300, 0);
        char *msg = NULL;
        const char *got, *p;
        int n = 0;

        ck_assert_int_eq(clua_load(app, src, strlen(src), "=test", &msg), CLUA_OK);
        push_userdata(app->L, false);
        push_userdata(app->L, true);
        ck_assert_int_eq(clua_call(app, 2, 1, &msg), CLUA_OK);
        got = lua_tostring(app->L, -1);
        ck_assert_ptr_nonnull(got);
        for (p = got; (p = strstr(p, want)); p++)
                n++;
        ck_assert_msg(n == 4, "got '%s'", got);
        lua_pop(app->L, 1);
        clua_app_free(app);
}
END_TEST

/* A C function for test_doomed_outside_watchdog: dooms its app as app.exit
 * and a memory fault do (no watchdog involved), then works 600 ms of CPU
 * without polling, past the budget's end, then polls. */
static int doom_then_work(lua_State *L)
{
        uint64_t t0 = clua_thread_cpu_ns();

        clua_app_of(L)->doomed = CLUA_MEMORY;
        while (clua_thread_cpu_ns() - t0 < 600000000u)
                ;
        clua_poll(L);
        return 0;
}

/* An app doomed outside the watchdog (clua_doom, check_fatal) still gets the
 * grace period of CLUA_GRACE_NS when its budget ends in a C call: the watchdog
 * once _exit'ed the host at once (the grace end was 0). */
START_TEST(test_doomed_outside_watchdog)
{
        static const char src[] = "local f = ... f() return 'not reached'";
        CLuaApp *app = new_app(0, 300, 0);
        char *msg = NULL;

        ck_assert_int_eq(clua_load(app, src, strlen(src), "=test", &msg), CLUA_OK);
        lua_pushcfunction(app->L, doom_then_work);
        ck_assert_int_eq(clua_call(app, 1, 1, &msg), CLUA_MEMORY);
        ck_assert_msg(msg && strstr(msg, "memory limit"), "%s", msg ?: "(null)");
        free(msg);
        clua_app_free(app);
}
END_TEST

/* An app on a host of its own with data directory dir (made here). */
static CLuaApp *new_app_with_data(size_t cap, char *dir)
{
        CLuaHostOptions ho = {.policy = CLUA_SCHED_FAIR, .stats_fd = -1, .n_apps = 1};
        CLuaAppSpec spec = {.channel_fd = -1,
                            .log_fd = -1,
                            .data = dir,
                            .opt = {.memory_cap = cap, .callback_ns = 20000000000ull}};
        CLuaHost *h;
        CLuaApp *app;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        ck_assert_int_eq(clua_host_new(&ho, &h), 0);
        ck_assert_int_eq(clua_host_add(h, &spec, &app), 0);
        return app;
}

static void rm_dir(const char *dir)
{
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}

/* SQLite's and jansson's memory counts against the app's cap: the heap the
 * allocator counts holds SQLite's page cache beside the Lua heap; databases
 * opened past the cap end the app with its memory fault (pcall cannot catch
 * it); a JSON text whose jansson tree and Lua tables together pass the cap does
 * too, where the Lua tables alone would fit. */
START_TEST(test_c_library_memory_is_counted)
{
        char dir[] = "/tmp/cella-lua-mem-XXXXXX";
        CLuaApp *app = new_app_with_data(64u << 20, dir);
        char *out;
        double lua_heap;

        ck_assert_int_eq(
                run(app,
                    "local d = require('cella.db').open('m.db')\n"
                    "d:exec('CREATE TABLE t(x)') d:exec('BEGIN')\n"
                    "for i = 1, 3000 do d:exec('INSERT INTO t VALUES (randomblob(600))') end\n"
                    "d:exec('COMMIT') KEEP = d\n"
                    "collectgarbage() return collectgarbage('count') * 1024",
                    &out),
                CLUA_OK);
        lua_heap = strtod(out, NULL);
        free(out);
        /* SQLite's default page cache is 2000 KiB per connection. */
        ck_assert_msg((double)app->alloc.used > lua_heap + (1 << 20),
                      "counted %zu bytes, Lua heap %.0f", app->alloc.used, lua_heap);
        clua_app_free(app);
        rm_dir(dir);

        /* 8 MiB: four connections with full caches do not fit. */
        strcpy(dir, "/tmp/cella-lua-mem-XXXXXX");
        app = new_app_with_data(8u << 20, dir);
        expect(app,
               "local db = require('cella.db') DBS = {}\n"
               "return pcall(function()\n"
               "  for n = 1, 16 do\n"
               "    local d = db.open('m' .. n .. '.db') DBS[n] = d\n"
               "    d:exec('CREATE TABLE t(x)') d:exec('BEGIN')\n"
               "    for i = 1, 3000 do d:exec('INSERT INTO t VALUES (randomblob(600))') end\n"
               "    d:exec('COMMIT')\n"
               "  end\n"
               "end)",
               CLUA_MEMORY, "memory limit of 8388608 bytes exceeded");
        ck_assert_uint_le(app->alloc.peak, 8u << 20);
        clua_app_free(app);
        rm_dir(dir);

        /* [[],[],...]: 100000 empty arrays hold 7.2 MB as Lua tables; with
         * jansson's tree beside them, the decode peaks at 22 MB. */
        app = new_app(16u << 20, 20000, 0);
        expect(app,
               "local text = '[' .. ('[],'):rep(99999) .. '[]]' "
               "return pcall(require('cella.json').decode, text)",
               CLUA_MEMORY, "memory limit of 16777216 bytes exceeded");
        ck_assert_uint_le(app->alloc.peak, 16u << 20);
        clua_app_free(app);
        app = new_app(64u << 20, 20000, 0);
        expect(app,
               "local t = require('cella.json').decode('[' .. ('[],'):rep(99999) .. '[]]') "
               "return tostring(#t)",
               CLUA_OK, "100000");
        ck_assert_uint_gt(app->alloc.peak, 16u << 20);
        clua_app_free(app);

        /* Garbage up to near the cap: jansson is refused, the heap collected in
         * steps (not one LUA_GCCOLLECT), and the decode tried again fits. */
        app = new_app(24u << 20, 20000, 0);
        expect(app,
               "local text = '[' .. ('1,'):rep(99999) .. '1]' "
               "local json = require('cella.json') "
               "local g = {} for i = 1, 19000 do g[i] = ('x'):rep(1000) .. i end g = nil "
               "local t = json.decode(text) return tostring(#t)",
               CLUA_OK, "100000");
        ck_assert_uint_gt(app->alloc.ext_refused, 0);
        clua_app_free(app);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("lua");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_allowlist_absent);
        tcase_add_test(tc, test_lazy_globals);
        tcase_add_test(tc, test_load_text_only);
        tcase_add_test(tc, test_library_tables_and_strings);
        tcase_add_test(tc, test_require_and_io_paths);
        tcase_add_test(tc, test_memory_cap_uncatchable);
        tcase_add_test(tc, test_cpu_budget_uncatchable);
        tcase_add_test(tc, test_cpu_total_budget);
        tcase_add_test(tc, test_plain_error_and_budget_off_after);
        tcase_add_test(tc, test_string_table_match_liblua);
        tcase_add_test(tc, test_c_loops_end_with_the_budget);
        tcase_add_test(tc, test_table_metatables_raw);
        tcase_add_test(tc, test_doomed_outside_watchdog);
        tcase_add_test(tc, test_c_library_memory_is_counted);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
