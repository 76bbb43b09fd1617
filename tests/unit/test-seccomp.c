/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The seccomp filter, tested by what it does: each test forks a child that sets
 * no_new_privs, loads the filter and makes the calls; the parent checks how the
 * child ended. Where a refusal could also come from the kernel, the same call is
 * first made without the filter (as root) to show it gets another answer there.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "base/macro.h"
#include "sandbox/seccomp.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(SeccompProgram *, seccomp_program_free);
#define _cleanup_seccomp_ _cleanup_(seccomp_program_freep)

#define PYTHON           "/usr/bin/python3"
#define PYTHON_TESTSUITE "/usr/lib/python3.11/test/test_os.py"
#define X32_SYSCALL_BIT  0x40000000L
/* Bits in the upper half of a register, which the kernel ignores for an int argument. */
#define GARBAGE_HIGH 0xdead00000000ul

/* Exit codes a child uses for its own setup, above any errno. */
#define CHILD_NNP_FAILED  250
#define CHILD_LOAD_FAILED 251

typedef int (*ChildFunc)(void *userdata);

/* Prints where a check in a child failed and returns 1 from the child function. */
#define CHILD_CHECK(expr)                                                                          \
        do {                                                                                       \
                if (!(expr)) {                                                                     \
                        fprintf(stderr, "%s:%d: in child: %s (errno %d %s)\n", __FILE__, __LINE__, \
                                #expr, errno, strerror(errno));                                    \
                        return 1;                                                                  \
                }                                                                                  \
        } while (0)

static SeccompProgram *program_new(bool allow_inet)
{
        SeccompOptions opts = {.allow_inet = allow_inet};
        SeccompProgram *p = NULL;

        ck_assert_int_eq(seccomp_program_build(&opts, &p), 0);
        ck_assert_ptr_nonnull(p);
        return p;
}

/* In a child: no_new_privs, then p if not NULL. Returns only on success. */
static void child_restrict(const SeccompProgram *p)
{
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                _exit(CHILD_NNP_FAILED);
        if (p && seccomp_program_load(p) < 0)
                _exit(CHILD_LOAD_FAILED);
}

/* Forks a child that runs f under p (or no filter if p is NULL). Returns its wait status. */
static int run_child(const SeccompProgram *p, ChildFunc f, void *userdata)
{
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                child_restrict(p);
                _exit(f(userdata));
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return status;
}

/* Asserts that a child exited with code 0. */
static void assert_child_ok(int status, const char *what)
{
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child %s %d", what,
                      WIFEXITED(status) ? "exited with" : "killed by",
                      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* A raw syscall, for children: returns 0 on success or the errno it failed with. */
typedef struct RawCall {
        long nr;
        long args[6];
} RawCall;

static int raw_call(void *userdata)
{
        const RawCall *c = userdata;
        long r = syscall(c->nr, c->args[0], c->args[1], c->args[2], c->args[3], c->args[4],
                         c->args[5]);

        return r < 0 ? errno : 0;
}

/* Runs c in a child under p and returns 0 or the errno, asserting the child got that far. */
static int raw_call_in_child(const SeccompProgram *p, const RawCall *c)
{
        int status = run_child(p, raw_call, (void *)c);

        ck_assert_msg(WIFEXITED(status), "syscall %ld: child killed by signal %d", c->nr,
                      WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        ck_assert_msg(WEXITSTATUS(status) != CHILD_NNP_FAILED &&
                              WEXITSTATUS(status) != CHILD_LOAD_FAILED,
                      "child setup failed (%d)", WEXITSTATUS(status));
        return WEXITSTATUS(status);
}

START_TEST(test_build)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(false);
        _cleanup_seccomp_ SeccompProgram *q = program_new(true);
        SeccompOptions opts = {};
        SeccompProgram *none = (SeccompProgram *)0x1;

        ck_assert_uint_gt(p->prog.len, 0);
        ck_assert_uint_le(p->prog.len, BPF_MAXINSNS);
        /* A seccomp program must end in a return; the network right changes the program. */
        ck_assert_uint_eq(BPF_CLASS(p->prog.filter[p->prog.len - 1].code), BPF_RET);
        ck_assert_uint_ne(p->prog.len, q->prog.len);

        ck_assert_int_eq(seccomp_program_build(NULL, &none), -EINVAL);
        ck_assert_ptr_eq(none, (SeccompProgram *)0x1); /* ret untouched on failure */
        ck_assert_int_eq(seccomp_program_build(&opts, NULL), -EINVAL);
        ck_assert_int_eq(seccomp_program_load(NULL), -EINVAL);
        ck_assert_ptr_null(seccomp_program_free(NULL));
}
END_TEST

/*
 * Arguments for the always-denied calls that do nothing when the kernel runs them
 * as root (bad pointers, bad fds, read-only modes), so the unfiltered control run
 * is safe and answers with something other than EPERM. Unlisted: all zeros.
 */
static const struct {
        const char *name;
        long args[6];
} denied_call_args[] = {
        {"setns", {-1}},
        {"ptrace", {PTRACE_TRACEME}},
        {"pidfd_getfd", {-1, -1}},
        {"userfaultfd", {O_CLOEXEC}},
        {"fanotify_init", {1}},         /* FAN_CLOEXEC */
        {"kexec_load", {0, 0, 0, -1L}}, /* unknown flags */
        {"kexec_file_load", {-1, -1}},
        {"finit_module", {-1}},
        {"acct", {1}}, /* a bad pointer: never switches accounting */
        {"quotactl_fd", {-1}},
        {"syslog", {10}}, /* SYSLOG_ACTION_SIZE_BUFFER */
        {"reboot", {0}},  /* bad magic */
};

static void denied_args(const char *name, RawCall *c)
{
        memset(c->args, 0, sizeof c->args);
        for (size_t i = 0; i < ELEMENTSOF(denied_call_args); i++)
                if (strcmp(denied_call_args[i].name, name) == 0)
                        memcpy(c->args, denied_call_args[i].args, sizeof c->args);
}

START_TEST(test_denied_syscalls)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(true);
        size_t n = 0;

        for (const char *const *name = seccomp_denied_syscalls; *name; name++, n++) {
                RawCall c = {.nr = seccomp_syscall_resolve_name(*name)};
                int r;

                ck_assert_msg(c.nr >= 0, "%s: not a native syscall", *name);
                denied_args(*name, &c);
                if (geteuid() == 0) {
                        r = raw_call_in_child(NULL, &c);
                        ck_assert_msg(r != EPERM, "%s: EPERM even without the filter", *name);
                }
                r = raw_call_in_child(p, &c);
                ck_assert_msg(r == EPERM, "%s: got %d (%s) under the filter, want EPERM", *name, r,
                              r ? strerror(r) : "success");
        }
        ck_assert_uint_ge(n, 40);
}
END_TEST

static int clone_child(void *userdata)
{
        const SeccompProgram *p = userdata;
        int status;
        pid_t pid;

        /* clone with a namespace flag, also with garbage above the flags. */
        errno = 0;
        CHILD_CHECK(syscall(SYS_clone, (long)(CLONE_NEWUSER | SIGCHLD), 0L, 0L, 0L, 0L) == -1 &&
                    errno == EPERM);
        CHILD_CHECK(syscall(SYS_clone, (long)(CLONE_NEWNET | SIGCHLD | GARBAGE_HIGH), 0L, 0L, 0L,
                            0L) == -1 &&
                    errno == EPERM);
        static const int ns_flags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
                                       CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, CLONE_NEWTIME};
        for (size_t i = 0; i < ELEMENTSOF(ns_flags); i++) {
                errno = 0;
                CHILD_CHECK(unshare(ns_flags[i]) == -1 && errno == EPERM);
        }
        /* Without namespace flags: fine. */
        CHILD_CHECK(unshare(CLONE_FILES | CLONE_FS) == 0);

        /* fork() (clone without namespace flags, after clone3's ENOSYS) and a thread-ish clone. */
        pid = fork();
        CHILD_CHECK(pid >= 0);
        if (pid == 0)
                _exit(7);
        CHILD_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
                    WEXITSTATUS(status) == 7);
        pid = vfork();
        if (pid == 0)
                _exit(8);
        CHILD_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WEXITSTATUS(status) == 8);

        /* clone3: ENOSYS, so libc falls back. NULL/0 makes the kernel say EINVAL if reached. */
        errno = 0;
        CHILD_CHECK(syscall(SYS_clone3, NULL, 0) == -1 && errno == ENOSYS);
        (void)p;
        return 0;
}

START_TEST(test_clone_namespaces)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(false);
        RawCall c = {.nr = SYS_unshare, .args = {CLONE_NEWUSER}};

        /* Without the filter, as root, a new user namespace is allowed. */
        if (geteuid() == 0)
                ck_assert_int_eq(raw_call_in_child(NULL, &c), 0);
        ck_assert_int_eq(raw_call_in_child(p, &c), EPERM);
        assert_child_ok(run_child(p, clone_child, p), "clone/unshare");
}
END_TEST

typedef struct Pty {
        int master;
        int slave;
} Pty;

static int ioctl_child(void *userdata)
{
        const Pty *t = userdata;
        struct winsize ws;
        char ch = 'x';
        int n;

        errno = 0;
        CHILD_CHECK(ioctl(t->master, TIOCSTI, &ch) == -1 && errno == EPERM);
        errno = 0;
        CHILD_CHECK(ioctl(t->slave, TIOCSTI, &ch) == -1 && errno == EPERM);
        /* The kernel reads cmd as an unsigned int; the filter must too. */
        errno = 0;
        CHILD_CHECK(syscall(SYS_ioctl, t->slave, (unsigned long)TIOCSTI | GARBAGE_HIGH, &ch) ==
                            -1 &&
                    errno == EPERM);
        errno = 0;
        CHILD_CHECK(syscall(SYS_ioctl, t->master, (unsigned long)TIOCLINUX | GARBAGE_HIGH, &ch) ==
                            -1 &&
                    errno == EPERM);
        errno = 0;
        CHILD_CHECK(ioctl(t->slave, TIOCLINUX, &ch) == -1 && errno == EPERM);
        /* Ordinary terminal ioctls still work. */
        CHILD_CHECK(ioctl(t->slave, TIOCGWINSZ, &ws) == 0);
        CHILD_CHECK(ioctl(t->master, FIONREAD, &n) == 0);
        return 0;
}

static int tiocsti_unfiltered(void *userdata)
{
        const Pty *t = userdata;
        char ch = 'x';

        return ioctl(t->slave, TIOCSTI, &ch) < 0 ? errno : 0;
}

START_TEST(test_ioctl_tiocsti)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(false);
        _cleanup_close_ int master = -EBADF, slave = -EBADF;
        Pty t;

        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        ck_assert_int_ge(master, 0);
        ck_assert_int_eq(grantpt(master), 0);
        ck_assert_int_eq(unlockpt(master), 0);
        slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
        ck_assert_int_ge(slave, 0);
        t = (Pty){.master = master, .slave = slave};

        /* Root (CAP_SYS_ADMIN) may push input into any tty: the filter is what refuses it. */
        if (geteuid() == 0) {
                int status = run_child(NULL, tiocsti_unfiltered, &t);

                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != EPERM,
                              "TIOCSTI refused without the filter");
        }
        assert_child_ok(run_child(p, ioctl_child, &t), "ioctl");
}
END_TEST

static int socket_child_unix(void *userdata)
{
        int sv[2], fd, pass, got = -1;
        char byte = 'a', cbuf[CMSG_SPACE(sizeof(int))] = {};
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = cbuf,
                            .msg_controllen = sizeof cbuf};
        struct cmsghdr *cm;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHILD_CHECK(fd >= 0);
        close(fd);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        CHILD_CHECK(fd >= 0);
        close(fd);

        /* socketpair and an fd passed with SCM_RIGHTS. */
        CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        pass = eventfd(0, EFD_CLOEXEC);
        CHILD_CHECK(pass >= 0);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass, sizeof(int));
        CHILD_CHECK(sendmsg(sv[0], &mh, 0) == 1);
        memset(cbuf, 0, sizeof cbuf);
        mh.msg_controllen = sizeof cbuf;
        CHILD_CHECK(recvmsg(sv[1], &mh, MSG_CMSG_CLOEXEC) == 1);
        cm = CMSG_FIRSTHDR(&mh);
        CHILD_CHECK(cm && cm->cmsg_type == SCM_RIGHTS);
        memcpy(&got, CMSG_DATA(cm), sizeof(int));
        CHILD_CHECK(got >= 0 && got != pass);

        /* Other families: EAFNOSUPPORT, as for a family the kernel lacks. */
        static const int refused[] = {AF_UNSPEC, AF_NETLINK, AF_PACKET, AF_BLUETOOTH,
                                      AF_ALG,    AF_VSOCK,   200};
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                errno = 0;
                CHILD_CHECK(socket(refused[i], SOCK_DGRAM, 0) == -1 && errno == EAFNOSUPPORT);
        }
        /* The family with garbage above it is not AF_UNIX to the filter: refused, never allowed. */
        errno = 0;
        CHILD_CHECK(syscall(SYS_socket, (long)(AF_INET | GARBAGE_HIGH), (long)SOCK_DGRAM, 0L) ==
                    -1);
        return 0;
}

/* userdata: {family, type}. Returns 0 or the errno of socket(). */
static int socket_try(void *userdata)
{
        const int *ft = userdata;
        int fd = socket(ft[0], ft[1] | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return errno;
        close(fd);
        return 0;
}

START_TEST(test_socket_families)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(false);
        _cleanup_seccomp_ SeccompProgram *inet = program_new(true);
        int af_inet[2] = {AF_INET, SOCK_STREAM}, af_inet6[2] = {AF_INET6, SOCK_DGRAM};
        int af_netlink[2] = {AF_NETLINK, SOCK_RAW}, status;

        assert_child_ok(run_child(p, socket_child_unix, NULL), "AF_UNIX");
        assert_child_ok(run_child(inet, socket_child_unix, NULL), "AF_UNIX with network");

        status = run_child(p, socket_try, af_inet);
        ck_assert_int_eq(WEXITSTATUS(status), EAFNOSUPPORT);
        status = run_child(p, socket_try, af_inet6);
        ck_assert_int_eq(WEXITSTATUS(status), EAFNOSUPPORT);
        /* The network right. */
        assert_child_ok(run_child(inet, socket_try, af_inet), "AF_INET with network");
        assert_child_ok(run_child(inet, socket_try, af_inet6), "AF_INET6 with network");
        status = run_child(inet, socket_try, af_netlink);
        ck_assert_int_eq(WEXITSTATUS(status), EAFNOSUPPORT);
        /* And the kernel would have allowed it. */
        assert_child_ok(run_child(NULL, socket_try, af_netlink), "AF_NETLINK unfiltered");
}
END_TEST

static int mknod_child(void *userdata)
{
        const char *dir = userdata;
        int dfd = open(dir, O_DIRECTORY | O_CLOEXEC);

        CHILD_CHECK(dfd >= 0);
        CHILD_CHECK(mkfifoat(dfd, "fifo", 0600) == 0);
        CHILD_CHECK(mknodat(dfd, "file", S_IFREG | 0600, 0) == 0);
        CHILD_CHECK(mknodat(dfd, "file0", 0600, 0) == 0);
        errno = 0;
        CHILD_CHECK(mknodat(dfd, "null", S_IFCHR | 0600, makedev(1, 3)) == -1 && errno == EPERM);
        errno = 0;
        CHILD_CHECK(mknodat(dfd, "blk", S_IFBLK | 0600, makedev(7, 0)) == -1 && errno == EPERM);
        errno = 0;
        CHILD_CHECK(syscall(SYS_mknod, "/nonexistent-dir/x", (long)(S_IFCHR | 0600), 0L) == -1 &&
                    errno == EPERM);
        return 0;
}

static int mknod_char_unfiltered(void *userdata)
{
        return mknodat(AT_FDCWD, userdata, S_IFCHR | 0600, makedev(1, 3)) < 0 ? errno : 0;
}

START_TEST(test_mknod)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(false);
        char dir[] = "/tmp/cella-seccomp-XXXXXX", path[64], cmd[96];
        struct stat st;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        assert_child_ok(run_child(p, mknod_child, dir), "mknod");
        snprintf(path, sizeof path, "%s/fifo", dir);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert(S_ISFIFO(st.st_mode));
        if (geteuid() == 0) {
                snprintf(path, sizeof path, "%s/control", dir);
                assert_child_ok(run_child(NULL, mknod_char_unfiltered, path), "mknod unfiltered");
        }
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static int personality_child(void *userdata)
{
        CHILD_CHECK(personality(0xffffffff) == PER_LINUX);
        CHILD_CHECK(personality(PER_LINUX) == PER_LINUX);
        errno = 0;
        CHILD_CHECK(personality(PER_LINUX | ADDR_NO_RANDOMIZE) == -1 && errno == EPERM);
        errno = 0;
        CHILD_CHECK(personality(PER_LINUX32) == -1 && errno == EPERM);
        errno = 0;
        CHILD_CHECK(personality(READ_IMPLIES_EXEC) == -1 && errno == EPERM);
        return 0;
}

START_TEST(test_personality)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(false);

        assert_child_ok(run_child(p, personality_child, NULL), "personality");
}
END_TEST

#if defined(__x86_64__)
static int int80_getpid(void *userdata)
{
        long ret = 20; /* __NR_getpid on i386 */

        /* Old kernels zero r8-r11 on the way back from int 0x80. */
        __asm__ volatile("int $0x80" : "+a"(ret) : : "r8", "r9", "r10", "r11", "memory");
        return ret > 0 ? 0 : 1;
}

static int x32_getpid(void *userdata)
{
        return syscall(X32_SYSCALL_BIT | SYS_getpid) < 0 ? errno : 0;
}

START_TEST(test_other_abis_killed)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(false);
        int status;

        /*
         * Without the filter, int 0x80 reaches the i386 table. A kernel without IA32
         * emulation (or booted with ia32_emulation=0) faults before seccomp sees it.
         */
        status = run_child(NULL, int80_getpid, NULL);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                status = run_child(p, int80_getpid, NULL);
                ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
                              "int 0x80 under the filter: status 0x%x", status);
        } else
                printf("test_other_abis_killed: int 0x80 part skipped, no IA32 emulation\n");

        /* x32 numbers reach seccomp whether or not the kernel has x32. */
        status = run_child(p, x32_getpid, NULL);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
                      "x32 getpid under the filter: status 0x%x", status);
}
END_TEST
#endif

START_TEST(test_unknown_syscalls)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(false);
        RawCall future = {.nr = 500}, listmount = {.nr = 458},
                sethostname = {.nr = SYS_sethostname,
                               .args = {0, 1}}; /* EFAULT if it got through */

        /* Beyond the known table: ENOSYS, as from a kernel that lacks it. */
        ck_assert_int_eq(raw_call_in_child(p, &future), ENOSYS);
        /* Known and not allowed: EPERM (listmount with NULL args is EFAULT or ENOSYS unfiltered).
         */
        ck_assert_int_eq(raw_call_in_child(p, &listmount), EPERM);
        ck_assert_int_eq(raw_call_in_child(p, &sethostname), EPERM);
}
END_TEST

/* What ordinary programs do, each checked to get past the filter. */
static int common_calls_child(void *userdata)
{
        char buf[64], dir[] = "/tmp/cella-seccomp-XXXXXX", path[96];
        struct open_how how = {.flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS};
        struct rlimit rl;
        struct statx stx;
        cpu_set_t cpus;
        sigset_t mask;
        void *m;
        int fd, pfd;

        CHILD_CHECK(getrandom(buf, sizeof buf, 0) == sizeof buf);
        CHILD_CHECK(getcwd(buf, sizeof buf) != NULL);
        CHILD_CHECK(sched_getaffinity(0, sizeof cpus, &cpus) == 0);
        CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
        CHILD_CHECK(prlimit(0, RLIMIT_NOFILE, NULL, &rl) == 0);
        rl.rlim_cur = rl.rlim_cur > 64 ? 64 : rl.rlim_cur;
        CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0); /* lowering is fine */
        CHILD_CHECK(statx(AT_FDCWD, "/", 0, STATX_BASIC_STATS, &stx) == 0);
        CHILD_CHECK(syscall(SYS_faccessat2, AT_FDCWD, "/", R_OK, AT_EACCESS) == 0);
        fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
        CHILD_CHECK(fd >= 0);
        close(fd);

        fd = memfd_create("x", MFD_CLOEXEC);
        CHILD_CHECK(fd >= 0 && ftruncate(fd, 16384) == 0);
        m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHILD_CHECK(m != MAP_FAILED);
        m = mremap(m, 8192, 16384, MREMAP_MAYMOVE);
        CHILD_CHECK(m != MAP_FAILED);
        CHILD_CHECK(mprotect(m, 4096, PROT_READ) == 0);
        CHILD_CHECK(madvise(m, 16384, MADV_DONTNEED) == 0);
        CHILD_CHECK(munmap(m, 16384) == 0);
        close(fd);

        fd = eventfd(0, EFD_CLOEXEC);
        CHILD_CHECK(fd >= 0);
        close(fd);
        fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        CHILD_CHECK(fd >= 0);
        close(fd);
        sigemptyset(&mask);
        sigaddset(&mask, SIGUSR1);
        fd = signalfd(-1, &mask, SFD_CLOEXEC);
        CHILD_CHECK(fd >= 0);
        close(fd);
        fd = inotify_init1(IN_CLOEXEC);
        CHILD_CHECK(fd >= 0 && inotify_add_watch(fd, "/tmp", IN_CREATE) >= 0);
        close(fd);
        fd = syscall(SYS_membarrier, 0 /* MEMBARRIER_CMD_QUERY */, 0);
        CHILD_CHECK(fd >= 0);

        pfd = syscall(SYS_pidfd_open, getpid(), 0);
        CHILD_CHECK(pfd >= 0);
        CHILD_CHECK(syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0) == 0);
        close(pfd);

        CHILD_CHECK(mkdtemp(dir) != NULL && chdir(dir) == 0);
        fd = open("f", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        CHILD_CHECK(fd >= 0);
        CHILD_CHECK(fallocate(fd, 0, 0, 4096) == 0 && fsync(fd) == 0 && fdatasync(fd) == 0);
        CHILD_CHECK(flock(fd, LOCK_EX) == 0 && fcntl(fd, F_GETFL) >= 0);
        CHILD_CHECK(fchmod(fd, 0644) == 0 && utimensat(fd, "", NULL, AT_EMPTY_PATH) == 0);
        CHILD_CHECK(fsetxattr(fd, "user.cella", "1", 1, 0) == 0 || errno == ENOTSUP);
        CHILD_CHECK(close_range(3, ~0u, 0) == 0); /* closes fd */
        CHILD_CHECK(renameat2(AT_FDCWD, "f", AT_FDCWD, "g", RENAME_NOREPLACE) == 0);
        CHILD_CHECK(unlink("g") == 0 && chdir("/") == 0 && rmdir(dir) == 0);
        snprintf(path, sizeof path, "/proc/self/status");
        fd = open(path, O_RDONLY | O_CLOEXEC);
        CHILD_CHECK(fd >= 0 && read(fd, buf, sizeof buf) > 0);
        close(fd);
        return 0;
}

START_TEST(test_common_calls)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(false);

        assert_child_ok(run_child(p, common_calls_child, NULL), "common calls");
}
END_TEST

/*
 * Runs argv under p with stdout (and stderr, if merge) into a buffer. Returns the
 * wait status; *ret_out gets what it wrote (NUL-terminated, at most max bytes).
 */
static int run_program(const SeccompProgram *p, char *const argv[], bool merge, size_t max,
                       char **ret_out)
{
        _cleanup_close_pair_ int pipefd[2] = {-EBADF, -EBADF};
        _cleanup_free_ char *out = NULL;
        size_t len = 0;
        int status;
        pid_t pid;

        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        out = malloc(max + 1);
        ck_assert_ptr_nonnull(out);
        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                child_restrict(p);
                if (dup2(pipefd[1], STDOUT_FILENO) < 0 ||
                    (merge && dup2(pipefd[1], STDERR_FILENO) < 0))
                        _exit(127);
                execv(argv[0], argv);
                _exit(127);
        }
        pipefd[1] = safe_close(pipefd[1]);
        for (;;) {
                char tmp[4096];
                ssize_t n = read(pipefd[0], tmp, sizeof tmp);

                if (n < 0 && errno == EINTR)
                        continue;
                ck_assert_int_ge(n, 0);
                if (n == 0)
                        break;
                if (len < max) {
                        size_t k = (size_t)n < max - len ? (size_t)n : max - len;

                        memcpy(out + len, tmp, k);
                        len += k;
                }
        }
        out[len] = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        *ret_out = TAKE_PTR(out);
        return status;
}

static void assert_program_output(const SeccompProgram *p, char *const argv[], const char *want)
{
        _cleanup_free_ char *out = NULL;
        int status = run_program(p, argv, false, 65536, &out);

        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status 0x%x, output: %s",
                      argv[0], status, out);
        ck_assert_str_eq(out, want);
}

START_TEST(test_exec_shell)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(false);
        char *sh[] = {"/bin/sh", "-c", "echo ok", NULL};
        char *pipeline[] = {"/bin/sh", "-c",
                            "d=$(mktemp -d) && cd \"$d\" && mkfifo p && echo hi > f && "
                            "cat f | tr a-z A-Z && ls | sort | tr '\\n' ' ' && "
                            "cp f g && chmod 600 g && touch g && ln -s g s && readlink s && "
                            "cd / && rm -rf \"$d\" && (sleep 0.01 &) && wait && echo done",
                            NULL};

        assert_program_output(p, sh, "ok\n");
        assert_program_output(p, pipeline, "HI\nf p g\ndone\n");
}
END_TEST

START_TEST(test_exec_python)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(false);
        char *argv[] = {
                PYTHON,
                "-I",
                "-c",
                "import threading, subprocess, json, sqlite3, tempfile, multiprocessing, os, "
                "select, signal\n"
                "r = []\n"
                "t = threading.Thread(target=lambda: r.append(sum(range(10))))\n"
                "t.start(); t.join()\n"
                "out = subprocess.run(['/bin/sh', '-c', 'echo sub'], capture_output=True, "
                "text=True, check=True).stdout.strip()\n"
                "v = sqlite3.connect(':memory:').execute('select 40 + 2').fetchone()[0]\n"
                "with tempfile.TemporaryDirectory() as d:\n"
                "    open(os.path.join(d, 'f'), 'w').write('x')\n"
                "    n = len(os.listdir(d))\n"
                "with multiprocessing.Pool(2) as pool:\n"
                "    sq = pool.map(abs, [-1, -2])\n"
                "rd, wr = os.pipe(); ep = select.epoll(); ep.register(rd, select.EPOLLIN)\n"
                "os.write(wr, b'x'); ev = len(ep.poll(1))\n"
                "signal.signal(signal.SIGUSR1, lambda *a: r.append('sig'))\n"
                "os.kill(os.getpid(), signal.SIGUSR1)\n"
                "print(json.dumps([r, out, v, n, sq, ev]))\n",
                NULL,
        };

        if (access(PYTHON, X_OK) < 0) {
                printf("test_exec_python: skipped, %s is not installed\n", PYTHON);
                return;
        }
        assert_program_output(p, argv, "[[45, \"sig\"], \"sub\", 42, 1, [1, 2], 1]\n");
}
END_TEST

START_TEST(test_exec_sqlite_lua)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new(false);
        char *sqlite[] = {"/usr/bin/sqlite3", ":memory:", "select 1", NULL};
        char *lua[] = {"/usr/bin/lua5.4", "-e", "print(1)", NULL};

        if (access(sqlite[0], X_OK) == 0)
                assert_program_output(p, sqlite, "1\n");
        else
                printf("test_exec_sqlite_lua: sqlite3 skipped, %s is not installed\n", sqlite[0]);
        if (access(lua[0], X_OK) == 0)
                assert_program_output(p, lua, "1\n");
        else
                printf("test_exec_sqlite_lua: lua skipped, %s is not installed\n", lua[0]);
}
END_TEST

/*
 * A slice of CPython's own regression suite under the filter: threads, subprocess,
 * os, select and signals, in parallel workers (-j0). Needs Debian's
 * libpython3.11-testsuite.
 */
START_TEST(test_python_regrtest)
{
        /* The suite talks to itself over loopback AF_INET sockets: the network right. */
        _cleanup_seccomp_ SeccompProgram *p = program_new(true);
        _cleanup_free_ char *out = NULL;
        char *argv[] = {
                PYTHON,           "-m",          "test",        "test_os", "test_subprocess",
                "test_threading", "test_select", "test_signal", "-j0",     NULL};
        const char *summary, *tail;
        int status;

        if (access(PYTHON_TESTSUITE, R_OK) < 0) {
                printf("test_python_regrtest: skipped, %s is missing (apt-get install "
                       "libpython3.11-testsuite)\n",
                       PYTHON_TESTSUITE);
                return;
        }
        status = run_program(p, argv, true, 1 << 20, &out);
        summary = strstr(out, "== Tests result");
        tail = out + (strlen(out) > 4000 ? strlen(out) - 4000 : 0);
        /* regrtest exits 0 with "NO TEST RUN" when its workers cannot start: ask for success. */
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                              strstr(out, "Tests result: SUCCESS"),
                      "python regression tests under the filter: status 0x%x\n...%s", status, tail);
        printf("test_python_regrtest: %s", summary ? summary : "(no summary)\n");
}
END_TEST

/* The program compiled into the binary at build time is exactly what libseccomp
 * builds now, for every variant: a stale or hand-edited builtin cannot slip by. */
START_TEST(test_builtin_matches_compiled)
{
        for (int inet = 0; inet <= 1; inet++) {
                SeccompOptions opts = {.allow_inet = inet};
                SeccompProgram *built = NULL, *builtin = NULL;

                ck_assert_int_eq(seccomp_program_build(&opts, &built), 0);
                ck_assert_int_eq(seccomp_program_builtin(&opts, &builtin), 0);
                ck_assert_uint_eq(built->prog.len, builtin->prog.len);
                ck_assert_int_eq(memcmp(built->prog.filter, builtin->prog.filter,
                                        built->prog.len * sizeof(struct sock_filter)),
                                 0);
                seccomp_program_free(built);
                seccomp_program_free(builtin);
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("seccomp");
        TCase *tc = tcase_create("filter");
        TCase *programs = tcase_create("programs");
        SRunner *sr;
        int failed;

        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_build);
        tcase_add_test(tc, test_builtin_matches_compiled);
        tcase_add_test(tc, test_denied_syscalls);
        tcase_add_test(tc, test_clone_namespaces);
        tcase_add_test(tc, test_ioctl_tiocsti);
        tcase_add_test(tc, test_socket_families);
        tcase_add_test(tc, test_mknod);
        tcase_add_test(tc, test_personality);
#if defined(__x86_64__)
        tcase_add_test(tc, test_other_abis_killed);
#endif
        tcase_add_test(tc, test_unknown_syscalls);
        tcase_add_test(tc, test_common_calls);
        suite_add_tcase(s, tc);

        /* Real programs; python's own test suite takes about a minute. */
        tcase_set_timeout(programs, 110);
        tcase_add_test(programs, test_exec_shell);
        tcase_add_test(programs, test_exec_python);
        tcase_add_test(programs, test_exec_sqlite_lua);
        tcase_add_test(programs, test_python_regrtest);
        suite_add_tcase(s, programs);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
