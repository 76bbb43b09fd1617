/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ipc-core: the pipe and shared-memory ring figures of docs/ipc.md, native against
 * cella in one run (issue 15: "pipe and shared memory >= 90% of native").
 *
 *   ipc-core [--cella PATH] [--mib N] [--rtts N] [--repeat N]
 *
 * (defaults: 1024 MiB, 20000 round trips, 3 runs of each, alternately; the medians)
 *
 * Native: two host processes (fork), a pipe2() pipe and a memfd mapped by both.
 * Cella: two sandboxed apps under one `cella boot` (this same binary as their entry,
 * linked statically with libcella): app A makes the pipe (ipc.pipe_create, B
 * accepts the read end), two rings' shared memory (ipc.shm_create, offered
 * read-write to B, which opens them by name), and a control channel. Both runs do
 * the very same work, in the same functions:
 *
 *   pipe        A writes N MiB in 64 KiB writes into a pipe of 1 MiB capacity; B reads
 *               them (MiB/s, timed by B from its "go" to the last byte)
 *   ring        A writes N MiB as 4 KiB messages into a 1 MiB cella_ring; B reads
 *               them, sleeping in cella_ring_wait() when it is empty (MiB/s)
 *   ring-rtt    B sends a 64-byte message on ring 2, A answers on ring 1, R times
 *               (the median round trip, us); each side spins 20 us before it sleeps
 *
 * Output: one row per figure, "name native cella ratio", then "BENCH {json}". The
 * load average is printed too: the figures mean little on a busy machine.
 */
#include <cella.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PIPE_CAP   (1u << 20)
#define PIPE_CHUNK (64u * 1024u)
#define RING_CAP   (1u << 20)
#define RING_MSG   4096u
#define RTT_MSG    64u
#define SPIN_NS    20000u

#define A_ID "org.bench.ipc.a"
#define B_ID "org.bench.ipc.b"

typedef struct Link {
        int pipe_fd;            /* A: write end; B: read end */
        int ctl_fd;             /* a SEQPACKET socket between the two */
        uint8_t *ring1, *ring2; /* mapped RW, cella_ring_size(RING_CAP) bytes each */
} Link;

typedef struct Figures {
        double pipe_mibs, ring_mibs, rtt_us;
} Figures;

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

_Noreturn static void die(const char *what, int r)
{
        fprintf(stderr, "ipc-core: %s: %s\n", what, strerror(r < 0 ? -r : r));
        exit(1);
}

static void ctl_send(const Link *l, char c)
{
        if (send(l->ctl_fd, &c, 1, 0) != 1)
                die("control send", errno);
}

static char ctl_recv(const Link *l)
{
        char c;

        if (recv(l->ctl_fd, &c, 1, 0) != 1)
                die("control recv", errno ? errno : EPIPE);
        return c;
}

/* Reads a message, spinning SPIN_NS before sleeping in the futex. */
static int64_t ring_get(CellaRing *r, void *buf, size_t size)
{
        uint64_t t0 = 0;

        for (;;) {
                int64_t n = cella_ring_read(r, buf, size);

                if (n != -EAGAIN)
                        return n;
                if (!t0)
                        t0 = now_ns();
                else if (now_ns() - t0 > SPIN_NS) {
                        int e = cella_ring_wait(r, 0, 10000);

                        if (e < 0)
                                return e;
                        t0 = 0;
                }
        }
}

static int ring_put(CellaRing *r, const void *data, size_t len)
{
        uint64_t t0 = 0;

        for (;;) {
                int e = cella_ring_write(r, data, len);

                if (e != -EAGAIN)
                        return e;
                if (!t0)
                        t0 = now_ns();
                else if (now_ns() - t0 > SPIN_NS) {
                        e = cella_ring_wait(r, len, 10000);
                        if (e < 0)
                                return e;
                        t0 = 0;
                }
        }
}

/* A's side: answers B's phases. */
static void side_a(const Link *l, uint64_t bytes, unsigned rtts)
{
        static uint8_t buf[PIPE_CHUNK];
        CellaRing *out, *in;
        int r;

        memset(buf, 'p', sizeof buf);
        r = cella_ring_attach(l->ring1, cella_ring_size(RING_CAP), CELLA_RING_PRODUCER, &out);
        if (r == 0)
                r = cella_ring_attach(l->ring2, cella_ring_size(RING_CAP), CELLA_RING_CONSUMER,
                                      &in);
        if (r < 0)
                die("ring attach", r);
        /* pipe */
        ctl_recv(l);
        for (uint64_t done = 0; done < bytes;) {
                ssize_t n = write(l->pipe_fd, buf, sizeof buf);

                if (n < 0)
                        die("pipe write", errno);
                done += (uint64_t)n;
        }
        /* ring */
        ctl_recv(l);
        for (uint64_t done = 0; done < bytes; done += RING_MSG)
                if ((r = ring_put(out, buf, RING_MSG)) < 0)
                        die("ring write", r);
        /* ring-rtt: echo */
        ctl_recv(l);
        for (unsigned i = 0; i < rtts; i++) {
                int64_t n = ring_get(in, buf, sizeof buf);

                if (n < 0)
                        die("rtt read", (int)n);
                if ((r = ring_put(out, buf, (size_t)n)) < 0)
                        die("rtt write", r);
        }
        ctl_recv(l); /* B is done */
        cella_ring_free(out);
        cella_ring_free(in);
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

/* B's side: drives the phases and times them. */
static Figures side_b(const Link *l, uint64_t bytes, unsigned rtts)
{
        static uint8_t buf[PIPE_CHUNK];
        uint64_t t, *lat = calloc(rtts ? rtts : 1, sizeof *lat);
        CellaRing *in, *out;
        Figures f = {};
        int r;

        if (!lat)
                die("calloc", ENOMEM);
        r = cella_ring_attach(l->ring1, cella_ring_size(RING_CAP), CELLA_RING_CONSUMER, &in);
        if (r == 0)
                r = cella_ring_attach(l->ring2, cella_ring_size(RING_CAP), CELLA_RING_PRODUCER,
                                      &out);
        if (r < 0)
                die("ring attach", r);
        t = now_ns();
        ctl_send(l, 'p');
        for (uint64_t done = 0; done < bytes;) {
                ssize_t n = read(l->pipe_fd, buf, sizeof buf);

                if (n <= 0)
                        die("pipe read", n < 0 ? errno : EPIPE);
                done += (uint64_t)n;
        }
        f.pipe_mibs = (double)bytes / (1 << 20) / ((double)(now_ns() - t) / 1e9);

        t = now_ns();
        ctl_send(l, 'r');
        for (uint64_t done = 0; done < bytes;) {
                int64_t n = ring_get(in, buf, sizeof buf);

                if (n != RING_MSG)
                        die("ring read", n < 0 ? (int)n : EPROTO);
                done += (uint64_t)n;
        }
        f.ring_mibs = (double)bytes / (1 << 20) / ((double)(now_ns() - t) / 1e9);

        ctl_send(l, 't');
        memset(buf, 't', RTT_MSG);
        for (unsigned i = 0; i < rtts; i++) {
                uint64_t t0 = now_ns();
                int64_t n;

                if ((r = ring_put(out, buf, RTT_MSG)) < 0)
                        die("rtt write", r);
                n = ring_get(in, buf, sizeof buf);
                if (n != RTT_MSG)
                        die("rtt read", n < 0 ? (int)n : EPROTO);
                lat[i] = now_ns() - t0;
        }
        qsort(lat, rtts, sizeof *lat, cmp_u64);
        f.rtt_us = rtts ? (double)lat[rtts / 2] / 1000.0 : 0;
        ctl_send(l, 'd');
        free(lat);
        cella_ring_free(in);
        cella_ring_free(out);
        return f;
}

static uint8_t *map_ring(int fd, bool init)
{
        uint64_t size = cella_ring_size(RING_CAP);
        uint8_t *p = cella_shm_map(fd, size, CELLA_IPC_READ | CELLA_IPC_WRITE);

        if (!p)
                die("mmap", errno);
        if (init && cella_ring_init(p, size, RING_CAP) < 0)
                die("ring init", EINVAL);
        return p;
}

/* ---- native ------------------------------------------------------------------------- */

static Figures native(uint64_t bytes, unsigned rtts)
{
        int p[2], s[2], m1, m2, status, r;
        Figures f;
        Link l;
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s))
                die("pipe", errno);
        if (fcntl(p[0], F_SETPIPE_SZ, PIPE_CAP) < 0)
                die("F_SETPIPE_SZ", errno);
        if ((r = cella_shm_make(cella_ring_size(RING_CAP), &m1)) < 0 ||
            (r = cella_shm_make(cella_ring_size(RING_CAP), &m2)) < 0)
                die("memfd", r);
        l.ring1 = map_ring(m1, true);
        l.ring2 = map_ring(m2, true);
        pid = fork();
        if (pid < 0)
                die("fork", errno);
        if (pid == 0) {
                l.pipe_fd = p[1];
                l.ctl_fd = s[1];
                side_a(&l, bytes, rtts);
                _exit(0);
        }
        l.pipe_fd = p[0];
        l.ctl_fd = s[0];
        f = side_b(&l, bytes, rtts);
        waitpid(pid, &status, 0);
        return f;
}

/* ---- inside cella: the two apps ------------------------------------------------------- */

static Cella *c;
static uint64_t tokens[2]; /* the pipe's, the control channel's */

static void on_event(Cella *cc, const CellaEvent *ev, void *ud)
{
        size_t n;

        if (!ev->decoded || ev->opcode != CELLA_EVENT_IPC_OFFERED)
                return;
        n = strlen(ev->ipc_offered.name);
        if (n > 5 && strcmp(ev->ipc_offered.name + n - 5, ".pipe") == 0)
                tokens[0] = ev->ipc_offered.token;
        else if (n > 4 && strcmp(ev->ipc_offered.name + n - 4, ".ctl") == 0)
                tokens[1] = ev->ipc_offered.token;
}

/* Waits for offer which (0: the pipe, 1: the control channel) and accepts it: its fd. */
static int accept_next(unsigned which)
{
        CellaIpcHandle h;
        int fd, r;

        while (!tokens[which]) {
                r = cella_wait(c, 30000);
                if (r == 0)
                        die("no offer within 30 s", ETIMEDOUT);
                if (r > 0)
                        r = cella_dispatch(c);
                if (r < 0 && r != -EINTR)
                        die("wait for an offer", r);
        }
        r = cella_ipc_accept(c, tokens[which], &h, &fd);
        if (r < 0)
                die("accept", r);
        return fd;
}

static int app_a(uint64_t bytes, unsigned rtts)
{
        CellaIpcOffer to_b = {.app = B_ID, .modes = CELLA_IPC_READ | CELLA_IPC_WRITE};
        int m1, m2, r;
        Link l;

        r = cella_pipe_create(c, A_ID ".pipe", CELLA_IPC_PIPE, CELLA_IPC_WRITE, B_ID, PIPE_CAP, 0,
                              NULL, &l.pipe_fd);
        if (r < 0)
                die("pipe_create", r);
        if ((r = cella_shm_create(c, A_ID ".ring1", cella_ring_size(RING_CAP), &to_b, 1, NULL,
                                  &m1)) < 0 ||
            (r = cella_shm_create(c, A_ID ".ring2", cella_ring_size(RING_CAP), &to_b, 1, NULL,
                                  &m2)) < 0)
                die("shm_create", r);
        l.ring1 = map_ring(m1, true);
        l.ring2 = map_ring(m2, true);
        /* The control channel last: B opens the rings once it has it. */
        r = cella_pipe_create(c, A_ID ".ctl", CELLA_IPC_CHANNEL, CELLA_IPC_READ | CELLA_IPC_WRITE,
                              B_ID, 0, 0, NULL, &l.ctl_fd);
        if (r < 0)
                die("channel", r);
        side_a(&l, bytes, rtts);
        return 0;
}

static int app_b(uint64_t bytes, unsigned rtts)
{
        CellaIpcHandle h;
        Figures f;
        int m1, m2, r;
        Link l;

        l.pipe_fd = accept_next(0);
        l.ctl_fd = accept_next(1);
        if ((r = cella_shm_open(c, A_ID ".ring1", CELLA_IPC_READ | CELLA_IPC_WRITE, &h, &m1)) < 0 ||
            (r = cella_shm_open(c, A_ID ".ring2", CELLA_IPC_READ | CELLA_IPC_WRITE, &h, &m2)) < 0)
                die("shm_open", r);
        l.ring1 = map_ring(m1, false);
        l.ring2 = map_ring(m2, false);
        f = side_b(&l, bytes, rtts);
        printf("RESULT %.1f %.1f %.2f\n", f.pipe_mibs, f.ring_mibs, f.rtt_us);
        return 0;
}

/* ---- the driver ------------------------------------------------------------------------ */

static void write_file(const char *path, const char *text, mode_t mode)
{
        FILE *fp = fopen(path, "w");

        if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0)
                die(path, errno);
        chmod(path, mode);
}

static void make_app(const char *root, const char *self, const char *id, const char *role,
                     uint64_t mib, unsigned rtts, const char *perms, const char *extra)
{
        char dir[512], path[600], cmd[1400], json[2048];

        snprintf(dir, sizeof dir, "%s/%s", root, role);
        if (mkdir(dir, 0755) < 0)
                die(dir, errno);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s/ipc-core'", self, dir);
        if (system(cmd) != 0)
                die("cp", EIO);
        snprintf(json, sizeof json,
                 "{\"id\":\"%s\",\"runtime\":\"native\",\"entry\":\"ipc-core\",\"kind\":\"app\","
                 "\"restart\":\"no\",\"args\":[\"--app\",\"%s\",\"--mib\",\"%" PRIu64
                 "\",\"--rtts\",\"%u\"],\"permissions\":[%s]%s}",
                 id, role, mib, rtts, perms, extra);
        snprintf(path, sizeof path, "%s/manifest.json", dir);
        write_file(path, json, 0644);
}

static Figures through_cella(const char *cella, const char *self, uint64_t mib, unsigned rtts)
{
        char root[] = "/tmp/cella-bench-ipc-XXXXXX", apps[300], state[300], cmd[2048], log[400],
             line[256];
        Figures f = {};
        FILE *fp;

        if (!mkdtemp(root))
                die("mkdtemp", errno);
        chmod(root, 0755);
        snprintf(apps, sizeof apps, "%s/apps", root);
        snprintf(state, sizeof state, "%s/state", root);
        mkdir(apps, 0755);
        mkdir(state, 0711);
        /* Every app the default CPU weight, as the two native processes have: a
         * boot's apps are "background" (weight 11), which on a busy machine would
         * measure the scheduler's policy, not the ipc. */
        snprintf(cmd, sizeof cmd, "%s/cellad.conf", state);
        write_file(cmd, "{\"cpu\": {\"weights\": false}}\n", 0644);
        make_app(apps, self, A_ID, "a", mib, rtts,
                 "\"ipc.pipe:" A_ID ".*\",\"ipc.shm:" A_ID ".*\",\"bus.send:" B_ID "\"",
                 ",\"depends\":[\"" B_ID "\"],\"exports\":[\"ipc.pipe:" A_ID ".pipe\","
                 "\"ipc.pipe:" A_ID ".ctl\",\"ipc.shm:" A_ID ".ring1\",\"ipc.shm:" A_ID
                 ".ring2\"]");
        make_app(apps, self, B_ID, "b", mib, rtts,
                 "\"ipc.pipe:" A_ID ".pipe\",\"ipc.pipe:" A_ID ".ctl\",\"ipc.shm:" A_ID
                 ".ring1\",\"ipc.shm:" A_ID ".ring2\"",
                 ",\"exports\":[\"bus.send\"]");
        snprintf(cmd, sizeof cmd, "'%s' boot --state-dir '%s' --no-prompt '%s' >'%s/boot.out' 2>&1",
                 cella, state, apps, root);
        if (system(cmd) != 0) {
                fprintf(stderr, "ipc-core: cella boot failed; see %s/boot.out and %s/logs\n", root,
                        state);
                exit(1);
        }
        snprintf(log, sizeof log, "%s/logs/" B_ID ".log", state);
        fp = fopen(log, "r");
        while (fp && fgets(line, sizeof line, fp))
                if (sscanf(line, "RESULT %lf %lf %lf", &f.pipe_mibs, &f.ring_mibs, &f.rtt_us) == 3)
                        break;
        if (fp)
                fclose(fp);
        if (f.pipe_mibs == 0) {
                fprintf(stderr, "ipc-core: no result in %s\n", log);
                exit(1);
        }
        /* The boot leaves its apps' /data mounts (as the tests' _unmount_data fixture
         * knows): detach them before removing the folder. */
        snprintf(cmd, sizeof cmd,
                 "awk '$5 ~ \"^%s/\" {print $5}' /proc/self/mountinfo | sort -r | "
                 "xargs -r -n1 umount -l; rm -rf '%s'",
                 root, root);
        (void)system(cmd);
        return f;
}

int main(int argc, char **argv)
{
        const char *cella = getenv("CELLA_BIN"), *role = NULL;
        uint64_t mib = 1024;
        unsigned rtts = 20000, repeats = 3;
        double load[3] = {};
        char self[4096];
        ssize_t n;
        Figures nat, cel;
        FILE *fp;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--cella") == 0 && i + 1 < argc)
                        cella = argv[++i];
                else if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
                        mib = strtoull(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--rtts") == 0 && i + 1 < argc)
                        rtts = (unsigned)strtoul(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
                        repeats = (unsigned)strtoul(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--app") == 0 && i + 1 < argc)
                        role = argv[++i];
                else {
                        fprintf(stderr, "usage: ipc-core [--cella PATH] [--mib N] [--rtts N] "
                                        "[--repeat N]\n");
                        return 2;
                }
        }
        if (mib == 0 || mib > 1 << 20 || repeats == 0 || repeats > 9) {
                fprintf(stderr, "ipc-core: --mib is 1..1048576, --repeat 1..9\n");
                return 2;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (role) {
                int r = cella_open(&c);

                if (r < 0)
                        die("cella_open", r);
                cella_on_event(c, on_event, NULL);
                return strcmp(role, "a") == 0 ? app_a(mib << 20, rtts) : app_b(mib << 20, rtts);
        }
        if (!cella) {
                fprintf(stderr, "ipc-core: give --cella PATH (or CELLA_BIN)\n");
                return 2;
        }
        n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0)
                die("readlink", errno);
        self[n] = '\0';
        fp = fopen("/proc/loadavg", "r");
        if (fp) {
                if (fscanf(fp, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
                        load[0] = -1;
                fclose(fp);
        }
        /* Alternately, repeats times each; the median of each figure. */
        {
                Figures fn[9], fc[9];
                double v[9];

                for (unsigned i = 0; i < repeats; i++) {
                        fn[i] = native(mib << 20, rtts);
                        fc[i] = through_cella(cella, self, mib, rtts);
                }
#define MEDIAN(arr, field)                                                                         \
        ({                                                                                         \
                for (unsigned i = 0; i < repeats; i++)                                             \
                        v[i] = arr[i].field;                                                       \
                qsort(v, repeats, sizeof v[0], cmp_double);                                        \
                v[repeats / 2];                                                                    \
        })
                nat.pipe_mibs = MEDIAN(fn, pipe_mibs);
                nat.ring_mibs = MEDIAN(fn, ring_mibs);
                nat.rtt_us = MEDIAN(fn, rtt_us);
                cel.pipe_mibs = MEDIAN(fc, pipe_mibs);
                cel.ring_mibs = MEDIAN(fc, ring_mibs);
                cel.rtt_us = MEDIAN(fc, rtt_us);
#undef MEDIAN
        }
        printf("load average %.2f %.2f %.2f; %" PRIu64 " MiB each, %u round trips; median of %u "
               "runs\n",
               load[0], load[1], load[2], mib, rtts, repeats);
        printf("%-24s %12s %12s %8s\n", "figure", "native", "cella", "ratio");
        printf("%-24s %12.1f %12.1f %7.1f%%\n", "pipe MiB/s", nat.pipe_mibs, cel.pipe_mibs,
               100 * cel.pipe_mibs / nat.pipe_mibs);
        printf("%-24s %12.1f %12.1f %7.1f%%\n", "shm ring MiB/s", nat.ring_mibs, cel.ring_mibs,
               100 * cel.ring_mibs / nat.ring_mibs);
        printf("%-24s %12.2f %12.2f %7.1f%%\n", "ring round trip us", nat.rtt_us, cel.rtt_us,
               100 * nat.rtt_us / cel.rtt_us);
        printf("BENCH {\"pipe_mibs\":[%.1f,%.1f],\"ring_mibs\":[%.1f,%.1f],\"ring_rtt_us\":[%.2f,"
               "%.2f],\"load\":%.2f}\n",
               nat.pipe_mibs, cel.pipe_mibs, nat.ring_mibs, cel.ring_mibs, nat.rtt_us, cel.rtt_us,
               load[0]);
        return 0;
}
