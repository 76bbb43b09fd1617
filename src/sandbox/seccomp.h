/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The app seccomp filter (DESIGN.md section 5 step 6): a default-deny allowlist
 * built with libseccomp once in the supervisor and exported as classic BPF, so the
 * child only has to load it (one syscall between clone and exec, nothing to
 * allocate). Denied calls fail with EPERM; clone3 fails with ENOSYS so libc falls
 * back to clone(2), whose flags a filter can inspect. Calls from another ABI (i386
 * int 0x80, x32) kill the process.
 *
 * Always denied, whatever the rights: mount and the new mount API, umount,
 * pivot_root, chroot, setns, unshare and clone with namespace flags, ptrace,
 * process_vm_readv/writev, bpf, perf_event_open, keyctl/add_key/request_key,
 * userfaultfd, io_uring_*, kexec_*, init/finit/delete_module, open_by_handle_at,
 * name_to_handle_at, ioctl TIOCSTI and TIOCLINUX, reboot, swapon/off, acct,
 * settimeofday/clock_settime/adjtimex/clock_adjtime, quotactl, syslog, iopl,
 * ioperm, pidfd_getfd, fanotify_init, personality other than the default.
 */

#include <stdbool.h>
#include <stddef.h>
#include <linux/filter.h>

typedef struct SeccompOptions {
        bool allow_inet; /* AF_INET/AF_INET6 sockets (a network right); AF_UNIX is always allowed */
} SeccompOptions;

typedef struct SeccompProgram {
        struct sock_fprog prog; /* .filter is owned by this struct */
} SeccompProgram;

/*
 * Builds the filter for these options. Returns 0 and *ret (free with
 * seccomp_program_free), or -errno from libseccomp (-ENOMEM, -EINVAL).
 */
int seccomp_program_build(const SeccompOptions *opts, SeccompProgram **ret);

SeccompProgram *seccomp_program_free(SeccompProgram *p);

/*
 * The same program as seccomp_program_build() gives for opts, compiled at build time
 * by seccomp-gen from this very file (test-seccomp checks the two are identical), so
 * a spawn does not spend ~3 ms in libseccomp. Returns 0 and *ret (free with
 * seccomp_program_free), or -ENOMEM.
 */
int seccomp_program_builtin(const SeccompOptions *opts, SeccompProgram **ret);

/*
 * Loads p into the calling thread. The caller must have set no_new_privs. Safe to
 * call between fork and exec (no allocation). Returns 0 or -errno of seccomp(2).
 */
int seccomp_program_load(const SeccompProgram *p);

/* The always-denied syscall names, NULL-terminated; for tests and docs. */
extern const char *const seccomp_denied_syscalls[];
