/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who may be trusted with a state directory (docs/security.md, "The state
 * directory"). cella keeps its grants, app records, audit log, logs and control
 * sockets there and, as root, believes what it finds: so, as OpenSSH's StrictModes
 * and sudo's sudoers checks do, it refuses a directory that anyone but the caller
 * could have written.
 */

#include <stdbool.h>
#include <sys/stat.h>

/*
 * The state directory when no --state-dir names one, the same for `cella` and
 * `cellad` (docs/cli.md, docs/daemon.md): $CELLA_STATE_DIR when set and not empty,
 * else /var/lib/cella as root, else $XDG_STATE_HOME/cella when that is an absolute
 * path (XDG Base Directory Specification), else $HOME/.local/state/cella. Returns
 * a static string or the environment's, which live until exit (not thread-safe).
 */
const char *state_dir_default(void);

/* The mode a state directory is created with. */
#define STATE_DIR_MODE 0711

/*
 * Checks st, the fstat/lstat of path (a state directory or something cella opens in
 * one), as StrictModes does: owned by geteuid() and not writable by group or
 * others. On failure logs one error naming path, the owner and mode found and what
 * is expected, and returns -EPERM; else 0.
 */
int owned_check(const char *path, const struct stat *st);

/* owned_check() of fd's fstat. Returns 0, -EPERM (logged) or -errno of fstat. */
int owned_check_fd(int fd, const char *path);

/*
 * Opens the state directory path (O_DIRECTORY, not through a symlink) and checks
 * that it and every directory above it could only have been written by the caller
 * or root:
 *  - its parent (through whatever symlinks the parent's path holds) and each
 *    directory above it up to "/" (walked through "..") is owned by geteuid() or
 *    root, and not writable by group or others unless it has the sticky bit (/tmp:
 *    an entry there can only be renamed or removed by its owner); checked first,
 *    so nothing is made in a directory another user could write;
 *  - path itself is not a symlink, is owned by geteuid() and not writable by group
 *    or others (owned_check()).
 * With create and path missing, makes its last component (mkdirat, mode
 * STATE_DIR_MODE & ~umask, never following a symlink) and says so on stderr once;
 * a missing parent is an error (a mistyped --state-dir makes no tree).
 * Returns the directory's fd (O_CLOEXEC), or -errno after one message naming the
 * path, what was found and what is expected: -ENOENT missing (without create: no
 * message) or its parent missing, -ENOTDIR, -ELOOP a symlink, -EPERM someone
 * else's or writable by others, -EROFS and the like from mkdir.
 */
int state_dir_open(const char *path, bool create);

/* state_dir_open() that says nothing of a directory it made, but sets *ret_created
 * (false when it was there): for a kernel, whose stderr is not yet non-blocking when
 * it opens its state, and says it later. */
int state_dir_open_quiet(const char *path, bool create, bool *ret_created);

/*
 * Opens the directory path (O_DIRECTORY, through symlinks) and checks it and every
 * directory above it as state_dir_open() checks the parent of a state directory:
 * each owned by geteuid() or root, and not writable by group or others unless
 * sticky. For a file cella makes in a directory it was given (cellad's --socket):
 * nobody else can swap or replace it there. Returns the fd (O_CLOEXEC), or -errno:
 * -EPERM (logged, naming the directory and what was found), -ENOENT, -ENOTDIR.
 */
int dir_open_trusted(const char *path);

/*
 * Makes dirfd/name if missing (mode, & ~umask) and opens it, not through a symlink,
 * checked with owned_check() (path names it in the message). Returns the fd or
 * -errno (-ENOTDIR, -ELOOP for a symlink, -EPERM logged).
 */
int owned_subdir_open(int dirfd, const char *name, mode_t mode, const char *path);
