/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the store's files share (store.h is the interface). */

#include <dirent.h>

#include "store/store.h"

static inline void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

/* Fills err (may be NULL): path (an entry of the bundle or ""), key (a manifest key or
 * ""), and the message from fmt, each with bytes outside printable ASCII as '?'.
 * Returns r. */
int store_fail(StoreError *err, int r, const char *path, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

/* Opens the folder dirfd/name ("." for dirfd itself: a file description of its own,
 * at offset 0) with O_RDONLY | O_DIRECTORY | O_CLOEXEC | flags (O_NOFOLLOW) for
 * readdir() into *ret. Returns 0, or -errno with errno set (for a message's %m). */
int store_opendir_at(int dirfd, const char *name, int flags, DIR **ret);

/* Gives the folder dirfd and every folder beneath it mode 0555, children first.
 * Returns 0 or -errno. */
int store_seal(int dirfd);

/* Removes dirfd/name and everything beneath it (depth: 0), never following a symlink;
 * folders are made writable first (the store's are 0555). 0 (also when missing) or
 * -errno. */
int store_rm_rf_at(int dirfd, const char *name, unsigned depth);
