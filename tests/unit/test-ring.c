/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcella's ring buffer (src/lib/ring.c, docs/ipc.md "The ring"): messages in
 * order across the wrap, the bounds, two processes on a shared memfd with futex
 * wake-ups, and a hostile peer: every counter and length the peer can write is
 * tried, and the ring sits between PROT_NONE guard pages, so a read or write outside
 * it would crash the test instead of passing unnoticed.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cella.h"

#define CAP  4096u
#define PAGE 4096u
#define SIZE (CELLA_RING_HEADER + CAP)
#define HEAD 128u /* offsets of the counters in the header (src/lib/ring.c) */
#define TAIL 256u

/* A ring of SIZE bytes between two PROT_NONE pages. */
static uint8_t *guarded(void)
{
        uint8_t *p = mmap(NULL, SIZE + 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, 0);

        ck_assert_ptr_ne(p, MAP_FAILED);
        ck_assert_int_eq(mprotect(p, PAGE, PROT_NONE), 0);
        ck_assert_int_eq(mprotect(p + PAGE + SIZE, PAGE, PROT_NONE), 0);
        return p + PAGE;
}

static void unguard(uint8_t *mem)
{
        munmap(mem - PAGE, SIZE + 2 * PAGE);
}

static void set64(uint8_t *mem, size_t off, uint64_t v)
{
        memcpy(mem + off, &v, sizeof v);
}

START_TEST(test_ring_attach_checks)
{
        uint8_t *mem = guarded();
        CellaRing *r = NULL;

        ck_assert_uint_eq(cella_ring_size(CAP), SIZE);
        ck_assert_uint_eq(cella_ring_size(4095), 0);
        ck_assert_uint_eq(cella_ring_size(6000), 0); /* not a power of two */
        ck_assert_uint_eq(cella_ring_size(1ull << 31), 0);
        ck_assert_int_eq(cella_ring_init(mem, SIZE - 1, CAP), -EINVAL);
        ck_assert_int_eq(cella_ring_init(mem + 8, SIZE, CAP), -EINVAL); /* not page aligned */
        /* Not a ring yet. */
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_CONSUMER, &r), -EINVAL);
        ck_assert_int_eq(cella_ring_init(mem, SIZE, CAP), 0);
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, 3, &r), -EINVAL);
        /* A mapping smaller than the capacity the header claims. */
        ck_assert_int_eq(cella_ring_attach(mem, SIZE - 8, CELLA_RING_CONSUMER, &r), -EINVAL);
        /* A header whose capacity a peer made larger than the mapping, or odd. */
        set64(mem, 8, 1ull << 20);
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_CONSUMER, &r), -EINVAL);
        set64(mem, 8, CAP + 8);
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_CONSUMER, &r), -EINVAL);
        set64(mem, 8, CAP);
        /* Counters already apart by more than the capacity. */
        set64(mem, HEAD, 3 * CAP);
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_CONSUMER, &r), -EINVAL);
        set64(mem, HEAD, 0);
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_CONSUMER, &r), 0);
        ck_assert_uint_eq(cella_ring_message_max(r), CAP - 8);
        ck_assert_ptr_null(cella_ring_free(r));
        unguard(mem);
}
END_TEST

/* Messages of every size from 0 to the most, in order, across many wraps. */
START_TEST(test_ring_order_and_bounds)
{
        uint8_t *mem = guarded(), out[CAP], in[CAP];
        CellaRing *p, *c;
        unsigned seq = 0;

        ck_assert_int_eq(cella_ring_init(mem, SIZE, CAP), 0);
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_PRODUCER, &p), 0);
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_CONSUMER, &c), 0);
        ck_assert_int_eq(cella_ring_read(c, in, sizeof in), -EAGAIN);
        ck_assert_int_eq(cella_ring_read(p, in, sizeof in), -EINVAL); /* wrong role */
        ck_assert_int_eq(cella_ring_write(c, "x", 1), -EINVAL);
        ck_assert_int_eq(cella_ring_write(p, out, CAP - 7), -EMSGSIZE);
        /* The largest message fills the ring exactly. */
        memset(out, 0xab, sizeof out);
        ck_assert_int_eq(cella_ring_write(p, out, CAP - 8), 0);
        ck_assert_int_eq(cella_ring_write(p, out, 0), -EAGAIN);
        ck_assert_int_eq(cella_ring_read(c, in, 10), -EMSGSIZE); /* it stays */
        ck_assert_int_eq(cella_ring_read(c, in, sizeof in), CAP - 8);
        ck_assert_int_eq(memcmp(in, out, CAP - 8), 0);

        for (unsigned round = 0; round < 2000; round++) {
                size_t len = (round * 37u) % 1500u;
                int64_t n;

                for (size_t i = 0; i < len; i++)
                        out[i] = (uint8_t)(seq + i);
                while (cella_ring_write(p, out, len) == -EAGAIN) {
                        n = cella_ring_read(c, in, sizeof in);
                        if (n < 0)
                                ck_abort_msg("read: %" PRId64, n);
                }
                seq++;
                /* Read every other round, so the ring fills and wraps. */
                if (round % 2 == 0)
                        continue;
        }
        /* Drain: every message is whole. */
        for (;;) {
                int64_t n = cella_ring_read(c, in, sizeof in);

                if (n == -EAGAIN)
                        break;
                if (n < 0 || n >= 1500)
                        ck_abort_msg("drain: %" PRId64, n);
        }
        cella_ring_free(p);
        cella_ring_free(c);
        unguard(mem);
}
END_TEST

/* The exact content and order of a stream that wraps many times. */
START_TEST(test_ring_stream_content)
{
        uint8_t *mem = guarded(), out[1000], in[1000];
        CellaRing *p, *c;
        unsigned written = 0, read = 0;

        /* out is refilled for each message written and each one checked. */

        ck_assert_int_eq(cella_ring_init(mem, SIZE, CAP), 0);
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_PRODUCER, &p), 0);
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_CONSUMER, &c), 0);
        while (read < 5000) {
                while (written < 5000) {
                        size_t len = 1 + (written * 131u) % sizeof out;

                        for (size_t i = 0; i < len; i++)
                                out[i] = (uint8_t)(written * 7u + i);
                        if (cella_ring_write(p, out, len) == -EAGAIN)
                                break;
                        written++;
                }
                for (;;) {
                        int64_t n = cella_ring_read(c, in, sizeof in);
                        size_t want = 1 + (read * 131u) % sizeof out;

                        if (n == -EAGAIN)
                                break;
                        ck_assert_int_eq(n, (int64_t)want);
                        for (size_t i = 0; i < want; i++)
                                out[i] = (uint8_t)(read * 7u + i);
                        /* One assertion a message: Check records each one. */
                        ck_assert_int_eq(memcmp(in, out, want), 0);
                        read++;
                }
        }
        cella_ring_free(p);
        cella_ring_free(c);
        unguard(mem);
}
END_TEST

/* A hostile producer: heads behind, far ahead, past the capacity; lengths longer
 * than what was written. The consumer answers -EPROTO and touches nothing outside
 * the ring (the guard pages). */
START_TEST(test_ring_hostile_producer)
{
        static const uint64_t heads[] = {
                CAP + 1, CAP * 2, UINT64_MAX, UINT64_MAX - 7, 1ull << 63,
        };
        uint8_t *mem = guarded(), in[CAP];
        CellaRing *c;
        uint32_t len;

        ck_assert_int_eq(cella_ring_init(mem, SIZE, CAP), 0);
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_CONSUMER, &c), 0);
        for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
                set64(mem, HEAD, heads[i]);
                ck_assert_int_eq(cella_ring_read(c, in, sizeof in), -EPROTO);
        }
        /* A head 16 bytes on, but a length that claims more. */
        set64(mem, HEAD, 16);
        len = 4000;
        memcpy(mem + CELLA_RING_HEADER, &len, 4);
        ck_assert_int_eq(cella_ring_read(c, in, sizeof in), -EPROTO);
        len = UINT32_MAX;
        memcpy(mem + CELLA_RING_HEADER, &len, 4);
        ck_assert_int_eq(cella_ring_read(c, in, sizeof in), -EPROTO);
        /* A length that fits: read, and never more than asked. */
        len = 8;
        memcpy(mem + CELLA_RING_HEADER, &len, 4);
        ck_assert_int_eq(cella_ring_read(c, in, sizeof in), 8);
        /* A head that went back: refused. */
        set64(mem, HEAD, 8);
        ck_assert_int_eq(cella_ring_read(c, in, sizeof in), -EPROTO);
        cella_ring_free(c);

        /* Random headers and data: no crash, every length returned fits the buffer. */
        unsigned bad = 0;

        srand(42);
        ck_assert_int_eq(cella_ring_init(mem, SIZE, CAP), 0);
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_CONSUMER, &c), 0);
        for (unsigned i = 0; i < 100000; i++) {
                uint64_t h = ((uint64_t)rand() << 32) ^ (uint64_t)rand();
                int64_t n;

                if (i % 3)
                        h %= 2 * CAP;
                set64(mem, HEAD, h);
                for (unsigned j = 0; j < 8; j++)
                        mem[CELLA_RING_HEADER + (unsigned)rand() % CAP] = (uint8_t)rand();
                n = cella_ring_read(c, in, 100);
                if (!(n == -EAGAIN || n == -EPROTO || n == -EMSGSIZE || (n >= 0 && n <= 100)))
                        bad++;
        }
        ck_assert_uint_eq(bad, 0); /* one assertion for the loop: Check records each */
        cella_ring_free(c);
        unguard(mem);
}
END_TEST

/* A hostile consumer: tails past the head, behind what it read, anywhere. The
 * producer answers -EPROTO and never overwrites what the consumer has not read. */
START_TEST(test_ring_hostile_consumer)
{
        static const uint64_t tails[] = {5000, UINT64_MAX, 1ull << 63, CAP * 3};
        uint8_t *mem = guarded(), out[100] = {};
        CellaRing *p;

        ck_assert_int_eq(cella_ring_init(mem, SIZE, CAP), 0);
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_PRODUCER, &p), 0);
        /* Fill it: 36 messages of 100 bytes (108 with the header and padding = 112). */
        while (cella_ring_write(p, out, sizeof out) == 0)
                ;
        for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
                set64(mem, TAIL, tails[i]);
                ck_assert_int_eq(cella_ring_write(p, out, sizeof out), -EPROTO);
        }
        /* A fair tail frees room again. */
        set64(mem, TAIL, 112);
        ck_assert_int_eq(cella_ring_write(p, out, sizeof out), 0);
        unsigned bad = 0;

        srand(7);
        for (unsigned i = 0; i < 100000; i++) {
                int r;

                set64(mem, TAIL, ((uint64_t)rand() << 32) ^ (uint64_t)rand());
                r = cella_ring_write(p, out, (size_t)rand() % sizeof out);
                if (!(r == 0 || r == -EAGAIN || r == -EPROTO))
                        bad++;
        }
        ck_assert_uint_eq(bad, 0);
        cella_ring_free(p);
        unguard(mem);
}
END_TEST

/* Two processes on one memfd: 200,000 messages in order, the consumer sleeping
 * in the futex when the ring is empty and the producer when it is full. */
START_TEST(test_ring_two_processes)
{
        int fd;
        uint8_t *mem;
        CellaRing *c;
        pid_t pid;
        int status;
        uint64_t expect = 0;

        ck_assert_int_eq(cella_shm_make(SIZE, &fd), 0);
        mem = cella_shm_map(fd, SIZE, CELLA_IPC_READ | CELLA_IPC_WRITE);
        ck_assert_ptr_nonnull(mem);
        ck_assert_int_eq(cella_ring_init(mem, SIZE, CAP), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                CellaRing *p;
                uint8_t *m2 = cella_shm_map(fd, SIZE, CELLA_IPC_READ | CELLA_IPC_WRITE);

                if (!m2 || cella_ring_attach(m2, SIZE, CELLA_RING_PRODUCER, &p) < 0)
                        _exit(2);
                for (uint64_t i = 0; i < 200000; i++) {
                        int r;

                        while ((r = cella_ring_write(p, &i, sizeof i)) == -EAGAIN)
                                if (cella_ring_wait(p, sizeof i, 5000) < 0)
                                        _exit(3);
                        if (r < 0)
                                _exit(4);
                }
                _exit(0);
        }
        ck_assert_int_eq(cella_ring_attach(mem, SIZE, CELLA_RING_CONSUMER, &c), 0);
        while (expect < 200000) {
                uint64_t v;
                int64_t n = cella_ring_read(c, &v, sizeof v);

                if (n == -EAGAIN) {
                        ck_assert_int_eq(cella_ring_wait(c, 0, 5000), 0);
                        continue;
                }
                if (n != sizeof v || v != expect)
                        ck_abort_msg("message %" PRIu64 ": got %" PRId64 " bytes, value %" PRIu64,
                                     expect, n, v);
                expect++;
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        /* Nothing more comes: the wait times out. */
        ck_assert_int_eq(cella_ring_wait(c, 0, 20), -ETIMEDOUT);
        cella_ring_free(c);
        munmap(mem, SIZE);
        close(fd);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("ring");
        TCase *tc = tcase_create("ring");
        SRunner *sr;
        int failed;

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_ring_attach_checks);
        tcase_add_test(tc, test_ring_order_and_bounds);
        tcase_add_test(tc, test_ring_stream_content);
        tcase_add_test(tc, test_ring_hostile_producer);
        tcase_add_test(tc, test_ring_hostile_consumer);
        tcase_add_test(tc, test_ring_two_processes);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
