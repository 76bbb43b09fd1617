/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hostile: an app that tries to get out of its cella sandbox, one attempt at a
 * time, and prints what happened:
 *
 *   REFUSED <attempt>: <how>     the sandbox stopped it
 *   ESCAPED <attempt>: <how>     it got through (a bug in cella)
 *
 * and last "hostile: N attempts, N refused, N escaped". The exit status is the
 * number of escapes, so 0 means every attempt was refused. Some probes look for
 * bait the integration tests plant on the host (an abstract socket, a SysV shm
 * key, an environment variable); without the bait they still must be refused.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* The bait the integration tests plant on the host. */
#define BAIT_ABSTRACT_SOCKET "cella-hostile-bait"
#define BAIT_SHM_KEY         0x0CE11A
#define BAIT_ENV             "CELLA_HOSTILE_BAIT"

static int attempts, escaped;

/* refused: nonzero when the sandbox stopped the attempt. */
static void verdict(const char *name, int refused, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void verdict(const char *name, int refused, const char *fmt, ...)
{
        va_list ap;

        attempts++;
        if (!refused)
                escaped++;
        printf("%s %s: ", refused ? "REFUSED" : "ESCAPED", name);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

/* A syscall that must fail: refused if it returned -1 (and say with which errno). */
static void must_fail(const char *name, long r)
{
        if (r < 0)
                verdict(name, 1, "%s", strerror(errno));
        else
                verdict(name, 0, "succeeded (returned %ld)", r);
}

/* open() that must fail; closes what it got, so a success does not leak an fd. */
static void must_not_open(const char *name, int fd)
{
        int e = errno;

        if (fd >= 0)
                close(fd);
        errno = e;
        must_fail(name, fd);
}

static void try_read_host_files(void)
{
        static const char *const paths[] = {"/etc/shadow", "/root",       "/home", "/var/lib/cella",
                                            "/boot",       "/sys/kernel", "/run",  "/var",
                                            "/opt",        "/srv",        "/mnt",  "/media"};

        for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
                char name[64];

                snprintf(name, sizeof name, "reach %s", paths[i]);
                must_not_open(name, open(paths[i], O_RDONLY | O_CLOEXEC));
        }
}

static void try_writes(void)
{
        static const char *const paths[] = {
                "/app/owned", "/usr/bin/owned", "/etc/owned", "/owned", "/proc/sys/kernel/hostname",
                "/dev/owned"};

        for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
                char name[64];

                snprintf(name, sizeof name, "write %s", paths[i]);
                must_not_open(name, open(paths[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        }
}

static void try_symlink_out(void)
{
        /* examples/hostile ships symlinks pointing out of the app folder. */
        static const char *const links[] = {"/app/link-shadow", "/app/link-root/etc/shadow",
                                            "/app/link-up/etc/shadow"};
        DIR *d;

        for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
                char name[80];

                snprintf(name, sizeof name, "follow %s", links[i]);
                must_not_open(name, open(links[i], O_RDONLY | O_CLOEXEC));
        }
        /* A symlink to "/" leads to the jail's root, not the host's. */
        d = opendir("/app/link-root/root");
        verdict("symlink to / reaches the host root", d == NULL, "%s",
                d ? "opened /root through it" : "no /root behind it");
        if (d)
                closedir(d);
}

static void try_namespaces(void)
{
        must_fail("mount tmpfs", mount("none", "/tmp", "tmpfs", 0, NULL));
        must_fail("unshare user namespace", unshare(CLONE_NEWUSER));
        must_fail("unshare mount namespace", unshare(CLONE_NEWNS));
        must_fail("clone new network namespace",
                  syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
        {
                /* init is hidden (hidepid), so use our own namespace file: setns
                 * itself must be refused, whatever the target. */
                int fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);

                must_fail("setns", fd < 0 ? 0 : setns(fd, 0));
                if (fd >= 0)
                        close(fd);
                fd = open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);
                must_not_open("open init's namespace", fd);
        }
        must_fail("chroot", chroot("/tmp"));
        must_fail("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
        must_fail("sethostname", sethostname("owned", 5));
}

static void try_dangerous_syscalls(void)
{
        struct perf_event_attr pe = {
                .type = PERF_TYPE_SOFTWARE, .size = sizeof pe, .config = PERF_COUNT_SW_CPU_CLOCK};
        union bpf_attr ba = {
                .map_type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 1};
        char handle[128] = {0};

        must_fail("ptrace attach to init", ptrace(PTRACE_ATTACH, 1, 0, 0));
        must_fail("ptrace traceme", ptrace(PTRACE_TRACEME, 0, 0, 0));
        must_fail("bpf map create", syscall(SYS_bpf, BPF_MAP_CREATE, &ba, sizeof ba));
        must_fail("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
        must_fail("keyctl join session keyring",
                  syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0));
        must_fail("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC));
        must_fail("io_uring_setup", syscall(SYS_io_uring_setup, 8, handle));
        must_fail("kexec_load", syscall(SYS_kexec_load, 0, 0, 0, 0));
        must_fail("init_module", syscall(SYS_init_module, handle, sizeof handle, ""));
        must_fail("open_by_handle_at (shocker)",
                  syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY));
        must_fail("reboot", syscall(SYS_reboot, 0xfee1dead, 672274793, 0x1234567, 0));
        must_fail("setuid(0)", setuid(0));
        must_fail("raise RLIMIT_NOFILE above the cap",
                  setrlimit(RLIMIT_NOFILE,
                            &(struct rlimit){.rlim_cur = 1 << 20, .rlim_max = 1 << 20}));
        must_fail("mknod a block device", mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0)));
}

static void try_tiocsti(void)
{
        char c = 'x';
        int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);

        /* No controlling terminal at all is the first wall; the filter the second. */
        must_fail("TIOCSTI into the terminal", ioctl(fd >= 0 ? fd : 0, TIOCSTI, &c));
        must_fail("TIOCSTI with garbage in the upper bits",
                  syscall(SYS_ioctl, fd >= 0 ? fd : 0, (unsigned long)TIOCSTI | 0x100000000ul, &c));
        if (fd >= 0)
                close(fd);
}

static void try_capabilities(void)
{
        char line[256];
        FILE *f = fopen("/proc/self/status", "re");
        int bad = 0, seen = 0;

        while (f && fgets(line, sizeof line, f)) {
                unsigned long long v;

                if (sscanf(line, "CapInh: %llx", &v) == 1 ||
                    sscanf(line, "CapPrm: %llx", &v) == 1 ||
                    sscanf(line, "CapEff: %llx", &v) == 1 ||
                    sscanf(line, "CapBnd: %llx", &v) == 1 ||
                    sscanf(line, "CapAmb: %llx", &v) == 1) {
                        seen++;
                        bad |= v != 0;
                }
                if (sscanf(line, "NoNewPrivs: %llu", &v) == 1) {
                        seen++;
                        bad |= v != 1;
                }
        }
        if (f)
                fclose(f);
        verdict("hold a capability", !bad && seen == 6, "%d capability lines read, all empty: %s",
                seen, bad ? "no" : "yes");
        verdict("run as root", getuid() != 0 && geteuid() != 0, "uid %d", (int)getuid());
}

static void try_network(void)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd;

        must_fail("open an AF_INET socket", socket(AF_INET, SOCK_STREAM, 0));
        must_fail("open an AF_PACKET socket", socket(AF_PACKET, SOCK_RAW, 0));
        must_fail("open an AF_NETLINK socket", socket(AF_NETLINK, SOCK_RAW, 0));
        /* Abstract Unix sockets live in the network namespace: the host's bait is
         * out of reach. */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        memcpy(sa.sun_path + 1, BAIT_ABSTRACT_SOCKET, strlen(BAIT_ABSTRACT_SOCKET));
        must_fail("connect to the host's abstract socket",
                  fd < 0 ? -1
                         : connect(fd, (struct sockaddr *)&sa,
                                   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                                               strlen(BAIT_ABSTRACT_SOCKET))));
        if (fd >= 0)
                close(fd);
}

static void try_ipc_and_env(void)
{
        const char *bait = getenv(BAIT_ENV);

        must_fail("attach the host's SysV shared memory", shmget(BAIT_SHM_KEY, 0, 0));
        verdict("read the host's environment", bait == NULL, "%s",
                bait ? "the bait variable is visible" : "the bait variable is absent");
}

static void try_processes_and_fds(void)
{
        DIR *d = opendir("/proc");
        struct dirent *e;
        int pids = 0, fds = 0, extra = -1;

        while (d && (e = readdir(d)))
                if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
                        pids++;
        if (d)
                closedir(d);
        verdict("see other processes", d && pids <= 2, "%d process(es) visible in /proc", pids);

        d = opendir("/proc/self/fd");
        while (d && (e = readdir(d))) {
                int fd;

                if (e->d_name[0] == '.')
                        continue;
                fd = atoi(e->d_name);
                if (fd == dirfd(d))
                        continue;
                fds++;
                if (fd > 3)
                        extra = fd;
        }
        if (d)
                closedir(d);
        verdict("inherit a stray fd", d && extra < 0, "%d open fds%s", fds,
                extra >= 0 ? ", one above 3" : ", none above 3");
        must_not_open("see /sys", open("/sys", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        {
                char buf[16];
                int fd = open("/proc/kcore", O_RDONLY | O_CLOEXEC);
                ssize_t k = fd >= 0 ? read(fd, buf, sizeof buf) : -1;

                verdict("read /proc/kcore", k <= 0, "read returned %zd", k);
                if (fd >= 0)
                        close(fd);
        }
}

static void try_exec_from_data(void)
{
        /* /data and /dev/shm are noexec: a binary dropped there cannot run (and
         * one dropped in /data cannot come back to run at the next start). /tmp
         * allows exec on purpose (docs/security.md). */
        static const char *const dirs[] = {"/data", "/dev/shm"};

        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
                char path[64], name[64];
                int in = open("/bin/true", O_RDONLY | O_CLOEXEC), out;
                pid_t pid;
                int status = 0;

                snprintf(path, sizeof path, "%s/dropped", dirs[i]);
                snprintf(name, sizeof name, "exec a binary dropped in %s", dirs[i]);
                out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
                if (in >= 0 && out >= 0) {
                        char buf[65536];
                        ssize_t k;

                        while ((k = read(in, buf, sizeof buf)) > 0)
                                if (write(out, buf, (size_t)k) != k)
                                        break;
                }
                if (in >= 0)
                        close(in);
                if (out >= 0)
                        close(out);
                pid = fork();
                if (pid == 0) {
                        execl(path, path, (char *)NULL);
                        _exit(errno == EACCES ? 100 : 101);
                }
                waitpid(pid, &status, 0);
                verdict(name, WIFEXITED(status) && WEXITSTATUS(status) == 100, "%s",
                        WIFEXITED(status) && WEXITSTATUS(status) == 100 ? "EACCES (noexec)"
                                                                        : "it ran");
                unlink(path);
        }
}

static void try_foreign_abi(void)
{
        /* An i386 system call (int 0x80) skips an x86_64-only filter unless the
         * filter checks the architecture: cella's kills the process. */
        pid_t pid = fork();
        int status = 0;

        if (pid == 0) {
                long r;

                __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L /* i386 getpid */) : "memory");
                _exit(r > 0 ? 0 : 1);
        }
        waitpid(pid, &status, 0);
        verdict("i386 system call (int 0x80)", WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
                "%s", WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "it returned");
}

int main(void)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        try_read_host_files();
        try_writes();
        try_symlink_out();
        try_namespaces();
        try_dangerous_syscalls();
        try_tiocsti();
        try_capabilities();
        try_network();
        try_ipc_and_env();
        try_processes_and_fds();
        try_exec_from_data();
        try_foreign_abi();
        printf("hostile: %d attempts, %d refused, %d escaped\n", attempts, attempts - escaped,
               escaped);
        return escaped > 125 ? 125 : escaped;
}
