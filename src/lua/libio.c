/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * io: the subset of Lua 5.4's io library an app may have (docs/lua-api.md "io").
 *
 * Files live beneath the app's own /data (its data directory, as cella.fs) and
 * /tmp (in a packed host, a directory of its own under /tmp: one tmpfs serves
 * the whole group, and only the Lua wall separates its members). Every open is
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) against that directory's fd,
 * as cella.fs does: "..", absolute paths and symlinks that leave it fail in the
 * kernel. A path is "/data/..." or "/tmp/..." or relative (to /data, cella.fs's
 * root); any other absolute path is refused. Regular files only. No popen, no
 * tmpfile, no file descriptors: a handle is a userdata of a protected class
 * whose methods check it (luaL_checkudata) and handle a closed file.
 *
 * io.write and io.stdout write to the app's output as print does (one write(2)
 * a call: its log in packed mode); io.stderr to its log; io.read and io.stdin
 * read the process's stdin when the app is alone in its host, and see an
 * empty stdin in a packed host.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua/env.h"
#include "lua/host.h"
#include "lua/lua-modules.h"

#define IO_FILE_MT "cella.io.file"
/* Most files an app has open through io at once (each holds a stdio buffer of
 * 4 KiB outside the Lua heap). */
#define IO_OPEN_MAX 64
/* Bytes written to a file between two polls of the CPU budget. */
#define IO_WRITE_PIECE (1024u * 1024)
/* Longest path an app may name, bytes (as cella.fs). */
#define IO_PATH_MAX 1024
/* Registry keys. */
#define IO_TMP_KEY    "cella.io.tmp"
#define IO_DIR_MT     "cella.io.dir"
#define IO_COUNT_KEY  "cella.io.count"
#define IO_INPUT_KEY  "cella.io.input"
#define IO_OUTPUT_KEY "cella.io.output"

enum { IO_KIND_FILE, IO_KIND_STDIN, IO_KIND_STDOUT, IO_KIND_STDERR };

typedef struct IoFile {
        FILE *f; /* IO_KIND_FILE (and stdin when the app is alone): NULL once closed */
        int kind;
        bool closed;
} IoFile;

typedef struct IoDir {
        int fd;
} IoDir;

/* ---- open files: the count, the tmp directory ------------------------------------ */

static int *open_count(lua_State *L)
{
        int *n;

        if (lua_getfield(L, LUA_REGISTRYINDEX, IO_COUNT_KEY) == LUA_TNIL) {
                lua_pop(L, 1);
                n = lua_newuserdatauv(L, sizeof(int), 0);
                *n = 0;
                lua_setfield(L, LUA_REGISTRYINDEX, IO_COUNT_KEY);
                return n;
        }
        n = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return n;
}

static int io_dir_gc(lua_State *L)
{
        IoDir *d = lua_touserdata(L, 1);

        if (d && d->fd >= 0)
                close(d->fd);
        d->fd = -1;
        return 0;
}

/* The fd of the app's /tmp: /tmp itself when the app is alone in its host, else
 * a directory of its own made under /tmp (mode 0700). Pushes nothing; returns
 * the fd or -errno. */
static int tmp_dir(lua_State *L)
{
        CLuaApp *app = clua_app_of(L);
        IoDir *d;
        int fd;

        if (lua_getfield(L, LUA_REGISTRYINDEX, IO_TMP_KEY) != LUA_TNIL) {
                fd = ((IoDir *)lua_touserdata(L, -1))->fd;
                lua_pop(L, 1);
                return fd;
        }
        lua_pop(L, 1);
        d = lua_newuserdatauv(L, sizeof(IoDir), 0);
        d->fd = -1;
        cella_lua_setclass_gc(L, IO_DIR_MT, io_dir_gc);
        if (app->host && app->host->cap_apps > 1) {
                char dir[] = "/tmp/.cella-lua-XXXXXX";

                if (!mkdtemp(dir)) {
                        lua_pop(L, 1);
                        return -errno;
                }
                fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        } else
                fd = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                lua_pop(L, 1);
                return -errno;
        }
        d->fd = fd;
        lua_setfield(L, LUA_REGISTRYINDEX, IO_TMP_KEY);
        return fd;
}

/* If path is top ("/data") or beneath it, sets *rel to the rest ("." for top
 * itself) and returns true. */
static bool under(const char *path, const char *top, const char **rel)
{
        size_t n = strlen(top);

        if (strncmp(path, top, n) != 0 || (path[n] != '\0' && path[n] != '/'))
                return false;
        path += n;
        while (*path == '/')
                path++;
        *rel = *path ? path : ".";
        return true;
}

/* Opens path of the app with open(2) flags beneath its /data or /tmp. Returns
 * an fd (a regular file, blocking) or -errno: -EACCES for an absolute path
 * elsewhere, -EXDEV for one that escapes. May push nothing; may raise only a
 * memory error or the data directory's. */
static int open_app_path(lua_State *L, const char *path, int flags)
{
        const char *rel = path;
        struct open_how how = {
                .flags = (unsigned long long)(flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC),
                .mode = (flags & O_CREAT) ? 0600 : 0,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        int dirfd, fl, fd;

        if (strlen(path) > IO_PATH_MAX)
                return -ENAMETOOLONG;
        if (under(path, "/tmp", &rel)) {
                dirfd = tmp_dir(L);
                if (dirfd < 0)
                        return dirfd;
        } else if (path[0] == '/' && !under(path, "/data", &rel)) {
                return -EACCES;
        } else {
                if (!*rel)
                        return -ENOENT;
                dirfd = cella_lua_data_dir(L, NULL);
                lua_pop(L, 1);
        }
        fd = clua_open_beneath(dirfd, rel, &how);
        if (fd < 0)
                return fd;
        fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        return fd;
}

static const char *io_errtext(int r)
{
        switch (-r) {
        case EACCES:
                return "outside the app's /data and /tmp";
        case EXDEV:
                return "path escapes the app's /data or /tmp";
        case EISDIR:
                return "not a regular file";
        default:
                return strerror(-r);
        }
}

/* Pushes nil, "path: reason", errno (as luaL_fileresult) and returns 3. */
static int io_fail(lua_State *L, const char *path, int r)
{
        luaL_pushfail(L);
        if (path)
                lua_pushfstring(L, "%s: %s", path, io_errtext(r));
        else
                lua_pushstring(L, io_errtext(r));
        lua_pushinteger(L, -r);
        return 3;
}

/* ---- handles ------------------------------------------------------------------- */

static IoFile *new_file(lua_State *L, int kind)
{
        IoFile *p = lua_newuserdatauv(L, sizeof(IoFile), 0);

        p->f = NULL;
        p->kind = kind;
        p->closed = false;
        luaL_setmetatable(L, IO_FILE_MT);
        return p;
}

static IoFile *check_file(lua_State *L, int idx)
{
        IoFile *p = luaL_checkudata(L, idx, IO_FILE_MT);

        if (p->closed)
                luaL_error(L, "attempt to use a closed file");
        return p;
}

static int close_file(lua_State *L, IoFile *p)
{
        int r = 0;

        if (p->closed)
                return 0;
        if (p->kind == IO_KIND_FILE) {
                if (p->f)
                        r = fclose(p->f) == 0 ? 0 : -errno;
                p->f = NULL;
                (*open_count(L))--;
        }
        p->closed = true;
        return r;
}

static int f_gc(lua_State *L)
{
        IoFile *p = luaL_checkudata(L, 1, IO_FILE_MT);

        if (p->kind == IO_KIND_FILE)
                (void)close_file(L, p);
        return 0;
}

static int f_tostring(lua_State *L)
{
        IoFile *p = luaL_checkudata(L, 1, IO_FILE_MT);

        if (p->closed)
                lua_pushliteral(L, "file (closed)");
        else
                lua_pushfstring(L, "file (%p)", (void *)p);
        return 1;
}

/* The mode string of io.open: [rwa]%+?b* (liolib.c l_checkmode). Returns the
 * open(2) flags, or -1. */
static int mode_flags(const char *m)
{
        int flags;
        bool plus;

        switch (*m++) {
        case 'r':
                flags = 0;
                break;
        case 'w':
                flags = O_CREAT | O_TRUNC;
                break;
        case 'a':
                flags = O_CREAT | O_APPEND;
                break;
        default:
                return -1;
        }
        plus = *m == '+';
        if (plus)
                m++;
        while (*m == 'b')
                m++;
        if (*m)
                return -1;
        if (plus)
                flags |= O_RDWR;
        else
                flags |= (flags & O_CREAT) ? O_WRONLY : O_RDONLY;
        return flags;
}

/* Opens path with mode: pushes the handle and returns 1, or pushes the failure
 * (nil, message, errno) and returns 3. */
static int open_file(lua_State *L, const char *path, const char *mode)
{
        int flags = mode_flags(mode), fd;
        IoFile *p;
        char fm[4];

        luaL_argcheck(L, flags >= 0, 2, "invalid mode");
        luaL_argcheck(L, strlen(path) == lua_rawlen(L, 1) || lua_type(L, 1) != LUA_TSTRING, 1,
                      "path with a NUL byte");
        if (*open_count(L) >= IO_OPEN_MAX)
                return io_fail(L, path, -EMFILE);
        p = new_file(L, IO_KIND_FILE); /* before the fd: allocation may raise */
        p->closed = true;
        fd = open_app_path(L, path, flags);
        if (fd < 0) {
                lua_pop(L, 1);
                return io_fail(L, path, fd);
        }
        snprintf(fm, sizeof fm, "%c%s", mode[0], strchr(mode, '+') ? "+" : "");
        p->f = fdopen(fd, fm);
        if (!p->f) {
                int e = errno;

                close(fd);
                lua_pop(L, 1);
                return io_fail(L, path, -e);
        }
        p->closed = false;
        (*open_count(L))++;
        return 1;
}

/* ---- reading ------------------------------------------------------------------- */

/* The FILE of p to read from, or NULL for an empty stream (stdin in a packed
 * host). Raises if p cannot be read. */
static FILE *read_stream(lua_State *L, IoFile *p)
{
        if (p->kind == IO_KIND_FILE)
                return p->f;
        if (p->kind == IO_KIND_STDIN)
                return p->f;
        luaL_error(L, "file not open for reading");
        return NULL;
}

/* Reads a line into a new string (chop: without its '\n'). Returns whether
 * something was read (a line or its end). */
static bool read_line(lua_State *L, FILE *f, bool chop)
{
        luaL_Buffer b;
        int c = EOF;
        size_t n = 0;

        luaL_buffinit(L, &b);
        if (f) {
                while ((c = getc(f)) != EOF && c != '\n') {
                        luaL_addchar(&b, (char)c);
                        if (++n % 65536 == 0)
                                clua_poll(L);
                }
                if (c == '\n' && !chop)
                        luaL_addchar(&b, '\n');
        }
        luaL_pushresult(&b);
        return c == '\n' || lua_rawlen(L, -1) > 0;
}

static void read_all(lua_State *L, FILE *f)
{
        luaL_Buffer b;
        size_t n;

        luaL_buffinit(L, &b);
        if (f)
                do {
                        char *p = luaL_prepbuffsize(&b, 65536);

                        n = fread(p, 1, 65536, f);
                        luaL_addsize(&b, n);
                        clua_poll(L);
                } while (n == 65536);
        luaL_pushresult(&b);
}

static bool read_chars(lua_State *L, FILE *f, size_t n)
{
        luaL_Buffer b;
        size_t got = 0;

        luaL_buffinit(L, &b);
        while (f && got < n) {
                size_t want = n - got < 65536 ? n - got : 65536, r;
                char *p = luaL_prepbuffsize(&b, want);

                r = fread(p, 1, want, f);
                luaL_addsize(&b, r);
                got += r;
                clua_poll(L);
                if (r < want)
                        break;
        }
        luaL_pushresult(&b);
        return got > 0;
}

/* "n": liolib.c's read_number: reads the longest prefix of a numeral (at most
 * L_MAXLENNUM = 200 characters), optional sign, "0x", digits, point, exponent;
 * pushes the number, or fail if that prefix is not one. */
typedef struct RN {
        FILE *f;
        int c; /* the current character (look ahead) */
        int n; /* characters read */
        char buff[201];
} RN;

static bool nextc(RN *rn)
{
        if (rn->n >= (int)sizeof rn->buff - 1) {
                rn->buff[0] = '\0';
                return false;
        }
        rn->buff[rn->n++] = (char)rn->c;
        rn->c = getc(rn->f);
        return true;
}

static bool test2(RN *rn, const char *set)
{
        if (rn->c == set[0] || rn->c == set[1])
                return nextc(rn);
        return false;
}

static int readdigits(RN *rn, bool hex)
{
        int count = 0;

        while ((hex ? isxdigit(rn->c) : isdigit(rn->c)) && nextc(rn))
                count++;
        return count;
}

static bool read_number(lua_State *L, FILE *f)
{
        RN rn = {.f = f};
        int count = 0;
        bool hex = false;
        char decp[2] = {'.', '\0'};

        if (!f) {
                luaL_pushfail(L);
                return false;
        }
        do
                rn.c = getc(f);
        while (isspace(rn.c));
        test2(&rn, "-+");
        if (test2(&rn, "00")) {
                if (test2(&rn, "xX"))
                        hex = true;
                else
                        count = 1;
        }
        count += readdigits(&rn, hex);
        if (test2(&rn, decp))
                count += readdigits(&rn, hex);
        if (count > 0 && test2(&rn, hex ? "pP" : "eE")) {
                test2(&rn, "-+");
                readdigits(&rn, false);
        }
        ungetc(rn.c, f);
        rn.buff[rn.n] = '\0';
        if (lua_stringtonumber(L, rn.buff))
                return true;
        luaL_pushfail(L);
        return false;
}

/* liolib.c g_read: formats from index first on. */
static int g_read(lua_State *L, IoFile *p, int first)
{
        FILE *f = read_stream(L, p);
        int nargs = lua_gettop(L) - first + 1, n; /* the formats */
        bool ok = true;

        if (f)
                clearerr(f);
        if (nargs <= 0) {
                ok = read_line(L, f, true);
                n = first + 1;
        } else {
                luaL_checkstack(L, nargs + LUA_MINSTACK, "too many arguments");
                for (n = first; nargs-- > 0 && ok; n++) {
                        if (lua_type(L, n) == LUA_TNUMBER) {
                                lua_Integer l = luaL_checkinteger(L, n);

                                if (l <= 0) {
                                        int c = f ? getc(f) : EOF;

                                        if (c != EOF)
                                                ungetc(c, f);
                                        lua_pushliteral(L, "");
                                        ok = c != EOF;
                                } else
                                        ok = read_chars(L, f, (size_t)l);
                        } else {
                                const char *fmt = luaL_checkstring(L, n);

                                if (*fmt == '*')
                                        fmt++;
                                switch (*fmt) {
                                case 'n':
                                        ok = read_number(L, f);
                                        break;
                                case 'l':
                                        ok = read_line(L, f, true);
                                        break;
                                case 'L':
                                        ok = read_line(L, f, false);
                                        break;
                                case 'a':
                                        read_all(L, f);
                                        break;
                                default:
                                        return luaL_argerror(L, n, "invalid format");
                                }
                        }
                }
        }
        if (f && ferror(f))
                return io_fail(L, NULL, -errno);
        if (!ok) {
                lua_pop(L, 1);
                luaL_pushfail(L);
        }
        return n - first;
}

static int f_read(lua_State *L)
{
        return g_read(L, check_file(L, 1), 2);
}

/* ---- writing ------------------------------------------------------------------- */

/* Writes the arguments from arg on to p; pushes p (or the failure). */
static int g_write(lua_State *L, IoFile *p, int arg, int pidx)
{
        CLuaApp *app = clua_app_of(L);
        int nargs = lua_gettop(L) - arg + 1;

        if (p->kind == IO_KIND_STDIN)
                return io_fail(L, NULL, -EBADF);
        if (p->kind == IO_KIND_FILE) {
                bool ok = true;

                for (int i = arg; nargs-- > 0; i++) {
                        size_t l;
                        const char *s;

                        if (lua_type(L, i) == LUA_TNUMBER) {
                                if (lua_isinteger(L, i))
                                        ok = ok && fprintf(p->f, LUA_INTEGER_FMT,
                                                           (LUAI_UACINT)lua_tointeger(L, i)) > 0;
                                else
                                        ok = ok && fprintf(p->f, LUA_NUMBER_FMT,
                                                           (LUAI_UACNUMBER)lua_tonumber(L, i)) > 0;
                                continue;
                        }
                        s = luaL_checklstring(L, i, &l);
                        /* in pieces of 1 MiB, polling the budget between them */
                        for (size_t off = 0; ok && off < l; off += IO_WRITE_PIECE) {
                                size_t k = l - off < IO_WRITE_PIECE ? l - off : IO_WRITE_PIECE;

                                ok = fwrite(s + off, 1, k, p->f) == k;
                                clua_poll(L);
                        }
                }
                if (!ok)
                        return io_fail(L, NULL, -errno);
        } else {
                /* stdout/stderr: one write(2) of everything, as print. */
                luaL_Buffer b;
                const char *s;
                size_t len;
                int fd = p->kind == IO_KIND_STDOUT ? app->out_fd : app->err_fd;

                luaL_buffinit(L, &b);
                for (int i = arg; nargs-- > 0; i++) {
                        if (lua_type(L, i) == LUA_TNUMBER) {
                                /* liolib.c's formats: 3.0 is written "3", as
                                 * to a file (tostring would give "3.0") */
                                char num[64];
                                int n = lua_isinteger(L, i)
                                                ? snprintf(num, sizeof num, LUA_INTEGER_FMT,
                                                           (LUAI_UACINT)lua_tointeger(L, i))
                                                : snprintf(num, sizeof num, LUA_NUMBER_FMT,
                                                           (LUAI_UACNUMBER)lua_tonumber(L, i));

                                luaL_addlstring(&b, num, (size_t)n);
                                continue;
                        }
                        luaL_checkstring(L, i);
                        lua_pushvalue(L, i);
                        luaL_addvalue(&b);
                }
                luaL_pushresult(&b);
                s = lua_tolstring(L, -1, &len);
                clua_app_write(app, fd, s, len);
                lua_pop(L, 1);
        }
        lua_pushvalue(L, pidx);
        return 1;
}

static int f_write(lua_State *L)
{
        return g_write(L, check_file(L, 1), 2, 1);
}

/* ---- the other methods ----------------------------------------------------------- */

static int f_close(lua_State *L)
{
        IoFile *p = check_file(L, 1);
        int r;

        if (p->kind != IO_KIND_FILE) {
                luaL_pushfail(L);
                lua_pushliteral(L, "cannot close standard file");
                return 2;
        }
        r = close_file(L, p);
        if (r < 0)
                return io_fail(L, NULL, r);
        lua_pushboolean(L, 1);
        return 1;
}

static int f_flush(lua_State *L)
{
        IoFile *p = check_file(L, 1);

        if (p->kind == IO_KIND_FILE && fflush(p->f) != 0)
                return io_fail(L, NULL, -errno);
        lua_pushvalue(L, 1);
        return 1;
}

static int f_seek(lua_State *L)
{
        static const int mode[] = {SEEK_SET, SEEK_CUR, SEEK_END};
        static const char *const modenames[] = {"set", "cur", "end", NULL};
        IoFile *p = check_file(L, 1);
        int op = luaL_checkoption(L, 2, "cur", modenames);
        lua_Integer off = luaL_optinteger(L, 3, 0);
        off_t pos;

        if (p->kind != IO_KIND_FILE)
                return io_fail(L, NULL, -ESPIPE);
        if (fseeko(p->f, (off_t)off, mode[op]) != 0 || (pos = ftello(p->f)) < 0)
                return io_fail(L, NULL, -errno);
        lua_pushinteger(L, (lua_Integer)pos);
        return 1;
}

static int f_setvbuf(lua_State *L)
{
        static const int mode[] = {_IONBF, _IOFBF, _IOLBF};
        static const char *const modenames[] = {"no", "full", "line", NULL};
        IoFile *p = check_file(L, 1);
        int op = luaL_checkoption(L, 2, NULL, modenames);

        (void)luaL_optinteger(L, 3, LUAL_BUFFERSIZE);
        if (p->kind == IO_KIND_FILE && setvbuf(p->f, NULL, mode[op], 0) != 0)
                return io_fail(L, NULL, -errno);
        lua_pushboolean(L, 1);
        return 1;
}

/* The iterator of lines: upvalues 1 the file, 2 the count of formats, 3
 * whether to close at the end, 4.. the formats. */
static int io_readline(lua_State *L)
{
        IoFile *p = luaL_checkudata(L, lua_upvalueindex(1), IO_FILE_MT);
        int n = (int)lua_tointeger(L, lua_upvalueindex(2));

        if (p->closed)
                return luaL_error(L, "file is already closed");
        lua_settop(L, 1);
        luaL_checkstack(L, n, "too many arguments");
        for (int i = 1; i <= n; i++)
                lua_pushvalue(L, lua_upvalueindex(3 + i));
        n = g_read(L, p, 2);
        if (lua_toboolean(L, -n))
                return n;
        if (n > 1)
                return luaL_error(L, "%s", lua_tostring(L, -n + 1));
        if (lua_toboolean(L, lua_upvalueindex(3))) {
                lua_settop(L, 0);
                lua_pushvalue(L, lua_upvalueindex(1));
                (void)close_file(L, p);
        }
        return 0;
}

/* Pushes the lines iterator of the file at index 1 with the formats from 2 on. */
static void aux_lines(lua_State *L, bool toclose)
{
        int n = lua_gettop(L) - 1;

        luaL_argcheck(L, n <= 250, 252, "too many arguments");
        lua_pushvalue(L, 1);
        lua_pushinteger(L, n);
        lua_pushboolean(L, toclose);
        lua_rotate(L, 2, 3);
        lua_pushcclosure(L, io_readline, 3 + n);
}

static int f_lines(lua_State *L)
{
        check_file(L, 1);
        aux_lines(L, false);
        return 1;
}

/* ---- the io functions -------------------------------------------------------------- */

static IoFile *get_default(lua_State *L, const char *key)
{
        IoFile *p;

        lua_getfield(L, LUA_REGISTRYINDEX, key);
        p = lua_touserdata(L, -1);
        if (p->closed)
                luaL_error(L, "default %s file is closed",
                           strcmp(key, IO_INPUT_KEY) == 0 ? "input" : "output");
        return p;
}

static int io_open(lua_State *L)
{
        const char *path = luaL_checkstring(L, 1), *mode = luaL_optstring(L, 2, "r");

        return open_file(L, path, mode);
}

static int io_close(lua_State *L)
{
        if (lua_isnone(L, 1))
                lua_getfield(L, LUA_REGISTRYINDEX, IO_OUTPUT_KEY);
        return f_close(L);
}

static int io_read(lua_State *L)
{
        IoFile *p = get_default(L, IO_INPUT_KEY);

        lua_insert(L, 1);
        return g_read(L, p, 2);
}

static int io_write(lua_State *L)
{
        IoFile *p = get_default(L, IO_OUTPUT_KEY);

        lua_insert(L, 1);
        return g_write(L, p, 2, 1);
}

static int g_iofile(lua_State *L, const char *key, const char *mode)
{
        if (!lua_isnoneornil(L, 1)) {
                if (lua_type(L, 1) == LUA_TSTRING) {
                        const char *path = lua_tostring(L, 1);

                        if (open_file(L, path, mode) != 1)
                                return luaL_error(L, "%s", lua_tostring(L, -2));
                } else {
                        check_file(L, 1);
                        lua_pushvalue(L, 1);
                }
                lua_setfield(L, LUA_REGISTRYINDEX, key);
        }
        lua_getfield(L, LUA_REGISTRYINDEX, key);
        return 1;
}

static int io_input(lua_State *L)
{
        return g_iofile(L, IO_INPUT_KEY, "r");
}

static int io_output(lua_State *L)
{
        return g_iofile(L, IO_OUTPUT_KEY, "w");
}

static int io_lines(lua_State *L)
{
        bool toclose;

        if (lua_isnone(L, 1))
                lua_pushnil(L);
        if (lua_isnil(L, 1)) {
                lua_getfield(L, LUA_REGISTRYINDEX, IO_INPUT_KEY);
                lua_replace(L, 1);
                check_file(L, 1);
                toclose = false;
        } else {
                const char *path = luaL_checkstring(L, 1);

                if (open_file(L, path, "r") != 1)
                        return luaL_error(L, "%s", lua_tostring(L, -2));
                lua_replace(L, 1);
                toclose = true;
        }
        aux_lines(L, toclose);
        if (toclose) {
                lua_pushnil(L);
                lua_pushnil(L);
                lua_pushvalue(L, 1);
                return 4;
        }
        return 1;
}

static int io_type(lua_State *L)
{
        IoFile *p;

        luaL_checkany(L, 1);
        p = luaL_testudata(L, 1, IO_FILE_MT);
        if (!p)
                luaL_pushfail(L);
        else
                lua_pushstring(L, p->closed ? "closed file" : "file");
        return 1;
}

static const luaL_Reg io_fns[] = {
        {"close", io_close}, {"input", io_input},   {"lines", io_lines},
        {"open", io_open},   {"output", io_output}, {"read", io_read},
        {"type", io_type},   {"write", io_write},   {NULL, NULL},
};

static const luaL_Reg file_methods[] = {
        {"close", f_close}, {"flush", f_flush},     {"lines", f_lines}, {"read", f_read},
        {"seek", f_seek},   {"setvbuf", f_setvbuf}, {"write", f_write}, {NULL, NULL},
};

int clua_open_io(lua_State *L)
{
        CLuaApp *app = clua_app_of(L);
        IoFile *p;

        if (cella_lua_newclass(L, IO_FILE_MT)) {
                luaL_newlib(L, file_methods);
                lua_setfield(L, -2, "__index");
                lua_pushcfunction(L, f_gc);
                lua_setfield(L, -2, "__gc");
                lua_pushcfunction(L, f_gc);
                lua_setfield(L, -2, "__close");
                lua_pushcfunction(L, f_tostring);
                lua_setfield(L, -2, "__tostring");
        }
        lua_pop(L, 1);
        luaL_newlib(L, io_fns);
        p = new_file(L, IO_KIND_STDIN);
        /* the process's stdin only for an app alone in its host */
        if (!app->host || app->host->cap_apps <= 1)
                p->f = stdin;
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, IO_INPUT_KEY);
        lua_setfield(L, -2, "stdin");
        new_file(L, IO_KIND_STDOUT);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, IO_OUTPUT_KEY);
        lua_setfield(L, -2, "stdout");
        new_file(L, IO_KIND_STDERR);
        lua_setfield(L, -2, "stderr");
        return 1;
}
