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
int userns_write_maps(pid_t pid, uid_t host_uid, gid_t host_gid);
int userns_become(uid_t uid, gid_t gid, SandboxError *err);

/* caps.c: locks securebits, then empties every capability set (child, in its userns). */
int caps_lock_securebits(SandboxError *err);
int caps_drop_all(SandboxError *err);

/* rlimit.c */
int rlimits_apply(const SandboxSpec *spec, SandboxError *err);
