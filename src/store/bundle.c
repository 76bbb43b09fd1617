/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bundles (store.h, docs/store.md "Bundle format"): one uncompressed tar, POSIX pax
 * (libarchive's "pax restricted": ustar headers, a pax extended header only for what
 * ustar cannot hold, such as a path past 100 bytes).
 *
 * Extraction does not use archive_write_disk(): it resolves paths from the process's
 * working directory, which a daemon serving other requests cannot chdir() for, and
 * its ARCHIVE_EXTRACT_SECURE_* flags refuse less than the store must (it would write
 * hardlinks and devices). Every entry is checked here first, then written with *at()
 * calls from the staging folder's fd that never follow a symlink (O_NOFOLLOW on every
 * component, O_EXCL on every file), which is what those flags
 * (SECURE_NOABSOLUTEPATHS, SECURE_NODOTDOT, SECURE_SYMLINKS) guard against, and more.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "store/store-internal.h"

#define CHUNK        (64u * 1024u)
#define RM_DEPTH_MAX (SIGNATURE_DEPTH_MAX + 4u)

/* Copies s into buf (size bytes) with every byte outside printable ASCII as '?':
 * names from a bundle are untrusted text that ends up on a terminal and in JSON. */
static void copy_safe(char *buf, size_t size, const char *s)
{
        size_t i = 0;

        for (; s && s[i] && i + 1 < size; i++)
                buf[i] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
        buf[i] = 0;
}

int store_fail(StoreError *err, int r, const char *path, const char *key, const char *fmt, ...)
{
        if (err) {
                char msg[sizeof err->message];
                va_list ap;

                copy_safe(err->path, sizeof err->path, path);
                copy_safe(err->key, sizeof err->key, key);
                va_start(ap, fmt);
                vsnprintf(msg, sizeof msg, fmt, ap);
                va_end(ap);
                copy_safe(err->message, sizeof err->message, msg);
        }
        return r;
}

int store_opendir_at(int dirfd, const char *name, int flags, DIR **ret)
{
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | flags);

        *ret = NULL;
        if (fd < 0)
                return negative_errno();
        *ret = fdopendir(fd);
        if (!*ret) {
                int r = negative_errno();

                safe_close(fd); /* keeps errno */
                return r;
        }
        return 0;
}

/* Removes dirfd/name and everything beneath it, never following a symlink; folders are
 * made writable first (the store's are 0555). 0 (also when missing) or -errno. */
int store_rm_rf_at(int parentfd, const char *name, unsigned depth)
{
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        struct stat st;
        int r;

        if (fstatat(parentfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (!S_ISDIR(st.st_mode))
                return unlinkat(parentfd, name, 0) < 0 && errno != ENOENT ? negative_errno() : 0;
        if (depth > RM_DEPTH_MAX)
                return -E2BIG;
        r = store_opendir_at(parentfd, name, O_NOFOLLOW, &d);
        if (r < 0)
                return r;
        (void)fchmod(dirfd(d), 0700);
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                r = store_rm_rf_at(dirfd(d), de->d_name, depth + 1);
                if (r < 0)
                        return r;
        }
        return unlinkat(parentfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? negative_errno() : 0;
}

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct WEntry {
        char *path;
        mode_t type; /* S_IFREG, S_IFDIR, S_IFLNK */
        bool exec;
        char *target;
} WEntry;

typedef struct WWalk {
        WEntry *v;
        size_t n;
        uint64_t bytes;
        StoreError *err;
} WWalk;

static void wwalk_done(WWalk *w)
{
        for (size_t i = 0; i < w->n; i++) {
                free(w->v[i].path);
                free(w->v[i].target);
        }
        free(w->v);
}

static int wwalk_dir(int dirfd, const char *rel, unsigned depth, WWalk *w)
{
        _cleanup_(closedirp) DIR *d = NULL;
        int r;

        r = store_opendir_at(dirfd, ".", 0, &d);
        if (r < 0)
                return store_fail(w->err, r, rel, "", "cannot open the folder: %m");
        for (;;) {
                _cleanup_free_ char *path = NULL;
                struct dirent *de;
                struct stat st;
                WEntry *e;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno)
                                return store_fail(w->err, negative_errno(), rel, "",
                                                  "cannot list the folder: %m");
                        return 0;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (asprintf(&path, "%s%s%s", rel, *rel ? "/" : "", de->d_name) < 0)
                        return -ENOMEM;
                if (strlen(path) >= SIGNATURE_PATH_MAX)
                        return store_fail(w->err, -E2BIG, path, "", "path longer than %u bytes",
                                          SIGNATURE_PATH_MAX - 1);
                if (!signature_path_is_clean(path))
                        return store_fail(w->err, -EPERM, path, "",
                                          "a control character in a file name");
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return store_fail(w->err, negative_errno(), path, "", "cannot stat: %m");
                if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
                        return store_fail(w->err, -EPERM, path, "",
                                          "a special file (device, fifo or socket): a bundle "
                                          "holds only files, folders and symlinks");
                if (w->n >= SIGNATURE_FILES_MAX)
                        return store_fail(w->err, -E2BIG, path, "", "more than %u entries",
                                          SIGNATURE_FILES_MAX);
                e = &w->v[w->n];
                *e = (WEntry){.type = st.st_mode & S_IFMT, .exec = (st.st_mode & 0111) != 0};
                e->path = TAKE_PTR(path);
                w->n++;
                if (S_ISREG(st.st_mode)) {
                        w->bytes += (uint64_t)st.st_size;
                        if (w->bytes > SIGNATURE_BYTES_MAX)
                                return store_fail(w->err, -E2BIG, e->path, "",
                                                  "the folder holds more than %llu bytes",
                                                  (unsigned long long)SIGNATURE_BYTES_MAX);
                } else if (S_ISLNK(st.st_mode)) {
                        char t[SIGNATURE_PATH_MAX];
                        ssize_t k = readlinkat(dirfd, de->d_name, t, sizeof t);

                        if (k < 0)
                                return store_fail(w->err, negative_errno(), e->path, "",
                                                  "cannot read the symlink: %m");
                        if ((size_t)k >= sizeof t)
                                return store_fail(w->err, -E2BIG, e->path, "",
                                                  "symlink target too long");
                        t[k] = 0;
                        if (!signature_link_target_ok(t) || !signature_path_is_clean(t))
                                return store_fail(w->err, -ELOOP, e->path, "",
                                                  "a symlink that may lead out of the folder "
                                                  "(absolute, or with a '..'): '%s'",
                                                  t);
                        e->target = strdup(t);
                        if (!e->target)
                                return -ENOMEM;
                } else {
                        _cleanup_close_ int sub = -EBADF;

                        if (depth + 1 > SIGNATURE_DEPTH_MAX)
                                return store_fail(w->err, -E2BIG, e->path, "",
                                                  "folders nested more than %u deep",
                                                  SIGNATURE_DEPTH_MAX);
                        sub = openat(dirfd, de->d_name,
                                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0)
                                return store_fail(w->err, negative_errno(), e->path, "",
                                                  "cannot open: %m");
                        r = wwalk_dir(sub, e->path, depth + 1, w);
                        if (r < 0)
                                return r;
                }
        }
}

static int wentry_cmp(const void *a, const void *b)
{
        return strcmp(((const WEntry *)a)->path, ((const WEntry *)b)->path);
}

static int archive_fail(struct archive *a, StoreError *err, const char *path, const char *what)
{
        return store_fail(err, -EIO, path, "", "%s: %s", what,
                          archive_error_string(a) ?: "libarchive failed");
}

/* Writes the regular file dirfd/e->path's bytes (listed as st) to a. */
static int write_file(struct archive *a, int dirfd, const WEntry *e, StoreError *err)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct archive_entry *ae;
        struct stat st;
        uint64_t left;
        int r = 0;

        fd = openat(dirfd, e->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
                return store_fail(err, negative_errno(), e->path, "", "cannot open: %m");
        if (fstat(fd, &st) < 0)
                return store_fail(err, negative_errno(), e->path, "", "cannot stat: %m");
        if (!S_ISREG(st.st_mode))
                return store_fail(err, -EAGAIN, e->path, "", "changed while being read");
        ae = archive_entry_new();
        if (!ae)
                return -ENOMEM;
        archive_entry_set_pathname(ae, e->path);
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_perm(ae, e->exec ? 0755 : 0644);
        archive_entry_set_size(ae, st.st_size);
        archive_entry_set_mtime(ae, 0, 0);
        archive_entry_set_uid(ae, 0);
        archive_entry_set_gid(ae, 0);
        if (archive_write_header(a, ae) != ARCHIVE_OK) {
                archive_entry_free(ae);
                return archive_fail(a, err, e->path, "cannot write the header");
        }
        archive_entry_free(ae);
        buf = malloc(CHUNK);
        if (!buf)
                return -ENOMEM;
        for (left = (uint64_t)st.st_size; left > 0;) {
                ssize_t k = RETRY_EINTR(read(fd, buf, left < CHUNK ? left : CHUNK));

                if (k < 0)
                        return store_fail(err, negative_errno(), e->path, "", "cannot read: %m");
                if (k == 0)
                        return store_fail(err, -EAGAIN, e->path, "",
                                          "changed while being read (shorter)");
                if (archive_write_data(a, buf, (size_t)k) != k)
                        return archive_fail(a, err, e->path, "cannot write");
                left -= (uint64_t)k;
        }
        return r;
}

int store_bundle_write(int dirfd, int out_fd, StoreError *err)
{
        struct archive *a = NULL;
        WWalk w = {.err = err};
        bool manifest = false;
        int r;

        if (err)
                *err = (StoreError){};
        w.v = calloc(SIGNATURE_FILES_MAX, sizeof(WEntry));
        if (!w.v)
                return -ENOMEM;
        r = wwalk_dir(dirfd, "", 0, &w);
        if (r < 0)
                goto out;
        qsort(w.v, w.n, sizeof(WEntry), wentry_cmp);
        for (size_t i = 0; i < w.n; i++)
                if (strcmp(w.v[i].path, "manifest.json") == 0 && w.v[i].type == S_IFREG)
                        manifest = true;
        if (!manifest) {
                r = store_fail(err, -ENOENT, "manifest.json", "",
                               "no manifest.json (a regular file) at the top of the folder");
                goto out;
        }
        a = archive_write_new();
        if (!a) {
                r = -ENOMEM;
                goto out;
        }
        if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
            archive_write_open_fd(a, out_fd) != ARCHIVE_OK) {
                r = archive_fail(a, err, "", "cannot start the bundle");
                goto out;
        }
        for (size_t i = 0; i < w.n && r == 0; i++) {
                const WEntry *e = &w.v[i];
                struct archive_entry *ae;

                if (e->type == S_IFREG) {
                        r = write_file(a, dirfd, e, err);
                        continue;
                }
                ae = archive_entry_new();
                if (!ae) {
                        r = -ENOMEM;
                        break;
                }
                archive_entry_set_pathname(ae, e->path);
                archive_entry_set_mtime(ae, 0, 0);
                archive_entry_set_uid(ae, 0);
                archive_entry_set_gid(ae, 0);
                if (e->type == S_IFDIR) {
                        archive_entry_set_filetype(ae, AE_IFDIR);
                        archive_entry_set_perm(ae, 0755);
                } else {
                        archive_entry_set_filetype(ae, AE_IFLNK);
                        archive_entry_set_perm(ae, 0777);
                        archive_entry_set_symlink(ae, e->target);
                }
                if (archive_write_header(a, ae) != ARCHIVE_OK)
                        r = archive_fail(a, err, e->path, "cannot write the header");
                archive_entry_free(ae);
        }
        if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
                r = archive_fail(a, err, "", "cannot finish the bundle");
out:
        if (a)
                archive_write_free(a);
        wwalk_done(&w);
        return r;
}

/* ---- reading ---------------------------------------------------------------------------- */

/*
 * Checks an entry's path and splits it: *ret_rel the path without a leading "./" and
 * trailing '/' (in buf), "" for the top folder itself. Returns 0, or -EPERM / -E2BIG
 * with err naming it.
 */
static int check_path(const char *raw, char buf[SIGNATURE_PATH_MAX], const char **ret_rel,
                      unsigned *ret_depth, StoreError *err)
{
        const char *p = raw;
        size_t n;
        unsigned depth = 0;

        if (!raw || !*raw)
                return store_fail(err, -EPERM, "", "", "an entry with an empty path");
        if (!signature_path_is_clean(raw))
                return store_fail(err, -EPERM, raw, "", "a control character in a path");
        if (raw[0] == '/')
                return store_fail(err, -EPERM, raw, "",
                                  "an absolute path: every entry must be relative to the app "
                                  "folder");
        while (p[0] == '.' && p[1] == '/')
                p += 2;
        n = strlen(p);
        if (n >= SIGNATURE_PATH_MAX)
                return store_fail(err, -E2BIG, raw, "", "path longer than %u bytes",
                                  SIGNATURE_PATH_MAX - 1);
        memcpy(buf, p, n + 1);
        while (n > 0 && buf[n - 1] == '/')
                buf[--n] = 0;
        if (n == 0 || strcmp(buf, ".") == 0) {
                *ret_rel = "";
                *ret_depth = 0;
                return 0;
        }
        for (const char *c = buf; *c;) {
                const char *slash = strchr(c, '/');
                size_t len = slash ? (size_t)(slash - c) : strlen(c);

                if (len == 0)
                        return store_fail(err, -EPERM, raw, "", "an empty component ('//')");
                if (len == 1 && c[0] == '.')
                        return store_fail(err, -EPERM, raw, "", "a '.' component inside the path");
                if (len == 2 && c[0] == '.' && c[1] == '.')
                        return store_fail(err, -EPERM, raw, "",
                                          "a '..' component: the path would leave the app "
                                          "folder");
                depth++;
                c += len;
                if (*c == '/')
                        c++;
        }
        if (depth > SIGNATURE_DEPTH_MAX + 1)
                return store_fail(err, -E2BIG, raw, "", "folders nested more than %u deep",
                                  SIGNATURE_DEPTH_MAX);
        *ret_rel = buf;
        *ret_depth = depth;
        return 0;
}

/*
 * Opens the folder that holds rel (a checked path) beneath destfd, making missing
 * folders on the way (mode 0700 until store_seal()); never follows a symlink. Returns
 * the folder's fd and *ret_name (inside rel), or -errno with err naming the entry.
 */
static int open_parent(int destfd, const char *raw, char *rel, const char **ret_name,
                       StoreError *err)
{
        _cleanup_close_ int cur = -EBADF;
        char *c = rel, *slash;

        cur = fcntl(destfd, F_DUPFD_CLOEXEC, 3);
        if (cur < 0)
                return negative_errno();
        while ((slash = strchr(c, '/'))) {
                int next;

                *slash = 0;
                next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0 && errno == ENOENT) {
                        if (mkdirat(cur, c, 0700) < 0 && errno != EEXIST) {
                                *slash = '/';
                                return store_fail(err, negative_errno(), raw, "",
                                                  "cannot make its folder: %m");
                        }
                        next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                }
                *slash = '/';
                if (next < 0) {
                        int e = errno;

                        if (e == ELOOP || e == ENOTDIR)
                                return store_fail(err, -EPERM, raw, "",
                                                  "its path goes through a symlink or a file "
                                                  "listed before it");
                        return store_fail(err, -e, raw, "", "cannot open its folder: %m");
                }
                safe_close(cur);
                cur = next;
                c = slash + 1;
        }
        *ret_name = c;
        return TAKE_FD(cur);
}

static int extract_file(struct archive *a, int pfd, const char *name, const char *raw, bool exec,
                        uint64_t *bytes, StoreError *err)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;

        fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                if (errno == EEXIST)
                        return store_fail(err, -EEXIST, raw, "", "listed twice in the bundle");
                return store_fail(err, negative_errno(), raw, "", "cannot create: %m");
        }
        buf = malloc(CHUNK);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                la_ssize_t k = archive_read_data(a, buf, CHUNK);
                int r;

                if (k == 0)
                        break;
                if (k < 0)
                        return store_fail(err, -EBADMSG, raw, "",
                                          "the bundle is truncated or corrupt here: %s",
                                          archive_error_string(a) ?: "read error");
                *bytes += (uint64_t)k;
                if (*bytes > SIGNATURE_BYTES_MAX)
                        return store_fail(err, -E2BIG, raw, "",
                                          "the bundle holds more than %llu bytes of files",
                                          (unsigned long long)SIGNATURE_BYTES_MAX);
                r = loop_write(fd, buf, (size_t)k);
                if (r < 0)
                        return store_fail(err, r, raw, "", "cannot write: %s", strerror(-r));
        }
        if (fchmod(fd, exec ? 0555 : 0444) < 0)
                return store_fail(err, negative_errno(), raw, "", "cannot chmod: %m");
        return 0;
}

/* Gives every folder beneath dirfd (and dirfd itself) mode 0555, children first. */
static int seal(int dirfd, unsigned depth)
{
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int r;

        if (depth > SIGNATURE_DEPTH_MAX + 2)
                return -E2BIG;
        r = store_opendir_at(dirfd, ".", 0, &d);
        if (r < 0)
                return r;
        while ((de = readdir(d))) {
                _cleanup_close_ int sub = -EBADF;

                if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 ||
                    strcmp(de->d_name, "..") == 0)
                        continue;
                sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0)
                        return negative_errno();
                r = seal(sub, depth + 1);
                if (r < 0)
                        return r;
        }
        return fchmod(dirfd, 0555) < 0 ? negative_errno() : 0;
}

int store_seal(int dirfd)
{
        return seal(dirfd, 0);
}

static const char *type_name(mode_t t)
{
        switch (t) {
        case AE_IFCHR:
                return "a character device";
        case AE_IFBLK:
                return "a block device";
        case AE_IFIFO:
                return "a fifo";
        case AE_IFSOCK:
                return "a socket";
        default:
                return "an entry of an unknown type";
        }
}

int store_bundle_extract(int bundle_fd, int destfd, uint64_t *ret_files, uint64_t *ret_bytes,
                         StoreError *err)
{
        struct archive *a;
        struct archive_entry *ae;
        uint64_t files = 0, bytes = 0;
        bool manifest = false;
        int r = 0, ar;

        if (err)
                *err = (StoreError){};
        a = archive_read_new();
        if (!a)
                return -ENOMEM;
        /* tar only (ustar, pax, GNU): no compression filters, no other formats. */
        if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
            archive_read_open_fd(a, bundle_fd, CHUNK) != ARCHIVE_OK) {
                r = store_fail(err, -EBADMSG, "", "",
                               "not a bundle (an uncompressed tar, as 'cella bundle' makes): %s",
                               archive_error_string(a) ?: "cannot read it");
                goto out;
        }
        while ((ar = archive_read_next_header(a, &ae)) != ARCHIVE_EOF) {
                char buf[SIGNATURE_PATH_MAX];
                const char *raw, *rel = "", *name = NULL;
                _cleanup_close_ int pfd = -EBADF;
                unsigned depth = 0;
                mode_t type;

                if (ar != ARCHIVE_OK) {
                        /* ARCHIVE_WARN too: a header libarchive had to guess at. */
                        const char *why = archive_error_string(a) ?: "bad header";

                        if (files == 0)
                                r = store_fail(err, -EBADMSG, "", "",
                                               "not a bundle (an uncompressed tar, as 'cella "
                                               "bundle' makes), or truncated: %s",
                                               why);
                        else
                                r = store_fail(err, -EBADMSG, "", "",
                                               "the bundle is truncated or corrupt after %llu "
                                               "entries: %s",
                                               (unsigned long long)files, why);
                        goto out;
                }
                raw = archive_entry_pathname(ae);
                if (++files > SIGNATURE_FILES_MAX) {
                        r = store_fail(err, -E2BIG, raw, "", "the bundle has more than %u entries",
                                       SIGNATURE_FILES_MAX);
                        goto out;
                }
                r = check_path(raw, buf, &rel, &depth, err);
                if (r < 0)
                        goto out;
                if (archive_entry_hardlink(ae)) {
                        r = store_fail(err, -EPERM, raw, "",
                                       "a hardlink (to '%s'): a bundle holds only files, "
                                       "folders and symlinks",
                                       archive_entry_hardlink(ae));
                        goto out;
                }
                type = archive_entry_filetype(ae);
                if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
                        r = store_fail(err, -EPERM, raw, "",
                                       "%s: a bundle holds only files, folders and symlinks",
                                       type_name(type));
                        goto out;
                }
                if (!*rel) {
                        if (type != AE_IFDIR) {
                                r = store_fail(err, -EPERM, raw, "",
                                               "the top folder listed as a file");
                                goto out;
                        }
                        continue;
                }
                if (type == AE_IFREG && archive_entry_size_is_set(ae) &&
                    (uint64_t)archive_entry_size(ae) > SIGNATURE_BYTES_MAX - bytes) {
                        r = store_fail(err, -E2BIG, raw, "",
                                       "the bundle holds more than %llu bytes of files",
                                       (unsigned long long)SIGNATURE_BYTES_MAX);
                        goto out;
                }
                pfd = open_parent(destfd, raw, buf, &name, err);
                if (pfd < 0) {
                        r = pfd;
                        goto out;
                }
                if (type == AE_IFDIR) {
                        struct stat st;

                        if (depth > SIGNATURE_DEPTH_MAX) {
                                r = store_fail(err, -E2BIG, raw, "",
                                               "folders nested more than %u deep",
                                               SIGNATURE_DEPTH_MAX);
                                goto out;
                        }
                        if (mkdirat(pfd, name, 0700) < 0) {
                                if (errno != EEXIST ||
                                    fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                                    !S_ISDIR(st.st_mode)) {
                                        r = store_fail(
                                                err, errno == EEXIST ? -EEXIST : negative_errno(),
                                                raw, "",
                                                errno == EEXIST ? "listed twice in the bundle"
                                                                : "cannot make the folder: %m");
                                        goto out;
                                }
                        }
                } else if (type == AE_IFLNK) {
                        const char *t = archive_entry_symlink(ae);

                        if (!t || !signature_link_target_ok(t) || !signature_path_is_clean(t)) {
                                r = store_fail(err, -EPERM, raw, "",
                                               "a symlink that may lead out of the app folder "
                                               "(its target is absolute, empty or has a '..': "
                                               "'%s')",
                                               t ?: "");
                                goto out;
                        }
                        if (strlen(t) >= SIGNATURE_PATH_MAX) {
                                r = store_fail(err, -E2BIG, raw, "", "symlink target too long");
                                goto out;
                        }
                        if (symlinkat(t, pfd, name) < 0) {
                                r = store_fail(err, errno == EEXIST ? -EEXIST : negative_errno(),
                                               raw, "",
                                               errno == EEXIST ? "listed twice in the bundle"
                                                               : "cannot make the symlink: %m");
                                goto out;
                        }
                } else {
                        if (depth == 1 && strcmp(name, "manifest.json") == 0)
                                manifest = true;
                        r = extract_file(a, pfd, name, raw, (archive_entry_perm(ae) & 0111) != 0,
                                         &bytes, err);
                        if (r < 0)
                                goto out;
                }
        }
        if (!manifest) {
                r = store_fail(err, -ENOENT, "manifest.json", "",
                               "the bundle has no manifest.json (a regular file at its top)");
                goto out;
        }
        r = store_seal(destfd);
        if (r < 0) {
                r = store_fail(err, r, "", "", "cannot make the files read-only: %s", strerror(-r));
                goto out;
        }
        if (ret_files)
                *ret_files = files;
        if (ret_bytes)
                *ret_bytes = bytes;
out:
        archive_read_free(a);
        return r;
}

/* ---- signing and verifying a bundle file ------------------------------------------------- */

/* Makes a private folder in $TMPDIR (else /tmp): *ret_parent its parent's fd, name its
 * name. Returns the folder's fd or -errno. */
static int tmp_folder(int *ret_parent, char name[32])
{
        const char *tmp = getenv("TMPDIR");
        _cleanup_close_ int parent = -EBADF;
        int fd;

        parent = open(tmp && tmp[0] == '/' ? tmp : "/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (parent < 0)
                return negative_errno();
        for (int tries = 0; tries < 16; tries++) {
                uint32_t x;

                if (getrandom(&x, sizeof x, 0) != sizeof x)
                        return negative_errno();
                snprintf(name, 32, "cella-bundle-%08x", x);
                if (mkdirat(parent, name, 0700) < 0) {
                        if (errno == EEXIST)
                                continue;
                        return negative_errno();
                }
                fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return negative_errno();
                *ret_parent = TAKE_FD(parent);
                return fd;
        }
        return -EEXIST;
}

/*
 * Extracts the bundle in_fd into a new temporary folder (tmp_folder()): returns its
 * fd, *ret_parent and name for store_rm_rf_at() when done, or -errno with err
 * filled (cleared first) and nothing left behind.
 */
static int extract_to_tmp(int in_fd, int *ret_parent, char name[32], StoreError *err)
{
        _cleanup_close_ int parent = -EBADF, dir = -EBADF;
        int r;

        if (err)
                *err = (StoreError){};
        dir = tmp_folder(&parent, name);
        if (dir < 0)
                return store_fail(err, dir, "", "", "cannot make a temporary folder: %s",
                                  strerror(-dir));
        r = store_bundle_extract(in_fd, dir, NULL, NULL, err);
        if (r < 0) {
                (void)store_rm_rf_at(parent, name, 0);
                return r;
        }
        *ret_parent = TAKE_FD(parent);
        return TAKE_FD(dir);
}

static int signature_fail(int r, const SignatureError *se, StoreError *err)
{
        return store_fail(err, r, se->path[0] == '/' ? "" : se->path, "", "%s",
                          se->message ?: strerror(-r));
}

int store_bundle_sign(int in_fd, int out_fd, const char *key_path,
                      char ret_key_id[SIGNATURE_KEY_ID_CHARS + 1], StoreError *err)
{
        _cleanup_close_ int parent = -EBADF, dir = -EBADF;
        SignatureError se = {};
        char name[32];
        int r;

        dir = extract_to_tmp(in_fd, &parent, name, err);
        if (dir < 0)
                return dir;
        /* SIGNATURE goes at the top: writable for that (the bundle's modes are normalised
         * again when it is written). */
        if (fchmod(dir, 0700) < 0) {
                r = store_fail(err, negative_errno(), "", "",
                               "cannot chmod the temporary folder: %m");
                goto out;
        }
        r = signature_sign(dir, key_path, &se);
        if (r < 0) {
                r = signature_fail(r, &se, err);
                goto out;
        }
        r = signature_verify_signer(dir, ret_key_id, NULL, &se);
        if (r < 0) {
                r = signature_fail(r, &se, err);
                goto out;
        }
        r = store_bundle_write(dir, out_fd, err);
out:
        (void)store_rm_rf_at(parent, name, 0);
        return r;
}

int store_bundle_verify(int in_fd, const char *state_dir,
                        char ret_key_id[SIGNATURE_KEY_ID_CHARS + 1], bool *ret_trusted,
                        StoreError *err)
{
        _cleanup_close_ int parent = -EBADF, dir = -EBADF;
        SignatureError se = {};
        char name[32];
        int r;

        *ret_trusted = false;
        dir = extract_to_tmp(in_fd, &parent, name, err);
        if (dir < 0)
                return dir;
        r = signature_verify_signer(dir, ret_key_id, NULL, &se);
        if (r < 0) {
                r = signature_fail(r, &se, err);
                goto out;
        }
        r = signature_verify(dir, state_dir, NULL, &se);
        if (r == 0)
                *ret_trusted = true;
        else if (r == -ENOKEY)
                r = store_fail(err, 0, se.path, "", "%s", se.message ?: "not trusted");
        else
                r = signature_fail(r, &se, err);
out:
        (void)store_rm_rf_at(parent, name, 0);
        return r;
}
