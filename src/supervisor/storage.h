/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * An app's /data (docs/manifest.md "limits", docs/security.md "Storage"): an ext4
 * file system of its own, in a sparse image <state>/apps/<id>/data.img sized for
 * limits.storage, attached to a loop device (autoclear) and mounted nosuid, nodev,
 * noexec at <state>/apps/<id>/data, where it stays between runs. Each start hands
 * the jail a detached clone of that mount, so the total the app may write is the
 * file system's size: a write past it fails with ENOSPC, and nothing else on the
 * state directory's disk is touched.
 */

#include <stdint.h>

#include "policy/manifest.h"

/* limits.storage when a manifest sets none: 1 GiB (the image is sparse: disk is
 * taken only as the app writes). */
#define STORAGE_DEFAULT_LIMIT MANIFEST_STORAGE_DEFAULT

/* The smallest image: the smallest journal ext4 takes (1024 blocks of 4 KiB,
 * mke2fs(8) -J), which mke2fs wants to be at most half of the file system, and the
 * file system's own metadata. A limits.storage below about 6 MiB still gets about
 * 5.6 MiB of room. */
#define STORAGE_IMAGE_MIN (10ull << 20)

/* The block size of every image (mke2fs -b): the page size, which ext4 needs for
 * online resizing and loop devices handle best. */
#define STORAGE_BLOCK_SIZE 4096u

/* The limit an app's /data gets: its manifest's limits.storage, else
 * STORAGE_DEFAULT_LIMIT. In bytes. */
uint64_t storage_limit(const Manifest *m);

/*
 * The geometry of the image for a limit of `limit` bytes of files: its size in
 * bytes (a multiple of STORAGE_BLOCK_SIZE, at least STORAGE_IMAGE_MIN), the
 * journal's size in MiB (mke2fs -J size=) and the inode count (mke2fs -N). The
 * overhead ext4 takes (journal, one 256-byte inode per 8 KiB, group descriptors and
 * bitmaps) is added, so an app can write limit bytes into the empty file system
 * within 0.5% (measured for limits of 8 MiB to 1 GiB, docs/benchmarks.md).
 * inodes_min raises the inode count (a migrated directory's entries). Pure: no I/O.
 */
void storage_geometry(uint64_t limit, uint64_t inodes_min, uint64_t *ret_size,
                      unsigned *ret_journal_mib, uint64_t *ret_inodes);

/*
 * Makes the app's /data ready and returns a detached clone of its mount for the
 * jail (SANDBOX_BIND_FD), in *ret_fd (O_CLOEXEC; the caller closes it once the
 * spawn is done). state_dir: the state directory; id: a valid app id; limit: bytes,
 * storage_limit().
 *
 * Fast path (the file system is mounted already): a clone and a check that the
 * mount is the loop device backed by this app's image. Otherwise, under an flock
 * on apps/<id>/data.lock: creates the image (mke2fs), migrating a /data directory
 * of an earlier cella into it first (resumable: see docs/security.md "Storage");
 * attaches it to a loop device (LOOP_CONFIGURE, LO_FLAGS_AUTOCLEAR), or reuses the
 * loop device another mount namespace attached it to; mounts it at apps/<id>/data;
 * grows it online (EXT4_IOC_RESIZE_FS) when the limit grew. A smaller limit is not
 * applied to an existing image (ext4 shrinks only offline): a warning says so.
 *
 * Returns 0; -EOPNOTSUPP when this host has no loop devices and the app has no
 * image yet (the caller may fall back to the plain directory, and says so); or
 * another negative errno, with the reason logged.
 */
int storage_prepare(const char *state_dir, const char *id, uint64_t limit, int *ret_fd);

/*
 * Takes the app's /data file system down from <state>/apps/<id>/data, for `cella
 * forget` before its files are removed: under the same flock as storage_prepare(),
 * unmounts it if it is the mount of this app's image (detached if a host process
 * still holds a file of it open); the loop device goes with the last mount
 * (LO_FLAGS_AUTOCLEAR). Sandboxes running the app keep their own clones until they
 * end. state_dir: the state directory; id: a valid app id.
 *
 * Returns 1 if it unmounted, 0 if there was nothing of the image's mounted (no
 * image, a plain directory, nothing there), or a negative errno (-EINVAL for an
 * invalid id).
 */
int storage_release(const char *state_dir, const char *id);
