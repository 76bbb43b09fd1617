/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/socket.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fdpass.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/size.h"
#include "base/sqlite-util.h"
#include "base/statedir.h"
#include "base/strv.h"
#include "base/suggest.h"
#include "base/termsafe.h"
#include "base/tree-usage.h"
#include "base/utf8.h"

START_TEST(test_parse_size)
{
        static const struct {
                const char *s;
                int r;
                uint64_t v;
        } cases[] = {
                {"0", 0, 0},
                {"4096", 0, 4096},
                {"4096B", 0, 4096},
                {"1K", 0, 1024},
                {"64M", 0, 64ull << 20},
                {"64MiB", 0, 64ull << 20},
                {"64m", 0, 64ull << 20},
                {"2G", 0, 2ull << 30},
                {"1T", 0, 1ull << 40},
                {"18446744073709551615", 0, UINT64_MAX},
                {"18446744073709551616", -ERANGE, 0},
                {"16777216T", -ERANGE, 0},
                {"", -EINVAL, 0},
                {"-1", -EINVAL, 0},
                {"1.5G", -EINVAL, 0},
                {" 1G", -EINVAL, 0},
                {"1 G", -EINVAL, 0},
                {"1X", -EINVAL, 0},
                {"1GB", 0, 1ull << 30},
                {"1GiBx", -EINVAL, 0},
                {"M", -EINVAL, 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t v = 12345;
                int r = parse_size(cases[i].s, &v);

                ck_assert_msg(r == cases[i].r, "parse_size(\"%s\") = %d, want %d", cases[i].s, r,
                              cases[i].r);
                if (r == 0)
                        ck_assert_msg(v == cases[i].v, "parse_size(\"%s\") value %llu", cases[i].s,
                                      (unsigned long long)v);
                else
                        ck_assert_msg(v == 12345, "parse_size wrote its output on failure");
        }
}
END_TEST

START_TEST(test_format_size)
{
        char buf[24];

        ck_assert_str_eq(format_size(0, buf, sizeof buf), "0");
        ck_assert_str_eq(format_size(100, buf, sizeof buf), "100");
        ck_assert_str_eq(format_size(1536 * 1024, buf, sizeof buf), "1536K");
        ck_assert_str_eq(format_size(64ull << 20, buf, sizeof buf), "64M");
        ck_assert_str_eq(format_size(3ull << 40, buf, sizeof buf), "3T");
}
END_TEST

START_TEST(test_strv)
{
        _cleanup_strv_free_ char **l = NULL;

        ck_assert_uint_eq(strv_length(l), 0);
        ck_assert_int_eq(strv_extend(&l, "a"), 0);
        ck_assert_int_eq(strv_extendf(&l, "%s=%d", "b", 2), 0);
        ck_assert_uint_eq(strv_length(l), 2);
        ck_assert_str_eq(l[0], "a");
        ck_assert_str_eq(l[1], "b=2");
        ck_assert_ptr_null(l[2]);
}
END_TEST

START_TEST(test_read_file_bounded)
{
        char path[] = "/tmp/cella-test-XXXXXX";
        _cleanup_close_ int fd = mkstemp(path);
        _cleanup_free_ char *data = NULL;
        size_t size = 0;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, "hello world", 11), 0);
        ck_assert_int_eq(read_file_at(AT_FDCWD, path, 11, &data, &size), 0);
        ck_assert_uint_eq(size, 11);
        ck_assert_str_eq(data, "hello world");
        free(TAKE_PTR(data));
        /* One byte over the bound is refused, and nothing is returned. */
        ck_assert_int_eq(read_file_at(AT_FDCWD, path, 10, &data, &size), -EFBIG);
        ck_assert_ptr_null(data);
        ck_assert_int_eq(read_file_at(AT_FDCWD, "/nonexistent/x", 10, &data, &size), -ENOENT);
        unlink(path);
}
END_TEST

START_TEST(test_mkdir_p)
{
        char base[] = "/tmp/cella-test-XXXXXX";
        char path[256];

        ck_assert_ptr_nonnull(mkdtemp(base));
        snprintf(path, sizeof path, "%s/a/b/c", base);
        ck_assert_int_eq(mkdir_p(path, 0755), 0);
        ck_assert_int_eq(access(path, F_OK), 0);
        ck_assert_int_eq(mkdir_p(path, 0755), 0); /* exists: fine */
        snprintf(path, sizeof path, "rm -rf %s", base);
        ck_assert_int_eq(system(path), 0);
}
END_TEST

/* Writes n bytes of 'x' to dir/name. */
static void write_bytes(const char *dir, const char *name, size_t n)
{
        char path[256], buf[4096];
        int fd;

        memset(buf, 'x', sizeof buf);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        for (size_t off = 0; off < n; off += sizeof buf)
                ck_assert_int_eq(write(fd, buf, MIN(sizeof buf, n - off)),
                                 (ssize_t)MIN(sizeof buf, n - off));
        ck_assert_int_eq(fsync(fd), 0);
        close(fd);
}

static TreeUsage usage_of(const char *dir, uint64_t entries_max, unsigned depth_max, uint64_t min)
{
        struct stat st;
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        TreeUsage u;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        u = (TreeUsage){.dev = st.st_dev,
                        .entries_max = entries_max,
                        .depth_max = depth_max,
                        .entry_bytes_min = min};
        tree_usage_walk(&u, fd);
        return u;
}

/* du's measure: every entry's blocks, a subdirectory entered, a symlink to a big tree
 * outside counted as itself, not followed; the bounds truncate. */
/* path_is_canonical() says yes only where realpath() would give the path back, and
 * path_canonicalize() gives realpath()'s answer either way: a symlink anywhere on
 * the path (an attacker's component) is resolved, never taken as it is. */
START_TEST(test_path_canonical)
{
        char top[] = "/tmp/test-canon-XXXXXX", p[256], link[256], *r = NULL, *want = NULL;

        ck_assert_ptr_nonnull(mkdtemp(top));
        want = realpath(top, NULL); /* /tmp itself may be a symlink somewhere */
        ck_assert_ptr_nonnull(want);
        snprintf(p, sizeof p, "%s/a/b", want);
        ck_assert_int_eq(mkdir_p(p, 0755), 0);
        ck_assert_int_eq(path_is_canonical(p), 1);
        ck_assert_int_eq(path_is_canonical("/"), 1);
        ck_assert_int_eq(path_canonicalize(p, &r), 0);
        ck_assert_str_eq(r, p);
        free(r);

        /* Not canonical: ".", "..", "//", a trailing '/', relative. */
        snprintf(p, sizeof p, "%s/a/./b", want);
        ck_assert_int_eq(path_is_canonical(p), 0);
        snprintf(p, sizeof p, "%s/a/../a/b", want);
        ck_assert_int_eq(path_is_canonical(p), 0);
        ck_assert_int_eq(path_canonicalize(p, &r), 0);
        snprintf(p, sizeof p, "%s/a/b", want);
        ck_assert_str_eq(r, p);
        free(r);
        snprintf(p, sizeof p, "%s/a//b", want);
        ck_assert_int_eq(path_is_canonical(p), 0);
        snprintf(p, sizeof p, "%s/a/b/", want);
        ck_assert_int_eq(path_is_canonical(p), 0);
        ck_assert_int_eq(path_is_canonical("tmp"), 0);
        snprintf(p, sizeof p, "%s/a/missing", want);
        ck_assert_int_eq(path_is_canonical(p), -ENOENT);
        ck_assert_int_eq(path_canonicalize(p, &r), -ENOENT);

        /* A symlink as the last component and in the middle: resolved. */
        snprintf(link, sizeof link, "%s/l", want);
        ck_assert_int_eq(symlink("a", link), 0);
        snprintf(p, sizeof p, "%s/l/b", want);
        ck_assert_int_eq(path_is_canonical(p), 0);
        ck_assert_int_eq(path_is_canonical(link), 0);
        ck_assert_int_eq(path_canonicalize(p, &r), 0);
        snprintf(p, sizeof p, "%s/a/b", want);
        ck_assert_str_eq(r, p);
        free(r);
        snprintf(link, sizeof link, "%s/a/c", want);
        ck_assert_int_eq(symlink("/", link), 0);
        ck_assert_int_eq(path_is_canonical(link), 0);
        ck_assert_int_eq(path_canonicalize(link, &r), 0);
        ck_assert_str_eq(r, "/");
        free(r);
        snprintf(p, sizeof p, "rm -rf %s", want);
        ck_assert_int_eq(system(p), 0);
        free(want);
}
END_TEST

START_TEST(test_tree_usage)
{
        char dir[] = "/tmp/cella-test-XXXXXX", outside[] = "/tmp/cella-test-XXXXXX", path[256];
        struct stat a, b;
        TreeUsage u;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        ck_assert_ptr_nonnull(mkdtemp(outside));
        write_bytes(outside, "big", 1 << 20);
        write_bytes(dir, "a", 100000);
        snprintf(path, sizeof path, "%s/sub", dir);
        ck_assert_int_eq(mkdir(path, 0700), 0);
        write_bytes(path, "b", 50000);
        snprintf(path, sizeof path, "%s/link", dir);
        ck_assert_int_eq(symlink(outside, path), 0);

        snprintf(path, sizeof path, "%s/a", dir);
        ck_assert_int_eq(stat(path, &a), 0);
        snprintf(path, sizeof path, "%s/sub/b", dir);
        ck_assert_int_eq(stat(path, &b), 0);

        u = usage_of(dir, 0, 64, 0);
        ck_assert_uint_eq(u.entries, 4); /* a, sub, sub/b, link */
        ck_assert(!u.truncated);
        ck_assert_uint_ge(u.bytes, (uint64_t)(a.st_blocks + b.st_blocks) * 512);
        ck_assert_uint_lt(u.bytes, 1 << 20); /* the symlink's target is not in it */

        u = usage_of(dir, 0, 1, 0); /* sub is not entered */
        ck_assert_uint_eq(u.entries, 3);
        ck_assert(u.truncated);
        u = usage_of(dir, 2, 64, 0);
        ck_assert_uint_eq(u.entries, 2);
        ck_assert(u.truncated);
        u = usage_of(dir, 0, 64, 1 << 20); /* each entry at least 1 MiB */
        ck_assert_uint_eq(u.bytes, 4ull << 20);

        snprintf(path, sizeof path, "rm -rf %s %s", dir, outside);
        ck_assert_int_eq(system(path), 0);
}
END_TEST

/*
 * entries_max bounds what readdir gives, not what fstatat sees: a directory whose
 * entries the walker can list but not stat (mode 0444, searched by an unprivileged
 * uid; in an app's /data, entries removed between readdir and fstatat) is cut at
 * the bound too, so an app churning its files cannot keep a bounded walk going.
 */
START_TEST(test_tree_usage_bound_unstattable)
{
        char dir[] = "/tmp/cella-test-XXXXXX", path[256];
        siginfo_t si = {};
        pid_t pid;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        for (int i = 0; i < 64; i++) {
                snprintf(path, sizeof path, "f%02d", i);
                write_bytes(dir, path, 1);
        }
        ck_assert_int_eq(chmod(dir, 0755), 0); /* mkdtemp's 0700: others may not list */
        snprintf(path, sizeof path, "%s/locked", dir);
        ck_assert_int_eq(mkdir(path, 0700), 0);
        for (int i = 0; i < 64; i++) {
                char name[8];

                snprintf(name, sizeof name, "g%02d", i);
                write_bytes(path, name, 1);
        }
        ck_assert_int_eq(chmod(path, 0444), 0); /* listable, not searchable */

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct stat st;
                TreeUsage u;
                int fd;

                if (geteuid() == 0 &&
                    (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
                     setresuid(65534, 65534, 65534) < 0))
                        _exit(10);
                fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0 || fstat(fd, &st) < 0)
                        _exit(11);
                if (fstatat(fd, "g00", &st, AT_SYMLINK_NOFOLLOW) == 0)
                        _exit(12); /* the setup failed: the entries can be stat'ed */
                u = (TreeUsage){.dev = st.st_dev, .entries_max = 8, .depth_max = 64};
                tree_usage_walk(&u, fd);
                if (u.entries != 0)
                        _exit(13);
                if (!u.truncated)
                        _exit(14); /* read every entry: the bound did not hold */
                if (u.visited != 8)
                        _exit(15);
                _exit(0);
        }
        ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED), 0);
        ck_assert_int_eq(si.si_code, CLD_EXITED);
        ck_assert_msg(si.si_status == 0, "walker child failed with %d", si.si_status);

        snprintf(path, sizeof path, "rm -rf %s", dir);
        ck_assert_int_eq(system(path), 0);
}
END_TEST

/* The test migration: from 0 makes table t, from 1 adds column b; from 9 fails. */
static int test_migrate(sqlite3 *db, int from, void *userdata)
{
        int *calls = userdata;

        (*calls)++;
        if (from == 0)
                return sqlite_exec(db, "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER, b TEXT);"
                                       "PRAGMA user_version = 2;");
        if (from == 1)
                return sqlite_exec(db, "ALTER TABLE t ADD COLUMN b TEXT; PRAGMA user_version = 2;");
        return -ENOTRECOVERABLE;
}

START_TEST(test_sqlite_schema)
{
        char dir[] = "/tmp/cella-test-XXXXXX", path[128];
        sqlite3 *db = NULL;
        struct stat st;
        int calls = 0;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/t.db", dir);
        ck_assert_int_eq(sqlite_open(path, 100, &db), 0);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_int_eq(sqlite_user_version(db), 0);
        ck_assert_int_eq(sqlite_schema_ensure(db, 2, test_migrate, &calls), 0);
        ck_assert_int_eq(calls, 1);
        ck_assert_int_eq(sqlite_user_version(db), 2);
        ck_assert_int_eq(sqlite_schema_ensure(db, 2, test_migrate, &calls), 0);
        ck_assert_int_eq(calls, 1); /* current: not called again */

        /* An older file is upgraded; a failed upgrade leaves it as it was. */
        ck_assert_int_eq(sqlite_exec(db, "DROP TABLE t; CREATE TABLE t (k TEXT PRIMARY KEY, "
                                         "v INTEGER); PRAGMA user_version = 1;"),
                         0);
        ck_assert_int_eq(sqlite_tx_begin(db, false, 2, test_migrate, &calls), 0);
        ck_assert_int_eq(sqlite_tx_end(db, 0), 0);
        ck_assert_int_eq(calls, 2);
        ck_assert_int_eq(sqlite_run(db, "INSERT INTO t (k, b) VALUES ('x', 'y')", NULL, 0), 1);
        ck_assert_int_eq(sqlite_exec(db, "PRAGMA user_version = 9"), 0);
        ck_assert_int_eq(sqlite_schema_ensure(db, 10, test_migrate, &calls), -ENOTRECOVERABLE);
        ck_assert_int_eq(sqlite_user_version(db), 9);
        /* A newer file is refused, by the reader as by the opener. */
        ck_assert_int_eq(sqlite_schema_ensure(db, 2, test_migrate, &calls), -EPROTONOSUPPORT);
        ck_assert_int_eq(sqlite_tx_begin(db, true, 2, test_migrate, &calls), -EPROTONOSUPPORT);
        ck_assert_int_eq(sqlite_exec(db, "BEGIN"), 0); /* no transaction was left open */
        ck_assert_int_eq(sqlite_exec(db, "ROLLBACK"), 0);
        sqlite3_close(db);
        ck_assert_int_eq(sqlite_open("/nonexistent/dir/t.db", 100, &db), -ENOENT);
        snprintf(path, sizeof path, "rm -rf %s", dir);
        ck_assert_int_eq(system(path), 0);
}
END_TEST

/*
 * A database path that is a symlink (planted in a state directory) is refused: root
 * neither chmods its target nor lets SQLite write there, and a dangling one creates
 * nothing. A file SQLite would have made 0644 is 0600 at once (umask 0), an existing
 * 0644 one becomes 0600, and a directory or FIFO is refused.
 */
/* A state directory is trusted only when nobody but us (or root, above it) could
 * have written it or the path to it (base/statedir.h). */
START_TEST(test_state_dir_open)
{
        char dir[] = "/tmp/cella-test-XXXXXX", path[192], file[224];
        struct stat st = {};
        mode_t old_umask;
        int fd;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        ck_assert_int_eq(chmod(dir, 0755), 0);

        /* Missing: made (last component only), 0711, and opened. */
        snprintf(path, sizeof path, "%s/state", dir);
        old_umask = umask(022);
        fd = state_dir_open(path, true);
        umask(old_umask);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0711);
        close(fd);
        fd = state_dir_open(path, false); /* and again, as it is now */
        ck_assert_int_ge(fd, 0);
        close(fd);

        /* A missing parent is not made (a typo makes no tree). */
        snprintf(path, sizeof path, "%s/typo/state", dir);
        ck_assert_int_eq(state_dir_open(path, true), -ENOENT);
        snprintf(path, sizeof path, "%s/typo", dir);
        ck_assert_int_eq(access(path, F_OK), -1);
        /* Missing without create: -ENOENT, nothing made. */
        snprintf(path, sizeof path, "%s/absent", dir);
        ck_assert_int_eq(state_dir_open(path, false), -ENOENT);
        ck_assert_int_eq(access(path, F_OK), -1);

        /* Group- or world-writable: refused, with create or without. */
        snprintf(path, sizeof path, "%s/gw", dir);
        ck_assert_int_eq(mkdir(path, 0700), 0);
        ck_assert_int_eq(chmod(path, 0770), 0);
        ck_assert_int_eq(state_dir_open(path, true), -EPERM);
        ck_assert_int_eq(state_dir_open(path, false), -EPERM);
        ck_assert_int_eq(chmod(path, 0703), 0);
        ck_assert_int_eq(state_dir_open(path, true), -EPERM);
        /* ... and nothing was written in it. */
        snprintf(file, sizeof file, "%s/gw/run", dir);
        ck_assert_int_eq(access(file, F_OK), -1);

        /* A symlink, even to a good state dir, is not followed; nor a dangling one
         * (mkdir would have made its target). */
        snprintf(path, sizeof path, "%s/link", dir);
        snprintf(file, sizeof file, "%s/state", dir);
        ck_assert_int_eq(symlink(file, path), 0);
        ck_assert_int_eq(state_dir_open(path, true), -ELOOP);
        snprintf(path, sizeof path, "%s/dangling", dir);
        snprintf(file, sizeof file, "%s/made-through-link", dir);
        ck_assert_int_eq(symlink(file, path), 0);
        ck_assert_int_eq(state_dir_open(path, true), -ELOOP);
        ck_assert_int_eq(access(file, F_OK), -1);

        /* Not a directory. */
        snprintf(path, sizeof path, "%s/file", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_int_eq(state_dir_open(path, true), -ENOTDIR);

        /* A parent others may write (not sticky): refused before anything is made in
         * it; sticky (as /tmp) is fine. */
        snprintf(path, sizeof path, "%s/open", dir);
        ck_assert_int_eq(mkdir(path, 0700), 0);
        ck_assert_int_eq(chmod(path, 0777), 0);
        snprintf(path, sizeof path, "%s/open/state", dir);
        ck_assert_int_eq(state_dir_open(path, true), -EPERM);
        ck_assert_int_eq(access(path, F_OK), -1);
        snprintf(path, sizeof path, "%s/open", dir);
        ck_assert_int_eq(chmod(path, 01777), 0);
        snprintf(path, sizeof path, "%s/open/state", dir);
        fd = state_dir_open(path, true);
        ck_assert_int_ge(fd, 0);
        close(fd);
        /* Deeper: a world-writable grandparent is refused as well. */
        snprintf(path, sizeof path, "%s/open", dir);
        ck_assert_int_eq(chmod(path, 0777), 0);
        snprintf(path, sizeof path, "%s/open/state", dir);
        ck_assert_int_eq(state_dir_open(path, false), -EPERM);

        /* Someone else's: refused (the check itself, on any uid but ours). */
        st = (struct stat){.st_uid = geteuid() + 1, .st_mode = S_IFDIR | 0711};
        ck_assert_int_eq(owned_check("/elsewhere", &st), -EPERM);
        st.st_uid = geteuid();
        ck_assert_int_eq(owned_check("/elsewhere", &st), 0);
        st.st_mode = S_IFDIR | 0731;
        ck_assert_int_eq(owned_check("/elsewhere", &st), -EPERM);

        ck_assert_int_eq(state_dir_open("", true), -EINVAL);
        ck_assert_int_eq(state_dir_open(NULL, true), -EINVAL);

        {
                char cmd[256];

                snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
                ck_assert_int_eq(system(cmd), 0);
        }
}
END_TEST

START_TEST(test_sqlite_open_refuses_symlinks)
{
        char dir[] = "/tmp/cella-test-XXXXXX", path[128], target[128], buf[32] = "";
        sqlite3 *db = NULL;
        struct stat st;
        mode_t old_umask;
        int fd;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(target, sizeof target, "%s/victim", dir);
        fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "not a database\n", 15), 15);
        close(fd);
        ck_assert_int_eq(chmod(target, 0644), 0);

        snprintf(path, sizeof path, "%s/grants.db", dir);
        ck_assert_int_eq(symlink(target, path), 0);
        ck_assert_int_eq(sqlite_open(path, 100, &db), -ELOOP);
        ck_assert_ptr_null(db);
        ck_assert_int_eq(stat(target, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0644); /* not chmodded through the link */
        ck_assert_int_eq(st.st_size, 15);
        fd = open(target, O_RDONLY | O_CLOEXEC);
        ck_assert_int_eq(read(fd, buf, sizeof buf - 1), 15);
        close(fd);
        ck_assert_str_eq(buf, "not a database\n");

        /* A dangling link: its target is not created. */
        ck_assert_int_eq(unlink(path), 0);
        snprintf(target, sizeof target, "%s/made", dir);
        ck_assert_int_eq(symlink(target, path), 0);
        ck_assert_int_eq(sqlite_open(path, 100, &db), -ELOOP);
        ck_assert_int_eq(access(target, F_OK), -1);
        ck_assert_int_eq(unlink(path), 0);

        /* Created 0600 even under umask 0; an existing 0644 file is made 0600. */
        old_umask = umask(0);
        ck_assert_int_eq(sqlite_open(path, 100, &db), 0);
        umask(old_umask);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_int_eq(sqlite_exec(db, "CREATE TABLE t (k TEXT)"), 0);
        sqlite3_close(db);
        ck_assert_int_eq(chmod(path, 0644), 0);
        ck_assert_int_eq(sqlite_open(path, 100, &db), 0);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        sqlite3_close(db);

        /* Not a regular file. */
        snprintf(path, sizeof path, "%s/fifo.db", dir);
        ck_assert_int_eq(mkfifo(path, 0600), 0);
        ck_assert_int_eq(sqlite_open(path, 100, &db), -EINVAL);
        ck_assert_int_eq(sqlite_open(dir, 100, &db), -EISDIR);

        snprintf(path, sizeof path, "rm -rf %s", dir);
        ck_assert_int_eq(system(path), 0);
}
END_TEST

START_TEST(test_sqlite_select_one)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        sqlite3 *db = NULL;

        ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
        ck_assert_int_eq(sqlite_exec(db, "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER, n TEXT)"),
                         0);
        ck_assert_int_eq(sqlite_run(db, "INSERT INTO t VALUES (?1, ?2, ?3)",
                                    SQL_ARGS(SQL_TEXT("a"), SQL_INT(UINT32_MAX), SQL_TEXT(NULL))),
                         1);
        ck_assert_int_eq(sqlite_run(db, "INSERT INTO t VALUES (?1, ?2, ?3)",
                                    SQL_ARGS(SQL_TEXT("b"), SQL_INT(-5), SQL_TEXT("x"))),
                         1);
        ck_assert_int_eq(sqlite_select_one(db, "SELECT v, n FROM t WHERE k = ?1",
                                           SQL_ARGS(SQL_TEXT("a")), &st),
                         1);
        ck_assert_int_eq(sqlite3_column_int64(st, 0), (int64_t)UINT32_MAX);
        ck_assert_int_eq(sqlite3_column_type(st, 1), SQLITE_NULL); /* NULL text binds NULL */
        sqlite3_finalize(TAKE_PTR(st));
        ck_assert_int_eq(sqlite_select_one(db, "SELECT v FROM t WHERE k = ?1",
                                           SQL_ARGS(SQL_TEXT("zz")), &st),
                         0);
        ck_assert_ptr_null(st);
        /* More parameters than the statement has, and bad SQL, are -EIO, nothing leaks. */
        ck_assert_int_eq(sqlite_select_one(db, "SELECT v FROM t WHERE k = ?1",
                                           SQL_ARGS(SQL_TEXT("a"), SQL_INT(1)), &st),
                         -EIO);
        ck_assert_int_eq(sqlite_run(db, "UPDATE nope SET v = 1", NULL, 0), -EIO);
        ck_assert_int_eq(sqlite_run(db, "UPDATE t SET v = v + 1", NULL, 0), 2);
        ck_assert_int_eq(sqlite_run(db, "DELETE FROM t WHERE k = ?1", SQL_ARGS(SQL_TEXT("q"))), 0);
        sqlite3_close(db);
}
END_TEST

/* Renders in whole through termsafe_stream() and _end() into a NUL-terminated
 * static buffer. */
static const char *render(const char *in, size_t n)
{
        static char out[4096];
        TermSafe t = {};
        size_t o;

        ck_assert(TERMSAFE_STREAM_OUT(n) + 16 < sizeof out);
        o = termsafe_stream(&t, in, n, out);
        o += termsafe_stream_end(&t, out + o);
        out[o] = 0;
        return out;
}

START_TEST(test_termsafe_stream)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
                /* text, any script, is kept; so are \n and \t */
                {"hello, w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89\n\tok\n",
                 "hello, w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89\n\tok\n"},
                /* OSC 52 (clipboard write), title, CSI, device status query: inert text */
                {"\x1b]52;c;SGVsbG8=\x07", "^[]52;c;SGVsbG8=^G"},
                {"\x1b]0;pwned\x1b\\", "^[]0;pwned^[\\"},
                {"\x1b[2J\x1b[1;1H\x1b[6n", "^[[2J^[[1;1H^[[6n"},
                /* C1 CSI and OSC in UTF-8, bidi override and isolate, BOM */
                {"\xc2\x9b"
                 "31m",
                 "\\u009b31m"},
                {"\xc2\x9d"
                 "0;x\xc2\x9c",
                 "\\u009d0;x\\u009c"},
                {"a\xe2\x80\xae"
                 "b\xe2\x81\xa6"
                 "c\xef\xbb\xbf",
                 "a\\u202eb\\u2066c\\ufeff"},
                /* other C0 controls and DEL in caret notation */
                {"\x08\x7f\x01\x1a", "^H^?^A^Z"},
                /* CR: kept before LF only */
                {"a\r\nb", "a\r\nb"},
                {"a\rb", "a^Mb"},
                {"a\r\r\n", "a^M\r\n"},
                {"a\r", "a^M"},
                /* invalid UTF-8: overlong, surrogate, above U+10FFFF, stray bytes, cut */
                {"\xc0\xaf", "\\xc0\\xaf"},
                {"\xed\xa0\x80", "\\xed\\xa0\\x80"},
                {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},
                {"\xff"
                 "a\x80",
                 "\\xffa\\x80"},
                {"\xe6\x97", "\\xe6\\x97"},
                {"\xe6\x97"
                 "a",
                 "\\xe6\\x97a"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *got = render(cases[i].in, strlen(cases[i].in));

                ck_assert_msg(strcmp(got, cases[i].out) == 0, "case %zu: got \"%s\", want \"%s\"",
                              i, got, cases[i].out);
        }
        /* NUL is a control like the others */
        ck_assert_str_eq(render("a\0b", 3), "a^@b");
}
END_TEST

/* Whatever the bytes and however they are cut into chunks: the output is the same
 * as for the whole, valid UTF-8, and holds no byte a terminal acts on but \n, \t
 * and a CR right before LF; no C1 and no bidi control either. */
START_TEST(test_termsafe_stream_random)
{
        static const unsigned char alphabet[] = {
                0x00, 0x07, 0x08, 0x09, 0x0a, 0x0d, 0x1b, '[',  ']',  'a',
                '\\', 0x7f, 0x80, 0x9b, 0x9c, 0xa0, 0xae, 0xbf, 0xc2, 0xc3,
                0xe0, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x81, 0xa6,
        };
        unsigned seed = 12345;

        for (int round = 0; round < 3000; round++) {
                char in[48], whole[TERMSAFE_STREAM_OUT(48) + 16],
                        parts[TERMSAFE_STREAM_OUT(48) + 64];
                size_t n = (size_t)(rand_r(&seed) % sizeof in), w, o = 0;
                TermSafe t = {};

                for (size_t i = 0; i < n; i++)
                        in[i] = (char)alphabet[rand_r(&seed) % sizeof alphabet];
                w = termsafe_stream(&t, in, n, whole);
                w += termsafe_stream_end(&t, whole + w);
                for (size_t i = 0; i < n;) {
                        size_t k = 1 + (size_t)rand_r(&seed) % 3;

                        if (k > n - i)
                                k = n - i;
                        o += termsafe_stream(&t, in + i, k, parts + o);
                        i += k;
                }
                o += termsafe_stream_end(&t, parts + o);
                ck_assert_msg(o == w && memcmp(whole, parts, w) == 0, "round %d: chunks differ",
                              round);
                ck_assert(w <= TERMSAFE_STREAM_OUT(n));
                for (size_t i = 0; i < w;) {
                        uint32_t cp;
                        int k = utf8_decode((const unsigned char *)whole + i, w - i, &cp);

                        ck_assert_msg(k > 0, "round %d: invalid UTF-8 out", round);
                        if (cp == '\r')
                                ck_assert(i + 1 < w && whole[i + 1] == '\n');
                        else if (cp != '\n' && cp != '\t')
                                ck_assert_msg(!termsafe_is_control(cp), "round %d: U+%04x out",
                                              round, cp);
                        i += (size_t)k;
                }
        }
}
END_TEST

START_TEST(test_utf8_decode)
{
        uint32_t cp = 0;

        ck_assert_int_eq(utf8_decode((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
        ck_assert_uint_eq(cp, 0x20ac);
        ck_assert_int_eq(utf8_decode((const unsigned char *)"\xe2\x82", 2, &cp), -1);
        ck_assert_int_eq(utf8_decode((const unsigned char *)"\xe0\x80", 2, &cp), 0);
        ck_assert_int_eq(utf8_decode((const unsigned char *)"\xf0\x8f", 2, &cp), 0);
        ck_assert_int_eq(utf8_decode((const unsigned char *)"\xf0\x9f\x8e", 3, &cp), -1);
        ck_assert_int_eq(utf8_decode((const unsigned char *)"", 0, &cp), -1);
        /* A cut sequence whose available bytes are already wrong is invalid, not cut. */
        ck_assert_int_eq(utf8_decode((const unsigned char *)"\xe2\x28", 2, &cp), 0);
}
END_TEST

/* The classic bad sequences (Markus Kuhn's UTF-8 decoder stress test, RFC 3629
 * section 10) and the boundaries on both sides of each rule. */
START_TEST(test_utf8_is_valid_classic)
{
        static const struct {
                const char *s;
                size_t n;
                bool valid;
        } cases[] = {
                {"", 0, true},
                {"\0", 1, true}, /* U+0000 is well-formed; NUL refusal is the caller's */
                {"a\x7f", 2, true},
                {"\xc2\x80", 2, true},         /* U+0080, first 2-byte */
                {"\xdf\xbf", 2, true},         /* U+07FF, last 2-byte */
                {"\xe0\xa0\x80", 3, true},     /* U+0800, first 3-byte */
                {"\xed\x9f\xbf", 3, true},     /* U+D7FF, last before the surrogates */
                {"\xee\x80\x80", 3, true},     /* U+E000, first after them */
                {"\xef\xbf\xbf", 3, true},     /* U+FFFF */
                {"\xf0\x90\x80\x80", 4, true}, /* U+10000, first 4-byte */
                {"\xf4\x8f\xbf\xbf", 4, true}, /* U+10FFFF, the last code point */
                {"\x80", 1, false},            /* lone continuation bytes */
                {"\xbf", 1, false},
                {"a\x80"
                 "b",
                 3, false},
                {"\xc0\xaf", 2, false}, /* overlong '/' in 2, 3 and 4 bytes */
                {"\xe0\x80\xaf", 3, false},
                {"\xf0\x80\x80\xaf", 4, false},
                {"\xc0\x80", 2, false}, /* overlong NUL (Java's "modified UTF-8") */
                {"\xc1\xbf", 2, false}, /* the largest overlongs */
                {"\xe0\x9f\xbf", 3, false},
                {"\xf0\x8f\xbf\xbf", 4, false},
                {"\xed\xa0\x80", 3, false},             /* U+D800, a lone high surrogate */
                {"\xed\xbf\xbf", 3, false},             /* U+DFFF */
                {"\xed\xa0\x80\xed\xb0\x80", 6, false}, /* a surrogate pair (CESU-8) */
                {"\xf4\x90\x80\x80", 4, false},         /* U+110000 */
                {"\xf5\x80\x80\x80", 4, false},         /* leads F5..FF never occur */
                {"\xf8\x88\x80\x80\x80", 5, false},     /* old 5- and 6-byte forms */
                {"\xfc\x84\x80\x80\x80\x80", 6, false},
                {"\xfe", 1, false},
                {"\xff", 1, false},
                {"\xe2\x82", 2, false}, /* cut at the end of the buffer */
                {"\xf0\x9f\x8e", 3, false},
                {"\xe2\x28\xa1", 3, false}, /* ASCII where a continuation belongs */
                {"\xc2", 1, false},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                ck_assert_msg(utf8_is_valid(cases[i].s, cases[i].n) == cases[i].valid,
                              "case %zu: expected %s", i, cases[i].valid ? "valid" : "invalid");
}
END_TEST

/* Encodes cp (any value up to U+10FFFF, surrogates too) the plain way; returns bytes. */
static size_t encode_plain(uint32_t cp, unsigned char out[4])
{
        if (cp < 0x80) {
                out[0] = (unsigned char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (unsigned char)(0xc0 | cp >> 6);
                out[1] = (unsigned char)(0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (unsigned char)(0xe0 | cp >> 12);
                out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                out[2] = (unsigned char)(0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (unsigned char)(0xf0 | cp >> 18);
        out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        out[3] = (unsigned char)(0x80 | (cp & 0x3f));
        return 4;
}

/*
 * Against the definition, exhaustively for short strings: every code point from
 * U+0000 to U+10FFFF decodes back from its plain encoding, surrogates excepted (no
 * false refusal); and whatever any 3-byte string decodes to is the shortest encoding
 * of a code point that is no surrogate (no false acceptance). Plain if + ck_abort:
 * ck_assert marks a point per call, far too slow for 2^24 rounds.
 */
START_TEST(test_utf8_exhaustive)
{
        for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
                unsigned char b[4];
                size_t n = encode_plain(cp, b);
                bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
                uint32_t got = UINT32_MAX;
                int k = utf8_decode(b, n, &got);

                if (surrogate ? k != 0 : k != (int)n || got != cp)
                        ck_abort_msg("U+%04X: %d", cp, k);
                if (utf8_is_valid(b, n) == surrogate)
                        ck_abort_msg("U+%04X: utf8_is_valid", cp);
        }
        for (uint32_t v = 0; v < (1u << 24); v++) {
                unsigned char b[3] = {(unsigned char)(v >> 16), (unsigned char)(v >> 8),
                                      (unsigned char)v};
                bool whole = true;

                for (size_t i = 0; i < 3;) {
                        uint32_t cp;
                        unsigned char e[4];
                        int k = utf8_decode(b + i, 3 - i, &cp);

                        if (k <= 0) {
                                whole = false;
                                break;
                        }
                        if (encode_plain(cp, e) != (size_t)k || memcmp(e, b + i, (size_t)k) != 0 ||
                            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                                ck_abort_msg("%02x %02x %02x: U+%04X from %d bytes", b[0], b[1],
                                             b[2], cp, k);
                        i += (size_t)k;
                }
                if (utf8_is_valid(b, 3) != whole)
                        ck_abort_msg("%02x %02x %02x: utf8_is_valid", b[0], b[1], b[2]);
                /* Two bytes, straight from table 3-7: two ASCII, or C2..DF 80..BF. */
                if (v < (1u << 16) && utf8_is_valid(b + 1, 2) != ((b[1] < 0x80 && b[2] < 0x80) ||
                                                                  (b[1] >= 0xc2 && b[1] <= 0xdf &&
                                                                   b[2] >= 0x80 && b[2] <= 0xbf)))
                        ck_abort_msg("%02x %02x: utf8_is_valid", b[1], b[2]);
        }
}
END_TEST

START_TEST(test_termsafe_token)
{
        char buf[8];

        ck_assert_str_eq(termsafe_token("org.x_y-1", buf, sizeof buf), "org.x_y");
        ck_assert_str_eq(termsafe_token("a\x1b[2Jb", buf, sizeof buf), "a??2Jb");
        ck_assert_str_eq(termsafe_token("\xc3\xa9", buf, sizeof buf), "??");
        ck_assert_str_eq(termsafe_token(NULL, buf, sizeof buf), "-");
}
END_TEST

START_TEST(test_termsafe_field)
{
        char out[64];

        /* the prompt's form: sequences gone with their bodies, breaks become spaces */
        ck_assert_uint_eq(termsafe_field("a\x1b]0;t\x07"
                                         "b\nc\xe2\x80\xae"
                                         "d",
                                         40, out, sizeof out),
                          5);
        ck_assert_str_eq(out, "ab cd");
        termsafe_field("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 7, out, sizeof out);
        ck_assert_str_eq(out, "\xe6\x97\xa5\xe6\x9c\xac...");
}
END_TEST

static char logged[8192];
static size_t logged_len;

static void capture(int level, const char *line, size_t n, void *ud)
{
        memcpy(logged, line, n);
        logged_len = n;
        logged[n] = 0;
}

/* A message carries text cella did not write: it reaches stderr on one line,
 * its controls shown as text. */
START_TEST(test_suggest)
{
        static const char *const known[] = {"memory", "pids", "cpu", "files", "id"};
        char longword[SUGGEST_WORD_MAX + 2];

        ck_assert_uint_eq(suggest_distance("memory", 6, "memory", 6), 0);
        ck_assert_uint_eq(suggest_distance("memroy", 6, "memory", 6), 1); /* a transposition */
        ck_assert_uint_eq(suggest_distance("memor", 5, "memory", 6), 1);
        ck_assert_uint_eq(suggest_distance("mxmxry", 6, "memory", 6), 2);
        ck_assert_uint_eq(suggest_distance("", 0, "cpu", 3), 3);
        ck_assert_str_eq(suggest_nearest("memroy", 6, known, 5), "memory");
        ck_assert_str_eq(suggest_nearest("pid", 3, known, 5), "pids");
        ck_assert_str_eq(suggest_nearest("fils", 4, known, 5), "files");
        /* Not NUL-terminated at len: only len bytes count. */
        ck_assert_str_eq(suggest_nearest("cpux", 3, known, 5), "cpu");
        /* "x" is two edits from "id", but no typo of it; three edits is too far. */
        ck_assert_ptr_null(suggest_nearest("x", 1, known, 5));
        ck_assert_ptr_null(suggest_nearest("zzzzzz", 6, known, 5));
        ck_assert_ptr_null(suggest_nearest("memory", 6, known, 0));
        memset(longword, 'm', sizeof longword - 1);
        longword[sizeof longword - 1] = 0;
        ck_assert_uint_eq(suggest_distance(longword, sizeof longword - 1, "memory", 6), (size_t)-1);
        ck_assert_ptr_null(suggest_nearest(longword, sizeof longword - 1, known, 5));
}
END_TEST

/* fd_send/fd_receive: the fd arrives as the same open file, close-on-exec; a
 * message without one, or none at all, is said so. */
START_TEST(test_fdpass)
{
        int sp[2], fd, got;
        struct stat a, b;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        ck_assert_int_eq(fd_receive(sp[1]), -EAGAIN);

        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fd_send(sp[0], fd), 0);
        got = fd_receive(sp[1]);
        ck_assert_int_ge(got, 0);
        ck_assert_int_ne(got, fd);
        ck_assert_int_eq(fstat(fd, &a), 0);
        ck_assert_int_eq(fstat(got, &b), 0);
        ck_assert(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
        ck_assert_int_eq(fcntl(got, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        close(got);

        /* A byte without an fd. */
        ck_assert_int_eq(write(sp[0], "x", 1), 1);
        ck_assert_int_eq(fd_receive(sp[1]), -EBADMSG);

        /* The peer gone: sending fails, receiving sees the end. */
        close(sp[1]);
        ck_assert_int_eq(fd_send(sp[0], fd), -EPIPE);
        close(fd);
        close(sp[0]);
}
END_TEST

/* The number of open fds of this process (/proc/self/fd, less the one reading it). */
static int open_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        ck_assert_ptr_nonnull(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n - 3; /* ".", ".." and d's own fd */
}

/* A fixed-size message with its fds (fd_msg_send/fd_msg_recv: the keeper's and the
 * sandbox's setup messages): whole, too many fds, the wrong size, the peer gone. */
START_TEST(test_fd_msg)
{
        struct {
                uint32_t magic;
                char text[12];
        } m = {.magic = 0xce11a, .text = "hello"}, r;
        int sp[2], fds[FD_MSG_MAX_FDS + 1], got[4], before;
        size_t n;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        for (int i = 0; i < FD_MSG_MAX_FDS + 1; i++)
                ck_assert_int_ge(fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC), 0);
        before = open_fds();

        ck_assert_int_eq(fd_msg_send(sp[0], &m, sizeof m, fds, 3, 0), (ssize_t)sizeof m);
        ck_assert_int_eq(fd_msg_recv(sp[1], &r, sizeof r, got, 4, &n, MSG_DONTWAIT),
                         (ssize_t)sizeof r);
        ck_assert_uint_eq(n, 3);
        ck_assert(r.magic == m.magic && strcmp(r.text, "hello") == 0);
        for (size_t i = 0; i < n; i++) {
                ck_assert_int_eq(fcntl(got[i], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
                close(got[i]);
        }

        /* More fds than the receiver takes: refused, and none is left open. */
        ck_assert_int_eq(fd_msg_send(sp[0], &m, sizeof m, fds, 4, 0), (ssize_t)sizeof m);
        ck_assert_int_eq(fd_msg_recv(sp[1], &r, sizeof r, got, 2, &n, 0), -EBADMSG);
        ck_assert_uint_eq(n, 0);
        ck_assert_int_eq(open_fds(), before);
        ck_assert_int_eq(fd_msg_send(sp[0], &m, sizeof m, fds, FD_MSG_MAX_FDS + 1, 0), -E2BIG);

        /* A message of another size, with an fd: refused, the fd closed. */
        ck_assert_int_eq(fd_msg_send(sp[0], &m, sizeof m - 1, fds, 1, 0), (ssize_t)sizeof m - 1);
        ck_assert_int_eq(fd_msg_recv(sp[1], &r, sizeof r, got, 4, &n, 0), -EBADMSG);
        ck_assert_int_eq(open_fds(), before);

        /* Nothing yet; then the peer gone: 0, no fds. */
        ck_assert_int_eq(fd_msg_recv(sp[1], &r, sizeof r, got, 4, &n, MSG_DONTWAIT), -EAGAIN);
        close(sp[0]);
        ck_assert_int_eq(fd_msg_recv(sp[1], &r, sizeof r, got, 4, &n, 0), 0);
        ck_assert_uint_eq(n, 0);
        close(sp[1]);
        for (int i = 0; i < FD_MSG_MAX_FDS + 1; i++)
                close(fds[i]);
}
END_TEST

START_TEST(test_log_renders_controls)
{
        char big[LOG_LINE_MAX * 2];

        log_set_writer(capture, NULL);
        ck_assert_int_eq(log_error_errno(-ENOENT, "bad key '%s': %m", "k\x1b]0;t\x07\nfake"),
                         -ENOENT);
        ck_assert_str_eq(logged, "cella: bad key 'k^[]0;t^G^Jfake': No such file or directory\n");
        log_info("caf\xc3\xa9 \xe2\x80\xae\r");
        ck_assert_str_eq(logged, "cella: caf\xc3\xa9 \\u202e^M\n");
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        log_info("%s", big);
        ck_assert_uint_eq(logged_len, strlen("cella: ") + LOG_LINE_MAX - 1 + 1);
        ck_assert_int_eq(memcmp(logged + logged_len - 4, "...\n", 4), 0);
        log_set_writer(NULL, NULL);
}
END_TEST

/* The state directory with no --state-dir, cella's and cellad's (base/statedir.h):
 * $CELLA_STATE_DIR, else root's, else the XDG one, else under $HOME. */
START_TEST(test_state_dir_default)
{
        setenv("CELLA_STATE_DIR", "/srv/cella-test", 1);
        ck_assert_str_eq(state_dir_default(), "/srv/cella-test");
        setenv("CELLA_STATE_DIR", "", 1); /* empty: as if unset */
        setenv("XDG_STATE_HOME", "/xdg", 1);
        setenv("HOME", "/home/t", 1);
        if (geteuid() == 0) {
                ck_assert_str_eq(state_dir_default(), "/var/lib/cella");
                /* The user's branches, as a user (check forks each test). */
                ck_assert_int_eq(seteuid(65534), 0);
        }
        ck_assert_str_eq(state_dir_default(), "/xdg/cella");
        setenv("XDG_STATE_HOME", "relative", 1); /* not absolute: ignored (XDG spec) */
        ck_assert_str_eq(state_dir_default(), "/home/t/.local/state/cella");
        unsetenv("XDG_STATE_HOME");
        ck_assert_str_eq(state_dir_default(), "/home/t/.local/state/cella");
        /* Back to root: LeakSanitizer's check at exit needs it. */
        if (getuid() == 0)
                ck_assert_int_eq(seteuid(0), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("base");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_parse_size);
        tcase_add_test(tc, test_format_size);
        tcase_add_test(tc, test_strv);
        tcase_add_test(tc, test_fdpass);
        tcase_add_test(tc, test_fd_msg);
        tcase_add_test(tc, test_read_file_bounded);
        tcase_add_test(tc, test_mkdir_p);
        tcase_add_test(tc, test_path_canonical);
        tcase_add_test(tc, test_tree_usage);
        tcase_add_test(tc, test_tree_usage_bound_unstattable);
        tcase_add_test(tc, test_sqlite_open_refuses_symlinks);
        tcase_add_test(tc, test_state_dir_open);
        tcase_add_test(tc, test_state_dir_default);
        tcase_add_test(tc, test_sqlite_schema);
        tcase_add_test(tc, test_sqlite_select_one);
        tcase_add_test(tc, test_termsafe_stream);
        tcase_add_test(tc, test_termsafe_stream_random);
        tcase_add_test(tc, test_utf8_decode);
        tcase_add_test(tc, test_utf8_is_valid_classic);
        tcase_add_test(tc, test_termsafe_token);
        tcase_add_test(tc, test_termsafe_field);
        tcase_add_test(tc, test_suggest);
        tcase_add_test(tc, test_log_renders_controls);
        suite_add_tcase(s, tc);
        /* 2^24 strings: about a second, more under sanitizers on a loaded machine. */
        tc = tcase_create("utf8-exhaustive");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_utf8_exhaustive);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
