/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Helpers several unit suites share, header-only (each suite is an executable of
 * its own): removing a test's folder, writing a test's file, opening a folder.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"

/* rm_tree()'s nftw() callback: removes path, a folder made writable first (the
 * store seals its folders 0555). Best effort: an error does not stop the walk. */
static inline int rm_tree_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)flag;
        (void)ftw;
        if (S_ISDIR(st->st_mode))
                (void)chmod(path, 0700);
        (void)remove(path);
        return 0;
}

/* Removes path and everything beneath it, never following a symlink (nftw()
 * FTW_PHYS, children first); best effort, for a test's teardown. */
static inline void rm_tree(const char *path)
{
        (void)nftw(path, rm_tree_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes text to dir/name (made or truncated) with mode mode (fchmod: whatever the
 * umask); fails the running test on any error. */
static inline void put_file(const char *dir, const char *name, const char *text, mode_t mode)
{
        char path[512];
        _cleanup_close_ int fd = -EBADF;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, text, strlen(text)), 0);
        ck_assert_int_eq(fchmod(fd, mode), 0);
}

/* Opens the folder path (O_RDONLY | O_DIRECTORY | O_CLOEXEC); fails the running test
 * if it cannot. Returns the fd. */
static inline int open_dir(const char *path)
{
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
        return fd;
}
