/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Steps of a spawn, shared by spawn.c and the files that implement them. The
 * child-side functions run between clone and exec: they return a negative errno
 * and say what they were doing in err->detail; they never print and never exit.
 */

#include <stdarg.h>
#include <stdio.h>

#include "sandbox/sandbox.h"

/* Fills err (step, -r as errno, formatted detail) and returns r. */
static inline int sandbox_fail(SandboxError *err, SandboxStep step, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static inline int sandbox_fail(SandboxError *err, SandboxStep step, int r, const char *fmt, ...)
{
        va_list ap;

        err->step = step;
        err->error = r < 0 ? -r : r;
        va_start(ap, fmt);
        vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
        va_end(ap);
        return r < 0 ? r : -r;
}

/* mount.c: builds the jail and pivots into it (child, root of the caller's userns). */
int jail_build(const SandboxSpec *spec, SandboxError *err);

/* userns.c */
/*
 * Formats one uid_map/gid_map (user_namespaces(7)) into buf (size bytes): inside id
 * inside maps to host_id; with ids_base (0: none) every other id 0..SANDBOX_IDS-1
 * inside maps to ids_base + itself, host_id's own place in the block left unused
 * when host_id lies outside it (an id from before blocks). Returns 0, -EINVAL (host
 * id 0 or -1, inside out of range, a block past the top, or host_id inside the block
 * at another place), -ENOBUFS.
 */
int userns_format_map(unsigned inside, uint32_t host_id, uint32_t ids_base, char *buf, size_t size);
int userns_write_maps(pid_t pid, uid_t host_uid, gid_t host_gid, uid_t ids_base);
int userns_become(uid_t uid, gid_t gid, SandboxError *err);

/* caps.c: locks securebits, then empties every capability set (child, in its userns). */
int caps_lock_securebits(SandboxError *err);
int caps_drop_all(SandboxError *err);

/* rlimit.c */
int rlimits_apply(const SandboxSpec *spec, SandboxError *err);
