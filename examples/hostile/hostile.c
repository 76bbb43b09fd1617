/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hostile: an app that tries to get out of its cella sandbox, one attempt at a
 * time, and prints what happened:
 *
 *   REFUSED <attempt>: <how>     the sandbox stopped it
 *   ESCAPED <attempt>: <how>     it got through (a bug in cella)
 *   N/A <attempt>: <why>         the call never ran, for a reason that is not the
 *                                sandbox: this kernel lacks the feature (int 0x80
 *                                without IA32 emulation faults before any system
 *                                call), or the probe could not be set up
 *
 * and last "hostile: N attempts, N refused, N escaped, N not applicable". The exit
 * status is the number of escapes, so 0 means nothing got through. Only a call
 * that ran and returned success counts as an escape: a probe that may kill its
 * process runs in a child that reports right after the call returns (probe.h). Some probes look for
 * bait the integration tests plant on the host (an abstract socket, a SysV shm
 * key, an environment variable, a TCP listener on the host's 127.0.0.1 and ::1);
 * without the bait they still must be refused.
 *
 * First the jail (files, namespaces, syscalls, ...), then the broker: calls over
 * the channel (fd 3) the app has no right to, escapes out of a user-file root, a
 * call flood, and last forged frames, after which the kernel hangs up on it. The
 * manifest gives it "bus.publish:org.cella.example.hostile.*" (its own namespace)
 * and asks for "fs.read:downloads", "system.admin" (a signature right; the bundle
 * is not signed) and rights over every other app's topics and ids ("bus.subscribe:**",
 * "bus.send:**", ...: never granted without the user), so the refusals
 * are scoped (lines starting ALLOWED show what it may do). The tests
 * grant fs.read:downloads and plant symlinks in that root (link-root -> /,
 * link-up -> ../../../../../../..), a FIFO and a root-only 0600 file ("secret"),
 * so the escapes are tried beneath a real grant.
 */

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <cella.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/aio_abi.h>
#include <linux/perf_event.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
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
#include <time.h>
#include <unistd.h>

#include "probe.h"

/* The bait the integration tests plant on the host. */
#define BAIT_ABSTRACT_SOCKET "cella-hostile-bait"
#define BAIT_SHM_KEY         0x0CE11A
#define BAIT_ENV             "CELLA_HOSTILE_BAIT"
#define BAIT_TCP_PORT        47115 /* listened on at the host's 127.0.0.1 and ::1 */

static int attempts, escaped, not_applicable;

static void report(const char *name, ProbeVerdict v, const char *fmt, va_list ap)
{
        static const char *const labels[] = {
                [VERDICT_REFUSED] = "REFUSED",
                [VERDICT_ESCAPED] = "ESCAPED",
                [VERDICT_NOT_APPLICABLE] = "N/A",
        };

        attempts++;
        escaped += v == VERDICT_ESCAPED;
        not_applicable += v == VERDICT_NOT_APPLICABLE;
        printf("%s %s: ", labels[v], name);
        vprintf(fmt, ap);
        putchar('\n');
        fflush(stdout);
}

/* refused: nonzero when the sandbox stopped the attempt. */
static void verdict(const char *name, int refused, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void verdict(const char *name, int refused, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        report(name, refused ? VERDICT_REFUSED : VERDICT_ESCAPED, fmt, ap);
        va_end(ap);
}

/* A probe that could not run, for a reason that is not the sandbox. */
static void not_run(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void not_run(const char *name, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        report(name, VERDICT_NOT_APPLICABLE, fmt, ap);
        va_end(ap);
}

static void judged(const char *name, ProbeVerdict v, const char *why)
{
        if (v == VERDICT_NOT_APPLICABLE)
                not_run(name, "%s", why);
        else
                verdict(name, v == VERDICT_REFUSED, "%s", why);
}

/* A call that must fail, made in a child that reports only if the call returned
 * (probe.h): for calls that may kill the process or create one. */
static void must_fail_in_child(const char *name, long (*call)(void *), void *userdata)
{
        ProbeResult r;
        char why[160];

        probe_run(call, userdata, &r);
        judged(name, probe_judge(&r, why, sizeof why), why);
}

/* The same, for a call of an optional kernel feature: ENOSYS means this kernel
 * was built without it (the filter never answers ENOSYS for these), so the probe
 * does not apply. */
static void must_fail_if_built(const char *name, const char *feature, long (*call)(void *),
                               void *userdata)
{
        ProbeResult r;
        char why[160];

        probe_run(call, userdata, &r);
        if (r.outcome == PROBE_RETURNED && r.ret < 0 && r.err == ENOSYS)
                not_run(name, "ENOSYS: this kernel has no %s", feature);
        else
                judged(name, probe_judge(&r, why, sizeof why), why);
}

/*
 * A call the seccomp filter refuses with EPERM, where the kernel itself may fail it
 * for another reason (no huge pages in the host's pool: ENOMEM): only EPERM shows
 * the filter stopped it; any other answer means the call reached the kernel, which
 * counts as an escape of the filter even though the kernel then failed it.
 */
static void must_be_filtered_in_child(const char *name, long (*call)(void *), void *userdata)
{
        ProbeResult r;
        char why[160];

        probe_run(call, userdata, &r);
        if (r.outcome == PROBE_RETURNED && r.ret < 0 && r.err != EPERM)
                verdict(name, 0, "reached the kernel, which answered %s (the filter says EPERM)",
                        strerror(r.err));
        else
                judged(name, probe_judge(&r, why, sizeof why), why);
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

static long clone_newnet(void *userdata)
{
        long r = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);

        if (r == 0)
                _exit(0); /* the new process, had the clone worked */
        if (r > 0)
                waitpid((pid_t)r, NULL, 0);
        return r;
}

/*
 * A raw system call made in a child (must_fail_in_child): for calls whose success
 * would change this process (its namespaces, root, ids, limits, keyring) and so
 * the verdicts of the probes after it.
 */
typedef struct RawCall {
        long nr;
        long args[6];
} RawCall;

static long raw_call(void *userdata)
{
        const RawCall *c = userdata;

        return syscall(c->nr, c->args[0], c->args[1], c->args[2], c->args[3], c->args[4],
                       c->args[5]);
}

#define MUST_FAIL_CALL(name, nr, ...)                                                              \
        must_fail_in_child(name, raw_call, &(RawCall){(nr), {__VA_ARGS__}})

static void try_namespaces(void)
{
        MUST_FAIL_CALL("mount tmpfs", SYS_mount, (long)"none", (long)"/tmp", (long)"tmpfs", 0, 0);
        MUST_FAIL_CALL("unshare user namespace", SYS_unshare, CLONE_NEWUSER);
        MUST_FAIL_CALL("unshare mount namespace", SYS_unshare, CLONE_NEWNS);
        /* In a child: a clone that worked would go on running the probes twice. */
        must_fail_in_child("clone new network namespace", clone_newnet, NULL);
        {
                /* init is hidden (hidepid), so use our own namespace file: setns
                 * itself must be refused, whatever the target. */
                int fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);

                if (fd < 0)
                        not_run("setns", "no namespace file to try it on: %s", strerror(errno));
                else
                        MUST_FAIL_CALL("setns", SYS_setns, fd, 0);
                if (fd >= 0)
                        close(fd);
                fd = open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);
                must_not_open("open init's namespace", fd);
                /* init runs as our uid: dumpable, its memory (a copy of the kernel's
                 * for its first 20 ms, the ctl socket's owner after) would be ours
                 * to read and write. */
                fd = open("/proc/1/mem", O_RDWR | O_CLOEXEC);
                must_not_open("open init's memory (/proc/1/mem)", fd);
        }
        MUST_FAIL_CALL("chroot", SYS_chroot, (long)"/tmp");
        MUST_FAIL_CALL("pivot_root", SYS_pivot_root, (long)"/tmp", (long)"/tmp");
        MUST_FAIL_CALL("sethostname", SYS_sethostname, (long)"owned", 5);
}

static void try_dangerous_syscalls(void)
{
        struct perf_event_attr pe = {
                .type = PERF_TYPE_SOFTWARE, .size = sizeof pe, .config = PERF_COUNT_SW_CPU_CLOCK};
        union bpf_attr ba = {
                .map_type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 1};
        char handle[128] = {0};

        must_fail("ptrace attach to init", ptrace(PTRACE_ATTACH, 1, 0, 0));
        MUST_FAIL_CALL("ptrace traceme", SYS_ptrace, PTRACE_TRACEME, 0, 0, 0);
        must_fail("bpf map create", syscall(SYS_bpf, BPF_MAP_CREATE, &ba, sizeof ba));
        must_fail("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
        MUST_FAIL_CALL("keyctl join session keyring", SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0);
        must_fail("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC));
        must_fail("io_uring_setup", syscall(SYS_io_uring_setup, 8, handle));
        must_fail("kexec_load", syscall(SYS_kexec_load, 0, 0, 0, 0));
        must_fail("init_module", syscall(SYS_init_module, handle, sizeof handle, ""));
        must_fail("open_by_handle_at (shocker)",
                  syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY));
        must_fail("reboot", syscall(SYS_reboot, 0xfee1dead, 672274793, 0x1234567, 0));
        MUST_FAIL_CALL("setuid(0)", SYS_setuid, 0);
        MUST_FAIL_CALL("raise RLIMIT_NOFILE above the cap", SYS_prlimit64, 0, RLIMIT_NOFILE,
                       (long)&(struct rlimit){.rlim_cur = 1 << 20, .rlim_max = 1 << 20}, 0);
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
        if (!f)
                not_run("hold a capability", "cannot read /proc/self/status: %s", strerror(errno));
        else
                verdict("hold a capability", !bad && seen == 6,
                        "%d capability lines read, all empty: %s", seen, bad ? "no" : "yes");
        verdict("run as root", getuid() != 0 && geteuid() != 0, "uid %d", (int)getuid());
}

/* connect(2) to addr:port (numeric, AF_INET or AF_INET6) over TCP; -1 with errno, or 0. */
static long tcp_connect(int family, const char *addr, unsigned port)
{
        struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), r, e;

        if (fd < 0)
                return -1;
        if (family == AF_INET)
                r = inet_pton(AF_INET, addr, &sin.sin_addr) == 1
                            ? connect(fd, (struct sockaddr *)&sin, sizeof sin)
                            : (errno = EINVAL, -1);
        else
                r = inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1
                            ? connect(fd, (struct sockaddr *)&sin6, sizeof sin6)
                            : (errno = EINVAL, -1);
        e = errno;
        close(fd);
        errno = e;
        return r;
}

/* One interface ioctl on lo (SIOCSIFADDR, SIOCSIFFLAGS...); -1 with errno, or 0. */
static long lo_ioctl(unsigned long cmd, struct ifreq *ifr)
{
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r, e;

        if (fd < 0)
                return -1;
        snprintf(ifr->ifr_name, sizeof ifr->ifr_name, "lo");
        r = ioctl(fd, cmd, ifr);
        e = errno;
        close(fd);
        errno = e;
        return r;
}

/*
 * Asks route netlink to add 10.99.0.1/24 to lo (RTM_NEWADDR) and reads the answer:
 * -1 with errno (the kernel's error in its ack, or the socket's), or 0 if it was
 * added.
 */
static long netlink_add_address(void)
{
        struct {
                struct nlmsghdr nh;
                struct ifaddrmsg ifa;
                struct rtattr rta;
                struct in_addr addr;
        } req = {
                .nh = {.nlmsg_len = sizeof req,
                       .nlmsg_type = RTM_NEWADDR,
                       .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                       .nlmsg_seq = 1},
                .ifa = {.ifa_family = AF_INET, .ifa_prefixlen = 24, .ifa_index = 1},
                .rta = {.rta_len = RTA_LENGTH(sizeof(struct in_addr)), .rta_type = IFA_LOCAL},
                .addr = {.s_addr = htonl(0x0a630001)},
        };
        union {
                struct nlmsghdr nh;
                char buf[512];
        } ans;
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), e = 0;
        ssize_t n;

        if (fd < 0)
                return -1;
        if (send(fd, &req, sizeof req, 0) < 0)
                e = errno;
        else if ((n = recv(fd, &ans, sizeof ans, 0)) < 0)
                e = errno;
        else if (n < (ssize_t)(NLMSG_HDRLEN + sizeof(struct nlmsgerr)) ||
                 ans.nh.nlmsg_type != NLMSG_ERROR)
                e = EBADMSG;
        else
                e = -((struct nlmsgerr *)NLMSG_DATA(&ans.nh))->error;
        close(fd);
        errno = e;
        return e ? -1 : 0;
}

/*
 * The network. Every app has its own network namespace with only loopback in it,
 * made and owned by the kernel's user namespace, so INET sockets and route netlink
 * work on the app's own loopback (that is no escape); what must stay out of reach is
 * the host's network (a listener on the host's loopback, any other address), changing
 * the namespace's interfaces, addresses and routes (CAP_NET_ADMIN over it), raw and
 * packet sockets, and the netlink protocols that reach host-wide state.
 */
static void try_network(void)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct ifreq ifr = {};
        struct rtentry rt = {};
        struct if_nameindex *ifs;
        int fd, others = 0;

        must_fail("reach a listener on the host's IPv4 loopback",
                  tcp_connect(AF_INET, "127.0.0.1", BAIT_TCP_PORT));
        must_fail("reach a listener on the host's IPv6 loopback",
                  tcp_connect(AF_INET6, "::1", BAIT_TCP_PORT));
        must_fail("reach an address off its loopback (192.0.2.1)",
                  tcp_connect(AF_INET, "192.0.2.1", 80));
        ifs = if_nameindex();
        for (struct if_nameindex *i = ifs; i && i->if_index; i++)
                others += strcmp(i->if_name, "lo") != 0;
        if (!ifs)
                not_run("see a network interface other than lo", "if_nameindex: %s",
                        strerror(errno));
        else
                verdict("see a network interface other than lo", others == 0,
                        "%d other interface(s)", others);
        if_freenameindex(ifs);

        ((struct sockaddr_in *)&ifr.ifr_addr)->sin_family = AF_INET;
        ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr = htonl(0x0a630001);
        must_fail("add an address to lo (SIOCSIFADDR)", lo_ioctl(SIOCSIFADDR, &ifr));
        memset(&ifr, 0, sizeof ifr);
        ifr.ifr_flags = IFF_UP | IFF_NOARP; /* any change of the flags */
        must_fail("change lo's flags (SIOCSIFFLAGS)", lo_ioctl(SIOCSIFFLAGS, &ifr));
        ((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
        ((struct sockaddr_in *)&rt.rt_gateway)->sin_family = AF_INET;
        ((struct sockaddr_in *)&rt.rt_gateway)->sin_addr.s_addr = htonl(0x7f000001);
        ((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
        rt.rt_flags = RTF_UP | RTF_GATEWAY;
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        must_fail("add a default route (SIOCADDRT)", fd < 0 ? -1 : ioctl(fd, SIOCADDRT, &rt));
        if (fd >= 0)
                close(fd);
        must_fail("add an address over route netlink (RTM_NEWADDR)", netlink_add_address());

        must_fail("open a raw IP socket", socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP));
        must_fail("open an AF_PACKET socket", socket(AF_PACKET, SOCK_RAW, 0));
        must_fail("open an SCTP socket (a module to load)",
                  socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_SCTP));
        must_fail("open a NETLINK_AUDIT socket",
                  socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT));
        must_fail("open a NETLINK_KOBJECT_UEVENT socket",
                  socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT));
        must_fail("open a NETLINK_SOCK_DIAG socket",
                  socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
        must_fail("open a NETLINK_GENERIC socket",
                  socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC));
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

/*
 * Ids. Every id of the app's block is mapped in its user namespace, but the app has
 * no capability there: it cannot give a file away, take another id, or change its
 * groups or its maps.
 */
static void try_ids(void)
{
        static const char path[] = "/tmp/hostile-ids";
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

        if (fd >= 0)
                close(fd);
        must_fail("chown a file to root", chown(path, 0, (gid_t)-1));
        must_fail("chown a file to another uid of its block", chown(path, 2000, (gid_t)-1));
        must_fail("chgrp a file to another gid of its block", chown(path, (uid_t)-1, 2000));
        MUST_FAIL_CALL("setresuid to another uid of its block", SYS_setresuid, 2000, 2000, 2000);
        MUST_FAIL_CALL("setresgid to root", SYS_setresgid, 0, 0, 0);
        MUST_FAIL_CALL("setgroups", SYS_setgroups, 1, (long)&(gid_t){0});
        fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
        must_fail("rewrite its uid_map", fd < 0 ? -1 : write(fd, "0 0 1\n", 6));
        if (fd >= 0)
                close(fd);
        (void)unlink(path);
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
        if (!d)
                not_run("see other processes", "cannot list /proc: %s", strerror(errno));
        else {
                closedir(d);
                verdict("see other processes", pids <= 2, "%d process(es) visible in /proc", pids);
        }

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
        if (!d)
                not_run("inherit a stray fd", "cannot list /proc/self/fd: %s", strerror(errno));
        else {
                closedir(d);
                verdict("inherit a stray fd", extra < 0, "%d open fds%s", fds,
                        extra >= 0 ? ", one above 3" : ", none above 3");
        }
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

static long exec_dropped(void *userdata)
{
        const char *path = userdata;

        /* Success replaces this process: the marker pipe closes unwritten and
         * /bin/true exits 0, which is what the parent looks for. */
        return execl(path, path, (char *)NULL);
}

/* Copies /bin/true to path. Returns 0 or -errno. */
static int drop_binary(const char *path)
{
        int in = open("/bin/true", O_RDONLY | O_CLOEXEC), out = -1, r = 0;
        char buf[65536];
        ssize_t k;

        if (in < 0)
                return -errno;
        out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
        if (out < 0)
                r = -errno;
        while (r == 0 && (k = read(in, buf, sizeof buf)) != 0)
                if (k < 0 || write(out, buf, (size_t)k) != k)
                        r = -(errno ?: EIO);
        close(in);
        if (out >= 0)
                close(out);
        return r;
}

static void try_exec_from_data(void)
{
        /* /data and /dev/shm are noexec: a binary dropped there cannot run (and
         * one dropped in /data cannot come back to run at the next start). /tmp
         * allows exec on purpose (docs/security.md). */
        static const char *const dirs[] = {"/data", "/dev/shm"};

        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
                char path[64], name[64];
                ProbeResult res;
                int r;

                snprintf(path, sizeof path, "%s/dropped", dirs[i]);
                snprintf(name, sizeof name, "exec a binary dropped in %s", dirs[i]);
                r = drop_binary(path);
                if (r < 0) {
                        not_run(name, "could not drop the binary: %s", strerror(-r));
                        unlink(path);
                        continue;
                }
                probe_run(exec_dropped, path, &res);
                if (res.outcome == PROBE_RETURNED)
                        /* execl returned: it did not run. EACCES is the noexec mount. */
                        verdict(name, 1, "%s%s", strerror(res.err),
                                res.err == EACCES ? " (noexec)" : "");
                else if (res.outcome == PROBE_LOST && res.status >= 0 && WIFEXITED(res.status) &&
                         WEXITSTATUS(res.status) == 0)
                        verdict(name, 0, "it ran");
                else {
                        char why[160];

                        judged(name, probe_judge(&res, why, sizeof why), why);
                }
                unlink(path);
        }
}

#if defined(__x86_64__)
static long int80_getpid(void *userdata)
{
        long r = 20; /* i386 getpid */

        /* Old kernels zero r8-r11 on the way back from int 0x80. */
        __asm__ volatile("int $0x80" : "+a"(r) : : "r8", "r9", "r10", "r11", "memory");
        if (r < 0 && r > -4096) {
                errno = (int)-r;
                return -1;
        }
        return r;
}

static long x32_getpid(void *userdata)
{
        return syscall(0x40000000L /* __X32_SYSCALL_BIT */ | SYS_getpid);
}
#endif

static void try_foreign_abi(void)
{
#if defined(__x86_64__)
        /* An i386 system call (int 0x80) or an x32 one skips an x86_64-only filter
         * unless the filter checks the architecture: cella's kills the process
         * (SIGSYS). A kernel without IA32 emulation faults on int 0x80 before any
         * system call (SIGSEGV): not applicable, not an escape; a kernel without
         * x32 would answer ENOSYS, but seccomp sees the number first. */
        must_fail_in_child("i386 system call (int 0x80)", int80_getpid, NULL);
        must_fail_in_child("x32 system call", x32_getpid, NULL);
#else
        not_run("i386 system call (int 0x80)", "not an x86_64 build");
        not_run("x32 system call", "not an x86_64 build");
#endif
}

/*
 * Resources the whole host shares, which no namespace or cgroup bounds: each must
 * be refused by the filter or bounded by an rlimit (docs/security.md, "Host-wide
 * resources").
 */
static long io_setup_call(void *userdata)
{
        aio_context_t ctx = 0;
        long r = syscall(SYS_io_setup, 1024, &ctx);

        if (r == 0)
                syscall(SYS_io_destroy, ctx);
        return r;
}

static long hugetlb_mmap(void *userdata)
{
        void *m = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);

        if (m == MAP_FAILED)
                return -1;
        munmap(m, 2 << 20);
        return 0;
}

static long hugetlb_memfd(void *userdata)
{
        return syscall(SYS_memfd_create, "huge", MFD_CLOEXEC | MFD_HUGETLB);
}

static long hugetlb_shm(void *userdata)
{
        long id = shmget(IPC_PRIVATE, 2 << 20, IPC_CREAT | SHM_HUGETLB | 0600);

        if (id >= 0)
                shmctl((int)id, IPC_RMID, NULL);
        return id;
}

static long mlock_past_limit(void *userdata)
{
        size_t len = 16 << 20; /* twice the 8 MiB RLIMIT_MEMLOCK */
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        long r;

        if (m == MAP_FAILED)
                _exit(PROBE_EXIT_SETUP);
        r = mlock(m, len);
        munmap(m, len);
        return r;
}

static long sched_fifo(void *userdata)
{
        struct sched_param sp = {.sched_priority = 1};

        return sched_setscheduler(0, SCHED_FIFO, &sp);
}

static long nice_below_zero(void *userdata)
{
        return setpriority(PRIO_PROCESS, 0, -5);
}

/* Creates POSIX message queues of 10 x 8 KiB until one fails; more than 64 (5 MiB)
 * means RLIMIT_MSGQUEUE (800 KiB) did not bound them. Returns -1 (errno of the
 * refusal) or how many it made. */
static long mqueues_past_limit(void *userdata)
{
        struct mq_attr a = {.mq_maxmsg = 10, .mq_msgsize = 8192};
        long made = 0, r = 0;
        int e = 0;

        for (; made < 64; made++) {
                char name[32];
                mqd_t q;

                snprintf(name, sizeof name, "/hostile-%ld", made);
                q = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &a);
                if (q == (mqd_t)-1) {
                        r = -1;
                        e = errno;
                        break;
                }
                mq_close(q);
        }
        for (long i = 0; i < made; i++) {
                char name[32];

                snprintf(name, sizeof name, "/hostile-%ld", i);
                mq_unlink(name);
        }
        errno = e;
        return r < 0 ? -1 : made;
}

/* POSIX timers hold a preallocated signal each, charged to RLIMIT_SIGPENDING:
 * more than 65536 means nothing bounded them. Returns -1 (errno) or the count. */
static long timers_past_limit(void *userdata)
{
        struct sigevent ev = {.sigev_notify = SIGEV_NONE};
        long made;

        for (made = 0; made < 65536; made++) {
                timer_t t;

                if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &t) < 0)
                        return -1; /* the child exits: its timers go with it */
        }
        return made;
}

static long ioprio_rt(void *userdata)
{
        /* IOPRIO_WHO_PROCESS, this process, IOPRIO_CLASS_RT level 0 (linux/ioprio.h). */
        return syscall(SYS_ioprio_set, 1, 0, 1 << 13);
}

static void try_host_wide_resources(void)
{
        struct rlimit rl;

        /* aio-max-nr is one counter for the whole host: an app that reserved it
         * all would leave every other io_setup failing. */
        must_fail_in_child("reserve the host's aio events (io_setup)", io_setup_call, NULL);
        /* The huge page pool is the host's: pages from it bypass the memory cgroup. */
        must_be_filtered_in_child("map from the host's huge page pool (MAP_HUGETLB)", hugetlb_mmap,
                                  NULL);
        must_be_filtered_in_child("memfd from the host's huge page pool (MFD_HUGETLB)",
                                  hugetlb_memfd, NULL);
        must_be_filtered_in_child("SysV shm from the host's huge page pool (SHM_HUGETLB)",
                                  hugetlb_shm, NULL);
        must_fail_in_child("lock 16 MiB in memory (past RLIMIT_MEMLOCK)", mlock_past_limit, NULL);
        if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
                not_run("an unbounded RLIMIT_MEMLOCK", "getrlimit: %s", strerror(errno));
        else
                verdict("an unbounded RLIMIT_MEMLOCK",
                        rl.rlim_max != RLIM_INFINITY && rl.rlim_max <= 8 << 20,
                        "hard limit %llu bytes", (unsigned long long)rl.rlim_max);
        must_fail_if_built("64 POSIX message queues (past RLIMIT_MSGQUEUE)",
                           "POSIX message queues (CONFIG_POSIX_MQUEUE)", mqueues_past_limit, NULL);
        must_fail_if_built("65536 POSIX timers (past RLIMIT_SIGPENDING)",
                           "POSIX timers (CONFIG_POSIX_TIMERS)", timers_past_limit, NULL);
        must_fail_in_child("real-time scheduling (SCHED_FIFO)", sched_fifo, NULL);
        must_fail_in_child("raise its priority (nice -5)", nice_below_zero, NULL);
        must_fail_in_child("real-time I/O class (IOPRIO_CLASS_RT)", ioprio_rt, NULL);
}

/* ---- the broker ------------------------------------------------------------ */

/* The user-file root the manifest asks fs.read for (the tests grant it). */
#define HOSTILE_ROOT    "downloads"
#define FLOOD_CALLS_MAX 100000 /* the flood stops here, or at FLOOD_MS, or at EAGAIN */
#define FLOOD_MS        5000
#define FLOOD_WINDOW    60 /* calls in flight */
#define GARBAGE_MAX     64 /* garbage frames sent before giving up on a hang-up */

/* A broker call, retried a few times while rate-limited so that the limit of one
 * attempt does not hide the answer to the next. */
#define CALL(expr)                                                                                 \
        ({                                                                                         \
                int _r;                                                                            \
                for (int _i = 0;; _i++) {                                                          \
                        _r = (expr);                                                               \
                        if (_r != -EAGAIN || _i >= 20)                                             \
                                break;                                                             \
                        usleep(50 * 1000);                                                         \
                }                                                                                  \
                _r;                                                                                \
        })

static const char *errname(int r)
{
        switch (-r) {
        case EACCES:
                return "EACCES";
        case EPERM:
                return "EPERM";
        case ESRCH:
                return "ESRCH";
        case EINVAL:
                return "EINVAL";
        case EXDEV:
                return "EXDEV";
        case ENOENT:
                return "ENOENT";
        case ELOOP:
                return "ELOOP";
        case EAGAIN:
                return "EAGAIN";
        case ECONNRESET:
                return "ECONNRESET";
        case EPIPE:
                return "EPIPE";
        case EOPNOTSUPP:
                return "EOPNOTSUPP";
        case EBADMSG:
                return "EBADMSG";
        case EPROTO:
                return "EPROTO";
        case EMSGSIZE:
                return "EMSGSIZE";
        default:
                return strerror(-r);
        }
}

/* A call the right check must stop: refused only with EACCES (not granted) or EPERM
 * (never allowed); any other answer means the check did not come first. */
static void must_be_denied(const char *name, int r)
{
        verdict(name, r == -EACCES || r == -EPERM, "%s", r < 0 ? errname(r) : "the kernel did it");
}

/* A call that must fail, whatever the reason. */
static void must_fail_call(const char *name, int r)
{
        verdict(name, r < 0, "%s", r < 0 ? errname(r) : "the kernel did it");
}

static void try_fs_open(Cella *c, const char *name, const char *root, const char *path, int flags,
                        bool right_check)
{
        int fd = -1, r;

        r = CALL(cella_fs_open(c, root, path, flags, 0644, &fd));
        if (r >= 0)
                close(fd);
        if (right_check)
                must_be_denied(name, r);
        else
                must_fail_call(name, r);
}

/* A raw fs.open of path "." with flags READ|DIRECTORY (0x41), past libcella's own
 * check: the kernel must not pass a directory fd for any flag. */
static int fs_open_raw_directory(Cella *c)
{
        static const uint8_t body[] = {0x0a, 9,   'd', 'o',  'w', 'n', 'l',  'o',
                                       'a',  'd', 's', 0x12, 1,   '.', 0x18, 0x41};
        CellaReply *reply = NULL;
        int r = cella_call(c, CELLA_OP_FS_OPEN, body, sizeof body, NULL, 0, &reply);

        if (r >= 0)
                r = reply->error < 0 ? reply->error : 0;
        cella_reply_free(reply);
        return r;
}

/*
 * Out of a granted root by what the kernel passes: a directory fd (from which
 * "../..", fchdir and relative socket paths reach the host), the fd of a file
 * (its "..", /proc/self/fd/N/.., a reopen with more access), and the directory
 * calls. The tests plant a FIFO and a root-only 0600 file in the root.
 */
static void try_broker_root_walks(Cella *c)
{
        char p[64];
        int fd = -1, r, k;

        try_fs_open(c, "fs.open the root directory itself (.)", HOSTILE_ROOT, ".", O_RDONLY, false);
        must_fail_call("fs.open with the raw DIRECTORY flag", CALL(fs_open_raw_directory(c)));
        try_fs_open(c, "fs.open a FIFO in its root", HOSTILE_ROOT, "fifo", O_RDONLY, false);
        try_fs_open(c, "fs.open a root-only file in its root", HOSTILE_ROOT, "secret", O_RDONLY,
                    false);
        must_fail_call("fs.list out of the root (..)",
                       CALL(cella_fs_list(c, HOSTILE_ROOT, "..", 0, 0, &(CellaFsList *){NULL})));
        must_fail_call(
                "fs.list through a symlink up",
                CALL(cella_fs_list(c, HOSTILE_ROOT, "link-up", 0, 0, &(CellaFsList *){NULL})));
        must_fail_call(
                "fs.stat through a symlink to /",
                CALL(cella_fs_stat(c, HOSTILE_ROOT, "link-root/etc/shadow", 0, &(CellaFsStat){0})));
        must_be_denied("fs.mkdir with a read right at most",
                       CALL(cella_fs_mkdir(c, HOSTILE_ROOT, "owned", 0755)));
        must_be_denied("fs.rename with a read right at most",
                       CALL(cella_fs_rename(c, HOSTILE_ROOT, "readme.txt", "../readme.txt", 0)));
        must_be_denied("fs.unlink with a read right at most",
                       CALL(cella_fs_unlink(c, HOSTILE_ROOT, "readme.txt")));

        /* From the fd of a file it may read (when the user granted the root). */
        r = CALL(cella_fs_open(c, HOSTILE_ROOT, "readme.txt", O_RDONLY, 0, &fd));
        if (r < 0) {
                const char *no = r == -EACCES ? "no fd to start from (root not granted)"
                                              : "no fd to start from";

                verdict("openat(\"../..\") from a passed file", 1, "%s", no);
                verdict("fchdir to a passed file", 1, "%s", no);
                verdict("/proc/self/fd/N/.. of a passed file", 1, "%s", no);
                verdict("reopen a passed read-only file for writing", 1, "%s", no);
                return;
        }
        k = openat(fd, "../..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        must_not_open("openat(\"../..\") from a passed file", k);
        must_fail("fchdir to a passed file", fchdir(fd));
        snprintf(p, sizeof p, "/proc/self/fd/%d/..", fd);
        must_not_open("/proc/self/fd/N/.. of a passed file",
                      open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        must_not_open("reopen a passed read-only file for writing", open(p, O_RDWR | O_CLOEXEC));
        close(fd);
}

static void try_broker_files(Cella *c)
{
        try_fs_open(c, "fs.open a root it has no right to", "documents", "notes.txt", O_RDONLY,
                    true);
        try_fs_open(c, "fs.open for writing with a read right at most", HOSTILE_ROOT, "owned.txt",
                    O_WRONLY | O_CREAT, true);
        /* The rest are tried where it may read, if the user granted it: the path
         * must stay beneath the root whatever it says. */
        try_fs_open(c, "fs.open ../ out of the root", HOSTILE_ROOT, "../../../../../../etc/passwd",
                    O_RDONLY, false);
        try_fs_open(c, "fs.open an absolute path", HOSTILE_ROOT, "/etc/passwd", O_RDONLY, false);
        try_fs_open(c, "fs.open through a symlink to /", HOSTILE_ROOT, "link-root/etc/passwd",
                    O_RDONLY, false);
        try_fs_open(c, "fs.open through a symlink up", HOSTILE_ROOT, "link-up/etc/passwd", O_RDONLY,
                    false);
        try_broker_root_walks(c);
}

static void try_broker_bus(Cella *c)
{
        CellaBusReply *reply = NULL;
        uint64_t sub;
        int r;

        r = CALL(cella_bus_publish(c, "org.cella.example.hostile.probe", "x", 1, "text/plain"));
        printf("ALLOWED bus.publish on its own topic org.cella.example.hostile.probe: %s\n",
               r >= 0 ? "published" : errname(r));

        /* The manifest asks for these (and wildcards over every app): a user grant
         * would be needed, so they are refused (docs/capabilities.md). */
        must_be_denied(
                "bus.publish on another app's topic (clock.tick)",
                CALL(cella_bus_publish(c, "org.cella.example.clock.tick",
                                       "{\"seq\":0,\"unix_ms\":0}", 21, "application/json")));
        must_be_denied("bus.subscribe to every topic (**)",
                       CALL(cella_bus_subscribe(c, "**", &sub)));
        must_be_denied("bus.subscribe to clock.tick without the right",
                       CALL(cella_bus_subscribe(c, "org.cella.example.clock.tick", &sub)));
        must_be_denied("bus.send to another app",
                       CALL(cella_bus_send(c, "org.cella.example.notes_c", "x", 1, "text/plain")));
        r = CALL(cella_bus_request(c, "org.cella.example.clock", "time", "x", 1, "text/plain", 1000,
                                   &reply));
        cella_free(reply);
        must_be_denied("bus.request to another app", r);
}

static void try_broker_rights(Cella *c)
{
        CellaPermState state = 0;
        uint64_t id;
        int r;

        must_be_denied("app.launch another app",
                       CALL(cella_app_launch(c, "org.cella.example.hello", "view", NULL, 0, NULL)));
        must_be_denied(
                "notify.post without the notify right",
                CALL(cella_notify_post(c, "owned", NULL, CELLA_URGENCY_CRITICAL, NULL, NULL)));
        must_be_denied("timer.create without the timer right",
                       CALL(cella_timer_create(c, 1000, 0, 0, &id)));

        /* A request for a right the app cannot have must not even prompt: system.admin
         * is in its manifest, but it is a signature right and the bundle is not signed. */
        r = CALL(cella_perm_request(c, "system.admin", "let me in", &state, NULL));
        verdict("perm.request a signature right (system.admin)", r == -EPERM, "%s",
                r < 0                         ? errname(r)
                : state == CELLA_PERM_GRANTED ? "granted"
                                              : "answered, not EPERM");
        r = CALL(cella_perm_request(c, "fs.write:documents", "let me in", &state, NULL));
        verdict("perm.request a right its manifest lacks", r == -EPERM, "fs.write:documents: %s",
                r < 0                         ? errname(r)
                : state == CELLA_PERM_GRANTED ? "granted"
                                              : "answered, not EPERM");
}

/* Appends v as a protobuf varint to buf at *n. */
static void put_varint(uint8_t *buf, size_t *n, uint64_t v)
{
        do {
                buf[(*n)++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                v >>= 7;
        } while (v);
}

/* proc.signal with any pid, packed here: libcella refuses pid <= 0 before sending. */
static int proc_signal_raw(Cella *c, int32_t pid, int32_t sig)
{
        uint8_t body[32];
        size_t n = 0;
        CellaReply *reply = NULL;
        int r;

        body[n++] = 0x08; /* ProcSignalRequest.pid, varint (int32: negatives take 10 bytes) */
        put_varint(body, &n, (uint64_t)(int64_t)pid);
        body[n++] = 0x10; /* .signal */
        put_varint(body, &n, (uint64_t)(int64_t)sig);
        for (int i = 0;; i++) {
                r = cella_call(c, CELLA_OP_PROC_SIGNAL, body, n, NULL, 0, &reply);
                if (r < 0)
                        return r;
                r = reply->error;
                reply = cella_reply_free(reply);
                if (r != -EAGAIN || i >= 20)
                        return r;
                usleep(50 * 1000);
        }
}

static bool own_pid(int pid)
{
        char path[32];

        snprintf(path, sizeof path, "/proc/%d", pid);
        return access(path, F_OK) == 0;
}

static void try_broker_signals(Cella *c)
{
        /* Pids that are not the app's: numbers that name host processes outside
         * its namespace (2..12 are early kernel threads and daemons on most hosts),
         * and the largest pid. SIGCONT, so that a bug would do no harm. Each must be
         * ESRCH, never "allowed". Signalling its own processes, its own init (pid 1)
         * included, is allowed: they are the app's. */
        static const int pids[] = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100, 1000, 4194303};
        int tried = 0, bad = 0, bad_pid = 0, bad_r = 0, r;

        r = CALL(cella_proc_signal(c, 1, SIGCONT));
        printf("ALLOWED proc.signal SIGCONT to its own init (pid 1): %s\n",
               r >= 0 ? "sent" : errname(r));

        for (size_t i = 0; i < sizeof pids / sizeof pids[0]; i++) {
                if (own_pid(pids[i]))
                        continue;
                tried++;
                r = CALL(cella_proc_signal(c, pids[i], SIGCONT));
                if (r != -ESRCH && !bad++) {
                        bad_pid = pids[i];
                        bad_r = r;
                }
        }
        if (bad)
                verdict("proc.signal pids outside its namespace", 0,
                        "pid %d: %s (%d of %d not ESRCH)", bad_pid,
                        bad_r < 0 ? errname(bad_r) : "sent", bad, tried);
        else
                verdict("proc.signal pids outside its namespace", 1, "ESRCH for all %d", tried);

        /* kill(-1, ...) in the kernel would signal every process it may; kill(0, ...)
         * its own process group. */
        must_fail_call("proc.signal pid -1 (every process)", proc_signal_raw(c, -1, SIGCONT));
        must_fail_call("proc.signal pid 0 (the kernel's process group)",
                       proc_signal_raw(c, 0, SIGCONT));
}

typedef struct Flood {
        unsigned in_flight, replies, refused;
        int first_error;
} Flood;

static void flood_reply(Cella *c, CellaReply *reply, void *userdata)
{
        Flood *f = userdata;

        f->in_flight--;
        f->replies++;
        if (reply->error == -EAGAIN)
                f->refused++;
        else if (reply->error < 0 && !f->first_error)
                f->first_error = reply->error;
}

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void try_broker_flood(Cella *c)
{
        uint64_t start = now_ms(), deadline = start + FLOOD_MS;
        unsigned sent = 0;
        Flood f = {0};
        int r = 0;

        /* app.info as fast as the channel takes it, FLOOD_WINDOW in flight, until the
         * kernel says EAGAIN; then collect every outstanding reply. */
        while (f.refused == 0 && sent < FLOOD_CALLS_MAX && now_ms() < deadline) {
                while (f.in_flight < FLOOD_WINDOW && sent < FLOOD_CALLS_MAX) {
                        r = cella_call_async(c, CELLA_OP_APP_INFO, NULL, 0, NULL, 0, flood_reply,
                                             &f, NULL);
                        if (r < 0)
                                break;
                        f.in_flight++;
                        sent++;
                }
                if (r < 0 && r != -EAGAIN && r != -EBUSY)
                        break;
                if (cella_wait(c, 1000) < 0)
                        break;
                while ((r = cella_dispatch(c)) > 0)
                        ;
                if (r < 0)
                        break;
        }
        while (f.in_flight > 0 && r >= 0 && cella_wait(c, 2000) > 0)
                while ((r = cella_dispatch(c)) > 0)
                        ;
        verdict("flood the broker with calls", f.refused > 0,
                "%u calls in %llu ms, %u answered EAGAIN%s%s", sent,
                (unsigned long long)(now_ms() - start), f.refused, r < 0 ? ", channel: " : "",
                r < 0 ? errname(r) : "");
}

/* ---- forged frames, written as an attacker would, without libcella --------- */

#define FRAME_HEADER    24
#define FRAME_MAGIC     0xCE01
#define FRAME_REPLY     0x1u
#define FRAME_EVENT     0x2u
#define FRAME_ERROR     0x4u
#define FRAME_DATAGRAM  (FRAME_HEADER + 65536)
#define RAW_CLOSED      -1 /* raw_answer(): the kernel hung up */
#define RAW_NONE        0  /* no answer in time */
#define RAW_ERROR_REPLY 1
#define RAW_SUCCESS     2

static int raw_send(int fd, uint16_t opcode, uint32_t flags, uint64_t id, const void *body,
                    size_t len, int pass_fd)
{
        uint8_t hdr[FRAME_HEADER] = {0};
        uint16_t magic = htole16(FRAME_MAGIC), op = htole16(opcode), nfds = htole16(pass_fd >= 0);
        uint32_t fl = htole32(flags), blen = htole32((uint32_t)len);
        uint64_t rid = htole64(id);
        struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)body, len}};
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } ctl = {0};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};

        memcpy(hdr, &magic, 2);
        memcpy(hdr + 2, &op, 2);
        memcpy(hdr + 4, &fl, 4);
        memcpy(hdr + 8, &rid, 8);
        memcpy(hdr + 16, &blen, 4);
        memcpy(hdr + 20, &nfds, 2);
        if (pass_fd >= 0) {
                mh.msg_control = ctl.buf;
                mh.msg_controllen = sizeof ctl.buf;
                ctl.h.cmsg_level = SOL_SOCKET;
                ctl.h.cmsg_type = SCM_RIGHTS;
                ctl.h.cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(&ctl.h), &pass_fd, sizeof(int));
        }
        return sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* Waits up to timeout_ms for the kernel's answer to request id; skips other frames.
 * Returns RAW_* and, for an error reply, its errno in *ret_errnum. */
static int raw_answer(int fd, uint64_t id, int timeout_ms, int *ret_errnum)
{
        static uint8_t buf[FRAME_DATAGRAM];
        uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

        for (;;) {
                char ctl[CMSG_SPACE(16 * sizeof(int))];
                struct iovec iov = {buf, sizeof buf};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = ctl,
                                    .msg_controllen = sizeof ctl};
                struct pollfd p = {.fd = fd, .events = POLLIN};
                uint64_t now = now_ms(), rid;
                uint32_t flags;
                ssize_t k;

                if (now >= deadline)
                        return RAW_NONE;
                if (poll(&p, 1, (int)(deadline - now)) <= 0)
                        continue;
                k = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (k <= 0)
                        return RAW_CLOSED;
                for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h))
                        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
                                for (size_t i = 0; i < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                                     i++) {
                                        int got;

                                        memcpy(&got, CMSG_DATA(h) + i * sizeof(int), sizeof got);
                                        close(got);
                                }
                if (k < FRAME_HEADER)
                        continue;
                memcpy(&flags, buf + 4, 4);
                memcpy(&rid, buf + 8, 8);
                flags = le32toh(flags);
                if (!(flags & FRAME_REPLY) || le64toh(rid) != id)
                        continue;
                if (!(flags & FRAME_ERROR))
                        return RAW_SUCCESS;
                /* ErrorReply: field 1 (errnum) is a varint. */
                *ret_errnum = 0;
                if (k > FRAME_HEADER && buf[FRAME_HEADER] == 0x08)
                        for (ssize_t i = FRAME_HEADER + 1, s = 0; i < k && s < 35; i++, s += 7) {
                                *ret_errnum |= (buf[i] & 0x7f) << s;
                                if (!(buf[i] & 0x80))
                                        break;
                        }
                return RAW_ERROR_REPLY;
        }
}

/* Sends one forged frame and judges the answer: only a successful reply is an escape. */
static bool forge(int fd, const char *name, uint16_t opcode, uint32_t flags, uint64_t id,
                  const void *body, size_t len, int pass_fd)
{
        int r = raw_send(fd, opcode, flags, id, body, len, pass_fd), errnum = 0;

        if (r < 0) {
                verdict(name, r == -EPIPE || r == -ECONNRESET, "channel closed (%s)", errname(r));
                return false;
        }
        r = raw_answer(fd, id, 500, &errnum);
        verdict(name, r != RAW_SUCCESS, "%s%s",
                r == RAW_ERROR_REPLY ? "error reply "
                : r == RAW_CLOSED    ? "channel closed"
                : r == RAW_NONE      ? "ignored"
                                     : "answered as a call",
                r == RAW_ERROR_REPLY ? errname(-errnum) : "");
        return r != RAW_CLOSED;
}

static void try_broker_frames(Cella *c)
{
        static uint8_t big[70000];
        uint8_t junk[100];
        int fd = cella_fd(c), r = 0, sent = 0, errnum;
        CellaTime t;

        /* Frames that decode as frames but mean nothing from an app: each gets an
         * error reply (or, the kernel's choice, a closed channel). */
        static const struct {
                const char *name;
                uint16_t opcode;
                uint32_t flags;
                uint64_t id;
                const void *body;
                size_t len;
                int fd;
        } forged[] = {
                {"forged REPLY frame", CELLA_OP_SYSTEM_TIME, FRAME_REPLY, 0x7001, NULL, 0, -1},
                {"forged EVENT frame", CELLA_EVENT_TIMER_FIRED, FRAME_EVENT, 0, NULL, 0, -1},
                {"unknown opcode 0x7777", 0x7777, 0, 0x7002, NULL, 0, -1},
                {"an event opcode as a request", CELLA_EVENT_BUS_MESSAGE, 0, 0x7003, NULL, 0, -1},
                {"a request carrying an fd", CELLA_OP_SYSTEM_TIME, 0, 0x7004, NULL, 0,
                 STDOUT_FILENO},
                {"a body that does not decode", CELLA_OP_PROC_SIGNAL, 0, 0x7005,
                 "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11, -1},
                {"a datagram over 64 KiB", CELLA_OP_SYSTEM_TIME, 0, 0x7006, big, sizeof big, -1},
        };
        bool alive = true;

        for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++)
                if (alive)
                        alive = forge(fd, forged[i].name, forged[i].opcode, forged[i].flags,
                                      forged[i].id, forged[i].body, forged[i].len, forged[i].fd);
                else
                        verdict(forged[i].name, 1, "channel closed already");

        /* Garbage: no magic, no header. The kernel must hang up on the app at some
         * point, and carry on (the app's summary line, printed last, shows that
         * it was not killed with its kernel). */
        srand((unsigned)getpid());
        for (; sent < GARBAGE_MAX; sent++) {
                size_t len = 1 + (size_t)rand() % sizeof junk;

                for (size_t i = 0; i < len; i++)
                        junk[i] = (uint8_t)rand();
                junk[0] = 0xff; /* never the magic */
                r = send(fd, junk, len, MSG_NOSIGNAL);
                if (r < 0 || raw_answer(fd, UINT64_MAX, 20, &errnum) == RAW_CLOSED) {
                        r = r < 0 ? -errno : -ECONNRESET;
                        break;
                }
        }
        verdict("garbage frames until the kernel hangs up", sent < GARBAGE_MAX,
                "%s after %d garbage frame(s)", sent < GARBAGE_MAX ? errname(r) : "still open",
                sent);

        r = cella_system_time(c, &t);
        verdict("use the channel after the hang-up", r == -ECONNRESET || r == -EPIPE, "%s",
                r < 0 ? errname(r) : "the kernel answered");
}

static void try_broker(void)
{
        Cella *c = NULL;
        int r = cella_open(&c);

        if (r < 0) {
                printf("hostile: no cella channel on fd 3 (%s): broker attempts skipped\n",
                       strerror(-r));
                return;
        }
        cella_set_timeout(c, 10000);
        try_broker_files(c);
        try_broker_bus(c);
        try_broker_rights(c);
        try_broker_signals(c);
        try_broker_flood(c);
        try_broker_frames(c);
        cella_close(c);
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
        try_ids();
        try_ipc_and_env();
        try_processes_and_fds();
        try_exec_from_data();
        try_foreign_abi();
        try_host_wide_resources();
        try_broker();
        printf("hostile: %d attempts, %d refused, %d escaped, %d not applicable\n", attempts,
               attempts - escaped - not_applicable, escaped, not_applicable);
        return escaped > 125 ? 125 : escaped;
}
