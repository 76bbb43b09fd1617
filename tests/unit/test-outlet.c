/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Outlets (src/supervisor/outlet.c): the loop never blocks on a reader that lags;
 * records are whole or dropped with a count reported once the reader catches up;
 * streams wait for room; a hold keeps everything back; the shared fd's flags are
 * left alone.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"
#include "supervisor/outlet.h"
#include "uv-wait.h"

#define CAP   (16u * 1024u)
#define SMALL 4096 /* the pipe's capacity (F_SETPIPE_SZ) */

static uv_loop_t loop;
static uv_timer_t alive; /* the outlets' handles do not keep a loop running */
static int rfd = -EBADF, wfd = -EBADF;
static Outlet *o;

static void on_alive(uv_timer_t *t)
{
}

static void setup(void)
{
        int p[2];

        signal(SIGPIPE, SIG_IGN);
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        ck_assert_int_eq(uv_timer_init(&loop, &alive), 0);
        ck_assert_int_eq(uv_timer_start(&alive, on_alive, 3600000, 0), 0);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        rfd = p[0];
        wfd = p[1];
        ck_assert_int_ge(fcntl(wfd, F_SETPIPE_SZ, SMALL), SMALL);
        ck_assert_int_eq(fcntl(rfd, F_SETFL, O_NONBLOCK), 0);
        o = NULL;
}

static void teardown(void)
{
        o = outlet_free(o);
        uv_close((uv_handle_t *)&alive, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
        rfd = safe_close(rfd);
        wfd = safe_close(wfd);
}

/* Reads what the pipe holds now (running the loop between reads) into buf, for
 * at most ms milliseconds or until want bytes came. Returns the bytes read. */
static size_t drain(char *buf, size_t size, size_t want, int ms)
{
        size_t n = 0;

        for (int64_t end = test_now_ms() + ms; n < want && test_now_ms() < end;) {
                ssize_t k;

                uv_run(&loop, UV_RUN_NOWAIT);
                while (n < size && (k = read(rfd, buf + n, size - n)) > 0)
                        n += (size_t)k;
                if (n < want)
                        uv_wait_event(&loop, rfd, 50);
        }
        return n;
}

/* The writer's description stays blocking: O_NONBLOCK would reach everyone who
 * shares it (outlet.h). */
START_TEST(test_shared_fd_left_alone)
{
        int master, slave;

        ck_assert_int_eq(outlet_new(&loop, wfd, false, CAP, CAP, &o), 0);
        ck_assert_int_eq(fcntl(wfd, F_GETFL) & O_NONBLOCK, 0);
        ck_assert(!outlet_is_terminal(o));
        o = outlet_free(o);

        ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, NULL), 0);
        ck_assert_int_eq(outlet_new(&loop, slave, false, CAP, CAP, &o), 0);
        ck_assert(outlet_is_terminal(o));
        ck_assert_int_eq(fcntl(slave, F_GETFL) & O_NONBLOCK, 0);
        ck_assert_int_eq(outlet_put_record(o, "hi\n", 3), 0);
        o = outlet_free(o);
        uv_run(&loop, UV_RUN_NOWAIT);
        close(master);
        close(slave);

        ck_assert_int_eq(outlet_new(&loop, rfd, false, CAP, CAP, &o), -EBADF);
}
END_TEST

/* A reader that stops: records past the buffer are dropped whole and counted;
 * when it reads again it gets every record kept, in order, then the count. */
START_TEST(test_records_dropped_and_reported)
{
        static char got[4 * CAP];
        char rec[1000];
        unsigned kept = 0, dropped = 0;
        size_t n;
        char *line, *save = NULL;

        ck_assert_int_eq(outlet_new(&loop, wfd, false, CAP, 0, &o), 0);
        outlet_set_drop_report(o, "{\"event\":\"dropped\",\"count\":", "}\n");
        for (unsigned i = 0; i < 60; i++) {
                int k = snprintf(rec, sizeof rec, "{\"n\":%u,\"pad\":\"%0900d\"}\n", i, 0);
                int r = outlet_put_record(o, rec, (size_t)k);

                ck_assert(r == 0 || r == -ENOBUFS);
                if (r == 0)
                        ck_assert_uint_eq(dropped, 0); /* kept records come first */
                kept += r == 0;
                dropped += r == -ENOBUFS;
        }
        /* the pipe (4 KiB) and the buffer (16 KiB) hold about 20 of 60 */
        ck_assert_uint_gt(dropped, 30);
        ck_assert_uint_eq(outlet_dropped_records(o), dropped);
        n = drain(got, sizeof got - 1, SIZE_MAX, 300);
        got[n] = 0;
        for (unsigned i = 0; (line = strtok_r(i ? NULL : got, "\n", &save)); i++) {
                if (i < kept) {
                        unsigned v;

                        ck_assert_int_eq(sscanf(line, "{\"n\":%u,", &v), 1);
                        ck_assert_uint_eq(v, i);
                        ck_assert_uint_eq(strlen(line), 916 + (i >= 10 ? 1 : 0));
                } else {
                        char want[64];

                        ck_assert_uint_eq(i, kept); /* one report line, last */
                        snprintf(want, sizeof want, "{\"event\":\"dropped\",\"count\":%u}",
                                 dropped);
                        ck_assert_str_eq(line, want);
                }
        }
        /* caught up: records go straight through again, and no second report */
        ck_assert_int_eq(outlet_put_record(o, "{\"n\":99}\n", 9), 0);
        n = drain(got, sizeof got - 1, 9, 300);
        got[n] = 0;
        ck_assert_str_eq(got, "{\"n\":99}\n");
}
END_TEST

static int woken;

static void on_ready(OutletWaiter *w)
{
        woken++;
}

/* A stream never loses a byte: it asks for room and waits for it. */
START_TEST(test_stream_waits_for_room)
{
        static char chunk[OUTLET_STREAM_MIN_ROOM], got[4 * CAP];
        OutletWaiter w = {.ready = on_ready};
        size_t put = 0, n;

        ck_assert_int_eq(outlet_new(&loop, wfd, false, CAP, CAP / 2, &o), 0);
        memset(chunk, 's', sizeof chunk);
        while (outlet_stream_room(o) >= sizeof chunk) {
                outlet_put_stream(o, chunk, sizeof chunk);
                put += sizeof chunk;
        }
        ck_assert_uint_ge(put, SMALL + CAP / 2 - OUTLET_STREAM_MIN_ROOM);
        woken = 0;
        outlet_wait(o, &w);
        outlet_wait(o, &w); /* queued once */
        uv_run(&loop, UV_RUN_NOWAIT);
        ck_assert_int_eq(woken, 0);
        /* records still fit in the part kept for them */
        ck_assert_int_eq(outlet_put_record(o, "R\n", 2), 0);
        n = drain(got, sizeof got, put + 2, 1000);
        ck_assert_uint_eq(n, put + 2);
        ck_assert_int_eq(woken, 1);
        ck_assert_int_eq(memcmp(got + put, "R\n", 2), 0);
        for (size_t i = 0; i < put; i++)
                ck_assert_int_eq(got[i], 's');
        ck_assert_uint_eq(outlet_dropped_bytes(o), 0);
}
END_TEST

/* While held nothing is written; released, all of it in order. */
START_TEST(test_hold_keeps_everything_back)
{
        char got[64];
        size_t n;

        ck_assert_int_eq(outlet_new(&loop, wfd, false, CAP, CAP, &o), 0);
        outlet_hold(o, true);
        ck_assert_int_eq(outlet_put_record(o, "one\n", 4), 0);
        outlet_put_stream(o, "two\n", 4);
        ck_assert_uint_eq(drain(got, sizeof got, 1, 50), 0);
        outlet_hold(o, false);
        n = drain(got, sizeof got - 1, 8, 300);
        got[n] = 0;
        ck_assert_str_eq(got, "one\ntwo\n");
}
END_TEST

/* The reader went away: everything is dropped, nothing blocks or raises SIGPIPE,
 * waiters are told so they drain their producers. */
START_TEST(test_reader_gone)
{
        OutletWaiter w = {.ready = on_ready};

        ck_assert_int_eq(outlet_new(&loop, wfd, false, CAP, CAP, &o), 0);
        rfd = safe_close(rfd);
        ck_assert_int_eq(outlet_put_record(o, "x\n", 2), 0); /* the write finds EPIPE */
        ck_assert_int_eq(outlet_put_record(o, "y\n", 2), -EPIPE);
        ck_assert_uint_gt(outlet_stream_room(o), CAP);
        woken = 0;
        outlet_wait(o, &w);
        outlet_put_stream(o, "z", 1);
        ck_assert_uint_ge(outlet_dropped_bytes(o), 1);
        ck_assert_int_eq(outlet_drain(o, 100), 0);
}
END_TEST

/* Abandoned: what waits is dropped at once, and drain does not wait for anyone. */
START_TEST(test_abandon_and_drain)
{
        static char chunk[CAP];
        struct timespec t0, t1;

        ck_assert_int_eq(outlet_new(&loop, wfd, false, CAP, CAP, &o), 0);
        memset(chunk, 'a', sizeof chunk);
        outlet_put_stream(o, chunk, outlet_stream_room(o));
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_int_eq(outlet_drain(o, 200), -ETIMEDOUT); /* nobody reads */
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert_int_ge((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 190);
        outlet_abandon(o);
        ck_assert_int_eq(outlet_put_record(o, "x\n", 2), -EPIPE);
        ck_assert_int_eq(outlet_drain(o, 1000), 0);
}
END_TEST

/* A socket observer: send(MSG_DONTWAIT), the peer's fd flags untouched. */
START_TEST(test_socket)
{
        int sv[2];
        char got[16];
        size_t n;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(outlet_new(&loop, sv[0], false, CAP, CAP, &o), 0);
        ck_assert_int_eq(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
        ck_assert_int_eq(outlet_put_record(o, "sock\n", 5), 0);
        n = (size_t)read(sv[1], got, sizeof got - 1);
        got[n] = 0;
        ck_assert_str_eq(got, "sock\n");
        o = outlet_free(o);
        close(sv[0]);
        close(sv[1]);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("outlet");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_shared_fd_left_alone);
        tcase_add_test(tc, test_records_dropped_and_reported);
        tcase_add_test(tc, test_stream_waits_for_room);
        tcase_add_test(tc, test_hold_keeps_everything_back);
        tcase_add_test(tc, test_reader_gone);
        tcase_add_test(tc, test_abandon_and_drain);
        tcase_add_test(tc, test_socket);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
