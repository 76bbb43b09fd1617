/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What a directory tree holds, the way du(1) measures it: the sum of st_blocks * 512
 * over its entries, walked by directory fds with fstatat(AT_SYMLINK_NOFOLLOW),
 * following no symlink and not leaving the file system it starts on. A file with
 * several hard links counts once per link. Used for an app's /data: the broker's
 * fs.usage (broker/calls/usage.c, on a threadpool thread) and the size of the image a
 * plain /data migrates into (supervisor/storage.c).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct TreeUsage {
        /* Set by the caller. */
        dev_t dev;                /* the file system walked (st_dev of the top directory) */
        uint64_t entries_max;     /* entries visited at most (readdir's, whether fstatat
                                   * could see them or not), then truncated; 0: no bound */
        unsigned depth_max;       /* a directory depth_max levels below the top is not entered */
        uint64_t entry_bytes_min; /* each entry counts at least this many bytes; 0: its blocks */
        /* Added to by tree_usage_walk(). */
        uint64_t bytes;
        uint64_t entries; /* entries counted (those fstatat could see) */
        uint64_t visited; /* entries readdir gave: what entries_max bounds */
        bool truncated;   /* entries_max or depth_max cut the walk: bytes is a lower bound */
} TreeUsage;

/*
 * Adds up the entries below directory fd (taken: closed here), not fd's own blocks.
 * An entry gone between readdir and fstatat is skipped; a subdirectory on another
 * file system than u->dev is counted but not entered; one swapped for a symlink
 * after its fstatat is not entered (O_NOFOLLOW). No errors: what cannot be read is
 * not counted.
 */
void tree_usage_walk(TreeUsage *u, int fd);
