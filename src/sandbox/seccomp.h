/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The app seccomp filter (docs/design.md section 5 step 5): a default-deny allowlist
 * built with libseccomp once in the supervisor and exported as classic BPF, so the
 * child only has to load it (one syscall between clone and exec, nothing to
 * allocate). Denied calls fail with EPERM; clone3 fails with ENOSYS so libc falls
 * back to clone(2), whose flags a filter can inspect, and so do the kernel AIO calls
 * (io_setup reserves events from fs.aio-max-nr, one counter for the whole host).
 * Calls from another ABI (i386 int 0x80, x32) kill the process.
 *
 * With SeccompOptions.notify, the calls that would fail with EPERM (the default
 * action, and ioctl TIOCSTI/TIOCLINUX) are sent to a user-notification listener
 * instead (SECCOMP_RET_USER_NOTIF), whose server, seccomp_notify_process(), counts
 * them per syscall and answers EPERM: the app sees the same errno, the supervisor
 * learns what was denied. The other explicit answers (clone3, io_* and
 * newer-than-known calls ENOSYS, refused socket families EAFNOSUPPORT, foreign ABIs killed) are
 * the same in both variants and never notified.
 *
 * Sockets: AF_UNIX; AF_INET and AF_INET6 with protocol 0, TCP, UDP, UDP-Lite or ICMP; AF_NETLINK
 * with NETLINK_ROUTE only (the app's network namespace has only its own loopback;
 * seccomp.c socket_rules_add() says why each is harmless and what stays refused).
 *
 * Always denied, whatever the rights: mount and the new mount API, umount,
 * pivot_root, chroot, setns, unshare and clone with namespace flags, ptrace,
 * process_vm_readv/writev, bpf, perf_event_open, keyctl/add_key/request_key,
 * userfaultfd, io_uring_*, kexec_*, init/finit/delete_module, open_by_handle_at,
 * name_to_handle_at, ioctl TIOCSTI and TIOCLINUX, reboot, swapon/off, acct,
 * settimeofday/clock_settime/adjtimex/clock_adjtime, quotactl, syslog, iopl,
 * ioperm, pidfd_getfd, fanotify_init, personality other than the default, huge
 * pages from the host's pool (mmap MAP_HUGETLB, memfd_create MFD_HUGETLB, shmget
 * SHM_HUGETLB).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/filter.h>

/*
 * Native syscall numbers the filter knows, names and counts one by one: 0 up to
 * this, exclusive. On x86_64, 512 and up are the x32 entries (the x32 bit kills).
 */
#define SECCOMP_SYSCALL_NR_END 512

typedef struct SeccompOptions {
        /*
         * Denied calls go to a user-notification listener instead of failing with
         * EPERM right away (see the top of this file). Off by default: the loader
         * must then hand the listener to a server that answers, or the app blocks
         * in its first denied call.
         */
        bool notify;
} SeccompOptions;

typedef struct SeccompProgram {
        struct sock_fprog prog; /* .filter is owned by this struct */
        bool notify;            /* built with SeccompOptions.notify: load with a listener */
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
 * Exports a libseccomp filter context (a scmp_filter_ctx, given as void * so that this
 * header does not pull in libseccomp's) as classic BPF, through a memfd (libseccomp
 * 2.5 has no export to memory). Returns 0 with *ret (malloc'd instructions, the
 * caller's) and *ret_len (their count, 1..BPF_MAXINSNS), or -E2BIG (empty, not whole
 * instructions, or over BPF_MAXINSNS), -ENOMEM, or the -errno of memfd_create, fstat,
 * pread or seccomp_export_bpf.
 */
int seccomp_filter_export(void *ctx, struct sock_filter **ret, size_t *ret_len);

/*
 * Loads p into the calling thread. The caller must have set no_new_privs. Safe to
 * call between fork and exec (no allocation). Returns 0 or -errno of seccomp(2);
 * -EINVAL for a program built with SeccompOptions.notify (without a listener the
 * kernel would fail each denied call with ENOSYS: use seccomp_program_load_listener).
 */
int seccomp_program_load(const SeccompProgram *p);

/*
 * Loads a program built with SeccompOptions.notify into the calling thread with
 * SECCOMP_FILTER_FLAG_NEW_LISTENER. Same rules as seccomp_program_load(). Returns
 * the listener fd (O_CLOEXEC; hand it to the process that runs
 * seccomp_notify_process() and close this copy), -EINVAL if p does not notify,
 * or -errno of seccomp(2) (-EBUSY if a filter of this thread already has a listener).
 */
int seccomp_program_load_listener(const SeccompProgram *p);

/*
 * The name of native syscall nr ("ptrace" for 101 on x86_64), from a table made by
 * seccomp-gen with libseccomp at build time plus the calls newer than libseccomp
 * (seccomp.c's newer_syscalls). Returns a static string, or NULL if nr is outside
 * 0..SECCOMP_SYSCALL_NR_END-1 or has no name (the caller prints the number).
 */
const char *seccomp_syscall_name(int nr);

/*
 * For seccomp-gen only: the name of native syscall nr from libseccomp or
 * seccomp.c's table of newer calls. Returns 0 and *ret (free()), -ENOENT if
 * neither knows nr, -ENOMEM.
 */
int seccomp_syscall_resolve_nr(int nr, char **ret);

/* ---- the listener's server (seccomp-notify.c) ------------------------------------ */

/*
 * Most notifications one seccomp_notify_process() call answers: an app whose
 * threads make denied calls back to back refills the queue as fast as it is
 * answered, and the caller's event loop must get its turn. The fd stays readable,
 * so the loop calls again.
 */
#define SECCOMP_NOTIFY_BATCH_MAX 256

/* Denied calls of one app (every process of one sandbox shares the listener). */
typedef struct SeccompDenials {
        uint64_t total; /* every denied call answered */
        uint64_t other; /* of total: nr outside 0..SECCOMP_SYSCALL_NR_END-1 */
        uint64_t by_nr[SECCOMP_SYSCALL_NR_END]; /* per native syscall number */
} SeccompDenials;

typedef struct SeccompDenialCount {
        int nr;         /* native syscall number; its name: seccomp_syscall_name(nr) */
        uint64_t count; /* calls denied */
} SeccompDenialCount;

/*
 * The server side of a listener from seccomp_program_load_listener() (a Sandbox's
 * seccomp_notify_fd). Never blocks: answers every notification pending on fd, at
 * most SECCOMP_NOTIFY_BATCH_MAX of them, each with error EPERM (never
 * SECCOMP_USER_NOTIF_FLAG_CONTINUE: nothing denied ever runs), and counts each in
 * *counts by syscall number. A target that died or was interrupted by a signal
 * before the answer (ENOENT from the kernel) is not an error; such a call may be
 * counted, and a call restarted after a signal counted twice.
 *
 * The supervisor polls fd (uv_poll, UV_READABLE: readable means a denied call is
 * waiting, its thread blocked until answered) and calls this from the callback.
 * When every process of the sandbox is gone the fd reports POLLHUP (UV_DISCONNECT)
 * for good: stop polling it then. If the fd is closed (sandbox_free, or the
 * supervisor dies) while processes still use the filter, the kernel fails their
 * waiting and later denied calls with ENOSYS instead of EPERM.
 *
 * Cost: every denied call is a round trip to this server (two context switches),
 * so an app probing a denied call in a loop runs it at the server's pace; see
 * docs/security.md for the measured figure.
 *
 * Returns how many notifications it answered (0 if none was pending), or -EINVAL
 * (fd < 0, counts NULL), -EBADF (fd not open), -ENOBUFS (the kernel's
 * notification structs exceed our 1 KiB buffer), or -errno of poll(2) or of the
 * RECV/SEND ioctls (-ENOTTY: fd is not a seccomp listener).
 */
int seccomp_notify_process(int fd, SeccompDenials *counts);

/*
 * The n most denied calls in d, most first (ties: lower number first), for the
 * audit record; calls never denied are left out. ret holds n entries. Returns how
 * many were written (≤ n, ≤ SECCOMP_SYSCALL_NR_END).
 */
size_t seccomp_denials_top(const SeccompDenials *d, SeccompDenialCount *ret, size_t n);

/* The always-denied syscall names, NULL-terminated; for tests and docs. */
extern const char *const seccomp_denied_syscalls[];
