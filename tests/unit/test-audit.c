/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit-internal.h"
#include "audit/audit.h"
#include "base/fileio.h"
#include "base/macro.h"

/* 2024-05-01T12:00:00Z */
#define T0 1714564800ll

static char state[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void setup(void)
{
        snprintf(state, sizeof state, "/tmp/cella-audit-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(state));
}

static void teardown(void)
{
        nftw(state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A clock that starts at T0 and moves step_sec a record. */
typedef struct TestClock {
        int64_t next_usec;
        int64_t step_usec;
} TestClock;

static int64_t test_clock(void *userdata)
{
        TestClock *c = userdata;
        int64_t t = c->next_usec;

        c->next_usec += c->step_usec;
        return t;
}

static char *log_path(unsigned n)
{
        static char buf[128];

        snprintf(buf, sizeof buf, "%s/audit/log.%06u.jsonl", state, n);
        return buf;
}

static char *state_file(const char *name)
{
        static char buf[128];

        snprintf(buf, sizeof buf, "%s/audit/%s", state, name);
        return buf;
}

/* Not inlined: gcc 12 at -O3 then takes the returned buffer for a pointer to the
 * local that held it (-Wdangling-pointer, a false positive). */
static __attribute__((noinline)) char *slurp(const char *path, size_t *ret_size)
{
        char *data = NULL;
        size_t size = 0;
        int r = read_file_at(AT_FDCWD, path, 64u << 20, &data, &size);

        ck_assert_int_eq(r, 0);
        if (ret_size)
                *ret_size = size;
        return data;
}

static void spew(const char *path, const char *data, size_t size)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, data, size), 0);
}

/* Start and length (without newline) of 1-based line k of data. */
static void nth_line(const char *data, unsigned k, size_t *ret_start, size_t *ret_len)
{
        const char *p = data;

        for (unsigned i = 1; i < k; i++) {
                p = strchr(p, '\n');
                ck_assert_ptr_nonnull(p);
                p++;
        }
        *ret_start = (size_t)(p - data);
        *ret_len = (size_t)(strchr(p, '\n') - p);
}

static void append_calls(AuditLog *a, unsigned n)
{
        for (unsigned i = 0; i < n; i++) {
                json_auto_t *f = json_pack("{s:s, s:s, s:i}", "op", "fs.open", "decision",
                                           "granted", "i", (int)i);

                ck_assert_int_eq(audit_append(a, "org.example.app", AUDIT_EVENT_CALL, f), 0);
        }
}

/* A log of n call records, closed (so HEAD names the last). */
static void make_log(unsigned n, uint64_t file_max)
{
        AuditOptions o = {.file_max = file_max};
        AuditLog *a = NULL;

        ck_assert_int_eq(audit_open(state, &o, &a), 0);
        append_calls(a, n);
        ck_assert_int_eq(audit_sync(a), 0);
        a = audit_close(a);
}

typedef struct Collected {
        unsigned n;
        uint64_t seqs[2048];
        char apps[2048][32];
        int stop_after; /* return -ECANCELED after this many (0: never) */
} Collected;

static int collect(const json_t *rec, const char *line, size_t len, void *userdata)
{
        Collected *c = userdata;
        json_t *app = json_object_get(rec, "app");
        _cleanup_free_ char *again = NULL;

        /* The line handed on is the record, byte for byte as dumped. */
        again = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
        ck_assert_uint_eq(strlen(again), len);
        ck_assert_int_eq(memcmp(again, line, len), 0);
        if (c->n < ELEMENTSOF(c->seqs)) {
                c->seqs[c->n] = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
                snprintf(c->apps[c->n], sizeof c->apps[0], "%s",
                         json_is_null(app) ? "-" : json_string_value(app));
        }
        c->n++;
        if (c->stop_after && c->n == (unsigned)c->stop_after)
                return -ECANCELED;
        return 0;
}

static void hash_hex(const char *line, size_t len, char hex[65])
{
        uint8_t h[32];

        crypto_generichash(h, sizeof h, (const unsigned char *)line, len, NULL, 0);
        sodium_bin2hex(hex, 65, h, sizeof h);
}

START_TEST(test_round_trip)
{
        TestClock clock = {.next_usec = T0 * 1000000, .step_usec = 1500};
        AuditOptions o = {.clock = test_clock, .clock_userdata = &clock};
        AuditLog *a = NULL;
        AuditVerifyReport rep;
        Collected c = {};
        json_auto_t *boot = json_pack("{s:s}", "what", "boot");
        json_auto_t *call = json_pack("{s:s, s:s, s:s, s:i}", "op", "fs.open", "path",
                                      "/home/u/a \"b\"\n", "decision", "granted", "errno", 0);
        json_auto_t *sc = json_pack("{s:i}", "denied", 3);
        _cleanup_free_ char *data = NULL;
        size_t start, len;
        char hex[65], want[512];
        struct stat st;

        ck_assert_int_eq(audit_open(state, &o, &a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 0);
        ck_assert_int_eq(audit_append(a, NULL, AUDIT_EVENT_LIFECYCLE, boot), 0);
        ck_assert_int_eq(audit_append(a, "org.a", AUDIT_EVENT_CALL, call), 0);
        ck_assert_int_eq(audit_append(a, "org.b", AUDIT_EVENT_SECCOMP, sc), 0);
        ck_assert_int_eq(audit_append(a, "org.b", "lifecycle", NULL), 0);
        /* Batched: nothing is numbered or written before the flush. */
        ck_assert_uint_eq(audit_last_seq(a), 0);
        ck_assert_int_eq(stat(log_path(1), &st), 0);
        ck_assert_int_eq(st.st_size, 0);
        ck_assert_int_eq(audit_flush(a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 4);
        /* fields are borrowed: still ours, unchanged */
        ck_assert_int_eq(json_object_size(call), 4);
        a = audit_close(a);

        data = slurp(log_path(1), NULL);
        nth_line(data, 1, &start, &len);
        snprintf(want, sizeof want,
                 "{\"seq\":1,\"time\":\"2024-05-01T12:00:00.000000Z\",\"app\":null,"
                 "\"event\":\"lifecycle\",\"what\":\"boot\",\"prev\":\"%064d\"}",
                 0);
        ck_assert_uint_eq(len, strlen(want));
        ck_assert_int_eq(memcmp(data + start, want, len), 0);
        /* record 2's prev is BLAKE2b-256 of line 1, as written */
        hash_hex(data + start, len, hex);
        nth_line(data, 2, &start, &len);
        snprintf(want, sizeof want,
                 "{\"seq\":2,\"time\":\"2024-05-01T12:00:00.001500Z\",\"app\":\"org.a\","
                 "\"event\":\"call\",\"op\":\"fs.open\",\"path\":\"/home/u/a \\\"b\\\"\\n\","
                 "\"decision\":\"granted\",\"errno\":0,\"prev\":\"%s\"}",
                 hex);
        ck_assert_uint_eq(len, strlen(want));
        ck_assert_int_eq(memcmp(data + start, want, len), 0);

        ck_assert_int_eq(audit_read(state, NULL, collect, &c, &rep), 0);
        ck_assert_uint_eq(c.n, 4);
        ck_assert_str_eq(c.apps[0], "-");
        ck_assert_str_eq(c.apps[1], "org.a");
        ck_assert_uint_eq(c.seqs[3], 4);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_NONE);
        ck_assert_uint_eq(rep.records, 4);
        ck_assert_uint_eq(rep.first_seq, 1);
        ck_assert_uint_eq(rep.last_seq, 4);
        ck_assert_uint_eq(rep.head_seq, 4);
        ck_assert_uint_eq(rep.files, 1);
        ck_assert(!rep.writer_active);
        ck_assert(!rep.starts_with_break);

        /* Only root reads the log. */
        ck_assert_int_eq(stat(state_file(""), &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0700);
        ck_assert_int_eq(stat(log_path(1), &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
}
END_TEST

START_TEST(test_empty_and_missing)
{
        AuditLog *a = NULL;
        AuditVerifyReport rep;

        ck_assert_int_eq(audit_verify(state, &rep), -ENOENT);
        ck_assert_ptr_nonnull(strstr(rep.message, "no audit log"));
        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        a = audit_close(a);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.records, 0);
        /* reopening an empty log is fine too */
        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 0);
        a = audit_close(a);
}
END_TEST

START_TEST(test_rotation_chain)
{
        AuditVerifyReport rep;
        Collected c = {};
        struct stat st;
        unsigned files = 0;

        make_log(1000, 4096);
        for (unsigned n = 1; stat(log_path(n), &st) == 0; n++) {
                files++;
                ck_assert_uint_le(st.st_size, 4096);
                ck_assert_uint_gt(st.st_size, 0);
        }
        ck_assert_uint_gt(files, 10);
        ck_assert_int_eq(audit_read(state, NULL, collect, &c, &rep), 0);
        ck_assert_uint_eq(rep.records, 1000);
        ck_assert_uint_eq(rep.files, files);
        ck_assert_uint_eq(c.n, 1000);
        for (unsigned i = 0; i < 1000; i++)
                ck_assert_uint_eq(c.seqs[i], i + 1);

        /* The chain runs across files: the first line of file 2 names file 1's last. */
        {
                _cleanup_free_ char *f1 = NULL, *f2 = NULL;
                size_t size1, start, len, n1 = 0;
                char hex[65];

                f1 = slurp(log_path(1), &size1);
                for (size_t i = 0; i < size1; i++)
                        n1 += f1[i] == '\n';
                nth_line(f1, (unsigned)n1, &start, &len);
                hash_hex(f1 + start, len, hex);
                f2 = slurp(log_path(2), NULL);
                nth_line(f2, 1, &start, &len);
                ck_assert_ptr_nonnull(memmem(f2 + start, len, hex, 64));
        }
}
END_TEST

START_TEST(test_tamper_middle_record)
{
        _cleanup_free_ char *data = NULL;
        AuditVerifyReport rep;
        Collected c = {};
        size_t size, start, len;
        char *p;

        make_log(1000, 0);
        data = slurp(log_path(1), &size);
        nth_line(data, 500, &start, &len);
        p = memmem(data + start, len, "granted", 7);
        ck_assert_ptr_nonnull(p);
        p[0] = 'G'; /* one byte */
        spew(log_path(1), data, size);

        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_PREV);
        ck_assert_uint_eq(rep.seq, 501);
        ck_assert_uint_eq(rep.line, 501);
        ck_assert_str_eq(rep.file, "log.000001.jsonl");
        ck_assert_msg(strstr(rep.message, "record 501 in log.000001.jsonl (line 501): prev hash "
                                          "does not match record 500: the log was changed"),
                      "%s", rep.message);
        ck_assert(!rep.after_head);

        /* The changed record is never handed on: 499 is the last the chain vouches for. */
        ck_assert_int_eq(audit_read(state, NULL, collect, &c, &rep), -EBADMSG);
        ck_assert_uint_eq(c.n, 499);
        ck_assert_uint_eq(c.seqs[498], 499);
        ck_assert_uint_eq(rep.last_good_seq, 499);
}
END_TEST

START_TEST(test_delete_middle_line)
{
        _cleanup_free_ char *data = NULL;
        AuditVerifyReport rep;
        size_t size, start, len;

        make_log(20, 0);
        data = slurp(log_path(1), &size);
        nth_line(data, 10, &start, &len);
        memmove(data + start, data + start + len + 1, size - start - len - 1);
        spew(log_path(1), data, size - len - 1);

        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_SEQ);
        ck_assert_uint_eq(rep.seq, 11);
        ck_assert_msg(strstr(rep.message, "record 11 in log.000001.jsonl (line 10) follows "
                                          "record 9: record 10 is missing"),
                      "%s", rep.message);
}
END_TEST

START_TEST(test_delete_first_line)
{
        _cleanup_free_ char *data = NULL;
        AuditVerifyReport rep;
        size_t size, start, len;

        make_log(5, 0);
        data = slurp(log_path(1), &size);
        nth_line(data, 1, &start, &len);
        spew(log_path(1), data + len + 1, size - len - 1);
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_SEQ);
        ck_assert_msg(strstr(rep.message, "has seq 2"), "%s", rep.message);
}
END_TEST

START_TEST(test_torn_last_line)
{
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        struct stat st;

        make_log(10, 0);
        ck_assert_int_eq(stat(log_path(1), &st), 0);
        ck_assert_int_eq(truncate(log_path(1), st.st_size - 5), 0);

        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_TORN);
        ck_assert_uint_eq(rep.line, 10);
        ck_assert_msg(strstr(rep.message, "ends in an incomplete record after record 9"), "%s",
                      rep.message);
        /* HEAD named record 10: the damage is in synced records. */
        ck_assert(!rep.after_head);
        ck_assert_int_eq(audit_open(state, NULL, &a), -EBADMSG);
        ck_assert_ptr_null(a);
}
END_TEST

/* Appends n records and syncs, then m more and flushes (written, not synced), and
 * dies without closing: a crash. */
static void crash_after(unsigned n, unsigned m)
{
        pid_t pid = fork();
        int status;

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                AuditLog *a = NULL;

                if (audit_open(state, NULL, &a) < 0)
                        _exit(1);
                append_calls(a, n);
                if (audit_sync(a) < 0)
                        _exit(2);
                append_calls(a, m);
                if (audit_flush(a) < 0)
                        _exit(3);
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

START_TEST(test_torn_after_head)
{
        AuditVerifyReport rep;
        struct stat st;

        crash_after(5, 2);
        ck_assert_int_eq(stat(log_path(1), &st), 0);
        ck_assert_int_eq(truncate(log_path(1), st.st_size - 3), 0);
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_TORN);
        ck_assert_uint_eq(rep.head_seq, 5);
        /* Past HEAD: what a crash in the middle of a write leaves. */
        ck_assert(rep.after_head);
}
END_TEST

START_TEST(test_truncated_whole_lines)
{
        _cleanup_free_ char *data = NULL;
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        size_t size, start, len;

        make_log(10, 0);
        data = slurp(log_path(1), &size);
        nth_line(data, 9, &start, &len);
        spew(log_path(1), data, start); /* records 9 and 10 gone */

        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_TRUNCATED);
        ck_assert_msg(strstr(rep.message, "the log ends at record 8, but HEAD says it ran to "
                                          "record 10: records 9 to 10 were removed"),
                      "%s", rep.message);
        ck_assert_int_eq(audit_open(state, NULL, &a), -EBADMSG);
}
END_TEST

START_TEST(test_unsynced_tail_after_crash)
{
        AuditVerifyReport rep;
        AuditLog *a = NULL;

        crash_after(5, 3);
        /* HEAD lags (record 5); the three after it are checked and kept. */
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.head_seq, 5);
        ck_assert_uint_eq(rep.records, 8);
        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 8);
        append_calls(a, 1);
        ck_assert_int_eq(audit_flush(a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 9);
        a = audit_close(a);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.records, 9);
        ck_assert_uint_eq(rep.head_seq, 9);
}
END_TEST

START_TEST(test_reopen_continues_chain)
{
        _cleanup_free_ char *data = NULL;
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        size_t start, len;
        char hex[65];

        make_log(5, 0);
        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 5);
        append_calls(a, 5);
        a = audit_close(a);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.records, 10);

        data = slurp(log_path(1), NULL);
        nth_line(data, 5, &start, &len);
        hash_hex(data + start, len, hex);
        nth_line(data, 6, &start, &len);
        ck_assert_ptr_nonnull(strstr(data + start, "{\"seq\":6,"));
        ck_assert_ptr_nonnull(memmem(data + start, len, hex, 64));
}
END_TEST

START_TEST(test_reserved_and_invalid)
{
        static const char *const reserved[] = {"seq", "time", "app", "event", "prev"};
        static const char *const bad_events[] = {"",       "Call",        "1call",  "a b",
                                                 "call\n", "audit.break", "audit.x"};
        char long_event[AUDIT_EVENT_MAX + 2], long_app[AUDIT_APP_MAX + 2];
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        json_auto_t *arr = json_array();

        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        for (size_t i = 0; i < ELEMENTSOF(reserved); i++) {
                json_auto_t *f = json_pack("{s:s, s:i}", "op", "x", reserved[i], 1);

                ck_assert_int_eq(audit_append(a, "org.a", "call", f), -EINVAL);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_events); i++)
                ck_assert_int_eq(audit_append(a, "org.a", bad_events[i], NULL), -EINVAL);
        ck_assert_int_eq(audit_append(a, "org.a", NULL, NULL), -EINVAL);
        memset(long_event, 'e', sizeof long_event - 1);
        long_event[sizeof long_event - 1] = 0;
        ck_assert_int_eq(audit_append(a, "org.a", long_event, NULL), -EINVAL);
        long_event[AUDIT_EVENT_MAX] = 0; /* at the bound: fine */
        ck_assert_int_eq(audit_append(a, "org.a", long_event, NULL), 0);
        memset(long_app, 'a', sizeof long_app - 1);
        long_app[sizeof long_app - 1] = 0;
        ck_assert_int_eq(audit_append(a, long_app, "call", NULL), -EINVAL);
        long_app[AUDIT_APP_MAX] = 0;
        ck_assert_int_eq(audit_append(a, long_app, "call", NULL), 0);
        ck_assert_int_eq(audit_append(a, "", "call", NULL), -EINVAL);
        ck_assert_int_eq(audit_append(a, "org.\xff", "call", NULL), -EINVAL);
        ck_assert_int_eq(audit_append(a, "org.a", "call", arr), -EINVAL);
        ck_assert_int_eq(audit_flush(a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 2);
        a = audit_close(a);
        /* Nothing of the refused records reached the file. */
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.records, 2);
}
END_TEST

/* Bytes of a line besides its middle (",time" to the fields' end) and seq digits:
 * {"seq": ,"prev":"<64 hex>"} and the newline. */
#define LINE_FIXED 83u

START_TEST(test_line_bound)
{
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        _cleanup_free_ char *big = malloc(AUDIT_LINE_MAX + 1);
        struct stat st;
        size_t first, pad, middle1;

        ck_assert_ptr_nonnull(big);
        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        memset(big, 'x', 1000);
        big[1000] = 0;
        {
                json_auto_t *f = json_pack("{s:s}", "x", big);

                ck_assert_int_eq(audit_append(a, NULL, "call", f), 0);
        }
        ck_assert_int_eq(audit_flush(a), 0);
        ck_assert_int_eq(stat(log_path(1), &st), 0);
        first = (size_t)st.st_size; /* a line of 1000 x's, newline included, seq 1 */
        middle1 = first - LINE_FIXED - 1;
        /* Record 2 is as long as record 1 but for x: the longest middle taken, whose
         * line with a 19-digit seq would be AUDIT_LINE_MAX exactly. */
        pad = 1000 + (AUDIT_LINE_MAX - LINE_FIXED - 19) - middle1;
        memset(big, 'x', pad);
        big[pad] = 0;
        {
                json_auto_t *f = json_pack("{s:s}", "x", big);

                ck_assert_int_eq(audit_append(a, NULL, "call", f), 0);
        }
        ck_assert_int_eq(audit_flush(a), 0);
        ck_assert_int_eq(stat(log_path(1), &st), 0);
        /* seq 2 has one digit, not 19 */
        ck_assert_uint_eq((size_t)st.st_size, first + AUDIT_LINE_MAX - 18);
        /* One byte more is refused, and nothing is queued. */
        big[pad] = 'x';
        big[pad + 1] = 0;
        {
                json_auto_t *f = json_pack("{s:s}", "x", big);

                ck_assert_int_eq(audit_append(a, NULL, "call", f), -E2BIG);
        }
        ck_assert_int_eq(audit_flush(a), 0);
        ck_assert_int_eq(stat(log_path(1), &st), 0);
        ck_assert_uint_eq((size_t)st.st_size, first + AUDIT_LINE_MAX - 18);
        ck_assert_uint_eq(audit_last_seq(a), 2);
        /* Four records at the bound fill a batch exactly; a fifth writes them first. */
        big[pad] = 0;
        {
                json_auto_t *f = json_pack("{s:s}", "x", big);

                for (int i = 0; i < 4; i++)
                        ck_assert_int_eq(audit_append(a, NULL, "call", f), 0);
                ck_assert_int_eq(stat(log_path(1), &st), 0);
                ck_assert_uint_eq((size_t)st.st_size, first + AUDIT_LINE_MAX - 18);
                ck_assert_int_eq(audit_append(a, NULL, "call", f), 0);
                ck_assert_uint_eq(audit_last_seq(a), 6);
                ck_assert_int_eq(stat(log_path(1), &st), 0);
                ck_assert_uint_eq((size_t)st.st_size, first + 5 * (AUDIT_LINE_MAX - 18));
        }
        a = audit_close(a);
        /* The reader takes the long lines. */
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.records, 7);
}
END_TEST

START_TEST(test_bad_lines)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *junk = malloc(AUDIT_LINE_MAX + 10);
        AuditVerifyReport rep;
        AuditLog *a = NULL;

        ck_assert_ptr_nonnull(junk);
        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        append_calls(a, 3);
        ck_assert_int_eq(audit_sync(a), 0);

        /* Not JSON, after HEAD: reported with where it is. */
        fd = open(log_path(1), O_WRONLY | O_APPEND | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, "{\"seq\":4,\n", 10), 0);
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_BAD_RECORD);
        ck_assert_uint_eq(rep.line, 4);
        ck_assert_msg(strstr(rep.message, "line 4 of log.000001.jsonl (after record 3) is not a "
                                          "valid record: not JSON"),
                      "%s", rep.message);
        ck_assert(rep.after_head);

        /* A line past the bound is not read into memory whole. */
        ck_assert_int_eq(ftruncate(fd, 0), 0);
        a = audit_close(a);
        memset(junk, 'x', AUDIT_LINE_MAX + 9);
        junk[AUDIT_LINE_MAX + 9] = '\n';
        ck_assert_int_eq(loop_write(fd, junk, AUDIT_LINE_MAX + 10), 0);
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_BAD_RECORD);
        ck_assert_msg(strstr(rep.message, "longer than 65536 bytes"), "%s", rep.message);
}
END_TEST

START_TEST(test_wrong_types)
{
        static const char *const lines[] = {
                "[1,2]",
                "{\"seq\":\"1\",\"time\":\"2024-05-01T12:00:00Z\",\"app\":null,\"event\":\"x\"}",
                "{\"seq\":1,\"time\":\"yesterday\",\"app\":null,\"event\":\"x\"}",
                "{\"seq\":1,\"time\":\"2024-05-01T12:00:00Z\",\"app\":5,\"event\":\"x\"}",
                ("{\"seq\":1,\"time\":\"2024-05-01T12:00:00Z\",\"app\":null,\"event\":\"x\","
                 "\"prev\":\"00\"}"),
                "{\"seq\":1,\"seq\":1,\"time\":\"2024-05-01T12:00:00Z\",\"app\":null}",
        };

        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                AuditVerifyReport rep;
                char path[128];
                FILE *f;

                teardown();
                setup();
                snprintf(path, sizeof path, "%s/audit", state);
                ck_assert_int_eq(mkdir(path, 0700), 0);
                f = fopen(log_path(1), "we");
                ck_assert_ptr_nonnull(f);
                fprintf(f, "%s\n", lines[i]);
                fclose(f);
                ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
                ck_assert_msg(rep.problem == AUDIT_PROBLEM_BAD_RECORD, "line %zu: %s", i,
                              rep.message);
        }
}
END_TEST

/* Holds (or releases) the flush lock as a writer in the middle of a write would. */
static int hold_flush_lock(bool hold)
{
        static int fd = -1;
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};

        if (!hold) {
                fd = safe_close(fd);
                return 0;
        }
        fd = open(state_file("lock"), O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        return fcntl(fd, F_OFD_SETLK, &fl);
}

START_TEST(test_second_writer_allowed)
{
        AuditVerifyReport rep;
        AuditLog *a = NULL, *b = NULL;
        pid_t pid;
        int status;

        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        ck_assert_int_eq(audit_open(state, NULL, &b), 0);
        ck_assert_ptr_nonnull(b);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                AuditLog *c = NULL;
                json_auto_t *f = json_pack("{s:s}", "what", "grant");

                if (audit_open(state, NULL, &c) < 0 || audit_append(c, "org.c", "grant", f) < 0 ||
                    audit_sync(c) < 0)
                        _exit(1);
                audit_close(c);
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        /* Readers do not need the lock, and see that writers have the log open. */
        append_calls(a, 2);
        ck_assert_int_eq(audit_flush(a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 3); /* after the child's record */
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert(rep.writer_active);
        ck_assert_uint_eq(rep.records, 3);
        ck_assert_uint_eq(rep.head_seq, 1); /* the child synced; a has not */
        a = audit_close(a);
        b = audit_close(b);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert(!rep.writer_active);
        ck_assert_uint_eq(rep.head_seq, 3);
}
END_TEST

START_TEST(test_partial_line_while_writing)
{
        _cleanup_close_ int fd = -EBADF;
        AuditVerifyReport rep;
        AuditLog *a = NULL;

        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        append_calls(a, 3);
        ck_assert_int_eq(audit_sync(a), 0);
        /* What a reader may see while a writer's write(2) is half done. */
        fd = open(log_path(1), O_WRONLY | O_APPEND | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, "{\"seq\":4,\"ti", 12), 0);
        ck_assert_int_eq(hold_flush_lock(true), 0);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert(rep.writer_active);
        ck_assert_uint_eq(rep.records, 3);
        hold_flush_lock(false);
        /* A writer that merely has the log open is not writing: the same bytes are a
         * torn record, and it will not write after them. */
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_TORN);
        ck_assert(rep.writer_active);
        append_calls(a, 1);
        ck_assert_int_eq(audit_flush(a), -EBADMSG);
        a = audit_close(a);
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_TORN);
}
END_TEST

/* The records of a log, in chain order: writer ("w") and index ("i") of each. */
typedef struct Tagged {
        unsigned n;
        uint64_t seq[8192];
        int w[8192], i[8192];
} Tagged;

static int collect_tagged(const json_t *rec, const char *line, size_t len, void *userdata)
{
        Tagged *t = userdata;

        ck_assert_uint_lt(t->n, ELEMENTSOF(t->seq));
        t->seq[t->n] = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
        t->w[t->n] = (int)json_integer_value(json_object_get(rec, "w"));
        t->i[t->n] = (int)json_integer_value(json_object_get(rec, "i"));
        t->n++;
        return 0;
}

static int append_tagged(AuditLog *a, int w, int i)
{
        json_auto_t *f = json_pack("{s:s, s:i, s:i}", "op", "fs.open", "w", w, "i", i);

        return audit_append(a, "org.example.app", AUDIT_EVENT_CALL, f);
}

/* Every writer's records 0..per-1 are in the log exactly once, in their order,
 * and seqs run 1..n without a gap. */
static void check_tagged(unsigned writers, unsigned per)
{
        static Tagged t;
        AuditVerifyReport rep;
        int next[16] = {};

        t.n = 0;
        ck_assert_int_eq(audit_read(state, NULL, collect_tagged, &t, &rep), 0);
        ck_assert_uint_eq(t.n, writers * per);
        ck_assert_uint_eq(rep.records, writers * per);
        for (unsigned k = 0; k < t.n; k++) {
                ck_assert_uint_eq(t.seq[k], k + 1);
                ck_assert_int_ge(t.w[k], 0);
                ck_assert_int_lt(t.w[k], (int)writers);
                ck_assert_int_eq(t.i[k], next[t.w[k]]);
                next[t.w[k]]++;
        }
}

START_TEST(test_two_handles_interleaved)
{
        AuditOptions o = {.file_max = 4096};
        AuditLog *h[2] = {};
        AuditVerifyReport rep;
        int next[2] = {}, batch = 1;

        ck_assert_int_eq(audit_open(state, &o, &h[0]), 0);
        ck_assert_int_eq(audit_open(state, &o, &h[1]), 0);
        /* Batches of 1..13 records, flushed in turn; some left over across rounds. */
        for (int round = 0; next[0] < 300 || next[1] < 300; round++) {
                int w = round % 2;

                for (int k = 0; k < batch && next[w] < 300; k++)
                        ck_assert_int_eq(append_tagged(h[w], w, next[w]++), 0);
                batch = batch % 13 + 1;
                if (round % 5 != 3)
                        ck_assert_int_eq(audit_flush(h[w]), 0);
                if (round % 17 == 0)
                        ck_assert_int_eq(audit_sync(h[w]), 0);
        }
        h[0] = audit_close(h[0]);
        h[1] = audit_close(h[1]);
        check_tagged(2, 300);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_gt(rep.files, 10); /* rotated under the lock, by both */
        ck_assert_uint_eq(rep.head_seq, 600);
}
END_TEST

/* Writer w: per records in batches of 1..(w + 3), flushing each, syncing now and
 * then, with a small rotation bound so that the files turn over under contention. */
static void forked_writer(int w, unsigned per)
{
        AuditOptions o = {.file_max = 8192};
        AuditLog *a = NULL;
        unsigned i = 0, batch = 1;

        if (audit_open(state, &o, &a) < 0)
                _exit(10);
        while (i < per) {
                for (unsigned k = 0; k < batch && i < per; k++)
                        if (append_tagged(a, w, (int)i++) < 0)
                                _exit(11);
                if (audit_flush(a) < 0)
                        _exit(12);
                if (i % 97 == 0 && audit_sync(a) < 0)
                        _exit(13);
                batch = batch % (unsigned)(w + 3) + 1;
        }
        if (audit_sync(a) < 0)
                _exit(14);
        audit_close(a);
        _exit(0);
}

START_TEST(test_forked_writers_and_reader)
{
        enum { WRITERS = 3, PER = 1500, READER_BROKEN = 255 };
        pid_t pids[WRITERS], reader;
        int status, pipefd[2];
        unsigned reads = 0;
        AuditLog *a = NULL;

        /* The log exists before anyone reads it. */
        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        a = audit_close(a);
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        /* A reader checks the whole log again and again while they write: every read
         * must find an intact chain. */
        reader = fork();
        ck_assert_int_ge(reader, 0);
        if (reader == 0) {
                char c;

                close(pipefd[1]);
                fd_nonblock(pipefd[0], 1);
                for (unsigned n = 1;; n++) {
                        AuditVerifyReport rep;

                        if (audit_verify(state, &rep) < 0) {
                                fprintf(stderr, "reader: %s\n", rep.message);
                                _exit(READER_BROKEN);
                        }
                        /* The number of reads, below READER_BROKEN: a count that could
                         * equal the failure's code would pass for a failure (20 reads
                         * under load once did). */
                        if (read(pipefd[0], &c, 1) == 0)
                                _exit(n >= READER_BROKEN ? READER_BROKEN - 1 : (int)n);
                }
        }
        close(pipefd[0]);
        for (int w = 0; w < WRITERS; w++) {
                pids[w] = fork();
                ck_assert_int_ge(pids[w], 0);
                if (pids[w] == 0)
                        forked_writer(w, PER);
        }
        for (int w = 0; w < WRITERS; w++) {
                ck_assert_int_eq(waitpid(pids[w], &status, 0), pids[w]);
                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d: %d", w,
                              status);
        }
        close(pipefd[1]);
        ck_assert_int_eq(waitpid(reader, &status, 0), reader);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != READER_BROKEN,
                      "the reader saw a problem (wait status 0x%x)", (unsigned)status);
        reads = WEXITSTATUS(status);
        ck_assert_uint_gt(reads, 1);
        check_tagged(WRITERS, PER);
}
END_TEST

START_TEST(test_stale_tail_reread)
{
        _cleanup_free_ char *data = NULL, *head = NULL;
        AuditVerifyReport rep;
        AuditLog *a = NULL, *b = NULL;
        size_t start, len;
        char hex[65];

        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        ck_assert_int_eq(audit_open(state, NULL, &b), 0);
        append_calls(a, 3);
        ck_assert_int_eq(audit_sync(a), 0);
        ck_assert_uint_eq(audit_last_seq(b), 0); /* b's idea of the end is stale */
        append_calls(b, 1);
        ck_assert_int_eq(audit_flush(b), 0);
        ck_assert_uint_eq(audit_last_seq(b), 4);
        /* b's record follows a's third: numbered and chained after it. */
        data = slurp(log_path(1), NULL);
        nth_line(data, 3, &start, &len);
        hash_hex(data + start, len, hex);
        nth_line(data, 4, &start, &len);
        ck_assert_ptr_nonnull(strstr(data + start, "{\"seq\":4,"));
        ck_assert_ptr_nonnull(memmem(data + start, len, hex, 64));
        /* a is stale now: its sync names b's record, the log's last (HEAD moves on). */
        append_calls(a, 1);
        ck_assert_int_eq(audit_sync(a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 5);
        head = slurp(state_file("HEAD"), NULL);
        ck_assert_ptr_nonnull(strstr(head, "{\"seq\":5,"));
        /* b syncs with nothing of its own since its last flush: HEAD is left alone. */
        b = audit_close(b);
        a = audit_close(a);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.records, 5);
        ck_assert_uint_eq(rep.head_seq, 5);
}
END_TEST

/* What a stale writer finds at the end must continue the chain, or it writes
 * nothing. */
START_TEST(test_stale_tail_checked)
{
        static const char *const bad[] = {
                /* not linked: prev of zeros */
                "{\"seq\":4,\"time\":\"2024-05-01T12:00:00Z\",\"app\":null,\"event\":\"x\","
                "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}\n",
                /* not a record */
                "junk\n",
                /* torn */
                "{\"seq\":4,\"ti",
        };

        for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
                _cleanup_close_ int fd = -EBADF;
                AuditLog *a = NULL, *b = NULL;
                struct stat st1, st2;

                teardown();
                setup();
                ck_assert_int_eq(audit_open(state, NULL, &a), 0);
                ck_assert_int_eq(audit_open(state, NULL, &b), 0);
                append_calls(a, 3);
                ck_assert_int_eq(audit_flush(a), 0);
                fd = open(log_path(1), O_WRONLY | O_APPEND | O_CLOEXEC);
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(loop_write(fd, bad[k], strlen(bad[k])), 0);
                ck_assert_int_eq(stat(log_path(1), &st1), 0);
                append_calls(b, 2);
                ck_assert_msg(audit_flush(b) == -EBADMSG, "case %zu", k);
                ck_assert_int_eq(audit_flush(a), 0); /* nothing pending: no check at all */
                append_calls(a, 1);
                ck_assert_int_eq(audit_flush(a), -EBADMSG);
                ck_assert_int_eq(stat(log_path(1), &st2), 0);
                ck_assert_int_eq(st1.st_size, st2.st_size);
                a = audit_close(a);
                b = audit_close(b);
        }
}
END_TEST

/* A writer whose known end was cut away (records removed) refuses too. */
START_TEST(test_stale_tail_cut)
{
        AuditLog *a = NULL, *b = NULL;
        struct stat st;

        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        ck_assert_int_eq(audit_open(state, NULL, &b), 0);
        append_calls(a, 3);
        ck_assert_int_eq(audit_flush(a), 0);
        append_calls(b, 1);
        ck_assert_int_eq(audit_flush(b), 0);
        ck_assert_int_eq(stat(log_path(1), &st), 0);
        ck_assert_int_eq(truncate(log_path(1), st.st_size / 2), 0);
        append_calls(a, 1);
        ck_assert_int_eq(audit_flush(a), -EBADMSG);
        b = audit_close(b);
        a = audit_close(a);
}
END_TEST

START_TEST(test_batch_auto_flush)
{
        TestClock clock = {.next_usec = T0 * 1000000, .step_usec = 0};
        AuditOptions o = {.clock = test_clock, .clock_userdata = &clock};
        json_auto_t *f = json_pack("{s:s, s:i}", "op", "fs.open", "errno", 0);
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        Collected c = {};
        struct stat st;
        size_t line, fit;

        ck_assert_int_eq(audit_open(state, &o, &a), 0);
        /* Flushing nothing does nothing: not even the lock is taken. */
        ck_assert_int_eq(hold_flush_lock(true), 0);
        ck_assert_int_eq(audit_flush(a), 0);
        hold_flush_lock(false);
        ck_assert_int_eq(audit_append(a, "org.a", "call", f), 0);
        ck_assert_int_eq(audit_flush(a), 0);
        ck_assert_int_eq(stat(log_path(1), &st), 0);
        line = (size_t)st.st_size; /* seq 1: one digit */
        /* Records of this size a batch holds, counted with 19-digit seqs. */
        fit = AUDIT_BATCH_MAX / (line - 1 + 19);
        ck_assert_uint_lt(fit, ELEMENTSOF(c.seqs) - 2);
        for (size_t k = 0; k < fit; k++)
                ck_assert_int_eq(audit_append(a, "org.a", "call", f), 0);
        ck_assert_int_eq(stat(log_path(1), &st), 0);
        ck_assert_int_eq(st.st_size, (off_t)line);
        ck_assert_uint_eq(audit_last_seq(a), 1);
        /* One more does not fit: the batch is written first, in one piece. */
        ck_assert_int_eq(audit_append(a, "org.a", "call", f), 0);
        ck_assert_uint_eq(audit_last_seq(a), 1 + fit);
        ck_assert_int_eq(stat(log_path(1), &st), 0);
        ck_assert_int_gt(st.st_size, (off_t)(line * (1 + fit)));
        a = audit_close(a);
        ck_assert_int_eq(audit_read(state, NULL, collect, &c, &rep), 0);
        ck_assert_uint_eq(c.n, fit + 2);
        for (unsigned k = 0; k < c.n; k++)
                ck_assert_uint_eq(c.seqs[k], k + 1);
}
END_TEST

/* A batch that reaches the rotation bound is split across files, in order. */
START_TEST(test_batch_across_rotation)
{
        AuditOptions o = {.file_max = 2048};
        AuditLog *a = NULL;
        AuditVerifyReport rep;
        struct stat st;

        ck_assert_int_eq(audit_open(state, &o, &a), 0);
        for (int i = 0; i < 100; i++)
                ck_assert_int_eq(append_tagged(a, 0, i), 0);
        ck_assert_int_eq(audit_flush(a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 100);
        ck_assert_int_eq(stat(log_path(5), &st), 0);
        ck_assert_int_le(st.st_size, 2048);
        a = audit_close(a);
        check_tagged(1, 100);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_gt(rep.files, 5);
}
END_TEST

/* A writer open in another process while the log is repaired moves to the new log
 * at its next flush instead of writing into the one moved aside. */
START_TEST(test_repair_with_open_writer)
{
        _cleanup_free_ char *data = NULL;
        AuditVerifyReport rep;
        AuditLog *a = NULL, *b = NULL;
        Collected c = {};
        size_t size, start, len;
        char *p;

        ck_assert_int_eq(audit_open(state, NULL, &b), 0);
        append_calls(b, 5);
        ck_assert_int_eq(audit_sync(b), 0);
        data = slurp(log_path(1), &size);
        nth_line(data, 5, &start, &len);
        p = memmem(data + start, len, "granted", 7);
        ck_assert_ptr_nonnull(p);
        p[0] = 'G'; /* record 5, which HEAD names: audit_open() sees it */
        spew(log_path(1), data, size);
        append_calls(b, 2);
        ck_assert_int_eq(audit_flush(b), 0); /* the end still links: b cannot tell */
        ck_assert_int_eq(audit_open_repair(state, "test: repair", NULL, &a), 1);
        ck_assert_uint_eq(audit_last_seq(a), 8);
        a = audit_close(a);
        append_calls(b, 2);
        ck_assert_int_eq(audit_flush(b), 0);
        ck_assert_uint_eq(audit_last_seq(b), 10);
        b = audit_close(b);
        ck_assert_int_eq(audit_read(state, NULL, collect, &c, &rep), 0);
        ck_assert(rep.starts_with_break);
        ck_assert_uint_eq(c.n, 3);
        ck_assert_uint_eq(c.seqs[0], 8);
        ck_assert_uint_eq(c.seqs[2], 10);
}
END_TEST

START_TEST(test_missing_rotated_file)
{
        AuditVerifyReport rep;

        make_log(300, 4096);
        ck_assert_int_eq(unlink(log_path(2)), 0);
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_MISSING_FILE);
        ck_assert_str_eq(rep.file, "log.000002.jsonl");
        ck_assert_msg(strstr(rep.message, "log.000002.jsonl is missing"), "%s", rep.message);
}
END_TEST

START_TEST(test_missing_first_and_last_file)
{
        AuditVerifyReport rep;
        unsigned last = 1;
        struct stat st;

        make_log(300, 4096);
        while (stat(log_path(last + 1), &st) == 0)
                last++;
        ck_assert_uint_gt(last, 2);
        /* The file HEAD names is gone: the log was cut short. */
        ck_assert_int_eq(unlink(log_path(last)), 0);
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_TRUNCATED);
        ck_assert_int_eq(unlink(log_path(1)), 0);
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_MISSING_FILE);
        ck_assert_str_eq(rep.file, "log.000001.jsonl");
}
END_TEST

START_TEST(test_head_changed_or_gone)
{
        _cleanup_free_ char *head = NULL;
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        size_t size;
        char *p;

        make_log(10, 0);
        head = slurp(state_file("HEAD"), &size);
        p = strstr(head, "\"hash\":\"");
        ck_assert_ptr_nonnull(p);
        p[8] = p[8] == 'a' ? 'b' : 'a';
        spew(state_file("HEAD"), head, size);
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_HEAD_MISMATCH);
        ck_assert_uint_eq(rep.seq, 10);
        ck_assert_int_eq(audit_open(state, NULL, &a), -EBADMSG);

        spew(state_file("HEAD"), "{\"seq\":", 7);
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_HEAD);
        ck_assert_int_eq(audit_open(state, NULL, &a), -EBADMSG);

        ck_assert_int_eq(unlink(state_file("HEAD")), 0);
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);
        ck_assert_int_eq(rep.problem, AUDIT_PROBLEM_HEAD);
        ck_assert_msg(strstr(rep.message, "HEAD is missing"), "%s", rep.message);
        ck_assert_int_eq(audit_open(state, NULL, &a), -EBADMSG);
}
END_TEST

START_TEST(test_repair)
{
        _cleanup_free_ char *old = NULL, *data = NULL;
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        size_t size, start, len;
        char hex[65], pattern[128];
        json_auto_t *first = NULL;
        glob_t g = {};

        ck_assert_int_eq(audit_open_repair(state, NULL, NULL, &a), -EINVAL);
        /* An intact log opens as it is: no break. */
        make_log(10, 0);
        ck_assert_int_eq(audit_open_repair(state, "test", NULL, &a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 10);
        a = audit_close(a);

        old = slurp(log_path(1), &size);
        nth_line(old, 9, &start, &len);
        spew(log_path(1), old, start); /* 9 and 10 removed */
        ck_assert_int_eq(audit_open(state, NULL, &a), -EBADMSG);
        ck_assert_int_eq(audit_open_repair(state, "operator: after disk failure", NULL, &a), 1);
        /* seq goes on after every seq the old log held (HEAD's 10), and no number repeats */
        ck_assert_uint_eq(audit_last_seq(a), 11);
        append_calls(a, 1);
        a = audit_close(a);

        /* The old log is kept whole. */
        snprintf(pattern, sizeof pattern, "%s/audit.broken-*/log.000001.jsonl", state);
        ck_assert_int_eq(glob(pattern, 0, NULL, &g), 0);
        ck_assert_uint_eq(g.gl_pathc, 1);
        data = slurp(g.gl_pathv[0], &size);
        ck_assert_uint_eq(size, start);
        globfree(&g);

        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert(rep.starts_with_break);
        ck_assert_uint_eq(rep.first_seq, 11);
        ck_assert_uint_eq(rep.records, 2);

        free(data);
        data = slurp(log_path(1), NULL);
        nth_line(data, 1, &start, &len);
        first = json_loadb(data + start, len, 0, NULL);
        ck_assert_ptr_nonnull(first);
        ck_assert_str_eq(json_string_value(json_object_get(first, "event")), "audit.break");
        ck_assert_str_eq(json_string_value(json_object_get(first, "reason")),
                         "operator: after disk failure");
        ck_assert_ptr_nonnull(
                strstr(json_string_value(json_object_get(first, "problem")), "were removed"));
        ck_assert_ptr_nonnull(
                strstr(json_string_value(json_object_get(first, "moved_to")), "audit.broken-"));
        /* Tied to the old chain: prev is the last record it vouches for (7; 8 was
         * the last one left, and only HEAD could have vouched for it). */
        ck_assert_int_eq(json_integer_value(json_object_get(first, "last_good_seq")), 7);
        nth_line(old, 7, &start, &len);
        hash_hex(old + start, len, hex);
        ck_assert_str_eq(json_string_value(json_object_get(first, "prev")), hex);
}
END_TEST

START_TEST(test_filters)
{
        TestClock clock = {.next_usec = T0 * 1000000, .step_usec = 3600ll * 1000000};
        AuditOptions o = {.clock = test_clock, .clock_userdata = &clock};
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        Collected c = {};
        AuditFilter f = {};

        ck_assert_int_eq(audit_open(state, &o, &a), 0);
        ck_assert_int_eq(audit_append(a, "org.a", "call", NULL), 0);      /* T0 */
        ck_assert_int_eq(audit_append(a, "org.b", "call", NULL), 0);      /* T0 + 1h */
        ck_assert_int_eq(audit_append(a, NULL, "lifecycle", NULL), 0);    /* T0 + 2h */
        ck_assert_int_eq(audit_append(a, "org.a", "lifecycle", NULL), 0); /* T0 + 3h */
        a = audit_close(a);

        f.app = "org.a";
        ck_assert_int_eq(audit_read(state, &f, collect, &c, &rep), 0);
        ck_assert_uint_eq(c.n, 2);
        ck_assert_uint_eq(c.seqs[0], 1);
        ck_assert_uint_eq(c.seqs[1], 4);
        ck_assert_uint_eq(rep.records, 4); /* the whole chain is still checked */

        c = (Collected){};
        f = (AuditFilter){.has_since = true, .since_usec = (T0 + 7200) * 1000000};
        ck_assert_int_eq(audit_read(state, &f, collect, &c, &rep), 0);
        ck_assert_uint_eq(c.n, 2);
        ck_assert_str_eq(c.apps[0], "-");
        ck_assert_uint_eq(c.seqs[1], 4);

        c = (Collected){};
        f.app = "org.a";
        ck_assert_int_eq(audit_read(state, &f, collect, &c, &rep), 0);
        ck_assert_uint_eq(c.n, 1);
        ck_assert_uint_eq(c.seqs[0], 4);

        /* A callback stops the walk with its error. */
        c = (Collected){.stop_after = 2};
        ck_assert_int_eq(audit_read(state, NULL, collect, &c, &rep), -ECANCELED);
        ck_assert_uint_eq(c.n, 2);
}
END_TEST

START_TEST(test_files_max)
{
        AuditOptions o = {.file_max = 1024, .files_max = 3};
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        struct stat st;
        int r = 0;
        unsigned n = 0;

        ck_assert_int_eq(audit_open(state, &o, &a), 0);
        while (n < 1000) {
                json_auto_t *f = json_pack("{s:s}", "op", "fs.open");

                ck_assert_int_eq(audit_append(a, "org.a", "call", f), 0);
                r = audit_flush(a);
                if (r < 0)
                        break;
                n++;
        }
        ck_assert_int_eq(r, -ENOSPC);
        ck_assert_uint_eq(audit_last_seq(a), n);
        /* The record stays in the batch: a flush retries it, and fails the same. */
        ck_assert_int_eq(audit_flush(a), -ENOSPC);
        a = audit_close(a);
        ck_assert_int_eq(stat(log_path(3), &st), 0);
        ck_assert_int_ne(stat(log_path(4), &st), 0);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.records, n);
        ck_assert_uint_eq(rep.files, 3);

        o.file_max = AUDIT_FILE_MAX + 1;
        ck_assert_int_eq(audit_open(state, &o, &a), -EINVAL);
}
END_TEST

START_TEST(test_parse_time)
{
        static const struct {
                const char *s;
                int r;
                int64_t usec;
        } cases[] = {
                {"2024-05-01T12:00:00Z", 0, T0 * 1000000},
                {"2024-05-01t12:00:00z", 0, T0 * 1000000},
                {"2024-05-01T12:00:00.000001Z", 0, T0 * 1000000 + 1},
                {"2024-05-01T12:00:00.5Z", 0, T0 * 1000000 + 500000},
                {"2024-05-01T12:00:00.123456789Z", 0, T0 * 1000000 + 123456},
                {"2024-05-01T14:00:00+02:00", 0, T0 * 1000000},
                {"2024-05-01T07:30:00-04:30", 0, T0 * 1000000},
                {"2024-05-01", 0, (T0 - 43200) * 1000000},
                {"1970-01-01T00:00:00Z", 0, 0},
                {"2024-02-29T00:00:00Z", 0, 1709164800ll * 1000000},
                {"2023-02-29T00:00:00Z", -EINVAL, 0},
                {"2024-13-01T00:00:00Z", -EINVAL, 0},
                {"2024-05-01T24:00:00Z", -EINVAL, 0},
                {"2024-05-01T12:00:00", -EINVAL, 0},
                {"2024-05-01T12:00:00.Z", -EINVAL, 0},
                {"2024-05-01T12:00:00.1234567890Z", -EINVAL, 0},
                {"2024-05-01T12:00Z", -EINVAL, 0},
                {"2024-05-01 12:00:00Z", -EINVAL, 0},
                {"2024-05-01T12:00:00Zx", -EINVAL, 0},
                {"2024-5-1", -EINVAL, 0},
                {"1969-12-31T23:59:59Z", -ERANGE, 0},
                {"", -EINVAL, 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int64_t v = 42;
                int r = audit_parse_time(cases[i].s, &v);

                ck_assert_msg(r == cases[i].r, "audit_parse_time(\"%s\") = %d", cases[i].s, r);
                if (r == 0)
                        ck_assert_msg(v == cases[i].usec, "audit_parse_time(\"%s\") = %" PRId64,
                                      cases[i].s, v);
                else
                        ck_assert_int_eq(v, 42);
        }
}
END_TEST

START_TEST(test_parse_since)
{
        int64_t now = T0 * 1000000, v;
        char buf[32];

        ck_assert_int_eq(audit_parse_since("10m", now, &v), 0);
        ck_assert_int_eq(v, now - 600ll * 1000000);
        ck_assert_int_eq(audit_parse_since("2h", now, &v), 0);
        ck_assert_int_eq(v, now - 7200ll * 1000000);
        ck_assert_int_eq(audit_parse_since("1d", now, &v), 0);
        ck_assert_int_eq(v, now - 86400ll * 1000000);
        ck_assert_int_eq(audit_parse_since("30s", now, &v), 0);
        ck_assert_int_eq(audit_parse_since("1w", now, &v), 0);
        ck_assert_int_eq(v, now - 7 * 86400ll * 1000000);
        ck_assert_int_eq(audit_parse_since("0m", now, &v), 0);
        ck_assert_int_eq(v, now);
        ck_assert_int_eq(audit_parse_since("2024-05-01T12:00:00Z", now, &v), 0);
        ck_assert_int_eq(v, now);
        ck_assert_int_eq(audit_parse_since("10", now, &v), -EINVAL);
        ck_assert_int_eq(audit_parse_since("10y", now, &v), -EINVAL);
        ck_assert_int_eq(audit_parse_since("-10m", now, &v), -EINVAL);
        ck_assert_int_eq(audit_parse_since("m", now, &v), -EINVAL);
        ck_assert_int_eq(audit_parse_since("", now, &v), -EINVAL);
        ck_assert_int_eq(audit_parse_since("99999999999999999999d", now, &v), -ERANGE);
        ck_assert_int_eq(audit_parse_since("100000w", now, &v), -ERANGE);

        ck_assert_str_eq(audit_format_time(now + 1, buf, sizeof buf),
                         "2024-05-01T12:00:00.000001Z");
        ck_assert_str_eq(audit_format_time(0, buf, sizeof buf), "1970-01-01T00:00:00.000000Z");
        ck_assert_ptr_null(audit_format_time(-1, buf, sizeof buf));
        /* Its own date arithmetic agrees with gmtime_r() over the whole range:
         * leap days, century years (1900 and 2100 are not leap, 2000 is), the
         * last second of 9999; every day of 1970-2100, then a stride to 9999. */
        for (int64_t sec = 0; sec < 253402300800ll; sec += sec < 4102444800ll ? 86399 : 7776013) {
                char want[80];
                time_t t = (time_t)sec;
                struct tm tm;

                ck_assert_ptr_nonnull(gmtime_r(&t, &tm));
                snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.000007Z",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
                ck_assert_str_eq(audit_format_time(sec * 1000000 + 7, buf, sizeof buf), want);
        }
        ck_assert_str_eq(audit_format_time(951782400ll * 1000000, buf, sizeof buf),
                         "2000-02-29T00:00:00.000000Z");
        ck_assert_str_eq(audit_format_time(4107542400ll * 1000000, buf, sizeof buf),
                         "2100-03-01T00:00:00.000000Z");
        ck_assert_str_eq(audit_format_time(253402300799ll * 1000000 + 999999, buf, sizeof buf),
                         "9999-12-31T23:59:59.999999Z");
        ck_assert_ptr_null(audit_format_time(253402300800ll * 1000000, buf, sizeof buf));
        ck_assert_str_eq(audit_problem_to_string(AUDIT_PROBLEM_PREV), "prev");
        ck_assert_ptr_null(audit_problem_to_string(_AUDIT_PROBLEM_MAX));
}
END_TEST

/* With a sync lag, a short-lived writer's close leaves HEAD where it was while HEAD
 * is recent, and the log still verifies (records after HEAD continue the chain);
 * HEAD catches up once it is older than the lag, or the records behind it reach
 * AUDIT_SYNC_LAG_RECORDS. */
START_TEST(test_sync_lag)
{
        AuditOptions lazy = {.sync_lag_ms = 3600 * 1000};
        struct timespec old[2] = {{.tv_sec = 1000}, {.tv_sec = 1000}};
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        char *head;

        make_log(2, 0); /* HEAD names record 2 */
        ck_assert_int_eq(audit_open(state, &lazy, &a), 0);
        append_calls(a, 3);
        a = audit_close(a);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.records, 5);
        ck_assert_uint_eq(rep.head_seq, 2);

        /* The next lazy writer does not sync at open either, while HEAD is recent. */
        ck_assert_int_eq(audit_open(state, &lazy, &a), 0);
        append_calls(a, 1);
        a = audit_close(a);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.head_seq, 2);

        /* An old HEAD is brought up to date. */
        head = state_file("HEAD");
        ck_assert_int_eq(utimensat(AT_FDCWD, head, old, 0), 0);
        ck_assert_int_eq(audit_open(state, &lazy, &a), 0);
        a = audit_close(a);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.head_seq, 6);

        /* So is a HEAD too many records behind, at the flush that reaches the bound. */
        ck_assert_int_eq(audit_open(state, &lazy, &a), 0);
        append_calls(a, AUDIT_SYNC_LAG_RECORDS);
        ck_assert_int_eq(audit_flush(a), 0);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.head_seq, 6 + AUDIT_SYNC_LAG_RECORDS);
        a = audit_close(a);

        /* Without a lag, close syncs. */
        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        append_calls(a, 1);
        a = audit_close(a);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.head_seq, 7 + AUDIT_SYNC_LAG_RECORDS);
}
END_TEST

/* Line k of the log without its seq and prev: what the writer formats. */
static char *middle_of(const char *data, unsigned k)
{
        size_t start, len;
        const char *m, *e;

        nth_line(data, k, &start, &len);
        m = memchr(data + start, ',', len);
        e = memmem(data + start, len, ",\"prev\":\"", 9);
        ck_assert_ptr_nonnull(m);
        ck_assert_ptr_nonnull(e);
        return strndup(m, (size_t)(e - m));
}

/* audit_append_fields() writes the line audit_append() writes for the object the
 * broker used to build: json_pack() of the fields, json_object_update_missing() of
 * the extra, byte for byte, escapes and all. */
START_TEST(test_append_fields)
{
        TestClock clock = {.next_usec = T0 * 1000000 + 42, .step_usec = 0};
        AuditOptions o = {.clock = test_clock, .clock_userdata = &clock};
        static const char *const strs[] = {
                "fs.read:documents",
                "quote\" backslash\\ slash/",
                "only\\backslash",
                "only\"quote",
                "ctl\x01\x1f\t\n\r\b\f del\x7f",
                "caf\xc3\xa9 \xf0\x9f\x90\x88 \xe2\x80\xa8",
                "",
        };
        static const int64_t nums[] = {0, -13, 13, INT64_MIN, INT64_MAX, -1, 1000000};
        json_auto_t *extra = json_pack("{s:s, s:s, s:I, s:{s:[i, f, n, b]}, s:s}", "path",
                                       "/data/a \"b\"\n", "op", "not this one", "n", (json_int_t)5,
                                       "nested", "k", 1, 2.5, 1, "k\"ey\x02", "v\xc3\xa9");
        _cleanup_free_ char *data = NULL;
        AuditLog *a = NULL;
        unsigned lines = 0;

        ck_assert_ptr_nonnull(extra);
        ck_assert_int_eq(audit_open(state, &o, &a), 0);
        for (size_t i = 0; i < ELEMENTSOF(strs); i++)
                for (int with_extra = 0; with_extra < 2; with_extra++) {
                        const char *right = i == ELEMENTSOF(strs) - 1 ? NULL : strs[i];
                        AuditField f[] = {
                                {.key = "op", .str = "fs.open"},
                                {.key = "right", .str = right},
                                {.key = "decision", .str = strs[(i + 1) % ELEMENTSOF(strs)]},
                                {.key = "errno", .type = AUDIT_FIELD_INT, .num = nums[i]},
                        };
                        json_auto_t *j =
                                json_pack("{s:s, s:s?, s:s, s:I}", "op", "fs.open", "right", right,
                                          "decision", f[2].str, "errno", (json_int_t)nums[i]);

                        ck_assert_ptr_nonnull(j);
                        if (with_extra)
                                ck_assert_int_eq(json_object_update_missing(j, extra), 0);
                        ck_assert_int_eq(audit_append(a, "org.a", AUDIT_EVENT_CALL, j), 0);
                        ck_assert_int_eq(audit_append_fields(a, "org.a", AUDIT_EVENT_CALL, f,
                                                             ELEMENTSOF(f),
                                                             with_extra ? extra : NULL),
                                         0);
                        lines += 2;
                }
        /* A supervisor record: app null, no fields. */
        ck_assert_int_eq(audit_append(a, NULL, "lifecycle", NULL), 0);
        ck_assert_int_eq(audit_append_fields(a, NULL, "lifecycle", NULL, 0, NULL), 0);
        lines += 2;
        ck_assert_int_eq(audit_flush(a), 0);
        a = audit_close(a);
        data = slurp(log_path(1), NULL);
        for (unsigned k = 1; k <= lines; k += 2) {
                _cleanup_free_ char *x = middle_of(data, k), *y = middle_of(data, k + 1);

                ck_assert_str_eq(x, y);
        }
        ck_assert_ptr_nonnull(strstr(data, "\"right\":null,"));
        ck_assert_ptr_nonnull(strstr(data, "\"errno\":-9223372036854775808"));
        ck_assert_ptr_nonnull(strstr(data, "\\u0001\\u001F\\t\\n\\r\\b\\f del\x7f"));
        ck_assert_int_eq(audit_verify(state, &(AuditVerifyReport){}), 0);
}
END_TEST

/* What audit_append_fields() refuses: nothing is added. */
START_TEST(test_append_fields_refused)
{
        AuditField ok = {.key = "op", .str = "x"};
        AuditField bad_utf8 = {.key = "op", .str = "\xc3("};
        AuditField bad_key = {.key = "\xff", .str = "x"};
        AuditField reserved = {.key = "seq", .type = AUDIT_FIELD_INT, .num = 1};
        AuditField no_key = {.str = "x"};
        AuditField bad_type = {.key = "op", .type = (AuditFieldType)7};
        AuditField twice[] = {ok, ok};
        AuditField many[AUDIT_FIELDS_MAX + 1];
        json_auto_t *extra_reserved = json_pack("{s:s}", "prev", "x");
        json_auto_t *not_object = json_string("x");
        static char huge[AUDIT_LINE_MAX];
        AuditField long_one = {.key = "op", .str = huge};
        AuditLog *a = NULL;

        memset(huge, 'x', sizeof huge - 1);
        for (size_t i = 0; i < ELEMENTSOF(many); i++) {
                many[i] = (AuditField){.key = strdupa("k000"), .type = AUDIT_FIELD_INT};
                snprintf((char *)many[i].key, 5, "k%03zu", i);
        }
        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "call", &bad_utf8, 1, NULL), -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "call", &bad_key, 1, NULL), -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "call", &reserved, 1, NULL), -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "call", &no_key, 1, NULL), -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "call", &bad_type, 1, NULL), -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "call", twice, 2, NULL), -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "call", many, ELEMENTSOF(many), NULL),
                         -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "call", many, AUDIT_FIELDS_MAX, NULL), 0);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "call", &ok, 1, extra_reserved), -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "call", &ok, 1, not_object), -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "call", NULL, 1, NULL), -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "audit.break", &ok, 1, NULL), -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "bad app", "call", &ok, 1, NULL), -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "Call", &ok, 1, NULL), -EINVAL);
        ck_assert_int_eq(audit_append_fields(a, "org.a", "call", &long_one, 1, NULL), -E2BIG);
        ck_assert_int_eq(audit_flush(a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 1); /* the one with AUDIT_FIELDS_MAX fields */
        a = audit_close(a);
}
END_TEST

/* audit_flush_hold() keeps the writer lock until audit_unlock(); with nothing to
 * write it takes none. */
START_TEST(test_flush_hold)
{
        AuditLog *a = NULL;

        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        ck_assert_int_eq(audit_flush_hold(a), 0);
        ck_assert_int_eq(hold_flush_lock(true), 0);
        hold_flush_lock(false);
        append_calls(a, 2);
        ck_assert_int_eq(audit_flush_hold(a), 1);
        ck_assert_uint_eq(audit_last_seq(a), 2);
        ck_assert_int_eq(hold_flush_lock(true), -1); /* held: by a, still */
        hold_flush_lock(false);
        audit_unlock(a);
        ck_assert_int_eq(hold_flush_lock(true), 0);
        hold_flush_lock(false);
        audit_unlock(a); /* not held: nothing */
        audit_unlock(NULL);
        a = audit_close(a);
}
END_TEST

/* The lock file of an older writer is empty; a writer grows it to hold the
 * generation, and what it holds does not matter to the chain: a wrong magic or a
 * changed generation only make the next flush look at everything. */
START_TEST(test_lock_file_generation)
{
        _cleanup_close_ int fd = -EBADF;
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        struct stat st;
        uint64_t junk[2] = {0x1234, 99};

        make_log(3, 0);
        ck_assert_int_eq(truncate(state_file("lock"), 0), 0);
        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        ck_assert_int_eq(stat(state_file("lock"), &st), 0);
        ck_assert_int_eq(st.st_size, AUDIT_SHARED_SIZE);
        append_calls(a, 2);
        ck_assert_int_eq(audit_flush(a), 0);
        fd = open(state_file("lock"), O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(pwrite(fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
        append_calls(a, 2);
        ck_assert_int_eq(audit_flush(a), 0);
        append_calls(a, 2);
        ck_assert_int_eq(audit_flush(a), 0);
        a = audit_close(a);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        ck_assert_uint_eq(rep.records, 9);
}
END_TEST

/* audit_open() takes the end of the chain from the lock file when it checks out
 * (the last writer left it, nobody changed the log since, the newest file ends
 * with that record), instead of walking every record since HEAD; anything else and
 * it walks, as before. */
START_TEST(test_open_takes_the_tail_from_the_lock_file)
{
        AuditOptions lazy = {.sync_lag_ms = 3600 * 1000};
        _cleanup_close_ int fd = -EBADF;
        AuditVerifyReport rep;
        AuditLog *a = NULL;
        AuditShared sh;
        size_t size, start, len;
        char *data;

        make_log(2, 0); /* HEAD names record 2 */
        ck_assert_int_eq(audit_open(state, &lazy, &a), 0);
        append_calls(a, 3); /* records 3-5, after HEAD */
        a = audit_close(a);
        fd = open(state_file("lock"), O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(pread(fd, &sh, sizeof sh, 0), (ssize_t)sizeof sh);
        ck_assert_uint_eq(sh.tail_seq, 5);
        ck_assert_uint_eq(sh.tail_generation, sh.generation);

        /* Record 3 changed behind the writers' backs (same length): the open, which
         * checks only HEAD's record and the tail's, does not see it; verify does. */
        data = slurp(log_path(1), &size);
        nth_line(data, 3, &start, &len);
        data[start + len - 3] ^= 1;
        spew(log_path(1), data, size);
        ck_assert_int_eq(audit_open(state, &lazy, &a), 0);
        ck_assert_uint_eq(audit_last_seq(a), 5);
        a = audit_close(a);
        ck_assert_int_eq(audit_verify(state, &rep), -EBADMSG);

        /* The lock file's tail no longer vouched for (a writer died mid-change): the
         * open walks from HEAD and finds the change. */
        sh.generation++;
        ck_assert_int_eq(pwrite(fd, &sh, sizeof sh, 0), (ssize_t)sizeof sh);
        ck_assert_int_eq(audit_open(state, &lazy, &a), -EBADMSG);
        ck_assert_ptr_null(a);

        /* Put right, and the tail vouched for again: bytes after the tail record
         * (not a writer's) make the open walk, and refuse the torn end. */
        data[start + len - 3] ^= 1;
        spew(log_path(1), data, size);
        sh.tail_generation = sh.generation;
        ck_assert_int_eq(pwrite(fd, &sh, sizeof sh, 0), (ssize_t)sizeof sh);
        ck_assert_int_eq(audit_open(state, &lazy, &a), 0);
        a = audit_close(a);
        {
                _cleanup_close_ int log = open(log_path(1), O_WRONLY | O_APPEND | O_CLOEXEC);

                ck_assert_int_ge(log, 0);
                ck_assert_int_eq(write(log, "{\"seq\":6", 8), 8);
        }
        ck_assert_int_eq(audit_open(state, &lazy, &a), -EBADMSG);
        free(data);
}
END_TEST

/* ---- coalescing ------------------------------------------------------------------------ */

typedef struct Tally {
        unsigned calls, repeated, budget;
        uint64_t repeated_count, budget_count;
        json_t *last_summary; /* a copy of the last "suppressed" record */
} Tally;

static int tally_cb(const json_t *rec, const char *line, size_t len, void *userdata)
{
        Tally *t = userdata;
        const char *ev = json_string_value(json_object_get(rec, "event"));
        const char *why = json_string_value(json_object_get(rec, "why"));

        if (strcmp(ev, "call") == 0)
                t->calls++;
        else if (strcmp(ev, AUDIT_EVENT_SUPPRESSED) == 0) {
                uint64_t n = (uint64_t)json_integer_value(json_object_get(rec, "count"));

                ck_assert_ptr_nonnull(why);
                if (strcmp(why, "repeated") == 0) {
                        t->repeated++;
                        t->repeated_count += n;
                } else {
                        ck_assert_str_eq(why, "budget");
                        t->budget++;
                        t->budget_count += n;
                }
                json_decref(t->last_summary);
                t->last_summary = json_deep_copy(rec);
        }
        return 0;
}

/* Reads the whole log (it must verify) into a tally. */
static Tally tally(void)
{
        AuditVerifyReport rep;
        Tally t = {};

        ck_assert_int_eq(audit_read(state, NULL, tally_cb, &t, &rep), 0);
        ck_assert_int_eq(audit_verify(state, &rep), 0);
        return t;
}

static int call_rec(AuditCoalesce *co, AuditLog *a, const char *app, const char *op,
                    const char *decision, json_t *extra, int64_t now)
{
        const AuditField f[] = {
                {.key = "op", .str = op},
                {.key = "right", .str = NULL},
                {.key = "decision", .str = decision},
                {.key = "errno", .type = AUDIT_FIELD_INT, .num = 0},
        };

        return audit_coalesce_append(co, a, app, "call", f, ELEMENTSOF(f), extra, now);
}

/* A flood of one decision: the first record, then one summary a window with the
 * count; the chain verifies; nothing is lost from the count. */
START_TEST(test_coalesce_repeated)
{
        _cleanup_(audit_closep) AuditLog *a = NULL;
        AuditCoalesce *co = NULL;
        const int64_t t0 = T0 * 1000000;
        json_t *extra = json_pack("{s:s, s:i}", "path", "a.txt", "flags", 1);
        char first[40];
        Tally t;

        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        ck_assert_int_eq(audit_coalesce_new(NULL, &co), 0);
        /* 10,000 identical calls within 0.5 s. */
        for (int i = 0; i < 10000; i++)
                ck_assert_int_eq(
                        call_rec(co, a, "org.x.a", "fs.open", "allowed", extra, t0 + i * 50),
                        i == 0 ? 1 : 0);
        ck_assert_int_eq(audit_coalesce_due(co), t0 + AUDIT_COALESCE_WINDOW_USEC);
        /* Not yet due: nothing written. */
        ck_assert_int_eq(audit_coalesce_flush(co, a, "org.x.a", t0 + 600000, false), 0);
        ck_assert_int_eq(audit_flush(a), 0);
        t = tally();
        ck_assert_uint_eq(t.calls, 1);
        ck_assert_uint_eq(t.repeated, 0);
        /* Due: one summary, with the fields, the extra and the count. */
        ck_assert_int_eq(audit_coalesce_flush(co, a, "org.x.a", t0 + 1000000, false), 0);
        ck_assert_int_eq(audit_coalesce_due(co), INT64_MAX);
        ck_assert_int_eq(audit_flush(a), 0);
        t = tally();
        ck_assert_uint_eq(t.calls, 1);
        ck_assert_uint_eq(t.repeated, 1);
        ck_assert_uint_eq(t.repeated_count, 9999);
        ck_assert_str_eq(json_string_value(json_object_get(t.last_summary, "of")), "call");
        ck_assert_str_eq(json_string_value(json_object_get(t.last_summary, "op")), "fs.open");
        ck_assert_str_eq(json_string_value(json_object_get(t.last_summary, "decision")), "allowed");
        ck_assert_str_eq(json_string_value(json_object_get(t.last_summary, "path")), "a.txt");
        ck_assert_str_eq(json_string_value(json_object_get(t.last_summary, "first")),
                         audit_format_time(t0 + 50, first, sizeof first));
        ck_assert_str_eq(json_string_value(json_object_get(t.last_summary, "last")),
                         audit_format_time(t0 + 9999 * 50, first, sizeof first));
        json_decref(t.last_summary);
        /* After the window the same call is written again. */
        ck_assert_int_eq(call_rec(co, a, "org.x.a", "fs.open", "allowed", extra, t0 + 1100000), 1);
        /* A different path is another record. */
        json_object_set_new(extra, "path", json_string("b.txt"));
        ck_assert_int_eq(call_rec(co, a, "org.x.a", "fs.open", "allowed", extra, t0 + 1100001), 1);
        ck_assert_int_eq(call_rec(co, a, "org.x.a", "fs.open", "allowed", extra, t0 + 1100002), 0);
        ck_assert_int_eq(audit_coalesce_flush(co, a, "org.x.a", t0 + 1100003, true), 0);
        ck_assert_int_eq(audit_flush(a), 0);
        t = tally();
        ck_assert_uint_eq(t.calls, 3);
        ck_assert_uint_eq(t.repeated, 2);
        ck_assert_uint_eq(t.repeated_count, 10000);
        json_decref(t.last_summary);
        json_decref(extra);
        audit_coalesce_free(co);
}
END_TEST

/* Alternating decisions do not escape (several kinds counted side by side); a ninth
 * kind sums up the oldest at once. */
START_TEST(test_coalesce_alternating_and_eviction)
{
        _cleanup_(audit_closep) AuditLog *a = NULL;
        AuditCoalesce *co = NULL;
        const int64_t t0 = T0 * 1000000;
        AuditCoalesceStats st;
        Tally t;

        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        ck_assert_int_eq(audit_coalesce_new(NULL, &co), 0);
        for (int i = 0; i < 1000; i++) {
                call_rec(co, a, "org.x.a", "system.time", "allowed", NULL, t0 + i);
                call_rec(co, a, "org.x.a", "fs.open", "refused", NULL, t0 + i);
        }
        audit_coalesce_stats(co, &st);
        ck_assert_uint_eq(st.written, 2);
        ck_assert_uint_eq(st.coalesced, 1998);
        /* Seven more kinds fill the slots; the ninth sums up the oldest. */
        for (int k = 0; k < 7; k++) {
                char op[16];

                snprintf(op, sizeof op, "op%d", k);
                ck_assert_int_eq(call_rec(co, a, "org.x.a", op, "allowed", NULL, t0 + 2000 + k), 1);
        }
        ck_assert_int_eq(audit_flush(a), 0);
        t = tally();
        ck_assert_uint_eq(t.repeated, 1); /* system.time, the oldest */
        ck_assert_uint_eq(t.repeated_count, 999);
        json_decref(t.last_summary);
        ck_assert_int_eq(audit_coalesce_flush(co, a, "org.x.a", t0, true), 0);
        ck_assert_int_eq(audit_flush(a), 0);
        t = tally();
        ck_assert_uint_eq(t.calls, 9);
        ck_assert_uint_eq(t.repeated, 2);
        ck_assert_uint_eq(t.repeated_count, 1998);
        json_decref(t.last_summary);
        audit_coalesce_free(co);
}
END_TEST

/* Distinct records past the byte budget are counted by op and decision, in one
 * summary a window; the log grows by no more than the budget. */
START_TEST(test_coalesce_budget)
{
        _cleanup_(audit_closep) AuditLog *a = NULL;
        AuditCoalesce *co = NULL;
        const int64_t t0 = T0 * 1000000;
        AuditCoalesceOptions o = {.budget_rate = 10000, .budget_burst = 20000};
        AuditCoalesceStats st;
        struct stat sb;
        json_t *ops;
        Tally t;
        int written = 0;

        ck_assert_int_eq(audit_open(state, NULL, &a), 0);
        ck_assert_int_eq(audit_coalesce_new(&o, &co), 0);
        /* 5,000 distinct fs.open records (different paths) in 0.5 s. */
        for (int i = 0; i < 5000; i++) {
                json_t *x = json_pack("{s:i}", "path", i);

                written += call_rec(co, a, "org.x.a", "fs.open", i % 2 ? "allowed" : "refused", x,
                                    t0 + i * 100);
                json_decref(x);
        }
        audit_coalesce_stats(co, &st);
        ck_assert_uint_eq(st.written, (uint64_t)written);
        ck_assert_uint_eq(st.written + st.over_budget, 5000);
        ck_assert_uint_gt(st.over_budget, 4000);
        /* The budget's window opened with the first record over it. */
        ck_assert_int_gt(audit_coalesce_due(co), t0);
        ck_assert_int_le(audit_coalesce_due(co), t0 + 1500000);
        ck_assert_int_eq(audit_coalesce_flush(co, a, "org.x.a", audit_coalesce_due(co), false), 0);
        ck_assert_int_eq(audit_coalesce_due(co), INT64_MAX);
        ck_assert_int_eq(audit_flush(a), 0);
        t = tally();
        ck_assert_uint_eq(t.calls, (unsigned)written);
        ck_assert_uint_eq(t.budget, 1);
        ck_assert_uint_eq(t.budget_count, st.over_budget);
        ops = json_object_get(json_object_get(t.last_summary, "ops"), "fs.open");
        ck_assert_int_eq(json_integer_value(json_object_get(ops, "allowed")) +
                                 json_integer_value(json_object_get(ops, "refused")),
                         (json_int_t)st.over_budget);
        /* The refusals past the budget keep what they were about (op, right,
         * decision), not only their count. */
        ck_assert_int_eq(json_integer_value(json_object_get(
                                 json_object_get(t.last_summary, "rights"), "fs.open - refused")),
                         json_integer_value(json_object_get(ops, "refused")));
        ck_assert_int_gt(json_integer_value(json_object_get(ops, "refused")), 0);
        ck_assert_ptr_null(
                json_object_get(json_object_get(t.last_summary, "rights"), "fs.open - allowed"));
        json_decref(t.last_summary);
        /* The burst plus half a second of the rate, and the summary: the bound. */
        ck_assert_int_eq(stat(log_path(1), &sb), 0);
        ck_assert_int_le(sb.st_size, 20000 + 5000 + 1024);
        audit_coalesce_free(co);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("audit");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        if (sodium_init() < 0)
                return EXIT_FAILURE;
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_coalesce_repeated);
        tcase_add_test(tc, test_coalesce_alternating_and_eviction);
        tcase_add_test(tc, test_coalesce_budget);
        tcase_add_test(tc, test_empty_and_missing);
        tcase_add_test(tc, test_rotation_chain);
        tcase_add_test(tc, test_tamper_middle_record);
        tcase_add_test(tc, test_delete_middle_line);
        tcase_add_test(tc, test_delete_first_line);
        tcase_add_test(tc, test_torn_last_line);
        tcase_add_test(tc, test_torn_after_head);
        tcase_add_test(tc, test_truncated_whole_lines);
        tcase_add_test(tc, test_unsynced_tail_after_crash);
        tcase_add_test(tc, test_reopen_continues_chain);
        tcase_add_test(tc, test_reserved_and_invalid);
        tcase_add_test(tc, test_line_bound);
        tcase_add_test(tc, test_bad_lines);
        tcase_add_test(tc, test_wrong_types);
        tcase_add_test(tc, test_second_writer_allowed);
        tcase_add_test(tc, test_partial_line_while_writing);
        tcase_add_test(tc, test_two_handles_interleaved);
        tcase_add_test(tc, test_forked_writers_and_reader);
        tcase_add_test(tc, test_stale_tail_reread);
        tcase_add_test(tc, test_stale_tail_checked);
        tcase_add_test(tc, test_stale_tail_cut);
        tcase_add_test(tc, test_batch_auto_flush);
        tcase_add_test(tc, test_batch_across_rotation);
        tcase_add_test(tc, test_repair_with_open_writer);
        tcase_add_test(tc, test_missing_rotated_file);
        tcase_add_test(tc, test_missing_first_and_last_file);
        tcase_add_test(tc, test_head_changed_or_gone);
        tcase_add_test(tc, test_repair);
        tcase_add_test(tc, test_filters);
        tcase_add_test(tc, test_files_max);
        tcase_add_test(tc, test_parse_time);
        tcase_add_test(tc, test_parse_since);
        tcase_add_test(tc, test_sync_lag);
        tcase_add_test(tc, test_open_takes_the_tail_from_the_lock_file);
        tcase_add_test(tc, test_append_fields);
        tcase_add_test(tc, test_append_fields_refused);
        tcase_add_test(tc, test_flush_hold);
        tcase_add_test(tc, test_lock_file_generation);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
