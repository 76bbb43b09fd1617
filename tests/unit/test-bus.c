/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "ipc/bus.h"

static Bus *bus;

static void setup(void)
{
        ck_assert_int_eq(bus_new(&bus), 0);
}

static void teardown(void)
{
        bus = bus_free(bus);
}

static BusEndpoint *ep_add(const char *id, unsigned cap)
{
        BusEndpoint *ep = NULL;

        ck_assert_int_eq(bus_endpoint_add(bus, id, cap, &ep), 0);
        return ep;
}

static void sub(BusEndpoint *ep, const char *pattern)
{
        ck_assert_msg(bus_subscribe(bus, ep, pattern, NULL) == 0, "subscribe %s", pattern);
}

/* Pops one message and checks its topic, or that there is none (topic NULL). */
static void expect(BusEndpoint *ep, const char *topic)
{
        BusMessage *m = bus_endpoint_pop(ep);

        if (!topic) {
                ck_assert_msg(m == NULL, "%s got %s, expected nothing", bus_endpoint_app(ep),
                              m->topic);
                return;
        }
        ck_assert_msg(m != NULL, "%s got nothing, expected %s", bus_endpoint_app(ep), topic);
        ck_assert_str_eq(m->topic, topic);
        bus_message_unref(m);
}

START_TEST(test_fan_out_shares_one_copy)
{
        BusEndpoint *pub = ep_add("org.x.clock", 0), *a = ep_add("org.x.a", 0),
                    *b = ep_add("org.x.b", 0), *c = ep_add("org.x.c", 0);
        BusMessage *ma, *mb;

        sub(a, "clock.tick");
        sub(b, "clock.tick");
        ck_assert_int_eq(bus_publish(bus, pub, "clock.tick", "text/plain", "12:00", 5), 2);
        ma = bus_endpoint_pop(a);
        mb = bus_endpoint_pop(b);
        ck_assert_ptr_nonnull(ma);
        ck_assert_ptr_eq(ma, mb); /* the same stored message */
        ck_assert_uint_eq(ma->len, 5);
        ck_assert_int_eq(memcmp(ma->data, "12:00", 5), 0);
        ck_assert_str_eq(ma->sender, "org.x.clock");
        ck_assert_str_eq(ma->content_type, "text/plain");
        ck_assert(!ma->direct);
        bus_message_unref(ma);
        bus_message_unref(mb);
        expect(c, NULL);   /* not subscribed */
        expect(pub, NULL); /* nor is the publisher */
}
END_TEST

START_TEST(test_patterns)
{
        BusEndpoint *pub = ep_add("org.x.pub", 0), *one = ep_add("org.x.one", 0),
                    *any = ep_add("org.x.any", 0);

        sub(one, "notes.*");
        sub(any, "clock.**");
        ck_assert_int_eq(bus_publish(bus, pub, "notes.a", "", NULL, 0), 1);
        ck_assert_int_eq(bus_publish(bus, pub, "notes.a.b", "", NULL, 0), 0);
        ck_assert_int_eq(bus_publish(bus, pub, "notes", "", NULL, 0), 0);
        ck_assert_int_eq(bus_publish(bus, pub, "clock.a.b.c", "", NULL, 0), 1);
        ck_assert_int_eq(bus_publish(bus, pub, "clock", "", NULL, 0), 0);
        expect(one, "notes.a");
        expect(one, NULL);
        expect(any, "clock.a.b.c");
        expect(any, NULL);
}
END_TEST

START_TEST(test_one_copy_per_endpoint)
{
        BusEndpoint *pub = ep_add("org.x.pub", 0), *a = ep_add("org.x.a", 0);

        sub(a, "t.x");
        sub(a, "t.*");
        sub(a, "**");
        ck_assert_int_eq(bus_publish(bus, pub, "t.x", "", "1", 1), 1);
        expect(a, "t.x");
        expect(a, NULL);
        /* A second publish is a new message again. */
        ck_assert_int_eq(bus_publish(bus, pub, "t.x", "", "2", 1), 1);
        expect(a, "t.x");
}
END_TEST

START_TEST(test_slow_subscriber_drops_oldest)
{
        BusEndpoint *pub = ep_add("org.x.pub", 0), *slow = ep_add("org.x.slow", 4),
                    *fast = ep_add("org.x.fast", 4);
        BusStats st;
        char body[8];

        sub(slow, "tick");
        sub(fast, "tick");
        for (int i = 0; i < 10; i++) {
                BusMessage *m;

                snprintf(body, sizeof body, "%d", i);
                /* The publisher is never refused or blocked by a full queue. */
                ck_assert_int_eq(bus_publish(bus, pub, "tick", "", body, strlen(body)), 2);
                m = bus_endpoint_pop(fast);
                ck_assert_ptr_nonnull(m);
                ck_assert_int_eq(m->data[0], '0' + i);
                bus_message_unref(m);
        }
        bus_endpoint_stats(slow, &st);
        ck_assert_uint_eq(st.queued, 4);
        ck_assert_uint_eq(st.dropped, 6);
        /* What is left is the newest four, oldest first. */
        for (int i = 6; i < 10; i++) {
                BusMessage *m = bus_endpoint_pop(slow);

                ck_assert_int_eq(m->data[0], '0' + i);
                bus_message_unref(m);
        }
        bus_endpoint_stats(slow, &st);
        ck_assert_uint_eq(st.delivered, 4);
        bus_endpoint_stats(fast, &st);
        ck_assert_uint_eq(st.delivered, 10);
        ck_assert_uint_eq(st.dropped, 0);
}
END_TEST

/* A queue is bounded in bytes too: large messages from one publisher drop the
 * subscriber's oldest once BUS_QUEUE_BYTES_MAX is reached, whatever room is left in
 * messages; the newest are kept, and a message always fits an empty queue. */
START_TEST(test_queue_bounded_in_bytes)
{
        BusEndpoint *pub = ep_add("org.x.pub", 0), *slow = ep_add("org.x.slow", BUS_QUEUE_MAX);
        static unsigned char body[BUS_MESSAGE_MAX];
        BusStats st;
        unsigned kept;

        sub(slow, "big");
        for (unsigned i = 0; i < 100; i++) {
                body[0] = (unsigned char)i;
                ck_assert_int_eq(bus_publish(bus, pub, "big", "", body, sizeof body), 1);
                bus_endpoint_stats(slow, &st);
                ck_assert_uint_le(st.queued_bytes, BUS_QUEUE_BYTES_MAX);
        }
        bus_endpoint_stats(slow, &st);
        kept = (unsigned)st.queued;
        ck_assert_uint_ge(kept, BUS_QUEUE_BYTES_MAX / (BUS_MESSAGE_MAX + 1024));
        ck_assert_uint_lt(kept, BUS_QUEUE_BYTES_MAX / BUS_MESSAGE_MAX + 1);
        ck_assert_uint_eq(st.dropped, 100 - kept);
        for (unsigned i = 100 - kept; i < 100; i++) {
                BusMessage *m = bus_endpoint_pop(slow);

                ck_assert_ptr_nonnull(m);
                ck_assert_uint_eq(m->data[0], i);
                bus_message_unref(m);
        }
        bus_endpoint_stats(slow, &st);
        ck_assert_uint_eq(st.queued, 0);
        ck_assert_uint_eq(st.queued_bytes, 0);
}
END_TEST

START_TEST(test_unsubscribe)
{
        BusEndpoint *pub = ep_add("org.x.pub", 0), *a = ep_add("org.x.a", 0);
        uint64_t exact = 0, pattern = 0;

        ck_assert_int_eq(bus_subscribe(bus, a, "x.y", &exact), 0);
        ck_assert_int_eq(bus_subscribe(bus, a, "x.*", &pattern), 0);
        ck_assert_int_eq(bus_unsubscribe(bus, a, exact), 0);
        ck_assert_int_eq(bus_unsubscribe(bus, a, exact), -ENOENT);
        ck_assert_int_eq(bus_publish(bus, pub, "x.y", "", NULL, 0), 1); /* the pattern still */
        ck_assert_int_eq(bus_unsubscribe(bus, a, pattern), 0);
        ck_assert_int_eq(bus_publish(bus, pub, "x.y", "", NULL, 0), 0);
        expect(a, "x.y");
        expect(a, NULL);
}
END_TEST

START_TEST(test_direct_and_reply)
{
        BusEndpoint *asker = ep_add("org.x.asker", 0), *server = ep_add("org.x.server", 0);
        BusMessage *req, *rep;
        uint64_t id = 0;

        ck_assert_int_eq(bus_send(bus, asker, "org.x.server", 0, "application/json", "{}", 2, &id),
                         0);
        ck_assert_uint_gt(id, 0);
        req = bus_endpoint_pop(server);
        ck_assert(req->direct);
        ck_assert_str_eq(req->sender, "org.x.asker");
        ck_assert_uint_eq(req->id, id);
        ck_assert_int_eq(
                bus_send(bus, server, req->sender, req->id, "application/json", "[]", 2, NULL), 0);
        rep = bus_endpoint_pop(asker);
        ck_assert_uint_eq(rep->correlation, id);
        bus_message_unref(req);
        bus_message_unref(rep);
        ck_assert_int_eq(bus_send(bus, asker, "org.x.nobody", 0, "", NULL, 0, NULL), -ENOENT);
        ck_assert_int_eq(bus_send(bus, asker, "../x", 0, "", NULL, 0, NULL), -EINVAL);
}
END_TEST

START_TEST(test_bounds)
{
        BusEndpoint *pub = ep_add("org.x.pub", 0), *a = ep_add("org.x.a", 0), *e = NULL;
        char topic[BUS_TOPIC_MAX + 2];
        _cleanup_free_ char *body = calloc(1, BUS_MESSAGE_MAX + 1);
        static const char *const bad[] = {"",    "a..b", ".a",          "a.",
                                          "a.*", "a b",  "caf\xc3\xa9", "a/b"};

        /* 255 bytes: four 63-byte segments (the longest a segment may be) and three dots. */
        memset(topic, 'a', sizeof topic);
        topic[63] = topic[127] = topic[191] = '.';
        topic[BUS_TOPIC_MAX] = 0;
        ck_assert(bus_topic_is_valid(topic));
        sub(a, topic);
        ck_assert_int_eq(bus_publish(bus, pub, topic, "", NULL, 0), 1);
        topic[BUS_TOPIC_MAX] = 'a';
        topic[BUS_TOPIC_MAX + 1] = 0;
        ck_assert_int_eq(bus_publish(bus, pub, topic, "", NULL, 0), -EINVAL);
        ck_assert_int_eq(bus_subscribe(bus, a, topic, NULL), -EINVAL);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(bus_publish(bus, pub, bad[i], "", NULL, 0) == -EINVAL, "topic \"%s\"",
                              bad[i]);
        ck_assert_int_eq(bus_subscribe(bus, a, "a..b", NULL), -EINVAL);

        ck_assert_int_eq(bus_publish(bus, pub, "t", "", body, BUS_MESSAGE_MAX), 0);
        ck_assert_int_eq(bus_publish(bus, pub, "t", "", body, BUS_MESSAGE_MAX + 1), -EMSGSIZE);
        ck_assert_int_eq(bus_publish(bus, pub, "t", "text/\x01", NULL, 0), -EINVAL);
        ck_assert_int_eq(bus_publish(bus, pub, "t", "", NULL, 3), -EINVAL);

        /* Subscriptions per endpoint. */
        for (unsigned i = 1; i < BUS_SUBS_MAX; i++) {
                char t[32];

                snprintf(t, sizeof t, "s%u", i);
                sub(a, t);
        }
        ck_assert_int_eq(bus_subscribe(bus, a, "one.more", NULL), -ENOSPC);

        ck_assert_int_eq(bus_endpoint_add(bus, "org.x.a", 0, &e), -EEXIST);
        ck_assert_int_eq(bus_endpoint_add(bus, "org.x.big", BUS_QUEUE_MAX + 1, &e), -EINVAL);
        ck_assert_int_eq(bus_endpoint_add(bus, "not-an-id", 0, &e), -EINVAL);
        /* The message on the 255-byte topic published earlier is still queued. */
        topic[BUS_TOPIC_MAX] = 0;
        expect(a, topic);
}
END_TEST

START_TEST(test_many_exact_subscriptions_survive_growth)
{
        BusEndpoint *pub = ep_add("org.x.pub", 0), *eps[20];

        for (int e = 0; e < 20; e++) {
                char id[32];

                snprintf(id, sizeof id, "org.x.e%d", e);
                eps[e] = ep_add(id, 0);
                for (int t = 0; t < 50; t++) {
                        char topic[32];

                        snprintf(topic, sizeof topic, "t%d.e%d", t, e);
                        sub(eps[e], topic);
                }
        }
        /* 1000 exact subscriptions went through several rehashes: each still routes. */
        for (int e = 0; e < 20; e++)
                for (int t = 0; t < 50; t += 7) {
                        char topic[32];

                        snprintf(topic, sizeof topic, "t%d.e%d", t, e);
                        ck_assert_int_eq(bus_publish(bus, pub, topic, "", NULL, 0), 1);
                        expect(eps[e], topic);
                }
}
END_TEST

START_TEST(test_remove_endpoint)
{
        BusEndpoint *pub = ep_add("org.x.pub", 0), *a = ep_add("org.x.a", 0);

        sub(a, "x");
        sub(a, "y.*");
        ck_assert_int_eq(bus_publish(bus, pub, "x", "", "queued", 6), 1);
        /* Removing frees its queued message and subscriptions (ASan: no leak). */
        bus_endpoint_remove(bus, a);
        ck_assert_ptr_null(bus_endpoint_find(bus, "org.x.a"));
        ck_assert_int_eq(bus_publish(bus, pub, "x", "", NULL, 0), 0);
        ck_assert_int_eq(bus_publish(bus, pub, "y.z", "", NULL, 0), 0);
}
END_TEST

static void count_notify(BusEndpoint *ep, void *userdata)
{
        unsigned *n = userdata;

        ck_assert_ptr_nonnull(ep);
        (*n)++;
}

START_TEST(test_notify_once_per_empty_to_non_empty)
{
        BusEndpoint *pub = ep_add("org.x.pub", 0), *a = ep_add("org.x.a", 2);
        unsigned n = 0;
        BusMessage *m;

        bus_endpoint_set_notify(a, count_notify, &n);
        sub(a, "t");
        ck_assert_int_eq(bus_publish(bus, pub, "t", "", NULL, 0), 1);
        ck_assert_uint_eq(n, 1);
        /* Not empty: no new notification, also when the full queue drops the oldest. */
        ck_assert_int_eq(bus_publish(bus, pub, "t", "", NULL, 0), 1);
        ck_assert_int_eq(bus_publish(bus, pub, "t", "", NULL, 0), 1);
        ck_assert_int_eq(bus_send(bus, pub, "org.x.a", 0, "", NULL, 0, NULL), 0);
        ck_assert_uint_eq(n, 1);
        while ((m = bus_endpoint_pop(a)))
                bus_message_unref(m);
        /* Drained: the next message of any kind tells again. */
        ck_assert_int_eq(bus_send(bus, pub, "org.x.a", 0, "", NULL, 0, NULL), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(bus_request(bus, pub, "org.x.a", "m", "", NULL, 0, NULL), 0);
        ck_assert_uint_eq(n, 2);
        bus_endpoint_set_notify(a, NULL, NULL);
        while ((m = bus_endpoint_pop(a)))
                bus_message_unref(m);
        ck_assert_int_eq(bus_publish(bus, pub, "t", "", NULL, 0), 1);
        ck_assert_uint_eq(n, 2);
}
END_TEST

START_TEST(test_take_names_the_subscription)
{
        BusEndpoint *pub = ep_add("org.x.pub", 0), *a = ep_add("org.x.a", 0),
                    *b = ep_add("org.x.b", 0);
        uint64_t exact = 0, pattern = 0, other = 0, got = 99;
        BusMessage *m;

        ck_assert_int_eq(bus_subscribe(bus, a, "n.x", &exact), 0);
        ck_assert_int_eq(bus_subscribe(bus, a, "n.*", &pattern), 0);
        ck_assert_int_eq(bus_subscribe(bus, b, "n.*", &other), 0);
        ck_assert_uint_ne(pattern, other);
        ck_assert_int_eq(bus_publish(bus, pub, "n.x", "", NULL, 0), 2);
        ck_assert_int_eq(bus_publish(bus, pub, "n.y", "", NULL, 0), 2);
        ck_assert_int_eq(bus_send(bus, pub, "org.x.a", 0, "", NULL, 0, NULL), 0);
        /* One stored message, each endpoint with its own subscription id. */
        m = bus_endpoint_take(a, &got);
        ck_assert_uint_eq(got, exact); /* exact topics match first */
        bus_message_unref(m);
        m = bus_endpoint_take(a, &got);
        ck_assert_uint_eq(got, pattern);
        ck_assert_str_eq(m->topic, "n.y");
        bus_message_unref(m);
        m = bus_endpoint_take(a, &got);
        ck_assert(m->direct);
        ck_assert_uint_eq(got, 0);
        bus_message_unref(m);
        ck_assert_ptr_null(bus_endpoint_take(a, &got));
        m = bus_endpoint_take(b, &got);
        ck_assert_uint_eq(got, other);
        bus_message_unref(m);
}
END_TEST

START_TEST(test_request_carries_topic)
{
        BusEndpoint *asker = ep_add("org.x.asker", 0), *server = ep_add("org.x.server", 0);
        uint64_t id = 0, first = 0;
        BusMessage *m;

        ck_assert_int_eq(bus_send(bus, asker, "org.x.server", 0, "", NULL, 0, &first), 0);
        ck_assert_int_eq(
                bus_request(bus, asker, "org.x.server", "notes.get", "text/plain", "k", 1, &id), 0);
        ck_assert_uint_gt(id, first);
        m = bus_endpoint_pop(server);
        ck_assert(m->direct && !m->request);
        ck_assert_str_eq(m->topic, "");
        bus_message_unref(m);
        m = bus_endpoint_pop(server);
        ck_assert(m->direct && m->request);
        ck_assert_uint_eq(m->id, id);
        ck_assert_str_eq(m->topic, "notes.get");
        ck_assert_str_eq(m->sender, "org.x.asker");
        ck_assert_uint_eq(m->len, 1);
        bus_message_unref(m);
        ck_assert_int_eq(bus_request(bus, asker, "org.x.server", "a.*", "", NULL, 0, NULL),
                         -EINVAL);
        ck_assert_int_eq(bus_request(bus, asker, "org.x.server", "", "", NULL, 0, NULL), -EINVAL);
        ck_assert_int_eq(bus_request(bus, asker, "org.x.none", "m", "", NULL, 0, NULL), -ENOENT);
        ck_assert_int_eq(
                bus_request(bus, asker, "org.x.server", "m", "", NULL, BUS_MESSAGE_MAX + 1, NULL),
                -EINVAL);
        ck_assert_ptr_null(bus_endpoint_pop(server));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("bus");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_fan_out_shares_one_copy);
        tcase_add_test(tc, test_patterns);
        tcase_add_test(tc, test_one_copy_per_endpoint);
        tcase_add_test(tc, test_slow_subscriber_drops_oldest);
        tcase_add_test(tc, test_queue_bounded_in_bytes);
        tcase_add_test(tc, test_unsubscribe);
        tcase_add_test(tc, test_direct_and_reply);
        tcase_add_test(tc, test_bounds);
        tcase_add_test(tc, test_many_exact_subscriptions_survive_growth);
        tcase_add_test(tc, test_remove_endpoint);
        tcase_add_test(tc, test_notify_once_per_empty_to_non_empty);
        tcase_add_test(tc, test_take_names_the_subscription);
        tcase_add_test(tc, test_request_carries_topic);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
