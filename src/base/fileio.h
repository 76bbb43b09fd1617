/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/*
 * Writes the string s (no newline added) to dirfd/path, opened O_WRONLY|O_CLOEXEC
 * (no O_CREAT: meant for cgroupfs and procfs knobs that exist already).
 * dirfd: a directory fd or AT_FDCWD. Returns 0, or -errno of open/write; a short
 * write is -EIO.
 */
int write_string_at(int dirfd, const char *path, const char *s);

/*
 * Reads all of dirfd/path into a NUL-terminated heap buffer, refusing files larger
 * than max_size bytes (-EFBIG). Returns 0 and *ret (caller frees) and, if ret_size
 * is not NULL, the length in bytes; or -errno of open/read.
 */
int read_file_at(int dirfd, const char *path, size_t max_size, char **ret, size_t *ret_size);

/*
 * Reads a whole fd from its current offset, at most max_size bytes (-EFBIG past it).
 * Returns 0 and *ret (NUL-terminated, caller frees) and *ret_size, or -errno.
 */
int read_full_fd(int fd, size_t max_size, char **ret, size_t *ret_size);

/*
 * Creates path and its missing parents with the given mode (like mkdir -p).
 * Existing directories are fine. Returns 0 or -errno of mkdir.
 */
int mkdir_p(const char *path, mode_t mode);

/* Writes all n bytes of buf to fd, retrying on EINTR and short writes. 0 or -errno. */
int loop_write(int fd, const void *buf, size_t n);

/* Sets or clears O_NONBLOCK on fd. Returns 0 or -errno. */
int fd_nonblock(int fd, int nonblock);

/*
 * Opens fd's file again through /proc/self/fd/N with flags (open(2) flags;
 * O_CLOEXEC is added): a new open file description, whose file status flags
 * (O_NONBLOCK) are its own, not shared with whoever else holds fd (the shell that
 * shares a terminal, the other writers of a pipe). For a pipe or FIFO this opens
 * the same pipe (and fails with ENXIO when writing is asked and nobody reads it);
 * for a pty master it would make a new pty: callers must not pass one. Returns
 * the new fd or -errno.
 */
int fd_reopen(int fd, int flags);

/*
 * Whether path is canonical as it is: what realpath(3) would give back unchanged.
 * That is: absolute, no empty, "." or ".." component, no '/' at its end, and
 * openat2(2) with RESOLVE_NO_SYMLINKS opens it (O_PATH), so no component of it is
 * a symlink (the kernel refuses one with ELOOP) and it exists. Two system calls
 * (openat2, close) where glibc's realpath() lstat()s and readlink()s every
 * component. Returns 1 (canonical), 0 (not: a symlink on the way, a "." or
 * "..", a relative path, or a kernel without openat2), or -errno of openat2
 * (-ENOENT, -EACCES, -ENOTDIR, ...).
 */
int path_is_canonical(const char *path);

/*
 * realpath(path) in *ret (caller frees), without realpath()'s walk when
 * path_is_canonical(path): then a copy of path. Returns 0 or -errno (realpath's:
 * -ENOENT, -EACCES, -ELOOP, -ENOMEM, ...).
 */
int path_canonicalize(const char *path, char **ret);
