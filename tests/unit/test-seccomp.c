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
#include <linux/netlink.h>
#include <linux/sched.h>
#include <netinet/in.h>
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
#include <sys/shm.h>
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
#include "skip.h"
#include "sandbox/seccomp.h"
#include "probe.h" /* examples/hostile: the probe runner and its verdicts */

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

static SeccompProgram *program_new(void)
{
        SeccompOptions opts = {};
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
        _cleanup_seccomp_ SeccompProgram *p = program_new();
        SeccompOptions opts = {};
        SeccompProgram *none = (SeccompProgram *)0x1;

        ck_assert_uint_gt(p->prog.len, 0);
        ck_assert_uint_le(p->prog.len, BPF_MAXINSNS);
        /* A seccomp program must end in a return. */
        ck_assert_uint_eq(BPF_CLASS(p->prog.filter[p->prog.len - 1].code), BPF_RET);

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
        _cleanup_seccomp_ SeccompProgram *p = program_new();
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
        _cleanup_seccomp_ SeccompProgram *p = program_new();
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
        _cleanup_seccomp_ SeccompProgram *p = program_new();
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
        static const int refused[] = {AF_UNSPEC, AF_PACKET, AF_BLUETOOTH, AF_ALG,
                                      AF_VSOCK,  AF_KEY,    AF_XDP,       200};
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

/* userdata: {family, type, protocol}. Returns 0 or the errno of socket(). */
static int socket_try(void *userdata)
{
        const int *ftp = userdata;
        int fd = socket(ftp[0], ftp[1] | SOCK_CLOEXEC, ftp[2]);

        if (fd < 0)
                return errno;
        close(fd);
        return 0;
}

/* userdata: {family, type, protocol}; the protocol with garbage in its upper half. */
static int socket_try_garbage(void *userdata)
{
        const int *ftp = userdata;
        long fd = syscall(SYS_socket, (long)ftp[0], (long)(ftp[1] | SOCK_CLOEXEC),
                          (long)((unsigned long)(unsigned)ftp[2] | GARBAGE_HIGH));

        if (fd < 0)
                return errno;
        close((int)fd);
        return 0;
}

/*
 * The app's own network namespace makes AF_INET, AF_INET6 and route netlink
 * harmless (seccomp.c socket_rules_add): allowed. Protocols that would load a module
 * or reach a host-wide interface stay refused, and the control run without the
 * filter shows the kernel would have allowed each refused one (as root here).
 */
START_TEST(test_socket_families)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new();
        static const int allowed[][3] = {
                {AF_INET, SOCK_STREAM, 0},
                {AF_INET, SOCK_DGRAM, 0},
                {AF_INET, SOCK_STREAM, IPPROTO_TCP},
                {AF_INET, SOCK_DGRAM, IPPROTO_UDP},
                {AF_INET6, SOCK_STREAM, 0},
                {AF_INET6, SOCK_DGRAM, IPPROTO_UDP},
                {AF_NETLINK, SOCK_RAW, NETLINK_ROUTE},
                {AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE},
                {AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE},
        };
        /* Each one the kernel gives root here (checked below without the filter). */
        static const int refused[][3] = {
                {AF_NETLINK, SOCK_RAW, NETLINK_AUDIT},
                {AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT},
                {AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG},
                {AF_NETLINK, SOCK_RAW, NETLINK_GENERIC},
                {AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER},
                {AF_NETLINK, SOCK_RAW, NETLINK_XFRM},
                {AF_INET, SOCK_RAW, IPPROTO_RAW},
                {AF_INET6, SOCK_RAW, IPPROTO_RAW},
        };
        int af_packet[3] = {AF_PACKET, SOCK_RAW, 0}, status;

        assert_child_ok(run_child(p, socket_child_unix, NULL), "AF_UNIX");
        for (size_t i = 0; i < ELEMENTSOF(allowed); i++) {
                status = run_child(p, socket_try, (void *)allowed[i]);
                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                              "socket(%d, %d, %d): %d, not allowed", allowed[i][0], allowed[i][1],
                              allowed[i][2], WEXITSTATUS(status));
        }
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                status = run_child(p, socket_try, (void *)refused[i]);
                ck_assert_msg(WEXITSTATUS(status) == EPERM, "socket(%d, %d, %d): %d, not EPERM",
                              refused[i][0], refused[i][1], refused[i][2], WEXITSTATUS(status));
                if (geteuid() == 0) {
                        status = run_child(NULL, socket_try, (void *)refused[i]);
                        ck_assert_msg(WEXITSTATUS(status) != EPERM,
                                      "socket(%d, %d, %d) EPERM without the filter", refused[i][0],
                                      refused[i][1], refused[i][2]);
                }
        }
        /* An allowed protocol with garbage above it is not that protocol to the filter. */
        status = run_child(p, socket_try_garbage, (void *)allowed[0]);
        ck_assert_int_eq(WEXITSTATUS(status), EPERM);
        status = run_child(p, socket_try_garbage, (void *)allowed[6]);
        ck_assert_int_eq(WEXITSTATUS(status), EPERM);
        /* Other families: EAFNOSUPPORT, as for a family the kernel lacks. */
        status = run_child(p, socket_try, af_packet);
        ck_assert_int_eq(WEXITSTATUS(status), EAFNOSUPPORT);
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
        _cleanup_seccomp_ SeccompProgram *p = program_new();
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
        _cleanup_seccomp_ SeccompProgram *p = program_new();

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

/*
 * int 0x80 from a 64-bit process reaches the i386 table, which an x86_64 filter
 * would read wrong: the filter kills it. A kernel without IA32 emulation
 * (CONFIG_IA32_EMULATION unset, or booted with ia32_emulation=0) faults before
 * seccomp sees the call: nothing to test there.
 */
START_TEST(test_i386_killed)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new();
        int status;

        status = run_child(NULL, int80_getpid, NULL);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                SKIP_TEST("no IA32 emulation: int 0x80 without a filter ends with status 0x%x",
                          status);
        status = run_child(p, int80_getpid, NULL);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
                      "int 0x80 under the filter: status 0x%x", status);
}
END_TEST

/* x32 numbers reach seccomp whether or not the kernel has x32: the filter kills. */
START_TEST(test_x32_killed)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new();
        int status = run_child(p, x32_getpid, NULL);

        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
                      "x32 getpid under the filter: status 0x%x", status);
}
END_TEST
#endif

/*
 * Host-wide resources: the kernel AIO calls answer ENOSYS (fs.aio-max-nr is one
 * counter for the host), huge pages from the host's pool EPERM, with or without
 * garbage in the upper half of the flags register; the same calls without the
 * flag still work. Unfiltered, io_setup works (or hits the host's limit: EAGAIN),
 * so the ENOSYS is the filter's.
 */
START_TEST(test_host_wide_resources)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new();
        static unsigned long aio_ctx;
        RawCall io_setup = {.nr = SYS_io_setup, .args = {8, (long)&aio_ctx}},
                io_submit = {.nr = SYS_io_submit, .args = {0, 0, 0}},
                io_getevents = {.nr = SYS_io_getevents}, io_destroy = {.nr = SYS_io_destroy},
                huge_mmap = {.nr = SYS_mmap,
                             .args = {0, 2 << 20, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0}},
                huge_mmap_high = {.nr = SYS_mmap,
                                  .args = {0, 2 << 20, PROT_READ | PROT_WRITE,
                                           (long)(MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
                                                  GARBAGE_HIGH),
                                           -1, 0}},
                plain_mmap = {.nr = SYS_mmap,
                              .args = {0, 2 << 20, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0}},
                huge_memfd = {.nr = SYS_memfd_create, .args = {(long)"x", MFD_HUGETLB}},
                huge_memfd_high = {.nr = SYS_memfd_create,
                                   .args = {(long)"x", (long)(MFD_HUGETLB | GARBAGE_HIGH)}},
                plain_memfd = {.nr = SYS_memfd_create, .args = {(long)"x", MFD_CLOEXEC}},
                huge_shm = {.nr = SYS_shmget,
                            .args = {IPC_PRIVATE, 2 << 20, IPC_CREAT | SHM_HUGETLB | 0600}};
        int r;

        r = raw_call_in_child(NULL, &io_setup);
        ck_assert_msg(r == 0 || r == EAGAIN, "io_setup without the filter: %s", strerror(r));
        ck_assert_int_eq(raw_call_in_child(p, &io_setup), ENOSYS);
        ck_assert_int_eq(raw_call_in_child(p, &io_submit), ENOSYS);
        ck_assert_int_eq(raw_call_in_child(p, &io_getevents), ENOSYS);
        ck_assert_int_eq(raw_call_in_child(p, &io_destroy), ENOSYS);

        ck_assert_int_eq(raw_call_in_child(p, &huge_mmap), EPERM);
        ck_assert_int_eq(raw_call_in_child(p, &huge_mmap_high), EPERM);
        ck_assert_int_eq(raw_call_in_child(p, &plain_mmap), 0);
        ck_assert_int_eq(raw_call_in_child(p, &huge_memfd), EPERM);
        ck_assert_int_eq(raw_call_in_child(p, &huge_memfd_high), EPERM);
        ck_assert_int_eq(raw_call_in_child(p, &plain_memfd), 0);
        ck_assert_int_eq(raw_call_in_child(p, &huge_shm), EPERM);
        /* Without the filter a host with no huge pages says ENOMEM, not EPERM. */
        r = raw_call_in_child(NULL, &huge_memfd);
        ck_assert_msg(r != EPERM, "memfd_create(MFD_HUGETLB) is EPERM even without the filter");
}
END_TEST

/* ---- hostile's probe runner (examples/hostile/probe.c) ------------------------- */

static const SeccompProgram *probe_filter; /* loaded by the probe's child, if set */

static void probe_restrict(void)
{
        if (probe_filter)
                child_restrict(probe_filter);
}

static long probe_getpid(void *userdata)
{
        probe_restrict();
        return syscall(SYS_getpid);
}

static long probe_mount(void *userdata)
{
        probe_restrict();
        return syscall(SYS_mount, "none", "/", "tmpfs", 0, NULL);
}

#if defined(__x86_64__)
static long probe_int80(void *userdata)
{
        long r = 20; /* i386 getpid */

        probe_restrict();
        __asm__ volatile("int $0x80" : "+a"(r) : : "r8", "r9", "r10", "r11", "memory");
        return r;
}

/*
 * A kernel without IA32 emulation (CONFIG_IA32_EMULATION unset, or booted with
 * ia32_emulation=0) has no gate at vector 0x80 for user mode: int 0x80 raises #GP
 * and the process gets SIGSEGV before any system call. Vector 0x81 has no user
 * gate on any x86_64 kernel, so it is exactly that path, on this host.
 */
static long probe_int81(void *userdata)
{
        long r = 20;

        probe_restrict();
        __asm__ volatile("int $0x81" : "+a"(r) : : "r8", "r9", "r10", "r11", "memory");
        return r;
}

static long probe_x32(void *userdata)
{
        probe_restrict();
        return syscall(X32_SYSCALL_BIT | SYS_getpid);
}
#endif

static long probe_ud2(void *userdata)
{
        probe_restrict();
        __builtin_trap();
}

static long probe_exits(void *userdata)
{
        _exit(0); /* as a successful execve would: no marker, exit 0 */
}

static long probe_setup_fails(void *userdata)
{
        _exit(PROBE_EXIT_SETUP); /* its buffer could not be mapped, say */
}

static ProbeVerdict probe_verdict(long (*call)(void *), const SeccompProgram *p, ProbeOutcome want,
                                  char *why, size_t n)
{
        ProbeResult r;

        probe_filter = p;
        ck_assert_int_eq(probe_run(call, NULL, &r), 0);
        probe_filter = NULL;
        ck_assert_msg(r.outcome == want, "outcome %d, want %d (status 0x%x)", r.outcome, want,
                      r.status);
        return probe_judge(&r, why, n);
}

/*
 * hostile counts an escape only for a call that returned success: a fault before
 * the call (no IA32 emulation) is "not applicable", the filter's SIGSYS a
 * refusal, an error return a refusal, a child that died without reporting never
 * an escape.
 */
START_TEST(test_probe_verdicts)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new();
        char why[160];

        /* The call ran and returned success: the one escape. */
        ck_assert_int_eq(probe_verdict(probe_getpid, NULL, PROBE_RETURNED, why, sizeof why),
                         VERDICT_ESCAPED);
        ck_assert_ptr_nonnull(strstr(why, "succeeded"));
        /* The call returned an error. */
        ck_assert_int_eq(probe_verdict(probe_mount, p, PROBE_RETURNED, why, sizeof why),
                         VERDICT_REFUSED);
        ck_assert_str_eq(why, strerror(EPERM));
        /* A fault before the call: the feature is absent, not an escape. */
        ck_assert_int_eq(probe_verdict(probe_ud2, NULL, PROBE_FAULTED, why, sizeof why),
                         VERDICT_NOT_APPLICABLE);
        ck_assert_msg(strstr(why, "SIGILL") && strstr(why, "not available"), "%s", why);
        /* Died without a marker, even with exit status 0: never RETURNED. */
        ck_assert_int_eq(probe_verdict(probe_exits, NULL, PROBE_LOST, why, sizeof why),
                         VERDICT_NOT_APPLICABLE);
        /* Its own setup failed before the call: not applicable, and it says so. */
        ck_assert_int_eq(probe_verdict(probe_setup_fails, NULL, PROBE_LOST, why, sizeof why),
                         VERDICT_NOT_APPLICABLE);
        ck_assert_msg(strstr(why, "setup failed") != NULL, "%s", why);
        ck_assert_int_eq(probe_classify(false, 0), PROBE_LOST);
        ck_assert_int_eq(probe_classify(true, SIGSYS), PROBE_RETURNED);
        ck_assert_int_eq(probe_classify(false, SIGSYS), PROBE_KILLED);
        ck_assert_int_eq(probe_classify(false, SIGSEGV), PROBE_FAULTED);
        ck_assert_int_eq(probe_classify(false, SIGKILL), PROBE_LOST);
#if defined(__x86_64__)
        /* No IA32 emulation, as on this host it cannot be switched off: SIGSEGV
         * before any system call, with and without the filter. */
        ck_assert_int_eq(probe_verdict(probe_int81, NULL, PROBE_FAULTED, why, sizeof why),
                         VERDICT_NOT_APPLICABLE);
        ck_assert_msg(strstr(why, "SIGSEGV") != NULL, "%s", why);
        ck_assert_int_eq(probe_verdict(probe_int81, p, PROBE_FAULTED, why, sizeof why),
                         VERDICT_NOT_APPLICABLE);
        /* x32 numbers reach the filter whether or not the kernel has x32: SIGSYS. */
        ck_assert_int_eq(probe_verdict(probe_x32, p, PROBE_KILLED, why, sizeof why),
                         VERDICT_REFUSED);
        /* With IA32 emulation: the call returns unfiltered (an escape, were it
         * sandboxed) and the filter kills it. Without it, both fault. */
        {
                ProbeResult r;

                probe_run(probe_int80, NULL, &r);
                if (r.outcome == PROBE_RETURNED)
                        ck_assert_int_eq(
                                probe_verdict(probe_int80, p, PROBE_KILLED, why, sizeof why),
                                VERDICT_REFUSED);
                else
                        ck_assert_int_eq(
                                probe_verdict(probe_int80, p, PROBE_FAULTED, why, sizeof why),
                                VERDICT_NOT_APPLICABLE);
        }
#endif
}
END_TEST

START_TEST(test_unknown_syscalls)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new();
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
        _cleanup_seccomp_ SeccompProgram *p = program_new();

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
        _cleanup_seccomp_ SeccompProgram *p = program_new();
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
        _cleanup_seccomp_ SeccompProgram *p = program_new();
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

        if (access(PYTHON, X_OK) < 0)
                SKIP_TEST("%s is not installed", PYTHON);
        assert_program_output(p, argv, "[[45, \"sig\"], \"sub\", 42, 1, [1, 2], 1]\n");
}
END_TEST

START_TEST(test_exec_sqlite)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new();
        char *sqlite[] = {"/usr/bin/sqlite3", ":memory:", "select 1", NULL};

        if (access(sqlite[0], X_OK) < 0)
                SKIP_TEST("%s is not installed", sqlite[0]);
        assert_program_output(p, sqlite, "1\n");
}
END_TEST

START_TEST(test_exec_lua)
{
        _cleanup_seccomp_ SeccompProgram *p = program_new();
        char *lua[] = {"/usr/bin/lua5.4", "-e", "print(1)", NULL};

        if (access(lua[0], X_OK) < 0)
                SKIP_TEST("%s is not installed", lua[0]);
        assert_program_output(p, lua, "1\n");
}
END_TEST

/*
 * A slice of CPython's own regression suite under the filter: threads, subprocess,
 * os, select and signals, in parallel workers (-j0). Needs Debian's
 * libpython3.11-testsuite.
 */
START_TEST(test_python_regrtest)
{
        /* The suite talks to itself over loopback AF_INET sockets. Files, processes
         * (fork, exec, posix_spawn, wait, pipes) and polling; test_threading and
         * test_signal, slow and timed, run inside a whole sandbox in tests/run-long
         * (tests/integration/test_real_programs.py). */
        _cleanup_seccomp_ SeccompProgram *p = program_new();
        _cleanup_free_ char *out = NULL;
        char *argv[] = {PYTHON,        "-m",         "test", "test_os", "test_subprocess",
                        "test_select", "test_posix", "-j0",  NULL};
        const char *summary, *tail;
        int status;

        if (access(PYTHON_TESTSUITE, R_OK) < 0)
                SKIP_TEST("%s is missing (apt-get install libpython3.11-testsuite)",
                          PYTHON_TESTSUITE);
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
        for (int v = 0; v < 2; v++) {
                SeccompOptions opts = {.notify = v & 1};
                SeccompProgram *built = NULL, *builtin = NULL;

                ck_assert_int_eq(seccomp_program_build(&opts, &built), 0);
                ck_assert_int_eq(seccomp_program_builtin(&opts, &builtin), 0);
                ck_assert_uint_eq(built->prog.len, builtin->prog.len);
                ck_assert_int_eq(memcmp(built->prog.filter, builtin->prog.filter,
                                        built->prog.len * sizeof(struct sock_filter)),
                                 0);
                ck_assert(built->notify == opts.notify && builtin->notify == opts.notify);
                seccomp_program_free(built);
                seccomp_program_free(builtin);
        }
}
END_TEST

/*
 * The notifying variant is the EPERM one with each EPERM return (the default
 * action and the ioctl overrides) turned into USER_NOTIF, and nothing else: the
 * explicit ENOSYS/EAFNOSUPPORT/KILL answers and every jump are the same.
 */
START_TEST(test_notify_variant_differs_only_in_eperm)
{
        {
                _cleanup_seccomp_ SeccompProgram *plain = NULL, *notify = NULL;
                unsigned changed = 0;

                ck_assert_int_eq(seccomp_program_build(&(SeccompOptions){}, &plain), 0);
                ck_assert_int_eq(seccomp_program_build(&(SeccompOptions){.notify = true}, &notify),
                                 0);
                ck_assert_uint_eq(plain->prog.len, notify->prog.len);
                for (unsigned i = 0; i < plain->prog.len; i++) {
                        const struct sock_filter *a = &plain->prog.filter[i];
                        const struct sock_filter *b = &notify->prog.filter[i];

                        if (memcmp(a, b, sizeof *a) == 0) {
                                ck_assert_uint_ne(b->k, SECCOMP_RET_USER_NOTIF);
                                continue;
                        }
                        ck_assert_uint_eq(BPF_CLASS(a->code), BPF_RET);
                        ck_assert_uint_eq(a->code, b->code);
                        ck_assert_uint_eq(a->k, SECCOMP_RET_ERRNO | EPERM);
                        ck_assert_uint_eq(b->k, SECCOMP_RET_USER_NOTIF);
                        changed++;
                }
                /* At least the default action and the ioctl denials. */
                ck_assert_uint_ge(changed, 2);
        }
}
END_TEST

START_TEST(test_syscall_names)
{
        ck_assert_str_eq(seccomp_syscall_name(SYS_ptrace), "ptrace");
        ck_assert_str_eq(seccomp_syscall_name(SYS_keyctl), "keyctl");
        ck_assert_str_eq(seccomp_syscall_name(SYS_read), "read");
        ck_assert_str_eq(seccomp_syscall_name(470), "listns"); /* newer than libseccomp 2.5 */
        ck_assert_ptr_null(seccomp_syscall_name(-1));
        ck_assert_ptr_null(seccomp_syscall_name(SECCOMP_SYSCALL_NR_END));
        ck_assert_ptr_null(seccomp_syscall_name(500)); /* unassigned */
        /* The table is what libseccomp (plus our newer calls) says now, for every number. */
        for (int nr = 0; nr < SECCOMP_SYSCALL_NR_END; nr++) {
                _cleanup_free_ char *name = NULL;
                int r = seccomp_syscall_resolve_nr(nr, &name);
                const char *have = seccomp_syscall_name(nr);

                if (r == -ENOENT) {
                        ck_assert_msg(!have, "%d: %s in the table, unknown to libseccomp", nr,
                                      have);
                        continue;
                }
                ck_assert_int_eq(r, 0);
                ck_assert_msg(have && strcmp(have, name) == 0, "%d: %s, libseccomp says %s", nr,
                              have ?: "(none)", name);
        }
}
END_TEST

START_TEST(test_load_listener_args)
{
        _cleanup_seccomp_ SeccompProgram *plain = program_new();
        _cleanup_seccomp_ SeccompProgram *notify = NULL;

        ck_assert_int_eq(seccomp_program_builtin(&(SeccompOptions){.notify = true}, &notify), 0);
        /* Neither call reaches seccomp(2) here: the test process stays unfiltered. */
        ck_assert_int_eq(seccomp_program_load(notify), -EINVAL);
        ck_assert_int_eq(seccomp_program_load_listener(plain), -EINVAL);
        ck_assert_int_eq(seccomp_program_load_listener(NULL), -EINVAL);
}
END_TEST

/* Sends fd over sock (SCM_RIGHTS) with one byte. Returns 0 or -errno. */
static int fd_send(int sock, int fd)
{
        char control[CMSG_SPACE(sizeof(int))] = {};
        char byte = 'F';
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = control,
                            .msg_controllen = sizeof control};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
        return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

static int fd_recv(int sock)
{
        char control[CMSG_SPACE(sizeof(int))] = {};
        char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = control,
                            .msg_controllen = sizeof control};
        struct cmsghdr *c;
        int fd;

        ck_assert_int_eq(recvmsg(sock, &mh, MSG_CMSG_CLOEXEC), 1);
        c = CMSG_FIRSTHDR(&mh);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(c->cmsg_type, SCM_RIGHTS);
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
        return fd;
}

/* A child under a notifying filter, whose listener the parent holds. */
typedef struct NotifyChild {
        pid_t pid;
        int pidfd;
        int listener;
} NotifyChild;

/* Forks a child that loads p (notifying) with a listener, hands the listener to us
 * and runs f. */
static NotifyChild notify_child_start(const SeccompProgram *p, ChildFunc f, void *userdata)
{
        _cleanup_close_pair_ int sock[2] = {-EBADF, -EBADF};
        NotifyChild c;

        ck_assert(p->notify);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock), 0);
        fflush(NULL);
        c.pid = fork();
        ck_assert_int_ge(c.pid, 0);
        if (c.pid == 0) {
                int fd;

                child_restrict(NULL);
                fd = seccomp_program_load_listener(p);
                if (fd < 0 || fd_send(sock[1], fd) < 0)
                        _exit(CHILD_LOAD_FAILED);
                close(fd);
                close(sock[1]);
                _exit(f(userdata));
        }
        sock[1] = safe_close(sock[1]);
        c.listener = fd_recv(sock[0]);
        c.pidfd = (int)syscall(SYS_pidfd_open, c.pid, 0);
        ck_assert_int_ge(c.pidfd, 0);
        return c;
}

/* Answers c's denied calls into *counts until it exits. Returns its wait status. */
static int notify_child_serve(NotifyChild *c, SeccompDenials *counts)
{
        int status;

        for (;;) {
                struct pollfd p[2] = {{.fd = c->listener, .events = POLLIN},
                                      {.fd = c->pidfd, .events = POLLIN}};

                ck_assert_int_ge(poll(p, 2, 30000), 1);
                if (p[0].revents & POLLIN)
                        ck_assert_int_ge(seccomp_notify_process(c->listener, counts), 0);
                if (p[1].revents & POLLIN)
                        break;
        }
        ck_assert_int_eq(seccomp_notify_process(c->listener, counts), 0);
        ck_assert_int_eq(waitpid(c->pid, &status, 0), c->pid);
        /* No process uses the filter any more. */
        {
                struct pollfd p = {.fd = c->listener, .events = POLLIN};

                ck_assert_int_eq(poll(&p, 1, 0), 1);
                ck_assert(p.revents & POLLHUP);
        }
        c->listener = safe_close(c->listener);
        c->pidfd = safe_close(c->pidfd);
        return status;
}

/* An nr the x86_64 filter sends to the default action (below the x32 bit, past the table). */
#define NR_PAST_TABLE 1000
/* An nr past the known table, which the filter answers ENOSYS itself. */
#define SYSCALL_NR_UNKNOWN 500

static int notify_calls_child(void *userdata)
{
        const int *tty = userdata;
        char ch = 'x';

        for (const char *const *name = seccomp_denied_syscalls; *name; name++) {
                RawCall c = {.nr = seccomp_syscall_resolve_name(*name)};

                denied_args(*name, &c);
                errno = 0;
                CHILD_CHECK(raw_call(&c) == EPERM);
        }
        /* Denied by argument rules (the default action after an allow that did not match). */
        errno = 0;
        CHILD_CHECK(unshare(CLONE_NEWUSER) == -1 && errno == EPERM);
        errno = 0;
        CHILD_CHECK(ioctl(*tty, TIOCSTI, &ch) == -1 && errno == EPERM);
        errno = 0;
        CHILD_CHECK(syscall(NR_PAST_TABLE, 0L) == -1 && errno == EPERM);
        /* Explicit answers keep their errnos and are not notified. */
        errno = 0;
        CHILD_CHECK(syscall(SYS_clone3, NULL, 0) == -1 && errno == ENOSYS);
        errno = 0;
        CHILD_CHECK(socket(AF_PACKET, SOCK_RAW, 0) == -1 && errno == EAFNOSUPPORT);
        errno = 0;
        CHILD_CHECK(syscall(SYSCALL_NR_UNKNOWN, 0L) == -1 && errno == ENOSYS);
        /* Allowed calls work and are not notified. */
        CHILD_CHECK(syscall(SYS_getpid) == getpid());
        CHILD_CHECK(unshare(CLONE_FILES) == 0);
        return 0;
}

START_TEST(test_notify_counts)
{
        _cleanup_seccomp_ SeccompProgram *p = NULL;
        _cleanup_close_ int tty = -EBADF;
        _cleanup_free_ SeccompDenials *counts = calloc(1, sizeof *counts);
        SeccompDenialCount top[4];
        NotifyChild c;
        size_t n = 0;

        ck_assert_ptr_nonnull(counts);
        ck_assert_int_eq(seccomp_program_builtin(&(SeccompOptions){.notify = true}, &p), 0);
        tty = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        ck_assert_int_ge(tty, 0);
        c = notify_child_start(p, notify_calls_child, &tty);
        assert_child_ok(notify_child_serve(&c, counts), "denied calls under notify");

        for (const char *const *name = seccomp_denied_syscalls; *name; name++, n++) {
                int nr = seccomp_syscall_resolve_name(*name);

                ck_assert_msg(counts->by_nr[nr] == 1, "%s counted %llu times", *name,
                              (unsigned long long)counts->by_nr[nr]);
                ck_assert_str_eq(seccomp_syscall_name(nr), *name);
        }
        ck_assert_uint_eq(counts->by_nr[SYS_unshare], 1); /* CLONE_FILES was allowed */
        ck_assert_uint_eq(counts->by_nr[SYS_ioctl], 1);
        ck_assert_uint_eq(counts->other, 1);
        ck_assert_uint_eq(counts->total, n + 3);
        ck_assert_uint_eq(counts->by_nr[SYS_clone3], 0);
        ck_assert_uint_eq(counts->by_nr[SYS_socket], 0);
        ck_assert_uint_eq(counts->by_nr[SYSCALL_NR_UNKNOWN], 0);
        ck_assert_uint_eq(counts->by_nr[SYS_getpid], 0);
        /* Every count is 1: the top list is the lowest numbers. */
        ck_assert_uint_eq(seccomp_denials_top(counts, top, ELEMENTSOF(top)), ELEMENTSOF(top));
        ck_assert_int_eq(top[0].nr, SYS_ioctl);
        ck_assert_uint_eq(top[0].count, 1);
}
END_TEST

static int listener_closed_child(void *userdata)
{
        const SeccompProgram *p = userdata;
        int fd = seccomp_program_load_listener(p);

        CHILD_CHECK(fd >= 0);
        /* A second listener on the same filter chain is refused. */
        CHILD_CHECK(seccomp_program_load_listener(p) == -EBUSY);
        close(fd);
        /* No one to ask: the kernel answers ENOSYS, not EPERM. */
        errno = 0;
        CHILD_CHECK(syscall(SYS_ptrace, PTRACE_TRACEME, 0L, 0L, 0L) == -1 && errno == ENOSYS);
        errno = 0;
        CHILD_CHECK(syscall(SYS_keyctl, 0L, 0L, 0L, 0L) == -1 && errno == ENOSYS);
        /* Explicit answers do not depend on the listener. */
        errno = 0;
        CHILD_CHECK(syscall(SYS_clone3, NULL, 0) == -1 && errno == ENOSYS);
        errno = 0;
        CHILD_CHECK(socket(AF_PACKET, SOCK_RAW, 0) == -1 && errno == EAFNOSUPPORT);
        return 0;
}

/* What the app sees when the supervisor is gone (documented in seccomp.h). */
START_TEST(test_notify_listener_closed)
{
        _cleanup_seccomp_ SeccompProgram *p = NULL;

        ck_assert_int_eq(seccomp_program_builtin(&(SeccompOptions){.notify = true}, &p), 0);
        assert_child_ok(run_child(NULL, listener_closed_child, p), "listener closed");
}
END_TEST

START_TEST(test_notify_process_args)
{
        _cleanup_close_pair_ int pipefd[2] = {-EBADF, -EBADF};
        SeccompDenials counts = {};
        int closed;

        ck_assert_int_eq(seccomp_notify_process(-1, &counts), -EINVAL);
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        ck_assert_int_eq(seccomp_notify_process(pipefd[0], NULL), -EINVAL);
        /* Nothing readable: nothing to do. */
        ck_assert_int_eq(seccomp_notify_process(pipefd[0], &counts), 0);
        /* Readable but not a listener. */
        ck_assert_int_eq(write(pipefd[1], "x", 1), 1);
        ck_assert_int_eq(seccomp_notify_process(pipefd[0], &counts), -ENOTTY);
        closed = dup(pipefd[0]);
        ck_assert_int_ge(closed, 0);
        close(closed);
        ck_assert_int_eq(seccomp_notify_process(closed, &counts), -EBADF);
        ck_assert_uint_eq(counts.total, 0);
}
END_TEST

/* Processes blocked in a denied call at once: more than one batch. */
#define BATCH_WAITERS (SECCOMP_NOTIFY_BATCH_MAX + 10)

static int batch_child(void *userdata)
{
        int report = *(const int *)userdata, status;

        for (int i = 0; i < BATCH_WAITERS; i++) {
                pid_t pid = fork();

                CHILD_CHECK(pid >= 0);
                if (pid == 0) {
                        pid_t self = getpid();

                        if (write(report, &self, sizeof self) != sizeof self)
                                _exit(1);
                        _exit(syscall(SYS_ptrace, PTRACE_TRACEME, 0L, 0L, 0L) == -1 &&
                                              errno == EPERM
                                      ? 0
                                      : 1);
                }
        }
        for (int i = 0; i < BATCH_WAITERS; i++)
                CHILD_CHECK(wait(&status) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        return 0;
}

/* Waits until pid sits in syscall nr (/proc/<pid>/syscall starts with it). */
static void wait_in_syscall(pid_t pid, long nr)
{
        char path[64], want[32];

        snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
        snprintf(want, sizeof want, "%ld ", nr);
        for (int i = 0; i < 10000; i++) {
                _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
                char buf[256] = {};

                ck_assert_int_ge(fd, 0);
                if (read(fd, buf, sizeof buf - 1) > 0 && strncmp(buf, want, strlen(want)) == 0)
                        return;
                usleep(1000);
        }
        ck_abort_msg("pid %d never blocked in syscall %ld", (int)pid, nr);
}

START_TEST(test_notify_batch_bound)
{
        _cleanup_seccomp_ SeccompProgram *p = NULL;
        _cleanup_close_pair_ int report[2] = {-EBADF, -EBADF};
        SeccompDenials counts = {};
        NotifyChild c;

        if (geteuid() != 0)
                SKIP_TEST("reading /proc/<pid>/syscall needs root");
        ck_assert_int_eq(seccomp_program_builtin(&(SeccompOptions){.notify = true}, &p), 0);
        ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
        c = notify_child_start(p, batch_child, &report[1]);
        report[1] = safe_close(report[1]);
        for (int i = 0; i < BATCH_WAITERS; i++) {
                pid_t pid;

                ck_assert_int_eq(read(report[0], &pid, sizeof pid), sizeof pid);
                wait_in_syscall(pid, SYS_ptrace);
        }
        /* All of them wait: one call answers one batch, the next the rest. */
        ck_assert_int_eq(seccomp_notify_process(c.listener, &counts), SECCOMP_NOTIFY_BATCH_MAX);
        ck_assert_int_eq(seccomp_notify_process(c.listener, &counts),
                         BATCH_WAITERS - SECCOMP_NOTIFY_BATCH_MAX);
        assert_child_ok(notify_child_serve(&c, &counts), "batch");
        ck_assert_uint_eq(counts.total, BATCH_WAITERS);
        ck_assert_uint_eq(counts.by_nr[SYS_ptrace], BATCH_WAITERS);
}
END_TEST

START_TEST(test_denials_top)
{
        SeccompDenials d = {};
        SeccompDenialCount top[8];

        ck_assert_uint_eq(seccomp_denials_top(&d, top, ELEMENTSOF(top)), 0);
        d.by_nr[SYS_ptrace] = 5;
        d.by_nr[SYS_mount] = 7;
        d.by_nr[SYS_keyctl] = 5;
        d.by_nr[SECCOMP_SYSCALL_NR_END - 1] = 1; /* the last slot */
        d.by_nr[0] = 2;
        ck_assert_uint_eq(seccomp_denials_top(&d, top, 3), 3);
        ck_assert_int_eq(top[0].nr, SYS_mount);
        ck_assert_uint_eq(top[0].count, 7);
        ck_assert_int_eq(top[1].nr, SYS_ptrace); /* 101 before keyctl's 250 */
        ck_assert_int_eq(top[2].nr, SYS_keyctl);
        ck_assert_uint_eq(seccomp_denials_top(&d, top, ELEMENTSOF(top)), 5);
        ck_assert_int_eq(top[3].nr, 0);
        ck_assert_int_eq(top[4].nr, SECCOMP_SYSCALL_NR_END - 1);
        ck_assert_uint_eq(seccomp_denials_top(&d, top, 0), 0);
        ck_assert_uint_eq(seccomp_denials_top(NULL, top, 1), 0);
}
END_TEST

/* Denied calls the round-trip measurement makes. */
#define ROUND_TRIPS 20000

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ROUND_TRIPS denied calls; writes the ns they took to the pipe in userdata. */
static int round_trip_child(void *userdata)
{
        int report = *(const int *)userdata;
        uint64_t start = now_ns(), took;

        for (int i = 0; i < ROUND_TRIPS; i++)
                CHILD_CHECK(syscall(SYS_ptrace, PTRACE_TRACEME, 0L, 0L, 0L) == -1 &&
                            errno == EPERM);
        took = now_ns() - start;
        CHILD_CHECK(write(report, &took, sizeof took) == sizeof took);
        return 0;
}

/*
 * The cost of counting: one denied call answered by the listener's server (in
 * another process, as the supervisor will be) against the plain EPERM filter.
 * Prints both; docs/security.md quotes them.
 */
START_TEST(test_notify_round_trip)
{
        _cleanup_seccomp_ SeccompProgram *plain = program_new();
        _cleanup_seccomp_ SeccompProgram *notify = NULL;
        _cleanup_close_pair_ int report[2] = {-EBADF, -EBADF};
        SeccompDenials counts = {};
        uint64_t plain_ns, notify_ns;
        NotifyChild c;

        ck_assert_int_eq(seccomp_program_builtin(&(SeccompOptions){.notify = true}, &notify), 0);
        ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);

        assert_child_ok(run_child(plain, round_trip_child, &report[1]), "EPERM loop");
        ck_assert_int_eq(read(report[0], &plain_ns, sizeof plain_ns), sizeof plain_ns);

        c = notify_child_start(notify, round_trip_child, &report[1]);
        assert_child_ok(notify_child_serve(&c, &counts), "notify loop");
        ck_assert_int_eq(read(report[0], &notify_ns, sizeof notify_ns), sizeof notify_ns);
        ck_assert_uint_eq(counts.total, ROUND_TRIPS);
        ck_assert_uint_eq(counts.by_nr[SYS_ptrace], ROUND_TRIPS);

        printf("test_notify_round_trip: denied call %.2f us with the listener, %.3f us with "
               "EPERM (%d calls)\n",
               notify_ns / 1000.0 / ROUND_TRIPS, plain_ns / 1000.0 / ROUND_TRIPS, ROUND_TRIPS);
}
END_TEST

/* Real programs run unchanged under the notifying filter, and deny nothing. */
static int exec_python_child(void *userdata)
{
        char *argv[] = {PYTHON, "-c", "import json, sqlite3, subprocess, threading; print('ok')",
                        NULL};
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

        (void)userdata;
        CHILD_CHECK(null >= 0 && dup2(null, STDOUT_FILENO) == STDOUT_FILENO);
        execv(argv[0], argv);
        return 127;
}

START_TEST(test_notify_exec_python)
{
        _cleanup_seccomp_ SeccompProgram *p = NULL;
        SeccompDenials counts = {};
        NotifyChild c;

        ck_assert_int_eq(seccomp_program_builtin(&(SeccompOptions){.notify = true}, &p), 0);
        c = notify_child_start(p, exec_python_child, NULL);
        assert_child_ok(notify_child_serve(&c, &counts), "python under notify");
        ck_assert_msg(counts.total == 0, "python made %llu denied calls",
                      (unsigned long long)counts.total);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("seccomp");
        TCase *tc = tcase_create("filter");
        TCase *notify = tcase_create("notify");
        SRunner *sr;

        if (skip_init() < 0)
                return EXIT_FAILURE;

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
        tcase_add_test(tc, test_x32_killed);
#endif
        tcase_add_test(tc, test_unknown_syscalls);
        tcase_add_test(tc, test_host_wide_resources);
        tcase_add_test(tc, test_probe_verdicts);
        tcase_add_test(tc, test_common_calls);
        suite_add_tcase(s, tc);

        /* The notifying variant and its listener's server. */
        tcase_set_timeout(notify, 60);
        tcase_add_test(notify, test_notify_variant_differs_only_in_eperm);
        tcase_add_test(notify, test_syscall_names);
        tcase_add_test(notify, test_load_listener_args);
        tcase_add_test(notify, test_notify_counts);
        tcase_add_test(notify, test_notify_listener_closed);
        tcase_add_test(notify, test_notify_process_args);
        tcase_add_test(notify, test_denials_top);
        tcase_add_test(notify, test_notify_round_trip);
        tcase_add_test(notify, test_notify_exec_python);
        suite_add_tcase(s, notify);

        /*
         * A case of its own for each test that may be skipped (see SKIP_TEST): a
         * kernel feature (IA32 emulation), root, or a program that may be missing.
         * Real programs; python's own test suite takes about a minute.
         */
        {
                const struct {
                        const char *name;
                        const TTest *test;
                        int timeout;
                } alone[] = {
#if defined(__x86_64__)
                        {"ia32", test_i386_killed, 30},
#endif
                        {"notify-batch", test_notify_batch_bound, 60},
                        {"shell", test_exec_shell, 60},
                        {"python", test_exec_python, 60},
                        {"sqlite", test_exec_sqlite, 60},
                        {"lua", test_exec_lua, 60},
                        {"regrtest", test_python_regrtest, 110},
                };

                for (size_t i = 0; i < ELEMENTSOF(alone); i++) {
                        TCase *c = tcase_create(alone[i].name);

                        tcase_set_timeout(c, alone[i].timeout);
                        tcase_add_test(c, alone[i].test);
                        suite_add_tcase(s, c);
                }
        }

        sr = srunner_create(s);
        return skip_run(sr);
}
