/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/ipc-semq-native: the floors of bench/ipc-semq, the same operations done
 * natively between two host processes (fork), no cella:
 *   futex    ping-pong through two futex words in a shared anonymous page (FUTEX_WAIT /
 *            FUTEX_WAKE, the wait as a glibc sem_wait would do it): us per round trip
 *   eventfd  ping-pong through two EFD_SEMAPHORE eventfds, poll + read as libcella's
 *            cella_sem_wait() does: us per round trip
 *   mq       POSIX message queue (mq_send / mq_receive, 10 messages deep, the
 *            default msg_max): messages per second, one message per call
 *   pipe     a pipe, one write(2) per message of the same size: messages per second
 * Prints one line "native KEY=VALUE ..." that bench/ipc-semq parses.
 * Usage: ipc-semq-native ROUNDS MESSAGES SIZE [CPU CPU]
 * With CPU CPU the ping-pongs' two ends are pinned to those CPUs (the same one, or
 * two: a wake-up across CPUs costs an IPI, which on a VM is most of the round trip).
 */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <mqueue.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* CPUs the two ends run on (-1: the scheduler decides). */
static int cpu_parent = -1, cpu_child = -1;

static void pin(int cpu)
{
        cpu_set_t set;

        if (cpu < 0)
                return;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) < 0) {
                fprintf(stderr, "ipc-semq-native: cannot pin to CPU %d: %s\n", cpu,
                        strerror(errno));
                exit(1);
        }
}

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
        fprintf(stderr, "ipc-semq-native: %s: %s\n", what, strerror(errno));
        exit(1);
}

/* A binary semaphore on a futex word: post sets 1 and wakes, wait takes the 1. */
static void fsem_post(atomic_int *w)
{
        atomic_store(w, 1);
        syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void fsem_wait(atomic_int *w)
{
        for (;;) {
                int one = 1;

                if (atomic_compare_exchange_strong(w, &one, 0))
                        return;
                syscall(SYS_futex, w, FUTEX_WAIT, 0, NULL, NULL, 0);
        }
}

static double futex_rt_us(long rounds)
{
        atomic_int *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        uint64_t t0;
        pid_t pid;

        if (w == MAP_FAILED)
                die("mmap");
        w[0] = w[1] = 0;
        pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                pin(cpu_child);
                for (long i = 0; i < rounds + 1; i++) {
                        fsem_wait(&w[0]);
                        fsem_post(&w[1]);
                }
                _exit(0);
        }
        fsem_post(&w[0]); /* warm-up round */
        fsem_wait(&w[1]);
        t0 = now_ns();
        for (long i = 0; i < rounds; i++) {
                fsem_post(&w[0]);
                fsem_wait(&w[1]);
        }
        t0 = now_ns() - t0;
        waitpid(pid, NULL, 0);
        munmap(w, 4096);
        return (double)t0 / 1000.0 / (double)rounds;
}

static void esem_wait(int fd)
{
        uint64_t v;

        while (read(fd, &v, sizeof(v)) != sizeof(v)) {
                struct pollfd p = {.fd = fd, .events = POLLIN};

                if (errno != EAGAIN)
                        die("read eventfd");
                poll(&p, 1, -1);
        }
}

static void esem_post(int fd)
{
        uint64_t v = 1;

        if (write(fd, &v, sizeof(v)) != sizeof(v))
                die("write eventfd");
}

static double eventfd_rt_us(long rounds)
{
        int a = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC),
            b = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
        uint64_t t0;
        pid_t pid;

        if (a < 0 || b < 0)
                die("eventfd");
        pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                pin(cpu_child);
                for (long i = 0; i < rounds + 1; i++) {
                        esem_wait(a);
                        esem_post(b);
                }
                _exit(0);
        }
        esem_post(a);
        esem_wait(b);
        t0 = now_ns();
        for (long i = 0; i < rounds; i++) {
                esem_post(a);
                esem_wait(b);
        }
        t0 = now_ns() - t0;
        waitpid(pid, NULL, 0);
        close(a);
        close(b);
        return (double)t0 / 1000.0 / (double)rounds;
}

static double mq_rate(long n, size_t size)
{
        struct mq_attr attr = {.mq_maxmsg = 10, .mq_msgsize = (long)size};
        char name[64], *buf = calloc(1, size);
        uint64_t t0;
        mqd_t q;
        pid_t pid;

        snprintf(name, sizeof(name), "/cella-bench-%d", getpid());
        q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
        if (q == (mqd_t)-1)
                die("mq_open");
        mq_unlink(name);
        pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                for (long i = 0; i < n; i++)
                        if (mq_send(q, buf, size, 0) < 0)
                                die("mq_send");
                _exit(0);
        }
        t0 = 0;
        for (long i = 0; i < n; i++) {
                if (mq_receive(q, buf, size, NULL) < 0)
                        die("mq_receive");
                if (i == 0)
                        t0 = now_ns();
        }
        t0 = now_ns() - t0;
        waitpid(pid, NULL, 0);
        mq_close(q);
        free(buf);
        return (double)(n - 1) * 1e9 / (double)t0;
}

static double pipe_rate(long n, size_t size)
{
        char *buf = calloc(1, size);
        int p[2];
        uint64_t t0;
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                die("pipe");
        pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                close(p[0]);
                for (long i = 0; i < n; i++)
                        if (write(p[1], buf, size) != (ssize_t)size)
                                die("write");
                _exit(0);
        }
        close(p[1]);
        t0 = 0;
        for (long i = 0; i < n; i++) {
                size_t got = 0;

                while (got < size) {
                        ssize_t k = read(p[0], buf + got, size - got);

                        if (k <= 0)
                                die("read");
                        got += (size_t)k;
                }
                if (i == 0)
                        t0 = now_ns();
        }
        t0 = now_ns() - t0;
        waitpid(pid, NULL, 0);
        close(p[0]);
        free(buf);
        return (double)(n - 1) * 1e9 / (double)t0;
}

int main(int argc, char **argv)
{
        long rounds, n;
        size_t size;

        if (argc != 4 && argc != 6) {
                fprintf(stderr, "usage: ipc-semq-native ROUNDS MESSAGES SIZE [CPU CPU]\n");
                return 2;
        }
        if (argc == 6) {
                cpu_parent = atoi(argv[4]);
                cpu_child = atoi(argv[5]);
                pin(cpu_parent);
        }
        rounds = atol(argv[1]);
        n = atol(argv[2]);
        size = (size_t)atol(argv[3]);
        if (rounds < 1 || n < 2 || size < 1 || size > 8192) {
                fprintf(stderr, "ipc-semq-native: ROUNDS >= 1, MESSAGES >= 2, SIZE 1..8192\n");
                return 2;
        }
        printf("native futex_rt_us=%.2f eventfd_rt_us=%.2f mq_msgs_s=%.0f pipe_msgs_s=%.0f\n",
               futex_rt_us(rounds), eventfd_rt_us(rounds), mq_rate(n, size), pipe_rate(n, size));
        return 0;
}
