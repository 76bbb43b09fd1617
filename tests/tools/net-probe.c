/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * net-probe: an app for tests/integration/test_net_connect.py and bench/net-connect.
 * Run by cella in a real sandbox, it makes net.connect calls through libcella and
 * prints one line per attempt, judging nothing:
 *
 *   try HOST PORT...        one cella_net_connect() per HOST PORT pair (PORT/udp: UDP):
 *                           "try host=H port=P rc=OK|EPERM|... address=A why=W"
 *   get HOST PORT PATH      an HTTP/1.0 GET through the connection: "get rc=OK
 *                           status=<status line> bytes=N" (N: the whole response)
 *   stream HOST PORT        connects, writes "go\n", then reads until EOF or an
 *                           error: "stream connected", then "stream ended bytes=N
 *                           rc=OK|<errno>" (a revoke mid-transfer ends it)
 *   hold HOST PORT N        N connections held open at once: a "try" line each, then
 *                           "hold done" and waits for stdin to close
 *   udp HOST PORT           one datagram "ping" out, one back: "udp rc=OK got=<text>"
 *   bench HOST PORT N BYTES N connects (each closed at once), then one connection
 *                           reading BYTES: "bench connect_us=<p50>,<p90> mbps=<M>"
 *   escape HOST PORT IP P   on a TCP and a UDP connection to HOST PORT, tries
 *                           connect(AF_UNSPEC), connect() to IP:P and sendto() IP:P:
 *                           "escape unspec=<rc> connect=<rc> sendto=<rc> echo=<the
 *                           vetted peer's answer to what sendto() sent>"
 *   done                    "net-probe: done"
 *
 * `net-probe direct HOST PORT N BYTES` (alone, outside cella) is bench's loop with
 * plain connect(2): the direct row of bench/net-connect.
 */
#include <cella.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e)
{
        static char buf[16];

        switch (e) {
        case 0:
                return "OK";
        case EACCES:
                return "EACCES";
        case EPERM:
                return "EPERM";
        case EINVAL:
                return "EINVAL";
        case ENOENT:
                return "ENOENT";
        case ECONNREFUSED:
                return "ECONNREFUSED";
        case ETIMEDOUT:
                return "ETIMEDOUT";
        case EHOSTUNREACH:
                return "EHOSTUNREACH";
        case ENETUNREACH:
                return "ENETUNREACH";
        case EMFILE:
                return "EMFILE";
        case EAGAIN:
                return "EAGAIN";
        case ECONNRESET:
                return "ECONNRESET";
        case EPIPE:
                return "EPIPE";
        case EAFNOSUPPORT:
                return "EAFNOSUPPORT";
        case EISCONN:
                return "EISCONN";
        case EOPNOTSUPP:
                return "EOPNOTSUPP";
        case EBADF:
                return "EBADF";
        }
        snprintf(buf, sizeof(buf), "E%d", e);
        return buf;
}

static int connect_print(Cella *c, const char *host, const char *port, bool udp)
{
        CellaNetInfo info;
        int fd = cella_net_connect(c, host, (unsigned)strtoul(port, NULL, 10),
                                   udp ? CELLA_NET_UDP : CELLA_NET_TCP, &info);

        printf("try host=%s port=%s rc=%s address=%s right=%s why=%s\n", host, port,
               errname(fd < 0 ? -fd : 0), info.address, info.right, info.why);
        return fd;
}

static void write_all(int fd, const char *s, size_t n)
{
        while (n > 0) {
                ssize_t k = write(fd, s, n);
                if (k <= 0)
                        return;
                s += k;
                n -= (size_t)k;
        }
}

/* Asks the bulk server on fd for bytes ("<bytes>\n") and reads until it has them or
 * the stream ends, through buf (size bytes). Returns the bytes read. */
static long long fetch(int fd, long long bytes, char *buf, size_t size)
{
        char req[64];
        long long got = 0;

        snprintf(req, sizeof(req), "%lld\n", bytes);
        write_all(fd, req, strlen(req));
        while (got < bytes) {
                ssize_t k = read(fd, buf, size);

                if (k <= 0)
                        break;
                got += k;
        }
        return got;
}

static int64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool is_cmd(const char *s)
{
        static const char *const cmds[] = {"try", "get",   "stream", "hold",
                                           "udp", "bench", "done",   "escape"};

        for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++)
                if (strcmp(s, cmds[k]) == 0)
                        return true;
        return false;
}

static int cmp64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

/* connect(2) n times (each closed at once), then one connection reading bytes: the
 * "direct" row of bench/net-connect, outside any sandbox. host: a numeric IPv4. */
static int bench_direct(const char *host, const char *port, int n, long long bytes)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
        int64_t *lat = calloc((size_t)n, sizeof(*lat));
        char buf[1 << 16];
        long long got = 0;

        if (!lat || n <= 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                return 2;
        for (int k = 0; k < n; k++) {
                int64_t t0 = now_us();
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                        printf("bench rc=%s\n", errname(errno));
                        return 1;
                }
                lat[k] = now_us() - t0;
                close(fd);
        }
        qsort(lat, (size_t)n, sizeof(*lat), cmp64);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int64_t t0 = now_us();
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                got = fetch(fd, bytes, buf, sizeof(buf));
        }
        if (fd >= 0)
                close(fd);
        int64_t dt = now_us() - t0;
        printf("bench connect_us=%lld,%lld bytes=%lld mbps=%.1f\n", (long long)lat[n / 2],
               (long long)lat[(n * 9) / 10], got, dt > 0 ? (double)got * 8 / (double)dt : 0.0);
        free(lat);
        return 0;
}

int main(int argc, char **argv)
{
        Cella *c = NULL;
        int r, i = 1;

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc == 6 && strcmp(argv[1], "direct") == 0)
                return bench_direct(argv[2], argv[3], atoi(argv[4]), atoll(argv[5]));
        r = cella_open(&c);
        if (r < 0) {
                fprintf(stderr, "net-probe: no cella channel: %s\n", strerror(-r));
                return 1;
        }
        cella_set_timeout(c, 30000);
        while (i < argc) {
                const char *cmd = argv[i++];

                if (strcmp(cmd, "try") == 0) {
                        while (i + 1 < argc && !is_cmd(argv[i])) {
                                bool udp = strstr(argv[i + 1], "/udp") != NULL;
                                int fd = connect_print(c, argv[i], argv[i + 1], udp);

                                if (fd >= 0)
                                        close(fd);
                                i += 2;
                        }
                } else if (strcmp(cmd, "get") == 0 && i + 2 < argc) {
                        int fd = connect_print(c, argv[i], argv[i + 1], false);
                        char req[512], buf[65536], status[256] = "";
                        size_t total = 0;

                        if (fd >= 0) {
                                snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n",
                                         argv[i + 2], argv[i]);
                                write_all(fd, req, strlen(req));
                                for (;;) {
                                        ssize_t k = read(fd, buf, sizeof(buf) - 1);
                                        if (k <= 0)
                                                break;
                                        if (total == 0) {
                                                buf[k] = 0;
                                                sscanf(buf, "%255[^\r\n]", status);
                                        }
                                        total += (size_t)k;
                                }
                                close(fd);
                        }
                        printf("get rc=%s status=%s bytes=%zu\n", fd < 0 ? errname(-fd) : "OK",
                               status, total);
                        i += 3;
                } else if (strcmp(cmd, "stream") == 0 && i + 1 < argc) {
                        int fd = connect_print(c, argv[i], argv[i + 1], false);
                        char buf[65536];
                        size_t total = 0;
                        int e = 0;

                        if (fd >= 0) {
                                write_all(fd, "go\n", 3);
                                printf("stream connected\n");
                                for (;;) {
                                        ssize_t k = read(fd, buf, sizeof(buf));
                                        if (k < 0)
                                                e = errno;
                                        if (k <= 0)
                                                break;
                                        total += (size_t)k;
                                }
                                close(fd);
                                printf("stream ended bytes=%zu rc=%s\n", total, errname(e));
                        }
                        i += 2;
                } else if (strcmp(cmd, "hold") == 0 && i + 2 < argc) {
                        int n = atoi(argv[i + 2]);
                        char b;

                        for (int k = 0; k < n; k++)
                                (void)connect_print(c, argv[i], argv[i + 1], false);
                        printf("hold done\n");
                        while (read(0, &b, 1) > 0)
                                ;
                        i += 3;
                } else if (strcmp(cmd, "udp") == 0 && i + 1 < argc) {
                        int fd = connect_print(c, argv[i], argv[i + 1], true);
                        char buf[256];
                        ssize_t k = -1;

                        if (fd >= 0) {
                                (void)send(fd, "ping", 4, 0);
                                k = recv(fd, buf, sizeof(buf) - 1, 0);
                                close(fd);
                        }
                        if (k >= 0)
                                buf[k] = 0;
                        printf("udp rc=%s got=%s\n", k >= 0 ? "OK" : errname(fd < 0 ? -fd : errno),
                               k >= 0 ? buf : "");
                        i += 2;
                } else if (strcmp(cmd, "bench") == 0 && i + 3 < argc) {
                        int n = atoi(argv[i + 2]);
                        long long bytes = atoll(argv[i + 3]);
                        int64_t *lat = calloc((size_t)n, sizeof(*lat));
                        char buf[1 << 16];
                        long long got = 0;

                        for (int k = 0; k < n && lat; k++) {
                                int64_t t0 = now_us();
                                int fd = cella_net_connect(c, argv[i], (unsigned)atoi(argv[i + 1]),
                                                           CELLA_NET_TCP, NULL);
                                if (fd < 0) {
                                        printf("bench rc=%s\n", errname(-fd));
                                        return 1;
                                }
                                lat[k] = now_us() - t0;
                                close(fd);
                        }
                        qsort(lat, (size_t)n, sizeof(*lat), cmp64);
                        int fd = cella_net_connect(c, argv[i], (unsigned)atoi(argv[i + 1]),
                                                   CELLA_NET_TCP, NULL);
                        int64_t t0 = now_us();
                        if (fd >= 0) {
                                got = fetch(fd, bytes, buf, sizeof(buf));
                                close(fd);
                        }
                        int64_t dt = now_us() - t0;
                        printf("bench connect_us=%lld,%lld bytes=%lld mbps=%.1f\n",
                               (long long)lat[n / 2], (long long)lat[(n * 9) / 10], got,
                               dt > 0 ? (double)got * 8 / (double)dt : 0.0);
                        free(lat);
                        i += 4;
                } else if (strcmp(cmd, "escape") == 0 && i + 3 < argc) {
                        /* The tricks a kernel socket would allow, on the fd the kernel
                         * gave: dissolve the association and connect elsewhere, send
                         * a datagram elsewhere. Each must fail. */
                        struct sockaddr_in to = {.sin_family = AF_INET,
                                                 .sin_port = htons((uint16_t)atoi(argv[i + 3]))};
                        struct sockaddr unspec = {.sa_family = AF_UNSPEC};
                        int tcp = connect_print(c, argv[i], argv[i + 1], false);
                        int udp = connect_print(c, argv[i], argv[i + 1], true);
                        int r1, r2, r3, e1, e2, e3;

                        inet_pton(AF_INET, argv[i + 2], &to.sin_addr);
                        r1 = connect(tcp, &unspec, sizeof(unspec));
                        e1 = errno;
                        r2 = connect(tcp, (struct sockaddr *)&to, sizeof(to));
                        e2 = errno;
                        r3 = (int)sendto(udp, "x", 1, 0, (struct sockaddr *)&to, sizeof(to));
                        e3 = errno;
                        /* Where did it go? The vetted peer echoes it upper-cased. */
                        char echo[16] = "";
                        struct pollfd pf = {.fd = udp, .events = POLLIN};
                        if (r3 > 0 && poll(&pf, 1, 10000) > 0) {
                                ssize_t k = recv(udp, echo, sizeof(echo) - 1, 0);
                                echo[k > 0 ? k : 0] = 0;
                        }
                        printf("escape unspec=%s connect=%s sendto=%s echo=%s\n",
                               r1 < 0 ? errname(e1) : "OK", r2 < 0 ? errname(e2) : "OK",
                               r3 < 0 ? errname(e3) : "OK", echo);
                        if (tcp >= 0)
                                close(tcp);
                        if (udp >= 0)
                                close(udp);
                        i += 4;
                } else if (strcmp(cmd, "done") == 0) {
                        printf("net-probe: done\n");
                } else {
                        fprintf(stderr, "net-probe: bad command %s\n", cmd);
                        return 2;
                }
        }
        cella_close(c);
        return 0;
}
