/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Steps of a spawn, shared by spawn.c and the files that implement them. The
 * child-side functions run between clone and exec: they return a negative errno
 * and say what they were doing in err->detail; they never print and never exit.
 */

#include <stdarg.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

/* Fills err (step, -r as errno, formatted detail) and returns r. */
static inline int sandbox_fail(SandboxError *err, SandboxStep step, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static inline int sandbox_fail(SandboxError *err, SandboxStep step, int r, const char *fmt, ...)
{
        va_list ap;

        err->step = step;
        err->error = r < 0 ? -r : r;
        err->exec_cause = SANDBOX_EXEC_CAUSE_NONE;
        va_start(ap, fmt);
        vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
        va_end(ap);
        return r < 0 ? r : -r;
}

/*
 * Credential changes in the spawned child, one thread of its own, by the raw
 * system calls: glibc's setresuid(), setresgid() and setgroups() change every
 * thread of the process (nptl's __nptl_setxid), and in a child cloned by a raw
 * clone3() from a process that had threads glibc still lists those threads, so
 * each call signals every one of them (tgkill() answers ESRCH for each: a dozen
 * calls per change, seen under strace in cellad's children; docs/benchmarks.md,
 * "Start through cellad"). The kernel's calls change the calling thread, which is
 * the whole child. Each returns 0 or -1 with errno, as the glibc calls.
 */
static inline int sandbox_setresuid(uid_t r, uid_t e, uid_t s)
{
        return (int)syscall(SYS_setresuid, r, e, s);
}

static inline int sandbox_setresgid(gid_t r, gid_t e, gid_t s)
{
        return (int)syscall(SYS_setresgid, r, e, s);
}

static inline int sandbox_setgroups_none(void)
{
        return (int)syscall(SYS_setgroups, 0, NULL);
}

/*
 * mount.c's test hook, NULL in the product: when set, called in the sandbox's setup
 * process (before pivot_root) right before each try to attach a bound file (not a
 * directory), with the file's path inside the jail (relative, no leading '/').
 * test-sandbox sets it to replace the file's source at that exact point, once or
 * on every try, to check what a replaced file does to a start.
 */
extern void (*sandbox_test_before_file_attach)(const char *target);

/* How many times mount.c tries to attach a bound file that is replaced meanwhile
 * (its comment above attach_tree_fresh says why and what it bounds). */
#define JAIL_ATTACH_TRIES 32

/* mount.c: builds the jail and pivots into it (child, root of the caller's userns):
 * jail_skeleton() then jail_finish(). Returns 0 or -errno with err filled. */
int jail_build(const SandboxSpec *spec, SandboxError *err);

/*
 * rootfs.c: the OCI jail of spec->rootfs (the caller's root file system and its
 * mounts, devices, sysctls, masked and read-only paths), then pivot_root into it.
 * Child, root of the caller's user namespace, once it is in every other namespace of
 * the sandbox (after child_join(): sysfs, cgroup and sysctls then are the sandbox's).
 * Returns 0 or -errno with err (SANDBOX_STEP_MOUNT naming the mount, "mount 3 (tmpfs
 * on /dev): ...", SANDBOX_STEP_NAMESPACE for a sysctl, SANDBOX_STEP_PIVOT).
 */
int jail_build_rootfs(const SandboxSpec *spec, SandboxError *err);

/*
 * rootfs.c: the checks of spec->rootfs (none: 0) in the caller, before any clone:
 * absolute paths without ".." (root, targets, devices, masked and read-only paths),
 * the root a directory, bounds below, mount flags and propagation mount(2) knows and
 * a jail can honour, device types, sysctls "key=value" of a namespaced key whose
 * namespace is the sandbox's own (net.* with a new or joined network namespace, the
 * ipc ones with an ipc namespace not the caller's), a new mount namespace. Returns 0
 * or -errno with err at SANDBOX_STEP_PREPARE naming the entry.
 */
int rootfs_check_spec(const SandboxSpec *spec, SandboxError *err);

/* Bounds of SandboxRootfs's lists (rootfs_check_spec()). */
#define SANDBOX_ROOTFS_MAX_MOUNTS  1024
#define SANDBOX_ROOTFS_MAX_DEVICES 1024
#define SANDBOX_ROOTFS_MAX_PATHS   1024 /* masked paths, read-only paths, sysctls: each */

/* Where the new root is attached until the pivot (in the child's mount namespace). */
#define JAIL_BASE "/tmp"

/* A jail built up to what no app owns: the root tmpfs attached at JAIL_BASE with
 * the runtime's binds (/usr, /lib*, the /etc subset), /dev and /proc in it. */
typedef struct JailSkeleton {
        int rootfd; /* the root tmpfs */
        int basefd; /* O_PATH of the host's JAIL_BASE, hidden by the root */
} JailSkeleton;

/*
 * The app-independent half of jail_build() (child, root of the caller's user
 * namespace, in its new mount and pid namespaces): makes / a slave, the root
 * tmpfs with inodes for n_binds spec binds to come, the runtime's binds, /dev
 * and /proc. What a warm sandbox does ahead (spawn.c, "Warm sandboxes"). Returns
 * 0 and *ret, or -errno with err filled.
 */
int jail_skeleton(size_t n_binds, JailSkeleton *ret, SandboxError *err);

/*
 * The app's half: spec's binds, /etc's identity files (hostname), /tmp and
 * /dev/shm of spec->tmp_size, then pivot_root into the root and make it
 * read-only. Takes sk's fds (closed on return). Returns 0 or -errno with err.
 */
int jail_finish(const SandboxSpec *spec, JailSkeleton *sk, SandboxError *err);

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
/*
 * Writes pid's setgroups, gid_map and uid_map for spec (userns.c): spec's uid_map and
 * gid_map when given, else the host_uid/host_ids_base map (userns_format_map());
 * setgroups "allow" when spec has app_groups (user_namespaces(7): written before
 * gid_map), else "deny". Returns 0 or -errno (-E2BIG: a map of a page or more).
 */
int userns_write_maps(pid_t pid, const SandboxSpec *spec);
/*
 * Checks spec's explicit maps (userns.c): both or neither, 1..SANDBOX_IDMAP_MAX
 * lines each, every count >= 1, no range past 2^32-1, no two ranges overlapping
 * inside nor on the host (the kernel's rules: user_namespaces(7)). Returns 0 or
 * -EINVAL with err filled (SANDBOX_STEP_PREPARE).
 */
int userns_check_maps(const SandboxSpec *spec, SandboxError *err);
/* Whether spec's new user namespace maps inside id id (uid: uid_map, else gid_map),
 * explicit maps or the host_uid/host_ids_base one. */
bool userns_maps_id(const SandboxSpec *spec, bool uid, uint32_t id);
/* user_namespaces(7): at most 340 lines in a uid_map or gid_map (Linux 4.15). */
#define SANDBOX_IDMAP_MAX 340
int userns_become(uid_t uid, gid_t gid, SandboxError *err);

/* caps.c: locks securebits, then empties every capability set (child, in its userns);
 * no_new_privs false leaves it clear (SandboxSpec.allow_new_privs). */
int caps_lock_securebits(SandboxError *err);
int caps_drop_all(SandboxError *err, bool no_new_privs);

/* The app's (or an entered command's) ids and capabilities inside its user namespace. */
typedef struct AppCreds {
        uid_t uid;
        gid_t gid;
        const gid_t *groups; /* n_groups 0: none (dropped before the user namespace) */
        size_t n_groups;
        const SandboxCaps *caps; /* NULL: none, securebits locked */
        bool allow_new_privs;    /* leave no_new_privs clear */
} AppCreds;

/*
 * caps.c: the app's credentials in two halves, around the point where a filter must
 * be loaded while still privileged (allow_new_privs: no no_new_privs, so loading a
 * seccomp filter needs CAP_SYS_ADMIN in the user namespace, which the app may not
 * keep; runc loads it there too). Call in the app's user namespace holding every
 * capability there. creds_begin(): the supplementary groups (setgroups(2), needs
 * "allow" in the namespace's setgroups file), then securebits locked (caps NULL), or
 * the bounding set reduced and KEEPCAPS set (caps). creds_finish(): the uid and gid
 * (userns_become()), then every capability dropped (caps NULL) or the asked sets
 * (capset, then the ambient set raised), then no_new_privs unless allow_new_privs,
 * checked. Each returns 0 or -errno with err filled (SANDBOX_STEP_USERNS or _CAPS).
 */
int creds_begin(const AppCreds *c, SandboxError *err);
int creds_finish(const AppCreds *c, SandboxError *err);

/* rlimit.c: cella's limits, then spec->rlimits (each replacing cella's own for its
 * resource). */
int rlimits_apply(const SandboxSpec *spec, SandboxError *err);

/* rlimit.c: "RLIMIT_NOFILE" for RLIMIT_NOFILE, NULL if out of range. */
const char *rlimit_name(int resource);

/* execdiag.c: what the app's vfork()ed child sends init when it cannot exec: the
 * errno and, when known, why in the app's terms (detail; "" if not known). At most
 * PIPE_BUF bytes, so one write() on the exec pipe carries it whole. */
typedef struct ExecFailure {
        int error;
        int cause; /* SandboxExecCause */
        char detail[SANDBOX_DETAIL_MAX];
} ExecFailure;

/*
 * Tells why executing path failed with errno error, from inside the jail as the
 * app's uid (after the failure: its one cost is on the failing path): the file
 * missing, a folder or the file not reachable, a directory, a noexec mount, its #!
 * interpreter or its ELF interpreter (dynamic loader) missing or not executable, a
 * #! line with DOS line ends, an ELF for another machine, no #! at all. With error
 * 0, path is a script another program will read: only that it exists, is a file
 * and is readable is checked. Writes the plain fact into out (size bytes), the
 * path first and no advice (the caller's to add: it knows its users' terms), sets
 * *ret_cause (a SandboxExecCause) and returns the errno that fits the cause
 * (ENOENT for anything missing, so a missing interpreter is 127 as a missing
 * program is), or 0 when error was 0 and the script is fine. Uses only system
 * calls and the stack (a vfork()ed child).
 */
int exec_diagnose(const char *path, int error, int *ret_cause, char *out, size_t size);

/*
 * pty.c: in the app's process, before its execve: opens a pty in the jail's
 * devpts (/dev/ptmx) of rows x cols (0: 24 x 80), sends its master over the
 * socket sock (SCM_RIGHTS, one byte), and makes the slave the controlling terminal
 * of a new session (setsid, TIOCSCTTY). Returns the slave (O_CLOEXEC), to become
 * the app's fds 0, 1 and 2, or -errno.
 */
int pty_make(int sock, unsigned short rows, unsigned short cols);
