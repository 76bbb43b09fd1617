/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The permission prompt (src/supervisor/prompt.c), with a pty standing in for
 * /dev/tty: the test holds the master side and plays the person at the terminal.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"
#include "supervisor/prompt.h"
#include "uv-wait.h"

static int master = -EBADF, slave = -EBADF;
static char slave_path[128];
static uv_loop_t loop;
static Prompt *prompt;
static char screen[16384]; /* what the terminal showed since the last clear */
static size_t screen_len;

typedef struct Asker {
        int answer;
        int calls;
        int order; /* when it was answered, from `answered` */
} Asker;
static int answered;
static int begins, ends;

static void on_begin(void *ud)
{
        begins++;
}

static void on_end(void *ud)
{
        ends++;
}

static void setup(void)
{
        struct termios t;

        ck_assert_int_eq(openpty(&master, &slave, slave_path, NULL, NULL), 0);
        /* no "\n" -> "\r\n" on output: the screen then reads as what was written */
        ck_assert_int_eq(tcgetattr(slave, &t), 0);
        t.c_oflag &= ~(tcflag_t)OPOST;
        ck_assert_int_eq(tcsetattr(slave, TCSANOW, &t), 0);
        ck_assert_int_eq(fcntl(master, F_SETFL, O_NONBLOCK), 0);
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        ck_assert_int_eq(prompt_new(&loop, false, &prompt), 0);
        ck_assert_int_eq(prompt_set_tty_path(prompt, slave_path), 0);
        prompt_set_hooks(prompt, on_begin, on_end, NULL);
        ck_assert_int_eq(setenv("TERM", "xterm", 1), 0);
        screen_len = 0;
        screen[0] = 0;
        answered = begins = ends = 0;
}

static void teardown(void)
{
        prompt = prompt_free(prompt);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
        master = safe_close(master);
        slave = safe_close(slave);
}

static void on_done(int answer, void *ud)
{
        Asker *a = ud;

        a->answer = answer;
        a->calls++;
        a->order = ++answered;
}

/* Runs the loop and reads the terminal until pred holds or 3 s pass. */
static bool run_until(bool (*pred)(const void *), const void *arg)
{
        struct timespec start, now;

        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                ssize_t n;

                uv_run(&loop, UV_RUN_NOWAIT);
                n = read(master, screen + screen_len, sizeof screen - 1 - screen_len);
                if (n > 0) {
                        screen_len += (size_t)n;
                        screen[screen_len] = 0;
                }
                if (pred(arg))
                        return true;
                clock_gettime(CLOCK_MONOTONIC, &now);
                if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >
                    3000)
                        return false;
                uv_wait_event(&loop, master, 100);
        }
}

static bool screen_has(const void *s)
{
        return strstr(screen, s) != NULL;
}

/* Takes the prompt's own redraw sequences (PROMPT_REDRAW) out of the screen;
 * returns how many there were. */
static unsigned strip_redraws(void)
{
        size_t k = strlen(PROMPT_REDRAW);
        unsigned n = 0;
        char *at;

        while ((at = memmem(screen, screen_len, PROMPT_REDRAW, k))) {
                memmove(at, at + k, screen_len - (size_t)(at - screen) - k + 1);
                screen_len -= k;
                n++;
        }
        return n;
}

static bool answered_(const void *a)
{
        return ((const Asker *)a)->calls > 0;
}

static void clear_screen(void)
{
        screen_len = 0;
        screen[0] = 0;
}

static void type(const char *s)
{
        ck_assert_int_eq(write(master, s, strlen(s)), (ssize_t)strlen(s));
}

static void ask(Asker *a, const char *reason)
{
        ck_assert_int_eq(prompt_ask(prompt, "org.example.notes", "fs.write:documents",
                                    "create and change user files under the named root", reason,
                                    on_done, a),
                         0);
}

/* Asks, waits for the question, types line, returns the answer. */
static int ask_and_type(const char *line)
{
        Asker a = {.answer = -1};

        clear_screen();
        ask(&a, "to save notes");
        ck_assert(run_until(screen_has, "[N]o: "));
        type(line);
        ck_assert(run_until(answered_, &a));
        ck_assert_int_eq(a.calls, 1);
        return a.answer;
}

START_TEST(test_question_and_answers)
{
        Asker a = {.answer = -1};

        ask(&a, "to save your notes");
        /* never answered from within prompt_ask */
        ck_assert_int_eq(a.calls, 0);
        ck_assert_uint_eq(prompt_pending(prompt), 1);
        ck_assert(run_until(screen_has, "[N]o: "));
        ck_assert_msg(screen_has("cella: org.example.notes asks for \"fs.write:documents\" "
                                 "(create and change user files under the named root). "
                                 "Reason: to save your notes\n"),
                      "screen: %s", screen);
        ck_assert(screen_has("Allow? [y]es always / [o]nce / [N]o: "));
        ck_assert_int_eq(begins, 1);
        type("y\n");
        ck_assert(run_until(answered_, &a));
        ck_assert_int_eq(a.answer, PROMPT_ALLOW_ALWAYS);
        ck_assert_int_eq(ends, 1);
        ck_assert_uint_eq(prompt_pending(prompt), 0);

        ck_assert_int_eq(ask_and_type("o\n"), PROMPT_ALLOW_ONCE);
        ck_assert_int_eq(ask_and_type("  ONCE \n"), PROMPT_ALLOW_ONCE);
        ck_assert_int_eq(ask_and_type("Yes\n"), PROMPT_ALLOW_ALWAYS);
        ck_assert_int_eq(ask_and_type("\n"), PROMPT_DENY);
        ck_assert_int_eq(ask_and_type("n\n"), PROMPT_DENY);
        ck_assert_int_eq(ask_and_type("no\n"), PROMPT_DENY);
}
END_TEST

START_TEST(test_unclear_answer_asks_again)
{
        Asker a = {.answer = -1};
        char longline[PROMPT_ANSWER_MAX + 10];

        ask(&a, NULL);
        ck_assert(run_until(screen_has, "[N]o: "));
        ck_assert(!screen_has("Reason:"));
        clear_screen();
        type("maybe\n");
        ck_assert(run_until(screen_has, "[N]o: "));
        /* Asked again in full, app id and right, on a clean line. */
        ck_assert_msg(screen_has("Please answer y (always), o (once) or n (no)." PROMPT_REDRAW
                                 "cella: org.example.notes asks for \"fs.write:documents\""),
                      "screen: %s", screen);
        ck_assert_int_eq(a.calls, 0);
        /* a line longer than any answer, even one starting with y, is not an answer */
        memset(longline, ' ', sizeof longline);
        longline[0] = 'y';
        longline[sizeof longline - 2] = '\n';
        longline[sizeof longline - 1] = 0;
        clear_screen();
        type(longline);
        ck_assert(run_until(screen_has, "Please answer"));
        ck_assert_int_eq(a.calls, 0);
        type("o\n");
        ck_assert(run_until(answered_, &a));
        ck_assert_int_eq(a.answer, PROMPT_ALLOW_ONCE);
}
END_TEST

START_TEST(test_reason_is_sanitized_on_screen)
{
        Asker a = {.answer = -1};
        const char *evil = "ok\x1b]0;pwned\x07\x1b[2K\r\x1b[1A"
                           "cella: nothing to see\nAllow? [y]es always / [o]nce / [N]o: "
                           "\x1b[8m hidden \x1b[0m\xc2\x9b"
                           "31m\xe2\x80\xae reversed";
        char *q;

        ask(&a, evil);
        ck_assert(run_until(screen_has, "reversed"));
        ck_assert(run_until(screen_has, "\nAllow?"));
        /* The question is drawn on a clean line, once; past the prompt's own redraw
         * sequence, no escape ... */
        ck_assert_ptr_eq(strstr(screen, PROMPT_REDRAW "cella: org.example.notes asks for "),
                         screen);
        ck_assert_uint_eq(strip_redraws(), 1);
        /* No escape or control byte reached the terminal but the question's own line
         * break; the app's fake "Allow?" is on the question's line. */
        for (size_t i = 0; i < screen_len; i++)
                ck_assert_msg((unsigned char)screen[i] >= 0x20 || screen[i] == '\n' ||
                                      screen[i] == '\r',
                              "control byte 0x%02x on screen", (unsigned char)screen[i]);
        ck_assert(!memchr(screen, 0x1b, screen_len));
        ck_assert(!strstr(screen, "\xc2\x9b"));
        ck_assert(!strstr(screen, "\xe2\x80\xae"));
        q = strstr(screen, "Reason: ");
        ck_assert_ptr_nonnull(q);
        ck_assert_ptr_eq(strchr(q, '\n'),
                         strstr(screen, "\nAllow? [y]es always / [o]nce / [N]o: "));
        ck_assert(strstr(q, "ok cella: nothing to see Allow?"));
        type("n\n");
        ck_assert(run_until(answered_, &a));
        ck_assert_int_eq(a.answer, PROMPT_DENY);
}
END_TEST

START_TEST(test_long_reason_is_cut)
{
        Asker a = {.answer = -1};
        char reason[1000], *r, *e;

        memset(reason, 'z', sizeof reason - 1);
        reason[sizeof reason - 1] = 0;
        ask(&a, reason);
        ck_assert(run_until(screen_has, "[N]o: "));
        r = strstr(screen, "Reason: ") + 8;
        e = strchr(r, '\n');
        ck_assert_int_eq(e - r, PROMPT_REASON_MAX + 3);
        ck_assert(strncmp(e - 3, "...", 3) == 0);
        type("\n");
        ck_assert(run_until(answered_, &a));
}
END_TEST

START_TEST(test_queue_one_at_a_time)
{
        Asker a[PROMPT_QUEUE_MAX + 1];
        char line[64];

        for (unsigned i = 0; i < PROMPT_QUEUE_MAX; i++) {
                a[i] = (Asker){.answer = -1};
                snprintf(line, sizeof line, "question %u", i);
                ck_assert_int_eq(
                        prompt_ask(prompt, "org.x.app", "camera", NULL, line, on_done, &a[i]), 0);
        }
        ck_assert_int_eq(prompt_ask(prompt, "org.x.app", "camera", NULL, "one too many", on_done,
                                    &a[PROMPT_QUEUE_MAX]),
                         -EBUSY);
        for (unsigned i = 0; i < PROMPT_QUEUE_MAX; i++) {
                snprintf(line, sizeof line, "question %u\n", i);
                ck_assert_msg(run_until(screen_has, line), "screen: %s", screen);
                /* only the question at the head is on screen */
                snprintf(line, sizeof line, "question %u\n", i + 1);
                ck_assert(!screen_has(line));
                clear_screen();
                type(i % 2 ? "y\n" : "o\n");
                ck_assert(run_until(answered_, &a[i]));
                ck_assert_int_eq(a[i].answer, i % 2 ? PROMPT_ALLOW_ALWAYS : PROMPT_ALLOW_ONCE);
                ck_assert_int_eq(a[i].order, (int)i + 1);
        }
        /* one run of questions: the terminal was taken and given back once */
        ck_assert_int_eq(begins, 1);
        ck_assert_int_eq(ends, 1);
}
END_TEST

START_TEST(test_timeout_denies)
{
        Asker a = {.answer = -1};

        prompt_set_timeout(prompt, 50);
        ask(&a, NULL);
        ck_assert(run_until(answered_, &a));
        ck_assert_int_eq(a.answer, PROMPT_DENY);
        ck_assert(run_until(screen_has, "no answer within 1 s; denied"));
        ck_assert_int_eq(ends, 1);
}
END_TEST

START_TEST(test_typeahead_is_discarded)
{
        Asker a = {.answer = -1};

        ask(&a, NULL);
        type("y\n"); /* before the question shows */
        ck_assert(run_until(screen_has, "[N]o: "));
        /* give the stale line a chance to be (wrongly) read */
        for (int i = 0; i < 20; i++) {
                uv_run(&loop, UV_RUN_NOWAIT);
                usleep(1000);
        }
        ck_assert_int_eq(a.calls, 0);
        type("n\n");
        ck_assert(run_until(answered_, &a));
        ck_assert_int_eq(a.answer, PROMPT_DENY);
}
END_TEST

START_TEST(test_cancel)
{
        Asker a = {.answer = -1}, b = {.answer = -1}, c = {.answer = -1};

        ck_assert_int_eq(prompt_ask(prompt, "org.x.a", "camera", NULL, "first", on_done, &a), 0);
        ck_assert_int_eq(prompt_ask(prompt, "org.x.b", "camera", NULL, "second", on_done, &b), 0);
        ck_assert_int_eq(prompt_ask(prompt, "org.x.c", "camera", NULL, "third", on_done, &c), 0);
        ck_assert(run_until(screen_has, "first\n"));
        prompt_cancel(prompt, &c); /* queued */
        prompt_cancel(prompt, &a); /* on screen */
        prompt_cancel(prompt, &a); /* again: nothing */
        ck_assert(run_until(screen_has, "withdrew"));
        ck_assert(run_until(screen_has, "second\n"));
        ck_assert_uint_eq(prompt_pending(prompt), 1);
        type("o\n");
        ck_assert(run_until(answered_, &b));
        ck_assert_int_eq(b.answer, PROMPT_ALLOW_ONCE);
        for (int i = 0; i < 20; i++)
                uv_run(&loop, UV_RUN_NOWAIT);
        ck_assert(!screen_has("third"));
        ck_assert_int_eq(a.calls, 0);
        ck_assert_int_eq(c.calls, 0);
        ck_assert_int_eq(ends, 1);
}
END_TEST

START_TEST(test_hangup_denies_all)
{
        Asker a = {.answer = -1}, b = {.answer = -1};

        ck_assert_int_eq(prompt_ask(prompt, "org.x.a", "camera", NULL, NULL, on_done, &a), 0);
        ck_assert_int_eq(prompt_ask(prompt, "org.x.b", "camera", NULL, NULL, on_done, &b), 0);
        ck_assert(run_until(screen_has, "[N]o: "));
        master = safe_close(master); /* the terminal window closed */
        for (int64_t end = test_now_ms() + 3000;
             (a.calls == 0 || b.calls == 0) && test_now_ms() < end;) {
                uv_run(&loop, UV_RUN_NOWAIT);
                uv_wait_event(&loop, -1, 100);
        }
        ck_assert_int_eq(a.calls, 1);
        ck_assert_int_eq(b.calls, 1);
        ck_assert_int_eq(a.answer, PROMPT_DENY);
        ck_assert_int_eq(b.answer, PROMPT_DENY);
        ck_assert_uint_eq(prompt_pending(prompt), 0);
}
END_TEST

START_TEST(test_no_terminal)
{
        Prompt *p = NULL;
        Asker a = {};

        /* --no-prompt */
        ck_assert_int_eq(prompt_new(&loop, true, &p), 0);
        ck_assert_int_eq(prompt_set_tty_path(p, slave_path), 0);
        ck_assert_int_eq(prompt_ask(p, "org.x.a", "camera", NULL, NULL, on_done, &a), -ENOTTY);
        p = prompt_free(p);
        /* not a terminal, or none */
        ck_assert_int_eq(prompt_set_tty_path(prompt, "/dev/null"), 0);
        ck_assert_int_eq(prompt_ask(prompt, "org.x.a", "camera", NULL, NULL, on_done, &a), -ENOTTY);
        ck_assert_int_eq(prompt_set_tty_path(prompt, "/nonexistent/tty"), 0);
        ck_assert_int_eq(prompt_ask(prompt, "org.x.a", "camera", NULL, NULL, on_done, &a), -ENOTTY);
        ck_assert_int_eq(prompt_ask(prompt, NULL, "camera", NULL, NULL, on_done, &a), -EINVAL);
        uv_run(&loop, UV_RUN_NOWAIT);
        ck_assert_int_eq(a.calls, 0);
        ck_assert_int_eq(begins, 0);
}
END_TEST

static void check_sanitize(const char *in, size_t max, const char *want)
{
        char out[512];
        size_t n = prompt_sanitize(in, max, out, sizeof out);

        ck_assert_msg(strcmp(out, want) == 0, "sanitize(\"%s\") = \"%s\", want \"%s\"", in, out,
                      want);
        ck_assert_uint_eq(n, strlen(want));
}

START_TEST(test_sanitize)
{
        char in[400], want[300], out[16];

        check_sanitize("plain text", 100, "plain text");
        check_sanitize(NULL, 100, "");
        check_sanitize("a\x1b[31mred\x1b[0m", 100, "ared");
        check_sanitize("x\x1b]0;title\x07y", 100, "xy");
        check_sanitize("x\x1b]8;;http://e\x1b\\link\x1b]8;;\x1b\\y", 100, "xlinky");
        check_sanitize("x\x1bP1$qm\x1b\\y", 100, "xy");
        check_sanitize("x\x1b(By\x1b"
                       "cz",
                       100, "xyz");
        check_sanitize("unterminated \x1b]0;evil", 100, "unterminated ");
        check_sanitize("a\nb\rc\td", 100, "a b c d");
        check_sanitize("\x01\x02\x7f\x08", 100, "");
        check_sanitize("h\xc3\xa9llo \xe2\x82\xac", 100, "h\xc3\xa9llo \xe2\x82\xac");
        check_sanitize("bad \xff\xfe end", 100, "bad ?? end");
        check_sanitize("overlong \xc0\xaf", 100, "overlong ??");
        check_sanitize("surrogate \xed\xa0\x80", 100, "surrogate ???");
        check_sanitize("c1 \xc2\x9b"
                       "31mred \xc2\x9d"
                       "0;t\xc2\x9c!",
                       100, "c1 red !");
        check_sanitize("c1 \xc2\x85next", 100, "c1 next");
        check_sanitize("bidi a\xe2\x80\xae"
                       "b\xe2\x81\xa6"
                       "c",
                       100, "bidi abc");
        check_sanitize("line\xe2\x80\xa8sep", 100, "line sep");

        /* cut at the bound, at a character boundary, marked */
        memset(in, 'a', 300);
        in[300] = 0;
        memset(want, 'a', 200);
        strcpy(want + 200, "...");
        check_sanitize(in, 200, want);
        for (int i = 0; i < 150; i++)
                memcpy(in + 2 * i, "\xc3\xa9", 2);
        in[300] = 0;
        for (int i = 0; i < 100; i++)
                memcpy(want + 2 * i, "\xc3\xa9", 2);
        strcpy(want + 200, "...");
        check_sanitize(in, 201, want);
        /* and never past the buffer */
        ck_assert_uint_eq(prompt_sanitize(in, 1000, out, sizeof out), 15);
        ck_assert_uint_eq(strlen(out), 15);
}
END_TEST

/* Random bytes: nothing below 0x20, no DEL, no ESC, no C1, always within bounds. */
START_TEST(test_sanitize_random)
{
        unsigned seed = 12345;
        char in[300], out[64];

        for (int iter = 0; iter < 20000; iter++) {
                size_t len = (size_t)(rand_r(&seed) % (sizeof in - 1)), n, bad;

                for (size_t i = 0; i < len; i++) {
                        int r = rand_r(&seed) % 8;

                        in[i] = (char)(r == 0 ? 0x1b : r == 1 ? 0xc2 : (rand_r(&seed) % 255) + 1);
                }
                in[len] = 0;
                n = prompt_sanitize(in, 40, out, sizeof out);
                ck_assert_uint_le(n, 43);
                ck_assert_uint_eq(strlen(out), n);
                /* One check per string: each ck_assert is a write to Check's pipe,
                 * and a million of them made this test's time the machine's load. */
                for (bad = 0; bad < n; bad++) {
                        unsigned char c = (unsigned char)out[bad];

                        if (c < 0x20 || c == 0x7f ||
                            (c == 0xc2 && (unsigned char)out[bad + 1] < 0xa0))
                                break;
                }
                ck_assert_msg(bad == n, "iteration %d: byte %zu of \"%s\" is 0x%02x", iter, bad,
                              out, (unsigned char)out[bad]);
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("prompt");
        TCase *tc = tcase_create("prompt"), *ts = tcase_create("sanitize");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 30);
        /* Check's 4 s default is a hang guard, not a speed bound: the random
         * strings take 2 s of CPU under ASan, more on the wall clock of a loaded
         * machine. */
        tcase_set_timeout(ts, 60);
        tcase_add_test(tc, test_question_and_answers);
        tcase_add_test(tc, test_unclear_answer_asks_again);
        tcase_add_test(tc, test_reason_is_sanitized_on_screen);
        tcase_add_test(tc, test_long_reason_is_cut);
        tcase_add_test(tc, test_queue_one_at_a_time);
        tcase_add_test(tc, test_timeout_denies);
        tcase_add_test(tc, test_typeahead_is_discarded);
        tcase_add_test(tc, test_cancel);
        tcase_add_test(tc, test_hangup_denies_all);
        tcase_add_test(tc, test_no_terminal);
        tcase_add_test(ts, test_sanitize);
        tcase_add_test(ts, test_sanitize_random);
        suite_add_tcase(s, tc);
        suite_add_tcase(s, ts);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
