/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Ownership checks of the state directory (statedir.h). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/statedir.h"

int owned_check(const char *path, const struct stat *st)
{
        uid_t me = geteuid();

        if (st->st_uid == me && !(st->st_mode & (S_IWGRP | S_IWOTH)))
                return 0;
        log_error("%s is owned by uid %u with mode %04o: cella trusts its state only in files "
                  "owned by uid %u (who runs it) and not writable by group or others; fix it "
                  "(chown %u, chmod go-w) or pass another --state-dir",
                  path, (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777), (unsigned)me,
                  (unsigned)me);
        return -EPERM;
}

int owned_check_fd(int fd, const char *path)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        return owned_check(path, &st);
}

/* fd (the directory path names) and each directory above it, up to "/": owned by
 * us or root, not writable by group or others unless sticky. */
static int check_chain(int fd, const char *path, const char *what, const char *state_dir)
{
        _cleanup_close_ int cur = -EBADF;
        _cleanup_free_ char *name = realpath(path, NULL);
        uid_t me = geteuid();
        struct stat st, below = {};

        cur = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (cur < 0)
                return negative_errno();
        for (unsigned depth = 0; depth < PATH_MAX / 2; depth++) {
                int parent;

                if (fstat(cur, &st) < 0)
                        return negative_errno();
                if (depth > 0 && st.st_dev == below.st_dev && st.st_ino == below.st_ino)
                        return 0; /* "/" is its own parent */
                if ((st.st_uid != me && st.st_uid != 0) ||
                    ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))) {
                        log_error("%s, on the way to %s %s, is owned by uid %u "
                                  "with mode %04o: whoever may write it can swap the state "
                                  "directory; expected owner root or uid %u, not writable by "
                                  "group or others (unless sticky, as /tmp)",
                                  name ?: "a directory", what, state_dir, (unsigned)st.st_uid,
                                  (unsigned)(st.st_mode & 07777), (unsigned)me);
                        return -EPERM;
                }
                below = st;
                parent = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (parent < 0)
                        return negative_errno();
                safe_close(cur);
                cur = parent;
                if (name) {
                        char *slash = strrchr(name, '/');

                        if (slash && slash != name)
                                *slash = 0;
                        else if (slash)
                                slash[1] = 0;
                }
        }
        return -ELOOP;
}

int dir_open_trusted(const char *path)
{
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!path || !*path)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = check_chain(fd, path, "the folder", path);
        if (r < 0)
                return r;
        return TAKE_FD(fd);
}

int state_dir_open(const char *path, bool create)
{
        bool created = false;
        int fd = state_dir_open_quiet(path, create, &created);

        if (fd >= 0 && created)
                log_info("created the state directory %s", path);
        return fd;
}

int state_dir_open_quiet(const char *path, bool create, bool *ret_created)
{
        _cleanup_close_ int pfd = -EBADF, fd = -EBADF;
        _cleanup_free_ char *copy = NULL, *copy2 = NULL;
        const char *parent, *base;
        bool created = false;
        struct stat st;
        int r;

        if (!path || !*path)
                return -EINVAL;
        copy = strdup(path);
        copy2 = strdup(path);
        if (!copy || !copy2)
                return -ENOMEM;
        parent = dirname(copy);
        base = basename(copy2);

        /* The parent first: nothing is made in a directory another user could write. */
        pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0) {
                r = negative_errno();
                if (r == -ENOENT && !create)
                        return r;
                if (r == -ENOENT)
                        log_error("cannot create the state directory %s: its parent %s does not "
                                  "exist (cella creates only the last component; create the "
                                  "parent first, or check the spelling)",
                                  path, parent);
                else
                        log_error_errno(r,
                                        "cannot open %s, the parent of the state directory %s: %m",
                                        parent, path);
                return r;
        }
        r = check_chain(pfd, parent, "the state directory", path);
        if (r < 0)
                return r;

        fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
                /* mkdirat() never follows a symlink: one there is EEXIST, then ELOOP. */
                if (mkdirat(pfd, base, STATE_DIR_MODE) == 0)
                        created = true;
                else if (errno != EEXIST) {
                        r = negative_errno();
                        log_error_errno(r, "cannot create the state directory %s: %m", path);
                        return r;
                }
                fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) {
                r = negative_errno();
                if (r == -ENOENT && !create)
                        return r;
                if (r == -ELOOP ||
                    (r == -ENOTDIR && fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                     S_ISLNK(st.st_mode))) {
                        log_error("the state directory %s is a symbolic link: cella does not "
                                  "follow it; pass the directory it points to",
                                  path);
                        return -ELOOP;
                }
                if (r == -ENOTDIR)
                        log_error("the state directory %s is not a directory", path);
                else
                        log_error_errno(r, "cannot open the state directory %s: %m", path);
                return r;
        }
        r = owned_check_fd(fd, path);
        if (r < 0)
                return r;
        *ret_created = created;
        return TAKE_FD(fd);
}

int owned_subdir_open(int dirfd, const char *name, mode_t mode, const char *path)
{
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
                return negative_errno();
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = owned_check_fd(fd, path);
        if (r < 0)
                return r;
        return TAKE_FD(fd);
}

const char *state_dir_default(void)
{
        static char buf[4096];
        const char *x = getenv("CELLA_STATE_DIR");

        if (x && *x)
                return x;
        if (geteuid() == 0)
                return "/var/lib/cella";
        x = getenv("XDG_STATE_HOME");
        if (x && x[0] == '/')
                snprintf(buf, sizeof buf, "%s/cella", x);
        else
                snprintf(buf, sizeof buf, "%s/.local/state/cella", getenv("HOME") ?: "/");
        return buf;
}
