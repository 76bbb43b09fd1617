/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The app seccomp filter. Two libseccomp filters are built and exported as classic
 * BPF, then joined into one program:
 *
 *   1. the overrides (default allow): the few denials libseccomp cannot express on
 *      top of an allowlist, ioctl TIOCSTI and TIOCLINUX. libseccomp refuses a
 *      conditional deny next to an unconditional allow of the same syscall (-EACCES),
 *      and one rule may not compare an argument twice (-EINVAL), so "ioctl unless
 *      cmd is one of two values" has no single-filter form. Each of its ALLOW
 *      returns is rewritten into a jump to the start of the second program.
 *   2. the allowlist (default EPERM, bad arch kills).
 *
 * With SeccompOptions.notify both filters say SCMP_ACT_NOTIFY where they would say
 * EPERM (the allowlist's default, the overrides' ioctl denials): the listener's
 * server answers EPERM and counts the call. libseccomp builds that variant too,
 * rather than us patching the return values of the EPERM one, because an
 * explicit EPERM rule and the default action compile to the same return value.
 *
 * The joined program is what the kernel would compute if both filters were loaded
 * (the most restrictive action wins, and the overrides only ever say ALLOW or
 * EPERM), but it is one program: one seccomp(2) call in the child, no allocation.
 *
 * Where the list comes from: Docker's default profile (moby profiles/seccomp/
 * default.json, the calls it allows without extra capabilities) and systemd's
 * @system-service set (@default @basic-io @file-system @io-event @ipc @network-io
 * @process @resources @setuid @signal @sync @timer @aio @chown @memlock and a few
 * single calls). Narrower than both where the sandbox makes a call useless or
 * dangerous: @system-service's @keyring, kcmp, name_to_handle_at, userfaultfd and
 * NUMA placement are left out, and nothing from @privileged @mount @module @reboot
 * @swap @clock @raw-io @debug @obsolete @cpu-emulation is in. Every call not listed
 * fails with EPERM.
 *
 * Host-wide resources: every allowed call was reviewed for a resource the whole
 * host shares that no namespace, cgroup or rlimit divides among apps (as
 * fs.aio-max-nr is). Each is refused (@aio, huge pages), bounded by an rlimit set
 * for every app (rlimit.c), or charged to something per app (the app's ipc
 * namespace, its memory cgroup, its own host uid); the comment at each group says
 * which, and docs/security.md ("Host-wide resources") has the table.
 */

#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <netinet/in.h>

#include "base/macro.h"
#include "sandbox/seccomp.h"

/* clone(2) takes its flags in the second argument there; the rules below assume the first. */
#if defined(__s390__) || defined(__s390x__) || defined(__CRIS__)
#error "clone flags are not the first syscall argument on this architecture"
#endif

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/*
 * Namespace flags. CLONE_NEWTIME shares its bit with the exit signal (CSIGNAL) in
 * clone(2), so it is only checked for unshare(2); clone(2) cannot create a time
 * namespace (the kernel reads the bit as part of the signal number).
 */
#define CLONE_NAMESPACE_FLAGS                                                                      \
        ((uint64_t)(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |     \
                    CLONE_NEWNET | CLONE_NEWCGROUP))
#define UNSHARE_NAMESPACE_FLAGS (CLONE_NAMESPACE_FLAGS | (uint64_t)CLONE_NEWTIME)

/* personality(2) arguments allowed: PER_LINUX, and 0xffffffff which only queries. */
#define PERSONALITY_LINUX 0x0000u
#define PERSONALITY_QUERY 0xffffffffu

/*
 * ioctl commands always denied (the low 32 bits of the second argument, see
 * overrides_build): TIOCSTI fakes terminal input, typing commands into whatever
 * shell reads that terminal after the app; TIOCLINUX's TIOCL_SETSEL + PASTESEL do
 * the same on a virtual console (snapd's CVE-2023-1523).
 */
static const uint32_t denied_ioctls[] = {TIOCSTI, TIOCLINUX};

/*
 * Numbers from the end of the table we know (listns, 470) up to here fail with
 * ENOSYS instead of EPERM, as systemd does for syscalls newer than its filter: a
 * libc that probes a new syscall then falls back to the old one, where EPERM would
 * look like a real refusal. 512 and up are x32 entries on x86_64, unreachable
 * without the x32 bit, which kills.
 */
#define SYSCALL_NR_KNOWN_LAST 470
#define SYSCALL_NR_FUTURE_END SECCOMP_SYSCALL_NR_END

/*
 * Every call an ordinary program needs: glibc's loader and startup, /bin/sh and
 * coreutils, python3 and its test suite (threads, subprocess, multiprocessing,
 * select/poll/epoll, signals), sqlite3, lua. Grouped as systemd groups them.
 * clone, unshare, personality, socket, socketpair, mknod, mknodat and ioctl are
 * not here: they get argument rules in allowlist_build().
 */
static const char *const allowed_syscalls[] = {
        /* @default: what every program does at startup and exit (glibc's ld.so, libc init). */
        "arch_prctl", /* TLS (ARCH_SET_FS), CET shadow stack (ARCH_SHSTK_*) */
        "brk",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "get_robust_list", /* only own threads: the kernel checks ptrace access for others */
        "get_thread_area",
        "getpid",
        "getppid",
        "gettid",
        "getrandom",
        "membarrier",
        "mprotect", /* mmap: a flag rule in allowlist_build() */
        "munmap",
        "restart_syscall",
        "rseq",
        "rt_sigreturn",
        "sched_yield",
        "set_robust_list",
        "set_thread_area",
        "set_tid_address",
        "time",
        "uname",

        /* @basic-io and @io-event. */
        "close",
        "close_range",
        "dup",
        "dup2",
        "dup3",
        "lseek",
        "pread64",
        "preadv",
        "preadv2",
        "pwrite64",
        "pwritev",
        "pwritev2",
        "read",
        "readv",
        "write",
        "writev",
        /* epoll watches count against fs.epoll.max_user_watches of the app's host
         * uid (user_struct), its own; epitems are charged to the memory cgroup. */
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_pwait",
        "epoll_pwait2",
        "epoll_wait",
        "eventfd",
        "eventfd2",
        "poll",
        "ppoll",
        "pselect6",
        "select",

        /*
         * @file-system, including the *at() and the newest variants. Open files:
         * RLIMIT_NOFILE per process times pids.max per app, and each struct file is
         * charged to the memory cgroup (filp is SLAB_ACCOUNT), so fs.file-max is not
         * an app's to exhaust. File locks (flock, fcntl): charged to the memory
         * cgroup too; /proc/locks, which lists the host's, is masked (mount.c).
         */
        "access",
        "chdir",
        "chmod",
        "chown", /* DAC decides; without CAP_CHOWN only the group, to one of our own */
        "creat",
        "faccessat",
        "faccessat2",
        "fadvise64",
        "fallocate",
        "fchdir",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "fchown",
        "fchownat",
        "fcntl",
        "flock",
        "fstat",
        "fstatfs",
        "ftruncate",
        "futimesat",
        "getcwd",
        "getdents",
        "getdents64",
        /*
         * inotify instances and watches are counted per user namespace and uid
         * (ucounts, Linux 4.11), checked at every level up to the host's, where the
         * count goes to the uid that created the app's user namespace: its own host
         * uid (spawn.c, become_host_user()), so fs.inotify.max_user_instances and
         * max_user_watches bound each app alone. Marks are charged to the memory
         * cgroup.
         */
        "inotify_add_watch",
        "inotify_init",
        "inotify_init1",
        "inotify_rm_watch",
        "lchown",
        "link",
        "linkat",
        "lstat",
        "mkdir",
        "mkdirat",
        "newfstatat",
        "open",
        "openat",
        "openat2",
        "readahead",
        "readlink",
        "readlinkat",
        "rename",
        "renameat",
        "renameat2",
        "rmdir",
        "stat",
        "statfs",
        "statx",
        "symlink",
        "symlinkat",
        "truncate",
        "umask",
        "unlink",
        "unlinkat",
        "utime",
        "utimensat",
        "utimes",
        "cachestat", /* page cache state of a file we can open (6.5) */
        "copy_file_range",
        "sendfile",
        "splice",
        "tee",
        "vmsplice",
        /*
         * Extended attributes, read and write: user.* is confined by DAC, trusted.* and
         * security.* need capabilities the app does not have (Docker allows all of
         * them). file_getattr/file_setattr (6.17) are FS_IOC_FS[GS]ETXATTR by path,
         * which ioctl already allows on an fd.
         */
        "fgetxattr",
        "flistxattr",
        "fremovexattr",
        "fsetxattr",
        "getxattr",
        "getxattrat",
        "lgetxattr",
        "listxattr",
        "listxattrat",
        "llistxattr",
        "lremovexattr",
        "lsetxattr",
        "removexattr",
        "removexattrat",
        "setxattr",
        "setxattrat",
        "file_getattr",
        "file_setattr",

        /*
         * @sync. sync(2) writes back every file system of the host, other apps'
         * dirty pages included: host I/O an app can cause but not hold, and a
         * refusal would break coreutils' sync, so it stays (Docker and systemd's
         * @system-service allow it; docs/security.md).
         */
        "fdatasync",
        "fsync",
        "sync",
        "sync_file_range",
        "syncfs",

        /*
         * @aio is not here: io_setup reserves events from fs.aio-max-nr, one counter
         * for the whole host that no namespace, cgroup or rlimit divides, so one app
         * could leave every other io_setup on the host failing (EAGAIN). The six
         * calls fail with ENOSYS instead (allowlist_build), as on a kernel built
         * without CONFIG_AIO: libaio users fall back to threads, and glibc's POSIX
         * aio_* never used them. io_uring is always denied.
         */

        /* Memory (@default, plus what runtimes and databases use). */
        "get_mempolicy", /* read-only (procps' ps asks); setting NUMA policy is not allowed */
        "madvise",
        "map_shadow_stack", /* CET user shadow stacks (6.6); glibc 2.39+ allocates them */
        "mincore",
        /*
         * mlock pins pages the memory cgroup already charged; how many is bounded by
         * RLIMIT_MEMLOCK, set to 8 MiB for every app (rlimit.c), never inherited
         * from cella. mmap, memfd_create and shmget get flag rules: no huge pages.
         */
        "mlock",
        "mlock2",
        "mlockall",
        "mremap",
        "mseal", /* can only take rights away from our own mappings (6.10) */
        "msync",
        "munlock",
        "munlockall",
        "pkey_alloc",
        "pkey_free",
        "pkey_mprotect",
        "remap_file_pages", /* emulated with plain mappings since 4.0 (Docker allows it) */

        /* Futexes, old and new (futex_waitv 5.16; futex_wake/wait/requeue 6.7). */
        "futex",
        "futex_requeue",
        "futex_wait",
        "futex_waitv",
        "futex_wake",

        /*
         * @process. clone3 is refused with ENOSYS (its flags sit in memory a filter
         * cannot read); clone and unshare get flag rules. kill/tkill/tgkill and the
         * pidfd calls reach only processes in the app's pid namespace, whose
         * numbers the pids cgroup bounds (pids.max). prctl is fine:
         * no_new_privs is set and capabilities are gone, so PR_SET_SECCOMP can only add
         * filters and PR_CAPBSET_* and friends fail in the kernel.
         */
        "fork",
        "vfork",
        "wait4",
        "waitid",
        "kill",
        "tgkill",
        "tkill",
        "pidfd_open",
        "pidfd_send_signal",
        "prctl",
        "seccomp", /* more filters only narrow what is allowed */
        "getpgid",
        "getpgrp",
        "getsid",
        "setpgid",
        "setsid",
        /* Landlock restricts only the caller (Landlock itself may be absent: ENOSYS/EOPNOTSUPP). */
        "landlock_add_rule",
        "landlock_create_ruleset",
        "landlock_restrict_self",

        /*
         * Credentials. The set*id calls are allowed, as Docker does: with every
         * capability dropped the kernel only lets the app switch among its own real,
         * effective and saved ids (all SANDBOX_UID), and setgroups needs CAP_SETGID.
         * Denying them would only break programs that drop privileges defensively at
         * startup, which then see EPERM where they expect success.
         */
        "capget",
        "capset", /* can only lower the sets */
        "getegid",
        "geteuid",
        "getgid",
        "getgroups",
        "getresgid",
        "getresuid",
        "getuid",
        "setfsgid",
        "setfsuid",
        "setgid",
        "setgroups",
        "setregid",
        "setresgid",
        "setresuid",
        "setreuid",
        "setuid",

        /*
         * @resources (the self-directed part). setrlimit/prlimit64 can lower limits or
         * raise a soft limit up to the hard one; raising a hard limit needs
         * CAP_SYS_RESOURCE. glibc's setrlimit() and ulimit use prlimit64, so it is
         * allowed for writing too; another process's limits need the same uids.
         * Scheduling: raising priority or a real-time policy needs CAP_SYS_NICE (or
         * RLIMIT_NICE/RLIMIT_RTPRIO, both 0 for every app: rlimit.c), which the app
         * lacks; SCHED_DEADLINE always needs CAP_SYS_NICE. ioprio_set: the real-time
         * I/O class needs CAP_SYS_ADMIN or CAP_SYS_NICE; best-effort and idle only
         * touch the app's own processes.
         */
        "getcpu",
        "getpriority",
        "getrlimit",
        "getrusage",
        "ioprio_get",
        "ioprio_set",
        "prlimit64",
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_getaffinity",
        "sched_getattr",
        "sched_getparam",
        "sched_getscheduler",
        "sched_rr_get_interval",
        "sched_setaffinity", /* within the cgroup's cpuset */
        "sched_setattr",
        "sched_setparam",
        "sched_setscheduler",
        "setpriority",
        "setrlimit",
        /* Host-wide figures (total RAM, load, thread count): glibc's
         * sysconf(_SC_PHYS_PAGES) and get_avphys_pages() need it; docs/security.md. */
        "sysinfo",
        "times",

        /* @signal. */
        "rt_sigaction",
        "rt_sigpending",
        "rt_sigprocmask",
        "rt_sigqueueinfo",
        "rt_sigsuspend",
        "rt_sigtimedwait",
        "rt_tgsigqueueinfo",
        "sigaltstack",
        "signalfd",
        "signalfd4",

        /*
         * @timer and reading the clocks. Setting them is always denied. Each POSIX
         * timer preallocates a queued signal, charged to RLIMIT_SIGPENDING (4096,
         * rlimit.c) of the app's own uid; the alarm clocks need CAP_WAKE_ALARM.
         */
        "alarm",
        "clock_getres",
        "clock_gettime",
        "clock_nanosleep",
        "getitimer",
        "gettimeofday",
        "nanosleep",
        "pause",
        "setitimer",
        "timer_create",
        "timer_delete",
        "timer_getoverrun",
        "timer_gettime",
        "timer_settime",
        "timerfd_create",
        "timerfd_gettime",
        "timerfd_settime",

        /*
         * @ipc: SysV and POSIX IPC live in the app's own ipc namespace (docs/design.md section 5
         * step 1), so they reach no one else, and its limits (shmmni, msgmni, semmni, queues_max)
         * are that namespace's. Their memory: SysV shm pages are shmem, charged to the app's memory
         * cgroup; message queue bytes are bounded per user by RLIMIT_MSGQUEUE (819200, rlimit.c).
         * pipe/pipe2: buffers are charged to the memory cgroup, and fs.pipe-user-pages-soft counts
         * per host uid, which is the app's own. shmget gets a flag rule (no SHM_HUGETLB).
         */
        "msgctl",
        "msgget",
        "msgrcv",
        "msgsnd",
        "mq_getsetattr",
        "mq_notify",
        "mq_open",
        "mq_timedreceive",
        "mq_timedsend",
        "mq_unlink",
        "pipe",
        "pipe2",
        "semctl",
        "semget",
        "semop",
        "semtimedop",
        "shmat",
        "shmctl",
        "shmdt",

        /* @network-io on sockets that socket()/socketpair() let the app create. */
        "accept",
        "accept4",
        "bind",
        "connect",
        "getpeername",
        "getsockname",
        "getsockopt",
        "listen",
        "recvfrom",
        "recvmmsg",
        "recvmsg",
        "sendmmsg",
        "sendmsg",
        "sendto",
        "setsockopt",
        "shutdown",
};

/*
 * Syscalls newer than some libseccomp releases know (2.5.4 stops at
 * map_shadow_stack, 453). Numbers from 424 on are the same on every architecture
 * but alpha, ia64 and mips, which have offsets.
 */
#if defined(__alpha__) || defined(__ia64__) || defined(__mips__)
#error "add this architecture's offset for the syscall numbers from 424 on"
#endif
static const struct {
        const char *name;
        int nr;
} newer_syscalls[] = {
        {"cachestat", 451},         {"fchmodat2", 452},
        {"map_shadow_stack", 453},  {"futex_wake", 454},
        {"futex_wait", 455},        {"futex_requeue", 456},
        {"statmount", 457},         {"listmount", 458},
        {"lsm_get_self_attr", 459}, {"lsm_set_self_attr", 460},
        {"lsm_list_modules", 461},  {"mseal", 462},
        {"setxattrat", 463},        {"getxattrat", 464},
        {"listxattrat", 465},       {"removexattrat", 466},
        {"open_tree_attr", 467},    {"file_getattr", 468},
        {"file_setattr", 469},      {"listns", SYSCALL_NR_KNOWN_LAST},
};

/*
 * Denied whatever the rights (docs/design.md section 5 step 5), with EPERM: Docker
 * denies each of them without the matching capability, systemd puts them in
 * @mount, @privileged, @module, @reboot, @swap, @clock, @raw-io, @debug. They are
 * not in the allowlist, so the default action refuses them; this list is what the
 * tests and docs check, and seccomp_program_build() makes sure none is allowed.
 * The conditional denials (clone/unshare with namespace flags, ioctl TIOCSTI and
 * TIOCLINUX, personality other than PER_LINUX) are tested on their own. Many more
 * calls are denied simply by not being allowed: uselib, modify_ldt, vhangup,
 * sethostname, kcmp, NUMA placement (mbind, set_mempolicy, migrate_pages,
 * move_pages, set_mempolicy_home_node: Docker allows them only with
 * CAP_SYS_NICE), process_madvise, process_mrelease, memfd_secret,
 * statmount/listmount/listns, lsm_*, fanotify_mark, lookup_dcookie, the obsolete
 * ones (sysfs, ustat, _sysctl, ...).
 */
const char *const seccomp_denied_syscalls[] = {
        /* mount and the new mount API */
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "open_tree",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
        /* other namespaces, other processes */
        "setns",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "pidfd_getfd",
        /* kernel attack surface */
        "bpf",
        "perf_event_open",
        "keyctl",
        "add_key",
        "request_key",
        "userfaultfd",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "open_by_handle_at",
        "name_to_handle_at",
        "fanotify_init",
        /* the machine */
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "reboot",
        "swapon",
        "swapoff",
        "acct",
        "quotactl",
        "quotactl_fd",
        "syslog",
        "iopl",
        "ioperm",
        /* the clocks */
        "settimeofday",
        "clock_settime",
        "adjtimex",
        "clock_adjtime",
        NULL,
};

/* Returns the native number of name, from libseccomp or our table, or -ENOENT. */
static int syscall_resolve(const char *name)
{
        int nr = seccomp_syscall_resolve_name(name);

        if (nr != __NR_SCMP_ERROR)
                return nr;
        for (size_t i = 0; i < ELEMENTSOF(newer_syscalls); i++)
                if (strcmp(newer_syscalls[i].name, name) == 0)
                        return newer_syscalls[i].nr;
        return -ENOENT;
}

int seccomp_syscall_resolve_nr(int nr, char **ret)
{
        char *name;

        if (nr < 0)
                return -ENOENT;
        name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        if (!name)
                for (size_t i = 0; i < ELEMENTSOF(newer_syscalls); i++)
                        if (newer_syscalls[i].nr == nr) {
                                name = strdup(newer_syscalls[i].name);
                                if (!name)
                                        return -ENOMEM;
                                break;
                        }
        if (!name)
                return -ENOENT;
        *ret = name;
        return 0;
}

static bool syscall_is_denied(const char *name)
{
        for (const char *const *d = seccomp_denied_syscalls; *d; d++)
                if (strcmp(*d, name) == 0)
                        return true;
        return false;
}

static void seccomp_releasep(scmp_filter_ctx *ctx)
{
        if (*ctx)
                seccomp_release(*ctx);
}

/* A filter for the native architecture only, with the given default action. */
static int filter_new(uint32_t default_action, uint32_t badarch_action, scmp_filter_ctx *ret)
{
        scmp_filter_ctx ctx _cleanup_(seccomp_releasep) = NULL;
        int r;

        ctx = seccomp_init(default_action);
        if (!ctx)
                return -ENOMEM;
        /*
         * i386 (int 0x80 from a 64-bit process) and x32 have their own syscall numbers
         * and argument layouts; a filter written for x86_64 numbers would read them
         * wrong, so they kill. libseccomp sends x32 (nr >= 0x40000000 under the x86_64
         * audit arch) to the bad-arch action too when x32 is not in the filter.
         */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, badarch_action);
        if (r < 0)
                return r;
        /* The child sets no_new_privs itself (step 5); this only matters to seccomp_load(). */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (r < 0)
                return r;
        /* A binary search over syscall numbers instead of a linear chain of ~300 compares. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(ctx);
        return 0;
}

static int rule_add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
                    const struct scmp_arg_cmp *cmp)
{
        int nr = syscall_resolve(name);

        if (nr == -ENOENT)
                return -EINVAL; /* a name in our tables libseccomp does not know: a bug */
        return seccomp_rule_add_array(ctx, action, nr, n, cmp);
}

/*
 * socket() and socketpair(). Every app has a network namespace of its own with only
 * loopback in it (spawn.c: made by the caller, so owned by the caller's user
 * namespace, where the app has no capability: it cannot add addresses, routes or
 * links, open raw or packet sockets, or reach any other namespace's network), so
 * the ordinary families are allowed as `bwrap --unshare-net` allows them:
 *
 *   AF_UNIX                 any type and protocol
 *   AF_INET, AF_INET6       protocol 0 (the type's default: TCP, UDP), IPPROTO_TCP,
 *                           IPPROTO_UDP, IPPROTO_UDPLITE (UDP's own code, built into
 *                           ipv4/ipv6, no module), IPPROTO_ICMP/ICMPV6 (ping
 *                           sockets, which the namespace's net.ipv4.ping_group_range
 *                           "1 0" refuses); raw sockets of these need CAP_NET_RAW
 *                           over the namespace: refused by the kernel
 *   AF_NETLINK              NETLINK_ROUTE only: addresses, links and routes of the
 *                           app's own namespace (glibc's getaddrinfo AI_ADDRCONFIG,
 *                           getifaddrs, if_nameindex); changing them needs
 *                           CAP_NET_ADMIN over the namespace, which the app lacks
 *
 * Other protocols of these families fall to the default action (EPERM): SCTP, DCCP,
 * L2TP, MPTCP and the like would load a protocol module (net-pf-2-proto-132...) and
 * bring its code within the app's reach, and the other netlink protocols
 * (NETLINK_AUDIT, NETLINK_KOBJECT_UEVENT, SOCK_DIAG, GENERIC with taskstats,
 * NETFILTER, XFRM...) are host-wide or privileged interfaces nothing ordinary
 * needs. Every other family gets EAFNOSUPPORT, which is what programs expect of an
 * unsupported family (Python's socket module and getaddrinfo degrade gracefully;
 * EPERM would look like a policy error). libseccomp allows one comparison per
 * argument per rule, so the refused families are the gaps between the allowed
 * ones, each with its own rule, and a >= rule past the last. The comparisons are
 * on all 64 bits while the kernel reads an int: a call with garbage in the upper
 * half of the family or the protocol fails (EAFNOSUPPORT or EPERM), it never
 * slips through.
 */
static int socket_rules_add(scmp_filter_ctx ctx, const char *name)
{
        static const uint64_t inet_protocols[] = {
                0, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, IPPROTO_ICMP, IPPROTO_ICMPV6};
        static const int families[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};
        uint64_t next = 0; /* the lowest family not yet ruled on */
        int r;

        for (size_t i = 0; i < ELEMENTSOF(families); i++) {
                uint64_t f = (uint64_t)families[i];

                for (; next < f; next++) {
                        struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, next);

                        r = rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), name, 1, &c);
                        if (r < 0)
                                return r;
                }
                next = f + 1;
                if (f == AF_UNIX) {
                        struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, f);

                        r = rule_add(ctx, SCMP_ACT_ALLOW, name, 1, &c);
                } else if (f == AF_NETLINK) {
                        struct scmp_arg_cmp c[2] = {SCMP_A0(SCMP_CMP_EQ, f),
                                                    SCMP_A2(SCMP_CMP_EQ, NETLINK_ROUTE)};

                        r = rule_add(ctx, SCMP_ACT_ALLOW, name, 2, c);
                } else
                        for (size_t k = 0; k < ELEMENTSOF(inet_protocols); k++) {
                                struct scmp_arg_cmp c[2] = {
                                        SCMP_A0(SCMP_CMP_EQ, f),
                                        SCMP_A2(SCMP_CMP_EQ, inet_protocols[k])};

                                r = rule_add(ctx, SCMP_ACT_ALLOW, name, 2, c);
                                if (r < 0)
                                        break;
                        }
                if (r < 0)
                        return r;
        }
        struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_GE, next);

        return rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), name, 1, &c);
}

/* What a refused call gets: EPERM now, or EPERM from the listener's server. */
static uint32_t deny_action(const SeccompOptions *opts)
{
        return opts->notify ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(EPERM);
}

static int allowlist_build(const SeccompOptions *opts, scmp_filter_ctx *ret)
{
        scmp_filter_ctx ctx _cleanup_(seccomp_releasep) = NULL;
        int r;

        r = filter_new(deny_action(opts), SCMP_ACT_KILL_PROCESS, &ctx);
        if (r < 0)
                return r;

        for (size_t i = 0; i < ELEMENTSOF(allowed_syscalls); i++) {
                /* The always-denied set wins over any edit of the allowlist. */
                if (syscall_is_denied(allowed_syscalls[i]))
                        return -EINVAL;
                r = rule_add(ctx, SCMP_ACT_ALLOW, allowed_syscalls[i], 0, NULL);
                if (r < 0)
                        return r;
        }

        /*
         * ioctl: allowed here, TIOCSTI and TIOCLINUX are taken out by the overrides
         * (they are the two that put bytes into what another process reads). Device
         * ioctls need device nodes, and the app's /dev holds only null, zero, full,
         * random and urandom.
         */
        r = rule_add(ctx, SCMP_ACT_ALLOW, "ioctl", 0, NULL);
        if (r < 0)
                return r;

        /*
         * clone3 passes its flags in memory a filter cannot read: ENOSYS makes glibc
         * (2.34+) fall back to clone(2), whose flags are a register (systemd, Docker
         * and Chromium do the same).
         */
        r = rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);
        if (r < 0)
                return r;

        /* The kernel AIO calls: ENOSYS, as without CONFIG_AIO (see allowed_syscalls). */
        static const char *const aio_calls[] = {"io_setup",  "io_destroy",   "io_submit",
                                                "io_cancel", "io_getevents", "io_pgetevents"};
        for (size_t i = 0; i < ELEMENTSOF(aio_calls); i++) {
                r = rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), aio_calls[i], 0, NULL);
                if (r < 0)
                        return r;
        }

        /*
         * Huge pages come from the host's pool (vm.nr_hugepages and the surplus
         * vm.nr_overcommit_hugepages), which the memory cgroup does not charge
         * (cgroup v1; v2 only with memory_hugetlb_accounting, 6.6+): mmap with
         * MAP_HUGETLB, memfd_create with MFD_HUGETLB and shmget with SHM_HUGETLB are
         * refused (the default action), everything else allowed. Programs that ask
         * for huge pages fall back when they fail, as on a host with none. The masks
         * test one bit, so garbage in the upper half of a register changes nothing.
         * Transparent huge pages (madvise MADV_HUGEPAGE) are ordinary, charged memory.
         */
        {
                struct scmp_arg_cmp mmap_c = SCMP_A3(SCMP_CMP_MASKED_EQ, MAP_HUGETLB, 0);
                struct scmp_arg_cmp memfd_c = SCMP_A1(SCMP_CMP_MASKED_EQ, MFD_HUGETLB, 0);
                struct scmp_arg_cmp shm_c = SCMP_A2(SCMP_CMP_MASKED_EQ, SHM_HUGETLB, 0);

                r = rule_add(ctx, SCMP_ACT_ALLOW, "mmap", 1, &mmap_c);
                if (r < 0)
                        return r;
                r = rule_add(ctx, SCMP_ACT_ALLOW, "memfd_create", 1, &memfd_c);
                if (r < 0)
                        return r;
                r = rule_add(ctx, SCMP_ACT_ALLOW, "shmget", 1, &shm_c);
                if (r < 0)
                        return r;
        }

        /*
         * clone and unshare without namespace flags: threads, fork, posix_spawn and
         * unshare(CLONE_FILES/CLONE_FS) work; a new user namespace (where the app would
         * be root again and reach more kernel code) or any other namespace is refused.
         * Docker allows these flags only with CAP_SYS_ADMIN. The masked comparison
         * ignores the upper half of the register, which the kernel ignores too.
         */
        {
                struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NAMESPACE_FLAGS, 0);

                r = rule_add(ctx, SCMP_ACT_ALLOW, "clone", 1, &c);
                if (r < 0)
                        return r;
        }
        {
                struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, UNSHARE_NAMESPACE_FLAGS, 0);

                r = rule_add(ctx, SCMP_ACT_ALLOW, "unshare", 1, &c);
                if (r < 0)
                        return r;
        }

        /*
         * personality: PER_LINUX and the 0xffffffff query only. Docker also allows
         * PER_LINUX32 and UNAME26; ADDR_NO_RANDOMIZE (setarch -R) would switch ASLR
         * off for what the app execs next, READ_IMPLIES_EXEC makes data executable.
         * The kernel takes an unsigned int, so only the low half is compared.
         */
        static const uint32_t personalities[] = {PERSONALITY_LINUX, PERSONALITY_QUERY};
        for (size_t i = 0; i < ELEMENTSOF(personalities); i++) {
                struct scmp_arg_cmp c =
                        SCMP_A0(SCMP_CMP_MASKED_EQ, UINT64_C(0xffffffff), personalities[i]);

                r = rule_add(ctx, SCMP_ACT_ALLOW, "personality", 1, &c);
                if (r < 0)
                        return r;
        }

        /*
         * mknod/mknodat: FIFOs (mkfifo) and regular files (a type of 0 means regular)
         * only. Device nodes need CAP_MKNOD and would be useless on nodev mounts
         * anyway; refusing them here keeps that true if a mount were ever wrong.
         * The mode is a umode_t (16 bits); the mask looks at S_IFMT only.
         */
        static const uint32_t node_types[] = {S_IFIFO, S_IFREG, 0};
        for (size_t i = 0; i < ELEMENTSOF(node_types); i++) {
                struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, S_IFMT, node_types[i]);
                struct scmp_arg_cmp c_at = SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, node_types[i]);

                r = rule_add(ctx, SCMP_ACT_ALLOW, "mknod", 1, &c);
                if (r < 0)
                        return r;
                r = rule_add(ctx, SCMP_ACT_ALLOW, "mknodat", 1, &c_at);
                if (r < 0)
                        return r;
        }

        r = socket_rules_add(ctx, "socket");
        if (r < 0)
                return r;
        /* socketpair: the kernel supports AF_UNIX only; same families, same answers. */
        r = socket_rules_add(ctx, "socketpair");
        if (r < 0)
                return r;

        for (int nr = SYSCALL_NR_KNOWN_LAST + 1; nr < SYSCALL_NR_FUTURE_END; nr++) {
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(ctx);
        return 0;
}

/*
 * The denials that sit on top of the allowlist (see the top of the file). ioctl's
 * cmd is an unsigned int to the kernel but a 64-bit register to the filter: only
 * the low half is compared, or TIOCSTI | (garbage << 32) would pass the filter and
 * still reach the kernel as TIOCSTI. bubblewrap's CVE-2017-5226 was TIOCSTI
 * itself; flatpak's CVE-2019-10063 was this missing mask.
 */
static int overrides_build(const SeccompOptions *opts, scmp_filter_ctx *ret)
{
        scmp_filter_ctx ctx _cleanup_(seccomp_releasep) = NULL;
        int r;

        /* Other architectures fall through to the allowlist, which kills them. */
        r = filter_new(SCMP_ACT_ALLOW, SCMP_ACT_ALLOW, &ctx);
        if (r < 0)
                return r;

        for (size_t i = 0; i < ELEMENTSOF(denied_ioctls); i++) {
                struct scmp_arg_cmp c =
                        SCMP_A1(SCMP_CMP_MASKED_EQ, UINT64_C(0xffffffff), denied_ioctls[i]);

                r = rule_add(ctx, deny_action(opts), "ioctl", 1, &c);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(ctx);
        return 0;
}

int seccomp_filter_export(void *ctx, struct sock_filter **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ struct sock_filter *insns = NULL;
        struct stat st;
        size_t size, done = 0;
        int r;

        fd = memfd_create("cella-seccomp", MFD_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return r;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        size = (size_t)st.st_size;
        if (size == 0 || size % sizeof(struct sock_filter) != 0 ||
            size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -E2BIG;

        insns = malloc(size);
        if (!insns)
                return -ENOMEM;
        while (done < size) {
                ssize_t n = RETRY_EINTR(pread(fd, (char *)insns + done, size - done, (off_t)done));

                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -EIO;
                done += (size_t)n;
        }

        *ret = TAKE_PTR(insns);
        *ret_len = size / sizeof(struct sock_filter);
        return 0;
}

/*
 * Joins the overrides in front of the allowlist: every "return ALLOW" of the
 * overrides becomes a jump to the first instruction of the allowlist. BPF jumps
 * are forward and relative, so the allowlist's own jumps stay valid.
 */
static int programs_join(const struct sock_filter *first, size_t first_len,
                         const struct sock_filter *second, size_t second_len,
                         struct sock_filter **ret, size_t *ret_len)
{
        _cleanup_free_ struct sock_filter *out = NULL;
        size_t len = first_len + second_len;

        if (len > BPF_MAXINSNS)
                return -E2BIG;
        out = malloc(len * sizeof(struct sock_filter));
        if (!out)
                return -ENOMEM;
        memcpy(out, first, first_len * sizeof(struct sock_filter));
        memcpy(out + first_len, second, second_len * sizeof(struct sock_filter));

        for (size_t i = 0; i < first_len; i++) {
                if (BPF_CLASS(out[i].code) != BPF_RET)
                        continue;
                /* libseccomp only returns constants; anything else we cannot rewrite. */
                if (BPF_RVAL(out[i].code) != BPF_K)
                        return -EINVAL;
                if (out[i].k != SECCOMP_RET_ALLOW)
                        continue;
                out[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JA,
                                                      (uint32_t)(first_len - i - 1), 0, 0);
        }

        *ret = TAKE_PTR(out);
        *ret_len = len;
        return 0;
}

int seccomp_program_build(const SeccompOptions *opts, SeccompProgram **ret)
{
        scmp_filter_ctx allowlist _cleanup_(seccomp_releasep) = NULL;
        scmp_filter_ctx overrides _cleanup_(seccomp_releasep) = NULL;
        _cleanup_free_ struct sock_filter *allow_insns = NULL, *override_insns = NULL;
        _cleanup_free_ struct sock_filter *insns = NULL;
        size_t allow_len = 0, override_len = 0, len = 0;
        SeccompProgram *p;
        int r;

        if (!opts || !ret)
                return -EINVAL;

        r = allowlist_build(opts, &allowlist);
        if (r < 0)
                return r;
        r = overrides_build(opts, &overrides);
        if (r < 0)
                return r;
        r = seccomp_filter_export(allowlist, &allow_insns, &allow_len);
        if (r < 0)
                return r;
        r = seccomp_filter_export(overrides, &override_insns, &override_len);
        if (r < 0)
                return r;
        r = programs_join(override_insns, override_len, allow_insns, allow_len, &insns, &len);
        if (r < 0)
                return r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->prog.len = (unsigned short)len;
        p->prog.filter = TAKE_PTR(insns);
        p->notify = opts->notify;
        *ret = p;
        return 0;
}
