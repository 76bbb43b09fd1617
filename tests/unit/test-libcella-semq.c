/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcella's semaphores and queues (src/lib/ipc-semq.c) where no kernel is needed:
 * cella_sem_* on an eventfd made here as the kernel makes it, and
 * cella_queue_batch_fit() against protobuf-c's own packed size. The calls through a
 * real kernel are tests/integration/test_ipc_semq.py's.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cella.h"
#include "cella.pb-c.h"

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static CellaSem sem_new(unsigned initial)
{
        CellaSem s = {.handle = 1};

        s.fd = eventfd(initial, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
        ck_assert_int_ge(s.fd, 0);
        return s;
}

START_TEST(test_sem_counts)
{
        CellaSem s = sem_new(2);

        ck_assert_int_eq(cella_sem_trywait(&s), 0);
        ck_assert_int_eq(cella_sem_wait(&s, 0), 0);
        ck_assert_int_eq(cella_sem_trywait(&s), -EAGAIN);
        ck_assert_int_eq(cella_sem_post(&s, 3), 0);
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(cella_sem_wait(&s, 1000), 0);
        ck_assert_int_eq(cella_sem_trywait(&s), -EAGAIN);
        ck_assert_int_eq(cella_sem_post(&s, 0), -EINVAL);
        close(s.fd);
}
END_TEST

START_TEST(test_sem_timeout)
{
        CellaSem s = sem_new(0);
        int64_t t0 = now_ms(), dt;

        ck_assert_int_eq(cella_sem_wait(&s, 150), -ETIMEDOUT);
        dt = now_ms() - t0;
        ck_assert_int_ge(dt, 150);
        ck_assert_int_lt(dt, 5000);
        close(s.fd);
}
END_TEST

/* A co-holder cleared O_NONBLOCK on the shared file: the wait still ends in time
 * (the check framework's timeout fails the test if it blocks). */
START_TEST(test_sem_wait_ignores_a_cleared_o_nonblock)
{
        CellaSem s = sem_new(0);
        int64_t t0;

        ck_assert_int_eq(fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) & ~O_NONBLOCK), 0);
        t0 = now_ms();
        ck_assert_int_eq(cella_sem_wait(&s, 100), -ETIMEDOUT);
        ck_assert_int_lt(now_ms() - t0, 5000);
        ck_assert_int_eq(cella_sem_trywait(&s), -EAGAIN);
        ck_assert_int_eq(cella_sem_post(&s, 1), 0);
        ck_assert_int_eq(cella_sem_wait(&s, 100), 0);
        close(s.fd);
}
END_TEST

START_TEST(test_sem_overflow_and_bad_fd)
{
        CellaSem s = sem_new(0), bad = {.handle = 1, .fd = -1};
        uint64_t v = UINT64_MAX - 1; /* eventfd's largest count, 2^64-2 */

        ck_assert_int_eq(write(s.fd, &v, sizeof(v)), (ssize_t)sizeof(v));
        ck_assert_int_eq(cella_sem_post(&s, 1), -EOVERFLOW);
        ck_assert_int_eq(cella_sem_trywait(&s), 0); /* one taken: room for one */
        ck_assert_int_eq(cella_sem_post(&s, 1), 0);
        ck_assert_int_eq(cella_sem_wait(&bad, 0), -EBADF);
        ck_assert_int_eq(cella_sem_post(&bad, 1), -EBADF);
        ck_assert_int_eq(cella_sem_wait(NULL, 0), -EBADF);
        close(s.fd);
}
END_TEST

/* The packed size of a send request of msgs[0..n) with the largest handle number. */
static size_t packed_size(const CellaQueueMessage *msgs, size_t n)
{
        Cella__V1__IpcQueueSendRequest req = CELLA__V1__IPC_QUEUE_SEND_REQUEST__INIT;
        Cella__V1__IpcQueueMessage *v = calloc(n ? n : 1, sizeof(*v));
        Cella__V1__IpcQueueMessage **p = calloc(n ? n : 1, sizeof(*p));
        size_t size;

        for (size_t i = 0; i < n; i++) {
                cella__v1__ipc_queue_message__init(&v[i]);
                v[i].data.data = (uint8_t *)msgs[i].data;
                v[i].data.len = msgs[i].len;
                v[i].priority = msgs[i].priority;
                p[i] = &v[i];
        }
        req.handle = UINT64_MAX;
        req.n_messages = n;
        req.messages = p;
        size = cella__v1__ipc_queue_send_request__get_packed_size(&req);
        free(v);
        free(p);
        return size;
}

/* cella_queue_batch_fit() never says more than fits, and never less than one more
 * would break (or the batch bound), over sizes around every varint step. */
START_TEST(test_batch_fit_is_exact)
{
        static const size_t lens[] = {0,   1,    63,    64,    100,   127,
                                      128, 1000, 16383, 16384, 30000, 65000};
        static char buf[65000];
        CellaQueueMessage *msgs = calloc(CELLA_QUEUE_BATCH_MAX + 8, sizeof(*msgs));
        unsigned seed = 12345;

        for (size_t round = 0; round < 200; round++) {
                size_t n = 1 + (size_t)(rand_r(&seed) % (CELLA_QUEUE_BATCH_MAX + 7)), k;

                for (size_t i = 0; i < n; i++)
                        msgs[i] = (CellaQueueMessage){
                                .data = buf,
                                .len = round % 3 == 0 ? lens[(size_t)rand_r(&seed) % 12]
                                                      : (size_t)rand_r(&seed) % 200,
                                .priority = (uint32_t)rand_r(&seed) % 32,
                        };
                k = cella_queue_batch_fit(msgs, n);
                ck_assert_uint_le(k, CELLA_QUEUE_BATCH_MAX);
                ck_assert_uint_ge(k, 1); /* one message always fits (65000 bytes max) */
                ck_assert_uint_le(packed_size(msgs, k), CELLA_BODY_MAX);
                if (k < n && k < CELLA_QUEUE_BATCH_MAX)
                        ck_assert_uint_gt(packed_size(msgs, k + 1), CELLA_BODY_MAX);
        }
        ck_assert_uint_eq(cella_queue_batch_fit(msgs, 0), 0);
        free(msgs);
}
END_TEST

/* Refusals made before anything is sent (no kernel: c is never used). */
START_TEST(test_queue_checks)
{
        CellaQueue q = {.handle = 1, .fd = -1, .modes = 3};
        CellaQueueMessage m = {.data = "x", .len = 1};
        CellaQueueBatch *b = NULL;

        ck_assert_int_eq(cella_queue_send(NULL, &q, &m, 0, NULL), -EINVAL);
        ck_assert_int_eq(cella_queue_send(NULL, &q, &m, CELLA_QUEUE_BATCH_MAX + 1, NULL), -EINVAL);
        m.priority = 32;
        ck_assert_int_eq(cella_queue_send(NULL, &q, &m, 1, NULL), -EINVAL);
        m.priority = 0;
        m.len = CELLA_QUEUE_MESSAGE_MAX + 1;
        ck_assert_int_eq(cella_queue_send(NULL, &q, &m, 1, NULL), -EMSGSIZE);
        m.data = NULL;
        m.len = 1;
        ck_assert_int_eq(cella_queue_send(NULL, &q, &m, 1, NULL), -EINVAL);
        ck_assert_int_eq(cella_queue_receive(NULL, &q, 0, 0, &b), -EINVAL);
        ck_assert_int_eq(cella_queue_receive(NULL, &q, CELLA_QUEUE_BATCH_MAX + 1, 0, &b), -EINVAL);
        ck_assert_int_eq(cella_queue_open(NULL, "org.x.q", 0, &q), -EINVAL);
        ck_assert_int_eq(cella_queue_open(NULL, "org.x.q", 4, &q), -EINVAL);
        ck_assert_int_eq(cella_queue_open(NULL, "", CELLA_IPC_READ, &q), -EINVAL);
        ck_assert_int_eq(cella_queue_create(NULL, "org.x.q", 0, 10, false, NULL, 0, &q), -EINVAL);
        ck_assert_int_eq(cella_queue_create(NULL, "org.x.q", 10, CELLA_QUEUE_MESSAGE_MAX + 1, false,
                                            NULL, 0, &q),
                         -EINVAL);
        {
                CellaIpcOffer both = {.app = "org.y", .topic = "org.t", .modes = 1},
                              none = {.modes = 1}, nomode = {.app = "org.y"};

                ck_assert_int_eq(cella_queue_create(NULL, "org.x.q", 1, 1, false, &both, 1, &q),
                                 -EINVAL);
                ck_assert_int_eq(cella_queue_create(NULL, "org.x.q", 1, 1, false, &none, 1, &q),
                                 -EINVAL);
                ck_assert_int_eq(cella_sem_create(NULL, "org.x.s", 0, &nomode, 1, NULL), -EINVAL);
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("libcella-semq");
        TCase *tc = tcase_create("semq");
        SRunner *sr;
        int failed;

        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_sem_counts);
        tcase_add_test(tc, test_sem_timeout);
        tcase_add_test(tc, test_sem_wait_ignores_a_cleared_o_nonblock);
        tcase_add_test(tc, test_sem_overflow_and_bad_fd);
        tcase_add_test(tc, test_batch_fit_is_exact);
        tcase_add_test(tc, test_queue_checks);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
