/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* du's measure of a directory tree (tree-usage.h). */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/tree-usage.h"

static void walk(TreeUsage *u, int fd, unsigned depth)
{
        DIR *d = fdopendir(fd);
        struct dirent *de;

        if (!d) {
                close(fd);
                return;
        }
        while ((de = readdir(d))) {
                struct stat st;
                uint64_t b;
                int sub;

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                /* The bound is on what readdir gives, not on what fstatat sees: an
                 * app that removes its files as fast as it makes them would otherwise
                 * keep a bounded walk going. */
                if (u->entries_max > 0 && u->visited >= u->entries_max) {
                        u->truncated = true;
                        break;
                }
                u->visited++;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue; /* gone meanwhile */
                u->entries++;
                b = (uint64_t)st.st_blocks * 512;
                u->bytes += b > u->entry_bytes_min ? b : u->entry_bytes_min;
                if (!S_ISDIR(st.st_mode) || st.st_dev != u->dev)
                        continue;
                if (depth + 1 >= u->depth_max) {
                        u->truncated = true;
                        continue;
                }
                /* O_NOFOLLOW: a directory swapped for a symlink since fstatat is skipped. */
                sub = openat(dirfd(d), de->d_name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
                if (sub >= 0)
                        walk(u, sub, depth + 1);
        }
        closedir(d);
}

void tree_usage_walk(TreeUsage *u, int fd)
{
        walk(u, fd, 0);
}
