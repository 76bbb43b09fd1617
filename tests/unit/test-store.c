/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The store (src/store): Debian's version ordering; bundles written deterministically
 * and read back with their modes normalised; every bad bundle refused with the entry
 * named and nothing written outside the staging folder (path traversal, absolute
 * paths, symlinks out, hardlinks, devices, fifos, control characters, duplicates, a
 * path through a symlink, truncated tars, past the bounds); install, update (newer
 * only, same signer only, same id), list, remove; and an install failed or killed
 * at each step leaving the previous version installed and nothing the next install
 * or store_sweep() trips on.
 */
#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "policy/signature.h"
#include "store/store.h"
#include "test-util.h"

static char top[] = "/tmp/test-store-XXXXXX";
static char app[128], state[128], out[128];

static void put_manifest(const char *dir, const char *id, const char *version, const char *extra)
{
        char text[1024];

        snprintf(text, sizeof text,
                 "{\"id\": \"%s\", \"version\": \"%s\", \"runtime\": \"native\", "
                 "\"entry\": \"run\"%s}",
                 id, version, extra ? extra : "");
        put_file(dir, "manifest.json", text, 0644);
}

static void setup(void)
{
        char path[256];

        strcpy(top, "/tmp/test-store-XXXXXX");
        if (!mkdtemp(top))
                abort();
        snprintf(app, sizeof app, "%s/app", top);
        snprintf(state, sizeof state, "%s/state", top);
        snprintf(out, sizeof out, "%s/out", top);
        if (mkdir(app, 0755) < 0 || mkdir(state, 0711) < 0 || mkdir(out, 0700) < 0)
                abort();
        put_manifest(app, "org.a.b", "1.0", NULL);
        put_file(app, "run", "#!/bin/sh\necho hi\n", 0755);
        snprintf(path, sizeof path, "%s/lib", app);
        if (mkdir(path, 0755) < 0)
                abort();
        put_file(app, "lib/data.txt", "some data\n", 0600);
        snprintf(path, sizeof path, "%s/link", app);
        if (symlink("lib/data.txt", path) < 0)
                abort();
        unsetenv("CELLA_TEST_STORE_FAIL_AT");
        unsetenv("CELLA_TEST_STORE_KILL_AT");
}

static void teardown(void)
{
        rm_tree(top);
}

/* The app folder as a bundle in a new memfd, at offset 0. */
static int bundle_of(const char *dir)
{
        _cleanup_close_ int dfd = open_dir(dir);
        int fd = memfd_create("bundle", MFD_CLOEXEC);
        StoreError err;
        int r;

        ck_assert_int_ge(fd, 0);
        r = store_bundle_write(dfd, fd, &err);
        ck_assert_msg(r == 0, "bundle_write: %d %s: %s", r, err.path, err.message);
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        return fd;
}

static int install(StoreMode mode, const char *expect_id, StoreError *err)
{
        _cleanup_close_ int fd = bundle_of(app);

        return store_install(state, fd, mode, expect_id, 1000, NULL, err);
}

static void assert_current(const char *id, const char *version)
{
        StoreApp a;

        ck_assert_int_eq(store_get(state, id, &a), 0);
        ck_assert_str_eq(a.version, version);
        store_app_clear(&a);
}

/* The names in state/apps that start with prefix. */
static int count_prefixed(const char *dir, const char *prefix)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
        closedir(d);
        return n;
}

START_TEST(test_version_compare)
{
        static const struct {
                const char *a, *b;
                int want;
        } cases[] = {
                {"1.0", "1.0", 0},       {"1.10", "1.9", 1},
                {"1.0~rc1", "1.0", -1},  {"1.0", "1.0a", -1},
                {"1.0a", "1.0.1", -1},   {"1.0", "1.00", 0},
                {"2:0.1", "1.9", 1},     {"1:1.0", "1.0", 1},
                {"1.0-2", "1.0-10", -1}, {"1.0~~", "1.0~", -1},
                {"1.0+b1", "1.0", 1},    {"0", "1", -1},
                {"10", "9", 1},          {"1.2.3", "1.2.3.0", -1},
                {"1.0-1", "1.0", 1},     {"1.0~beta", "1.0~alpha", 1},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int r = store_version_compare(cases[i].a, cases[i].b);

                ck_assert_msg(r == cases[i].want, "%s vs %s: %d, want %d", cases[i].a, cases[i].b,
                              r, cases[i].want);
                ck_assert_int_eq(store_version_compare(cases[i].b, cases[i].a), -cases[i].want);
        }
        ck_assert(store_version_is_valid("1.0"));
        ck_assert(store_version_is_valid("2:1.0~rc1-3"));
        ck_assert(!store_version_is_valid("v1"));
        ck_assert(!store_version_is_valid("current"));
        ck_assert(!store_version_is_valid(""));
        ck_assert(!store_version_is_valid("1/../x"));
        ck_assert(!store_version_is_valid("1 beta"));
        ck_assert(!store_version_is_valid(NULL));
}
END_TEST

static void read_all(int fd, char **ret, size_t *n)
{
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        ck_assert_int_eq(read_full_fd(fd, 1 << 24, ret, n), 0);
}

START_TEST(test_bundle_round_trip)
{
        _cleanup_close_ int a = bundle_of(app), b = -EBADF, dest = open_dir(out);
        _cleanup_free_ char *ta = NULL, *tb = NULL;
        char path[256], link[64];
        size_t na, nb;
        uint64_t files = 0, bytes = 0;
        StoreError err;
        struct stat st;
        ssize_t k;

        /* Deterministic: the same folder, touched, gives the same bytes. */
        snprintf(path, sizeof path, "%s/run", app);
        ck_assert_int_eq(utimensat(AT_FDCWD, path, NULL, 0), 0);
        b = bundle_of(app);
        read_all(a, &ta, &na);
        read_all(b, &tb, &nb);
        ck_assert_uint_eq(na, nb);
        ck_assert(memcmp(ta, tb, na) == 0);

        ck_assert_int_eq(lseek(a, 0, SEEK_SET), 0);
        ck_assert_int_eq(store_bundle_extract(a, dest, &files, &bytes, &err), 0);
        ck_assert_uint_eq(files, 5); /* lib, lib/data.txt, link, manifest.json, run */
        snprintf(path, sizeof path, "%s/manifest.json", app);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(bytes, strlen("#!/bin/sh\necho hi\n") + strlen("some data\n") +
                                         (uint64_t)st.st_size);
        ck_assert_int_eq(fstatat(dest, "run", &st, AT_SYMLINK_NOFOLLOW), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0555);
        ck_assert_int_eq(fstatat(dest, "lib/data.txt", &st, AT_SYMLINK_NOFOLLOW), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0444); /* 0600 in the folder: world-readable now */
        ck_assert_int_eq(fstatat(dest, "lib", &st, AT_SYMLINK_NOFOLLOW), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0555);
        ck_assert_int_eq(fstat(dest, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0555);
        k = readlinkat(dest, "link", link, sizeof link - 1);
        ck_assert_int_gt(k, 0);
        link[k] = 0;
        ck_assert_str_eq(link, "lib/data.txt");
}
END_TEST

/* One tar entry of a crafted bundle. */
typedef struct TEntry {
        const char *path;
        mode_t type;          /* AE_IFREG (0: regular), AE_IFDIR, AE_IFLNK, AE_IFCHR ... */
        const char *content;  /* regular files */
        const char *target;   /* symlinks */
        const char *hardlink; /* a hardlink entry to this path */
} TEntry;

/* A tar of manifest.json and entries, in a memfd at offset 0. */
static int crafted(const TEntry *entries, size_t n)
{
        static const char manifest[] =
                "{\"id\": \"org.a.b\", \"version\": \"1.0\", \"runtime\": \"native\", "
                "\"entry\": \"run\"}";
        struct archive *a = archive_write_new();
        struct archive_entry *e = archive_entry_new();
        int fd = memfd_create("crafted", MFD_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_open_fd(a, fd), ARCHIVE_OK);
        for (size_t i = 0; i <= n; i++) {
                const TEntry *t = i < n ? &entries[i] : NULL;
                const char *content = t ? t->content : manifest;

                archive_entry_clear(e);
                archive_entry_set_pathname(e, t ? t->path : "manifest.json");
                archive_entry_set_filetype(e, t && t->type ? t->type : AE_IFREG);
                archive_entry_set_perm(e, 0644);
                if (t && t->hardlink) {
                        archive_entry_set_hardlink(e, t->hardlink);
                        archive_entry_set_size(e, 0);
                } else if (t && t->type == AE_IFLNK)
                        archive_entry_set_symlink(e, t->target);
                else if (t && (t->type == AE_IFCHR || t->type == AE_IFBLK))
                        archive_entry_set_rdev(e, makedev(1, 3));
                if (!t || !t->type || t->type == AE_IFREG)
                        archive_entry_set_size(e, content ? (la_int64_t)strlen(content) : 0);
                ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
                if (content && (!t || !t->type || t->type == AE_IFREG) && !(t && t->hardlink))
                        ck_assert_int_eq(archive_write_data(a, content, strlen(content)),
                                         (la_ssize_t)strlen(content));
        }
        ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        archive_entry_free(e);
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        return fd;
}

START_TEST(test_bundle_refused)
{
        static const struct {
                TEntry e[2];
                size_t n;
                int want;
                const char *path, *says;
        } cases[] = {
                {{{.path = "../escape", .content = "x"}}, 1, -EPERM, "../escape", "'..'"},
                {{{.path = "lib/../../escape", .content = "x"}},
                 1,
                 -EPERM,
                 "lib/../../escape",
                 "'..'"},
                {{{.path = "/tmp/escape-abs", .content = "x"}},
                 1,
                 -EPERM,
                 "/tmp/escape-abs",
                 "absolute"},
                {{{.path = "out", .type = AE_IFLNK, .target = "/etc"}},
                 1,
                 -EPERM,
                 "out",
                 "symlink"},
                {{{.path = "up", .type = AE_IFLNK, .target = "../../etc/passwd"}},
                 1,
                 -EPERM,
                 "up",
                 "symlink"},
                {{{.path = "dir", .type = AE_IFLNK, .target = "lib"},
                  {.path = "dir/x", .content = "through the link"}},
                 2,
                 -EPERM,
                 "dir/x",
                 "through a symlink"},
                {{{.path = "hl", .hardlink = "manifest.json"}}, 1, -EPERM, "hl", "hardlink"},
                {{{.path = "null", .type = AE_IFCHR}}, 1, -EPERM, "null", "character device"},
                {{{.path = "blk", .type = AE_IFBLK}}, 1, -EPERM, "blk", "block device"},
                {{{.path = "fifo", .type = AE_IFIFO}}, 1, -EPERM, "fifo", "fifo"},
                {{{.path = "bad\nname", .content = "x"}}, 1, -EPERM, "bad?name", "control"},
                {{{.path = "a//b", .content = "x"}}, 1, -EPERM, "a//b", "empty component"},
                {{{.path = "twice", .content = "1"}, {.path = "twice", .content = "2"}},
                 2,
                 -EEXIST,
                 "twice",
                 "twice"},
                {{{.path = "manifest.json", .content = "{}"}},
                 1,
                 -EEXIST,
                 "manifest.json",
                 "twice"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_close_ int fd = crafted(cases[i].e, cases[i].n), dest = -EBADF;
                char sub[256];
                StoreError err;
                int r;

                snprintf(sub, sizeof sub, "%s/case%zu", out, i);
                ck_assert_int_eq(mkdir(sub, 0700), 0);
                dest = open_dir(sub);
                r = store_bundle_extract(fd, dest, NULL, NULL, &err);
                ck_assert_msg(r == cases[i].want, "case %zu (%s): %d, want %d (%s)", i,
                              cases[i].path, r, cases[i].want, err.message);
                ck_assert_msg(strcmp(err.path, cases[i].path) == 0, "case %zu: path '%s'", i,
                              err.path);
                ck_assert_msg(strstr(err.message, cases[i].says), "case %zu: '%s' lacks '%s'", i,
                              err.message, cases[i].says);
        }
        /* Nothing landed outside the folders extracted into. */
        ck_assert_int_eq(access("/tmp/escape-abs", F_OK), -1);
        {
                char path[256];

                snprintf(path, sizeof path, "%s/escape", top);
                ck_assert_int_eq(access(path, F_OK), -1);
                snprintf(path, sizeof path, "%s/escape", out);
                ck_assert_int_eq(access(path, F_OK), -1);
        }
}
END_TEST

START_TEST(test_bundle_truncated)
{
        _cleanup_close_ int fd = bundle_of(app), dest = open_dir(out), cut = -EBADF;
        _cleanup_free_ char *text = NULL;
        StoreError err;
        size_t n;
        int r;

        read_all(fd, &text, &n);
        /* Cut inside the second entry's data, and at a header's middle. */
        static const size_t cuts[] = {100, 600, 1100, 1700, 2300, 2900};

        for (size_t i = 0; i < ELEMENTSOF(cuts) && cuts[i] < n; i++) {
                size_t at = cuts[i];
                char sub[256];
                _cleanup_close_ int d = -EBADF;

                cut = safe_close(cut);
                cut = memfd_create("cut", MFD_CLOEXEC);
                ck_assert_int_eq(loop_write(cut, text, at), 0);
                ck_assert_int_eq(lseek(cut, 0, SEEK_SET), 0);
                snprintf(sub, sizeof sub, "%s/cut%zu", out, at);
                ck_assert_int_eq(mkdir(sub, 0700), 0);
                d = open_dir(sub);
                r = store_bundle_extract(cut, d, NULL, NULL, &err);
                ck_assert_msg(r == -EBADMSG || r == -ENOENT, "cut at %zu: %d %s", at, r,
                              err.message);
                if (r == -EBADMSG)
                        ck_assert_msg(strstr(err.message, "truncated") ||
                                              strstr(err.message, "not a bundle"),
                                      "%s", err.message);
        }
        /* Not a tar at all. */
        cut = safe_close(cut);
        cut = memfd_create("junk", MFD_CLOEXEC);
        ck_assert_int_eq(loop_write(cut, "hello, not a tar\n", 17), 0);
        ck_assert_int_eq(lseek(cut, 0, SEEK_SET), 0);
        r = store_bundle_extract(cut, dest, NULL, NULL, &err);
        ck_assert_int_eq(r, -EBADMSG);
        ck_assert_msg(strstr(err.message, "not a bundle"), "%s", err.message);
}
END_TEST

START_TEST(test_bundle_bounds)
{
        _cleanup_close_ int fd = memfd_create("many", MFD_CLOEXEC), dest = open_dir(out);
        struct archive *a = archive_write_new();
        struct archive_entry *e = archive_entry_new();
        char deep[2048] = "";
        StoreError err;
        int r;

        /* One entry past SIGNATURE_FILES_MAX. */
        ck_assert_int_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_open_fd(a, fd), ARCHIVE_OK);
        for (unsigned i = 0; i <= SIGNATURE_FILES_MAX; i++) {
                char name[32];

                snprintf(name, sizeof name, "f%u", i);
                archive_entry_clear(e);
                archive_entry_set_pathname(e, name);
                archive_entry_set_filetype(e, AE_IFREG);
                archive_entry_set_perm(e, 0644);
                archive_entry_set_size(e, 0);
                ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        }
        ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        r = store_bundle_extract(fd, dest, NULL, NULL, &err);
        ck_assert_int_eq(r, -E2BIG);
        ck_assert_msg(strstr(err.message, "entries"), "%s", err.message);

        /* Folders nested one level too deep. */
        for (unsigned i = 0; i <= SIGNATURE_DEPTH_MAX; i++)
                strcat(deep, "d/");
        strcat(deep, "f");
        {
                TEntry t = {.path = deep, .content = "x"};
                _cleanup_close_ int fd2 = crafted(&t, 1);
                char sub[256];
                _cleanup_close_ int d2 = -EBADF;

                snprintf(sub, sizeof sub, "%s/deep", out);
                ck_assert_int_eq(mkdir(sub, 0700), 0);
                d2 = open_dir(sub);
                r = store_bundle_extract(fd2, d2, NULL, NULL, &err);
                ck_assert_int_eq(r, -E2BIG);
                ck_assert_msg(strstr(err.message, "nested"), "%s", err.message);
        }
        archive_entry_free(e);
}
END_TEST

START_TEST(test_install_update_remove)
{
        StoreApp *apps = NULL;
        StoreError err;
        size_t n;
        char path[256], *dir = NULL;
        struct stat st;

        ck_assert_int_eq(store_list(state, &apps, &n), 0);
        ck_assert_uint_eq(n, 0);
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), 0);
        ck_assert_int_eq(store_list(state, &apps, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(apps[0].id, "org.a.b");
        ck_assert_str_eq(apps[0].version, "1.0");
        ck_assert_ptr_null(apps[0].key_id);
        ck_assert_int_eq(apps[0].installed_at_ms, 1000);
        ck_assert(!apps[0].autostart);
        store_app_free_many(apps, n);
        ck_assert_int_eq(store_app_dir(state, "org.a.b", &dir), 0);
        snprintf(path, sizeof path, "%s/apps/org.a.b/1.0", state);
        ck_assert_str_eq(dir, path);
        free(dir);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0555);

        /* Installed already. */
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), -EEXIST);
        ck_assert_int_eq(err.fault, STORE_FAULT_INSTALLED);
        ck_assert_msg(strstr(err.message, "cella update"), "%s", err.message);
        /* The same, and an older version. */
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), -ESTALE);
        ck_assert_msg(strstr(err.message, "the same as"), "%s", err.message);
        put_manifest(app, "org.a.b", "0.9", NULL);
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), -ESTALE);
        ck_assert_msg(strstr(err.message, "older"), "%s", err.message);
        ck_assert_str_eq(err.key, "version");
        ck_assert_int_eq(err.fault, STORE_FAULT_NOT_NEWER);
        /* Another id than the one named. */
        put_manifest(app, "org.a.other", "2.0", NULL);
        ck_assert_int_eq(install(STORE_MODE_UPDATE, "org.a.b", &err), -EXDEV);
        ck_assert_str_eq(err.key, "id");
        ck_assert_int_eq(err.fault, STORE_FAULT_ID);
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), -ENOPKG);
        ck_assert_int_eq(err.fault, STORE_FAULT_NOT_INSTALLED);
        assert_current("org.a.b", "1.0");

        /* Newer: 2.0 replaces 1.0, kept as previous; 3.0 removes 1.0. */
        put_manifest(app, "org.a.b", "2.0", ", \"autostart\": true");
        ck_assert_int_eq(install(STORE_MODE_UPDATE, "org.a.b", &err), 0);
        assert_current("org.a.b", "2.0");
        {
                StoreApp a;

                ck_assert_int_eq(store_get(state, "org.a.b", &a), 0);
                ck_assert_str_eq(a.previous, "1.0");
                ck_assert(a.autostart);
                store_app_clear(&a);
        }
        ck_assert_int_eq(access(path, F_OK), 0);
        put_manifest(app, "org.a.b", "3.0~rc1", NULL);
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), 0);
        assert_current("org.a.b", "3.0~rc1");
        ck_assert_int_eq(access(path, F_OK), -1);
        snprintf(path, sizeof path, "%s/apps/org.a.b/2.0", state);
        ck_assert_int_eq(access(path, F_OK), 0);

        /* Remove keeps what is not the store's (its /data). */
        snprintf(path, sizeof path, "%s/apps/org.a.b/data", state);
        ck_assert_int_eq(mkdir(path, 0700), 0);
        ck_assert_int_eq(store_remove(state, "org.a.b", true, &err), 0);
        ck_assert_int_eq(access(path, F_OK), 0);
        ck_assert_int_eq(store_get(state, "org.a.b", &(StoreApp){}), -ENOENT);
        ck_assert_int_eq(store_remove(state, "org.a.b", false, &err), -ENOPKG);
        ck_assert_int_eq(err.fault, STORE_FAULT_NOT_INSTALLED);
        snprintf(path, sizeof path, "%s/apps/org.a.b", state);
        ck_assert_int_eq(count_prefixed(path, "2.0") + count_prefixed(path, "3.0") +
                                 count_prefixed(path, ".3") + count_prefixed(path, "current"),
                         0);
        ck_assert_int_eq(store_list(state, &apps, &n), 0);
        ck_assert_uint_eq(n, 0);
        ck_assert_int_eq(store_remove(state, "not an id", false, &err), -EINVAL);
}
END_TEST

/* The installed-version cache answers as store_app_dir() does after every change,
 * whether it was told of the change or not (another process changed the store). */
static void assert_cache(StoreCache *c, const char *id, int expect_r, const char *expect_version)
{
        char *dir = NULL, *want = NULL;
        int r;

        r = store_cache_app_dir(c, id, &dir);
        ck_assert_msg(r == expect_r, "store_cache_app_dir(%s) = %d, expected %d", id, r, expect_r);
        if (r < 0)
                return;
        ck_assert_int_ge(asprintf(&want, "%s/apps/%s/%s", state, id, expect_version), 0);
        ck_assert_str_eq(dir, want);
        free(dir);
        free(want);
}

START_TEST(test_cache)
{
        StoreCache *c = NULL;
        StoreError err;
        uint64_t hits, misses;
        char path[256], path2[256], copy[1024];

        ck_assert_int_eq(store_cache_new(state, &c), 0);
        assert_cache(c, "org.a.b", -ENOENT, NULL);
        assert_cache(c, "../org.a.b", -EINVAL, NULL);
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), 0);
        assert_cache(c, "org.a.b", 0, "1.0"); /* a miss fills it */
        assert_cache(c, "org.a.b", 0, "1.0"); /* a hit */
        store_cache_stats(c, &hits, &misses);
        ck_assert_uint_eq(hits, 1);
        ck_assert_uint_eq(misses, 2); /* the id refused before any lookup */

        /* Updated behind its back: seen at the next lookup. */
        put_manifest(app, "org.a.b", "2.0", NULL);
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), 0);
        assert_cache(c, "org.a.b", 0, "2.0");
        assert_cache(c, "org.a.b", 0, "2.0");
        store_cache_stats(c, &hits, &misses);
        ck_assert_uint_eq(hits, 2);
        ck_assert_uint_eq(misses, 3);

        /* Removed, then installed again at an older version. */
        ck_assert_int_eq(store_remove(state, "org.a.b", false, &err), 0);
        assert_cache(c, "org.a.b", -ENOENT, NULL);
        put_manifest(app, "org.a.b", "1.0", NULL);
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), 0);
        assert_cache(c, "org.a.b", 0, "1.0");
        assert_cache(c, "org.a.b", 0, "1.0");

        /* current pointed somewhere that is no version: refused as the store refuses. */
        snprintf(path, sizeof path, "%s/apps/org.a.b/current", state);
        snprintf(path2, sizeof path2, "%s/apps/org.a.b/current.x", state);
        ck_assert_int_eq(symlink("../../..", path2), 0);
        ck_assert_int_eq(rename(path2, path), 0);
        assert_cache(c, "org.a.b", -EINVAL, NULL);
        ck_assert_int_eq(symlink("1.0", path2), 0);
        ck_assert_int_eq(rename(path2, path), 0);
        assert_cache(c, "org.a.b", 0, "1.0");
        assert_cache(c, "org.a.b", 0, "1.0");

        /* apps/<id> swapped for a symlink to a copy of it (same names, other folders):
         * not the folder the full lookup vetted, so a miss, and the store refuses a
         * symlinked app folder. */
        snprintf(path, sizeof path, "%s/apps/org.a.b", state);
        snprintf(path2, sizeof path2, "%s/apps/org.a.b.moved", state);
        snprintf(copy, sizeof copy, "cp -a %s %s.copy", path, path);
        ck_assert_int_eq(system(copy), 0);
        ck_assert_int_eq(rename(path, path2), 0);
        ck_assert_int_eq(symlink("org.a.b.copy", path), 0);
        ck_assert_int_eq(store_app_dir(state, "org.a.b", &(char *){NULL}), -ENOTDIR);
        assert_cache(c, "org.a.b", -ENOTDIR, NULL); /* O_DIRECTORY | O_NOFOLLOW's error */
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(rename(path2, path), 0);
        assert_cache(c, "org.a.b", 0, "1.0");

        /* The version's folder replaced by a symlink to a copy of it. */
        snprintf(path, sizeof path, "%s/apps/org.a.b/1.0", state);
        snprintf(path2, sizeof path2, "%s/apps/org.a.b/1.0.old", state);
        ck_assert_int_eq(rename(path, path2), 0);
        ck_assert_int_eq(symlink("../org.a.b.copy/1.0", path), 0);
        store_cache_stats(c, &hits, &misses);
        assert_cache(c, "org.a.b", 0, "1.0"); /* the store's own answer, and not kept */
        assert_cache(c, "org.a.b", 0, "1.0");
        {
                uint64_t h2, m2;

                store_cache_stats(c, &h2, &m2);
                ck_assert_uint_eq(h2, hits);
                ck_assert_uint_eq(m2, misses + 2);
        }
        ck_assert_int_eq(path_is_canonical(path), 0); /* reload.c then resolves it */
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(rename(path2, path), 0);

        /* Told: the entry goes; the next lookup fills it again. */
        store_cache_forget(c, "org.a.b");
        store_cache_forget(c, NULL);
        assert_cache(c, "org.a.b", 0, "1.0");
        snprintf(copy, sizeof copy, "rm -rf %s/apps/org.a.b.copy", state);
        ck_assert_int_eq(system(copy), 0);
        c = store_cache_free(c);
}
END_TEST

START_TEST(test_manifest_refused)
{
        StoreError err;
        char path[256];

        put_manifest(app, "org.a.b", "1.0", ", \"permissions\": [\"notify\", \"fs.teleport\"]");
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), -EINVAL);
        ck_assert_int_eq(err.fault, STORE_FAULT_BUNDLE);
        ck_assert_str_eq(err.key, "permissions[1]");
        ck_assert_msg(strstr(err.message, "fs.teleport"), "%s", err.message);
        put_manifest(app, "org.a.b", "beta", NULL);
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), -EINVAL);
        ck_assert_str_eq(err.key, "version");
        put_file(app, "manifest.json", "{\"id\": \"org.a.b\", \"runtime\": \"native\"}", 0644);
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), -EINVAL);
        ck_assert_str_eq(err.key, "entry");
        /* Nothing in the store, no staging folder left. */
        snprintf(path, sizeof path, "%s/apps", state);
        ck_assert_int_eq(count_prefixed(path, STORE_STAGING_PREFIX), 0);
        ck_assert_int_eq(count_prefixed(path, "org."), 0);
}
END_TEST

static void keygen(const char *name)
{
        char prefix[256];

        snprintf(prefix, sizeof prefix, "%s/%s", top, name);
        ck_assert_int_eq(signature_keygen(prefix, NULL), 0);
}

static void sign_with(const char *name)
{
        _cleanup_close_ int dfd = open_dir(app);
        char key[256];
        SignatureError serr;

        snprintf(key, sizeof key, "%s/%s.key", top, name);
        ck_assert_int_eq(signature_sign(dfd, key, &serr), 0);
}

static void unsign(void)
{
        char path[256];

        snprintf(path, sizeof path, "%s/" SIGNATURE_FILE, app);
        ck_assert_int_eq(unlink(path), 0);
}

START_TEST(test_same_signer)
{
        StoreError err;
        StoreApp a;

        keygen("vendor");
        keygen("other");
        sign_with("vendor");
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), 0);
        ck_assert_int_eq(store_get(state, "org.a.b", &a), 0);
        ck_assert_ptr_nonnull(a.key_id);
        ck_assert_ptr_nonnull(a.public_key);
        store_app_clear(&a);

        /* Another key. */
        put_manifest(app, "org.a.b", "2.0", NULL);
        sign_with("other");
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), -EPERM);
        ck_assert_int_eq(err.fault, STORE_FAULT_SIGNER);
        ck_assert_msg(strstr(err.message, "same key"), "%s", err.message);
        /* Unsigned. */
        unsign();
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), -EPERM);
        ck_assert_msg(strstr(err.message, "an unsigned version cannot replace it"), "%s",
                      err.message);
        /* A file changed after signing: refused, not taken as unsigned. */
        sign_with("vendor");
        put_file(app, "run", "#!/bin/sh\necho changed\n", 0755);
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), -EBADMSG);
        ck_assert_int_eq(err.fault, STORE_FAULT_BUNDLE);
        ck_assert_msg(strstr(err.message, "signature"), "%s", err.message);
        assert_current("org.a.b", "1.0");
        /* The same key. */
        sign_with("vendor");
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), 0);
        assert_current("org.a.b", "2.0");

        /* Unsigned installed: a signed update is refused. */
        put_manifest(app, "org.a.c", "1.0", NULL);
        unsign();
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), 0);
        put_manifest(app, "org.a.c", "1.1", NULL);
        sign_with("vendor");
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), -EPERM);
        ck_assert_msg(strstr(err.message, "is unsigned"), "%s", err.message);
        unsign();
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), 0);
        assert_current("org.a.c", "1.1");
}
END_TEST

/* Without the installed version's record, its signer is unknown: no update. */
START_TEST(test_update_without_record_refused)
{
        StoreError err;
        char path[256];

        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), 0);
        snprintf(path, sizeof path, "%s/apps/org.a.b/.1.0.json", state);
        ck_assert_int_eq(unlink(path), 0);
        put_manifest(app, "org.a.b", "2.0", NULL);
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), -ENOENT);
        ck_assert_msg(strstr(err.message, "not who signed it"), "%s", err.message);
        {
                StoreApp a;

                ck_assert_int_eq(store_get(state, "org.a.b", &a), 0);
                ck_assert_str_eq(a.version, "1.0");
                store_app_clear(&a);
        }
}
END_TEST

/* The data kept by a remove is the app's: a later install must have its signer. */
START_TEST(test_kept_data_keeps_the_signer)
{
        StoreError err;
        char path[256];

        keygen("vendor");
        keygen("other");
        sign_with("vendor");
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), 0);
        ck_assert_int_eq(store_remove(state, "org.a.b", true, &err), 0);
        snprintf(path, sizeof path, "%s/apps/org.a.b/.kept-signer.json", state);
        ck_assert_int_eq(access(path, F_OK), 0);

        put_manifest(app, "org.a.b", "0.5", NULL); /* any version: it is an install */
        sign_with("other");
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), -EPERM);
        ck_assert_int_eq(err.fault, STORE_FAULT_SIGNER);
        ck_assert_msg(strstr(err.message, "data was kept") && strstr(err.message, "cella forget"),
                      "%s", err.message);
        unsign();
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), -EPERM);
        ck_assert_int_eq(store_get(state, "org.a.b", &(StoreApp){}), -ENOENT);

        sign_with("vendor");
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), 0);
        assert_current("org.a.b", "0.5");
        ck_assert_int_eq(access(path, F_OK), -1); /* the data is this install's now */

        /* Without keep_signer, any signer may install the id again. */
        ck_assert_int_eq(store_remove(state, "org.a.b", false, &err), 0);
        ck_assert_int_eq(access(path, F_OK), -1);
        unsign();
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), 0);
}
END_TEST

static const char *const steps[] = {"extracted", "checked",  "locked",
                                    "renamed",   "recorded", "switched"};

START_TEST(test_interrupted_fail)
{
        StoreError err;
        char path[256];

        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), 0);
        put_manifest(app, "org.a.b", "2.0", NULL);
        snprintf(path, sizeof path, "%s/apps", state);
        for (size_t i = 0; i < ELEMENTSOF(steps) - 1; i++) {
                setenv("CELLA_TEST_STORE_FAIL_AT", steps[i], 1);
                ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), -ECANCELED);
                ck_assert_msg(strstr(err.message, steps[i]), "%s", err.message);
                assert_current("org.a.b", "1.0");
                ck_assert_int_eq(count_prefixed(path, STORE_STAGING_PREFIX), 0);
        }
        unsetenv("CELLA_TEST_STORE_FAIL_AT");
        ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), 0);
        assert_current("org.a.b", "2.0");
}
END_TEST

START_TEST(test_interrupted_kill)
{
        StoreError err;
        char apps[256], idd[256];

        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), 0);
        snprintf(apps, sizeof apps, "%s/apps", state);
        snprintf(idd, sizeof idd, "%s/apps/org.a.b", state);
        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                char version[16];
                int status;
                pid_t pid;

                snprintf(version, sizeof version, "%zu.5", i + 1);
                put_manifest(app, "org.a.b", version, NULL);
                pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0) {
                        setenv("CELLA_TEST_STORE_KILL_AT", steps[i], 1);
                        (void)install(STORE_MODE_UPDATE, NULL, &err);
                        _exit(0); /* not reached: killed at the step */
                }
                ck_assert_int_eq(waitpid(pid, &status, 0), pid);
                ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                              "step %s: status %d", steps[i], status);
                if (strcmp(steps[i], "switched") == 0) {
                        assert_current("org.a.b", version);
                        continue;
                }
                /* Before the switch: still the version before. */
                {
                        StoreApp a;

                        ck_assert_int_eq(store_get(state, "org.a.b", &a), 0);
                        ck_assert_msg(strcmp(a.version, version) != 0, "step %s: %s installed",
                                      steps[i], version);
                        store_app_clear(&a);
                }
                /* The next install does not trip on what was left. */
                ck_assert_int_eq(install(STORE_MODE_UPDATE, NULL, &err), 0);
                assert_current("org.a.b", version);
        }
        /* The sweep leaves no staging folder and only current and previous. */
        ck_assert_int_gt(count_prefixed(apps, STORE_STAGING_PREFIX), 0);
        ck_assert_int_gt(store_sweep(state), 0);
        ck_assert_int_eq(count_prefixed(apps, STORE_STAGING_PREFIX), 0);
        {
                int versions = 0;

                for (char c = '1'; c <= '9'; c++) {
                        char p[2] = {c, 0};

                        versions += count_prefixed(idd, p);
                }
                ck_assert_int_eq(versions, 2);
        }
}
END_TEST

START_TEST(test_sweep_first_install_killed)
{
        StoreError err;
        char idd[256];
        int status;
        pid_t pid;

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                setenv("CELLA_TEST_STORE_KILL_AT", "recorded", 1);
                (void)install(STORE_MODE_INSTALL, NULL, &err);
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status));
        ck_assert_int_eq(store_get(state, "org.a.b", &(StoreApp){}), -ENOENT);
        snprintf(idd, sizeof idd, "%s/apps/org.a.b", state);
        ck_assert_int_eq(count_prefixed(idd, "1.0"), 1);
        ck_assert_int_eq(store_sweep(state), 2); /* the folder and its record */
        ck_assert_int_eq(count_prefixed(idd, "1.0") + count_prefixed(idd, ".1.0"), 0);
        ck_assert_int_eq(install(STORE_MODE_INSTALL, NULL, &err), 0);
        assert_current("org.a.b", "1.0");
}
END_TEST

int main(void)
{
        Suite *s = suite_create("store");
        TCase *tc = tcase_create("store");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_version_compare);
        tcase_add_test(tc, test_bundle_round_trip);
        tcase_add_test(tc, test_bundle_refused);
        tcase_add_test(tc, test_bundle_truncated);
        tcase_add_test(tc, test_bundle_bounds);
        tcase_add_test(tc, test_install_update_remove);
        tcase_add_test(tc, test_cache);
        tcase_add_test(tc, test_manifest_refused);
        tcase_add_test(tc, test_same_signer);
        tcase_add_test(tc, test_kept_data_keeps_the_signer);
        tcase_add_test(tc, test_update_without_record_refused);
        tcase_add_test(tc, test_interrupted_fail);
        tcase_add_test(tc, test_interrupted_kill);
        tcase_add_test(tc, test_sweep_first_install_killed);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
