/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * net.internet's full network: the nftables rules in the app's namespace and pasta
 * (fullnet.h). docs/network.md, "Full network (net.internet)"; docs/security.md,
 * "Full network".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"
#include "net/fullnet.h"

struct FullNet {
        pid_t pid;
        int pidfd;
        int msg_fd; /* a memfd: pasta's stderr */
        bool killed;
        uint64_t rules_ns, pasta_ns;
};

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int fullnet_allow_parse(const char *right, FullNetAllow *ret)
{
        static const char prefix[] = "net.connect:";
        char host[INET6_ADDRSTRLEN + 2];
        const char *colon, *h;
        size_t hlen;
        char *end;
        unsigned long port;

        if (!right || strncmp(right, prefix, sizeof prefix - 1) != 0)
                return 0;
        h = right + sizeof prefix - 1;
        colon = strrchr(h, ':');
        if (!colon || colon == h || colon[1] < '1' || colon[1] > '9')
                return 0;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno || *end || port == 0 || port > 65535)
                return 0;
        hlen = (size_t)(colon - h);
        if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
                h++;
                hlen -= 2;
        }
        if (hlen == 0 || hlen >= sizeof host)
                return 0;
        memcpy(host, h, hlen);
        host[hlen] = 0;
        *ret = (FullNetAllow){.port = (uint16_t)port};
        /* inet_pton: the dotted quad only (no decimal, octal or hex spellings), so
         * that a right names the one address the rules open. */
        if (inet_pton(AF_INET, host, &ret->v4) == 1)
                ret->family = AF_INET;
        else if (inet_pton(AF_INET6, host, &ret->v6) == 1)
                ret->family = AF_INET6;
        else
                return 0;
        return 1;
}

/* The IPv4 ranges no public route leads to (fullnet.h, fullnet_rules()). */
static const struct {
        const char *addr;
        unsigned len;
} blocked4[] = {
        {"0.0.0.0", 8},      /* "this network" (RFC 1122) */
        {"10.0.0.0", 8},     /* private (RFC 1918) */
        {"100.64.0.0", 10},  /* CGNAT shared space (RFC 6598) */
        {"127.0.0.0", 8},    /* loopback (RFC 1122) */
        {"169.254.0.0", 16}, /* link-local, 169.254.169.254 metadata (RFC 3927) */
        {"172.16.0.0", 12},  /* private (RFC 1918) */
        {"192.0.0.0", 24},   /* IETF protocol assignments (RFC 6890) */
        {"192.168.0.0", 16}, /* private (RFC 1918) */
        {"198.18.0.0", 15},  /* benchmarking (RFC 2544) */
        {"224.0.0.0", 4},    /* multicast (RFC 5771) */
        {"240.0.0.0", 4},    /* reserved, and the limited broadcast (RFC 1112, RFC 919) */
};

/* The IPv6 ranges, besides the IPv4 ones in their IPv6 forms. */
static const struct {
        const char *addr;
        unsigned len;
} blocked6[] = {
        {"::", 96},     /* unspecified, loopback, IPv4-compatible (RFC 4291) */
        {"100::", 64},  /* discard-only (RFC 6666) */
        {"fc00::", 7},  /* unique-local (RFC 4193), fd00:ec2::254 metadata among them */
        {"fe80::", 10}, /* link-local (RFC 4291) */
        {"fec0::", 10}, /* site-local, deprecated (RFC 3879) */
        {"ff00::", 8},  /* multicast (RFC 4291) */
};

/* Writes the IPv6 forms of the IPv4 range a/len into f, each ", "-separated: the
 * IPv4-mapped (::ffff:0:0/96), NAT64 well-known (64:ff9b::/96, RFC 6052) and 6to4
 * (2002::/16, RFC 3056) images. (The IPv4-compatible ones are all in ::/96.) */
static void put_v6_forms(FILE *f, struct in_addr a, unsigned len)
{
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
        char s[INET6_ADDRSTRLEN];
        struct in6_addr x;

        memset(&x, 0, sizeof x);
        memcpy(x.s6_addr, mapped, 12);
        memcpy(x.s6_addr + 12, &a, 4);
        fprintf(f, ", %s/%u", inet_ntop(AF_INET6, &x, s, sizeof s), 96 + len);
        memset(&x, 0, sizeof x);
        memcpy(x.s6_addr, nat64, 12);
        memcpy(x.s6_addr + 12, &a, 4);
        fprintf(f, ", %s/%u", inet_ntop(AF_INET6, &x, s, sizeof s), 96 + len);
        memset(&x, 0, sizeof x);
        x.s6_addr[0] = 0x20;
        x.s6_addr[1] = 0x02;
        memcpy(x.s6_addr + 2, &a, 4);
        fprintf(f, ", %s/%u", inet_ntop(AF_INET6, &x, s, sizeof s), 16 + len);
}

int fullnet_rules(const FullNetAllow *allow, size_t n_allow, bool drop_all, char **ret)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return -ENOMEM;
        /* One transaction: make the table if it is not there, delete it, make it
         * anew. The namespace is never without rules in between. */
        fprintf(f, "table inet " FULLNET_NFT_TABLE "\n"
                   "delete table inet " FULLNET_NFT_TABLE "\n"
                   "table inet " FULLNET_NFT_TABLE " {\n");
        if (drop_all) {
                fprintf(f, "\tchain output {\n"
                           "\t\ttype filter hook output priority filter; policy accept;\n"
                           "\t\toif \"lo\" accept\n"
                           "\t\treject with icmpx admin-prohibited\n"
                           "\t}\n"
                           "}\n");
                goto done;
        }
        fprintf(f, "\tset blocked4 {\n\t\ttype ipv4_addr; flags interval;\n\t\telements = { ");
        for (size_t i = 0; i < ELEMENTSOF(blocked4); i++)
                fprintf(f, "%s%s/%u", i ? ", " : "", blocked4[i].addr, blocked4[i].len);
        fprintf(f, " }\n\t}\n");
        fprintf(f, "\tset blocked6 {\n\t\ttype ipv6_addr; flags interval;\n\t\telements = { ");
        for (size_t i = 0; i < ELEMENTSOF(blocked6); i++)
                fprintf(f, "%s%s/%u", i ? ", " : "", blocked6[i].addr, blocked6[i].len);
        for (size_t i = 0; i < ELEMENTSOF(blocked4); i++) {
                struct in_addr a;

                if (inet_pton(AF_INET, blocked4[i].addr, &a) == 1)
                        put_v6_forms(f, a, blocked4[i].len);
        }
        fprintf(f, " }\n\t}\n");
        fprintf(f, "\tchain output {\n"
                   "\t\ttype filter hook output priority filter; policy accept;\n"
                   "\t\toif \"lo\" accept\n"
                   "\t\tip daddr " FULLNET_DNS_V4 " udp dport 53 accept\n"
                   /* The interface's own neighbour discovery with pasta, link-local
                    * and multicast by nature (RFC 4861: hop limit 255). */
                   "\t\ticmpv6 type { nd-router-solicit, nd-neighbor-solicit, "
                   "nd-neighbor-advert } ip6 hoplimit 255 accept\n");
        for (size_t i = 0; i < n_allow; i++) {
                char s[INET6_ADDRSTRLEN];
                const char *fam = allow[i].family == AF_INET ? "ip" : "ip6";

                if (allow[i].family != AF_INET && allow[i].family != AF_INET6)
                        continue;
                inet_ntop(allow[i].family,
                          allow[i].family == AF_INET ? (void *)&allow[i].v4 : (void *)&allow[i].v6,
                          s, sizeof s);
                fprintf(f, "\t\t%s daddr %s tcp dport %u accept\n", fam, s, allow[i].port);
                fprintf(f, "\t\t%s daddr %s udp dport %u accept\n", fam, s, allow[i].port);
        }
        fprintf(f, "\t\tip daddr @blocked4 reject with icmpx admin-prohibited\n"
                   "\t\tip6 daddr @blocked6 reject with icmpx admin-prohibited\n"
                   "\t}\n"
                   "}\n");
done:
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

/* One load, shared by the caller and the thread (refs: the last one frees it). */
typedef struct RulesJob {
        pthread_mutex_t lock;
        pthread_cond_t done_cond;
        bool done;
        unsigned refs;
        int netns_fd; /* the thread's own dup */
        char *script;
        int r;
        char err[512];
} RulesJob;

static void job_unref(RulesJob *j)
{
        bool last;

        pthread_mutex_lock(&j->lock);
        last = --j->refs == 0;
        pthread_mutex_unlock(&j->lock);
        if (!last)
                return;
        pthread_mutex_destroy(&j->lock);
        pthread_cond_destroy(&j->done_cond);
        safe_close(j->netns_fd);
        free(j->script);
        free(j);
}

static void job_finish(RulesJob *j, int r)
{
        pthread_mutex_lock(&j->lock);
        j->r = r;
        j->done = true;
        pthread_cond_signal(&j->done_cond);
        pthread_mutex_unlock(&j->lock);
}

static void *rules_thread(void *userdata)
{
        RulesJob *j = userdata;
        struct nft_ctx *ctx;
        int r = 0;

        /* CLONE_NEWNET is per thread: only this one moves. */
        if (setns(j->netns_fd, CLONE_NEWNET) < 0) {
                r = negative_errno();
                snprintf(j->err, sizeof j->err, "join the app's network namespace: %s",
                         strerror(-r));
                job_finish(j, r);
                job_unref(j);
                return NULL;
        }
        ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        if (!ctx) {
                snprintf(j->err, sizeof j->err, "nft_ctx_new failed");
                job_finish(j, -ENOMEM);
                job_unref(j);
                return NULL;
        }
        (void)nft_ctx_buffer_output(ctx);
        (void)nft_ctx_buffer_error(ctx);
        if (nft_run_cmd_from_buffer(ctx, j->script) != 0) {
                const char *e = nft_ctx_get_error_buffer(ctx);

                r = -EIO;
                snprintf(j->err, sizeof j->err, "nft: %s", e && *e ? e : "the rules were refused");
        }
        /* The rules are in (the transaction is committed): the caller goes on now.
         * nft_ctx_free() takes 8-13 ms here (closing its netlink socket waits for an
         * RCU grace period), which no start needs to wait for. */
        job_finish(j, r);
        nft_ctx_free(ctx);
        job_unref(j);
        return NULL;
}

int fullnet_load_rules(int netns_fd, const char *script, char *err, size_t errlen)
{
        pthread_attr_t attr;
        pthread_t t;
        RulesJob *j;
        int r;

        if (errlen > 0)
                err[0] = 0;
        j = calloc(1, sizeof *j);
        if (!j || !(j->script = strdup(script))) {
                free(j);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        j->netns_fd = fcntl(netns_fd, F_DUPFD_CLOEXEC, 3);
        if (j->netns_fd < 0) {
                r = negative_errno();
                free(j->script);
                free(j);
                snprintf(err, errlen, "join the app's network namespace: %s", strerror(-r));
                return r;
        }
        pthread_mutex_init(&j->lock, NULL);
        pthread_cond_init(&j->done_cond, NULL);
        j->refs = 2;
        r = pthread_attr_init(&attr);
        if (r == 0) {
                (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                r = pthread_create(&t, &attr, rules_thread, j);
                pthread_attr_destroy(&attr);
        }
        if (r != 0) {
                snprintf(err, errlen, "cannot start a thread: %s", strerror(r));
                j->refs = 1;
                job_unref(j);
                return -r;
        }
        pthread_mutex_lock(&j->lock);
        while (!j->done)
                pthread_cond_wait(&j->done_cond, &j->lock);
        r = j->r;
        if (r < 0)
                snprintf(err, errlen, "%s", j->err);
        pthread_mutex_unlock(&j->lock);
        job_unref(j);
        return r;
}

/* In the forked child: pasta's fds (0, 1 /dev/null; 2 the message memfd; 3 the
 * namespace; 4 the pid file's pipe), its bounding set, and exec. Only
 * async-signal-safe calls: the parent may have threads. */
_noreturn_ static void pasta_child(const char *path, char *const argv[], int nullfd, int msgfd,
                                   int nsfd, int pidw, pid_t parent)
{
        static const int keep[] = {CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, CAP_SETUID,
                                   CAP_SETGID};
        char *const envp[] = {NULL};
        int a, b, c, d;

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(127);
        /* Ignored dispositions and the mask survive exec: pasta gets the defaults (it
         * fails to start when SIGPIPE is ignored already: signal() returns SIG_IGN,
         * which pasta 2023-03-09 takes for an error). */
        {
                struct sigaction dfl = {.sa_handler = SIG_DFL};
                sigset_t none;

                for (int sig = 1; sig < NSIG; sig++)
                        (void)sigaction(sig, &dfl, NULL);
                sigemptyset(&none);
                (void)sigprocmask(SIG_SETMASK, &none, NULL);
        }
        a = fcntl(nullfd, F_DUPFD, 10);
        b = fcntl(msgfd, F_DUPFD, 10);
        c = fcntl(nsfd, F_DUPFD, 10);
        d = fcntl(pidw, F_DUPFD, 10);
        if (a < 0 || b < 0 || c < 0 || d < 0 || dup2(a, 0) < 0 || dup2(a, 1) < 0 ||
            dup2(b, 2) < 0 || dup2(c, 3) < 0 || dup2(d, 4) < 0)
                _exit(127);
        if (syscall(SYS_close_range, 5u, ~0u, 0u) < 0)
                for (int fd = 5; fd < 1024; fd++)
                        (void)close(fd);
        /* As root, exec gives pasta every capability in the bounding set: only those it
         * uses stay there (it drops the rest of these itself, isolate_initial() and on). */
        for (int cap = 0; cap <= CAP_LAST_CAP; cap++) {
                bool kept = false;

                for (size_t i = 0; i < ELEMENTSOF(keep); i++)
                        kept = kept || keep[i] == cap;
                if (!kept && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                        _exit(127);
        }
        execve(path, argv, envp);
        _exit(127);
}

/* Reads the last 4 KiB pasta wrote to its stderr into msg (msglen bytes): its lines
 * joined with "; ", those that only say syslog was not there ("Failed to send N
 * bytes to syslog": no /dev/log in the kernel's mount namespace) left out, control
 * characters made spaces. */
static void read_messages(int fd, char *msg, size_t msglen)
{
        char buf[4096];
        size_t used = 0;
        off_t size;
        ssize_t k;

        if (msglen == 0)
                return;
        msg[0] = 0;
        if (fd < 0)
                return;
        size = lseek(fd, 0, SEEK_END);
        if (size <= 0)
                return;
        k = pread(fd, buf, sizeof buf - 1,
                  size > (off_t)(sizeof buf - 1) ? size - (off_t)(sizeof buf - 1) : 0);
        if (k <= 0)
                return;
        buf[k] = 0;
        for (char *line = buf, *next; line && *line; line = next) {
                size_t n;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                for (char *c = line; *c; c++)
                        if ((unsigned char)*c < 0x20 || *c == 0x7f)
                                *c = ' ';
                n = strlen(line);
                while (n > 0 && line[n - 1] == ' ')
                        line[--n] = 0;
                if (n == 0 || (strncmp(line, "Failed to send ", 15) == 0 && strstr(line, "syslog")))
                        continue;
                if (used + (used ? 2 : 0) + n >= msglen)
                        break;
                used += (size_t)snprintf(msg + used, msglen - used, "%s%s", used ? "; " : "", line);
        }
}

int fullnet_start(pid_t pid, const FullNetOptions *o, FullNet **ret, char *err, size_t errlen)
{
        const char *path = o && o->pasta_path ? o->pasta_path : FULLNET_PASTA_PATH;
        int timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : FULLNET_START_TIMEOUT_MS;
        char *const argv[] = {"pasta", "-f", "-q",
                              /* uid 0: as nobody it could not enter a namespace of the initial user
                               * namespace (docs/security.md, "Full network"). */
                              "--runas", "0", "--config-net", "--no-map-gw", "-t", "none", "-u",
                              "none", "-T", "none", "-U", "none", "--dns-forward", FULLNET_DNS_V4,
                              "--pid", "/proc/self/fd/4", "--netns", "/proc/self/fd/3", NULL};
        _cleanup_close_ int nsfd = -EBADF, nullfd = -EBADF, msgfd = -EBADF;
        _cleanup_close_pair_ int pidpipe[2] = {-EBADF, -EBADF};
        _cleanup_free_ char *script = NULL;
        char proc[64], buf[32];
        size_t got = 0;
        uint64_t t0 = now_ns(), t1, deadline;
        FullNet *n;
        pid_t child;
        int r;

        if (errlen > 0)
                err[0] = 0;
        snprintf(proc, sizeof proc, "/proc/%d/ns/net", (int)pid);
        nsfd = open(proc, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0) {
                r = negative_errno();
                snprintf(err, errlen, "open %s: %s", proc, strerror(-r));
                return r;
        }
        if (access(path, X_OK) < 0) {
                r = negative_errno();
                snprintf(err, errlen,
                         "%s: %s (net.internet needs pasta: apt-get install passt, "
                         "scripts/install-deps)",
                         path, strerror(-r));
                return r;
        }
        /* The rules first: the interface never exists without them. */
        r = fullnet_rules(o ? o->allow : NULL, o ? o->n_allow : 0, false, &script);
        if (r < 0) {
                snprintf(err, errlen, "cannot write the rules: %s", strerror(-r));
                return r;
        }
        r = fullnet_load_rules(nsfd, script, err, errlen);
        if (r < 0)
                return r;
        t1 = now_ns();

        nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
        msgfd = memfd_create("cella-pasta-messages", MFD_CLOEXEC);
        if (nullfd < 0 || msgfd < 0 || pipe2(pidpipe, O_CLOEXEC) < 0) {
                r = negative_errno();
                snprintf(err, errlen, "cannot set up pasta's fds: %s", strerror(-r));
                return r;
        }
        n = calloc(1, sizeof *n);
        if (!n) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        n->pidfd = n->msg_fd = -EBADF;
        {
                pid_t parent = getpid();

                child = fork();
                if (child == 0)
                        pasta_child(path, argv, nullfd, msgfd, nsfd, pidpipe[1], parent);
        }
        if (child < 0) {
                r = negative_errno();
                free(n);
                snprintf(err, errlen, "fork: %s", strerror(-r));
                return r;
        }
        n->pid = child;
        n->msg_fd = TAKE_FD(msgfd);
        n->rules_ns = t1 - t0;
        pidpipe[1] = safe_close(pidpipe[1]);
        n->pidfd = (int)syscall(SYS_pidfd_open, child, 0);
        if (n->pidfd < 0) {
                r = negative_errno();
                snprintf(err, errlen, "pidfd_open: %s", strerror(-r));
                fullnet_free(n);
                return r;
        }

        /* pasta writes its pid file once the interface is configured; EOF first
         * means it exited. */
        deadline = t1 + (uint64_t)timeout_ms * 1000000ull;
        for (;;) {
                struct pollfd p = {.fd = pidpipe[0], .events = POLLIN};
                uint64_t now = now_ns();
                ssize_t k;

                if (now >= deadline) {
                        snprintf(err, errlen, "pasta did not have the interface up within %d ms",
                                 timeout_ms);
                        fullnet_free(n);
                        return -ETIMEDOUT;
                }
                r = poll(&p, 1, (int)((deadline - now + 999999) / 1000000));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        r = negative_errno();
                        snprintf(err, errlen, "poll: %s", strerror(-r));
                        fullnet_free(n);
                        return r;
                }
                if (r == 0)
                        continue;
                k = read(pidpipe[0], buf + got, sizeof buf - 1 - got);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k > 0) {
                        got += (size_t)k;
                        buf[got] = 0;
                        if (memchr(buf, '\n', got) || got == sizeof buf - 1)
                                break;
                        continue;
                }
                /* EOF (or an error) before the pid: pasta has exited or is exiting. */
                {
                        char msg[FULLNET_MESSAGE_MAX];
                        siginfo_t si = {};

                        (void)kill(n->pid, SIGKILL);
                        (void)RETRY_EINTR(waitid(P_PIDFD, (id_t)n->pidfd, &si, WEXITED));
                        n->pid = 0;
                        read_messages(n->msg_fd, msg, sizeof msg);
                        snprintf(err, errlen, "pasta %s %d before the interface was up%s%s",
                                 si.si_code == CLD_EXITED ? "exited with status"
                                                          : "was killed by signal",
                                 si.si_status, msg[0] ? ": " : "", msg);
                        fullnet_free(n);
                        return -ENETDOWN;
                }
        }
        n->pasta_ns = now_ns() - t1;
        *ret = n;
        return 0;
}

pid_t fullnet_pid(const FullNet *n)
{
        return n ? n->pid : 0;
}

int fullnet_pidfd(const FullNet *n)
{
        return n && n->pid > 0 ? n->pidfd : -EBADF;
}

uint64_t fullnet_rules_ns(const FullNet *n)
{
        return n ? n->rules_ns : 0;
}

uint64_t fullnet_pasta_ns(const FullNet *n)
{
        return n ? n->pasta_ns : 0;
}

void fullnet_kill(FullNet *n)
{
        if (!n || n->pid <= 0 || n->killed)
                return;
        /* By pidfd: the pid may not be reused while we hold it unreaped, but the
         * pidfd says so outright. */
        (void)syscall(SYS_pidfd_send_signal, n->pidfd, SIGKILL, NULL, 0);
        n->killed = true;
}

/* Waits for pasta's exit and reaps it. The pidfd may be non-blocking (a libuv poll
 * made it so), where waitid(P_PIDFD) would say EAGAIN: poll for the exit first. */
static int wait_exit(FullNet *n)
{
        for (;;) {
                struct pollfd p = {.fd = n->pidfd, .events = POLLIN};
                siginfo_t si = {};

                if (waitid(P_PIDFD, (id_t)n->pidfd, &si, WEXITED | WNOHANG) < 0 && errno != EINTR &&
                    errno != EAGAIN)
                        return negative_errno();
                if (si.si_pid != 0) {
                        n->pid = 0;
                        return 0;
                }
                if (poll(&p, 1, -1) < 0 && errno != EINTR)
                        return negative_errno();
        }
}

int fullnet_kill_wait(FullNet *n)
{
        if (!n || n->pid <= 0)
                return 0;
        fullnet_kill(n);
        return wait_exit(n);
}

int fullnet_cut(FullNet *n, int netns_fd)
{
        _cleanup_free_ char *script = NULL;
        char err[256];
        int r = 0;

        if (netns_fd >= 0) {
                r = fullnet_rules(NULL, 0, true, &script);
                if (r >= 0)
                        r = fullnet_load_rules(netns_fd, script, err, sizeof err);
        }
        fullnet_kill(n);
        return r;
}

int fullnet_reap(FullNet *n, int *ret_status, char *msg, size_t msglen)
{
        siginfo_t si = {};

        if (!n || n->pid <= 0)
                return -ECHILD;
        if (waitid(P_PIDFD, (id_t)n->pidfd, &si, WEXITED | WNOHANG) < 0)
                return negative_errno();
        if (si.si_pid == 0)
                return 0;
        n->pid = 0; /* the pidfd stays open until fullnet_free(): the caller's poll has it */
        if (ret_status)
                *ret_status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8
                                                       : (si.si_status & 0x7f);
        read_messages(n->msg_fd, msg, msglen);
        return 1;
}

FullNet *fullnet_free(FullNet *n)
{
        if (!n)
                return NULL;
        if (n->pid > 0) {
                fullnet_kill(n);
                (void)wait_exit(n);
        }
        safe_close(n->pidfd);
        safe_close(n->msg_fd);
        free(n);
        return NULL;
}

FullNet *fullnet_abandon(FullNet *n)
{
        if (!n)
                return NULL;
        fullnet_kill(n);
        safe_close(n->pidfd);
        safe_close(n->msg_fd);
        free(n);
        return NULL;
}
