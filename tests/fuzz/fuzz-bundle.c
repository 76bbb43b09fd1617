/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the store's bundle reader (src/store/bundle.c,
 * store_bundle_extract): any bytes in, as a bundle fd. Either it is refused with a
 * bounded, printable message, or what was extracted holds the documented invariants:
 * only regular files (0444 or 0555), folders (0555) and symlinks whose target cannot
 * leave the folder, with manifest.json at the top. Never, success or failure, is
 * anything written beside the folder extracted into.
 * Build: CC=clang meson setup build-fuzz -Dfuzzing=true -Dtests=false
 * Run:   build-fuzz/tests/fuzz/fuzz-bundle tests/fuzz/corpus/bundle
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "store/store-internal.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int top = -1; /* a private folder in /tmp: holds only "x" while a case runs */

static void check_printable(const char *s, size_t bufsize)
{
        size_t len = strnlen(s, bufsize);

        if (len == bufsize)
                abort();
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
                        abort();
}

/* Aborts unless every entry beneath dirfd is as store_bundle_extract() promises. */
static void check_tree(int dirfd, unsigned depth)
{
        DIR *d;
        struct dirent *de;
        struct stat st;
        int fd;

        if (depth > SIGNATURE_DEPTH_MAX + 1)
                abort();
        if (fstat(dirfd, &st) < 0 || (st.st_mode & 07777) != 0555)
                abort();
        fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || !(d = fdopendir(fd)))
                abort();
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        abort();
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd, de->d_name,
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                        if (sub < 0)
                                abort();
                        check_tree(sub, depth + 1);
                        close(sub);
                } else if (S_ISREG(st.st_mode)) {
                        if ((st.st_mode & 07777) != 0444 && (st.st_mode & 07777) != 0555)
                                abort();
                } else if (S_ISLNK(st.st_mode)) {
                        char t[SIGNATURE_PATH_MAX + 1];
                        ssize_t k = readlinkat(dirfd, de->d_name, t, sizeof t - 1);

                        if (k <= 0)
                                abort();
                        t[k] = 0;
                        if (!signature_link_target_ok(t))
                                abort();
                } else
                        abort(); /* a device, fifo or socket got through */
        }
        closedir(d);
}

/* Aborts unless top holds "x" and nothing else. */
static void check_nothing_beside(void)
{
        int fd = openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;

        if (!d)
                abort();
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
                    strcmp(de->d_name, "x") != 0)
                        abort();
        closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_close_ int in = -EBADF, dest = -EBADF;
        StoreError err;
        int r;

        if (top < 0) {
                char path[] = "/tmp/fuzz-bundle-XXXXXX";

                if (!mkdtemp(path))
                        abort();
                top = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (top < 0)
                        abort();
        }
        in = memfd_create("bundle", MFD_CLOEXEC);
        if (in < 0 || loop_write(in, data, size) < 0 || lseek(in, 0, SEEK_SET) != 0)
                abort();
        if (mkdirat(top, "x", 0700) < 0)
                abort();
        dest = openat(top, "x", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dest < 0)
                abort();
        r = store_bundle_extract(in, dest, NULL, NULL, &err);
        check_printable(err.message, sizeof err.message);
        check_printable(err.path, sizeof err.path);
        if (r == 0) {
                struct stat st;

                if (fstatat(dest, "manifest.json", &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISREG(st.st_mode))
                        abort();
                check_tree(dest, 0);
        } else if (r > 0 || !err.message[0])
                abort();
        check_nothing_beside();
        if (store_rm_rf_at(top, "x", 0) < 0)
                abort();
        return 0;
}
