/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.fs: files beneath the app's data directory.
 *
 * The data directory is opened once per lua_State (an O_PATH fd kept in a
 * userdata that is an upvalue of every function) and every path an app names is
 * resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) against it:
 * "..", absolute paths and symlinks that leave the directory fail with EXDEV in
 * the kernel, with no race between a check and the use. Packed mode shares one
 * mount jail between apps, so this is the wall between their files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/macro.h"
#include "lua/lua-modules.h"

/* Longest path an app may name, in bytes (names beneath /data stay short). */
#define FS_PATH_MAX 1024
/* Default and largest size of fs.read, and largest fs.write/append data, bytes. */
#define FS_IO_MAX (1024 * 1024)
/* Most entries fs.list returns; a larger directory is an error, not a partial list. */
#define FS_LIST_MAX 4096
/* Absolute name of the data directory when the host set none. */
#define FS_DEFAULT_ROOT "/data"

#define DATA_DIR_KEY "cella.datadir"
#define DIR_BOX_MT   "cella.fs.dirbox"
#define FD_BOX_MT    "cella.fs.fdbox"

typedef struct {
        int fd;
        char path[]; /* absolute, NUL-terminated */
} DataDir;

static int data_dir_gc(lua_State *L)
{
        DataDir *d = luaL_checkudata(L, 1, DATA_DIR_KEY);
        if (d->fd >= 0)
                close(d->fd);
        d->fd = -EBADF;
        return 0;
}

/* Pushes a new DataDir userdata owning fd (closed by __gc, also if this raises). */
static DataDir *data_dir_push(lua_State *L, int fd, const char *path)
{
        size_t n = strlen(path);
        DataDir *d;

        /* Allocation can raise: give the fd to the userdata only once it exists. */
        d = lua_newuserdatauv(L, sizeof(DataDir) + n + 1, 0);
        d->fd = fd;
        memcpy(d->path, path, n + 1);
        cella_lua_setclass_gc(L, DATA_DIR_KEY, data_dir_gc);
        return d;
}

int cella_lua_set_data_dir(lua_State *L, int dirfd, const char *path)
{
        int fd;

        if (!path || path[0] != '/' || strlen(path) > FS_PATH_MAX)
                return -EINVAL;
        if (lua_getfield(L, LUA_REGISTRYINDEX, DATA_DIR_KEY "/dir") != LUA_TNIL) {
                lua_pop(L, 1);
                return -EEXIST;
        }
        lua_pop(L, 1);
        fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        /* A memory error here leaks fd: the caller's state is unusable anyway. */
        data_dir_push(L, fd, path);
        lua_setfield(L, LUA_REGISTRYINDEX, DATA_DIR_KEY "/dir");
        return 0;
}

int cella_lua_data_dir(lua_State *L, const char **ret_path)
{
        DataDir *d;

        if (lua_getfield(L, LUA_REGISTRYINDEX, DATA_DIR_KEY "/dir") == LUA_TNIL) {
                int fd;

                lua_pop(L, 1);
                fd = open(FS_DEFAULT_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0)
                        return luaL_error(L, "cella: cannot open the data directory %s: %s",
                                          FS_DEFAULT_ROOT, strerror(errno));
                data_dir_push(L, fd, FS_DEFAULT_ROOT);
                lua_pushvalue(L, -1);
                lua_setfield(L, LUA_REGISTRYINDEX, DATA_DIR_KEY "/dir");
        }
        d = lua_touserdata(L, -1);
        if (ret_path)
                *ret_path = d->path;
        return d->fd;
}

static int root_fd(lua_State *L)
{
        return ((DataDir *)lua_touserdata(L, lua_upvalueindex(1)))->fd;
}

/* openat2 beneath dirfd; returns an fd or -errno. */
static int open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
        struct open_how how = {
                .flags = (unsigned long long)flags | O_CLOEXEC,
                .mode = (flags & O_CREAT) ? mode : 0,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        long fd;

        fd = RETRY_EINTR(syscall(SYS_openat2, dirfd, path, &how, sizeof how));
        return fd < 0 ? -errno : (int)fd;
}

static const char *errno_text(int r)
{
        if (r == -EXDEV)
                return "path escapes the data directory";
        return strerror(-r);
}

/* Checks argument i is a path an app may name and returns it. */
static const char *check_path(lua_State *L, int i)
{
        size_t n;
        const char *p = luaL_checklstring(L, i, &n);

        luaL_argcheck(L, n > 0, i, "empty path");
        luaL_argcheck(L, n <= FS_PATH_MAX, i, "path longer than 1024 bytes");
        luaL_argcheck(L, strlen(p) == n, i, "path contains a NUL byte");
        luaL_argcheck(L, p[0] != '/', i,
                      "absolute path (paths are relative to the data directory)");
        return p;
}

/*
 * Opens the parent directory of path beneath the root and copies the last
 * component into base (at most FS_PATH_MAX bytes). Returns the parent fd or
 * -errno; -EINVAL when the last component is ".", ".." or empty.
 */
static int open_parent(int root, const char *path, char base[static FS_PATH_MAX + 1])
{
        char parent[FS_PATH_MAX + 1];
        size_t n = strlen(path);
        const char *slash;

        while (n > 1 && path[n - 1] == '/')
                n--;
        memcpy(parent, path, n);
        parent[n] = 0;
        slash = strrchr(parent, '/');
        if (slash) {
                strcpy(base, slash + 1);
                parent[slash - parent] = 0;
                if (parent[0] == 0)
                        return -EXDEV; /* was absolute */
        } else {
                strcpy(base, parent);
                strcpy(parent, ".");
        }
        if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
                return -EINVAL;
        return open_beneath(root, parent, O_PATH | O_DIRECTORY, 0);
}

static int fs_fail(lua_State *L, const char *fn, const char *path, int r)
{
        return luaL_error(L, "cella.fs.%s: %s: %s", fn, path, errno_text(r));
}

static int fd_box_gc(lua_State *L)
{
        int *fd = luaL_checkudata(L, 1, FD_BOX_MT);
        if (*fd >= 0)
                close(*fd);
        *fd = -EBADF;
        return 0;
}

static void close_fd_box(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -EBADF;
}

/* Pushes a userdata that owns an fd (closed by __gc, so a memory error cannot leak it). */
static int *fd_box_push(lua_State *L)
{
        int *fd = lua_newuserdatauv(L, sizeof(int), 0);
        *fd = -EBADF;
        cella_lua_setclass_gc(L, FD_BOX_MT, fd_box_gc);
        return fd;
}

/* fs.read(path [, max]) -> string. Regular files only, at most max bytes (≤ 1 MiB). */
static int fs_read(lua_State *L)
{
        const char *path = check_path(L, 1);
        lua_Integer max = luaL_optinteger(L, 2, FS_IO_MAX);
        luaL_Buffer b;
        struct stat st;
        size_t got = 0;
        int *fd, r;

        luaL_argcheck(L, max >= 0 && max <= FS_IO_MAX, 2, "max must be 0..1048576 bytes");
        fd = fd_box_push(L);
        /* O_NONBLOCK: a FIFO planted in /data must not hang the host. */
        *fd = open_beneath(root_fd(L), path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
        if (*fd < 0)
                return fs_fail(L, "read", path, *fd);
        r = fstat(*fd, &st) < 0    ? -errno
            : S_ISDIR(st.st_mode)  ? -EISDIR
            : !S_ISREG(st.st_mode) ? -EINVAL
                                   : 0;
        if (r < 0) {
                close_fd_box(fd);
                return fs_fail(L, "read", path, r);
        }
        if (st.st_size > max) {
                close_fd_box(fd);
                return luaL_error(L, "cella.fs.read: %s: file larger than %d bytes", path,
                                  (int)max);
        }
        /* Read in chunks up to max + 1 bytes: a file that grows past max is refused too. */
        luaL_buffinit(L, &b);
        while (got <= (size_t)max) {
                size_t want = (size_t)max + 1 - got;
                char *p = luaL_prepbuffsize(&b, want < 65536 ? want : 65536);
                ssize_t k = RETRY_EINTR(read(*fd, p, want < 65536 ? want : 65536));
                if (k < 0) {
                        r = -errno;
                        close_fd_box(fd);
                        return fs_fail(L, "read", path, r);
                }
                if (k == 0)
                        break;
                luaL_addsize(&b, (size_t)k);
                got += (size_t)k;
        }
        /* Close now, not at the next GC: failing reads in a loop must not pile up fds. */
        close_fd_box(fd);
        if (got > (size_t)max)
                return luaL_error(L, "cella.fs.read: %s: file larger than %d bytes", path,
                                  (int)max);
        luaL_pushresult(&b);
        return 1;
}

static int write_common(lua_State *L, const char *fn, int flags)
{
        const char *path = check_path(L, 1);
        size_t n, off = 0;
        const char *data = luaL_checklstring(L, 2, &n);
        struct stat st;
        int fd, r = 0;

        luaL_argcheck(L, n <= FS_IO_MAX, 2, "data larger than 1048576 bytes");
        fd = open_beneath(root_fd(L), path, O_WRONLY | O_CREAT | O_NONBLOCK | O_NOCTTY | flags,
                          0600);
        if (fd < 0)
                return fs_fail(L, fn, path, fd);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return fs_fail(L, fn, path, -EINVAL);
        }
        while (off < n) {
                ssize_t k = RETRY_EINTR(write(fd, data + off, n - off));
                if (k < 0) {
                        r = -errno;
                        break;
                }
                off += (size_t)k;
        }
        if (close(fd) < 0 && r == 0 && errno != EINTR)
                r = -errno;
        if (r < 0)
                return fs_fail(L, fn, path, r);
        lua_pushboolean(L, 1);
        return 1;
}

/* fs.write(path, data) -> true. Creates (0600) or truncates; data ≤ 1 MiB. */
static int fs_write(lua_State *L)
{
        return write_common(L, "write", O_TRUNC);
}

/* fs.append(path, data) -> true. Creates (0600) or appends; data ≤ 1 MiB. */
static int fs_append(lua_State *L)
{
        return write_common(L, "append", O_APPEND);
}

/* fs.remove(path) -> true. A file, a symlink itself, or an empty directory. */
static int fs_remove(lua_State *L)
{
        const char *path = check_path(L, 1);
        char base[FS_PATH_MAX + 1];
        int pfd, r = 0;

        pfd = open_parent(root_fd(L), path, base);
        if (pfd < 0)
                return fs_fail(L, "remove", path, pfd);
        if (unlinkat(pfd, base, 0) < 0) {
                r = -errno;
                if (r == -EISDIR && unlinkat(pfd, base, AT_REMOVEDIR) == 0)
                        r = 0;
                else if (r == -EISDIR)
                        r = -errno;
        }
        close(pfd);
        if (r < 0)
                return fs_fail(L, "remove", path, r);
        lua_pushboolean(L, 1);
        return 1;
}

/* fs.mkdir(path) -> true if created, false if a directory of that name exists. */
static int fs_mkdir(lua_State *L)
{
        const char *path = check_path(L, 1);
        char base[FS_PATH_MAX + 1];
        struct stat st;
        int pfd, r = 0, created = 1;

        pfd = open_parent(root_fd(L), path, base);
        if (pfd < 0)
                return fs_fail(L, "mkdir", path, pfd);
        if (mkdirat(pfd, base, 0700) < 0) {
                r = -errno;
                if (r == -EEXIST && fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                    S_ISDIR(st.st_mode)) {
                        r = 0;
                        created = 0;
                }
        }
        close(pfd);
        if (r < 0)
                return fs_fail(L, "mkdir", path, r);
        lua_pushboolean(L, created);
        return 1;
}

/* fs.exists(path) -> boolean. A path that escapes is an error, not false. */
static int fs_exists(lua_State *L)
{
        const char *path = check_path(L, 1);
        int fd = open_beneath(root_fd(L), path, O_PATH, 0);

        if (fd == -ENOENT || fd == -ENOTDIR) {
                lua_pushboolean(L, 0);
                return 1;
        }
        if (fd < 0)
                return fs_fail(L, "exists", path, fd);
        close(fd);
        lua_pushboolean(L, 1);
        return 1;
}

static int dir_box_gc(lua_State *L)
{
        DIR **d = luaL_checkudata(L, 1, DIR_BOX_MT);
        if (*d)
                closedir(*d);
        *d = NULL;
        return 0;
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* fs.list([dir]) -> sorted array of names (no "." or ".."), at most 4096. */
static int fs_list(lua_State *L)
{
        const char *path = lua_isnoneornil(L, 1) ? "." : check_path(L, 1);
        struct dirent *de;
        DIR **box;
        int fd, n = 0;

        fd = open_beneath(root_fd(L), path, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0)
                return fs_fail(L, "list", path, fd);
        /* The DIR lives in a userdata so a memory error while pushing names closes it. */
        box = lua_newuserdatauv(L, sizeof(DIR *), 0);
        *box = NULL;
        cella_lua_setclass_gc(L, DIR_BOX_MT, dir_box_gc);
        *box = fdopendir(fd);
        if (!*box) {
                int r = -errno;
                close(fd);
                return fs_fail(L, "list", path, r);
        }
        lua_createtable(L, 16, 0);
        while ((errno = 0, de = readdir(*box))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (n == FS_LIST_MAX) {
                        closedir(*box);
                        *box = NULL;
                        return luaL_error(L, "cella.fs.list: %s: more than %d entries", path,
                                          FS_LIST_MAX);
                }
                lua_pushstring(L, de->d_name);
                lua_rawseti(L, -2, ++n);
        }
        closedir(*box);
        *box = NULL;
        /* Sort: order from readdir is the filesystem's, not something to rely on. */
        {
                const char **names = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n ? n : 1), 0);
                for (int i = 0; i < n; i++) {
                        lua_rawgeti(L, -2, i + 1);
                        names[i] = lua_tostring(L, -1);
                        lua_pop(L, 1); /* still referenced by the table */
                }
                qsort(names, (size_t)n, sizeof(char *), name_cmp);
                lua_createtable(L, n, 0);
                for (int i = 0; i < n; i++) {
                        lua_pushstring(L, names[i]);
                        lua_rawseti(L, -2, i + 1);
                }
        }
        return 1;
}

static const luaL_Reg fs_funcs[] = {
        {"read", fs_read},   {"write", fs_write},   {"append", fs_append}, {"remove", fs_remove},
        {"mkdir", fs_mkdir}, {"exists", fs_exists}, {"list", fs_list},     {NULL, NULL},
};

int luaopen_cella_fs(lua_State *L)
{
        luaL_newlibtable(L, fs_funcs);
        cella_lua_data_dir(L, NULL);
        luaL_setfuncs(L, fs_funcs, 1);
        return 1;
}
