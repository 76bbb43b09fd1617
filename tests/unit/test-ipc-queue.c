/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ipc queue (src/ipc/queue.c) and its SQLite store (src/ipc/queue-store.c). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/sqlite-util.h"
#include "ipc/queue-store.h"
#include "ipc/queue.h"

static QueueMsg *msg(uint32_t prio, const char *text)
{
        QueueMsg *m = queue_msg_new(prio, "org.example.sender", text, strlen(text));

        ck_assert_ptr_nonnull(m);
        return m;
}

static void pop_expect(Queue *q, uint32_t prio, const char *text, uint64_t seq)
{
        QueueMsg *m = queue_pop(q);

        ck_assert_ptr_nonnull(m);
        ck_assert_uint_eq(m->priority, prio);
        ck_assert_uint_eq(m->len, strlen(text));
        ck_assert_int_eq(memcmp(m->data, text, m->len), 0);
        ck_assert_str_eq(m->sender, "org.example.sender");
        if (seq)
                ck_assert_uint_eq(m->seq, seq);
        free(m);
}

START_TEST(test_priority_then_fifo)
{
        Queue q;

        ck_assert_int_eq(queue_init(&q, 100, 100), 0);
        queue_push(&q, msg(0, "low-1"));  /* seq 1 */
        queue_push(&q, msg(31, "top-1")); /* 2 */
        queue_push(&q, msg(5, "mid-1"));  /* 3 */
        queue_push(&q, msg(31, "top-2")); /* 4 */
        queue_push(&q, msg(0, "low-2"));  /* 5 */
        queue_push(&q, msg(5, "mid-2"));  /* 6 */
        ck_assert_uint_eq(q.depth, 6);
        ck_assert_uint_eq(q.bytes, 30);
        ck_assert_uint_eq(queue_peek(&q)->seq, 2);
        pop_expect(&q, 31, "top-1", 2);
        pop_expect(&q, 31, "top-2", 4);
        pop_expect(&q, 5, "mid-1", 3);
        pop_expect(&q, 5, "mid-2", 6);
        pop_expect(&q, 0, "low-1", 1);
        pop_expect(&q, 0, "low-2", 5);
        ck_assert_ptr_null(queue_pop(&q));
        ck_assert_ptr_null(queue_peek(&q));
        ck_assert_uint_eq(q.depth, 0);
        ck_assert_uint_eq(q.bytes, 0);
        ck_assert_uint_eq(q.busy, 0);
        /* sequence numbers go on, never reused */
        queue_push(&q, msg(1, "again"));
        pop_expect(&q, 1, "again", 7);
}
END_TEST

START_TEST(test_bounds)
{
        Queue q;
        QueueMsg *m;

        ck_assert_int_eq(queue_init(&q, 0, 10), -EINVAL);
        ck_assert_int_eq(queue_init(&q, QUEUE_DEPTH_LIMIT + 1, 10), -EINVAL);
        ck_assert_int_eq(queue_init(&q, 1, 0), -EINVAL);
        ck_assert_int_eq(queue_init(&q, 1, QUEUE_MESSAGE_MAX + 1), -EINVAL);
        ck_assert_int_eq(queue_init(&q, 3, 4), 0);
        ck_assert(queue_msg_fits(&q, 4));
        ck_assert(!queue_msg_fits(&q, 5));
        ck_assert_int_eq(queue_room(&q, 0), 0);
        ck_assert_int_eq(queue_room(&q, 3), 0);
        ck_assert_int_eq(queue_room(&q, 4), -EAGAIN);
        ck_assert_int_eq(queue_room(&q, SIZE_MAX), -EAGAIN);
        queue_push(&q, msg(0, "a"));
        queue_push(&q, msg(0, "b"));
        ck_assert_int_eq(queue_room(&q, 1), 0);
        ck_assert_int_eq(queue_room(&q, 2), -EAGAIN);
        queue_push(&q, msg(0, "c"));
        ck_assert_int_eq(queue_room(&q, 1), -EAGAIN);

        errno = 0;
        ck_assert_ptr_null(queue_msg_new(32, "x", "a", 1));
        ck_assert_int_eq(errno, EINVAL);
        ck_assert_ptr_null(queue_msg_new(0, "x", "a", QUEUE_MESSAGE_MAX + 1));
        ck_assert_ptr_null(queue_msg_new(0, "x", NULL, 1));
        {
                char big[QUEUE_SENDER_MAX + 2];

                memset(big, 'a', sizeof(big) - 1);
                big[sizeof(big) - 1] = '\0';
                ck_assert_ptr_null(queue_msg_new(0, big, "a", 1));
        }
        m = queue_msg_new(0, NULL, NULL, 0); /* empty message, no sender */
        ck_assert_ptr_nonnull(m);
        ck_assert_str_eq(m->sender, "");
        free(m);
        queue_clear(&q);
        ck_assert_uint_eq(q.depth, 0);
        ck_assert_ptr_null(queue_peek(&q));
}
END_TEST

START_TEST(test_restored_seq_and_move)
{
        Queue q, to;
        QueueMsg *m;

        ck_assert_int_eq(queue_init(&q, 10, 10), 0);
        m = msg(3, "old");
        m->seq = 41;
        queue_push(&q, m);
        ck_assert_uint_eq(q.next_seq, 42);
        queue_push(&q, msg(3, "new"));
        queue_move(&to, &q);
        ck_assert_uint_eq(q.depth, 0);
        ck_assert_ptr_null(queue_peek(&q));
        ck_assert_uint_eq(to.depth, 2);
        pop_expect(&to, 3, "old", 41);
        pop_expect(&to, 3, "new", 42);
}
END_TEST

/* A receive whose store write failed puts its messages back: same order after. */
START_TEST(test_push_front_restores)
{
        QueueMsg *taken[3];
        Queue q;

        ck_assert_int_eq(queue_init(&q, 10, 10), 0);
        queue_push(&q, msg(2, "a"));
        queue_push(&q, msg(7, "b"));
        queue_push(&q, msg(2, "c"));
        queue_push(&q, msg(0, "d"));
        for (int i = 0; i < 3; i++)
                taken[i] = queue_pop(&q);
        ck_assert_uint_eq(q.depth, 1);
        for (int i = 3; i-- > 0;)
                queue_push_front(&q, taken[i]);
        ck_assert_uint_eq(q.depth, 4);
        ck_assert_uint_eq(q.bytes, 4);
        pop_expect(&q, 7, "b", 2);
        pop_expect(&q, 2, "a", 1);
        pop_expect(&q, 2, "c", 3);
        pop_expect(&q, 0, "d", 4);
        /* into an emptied priority: tail set again */
        queue_push_front(&q, msg(4, "x"));
        queue_push(&q, msg(4, "y"));
        pop_expect(&q, 4, "x", 0);
        pop_expect(&q, 4, "y", 5);
}
END_TEST

/* Many messages over every priority: the order is (priority desc, seq asc). */
START_TEST(test_many)
{
        Queue q;
        uint32_t last_prio = QUEUE_PRIORITY_MAX;
        uint64_t last_seq = 0;
        unsigned n = 0;

        ck_assert_int_eq(queue_init(&q, 100000, 16), 0);
        for (unsigned i = 0; i < 100000; i++) {
                char b[16];

                snprintf(b, sizeof(b), "%u", i);
                queue_push(&q, queue_msg_new((i * 7919u) % 32u, "s", b, strlen(b)));
        }
        for (QueueMsg *m; (m = queue_pop(&q)); n++) {
                ck_assert_uint_le(m->priority, last_prio);
                if (m->priority == last_prio)
                        ck_assert_uint_gt(m->seq, last_seq);
                last_prio = m->priority;
                last_seq = m->seq;
                free(m);
        }
        ck_assert_uint_eq(n, 100000);
}
END_TEST

/* ---- the store ---------------------------------------------------------------- */

static char dir[] = "/tmp/test-ipc-queue-XXXXXX";
static char path[256];

static void store_setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(strcpy(dir, "/tmp/test-ipc-queue-XXXXXX")));
        snprintf(path, sizeof(path), "%s/" QUEUE_STORE_FILE, dir);
}

static void store_teardown(void)
{
        char cmd[300];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}

typedef struct Loaded {
        int n;
        char names[8][64];
        Queue q[8];
        int n_offers[8];
        char refused[8][64];
        char refused_why[8][QUEUE_STORE_WHY_MAX];
        int n_refused;
} Loaded;

static int on_load(const QueueStoreInfo *info, Queue *q, void *userdata)
{
        Loaded *l = userdata;

        ck_assert_int_lt(l->n, 8);
        snprintf(l->names[l->n], 64, "%s", info->name);
        l->n_offers[l->n] = (int)info->n_offers;
        queue_move(&l->q[l->n], q);
        l->n++;
        return 0;
}

static void on_refuse(const char *name, const char *why, void *userdata)
{
        Loaded *l = userdata;

        ck_assert_int_lt(l->n_refused, 8);
        snprintf(l->refused[l->n_refused], 64, "%s", name);
        snprintf(l->refused_why[l->n_refused], QUEUE_STORE_WHY_MAX, "%s", why);
        l->n_refused++;
}

static void loaded_free(Loaded *l)
{
        for (int i = 0; i < l->n; i++)
                queue_clear(&l->q[i]);
}

static int64_t store_queue(QueueStore *s, const char *name, uint32_t depth, uint32_t bytes)
{
        QueueStoreOffer offers[] = {
                {.app = "org.example.b", .topic = "", .modes = 1},
                {.app = "", .topic = "org.example.a.readers", .modes = 3},
        };
        int64_t id = 0;

        ck_assert_int_eq(queue_store_create(s,
                                            &(QueueStoreInfo){.name = name,
                                                              .owner = "org.example.a",
                                                              .depth_max = depth,
                                                              .message_bytes_max = bytes,
                                                              .offers = offers,
                                                              .n_offers = 2},
                                            &id),
                         0);
        ck_assert_int_gt(id, 0);
        return id;
}

START_TEST(test_store_reopen)
{
        char why[QUEUE_STORE_WHY_MAX] = "";
        QueueStore *s = NULL;
        QueueMsg *batch[3];
        Loaded l = {};
        uint64_t taken[1];
        Queue q;
        int64_t id, id2;
        struct stat st;

        ck_assert_int_eq(queue_store_open(path, &s, why), 0);
        {
                /* a second kernel on the same state directory does not get it */
                QueueStore *s2 = NULL;

                ck_assert_int_eq(queue_store_open(path, &s2, why), -EBUSY);
                ck_assert_ptr_null(s2);
                ck_assert_ptr_nonnull(strstr(why, "another cella kernel"));
        }
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 0777, 0600);
        id = store_queue(s, "org.example.a.jobs", 10, 100);
        id2 = store_queue(s, "org.example.a.empty", 5, 50);
        ck_assert_int_ne(id, id2);
        {
                int64_t dup;

                ck_assert_int_eq(queue_store_create(s,
                                                    &(QueueStoreInfo){.name = "org.example.a.jobs",
                                                                      .owner = "org.example.a",
                                                                      .depth_max = 1,
                                                                      .message_bytes_max = 1},
                                                    &dup),
                                 -EEXIST);
        }
        ck_assert_int_eq(queue_init(&q, 10, 100), 0);
        batch[0] = msg(1, "one");
        batch[1] = msg(9, "nine");
        batch[2] = msg(1, "two");
        for (int i = 0; i < 3; i++)
                batch[i]->seq = q.next_seq + (uint64_t)i;
        ck_assert_int_eq(queue_store_put(s, id, batch, 3, q.next_seq + 3), 0);
        for (int i = 0; i < 3; i++)
                queue_push(&q, batch[i]);
        /* receive the top one */
        taken[0] = queue_peek(&q)->seq;
        ck_assert_uint_eq(taken[0], 2);
        ck_assert_int_eq(queue_store_take(s, id, taken, 1), 0);
        free(queue_pop(&q));
        queue_clear(&q);
        queue_store_close(s);

        /* a new kernel */
        s = NULL;
        ck_assert_int_eq(queue_store_open(path, &s, why), 0);
        ck_assert_int_eq(queue_store_load(s, on_load, on_refuse, &l, why), 2);
        ck_assert_int_eq(l.n_refused, 0);
        ck_assert_str_eq(l.names[0], "org.example.a.jobs");
        ck_assert_int_eq(l.n_offers[0], 2);
        ck_assert_uint_eq(l.q[0].depth, 2);
        ck_assert_uint_eq(l.q[0].depth_max, 10);
        ck_assert_uint_eq(l.q[0].message_bytes_max, 100);
        ck_assert_uint_eq(l.q[0].next_seq, 4);
        pop_expect(&l.q[0], 1, "one", 1);
        pop_expect(&l.q[0], 1, "two", 3);
        ck_assert_str_eq(l.names[1], "org.example.a.empty");
        ck_assert_uint_eq(l.q[1].depth, 0);
        loaded_free(&l);

        /* dropped queues stay dropped */
        ck_assert_int_eq(queue_store_drop(s, id), 0);
        memset(&l, 0, sizeof(l));
        ck_assert_int_eq(queue_store_load(s, on_load, on_refuse, &l, why), 1);
        ck_assert_str_eq(l.names[0], "org.example.a.empty");
        loaded_free(&l);
        queue_store_close(s);
}
END_TEST

/* Rows a hostile or broken writer left: each refuses its queue, the others load. */
START_TEST(test_store_hostile_rows)
{
        char why[QUEUE_STORE_WHY_MAX] = "";
        QueueStore *s = NULL;
        sqlite3 *db = NULL;
        Loaded l = {};
        int64_t good, bad_prio, bad_len, bad_depth, bad_type;

        ck_assert_int_eq(queue_store_open(path, &s, why), 0);
        good = store_queue(s, "org.example.a.good", 10, 8);
        bad_prio = store_queue(s, "org.example.a.prio", 10, 8);
        bad_len = store_queue(s, "org.example.a.len", 10, 8);
        bad_depth = store_queue(s, "org.example.a.depth", 1, 8);
        bad_type = store_queue(s, "org.example.a.type", 10, 8);
        store_queue(s, "org.example.a.bounds", 10, 8);
        queue_store_close(s);

        ck_assert_int_eq(sqlite_open(path, 1000, &db), 0);
        char sql[1024];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO messages VALUES (%lld, 1, 3, 'org.x', x'41');"
                 "INSERT INTO messages VALUES (%lld, 1, 32, 'org.x', x'41');"
                 "INSERT INTO messages VALUES (%lld, 1, 0, 'org.x', x'414141414141414141');"
                 "INSERT INTO messages VALUES (%lld, 1, 0, 'org.x', x'41');"
                 "INSERT INTO messages VALUES (%lld, 2, 0, 'org.x', x'41');"
                 "INSERT INTO messages VALUES (%lld, 1, 'high', 'org.x', x'41');"
                 "UPDATE queues SET depth_max = -5 WHERE name = 'org.example.a.bounds';",
                 (long long)good, (long long)bad_prio, (long long)bad_len, (long long)bad_depth,
                 (long long)bad_depth, (long long)bad_type);
        ck_assert_int_eq(sqlite_exec(db, sql), 0);
        sqlite3_close(db);

        s = NULL;
        ck_assert_int_eq(queue_store_open(path, &s, why), 0);
        ck_assert_int_eq(queue_store_load(s, on_load, on_refuse, &l, why), 1);
        ck_assert_str_eq(l.names[0], "org.example.a.good");
        ck_assert_uint_eq(l.q[0].depth, 1);
        ck_assert_int_eq(l.n_refused, 5);
        ck_assert_str_eq(l.refused[0], "org.example.a.prio");
        ck_assert_str_eq(l.refused[1], "org.example.a.len");
        ck_assert_ptr_nonnull(strstr(l.refused_why[1], "over the queue's 8"));
        ck_assert_str_eq(l.refused[2], "org.example.a.depth");
        ck_assert_ptr_nonnull(strstr(l.refused_why[2], "depth_max"));
        ck_assert_str_eq(l.refused[3], "org.example.a.type");
        ck_assert_str_eq(l.refused[4], "org.example.a.bounds");
        loaded_free(&l);
        queue_store_close(s);
}
END_TEST

START_TEST(test_store_corrupt_file)
{
        char why[QUEUE_STORE_WHY_MAX] = "";
        QueueStore *s = NULL;
        int fd;

        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        for (int i = 0; i < 64; i++)
                ck_assert_int_eq(write(fd, "this is not a database at all!!!", 32), 32);
        close(fd);
        ck_assert_int_eq(queue_store_open(path, &s, why), -EIO);
        ck_assert_ptr_null(s);
        ck_assert_ptr_nonnull(strstr(why, path));
        ck_assert_ptr_nonnull(strstr(why, "not a database"));
        ck_assert_ptr_nonnull(strstr(why, "move the file away"));

        /* a symlink is never followed */
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(symlink("/etc/passwd", path), 0);
        ck_assert_int_eq(queue_store_open(path, &s, why), -ELOOP);
        ck_assert_ptr_nonnull(strstr(why, path));
}
END_TEST

START_TEST(test_store_newer_schema)
{
        char why[QUEUE_STORE_WHY_MAX] = "";
        QueueStore *s = NULL;
        sqlite3 *db = NULL;

        ck_assert_int_eq(sqlite_open(path, 1000, &db), 0);
        ck_assert_int_eq(sqlite_exec(db, "PRAGMA user_version = 99"), 0);
        sqlite3_close(db);
        ck_assert_int_eq(queue_store_open(path, &s, why), -EPROTONOSUPPORT);
        ck_assert_ptr_nonnull(strstr(why, "newer cella"));
        ck_assert_ptr_nonnull(strstr(why, "99"));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("ipc-queue");
        TCase *tc = tcase_create("queue"), *ts = tcase_create("store");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_priority_then_fifo);
        tcase_add_test(tc, test_bounds);
        tcase_add_test(tc, test_restored_seq_and_move);
        tcase_add_test(tc, test_push_front_restores);
        tcase_add_test(tc, test_many);
        suite_add_tcase(s, tc);
        tcase_add_checked_fixture(ts, store_setup, store_teardown);
        tcase_add_test(ts, test_store_reopen);
        tcase_add_test(ts, test_store_hostile_rows);
        tcase_add_test(ts, test_store_corrupt_file);
        tcase_add_test(ts, test_store_newer_schema);
        suite_add_tcase(s, ts);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
